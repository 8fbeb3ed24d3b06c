/*
 * check_chan.c: channels and select.
 *
 * Every test starts the runtime in a checked fixture (after Check's fork)
 * and runs its body as the main G with goro_run, unless it is about plain
 * threads.  Gs record what they saw; the assertions run in the main G or
 * the test's thread once the Gs are done, so a failure is reported with
 * its values rather than from some M's thread.
 *
 * Debugging: CK_RUN_SUITE=chan CK_RUN_CASE=Select gdb tests/check_chan
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "goro.h"
#include "helpers.h"

#define TIMEOUT 60

static struct goro_chan *t_chan(size_t elem, size_t cap)
{
	int err = 1;
	struct goro_chan *c = goro_chan_make(elem, cap, &err);

	ck_assert_msg(c && err == 0, "goro_chan_make: %s", strerror(-err));
	return c;
}

/* A message: who sent it and its sequence number, plus a check word, so
 * a torn or duplicated copy is caught. */
struct msg {
	uint32_t from, seq;
	uint64_t check;
};

static uint64_t msg_check(uint32_t from, uint32_t seq)
{
	uint64_t x = ((uint64_t)from << 32 | seq) * 0x9e3779b97f4a7c15ull;
	return x ^ (x >> 29);
}

/* Ledger of delivered messages: each (from, seq) must arrive once. */
struct ledger {
	uint32_t nfrom, nseq;
	_Atomic uint8_t *seen;
	_Atomic uint64_t count, sum, bad, dup;
};

static void ledger_init(struct ledger *l, uint32_t nfrom, uint32_t nseq)
{
	memset(l, 0, sizeof(*l));
	l->nfrom = nfrom;
	l->nseq = nseq;
	l->seen = calloc((size_t)nfrom * nseq, 1);
	ck_assert_ptr_nonnull(l->seen);
}

static void ledger_note(struct ledger *l, const struct msg *m)
{
	if (m->from >= l->nfrom || m->seq >= l->nseq ||
	    m->check != msg_check(m->from, m->seq)) {
		atomic_fetch_add(&l->bad, 1);
		return;
	}
	if (atomic_fetch_add(&l->seen[(size_t)m->from * l->nseq + m->seq], 1))
		atomic_fetch_add(&l->dup, 1);
	atomic_fetch_add(&l->count, 1);
	atomic_fetch_add(&l->sum, m->check);
}

static void ledger_verify(struct ledger *l)
{
	uint64_t want_sum = 0;

	for (uint32_t f = 0; f < l->nfrom; f++)
		for (uint32_t s = 0; s < l->nseq; s++)
			want_sum += msg_check(f, s);
	ck_assert_uint_eq(atomic_load(&l->bad), 0);
	ck_assert_uint_eq(atomic_load(&l->dup), 0);
	ck_assert_uint_eq(atomic_load(&l->count), (uint64_t)l->nfrom * l->nseq);
	ck_assert_uint_eq(atomic_load(&l->sum), want_sum);
	free(l->seen);
}

/* ---- Basics ----------------------------------------------------------- */

START_TEST(test_chan_make_einval)
{
	int err = 0;

	ck_assert_ptr_null(goro_chan_make(65537, 1, &err));
	ck_assert_int_eq(err, -EINVAL);
	err = 0;
	ck_assert_ptr_null(goro_chan_make(64, SIZE_MAX / 8, &err));
	ck_assert_int_eq(err, -EINVAL);
	ck_assert_ptr_null(goro_chan_make(65537, 0, NULL));
	ck_assert_int_eq(goro_chan_send(NULL, &err), -EINVAL);
	ck_assert_int_eq(goro_chan_recv(NULL, &err, NULL), -EINVAL);
	ck_assert_int_eq(goro_chan_close(NULL), -EINVAL);
	ck_assert_int_eq(goro_select(NULL, 1, 0), -EINVAL);
	/* No case and no timeout would wait for ever. */
	ck_assert_int_eq(goro_select(NULL, 0, -1), -EINVAL);
}
END_TEST

/* From a plain thread: the buffered ring, try ops, close semantics. */
START_TEST(test_chan_buffered_close)
{
	struct goro_chan *c = t_chan(sizeof(int), 4);
	int v, i;
	bool ok;

	ck_assert_uint_eq(goro_chan_cap(c), 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(goro_chan_try_send(c, &i), 0);
	ck_assert_int_eq(goro_chan_try_send(c, &i), -EAGAIN);
	ck_assert_uint_eq(goro_chan_len(c), 4);
	ck_assert_int_eq(goro_chan_recv(c, &v, &ok), 0);
	ck_assert(ok);
	ck_assert_int_eq(v, 0);
	i = 4;
	ck_assert_int_eq(goro_chan_send(c, &i), 0);	/* wraps the ring */
	ck_assert_int_eq(goro_chan_close(c), 0);
	ck_assert_int_eq(goro_chan_close(c), -EPIPE);
	ck_assert_int_eq(goro_chan_send(c, &i), -EPIPE);
	ck_assert_int_eq(goro_chan_try_send(c, &i), -EPIPE);
	/* What was buffered is still delivered, in order. */
	for (i = 1; i <= 4; i++) {
		v = -1;
		ck_assert_int_eq(goro_chan_try_recv(c, &v, &ok), 0);
		ck_assert(ok);
		ck_assert_int_eq(v, i);
	}
	v = 77;
	ck_assert_int_eq(goro_chan_recv(c, &v, &ok), 0);
	ck_assert(!ok);
	ck_assert_int_eq(v, 0);		/* the zero value */
	ck_assert_uint_eq(goro_chan_len(c), 0);
	ck_assert_int_eq(goro_chan_free(c), 0);

	c = t_chan(sizeof(int), 0);
	ck_assert_int_eq(goro_chan_try_send(c, &i), -EAGAIN);
	ck_assert_int_eq(goro_chan_try_recv(c, &v, &ok), -EAGAIN);
	ck_assert_uint_eq(goro_chan_cap(c), 0);
	ck_assert_int_eq(goro_chan_free(c), 0);
}
END_TEST

/* ---- Rendezvous -------------------------------------------------------- */

struct rdv {
	struct goro_chan *c;
	_Atomic int sent;
	int n;
};

static void *rdv_sender(void *arg)
{
	struct rdv *r = arg;

	for (int i = 0; i < r->n; i++) {
		if (goro_chan_send(r->c, &i) != 0)
			return (void *)1;
		atomic_store(&r->sent, i + 1);
	}
	return NULL;
}

/*
 * An unbuffered send completes only when a receiver takes the element:
 * however long the main G waits (it yields) before receiving, the
 * sender's count cannot move past what was received.  Elements come out in the order they were sent.
 */
static void *rdv_main(void *arg)
{
	struct rdv *r = arg;
	goro_t h = t_spawn(rdv_sender, r);
	long bad = 0;

	for (int i = 0; i < r->n; i++) {
		int v = -1;
		bool ok = false;

		for (int k = 0; k < 3; k++)
			goro_yield();
		if (atomic_load(&r->sent) > i)	/* got ahead of us */
			bad++;
		if (goro_chan_recv(r->c, &v, &ok) != 0 || !ok || v != i)
			bad++;
	}
	if (t_join(&h))
		bad++;
	if (atomic_load(&r->sent) != r->n)
		bad++;
	return (void *)bad;
}

START_TEST(test_chan_unbuffered_rendezvous)
{
	struct rdv r = { .c = t_chan(sizeof(int), 0), .n = 2000 };

	ck_assert_ptr_null(t_run(rdv_main, &r));
	ck_assert_int_eq(goro_chan_free(r.c), 0);
}
END_TEST

/*
 * Waiters are served in arrival order.  On one M (the OneM case) a G that
 * bumped `arrived` and then ran until the main G runs again has parked
 * in its send or recv: nothing else switches in between.  So the main G
 * can line up FIFO_N senders (then receivers) one at a time, and the
 * values must come out (go in) in that order.
 */
#define FIFO_N 8

struct fifo {
	struct goro_chan *c;
	_Atomic int arrived, next_id;
	int got[FIFO_N];		/* receiver i's value */
};

static void *fifo_sender(void *arg)
{
	struct fifo *f = arg;
	int id = atomic_fetch_add(&f->next_id, 1);

	atomic_fetch_add(&f->arrived, 1);
	return (void *)(intptr_t)goro_chan_send(f->c, &id);
}

static void *fifo_receiver(void *arg)
{
	struct fifo *f = arg;
	int id = atomic_fetch_add(&f->next_id, 1);
	bool ok;

	atomic_fetch_add(&f->arrived, 1);
	f->got[id] = -1;
	if (goro_chan_recv(f->c, &f->got[id], &ok) != 0 || !ok)
		f->got[id] = -2;
	return NULL;
}

static void fifo_line_up(struct fifo *f, void *(*fn)(void *), goro_t *hs)
{
	atomic_store(&f->arrived, 0);
	atomic_store(&f->next_id, 0);
	for (int i = 0; i < FIFO_N; i++) {
		hs[i] = t_spawn(fn, f);
		while (atomic_load(&f->arrived) < i + 1)
			goro_yield();
	}
}

static void *fifo_main(void *arg)
{
	struct fifo *f = arg;
	goro_t hs[FIFO_N];
	long bad = 0;

	fifo_line_up(f, fifo_sender, hs);
	for (int i = 0; i < FIFO_N; i++) {
		int v = -1;
		bool ok;

		if (goro_chan_recv(f->c, &v, &ok) != 0 || !ok || v != i)
			bad++;
	}
	for (int i = 0; i < FIFO_N; i++)
		if (t_join(&hs[i]))
			bad++;
	fifo_line_up(f, fifo_receiver, hs);
	for (int i = 0; i < FIFO_N; i++)
		if (goro_chan_send(f->c, &i) != 0)
			bad++;
	for (int i = 0; i < FIFO_N; i++) {
		t_join(&hs[i]);
		if (f->got[i] != i)
			bad++;
	}
	return (void *)bad;
}

START_TEST(test_chan_waiters_fifo)
{
	struct fifo f = { .c = t_chan(sizeof(int), 0) };

	ck_assert_ptr_null(t_run(fifo_main, &f));
	ck_assert_int_eq(goro_chan_free(f.c), 0);
}
END_TEST

/* ---- Producers and consumers across Ms ------------------------------- */

struct pc {
	struct goro_chan *c;
	struct ledger led;
	struct goro_wg producers;
	uint32_t id;
	_Atomic uint32_t next_id;
	_Atomic long errors;
};

static void *pc_producer(void *arg)
{
	struct pc *p = arg;
	uint32_t id = atomic_fetch_add(&p->next_id, 1);

	for (uint32_t s = 0; s < p->led.nseq; s++) {
		struct msg m = { id, s, msg_check(id, s) };
		if (goro_chan_send(p->c, &m) != 0)
			atomic_fetch_add(&p->errors, 1);
	}
	goro_wg_done(&p->producers);
	return NULL;
}

static void *pc_consumer(void *arg)
{
	struct pc *p = arg;
	struct msg m;
	bool ok;

	for (;;) {
		if (goro_chan_recv(p->c, &m, &ok) != 0)
			atomic_fetch_add(&p->errors, 1);
		if (!ok)
			break;
		ledger_note(&p->led, &m);
	}
	return NULL;
}

#define PC_PRODUCERS 8
#define PC_CONSUMERS 8
#define PC_MSGS 20000

static void *pc_main(void *arg)
{
	struct pc *p = arg;
	goro_t cons[PC_CONSUMERS];

	goro_wg_add(&p->producers, PC_PRODUCERS);
	for (int i = 0; i < PC_CONSUMERS; i++)
		cons[i] = t_spawn(pc_consumer, p);
	for (int i = 0; i < PC_PRODUCERS; i++)
		ck_assert_int_eq(goro_spawn(NULL, pc_producer, p, NULL), 0);
	goro_wg_wait(&p->producers);
	ck_assert_int_eq(goro_chan_close(p->c), 0);
	for (int i = 0; i < PC_CONSUMERS; i++)
		t_join(&cons[i]);
	return NULL;
}

static const size_t pc_caps[] = { 0, 1, 64 };

START_TEST(test_chan_mpmc_exactly_once)
{
	struct pc p = { .c = t_chan(sizeof(struct msg), pc_caps[_i]) };

	ledger_init(&p.led, PC_PRODUCERS, PC_MSGS);
	t_run(pc_main, &p);
	ck_assert_int_eq(atomic_load(&p.errors), 0);
	ledger_verify(&p.led);
	ck_assert_int_eq(goro_chan_free(p.c), 0);
}
END_TEST

/* ---- Close wakes every waiter --------------------------------------- */

#define CW_N 32

struct cw {
	struct goro_chan *empty, *full;
	_Atomic int arrived, recv_closed, send_epipe, sel_closed, other;
};

static void *cw_receiver(void *arg)
{
	struct cw *w = arg;
	uint64_t v = 99;
	bool ok = true;

	atomic_fetch_add(&w->arrived, 1);
	if (goro_chan_recv(w->empty, &v, &ok) == 0 && !ok && v == 0)
		atomic_fetch_add(&w->recv_closed, 1);
	else
		atomic_fetch_add(&w->other, 1);
	return NULL;
}

static void *cw_sender(void *arg)
{
	struct cw *w = arg;
	uint64_t v = 1;

	atomic_fetch_add(&w->arrived, 1);
	if (goro_chan_send(w->full, &v) == -EPIPE)
		atomic_fetch_add(&w->send_epipe, 1);
	else
		atomic_fetch_add(&w->other, 1);
	return NULL;
}

/* Waits in select on both channels; `empty` is closed first. */
static void *cw_selector(void *arg)
{
	struct cw *w = arg;
	uint64_t in = 99, out = 2;
	struct goro_select_case cs[2] = {
		{ .chan = w->full, .op = GORO_SELECT_SEND, .elem = &out },
		{ .chan = w->empty, .op = GORO_SELECT_RECV, .elem = &in },
	};

	atomic_fetch_add(&w->arrived, 1);
	if (goro_select(cs, 2, -1) == 1 && !cs[1].ok && in == 0)
		atomic_fetch_add(&w->sel_closed, 1);
	else
		atomic_fetch_add(&w->other, 1);
	return NULL;
}

static void *cw_main(void *arg)
{
	struct cw *w = arg;
	goro_t hs[3 * CW_N];

	for (int i = 0; i < CW_N; i++) {
		hs[3 * i] = t_spawn(cw_receiver, w);
		hs[3 * i + 1] = t_spawn(cw_sender, w);
		hs[3 * i + 2] = t_spawn(cw_selector, w);
	}
	/* Let them all reach their wait (they count before waiting). */
	while (atomic_load(&w->arrived) < 3 * CW_N + 2)
		goro_sleep(1000000);
	goro_sleep(20000000);
	ck_assert_int_eq(goro_chan_close(w->empty), 0);
	ck_assert_int_eq(goro_chan_close(w->full), 0);
	for (int i = 0; i < 3 * CW_N; i++)
		t_join(&hs[i]);
	return NULL;
}

START_TEST(test_chan_close_wakes_all)
{
	struct cw w = { .empty = t_chan(8, 0), .full = t_chan(8, 1) };
	pthread_t th[2];
	uint64_t v = 5;
	bool ok;

	ck_assert_int_eq(goro_chan_send(w.full, &v), 0);	/* now full */
	/* Two plain threads wait too: a receiver and a selector. */
	ck_assert_int_eq(pthread_create(&th[0], NULL, cw_receiver, &w), 0);
	ck_assert_int_eq(pthread_create(&th[1], NULL, cw_selector, &w), 0);
	t_run(cw_main, &w);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&w.other), 0);
	ck_assert_int_eq(atomic_load(&w.recv_closed), CW_N + 1);
	ck_assert_int_eq(atomic_load(&w.sel_closed), CW_N + 1);
	ck_assert_int_eq(atomic_load(&w.send_epipe), CW_N);
	/* The element buffered before the close is still there. */
	ck_assert_int_eq(goro_chan_recv(w.full, &v, &ok), 0);
	ck_assert(ok);
	ck_assert_uint_eq(v, 5);
	ck_assert_int_eq(goro_chan_free(w.empty), 0);
	ck_assert_int_eq(goro_chan_free(w.full), 0);
}
END_TEST

/* ---- Plain threads and Gs ------------------------------------------- */

#define PT_THREADS 3
#define PT_MSGS 4000

struct pt {
	struct goro_chan *to_g, *to_thread;
	struct ledger from_threads, from_gs;
	_Atomic uint32_t tid, gid;
	_Atomic long errors;
};

/* One side of the exchange: a plain thread sends first, a G receives
 * first; each sends PT_MSGS and notes what it receives in `led`. */
static void pt_loop(struct pt *p, uint32_t id, bool send_first,
		    struct goro_chan *out_c, struct goro_chan *in_c,
		    struct ledger *led)
{
	for (uint32_t s = 0; s < 2 * PT_MSGS; s++) {
		struct msg m = { id, s / 2, msg_check(id, s / 2) };
		bool ok;

		if ((s % 2 == 0) == send_first) {
			if (goro_chan_send(out_c, &m) != 0)
				atomic_fetch_add(&p->errors, 1);
		} else if (goro_chan_recv(in_c, &m, &ok) != 0 || !ok) {
			atomic_fetch_add(&p->errors, 1);
		} else {
			ledger_note(led, &m);
		}
	}
}

static void *pt_thread(void *arg)
{
	struct pt *p = arg;

	pt_loop(p, atomic_fetch_add(&p->tid, 1), true, p->to_g, p->to_thread,
		&p->from_gs);
	return NULL;
}

static void *pt_g(void *arg)
{
	struct pt *p = arg;

	pt_loop(p, atomic_fetch_add(&p->gid, 1), false, p->to_thread, p->to_g,
		&p->from_threads);
	return NULL;
}

/* Plain threads send to Gs and receive from Gs over unbuffered channels:
 * each side blocks (futex or park) while the other runs. */
START_TEST(test_chan_pthread_g_both_ways)
{
	struct pt p = { .to_g = t_chan(sizeof(struct msg), 0),
			.to_thread = t_chan(sizeof(struct msg), 0) };
	pthread_t th[PT_THREADS];
	goro_t gs[PT_THREADS];

	ledger_init(&p.from_threads, PT_THREADS, PT_MSGS);
	ledger_init(&p.from_gs, PT_THREADS, PT_MSGS);
	for (int i = 0; i < PT_THREADS; i++)
		gs[i] = t_spawn(pt_g, &p);
	for (int i = 0; i < PT_THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, pt_thread, &p), 0);
	for (int i = 0; i < PT_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < PT_THREADS; i++)
		t_join(&gs[i]);
	ck_assert_int_eq(atomic_load(&p.errors), 0);
	ledger_verify(&p.from_threads);
	ledger_verify(&p.from_gs);
	goro_chan_free(p.to_g);
	goro_chan_free(p.to_thread);
}
END_TEST

/* ---- Select ----------------------------------------------------------- */

START_TEST(test_select_default_and_einval)
{
	struct goro_chan *c = t_chan(sizeof(int), 1);
	int v = 1;
	struct goro_select_case cs[2] = {
		{ .chan = c, .op = GORO_SELECT_RECV, .elem = &v },
		{ .chan = NULL, .op = GORO_SELECT_SEND },	/* never ready */
	};

	ck_assert_int_eq(goro_select(cs, 2, 0), -EAGAIN);
	cs[0].op = 7;
	ck_assert_int_eq(goro_select(cs, 2, 0), -EINVAL);
	cs[0].op = GORO_SELECT_SEND;
	cs[0].elem = NULL;
	ck_assert_int_eq(goro_select(cs, 1, 0), -EINVAL);
	cs[0].elem = &v;
	ck_assert_int_eq(goro_select(cs, 2, 0), 0);	/* room in the buffer */
	ck_assert_int_eq(cs[0].err, 0);
	ck_assert_int_eq(goro_select(cs, 2, 0), -EAGAIN);	/* now full */
	/* Closed: a send case fires with -EPIPE, a recv case with ok. */
	ck_assert_int_eq(goro_chan_close(c), 0);
	ck_assert_int_eq(goro_select(cs, 1, 0), 0);
	ck_assert_int_eq(cs[0].err, -EPIPE);
	cs[0].op = GORO_SELECT_RECV;
	v = 0;
	ck_assert_int_eq(goro_select(cs, 1, -1), 0);
	ck_assert(cs[0].ok);
	ck_assert_int_eq(v, 1);
	v = 5;
	ck_assert_int_eq(goro_select(cs, 1, -1), 0);
	ck_assert(!cs[0].ok);
	ck_assert_int_eq(v, 0);
	goro_chan_free(c);
}
END_TEST

#define FAIR_CASES 4
#define FAIR_ROUNDS 40000

static void *fair_main(void *arg)
{
	long *counts = arg;
	struct goro_chan *c[FAIR_CASES];
	struct goro_select_case cs[FAIR_CASES];
	int vals[FAIR_CASES];

	for (int i = 0; i < FAIR_CASES; i++) {
		c[i] = t_chan(sizeof(int), 1);
		ck_assert_int_eq(goro_chan_send(c[i], &i), 0);
		cs[i] = (struct goro_select_case){
			.chan = c[i], .op = GORO_SELECT_RECV, .elem = &vals[i] };
	}
	for (int r = 0; r < FAIR_ROUNDS; r++) {
		int k = goro_select(cs, FAIR_CASES, -1);

		if (k < 0 || k >= FAIR_CASES || vals[k] != k || !cs[k].ok) {
			counts[FAIR_CASES]++;
			continue;
		}
		counts[k]++;
		goro_chan_send(c[k], &k);	/* every case stays ready */
	}
	for (int i = 0; i < FAIR_CASES; i++)
		goro_chan_free(c[i]);
	return NULL;
}

/*
 * With every case ready, each of the 4 is chosen with p = 1/4 per round.
 * Over 40,000 rounds a count is Binomial(40000, 1/4): mean 10,000, sd
 * 86.6.  We fail if a count is more than 6 sd from the mean (probability
 * about 2e-9 per case) or if Pearson's chi-square (3 degrees of freedom)
 * exceeds 40 (p about 1e-8).  A select that always took the first ready
 * case, or a biased shuffle, misses both by far.
 */
START_TEST(test_select_fairness)
{
	long counts[FAIR_CASES + 1] = { 0 };
	double mean = FAIR_ROUNDS / (double)FAIR_CASES;
	double sd = sqrt(FAIR_ROUNDS * (1.0 / FAIR_CASES) * (1 - 1.0 / FAIR_CASES));
	double chi2 = 0;

	t_run(fair_main, counts);
	ck_assert_int_eq(counts[FAIR_CASES], 0);
	for (int i = 0; i < FAIR_CASES; i++) {
		ck_assert_msg(fabs(counts[i] - mean) < 6 * sd,
			      "case %d chosen %ld times of %d", i, counts[i], FAIR_ROUNDS);
		chi2 += (counts[i] - mean) * (counts[i] - mean) / mean;
	}
	ck_assert_msg(chi2 < 40, "chi-square %f", chi2);
}
END_TEST

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *timeout_main(void *arg)
{
	struct goro_chan *c = arg;
	int v;
	struct goro_select_case cs = { .chan = c, .op = GORO_SELECT_RECV, .elem = &v };
	int64_t t0 = mono_ns();
	int ret = goro_select(&cs, 1, 20000000);
	int64_t dt = mono_ns() - t0;

	if (ret != -ETIMEDOUT)
		return (void *)(intptr_t)(ret == 0 ? 1000 : ret);
	if (dt < 20000000)
		return (void *)2000;	/* returned before the deadline */
	/* No case at all: a plain sleep that times out. */
	if (goro_select(NULL, 0, 1000000) != -ETIMEDOUT)
		return (void *)3000;
	return NULL;
}

/* The timeout fires (not early) on a G and on a plain thread, and the
 * plain thread's errno is left alone. */
START_TEST(test_select_timeout_fires)
{
	struct goro_chan *c = t_chan(sizeof(int), 0);

	ck_assert_ptr_null(t_run(timeout_main, c));
	errno = 0;
	ck_assert_ptr_null(timeout_main(c));
	ck_assert_int_eq(errno, 0);	/* the goro_ API never writes errno */
	goro_chan_free(c);
}
END_TEST

/*
 * A receiver that selects with a very short timeout against a sender that
 * blocks: timeouts and hand-offs race all the time.  A message is
 * delivered exactly once, and a select that timed out took nothing.
 */
#define RACE_MSGS 100000

struct race {
	struct goro_chan *c[2];
	struct ledger led;
	_Atomic long errors;
	_Atomic long timeouts;
};

static void *race_sender(void *arg)
{
	struct race *r = arg;

	for (uint32_t s = 0; s < RACE_MSGS; s++) {
		struct msg m = { s & 1, s, msg_check(s & 1, s) };
		if (goro_chan_send(r->c[s & 1], &m) != 0)
			atomic_fetch_add(&r->errors, 1);
	}
	return NULL;
}

static void *race_receiver(void *arg)
{
	struct race *r = arg;
	struct msg m[2];
	struct goro_select_case cs[2] = {
		{ .chan = r->c[0], .op = GORO_SELECT_RECV, .elem = &m[0] },
		{ .chan = r->c[1], .op = GORO_SELECT_RECV, .elem = &m[1] },
	};
	uint32_t got = 0;

	while (got < RACE_MSGS) {
		int k = goro_select(cs, 2, 2000 + (got % 7) * 1000);

		if (k == -ETIMEDOUT) {
			atomic_fetch_add(&r->timeouts, 1);
			continue;
		}
		if (k < 0 || !cs[k].ok) {
			atomic_fetch_add(&r->errors, 1);
			break;
		}
		/* Remap to the ledger's (from, seq) grid. */
		if (m[k].from != (uint32_t)k)
			atomic_fetch_add(&r->errors, 1);
		ledger_note(&r->led, &m[k]);
		got++;
	}
	return NULL;
}

static void *race_main(void *arg)
{
	struct race *r = arg;
	goro_t a = t_spawn(race_sender, r), b = t_spawn(race_receiver, r);

	t_join(&a);
	t_join(&b);
	return NULL;
}

START_TEST(test_select_timeout_race_exactly_once)
{
	struct race r = { .c = { t_chan(sizeof(struct msg), 0),
				 t_chan(sizeof(struct msg), 0) } };
	uint64_t sum = 0;

	/* from = seq & 1, so use a ledger of 2 x RACE_MSGS and check the
	 * sum of what was possible by hand. */
	ledger_init(&r.led, 2, RACE_MSGS);
	t_run(race_main, &r);
	ck_assert_int_eq(atomic_load(&r.errors), 0);
	ck_assert_uint_eq(atomic_load(&r.led.bad), 0);
	ck_assert_uint_eq(atomic_load(&r.led.dup), 0);
	ck_assert_uint_eq(atomic_load(&r.led.count), RACE_MSGS);
	for (uint32_t s = 0; s < RACE_MSGS; s++)
		sum += msg_check(s & 1, s);
	ck_assert_uint_eq(atomic_load(&r.led.sum), sum);
	free(r.led.seen);
	goro_chan_free(r.c[0]);
	goro_chan_free(r.c[1]);
}
END_TEST

/*
 * Select on both sides: N Gs select-send each message on one of several
 * unbuffered channels, M Gs select-receive on all of them (plus, for a
 * plain thread, the same).  Many cases (more than fit on the stack) and a
 * channel named twice in one select.
 */
#define SS_CHANS 20
#define SS_SENDERS 4
#define SS_MSGS 10000

struct ss {
	struct goro_chan *c[SS_CHANS];
	struct ledger led;
	struct goro_wg senders;
	_Atomic uint32_t next_id;
	_Atomic long errors;
};

static void *ss_sender(void *arg)
{
	struct ss *p = arg;
	uint32_t id = atomic_fetch_add(&p->next_id, 1);
	struct goro_select_case cs[SS_CHANS + 1];
	struct msg m;

	for (int i = 0; i < SS_CHANS; i++)
		cs[i] = (struct goro_select_case){
			.chan = p->c[i], .op = GORO_SELECT_SEND, .elem = &m };
	cs[SS_CHANS] = cs[0];	/* the same channel twice */
	for (uint32_t s = 0; s < SS_MSGS; s++) {
		int k;

		m = (struct msg){ id, s, msg_check(id, s) };
		k = goro_select(cs, SS_CHANS + 1, -1);
		if (k < 0 || cs[k].err)
			atomic_fetch_add(&p->errors, 1);
	}
	goro_wg_done(&p->senders);
	return NULL;
}

static void *ss_receiver(void *arg)
{
	struct ss *p = arg;
	struct goro_select_case cs[SS_CHANS];
	struct msg m[SS_CHANS];
	int open = SS_CHANS;

	for (int i = 0; i < SS_CHANS; i++)
		cs[i] = (struct goro_select_case){
			.chan = p->c[i], .op = GORO_SELECT_RECV, .elem = &m[i] };
	while (open > 0) {
		int k = goro_select(cs, SS_CHANS, -1);

		if (k < 0) {
			atomic_fetch_add(&p->errors, 1);
			break;
		}
		if (!cs[k].ok) {
			cs[k].chan = NULL;	/* closed: stop selecting on it */
			open--;
			continue;
		}
		ledger_note(&p->led, &m[k]);
	}
	return NULL;
}

static void *ss_main(void *arg)
{
	struct ss *p = arg;
	goro_t rs[3];
	pthread_t th;

	goro_wg_add(&p->senders, SS_SENDERS);
	for (int i = 0; i < 3; i++)
		rs[i] = t_spawn(ss_receiver, p);
	ck_assert_int_eq(pthread_create(&th, NULL, ss_receiver, p), 0);
	for (int i = 0; i < SS_SENDERS; i++)
		ck_assert_int_eq(goro_spawn(NULL, ss_sender, p, NULL), 0);
	goro_wg_wait(&p->senders);
	for (int i = 0; i < SS_CHANS; i++)
		ck_assert_int_eq(goro_chan_close(p->c[i]), 0);
	for (int i = 0; i < 3; i++)
		t_join(&rs[i]);
	pthread_join(th, NULL);
	return NULL;
}

START_TEST(test_select_many_cases_exactly_once)
{
	struct ss p = { 0 };

	for (int i = 0; i < SS_CHANS; i++)
		p.c[i] = t_chan(sizeof(struct msg), 0);
	ledger_init(&p.led, SS_SENDERS, SS_MSGS);
	t_run(ss_main, &p);
	ck_assert_int_eq(atomic_load(&p.errors), 0);
	ledger_verify(&p.led);
	for (int i = 0; i < SS_CHANS; i++)
		ck_assert_int_eq(goro_chan_free(p.c[i]), 0);
}
END_TEST

/* A plain thread's select times out, and it is woken by a G's send;
 * then the reverse, with the largest timeout (no overflow). */
static void *pts_g(void *arg)
{
	struct goro_chan *c = arg;
	int v = 42;

	goro_sleep(30000000);
	return (void *)(intptr_t)goro_chan_send(c, &v);
}

/* A G's select with the largest timeout, woken by a plain thread. */
static void *pts_recv_g(void *arg)
{
	struct goro_chan *c = arg;
	int v = 0;
	struct goro_select_case cs = { .chan = c, .op = GORO_SELECT_RECV, .elem = &v };

	if (goro_select(&cs, 1, INT64_MAX) != 0 || !cs.ok)
		return (void *)-1;
	return (void *)(intptr_t)v;
}

START_TEST(test_select_pthread_timeout_and_wake)
{
	struct goro_chan *c = t_chan(sizeof(int), 0);
	int v = 0;
	struct goro_select_case cs = { .chan = c, .op = GORO_SELECT_RECV, .elem = &v };
	goro_t h;

	ck_assert_int_eq(goro_select(&cs, 1, 1000000), -ETIMEDOUT);
	h = t_spawn(pts_g, c);
	ck_assert_int_eq(goro_select(&cs, 1, INT64_MAX), 0);
	ck_assert(cs.ok);
	ck_assert_int_eq(v, 42);
	ck_assert_ptr_null(t_join(&h));
	h = t_spawn(pts_recv_g, c);
	v = 43;
	ck_assert_int_eq(goro_chan_send(c, &v), 0);
	ck_assert_int_eq((intptr_t)t_join(&h), 43);
	goro_chan_free(c);
}
END_TEST

static Suite *chan_suite(void)
{
	Suite *s = suite_create("chan");
	TCase *tc;

	tc = t_tcase(s, "Core", t_setup_2, TIMEOUT);
	tcase_add_test(tc, test_chan_make_einval);
	tcase_add_test(tc, test_chan_buffered_close);
	tcase_add_test(tc, test_chan_unbuffered_rendezvous);
	tcase_add_loop_test(tc, test_chan_mpmc_exactly_once, 0, 3);
	tcase_add_test(tc, test_chan_close_wakes_all);
	tcase_add_test(tc, test_chan_pthread_g_both_ways);

	tc = t_tcase(s, "OneM", t_setup_1, TIMEOUT);
	tcase_add_test(tc, test_chan_unbuffered_rendezvous);
	tcase_add_test(tc, test_chan_waiters_fifo);
	tcase_add_loop_test(tc, test_chan_mpmc_exactly_once, 0, 3);

	tc = t_tcase(s, "Select", t_setup_2, TIMEOUT);
	tcase_add_test(tc, test_select_default_and_einval);
	tcase_add_test(tc, test_select_fairness);
	tcase_add_test(tc, test_select_timeout_fires);
	tcase_add_test(tc, test_select_timeout_race_exactly_once);
	tcase_add_test(tc, test_select_many_cases_exactly_once);
	tcase_add_test(tc, test_select_pthread_timeout_and_wake);
	return s;
}

int main(void)
{
	return t_main(chan_suite());
}
