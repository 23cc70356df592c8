"""The one dispatcher: a decoded call applied to a vmsim Process, as
arch/x86/entry/syscall_64.c's sys_call_table hands a syscall to its handler, and its
result as user space sees it.

    dispatch(p, "mprotect", [addr, 4096, PROT_READ])    -> 0, or raises OSError
    outcome(p, "mmap", [0, 4096, 3, 0x22, -1, 0])       -> ("ok", 0x7ffff7ff7000)
    outcome(p, "touch", [addr, "w"])                    -> ("sig", "SIGSEGV", "SEGV_ACCERR", addr)

Arguments are the values vmsim.syscalls.strace binds (ints, str paths, bytes). The
calls a Process does not have are mapped here: pwrite64, mkdir and mount (the VFS),
fork and vfork (the child's pid; the model has no shared-mm child, so a vfork child
gets a copy, as the oracle's executor forks), and the scenario language's memory
accesses touch/peek/poke and set_pkru. clone, execve, exit and dup2 are process and
fd-table bookkeeping that the replay engine does itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import EOPNOTSUPP, Fault, kerr
from ..process import Process
from ..uapi import U64
from .names import CONSTANTS, errno_name
from .table import syscall

#: the calls that are the Process method of the same name, with the same arguments
PROCESS_METHODS = frozenset({
    "mmap", "munmap", "mprotect", "pkey_mprotect", "pkey_alloc", "pkey_free", "mremap",
    "mseal", "madvise", "mlock", "mlock2", "munlock", "brk", "personality", "prctl",
    "open", "close", "dup", "ftruncate", "unlink", "ioctl",
    "msync", "mlockall", "munlockall", "process_madvise", "memfd_create", "fcntl",
    "pidfd_open", "unlinkat", "rename", "shmget", "shmat", "shmdt", "shmctl",
})


def _pwrite64(p: Process, a: Sequence[Any]) -> int:
    return p.pwrite(a[0], bytes(a[1][:a[2]]), a[3])


def _mkdir(p: Process, a: Sequence[Any]) -> int:
    p.kernel.fs.mkdir(a[0])
    return 0


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
}


def dispatch(p: Process, name: str, args: Sequence[Any]) -> int:
    """Apply call `name` (or an alias of it) to p: its return value as the syscall
    returns it, an address unsigned and anything else a signed long. A failing call
    raises OSError (its errno), a bad memory access vmsim.Fault; a call that is not
    applied to a Process raises KeyError."""
    call = syscall(name)
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
