/*
 * vmsim vDSO: the notes (Linux: arch/x86/entry/vdso/vdso-note.S).
 *
 * The "Linux" note of type 0 holds LINUX_VERSION_CODE, as in Linux's vDSO (glibc
 * before 2.36 took the kernel's version from it instead of calling uname; 2.36 no
 * longer checks the version). build.py passes the value (-DLINUX_VERSION_CODE=...).
 */
	.section .note.Linux, "a", @note
	.balign 4
	.long	2f - 1f			/* n_namesz */
	.long	4f - 3f			/* n_descsz */
	.long	0			/* n_type */
1:	.asciz	"Linux"
2:	.balign 4
3:	.long	LINUX_VERSION_CODE
4:	.balign 4

	.section .note.GNU-stack, "", @progbits
