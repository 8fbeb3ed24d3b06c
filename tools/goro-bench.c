/*
 * goro-bench: goro's benchmark report.
 *
 *   goro-bench            run every benchmark, each in its own process
 *   goro-bench NAME...    run these
 *   goro-bench --list     list them
 *
 * Output: one `name value unit` line per figure; lines whose name starts
 * with `baseline_` are the comparison measured in the same run.  Figures
 * are medians of several runs (GORO_BENCH_RUNS, default 5).  Set
 * GORO_BENCH_QUICK=1 for a shorter report.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static const struct {
	const char *name;
	int (*fn)(void);
	const char *what;
} benches[] = {
	{ "spawn", bench_spawn, "spawn 1,000,000 Gs that return at once, 2 Ms (Gs/s)" },
	{ "yield", bench_yield, "two Gs yielding to each other on one M (ns/yield)" },
	{ "chan", bench_chan, "two Gs ping-pong on unbuffered channels, one M (ns/hand-off)" },
	{ "mutex", bench_mutex, "64 Gs on 2 Ms increment under goro_mutex (ops/s)" },
	{ "pread", bench_pread, "64 Gs x 4 KiB random preads, 1 GiB cached file, vs fio (ops/s)" },
	{ "pread-direct", bench_pread_direct, "256 Gs x 4 KiB O_DIRECT random preads vs fio; peak threads" },
	{ "echo", bench_echo, "goro-echo vs epoll-echo, 256 conns x 64 B (req/s, p50/p99 us)" },
	{ "parked", bench_parked, "100k and 1M parked Gs: RSS and page tables per G, creation time" },
};
#define NBENCH (sizeof benches / sizeof benches[0])

void bench_report(const char *name, double value, const char *unit)
{
	printf("%s %.6g %s\n", name, value, unit);
	fflush(stdout);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int64_t bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool bench_quick(void)
{
	const char *q = getenv("GORO_BENCH_QUICK");
	return q && *q && strcmp(q, "0") != 0;
}

int bench_runs(void)
{
	const char *r = getenv("GORO_BENCH_RUNS");
	int n = r ? atoi(r) : 0;
	if (n > 0)
		return n;
	return bench_quick() ? 3 : 5;
}

static int run_one(const char *name)
{
	for (size_t i = 0; i < NBENCH; i++)
		if (strcmp(benches[i].name, name) == 0)
			return benches[i].fn();
	fprintf(stderr, "goro-bench: no benchmark named %s (see --list)\n", name);
	return 2;
}

int main(int argc, char **argv)
{
	int rc = 0;

	if (argc > 1 && strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < NBENCH; i++)
			printf("%-14s %s\n", benches[i].name, benches[i].what);
		return 0;
	}
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			rc |= run_one(argv[i]);
		return rc;
	}
	/* Everything, each benchmark in a fresh process so that one's
	 * memory and threads do not disturb the next. */
	for (size_t i = 0; i < NBENCH; i++) {
		pid_t pid;
		int st;
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			execl("/proc/self/exe", argv[0], benches[i].name, (char *)NULL);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "goro-bench: %s failed\n", benches[i].name);
			rc = 1;
		}
	}
	return rc;
}
