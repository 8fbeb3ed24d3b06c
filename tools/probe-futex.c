/*
 * probe-futex: what an idle M's sleep and wake-up cost on this machine
 * (kernel-notes/scheduler.md).  Two threads ping-pong through a futex
 * word: each round trip is two FUTEX_WAKEs and two sleeps.  Run pinned
 * to two CPUs, to one CPU, and with spinning instead of sleeping.
 *
 *   name value unit   lines: futex_pingpong_cross_cpu, _same_cpu, spin_pingpong
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 20000

static _Atomic unsigned word;
static int spin_mode;
static int cpu_b;

static long now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof s, &s);
}

/* Waits until word == want, then sets it to next and wakes the other. */
static void step(unsigned want, unsigned next)
{
	unsigned v;
	while ((v = atomic_load(&word)) != want) {
		if (!spin_mode)
			syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
	}
	atomic_store(&word, next);
	if (!spin_mode)
		syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *other(void *arg)
{
	(void)arg;
	pin(cpu_b);
	for (int i = 0; i < ROUNDS; i++)
		step(1, 2);
	return NULL;
}

static double run(int cpu_other, int spin)
{
	pthread_t t;
	long t0;

	spin_mode = spin;
	cpu_b = cpu_other;
	atomic_store(&word, 0);
	pin(0);
	pthread_create(&t, NULL, other, NULL);
	t0 = now();
	for (int i = 0; i < ROUNDS; i++) {
		step(0, 1);
		step(2, 0);
	}
	pthread_join(t, NULL);
	return (double)(now() - t0) / ROUNDS / 2 / 1000.0;	/* one way, us */
}

int main(void)
{
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu >= 2) {
		printf("futex_wake_one_way_cross_cpu %.2f us\n", run(1, 0));
		printf("spin_handoff_one_way_cross_cpu %.3f us\n", run(1, 1));
	}
	printf("futex_wake_one_way_same_cpu %.2f us\n", run(0, 0));
	return 0;
}
