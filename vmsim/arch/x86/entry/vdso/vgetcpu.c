/*
 * vmsim vDSO: getcpu() (Linux: arch/x86/entry/vdso/vgetcpu.c).
 *
 * Linux's reads the CPU and node numbers with RDPID (or LSL of the per-CPU GDT
 * entry); here it is the getcpu system call, whose answer is the model's.
 */
#include "vdso_syscall.h"

struct getcpu_cache;

long __vdso_getcpu(unsigned int *cpu, unsigned int *node, struct getcpu_cache *unused);

long __vdso_getcpu(unsigned int *cpu, unsigned int *node, struct getcpu_cache *unused)
{
	return vdso_syscall(NR_getcpu, (long)cpu, (long)node, (long)unused);
}

long getcpu(unsigned int *cpu, unsigned int *node, struct getcpu_cache *unused)
	__attribute__((weak, alias("__vdso_getcpu")));
