"""`vmsim run --record FILE`: a run written as the trace `vmsim replay` takes
(vmsim.trace.format, docs/trace-format.md), as complete as `vmsim record`'s: a header
with the CPU facts (protection keys; ASLR is off, as under `setarch -R`), the maps at
the exec event and the first process's maps and smaps at its exit, then the execve
that started the program and every call a recorded trace holds, with its decoded
arguments and its result.

Here the model is the kernel, so nothing has to be inferred from strace's text: each
call's arguments are read from the registers and the program's memory as it enters
(a path before execve replaces the memory that held it; an SGX ioctl's struct and the
bytes it points to, vmsim.enclave.loader.unmarshal), its result as it leaves. The
calls recorded are those `vmsim record` imports from strace (vmsim.trace.strace
STRACE_CALLS: the aliases folded, an fcntl or shmctl only for the commands replay
runs, an ioctl only for SGX's); every other call is counted by name in the header's
`skipped`. A relative path is recorded absolute (the replay's process does not have
the run's working directory), the file it opened as `ret_path` and an fd argument's
file as `fd_path`, as strace -y shows them.
"""

from __future__ import annotations

import os
import posixpath
import struct
from collections.abc import Callable, Sequence
from typing import IO, Any

from ..enclave.loader import unmarshal
from ..errors import Fault
from ..fs.namei import dirfd_path, strncpy_from_user
from ..mm.fault import copy_from_user
from ..mm.flags import VM_WRITE
from ..process import Process
from ..syscalls.names import CONSTANTS, errno_name
from ..syscalls.table import ALIASES, TABLE, Syscall, fold
from ..task.exec import get_user_arg_strings
from ..task.thread import Thread
from ..trace.format import SGX_IOCTL_NAMES, Record, write_trace
from ..trace.strace import FCNTL_CMDS, STRACE_CALLS
from ..uapi import AT_FDCWD, PATH_MAX, U64

#: include/uapi/linux/sched.h struct clone_args: flags, pidfd, child_tid, parent_tid,
#: exit_signal
CLONE_ARGS = struct.Struct("<QQQQQ")
IPC_RMID = CONSTANTS["IPC_RMID"]
#: include/uapi/linux/uio.h: the most iovecs a call takes (more: EINVAL)
UIO_MAXIOV = 1024
#: the argument kinds that are a C int (narrowed to 32 bits, signed), an unsigned
#: quantity (64 bits); any other integer is the register as a signed 64-bit value
INT32_KINDS = frozenset({"fd", "pkey"})
UNSIGNED_KINDS = frozenset({"addr", "len", "off", "hex"})


def _c_int(v: int) -> int:
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _signed(v: int) -> int:
    v &= U64
    return v - (1 << 64) if v >> 63 else v


def _path(process: Process, addr: int, dirfd: int) -> str:
    """A path argument as the caller spelled it, made absolute from dirfd's directory
    (AT_FDCWD: the working directory). OSError for one the call could not copy (NULL,
    EFAULT, longer than PATH_MAX) or start from (EBADF, ENOTDIR)."""
    name = strncpy_from_user(process, addr, PATH_MAX) if addr else None
    if name is None:
        raise OSError("the path cannot be copied")
    path = os.fsdecode(name)
    if path.startswith("/"):
        return path
    return posixpath.normpath(posixpath.join(dirfd_path(process, dirfd), path))


def _int_arg(kind: str, v: int) -> int:
    if kind in INT32_KINDS:
        return _c_int(v)
    return v & U64 if kind in UNSIGNED_KINDS else _signed(v)


def _args(process: Process, entry: Syscall, regs: Sequence[int], dirfd: int) -> list | None:
    """The arguments of `entry` by its kinds: paths as strings, an SGX ioctl's struct
    decoded, process_madvise's iovec as pairs, integers narrowed by their C type."""
    out: list[Any] = []
    for kind, v in zip((k.rstrip("?") for k in entry.kinds), regs, strict=False):
        if kind == "path":
            out.append(_path(process, v, dirfd))
        elif kind == "str":
            name = strncpy_from_user(process, v, PATH_MAX) if v else None
            out.append(None if name is None else os.fsdecode(name))
        elif kind == "ioctlarg":
            out.append(unmarshal(process, out[1], v))
        elif kind == "iovec":
            count = regs[2] & 0xFFFFFFFF
            if count > UIO_MAXIOV:
                return None
            vec = struct.unpack(f"<{2 * count}Q", copy_from_user(process, v, 16 * count))
            out.append(list(zip(vec[::2], vec[1::2], strict=True)))
        elif kind == "ioctlcmd":
            out.append(v & 0xFFFFFFFF)
        else:
            out.append(_int_arg(kind, v))
    return out


def _clone3_args(process: Process, entry: Syscall, regs: Sequence[int],
                 dirfd: int) -> list | None:
    """clone3(2) as clone: the flags of its struct clone_args, with the exit signal in
    the low byte as clone(2) carries it."""
    flags, _pidfd, _child, _parent, exit_signal = CLONE_ARGS.unpack(
        copy_from_user(process, regs[0], CLONE_ARGS.size))
    return [flags | exit_signal & 0xFF]


def _fcntl_args(process: Process, entry: Syscall, regs: Sequence[int],
                dirfd: int) -> list | None:
    """fcntl(2) for the commands a replay runs (F_DUPFD, F_SETFD, F_ADD_SEALS, ...)."""
    cmd = regs[1] & 0xFFFFFFFF
    return [_c_int(regs[0]), cmd, _signed(regs[2])] if cmd in FCNTL_CMDS else None


def _shmctl_args(process: Process, entry: Syscall, regs: Sequence[int],
                 dirfd: int) -> list | None:
    """shmctl(2) for IPC_RMID, the one command whose buffer is not a struct."""
    return [_c_int(regs[0]), IPC_RMID, 0] if regs[1] & 0xFFFFFFFF == IPC_RMID else None


def _ioctl_args(process: Process, entry: Syscall, regs: Sequence[int],
                dirfd: int) -> list | None:
    """ioctl(2) of an SGX command, its struct decoded."""
    return _args(process, entry, regs, dirfd) if regs[1] & 0xFFFFFFFF in SGX_IOCTL_NAMES \
        else None


def _dup2_args(process: Process, entry: Syscall, regs: Sequence[int],
               dirfd: int) -> list | None:
    """dup3(2) as the trace's dup2: without its flags."""
    return [_c_int(regs[0]), _c_int(regs[1])]


#: how the calls with their own shape are read, by the name the program called
ArgsReader = Callable[[Process, Syscall, Sequence[int], int], "list | None"]
READERS: dict[str, ArgsReader] = {
    "clone3": _clone3_args, "fcntl": _fcntl_args, "shmctl": _shmctl_args,
    "ioctl": _ioctl_args, "dup3": _dup2_args,
}


def call_record(thread: Thread, entry: Syscall, regs: Sequence[int]) -> Record | None:
    """The record of the call `entry` that `thread` enters with the argument registers
    regs, its arguments read now: an alias folded onto the call a trace names (openat
    onto open, its directory fd kept for the path), execve's argv and envp, the fd
    argument's file (fd_path). None for a call a trace does not hold, or whose
    arguments cannot be read (the call itself then fails: EFAULT, EBADF)."""
    name = fold(entry.name, STRACE_CALLS)
    if name is None:
        return None
    process = thread.process
    dirfd = AT_FDCWD
    alias = ALIASES.get(entry.name)
    if alias is not None and alias.dirfd:
        dirfd, regs = regs[0], regs[1:]
    read = READERS.get(entry.name, _args)
    try:
        args = read(process, TABLE[name], regs, dirfd)
        if args is None:
            return None
        rec = Record(name, args, pid=thread.tid)
        if name == "execve":
            rec.argv, rec.envp = (
                [os.fsdecode(s) for s in get_user_arg_strings(thread, uptr)]
                for uptr in (regs[1], regs[2]))
    except (OSError, Fault):
        return None
    kinds = TABLE[name].kinds
    if "fd" in kinds:
        rec.fd_path = _file_path(process, args[kinds.index("fd")])
    return rec


def _file_path(process: Process, fd: int) -> str | None:
    """The path of the file open as fd, as strace -y shows it; None for one without a
    path in the namespace (a pipe, a host stream)."""
    file = process.files.get(fd)
    path = getattr(file, "path", None)
    return path if isinstance(path, str) and path.startswith("/") else None


def complete(rec: Record, process: Process, result: int | None) -> None:
    """The result of the call rec records, `result` the signed rax (None: it did not
    return): `ret`, or `err` by name; an open's file as `ret_path`."""
    if result is None:
        return
    if -4096 < result < 0:
        rec.err = errno_name(-result)
        return
    rec.ret = result & U64 if TABLE[rec.call or ""].addr_result else result
    if rec.call == "open" and process.alive:
        rec.ret_path = _file_path(process, result)


class RunRecorder:
    """The records of a run, in the order its calls completed, and its snapshots.

    A replay does not run the program's code, so the page faults a trace does not show
    would leave it without what they changed that a later call sees: the anon_vma a
    VMA gets at its first write (or from the kernel side's write into it), on which
    merging and mprotect's VM_ACCOUNT depend. So before each recorded call, every
    anon_vma that appeared since the last one is recorded as an access to its VMA
    (`"event": "access"`, a write where the VMA is writable), which the replay makes.

    Invariants: `records` starts with the execve that started the program once
    `started` was told of it; `anon_vmas` holds the ids of the anon_vmas a replay of
    `records` has made; `exit_maps`/`exit_smaps` are those of the first process, taken
    as its last thread exits (before its mm is torn down)."""

    def __init__(self, comment: str) -> None:
        self.comment = comment
        self.records: list[Record] = []
        #: the calls not recorded, by the name the program called them (strace's)
        self.skipped: dict[str, int] = {}
        self.anon_vmas: set[int] = set()
        self.leader: int | None = None
        self.exec_maps: str | None = None
        self.exit_maps: str | None = None
        self.exit_smaps: str | None = None

    def started(self, leader: Thread, path: str, argv: Sequence[str | bytes],
                envp: Sequence[str | bytes]) -> None:
        """The program's first execve (made before the run, by Machine.start) and the
        address space it built: the exec event."""
        process = leader.process
        self.leader = process.pid
        absolute = posixpath.normpath(posixpath.join(process.cwd, path))
        self.records.append(Record("execve", [absolute], pid=leader.tid, ret=0,
                                   argv=[os.fsdecode(a) for a in argv],
                                   envp=[os.fsdecode(e) for e in envp]))
        self.exec_maps = process.maps()
        self.settle(process)

    def faults(self, thread: Thread) -> None:
        """Before a recorded call of `thread`: an access to each VMA of its mm whose
        anon_vma appeared since the last recorded call."""
        for vma in thread.process.mm.tree:
            anon_vma = vma.anon_vma
            if anon_vma is not None and anon_vma.id not in self.anon_vmas:
                self.anon_vmas.add(anon_vma.id)
                self.records.append(Record(None, pid=thread.tid, event="access", addr=vma.start,
                                           mode="w" if vma.flags & VM_WRITE else "r"))

    def settle(self, process: Process) -> None:
        """After a recorded call (an execve, a fork: the child's too): the anon_vmas of
        process's mm are those a replay of it makes."""
        self.anon_vmas.update(v.anon_vma.id for v in process.mm.tree if v.anon_vma is not None)

    def add(self, rec: Record) -> None:
        self.records.append(rec)

    def skip(self, name: str) -> None:
        self.skipped[name] = self.skipped.get(name, 0) + 1

    def event(self, pid: int, event: str, signal: str | None, text: str) -> None:
        """A signal delivered, a thread's exit, or its process killed."""
        self.records.append(Record(None, pid=pid, event=event, signal=signal, text=text))

    def exiting(self, process: Process) -> None:
        """A process is about to end: the first one's exit snapshot."""
        if process.pid == self.leader and self.exit_maps is None:
            self.exit_maps, self.exit_smaps = process.maps(), process.smaps()

    def write(self, f: IO[str], pkeys: bool) -> None:
        """The trace, as `vmsim record` writes one."""
        write_trace(self.records, f, comment=self.comment, header={
            "exec_maps": self.exec_maps, "exit_maps": self.exit_maps,
            "exit_smaps": self.exit_smaps, "pkeys": pkeys, "skipped": self.skipped})
