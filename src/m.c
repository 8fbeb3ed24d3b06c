/*
 * m.c: Ms, the worker threads.
 *
 * An M is a pthread that runs the scheduler loop (goro__schedule) on its
 * own stack ("g0") and switches to Gs from there.  Ms are created on
 * demand by startm (sched.c), up to sched.maxmcount, and live until
 * goro_shutdown.  Each M sets up its per-thread facilities on its own
 * thread: the I/O layer's ring (which must be created by the thread that
 * submits to it: IORING_SETUP_SINGLE_ISSUER) and the stack layer's
 * sigaltstack (signal handlers for stack faults run there).
 *
 * The current M is a thread-local variable read only through
 * goro__m_self().  A G can migrate between Ms at any switch, and compilers
 * are free to compute the address of a thread-local variable once and
 * reuse it across calls in the same function (with the general-dynamic
 * TLS model the __tls_get_addr result is a plain value to the optimizer).
 * goro__m_self() is out of line and contains a volatile asm, so it is not
 * "pure": every call really reads the variable of the thread it runs on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "sanitizer.h"

#define sched goro__sched

static __thread struct goro_m *tls_m;

__attribute__((noinline)) struct goro_m *goro__m_self(void)
{
	struct goro_m *mp;
	__asm__ volatile("" ::: "memory");
	mp = tls_m;
	return mp;
}

__attribute__((noinline)) struct goro_g *goro__g_self(void)
{
	struct goro_m *mp = goro__m_self();
	return mp && !mp->in_block ? mp->curg : NULL;
}

uint32_t goro__fastrand(void)
{
	static _Atomic uint64_t shared = 0x9E3779B97F4A7C15ull;
	struct goro_m *mp = goro__m_self();
	uint64_t x;

	if (mp) {
		x = mp->rand;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		mp->rand = x;
	} else {
		x = atomic_fetch_add(&shared, 0x9E3779B97F4A7C15ull);
		x ^= x >> 31;
		x *= 0xBF58476D1CE4E5B9ull;
		x ^= x >> 29;
	}
	return (uint32_t)(x >> 32);
}

static void *mstart(void *arg)
{
	struct goro_m *mp = arg;
	pthread_attr_t attr;
	sigset_t fault;

	tls_m = mp;
	mp->g0_tsan_fiber = goro__tsan_fiber_current();
	mp->tid = (pid_t)syscall(SYS_gettid);
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &mp->g0_stack_lo, &mp->g0_stack_size);
		pthread_attr_destroy(&attr);
	}
	/* Stack faults are delivered as SIGSEGV/SIGBUS to the faulting
	 * thread; a blocked synchronous signal kills the process. */
	sigemptyset(&fault);
	sigaddset(&fault, SIGSEGV);
	sigaddset(&fault, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &fault, NULL);
	if (goro__stack_m_init(mp) != 0 || goro__io_m_init(mp) != 0)
		goro__throw("cannot set up a new M (ring or signal stack)");
	if (mp->nextp) {
		struct goro_p *pp = mp->nextp;
		mp->nextp = NULL;
		pp->m = mp;
		store_release(&pp->status, P_RUNNING);
		mp->p = pp;
	}
	goro__schedule(mp);
	goro__io_m_exit(mp);
	goro__stack_m_exit(mp);
	return NULL;
}

int goro__newm(struct goro_p *pp, bool spinning)
{
	struct goro_m *mp, *head;
	pthread_attr_t attr;
	int id, r;

	id = (int)atomic_fetch_add(&sched.mcount, 1);
	if ((uint32_t)id >= sched.maxmcount) {
		atomic_fetch_sub(&sched.mcount, 1);
		return -EAGAIN;
	}
	mp = calloc(1, sizeof *mp);
	if (!mp) {
		atomic_fetch_sub(&sched.mcount, 1);
		return -ENOMEM;
	}
	mp->id = id;
	mp->nextp = pp;
	mp->spinning = spinning;
	mp->rand = 0x2545F4914F6CDD1Dull * (uint64_t)(id + 1) ^ (uint64_t)goro__nanotime();
	if (!mp->rand)
		mp->rand = 1;
	pthread_attr_init(&attr);
	r = pthread_create(&mp->thread, &attr, mstart, mp);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		free(mp);
		atomic_fetch_sub(&sched.mcount, 1);
		return -r;
	}
	atomic_fetch_add(&sched.n_ms_created, 1);
	/* Link into allm (only ever prepended; walkers need no lock). */
	head = atomic_load(&sched.allm);
	do {
		mp->alllink = head;
	} while (!atomic_compare_exchange_weak(&sched.allm, &head, mp));
	return 0;
}

/* Joins every M thread and frees them (goro_shutdown, after the flag). */
void goro__m_join_all(void)
{
	struct goro_m *mp = atomic_exchange(&sched.allm, NULL);

	while (mp) {
		struct goro_m *next = mp->alllink;
		pthread_join(mp->thread, NULL);
		free(mp);
		mp = next;
	}
}

/* Wakes every idle M so that it sees the shutdown flag. */
void goro__m_wake_all(void)
{
	for (struct goro_m *mp = atomic_load(&sched.allm); mp; mp = mp->alllink)
		goro__m_wakeup(mp);
}
