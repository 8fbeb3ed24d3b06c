/*
 * bench_core.c: spawn and yield, with their baselines (pthread
 * create+join, and a bare context switch with goro's own assembly and no
 * scheduler).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "goro.h"
#include "context.h"

#define SPAWN_N 1000000

static void *nothing(void *arg)
{
	return arg;
}

static void *spawn_main(void *arg)
{
	double *out = arg;
	struct goro_stats st;
	int64_t t0 = bench_now();

	for (int i = 0; i < SPAWN_N; i++)
		if (goro_spawn(NULL, nothing, NULL, NULL) != 0)
			return (void *)1;
	/* Wait for all: only this G is left alive. */
	for (;;) {
		goro_stats(&st, sizeof st);
		if (st.gs_alive <= 1)
			break;
		goro_yield();
	}
	*out = SPAWN_N / ((bench_now() - t0) / 1e9);
	return NULL;
}

static void *thread_nothing(void *arg)
{
	return arg;
}

int bench_spawn(void)
{
	int runs = bench_runs();
	double v[32], b[32];
	struct goro_config cfg = { .maxprocs = 2 };

	if (goro_init(&cfg) != 0)
		return 1;
	/* One warm-up run: the arena's first slots get their pages. */
	goro_run(spawn_main, &v[0], NULL);
	for (int r = 0; r < runs; r++) {
		void *res;
		if (goro_run(spawn_main, &v[r], &res) != 0 || res)
			return 1;
	}
	goro_shutdown();
	for (int r = 0; r < runs; r++) {
		int n = bench_quick() ? 5000 : 20000;
		int64_t t0 = bench_now();
		for (int i = 0; i < n; i++) {
			pthread_t t;
			if (pthread_create(&t, NULL, thread_nothing, NULL) != 0)
				return 1;
			pthread_join(t, NULL);
		}
		b[r] = n / ((bench_now() - t0) / 1e9);
	}
	bench_report("spawn", bench_median(v, runs), "Gs/s");
	bench_report("baseline_pthread_create_join", bench_median(b, runs), "threads/s");
	return 0;
}

/* ---- yield -------------------------------------------------------------- */

#define YIELDS 10000000

static void *yielder(void *arg)
{
	(void)arg;
	for (int i = 0; i < YIELDS / 2; i++)
		goro_yield();
	return NULL;
}

static void *yield_main(void *arg)
{
	double *out = arg;
	goro_t a, b;
	int64_t t0 = bench_now();
	goro_spawn(&a, yielder, NULL, NULL);
	goro_spawn(&b, yielder, NULL, NULL);
	goro_join(&a, NULL);
	goro_join(&b, NULL);
	*out = (double)(bench_now() - t0) / YIELDS;
	return NULL;
}

/* The floor: two contexts switching to each other with goro's assembly,
 * no scheduler, no queues. */
static struct goro__ctx main_ctx, ctx_a, ctx_b;
static long bare_left;

static void bare_a(void *arg)
{
	(void)arg;
	for (;;) {
		if (--bare_left <= 0)
			goro__ctx_switch(&ctx_a, &main_ctx);
		goro__ctx_switch(&ctx_a, &ctx_b);
	}
}

static void bare_b(void *arg)
{
	(void)arg;
	for (;;)
		goro__ctx_switch(&ctx_b, &ctx_a);
}

static double bare_switch(void)
{
	size_t sz = 64 * 1024;
	char *sa = malloc(sz), *sb = malloc(sz);
	int64_t t0;
	double ns;

	goro__ctx_make(&ctx_a, sa + sz, bare_a, NULL);
	goro__ctx_make(&ctx_b, sb + sz, bare_b, NULL);
	bare_left = YIELDS / 2;
	t0 = bench_now();
	goro__ctx_switch(&main_ctx, &ctx_a);
	ns = (double)(bench_now() - t0) / YIELDS;	/* one switch each way */
	free(sa);
	free(sb);
	return ns;
}

int bench_yield(void)
{
	int runs = bench_runs();
	double v[32], b[32];
	struct goro_config cfg = { .maxprocs = 1 };

	if (goro_init(&cfg) != 0)
		return 1;
	for (int r = 0; r < runs; r++)
		if (goro_run(yield_main, &v[r], NULL) != 0)
			return 1;
	goro_shutdown();
	for (int r = 0; r < runs; r++)
		b[r] = bare_switch();
	bench_report("yield", bench_median(v, runs), "ns/yield");
	bench_report("baseline_bare_switch", bench_median(b, runs), "ns/switch");
	return 0;
}
