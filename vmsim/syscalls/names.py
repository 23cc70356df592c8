"""Names of numbers: the constants strace prints and scenarios use, errnos, signals.

Constants are taken from the modules that define them -- vmsim.uapi (the mman, fcntl,
personality, prctl and resource headers), the SGX driver's ioctl ABI
(vmsim.drivers.sgx.uapi, arch/x86/include/uapi/asm/sgx.h) and the architectural SGX
definitions (vmsim.arch.x86.sgx.defs) -- every upper-case integer of each, whichever
module holds a name. The few names strace prints that none of them defines are listed
here with the header they come from. Errno names and texts are Python's (`errno`,
`os.strerror`: glibc's), signal names Python's `signal`.
"""

from __future__ import annotations

import errno
import os
import re
import signal
from types import ModuleType

from .. import uapi
from ..arch.x86.sgx import defs as sgx_defs
from ..drivers.sgx import uapi as sgx_uapi

#: names strace prints (or scenarios use) that the modules above do not define
STRACE_NAMES: dict[str, int] = {
    "NULL": 0,
    # include/uapi/linux/fcntl.h
    "AT_FDCWD": -100,
    # include/uapi/asm-generic/fcntl.h (x86_64 values) and the glibc spellings
    "O_LARGEFILE": 0o100000, "O_NOATIME": 0o1000000, "O_DIRECT": 0o40000,
    "O_DSYNC": 0o10000, "O_SYNC": 0o4010000, "O_ASYNC": 0o20000, "O_NDELAY": 0o4000,
    "O_RSYNC": 0o4010000, "FASYNC": 0o20000,
    # include/uapi/linux/mman.h, asm-generic/mman-common.h
    "MAP_FILE": 0, "MAP_HUGE_64KB": 16 << 26, "MAP_HUGE_2MB": 21 << 26,
    "MAP_HUGE_1GB": 30 << 26, "PKEY_DISABLE_EXECUTE": 0x4,
    # include/uapi/linux/mount.h
    "MS_RDONLY": 1, "MS_NOSUID": 2, "MS_NODEV": 4, "MS_NOEXEC": 8,
    # include/uapi/linux/sched.h (clone flags), and the exit signal strace adds to them
    "CLONE_VM": 0x100, "CLONE_FS": 0x200, "CLONE_FILES": 0x400, "CLONE_SIGHAND": 0x800,
    "CLONE_PIDFD": 0x1000, "CLONE_PTRACE": 0x2000, "CLONE_VFORK": 0x4000,
    "CLONE_PARENT": 0x8000, "CLONE_THREAD": 0x10000, "CLONE_NEWNS": 0x20000,
    "CLONE_SYSVSEM": 0x40000, "CLONE_SETTLS": 0x80000, "CLONE_PARENT_SETTID": 0x100000,
    "CLONE_CHILD_CLEARTID": 0x200000, "CLONE_DETACHED": 0x400000,
    "CLONE_UNTRACED": 0x800000, "CLONE_CHILD_SETTID": 0x1000000,
    "CLONE_NEWCGROUP": 0x2000000, "CLONE_NEWUTS": 0x4000000, "CLONE_NEWIPC": 0x8000000,
    "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000, "CLONE_NEWNET": 0x40000000,
    "CLONE_IO": 0x80000000, "SIGCHLD": signal.SIGCHLD.value,
}


def _upper_case_ints(module: ModuleType) -> dict[str, int]:
    return {name: value for name, value in vars(module).items()
            if name.isupper() and isinstance(value, int) and not isinstance(value, bool)}


#: every constant by name (see the module's docstring)
CONSTANTS: dict[str, int] = {**_upper_case_ints(uapi), **_upper_case_ints(sgx_uapi),
                             **_upper_case_ints(sgx_defs), **STRACE_NAMES}


def with_prefix(prefix: str) -> dict[str, int]:
    """The constants whose names start with prefix, in their headers' order."""
    return {name: value for name, value in CONSTANTS.items() if name.startswith(prefix)}


# --------------------------------------------------------------------------- errnos

def errno_name(code: int) -> str:
    """The errno's name (`EACCES`), or its number for one Python does not know."""
    return errno.errorcode.get(code, str(code))


def is_errno(name: str) -> bool:
    """Is name an errno name (`EACCES`)?"""
    return re.fullmatch(r"E[A-Z0-9]+", name) is not None and hasattr(errno, name)


def strerror(name: str) -> str:
    """What strace prints in parentheses after an errno name: `Cannot allocate memory`."""
    code = getattr(errno, name, None)
    return os.strerror(code) if code else name


# --------------------------------------------------------------------------- signals

def signal_name(signo: int) -> str:
    """`SIGSEGV` for 11; the number itself for one that is not a signal."""
    try:
        return signal.Signals(signo).name
    except ValueError:
        return str(signo)


#: siginfo si_code values by (signal, number): include/uapi/asm-generic/siginfo.h
SI_CODES = {("SIGSEGV", 1): "SEGV_MAPERR", ("SIGSEGV", 2): "SEGV_ACCERR",
            ("SIGSEGV", 4): "SEGV_PKUERR", ("SIGBUS", 1): "BUS_ADRALN",
            ("SIGBUS", 2): "BUS_ADRERR", ("SIGBUS", 3): "BUS_OBJERR",
            ("SIGSEGV", 0x80): "SI_KERNEL", ("SIGILL", 1): "ILL_ILLOPC",
            ("SIGILL", 2): "ILL_ILLOPN", ("SIGFPE", 1): "FPE_INTDIV",
            ("SIGFPE", 7): "FPE_FLTINV", ("SIGTRAP", 1): "TRAP_BRKPT",
            ("SIGTRAP", 2): "TRAP_TRACE", ("SIGTRAP", 0x80): "SI_KERNEL"}
