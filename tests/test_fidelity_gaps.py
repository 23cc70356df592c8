"""Fidelity gaps found by the wider differential runs (issue #9, section 4, the mm
part), where the scenario oracle cannot show the kernel's side: the exact address of a
MAP_32BIT mapping, smaps Rss, and the system-wide commit charge. The shrunk scenarios
of the other gaps are regressions in tests/divergences/.

The host side of each comparison is a small C program of our own, built with the
system C compiler; the tests skip, with the reason, where it cannot run (not Linux
x86_64, no C compiler, no ext4 directory or tmpfs at /dev/shm).
"""

from __future__ import annotations

import array
import errno
import fcntl
import mmap
import os
import platform
import shutil
import statistics
import subprocess
import sys
import termios

import pytest
import test_execve

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

BATCHES, ITERATIONS = 9, 200


def test_mremap_shrink_move_leaks_commit_like_the_kernel(tmp_path):
    """A shrinking MREMAP_FIXED move of an accountable VMA charges vrm->delta (old_len -
    new_len: 8 KiB here) in vrm_calc_charge() after shrink_vma() already unmapped the
    tail, and nothing ever uncharges it (docs/kernel-observations.md §10). The model
    keeps exactly 8 KiB per iteration. Committed_AS is system-wide and other processes
    move it too, so the kernel's per-iteration drift is the median of nine batches of
    200 iterations (each batch takes a few milliseconds), and must be within 1 KiB of
    the model's: that tells 8 KiB apart from 0, 4 or 12 KiB (other plausible
    accountings) while up to four disturbed batches, or another process allocating up to
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


# --- open files: the ioctl-only access mode, O_TRUNC, devices, RLIMIT_FSIZE -----------
#
# The host side runs the same calls through Python's os module (as root, as the model's
# processes are); a call's outcome is its result or its errno's name.

def outcome(call):
    try:
        result = call()
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return None if result is None else result


def host_ioctl_int(fd: int, cmd: int):
    """ioctl(fd, cmd, &int) on the host: the int it put, or the errno's name."""
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, cmd, buf)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return buf[0]


def model_ioctl_int(p, fd: int, cmd: int):
    """The same in the model, through an int in the process's memory at W."""
    if not p.mm.tree.find(W):
        p.mmap(W, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.write(W, bytes(4))
    try:
        p.ioctl(fd, cmd, W)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return int.from_bytes(p.read(W, 4), "little", signed=True)


def ioctl_only_calls(opener, pread, pwrite, ftruncate, mmap_private):
    fd = opener(3)
    return [outcome(lambda: pread(fd, 1, 0)), outcome(lambda: pwrite(fd, b"x", 0)),
            outcome(lambda: ftruncate(fd, 0)), outcome(lambda: mmap_private(fd))]


def test_open_access_mode_3_is_ioctl_only(tmp_path):
    """fs/open.c build_open_flags(): access mode 3 asks for MAY_READ|MAY_WRITE but
    OPEN_FMODE() gives neither FMODE_READ nor FMODE_WRITE: the open succeeds, pread and
    pwrite are EBADF, ftruncate EINVAL, mmap EACCES, ioctl works (FIONREAD gives the
    size of a regular file); a directory is EISDIR, and O_TRUNC truncates."""
    path = str(tmp_path / "f")
    with open(path, "wb") as f:
        f.write(b"hello")
    host = ioctl_only_calls(lambda acc: os.open(path, acc), os.pread, os.pwrite, os.ftruncate,
                            lambda fd: mmap.mmap(fd, 5, mmap.MAP_PRIVATE, mmap.PROT_READ))
    host_fd = os.open(path, 3)
    host += [host_ioctl_int(host_fd, termios.FIONREAD), outcome(lambda: os.open(str(tmp_path), 3))]
    os.close(os.open(path, 3 | os.O_TRUNC))
    host.append(os.stat(path).st_size)

    k, p = model()
    k.fs.create("/tmp/f", b"hello")
    ours = ioctl_only_calls(lambda acc: p.open("/tmp/f", acc), p.pread, p.pwrite, p.ftruncate,
                            lambda fd: p.mmap(0, PAGE, PROT_READ, MAP_PRIVATE, fd, 0))
    ours += [model_ioctl_int(p, p.open("/tmp/f", 3), termios.FIONREAD),
             outcome(lambda: p.open("/tmp", 3))]
    p.open("/tmp/f", 3 | os.O_TRUNC)
    ours.append(k.fs.lookup("/tmp/f").size)
    assert host == ["EBADF", "EBADF", "EINVAL", "EACCES", 5, "EISDIR", 0]
    assert ours == host


def open_close(open_, close, path: str, flags: int) -> None:
    close(open_(path, flags))


def test_append_only_file_opened_for_writing_is_eperm(tmp_path):
    """fs/namei.c may_open(): an append-only inode opened for writing without O_APPEND,
    or with O_TRUNC, is EPERM (the model said EACCES). Host side: chattr +a."""
    path = tmp_path / "log"
    path.write_bytes(b"abc")
    flag_sets = [os.O_WRONLY, os.O_WRONLY | os.O_APPEND, os.O_RDONLY | os.O_TRUNC, os.O_RDWR, os.O_RDONLY]
    if shutil.which("chattr") is None or \
            subprocess.run(["chattr", "+a", str(path)], capture_output=True).returncode:
        pytest.skip("cannot set the append-only attribute here")
    try:
        host = [outcome(lambda flags=flags: open_close(os.open, os.close, str(path), flags))
                for flags in flag_sets]
    finally:
        subprocess.run(["chattr", "-a", str(path)], check=True)
    k, p = model()
    k.fs.create("/tmp/log", b"abc").append_only = True
    ours = [outcome(lambda flags=flags: open_close(p.open, p.close, "/tmp/log", flags))
            for flags in flag_sets]
    assert host == ["EPERM", None, "EPERM", "EPERM", None]
    assert ours == host


DEV_RANDOM_IOCTLS = [0x541B, 0x1234, 0x80045200]       # FIONREAD, unknown, RNDGETENTCNT


def test_dev_random_ioctls():
    """drivers/char/random.c random_ioctl(): FIONREAD reaches the driver (the VFS
    answers it for regular files only) and, like any command it does not know, is
    EINVAL, not ENOTTY; RNDGETENTCNT gives 256 (POOL_READY_BITS) once the pool is
    ready."""
    fd = os.open("/dev/random", os.O_RDONLY)
    try:
        host = [host_ioctl_int(fd, cmd) for cmd in DEV_RANDOM_IOCTLS]
    finally:
        os.close(fd)
    k, p = model()
    fd = p.open("/dev/random", O_RDONLY)
    ours = [model_ioctl_int(p, fd, cmd) for cmd in DEV_RANDOM_IOCTLS]
    assert host == ["EINVAL", "EINVAL", 256]
    assert ours == host


def device_io(opener, pread, pwrite, path: str):
    rw, ro = opener(path, O_RDWR), opener(path, O_RDONLY)
    return [outcome(lambda: pread(rw, 16, 0)), outcome(lambda: pread(rw, 16, 1 << 40)),
            outcome(lambda: pwrite(rw, b"abc", 0)), outcome(lambda: pwrite(rw, b"", 0)),
            outcome(lambda: pwrite(ro, b"abc", 0))]


@pytest.mark.parametrize("path", ["/dev/null", "/dev/zero", "/proc/self/status"])
def test_pread_pwrite_of_special_files(path):
    """drivers/char/mem.c: /dev/null reads the end of the file and discards writes,
    /dev/zero reads zeros and discards writes, whatever the position (the model went
    through a page cache); procfs files are seq_files, whose seq_open() clears
    FMODE_PWRITE, so pwrite is ESPIPE even on a read-only fd (the check comes before
    EBADF). The contents of /proc/self/status are not modelled: only the writes are
    compared there."""
    host = device_io(os.open, os.pread, os.pwrite, path)
    k, p = model()
    ours = device_io(p.open, p.pread, p.pwrite, path)
    if path.startswith("/proc"):
        host, ours = host[2:], ours[2:]
    assert ours == host


def test_pread_pwrite_without_read_write_ops():
    """fs/read_write.c vfs_read()/vfs_write(): a file whose file_operations lack
    ->read/->write has no FMODE_CAN_READ/FMODE_CAN_WRITE: EINVAL, checked before the
    count (a zero-length pwrite too). hugetlbfs has ->read_iter but no ->write_iter
    (compared with the host); the SGX device (arch/x86/kernel/cpu/sgx/driver.c
    sgx_encl_fops) has neither (this machine has no SGX: the model alone)."""
    def calls(fd, pread, pwrite):
        return [outcome(lambda: pread(fd, 1, 0)), outcome(lambda: pwrite(fd, b"a", 0)),
                outcome(lambda: pwrite(fd, b"", 0))]
    try:
        host_fd = os.memfd_create("h", os.MFD_HUGETLB)
    except OSError as exc:
        pytest.skip(f"no hugetlbfs memfd here: {exc}")
    host = calls(host_fd, os.pread, os.pwrite)
    os.close(host_fd)
    k, p = model()
    assert calls(p.memfd_create("h", os.MFD_HUGETLB), p.pread, p.pwrite) == host == [b"", "EINVAL", "EINVAL"]
    assert calls(p.open("/dev/sgx_enclave", O_RDWR), p.pread, p.pwrite) == ["EINVAL"] * 3


FSIZE_CALLS = """
import errno, os, resource, sys
out = []
def tr(call):
    try:
        r = call()
        out.append("ok" if r is None else str(r))
    except OSError as exc:
        out.append(errno.errorcode[exc.errno])
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
app = os.open(sys.argv[1], os.O_RDWR | os.O_APPEND)
null = os.open("/dev/null", os.O_WRONLY)
resource.setrlimit(resource.RLIMIT_FSIZE, (10000, resource.RLIM_INFINITY))
for call in (lambda: os.pwrite(fd, b"abcde", 9998), lambda: os.pwrite(fd, b"a", 10000),
             lambda: os.pwrite(fd, b"", 10000), lambda: os.pwrite(app, b"a", 0),
             lambda: os.ftruncate(fd, 10001), lambda: os.ftruncate(fd, 10000),
             lambda: os.ftruncate(fd, 5), lambda: os.pwrite(null, b"a", 20000)):
    tr(call)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(" ".join(out))
"""


@pytest.mark.parametrize("path", ["/tmp/fsize", "/dev/shm/fsize"])
def test_rlimit_fsize(tmp_path, path):
    """mm/filemap.c generic_write_check_limits() and fs/attr.c inode_newsize_ok(): a
    write starting at or past RLIMIT_FSIZE is EFBIG, one crossing it is short, an
    O_APPEND write is checked at EOF; ftruncate may not grow the file past it (but may
    shrink it); devices are not limited. Linux also sends SIGXFSZ: the host side runs
    in a Python child, which ignores SIGXFSZ as the model does not send it
    (docs/deviations.md)."""
    host_path = str(tmp_path / "fsize") if path.startswith("/tmp") else f"{path}-{os.getpid()}"
    if not os.path.isdir(os.path.dirname(host_path)):
        pytest.skip(f"no {os.path.dirname(host_path)} here")
    try:
        host = subprocess.run([sys.executable, "-c", FSIZE_CALLS, host_path], capture_output=True,
                              text=True, check=True).stdout.split()
    finally:
        if os.path.exists(host_path):
            os.unlink(host_path)
    k, p = model()
    fd = p.open(path, O_RDWR | O_CREAT | os.O_TRUNC, 0o600)
    app, null = p.open(path, O_RDWR | os.O_APPEND), p.open("/dev/null", os.O_WRONLY)
    p.setrlimit(vmsim.RLIMIT_FSIZE, 10000)

    def ftruncate(fd: int, length: int) -> None:
        p.ftruncate(fd, length)
    ours = [outcome(call) for call in (
        lambda: p.pwrite(fd, b"abcde", 9998), lambda: p.pwrite(fd, b"a", 10000),
        lambda: p.pwrite(fd, b"", 10000), lambda: p.pwrite(app, b"a", 0),
        lambda: ftruncate(fd, 10001), lambda: ftruncate(fd, 10000),
        lambda: ftruncate(fd, 5), lambda: p.pwrite(null, b"a", 20000))]
    ours = ["ok" if r is None else str(r) for r in ours]
    assert host == ["2", "EFBIG", "0", "EFBIG", "EFBIG", "ok", "ok", "1"]
    assert ours == host


# --- "#!" scripts (fs/binfmt_script.c) against the real execve ---------------------------
#
# The tracer of test_execve.py stops the real process at its exec event and prints its
# maps, smaps, auxv and stack; the model's process right after execve must match.

@pytest.fixture(scope="module")
def tracer(tmp_path_factory):
    """tracer(path, argv, envp): test_execve's tracer run on one execve."""
    exe = build(tmp_path_factory.mktemp("tracer"), "tracer", test_execve.TRACER_C)

    def run(path: str, argv: list[str], envp: list[str]) -> test_execve.RealExec:
        words = ["0", path, str(len(argv)), *argv, str(len(envp)), *envp, "0"]
        data = b"".join(os.fsencode(w) + b"\0" for w in words)
        r = subprocess.run([exe], input=data, capture_output=True, check=True)
        return test_execve.RealExec.parse(r.stdout.decode())
    return run


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    """Scripts whose interpreter is /bin/echo: with an argument (blanks inside kept,
    trailing blanks trimmed), tab-separated, a first line with no newline, a chain of
    scripts five deep (runs) and six deep (ELOOP), an interpreter path too long for
    the 256 bytes execve reads (ENOEXEC), an argument cut there (fine), a CR before
    the newline (part of the path: ENOENT), no interpreter, a missing one, one that is
    not executable, and a script that names itself."""
    d = tmp_path_factory.mktemp("scripts")
    texts = {"arg": "#!/bin/echo  arg  one \nignored\n", "tab": "#!\t/bin/echo\t-n\tx \t\n",
             "no-newline": "#!/bin/echo", "long-path": "#!" + "/" * 300 + "bin/echo\n",
             "long-arg": "#!/bin/echo " + "y" * 300 + "\n", "crlf": "#!/bin/echo\r\n",
             "blank": "#!  \n", "missing": f"#!{d}/none\n", "not-executable": "#!/etc/passwd\n",
             "self": f"#!{d}/s-self\n"}
    prev = "/bin/echo"
    for depth in range(1, 7):
        texts[f"depth-{depth}"] = f"#!{prev}\n"
        prev = f"{d}/s-depth-{depth}"
    for name, text in texts.items():
        path = d / f"s-{name}"
        path.write_text(text)
        path.chmod(0o755)
    return {name: str(d / f"s-{name}") for name in texts}


def script_argv(scripts, name: str, argv: list[str]) -> list[str]:
    """The argv /bin/echo gets from execve(script, argv): what load_script() builds."""
    d = os.path.dirname(scripts[name])
    if name.startswith("depth-"):
        chain = [f"{d}/s-depth-{i}" for i in range(1, int(name[6:]) + 1)]
        return ["/bin/echo", *chain, *argv[1:]]
    extra = {"arg": ["arg  one"], "tab": ["-n\tx"], "long-arg": ["y" * 243]}.get(name, [])
    return ["/bin/echo", *extra, scripts[name], *argv[1:]]


@pytest.mark.parametrize("name", ["arg", "tab", "no-newline", "long-arg", "depth-1", "depth-5"])
def test_script_runs_its_interpreter_as_the_kernel_does(kw, tracer, scripts, name):
    """load_script(): argv[0] is replaced by the interpreter's path, its argument (one
    string) and the script's path; AT_EXECFN stays the script's path; the address
    space is the interpreter's. A chain of five scripts runs (exec_binprm())."""
    argv, envp = ["X", "a"], ["E=1"]
    real = tracer(scripts[name], argv, envp)
    k, p = test_execve.model_exec(kw, scripts[name], argv, envp)
    test_execve.assert_same_exec(real, k, p, script_argv(scripts, name, argv), envp)


SCRIPT_ERRNOS = {"depth-6": errno.ELOOP, "self": errno.ELOOP, "long-path": errno.ENOEXEC,
                 "blank": errno.ENOEXEC, "crlf": errno.ENOENT, "missing": errno.ENOENT,
                 "not-executable": errno.EACCES}


@pytest.mark.parametrize("name", sorted(SCRIPT_ERRNOS))
def test_script_errno_is_the_kernels(kw, tracer, scripts, name):
    """The refusals of load_script() and exec_binprm(), before the point of no return:
    the process is left as it was."""
    real = tracer(scripts[name], ["X"], [])
    assert real.errno == SCRIPT_ERRNOS[name]
    k = vmsim.Kernel(**kw)
    p = k.spawn(stack=True)
    maps, committed = p.maps(), k.committed
    with pytest.raises(OSError) as err:
        p.execve(scripts[name], ["X"], [])
    assert err.value.errno == real.errno
    test_execve.assert_untouched_by_failed_exec(k, p, maps, committed)


RUNNING_PROGRAM_OPENS = [O_RDWR, os.O_WRONLY, O_RDONLY | os.O_TRUNC, 3, 3 | os.O_TRUNC, O_RDONLY]


def test_running_program_cannot_be_written(tmp_path):
    """exe_file_deny_write_access(): while a program runs (it is some mm's exe_file),
    opening its file for writing (do_dentry_open()) or with O_TRUNC (handle_truncate())
    is ETXTBSY; the ioctl-only mode 3 and O_RDONLY open. Once the last process running
    it is gone (a fork keeps it), the file opens for writing again. Host side: a copy
    of /bin/sleep, running."""
    prog = tmp_path / "prog"
    shutil.copy("/bin/sleep", prog)
    running = subprocess.Popen([str(prog), "30"])
    try:
        host = [outcome(lambda flags=flags: open_close(os.open, os.close, str(prog), flags))
                for flags in RUNNING_PROGRAM_OPENS]
    finally:
        running.kill()
        running.wait()
    k, p = model()
    k.fs.create("/tmp/prog", prog.read_bytes(), 0o755)
    runner = k.spawn(stack=True)
    runner.execve("/tmp/prog", ["prog", "30"])
    ours = [outcome(lambda flags=flags: open_close(p.open, p.close, "/tmp/prog", flags))
            for flags in RUNNING_PROGRAM_OPENS]
    assert host == ["ETXTBSY"] * 3 + [None, "ETXTBSY", None]
    assert ours == host
    child = runner.fork()
    runner.exit()
    assert outcome(lambda: open_close(p.open, p.close, "/tmp/prog", O_RDWR)) == "ETXTBSY"
    child.exit()
    assert outcome(lambda: open_close(p.open, p.close, "/tmp/prog", O_RDWR)) is None
