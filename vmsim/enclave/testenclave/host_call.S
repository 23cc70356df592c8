/*
 * vmsim test enclave host: calling __vdso_sgx_enter_enclave() so that the caller
 * keeps every callee-saved register whatever the enclave leaves in it (the Linux
 * SGX kselftest's tools/testing/selftests/sgx/call.S, its "unclobbered" calls).
 *
 * int sgx_enter_enclave_preserving(rdi, rsi, rdx, function, r8, r9, run):
 * the same arguments as the vDSO function, passed on to vdso_sgx_enter_enclave.
 */
	.text
	.globl	sgx_enter_enclave_preserving
	.type	sgx_enter_enclave_preserving, @function
sgx_enter_enclave_preserving:
	.cfi_startproc
	push	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	push	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
	push	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r12, 0
	push	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r13, 0
	push	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r14, 0
	push	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r15, 0
	/* the seventh argument (run): above the six saved registers and the return
	 * address; pushed again it is the callee's, with RSP 16-byte aligned */
	push	56(%rsp)
	.cfi_adjust_cfa_offset 8
	call	*vdso_sgx_enter_enclave(%rip)
	add	$8, %rsp
	.cfi_adjust_cfa_offset -8
	pop	%r15
	.cfi_adjust_cfa_offset -8
	pop	%r14
	.cfi_adjust_cfa_offset -8
	pop	%r13
	.cfi_adjust_cfa_offset -8
	pop	%r12
	.cfi_adjust_cfa_offset -8
	pop	%rbx
	.cfi_adjust_cfa_offset -8
	pop	%rbp
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	sgx_enter_enclave_preserving, . - sgx_enter_enclave_preserving

	.section .note.GNU-stack, "", @progbits
