/*
 * bench_stack.c: the `parked` benchmark.  Parks 100,000 and then
 * 1,000,000 Gs at once (default 1 MiB stacks) and reports what each
 * parked G costs: resident memory (RSS), page tables (VmPTE, reported
 * separately: they are not part of RSS), and the time to create them.
 *
 * Every run is a fresh child process, so that each measures brand-new
 * slots (a later run in the same process would reuse cached Gs).  The
 * baseline is the classic design: one mmap per stack with an mprotect
 * guard page and its top page touched, as many as fit under
 * vm.max_map_count (up to 30,000).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "goro.h"

struct parked_result {
	double rss_per_g;	/* bytes */
	double pte_per_g;	/* bytes */
	double create_ns_per_g;
	int mode;
	int ok;
};

/* Resident bytes and page-table bytes of this process. */
static void mem_now(long *rss, long *pte)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	*rss = *pte = 0;
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "VmRSS:", 6))
			*rss = atol(line + 6) * 1024;
		else if (!strncmp(line, "VmPTE:", 6))
			*pte = atol(line + 6) * 1024;
	}
	fclose(f);
}

struct park_arg {
	long n;
	struct goro_wg gate, done;
	struct parked_result *res;
};

static void *parked(void *arg)
{
	struct park_arg *pa = arg;

	goro_wg_wait(&pa->gate);
	goro_wg_done(&pa->done);
	return NULL;
}

static void *park_main(void *arg)
{
	struct park_arg *pa = arg;
	struct goro_stats s0, s1;
	long rss0, pte0, rss1, pte1;
	int64_t t0;

	goro_wg_add(&pa->gate, 1);
	goro_wg_add(&pa->done, pa->n);
	goro_stats(&s0, sizeof s0);
	mem_now(&rss0, &pte0);
	t0 = bench_now();
	for (long i = 0; i < pa->n; i++)
		if (goro_spawn(NULL, parked, pa, NULL) != 0)
			return NULL;
	for (;;) {
		goro_stats(&s1, sizeof s1);
		if (s1.gs_runnable == 0 && s1.parks - s0.parks >= (uint64_t)pa->n)
			break;
		goro_yield();
	}
	pa->res->create_ns_per_g = (double)(bench_now() - t0) / (double)pa->n;
	mem_now(&rss1, &pte1);
	pa->res->rss_per_g = (double)(rss1 - rss0) / (double)pa->n;
	pa->res->pte_per_g = (double)(pte1 - pte0) / (double)pa->n;
	pa->res->mode = (int)s1.stack_mode;
	pa->res->ok = 1;
	goro_wg_done(&pa->gate);
	goro_wg_wait(&pa->done);
	return NULL;
}

static void child_parked(long n, struct parked_result *res)
{
	static struct park_arg pa;
	struct goro_config cfg = { .maxprocs = 2 };

	pa.n = n;
	pa.res = res;
	if (goro_init(&cfg) == 0)
		goro_run(park_main, &pa, NULL);
}

/* The classic design: n separate 1 MiB stacks, each with an mprotect'ed
 * guard page and its top page touched.  Returns the stacks made. */
static long child_mmap_guard(long n, struct parked_result *res)
{
	const size_t sz = 1 << 20;
	long rss0, pte0, rss1, pte1, i;
	int64_t t0;

	mem_now(&rss0, &pte0);
	t0 = bench_now();
	for (i = 0; i < n; i++) {
		char *p = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			break;
		if (mprotect(p, 4096, PROT_NONE)) {
			munmap(p, sz);
			break;
		}
		p[sz - 1] = 1;
	}
	res->create_ns_per_g = (double)(bench_now() - t0) / (double)i;
	mem_now(&rss1, &pte1);
	res->rss_per_g = (double)(rss1 - rss0) / (double)i;
	res->pte_per_g = (double)(pte1 - pte0) / (double)i;
	res->ok = 1;
	return i;
}

/* Runs one measurement in a fresh child; the result comes back through a
 * shared anonymous page. */
static int measure(long n, bool classic, struct parked_result *out)
{
	struct parked_result *shared;
	pid_t pid;
	int st;

	shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return -1;
	memset(shared, 0, sizeof *shared);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (classic)
			child_mmap_guard(n, shared);
		else
			child_parked(n, shared);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    !shared->ok) {
		munmap(shared, sizeof *shared);
		return -1;
	}
	*out = *shared;
	munmap(shared, sizeof *shared);
	return 0;
}

static const char *const mode_names[] = { "plain", "uffd-thread", "uffd-sigbus" };

static int report(const char *prefix, long n, int runs, bool classic)
{
	double rss[16], pte[16], ns[16];
	struct parked_result r = { 0 };
	char name[96];

	for (int i = 0; i < runs; i++) {
		if (measure(n, classic, &r))
			return 1;
		rss[i] = r.rss_per_g;
		pte[i] = r.pte_per_g;
		ns[i] = r.create_ns_per_g;
	}
	if (!classic)
		fprintf(stderr, "parked: stack mode %s\n",
			mode_names[r.mode < 3 ? r.mode : 0]);
	snprintf(name, sizeof name, "%s_rss_bytes_per_g", prefix);
	bench_report(name, bench_median(rss, runs), "bytes");
	snprintf(name, sizeof name, "%s_pte_bytes_per_g", prefix);
	bench_report(name, bench_median(pte, runs), "bytes");
	snprintf(name, sizeof name, "%s_create_ns_per_g", prefix);
	bench_report(name, bench_median(ns, runs), "ns");
	return 0;
}

int bench_parked(void)
{
	int runs = bench_runs();
	int runs_1m = bench_quick() ? 1 : 3;

	if (runs > 16)
		runs = 16;
	if (report("parked_100k", 100000, runs, false) ||
	    report("parked_1m", 1000000, runs_1m, false) ||
	    report("baseline_mmap_guard_30k", 30000, runs, true))
		return 1;
	return 0;
}
