/*
 * bench_io.c: the I/O benchmarks of goro-bench (issue 4).
 *
 *   pread         64 Gs doing 4 KiB preads at random aligned offsets of a
 *                 1 GiB file in the page cache; ops/s.  Baselines: fio with
 *                 io_uring at iodepth 64, and fio psync with one job per
 *                 CPU, on the same file.
 *   pread-direct  the same with O_DIRECT and 256 Gs; ops/s and the peak
 *                 number of threads of the process (kernel io-wq workers
 *                 included).  Baseline: fio io_uring at iodepth 256.
 *   echo          tools/goro-echo against tools/epoll-echo (one thread, and
 *                 one per CPU), each driven by tools/echo-load with 256
 *                 connections x 64 bytes; requests/s, p50 and p99.
 *
 * The file is $GORO_BENCH_FILE, or $TMPDIR/goro-bench-1g.dat (default
 * /var/tmp), created with 1 GiB of data when it is absent or smaller; it
 * is kept for the next run.  fio baselines are skipped (with a note on
 * stderr) when fio is not on PATH.  Runs last 5 s, 1 s with
 * GORO_BENCH_QUICK=1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "goro.h"
#include "bench.h"

#define FILE_SIZE (1LL << 30)
#define BLOCK 4096

static double run_seconds(void)
{
	return bench_quick() ? 1.0 : 5.0;
}

/* ===================================================================== */
/*  The file                                                             */
/* ===================================================================== */

static char bench_path[PATH_MAX];

/* Returns the path of a file of at least 1 GiB of non-zero data. */
static const char *bench_file(void)
{
	const char *p = getenv("GORO_BENCH_FILE");
	struct stat st;

	if (p && *p) {
		snprintf(bench_path, sizeof(bench_path), "%s", p);
	} else {
		const char *d = getenv("TMPDIR");
		snprintf(bench_path, sizeof(bench_path), "%s/goro-bench-1g.dat",
			 d && *d ? d : "/var/tmp");
	}
	if (stat(bench_path, &st) == 0 && st.st_size >= FILE_SIZE)
		return bench_path;

	/* Real data, not a hole or fallocated extents: O_DIRECT reads of
	 * those would not touch the disk. */
	int fd = open(bench_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "bench io: create %s: %s\n", bench_path, strerror(errno));
		return NULL;
	}
	fprintf(stderr, "bench io: writing 1 GiB to %s\n", bench_path);
	size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	uint64_t x = 88172645463325252ull;
	if (!buf)
		return NULL;
	for (long long off = 0; off < FILE_SIZE; off += (long long)chunk) {
		for (size_t i = 0; i < chunk; i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(buf + i, &x, 8);
		}
		if (pwrite(fd, buf, chunk, off) != (ssize_t)chunk) {
			fprintf(stderr, "bench io: write %s: %s\n", bench_path,
				strerror(errno));
			free(buf);
			close(fd);
			unlink(bench_path);
			return NULL;
		}
	}
	free(buf);
	fsync(fd);
	close(fd);
	return bench_path;
}

/* Reads the whole file once so that it is in the page cache. */
static void warm_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = malloc(1 << 20);

	if (fd >= 0 && buf)
		while (read(fd, buf, 1 << 20) > 0)
			;
	free(buf);
	if (fd >= 0)
		close(fd);
}

/* ===================================================================== */
/*  fio baselines                                                        */
/* ===================================================================== */

static bool have_fio(void)
{
	static int have = -1;

	if (have < 0) {
		have = system("command -v fio >/dev/null 2>&1") == 0;
		if (!have)
			fprintf(stderr, "bench io: fio not on PATH: no fio baselines\n");
	}
	return have;
}

/* Runs fio and returns the read IOPS from its terse (version 3) output:
 * the 8th ';'-separated field.  Returns -1 on failure. */
static double fio_iops(const char *path, const char *engine, int iodepth,
		       int numjobs, bool direct)
{
	char cmd[PATH_MAX + 1024], line[8192];
	double iops = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "fio --name=goro-baseline --filename='%s' --readonly "
		 "--rw=randread --bs=%d --ioengine=%s --iodepth=%d "
		 "--numjobs=%d --group_reporting --direct=%d --time_based "
		 "--runtime=%.0f --norandommap --randrepeat=0 --invalidate=0 "
		 "--output-format=terse --terse-version=3 2>/dev/null",
		 path, BLOCK, engine, iodepth, numjobs, direct ? 1 : 0,
		 run_seconds());
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok = strtok_r(line, ";", &save);
		int field = 0;
		if (!tok || strcmp(tok, "3") != 0)
			continue;
		while (tok && field < 7) {
			tok = strtok_r(NULL, ";", &save);
			field++;
		}
		if (tok)
			iops = atof(tok);
	}
	if (pclose(f) != 0)
		return -1;
	return iops;
}

static void report_fio(const char *name, const char *path, const char *engine,
		       int iodepth, int numjobs, bool direct)
{
	int runs = bench_runs();
	double v[runs];

	if (!have_fio())
		return;
	for (int i = 0; i < runs; i++) {
		v[i] = fio_iops(path, engine, iodepth, numjobs, direct);
		if (v[i] < 0) {
			fprintf(stderr, "bench io: fio %s failed\n", engine);
			return;
		}
	}
	bench_report(name, bench_median(v, runs), "ops/s");
}

/* ===================================================================== */
/*  Random preads on Gs                                                  */
/* ===================================================================== */

struct pread_run {
	int fd;
	int ngs;
	bool direct;
	int64_t ns;
	_Atomic bool stop;
	_Atomic uint64_t ops;
	_Atomic int errors;
	struct goro_wg done;
	long long nblocks;
};

struct pread_g {
	struct pread_run *run;
	uint64_t seed;
};

static void *pread_worker(void *arg)
{
	struct pread_g *pg = arg;
	struct pread_run *r = pg->run;
	uint64_t x = pg->seed, ops = 0;
	char *buf;

	/* O_DIRECT needs an aligned buffer; use the same kind for both. */
	if (posix_memalign((void **)&buf, BLOCK, BLOCK) != 0) {
		r->errors++;
		goro_wg_done(&r->done);
		return NULL;
	}
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off_t off = (off_t)(x % (uint64_t)r->nblocks) * BLOCK;
		if (goro_pread(r->fd, buf, BLOCK, off) != BLOCK) {
			r->errors++;
			break;
		}
		ops++;
	}
	free(buf);
	r->ops += ops;
	goro_wg_done(&r->done);
	return NULL;
}

/* Runs the Gs for r->ns from this plain thread, which keeps the time:
 * the measurement does not depend on a G being scheduled (a G whose
 * preads never park never gives its M back).  r->ns becomes the time
 * from the first spawn to the last G's exit. */
static int pread_drive(struct pread_run *r)
{
	struct pread_g *gs = calloc((size_t)r->ngs, sizeof(*gs));
	struct timespec ts = { r->ns / 1000000000, r->ns % 1000000000 };
	int64_t t0;

	if (!gs)
		return -1;
	goro_wg_add(&r->done, r->ngs);
	t0 = goro_now();
	for (int i = 0; i < r->ngs; i++) {
		gs[i] = (struct pread_g){ r, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) };
		if (goro_spawn(NULL, pread_worker, &gs[i], NULL) < 0) {
			r->errors++;
			goro_wg_done(&r->done);
		}
	}
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	r->stop = true;
	goro_wg_wait(&r->done);
	r->ns = goro_now() - t0;
	free(gs);
	return 0;
}

/* Threads of this process: /proc/self/task entries. */
static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

struct sampler {
	_Atomic bool stop;
	int peak;
};

static void *sample_threads(void *arg)
{
	struct sampler *s = arg;

	while (!s->stop) {
		int n = count_threads() - 1;	/* not this sampler */
		if (n > s->peak)
			s->peak = n;
		usleep(2000);
	}
	return NULL;
}

/* One timed run; returns ops/s (or -1) and the thread peak in *peak. */
static double pread_once(const char *path, int ngs, bool direct, int *peak)
{
	struct pread_run r = { .ngs = ngs, .direct = direct,
			       .ns = (int64_t)(run_seconds() * 1e9),
			       .nblocks = FILE_SIZE / BLOCK };
	struct sampler s = { .peak = 0 };
	pthread_t st;

	r.fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (r.fd < 0) {
		fprintf(stderr, "bench io: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (peak && pthread_create(&st, NULL, sample_threads, &s) != 0)
		peak = NULL;
	int rc = pread_drive(&r);
	if (peak) {
		s.stop = true;
		pthread_join(st, NULL);
		*peak = s.peak;
	}
	close(r.fd);
	if (rc < 0 || r.errors) {
		fprintf(stderr, "bench io: pread run failed (%d, %d errors)\n", rc,
			(int)r.errors);
		return -1;
	}
	return (double)r.ops / ((double)r.ns / 1e9);
}

static int pread_bench(const char *name, int ngs, bool direct)
{
	const char *path = bench_file();
	int runs = bench_runs();
	double v[runs], peaks[runs];
	char fig[128];
	int rc;

	if (!path)
		return 1;
	if (!direct)
		warm_cache(path);
	rc = goro_init(NULL);
	if (rc < 0) {
		fprintf(stderr, "bench io: goro_init: %s\n", strerror(-rc));
		return 1;
	}
	for (int i = 0; i < runs; i++) {
		int peak = 0;
		v[i] = pread_once(path, ngs, direct, direct ? &peak : NULL);
		if (v[i] < 0) {
			goro_shutdown();
			return 1;
		}
		peaks[i] = peak;
	}
	snprintf(fig, sizeof(fig), "%s_goro_%dg", name, ngs);
	bench_report(fig, bench_median(v, runs), "ops/s");
	if (direct) {
		struct goro_stats st;
		goro_stats(&st, sizeof(st));
		snprintf(fig, sizeof(fig), "%s_threads_peak", name);
		bench_report(fig, bench_median(peaks, runs), "threads");
		fprintf(stderr, "bench io: %s: maxprocs %llu, io %s\n", name,
			(unsigned long long)st.maxprocs,
			goro_io_backend() == GORO_IO_URING ? "uring" : "epoll");
	}
	goro_shutdown();
	return 0;
}

int bench_pread(void)
{
	const char *path;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);

	if (pread_bench("pread", 64, false))
		return 1;
	path = bench_path;
	report_fio("baseline_pread_fio_io_uring_qd64", path, "io_uring", 64, 1, false);
	char name[64];
	snprintf(name, sizeof(name), "baseline_pread_fio_psync_%djobs", ncpu);
	report_fio(name, path, "psync", 1, ncpu, false);
	return 0;
}

int bench_pread_direct(void)
{
	if (pread_bench("pread_direct", 256, true))
		return 1;
	report_fio("baseline_pread_direct_fio_io_uring_qd256", bench_path,
		   "io_uring", 256, 1, true);
	return 0;
}

/* ===================================================================== */
/*  Echo                                                                 */
/* ===================================================================== */

static char tooldir[PATH_MAX];

static bool find_tools(void)
{
	ssize_t n = readlink("/proc/self/exe", tooldir, sizeof(tooldir) - 1);

	if (n <= 0)
		return false;
	tooldir[n] = '\0';
	char *slash = strrchr(tooldir, '/');
	if (!slash)
		return false;
	*slash = '\0';
	return true;
}

/* Starts a server (argv[0] relative to tooldir) with --port 0 and reads
 * its port from the first line it prints.  Returns its pid, or -1. */
static pid_t start_server(char *const argv[], int *port)
{
	char path[PATH_MAX + 64], line[256];
	int pfd[2];
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", tooldir, argv[0]);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		execv(path, argv);
		_exit(127);
	}
	close(pfd[1]);
	FILE *f = fdopen(pfd[0], "r");
	char *colon = NULL;
	if (f && fgets(line, sizeof(line), f))
		colon = strrchr(line, ':');
	if (f)
		fclose(f);
	else
		close(pfd[0]);
	if (pid < 0 || !colon) {
		fprintf(stderr, "bench io: %s did not start\n", path);
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		return -1;
	}
	*port = atoi(colon + 1);
	return pid;
}

static void stop_server(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

struct echo_fig {
	double rps, p50, p99;
};

/* Runs echo-load once against the port. */
static int echo_load(int port, struct echo_fig *fig)
{
	char cmd[PATH_MAX + 256], line[256];
	FILE *f;
	int got = 0;

	snprintf(cmd, sizeof(cmd),
		 "'%s/echo-load' --port %d --conns 256 --size 64 --seconds %.0f",
		 tooldir, port, run_seconds());
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		double v;
		char name[64];
		if (sscanf(line, "%63s %lf", name, &v) != 2)
			continue;
		if (strcmp(name, "requests") == 0)
			fig->rps = v, got++;
		else if (strcmp(name, "p50") == 0)
			fig->p50 = v, got++;
		else if (strcmp(name, "p99") == 0)
			fig->p99 = v, got++;
	}
	return pclose(f) == 0 && got == 3 ? 0 : -1;
}

static int echo_server_runs(const char *prefix, char *const argv[])
{
	int runs = bench_runs();
	double rps[runs], p50[runs], p99[runs];
	char name[128];

	for (int i = 0; i < runs; i++) {
		struct echo_fig fig;
		int port = 0;
		pid_t pid = start_server(argv, &port);
		if (pid < 0)
			return -1;
		int rc = echo_load(port, &fig);
		stop_server(pid);
		if (rc < 0) {
			fprintf(stderr, "bench io: echo-load against %s failed\n", argv[0]);
			return -1;
		}
		rps[i] = fig.rps;
		p50[i] = fig.p50;
		p99[i] = fig.p99;
	}
	snprintf(name, sizeof(name), "%s_requests", prefix);
	bench_report(name, bench_median(rps, runs), "req/s");
	snprintf(name, sizeof(name), "%s_p50", prefix);
	bench_report(name, bench_median(p50, runs), "us");
	snprintf(name, sizeof(name), "%s_p99", prefix);
	bench_report(name, bench_median(p99, runs), "us");
	return 0;
}

int bench_echo(void)
{
	char threads[16];
	char *goro[] = { "goro-echo", "--port", "0", NULL };
	char *epoll1[] = { "epoll-echo", "--port", "0", NULL };
	char *epolln[] = { "epoll-echo", "--port", "0", "--threads", threads, NULL };
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	char name[64];

	if (!find_tools()) {
		fprintf(stderr, "bench io: cannot find the tools directory\n");
		return 1;
	}
	snprintf(threads, sizeof(threads), "%d", ncpu);
	if (echo_server_runs("echo_goro", goro) < 0 ||
	    echo_server_runs("baseline_echo_epoll_1thread", epoll1) < 0)
		return 1;
	snprintf(name, sizeof(name), "baseline_echo_epoll_%dthreads", ncpu);
	if (ncpu > 1 && echo_server_runs(name, epolln) < 0)
		return 1;
	return 0;
}
