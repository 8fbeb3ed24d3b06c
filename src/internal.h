/*
 * internal.h: the types every part of the runtime shares (G, M, P, Sched),
 * and the internal interface between the files of src/.
 *
 * Vocabulary (as in Go's runtime):
 *   G  a goroutine: a function with its own stack (struct goro_g).
 *   M  a worker OS thread (struct goro_m).
 *   P  a processor: the right to run Gs, plus a local run queue and a
 *      cache of free Gs (struct goro_p).  There are exactly GORO_MAXPROCS
 *      Ps, so at most that many Ms run Gs at once.  An M blocked in a
 *      goro_block call gives its P to another M (see "Blocking hand-off"
 *      in sched.c).
 *   Sched the one central struct (struct goro_sched, variable `sched`).
 *
 * The design and the locking protocol are described at the top of
 * sched.c; every shared field below says what protects it.
 *
 * Naming: goro_ is public, goro__ is internal and non-static, statics are
 * unprefixed.  gp is a G, mp an M, pp a P.
 */
#ifndef GORO_INTERNAL_H
#define GORO_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "goro.h"
#include "context.h"

/* ===================================================================== */
/*  Utilities                                                            */
/* ===================================================================== */

#define goro_likely(x) __builtin_expect(!!(x), 1)
#define goro_unlikely(x) __builtin_expect(!!(x), 0)
#define GORO_STATIC_ASSERT(c, msg) _Static_assert(c, msg)
#define GORO_CACHELINE 64
#define goro_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* Prints "goro: <msg>" and the current G and M to stderr, then aborts.
 * For broken invariants only, never for errors a caller can cause. */
_Noreturn void goro__throw(const char *msg);

/* Cheap checks whose failure would corrupt memory: always on. */
#define GORO_ASSERT(x) \
	do { if (goro_unlikely(!(x))) goro__throw("assertion failed: " #x); } while (0)
/* Expensive or pervasive checks: only with --enable-debug. */
#ifdef GORO_ENABLE_DEBUG
#define GORO_DEBUG_ASSERT(x) GORO_ASSERT(x)
#else
#define GORO_DEBUG_ASSERT(x) ((void)0)
#endif

#define load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

/* A spin-wait hint to the CPU (pause / yield). */
static inline void goro__cpu_relax(void)
{
#if defined(__x86_64__)
	__asm__ volatile("pause" ::: "memory");
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

int64_t goro__nanotime(void);		/* CLOCK_MONOTONIC, ns */
uint32_t goro__fastrand(void);		/* per-M xorshift; any thread */
int goro__write_stderr(const char *s);	/* async-signal-safe */

/* ===================================================================== */
/*  Low-level locks (lock.c).  Lock order: see the table in lock.c.       */
/* ===================================================================== */

/* A futex mutex for runtime internals: spins briefly, then sleeps.  It
 * blocks the whole M, so hold it only for short, non-blocking sections and
 * never across a G switch (except as goro__park's unlock argument). */
struct goro__lock {
	_Atomic uint32_t state;	/* 0 unlocked, 1 locked, 2 locked with sleepers */
};
#define GORO__LOCK_INIT { 0 }
void goro__lock(struct goro__lock *l);
void goro__unlock(struct goro__lock *l);
bool goro__lock_held(struct goro__lock *l);

/* A one-shot wake-up for one sleeping thread (Go's note).  clear, then one
 * sleeper calls sleep while one waker calls wakeup; either order works. */
struct goro__note {
	_Atomic uint32_t key;	/* 0 clear, 1 woken */
};
void goro__note_clear(struct goro__note *n);
void goro__note_sleep(struct goro__note *n);
/* Returns false on timeout.  ns < 0 waits for ever. */
bool goro__note_sleep_ns(struct goro__note *n, int64_t ns);
void goro__note_wakeup(struct goro__note *n);

int goro__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t ns);
int goro__futex_wake(_Atomic uint32_t *addr, int n);

/* ===================================================================== */
/*  G                                                                     */
/* ===================================================================== */

/*
 * G states.  Every change goes through goro__g_cas_status, which throws on
 * an unexpected state (as Go's casgstatus does).
 */
enum goro__gstatus {
	/* In a free list: no function, the stack holds nothing live.  Owned
	 * by the free list's owner (a P, or sched.gfree under sched.lock). */
	G_IDLE = 0,
	/* On a run queue (or about to be put on one).  Not running; its
	 * context is saved.  Owned by whoever holds the queue slot. */
	G_RUNNABLE,
	/* Running on gp->m, which owns the G and its stack. */
	G_RUNNING,
	/* Parked in goro__park: not on any run queue, context saved.  The
	 * object it waits on owns it; goro__ready moves it to G_RUNNABLE. */
	G_WAITING,
	/* Running a blocking call (goro_block) on gp->m, which may have
	 * handed its P away.  The stack is live and in use. */
	G_SYSCALL,
	/* Finished; result stored; waiting for goro_join (joinable Gs only).
	 * The stack is not in use; the descriptor is still valid. */
	G_DEAD,
};

/* Why a G is parked: shown by the debug dump.  Never reuse a value. */
enum goro__wait_reason {
	WAIT_NONE = 0,
	WAIT_JOIN,
	WAIT_WG,
	WAIT_CHAN_SEND,
	WAIT_CHAN_RECV,
	WAIT_SELECT,
	WAIT_MUTEX,
	WAIT_RWLOCK,
	WAIT_COND,
	WAIT_SEMA,
	WAIT_ONCE,
	WAIT_SLEEP,
	WAIT_IO,
	WAIT_BLOCK,
	WAIT_REASON_COUNT
};
extern const char *const goro__wait_reason_str[WAIT_REASON_COUNT];

/* Where a G's stack is.  Written by stack.c when the slot is handed out;
 * the uffd fields are owned by stack.c (see the layout diagram there). */
struct goro__stack {
	char *lo;		/* lowest usable byte (above the guard zone) */
	char *hi;		/* one past the highest byte of the slot */
	char *guard_lo;		/* the guard zone: [guard_lo, lo) */
	uint32_t cls;		/* size class of the slot (stack.c) */
	/* Lowest populated byte: [populated_lo, hi) is backed by memory.
	 * Written only by the thread running the G (or its fault handler),
	 * and by stack.c when the slot is not in use. */
	char *_Atomic populated_lo;
	size_t peak;		/* largest hi - populated_lo seen */
};

/* A waiter on something (join, wait group, channel, mutex...).  It lives
 * on the waiter's own stack while it waits.  If g is set, waking readies
 * that G; otherwise the waiter is a plain thread sleeping on `futex`. */
struct goro__waiter {
	struct goro__waiter *next, *prev;
	struct goro_g *g;
	_Atomic uint32_t futex;		/* plain threads: 0 waiting, 1 woken */
	void *elem;			/* channels: where to copy the element */
	int64_t ticket;			/* free use by the primitive */
	_Atomic int32_t done;		/* free use by the primitive */
	void *data;			/* free use by the primitive */
};
/* Waits until goro__waiter_wake(w).  w->g must be the current G (or NULL
 * for a plain thread).  `l` is released once the caller cannot miss the
 * wake-up.  Returns with l unlocked. */
void goro__waiter_wait(struct goro__waiter *w, struct goro__lock *l,
		       enum goro__wait_reason why);
void goro__waiter_wake(struct goro__waiter *w);
/* Sets w->g to the current G (NULL on a plain thread) and clears w. */
void goro__waiter_init(struct goro__waiter *w);

#define GORO_G_NAME_MAX 32

/*
 * The G descriptor.  It lives in the top of the G's own stack slot (see
 * stack.c), so a fresh G costs one page.  Keep it small: the first page
 * must leave at least 2 KiB for the first frames.
 */
struct goro_g {
	struct goro__ctx ctx;		/* saved registers; valid unless RUNNING */
	_Atomic uint32_t status;	/* enum goro__gstatus; see cas_status */
	uint32_t wait_reason;		/* enum goro__wait_reason; owner only */
	uint64_t id;			/* immutable while not G_IDLE */
	void *(*fn)(void *);		/* immutable while not G_IDLE */
	void *arg;
	void *result;			/* written by the G before G_DEAD */
	struct goro_g *schedlink;	/* run queue / free list link; by owner */
	struct goro_m *m;		/* M running it; by that M */
	struct goro__stack stack;
	/* Joining: protected by jlock. */
	struct goro__lock jlock;
	bool detached;			/* immutable after spawn */
	bool joined;			/* a joiner has taken the result */
	struct goro__waiter *joiner;	/* who waits in goro_join */
	/* Parking: the unlock function runs on the next context after the
	 * switch (see goro__park). */
	bool park_ok;			/* unlockf's answer; by the parking M */
	/* I/O (ring.c, io.c): the deadline for blocking calls, ns since the
	 * epoch of goro__nanotime, 0 = none.  Owner only. */
	int64_t io_deadline;
	/* Free use by the I/O layer for the request this G waits on. */
	void *io_req;
	int32_t io_res;
	char name[GORO_G_NAME_MAX];
	/* --enable-tsan: this G's ThreadSanitizer fiber, created at its
	 * first spawn and kept while the slot is reused (g.c). */
	void *tsan_fiber;
};

/* Atomically moves gp from `from` to `to`, throwing if it was elsewhere.
 * For transitions that can race (a G made ready twice, ready vs park). */
void goro__g_cas_status(struct goro_g *gp, uint32_t from, uint32_t to);
/* The same for a transition only the caller can make (it owns the G:
 * took it off a queue or a free list, or is running it): a release store,
 * checked only with --enable-debug. */
static inline void goro__g_set_status(struct goro_g *gp, uint32_t from, uint32_t to)
{
	GORO_DEBUG_ASSERT(load_relaxed(&gp->status) == from);
	(void)from;
	store_release(&gp->status, to);
}


/* ===================================================================== */
/*  P                                                                     */
/* ===================================================================== */

#define GORO_RUNQ_SIZE 256	/* power of two */

enum goro__pstatus {
	P_IDLE = 0,	/* on sched.pidle; no M */
	P_RUNNING,	/* owned by p->m, which runs Gs */
	P_SYSCALL,	/* its M is in goro_block; may be retaken (sysmon) */
	P_STOPPED,	/* runtime shutting down */
};

struct goro_p {
	/* The local run queue: a single-producer, multi-consumer ring.  Only
	 * the owning M stores runqtail; consumers (owner and thieves) CAS
	 * runqhead.  See "Run queues" in sched.c. */
	_Alignas(GORO_CACHELINE) _Atomic uint32_t runqhead;
	_Atomic uint32_t runqtail;
	struct goro_g *_Atomic runq[GORO_RUNQ_SIZE];
	/* The G to run next, before the queue (Go's runnext): set by the
	 * owner, taken by the owner or a thief with CAS. */
	struct goro_g *_Atomic runnext;

	_Alignas(GORO_CACHELINE) int id;	/* immutable */
	_Atomic uint32_t status;		/* enum goro__pstatus */
	struct goro_m *m;			/* owner; by owner / sched.lock */
	struct goro_p *link;			/* sched.pidle; sched.lock */
	uint32_t schedtick;			/* owner only */
	/* Blocking hand-off: bumped by the M at each goro_block entry, with
	 * the time; read by sysmon, which retakes a P in P_SYSCALL for too
	 * long.  Written by the owner (release), read by sysmon (acquire). */
	_Atomic uint32_t syscalltick;
	_Atomic int64_t syscall_when;

	/* Free Gs of the default size class, owner only; overflow goes to
	 * sched.gfree. */
	struct goro_g *gfree;
	uint32_t ngfree;

	/* G ids: a batch taken from sched.goid_gen, owner only. */
	uint64_t goidcache, goidcacheend;

	/* Counters: written by the owner, read racily by goro_stats. */
	_Atomic uint64_t n_created, n_switches, n_steals, n_parks, n_exited;
};

/* ===================================================================== */
/*  M                                                                     */
/* ===================================================================== */

/* What the next context must do for the G that just switched away (see
 * "Switching" in sched.c).  Written by the outgoing G, run by whoever runs
 * next on that M. */
enum goro__after {
	AFTER_NONE = 0,
	AFTER_YIELD,	/* put prev on the back of the local run queue */
	AFTER_YIELD_GLOBAL, /* put prev on the global run queue */
	AFTER_PARK,	/* prev is G_WAITING: run the unlock function */
	AFTER_EXIT,	/* prev finished: free it or make it G_DEAD */
	AFTER_BLOCK_DONE, /* prev came back from goro_block with no P */
};

typedef bool (*goro__unlockf)(struct goro_g *gp, void *arg);

struct goro_m {
	int id;				/* immutable */
	pid_t tid;			/* immutable once the thread runs */
	pthread_t thread;		/* immutable */
	struct goro__ctx g0ctx;		/* the scheduler context (thread stack) */
	struct goro_g *curg;		/* G running now; this M only */
	struct goro_p *p;		/* P held; this M only */
	struct goro_p *nextp;		/* P handed over by startm; sched.lock */
	bool spinning;			/* looking for work; see "Spinning Ms" */
	struct goro__note park;		/* sleeps here when idle */
	struct goro_m *schedlink;	/* sched.midle; sched.lock */
	struct goro_m *alllink;		/* sched.allm; immutable once linked */
	/* Set by the outgoing G, consumed right after the switch. */
	enum goro__after after;
	struct goro_g *after_g;
	goro__unlockf after_unlockf;
	void *after_arg;
	uint64_t rand;			/* goro__fastrand state; this M only */
	bool exiting;			/* shutdown seen; this M only */
	/* Its thread could not be created: listed in allm, never runs.  Set
	 * once by goro__newm (release). */
	_Atomic bool dead;
	/* Blocking hand-off: true while the M runs a goro_block call.  The P
	 * in mp->p may then be taken by sysmon at any moment, so nothing may
	 * use it: goro__g_self() returns NULL and the code in the call acts
	 * as a plain thread.  This M only. */
	bool in_block;
	/* The scheduler stack (the thread's own), for the sanitizers. */
	void *g0_stack_lo;
	size_t g0_stack_size;
	void *g0_tsan_fiber;		/* --enable-tsan: the thread's own fiber */
	/* I/O poll hints for the scheduler's fast path, kept by the I/O
	 * layer: need_poll says SQEs wait to be submitted; if io_kflags is
	 * set, (*io_kflags & io_kflags_mask) says completions wait (the
	 * ring's IORING_SQ_TASKRUN flag, read with no syscall).  When either
	 * is true the M goes through its scheduler loop, which calls
	 * goro__poll_nonblock, before running the next G. */
	bool need_poll;
	_Atomic uint32_t *io_kflags;
	uint32_t io_kflags_mask;
	/* Per-subsystem state, owned by that subsystem: */
	void *ring;			/* netpoll.c: struct goro__iom (io.h) */
	void *altstack;			/* stack.c: sigaltstack memory */
	size_t altstack_size;
};

/* The thread pointer, read anew at every call (volatile asm): never
 * cached by the compiler across a call that may switch threads. */
static inline uintptr_t goro__thread_pointer(void)
{
	uintptr_t tp;
#if defined(__x86_64__)
	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));	/* the TCB's self pointer */
#elif defined(__aarch64__)
	__asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
#else
#error "goro: no thread-pointer read for this architecture"
#endif
	return tp;
}

/* Offset of m.c's initial-exec TLS variable from the thread pointer: the
 * same in every thread; set by a constructor at load time. */
extern intptr_t goro__tls_m_off;

/* The current M, or NULL on a plain thread.  Never keep the result
 * across anything that can switch Gs: a G may resume on another M (see
 * m.c).  Inline: two loads. */
static inline struct goro_m *goro__m_self(void)
{
	return *(struct goro_m *const *)(goro__thread_pointer() + (uintptr_t)goro__tls_m_off);
}

/* The current G, or NULL on a plain thread, on an M's scheduler stack, or
 * inside a goro_block call (which acts as a plain thread). */
static inline struct goro_g *goro__g_self(void)
{
	struct goro_m *mp = goro__m_self();
	return mp && !mp->in_block ? mp->curg : NULL;
}

/* ===================================================================== */
/*  Sched                                                                 */
/* ===================================================================== */

struct goro_sched {
	struct goro__lock lock;		/* protects the fields marked [L] */

	/* Global run queue [L]; runqsize may be read without the lock as a
	 * hint. */
	struct goro_g *runqhead, *runqtail;
	_Atomic uint32_t runqsize;

	/* Idle Ms and Ps [L]; the counts may be read as hints. */
	struct goro_m *midle;
	_Atomic uint32_t nmidle;
	struct goro_p *pidle;
	_Atomic uint32_t npidle;
	/* Ms looking for work (see "Spinning Ms" in sched.c); atomic. */
	_Atomic uint32_t nmspinning;

	/* All Ms [L to add; read by walking without the lock]. */
	struct goro_m *_Atomic allm;
	_Atomic uint32_t mcount;	/* Ms created */
	uint32_t maxmcount;		/* cap; immutable after init */

	/* All Ps: immutable after init. */
	struct goro_p **allp;
	uint32_t nprocs;

	/* Free Gs the Ps' caches overflowed into, and Gs of other size
	 * classes [protected by gflock]. */
	struct goro__lock gflock;
	struct goro_g *gfree;
	uint32_t ngfree;

	_Atomic uint64_t goid_gen;	/* ids handed out (in batches to Ps) */
	/* Gs created by threads without a P (per-P counts cover the rest);
	 * alive = created - exited, summed over Ps and this. */
	_Atomic uint64_t n_created_nop;
	_Atomic uint64_t n_ms_created;

	_Atomic bool shutdown;		/* set once by goro_shutdown */
	_Atomic bool running;		/* between init and shutdown */

	/* Settings: immutable after init. */
	size_t stack_size;
	int64_t schedtrace_ms;		/* GORO_DEBUG=schedtrace=MS, 0 = off */
	bool scheddetail;

	/* The monitor thread (sysmon): schedtrace and P retake. */
	pthread_t sysmon;
	bool sysmon_started;
	struct goro__note sysmon_note;	/* woken at shutdown or by goro_block */
	_Atomic uint32_t sysmon_idle;	/* 1 while sysmon sleeps long */
};
extern struct goro_sched goro__sched;

/* ===================================================================== */
/*  Scheduler interface (sched.c)                                         */
/* ===================================================================== */

/* Parks the current G.  After the G's context is saved, on the next
 * context of this M, unlockf(gp, arg) runs; if it returns false the G is
 * made runnable again at once.  unlockf must not touch the parked G's
 * stack except through arg.  Returns when someone called goro__ready(gp).
 * Must be called on a G. */
void goro__park(enum goro__wait_reason why, goro__unlockf unlockf, void *arg);
/* An unlockf that releases the goro__lock passed as arg. */
bool goro__park_unlock(struct goro_g *gp, void *lock);

/* Makes a G_WAITING G runnable: on the caller's P if it has one (as
 * runnext), otherwise on the global run queue; wakes an idle P if there
 * is one.  Safe from any thread. */
void goro__ready(struct goro_g *gp);

/* Puts a runnable G on the global queue and wakes an M: for threads
 * without a P. */
void goro__ready_global(struct goro_g *gp);

/* Wakes an idle P if there is no spinning M (Go's wakep). */
void goro__wakep(void);

/* The scheduler loop of an M, on its thread stack.  Never returns until
 * shutdown. */
void goro__schedule(struct goro_m *mp);

/* Hooks the scheduler calls; the I/O layer (ring.c / netpoll.c) and the
 * timers (timer.c) provide them. */
/* Makes ready every G whose I/O or timer finished, without blocking.
 * Returns how many were made ready. */
int goro__poll_nonblock(struct goro_m *mp);
/* True if this M has I/O in flight that only it can reap. */
bool goro__m_has_io(struct goro_m *mp);
/* Called by goro__enter_block, on the G, before the M blocks: the I/O
 * layer moves the waits that only this M could end to other Ms. */
void goro__io_enter_block(struct goro_m *mp);
/* Puts an idle M to sleep until goro__m_wakeup, or until its own I/O or
 * the nearest timer completes.  Returns when woken. */
void goro__m_sleep(struct goro_m *mp);
/* Wakes an M sleeping in goro__m_sleep.  Any thread. */
void goro__m_wakeup(struct goro_m *mp);
/* The contract of goro__m_sleep/goro__m_wakeup is a note's: a wakeup
 * made before or during the sleep makes it return, and each return
 * consumes the wakeups made so far.  goro__m_sleep may also return early
 * (an I/O completion or timer readied Gs); the scheduler copes. */

/* Per-M set-up and tear-down on the M's own thread.  The I/O layer
 * (netpoll.c: the ring or epoll) and the stacks (stack.c: the
 * sigaltstack for fault handling) each have a hook. */
int goro__io_m_init(struct goro_m *mp);
void goro__io_m_exit(struct goro_m *mp);
int goro__stack_m_init(struct goro_m *mp);
void goro__stack_m_exit(struct goro_m *mp);
/* Process-wide I/O set-up at goro_init / goro_shutdown. */
int goro__io_init(void);
void goro__io_shutdown(void);

/* ===================================================================== */
/*  Timers (timer.c)                                                      */
/* ===================================================================== */

/* A one-shot timer.  The caller owns the memory (often on a G's stack)
 * and must not free it while it is started; goro__timer_stop returning,
 * or fn having started, ends the timer's use of it. */
struct goro__timer {
	int64_t when;			/* goro__nanotime() deadline */
	/* Runs on some M's scheduler path, with no runtime lock held, once
	 * `when` has passed.  Must not block or park; typically it readies a
	 * G (goro__ready is safe there). */
	void (*fn)(struct goro__timer *t);
	void *arg;
	int32_t idx;			/* timer.c: heap index, -1 if not queued */
	_Atomic uint32_t state;		/* timer.c */
};
void goro__timer_init(struct goro__timer *t, void (*fn)(struct goro__timer *), void *arg);
/* Starts t to fire at t->when.  Safe from any thread. */
void goro__timer_start(struct goro__timer *t, int64_t when);
/* Stops t.  Returns true if it had not fired; false if fn has run or is
 * running (the caller must then wait for fn's effect, e.g. its wake-up,
 * before reusing t).  Safe from any thread. */
bool goro__timer_stop(struct goro__timer *t);
/* Runs the timers due by `now`; returns the next deadline or -1.
 * Called by the scheduler (findrunnable) and the poller. */
int64_t goro__timers_run(int64_t now);
/* The next deadline, or -1: a hint for how long an idle M may sleep. */
int64_t goro__timers_next(void);
/* Forgets every timer (goro_shutdown: their Gs are abandoned). */
void goro__timers_reset(void);

/* ===================================================================== */
/*  G lifecycle (g.c) and stacks (stack.c)                                */
/* ===================================================================== */

int goro__g_init_runtime(void);
/* Allocates a G (from the P's cache, the global list or a new slot) with
 * the given stack limit.  Returns NULL and *err = -ENOMEM on failure. */
struct goro_g *goro__g_alloc(struct goro_p *pp, size_t stack_size, int *err);
/* Returns an idle G to the free lists (pp may be NULL). */
void goro__g_free(struct goro_p *pp, struct goro_g *gp);
/* Runs on a new G's stack: the entry trampoline's C half. */
_Noreturn void goro__g_main(void);
/* Finishes the previous G's switch (mp->after); the first thing every
 * new context runs. */
void goro__after_switch(struct goro_m *mp);
/* Queues a new G (runnext of the caller's P, or the global queue). */
void goro__sched_put_new(struct goro_g *gp);
_Noreturn void goro__g_exit_current(struct goro_m *mp, struct goro_g *gp);
uint64_t goro__gs_alive(void);
void goro__sched_stats(struct goro_stats *st);
int goro__newm(struct goro_p *pp, bool spinning);
void goro__m_join_all(void);
void goro__m_wake_all(void);
int goro__sysmon_start(void);
/* Called by the exiting G's successor (AFTER_EXIT). */
void goro__g_finish_exit(struct goro_p *pp, struct goro_g *gp);

/* The stack arena.  A slot is [guard | stack ... | G descriptor]; the top
 * page is committed when the slot is first handed out. */
int goro__stack_init(size_t default_size);
void goro__stack_shutdown(void);
/* Returns the G descriptor at the top of a fresh or recycled slot of at
 * least `size` usable bytes, with gp->stack filled in; NULL + *err. */
struct goro_g *goro__stack_alloc(size_t size, int *err);
/* Gives a slot back (the G is idle); may release pages. */
void goro__stack_release(struct goro_g *gp);
/* Called when a G finishes, before it is cached for reuse: releases the
 * pages beyond the few a slot keeps (cheap when there are none). */
void goro__stack_trim(struct goro_g *gp);
/* Rounds a requested stack size to its class size; 0 if out of range. */
size_t goro__stack_class_size(size_t size, uint32_t *cls);
/* The class of the runtime's default stack size. */
extern uint32_t goro__stack_default_cls;
/* Fills the process-wide stack fields of *st. */
void goro__stack_stats(struct goro_stats *st);
/* Makes [buf, buf+n) safe for a kernel access (an I/O buffer about to be
 * submitted) if it lies in the current G's stack: with userfaultfd
 * stacks a kernel access to a missing page fails with EFAULT.  No-op
 * elsewhere.  stack.c owns it; io.c has a weak fallback. */
void goro__stack_prefault(const void *buf, size_t n);

/* ===================================================================== */
/*  Synchronization (sync.c)                                              */
/* ===================================================================== */

/* Times a goro_mutex entered starvation mode, process-wide: a test
 * hook (check_sync.c). */
uint64_t goro__mutex_starve_count(void);

/* ===================================================================== */
/*  Blocking hand-off (sched.c)                                           */
/* ===================================================================== */

/* The entersyscall/exitsyscall pair behind goro_block: between them the
 * G runs a call that may block its thread; the P stays attached but may be
 * taken by sysmon (or is handed off at once with `handoff`), so the other
 * Gs keep running.  goro__exit_block may resume the G on another M: it
 * re-reads thread-local state and restores errno. */
void goro__enter_block(bool handoff, bool reissue_io);
void goro__exit_block(void);
/* goro_block, with a choice: reissue_io makes the M first cancel the
 * socket and pipe waits on its ring so that they are issued again on
 * another M (needed when the call may block for long; costly when the M
 * has thousands of waits); false for short calls such as a regular-file
 * write. */
void *goro__block_call(void *(*fn)(void *), void *arg, bool reissue_io);

/* ===================================================================== */
/*  Runtime (runtime.c)                                                   */
/* ===================================================================== */

/* Starts the runtime with defaults if it is not running.  0 or -errno. */
int goro__ensure_init(void);
unsigned goro__default_maxprocs(void);
/* One line to stderr: "goro: <what>" (when GORO_DEBUG has verbose=1, or
 * always if `always`). */
void goro__log(bool always, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* GORO_INTERNAL_H */
