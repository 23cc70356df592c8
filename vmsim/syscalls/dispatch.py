"""The one dispatcher: a decoded call applied to a vmsim Process, as
arch/x86/entry/syscall_64.c's sys_call_table hands a syscall to its handler, and its
result as user space sees it.

    dispatch(p, "mprotect", [addr, 4096, PROT_READ])    -> 0, or raises OSError
    outcome(p, "mmap", [0, 4096, 3, 0x22, -1, 0])       -> ("ok", 0x7ffff7ff7000)
    outcome(p, "touch", [addr, "w"])                    -> ("sig", "SIGSEGV", "SEGV_ACCERR", addr)

Arguments are the values vmsim.syscalls.strace binds (ints, str paths, bytes), or those
the x86-64 entry reads from a thread's registers (vmsim.syscalls.table from_registers:
ints, the user addresses of buffers and structs, walked paths). The calls a Process
does not have are mapped here: pwrite64 (bytes from a trace, or a user buffer), mkdir
and mount (the VFS), fork and vfork (the child's pid; the model has no shared-mm
child, so a vfork child gets a copy, as the oracle's executor forks), the scenario
language's memory accesses touch/peek/poke and set_pkru, and the calls only the entry
makes (read, write, stat, getdents64, uname, clock_gettime, ...: vmsim.fs.read_write,
fs.stat, fs.readdir, fs.open, mm.mincore, task.sys). clone, execve, exit and dup2 of a
trace are process and fd-table bookkeeping that the replay engine does itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import EOPNOTSUPP, Fault, kerr
from ..fs import open as fs_open
from ..fs import read_write, readdir, socket, stat, statfs, xattr
from ..mm.mincore import do_mincore
from ..process import Process
from ..task import sys as kernel_sys
from ..uapi import AT_FDCWD, U64
from .names import CONSTANTS, errno_name
from .table import TABLE, syscall

#: the calls that are the Process method of the same name, with the same arguments
PROCESS_METHODS = frozenset({
    "mmap", "munmap", "mprotect", "pkey_mprotect", "pkey_alloc", "pkey_free", "mremap",
    "mseal", "madvise", "mlock", "mlock2", "munlock", "brk", "personality", "prctl",
    "open", "close", "dup", "ftruncate", "unlink", "ioctl",
    "msync", "mlockall", "munlockall", "process_madvise", "memfd_create", "fcntl",
    "pidfd_open", "unlinkat", "rename", "shmget", "shmat", "shmdt", "shmctl",
})


def _pwrite64(p: Process, a: Sequence[Any]) -> int:
    """A trace's buffer is its bytes; the entry's, an address in p's memory."""
    if isinstance(a[1], int):
        return read_write.ksys_pwrite64(p, a[0], a[1], a[2], a[3])
    return p.pwrite(a[0], bytes(a[1][:a[2]]), a[3])


def _mkdir(p: Process, a: Sequence[Any]) -> int:
    return fs_open.do_mkdirat(p, a[0], a[1])


def _mount(p: Process, a: Sequence[Any]) -> int:
    p.kernel.fs.mount(a[1], noexec=bool(a[3] & CONSTANTS["MS_NOEXEC"]))
    return 0


def _fork(p: Process, a: Sequence[Any]) -> int:
    return p.fork().pid


def _touch(p: Process, a: Sequence[Any]) -> int:
    p.touch(a[0], a[1])
    return 0


def _peek(p: Process, a: Sequence[Any]) -> int:
    return p.read(a[0], 1)[0]


def _poke(p: Process, a: Sequence[Any]) -> int:
    p.write(a[0], bytes([a[1] & 0xFF]))
    return 0


def _set_pkru(p: Process, a: Sequence[Any]) -> int:
    """WRPKRU: EOPNOTSUPP without PKU, as the oracle's executor reports it."""
    if not p.kernel.pkeys:
        raise kerr(EOPNOTSUPP)
    p.pkru = a[0] & 0xFFFFFFFF
    return 0


_HANDLERS: dict[str, Callable[[Process, Sequence[Any]], int]] = {
    "pwrite64": _pwrite64, "mkdir": _mkdir, "mount": _mount, "fork": _fork,
    "touch": _touch, "peek": _peek, "poke": _poke, "set_pkru": _set_pkru,
    # the calls only the x86-64 entry makes, by the table's (numbered) names
    "read": lambda p, a: read_write.ksys_read(p, a[0], a[1], a[2]),
    "write": lambda p, a: read_write.ksys_write(p, a[0], a[1], a[2]),
    "pread64": lambda p, a: read_write.ksys_pread64(p, a[0], a[1], a[2], a[3]),
    "readv": lambda p, a: read_write.do_readv(p, a[0], a[1], a[2]),
    "writev": lambda p, a: read_write.do_writev(p, a[0], a[1], a[2]),
    "lseek": lambda p, a: read_write.ksys_lseek(p, a[0], a[1], a[2]),
    "pipe": lambda p, a: read_write.do_pipe2(p, a[0], 0),
    "pipe2": lambda p, a: read_write.do_pipe2(p, a[0], a[1]),
    "stat": lambda p, a: stat.sys_newstat(p, a[0], a[1]),
    "fstat": lambda p, a: stat.sys_newfstat(p, a[0], a[1]),
    "lstat": lambda p, a: stat.sys_newlstat(p, a[0], a[1]),
    "newfstatat": lambda p, a: stat.sys_newfstatat(p, a[0], a[1], a[2], a[3]),
    "statx": lambda p, a: stat.sys_statx(p, a[0], a[1], a[2], a[3], a[4]),
    "readlink": lambda p, a: stat.do_readlinkat(p, AT_FDCWD, a[0], a[1], a[2]),
    "readlinkat": lambda p, a: stat.do_readlinkat(p, a[0], a[1], a[2], a[3]),
    "getdents64": lambda p, a: readdir.sys_getdents64(p, a[0], a[1], a[2]),
    "openat": lambda p, a: p.open(a[1], a[2], a[3]),
    "access": lambda p, a: fs_open.do_faccessat(p, AT_FDCWD, a[0], a[1]),
    "faccessat": lambda p, a: fs_open.do_faccessat(p, a[0], a[1], a[2]),
    "faccessat2": lambda p, a: fs_open.do_faccessat(p, a[0], a[1], a[2], a[3]),
    "chdir": lambda p, a: fs_open.sys_chdir(p, a[0]),
    "fchdir": lambda p, a: fs_open.sys_fchdir(p, a[0]),
    "getcwd": lambda p, a: fs_open.sys_getcwd(p, a[0], a[1]),
    "umask": lambda p, a: fs_open.sys_umask(p, a[0]),
    "mkdirat": lambda p, a: fs_open.do_mkdirat(p, a[1], a[2]),
    "rmdir": lambda p, a: fs_open.sys_rmdir(p, a[0]),
    "renameat2": lambda p, a: fs_open.do_renameat2(p, a[1], a[3], a[4]),
    "fsync": lambda p, a: fs_open.sys_fsync(p, a[0]),
    "fdatasync": lambda p, a: fs_open.sys_fsync(p, a[0]),
    "dup2": lambda p, a: fs_open.sys_dup2(p, a[0], a[1]),
    "dup3": lambda p, a: fs_open.sys_dup3(p, a[0], a[1], a[2]),
    "close_range": lambda p, a: fs_open.sys_close_range(p, a[0], a[1], a[2]),
    "mincore": lambda p, a: do_mincore(p, a[0], a[1], a[2]),
    "getpid": lambda p, a: kernel_sys.sys_getpid(p),
    "getuid": lambda p, a: kernel_sys.sys_getuid(p),
    "geteuid": lambda p, a: kernel_sys.sys_getuid(p),
    "getgid": lambda p, a: kernel_sys.sys_getuid(p),
    "getegid": lambda p, a: kernel_sys.sys_getuid(p),
    "uname": lambda p, a: kernel_sys.sys_newuname(p, a[0]),
    "sysinfo": lambda p, a: kernel_sys.sys_sysinfo(p, a[0]),
    "getrlimit": lambda p, a: kernel_sys.sys_getrlimit(p, a[0], a[1]),
    "setrlimit": lambda p, a: kernel_sys.sys_setrlimit(p, a[0], a[1]),
    "prlimit64": lambda p, a: kernel_sys.sys_prlimit64(p, a[0], a[1], a[2], a[3]),
    "sched_getaffinity": lambda p, a: kernel_sys.sys_sched_getaffinity(p, a[0], a[1], a[2]),
    "getcpu": lambda p, a: kernel_sys.sys_getcpu(p, a[0], a[1], a[2]),
    "clock_gettime": lambda p, a: kernel_sys.sys_clock_gettime(p, a[0], a[1]),
    "clock_getres": lambda p, a: kernel_sys.sys_clock_getres(p, a[0], a[1]),
    "gettimeofday": lambda p, a: kernel_sys.sys_gettimeofday(p, a[0], a[1]),
    "time": lambda p, a: kernel_sys.sys_time(p, a[0]),
    "getrandom": lambda p, a: kernel_sys.sys_getrandom(p, a[0], a[1], a[2]),
    "socket": lambda p, a: kernel_sys.sys_socket(p, a[0], a[1], a[2]),
    "getpeername": lambda p, a: socket.sys_getname(p, a[0], a[1], a[2]),
    "getsockname": lambda p, a: socket.sys_getname(p, a[0], a[1], a[2]),
    "socketpair": lambda p, a: socket.sys_socketpair(p, a[0], a[1], a[2], a[3]),
    "sendto": lambda p, a: socket.sys_sendto(p, a[0], a[1], a[2], a[3], a[4], a[5]),
    "recvfrom": lambda p, a: socket.sys_recvfrom(p, a[0], a[1], a[2], a[3], a[4], a[5]),
    "shutdown": lambda p, a: socket.sys_shutdown(p, a[0], a[1]),
    "getsockopt": lambda p, a: socket.sys_getsockopt(p, a[0], a[1], a[2], a[3], a[4]),
    "getrusage": lambda p, a: kernel_sys.sys_getrusage(p, a[0], a[1]),
    "getpgrp": lambda p, a: kernel_sys.sys_getpgid(p, 0),
    "getpgid": lambda p, a: kernel_sys.sys_getpgid(p, a[0]),
    "getsid": lambda p, a: kernel_sys.sys_getpgid(p, a[0]),
    "statfs": lambda p, a: statfs.sys_statfs(p, a[0], a[1]),
    "fstatfs": lambda p, a: statfs.sys_fstatfs(p, a[0], a[1]),
    "getxattr": lambda p, a: xattr.path_getxattr(p, AT_FDCWD, a[0], a[1], a[2], a[3], True),
    "lgetxattr": lambda p, a: xattr.path_getxattr(p, AT_FDCWD, a[0], a[1], a[2], a[3], False),
    "fgetxattr": lambda p, a: xattr.sys_fgetxattr(p, a[0], a[1], a[2], a[3]),
    "listxattr": lambda p, a: xattr.path_listxattr(p, AT_FDCWD, a[0], a[1], a[2], True),
    "llistxattr": lambda p, a: xattr.path_listxattr(p, AT_FDCWD, a[0], a[1], a[2], False),
    "flistxattr": lambda p, a: xattr.sys_flistxattr(p, a[0], a[1], a[2]),
}


def dispatch(p: Process, name: str, args: Sequence[Any]) -> int:
    """Apply call `name` (or an alias of it, but a numbered one the table has an entry
    and a handler for: openat, dup3) to p: its return value as the syscall returns it,
    an address unsigned and anything else a signed long. A failing call raises OSError
    (its errno), a bad memory access vmsim.Fault; a call that is not applied to a
    Process raises KeyError."""
    call = TABLE[name] if name in _HANDLERS else syscall(name)
    if call.name in PROCESS_METHODS:
        value = getattr(p, call.name)(*args)
    else:
        value = _HANDLERS[call.name](p, args)
    value &= U64
    if call.addr_result or value < 1 << 63:
        return value
    return value - (1 << 64)


def outcome(p: Process, name: str, args: Sequence[Any]) -> tuple:
    """`dispatch` with its failure as a value: ("ok", value), ("err", "EINVAL") or
    ("sig", signal, si_code, address)."""
    try:
        return ("ok", dispatch(p, name, args))
    except OSError as exc:
        return ("err", errno_name(exc.errno) if exc.errno is not None else "?")
    except Fault as f:
        return ("sig", f.signal, f.code, f.addr)
