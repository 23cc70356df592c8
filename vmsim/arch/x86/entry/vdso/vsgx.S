/*
 * vmsim vDSO: __vdso_sgx_enter_enclave() (Linux: arch/x86/entry/vdso/vsgx.S), written
 * here from its documented ABI: Documentation/arch/x86/sgx.rst and the comments of
 * arch/x86/include/uapi/asm/sgx.h (vdso_sgx_enter_enclave_t, struct
 * sgx_enclave_run, sgx_enclave_user_handler_t).
 *
 * int __vdso_sgx_enter_enclave(unsigned long rdi, unsigned long rsi,
 *				unsigned long rdx, unsigned int function,
 *				unsigned long r8, unsigned long r9,
 *				struct sgx_enclave_run *run);
 *
 * function must be EENTER or ERESUME and run->reserved all zero, else -EINVAL.
 * ENCLU runs with EAX = function, RBX = run->tcs and RCX = the asynchronous exit
 * pointer, which is the ENCLU itself: after an AEX the kernel fixes (a page fault
 * it serves), the CPU comes back there and ERESUMEs. rdi, rsi, rdx, r8 and r9 pass
 * through to the enclave.
 *
 * The enclave's EEXIT returns to the instruction after ENCLU (the RCX that EENTER
 * hands the enclave): run->function = EEXIT. An exception on ENCLU or inside the
 * enclave that the kernel does not fix comes back through the exception table
 * (fixup_vdso_exception(): RIP = the fixup, EDI = vector, ESI = error code,
 * RDX = address): run->function = EAX (ERESUME after an AEX, else the leaf that
 * faulted) and run->exception_vector, _error_code and _addr are set.
 *
 * Then, on either path, a run->user_handler is called as
 * sgx_enclave_user_handler_t(rdi, rsi, rdx, rsp at the exit, r8, r9, run), on a
 * 16-byte aligned stack with DF clear: a positive return is the next ENCLU leaf
 * (checked as above), anything else is returned. Without a handler: 0.
 *
 * RBX and RBP are restored from the frame anchored at RBP, so the enclave may
 * leave RSP elsewhere (to pass data to the handler); preserving the other
 * callee-saved registers, the x87/SSE state and the rest of the x86-64 ABI is the
 * enclave's business, as the ABI says.
 */

#define EENTER			2
#define ERESUME			3
#define EEXIT			4
#define EINVAL			22

/* struct sgx_enclave_run: byte offsets of its fields, and its size */
#define RUN_TCS			0
#define RUN_FUNCTION		8
#define RUN_EXCEPTION_VECTOR	12
#define RUN_EXCEPTION_ERROR	14
#define RUN_EXCEPTION_ADDR	16
#define RUN_USER_HANDLER	24
#define RUN_RESERVED		40
#define RUN_SIZE		256

/* the seventh argument (run), above the saved RBP and the return address */
#define ARG_RUN			16

	.text
	.globl	__vdso_sgx_enter_enclave
	.type	__vdso_sgx_enter_enclave, @function
	.balign	16
__vdso_sgx_enter_enclave:
	.cfi_startproc
	push	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	mov	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	push	%rbx
	.cfi_offset %rbx, -24
	mov	%ecx, %eax

.Lenter:				/* EAX: the ENCLU leaf asked for */
	cmp	$EENTER, %eax
	je	1f
	cmp	$ERESUME, %eax
	jne	.Linvalid
1:	mov	ARG_RUN(%rbp), %rbx
	mov	$RUN_RESERVED, %ecx
2:	cmpq	$0, (%rbx, %rcx)
	jne	.Linvalid
	add	$8, %ecx
	cmp	$RUN_SIZE, %ecx
	jne	2b
	mov	RUN_TCS(%rbx), %rbx
	lea	.Lenclu(%rip), %rcx
.Lenclu:
	enclu

	/* the enclave's EEXIT */
	mov	ARG_RUN(%rbp), %rbx
	movl	$EEXIT, RUN_FUNCTION(%rbx)

.Lexited:				/* RBX: run */
	cmpq	$0, RUN_USER_HANDLER(%rbx)
	jne	.Lcall_handler
	xor	%eax, %eax

.Lreturn:				/* EAX: the return value */
	mov	-8(%rbp), %rbx
	.cfi_remember_state
	.cfi_restore %rbx
	leave
	.cfi_def_cfa %rsp, 8
	.cfi_restore %rbp
	ret
	.cfi_restore_state

.Linvalid:
	mov	$-EINVAL, %eax
	jmp	.Lreturn

.Lexception:				/* the fixup of ENCLU's exception table entry */
	mov	ARG_RUN(%rbp), %rbx
	mov	%eax, RUN_FUNCTION(%rbx)
	mov	%di, RUN_EXCEPTION_VECTOR(%rbx)
	mov	%si, RUN_EXCEPTION_ERROR(%rbx)
	mov	%rdx, RUN_EXCEPTION_ADDR(%rbx)
	jmp	.Lexited

.Lcall_handler:				/* RBX: run; RSP: as the enclave left it */
	mov	%rsp, %rcx		/* the fourth argument: RSP at the exit */
	mov	%rbx, %rax
	mov	%rsp, %rbx		/* callee-saved: kept across the call */
	and	$-16, %rsp
	sub	$8, %rsp
	push	%rax			/* the seventh argument: run; RSP 16-byte aligned */
	cld
	mov	RUN_USER_HANDLER(%rax), %rax
	lfence				/* no speculation into a loaded call target */
	call	*%rax
	mov	%rbx, %rsp
	test	%eax, %eax
	jg	.Lenter
	jmp	.Lreturn
	.cfi_endproc
	.size	__vdso_sgx_enter_enclave, . - __vdso_sgx_enter_enclave

/*
 * The vDSO's exception table (vdso_image.extable): pairs of (faulting instruction,
 * fixup), each field the distance from itself to its target.
 */
	.section __ex_table, "a"
	.balign	4
	.long	.Lenclu - .
	.long	.Lexception - .

	.section .note.GNU-stack, "", @progbits
