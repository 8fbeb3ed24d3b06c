/*
 * chan.c: channels and select (Go's chan and select statement).
 *
 * "Channel protocol"
 *
 * Vocabulary.  A channel (struct goro_chan) carries elements of one fixed
 * size.  Unbuffered channels (cap 0) hand each element from a sender
 * straight to a receiver; buffered channels keep up to cap elements in a
 * ring.  A party that must wait (a G, or a plain thread) puts a sudog on
 * the channel's sendq or recvq.  A sudog is a small record on the
 * waiter's own stack that names the waiter (a struct goro__waiter), where
 * the element is (the sender's source or the receiver's destination),
 * and, once the waiter has been picked, whether the transfer happened
 * (success) or the channel was closed under it.
 *
 * The problem.  A G waiting in select waits on several channels at once.
 * Whichever channel becomes ready first must complete exactly one case,
 * and no wake-up may be lost between "nothing is ready" and "parked".
 *
 * Rejected approaches.
 *   - One global channel lock: simple, but every channel operation in the
 *     process would contend on it.
 *   - Select by polling (try every case, sleep, retry): loses latency and
 *     burns CPU; a timeout would be the only wake-up.
 *   - Let a waker on channel A remove the select's sudogs from every other
 *     channel: it would need the other channels' locks while holding A's,
 *     in an order it cannot choose.
 *
 * The chosen approach (Go's).  Each channel has its own lock.  A select
 * takes the locks of all its channels in address order (so two selects
 * can never deadlock), and:
 *   1. scans its cases in a random order (Fisher-Yates over goro__fastrand)
 *      and completes the first ready one: the first ready case of a
 *      uniformly random permutation is uniform among the ready cases;
 *   2. otherwise, with a zero timeout, returns -EAGAIN (Go's default);
 *   3. otherwise puts one sudog per case on that channel's queue, all of
 *      them naming one waiter, and parks.  The channel locks are released
 *      only after the G is parked (goro__park's unlock function), so a
 *      waker that finds a sudog always finds a parked G;
 *   4. a waker on any channel that pops a select's sudog must win a CAS on
 *      the waiter's `done` word (0 -> case index + 1) before it may use
 *      it.  A loser just drops that sudog and looks at the next one.  A
 *      timeout competes in the same CAS with the value SEL_TIMEOUT.  The
 *      winner copies the element under the channel lock, then wakes the
 *      waiter after unlocking;
 *   5. the woken select takes all its locks again, unlinks the sudogs that
 *      are still queued, and reports the winning case.
 *
 * Ordering rules.
 *   - The unlock function of step 3 releases the locks in reverse address
 *     order and must not touch the select's state after the last unlock:
 *     once that lock is free, the woken G (which re-takes the locks
 *     starting with that one) may return and reuse its stack.
 *   - The select timer is started inside that unlock function, before any
 *     lock is released, so it can never fire before the G is parked.  If
 *     the timer loses the CAS, its function's last act is to store
 *     `fn_done`; a select whose timer could no longer be stopped waits for
 *     that store before its stack frame goes away.
 *   - A plain thread cannot park: it releases its locks and sleeps on the
 *     waiter's futex (with the select's deadline, and no timer at all).
 *     On a timeout it competes in the same CAS; if it loses, the winner
 *     is about to wake it, and it waits for that wake-up.
 *
 * Lock order: channel locks in address order < the timer lock < the
 * scheduler's locks (taken by goro__ready).  Wake-ups happen after the
 * channel lock is released.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Element sizes above this are almost certainly a mistake (Go's limit). */
#define CHAN_MAX_ELEM	65536
/* Cases up to this many use storage on the caller's stack. */
#define SEL_STACK_CASES	16
/* The done word of a select's waiter: 0 waiting, 1 + case index when a
 * case fired, SEL_TIMEOUT when the deadline passed. */
#define SEL_TIMEOUT	(-1)

struct sudog {
	struct sudog *next, *prev;	/* the channel queue; channel lock */
	struct goro__waiter *w;		/* who sleeps; immutable while queued */
	void *elem;			/* source (send) or destination (recv) */
	uint32_t caseidx;		/* select only: index in the cases */
	bool is_select;			/* immutable while queued */
	bool queued;			/* on a channel queue; channel lock */
	/* Written by the party that picked this sudog, before the wake-up:
	 * true if an element moved, false if the channel was closed. */
	bool success;
};

struct sudogq {
	struct sudog *head, *tail;
};

struct goro_chan {
	struct goro__lock lock;		/* protects the fields marked [L] */
	uint32_t closed;		/* [L] */
	size_t elemsize;		/* immutable */
	size_t cap;			/* immutable; 0 = unbuffered */
	/* The ring [L]; qcount is also read without the lock by
	 * goro_chan_len, which is then only a snapshot. */
	_Atomic size_t qcount;
	size_t sendx, recvx;
	struct sudogq recvq;		/* [L] receivers waiting */
	struct sudogq sendq;		/* [L] senders waiting */
	char *buf;			/* cap * elemsize bytes; immutable */
};

/* ---- sudog queues (channel lock held) ------------------------------ */

static void q_push(struct sudogq *q, struct sudog *sd)
{
	sd->next = NULL;
	sd->prev = q->tail;
	if (q->tail)
		q->tail->next = sd;
	else
		q->head = sd;
	q->tail = sd;
	sd->queued = true;
}

static void q_unlink(struct sudogq *q, struct sudog *sd)
{
	if (sd->prev)
		sd->prev->next = sd->next;
	else
		q->head = sd->next;
	if (sd->next)
		sd->next->prev = sd->prev;
	else
		q->tail = sd->prev;
	sd->next = sd->prev = NULL;
	sd->queued = false;
}

/* Pops the first sudog whose waiter may still be claimed.  A select's
 * sudog is claimed by winning the CAS on its waiter's done word; a sudog
 * whose select already fired elsewhere is dropped. */
static struct sudog *q_take(struct sudogq *q)
{
	struct sudog *sd;

	while ((sd = q->head)) {
		q_unlink(q, sd);
		if (sd->is_select) {
			int32_t zero = 0;
			if (!atomic_compare_exchange_strong(&sd->w->done, &zero,
							    (int32_t)sd->caseidx + 1))
				continue;
		}
		return sd;
	}
	return NULL;
}

static inline void *slot(struct goro_chan *c, size_t i)
{
	return c->buf + i * c->elemsize;
}

static inline void copy_elem(struct goro_chan *c, void *dst, const void *src)
{
	if (!dst)
		return;
	/* Constant sizes let the compiler inline the common cases. */
	switch (c->elemsize) {
	case 0:
		break;
	case 4:
		memcpy(dst, src, 4);
		break;
	case 8:
		memcpy(dst, src, 8);
		break;
	case 16:
		memcpy(dst, src, 16);
		break;
	default:
		memcpy(dst, src, c->elemsize);
	}
}

static inline void zero_elem(struct goro_chan *c, void *dst)
{
	if (dst && c->elemsize)
		memset(dst, 0, c->elemsize);
}

/* ---- the three transfers, shared by send, recv, try and select ------ */

/*
 * Each returns true if the operation completed without waiting, and then
 * may leave a sudog in *wake that the caller must wake after releasing
 * c->lock.  Channel lock held.
 */

/* Send.  *closed is set if the channel was closed (nothing was sent). */
static bool send_locked(struct goro_chan *c, const void *elem,
			struct sudog **wake, bool *closed)
{
	struct sudog *sd;

	*closed = false;
	if (c->closed) {
		*closed = true;
		return true;
	}
	if ((sd = q_take(&c->recvq))) {
		/* A receiver waits only if the ring is empty: hand over. */
		copy_elem(c, sd->elem, elem);
		sd->success = true;
		*wake = sd;
		return true;
	}
	if (load_relaxed(&c->qcount) < c->cap) {
		copy_elem(c, slot(c, c->sendx), elem);
		if (++c->sendx == c->cap)
			c->sendx = 0;
		store_relaxed(&c->qcount, load_relaxed(&c->qcount) + 1);
		return true;
	}
	return false;
}

/* Receive.  *ok is false for a closed, drained channel (elem zeroed). */
static bool recv_locked(struct goro_chan *c, void *elem,
			struct sudog **wake, bool *ok)
{
	struct sudog *sd;
	size_t n = load_relaxed(&c->qcount);

	if ((sd = q_take(&c->sendq))) {
		if (c->cap == 0) {
			copy_elem(c, elem, sd->elem);
		} else {
			/* A sender waits only if the ring is full: take the
			 * head and put the sender's element at the tail,
			 * which is the same slot. */
			copy_elem(c, elem, slot(c, c->recvx));
			copy_elem(c, slot(c, c->recvx), sd->elem);
			if (++c->recvx == c->cap)
				c->recvx = 0;
			c->sendx = c->recvx;
		}
		sd->success = true;
		*wake = sd;
		*ok = true;
		return true;
	}
	if (n > 0) {
		copy_elem(c, elem, slot(c, c->recvx));
		if (++c->recvx == c->cap)
			c->recvx = 0;
		store_relaxed(&c->qcount, n - 1);
		*ok = true;
		return true;
	}
	if (c->closed) {
		zero_elem(c, elem);
		*ok = false;
		return true;
	}
	return false;
}

static inline void wake_sudog(struct sudog *sd)
{
	/* The sudog lives on the sleeper's stack: after this it may be gone. */
	if (sd)
		goro__waiter_wake(sd->w);
}

/* ---- public channel API -------------------------------------------- */

struct goro_chan *goro_chan_make(size_t elem_size, size_t cap, int *err)
{
	struct goro_chan *c;
	int dummy;

	if (!err)
		err = &dummy;
	if (elem_size > CHAN_MAX_ELEM ||
	    cap > SIZE_MAX / 2 / (elem_size ? elem_size : 1)) {
		*err = -EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto err_nomem;
	c->elemsize = elem_size;
	c->cap = cap;
	if (cap && elem_size) {
		c->buf = malloc(cap * elem_size);
		if (!c->buf)
			goto err_free;
	}
	*err = 0;
	return c;
err_free:
	free(c);
err_nomem:
	*err = -ENOMEM;
	return NULL;
}

int goro_chan_free(struct goro_chan *c)
{
	if (!c)
		return 0;
	goro__lock(&c->lock);
	if (c->recvq.head || c->sendq.head) {
		goro__unlock(&c->lock);
		return -EBUSY;
	}
	goro__unlock(&c->lock);
	free(c->buf);
	free(c);
	return 0;
}

int goro_chan_send(struct goro_chan *c, const void *elem)
{
	struct sudog *wake = NULL, sd;
	struct goro__waiter w;
	bool closed;

	if (!c || (!elem && c->elemsize))
		return -EINVAL;
	goro__lock(&c->lock);
	if (send_locked(c, elem, &wake, &closed)) {
		goro__unlock(&c->lock);
		wake_sudog(wake);
		return closed ? -EPIPE : 0;
	}
	goro__waiter_init(&w);
	sd.w = &w;
	sd.elem = (void *)elem;
	sd.is_select = false;
	sd.success = false;
	q_push(&c->sendq, &sd);
	goro__waiter_wait(&w, &c->lock, WAIT_CHAN_SEND);
	return sd.success ? 0 : -EPIPE;
}

int goro_chan_recv(struct goro_chan *c, void *elem, bool *ok)
{
	struct sudog *wake = NULL, sd;
	struct goro__waiter w;
	bool dummy;

	if (!c)
		return -EINVAL;
	if (!ok)
		ok = &dummy;
	goro__lock(&c->lock);
	if (recv_locked(c, elem, &wake, ok)) {
		goro__unlock(&c->lock);
		wake_sudog(wake);
		return 0;
	}
	goro__waiter_init(&w);
	sd.w = &w;
	sd.elem = elem;
	sd.is_select = false;
	sd.success = false;
	q_push(&c->recvq, &sd);
	goro__waiter_wait(&w, &c->lock, WAIT_CHAN_RECV);
	*ok = sd.success;
	if (!sd.success)
		zero_elem(c, elem);
	return 0;
}

int goro_chan_try_send(struct goro_chan *c, const void *elem)
{
	struct sudog *wake = NULL;
	bool closed, done;

	if (!c || (!elem && c->elemsize))
		return -EINVAL;
	goro__lock(&c->lock);
	done = send_locked(c, elem, &wake, &closed);
	goro__unlock(&c->lock);
	wake_sudog(wake);
	if (!done)
		return -EAGAIN;
	return closed ? -EPIPE : 0;
}

int goro_chan_try_recv(struct goro_chan *c, void *elem, bool *ok)
{
	struct sudog *wake = NULL;
	bool done, dummy;

	if (!c)
		return -EINVAL;
	if (!ok)
		ok = &dummy;
	goro__lock(&c->lock);
	done = recv_locked(c, elem, &wake, ok);
	goro__unlock(&c->lock);
	wake_sudog(wake);
	return done ? 0 : -EAGAIN;
}

int goro_chan_close(struct goro_chan *c)
{
	struct sudog *list = NULL, *sd;

	if (!c)
		return -EINVAL;
	goro__lock(&c->lock);
	if (c->closed) {
		goro__unlock(&c->lock);
		return -EPIPE;
	}
	c->closed = 1;
	/* Every waiter is released with success = false; collect them
	 * through their (now unused) next links and wake them unlocked. */
	while ((sd = q_take(&c->recvq)) || (sd = q_take(&c->sendq))) {
		sd->success = false;
		sd->next = list;
		list = sd;
	}
	goro__unlock(&c->lock);
	while (list) {
		sd = list;
		list = sd->next;	/* read before the wake frees sd */
		wake_sudog(sd);
	}
	return 0;
}

size_t goro_chan_len(const struct goro_chan *c)
{
	return c ? load_relaxed(&((struct goro_chan *)c)->qcount) : 0;
}

size_t goro_chan_cap(const struct goro_chan *c)
{
	return c ? c->cap : 0;
}

/* ---- select -------------------------------------------------------- */

struct sel {
	struct goro_chan **lockorder;	/* cases' channels by address */
	uint32_t nlock;
	bool timed;
	int64_t deadline;
	struct goro__timer timer;	/* G path only */
	struct goro_g *gp;		/* G path only */
	/* Set by the timer function as its last act when it lost the CAS;
	 * see "Ordering rules" above. */
	_Atomic uint32_t fn_done;
	struct goro__waiter w;
};

static void sel_lock(struct goro_chan **order, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (i == 0 || order[i] != order[i - 1])
			goro__lock(&order[i]->lock);
}

/* Releases in reverse order; the lowest address goes last.  Touches
 * neither `order` nor anything else on the select's stack after that
 * last unlock (see "Ordering rules"). */
static void sel_unlock(struct goro_chan **order, uint32_t n)
{
	while (n-- > 0) {
		struct goro_chan *c = order[n];
		if (n > 0 && order[n - 1] == c)
			continue;
		goro__unlock(&c->lock);
	}
}

static bool sel_park_commit(struct goro_g *gp, void *arg)
{
	struct sel *s = arg;
	(void)gp;
	if (s->timed)
		goro__timer_start(&s->timer, s->deadline);
	sel_unlock(s->lockorder, s->nlock);
	return true;
}

static void sel_timeout(struct goro__timer *t)
{
	struct sel *s = t->arg;
	struct goro_g *gp = s->gp;
	int32_t zero = 0;

	if (atomic_compare_exchange_strong(&s->w.done, &zero, SEL_TIMEOUT)) {
		/* The G sleeps until this ready, and after it returns we touch
		 * nothing of the select's. */
		goro__ready(gp);
		return;
	}
	store_release(&s->fn_done, 1);
}

static int cmp_chan(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(struct goro_chan *const *)a;
	uintptr_t y = (uintptr_t)*(struct goro_chan *const *)b;
	return x < y ? -1 : x > y;
}

/* Sleeps a plain thread until the select is won (returns) or times out.
 * Preserves errno, which a timed-out FUTEX_WAIT sets. */
static void sel_sleep_thread(struct sel *s)
{
	int saved_errno = errno;

	for (;;) {
		int64_t left = -1;
		if (load_acquire(&s->w.futex))
			break;
		if (s->timed && load_relaxed(&s->w.done) == 0) {
			left = s->deadline - goro__nanotime();
			if (left <= 0) {
				int32_t zero = 0;
				if (atomic_compare_exchange_strong(&s->w.done, &zero,
								   SEL_TIMEOUT))
					break;
				/* A case won: its waker is about to wake us. */
				left = -1;
			}
		}
		goro__futex_wait(&s->w.futex, 0, left);
	}
	errno = saved_errno;
}

int goro_select(struct goro_select_case *cases, size_t n, int64_t timeout_ns)
{
	struct sudog sd_stack[SEL_STACK_CASES], *sds = sd_stack;
	struct goro_chan *lo_stack[SEL_STACK_CASES];
	uint32_t po_stack[SEL_STACK_CASES], *pollorder = po_stack;
	void *heap = NULL;
	struct sudog *wake = NULL;
	struct sel s;
	uint32_t npoll = 0, i;
	int ret = -EAGAIN;
	int32_t done;

	if ((n && !cases) || n > UINT32_MAX / 2)
		return -EINVAL;
	s.lockorder = lo_stack;
	if (n > SEL_STACK_CASES) {
		heap = malloc(n * (sizeof(*sds) + sizeof(*s.lockorder) +
				   sizeof(*pollorder)));
		if (!heap)
			return -ENOMEM;
		sds = heap;
		s.lockorder = (struct goro_chan **)(sds + n);
		pollorder = (uint32_t *)(s.lockorder + n);
	}
	for (i = 0; i < n; i++) {
		struct goro_select_case *cs = &cases[i];
		uint32_t j;

		cs->ok = false;
		cs->err = 0;
		if (!cs->chan)
			continue;	/* never ready, as Go's nil channel */
		if ((cs->op != GORO_SELECT_SEND && cs->op != GORO_SELECT_RECV) ||
		    (cs->op == GORO_SELECT_SEND && !cs->elem &&
		     cs->chan->elemsize)) {
			ret = -EINVAL;
			goto out;
		}
		/* Inside-out Fisher-Yates: a uniform permutation. */
		j = goro__fastrand() % (npoll + 1);
		if (j != npoll)
			pollorder[npoll] = pollorder[j];
		pollorder[j] = i;
		s.lockorder[npoll++] = cs->chan;
	}
	if (npoll == 0 && timeout_ns < 0) {
		ret = -EINVAL;	/* would block for ever */
		goto out;
	}
	s.nlock = npoll;
	qsort(s.lockorder, npoll, sizeof(*s.lockorder), cmp_chan);

	/* 1. Is any case ready? */
	sel_lock(s.lockorder, npoll);
	for (i = 0; i < npoll; i++) {
		struct goro_select_case *cs = &cases[pollorder[i]];
		bool closed;

		if (cs->op == GORO_SELECT_RECV) {
			if (!recv_locked(cs->chan, cs->elem, &wake, &cs->ok))
				continue;
		} else {
			if (!send_locked(cs->chan, cs->elem, &wake, &closed))
				continue;
			if (closed)
				cs->err = -EPIPE;
		}
		sel_unlock(s.lockorder, npoll);
		wake_sudog(wake);
		ret = (int)pollorder[i];
		goto out;
	}
	/* 2. Default. */
	if (timeout_ns == 0) {
		sel_unlock(s.lockorder, npoll);
		ret = -EAGAIN;
		goto out;
	}

	/* 3. Enqueue on every channel and sleep. */
	goro__waiter_init(&s.w);
	s.gp = goro__g_self();
	s.timed = timeout_ns > 0;
	if (s.timed) {
		int64_t now = goro__nanotime();

		/* A timeout too large to add means "never" in practice. */
		s.deadline = INT64_MAX;
		if (timeout_ns <= INT64_MAX - now)
			s.deadline = now + timeout_ns;
	}
	atomic_store(&s.fn_done, 0);
	for (i = 0; i < n; i++) {
		struct goro_select_case *cs = &cases[i];
		struct sudog *sd = &sds[i];

		if (!cs->chan)
			continue;
		sd->w = &s.w;
		sd->elem = cs->elem;
		sd->caseidx = i;
		sd->is_select = true;
		sd->success = false;
		q_push(cs->op == GORO_SELECT_RECV ? &cs->chan->recvq :
			    &cs->chan->sendq, sd);
	}
	if (s.gp) {
		if (s.timed)
			goro__timer_init(&s.timer, sel_timeout, &s);
		goro__park(WAIT_SELECT, sel_park_commit, &s);
	} else {
		sel_unlock(s.lockorder, npoll);
		sel_sleep_thread(&s);
	}

	/* 5. Woken: unlink what is still queued. */
	sel_lock(s.lockorder, npoll);
	for (i = 0; i < n; i++) {
		struct goro_select_case *cs = &cases[i];

		if (cs->chan && sds[i].queued)
			q_unlink(cs->op == GORO_SELECT_RECV ? &cs->chan->recvq :
				      &cs->chan->sendq, &sds[i]);
	}
	sel_unlock(s.lockorder, npoll);
	done = atomic_load(&s.w.done);
	if (s.gp && s.timed && !goro__timer_stop(&s.timer) && done != SEL_TIMEOUT) {
		/* The timer fired and lost: wait until it is off our stack. */
		while (!load_acquire(&s.fn_done))
			goro_yield();
	}
	if (done == SEL_TIMEOUT) {
		ret = -ETIMEDOUT;
		goto out;
	}
	GORO_ASSERT(done > 0 && (size_t)done <= n);
	ret = done - 1;
	if (cases[ret].op == GORO_SELECT_RECV) {
		cases[ret].ok = sds[ret].success;
		if (!sds[ret].success)
			zero_elem(cases[ret].chan, cases[ret].elem);
	} else if (!sds[ret].success) {
		cases[ret].err = -EPIPE;
	}
out:
	free(heap);
	return ret;
}
