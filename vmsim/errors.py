"""Errors the model raises: OSError with the kernel's errno, signals, hook contracts."""

import errno as _errno
import os


def kerr(code: int) -> OSError:
    """The OSError a failing syscall returns to user space (errno `code`).

    `OSError(code, msg)` picks Python's subclass (PermissionError for EACCES, ...).
    """
    return OSError(code, os.strerror(code))


class Fault(Exception):
    """A memory access the kernel answers with a signal.

    signal: "SIGSEGV" or "SIGBUS"; code: "SEGV_MAPERR", "SEGV_ACCERR", "SEGV_PKUERR",
    "BUS_ADRERR"; addr: the faulting address (si_addr).
    """

    def __init__(self, signal: str, code: str, addr: int):
        super().__init__(f"{signal} ({code}) at {addr:#x}")
        self.signal = signal
        self.code = code
        self.addr = addr


class HookContractError(Exception):
    """A driver hook broke the contract its vm_operations_struct member documents."""


EPERM = _errno.EPERM
ENOENT = _errno.ENOENT
EBADF = _errno.EBADF
EAGAIN = _errno.EAGAIN
ENOMEM = _errno.ENOMEM
EACCES = _errno.EACCES
EFAULT = _errno.EFAULT
EBUSY = _errno.EBUSY
EEXIST = _errno.EEXIST
ENODEV = _errno.ENODEV
ENOTDIR = _errno.ENOTDIR
EISDIR = _errno.EISDIR
EINVAL = _errno.EINVAL
ETXTBSY = _errno.ETXTBSY
ENOSPC = _errno.ENOSPC
ENOTTY = _errno.ENOTTY
EOVERFLOW = _errno.EOVERFLOW
EOPNOTSUPP = _errno.EOPNOTSUPP
ESRCH = _errno.ESRCH
EIO = _errno.EIO
EMFILE = _errno.EMFILE
ENOTEMPTY = _errno.ENOTEMPTY
EROFS = _errno.EROFS
EFBIG = _errno.EFBIG
EPIPE = _errno.EPIPE
ENOSYS = _errno.ENOSYS
EINTR = _errno.EINTR
ESPIPE = _errno.ESPIPE
E2BIG = _errno.E2BIG
ENOEXEC = _errno.ENOEXEC
ENAMETOOLONG = _errno.ENAMETOOLONG
ELIBBAD = _errno.ELIBBAD
ELOOP = _errno.ELOOP
EXDEV = _errno.EXDEV
ENXIO = _errno.ENXIO
ERANGE = _errno.ERANGE
EAFNOSUPPORT = _errno.EAFNOSUPPORT
ECHILD = _errno.ECHILD
ETIMEDOUT = _errno.ETIMEDOUT
#: include/linux/errno.h: what an interrupted syscall returns inside the kernel; the way
#: back to user mode makes it -EINTR or a restart (vmsim.arch.x86.signal)
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
ENODATA = _errno.ENODATA
