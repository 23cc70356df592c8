/* Topic 1: verbatim /proc/self/smaps blocks for many mapping kinds, and how
 * Rss/Pss/... move on read and write faults. */
#include "probe_common.h"

static volatile char sink;

static int make_file(const char *path, size_t npages)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    char buf[PG];
    for (size_t i = 0; i < npages; i++) {
        memset(buf, 'A' + (i % 26), PG);
        if (write(fd, buf, PG) != PG) { perror("write"); exit(1); }
    }
    fsync(fd);
    return fd;
}

int main(void)
{
    char *p;
    carve_init();

    printf("== 1a private anon rw, 4 pages\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show_smaps(p, "private anon rw, unfaulted");
    sink = p[0];
    show_smaps(p, "private anon rw, page0 read");
    p[PG] = 1;
    show_smaps(p, "private anon rw, page0 read + page1 written");
    p[0] = 1;
    show_smaps(p, "private anon rw, page0 read then written + page1 written");

    printf("== 1b shared anon rw, 4 pages\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    show_smaps(p, "shared anon rw, unfaulted");
    sink = p[0];
    show_smaps(p, "shared anon rw, page0 read");
    p[PG] = 1;
    show_smaps(p, "shared anon rw, page0 read + page1 written");

    printf("== 1c private file mapping (/tmp, ext4), 32-page file, map 32 pages rw\n");
    int fd = make_file("/tmp/vmsim_p01_file", 32);
    p = slot_mmap(32, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    show_smaps(p, "private file rw, unfaulted");
    sink = p[0];
    show_smaps(p, "private file rw, page0 read (fault-around?)");
    p[PG * 20] = 1;
    show_smaps(p, "private file rw, page0 read + page20 written (COW)");
    munmap(p, 32 * PG);

    printf("== 1d shared file mapping (/tmp, ext4), 32 pages rw\n");
    p = slot_mmap(32, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    show_smaps(p, "shared file rw, unfaulted");
    sink = p[0];
    show_smaps(p, "shared file rw, page0 read");
    p[PG * 20] = 1;
    show_smaps(p, "shared file rw, page0 read + page20 written");
    close(fd);

    printf("== 1d2 private file mapping read-only of an O_RDONLY fd, 4 pages\n");
    fd = open("/tmp/vmsim_p01_file", O_RDONLY);
    p = slot_mmap(4, PROT_READ, MAP_PRIVATE, fd, 0);
    show_smaps(p, "private file ro (fd O_RDONLY), unfaulted");
    p = slot_mmap(4, PROT_READ, MAP_SHARED, fd, 0);
    show_smaps(p, "shared file ro (fd O_RDONLY), unfaulted");
    close(fd);

    printf("== 1e PROT_NONE private anon\n");
    p = slot_mmap(4, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show_smaps(p, "PROT_NONE private anon");

    printf("== 1e2 PROT_READ private anon (no write)\n");
    p = slot_mmap(4, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show_smaps(p, "PROT_READ private anon");
    p = slot_mmap(4, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show_smaps(p, "PROT_RWX private anon");

    printf("== 1f MAP_STACK\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    show_smaps(p, "MAP_STACK private anon rw");

    printf("== 1g mlocked (mlock after mmap, 4 pages)\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mlock -> %s\n", RES(mlock(p, 4 * PG)));
    show_smaps(p, "mlocked private anon rw");

    printf("== 1h pkey'd mapping\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int pkey = syscall(SYS_pkey_alloc, 0, 0);
    printf("pkey_alloc -> %d\n", pkey);
    printf("pkey_mprotect -> %ld\n", syscall(SYS_pkey_mprotect, p, 4 * PG, PROT_READ | PROT_WRITE, pkey));
    show_smaps(p, "pkey private anon rw");

    printf("== 1i sealed mapping\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mseal -> %ld\n", syscall(462, p, 4 * PG, 0));
    show_smaps(p, "sealed private anon rw");

    printf("== 1j THP: 4 MiB private anon, MADV_HUGEPAGE, touch\n");
    p = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show_smaps(p, "4MiB anon, no madvise (THP=madvise mode)");
    printf("madvise(HUGEPAGE) -> %s\n", RES(madvise(p, 4 << 20, MADV_HUGEPAGE)));
    show_smaps(p, "4MiB anon, MADV_HUGEPAGE, unfaulted");
    p[0] = 1;
    show_smaps(p, "4MiB anon, MADV_HUGEPAGE, 1 byte written");

    printf("== 1k [stack]\n");
    int local;
    show_smaps(&local, "[stack]");

    printf("== 1l [heap]\n");
    void *m = malloc(100);
    ((char*)m)[0] = 1;
    show_smaps(m, "[heap]");

    printf("== 1m pkeys on this CPU\n");
    errno = 0;
    long k = syscall(SYS_pkey_alloc, 0, 0);
    printf("pkey_alloc(0,0) -> %ld errno %s\n", k, k == -1 ? errname(errno) : "0");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int key = -1; key <= 2; key++) {
        long r = syscall(SYS_pkey_mprotect, p, 4 * PG, PROT_READ, key);
        printf("pkey_mprotect(p, 4p, PROT_READ, %d) -> %s\n", key, r == -1 ? errname(errno) : "0");
    }
    printf("mprotect(p, 4p, PROT_EXEC) -> %s\n", RES(mprotect(p, 4 * PG, PROT_EXEC)));
    show_smaps(p, "after mprotect(PROT_EXEC) (execute-only pkey?)");
    p = slot_mmap(4, PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show_smaps(p, "mmap(PROT_EXEC) anon");

    printf("== 1n file fault-around geometry: 64-page file; mapping starts 3 pages past a 64K boundary\n");
    fd = make_file("/tmp/vmsim_p01_file2", 64);
    {
        char *s = slot(64 + 32);
        unsigned long a = ((unsigned long)s + 0xffff) & ~0xffffUL;
        a += 3 * PG;
        p = mmap((void *)a, 48 * PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
        sink = p[10 * PG];   /* page 10 of the mapping = VA index 13 in the 64K block */
        unsigned char vec[48];
        mincore(p, 48 * PG, vec);
        show_smaps(p, "private file ro 48 pages @64K+3p, read page 10");
        /* which pages are mapped? use /proc/self/pagemap present bit */
        int pm = open("/proc/self/pagemap", O_RDONLY);
        printf("present PTEs (pagemap bit63) by page index: ");
        for (int i = 0; i < 48; i++) {
            uint64_t e; pread(pm, &e, 8, ((unsigned long)p / PG + i) * 8);
            if (e >> 63) printf("%d ", i);
        }
        printf("\n");
        sink = p[40 * PG];
        printf("after also reading page 40: present: ");
        for (int i = 0; i < 48; i++) {
            uint64_t e; pread(pm, &e, 8, ((unsigned long)p / PG + i) * 8);
            if (e >> 63) printf("%d ", i);
        }
        printf("\n");
        show_smaps(p, "after reading page 10 and 40");
        close(pm);
    }
    printf("== 1o file mapping longer than the file (4-page file, map 8 pages, read page 0)\n");
    {
        int fd3 = make_file("/tmp/vmsim_p01_file3", 4);
        p = slot_mmap(8, PROT_READ, MAP_PRIVATE, fd3, 0);
        sink = p[0];
        show_smaps(p, "8-page map of 4-page file, page0 read");
        close(fd3);
    }
    printf("== 1p MAP_SHARED file on tmpfs /dev/shm (8 pages), read page 0, write page 5\n");
    {
        int fd4 = open("/dev/shm/vmsim_p01_shm", O_RDWR | O_CREAT | O_TRUNC, 0644);
        ftruncate(fd4, 8 * PG);
        p = slot_mmap(8, PROT_READ | PROT_WRITE, MAP_SHARED, fd4, 0);
        show_smaps(p, "tmpfs shared, unfaulted (file never written: holes)");
        sink = p[0];
        show_smaps(p, "tmpfs shared, page0 read");
        p[5 * PG] = 1;
        show_smaps(p, "tmpfs shared, page0 read, page5 written");
        char *q = slot_mmap(8, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd4, 0);
        sink = q[5 * PG];
        show_smaps(q, "tmpfs private mapping of same file, page5 read (page shared with the other mapping)");
        show_smaps(p, "tmpfs shared mapping again (now page5 mapped twice)");
        close(fd4);
        unlink("/dev/shm/vmsim_p01_shm");
    }
    printf("== 1q private anon after fork (child reads smaps: pages shared with parent)\n");
    {
        p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p[0] = 1; p[PG] = 1;
        fflush(stdout);
        pid_t c = fork();
        if (c == 0) {
            show_smaps(p, "child: 2 pages written by parent before fork");
            p[0] = 2;
            show_smaps(p, "child: after child writes page0 (COW break)");
            fflush(stdout);
            _exit(0);
        }
        waitpid(c, NULL, 0);
    }
    printf("== 1r THPeligible corner cases (THP enabled=madvise)\n");
    {
        char *h = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        madvise(h, 4 * PG, MADV_HUGEPAGE);
        show_vmflags(h, "4-page anon + MADV_HUGEPAGE");
        show_smaps(h, "4-page anon + MADV_HUGEPAGE");
        char *big = mmap(NULL, 6 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        unsigned long al = (((unsigned long)big + (2 << 20) - 1) & ~((2UL << 20) - 1));
        munmap(big, 6 << 20);
        char *u = mmap((void *)(al + PG), (2 << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        madvise(u, 2 << 20, MADV_HUGEPAGE);
        show_smaps(u, "2 MiB anon at 2MiB-aligned + 4 KiB (no aligned PMD inside) + MADV_HUGEPAGE");
        int fdx = open("/tmp/vmsim_p01_file", O_RDONLY);
        char *fm = slot_mmap(4, PROT_READ, MAP_PRIVATE, fdx, 0);
        madvise(fm, 4 * PG, MADV_HUGEPAGE);
        show_smaps(fm, "file mapping + MADV_HUGEPAGE");
        close(fdx);
        char *sh2 = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        madvise(sh2, 4 * PG, MADV_HUGEPAGE);
        show_smaps(sh2, "shared anon + MADV_HUGEPAGE");
    }
    printf("== 1s /proc/self/smaps_rollup (verbatim)\n");
    fflush(stdout);
    {
        FILE *f = fopen("/proc/self/smaps_rollup", "r"); char line[512];
        while (fgets(line, sizeof line, f)) fputs(line, stdout);
        fclose(f);
    }
    unlink("/tmp/vmsim_p01_file"); unlink("/tmp/vmsim_p01_file2"); unlink("/tmp/vmsim_p01_file3");
    return 0;
}
