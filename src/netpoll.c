/*
 * netpoll.c: the I/O layer's side of the scheduler: which backend is in
 * force, the hooks the scheduler calls (goro__poll_nonblock,
 * goro__m_sleep, goro__m_wakeup, goro__m_has_io, the per-M set-up), and
 * the epoll netpoller used when io_uring is not.
 *
 * Backends
 * ========
 * GORO_IO_URING: every M has a ring (ring.c) and every blocking call of
 * a G goes there.  GORO_IO_EPOLL, when io_uring_setup fails (EPERM from
 * kernel.io_uring_disabled or a seccomp filter, ENOSYS, or a kernel too
 * old for our ops) or when GORO_IO=epoll: sockets and pipes use
 * non-blocking calls and wait for readiness here; files go through the
 * blocking hand-off (goro_block).  goro__io_init picks one and logs it.
 *
 * Sleeping Ms
 * ===========
 * The problem.  An idle M must sleep where the events that concern it
 * arrive: its ring (its own completions, with DEFER_TASKRUN, can only be
 * reaped by itself), or epoll_wait, or a futex; and a waker must wake it
 * without ever losing a wake-up and without a syscall when it is awake.
 * A cross-CPU wake-up costs 30-50 us here, so a waker must only send one
 * to an M that really sleeps, and an M spins a little before it sleeps.
 *
 * The state, per M (struct goro__iom):
 *   pending   1 once goro__m_wakeup was called; cleared by the sleeper
 *             when goro__m_sleep returns (each return consumes the
 *             wake-ups made so far, as a note does).
 *   sleeping  NONE, FUTEX (in futex_wait on `pending`), KERNEL (in
 *             io_uring_enter on its ring or in epoll_wait), EXITING.
 *
 * The protocol:
 *   Sleeper: 1. spin up to SPIN_NS watching pending (and its ring);
 *            2. store sleeping = FUTEX or KERNEL (seq_cst);
 *            3. load pending: if set, do not sleep;
 *            4. sleep (futex_wait(&pending, 0) re-checks in the kernel);
 *            5. exchange sleeping = NONE, then pending = 0.
 *   Waker:   1. exchange pending = 1 (seq_cst); if it was 1 already,
 *               stop: that wake-up is still unconsumed;
 *            2. load sleeping: FUTEX -> futex_wake; KERNEL -> win the
 *               CAS KERNEL -> NONE and send one kick (goro__ring_kick:
 *               MSG_RING, or the eventfd).
 * Steps 2-3 of the sleeper and 1-2 of the waker are each a store then a
 * load of the other's variable, all seq_cst (StoreLoad): either the
 * sleeper sees pending, or the waker sees it asleep.  A kick is a CQE or
 * an eventfd count, so it is not lost if it lands before the sleeper
 * reaches the kernel.  Only the waker that wins the CAS kicks, so an M
 * gets at most one kick per sleep; a kick that arrives after the sleeper
 * woke for another reason makes its next sleep return early, which the
 * contract allows.
 *
 * Timers.  One sleeping M at a time, the "timer sleeper", sleeps with the
 * earliest timer as its timeout; the others sleep until woken (running
 * Ms run due timers at each scheduling round).  With epoll it is also the
 * one M blocked in epoll_wait.  It publishes its deadline in
 * sleeper_when AFTER storing sleeping = KERNEL, then re-reads the timer
 * heap's head (seq_cst store then load); goro__timer_start stores the new
 * head, then (fence) reads sleeper_when and kicks the sleeper if the new
 * timer is earlier.  Either the sleeper sees the new timer or the starter
 * sees the old deadline, and then the kick lands while sleeping == KERNEL.
 *
 * Lock order (see lock.c): pdesc.lock < timers.lock < sched.lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io.h"

enum sleep_state { SLEEP_NONE = 0, SLEEP_FUTEX, SLEEP_KERNEL, SLEEP_EXITING };

#define SPIN_NS 3000

int goro__io_kind;

/* The timer sleeper (see "Timers" above); atomic, any thread. */
static struct goro__iom *_Atomic sleeper;
static _Atomic int64_t sleeper_when = INT64_MAX;

/* Per-M state of exited Ms, freed at goro__io_shutdown: a late waker may
 * still read it.  [dead_lock] */
static struct goro__lock dead_lock;
static struct goro__iom **dead;
static size_t ndead, capdead;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* ===================================================================== */
/*  The epoll netpoller                                                   */
/* ===================================================================== */

#define PD_CHUNK	1024
#define PD_CHUNKS	1024	/* fds up to 1M; beyond, the blocking hand-off */
#define EFD_KEY		UINT64_MAX

/* A G waiting for an fd: on the G's stack while it waits. */
struct pwait {
	struct pwait *next, *prev;	/* pd->waiters; pd->lock */
	struct goro_g *g;
	struct pdesc *pd;
	uint32_t events;		/* POLLIN / POLLOUT ... */
	int result;			/* 0, -ETIMEDOUT, -EBADF; pd->lock */
	bool queued;			/* on pd->waiters; pd->lock */
	struct goro__timer t;		/* the deadline */
	_Atomic uint32_t tdone;		/* t's function has finished */
};

/* One per fd number, never freed while the runtime runs. */
struct pdesc {
	struct goro__lock lock;		/* protects the fields below */
	struct pwait *waiters;
	int fd;				/* immutable */
};

static struct {
	int epfd;			/* immutable while running */
	int efd;			/* kicks the M in epoll_wait */
	_Atomic uint32_t nwait;		/* Gs waiting: poll only if > 0 */
	struct goro__lock growlock;	/* serializes chunk allocation */
	struct pdesc *_Atomic chunk[PD_CHUNKS];
} np = { .epfd = -1, .efd = -1 };

static struct pdesc *pd_get(int fd, bool create)
{
	struct pdesc *c;

	if (fd < 0 || fd >= PD_CHUNK * PD_CHUNKS)
		return NULL;
	c = atomic_load_explicit(&np.chunk[fd / PD_CHUNK], memory_order_acquire);
	if (!c && create) {
		goro__lock(&np.growlock);
		c = atomic_load(&np.chunk[fd / PD_CHUNK]);
		if (!c) {
			c = calloc(PD_CHUNK, sizeof *c);
			if (c) {
				for (int i = 0; i < PD_CHUNK; i++)
					c[i].fd = fd / PD_CHUNK * PD_CHUNK + i;
				atomic_store_explicit(&np.chunk[fd / PD_CHUNK], c,
						      memory_order_release);
			}
		}
		goro__unlock(&np.growlock);
	}
	return c ? &c[fd % PD_CHUNK] : NULL;
}

static void pw_unlink_locked(struct pdesc *pd, struct pwait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		pd->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->queued = false;
}

/* Arms a one-shot epoll registration for what the waiters want.  Must
 * hold pd->lock.  MOD first: after the fd was closed and its number
 * reused, the old registration is gone (ENOENT) and we ADD. */
static int arm_locked(struct pdesc *pd)
{
	struct epoll_event ev;
	uint32_t want = 0;

	GORO_DEBUG_ASSERT(goro__lock_held(&pd->lock));
	for (struct pwait *w = pd->waiters; w; w = w->next)
		want |= w->events;
	if (!want)
		return 0;
	memset(&ev, 0, sizeof ev);
	ev.events = want | EPOLLONESHOT;
	ev.data.u64 = (uint64_t)pd->fd;
	if (epoll_ctl(np.epfd, EPOLL_CTL_MOD, pd->fd, &ev) == 0)
		return 0;
	if (errno == ENOENT && epoll_ctl(np.epfd, EPOLL_CTL_ADD, pd->fd, &ev) == 0)
		return 0;
	return -errno;
}

/* Takes from pd the waiters that `revents` satisfies (or all, with
 * result err) onto *out, linked through next.  Must hold pd->lock. */
static void take_locked(struct pdesc *pd, uint32_t revents, int result,
			struct pwait **out)
{
	struct pwait *w = pd->waiters, *next;

	for (; w; w = next) {
		next = w->next;
		if (result == 0 && !(w->events & revents) &&
		    !(revents & (EPOLLERR | EPOLLHUP)))
			continue;
		pw_unlink_locked(pd, w);
		w->result = result;
		w->next = *out;
		*out = w;
	}
}

static int ready_list(struct pwait *w)
{
	int n = 0;

	while (w) {
		struct pwait *next = w->next;
		struct goro_g *gp = w->g;

		goro__ready(gp);	/* w may be gone after this */
		w = next;
		n++;
	}
	return n;
}

/* Runs the netpoller once; timeout_ms as epoll_wait's.  Returns the
 * number of Gs made ready. */
static int netpoll(int timeout_ms)
{
	struct epoll_event evs[64];
	int n, readied = 0;

	n = epoll_wait(np.epfd, evs, 64, timeout_ms);
	for (int i = 0; i < n; i++) {
		struct pwait *woken = NULL;
		struct pdesc *pd;
		uint64_t v;

		if (evs[i].data.u64 == EFD_KEY) {
			/* A kick is meant for the M blocked in epoll_wait: a
			 * non-blocking poll must leave it (level-triggered) for
			 * that M, or the kick is lost. */
			if (timeout_ms != 0)
				while (read(np.efd, &v, sizeof v) > 0)
					;
			continue;
		}
		pd = pd_get((int)evs[i].data.u64, false);
		if (!pd)
			continue;
		goro__lock(&pd->lock);
		take_locked(pd, evs[i].events, 0, &woken);
		arm_locked(pd);		/* the waiters left, if any */
		goro__unlock(&pd->lock);
		readied += ready_list(woken);
	}
	return readied;
}

static void pwait_timeout(struct goro__timer *t)
{
	struct pwait *w = t->arg;
	struct pdesc *pd = w->pd;
	struct goro_g *gp = NULL;

	goro__lock(&pd->lock);
	if (w->queued) {
		pw_unlink_locked(pd, w);
		w->result = -ETIMEDOUT;
		gp = w->g;
	}
	goro__unlock(&pd->lock);
	/* Our last touch of w: the G may return once it sees tdone. */
	store_release(&w->tdone, 1);
	if (gp)
		goro__ready(gp);
}

int goro__netpoll_wait(int fd, uint32_t events, int64_t deadline)
{
	struct pdesc *pd;
	struct pwait w;
	int ret;

	if (deadline && goro__nanotime() >= deadline)
		return -ETIMEDOUT;
	pd = pd_get(fd, true);
	if (!pd)
		return -EPERM;
	memset(&w, 0, sizeof w);
	w.g = goro__g_self();
	w.pd = pd;
	w.events = events;
	goro__lock(&pd->lock);
	w.next = pd->waiters;
	if (w.next)
		w.next->prev = &w;
	pd->waiters = &w;
	w.queued = true;
	ret = arm_locked(pd);
	if (ret < 0) {
		pw_unlink_locked(pd, &w);
		goro__unlock(&pd->lock);
		return ret;
	}
	atomic_fetch_add(&np.nwait, 1);
	if (deadline) {
		goro__timer_init(&w.t, pwait_timeout, &w);
		goro__timer_start(&w.t, deadline);
	}
	goro__park(WAIT_IO, goro__park_unlock, &pd->lock);
	atomic_fetch_sub(&np.nwait, 1);
	if (deadline && !goro__timer_stop(&w.t))
		while (!load_acquire(&w.tdone))
			cpu_relax();
	return w.result;
}

void goro__netpoll_close(int fd)
{
	struct pdesc *pd = pd_get(fd, false);
	struct pwait *woken = NULL;

	if (!pd || np.epfd < 0)
		return;
	goro__lock(&pd->lock);
	take_locked(pd, 0, -EBADF, &woken);
	epoll_ctl(np.epfd, EPOLL_CTL_DEL, fd, NULL);
	goro__unlock(&pd->lock);
	ready_list(woken);
}

static int netpoll_init(void)
{
	struct epoll_event ev;

	np.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (np.epfd < 0)
		return -errno;
	np.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (np.efd < 0) {
		int err = -errno;
		close(np.epfd);
		np.epfd = -1;
		return err;
	}
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.u64 = EFD_KEY;
	epoll_ctl(np.epfd, EPOLL_CTL_ADD, np.efd, &ev);
	return 0;
}

static void netpoll_shutdown(void)
{
	if (np.epfd >= 0)
		close(np.epfd);
	if (np.efd >= 0)
		close(np.efd);
	np.epfd = np.efd = -1;
	for (int i = 0; i < PD_CHUNKS; i++) {
		free(atomic_load(&np.chunk[i]));
		atomic_store(&np.chunk[i], NULL);
	}
	atomic_store(&np.nwait, 0);
}

/* ===================================================================== */
/*  Backend choice and per-M set-up                                       */
/* ===================================================================== */

static const char *uring_disabled_sysctl(void)
{
	static char buf[8];
	int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return "?";
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return "?";
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

int goro__io_init(void)
{
	const char *want = getenv("GORO_IO");
	bool epoll_wanted = want && strcmp(want, "epoll") == 0;
	int ret;

	if (want && *want && strcmp(want, "epoll") && strcmp(want, "uring"))
		goro__log(true, "ignoring GORO_IO=%s (want uring or epoll)", want);
	if (!epoll_wanted) {
		ret = goro__ring_probe();
		if (ret == 0) {
			goro__io_kind = GORO_IO_URING;
			goro__log(false, "I/O backend: io_uring (a ring per M)");
			return 0;
		}
		const char *sysctl = uring_disabled_sysctl();

		goro__log(true, "I/O backend: epoll + blocking hand-off; io_uring unavailable "
			  "(io_uring_setup: %s; kernel.io_uring_disabled=%s%s)",
			  strerror(-ret), sysctl,
			  ret == -EPERM && strcmp(sysctl, "0") == 0 ?
			  ", so a seccomp filter or LSM refuses it" : "");
	} else {
		goro__log(false, "I/O backend: epoll + blocking hand-off (GORO_IO=epoll)");
	}
	ret = netpoll_init();
	if (ret)
		return ret;
	goro__io_kind = GORO_IO_EPOLL;
	return 0;
}

void goro__io_shutdown(void)
{
	goro__lock(&dead_lock);
	for (size_t i = 0; i < ndead; i++)
		free(dead[i]);
	free(dead);
	dead = NULL;
	ndead = capdead = 0;
	goro__unlock(&dead_lock);
	netpoll_shutdown();
	atomic_store(&sleeper, NULL);
	atomic_store(&sleeper_when, INT64_MAX);
	goro__io_kind = GORO_IO_NONE;
}

int goro__io_m_init(struct goro_m *mp)
{
	struct goro__iom *iom = calloc(1, sizeof *iom);
	int ret;

	if (!iom)
		return -ENOMEM;
	iom->m = mp;
	/* Every M has a ring under GORO_IO_URING: a G parked on one may be
	 * re-issued on any M (goro__ring_call), so a ring-less M cannot run
	 * it.  The probe succeeded, so a failure here is a resource limit. */
	if (goro__io_kind == GORO_IO_URING) {
		ret = goro__ring_m_init(iom);
		if (ret < 0) {
			goro__log(true, "cannot create an M's io_uring: %s", strerror(-ret));
			free(iom);
			return ret;
		}
	}
	/* A wake-up sent before we existed went to the note. */
	if (atomic_load(&mp->park.key))
		atomic_store(&iom->pending, 1);
	__atomic_store_n(&mp->ring, iom, __ATOMIC_RELEASE);
	return 0;
}

void goro__io_m_exit(struct goro_m *mp)
{
	struct goro__iom *iom = mp->ring, *me;

	if (!iom)
		return;
	atomic_exchange(&iom->sleeping, SLEEP_EXITING);
	while (load_acquire(&iom->kickers))
		sched_yield();
	me = iom;
	atomic_compare_exchange_strong(&sleeper, &me, NULL);
	goro__ring_m_exit(iom);
	goro__lock(&dead_lock);
	if (ndead == capdead) {
		size_t cap = capdead ? capdead * 2 : 16;
		struct goro__iom **d = realloc(dead, cap * sizeof *d);
		if (!d)
			goro__throw("out of memory at M exit");
		dead = d;
		capdead = cap;
	}
	dead[ndead++] = iom;
	goro__unlock(&dead_lock);
}

/* ===================================================================== */
/*  The scheduler hooks                                                   */
/* ===================================================================== */

static int run_timers(void)
{
	int64_t next = goro__timers_next();
	int64_t now;

	if (next < 0)
		return 0;
	now = goro__nanotime();
	if (next > now)
		return 0;
	goro__timers_run(now);
	return 1;
}

int goro__poll_nonblock(struct goro_m *mp)
{
	struct goro__iom *iom = mp->ring;
	int n = 0;

	if (iom && iom->ring)
		n += goro__ring_poll(iom);
	else if (goro__io_kind == GORO_IO_EPOLL && load_relaxed(&np.nwait))
		n += netpoll(0);
	return n + run_timers();
}

void goro__io_enter_block(struct goro_m *mp)
{
	struct goro__iom *iom = mp->ring;

	if (iom && iom->ring)
		goro__ring_enter_block(iom);
}

bool goro__m_has_io(struct goro_m *mp)
{
	struct goro__iom *iom = mp->ring;

	return iom && goro__ring_busy(iom);
}

void goro__io_kick(struct goro__iom *iom)
{
	uint32_t s = SLEEP_KERNEL;

	/* kickers first, so that io_m_exit, which sets EXITING and then
	 * waits for kickers == 0, cannot free the ring under us. */
	atomic_fetch_add(&iom->kickers, 1);
	if (atomic_compare_exchange_strong(&iom->sleeping, &s, SLEEP_NONE)) {
		if (iom->ring)
			goro__ring_kick(iom);
		else if (np.efd >= 0)
			eventfd_write(np.efd, 1);
	}
	atomic_fetch_sub(&iom->kickers, 1);
}

void goro__m_wakeup(struct goro_m *mp)
{
	struct goro__iom *iom = __atomic_load_n(&mp->ring, __ATOMIC_ACQUIRE);

	if (!iom) {
		goro__note_wakeup(&mp->park);
		return;
	}
	if (atomic_exchange(&iom->pending, 1))
		return;		/* still unconsumed: the sleeper will see it */
	switch (atomic_load(&iom->sleeping)) {
	case SLEEP_FUTEX:
		goro__futex_wake(&iom->pending, 1);
		break;
	case SLEEP_KERNEL:
		goro__io_kick(iom);
		break;
	}
}

/* Publishes the timer sleeper's deadline and returns it (-1: none).
 * Called with sleeping == KERNEL already stored; see "Timers". */
static int64_t publish_deadline(void)
{
	for (;;) {
		int64_t next = goro__timers_next();

		atomic_store(&sleeper_when, next < 0 ? INT64_MAX : next);
		atomic_thread_fence(memory_order_seq_cst);	/* StoreLoad */
		if (goro__timers_next() == next)
			return next;
	}
}

void goro__io_timer_changed(int64_t when)
{
	struct goro__iom *s;

	/* StoreLoad: the timer heap's new head before sleeper_when; pairs
	 * with publish_deadline. */
	atomic_thread_fence(memory_order_seq_cst);
	s = atomic_load(&sleeper);
	if (!s) {
		goro__wakep();
		return;
	}
	if (when < atomic_load(&sleeper_when))
		goro__io_kick(s);
}

static void sleep_placeholder(struct goro_m *mp)
{
	int64_t next = goro__timers_next();

	if (next < 0) {
		goro__note_sleep(&mp->park);
	} else {
		int64_t now = goro__nanotime();
		if (next > now)
			goro__note_sleep_ns(&mp->park, next - now);
	}
	goro__note_clear(&mp->park);
	run_timers();
}

void goro__m_sleep(struct goro_m *mp)
{
	struct goro__iom *iom = mp->ring, *none = NULL;
	int64_t t0 = goro__nanotime(), deadline = -1;
	uint32_t kind;
	bool role;

	if (!iom) {
		sleep_placeholder(mp);
		return;
	}
	/* 1. Spin: a wake-up often follows within microseconds. */
	do {
		if (load_relaxed(&iom->pending))
			goto out;
		if (iom->ring && mp->io_kflags &&
		    (load_relaxed(mp->io_kflags) & mp->io_kflags_mask))
			break;
		cpu_relax();
	} while (goro__nanotime() - t0 < SPIN_NS);

	role = atomic_compare_exchange_strong(&sleeper, &none, iom);
	if (iom->ring)
		kind = SLEEP_KERNEL;
	else if (goro__io_kind == GORO_IO_EPOLL && role)
		kind = SLEEP_KERNEL;
	else
		kind = SLEEP_FUTEX;
	if (role && kind != SLEEP_KERNEL) {
		/* Only a kernel sleeper can be kicked for a new timer. */
		atomic_store(&sleeper, NULL);
		role = false;
	}
	/* 2-3. StoreLoad against goro__m_wakeup's exchange of pending. */
	atomic_store(&iom->sleeping, kind);
	if (!atomic_load(&iom->pending)) {
		if (role)
			deadline = publish_deadline();
		if (iom->ring) {
			goro__ring_wait(iom, deadline);
		} else if (kind == SLEEP_KERNEL) {
			int ms = -1;
			if (deadline >= 0) {
				int64_t ns = deadline - goro__nanotime();
				ms = ns <= 0 ? 0 : (int)((ns + 999999) / 1000000);
			}
			netpoll(ms);
		} else {
			goro__futex_wait(&iom->pending, 0, -1);
		}
	}
	atomic_store(&iom->sleeping, SLEEP_NONE);
	if (role) {
		atomic_store(&sleeper_when, INT64_MAX);
		atomic_store(&sleeper, NULL);
	}
	run_timers();
out:
	atomic_store(&iom->pending, 0);
}
