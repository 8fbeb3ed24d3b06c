/*
 * context_x86_64.S: G context switch for x86-64 (System V ABI).
 * The frame layout is drawn in context.h.
 */
#include "context.h"

	.text

/*
 * void goro__ctx_switch(struct goro__ctx *from, struct goro__ctx *to)
 * Save callee-saved state on this stack, store sp in *from, load to->sp,
 * restore and return there.
 */
	.globl	goro__ctx_switch
	.hidden	goro__ctx_switch
	.type	goro__ctx_switch, @function
	.p2align 4
goro__ctx_switch:
	.cfi_startproc
	pushq	%rbp			/* callee-saved integer registers */
	.cfi_adjust_cfa_offset 8
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	subq	$8, %rsp		/* floating-point control state */
	.cfi_adjust_cfa_offset 8
	stmxcsr	0(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, GORO_CTX_SP(%rdi)	/* from->sp = sp */
	movq	GORO_CTX_SP(%rsi), %rsp	/* sp = to->sp: now on the other stack */
	ldmxcsr	0(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	popq	%r14
	.cfi_adjust_cfa_offset -8
	popq	%r13
	.cfi_adjust_cfa_offset -8
	popq	%r12
	.cfi_adjust_cfa_offset -8
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	goro__ctx_switch, .-goro__ctx_switch

/*
 * goro__ctx_trampoline: first code of a fresh context.  rbx = fn,
 * r12 = arg (placed by goro__ctx_make).  Calls fn(arg), which never
 * returns.  The CFI marks the return address undefined so that unwinders
 * stop here; rbp = 0 ends frame-pointer walks.
 */
	.globl	goro__ctx_trampoline
	.hidden	goro__ctx_trampoline
	.type	goro__ctx_trampoline, @function
	.p2align 4
goro__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp		/* end of the frame-pointer chain */
	movq	%r12, %rdi		/* fn(arg) */
	callq	*%rbx
	ud2				/* fn returned: a bug */
	.cfi_endproc
	.size	goro__ctx_trampoline, .-goro__ctx_trampoline

	.section .note.GNU-stack,"",@progbits
