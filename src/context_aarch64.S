/*
 * context_aarch64.S: G context switch for AArch64 (AAPCS64).
 * The frame layout is drawn in context.h.  Callee-saved: x19-x28, x29
 * (frame pointer), x30 (link register), the low 64 bits of v8-v15, and
 * FPCR (rounding mode and friends, which the ABI treats as callee-saved
 * state of the thread).
 */
#include "context.h"

	.text

/* void goro__ctx_switch(struct goro__ctx *from, struct goro__ctx *to) */
	.globl	goro__ctx_switch
	.hidden	goro__ctx_switch
	.type	goro__ctx_switch, %function
	.p2align 4
goro__ctx_switch:
	.cfi_startproc
	sub	sp, sp, #176
	.cfi_adjust_cfa_offset 176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x9, fpcr
	str	x9, [sp, #160]
	mov	x9, sp			/* from->sp = sp */
	str	x9, [x0, #GORO_CTX_SP]
	ldr	x9, [x1, #GORO_CTX_SP]	/* sp = to->sp */
	mov	sp, x9
	ldr	x9, [sp, #160]
	msr	fpcr, x9
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #176
	.cfi_adjust_cfa_offset -176
	ret
	.cfi_endproc
	.size	goro__ctx_switch, .-goro__ctx_switch

/* First code of a fresh context: x19 = fn, x20 = arg. */
	.globl	goro__ctx_trampoline
	.hidden	goro__ctx_trampoline
	.type	goro__ctx_trampoline, %function
	.p2align 4
goro__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	mov	x29, #0			/* end of the frame-pointer chain */
	mov	x30, #0
	mov	x0, x20
	blr	x19
	brk	#0			/* fn returned: a bug */
	.cfi_endproc
	.size	goro__ctx_trampoline, .-goro__ctx_trampoline

	.section .note.GNU-stack,"",%progbits
