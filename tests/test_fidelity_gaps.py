"""Fidelity gaps found by the wider differential runs (issue #9, section 4, the mm
part), where the scenario oracle cannot show the kernel's side: the exact address of a
MAP_32BIT mapping, smaps Rss, and the system-wide commit charge. The shrunk scenarios
of the other gaps are regressions in tests/divergences/.

The host side of each comparison is a small C program of our own, built with the
system C compiler; the tests skip, with the reason, where it cannot run (not Linux
x86_64, no C compiler, no ext4 directory or tmpfs at /dev/shm).
"""

from __future__ import annotations

import errno
import os
import platform
import shutil
import statistics
import subprocess

import pytest

import vmsim
from vmsim import oracle as O
from vmsim.uapi import (
    MADV_COLLAPSE,
    MAP_32BIT,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_CREAT,
    O_RDONLY,
    O_RDWR,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
)

PAGE = 4096
RW = PROT_READ | PROT_WRITE
W = 0x7E0000000000


def build(tmp_path, name: str, source: str) -> str:
    """Compile `source` with the system C compiler; skip where that cannot be done."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip(f"needs Linux x86_64, not {platform.system()} {platform.machine()}")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src, exe = tmp_path / f"{name}.c", tmp_path / name
    src.write_text(source)
    r = subprocess.run([cc, "-O1", "-o", str(exe), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return str(exe)


def run(*argv: str) -> list[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def fs_type(path) -> str:
    r = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return r.stdout.strip()


@pytest.fixture
def ext4_dir(tmp_path):
    """A directory on ext4 (the model's "/" is ext4), or skip."""
    if fs_type(tmp_path) != "ext2/ext3":
        pytest.skip(f"{tmp_path} is not on ext4 ({fs_type(tmp_path)})")
    return tmp_path


def model(**config) -> tuple[vmsim.Kernel, vmsim.Process]:
    k = vmsim.Kernel(**{**O.kernel_kwargs(), **config})
    return k, k.spawn()


# --------------------------------------------------------------------- item 1: shmem charge

def test_shared_anonymous_object_charged_until_its_last_reference():
    """shmem_zero_setup() charges the object behind a shared anonymous mapping whole
    (shmem_acct_size()); a fork shares it; the charge goes with the last reference
    (shmem_evict_inode()). MAP_NORESERVE objects are not charged."""
    k = vmsim.Kernel(total_ram_pages=1 << 20)
    p = k.spawn()
    a = p.mmap(0, 1 << 30, RW, MAP_SHARED | MAP_ANONYMOUS)
    assert k.committed == (1 << 30) // PAGE
    child = p.fork()
    p.munmap(a, 1 << 30)
    assert k.committed == (1 << 30) // PAGE
    child.exit()
    assert k.committed == 0
    p.mmap(0, 8 << 30, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE)
    assert k.committed == 0
    with pytest.raises(OSError) as err:                 # more than RAM + swap
        p.mmap(0, 8 << 30, PROT_READ, MAP_SHARED | MAP_ANONYMOUS)
    assert err.value.errno == errno.ENOMEM and k.committed == 0
    fd = p.open("/dev/zero", O_RDWR)
    p.mmap(0, 1 << 20, RW, MAP_SHARED, fd, 0)
    assert k.committed == (1 << 20) // PAGE
    p.exit()
    assert k.committed == 0


# --------------------------------------------------------------- item 2: THP placement

PLACE_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/personality.h>
int main(int argc, char **argv) {
    if (!(personality(0xffffffff) & ADDR_NO_RANDOMIZE)) {
        personality(ADDR_NO_RANDOMIZE);
        execv("/proc/self/exe", argv);
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    for (int i = 2; i < argc; i++) {
        void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_32BIT, fd,
                       (off_t)strtoull(argv[i], NULL, 0));
        printf("%#lx\n", p == MAP_FAILED ? 0UL : (unsigned long)p);
        if (p != MAP_FAILED)
            munmap(p, 4096);
    }
    return 0;
}
"""

#: file offsets around the loff_t wrap of __thp_get_unmapped_area()'s round_up()
OFFSETS = [0, 0x200000, 0x7FFFFFFFFFC00000, 0x7FFFFFFFFFE00000, 0x7FFFFFFFFFFFE000,
           0x7FFFFFFFFFFFF000]


def test_map32bit_placement_near_2_63_matches_kernel(tmp_path, ext4_dir):
    """A 4 KiB MAP_32BIT mapping of an ext4 file at offset 2^63 - 8 KiB lands at
    0x401fe000 on this kernel (the padded search, off_sub 0x1fe000) where unbounded
    integers would give 0x40000000; every offset of OFFSETS as the kernel places it."""
    path = ext4_dir / "f"
    path.write_bytes(b"x")
    exe = build(tmp_path, "place", PLACE_C)
    kernel = [int(x, 16) for x in run(exe, str(path), *map(hex, OFFSETS))]
    _, p = model()
    fd = p.open("/tmp/f", O_RDWR | O_CREAT)
    p.pwrite(fd, b"x", 0)
    fd = p.open("/tmp/f", O_RDONLY)
    ours = []
    for off in OFFSETS:
        try:
            addr = p.mmap(0, PAGE, PROT_READ, MAP_PRIVATE | MAP_32BIT, fd, off)
        except OSError:         # past MAX_LFS_FILESIZE: EOVERFLOW, printed as 0
            addr = 0
        ours.append(addr)
        if addr:
            p.munmap(addr, PAGE)
    assert ours == kernel
    assert ours[OFFSETS.index(0x7FFFFFFFFFFFE000)] == 0x401FE000


# ---------------------------------------------- item 8 (and 5): Rss after a failed fault

RSS_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
static sigjmp_buf jb;
static void on_signal(int sig) { siglongjmp(jb, sig); }
static int peek(volatile unsigned char *p) {
    int sig = sigsetjmp(jb, 1);
    return sig ? -sig : *p;
}
static long rss_kb(void *addr) {
    char head[32], line[256];
    long kb = -1;
    int in = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    snprintf(head, sizeof head, "%lx-", (unsigned long)addr);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, head, strlen(head)))
            in = 1;
        else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}
/* argv: path size maplen offset-to-read [collapse] */
int main(int argc, char **argv) {
    signal(SIGBUS, on_signal);
    signal(SIGSEGV, on_signal);
    long size = strtol(argv[2], 0, 0), len = strtol(argv[3], 0, 0), at = strtol(argv[4], 0, 0);
    char page[4096];
    memset(page, 'A', sizeof page);
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    for (long o = 0; o < size; o += 4096)       /* page by page: order-0 folios */
        pwrite(fd, page, size - o < 4096 ? size - o : 4096, o);
    unsigned char *m = mmap((void *)0x7e0000000000UL, len, PROT_READ, MAP_SHARED | MAP_FIXED,
                            fd, 0);
    if (argc > 5)
        printf("collapse %d\n", madvise(m, len, 25 /* MADV_COLLAPSE */));
    printf("read %d\n", peek(m + at));
    printf("rss %ld\n", rss_kb(m));
    unlink(argv[1]);
    return 0;
}
"""

#: (file size, mapping length, offset read, collapse first): a fault past EOF whose
#: fault-around window holds cached pages; one whose first cached page is the file's
#: last (ext4 installs no page table then); one inside EOF; a collapsed tmpfs block
RSS_CASES = [(1, 0x10000, 0x1000, False), (0x2000, 0x10000, 0x3000, False),
             (0x5001, 0x10000, 0x6000, False), (0x11000, 0x20000, 0x11000, False),
             (0x2000, 0x10000, 0, False), (1, 0x200000, 0x3000, True)]


def _model_rss(directory: str, size: int, length: int, at: int, collapse: bool) -> list[str]:
    _, p = model()
    fd = p.open(f"{directory}/f", O_RDWR | O_CREAT)
    for off in range(0, size, PAGE):
        p.pwrite(fd, b"A" * min(PAGE, size - off), off)
    m = p.mmap(W, length, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)
    out = []
    if collapse:
        try:
            out.append(f"collapse {p.madvise(m, length, MADV_COLLAPSE)}")
        except OSError:
            out.append("collapse -1")
    try:
        out.append(f"read {p.read(m + at, 1)[0]}")
    except vmsim.Fault as fault:
        out.append(f"read -{7 if fault.signal == 'SIGBUS' else 11}")
    smap = p.smaps()
    block = smap[smap.index(f"{m:x}-"):]
    out.append("rss " + block[block.index("Rss:"):].split()[1])
    return out


@pytest.mark.parametrize("fs", ["ext4", "tmpfs"])
@pytest.mark.parametrize("case", RSS_CASES, ids=lambda c: f"{c[0]:#x}@{c[2]:#x}")
def test_rss_after_fault_matches_kernel(tmp_path, fs, case):
    """do_read_fault() runs fault-around before ->fault, so a read past EOF that ends
    in SIGBUS has already mapped the cached pages of its window (smaps Rss) — except,
    on ext4, where the window's first cached page is the file's last one and the block
    has no page table yet (filemap_map_pages()' can_map_large is false). A collapsed
    tmpfs block is mapped whole by a PMD: no SIGBUS past EOF, Rss 2 MiB."""
    size, length, at, collapse = case
    if fs == "ext4":
        if fs_type(tmp_path) != "ext2/ext3":
            pytest.skip(f"{tmp_path} is not on ext4")
        host, ours = str(tmp_path), "/tmp"
        if collapse:
            pytest.skip("MADV_COLLAPSE of an ext4 file is EINVAL (no READ_ONLY_THP_FOR_FS)")
    else:
        if fs_type("/dev/shm") != "tmpfs":
            pytest.skip("/dev/shm is not tmpfs")
        host = ours = "/dev/shm"
    exe = build(tmp_path, "rss", RSS_C)
    args = [f"{host}/vmsim-rss-{os.getpid()}", hex(size), hex(length), hex(at)]
    kernel = run(exe, *args, *(["collapse"] if collapse else []))
    assert _model_rss(ours, size, length, at, collapse) == kernel


# --------------------------------------------------- item 9: the mremap commit drift

DRIFT_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
static long committed_kb(void) {
    char line[128];
    long kb = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Committed_AS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}
/* argv: batches iterations; prints each batch's Committed_AS delta in kB */
int main(int argc, char **argv) {
    int batches = atoi(argv[1]), n = atoi(argv[2]);
    unsigned char *base = (unsigned char *)0x7e0000000000UL;
    for (int b = 0; b < batches; b++) {
        long before = committed_kb();
        for (int i = 0; i < n; i++) {
            unsigned char *start = mmap(base, 16384, PROT_READ | PROT_WRITE | PROT_EXEC,
                                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (mremap(start + 0x2000, 12288, 4096, MREMAP_MAYMOVE | MREMAP_FIXED,
                       base + 0x100000) == MAP_FAILED)
                return 1;
            munmap(base, 0x200000);
        }
        printf("%ld\n", committed_kb() - before);
    }
    return 0;
}
"""

BATCHES, ITERATIONS = 5, 200


def test_mremap_shrink_move_leaks_commit_like_the_kernel(tmp_path):
    """A shrinking MREMAP_FIXED move of an accountable VMA charges vrm->delta (old_len -
    new_len: 8 KiB here) in vrm_calc_charge() after shrink_vma() already unmapped the
    tail, and nothing ever uncharges it (docs/kernel-observations.md §10). The model
    keeps exactly 8 KiB per iteration. Committed_AS is system-wide and other processes
    move it too, so the kernel's per-iteration drift is the median of five batches of
    200 iterations (each batch takes a few milliseconds), and must be within 1 KiB of
    the model's: that tells 8 KiB apart from 0, 4 or 12 KiB (other plausible
    accountings) while a disturbed batch or two, or another process allocating up to
    200 KiB during the median batch, do not matter. Running it leaks 8 MB of commit
    charge on this machine (harmless with overcommit 0)."""
    k, p = model()
    before = k.committed
    for _ in range(10):
        start = p.mmap(W, 4 * PAGE, RW | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        p.mremap(start + 0x2000, 3 * PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, W + 0x100000)
        p.munmap(W, 0x200000)
        p.mm.validate()
    ours_kb = (k.committed - before) * PAGE / 1024 / 10
    assert ours_kb == 8.0
    if not os.path.exists("/proc/meminfo"):
        pytest.skip("no /proc/meminfo")
    exe = build(tmp_path, "drift", DRIFT_C)
    deltas = [int(line) for line in run(exe, str(BATCHES), str(ITERATIONS))]
    kernel_kb = statistics.median(deltas) / ITERATIONS
    assert abs(kernel_kb - ours_kb) <= 1.0, f"kernel {deltas} kB per {ITERATIONS} iterations"
