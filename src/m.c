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
 * goro__m_self() (internal.h).  A G can migrate between Ms at any switch,
 * and compilers are free to compute the address of a thread-local
 * variable once and reuse it across calls in the same function (the
 * thread pointer, or __tls_get_addr's result, is a plain value to the
 * optimizer).  goro__m_self() reads the thread pointer with a volatile asm
 * at every call, so nothing can be cached across a switch, and adds the
 * variable's offset, which is the same in every thread because the
 * variable is initial-exec (static TLS).
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

/* Initial-exec: the variable lives in the static TLS block, at the same
 * offset from the thread pointer in every thread (goro__tls_m_off). */
static __thread struct goro_m *tls_m __attribute__((tls_model("initial-exec")));
intptr_t goro__tls_m_off;

/* Runs when the library is loaded, before any goro call can read it. */
__attribute__((constructor)) static void tls_offset_init(void)
{
	goro__tls_m_off = (intptr_t)((uintptr_t)&tls_m - goro__thread_pointer());
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

/* Serializes creating Ms with goro_shutdown's join: once shutdown is set
 * and the join has taken the list, no new M can appear (an M that a
 * waker started during shutdown would run on freed Ps). */
static pthread_mutex_t allm_mu = PTHREAD_MUTEX_INITIALIZER;

static int newm_locked(struct goro_p *pp, bool spinning);

int goro__newm(struct goro_p *pp, bool spinning)
{
	int r;

	pthread_mutex_lock(&allm_mu);
	if (load_relaxed(&sched.shutdown)) {
		pthread_mutex_unlock(&allm_mu);
		return -ESHUTDOWN;
	}
	r = newm_locked(pp, spinning);
	pthread_mutex_unlock(&allm_mu);
	return r;
}

static int newm_locked(struct goro_p *pp, bool spinning)
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
	/* Link into allm before the thread starts, so that whoever walks allm
	 * (goro_close's cancel, the fault handler thread, shutdown) sees
	 * every M that may run Gs.  Only ever prepended: walkers need no lock.
	 * An M whose thread could not be made stays listed, marked dead. */
	head = atomic_load(&sched.allm);
	do {
		mp->alllink = head;
	} while (!atomic_compare_exchange_weak(&sched.allm, &head, mp));
	pthread_attr_init(&attr);
	r = pthread_create(&mp->thread, &attr, mstart, mp);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		store_release(&mp->dead, true);
		atomic_fetch_sub(&sched.mcount, 1);
		return -r;
	}
	atomic_fetch_add(&sched.n_ms_created, 1);
	return 0;
}

/* Joins every M thread and frees them (goro_shutdown, after the flag). */
void goro__m_join_all(void)
{
	struct goro_m *mp;

	/* sched.shutdown is set: after this, goro__newm refuses. */
	pthread_mutex_lock(&allm_mu);
	mp = atomic_exchange(&sched.allm, NULL);
	pthread_mutex_unlock(&allm_mu);

	while (mp) {
		struct goro_m *next = mp->alllink;
		if (!load_acquire(&mp->dead))
			pthread_join(mp->thread, NULL);
		free(mp);
		mp = next;
	}
}

/* Wakes every idle M so that it sees the shutdown flag. */
void goro__m_wake_all(void)
{
	for (struct goro_m *mp = atomic_load(&sched.allm); mp; mp = mp->alllink)
		if (!load_acquire(&mp->dead))
			goro__m_wakeup(mp);
}
