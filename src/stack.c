/*
 * stack.c: the stack arena.
 *
 * PLACEHOLDER LAYOUT (plain demand paging; the userfaultfd issue grows this
 * file): one MAP_NORESERVE reservation, carved into slots by a bump
 * pointer; each slot is
 *
 *   guard_lo      lo                                   desc        hi
 *   | guard page | stack, grows down <-------------- | goro_g |
 *
 * and the G descriptor sits at the top of its own slot, so a fresh G
 * touches one page.  Slots come in power-of-two size classes, 16 KiB to
 * 256 MiB; a free slot goes on its class's list.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define CLS_MIN_SHIFT 14
#define NCLS 15

static struct {
	char *base;
	size_t size;
	struct goro__lock lock;		/* protects brk and free[] */
	size_t brk;
	struct goro_g *free[NCLS];
	_Atomic uint64_t slots;
} arena;

uint32_t goro__stack_default_cls;

size_t goro__stack_class_size(size_t size, uint32_t *cls)
{
	for (uint32_t c = 0; c < NCLS; c++) {
		size_t s = (size_t)1 << (CLS_MIN_SHIFT + c);
		if (size <= s) {
			if (cls)
				*cls = c;
			return s;
		}
	}
	return 0;
}

int goro__stack_init(size_t default_size)
{
	if (!goro__stack_class_size(default_size, &goro__stack_default_cls))
		return -EINVAL;
	if (arena.base)
		return 0;
	for (size_t sz = (size_t)2 << 40; sz >= ((size_t)1 << 30); sz >>= 1) {
		void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED) {
			arena.base = p;
			arena.size = sz;
			madvise(p, sz, MADV_NOHUGEPAGE);
			return 0;
		}
	}
	return -ENOMEM;
}

void goro__stack_shutdown(void)
{
}

struct goro_g *goro__stack_alloc(size_t size, int *err)
{
	uint32_t cls;
	size_t ssz = goro__stack_class_size(size, &cls);
	struct goro_g *gp;
	char *slot;

	if (!ssz) {
		*err = -EINVAL;
		return NULL;
	}
	goro__lock(&arena.lock);
	gp = arena.free[cls];
	if (gp) {
		arena.free[cls] = gp->schedlink;
		goro__unlock(&arena.lock);
		gp->schedlink = NULL;
		return gp;
	}
	if (arena.brk + ssz > arena.size) {
		goro__unlock(&arena.lock);
		*err = -ENOMEM;
		return NULL;
	}
	slot = arena.base + arena.brk;
	arena.brk += ssz;
	goro__unlock(&arena.lock);
	atomic_fetch_add(&arena.slots, 1);

	size_t page = 4096;
	gp = (struct goro_g *)((uintptr_t)(slot + ssz - sizeof *gp) & ~(uintptr_t)63);
	memset(gp, 0, sizeof *gp);
	gp->stack.guard_lo = slot;
	gp->stack.lo = slot + page;
	gp->stack.hi = slot + ssz;
	gp->stack.cls = cls;
	gp->stack.populated_lo = slot + ssz - page;
	return gp;
}

void goro__stack_release(struct goro_g *gp)
{
	uint32_t cls = gp->stack.cls;
	goro__lock(&arena.lock);
	gp->schedlink = arena.free[cls];
	arena.free[cls] = gp;
	goro__unlock(&arena.lock);
}

void goro__stack_stats(struct goro_stats *st)
{
	st->stack_mode = GORO_STACK_PLAIN;
	st->stack_slots = atomic_load(&arena.slots);
}

int goro__stack_m_init(struct goro_m *mp)
{
	(void)mp;
	return 0;
}

void goro__stack_m_exit(struct goro_m *mp)
{
	(void)mp;
}

int goro_stack_info(struct goro_stack_info *info)
{
	struct goro_g *gp = goro__g_self();
	if (!gp)
		return -EPERM;
	if (!info)
		return -EINVAL;
	info->limit = (size_t)(gp->stack.hi - gp->stack.lo);
	info->committed = (size_t)(gp->stack.hi - gp->stack.populated_lo);
	info->peak = gp->stack.peak > info->committed ? gp->stack.peak : info->committed;
	return 0;
}

void goro__stack_trim(struct goro_g *gp)
{
	(void)gp;
}
