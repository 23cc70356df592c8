/*
 * vmsim test enclave: the TCS pages, the entry points, the SSA frames and the stacks
 * (after the Linux SGX kselftest's tools/testing/selftests/sgx/test_encl_bootstrap.S:
 * the same TCS fields, entry ABI and layout, written here for this project).
 *
 * EENTER arrives at an entry point with RBX = the TCS, RCX = the address after the
 * host's ENCLU (where EEXIT returns), RDI = the operation, and RSP still the host's.
 * The entry takes this thread's own stack, saves the host's RSP and the return
 * address on it, calls encl_dispatch(RDI) and EEXITs to the return address with
 * the host's RSP back. Before EEXIT it clears every register the enclave may have
 * left a secret in that the host's calling convention does not restore anyway:
 * RCX, RDX, RSI, RDI, R8-R11 and the status flags; RAX is EEXIT, RBX the return
 * address, and RBP, R12-R15 hold the host's values again (encl_dispatch() is a C
 * function and preserves them), as the vDSO's ABI asks of an enclave
 * (Documentation/arch/x86/sgx.rst, arch/x86/include/uapi/asm/sgx.h).
 *
 * Two entry points:
 *   encl_entry      for the two TCS pages below: TCS #n (n = 0, 1, at n pages from
 *                   the base) runs on stack page n of encl_stacks;
 *   encl_dyn_entry  for a TCS made at run time (ENCL_OP_INIT_TCS_PAGE): its stack
 *                   is the page just below the TCS.
 *
 * The enclave is linked at 0 and never relocated: a link-time address is an offset
 * from the enclave base, and a run-time address is found RIP-relative.
 */

#define EEXIT			4
#define PAGE_SIZE		4096
#define NR_STATIC_TCS		2
/* RFLAGS.DF (the SysV ABI wants it clear on a call) and RFLAGS.AC (alignment checks) */
#define RFLAGS_DF		(1 << 10)
#define RFLAGS_AC		(1 << 18)

/* One TCS (struct sgx_tcs): its SSA frame, one frame, the entry, no FS/GS offsets. */
.macro	TCS ssa
	.quad	0			/* STATE (the CPU's) */
	.quad	0			/* FLAGS: no DBGOPTIN */
	.quad	\ssa			/* OSSA */
	.long	0			/* CSSA (the CPU's) */
	.long	1			/* NSSA */
	.quad	encl_entry		/* OENTRY */
	.quad	0			/* AEP (the CPU's) */
	.quad	0			/* OFSBASE */
	.quad	0			/* OGSBASE */
	.long	0xffffffff		/* FSLIMIT */
	.long	0xffffffff		/* GSLIMIT */
	.fill	4024, 1, 0		/* reserved */
.endm

	.section ".tcs", "aw"
	.balign	PAGE_SIZE
	.globl	encl_tcs
encl_tcs:
	TCS	encl_ssa
	TCS	encl_ssa + PAGE_SIZE

	.text
	.globl	encl_entry, encl_dyn_entry
	.type	encl_entry, @function
encl_entry:
	lea	__encl_base(%rip), %rax
	sub	%rax, %rbx			/* RBX: this TCS's offset, n pages */
	lea	encl_stacks + PAGE_SIZE(%rip), %rax
	add	%rbx, %rax			/* RAX: the top of stack page n */
	jmp	.Lon_own_stack
	.size	encl_entry, . - encl_entry

	.type	encl_dyn_entry, @function
encl_dyn_entry:
	mov	%rbx, %rax			/* RAX: the top of the page below the TCS */

.Lon_own_stack:
	xchg	%rax, %rsp
	push	%rax				/* the host's RSP */
	push	%rcx				/* where EEXIT returns */
	pushf
	andq	$~(RFLAGS_DF | RFLAGS_AC), (%rsp)
	popf
	call	encl_dispatch

	pop	%rbx				/* the EEXIT target */
	pop	%rax
	mov	%rax, %rsp			/* the host's stack again */
	xor	%ecx, %ecx
	xor	%edx, %edx
	xor	%esi, %esi
	xor	%edi, %edi
	xor	%r8d, %r8d
	xor	%r9d, %r9d
	xor	%r10d, %r10d
	xor	%r11d, %r11d
	add	%rdx, %rdx			/* OF, SF, AF, CF clear; ZF, PF set: no flag left */
	mov	$EEXIT, %eax
	enclu
	ud2					/* EEXIT does not come back */
	.size	encl_dyn_entry, . - encl_dyn_entry

/*
 * One SSA frame per static TCS (SECS.SSAFRAMESIZE is one page), then one stack page
 * each. The linker script puts them after the rest of the data, page aligned.
 */
	.section ".data.encl_ssa", "aw"
	.balign	PAGE_SIZE
	.globl	encl_ssa
encl_ssa:
	.fill	NR_STATIC_TCS * PAGE_SIZE, 1, 0

	.section ".data.encl_stacks", "aw"
	.balign	PAGE_SIZE
	.globl	encl_stacks
encl_stacks:
	.fill	NR_STATIC_TCS * PAGE_SIZE, 1, 0

	.section .note.GNU-stack, "", @progbits
