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
    dirfd                           an *at() call's directory fd (AT_FDCWD by name)
    atpath                          a path its call walks itself: one AT_EMPTY_PATH
                                    lets be empty or NULL, or whose last symbolic
                                    link is not followed (lstat, readlink)
    buf outbuf                      a user buffer the call reads (write's) or fills
                                    (read's), its length the next argument (an
                                    iovec's: the next argument is the count)
    whence accmode clockid rlimres  enumerations and flag sets of the calls only
    grndflags fdoflags archcode hex programs make (strace's names; hex: a number
                                    strace prints in hex)
    statbuf rlimit timespec timeval structs the call reads or fills, and what strace
    fdpair cpumask utsname dirents  shows of them (vmsim.syscalls.strace
    pollfds fdset timeout tvtimeout format_syscall); pollfds, fdset, the timeouts
    sigsetp sigsetpack loffp        (timespec, timeval), sigsets and loff_t are what
                                    poll, select and their kin, sendfile and
                                    copy_file_range read
    fadvice                         fadvise64's advice
    cint                            a C int (its low 32 bits, signed)

Entries without a number are the scenario language's memory accesses (`touch`, `peek`,
`poke`) and PKRU write (`set_pkru`): docs/scenario-format.md.

From registers (the x86-64 entry, vmsim.arch.x86.entry.syscall_64), an argument is its
register, but the strings (`from_registers`): a str is the C string at that address,
copied from the process's memory first as the kernel's getname() does; a path is that
string walked (vmsim.fs.namei.path_at: from the working directory, or from the `dirfd`
argument before it; the host's files mirrored), so the call gets the absolute path the
model's namespace knows, as replay gives it; an atpath is the string (None for NULL),
which its call walks itself. So is execve's path (`GIVEN_PATH`): the program sees the
filename as it was given (bprm->filename: AT_EXECFN, a script's argv), and the walk
only finds the file. Buffers, iovecs and structs stay addresses: each call
copies them in its own order, after the checks the kernel makes before it (a bad fd is
EBADF whatever the buffer). Integers are the raw 64-bit register; the handler narrows
them as its C prototype says (an int fd is its low 32 bits), as the Process methods do.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..fs.namei import getname, getname_empty, path_at, strndup_user
from ..uapi import AT_FDCWD


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
    Syscall("read", 0, ("fd", "outbuf", "len")),
    Syscall("write", 1, ("fd", "buf", "len")),
    Syscall("open", 2, ("path", "oflags", "mode?")),
    Syscall("close", 3, ("fd",)),
    Syscall("stat", 4, ("path", "statbuf")),
    Syscall("fstat", 5, ("fd", "statbuf")),
    Syscall("lstat", 6, ("atpath", "statbuf")),
    Syscall("poll", 7, ("pollfds", "int", "cint")),
    Syscall("lseek", 8, ("fd", "int", "whence")),
    Syscall("mmap", 9, ("addr", "len", "prot", "mapflags", "fd", "off"), addr_result=True),
    Syscall("mprotect", 10, ("addr", "len", "prot")),
    Syscall("munmap", 11, ("addr", "len")),
    Syscall("brk", 12, ("addr",), addr_result=True),
    Syscall("rt_sigaction", 13, ("int", "addr", "addr", "len")),
    Syscall("rt_sigprocmask", 14, ("int", "addr", "addr", "len")),
    Syscall("rt_sigreturn", 15, ()),
    Syscall("ioctl", 16, ("fd", "ioctlcmd", "ioctlarg?")),
    Syscall("pread64", 17, ("fd", "outbuf", "len", "int")),
    Syscall("pwrite64", 18, ("fd", "data", "int", "int")),
    Syscall("readv", 19, ("fd", "iovec", "int")),
    Syscall("writev", 20, ("fd", "iovec", "int")),
    Syscall("access", 21, ("path", "accmode")),
    Syscall("pipe", 22, ("fdpair",)),
    Syscall("select", 23, ("cint", "fdset", "fdset", "fdset", "tvtimeout")),
    Syscall("sched_yield", 24, ()),
    Syscall("mremap", 25, ("addr", "len", "len", "mremapflags?", "addr?"), addr_result=True),
    Syscall("msync", 26, ("addr", "len", "msyncflags")),
    Syscall("mincore", 27, ("addr", "len", "addr")),
    Syscall("madvise", 28, ("addr", "len", "madv")),
    Syscall("shmget", 29, ("int", "len", "shmflags")),
    Syscall("shmat", 30, ("int", "addr", "shmatflags"), addr_result=True),
    Syscall("shmctl", 31, ("int", "shmctlcmd", "addr?")),
    Syscall("dup", 32, ("fd",)),
    Syscall("dup2", 33, ("fd", "fd")),
    Syscall("pause", 34, ()),
    Syscall("nanosleep", 35, ("addr", "addr")),
    Syscall("getitimer", 36, ("int", "addr")),
    Syscall("alarm", 37, ("int",)),
    Syscall("setitimer", 38, ("int", "addr", "addr")),
    Syscall("getpid", 39, ()),
    Syscall("sendfile", 40, ("fd", "fd", "loffp", "len")),
    Syscall("socket", 41, ("int", "int", "int")),
    Syscall("sendto", 44, ("fd", "buf", "len", "int", "addr", "int")),
    Syscall("recvfrom", 45, ("fd", "outbuf", "len", "int", "addr", "addr")),
    Syscall("shutdown", 48, ("fd", "int")),
    Syscall("getsockname", 51, ("fd", "addr", "addr")),
    Syscall("getpeername", 52, ("fd", "addr", "addr")),
    Syscall("socketpair", 53, ("int", "int", "int", "addr")),
    Syscall("getsockopt", 55, ("fd", "int", "int", "addr", "addr")),
    Syscall("clone", 56, ("cloneflags?",)),
    Syscall("fork", 57, ()),
    Syscall("vfork", 58, ()),
    Syscall("execve", 59, ("path",)),
    Syscall("exit", 60, ("int?",)),
    Syscall("wait4", 61, ("int", "addr", "int", "addr")),
    Syscall("kill", 62, ("int", "int")),
    Syscall("uname", 63, ("utsname",)),
    Syscall("shmdt", 67, ("addr",)),
    Syscall("fcntl", 72, ("fd", "fcntlcmd", "int?")),
    Syscall("fsync", 74, ("fd",)),
    Syscall("fdatasync", 75, ("fd",)),
    Syscall("ftruncate", 77, ("fd", "int")),
    Syscall("getcwd", 79, ("outbuf", "len")),
    Syscall("chdir", 80, ("path",)),
    Syscall("fchdir", 81, ("fd",)),
    Syscall("rename", 82, ("path", "path")),
    Syscall("mkdir", 83, ("path", "mode?")),
    Syscall("rmdir", 84, ("path",)),
    Syscall("unlink", 87, ("path",)),
    Syscall("readlink", 89, ("atpath", "outbuf", "len")),
    Syscall("umask", 95, ("mode",)),
    Syscall("gettimeofday", 96, ("timeval", "addr")),
    Syscall("getrlimit", 97, ("rlimres", "rlimit")),
    Syscall("getrusage", 98, ("int", "addr")),
    Syscall("sysinfo", 99, ("addr",)),
    Syscall("getuid", 102, ()),
    Syscall("getgid", 104, ()),
    Syscall("geteuid", 107, ()),
    Syscall("getegid", 108, ()),
    Syscall("getppid", 110, ()),
    Syscall("getpgrp", 111, ()),
    Syscall("getpgid", 121, ("int",)),
    Syscall("getsid", 124, ("int",)),
    Syscall("rt_sigpending", 127, ("addr", "len")),
    Syscall("rt_sigqueueinfo", 129, ("int", "int", "addr")),
    Syscall("rt_sigsuspend", 130, ("addr", "len")),
    Syscall("sigaltstack", 131, ("addr", "addr")),
    Syscall("personality", 135, ("persona",)),
    Syscall("statfs", 137, ("path", "addr")),
    Syscall("fstatfs", 138, ("fd", "addr")),
    Syscall("mlock", 149, ("addr", "len")),
    Syscall("munlock", 150, ("addr", "len")),
    Syscall("mlockall", 151, ("mlockallflags",)),
    Syscall("munlockall", 152, ()),
    Syscall("prctl", 157, ("prctl", "int?", "int?", "int?", "int?")),
    Syscall("arch_prctl", 158, ("archcode", "addr")),
    Syscall("setrlimit", 160, ("rlimres", "rlimit")),
    Syscall("mount", 165, ("str", "path", "str", "msflags", "str?")),
    Syscall("gettid", 186, ()),
    Syscall("getxattr", 191, ("path", "str", "addr", "len")),
    Syscall("lgetxattr", 192, ("atpath", "str", "addr", "len")),
    Syscall("fgetxattr", 193, ("fd", "str", "addr", "len")),
    Syscall("listxattr", 194, ("path", "addr", "len")),
    Syscall("llistxattr", 195, ("atpath", "addr", "len")),
    Syscall("flistxattr", 196, ("fd", "addr", "len")),
    Syscall("tkill", 200, ("int", "int")),
    Syscall("time", 201, ("addr",)),
    Syscall("futex", 202, ("addr", "int", "int", "addr", "addr", "int")),
    Syscall("sched_getaffinity", 204, ("int", "len", "cpumask")),
    Syscall("epoll_create", 213, ("int",)),
    Syscall("getdents64", 217, ("fd", "dirents", "len")),
    Syscall("set_tid_address", 218, ("addr",)),
    Syscall("restart_syscall", 219, ()),
    Syscall("fadvise64", 221, ("fd", "int", "len", "fadvice")),
    Syscall("clock_gettime", 228, ("clockid", "timespec")),
    Syscall("clock_getres", 229, ("clockid", "timespec")),
    Syscall("clock_nanosleep", 230, ("int", "int", "addr", "addr")),
    Syscall("exit_group", 231, ("int",)),
    Syscall("epoll_wait", 232, ("fd", "epevents", "int", "cint")),
    Syscall("epoll_ctl", 233, ("fd", "epollop", "fd", "epevent")),
    Syscall("tgkill", 234, ("int", "int", "int")),
    Syscall("openat", 257, ("dirfd", "path", "oflags", "mode?")),
    Syscall("mkdirat", 258, ("dirfd", "path", "mode")),
    Syscall("newfstatat", 262, ("dirfd", "atpath", "statbuf", "atflags")),
    Syscall("unlinkat", 263, ("dirfd", "path", "atflags?")),
    Syscall("readlinkat", 267, ("dirfd", "atpath", "outbuf", "len")),
    Syscall("faccessat", 269, ("dirfd", "path", "accmode")),
    Syscall("pselect6", 270, ("cint", "fdset", "fdset", "fdset", "timeout", "sigsetpack")),
    Syscall("ppoll", 271, ("pollfds", "int", "timeout", "sigsetp", "len")),
    Syscall("set_robust_list", 273, ("addr", "len")),
    Syscall("epoll_pwait", 281, ("fd", "epevents", "int", "cint", "sigsetp", "len")),
    Syscall("eventfd", 284, ("int",)),
    Syscall("eventfd2", 290, ("int", "efdflags")),
    Syscall("epoll_create1", 291, ("epflags",)),
    Syscall("dup3", 292, ("fd", "fd", "fdoflags")),
    Syscall("pipe2", 293, ("fdpair", "fdoflags")),
    Syscall("rt_tgsigqueueinfo", 297, ("int", "int", "int", "addr")),
    Syscall("prlimit64", 302, ("int", "rlimres", "rlimit", "rlimit")),
    Syscall("getcpu", 309, ("addr", "addr", "addr")),
    Syscall("renameat2", 316, ("dirfd", "path", "dirfd", "path", "int")),
    Syscall("getrandom", 318, ("outbuf", "len", "grndflags")),
    Syscall("memfd_create", 319, ("str", "mfdflags?")),
    Syscall("mlock2", 325, ("addr", "len", "mlockflags?")),
    Syscall("copy_file_range", 326, ("fd", "loffp", "fd", "loffp", "len", "int")),
    Syscall("pkey_mprotect", 329, ("addr", "len", "prot", "pkey")),
    Syscall("pkey_alloc", 330, ("int?", "pkeyrights?")),
    Syscall("pkey_free", 331, ("pkey",)),
    Syscall("statx", 332, ("dirfd", "atpath", "atflags", "int", "addr")),
    Syscall("rseq", 334, ("addr", "hex", "int", "hex")),
    Syscall("pidfd_open", 434, ("int", "int?")),
    Syscall("clone3", 435, ("addr", "len")),
    Syscall("close_range", 436, ("int", "int", "closerangeflags")),
    Syscall("faccessat2", 439, ("dirfd", "path", "accmode", "atflags")),
    Syscall("process_madvise", 440, ("fd", "iovec", "int", "madv", "int?")),
    Syscall("epoll_pwait2", 441, ("fd", "epevents", "int", "timeout", "sigsetp", "len")),
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

#: every syscall and alias by its x86-64 number, as the trace formats know it: a
#: numbered alias is its target (strace prints `syscall_0x1ce(...)` for a number it has
#: no name for)
BY_NUMBER: dict[int, Syscall] = {
    **{entry.nr: entry for entry in _ENTRIES if entry.nr is not None},
    **{alias.nr: TABLE[alias.target] for alias in ALIASES.values() if alias.nr is not None},
}

#: arch/x86/entry/syscall_64.c sys_call_table: the entry the x86-64 entry code runs for
#: each number, a numbered alias by its own entry where it has one (openat's dirfd,
#: dup3's flags, exit_group's whole thread group)
SYS_CALL_TABLE: dict[int, Syscall] = {
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


def _walked_path(task: Any, value: int, dirfd: int) -> str:
    """A path argument: getname(), then the walk from dirfd (AT_FDCWD: the working
    directory), following the host's symbolic links."""
    return path_at(task, dirfd, getname(task, value))


def _given_path(task: Any, value: int, dirfd: int) -> str:
    """A path its call walks itself, keeping it as given: getname()."""
    return getname(task, value)


#: how an argument of each kind is read from its register (kinds not here: the
#: register itself), given the value of the last `dirfd` argument before it
REGISTER_DECODERS: dict[str, Callable[[Any, int, int], Any]] = {
    "path": _walked_path,
    "atpath": lambda task, value, dirfd: getname_empty(task, value),
    "str": lambda task, value, dirfd: strndup_user(task, value),
}
#: the calls that keep their path as the caller spelled it and walk it themselves:
#: getname() only (EFAULT, ENAMETOOLONG, ENOENT for the empty string)
GIVEN_PATH = frozenset({"execve"})


def from_registers(task: Any, entry: Syscall, regs: Sequence[int]) -> list[Any]:
    """The arguments of `entry` as the x86-64 entry reads them from the six argument
    registers `regs` of a thread of `task` (a Process): see the module's docstring.
    OSError (EFAULT, ENAMETOOLONG, ENOENT, ENOTDIR, EBADF) for a string the kernel
    cannot copy or a path it cannot walk."""
    out: list[Any] = []
    dirfd = AT_FDCWD
    for kind, value in zip(entry.kinds, regs, strict=False):
        kind = kind.rstrip("?")
        if kind == "dirfd":
            dirfd = value
        decode = _given_path if kind == "path" and entry.name in GIVEN_PATH else \
            REGISTER_DECODERS.get(kind)
        out.append(value if decode is None else decode(task, value, dirfd))
    return out


#: the names of the x86-64 calls the table has no entry for, by number
#: (arch/x86/entry/syscalls/syscall_64.tbl, Linux 6.18): how strace names them; the
#: model answers each ENOSYS
UNMODELLED_NAMES: dict[int, str] = {
    42: "connect", 43: "accept", 46: "sendmsg", 47: "recvmsg", 49: "bind", 50: "listen",
    54: "setsockopt", 64: "semget", 65: "semop", 66: "semctl", 68: "msgget", 69: "msgsnd", 70: "msgrcv",
    71: "msgctl", 73: "flock", 76: "truncate", 78: "getdents", 85: "creat", 86: "link", 88: "symlink",
    90: "chmod", 91: "fchmod", 92: "chown", 93: "fchown", 94: "lchown", 100: "times", 101: "ptrace",
    103: "syslog", 105: "setuid", 106: "setgid", 109: "setpgid", 112: "setsid", 113: "setreuid",
    114: "setregid", 115: "getgroups", 116: "setgroups", 117: "setresuid", 118: "getresuid",
    119: "setresgid", 120: "getresgid", 122: "setfsuid", 123: "setfsgid", 125: "capget", 126: "capset",
    128: "rt_sigtimedwait", 132: "utime", 133: "mknod", 134: "uselib", 136: "ustat", 139: "sysfs",
    140: "getpriority", 141: "setpriority", 142: "sched_setparam", 143: "sched_getparam",
    144: "sched_setscheduler", 145: "sched_getscheduler", 146: "sched_get_priority_max",
    147: "sched_get_priority_min", 148: "sched_rr_get_interval", 153: "vhangup", 154: "modify_ldt",
    155: "pivot_root", 156: "_sysctl", 159: "adjtimex", 161: "chroot", 162: "sync", 163: "acct",
    164: "settimeofday", 166: "umount2", 167: "swapon", 168: "swapoff", 169: "reboot", 170: "sethostname",
    171: "setdomainname", 172: "iopl", 173: "ioperm", 174: "create_module", 175: "init_module",
    176: "delete_module", 177: "get_kernel_syms", 178: "query_module", 179: "quotactl", 180: "nfsservctl",
    181: "getpmsg", 182: "putpmsg", 183: "afs_syscall", 184: "tuxcall", 185: "security", 187: "readahead",
    188: "setxattr", 189: "lsetxattr", 190: "fsetxattr", 197: "removexattr", 198: "lremovexattr",
    199: "fremovexattr", 203: "sched_setaffinity", 205: "set_thread_area", 206: "io_setup",
    207: "io_destroy", 208: "io_getevents", 209: "io_submit", 210: "io_cancel", 211: "get_thread_area",
    212: "lookup_dcookie", 214: "epoll_ctl_old", 215: "epoll_wait_old",
    216: "remap_file_pages", 220: "semtimedop", 222: "timer_create", 223: "timer_settime",
    224: "timer_gettime", 225: "timer_getoverrun", 226: "timer_delete", 227: "clock_settime",
    235: "utimes", 236: "vserver", 237: "mbind",
    238: "set_mempolicy", 239: "get_mempolicy", 240: "mq_open", 241: "mq_unlink", 242: "mq_timedsend",
    243: "mq_timedreceive", 244: "mq_notify", 245: "mq_getsetattr", 246: "kexec_load", 247: "waitid",
    248: "add_key", 249: "request_key", 250: "keyctl", 251: "ioprio_set", 252: "ioprio_get",
    253: "inotify_init", 254: "inotify_add_watch", 255: "inotify_rm_watch", 256: "migrate_pages",
    259: "mknodat", 260: "fchownat", 261: "futimesat", 264: "renameat", 265: "linkat", 266: "symlinkat",
    268: "fchmodat", 272: "unshare", 274: "get_robust_list", 275: "splice", 276: "tee",
    277: "sync_file_range", 278: "vmsplice", 279: "move_pages", 280: "utimensat",
    282: "signalfd", 283: "timerfd_create", 285: "fallocate", 286: "timerfd_settime",
    287: "timerfd_gettime", 288: "accept4", 289: "signalfd4",
    294: "inotify_init1", 295: "preadv", 296: "pwritev", 298: "perf_event_open", 299: "recvmmsg",
    300: "fanotify_init", 301: "fanotify_mark", 303: "name_to_handle_at", 304: "open_by_handle_at",
    305: "clock_adjtime", 306: "syncfs", 307: "sendmmsg", 308: "setns", 310: "process_vm_readv",
    311: "process_vm_writev", 312: "kcmp", 313: "finit_module", 314: "sched_setattr",
    315: "sched_getattr", 317: "seccomp", 320: "kexec_file_load", 321: "bpf", 322: "execveat",
    323: "userfaultfd", 324: "membarrier", 327: "preadv2", 328: "pwritev2", 333: "io_pgetevents",
    424: "pidfd_send_signal", 425: "io_uring_setup", 426: "io_uring_enter", 427: "io_uring_register",
    428: "open_tree", 429: "move_mount", 430: "fsopen", 431: "fsconfig", 432: "fsmount", 433: "fspick",
    437: "openat2", 438: "pidfd_getfd", 442: "mount_setattr",
    443: "quotactl_fd", 444: "landlock_create_ruleset", 445: "landlock_add_rule",
    446: "landlock_restrict_self", 447: "memfd_secret", 448: "process_mrelease", 449: "futex_waitv",
    450: "set_mempolicy_home_node", 451: "cachestat", 452: "fchmodat2", 453: "map_shadow_stack",
    454: "futex_wake", 455: "futex_wait", 456: "futex_requeue", 457: "statmount", 458: "listmount",
    459: "lsm_get_self_attr", 460: "lsm_set_self_attr", 461: "lsm_list_modules", 463: "setxattrat",
    464: "getxattrat", 465: "listxattrat", 466: "removexattrat", 467: "open_tree_attr",
    468: "file_getattr", 469: "file_setattr",
}
