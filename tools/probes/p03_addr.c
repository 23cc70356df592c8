/* Topic 3: address choice under setarch -R (no ASLR). Each case runs in a
 * fresh fork() of the same baseline process, so every case sees the same
 * address space. */
#include "probe_common.h"

#define A (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
struct cse { const char *name; void *hint; size_t len; int prot; int flags; int fdkind; off_t off; };

static int file_fd;

static void run(struct cse *c)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = c->fdkind ? file_fd : -1;
        errno = 0;
        void *r = mmap(c->hint, c->len, c->prot, c->flags, fd, c->off);
        if (r == MAP_FAILED)
            printf("%-58s hint=%-14p len=%#-10zx -> FAILED %s\n", c->name, c->hint, c->len, errname(errno));
        else
            printf("%-58s hint=%-14p len=%#-10zx -> %p (end %p)\n", c->name, c->hint, c->len, r, (char *)r + c->len);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

int main(void)
{
    file_fd = open("/tmp/vmsim_p03_file", O_RDWR | O_CREAT | O_TRUNC, 0644);
    ftruncate(file_fd, 16 << 20);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);  /* buffer from heap before we snapshot */
    printf("baseline process: TASK_SIZE=0x7ffffffff000, expected mmap_base = TASK_SIZE - 128MiB = 0x7ffff7fff000\n");
    show_all_maps("baseline (every case below is forked from this)");
    static struct cse cases[] = {
        {"anon 1 page", NULL, PG, A, PA, 0, 0},
        {"anon 2 pages", NULL, 2 * PG, A, PA, 0, 0},
        {"anon 9 pages", NULL, 9 * PG, A, PA, 0, 0},
        {"anon 10 pages", NULL, 10 * PG, A, PA, 0, 0},
        {"anon 1 MiB", NULL, 1 << 20, A, PA, 0, 0},
        {"anon 2 MiB", NULL, 2 << 20, A, PA, 0, 0},
        {"anon 2 MiB PROT_NONE", NULL, 2 << 20, PROT_NONE, PA, 0, 0},
        {"anon 4 MiB", NULL, 4 << 20, A, PA, 0, 0},
        {"anon 4 MiB + 1 page", NULL, (4 << 20) + PG, A, PA, 0, 0},
        {"anon 2 MiB - 1 byte (len page-aligns to 2 MiB)", NULL, (2 << 20) - 1, A, PA, 0, 0},
        {"anon 1 GiB", NULL, 1UL << 30, A, PA | MAP_NORESERVE, 0, 0},
        {"anon 2 MiB with hint 0x10000000", (void *)0x10000000, 2 << 20, A, PA, 0, 0},
        {"anon 2 MiB with unaligned hint 0x10001234", (void *)0x10001234, 2 << 20, A, PA, 0, 0},
        {"anon MAP_32BIT 1 page", NULL, PG, A, PA | MAP_32BIT, 0, 0},
        {"anon MAP_32BIT 2 MiB", NULL, 2 << 20, A, PA | MAP_32BIT, 0, 0},
        {"anon MAP_32BIT 1 GiB", NULL, 1UL << 30, A, PA | MAP_32BIT, 0, 0},
        {"anon MAP_32BIT 2 GiB - 1 page", NULL, (2UL << 30) - PG, A, PA | MAP_32BIT, 0, 0},
        {"anon MAP_32BIT with hint 0x10000000", (void *)0x10000000, PG, A, PA | MAP_32BIT, 0, 0},
        {"MAP_SHARED anon 1 page", NULL, PG, A, MAP_SHARED | MAP_ANONYMOUS, 0, 0},
        {"MAP_SHARED anon 2 MiB", NULL, 2 << 20, A, MAP_SHARED | MAP_ANONYMOUS, 0, 0},
        {"MAP_SHARED anon 4 MiB + 1 page", NULL, (4 << 20) + PG, A, MAP_SHARED | MAP_ANONYMOUS, 0, 0},
        {"MAP_STACK anon 1 page", NULL, PG, A, PA | MAP_STACK, 0, 0},
        {"MAP_GROWSDOWN anon 1 page", NULL, PG, A, PA | MAP_GROWSDOWN, 0, 0},
        {"file private 1 page off 0", NULL, PG, PROT_READ, MAP_PRIVATE, 1, 0},
        {"file private 2 MiB off 0", NULL, 2 << 20, PROT_READ, MAP_PRIVATE, 1, 0},
        {"file private 2 MiB off 0x1000", NULL, 2 << 20, PROT_READ, MAP_PRIVATE, 1, 0x1000},
        {"file private 4 MiB+1p off 0", NULL, (4 << 20) + PG, PROT_READ, MAP_PRIVATE, 1, 0},
        {"file shared 2 MiB off 0", NULL, 2 << 20, A, MAP_SHARED, 1, 0},
        {"hint 0x800 (below mmap_min_addr, rounds to 0)", (void *)0x800, PG, A, PA, 0, 0},
        {"hint 0x1000 (== mmap_min_addr)", (void *)0x1000, PG, A, PA, 0, 0},
        {"hint 0x1800 (unaligned)", (void *)0x1800, PG, A, PA, 0, 0},
        {"hint 0x10000", (void *)0x10000, PG, A, PA, 0, 0},
        {"MAP_FIXED at 0", (void *)0, PG, A, PA | MAP_FIXED, 0, 0},
        {"hint in middle of executable 0x555555555000", (void *)0x555555555000, PG, A, PA, 0, 0},
        {"hint in middle of libc 0x7ffff7e00000", (void *)0x7ffff7e00000, PG, A, PA, 0, 0},
        {"hint free, len overlaps next VMA (0x555555553000, 2p)", (void *)0x555555553000, 2 * PG, A, PA, 0, 0},
        {"hint just below exe 0x555555553000, 1p", (void *)0x555555553000, PG, A, PA, 0, 0},
        {"hint above mmap_base 0x7ffff8000000", (void *)0x7ffff8000000, PG, A, PA, 0, 0},
        {"hint 0x7fffffe00000 (1 MiB+ below stack start)", (void *)0x7fffffe00000, PG, A, PA, 0, 0},
        {"hint 0x7fffffedd000 1p (ends exactly at stack_start-1MiB)", (void *)0x7fffffedd000, PG, A, PA, 0, 0},
        {"hint 0x7fffffedd000 2p (1 page into the guard gap)", (void *)0x7fffffedd000, 2 * PG, A, PA, 0, 0},
        {"hint 0x7fffffede000 1p (inside the guard gap)", (void *)0x7fffffede000, PG, A, PA, 0, 0},
        {"MAP_FIXED_NOREPLACE 0x7fffffede000 1p (inside gap)", (void *)0x7fffffede000, PG, A, PA | MAP_FIXED_NOREPLACE, 0, 0},
        {"hint 0x7ffff7fff000 1p (right above ld.so, no gap needed)", (void *)0x7ffff7fff000, PG, A, PA, 0, 0},
        {"hint 0x7ffff7fb7000 10p (gap is 9p: overlaps next)", (void *)0x7ffff7fb7000, 10 * PG, A, PA, 0, 0},
        {"hint in stack 0x7ffffffe0000", (void *)0x7ffffffe0000, PG, A, PA, 0, 0},
        {"hint TASK_SIZE-1page 0x7fffffffe000", (void *)0x7fffffffe000, PG, A, PA, 0, 0},
        {"hint == TASK_SIZE 0x7ffffffff000", (void *)0x7ffffffff000, PG, A, PA, 0, 0},
        {"hint above TASK_SIZE 0x800000000000", (void *)0x800000000000, PG, A, PA, 0, 0},
        {"MAP_FIXED at TASK_SIZE", (void *)0x7ffffffff000, PG, A, PA | MAP_FIXED, 0, 0},
        {"anon len 0x7ffffffff000 (== TASK_SIZE)", NULL, 0x7ffffffff000UL, PROT_NONE, PA | MAP_NORESERVE, 0, 0},
        {"anon len 0x7ffffffff000+1p (> TASK_SIZE)", NULL, 0x800000000000UL, PROT_NONE, PA | MAP_NORESERVE, 0, 0},
        {"anon len 0x7fff00000000 (huge, fits bottom-up?)", NULL, 0x7fff00000000UL, PROT_NONE, PA | MAP_NORESERVE, 0, 0},
        {"anon len 0x2aaa00000000 (bigger than gap below libc?)", NULL, 0x2aaa00000000UL, PROT_NONE, PA | MAP_NORESERVE, 0, 0},
        {"anon len 0x555555000000", NULL, 0x555555000000UL, PROT_NONE, PA | MAP_NORESERVE, 0, 0},
        {"anon len 0x555556000000 (> space below exe)", NULL, 0x555556000000UL, PROT_NONE, PA | MAP_NORESERVE, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(&cases[i]);

    printf("== sequence in one process: 5 x anon 1 page, then 2 MiB, then 1 page\n");
    for (int i = 0; i < 5; i++) printf("1 page -> %p\n", mmap(NULL, PG, A, PA, -1, 0));
    char *m2 = mmap(NULL, 2 << 20, A, PA, -1, 0);
    printf("2 MiB -> %p\n", m2);
    printf("1 page -> %p\n", mmap(NULL, PG, A, PA, -1, 0));
    printf("1 page -> %p\n", mmap(NULL, PG, A, PA, -1, 0));
    show_all_maps("after the sequence");
    unlink("/tmp/vmsim_p03_file");
    return 0;
}
