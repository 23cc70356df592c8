"""/proc/PID/mem (fs/proc/base.c mem_rw() -> mm/memory.c __access_remote_vm()): the
way debuggers read and write a process's memory, and so the call site of
vm_operations_struct->access.

The first part runs each case twice, on this machine's kernel (os.pread/os.pwrite on
the test process's own /proc/self/mem, mappings made with ctypes) and on the model,
and compares what they answer: the bytes, the counts and the errnos (addresses differ,
so no case returns one). The second part reads and writes an SGX enclave through
/proc/self/mem in the model (sgx_vma_access(): EDBGRD/EDBGWR on a debug enclave).
"""

from __future__ import annotations

import ast
import ctypes
import errno
import os
import platform
import struct
import time

import pytest

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_HUGETLB,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    O_APPEND,
    O_DIRECTORY,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from vmsim.arch.x86 import vdso
from vmsim.arch.x86.sgx.defs import EEXIT, SGX_SECINFO_R, SGX_SECINFO_REG
from vmsim.enclave import loader
from vmsim.enclave import signing as S
from vmsim.enclave.image import EnclaveImage

P = 4096
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
MADV_GUARD_INSTALL = 102
NR_MSEAL = 462
FIONREAD = 0x541B

LIVE = platform.system() == "Linux" and platform.machine() == "x86_64" and \
    os.path.exists("/proc/self/mem")


def outcome(fn, *args):
    """What a call answers: its result, or the errno's name."""
    try:
        return fn(*args)
    except OSError as e:
        return errno.errorcode[e.errno]


# --- the two executors -----------------------------------------------------------------

class Host:
    """This machine's kernel: the test process's own memory and /proc/self/mem."""

    def __init__(self, tmp_path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mmap.restype = ctypes.c_void_p
        self.libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                   ctypes.c_int, ctypes.c_int, ctypes.c_long]
        self.libc.syscall.restype = ctypes.c_long
        self.libc.syscall.argtypes = [ctypes.c_long] + [ctypes.c_ulong] * 4
        self.tmp = tmp_path
        self.fds: list[int] = []
        self.maps: list[tuple[int, int]] = []
        self.mem = self.open("/proc/self/mem", os.O_RDWR)

    def _check(self, result: int) -> int:
        if result == -1 or result == ctypes.c_void_p(-1).value:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return result

    def mmap(self, length, prot, flags, fd=-1) -> int:
        addr = self._check(self.libc.mmap(0, length, prot, flags, fd, 0))
        self.maps.append((addr, length))
        return addr

    def munmap(self, addr, length):
        self._check(self.libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(length)))

    def mprotect(self, addr, length, prot):
        self._check(self.libc.mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(length), prot))

    def madvise(self, addr, length, advice):
        self._check(self.libc.syscall(28, addr, length, advice, 0))

    def mseal(self, addr, length):
        self._check(self.libc.syscall(NR_MSEAL, addr, length, 0, 0))

    def store(self, addr, data):
        ctypes.memmove(addr, data, len(data))

    def load(self, addr, n) -> bytes:
        return ctypes.string_at(addr, n)

    def file(self, data: bytes) -> str:
        path = self.tmp / "f"
        path.write_bytes(data)
        return str(path)

    def file_contents(self, path) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def open(self, path, flags) -> int:
        fd = os.open(path, flags)
        self.fds.append(fd)
        return fd

    def ftruncate(self, fd, length):
        os.ftruncate(fd, length)

    def pread(self, fd, n, pos):
        return os.pread(fd, n, pos)

    def pwrite(self, fd, data, pos):
        return os.pwrite(fd, data, pos)

    def stack(self) -> tuple[int, int]:
        with open("/proc/self/maps") as f:
            line = next(line for line in f if line.rstrip().endswith("[stack]"))
        start, end = line.split()[0].split("-")
        return int(start, 16), int(end, 16)

    def close(self):
        for fd in self.fds:
            os.close(fd)
        for addr, length in self.maps:
            self.libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(length))


class Model:
    """The model: one process with a stack, the same calls."""

    def __init__(self, kw):
        self.k = vmsim.Kernel(**kw)
        self.p = self.k.spawn(stack=True)
        self.mem = self.p.open("/proc/self/mem", O_RDWR)

    def mmap(self, length, prot, flags, fd=-1) -> int:
        return self.p.mmap(0, length, prot, flags, fd, 0)

    def munmap(self, addr, length):
        self.p.munmap(addr, length)

    def mprotect(self, addr, length, prot):
        self.p.mprotect(addr, length, prot)

    def madvise(self, addr, length, advice):
        self.p.madvise(addr, length, advice)

    def mseal(self, addr, length):
        self.p.mseal(addr, length)

    def store(self, addr, data):
        self.p.write(addr, data)

    def load(self, addr, n) -> bytes:
        return self.p.read(addr, n)

    def file(self, data: bytes) -> str:
        self.k.fs.create("/tmp/f", data)
        return "/tmp/f"

    def file_contents(self, path) -> bytes:
        return self.k.fs.read(path)

    def open(self, path, flags) -> int:
        return self.p.open(path, flags)

    def ftruncate(self, fd, length):
        self.p.ftruncate(fd, length)

    def pread(self, fd, n, pos):
        return self.p.pread(fd, n, pos)

    def pwrite(self, fd, data, pos):
        return self.p.pwrite(fd, data, pos)

    def stack(self) -> tuple[int, int]:
        vma = next(v for v in self.p.vmas() if v.name == "[stack]")
        return vma.start, vma.end

    def close(self):
        self.p.mm.validate()


# --- the cases: each returns what it saw, with no address in it ------------------------

def case_anonymous_memory(x):
    """Bytes the process stored, a page never touched (zeros), a write the process then
    sees."""
    a = x.mmap(2 * P, RW, ANON)
    x.store(a, b"hello")
    return [outcome(x.pread, x.mem, 5, a), outcome(x.pread, x.mem, 4, a + P),
            outcome(x.pwrite, x.mem, b"HE", a), x.load(a, 5)]


def case_short_counts_and_eio(x):
    """mem_rw() moves a page-sized piece at a time whatever the alignment: a read or
    write running into a hole is short; one starting in it is EIO."""
    a = x.mmap(3 * P, RW, ANON)
    x.munmap(a + 2 * P, P)
    read = outcome(x.pread, x.mem, 2 * P, a + P + 8)
    return [len(read) if isinstance(read, bytes) else read,
            outcome(x.pread, x.mem, 4, a + 2 * P),
            outcome(x.pwrite, x.mem, b"x" * (P + 16), a + P - 8),
            outcome(x.pwrite, x.mem, b"x", a + 2 * P),
            x.load(a + 2 * P - 8, 8)]


def case_force_on_private_mappings(x):
    """FOLL_FORCE: a read-only private mapping is written (COW); a PROT_NONE one is read
    and written."""
    ro = x.mmap(P, PROT_READ, ANON)
    none = x.mmap(P, PROT_NONE, ANON)
    out = [outcome(x.pwrite, x.mem, b"cow", ro), x.load(ro, 3),
           outcome(x.pread, x.mem, 4, none), outcome(x.pwrite, x.mem, b"nn", none),
           outcome(x.pread, x.mem, 4, none)]
    x.mprotect(none, P, PROT_READ)
    return out + [x.load(none, 4)]


def case_shared_mappings_without_write(x):
    """A shared mapping without VM_WRITE is no COW mapping: writes are EIO, reads work."""
    ro = x.mmap(P, PROT_READ, MAP_SHARED | MAP_ANONYMOUS)
    none = x.mmap(P, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS)
    return [outcome(x.pwrite, x.mem, b"s", ro), outcome(x.pread, x.mem, 1, ro),
            outcome(x.pread, x.mem, 1, none), outcome(x.pwrite, x.mem, b"s", none)]


def case_file_mappings(x):
    """A breakpoint in a private read-only text mapping lands in a COW copy, never in the
    file; a shared read-only mapping is not written (EIO), whatever the file's open mode;
    a page wholly past EOF is EIO."""
    path = x.file(b"filedata" * 1024)
    rdonly, rdwr = x.open(path, O_RDONLY), x.open(path, O_RDWR)
    shared = x.mmap(P, PROT_READ, MAP_SHARED, rdonly)
    text = x.mmap(P, PROT_READ | PROT_EXEC, MAP_PRIVATE, rdonly)
    shared_rw_file = x.mmap(P, PROT_READ, MAP_SHARED, rdwr)
    two = x.mmap(2 * P, PROT_READ, MAP_PRIVATE, rdonly)
    out = [outcome(x.pwrite, x.mem, b"Z", shared), outcome(x.pread, x.mem, 8, shared),
           outcome(x.pwrite, x.mem, b"\xcc", text), outcome(x.pread, x.mem, 8, text),
           outcome(x.pwrite, x.mem, b"Z", shared_rw_file), x.file_contents(path)[:8]]
    x.ftruncate(rdwr, 100)
    return out + [outcome(x.pread, x.mem, 4, two + P), outcome(x.pread, x.mem, 4, two)]


def case_positions(x):
    """Unsigned offsets: past TASK_SIZE and across LLONG_MAX is EIO, not EINVAL; a
    negative position is EINVAL (ksys_pread64()); nothing to move is 0 anywhere."""
    a = x.mmap(P, RW, ANON)
    x.munmap(a, P)
    return [outcome(x.pread, x.mem, 4, 1 << 47), outcome(x.pread, x.mem, 4, 0x7FFFFFFFFFFFFF00),
            outcome(x.pread, x.mem, P, (1 << 63) - 100), outcome(x.pread, x.mem, 4, -5),
            outcome(x.pwrite, x.mem, b"x", -5), outcome(x.pread, x.mem, 0, a),
            outcome(x.pwrite, x.mem, b"", a)]


def case_open_modes(x):
    """No ->mmap (ENODEV); the access mode is enforced (EBADF); O_TRUNC is accepted;
    O_APPEND does not move a pwrite; O_DIRECTORY is ENOTDIR."""
    a = x.mmap(P, RW, ANON)
    x.store(a, b"hello")
    rdonly = x.open("/proc/self/mem", O_RDONLY)
    wronly = x.open("/proc/self/mem", O_WRONLY)
    append = x.open("/proc/self/mem", O_RDWR | O_APPEND)
    return [outcome(x.mmap, P, PROT_READ, MAP_PRIVATE, x.mem),
            outcome(x.mmap, P, PROT_READ, MAP_SHARED, x.mem),
            outcome(x.pwrite, rdonly, b"x", a), outcome(x.pread, wronly, 1, a),
            isinstance(outcome(x.open, "/proc/self/mem", O_RDWR | O_TRUNC), int),
            outcome(x.pwrite, append, b"AP", a), x.load(a, 5),
            outcome(x.open, "/proc/self/mem", O_RDONLY | O_DIRECTORY)]


def case_guards_seals(x):
    """A guard region is EIO (a short count when reached); mseal does not stop a forced
    write to a sealed read-only private mapping."""
    g = x.mmap(3 * P, RW, ANON)
    x.madvise(g + P, P, MADV_GUARD_INSTALL)
    sealed = x.mmap(P, PROT_READ, ANON)
    x.mseal(sealed, P)
    read = outcome(x.pread, x.mem, 2 * P, g)
    return [outcome(x.pread, x.mem, 8, g + P), len(read) if isinstance(read, bytes) else read,
            outcome(x.pwrite, x.mem, b"x", g + P),
            outcome(x.pwrite, x.mem, b"s", sealed), outcome(x.pread, x.mem, 1, sealed)]


def case_hugetlb_without_pages(x):
    """No huge pages (vm.nr_hugepages = 0): a MAP_NORESERVE hugetlb mapping is EIO."""
    h = x.mmap(2 << 20, RW, ANON | MAP_HUGETLB | MAP_NORESERVE)
    return [outcome(x.pread, x.mem, 4, h), outcome(x.pwrite, x.mem, b"x", h)]


def case_stack_growth(x):
    """__access_remote_vm() grows the stack down to an address below it (expand_stack()),
    as a fault would."""
    start, end = x.stack()
    out = [outcome(x.pread, x.mem, 4, start - 64 * P)]
    new_start, new_end = x.stack()
    return out + [(start - new_start) // P, new_end == end]


CASES = [case_anonymous_memory, case_short_counts_and_eio, case_force_on_private_mappings,
         case_shared_mappings_without_write, case_file_mappings, case_positions,
         case_open_modes, case_guards_seals, case_hugetlb_without_pages, case_stack_growth]


@pytest.mark.skipif(not LIVE, reason="needs Linux x86_64 with /proc/self/mem")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__[5:])
def test_model_answers_as_this_kernel(case, kw, tmp_path):
    host, model = Host(tmp_path), Model(kw)
    try:
        expected = case(host)
    finally:
        host.close()
    try:
        assert case(model) == expected
    finally:
        model.close()


# --- the mm taken at open: fork, exit, execve, another pid -------------------------------

def wait_for_exec(pid: int, comm: str) -> None:
    """Until the process runs the program `comm` (its /proc/PID/comm), at most 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() == comm:
                return
        time.sleep(0.01)
    raise TimeoutError(f"pid {pid} did not exec {comm}")


def lifecycle_host() -> list:
    """The same steps on this machine, with fork(2) and a pipe for the child's answers."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    a = libc.mmap(0, P, RW, ANON, -1, 0)
    ctypes.memmove(a, b"parent", 6)
    mem = os.open("/proc/self/mem", os.O_RDWR)
    out = []
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ctypes.memmove(a, b"child!", 6)
        own = os.open("/proc/self/mem", os.O_RDWR)
        seen = [outcome(os.pread, mem, 6, a), outcome(os.pread, own, 6, a),
                outcome(os.pwrite, mem, b"PARENT", a)]
        os.write(w, repr(seen).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    out += ast.literal_eval(os.read(r, 4096).decode()) + [ctypes.string_at(a, 6)]
    for then in ("exit", "execve"):
        pid = os.fork()
        if pid == 0:
            os.read(r, 1)
            if then == "execve":
                os.execv("/bin/sleep", ["sleep", "2"])
            os._exit(0)
        other = os.open(f"/proc/{pid}/mem", os.O_RDWR)
        out += [outcome(os.pread, other, 6, a), outcome(os.pwrite, other, b"KID", a),
                outcome(os.pread, other, 6, a)]
        os.write(w, b"g")
        if then == "exit":
            os.waitpid(pid, 0)
        else:
            wait_for_exec(pid, "sleep")
        out += [outcome(os.pread, other, 6, a), outcome(os.pwrite, other, b"Q", a)]
        if then == "execve":
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(other)
        out.append(outcome(os.open, f"/proc/{pid}/mem", os.O_RDWR))
    os.close(mem)
    libc.munmap(ctypes.c_void_p(a), ctypes.c_size_t(P))
    return out


def lifecycle_model(kw) -> list:
    k = vmsim.Kernel(**kw)
    p = k.spawn(stack=True)
    a = p.mmap(0, P, RW, ANON)
    p.write(a, b"parent")
    mem = p.open("/proc/self/mem", O_RDWR)
    child = p.fork()
    child.write(a, b"child!")
    own = child.open("/proc/self/mem", O_RDWR)
    out = [outcome(child.pread, mem, 6, a), outcome(child.pread, own, 6, a),
           outcome(child.pwrite, mem, b"PARENT", a)]
    child.exit()
    out.append(p.read(a, 6))
    for then in ("exit", "execve"):
        child = p.fork()
        other = p.open(f"/proc/{child.pid}/mem", O_RDWR)
        out += [outcome(p.pread, other, 6, a), outcome(p.pwrite, other, b"KID", a),
                outcome(p.pread, other, 6, a)]
        if then == "execve":
            child.execve("/bin/sleep", ["sleep", "2"])
        else:
            child.exit()
        out += [outcome(p.pread, other, 6, a), outcome(p.pwrite, other, b"Q", a)]
        if child.alive:
            child.exit()
        p.close(other)
        out.append(outcome(p.open, f"/proc/{child.pid}/mem", O_RDWR))
    p.mm.validate()
    return out


@pytest.mark.skipif(not LIVE or not os.path.exists("/bin/sleep"),
                    reason="needs Linux x86_64 with /proc/self/mem and /bin/sleep")
def test_the_mm_is_the_one_taken_at_open(kw):
    """proc_mem_open() keeps the mm of the moment: a forked child reading an inherited
    fd reads its parent; once the target exits or execs, reads give 0 bytes and writes
    0; an exited (reaped) pid is ENOENT. Root opens another pid's mem (ptrace check)."""
    expected = lifecycle_host()
    assert expected[:4] == [b"parent", b"child!", 6, b"PARENT"]
    assert lifecycle_model(kw) == expected


def test_ptrace_check_of_another_uid():
    """mm_access(PTRACE_MODE_ATTACH_FSCREDS): another uid's mem needs CAP_SYS_PTRACE
    (EACCES); one's own is always allowed."""
    k = vmsim.Kernel()
    p = k.spawn()
    other = k.spawn()
    other.uid = 1000
    assert outcome(p.open, f"/proc/{other.pid}/mem", O_RDONLY) == "EACCES"
    assert isinstance(other.open(f"/proc/{other.pid}/mem", O_RDONLY), int)
    p.caps = p.caps | {"CAP_SYS_PTRACE"}
    assert isinstance(p.open(f"/proc/{other.pid}/mem", O_RDONLY), int)
    assert outcome(p.open, "/proc/0123/mem", O_RDONLY) == "ENOENT"


def test_pkru_does_not_apply():
    """A remote access is foreign (arch_vma_access_permitted()): a pkey that denies the
    process access does not stop /proc/self/mem (no PKU on this machine to compare)."""
    k = vmsim.Kernel(pkeys=True)
    p = k.spawn()
    mem = p.open("/proc/self/mem", O_RDWR)
    a = p.mmap(0, P, RW, ANON)
    p.pkey_mprotect(a, P, RW, p.pkey_alloc(0, 1))      # PKEY_DISABLE_ACCESS
    assert p.pwrite(mem, b"pk", a) == 2
    assert p.pread(mem, 2, a) == b"pk"
    with pytest.raises(vmsim.Fault):
        p.read(a, 2)


# --- SGX: a debug enclave read and written as sgx-gdb does -------------------------------

ENCLAVE = """
size = 0x8000
attributes = {attributes}
segment tcs  offset=0x0000 pages=1 type=TCS ossa=0x1000 oentry=0x2000
segment ssa  offset=0x1000 pages=1 perms=RW
segment text offset=0x2000 pages=1 perms=RX fill=0xcc
segment data offset=0x3000 pages=1 perms=RW fill=0x5a
segment ro   offset=0x4000 pages=1 perms=R fill=0x11
"""
TCS, DATA, RO, HOLE = 0x0000, 0x3000, 0x4000, 0x5000


@pytest.fixture(scope="module")
def key():
    return S.generate_key()


def load(key, debug: bool):
    """A process with the enclave loaded (kselftest loader) and /proc/self/mem open."""
    k = vmsim.Kernel()
    p = k.spawn(stack=True)
    attributes = "MODE64BIT|DEBUG" if debug else "MODE64BIT"
    loaded = loader.kselftest_load(p, EnclaveImage.from_text(ENCLAVE.format(attributes=attributes)),
                                   key, probe=False)
    return p, loaded, p.open("/proc/self/mem", O_RDWR)


def enclave_read(p, loaded, addr: int, n: int) -> bytes:
    """What the enclave itself reads at addr (EENTER at its TCS, a read, EEXIT)."""
    out: list[bytes] = []
    run = vdso.SgxEnclaveRun(tcs=loaded.base + TCS)
    assert vdso.enter_enclave(p, run, program=lambda ctx: out.append(ctx.read(addr, n))) == 0
    assert run.function == EEXIT
    return out[0]


def test_debug_enclave_reads_give_the_enclave_data(key):
    """EDBGRD, a word at a time: aligned, unaligned, across words and pages. A piece
    is checked against the VMA of its first byte (sgx_vma_access() gets that VMA): from
    the RW data page into the R page it is beyond that page's intent, EIO."""
    p, loaded, mem = load(key, debug=True)
    base = loaded.base
    assert p.pread(mem, 8, base + DATA) == b"\x5a" * 8
    assert p.pread(mem, 13, base + 0x2003) == b"\xcc" * 13
    assert p.pread(mem, 8, base + 0x1000 - 4) == bytes(8)     # TCS (rw) into SSA (rw)
    assert outcome(p.pread, mem, 8, base + RO - 4) == "EIO"
    assert p.pread(mem, 2 * P, base + DATA) == b"\x5a" * P + b"\x11" * P
    assert p.read(base + DATA, 8) != b"\x5a" * 8        # outside enclave mode: abort page
    p.mm.validate()


def test_debug_enclave_writes_land(key):
    """EDBGWR of the whole modified word: the enclave sees the bytes, its neighbours keep
    theirs; a page the VMA cannot write (RO, mapped PROT_READ) is written all the same:
    the driver checks the VMA against the intent, not the write."""
    p, loaded, mem = load(key, debug=True)
    base = loaded.base
    assert p.pwrite(mem, b"\x01\x02\x03", base + DATA + 5) == 3
    assert enclave_read(p, loaded, base + DATA, 16) == b"\x5a" * 5 + b"\x01\x02\x03" + b"\x5a" * 8
    assert p.pwrite(mem, b"ro", base + RO) == 2
    assert p.pread(mem, 3, base + RO) == b"ro\x11"
    p.mm.validate()


def test_debug_enclave_holes_and_partial_pages(key):
    """sgx_vma_access() answers all or nothing per call: a piece that reaches a hole (a
    page never added, mapped from the device) is -EFAULT whole, so a read ending in it is
    EIO; a read of whole pages stops short at it."""
    p, loaded, mem = load(key, debug=True)
    base = loaded.base
    p.mmap(base + HOLE, P, RW, MAP_SHARED | MAP_FIXED, loaded.dev.fd, 0)
    assert outcome(p.pread, mem, 8, base + HOLE - 4) == "EIO"
    assert outcome(p.pread, mem, 8, base + HOLE) == "EIO"
    assert p.pread(mem, 2 * P, base + RO) == b"\x11" * P
    assert outcome(p.pwrite, mem, b"w" * 8, base + HOLE - 4) == "EIO"
    assert p.pread(mem, 4, base + HOLE - 4) == b"wwww"     # the first word was written


def test_debug_enclave_tcs_only_flags_is_writable(key):
    """EDBGRD reads a TCS; EDBGWR writes only its FLAGS word (offset 8): any other word is
    #GP, -EIO from the driver, EIO here, after the words before it were written."""
    p, loaded, mem = load(key, debug=True)
    tcs = loaded.base + TCS
    ossa = p.pread(mem, 8, tcs + 16)
    assert struct.unpack("<Q", ossa)[0] == 0x1000
    assert p.pwrite(mem, struct.pack("<Q", 1), tcs + 8) == 8
    assert p.pread(mem, 8, tcs + 8) == struct.pack("<Q", 1)
    assert outcome(p.pwrite, mem, bytes(8), tcs + 16) == "EIO"
    assert outcome(p.pwrite, mem, struct.pack("<QQ", 3, 0), tcs + 8) == "EIO"
    assert p.pread(mem, 16, tcs + 8) == struct.pack("<Q", 3) + ossa


def test_non_debug_enclave_is_eio(key):
    """sgx_vma_access() is -EFAULT without SGX_ENCL_DEBUG: nothing copied, EIO."""
    p, loaded, mem = load(key, debug=False)
    base = loaded.base
    assert outcome(p.pread, mem, 8, base + DATA) == "EIO"
    assert outcome(p.pwrite, mem, b"x", base + DATA) == "EIO"
    assert outcome(p.pread, mem, 2 * P, base + TCS) == "EIO"


def test_vma_beyond_the_intent_is_eio():
    """The intent check of sgx_encl_load_page_in_vma(): a VMA with more permissions than
    the page was added with (mapped RW over the hole before ADD_PAGES with R) is -EFAULT,
    EIO here; once mprotect brings the VMA within the intent, the page reads."""
    k = vmsim.Kernel()
    p = k.spawn(stack=True)
    image = EnclaveImage.from_text(ENCLAVE.format(attributes="MODE64BIT|DEBUG"))
    dev = loader.SgxDevice(p)
    base = loader.reserve_aligned(p, image.size)
    dev.create(image.secs(base))
    p.mmap(base + RO, P, RW, MAP_SHARED | MAP_FIXED, dev.fd, 0)
    src = p.mmap(0, P, RW, ANON)
    p.write(src, b"\x11" * P)
    dev.add_pages(src, RO, P, SGX_SECINFO_REG | SGX_SECINFO_R)
    mem = p.open("/proc/self/mem", O_RDWR)
    assert outcome(p.pread, mem, 4, base + RO) == "EIO"
    p.mprotect(base + RO, P, PROT_READ)
    assert p.pread(mem, 4, base + RO) == b"\x11" * 4
    p.mm.validate()
