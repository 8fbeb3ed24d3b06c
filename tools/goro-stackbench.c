/*
 * goro-stackbench: what it costs to grow a stack, per design.
 *
 *   goro-stackbench [-o plot.svg] [-q]
 *
 * For each design (goro's userfaultfd handler thread, goro's in-thread
 * SIGBUS, goro's plain demand paging, and the classic per-stack mmap +
 * mprotect guard page) it grows fresh stacks to 8 KiB, 64 KiB and 1 MiB
 * in many tasks, timing each growth from inside the task, and reports the
 * median over runs of the mean microseconds per KiB grown:
 *
 *   stackgrow_<mode>_<depth> <n> us/KiB
 *
 * with the baseline baseline_stackgrow_prefaulted_<depth>: the same
 * recursion on a stack whose pages are already there (what the frames
 * themselves cost).  Then the largest number of 1 MiB stacks each design
 * reaches before failing (stackmax_<mode> <n> stacks; goro's designs stop
 * at a cap, so that the search ends in about a minute), a table (lines
 * starting with '#') and an SVG bar chart (default stackgrow.svg).
 *
 * Each goro design runs in its own child process with GORO_STACK_MODE set
 * (the mode is chosen once per process).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "goro.h"
#include "context.h"

enum { M_THREAD, M_SIGBUS, M_PLAIN, M_MMAP, NMODES };
enum { D_8K, D_64K, D_1M, NDEPTHS };

static const char *const mode_key[NMODES] = {
	"uffd_thread", "uffd_sigbus", "plain", "mmap_guard" };
static const char *const mode_env[NMODES] = {
	"uffd-thread", "uffd-sigbus", "plain", NULL };
static const char *const depth_key[NDEPTHS] = { "8k", "64k", "1m" };
static const size_t depth_bytes[NDEPTHS] = { 8 << 10, 64 << 10, 1 << 20 };
/* Stacks of the growth runs: room for 1 MiB of frames. */
#define GROW_STACK (2u << 20)
/* Tasks per run at each depth. */
static const int depth_tasks[NDEPTHS] = { 2000, 400, 40 };

#define RUNS 5
#define MAX_CAP 1000000L

static bool quick;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- The growth itself -------------------------------------------------- */

/* Frames of about 1 KiB that each write their whole buffer, as real code
 * touching its locals does. */
__attribute__((noinline)) static long grow(long left)
{
	volatile char buf[1024 - 48];

	for (size_t i = 0; i < sizeof buf; i += 64)
		buf[i] = (char)left;
	if (left <= (long)sizeof buf)
		return buf[0];
	return grow(left - 1024) + buf[0];
}

/* Grows by `bytes` and returns the ns it took; then, as the baseline, the
 * same recursion again over the now-present pages (*again). */
static int64_t timed_grow(size_t bytes, int64_t *again)
{
	int64_t t0 = goro_now(), t1;

	grow((long)bytes);
	t1 = goro_now();
	if (again) {
		grow((long)bytes);
		*again = goro_now() - t1;
	}
	return t1 - t0;
}

/* ---- goro's designs: one child process per mode ------------------------- */

struct g_arg {
	size_t bytes;
	int64_t ns, again_ns;
};

static void *g_grow(void *arg)
{
	struct g_arg *a = arg;

	a->ns = timed_grow(a->bytes, &a->again_ns);
	return NULL;
}

struct shared {
	double us_per_kib[NDEPTHS];
	double base_us_per_kib[NDEPTHS];
	long max_stacks;
	int mode;
	int ok;
};

/* Runs every depth RUNS times; each run grows `tasks` fresh stacks with
 * one(), which fills in the times of one task.  Returns false if one()
 * failed. */
static bool measure_all(struct shared *sh, bool (*one)(struct g_arg *a))
{
	for (int d = 0; d < NDEPTHS; d++) {
		double v[RUNS], b[RUNS], kib = depth_bytes[d] / 1024.0;
		int tasks = quick ? depth_tasks[d] / 4 : depth_tasks[d];

		for (int r = 0; r < RUNS; r++) {
			int64_t total = 0, again = 0;

			for (int i = 0; i < tasks; i++) {
				struct g_arg a = { .bytes = depth_bytes[d] };

				if (!one(&a))
					return false;
				total += a.ns;
				again += a.again_ns;
			}
			v[r] = (double)total / 1000.0 / tasks / kib;
			b[r] = (double)again / 1000.0 / tasks / kib;
		}
		sh->us_per_kib[d] = median(v, RUNS);
		sh->base_us_per_kib[d] = median(b, RUNS);
	}
	return true;
}

/* One task on a G: a new G gets a new or trimmed slot, whose pages below
 * the top are missing. */
static bool goro_one(struct g_arg *a)
{
	struct goro_spawn_opts o = { .stack_size = GROW_STACK };
	goro_t h;

	return goro_spawn(&h, g_grow, a, &o) == 0 && goro_join(&h, NULL) == 0;
}

static void *goro_runs(void *arg)
{
	return measure_all(arg, goro_one) ? arg : NULL;
}

static struct goro_wg park_gate;

static void *parked(void *arg)
{
	(void)arg;
	goro_wg_wait(&park_gate);
	return NULL;
}

/* Spawns parked Gs until goro_spawn fails or the cap. */
static void *goro_max(void *arg)
{
	struct shared *sh = arg;
	long cap = quick ? MAX_CAP / 10 : MAX_CAP, n;

	goro_wg_add(&park_gate, 1);
	for (n = 0; n < cap; n++)
		if (goro_spawn(NULL, parked, NULL, NULL))
			break;
	sh->max_stacks = n;
	goro_wg_done(&park_gate);
	return NULL;
}

static void child_goro(int mode, struct shared *sh)
{
	struct goro_config cfg = { .maxprocs = 1 };
	struct goro_stats st;
	void *res = NULL;

	setenv("GORO_STACK_MODE", mode_env[mode], 1);
	if (goro_init(&cfg))
		return;
	goro_stats(&st, sizeof st);
	sh->mode = (int)st.stack_mode;
	if (goro_run(goro_runs, sh, &res) || !res)
		return;
	if (goro_run(goro_max, sh, NULL))
		return;
	sh->ok = 1;
}

/* ---- The classic design: mmap + mprotect guard per stack ---------------- */

static struct goro__ctx main_ctx, task_ctx;
static struct g_arg task_arg;

static void task_entry(void *arg)
{
	(void)arg;
	task_arg.ns = timed_grow(task_arg.bytes, &task_arg.again_ns);
	goro__ctx_switch(&task_ctx, &main_ctx);
}

static char *classic_stack(size_t sz)
{
	char *p = mmap(NULL, sz, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
		       -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p, 4096, PROT_NONE)) {
		munmap(p, sz);
		return NULL;
	}
	return p;
}

static bool classic_one(struct g_arg *a)
{
	char *p = classic_stack(GROW_STACK);

	if (!p)
		return false;
	task_arg = *a;
	goro__ctx_make(&task_ctx, p + GROW_STACK, task_entry, NULL);
	goro__ctx_switch(&main_ctx, &task_ctx);
	*a = task_arg;
	munmap(p, GROW_STACK);
	return true;
}

static void child_classic(struct shared *sh)
{
	size_t sz = 1 << 20;

	if (!measure_all(sh, classic_one))
		return;
	/* How many such stacks fit: until mmap or mprotect fails (the
	 * guard splits each stack into two VMAs: vm.max_map_count). */
	long n = 0;
	while (n < MAX_CAP) {
		char *p = classic_stack(sz);
		if (!p)
			break;
		p[sz - 1] = 1;
		n++;
	}
	sh->max_stacks = n;
	sh->mode = -1;
	sh->ok = 1;
}

static int run_child(int mode, struct shared *out)
{
	struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pid;
	int st;

	if (sh == MAP_FAILED)
		return -1;
	memset(sh, 0, sizeof *sh);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (mode == M_MMAP)
			child_classic(sh);
		else
			child_goro(mode, sh);
		_exit(sh->ok ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) || !sh->ok) {
		munmap(sh, sizeof *sh);
		return -1;
	}
	*out = *sh;
	munmap(sh, sizeof *sh);
	return 0;
}

/* ---- Output: lines, table, SVG ------------------------------------------ */

static void write_svg(const char *path, struct shared res[NMODES],
		      const bool have[NMODES])
{
	static const char *const color[NMODES] = {
		"#4e79a7", "#59a14f", "#f28e2b", "#e15759" };
	const int W = 760, H = 420, L = 70, B = 60, T = 50, R = 170;
	double ymax = 0;
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "goro-stackbench: %s: %s\n", path, strerror(errno));
		return;
	}
	for (int m = 0; m < NMODES; m++)
		for (int d = 0; d < NDEPTHS; d++)
			if (have[m] && res[m].us_per_kib[d] > ymax)
				ymax = res[m].us_per_kib[d];
	if (ymax <= 0)
		ymax = 1;
	ymax *= 1.15;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		"height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
	fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
	fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\">Stack growth cost "
		"(lower is better): microseconds per KiB grown</text>\n", L);
	/* Axes and horizontal grid with labels. */
	int ph = H - T - B, pw = W - L - R;
	for (int i = 0; i <= 5; i++) {
		double v = ymax * i / 5;
		int y = T + ph - (int)(ph * i / 5);
		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
			"stroke=\"#ddd\"/>\n", L, y, L + pw, y);
		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3f</text>\n",
			L - 6, y + 4, v);
	}
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n",
		L, T, L, T + ph);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n",
		L, T + ph, L + pw, T + ph);
	fprintf(f, "<text transform=\"translate(18,%d) rotate(-90)\" "
		"text-anchor=\"middle\">us/KiB</text>\n", T + ph / 2);
	/* Grouped bars: one group per depth, one bar per design. */
	int gw = pw / NDEPTHS, bw = (gw - 30) / NMODES;
	for (int d = 0; d < NDEPTHS; d++) {
		int gx = L + d * gw + 15;
		for (int m = 0; m < NMODES; m++) {
			if (!have[m])
				continue;
			double v = res[m].us_per_kib[d];
			int h = (int)(ph * v / ymax);
			int x = gx + m * bw;
			fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
				"fill=\"%s\"><title>%s %s: %.4f us/KiB</title></rect>\n",
				x, T + ph - h, bw - 2, h, color[m], mode_key[m],
				depth_key[d], v);
			fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
				"font-size=\"10\">%.2f</text>\n",
				x + bw / 2, T + ph - h - 4, v);
		}
		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">depth %s</text>\n",
			gx + (bw * NMODES) / 2, T + ph + 20, depth_key[d]);
	}
	/* Legend, with the max stacks of each design. */
	for (int m = 0; m < NMODES; m++) {
		int y = T + 10 + m * 40;
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n",
			L + pw + 15, y, color[m]);
		fprintf(f, "<text x=\"%d\" y=\"%d\">%s</text>\n", L + pw + 35, y + 11,
			mode_key[m]);
		if (have[m])
			fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">max stacks: "
				"%s%ld</text>\n", L + pw + 35, y + 26,
				res[m].max_stacks >= (quick ? MAX_CAP / 10 : MAX_CAP) &&
				m != M_MMAP ? "&#8805;" : "", res[m].max_stacks);
		else
			fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">unavailable"
				"</text>\n", L + pw + 35, y + 26);
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">1 MiB stacks; "
		"goro's max is capped at %ld by the benchmark</text>\n", L, H - 12,
		quick ? MAX_CAP / 10 : MAX_CAP);
	fprintf(f, "</svg>\n");
	fclose(f);
}

int main(int argc, char **argv)
{
	const char *svg = "stackgrow.svg";
	struct shared res[NMODES];
	bool have[NMODES] = { false };
	int opt, rc = 0;

	while ((opt = getopt(argc, argv, "o:q")) != -1) {
		switch (opt) {
		case 'o':
			svg = optarg;
			break;
		case 'q':
			quick = true;
			break;
		default:
			fprintf(stderr, "usage: goro-stackbench [-o plot.svg] [-q]\n");
			return 2;
		}
	}
	if (getenv("GORO_BENCH_QUICK") && strcmp(getenv("GORO_BENCH_QUICK"), "0"))
		quick = true;
	for (int m = 0; m < NMODES; m++) {
		if (run_child(m, &res[m])) {
			fprintf(stderr, "goro-stackbench: %s failed\n", mode_key[m]);
			rc = 1;
			continue;
		}
		if (m != M_MMAP && res[m].mode != (m == M_THREAD ? GORO_STACK_UFFD_THREAD :
						   m == M_SIGBUS ? GORO_STACK_UFFD_SIGBUS :
						   GORO_STACK_PLAIN)) {
			/* The kernel refused this mode: do not report another
			 * mode's figures under its name. */
			fprintf(stderr, "goro-stackbench: %s unavailable here\n",
				mode_key[m]);
			continue;
		}
		have[m] = true;
		for (int d = 0; d < NDEPTHS; d++)
			printf("stackgrow_%s_%s %.4f us/KiB\n", mode_key[m],
			       depth_key[d], res[m].us_per_kib[d]);
		if (m == M_PLAIN)
			for (int d = 0; d < NDEPTHS; d++)
				printf("baseline_stackgrow_prefaulted_%s %.4f us/KiB\n",
				       depth_key[d], res[m].base_us_per_kib[d]);
		printf("stackmax_%s %ld stacks\n", mode_key[m], res[m].max_stacks);
		fflush(stdout);
	}
	printf("#\n# %-12s %12s %12s %12s %14s\n", "design", "8k us/KiB",
	       "64k us/KiB", "1m us/KiB", "max stacks");
	for (int m = 0; m < NMODES; m++) {
		if (!have[m]) {
			printf("# %-12s %12s\n", mode_key[m], "unavailable");
			continue;
		}
		printf("# %-12s %12.4f %12.4f %12.4f %13s%ld\n", mode_key[m],
		       res[m].us_per_kib[0], res[m].us_per_kib[1],
		       res[m].us_per_kib[2],
		       m != M_MMAP && res[m].max_stacks >= (quick ? MAX_CAP / 10 : MAX_CAP) ?
		       ">=" : "", res[m].max_stacks);
	}
	if (have[M_PLAIN])
		printf("# %-12s %12.4f %12.4f %12.4f %14s\n", "(prefaulted)",
		       res[M_PLAIN].base_us_per_kib[0], res[M_PLAIN].base_us_per_kib[1],
		       res[M_PLAIN].base_us_per_kib[2], "-");
	write_svg(svg, res, have);
	printf("# plot: %s\n", svg);
	return rc;
}
