/*
 * echo-load: a closed-loop load client for TCP echo servers, plain C and
 * epoll, no goro.
 *
 * It opens N connections to 127.0.0.1:PORT.  Each connection sends a
 * message of S bytes, waits until all S bytes have come back, checks them,
 * and sends the next one, for T seconds (after a short warm-up that is not
 * counted).  Every message carries the connection's number and a sequence
 * number, so a byte lost, duplicated or delivered to the wrong connection
 * is caught.
 *
 * Usage: echo-load --port N [--conns 256] [--size 64] [--seconds 5]
 *                  [--warmup-ms 200]
 * Prints, one figure per line:
 *   requests <n> req/s
 *   p50 <x> us
 *   p99 <x> us
 *   errors <n> count
 * Exits 1 if any echo was wrong or a connection failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Latency histogram: 0.1 us buckets below 1 ms, then 10 us buckets up to
 * 1 s; anything slower lands in the last bucket. */
#define FINE_BUCKETS 10000	/* [0, 1 ms) by 100 ns */
#define COARSE_BUCKETS 100000	/* [1 ms, 1 s) by 10 us */
static uint64_t hist[FINE_BUCKETS + COARSE_BUCKETS + 1];

struct conn {
	int fd;
	uint32_t id;
	uint32_t seq;
	size_t sent, got;	/* bytes of the current message */
	int64_t t_send;
	char out[4096], in[4096];
};

static size_t msg_size = 64;
static int partial_sends;	/* connections with an unfinished send */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void record(int64_t ns)
{
	size_t b;

	if (ns < 1000000)
		b = (size_t)ns / 100;
	else if (ns < 1000000000)
		b = FINE_BUCKETS + (size_t)(ns - 1000000) / 10000;
	else
		b = FINE_BUCKETS + COARSE_BUCKETS;
	hist[b]++;
}

/* The latency (us) below which a fraction q of the samples lies. */
static double quantile(uint64_t total, double q)
{
	uint64_t want = (uint64_t)(q * (double)total), seen = 0;

	if (want >= total)
		want = total - 1;
	for (size_t b = 0; b < sizeof(hist) / sizeof(hist[0]); b++) {
		seen += hist[b];
		if (seen > want) {
			if (b < FINE_BUCKETS)
				return (b + 0.5) * 0.1;
			return 1000.0 + (b - FINE_BUCKETS + 0.5) * 10.0;
		}
	}
	return 1e6;
}

static void fill(struct conn *c)
{
	for (size_t i = 0; i < msg_size; i++)
		c->out[i] = (char)(c->id * 31 + c->seq * 7 + i);
	if (msg_size >= 8) {
		memcpy(c->out, &c->id, 4);
		memcpy(c->out + 4, &c->seq, 4);
	}
}

/* Sends what is left of the current message.  Returns -1 on error. */
static int pump_send(struct conn *c)
{
	while (c->sent < msg_size) {
		ssize_t n = send(c->fd, c->out + c->sent, msg_size - c->sent,
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -1;
			partial_sends++;
			return 0;
		}
		c->sent += n;
	}
	return 0;
}

static int connect_to(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	/* Blocking connect keeps the set-up simple; then non-blocking. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	int port = 0, nconns = 256;
	double seconds = 5;
	int64_t warmup_ns = 200000000;

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			goto usage;
		if (strcmp(argv[i], "--port") == 0)
			port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--conns") == 0)
			nconns = atoi(argv[++i]);
		else if (strcmp(argv[i], "--size") == 0)
			msg_size = (size_t)atol(argv[++i]);
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--warmup-ms") == 0)
			warmup_ns = (int64_t)atol(argv[++i]) * 1000000;
		else
			goto usage;
	}
	if (port <= 0 || port > 65535 || nconns < 1 || msg_size < 1 ||
	    msg_size > sizeof(((struct conn *)0)->out) || seconds <= 0)
		goto usage;

	struct conn *conns = calloc(nconns, sizeof(*conns));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || ep < 0) {
		perror("echo-load");
		return 1;
	}
	for (int i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		c->id = i;
		c->fd = connect_to(port);
		if (c->fd < 0) {
			fprintf(stderr, "echo-load: connect %d to port %d: %s\n",
				i, port, strerror(errno));
			return 1;
		}
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
			perror("echo-load: epoll_ctl");
			return 1;
		}
	}

	uint64_t errors = 0, done = 0;
	int64_t start = now_ns();
	int64_t t_count = start + warmup_ns;
	int64_t t_end = t_count + (int64_t)(seconds * 1e9);

	for (int i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		fill(c);
		c->t_send = now_ns();
		if (pump_send(c) < 0) {
			fprintf(stderr, "echo-load: send: %s\n", strerror(errno));
			return 1;
		}
	}
	/* Sends that did not finish are retried after each round below (with
	 * small messages and an idle socket buffer they finish at once). */
	struct epoll_event evs[512];
	int64_t now = now_ns();
	while (now < t_end) {
		int n = epoll_wait(ep, evs, 512, 100);
		if (n < 0 && errno != EINTR) {
			perror("echo-load: epoll_wait");
			return 1;
		}
		now = now_ns();
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r = recv(c->fd, c->in + c->got,
					 msg_size - c->got, 0);
			if (r <= 0) {
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				fprintf(stderr, "echo-load: conn %u: %s\n", c->id,
					r == 0 ? "closed by server" : strerror(errno));
				return 1;
			}
			c->got += r;
			if (c->got < msg_size)
				continue;
			if (memcmp(c->in, c->out, msg_size) != 0)
				errors++;
			if (c->t_send >= t_count && now <= t_end) {
				record(now - c->t_send);
				done++;
			}
			c->seq++;
			c->got = 0;
			c->sent = 0;
			fill(c);
			c->t_send = now;
			if (pump_send(c) < 0) {
				fprintf(stderr, "echo-load: send: %s\n",
					strerror(errno));
				return 1;
			}
		}
		if (partial_sends > 0) {
			partial_sends = 0;
			for (int i = 0; i < nconns; i++)
				if (conns[i].sent < msg_size &&
				    pump_send(&conns[i]) < 0)
					return 1;
		}
	}
	double secs = (double)(t_end - t_count) / 1e9;
	printf("requests %.0f req/s\n", done / secs);
	printf("p50 %.1f us\n", done ? quantile(done, 0.50) : 0.0);
	printf("p99 %.1f us\n", done ? quantile(done, 0.99) : 0.0);
	printf("errors %llu count\n", (unsigned long long)errors);
	for (int i = 0; i < nconns; i++)
		close(conns[i].fd);
	return errors || done == 0 ? 1 : 0;
usage:
	fprintf(stderr, "usage: echo-load --port N [--conns C] [--size S] "
			"[--seconds T] [--warmup-ms W]\n");
	return 2;
}
