/* A known sequence of memory-map calls for the vmsim real-program tests: strace it,
 * replay the trace from the start snapshot, compare the end snapshot byte for byte.
 * Usage: mmapseq OUT_PREFIX FILE_PATH  (writes OUT_PREFIX{start,end}.{maps,smaps}).
 * The mapped memory is never touched (page faults are not in a trace). */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include "dumpmaps.h"

#define PG 4096UL
#ifndef MADV_DONTFORK
#define MADV_DONTFORK 10
#endif

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	vmsim_snapshot(argv[1], "start");
	syscall(SYS_brk, 0);

	char *a = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(a + 4 * PG, 4 * PG, PROT_READ);                   /* split in three */
	munmap(a + 10 * PG, 2 * PG);                               /* a hole */
	mprotect(a + 9 * PG, 4 * PG, PROT_NONE);                   /* ENOMEM at the hole */
	munmap(a + 1, PG);                                         /* EINVAL: unaligned */
	char *b = mremap(a, 4 * PG, 8 * PG, MREMAP_MAYMOVE);       /* must move */
	mremap(a + 12 * PG, 4 * PG, 2 * PG, 0);                    /* shrink in place */
	madvise(a + 4 * PG, PG, MADV_DONTFORK);                    /* flags: split again */
	mprotect(a + 4 * PG, 4 * PG, PROT_READ | PROT_WRITE);      /* merges where it can */
	char *c = mmap(b + 8 * PG, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mmap(b + 2 * PG, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	mmap(b, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0 && ftruncate(fd, 8 * PG) == 0) {
		char *f = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		mprotect(f + 2 * PG, 2 * PG, PROT_READ);
		munmap(f + 6 * PG, 2 * PG);
		mmap(NULL, 4 * PG, PROT_READ, MAP_PRIVATE, fd, 4 * PG);
		int fd2 = open(argv[2], O_RDONLY);
		mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);   /* EACCES */
		close(fd2);
		close(fd);
	}
	char *d = mmap(NULL, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	syscall(462 /* mseal */, d, 2 * PG, 0);
	munmap(d, 4 * PG);                                        /* EPERM: sealed */
	mprotect(d + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE);
	mremap(c, 4 * PG, 64 * PG, MREMAP_MAYMOVE);
	void *top = sbrk(0);
	brk((char *)top + 3 * PG);
	brk((char *)top + PG);
	mlock(b + 4 * PG, PG);
	pid_t child = fork();                                      /* the child's calls */
	if (child == 0) {                                          /* change only its copy */
		munmap(b, 8 * PG);
		mprotect(d + 2 * PG, PG, PROT_NONE);
		_exit(0);
	}
	if (child > 0)
		waitpid(child, NULL, 0);
	vmsim_snapshot(argv[1], "end");
	return 0;
}
