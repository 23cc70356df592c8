/* Topic 7: stack growth of [stack] and of MAP_GROWSDOWN mappings. Each case
 * runs in a fork() child so growth does not accumulate. */
#include "probe_common.h"

static sigjmp_buf jb;
static volatile int got_sig, got_code;
static void *volatile got_addr;
static void handler(int sig, siginfo_t *si, void *u)
{
    (void)u; got_sig = sig; got_code = si->si_code; got_addr = si->si_addr;
    siglongjmp(jb, 1);
}

static void touch(volatile char *a, int write, const char *label)
{
    got_sig = 0;
    if (!sigsetjmp(jb, 1)) {
        if (write) *a = 1; else { volatile char x = *a; (void)x; }
        printf("%-60s %s %p -> OK\n", label, write ? "write" : "read", (void *)a);
    } else {
        printf("%-60s %s %p -> signal %d si_code %d si_addr %p\n", label, write ? "write" : "read", (void *)a, got_sig, got_code, got_addr);
    }
}

static unsigned long stack_start, stack_end;
static void find_stack(void)
{
    FILE *f = fopen("/proc/self/maps", "r"); char line[512];
    while (fgets(line, sizeof line, f)) if (strstr(line, "[stack]")) sscanf(line, "%lx-%lx", &stack_start, &stack_end);
    fclose(f);
}

#define CHILD(...) do { fflush(stdout); pid_t _c = fork(); if (_c == 0) { __VA_ARGS__; fflush(stdout); _exit(0); } int _st; waitpid(_c, &_st, 0); if (!WIFEXITED(_st)) printf("child died: status %#x\n", _st); } while (0)

int main(void)
{
    struct sigaction sa = {0};
    static char altstack[65536];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    sa.sa_sigaction = handler; sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL); sigaction(SIGBUS, &sa, NULL);
    find_stack();
    printf("[stack] = %lx-%lx (size %#lx), RLIMIT_STACK = 8 MiB\n", stack_start, stack_end, stack_end - stack_start);

    printf("== 7a [stack] growth\n");
    CHILD({ touch((char *)stack_start - 1, 1, "1 byte below [stack] start");
            show_maps_range(stack_start - 0x200000, stack_end, "[stack] after"); });
    CHILD({ touch((char *)stack_start - 0x10000 + 5, 0, "64 KiB - 5 below start (read)");
            show_maps_range(stack_start - 0x200000, stack_end, "[stack] after"); show_smaps((char *)stack_start - 0x10000, "[stack] after read-growth"); });
    CHILD({ touch((char *)stack_start - 0x400000, 1, "4 MiB below start");
            show_maps_range(stack_start - 0x800000, stack_end, "[stack] after"); });
    CHILD({ touch((char *)stack_end - 0x800000, 1, "exactly stack_end - 8 MiB (size == rlimit)");
            show_maps_range(stack_end - 0x1000000, stack_end, "[stack] after"); });
    CHILD({ touch((char *)stack_end - 0x800000 - 1, 1, "stack_end - 8 MiB - 1 (size > rlimit)");
            show_maps_range(stack_end - 0x1000000, stack_end, "[stack] after"); });
    CHILD({ struct rlimit rl = {0x40000, RLIM_INFINITY}; setrlimit(RLIMIT_STACK, &rl);
            printf("RLIMIT_STACK set to 256 KiB in the child\n");
            touch((char *)stack_end - 0x40000, 1, "stack_end - 256 KiB");
            touch((char *)stack_end - 0x40000 - 1, 1, "stack_end - 256 KiB - 1");
            show_maps_range(stack_end - 0x100000, stack_end, "[stack] after"); });
    CHILD({ struct rlimit rl = {0x10000, RLIM_INFINITY}; setrlimit(RLIMIT_STACK, &rl);
            printf("RLIMIT_STACK set to 64 KiB (< current 132 KiB stack VMA)\n");
            touch((char *)stack_start + 8, 1, "inside existing [stack]");
            touch((char *)stack_start - 1, 1, "1 byte below");
            show_maps_range(stack_end - 0x100000, stack_end, "[stack] after"); });

    printf("== 7b [stack] growth blocked by a mapping within stack_guard_gap (1 MiB)\n");
    CHILD({ char *b = mmap((void *)(stack_start - 0x100000 - 0x3000), PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            printf("blocker r-- at %p (end = stack_start - 1 MiB - 2 pages)\n", b);
            touch((char *)stack_start - 0x2000, 1, "new start = stack_start - 2p (gap exactly 1 MiB)");
            touch((char *)stack_start - 0x3000, 1, "new start = stack_start - 3p (gap 1 MiB - 1p)");
            show_maps_range(stack_start - 0x200000, stack_end, "after"); });
    CHILD({ char *b = mmap((void *)(stack_start - 0x100000 - 0x3000), PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            printf("blocker PROT_NONE at %p\n", b);
            touch((char *)stack_start - 0x3000, 1, "new start = stack_start - 3p (gap 1 MiB - 1p)");
            touch((char *)stack_start - 0x100000 - 0x1000, 1, "new start = right after the PROT_NONE blocker");
            show_maps_range(stack_start - 0x200000, stack_end, "after"); });
    CHILD({ char *b = mmap((void *)(stack_start - 0x100000 - 0x3000), PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_GROWSDOWN, -1, 0);
            printf("blocker rw GROWSDOWN at %p\n", b);
            touch((char *)stack_start - 0x3000, 1, "new start = stack_start - 3p (prev is GROWSDOWN)");
            show_maps_range(stack_start - 0x200000, stack_end, "after"); });

    printf("== 7c MAP_GROWSDOWN mapping\n");
    char *base = mmap(NULL, 64 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    munmap(base, 64 << 20);
    char *g = base + (32 << 20);   /* free area with 32 MiB free below */
    CHILD({ char *m = mmap(g, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
            show_smaps(m, "GROWSDOWN 4 pages, fresh");
            touch(m - 1, 1, "1 byte below GROWSDOWN start");
            show_smaps(m - PG, "after growth by 1 page");
            touch(m - 0x100000, 0, "1 MiB below (read)");
            show_maps_range((unsigned long)g - 0x200000, (unsigned long)g + 4 * PG, "after 1 MiB growth");
            touch(m + 4 * PG, 1, "just above the end (not grows-up)");
            touch(m - 0x800000 + 4 * PG - 1, 1, "size would be 8 MiB + 1p - 1 (over rlimit)"); 
            touch(m - 0x800000 + 4 * PG, 1, "size exactly 8 MiB");
            show_maps_range((unsigned long)g - 0x1000000, (unsigned long)g + 4 * PG, "after"); });
    CHILD({ char *m = mmap(g, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
            char *b = mmap(g - 0x100000 - 3 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            printf("blocker at %p (end = start - 1 MiB - 2p)\n", b);
            touch(m - 2 * PG, 1, "grow 2 pages (gap exactly 1 MiB)");
            touch(m - 3 * PG, 1, "grow 3 pages (gap 1 MiB - 1p)");
            show_maps_range((unsigned long)g - 0x200000, (unsigned long)g + 4 * PG, "after"); });
    CHILD({ char *m = mmap(g, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
            touch(m - 1, 0, "PROT_READ GROWSDOWN: read below");
            touch(m - PG - 1, 1, "PROT_READ GROWSDOWN: write below (grows, then ACCERR?)");
            show_maps_range((unsigned long)g - 0x200000, (unsigned long)g + 4 * PG, "after"); });
    CHILD({ char *m = mmap(g, 4 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
            touch(m - 1, 0, "PROT_NONE GROWSDOWN: read below");
            show_maps_range((unsigned long)g - 0x200000, (unsigned long)g + 4 * PG, "after"); });
    CHILD({ char *m = mmap(g, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
            printf("mprotect(m+PG, PG, R|GROWSDOWN) -> %s\n", RES(mprotect(m + PG, PG, PROT_READ | PROT_GROWSDOWN)));
            show_maps_range((unsigned long)g - 0x200000, (unsigned long)g + 4 * PG, "after mprotect GROWSDOWN (applies from vm_start)");
            printf("munmap middle page of GROWSDOWN -> %s\n", RES(munmap(m + 2 * PG, PG)));
            show_maps_range((unsigned long)g - 0x200000, (unsigned long)g + 4 * PG, "after split"); show_vmflags(m + 3 * PG, "upper part");
            touch(m + 2 * PG, 1, "write into the hole below the upper part (grows upper part?)");
            show_maps_range((unsigned long)g - 0x200000, (unsigned long)g + 4 * PG, "after"); });
    CHILD({ char *m = mmap(g, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
            char *lo = mmap(g - 2 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            printf("plain anon 1 page at %p, 1-page hole, then GROWSDOWN\n", lo);
            touch(m - 1, 1, "grow into the hole right above a plain rw VMA");
            show_maps_range((unsigned long)g - 0x200000, (unsigned long)g + 4 * PG, "after"); });
    return 0;
}
