/*
 * sync.c: G-aware synchronization (Go's package sync).
 *
 * Every primitive parks the G, never the M, and also works from plain
 * threads (which sleep on a futex).  Built on struct goro__waiter
 * (internal.h): a waiter record on the waiting side's stack, queued under
 * the primitive's own goro__lock and woken after that lock is released
 * (the record stays valid until the wake-up: its owner sleeps until then).
 *
 * "Mutex protocol"
 *
 * The problem.  A mutex must be cheap when uncontended (one CAS to lock,
 * one to unlock), must not stall the M when contended, and must not let a
 * waiter be bypassed for ever by Gs that keep re-taking it.
 *
 * Rejected approaches.
 *   - Always hand the mutex to the oldest waiter (a FIFO ticket lock):
 *     fair, but every contended unlock then costs a full park/ready round
 *     trip before anyone can run the critical section, and a running G
 *     that could take the mutex at once must sleep instead.
 *   - Always let newcomers barge: fastest, but a parked waiter, which
 *     needs to be scheduled before it can try again, can lose every race
 *     against a G that unlocks and relocks in a loop.
 *
 * The chosen approach (Go's sync.Mutex).  The state word holds LOCKED,
 * STARVING and WAITERS (the queue is not empty).  Only the holder clears
 * LOCKED; STARVING and WAITERS change only under m->lock.
 *   1. Lock: CAS 0 -> LOCKED.  Otherwise, in normal mode, spin a little
 *      (only with more than one P), trying to take the mutex when it is
 *      free.  Then take m->lock and, by one CAS on the state, either take
 *      the mutex (still free, not starving) or publish WAITERS (and
 *      STARVING, see 4) while LOCKED is set, and park on the queue.  That
 *      CAS is what an unlocker's CAS competes with: an unlock that lands
 *      first makes ours fail and we retry; one that lands after sees
 *      WAITERS and takes the slow path, which needs m->lock, which we
 *      hold until we are parked.  No wake-up is lost.
 *   2. Unlock, normal mode: clear LOCKED, pop the oldest waiter and wake
 *      it; it competes again (newcomers may win: barging).
 *   3. Unlock, starvation mode: pop the oldest waiter and hand it the
 *      mutex without clearing LOCKED (w->done = HANDOFF).  Newcomers never
 *      spin or barge in this mode; they queue at the tail.
 *   4. A woken waiter that loses again and has waited more than
 *      STARVE_NS since its first attempt re-queues at the head and sets
 *      STARVING (with LOCKED set, so the holder's unlock will hand off).
 *      The mode ends when a hand-off leaves the queue empty or goes to a
 *      waiter that waited less than STARVE_NS.
 *
 * The other primitives (rwlock, cond, sema, once) keep all their state
 * under their goro__lock: they are not on anyone's fast path yet.
 *
 * Lock order: cond.lock < mutex.lock (goro_cond_wait unlocks the mutex
 * while queued on the cond) < the scheduler's locks (goro__ready).
 */
#include <errno.h>

#include "internal.h"

/* ---- FIFO queues of waiters (the owner's goro__lock held) ------------ */

struct wq {
	struct goro__waiter *head, *tail;
};

static void wq_push(struct wq *q, struct goro__waiter *w)
{
	w->next = NULL;
	w->prev = q->tail;
	if (q->tail)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
}

static void wq_push_front(struct wq *q, struct goro__waiter *w)
{
	w->prev = NULL;
	w->next = q->head;
	if (q->head)
		q->head->prev = w;
	else
		q->tail = w;
	q->head = w;
}

static struct goro__waiter *wq_pop(struct wq *q)
{
	struct goro__waiter *w = q->head;

	if (w) {
		q->head = w->next;
		if (q->head)
			q->head->prev = NULL;
		else
			q->tail = NULL;
		w->next = w->prev = NULL;
	}
	return w;
}

/* Wakes a chain linked through next (taken off a queue under its lock;
 * woken after the unlock).  Each waiter may be gone once woken. */
static void wake_chain(struct goro__waiter *w)
{
	while (w) {
		struct goro__waiter *next = w->next;
		goro__waiter_wake(w);
		w = next;
	}
}

/* ---- WaitGroup ---------------------------------------------------- */

struct wg {
	struct goro__lock lock;		/* protects count and waiters */
	uint32_t pad;
	int64_t count;
	struct goro__waiter *waiters;	/* singly linked through next */
	uint64_t spare;
};
GORO_STATIC_ASSERT(sizeof(struct wg) <= sizeof(struct goro_wg), "wg fits");

int goro_wg_add(struct goro_wg *wgp, int64_t delta)
{
	struct wg *wg = (struct wg *)wgp;
	struct goro__waiter *list = NULL;

	if (!wg)
		return -EINVAL;
	goro__lock(&wg->lock);
	if (wg->count + delta < 0) {
		goro__unlock(&wg->lock);
		return -EINVAL;
	}
	wg->count += delta;
	if (wg->count == 0) {
		list = wg->waiters;
		wg->waiters = NULL;
	}
	goro__unlock(&wg->lock);
	while (list) {
		struct goro__waiter *next = list->next;
		goro__waiter_wake(list);	/* list may be gone after this */
		list = next;
	}
	return 0;
}

int goro_wg_done(struct goro_wg *wg)
{
	return goro_wg_add(wg, -1);
}

int goro_wg_wait(struct goro_wg *wgp)
{
	struct wg *wg = (struct wg *)wgp;
	struct goro__waiter w;

	if (!wg)
		return -EINVAL;
	goro__lock(&wg->lock);
	if (wg->count == 0) {
		goro__unlock(&wg->lock);
		return 0;
	}
	goro__waiter_init(&w);
	w.next = wg->waiters;
	wg->waiters = &w;
	goro__waiter_wait(&w, &wg->lock, WAIT_WG);
	return 0;
}

/* ---- Mutex (see "Mutex protocol" above) ---------------------------- */

enum {
	M_LOCKED = 1u << 0,
	M_STARVING = 1u << 1,
	M_WAITERS = 1u << 2,
};
/* w->done of a mutex waiter, set by the unlocker before the wake-up. */
enum { MW_WOKEN = 1, MW_HANDOFF = 2 };
#define STARVE_NS	1000000		/* Go's starvationThresholdNs */
#define SPIN_ROUNDS	4
#define SPIN_PAUSES	30

struct mutex {
	/* LOCKED is set and cleared by CAS/fetch_and by the holder or a
	 * taker; STARVING and WAITERS change only under `lock`. */
	_Atomic uint32_t state;
	struct goro__lock lock;		/* protects q */
	struct wq q;			/* waiters, oldest first */
	uint64_t spare;
};
GORO_STATIC_ASSERT(sizeof(struct mutex) <= sizeof(struct goro_mutex),
		   "mutex fits");

/* Times a mutex entered starvation mode, process-wide (a test hook). */
static _Atomic uint64_t starve_entries;

uint64_t goro__mutex_starve_count(void)
{
	return atomic_load(&starve_entries);
}

static int mutex_lock_slow(struct mutex *m)
{
	struct goro__waiter w;
	int64_t start = 0;
	bool requeue = false, starve = false;
	int spins = 0;

	for (;;) {
		uint32_t s = atomic_load(&m->state);

		if (!(s & (M_LOCKED | M_STARVING))) {
			if (atomic_compare_exchange_weak(&m->state, &s, s | M_LOCKED))
				return 0;
			continue;
		}
		if (!(s & M_STARVING) && spins < SPIN_ROUNDS &&
		    goro__sched.nprocs > 1) {
			spins++;
			for (int i = 0; i < SPIN_PAUSES; i++)
				goro__cpu_relax();
			continue;
		}
		if (!start)
			start = goro__nanotime();
		goro__lock(&m->lock);
		for (;;) {
			uint32_t n;

			s = atomic_load(&m->state);
			if (!(s & M_LOCKED)) {
				/* Free: STARVING is never set without LOCKED. */
				n = s | M_LOCKED;
				if (!m->q.head)
					n &= ~M_WAITERS;
				if (atomic_compare_exchange_weak(&m->state, &s, n)) {
					goro__unlock(&m->lock);
					return 0;
				}
				continue;
			}
			n = s | M_WAITERS | (starve ? M_STARVING : 0);
			if (atomic_compare_exchange_weak(&m->state, &s, n)) {
				if (!(s & M_STARVING) && (n & M_STARVING))
					atomic_fetch_add(&starve_entries, 1);
				break;
			}
		}
		goro__waiter_init(&w);
		w.ticket = start;
		/* A waiter that was woken and lost goes back to the front. */
		if (requeue)
			wq_push_front(&m->q, &w);
		else
			wq_push(&m->q, &w);
		goro__waiter_wait(&w, &m->lock, WAIT_MUTEX);
		if (atomic_load(&w.done) == MW_HANDOFF)
			return 0;
		requeue = true;
		starve = goro__nanotime() - start > STARVE_NS;
		spins = 0;
	}
}

int goro_mutex_lock(struct goro_mutex *mp)
{
	struct mutex *m = (struct mutex *)mp;
	uint32_t zero = 0;

	if (!m)
		return -EINVAL;
	if (goro_likely(atomic_compare_exchange_strong(&m->state, &zero,
						       M_LOCKED)))
		return 0;
	return mutex_lock_slow(m);
}

int goro_mutex_trylock(struct goro_mutex *mp)
{
	struct mutex *m = (struct mutex *)mp;
	uint32_t s;

	if (!m)
		return -EINVAL;
	s = atomic_load(&m->state);
	while (!(s & (M_LOCKED | M_STARVING)))
		if (atomic_compare_exchange_weak(&m->state, &s, s | M_LOCKED))
			return 0;
	return -EBUSY;
}

int goro_mutex_unlock(struct goro_mutex *mp)
{
	struct mutex *m = (struct mutex *)mp;
	struct goro__waiter *w;
	uint32_t s = M_LOCKED;

	if (!m)
		return -EINVAL;
	if (goro_likely(atomic_compare_exchange_strong(&m->state, &s, 0)))
		return 0;
	if (!(s & M_LOCKED))
		return -EPERM;
	goro__lock(&m->lock);
	s = atomic_load(&m->state);
	w = wq_pop(&m->q);
	if ((s & M_STARVING) && w) {
		/* Keep LOCKED: the mutex goes to w. */
		if (!m->q.head)
			atomic_fetch_and(&m->state, ~(M_STARVING | M_WAITERS));
		else if (goro__nanotime() - w->ticket < STARVE_NS)
			atomic_fetch_and(&m->state, ~M_STARVING);
		atomic_store(&w->done, MW_HANDOFF);
	} else {
		if (s & M_STARVING)
			goro__throw("sync: starving mutex without waiters");
		atomic_fetch_and(&m->state,
				 ~(M_LOCKED | (m->q.head ? 0 : M_WAITERS)));
		if (w)
			atomic_store(&w->done, MW_WOKEN);
	}
	goro__unlock(&m->lock);
	if (w)
		goro__waiter_wake(w);
	return 0;
}

static bool mutex_locked(struct goro_mutex *mp)
{
	return atomic_load(&((struct mutex *)mp)->state) & M_LOCKED;
}

/* ---- RWLock -------------------------------------------------------- */

struct rwlock {
	struct goro__lock lock;		/* protects everything below */
	uint32_t writer;		/* a writer holds it */
	int64_t readers;		/* readers holding it */
	struct wq rq, wq;		/* waiting readers and writers */
	uint64_t spare[2];
};
GORO_STATIC_ASSERT(sizeof(struct rwlock) <= sizeof(struct goro_rwlock),
		   "rwlock fits");

/* A waiter on an rwlock is woken only once granted what it asked for. */

int goro_rwlock_rdlock(struct goro_rwlock *rwp)
{
	struct rwlock *rw = (struct rwlock *)rwp;
	struct goro__waiter w;

	if (!rw)
		return -EINVAL;
	goro__lock(&rw->lock);
	if (!rw->writer && !rw->wq.head) {
		rw->readers++;
		goro__unlock(&rw->lock);
		return 0;
	}
	goro__waiter_init(&w);
	wq_push(&rw->rq, &w);
	goro__waiter_wait(&w, &rw->lock, WAIT_RWLOCK);
	return 0;
}

int goro_rwlock_tryrdlock(struct goro_rwlock *rwp)
{
	struct rwlock *rw = (struct rwlock *)rwp;
	int ret = -EBUSY;

	if (!rw)
		return -EINVAL;
	goro__lock(&rw->lock);
	if (!rw->writer && !rw->wq.head) {
		rw->readers++;
		ret = 0;
	}
	goro__unlock(&rw->lock);
	return ret;
}

int goro_rwlock_wrlock(struct goro_rwlock *rwp)
{
	struct rwlock *rw = (struct rwlock *)rwp;
	struct goro__waiter w;

	if (!rw)
		return -EINVAL;
	goro__lock(&rw->lock);
	if (!rw->writer && rw->readers == 0) {
		rw->writer = 1;
		goro__unlock(&rw->lock);
		return 0;
	}
	goro__waiter_init(&w);
	wq_push(&rw->wq, &w);
	goro__waiter_wait(&w, &rw->lock, WAIT_RWLOCK);
	return 0;
}

int goro_rwlock_trywrlock(struct goro_rwlock *rwp)
{
	struct rwlock *rw = (struct rwlock *)rwp;
	int ret = -EBUSY;

	if (!rw)
		return -EINVAL;
	goro__lock(&rw->lock);
	if (!rw->writer && rw->readers == 0) {
		rw->writer = 1;
		ret = 0;
	}
	goro__unlock(&rw->lock);
	return ret;
}

int goro_rwlock_rdunlock(struct goro_rwlock *rwp)
{
	struct rwlock *rw = (struct rwlock *)rwp;
	struct goro__waiter *w = NULL;

	if (!rw)
		return -EINVAL;
	goro__lock(&rw->lock);
	if (rw->readers <= 0) {
		goro__unlock(&rw->lock);
		return -EPERM;
	}
	if (--rw->readers == 0 && (w = wq_pop(&rw->wq)))
		rw->writer = 1;		/* granted to w */
	goro__unlock(&rw->lock);
	wake_chain(w);
	return 0;
}

int goro_rwlock_wrunlock(struct goro_rwlock *rwp)
{
	struct rwlock *rw = (struct rwlock *)rwp;
	struct goro__waiter *list = NULL, *w;

	if (!rw)
		return -EINVAL;
	goro__lock(&rw->lock);
	if (!rw->writer) {
		goro__unlock(&rw->lock);
		return -EPERM;
	}
	rw->writer = 0;
	if (rw->rq.head) {
		/* Admit every reader waiting now, ahead of the next writer. */
		list = rw->rq.head;
		for (w = list; w; w = w->next)
			rw->readers++;
		rw->rq.head = rw->rq.tail = NULL;
	} else if ((list = wq_pop(&rw->wq))) {
		rw->writer = 1;
	}
	goro__unlock(&rw->lock);
	wake_chain(list);
	return 0;
}

/* ---- Condition variable -------------------------------------------- */

struct cond {
	struct goro__lock lock;		/* protects q */
	uint32_t pad;
	struct wq q;
	uint64_t spare;
};
GORO_STATIC_ASSERT(sizeof(struct cond) <= sizeof(struct goro_cond), "cond fits");

int goro_cond_wait(struct goro_cond *cp, struct goro_mutex *m)
{
	struct cond *c = (struct cond *)cp;
	struct goro__waiter w;
	int ret;

	if (!c || !m)
		return -EINVAL;
	if (!mutex_locked(m))
		return -EPERM;
	goro__lock(&c->lock);
	goro__waiter_init(&w);
	wq_push(&c->q, &w);
	/* Queued before the mutex is released, so a signal sent by whoever
	 * takes the mutex next finds us. */
	ret = goro_mutex_unlock(m);
	if (ret < 0) {
		goro__throw("sync: cond mutex unlocked under us");
	}
	goro__waiter_wait(&w, &c->lock, WAIT_COND);
	return goro_mutex_lock(m);
}

int goro_cond_signal(struct goro_cond *cp)
{
	struct cond *c = (struct cond *)cp;
	struct goro__waiter *w;

	if (!c)
		return -EINVAL;
	goro__lock(&c->lock);
	w = wq_pop(&c->q);
	goro__unlock(&c->lock);
	wake_chain(w);
	return 0;
}

int goro_cond_broadcast(struct goro_cond *cp)
{
	struct cond *c = (struct cond *)cp;
	struct goro__waiter *list;

	if (!c)
		return -EINVAL;
	goro__lock(&c->lock);
	list = c->q.head;
	c->q.head = c->q.tail = NULL;
	goro__unlock(&c->lock);
	wake_chain(list);
	return 0;
}

/* ---- Counting semaphore -------------------------------------------- */

struct sema {
	struct goro__lock lock;		/* protects everything below */
	uint32_t pad;
	int64_t count;
	struct wq q;			/* a waiter is woken once granted */
};
GORO_STATIC_ASSERT(sizeof(struct sema) <= sizeof(struct goro_sema), "sema fits");

int goro_sema_init(struct goro_sema *sp, int64_t count)
{
	struct sema *s = (struct sema *)sp;

	if (!s || count < 0)
		return -EINVAL;
	goro__lock(&s->lock);
	s->count = count;
	goro__unlock(&s->lock);
	return 0;
}

int goro_sema_acquire(struct goro_sema *sp)
{
	struct sema *s = (struct sema *)sp;
	struct goro__waiter w;

	if (!s)
		return -EINVAL;
	goro__lock(&s->lock);
	if (s->count > 0 && !s->q.head) {
		s->count--;
		goro__unlock(&s->lock);
		return 0;
	}
	goro__waiter_init(&w);
	wq_push(&s->q, &w);
	goro__waiter_wait(&w, &s->lock, WAIT_SEMA);
	return 0;
}

int goro_sema_try_acquire(struct goro_sema *sp)
{
	struct sema *s = (struct sema *)sp;
	int ret = -EAGAIN;

	if (!s)
		return -EINVAL;
	goro__lock(&s->lock);
	if (s->count > 0 && !s->q.head) {
		s->count--;
		ret = 0;
	}
	goro__unlock(&s->lock);
	return ret;
}

int goro_sema_release(struct goro_sema *sp)
{
	struct sema *s = (struct sema *)sp;
	struct goro__waiter *w;

	if (!s)
		return -EINVAL;
	goro__lock(&s->lock);
	w = wq_pop(&s->q);	/* the unit goes straight to w */
	if (!w)
		s->count++;
	goro__unlock(&s->lock);
	wake_chain(w);
	return 0;
}

/* ---- Once ---------------------------------------------------------- */

enum { ONCE_NEW = 0, ONCE_RUNNING, ONCE_DONE };

struct once {
	_Atomic uint32_t state;		/* release-stored ONCE_DONE after fn */
	struct goro__lock lock;		/* protects the transitions and q */
	struct wq q;			/* waiting for the first run */
	uint64_t spare;
};
GORO_STATIC_ASSERT(sizeof(struct once) <= sizeof(struct goro_once), "once fits");

int goro_once(struct goro_once *op, void (*fn)(void *), void *arg)
{
	struct once *o = (struct once *)op;
	struct goro__waiter w, *list;

	if (!o || !fn)
		return -EINVAL;
	if (goro_likely(load_acquire(&o->state) == ONCE_DONE))
		return 0;
	goro__lock(&o->lock);
	switch (atomic_load(&o->state)) {
	case ONCE_DONE:
		goro__unlock(&o->lock);
		return 0;
	case ONCE_RUNNING:
		goro__waiter_init(&w);
		wq_push(&o->q, &w);
		goro__waiter_wait(&w, &o->lock, WAIT_ONCE);
		return 0;
	}
	atomic_store(&o->state, ONCE_RUNNING);
	goro__unlock(&o->lock);
	fn(arg);
	goro__lock(&o->lock);
	store_release(&o->state, ONCE_DONE);
	list = o->q.head;
	o->q.head = o->q.tail = NULL;
	goro__unlock(&o->lock);
	wake_chain(list);
	return 0;
}
