/* Topic 9: what the child of fork() sees: DONTFORK, WIPEONFORK, DROPPABLE,
 * shared anon, private anon, mlocked, sealed, guard regions. */
#include "probe_common.h"

struct reg { const char *name; char *p; int pages; };

int main(void)
{
    carve_init();
    struct reg R[16]; int n = 0;
    int RW = PROT_READ | PROT_WRITE, PA = MAP_PRIVATE | MAP_ANONYMOUS;
#define ADD(nm, pg, pr, fl) do { R[n].name = nm; R[n].pages = pg; R[n].p = slot_mmap(pg, pr, fl, -1, 0); memset(R[n].p, 'A' + n, (pg) * PG); n++; } while (0)
    ADD("private anon", 2, RW, PA);
    ADD("DONTFORK (whole)", 2, RW, PA);           madvise(R[n-1].p, 2 * PG, MADV_DONTFORK);
    ADD("DONTFORK (middle page of 3)", 3, RW, PA); madvise(R[n-1].p + PG, PG, MADV_DONTFORK);
    ADD("WIPEONFORK", 2, RW, PA);                 madvise(R[n-1].p, 2 * PG, MADV_WIPEONFORK);
    ADD("WIPEONFORK (middle page of 3)", 3, RW, PA); madvise(R[n-1].p + PG, PG, MADV_WIPEONFORK);
    ADD("shared anon", 2, RW, MAP_SHARED | MAP_ANONYMOUS);
    ADD("DROPPABLE", 2, RW, MAP_DROPPABLE | MAP_ANONYMOUS);
    ADD("mlocked", 2, RW, PA);                    mlock(R[n-1].p, 2 * PG);
    ADD("mlock2 ONFAULT", 2, RW, PA);             syscall(SYS_mlock2, R[n-1].p, 2 * PG, MLOCK_ONFAULT);
    ADD("sealed", 2, RW, PA);                     syscall(462, R[n-1].p, 2 * PG, 0);
    ADD("guard page 0 (gu)", 2, RW, PA);          madvise(R[n-1].p, PG, MADV_GUARD_INSTALL);
    ADD("MAP_NORESERVE", 2, RW, PA | MAP_NORESERVE);
    ADD("hugepage advised", 2, RW, PA);           madvise(R[n-1].p, 2 * PG, MADV_HUGEPAGE);

    printf("== parent view\n");
    for (int i = 0; i < n; i++) {
        show_maps_range((unsigned long)R[i].p, (unsigned long)R[i].p + R[i].pages * PG, R[i].name);
        for (int j = 0; j < R[i].pages; j++) show_vmflags(R[i].p + j * PG, "    page");
    }
    fflush(stdout);
    int pipefd[2]; pipe(pipefd);
    pid_t c = fork();
    if (c == 0) {
        printf("== child view\n");
        for (int i = 0; i < n; i++) {
            show_maps_range((unsigned long)R[i].p, (unsigned long)R[i].p + R[i].pages * PG, R[i].name);
            for (int j = 0; j < R[i].pages; j++) {
                unsigned char vec;
                if (mincore(R[i].p + j * PG, PG, &vec) == -1) { printf("    page %d: not mapped (mincore %s)\n", j, errname(errno)); continue; }
                show_vmflags(R[i].p + j * PG, "    page");
                if (!strcmp(R[i].name, "guard page 0 (gu)") && j == 0) { printf("    (guard page not read)\n"); continue; }
                printf("    page %d content byte: 0x%02x (parent wrote 0x%02x)\n", j, (unsigned char)R[i].p[j * PG], 'A' + i);
            }
        }
        show_smaps(R[0].p, "child: private anon (pages shared with parent)");
        show_smaps(R[3].p, "child: WIPEONFORK");
        show_smaps(R[7].p, "child: formerly mlocked");
        R[5].p[0] = 'z';   /* shared anon write in child */
        R[0].p[0] = 'z';   /* private anon write in child */
        fflush(stdout);
        write(pipefd[1], "x", 1);
        _exit(0);
    }
    char ch; read(pipefd[0], &ch, 1);
    waitpid(c, NULL, 0);
    printf("== parent after child wrote 'z' to shared anon and private anon page 0\n");
    printf("shared anon byte0 in parent = %c ; private anon byte0 in parent = %c\n", R[5].p[0], R[0].p[0]);
    return 0;
}
