/*
 * bench_chan.c: channel and mutex benchmarks for goro-bench.
 *
 *   goro-bench chan   two Gs ping-pong over two unbuffered channels on one
 *                     M (maxprocs 1), 10,000,000 round trips; prints ns
 *                     per one-way hand-off, beside two baselines measured
 *                     in the same run: a bare goro_yield switch between
 *                     two Gs (the floor for any G hand-off) and two
 *                     pthreads ping-ponging with a mutex and conds.
 *   goro-bench mutex  2 Ms, 64 Gs increment a shared counter under a
 *                     goro_mutex; ops/s, beside 64 pthreads doing the same
 *                     under a pthread_mutex.
 *
 * Each figure is the median of bench_runs() runs.  Each benchmark starts the
 * runtime with its own configuration (and stops it afterwards).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "goro.h"

static int start_runtime(unsigned maxprocs)
{
	struct goro_config cfg = { .maxprocs = maxprocs };
	int ret;

	ret = goro_init(&cfg);
	if (ret < 0)
		fprintf(stderr, "goro_init: %s\n", strerror(-ret));
	return ret;
}

/* ---- chan ------------------------------------------------------------ */

/* Round trips of the ping-pong and yields of the yield baseline; the
 * pthread baseline, 50 times slower per round, does a fiftieth. */
#define PINGPONG_ROUNDS 10000000L

struct pingpong {
	struct goro_chan *ping, *pong;
	long rounds;
};

static void *pong_g(void *arg)
{
	struct pingpong *p = arg;
	long v;

	for (long i = 0; i < p->rounds; i++) {
		if (goro_chan_recv(p->ping, &v, NULL) < 0 ||
		    goro_chan_send(p->pong, &v) < 0)
			return (void *)1;
	}
	return NULL;
}

/* The main G: ping, wait for the pong; 2 hand-offs per round. */
static void *ping_main(void *arg)
{
	struct pingpong *p = arg;
	goro_t h;
	long v = 0, sum = 0;
	int64_t t0, t1;
	void *res;

	if (goro_spawn(&h, pong_g, p, NULL) < 0)
		return NULL;
	t0 = bench_now();
	for (long i = 0; i < p->rounds; i++) {
		v = i;
		goro_chan_send(p->ping, &v);
		goro_chan_recv(p->pong, &v, NULL);
		sum += v;
	}
	t1 = bench_now();
	goro_join(&h, &res);
	if (res || sum != p->rounds * (p->rounds - 1) / 2)
		return NULL;
	return (void *)(intptr_t)(t1 - t0);
}

static void *yield_g(void *arg)
{
	long n = *(long *)arg;

	for (long i = 0; i < n; i++)
		goro_yield();
	return NULL;
}

/* Two Gs yielding to each other: one switch per yield. */
static void *yield_main(void *arg)
{
	long n = *(long *)arg;
	goro_t h;
	int64_t t0, t1;

	if (goro_spawn(&h, yield_g, arg, NULL) < 0)
		return NULL;
	t0 = bench_now();
	for (long i = 0; i < n; i++)
		goro_yield();
	t1 = bench_now();
	goro_join(&h, NULL);
	return (void *)(intptr_t)(t1 - t0);
}

struct tpp {
	pthread_mutex_t m;
	pthread_cond_t c;
	long turn;		/* even: ping's turn; odd: pong's; protected by m */
	long rounds;
};

static void *tpp_pong(void *arg)
{
	struct tpp *t = arg;

	pthread_mutex_lock(&t->m);
	for (long i = 0; i < t->rounds; i++) {
		while (t->turn % 2 == 0)
			pthread_cond_wait(&t->c, &t->m);
		t->turn++;
		pthread_cond_signal(&t->c);
	}
	pthread_mutex_unlock(&t->m);
	return NULL;
}

static double pthread_pingpong_ns(long rounds)
{
	struct tpp t = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, rounds };
	pthread_t th;
	int64_t t0;

	if (pthread_create(&th, NULL, tpp_pong, &t))
		return -1;
	t0 = bench_now();
	pthread_mutex_lock(&t.m);
	for (long i = 0; i < rounds; i++) {
		t.turn++;
		pthread_cond_signal(&t.c);
		while (t.turn % 2 == 1)
			pthread_cond_wait(&t.c, &t.m);
	}
	pthread_mutex_unlock(&t.m);
	pthread_join(th, NULL);
	return (double)(bench_now() - t0) / (2.0 * rounds);
}

int bench_chan(void)
{
	int runs = bench_runs();
	long rounds = bench_quick() ? PINGPONG_ROUNDS / 10 : PINGPONG_ROUNDS;
	double chan[runs], yield[runs], thr[runs];
	int err;
	void *res;

	if (start_runtime(1) < 0)
		return 1;
	for (int r = 0; r < runs; r++) {
		struct pingpong p = { goro_chan_make(sizeof(long), 0, &err),
				      goro_chan_make(sizeof(long), 0, &err),
				      rounds };
		long n = rounds;

		if (!p.ping || !p.pong || goro_run(ping_main, &p, &res) < 0 || !res) {
			fprintf(stderr, "bench chan: ping-pong failed\n");
			return 1;
		}
		chan[r] = (double)(intptr_t)res / (2.0 * rounds);
		goro_chan_free(p.ping);
		goro_chan_free(p.pong);
		if (goro_run(yield_main, &n, &res) < 0 || !res)
			return 1;
		/* Each of the two Gs yields n times: 2n switches. */
		yield[r] = (double)(intptr_t)res / (2.0 * n);
		thr[r] = pthread_pingpong_ns(rounds / 50);
	}
	goro_shutdown();
	bench_report("chan_unbuffered_handoff", bench_median(chan, runs), "ns");
	bench_report("baseline_goro_yield_switch", bench_median(yield, runs), "ns");
	bench_report("baseline_pthread_cond_handoff", bench_median(thr, runs), "ns");
	return 0;
}

/* ---- mutex ----------------------------------------------------------- */

#define MUTEX_WORKERS 64
#define MUTEX_OPS_EACH 100000L

struct mbench {
	struct goro_mutex gm;
	pthread_mutex_t pm;
	uint64_t counter;	/* protected by gm or pm */
	struct goro_wg wg;
};

static void *goro_worker(void *arg)
{
	struct mbench *b = arg;

	for (long i = 0; i < MUTEX_OPS_EACH; i++) {
		goro_mutex_lock(&b->gm);
		b->counter++;
		goro_mutex_unlock(&b->gm);
	}
	goro_wg_done(&b->wg);
	return NULL;
}

static void *goro_mutex_main(void *arg)
{
	struct mbench *b = arg;
	int64_t t0 = bench_now();

	goro_wg_add(&b->wg, MUTEX_WORKERS);
	for (int i = 0; i < MUTEX_WORKERS; i++)
		if (goro_spawn(NULL, goro_worker, b, NULL) < 0)
			return NULL;
	goro_wg_wait(&b->wg);
	return (void *)(intptr_t)(bench_now() - t0);
}

static void *pthread_worker(void *arg)
{
	struct mbench *b = arg;

	for (long i = 0; i < MUTEX_OPS_EACH; i++) {
		pthread_mutex_lock(&b->pm);
		b->counter++;
		pthread_mutex_unlock(&b->pm);
	}
	return NULL;
}

static double pthread_mutex_ops(void)
{
	struct mbench b = { .pm = PTHREAD_MUTEX_INITIALIZER };
	pthread_t th[MUTEX_WORKERS];
	int64_t t0 = bench_now();

	for (int i = 0; i < MUTEX_WORKERS; i++)
		if (pthread_create(&th[i], NULL, pthread_worker, &b))
			return -1;
	for (int i = 0; i < MUTEX_WORKERS; i++)
		pthread_join(th[i], NULL);
	if (b.counter != (uint64_t)MUTEX_WORKERS * MUTEX_OPS_EACH)
		return -1;
	return (double)b.counter * 1e9 / (double)(bench_now() - t0);
}

int bench_mutex(void)
{
	int runs = bench_runs();
	double g[runs], p[runs];

	if (start_runtime(2) < 0)
		return 1;
	for (int r = 0; r < runs; r++) {
		struct mbench b = { .gm = GORO_MUTEX_INIT, .wg = GORO_WG_INIT };
		void *res;

		if (goro_run(goro_mutex_main, &b, &res) < 0 || !res ||
		    b.counter != (uint64_t)MUTEX_WORKERS * MUTEX_OPS_EACH) {
			fprintf(stderr, "bench mutex: goro run failed\n");
			return 1;
		}
		g[r] = (double)b.counter * 1e9 / (double)(intptr_t)res;
		p[r] = pthread_mutex_ops();
	}
	goro_shutdown();
	bench_report("mutex_goro_64g_2m", bench_median(g, runs), "ops/s");
	bench_report("baseline_pthread_mutex", bench_median(p, runs), "ops/s");
	return 0;
}
