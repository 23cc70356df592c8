"""The x86-64 syscall entry (vmsim.arch.x86.entry.syscall_64): calls made from a
thread's registers, without a CPU, checked against this machine's kernel.

Each test sets a Thread's registers as a program would before SYSCALL, calls
do_syscall_64(), and compares rax and the bytes the call wrote to the process's memory
with what the host kernel returns for the same call (run here through libc's
syscall(), with the same paths and buffers of the same sizes).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

import pytest

import vmsim
from vmsim import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from vmsim.arch.x86.entry.syscall_64 import do_syscall_64
from vmsim.fs.stdio import HostStream, install_stdio
from vmsim.syscalls.table import ALIASES, BY_NUMBER, SYS_CALL_TABLE, TABLE
from vmsim.task.sched import Block
from vmsim.task.thread import GroupExit, Thread
from vmsim.uapi import PAGE_SIZE, U64

NR = {e.name: e.nr for e in TABLE.values() if e.nr is not None}
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
SCRATCH_PAGES = 16

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def host(nr: int, *args: int | bytes) -> int:
    """The host kernel's answer: the value, or -errno."""
    keep = [ctypes.create_string_buffer(a) if isinstance(a, bytes) else None for a in args]
    cargs = [ctypes.c_long(ctypes.addressof(k) if k is not None else a)
             for k, a in zip(keep, args, strict=True)]
    r = _libc.syscall(ctypes.c_long(nr), *cargs)
    return -ctypes.get_errno() if r == -1 else r


class HostBuf:
    """A host buffer of n bytes for an output argument."""

    def __init__(self, n: int) -> None:
        self.buf = ctypes.create_string_buffer(n)
        self.addr = ctypes.addressof(self.buf)

    @property
    def raw(self) -> bytes:
        return self.buf.raw


class Model:
    """A process of a fresh Kernel, its main thread, and scratch memory for strings
    and output buffers."""

    def __init__(self, argv: list[str] | None = None, **config) -> None:
        self.kernel = vmsim.Kernel(**config)
        self.p = self.kernel.spawn(argv=argv) if argv else self.kernel.spawn(stack=True)
        self.thread = Thread(self.p, self.p.pid)
        self.scratch = self.p.mmap(0, SCRATCH_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS)
        self.next = self.scratch

    def string(self, s: bytes) -> int:
        """A NUL-terminated copy of s in the scratch memory."""
        return self.put(s + b"\0")

    def put(self, data: bytes) -> int:
        addr = self.next
        self.p.write(addr, data)
        self.next += (len(data) + 15) & ~15
        return addr

    def buffer(self, n: int) -> int:
        return self.put(bytes(n))

    def call(self, name: str, *args: int) -> int:
        """The syscall numbered as `name` with the register values args: rax, signed."""
        regs = self.thread.regs
        regs.orig_rax = NR[name] if name in NR else ALIASES[name].nr
        regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = (
            [a & U64 for a in args] + [0] * 6)[:6]
        do_syscall_64(self.thread)
        rax = regs.rax
        return rax - (1 << 64) if rax >= 1 << 63 else rax

    def read(self, addr: int, n: int) -> bytes:
        return self.p.read(addr, n)


@pytest.fixture
def m() -> Model:
    return Model()


def host_file(tmp_path, name: str = "f", data: bytes = b"0123456789" * 100) -> str:
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ------------------------------------------------------------------ the table and the entry

def test_every_number_is_the_kernels_and_unique():
    """SYS_CALL_TABLE: each number runs its own entry (openat, dup3 and exit_group are
    not their trace aliases there), while the trace formats still fold them."""
    assert SYS_CALL_TABLE[257] is TABLE["openat"] and BY_NUMBER[257] is TABLE["open"]
    assert SYS_CALL_TABLE[231] is TABLE["exit_group"] and BY_NUMBER[231] is TABLE["exit"]
    assert SYS_CALL_TABLE[292] is TABLE["dup3"]
    assert all(SYS_CALL_TABLE[e.nr] is e for e in TABLE.values() if e.nr is not None)


def test_unknown_number_is_enosys_and_reported_once(m):
    assert m.call("write", 1, 0, 0) == -errno.EBADF          # no fds yet
    m.thread.regs.orig_rax = 500
    for _ in range(2):
        do_syscall_64(m.thread)
        assert m.thread.regs.rax == -errno.ENOSYS & U64
    assert m.kernel.unknown_syscalls == [500]


def test_exit_group_ends_the_group_with_the_low_byte(m):
    with pytest.raises(GroupExit) as info:
        m.call("exit_group", 0x1203)
    assert info.value.status == 0x03 << 8


def test_write_to_the_hosts_stdout_and_its_errors(m, tmp_path):
    r, w = os.pipe()
    try:
        install_stdio(m.p, HostStream(0), HostStream(w), HostStream(2))
        msg = m.put(b"hello, world\n")
        assert m.call("write", 1, msg, 13) == 13
        assert os.read(r, 100) == b"hello, world\n"
        assert m.call("write", 1, 0, 0) == host(1, w, 0, 0) == 0
        assert m.call("write", 1, 0x10, 5) == host(1, w, 0x10, 5) == -errno.EFAULT
        assert m.call("write", 99, 0, 5) == host(1, 99, 0, 5) == -errno.EBADF
        path = host_file(tmp_path)
        fd = m.call("open", m.string(path.encode()), os.O_RDONLY)
        hfd = os.open(path, os.O_RDONLY)
        assert m.call("write", fd, msg, 1) == host(1, hfd, msg, 1) == -errno.EBADF
        os.close(hfd)
    finally:
        os.close(r)
        os.close(w)


def test_a_buffer_that_faults_part_way_gives_a_short_count(m, tmp_path):
    """read(2) into a buffer whose second page is not mapped: the bytes up to the
    hole, as on the host."""
    path = host_file(tmp_path, data=bytes(range(256)) * 40)
    fd = m.call("open", m.string(path.encode()), os.O_RDONLY)
    end = m.scratch + SCRATCH_PAGES * PAGE_SIZE
    assert m.call("read", fd, end - 10, 100) == 10
    assert m.read(end - 10, 10) == bytes(range(10))
    libc_mmap = _libc.mmap
    libc_mmap.restype = ctypes.c_void_p
    libc_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    area = libc_mmap(None, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    try:
        _libc.munmap(ctypes.c_void_p(area + PAGE_SIZE), ctypes.c_size_t(PAGE_SIZE))
        hfd = os.open(path, os.O_RDONLY)
        assert host(0, hfd, area + PAGE_SIZE - 10, 100) == 10
        assert host(0, hfd, area + PAGE_SIZE, 100) == m.call("read", fd, end, 100) == -errno.EFAULT
        os.close(hfd)
    finally:
        _libc.munmap(ctypes.c_void_p(area), ctypes.c_size_t(PAGE_SIZE))


# ------------------------------------------------------------------ files: read, lseek, pread

def test_read_lseek_pread_of_a_mirrored_host_file(m, tmp_path):
    data = bytes(range(256)) * 20
    path = host_file(tmp_path, data=data)
    fd = m.call("openat", AT_FDCWD, m.string(path.encode()), os.O_RDONLY | os.O_CLOEXEC)
    assert fd == 0
    buf = m.buffer(4096)
    assert m.call("read", fd, buf, 100) == 100 and m.read(buf, 100) == data[:100]
    assert m.call("read", fd, buf, 50) == 50 and m.read(buf, 50) == data[100:150]
    assert m.call("pread64", fd, buf, 10, 1000) == 10 and m.read(buf, 10) == data[1000:1010]
    assert m.call("lseek", fd, 0, 1) == 150                  # pread did not move it
    assert m.call("lseek", fd, -6, 2) == len(data) - 6
    assert m.call("read", fd, buf, 100) == 6 and m.call("read", fd, buf, 100) == 0
    hfd = os.open(path, os.O_RDONLY)
    for args in ((0, 5), (-1, 0), (1 << 62, 0), (1 << 20, 3), (5, 3), (0, 4)):
        os.lseek(hfd, 0, 0)
        m.call("lseek", fd, 0, 0)
        assert m.call("lseek", fd, *args) == host(8, hfd, *args), args
    assert m.call("pread64", fd, buf, 4, -1) == host(17, hfd, buf, 4, -1) == -errno.EINVAL
    os.close(hfd)


def test_readv_and_writev(m, tmp_path):
    fd = m.call("open", m.string(b"%s/v" % bytes(tmp_path)), os.O_RDWR | os.O_CREAT, 0o644)
    a, b = m.put(b"abc"), m.put(b"defgh")
    iov = m.put(struct.pack("<QQQQ", a, 3, b, 5))
    assert m.call("writev", fd, iov, 2) == 8
    assert m.call("lseek", fd, 0, 0) == 0
    x, y = m.buffer(2), m.buffer(10)
    iov2 = m.put(struct.pack("<QQQQ", x, 2, y, 10))
    assert m.call("readv", fd, iov2, 2) == 8
    assert m.read(x, 2) == b"ab" and m.read(y, 6) == b"cdefgh"
    assert m.call("readv", fd, iov2, 1025) == -errno.EINVAL
    assert m.call("readv", fd, iov2, 0) == 0


def test_o_creat_in_the_model_with_the_umask(m, tmp_path):
    """A new file is the model's: the host's directory is only read."""
    path = m.string(b"%s/new" % bytes(tmp_path))
    assert m.call("umask", 0o027) == 0o022
    fd = m.call("open", path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    st = m.buffer(144)
    assert m.call("fstat", fd, st) == 0
    mode = struct.unpack_from("<I", m.read(st, 144), 24)[0]
    assert mode == 0o100640
    assert m.call("open", path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666) == -errno.EEXIST
    assert not (tmp_path / "new").exists()
    dpath = b"%s/d" % bytes(tmp_path)
    assert m.call("open", m.string(dpath), os.O_CREAT | os.O_DIRECTORY, 0o755) == \
        host(2, dpath, os.O_CREAT | os.O_DIRECTORY, 0o755) == -errno.EINVAL


# ------------------------------------------------------------------ stat

def _stat_case(m, tmp_path):
    path = host_file(tmp_path)
    os.chmod(path, 0o640)
    return path, m.string(path.encode())


def test_stat_bytes_of_a_host_file_are_the_hosts(m, tmp_path):
    path, upath = _stat_case(m, tmp_path)
    st = m.buffer(144)
    hst = HostBuf(144)
    fd = m.call("open", upath, os.O_RDONLY)
    assert m.call("newfstatat", AT_FDCWD, upath, st, 0) == 0
    assert host(262, AT_FDCWD, path.encode(), hst.addr, 0) == 0
    assert m.read(st, 144) == hst.raw
    assert m.call("fstat", fd, st) == 0 and m.read(st, 144) == hst.raw
    assert m.call("stat", upath, st) == 0 and m.read(st, 144) == hst.raw
    assert m.call("newfstatat", fd, m.string(b""), st, AT_EMPTY_PATH) == 0
    assert m.read(st, 144) == hst.raw
    assert m.call("newfstatat", fd, 0, st, AT_EMPTY_PATH) == 0 and m.read(st, 144) == hst.raw
    fields = os.stat(path)
    dev, ino, nlink, mode, uid, gid = struct.unpack_from("<QQQIII", hst.raw)
    assert (dev, ino, nlink, mode, uid, gid) == (fields.st_dev, fields.st_ino, fields.st_nlink,
                                                 fields.st_mode, fields.st_uid, fields.st_gid)


def test_statx_of_a_host_file(m, tmp_path):
    path, upath = _stat_case(m, tmp_path)
    buf = m.buffer(256)
    assert m.call("statx", AT_FDCWD, upath, 0, 0x7FF, buf) == 0
    raw = m.read(buf, 256)
    mask, blksize, _attrs, nlink, uid, gid, mode = struct.unpack_from("<IIQIIIH", raw)
    ino, size, blocks = struct.unpack_from("<QQQ", raw, 32)
    st = os.stat(path)
    assert mask & 0x7FF == 0x7FF
    assert (blksize, nlink, uid, gid, mode, ino, size, blocks) == (
        st.st_blksize, st.st_nlink, st.st_uid, st.st_gid, st.st_mode, st.st_ino, st.st_size,
        st.st_blocks)
    mtime = struct.unpack_from("<qI", raw, 0x70)
    assert mtime == (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9)
    dev = struct.unpack_from("<II", raw, 0x88)
    assert dev == (os.major(st.st_dev), os.minor(st.st_dev))
    assert m.call("statx", AT_FDCWD, upath, 0x6000, 0x7FF, buf) == \
        host(332, AT_FDCWD, path.encode(), 0x6000, 0x7FF, HostBuf(256).addr) == -errno.EINVAL


def test_lstat_and_readlink_of_a_host_symlink(m, tmp_path):
    target = host_file(tmp_path, "target")
    link = str(tmp_path / "link")
    os.symlink("target", link)
    st, hst = m.buffer(144), HostBuf(144)
    assert m.call("lstat", m.string(link.encode()), st) == host(6, link.encode(), hst.addr) == 0
    assert m.read(st, 144) == hst.raw
    assert m.call("stat", m.string(link.encode()), st) == host(4, link.encode(), hst.addr) == 0
    assert m.read(st, 144) == hst.raw and os.stat(target).st_ino == struct.unpack_from("<Q", hst.raw, 8)[0]
    buf = m.buffer(64)
    assert m.call("readlink", m.string(link.encode()), buf, 64) == 6
    assert m.read(buf, 6) == b"target"
    assert m.call("readlink", m.string(link.encode()), buf, 3) == 3
    assert m.read(buf, 6) == b"target"


# ------------------------------------------------------------------ errnos against the host

@pytest.mark.parametrize("name", [
    b"/nonexistent/file", b"/etc/passwd/x", b"/etc/passwd/x/y", b"/etc/passwd/",
    b"/" + b"a" * 300, b"/" + b"a/" * 2100, b"/etc", b"/etc/passwd",
])
def test_stat_and_access_errnos_are_the_hosts(m, name):
    st = m.buffer(144)
    upath = m.string(name)
    hst = HostBuf(144)
    assert m.call("stat", upath, st) == host(4, name, hst.addr)
    assert m.call("access", upath, 0) == host(21, name, 0)
    assert m.call("newfstatat", AT_FDCWD, upath, st, 0) == host(262, AT_FDCWD, name, hst.addr, 0)


def test_bad_pointers_and_empty_names(m):
    st = m.buffer(144)
    assert m.call("stat", 0, st) == -errno.EFAULT
    assert m.call("open", 0x10, 0) == -errno.EFAULT
    assert m.call("stat", m.string(b""), st) == -errno.ENOENT
    assert m.call("newfstatat", AT_FDCWD, 0, st, 0) == host(262, AT_FDCWD, 0, HostBuf(144).addr, 0)
    assert m.call("stat", m.string(b"/etc/passwd"), 0x10) == -errno.EFAULT
    end = m.scratch + SCRATCH_PAGES * PAGE_SIZE
    m.p.write(end - 3, b"/et")                  # no NUL before the unmapped page
    assert m.call("stat", end - 3, st) == -errno.EFAULT
    assert m.call("newfstatat", 99, m.string(b""), st, AT_EMPTY_PATH) == -errno.EBADF
    assert m.call("newfstatat", AT_FDCWD, m.string(b"/etc"), st, 0x2) == -errno.EINVAL


def test_fd_errnos_are_the_hosts(m, tmp_path):
    path = host_file(tmp_path).encode()
    fd = m.call("open", m.string(path), os.O_RDONLY)
    hfd = os.open(path, os.O_RDONLY)
    buf, hbuf = m.buffer(4096), HostBuf(4096)
    cases = [("read", 0, (0, 5)), ("getdents64", 217, (buf, 4096)), ("fsync", 74, ()),
             ("ftruncate", 77, (0,)), ("lseek", 8, (0, 5))]
    for name, nr, rest in cases:
        hrest = tuple(hbuf.addr if r == buf else r for r in rest)
        assert m.call(name, fd, *rest) == host(nr, hfd, *hrest), name
        assert m.call(name, 99, *rest) == host(nr, 99, *hrest) == -errno.EBADF, name
    assert m.call("readlink", m.string(path), buf, 10) == host(89, path, hbuf.addr, 10) == -errno.EINVAL
    assert m.call("readlink", m.string(path), buf, 0) == host(89, path, hbuf.addr, 0) == -errno.EINVAL
    assert m.call("dup3", fd, fd, 0) == host(292, hfd, hfd, 0) == -errno.EINVAL
    os.close(hfd)


def test_read_of_a_directory_and_getdents_of_a_file(m):
    fd = m.call("open", m.string(b"/etc"), os.O_RDONLY | os.O_DIRECTORY)
    buf = m.buffer(64)
    assert m.call("read", fd, buf, 10) == -errno.EISDIR
    assert m.call("read", fd, buf, 0) == -errno.EISDIR
    assert m.call("getdents64", fd, buf, 10) == -errno.EINVAL
    pfd = m.call("open", m.string(b"/etc/passwd"), os.O_PATH)
    assert m.call("getdents64", pfd, buf, 64) == -errno.EBADF
    assert m.call("fstat", pfd, m.buffer(144)) == 0
    assert m.call("lseek", pfd, 0, 0) == -errno.EBADF


# ------------------------------------------------------------------ directories

def _dirents(raw: bytes) -> list[tuple[str, int, int]]:
    out = []
    pos = 0
    while pos < len(raw):
        ino, _off, reclen, dtype = struct.unpack_from("<QqHB", raw, pos)
        name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0].decode()
        out.append((name, ino, dtype))
        pos += reclen
    return out


def test_getdents64_lists_the_host_directory(m, tmp_path):
    for name in ("a", "bb", "c" * 40):
        host_file(tmp_path, name)
    (tmp_path / "sub").mkdir()
    fd = m.call("open", m.string(str(tmp_path).encode()), os.O_RDONLY | os.O_DIRECTORY)
    buf = m.buffer(4096)
    got = []
    while (n := m.call("getdents64", fd, buf, 100)) > 0:
        got += _dirents(m.read(buf, n))
    assert [g[0] for g in got[:2]] == [".", ".."]
    assert [g[0] for g in got[2:]] == os.listdir(tmp_path)
    for name, ino, dtype in got[2:]:
        st = os.stat(tmp_path / name)
        assert ino == st.st_ino and dtype == (4 if name == "sub" else 8)
    assert got[0][1] == os.stat(tmp_path).st_ino and got[1][1] == os.stat(tmp_path.parent).st_ino
    assert m.call("lseek", fd, 0, 0) == 0
    assert m.call("getdents64", fd, buf, 4096) > 0


def test_a_file_made_in_the_model_is_listed_with_the_hosts(m, tmp_path):
    host_file(tmp_path, "host")
    udir = m.string(str(tmp_path).encode())
    assert m.call("chdir", udir) == 0
    assert m.call("open", m.string(b"mine"), os.O_CREAT | os.O_WRONLY, 0o600) >= 0
    assert not (tmp_path / "mine").exists()             # the host is only read
    fd = m.call("open", m.string(b"."), os.O_RDONLY)
    buf = m.buffer(4096)
    names = [e[0] for e in _dirents(m.read(buf, m.call("getdents64", fd, buf, 4096)))]
    assert names == [".", "..", "host", "mine"]


def test_chdir_getcwd_and_relative_paths(m, tmp_path):
    host_file(tmp_path, "x", b"xyz")
    buf = m.buffer(4096)
    assert m.call("getcwd", buf, 4096) == 2 and m.read(buf, 2) == b"/\0"
    assert m.call("chdir", m.string(str(tmp_path).encode())) == 0
    n = m.call("getcwd", buf, 4096)
    assert m.read(buf, n) == os.path.realpath(tmp_path).encode() + b"\0"
    assert m.call("getcwd", buf, 2) == host(79, HostBuf(2).addr, 2) == -errno.ERANGE
    fd = m.call("open", m.string(b"x"), os.O_RDONLY)
    assert m.call("read", fd, buf, 10) == 3 and m.read(buf, 3) == b"xyz"
    dfd = m.call("open", m.string(b"/etc"), os.O_RDONLY | os.O_DIRECTORY)
    st, hst = m.buffer(144), HostBuf(144)
    assert m.call("newfstatat", dfd, m.string(b"passwd"), st, 0) == 0
    assert host(262, AT_FDCWD, b"/etc/passwd", hst.addr, 0) == 0 and m.read(st, 144) == hst.raw
    pfd = m.call("open", m.string(b"/etc/passwd"), os.O_RDONLY)
    assert m.call("newfstatat", pfd, m.string(b"x"), st, 0) == -errno.ENOTDIR
    assert m.call("chdir", m.string(b"/etc/passwd")) == -errno.ENOTDIR
    assert m.call("fchdir", dfd) == 0 and m.p.cwd == "/etc"


def test_mkdir_rmdir_rename_unlink_in_the_model(m, tmp_path):
    assert m.call("chdir", m.string(bytes(tmp_path))) == 0
    assert m.call("mkdir", m.string(b"d"), 0o755) == 0
    assert m.call("mkdir", m.string(b"d"), 0o755) == -errno.EEXIST
    assert m.call("mkdirat", AT_FDCWD, m.string(b"d/e"), 0o700) == 0
    assert m.call("rmdir", m.string(b"d")) == -errno.ENOTEMPTY
    assert m.call("rename", m.string(b"d/e"), m.string(b"f")) == 0
    assert m.call("rmdir", m.string(b"d")) == 0
    fd = m.call("open", m.string(b"g"), os.O_CREAT | os.O_RDWR, 0o600)
    assert m.call("renameat2", AT_FDCWD, m.string(b"g"), AT_FDCWD, m.string(b"f"), 1) \
        == -errno.EEXIST
    assert m.call("unlink", m.string(b"g")) == 0 and m.call("close", fd) == 0
    assert m.call("access", m.string(b"g"), 0) == -errno.ENOENT
    assert m.call("access", m.string(b"f"), 0) == 0 and not (tmp_path / "f").exists()


# ------------------------------------------------------------------ /proc

def test_proc_self_maps_and_status_are_the_models(m):
    fd = m.call("open", m.string(b"/proc/self/maps"), os.O_RDONLY)
    buf = m.buffer(PAGE_SIZE * 4)
    text = b""
    while (n := m.call("read", fd, buf, 100)) > 0:
        text += m.read(buf, n)
    assert text.decode() == m.p.maps()
    sfd = m.call("open", m.string(b"/proc/self/status"), os.O_RDONLY)
    n = m.call("read", sfd, buf, PAGE_SIZE * 4)
    status = m.read(buf, n).decode()
    assert f"\nPid:\t{m.p.pid}\n" in status and "\nUmask:\t0022\n" in status
    vmsize = int(status.split("VmSize:")[1].split()[0])
    assert vmsize == sum(v.end - v.start for v in m.p.vmas()) // 1024


def test_readlink_proc_self_exe_is_the_programs_path():
    m = Model(argv=["/bin/true"])
    buf = m.buffer(256)
    n = m.call("readlink", m.string(b"/proc/self/exe"), buf, 256)
    assert m.read(buf, n) == os.path.realpath("/bin/true").encode()
    n = m.call("readlinkat", AT_FDCWD, m.string(b"/bin"), buf, 256)
    assert m.read(buf, n) == os.readlink("/bin").encode()


# ------------------------------------------------------------------ fds

def test_fcntl_status_flags_are_the_hosts(m, tmp_path):
    path = host_file(tmp_path).encode()
    for flags in (os.O_RDONLY | os.O_CLOEXEC, os.O_RDWR | os.O_APPEND, os.O_PATH,
                  os.O_RDONLY | os.O_NOFOLLOW):
        fd = m.call("open", m.string(path), flags)
        hfd = os.open(path, flags)
        assert m.call("fcntl", fd, 3) == host(72, hfd, 3), oct(flags)
        os.close(hfd)
    fd = m.call("open", m.string(path), os.O_RDONLY)
    assert m.call("fcntl", fd, 4, os.O_NONBLOCK | os.O_CREAT) == 0
    assert m.call("fcntl", fd, 3) == os.O_NONBLOCK | 0o100000


def test_dup2_dup3(m, tmp_path):
    path = host_file(tmp_path).encode()
    fd = m.call("open", m.string(path), os.O_RDONLY)
    assert m.call("dup2", fd, fd) == fd and m.call("dup2", 77, 77) == -errno.EBADF
    assert m.call("dup3", fd, 10, os.O_CLOEXEC) == 10 and m.call("fcntl", 10, 1) == 1
    assert m.call("dup2", fd, 10) == 10 and m.call("fcntl", 10, 1) == 0
    assert m.call("dup3", fd, 11, 1) == -errno.EINVAL
    assert m.call("dup2", fd, 5000) == -errno.EBADF
    assert m.call("lseek", 10, 7, 0) == 7 and m.call("lseek", fd, 0, 1) == 7    # one file


def test_pipe2_carries_bytes(m):
    fds = m.buffer(8)
    assert m.call("pipe2", fds, os.O_CLOEXEC) == 0
    r, w = struct.unpack("<ii", m.read(fds, 8))
    assert m.call("fcntl", r, 1) == 1 and m.call("fcntl", w, 3) == 1
    msg, buf = m.put(b"through"), m.buffer(16)
    assert m.call("write", w, msg, 7) == 7
    assert m.call("read", r, buf, 16) == 7 and m.read(buf, 7) == b"through"
    with pytest.raises(Block):                                # a writer, nothing waiting
        m.call("read", r, buf, 16)
    assert m.call("fcntl", r, 4, os.O_NONBLOCK) == 0
    assert m.call("read", r, buf, 16) == -errno.EAGAIN
    assert m.call("lseek", r, 0, 0) == -errno.ESPIPE
    assert m.call("pread64", r, buf, 1, 0) == -errno.ESPIPE
    assert m.call("fsync", r) == -errno.EINVAL
    assert m.call("close", w) == 0 and m.call("read", r, buf, 16) == 0
    assert m.call("pipe2", fds, 1) == -errno.EINVAL
    assert m.call("pipe2", 0, 0) == -errno.EFAULT and 3 not in m.p.files


def test_terminal_ioctls_are_the_hosts(m, tmp_path):
    import pty
    master, slave = pty.openpty()
    r, w = os.pipe()
    try:
        install_stdio(m.p, HostStream(slave), HostStream(w), HostStream(2))
        buf, hbuf = m.buffer(64), HostBuf(64)
        assert m.call("ioctl", 0, 0x5401, buf) == host(16, slave, 0x5401, hbuf.addr) == 0
        assert m.read(buf, 36) == hbuf.raw[:36]
        assert m.call("ioctl", 0, 0x5413, buf) == host(16, slave, 0x5413, hbuf.addr) == 0
        assert m.read(buf, 8) == hbuf.raw[:8]
        assert m.call("ioctl", 1, 0x5401, buf) == host(16, w, 0x5401, hbuf.addr) == -errno.ENOTTY
        path = host_file(tmp_path).encode()
        fd = m.call("open", m.string(path), os.O_RDONLY)
        assert m.call("ioctl", fd, 0x5401, buf) == -errno.ENOTTY
        st, hst = m.buffer(144), HostBuf(144)
        assert m.call("fstat", 0, st) == host(5, slave, hst.addr) == 0
        assert m.read(st, 144)[:48] == hst.raw[:48]           # dev ino nlink mode uid gid rdev
    finally:
        for fd in (master, slave, r, w):
            os.close(fd)


# ------------------------------------------------------------------ process information

def test_ids_uname_and_limits(m):
    assert m.call("getpid") == m.p.pid == m.call("gettid")
    assert m.call("getppid") == 0
    assert [m.call(n) for n in ("getuid", "geteuid", "getgid", "getegid")] == [0] * 4
    buf, hbuf = m.buffer(390), HostBuf(390)
    assert m.call("uname", buf) == host(63, hbuf.addr) == 0 and m.read(buf, 390) == hbuf.raw
    assert m.call("uname", 0) == -errno.EFAULT
    rl = m.buffer(16)
    assert m.call("prlimit64", 0, 3, 0, rl) == 0
    assert struct.unpack("<QQ", m.read(rl, 16)) == (8 << 20, U64)
    new = m.put(struct.pack("<QQ", 4 << 20, U64))
    assert m.call("prlimit64", 0, 3, new, rl) == 0
    assert struct.unpack("<QQ", m.read(rl, 16)) == (8 << 20, U64)
    assert m.call("getrlimit", 3, rl) == 0 and struct.unpack("<QQ", m.read(rl, 16))[0] == 4 << 20
    assert m.call("prlimit64", 0, 99, 0, rl) == host(302, 0, 99, 0, HostBuf(16).addr) == -errno.EINVAL
    assert m.call("prlimit64", 99999, 0, 0, rl) == -errno.ESRCH
    assert m.call("getrlimit", 99, rl) == -errno.EINVAL


def test_affinity_and_getcpu(m):
    buf, hbuf = m.buffer(64), HostBuf(64)
    for length in (4, 8, 64):
        assert m.call("sched_getaffinity", 0, length, buf) == host(204, 0, length, hbuf.addr)
        n = max(m.call("sched_getaffinity", 0, length, buf), 0)
        assert m.read(buf, n) == hbuf.raw[:n]
    assert m.call("getcpu", buf, buf + 4, 0) == 0 and m.read(buf, 8) == bytes(8)


def test_the_virtual_clock_is_deterministic_and_advances():
    def readings() -> list[tuple[int, int]]:
        m = Model()
        ts = m.buffer(16)
        out = []
        for clock in (1, 1, 0):
            assert m.call("clock_gettime", clock, ts) == 0
            out.append(struct.unpack("<qq", m.read(ts, 16)))
        return out
    first = readings()
    assert first == readings() and first[0] < first[1]
    m = Model()
    ts = m.buffer(16)
    assert m.call("clock_gettime", 100, ts) == host(228, 100, HostBuf(16).addr) == -errno.EINVAL
    assert m.call("clock_gettime", 8, ts) == host(228, 8, HostBuf(16).addr) == -errno.EINVAL
    assert m.call("clock_getres", 5, ts) == 0 and m.read(ts, 16) == struct.pack("<qq", 0, 4000000)
    assert m.call("clock_getres", 1, 0) == 0
    t = m.call("time", ts)
    assert t == struct.unpack("<q", m.read(ts, 8))[0] == 1_700_000_000


def test_getrandom_is_seeded(m):
    a, b = Model(seed=7), Model(seed=7)
    ba, bb = a.buffer(32), b.buffer(32)
    assert a.call("getrandom", ba, 32, 0) == b.call("getrandom", bb, 32, 0) == 32
    assert a.read(ba, 32) == b.read(bb, 32)
    assert m.call("getrandom", m.buffer(4), 4, 8) == -errno.EINVAL
    assert m.call("getrandom", 0, 8, 0) == -errno.EFAULT
    assert m.call("getrandom", 0, 0, 0) == 0


def test_thread_calls(m):
    assert m.call("set_tid_address", 0x1234) == m.p.pid and m.thread.clear_child_tid == 0x1234
    assert m.call("set_robust_list", 0x1000, 10) == -errno.EINVAL
    assert m.call("set_robust_list", 0x1000, 24) == 0
    area = m.put(b"\xff" * 32)
    assert m.call("rseq", area + 8, 32, 0, 0x53053053) == -errno.EINVAL      # misaligned
    area = (area + 31) & ~31
    m.p.write(area, b"\xff" * 32)
    assert m.call("rseq", area, 32, 0, 0x53053053) == 0
    assert m.read(area, 8) == bytes(8)
    assert m.call("rseq", area, 32, 0, 0x53053053) == -errno.EBUSY
    assert m.call("rseq", area, 32, 0, 1) == -errno.EPERM
    assert m.call("rseq", area, 32, 1, 0x53053053) == 0


def test_mm_calls_from_registers(m):
    a = m.call("mmap", 0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    assert a == m.p.vmas()[-2].start or a in (v.start for v in m.p.vmas())
    assert m.call("mprotect", a + PAGE_SIZE, PAGE_SIZE, PROT_READ) == 0
    vec = m.buffer(3)
    m.p.write(a, b"x")
    assert m.call("mincore", a, 3 * PAGE_SIZE, vec) == 0 and m.read(vec, 3) == b"\1\0\0"
    assert m.call("mincore", a + 1, PAGE_SIZE, vec) == -errno.EINVAL
    assert m.call("munmap", a, 3 * PAGE_SIZE) == 0
    assert m.call("mincore", a, PAGE_SIZE, vec) == -errno.ENOMEM
    assert m.call("mmap", 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, 99, 0) == -errno.EBADF
    brk = m.call("brk", 0)
    assert m.call("brk", brk + PAGE_SIZE) == brk + PAGE_SIZE


def test_socket_is_not_modelled(m):
    """docs/deviations.md row 17. The model has no network stack: socket(2) is
    EAFNOSUPPORT for every family (glibc goes on without nscd); of socket pairs only
    AF_UNIX SOCK_STREAM exists. Linux answers socketpair(AF_INET, SOCK_STREAM) with
    EOPNOTSUPP (inet's sock_no_socketpair()) and makes AF_UNIX datagram pairs."""
    assert m.call("socket", 1, 1, 0) == -errno.EAFNOSUPPORT
    sv = m.buffer(8)
    assert m.call("socketpair", 2, 1, 0, sv) == -errno.EAFNOSUPPORT
    assert m.call("socketpair", 1, 2, 0, sv) == -errno.ESOCKTNOSUPPORT
    assert m.call("socketpair", 1, 1, 0, sv) == 0


# ------------------------------------------------------------------ strace lines

def _traced(m: Model, name: str, *args: int) -> str:
    """The call made, and its line as `vmsim run --trace` prints it."""
    from vmsim.arch.x86.entry.syscall_64 import strace_line
    regs = [a & U64 for a in args] + [0] * (6 - len(args))
    result = m.call(name, *args)
    return strace_line(m.thread, NR[name], regs, result)


def test_strace_lines_are_this_machines(m, tmp_path):
    """Lines as this machine's strace printed the same calls (strace 6.x, defaults)."""
    elf = (b"\x7fELF\x02\x01\x01\x03" + bytes(8) + b"\x03\x00>\x00\x01\x00\x00\x00\x10t\x02"
           + bytes(5) + b"\x001" + bytes(800))
    path = host_file(tmp_path, "libc", elf)
    r, w = os.pipe()
    try:
        install_stdio(m.p, HostStream(0), HostStream(w), HostStream(2))
        upath = m.string(path.encode())
        assert _traced(m, "write", 1, m.put(b"hello\n"), 6) == \
            'write(1, "hello\\n", 6)                  = 6'
        long = m.put(b"0123456789012345678901234567890123456789\n")
        assert _traced(m, "write", 1, long, 41) == \
            'write(1, "01234567890123456789012345678901"..., 41) = 41'
        assert _traced(m, "openat", AT_FDCWD, upath, os.O_RDONLY | os.O_CLOEXEC) == \
            f'openat(AT_FDCWD, "{path}", O_RDONLY|O_CLOEXEC) = 3'
        buf = m.buffer(832)
        assert _traced(m, "read", 3, buf, 832) == \
            'read(3, "\\177ELF\\2\\1\\1\\3\\0\\0\\0\\0\\0\\0\\0\\0\\3\\0>\\0\\1\\0\\0\\0\\20t\\2\\0' \
            '\\0\\0\\0\\0"..., 832) = 832'
        assert _traced(m, "pread64", 3, buf, 3, 31) == 'pread64(3, "\\0\\0001", 3, 31)            = 3'
        assert _traced(m, "lseek", 3, 5, 2) == f"lseek(3, 5, SEEK_END)                   = {len(elf) + 5}"
        assert _traced(m, "fcntl", 3, 3) == \
            "fcntl(3, F_GETFL)                       = 0x8000 (flags O_RDONLY|O_LARGEFILE)"
        assert _traced(m, "fcntl", 3, 2, 1) == "fcntl(3, F_SETFD, FD_CLOEXEC)           = 0"
        st = m.buffer(144)
        assert _traced(m, "newfstatat", 3, m.string(b""), st, AT_EMPTY_PATH) == \
            f'newfstatat(3, "", {{st_mode=S_IFREG|0644, st_size={len(elf)}, ...}}, AT_EMPTY_PATH) = 0'
        assert _traced(m, "close", 3) == "close(3)                                = 0"
        assert _traced(m, "access", m.string(b"/nonexistent"), 0) == \
            'access("/nonexistent", F_OK)            = -1 ENOENT (No such file or directory)'
        new = f"{tmp_path}/zz_new"
        assert _traced(m, "openat", AT_FDCWD, m.string(new.encode()),
                       os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) == \
            f'openat(AT_FDCWD, "{new}", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3'
        assert _traced(m, "umask", 0o77) == "umask(077)                              = 022"
        a = m.call("mmap", 0, 8192, 0, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) - 8192
        line = _traced(m, "mmap", 0, 8192, 0, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        assert line == f"mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = {a:#x}"
        assert _traced(m, "mprotect", a, 4096, PROT_READ | PROT_WRITE) == \
            f"mprotect({a:#x}, 4096, PROT_READ|PROT_WRITE) = 0"
        assert _traced(m, "munmap", a, 8192) == f"munmap({a:#x}, 8192)            = 0"
        assert _traced(m, "brk", 0) == f"brk(NULL)                               = {m.p.mm.brk:#x}"
        assert _traced(m, "mmap", 0, 4096, PROT_READ, MAP_PRIVATE, 3, 0x26000) == \
            "mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0x26000) = -1 EACCES (Permission denied)"
        ts = m.buffer(16)
        assert _traced(m, "clock_getres", 5, ts) == \
            "clock_getres(CLOCK_REALTIME_COARSE, {tv_sec=0, tv_nsec=4000000}) = 0"
        assert _traced(m, "prlimit64", 0, 3, 0, m.buffer(16)) == \
            "prlimit64(0, RLIMIT_STACK, NULL, {rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}) = 0"
        assert _traced(m, "set_robust_list", 0x7F641BE99A20, 24) == \
            "set_robust_list(0x7f641be99a20, 24)     = 0"
        fds = m.buffer(8)
        assert _traced(m, "pipe2", fds, os.O_CLOEXEC).startswith("pipe2([4, 5], O_CLOEXEC)")
        assert _traced(m, "dup3", 4, 10, os.O_CLOEXEC) == \
            "dup3(4, 10, O_CLOEXEC)                  = 10"
        from vmsim.arch.x86.entry.syscall_64 import strace_line
        assert strace_line(m.thread, 0x1F4, [1, 0, 0x20, 0, 0x7F9BD88D76D0, 1], -38) == \
            "syscall_0x1f4(0x1, 0, 0x20, 0, 0x7f9bd88d76d0, 0x1) = -1 ENOSYS (Function not implemented)"
        assert strace_line(m.thread, 231, [0] * 6, None) == "exit_group(0)                           = ?"
    finally:
        os.close(r)
        os.close(w)


def test_statfs_and_xattrs_are_the_hosts(m, tmp_path):
    path = host_file(tmp_path).encode()
    buf, hbuf = m.buffer(120), HostBuf(120)
    assert m.call("statfs", m.string(path), buf) == host(137, path, hbuf.addr) == 0
    layout = "<qq40xiiqqq"                  # type, bsize, fsid, namelen, frsize, flags
    assert struct.unpack(layout, m.read(buf, 88)) == struct.unpack(layout, hbuf.raw[:88])
    assert m.call("statfs", m.string(b"/dev/shm"), buf) == 0
    assert struct.unpack_from("<q", m.read(buf, 8))[0] == 0x01021994
    assert m.call("statfs", m.string(b"/nonexistent"), buf) == -errno.ENOENT
    name = m.string(b"system.posix_acl_access")
    assert m.call("getxattr", m.string(path), name, 0, 0) == \
        host(191, path, b"system.posix_acl_access", 0, 0)
    assert m.call("lgetxattr", m.string(path), m.string(b""), 0, 0) == -errno.ERANGE
    fd = m.call("open", m.string(path + b"-new"), os.O_CREAT | os.O_RDWR, 0o600)
    assert m.call("fgetxattr", fd, name, 0, 0) == -errno.ENODATA
    assert m.call("flistxattr", fd, buf, 120) == 0
    assert m.call("listxattr", m.string(path), buf, 120) == host(194, path, hbuf.addr, 120)
    assert m.call("getpgrp") == m.p.pid == m.call("getsid", 0)


# ------------------------------------------------------------------ deviations (docs/deviations.md)

def test_host_symlinks_are_followed_even_under_o_nofollow(m, tmp_path):
    """Row 16: the model has no symbolic links; a host's is followed when the model
    opens it (Linux: ELOOP under O_NOFOLLOW)."""
    host_file(tmp_path, "target", b"t")
    link = tmp_path / "link"
    os.symlink("target", link)
    ulink = m.string(str(link).encode())
    assert host(2, str(link).encode(), os.O_RDONLY | os.O_NOFOLLOW) == -errno.ELOOP
    assert m.call("open", ulink, os.O_RDONLY | os.O_NOFOLLOW) >= 0


def test_mincore_counts_zero_page_reads_as_absent(m):
    """Row 19: a private anonymous page only read maps the zero page in Linux
    (resident); the model records no such mapping."""
    a = m.call("mmap", 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    m.p.read(a, 1)
    vec = m.buffer(1)
    assert m.call("mincore", a, PAGE_SIZE, vec) == 0 and m.read(vec, 1) == b"\0"


def test_renameat2_exchange_and_whiteout_are_einval(m, tmp_path):
    """Row 20: RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled."""
    a, b = host_file(tmp_path, "a").encode(), host_file(tmp_path, "b").encode()
    for flags in (2, 4):
        assert m.call("renameat2", AT_FDCWD, m.string(a), AT_FDCWD, m.string(b), flags) == \
            -errno.EINVAL


def test_status_of_an_idle_single_threaded_task(m):
    """Row 21: what the model does not keep reads as one idle thread with no signals
    and no high-water marks of its own."""
    fd = m.call("open", m.string(b"/proc/self/status"), os.O_RDONLY)
    buf = m.buffer(PAGE_SIZE)
    status = m.read(buf, m.call("read", fd, buf, PAGE_SIZE)).decode()
    fields = dict(line.split(":\t", 1) for line in status.splitlines())
    assert fields["Threads"] == "1" and fields["SigPnd"] == "0" * 16
    assert fields["VmPeak"] == fields["VmSize"] and fields["VmHWM"] == fields["VmRSS"]
    assert fields["PPid"] == "0" and m.call("getpgrp") == m.p.pid


def test_stdin_from_a_file_and_writev_to_stdout(m, tmp_path):
    path = host_file(tmp_path, "in", b"line one\nline two\n")
    fin = os.open(path, os.O_RDONLY)
    r, w = os.pipe()
    try:
        install_stdio(m.p, HostStream(fin), HostStream(w), HostStream(w))
        buf = m.buffer(64)
        assert m.call("read", 0, buf, 9) == 9 and m.read(buf, 9) == b"line one\n"
        assert m.call("read", 0, buf, 64) == 9 and m.call("read", 0, buf, 64) == 0
        assert m.call("write", 0, buf, 1) == -errno.EBADF             # open O_RDONLY
        assert m.call("fcntl", 0, 3) == os.O_RDONLY | 0o100000 and m.call("fcntl", 1, 3) == os.O_WRONLY
        a, b = m.put(b"to "), m.put(b"stderr\n")
        assert m.call("writev", 2, m.put(struct.pack("<QQQQ", a, 3, b, 7)), 2) == 10
        assert os.read(r, 64) == b"to stderr\n"
        assert m.call("lseek", 0, 0, 0) == 0 and m.call("lseek", 1, 0, 0) == -errno.ESPIPE
        st, hst = m.buffer(144), HostBuf(144)
        assert m.call("fstat", 0, st) == host(5, fin, hst.addr) == 0 and m.read(st, 144) == hst.raw
    finally:
        for fd in (fin, r, w):
            os.close(fd)
