/* Topic 5: mlock / munlock / mlock2 / mlockall corner cases. */
#include "probe_common.h"

static void vmlck(const char *label)
{
    FILE *f = fopen("/proc/self/status", "r"); char line[256];
    while (fgets(line, sizeof line, f)) if (!strncmp(line, "VmLck:", 6)) printf("%-40s %s", label, line);
    fclose(f);
}

static void smaps_field(const void *addr, const char *field)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512]; int in = 0; unsigned long a = (unsigned long)addr;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e; char c;
        if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3 && strchr(line, '-') < strchr(line, ' '))
            in = (a >= s && a < e);
        if (in && !strncmp(line, field, strlen(field))) printf("    %s", line);
    }
    fclose(f);
}

int main(void)
{
    carve_init();
    char *p;
    printf("== 5a mlock on PROT_NONE (4 pages)\n");
    p = slot_mmap(4, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mlock(PROT_NONE) -> %s\n", RES(mlock(p, 4 * PG)));
    show_vmflags(p, "    PROT_NONE");
    smaps_field(p, "Rss:"); smaps_field(p, "Locked:");
    printf("mprotect(PROT_READ|PROT_WRITE) of locked PROT_NONE -> %s\n", RES(mprotect(p, 4 * PG, PROT_READ | PROT_WRITE)));
    show_vmflags(p, "    after mprotect RW");
    smaps_field(p, "Rss:"); smaps_field(p, "Locked:");

    printf("== 5b mlock on range with a hole: [A 2p][hole][B 2p]\n");
    p = slot_mmap(5, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p + 2 * PG, PG);
    printf("mlock(A..B) -> %s\n", RES(mlock(p, 5 * PG)));
    show_vmflags(p, "    A"); show_vmflags(p + 3 * PG, "    B");
    smaps_field(p, "Rss:");
    printf("mlock(hole..B) -> %s\n", RES(mlock(p + 2 * PG, 3 * PG)));
    show_vmflags(p + 3 * PG, "    B");
    printf("mlock(A only) -> %s\n", RES(mlock(p, 2 * PG)));
    printf("munlock(A..B) -> %s\n", RES(munlock(p, 5 * PG)));
    show_vmflags(p, "    A"); show_vmflags(p + 3 * PG, "    B");
    printf("mlock(entirely unmapped hole) -> %s\n", RES(mlock(p + 2 * PG, PG)));
    printf("munlock(hole) -> %s\n", RES(munlock(p + 2 * PG, PG)));

    printf("== 5c unaligned start / len rounding / len 0 (4-page VMA)\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mlock(p+PG+100, 10) -> %s\n", RES(mlock(p + PG + 100, 10)));
    for (int i = 0; i < 4; i++) show_vmflags(p + i * PG, "    page");
    printf("munlock(p+PG+4000, 200) (crosses into page 2) -> %s\n", RES(munlock(p + PG + 4000, 200)));
    for (int i = 0; i < 4; i++) show_vmflags(p + i * PG, "    page");
    printf("mlock(p, 0) -> %s\n", RES(mlock(p, 0)));
    for (int i = 0; i < 4; i++) show_vmflags(p + i * PG, "    page");
    printf("mlock(p+1, 0) -> %s\n", RES(mlock(p + 1, 0)));
    for (int i = 0; i < 4; i++) show_vmflags(p + i * PG, "    page");
    munlock(p, 4 * PG);
    printf("mlock(p, -1) -> %s\n", RES(mlock(p, (size_t)-1)));
    for (int i = 0; i < 4; i++) show_vmflags(p + i * PG, "    page");
    printf("mlock(p, -4096) -> %s\n", RES(mlock(p, (size_t)-4096)));

    printf("== 5d mlock middle then munlock: split / merge\n");
    p = slot_mmap(3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mlock(middle) -> %s\n", RES(mlock(p + PG, PG)));
    show_maps_range((unsigned long)p, (unsigned long)p + 3 * PG, "after mlock middle");
    smaps_field(p + PG, "Rss:");
    printf("munlock(middle) -> %s\n", RES(munlock(p + PG, PG)));
    show_maps_range((unsigned long)p, (unsigned long)p + 3 * PG, "after munlock middle");
    smaps_field(p, "Rss:");

    printf("== 5e mlock2(MLOCK_ONFAULT)\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mlock2(ONFAULT) -> %ld\n", syscall(SYS_mlock2, p, 4 * PG, MLOCK_ONFAULT));
    show_smaps(p, "after mlock2(MLOCK_ONFAULT), unfaulted");
    p[0] = 1;
    smaps_field(p, "Rss:"); smaps_field(p, "Locked:");
    printf("mlock2(flags=2) -> %s\n", syscall(SYS_mlock2, p, PG, 2) ? errname(errno) : "0");
    printf("mlock(p, 4p) over ONFAULT (upgrades to full lock?) -> %s\n", RES(mlock(p, 4 * PG)));
    show_vmflags(p, "    after mlock");
    smaps_field(p, "Rss:"); smaps_field(p, "Locked:");
    char *q = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mlock(q, 4 * PG);
    printf("mlock2(ONFAULT) over a fully locked VMA -> %ld\n", syscall(SYS_mlock2, q, 4 * PG, MLOCK_ONFAULT));
    show_vmflags(q, "    after");
    printf("ONFAULT VMA next to a plain-locked VMA: adjacent, do they merge?\n");
    char *r = slot(4);
    char *r1 = mmap(r, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    char *r2 = mmap(r + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("(fresh pair merged: ) "); show_maps_range((unsigned long)r, (unsigned long)r + 4 * PG, "");
    syscall(SYS_mlock2, r1, 2 * PG, MLOCK_ONFAULT); mlock(r2, 2 * PG);
    show_maps_range((unsigned long)r, (unsigned long)r + 4 * PG, "r1 ONFAULT, r2 mlock");

    printf("== 5f mlock on file / shared / special / sealed mappings\n");
    int fd = open("/tmp/vmsim_p05_file", O_RDWR | O_CREAT | O_TRUNC, 0644);
    ftruncate(fd, 4 * PG);
    p = slot_mmap(4, PROT_READ, MAP_SHARED, fd, 0);
    printf("mlock(shared file r) -> %s\n", RES(mlock(p, 4 * PG)));
    show_vmflags(p, "    shared file"); smaps_field(p, "Rss:"); smaps_field(p, "Locked:");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("mlock(private file rw) -> %s\n", RES(mlock(p, 4 * PG)));
    show_vmflags(p, "    private file rw"); smaps_field(p, "Rss:"); smaps_field(p, "Anonymous:"); smaps_field(p, "Private_Dirty:"); smaps_field(p, "Locked:");
    close(fd); unlink("/tmp/vmsim_p05_file");
    {
        FILE *f = fopen("/proc/self/maps", "r"); char line[512]; unsigned long vdso = 0, vdso_e = 0, vvar = 0, vvar_e = 0;
        while (fgets(line, sizeof line, f)) { unsigned long s, e; sscanf(line, "%lx-%lx", &s, &e);
            if (strstr(line, "[vdso]")) { vdso = s; vdso_e = e; } if (strstr(line, "[vvar]")) { vvar = s; vvar_e = e; } }
        fclose(f);
        printf("mlock([vdso] whole) -> %s\n", RES(mlock((void *)vdso, vdso_e - vdso)));
        show_vmflags((void *)vdso, "    [vdso]");
        printf("mlock([vvar] whole) -> %s\n", RES(mlock((void *)vvar, vvar_e - vvar)));
        show_vmflags((void *)vvar, "    [vvar]");
        printf("mlock([vsyscall]) -> %s\n", RES(mlock((void *)0xffffffffff600000UL, PG)));
    }
    p = slot_mmap(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    syscall(462, p, 2 * PG, 0);
    printf("mlock(sealed) -> %s\n", RES(mlock(p, 2 * PG)));
    show_vmflags(p, "    sealed");
    printf("munlock(sealed) -> %s\n", RES(munlock(p, 2 * PG)));
    show_vmflags(p, "    sealed");
    printf("mlock(sealed, first page only: would split) -> %s\n", RES(mlock(p, PG)));
    show_maps_range((unsigned long)p, (unsigned long)p + 2 * PG, "sealed after partial mlock");
    vmlck("VmLck before exit of main part:");

    printf("== 5g mlockall in a child\n");
    fflush(stdout);
    if (fork() == 0) {
        printf("mlockall(MCL_CURRENT|MCL_FUTURE) -> %s\n", RES(mlockall(MCL_CURRENT | MCL_FUTURE)));
        char *n = slot_mmap(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        show_vmflags(n, "    new anon after MCL_FUTURE"); smaps_field(n, "Rss:");
        char *n2 = slot_mmap(2, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        show_vmflags(n2, "    new PROT_NONE after MCL_FUTURE");
        int local; show_vmflags(&local, "    [stack]");
        printf("munlockall -> %s\n", RES(munlockall()));
        show_vmflags(n, "    new anon after munlockall");
        printf("mlockall(MCL_FUTURE|MCL_ONFAULT) -> %s\n", RES(mlockall(MCL_FUTURE | MCL_ONFAULT)));
        n = slot_mmap(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        show_vmflags(n, "    new anon after MCL_FUTURE|ONFAULT"); smaps_field(n, "Rss:");
        printf("mlockall(0) -> %s\n", RES(mlockall(0)));
        printf("mlockall(MCL_ONFAULT) alone -> %s\n", RES(mlockall(MCL_ONFAULT)));
        printf("mlockall(8) -> %s\n", RES(mlockall(8)));
        fflush(stdout); _exit(0);
    }
    wait(NULL);

    printf("== 5h RLIMIT_MEMLOCK as an unprivileged user (child: setrlimit 16 KiB, setuid(65534))\n");
    fflush(stdout);
    if (fork() == 0) {
        struct rlimit rl = {16384, 16384};
        setrlimit(RLIMIT_MEMLOCK, &rl);
        if (setgid(65534) || setuid(65534)) { printf("setuid failed\n"); _exit(1); }
        char *a = slot_mmap(8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("mlock 4 pages (== limit) -> %s\n", RES(mlock(a, 4 * PG)));
        printf("mlock 1 more page (over) -> %s\n", RES(mlock(a + 4 * PG, PG)));
        printf("mlock the same 4 pages again -> %s\n", RES(mlock(a, 4 * PG)));
        printf("mlock2 ONFAULT 1 more page -> %s\n", syscall(SYS_mlock2, a + 4 * PG, PG, MLOCK_ONFAULT) ? errname(errno) : "0");
        char *b = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        printf("mmap(MAP_LOCKED, 1 page) over limit -> %s\n", b == MAP_FAILED ? errname(errno) : "ok");
        printf("munlock(a, 4p) -> %s\n", RES(munlock(a, 4 * PG)));
        printf("mlock 5 pages (> limit) -> %s\n", RES(mlock(a, 5 * PG)));
        show_vmflags(a, "    after failed mlock");
        printf("mlockall(MCL_CURRENT) -> %s\n", RES(mlockall(MCL_CURRENT)));
        printf("mlockall(MCL_FUTURE) -> %s\n", RES(mlockall(MCL_FUTURE)));
        b = mmap(NULL, 5 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("mmap 5 pages after MCL_FUTURE (over limit) -> %s\n", b == MAP_FAILED ? errname(errno) : "ok");
        struct rlimit z = {0, 0}; setrlimit(RLIMIT_MEMLOCK, &z);
        printf("RLIMIT_MEMLOCK=0: mlock 1 page -> %s\n", RES(mlock(a, PG)));
        b = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        printf("RLIMIT_MEMLOCK=0: mmap(MAP_LOCKED) -> %s\n", b == MAP_FAILED ? errname(errno) : "ok");
        fflush(stdout); _exit(0);
    }
    wait(NULL);
    return 0;
}
