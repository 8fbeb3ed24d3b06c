/*
 * sched.c: the goro scheduler.
 *
 * Design
 * ======
 *
 * Vocabulary, as in Go's runtime/proc.go:
 *   G  a goroutine (struct goro_g): a C function on its own stack.
 *   M  a worker thread (struct goro_m).  It runs Gs, one at a time, by
 *      switching stacks (context_<arch>.S); its own thread stack is "g0",
 *      where the scheduler loop below runs.
 *   P  a processor (struct goro_p): the right to run Gs.  There are
 *      GORO_MAXPROCS Ps; an M must hold one to run Gs.  A P carries the
 *      local run queue and a cache of free Gs.
 *   Sched  the one central struct (goro__sched): the global run queue,
 *      the idle Ms and Ps, the spinning count, shutdown.
 *
 * The problem.  Run any number of Gs on a few threads, keep every CPU
 * busy when there is work, never let a G starve, and make the common
 * operations (spawn, yield, park, ready) cost tens of nanoseconds, not a
 * syscall.  C stacks cannot move, so a G keeps its stack for life (stack.c
 * reserves it as address space and the kernel fills it lazily).
 *
 * Rejected: one run queue under one lock (every spawn and ready contends
 * on it: Go's "rejected approach #1"); a thread per G (not cheap); an
 * M-per-CPU with no P (then an M blocked in a call holds its queue
 * hostage: the blocking hand-off below needs the queue to move between
 * threads, which is what P is for).
 *
 * Chosen: Go's design, slightly smaller.  Each P has a bounded lock-free
 * run queue plus a runnext slot; Sched has a global queue under
 * sched.lock for overflow and for threads without a P; idle Ms steal half
 * of a random victim's queue; and a central Sched holds what must be
 * global.  The Sched is central (one lock), which is fine here because
 * the lock is only taken off the fast path: on queue overflow, when an M
 * runs dry, every 61 schedules, and when Ms go idle or wake.  Sharding it
 * would mean per-NUMA-node global queues and idle lists; nothing in this
 * file assumes there is only one besides the `sched` macro.
 *
 * Run queues
 * ----------
 * pp->runq is a ring of GORO_RUNQ_SIZE slots.  Only the owning M appends
 * (stores runq[tail], then store-release runqtail).  Any M may take from
 * the head by reading the slot and CAS-ing runqhead forward; a thief takes
 * half at once (runqgrab).  A full queue moves half of itself plus the new
 * G to the global queue (runqputslow).  runnext holds the G most recently
 * made runnable by this P (a spawned or woken G), so that a producer and
 * its consumer run back to back; it is taken with a CAS.
 *
 * Fairness: every 61st schedule of a P looks at the global queue first, so
 * Gs there do not starve behind a busy local queue; a yielding G goes to
 * the back of the local queue; the I/O poller runs every scheduling round
 * that has something to poll (see need_poll in internal.h).  There is no
 * preemption: a G that never yields, parks or calls into goro keeps its M.
 *
 * Switching
 * ---------
 * A G gives up its M in three ways: yield, park, exit.  In each, it
 * records what must happen to it (mp->after: AFTER_YIELD, AFTER_PARK,
 * AFTER_EXIT) and switches directly to the next G of its local queue, or to
 * g0 if there is none or the scheduler loop must run.  Whatever runs next
 * on that M calls after_switch() first, which carries out the request: only
 * then is the old G's context saved, so only then may it be put on a run
 * queue, made visible to wakers, or freed.  (A G cannot free its own
 * stack, nor publish itself before its registers are saved: another M
 * could resume it half-saved.)  A yield between two Gs is therefore one
 * register switch and two queue operations.
 *
 * After any switch the G may be on another M.  The current M lives in a
 * thread-local variable read only through goro__m_self(), which the
 * compiler cannot cache across calls (see m.c), and every function here
 * re-reads it after goro__ctx_switch returns.
 *
 * Parking (goro__park)
 * --------------------
 * 1. The G, holding the lock of the object it waits on, enqueues a waiter
 *    record and calls goro__park(reason, unlockf, lock).
 * 2. It switches away.  On the next context, after_switch() sets it
 *    G_WAITING and calls unlockf, which releases the lock.  From here a
 *    waker can find it.
 * 3. The waker takes the lock, dequeues the waiter, releases the lock and
 *    calls goro__ready(gp): G_WAITING -> G_RUNNABLE, onto the waker's
 *    runnext (or the global queue for a thread with no P), then wakep().
 * Because the status change and unlockf both run after the switch, a
 * waker never sees a G that is still running.  unlockf must not touch the
 * parked G's stack except through its argument.
 *
 * Spinning Ms and parking idle Ms
 * -------------------------------
 * We want all Ps busy when there is work, without waking a thread per
 * ready G (a cross-CPU wake-up costs tens of microseconds on these VMs)
 * and without ever losing a wake-up.  As in Go:
 *  - An M with a P but no work is "spinning": it looks through the global
 *    queue and the other Ps' queues (stealing).  sched.nmspinning counts
 *    them.
 *  - Whoever makes a G runnable calls wakep(): if there is an idle P and
 *    no spinning M, it sets nmspinning 0 -> 1 and starts (or wakes) one M
 *    with that P, in spinning mode.  If an M is already spinning, it will
 *    find the G, so nobody else is woken: no thundering herd.
 *  - A spinning M that finds work stops spinning and calls wakep() again,
 *    so that one spinner stays while work may remain.
 *  - A spinning M that finds nothing gives back its P, decrements
 *    nmspinning, and THEN looks at every P's queue once more; if one is
 *    non-empty it takes an idle P and spins again.  The submitter does the
 *    mirror image: put the G on a queue, THEN read nmspinning in wakep().
 *    Both sides are "store, full fence, load" (StoreLoad; the seq_cst
 *    fences are named in the code), so either the spinner sees the new G
 *    or the submitter sees nmspinning == 0 and wakes someone.  No lost
 *    wake-up.
 *  - An M with nothing left sleeps in goro__m_sleep (a futex note, or its
 *    io_uring when it has I/O in flight) on sched.midle; startm() takes it
 *    off the list, hands it a P through mp->nextp under sched.lock, and
 *    wakes it.
 *
 * Blocking hand-off (goro_block) and sysmon
 * -----------------------------------------
 * goro__enter_block marks the P P_SYSCALL and the M in_block, and runs the
 * call on the M's thread.  sysmon, a monitor thread, retakes a P that has
 * been in P_SYSCALL for more than 20 µs (CAS P_SYSCALL -> P_IDLE) and
 * hands it to another M (started if needed, up to sched.maxmcount), which
 * runs the queued Gs.  When the call returns, goro__exit_block CASes the P
 * back to P_RUNNING if it is still there (the common, cheap case);
 * otherwise it takes any idle P; otherwise it puts the G on the global
 * queue and the M goes idle.  Between the two calls the P must not be
 * touched by the blocked M (mp->in_block), since sysmon may own it.
 *
 * G states are documented in internal.h (enum goro__gstatus), M and P
 * fields there too, each with its lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "sanitizer.h"

#define sched goro__sched
struct goro_sched goro__sched;

const char *const goro__wait_reason_str[WAIT_REASON_COUNT] = {
	[WAIT_NONE] = "none",
	[WAIT_JOIN] = "join",
	[WAIT_WG] = "wait group",
	[WAIT_CHAN_SEND] = "chan send",
	[WAIT_CHAN_RECV] = "chan receive",
	[WAIT_SELECT] = "select",
	[WAIT_MUTEX] = "mutex",
	[WAIT_RWLOCK] = "rwlock",
	[WAIT_COND] = "cond",
	[WAIT_SEMA] = "semaphore",
	[WAIT_ONCE] = "once",
	[WAIT_SLEEP] = "sleep",
	[WAIT_IO] = "io",
	[WAIT_BLOCK] = "block",
};

#define GLOBAL_CHECK_TICKS 61	/* look at the global queue every 61 schedules */
#define STEAL_TRIES 4
#define SYSMON_RETAKE_NS 20000	/* retake a P blocked this long */

/* Owner-only counters: a plain increment of an atomic, without a locked
 * read-modify-write (readers only need a recent value). */
#define count(field) store_relaxed(&(field), load_relaxed(&(field)) + 1)

static void after_switch(struct goro_m *mp);
static struct goro_g *runqget(struct goro_p *pp);

/* The P the caller may use, or NULL: a plain thread, or an M inside a
 * goro_block call (whose P sysmon may be taking). */
static inline struct goro_p *usable_p(struct goro_m *mp)
{
	return mp && !mp->in_block ? mp->p : NULL;
}

void goro__g_cas_status(struct goro_g *gp, uint32_t from, uint32_t to)
{
	uint32_t old = from;
	if (goro_unlikely(!atomic_compare_exchange_strong_explicit(&gp->status,
			&old, to, memory_order_acq_rel, memory_order_acquire))) {
		char buf[128];
		snprintf(buf, sizeof buf, "bad G status: G %llu is %u, expected %u (-> %u)",
			 (unsigned long long)gp->id, old, from, to);
		goro__throw(buf);
	}
}

/* ===================================================================== */
/*  Run queues                                                            */
/* ===================================================================== */

/* Puts the chain head..tail (n Gs) on the global queue; sched.lock must
 * be held. */
static void globrunqputbatch_locked(struct goro_g *head, struct goro_g *tail, uint32_t n)
{
	GORO_DEBUG_ASSERT(goro__lock_held(&sched.lock));
	tail->schedlink = NULL;
	if (sched.runqtail)
		sched.runqtail->schedlink = head;
	else
		sched.runqhead = head;
	sched.runqtail = tail;
	store_relaxed(&sched.runqsize, load_relaxed(&sched.runqsize) + n);
}

static void globrunqput_locked(struct goro_g *gp)
{
	globrunqputbatch_locked(gp, gp, 1);
}

static struct goro_g *globrunqpop_locked(void)
{
	struct goro_g *gp = sched.runqhead;
	if (gp) {
		sched.runqhead = gp->schedlink;
		if (!sched.runqhead)
			sched.runqtail = NULL;
		store_relaxed(&sched.runqsize, load_relaxed(&sched.runqsize) - 1);
	}
	return gp;
}

static bool runqput(struct goro_p *pp, struct goro_g *gp, bool next);

/* Takes a fair share of the global queue: returns one G and moves up to
 * max-1 more (0 = no limit but half a local queue) to pp's local queue.
 * sched.lock must be held. */
static struct goro_g *globrunqget_locked(struct goro_p *pp, uint32_t max)
{
	uint32_t size = load_relaxed(&sched.runqsize);
	uint32_t n;
	struct goro_g *gp;

	GORO_DEBUG_ASSERT(goro__lock_held(&sched.lock));
	if (size == 0)
		return NULL;
	n = size / sched.nprocs + 1;
	if (n > size)
		n = size;
	if (max > 0 && n > max)
		n = max;
	if (n > GORO_RUNQ_SIZE / 2)
		n = GORO_RUNQ_SIZE / 2;
	gp = globrunqpop_locked();
	while (--n > 0)
		runqput(pp, globrunqpop_locked(), false);
	return gp;
}

static bool runqempty(struct goro_p *pp)
{
	/* A G may be moving between runnext and the ring; read them in an
	 * order that cannot miss it (Go's runqempty): head, tail, runnext,
	 * then tail again. */
	for (;;) {
		uint32_t head = load_acquire(&pp->runqhead);
		uint32_t tail = load_acquire(&pp->runqtail);
		struct goro_g *next = load_acquire(&pp->runnext);
		if (tail == load_acquire(&pp->runqtail))
			return head == tail && next == NULL;
	}
}

static uint32_t runqsize(struct goro_p *pp)
{
	uint32_t head = load_acquire(&pp->runqhead);
	uint32_t tail = load_acquire(&pp->runqtail);
	return tail - head + (load_relaxed(&pp->runnext) ? 1 : 0);
}

/* Moves half of the full local queue, plus gp, to the global queue.
 * Owner only.  Returns false if a thief moved the head meanwhile. */
static bool runqputslow(struct goro_p *pp, struct goro_g *gp, uint32_t head, uint32_t tail)
{
	struct goro_g *batch[GORO_RUNQ_SIZE / 2 + 1];
	uint32_t n = (tail - head) / 2;

	GORO_ASSERT(n == GORO_RUNQ_SIZE / 2);
	for (uint32_t i = 0; i < n; i++)
		batch[i] = load_relaxed(&pp->runq[(head + i) % GORO_RUNQ_SIZE]);
	if (!atomic_compare_exchange_strong_explicit(&pp->runqhead, &head,
			head + n, memory_order_release, memory_order_relaxed))
		return false;
	batch[n] = gp;
	for (uint32_t i = 0; i < n; i++)
		batch[i]->schedlink = batch[i + 1];
	goro__lock(&sched.lock);
	globrunqputbatch_locked(batch[0], batch[n], n + 1);
	goro__unlock(&sched.lock);
	return true;
}

/* Puts gp on pp's local queue (owner only).  With next, gp goes to
 * runnext and the G it displaces to the tail.  Returns true if something
 * went to the global queue. */
static bool runqput(struct goro_p *pp, struct goro_g *gp, bool next)
{
	if (next) {
		gp = atomic_exchange_explicit(&pp->runnext, gp, memory_order_acq_rel);
		if (!gp)
			return false;
	}
	for (;;) {
		uint32_t head = load_acquire(&pp->runqhead);
		uint32_t tail = load_relaxed(&pp->runqtail);
		if (tail - head < GORO_RUNQ_SIZE) {
			store_relaxed(&pp->runq[tail % GORO_RUNQ_SIZE], gp);
			store_release(&pp->runqtail, tail + 1);	/* publish the slot */
			return false;
		}
		if (runqputslow(pp, gp, head, tail))
			return true;
	}
}

/* Takes the next G of pp's local queue (owner only): runnext first. */
static struct goro_g *runqget(struct goro_p *pp)
{
	struct goro_g *next = load_relaxed(&pp->runnext);
	if (next && atomic_compare_exchange_strong_explicit(&pp->runnext, &next,
			NULL, memory_order_acq_rel, memory_order_relaxed))
		return next;
	for (;;) {
		uint32_t head = load_acquire(&pp->runqhead);
		uint32_t tail = load_relaxed(&pp->runqtail);
		struct goro_g *gp;
		if (tail == head)
			return NULL;
		gp = load_relaxed(&pp->runq[head % GORO_RUNQ_SIZE]);
		if (atomic_compare_exchange_weak_explicit(&pp->runqhead, &head,
				head + 1, memory_order_release, memory_order_relaxed))
			return gp;
	}
}

/* Copies half of victim's queue into pp's ring starting at index `at`
 * (not yet published).  Returns how many were taken. */
static uint32_t runqgrab(struct goro_p *victim, struct goro_p *pp, uint32_t at, bool take_next)
{
	for (;;) {
		uint32_t head = load_acquire(&victim->runqhead);
		uint32_t tail = load_acquire(&victim->runqtail);
		uint32_t n = tail - head;
		n -= n / 2;
		if (n == 0) {
			struct goro_g *next;
			if (!take_next)
				return 0;
			next = load_acquire(&victim->runnext);
			if (!next)
				return 0;
			if (!atomic_compare_exchange_strong_explicit(&victim->runnext,
					&next, NULL, memory_order_acq_rel, memory_order_relaxed))
				continue;
			store_relaxed(&pp->runq[at % GORO_RUNQ_SIZE], next);
			return 1;
		}
		if (n > GORO_RUNQ_SIZE / 2)	/* read an inconsistent head/tail */
			continue;
		for (uint32_t i = 0; i < n; i++)
			store_relaxed(&pp->runq[(at + i) % GORO_RUNQ_SIZE],
				      load_relaxed(&victim->runq[(head + i) % GORO_RUNQ_SIZE]));
		if (atomic_compare_exchange_weak_explicit(&victim->runqhead, &head,
				head + n, memory_order_release, memory_order_relaxed))
			return n;
	}
}

/* Steals half of victim's Gs into pp; returns one to run, or NULL. */
static struct goro_g *runqsteal(struct goro_p *pp, struct goro_p *victim, bool take_next)
{
	uint32_t tail = load_relaxed(&pp->runqtail);
	uint32_t n = runqgrab(victim, pp, tail, take_next);
	struct goro_g *gp;

	if (n == 0)
		return NULL;
	n--;
	gp = load_relaxed(&pp->runq[(tail + n) % GORO_RUNQ_SIZE]);
	if (n > 0)
		store_release(&pp->runqtail, tail + n);
	count(pp->n_steals);
	return gp;
}

/* ===================================================================== */
/*  Idle Ps and Ms                                                        */
/* ===================================================================== */

static void pidleput_locked(struct goro_p *pp)
{
	GORO_DEBUG_ASSERT(goro__lock_held(&sched.lock));
	GORO_ASSERT(runqempty(pp));
	store_relaxed(&pp->status, P_IDLE);
	pp->m = NULL;
	pp->link = sched.pidle;
	sched.pidle = pp;
	atomic_fetch_add(&sched.npidle, 1);
}

static struct goro_p *pidleget_locked(void)
{
	struct goro_p *pp = sched.pidle;
	GORO_DEBUG_ASSERT(goro__lock_held(&sched.lock));
	if (pp) {
		sched.pidle = pp->link;
		atomic_fetch_sub(&sched.npidle, 1);
	}
	return pp;
}

static void acquirep(struct goro_m *mp, struct goro_p *pp)
{
	GORO_ASSERT(mp->p == NULL);
	pp->m = mp;
	store_release(&pp->status, P_RUNNING);
	mp->p = pp;
}

static void mput_locked(struct goro_m *mp)
{
	mp->schedlink = sched.midle;
	sched.midle = mp;
	atomic_fetch_add(&sched.nmidle, 1);
}

static struct goro_m *mget_locked(void)
{
	struct goro_m *mp = sched.midle;
	if (mp) {
		sched.midle = mp->schedlink;
		atomic_fetch_sub(&sched.nmidle, 1);
	}
	return mp;
}



/* Runs pp (or an idle P if pp is NULL) on an idle or new M.  With
 * spinning, the caller has already counted the M in nmspinning. */
static void startm(struct goro_p *pp, bool spinning)
{
	struct goro_m *mp;

	goro__lock(&sched.lock);
	if (!pp) {
		pp = pidleget_locked();
		if (!pp) {
			goro__unlock(&sched.lock);
			if (spinning)
				atomic_fetch_sub(&sched.nmspinning, 1);
			return;
		}
	}
	mp = mget_locked();
	if (mp) {
		mp->spinning = spinning;
		mp->nextp = pp;		/* read by stopm under sched.lock */
		goro__unlock(&sched.lock);
		goro__m_wakeup(mp);
		return;
	}
	goro__unlock(&sched.lock);
	if (goro__newm(pp, spinning) != 0) {
		/* No thread: move the P's Gs (a P handed off by sysmon may have
		 * some) to the global queue and give the P back; the running
		 * Ms, or the first one goro_init started, will get to them.
		 * This loses parallelism, not Gs. */
		struct goro_g *gp;
		goro__lock(&sched.lock);
		while ((gp = runqget(pp)) != NULL)
			globrunqput_locked(gp);
		pp->m = NULL;
		pidleput_locked(pp);
		goro__unlock(&sched.lock);
		if (spinning)
			atomic_fetch_sub(&sched.nmspinning, 1);
	}
}

void goro__wakep(void)
{
	uint32_t zero = 0;

	/* StoreLoad: the caller's store of a runnable G (a runq slot, the
	 * global queue, a timer) must be visible before we read nmspinning;
	 * pairs with the fence in findrunnable after nmspinning-- . */
	atomic_thread_fence(memory_order_seq_cst);
	if (load_relaxed(&sched.npidle) == 0 || load_relaxed(&sched.nmspinning) != 0)
		return;
	if (!atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1))
		return;
	startm(NULL, true);
}

static void resetspinning(struct goro_m *mp)
{
	mp->spinning = false;
	if (atomic_fetch_sub(&sched.nmspinning, 1) == 0)
		goro__throw("resetspinning: negative nmspinning");
	/* We found work; there may be more, so keep one spinner going. */
	goro__wakep();
}

/* Hands a P retaken from a blocked M to some M (Go's handoffp). */
static void handoffp(struct goro_p *pp)
{
	uint32_t zero = 0;

	if (!runqempty(pp) || load_relaxed(&sched.runqsize) != 0) {
		startm(pp, false);
		return;
	}
	if (load_relaxed(&sched.nmspinning) + load_relaxed(&sched.npidle) == 0 &&
	    atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1)) {
		startm(pp, true);
		return;
	}
	goro__lock(&sched.lock);
	if (load_relaxed(&sched.runqsize) != 0) {
		goro__unlock(&sched.lock);
		startm(pp, false);
		return;
	}
	pp->m = NULL;
	pidleput_locked(pp);
	goro__unlock(&sched.lock);
}

/* Puts mp to sleep on the idle list until startm hands it a P.  Returns
 * false at shutdown. */
static bool stopm(struct goro_m *mp)
{
	struct goro_p *pp;

	GORO_ASSERT(mp->p == NULL && !mp->spinning);
	goro__lock(&sched.lock);
	mput_locked(mp);
	for (;;) {
		if (mp->nextp) {
			pp = mp->nextp;
			mp->nextp = NULL;
			goro__unlock(&sched.lock);
			acquirep(mp, pp);
			return true;
		}
		if (load_relaxed(&sched.shutdown)) {
			/* Take ourselves off the idle list. */
			struct goro_m **pm = &sched.midle;
			while (*pm && *pm != mp)
				pm = &(*pm)->schedlink;
			if (*pm) {
				*pm = mp->schedlink;
				atomic_fetch_sub(&sched.nmidle, 1);
			}
			goro__unlock(&sched.lock);
			return false;
		}
		goro__unlock(&sched.lock);
		goro__m_sleep(mp);	/* may return early: recheck */
		goro__lock(&sched.lock);
	}
}

/* ===================================================================== */
/*  Finding work                                                          */
/* ===================================================================== */

/* Returns a runnable G for mp (which holds a P), blocking until there is
 * one; NULL at shutdown.  mp may lose and regain a P on the way. */
static struct goro_g *findrunnable(struct goro_m *mp)
{
	struct goro_p *pp;
	struct goro_g *gp;

top:
	if (load_relaxed(&sched.shutdown))
		return NULL;
	pp = mp->p;
	GORO_ASSERT(pp);

	/* Timers and I/O completions first: they make Gs ready here. */
	goro__poll_nonblock(mp);

	if (pp->schedtick % GLOBAL_CHECK_TICKS == 0 && load_relaxed(&sched.runqsize) > 0) {
		goro__lock(&sched.lock);
		gp = globrunqget_locked(pp, 1);
		goro__unlock(&sched.lock);
		if (gp)
			goto found;
	}
	gp = runqget(pp);
	if (gp)
		goto found;
	if (load_relaxed(&sched.runqsize) > 0) {
		goro__lock(&sched.lock);
		gp = globrunqget_locked(pp, 0);
		goro__unlock(&sched.lock);
		if (gp)
			goto found;
	}

	/* Steal, unless enough Ms already spin (half the busy Ps). */
	if (mp->spinning || 2 * load_relaxed(&sched.nmspinning) <
			sched.nprocs - load_relaxed(&sched.npidle)) {
		if (!mp->spinning) {
			mp->spinning = true;
			atomic_fetch_add(&sched.nmspinning, 1);
		}
		for (int i = 0; i < STEAL_TRIES; i++) {
			uint32_t start = goro__fastrand() % sched.nprocs;
			for (uint32_t k = 0; k < sched.nprocs; k++) {
				struct goro_p *victim = sched.allp[(start + k) % sched.nprocs];
				if (victim == pp)
					continue;
				gp = runqsteal(pp, victim, i == STEAL_TRIES - 1);
				if (gp)
					goto found;
			}
		}
	}

	/* Nothing.  Give up the P, then look once more (see "Spinning Ms"). */
	goro__lock(&sched.lock);
	if (load_relaxed(&sched.shutdown)) {
		goro__unlock(&sched.lock);
		return NULL;
	}
	if (load_relaxed(&sched.runqsize) > 0) {
		gp = globrunqget_locked(pp, 0);
		goro__unlock(&sched.lock);
		if (gp)
			goto found;
		goto top;
	}
	mp->p = NULL;
	pidleput_locked(pp);
	goro__unlock(&sched.lock);

	if (mp->spinning) {
		mp->spinning = false;
		if (atomic_fetch_sub(&sched.nmspinning, 1) == 0)
			goro__throw("findrunnable: negative nmspinning");
		/* StoreLoad: nmspinning-- before reading the queues; pairs with
		 * the fence in goro__wakep. */
		atomic_thread_fence(memory_order_seq_cst);
		for (uint32_t k = 0; k < sched.nprocs; k++) {
			if (!runqempty(sched.allp[k]) || load_relaxed(&sched.runqsize) > 0) {
				goro__lock(&sched.lock);
				pp = pidleget_locked();
				goro__unlock(&sched.lock);
				if (pp) {
					acquirep(mp, pp);
					mp->spinning = true;
					atomic_fetch_add(&sched.nmspinning, 1);
					goto top;
				}
				break;
			}
		}
	}

	if (!stopm(mp))
		return NULL;
	goto top;

found:
	if (mp->spinning)
		resetspinning(mp);
	return gp;
}

/* ===================================================================== */
/*  Switching                                                             */
/* ===================================================================== */

/* Switches from gp (the current G of mp) to next, or to mp's scheduler
 * loop if next is NULL.  mp->after says what to do with gp.  Returns when
 * gp runs again, possibly on another M. */
static void gswitch(struct goro_m *mp, struct goro_g *gp, struct goro_g *next)
{
	struct goro__ctx *to;
	void *fake = NULL;

	if (next) {
		goro__g_set_status(next, G_RUNNABLE, G_RUNNING);
		next->m = mp;
		mp->curg = next;
		to = &next->ctx;
		goro__san_start_switch(mp->after == AFTER_EXIT ? NULL : &fake,
				       next->stack.lo, (size_t)((char *)next - next->stack.lo));
		goro__tsan_switch(next->tsan_fiber);
	} else {
		mp->curg = NULL;
		to = &mp->g0ctx;
		goro__san_start_switch(mp->after == AFTER_EXIT ? NULL : &fake,
				       mp->g0_stack_lo, mp->g0_stack_size);
		goro__tsan_switch(mp->g0_tsan_fiber);
	}
	count(mp->p->n_switches);
	goro__ctx_switch(&gp->ctx, to);
	goro__san_finish_switch(fake);
	/* Back on gp, maybe on another thread: re-read the M. */
	after_switch(goro__m_self());
}

/* Carries out what the G that just switched away asked for (see
 * "Switching"); runs on the new context. */
static void after_switch(struct goro_m *mp)
{
	struct goro_g *gp = mp->after_g;
	enum goro__after what = mp->after;
	struct goro_p *pp = mp->p;

	if (what == AFTER_NONE)
		return;
	mp->after = AFTER_NONE;
	mp->after_g = NULL;
	switch (what) {
	case AFTER_YIELD:
		goro__g_set_status(gp, G_RUNNING, G_RUNNABLE);
		runqput(pp, gp, false);
		break;
	case AFTER_YIELD_GLOBAL:
		goro__g_set_status(gp, G_RUNNING, G_RUNNABLE);
		goro__lock(&sched.lock);
		globrunqput_locked(gp);
		goro__unlock(&sched.lock);
		break;
	case AFTER_PARK:
		/* Owner-only: nobody else changes a running G.  The store is
		 * ordered before any waker can look by unlockf's release. */
		goro__g_set_status(gp, G_RUNNING, G_WAITING);
		if (mp->after_unlockf && !mp->after_unlockf(gp, mp->after_arg)) {
			goro__g_cas_status(gp, G_WAITING, G_RUNNABLE);
			runqput(pp, gp, true);
		}
		break;
	case AFTER_EXIT:
		goro__g_finish_exit(pp, gp);
		break;
	case AFTER_BLOCK_DONE:
		goro__g_cas_status(gp, G_SYSCALL, G_RUNNABLE);
		goro__ready_global(gp);
		break;
	default:
		goro__throw("after_switch: bad request");
	}
}

void goro__after_switch(struct goro_m *mp)
{
	after_switch(mp);
}

/* The next G for mp without going through the scheduler loop, or NULL
 * when the loop must run (global queue check, I/O to poll, shutdown, or
 * an empty local queue). */
static struct goro_g *next_local(struct goro_m *mp)
{
	struct goro_p *pp = mp->p;

	if (goro_unlikely(++pp->schedtick % GLOBAL_CHECK_TICKS == 0))
		return NULL;
	if (goro_unlikely(mp->need_poll ||
	    (mp->io_kflags && (load_relaxed(mp->io_kflags) & mp->io_kflags_mask))))
		return NULL;
	if (goro_unlikely(load_relaxed(&sched.shutdown)))
		return NULL;
	return runqget(pp);
}

void goro__schedule(struct goro_m *mp)
{
	for (;;) {
		struct goro_g *gp;

		after_switch(mp);
		if (!mp->p && !stopm(mp))
			return;
		gp = findrunnable(mp);
		if (!gp)
			return;
		mp = goro__m_self();
		goro__g_set_status(gp, G_RUNNABLE, G_RUNNING);
		gp->m = mp;
		mp->curg = gp;
		mp->p->schedtick++;
		count(mp->p->n_switches);
		{
			void *fake = NULL;
			goro__san_start_switch(&fake, gp->stack.lo,
					       (size_t)((char *)gp - gp->stack.lo));
			goro__tsan_switch(gp->tsan_fiber);
			goro__ctx_switch(&mp->g0ctx, &gp->ctx);
			goro__san_finish_switch(fake);
		}
		/* g0 belongs to this thread: mp is unchanged. */
	}
}

/* ===================================================================== */
/*  Park, ready, yield, exit                                              */
/* ===================================================================== */

void goro__park(enum goro__wait_reason why, goro__unlockf unlockf, void *arg)
{
	struct goro_m *mp = goro__m_self();
	struct goro_g *gp = mp ? mp->curg : NULL;

	if (!gp || mp->in_block)
		goro__throw("goro__park: not on a G");
	gp->wait_reason = why;
	mp->after = AFTER_PARK;
	mp->after_g = gp;
	mp->after_unlockf = unlockf;
	mp->after_arg = arg;
	count(mp->p->n_parks);
	gswitch(mp, gp, next_local(mp));
	gp->wait_reason = WAIT_NONE;
}

bool goro__park_unlock(struct goro_g *gp, void *lock)
{
	(void)gp;
	goro__unlock(lock);
	return true;
}

void goro__ready_global(struct goro_g *gp)
{
	goro__lock(&sched.lock);
	globrunqput_locked(gp);
	goro__unlock(&sched.lock);
	goro__wakep();
}

/* wakep after putting a G on our own P's queue.  No StoreLoad fence here:
 * if the race in "Spinning Ms" is lost, no other M is woken, but the G is
 * on the queue of the P we hold, so this M runs it; only parallelism is
 * lost, never the G.  (Go's runqput+wakep has the same property.)  The
 * global-queue path takes sched.lock, a full barrier. */
static inline void wakep_local(void)
{
	if (load_relaxed(&sched.npidle) == 0 || load_relaxed(&sched.nmspinning) != 0)
		return;
	goro__wakep();
}

/* WAITING -> RUNNABLE for goro__ready.  The waker owns the transition
 * (it dequeued the waiter under the object's lock, or owns the timer or
 * the I/O request), so release builds check and store without a locked
 * instruction: a G readied twice in sequence still throws; only two
 * wakers racing on one G would slip through, which --enable-debug's CAS
 * catches. */
static inline void ready_status(struct goro_g *gp)
{
#ifdef GORO_ENABLE_DEBUG
	goro__g_cas_status(gp, G_WAITING, G_RUNNABLE);
#else
	if (goro_unlikely(load_acquire(&gp->status) != G_WAITING))
		goro__g_cas_status(gp, G_WAITING, G_RUNNABLE);	/* throws */
	store_relaxed(&gp->status, G_RUNNABLE);	/* published by the runq put */
#endif
}

void goro__ready(struct goro_g *gp)
{
	struct goro_p *pp = usable_p(goro__m_self());

	ready_status(gp);
	if (pp) {
		runqput(pp, gp, true);
		wakep_local();
	} else {
		goro__ready_global(gp);
	}
}

/* Used by goro_spawn for a new G.  Back-pressure: when the spawner's
 * local queue is full, it yields to the back of it, so that the queued Gs
 * run (and, when they finish at once, come back hot through the P's free
 * cache) instead of spilling to the global queue by the thousand: a loop
 * spawning a million Gs keeps a few hundred alive, not a million.  Other
 * Ms still steal half of the queue as usual. */
void goro__sched_put_new(struct goro_g *gp)
{
	struct goro_m *mp = goro__m_self();
	struct goro_p *pp = usable_p(mp);

	if (!pp) {
		goro__ready_global(gp);
		return;
	}
	runqput(pp, gp, true);
	wakep_local();
	if (goro_unlikely(load_relaxed(&pp->runqtail) - load_relaxed(&pp->runqhead) >=
			  GORO_RUNQ_SIZE - 1) && mp->curg)
		goro_yield();
}

int goro_yield(void)
{
	struct goro_m *mp = goro__m_self();
	struct goro_g *gp = mp && !mp->in_block ? mp->curg : NULL;
	struct goro_g *next;

	if (!gp)
		return -EPERM;
	next = next_local(mp);
	if (!next && load_relaxed(&sched.runqsize) == 0 && !mp->need_poll &&
	    (mp->p->schedtick % GLOBAL_CHECK_TICKS) != 0 &&
	    !(mp->io_kflags && (load_relaxed(mp->io_kflags) & mp->io_kflags_mask)) &&
	    !load_relaxed(&sched.shutdown))
		return 0;	/* nothing else to run here */
	mp->after = AFTER_YIELD;
	mp->after_g = gp;
	gswitch(mp, gp, next);
	return 0;
}

_Noreturn void goro__g_exit_current(struct goro_m *mp, struct goro_g *gp)
{
	mp->after = AFTER_EXIT;
	mp->after_g = gp;
	gswitch(mp, gp, next_local(mp));
	goro__throw("a dead G was resumed");
}

/* ===================================================================== */
/*  Blocking hand-off                                                     */
/* ===================================================================== */

void goro__enter_block(bool handoff, bool reissue_io)
{
	struct goro_m *mp = goro__m_self();
	struct goro_g *gp = mp->curg;
	struct goro_p *pp = mp->p;

	/* Still running the G with our P: Gs waiting on our ring may be put
	 * back on it (see "entering a blocking call" in ring.c), for a call
	 * that may block for long. */
	if (reissue_io)
		goro__io_enter_block(mp);
	goro__g_cas_status(gp, G_RUNNING, G_SYSCALL);
	mp->in_block = true;
	store_relaxed(&pp->syscall_when, goro__nanotime());
	store_release(&pp->syscalltick, load_relaxed(&pp->syscalltick) + 1);
	/* From here sysmon may take the P. */
	store_release(&pp->status, P_SYSCALL);
	if (handoff) {
		uint32_t s = P_SYSCALL;
		if (atomic_compare_exchange_strong(&pp->status, &s, P_IDLE))
			handoffp(pp);
	} else if (load_relaxed(&sched.sysmon_idle)) {
		goro__note_wakeup(&sched.sysmon_note);
	}
}

void goro__exit_block(void)
{
	struct goro_m *mp = goro__m_self();	/* same thread as enter */
	struct goro_g *gp = mp->curg;
	struct goro_p *pp = mp->p;
	uint32_t s = P_SYSCALL;

	mp->in_block = false;
	if (atomic_compare_exchange_strong(&pp->status, &s, P_RUNNING)) {
		goro__g_cas_status(gp, G_SYSCALL, G_RUNNING);
		return;
	}
	/* Our P was retaken.  Try an idle one. */
	mp->p = NULL;
	goro__lock(&sched.lock);
	pp = pidleget_locked();
	goro__unlock(&sched.lock);
	if (pp) {
		acquirep(mp, pp);
		goro__g_cas_status(gp, G_SYSCALL, G_RUNNING);
		return;
	}
	/* None: queue the G globally and let this M go idle.  gswitch needs a
	 * P for its counters, so switch by hand. */
	mp->after = AFTER_BLOCK_DONE;
	mp->after_g = gp;
	mp->curg = NULL;
	{
		void *fake = NULL;
		goro__san_start_switch(&fake, mp->g0_stack_lo, mp->g0_stack_size);
		goro__tsan_switch(mp->g0_tsan_fiber);
		goro__ctx_switch(&gp->ctx, &mp->g0ctx);
		goro__san_finish_switch(fake);
	}
	after_switch(goro__m_self());
}

void *goro__block_call(void *(*fn)(void *), void *arg, bool reissue_io)
{
	struct goro_m *mp = goro__m_self();
	void *r;
	int e;

	if (!mp || mp->in_block || !mp->curg)
		return fn(arg);
	goro__enter_block(false, reissue_io);
	r = fn(arg);
	e = errno;
	goro__exit_block();
	errno = e;	/* errno is per thread: we may be on another M now */
	return r;
}

void *goro_block(void *(*fn)(void *), void *arg)
{
	return goro__block_call(fn, arg, true);
}

/* ===================================================================== */
/*  sysmon                                                                */
/* ===================================================================== */

static void schedtrace(int64_t start)
{
	char buf[1024];
	int n;

	n = snprintf(buf, sizeof buf,
		     "goro SCHED %lldms: maxprocs=%u idleprocs=%u threads=%u "
		     "spinningthreads=%u idlethreads=%u runqueue=%u gs=%llu [",
		     (long long)((goro__nanotime() - start) / 1000000), sched.nprocs,
		     load_relaxed(&sched.npidle), load_relaxed(&sched.mcount),
		     load_relaxed(&sched.nmspinning), load_relaxed(&sched.nmidle),
		     load_relaxed(&sched.runqsize),
		     (unsigned long long)goro__gs_alive());
	for (uint32_t i = 0; i < sched.nprocs && n < (int)sizeof buf - 16; i++)
		n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%u", i ? " " : "",
			      runqsize(sched.allp[i]));
	if (n < (int)sizeof buf - 3)
		snprintf(buf + n, sizeof buf - (size_t)n, "]\n");
	goro__write_stderr(buf);
	if (!sched.scheddetail)
		return;
	/* Racy snapshots, as Go's scheddetail: good enough to see a stuck P. */
	static const char *const pstat[] = { "idle", "running", "syscall", "stopped" };
	for (uint32_t i = 0; i < sched.nprocs; i++) {
		struct goro_p *pp = sched.allp[i];
		struct goro_m *owner = pp->m;
		uint32_t st = load_relaxed(&pp->status);
		snprintf(buf, sizeof buf, "  P%u: status=%s schedtick=%u syscalltick=%u m=%d runqsize=%u gfreecnt=%u\n",
			 i, st < 4 ? pstat[st] : "?", __atomic_load_n(&pp->schedtick, __ATOMIC_RELAXED),
			 load_relaxed(&pp->syscalltick), owner ? owner->id : -1, runqsize(pp),
			 __atomic_load_n(&pp->ngfree, __ATOMIC_RELAXED));
		goro__write_stderr(buf);
	}
	for (struct goro_m *mp = atomic_load(&sched.allm); mp; mp = mp->alllink) {
		struct goro_p *pp = mp->p;
		struct goro_g *gp = mp->curg;
		snprintf(buf, sizeof buf, "  M%d: tid=%d p=%d curg=%lld spinning=%d blocked=%d\n",
			 mp->id, (int)mp->tid, pp ? pp->id : -1,
			 gp ? (long long)gp->id : -1LL, mp->spinning, mp->in_block);
		goro__write_stderr(buf);
	}
}

/* Retakes Ps stuck in goro_block; returns true if some P is blocked. */
static bool retake(int64_t now, uint32_t *seen_tick)
{
	bool blocked = false;

	for (uint32_t i = 0; i < sched.nprocs; i++) {
		struct goro_p *pp = sched.allp[i];
		uint32_t s = load_acquire(&pp->status);
		uint32_t tick;
		if (s != P_SYSCALL)
			continue;
		blocked = true;
		tick = load_acquire(&pp->syscalltick);
		if (seen_tick[i] != tick) {
			seen_tick[i] = tick;	/* a new call: time it from now */
			if (now - load_relaxed(&pp->syscall_when) < SYSMON_RETAKE_NS)
				continue;
		}
		if (now - load_relaxed(&pp->syscall_when) < SYSMON_RETAKE_NS)
			continue;
		/* Nothing to run and someone is free to take new work: leave
		 * the P with its M (cheaper exit). */
		if (runqempty(pp) && load_relaxed(&sched.runqsize) == 0 &&
		    load_relaxed(&sched.nmspinning) + load_relaxed(&sched.npidle) > 0)
			continue;
		if (atomic_compare_exchange_strong(&pp->status, &s, P_IDLE))
			handoffp(pp);
	}
	return blocked;
}

static void *sysmon_main(void *arg)
{
	int64_t start = goro__nanotime(), next_trace = 0;
	uint32_t seen_tick[1024];
	int64_t delay = 20000;	/* ns */

	(void)arg;
	memset(seen_tick, 0xff, sizeof seen_tick);
	if (sched.schedtrace_ms > 0)
		next_trace = start + sched.schedtrace_ms * 1000000;
	while (!load_relaxed(&sched.shutdown)) {
		int64_t now = goro__nanotime();
		bool blocked = retake(now, seen_tick);
		if (next_trace && now >= next_trace) {
			schedtrace(start);
			next_trace += sched.schedtrace_ms * 1000000;
		}
		if (blocked) {
			delay = 20000;
		} else {
			/* Nothing blocked: sleep long; goro__enter_block wakes us. */
			delay = 100000000;
			store_relaxed(&sched.sysmon_idle, 1);
			atomic_thread_fence(memory_order_seq_cst);
			for (uint32_t i = 0; i < sched.nprocs; i++)
				if (load_acquire(&sched.allp[i]->status) == P_SYSCALL)
					delay = 20000;
		}
		if (next_trace && next_trace - now < delay)
			delay = next_trace - now > 0 ? next_trace - now : 0;
		goro__note_sleep_ns(&sched.sysmon_note, delay);
		goro__note_clear(&sched.sysmon_note);
		store_relaxed(&sched.sysmon_idle, 0);
	}
	/* A last line at shutdown, so that even a run shorter than one
	 * period leaves a trace (goro_shutdown joins sysmon before the Ms). */
	if (next_trace)
		schedtrace(start);
	return NULL;
}

int goro__sysmon_start(void)
{
	if (sched.nprocs > 1024)
		return -EINVAL;
	if (pthread_create(&sched.sysmon, NULL, sysmon_main, NULL) != 0)
		return -EAGAIN;
	sched.sysmon_started = true;
	return 0;
}

/* ===================================================================== */
/*  Waiters                                                               */
/* ===================================================================== */

void goro__waiter_init(struct goro__waiter *w)
{
	memset(w, 0, sizeof *w);
	w->g = goro__g_self();
}

void goro__waiter_wait(struct goro__waiter *w, struct goro__lock *l,
		       enum goro__wait_reason why)
{
	if (w->g) {
		goro__park(why, goro__park_unlock, l);
		return;
	}
	goro__unlock(l);
	while (load_acquire(&w->futex) == 0)
		goro__futex_wait(&w->futex, 0, -1);
}

void goro__waiter_wake(struct goro__waiter *w)
{
	struct goro_g *gp = w->g;

	if (gp) {
		goro__ready(gp);
		return;
	}
	/* The waiter may return and reuse its stack as soon as it sees 1; a
	 * FUTEX_WAKE on a stale address wakes nobody or causes a spurious
	 * wake-up, which futex users must tolerate anyway. */
	store_release(&w->futex, 1);
	goro__futex_wake(&w->futex, 1);
}

/* ===================================================================== */
/*  Stats                                                                 */
/* ===================================================================== */

uint64_t goro__gs_alive(void)
{
	uint64_t created = load_relaxed(&sched.n_created_nop), exited = 0;

	for (uint32_t i = 0; i < sched.nprocs; i++) {
		created += load_relaxed(&sched.allp[i]->n_created);
		exited += load_relaxed(&sched.allp[i]->n_exited);
	}
	return created >= exited ? created - exited : 0;
}

void goro__sched_stats(struct goro_stats *st)
{
	uint64_t runnable = load_relaxed(&sched.runqsize);

	for (uint32_t i = 0; i < sched.nprocs; i++) {
		struct goro_p *pp = sched.allp[i];
		st->gs_created += load_relaxed(&pp->n_created);
		st->switches += load_relaxed(&pp->n_switches);
		st->steals += load_relaxed(&pp->n_steals);
		st->parks += load_relaxed(&pp->n_parks);
		st->gs_free += __atomic_load_n(&pp->ngfree, __ATOMIC_RELAXED);
		runnable += runqsize(pp);
	}
	st->gs_created += load_relaxed(&sched.n_created_nop);
	st->gs_runnable = runnable;
	st->gs_alive = goro__gs_alive();
	st->gs_free += __atomic_load_n(&sched.ngfree, __ATOMIC_RELAXED);
	st->ms = load_relaxed(&sched.mcount);
	st->ms_idle = load_relaxed(&sched.nmidle);
	st->maxprocs = sched.nprocs;
}
