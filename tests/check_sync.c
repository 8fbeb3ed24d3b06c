/*
 * check_sync.c: mutex, rwlock, condition variable, semaphore, once and
 * wait group, used by Gs on several Ms and by plain threads together.
 *
 * As in check_chan.c, the runtime starts in a checked fixture, bodies run
 * as the main G, and Gs record what they saw for the main G to assert.
 *
 * Debugging: CK_RUN_SUITE=sync CK_RUN_CASE=Mutex gdb tests/check_sync
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "goro.h"
#include "helpers.h"
#include "internal.h"	/* goro__mutex_starve_count */

#define TIMEOUT 60

/* Runs n copies of fn as Gs and k as plain threads; waits for all. */
static void t_gs_and_threads(void *(*fn)(void *), void *arg, int n, int k)
{
	goro_t *hs = calloc((size_t)n, sizeof(*hs));
	pthread_t th[8];

	ck_assert_ptr_nonnull(hs);
	ck_assert_int_le(k, 8);
	for (int i = 0; i < n; i++)
		hs[i] = t_spawn(fn, arg);
	for (int i = 0; i < k; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, fn, arg), 0);
	for (int i = 0; i < k; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < n; i++)
		t_join(&hs[i]);
	free(hs);
}

/* ---- Mutex ------------------------------------------------------------ */

#define MX_GS 64
#define MX_THREADS 2
#define MX_ITERS 5000

struct mx {
	struct goro_mutex m;
	uint64_t counter;		/* protected by m, deliberately plain */
	int inside;			/* protected by m */
	_Atomic long errors;
};

static void *mx_worker(void *arg)
{
	struct mx *x = arg;

	for (int i = 0; i < MX_ITERS; i++) {
		if (goro_mutex_lock(&x->m) != 0)
			atomic_fetch_add(&x->errors, 1);
		if (x->inside++ != 0)
			atomic_fetch_add(&x->errors, 1);
		x->counter++;
		/* Now and then, hold the lock across a switch, so that others
		 * queue up and park. */
		if (i % 64 == 0)
			goro_yield();
		x->inside--;
		if (goro_mutex_unlock(&x->m) != 0)
			atomic_fetch_add(&x->errors, 1);
	}
	return NULL;
}

static void *mx_main(void *arg)
{
	t_gs_and_threads(mx_worker, arg, MX_GS, MX_THREADS);
	return NULL;
}

/* 64 Gs on 2 Ms and 2 plain threads increment a plain counter. */
START_TEST(test_mutex_counter_exact)
{
	struct mx x = { .m = GORO_MUTEX_INIT };

	t_run(mx_main, &x);
	ck_assert_int_eq(atomic_load(&x.errors), 0);
	ck_assert_uint_eq(x.counter, (uint64_t)(MX_GS + MX_THREADS) * MX_ITERS);
	ck_assert_int_eq(goro_mutex_trylock(&x.m), 0);
}
END_TEST

START_TEST(test_mutex_errors)
{
	struct goro_mutex m = GORO_MUTEX_INIT;

	ck_assert_int_eq(goro_mutex_unlock(&m), -EPERM);
	ck_assert_int_eq(goro_mutex_trylock(&m), 0);
	ck_assert_int_eq(goro_mutex_trylock(&m), -EBUSY);
	ck_assert_int_eq(goro_mutex_unlock(&m), 0);
	ck_assert_int_eq(goro_mutex_unlock(&m), -EPERM);
	ck_assert_int_eq(goro_mutex_lock(NULL), -EINVAL);
}
END_TEST

/*
 * Starvation mode.  On one M, a "hog" G takes the mutex, sleeps while
 * holding it, releases it and at once takes it again, HOG_ITERS times.
 * A second G waits for the mutex.  In normal mode the waiter, woken by
 * each unlock, only runs after the hog has re-taken the mutex, so it
 * would lose every round until the hog is done.  After 1 ms of losing it
 * must switch the mutex to starvation mode, and the hog's next unlock
 * hands the mutex over: the waiter gets it while the hog still has most
 * of its rounds to go.
 */
#define HOG_ITERS 200

struct starve {
	struct goro_mutex m;
	_Atomic int hog_round;
	int waiter_saw;
	_Atomic bool hog_has_it;
};

static void *starve_hog(void *arg)
{
	struct starve *s = arg;

	for (int i = 0; i < HOG_ITERS; i++) {
		goro_mutex_lock(&s->m);
		atomic_store(&s->hog_has_it, true);
		atomic_store(&s->hog_round, i);
		goro_sleep(100000);
		goro_mutex_unlock(&s->m);
	}
	return NULL;
}

static void *starve_waiter(void *arg)
{
	struct starve *s = arg;

	while (!atomic_load(&s->hog_has_it))
		goro_yield();
	goro_mutex_lock(&s->m);
	s->waiter_saw = atomic_load(&s->hog_round);
	goro_mutex_unlock(&s->m);
	return NULL;
}

static void *starve_main(void *arg)
{
	struct starve *s = arg;
	goro_t a = t_spawn(starve_hog, s), b = t_spawn(starve_waiter, s);

	t_join(&a);
	t_join(&b);
	return NULL;
}

START_TEST(test_mutex_starvation_mode_engages)
{
	struct starve s = { .m = GORO_MUTEX_INIT };
	uint64_t before = goro__mutex_starve_count();

	t_run(starve_main, &s);
	ck_assert_uint_gt(goro__mutex_starve_count(), before);
	/* 1 ms of 100 us rounds is about 10; allow for slow timers. */
	ck_assert_msg(s.waiter_saw < HOG_ITERS / 2,
		      "waiter got the mutex only at hog round %d", s.waiter_saw);
}
END_TEST

/* ---- RWLock ----------------------------------------------------------- */

#define RW_READERS 16
#define RW_WRITERS 4
#define RW_ITERS 2000

struct rw {
	struct goro_rwlock l;
	uint64_t a, b;			/* a == b whenever no writer holds l */
	_Atomic int writers_in, readers_in;
	_Atomic long errors, reads;
};

static void *rw_writer(void *arg)
{
	struct rw *r = arg;

	for (int i = 0; i < RW_ITERS; i++) {
		goro_rwlock_wrlock(&r->l);
		if (atomic_fetch_add(&r->writers_in, 1) != 0 ||
		    atomic_load(&r->readers_in) != 0)
			atomic_fetch_add(&r->errors, 1);
		r->a++;
		if (i % 16 == 0)
			goro_yield();
		r->b++;
		atomic_fetch_sub(&r->writers_in, 1);
		if (goro_rwlock_wrunlock(&r->l) != 0)
			atomic_fetch_add(&r->errors, 1);
	}
	return NULL;
}

static void *rw_reader(void *arg)
{
	struct rw *r = arg;

	for (int i = 0; i < RW_ITERS; i++) {
		goro_rwlock_rdlock(&r->l);
		atomic_fetch_add(&r->readers_in, 1);
		if (atomic_load(&r->writers_in) != 0 || r->a != r->b)
			atomic_fetch_add(&r->errors, 1);
		if (i % 16 == 0)
			goro_yield();
		atomic_fetch_add(&r->reads, 1);
		atomic_fetch_sub(&r->readers_in, 1);
		if (goro_rwlock_rdunlock(&r->l) != 0)
			atomic_fetch_add(&r->errors, 1);
	}
	return NULL;
}

static void *rw_main(void *arg)
{
	struct rw *r = arg;
	goro_t hs[RW_READERS + RW_WRITERS];
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, rw_writer, r), 0);
	for (int i = 0; i < RW_READERS + RW_WRITERS; i++)
		hs[i] = t_spawn(i < RW_WRITERS ? rw_writer : rw_reader, r);
	for (int i = 0; i < RW_READERS + RW_WRITERS; i++)
		t_join(&hs[i]);
	pthread_join(th, NULL);
	return NULL;
}

START_TEST(test_rwlock_exclusion)
{
	struct rw r = { .l = GORO_RWLOCK_INIT };

	t_run(rw_main, &r);
	ck_assert_int_eq(atomic_load(&r.errors), 0);
	ck_assert_uint_eq(r.a, (uint64_t)(RW_WRITERS + 1) * RW_ITERS);
	ck_assert_uint_eq(r.b, r.a);
	ck_assert_int_eq(atomic_load(&r.reads), RW_READERS * RW_ITERS);
}
END_TEST

/*
 * A waiting writer holds back new readers (so readers cannot starve it),
 * and its unlock admits the readers that queued meanwhile.  On one M a G
 * that bumped `arrived` and let the main G run again has parked.
 */
struct wpref {
	struct goro_rwlock l;
	_Atomic int arrived, writer_done, readers_done;
};

static void *wpref_writer(void *arg)
{
	struct wpref *w = arg;

	atomic_fetch_add(&w->arrived, 1);
	goro_rwlock_wrlock(&w->l);
	atomic_store(&w->writer_done, 1);
	goro_rwlock_wrunlock(&w->l);
	return NULL;
}

static void *wpref_reader(void *arg)
{
	struct wpref *w = arg;

	atomic_fetch_add(&w->arrived, 1);
	goro_rwlock_rdlock(&w->l);
	/* The writer queued first, so it went first. */
	if (atomic_load(&w->writer_done))
		atomic_fetch_add(&w->readers_done, 1);
	goro_rwlock_rdunlock(&w->l);
	return NULL;
}

static void *wpref_main(void *arg)
{
	struct wpref *w = arg;
	goro_t hw, hr[3];
	long bad = 0;

	goro_rwlock_rdlock(&w->l);
	hw = t_spawn(wpref_writer, w);
	while (atomic_load(&w->arrived) < 1)
		goro_yield();
	if (goro_rwlock_tryrdlock(&w->l) != -EBUSY)
		bad++;
	for (int i = 0; i < 3; i++) {
		hr[i] = t_spawn(wpref_reader, w);
		while (atomic_load(&w->arrived) < i + 2)
			goro_yield();
	}
	if (atomic_load(&w->writer_done))
		bad++;
	goro_rwlock_rdunlock(&w->l);
	t_join(&hw);
	for (int i = 0; i < 3; i++)
		t_join(&hr[i]);
	if (atomic_load(&w->readers_done) != 3)
		bad++;
	return (void *)bad;
}

START_TEST(test_rwlock_waiting_writer_blocks_readers)
{
	struct wpref w = { .l = GORO_RWLOCK_INIT };

	ck_assert_ptr_null(t_run(wpref_main, &w));
}
END_TEST

START_TEST(test_rwlock_errors)
{
	struct goro_rwlock l = GORO_RWLOCK_INIT;

	ck_assert_int_eq(goro_rwlock_rdunlock(&l), -EPERM);
	ck_assert_int_eq(goro_rwlock_wrunlock(&l), -EPERM);
	ck_assert_int_eq(goro_rwlock_rdlock(&l), 0);
	ck_assert_int_eq(goro_rwlock_tryrdlock(&l), 0);
	ck_assert_int_eq(goro_rwlock_trywrlock(&l), -EBUSY);
	ck_assert_int_eq(goro_rwlock_wrunlock(&l), -EPERM);
	ck_assert_int_eq(goro_rwlock_rdunlock(&l), 0);
	ck_assert_int_eq(goro_rwlock_rdunlock(&l), 0);
	ck_assert_int_eq(goro_rwlock_wrlock(&l), 0);
	ck_assert_int_eq(goro_rwlock_tryrdlock(&l), -EBUSY);
	ck_assert_int_eq(goro_rwlock_trywrlock(&l), -EBUSY);
	ck_assert_int_eq(goro_rwlock_rdunlock(&l), -EPERM);
	ck_assert_int_eq(goro_rwlock_wrunlock(&l), 0);
}
END_TEST

/* ---- Condition variable ---------------------------------------------- */

#define CQ_CAP 8
#define CQ_PRODUCERS 6
#define CQ_PER 3000
#define CQ_CONSUMERS 6

/* A bounded queue built from a mutex and two conds. */
struct cq {
	struct goro_mutex m;
	struct goro_cond not_empty, not_full;
	uint32_t buf[CQ_CAP];		/* protected by m, as are the next four */
	int head, n;
	int producers_left;
	uint32_t next_id;
	_Atomic uint8_t seen[CQ_PRODUCERS * CQ_PER];
	_Atomic uint64_t got, sum;
	_Atomic long errors;
};

static void *cq_producer(void *arg)
{
	struct cq *q = arg;
	uint32_t id;

	goro_mutex_lock(&q->m);
	id = q->next_id++;
	goro_mutex_unlock(&q->m);
	for (uint32_t s = 0; s < CQ_PER; s++) {
		goro_mutex_lock(&q->m);
		while (q->n == CQ_CAP)
			if (goro_cond_wait(&q->not_full, &q->m) != 0)
				atomic_fetch_add(&q->errors, 1);
		q->buf[(q->head + q->n++) % CQ_CAP] = id * CQ_PER + s;
		goro_cond_signal(&q->not_empty);
		goro_mutex_unlock(&q->m);
	}
	goro_mutex_lock(&q->m);
	if (--q->producers_left == 0)
		goro_cond_broadcast(&q->not_empty);
	goro_mutex_unlock(&q->m);
	return NULL;
}

static void *cq_consumer(void *arg)
{
	struct cq *q = arg;

	for (;;) {
		uint32_t v;

		goro_mutex_lock(&q->m);
		while (q->n == 0 && q->producers_left > 0)
			goro_cond_wait(&q->not_empty, &q->m);
		if (q->n == 0) {
			goro_mutex_unlock(&q->m);
			return NULL;
		}
		v = q->buf[q->head];
		q->head = (q->head + 1) % CQ_CAP;
		q->n--;
		goro_cond_signal(&q->not_full);
		goro_mutex_unlock(&q->m);
		if (v >= CQ_PRODUCERS * CQ_PER || atomic_fetch_add(&q->seen[v], 1))
			atomic_fetch_add(&q->errors, 1);
		atomic_fetch_add(&q->got, 1);
		atomic_fetch_add(&q->sum, v);
	}
}

static void *cq_main(void *arg)
{
	struct cq *q = arg;
	goro_t hs[CQ_PRODUCERS + CQ_CONSUMERS];
	pthread_t th[2];

	/* One producer and one consumer are plain threads. */
	ck_assert_int_eq(pthread_create(&th[0], NULL, cq_producer, q), 0);
	ck_assert_int_eq(pthread_create(&th[1], NULL, cq_consumer, q), 0);
	for (int i = 0; i < CQ_PRODUCERS - 1; i++)
		hs[i] = t_spawn(cq_producer, q);
	for (int i = 0; i < CQ_CONSUMERS - 1; i++)
		hs[CQ_PRODUCERS - 1 + i] = t_spawn(cq_consumer, q);
	for (int i = 0; i < CQ_PRODUCERS + CQ_CONSUMERS - 2; i++)
		t_join(&hs[i]);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	return NULL;
}

START_TEST(test_cond_bounded_queue_exactly_once)
{
	struct cq *q = calloc(1, sizeof(*q));
	uint64_t n = CQ_PRODUCERS * CQ_PER;

	ck_assert_ptr_nonnull(q);
	q->producers_left = CQ_PRODUCERS;
	t_run(cq_main, q);
	ck_assert_int_eq(atomic_load(&q->errors), 0);
	ck_assert_uint_eq(atomic_load(&q->got), n);
	ck_assert_uint_eq(atomic_load(&q->sum), n * (n - 1) / 2);
	free(q);
}
END_TEST

#define BC_N 50

struct bc {
	struct goro_mutex m;
	struct goro_cond c;
	int waiting, go;		/* protected by m */
	_Atomic int woke;
};

static void *bc_waiter(void *arg)
{
	struct bc *b = arg;

	goro_mutex_lock(&b->m);
	b->waiting++;
	while (!b->go)
		goro_cond_wait(&b->c, &b->m);
	goro_mutex_unlock(&b->m);
	atomic_fetch_add(&b->woke, 1);
	return NULL;
}

static void *bc_main(void *arg)
{
	struct bc *b = arg;
	goro_t hs[BC_N];

	for (int i = 0; i < BC_N; i++)
		hs[i] = t_spawn(bc_waiter, b);
	for (;;) {
		goro_mutex_lock(&b->m);
		if (b->waiting == BC_N)
			break;
		goro_mutex_unlock(&b->m);
		goro_yield();
	}
	/* All BC_N are queued on the cond (they queue before unlocking m). */
	b->go = 1;
	goro_cond_broadcast(&b->c);
	goro_mutex_unlock(&b->m);
	for (int i = 0; i < BC_N; i++)
		t_join(&hs[i]);
	return NULL;
}

START_TEST(test_cond_broadcast_wakes_all)
{
	struct bc b = { .m = GORO_MUTEX_INIT, .c = GORO_COND_INIT };
	struct goro_cond c = GORO_COND_INIT;
	struct goro_mutex m = GORO_MUTEX_INIT;

	t_run(bc_main, &b);
	ck_assert_int_eq(atomic_load(&b.woke), BC_N);
	ck_assert_int_eq(goro_cond_wait(&c, &m), -EPERM);	/* m not held */
	ck_assert_int_eq(goro_cond_signal(&c), 0);		/* nobody: no-op */
}
END_TEST

/* ---- Semaphore ------------------------------------------------------- */

#define SEM_UNITS 3
#define SEM_GS 40
#define SEM_ITERS 300

struct sm {
	struct goro_sema s;
	_Atomic int inside, max_inside;
	_Atomic long passes;
};

static void *sm_worker(void *arg)
{
	struct sm *x = arg;

	for (int i = 0; i < SEM_ITERS; i++) {
		int in;

		goro_sema_acquire(&x->s);
		in = atomic_fetch_add(&x->inside, 1) + 1;
		for (int m = atomic_load(&x->max_inside); in > m;)
			if (atomic_compare_exchange_weak(&x->max_inside, &m, in))
				break;
		goro_yield();
		atomic_fetch_sub(&x->inside, 1);
		atomic_fetch_add(&x->passes, 1);
		goro_sema_release(&x->s);
	}
	return NULL;
}

static void *sm_main(void *arg)
{
	t_gs_and_threads(sm_worker, arg, SEM_GS, 2);
	return NULL;
}

START_TEST(test_sema_bounds_holders)
{
	struct sm x = { .s = GORO_SEMA_INIT };

	ck_assert_int_eq(goro_sema_init(&x.s, -1), -EINVAL);
	ck_assert_int_eq(goro_sema_try_acquire(&x.s), -EAGAIN);
	ck_assert_int_eq(goro_sema_init(&x.s, SEM_UNITS), 0);
	t_run(sm_main, &x);
	ck_assert_int_le(atomic_load(&x.max_inside), SEM_UNITS);
	ck_assert_int_ge(atomic_load(&x.max_inside), 1);
	ck_assert_int_eq(atomic_load(&x.passes), (SEM_GS + 2) * SEM_ITERS);
	/* All units are back. */
	for (int i = 0; i < SEM_UNITS; i++)
		ck_assert_int_eq(goro_sema_try_acquire(&x.s), 0);
	ck_assert_int_eq(goro_sema_try_acquire(&x.s), -EAGAIN);
}
END_TEST

/* A plain thread sleeps on a semaphore that a G releases, and back. */
struct pingsem {
	struct goro_sema to_g, to_thread;
	_Atomic int rounds;
};

static void *ps_g(void *arg)
{
	struct pingsem *p = arg;

	for (int i = 0; i < 2000; i++) {
		goro_sema_acquire(&p->to_g);
		atomic_fetch_add(&p->rounds, 1);
		goro_sema_release(&p->to_thread);
	}
	return NULL;
}

START_TEST(test_sema_pthread_g_ping_pong)
{
	struct pingsem p = { GORO_SEMA_INIT, GORO_SEMA_INIT, 0 };
	goro_t h = t_spawn(ps_g, &p);

	for (int i = 0; i < 2000; i++) {
		goro_sema_release(&p.to_g);
		goro_sema_acquire(&p.to_thread);
		ck_assert_int_eq(atomic_load(&p.rounds), i + 1);
	}
	t_join(&h);
}
END_TEST

/* ---- Once ------------------------------------------------------------ */

struct on {
	struct goro_once o;
	_Atomic int runs, saw_done, callers;
	int value;			/* written by fn only */
};

static void on_fn(void *arg)
{
	struct on *x = arg;

	atomic_fetch_add(&x->runs, 1);
	goro_sleep(5000000);	/* others arrive and must wait */
	x->value = 42;
}

static void *on_caller(void *arg)
{
	struct on *x = arg;

	atomic_fetch_add(&x->callers, 1);
	goro_once(&x->o, on_fn, x);
	if (x->value == 42)
		atomic_fetch_add(&x->saw_done, 1);
	return NULL;
}

static void *on_main(void *arg)
{
	t_gs_and_threads(on_caller, arg, 64, 2);
	return NULL;
}

START_TEST(test_once_runs_once)
{
	struct on x = { .o = GORO_ONCE_INIT };

	t_run(on_main, &x);
	ck_assert_int_eq(atomic_load(&x.runs), 1);
	ck_assert_int_eq(atomic_load(&x.callers), 66);
	ck_assert_int_eq(atomic_load(&x.saw_done), 66);
	ck_assert_int_eq(goro_once(&x.o, NULL, NULL), -EINVAL);
}
END_TEST

/* ---- WaitGroup ------------------------------------------------------- */

/* Under TSan every G is a fiber with its own detector state: fewer. */
#ifdef GORO_ENABLE_TSAN
#define WG_GS 4000
#else
#define WG_GS 100000
#endif

struct wgt {
	struct goro_wg start, done;
	_Atomic uint64_t count, sum;
};

static void *wg_worker(void *arg)
{
	struct wgt *w = arg;

	goro_wg_wait(&w->start);
	atomic_fetch_add(&w->count, 1);
	atomic_fetch_add(&w->sum, goro_self_id());
	goro_wg_done(&w->done);
	return NULL;
}

/*
 * 100,000 detached Gs: most of them park on one wait group (`start`)
 * until the main G opens it, then each counts itself and leaves `done`.
 * The main G's wait on `done` returns only when all have.
 */
static void *wg_main(void *arg)
{
	struct wgt *w = arg;

	goro_wg_add(&w->start, 1);
	goro_wg_add(&w->done, WG_GS);
	for (int i = 0; i < WG_GS; i++)
		ck_assert_int_eq(goro_spawn(NULL, wg_worker, w, NULL), 0);
	goro_wg_done(&w->start);
	goro_wg_wait(&w->done);
	return (void *)(uintptr_t)atomic_load(&w->count);
}

START_TEST(test_wg_100k_gs)
{
	struct wgt w = { GORO_WG_INIT, GORO_WG_INIT, 0, 0 };

	ck_assert_uint_eq((uintptr_t)t_run(wg_main, &w), WG_GS);
	ck_assert_uint_eq(atomic_load(&w.count), WG_GS);
	ck_assert_int_eq(goro_wg_add(&w.done, -1), -EINVAL);
}
END_TEST

static Suite *sync_suite(void)
{
	Suite *s = suite_create("sync");
	TCase *tc;

	tc = t_tcase(s, "Mutex", t_setup_2, TIMEOUT);
	tcase_add_test(tc, test_mutex_counter_exact);
	tcase_add_test(tc, test_mutex_errors);

	tc = t_tcase(s, "OneM", t_setup_1, TIMEOUT);
	tcase_add_test(tc, test_mutex_starvation_mode_engages);
	tcase_add_test(tc, test_rwlock_waiting_writer_blocks_readers);
	tcase_add_test(tc, test_mutex_counter_exact);

	tc = t_tcase(s, "Others", t_setup_2, TIMEOUT);
	tcase_add_test(tc, test_rwlock_exclusion);
	tcase_add_test(tc, test_rwlock_errors);
	tcase_add_test(tc, test_cond_bounded_queue_exactly_once);
	tcase_add_test(tc, test_cond_broadcast_wakes_all);
	tcase_add_test(tc, test_sema_bounds_holders);
	tcase_add_test(tc, test_sema_pthread_g_ping_pong);
	tcase_add_test(tc, test_once_runs_once);
	tcase_add_test(tc, test_wg_100k_gs);
	return s;
}

int main(void)
{
	return t_main(sync_suite());
}
