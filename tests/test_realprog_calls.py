"""The mm calls real programs make that the model learnt for replay fidelity (issue #10):
memfd_create and file sealing, msync, mlockall/munlockall, System V shared memory,
process_madvise with pidfd_open, and unlinkat/rename of mapped files.

Every test runs the same calls twice: in a small C program of its own, built with the
system C compiler at test time and run on this machine's kernel, and on the model. Each
side reports the same things in the same words -- "R label value" for a call's result
(the number, or the errno's name) and the smaps of the VMAs in the window W (maps line,
Rss, KernelPageSize, Locked, VmFlags) -- and the two reports must be equal line for
line, maps lines byte for byte. Where the kernel numbers an object from system-wide
state the model cannot know (a memfd's or a renamed file's inode, a SysV segment's id),
the C program reports the number ("I name number") and the test gives it to the model's
inode before the smaps are compared. The tests skip, with the reason, where the C
program cannot run (not Linux x86_64, no C compiler, no ext4 directory).
"""

from __future__ import annotations

import errno
import os
import platform
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator

import pytest

import vmsim
from vmsim import oracle as O
from vmsim.uapi import (
    AT_FDCWD,
    AT_REMOVEDIR,
    F_ADD_SEALS,
    F_GET_SEALS,
    F_GETFD,
    F_SEAL_EXEC,
    F_SEAL_FUTURE_WRITE,
    F_SEAL_GROW,
    F_SEAL_SEAL,
    F_SEAL_SHRINK,
    F_SEAL_WRITE,
    IPC_CREAT,
    IPC_EXCL,
    IPC_INFO,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    MADV_COLD,
    MADV_COLLAPSE,
    MADV_DONTNEED,
    MADV_GUARD_INSTALL,
    MADV_HUGEPAGE,
    MADV_HWPOISON,
    MADV_PAGEOUT,
    MADV_POPULATE_WRITE,
    MADV_WILLNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MFD_ALLOW_SEALING,
    MFD_CLOEXEC,
    MFD_EXEC,
    MFD_HUGETLB,
    MFD_NOEXEC_SEAL,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    MS_ASYNC,
    MS_INVALIDATE,
    MS_SYNC,
    O_CREAT,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    RLIMIT_MEMLOCK,
    SHM_EXEC,
    SHM_HUGETLB,
    SHM_LOCK,
    SHM_NORESERVE,
    SHM_RDONLY,
    SHM_REMAP,
    SHM_RND,
    SHM_UNLOCK,
)

PAGE = 4096
RW = PROT_READ | PROT_WRITE
W = 0x7E0000000000
#: the part of the window the reports show: 1 GiB, far below where ASLR puts the C
#: programs' own mappings (at most 1 TiB below the top)
WINDOW = 1 << 30
#: where the model keeps the buffers (iovec arrays, shmid_ds) the C programs keep on
#: their stack: outside the window
SCRATCH = 0x10000000
#: the capabilities the tests' calls check, by bit (include/uapi/linux/capability.h)
CAPS = {14: "CAP_IPC_LOCK", 15: "CAP_IPC_OWNER", 17: "CAP_SYS_RAWIO", 21: "CAP_SYS_ADMIN",
        23: "CAP_SYS_NICE"}

PRELUDE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#define W ((char *)0x7e0000000000UL)
#define RW (PROT_READ | PROT_WRITE)
#define MFD_NOEXEC_SEAL_ 0x8
#define MFD_EXEC_ 0x10
#define F_SEAL_EXEC_ 0x20
#define MADV_COLLAPSE_ 25
#define MADV_GUARD_INSTALL_ 102
/* a call's result: its value, or the name of its errno */
static void R(const char *label, long r) {
    if (r == -1)
        printf("R %s %s\n", label, strerrorname_np(errno));
    else
        printf("R %s %ld\n", label, r);
}
/* a result whose value the model cannot share (an fd, an id, a kernel-chosen address) */
static void RID(const char *label, long r) {
    if (r == -1)
        printf("R %s %s\n", label, strerrorname_np(errno));
    else
        printf("R %s ok\n", label);
}
/* the inode number of an open file */
static void I(const char *name, int fd) {
    struct stat st;
    fstat(fd, &st);
    printf("I %s %lu\n", name, (unsigned long)st.st_ino);
}
/* /proc/self/smaps between "S tag" and "E" */
static char smaps_buf[1 << 20];
static void S(const char *tag) {
    int fd = open("/proc/self/smaps", O_RDONLY);
    ssize_t n, t = 0;
    while ((n = read(fd, smaps_buf + t, sizeof smaps_buf - 1 - t)) > 0)
        t += n;
    smaps_buf[t] = 0;
    close(fd);
    printf("S %s\n%sE\n", tag, smaps_buf);
}
static long map(char *addr, size_t len, int prot, int flags, int fd) {
    return (long)mmap(addr, len, prot, flags | MAP_FIXED, fd, 0);
}
static long anon(char *addr, size_t len, int prot) {
    return map(addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1);
}
static long mfd(const char *name, unsigned flags) {
    return syscall(SYS_memfd_create, name, flags);
}
"""

Report = list[tuple[str, ...]]


# --------------------------------------------------------------------------- the two sides

def build(tmp_path, source: str) -> str:
    """Compile PRELUDE + source with the system C compiler; skip where that cannot be
    done."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip(f"needs Linux x86_64, not {platform.system()} {platform.machine()}")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src, exe = tmp_path / "prog.c", tmp_path / "prog"
    src.write_text(PRELUDE + source)
    r = subprocess.run([cc, "-O1", "-o", str(exe), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return str(exe)


def kernel_side(tmp_path, source: str, *args: str) -> tuple[Report, dict[str, int]]:
    """Build and run the C program: its report and the inode numbers it gave."""
    r = subprocess.run([build(tmp_path, source), *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    report: Report = []
    inodes: dict[str, int] = {}
    lines = iter(r.stdout.splitlines())
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "R":
            label, _, value = rest.rpartition(" ")
            report.append(("R", label, value))
        elif kind == "I":
            name, number = rest.split()
            inodes[name] = int(number)
        elif kind == "S":
            report.append(("S", rest, *window(_until_end(lines))))
        else:
            raise AssertionError(f"unexpected output {line!r}")
    return report, inodes


def _until_end(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if line == "E":
            return
        yield line


HEADER = re.compile(r"^([0-9a-f]+)-[0-9a-f]+ ")
FIELDS = ("Rss:", "KernelPageSize:", "Locked:", "VmFlags:")


def window(smaps: Iterator[str]) -> list[str]:
    """The lines of the VMAs in [W, W + WINDOW): maps line, Rss, KernelPageSize, Locked,
    VmFlags."""
    out: list[str] = []
    inside = False
    for line in smaps:
        m = HEADER.match(line)
        if m:
            inside = W <= int(m.group(1), 16) < W + WINDOW
            if inside:
                out.append(line)
        elif inside and line.startswith(FIELDS):
            out.append(line.rstrip())
    return out


def host_caps() -> frozenset[str]:
    """The capabilities of this test process (and of the C programs it runs) that the
    calls under test check."""
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return frozenset(name for bit, name in CAPS.items() if eff >> bit & 1)


class Model:
    """The model's side: a process of a Kernel configured like this host, and its
    report in the C programs' words."""

    def __init__(self, **config: object) -> None:
        kw = {**O.kernel_kwargs(), "capabilities": host_caps(), "uid": os.geteuid(), **config}
        self.k = vmsim.Kernel(**kw)             # type: ignore[arg-type]  # kernel_kwargs()
        self.p = self.k.spawn(stack=True)
        self.report: Report = []

    def r(self, label: str, call: Callable[[], object], hide: bool = False) -> object:
        """R (hide=False) or RID (hide=True) of one call; returns its value or None."""
        try:
            value = call()
        except OSError as exc:
            assert exc.errno is not None
            self.report.append(("R", label, errno.errorcode[exc.errno]))
            return None
        self.report.append(("R", label, "ok" if hide else str(value)))
        return value

    def s(self, tag: str, p: vmsim.Process | None = None) -> None:
        self.report.append(("S", tag, *window(iter((p or self.p).smaps().splitlines()))))

    def mkdirs(self, path: os.PathLike | str) -> str:
        """The directory `path` of this machine, made in the model's namespace (on its
        ext4 "/") with its parents, so that a file below it has the same name in both
        maps."""
        parts = str(path).strip("/").split("/")
        for i in range(1, len(parts) + 1):
            try:
                self.k.fs.mkdir("/" + "/".join(parts[:i]))
            except FileExistsError:
                pass
        return str(path)

    def scratch(self) -> int:
        """A page of the model's memory for the buffers a C program has on its stack."""
        return self.p.mmap(SCRATCH, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)


def same(model: Model, kernel: Report) -> None:
    """The reports agree; on a difference, show the first."""
    for i, (m, k) in enumerate(zip(model.report, kernel, strict=False)):
        assert m == k, f"entry {i}: model {m} != kernel {k}"
    assert len(model.report) == len(kernel)
    model.p.mm.validate()


# --------------------------------------------------------------------------- memfd_create

MEMFD_CREATE = r"""
int main(void) {
    int a = mfd("a", 0);
    RID("plain", a);
    R("unknown flag", mfd("x", 0x100));
    R("exec and noexec", mfd("x", MFD_EXEC_ | MFD_NOEXEC_SEAL_));
    R("huge size without hugetlb", mfd("x", 21 << 26));
    R("hugetlb unknown bit", mfd("x", MFD_HUGETLB | (1 << 25)));
    char name[256];
    memset(name, 'n', 249);
    name[249] = 0;
    RID("249 bytes", mfd(name, 0));
    name[249] = 'n';
    name[250] = 0;
    R("250 bytes", mfd(name, 0));
    R("NULL name", mfd(NULL, 0));
    int s = mfd("s", MFD_ALLOW_SEALING), e = mfd("e", MFD_NOEXEC_SEAL_);
    int c = mfd("c", MFD_CLOEXEC);
    R("seals default", fcntl(a, F_GET_SEALS));
    R("seals allow", fcntl(s, F_GET_SEALS));
    R("seals noexec", fcntl(e, F_GET_SEALS));
    R("cloexec", fcntl(c, F_GETFD));
    R("no cloexec", fcntl(a, F_GETFD));
    ftruncate(a, 8192);
    I("a", a);
    R("shared", map(W, 8192, RW, MAP_SHARED, a));
    R("private", map(W + 0x10000, 4096, PROT_READ, MAP_PRIVATE, a));
    S("memfd");
    int h = mfd("h", MFD_HUGETLB);
    RID("hugetlb", h);
    RID("hugetlb 1g", mfd("g", MFD_HUGETLB | (30 << 26)));
    R("hugetlb 4m", mfd("x", MFD_HUGETLB | (22 << 26)));
    R("hugetlb seals", fcntl(h, F_GET_SEALS));
    R("hugetlb truncate 4k", ftruncate(h, 4096));
    R("hugetlb truncate 2m", ftruncate(h, 2 << 20));
    R("hugetlb shared", map(W + 0x200000, 2 << 20, PROT_READ, MAP_SHARED, h));
    R("hugetlb noreserve", map(W + 0x200000, 2 << 20, PROT_READ, MAP_SHARED | MAP_NORESERVE, h));
    I("h", h);
    S("hugetlb");
    return 0;
}
"""


def test_memfd_create(tmp_path):
    """mm/memfd.c memfd_create(): flag and name checks, the default seals (F_SEAL_SEAL;
    none with MFD_ALLOW_SEALING; F_SEAL_EXEC with MFD_NOEXEC_SEAL), MFD_CLOEXEC, and the
    maps lines "/memfd:NAME (deleted)" on 00:01 (hugetlb: 00:11, reserved only with
    MAP_NORESERVE, sized in whole huge pages)."""
    kernel, inodes = kernel_side(tmp_path, MEMFD_CREATE)
    m = Model()
    p = m.p
    a = m.r("plain", lambda: p.memfd_create("a", 0), hide=True)
    m.r("unknown flag", lambda: p.memfd_create("x", 0x100))
    m.r("exec and noexec", lambda: p.memfd_create("x", MFD_EXEC | MFD_NOEXEC_SEAL))
    m.r("huge size without hugetlb", lambda: p.memfd_create("x", 21 << 26))
    m.r("hugetlb unknown bit", lambda: p.memfd_create("x", MFD_HUGETLB | (1 << 25)))
    m.r("249 bytes", lambda: p.memfd_create("n" * 249, 0), hide=True)
    m.r("250 bytes", lambda: p.memfd_create("n" * 250, 0))
    m.r("NULL name", lambda: p.memfd_create(None, 0))
    s = p.memfd_create("s", MFD_ALLOW_SEALING)
    e = p.memfd_create("e", MFD_NOEXEC_SEAL)
    c = p.memfd_create("c", MFD_CLOEXEC)
    m.r("seals default", lambda: p.fcntl(a, F_GET_SEALS))
    m.r("seals allow", lambda: p.fcntl(s, F_GET_SEALS))
    m.r("seals noexec", lambda: p.fcntl(e, F_GET_SEALS))
    m.r("cloexec", lambda: p.fcntl(c, F_GETFD))
    m.r("no cloexec", lambda: p.fcntl(a, F_GETFD))
    p.ftruncate(a, 8192)
    p.files[a].inode.ino = inodes["a"]
    m.r("shared", lambda: p.mmap(W, 8192, RW, MAP_SHARED | MAP_FIXED, a))
    m.r("private", lambda: p.mmap(W + 0x10000, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, a))
    m.s("memfd")
    h = m.r("hugetlb", lambda: p.memfd_create("h", MFD_HUGETLB), hide=True)
    m.r("hugetlb 1g", lambda: p.memfd_create("g", MFD_HUGETLB | (30 << 26)), hide=True)
    m.r("hugetlb 4m", lambda: p.memfd_create("x", MFD_HUGETLB | (22 << 26)))
    m.r("hugetlb seals", lambda: p.fcntl(h, F_GET_SEALS))
    m.r("hugetlb truncate 4k", lambda: p.ftruncate(h, 4096))
    m.r("hugetlb truncate 2m", lambda: p.ftruncate(h, 2 << 20))
    m.r("hugetlb shared", lambda: p.mmap(W + 0x200000, 2 << 20, PROT_READ,
                                         MAP_SHARED | MAP_FIXED, h))
    m.r("hugetlb noreserve", lambda: p.mmap(W + 0x200000, 2 << 20, PROT_READ,
                                            MAP_SHARED | MAP_FIXED | MAP_NORESERVE, h))
    p.files[h].inode.ino = inodes["h"]
    m.s("hugetlb")
    same(m, kernel)


WRITE_SEALS = r"""
int main(void) {
    int fd = mfd("s", MFD_ALLOW_SEALING);
    ftruncate(fd, 8192);
    I("s", fd);
    R("rw shared", map(W, 8192, RW, MAP_SHARED, fd));
    R("seal write while mapped", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    R("munmap", munmap(W, 8192));
    R("ro shared", map(W, 4096, PROT_READ, MAP_SHARED, fd));
    R("seal write while mapped ro", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    R("munmap ro", munmap(W, 4096));
    R("rw private", map(W + 0x10000, 4096, RW, MAP_PRIVATE, fd));
    R("seal write", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    R("seals", fcntl(fd, F_GET_SEALS));
    R("rw shared after", map(W, 4096, RW, MAP_SHARED, fd));
    R("wo shared after", map(W, 4096, PROT_WRITE, MAP_SHARED_VALIDATE, fd));
    R("ro shared after", map(W + 0x20000, 4096, PROT_READ, MAP_SHARED, fd));
    R("none shared after", map(W + 0x30000, 4096, PROT_NONE, MAP_SHARED, fd));
    R("mprotect rw", mprotect(W + 0x20000, 4096, RW));
    R("mprotect rx", mprotect(W + 0x20000, 4096, PROT_READ | PROT_EXEC));
    R("pwrite", pwrite(fd, "x", 1, 0));
    R("shrink", ftruncate(fd, 4096));
    S("write sealed");
    int f = mfd("f", MFD_ALLOW_SEALING);
    ftruncate(f, 8192);
    I("f", f);
    R("rw shared f", map(W + 0x100000, 8192, RW, MAP_SHARED, f));
    R("seal future write", fcntl(f, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
    W[0x100000] = 'a';
    char b = 0;
    R("pread", pread(f, &b, 1, 0));
    R("written through the old mapping", b);
    R("mprotect ro", mprotect(W + 0x100000, 4096, PROT_READ));
    R("mprotect rw again", mprotect(W + 0x100000, 4096, RW));
    R("rw shared f after", map(W + 0x110000, 4096, RW, MAP_SHARED, f));
    R("ro shared f after", map(W + 0x120000, 4096, PROT_READ, MAP_SHARED, f));
    R("mprotect new ro", mprotect(W + 0x120000, 4096, RW));
    R("pwrite f", pwrite(f, "x", 1, 0));
    R("seal write f", fcntl(f, F_ADD_SEALS, F_SEAL_WRITE));
    R("seals f", fcntl(f, F_GET_SEALS));
    S("future write sealed");
    return 0;
}
"""


def test_memfd_write_seals(tmp_path):
    """F_SEAL_WRITE: EBUSY while a VMA maps the file shared with VM_MAYWRITE (even
    read-only), then no new shared writable mapping (EPERM), shared read-only ones
    without "mw" (mprotect to write: EACCES), no pwrite (EPERM); private mappings stay
    writable. F_SEAL_FUTURE_WRITE: the existing writable mapping keeps writing."""
    kernel, inodes = kernel_side(tmp_path, WRITE_SEALS)
    m = Model()
    p = m.p
    fd = p.memfd_create("s", MFD_ALLOW_SEALING)
    p.ftruncate(fd, 8192)
    p.files[fd].inode.ino = inodes["s"]

    def shared(addr: int, length: int, prot: int, flags: int = MAP_SHARED, f: int = fd):
        return lambda: p.mmap(addr, length, prot, flags | MAP_FIXED, f)

    m.r("rw shared", shared(W, 8192, RW))
    m.r("seal write while mapped", lambda: p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE))
    m.r("munmap", lambda: p.munmap(W, 8192))
    m.r("ro shared", shared(W, PAGE, PROT_READ))
    m.r("seal write while mapped ro", lambda: p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE))
    m.r("munmap ro", lambda: p.munmap(W, PAGE))
    m.r("rw private", shared(W + 0x10000, PAGE, RW, MAP_PRIVATE))
    m.r("seal write", lambda: p.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE))
    m.r("seals", lambda: p.fcntl(fd, F_GET_SEALS))
    m.r("rw shared after", shared(W, PAGE, RW))
    m.r("wo shared after", shared(W, PAGE, PROT_WRITE, vmsim.MAP_SHARED_VALIDATE))
    m.r("ro shared after", shared(W + 0x20000, PAGE, PROT_READ))
    m.r("none shared after", shared(W + 0x30000, PAGE, PROT_NONE))
    m.r("mprotect rw", lambda: p.mprotect(W + 0x20000, PAGE, RW))
    m.r("mprotect rx", lambda: p.mprotect(W + 0x20000, PAGE, PROT_READ | PROT_EXEC))
    m.r("pwrite", lambda: p.pwrite(fd, b"x", 0))
    m.r("shrink", lambda: p.ftruncate(fd, 4096))
    m.s("write sealed")
    f = p.memfd_create("f", MFD_ALLOW_SEALING)
    p.ftruncate(f, 8192)
    p.files[f].inode.ino = inodes["f"]
    m.r("rw shared f", shared(W + 0x100000, 8192, RW, f=f))
    m.r("seal future write", lambda: p.fcntl(f, F_ADD_SEALS, F_SEAL_FUTURE_WRITE))
    p.write(W + 0x100000, b"a")
    m.r("pread", lambda: len(p.pread(f, 1, 0)))
    m.r("written through the old mapping", lambda: p.pread(f, 1, 0)[0])
    m.r("mprotect ro", lambda: p.mprotect(W + 0x100000, PAGE, PROT_READ))
    m.r("mprotect rw again", lambda: p.mprotect(W + 0x100000, PAGE, RW))
    m.r("rw shared f after", shared(W + 0x110000, PAGE, RW, f=f))
    m.r("ro shared f after", shared(W + 0x120000, PAGE, PROT_READ, f=f))
    m.r("mprotect new ro", lambda: p.mprotect(W + 0x120000, PAGE, RW))
    m.r("pwrite f", lambda: p.pwrite(f, b"x", 0))
    m.r("seal write f", lambda: p.fcntl(f, F_ADD_SEALS, F_SEAL_WRITE))
    m.r("seals f", lambda: p.fcntl(f, F_GET_SEALS))
    m.s("future write sealed")
    same(m, kernel)


OTHER_SEALS = r"""
int main(int argc, char **argv) {
    static char big[8192];
    int g = mfd("g", MFD_ALLOW_SEALING);
    ftruncate(g, 8192);
    R("seal shrink", fcntl(g, F_ADD_SEALS, F_SEAL_SHRINK));
    R("shrink", ftruncate(g, 4096));
    R("grow", ftruncate(g, 16384));
    R("same size", ftruncate(g, 16384));
    R("seal grow, high bits", syscall(SYS_fcntl, g, F_ADD_SEALS, (1UL << 32) | F_SEAL_GROW));
    R("grow sealed", ftruncate(g, 32768));
    R("pwrite inside", pwrite(g, "x", 1, 16383));
    R("pwrite across the end", pwrite(g, "xy", 2, 16383));
    R("pwrite at the end", pwrite(g, "x", 1, 16384));
    R("pwrite pages across the end", pwrite(g, big, 8192, 12000));
    R("seal seal", fcntl(g, F_ADD_SEALS, F_SEAL_SEAL));
    R("nothing after seal", fcntl(g, F_ADD_SEALS, 0));
    R("unknown after seal", fcntl(g, F_ADD_SEALS, 0x40));
    R("seals", fcntl(g, F_GET_SEALS));
    int n = mfd("n", 0);
    R("default write", fcntl(n, F_ADD_SEALS, F_SEAL_WRITE));
    R("default unknown", fcntl(n, F_ADD_SEALS, 0x40));
    R("default nothing", fcntl(n, F_ADD_SEALS, 0));
    int x = mfd("x", MFD_ALLOW_SEALING);
    ftruncate(x, 4096);
    map(W, 4096, RW, MAP_SHARED, x);
    R("exec seal while mapped", fcntl(x, F_ADD_SEALS, F_SEAL_EXEC_));
    R("exec seals before", fcntl(x, F_GET_SEALS));
    munmap(W, 4096);
    R("exec seal", fcntl(x, F_ADD_SEALS, F_SEAL_EXEC_));
    R("exec seals", fcntl(x, F_GET_SEALS));
    int ne = mfd("ne", MFD_NOEXEC_SEAL_);
    ftruncate(ne, 4096);
    R("noexec exec seal", fcntl(ne, F_ADD_SEALS, F_SEAL_EXEC_));
    R("noexec seals", fcntl(ne, F_GET_SEALS));
    R("noexec mapped exec", map(W + 0x10000, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, ne));
    int e = open(argv[1], O_RDWR | O_CREAT, 0600);
    R("ext4 get", fcntl(e, F_GET_SEALS));
    R("ext4 add", fcntl(e, F_ADD_SEALS, F_SEAL_WRITE));
    int t = open(argv[2], O_RDWR | O_CREAT, 0600);
    int tr = open(argv[2], O_RDONLY);
    unlink(argv[2]);
    R("tmpfs get", fcntl(t, F_GET_SEALS));
    R("tmpfs add", fcntl(t, F_ADD_SEALS, F_SEAL_WRITE));
    R("read-only fd add", fcntl(tr, F_ADD_SEALS, 0x40));
    R("dev zero get", fcntl(open("/dev/zero", O_RDWR), F_GET_SEALS));
    R("unknown command", fcntl(g, 1234));
    return 0;
}
"""


def test_memfd_resize_seals_and_exec_seal(tmp_path, ext4_dir):
    """F_SEAL_SHRINK and F_SEAL_GROW (ftruncate EPERM; a pwrite crossing the end is cut
    at the page that would pass it), F_SEAL_SEAL, unknown seals (EINVAL before EPERM),
    the high 32 bits of fcntl's arg ignored, F_SEAL_EXEC implying the write seals on a
    memfd with exec bits (EBUSY while mapped writable) but not under MFD_NOEXEC_SEAL;
    seals on other files: EINVAL, or EPERM for a tmpfs file (F_SEAL_SEAL) and for one
    open read-only."""
    shm_path = f"/dev/shm/vmsim-test-{os.getpid()}"
    kernel, _ = kernel_side(tmp_path, OTHER_SEALS, str(ext4_dir / "e"), shm_path)
    m = Model()
    p = m.p
    g = p.memfd_create("g", MFD_ALLOW_SEALING)
    p.ftruncate(g, 8192)
    m.r("seal shrink", lambda: p.fcntl(g, F_ADD_SEALS, F_SEAL_SHRINK))
    m.r("shrink", lambda: p.ftruncate(g, 4096))
    m.r("grow", lambda: p.ftruncate(g, 16384))
    m.r("same size", lambda: p.ftruncate(g, 16384))
    m.r("seal grow, high bits", lambda: p.fcntl(g, F_ADD_SEALS, (1 << 32) | F_SEAL_GROW))
    m.r("grow sealed", lambda: p.ftruncate(g, 32768))
    m.r("pwrite inside", lambda: p.pwrite(g, b"x", 16383))
    m.r("pwrite across the end", lambda: p.pwrite(g, b"xy", 16383))
    m.r("pwrite at the end", lambda: p.pwrite(g, b"x", 16384))
    m.r("pwrite pages across the end", lambda: p.pwrite(g, bytes(8192), 12000))
    m.r("seal seal", lambda: p.fcntl(g, F_ADD_SEALS, F_SEAL_SEAL))
    m.r("nothing after seal", lambda: p.fcntl(g, F_ADD_SEALS, 0))
    m.r("unknown after seal", lambda: p.fcntl(g, F_ADD_SEALS, 0x40))
    m.r("seals", lambda: p.fcntl(g, F_GET_SEALS))
    n = p.memfd_create("n", 0)
    m.r("default write", lambda: p.fcntl(n, F_ADD_SEALS, F_SEAL_WRITE))
    m.r("default unknown", lambda: p.fcntl(n, F_ADD_SEALS, 0x40))
    m.r("default nothing", lambda: p.fcntl(n, F_ADD_SEALS, 0))
    x = p.memfd_create("x", MFD_ALLOW_SEALING)
    p.ftruncate(x, 4096)
    p.mmap(W, PAGE, RW, MAP_SHARED | MAP_FIXED, x)
    m.r("exec seal while mapped", lambda: p.fcntl(x, F_ADD_SEALS, F_SEAL_EXEC))
    m.r("exec seals before", lambda: p.fcntl(x, F_GET_SEALS))
    p.munmap(W, PAGE)
    m.r("exec seal", lambda: p.fcntl(x, F_ADD_SEALS, F_SEAL_EXEC))
    m.r("exec seals", lambda: p.fcntl(x, F_GET_SEALS))
    ne = p.memfd_create("ne", MFD_NOEXEC_SEAL)
    p.ftruncate(ne, 4096)
    m.r("noexec exec seal", lambda: p.fcntl(ne, F_ADD_SEALS, F_SEAL_EXEC))
    m.r("noexec seals", lambda: p.fcntl(ne, F_GET_SEALS))
    m.r("noexec mapped exec", lambda: p.mmap(W + 0x10000, PAGE, PROT_READ | PROT_EXEC,
                                             MAP_SHARED | MAP_FIXED, ne))
    e = p.open("/tmp/e", O_RDWR | O_CREAT, 0o600)
    m.r("ext4 get", lambda: p.fcntl(e, F_GET_SEALS))
    m.r("ext4 add", lambda: p.fcntl(e, F_ADD_SEALS, F_SEAL_WRITE))
    t = p.open("/dev/shm/t", O_RDWR | O_CREAT, 0o600)
    tr = p.open("/dev/shm/t", O_RDONLY)
    p.unlink("/dev/shm/t")
    m.r("tmpfs get", lambda: p.fcntl(t, F_GET_SEALS))
    m.r("tmpfs add", lambda: p.fcntl(t, F_ADD_SEALS, F_SEAL_WRITE))
    m.r("read-only fd add", lambda: p.fcntl(tr, F_ADD_SEALS, 0x40))
    m.r("dev zero get", lambda: p.fcntl(p.open("/dev/zero", O_RDWR), F_GET_SEALS))
    m.r("unknown command", lambda: p.fcntl(g, 1234))
    same(m, kernel)


def fs_type(path) -> str:
    r = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return r.stdout.strip()


@pytest.fixture
def ext4_dir(tmp_path):
    """A directory on ext4 (the model's "/" is ext4), or skip."""
    if fs_type(tmp_path) != "ext2/ext3":
        pytest.skip(f"{tmp_path} is not on ext4 ({fs_type(tmp_path)})")
    d = tmp_path / "files"
    d.mkdir()
    return d


# --------------------------------------------------------------------------- msync

MSYNC = r"""
int main(int argc, char **argv) {
    anon(W, 16 * 4096, PROT_NONE);
    munmap(W + 4 * 4096, 4096);             /* a hole at page 4 */
    R("mlock none", mlock(W + 8 * 4096, 4096));     /* page 8 locked, not populated */
    munmap(W + 12 * 4096, 4 * 4096);        /* nothing from page 12 on */
    R("unknown flag", msync(W, 4096, 8));
    R("negative flags", msync(W, 4096, -1));
    R("async and sync", msync(W, 4096, MS_ASYNC | MS_SYNC));
    R("unaligned", msync(W + 1, 4096, MS_SYNC));
    R("unaligned, unknown flag", msync(W + 1, 4096, 0x100));
    R("wraps", msync(W, -4096L, MS_SYNC));
    R("rounds to 0", msync(W, -1L, 0));
    R("empty", msync(W, 0, MS_SYNC));
    R("empty unmapped", msync((void *)0x1000, 0, 0));
    R("unmapped", msync((void *)0x1000, 1, 0));
    R("no flags", msync(W, 4096, 0));
    R("async", msync(W, 4096, MS_ASYNC));
    R("sync", msync(W, 4096, MS_SYNC));
    R("invalidate", msync(W, 1, MS_INVALIDATE));
    R("sync over the hole", msync(W, 8 * 4096, MS_SYNC));
    R("async over the hole", msync(W, 8 * 4096, MS_ASYNC));
    R("async|invalidate over the hole", msync(W, 8 * 4096, MS_ASYNC | MS_INVALIDATE));
    R("invalidate, hole then locked", msync(W, 9 * 4096, MS_INVALIDATE));
    R("async, hole then locked", msync(W, 9 * 4096, MS_ASYNC));
    R("invalidate locked", msync(W + 8 * 4096, 4096, MS_INVALIDATE | MS_SYNC));
    R("sync locked", msync(W + 8 * 4096, 4096, MS_SYNC));
    R("past the last vma", msync(W + 9 * 4096, 4 * 4096, MS_SYNC));
    R("no vma after", msync(W + 12 * 4096, 4096, MS_SYNC));
    R("in the hole", msync(W + 4 * 4096, 4096, MS_SYNC));
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(fd, 8192);
    map(W + 0x100000, 8192, RW, MAP_SHARED, fd);
    W[0x100000] = 'a';
    R("file sync", msync(W + 0x100000, 8192, MS_SYNC));
    R("file invalidate", msync(W + 0x100000, 8192, MS_INVALIDATE));
    map(W + 0x200000, 8192, RW, MAP_SHARED | MAP_ANONYMOUS, -1);
    R("shmem sync", msync(W + 0x200000, 8192, MS_SYNC));
    S("after");
    return 0;
}
"""


def test_msync(tmp_path, ext4_dir):
    """mm/msync.c: EINVAL for flags and alignment, ENOMEM when the range wraps (a length
    within a page of 2^64 rounds to 0: success), ENOMEM for unmapped parts -- at once
    for a plain MS_ASYNC, at the end otherwise, EBUSY first for MS_INVALIDATE on a
    locked VMA met after a hole. It changes nothing the smaps show."""
    kernel, _ = kernel_side(tmp_path, MSYNC, str(ext4_dir / "f"))
    m = Model()
    p = m.p
    p.mmap(W, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.munmap(W + 4 * PAGE, PAGE)
    m.r("mlock none", lambda: p.mlock(W + 8 * PAGE, PAGE))
    p.munmap(W + 12 * PAGE, 4 * PAGE)
    for label, addr, length, flags in (
            ("unknown flag", W, PAGE, 8), ("negative flags", W, PAGE, -1),
            ("async and sync", W, PAGE, MS_ASYNC | MS_SYNC), ("unaligned", W + 1, PAGE, MS_SYNC),
            ("unaligned, unknown flag", W + 1, PAGE, 0x100), ("wraps", W, -4096, MS_SYNC),
            ("rounds to 0", W, -1, 0), ("empty", W, 0, MS_SYNC),
            ("empty unmapped", 0x1000, 0, 0), ("unmapped", 0x1000, 1, 0),
            ("no flags", W, PAGE, 0), ("async", W, PAGE, MS_ASYNC), ("sync", W, PAGE, MS_SYNC),
            ("invalidate", W, 1, MS_INVALIDATE),
            ("sync over the hole", W, 8 * PAGE, MS_SYNC),
            ("async over the hole", W, 8 * PAGE, MS_ASYNC),
            ("async|invalidate over the hole", W, 8 * PAGE, MS_ASYNC | MS_INVALIDATE),
            ("invalidate, hole then locked", W, 9 * PAGE, MS_INVALIDATE),
            ("async, hole then locked", W, 9 * PAGE, MS_ASYNC),
            ("invalidate locked", W + 8 * PAGE, PAGE, MS_INVALIDATE | MS_SYNC),
            ("sync locked", W + 8 * PAGE, PAGE, MS_SYNC),
            ("past the last vma", W + 9 * PAGE, 4 * PAGE, MS_SYNC),
            ("no vma after", W + 12 * PAGE, PAGE, MS_SYNC),
            ("in the hole", W + 4 * PAGE, PAGE, MS_SYNC)):
        m.r(label, lambda a=addr, n=length, f=flags: p.msync(a, n, f))
    fd = p.open(m.mkdirs(ext4_dir) + "/f", O_RDWR | O_CREAT, 0o600)
    p.ftruncate(fd, 8192)
    p.mmap(W + 0x100000, 8192, RW, MAP_SHARED | MAP_FIXED, fd)
    p.write(W + 0x100000, b"a")
    m.r("file sync", lambda: p.msync(W + 0x100000, 8192, MS_SYNC))
    m.r("file invalidate", lambda: p.msync(W + 0x100000, 8192, MS_INVALIDATE))
    p.mmap(W + 0x200000, 8192, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
    m.r("shmem sync", lambda: p.msync(W + 0x200000, 8192, MS_SYNC))
    p.files[fd].inode.ino = os.stat(ext4_dir / "f").st_ino
    m.s("after")
    same(m, kernel)


# --------------------------------------------------------------------------- mlockall

MLOCKALL = r"""
int main(void) {
    R("no flag", mlockall(0));
    R("unknown flag", mlockall(8));
    R("onfault alone", mlockall(MCL_ONFAULT));
    R("all bits", mlockall(-1));
    anon(W, 2 * 4096, RW);
    anon(W + 2 * 4096, 4096, PROT_NONE);
    anon(W + 3 * 4096, 4096, PROT_READ);
    mlock(W + 3 * 4096, 4096);
    R("future", mlockall(MCL_FUTURE));
    anon(W + 8 * 4096, 2 * 4096, RW);
    S("future, then mmap");
    R("current", mlockall(MCL_CURRENT));
    anon(W + 16 * 4096, 2 * 4096, RW);
    S("current, then mmap");
    R("munlockall", munlockall());
    S("munlockall");
    R("current onfault", mlockall(MCL_CURRENT | MCL_ONFAULT));
    S("current onfault");
    R("future onfault", mlockall(MCL_FUTURE | MCL_ONFAULT));
    anon(W + 24 * 4096, 2 * 4096, RW);
    S("future onfault, then mmap");
    R("current and future", mlockall(MCL_CURRENT | MCL_FUTURE));
    map(W + 32 * 4096, 2 * 4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1);
    brk((void *)sbrk(0));
    S("current and future, then shared mmap");
    R("munlockall again", munlockall());
    S("unlocked");
    return 0;
}
"""


def test_mlockall_vmas(tmp_path):
    """mm/mlock.c mlockall(): flag checks; MCL_FUTURE locks later mappings (populated,
    or not under MCL_ONFAULT), and any later mlockall without it cancels that;
    MCL_CURRENT locks every VMA, PROT_NONE ones too, and populates them; munlockall()
    undoes both. VmFlags "lo"/"lf", Rss and Locked as the kernel shows them."""
    kernel, _ = kernel_side(tmp_path, MLOCKALL)
    m = Model()
    p = m.p
    anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    for label, flags in (("no flag", 0), ("unknown flag", 8), ("onfault alone", MCL_ONFAULT),
                         ("all bits", -1)):
        m.r(label, lambda f=flags: p.mlockall(f))
    p.mmap(W, 2 * PAGE, RW, anon)
    p.mmap(W + 2 * PAGE, PAGE, PROT_NONE, anon)
    p.mmap(W + 3 * PAGE, PAGE, PROT_READ, anon)
    p.mlock(W + 3 * PAGE, PAGE)
    m.r("future", lambda: p.mlockall(MCL_FUTURE))
    p.mmap(W + 8 * PAGE, 2 * PAGE, RW, anon)
    m.s("future, then mmap")
    m.r("current", lambda: p.mlockall(MCL_CURRENT))
    p.mmap(W + 16 * PAGE, 2 * PAGE, RW, anon)
    m.s("current, then mmap")
    m.r("munlockall", p.munlockall)
    m.s("munlockall")
    m.r("current onfault", lambda: p.mlockall(MCL_CURRENT | MCL_ONFAULT))
    m.s("current onfault")
    m.r("future onfault", lambda: p.mlockall(MCL_FUTURE | MCL_ONFAULT))
    p.mmap(W + 24 * PAGE, 2 * PAGE, RW, anon)
    m.s("future onfault, then mmap")
    m.r("current and future", lambda: p.mlockall(MCL_CURRENT | MCL_FUTURE))
    p.mmap(W + 32 * PAGE, 2 * PAGE, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
    m.s("current and future, then shared mmap")
    m.r("munlockall again", p.munlockall)
    m.s("unlocked")
    same(m, kernel)


MLOCKALL_LIMIT = r"""
int main(void) {
    anon(W, 8 * 4096, RW);
    struct __user_cap_header_struct hd = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    syscall(SYS_capget, &hd, d);
    d[0].effective &= ~(1u << CAP_IPC_LOCK);
    if (syscall(SYS_capset, &hd, d))
        return 3;
    struct rlimit rl = {16 * 4096, 16 * 4096};
    setrlimit(RLIMIT_MEMLOCK, &rl);
    R("current over the limit", mlockall(MCL_CURRENT));
    R("future", mlockall(MCL_FUTURE));
    R("mmap over the limit", anon(W + 0x10000, 32 * 4096, RW));
    R("mmap half", anon(W + 0x10000, 8 * 4096, RW));
    R("mmap other half", anon(W + 0x18000, 8 * 4096, RW));
    R("mmap past the limit", anon(W + 0x20000, 8 * 4096, RW));
    S("limited");
    R("munlockall", munlockall());
    rl.rlim_cur = rl.rlim_max = 0;
    setrlimit(RLIMIT_MEMLOCK, &rl);
    R("no limit left", mlockall(MCL_FUTURE));
    R("no limit left, no flag", mlockall(0));
    R("munlockall without limit", munlockall());
    return 0;
}
"""


def test_mlockall_memlock_rlimit(tmp_path):
    """Without CAP_IPC_LOCK: mlockall(MCL_CURRENT) is ENOMEM once the address space
    (total_vm) exceeds RLIMIT_MEMLOCK; MCL_FUTURE is accepted, and then each mapping
    that would pass the limit is EAGAIN; a zero limit is EPERM (after the flag check)."""
    if "CAP_IPC_LOCK" not in host_caps():
        pytest.skip("the C program drops CAP_IPC_LOCK, which it does not have")
    kernel, _ = kernel_side(tmp_path, MLOCKALL_LIMIT)
    m = Model(capabilities=host_caps() - {"CAP_IPC_LOCK"})
    p = m.p
    anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    p.mmap(W, 8 * PAGE, RW, anon)
    p.setrlimit(RLIMIT_MEMLOCK, 16 * PAGE, 16 * PAGE)
    m.r("current over the limit", lambda: p.mlockall(MCL_CURRENT))
    m.r("future", lambda: p.mlockall(MCL_FUTURE))
    for label, at, pages in (("mmap over the limit", 0x10000, 32), ("mmap half", 0x10000, 8),
                             ("mmap other half", 0x18000, 8), ("mmap past the limit", 0x20000, 8)):
        m.r(label, lambda a=at, n=pages: p.mmap(W + a, n * PAGE, RW, anon))
    m.s("limited")
    m.r("munlockall", p.munlockall)
    p.setrlimit(RLIMIT_MEMLOCK, 0, 0)
    m.r("no limit left", lambda: p.mlockall(MCL_FUTURE))
    m.r("no limit left, no flag", lambda: p.mlockall(0))
    m.r("munlockall without limit", p.munlockall)
    same(m, kernel)


MLOCKALL_FORK = r"""
int main(void) {
    R("future", mlockall(MCL_FUTURE));
    anon(W, 4096, PROT_READ);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        anon(W + 0x2000, 4096, PROT_READ);
        S("child");
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    anon(W + 0x4000, 4096, PROT_READ);
    S("parent");
    return 0;
}
"""


def test_mlockall_is_not_inherited(tmp_path):
    """A fork child gets its parent's VMAs without "lo" and does not inherit
    mlockall(MCL_FUTURE) (kernel/fork.c mm_init(): def_flags & VM_INIT_DEF_MASK)."""
    kernel, _ = kernel_side(tmp_path, MLOCKALL_FORK)
    m = Model()
    p = m.p
    anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    m.r("future", lambda: p.mlockall(MCL_FUTURE))
    p.mmap(W, PAGE, PROT_READ, anon)
    child = p.fork()
    child.mmap(W + 0x2000, PAGE, PROT_READ, anon)
    m.s("child", child)
    child.exit()
    p.mmap(W + 0x4000, PAGE, PROT_READ, anon)
    m.s("parent")
    same(m, kernel)
