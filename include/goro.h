/* goro: Go's scheduler for C programs on Linux.  See README and HACKING.md. */
#ifndef GORO_H
#define GORO_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "goro/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GORO_EXPORT __attribute__((visibility("default")))

/*
 * Conventions, for every function in this header unless its comment says
 * otherwise:
 *   - A negative return value is -errno; 0 or a count means success.  The
 *     goro_ API never writes errno.  (The POSIX-style I/O wrappers declared
 *     in the I/O section are the exception: they return -1 and set errno,
 *     as the calls they replace do.)
 *   - If a call that takes a function pointer fails, that function will
 *     never run.
 *   - "From a G" means from code running on a goro task.  Calls that need
 *     a G return -EPERM when made from a plain thread.
 */

/* ===================================================================== */
/*  Version                                                              */
/* ===================================================================== */

/* The library's version as GORO_VERSION_HEX (0xMMmmpp) of the build that is
 * loaded, to compare with the header's GORO_VERSION_HEX. */
GORO_EXPORT unsigned goro_version(void);
GORO_EXPORT const char *goro_version_string(void);

/* ===================================================================== */
/*  Runtime                                                              */
/* ===================================================================== */

/* Start-up settings.  Zero in a field means "the default", which the
 * environment may override (the environment wins over the defaults, the
 * struct wins over the environment):
 *   maxprocs    Gs running at once (GORO_MAXPROCS; default: the CPUs this
 *               process may use: affinity mask and cgroup CPU quota).
 *   stack_size  largest stack of a G, in bytes (GORO_STACK_SIZE; default
 *               1 MiB); rounded up to a power of two, at least 16 KiB.
 */
struct goro_config {
	unsigned maxprocs;
	size_t stack_size;
	unsigned reserved[8];	/* must be zero */
};

/* Starts the runtime.  cfg may be NULL.  Calling it again while the runtime
 * runs returns -EALREADY.  Every other entry point starts the runtime with
 * the defaults if it is not running yet.  Safe from any plain thread.
 * Returns 0, -EINVAL (bad setting), -ENOMEM, or -EAGAIN (no threads). */
GORO_EXPORT int goro_init(const struct goro_config *cfg);

/* Stops the runtime: every M finishes its current G's run to the next
 * scheduling point and exits; Gs still parked are abandoned.  Must be
 * called from a plain thread, not from a G (-EPERM).  After it returns,
 * goro_init may start the runtime again. */
GORO_EXPORT int goro_shutdown(void);

/* Runs fn(arg) as the main G and waits for it, starting the runtime if
 * needed.  Stores the G's result in *result when result is not NULL.
 * From a plain thread only (-EPERM from a G). */
GORO_EXPORT int goro_run(void *(*fn)(void *), void *arg, void **result);

/* ===================================================================== */
/*  Gs (tasks)                                                           */
/* ===================================================================== */

/* A joinable G.  Valid from a successful goro_spawn until goro_join
 * returns; joining a stale handle returns -ESRCH. */
typedef struct goro_handle {
	struct goro_g *g;	/* private */
	uint64_t id;		/* read-only: the G's id */
} goro_t;

struct goro_spawn_opts {
	size_t stack_size;	/* largest stack; 0 = the runtime's default */
	const char *name;	/* copied (up to 31 bytes); NULL = "" */
	unsigned reserved[6];	/* must be zero */
};

/* Creates a G running fn(arg).  If out is NULL the G is detached: its
 * resources go back to the pool as soon as it returns.  Otherwise it must
 * be joined with goro_join.  opts may be NULL.  Safe from Gs and plain
 * threads.  Returns 0, -EINVAL (fn NULL, bad options), -ENOMEM (no stack
 * or descriptor memory), -EAGAIN (runtime could not start). */
GORO_EXPORT int goro_spawn(goro_t *out, void *(*fn)(void *), void *arg,
			   const struct goro_spawn_opts *opts);

/* Waits for the G to finish; stores its result in *result (if not NULL).
 * From a G it parks the G, from a plain thread it blocks the thread.
 * Returns 0, -ESRCH (stale handle or already joined), -EDEADLK (a G
 * joining itself), -EINVAL (h NULL). */
GORO_EXPORT int goro_join(goro_t *h, void **result);

/* Lets the other runnable Gs run; the current G goes to the back of its
 * run queue.  Returns 0 or -EPERM (not on a G). */
GORO_EXPORT int goro_yield(void);

/* Ends the current G with this result, as if its function had returned
 * it.  Does not return.  From a plain thread it aborts with a message. */
GORO_EXPORT _Noreturn void goro_exit(void *result);

/* The current G's id (ids start at 1), or 0 on a plain thread. */
GORO_EXPORT uint64_t goro_self_id(void);

/* The current G's name, or NULL on a plain thread. */
GORO_EXPORT const char *goro_self_name(void);

/* Runs fn(arg), a call that may block its thread for long (a blocking
 * library call, DNS resolution, an opaque function), without stalling
 * the other Gs: the current M's run queue moves to another M while fn
 * runs (Go's entersyscall/handoffp).  Returns fn's result; errno as fn
 * left it.  From a plain thread it just calls fn. */
GORO_EXPORT void *goro_block(void *(*fn)(void *), void *arg);

/* Sleeps for at least ns nanoseconds, parking the G (the M runs other
 * Gs).  From a plain thread it sleeps the thread.  Returns 0 or -EINVAL
 * (ns < 0). */
GORO_EXPORT int goro_sleep(int64_t ns);

/* ===================================================================== */
/*  I/O                                                                  */
/* ===================================================================== */

/*
 * POSIX drop-in wrappers.  Unlike the rest of this header they follow
 * POSIX: they return what the call they replace returns (-1 and errno on
 * failure).  On a G, a call that would block parks only the G: it goes to
 * the M's io_uring (or, without io_uring, to the epoll netpoller for
 * sockets and pipes and to the blocking hand-off for files) and the M runs
 * other Gs.  EINTR never comes out of them.  From a plain thread each is
 * the plain syscall.  Short reads and writes are as POSIX allows.
 *
 * Deadlines: goro_set_deadline gives the current G an absolute deadline
 * (goro_now clock).  A blocking call still pending at the deadline fails
 * with ETIMEDOUT and leaves the fd usable.  goro_close of an fd another G
 * is blocked on wakes that G, whose call fails with EBADF.
 */
GORO_EXPORT ssize_t goro_read(int fd, void *buf, size_t n);
GORO_EXPORT ssize_t goro_write(int fd, const void *buf, size_t n);
GORO_EXPORT ssize_t goro_pread(int fd, void *buf, size_t n, off_t off);
GORO_EXPORT ssize_t goro_pwrite(int fd, const void *buf, size_t n, off_t off);
GORO_EXPORT ssize_t goro_readv(int fd, const struct iovec *iov, int iovcnt);
GORO_EXPORT ssize_t goro_writev(int fd, const struct iovec *iov, int iovcnt);
GORO_EXPORT ssize_t goro_preadv(int fd, const struct iovec *iov, int iovcnt, off_t off);
GORO_EXPORT ssize_t goro_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off);
GORO_EXPORT int goro_openat(int dirfd, const char *path, int flags, mode_t mode);
GORO_EXPORT int goro_close(int fd);
struct statx;
GORO_EXPORT int goro_statx(int dirfd, const char *path, int flags,
			   unsigned int mask, struct statx *stx);
GORO_EXPORT int goro_fsync(int fd);
GORO_EXPORT int goro_fdatasync(int fd);
GORO_EXPORT int goro_sync_file_range(int fd, off_t off, off_t n, unsigned int flags);
GORO_EXPORT int goro_fallocate(int fd, int mode, off_t off, off_t len);
GORO_EXPORT int goro_ftruncate(int fd, off_t len);
GORO_EXPORT int goro_unlinkat(int dirfd, const char *path, int flags);
GORO_EXPORT int goro_renameat(int olddirfd, const char *oldpath,
			      int newdirfd, const char *newpath);
GORO_EXPORT int goro_mkdirat(int dirfd, const char *path, mode_t mode);
GORO_EXPORT int goro_socket(int domain, int type, int protocol);
GORO_EXPORT int goro_accept(int fd, struct sockaddr *addr, socklen_t *len);
GORO_EXPORT int goro_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
GORO_EXPORT int goro_connect(int fd, const struct sockaddr *addr, socklen_t len);
GORO_EXPORT ssize_t goro_recv(int fd, void *buf, size_t n, int flags);
GORO_EXPORT ssize_t goro_send(int fd, const void *buf, size_t n, int flags);
GORO_EXPORT ssize_t goro_recvmsg(int fd, struct msghdr *msg, int flags);
GORO_EXPORT ssize_t goro_sendmsg(int fd, const struct msghdr *msg, int flags);
/* shutdown(2) of a socket (goro_shutdown stops the runtime). */
GORO_EXPORT int goro_shutdown_socket(int fd, int how);
GORO_EXPORT int goro_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms);
GORO_EXPORT ssize_t goro_splice(int fd_in, off_t *off_in, int fd_out,
				off_t *off_out, size_t len, unsigned int flags);

/* CLOCK_MONOTONIC in nanoseconds: the clock of deadlines. */
GORO_EXPORT int64_t goro_now(void);
/* Sets the current G's deadline for blocking calls (absolute, goro_now
 * clock); 0 clears it.  Returns 0 or -EPERM (not on a G). */
GORO_EXPORT int goro_set_deadline(int64_t deadline_ns);

/* Which I/O backend is in force (after goro_init). */
enum goro_io_backend {
	GORO_IO_NONE = 0,	/* runtime not started */
	GORO_IO_URING = 1,	/* io_uring, a ring per M */
	GORO_IO_EPOLL = 2,	/* epoll netpoller + blocking hand-off */
};
GORO_EXPORT int goro_io_backend(void);

/* ===================================================================== */
/*  Channels                                                             */
/* ===================================================================== */

/*
 * A channel carries elements of one fixed size, copied in and out by
 * value (Go's chan).  cap 0 makes an unbuffered channel: each send waits
 * for a receiver and hands the element over directly.  Every call below
 * is safe from Gs and from plain threads: a G that must wait is parked
 * (its M runs other Gs); a plain thread sleeps on a futex.
 */
struct goro_chan;

/* Creates a channel of elements of elem_size bytes (0 is allowed: a
 * channel of signals) with room for cap buffered elements.  Returns it,
 * or NULL with *err (err may be NULL) = -EINVAL (elem_size above 64 KiB,
 * or cap * elem_size too large) or -ENOMEM. */
GORO_EXPORT struct goro_chan *goro_chan_make(size_t elem_size, size_t cap,
					     int *err);
/* Frees a channel no one uses any more.  Returns 0, or -EBUSY (the
 * channel is left alone) if a sender or receiver is still waiting on it. */
GORO_EXPORT int goro_chan_free(struct goro_chan *c);

/* Sends the elem_size bytes at elem, waiting for room (or, unbuffered,
 * for a receiver).  Returns 0, -EPIPE if the channel is closed (also when
 * it is closed while the sender waits: the element was not delivered), or
 * -EINVAL (c NULL, or elem NULL with a nonzero element size). */
GORO_EXPORT int goro_chan_send(struct goro_chan *c, const void *elem);
/* Receives one element into elem (NULL discards it), waiting for one.
 * *ok (ok may be NULL) is set to true for an element that was sent and
 * to false when the channel is closed and drained, in which case elem is
 * zero-filled.  Returns 0 or -EINVAL. */
GORO_EXPORT int goro_chan_recv(struct goro_chan *c, void *elem, bool *ok);
/* As send and recv, but never wait: -EAGAIN if they would. */
GORO_EXPORT int goro_chan_try_send(struct goro_chan *c, const void *elem);
GORO_EXPORT int goro_chan_try_recv(struct goro_chan *c, void *elem, bool *ok);
/* Closes the channel: the elements buffered can still be received, then
 * receivers get ok = false; every waiting receiver and sender is woken
 * (senders fail with -EPIPE).  Returns 0, or -EPIPE if it was already
 * closed (nothing changes), or -EINVAL. */
GORO_EXPORT int goro_chan_close(struct goro_chan *c);
/* Elements buffered now (a snapshot), and the capacity. */
GORO_EXPORT size_t goro_chan_len(const struct goro_chan *c);
GORO_EXPORT size_t goro_chan_cap(const struct goro_chan *c);

/* Select (Go's select statement). */
enum goro_select_op {
	GORO_SELECT_SEND = 1,
	GORO_SELECT_RECV = 2,
};
struct goro_select_case {
	struct goro_chan *chan;	/* in: NULL = a case that is never ready */
	unsigned op;		/* in: enum goro_select_op */
	void *elem;		/* in: send source / recv destination (may be NULL) */
	bool ok;		/* out, recv: true = element, false = closed */
	int err;		/* out, send: 0, or -EPIPE (channel closed) */
};
/* Waits until one of the n cases can proceed, completes exactly that one
 * and returns its index.  When several are ready, one is chosen uniformly
 * at random.  timeout_ns < 0 waits for ever; 0 never waits (Go's default
 * case): -EAGAIN if no case is ready; > 0 returns -ETIMEDOUT once that
 * many nanoseconds have passed.  A send case on a closed channel is
 * chosen like a ready one and reports err = -EPIPE.  Returns the index,
 * -EAGAIN, -ETIMEDOUT, -EINVAL (bad op, NULL send elem, or no usable case
 * with timeout_ns < 0) or -ENOMEM (more than 16 cases need memory). */
GORO_EXPORT int goro_select(struct goro_select_case *cases, size_t n,
			    int64_t timeout_ns);

/* ===================================================================== */
/*  WaitGroup (Go's sync.WaitGroup)                                      */
/* ===================================================================== */

/* Zero-initialise (GORO_WG_INIT) before use; no destroy needed.  Safe from
 * Gs and plain threads. */
struct goro_wg {
	uint64_t opaque[4];
};
#define GORO_WG_INIT { { 0, 0, 0, 0 } }

/* Adds delta (may be negative) to the counter.  Returns 0, or -EINVAL if
 * the counter would go negative (the counter is left unchanged). */
GORO_EXPORT int goro_wg_add(struct goro_wg *wg, int64_t delta);
GORO_EXPORT int goro_wg_done(struct goro_wg *wg);
/* Waits until the counter is zero.  Parks a G; blocks a plain thread. */
GORO_EXPORT int goro_wg_wait(struct goro_wg *wg);

/* ===================================================================== */
/*  Synchronization (Go's package sync)                                  */
/* ===================================================================== */

/*
 * Every primitive here is zero-initialised storage (the GORO_*_INIT
 * macros, or memset 0), needs no destroy, must not be copied or moved
 * while in use, and works from Gs and plain threads alike: a G that must
 * wait is parked (its M runs other Gs), a plain thread sleeps on a futex.
 * None of them is recursive.
 */

/* Mutex (Go's sync.Mutex).  A contended lock spins briefly, then parks.
 * Normally a woken waiter competes with newcomers; a waiter that has been
 * passed over for more than 1 ms switches the mutex to starvation mode,
 * in which the unlocker hands the mutex directly to the oldest waiter. */
struct goro_mutex {
	uint64_t opaque[4];
};
#define GORO_MUTEX_INIT { { 0, 0, 0, 0 } }
GORO_EXPORT int goro_mutex_lock(struct goro_mutex *m);
/* Returns 0, or -EBUSY if the mutex is held (or owed to a waiter). */
GORO_EXPORT int goro_mutex_trylock(struct goro_mutex *m);
/* Returns 0, or -EPERM if the mutex is not locked (nothing changes).  Any
 * thread or G may unlock, as in Go. */
GORO_EXPORT int goro_mutex_unlock(struct goro_mutex *m);

/* Readers-writer lock (Go's sync.RWMutex).  A waiting writer holds back
 * new readers, and a writer's unlock admits the readers waiting then, so
 * neither side starves. */
struct goro_rwlock {
	uint64_t opaque[8];
};
#define GORO_RWLOCK_INIT { { 0, 0, 0, 0, 0, 0, 0, 0 } }
GORO_EXPORT int goro_rwlock_rdlock(struct goro_rwlock *rw);
GORO_EXPORT int goro_rwlock_tryrdlock(struct goro_rwlock *rw);	/* -EBUSY */
GORO_EXPORT int goro_rwlock_wrlock(struct goro_rwlock *rw);
GORO_EXPORT int goro_rwlock_trywrlock(struct goro_rwlock *rw);	/* -EBUSY */
/* Release a read or a write hold: 0, or -EPERM if none is held. */
GORO_EXPORT int goro_rwlock_rdunlock(struct goro_rwlock *rw);
GORO_EXPORT int goro_rwlock_wrunlock(struct goro_rwlock *rw);

/* Condition variable (Go's sync.Cond) used with a goro_mutex. */
struct goro_cond {
	uint64_t opaque[4];
};
#define GORO_COND_INIT { { 0, 0, 0, 0 } }
/* Atomically unlocks m and waits for a signal, then locks m again before
 * returning.  m must be locked by the caller.  Wake-ups are in FIFO order
 * and never spurious, but re-check the condition as usual: another party
 * may take m first.  Returns 0 or -EPERM (m not locked). */
GORO_EXPORT int goro_cond_wait(struct goro_cond *c, struct goro_mutex *m);
/* Wakes the longest waiter / every waiter; no effect if none. */
GORO_EXPORT int goro_cond_signal(struct goro_cond *c);
GORO_EXPORT int goro_cond_broadcast(struct goro_cond *c);

/* Counting semaphore.  GORO_SEMA_INIT starts at 0; goro_sema_init sets
 * another count before first use.  Waiters are served in FIFO order. */
struct goro_sema {
	uint64_t opaque[4];
};
#define GORO_SEMA_INIT { { 0, 0, 0, 0 } }
/* Returns 0, or -EINVAL (count < 0). */
GORO_EXPORT int goro_sema_init(struct goro_sema *s, int64_t count);
/* Takes one unit, waiting for it. */
GORO_EXPORT int goro_sema_acquire(struct goro_sema *s);
/* Takes one unit or returns -EAGAIN. */
GORO_EXPORT int goro_sema_try_acquire(struct goro_sema *s);
/* Gives one unit back (to the oldest waiter, if any). */
GORO_EXPORT int goro_sema_release(struct goro_sema *s);

/* Once (Go's sync.Once): the first goro_once call runs fn(arg); later and
 * concurrent calls wait until that run has finished, then return without
 * running fn.  fn must not call goro_once on the same object (it would
 * wait for itself). */
struct goro_once {
	uint64_t opaque[4];
};
#define GORO_ONCE_INIT { { 0, 0, 0, 0 } }
GORO_EXPORT int goro_once(struct goro_once *o, void (*fn)(void *), void *arg);

/* ===================================================================== */
/*  Observability                                                        */
/* ===================================================================== */

/* Process-wide counters since goro_init.  Fields may be added at the end;
 * pass sizeof(struct goro_stats) so that an old binary keeps working. */
struct goro_stats {
	uint64_t gs_created;	/* Gs spawned */
	uint64_t gs_alive;	/* spawned and not yet finished */
	uint64_t gs_runnable;	/* on a run queue right now */
	uint64_t gs_free;	/* finished Gs kept for reuse */
	uint64_t switches;	/* context switches between Gs or to the scheduler */
	uint64_t steals;	/* successful work-stealing raids */
	uint64_t parks;		/* G parks (waiting on something) */
	uint64_t ms;		/* OS threads created as Ms */
	uint64_t ms_idle;	/* Ms asleep without work */
	uint64_t maxprocs;	/* GORO_MAXPROCS in force */
	/* Stacks (see kernel-notes/userfaultfd.md). */
	uint64_t stack_mode;	/* enum goro_stack_mode */
	uint64_t stack_slots;	/* slots ever carved from the arena */
	uint64_t stack_growth_faults;	/* faults that grew a stack */
	uint64_t stack_pages_populated;
	uint64_t stack_pages_released;
	uint64_t stack_overflows;
	uint64_t reserved[16];
};

enum goro_stack_mode {
	GORO_STACK_PLAIN = 0,		/* kernel demand paging */
	GORO_STACK_UFFD_THREAD = 1,	/* userfaultfd, handler thread */
	GORO_STACK_UFFD_SIGBUS = 2,	/* userfaultfd, in-thread SIGBUS */
};

/* Fills *st (size = sizeof *st).  Safe from any thread; the counters are
 * read without stopping the world, so they are only roughly consistent. */
GORO_EXPORT int goro_stats(struct goro_stats *st, size_t size);

/* Per-G stack figures of the current G.  Returns -EPERM on a plain thread. */
struct goro_stack_info {
	size_t limit;		/* usable stack bytes */
	size_t committed;	/* bytes backed by memory now */
	size_t peak;		/* largest committed so far */
};
GORO_EXPORT int goro_stack_info(struct goro_stack_info *info);

#ifdef __cplusplus
}
#endif

#endif /* GORO_H */
