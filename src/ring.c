/*
 * ring.c: one io_uring per M.
 *
 * Rings
 * =====
 *
 * The problem.  A G's blocking syscall must park only the G: its M goes on
 * running the other Gs, and the kernel tells us when the call is done.  It
 * must cost about what the plain syscall costs, so the ops of many Gs
 * share one io_uring_enter, and it must never lose a completion, whatever
 * the pressure (full SQ, full CQ, thousands of ops in flight, a G that
 * gave up at its deadline, an fd closed under a blocked G).
 *
 * Rejected: one ring for the process (every submit would take a lock and
 * the completions of one M's Gs would wake another M); a ring per G (a
 * ring costs memory and an fd); a helper thread per M that waits for
 * completions (a cross-CPU wake-up per op: tens of us here).
 *
 * Chosen: each M owns a ring, created on its own thread with
 * SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN | TASKRUN_FLAG | SUBMIT_ALL
 * and a CQ twice the SQ (whatever of it this kernel has; see
 * kernel-notes/io_uring.md).  The kernel enforces SINGLE_ISSUER: only the
 * owning thread may submit or wait (-EEXIST otherwise), and with
 * DEFER_TASKRUN completions appear only when the owner enters the kernel.
 * So every rule below follows from "only the owner touches its ring".
 *
 * Who may submit.  Only the owning M's thread, either on a G of that M
 * (goro__ring_call takes SQEs, and submits only when the SQ is full) or
 * on its scheduler stack (goro__ring_poll once per scheduling round, and
 * goro__ring_wait when idle).  The M's need_poll hint makes the
 * scheduler run goro__ring_poll once BATCH SQEs wait; below that they
 * wait for the next round (the local queue running dry, or every 61st
 * schedule), so that the ops of many Gs share one io_uring_enter.
 * IORING_SQ_TASKRUN in the SQ ring's flags (mp->io_kflags) tells the
 * scheduler, without a syscall, that completions wait.  Another thread
 * that needs this ring to do something (cancel ops on an fd being closed)
 * queues a request on rg->xq under rg->xlock and kicks the owner; the
 * owner turns it into SQEs at its next poll.
 *
 * Request lifetime.  Each op has a record (struct req) from the owner's
 * free list; user_data is its address, with the low bits telling the op's
 * CQE (TAG_OP) from its linked timeout's (TAG_TIMEOUT).  req->ncqe counts
 * the CQEs still to come (1, or 2 with a timeout); the record goes back
 * to the free list when the last of them is reaped, never before, so a
 * late timeout CQE never reads freed memory.  The G waits for its op's
 * CQE even after a timeout fired: a cancelled op that is already running
 * in an io-wq worker (-EALREADY) may still write into the G's buffer
 * until its CQE, and the buffer may be on the G's stack.  The owner reaps
 * the op's CQE, stores the result in gp->io_res and readies the G; the G
 * never touches the record after it parks.  Only the owner's thread
 * reads or writes records, so they need no lock.
 *
 * No lost completions.  A full SQ is submitted and the SQE taken again;
 * an op and its linked timeout take their two SQEs together, so a
 * timeout is never separated from its op nor dropped.  A full CQ spills
 * into the kernel's overflow list (IORING_FEAT_NODROP), flushed when we
 * next enter: IORING_SQ_CQ_OVERFLOW is in the flags the scheduler
 * watches.  -EINTR and -ERESTARTSYS (-512, from a cancelled io-wq op)
 * never reach the caller: the op is re-issued, unless its timeout fired
 * (-ETIMEDOUT) or its fd was closed (-EBADF).
 *
 * An M about to block in goro_block cannot reap its ring until the call
 * returns (DEFER_TASKRUN: only the owner can).  goro__ring_enter_block
 * therefore cancels the ops that may wait for ever (reads, writes,
 * recv, send, accept, poll on sockets and pipes: the `live` list); their
 * Gs get RES_RETRY, go on the M's P, which the hand-off moves to another
 * M, and issue their op again there.  File ops are left to finish.
 *
 * Closing an fd under a blocked G.  A closer (any thread) asks every ring
 * (on the `rings` list) whose fdbusy counter for the fd is non-zero to
 * submit
 * ASYNC_CANCEL(fd, ALL), and waits until each has reaped its cancel's
 * CQE; only then is the fd closed, so the cancel cannot hit a new file
 * that reused the number.  The cancelled ops (-ECANCELED, or -512 later
 * from io-wq, told apart by rg->close_gen) fail with -EBADF instead of
 * being re-issued (see op_result).  An op starting while the close runs
 * must not slip between the closer's look at fdbusy and the close: the
 * closer first marks the fd in `closing`, and goro__ring_call counts
 * itself in fdbusy before it looks for that mark (StoreLoad both ways).
 * The mark goes before the close itself: once the number is free it may
 * name a new file at once.  An op that starts between the two is the
 * caller's race, as with close(2).
 *
 * Waking an idle M.  An idle M sleeps in io_uring_enter(GETEVENTS, 1) on
 * its own ring (netpoll.c, "Sleeping Ms", has the flag protocol and its
 * StoreLoad barrier).  goro__ring_kick, called by the one waker that
 * won the sleeper's `sleeping` flag, posts a CQE to the sleeper's ring:
 *   1. from the waker's own ring, an IORING_OP_MSG_RING SQE (5.18) with
 *      IOSQE_CQE_SKIP_SUCCESS, submitted at once (or, when the waker is
 *      itself inside goro__ring_poll, with the poll loop's next submit);
 *   2. from a thread without a ring (or whose SQ is full),
 *      IORING_REGISTER_SEND_MSG_RING (6.13), one syscall;
 *   3. without either, a write to the sleeper's eventfd, on which the
 *      sleeping ring keeps a READ armed.
 * The wake CQE carries user_data UD_WAKE and is dropped by the reaper.
 * rg->kickers keeps the ring's fds open while a waker uses them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "io.h"

/* Not in liburing 2.3's headers (see kernel-notes/io_uring.md). */
#ifndef IORING_REGISTER_SEND_MSG_RING
#define IORING_REGISTER_SEND_MSG_RING 31
#endif

#define UD_WAKE		0ULL	/* MSG_RING wake-up; IORING_MSG_DATA sets it */
#define UD_EFD		1ULL	/* the eventfd READ of wake-up method 3 */
#define TAG_OP		0ULL
#define TAG_TIMEOUT	1ULL
#define TAG_XC		2ULL
#define TAG_MASK	3ULL

#define DEFAULT_ENTRIES	256
#define BATCH		32	/* SQEs that make the scheduler poll at once */
#define FDBUSY_N	256	/* buckets of in-flight ops per fd (fd % N) */
#define CHUNK		128
#define RES_RETRY	INT32_MIN

/* A request record (see "Request lifetime").  Owner only. */
struct req {
	struct goro_g *g;		/* parked G; NULL once readied */
	struct req *next;		/* free list */
	struct req *lprev, *lnext;	/* rg->live while the op is in flight */
	uint8_t op;			/* the op's IORING_OP_ */
	int32_t fd;			/* counted in rg->fdbusy; -1 if none */
	uint8_t ncqe;			/* CQEs still to come */
	bool timed_out;			/* the linked timeout fired */
	bool noretry;
	bool handoff;			/* cancelled by goro__ring_enter_block */
	uint32_t close_gen;		/* rg->close_gen[fd bucket] at submission */
	int64_t deadline;		/* 0 = none */
	struct __kernel_timespec ts;	/* read by the kernel at submission */
};

struct chunk {
	struct chunk *next;
	struct req r[CHUNK];
};

/* A cross-M cancel request (goro__ring_cancel_fd), on the closer's side. */
struct closewait {
	struct goro__lock lock;		/* protects remaining and waiting */
	int32_t remaining;		/* rings that have not acked */
	bool waiting;
	struct goro__waiter w;
};
struct xcancel {
	struct xcancel *next;		/* rg->xq; rg->xlock */
	struct goro__ring *rg;		/* the target; valid under rings.lock */
	struct goro__iom *iom;		/* its M's state (kept until shutdown) */
	int fd;
	bool acked;			/* set by the owner before it acks */
	struct closewait *cw;
};

struct goro__ring {
	struct io_uring ring;		/* owner only */
	struct goro__iom *iom;		/* immutable */
	struct goro__ring *rnext, *rprev; /* rings; rings.lock */
	struct req *free;		/* owner only */
	struct req *live;		/* ops without their CQE yet; owner only */
	struct chunk *chunks;		/* owner only */
	uint32_t inflight;		/* records with CQEs to come; owner only */
	bool in_poll;			/* inside goro__ring_poll; owner only */
	/* Cross-M requests: any thread pushes under xlock, the owner pops. */
	struct goro__lock xlock;
	struct xcancel *xq;		/* [xlock] */
	_Atomic uint32_t xpending;	/* xq is not empty (hint) */
	/* Closes seen per fd bucket (fd % FDBUSY_N); owner only. */
	uint32_t close_gen[FDBUSY_N];
	/* Ops in flight per fd bucket: owner writes, closers read. */
	_Atomic uint32_t fdbusy[FDBUSY_N];
	/* Wake-up method 3. */
	int efd;			/* immutable; -1 if unused */
	bool efd_armed;			/* owner only */
	uint64_t efd_buf;		/* owner only (the kernel writes it) */
	uint32_t ring_fd;		/* immutable: the fd MSG_RING targets */
};

/* Probed once by goro__ring_probe; immutable afterwards. */
static struct {
	unsigned entries;
	unsigned flags;			/* setup flags that this kernel took */
	uint64_t ops[2];		/* opcodes supported (bitmap) */
	bool msg_ring;			/* IORING_OP_MSG_RING */
	bool send_msg_ring;		/* IORING_REGISTER_SEND_MSG_RING */
	unsigned iowq[2];		/* io-wq caps: bounded, unbounded */
} cfg;

static _Atomic uint32_t dropped_logged;

/* Every ring, for goro_close's walk.  (sched.allm is not enough: an M is
 * linked there only after its thread has started running Gs.)  Lock
 * order: rings.lock < rg->xlock. */
static struct {
	struct goro__lock lock;
	struct goro__ring *head;	/* [lock] */
} rings;

/* Fds whose blocked ops goro_close is cancelling (see "Closing an fd").
 * An op that starts on one fails with EBADF instead of slipping past the
 * cancel.  The mark is removed before the fd is closed, so the number
 * cannot be reused while it is marked. */
#define CLOSING_MAX 256
static struct {
	struct goro__lock lock;		/* protects fd[] */
	int fd[CLOSING_MAX];		/* -1: free slot */
	_Atomic uint32_t cnt[FDBUSY_N];	/* marked fds per bucket; atomic */
} closing = { .fd = { [0 ... CLOSING_MAX - 1] = -1 } };

/* ---- set-up ---------------------------------------------------------- */

static const unsigned flag_sets[] = {
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
	IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,			/* 6.1 */
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
	IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL |
	IORING_SETUP_CQSIZE,						/* 6.0 */
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
	IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,			/* 5.19 */
	IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,			/* 5.18 */
	IORING_SETUP_CQSIZE,						/* 5.5 */
};

static int ring_setup(struct io_uring *r, unsigned flags)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof p);
	p.flags = flags;
	p.cq_entries = 2 * cfg.entries;
	return io_uring_queue_init_params(cfg.entries, r, &p);
}

static unsigned env_uint(const char *name, unsigned dflt, unsigned lo, unsigned hi)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s)
		return dflt;
	v = strtoul(s, &end, 10);
	if (*end || v < lo || v > hi) {
		goro__log(true, "ignoring %s=%s (want %u..%u)", name, s, lo, hi);
		return dflt;
	}
	return (unsigned)v;
}

int goro__ring_probe(void)
{
	struct io_uring r;
	struct io_uring_probe *probe;
	struct io_uring_sqe sqe;
	static const unsigned required[] = {
		IORING_OP_READ, IORING_OP_WRITE, IORING_OP_POLL_ADD,
		IORING_OP_LINK_TIMEOUT, IORING_OP_ASYNC_CANCEL,
	};
	int ret = -EINVAL;
	size_t i;

	cfg.entries = env_uint("GORO_RING_ENTRIES", DEFAULT_ENTRIES, 2, 32768);
	cfg.iowq[0] = 4;	/* bounded: regular files, fs ops */
	cfg.iowq[1] = 16;	/* unbounded: blocking pipes, sockets, splice */
	/* Newest flag set first; EINVAL means this kernel lacks a flag.
	 * The ring has the real size: a thread's first ring sets its io-wq
	 * bounded limit (kernel-notes/io_uring.md, "io-wq"). */
	/* GORO_RING_FLAGSET=k starts at the k-th set: tests run the paths of
	 * older kernels on this one. */
	i = env_uint("GORO_RING_FLAGSET", 0, 0, sizeof flag_sets / sizeof flag_sets[0] - 1);
	for (; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
		ret = ring_setup(&r, flag_sets[i]);
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0)
		return ret;
	cfg.flags = flag_sets[i];

	probe = io_uring_get_probe_ring(&r);
	if (!probe) {
		io_uring_queue_exit(&r);
		return -EINVAL;
	}
	memset(cfg.ops, 0, sizeof cfg.ops);
	for (unsigned op = 0; op < 128 && op <= probe->last_op; op++)
		if (io_uring_opcode_supported(probe, (int)op))
			cfg.ops[op / 64] |= 1ULL << (op % 64);
	io_uring_free_probe(probe);
	for (i = 0; i < sizeof required / sizeof required[0]; i++) {
		if (!goro__ring_has_op(required[i])) {
			io_uring_queue_exit(&r);
			return -EINVAL;
		}
	}
	cfg.msg_ring = goro__ring_has_op(IORING_OP_MSG_RING);

	/* Can a thread without a ring post to one?  Try it on ourselves. */
	memset(&sqe, 0, sizeof sqe);
	io_uring_prep_msg_ring(&sqe, r.ring_fd, 0, UD_WAKE, 0);
	cfg.send_msg_ring = cfg.msg_ring && !getenv("GORO_RING_NO_SEND_MSG") &&
		syscall(__NR_io_uring_register, -1, IORING_REGISTER_SEND_MSG_RING,
			&sqe, 1) == 0;
	io_uring_queue_exit(&r);
	goro__log(false, "io_uring: %u entries, flags 0x%x, msg_ring %d, send_msg_ring %d",
		  cfg.entries, cfg.flags, cfg.msg_ring, cfg.send_msg_ring);
	return 0;
}

bool goro__ring_has_op(unsigned op)
{
	return op < 128 && (cfg.ops[op / 64] >> (op % 64) & 1);
}

int goro__ring_m_init(struct goro__iom *iom)
{
	struct goro__ring *rg = calloc(1, sizeof *rg);
	unsigned caps[2] = { cfg.iowq[0], cfg.iowq[1] };
	int ret;

	if (!rg)
		return -ENOMEM;
	rg->iom = iom;
	rg->efd = -1;
	ret = ring_setup(&rg->ring, cfg.flags);
	if (ret < 0) {
		free(rg);
		return ret;
	}
	rg->ring_fd = (uint32_t)rg->ring.ring_fd;
	/* Errors here only cost speed or threads, not correctness. */
	io_uring_register_iowq_max_workers(&rg->ring, caps);
	io_uring_register_ring_fd(&rg->ring);
	if (!cfg.send_msg_ring) {
		/* Blocking: a READ on an O_NONBLOCK file fails with -EAGAIN
		 * instead of waiting. */
		rg->efd = eventfd(0, EFD_CLOEXEC);
		if (rg->efd < 0) {
			ret = -errno;
			io_uring_queue_exit(&rg->ring);
			free(rg);
			return ret;
		}
	}
	iom->ring = rg;
	goro__lock(&rings.lock);
	rg->rnext = rings.head;
	if (rings.head)
		rings.head->rprev = rg;
	rings.head = rg;
	goro__unlock(&rings.lock);
	/* The scheduler's no-syscall check for waiting completions. */
	iom->m->io_kflags = (_Atomic uint32_t *)rg->ring.sq.kflags;
	iom->m->io_kflags_mask = IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW;
	return 0;
}

static void xq_ack(struct xcancel *xc);

void goro__ring_m_exit(struct goro__iom *iom)
{
	struct goro__ring *rg = iom->ring;
	struct xcancel *xc;

	if (!rg)
		return;
	iom->m->io_kflags = NULL;
	/* netpoll.c has set iom->sleeping to "exiting": no new kickers. */
	while (load_acquire(&iom->kickers))
		sched_yield();
	/* Off the list first: then no closer can queue a request after we
	 * have acked the queued ones. */
	goro__lock(&rings.lock);
	if (rg->rprev)
		rg->rprev->rnext = rg->rnext;
	else
		rings.head = rg->rnext;
	if (rg->rnext)
		rg->rnext->rprev = rg->rprev;
	goro__unlock(&rings.lock);
	goro__lock(&rg->xlock);
	xc = rg->xq;
	rg->xq = NULL;
	goro__unlock(&rg->xlock);
	while (xc) {
		struct xcancel *next = xc->next;
		xq_ack(xc);
		xc = next;
	}
	/* Gs still parked here are abandoned (goro_shutdown's contract). */
	io_uring_queue_exit(&rg->ring);
	if (rg->efd >= 0)
		close(rg->efd);
	while (rg->chunks) {
		struct chunk *c = rg->chunks;
		rg->chunks = c->next;
		free(c);
	}
	iom->ring = NULL;
	free(rg);
}

/* ---- records and SQEs ------------------------------------------------ */

static struct req *req_get(struct goro__ring *rg)
{
	struct req *rq = rg->free;

	if (goro_unlikely(!rq)) {
		struct chunk *c = malloc(sizeof *c);
		if (!c)
			goro__throw("out of memory for I/O request records");
		c->next = rg->chunks;
		rg->chunks = c;
		for (int i = CHUNK - 1; i >= 0; i--) {
			c->r[i].next = rg->free;
			rg->free = &c->r[i];
		}
		rq = rg->free;
	}
	rg->free = rq->next;
	rg->inflight++;
	return rq;
}

static void req_put(struct goro__ring *rg, struct req *rq)
{
	if (--rq->ncqe)
		return;
	rq->next = rg->free;
	rg->free = rq;
	rg->inflight--;
}

static void live_add(struct goro__ring *rg, struct req *rq)
{
	rq->lprev = NULL;
	rq->lnext = rg->live;
	if (rg->live)
		rg->live->lprev = rq;
	rg->live = rq;
}

static void live_del(struct goro__ring *rg, struct req *rq)
{
	if (rq->lprev)
		rq->lprev->lnext = rq->lnext;
	else
		rg->live = rq->lnext;
	if (rq->lnext)
		rq->lnext->lprev = rq->lprev;
}

static int reap(struct goro__ring *rg);

static int submit(struct goro__ring *rg, bool getevents)
{
	int ret = getevents ? io_uring_submit_and_get_events(&rg->ring)
			    : io_uring_submit(&rg->ring);

	if (ret == -EBADR && !atomic_exchange(&dropped_logged, 1))
		goro__log(true, "io_uring dropped completions (kernel out of memory)");
	return ret;
}

/* Returns n free SQEs in a row (the first; the others follow it).  A full
 * SQ is submitted first; if the kernel pushes back (an old kernel with
 * an overflowed CQ: -EBUSY), completions are reaped and it is retried. */
static struct io_uring_sqe *sqe_get(struct goro__ring *rg, unsigned n)
{
	while (io_uring_sq_space_left(&rg->ring) < n) {
		int ret = submit(rg, false);
		if (ret == -EBUSY || ret == -EAGAIN || ret == -EBADR)
			reap(rg);
		else if (ret < 0 && ret != -EINTR)
			goro__throw("io_uring_submit failed");
	}
	return io_uring_get_sqe(&rg->ring);
}

static void fdbusy_add(struct goro__ring *rg, int fd, int d)
{
	if (fd >= 0)
		atomic_fetch_add(&rg->fdbusy[fd % FDBUSY_N], (uint32_t)d);
}

/* True if a close of an fd in rq's bucket was processed since rq was
 * submitted (maybe another fd of the bucket: see op_result). */
static bool closed_since(struct goro__ring *rg, struct req *rq)
{
	return rq->fd >= 0 && rg->close_gen[rq->fd % FDBUSY_N] != rq->close_gen;
}

/*
 * The result a G sees for its op's CQE.  Only three things cancel or
 * interrupt an op: its linked timeout, goro__ring_enter_block (flagged in
 * the record) and a close of its fd (xq_run).  So a -ECANCELED that is
 * neither of the first two is a close.  -EINTR and -512..-516 (ERESTARTSYS
 * and friends, leaked by io-wq workers) may also come from elsewhere; they
 * mean a close only if a close of that fd bucket happened meanwhile.
 */
static int32_t op_result(struct goro__ring *rg, struct req *rq, int32_t res)
{
	if (goro_likely(res >= 0))
		return res;
	if (res == -ECANCELED || res == -EINTR || (res <= -512 && res >= -516)) {
		if (rq->timed_out || (rq->deadline && goro__nanotime() >= rq->deadline))
			return -ETIMEDOUT;
		if (rq->handoff)
			return RES_RETRY;
		if (res == -ECANCELED || closed_since(rg, rq))
			return -EBADF;
		return rq->noretry ? -EINTR : RES_RETRY;
	}
	return res;
}

/* ---- completions ----------------------------------------------------- */

static void xq_ack(struct xcancel *xc)
{
	struct closewait *cw = xc->cw;
	bool wake;

	xc->acked = true;
	goro__lock(&cw->lock);
	wake = --cw->remaining == 0 && cw->waiting;
	goro__unlock(&cw->lock);
	if (wake)
		goro__waiter_wake(&cw->w);	/* cw may be gone after this */
}

static int complete(struct goro__ring *rg, uint64_t ud, int32_t res)
{
	struct req *rq = (struct req *)(uintptr_t)(ud & ~TAG_MASK);
	struct goro_g *gp;

	if (ud == UD_WAKE || ud == LIBURING_UDATA_TIMEOUT)
		return 0;
	if (ud == UD_EFD) {
		rg->efd_armed = false;
		return 0;
	}
	switch (ud & TAG_MASK) {
	case TAG_XC:
		xq_ack((struct xcancel *)rq);
		return 0;
	case TAG_TIMEOUT:
		if (res == -ETIME)
			rq->timed_out = true;
		req_put(rg, rq);
		return 0;
	default:
		live_del(rg, rq);
		fdbusy_add(rg, rq->fd, -1);
		gp = rq->g;
		rq->g = NULL;
		gp->io_res = op_result(rg, rq, res);
		req_put(rg, rq);
		goro__ready(gp);
		return 1;
	}
}

/* Reaps every CQE there is.  The CQEs are copied out and the CQ head
 * advanced before any is acted on, because acting on one (goro__ready ->
 * goro__m_wakeup -> goro__ring_kick) may submit on this ring. */
static int reap(struct goro__ring *rg)
{
	struct { uint64_t ud; int32_t res; } batch[32];
	struct io_uring_cqe *cqe;
	int readied = 0;

	for (;;) {
		unsigned head, n = 0;

		io_uring_for_each_cqe(&rg->ring, head, cqe) {
			batch[n].ud = cqe->user_data;
			batch[n].res = cqe->res;
			if (++n == 32)
				break;
		}
		if (!n)
			return readied;
		io_uring_cq_advance(&rg->ring, n);
		for (unsigned i = 0; i < n; i++)
			readied += complete(rg, batch[i].ud, batch[i].res);
	}
}

/* Turns the queued cross-M cancel requests into SQEs. */
static void xq_run(struct goro__ring *rg)
{
	struct xcancel *xc;

	if (!load_acquire(&rg->xpending))
		return;
	goro__lock(&rg->xlock);
	xc = rg->xq;
	rg->xq = NULL;
	store_relaxed(&rg->xpending, 0);
	goro__unlock(&rg->xlock);
	while (xc) {
		struct xcancel *next = xc->next;
		struct io_uring_sqe *sqe = sqe_get(rg, 1);

		rg->close_gen[xc->fd % FDBUSY_N]++;
		io_uring_prep_cancel_fd(sqe, xc->fd, IORING_ASYNC_CANCEL_ALL);
		sqe->user_data = (uint64_t)(uintptr_t)xc | TAG_XC;
		xc = next;
	}
}

static bool kernel_wants_enter(struct goro__ring *rg)
{
	return load_relaxed((_Atomic uint32_t *)rg->ring.sq.kflags) &
		(IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW);
}

int goro__ring_poll(struct goro__iom *iom)
{
	struct goro__ring *rg = iom->ring;
	int readied = 0;

	xq_run(rg);
	rg->in_poll = true;
	for (int i = 0; i < 8; i++) {
		if (io_uring_sq_ready(&rg->ring) || kernel_wants_enter(rg))
			submit(rg, true);
		readied += reap(rg);
		if (!io_uring_sq_ready(&rg->ring) && !kernel_wants_enter(rg))
			break;
	}
	rg->in_poll = false;
	iom->m->need_poll = io_uring_sq_ready(&rg->ring) > 0;
	return readied;
}

int goro__ring_wait(struct goro__iom *iom, int64_t deadline)
{
	struct goro__ring *rg = iom->ring;
	struct io_uring_cqe *cqe;

	xq_run(rg);
	if (rg->efd >= 0 && !rg->efd_armed) {
		struct io_uring_sqe *sqe = sqe_get(rg, 1);
		io_uring_prep_read(sqe, rg->efd, &rg->efd_buf, sizeof rg->efd_buf, 0);
		sqe->user_data = UD_EFD;
		rg->efd_armed = true;
	}
	if (deadline >= 0) {
		int64_t ns = deadline - goro__nanotime();
		struct __kernel_timespec ts;

		if (ns < 0)
			ns = 0;
		ts.tv_sec = ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		io_uring_submit_and_wait_timeout(&rg->ring, &cqe, 1, &ts, NULL);
	} else {
		io_uring_submit_and_wait(&rg->ring, 1);
	}
	return goro__ring_poll(iom);
}

bool goro__ring_busy(struct goro__iom *iom)
{
	struct goro__ring *rg = iom->ring;

	return rg && (rg->inflight || io_uring_sq_ready(&rg->ring) ||
		      load_relaxed(&rg->xpending));
}

/* ---- waking ---------------------------------------------------------- */

void goro__ring_kick(struct goro__iom *t)
{
	struct goro_m *mp = goro__m_self();
	struct goro__iom *me = mp ? mp->ring : NULL;
	struct goro__ring *rg = t->ring;
	struct io_uring_sqe tmp;

	if (!rg)
		return;
	/* 1: MSG_RING from our own ring, if it has room.  Not on a G in the
	 * middle of taking SQEs: goro__ring_call never calls out between
	 * sqe_get and its park.  Inside goro__ring_poll (a completion readied
	 * a G, which woke an M) the poll loop submits it with the rest, one
	 * syscall fewer; elsewhere it goes at once. */
	if (cfg.msg_ring && me && me->ring && me != t &&
	    io_uring_sq_space_left(&me->ring->ring) > 0) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&me->ring->ring);
		io_uring_prep_msg_ring(sqe, (int)rg->ring_fd, 0, UD_WAKE, 0);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		sqe->user_data = UD_WAKE;
		if (me->ring->in_poll || submit(me->ring, false) >= 0)
			return;
	}
	if (cfg.send_msg_ring) {		/* 2 */
		memset(&tmp, 0, sizeof tmp);
		io_uring_prep_msg_ring(&tmp, (int)rg->ring_fd, 0, UD_WAKE, 0);
		if (syscall(__NR_io_uring_register, -1, IORING_REGISTER_SEND_MSG_RING,
			    &tmp, 1) == 0)
			return;
	}
	if (rg->efd >= 0)			/* 3 */
		eventfd_write(rg->efd, 1);
}

/* ---- the closing set ------------------------------------------------- */

static bool fd_closing(int fd)
{
	bool found = false;

	goro__lock(&closing.lock);
	for (int i = 0; i < CLOSING_MAX && !found; i++)
		found = closing.fd[i] == fd;
	goro__unlock(&closing.lock);
	return found;
}

/* Marks fd; with CLOSING_MAX closes already running, waits for one to
 * end (each is short: a cancel round trip). */
static bool closing_mark(int fd)
{
	for (;;) {
		int i;

		goro__lock(&closing.lock);
		for (i = 0; i < CLOSING_MAX && closing.fd[i] != -1; i++)
			;
		if (i < CLOSING_MAX)
			closing.fd[i] = fd;
		goro__unlock(&closing.lock);
		if (i < CLOSING_MAX)
			break;
		if (goro__g_self())
			goro_sleep(20000);	/* parks: our M polls meanwhile */
		else
			sched_yield();
	}
	atomic_fetch_add(&closing.cnt[fd % FDBUSY_N], 1);
	return true;
}

void goro__ring_close_end(int fd, bool marked)
{
	if (!marked)
		return;
	goro__lock(&closing.lock);
	for (int i = 0; i < CLOSING_MAX; i++) {
		if (closing.fd[i] == fd) {
			closing.fd[i] = -1;
			break;
		}
	}
	goro__unlock(&closing.lock);
	atomic_fetch_sub(&closing.cnt[fd % FDBUSY_N], 1);
}

/* ---- the G's side ---------------------------------------------------- */

static bool park_commit(struct goro_g *gp, void *arg)
{
	(void)gp;
	(void)arg;
	return true;
}

int64_t goro__ring_call(const struct io_uring_sqe *tmpl, int fd,
			int64_t deadline, unsigned flags)
{
	struct goro_g *gp = goro__g_self();

	for (;;) {
		/* Re-read after every park: the G may now be on another M. */
		struct goro_m *mp = goro__m_self();
		struct goro__ring *rg = ((struct goro__iom *)mp->ring)->ring;
		struct io_uring_sqe *sqe;
		struct req *rq;
		int32_t res;

		if (deadline && goro__nanotime() >= deadline)
			return -ETIMEDOUT;
		/* StoreLoad against goro__ring_cancel_fd: fdbusy up, then look
		 * for a close of fd.  Either we see the closer's mark, or it
		 * sees our count and queues its cancel on this ring, which only
		 * this thread runs, after our SQE (we do not park before). */
		fdbusy_add(rg, fd, 1);
		if (fd >= 0 && atomic_load(&closing.cnt[fd % FDBUSY_N]) && fd_closing(fd)) {
			fdbusy_add(rg, fd, -1);
			return -EBADF;
		}
		sqe = sqe_get(rg, deadline ? 2 : 1);
		rq = req_get(rg);
		*sqe = *tmpl;
		sqe->user_data = (uint64_t)(uintptr_t)rq | TAG_OP;
		rq->g = gp;
		rq->fd = fd;
		rq->ncqe = 1;
		rq->timed_out = false;
		rq->noretry = flags & RING_NORETRY;
		rq->handoff = false;
		rq->close_gen = fd >= 0 ? rg->close_gen[fd % FDBUSY_N] : 0;
		rq->deadline = deadline;
		rq->op = tmpl->opcode;
		live_add(rg, rq);
		if (deadline) {
			struct io_uring_sqe *tsqe = io_uring_get_sqe(&rg->ring);

			sqe->flags |= IOSQE_IO_LINK;
			rq->ts.tv_sec = deadline / 1000000000;
			rq->ts.tv_nsec = deadline % 1000000000;
			io_uring_prep_link_timeout(tsqe, &rq->ts, IORING_TIMEOUT_ABS);
			tsqe->user_data = (uint64_t)(uintptr_t)rq | TAG_TIMEOUT;
			rq->ncqe = 2;
		}
		if (io_uring_sq_ready(&rg->ring) >= BATCH)
			mp->need_poll = true;
		goro__park(WAIT_IO, park_commit, NULL);
		res = gp->io_res;
		if (res != RES_RETRY)
			return res;
	}
}

/* ---- entering a blocking call ---------------------------------------- */

/* Ops that may wait for ever and that can be issued again after a cancel
 * (a cancelled op that had moved data reports the bytes, not
 * -ECANCELED).  Not CONNECT: issued again it would say EALREADY. */
static bool reissuable(uint8_t op)
{
	switch (op) {
	case IORING_OP_READ: case IORING_OP_WRITE:
	case IORING_OP_READV: case IORING_OP_WRITEV:
	case IORING_OP_RECV: case IORING_OP_SEND:
	case IORING_OP_RECVMSG: case IORING_OP_SENDMSG:
	case IORING_OP_ACCEPT: case IORING_OP_POLL_ADD:
	case IORING_OP_SPLICE:
		return true;
	}
	return false;
}

void goro__ring_enter_block(struct goro__iom *iom)
{
	struct goro__ring *rg = iom->ring;
	unsigned n = 0;

	if (!rg || !rg->live)
		return;
	for (struct req *rq = rg->live; rq; rq = rq->lnext) {
		struct io_uring_sqe *sqe;

		if (!reissuable(rq->op))
			continue;
		rq->handoff = true;
		sqe = sqe_get(rg, 1);
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)rq | TAG_OP, 0);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		sqe->user_data = UD_WAKE;	/* its CQE, if any, is dropped */
		n++;
	}
	if (n)
		goro__ring_poll(iom);
}

/* ---- closing --------------------------------------------------------- */

bool goro__ring_cancel_fd(int fd)
{
	struct goro_m *self = goro__m_self();
	struct xcancel stackbuf[8], *xcs = stackbuf, *own = NULL;
	struct closewait cw;
	uint32_t n = 0, cap = 8;
	bool marked;

	if (fd < 0)
		return false;
	/* StoreLoad: the mark before reading fdbusy; pairs with
	 * goro__ring_call. */
	marked = closing_mark(fd);
	memset(&cw, 0, sizeof cw);
	goro__waiter_init(&cw.w);
	/* Under rings.lock no ring can go away: collect the targets, then
	 * queue the requests (remaining must be set before the first one
	 * is visible, since its owner may ack it at once). */
	goro__lock(&rings.lock);
	for (struct goro__ring *rg = rings.head; rg; rg = rg->rnext) {
		if (!atomic_load(&rg->fdbusy[fd % FDBUSY_N]))
			continue;
		if (n == cap) {
			struct xcancel *bigger = malloc(sizeof *bigger * cap * 2);
			if (!bigger)
				goro__throw("out of memory in goro_close");
			memcpy(bigger, xcs, sizeof *xcs * n);
			if (xcs != stackbuf)
				free(xcs);
			xcs = bigger;
			cap *= 2;
		}
		xcs[n].fd = fd;
		xcs[n].acked = false;
		xcs[n].cw = &cw;
		xcs[n].rg = rg;
		xcs[n].iom = rg->iom;
		n++;
	}
	cw.remaining = (int32_t)n;
	for (uint32_t i = 0; i < n; i++) {
		struct goro__ring *rg = xcs[i].rg;

		goro__lock(&rg->xlock);
		xcs[i].next = rg->xq;
		rg->xq = &xcs[i];
		store_release(&rg->xpending, 1);
		goro__unlock(&rg->xlock);
	}
	goro__unlock(&rings.lock);
	if (!n)
		return marked;
	for (uint32_t i = 0; i < n; i++) {
		if (self && self->ring == xcs[i].iom)
			own = &xcs[i];
		else
			goro__io_kick(xcs[i].iom);	/* kept until shutdown */
	}
	/* Our own ring: on a G, the scheduler polls it once we park;
	 * elsewhere (inside a goro_block call) nobody else can, so we do. */
	if (own && goro__g_self())
		self->need_poll = true;
	else if (own)
		while (!own->acked)
			goro__ring_wait(self->ring, -1);
	goro__lock(&cw.lock);
	if (cw.remaining == 0) {
		goro__unlock(&cw.lock);
	} else {
		cw.waiting = true;
		goro__waiter_wait(&cw.w, &cw.lock, WAIT_IO);
	}
	if (xcs != stackbuf)
		free(xcs);
	return marked;
}
