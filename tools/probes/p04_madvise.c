/* Topic 4: madvise corner cases. Each advice runs in its own fork() on a fresh
 * isolated 4-page private anon rw mapping (page 0 and 1 written), advising
 * pages 1..2 (the middle) so that splits are visible. */
#include "probe_common.h"

static const char *advname(int a)
{
    static const char *n[] = {"NORMAL","RANDOM","SEQUENTIAL","WILLNEED","DONTNEED","(5)","(6)","(7)",
        "FREE","REMOVE","DONTFORK","DOFORK","MERGEABLE","UNMERGEABLE","HUGEPAGE","NOHUGEPAGE",
        "DONTDUMP","DODUMP","WIPEONFORK","KEEPONFORK","COLD","PAGEOUT","POPULATE_READ",
        "POPULATE_WRITE","DONTNEED_LOCKED","COLLAPSE","(26)"};
    if (a >= 0 && a <= 26) return n[a];
    switch (a) { case 100: return "HWPOISON"; case 101: return "SOFT_OFFLINE";
        case 102: return "GUARD_INSTALL"; case 103: return "GUARD_REMOVE"; }
    return "?";
}

static void rss_of(const void *addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512]; int in = 0; unsigned long a = (unsigned long)addr;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e; char c;
        if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3 && strchr(line, '-') < strchr(line, ' '))
            in = (a >= s && a < e);
        if (in && (!strncmp(line, "Rss:", 4) || !strncmp(line, "Anonymous:", 10) || !strncmp(line, "LazyFree:", 9)))
            { line[strlen(line)-1] = 0; printf("    [%s]\n", line); }
    }
    fclose(f);
}

static sigjmp_buf jb;
static void segv(int sig, siginfo_t *si, void *u) { (void)u; printf("    signal %d code %d addr %p\n", sig, si->si_code, si->si_addr); siglongjmp(jb, 1); }

static void one(int adv, int variant)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memset(p, 0x5a, 2 * PG);   /* pages 0,1 written */
        if (variant == 1) mlock(p, 4 * PG);
        errno = 0;
        int r = madvise(p + PG, 2 * PG, adv);
        printf("madvise(%3d %-15s)%s on pages 1-2 -> %s\n", adv, advname(adv), variant ? " [mlocked]" : "", r ? errname(errno) : "0");
        for (int i = 0; i < 4; i++) show_vmflags(p + i * PG, i == 0 ? "    page0" : i == 1 ? "    page1" : i == 2 ? "    page2" : "    page3");
        rss_of(p + PG);
        if (adv == MADV_GUARD_INSTALL && r == 0) {
            struct sigaction sa = {0}; sa.sa_sigaction = segv; sa.sa_flags = SA_SIGINFO; sigaction(SIGSEGV, &sa, 0);
            if (!sigsetjmp(jb, 1)) { volatile char x = p[PG]; (void)x; printf("    read of guard page OK??\n"); }
            show_maps_range((unsigned long)p, (unsigned long)p + 4 * PG, "    maps after GUARD_INSTALL");
        }
        if (adv == MADV_DONTNEED || adv == MADV_FREE || adv == MADV_PAGEOUT || adv == MADV_COLD || adv == MADV_DONTNEED_LOCKED)
            printf("    content page1 after: 0x%02x\n", (unsigned char)p[PG]);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

int main(void)
{
    carve_init();
    printf("== 4a every advice on private anon rw (pages 0,1 written), advising pages 1-2 of 4\n");
    for (int a = 0; a <= 26; a++) one(a, 0);
    for (int a = 100; a <= 103; a++) one(a, 0);
    printf("== 4b discard advices on an mlocked mapping\n");
    one(MADV_DONTNEED, 1); one(MADV_FREE, 1); one(MADV_DONTNEED_LOCKED, 1); one(MADV_PAGEOUT, 1); one(MADV_REMOVE, 1);

    printf("== 4c WIPEONFORK / DONTFORK / FREE / REMOVE on shared anon and on file mappings\n");
    char *sh = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int fd = open("/tmp/vmsim_p04_file", O_RDWR | O_CREAT | O_TRUNC, 0644);
    char buf[4 * PG]; memset(buf, 'F', sizeof buf); write(fd, buf, sizeof buf);
    char *pf = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    char *sf = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int advs[] = {MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_DONTFORK, MADV_FREE, MADV_REMOVE, MADV_DONTDUMP, MADV_MERGEABLE, MADV_HUGEPAGE, MADV_COLLAPSE, MADV_POPULATE_WRITE};
    for (unsigned i = 0; i < sizeof advs / sizeof advs[0]; i++) {
        printf("madvise(%-15s) shared anon -> %-7s private file -> %-7s shared file -> %s\n", advname(advs[i]),
               madvise(sh, 4 * PG, advs[i]) ? errname(errno) : "0",
               madvise(pf, 4 * PG, advs[i]) ? errname(errno) : "0",
               madvise(sf, 4 * PG, advs[i]) ? errname(errno) : "0");
    }
    show_vmflags(sh, "shared anon after all");
    show_vmflags(pf, "private file after all");
    show_vmflags(sf, "shared file after all");

    printf("== 4d special mappings: [vvar] (VM_IO|VM_PFNMAP) and [vdso]\n");
    {
        FILE *f = fopen("/proc/self/maps", "r"); char line[512]; unsigned long vvar = 0, vdso = 0, vvar_e = 0, vdso_e = 0;
        while (fgets(line, sizeof line, f)) {
            unsigned long s, e; sscanf(line, "%lx-%lx", &s, &e);
            if (strstr(line, "[vvar]")) { vvar = s; vvar_e = e; }
            if (strstr(line, "[vdso]")) { vdso = s; vdso_e = e; }
        }
        fclose(f);
        show_vmflags((void *)vvar, "[vvar] before");
        int a2[] = {MADV_DONTFORK, MADV_DOFORK, MADV_DONTNEED, MADV_WIPEONFORK, MADV_DONTDUMP, MADV_DODUMP, MADV_NORMAL, MADV_WILLNEED, MADV_HUGEPAGE, MADV_MERGEABLE, MADV_POPULATE_READ, MADV_COLD, MADV_FREE};
        for (unsigned i = 0; i < sizeof a2 / sizeof a2[0]; i++) {
            fflush(stdout);
            pid_t c = fork();
            if (!c) {
                int r1 = madvise((void *)vvar, PG, a2[i]); int e1 = errno;
                int r2 = madvise((void *)vdso, PG, a2[i]); int e2 = errno;
                int r3 = madvise((void *)vvar, vvar_e - vvar, a2[i]); int e3 = errno;
                int r4 = madvise((void *)vdso, vdso_e - vdso, a2[i]); int e4 = errno;
                printf("madvise(%-15s) first page only: [vvar] -> %-7s [vdso] -> %-7s | whole VMA: [vvar] -> %-7s [vdso] -> %s\n", advname(a2[i]),
                       r1 ? errname(e1) : "0", r2 ? errname(e2) : "0", r3 ? errname(e3) : "0", r4 ? errname(e4) : "0");
                show_vmflags((void *)vvar, "    [vvar] after");
                show_vmflags((void *)vdso, "    [vdso] after");
                fflush(stdout); _exit(0);
            }
            waitpid(c, NULL, 0);
        }
    }

    printf("== 4e range errors\n");
    char *a = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *hole = slot(2);   /* an unmapped 2-page hole with unmapped neighbours */
    printf("unmapped range MADV_NORMAL -> %s\n", RES(madvise(hole, 2 * PG, MADV_NORMAL)));
    printf("unmapped range MADV_DONTNEED -> %s\n", RES(madvise(hole, 2 * PG, MADV_DONTNEED)));
    printf("unmapped range MADV_WILLNEED -> %s\n", RES(madvise(hole, 2 * PG, MADV_WILLNEED)));
    printf("unmapped range invalid advice 5 -> %s\n", RES(madvise(hole, 2 * PG, 5)));
    printf("unaligned start (a+1) MADV_NORMAL -> %s\n", RES(madvise(a + 1, PG, MADV_NORMAL)));
    printf("len 0 aligned MADV_DONTFORK -> %s\n", RES(madvise(a, 0, MADV_DONTFORK)));
    printf("len 0 unaligned start -> %s\n", RES(madvise(a + 1, 0, MADV_NORMAL)));
    printf("len 0 invalid advice 5 -> %s\n", RES(madvise(a, 0, 5)));
    printf("len 0 on unmapped -> %s\n", RES(madvise(hole, 0, MADV_NORMAL)));
    printf("len 1 (rounds up to a page) MADV_DONTFORK on page0 -> %s\n", RES(madvise(a, 1, MADV_DONTFORK)));
    show_vmflags(a, "    page0 after len-1 DONTFORK");
    show_vmflags(a + PG, "    page1");
    madvise(a, PG, MADV_DOFORK);
    printf("len -1 -> %s\n", RES(madvise(a, (size_t)-1, MADV_NORMAL)));
    printf("len -4096 -> %s\n", RES(madvise(a, (size_t)-4096, MADV_NORMAL)));
    printf("start above TASK_SIZE -> %s\n", RES(madvise((void *)0x800000000000UL, PG, MADV_NORMAL)));

    printf("== 4f range with a hole: [A 2p][hole 1p][B 2p], MADV_DONTFORK over all 5 pages\n");
    char *r = slot_mmap(5, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(r + 2 * PG, PG);
    printf("madvise(DONTFORK, 5 pages with hole) -> %s\n", RES(madvise(r, 5 * PG, MADV_DONTFORK)));
    show_vmflags(r, "    A after");
    show_vmflags(r + 3 * PG, "    B after");
    printf("range starting in hole: madvise(DONTDUMP, hole..B end) -> %s\n", RES(madvise(r + 2 * PG, 3 * PG, MADV_DONTDUMP)));
    show_vmflags(r + 3 * PG, "    B after");
    printf("range ending in hole: madvise(HUGEPAGE, A..hole) -> %s\n", RES(madvise(r, 3 * PG, MADV_HUGEPAGE)));
    show_vmflags(r, "    A after");
    r[0] = 7; r[3 * PG] = 8;
    { int r0 = madvise(r, 5 * PG, MADV_DONTNEED); int e0 = errno;
      printf("hole + DONTNEED (A[0]=7, B[0]=8 written first): -> %s, A[0] now %d, B[0] now %d\n", r0 ? errname(e0) : "0", r[0], r[3 * PG]); }
    printf("hole + invalid-for-anon MADV_REMOVE -> %s\n", RES(madvise(r, 5 * PG, MADV_REMOVE)));

    printf("== 4g MADV_DONTNEED contents\n");
    char *pa = slot_mmap(1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pa[0] = 'X';
    madvise(pa, PG, MADV_DONTNEED);
    printf("private anon: after DONTNEED byte0 = 0x%02x\n", (unsigned char)pa[0]);
    sh[0] = 'S';
    { int r0 = madvise(sh, PG, MADV_DONTNEED); printf("shared anon: wrote 'S', DONTNEED -> %s, byte0 = %c\n", r0 ? errname(errno) : "0", sh[0]); }
    { int fd2 = open("/tmp/vmsim_p04_file2", O_RDWR | O_CREAT | O_TRUNC, 0644); write(fd2, buf, PG);
      char *pf2 = slot_mmap(1, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd2, 0);
      pf2[0] = 'P'; int r0 = madvise(pf2, PG, MADV_DONTNEED);
      printf("fresh private file (content 'F'): wrote 'P' (COW), DONTNEED -> %s, byte0 = %c\n", r0 ? errname(errno) : "0", pf2[0]);
      close(fd2); unlink("/tmp/vmsim_p04_file2"); }
    pf[0] = 'P';
    { int r0 = madvise(pf, PG, MADV_DONTNEED); printf("private file: wrote 'P' (COW), DONTNEED -> %s, byte0 = 0x%02x (file page content at this point: 0x%02x)\n", r0 ? errname(errno) : "0", (unsigned char)pf[0], (unsigned char)sf[0]); }
    sf[PG] = 'W';
    { int r0 = madvise(sf + PG, PG, MADV_DONTNEED); printf("shared file: wrote 'W', DONTNEED -> %s, byte = %c\n", r0 ? errname(errno) : "0", sf[PG]); }
    char *pfree = slot_mmap(1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pfree[0] = 'Y';
    { int r0 = madvise(pfree, PG, MADV_FREE); show_smaps(pfree, "after MADV_FREE of a dirty anon page (LazyFree)");
      printf("private anon MADV_FREE -> %s, byte0 = 0x%02x (no memory pressure: kept)\n", r0 ? errname(errno) : "0", (unsigned char)pfree[0]); }
    { int r0 = madvise(pf, PG, MADV_REMOVE); int e0 = errno; printf("private file REMOVE -> %s\n", r0 ? errname(e0) : "0"); }
    sf[2 * PG] = 'Q';
    { int r0 = madvise(sf + 2 * PG, PG, MADV_REMOVE); int e0 = errno; printf("shared file REMOVE page 2 -> %s, byte = 0x%02x\n", r0 ? errname(e0) : "0", (unsigned char)sf[2 * PG]); }
    sh[0] = 'S';
    { int r0 = madvise(sh, PG, MADV_REMOVE); int e0 = errno; printf("shared anon REMOVE -> %s, byte0 = 0x%02x\n", r0 ? errname(e0) : "0", (unsigned char)sh[0]); }
    printf("== 4g2 GUARD_INSTALL then GUARD_REMOVE (does 'gu' stay?), and on a file mapping\n");
    {
        char *g = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        int r0 = madvise(g + PG, PG, MADV_GUARD_INSTALL); printf("install page1 -> %s\n", r0 ? errname(errno) : "0");
        show_vmflags(g, "    after install");
        r0 = madvise(g + PG, PG, MADV_GUARD_REMOVE); printf("remove page1 -> %s\n", r0 ? errname(errno) : "0");
        show_vmflags(g, "    after remove");
        r0 = mprotect(g, PG, PROT_READ); printf("mprotect page0 R -> %s\n", r0 ? errname(errno) : "0");
        show_vmflags(g, "    page0"); show_vmflags(g + PG, "    page1");
        char *g2 = slot_mmap(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        show_vmflags(g2, "    fresh neighbour slot (no gu)");
        {   /* does a gu VMA merge with a fresh neighbour? */
            char *m = slot(4);
            char *x = mmap(m, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            madvise(x, PG, MADV_GUARD_INSTALL); madvise(x, PG, MADV_GUARD_REMOVE);
            char *y = mmap(m + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            (void)y;
            show_maps_range((unsigned long)m, (unsigned long)m + 4 * PG, "gu VMA [2p] + fresh adjacent mmap [2p] after it");
            show_vmflags(m, "    first"); show_vmflags(m + 2 * PG, "    second");
            char *m2 = slot(4);
            char *y2 = mmap(m2 + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            madvise(y2, PG, MADV_GUARD_INSTALL);
            char *x2 = mmap(m2, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            (void)x2;
            show_maps_range((unsigned long)m2, (unsigned long)m2 + 4 * PG, "fresh mmap [2p] placed before a gu VMA [2p]");
            show_vmflags(m2, "    first"); show_vmflags(m2 + 2 * PG, "    second");
            int r1 = mprotect(m2 + 2 * PG, 2 * PG, PROT_READ); int r2 = mprotect(m2 + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE);
            printf("mprotect gu part R then RW -> %d %d\n", r1, r2);
            show_maps_range((unsigned long)m2, (unsigned long)m2 + 4 * PG, "after");
            show_vmflags(m2, "    first"); show_vmflags(m2 + 2 * PG, "    second");
        }
        r0 = madvise(pf, PG, MADV_GUARD_INSTALL); printf("install on private file -> %s\n", r0 ? errname(errno) : "0");
        show_vmflags(pf, "    private file after");
        r0 = madvise(sf, PG, MADV_GUARD_INSTALL); printf("install on shared file -> %s\n", r0 ? errname(errno) : "0");
        show_vmflags(sf, "    shared file after");
        r0 = madvise(sh, PG, MADV_GUARD_INSTALL); printf("install on shared anon -> %s\n", r0 ? errname(errno) : "0");
        char *lk = slot_mmap(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        r0 = madvise(lk, PG, MADV_GUARD_INSTALL); printf("install on mlocked anon -> %s\n", r0 ? errname(errno) : "0");
    }
    unlink("/tmp/vmsim_p04_file");

    printf("== 4h PROT_NONE and sealed\n");
    char *pn = slot_mmap(2, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    { const int L[] = {MADV_DONTNEED, MADV_WILLNEED, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_DONTFORK};
      for (int i = 0; i < 5; i++) { int r0 = madvise(pn, 2 * PG, L[i]); printf("PROT_NONE anon %-15s -> %s\n", advname(L[i]), r0 ? errname(errno) : "0"); } }
    char *ro = slot_mmap(2, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    { const int L[] = {MADV_POPULATE_WRITE, MADV_POPULATE_READ};
      for (int i = 0; i < 2; i++) { int r0 = madvise(ro, 2 * PG, L[i]); printf("PROT_READ anon %-15s -> %s\n", advname(L[i]), r0 ? errname(errno) : "0"); } }
    printf("mseal -> %ld\n", syscall(462, ro, 2 * PG, 0));
    { const int L[] = {MADV_DONTNEED, MADV_FREE, MADV_DONTNEED_LOCKED, MADV_PAGEOUT, MADV_COLD, MADV_DONTFORK, MADV_NORMAL, MADV_WIPEONFORK, MADV_GUARD_INSTALL};
      for (int i = 0; i < 9; i++) { int r0 = madvise(ro, 2 * PG, L[i]); printf("sealed PROT_READ anon %-15s -> %s\n", advname(L[i]), r0 ? errname(errno) : "0"); } }
    show_vmflags(ro, "    sealed ro after");
    char *rw = slot_mmap(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    rw[0] = 1;
    printf("mseal rw -> %ld\n", syscall(462, rw, 2 * PG, 0));
    { const int L[] = {MADV_DONTNEED, MADV_FREE, MADV_DONTFORK, MADV_NORMAL, MADV_RANDOM, MADV_WIPEONFORK, MADV_HUGEPAGE, MADV_DONTDUMP, MADV_MERGEABLE, MADV_GUARD_INSTALL, MADV_POPULATE_WRITE};
      for (int i = 0; i < 11; i++) { int r0 = madvise(rw, 2 * PG, L[i]); printf("sealed RW anon %-15s -> %s\n", advname(L[i]), r0 ? errname(errno) : "0"); } }
    show_vmflags(rw, "    sealed rw after");
    return 0;
}
