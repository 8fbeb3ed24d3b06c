/*
 * uring-probe: measures what goro's ring design pays for, on the running
 * kernel.  Results go to kernel-notes/io_uring.md ("Measured costs").
 *
 *   enter_1nop      one io_uring_enter that submits 1 NOP and waits for it
 *   enter_32nop     one io_uring_enter that submits 32 NOPs and waits for all
 *   msg_ring_wake   one-way latency of waking a thread asleep in
 *                   io_uring_enter with IORING_OP_MSG_RING from another
 *                   thread's ring (half of a ping-pong round trip)
 *   futex_wake      the same ping-pong over a futex, for scale
 *   getppid         one plain system call, for scale
 *
 * Each figure is the median of RUNS runs and printed as `name value unit`.
 * Rings are created the way a goro M creates its own: on the thread that
 * uses it, with SINGLE_ISSUER|DEFER_TASKRUN where the kernel takes them.
 *
 * Usage: uring-probe [--quick]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RUNS 5

static int enter_iters = 100000;
static int wake_iters = 20000;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The setup flags of a goro M's ring, dropping the ones this kernel
 * refuses. */
static int ring_init(struct io_uring *ring, unsigned entries)
{
	struct io_uring_params p;
	unsigned flags[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		0,
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = flags[i];
		ret = io_uring_queue_init_params(entries, ring, &p);
		if (ret == 0)
			return 0;
	}
	return ret;
}

/* ns per io_uring_enter that submits `batch` NOPs and waits for them. */
static double enter_cost(struct io_uring *ring, int batch, int iters)
{
	struct io_uring_cqe *cqe;
	int64_t t0 = now_ns();

	for (int i = 0; i < iters; i++) {
		for (int j = 0; j < batch; j++)
			io_uring_prep_nop(io_uring_get_sqe(ring));
		int ret = io_uring_submit_and_wait(ring, batch);
		if (ret != batch) {
			fprintf(stderr, "uring-probe: submit_and_wait: %d\n", ret);
			exit(1);
		}
		unsigned head, seen = 0;
		io_uring_for_each_cqe(ring, head, cqe) {
			if (cqe->res != 0) {
				fprintf(stderr, "uring-probe: NOP res %d\n", cqe->res);
				exit(1);
			}
			seen++;
		}
		io_uring_cq_advance(ring, seen);
		if ((int)seen != batch) {
			fprintf(stderr, "uring-probe: %u of %d CQEs\n", seen, batch);
			exit(1);
		}
	}
	return (double)(now_ns() - t0) / iters;
}

/* ----- MSG_RING ping-pong ------------------------------------------ */

struct pp_side {
	struct io_uring ring;
	_Atomic int ring_fd;	/* -1 until the ring exists */
	int cpu;
};

static struct pp_side sides[2];
static pthread_barrier_t pp_barrier;
static int pp_mode;		/* 0 MSG_RING, 1 futex */
static _Atomic uint32_t fut[2];

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % CPU_SETSIZE, &set);
	/* Best effort: with one CPU both sides share it. */
	sched_setaffinity(0, sizeof(set), &set);
}

static void msg_send(struct pp_side *self, int target_fd, uint64_t data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring);

	io_uring_prep_msg_ring(sqe, target_fd, 0, data, 0);
	/* No CQE for the sender on success (kernel-facts 5.5). */
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	int ret = io_uring_submit(&self->ring);
	if (ret != 1) {
		fprintf(stderr, "uring-probe: MSG_RING submit: %d\n", ret);
		exit(1);
	}
}

static uint64_t msg_wait(struct pp_side *self)
{
	struct io_uring_cqe *cqe;
	int ret;

	do
		ret = io_uring_wait_cqe(&self->ring, &cqe);
	while (ret == -EINTR);
	if (ret < 0 || cqe->res < 0) {
		fprintf(stderr, "uring-probe: MSG_RING wait: %d/%d\n", ret,
			ret < 0 ? 0 : cqe->res);
		exit(1);
	}
	uint64_t data = cqe->user_data;
	io_uring_cqe_seen(&self->ring, cqe);
	return data;
}

/* Wake-ups the kernel lost: a FUTEX_WAIT that slept through its 100 ms
 * timeout although the word had changed and FUTEX_WAKE had been called.
 * Should be 0; it is printed because this kernel has shown such losses. */
static _Atomic uint64_t futex_lost;

static void futex_wait_for(_Atomic uint32_t *f, uint32_t val)
{
	struct timespec ts = { 0, 100000000 };
	uint32_t cur;

	while ((cur = atomic_load(f)) != val) {
		long r = syscall(SYS_futex, f, FUTEX_WAIT_PRIVATE, cur, &ts,
				 NULL, 0);
		if (r < 0 && errno == ETIMEDOUT && atomic_load(f) != cur)
			atomic_fetch_add(&futex_lost, 1);
	}
}

static void futex_set(_Atomic uint32_t *f, uint32_t val)
{
	atomic_store(f, val);
	syscall(SYS_futex, f, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *pp_thread(void *arg)
{
	int me = (int)(intptr_t)arg, other = 1 - me;
	struct pp_side *self = &sides[me];

	pin(self->cpu);
	if (pp_mode == 0) {
		int ret = ring_init(&self->ring, 8);
		if (ret < 0) {
			fprintf(stderr, "uring-probe: ring: %s\n", strerror(-ret));
			exit(1);
		}
		atomic_store(&self->ring_fd, self->ring.ring_fd);
	}
	pthread_barrier_wait(&pp_barrier);
	for (int i = 0; i < wake_iters; i++) {
		if (pp_mode == 0) {
			if (me == 0) {
				msg_send(self, atomic_load(&sides[other].ring_fd), i);
				if (msg_wait(self) != (uint64_t)i)
					exit(1);
			} else {
				uint64_t d = msg_wait(self);
				msg_send(self, atomic_load(&sides[other].ring_fd), d);
			}
		} else {
			if (me == 0) {
				futex_set(&fut[1], i + 1);
				futex_wait_for(&fut[0], i + 1);
			} else {
				futex_wait_for(&fut[1], i + 1);
				futex_set(&fut[0], i + 1);
			}
		}
	}
	pthread_barrier_wait(&pp_barrier);
	if (pp_mode == 0)
		io_uring_queue_exit(&self->ring);
	return NULL;
}

/* One-way wake latency in ns: half a round trip between two threads, each
 * asleep in the kernel until the other wakes it. */
static double pingpong(int mode, int cpu0, int cpu1)
{
	pthread_t t[2];
	int64_t t0, t1;

	pp_mode = mode;
	atomic_store(&fut[0], 0);
	atomic_store(&fut[1], 0);
	sides[0].cpu = cpu0;
	sides[1].cpu = cpu1;
	pthread_barrier_init(&pp_barrier, NULL, 3);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, pp_thread, (void *)(intptr_t)i);
	pthread_barrier_wait(&pp_barrier);
	t0 = now_ns();
	pthread_barrier_wait(&pp_barrier);
	t1 = now_ns();
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&pp_barrier);
	return (double)(t1 - t0) / wake_iters / 2;
}

/* Prints the median one-way wake latency between CPU 0 and cpu1. */
static void report_wake(const char *name, int mode, int cpu1)
{
	double v[RUNS];

	for (int i = 0; i < RUNS; i++)
		v[i] = pingpong(mode, 0, cpu1);
	printf("%s %.1f us\n", name, median(v, RUNS) / 1000);
}

int main(int argc, char **argv)
{
	struct io_uring ring;
	double v[RUNS];
	int ret, ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);

	if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
		enter_iters = 10000;
		wake_iters = 2000;
	}
	for (int i = 0; i < RUNS; i++) {
		int64_t t0 = now_ns();
		for (int j = 0; j < enter_iters; j++)
			syscall(SYS_getppid);
		v[i] = (double)(now_ns() - t0) / enter_iters;
	}
	printf("baseline_syscall_getppid %.0f ns\n", median(v, RUNS));
	ret = ring_init(&ring, 64);
	if (ret < 0) {
		fprintf(stderr, "uring-probe: io_uring unavailable: %s\n",
			strerror(-ret));
		return 77;
	}
	for (int i = 0; i < RUNS; i++)
		v[i] = enter_cost(&ring, 1, enter_iters);
	printf("enter_1nop %.0f ns\n", median(v, RUNS));
	for (int i = 0; i < RUNS; i++)
		v[i] = enter_cost(&ring, 32, enter_iters / 8);
	double e32 = median(v, RUNS);
	printf("enter_32nop %.0f ns\n", e32);
	printf("enter_32nop_per_op %.0f ns\n", e32 / 32);
	io_uring_queue_exit(&ring);

	int other = ncpu > 1 ? 1 : 0;
	report_wake("msg_ring_wake_cross_cpu", 0, other);
	report_wake("msg_ring_wake_same_cpu", 0, 0);
	report_wake("baseline_futex_wake_cross_cpu", 1, other);
	report_wake("baseline_futex_wake_same_cpu", 1, 0);
	printf("futex_lost_wakeups %llu count\n",
	       (unsigned long long)atomic_load(&futex_lost));
	return 0;
}
