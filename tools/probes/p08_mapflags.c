/* Topic 8: MAP_DROPPABLE, MAP_POPULATE, MAP_LOCKED, MAP_NORESERVE, MAP_HUGETLB,
 * and other mmap flags: VmFlags and Rss. */
#include "probe_common.h"
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_UNINITIALIZED
#define MAP_UNINITIALIZED 0x4000000
#endif

static char *try(const char *label, size_t len, int prot, int flags, int fd, off_t off)
{
    char *a = slot(len / PG);
    errno = 0;
    char *p = mmap(a, len, prot, flags | MAP_FIXED, fd, off);   /* a is a hole */
    if (p == MAP_FAILED) { printf("%-58s -> %s\n", label, errname(errno)); return NULL; }
    printf("%-58s -> ok\n", label);
    return p;
}
static char *tryh(const char *label, size_t len, int prot, int flags)
{   /* no address: hugetlb wants its own alignment */
    errno = 0;
    char *p = mmap(NULL, len, prot, flags, -1, 0);
    if (p == MAP_FAILED) { printf("%-58s -> %s\n", label, errname(errno)); return NULL; }
    printf("%-58s -> %p\n", label, p);
    return p;
}

static void brief(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r"); char line[512]; int in = 0; unsigned long a = (unsigned long)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e; char c;
        if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3 && strchr(line, '-') < strchr(line, ' ')) { in = (a >= s && a < e); if (in) printf("    %s", line); }
        else if (in && (!strncmp(line, "Rss:", 4) || !strncmp(line, "Private_Dirty:", 14) || !strncmp(line, "Private_Clean:", 14) || !strncmp(line, "Anonymous:", 10) || !strncmp(line, "Locked:", 7) || !strncmp(line, "VmFlags:", 8) || !strncmp(line, "KernelPageSize:", 15) || !strncmp(line, "Private_Hugetlb:", 16) || !strncmp(line, "Shared_Hugetlb:", 15)))
            printf("    %s", line);
    }
    fclose(f);
}

int main(void)
{
    carve_init();
    char *p;
    int RW = PROT_READ | PROT_WRITE, PA = MAP_PRIVATE | MAP_ANONYMOUS;
    printf("== 8a MAP_DROPPABLE\n");
    if ((p = try("MAP_DROPPABLE|ANON rw 4p", 4 * PG, RW, MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0))) { p[0] = 1; brief(p); }
    if ((p = try("MAP_DROPPABLE|ANON PROT_NONE 4p", 4 * PG, PROT_NONE, MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0))) brief(p);
    try("MAP_DROPPABLE without MAP_ANONYMOUS (fd /dev/zero)", 4 * PG, RW, MAP_DROPPABLE, open("/dev/zero", O_RDWR), 0);
    try("MAP_DROPPABLE|ANON|MAP_LOCKED", 4 * PG, RW, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
    try("MAP_DROPPABLE|ANON|MAP_GROWSDOWN", 4 * PG, RW, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
    tryh("MAP_DROPPABLE|ANON|MAP_HUGETLB (no addr)", 2 << 20, RW, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_HUGETLB);
    if ((p = try("MAP_DROPPABLE|ANON|MAP_POPULATE", 4 * PG, RW, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0))) brief(p);
    if ((p = try("MAP_DROPPABLE|ANON|MAP_NORESERVE|MAP_STACK", 4 * PG, RW, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0))) brief(p);
    {   /* droppable next to a plain private anon: merge? mlock? mprotect? */
        char *s = slot(4);
        char *x = mmap(s, 2 * PG, RW, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        char *y = mmap(s + 2 * PG, 2 * PG, RW, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        (void)y;
        show_maps_range((unsigned long)s, (unsigned long)s + 4 * PG, "two adjacent droppable mappings");
        printf("mlock(droppable) -> %s\n", RES(mlock(x, 2 * PG)));
        brief(x);
        printf("madvise(KEEPONFORK) on droppable -> %s\n", RES(madvise(x, 2 * PG, MADV_KEEPONFORK)));
        brief(x);
        printf("mprotect(droppable, R) -> %s\n", RES(mprotect(x, PG, PROT_READ)));
        show_maps_range((unsigned long)s, (unsigned long)s + 4 * PG, "after mprotect first page");
    }

    printf("== 8b MAP_POPULATE / MAP_LOCKED / MAP_NORESERVE\n");
    if ((p = try("private anon rw MAP_POPULATE 4p", 4 * PG, RW, PA | MAP_POPULATE, -1, 0))) brief(p);
    if ((p = try("private anon r-- MAP_POPULATE 4p", 4 * PG, PROT_READ, PA | MAP_POPULATE, -1, 0))) brief(p);
    if ((p = try("private anon rw MAP_POPULATE|MAP_NONBLOCK 4p", 4 * PG, RW, PA | MAP_POPULATE | MAP_NONBLOCK, -1, 0))) brief(p);
    if ((p = try("private anon PROT_NONE MAP_POPULATE 4p", 4 * PG, PROT_NONE, PA | MAP_POPULATE, -1, 0))) brief(p);
    if ((p = try("shared anon rw MAP_POPULATE 4p", 4 * PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0))) brief(p);
    int fd = open("/tmp/vmsim_p08_file", O_RDWR | O_CREAT | O_TRUNC, 0644);
    char buf[8 * PG]; memset(buf, 'f', sizeof buf); write(fd, buf, sizeof buf);
    if ((p = try("private file rw MAP_POPULATE 4p", 4 * PG, RW, MAP_PRIVATE | MAP_POPULATE, fd, 0))) brief(p);
    if ((p = try("private file r-- MAP_POPULATE 4p", 4 * PG, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0))) brief(p);
    if ((p = try("shared file rw MAP_POPULATE 4p", 4 * PG, RW, MAP_SHARED | MAP_POPULATE, fd, 0))) brief(p);
    if ((p = try("private file rw MAP_POPULATE 8p of a 4p-mapped... (file 8p)", 8 * PG, RW, MAP_PRIVATE | MAP_POPULATE, fd, 0))) brief(p);
    if ((p = try("private anon rw MAP_LOCKED 4p", 4 * PG, RW, PA | MAP_LOCKED, -1, 0))) brief(p);
    if ((p = try("private anon r-- MAP_LOCKED 4p", 4 * PG, PROT_READ, PA | MAP_LOCKED, -1, 0))) brief(p);
    if ((p = try("private anon PROT_NONE MAP_LOCKED 4p", 4 * PG, PROT_NONE, PA | MAP_LOCKED, -1, 0))) brief(p);
    if ((p = try("private file r-- MAP_LOCKED 4p", 4 * PG, PROT_READ, MAP_PRIVATE | MAP_LOCKED, fd, 0))) brief(p);
    if ((p = try("private anon rw MAP_NORESERVE 4p", 4 * PG, RW, PA | MAP_NORESERVE, -1, 0))) brief(p);
    if ((p = try("private anon r-- MAP_NORESERVE 4p", 4 * PG, PROT_READ, PA | MAP_NORESERVE, -1, 0))) { brief(p);
        printf("mprotect(NORESERVE r--, RW) -> %s\n", RES(mprotect(p, 4 * PG, RW))); brief(p); }
    if ((p = try("shared anon rw MAP_NORESERVE 4p", 4 * PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0))) brief(p);
    if ((p = try("private file rw MAP_NORESERVE 4p", 4 * PG, RW, MAP_PRIVATE | MAP_NORESERVE, fd, 0))) brief(p);
    {   /* NORESERVE next to a normal rw mapping: merge? */
        char *s = slot(4);
        mmap(s, 2 * PG, RW, PA | MAP_FIXED, -1, 0);
        mmap(s + 2 * PG, 2 * PG, RW, PA | MAP_NORESERVE | MAP_FIXED, -1, 0);
        show_maps_range((unsigned long)s, (unsigned long)s + 4 * PG, "plain rw + NORESERVE rw adjacent");
    }
    printf("== 8c other flags: MAP_32BIT, MAP_UNINITIALIZED, MAP_EXECUTABLE, MAP_DENYWRITE, MAP_FILE, MAP_SYNC\n");
    if ((p = try("private anon MAP_UNINITIALIZED", 4 * PG, RW, PA | MAP_UNINITIALIZED, -1, 0))) brief(p);
    if ((p = try("private anon MAP_EXECUTABLE|MAP_DENYWRITE", 4 * PG, RW, PA | MAP_EXECUTABLE | MAP_DENYWRITE, -1, 0))) brief(p);
    try("anon MAP_SHARED_VALIDATE|MAP_SYNC", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_SYNC, -1, 0);
    if ((p = try("anon MAP_PRIVATE|MAP_SYNC", 4 * PG, RW, PA | MAP_SYNC, -1, 0))) brief(p);
    if ((p = try("anon MAP_SHARED|MAP_SYNC", 4 * PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_SYNC, -1, 0))) brief(p);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_SYNC", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_LOCKED|POPULATE|NORESERVE", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_LOCKED | MAP_POPULATE | MAP_NORESERVE, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_DROPPABLE-bit(0x8)?", 4 * PG, RW, MAP_SHARED_VALIDATE | 0x8, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_32BIT", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_32BIT, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_STACK", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_STACK, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_HUGETLB", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_HUGETLB, fd, 0);
    try("ext4 file MAP_PRIVATE|MAP_HUGETLB", 4 * PG, RW, MAP_PRIVATE | MAP_HUGETLB, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_UNINITIALIZED", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_UNINITIALIZED, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE (plain)", 4 * PG, RW, MAP_SHARED_VALIDATE, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_FIXED_NOREPLACE", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE, fd, 0);
    try("ext4 file MAP_SHARED|MAP_FIXED_NOREPLACE", 4 * PG, RW, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_GROWSDOWN", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_GROWSDOWN, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|0x80 (= MAP_ABOVE4G on x86)", 4 * PG, RW, MAP_SHARED_VALIDATE | 0x80, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|0x200 (unknown)", 4 * PG, RW, MAP_SHARED_VALIDATE | 0x200, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|0x400 (unknown)", 4 * PG, RW, MAP_SHARED_VALIDATE | 0x400, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|0x200000 (unknown)", 4 * PG, RW, MAP_SHARED_VALIDATE | 0x200000, fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_HUGE_2MB bits", 4 * PG, RW, MAP_SHARED_VALIDATE | (21 << 26), fd, 0);
    try("ext4 file MAP_SHARED_VALIDATE|MAP_HUGE_16KB bits", 4 * PG, RW, MAP_SHARED_VALIDATE | (14 << 26), fd, 0);
    try("ext4 file MAP_SHARED|0x200 (unknown, masked)", 4 * PG, RW, MAP_SHARED | 0x200, fd, 0);
    try("ext4 file MAP_PRIVATE|0x200 (unknown)", 4 * PG, RW, MAP_PRIVATE | 0x200, fd, 0);
    try("anon MAP_PRIVATE|0x200 (unknown)", 4 * PG, RW, PA | 0x200, -1, 0);

    { int t = open("/dev/shm/vmsim_p08_shm", O_RDWR | O_CREAT | O_TRUNC, 0644); ftruncate(t, 4 * PG);
      char *q = try("tmpfs file MAP_SHARED_VALIDATE|MAP_SYNC", 4 * PG, RW, MAP_SHARED_VALIDATE | MAP_SYNC, t, 0);
      q = try("tmpfs file MAP_SHARED|MAP_SYNC", 4 * PG, RW, MAP_SHARED | MAP_SYNC, t, 0); if (q) brief(q);
      q = try("tmpfs file MAP_PRIVATE|MAP_SYNC", 4 * PG, RW, MAP_PRIVATE | MAP_SYNC, t, 0); if (q) brief(q);
      close(t); unlink("/dev/shm/vmsim_p08_shm"); }
    try("ext4 file MAP_SHARED|MAP_SYNC", 4 * PG, RW, MAP_SHARED | MAP_SYNC, fd, 0);
    try("ext4 file MAP_PRIVATE|MAP_SYNC", 4 * PG, RW, MAP_PRIVATE | MAP_SYNC, fd, 0);
    close(fd); unlink("/tmp/vmsim_p08_file");

    printf("== 8d MAP_HUGETLB (nr_hugepages = 0)\n");
    tryh("anon private MAP_HUGETLB 2 MiB", 2 << 20, RW, PA | MAP_HUGETLB);
    tryh("anon shared MAP_HUGETLB 2 MiB", 2 << 20, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB);
    tryh("anon private MAP_HUGETLB 4 KiB (len rounded up)", PG, RW, PA | MAP_HUGETLB);
    p = tryh("anon private MAP_HUGETLB|MAP_NORESERVE 2 MiB", 2 << 20, RW, PA | MAP_HUGETLB | MAP_NORESERVE);
    if (p) { brief(p); fflush(stdout);
        pid_t c = fork(); if (!c) { p[0] = 1; printf("write succeeded?\n"); fflush(stdout); _exit(0); }
        int st; waitpid(c, &st, 0); printf("    child writing to it: %s %d\n", WIFSIGNALED(st) ? "killed by signal" : "exited", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st)); }
    tryh("anon private MAP_HUGETLB|MAP_HUGE_1GB", 1 << 30, RW, PA | MAP_HUGETLB | (30 << MAP_HUGE_SHIFT));
    tryh("anon private MAP_HUGETLB|MAP_HUGE_2MB", 2 << 20, RW, PA | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT));
    tryh("anon private MAP_HUGETLB|MAP_HUGE_16KB (log 14)", 2 << 20, RW, PA | MAP_HUGETLB | (14 << MAP_HUGE_SHIFT));
    tryh("anon private MAP_HUGETLB|MAP_HUGE log 63", 2 << 20, RW, PA | MAP_HUGETLB | (63 << MAP_HUGE_SHIFT));
    tryh("anon private MAP_HUGE_2MB without MAP_HUGETLB", 2 << 20, RW, PA | (21 << MAP_HUGE_SHIFT));
    {
        char *a = mmap((void *)0x200001000, 2 << 20, RW, PA | MAP_HUGETLB | MAP_NORESERVE | MAP_FIXED, -1, 0);
        printf("%-58s -> %s\n", "MAP_HUGETLB|NORESERVE MAP_FIXED at unaligned 0x200001000", a == MAP_FAILED ? errname(errno) : "ok");
        a = mmap((void *)0x200001000, 2 << 20, RW, PA | MAP_HUGETLB | MAP_NORESERVE, -1, 0);
        printf("%-58s -> %p\n", "MAP_HUGETLB|NORESERVE hint unaligned 0x200001000", a);
        if (a != MAP_FAILED) {
            printf("munmap(first 4 KiB of hugetlb) -> %s\n", RES(munmap(a, PG)));
            printf("mprotect(first 4 KiB of hugetlb) -> %s\n", RES(mprotect(a, PG, PROT_READ)));
            printf("munmap(whole, len 4 KiB less) -> %s\n", RES(munmap(a, (2 << 20) - PG)));
            show_maps_range((unsigned long)a, (unsigned long)a + (2 << 20), "after");
        }
    }
    return 0;
}
