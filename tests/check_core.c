/*
 * check_core.c: the core runtime: spawn, join, exit values, yield,
 * scheduling across Ms, migration, plain threads, misuse, reuse, stats,
 * schedtrace, the blocking hand-off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

static int64_t goro_now_ns_for_test(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- Spawn and join ---------------------------------------------------- */

static void *add_one(void *arg)
{
	return (void *)((uintptr_t)arg + 1);
}

static void *main_spawn_one(void *arg)
{
	goro_t h;
	void *res = NULL;
	(void)arg;
	if (goro_spawn(&h, add_one, (void *)41, NULL) != 0)
		return (void *)-1;
	if (goro_join(&h, &res) != 0)
		return (void *)-2;
	return res;
}

START_TEST(test_core_spawn_join_one)
{
	ck_assert_ptr_eq(t_run(main_spawn_one, NULL), (void *)42);
}
END_TEST

static void *times_two(void *arg)
{
	return (void *)((uintptr_t)arg * 2);
}

/* Spawns n joinable Gs in windows of `window`, joins them, and returns the
 * sum of their results (each returns 2*i). */
static uint64_t spawn_join_n(uint64_t n, uint64_t window)
{
	goro_t *h = calloc(window, sizeof *h);
	uint64_t sum = 0;

	ck_assert_ptr_nonnull(h);
	for (uint64_t base = 0; base < n; base += window) {
		uint64_t k = n - base < window ? n - base : window;
		for (uint64_t i = 0; i < k; i++)
			ck_assert_int_eq(goro_spawn(&h[i], times_two, (void *)(uintptr_t)(base + i), NULL), 0);
		for (uint64_t i = 0; i < k; i++) {
			void *res;
			ck_assert_int_eq(goro_join(&h[i], &res), 0);
			sum += (uintptr_t)res;
		}
	}
	free(h);
	return sum;
}

static void *main_spawn_n(void *arg)
{
	uint64_t n = (uintptr_t)arg;
	return (void *)(uintptr_t)spawn_join_n(n, n < 10000 ? n : 10000);
}

START_TEST(test_core_spawn_join_1000)
{
	ck_assert_uint_eq((uintptr_t)t_run(main_spawn_n, (void *)1000), 999 * 1000);
}
END_TEST

/* A million Gs spawned and joined from a G, ten thousand at a time: the
 * result of every one is summed (2 * sum of 0..n-1 = n(n-1)). */
START_TEST(test_core_spawn_join_1m)
{
	uint64_t n = 1000000;
	ck_assert_uint_eq((uintptr_t)t_run(main_spawn_n, (void *)(uintptr_t)n), n * (n - 1));
}
END_TEST

/* And a million detached Gs counted with a wait group. */
static atomic_uint_fast64_t det_count;
static struct goro_wg det_wg = GORO_WG_INIT;

static void *det_body(void *arg)
{
	atomic_fetch_add(&det_count, (uintptr_t)arg);
	goro_wg_done(&det_wg);
	return NULL;
}

static void *main_detached(void *arg)
{
	uint64_t n = (uintptr_t)arg;
	goro_wg_add(&det_wg, (int64_t)n);
	for (uint64_t i = 0; i < n; i++)
		if (goro_spawn(NULL, det_body, (void *)(uintptr_t)(i + 1), NULL) != 0)
			return (void *)1;
	goro_wg_wait(&det_wg);
	return NULL;
}

START_TEST(test_core_spawn_detached_1m)
{
	uint64_t n = 1000000;
	ck_assert_ptr_null(t_run(main_detached, (void *)(uintptr_t)n));
	ck_assert_uint_eq(atomic_load(&det_count), n * (n + 1) / 2);
}
END_TEST

/* Nested spawning: a binary tree of depth 10; each node spawns two
 * children, joins them and returns its subtree size. */
static void *tree(void *arg)
{
	uintptr_t depth = (uintptr_t)arg;
	goro_t a, b;
	void *ra, *rb;

	if (depth == 0)
		return (void *)1;
	if (goro_spawn(&a, tree, (void *)(depth - 1), NULL) ||
	    goro_spawn(&b, tree, (void *)(depth - 1), NULL))
		return (void *)0;
	if (goro_join(&a, &ra) || goro_join(&b, &rb))
		return (void *)0;
	return (void *)((uintptr_t)ra + (uintptr_t)rb + 1);
}

START_TEST(test_core_nested_spawn)
{
	ck_assert_uint_eq((uintptr_t)t_run(tree, (void *)10), 2047);
}
END_TEST

/* goro_exit from deep inside a call chain delivers its value. */
static void deep_exit(int depth, void *value);
/* Called through a pointer: gcc 12 misreads recursion that ends in a
 * _Noreturn call as infinite (-Winfinite-recursion). */
static void (*volatile deep_exit_p)(int, void *) = deep_exit;

static void deep_exit(int depth, void *value)
{
	if (depth > 0)
		deep_exit_p(depth - 1, value);
	else
		goro_exit(value);
}

static void *exiter(void *arg)
{
	deep_exit(20, arg);
	return (void *)0xbad;	/* not reached */
}

static void *main_exit_values(void *arg)
{
	goro_t h[8];
	(void)arg;
	for (uintptr_t i = 0; i < 8; i++)
		if (goro_spawn(&h[i], exiter, (void *)(0x1000 + i), NULL))
			return (void *)1;
	for (uintptr_t i = 0; i < 8; i++) {
		void *res;
		if (goro_join(&h[i], &res) || res != (void *)(0x1000 + i))
			return (void *)2;
	}
	return NULL;
}

START_TEST(test_core_exit_value)
{
	ck_assert_ptr_null(t_run(main_exit_values, NULL));
}
END_TEST

/* Names and ids. */
static void *who(void *arg)
{
	const char *name = goro_self_name();
	(void)arg;
	return (void *)(uintptr_t)(name && strcmp(name, "worker-7") == 0 && goro_self_id() > 0);
}

static void *main_names(void *arg)
{
	struct goro_spawn_opts o = { .name = "worker-7" };
	goro_t h;
	void *res;
	(void)arg;
	if (goro_spawn(&h, who, NULL, &o) || goro_join(&h, &res))
		return NULL;
	return res;
}

START_TEST(test_core_names_and_ids)
{
	ck_assert_ptr_eq(t_run(main_names, NULL), (void *)1);
	ck_assert_uint_eq(goro_self_id(), 0);
	ck_assert_ptr_null(goro_self_name());
}
END_TEST

/* ---- Yield and fairness ------------------------------------------------ */

static atomic_int stop_spinning;
static atomic_int workers_done;

static void *spinner(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_spinning))
		goro_yield();
	return NULL;
}

static void *counter(void *arg)
{
	int *slot = arg;
	for (int i = 0; i < 1000; i++) {
		(*slot)++;
		goro_yield();
	}
	atomic_fetch_add(&workers_done, 1);
	return NULL;
}

/* On one M, a G that yields in a loop must not starve nine others. */
static void *main_fairness(void *arg)
{
	static int slots[9];
	goro_t s, h[9];
	(void)arg;
	goro_spawn(&s, spinner, NULL, NULL);
	for (int i = 0; i < 9; i++)
		goro_spawn(&h[i], counter, &slots[i], NULL);
	for (int i = 0; i < 9; i++)
		goro_join(&h[i], NULL);
	atomic_store(&stop_spinning, 1);
	goro_join(&s, NULL);
	for (int i = 0; i < 9; i++)
		if (slots[i] != 1000)
			return (void *)1;
	return NULL;
}

START_TEST(test_sched_yield_fairness)
{
	ck_assert_ptr_null(t_run(main_fairness, NULL));
	ck_assert_int_eq(atomic_load(&workers_done), 9);
}
END_TEST

/* Gs spawned by a plain thread go to the global queue; they must run
 * while a G spins yielding on the only M. */
static atomic_int global_ran;

static void *global_body(void *arg)
{
	(void)arg;
	atomic_fetch_add(&global_ran, 1);
	return NULL;
}

START_TEST(test_sched_global_queue_drained)
{
	goro_t s;
	ck_assert_int_eq(goro_spawn(&s, spinner, NULL, NULL), 0);
	for (int i = 0; i < 500; i++)
		ck_assert_int_eq(goro_spawn(NULL, global_body, NULL, NULL), 0);
	while (atomic_load(&global_ran) < 500)
		usleep(1000);	/* the test's timeout catches starvation */
	atomic_store(&stop_spinning, 1);
	ck_assert_int_eq(goro_join(&s, NULL), 0);
	ck_assert_int_eq(atomic_load(&global_ran), 500);
}
END_TEST

/* ---- Several Ms ------------------------------------------------------- */

static atomic_int m_seen[64];

static void *busy(void *arg)
{
	struct goro_m *mp = goro__m_self();
	int64_t until = goro__nanotime() + 200000;	/* 200 us of work */
	(void)arg;
	while (goro__nanotime() < until)
		;
	atomic_fetch_add(&m_seen[mp->id % 64], 1);
	return NULL;
}

static void *main_two_ms(void *arg)
{
	goro_t h[200];
	(void)arg;
	for (int i = 0; i < 200; i++)
		goro_spawn(&h[i], busy, NULL, NULL);
	for (int i = 0; i < 200; i++)
		goro_join(&h[i], NULL);
	return NULL;
}

/* With two Ps, Gs spawned by one G run on two Ms: the second M can only
 * get them by stealing (fewer than a run queue's worth, so nothing spills
 * to the global queue). */
START_TEST(test_sched_two_ms_steal)
{
	struct goro_stats st;
	int ms = 0, total = 0;

	t_run(main_two_ms, NULL);
	for (int i = 0; i < 64; i++) {
		ms += atomic_load(&m_seen[i]) > 0;
		total += atomic_load(&m_seen[i]);
	}
	ck_assert_int_eq(total, 200);
	ck_assert_int_ge(ms, 2);
	t_ok(goro_stats(&st, sizeof st));
	ck_assert_uint_eq(st.maxprocs, 2);
	ck_assert_uint_gt(st.steals, 0);
}
END_TEST

/* Migration: after every yield, the runtime's idea of the current M must
 * be the thread we are really on; count the moves to know the test did
 * something. */
static atomic_long migrations, mismatches;

static void *hopper(void *arg)
{
	struct goro_m *prev = goro__m_self();
	(void)arg;
	for (int i = 0; i < 2000; i++) {
		struct goro_m *mp;
		goro_yield();
		mp = goro__m_self();
		if (mp->tid != (pid_t)syscall(SYS_gettid) || mp->curg != goro__g_self())
			atomic_fetch_add(&mismatches, 1);
		if (mp != prev)
			atomic_fetch_add(&migrations, 1);
		prev = mp;
	}
	return NULL;
}

static void *main_migrate(void *arg)
{
	goro_t h[64];
	(void)arg;
	for (int i = 0; i < 64; i++)
		goro_spawn(&h[i], hopper, NULL, NULL);
	for (int i = 0; i < 64; i++)
		goro_join(&h[i], NULL);
	return NULL;
}

START_TEST(test_sched_migration_rereads_m)
{
	t_run(main_migrate, NULL);
	ck_assert_int_eq(atomic_load(&mismatches), 0);
}
END_TEST

/* A forced migration.  The hopper parks; a hog readies it, which puts it
 * on the runnext slot of the hog's own P, then spins there without
 * yielding, so only the other M can run the hopper (by stealing it).
 * When the hog ran on the hopper's M, the hopper moves; a try where the
 * hog itself was stolen does not count, so it tries again.  After every
 * resume the runtime's current M must be the thread we are on. */
struct hog_ctx {
	struct goro_wg parked;
	atomic_int release;
};

static void *hog(void *arg)
{
	struct hog_ctx *c = arg;
	int64_t give_up = goro__nanotime() + 20000000000LL;	/* 20 s */
	goro_wg_done(&c->parked);	/* ready the hopper onto our P */
	while (!atomic_load(&c->release) && goro__nanotime() < give_up)
		;
	return NULL;
}

static void *forced_hopper(void *arg)
{
	(void)arg;
	for (int attempt = 0; attempt < 100; attempt++) {
		struct hog_ctx c = { GORO_WG_INIT, 0 };
		struct goro_m *before = goro__m_self(), *after;
		goro_t h;
		bool right;

		goro_wg_add(&c.parked, 1);
		goro_spawn(&h, hog, &c, NULL);
		goro_wg_wait(&c.parked);
		after = goro__m_self();
		right = after->tid == (pid_t)syscall(SYS_gettid) && after->curg == goro__g_self();
		atomic_store(&c.release, 1);
		goro_join(&h, NULL);
		if (!right)
			return (void *)2;
		if (after != before)
			return (void *)1;
	}
	return (void *)3;	/* never moved in 100 tries */
}

START_TEST(test_sched_migration_forced)
{
	ck_assert_ptr_eq(t_run(forced_hopper, NULL), (void *)1);
}
END_TEST

/* ---- Plain threads ------------------------------------------------------ */

static void *plain_spawner(void *arg)
{
	uintptr_t base = (uintptr_t)arg;
	uint64_t sum = 0;
	goro_t h[1000];

	for (uintptr_t i = 0; i < 1000; i++)
		if (goro_spawn(&h[i], add_one, (void *)(base + i), NULL) != 0)
			return (void *)0;
	for (int i = 0; i < 1000; i++) {
		void *r;
		if (goro_join(&h[i], &r) != 0)
			return (void *)0;
		sum += (uintptr_t)r;
	}
	return (void *)(uintptr_t)sum;
}

START_TEST(test_core_spawn_from_plain_threads)
{
	pthread_t t[4];
	for (uintptr_t i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, plain_spawner, (void *)(i * 1000)), 0);
	for (int i = 0; i < 4; i++) {
		void *r;
		uint64_t want = 0;
		pthread_join(t[i], &r);
		for (uint64_t k = 0; k < 1000; k++)
			want += (uint64_t)i * 1000 + k + 1;
		ck_assert_uint_eq((uintptr_t)r, want);
	}
}
END_TEST

/* Implicit start: no goro_init, the first spawn starts the runtime. */
START_TEST(test_core_implicit_init)
{
	goro_t h;
	void *r;
	ck_assert_int_eq(goro_spawn(&h, add_one, (void *)1, NULL), 0);
	ck_assert_int_eq(goro_join(&h, &r), 0);
	ck_assert_ptr_eq(r, (void *)2);
	ck_assert_int_eq(goro_init(NULL), -EALREADY);
	ck_assert_int_eq(goro_shutdown(), 0);
	/* and it starts again */
	ck_assert_ptr_eq(t_run(add_one, (void *)5), (void *)6);
	ck_assert_int_eq(goro_shutdown(), 0);
}
END_TEST

/* ---- Misuse ------------------------------------------------------------ */

static void *main_misuse(void *arg)
{
	goro_t h;
	uintptr_t bad = 0;
	(void)arg;
	bad |= (goro_shutdown() != -EPERM) << 0;
	bad |= (goro_run(add_one, NULL, NULL) != -EPERM) << 1;
	goro_spawn(&h, add_one, NULL, NULL);
	bad |= (goro_join(&h, NULL) != 0) << 2;
	bad |= (goro_join(&h, NULL) != -EINVAL) << 3;	/* handle cleared */
	return (void *)bad;
}

static atomic_int self_ready;

static void *join_self(void *arg)
{
	goro_t *h = arg;
	while (!atomic_load(&self_ready))	/* h is written by the main thread */
		goro_yield();
	return (void *)(intptr_t)goro_join(h, NULL);
}

START_TEST(test_core_misuse_errors)
{
	struct goro_spawn_opts big = { .stack_size = (size_t)1 << 40 };
	struct goro_spawn_opts rsv = { .reserved = { 1 } };
	struct goro_config cfg = { .maxprocs = 100000 };
	struct goro_wg wg = GORO_WG_INIT;
	goro_t h, stale;
	void *r;

	ck_assert_int_eq(goro_yield(), -EPERM);
	ck_assert_int_eq(goro_join(NULL, NULL), -EINVAL);
	ck_assert_int_eq(goro_spawn(&h, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(goro_spawn(&h, add_one, NULL, &big), -EINVAL);
	ck_assert_int_eq(goro_spawn(&h, add_one, NULL, &rsv), -EINVAL);
	ck_assert_int_eq(goro_init(&cfg), -EINVAL);
	ck_assert_int_eq(goro_init(NULL), -EALREADY);
	ck_assert_int_eq(goro_run(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(goro_wg_add(&wg, -1), -EINVAL);
	ck_assert_int_eq(goro_stats(NULL, 0), -EINVAL);
	ck_assert_int_eq(goro_stack_info(NULL), -EPERM);
	ck_assert_ptr_null(t_run(main_misuse, NULL));

	/* A stale handle (already joined, then the G reused) gives ESRCH. */
	ck_assert_int_eq(goro_spawn(&h, add_one, NULL, NULL), 0);
	stale = h;
	ck_assert_int_eq(goro_join(&h, &r), 0);
	ck_assert_int_eq(goro_join(&stale, &r), -ESRCH);

	/* A G joining itself gives EDEADLK. */
	static goro_t self;
	memset(&self, 0, sizeof self);
	goro_t j;
	ck_assert_int_eq(goro_spawn(&j, join_self, &self, NULL), 0);
	self = j;
	atomic_store(&self_ready, 1);
	ck_assert_int_eq(goro_join(&j, &r), 0);
	ck_assert_int_eq((intptr_t)r, -EDEADLK);
}
END_TEST

static void *nap_then_done(void *arg)
{
	goro_sleep(2000000);
	goro_wg_done(arg);
	return (void *)7;
}

/* The goro_ API never writes errno, even when a plain thread sleeps on a
 * futex inside it (FUTEX_WAIT may fail with EAGAIN or be interrupted). */
START_TEST(test_core_errno_untouched)
{
	struct goro_wg wg = GORO_WG_INIT;
	for (int i = 0; i < 50; i++) {
		goro_t h;
		void *r;
		goro_wg_add(&wg, 1);
		ck_assert_int_eq(goro_spawn(&h, nap_then_done, &wg, NULL), 0);
		errno = 4321;
		ck_assert_int_eq(goro_wg_wait(&wg), 0);
		ck_assert_int_eq(errno, 4321);
		ck_assert_int_eq(goro_join(&h, &r), 0);
		ck_assert_int_eq(errno, 4321);
		ck_assert_ptr_eq(r, (void *)7);
	}
}
END_TEST

static void exit_outside(void *arg)
{
	(void)arg;
	goro_exit(NULL);
}

/* goro_exit on a plain thread is a programming error: it aborts with a
 * message instead of returning. */
START_TEST(test_core_exit_outside_g_aborts)
{
	char err[512];
	int st = t_child(exit_outside, NULL, err, sizeof err);
	ck_assert(WIFSIGNALED(st));
	ck_assert_int_eq(WTERMSIG(st), SIGABRT);
	ck_assert_msg(strstr(err, "goro: fatal: goro_exit called outside a G") != NULL,
		      "stderr was: %s", err);
}
END_TEST

/* ---- Reuse ------------------------------------------------------------- */

static void *main_churn(void *arg)
{
	uint64_t *slots = arg;
	struct goro_stats st;
	for (int round = 0; round < 10; round++) {
		spawn_join_n(20000, 2000);
		goro_stats(&st, sizeof st);
		slots[round] = st.stack_slots;
	}
	return NULL;
}

/* After the first round of churn, creating more Gs reuses dead ones: the
 * arena carves at most a few new slots, because a free G may sit in the
 * other P's cache (64 per P) while this P needs one. */
START_TEST(test_core_reuse_dead_gs)
{
	uint64_t slots[10];
	struct goro_stats st;

	t_run(main_churn, slots);
	ck_assert_uint_gt(slots[0], 0);
	ck_assert_uint_le(slots[9], slots[1] + 2 * 64);
	t_ok(goro_stats(&st, sizeof st));
	ck_assert_uint_eq(st.gs_alive, 0);
	ck_assert_uint_eq(st.gs_created, 200000 + 1);
}
END_TEST

/* ---- Observability -------------------------------------------------------- */

static void run_with_schedtrace(void *arg)
{
	struct goro_config cfg = { .maxprocs = 2 };
	(void)arg;
	setenv("GORO_DEBUG", "schedtrace=10", 1);
	if (goro_init(&cfg) != 0)
		_exit(3);
	goro_shutdown();	/* prints a last trace line */
}

static void run_with_scheddetail(void *arg)
{
	(void)arg;
	setenv("GORO_DEBUG", "schedtrace=10,scheddetail=1", 1);
	if (goro_init(&(struct goro_config){ .maxprocs = 1 }) != 0)
		_exit(3);
	goro_shutdown();	/* prints a last trace line */
}

START_TEST(test_core_scheddetail)
{
	char err[8192];
	int st = t_child(run_with_scheddetail, NULL, err, sizeof err);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_msg(strstr(err, "  P0: status=idle ") != NULL, "stderr was: %s", err);
	ck_assert_msg(strstr(err, "  M0: tid=") != NULL, "stderr was: %s", err);
}
END_TEST

START_TEST(test_core_schedtrace)
{
	char err[4096];
	int st = t_child(run_with_schedtrace, NULL, err, sizeof err);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_msg(strstr(err, "goro SCHED ") != NULL, "stderr was: %s", err);
	ck_assert_msg(strstr(err, "maxprocs=2 idleprocs=2 ") != NULL, "stderr was: %s", err);
}
END_TEST

/* ---- Blocking hand-off ------------------------------------------------------ */

static atomic_long progress;
static atomic_int blocking;

static void *sleepy(void *arg)
{
	(void)arg;
	atomic_store(&blocking, 1);
	usleep(300000);
	atomic_store(&blocking, 0);
	errno = 77;
	return (void *)0x5eed;
}

/* Returns the errno seen after goro_block: the call's, even if the G
 * came back on another thread. */
static void *blocker(void *arg)
{
	void *r;
	(void)arg;
	errno = 0;
	r = goro_block(sleepy, NULL);
	return r == (void *)0x5eed ? (void *)(intptr_t)errno : NULL;
}

static void *stepper(void *arg)
{
	long *during = arg;
	while (!atomic_load(&blocking))
		goro_yield();
	while (atomic_load(&blocking)) {
		atomic_fetch_add(&progress, 1);
		(*during)++;
		goro_yield();
	}
	return NULL;
}

/* With one P, a G stuck in a blocking call inside goro_block does not
 * stop another G: sysmon hands the P to another M. */
START_TEST(test_sched_block_handoff)
{
	static long during;
	goro_t a, b;
	void *r;
	ck_assert_int_eq(goro_spawn(&b, stepper, &during, NULL), 0);
	ck_assert_int_eq(goro_spawn(&a, blocker, NULL, NULL), 0);
	ck_assert_int_eq(goro_join(&a, &r), 0);
	ck_assert_int_eq(goro_join(&b, NULL), 0);
	ck_assert_int_gt(during, 100);
	ck_assert_int_eq((intptr_t)r, 77);
}
END_TEST

/* ---- Park and ready under stress --------------------------------------- */

struct barrier_round {
	struct goro_wg start;
	struct goro_wg done;
	atomic_int woke;
};

static void *barrier_waiter(void *arg)
{
	struct barrier_round *r = arg;
	goro_wg_wait(&r->start);
	atomic_fetch_add(&r->woke, 1);
	goro_wg_done(&r->done);
	return NULL;
}

/* 300 rounds: 64 Gs park on one wait group, the main G releases them all
 * at once, and every one must wake (a lost wake-up hangs the test, which
 * its timeout reports). */
static void *main_barrier(void *arg)
{
	long *total = arg;
	for (int round = 0; round < 300; round++) {
		struct barrier_round r = { GORO_WG_INIT, GORO_WG_INIT, 0 };
		goro_wg_add(&r.start, 1);
		goro_wg_add(&r.done, 64);
		for (int i = 0; i < 64; i++)
			goro_spawn(NULL, barrier_waiter, &r, NULL);
		if (round % 2)
			goro_yield();
		goro_wg_done(&r.start);
		goro_wg_wait(&r.done);
		*total += atomic_load(&r.woke);
	}
	return NULL;
}

START_TEST(test_sched_park_ready_stress)
{
	long total = 0;
	t_run(main_barrier, &total);
	ck_assert_int_eq(total, 300 * 64);
}
END_TEST

struct sleeper {
	int64_t ns;
	int64_t slept;
};

static void *sleeper_body(void *arg)
{
	struct sleeper *s = arg;
	int64_t t0 = goro_now_ns_for_test();
	goro_sleep(s->ns);
	s->slept = goro_now_ns_for_test() - t0;
	return NULL;
}

/* 2,000 Gs sleep for 0 to 5 ms each; every sleep lasts at least what was
 * asked (a timer may fire late, never early) and every G wakes. */
START_TEST(test_core_sleep_many)
{
	static struct sleeper s[2000];
	static goro_t h[2000];
	for (int i = 0; i < 2000; i++) {
		s[i].ns = (int64_t)(i % 11) * 500000;
		ck_assert_int_eq(goro_spawn(&h[i], sleeper_body, &s[i], NULL), 0);
	}
	for (int i = 0; i < 2000; i++) {
		ck_assert_int_eq(goro_join(&h[i], NULL), 0);
		ck_assert_msg(s[i].slept >= s[i].ns, "G %d slept %lld ns < %lld", i,
			      (long long)s[i].slept, (long long)s[i].ns);
	}
	ck_assert_int_eq(goro_sleep(-1), -EINVAL);
}
END_TEST

static Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *tc;

	tc = t_tcase(s, "Spawn", t_setup_2, 120);
	tcase_add_test(tc, test_core_spawn_join_one);
	tcase_add_test(tc, test_core_spawn_join_1000);
	tcase_add_test(tc, test_core_spawn_join_1m);
	tcase_add_test(tc, test_core_spawn_detached_1m);
	tcase_add_test(tc, test_core_nested_spawn);
	tcase_add_test(tc, test_core_exit_value);
	tcase_add_test(tc, test_core_names_and_ids);
	tcase_add_test(tc, test_core_spawn_from_plain_threads);
	tcase_add_test(tc, test_core_reuse_dead_gs);

	tc = t_tcase(s, "Sched1", t_setup_1, 60);
	tcase_add_test(tc, test_sched_yield_fairness);
	tcase_add_test(tc, test_sched_global_queue_drained);
	tcase_add_test(tc, test_sched_block_handoff);

	tc = t_tcase(s, "Sched2", t_setup_2, 60);
	tcase_add_test(tc, test_sched_two_ms_steal);
	tcase_add_test(tc, test_sched_migration_rereads_m);
	tcase_add_test(tc, test_sched_migration_forced);
	tcase_add_test(tc, test_sched_park_ready_stress);
	tcase_add_test(tc, test_core_sleep_many);

	tc = t_tcase(s, "Errors", t_setup_2, 60);
	tcase_add_test(tc, test_core_misuse_errors);
	tcase_add_test(tc, test_core_errno_untouched);

	tc = t_tcase(s, "NoRuntime", NULL, 60);
	tcase_add_test(tc, test_core_implicit_init);
	tcase_add_test(tc, test_core_exit_outside_g_aborts);
	tcase_add_test(tc, test_core_schedtrace);
	tcase_add_test(tc, test_core_scheddetail);
	return s;
}

int main(void)
{
	return t_main(core_suite());
}
