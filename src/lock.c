/*
 * lock.c: the runtime's own low-level locks, built on futex(2).
 *
 * Lock order (a < b means a may be held while b is taken, never the
 * reverse).  Every lock not listed here is a leaf: nothing else is taken
 * while it is held.
 *
 *   g->jlock, chan/sync object locks  <  sched.lock
 *   sched.lock  <  sched.gflock, timers.lock (timer.c), arena.lock (stack.c)
 *
 * None of these locks is ever held across a G switch, except that
 * goro__park releases the lock its caller passes it, after the switch
 * (see "Parking" in sched.c).
 *
 * goro__lock is the three-state futex mutex: 0 unlocked, 1 locked,
 * 2 locked and maybe someone sleeps.  A locker first spins a little
 * (critical sections are a few dozen instructions and the cross-CPU
 * wake-up on this kind of VM costs tens of microseconds; see
 * kernel-notes/futex.md), then marks the word 2 and sleeps.  The unlocker
 * wakes one sleeper only if the word was 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SPIN_TRIES 100

/* The futex calls preserve errno: they run inside goro_ calls, which
 * promise never to change it (a contended lock's EAGAIN must not leak). */
int goro__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t ns)
{
	struct timespec ts, *tsp = NULL;
	int saved = errno, r = 0;

	if (ns >= 0) {
		ts.tv_sec = ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		tsp = &ts;
	}
	if (syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0) < 0)
		r = -errno;
	errno = saved;
	return r;
}

int goro__futex_wake(_Atomic uint32_t *addr, int n)
{
	int saved = errno;
	long r = syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);

	if (r < 0)
		r = -errno;
	errno = saved;
	return (int)r;
}

void goro__lock(struct goro__lock *l)
{
	uint32_t c = 0;

	if (atomic_compare_exchange_strong_explicit(&l->state, &c, 1,
			memory_order_acquire, memory_order_relaxed))
		return;
	for (int i = 0; i < SPIN_TRIES; i++) {
		goro__cpu_relax();
		c = load_relaxed(&l->state);
		if (c == 0 && atomic_compare_exchange_weak_explicit(&l->state,
				&c, 1, memory_order_acquire, memory_order_relaxed))
			return;
	}
	/* Slow path: announce a sleeper (2) and sleep until we take it. */
	while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
		goro__futex_wait(&l->state, 2, -1);
}

void goro__unlock(struct goro__lock *l)
{
	if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2)
		goro__futex_wake(&l->state, 1);
}

bool goro__lock_held(struct goro__lock *l)
{
	return load_relaxed(&l->state) != 0;
}

/*
 * Notes: key 0 = clear, 1 = woken.  The sleeper waits while key is 0; the
 * waker stores 1 and wakes.  A wakeup before the sleep makes the sleep
 * return at once.
 */
void goro__note_clear(struct goro__note *n)
{
	store_relaxed(&n->key, 0);
}

void goro__note_sleep(struct goro__note *n)
{
	while (load_acquire(&n->key) == 0)
		goro__futex_wait(&n->key, 0, -1);
}

bool goro__note_sleep_ns(struct goro__note *n, int64_t ns)
{
	int64_t deadline = goro__nanotime() + ns;
	while (load_acquire(&n->key) == 0) {
		int64_t left = deadline - goro__nanotime();
		if (left <= 0)
			return false;
		goro__futex_wait(&n->key, 0, left);
	}
	return true;
}

void goro__note_wakeup(struct goro__note *n)
{
	if (atomic_exchange_explicit(&n->key, 1, memory_order_release) == 0)
		goro__futex_wake(&n->key, 1);
}

int64_t goro__nanotime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
