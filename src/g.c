/*
 * g.c: the life of a G: spawn, run, exit, join, and reuse.
 *
 *   goro_spawn --> G_RUNNABLE --> G_RUNNING <--> G_WAITING / G_SYSCALL
 *                                    |
 *                                  exit
 *                                    |
 *            detached: G_IDLE (free list)   joinable: G_DEAD --join--> G_IDLE
 *
 * A G is its stack slot: the descriptor lives at the top of the slot
 * (stack.c), so a free G is a free stack.  Free Gs of the default stack
 * size are cached per P (no lock; up to P_GFREE_MAX), then in a global
 * list under sched.gflock (up to GLOBAL_GFREE_MAX), and beyond that are
 * given back to the arena, which releases their memory.  A G is trimmed
 * (goro__stack_trim) when it finishes, so a cached G holds only a few
 * pages whatever depth it reached.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "sanitizer.h"

#define sched goro__sched

/* Read without the owner's lock by goro_stats and the allocation hint:
 * relaxed atomic loads and stores (plain moves on x86) keep that defined. */
#define rd(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define wr(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

#define P_GFREE_MAX 64
#define GLOBAL_GFREE_MAX 4096
#define GOID_BATCH 16


struct goro_g *goro__g_alloc(struct goro_p *pp, size_t stack_size, int *err)
{
	uint32_t cls = goro__stack_default_cls;
	struct goro_g *gp = NULL;

	if (stack_size == 0)	/* the default: no class lookup */
		stack_size = sched.stack_size;
	else if (!goro__stack_class_size(stack_size, &cls)) {
		*err = -EINVAL;
		return NULL;
	}
	if (cls == goro__stack_default_cls) {
		if (pp && pp->gfree) {
			gp = pp->gfree;
			pp->gfree = gp->schedlink;
			wr(pp->ngfree, pp->ngfree - 1);
			return gp;
		}
		/* A racy hint, checked again under the lock. */
		if (rd(sched.gfree)) {
			goro__lock(&sched.gflock);
			/* Take a batch into the P's cache while we are here. */
			while (sched.gfree && (!gp || (pp && pp->ngfree < P_GFREE_MAX / 2))) {
				struct goro_g *g = sched.gfree;
				wr(sched.gfree, g->schedlink);
				wr(sched.ngfree, sched.ngfree - 1);
				if (!gp) {
					gp = g;
				} else {
					g->schedlink = pp->gfree;
					pp->gfree = g;
					wr(pp->ngfree, pp->ngfree + 1);
				}
			}
			goro__unlock(&sched.gflock);
			if (gp)
				return gp;
		}
	}
	return goro__stack_alloc(stack_size, err);
}

/* Gives a G's slot back to stack.c, which may clear the descriptor. */
static void release_slot(struct goro_g *gp)
{
	goro__tsan_fiber_destroy(gp->tsan_fiber);
	gp->tsan_fiber = NULL;
	goro__stack_release(gp);
}

void goro__g_free(struct goro_p *pp, struct goro_g *gp)
{
	if (gp->stack.cls != goro__stack_default_cls) {
		release_slot(gp);
		return;
	}
	if (pp) {
		gp->schedlink = pp->gfree;
		pp->gfree = gp;
		wr(pp->ngfree, pp->ngfree + 1);
		if (pp->ngfree < P_GFREE_MAX)
			return;
		/* Move half of the cache to the global list. */
		goro__lock(&sched.gflock);
		while (pp->ngfree > P_GFREE_MAX / 2) {
			struct goro_g *g = pp->gfree;
			pp->gfree = g->schedlink;
			wr(pp->ngfree, pp->ngfree - 1);
			if (sched.ngfree >= GLOBAL_GFREE_MAX) {
				goro__unlock(&sched.gflock);
				release_slot(g);
				goro__lock(&sched.gflock);
				continue;
			}
			g->schedlink = sched.gfree;
			wr(sched.gfree, g);
			wr(sched.ngfree, sched.ngfree + 1);
		}
		goro__unlock(&sched.gflock);
		return;
	}
	goro__lock(&sched.gflock);
	if (sched.ngfree < GLOBAL_GFREE_MAX) {
		gp->schedlink = sched.gfree;
		wr(sched.gfree, gp);
		wr(sched.ngfree, sched.ngfree + 1);
		gp = NULL;
	}
	goro__unlock(&sched.gflock);
	if (gp)
		release_slot(gp);
}

static uint64_t new_goid(struct goro_p *pp)
{
	if (!pp)
		return atomic_fetch_add(&sched.goid_gen, 1) + 1;
	if (pp->goidcache == pp->goidcacheend) {
		pp->goidcache = atomic_fetch_add(&sched.goid_gen, GOID_BATCH) + 1;
		pp->goidcacheend = pp->goidcache + GOID_BATCH;
	}
	return pp->goidcache++;
}

static void g_entry(void *arg)
{
	(void)arg;
	goro__g_main();
}

_Noreturn void goro__g_main(void)
{
	struct goro_m *mp;
	struct goro_g *gp;
	void *result;

	goro__san_finish_switch(NULL);
	mp = goro__m_self();
	/* The first thing on a new context: finish the previous G's switch. */
	goro__after_switch(mp);
	gp = mp->curg;
	result = gp->fn(gp->arg);
	goro_exit(result);
}

int goro_spawn(goro_t *out, void *(*fn)(void *), void *arg,
	       const struct goro_spawn_opts *opts)
{
	struct goro_m *mp;
	struct goro_p *pp;
	struct goro_g *gp;
	size_t size;
	int err = 0;

	if (!fn)
		return -EINVAL;
	if (opts) {
		for (size_t i = 0; i < sizeof opts->reserved / sizeof opts->reserved[0]; i++)
			if (opts->reserved[i])
				return -EINVAL;
	}
	err = goro__ensure_init();
	if (err)
		return err;
	size = opts && opts->stack_size ? opts->stack_size : 0;
	mp = goro__m_self();
	pp = mp && !mp->in_block ? mp->p : NULL;
	gp = goro__g_alloc(pp, size, &err);
	if (!gp)
		return err;
	if (!gp->tsan_fiber)
		gp->tsan_fiber = goro__tsan_fiber_create();

	gp->id = new_goid(pp);
	gp->fn = fn;
	gp->arg = arg;
	gp->result = NULL;
	gp->schedlink = NULL;
	gp->m = NULL;
	gp->detached = out == NULL;
	gp->joined = false;
	gp->joiner = NULL;
	gp->wait_reason = WAIT_NONE;
	gp->io_deadline = 0;
	gp->io_req = NULL;
	gp->io_res = 0;
	if (opts && opts->name) {
		strncpy(gp->name, opts->name, GORO_G_NAME_MAX - 1);
		gp->name[GORO_G_NAME_MAX - 1] = '\0';
	} else {
		gp->name[0] = '\0';
	}
	goro__san_unpoison(gp->stack.populated_lo,
			   (size_t)((char *)gp - (char *)gp->stack.populated_lo));
	goro__ctx_make(&gp->ctx, gp, g_entry, NULL);
	if (pp)
		store_relaxed(&pp->n_created, load_relaxed(&pp->n_created) + 1);
	else
		atomic_fetch_add(&sched.n_created_nop, 1);
	goro__g_set_status(gp, G_IDLE, G_RUNNABLE);
	if (out) {
		out->g = gp;
		out->id = gp->id;
	}
	goro__sched_put_new(gp);
	return 0;
}

void goro_exit(void *result)
{
	struct goro_m *mp = goro__m_self();
	struct goro_g *gp = mp && !mp->in_block ? mp->curg : NULL;

	if (!gp)
		goro__throw("goro_exit called outside a G");
	gp->result = result;
	goro__g_exit_current(mp, gp);
}

/* Runs on the context after the exiting G (AFTER_EXIT). */
void goro__g_finish_exit(struct goro_p *pp, struct goro_g *gp)
{
	struct goro__waiter *w;

	store_relaxed(&pp->n_exited, load_relaxed(&pp->n_exited) + 1);
	goro__stack_trim(gp);
	if (gp->detached) {
		goro__g_set_status(gp, G_RUNNING, G_IDLE);
		goro__g_free(pp, gp);
		return;
	}
	goro__lock(&gp->jlock);
	goro__g_cas_status(gp, G_RUNNING, G_DEAD);
	w = gp->joiner;
	gp->joiner = NULL;
	goro__unlock(&gp->jlock);
	if (w)
		goro__waiter_wake(w);
}

int goro_join(goro_t *h, void **result)
{
	struct goro_g *gp, *self;
	struct goro__waiter w;
	struct goro_m *mp;

	if (!h || !h->g)
		return -EINVAL;
	gp = h->g;
	self = goro__g_self();
	if (self == gp)
		return -EDEADLK;
	goro__lock(&gp->jlock);
	if (gp->id != h->id || gp->detached || gp->joined ||
	    load_relaxed(&gp->status) == G_IDLE) {
		goro__unlock(&gp->jlock);
		return -ESRCH;
	}
	if (gp->joiner) {
		goro__unlock(&gp->jlock);
		return -EINVAL;	/* someone else is joining it */
	}
	if (load_acquire(&gp->status) != G_DEAD) {
		goro__waiter_init(&w);
		gp->joiner = &w;
		goro__waiter_wait(&w, &gp->jlock, WAIT_JOIN);
		goro__lock(&gp->jlock);
	}
	GORO_ASSERT(load_acquire(&gp->status) == G_DEAD);
	gp->joined = true;
	if (result)
		*result = gp->result;
	goro__unlock(&gp->jlock);
	h->g = NULL;
	goro__g_cas_status(gp, G_DEAD, G_IDLE);
	mp = goro__m_self();
	goro__g_free(mp && !mp->in_block ? mp->p : NULL, gp);
	return 0;
}

uint64_t goro_self_id(void)
{
	struct goro_g *gp = goro__g_self();
	return gp ? gp->id : 0;
}

const char *goro_self_name(void)
{
	struct goro_g *gp = goro__g_self();
	return gp ? gp->name : NULL;
}
