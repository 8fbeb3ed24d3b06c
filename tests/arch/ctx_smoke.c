#include <goro.h>
#include <stdio.h>
#include <stdint.h>
#include <fenv.h>
#include "context.h"

/* Smoke test of the aarch64 context switch and scheduler under qemu-user
 * (tools/check-aarch64): callee-saved FP state, FPCR, yields, joins. */
static struct goro__ctx m, a;
static volatile int hits;
static void fa(void *arg) { (void)arg; for (;;) { hits++; goro__ctx_switch(&a, &m); } }
/* callee-saved d8 must survive a switch: keep a double live across it */
__attribute__((noinline)) static double across(double x) {
	register double keep asm("d8") = x * 3.0;
	__asm__ volatile("" : "+w"(keep));
	goro__ctx_switch(&m, &a);
	__asm__ volatile("" : "+w"(keep));
	return keep;
}
static void *yielder(void *arg) { uintptr_t n = (uintptr_t)arg; double acc = 0.5;
	for (uintptr_t i = 0; i < n; i++) { acc += 1.0; goro_yield(); } return (void *)(uintptr_t)acc; }
static void *spawner(void *arg) { (void)arg; goro_t h[100]; uint64_t s = 0;
	for (int i = 0; i < 100; i++) goro_spawn(&h[i], yielder, (void *)(uintptr_t)(i + 1), NULL);
	for (int i = 0; i < 100; i++) { void *r; goro_join(&h[i], &r); s += (uintptr_t)r; }
	return (void *)(uintptr_t)s; }
int main(void) {
	static char stk[65536];
	goro__ctx_make(&a, stk + sizeof stk, fa, NULL);
	fesetround(FE_DOWNWARD);
	double r = 0;
	for (int i = 0; i < 1000; i++) r = across(2.0 + i);
	int rm = fegetround();
	printf("bare: hits=%d d8=%g round_kept=%d\n", hits, r, rm == FE_DOWNWARD);
	fesetround(FE_TONEAREST);
	void *res; int e = goro_run(spawner, NULL, &res);
	/* each yielder returns (uintptr_t)(0.5 + n) = n: sum 1..100 = 5050 */
	printf("sched: rc=%d sum=%lu (want 5050)\n", e, (unsigned long)(uintptr_t)res);
	return !(hits == 1000 && r == 3.0 * (2.0 + 999) && rm == FE_DOWNWARD && e == 0 && (uintptr_t)res == 5050);
}
