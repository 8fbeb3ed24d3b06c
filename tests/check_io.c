/*
 * check_io.c: the I/O wrappers of goro.h (issue 4), as a caller sees them.
 *
 * Every test asserts exact results: the bytes read back, the return value,
 * and the exact errno of a failure.  The backend is the one the mode matrix
 * chose (GORO_IO=uring or epoll, see tests/run-suite.sh); nothing here
 * depends on which, except test_io_backend_matches_env, which checks that
 * the choice was honoured.
 *
 * Most tests run their body on Gs (t_run); ck_assert on a G's thread ends
 * the forked test process, so these tests need Check's fork mode.  Each
 * test gets a fresh directory under $TMPDIR (default /tmp), made and
 * removed by the checked fixture.
 *
 * Debug one case: CK_RUN_SUITE=io CK_RUN_CASE=Deadlines tests/check_io
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* ===================================================================== */
/*  Helpers                                                              */
/* ===================================================================== */

static const char *ename(int e)
{
	const char *s = e ? strerrorname_np(e) : "0";
	return s ? s : "?";
}

/*
 * errno through a call the compiler cannot see into.  A G may come back
 * from a blocking call on another M (another thread), and glibc declares
 * __errno_location const, so within one function gcc computes errno's
 * address once and keeps it across calls: a plain `errno` read after a
 * goro_ call can look at the thread the G started on.  noipa keeps gcc
 * from treating these helpers as const in turn.
 */
static __attribute__((noipa)) int get_errno(void)
{
	return errno;
}

static __attribute__((noipa)) void set_errno(int e)
{
	errno = e;
}

/* call must fail with -1 and errno == want. */
#define ck_errno(call, want) do { \
	set_errno(0); \
	long r_ = (long)(call); \
	int e_ = get_errno(); \
	ck_assert_msg(r_ == -1 && e_ == (want), "%s = %ld errno %s, want -1 %s", \
		      #call, r_, ename(e_), ename(want)); \
} while (0)

/* call must return exactly want. */
#define ck_ret(call, want) do { \
	set_errno(0); \
	long r_ = (long)(call); \
	int e_ = get_errno(); \
	ck_assert_msg(r_ == (long)(want), "%s = %ld (errno %s), want %ld", \
		      #call, r_, ename(e_), (long)(want)); \
} while (0)

static char tdir[256];	/* this test's directory */
static int tdirfd = -1;

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

static void make_tdir(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tdir, sizeof(tdir), "%s/goro-io.XXXXXX", base && *base ? base : "/tmp");
	ck_assert_msg(mkdtemp(tdir) != NULL, "mkdtemp %s: %s", tdir, strerror(errno));
	tdirfd = open(tdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(tdirfd, 0);
}

/* What every I/O test process needs before the runtime starts: SIGPIPE
 * and SIGXFSZ ignored (so EPIPE and EFBIG come back as errors, as servers
 * set it up), the fd limit raised to the hard limit, a fresh directory. */
static void io_prepare(void)
{
	struct rlimit rl;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	make_tdir();
}

static void io_setup_2(void)
{
	io_prepare();
	t_setup_2();
}

static void io_setup_1(void)
{
	io_prepare();
	t_setup_1();
}

/* A ring of 4 SQEs (the I/O layer reads GORO_RING_ENTRIES at goro_init),
 * and no preadv2(RWF_NOWAIT) fast path, so that page-cache preads go
 * through the ring too. */
static void io_setup_tiny_ring(void)
{
	io_prepare();
	setenv("GORO_RING_ENTRIES", "4", 1);
	setenv("GORO_IO_NOWAIT", "0", 1);
	t_setup_2();
}

static void io_teardown(void)
{
	goro_shutdown();
	if (tdirfd >= 0)
		close(tdirfd);
	tdirfd = -1;
	nftw(tdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* No runtime started: the plain-thread path before goro_init. */
static void io_setup_noruntime(void)
{
	io_prepare();
}

/* Opens (creating, truncating) a file in the test directory with plain
 * syscalls. */
static int tfile(const char *name)
{
	int fd = openat(tdirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_msg(fd >= 0, "openat %s: %s", name, strerror(errno));
	return fd;
}

static void pattern(char *b, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (char)x;
	}
}

static void spawn(goro_t *h, void *(*fn)(void *), void *arg)
{
	t_ok(goro_spawn(h, fn, arg, NULL));
}

static void *join(goro_t *h)
{
	void *res = NULL;

	t_ok(goro_join(h, &res));
	return res;
}

/* Reads exactly n bytes (looping over short reads); fails on EOF/error. */
static void read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = goro_read(fd, (char *)buf + got, n - got);
		ck_assert_msg(r > 0, "goro_read(%d) = %zd (%s) after %zu of %zu",
			      fd, r, ename(get_errno()), got, n);
		got += (size_t)r;
	}
}

static void write_full(int fd, const void *buf, size_t n)
{
	size_t put = 0;

	while (put < n) {
		ssize_t r = goro_write(fd, (const char *)buf + put, n - put);
		ck_assert_msg(r > 0, "goro_write(%d) = %zd (%s) after %zu of %zu",
			      fd, r, ename(get_errno()), put, n);
		put += (size_t)r;
	}
}

static void xpipe(int p[2])
{
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
}

static void xsocketpair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* A listening TCP socket on 127.0.0.1 and a free port; *sa gets its
 * address. */
static int tcp_listener(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
	ck_assert_int_eq(listen(fd, 1024), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)sa, &len), 0);
	return fd;
}

/* A page no one may touch: the bad pointer of the EFAULT tests. */
static void *bad_page(void)
{
	void *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(p != MAP_FAILED);
	return p;
}

/* An fd number that is not open: a high one (new fds take the lowest
 * free number, so nothing in the test reuses it). */
static int closed_fd(void)
{
	struct rlimit rl;
	int base = 4000, fd;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 8000)
		base = (int)rl.rlim_cur / 2;
	fd = fcntl(2, F_DUPFD_CLOEXEC, base);

	ck_assert_msg(fd >= 0, "F_DUPFD: %s", strerror(get_errno()));
	close(fd);
	return fd;
}

/* A test whose whole body is the G function gfn, run as the main G. */
#define G_TEST(test, gfn) \
	START_TEST(test) { t_run(gfn, NULL); } END_TEST

static void *sleep_then_write(void *arg)
{
	int fd = (int)(intptr_t)arg;

	ck_ret(goro_sleep(20 * 1000000), 0);
	ck_ret(goro_write(fd, "late", 4), 4);
	return NULL;
}

/* ===================================================================== */
/*  Core: every call returns the right data                              */
/* ===================================================================== */

static void *g_pipe_rw(void *arg)
{
	int p[2];
	char buf[64];
	goro_t h;

	(void)arg;
	xpipe(p);
	ck_ret(goro_write(p[1], "hello", 5), 5);
	ck_ret(goro_read(p[0], buf, sizeof(buf)), 5);	/* short read */
	ck_assert_mem_eq(buf, "hello", 5);
	ck_ret(goro_read(p[0], buf, 0), 0);

	/* A read that must wait: the writer comes 20 ms later. */
	spawn(&h, sleep_then_write, (void *)(intptr_t)p[1]);
	ck_ret(goro_read(p[0], buf, sizeof(buf)), 4);
	ck_assert_mem_eq(buf, "late", 4);
	join(&h);

	/* EOF once the write end is closed. */
	ck_ret(goro_close(p[1]), 0);
	ck_ret(goro_read(p[0], buf, sizeof(buf)), 0);
	ck_ret(goro_close(p[0]), 0);
	return NULL;
}

G_TEST(test_io_pipe_read_write, g_pipe_rw)

static void *g_file_prw(void *arg)
{
	char a[8192], b[8192];
	int fd = tfile("f");

	(void)arg;
	pattern(a, sizeof(a), 1);
	ck_ret(goro_pwrite(fd, a, 4096, 0), 4096);
	ck_ret(goro_pwrite(fd, a + 4096, 4096, 12288), 4096);	/* leaves a hole */
	ck_ret(goro_pread(fd, b, 4096, 0), 4096);
	ck_assert_mem_eq(a, b, 4096);
	ck_ret(goro_pread(fd, b, 4096, 12288), 4096);
	ck_assert_mem_eq(a + 4096, b, 4096);
	/* The hole reads as zeros. */
	memset(b, 0x55, 4096);
	ck_ret(goro_pread(fd, b, 4096, 4096), 4096);
	for (int i = 0; i < 4096; i++)
		ck_assert_int_eq(b[i], 0);
	/* Straddling EOF: short; at EOF: 0. */
	ck_ret(goro_pread(fd, b, 8192, 16384 - 100), 100);
	ck_assert_mem_eq(a + 8192 - 100, b, 100);
	ck_ret(goro_pread(fd, b, 100, 16384), 0);
	/* pread/pwrite leave the file offset alone; read/write use it. */
	ck_ret(lseek(fd, 0, SEEK_CUR), 0);
	ck_ret(goro_read(fd, b, 10), 10);
	ck_assert_mem_eq(a, b, 10);
	ck_ret(goro_write(fd, "XY", 2), 2);
	ck_ret(lseek(fd, 0, SEEK_CUR), 12);
	ck_ret(goro_pread(fd, b, 4, 9), 4);
	char want[4] = { a[9], 'X', 'Y', a[12] };
	ck_assert_mem_eq(b, want, 4);
	ck_ret(goro_close(fd), 0);
	return NULL;
}

G_TEST(test_io_file_pread_pwrite, g_file_prw)

static void *g_vectored(void *arg)
{
	int p[2], fd = tfile("v");
	char x[10], y[20], z[30], all[60], back[60];
	struct iovec w[3] = { { x, 10 }, { y, 20 }, { z, 30 } };
	struct iovec r[2] = { { back, 25 }, { back + 25, 35 } };

	(void)arg;
	pattern(x, 10, 2);
	pattern(y, 20, 3);
	pattern(z, 30, 4);
	memcpy(all, x, 10);
	memcpy(all + 10, y, 20);
	memcpy(all + 30, z, 30);

	xpipe(p);
	ck_ret(goro_writev(p[1], w, 3), 60);
	ck_ret(goro_readv(p[0], r, 2), 60);
	ck_assert_mem_eq(back, all, 60);

	ck_ret(goro_pwritev(fd, w, 3, 1000), 60);
	memset(back, 0, sizeof(back));
	ck_ret(goro_preadv(fd, r, 2, 1000), 60);
	ck_assert_mem_eq(back, all, 60);
	ck_ret(goro_preadv(fd, r, 2, 1030), 30);	/* short at EOF */
	ck_assert_mem_eq(back, z, 30);
	ck_ret(goro_preadv(fd, r, 0, 0), 0);
	close(p[0]);
	close(p[1]);
	close(fd);
	return NULL;
}

G_TEST(test_io_vectored, g_vectored)

/* A bad iovcnt is EINVAL before any iovec is looked at: the array here
 * has 2 entries, and IOV_MAX + 1 of them would run off it. */
static void *g_vectored_bad_count(void *arg)
{
	int p[2], fd = tfile("v");
	char x[8];
	struct iovec iov[2] = { { x, 4 }, { x + 4, 4 } };

	(void)arg;
	xpipe(p);
	ck_errno(goro_readv(p[0], iov, -1), EINVAL);
	ck_errno(goro_writev(p[1], iov, -1), EINVAL);
	ck_errno(goro_writev(p[1], iov, IOV_MAX + 1), EINVAL);
	ck_errno(goro_readv(p[0], iov, IOV_MAX + 1), EINVAL);
	ck_errno(goro_preadv(fd, iov, IOV_MAX + 1, 0), EINVAL);
	ck_errno(goro_pwritev(fd, iov, IOV_MAX + 1, 0), EINVAL);
	close(p[0]);
	close(p[1]);
	close(fd);
	return NULL;
}

G_TEST(test_io_vectored_bad_count, g_vectored_bad_count)

static void *g_openat_close(void *arg)
{
	char path[300], buf[8];
	int fd;

	(void)arg;
	ck_errno(goro_openat(tdirfd, "missing", O_RDONLY, 0), ENOENT);
	fd = goro_openat(tdirfd, "new", O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_msg(fd >= 0, "openat: %s", ename(get_errno()));
	ck_ret(goro_write(fd, "abc", 3), 3);
	ck_ret(goro_close(fd), 0);
	ck_errno(goro_close(fd), EBADF);
	ck_errno(goro_openat(tdirfd, "new", O_RDWR | O_CREAT | O_EXCL, 0600), EEXIST);
	ck_errno(goro_openat(tdirfd, "new/x", O_RDONLY, 0), ENOTDIR);

	/* An absolute path ignores dirfd. */
	snprintf(path, sizeof(path), "%s/new", tdir);
	fd = goro_openat(-1, path, O_RDONLY | O_CLOEXEC, 0);
	ck_assert_msg(fd >= 0, "openat %s: %s", path, ename(get_errno()));
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_ret(goro_read(fd, buf, sizeof(buf)), 3);
	ck_assert_mem_eq(buf, "abc", 3);
	ck_ret(goro_close(fd), 0);

	/* The mode is applied (under the umask). */
	struct stat st;
	mode_t old = umask(022);
	fd = goro_openat(tdirfd, "mode", O_WRONLY | O_CREAT, 0640);
	umask(old);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	ck_ret(goro_close(fd), 0);
	return NULL;
}

G_TEST(test_io_openat_close, g_openat_close)

static void *g_statx(void *arg)
{
	char buf[12345];
	struct statx stx;
	int fd = tfile("s");

	(void)arg;
	pattern(buf, sizeof(buf), 5);
	ck_ret(goro_pwrite(fd, buf, sizeof(buf), 0), sizeof(buf));
	memset(&stx, 0, sizeof(stx));
	ck_ret(goro_statx(tdirfd, "s", 0, STATX_SIZE | STATX_TYPE, &stx), 0);
	ck_assert(stx.stx_mask & STATX_SIZE);
	ck_assert_uint_eq(stx.stx_size, sizeof(buf));
	ck_assert(S_ISREG(stx.stx_mode));
	memset(&stx, 0, sizeof(stx));
	ck_ret(goro_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx), 0);
	ck_assert_uint_eq(stx.stx_size, sizeof(buf));
	ck_ret(goro_statx(tdirfd, ".", 0, STATX_TYPE, &stx), 0);
	ck_assert(S_ISDIR(stx.stx_mode));
	ck_errno(goro_statx(tdirfd, "nope", 0, STATX_SIZE, &stx), ENOENT);
	ck_errno(goro_statx(tdirfd, "s/x", 0, STATX_SIZE, &stx), ENOTDIR);
	ck_errno(goro_statx(tdirfd, "s", 0x40000000, STATX_SIZE, &stx), EINVAL);
	close(fd);
	return NULL;
}

G_TEST(test_io_statx, g_statx)

static void *g_sync(void *arg)
{
	int p[2], fd = tfile("y");
	char buf[4096];

	(void)arg;
	xpipe(p);
	pattern(buf, sizeof(buf), 6);
	ck_ret(goro_write(fd, buf, sizeof(buf)), sizeof(buf));
	ck_ret(goro_fsync(fd), 0);
	ck_ret(goro_fdatasync(fd), 0);
	ck_ret(goro_sync_file_range(fd, 0, 4096, SYNC_FILE_RANGE_WRITE), 0);
	ck_ret(goro_sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE |
				    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER), 0);
	ck_errno(goro_sync_file_range(fd, -1, 10, SYNC_FILE_RANGE_WRITE), EINVAL);
	ck_errno(goro_sync_file_range(fd, 0, 10, 0x100), EINVAL);
	/* Pipes cannot be synced (Linux: EINVAL) or ranged (ESPIPE). */
	ck_errno(goro_fsync(p[0]), EINVAL);
	ck_errno(goro_fdatasync(p[1]), EINVAL);
	ck_errno(goro_sync_file_range(p[0], 0, 0, SYNC_FILE_RANGE_WRITE), ESPIPE);
	close(p[0]);
	close(p[1]);
	close(fd);
	return NULL;
}

G_TEST(test_io_sync_calls, g_sync)

static void *g_falloc_trunc(void *arg)
{
	struct statx stx;
	int p[2], fd = tfile("t"), ro;
	char buf[100];

	(void)arg;
	xpipe(p);
	ck_ret(goro_fallocate(fd, 0, 0, 1 << 20), 0);
	ck_ret(goro_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_BLOCKS, &stx), 0);
	ck_assert_uint_eq(stx.stx_size, 1 << 20);
	ck_assert_uint_ge(stx.stx_blocks * 512, 1 << 20);
	/* KEEP_SIZE allocates without growing the file. */
	ck_ret(goro_fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), 0);
	ck_ret(goro_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx), 0);
	ck_assert_uint_eq(stx.stx_size, 1 << 20);
	ck_ret(goro_ftruncate(fd, 4096), 0);
	ck_ret(goro_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx), 0);
	ck_assert_uint_eq(stx.stx_size, 4096);
	ck_ret(goro_pwrite(fd, "tail", 4, 4096), 4);
	ck_ret(goro_ftruncate(fd, 4098), 0);
	ck_ret(goro_pread(fd, buf, sizeof(buf), 4090), 8);
	ck_assert_mem_eq(buf + 6, "ta", 2);

	ck_errno(goro_fallocate(fd, 0, 0, 0), EINVAL);
	ck_errno(goro_fallocate(fd, 0, 0, -1), EINVAL);
	ck_errno(goro_fallocate(p[1], 0, 0, 4096), ESPIPE);
	ck_errno(goro_ftruncate(fd, -1), EINVAL);
	ck_errno(goro_ftruncate(p[1], 10), EINVAL);
	ro = openat(tdirfd, "t", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(ro, 0);
	ck_errno(goro_ftruncate(ro, 10), EINVAL);	/* not open for writing */
	ck_errno(goro_fallocate(ro, 0, 0, 10), EBADF);
	close(ro);
	close(p[0]);
	close(p[1]);
	close(fd);
	return NULL;
}

G_TEST(test_io_fallocate_ftruncate, g_falloc_trunc)

static void *g_dirs(void *arg)
{
	char buf[16];
	int fd;

	(void)arg;
	ck_ret(goro_mkdirat(tdirfd, "d", 0755), 0);
	ck_errno(goro_mkdirat(tdirfd, "d", 0755), EEXIST);
	ck_errno(goro_mkdirat(tdirfd, "no/such", 0755), ENOENT);
	fd = tfile("a");
	ck_ret(goro_write(fd, "payload", 7), 7);
	close(fd);
	ck_errno(goro_mkdirat(tdirfd, "a/x", 0755), ENOTDIR);

	ck_ret(goro_renameat(tdirfd, "a", tdirfd, "d/b"), 0);
	ck_errno(goro_openat(tdirfd, "a", O_RDONLY, 0), ENOENT);
	fd = goro_openat(tdirfd, "d/b", O_RDONLY, 0);
	ck_assert_int_ge(fd, 0);
	ck_ret(goro_read(fd, buf, sizeof(buf)), 7);
	ck_assert_mem_eq(buf, "payload", 7);
	close(fd);
	ck_errno(goro_renameat(tdirfd, "a", tdirfd, "c"), ENOENT);
	ck_errno(goro_renameat(tdirfd, "d/b", tdirfd, "nodir/c"), ENOENT);

	ck_errno(goro_unlinkat(tdirfd, "d", 0), EISDIR);
	ck_errno(goro_unlinkat(tdirfd, "d", AT_REMOVEDIR), ENOTEMPTY);
	ck_errno(goro_unlinkat(tdirfd, "d/b", AT_REMOVEDIR), ENOTDIR);
	ck_ret(goro_unlinkat(tdirfd, "d/b", 0), 0);
	ck_errno(goro_unlinkat(tdirfd, "d/b", 0), ENOENT);
	ck_ret(goro_unlinkat(tdirfd, "d", AT_REMOVEDIR), 0);
	ck_errno(goro_statx(tdirfd, "d", 0, STATX_TYPE, &(struct statx){ 0 }), ENOENT);
	ck_errno(goro_unlinkat(tdirfd, "x", 0x7000), EINVAL);
	return NULL;
}

G_TEST(test_io_dir_ops, g_dirs)

struct tcp_arg {
	int lfd;
	struct sockaddr_in sa;
	size_t n;
};

/* Accepts one connection and echoes until EOF. */
static void *g_tcp_server(void *arg)
{
	struct tcp_arg *ta = arg;
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	char buf[1000];
	int fd = goro_accept4(ta->lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);

	ck_assert_msg(fd >= 0, "accept4: %s", ename(get_errno()));
	ck_assert_int_eq(plen, sizeof(peer));
	ck_assert_int_eq(peer.sin_family, AF_INET);
	ck_assert_int_eq(ntohl(peer.sin_addr.s_addr), INADDR_LOOPBACK);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	for (;;) {
		ssize_t r = goro_recv(fd, buf, sizeof(buf), 0);
		ck_assert_msg(r >= 0, "recv: %s", ename(get_errno()));
		if (r == 0)
			break;
		ck_ret(goro_send(fd, buf, r, 0), r);
	}
	ck_ret(goro_close(fd), 0);
	return (void *)(intptr_t)ntohs(peer.sin_port);
}

static void *g_tcp(void *arg)
{
	struct tcp_arg ta;
	struct sockaddr_in me;
	socklen_t mlen = sizeof(me);
	char out[10000], in[10000];
	goro_t h;
	int fd;

	(void)arg;
	ta.lfd = tcp_listener(&ta.sa);
	spawn(&h, g_tcp_server, &ta);
	fd = goro_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(fd >= 0, "socket: %s", ename(get_errno()));
	ck_ret(goro_connect(fd, (struct sockaddr *)&ta.sa, sizeof(ta.sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&me, &mlen), 0);
	pattern(out, sizeof(out), 7);
	for (size_t off = 0; off < sizeof(out);) {
		size_t chunk = sizeof(out) - off < 777 ? sizeof(out) - off : 777;
		ck_ret(goro_send(fd, out + off, chunk, 0), chunk);
		size_t got = 0;
		while (got < chunk) {
			ssize_t r = goro_recv(fd, in + off + got, chunk - got, 0);
			ck_assert_msg(r > 0, "recv: %zd %s", r, ename(get_errno()));
			got += r;
		}
		off += chunk;
	}
	ck_assert_mem_eq(in, out, sizeof(out));
	ck_ret(goro_shutdown_socket(fd, SHUT_WR), 0);
	ck_ret(goro_recv(fd, in, sizeof(in), 0), 0);
	/* The server saw our port as the peer's. */
	ck_assert_int_eq((intptr_t)join(&h), ntohs(me.sin_port));
	ck_ret(goro_close(fd), 0);
	close(ta.lfd);
	return NULL;
}

G_TEST(test_io_tcp_echo, g_tcp)

static void *g_msg(void *arg)
{
	int sv[2], p[2];
	char a[5] = "ab", b[300], r1[100], r2[100], r3[200];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec wi[2] = { { a, 2 }, { b, sizeof(b) } };
	struct iovec ri[3] = { { r1, 100 }, { r2, 100 }, { r3, 200 } };
	struct msghdr m = { 0 };
	struct cmsghdr *c;
	int passed;

	(void)arg;
	xsocketpair(sv);
	xpipe(p);
	pattern(b, sizeof(b), 8);
	/* Data in two pieces plus a passed fd (the pipe's write end). */
	m.msg_iov = wi;
	m.msg_iovlen = 2;
	m.msg_control = cbuf;
	m.msg_controllen = sizeof(cbuf);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &p[1], sizeof(int));
	ck_ret(goro_sendmsg(sv[0], &m, 0), 302);

	memset(&m, 0, sizeof(m));
	memset(cbuf, 0, sizeof(cbuf));
	m.msg_iov = ri;
	m.msg_iovlen = 3;
	m.msg_control = cbuf;
	m.msg_controllen = sizeof(cbuf);
	ck_ret(goro_recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC), 302);
	ck_assert_mem_eq(r1, "ab", 2);
	ck_assert_mem_eq(r1 + 2, b, 98);
	ck_assert_mem_eq(r2, b + 98, 100);
	ck_assert_mem_eq(r3, b + 198, 102);
	ck_assert_int_eq(m.msg_flags & (MSG_TRUNC | MSG_CTRUNC), 0);
	c = CMSG_FIRSTHDR(&m);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->cmsg_type, SCM_RIGHTS);
	memcpy(&passed, CMSG_DATA(c), sizeof(int));
	/* The received fd is the pipe's write end: data goes through it. */
	ck_ret(goro_write(passed, "fd!", 3), 3);
	ck_ret(goro_read(p[0], r1, sizeof(r1)), 3);
	ck_assert_mem_eq(r1, "fd!", 3);

	/* Datagram truncation shows in msg_flags. */
	int dg[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg), 0);
	ck_ret(goro_send(dg[0], b, 50, 0), 50);
	memset(&m, 0, sizeof(m));
	struct iovec small = { r1, 10 };
	m.msg_iov = &small;
	m.msg_iovlen = 1;
	ck_ret(goro_recvmsg(dg[1], &m, 0), 10);
	ck_assert(m.msg_flags & MSG_TRUNC);
	ck_assert_mem_eq(r1, b, 10);
	/* MSG_PEEK leaves the data; MSG_DONTWAIT on empty gives EAGAIN. */
	ck_ret(goro_send(sv[0], "peek", 4, 0), 4);
	ck_ret(goro_recv(sv[1], r1, 4, MSG_PEEK), 4);
	ck_ret(goro_recv(sv[1], r2, 4, 0), 4);
	ck_assert_mem_eq(r2, "peek", 4);
	ck_errno(goro_recv(sv[1], r2, 4, MSG_DONTWAIT), EAGAIN);
	close(dg[0]);
	close(dg[1]);
	close(passed);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

G_TEST(test_io_sendmsg_recvmsg, g_msg)

static void *g_sock_errors(void *arg)
{
	struct sockaddr_in sa;
	int p[2], lfd, fd;

	(void)arg;
	xpipe(p);
	ck_errno(goro_socket(9999, SOCK_STREAM, 0), EAFNOSUPPORT);
	ck_errno(goro_socket(AF_INET, 12345, 0), EINVAL);
	/* A port nobody listens on: take one, then close it. */
	lfd = tcp_listener(&sa);
	close(lfd);
	fd = goro_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_errno(goro_connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ECONNREFUSED);
	close(fd);
	fd = goro_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_errno(goro_connect(fd, (struct sockaddr *)&sa, 3), EINVAL);
	ck_errno(goro_accept(fd, NULL, NULL), EINVAL);		/* not listening */
	ck_errno(goro_shutdown_socket(fd, SHUT_WR), ENOTCONN);
	ck_errno(goro_shutdown_socket(fd, 7), EINVAL);
	ck_errno(goro_recv(fd, &sa, 1, 0), ENOTCONN);
	close(fd);
	ck_errno(goro_shutdown_socket(p[0], SHUT_RD), ENOTSOCK);
	ck_errno(goro_accept(p[0], NULL, NULL), ENOTSOCK);
	ck_errno(goro_recv(p[0], &sa, 1, 0), ENOTSOCK);
	ck_errno(goro_send(p[1], "x", 1, 0), ENOTSOCK);
	ck_errno(goro_connect(p[0], (struct sockaddr *)&sa, sizeof(sa)), ENOTSOCK);
	close(p[0]);
	close(p[1]);
	return NULL;
}

G_TEST(test_io_socket_errors, g_sock_errors)

static void *g_poll(void *arg)
{
	int p[2], sv[2];
	struct pollfd pf[3];
	goro_t h;
	char buf[8];

	(void)arg;
	xpipe(p);
	xsocketpair(sv);
	pf[0] = (struct pollfd){ .fd = p[0], .events = POLLIN };
	ck_ret(goro_poll(pf, 1, 0), 0);
	ck_assert_int_eq(pf[0].revents, 0);
	ck_ret(goro_poll(pf, 1, 30), 0);	/* times out */
	ck_ret(goro_poll(NULL, 0, 10), 0);	/* a plain sleep */

	/* Wait for ever; a G writes 20 ms later. */
	spawn(&h, sleep_then_write, (void *)(intptr_t)p[1]);
	pf[0].revents = 0x7fff;
	ck_ret(goro_poll(pf, 1, -1), 1);
	ck_assert_int_eq(pf[0].revents, POLLIN);
	join(&h);
	ck_ret(goro_read(p[0], buf, sizeof(buf)), 4);

	/* Several fds: only the ready ones get revents; the write end of a
	 * pipe is writable at once; a closed fd gives POLLNVAL; a negative
	 * fd is ignored. */
	pf[0] = (struct pollfd){ .fd = p[1], .events = POLLOUT };
	pf[1] = (struct pollfd){ .fd = closed_fd(), .events = POLLIN };
	pf[2] = (struct pollfd){ .fd = -1, .events = POLLIN, .revents = 0x40 };
	ck_ret(goro_poll(pf, 3, 1000), 2);
	ck_assert_int_eq(pf[0].revents, POLLOUT);
	ck_assert_int_eq(pf[1].revents, POLLNVAL);
	ck_assert_int_eq(pf[2].revents, 0);

	/* A peer's close shows as POLLIN|POLLHUP on a socket. */
	pf[0] = (struct pollfd){ .fd = sv[0], .events = POLLIN };
	close(sv[1]);
	ck_ret(goro_poll(pf, 1, 1000), 1);
	ck_assert_int_eq(pf[0].revents & (POLLIN | POLLHUP), POLLIN | POLLHUP);
	close(sv[0]);
	close(p[0]);
	close(p[1]);
	return NULL;
}

G_TEST(test_io_poll, g_poll)

struct splice_arg {
	int wfd;
	const char *data;
	size_t n;
};

static void *g_late_writer(void *arg)
{
	struct splice_arg *sa = arg;

	ck_ret(goro_sleep(20 * 1000000), 0);
	write_full(sa->wfd, sa->data, sa->n);
	return NULL;
}

static void *g_splice(void *arg)
{
	char data[5000], back[5000];
	int p[2], in = tfile("in"), out = tfile("out");
	off_t off = 100, ooff = 0;
	goro_t h;

	(void)arg;
	xpipe(p);
	pattern(data, sizeof(data), 9);
	ck_ret(goro_pwrite(in, data, sizeof(data), 0), sizeof(data));
	/* file -> pipe with an explicit offset: the offset advances, the
	 * file position does not. */
	ck_ret(goro_splice(in, &off, p[1], NULL, 1000, 0), 1000);
	ck_assert_int_eq(off, 1100);
	ck_ret(lseek(in, 0, SEEK_CUR), 0);
	/* pipe -> file at ooff. */
	ck_ret(goro_splice(p[0], NULL, out, &ooff, 1000, 0), 1000);
	ck_assert_int_eq(ooff, 1000);
	ck_ret(goro_pread(out, back, sizeof(back), 0), 1000);
	ck_assert_mem_eq(back, data + 100, 1000);

	/* A splice from an empty pipe waits for the writer. */
	struct splice_arg sa = { p[1], data, 300 };
	spawn(&h, g_late_writer, &sa);
	ck_ret(goro_splice(p[0], NULL, out, &ooff, 300, 0), 300);
	join(&h);
	ck_ret(goro_pread(out, back, sizeof(back), 1000), 300);
	ck_assert_mem_eq(back, data, 300);

	/* Neither end a pipe; an offset for a pipe. */
	ck_errno(goro_splice(in, NULL, out, NULL, 10, 0), EINVAL);
	ck_errno(goro_splice(p[0], &off, out, NULL, 10, 0), ESPIPE);
	close(p[0]);
	close(p[1]);
	close(in);
	close(out);
	return NULL;
}

G_TEST(test_io_splice, g_splice)

static void *g_sleep(void *arg)
{
	(void)arg;
	for (int64_t ns = 0; ns <= 16000000; ns = ns ? ns * 4 : 1000000) {
		int64_t t0 = goro_now();
		ck_ret(goro_sleep(ns), 0);
		int64_t dt = goro_now() - t0;
		ck_assert_msg(dt >= ns, "goro_sleep(%lld) returned after %lld ns",
			      (long long)ns, (long long)dt);
	}
	ck_ret(goro_sleep(-1), -EINVAL);
	return NULL;
}

G_TEST(test_io_sleep, g_sleep)

/* The backend asked for with GORO_IO is the one in force (this kernel
 * has io_uring enabled; GORO_IO=uring on a kernel without it would fall
 * back to epoll, which this test would report). */
START_TEST(test_io_backend_matches_env)
{
	const char *want = getenv("GORO_IO");
	int b = goro_io_backend();

	if (want && strcmp(want, "epoll") == 0)
		ck_assert_int_eq(b, GORO_IO_EPOLL);
	else if (want && strcmp(want, "uring") == 0)
		ck_assert_int_eq(b, GORO_IO_URING);
	else
		ck_assert(b == GORO_IO_URING || b == GORO_IO_EPOLL);
}
END_TEST

/* ===================================================================== */
/*  Errors: bad fd, bad pointer, closed peer, full disk                   */
/* ===================================================================== */

/* Every call that takes an fd, with fd -1 and with an fd number that is
 * not open. */
static void *g_ebadf(void *arg)
{
	int fds[2] = { -1, closed_fd() };
	char buf[16];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sa);
	struct statx stx;
	int p[2];

	(void)arg;
	xpipe(p);
	for (int i = 0; i < 2; i++) {
		int fd = fds[i];
		ck_errno(goro_read(fd, buf, 1), EBADF);
		ck_errno(goro_write(fd, buf, 1), EBADF);
		ck_errno(goro_pread(fd, buf, 1, 0), EBADF);
		ck_errno(goro_pwrite(fd, buf, 1, 0), EBADF);
		ck_errno(goro_readv(fd, &iov, 1), EBADF);
		ck_errno(goro_writev(fd, &iov, 1), EBADF);
		ck_errno(goro_preadv(fd, &iov, 1, 0), EBADF);
		ck_errno(goro_pwritev(fd, &iov, 1, 0), EBADF);
		ck_errno(goro_close(fd), EBADF);
		ck_errno(goro_fsync(fd), EBADF);
		ck_errno(goro_fdatasync(fd), EBADF);
		ck_errno(goro_sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE), EBADF);
		ck_errno(goro_fallocate(fd, 0, 0, 4096), EBADF);
		ck_errno(goro_ftruncate(fd, 0), EBADF);
		ck_errno(goro_accept(fd, NULL, NULL), EBADF);
		ck_errno(goro_accept4(fd, (struct sockaddr *)&sa, &slen, SOCK_CLOEXEC), EBADF);
		ck_errno(goro_connect(fd, (struct sockaddr *)&sa, sizeof(sa)), EBADF);
		ck_errno(goro_recv(fd, buf, 1, 0), EBADF);
		ck_errno(goro_send(fd, buf, 1, 0), EBADF);
		ck_errno(goro_recvmsg(fd, &m, 0), EBADF);
		ck_errno(goro_sendmsg(fd, &m, 0), EBADF);
		ck_errno(goro_shutdown_socket(fd, SHUT_RDWR), EBADF);
		ck_errno(goro_splice(fd, NULL, p[1], NULL, 1, 0), EBADF);
		ck_errno(goro_splice(p[0], NULL, fd, NULL, 1, 0), EBADF);
		/* A relative path needs a real dirfd. */
		ck_errno(goro_openat(fd, "x", O_RDONLY, 0), EBADF);
		ck_errno(goro_statx(fd, "x", 0, STATX_SIZE, &stx), EBADF);
		ck_errno(goro_mkdirat(fd, "x", 0755), EBADF);
		ck_errno(goro_unlinkat(fd, "x", 0), EBADF);
		ck_errno(goro_renameat(fd, "x", tdirfd, "y"), EBADF);
		ck_errno(goro_renameat(tdirfd, "x", fd, "y"), EBADF);
	}
	/* Right fd, wrong access mode. */
	ck_errno(goro_read(p[1], buf, 1), EBADF);
	ck_errno(goro_write(p[0], buf, 1), EBADF);
	close(p[0]);
	close(p[1]);
	return NULL;
}

G_TEST(test_io_bad_fd_ebadf, g_ebadf)

/* A pipe or socket has no position: the positioned calls fail with
 * ESPIPE (io_uring itself ignores offset 0 on a stream: the wrapper must
 * not pass that through) and the data stays where it was. */
static void *g_espipe(void *arg)
{
	int p[2], sv[2];
	char buf[8];
	struct iovec iov = { buf, 1 };

	(void)arg;
	xpipe(p);
	xsocketpair(sv);
	ck_errno(goro_pread(p[0], buf, 1, 0), ESPIPE);
	ck_errno(goro_pwrite(p[1], "a", 1, 0), ESPIPE);
	ck_errno(goro_pwrite(p[1], "a", 1, 4096), ESPIPE);
	ck_errno(goro_preadv(p[0], &iov, 1, 0), ESPIPE);
	ck_errno(goro_pwritev(p[1], &iov, 1, 0), ESPIPE);
	ck_errno(goro_pwrite(sv[0], "a", 1, 0), ESPIPE);
	ck_errno(goro_pread(sv[1], buf, 1, 0), ESPIPE);
	/* Nothing was written by the failed calls. */
	ck_ret(goro_write(p[1], "z", 1), 1);
	ck_ret(goro_read(p[0], buf, sizeof(buf)), 1);
	ck_assert_int_eq(buf[0], 'z');
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

G_TEST(test_io_pipe_espipe, g_espipe)

/* A pointer into a PROT_NONE page gives EFAULT, never a crash: for data
 * buffers (with data ready, so the copy happens), iovec arrays and their
 * bases, paths, result structs and addresses. */
static void *g_efault(void *arg)
{
	char *bad = bad_page(), buf[64];
	int p[2], sv[2], fd = tfile("e"), lfd;
	struct iovec iov = { bad, 16 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct sockaddr_in sa;
	socklen_t slen = sizeof(sa);
	int cfd, cfd2;

	(void)arg;
	xpipe(p);
	xsocketpair(sv);
	ck_ret(goro_pwrite(fd, "0123456789", 10, 0), 10);

	ck_ret(goro_write(p[1], "abc", 3), 3);
	ck_errno(goro_read(p[0], bad, 3), EFAULT);
	ck_errno(goro_write(p[1], bad, 3), EFAULT);
	ck_errno(goro_pread(fd, bad, 10, 0), EFAULT);
	ck_errno(goro_pwrite(fd, bad, 10, 0), EFAULT);
	ck_errno(goro_preadv(fd, &iov, 1, 0), EFAULT);
	ck_errno(goro_pwritev(fd, &iov, 1, 0), EFAULT);
	ck_errno(goro_writev(p[1], &iov, 1), EFAULT);
	/* The file is unchanged by the failed writes. */
	ck_ret(goro_pread(fd, buf, sizeof(buf), 0), 10);
	ck_assert_mem_eq(buf, "0123456789", 10);

	ck_ret(goro_send(sv[0], "data", 4, 0), 4);
	ck_errno(goro_recv(sv[1], bad, 4, 0), EFAULT);
	ck_errno(goro_send(sv[0], bad, 4, 0), EFAULT);
	ck_errno(goro_sendmsg(sv[0], &m, 0), EFAULT);
	ck_ret(goro_send(sv[0], "more", 4, 0), 4);
	ck_errno(goro_recvmsg(sv[1], &m, 0), EFAULT);

	ck_errno(goro_openat(tdirfd, bad, O_RDONLY, 0), EFAULT);
	ck_errno(goro_statx(tdirfd, bad, 0, STATX_SIZE, &(struct statx){ 0 }), EFAULT);
	ck_errno(goro_statx(tdirfd, "e", 0, STATX_SIZE, (struct statx *)bad), EFAULT);
	ck_errno(goro_mkdirat(tdirfd, bad, 0755), EFAULT);
	ck_errno(goro_unlinkat(tdirfd, bad, 0), EFAULT);
	ck_errno(goro_renameat(tdirfd, "e", tdirfd, bad), EFAULT);
	ck_errno(goro_renameat(tdirfd, bad, tdirfd, "f"), EFAULT);
	ck_errno(goro_poll((struct pollfd *)bad, 1, 0), EFAULT);
	/* Lengths passed by pointer, and whole message headers. */
	ck_errno(goro_sendmsg(sv[0], (struct msghdr *)bad, 0), EFAULT);
	ck_errno(goro_recvmsg(sv[1], (struct msghdr *)bad, 0), EFAULT);

	lfd = tcp_listener(&sa);
	cfd = goro_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_errno(goro_connect(cfd, (struct sockaddr *)bad, sizeof(sa)), EFAULT);
	ck_ret(goro_connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_errno(goro_accept(lfd, (struct sockaddr *)bad, &slen), EFAULT);
	cfd2 = goro_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_ret(goro_connect(cfd2, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_errno(goro_accept4(lfd, (struct sockaddr *)&sa, (socklen_t *)bad, 0), EFAULT);
	close(cfd2);
	close(cfd);
	close(lfd);
	close(fd);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	munmap(bad, 4096);
	return NULL;
}

G_TEST(test_io_bad_pointer_efault, g_efault)

/* A bad page, a pipe with "abc" in it and a file holding "0123456789":
 * what the EFAULT tests below work on. */
struct efault_env {
	char *bad;
	int p[2], fd;
};

static void efault_open(struct efault_env *e)
{
	e->bad = bad_page();
	xpipe(e->p);
	e->fd = tfile("e");
	ck_ret(goro_pwrite(e->fd, "0123456789", 10, 0), 10);
	ck_ret(goro_write(e->p[1], "abc", 3), 3);
}

static void efault_close(struct efault_env *e)
{
	close(e->p[0]);
	close(e->p[1]);
	close(e->fd);
	munmap(e->bad, 4096);
}

/* The iovec array itself unreadable: EFAULT, not a crash. */
static void *g_efault_iov_array(void *arg)
{
	struct efault_env e;
	struct iovec *bad;

	(void)arg;
	efault_open(&e);
	bad = (struct iovec *)e.bad;
	ck_errno(goro_readv(e.p[0], bad, 1), EFAULT);
	ck_errno(goro_writev(e.p[1], bad, 1), EFAULT);
	ck_errno(goro_preadv(e.fd, bad, 1, 0), EFAULT);
	ck_errno(goro_pwritev(e.fd, bad, 1, 0), EFAULT);
	efault_close(&e);
	return NULL;
}

G_TEST(test_io_efault_iov_array, g_efault_iov_array)

/* splice's offsets are passed by pointer: an unreadable one is EFAULT. */
static void *g_splice_bad_offset(void *arg)
{
	struct efault_env e;

	(void)arg;
	efault_open(&e);
	ck_errno(goro_splice(e.fd, (off_t *)e.bad, e.p[1], NULL, 4, 0), EFAULT);
	ck_errno(goro_splice(e.p[0], NULL, e.fd, (off_t *)e.bad, 1, 0), EFAULT);
	efault_close(&e);
	return NULL;
}

G_TEST(test_io_splice_bad_offset, g_splice_bad_offset)

static void *g_rst_server(void *arg)
{
	struct tcp_arg *ta = arg;
	struct linger lg = { 1, 0 };
	int fd = goro_accept(ta->lfd, NULL, NULL);

	ck_assert_int_ge(fd, 0);
	/* Give the client time to block in recv first (either order is
	 * correct: the RST waits in the socket). */
	ck_ret(goro_sleep(20 * 1000000), 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	ck_ret(goro_close(fd), 0);	/* linger 0: the peer gets a RST */
	return NULL;
}

/* A closed peer: EPIPE for writes (SIGPIPE is ignored, as POSIX then
 * says), EOF for reads, ECONNRESET for a TCP reset. */
static void *g_closed_peer(void *arg)
{
	int p[2], sv[2], fd;
	char buf[16];
	struct tcp_arg ta;
	goro_t h;

	(void)arg;
	xpipe(p);
	close(p[0]);
	ck_errno(goro_write(p[1], "x", 1), EPIPE);
	ck_errno(goro_writev(p[1], &(struct iovec){ "x", 1 }, 1), EPIPE);
	close(p[1]);

	xsocketpair(sv);
	ck_ret(goro_send(sv[1], "bye", 3, 0), 3);
	close(sv[1]);
	ck_ret(goro_recv(sv[0], buf, sizeof(buf), 0), 3);	/* data first */
	ck_ret(goro_recv(sv[0], buf, sizeof(buf), 0), 0);	/* then EOF */
	ck_ret(goro_read(sv[0], buf, sizeof(buf)), 0);
	ck_errno(goro_send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE);
	ck_errno(goro_send(sv[0], "x", 1, 0), EPIPE);
	ck_errno(goro_write(sv[0], "x", 1), EPIPE);
	close(sv[0]);

	/* TCP reset while the client is blocked in recv. */
	ta.lfd = tcp_listener(&ta.sa);
	spawn(&h, g_rst_server, &ta);
	fd = goro_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_ret(goro_connect(fd, (struct sockaddr *)&ta.sa, sizeof(ta.sa)), 0);
	ck_errno(goro_recv(fd, buf, sizeof(buf), 0), ECONNRESET);
	join(&h);
	/* The reset was reported once; the connection is dead for writes. */
	ck_errno(goro_send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
	ck_ret(goro_recv(fd, buf, sizeof(buf), 0), 0);
	close(fd);
	close(ta.lfd);
	return NULL;
}

G_TEST(test_io_closed_peer, g_closed_peer)

/* A full disk, simulated with RLIMIT_FSIZE (64 KiB): a write that would
 * start beyond the limit fails with EFBIG, one that crosses it is short,
 * and growing the file by ftruncate or fallocate fails with EFBIG. */
static void *g_efbig(void *arg)
{
	char buf[8192];
	int fd = tfile("big");
	struct rlimit rl = { 65536, 65536 };
	struct rlimit old;

	(void)arg;
	pattern(buf, sizeof(buf), 10);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	ck_ret(goro_pwrite(fd, buf, 8192, 61440), 4096);	/* short */
	ck_errno(goro_pwrite(fd, buf, 4096, 65536), EFBIG);
	ck_ret(lseek(fd, 65536, SEEK_SET), 65536);
	ck_errno(goro_write(fd, buf, 1), EFBIG);
	ck_errno(goro_pwritev(fd, &(struct iovec){ buf, 10 }, 1, 70000), EFBIG);
	ck_errno(goro_ftruncate(fd, 1 << 20), EFBIG);
	ck_errno(goro_fallocate(fd, 0, 0, 1 << 20), EFBIG);
	/* What fitted is there. */
	char back[4096];
	ck_ret(goro_pread(fd, back, sizeof(back), 61440), 4096);
	ck_assert_mem_eq(back, buf, 4096);
	setrlimit(RLIMIT_FSIZE, &old);
	close(fd);
	return NULL;
}

G_TEST(test_io_full_disk_efbig, g_efbig)

/* The ENOSPC case needs a small tmpfs: a private mount namespace made in
 * the forked test process before the runtime (and its threads) start.
 * main() adds this TCase only when such a mount works (root). */
#define SMALL_FS_BYTES (256 * 1024)
static char small_fs[300];

static void io_setup_small_fs(void)
{
	io_prepare();
	ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	snprintf(small_fs, sizeof(small_fs), "%s/small", tdir);
	ck_assert_int_eq(mkdir(small_fs, 0755), 0);
	ck_assert_int_eq(mount("goro-test", small_fs, "tmpfs", 0, "size=256k"), 0);
	t_setup_2();
}

static void io_teardown_small_fs(void)
{
	goro_shutdown();
	umount2(small_fs, MNT_DETACH);
	io_teardown();
}

static void *g_enospc(void *arg)
{
	static char big[1 << 20], back[1 << 20];
	int dfd = goro_openat(-1, small_fs, O_RDONLY | O_DIRECTORY, 0);
	int fd, fd2;
	size_t total = 0;
	ssize_t r;

	(void)arg;
	ck_assert_int_ge(dfd, 0);
	fd = goro_openat(dfd, "fill", O_RDWR | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	pattern(big, sizeof(big), 11);
	/* Writes fill the 256 KiB (short), then fail with ENOSPC. */
	while ((r = goro_write(fd, big + total, sizeof(big) - total)) > 0)
		total += (size_t)r;
	ck_assert_msg(r == -1 && get_errno() == ENOSPC, "write = %zd errno %s", r, ename(get_errno()));
	ck_assert_uint_gt(total, 0);
	ck_assert_uint_le(total, SMALL_FS_BYTES);
	ck_ret(goro_pread(fd, back, sizeof(back), 0), total);
	ck_assert_mem_eq(back, big, total);
	ck_errno(goro_pwrite(fd, big, 4096, total), ENOSPC);
	fd2 = goro_openat(dfd, "alloc", O_RDWR | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd2, 0);
	ck_errno(goro_fallocate(fd2, 0, 0, 1 << 20), ENOSPC);
	/* Freeing space makes writes work again. */
	ck_ret(goro_ftruncate(fd, 0), 0);
	ck_ret(goro_pwrite(fd, big, 4096, 0), 4096);
	close(fd2);
	close(fd);
	close(dfd);
	return NULL;
}

G_TEST(test_io_full_disk_enospc, g_enospc)

/* Can this process mount a tmpfs in a private namespace?  Asked in a
 * child so that main() stays untouched. */
static bool can_mount_tmpfs(void)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		char d[] = "/tmp/goro-io-probe.XXXXXX";
		if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    !mkdtemp(d))
			_exit(1);
		int ok = mount("goro-probe", d, "tmpfs", 0, "size=64k") == 0;
		if (ok)
			umount2(d, MNT_DETACH);
		rmdir(d);
		_exit(ok ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ===================================================================== */
/*  Deadlines                                                            */
/* ===================================================================== */

static void *g_deadline_pipe(void *arg)
{
	int p[2];
	char buf[16];
	int64_t t0;

	(void)arg;
	xpipe(p);
	t0 = goro_now();
	ck_ret(goro_set_deadline(t0 + 30 * 1000000), 0);
	ck_errno(goro_read(p[0], buf, sizeof(buf)), ETIMEDOUT);
	ck_assert_int_ge(goro_now() - t0, 30 * 1000000);
	/* The deadline stays until cleared: a second call fails too. */
	ck_errno(goro_read(p[0], buf, sizeof(buf)), ETIMEDOUT);
	ck_ret(goro_set_deadline(0), 0);
	/* The fd is usable: exactly the new data comes out. */
	ck_ret(goro_write(p[1], "after", 5), 5);
	ck_ret(goro_read(p[0], buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "after", 5);
	/* A deadline far away does not disturb a call that can finish. */
	ck_ret(goro_set_deadline(goro_now() + 10 * 1000000000LL), 0);
	ck_ret(goro_write(p[1], "ok", 2), 2);
	ck_ret(goro_read(p[0], buf, sizeof(buf)), 2);
	/* A deadline in the past fails a call that would block at once. */
	ck_ret(goro_set_deadline(goro_now() - 1), 0);
	ck_errno(goro_read(p[0], buf, sizeof(buf)), ETIMEDOUT);
	ck_ret(goro_set_deadline(0), 0);

	/* A write into a full pipe times out and writes nothing. */
	int fl = fcntl(p[1], F_GETFL);
	size_t filled = 0;
	ck_assert_int_eq(fcntl(p[1], F_SETFL, fl | O_NONBLOCK), 0);
	char chunk[4096];
	pattern(chunk, sizeof(chunk), 12);
	ssize_t w;
	while ((w = write(p[1], chunk, sizeof(chunk))) > 0)
		filled += (size_t)w;
	ck_assert_int_eq(get_errno(), EAGAIN);
	ck_assert_int_eq(fcntl(p[1], F_SETFL, fl), 0);
	ck_ret(goro_set_deadline(goro_now() + 20 * 1000000), 0);
	ck_errno(goro_write(p[1], "z", 1), ETIMEDOUT);
	ck_ret(goro_set_deadline(0), 0);
	ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	size_t drained = 0;
	while ((w = read(p[0], chunk, sizeof(chunk))) > 0)
		drained += (size_t)w;
	ck_assert_uint_eq(drained, filled);
	ck_assert_int_eq(fcntl(p[0], F_SETFL, 0), 0);
	close(p[0]);
	close(p[1]);
	return NULL;
}

G_TEST(test_io_deadline_pipe, g_deadline_pipe)

static void *g_connect_later(void *arg)
{
	struct tcp_arg *ta = arg;
	int fd;

	ck_ret(goro_sleep(10 * 1000000), 0);
	fd = goro_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_ret(goro_connect(fd, (struct sockaddr *)&ta->sa, sizeof(ta->sa)), 0);
	ck_ret(goro_send(fd, "hi", 2, 0), 2);
	return (void *)(intptr_t)fd;
}

static void *g_deadline_sockets(void *arg)
{
	int sv[2], fd, cfd;
	char buf[16];
	struct tcp_arg ta;
	struct pollfd pf;
	goro_t h;

	(void)arg;
	xsocketpair(sv);
	ck_ret(goro_set_deadline(goro_now() + 20 * 1000000), 0);
	ck_errno(goro_recv(sv[0], buf, sizeof(buf), 0), ETIMEDOUT);
	ck_errno(goro_recvmsg(sv[0], &(struct msghdr){ .msg_iov = &(struct iovec){ buf, 16 },
						       .msg_iovlen = 1 }, 0), ETIMEDOUT);
	pf = (struct pollfd){ .fd = sv[0], .events = POLLIN };
	ck_errno(goro_poll(&pf, 1, -1), ETIMEDOUT);
	ck_ret(goro_set_deadline(0), 0);
	ck_ret(goro_send(sv[1], "sock", 4, 0), 4);
	ck_ret(goro_recv(sv[0], buf, sizeof(buf), 0), 4);
	ck_assert_mem_eq(buf, "sock", 4);

	/* A send into a full socket times out and sends nothing. */
	size_t filled = 0, drained = 0;
	ssize_t w;
	while ((w = send(sv[0], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		filled += (size_t)w;
	ck_assert_int_eq(get_errno(), EAGAIN);
	ck_ret(goro_set_deadline(goro_now() + 20 * 1000000), 0);
	ck_errno(goro_send(sv[0], "!", 1, 0), ETIMEDOUT);
	ck_ret(goro_set_deadline(0), 0);
	while ((w = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		drained += (size_t)w;
	ck_assert_uint_eq(drained, filled);

	ta.lfd = tcp_listener(&ta.sa);
	ck_ret(goro_set_deadline(goro_now() + 20 * 1000000), 0);
	ck_errno(goro_accept(ta.lfd, NULL, NULL), ETIMEDOUT);
	ck_ret(goro_set_deadline(0), 0);
	/* The listener still works. */
	spawn(&h, g_connect_later, &ta);
	fd = goro_accept(ta.lfd, NULL, NULL);
	ck_assert_int_ge(fd, 0);
	ck_ret(goro_recv(fd, buf, 2, MSG_WAITALL), 2);
	ck_assert_mem_eq(buf, "hi", 2);
	cfd = (int)(intptr_t)join(&h);
	close(cfd);
	close(fd);
	close(ta.lfd);
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

G_TEST(test_io_deadline_sockets, g_deadline_sockets)

/* Deadlines racing with data: a writer sends 0..N-1 in small pieces at
 * irregular times; the reader reads with a 1 ms deadline and retries on
 * ETIMEDOUT.  Every byte must arrive exactly once and in order: a
 * cancelled read that had in fact consumed data would lose bytes. */
#define RACE_BYTES 3000

struct race {
	int p[2];		/* a pipe, or a socketpair if sock */
	bool sock;
	int nbytes;
	uint32_t seed;
	_Atomic int timeouts;
	struct goro_wg *wg;	/* done once by the reader and the writer */
};

static void *g_race_writer(void *arg)
{
	struct race *r = arg;
	unsigned char chunk[16];
	int sent = 0;
	uint32_t x = r->seed;

	while (sent < r->nbytes) {
		x = x * 1103515245 + 12345;
		int n = 1 + (int)((x >> 16) % 13);
		if (n > r->nbytes - sent)
			n = r->nbytes - sent;
		for (int i = 0; i < n; i++)
			chunk[i] = (unsigned char)((sent + i) % 251);
		write_full(r->p[1], chunk, (size_t)n);
		sent += n;
		/* 0 to 3 ms pauses, so that deadlines fire between pieces. */
		ck_ret(goro_sleep((int64_t)((x >> 8) % 4) * 1000000), 0);
	}
	if (r->wg)
		t_ok(goro_wg_done(r->wg));
	return NULL;
}

/* Reads r->nbytes with 1 ms deadlines, checking every byte. */
static void race_read(struct race *r)
{
	unsigned char buf[7];
	int got = 0;

	while (got < r->nbytes) {
		ck_ret(goro_set_deadline(goro_now() + 1000000), 0);
		ssize_t n = r->sock ? goro_recv(r->p[0], buf, sizeof(buf), 0)
				    : goro_read(r->p[0], buf, sizeof(buf));
		if (n < 0) {
			ck_assert_msg(get_errno() == ETIMEDOUT, "read: %s", ename(get_errno()));
			r->timeouts++;
			continue;
		}
		ck_assert_int_gt(n, 0);
		for (ssize_t i = 0; i < n; i++)
			ck_assert_msg(buf[i] == (got + i) % 251,
				      "byte %zd is %u, want %d (lost or doubled data)",
				      got + i, buf[i], (int)((got + i) % 251));
		got += (int)n;
	}
	ck_ret(goro_set_deadline(0), 0);
}

static void *g_deadline_race(void *arg)
{
	struct race r = { .nbytes = RACE_BYTES, .seed = 12345 };
	unsigned char buf[8];
	goro_t h;

	(void)arg;
	xpipe(r.p);
	spawn(&h, g_race_writer, &r);
	race_read(&r);
	join(&h);
	/* Nothing extra is left behind. */
	ck_ret(goro_close(r.p[1]), 0);
	ck_ret(goro_read(r.p[0], buf, sizeof(buf)), 0);
	ck_assert_msg(r.timeouts > 0, "no deadline fired: the test tested nothing");
	close(r.p[0]);
	return NULL;
}

G_TEST(test_io_deadline_every_byte_once, g_deadline_race)

/* The same race on 200 pipes and socketpairs at once: many cancels in
 * flight together, on both Ms. */
#define RACES 200

static void *g_race_reader(void *arg)
{
	struct race *r = arg;

	race_read(r);
	t_ok(goro_wg_done(r->wg));
	return NULL;
}

static void *g_deadline_race_many(void *arg)
{
	static struct race rs[RACES];
	struct goro_wg wg = GORO_WG_INIT;
	long timeouts = 0;

	(void)arg;
	t_ok(goro_wg_add(&wg, 2 * RACES));
	for (int i = 0; i < RACES; i++) {
		struct race *r = &rs[i];
		memset(r, 0, sizeof(*r));
		r->sock = i % 2;
		r->nbytes = 300;
		r->seed = (uint32_t)i * 7919 + 1;
		r->wg = &wg;
		if (r->sock)
			xsocketpair(r->p);
		else
			xpipe(r->p);
		t_ok(goro_spawn(NULL, g_race_reader, r, NULL));
		t_ok(goro_spawn(NULL, g_race_writer, r, NULL));
	}
	t_ok(goro_wg_wait(&wg));
	for (int i = 0; i < RACES; i++) {
		char c;
		timeouts += rs[i].timeouts;
		/* Nothing extra follows the last byte. */
		close(rs[i].p[1]);
		ck_ret(goro_read(rs[i].p[0], &c, 1), 0);
		close(rs[i].p[0]);
	}
	ck_assert_msg(timeouts > 0, "no deadline fired: the test tested nothing");
	return NULL;
}

G_TEST(test_io_deadline_race_many, g_deadline_race_many)

START_TEST(test_io_deadline_needs_g)
{
	ck_assert_int_eq(goro_set_deadline(goro_now() + 1000), -EPERM);
}
END_TEST

/* ===================================================================== */
/*  Close wakes a blocked G                                              */
/* ===================================================================== */

enum blocked_call { B_READ, B_RECV, B_ACCEPT, B_POLL, B_SEND };

struct closer {
	int fd;
	enum blocked_call call;
	_Atomic int entered;
};

static void *g_blocked(void *arg)
{
	struct closer *c = arg;
	char buf[8];
	struct pollfd pf = { .fd = c->fd, .events = POLLIN };

	c->entered = 1;
	switch (c->call) {
	case B_READ:
		ck_errno(goro_read(c->fd, buf, sizeof(buf)), EBADF);
		break;
	case B_RECV:
		ck_errno(goro_recv(c->fd, buf, sizeof(buf), 0), EBADF);
		break;
	case B_ACCEPT:
		ck_errno(goro_accept(c->fd, NULL, NULL), EBADF);
		break;
	case B_SEND:
		/* The socket is full: the send waits for room. */
		ck_errno(goro_send(c->fd, buf, sizeof(buf), 0), EBADF);
		break;
	case B_POLL:
		/* poll(2) on a closed fd: POLLNVAL, or EBADF from goro. */
		set_errno(0);
		int r = goro_poll(&pf, 1, -1);
		int e = get_errno();
		ck_assert_msg((r == -1 && e == EBADF) ||
			      (r == 1 && pf.revents == POLLNVAL),
			      "poll = %d errno %s revents %#x", r, ename(e), pf.revents);
		break;
	}
	return NULL;
}

static void close_while_blocked(int fd, enum blocked_call call)
{
	struct closer c = { .fd = fd, .call = call };
	goro_t h;

	spawn(&h, g_blocked, &c);
	while (!c.entered)
		ck_ret(goro_yield(), 0);
	/* Let it reach the kernel or the poller: 30 ms is plenty, and if
	 * it is not there yet its call sees a closed fd: EBADF as well. */
	ck_ret(goro_sleep(30 * 1000000), 0);
	ck_ret(goro_close(fd), 0);
	join(&h);
}

static void *g_close_wakes(void *arg)
{
	int p[2], sv[2], lfd, fd;
	struct sockaddr_in sa;
	char buf[8];

	(void)arg;
	xpipe(p);
	close_while_blocked(p[0], B_READ);
	xsocketpair(sv);
	close_while_blocked(sv[0], B_RECV);
	lfd = tcp_listener(&sa);
	close_while_blocked(lfd, B_ACCEPT);

	/* The fd numbers are reused at once by new fds: they must work. */
	int q[2];
	xpipe(q);
	ck_ret(goro_write(q[1], "new", 3), 3);
	ck_ret(goro_read(q[0], buf, sizeof(buf)), 3);
	ck_assert_mem_eq(buf, "new", 3);
	fd = q[0];
	close_while_blocked(fd, B_POLL);

	/* A sender blocked on a full socket. */
	int sv2[2];
	xsocketpair(sv2);
	while (send(sv2[0], buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	ck_assert_int_eq(get_errno(), EAGAIN);
	close_while_blocked(sv2[0], B_SEND);
	close(sv2[1]);
	close(q[1]);
	close(p[1]);
	close(sv[1]);
	return NULL;
}

G_TEST(test_io_close_wakes_blocked, g_close_wakes)

/* ===================================================================== */
/*  The M never stalls (GORO_MAXPROCS=1)                                  */
/* ===================================================================== */

struct stall {
	int pipe[2];		/* G1 waits on pipe[0] */
	int own[2];		/* G4's own socketpair */
	_Atomic int blocked;	/* how many of G1..G3 are in their call */
	_Atomic int sleeper_done, blocker_done, reader_done;
	long iters, iters_all_blocked;
};

static void *block_1s(void *arg)
{
	usleep(1000000);
	return arg;
}

static void *g_stall_reader(void *arg)
{
	struct stall *s = arg;
	char c;

	s->blocked++;
	ck_ret(goro_read(s->pipe[0], &c, 1), 1);
	s->blocked--;
	ck_assert_int_eq(c, 'x');
	s->reader_done = 1;
	return NULL;
}

static void *g_stall_sleeper(void *arg)
{
	struct stall *s = arg;
	int64_t t0 = goro_now();

	s->blocked++;
	ck_ret(goro_sleep(1000000000), 0);
	s->blocked--;
	ck_assert_int_ge(goro_now() - t0, 1000000000);
	s->sleeper_done = 1;
	return NULL;
}

static void *g_stall_blocker(void *arg)
{
	struct stall *s = arg;

	s->blocked++;
	ck_assert_ptr_eq(goro_block(block_1s, s), s);
	s->blocked--;
	s->blocker_done = 1;
	return NULL;
}

/* The fourth G: does a round of socket I/O per iteration and yields. */
static void *g_stall_worker(void *arg)
{
	struct stall *s = arg;
	bool released = false;
	unsigned char b = 0, back;

	while (!s->reader_done) {
		ck_ret(goro_write(s->own[0], &b, 1), 1);
		ck_ret(goro_read(s->own[1], &back, 1), 1);
		ck_assert_int_eq(back, b);
		b++;
		s->iters++;
		if (s->blocked == 3)
			s->iters_all_blocked++;
		if (!released && s->sleeper_done && s->blocker_done) {
			ck_ret(goro_write(s->pipe[1], "x", 1), 1);
			released = true;
		}
		ck_ret(goro_yield(), 0);
	}
	return NULL;
}

static void *g_no_stall(void *arg)
{
	struct stall s = { .blocked = 0 };
	goro_t h[4];

	(void)arg;
	xpipe(s.pipe);
	xsocketpair(s.own);
	spawn(&h[0], g_stall_reader, &s);
	spawn(&h[1], g_stall_sleeper, &s);
	spawn(&h[2], g_stall_blocker, &s);
	spawn(&h[3], g_stall_worker, &s);
	for (int i = 0; i < 4; i++)
		join(&h[i]);
	/* While all three were blocked (about 1 s), the fourth G went on.
	 * 100 rounds is a very low bar: it does tens of thousands. */
	ck_assert_msg(s.iters_all_blocked >= 100,
		      "the fourth G made %ld rounds while the others were blocked "
		      "(%ld in all)", s.iters_all_blocked, s.iters);
	close(s.pipe[0]);
	close(s.pipe[1]);
	close(s.own[0]);
	close(s.own[1]);
	return NULL;
}

START_TEST(test_io_maxprocs1_no_stall)
{
	struct goro_stats st;

	t_ok(goro_stats(&st, sizeof(st)));
	ck_assert_uint_eq(st.maxprocs, 1);
	t_run(g_no_stall, NULL);
}
END_TEST

/* ===================================================================== */
/*  Scale: 10,000 Gs, a tiny ring                                         */
/* ===================================================================== */

/* ThreadSanitizer keeps a thread slot per G (each is a TSan fiber) and
 * dies past 8,128 of them: under TSan the test runs 4,000 Gs. */
#ifdef __SANITIZE_THREAD__
#define SCALE_GS 4000
#else
#define SCALE_GS 10000
#endif
#define SCALE_MSG 256

struct scale {
	struct goro_wg ready, go, done;
	int file;			/* shared fd of the file Gs */
	_Atomic long ok_file, ok_sock;
};

static struct scale sc;

struct scale_arg {
	int fd;
	int id;
};

static void scale_gate(void)
{
	t_ok(goro_wg_done(&sc.ready));
	t_ok(goro_wg_wait(&sc.go));
}

static void *g_scale_file(void *arg)
{
	int id = (int)(intptr_t)arg;
	char out[4096], in[4096];
	int fd = sc.file;

	scale_gate();
	if (id % 10 == 0) {
		/* Every tenth G opens its own fd too. */
		fd = goro_openat(tdirfd, "scale", O_RDWR, 0);
		ck_assert_msg(fd >= 0, "openat: %s", ename(get_errno()));
	}
	pattern(out, sizeof(out), (unsigned)id);
	ck_ret(goro_pwrite(fd, out, sizeof(out), (off_t)id * 4096), 4096);
	ck_ret(goro_yield(), 0);
	ck_ret(goro_pread(fd, in, sizeof(in), (off_t)id * 4096), 4096);
	ck_assert_msg(memcmp(in, out, sizeof(in)) == 0, "file G %d read wrong data", id);
	if (fd != sc.file)
		ck_ret(goro_close(fd), 0);
	sc.ok_file++;
	t_ok(goro_wg_done(&sc.done));
	return NULL;
}

static void recv_full(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = goro_recv(fd, buf + got, n - got, 0);
		ck_assert_msg(r > 0, "recv = %zd %s", r, ename(get_errno()));
		got += (size_t)r;
	}
}

/* Side A sends its pattern, then reads the echo back. */
static void *g_scale_a(void *arg)
{
	struct scale_arg *a = arg;
	char out[SCALE_MSG], in[SCALE_MSG];

	scale_gate();
	pattern(out, sizeof(out), (unsigned)a->id + 100000);
	ck_ret(goro_send(a->fd, out, 100, 0), 100);
	ck_ret(goro_yield(), 0);
	ck_ret(goro_send(a->fd, out + 100, SCALE_MSG - 100, 0), SCALE_MSG - 100);
	recv_full(a->fd, in, sizeof(in));
	ck_assert_msg(memcmp(in, out, sizeof(in)) == 0, "socket G %d got wrong echo", a->id);
	sc.ok_sock++;
	t_ok(goro_wg_done(&sc.done));
	return NULL;
}

/* Side B echoes what it reads. */
static void *g_scale_b(void *arg)
{
	struct scale_arg *a = arg;
	char buf[SCALE_MSG];

	scale_gate();
	recv_full(a->fd, buf, sizeof(buf));
	write_full(a->fd, buf, sizeof(buf));
	sc.ok_sock++;
	t_ok(goro_wg_done(&sc.done));
	return NULL;
}

static void *g_scale(void *arg)
{
	int npairs = (int)(intptr_t)arg;
	int nfile = SCALE_GS - 2 * npairs;
	struct scale_arg *sa = calloc((size_t)npairs * 2, sizeof(*sa));
	struct goro_stats st;

	ck_assert_ptr_nonnull(sa);
	sc.file = tfile("scale");
	t_ok(goro_wg_add(&sc.ready, SCALE_GS));
	t_ok(goro_wg_add(&sc.go, 1));
	t_ok(goro_wg_add(&sc.done, SCALE_GS));
	for (int i = 0; i < nfile; i++)
		t_ok(goro_spawn(NULL, g_scale_file, (void *)(intptr_t)i, NULL));
	for (int i = 0; i < npairs; i++) {
		int sv[2];
		xsocketpair(sv);
		sa[2 * i] = (struct scale_arg){ sv[0], i };
		sa[2 * i + 1] = (struct scale_arg){ sv[1], i };
		t_ok(goro_spawn(NULL, g_scale_a, &sa[2 * i], NULL));
		t_ok(goro_spawn(NULL, g_scale_b, &sa[2 * i + 1], NULL));
	}
	/* All 10,000 are alive at once before any starts its I/O. */
	t_ok(goro_wg_wait(&sc.ready));
	t_ok(goro_stats(&st, sizeof(st)));
	ck_assert_uint_ge(st.gs_alive, SCALE_GS);
	t_ok(goro_wg_done(&sc.go));
	t_ok(goro_wg_wait(&sc.done));
	ck_assert_int_eq(sc.ok_file, nfile);
	ck_assert_int_eq(sc.ok_sock, 2 * npairs);
	for (int i = 0; i < 2 * npairs; i++)
		close(sa[i].fd);
	free(sa);
	close(sc.file);
	return NULL;
}

START_TEST(test_io_10k_gs)
{
	struct rlimit rl;
	int npairs = SCALE_GS * 3 / 10;

	/* Each pair takes 2 fds; leave room for the file Gs' own fds. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < (rlim_t)(2 * npairs + 2000))
		npairs = ((int)rl.rlim_cur - 2000) / 2;
	ck_assert_msg(npairs >= 500, "RLIMIT_NOFILE %llu is too low",
		      (unsigned long long)rl.rlim_cur);
	t_run(g_scale, (void *)(intptr_t)npairs);
}
END_TEST

/* A ring of 4 entries and 3,000 Gs with I/O in flight at once: pipe
 * ping-pongs, file reads, deadlines and sleeps.  Every completion must
 * come back to its G: a lost one hangs (the TCase timeout fails it), a
 * misrouted one shows as wrong data. */
#define TINY_PAIRS 500
#define TINY_ROUNDS 20
#define TINY_READERS 1000
#define TINY_TIMERS 500
#define TINY_SLEEPERS 500

struct tiny {
	struct goro_wg done;
	int file;
	char content[65536];
	_Atomic long msgs, reads, timeouts, sleeps;
};

static struct tiny *tn;

struct tiny_pair {
	int ab[2], ba[2];	/* pipes a->b and b->a */
};

static void *g_tiny_ping(void *arg)
{
	struct tiny_pair *tp = arg;

	for (uint32_t i = 0; i < TINY_ROUNDS; i++) {
		uint32_t v;
		write_full(tp->ab[1], &i, sizeof(i));
		read_full(tp->ba[0], &v, sizeof(v));
		ck_assert_uint_eq(v, i * 3 + 1);
		tn->msgs++;
	}
	t_ok(goro_wg_done(&tn->done));
	return NULL;
}

static void *g_tiny_pong(void *arg)
{
	struct tiny_pair *tp = arg;

	for (uint32_t i = 0; i < TINY_ROUNDS; i++) {
		uint32_t v;
		read_full(tp->ab[0], &v, sizeof(v));
		ck_assert_uint_eq(v, i);
		v = v * 3 + 1;
		write_full(tp->ba[1], &v, sizeof(v));
		tn->msgs++;
	}
	t_ok(goro_wg_done(&tn->done));
	return NULL;
}

static void *g_tiny_reader(void *arg)
{
	int id = (int)(intptr_t)arg;
	char buf[4096];

	for (int k = 0; k < TINY_ROUNDS; k++) {
		off_t off = (off_t)((id * 7 + k) % 16) * 4096;
		ck_ret(goro_pread(tn->file, buf, sizeof(buf), off), 4096);
		ck_assert(memcmp(buf, tn->content + off, sizeof(buf)) == 0);
		tn->reads++;
	}
	t_ok(goro_wg_done(&tn->done));
	return NULL;
}

static void *g_tiny_timer(void *arg)
{
	int *p = arg;
	char c;

	ck_ret(goro_set_deadline(goro_now() + 20 * 1000000), 0);
	ck_errno(goro_read(p[0], &c, 1), ETIMEDOUT);
	ck_ret(goro_set_deadline(0), 0);
	ck_ret(goro_write(p[1], "t", 1), 1);
	ck_ret(goro_read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 't');
	tn->timeouts++;
	t_ok(goro_wg_done(&tn->done));
	return NULL;
}

static void *g_tiny_sleeper(void *arg)
{
	int id = (int)(intptr_t)arg;

	ck_ret(goro_sleep((int64_t)(1 + id % 10) * 1000000), 0);
	tn->sleeps++;
	t_ok(goro_wg_done(&tn->done));
	return NULL;
}

static void *g_tiny(void *arg)
{
	static struct tiny_pair pairs[TINY_PAIRS];
	static int tpipes[TINY_TIMERS][2];

	(void)arg;
	tn = calloc(1, sizeof(*tn));
	ck_assert_ptr_nonnull(tn);
	tn->file = tfile("tiny");
	pattern(tn->content, sizeof(tn->content), 13);
	ck_ret(pwrite(tn->file, tn->content, sizeof(tn->content), 0), sizeof(tn->content));
	t_ok(goro_wg_add(&tn->done, 2 * TINY_PAIRS + TINY_READERS + TINY_TIMERS + TINY_SLEEPERS));
	for (int i = 0; i < TINY_PAIRS; i++) {
		xpipe(pairs[i].ab);
		xpipe(pairs[i].ba);
		t_ok(goro_spawn(NULL, g_tiny_ping, &pairs[i], NULL));
		t_ok(goro_spawn(NULL, g_tiny_pong, &pairs[i], NULL));
	}
	for (int i = 0; i < TINY_READERS; i++)
		t_ok(goro_spawn(NULL, g_tiny_reader, (void *)(intptr_t)i, NULL));
	for (int i = 0; i < TINY_TIMERS; i++) {
		xpipe(tpipes[i]);
		t_ok(goro_spawn(NULL, g_tiny_timer, tpipes[i], NULL));
	}
	for (int i = 0; i < TINY_SLEEPERS; i++)
		t_ok(goro_spawn(NULL, g_tiny_sleeper, (void *)(intptr_t)i, NULL));
	t_ok(goro_wg_wait(&tn->done));
	ck_assert_int_eq(tn->msgs, 2 * TINY_PAIRS * TINY_ROUNDS);
	ck_assert_int_eq(tn->reads, TINY_READERS * TINY_ROUNDS);
	ck_assert_int_eq(tn->timeouts, TINY_TIMERS);
	ck_assert_int_eq(tn->sleeps, TINY_SLEEPERS);
	for (int i = 0; i < TINY_PAIRS; i++) {
		close(pairs[i].ab[0]);
		close(pairs[i].ab[1]);
		close(pairs[i].ba[0]);
		close(pairs[i].ba[1]);
	}
	for (int i = 0; i < TINY_TIMERS; i++) {
		close(tpipes[i][0]);
		close(tpipes[i][1]);
	}
	close(tn->file);
	free(tn);
	return NULL;
}

G_TEST(test_io_tiny_ring_loses_nothing, g_tiny)

/* Threads of this process whose name starts with prefix ("" = all). */
static int count_threads(const char *prefix)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char path[300], comm[64] = "";
		FILE *f;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;	/* the thread just exited */
		if (fgets(comm, sizeof(comm), f) && strncmp(comm, prefix, strlen(prefix)) == 0)
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* 128 Gs blocked in splices from empty pipes, which io_uring hands to its
 * io-wq workers: the workers are capped, so the process has far fewer
 * threads than blocked calls; once data comes, every splice completes
 * with its own pipe's bytes.  (With GORO_IO=epoll, splice goes through
 * the blocking hand-off, a thread per blocked call: only the data is
 * checked there.) */
#define SPLICERS 128

struct splicer {
	int in[2], out[2];
	struct goro_wg *wg;
};

static void *g_splicer(void *arg)
{
	struct splicer *sp = arg;
	char buf[16];

	ck_ret(goro_splice(sp->in[0], NULL, sp->out[1], NULL, sizeof(buf), 0), 8);
	ck_ret(goro_read(sp->out[0], buf, sizeof(buf)), 8);
	ck_assert_int_eq(memcmp(buf, &sp, sizeof(sp)), 0);
	t_ok(goro_wg_done(sp->wg));
	return NULL;
}

static void *g_iowq_capped(void *arg)
{
	static struct splicer sps[SPLICERS];
	struct goro_wg wg = GORO_WG_INIT;
	int threads, workers;

	(void)arg;
	t_ok(goro_wg_add(&wg, SPLICERS));
	for (int i = 0; i < SPLICERS; i++) {
		xpipe(sps[i].in);
		xpipe(sps[i].out);
		sps[i].wg = &wg;
		t_ok(goro_spawn(NULL, g_splicer, &sps[i], NULL));
	}
	/* Let them all reach the kernel. */
	ck_ret(goro_sleep(100 * 1000000), 0);
	threads = count_threads("");
	workers = count_threads("iou-wrk");
	if (goro_io_backend() == GORO_IO_URING)
		ck_assert_msg(threads < SPLICERS / 2,
			      "%d threads (%d iou-wrk) for %d blocked splices",
			      threads, workers, SPLICERS);
	for (int i = 0; i < SPLICERS; i++) {
		struct splicer *sp = &sps[i];
		ck_ret(goro_write(sp->in[1], &sp, sizeof(sp)), 8);
	}
	t_ok(goro_wg_wait(&wg));
	for (int i = 0; i < SPLICERS; i++) {
		close(sps[i].in[0]);
		close(sps[i].in[1]);
		close(sps[i].out[0]);
		close(sps[i].out[1]);
	}
	return NULL;
}

G_TEST(test_io_iowq_workers_capped, g_iowq_capped)

/* Signals hitting the process while Gs block: EINTR never comes out. */
static _Atomic int sig_stop;
static _Atomic long sig_count;

static void on_usr1(int sig)
{
	(void)sig;
	sig_count++;
}

static void *signal_storm(void *arg)
{
	(void)arg;
	while (!sig_stop) {
		kill(getpid(), SIGUSR1);
		usleep(200);
	}
	return NULL;
}

static void *g_eintr_pong(void *arg)
{
	int *sv = arg;
	char c;

	for (int i = 0; i < 300; i++) {
		ck_ret(goro_read(sv[1], &c, 1), 1);
		ck_ret(goro_sleep(200000), 0);
		ck_ret(goro_write(sv[1], &c, 1), 1);
	}
	return NULL;
}

static void *g_eintr(void *arg)
{
	int sv[2];
	goro_t h;

	(void)arg;
	xsocketpair(sv);
	spawn(&h, g_eintr_pong, sv);
	for (int i = 0; i < 300; i++) {
		char c = (char)i, back;
		struct pollfd pf = { .fd = sv[0], .events = POLLIN };
		ck_ret(goro_write(sv[0], &c, 1), 1);
		ck_ret(goro_poll(&pf, 1, -1), 1);
		ck_ret(goro_recv(sv[0], &back, 1, 0), 1);
		ck_assert_int_eq(back, c);
	}
	join(&h);
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

START_TEST(test_io_no_eintr)
{
	struct sigaction sa = { .sa_handler = on_usr1 };	/* no SA_RESTART */
	pthread_t t;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, signal_storm, NULL), 0);
	t_run(g_eintr, NULL);
	sig_stop = 1;
	pthread_join(t, NULL);
	ck_assert_int_gt(sig_count, 0);
}
END_TEST

/* ===================================================================== */
/*  Plain threads: each wrapper is the plain syscall                      */
/* ===================================================================== */

static void plain_thread_checks(void)
{
	int p[2], fd;
	char buf[32];
	struct statx stx;

	xpipe(p);
	ck_assert_int_eq(goro_self_id(), 0);
	ck_ret(goro_write(p[1], "plain", 5), 5);
	ck_ret(goro_read(p[0], buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "plain", 5);
	ck_errno(goro_read(-1, buf, 1), EBADF);
	ck_errno(goro_openat(tdirfd, "nope", O_RDONLY, 0), ENOENT);
	fd = goro_openat(tdirfd, "pf", O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_ret(goro_pwrite(fd, "abcdef", 6, 2), 6);
	ck_ret(goro_pread(fd, buf, sizeof(buf), 0), 8);
	ck_assert_mem_eq(buf, "\0\0abcdef", 8);
	ck_ret(goro_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx), 0);
	ck_assert_uint_eq(stx.stx_size, 8);
	ck_ret(goro_fsync(fd), 0);
	ck_ret(goro_ftruncate(fd, 3), 0);
	ck_ret(goro_close(fd), 0);
	ck_errno(goro_close(fd), EBADF);
	ck_ret(goro_unlinkat(tdirfd, "pf", 0), 0);
	ck_ret(goro_sleep(1000000), 0);
	struct pollfd pf = { .fd = p[0], .events = POLLIN };
	ck_ret(goro_poll(&pf, 1, 10), 0);
	ck_assert_int_eq(goro_set_deadline(goro_now() + 1000000), -EPERM);
	fd = goro_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_errno(goro_shutdown_socket(fd, SHUT_RDWR), ENOTCONN);
	close(fd);
	close(p[0]);
	close(p[1]);
}

START_TEST(test_io_plain_thread)
{
	int p[2];
	char buf[8];
	goro_t h;

	plain_thread_checks();
	/* A plain thread blocks in the call (it has nothing to park) until
	 * a G writes. */
	xpipe(p);
	spawn(&h, sleep_then_write, (void *)(intptr_t)p[1]);
	ck_ret(goro_read(p[0], buf, sizeof(buf)), 4);
	ck_assert_mem_eq(buf, "late", 4);
	join(&h);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* Before goro_init the wrappers work all the same. */
START_TEST(test_io_plain_thread_no_runtime)
{
	plain_thread_checks();
}
END_TEST

/* ===================================================================== */
/*  Stack buffers                                                        */
/* ===================================================================== */

struct stk {
	int p[2], sv[2], file;
	char data[16384];
};

static void *g_stk_writer(void *arg)
{
	struct stk *s = arg;

	ck_ret(goro_sleep(10 * 1000000), 0);
	for (int off = 0; off < 16384; off += 4096)
		write_full(s->p[1], s->data + off, 4096);
	ck_ret(goro_send(s->sv[1], s->data, 16384, 0), 16384);
	return NULL;
}

/* The 16 KiB buffer lies in this frame and is not touched before the
 * read, so with userfaultfd stacks its pages are not there yet when the
 * kernel copies into them. */
static __attribute__((noinline)) void stack_reads(struct stk *s)
{
	char buf[16384];
	size_t got = 0;

	while (got < sizeof(buf)) {
		ssize_t r = goro_read(s->p[0], buf + got, sizeof(buf) - got);
		ck_assert_msg(r > 0, "read into the stack: %zd %s", r, ename(get_errno()));
		got += (size_t)r;
	}
	ck_assert(memcmp(buf, s->data, sizeof(buf)) == 0);
}

static __attribute__((noinline)) void stack_recv(struct stk *s)
{
	char buf[16384];

	ck_ret(goro_recv(s->sv[0], buf, sizeof(buf), MSG_WAITALL), 16384);
	ck_assert(memcmp(buf, s->data, sizeof(buf)) == 0);
}

static __attribute__((noinline)) void stack_pread(struct stk *s)
{
	char buf[16384];
	struct iovec iov[2] = { { buf, 10000 }, { buf + 10000, 6384 } };

	ck_ret(goro_pread(s->file, buf, sizeof(buf), 0), 16384);
	ck_assert(memcmp(buf, s->data, sizeof(buf)) == 0);
	ck_ret(goro_preadv(s->file, iov, 2, 0), 16384);
	ck_assert(memcmp(buf, s->data, sizeof(buf)) == 0);
}

static __attribute__((noinline)) void stack_write(struct stk *s)
{
	char buf[16384];

	memcpy(buf, s->data, sizeof(buf));
	ck_ret(goro_pwrite(s->file, buf, sizeof(buf), 16384), 16384);
}

static void *g_stack_buffers(void *arg)
{
	struct stk *s = arg;
	goro_t h;

	spawn(&h, g_stk_writer, s);
	stack_reads(s);
	stack_recv(s);
	join(&h);
	stack_pread(s);
	stack_write(s);
	return NULL;
}

START_TEST(test_io_stack_buffer_16k)
{
	static struct stk s;
	static char back[16384];

	pattern(s.data, sizeof(s.data), 14);
	xpipe(s.p);
	xsocketpair(s.sv);
	s.file = tfile("stk");
	ck_ret(pwrite(s.file, s.data, sizeof(s.data), 0), 16384);
	/* In a fresh G each time, so that its stack pages start out empty. */
	t_run(g_stack_buffers, &s);
	ck_ret(pread(s.file, back, sizeof(back), 16384), 16384);
	ck_assert_mem_eq(back, s.data, sizeof(back));
	close(s.p[0]);
	close(s.p[1]);
	close(s.sv[0]);
	close(s.sv[1]);
	close(s.file);
}
END_TEST

/* ===================================================================== */

static TCase *io_tcase(Suite *s, const char *name, void (*setup)(void),
		       void (*teardown)(void), double timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *suite_io(void)
{
	Suite *s = suite_create("io");
	TCase *tc;

	tc = io_tcase(s, "Core", io_setup_2, io_teardown, 30);
	tcase_add_test(tc, test_io_backend_matches_env);
	tcase_add_test(tc, test_io_pipe_read_write);
	tcase_add_test(tc, test_io_file_pread_pwrite);
	tcase_add_test(tc, test_io_vectored);
	tcase_add_test(tc, test_io_openat_close);
	tcase_add_test(tc, test_io_statx);
	tcase_add_test(tc, test_io_sync_calls);
	tcase_add_test(tc, test_io_fallocate_ftruncate);
	tcase_add_test(tc, test_io_dir_ops);
	tcase_add_test(tc, test_io_tcp_echo);
	tcase_add_test(tc, test_io_sendmsg_recvmsg);
	tcase_add_test(tc, test_io_socket_errors);
	tcase_add_test(tc, test_io_poll);
	tcase_add_test(tc, test_io_splice);
	tcase_add_test(tc, test_io_sleep);
	tcase_add_test(tc, test_io_no_eintr);

	tc = io_tcase(s, "Errors", io_setup_2, io_teardown, 30);
	tcase_add_test(tc, test_io_bad_fd_ebadf);
	tcase_add_test(tc, test_io_pipe_espipe);
	tcase_add_test(tc, test_io_vectored_bad_count);
	tcase_add_test(tc, test_io_bad_pointer_efault);
	tcase_add_test(tc, test_io_efault_iov_array);
	tcase_add_test(tc, test_io_splice_bad_offset);
	tcase_add_test(tc, test_io_closed_peer);
	tcase_add_test(tc, test_io_full_disk_efbig);
	if (can_mount_tmpfs()) {
		tc = io_tcase(s, "DiskFull", io_setup_small_fs, io_teardown_small_fs, 30);
		tcase_add_test(tc, test_io_full_disk_enospc);
	} else {
		fprintf(stderr, "check_io: no tmpfs mount (not root?): "
				"test_io_full_disk_enospc not run\n");
	}

	tc = io_tcase(s, "Deadlines", io_setup_2, io_teardown, 30);
	tcase_add_test(tc, test_io_deadline_pipe);
	tcase_add_test(tc, test_io_deadline_sockets);
	tcase_add_test(tc, test_io_deadline_every_byte_once);
	tcase_add_test(tc, test_io_deadline_race_many);
	tcase_add_test(tc, test_io_deadline_needs_g);
	tcase_add_test(tc, test_io_close_wakes_blocked);

	tc = io_tcase(s, "NoStall", io_setup_1, io_teardown, 30);
	tcase_add_test(tc, test_io_maxprocs1_no_stall);

	tc = io_tcase(s, "Scale", io_setup_2, io_teardown, 60);
	tcase_add_test(tc, test_io_10k_gs);
	tc = io_tcase(s, "TinyRing", io_setup_tiny_ring, io_teardown, 60);
	tcase_add_test(tc, test_io_tiny_ring_loses_nothing);
	tc = io_tcase(s, "Workers", io_setup_2, io_teardown, 30);
	tcase_add_test(tc, test_io_iowq_workers_capped);

	tc = io_tcase(s, "Plain", io_setup_2, io_teardown, 30);
	tcase_add_test(tc, test_io_plain_thread);
	tc = io_tcase(s, "PlainNoRuntime", io_setup_noruntime, io_teardown, 30);
	tcase_add_test(tc, test_io_plain_thread_no_runtime);

	tc = io_tcase(s, "Stack", io_setup_2, io_teardown, 30);
	tcase_add_test(tc, test_io_stack_buffer_16k);
	return s;
}

int main(void)
{
	return t_main(suite_io());
}
