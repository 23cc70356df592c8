/*
 * vmsim vDSO: the one way its functions enter the kernel, the syscall instruction.
 *
 * Linux's vDSO enters the kernel only when it cannot answer in user space (the
 * *_fallback() helpers of arch/x86/include/asm/vdso/gettimeofday.h). In the model
 * [vvar] and [vvar_vclock] hold no clock or random-state data, so every function of
 * this image takes that path; the model serves the call.
 */
#ifndef VMSIM_VDSO_SYSCALL_H
#define VMSIM_VDSO_SYSCALL_H

/* x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl) */
#define NR_gettimeofday		96
#define NR_time			201
#define NR_clock_gettime	228
#define NR_clock_getres		229
#define NR_getcpu		309
#define NR_getrandom		318

#define EFAULT			14
#define PAGE_SIZE		4096UL

/*
 * A system call with up to three arguments: the number in rax, the arguments in
 * rdi, rsi, rdx; the kernel returns in rax (a negative errno on failure) and
 * clobbers rcx (the return rip) and r11 (the saved rflags).
 */
static inline long vdso_syscall(long nr, long a1, long a2, long a3)
{
	long ret;

	asm volatile("syscall"
		     : "=a" (ret)
		     : "a" (nr), "D" (a1), "S" (a2), "d" (a3)
		     : "rcx", "r11", "memory");
	return ret;
}

#endif
