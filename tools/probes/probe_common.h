/* Shared helpers for the kernel probes (vmsim). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#pragma GCC diagnostic ignored "-Wunused-function"

#define PG 4096UL

/* Print the /proc/self/smaps block of the VMA that contains addr (verbatim). */
static void show_smaps(const void *addr, const char *label)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[1024];
    int in = 0;
    unsigned long a = (unsigned long)addr;
    printf("--- smaps: %s (addr %lx)\n", label, a);
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char c;
        /* header lines start with hex-hex */
        if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            in = (a >= s && a < e);
        }
        if (in) fputs(line, stdout);
    }
    fclose(f);
}

/* Print the maps line(s) intersecting [lo, hi). */
static void show_maps_range(unsigned long lo, unsigned long hi, const char *label)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    printf("--- maps %s [%lx,%lx):\n", label, lo, hi);
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < hi && e > lo)
            fputs(line, stdout);
    }
    fclose(f);
}

static void show_maps_at(const void *addr, const char *label)
{
    show_maps_range((unsigned long)addr, (unsigned long)addr + 1, label);
}

static void show_all_maps(const char *label)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    printf("--- full /proc/self/maps: %s\n", label);
    while (fgets(line, sizeof line, f)) fputs(line, stdout);
    fclose(f);
}

/* VmFlags line only for addr */
static void show_vmflags(const void *addr, const char *label)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[1024];
    int in = 0;
    unsigned long a = (unsigned long)addr;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char c;
        if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            in = (a >= s && a < e);
            if (in) printf("%-28s %lx-%lx ", label, s, e);
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) { fputs(line, stdout); }
    }
    fclose(f);
}

static const char *errname(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EAGAIN: return "EAGAIN";
    case EFAULT: return "EFAULT";
    case EBADF: return "EBADF";
    case ENODEV: return "ENODEV";
    case EEXIST: return "EEXIST";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EBUSY: return "EBUSY";
    case EIO: return "EIO";
    case ENOSYS: return "ENOSYS";
    case EHWPOISON: return "EHWPOISON";
    case EOVERFLOW: return "EOVERFLOW";
    default: { static char b[32]; snprintf(b, sizeof b, "errno%d", e); return b; }
    }
}

#define RES(r) ((r) == -1 ? errname(errno) : "0")

/* An isolated-slot allocator: a big PROT_NONE carve-out; each slot is mapped
 * MAP_FIXED and surrounded by one-page holes so nothing merges with it. */
static char *carve_base;
static unsigned long carve_next;
#define CARVE_PAGES 8192UL
static void carve_init(void)
{
    carve_base = mmap(NULL, CARVE_PAGES * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (carve_base == MAP_FAILED) { perror("carve"); exit(1); }
    carve_next = 1;
}
/* returns an address with npages free (hole before and after) */
static char *slot(unsigned long npages)
{
    char *a = carve_base + carve_next * PG;
    munmap(a - PG, PG);                 /* hole before */
    munmap(a, npages * PG);             /* the slot itself is a hole */
    munmap(a + npages * PG, PG);        /* hole after */
    carve_next += npages + 2;
    return a;
}
static char *slot_mmap(unsigned long npages, int prot, int flags, int fd, off_t off)
{
    char *a = slot(npages);
    char *p = mmap(a, npages * PG, prot, flags | MAP_FIXED, fd, off);
    if (p == MAP_FAILED) { printf("slot_mmap failed: %s\n", errname(errno)); return p; }
    return p;
}

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
