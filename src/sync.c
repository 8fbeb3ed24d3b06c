/*
 * sync.c: G-aware synchronization (Go's package sync).
 *
 * Every primitive parks the G, never the M, and also works from plain
 * threads (which sleep on a futex).  Built on struct goro__waiter
 * (internal.h): a waiter record on the waiting side's stack.
 */
#include <errno.h>

#include "internal.h"

/* ---- WaitGroup ---------------------------------------------------- */

struct wg {
	struct goro__lock lock;		/* protects count and waiters */
	uint32_t pad;
	int64_t count;
	struct goro__waiter *waiters;	/* singly linked through next */
	uint64_t spare;
};
GORO_STATIC_ASSERT(sizeof(struct wg) <= sizeof(struct goro_wg), "wg fits");

int goro_wg_add(struct goro_wg *wgp, int64_t delta)
{
	struct wg *wg = (struct wg *)wgp;
	struct goro__waiter *list = NULL;

	if (!wg)
		return -EINVAL;
	goro__lock(&wg->lock);
	if (wg->count + delta < 0) {
		goro__unlock(&wg->lock);
		return -EINVAL;
	}
	wg->count += delta;
	if (wg->count == 0) {
		list = wg->waiters;
		wg->waiters = NULL;
	}
	goro__unlock(&wg->lock);
	while (list) {
		struct goro__waiter *next = list->next;
		goro__waiter_wake(list);	/* list may be gone after this */
		list = next;
	}
	return 0;
}

int goro_wg_done(struct goro_wg *wg)
{
	return goro_wg_add(wg, -1);
}

int goro_wg_wait(struct goro_wg *wgp)
{
	struct wg *wg = (struct wg *)wgp;
	struct goro__waiter w;

	if (!wg)
		return -EINVAL;
	goro__lock(&wg->lock);
	if (wg->count == 0) {
		goro__unlock(&wg->lock);
		return 0;
	}
	goro__waiter_init(&w);
	w.next = wg->waiters;
	wg->waiters = &w;
	goro__waiter_wait(&w, &wg->lock, WAIT_WG);
	return 0;
}
