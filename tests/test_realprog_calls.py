"""The mm calls real programs make that the model learnt for replay fidelity (issue #10):
memfd_create and file sealing, msync, mlockall/munlockall, System V shared memory,
process_madvise with pidfd_open, and unlinkat/rename of mapped files.

Every test runs the same calls twice: in a small C program of its own, built with the
system C compiler at test time and run on this machine's kernel, and on the model. Each
side reports the same things in the same words -- "R label<TAB>value" for a call's result
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
from functools import partial
from typing import Any

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
        printf("R %s\t%s\n", label, strerrorname_np(errno));
    else
        printf("R %s\t%ld\n", label, r);
}
/* a result whose value the model cannot share (an fd, an id, a kernel-chosen address) */
static void RID(const char *label, long r) {
    if (r == -1)
        printf("R %s\t%s\n", label, strerrorname_np(errno));
    else
        printf("R %s\tok\n", label);
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
            label, _, value = rest.partition("\t")
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

    def __init__(self, stack: bool = True, **config: object) -> None:
        kw = {**O.kernel_kwargs(), "capabilities": host_caps(), "uid": os.geteuid(), **config}
        self.k = vmsim.Kernel(**kw)             # type: ignore[arg-type]  # kernel_kwargs()
        self.p = self.k.spawn(stack=stack)
        self.report: Report = []

    def r(self, label: str, call: Callable[[], Any], hide: bool = False) -> Any:
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
    int z = mfd("z", 0);
    ftruncate(z, 8192);
    I("z", z);
    map(W + 0x200000, 8192, RW, MAP_SHARED, z);
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
    kernel, inodes = kernel_side(tmp_path, MSYNC, str(ext4_dir / "f"))
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
        m.r(label, partial(p.msync, addr, length, flags))
    fd = p.open(m.mkdirs(ext4_dir) + "/f", O_RDWR | O_CREAT, 0o600)
    p.ftruncate(fd, 8192)
    p.mmap(W + 0x100000, 8192, RW, MAP_SHARED | MAP_FIXED, fd)
    p.write(W + 0x100000, b"a")
    m.r("file sync", lambda: p.msync(W + 0x100000, 8192, MS_SYNC))
    m.r("file invalidate", lambda: p.msync(W + 0x100000, 8192, MS_INVALIDATE))
    z = p.memfd_create("z", 0)
    p.ftruncate(z, 8192)
    p.files[z].inode.ino = inodes["z"]
    p.mmap(W + 0x200000, 8192, RW, MAP_SHARED | MAP_FIXED, z)
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
    int z = mfd("z", 0);
    ftruncate(z, 2 * 4096);
    I("z", z);
    map(W + 32 * 4096, 2 * 4096, PROT_READ, MAP_SHARED, z);
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
    kernel, inodes = kernel_side(tmp_path, MLOCKALL)
    m = Model()
    p = m.p
    anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    for label, flags in (("no flag", 0), ("unknown flag", 8), ("onfault alone", MCL_ONFAULT),
                         ("all bits", -1)):
        m.r(label, partial(p.mlockall, flags))
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
    z = p.memfd_create("z", 0)
    p.ftruncate(z, 2 * PAGE)
    p.files[z].inode.ino = inodes["z"]
    p.mmap(W + 32 * PAGE, 2 * PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, z)
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
        m.r(label, partial(p.mmap, W + at, pages * PAGE, RW, anon))
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


# --------------------------------------------------------------------------- System V shm

SHM_PRELUDE = r"""
static int created[16], ncreated;
/* a segment of this run: its id is reported, and it is removed at exit */
static int seg(long key, size_t size, int flags) {
    int id = shmget(key, size, flags);
    RID("shmget", id);
    if (id >= 0) {
        created[ncreated++] = id;
        printf("I seg%d %d\n", ncreated, id);
    }
    return id;
}
static void cleanup(void) {
    for (int i = 0; i < ncreated; i++)
        shmctl(created[i], IPC_RMID, NULL);
}
/* what IPC_STAT says, but for the times (and for the last pid in a fork child: the
   model's current is the VMA's process, Linux's the parent at fork) */
static void ST_(const char *label, int id, int lpid) {
    struct shmid_ds d;
    char l[128];
    snprintf(l, sizeof l, "%s stat", label);
    if (shmctl(id, IPC_STAT, &d)) {
        R(l, -1);
        return;
    }
    printf("R %s\tkey=%x mode=%o segsz=%zu nattch=%lu cpid=%d lpid=%d uid=%d gid=%d\n", l,
           d.shm_perm.__key, d.shm_perm.mode, d.shm_segsz, d.shm_nattch,
           d.shm_cpid == getpid(), lpid && d.shm_lpid == getpid(), d.shm_perm.uid,
           d.shm_perm.gid);
}
#define ST(label, id) ST_(label, id, 1)
"""

#: the fields of struct shmid64_ds the tests compare: ipc64_perm's key, uid, gid, cuid,
#: cgid and mode; shm_segsz; the cpid, lpid and nattch
SHMID_DS = struct.Struct("<iIIIII24xQ24xiiQ16x")


class ShmModel(Model):
    """The model's side of the shm tests: segments given the kernel's ids as inode
    numbers, and IPC_STAT read from the model's memory."""

    def __init__(self, inodes: dict[str, int], **config: object) -> None:
        super().__init__(stack=False, **config)
        self.inodes = inodes
        self.segments = 0
        self.buf = self.scratch()

    def seg(self, key: int, size: int, flags: int) -> int | None:
        shmid = self.r("shmget", lambda: self.p.shmget(key, size, flags), hide=True)
        if shmid is not None:
            assert isinstance(shmid, int)
            self.segments += 1
            self.k.shm.obtain_check(shmid).file.inode.ino = self.inodes[f"seg{self.segments}"]
            return shmid
        return None

    def st(self, label: str, shmid: int, p: vmsim.Process | None = None,
           lpid: bool = True) -> None:
        p = p or self.p
        try:
            p.shmctl(shmid, IPC_STAT, self.buf)
        except OSError as exc:
            assert exc.errno is not None
            self.report.append(("R", f"{label} stat", errno.errorcode[exc.errno]))
            return
        key, uid, gid, _, _, mode, segsz, cpid, last, nattch = SHMID_DS.unpack(
            p.read(self.buf, SHMID_DS.size))
        self.report.append(("R", f"{label} stat", f"key={key & 0xFFFFFFFF:x} mode={mode:o} "
                            f"segsz={segsz} "
                            f"nattch={nattch} cpid={int(cpid == p.pid)} "
                            f"lpid={int(lpid and last == p.pid)} uid={uid} gid={gid}"))


SHM_ATTACH = SHM_PRELUDE + r"""
int main(int argc, char **argv) {
    atexit(cleanup);
    long key = strtol(argv[1], NULL, 0);
    int id = seg(key, 5000, IPC_CREAT | 0600);
    ST("new", id);
    R("at", (long)shmat(id, W, 0));
    ST("attached", id);
    R("at rdonly", (long)shmat(id, W + 0x10000, SHM_RDONLY));
    R("at exec", (long)shmat(id, W + 0x20000, SHM_EXEC));
    R("at rdonly exec", (long)shmat(id, W + 0x30000, SHM_RDONLY | SHM_EXEC));
    ST("four", id);
    R("at unaligned", (long)shmat(id, W + 0x40100, 0));
    R("at rounded onto a mapping", (long)shmat(id, W + 0x100, SHM_RND));
    R("at rounded", (long)shmat(id, W + 0x40100, SHM_RND));
    R("at over a mapping", (long)shmat(id, W + 0x41000, 0));
    R("at remap", (long)shmat(id, W + 0x41000, SHM_REMAP));
    R("remap without address", (long)shmat(id, NULL, SHM_REMAP));
    R("rounded to 0, remap", (long)shmat(id, (void *)0x100, SHM_RND | SHM_REMAP));
    R("negative id", (long)shmat(-1, NULL, 0));
    R("stale id", (long)shmat(id + (1 << 30), NULL, 0));
    R("past TASK_SIZE", (long)shmat(id, (void *)(0x7ffffffff000UL - 4096), 0));
    R("unknown flag", (long)shmat(id, W + 0x50000, 0x8000000));
    ST("eight", id);
    S("attaches");
    R("shmctl IPC_64", shmctl(id, IPC_STAT | 0x100, NULL));
    R("shmctl unknown", shmctl(id, 99, NULL));
    R("shmctl negative id", shmctl(-1, IPC_RMID, NULL));
    R("shmctl negative cmd", shmctl(id, -1, NULL));
    R("IPC_STAT to NULL", syscall(SYS_shmctl, id, IPC_STAT, NULL));
    R("IPC_SET from NULL", syscall(SYS_shmctl, id, IPC_SET, NULL));
    R("lock", shmctl(id, SHM_LOCK, NULL));
    ST("locked", id);
    R("unlock", shmctl(id, SHM_UNLOCK, NULL));
    struct shmid_ds d;
    shmctl(id, IPC_STAT, &d);
    d.shm_perm.mode = 0640;
    d.shm_perm.gid = 7;
    R("set", shmctl(id, IPC_SET, &d));
    ST("set", id);
    d.shm_perm.uid = -1;
    R("set invalid uid", shmctl(id, IPC_SET, &d));
    return 0;
}
"""


def test_shmat_maps_lines_and_nattch(tmp_path):
    """ipc/shm.c do_shmat(): "/SYSV%08x (deleted)" on 00:01 with the id as inode from
    the first attach on; SHM_RDONLY maps from a read-only file (no "sh", no "mw"),
    SHM_EXEC adds x; the address rules (SHM_RND, alignment, no overlap without
    SHM_REMAP, SHM_REMAP needs an address); every VMA counts in shm_nattch. shmctl's
    argument checks, SHM_LOCK and IPC_SET."""
    key = 0x7E000000 | (os.getpid() & 0xFFFF)
    kernel, inodes = kernel_side(tmp_path, SHM_ATTACH, hex(key))
    m = ShmModel(inodes)
    p = m.p
    shmid = m.seg(key, 5000, IPC_CREAT | 0o600)
    assert shmid is not None
    m.st("new", shmid)
    m.r("at", lambda: p.shmat(shmid, W, 0))
    m.st("attached", shmid)
    for label, addr, flags in (
            ("at rdonly", W + 0x10000, SHM_RDONLY), ("at exec", W + 0x20000, SHM_EXEC),
            ("at rdonly exec", W + 0x30000, SHM_RDONLY | SHM_EXEC)):
        m.r(label, partial(p.shmat, shmid, addr, flags))
    m.st("four", shmid)
    for label, sid, addr, flags in (
            ("at unaligned", shmid, W + 0x40100, 0),
            ("at rounded onto a mapping", shmid, W + 0x100, SHM_RND),
            ("at rounded", shmid, W + 0x40100, SHM_RND),
            ("at over a mapping", shmid, W + 0x41000, 0),
            ("at remap", shmid, W + 0x41000, SHM_REMAP),
            ("remap without address", shmid, 0, SHM_REMAP),
            ("rounded to 0, remap", shmid, 0x100, SHM_RND | SHM_REMAP),
            ("negative id", -1, 0, 0), ("stale id", shmid + (1 << 30), 0, 0),
            ("past TASK_SIZE", shmid, 0x7FFFFFFFF000 - PAGE, 0),
            ("unknown flag", shmid, W + 0x50000, 0x8000000)):
        m.r(label, partial(p.shmat, sid, addr, flags))
    m.st("eight", shmid)
    m.s("attaches")
    for label, sid, cmd, buf in (
            ("shmctl IPC_64", shmid, IPC_STAT | 0x100, 0), ("shmctl unknown", shmid, 99, 0),
            ("shmctl negative id", -1, IPC_RMID, 0), ("shmctl negative cmd", shmid, -1, 0),
            ("IPC_STAT to NULL", shmid, IPC_STAT, 0), ("IPC_SET from NULL", shmid, IPC_SET, 0),
            ("lock", shmid, SHM_LOCK, 0)):
        m.r(label, partial(p.shmctl, sid, cmd, buf))
    m.st("locked", shmid)
    m.r("unlock", lambda: p.shmctl(shmid, SHM_UNLOCK, 0))
    p.shmctl(shmid, IPC_STAT, m.buf)
    p.write(m.buf + 8, struct.pack("<I", 7))               # shm_perm.gid
    p.write(m.buf + 20, struct.pack("<I", 0o640))          # shm_perm.mode
    m.r("set", lambda: p.shmctl(shmid, IPC_SET, m.buf))
    m.st("set", shmid)
    p.write(m.buf + 4, struct.pack("<I", 0xFFFFFFFF))      # shm_perm.uid
    m.r("set invalid uid", lambda: p.shmctl(shmid, IPC_SET, m.buf))
    same(m, kernel)


SHM_DETACH = SHM_PRELUDE + r"""
int main(void) {
    atexit(cleanup);
    int id = seg(IPC_PRIVATE, 3 * 4096, IPC_CREAT | 0600);
    R("at", (long)shmat(id, W, 0));
    R("at 2", (long)shmat(id, W + 0x10000, 0));
    R("split", mprotect(W + 0x11000, 4096, PROT_READ));
    R("cut the head", munmap(W + 0x10000, 4096));
    ST("pieces", id);
    S("pieces");
    R("dt unaligned", shmdt(W + 1));
    R("dt inside", shmdt(W + 0x11000));
    R("dt the pieces", shmdt(W + 0x10000));
    ST("pieces gone", id);
    R("at 3", (long)shmat(id, W + 0x20000, 0));
    R("mprotect middle", mprotect(W + 0x21000, 4096, PROT_READ));
    R("mprotect back", mprotect(W + 0x21000, 4096, RW));
    S("not merged back");
    R("dt 3", shmdt(W + 0x20000));
    R("dt", shmdt(W));
    R("dt again", shmdt(W));
    R("at 4", (long)shmat(id, W + 0x30000, 0));
    R("moved", (long)mremap(W + 0x30000, 3 * 4096, 3 * 4096, MREMAP_MAYMOVE | MREMAP_FIXED,
                            W + 0x40000));
    R("dt moved", shmdt(W + 0x40000));
    R("at 5", (long)shmat(id, W + 0x50000, 0));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        ST_("child", id, 0);
        R("child dt", shmdt(W + 0x50000));
        ST("child after dt", id);
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    ST("parent", id);
    S("end");
    return 0;
}
"""


def test_shmdt_pieces_and_nattch(tmp_path):
    """ipc/shm.c ksys_shmdt(): from the address up, the first VMA of an attach that
    starts as many pages above it as its pgoff (a piece left by munmap or mprotect
    too), then the further pieces of that attach within the segment's size; EINVAL if
    none. ->close keeps the pieces of an undone mprotect apart; nattch counts VMAs,
    through mremap and fork."""
    kernel, inodes = kernel_side(tmp_path, SHM_DETACH)
    m = ShmModel(inodes)
    p = m.p
    shmid = m.seg(IPC_PRIVATE, 3 * PAGE, IPC_CREAT | 0o600)
    assert shmid is not None
    m.r("at", lambda: p.shmat(shmid, W, 0))
    m.r("at 2", lambda: p.shmat(shmid, W + 0x10000, 0))
    m.r("split", lambda: p.mprotect(W + 0x11000, PAGE, PROT_READ))
    m.r("cut the head", lambda: p.munmap(W + 0x10000, PAGE))
    m.st("pieces", shmid)
    m.s("pieces")
    m.r("dt unaligned", lambda: p.shmdt(W + 1))
    m.r("dt inside", lambda: p.shmdt(W + 0x11000))
    m.r("dt the pieces", lambda: p.shmdt(W + 0x10000))
    m.st("pieces gone", shmid)
    m.r("at 3", lambda: p.shmat(shmid, W + 0x20000, 0))
    m.r("mprotect middle", lambda: p.mprotect(W + 0x21000, PAGE, PROT_READ))
    m.r("mprotect back", lambda: p.mprotect(W + 0x21000, PAGE, RW))
    m.s("not merged back")
    m.r("dt 3", lambda: p.shmdt(W + 0x20000))
    m.r("dt", lambda: p.shmdt(W))
    m.r("dt again", lambda: p.shmdt(W))
    m.r("at 4", lambda: p.shmat(shmid, W + 0x30000, 0))
    m.r("moved", lambda: p.mremap(W + 0x30000, 3 * PAGE, 3 * PAGE,
                                  MREMAP_MAYMOVE | MREMAP_FIXED, W + 0x40000))
    m.r("dt moved", lambda: p.shmdt(W + 0x40000))
    m.r("at 5", lambda: p.shmat(shmid, W + 0x50000, 0))
    child = p.fork()
    m.st("child", shmid, child, lpid=False)
    m.r("child dt", lambda: child.shmdt(W + 0x50000))
    m.st("child after dt", shmid, child)
    child.exit()
    m.st("parent", shmid)
    m.s("end")
    same(m, kernel)


SHM_RMID = SHM_PRELUDE + r"""
int main(int argc, char **argv) {
    atexit(cleanup);
    long key = strtol(argv[1], NULL, 0);
    int id = seg(key, 4096, IPC_CREAT | 0600);
    R("at", (long)shmat(id, W, 0));
    R("rmid", shmctl(id, IPC_RMID, NULL));
    ST("removed", id);
    R("rmid again", shmctl(id, IPC_RMID, NULL));
    R("get by key", shmget(key, 4096, 0));
    R("at removed", (long)shmat(id, W + 0x10000, 0));
    ST("removed, two", id);
    S("removed");
    R("dt", shmdt(W));
    R("dt last", shmdt(W + 0x10000));
    R("stat destroyed", shmctl(id, IPC_STAT, NULL));
    R("at destroyed", (long)shmat(id, W, 0));
    R("rmid destroyed", shmctl(id, IPC_RMID, NULL));
    int e = seg(key, 5000, IPC_CREAT | 0600);
    R("excl", shmget(key, 5000, IPC_CREAT | IPC_EXCL | 0600));
    R("bigger", shmget(key, 8192, 0));
    RID("smaller", shmget(key, 4096, 0));
    RID("any size", shmget(key, 0, 0));
    R("no such key", shmget(key + 1, 4096, 0));
    R("no such key, excl", shmget(key + 1, 4096, IPC_EXCL | 0600));
    R("size 0", shmget(IPC_PRIVATE, 0, IPC_CREAT | 0600));
    R("size 0 for a new key", shmget(key + 1, 0, IPC_CREAT | 0600));
    R("size -1", shmget(IPC_PRIVATE, -1UL, IPC_CREAT | 0600));
    R("size 2^62", shmget(IPC_PRIVATE, 1UL << 62, IPC_CREAT | 0600));
    R("hugetlb", shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600 | SHM_HUGETLB));
    R("hugetlb 4m", shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600 | SHM_HUGETLB | SHM_NORESERVE
                                              | (22 << 26)));
    int h = seg(IPC_PRIVATE, 4096, IPC_CREAT | 0600 | SHM_HUGETLB | SHM_NORESERVE);
    int u = seg(IPC_PRIVATE, 4096, 0600 | 0x10000000);
    ST("private without IPC_CREAT", u);
    R("future", mlockall(MCL_FUTURE));
    R("at locked", (long)shmat(e, W + 0x100000, 0));
    R("at hugetlb", (long)shmat(h, W + 0x200000, 0));
    ST("hugetlb", h);
    R("munlockall", munlockall());
    S("hugetlb");
    struct shminfo info;
    R("ipc info", shmctl(0, IPC_INFO, (struct shmid_ds *)&info) >= 0 ? 0 : -1);
    printf("R shminfo\t%lu %lu %lu %lu %lu\n", info.shmmax, info.shmmin, info.shmmni,
           info.shmseg, info.shmall);
    return 0;
}
"""


def test_shm_rmid_shmget_and_hugetlb(tmp_path):
    """IPC_RMID while attached marks the segment SHM_DEST and hides its key (key 0),
    the maps lines do not change, attaching by id still works, and the last detach
    destroys it (EINVAL after). shmget's checks (EEXIST, EINVAL, ENOENT, ENOMEM for a
    size past the commit limit or a SHM_HUGETLB segment without SHM_NORESERVE).
    SHM_HUGETLB attaches a 2 MiB VMA ("de ht", no "nr", never "lo"); mlockall
    (MCL_FUTURE) locks a normal attach. IPC_INFO's limits."""
    key = 0x7E010000 | (os.getpid() & 0xFFFF)
    kernel, inodes = kernel_side(tmp_path, SHM_RMID, hex(key))
    m = ShmModel(inodes)
    p = m.p
    shmid = m.seg(key, PAGE, IPC_CREAT | 0o600)
    assert shmid is not None
    m.r("at", lambda: p.shmat(shmid, W, 0))
    m.r("rmid", lambda: p.shmctl(shmid, IPC_RMID, 0))
    m.st("removed", shmid)
    m.r("rmid again", lambda: p.shmctl(shmid, IPC_RMID, 0))
    m.r("get by key", lambda: p.shmget(key, PAGE, 0))
    m.r("at removed", lambda: p.shmat(shmid, W + 0x10000, 0))
    m.st("removed, two", shmid)
    m.s("removed")
    m.r("dt", lambda: p.shmdt(W))
    m.r("dt last", lambda: p.shmdt(W + 0x10000))
    m.r("stat destroyed", lambda: p.shmctl(shmid, IPC_STAT, 0))
    m.r("at destroyed", lambda: p.shmat(shmid, W, 0))
    m.r("rmid destroyed", lambda: p.shmctl(shmid, IPC_RMID, 0))
    e = m.seg(key, 5000, IPC_CREAT | 0o600)
    m.r("excl", lambda: p.shmget(key, 5000, IPC_CREAT | IPC_EXCL | 0o600))
    m.r("bigger", lambda: p.shmget(key, 8192, 0))
    m.r("smaller", lambda: p.shmget(key, 4096, 0), hide=True)
    m.r("any size", lambda: p.shmget(key, 0, 0), hide=True)
    for label, k, size, flags in (
            ("no such key", key + 1, PAGE, 0), ("no such key, excl", key + 1, PAGE, IPC_EXCL | 0o600),
            ("size 0", IPC_PRIVATE, 0, IPC_CREAT | 0o600),
            ("size 0 for a new key", key + 1, 0, IPC_CREAT | 0o600),
            ("size -1", IPC_PRIVATE, -1, IPC_CREAT | 0o600),
            ("size 2^62", IPC_PRIVATE, 1 << 62, IPC_CREAT | 0o600),
            ("hugetlb", IPC_PRIVATE, PAGE, IPC_CREAT | 0o600 | SHM_HUGETLB),
            ("hugetlb 4m", IPC_PRIVATE, PAGE,
             IPC_CREAT | 0o600 | SHM_HUGETLB | SHM_NORESERVE | (22 << 26))):
        m.r(label, partial(p.shmget, k, size, flags))
    h = m.seg(IPC_PRIVATE, PAGE, IPC_CREAT | 0o600 | SHM_HUGETLB | SHM_NORESERVE)
    u = m.seg(IPC_PRIVATE, PAGE, 0o600 | 0x10000000)
    assert e is not None and h is not None and u is not None
    m.st("private without IPC_CREAT", u)
    m.r("future", lambda: p.mlockall(MCL_FUTURE))
    m.r("at locked", lambda: p.shmat(e, W + 0x100000, 0))
    m.r("at hugetlb", lambda: p.shmat(h, W + 0x200000, 0))
    m.st("hugetlb", h)
    m.r("munlockall", p.munlockall)
    m.s("hugetlb")
    m.r("ipc info", lambda: p.shmctl(0, IPC_INFO, m.buf) and 0)
    info = struct.unpack("<5Q", p.read(m.buf, 40))
    m.report.append(("R", "shminfo", " ".join(map(str, info))))
    same(m, kernel)


# --------------------------------------------------------------------------- pidfds

PIDFD = r"""
int main(void) {
    int me = syscall(SYS_pidfd_open, getpid(), 0);
    RID("open", me);
    R("cloexec", fcntl(me, F_GETFD));
    R("unknown flag", syscall(SYS_pidfd_open, getpid(), 1));
    RID("nonblock", syscall(SYS_pidfd_open, getpid(), O_NONBLOCK));
    RID("thread", syscall(SYS_pidfd_open, getpid(), O_EXCL));
    R("pid 0", syscall(SYS_pidfd_open, 0, 0));
    R("pid -1", syscall(SYS_pidfd_open, -1, 0));
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    R("reaped", syscall(SYS_pidfd_open, child, 0));
    R("mmap shared", (long)mmap(NULL, 4096, PROT_READ, MAP_SHARED, me, 0));
    R("mmap private", (long)mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, me, 0));
    return 0;
}
"""


def test_pidfd_open(tmp_path):
    """kernel/pid.c pidfd_open(): close-on-exec, flags PIDFD_NONBLOCK and PIDFD_THREAD
    only, a positive pid of a live process (ESRCH once reaped); not mappable (ENODEV)."""
    kernel, _ = kernel_side(tmp_path, PIDFD)
    m = Model()
    p = m.p
    me = m.r("open", lambda: p.pidfd_open(p.pid, 0), hide=True)
    m.r("cloexec", lambda: p.fcntl(me, F_GETFD))
    m.r("unknown flag", lambda: p.pidfd_open(p.pid, 1))
    m.r("nonblock", lambda: p.pidfd_open(p.pid, O_NONBLOCK), hide=True)
    m.r("thread", lambda: p.pidfd_open(p.pid, vmsim.O_EXCL), hide=True)
    m.r("pid 0", lambda: p.pidfd_open(0, 0))
    m.r("pid -1", lambda: p.pidfd_open(-1, 0))
    child = p.fork()
    child.exit()
    m.r("reaped", lambda: p.pidfd_open(child.pid, 0))
    m.r("mmap shared", lambda: p.mmap(0, PAGE, PROT_READ, MAP_SHARED, me))
    m.r("mmap private", lambda: p.mmap(0, PAGE, PROT_READ, MAP_PRIVATE, me))
    same(m, kernel)


# --------------------------------------------------------------------------- process_madvise

PROCESS_MADVISE = r"""
static long pm(int fd, struct iovec *v, unsigned long n, int advice, unsigned flags) {
    return syscall(SYS_process_madvise, fd, v, n, advice, flags);
}
int main(void) {
    int me = syscall(SYS_pidfd_open, getpid(), 0);
    anon(W, 8 * 4096, RW);
    munmap(W + 4 * 4096, 4096);
    struct iovec v[4] = {{W, 4096}, {W + 4096, 100}, {W + 4 * 4096, 4096}, {W + 5 * 4096, 4096}};
    R("one", pm(me, v, 1, MADV_DONTNEED, 0));
    R("two, unaligned length", pm(me, v, 2, MADV_DONTNEED, 0));
    R("stops at the hole", pm(me, v, 4, MADV_DONTNEED, 0));
    R("hole first", pm(me, v + 2, 2, MADV_DONTNEED, 0));
    R("flags", pm(me, v, 2, MADV_DONTNEED, 1));
    R("bad advice", pm(me, v, 2, 999, 0));
    R("nothing, bad advice", pm(me, v, 0, 999, 0));
    R("nothing, flags", pm(me, v, 0, MADV_DONTNEED, 1));
    R("NULL vector", pm(me, NULL, 1, MADV_DONTNEED, 0));
    R("NULL, nothing", pm(me, NULL, 0, MADV_DONTNEED, 0));
    R("past UIO_MAXIOV", pm(me, v, 1025, MADV_DONTNEED, 0));
    R("vlen's high bits", pm(me, v, (1UL << 32) + 1, MADV_DONTNEED, 0));
    R("not a pidfd", pm(0, v, 1, MADV_DONTNEED, 0));
    R("no fd, bad advice", pm(100, v, 1, 999, 0));
    struct iovec u[3] = {{W + 1, 4096}, {W, 0}, {W, 4096}};
    R("unaligned", pm(me, u, 1, MADV_DONTNEED, 0));
    R("empty first", pm(me, u + 1, 2, MADV_DONTNEED, 0));
    struct iovec g[2] = {{W, 4096}, {W, (size_t)-1}};
    R("negative length", pm(me, g, 2, MADV_DONTNEED, 0));
    struct iovec t[2] = {{W, 4096}, {(char *)0x7ffffffff000UL - 4096, 4097}};
    R("past user space", pm(me, t, 2, MADV_DONTNEED, 0));
    struct iovec c[1] = {{(char *)0x7ffffffff000UL, 0}};
    R("empty at the top", pm(me, c, 1, MADV_COLD, 0));
    R("willneed", pm(me, v, 2, MADV_WILLNEED, 0));
    R("cold", pm(me, v, 2, MADV_COLD, 0));
    R("pageout", pm(me, v, 2, MADV_PAGEOUT, 0));
    R("collapse", pm(me, v, 2, MADV_COLLAPSE_, 0));
    R("hugepage", pm(me, v, 2, MADV_HUGEPAGE, 0));
    R("guard", pm(me, v, 2, MADV_GUARD_INSTALL_, 0));
    R("populate over the guard", pm(me, v, 2, MADV_POPULATE_WRITE, 0));
    R("hwpoison", pm(me, v, 2, MADV_HWPOISON, 0));
    S("self");
    int pipefd[2];
    pipe(pipefd);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        char x;
        read(pipefd[0], &x, 1);
        _exit(0);
    }
    int cf = syscall(SYS_pidfd_open, child, 0);
    R("remote dontneed", pm(cf, v, 1, MADV_DONTNEED, 0));
    R("remote cold", pm(cf, v, 1, MADV_COLD, 0));
    R("remote pageout", pm(cf, v, 2, MADV_PAGEOUT, 0));
    R("remote willneed", pm(cf, v, 1, MADV_WILLNEED, 0));
    R("remote collapse", pm(cf, v, 1, MADV_COLLAPSE_, 0));
    R("remote cold to the hole", pm(cf, v, 4, MADV_COLD, 0));
    R("remote hugepage", pm(cf, v, 1, MADV_HUGEPAGE, 0));
    write(pipefd[1], "x", 1);
    waitpid(child, NULL, 0);
    R("remote exited", pm(cf, v, 1, MADV_COLD, 0));
    return 0;
}
"""


def test_process_madvise(tmp_path):
    """mm/madvise.c process_madvise() (6.18): the calling process may give itself any
    advice; another only COLD, PAGEOUT, WILLNEED and COLLAPSE. Checks in order: flags,
    the iovec array (UIO_MAXIOV, vlen's low 32 bits, negative lengths, access_ok), the
    pidfd; each range then as madvise(2) advises it, and the result is the bytes of the
    ranges advised before the first error, or that error."""
    if "CAP_SYS_NICE" not in host_caps():
        pytest.skip("advising another process needs CAP_SYS_NICE")
    kernel, _ = kernel_side(tmp_path, PROCESS_MADVISE)
    m = Model()
    p = m.p
    buf = m.scratch()

    def vec(*ranges: tuple[int, int]) -> int:
        """An iovec array at the scratch page: its address."""
        p.write(buf, b"".join(struct.pack("<QQ", base, length) for base, length in ranges))
        return buf

    me = p.pidfd_open(p.pid, 0)
    p.mmap(W, 8 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.munmap(W + 4 * PAGE, PAGE)
    v = vec((W, PAGE), (W + PAGE, 100), (W + 4 * PAGE, PAGE), (W + 5 * PAGE, PAGE))
    top = 0x7FFFFFFFF000
    for label, fd, iov, n, advice, flags in (
            ("one", me, v, 1, MADV_DONTNEED, 0),
            ("two, unaligned length", me, v, 2, MADV_DONTNEED, 0),
            ("stops at the hole", me, v, 4, MADV_DONTNEED, 0),
            ("hole first", me, v + 32, 2, MADV_DONTNEED, 0),
            ("flags", me, v, 2, MADV_DONTNEED, 1), ("bad advice", me, v, 2, 999, 0),
            ("nothing, bad advice", me, v, 0, 999, 0),
            ("nothing, flags", me, v, 0, MADV_DONTNEED, 1),
            ("NULL vector", me, 0, 1, MADV_DONTNEED, 0),
            ("NULL, nothing", me, 0, 0, MADV_DONTNEED, 0),
            ("past UIO_MAXIOV", me, v, 1025, MADV_DONTNEED, 0),
            ("vlen's high bits", me, v, (1 << 32) + 1, MADV_DONTNEED, 0),
            ("not a pidfd", p.open("/dev/null", O_RDONLY), v, 1, MADV_DONTNEED, 0),
            ("no fd, bad advice", 100, v, 1, 999, 0)):
        m.r(label, partial(p.process_madvise, fd, iov, n, advice, flags))
    m.r("unaligned", lambda: p.process_madvise(me, vec((W + 1, PAGE)), 1, MADV_DONTNEED))
    m.r("empty first", lambda: p.process_madvise(me, vec((W, 0), (W, PAGE)), 2, MADV_DONTNEED))
    m.r("negative length", lambda: p.process_madvise(me, vec((W, PAGE), (W, 2**64 - 1)), 2,
                                                     MADV_DONTNEED))
    m.r("past user space", lambda: p.process_madvise(
        me, vec((W, PAGE), (top - PAGE, PAGE + 1)), 2, MADV_DONTNEED))
    m.r("empty at the top", lambda: p.process_madvise(me, vec((top, 0)), 1, MADV_COLD))
    v = vec((W, PAGE), (W + PAGE, 100), (W + 4 * PAGE, PAGE), (W + 5 * PAGE, PAGE))
    for label, advice in (("willneed", MADV_WILLNEED), ("cold", MADV_COLD),
                          ("pageout", MADV_PAGEOUT), ("collapse", MADV_COLLAPSE),
                          ("hugepage", MADV_HUGEPAGE), ("guard", MADV_GUARD_INSTALL),
                          ("populate over the guard", MADV_POPULATE_WRITE),
                          ("hwpoison", MADV_HWPOISON)):
        m.r(label, partial(p.process_madvise, me, v, 2, advice))
    m.s("self")
    child = p.fork()
    cf = p.pidfd_open(child.pid, 0)
    for label, n, advice in (("remote dontneed", 1, MADV_DONTNEED), ("remote cold", 1, MADV_COLD),
                             ("remote pageout", 2, MADV_PAGEOUT),
                             ("remote willneed", 1, MADV_WILLNEED),
                             ("remote collapse", 1, MADV_COLLAPSE),
                             ("remote cold to the hole", 4, MADV_COLD),
                             ("remote hugepage", 1, MADV_HUGEPAGE)):
        m.r(label, partial(p.process_madvise, cf, v, n, advice))
    child.exit()
    m.r("remote exited", lambda: p.process_madvise(cf, v, 1, MADV_COLD))
    same(m, kernel)


# --------------------------------------------------------------------------- unlink, rename

RENAME = r"""
static char path[4096];
static const char *at(const char *dir, const char *name) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}
static char path2[4096];
static const char *at2(const char *dir, const char *name) {
    snprintf(path2, sizeof path2, "%s/%s", dir, name);
    return path2;
}
static int file(const char *p) {
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(fd, 4096);
    return fd;
}
int main(int argc, char **argv) {
    const char *d = argv[1], *shm = argv[2];
    mkdir(at(d, "sub"), 0755);
    int a = file(at(d, "a")), b = file(at(d, "b")), e = file(at(d, "e"));
    I("a", a);
    I("b", b);
    I("e", e);
    map(W, 4096, PROT_READ, MAP_SHARED, a);
    map(W + 0x1000, 4096, PROT_READ, MAP_PRIVATE, b);
    map(W + 0x2000, 4096, PROT_READ, MAP_SHARED, e);
    S("opened");
    R("rename over a mapped file", rename(at(d, "a"), at2(d, "b")));
    S("renamed");
    R("into a directory", rename(at(d, "b"), at2(d, "sub/c")));
    R("onto itself", rename(at(d, "sub/c"), at2(d, "sub/c")));
    R("no source", rename(at(d, "none"), at2(d, "x")));
    R("directory into itself", rename(at(d, "sub"), at2(d, "sub/x")));
    R("file onto its directory", rename(at(d, "sub/c"), at2(d, "sub")));
    R("directory onto a file", rename(at(d, "sub"), at2(d, "e")));
    R("file onto a directory", rename(at(d, "e"), at2(d, "sub")));
    R("no target directory", rename(at(d, "e"), at2(d, "none/e")));
    R("directory", rename(at(d, "sub"), at2(d, "sub2")));
    S("directory renamed");
    R("unlinkat", unlinkat(AT_FDCWD, at(d, "e"), 0));
    R("unlinkat a directory", unlinkat(AT_FDCWD, at(d, "sub2"), 0));
    R("rmdir not empty", unlinkat(AT_FDCWD, at(d, "sub2"), AT_REMOVEDIR));
    R("rmdir a file", unlinkat(AT_FDCWD, at(d, "sub2/c"), AT_REMOVEDIR));
    R("unknown flag", unlinkat(AT_FDCWD, at(d, "sub2/c"), 0x100));
    int dirfd = open(d, O_RDONLY | O_DIRECTORY);
    R("relative to a dirfd", unlinkat(dirfd, "sub2/c", 0));
    R("rmdir", unlinkat(AT_FDCWD, at(d, "sub2"), AT_REMOVEDIR));
    R("unlink a directory", unlink(d));
    R("unlink nothing", unlink(at(d, "none")));
    R("relative to a file", unlinkat(a, "x", 0));
    S("removed");
    int t = file(at(shm, "t"));
    I("t", t);
    map(W + 0x3000, 4096, PROT_READ, MAP_SHARED, t);
    R("across mounts", rename(at(shm, "t"), at2(d, "t")));
    R("within /dev/shm", rename(at(shm, "t"), at2(shm, "t2")));
    S("tmpfs renamed");
    R("unlink /dev/shm", unlink(at(shm, "t2")));
    S("tmpfs removed");
    return 0;
}
"""


def test_unlink_and_rename_in_maps(tmp_path, ext4_dir):
    """A mapped file keeps its mappings when removed ("NAME (deleted)") or renamed (the
    new name, also through a renamed directory); a file a rename replaced shows its old
    name and " (deleted)". rename's and unlinkat's errors in the kernel's order."""
    shm = f"/dev/shm/vmsim-test-{os.getpid()}"
    os.mkdir(shm)
    try:
        kernel, inodes = kernel_side(tmp_path, RENAME, str(ext4_dir), shm)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    m = Model()
    p = m.p
    d = m.mkdirs(ext4_dir)
    m.k.fs.mkdir(shm)
    p.kernel.fs.mkdir(d + "/sub")

    def file(path: str, name: str) -> int:
        fd = p.open(path, O_RDWR | O_CREAT | vmsim.O_TRUNC, 0o600)
        p.ftruncate(fd, PAGE)
        p.files[fd].inode.ino = inodes[name]
        return fd

    a, b, e = file(d + "/a", "a"), file(d + "/b", "b"), file(d + "/e", "e")
    p.mmap(W, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, a)
    p.mmap(W + 0x1000, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, b)
    p.mmap(W + 0x2000, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, e)
    m.s("opened")
    m.r("rename over a mapped file", lambda: p.rename(d + "/a", d + "/b"))
    m.s("renamed")
    for label, old, new in (
            ("into a directory", "b", "sub/c"), ("onto itself", "sub/c", "sub/c"),
            ("no source", "none", "x"), ("directory into itself", "sub", "sub/x"),
            ("file onto its directory", "sub/c", "sub"), ("directory onto a file", "sub", "e"),
            ("file onto a directory", "e", "sub"), ("no target directory", "e", "none/e"),
            ("directory", "sub", "sub2")):
        m.r(label, partial(p.rename, f"{d}/{old}", f"{d}/{new}"))
    m.s("directory renamed")
    for label, path, flags in (
            ("unlinkat", "e", 0), ("unlinkat a directory", "sub2", 0),
            ("rmdir not empty", "sub2", AT_REMOVEDIR), ("rmdir a file", "sub2/c", AT_REMOVEDIR),
            ("unknown flag", "sub2/c", 0x100)):
        m.r(label, partial(p.unlinkat, AT_FDCWD, f"{d}/{path}", flags))
    dirfd = p.open(d, O_RDONLY | vmsim.O_DIRECTORY)
    m.r("relative to a dirfd", lambda: p.unlinkat(dirfd, "sub2/c", 0))
    m.r("rmdir", lambda: p.unlinkat(AT_FDCWD, d + "/sub2", AT_REMOVEDIR))
    m.r("unlink a directory", lambda: p.unlink(d))
    m.r("unlink nothing", lambda: p.unlink(d + "/none"))
    m.r("relative to a file", lambda: p.unlinkat(a, "x", 0))
    m.s("removed")
    t = file(shm + "/t", "t")
    p.mmap(W + 0x3000, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, t)
    m.r("across mounts", lambda: p.rename(shm + "/t", d + "/t"))
    m.r("within /dev/shm", lambda: p.rename(shm + "/t", shm + "/t2"))
    m.s("tmpfs renamed")
    m.r("unlink /dev/shm", lambda: p.unlink(shm + "/t2"))
    m.s("tmpfs removed")
    same(m, kernel)


# --------------------------------------------------------------------------- table, scenarios

SCENARIO = """\
# msync and mlockall in a scenario, on the host kernel and on the model
mmap(W, 16*4096, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)
munmap(W+4*4096, 4096)
mlock(W+8*4096, 4096)
msync(W, 8*4096, MS_SYNC) = -1 ENOMEM
msync(W, 9*4096, MS_INVALIDATE) = -1 EBUSY
msync(W, 9*4096, MS_ASYNC) = -1 ENOMEM
msync(W, -1, 0) = 0
mlockall(MCL_ONFAULT) = -1 EINVAL
mlockall(MCL_FUTURE) = 0
mmap(W+0x20000, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)
mlockall(MCL_CURRENT|MCL_ONFAULT) = 0
mmap(W+0x30000, 8192, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS|MAP_FIXED, -1, 0)
mlockall(MCL_FUTURE|MCL_ONFAULT) = 0
brk(B+0x3000)
fork()
mmap(W+0x40000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)
munlockall() = 0
"""


def test_scenario_with_msync_and_mlockall(oracle, kw):
    """The scenario language has msync, mlockall and munlockall (integer arguments
    only, so the oracle's executor runs them by number): `vmsim diff` agrees."""
    from vmsim.diff import scenario as S
    from vmsim.diff.compare import diff
    d, _, _ = diff(oracle, S.parse(SCENARIO), kw)
    assert d is None, d.describe(oracle.env)


def test_table_and_dispatcher():
    """Each new call has its x86-64 number and is dispatched to the Process method of
    its name; shmat's result is an address."""
    from vmsim.syscalls.dispatch import dispatch, outcome
    from vmsim.syscalls.table import TABLE
    numbers = {"msync": 26, "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "fcntl": 72,
               "rename": 82, "mlockall": 151, "munlockall": 152, "unlinkat": 263,
               "memfd_create": 319, "pidfd_open": 434, "process_madvise": 440}
    assert {name: TABLE[name].nr for name in numbers} == numbers
    assert TABLE["shmat"].addr_result
    p = vmsim.Kernel().spawn()
    fd = dispatch(p, "memfd_create", ["x", MFD_CLOEXEC])
    assert dispatch(p, "fcntl", [fd, F_GET_SEALS]) == F_SEAL_SEAL
    assert outcome(p, "fcntl", [fd, F_ADD_SEALS, F_SEAL_WRITE]) == ("err", "EPERM")
    shmid = dispatch(p, "shmget", [IPC_PRIVATE, PAGE, IPC_CREAT | 0o600])
    assert dispatch(p, "shmat", [shmid, W, 0]) == W
    assert dispatch(p, "msync", [W, PAGE, MS_SYNC]) == 0
    assert dispatch(p, "shmdt", [W]) == 0
    assert dispatch(p, "shmctl", [shmid, IPC_RMID, 0]) == 0
    assert dispatch(p, "mlockall", [MCL_CURRENT]) == 0 and dispatch(p, "munlockall", []) == 0
    pidfd = dispatch(p, "pidfd_open", [p.pid, 0])
    assert dispatch(p, "process_madvise", [pidfd, 0, 0, MADV_COLD, 0]) == 0
    p.kernel.fs.create("/tmp/a")
    assert dispatch(p, "rename", ["/tmp/a", "/tmp/b"]) == 0
    assert dispatch(p, "unlinkat", [AT_FDCWD, "/tmp/b", 0]) == 0
    assert outcome(p, "unlinkat", [AT_FDCWD, "/tmp/b", 0]) == ("err", "ENOENT")
