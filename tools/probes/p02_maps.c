/* Topic 2: /proc/self/maps lines for device, file, tmpfs, memfd and unlinked
 * mappings; [vsyscall], [heap], [stack] under setarch -R. */
#include "probe_common.h"

static void statline(const char *what, int fd)
{
    struct stat st;
    fstat(fd, &st);
    printf("fstat(%s): st_dev=%lx (major %u minor %u) st_ino=%lu st_rdev=%lx\n", what,
           (unsigned long)st.st_dev, major(st.st_dev), minor(st.st_dev),
           (unsigned long)st.st_ino, (unsigned long)st.st_rdev);
}

int main(void)
{
    char *p;
    carve_init();
    printf("== 2a /dev/zero MAP_PRIVATE rw 4 pages, offset 0x3000\n");
    int z = open("/dev/zero", O_RDWR);
    statline("/dev/zero", z);
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE, z, 0x3000);
    show_maps_at(p, "/dev/zero private");
    show_vmflags(p, "/dev/zero private");
    p[0] = 1;
    show_maps_at(p, "/dev/zero private after write");
    printf("== 2b /dev/zero MAP_SHARED rw 4 pages, offset 0x3000\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED, z, 0x3000);
    show_maps_at(p, "/dev/zero shared");
    show_vmflags(p, "/dev/zero shared");
    printf("== 2b2 shared anon (MAP_SHARED|MAP_ANONYMOUS) 4 pages, twice\n");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    show_maps_at(p, "shared anon #1");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    show_maps_at(p, "shared anon #2");
    printf("shared anon #2, munmap its first page -> remaining offset:\n");
    munmap(p, PG);
    show_maps_at(p + PG, "shared anon #2 after munmap of page 0");

    printf("== 2c file on /tmp (ext4), 8 pages, mapped at offset 0x2000\n");
    int f = open("/tmp/vmsim_p02_file", O_RDWR | O_CREAT | O_TRUNC, 0644);
    ftruncate(f, 8 * PG);
    statline("/tmp/vmsim_p02_file", f);
    p = slot_mmap(4, PROT_READ, MAP_PRIVATE, f, 0x2000);
    show_maps_at(p, "/tmp file private r, off 0x2000");
    char *q = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0x2000);
    show_maps_at(q, "/tmp file shared rw, off 0x2000");
    printf("== 2d unlinked /tmp file (still mapped)\n");
    unlink("/tmp/vmsim_p02_file");
    show_maps_at(p, "after unlink (private)");
    show_maps_at(q, "after unlink (shared)");
    close(f);

    printf("== 2e file on /dev/shm (tmpfs)\n");
    f = open("/dev/shm/vmsim_p02_shm", O_RDWR | O_CREAT | O_TRUNC, 0644);
    ftruncate(f, 4 * PG);
    statline("/dev/shm/vmsim_p02_shm", f);
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    show_maps_at(p, "/dev/shm shared");
    unlink("/dev/shm/vmsim_p02_shm");
    show_maps_at(p, "/dev/shm shared after unlink");
    close(f);

    printf("== 2f memfd_create(\"vmsim-memfd\", 0) and with MFD_CLOEXEC\n");
    f = memfd_create("vmsim-memfd", 0);
    ftruncate(f, 4 * PG);
    statline("memfd", f);
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    show_maps_at(p, "memfd shared");
    p = slot_mmap(4, PROT_READ | PROT_WRITE, MAP_PRIVATE, f, 0);
    show_maps_at(p, "memfd private");
    show_vmflags(p, "memfd private");
    close(f);
    f = memfd_create("", 0);
    ftruncate(f, 4 * PG);
    p = slot_mmap(4, PROT_READ, MAP_SHARED, f, 0);
    show_maps_at(p, "memfd with empty name");
    close(f);

    printf("== 2g long path name (exactly: column of name)\n");
    f = open("/tmp/vmsim_p02_a_rather_long_file_name_to_check_padding_and_no_truncation_xxxxxxxxxxxxxxxxxxxxxxxx", O_RDWR | O_CREAT | O_TRUNC, 0644);
    ftruncate(f, PG);
    p = slot_mmap(1, PROT_READ, MAP_SHARED, f, 0);
    show_maps_at(p, "long name");
    close(f);
    unlink("/tmp/vmsim_p02_a_rather_long_file_name_to_check_padding_and_no_truncation_xxxxxxxxxxxxxxxxxxxxxxxx");

    printf("== 2h file with a newline and space in its name\n");
    f = open("/tmp/vmsim p02\nnl", O_RDWR | O_CREAT | O_TRUNC, 0644);
    ftruncate(f, PG);
    p = slot_mmap(1, PROT_READ, MAP_SHARED, f, 0);
    show_maps_at(p, "name with space and newline");
    close(f);
    unlink("/tmp/vmsim p02\nnl");

    printf("== 2i sbrk/heap and full map (setarch -R)\n");
    void *b0 = sbrk(0);
    printf("sbrk(0) at start of 2i = %p\n", b0);
    void *m1 = malloc(1); (void)m1;
    printf("sbrk(0) after malloc(1) = %p\n", sbrk(0));
    show_all_maps("end of p02 (heap, stack, vdso, vsyscall)");
    printf("address of a local: %p\n", (void *)&p);
    return 0;
}
