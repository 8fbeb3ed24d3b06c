/*
 * stack.c: G stacks on one arena, grown lazily.
 *
 * "The stack arena"
 *
 * The problem.  C cannot move a stack (pointers into it are everywhere),
 * so a G must own, from birth, as much address space as it may ever use
 * (1 MiB by default).  Committing it would cost a megabyte per G; the
 * classic coroutine answer (one mmap per stack plus an mprotect guard
 * page) costs two VMAs per stack and stops near 32,750 stacks under the
 * default vm.max_map_count.  goro wants a million parked Gs at about one
 * page each.
 *
 * Rejected approaches:
 *   - mmap + mprotect guard per stack: the VMA limit above, and a
 *     syscall pair per stack.
 *   - One arena with plain demand paging only: the kernel grows stacks
 *     for us, but we never know how much a G committed, so trimming a
 *     dead G's stack costs a mincore() or a blind madvise(); it is kept
 *     as the fallback ("plain" mode).
 *   - UFFDIO_ZEROPAGE to resolve faults: the G writes its stack, so the
 *     zero page is COW-faulted again at once (kernel-notes/userfaultfd.md
 *     has the numbers); UFFDIO_COPY from a static zero buffer is used.
 *   - Filling only the faulting page: a syscall writing into a buffer
 *     that spans never-touched pages fails with EFAULT, because in
 *     SIGBUS and user-mode-only modes the kernel does not wait for us
 *     ("The EFAULT trap" below).
 *
 * The chosen design.  One MAP_NORESERVE reservation (the arena), one VMA,
 * registered once with userfaultfd in MISSING mode.  It is cut into
 * chunks of CHUNK bytes; a chunk is given to one size class on first need
 * and cut into slots of that class (power-of-two sizes, 16 KiB to
 * 256 MiB), so the slot of any address is plain arithmetic (chunk_cls,
 * chunk_carved below), which the fault handlers need.  Slots are never
 * given back to the kernel as address space, only their pages.
 *
 * Slot layout (addresses grow to the right; one slot of size S):
 *
 *   guard_lo          lo              populated_lo        gp       hi
 *   |  guard zone     |  missing ...   |  populated  ...   | goro_g |
 *   |  (MADV_GUARD_   |  (never        |  (contiguous,     | (desc) |
 *   |   INSTALL)      |   touched)     |   grows <-- down) |        |
 *   <-- guard_size --> <----------- limit = hi - lo ------------------>
 *                                                  <---- top page ---->
 *
 *   guard_lo  the slot's first byte; [guard_lo, lo) is the guard zone,
 *             max(4 KiB, min(S / 16, 64 KiB)): a guard region where the
 *             kernel has MADV_GUARD_INSTALL (6.13), else left missing and
 *             caught by the uffd handlers, else (plain mode on an old
 *             kernel) an mprotect'ed page.
 *   lo        lowest usable stack byte.
 *   hi        one past the slot's last byte.
 *   gp        the G descriptor, 64-byte aligned, right below hi.  The G's
 *             first frame starts just below it, in the same top page:
 *             [hi - 4096, hi) is the only page a fresh G commits.
 *   cls       the slot's size class: S = 16 KiB << cls.
 *   populated_lo  uffd modes: [populated_lo, hi) is exactly the populated
 *             part, page aligned, contiguous.  Plain mode: the same bound
 *             as far as goro knows it (hi - 4096 at birth; the kernel
 *             grows the stack behind our back; trim and goro_stack_info
 *             ask mincore()).
 *   peak      the largest hi - populated_lo this slot has had since it
 *             was last handed out (goro_stack_info).
 *
 * "Growth" (uffd modes).  A fault below populated_lo (the faulting thread
 * takes SIGBUS, or the handler thread reads a uffd_msg) fills, with one
 * UFFDIO_COPY, everything from the faulting page minus a batch up to
 * populated_lo, then lowers populated_lo.  The batch doubles the
 * committed size (as Go doubles stacks), at least AHEAD_MIN and at most
 * AHEAD_MAX, and never covers the guard zone (UFFDIO_COPY would silently
 * replace a guard marker).  Only the G's own thread (SIGBUS mode) or the
 * single handler thread (thread mode) fills a running G's slot, so the
 * fill needs no lock.
 *
 * "The EFAULT trap".  Every call touches SP - 8 from user mode, and every
 * buffer a G hands the kernel lives in a frame at or above SP, so with a
 * contiguous populated region each such buffer is populated before the
 * kernel sees it.  Pages above the SP of a live G are therefore never
 * released: trimming happens only when the G is dead (goro__stack_trim,
 * goro__stack_release), never while it is parked.
 *
 * "Overflow".  A touch of the guard zone (SIGSEGV from a guard marker or
 * mprotect, or a uffd fault inside the zone), or a uffd fault below the
 * running G's stack within one slot (a large frame that jumped the guard
 * into the slot underneath), is a stack overflow: the report names the
 * G, its limit, the address and a frame-pointer backtrace, then the
 * process aborts (goro__stack_overflow).
 *
 * "Shrink and reuse".  When a G finishes, g.c calls goro__stack_trim
 * before caching it: every page below the top KEEP bytes is released with
 * MADV_DONTNEED (which makes them missing again, so the next touch faults
 * into our handler; no uffd event is enabled, so it cannot block).  A slot
 * handed back with goro__stack_release is trimmed the same way and goes on
 * its class's free list, keeping its top page, up to WARM_MAX slots per
 * class; beyond that the slot goes cold: its top page is released as
 * well and a per-chunk bitmap (chunk_cold) marks it, so that the fault
 * handlers never read a descriptor that is not there.  With g.c's own
 * caches in front, a burst of a million Gs leaves a few thousand pages
 * committed afterwards, not a million.
 *
 * Locking: arena.lock protects the per-class carving state and free
 * lists.  chunk_cls and chunk_carved are written under the lock and read
 * without it by the fault handlers (release/acquire).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <dlfcn.h>

#include "internal.h"
#include "stack.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102		/* Linux 6.13 */
#endif

#define CLS_MIN_SHIFT 14		/* 16 KiB */
#define NCLS 15				/* ... 256 MiB */
#define CHUNK_SHIFT 28			/* 256 MiB: the largest class */
#define CHUNK ((size_t)1 << CHUNK_SHIFT)
#define MAX_CHUNKS 8192			/* 2 TiB of arena */
#define KEEP GORO_PAGE			/* bytes a trimmed slot keeps */
#define AHEAD_MIN (4 * GORO_PAGE)	/* smallest growth batch */
#define AHEAD_MAX (64 * GORO_PAGE)	/* largest growth batch */
#define FREE_CLS_UNSET 0xff
#define WARM_MAX 256			/* free slots per class keeping a page */

_Atomic int goro__stack_mode_now = GORO_STACK_PLAIN;
struct goro__stack_counters goro__stack_ctr;
uint32_t goro__stack_default_cls;

static struct {
	char *base;			/* immutable after the first init */
	size_t size;			/* immutable after the first init */
	struct goro__lock lock;		/* protects the fields marked [A] */
	size_t nchunks;			/* chunks handed to classes [A] */
	/* The class of each chunk, FREE_CLS_UNSET if none; written once
	 * under the lock (release), read by the fault handlers (acquire). */
	_Atomic uint8_t chunk_cls[MAX_CHUNKS];
	/* Slots carved so far from each chunk, in address order: a slot
	 * whose index is below this has a valid descriptor page.  Written
	 * under the lock (release) after the slot is set up. */
	_Atomic uint32_t chunk_carved[MAX_CHUNKS];
	/* One bit per slot of the chunk: set while the slot is cold (its
	 * top page released too, so it has no descriptor to read).  The
	 * bitmap is allocated before the chunk gets its class; bits are
	 * written under the lock (release) and read by the fault handlers
	 * (acquire). */
	_Atomic uint64_t *chunk_cold[MAX_CHUNKS];
	struct {
		long chunk;		/* chunk being carved, -1 = none [A] */
		struct goro_g *free;	/* warm free slots, via schedlink [A] */
		uint64_t nfree;		/* [A] */
		char **cold;		/* cold free slots (their first byte) [A] */
		size_t ncold, cold_cap;	/* [A] */
	} cls[NCLS];
	/* How guard zones are made: 2 = MADV_GUARD_INSTALL, 1 = mprotect
	 * (plain mode on kernels before 6.13), 0 = left missing in the uffd
	 * range (the handlers catch them).  Immutable after the first init. */
	int guard_kind;
	bool inited;			/* [A] */
} arena;

static size_t cls_size(uint32_t cls)
{
	return (size_t)1 << (CLS_MIN_SHIFT + cls);
}

static size_t guard_size(size_t slot)
{
	size_t g = slot / 16;

	if (g < GORO_PAGE)
		g = GORO_PAGE;
	if (g > 16 * GORO_PAGE)
		g = 16 * GORO_PAGE;
	return g;
}

size_t goro__stack_class_size(size_t size, uint32_t *cls)
{
	for (uint32_t c = 0; c < NCLS; c++) {
		if (size <= cls_size(c)) {
			if (cls)
				*cls = c;
			return cls_size(c);
		}
	}
	return 0;
}

bool goro__stack_in_arena(const void *addr)
{
	return arena.base && (const char *)addr >= arena.base &&
	       (const char *)addr < arena.base + arena.size;
}

struct goro_g *goro__stack_slot_of(const void *addr)
{
	size_t off, ci, ssz, idx;
	uint8_t cls;

	if (!goro__stack_in_arena(addr))
		return NULL;
	off = (size_t)((const char *)addr - arena.base);
	ci = off >> CHUNK_SHIFT;
	cls = atomic_load_explicit(&arena.chunk_cls[ci], memory_order_acquire);
	if (cls == FREE_CLS_UNSET || cls >= NCLS)
		return NULL;
	ssz = cls_size(cls);
	idx = (off & (CHUNK - 1)) / ssz;
	if (idx >= atomic_load_explicit(&arena.chunk_carved[ci],
					memory_order_acquire))
		return NULL;
	if (atomic_load_explicit(&arena.chunk_cold[ci][idx / 64],
				 memory_order_acquire) & ((uint64_t)1 << (idx % 64)))
		return NULL;
	char *hi = arena.base + (ci << CHUNK_SHIFT) + (idx + 1) * ssz;
	return (struct goro_g *)((uintptr_t)(hi - sizeof(struct goro_g)) &
				 ~(uintptr_t)63);
}

/* ---- Mode selection and the arena -------------------------------------- */

static const char *mode_name(int mode)
{
	switch (mode) {
	case GORO_STACK_UFFD_THREAD:
		return "uffd-thread";
	case GORO_STACK_UFFD_SIGBUS:
		return "uffd-sigbus";
	default:
		return "plain";
	}
}

static int reserve_arena(void)
{
	/* 2 TiB first; less where the address space is crowded (sanitizers
	 * reserve large shadow regions). */
	for (size_t sz = (size_t)MAX_CHUNKS << CHUNK_SHIFT; sz >= 4 * CHUNK;
	     sz >>= 1) {
		void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			       -1, 0);
		if (p != MAP_FAILED) {
			arena.base = p;
			arena.size = sz;
			/* Huge pages would commit 2 MiB per touched stack. */
			madvise(p, sz, MADV_NOHUGEPAGE);
			return 0;
		}
	}
	return -ENOMEM;
}

/* Does this kernel have guard regions?  Probe on the first page of the
 * arena (a future slot's guard zone anyway: the first slot of chunk 0
 * starts there). */
static bool probe_guard_install(void)
{
	return madvise(arena.base, GORO_PAGE, MADV_GUARD_INSTALL) == 0;
}

static int parse_mode(const char *s, int *mode)
{
	if (!s || !*s || !strcmp(s, "auto"))
		return 0;
	if (!strcmp(s, "plain"))
		*mode = GORO_STACK_PLAIN;
	else if (!strcmp(s, "uffd-thread"))
		*mode = GORO_STACK_UFFD_THREAD;
	else if (!strcmp(s, "uffd-sigbus"))
		*mode = GORO_STACK_UFFD_SIGBUS;
	else
		return -EINVAL;
	return 1;
}

static int first_init(void)
{
	const char *env = getenv("GORO_STACK_MODE");
	const char *how = "";
	int want = -1, mode = GORO_STACK_PLAIN, r;
	char why[96] = "";

	r = parse_mode(env, &want);
	if (r < 0) {
		goro__log(true, "GORO_STACK_MODE=%s is not one of plain, "
			  "uffd-thread, uffd-sigbus, auto", env);
		return -EINVAL;
	}
#ifdef GORO_ENABLE_TSAN
	/* ThreadSanitizer's runtime runs on G stacks and takes its own
	 * locks there.  A userfaultfd stack fault inside it re-enters TSan
	 * from the SIGBUS handler, or waits for the handler thread, which
	 * needs the same lock: a deadlock (seen with clang 14 in
	 * check_chan).  Under --enable-tsan stacks are always plain. */
	if (want != GORO_STACK_PLAIN) {
		if (want >= 0)
			goro__log(true, "stack mode: GORO_STACK_MODE=%s is "
				  "unavailable under --enable-tsan; using plain", env);
		want = GORO_STACK_PLAIN;
	}
#endif
	r = reserve_arena();
	if (r)
		return r;
	for (size_t i = 0; i < MAX_CHUNKS; i++)
		atomic_store_explicit(&arena.chunk_cls[i], FREE_CLS_UNSET,
				      memory_order_relaxed);
	for (int c = 0; c < NCLS; c++)
		arena.cls[c].chunk = -1;

	/* Default: SIGBUS mode, the cheapest per page and available without
	 * privileges (kernel-notes/userfaultfd.md, "Costs"). */
	if (want != GORO_STACK_PLAIN) {
		int first = want < 0 ? GORO_STACK_UFFD_SIGBUS : want;

		r = goro__uffd_start(first, arena.base, arena.size, &how);
		if (r == 0)
			mode = first;
		else
			snprintf(why, sizeof why, "userfaultfd: %s",
				 strerror(-r));
	}
	store_release(&goro__stack_mode_now, mode);

	if (probe_guard_install())
		arena.guard_kind = 2;
	else
		arena.guard_kind = mode == GORO_STACK_PLAIN ? 1 : 0;

	r = goro__signals_init();
	if (r)
		return r;
	arena.inited = true;

	static const char *const gname[] = {
		"missing pages caught by the fault handler",
		"mprotect (one VMA per guard)", "MADV_GUARD_INSTALL" };
	if (want >= 0 && want != mode)
		goro__log(true, "stack mode: GORO_STACK_MODE=%s is unavailable "
			  "(%s); using %s (guards: %s)", env, why,
			  mode_name(mode), gname[arena.guard_kind]);
	else
		goro__log(false, "stack mode: %s%s%s (guards: %s)",
			  mode_name(mode), *how ? ", " : "", how,
			  gname[arena.guard_kind]);
	return 0;
}

int goro__stack_init(size_t default_size)
{
	int r = 0;

	if (!goro__stack_class_size(default_size, &goro__stack_default_cls))
		return -EINVAL;
	goro__lock(&arena.lock);
	if (!arena.inited)
		r = first_init();
	goro__unlock(&arena.lock);
	return r;
}

/* The arena, the uffd and its handler thread live as long as the process:
 * Gs abandoned by goro_shutdown may still sit in it, and a later goro_init
 * reuses it (the mode is chosen once). */
void goro__stack_shutdown(void)
{
}

/* ---- Slots ------------------------------------------------------------ */

static int commit_top_page(char *hi)
{
	if (load_relaxed(&goro__stack_mode_now) == GORO_STACK_PLAIN)
		return 0;	/* the memset below faults it in */
	return goro__uffd_fill(hi - GORO_PAGE, GORO_PAGE, false);
}

static int make_guard(char *guard_lo, size_t gsz)
{
	switch (arena.guard_kind) {
	case 2:
		if (madvise(guard_lo, gsz, MADV_GUARD_INSTALL))
			return -errno;
		return 0;
	case 1:
		if (mprotect(guard_lo, gsz, PROT_NONE))
			return -errno;
		return 0;
	default:
		return 0;
	}
}

static void init_desc(struct goro_g *gp, char *slot, uint32_t cls)
{
	size_t ssz = cls_size(cls), gsz = guard_size(ssz);

	memset(gp, 0, sizeof *gp);
	gp->stack.guard_lo = slot;
	gp->stack.lo = slot + gsz;
	gp->stack.hi = slot + ssz;
	gp->stack.cls = cls;
	gp->stack.populated_lo = slot + ssz - GORO_PAGE;
	gp->stack.peak = GORO_PAGE;
}

/* Sets or clears the cold bit of the slot starting at `slot`. */
static void set_cold(char *slot, uint32_t cls, bool cold)
{
	size_t off = (size_t)(slot - arena.base);
	size_t ci = off >> CHUNK_SHIFT, idx = (off & (CHUNK - 1)) / cls_size(cls);
	uint64_t bit = (uint64_t)1 << (idx % 64);

	if (cold)
		atomic_fetch_or_explicit(&arena.chunk_cold[ci][idx / 64], bit,
					 memory_order_release);
	else
		atomic_fetch_and_explicit(&arena.chunk_cold[ci][idx / 64], ~bit,
					  memory_order_release);
}

/* Carves a new slot of class cls.  arena.lock must be held; drops it. */
static struct goro_g *carve_locked(uint32_t cls, int *err)
{
	size_t ssz = cls_size(cls), per_chunk = CHUNK / ssz;
	long ci = arena.cls[cls].chunk;
	uint32_t idx;
	char *slot;
	int r;

	GORO_DEBUG_ASSERT(goro__lock_held(&arena.lock));
	if (ci < 0 || load_relaxed(&arena.chunk_carved[ci]) >= per_chunk) {
		if ((arena.nchunks + 1) << CHUNK_SHIFT > arena.size) {
			goro__unlock(&arena.lock);
			*err = -ENOMEM;
			return NULL;
		}
		ci = (long)arena.nchunks;
		arena.chunk_cold[ci] = calloc((per_chunk + 63) / 64,
					      sizeof(uint64_t));
		if (!arena.chunk_cold[ci]) {
			goro__unlock(&arena.lock);
			*err = -ENOMEM;
			return NULL;
		}
		arena.nchunks++;
		arena.cls[cls].chunk = ci;
		atomic_store_explicit(&arena.chunk_cls[ci], (uint8_t)cls,
				      memory_order_release);
	}
	idx = load_relaxed(&arena.chunk_carved[ci]);
	slot = arena.base + ((size_t)ci << CHUNK_SHIFT) + (size_t)idx * ssz;

	/* Set up the slot under the lock: chunk_carved publishes it to the
	 * fault handlers only once its descriptor page exists. */
	r = make_guard(slot, guard_size(ssz));
	if (!r)
		r = commit_top_page(slot + ssz);
	if (r) {
		goro__unlock(&arena.lock);
		*err = r;
		return NULL;
	}
	struct goro_g *gp = (struct goro_g *)((uintptr_t)(slot + ssz -
					      sizeof(struct goro_g)) & ~(uintptr_t)63);
	init_desc(gp, slot, cls);
	atomic_store_explicit(&arena.chunk_carved[ci], idx + 1,
			      memory_order_release);
	goro__unlock(&arena.lock);
	atomic_fetch_add_explicit(&goro__stack_ctr.slots, 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&goro__stack_ctr.pages_populated, 1,
				  memory_order_relaxed);
	return gp;
}

struct goro_g *goro__stack_alloc(size_t size, int *err)
{
	uint32_t cls;
	struct goro_g *gp;

	if (!goro__stack_class_size(size, &cls)) {
		*err = -EINVAL;
		return NULL;
	}
	goro__lock(&arena.lock);
	if (!arena.base) {
		goro__unlock(&arena.lock);
		*err = -ENOMEM;
		return NULL;
	}
	gp = arena.cls[cls].free;
	if (gp) {
		arena.cls[cls].free = gp->schedlink;
		arena.cls[cls].nfree--;
		goro__unlock(&arena.lock);
		char *slot = gp->stack.guard_lo;
		char *plo = gp->stack.populated_lo;
		init_desc(gp, slot, cls);
		gp->stack.populated_lo = plo;	/* trimmed: the top page */
		return gp;
	}
	if (arena.cls[cls].ncold) {
		char *slot = arena.cls[cls].cold[--arena.cls[cls].ncold];
		size_t ssz = cls_size(cls);
		int r;

		goro__unlock(&arena.lock);
		/* Ours now; the handlers ignore it until the bit clears. */
		r = commit_top_page(slot + ssz);
		if (r) {
			goro__lock(&arena.lock);
			arena.cls[cls].cold[arena.cls[cls].ncold++] = slot;
			goro__unlock(&arena.lock);
			*err = r;
			return NULL;
		}
		gp = (struct goro_g *)((uintptr_t)(slot + ssz - sizeof *gp) &
				       ~(uintptr_t)63);
		init_desc(gp, slot, cls);
		set_cold(slot, cls, false);
		atomic_fetch_add_explicit(&goro__stack_ctr.pages_populated, 1,
					  memory_order_relaxed);
		return gp;
	}
	return carve_locked(cls, err);
}

/* Counts the resident pages of [lo, hi) and returns the lowest resident
 * address (hi if none).  Plain mode only: the kernel grew the stack. */
static char *lowest_resident(char *lo, char *hi, size_t *npages)
{
	unsigned char vec[256];
	char *low = hi;

	*npages = 0;
	for (char *p = lo; p < hi; p += sizeof vec * GORO_PAGE) {
		size_t len = (size_t)(hi - p);

		if (len > sizeof vec * GORO_PAGE)
			len = sizeof vec * GORO_PAGE;
		if (mincore(p, len, vec))
			return lo;	/* unknown: assume everything */
		for (size_t i = 0; i < len / GORO_PAGE; i++) {
			if (vec[i] & 1) {
				if (low == hi)
					low = p + i * GORO_PAGE;
				(*npages)++;
			}
		}
	}
	return low;
}

void goro__stack_trim(struct goro_g *gp)
{
	char *keep_lo = gp->stack.hi - KEEP;
	char *plo = gp->stack.populated_lo;
	size_t n;

	if (load_relaxed(&goro__stack_mode_now) == GORO_STACK_PLAIN) {
		plo = lowest_resident(gp->stack.lo, keep_lo, &n);
		if (plo >= keep_lo)
			return;
		/* The kernel populated them behind our back: count them now,
		 * so that populated - released stays what is committed. */
		atomic_fetch_add_explicit(&goro__stack_ctr.pages_populated, n,
					  memory_order_relaxed);
	} else {
		if (plo >= keep_lo)
			return;
		n = (size_t)(keep_lo - plo) / GORO_PAGE;
	}
	/* The G is dead: nothing above its SP is live any more.
	 * MADV_DONTNEED makes the pages missing again; in the uffd range the
	 * next touch faults into our handler (no UFFD_EVENT_REMOVE is
	 * enabled, so this never waits for a reader). */
	if (madvise(plo, (size_t)(keep_lo - plo), MADV_DONTNEED))
		goro__throw("stack trim: madvise(MADV_DONTNEED) failed");
	gp->stack.populated_lo = keep_lo;
	atomic_fetch_add_explicit(&goro__stack_ctr.pages_released, n,
				  memory_order_relaxed);
}

/* Bounds the pool: the first WARM_MAX free slots of a class keep their
 * top page (a reused G then costs no fault at all); beyond that a slot
 * goes cold: its top page is released too, and its cold bit tells the
 * fault handlers that it has no descriptor to read. */
void goro__stack_release(struct goro_g *gp)
{
	uint32_t cls = gp->stack.cls;
	char *slot = gp->stack.guard_lo, *hi = gp->stack.hi;

	goro__stack_trim(gp);
	goro__lock(&arena.lock);
	if (arena.cls[cls].nfree < WARM_MAX)
		goto warm;
	if (arena.cls[cls].ncold == arena.cls[cls].cold_cap) {
		size_t cap = arena.cls[cls].cold_cap ? 2 * arena.cls[cls].cold_cap : 1024;
		char **c = realloc(arena.cls[cls].cold, cap * sizeof *c);

		if (!c)
			goto warm;	/* keep the page rather than lose the slot */
		arena.cls[cls].cold = c;
		arena.cls[cls].cold_cap = cap;
	}
	/* Under the lock, so that no allocation can take the slot before
	 * its page is gone.  The bit first: from here on the descriptor may
	 * vanish. */
	set_cold(slot, cls, true);
	if (madvise(hi - KEEP, KEEP, MADV_DONTNEED))
		goro__throw("stack release: madvise(MADV_DONTNEED) failed");
	arena.cls[cls].cold[arena.cls[cls].ncold++] = slot;
	goro__unlock(&arena.lock);
	atomic_fetch_add_explicit(&goro__stack_ctr.pages_released, KEEP / GORO_PAGE,
				  memory_order_relaxed);
	return;
warm:
	gp->schedlink = arena.cls[cls].free;
	arena.cls[cls].free = gp;
	arena.cls[cls].nfree++;
	goro__unlock(&arena.lock);
}

/* ---- Growth (uffd modes) ------------------------------------------------ */

int goro__stack_grow(struct goro_g *gp, char *addr)
{
	char *page = (char *)((uintptr_t)addr & ~(GORO_PAGE - 1));
	char *plo = gp->stack.populated_lo, *lo = gp->stack.lo;
	size_t committed, ahead;
	char *new_lo;
	int r;

	if (page >= plo)
		return 0;	/* filled meanwhile (a duplicate fault) */
	committed = (size_t)(gp->stack.hi - plo);
	ahead = committed < AHEAD_MIN ? AHEAD_MIN :
		committed > AHEAD_MAX ? AHEAD_MAX : committed;
	new_lo = plo - ahead;
	if (page < new_lo)
		new_lo = page - ((ahead / 2) & ~(GORO_PAGE - 1));
	if (new_lo < lo || new_lo > plo)	/* clamp: never the guard */
		new_lo = lo;
	/* Publish first, fill second: in thread mode the UFFDIO_COPY wakes
	 * the G, which may finish and be trimmed (reading populated_lo), or
	 * read the counters, at once.  The wake is a full barrier between
	 * the two threads. */
	gp->stack.populated_lo = new_lo;
	if ((size_t)(gp->stack.hi - new_lo) > gp->stack.peak)
		gp->stack.peak = (size_t)(gp->stack.hi - new_lo);
	atomic_fetch_add_explicit(&goro__stack_ctr.growth_faults, 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&goro__stack_ctr.pages_populated,
				  (size_t)(plo - new_lo) / GORO_PAGE,
				  memory_order_relaxed);
	r = goro__uffd_fill(new_lo, (size_t)(plo - new_lo),
			    load_relaxed(&goro__stack_mode_now) ==
			    GORO_STACK_UFFD_THREAD);
	return r;
}

/*
 * An I/O buffer about to be handed to the kernel (io.c).  By "The EFAULT
 * trap" a buffer in a live frame is already populated, so this finds
 * nothing to do in practice; it exists for buffers the runtime places
 * itself.  In uffd modes the missing part is filled from user mode, down
 * to the buffer and contiguously up to populated_lo, without a fault.  In
 * plain mode the kernel demand-pages what a syscall touches: nothing to
 * do (and nothing is read, which keeps ASan quiet about redzones).
 */
void goro__stack_prefault(const void *buf, size_t n)
{
	struct goro_g *gp = goro__g_self();
	const char *lo = buf;

	if (!gp || !n || load_relaxed(&goro__stack_mode_now) == GORO_STACK_PLAIN)
		return;
	if (lo + n <= gp->stack.lo || lo >= gp->stack.hi)
		return;
	if (lo < gp->stack.lo)
		lo = gp->stack.lo;
	if (lo >= gp->stack.populated_lo)
		return;
	if (goro__stack_grow(gp, (char *)lo))
		goro__throw("stack prefault: UFFDIO_COPY failed");
}

/* ---- Overflow ----------------------------------------------------------- */

/* Async-signal-safe formatting: appends to buf at *n (bounded). */
static void put_str(char *buf, size_t cap, size_t *n, const char *s)
{
	while (*s && *n + 1 < cap)
		buf[(*n)++] = *s++;
	buf[*n] = 0;
}

static void put_u64(char *buf, size_t cap, size_t *n, uint64_t v, int base)
{
	char tmp[24];
	int i = 0;

	if (base == 16)
		put_str(buf, cap, n, "0x");
	do {
		tmp[i++] = "0123456789abcdef"[v % (unsigned)base];
		v /= (unsigned)base;
	} while (v);
	while (i > 0 && *n + 1 < cap)
		buf[(*n)++] = tmp[--i];
	buf[*n] = 0;
}

static void print_frame(int i, uintptr_t pc)
{
	char buf[512];
	size_t n = 0;
	Dl_info info;

	put_str(buf, sizeof buf, &n, "goro:   #");
	put_u64(buf, sizeof buf, &n, (uint64_t)i, 10);
	put_str(buf, sizeof buf, &n, " ");
	put_u64(buf, sizeof buf, &n, pc, 16);
	/* dladdr is not on the async-signal-safe list; the process is about
	 * to abort and a fault inside the dynamic linker while it holds its
	 * lock is not a stack overflow, so the risk is accepted. */
	if (dladdr((void *)(pc - 1), &info)) {
		if (info.dli_sname) {
			put_str(buf, sizeof buf, &n, " ");
			put_str(buf, sizeof buf, &n, info.dli_sname);
			put_str(buf, sizeof buf, &n, "+");
			put_u64(buf, sizeof buf, &n,
				pc - (uintptr_t)info.dli_saddr, 16);
		}
		if (info.dli_fname) {
			put_str(buf, sizeof buf, &n, " (");
			put_str(buf, sizeof buf, &n, info.dli_fname);
			if (!info.dli_sname) {	/* for addr2line -e */
				put_str(buf, sizeof buf, &n, "+");
				put_u64(buf, sizeof buf, &n,
					pc - (uintptr_t)info.dli_fbase, 16);
			}
			put_str(buf, sizeof buf, &n, ")");
		}
	}
	put_str(buf, sizeof buf, &n, "\n");
	goro__write_stderr(buf);
}

_Noreturn void goro__stack_overflow(struct goro_g *gp, const void *addr,
				    const void *ucv)
{
	char buf[256];
	size_t n = 0;

	atomic_fetch_add_explicit(&goro__stack_ctr.overflows, 1,
				  memory_order_relaxed);
	put_str(buf, sizeof buf, &n, "goro: G ");
	put_u64(buf, sizeof buf, &n, gp->id, 10);
	put_str(buf, sizeof buf, &n, " (");
	char name[GORO_G_NAME_MAX + 1];
	memcpy(name, gp->name, GORO_G_NAME_MAX);
	name[GORO_G_NAME_MAX] = 0;
	put_str(buf, sizeof buf, &n, name);
	put_str(buf, sizeof buf, &n, "): stack overflow: limit ");
	put_u64(buf, sizeof buf, &n,
		(uint64_t)(gp->stack.hi - gp->stack.lo) / 1024, 10);
	put_str(buf, sizeof buf, &n, " KiB, fault at ");
	put_u64(buf, sizeof buf, &n, (uintptr_t)addr, 16);
	put_str(buf, sizeof buf, &n, "\n");
	goro__write_stderr(buf);

	if (ucv) {
		const ucontext_t *uc = ucv;
#if defined(__x86_64__)
		uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
		uintptr_t fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
		uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
		uintptr_t fp = (uintptr_t)uc->uc_mcontext.regs[29];
#else
		uintptr_t pc = 0, fp = 0;
#endif
		uintptr_t lo = (uintptr_t)gp->stack.lo;
		uintptr_t hi = (uintptr_t)gp->stack.hi;

		n = 0;
		put_str(buf, sizeof buf, &n, "goro: backtrace of G ");
		put_u64(buf, sizeof buf, &n, gp->id, 10);
		put_str(buf, sizeof buf, &n, ":\n");
		goro__write_stderr(buf);
		print_frame(0, pc + 1);
		/* Frame pointers are always on: walk the chain of frame
		 * records (saved fp, return address) while it stays inside
		 * the G's populated stack and goes up. */
		for (int i = 1; i < 64; i++) {
			if (fp < lo || fp + 16 > hi || (fp & 7))
				break;
			if (fp < (uintptr_t)gp->stack.populated_lo &&
			    load_relaxed(&goro__stack_mode_now) !=
			    GORO_STACK_PLAIN)
				break;
			uintptr_t next = ((uintptr_t *)fp)[0];
			uintptr_t ret = ((uintptr_t *)fp)[1];
			if (!ret)
				break;
			print_frame(i, ret);
			if (next <= fp)
				break;
			fp = next;
		}
	}
	abort();
}

/* ---- Stats ---------------------------------------------------------------- */

void goro__stack_stats(struct goro_stats *st)
{
	st->stack_mode = (uint64_t)load_relaxed(&goro__stack_mode_now);
	st->stack_slots = load_relaxed(&goro__stack_ctr.slots);
	st->stack_growth_faults = load_relaxed(&goro__stack_ctr.growth_faults);
	st->stack_pages_populated =
		load_relaxed(&goro__stack_ctr.pages_populated);
	st->stack_pages_released = load_relaxed(&goro__stack_ctr.pages_released);
	st->stack_overflows = load_relaxed(&goro__stack_ctr.overflows);
}

int goro_stack_info(struct goro_stack_info *info)
{
	struct goro_g *gp = goro__g_self();
	size_t committed;

	if (!gp)
		return -EPERM;
	if (!info)
		return -EINVAL;
	if (load_relaxed(&goro__stack_mode_now) == GORO_STACK_PLAIN) {
		size_t n;
		char *low = lowest_resident(gp->stack.lo, gp->stack.hi, &n);
		committed = (size_t)(gp->stack.hi - low);
		if (low < gp->stack.populated_lo)
			gp->stack.populated_lo = low;
	} else {
		committed = (size_t)(gp->stack.hi - gp->stack.populated_lo);
	}
	if (committed > gp->stack.peak)
		gp->stack.peak = committed;
	info->limit = (size_t)(gp->stack.hi - gp->stack.lo);
	info->committed = committed;
	info->peak = gp->stack.peak;
	return 0;
}
