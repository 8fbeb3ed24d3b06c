/*
 * helpers.h: t_ helpers shared by the Check suites.
 *
 * Every suite starts the runtime in a *checked* fixture (t_setup_*), so
 * that it runs in the forked child of each test: threads, rings and
 * userfaultfd descriptors must never be created before Check forks.  The
 * suites need Check's fork mode (the default); CK_FORK=no is not
 * supported, since a failed assertion on a G's thread exits the process.
 *
 * Debug a failing test:
 *   CK_RUN_SUITE=core CK_RUN_CASE=Sched gdb tests/check_core
 */
#ifndef GORO_TEST_HELPERS_H
#define GORO_TEST_HELPERS_H

#include <check.h>
#include <stddef.h>
#include <string.h>

#include "goro.h"

/* Checked fixtures: start the runtime with 1, 2 or the default Ps. */
void t_setup_1(void);
void t_setup_2(void);
void t_setup_default(void);
void t_teardown(void);

/* Runs fn(arg) as a main G and returns its result (asserts success). */
void *t_run(void *(*fn)(void *), void *arg);

/* Spawns a joinable G / joins it and returns its result (asserting). */
goro_t t_spawn(void *(*fn)(void *), void *arg);
void *t_join(goro_t *h);

/* Runs fn(arg) in a forked child with stderr captured.  Returns the
 * child's wait status; *err gets up to errlen-1 bytes of its stderr. */
int t_child(void (*fn)(void *), void *arg, char *err, size_t errlen);

/* Asserts a goro_ call's result: 0, with the errno name on failure. */
#define t_ok(call) do { int r_ = (call); \
	ck_assert_msg(r_ == 0, "%s = %d (%s)", #call, r_, r_ < 0 ? strerror(-r_) : "?"); } while (0)

/* Adds a TCase with a timeout and the runtime fixture. */
TCase *t_tcase(Suite *s, const char *name, void (*setup)(void), double timeout);

/* Runs a suite and returns the process exit status (0 = all passed). */
int t_main(Suite *s);

#endif
