/*
 * uffd.c: userfaultfd for the stack arena, the fault handler thread, and
 * the signal handlers stack growth and overflow detection depend on.
 *
 * "Opening a userfaultfd" (kernel-notes/userfaultfd.md, "Privileges").
 * SIGBUS mode opens with UFFD_USER_MODE_ONLY: the kernel never waits for
 * us in that mode anyway (kernel-mode faults get EFAULT whatever the
 * flag), and the flag makes the call unprivileged under the default
 * vm.unprivileged_userfaultfd=0.  Thread mode first tries a uffd that
 * also serves kernel-mode faults (userfaultfd(0), which needs
 * CAP_SYS_PTRACE or the sysctl at 1, then /dev/userfaultfd), and falls
 * back to UFFD_USER_MODE_ONLY; the EFAULT trap is closed either way by
 * the contiguous fill (stack.c).  No UFFD_FEATURE_EVENT_* is ever
 * requested: each makes fork, madvise or munmap wait for a reader.
 *
 * "The handler thread" (thread mode).  One thread blocks in read() on the
 * uffd, and for each page fault message grows the slot containing the
 * address (goro__stack_grow) with UFFDIO_COPY, which also wakes the
 * faulting thread.  A fault that finds its page already present (two
 * messages for one page) only needs UFFDIO_WAKE.  A fault in a guard zone
 * (only possible without guard markers) is reported as an overflow
 * without a backtrace: this thread does not have the G's registers.
 *
 * "Signals".  SIGBUS (uffd missing page in SIGBUS mode) and SIGSEGV (guard
 * marker, mprotect guard) are handled by goro with SA_ONSTACK|SA_SIGINFO,
 * on a per-M alternate stack made in goro__stack_m_init: a handler cannot
 * run on the G's stack, whose next page is missing.  Faults that are not
 * goro's go to the handler that was installed before (chaining), or to
 * the default action.
 *
 * The other half: the kernel writes any signal frame below the SP of the
 * interrupted code, and at a G's populated boundary that page is missing
 * and cannot be filled from kernel mode, so delivering a signal whose
 * handler lacks SA_ONSTACK would kill the process.  goro's decision:
 *   1. libgoro defines sigaction() and signal(), which add SA_ONSTACK to
 *      every handler installed through them, then call the C library's.
 *      A handler with SA_ONSTACK runs on the M's alternate stack; on a
 *      plain thread without one, SA_ONSTACK changes nothing.
 *   2. goro_init and every M start re-check all signals and add
 *      SA_ONSTACK to handlers installed before goro or through other
 *      paths (raw syscalls, sigset, bsd_signal).
 *   3. Once goro owns SIGBUS and SIGSEGV, sigaction() on those two
 *      signals does not replace goro's handlers: it records the new
 *      handler as the one goro chains to, and reports it as the current
 *      one, so programs and sanitizers that install fault handlers keep
 *      working.
 * Go asks the same of C code in a Go process (handlers must use
 * SA_ONSTACK); goro enforces it instead of documenting it.
 *
 * "Fork".  Without UFFD_FEATURE_EVENT_FORK the child's copy of the arena
 * is not registered: missing pages are demand-zeroed by the kernel.  A
 * pthread_atfork child handler switches the child to plain mode and
 * closes the inherited uffd, whose ioctls would act on the parent's
 * memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"
#include "stack.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1			/* Linux 5.11 */
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)	/* Linux 6.1 */
#endif

#define ALTSTACK_SIZE (64 * 1024)
#define FILL_BUF (256 * 1024)

static int uffd = -1;			/* immutable once set (fork: -1) */
static pthread_t handler_thread;

/* The zero pages UFFDIO_COPY copies from.  Never written: it stays the
 * shared zero page, so it costs no memory. */
static char zeros[FILL_BUF] __attribute__((aligned(4096)));

/* ---- Opening ---------------------------------------------------------- */

static int open_uffd(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int open_dev_uffd(void)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int fd;

	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	close(dev);
	return fd;
}

static int api_and_register(int fd, uint64_t features, char *base,
			    size_t size)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)base, .len = size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	if ((api.features & features) != features)
		return -ENOSYS;
	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (!(reg.ioctls & ((uint64_t)1 << _UFFDIO_COPY)))
		return -ENOSYS;
	return 0;
}

static void *handler_main(void *arg);

static void atfork_child(void)
{
	/* The child's arena is plain demand-paged memory now. */
	if (uffd >= 0) {
		close(uffd);
		uffd = -1;
	}
	store_relaxed(&goro__stack_mode_now, GORO_STACK_PLAIN);
}

int goro__uffd_start(int want, char *base, size_t size, const char **how)
{
	uint64_t feat = want == GORO_STACK_UFFD_SIGBUS ?
			UFFD_FEATURE_SIGBUS : UFFD_FEATURE_THREAD_ID;
	int fd = -ENOSYS, r;

	if (want == GORO_STACK_UFFD_THREAD) {
		fd = open_uffd(0);
		*how = "kernel faults served (userfaultfd)";
		if (fd < 0) {
			fd = open_dev_uffd();
			*how = "kernel faults served (/dev/userfaultfd)";
		}
	}
	if (fd < 0) {
		fd = open_uffd(UFFD_USER_MODE_ONLY);
		*how = "user-mode only";
	}
	if (fd < 0)
		return fd;
	r = api_and_register(fd, feat, base, size);
	if (r) {
		close(fd);
		return r;
	}
	uffd = fd;
	if (want == GORO_STACK_UFFD_THREAD) {
		sigset_t all, old;

		/* The handler thread takes no asynchronous signals. */
		sigfillset(&all);
		sigdelset(&all, SIGSEGV);
		sigdelset(&all, SIGBUS);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		r = pthread_create(&handler_thread, NULL, handler_main, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r) {
			close(fd);
			uffd = -1;
			return -r;
		}
		pthread_detach(handler_thread);
	}
	pthread_atfork(NULL, NULL, atfork_child);
	return 0;
}

int goro__uffd_fill(char *lo, size_t len, bool wake)
{
	while (len) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)lo,
			.src = (uintptr_t)zeros,
			.len = len < FILL_BUF ? len : FILL_BUF,
			.mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE,
		};

		if (uffd < 0)
			return 0;	/* forked child: plain memory */
		if (ioctl(uffd, UFFDIO_COPY, &c) == 0) {
			lo += c.len;
			len -= c.len;
			continue;
		}
		if (errno == EAGAIN) {
			/* The mm changed under us; c.copy says how far it
			 * got (0 or a positive byte count). */
			if (c.copy > 0) {
				lo += c.copy;
				len -= (size_t)c.copy;
			}
			continue;
		}
		if (errno != EEXIST)
			return -errno;
		/* Some page was present already: skip past it. */
		if (c.copy > 0) {
			lo += c.copy;
			len -= (size_t)c.copy;
		}
		if (wake) {
			struct uffdio_range w = { (uintptr_t)lo, GORO_PAGE };
			ioctl(uffd, UFFDIO_WAKE, &w);
		}
		lo += GORO_PAGE;
		len -= GORO_PAGE;
	}
	return 0;
}

/* ---- The handler thread --------------------------------------------------- */

static bool below(struct goro_g *gp, const char *addr);

/* The G that the M with thread id tid runs, or NULL (an io-wq worker, a
 * plain thread).  That thread is blocked in the fault, so its curg holds
 * still while we look. */
static struct goro_g *g_of_tid(pid_t tid)
{
	for (struct goro_m *mp = load_acquire(&goro__sched.allm); mp;
	     mp = mp->alllink)
		if (mp->tid == tid)
			return mp->curg;
	return NULL;
}

static void *handler_main(void *arg)
{
	struct uffd_msg msgs[16];

	(void)arg;
	pthread_setname_np(pthread_self(), "goro-uffd");
	for (;;) {
		ssize_t n = read(uffd, msgs, sizeof msgs);

		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			goro__throw("uffd handler: read failed");
		}
		for (size_t i = 0; i < (size_t)n / sizeof msgs[0]; i++) {
			struct uffd_msg *m = &msgs[i];
			char *addr;
			struct goro_g *gp, *cur;

			if (m->event != UFFD_EVENT_PAGEFAULT)
				continue;
			addr = (char *)(uintptr_t)m->arg.pagefault.address;
			cur = g_of_tid((pid_t)m->arg.pagefault.feat.ptid);
			if (cur && below(cur, addr))
				goro__stack_overflow(cur, addr, NULL);
			gp = goro__stack_slot_of(addr);
			if (!gp)
				goro__throw("uffd handler: fault outside any "
					    "stack slot");
			if (addr < gp->stack.lo)
				goro__stack_overflow(gp, addr, NULL);
			if (cur && cur != gp)
				goro__throw("uffd handler: a G touched another "
					    "G's missing stack page");
			if (addr >= gp->stack.populated_lo) {
				/* Already filled: just wake the thread. */
				struct uffdio_range w = {
					(uintptr_t)addr & ~(GORO_PAGE - 1),
					GORO_PAGE };
				ioctl(uffd, UFFDIO_WAKE, &w);
				continue;
			}
			if (goro__stack_grow(gp, addr))
				goro__throw("uffd handler: UFFDIO_COPY failed");
		}
	}
	return NULL;
}

/* ---- Signals ------------------------------------------------------------ */

/* glibc's own name for sigaction(), which the interposer below calls.
 * Calling it directly (not through dlsym(RTLD_NEXT)) also keeps a
 * sanitizer's sigaction interceptor from refusing goro's fault handlers. */
extern int __sigaction(int sig, const struct sigaction *act,
		       struct sigaction *old);
static _Atomic bool own_faults;		/* goro's SIGBUS/SIGSEGV installed */
/* What goro chains to; written by the sigaction interposer under
 * chain_lock, read by the handlers (a torn read is harmless: it can only
 * happen while the program is installing a fault handler). */
static struct sigaction chain_bus, chain_segv;
static struct goro__lock chain_lock = GORO__LOCK_INIT;

int goro__real_sigaction(int sig, const struct sigaction *act,
			 struct sigaction *old)
{
	return __sigaction(sig, act, old);
}

static void chain(int sig, siginfo_t *si, void *uc, struct sigaction *old)
{
	if (old->sa_flags & SA_SIGINFO) {
		if (old->sa_sigaction) {
			old->sa_sigaction(sig, si, uc);
			return;
		}
	} else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
		return;
	}
	/* Default action: reinstate it and let the fault happen again (or
	 * re-send a signal someone sent us). */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	goro__real_sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

static uintptr_t uc_sp(void *ucv)
{
#if defined(__x86_64__)
	return (uintptr_t)((ucontext_t *)ucv)->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	return (uintptr_t)((ucontext_t *)ucv)->uc_mcontext.sp;
#else
	(void)ucv;
	return 0;
#endif
}

/* Is a fault at addr the overflow of gp?  True when addr is below gp's
 * usable stack, at most one slot size below it: its guard zone, or the
 * slot underneath, where a frame larger than the guard zone lands. */
static bool below(struct goro_g *gp, const char *addr)
{
	return addr < gp->stack.lo &&
	       (size_t)(gp->stack.lo - addr) <=
	       (size_t)(gp->stack.hi - gp->stack.guard_lo);
}

/* The G the faulting thread runs (also inside goro_block), or NULL. */
static struct goro_g *running_g(void)
{
	struct goro_m *mp = goro__m_self();

	return mp ? mp->curg : NULL;
}

/* The overflowing G of a fault at addr taken with SP sp: the running G if
 * the address is below its stack; on a thread that runs no G, the G
 * whose slot holds sp. */
static struct goro_g *overflowing_g(char *addr, uintptr_t sp)
{
	struct goro_g *gp = running_g();

	if (!gp)
		gp = goro__stack_slot_of((void *)sp);
	return gp && below(gp, addr) ? gp : NULL;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved = errno, r;
	char *addr = si->si_addr;
	struct goro_g *gp, *og;

	if (si->si_code != BUS_ADRERR || !goro__stack_in_arena(addr) ||
	    load_relaxed(&goro__stack_mode_now) != GORO_STACK_UFFD_SIGBUS)
		goto not_ours;
	og = overflowing_g(addr, uc_sp(uc));
	if (og)
		goro__stack_overflow(og, addr, uc);
	gp = goro__stack_slot_of(addr);
	if (!gp)
		goto not_ours;
	if (addr < gp->stack.lo)	/* guard zone without markers */
		goro__stack_overflow(gp, addr, uc);
	/* Only a G's own thread grows its stack: anything else touching a
	 * missing page of it is a stray pointer, left to crash. */
	og = running_g();
	if (og && og != gp)
		goto not_ours;
	if (addr >= gp->stack.hi - GORO_PAGE)
		goto not_ours;		/* top pages are never missing */
	r = goro__stack_grow(gp, addr);
	if (r) {
		char msg[] = "goro: stack growth failed (UFFDIO_COPY errno   )\n";
		char *d = strstr(msg, "   )");

		d[0] = (char)('0' + (-r / 100) % 10);
		d[1] = (char)('0' + (-r / 10) % 10);
		d[2] = (char)('0' + -r % 10);
		goro__write_stderr(msg);
		abort();
	}
	errno = saved;
	return;
not_ours:
	errno = saved;
	chain(sig, si, uc, &chain_bus);
}

static void on_sigsegv(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	char *addr = si->si_addr;
	struct goro_g *gp;

	if (si->si_code > 0 && goro__stack_in_arena(addr)) {
		gp = overflowing_g(addr, uc_sp(uc));
		if (!gp) {
			gp = goro__stack_slot_of(addr);
			if (gp && addr >= gp->stack.lo)
				gp = NULL;
		}
		if (gp)
			goro__stack_overflow(gp, addr, uc);
	}
	if (si->si_code == SI_KERNEL && goro__stack_slot_of((void *)uc_sp(uc))) {
		/* The kernel could not write a signal frame below a G's SP:
		 * a handler without SA_ONSTACK that escaped goro's checks
		 * (see "Signals" above). */
		goro__write_stderr("goro: a signal frame could not be written "
				   "on a G stack (handler without SA_ONSTACK?)\n");
		abort();
	}
	errno = saved;
	chain(sig, si, uc, &chain_segv);
}

void goro__signals_fix_onstack(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (goro__real_sigaction(sig, NULL, &sa))
			continue;
		if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN ||
		    (sa.sa_flags & SA_ONSTACK))
			continue;
		sa.sa_flags |= SA_ONSTACK;
		goro__real_sigaction(sig, &sa, NULL);
	}
}

int goro__signals_init(void)
{
	struct sigaction sa;

	goro__lock(&chain_lock);
	if (load_relaxed(&own_faults)) {
		goro__unlock(&chain_lock);
		return 0;
	}
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sa.sa_sigaction = on_sigbus;
	if (goro__real_sigaction(SIGBUS, &sa, &chain_bus))
		goto err;
	sa.sa_sigaction = on_sigsegv;
	if (goro__real_sigaction(SIGSEGV, &sa, &chain_segv))
		goto err;
	store_release(&own_faults, true);
	goro__unlock(&chain_lock);
	goro__signals_fix_onstack();
	return 0;
err:
	goro__unlock(&chain_lock);
	return -errno;
}

/*
 * The interposed sigaction (see "Signals" above).  Exported from libgoro;
 * follows the POSIX contract of the call it replaces (-1 and errno).
 */
__attribute__((visibility("default")))
int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct sigaction fixed;

	if (act && act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN &&
	    !(act->sa_flags & SA_ONSTACK)) {
		fixed = *act;
		fixed.sa_flags |= SA_ONSTACK;
		act = &fixed;
	}
	if ((sig == SIGBUS || sig == SIGSEGV) && load_acquire(&own_faults)) {
		struct sigaction *c = sig == SIGBUS ? &chain_bus : &chain_segv;

		goro__lock(&chain_lock);
		if (old)
			*old = *c;
		if (act)
			*c = *act;
		goro__unlock(&chain_lock);
		return 0;
	}
	return goro__real_sigaction(sig, act, old);
}

__attribute__((visibility("default")))
sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;	/* BSD semantics, as glibc's signal() */
	if (sigaction(sig, &sa, &old))
		return SIG_ERR;
	return old.sa_handler;
}

/* ---- Per-M alternate signal stack ---------------------------------------- */

int goro__stack_m_init(struct goro_m *mp)
{
	sigset_t faults;
	stack_t ss;
	char *p;

	/* The alternate stack, with a guard page below it. */
	p = mmap(NULL, ALTSTACK_SIZE + GORO_PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	mprotect(p, GORO_PAGE, PROT_NONE);
	ss.ss_sp = p + GORO_PAGE;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL)) {
		int r = -errno;
		munmap(p, ALTSTACK_SIZE + GORO_PAGE);
		return r;
	}
	mp->altstack = p;
	mp->altstack_size = ALTSTACK_SIZE + GORO_PAGE;
	/* A blocked SIGBUS or SIGSEGV at fault time is forced to its default
	 * action, which kills the process: keep them open on every M. */
	sigemptyset(&faults);
	sigaddset(&faults, SIGBUS);
	sigaddset(&faults, SIGSEGV);
	pthread_sigmask(SIG_UNBLOCK, &faults, NULL);
	goro__signals_fix_onstack();
	return 0;
}

void goro__stack_m_exit(struct goro_m *mp)
{
	stack_t ss = { .ss_flags = SS_DISABLE };

	if (!mp->altstack)
		return;
	sigaltstack(&ss, NULL);
	munmap(mp->altstack, mp->altstack_size);
	mp->altstack = NULL;
}
