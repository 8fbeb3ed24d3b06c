/*
 * bench.h: shared by the goro-bench benchmarks (tools/bench_*.c).
 *
 * Each benchmark is a function `int bench_<name>(void)` that starts the
 * runtime with the settings it needs, measures several runs, prints one
 * `name value unit` line per figure (the median of the runs), with the
 * baselines measured in the same run under names starting with
 * `baseline_`, stops the runtime and returns 0 (or non-zero on failure).
 * goro-bench runs each benchmark in a fresh process.
 */
#ifndef GORO_BENCH_H
#define GORO_BENCH_H

#include <stdbool.h>
#include <stdint.h>

/* Prints "name value unit". */
void bench_report(const char *name, double value, const char *unit);
/* Median of v[0..n) (sorts v). */
double bench_median(double *v, int n);
/* CLOCK_MONOTONIC in ns. */
int64_t bench_now(void);
/* How many runs to take the median of: GORO_BENCH_RUNS, default 5 (3 with
 * GORO_BENCH_QUICK=1). */
int bench_runs(void);
/* GORO_BENCH_QUICK=1: shorter runs for a fast report. */
bool bench_quick(void);

/* Benchmarks (one file per area). */
int bench_spawn(void);
int bench_yield(void);
int bench_pread(void);
int bench_pread_direct(void);
int bench_echo(void);
int bench_chan(void);
int bench_mutex(void);
int bench_parked(void);

#endif
