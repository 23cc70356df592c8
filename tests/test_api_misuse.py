"""API misuse (issue #9, section 3): whatever the syscall surface is given, it answers as
the kernel does, and the model stays consistent (`validate()`).

Each reproducer runs the same call on this machine's kernel (ctypes `syscall()`, in a
forked child where the call could change the test process) and compares; a test skips
only where the host lacks what it needs (no /dev/sgx_enclave, no ext4 or tmpfs at
hand), and then the kernel source it follows is cited.
"""

import ctypes
import errno
import os
import resource
import struct
import tempfile

import pytest

import vmsim
from vmsim import (
    FIOASYNC,
    FIOCLEX,
    FIONBIO,
    FIONCLEX,
    FIONREAD,
    FIOQSIZE,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    O_APPEND,
    O_CREAT,
    O_DIRECTORY,
    O_PATH,
    O_RDONLY,
    O_RDWR,
    PROT_READ,
    PROT_WRITE,
    RLIM_INFINITY,
    RLIMIT_MEMLOCK,
    RLIMIT_NOFILE,
)
from vmsim.fs.file import FileOperations

PAGE = vmsim.PAGE_SIZE
U64 = vmsim.U64
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
#: ext4_max_size() for 4 KiB blocks with extents, as measured on this machine
EXT4_MAXBYTES = 0xFFFFFFF_F000
CAP_SYS_RESOURCE = 24

SYS_pread64, SYS_pwrite64, SYS_ioctl, SYS_brk, SYS_ftruncate = 17, 18, 16, 12, 77
SYS_getrlimit, SYS_setrlimit = 97, 160


# --------------------------------------------------------------------------- the host

def _libc():
    if os.uname().sysname != "Linux" or os.uname().machine != "x86_64":
        pytest.skip("the host is not Linux x86_64")
    return ctypes.CDLL(None, use_errno=True)


def host(nr, *args):
    """syscall(nr, *args) on this machine: ("ok", result) or the errno's name. Integer
    arguments go as unsigned longs (the ABI's registers), buffers by address."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    regs = [ctypes.c_ulong(ctypes.addressof(a)) if isinstance(a, ctypes.Array)
            else ctypes.c_ulong(a & U64) for a in args]
    r = libc.syscall(ctypes.c_long(nr), *regs)
    return ("ok", r) if r != -1 else errno.errorcode[ctypes.get_errno()]


def in_child(fn):
    """fn() in a forked child (for calls that could change the test process)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                            # pragma: no cover
        try:
            os.write(w, repr(fn()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return eval(out)


def model(call, *args):
    """The model's answer in the same form as host()."""
    try:
        return "ok", call(*args)
    except OSError as e:
        return errno.errorcode[e.errno]


def host_fstype(path):
    """The type of the filesystem holding path (/proc/self/mountinfo)."""
    path = os.path.realpath(path)
    best, fstype = "", None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mnt = fields[4]
            sep = fields.index("-")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fstype = mnt, fields[sep + 1]
    return fstype


@pytest.fixture
def host_dir(request, tmp_path):
    """A fresh directory on the host filesystem of the param's type ("ext4", "tmpfs")."""
    want = request.param
    base = str(tmp_path) if want == "ext4" else "/dev/shm"
    if host_fstype(base) != want:
        pytest.skip(f"no {want} at hand ({base} is {host_fstype(base)})")
    d = tempfile.mkdtemp(dir=base)
    yield d
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


MODEL_DIR = {"ext4": "/tmp", "tmpfs": "/dev/shm"}


def fresh():
    k = vmsim.Kernel()
    return k, k.spawn()


# --------------------------------------------------------------------------- brk

WILD_BRKS = [U64, 1 << 63, U64 - PAGE + 1, U64 - PAGE + 2, 0x7FFFFFFFF000 + PAGE, 1]


@pytest.mark.parametrize("value", WILD_BRKS, ids=hex)
def test_brk_past_the_top_returns_the_break(value):
    """mm/mmap.c brk: PAGE_ALIGN(-1) wraps to 0 and check_brk_limits() refuses the
    wrapped length: the old break comes back and no VMA changes."""
    _, p = fresh()
    start = p.brk(0)
    grown = p.brk(start + 3 * PAGE)
    maps = p.maps()
    assert p.brk(value) == grown
    assert p.maps() == maps
    p.mm.validate()
    assert host(SYS_brk, value) == host(SYS_brk, 0)     # the host answers the same


def test_brk_rejects_a_float_before_anything():
    _, p = fresh()
    with pytest.raises(TypeError):
        p.brk(float(p.brk(0) + PAGE))
    assert p.maps().count("\n") == 1


# --------------------------------------------------------------------------- O_PATH

def test_o_path_sgx_enclave_never_reaches_the_driver():
    """fs/open.c do_dentry_open(): an O_PATH file gets empty_fops, so the driver is
    neither opened nor released; fs/ioctl.c: fdget() refuses an O_PATH file (EBADF)."""
    k, p = fresh()
    fd = p.open("/dev/sgx_enclave", O_PATH)
    assert p.files[fd].private_data is None                 # sgx_open() not called
    assert model(p.ioctl, fd, FIOCLEX) == "EBADF"
    assert model(p.ioctl, fd, 0xC008A400) == "EBADF"        # SGX_IOC_ENCLAVE_CREATE
    assert model(p.close, fd) == ("ok", 0)
    fd = p.open("/dev/sgx_enclave", O_PATH)
    p.exit()                                                # fput() calls no ->release
    assert p.pid not in k.processes
    if os.path.exists("/dev/sgx_enclave"):
        hfd = os.open("/dev/sgx_enclave", os.O_PATH)
        try:
            assert host(SYS_ioctl, hfd, 0xC008A400, 0) == "EBADF"
        finally:
            os.close(hfd)


@pytest.mark.parametrize("path", ["/dev/null", "/tmp", "/dev/zero"])
def test_o_path_file_is_ebadf_for_io(path):
    _, p = fresh()
    fd = p.open(path, O_PATH)
    hfd = os.open(path, os.O_PATH)
    buf = ctypes.create_string_buffer(8)
    try:
        for cmd in (FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC, FIOQSIZE, FIONREAD, 0x1234):
            assert model(p.ioctl, fd, cmd, 0) == host(SYS_ioctl, hfd, cmd, 0) == "EBADF"
        assert model(p.pread, fd, 8, 0) == host(SYS_pread64, hfd, buf, 8, 0) == "EBADF"
        assert model(p.pwrite, fd, b"x" * 8, 0) == host(SYS_pwrite64, hfd, buf, 8, 0) == "EBADF"
        assert model(p.ftruncate, fd, 0) == host(SYS_ftruncate, hfd, 0) == "EBADF"
        new = p.dup(fd)                                     # dup() takes fget_raw()
        os.close(os.dup(hfd))
        assert p.close(new) == 0
    finally:
        os.close(hfd)


def test_o_path_keeps_only_its_flags(tmp_path):
    """fs/open.c build_open_how(): O_PATH drops O_CREAT (so ENOENT), but O_DIRECTORY
    still applies (ENOTDIR)."""
    k, p = fresh()
    k.fs.create("/tmp/f", b"abc")
    with pytest.raises(FileNotFoundError):
        p.open("/tmp/none", O_PATH | O_CREAT)
    with pytest.raises(FileNotFoundError):
        os.open(tmp_path / "none", os.O_PATH | os.O_CREAT)
    assert not os.path.exists(tmp_path / "none")
    (tmp_path / "f").write_bytes(b"abc")
    with pytest.raises(NotADirectoryError):
        p.open("/tmp/f", O_PATH | O_DIRECTORY)
    with pytest.raises(NotADirectoryError):
        os.open(tmp_path / "f", os.O_PATH | os.O_DIRECTORY)


# --------------------------------------------------------------------------- VFS ioctls

class RecordingOps(FileOperations):
    """A driver that records every ioctl reaching it and answers 7."""

    def __init__(self):
        self.seen = []

    def unlocked_ioctl(self, task, file, cmd, arg):
        self.seen.append(cmd)
        return 7


def test_vfs_ioctls_never_reach_the_driver():
    """fs/ioctl.c do_vfs_ioctl() answers FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC and
    FIOQSIZE for every file; only other commands reach ->unlocked_ioctl."""
    k, p = fresh()
    ops = RecordingOps()
    k.fs.add_device("/dev/rec", ops)
    fd = p.open("/dev/rec", O_RDWR)
    buf = p.mmap(0, PAGE, RW, ANON)
    p.write(buf, struct.pack("<i", 1))
    assert [model(p.ioctl, fd, cmd, buf) for cmd in
            (FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC, FIOQSIZE)] == \
        [("ok", 0), ("ok", 0), ("ok", 0), "ENOTTY", "ENOTTY"]
    assert ops.seen == []
    assert p.ioctl(fd, FIONREAD, buf) == 7 and p.ioctl(fd, 0x1234) == 7
    assert ops.seen == [FIONREAD, 0x1234]
    assert p.ioctl(fd, (1 << 32) | FIOCLEX) == 0            # cmd is an unsigned int
    hfd = os.open("/dev/null", os.O_RDONLY)
    try:
        assert host(SYS_ioctl, hfd, (1 << 32) | FIOCLEX, 0) == ("ok", 0)
    finally:
        os.close(hfd)


def test_vfs_ioctls_on_the_sgx_device():
    """The SGX driver's own answer (ENOTTY, EBUSY, ...) is never given for them."""
    _, p = fresh()
    fd = p.open("/dev/sgx_enclave", O_RDWR)
    one = p.mmap(0, PAGE, RW, ANON)
    p.write(one, struct.pack("<i", 1))
    assert model(p.ioctl, fd, FIOCLEX) == ("ok", 0)
    assert model(p.ioctl, fd, FIONBIO, 0) == "EFAULT"       # get_user() of the flag
    assert model(p.ioctl, fd, FIONBIO, one) == ("ok", 0)
    assert p.files[fd].f_flags & vmsim.O_NONBLOCK
    assert model(p.ioctl, fd, FIOASYNC, one) == "ENOTTY"    # no ->fasync
    assert model(p.ioctl, fd, FIOASYNC, one + 4) == ("ok", 0)   # off: nothing to change
    assert model(p.ioctl, fd, FIOQSIZE, one) == "ENOTTY"    # not a file or directory


HOST_IOCTL_FILES = ["/dev/null", "/dev/zero", "/dev/random", "file", "dir", "pipe"]
IOCTLS = [(FIOCLEX, None), (FIONCLEX, None), (FIONBIO, 0), (FIONBIO, 1), (FIONBIO, None),
          (FIOASYNC, 0), (FIOASYNC, 1), (FIOASYNC, None), (FIOASYNC, 0), (FIOQSIZE, "out"),
          (FIOQSIZE, None), (FIONREAD, "out"), (FIONREAD, None)]


@pytest.mark.parametrize("what", HOST_IOCTL_FILES)
def test_vfs_ioctls_as_the_host(what):
    """Each command with a good and a bad (NULL) argument, on the host and the model:
    the same result, and for FIOQSIZE/FIONREAD the same value (a tmpfs file and an
    empty tmpfs directory, whose block counts are exact)."""
    if host_fstype("/dev/shm") != "tmpfs":
        pytest.skip("/dev/shm is not tmpfs here")
    data = bytes(range(256)) * 48 + b"x" * 123               # 3 pages and a bit
    k, p = fresh()
    d = tempfile.mkdtemp(dir="/dev/shm")
    fds = []
    try:
        if what == "file":
            k.fs.create("/dev/shm/f", data)
            with open(os.path.join(d, "f"), "wb") as f:
                f.write(data)
            fd, hfd = p.open("/dev/shm/f", O_RDWR), os.open(os.path.join(d, "f"), os.O_RDWR)
        elif what == "dir":
            k.fs.mkdir("/dev/shm/d")
            fd, hfd = p.open("/dev/shm/d", O_RDONLY), os.open(d, os.O_RDONLY)
        elif what == "pipe":
            (fd, _), (hfd, hw) = p.pipe(), os.pipe()
            fds.append(hw)
        else:
            fd, hfd = p.open(what, O_RDONLY), os.open(what, os.O_RDONLY)
        fds.append(hfd)
        page = p.mmap(0, PAGE, RW, ANON)
        for cmd, arg in IOCTLS:
            if what == "/dev/random" and cmd == FIONREAD:
                continue                # random_ioctl() (EINVAL) is not modelled
            hbuf = ctypes.create_string_buffer(8)
            if isinstance(arg, int):
                hbuf.raw = struct.pack("<q", arg)
                p.write(page, struct.pack("<q", arg))
            got_host = host(SYS_ioctl, hfd, cmd, hbuf if arg is not None else 0)
            got_model = model(p.ioctl, fd, cmd, page if arg is not None else 0)
            assert got_model == got_host, (what, hex(cmd), arg)
            if arg == "out" and got_host == ("ok", 0):
                n = 8 if cmd == FIOQSIZE else 4
                assert p.read(page, n) == hbuf.raw[:n], (what, hex(cmd))
        p.mm.validate()
    finally:
        for h in fds:
            os.close(h)
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


# --------------------------------------------------------------------------- rlimits

def host_has(cap):
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff >> cap & 1)


def host_rlimit_kernel():
    """A Kernel whose capabilities match the host's in what setrlimit checks."""
    caps = {"CAP_IPC_LOCK"} | ({"CAP_SYS_RESOURCE"} if host_has(CAP_SYS_RESOURCE) else set())
    return vmsim.Kernel(capabilities=caps)


@pytest.mark.parametrize("which", [0, 7, 15, 16, 99, U64, (1 << 32) | 7])
def test_rlimit_resource_range(which):
    """kernel/sys.c do_prlimit(): EINVAL for resource >= RLIM_NLIMITS; the resource
    is an unsigned int, so 2**32 + 7 is RLIMIT_NOFILE."""
    _, p = fresh()
    buf = ctypes.create_string_buffer(16)
    want = host(SYS_getrlimit, which, buf)
    got = model(p.getrlimit, which)
    assert (got if got == "EINVAL" else ("ok", 0)) == want
    bad = in_child(lambda: host(SYS_setrlimit, which, buf))
    assert (model(p.setrlimit, which, 1) == "EINVAL") == (bad == "EINVAL")


def test_setrlimit_checks_in_do_prlimit_order():
    p = host_rlimit_kernel().spawn()
    cur, hard = p.getrlimit(RLIMIT_MEMLOCK)
    cases = [(RLIMIT_MEMLOCK, hard + 1, hard), (RLIMIT_MEMLOCK, cur, hard * 2),
             (RLIMIT_NOFILE, 16, 1 << 21), (RLIMIT_MEMLOCK, 0, RLIM_INFINITY)]
    for which, c, h in cases:
        limits = ctypes.create_string_buffer(struct.pack("<QQ", c, h))

        def real(which=which, limits=limits, base=(cur, hard)):
            if which == RLIMIT_MEMLOCK:         # start from the model's own limits
                host(SYS_setrlimit, which, ctypes.create_string_buffer(struct.pack("<QQ", *base)))
            return host(SYS_setrlimit, which, limits)
        assert model(p.setrlimit, which, c, h) == in_child(real), (which, c, h)


def test_setrlimit_lowering_is_one_way_without_cap_sys_resource():
    _, p = fresh()
    p.setrlimit(RLIMIT_MEMLOCK, PAGE, PAGE)
    assert model(p.setrlimit, RLIMIT_MEMLOCK, PAGE, 2 * PAGE) == "EPERM"
    assert p.getrlimit(RLIMIT_MEMLOCK) == (PAGE, PAGE)
    root = vmsim.Kernel(capabilities={"CAP_SYS_RESOURCE"}).spawn()
    root.setrlimit(RLIMIT_MEMLOCK, PAGE, PAGE)
    root.setrlimit(RLIMIT_MEMLOCK, 2 * PAGE, 2 * PAGE)
    assert root.getrlimit(RLIMIT_MEMLOCK) == (2 * PAGE, 2 * PAGE)


def test_a_float_rlimit_never_gets_in():
    _, p = fresh()
    before = p.getrlimit(RLIMIT_MEMLOCK)
    for args in [(RLIMIT_MEMLOCK, 4096.0), (RLIMIT_MEMLOCK, 0, 8192.5), (8.0, 0), ("8", 0)]:
        with pytest.raises(TypeError):
            p.setrlimit(*args)
    assert p.getrlimit(RLIMIT_MEMLOCK) == before
    a = p.mmap(0, PAGE, RW, ANON)
    assert p.mlock(a, PAGE) == 0
    with pytest.raises(TypeError):
        vmsim.Kernel(rlimits={RLIMIT_MEMLOCK: (4096.0, 8192)})
    with pytest.raises(ValueError):
        vmsim.Kernel(rlimits={99: (1, 1)})
    with pytest.raises(ValueError):
        vmsim.Kernel(rlimits={RLIMIT_MEMLOCK: (2, 1)})


def test_rlimit_nofile_bounds_the_fd_table():
    """fs/file.c alloc_fd(): EMFILE at RLIMIT_NOFILE, checked before the open (so the
    driver is not opened) and for both ends of a pipe before either is installed."""
    k, p = fresh()
    p.setrlimit(RLIMIT_NOFILE, 3)
    fds = [p.open("/dev/null") for _ in range(3)]
    assert model(p.open, "/dev/sgx_enclave", O_RDWR) == "EMFILE"
    p.close(fds[0])
    p.close(fds[1])
    p.open("/dev/null")
    assert model(p.pipe) == "EMFILE"
    assert sorted(p.files) == [0, 2]

    def real():
        resource.setrlimit(resource.RLIMIT_NOFILE, (3, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        try:
            os.pipe()
        except OSError as e:
            return errno.errorcode[e.errno]
        return "ok"
    assert in_child(real) == "EMFILE"                       # 0, 1, 2 are taken


# --------------------------------------------------------------------------- types

def _victims(k, p):
    """(method, args) calls each with one argument of the wrong type."""
    fd = p.open("/tmp/f", O_RDWR | O_CREAT)
    a = p.mmap(0, 2 * PAGE, RW, ANON)
    return [
        (p.mmap, (0, float(PAGE), RW, ANON)), (p.mmap, (0, PAGE, RW, ANON, None, 0)),
        (p.munmap, (a, "4096")), (p.mprotect, (a, PAGE, 1.0)),
        (p.pkey_mprotect, (a, PAGE, PROT_READ, 0.0)), (p.pkey_alloc, (None,)),
        (p.pkey_free, (1.0,)), (p.mremap, (a, PAGE, 2.0 * PAGE)),
        (p.mseal, (a, PAGE, [0])), (p.madvise, (a, PAGE, 4.0)), (p.mlock, (a, 1e3)),
        (p.mlock2, (a, PAGE, b"\x01")), (p.munlock, (float(a), PAGE)), (p.brk, (None,)),
        (p.personality, (8.0,)), (p.prctl, (65.0,)), (p.open, (b"/tmp/f",)),
        (p.open, ("/tmp/g", float(O_CREAT))), (p.open, ("/tmp/g", O_CREAT, 0.5)),
        (p.close, (float(fd),)), (p.dup, ("0",)), (p.ftruncate, (fd, 4096.5)),
        (p.pread, (fd, 1.0, 0)), (p.pread, (fd, 1, 0.0)), (p.pwrite, (fd, 5, 0)),
        (p.pwrite, (fd, 2**200, 0)), (p.pwrite, (fd, "text", 0)), (p.pwrite, (fd, b"x", 1.5)),
        (p.unlink, (None,)), (p.ioctl, (fd, float(FIOCLEX))), (p.ioctl, (fd, FIONBIO, 0.0)),
        (p.getrlimit, (7.0,)), (p.setrlimit, (7, None)), (p.read, (a, 2.0)),
        (p.write, (a, 5)), (p.write, (a, [1, 2])), (p.touch, (float(a),)), (p.touch, (a, 1)),
    ]


def test_every_method_rejects_a_non_integer_before_any_effect():
    k, p = fresh()
    victims = _victims(k, p)
    state = (p.maps(), k.committed, dict(p.files), dict(p.rlimits), k.fs.read("/tmp/f"),
             p.persona, sorted(k.fs.inodes))
    for method, args in victims:
        with pytest.raises(TypeError):
            method(*args)
        assert (p.maps(), k.committed, dict(p.files), dict(p.rlimits), k.fs.read("/tmp/f"),
                p.persona, sorted(k.fs.inodes)) == state, method.__name__
        p.mm.validate()


def test_bool_is_an_integer_as_in_c():
    _, p = fresh()
    a = p.mmap(0, PAGE, RW, ANON)
    assert p.mprotect(a, PAGE, True) == 0                   # PROT_READ
    assert p.vmas()[0].perms == "r--p"


def test_integers_are_reduced_as_the_abi_does():
    """size_t, unsigned int and loff_t arguments wrap as the registers do."""
    k, p = fresh()
    k.fs.create("/dev/shm/f", b"0123456789")
    fd = p.open("/dev/shm/f", O_RDWR)
    assert p.pread(fd, (1 << 64) + 4, 0) == b"0123"         # size_t count
    assert p.pread(fd + (1 << 32), 2, 8) == b"89"           # unsigned int fd
    assert model(p.pread, fd, 1, U64) == "EINVAL"           # loff_t -1
    assert model(p.ftruncate, fd, U64) == "EINVAL"
    assert p.getrlimit((1 << 32) | RLIMIT_NOFILE) == p.getrlimit(RLIMIT_NOFILE)


# --------------------------------------------------------------------------- file helpers

TRUNCATES = [U64, (1 << 63) - 1, 1 << 62, 1 << 50, 1 << 44, EXT4_MAXBYTES, EXT4_MAXBYTES + 1,
             PAGE, 0]
#: (offset, count): pwrite then pread, and a write of nothing at the offset
OFFSETS = [(U64, 8), (1 << 63, 8), (1 << 62, 8), ((1 << 63) - 1, 8), ((1 << 63) - 9, 8),
           ((1 << 63) - 8, 8), (EXT4_MAXBYTES - 4, 8), (EXT4_MAXBYTES, 8), (0, 8)]


@pytest.mark.parametrize("host_dir", ["ext4", "tmpfs"], indirect=True)
def test_ftruncate_limits_as_the_host(host_dir):
    """fs/open.c do_sys_ftruncate(): negative is EINVAL; fs/attr.c inode_newsize_ok():
    past s_maxbytes is EFBIG (ext4: 16 TiB - 4 KiB, tmpfs: MAX_LFS_FILESIZE)."""
    fstype = host_fstype(host_dir)
    k, p = fresh()
    fd = p.open(MODEL_DIR[fstype] + "/f", O_RDWR | O_CREAT)
    hfd = os.open(os.path.join(host_dir, "f"), os.O_RDWR | os.O_CREAT)
    try:
        for length in TRUNCATES:
            assert model(p.ftruncate, fd, length) == host(SYS_ftruncate, hfd, length), hex(length)
            assert p.files[fd].inode.size == os.fstat(hfd).st_size
        p.mm.validate()
    finally:
        os.close(hfd)


@pytest.mark.parametrize("host_dir", ["ext4", "tmpfs"], indirect=True)
def test_pread_pwrite_offsets_as_the_host(host_dir):
    """fs/read_write.c: a negative offset is EINVAL, pos + count past LLONG_MAX is
    EINVAL, a write at or past s_maxbytes is EFBIG and one crossing it is short."""
    fstype = host_fstype(host_dir)
    k, p = fresh()
    fd = p.open(MODEL_DIR[fstype] + "/f", O_RDWR | O_CREAT)
    hfd = os.open(os.path.join(host_dir, "f"), os.O_RDWR | os.O_CREAT)
    data = b"ABCDEFGH"
    try:
        for off, n in OFFSETS:
            buf = ctypes.create_string_buffer(data)
            assert model(p.pwrite, fd, data[:n], off) == host(SYS_pwrite64, hfd, buf, n, off), hex(off)
            assert model(p.pwrite, fd, b"", off) == host(SYS_pwrite64, hfd, buf, 0, off), hex(off)
            got = model(p.pread, fd, n, off)
            want = host(SYS_pread64, hfd, buf, n, off)
            assert (got if isinstance(got, str) else ("ok", len(got[1]))) == want, hex(off)
            if want != ("ok", 0) and not isinstance(want, str):
                assert got[1] == buf.raw[:want[1]]
            assert p.files[fd].inode.size == os.fstat(hfd).st_size, hex(off)
        huge = ctypes.create_string_buffer(8)
        assert model(p.pread, fd, 1 << 63, 0) == host(SYS_pread64, hfd, huge, 1 << 63, 0) == "EFAULT"
    finally:
        os.close(hfd)


def test_pwrite_with_o_append_writes_at_the_end(tmp_path):
    """mm/filemap.c generic_write_checks_count(): IOCB_APPEND takes i_size, whatever
    the offset says (the BUGS section of pwrite(2))."""
    k, p = fresh()
    k.fs.create("/tmp/a", b"0123456789")
    fd = p.open("/tmp/a", O_RDWR | O_APPEND)
    assert p.pwrite(fd, b"yyy", 2) == 3
    path = tmp_path / "a"
    path.write_bytes(b"0123456789")
    hfd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        os.pwrite(hfd, b"yyy", 2)
    finally:
        os.close(hfd)
    assert k.fs.read("/tmp/a") == path.read_bytes() == b"0123456789yyy"


def test_errno_order_of_the_file_helpers(tmp_path):
    """A negative length or offset is EINVAL before the fd is looked at; pipes cannot
    pread/pwrite (ESPIPE); a directory reads EISDIR; only a regular file open for
    writing truncates (EINVAL)."""
    k, p = fresh()
    r, w = p.pipe()
    hr, hw = os.pipe()
    hdir = os.open(tmp_path, os.O_RDONLY)
    mdir = p.open("/tmp", O_RDONLY)
    k.fs.create("/tmp/ro", b"x")
    mro = p.open("/tmp/ro", O_RDONLY)
    (tmp_path / "ro").write_bytes(b"x")
    hro = os.open(tmp_path / "ro", os.O_RDONLY)
    buf = ctypes.create_string_buffer(8)
    try:
        assert model(p.ftruncate, 999, -1) == host(SYS_ftruncate, 999, -1) == "EINVAL"
        assert model(p.pread, 999, 8, -1) == host(SYS_pread64, 999, buf, 8, -1) == "EINVAL"
        assert model(p.pwrite, 999, b"x", -1) == host(SYS_pwrite64, 999, buf, 1, -1) == "EINVAL"
        assert model(p.ftruncate, 999, 0) == host(SYS_ftruncate, 999, 0) == "EBADF"
        assert model(p.pread, r, 8, 0) == host(SYS_pread64, hr, buf, 8, 0) == "ESPIPE"
        assert model(p.pwrite, w, b"x", 0) == host(SYS_pwrite64, hw, buf, 1, 0) == "ESPIPE"
        assert model(p.pread, mdir, 8, 0) == host(SYS_pread64, hdir, buf, 8, 0) == "EISDIR"
        assert model(p.ftruncate, mdir, 0) == host(SYS_ftruncate, hdir, 0) == "EINVAL"
        assert model(p.ftruncate, mro, 0) == host(SYS_ftruncate, hro, 0) == "EINVAL"
        assert model(p.pwrite, mro, b"x", 0) == host(SYS_pwrite64, hro, buf, 1, 0) == "EBADF"
    finally:
        for h in (hr, hw, hdir, hro):
            os.close(h)


def test_ftruncate_of_an_append_only_file_is_eperm():
    """fs/open.c do_ftruncate(): IS_APPEND -> EPERM (checked on the host with chattr +a
    on ext4 while writing this test; the model's files are made append-only directly)."""
    k, p = fresh()
    k.fs.create("/tmp/log", b"abc").append_only = True
    fd = p.open("/tmp/log", vmsim.O_WRONLY | O_APPEND)
    assert model(p.ftruncate, fd, 0) == "EPERM"
    assert model(p.ftruncate, fd, -1) == "EINVAL"
    assert k.fs.read("/tmp/log") == b"abc"


# --------------------------------------------------------------------------- after exit

def _calls_after_exit(p, fd, a):
    return [
        (p.mmap, (0, 1 << 30, RW, ANON)), (p.munmap, (a, PAGE)), (p.mprotect, (a, PAGE, 0)),
        (p.pkey_mprotect, (a, PAGE, 0, 0)), (p.pkey_alloc, ()), (p.pkey_free, (1,)),
        (p.mremap, (a, PAGE, 2 * PAGE, 1)), (p.mseal, (a, PAGE)), (p.madvise, (a, PAGE, 4)),
        (p.mlock, (a, PAGE)), (p.mlock2, (a, PAGE, 1)), (p.munlock, (a, PAGE)),
        (p.brk, (0,)), (p.personality, (0xFFFFFFFF,)), (p.prctl, (65,)),
        (p.open, ("/tmp/f",)), (p.close, (fd,)), (p.dup, (fd,)), (p.pipe, ()),
        (p.ftruncate, (fd, 0)), (p.pread, (fd, 1, 0)), (p.pwrite, (fd, b"x", 0)),
        (p.unlink, ("/tmp/f",)), (p.ioctl, (fd, FIOCLEX)), (p.getrlimit, (7,)),
        (p.setrlimit, (7, 10)), (p.read, (a, 1)), (p.write, (a, b"x")), (p.touch, (a,)),
        (p.fork, ()), (p.exit, ()),
    ]


def test_an_exited_process_makes_no_calls():
    """The task is gone: every syscall and memory access raises ProcessLookupError
    (ESRCH), charges nothing and creates nothing; the views show the empty mm."""
    k, p = fresh()
    fd = p.open("/tmp/f", O_RDWR | O_CREAT)
    a = p.mmap(0, 4 * PAGE, RW, ANON)
    other = k.spawn()
    p.exit()
    assert k.committed == 0 and p.pid not in k.processes
    processes, inodes = dict(k.processes), sorted(k.fs.inodes)
    for method, args in _calls_after_exit(p, fd, a):
        with pytest.raises(ProcessLookupError) as info:
            method(*args)
        assert info.value.errno == errno.ESRCH, method.__name__
        assert k.committed == 0 and k.processes == processes, method.__name__
        assert sorted(k.fs.inodes) == inodes
    assert p.maps().count("\n") == 1 and p.vmas() == [] and p.files == {}
    p.mm.validate()
    other.mm.validate()


def test_exit_releases_every_charge():
    k, p = fresh()
    p.mmap(0, 1 << 30, RW, ANON)
    child = p.fork()
    assert k.committed == 2 * (1 << 30) // PAGE
    p.exit()
    child.exit()
    assert k.committed == 0 and k.processes == {}
