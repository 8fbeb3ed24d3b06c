/*
 * goro-echo: a TCP echo server on goro, one G per connection.
 *
 * The accepting G takes connections with goro_accept4 and spawns a G for
 * each; that G reads with goro_recv and writes back everything it read
 * with goro_send, until the peer closes.  All the waiting is the
 * runtime's: the code reads like a blocking thread-per-connection server.
 *
 * Usage: goro-echo --port N [--procs P]
 * With --port 0 the kernel picks a free port.  Prints
 * "goro-echo: listening on 127.0.0.1:N (io BACKEND, P procs)" once it
 * listens, then runs until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "goro.h"

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];

	for (;;) {
		ssize_t n = goro_recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = goro_send(fd, buf + off, (size_t)(n - off),
					      MSG_NOSIGNAL);
			if (w <= 0)
				goto out;
			off += w;
		}
	}
out:
	goro_close(fd);
	return NULL;
}

static void *serve(void *arg)
{
	int port = (int)(intptr_t)arg, one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct goro_stats st;
	int lfd = goro_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
		fprintf(stderr, "goro-echo: port %d: %s\n", port, strerror(errno));
		return (void *)1;
	}
	goro_stats(&st, sizeof(st));
	printf("goro-echo: listening on 127.0.0.1:%d (io %s, %llu procs)\n",
	       ntohs(sa.sin_port),
	       goro_io_backend() == GORO_IO_URING ? "uring" : "epoll",
	       (unsigned long long)st.maxprocs);
	fflush(stdout);
	for (;;) {
		int fd = goro_accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
				goro_sleep(10 * 1000000);	/* back off */
			else if (e != ECONNABORTED && e != EPERM)
				fprintf(stderr, "goro-echo: accept: %s\n", strerror(e));
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (goro_spawn(NULL, serve_conn, (void *)(intptr_t)fd, NULL) < 0)
			goro_close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct goro_config cfg = { 0 };
	int port = 0, r;
	void *res = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
			port = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--procs") == 0 && i + 1 < argc) {
			cfg.maxprocs = (unsigned)atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: goro-echo --port N [--procs P]\n");
			return 2;
		}
	}
	if (port < 0 || port > 65535) {
		fprintf(stderr, "usage: goro-echo --port N [--procs P]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	r = goro_init(&cfg);
	if (r < 0) {
		fprintf(stderr, "goro-echo: goro_init: %s\n", strerror(-r));
		return 1;
	}
	r = goro_run(serve, (void *)(intptr_t)port, &res);
	if (r < 0) {
		fprintf(stderr, "goro-echo: goro_run: %s\n", strerror(-r));
		return 1;
	}
	return res ? 1 : 0;
}
