/*
 * stack-probe: the kernel behaviour goro's stacks rely on, measured on
 * this machine (the source of the figures in kernel-notes/userfaultfd.md).
 *
 *   stack-probe            everything
 *   stack-probe open       which ways of opening a userfaultfd work here
 *
 * Run it as root and as an unprivileged user (setpriv --reuid=nobody ...)
 * to fill in the privilege table.  Uses no goro code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define PG 4096UL
#define WALK_PAGES 2048		/* 8 MiB per walk */
#define WALKS 7

static char zeros[16 * PG] __attribute__((aligned(4096)));

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int uffd_open(int flags)
{
	return (int)syscall(SYS_userfaultfd, flags | O_CLOEXEC);
}

static int dev_open(void)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC), fd;

	if (dev < 0)
		return -1;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
	close(dev);
	return fd;
}

static int uffd_setup(int fd, uint64_t features, void *p, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	struct uffdio_register reg = {
		.range = { (uintptr_t)p, len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg))
		return -1;
	return 0;
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

static void show(const char *what, int r)
{
	printf("%-46s %s\n", what, r >= 0 ? "ok" : strerror(errno));
}

/* ---- Privileges ------------------------------------------------------- */

static void probe_open(void)
{
	int fd;

	printf("# opening a userfaultfd as uid %d\n", (int)getuid());
	fd = uffd_open(0);
	show("userfaultfd(0)", fd);
	if (fd >= 0)
		close(fd);
	fd = uffd_open(UFFD_USER_MODE_ONLY);
	show("userfaultfd(UFFD_USER_MODE_ONLY)", fd);
	if (fd >= 0)
		close(fd);
	fd = dev_open();
	show("/dev/userfaultfd + USERFAULTFD_IOC_NEW", fd);
	if (fd >= 0)
		close(fd);
}

/* ---- Kernel-mode faults ------------------------------------------------- */

static int handler_fd = -1;

static void *serve(void *arg)
{
	struct uffd_msg m;

	(void)arg;
	while (read(handler_fd, &m, sizeof m) == sizeof m) {
		struct uffdio_copy c = {
			.dst = m.arg.pagefault.address & ~(PG - 1),
			.src = (uintptr_t)zeros, .len = PG };
		ioctl(handler_fd, UFFDIO_COPY, &c);
	}
	return NULL;
}

static void on_bus_skip(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	_exit(9);	/* a kernel-mode fault must never raise SIGBUS */
}

/* read() from a pipe into a missing page of a registered range. */
static void kfault(const char *name, int fd, uint64_t feat, bool thread)
{
	char *p = map(PG * 4);
	int pfd[2];
	pthread_t t;
	ssize_t n;

	if (fd < 0 || uffd_setup(fd, feat, p, PG * 4)) {
		printf("%-46s unavailable (%s)\n", name, strerror(errno));
		return;
	}
	if (thread) {
		handler_fd = fd;
		pthread_create(&t, NULL, serve, NULL);
	}
	if (pipe(pfd))
		exit(1);
	if (write(pfd[1], "12345678", 8) != 8)
		exit(1);
	n = read(pfd[0], p + PG, 8);
	printf("%-46s %s\n", name, n == 8 ? "ok (served)" :
	       n < 0 ? strerror(errno) : "short");
	close(pfd[0]);
	close(pfd[1]);
	if (thread)
		pthread_cancel(t);
}

static void probe_kernel_faults(void)
{
	struct sigaction sa = { .sa_sigaction = on_bus_skip,
				.sa_flags = SA_SIGINFO };

	sigaction(SIGBUS, &sa, NULL);
	printf("# read(2) into a missing registered page\n");
	kfault("full uffd + handler thread", uffd_open(0), 0, true);
	kfault("/dev/userfaultfd uffd + handler thread", dev_open(), 0, true);
	kfault("UFFD_USER_MODE_ONLY + handler thread",
	       uffd_open(UFFD_USER_MODE_ONLY), 0, true);
	kfault("UFFD_FEATURE_SIGBUS (+ USER_MODE_ONLY)",
	       uffd_open(UFFD_USER_MODE_ONLY), UFFD_FEATURE_SIGBUS, false);
	signal(SIGBUS, SIG_DFL);
}

/* ---- Guard regions under UFFDIO_COPY ------------------------------------ */

static sigjmp_buf guard_jb;

static void on_segv_jump(int sig)
{
	(void)sig;
	siglongjmp(guard_jb, 1);
}

static void probe_guard(void)
{
	char *p = map(PG * 4);
	int fd = uffd_open(UFFD_USER_MODE_ONLY);
	struct uffdio_copy c = { .dst = (uintptr_t)p, .src = (uintptr_t)zeros,
				 .len = PG };
	int r;

	printf("# MADV_GUARD_INSTALL in a registered range\n");
	if (fd < 0 || uffd_setup(fd, UFFD_FEATURE_SIGBUS, p, PG * 4)) {
		printf("uffd unavailable\n");
		return;
	}
	r = madvise(p, PG, MADV_GUARD_INSTALL);
	show("madvise(MADV_GUARD_INSTALL)", r);
	if (r)
		return;
	r = ioctl(fd, UFFDIO_COPY, &c);
	show("UFFDIO_COPY onto the guard page", r);
	signal(SIGSEGV, on_segv_jump);
	if (sigsetjmp(guard_jb, 1) == 0) {
		p[0] = 1;
		printf("%-46s %s\n", "write to it afterwards", "succeeds: guard gone");
	} else {
		printf("%-46s %s\n", "write to it afterwards", "SIGSEGV: guard kept");
	}
	signal(SIGSEGV, SIG_DFL);
}

/* ---- Costs ---------------------------------------------------------------- */

static int bus_fd;
static size_t bus_batch;
static char *bus_base, *bus_lo;	/* the range; its lowest populated byte */

/* Fills from the faulting page's batch up to bus_lo: contiguous. */
static void on_bus_fill(int sig, siginfo_t *si, void *uc)
{
	char *page = (char *)((uintptr_t)si->si_addr & ~(PG - 1));
	char *lo = page + PG - bus_batch * PG;
	struct uffdio_copy c;

	(void)sig;
	(void)uc;
	if (lo < bus_base)
		lo = bus_base;
	c = (struct uffdio_copy){ .dst = (uintptr_t)lo, .src = (uintptr_t)zeros,
				  .len = (size_t)(bus_lo - lo),
				  .mode = UFFDIO_COPY_MODE_DONTWAKE };
	if (ioctl(bus_fd, UFFDIO_COPY, &c) && errno != EEXIST)
		_exit(8);
	bus_lo = lo;
}

/* Walks WALK_PAGES pages top-down, one write per page; ns per page. */
static int64_t walk(char *base)
{
	int64_t t0 = now_ns();

	for (long i = WALK_PAGES - 1; i >= 0; i--)
		((volatile char *)base)[i * PG + 8] = 1;
	return (now_ns() - t0) / WALK_PAGES;
}

static int64_t med(int64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_i64);
	return v[n / 2];
}

static void cost_plain(void)
{
	int64_t v[WALKS];
	char *p = map(WALK_PAGES * PG);

	for (int i = 0; i < WALKS; i++) {
		madvise(p, WALK_PAGES * PG, MADV_DONTNEED);
		v[i] = walk(p);
	}
	printf("%-46s %6lld ns/page\n", "plain demand paging", (long long)med(v, WALKS));
	munmap(p, WALK_PAGES * PG);
}

static void cost_sigbus(size_t batch)
{
	struct sigaction sa = { .sa_sigaction = on_bus_fill,
				.sa_flags = SA_SIGINFO | SA_ONSTACK };
	char *p = map(WALK_PAGES * PG);
	int64_t v[WALKS];
	char label[64];

	bus_fd = uffd_open(UFFD_USER_MODE_ONLY);
	if (bus_fd < 0 || uffd_setup(bus_fd, UFFD_FEATURE_SIGBUS, p, WALK_PAGES * PG)) {
		printf("sigbus: unavailable\n");
		return;
	}
	sigaction(SIGBUS, &sa, NULL);
	bus_batch = batch;
	for (int i = 0; i < WALKS; i++) {
		madvise(p, WALK_PAGES * PG, MADV_DONTNEED);
		bus_base = p;
		bus_lo = p + WALK_PAGES * PG;
		v[i] = walk(p);
	}
	snprintf(label, sizeof label, "uffd SIGBUS, UFFDIO_COPY x%zu per fault", batch);
	printf("%-46s %6lld ns/page\n", label, (long long)med(v, WALKS));
	signal(SIGBUS, SIG_DFL);
	close(bus_fd);
	munmap(p, WALK_PAGES * PG);
}

static size_t thr_batch;
static char *thr_base;

static void *serve_batch(void *arg)
{
	struct uffd_msg m;

	(void)arg;
	while (read(handler_fd, &m, sizeof m) == sizeof m) {
		char *page = (char *)(uintptr_t)(m.arg.pagefault.address & ~(PG - 1));
		char *lo = page + PG - thr_batch * PG;
		struct uffdio_copy c;

		if (lo < thr_base)
			lo = thr_base;
		c = (struct uffdio_copy){ .dst = (uintptr_t)lo, .src = (uintptr_t)zeros,
					  .len = (size_t)(page + PG - lo) };
		if (ioctl(handler_fd, UFFDIO_COPY, &c) && errno == EEXIST) {
			struct uffdio_range w = { (uintptr_t)page, PG };
			ioctl(handler_fd, UFFDIO_WAKE, &w);
		}
	}
	return NULL;
}

static void cost_thread(size_t batch)
{
	char *p = map(WALK_PAGES * PG);
	int64_t v[WALKS];
	char label[64];
	pthread_t t;

	handler_fd = uffd_open(UFFD_USER_MODE_ONLY);
	if (handler_fd < 0 || uffd_setup(handler_fd, 0, p, WALK_PAGES * PG)) {
		printf("thread: unavailable\n");
		return;
	}
	thr_batch = batch;
	thr_base = p;
	pthread_create(&t, NULL, serve_batch, NULL);
	for (int i = 0; i < WALKS; i++) {
		madvise(p, WALK_PAGES * PG, MADV_DONTNEED);
		v[i] = walk(p);
	}
	snprintf(label, sizeof label, "uffd handler thread, UFFDIO_COPY x%zu", batch);
	printf("%-46s %6lld ns/page\n", label, (long long)med(v, WALKS));
	pthread_cancel(t);
	pthread_join(t, NULL);
	close(handler_fd);
	munmap(p, WALK_PAGES * PG);
}

static void cost_guard_install(void)
{
	enum { N = 20000 };
	size_t slot = 1 << 20;
	char *p = map((size_t)N * slot);
	int64_t t0 = now_ns();

	for (int i = 0; i < N; i++)
		if (madvise(p + (size_t)i * slot, 16 * PG, MADV_GUARD_INSTALL)) {
			printf("MADV_GUARD_INSTALL: %s\n", strerror(errno));
			return;
		}
	printf("%-46s %6lld ns/call\n", "MADV_GUARD_INSTALL (64 KiB guard)",
	       (long long)((now_ns() - t0) / N));
	munmap(p, (size_t)N * slot);
}

static void cost_dontneed(void)
{
	size_t len = 1 << 20;
	char *p = map(len);
	int64_t e, f;

	memset(p, 1, len);
	e = now_ns();
	madvise(p, len, MADV_DONTNEED);
	e = now_ns() - e;
	f = now_ns();
	for (int i = 0; i < 1000; i++)
		madvise(p, len, MADV_DONTNEED);
	f = (now_ns() - f) / 1000;
	printf("%-46s %6lld ns\n", "MADV_DONTNEED of 1 MiB, 256 pages present", (long long)e);
	printf("%-46s %6lld ns\n", "MADV_DONTNEED of 1 MiB, nothing present", (long long)f);
	munmap(p, len);
}

int main(int argc, char **argv)
{
	stack_t ss = { .ss_sp = malloc(1 << 16), .ss_size = 1 << 16 };

	sigaltstack(&ss, NULL);
	probe_open();
	if (argc > 1 && !strcmp(argv[1], "open"))
		return 0;
	probe_kernel_faults();
	probe_guard();
	printf("# growth cost: %d pages walked top-down, median of %d walks\n",
	       WALK_PAGES, WALKS);
	cost_plain();
	cost_sigbus(1);
	cost_sigbus(4);
	cost_sigbus(16);
	cost_thread(1);
	cost_thread(16);
	cost_guard_install();
	cost_dontneed();
	return 0;
}
