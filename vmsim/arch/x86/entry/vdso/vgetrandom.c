/*
 * vmsim vDSO: getrandom() (Linux: arch/x86/entry/vdso/vgetrandom.c over
 * lib/vdso/getrandom.c, 6.11).
 *
 * Linux's generates random bytes in user space from a per-thread state the caller
 * allocates (opaque_state, opaque_len) and a generation counter in [vvar]. Here the
 * interface is kept and the bytes come from the getrandom system call:
 *  - the parameter query (opaque_len == ~0UL, no buffer, len 0, flags 0) fills
 *    struct vgetrandom_opaque_params as this kernel does: a state of
 *    VGETRANDOM_STATE_SIZE bytes, mapped PROT_READ|PROT_WRITE,
 *    MAP_DROPPABLE|MAP_ANONYMOUS;
 *  - a state that straddles a page boundary is -EFAULT, as in the kernel;
 *  - everything else is the system call (the kernel's fallback).
 */
#include "vdso_syscall.h"

/* sizeof(struct vgetrandom_state) on x86-64 (include/vdso/getrandom.h) */
#define VGETRANDOM_STATE_SIZE	144
#define PROT_READ		0x1
#define PROT_WRITE		0x2
#define MAP_DROPPABLE		0x08
#define MAP_ANONYMOUS		0x20

/* include/uapi/linux/random.h: what the parameter query answers */
struct vgetrandom_opaque_params {
	unsigned int size_of_opaque_state;
	unsigned int mmap_prot;
	unsigned int mmap_flags;
	unsigned int reserved[13];
};

long __vdso_getrandom(void *buffer, unsigned long len, unsigned int flags,
		      void *opaque_state, unsigned long opaque_len);

long __vdso_getrandom(void *buffer, unsigned long len, unsigned int flags,
		      void *opaque_state, unsigned long opaque_len)
{
	unsigned long in_page = (unsigned long)opaque_state & (PAGE_SIZE - 1);

	if (opaque_len == ~0UL && !buffer && !len && !flags) {
		volatile struct vgetrandom_opaque_params *params = opaque_state;

		params->size_of_opaque_state = VGETRANDOM_STATE_SIZE;
		params->mmap_prot = PROT_READ | PROT_WRITE;
		params->mmap_flags = MAP_DROPPABLE | MAP_ANONYMOUS;
		for (int i = 0; i < 13; i++)
			params->reserved[i] = 0;
		return 0;
	}
	if (in_page + VGETRANDOM_STATE_SIZE > PAGE_SIZE)
		return -EFAULT;
	return vdso_syscall(NR_getrandom, (long)buffer, (long)len, flags);
}

long getrandom(void *buffer, unsigned long len, unsigned int flags,
	       void *opaque_state, unsigned long opaque_len)
	__attribute__((weak, alias("__vdso_getrandom")));
