/*
 * check_stack.c: G stacks (stack.c, uffd.c; issue 3).
 *
 * Every test runs in whatever mode GORO_STACK_MODE selects (the matrix in
 * run-suite.sh runs it in each), and asserts that the mode in force is the
 * one the environment and the kernel allow.  Crash tests run the runtime
 * in a forked child (t_child) and assert SIGABRT and the exact report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

#define KIB 1024UL
#define MIB (1024UL * 1024)

/* Sanitizer builds have larger frames and touch more memory (shadow):
 * a fresh G may run into its second page before it can look (plain mode
 * measures with mincore), the churn bound includes ASan's shadow of the
 * stacks, and the million-G test runs at a quarter of the scale to keep
 * `make check` within its time budget.  The normal build asserts the
 * real figures in every mode. */
#if defined(__SANITIZE_ADDRESS__)
#define T_FRESH_OK(c) ((c) == 4096 || \
	((c) == 8192 && stats().stack_mode == GORO_STACK_PLAIN))
#define T_CHURN_RSS_MAX (16 * MIB)
#define PARKED_N 250000
#elif defined(__SANITIZE_THREAD__)
/* TSan: every G is a TSan fiber, and TSan dies past 8,128 threads; its
 * shadow memory also dwarfs the stacks, so the churn test checks only
 * the counters. */
#define T_FRESH_OK(c) ((c) == 4096 || \
	((c) == 8192 && stats().stack_mode == GORO_STACK_PLAIN))
#define T_CHURN_RSS_MAX (1024 * MIB)
#define PARKED_N 4000
#define T_TSAN 1
#else
#define T_FRESH_OK(c) ((c) == 4096)
#define T_CHURN_RSS_MAX (4 * MIB)
#define PARKED_N 1000000
#endif
#ifndef T_TSAN
#define T_TSAN 0	/* TSan maps memory of its own per fiber (per G) */
#endif

/* The mode the runtime must pick: what GORO_STACK_MODE asks for if the
 * kernel has userfaultfd for us (UFFD_USER_MODE_ONLY needs no privilege),
 * SIGBUS mode by default, plain otherwise. */
static int expected_mode(void)
{
#if defined(__SANITIZE_THREAD__)
	return GORO_STACK_PLAIN;	/* stack.c: always plain under TSan */
#endif
	const char *m = getenv("GORO_STACK_MODE");
	long fd = syscall(SYS_userfaultfd, 1 /* UFFD_USER_MODE_ONLY */ | O_CLOEXEC);

	if (fd >= 0)
		close((int)fd);
	if (m && !strcmp(m, "plain"))
		return GORO_STACK_PLAIN;
	if (fd < 0)
		return GORO_STACK_PLAIN;
	if (m && !strcmp(m, "uffd-thread"))
		return GORO_STACK_UFFD_THREAD;
	return GORO_STACK_UFFD_SIGBUS;
}

static struct goro_stats stats(void)
{
	struct goro_stats st;

	ck_assert_int_eq(goro_stats(&st, sizeof st), 0);
	return st;
}

static goro_t spawn_opts(void *(*fn)(void *), void *arg, size_t size,
			 const char *name)
{
	struct goro_spawn_opts o = { .stack_size = size, .name = name };
	goro_t h;
	int r = goro_spawn(&h, fn, arg, &o);

	ck_assert_msg(r == 0, "goro_spawn: %s", strerror(-r));
	return h;
}

/* ---- Mode ------------------------------------------------------------- */

START_TEST(test_stack_mode_matches_env)
{
	ck_assert_uint_eq(stats().stack_mode, (unsigned)expected_mode());
}
END_TEST

static void child_verbose_init(void *arg)
{
	(void)arg;
	setenv("GORO_DEBUG", "verbose=1", 1);
	if (goro_init(NULL))
		_exit(3);
	goro_shutdown();
}

/* With verbose=1 the runtime says which mode is in force, in one line. */
START_TEST(test_stack_mode_line)
{
	static const char *const names[] = { "plain", "uffd-thread", "uffd-sigbus" };
	char err[4096], want[64];
	int st = t_child(child_verbose_init, NULL, err, sizeof err);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, err);
	snprintf(want, sizeof want, "goro: stack mode: %s", names[expected_mode()]);
	ck_assert_msg(strstr(err, want), "no '%s' in:\n%s", want, err);
}
END_TEST

static void child_bad_mode(void *arg)
{
	(void)arg;
	setenv("GORO_STACK_MODE", "bogus", 1);
	_exit(goro_init(NULL) == -EINVAL ? 0 : 3);
}

START_TEST(test_stack_mode_bad_value)
{
	char err[4096];
	int st = t_child(child_bad_mode, NULL, err, sizeof err);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, err);
	ck_assert_str_eq(err, "goro: GORO_STACK_MODE=bogus is not one of plain, "
			 "uffd-thread, uffd-sigbus, auto\n");
}
END_TEST

static uint64_t deep(unsigned depth);

/* A kernel without userfaultfd (here: a seccomp filter makes it ENOSYS):
 * the requested mode falls back to plain with one line saying so, and
 * stacks still grow. */
static void *g_grow_512k(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)(deep(128) == 128 * 129 / 2);
}

/* Makes this process look like an older or locked-down kernel with a
 * seccomp filter: userfaultfd() fails with ENOSYS (no_uffd), and
 * madvise(..., MADV_GUARD_INSTALL) with EINVAL (no_guard, as before 6.13).
 * Returns 0 or -1. */
static int pretend_kernel(bool no_uffd, bool no_guard)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, no_uffd ? SECCOMP_RET_ERRNO | ENOSYS :
			 SECCOMP_RET_ALLOW),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 102 /* MADV_GUARD_INSTALL */, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, no_guard ? SECCOMP_RET_ERRNO | EINVAL :
			 SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -1;
	return 0;
}

static void child_no_uffd(void *arg)
{
	struct goro_stats st;
	void *ok = NULL;

	setenv("GORO_STACK_MODE", arg, 1);
	unsetenv("GORO_DEBUG");
	if (pretend_kernel(true, false))
		_exit(3);
	if (goro_init(NULL) || goro_stats(&st, sizeof st))
		_exit(4);
	if (st.stack_mode != GORO_STACK_PLAIN)
		_exit(5);
	if (goro_run(g_grow_512k, NULL, &ok) || !ok)
		_exit(6);
	_exit(0);
}

START_TEST(test_stack_fallback_without_userfaultfd)
{
	char err[4096];
	int st = t_child(child_no_uffd, "uffd-sigbus", err, sizeof err);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, err);
#if defined(__SANITIZE_THREAD__)
	ck_assert_str_eq(err, "goro: stack mode: GORO_STACK_MODE=uffd-sigbus is "
			 "unavailable under --enable-tsan; using plain\n");
#else
	ck_assert_str_eq(err, "goro: stack mode: GORO_STACK_MODE=uffd-sigbus is "
			 "unavailable (userfaultfd: Function not implemented); "
			 "using plain (guards: MADV_GUARD_INSTALL)\n");
#endif
	/* auto falls back silently. */
	st = t_child(child_no_uffd, "auto", err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, err);
	ck_assert_str_eq(err, "");
}
END_TEST

/* ---- Sizes and per-G figures -------------------------------------------- */

static void *g_info(void *arg)
{
	struct goro_stack_info *si = arg;
	struct goro_g *gp = goro__g_self();

	ck_assert_int_eq(goro_stack_info(si), 0);
	ck_assert_int_eq(goro_stack_info(NULL), -EINVAL);
	/* The first page holds the descriptor and at least 2 KiB of stack. */
	ck_assert_uint_ge((uintptr_t)gp - (uintptr_t)(gp->stack.hi - 4096), 2048);
	return NULL;
}

/* A fresh G commits exactly one page; the limit is the slot minus its
 * guard zone (1/16 of the slot, between 4 and 64 KiB). */
START_TEST(test_stack_sizes_and_fresh_page)
{
	static const struct { size_t ask, limit; } c[] = {
		{ 0, 1 * MIB - 64 * KIB },		/* the default: 1 MiB */
		{ 16 * KIB, 12 * KIB },
		{ 20 * KIB, 32 * KIB - 4 * KIB },
		{ 100 * MIB, 128 * MIB - 64 * KIB },
	};
	struct goro_stack_info si;

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		goro_t h = spawn_opts(g_info, &si, c[i].ask, "info");

		t_join(&h);
		ck_assert_uint_eq(si.limit, c[i].limit);
		ck_assert_msg(T_FRESH_OK(si.committed), "committed %zu", si.committed);
		ck_assert_uint_eq(si.peak, si.committed);
	}
}
END_TEST

static void *nothing(void *arg)
{
	return arg;
}

START_TEST(test_stack_errors)
{
	struct goro_spawn_opts o = { .stack_size = 512 * MIB };
	struct goro_stack_info si;
	goro_t h;

	ck_assert_int_eq(goro_stack_info(&si), -EPERM);	/* plain thread */
	ck_assert_int_eq(goro_spawn(&h, nothing, NULL, &o), -EINVAL);
}
END_TEST

/* ---- Growth ------------------------------------------------------------------ */

/* Each frame holds 4 KiB filled with a pattern of its depth; on the way
 * back every frame checks its own bytes, so a page lost or shared between
 * frames shows up as a wrong sum.  deep_buf records where the buffers of
 * depths 1 and 2 were, to measure the frame size (larger under ASan). */
static _Thread_local uintptr_t deep_buf[3];

__attribute__((noinline)) static uint64_t deep(unsigned depth)
{
	volatile unsigned char buf[4096 - 64];
	uint64_t sum = 0;

	if (depth <= 2)
		deep_buf[depth] = (uintptr_t)buf;
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)(depth * 7 + i);
	if (depth > 1)
		sum = deep(depth - 1);
	for (size_t i = 0; i < sizeof buf; i++)
		if (buf[i] != (unsigned char)(depth * 7 + i))
			return UINT64_MAX;
	return sum + depth;
}

/* Bytes of stack one level of deep() takes. */
static size_t deep_frame(void)
{
	ck_assert_uint_eq(deep(2), 3);
	return (size_t)(deep_buf[2] - deep_buf[1]);
}

struct grow_arg {
	size_t target;		/* bytes of frames to grow */
	unsigned depth;
	uint64_t sum;
	struct goro_stack_info before, after;
};

static void *g_grow(void *arg)
{
	struct grow_arg *a = arg;

	ck_assert_int_eq(goro_stack_info(&a->before), 0);
	a->depth = (unsigned)(a->target / deep_frame());
	a->sum = deep(a->depth);
	ck_assert_int_eq(goro_stack_info(&a->after), 0);
	return NULL;
}

/* A G grows to 1 MiB (in a 2 MiB slot), then to nearly its default
 * limit; in uffd modes in batches (far fewer faults than pages). */
START_TEST(test_stack_grows_to_1mib)
{
	struct grow_arg a = { .target = 1 * MIB + 8 * KIB };
	struct goro_stats s0 = stats(), s1;
	goro_t h = spawn_opts(g_grow, &a, 2 * MIB, "grow");

	t_join(&h);
	s1 = stats();
	ck_assert_uint_ge(a.depth, 200);
	ck_assert_uint_eq(a.sum, (uint64_t)a.depth * (a.depth + 1) / 2);
	ck_assert_msg(T_FRESH_OK(a.before.committed), "committed %zu",
		      a.before.committed);
	ck_assert_uint_ge(a.after.committed, 1 * MIB);
	ck_assert_uint_le(a.after.committed, a.after.limit);
	ck_assert_uint_ge(a.after.peak, 1 * MIB);
	if (s1.stack_mode != GORO_STACK_PLAIN) {
		uint64_t faults = s1.stack_growth_faults - s0.stack_growth_faults;
		ck_assert_uint_ge(faults, 4);
		ck_assert_uint_le(faults, 32);
		ck_assert_uint_ge(s1.stack_pages_populated - s0.stack_pages_populated, 256);
	} else {
		ck_assert_uint_eq(s1.stack_growth_faults, 0);
	}

	/* The default 1 MiB slot: usable to within a few frames of its
	 * limit. */
	a.target = 1 * MIB - 64 * KIB - 32 * KIB;
	h = spawn_opts(g_grow, &a, 0, "grow");
	t_join(&h);
	ck_assert_uint_eq(a.sum, (uint64_t)a.depth * (a.depth + 1) / 2);
	ck_assert_uint_eq(a.after.limit, 1 * MIB - 64 * KIB);
	ck_assert_uint_ge(a.after.peak, 1 * MIB - 64 * KIB - 40 * KIB);
}
END_TEST

/* ---- Kernel-mode writes into never-touched stack pages ------------------------ */

/* Writes n bytes of the test pattern to fd, 4 KiB at a time, with wr
 * (write or goro_write). */
static void write_pattern(int fd, size_t n, ssize_t (*wr)(int, const void *, size_t))
{
	unsigned char chunk[4096];

	for (size_t i = 0; i < n; i += sizeof chunk) {
		for (size_t j = 0; j < sizeof chunk; j++)
			chunk[j] = (unsigned char)((i + j) * 13 + 5);
		ck_assert_int_eq(wr(fd, chunk, sizeof chunk), (ssize_t)sizeof chunk);
	}
}

static void pipe_with(size_t n, int fds[2])
{
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_ge(fcntl(fds[1], F_SETPIPE_SZ, 256 * 1024), (int)n);
	write_pattern(fds[1], n, write);
}

static void check_pattern(const unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != (unsigned char)(i * 13 + 5))
			ck_abort_msg("byte %zu is %u, want %u", i, buf[i],
				     (unsigned char)(i * 13 + 5));
}

/* Plain read(2) into a 16 KiB and then a 64 KiB stack buffer that no user
 * code touched: the kernel writes into them.  In SIGBUS and user-mode-only
 * modes this fails with EFAULT unless the populated part of the stack is
 * contiguous from the top down to SP. */
__attribute__((noinline)) static void raw_read16(int fd)
{
	unsigned char buf[16384];
	ssize_t n = read(fd, buf, sizeof buf);

	ck_assert_msg(n == (ssize_t)sizeof buf, "read = %zd (%s)", n, strerror(errno));
	check_pattern(buf, sizeof buf);
}

__attribute__((noinline)) static void raw_read64(int fd)
{
	unsigned char buf[65536];
	ssize_t n = read(fd, buf, sizeof buf);

	ck_assert_msg(n == (ssize_t)sizeof buf, "read = %zd (%s)", n, strerror(errno));
	check_pattern(buf, sizeof buf);
}

static void *g_raw_reads(void *arg)
{
	struct goro_stack_info si;
	int fds[2];

	(void)arg;
	ck_assert_int_eq(goro_stack_info(&si), 0);
	ck_assert_msg(T_FRESH_OK(si.committed), "committed %zu", si.committed);
	pipe_with(16384, fds);
	raw_read16(fds[0]);
	close(fds[0]);
	close(fds[1]);
	pipe_with(65536, fds);
	raw_read64(fds[0]);
	close(fds[0]);
	close(fds[1]);
	return NULL;
}

START_TEST(test_stack_raw_read_untouched)
{
	goro_t h = spawn_opts(g_raw_reads, NULL, 0, "rawread");

	t_join(&h);
}
END_TEST

/* goro_read with a 32 KiB stack buffer on an empty pipe: the G parks with
 * the read in flight; the kernel (io_uring or the blocking path) writes
 * into the buffer while the G is parked. */
struct io_arg {
	int rfd;
	ssize_t got;
};

__attribute__((noinline)) static void goro_read32(struct io_arg *a)
{
	unsigned char buf[32768];
	size_t off = 0;

	while (off < sizeof buf) {
		ssize_t n = goro_read(a->rfd, buf + off, sizeof buf - off);
		if (n <= 0) {
			a->got = n;
			return;
		}
		off += (size_t)n;
	}
	check_pattern(buf, sizeof buf);
	a->got = (ssize_t)off;
}

static void *g_goro_read(void *arg)
{
	goro_read32(arg);
	return NULL;
}

static void *main_goro_read(void *arg)
{
	struct io_arg a = { .got = -2 };
	int fds[2];
	goro_t h;

	(void)arg;
	ck_assert_int_eq(pipe(fds), 0);
	a.rfd = fds[0];
	h = spawn_opts(g_goro_read, &a, 0, "gororead");
	goro_sleep(20 * 1000 * 1000);	/* let the reader park */
	write_pattern(fds[1], 32768, goro_write);
	t_join(&h);
	close(fds[0]);
	close(fds[1]);
	ck_assert_int_eq(a.got, 32768);
	return NULL;
}

START_TEST(test_stack_goro_read_untouched)
{
	t_run(main_goro_read, NULL);
}
END_TEST

/* ---- Overflow ------------------------------------------------------------------ */

/* Unbounded recursion (the limit is a volatile the compiler cannot see
 * through). */
static volatile uint64_t no_limit = UINT64_MAX;

__attribute__((noinline)) static uint64_t forever(uint64_t n)
{
	volatile char buf[512];

	buf[0] = (char)n;
	if (n == no_limit)
		return 0;
	return forever(n + 1) + buf[0];
}

__attribute__((noinline)) static uint64_t forever_big(uint64_t n)
{
	volatile char buf[40 * 1024];	/* less than the 64 KiB guard */

	buf[0] = (char)n;
	if (n == no_limit)
		return 0;
	return forever_big(n + 1) + buf[0];
}

struct ovf {
	size_t size;
	bool big;
	bool no_guard;		/* a kernel without MADV_GUARD_INSTALL */
};

static void *g_overflow(void *arg)
{
	struct ovf *o = arg;
	struct goro_g *gp = goro__g_self();
	char line[128];

	/* Tell the parent where the guard zone is. */
	snprintf(line, sizeof line, "id=%" PRIu64 " guard=%p lo=%p\n", gp->id,
		 (void *)gp->stack.guard_lo, (void *)gp->stack.lo);
	goro__write_stderr(line);
	return (void *)(uintptr_t)(o->big ? forever_big(0) : forever(0));
}

static void child_overflow(void *arg)
{
	struct ovf *o = arg;
	struct goro_spawn_opts opts = { .stack_size = o->size, .name = "deep" };
	goro_t h;
	int r;

	if (o->no_guard && pretend_kernel(false, true))
		_exit(5);
	r = goro_init(NULL);
	if ((r && r != -EALREADY) || goro_spawn(&h, g_overflow, o, &opts))
		_exit(3);
	goro_join(&h, NULL);
	_exit(4);	/* not reached: the overflow aborts */
}

/* The child's stderr after an overflow of the G named "deep": checks the
 * status and the report line, and returns the G's id, its guard zone
 * [*guard, *lo) as the G printed it, and the reported *fault. */
static unsigned long long parse_report(int st, const char *err, size_t limit_kib,
				       void **guard, void **lo, void **fault)
{
	char want[128];
	unsigned long long id;
	const char *rep;

	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
		      "status %#x, stderr:\n%s", st, err);
	ck_assert_msg(strstr(err, "id="), "stderr:\n%s", err);
	ck_assert_int_eq(sscanf(strstr(err, "id="), "id=%llu guard=%p lo=%p",
				&id, guard, lo), 3);
	snprintf(want, sizeof want,
		 "goro: G %llu (deep): stack overflow: limit %zu KiB, fault at 0x",
		 id, limit_kib);
	rep = strstr(err, want);
	ck_assert_msg(rep, "no '%s' in:\n%s", want, err);
	ck_assert_int_eq(sscanf(rep + strlen(want) - 2, "%p", fault), 1);
	return id;
}

static void check_overflow(struct ovf *o, size_t limit_kib)
{
	char err[16384], want[128];
	void *guard, *lo, *fault;
	int st = t_child(child_overflow, o, err, sizeof err);
	unsigned long long id = parse_report(st, err, limit_kib, &guard, &lo, &fault);

	ck_assert_msg((char *)fault >= (char *)guard && (char *)fault < (char *)lo,
		      "fault %p outside the guard zone [%p, %p)", fault, guard, lo);
	/* Without guard markers, thread mode learns of the overflow in the
	 * handler thread, which has no registers of the G to walk. */
	if (o->no_guard && expected_mode() == GORO_STACK_UFFD_THREAD)
		return;
	snprintf(want, sizeof want, "goro: backtrace of G %llu:\ngoro:   #0 0x", id);
	ck_assert_msg(strstr(err, want), "no backtrace in:\n%s", err);
	ck_assert_msg(strstr(err, "goro:   #9 0x"), "short backtrace:\n%s", err);
}

/* Recursion into the guard zone of a 64 KiB slot (4 KiB guard). */
START_TEST(test_stack_overflow_small_frames)
{
	struct ovf o = { 64 * KIB, false, false };

	check_overflow(&o, 60);
}
END_TEST

/* 40 KiB frames in the default slot: each step lands inside the 64 KiB
 * guard zone, never beyond it. */
START_TEST(test_stack_overflow_big_frames)
{
	struct ovf o = { 0, true, false };

	check_overflow(&o, 960);
}
END_TEST

/* The same on a kernel without guard regions: uffd modes leave the guard
 * zone missing and catch the fault there; plain mode uses mprotect. */
START_TEST(test_stack_overflow_without_guard_regions)
{
	struct ovf o = { 64 * KIB, false, true };

	check_overflow(&o, 60);
}
END_TEST

/* A frame larger than slot + guard: it jumps over its own guard zone into
 * the slot below, another G's stack.  uffd modes see the access there (a
 * missing page of a G that is not the running one) and report the
 * overflow of the running G; plain mode cannot see it (the kernel just
 * demand-pages the neighbour's stack), which the test records as well. */
struct jump {
	struct goro_wg gate;
};

static void *g_parked_below(void *arg)
{
	struct jump *j = arg;

	goro_wg_wait(&j->gate);
	return NULL;
}

__attribute__((noinline, optimize("no-stack-clash-protection")))
static int big_frame(void)
{
	volatile char buf[96 * 1024];	/* > 64 KiB slot */

	buf[0] = 1;
	return buf[0];
}

static void *g_jumper(void *arg)
{
	struct goro_g *gp = goro__g_self();
	char line[128];

	(void)arg;
	snprintf(line, sizeof line, "id=%" PRIu64 " guard=%p lo=%p\n", gp->id,
		 (void *)gp->stack.guard_lo, (void *)gp->stack.lo);
	goro__write_stderr(line);
	return (void *)(uintptr_t)big_frame();
}

static void child_jump(void *arg)
{
	static struct jump j;
	struct goro_spawn_opts below = { .stack_size = 64 * KIB, .name = "below" };
	struct goro_spawn_opts opts = { .stack_size = 64 * KIB, .name = "deep" };
	goro_t hb, ha;

	(void)arg;
	goro_wg_add(&j.gate, 1);
	if (goro_init(NULL) || goro_spawn(&hb, g_parked_below, &j, &below) ||
	    goro_spawn(&ha, g_jumper, NULL, &opts) || goro_join(&ha, NULL))
		_exit(3);
	goro_wg_done(&j.gate);
	goro_join(&hb, NULL);
	_exit(0);
}

START_TEST(test_stack_overflow_jumps_guard)
{
	char err[16384];
	void *guard, *lo, *fault;
	int st = t_child(child_jump, NULL, err, sizeof err);

	if (expected_mode() == GORO_STACK_PLAIN) {
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, err);
		return;
	}
	parse_report(st, err, 60, &guard, &lo, &fault);
	/* Below the guard zone, in the slot underneath. */
	ck_assert_msg((char *)fault < (char *)guard &&
		      (char *)fault >= (char *)guard - 64 * KIB,
		      "fault %p not in the slot below %p", fault, guard);
}
END_TEST

/* ---- Churn: spawn, grow deep, exit, repeat ---------------------------------- */

static long rss_pages(void)
{
	long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &rss), 2);
	fclose(f);
	return rss;
}

static void *g_churn(void *arg)
{
	unsigned depth = (unsigned)(uintptr_t)arg;

	return (void *)(uintptr_t)deep(depth);
}

/* 64 Gs at a time grow to 512 KiB and exit, 20 rounds: without trimming
 * the slots would keep 32 MiB committed. */
START_TEST(test_stack_churn_bounded)
{
	enum { ROUNDS = 20, WIDTH = 64, DEPTH = 128 };
	struct goro_stats s0, s1;
	long rss0, rss1;
	goro_t h[WIDTH];

	/* Warm up: the slots exist before the baseline is taken. */
	for (int i = 0; i < WIDTH; i++)
		h[i] = spawn_opts(g_churn, (void *)(uintptr_t)1, 0, "churn");
	for (int i = 0; i < WIDTH; i++)
		t_join(&h[i]);
	s0 = stats();
	rss0 = rss_pages();
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < WIDTH; i++)
			h[i] = spawn_opts(g_churn, (void *)(uintptr_t)DEPTH, 0, "churn");
		for (int i = 0; i < WIDTH; i++)
			ck_assert_uint_eq((uintptr_t)t_join(&h[i]), DEPTH * (DEPTH + 1) / 2);
	}
	s1 = stats();
	rss1 = rss_pages();
	/* Little growth where 32 MiB would stay without trimming. */
	ck_assert_int_lt((rss1 - rss0) * 4096, (long)T_CHURN_RSS_MAX);
	if (s1.stack_mode != GORO_STACK_PLAIN) {
		uint64_t pop = s1.stack_pages_populated - s0.stack_pages_populated;
		uint64_t rel = s1.stack_pages_released - s0.stack_pages_released;

		ck_assert_uint_ge(pop, (uint64_t)ROUNDS * WIDTH * DEPTH);
		/* Everything populated by the churn was given back, except
		 * the top pages of new slots. */
		ck_assert_uint_le(pop - rel, s1.stack_slots - s0.stack_slots + 64);
	}
	ck_assert_uint_ge(s1.stack_pages_released - s0.stack_pages_released,
			  (uint64_t)ROUNDS * WIDTH * (DEPTH - 8));
}
END_TEST

/* ---- A million parked Gs ----------------------------------------------------- */

struct park {
	struct goro_wg gate, done;
};

static void *g_parked(void *arg)
{
	struct park *p = arg;

	goro_wg_wait(&p->gate);
	goro_wg_done(&p->done);
	return NULL;
}

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;

	ck_assert_ptr_nonnull(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void *main_million(void *arg)
{
	struct park *p = arg;
	struct goro_stats s0, s1;
	goro_t h;

	/* Grow this G's own stack first: only the parked Gs' count below. */
	ck_assert_uint_eq(deep(8), 36);
	s0 = stats();
	t_ok(goro_wg_add(&p->gate, 1));
	t_ok(goro_wg_add(&p->done, PARKED_N));
	for (int i = 0; i < PARKED_N; i++) {
		int r = goro_spawn(NULL, g_parked, p, NULL);
		ck_assert_msg(r == 0, "spawn %d: %s", i, strerror(-r));
	}
	/* Let every G run to its park. */
	for (;;) {
		s1 = stats();
		if (s1.gs_runnable == 0 && s1.parks - s0.parks >= PARKED_N)
			break;
		goro_yield();
	}
	ck_assert_uint_eq(s1.gs_alive, PARKED_N + 1);
	ck_assert_uint_ge(s1.stack_slots, PARKED_N);
	/* One VMA for all of them: far below vm.max_map_count (65530). */
	if (!T_TSAN)
		ck_assert_int_lt(count_maps(), 1000);
	/* A parked G never needed more than its first page. */
	ck_assert_uint_eq(s1.stack_growth_faults, s0.stack_growth_faults);
	goro_wg_done(&p->gate);
	goro_wg_wait(&p->done);
	(void)h;
	/* After the burst: once they have all exited, the free Gs kept by
	 * g.c's caches and the arena's warm lists hold a page each; all the
	 * others gave their last page back (cold slots). */
	for (;;) {
		s1 = stats();
		if (s1.gs_alive == 1)
			break;
		goro_yield();
	}
	ck_assert_uint_le(s1.stack_pages_populated - s1.stack_pages_released,
			  16384);
	if (PARKED_N > 16384)
		ck_assert_uint_ge(s1.stack_pages_released - s0.stack_pages_released,
				  PARKED_N - 16384);
	return NULL;
}

START_TEST(test_stack_million_parked)
{
	static struct park p;

	t_run(main_million, &p);
}
END_TEST

/* ---- Signals ----------------------------------------------------------------- */

/* Atomics: written by the handler or the G, read by another thread. */
static _Atomic int usr1_ran, at_edge;
static _Atomic uintptr_t usr1_sp;
static pthread_t edge_thread;

static void on_usr1(int sig)
{
	char here;

	(void)sig;
	usr1_sp = (uintptr_t)&here;
	usr1_ran = 1;
}

/* Recurses until SP is within 256 bytes of the populated boundary, then
 * spins there, calling nothing, until the handler has run: the signal is
 * sent from another thread (signal_at_edge) while SP sits at the edge, so
 * the kernel must write the signal frame below it.  (A signal raised from
 * this thread would not test anything: raise() itself grows the stack.) */
__attribute__((noinline)) static int at_boundary(struct goro_g *gp, int d)
{
	volatile char pad[128];
	char *sp = (char *)&pad[0];

	pad[0] = (char)d;
	if (sp - gp->stack.populated_lo > 256 && d < 100000)
		return at_boundary(gp, d + 1) + pad[0];
	at_edge = 1;
	while (!usr1_ran)
		;
	return pad[0];
}

static void *signal_at_edge(void *arg)
{
	(void)arg;
	while (!at_edge)
		;
	pthread_kill(edge_thread, SIGUSR1);
	return NULL;
}

static void *g_signal(void *arg)
{
	struct goro_g *gp = goro__g_self();
	pthread_t killer;

	edge_thread = pthread_self();
	ck_assert_int_eq(pthread_create(&killer, NULL, signal_at_edge, NULL), 0);
	at_boundary(gp, 0);
	pthread_join(killer, NULL);
	ck_assert_int_eq(usr1_ran, 1);
	if (arg)	/* SA_ONSTACK: on the M's alternate stack */
		ck_assert_msg(usr1_sp < (uintptr_t)gp->stack.guard_lo ||
			      usr1_sp >= (uintptr_t)gp->stack.hi,
			      "handler ran on the G stack at %#lx",
			      (unsigned long)usr1_sp);
	else		/* without: below the G's SP, which the kernel filled */
		ck_assert_msg(usr1_sp >= (uintptr_t)gp->stack.lo &&
			      usr1_sp < (uintptr_t)gp->stack.hi,
			      "handler ran off the G stack at %#lx",
			      (unsigned long)usr1_sp);
	return NULL;
}

/* A handler installed by user code without SA_ONSTACK, after goro_init,
 * taken by a G whose SP is at the populated boundary.  goro's sigaction
 * adds SA_ONSTACK (uffd.c, "Signals"), so it runs on the M's alternate
 * stack. */
START_TEST(test_stack_signal_without_onstack)
{
	struct sigaction sa, old;
	goro_t h;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	ck_assert_int_eq(sigaction(SIGUSR1, NULL, &old), 0);
	ck_assert_int_eq(old.sa_flags & SA_ONSTACK, SA_ONSTACK);
	h = spawn_opts(g_signal, (void *)1, 0, "sig");
	t_join(&h);
}
END_TEST

/* glibc's own entry point: installs a handler past goro's sigaction. */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

/* Installs the handler from the G itself, once its M runs (goro also
 * re-checks handlers whenever an M starts, which would fix this one). */
static void *g_raw_signal(void *arg)
{
	struct sigaction sa;

	(void)arg;
	/* Let the Ms the runtime starts at first use come up first. */
	goro_sleep(50 * 1000 * 1000);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (__sigaction(SIGUSR1, &sa, NULL))
		_exit(4);
	return g_signal(NULL);
}

static void child_raw_handler(void *arg)
{
	struct goro_config cfg = { .maxprocs = 1 };
	goro_t h;

	(void)arg;
	if (goro_init(&cfg))
		_exit(3);
	if (goro_spawn(&h, g_raw_signal, NULL, NULL) || goro_join(&h, NULL))
		_exit(5);
	_exit(0);
}

/* Can this process get a uffd that serves kernel faults (so that the
 * handler thread fills the page a signal frame needs)? */
static bool kernel_faults_served(void)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC);
	int dev;

	if (fd >= 0) {
		close((int)fd);
		return true;
	}
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0)
		close(dev);
	return dev >= 0;
}

/* The same handler installed behind goro's back (no SA_ONSTACK): where the
 * kernel cannot fill the page the frame needs (SIGBUS mode, user-mode-only
 * thread mode), delivery fails; goro turns the kernel's SIGSEGV into a
 * clear message and SIGABRT.  Elsewhere the kernel fills the page and the
 * handler runs. */
START_TEST(test_stack_signal_raw_handler_at_edge)
{
	int mode = expected_mode();
	bool dies = mode == GORO_STACK_UFFD_SIGBUS ||
		    (mode == GORO_STACK_UFFD_THREAD && !kernel_faults_served());
	char err[4096];
	int st = t_child(child_raw_handler, NULL, err, sizeof err);

	if (dies) {
		ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
			      "status %#x: %s", st, err);
		ck_assert_str_eq(err, "goro: a signal frame could not be written "
				 "on a G stack (handler without SA_ONSTACK?)\n");
	} else {
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "status %#x: %s", st, err);
	}
}
END_TEST

static void user_segv(int sig)
{
	(void)sig;
	_exit(42);
}

static volatile int *volatile bad_ptr = (volatile int *)16;

static void child_user_segv(void *arg)
{
	struct sigaction sa, cur;

	(void)arg;
	if (goro_init(NULL))
		_exit(3);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = user_segv;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) || sigaction(SIGSEGV, NULL, &cur))
		_exit(4);
	if (cur.sa_handler != user_segv)
		_exit(5);
	*bad_ptr = 1;	/* not a stack fault: chained */
	_exit(6);
}

/* A program's own SIGSEGV handler installed after goro_init still gets
 * the faults that are not goro's, and reads back as installed. */
START_TEST(test_stack_user_segv_handler_chained)
{
	char err[4096];
	int st = t_child(child_user_segv, NULL, err, sizeof err);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 42, "status %#x: %s", st, err);
}
END_TEST

static void child_overflow_after_user_segv(void *arg)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = user_segv;
	sigemptyset(&sa.sa_mask);
	if (goro_init(NULL) || sigaction(SIGSEGV, &sa, NULL))
		_exit(3);
	child_overflow(arg);
}

/* ... and does not take goro's overflow detection away. */
START_TEST(test_stack_overflow_with_user_segv_handler)
{
	struct ovf o = { 64 * KIB, false, false };
	char err[16384];
	int st = t_child(child_overflow_after_user_segv, &o, err, sizeof err);

	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %#x: %s", st, err);
	ck_assert_msg(strstr(err, "(deep): stack overflow: limit 60 KiB, fault at 0x"), "%s", err);
}
END_TEST

/* ---- fork ---------------------------------------------------------------------- */

static void *g_fork(void *arg)
{
	pid_t pid;
	int st = -1;

	(void)arg;
	pid = fork();
	if (pid == 0) {
		/* The child's arena is plain memory: it grows 512 KiB, and
		 * goro there knows it is in plain mode (its uffd would act on
		 * the parent's memory). */
		struct goro_stats cst;

		if (goro_stats(&cst, sizeof cst) || cst.stack_mode != GORO_STACK_PLAIN)
			_exit(2);
		_exit(deep(128) == 128 * 129 / 2 ? 0 : 1);
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	ck_assert_uint_eq(deep(128), 128 * 129 / 2);	/* and the parent's */
	return NULL;
}

START_TEST(test_stack_fork_child_grows)
{
	goro_t h = spawn_opts(g_fork, NULL, 0, "fork");

	t_join(&h);
	ck_assert_uint_eq(stats().stack_mode, (unsigned)expected_mode());
}
END_TEST

static Suite *stack_suite(void)
{
	Suite *s = suite_create("stack");
	TCase *tc;

	tc = t_tcase(s, "Mode", t_setup_2, 60);
	tcase_add_test(tc, test_stack_mode_matches_env);
	tcase_add_test(tc, test_stack_sizes_and_fresh_page);
	tcase_add_test(tc, test_stack_fork_child_grows);

	tc = t_tcase(s, "Growth", t_setup_2, 60);
	tcase_add_test(tc, test_stack_grows_to_1mib);
	tcase_add_test(tc, test_stack_raw_read_untouched);
	tcase_add_test(tc, test_stack_goro_read_untouched);
	tcase_add_test(tc, test_stack_churn_bounded);

	tc = t_tcase(s, "Limits", t_setup_2, 240);
	tcase_add_test(tc, test_stack_million_parked);

	tc = t_tcase(s, "Signals", t_setup_1, 60);
	tcase_add_test(tc, test_stack_signal_without_onstack);

	tc = t_tcase(s, "SignalsNoRuntime", NULL, 60);
	tcase_add_test(tc, test_stack_signal_raw_handler_at_edge);

	tc = t_tcase(s, "NoRuntime", NULL, 60);
	tcase_add_test(tc, test_stack_mode_line);
	tcase_add_test(tc, test_stack_mode_bad_value);
	tcase_add_test(tc, test_stack_fallback_without_userfaultfd);
	tcase_add_test(tc, test_stack_errors);
	tcase_add_test(tc, test_stack_overflow_small_frames);
	tcase_add_test(tc, test_stack_overflow_big_frames);
	tcase_add_test(tc, test_stack_overflow_without_guard_regions);
	tcase_add_test(tc, test_stack_overflow_jumps_guard);
	tcase_add_test(tc, test_stack_user_segv_handler_chained);
	tcase_add_test(tc, test_stack_overflow_with_user_segv_handler);
	return s;
}

int main(void)
{
	return t_main(stack_suite());
}
