/*
 * runtime.c: starting and stopping the runtime, settings from the
 * environment, stats, and fatal errors.
 *
 * Environment (read once, in goro_init; documented in README):
 *   GORO_MAXPROCS=N        Ps (Gs running at once); default: usable CPUs
 *   GORO_STACK_SIZE=N[KMG] largest stack of a G; default 1M
 *   GORO_DEBUG=k=v,...     schedtrace=MS (a trace line every MS ms),
 *                          scheddetail=1, verbose=1 (one line per choice)
 *   GORO_STACK_MODE, GORO_IO, GORO_RING_ENTRIES: see stack.c, netpoll.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define sched goro__sched

#define DEFAULT_STACK_SIZE ((size_t)1 << 20)
#define MAX_PROCS 1024
#define MAX_MS 10000

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER; /* init/shutdown */
static bool verbose;

int goro__write_stderr(const char *s)
{
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = write(2, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

void goro__throw(const char *msg)
{
	char buf[512];
	struct goro_m *mp = goro__m_self();
	struct goro_g *gp = mp ? mp->curg : NULL;

	if (gp)
		snprintf(buf, sizeof buf, "goro: fatal: %s [G %llu (%s) on M %d]\n", msg,
			 (unsigned long long)gp->id, gp->name, mp->id);
	else if (mp)
		snprintf(buf, sizeof buf, "goro: fatal: %s [M %d]\n", msg, mp->id);
	else
		snprintf(buf, sizeof buf, "goro: fatal: %s\n", msg);
	goro__write_stderr(buf);
	abort();
}

void goro__log(bool always, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (!always && !verbose)
		return;
	n = snprintf(buf, sizeof buf, "goro: ");
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
	va_end(ap);
	strncat(buf, "\n", sizeof buf - strlen(buf) - 1);
	goro__write_stderr(buf);
}

/* Parses a size with an optional K/M/G suffix; returns 0 on bad input. */
static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return 0;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end == 'i' || *end == 'B')	/* accept KiB, MB... */
		end++;
	if (*end == 'B')
		end++;
	return *end ? 0 : (size_t)v;
}

/* The CPU quota of our cgroup v2, in whole CPUs rounded up, or 0 if
 * none: the smallest cpu.max along the path from our cgroup to the root. */
static unsigned cgroup_cpu_limit(void)
{
	char line[4096], path[4200];
	unsigned best = 0;
	FILE *f = fopen("/proc/self/cgroup", "r");
	char *cg = NULL;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3) == 0) {
			cg = line + 3;
			cg[strcspn(cg, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
	if (!cg)
		return 0;
	for (;;) {
		long long quota, period;
		char q[32];
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max",
			 strcmp(cg, "/") == 0 ? "" : cg);
		f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0) {
				quota = atoll(q);
				if (quota > 0 && period > 0) {
					unsigned n = (unsigned)((quota + period - 1) / period);
					if (best == 0 || n < best)
						best = n;
				}
			}
			fclose(f);
		}
		char *slash = strrchr(cg, '/');
		if (!slash || strcmp(cg, "/") == 0)
			break;
		if (slash == cg)
			cg[1] = '\0';
		else
			*slash = '\0';
	}
	return best;
}

/* GOMAXPROCS's default: the CPUs in our affinity mask, capped by the
 * cgroup CPU quota where one is set (as Go 1.25 does). */
unsigned goro__default_maxprocs(void)
{
	cpu_set_t set;
	unsigned n = 0, q;

	if (sched_getaffinity(0, sizeof set, &set) == 0)
		n = (unsigned)CPU_COUNT(&set);
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (unsigned)c : 1;
	}
	q = cgroup_cpu_limit();
	if (q > 0 && q < n)
		n = q;
	return n > MAX_PROCS ? MAX_PROCS : n;
}

static void parse_debug(void)
{
	const char *d = getenv("GORO_DEBUG");
	char buf[256], *save = NULL;

	sched.schedtrace_ms = 0;
	sched.scheddetail = false;
	verbose = false;
	if (!d)
		return;
	snprintf(buf, sizeof buf, "%s", d);
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v)
			continue;
		*v++ = '\0';
		if (strcmp(kv, "schedtrace") == 0)
			sched.schedtrace_ms = atoll(v);
		else if (strcmp(kv, "scheddetail") == 0)
			sched.scheddetail = atoi(v) != 0;
		else if (strcmp(kv, "verbose") == 0)
			verbose = atoi(v) != 0;
	}
}

static void free_ps(void)
{
	for (uint32_t i = 0; i < sched.nprocs; i++) {
		struct goro_p *pp = sched.allp[i];
		/* Keep its cached free Gs for the next start. */
		while (pp->gfree) {
			struct goro_g *gp = pp->gfree;
			pp->gfree = gp->schedlink;
			goro__g_free(NULL, gp);
		}
		free(pp);
	}
	free(sched.allp);
	sched.allp = NULL;
	sched.nprocs = 0;
}

int goro_init(const struct goro_config *cfg)
{
	unsigned nprocs = 0;
	size_t stack_size = 0;
	const char *env;
	int err;

	if (cfg) {
		for (size_t i = 0; i < sizeof cfg->reserved / sizeof cfg->reserved[0]; i++)
			if (cfg->reserved[i])
				return -EINVAL;
		if (cfg->maxprocs > MAX_PROCS)
			return -EINVAL;
		nprocs = cfg->maxprocs;
		stack_size = cfg->stack_size;
		if (stack_size && !goro__stack_class_size(stack_size, NULL))
			return -EINVAL;
	}
	pthread_mutex_lock(&init_mu);
	if (load_acquire(&sched.running)) {
		pthread_mutex_unlock(&init_mu);
		return -EALREADY;
	}
	parse_debug();
	if (!nprocs && (env = getenv("GORO_MAXPROCS")) && *env) {
		long v = strtol(env, NULL, 10);
		if (v >= 1 && v <= MAX_PROCS)
			nprocs = (unsigned)v;
		else
			goro__log(true, "ignoring GORO_MAXPROCS=%s (want 1..%d)", env, MAX_PROCS);
	}
	if (!nprocs)
		nprocs = goro__default_maxprocs();
	if (!stack_size && (env = getenv("GORO_STACK_SIZE")) && *env) {
		stack_size = parse_size(env);
		if (!stack_size || !goro__stack_class_size(stack_size, NULL)) {
			goro__log(true, "ignoring GORO_STACK_SIZE=%s", env);
			stack_size = 0;
		}
	}
	if (!stack_size)
		stack_size = DEFAULT_STACK_SIZE;
	sched.stack_size = goro__stack_class_size(stack_size, NULL);

	err = goro__stack_init(sched.stack_size);
	if (err)
		goto out;
	err = goro__io_init();
	if (err)
		goto out;

	sched.allp = calloc(nprocs, sizeof *sched.allp);
	if (!sched.allp) {
		err = -ENOMEM;
		goto out_io;
	}
	for (unsigned i = 0; i < nprocs; i++) {
		struct goro_p *pp = aligned_alloc(GORO_CACHELINE,
			(sizeof *pp + GORO_CACHELINE - 1) & ~(size_t)(GORO_CACHELINE - 1));
		if (!pp) {
			sched.nprocs = i;
			free_ps();
			err = -ENOMEM;
			goto out_io;
		}
		memset(pp, 0, sizeof *pp);
		pp->id = (int)i;
		sched.allp[i] = pp;
	}
	sched.nprocs = nprocs;
	sched.runqhead = sched.runqtail = NULL;
	store_relaxed(&sched.runqsize, 0);
	sched.midle = NULL;
	store_relaxed(&sched.nmidle, 0);
	sched.pidle = NULL;
	store_relaxed(&sched.npidle, 0);
	store_relaxed(&sched.nmspinning, 0);
	store_relaxed(&sched.mcount, 0);
	store_relaxed(&sched.n_created_nop, 0);
	sched.maxmcount = MAX_MS;
	store_relaxed(&sched.shutdown, false);
	goro__note_clear(&sched.sysmon_note);
	goro__lock(&sched.lock);
	for (unsigned i = nprocs; i-- > 0;)
		{ sched.allp[i]->status = P_IDLE; }
	for (unsigned i = nprocs; i-- > 0;) {
		struct goro_p *pp = sched.allp[i];
		pp->link = sched.pidle;
		sched.pidle = pp;
		atomic_fetch_add(&sched.npidle, 1);
	}
	goro__unlock(&sched.lock);
	err = goro__sysmon_start();
	if (err) {
		free_ps();
		goto out_io;
	}
	/* One M from the start (it sleeps until there is work), so that a
	 * process that cannot create threads learns it here, and so that
	 * there is always an M to run the global queue. */
	err = goro__newm(NULL, false);
	if (err) {
		store_relaxed(&sched.shutdown, true);
		goro__note_wakeup(&sched.sysmon_note);
		pthread_join(sched.sysmon, NULL);
		sched.sysmon_started = false;
		free_ps();
		goto out_io;
	}
	store_release(&sched.running, true);
	goro__log(false, "started: maxprocs=%u stack_size=%zu", nprocs, sched.stack_size);
	pthread_mutex_unlock(&init_mu);
	return 0;

out_io:
	goro__io_shutdown();
out:
	pthread_mutex_unlock(&init_mu);
	return err;
}

int goro__ensure_init(void)
{
	int err;

	if (goro_likely(load_acquire(&sched.running)))
		return 0;
	err = goro_init(NULL);
	return err == -EALREADY ? 0 : err;
}

int goro_shutdown(void)
{
	if (goro__m_self())
		return -EPERM;
	pthread_mutex_lock(&init_mu);
	if (!load_acquire(&sched.running)) {
		pthread_mutex_unlock(&init_mu);
		return 0;
	}
	atomic_store(&sched.shutdown, true);
	goro__m_wake_all();
	goro__note_wakeup(&sched.sysmon_note);
	if (sched.sysmon_started) {
		pthread_join(sched.sysmon, NULL);
		sched.sysmon_started = false;
	}
	goro__m_join_all();
	goro__io_shutdown();
	goro__timers_reset();
	free_ps();
	sched.runqhead = sched.runqtail = NULL;
	store_relaxed(&sched.runqsize, 0);
	goro__stack_shutdown();
	store_release(&sched.running, false);
	pthread_mutex_unlock(&init_mu);
	return 0;
}

int goro_run(void *(*fn)(void *), void *arg, void **result)
{
	goro_t h;
	int err;

	if (!fn)
		return -EINVAL;
	if (goro__g_self())
		return -EPERM;
	err = goro_spawn(&h, fn, arg, &(struct goro_spawn_opts){ .name = "main" });
	if (err)
		return err;
	return goro_join(&h, result);
}

int goro_stats(struct goro_stats *out, size_t size)
{
	struct goro_stats st;

	if (!out)
		return -EINVAL;
	memset(&st, 0, sizeof st);
	pthread_mutex_lock(&init_mu);
	if (load_acquire(&sched.running))
		goro__sched_stats(&st);
	pthread_mutex_unlock(&init_mu);
	goro__stack_stats(&st);
	memcpy(out, &st, size < sizeof st ? size : sizeof st);
	return 0;
}

unsigned goro_version(void)
{
	return GORO_VERSION_HEX;
}

const char *goro_version_string(void)
{
	return GORO_VERSION_STRING;
}
