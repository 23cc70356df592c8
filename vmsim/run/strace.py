"""Each syscall a program makes, as strace prints it (`vmsim run --trace`):
`name(arg, ...) = result`, the call padded to 39 columns, one line per call, the lines
of every thread but the first marked `[pid TID] ` as strace -f marks them.

The arguments are read at entry, from the registers and the program's memory (a path
before execve replaces the memory that held it), by the kinds of the one syscall table
(vmsim.syscalls.table) and printed as strace prints them for x86-64: addresses in hex
or NULL, sizes in decimal, file offsets in hex, ints and fds as C ints (AT_FDCWD by
name), flag sets and enumerations symbolically (vmsim.syscalls.strace.format_value), C
strings quoted, a buffer written by the call its first 32 bytes (strace -s 32) after
the call returns. A result is an address in hex for the calls that return one, `-1
ERRNO (message)` for an error, `?` for a call that does not return (exit, a successful
execve's old image is gone: `0`). A number the table lacks prints as
`syscall_0x1ce(...)` with six hex arguments.
"""

from __future__ import annotations

from collections.abc import Callable

from ..fs.namei import strncpy_from_user
from ..mm.fault import copy_from_user
from ..syscalls.names import errno_name
from ..syscalls.strace import format_address, format_cstring, format_error, format_value
from ..syscalls.table import SYS_CALL_TABLE, Syscall
from ..task.exec import get_user_arg_strings
from ..task.thread import Thread
from ..uapi import AT_FDCWD, MREMAP_FIXED, MREMAP_MAYMOVE, O_CREAT, O_TMPFILE, PATH_MAX, U64

#: strace's default string limit (-s 32) and the column the result starts in
STRING_LIMIT = 32
COLUMN = 39
#: the calls whose last argument strace prints only when the flags say it is used:
#: mremap's new address (MREMAP_MAYMOVE|MREMAP_FIXED), the mode of open and openat
#: (O_CREAT, O_TMPFILE); the index of the flags argument and the test
LAST_ARG_IF = {
    "mremap": (3, lambda flags: flags & (MREMAP_MAYMOVE | MREMAP_FIXED) == MREMAP_MAYMOVE | MREMAP_FIXED),
    "open": (1, lambda flags: bool(flags & O_CREAT or flags & O_TMPFILE == O_TMPFILE)),
    "openat": (2, lambda flags: bool(flags & O_CREAT or flags & O_TMPFILE == O_TMPFILE)),
}


def c_int(v: int) -> int:
    """A register as a C int."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


class Tracer:
    """Formats the calls of a run and hands each line to `write`."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self._entries: dict[int, tuple[Syscall | None, list[str]]] = {}
        #: the thread traced first: the others' lines start with `[pid TID] `, as
        #: strace -f marks them
        self.first: int | None = None

    def enter(self, thread: Thread) -> None:
        """syscall-enter: the arguments, read now."""
        regs = thread.regs
        entry = SYS_CALL_TABLE.get(regs.orig_rax)
        args = regs.syscall_args()
        if entry is None:
            shown = [f"{a:#x}" for a in args]
        else:
            kinds = [kind.rstrip("?") for kind in entry.kinds]
            shown = [_buffer(thread, value, args[i + 1]) if kind == "buf" else
                     self._arg(thread, kind, value)
                     for i, (kind, value) in enumerate(zip(kinds, args, strict=False))]
            last = LAST_ARG_IF.get(entry.name)
            if last is not None and not last[1](args[last[0]]):
                shown.pop()
            if entry.name == "execve":
                shown += _execve_strings(thread, args[1], args[2])
        self._entries[thread.tid] = (entry, shown)

    def leave(self, thread: Thread, result: int | None) -> None:
        """syscall-exit: the line, with `result` (rax; None: the call did not return)."""
        entry, shown = self._entries.pop(thread.tid, (None, []))
        regs = thread.regs
        if entry is None:
            name = f"syscall_{regs.orig_rax:#x}"
        else:
            name = entry.name
            if result is not None and not _failed(result):
                shown = [self._out(thread, kind.rstrip("?"), value, text, result)
                         for kind, value, text in zip(entry.kinds, regs.syscall_args(), shown,
                                                      strict=False)] + shown[len(entry.kinds):]
        call = f"{name}({', '.join(shown)})"
        if self.first is None:
            self.first = thread.tid
        prefix = "" if thread.tid == self.first else f"[pid {thread.tid}] "
        self.write(f"{prefix}{call:<{COLUMN}} = {self._result(entry, result)}")

    def _arg(self, thread: Thread, kind: str, value: int) -> str:
        if kind in ("path", "str", "atpath"):
            return _cstring(thread, value)
        if kind in ("int", "fd", "pkey"):
            return str(c_int(value))
        if kind == "dirfd":
            return "AT_FDCWD" if c_int(value) == AT_FDCWD else str(c_int(value))
        if kind == "len":
            return str(value & U64)
        if kind == "off":
            return f"{value & U64:#x}" if value & U64 else "0"
        if kind in ("addr", "outbuf", "iovec"):
            return format_address(value)
        return format_value(kind, value)

    def _out(self, thread: Thread, kind: str, value: int, text: str, result: int) -> str:
        """An argument as it reads once the call returned: a buffer's contents."""
        if kind == "outbuf" and result > 0:
            return _buffer(thread, value, result)
        return text

    @staticmethod
    def _result(entry: Syscall | None, result: int | None) -> str:
        if result is None:
            return "?"
        if _failed(result):
            return format_error(errno_name(-(result - (1 << 64))))
        if entry is not None and entry.addr_result:
            return f"{result:#x}"
        return str(result - (1 << 64) if result >> 63 else result)


def _failed(result: int) -> bool:
    return result >= (1 << 64) - 4095


def _cstring(thread: Thread, addr: int) -> str:
    if not addr:
        return "NULL"
    try:
        data = strncpy_from_user(thread.process, addr, PATH_MAX)
    except OSError:
        return format_address(addr)
    return format_address(addr) if data is None else format_cstring(data)


def _execve_strings(thread: Thread, argv: int, envp: int) -> list[str]:
    """execve's argv as strace prints it, then envp as its address and count."""
    try:
        args = get_user_arg_strings(thread, argv)
        env = get_user_arg_strings(thread, envp)
    except OSError:
        return [format_address(argv), format_address(envp)]
    return ["[" + ", ".join(format_cstring(a) for a in args) + "]",
            f"{format_address(envp)} /* {len(env)} vars */"]


def _buffer(thread: Thread, addr: int, length: int) -> str:
    """The first STRING_LIMIT bytes at addr, quoted, `...` after a longer one."""
    try:
        data = copy_from_user(thread.process, addr, min(length, STRING_LIMIT))
    except OSError:
        return format_address(addr)
    return format_cstring(data) + ("..." if length > STRING_LIMIT else "")

