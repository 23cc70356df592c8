"""A process: the syscall surface, its file table, personality, PKRU, rlimits, fork
and exit.

Each syscall method reinterprets its arguments as the x86_64 syscall ABI does
(unsigned 64-bit addresses and lengths, 32-bit ints, signed 64-bit file offsets) and
calls the function that mirrors the kernel's. Failures raise OSError with the kernel's
errno. An argument of the wrong Python type (a float where the ABI has an integer,
anything but a bytes-like object where it has a buffer) raises TypeError before the
call has any effect; bool, an int subclass, is the integer 0 or 1, as C converts it.
Once the process has exited, every syscall and memory access raises
ProcessLookupError (ESRCH): the task is gone.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Sequence
from typing import Concatenate, NamedTuple, ParamSpec, Protocol, TypeVar

from .arch.x86.ptrace import PtRegs
from .errors import EBADF, EFAULT, EINVAL, EMFILE, ENOTDIR, EPERM, ESRCH, kerr
from .fs import memfd
from .fs.exec import ExecBases, do_execveat_common
from .fs.file import FMODE_PATH, S_IFDIR, File
from .fs.open import file_status_flags, set_file_status_flags
from .fs.vfs import MAX_RW_COUNT, PIDFD_OPS, Vfs, do_ftruncate, do_vfs_ioctl, vfs_pread, vfs_pwrite
from .ipc import shm
from .ipc.shm import ShmIds
from .mm import fault, madvise, mlock, mmap, mprotect, mremap, mseal, msync, pkeys, procfs
from .mm.flags import VM_MERGEABLE, vma_pkey, vmflags_mnemonics
from .mm.fork import dup_mmap, exit_mmap
from .mm.madvise import ksm_compatible
from .mm.mm_struct import MmStruct
from .mm.munmap import do_vmi_munmap
from .task.signal_types import SignalStruct
from .task.timekeeping import Timekeeper
from .uapi import (
    AT_FDCWD,
    AT_REMOVEDIR,
    F_ADD_SEALS,
    F_DUPFD,
    F_DUPFD_CLOEXEC,
    F_GET_SEALS,
    F_GETFD,
    F_GETFL,
    F_SETFD,
    F_SETFL,
    FD_CLOEXEC,
    FIOCLEX,
    FIONCLEX,
    MADV_COLD,
    MADV_COLLAPSE,
    MADV_PAGEOUT,
    MADV_WILLNEED,
    MFD_CLOEXEC,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    PAGE_SHIFT,
    PIDFD_NONBLOCK,
    PIDFD_THREAD,
    PR_GET_MDWE,
    PR_GET_MEMORY_MERGE,
    PR_MDWE_NO_INHERIT,
    PR_MDWE_REFUSE_EXEC_GAIN,
    PR_SET_MDWE,
    PR_SET_MEMORY_MERGE,
    PR_SET_VMA,
    RLIM_NLIMITS,
    RLIMIT_NOFILE,
    U64,
    UIO_MAXIOV,
)

#: fs/file.c sysctl_nr_open: no RLIMIT_NOFILE may exceed it (fs.nr_open)
NR_OPEN = 1 << 20
#: mm/madvise.c process_madvise_remote_valid(): the advice another process may be given
REMOTE_MADVISE = frozenset({MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED, MADV_COLLAPSE})
#: fs/fcntl.c check_fcntl_cmd(): the commands an O_PATH file answers
O_PATH_FCNTL = frozenset({F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL})
#: struct iovec: iov_base, iov_len
IOVEC = struct.Struct("<QQ")


class KernelView(Protocol):
    """What a Process uses of its Kernel. kernel.py imports this module, so the type
    is structural: vmsim.Kernel is the one implementation."""

    fs: Vfs
    pkeys: bool
    uid: int
    capabilities: frozenset[str]
    rlimits: dict[int, tuple[int, int]]
    processes: dict[int, Process]
    task_size: int
    memfd_noexec: int
    shm: ShmIds
    clock: Timekeeper
    unknown_syscalls: list[int]

    def _new_process(self, parent: Process | None = None) -> Process: ...

    def alloc_pid(self) -> int: ...


class VmaView(NamedTuple):
    """A read-only view of one VMA, as Process.vmas() gives it."""

    start: int
    end: int
    flags: int
    pgoff: int
    perms: str
    name: str | None
    pkey: int
    file: str | None
    anon_vma: int | None
    vmflags: list[str]
    offset: int
    dev: tuple[int, int]
    inode: int


def _integer(x: object) -> int:
    if not isinstance(x, int):
        raise TypeError(f"expected an integer, got {type(x).__name__}")
    return x


def _ulong(x: object) -> int:
    """unsigned long, size_t: addresses, lengths, flags."""
    return _integer(x) & U64


def _loff(x: object) -> int:
    """loff_t, off_t: a signed 64-bit file position or size."""
    return ((_integer(x) + (1 << 63)) & U64) - (1 << 63)


def _int(x: object) -> int:
    return ((_integer(x) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _uint(x: object) -> int:
    return _integer(x) & 0xFFFFFFFF


def _buffer(x: object) -> bytes:
    """A user buffer the syscall reads: bytes, bytearray or memoryview."""
    if not isinstance(x, bytes | bytearray | memoryview):
        raise TypeError(f"expected a bytes-like buffer, got {type(x).__name__}")
    return bytes(x)


def _path(x: object) -> str:
    if not isinstance(x, str):
        raise TypeError(f"expected a path (str), got {type(x).__name__}")
    return x


def _c_strings(xs: object) -> list[bytes]:
    """An argv or envp: a sequence of str (encoded as os.fsencode() does) or bytes,
    none with a NUL inside (a C string ends at its first NUL)."""
    if isinstance(xs, str | bytes) or not isinstance(xs, Sequence):
        raise TypeError(f"expected a sequence of strings, got {type(xs).__name__}")
    out = []
    for x in xs:
        if not isinstance(x, str | bytes):
            raise TypeError(f"expected str or bytes, got {type(x).__name__}")
        b = os.fsencode(x)
        if b"\0" in b:
            raise ValueError("embedded NUL in an argument or environment string")
        out.append(b)
    return out


P = ParamSpec("P")
R = TypeVar("R")


def _syscall(method: Callable[Concatenate[Process, P], R]) -> Callable[Concatenate[Process, P], R]:
    """A syscall entry: a task that has exited makes no more calls (ESRCH), so an exited
    process changes nothing and is charged for nothing."""
    @functools.wraps(method)
    def enter(self: Process, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if not self.alive:
            raise kerr(ESRCH)
        return method(self, *args, **kwargs)
    return enter


class Process:
    """One single-threaded process of a Kernel.

    Invariants: `files` maps open fds to File objects holding one reference each;
    `mm.owner is self`; `pkru` is this thread's PKRU register.
    """

    def __init__(self, kernel: KernelView, pid: int, mm: MmStruct) -> None:
        self.kernel = kernel
        self.pid = pid
        self.mm = mm
        mm.owner = self
        self.files: dict[int, File] = {}
        #: mm->exe_file, the program execve last ran (kept here: the model's mm holds no
        #: files but its VMAs'); while it is set, its file cannot be written (ETXTBSY)
        self.exe_file: File | None = None
        #: the fds marked close-on-exec (the fdtable's close_on_exec bitmap)
        self.close_on_exec: set[int] = set()
        self.persona = 0            # current->personality
        self.pkru = pkeys.INIT_PKRU_VALUE if kernel.pkeys else 0
        self.rlimits = dict(kernel.rlimits)
        self.caps = frozenset(kernel.capabilities)
        self.uid = kernel.uid
        self.map32_begin = 0x40000000
        #: fs_struct: the working directory (an absolute, normalised path the relative
        #: paths of the x86-64 entry start from: fs/namei.py) and the umask
        self.cwd = "/"
        self.umask = 0o022
        self.alive = True
        #: the user registers the program execve last loaded starts from (binfmt_elf's
        #: start_thread()); None before any execve
        self.start_regs: PtRegs | None = None
        #: the thread group's signal state: handlers, shared pending signals, threads,
        #: ITIMER_REAL (signal_struct, sighand_struct; vmsim.task.signal)
        self.signal = SignalStruct()

    # --- credentials and limits ---
    def capable(self, cap: str) -> bool:
        return cap in self.caps

    def rlimit(self, resource: int) -> int:
        return self.rlimits[resource][0]

    @_syscall
    def setrlimit(self, resource: int, cur: int, max: int | None = None) -> None:
        """setrlimit(2): kernel/sys.c do_prlimit(). max None keeps the hard limit.
        EINVAL for a resource past RLIM_NLIMITS or cur > max; EPERM to raise the hard
        limit without CAP_SYS_RESOURCE, or RLIMIT_NOFILE's past fs.nr_open."""
        resource, cur = _uint(resource), _ulong(cur)
        hard = None if max is None else _ulong(max)
        if resource >= RLIM_NLIMITS:
            raise kerr(EINVAL)
        old_hard = self.rlimits[resource][1]
        hard = old_hard if hard is None else hard
        if cur > hard:
            raise kerr(EINVAL)
        if resource == RLIMIT_NOFILE and hard > NR_OPEN:
            raise kerr(EPERM)
        if hard > old_hard and not self.capable("CAP_SYS_RESOURCE"):
            raise kerr(EPERM)
        self.rlimits[resource] = (cur, hard)

    @_syscall
    def getrlimit(self, resource: int) -> tuple[int, int]:
        """getrlimit(2): kernel/sys.c do_prlimit(); EINVAL past RLIM_NLIMITS."""
        resource = _uint(resource)
        if resource >= RLIM_NLIMITS:
            raise kerr(EINVAL)
        return self.rlimits[resource]

    # --- helpers used by mm ---
    def execute_only_pkey(self) -> int:
        return pkeys.execute_only_pkey(self)

    def pkey_is_allocated(self, pkey: int) -> bool:
        return pkeys.mm_pkey_is_allocated(self, pkey)

    # --- memory syscalls ---
    @_syscall
    def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int = -1,
             offset: int = 0) -> int:
        """mmap(2). Cost: O(log n) plus the VMAs replaced."""
        return mmap.sys_mmap(self, _ulong(addr), _ulong(length), _ulong(prot),
                             _ulong(flags), _ulong(fd), _ulong(offset))

    @_syscall
    def munmap(self, addr: int, length: int) -> int:
        """munmap(2). Cost: O(log n + k) for k VMAs unmapped."""
        do_vmi_munmap(self.mm, _ulong(addr), _ulong(length))
        return 0

    @_syscall
    def mprotect(self, addr: int, length: int, prot: int) -> int:
        """mprotect(2). Cost: O(log n) per VMA of the range."""
        mprotect.do_mprotect_pkey(self, _ulong(addr), _ulong(length), _ulong(prot), -1)
        return 0

    @_syscall
    def pkey_mprotect(self, addr: int, length: int, prot: int, pkey: int) -> int:
        mprotect.do_mprotect_pkey(self, _ulong(addr), _ulong(length), _ulong(prot), _int(pkey))
        return 0

    @_syscall
    def pkey_alloc(self, flags: int = 0, access_rights: int = 0) -> int:
        return pkeys.sys_pkey_alloc(self, _ulong(flags), _ulong(access_rights))

    @_syscall
    def pkey_free(self, pkey: int) -> int:
        return pkeys.sys_pkey_free(self, _int(pkey))

    @_syscall
    def mremap(self, old_addr: int, old_len: int, new_len: int, flags: int = 0,
               new_addr: int = 0) -> int:
        return mremap.sys_mremap(self, _ulong(old_addr), _ulong(old_len), _ulong(new_len),
                                 _ulong(flags), _ulong(new_addr))

    @_syscall
    def mseal(self, addr: int, length: int, flags: int = 0) -> int:
        return mseal.do_mseal(self, _ulong(addr), _ulong(length), _ulong(flags))

    @_syscall
    def madvise(self, addr: int, length: int, advice: int) -> int:
        return madvise.do_madvise(self, _ulong(addr), _ulong(length), _int(advice))

    @_syscall
    def mlock(self, addr: int, length: int) -> int:
        return mlock.sys_mlock2(self, _ulong(addr), _ulong(length), 0)

    @_syscall
    def mlock2(self, addr: int, length: int, flags: int = 0) -> int:
        return mlock.sys_mlock2(self, _ulong(addr), _ulong(length), _int(flags) & U64)

    @_syscall
    def munlock(self, addr: int, length: int) -> int:
        return mlock.sys_munlock(self, _ulong(addr), _ulong(length))

    @_syscall
    def mlockall(self, flags: int) -> int:
        """mlockall(2): mm/mlock.c (mlock.sys_mlockall())."""
        return mlock.sys_mlockall(self, _int(flags))

    @_syscall
    def munlockall(self) -> int:
        """munlockall(2): mm/mlock.c (mlock.sys_munlockall())."""
        return mlock.sys_munlockall(self)

    @_syscall
    def msync(self, addr: int, length: int, flags: int) -> int:
        """msync(2): mm/msync.c (msync.sys_msync()). Only its result is observable: it
        changes nothing the model shows."""
        return msync.sys_msync(self, _ulong(addr), _ulong(length), _int(flags))

    @_syscall
    def process_madvise(self, pidfd: int, iovec: int, vlen: int, advice: int,
                        flags: int = 0) -> int:
        """process_madvise(2): mm/madvise.c (6.18): EINVAL for any flag; the vlen struct
        iovec at `iovec` (_import_iovec()); the process of the pidfd (_pidfd_task());
        another process is given only MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED and
        MADV_COLLAPSE (EINVAL), by CAP_SYS_NICE (EPERM), the caller any advice [obs].
        Then vector_madvise(): each range as madvise(2) advises it, in order, up to the
        first error. Returns the bytes of the ranges advised (their iov_len), or that
        error if it was the first range's [obs: partial success]. ptrace access
        (mm_access()) is not modelled: a Kernel's processes share one user."""
        if _uint(flags):
            raise kerr(EINVAL)
        ranges = self._import_iovec(_ulong(iovec), _ulong(vlen) & 0xFFFFFFFF)
        target = self._pidfd_task(pidfd)
        advice = _int(advice)
        if target is not self:
            if advice not in REMOTE_MADVISE:
                raise kerr(EINVAL)
            if not self.capable("CAP_SYS_NICE"):
                raise kerr(EPERM)
        advised = 0
        for start, length in ranges:
            try:
                madvise.do_madvise(target, start, length, advice)
            except OSError:
                if advised:
                    return advised
                raise
            advised += length
        return advised

    def _import_iovec(self, uvec: int, nr_segs: int) -> list[tuple[int, int]]:
        """lib/iov_iter.c import_iovec(): nr_segs struct iovec read at uvec: none for 0;
        EINVAL past UIO_MAXIOV or for a length negative as ssize_t; EFAULT for an array
        the process cannot read or a range that is not all user space (access_ok():
        base + len at most TASK_SIZE [obs]). The lengths are cut to add up to at most
        MAX_RW_COUNT. Returns the (base, len) pairs."""
        if not nr_segs:
            return []
        if nr_segs > UIO_MAXIOV:
            raise kerr(EINVAL)
        if uvec + nr_segs * IOVEC.size > self.kernel.task_size:
            raise kerr(EFAULT)
        iov = []
        for i in range(nr_segs):
            base, length = IOVEC.unpack(fault.copy_from_user(self, uvec + i * IOVEC.size,
                                                             IOVEC.size))
            if length >= 1 << 63:
                raise kerr(EINVAL)
            iov.append((base, length))
        total = 0
        ranges = []
        for base, length in iov:
            if base + length > self.kernel.task_size:
                raise kerr(EFAULT)
            length = min(length, MAX_RW_COUNT - total)
            total += length
            ranges.append((base, length))
        return ranges

    def _pidfd_task(self, pidfd: int) -> Process:
        """kernel/pid.c pidfd_get_task(): the process a pidfd names (EBADF for any other
        file, ESRCH once the process has exited)."""
        file = self._fdget(pidfd)
        if file.f_op is not PIDFD_OPS:
            raise kerr(EBADF)
        task = self.kernel.processes.get(file.private_data)
        if task is None:
            raise kerr(ESRCH)
        return task

    @_syscall
    def brk(self, addr: int) -> int:
        return mmap.sys_brk(self, _ulong(addr))

    @_syscall
    def personality(self, persona: int) -> int:
        """personality(2): returns the old persona; 0xffffffff only queries."""
        persona = _uint(persona)
        old = self.persona
        if persona != 0xFFFFFFFF:
            self.persona = persona
        return old

    @_syscall
    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
              arg5: int = 0) -> int:
        option = _int(option)
        arg2, arg3, arg4, arg5 = (_ulong(a) for a in (arg2, arg3, arg4, arg5))
        mm = self.mm
        if option == PR_SET_MDWE:
            if arg3 or arg4 or arg5:
                raise kerr(EINVAL)
            if arg2 & ~(PR_MDWE_REFUSE_EXEC_GAIN | PR_MDWE_NO_INHERIT):
                raise kerr(EINVAL)
            if arg2 & PR_MDWE_NO_INHERIT and not arg2 & PR_MDWE_REFUSE_EXEC_GAIN:
                raise kerr(EINVAL)
            current = self._mdwe_bits()
            if current and current != arg2:
                raise kerr(EPERM)
            mm.mdwe_no_inherit |= bool(arg2 & PR_MDWE_NO_INHERIT)
            mm.has_mdwe |= bool(arg2 & PR_MDWE_REFUSE_EXEC_GAIN)
            return 0
        if option == PR_GET_MDWE:
            if arg2 or arg3 or arg4 or arg5:
                raise kerr(EINVAL)
            return self._mdwe_bits()
        if option == PR_SET_MEMORY_MERGE:
            if arg3 or arg4 or arg5:
                raise kerr(EINVAL)
            was, mm.merge_any = mm.merge_any, bool(arg2)
            for vma in mm.tree:
                if mm.merge_any and ksm_compatible(vma.flags):
                    vma.flags |= VM_MERGEABLE       # ksm_enable_merge_any()
                elif was and not mm.merge_any:
                    vma.flags &= ~VM_MERGEABLE      # ksm_disable_merge_any(): ksm_del_vmas()
            return 0
        if option == PR_GET_MEMORY_MERGE:
            if arg2 or arg3 or arg4 or arg5:
                raise kerr(EINVAL)
            return int(mm.merge_any)
        if option == PR_SET_VMA:
            raise kerr(EINVAL)          # CONFIG_ANON_VMA_NAME is off on the target
        raise kerr(EINVAL)

    def _mdwe_bits(self) -> int:
        mm = self.mm
        return (PR_MDWE_REFUSE_EXEC_GAIN if mm.has_mdwe else 0) | \
            (PR_MDWE_NO_INHERIT if mm.mdwe_no_inherit else 0)

    # --- files ---
    def _unused_fds(self, n: int) -> list[int]:
        """fs/file.c get_unused_fd_flags(), n times: the n lowest free fds, all below
        RLIMIT_NOFILE (EMFILE)."""
        fds: list[int] = []
        fd = 0
        while len(fds) < n:
            if fd not in self.files:
                fds.append(fd)
            fd += 1
        if fds[-1] >= self.rlimit(RLIMIT_NOFILE):
            raise kerr(EMFILE)
        return fds

    def _file(self, fd: int) -> File:
        """fget_raw(): the open file of fd, O_PATH files included (EBADF)."""
        file = self.files.get(_uint(fd))
        if file is None:
            raise kerr(EBADF)
        return file

    def _fdget(self, fd: int) -> File:
        """fdget(): the open file of fd for I/O; an O_PATH file is EBADF."""
        file = self._file(fd)
        if file.f_mode & FMODE_PATH:
            raise kerr(EBADF)
        return file

    @_syscall
    def open(self, path: str, flags: int = 0, mode: int = 0o666) -> int:
        """open(2): fs/open.c do_sys_openat2(): build_open_flags() refuses O_CREAT with
        O_DIRECTORY (EINVAL) and takes the umask from a new file's mode; a free fd
        (EMFILE), then the file."""
        path, flags, mode = _path(path), _int(flags), _uint(mode) & 0xFFFF     # umode_t
        if flags & O_CREAT and flags & O_DIRECTORY:
            raise kerr(EINVAL)
        (fd,) = self._unused_fds(1)
        self.files[fd] = self.kernel.fs.open(self, path, flags, mode & ~self.umask).get()
        if flags & O_CLOEXEC:
            self.close_on_exec.add(fd)
        return fd

    @_syscall
    def close(self, fd: int) -> int:
        self._file(fd)
        self.close_on_exec.discard(_uint(fd))
        self.files.pop(_uint(fd)).put(self.mm)
        return 0

    @_syscall
    def dup(self, fd: int) -> int:
        """dup(2): fs/file.c: the file (EBADF), then a free fd (EMFILE)."""
        file = self._file(fd)
        (new,) = self._unused_fds(1)
        self.files[new] = file.get()
        return new

    @_syscall
    def pipe(self) -> tuple[int, int]:
        """pipe(2): fs/pipe.c do_pipe2(): both ends, then two free fds (EMFILE)."""
        r, w = self.kernel.fs.pipe()
        rfd, wfd = self._unused_fds(2)
        self.files[rfd], self.files[wfd] = r.get(), w.get()
        return rfd, wfd

    @_syscall
    def ftruncate(self, fd: int, length: int) -> int:
        """ftruncate(2): fs/open.c do_sys_ftruncate(): a negative length is EINVAL
        before the fd is looked at; then vfs.do_ftruncate()."""
        fd, length = _uint(fd), _loff(length)
        if length < 0:
            raise kerr(EINVAL)
        do_ftruncate(self, self._fdget(fd), length)
        return 0

    @_syscall
    def pread(self, fd: int, n: int, offset: int) -> bytes:
        """pread64(2) of n bytes into a buffer of the model's: fs/read_write.c
        ksys_pread64(): a negative offset is EINVAL before the fd; then vfs.vfs_pread()."""
        fd, n, offset = _uint(fd), _ulong(n), _loff(offset)
        if offset < 0:
            raise kerr(EINVAL)
        return vfs_pread(self, self._fdget(fd), n, offset)

    @_syscall
    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        """pwrite64(2) of data: fs/read_write.c ksys_pwrite64(): a negative offset is
        EINVAL before the fd; then vfs.vfs_pwrite(). Returns the bytes written."""
        fd, data, offset = _uint(fd), _buffer(data), _loff(offset)
        if offset < 0:
            raise kerr(EINVAL)
        return vfs_pwrite(self, self._fdget(fd), data, offset)

    @_syscall
    def unlink(self, path: str) -> int:
        self.kernel.fs.unlink(_path(path))
        return 0

    @_syscall
    def unlinkat(self, dirfd: int, pathname: str, flags: int = 0) -> int:
        """unlinkat(2): fs/namei.c: EINVAL for flags but AT_REMOVEDIR; with it
        do_rmdir() (Vfs.rmdir), else do_unlinkat() (Vfs.unlink) of the path
        _at_path() resolves. A mapped file removed shows " (deleted)" in maps."""
        dirfd, pathname, flags = _int(dirfd), _path(pathname), _int(flags)
        if flags & ~AT_REMOVEDIR:
            raise kerr(EINVAL)
        path = self._at_path(dirfd, pathname)
        if flags & AT_REMOVEDIR:
            self.kernel.fs.rmdir(path)
        else:
            self.kernel.fs.unlink(path)
        return 0

    def _at_path(self, dirfd: int, path: str) -> str:
        """The path an *at() call names: an absolute one as it is (dirfd unused), a
        relative one below the directory open as dirfd (EBADF, ENOTDIR). The model has
        no working directory: relative to AT_FDCWD, a path stays relative (ENOENT)."""
        if path.startswith("/") or dirfd == AT_FDCWD:
            return path
        base = self._file(dirfd)
        if base.inode.kind != S_IFDIR:
            raise kerr(ENOTDIR)
        return base.path.rstrip("/") + "/" + path

    @_syscall
    def rename(self, oldpath: str, newpath: str) -> int:
        """rename(2): fs/namei.c do_renameat2() (Vfs.rename): a mapped file shows its new
        name in maps, a file the rename replaced its old name and " (deleted)"."""
        self.kernel.fs.rename(_path(oldpath), _path(newpath))
        return 0

    @_syscall
    def memfd_create(self, name: str | None, flags: int = 0) -> int:
        """memfd_create(2): mm/memfd.c (fs/memfd.py): the flags (EINVAL; EACCES under
        vm.memfd_noexec=2), the name (EFAULT for None, EINVAL past 249 bytes), a free fd
        (EMFILE; close-on-exec under MFD_CLOEXEC), then the file (ENODEV for a huge page
        size the CPU lacks). maps shows its mappings as "/memfd:NAME (deleted)"."""
        uname = None if name is None else _path(name)
        flags = memfd.sanitize_flags(_uint(flags), self.kernel.memfd_noexec)
        full_name = memfd.alloc_name(uname)
        (fd,) = self._unused_fds(1)
        self.files[fd] = memfd.memfd_alloc_file(self.kernel.fs, full_name, flags).get()
        if flags & MFD_CLOEXEC:
            self.close_on_exec.add(fd)
        return fd

    @_syscall
    def fcntl(self, fd: int, cmd: int, arg: int = 0) -> int:
        """fcntl(2): fs/fcntl.c: the file of fd (EBADF; an O_PATH one answers only
        O_PATH_FCNTL). F_DUPFD, F_DUPFD_CLOEXEC: a new fd, the lowest from arg;
        F_GETFD, F_SETFD: FD_CLOEXEC; F_GETFL, F_SETFL: the file's status flags
        (fs/open.py); F_ADD_SEALS, F_GET_SEALS: memfd.memfd_fcntl(). Other commands
        (locks, owners, leases, pipe sizes, ...) are not modelled and answer EINVAL, as
        an unknown one does."""
        fd, cmd, arg = _uint(fd), _uint(cmd), _ulong(arg)
        file = self._file(fd)
        if file.f_mode & FMODE_PATH and cmd not in O_PATH_FCNTL:
            raise kerr(EBADF)
        if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
            return self._dupfd_from(file, arg & 0xFFFFFFFF, cmd == F_DUPFD_CLOEXEC)
        if cmd == F_GETFD:
            return FD_CLOEXEC if fd in self.close_on_exec else 0
        if cmd == F_SETFD:
            if arg & FD_CLOEXEC:
                self.close_on_exec.add(fd)
            else:
                self.close_on_exec.discard(fd)
            return 0
        if cmd == F_GETFL:
            return file_status_flags(file)
        if cmd == F_SETFL:
            return set_file_status_flags(file, arg)
        if cmd in (F_ADD_SEALS, F_GET_SEALS):
            mms = (p.mm for p in self.kernel.processes.values())
            return memfd.memfd_fcntl(mms, file, cmd, arg)
        raise kerr(EINVAL)

    def _dupfd_from(self, file: File, start: int, cloexec: bool) -> int:
        """fs/file.c f_dupfd(): EINVAL for a start at or past RLIMIT_NOFILE, then the
        lowest free fd from it (EMFILE)."""
        nofile = self.rlimit(RLIMIT_NOFILE)
        if start >= nofile:
            raise kerr(EINVAL)
        fd = start
        while fd in self.files:
            fd += 1
        if fd >= nofile:
            raise kerr(EMFILE)
        self.files[fd] = file.get()
        if cloexec:
            self.close_on_exec.add(fd)
        return fd

    @_syscall
    def pidfd_open(self, pid: int, flags: int = 0) -> int:
        """pidfd_open(2): kernel/pid.c: EINVAL for flags but PIDFD_NONBLOCK and
        PIDFD_THREAD, or a pid below 1; ESRCH for no live process; then a free fd
        (EMFILE), always close-on-exec [obs]. mmap of it is ENODEV [obs]."""
        pid, flags = _int(pid), _uint(flags)
        if flags & ~(PIDFD_NONBLOCK | PIDFD_THREAD) or pid <= 0:
            raise kerr(EINVAL)
        if pid not in self.kernel.processes:
            raise kerr(ESRCH)
        (fd,) = self._unused_fds(1)
        self.files[fd] = self.kernel.fs.pidfd_file(pid, flags).get()
        self.close_on_exec.add(fd)
        return fd

    # --- System V shared memory (ipc/shm.py) ---
    @_syscall
    def shmget(self, key: int, size: int, shmflg: int) -> int:
        """shmget(2): ipc/shm.c ksys_shmget(). Returns the id."""
        return shm.ksys_shmget(self, _int(key), _ulong(size), _int(shmflg))

    @_syscall
    def shmat(self, shmid: int, shmaddr: int, shmflg: int = 0) -> int:
        """shmat(2): ipc/shm.c do_shmat(). Returns the address."""
        return shm.do_shmat(self, _int(shmid), _ulong(shmaddr), _int(shmflg))

    @_syscall
    def shmdt(self, shmaddr: int) -> int:
        """shmdt(2): ipc/shm.c ksys_shmdt()."""
        return shm.ksys_shmdt(self, _ulong(shmaddr))

    @_syscall
    def shmctl(self, shmid: int, cmd: int, buf: int = 0) -> int:
        """shmctl(2): ipc/shm.c ksys_shmctl(); buf is the address of a struct in the
        process's memory."""
        return shm.ksys_shmctl(self, _int(shmid), _int(cmd), _ulong(buf))

    @_syscall
    def ioctl(self, fd: int, cmd: int, arg: int = 0) -> int:
        """ioctl(2): fs/ioctl.c: fdget() (an O_PATH file is EBADF), then
        vfs.do_vfs_ioctl(): the VFS's own commands, the rest to the driver."""
        fd, cmd, arg = _uint(fd), _uint(cmd), _ulong(arg)
        file = self._fdget(fd)
        if cmd == FIOCLEX:
            self.close_on_exec.add(fd)
        elif cmd == FIONCLEX:
            self.close_on_exec.discard(fd)
        return do_vfs_ioctl(self, file, cmd, arg)

    # --- memory access ---
    @_syscall
    def read(self, addr: int, n: int) -> bytes:
        """Read n bytes as the process would. Raises vmsim.Fault."""
        return fault.access(self, _ulong(addr), _ulong(n), "r")

    @_syscall
    def write(self, addr: int, data: bytes) -> None:
        """Write bytes as the process would. Raises vmsim.Fault."""
        addr, data = _ulong(addr), _buffer(data)
        fault.access(self, addr, len(data), "w", data)

    @_syscall
    def touch(self, addr: int, mode: str = "r") -> None:
        """One access of kind "r", "w" or "x" at addr."""
        addr = _ulong(addr)
        if not isinstance(mode, str):
            raise TypeError(f"expected a mode (str), got {type(mode).__name__}")
        if mode not in ("r", "w", "x"):
            raise ValueError("mode must be 'r', 'w' or 'x'")
        if mode == "w":
            vma = fault.user_fault(self, addr, "w")
            fault.fault_page(self, vma, addr, True)
        else:
            fault.access(self, addr, 1, mode)

    # --- views ---
    def maps(self) -> str:
        """/proc/PID/maps, byte for byte. O(n)."""
        return procfs.show_maps(self.mm)

    def smaps(self) -> str:
        """/proc/PID/smaps. O(n + pages)."""
        return procfs.show_smaps(self.mm, self.kernel.pkeys)

    def vmas(self) -> list[VmaView]:
        """Read-only views of the VMAs, in address order."""
        return [VmaView(v.start, v.end, v.flags, v.pgoff, procfs.perms(v.flags),
                        procfs.vma_name(v), vma_pkey(v.flags),
                        v.file.path if v.file is not None else None,
                        v.anon_vma.id if v.anon_vma is not None else None,
                        vmflags_mnemonics(v.flags),
                        v.pgoff << PAGE_SHIFT if v.file is not None else 0,
                        v.file.inode.dev if v.file is not None else (0, 0),
                        v.file.inode.ino if v.file is not None else 0)
                for v in self.mm.tree]

    # --- lifecycle ---
    @_syscall
    def execve(self, path: str, argv: Sequence[str | bytes],
               envp: Sequence[str | bytes] = (), bases: ExecBases | None = None) -> None:
        """execve(2): fs/exec.c with the ELF loader (vmsim.fs.exec, fs.binfmt_elf): the
        address space becomes the program's (its segments, ld.so, the vDSO, the stack
        with argv, envp and the auxv), close-on-exec fds are closed. A path the model
        lacks is taken from this machine. `bases`: the exec is randomized with these
        quantities instead of drawn ones (fs.exec.ExecBases). Returns nothing; fails with
        ENOENT, EACCES, ETXTBSY, ENOEXEC, E2BIG, ELIBBAD, ...; a failure past the point of
        no return kills the process (it has exited when the OSError is raised)."""
        do_execveat_common(self, _path(path), _c_strings(argv), _c_strings(envp), bases)

    @_syscall
    def fork(self) -> Process:
        """fork(2): kernel/fork.c copy_process(): the file table and dup_mmap();
        returns the child."""
        child = self.kernel._new_process(self)
        for fd, file in self.files.items():
            child.files[fd] = file.get()
        child.close_on_exec = set(self.close_on_exec)
        child.cwd, child.umask = self.cwd, self.umask
        child.exe_file = self.exe_file.get() if self.exe_file is not None else None
        try:
            dup_mmap(self.mm, child.mm)
        except BaseException:
            child.exit()        # copy_process()'s error path: mmput(), the files put
            raise
        return child

    @_syscall
    def exit(self) -> None:
        """exit(2): the task makes no more calls; exit_mmap() (unmapping everything,
        calling ->close), then every fd closed, with the mm held so that no hook calls
        back into it. A hook that broke its contract is raised once all is done."""
        self.alive = False
        with self.mm.held("exit"):
            try:
                exit_mmap(self.mm)
            finally:
                self._close_files()
                if self.exe_file is not None:
                    self.exe_file.put(self.mm)
                    self.exe_file = None
                self.kernel.processes.pop(self.pid, None)

    def _close_files(self) -> None:
        """exit_files(): put every open file, the first failure raised after the last."""
        failure = None
        for fd in list(self.files):
            try:
                self.files.pop(fd).put(self.mm)
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
