/* helpers.c: see helpers.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static void start(unsigned maxprocs)
{
	struct goro_config cfg = { .maxprocs = maxprocs };
	int r = goro_init(maxprocs ? &cfg : NULL);
	ck_assert_msg(r == 0, "goro_init: %s", strerror(-r));
}

void t_setup_1(void)
{
	start(1);
}

void t_setup_2(void)
{
	start(2);
}

void t_setup_default(void)
{
	start(0);
}

void t_teardown(void)
{
	goro_shutdown();
}

void *t_run(void *(*fn)(void *), void *arg)
{
	void *res = NULL;
	int r = goro_run(fn, arg, &res);
	ck_assert_msg(r == 0, "goro_run: %s", strerror(-r));
	return res;
}

goro_t t_spawn(void *(*fn)(void *), void *arg)
{
	goro_t h;
	int r = goro_spawn(&h, fn, arg, NULL);

	ck_assert_msg(r == 0, "goro_spawn: %s", strerror(-r));
	return h;
}

void *t_join(goro_t *h)
{
	void *res = NULL;
	int r = goro_join(h, &res);

	ck_assert_msg(r == 0, "goro_join: %s", strerror(-r));
	return res;
}

int t_child(void (*fn)(void *), void *arg, char *err, size_t errlen)
{
	int pfd[2], status = 0;
	size_t got = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], 2);
		fn(arg);
		_exit(0);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t n = read(pfd[0], err + got, errlen - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == errlen - 1)
			break;
	}
	err[got] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

TCase *t_tcase(Suite *s, const char *name, void (*setup)(void), double timeout)
{
	TCase *tc = tcase_create(name);
	if (setup)
		tcase_add_checked_fixture(tc, setup, t_teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

int t_main(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
