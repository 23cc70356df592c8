"""The x86-64 syscalls vmsim knows: arch/x86/entry/syscalls/syscall_64.tbl, one entry
per call with its number, the kinds of its arguments and whether it returns an
address, and the aliases strace and libc spell some of them with.

Argument kinds (a trailing `?`: optional, 0 or NULL when absent) say how a value is
read and written in strace syntax (vmsim.syscalls.strace):

    addr len off int fd pkey byte   integers (addresses printed in hex, NULL for 0)
    prot mapflags mremapflags mlockflags pkeyrights persona oflags msflags
                                    flag sets, printed symbolically
    madv prctl                      enumerations, printed by name
    msyncflags mlockallflags mfdflags shmflags shmatflags atflags
                                    flag sets, printed as numbers
    fcntlcmd shmctlcmd              enumerations, printed as numbers
    iovec                           a pointer to struct iovec[] (strace prints the
                                    array itself, which does not bind as a pointer)
    mode                            an octal file mode
    path str                        C strings, decoded as UTF-8 (NULL: None)
    data                            a C string kept as bytes (pwrite64's buffer)
    ioctlcmd ioctlarg               an ioctl command, and its argument (a pointer, or
                                    in a JSON trace the decoded SGX struct)
    cloneflags                      clone's flags (strace prints them as `flags=`)
    touchmode                       "r", "w" or "x"

Entries without a number are the scenario language's memory accesses (`touch`, `peek`,
`poke`) and PKRU write (`set_pkru`): docs/scenario-format.md.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Syscall:
    """One call: its name, x86-64 number (None: not a syscall), argument kinds, and
    whether its result is an address (printed in hex, compared window-relative)."""

    name: str
    nr: int | None
    kinds: tuple[str, ...]
    addr_result: bool = False

    @property
    def required(self) -> int:
        """How many arguments are not optional."""
        return sum(1 for kind in self.kinds if not kind.endswith("?"))


@dataclass(frozen=True)
class Alias:
    """Another name for `target` (its own number, or None for a spelling): the same
    call on the model, with the same arguments once a leading directory fd (`dirfd`,
    openat's) is dropped; arguments beyond the target's (dup3's flags) are not used."""

    name: str
    nr: int | None
    target: str
    dirfd: bool = False


_ENTRIES = (
    Syscall("open", 2, ("path", "oflags", "mode?")),
    Syscall("close", 3, ("fd",)),
    Syscall("mmap", 9, ("addr", "len", "prot", "mapflags", "fd", "off"), addr_result=True),
    Syscall("mprotect", 10, ("addr", "len", "prot")),
    Syscall("munmap", 11, ("addr", "len")),
    Syscall("brk", 12, ("addr",), addr_result=True),
    Syscall("ioctl", 16, ("fd", "ioctlcmd", "ioctlarg?")),
    Syscall("pwrite64", 18, ("fd", "data", "int", "int")),
    Syscall("mremap", 25, ("addr", "len", "len", "mremapflags?", "addr?"), addr_result=True),
    Syscall("msync", 26, ("addr", "len", "msyncflags")),
    Syscall("madvise", 28, ("addr", "len", "madv")),
    Syscall("shmget", 29, ("int", "len", "shmflags")),
    Syscall("shmat", 30, ("int", "addr", "shmatflags"), addr_result=True),
    Syscall("shmctl", 31, ("int", "shmctlcmd", "addr?")),
    Syscall("dup", 32, ("fd",)),
    Syscall("dup2", 33, ("fd", "fd")),
    Syscall("clone", 56, ("cloneflags?",)),
    Syscall("fork", 57, ()),
    Syscall("execve", 59, ("path",)),
    Syscall("exit", 60, ("int?",)),
    Syscall("shmdt", 67, ("addr",)),
    Syscall("fcntl", 72, ("fd", "fcntlcmd", "int?")),
    Syscall("ftruncate", 77, ("fd", "int")),
    Syscall("rename", 82, ("path", "path")),
    Syscall("mkdir", 83, ("path", "mode?")),
    Syscall("unlink", 87, ("path",)),
    Syscall("personality", 135, ("persona",)),
    Syscall("mlock", 149, ("addr", "len")),
    Syscall("munlock", 150, ("addr", "len")),
    Syscall("mlockall", 151, ("mlockallflags",)),
    Syscall("munlockall", 152, ()),
    Syscall("prctl", 157, ("prctl", "int?", "int?", "int?", "int?")),
    Syscall("mount", 165, ("str", "path", "str", "msflags", "str?")),
    Syscall("unlinkat", 263, ("fd", "path", "atflags?")),
    Syscall("memfd_create", 319, ("str", "mfdflags?")),
    Syscall("mlock2", 325, ("addr", "len", "mlockflags?")),
    Syscall("pkey_mprotect", 329, ("addr", "len", "prot", "pkey")),
    Syscall("pkey_alloc", 330, ("int?", "pkeyrights?")),
    Syscall("pkey_free", 331, ("pkey",)),
    Syscall("pidfd_open", 434, ("int", "int?")),
    Syscall("process_madvise", 440, ("fd", "iovec", "int", "madv", "int?")),
    Syscall("mseal", 462, ("addr", "len", "int?")),
    Syscall("touch", None, ("addr", "touchmode")),
    Syscall("peek", None, ("addr",)),
    Syscall("poke", None, ("addr", "byte")),
    Syscall("set_pkru", None, ("int",)),
)

#: every call by name
TABLE: dict[str, Syscall] = {entry.name: entry for entry in _ENTRIES}

#: the other names of calls: x86-64 syscalls that vmsim runs as another one, the
#: 32-bit mmap2 and libc's spelling of pwrite64
ALIASES: dict[str, Alias] = {alias.name: alias for alias in (
    Alias("vfork", 58, "fork"),
    Alias("exit_group", 231, "exit"),
    Alias("openat", 257, "open", dirfd=True),
    Alias("dup3", 292, "dup2"),
    Alias("clone3", 435, "clone"),
    Alias("mmap2", None, "mmap"),
    Alias("pwrite", None, "pwrite64"),
)}

#: every syscall and alias by its x86-64 number (strace prints `syscall_0x1ce(...)` for
#: a number it has no name for)
BY_NUMBER: dict[int, Syscall] = {
    **{alias.nr: TABLE[alias.target] for alias in ALIASES.values() if alias.nr is not None},
    **{entry.nr: entry for entry in _ENTRIES if entry.nr is not None},
}

#: the calls whose result is an address
ADDR_RESULT = frozenset(entry.name for entry in _ENTRIES if entry.addr_result)


def syscall(name: str) -> Syscall:
    """The entry of a call or of an alias's target. KeyError for an unknown name."""
    alias = ALIASES.get(name)
    return TABLE[alias.target if alias is not None else name]


def fold(name: str, calls: Collection[str]) -> str | None:
    """The call a format that records `calls` makes of `name`: name itself when the
    format has it, else the target of the alias `name`; None when it has neither."""
    if name in calls:
        return name
    alias = ALIASES.get(name)
    return alias.target if alias is not None and alias.target in calls else None
