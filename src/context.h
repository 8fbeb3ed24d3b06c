/*
 * context.h: the machine context of a G, and the one small interface to
 * the per-architecture switch code (context_<arch>.S).
 *
 * A saved context is just a stack pointer.  goro__ctx_switch pushes the
 * callee-saved registers (and the floating-point control state the ABI
 * says a callee must preserve) on the outgoing stack, stores the stack
 * pointer in *from, loads to->sp, pops the same registers and returns on
 * the new stack.  Everything else is caller-saved, so the C compiler has
 * already spilled it around the call.
 *
 * x86-64 frame at a saved sp (offsets in bytes; known to
 * context_x86_64.S):
 *
 *      sp+0   MXCSR (4 bytes) | x87 control word (2) | pad (2)
 *      sp+8   r15
 *      sp+16  r14
 *      sp+24  r13
 *      sp+32  r12
 *      sp+40  rbx
 *      sp+48  rbp
 *      sp+56  return address
 *
 * aarch64 frame at a saved sp (known to context_aarch64.S):
 *
 *      sp+0   x19 x20 ... x28 (10 x 8)
 *      sp+80  x29 (fp), x30 (lr)
 *      sp+96  d8 ... d15 (8 x 8)
 *      sp+160 fpcr, pad
 *
 * A fresh context (goro__ctx_make) holds a frame whose return address is
 * goro__ctx_trampoline, with fn and arg in registers the trampoline reads
 * (x86-64: rbx = fn, r12 = arg; aarch64: x19 = fn, x20 = arg).  The
 * trampoline zeroes the frame pointer and marks the return address
 * undefined in its CFI, so gdb, perf and libgcc's unwinder stop there:
 * a G's backtrace ends at its entry function.
 */
#ifndef GORO_CONTEXT_H
#define GORO_CONTEXT_H

#define GORO_CTX_SP 0		/* offset of sp in struct goro__ctx */

#ifndef __ASSEMBLER__
#include <stddef.h>

struct goro__ctx {
	void *sp;		/* offset GORO_CTX_SP; known to the .S files */
};
_Static_assert(offsetof(struct goro__ctx, sp) == GORO_CTX_SP,
	       "context_*.S assume sp at offset 0");

/* Saves the current context in *from and resumes *to.  Returns when
 * something switches back to *from.  Must be the last thing that touches
 * the outgoing stack's locals before the switch: after it returns, the
 * code may be on another thread (re-read thread-local state). */
void goro__ctx_switch(struct goro__ctx *from, struct goro__ctx *to);

/* Prepares *ctx so that switching to it runs fn(arg) on the stack that
 * ends at stack_top (exclusive).  fn must never return. */
void goro__ctx_make(struct goro__ctx *ctx, void *stack_top,
		    void (*fn)(void *), void *arg);

/* The entry trampoline (not called from C). */
void goro__ctx_trampoline(void);
#endif

#endif /* GORO_CONTEXT_H */
