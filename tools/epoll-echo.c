/*
 * epoll-echo: the baseline TCP echo server, plain C and epoll, no goro.
 *
 * Every thread runs its own edge-free (level-triggered) epoll loop over its
 * own SO_REUSEPORT listener on 127.0.0.1, so the kernel spreads the
 * connections across threads.  A readable connection is read once and
 * what was read is written back at once; a write that cannot finish keeps
 * the rest in a per-connection buffer and waits for EPOLLOUT.
 *
 * Usage: epoll-echo --port N [--threads T]   (T defaults to 1)
 * With --port 0 the kernel picks a free port.  Prints
 * "epoll-echo: listening on 127.0.0.1:N" once every thread listens.
 * Runs until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 4096

struct conn {
	int fd;
	size_t pending_off, pending_len;	/* unsent echo bytes */
	char buf[BUF_SIZE];
};

static int port;

static int listen_on(int p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(p),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 4096) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Writes what is pending.  Returns 0 when all is sent, 1 when the socket
 * is full, -1 on error. */
static int flush(struct conn *c)
{
	while (c->pending_len > 0) {
		ssize_t n = send(c->fd, c->buf + c->pending_off, c->pending_len,
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 1 : -1;
		}
		c->pending_off += n;
		c->pending_len -= n;
	}
	return 0;
}

/* Sends what is pending and makes the interest match: EPOLLOUT while
 * some is left, EPOLLIN once all is sent.  Closes the connection on an
 * error. */
static void send_pending(int ep, struct conn *c, bool was_waiting)
{
	struct epoll_event ev = { .data.ptr = c };
	int r = flush(c);

	if (r < 0) {
		conn_close(ep, c);
		return;
	}
	if ((r == 1) != was_waiting) {
		ev.events = r == 1 ? EPOLLOUT : EPOLLIN;
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

static void on_conn(int ep, struct conn *c, uint32_t events)
{
	if (c->pending_len > 0) {
		/* Waiting for EPOLLOUT: read nothing more until drained. */
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			send_pending(ep, c, true);
		return;
	}
	ssize_t n = recv(c->fd, c->buf, BUF_SIZE, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_close(ep, c);
		return;
	}
	if (n < 0)
		return;
	c->pending_off = 0;
	c->pending_len = n;
	send_pending(ep, c, false);
}

static void *loop(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	struct epoll_event evs[256];

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("epoll-echo: epoll");
		exit(1);
	}
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll-echo: epoll_wait");
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c) {
				on_conn(ep, c, evs[i].events);
				continue;
			}
			int fd;
			while ((fd = accept4(lfd, NULL, NULL,
					     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				int one = 1;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
				c = malloc(sizeof(*c));
				if (!c) {
					close(fd);
					continue;
				}
				c->fd = fd;
				c->pending_len = 0;
				struct epoll_event cev = { .events = EPOLLIN,
							   .data.ptr = c };
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) {
					close(fd);
					free(c);
				}
			}
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: epoll-echo --port N [--threads T]\n");
			return 2;
		}
	}
	if (port < 0 || port > 65535 || nthreads < 1) {
		fprintf(stderr, "usage: epoll-echo --port N [--threads T]\n");
		return 2;
	}
	int lfds[nthreads];
	for (int i = 0; i < nthreads; i++) {
		lfds[i] = listen_on(port);
		if (lfds[i] < 0) {
			fprintf(stderr, "epoll-echo: port %d: %s\n", port,
				strerror(errno));
			return 1;
		}
		if (port == 0) {
			/* The others share the port the kernel chose. */
			struct sockaddr_in sa;
			socklen_t len = sizeof(sa);
			getsockname(lfds[i], (struct sockaddr *)&sa, &len);
			port = ntohs(sa.sin_port);
		}
	}
	printf("epoll-echo: listening on 127.0.0.1:%d\n", port);
	fflush(stdout);
	for (int i = 1; i < nthreads; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, loop, (void *)(intptr_t)lfds[i])) {
			fprintf(stderr, "epoll-echo: pthread_create failed\n");
			return 1;
		}
	}
	loop((void *)(intptr_t)lfds[0]);
	return 0;
}
