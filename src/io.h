/*
 * io.h: the I/O layer's private interface, shared by netpoll.c (backend
 * choice, the scheduler hooks, the epoll netpoller), ring.c (the per-M
 * io_uring) and io.c (the goro_read ... goro_splice wrappers).
 *
 * The design of the ring is described at the top of ring.c ("Rings"),
 * the wake-up protocol of idle Ms at the top of netpoll.c ("Sleeping
 * Ms").  Nothing here is visible outside src/.
 */
#ifndef GORO_IO_H
#define GORO_IO_H

#include "internal.h"

struct io_uring_sqe;
struct goro__ring;

/* The backend in force: enum goro_io_backend.  Written once by
 * goro__io_init before any M starts, read racily afterwards. */
extern int goro__io_kind;

/* Per-M I/O state, in mp->ring.  Allocated by goro__io_m_init on the M's
 * own thread, freed by goro__io_m_exit. */
struct goro__iom {
	struct goro_m *m;		/* immutable */
	/* Wake-up state ("Sleeping Ms" in netpoll.c): */
	_Atomic uint32_t pending;	/* a goro__m_wakeup not yet consumed */
	_Atomic uint32_t sleeping;	/* enum sleep_state (netpoll.c) */
	_Atomic uint32_t kickers;	/* wakers using ring's fds right now */
	struct goro__ring *ring;	/* NULL unless GORO_IO_URING; owner */
};

/* ---- netpoll.c: waking ---------------------------------------------- */

/* Makes iom's M return from its kernel sleep (ring or epoll) if it is in
 * one, without counting as a goro__m_wakeup: for requests to the M's
 * I/O layer (cancels) and for a new earliest timer.  Any thread. */
void goro__io_kick(struct goro__iom *iom);
/* timer.c: a timer now first in the heap fires at `when`. */
void goro__io_timer_changed(int64_t when);

/* ---- ring.c -------------------------------------------------------- */

/* Probes io_uring once (on the calling thread, with a ring of the real
 * size).  0 if usable, else -errno (EPERM, ENOSYS, EINVAL: too old). */
int goro__ring_probe(void);
/* Creates/destroys the ring of iom's M, on that M's thread. */
int goro__ring_m_init(struct goro__iom *iom);
void goro__ring_m_exit(struct goro__iom *iom);
/* Submits, runs completions and cross-M requests, without blocking.
 * Returns how many Gs were made ready.  Owner only. */
int goro__ring_poll(struct goro__iom *iom);
/* Submits and waits in the kernel for one completion, a kick, or until
 * deadline (goro__nanotime; -1 = none); then reaps.  Owner only. */
int goro__ring_wait(struct goro__iom *iom, int64_t deadline);
/* Makes target's goro__ring_wait return.  Any thread. */
void goro__ring_kick(struct goro__iom *target);
/* Before the M blocks in goro_block: cancels the ops that could wait
 * for ever, so that their Gs re-issue them on another M.  Owner only. */
void goro__ring_enter_block(struct goro__iom *iom);
/* True if the ring has requests that only its owner can complete. */
bool goro__ring_busy(struct goro__iom *iom);
/* True if this kernel's ring has opcode op. */
bool goro__ring_has_op(unsigned op);

/* Runs the request in *tmpl (fd, buffers, flags; user_data ignored) on
 * the current M's ring, parking the current G until it completes.  With
 * deadline != 0 (goro__nanotime clock) a linked timeout ends it with
 * -ETIMEDOUT.  Returns the CQE's result: never -EINTR or -ERESTARTSYS
 * (the request is re-issued), -EBADF if the fd was closed under it (see
 * goro__ring_cancel_fd).  RING_NORETRY returns -EINTR instead of
 * re-issuing.  Must be called on a G whose M has a ring. */
#define RING_NORETRY 1u
int64_t goro__ring_call(const struct io_uring_sqe *tmpl, int fd,
			int64_t deadline, unsigned flags);
/* Wakes every G blocked in a ring request on fd (any M), with -EBADF,
 * and returns once every ring has cancelled them: the fd may then be
 * closed.  Until goro__ring_close_end(fd, <its result>), called just
 * before the close, new requests on fd fail with -EBADF.  Any thread. */
bool goro__ring_cancel_fd(int fd);
void goro__ring_close_end(int fd, bool marked);

/* ---- netpoll.c: the epoll netpoller (GORO_IO_EPOLL) ----------------- */

/* Parks the current G until fd is ready for `events` (POLLIN/POLLOUT),
 * the deadline passes (-ETIMEDOUT), or goro__netpoll_close(fd) (-EBADF).
 * 0 when ready (the caller retries its non-blocking call); -EPERM if fd
 * cannot be polled (a regular file: use the blocking hand-off). */
int goro__netpoll_wait(int fd, uint32_t events, int64_t deadline);
/* Wakes the Gs waiting on fd with -EBADF; call before close(fd). */
void goro__netpoll_close(int fd);

#endif /* GORO_IO_H */
