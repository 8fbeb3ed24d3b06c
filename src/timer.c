/*
 * timer.c: one-shot timers (sleep, deadlines, select and mutex timeouts).
 *
 * One binary heap under one lock: timers are started and stopped far
 * less often than Gs switch, and a per-P heap would need work stealing
 * of timers too.  Any M's scheduling round runs the timers that are due
 * (goro__poll_nonblock); an idle M, "the timer sleeper" of netpoll.c,
 * sleeps with the earliest deadline as its timeout.  goro__timer_start
 * that makes a new earliest timer calls goro__io_timer_changed, which
 * kicks that sleeper if it would sleep past the new deadline, or wakes
 * an idle P if nobody sleeps (see "Timers" in netpoll.c for the
 * StoreLoad pairing on timers.next).
 *
 * A timer's function runs on some M's scheduler path with no lock held;
 * after it returns timer.c does not touch the timer again (its memory
 * may be gone: goro_sleep's timer lives on the sleeping G's stack).
 *
 * Lock order: pdesc.lock (netpoll.c) < timers.lock < sched.lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"
#include "io.h"

enum { T_IDLE, T_QUEUED, T_FIRING };

static struct {
	struct goro__lock lock;		/* protects everything below */
	struct goro__timer **heap;
	int32_t n, cap;
	_Atomic int64_t next;		/* heap[0]->when or -1; read racily */
} timers = { .next = -1 };

static void swap(int32_t a, int32_t b)
{
	struct goro__timer *t = timers.heap[a];
	timers.heap[a] = timers.heap[b];
	timers.heap[b] = t;
	timers.heap[a]->idx = a;
	timers.heap[b]->idx = b;
}

static void up(int32_t i)
{
	while (i > 0) {
		int32_t p = (i - 1) / 2;
		if (timers.heap[p]->when <= timers.heap[i]->when)
			break;
		swap(i, p);
		i = p;
	}
}

static void down(int32_t i)
{
	for (;;) {
		int32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < timers.n && timers.heap[l]->when < timers.heap[m]->when)
			m = l;
		if (r < timers.n && timers.heap[r]->when < timers.heap[m]->when)
			m = r;
		if (m == i)
			break;
		swap(i, m);
		i = m;
	}
}

static void remove_at(int32_t i)
{
	int32_t last = --timers.n;
	if (i != last) {
		swap(i, last);
		down(i);
		up(i);
	}
	timers.heap[last]->idx = -1;
	store_relaxed(&timers.next, timers.n ? timers.heap[0]->when : -1);
}

void goro__timer_init(struct goro__timer *t, void (*fn)(struct goro__timer *), void *arg)
{
	t->fn = fn;
	t->arg = arg;
	t->idx = -1;
	atomic_store(&t->state, T_IDLE);
}

void goro__timer_start(struct goro__timer *t, int64_t when)
{
	bool earliest;
	goro__lock(&timers.lock);
	if (timers.n == timers.cap) {
		int32_t cap = timers.cap ? timers.cap * 2 : 64;
		struct goro__timer **h = realloc(timers.heap, sizeof *h * (size_t)cap);
		if (!h)
			goro__throw("out of memory for timers");
		timers.heap = h;
		timers.cap = cap;
	}
	t->when = when;
	t->idx = timers.n++;
	timers.heap[t->idx] = t;
	atomic_store(&t->state, T_QUEUED);
	up(t->idx);
	earliest = timers.heap[0] == t;
	store_relaxed(&timers.next, timers.heap[0]->when);
	goro__unlock(&timers.lock);
	if (earliest)
		goro__io_timer_changed(when);
}

bool goro__timer_stop(struct goro__timer *t)
{
	bool stopped = false;
	goro__lock(&timers.lock);
	if (atomic_load(&t->state) == T_QUEUED) {
		remove_at(t->idx);
		atomic_store(&t->state, T_IDLE);
		stopped = true;
	}
	goro__unlock(&timers.lock);
	return stopped;
}

int64_t goro__timers_next(void)
{
	return load_relaxed(&timers.next);
}

int64_t goro__timers_run(int64_t now)
{
	int64_t next;
	for (;;) {
		struct goro__timer *t;
		goro__lock(&timers.lock);
		if (timers.n == 0 || timers.heap[0]->when > now) {
			next = timers.n ? timers.heap[0]->when : -1;
			goro__unlock(&timers.lock);
			return next;
		}
		t = timers.heap[0];
		remove_at(0);
		atomic_store(&t->state, T_FIRING);
		goro__unlock(&timers.lock);
		t->fn(t);	/* after this, t may be gone */
	}
}

static void sleep_wake(struct goro__timer *t)
{
	goro__ready(t->arg);
}

static bool sleep_arm(struct goro_g *gp, void *arg)
{
	struct goro__timer *t = arg;
	(void)gp;
	goro__timer_start(t, t->when);
	return true;
}

int goro_sleep(int64_t ns)
{
	struct goro_g *gp = goro__g_self();
	struct goro__timer t;

	if (ns < 0)
		return -EINVAL;
	if (!gp) {
		struct timespec ts = { ns / 1000000000, ns % 1000000000 };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		return 0;
	}
	goro__timer_init(&t, sleep_wake, gp);
	/* The timer may fire before the G is parked: goro__park's unlockf
	 * runs after the switch, so start it there. */
	t.when = goro__nanotime() + ns;
	goro__park(WAIT_SLEEP, sleep_arm, &t);
	return 0;
}

void goro__timers_reset(void)
{
	goro__lock(&timers.lock);
	for (int32_t i = 0; i < timers.n; i++) {
		timers.heap[i]->idx = -1;
		atomic_store(&timers.heap[i]->state, T_IDLE);
	}
	timers.n = 0;
	store_relaxed(&timers.next, -1);
	goro__unlock(&timers.lock);
}
