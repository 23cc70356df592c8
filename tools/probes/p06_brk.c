/* Topic 6: brk corner cases (raw SYS_brk; stdout uses a static buffer so that
 * glibc malloc never touches brk). */
#include "probe_common.h"

static char outbuf[1 << 16];
static unsigned long B(unsigned long v) { return syscall(SYS_brk, v); }

/* malloc-free maps reader (fopen would malloc, and malloc uses brk). */
static char mbuf[1 << 16];
static void maps_nomalloc(unsigned long lo, unsigned long hi, const char *label)
{
    int fd = open("/proc/self/maps", O_RDONLY);
    ssize_t n = 0, r;
    while ((r = read(fd, mbuf + n, sizeof mbuf - 1 - n)) > 0) n += r;
    close(fd);
    mbuf[n] = 0;
    printf("--- maps %s [%lx,%lx):\n", label, lo, hi);
    for (char *l = mbuf; *l; ) {
        char *e = strchr(l, '\n'); if (!e) break; *e = 0;
        unsigned long s = strtoul(l, NULL, 16), en = strtoul(strchr(l, '-') + 1, NULL, 16);
        if (s < hi && en > lo) printf("%s\n", l);
        l = e + 1;
    }
}
static void heap_lines(const char *label)
{
    maps_nomalloc(0x555555559000UL, 0x555555800000UL, label);
}

int main(void)
{
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    unsigned long start = B(0);
    printf("initial brk(0) = %#lx (start_brk; no [heap] VMA yet)\n", start);
    heap_lines("initial");
    printf("brk(start+1) -> %#lx\n", B(start + 1));
    heap_lines("after brk(start+1): 1-page heap VMA, brk unaligned");
    printf("brk(start+0x5000) -> %#lx\n", B(start + 0x5000));
    heap_lines("after brk(start+0x5000)");
    
    printf("brk(start+0x2800) (shrink, unaligned) -> %#lx\n", B(start + 0x2800));
    heap_lines("after shrink to start+0x2800");
    printf("brk(start) (shrink to start_brk) -> %#lx\n", B(start));
    heap_lines("after shrink to start_brk: does a [heap] line remain?");
    printf("brk(start - 0x1000) (below start_brk) -> %#lx\n", B(start - 0x1000));
    printf("brk(0) -> %#lx\n", B(0));

    printf("== 6b growth blocked by a mapping at start+0x10000\n");
    char *blk = mmap((void *)(start + 0x10000), PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("mmap blocker at %p\n", blk);
    printf("brk(start+0xf000) (newbrk + PAGE == blocker start) -> %#lx\n", B(start + 0xf000));
    printf("brk(start+0xf001) (rounds to blocker start - 0) -> %#lx\n", B(start + 0xf001));
    printf("brk(start+0x10000) (== blocker) -> %#lx\n", B(start + 0x10000));
    printf("brk(start+0x20000) (beyond blocker) -> %#lx\n", B(start + 0x20000));
    heap_lines("after blocked growth");
    munmap(blk, PG);

    printf("== 6c mmap placed right at the heap end, then brk grow/shrink\n");
    printf("brk(start+0x3000) -> %#lx\n", B(start + 0x3000));
    char *tail = mmap((void *)(start + 0x3000), 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("mmap anon rw at heap end %p\n", tail);
    heap_lines("heap + adjacent anon mmap (merged? named?)");
    printf("brk(start+0x4000) (grow into mmap) -> %#lx\n", B(start + 0x4000));
    printf("brk(start+0x1000) (shrink) -> %#lx\n", B(start + 0x1000));
    heap_lines("after shrink to start+0x1000");
    munmap(tail, 2 * PG);
    heap_lines("after munmap of that mmap");

    printf("== 6d anonymous mmap exactly at start_brk while brk == start_brk\n");
    printf("brk(start) -> %#lx\n", B(start));
    char *at = mmap((void *)start, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("mmap at start_brk -> %p\n", at);
    heap_lines("anon mmap at start_brk (named [heap]?)");
    printf("brk(start+0x1000) with that mapping there -> %#lx\n", B(start + 0x1000));
    munmap(at, 2 * PG);
    char *far = mmap((void *)(start + 0x100000), PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("brk(start+0x2000) -> %#lx ; anon mmap far above brk at %p\n", B(start + 0x2000), far);
    heap_lines("is the far anon mmap named [heap]? (vm_start <= brk fails)");
    munmap(far, PG);

    printf("== 6e heap whose last page is mprotect(PROT_READ), then grow\n");
    printf("brk(start+0x3000) -> %#lx\n", B(start + 0x3000));
    printf("mprotect(last heap page, R) -> %s\n", RES(mprotect((void *)(start + 0x2000), PG, PROT_READ)));
    printf("brk(start+0x5000) -> %#lx\n", B(start + 0x5000));
    heap_lines("heap after grow past a read-only tail");
    printf("brk(start+0x1000) -> %#lx\n", B(start + 0x1000));
    heap_lines("after shrinking across the pieces");

    printf("== 6f RLIMIT_DATA\n");
    fflush(stdout);
    if (fork() == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_DATA, &rl);
        printf("RLIMIT_DATA cur=%#lx\n", (unsigned long)rl.rlim_cur);
        int sfd = open("/proc/self/status", O_RDONLY); char st[4096]; ssize_t n = read(sfd, st, sizeof st - 1); close(sfd); st[n] = 0;
        unsigned long vmdata = strtoul(strstr(st, "VmData:") + 7, NULL, 10);
        printf("VmData = %lu kB (private writable non-stack mappings, incl. brk heap)\n", vmdata);
        rl.rlim_cur = rl.rlim_max = vmdata * 1024 + 0x20000;   /* 128 KiB headroom */
        setrlimit(RLIMIT_DATA, &rl);
        printf("RLIMIT_DATA set to VmData + 128 KiB = %#lx\n", (unsigned long)rl.rlim_cur);
        unsigned long s = B(0);
        printf("brk(0) = %#lx\n", s);
        for (unsigned long inc = 0x10000; inc <= 0x40000; inc += 0x10000)
            printf("brk(cur+%#lx) -> %#lx\n", inc, B(s + inc));
        B(s);
        char *m0 = mmap(NULL, 0x20000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("mmap private rw 128 KiB (== headroom) -> %s\n", m0 == MAP_FAILED ? errname(errno) : "ok");
        char *m1 = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("mmap private rw 1 more page -> %s\n", m1 == MAP_FAILED ? errname(errno) : "ok");
        char *m = mmap(NULL, 0x80000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("mmap private rw 512 KiB (over) -> %s\n", m == MAP_FAILED ? errname(errno) : "ok");
        m = mmap(NULL, 0x80000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("mmap private r-- 512 KiB -> %s\n", m == MAP_FAILED ? errname(errno) : "ok");
        if (m != MAP_FAILED) printf("mprotect(it, RW) -> %s\n", RES(mprotect(m, 0x80000, PROT_READ | PROT_WRITE)));
        m = mmap(NULL, 0x80000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        printf("mmap shared rw 512 KiB -> %s\n", m == MAP_FAILED ? errname(errno) : "ok");
        m = mmap(NULL, 0x80000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        printf("mmap private rw NORESERVE 512 KiB -> %s\n", m == MAP_FAILED ? errname(errno) : "ok");
        m = mmap(NULL, 0x80000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
        printf("mmap private rw GROWSDOWN 512 KiB -> %s\n", m == MAP_FAILED ? errname(errno) : "ok");
        m = mmap(NULL, 0x80000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        printf("mmap private rw MAP_STACK 512 KiB -> %s\n", m == MAP_FAILED ? errname(errno) : "ok");
        fflush(stdout); _exit(0);
    }
    wait(NULL);
    printf("== 6g RLIMIT_AS\n");
    fflush(stdout);
    if (fork() == 0) {
        FILE *f = fopen("/proc/self/status", "r"); char line[256]; unsigned long vm = 0;
        while (fgets(line, sizeof line, f)) if (!strncmp(line, "VmSize:", 7)) sscanf(line + 7, "%lu", &vm);
        fclose(f);
        struct rlimit rl = {vm * 1024 + 0x100000, vm * 1024 + 0x100000};
        setrlimit(RLIMIT_AS, &rl);
        printf("VmSize %lu kB, RLIMIT_AS = VmSize + 1 MiB\n", vm);
        char *m = mmap(NULL, 0x80000, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("mmap 512 KiB PROT_NONE -> %s\n", m == MAP_FAILED ? errname(errno) : "ok");
        char *m2 = mmap(NULL, 0x100000, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("mmap 1 MiB PROT_NONE (over) -> %s\n", m2 == MAP_FAILED ? errname(errno) : "ok");
        printf("brk(+0x100000) (over) -> %#lx (start %#lx)\n", B(B(0) + 0x100000), B(0));
        if (m != MAP_FAILED) { char *x = mmap(m, 0x80000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            printf("MAP_FIXED over own 512 KiB (replacing) -> %s\n", x == MAP_FAILED ? errname(errno) : "ok"); }
        fflush(stdout); _exit(0);
    }
    wait(NULL);
    return 0;
}
