/*
 * context.c: building a fresh context for the switch code in
 * context_<arch>.S (frame layouts in context.h).
 */
#include <stdint.h>
#include <string.h>

#include "context.h"

void goro__ctx_make(struct goro__ctx *ctx, void *stack_top,
		    void (*fn)(void *), void *arg)
{
	uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
#if defined(__x86_64__)
	/* After goro__ctx_switch pops this frame and returns into the
	 * trampoline, sp = top - 16: 16-byte aligned before its call, as the
	 * ABI wants.  The 16 bytes above stay as a zero "caller" slot. */
	uint64_t *f = (uint64_t *)(top - 16 - 64);
	memset(f, 0, 64 + 16);
	f[0] = 0x037F00001F80ull;	/* x87 CW 0x37f, MXCSR 0x1f80 (defaults) */
	f[1] = 0;			/* r15 */
	f[2] = 0;			/* r14 */
	f[3] = 0;			/* r13 */
	f[4] = (uint64_t)(uintptr_t)arg;	/* r12 */
	f[5] = (uint64_t)(uintptr_t)fn;	/* rbx */
	f[6] = 0;			/* rbp */
	f[7] = (uint64_t)(uintptr_t)goro__ctx_trampoline;
	ctx->sp = f;
#elif defined(__aarch64__)
	uint64_t *f = (uint64_t *)(top - 176 - 16);
	memset(f, 0, 176 + 16);
	f[0] = (uint64_t)(uintptr_t)fn;		/* x19 */
	f[1] = (uint64_t)(uintptr_t)arg;	/* x20 */
	f[11] = (uint64_t)(uintptr_t)goro__ctx_trampoline; /* x30 */
	f[20] = 0;				/* fpcr: defaults */
	ctx->sp = f;
#else
#error "goro: no context switch for this architecture (see context.h)"
#endif
}
