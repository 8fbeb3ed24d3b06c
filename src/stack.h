/*
 * stack.h: the private interface between stack.c (the arena, slots and
 * the growth policy) and uffd.c (userfaultfd, the fault handler thread,
 * the SIGBUS/SIGSEGV handlers).  Nothing outside those two files uses it.
 */
#ifndef GORO_STACK_H
#define GORO_STACK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

#define GORO_PAGE 4096UL

/* The mode in force (enum goro_stack_mode).  Written by goro__stack_init
 * before any slot exists and by the fork child handler (uffd.c); read
 * everywhere, also from signal handlers. */
extern _Atomic int goro__stack_mode_now;

/* Process-wide counters (relaxed atomics; async-signal-safe). */
struct goro__stack_counters {
	_Atomic uint64_t slots;
	_Atomic uint64_t growth_faults;
	_Atomic uint64_t pages_populated;
	_Atomic uint64_t pages_released;
	_Atomic uint64_t overflows;
};
extern struct goro__stack_counters goro__stack_ctr;

/* ---- stack.c ---------------------------------------------------------- */

/* The G descriptor of the carved slot containing addr, or NULL if addr is
 * not inside a slot that was ever handed out.  Async-signal-safe: it
 * reads only immutable arena fields and atomics. */
struct goro_g *goro__stack_slot_of(const void *addr);

/* Is addr inside the arena reservation at all? */
bool goro__stack_in_arena(const void *addr);

/* Grows gp's populated region so that it covers addr, keeping it
 * contiguous from the top down (see "Growth" in stack.c).  Called by the
 * SIGBUS handler on the faulting thread or by the handler thread.
 * Async-signal-safe.  Returns 0 or -errno from UFFDIO_COPY. */
int goro__stack_grow(struct goro_g *gp, char *addr);

/* Prints the overflow report for gp (see "Overflow" in stack.c) and
 * aborts.  uc may be NULL (no registers: no backtrace).  Async-signal-
 * safe enough for a process about to die. */
_Noreturn void goro__stack_overflow(struct goro_g *gp, const void *addr,
				    const void *uc);

/* ---- uffd.c ----------------------------------------------------------- */

/* Opens a userfaultfd for `want` (GORO_STACK_UFFD_THREAD or _SIGBUS) and
 * registers [base, base + size) in MISSING mode; for the thread mode also
 * starts the handler thread.  Returns 0 or -errno; *how describes the
 * privilege path taken (a constant string). */
int goro__uffd_start(int want, char *base, size_t size, const char **how);

/* Populates [lo, lo + len) (page aligned, inside one slot's stack area,
 * never covering a guard) with zero pages through UFFDIO_COPY.  Pages
 * already present are skipped.  wake: also wake threads waiting on the
 * range (handler-thread mode).  Returns 0 or -errno. */
int goro__uffd_fill(char *lo, size_t len, bool wake);

/* Installs the SIGBUS and SIGSEGV handlers (SA_ONSTACK | SA_SIGINFO) and
 * adds SA_ONSTACK to handlers user code installed earlier (see "Signals"
 * at the top of uffd.c).  Idempotent.  Returns 0 or -errno. */
int goro__signals_init(void);
/* Adds SA_ONSTACK to every installed handler that lacks it. */
void goro__signals_fix_onstack(void);

/* The sigaction that is not ours (libc's, or a sanitizer's). */
int goro__real_sigaction(int sig, const struct sigaction *act,
			 struct sigaction *old);

#endif /* GORO_STACK_H */
