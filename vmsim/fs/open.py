"""The path and fd calls of fs/open.c, fs/namei.c, fs/file.c, fs/fcntl.c, fs/d_path.c
and fs/sync.c that a program makes through the x86-64 entry and the Process methods do
not cover: access(2) and its *at forms, chdir(2), fchdir(2), getcwd(2), umask(2),
mkdirat(2), rmdir(2), renameat2(2), fsync(2), dup2(2)/dup3(2), and the file status
flags fcntl(F_GETFL/F_SETFL) reads and sets.

Paths arrive walked (vmsim.fs.namei.path_at: absolute, the host's part mirrored), as
the syscall table's `path` kind gives them; every process passes the permission checks
as root does (the model's credentials), so only the execute bits are consulted.
"""

from __future__ import annotations

import os

from ..errors import EACCES, EBADF, EEXIST, EINVAL, ENOTDIR, ERANGE, kerr
from ..mm.fault import copy_to_user
from ..uapi import (
    FASYNC,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_EXCL,
    O_NOCTTY,
    O_NONBLOCK,
    O_PATH,
    O_TRUNC,
    RLIMIT_NOFILE,
)
from .file import FMODE_PATH, S_IFDIR, S_IFIFO, S_IFREG, File
from .stdio import is_stdio
from .vfs import PIDFD_OPS

#: include/uapi/asm-generic/fcntl.h: the flags open(2) adds on 64-bit (force_o_largefile())
O_LARGEFILE = 0o100000
O_DIRECT = 0o40000
O_NOATIME = 0o1000000
#: fs/fcntl.c SETFL_MASK: the status flags F_SETFL may change
SETFL_MASK = O_APPEND | O_NONBLOCK | FASYNC | O_DIRECT | O_NOATIME
#: include/uapi/linux/fcntl.h: access(2)'s modes and faccessat2(2)'s flags
X_OK = 1
AT_EACCESS = 0x200
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
#: include/uapi/linux/fs.h: renameat2(2)'s flags
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4


# --- fs/open.c ----------------------------------------------------------------------

def do_faccessat(task, dirfd: int, path: str, mode: int, flags: int = 0) -> int:
    """access(2), faccessat(2), faccessat2(2): fs/open.c do_faccessat(): EINVAL for a
    mode past R_OK|W_OK|X_OK or other flags than AT_EACCESS, AT_SYMLINK_NOFOLLOW and
    AT_EMPTY_PATH; the file (ENOENT, ENOTDIR); then, as root, only X_OK of a file that
    is not a directory needs an execute bit (EACCES)."""
    mode, flags = mode & 0xFFFFFFFF, flags & 0xFFFFFFFF
    if mode & ~0o7:
        raise kerr(EINVAL)
    if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise kerr(EINVAL)
    inode = task.kernel.fs.lookup(path)
    if mode & X_OK and inode.kind != S_IFDIR and not inode.mode & 0o111:
        raise kerr(EACCES)
    return 0


def sys_chdir(task, path: str) -> int:
    """chdir(2): the directory (ENOENT, ENOTDIR) becomes the working directory."""
    if task.kernel.fs.lookup(path).kind != S_IFDIR:
        raise kerr(ENOTDIR)
    task.cwd = path
    return 0


def sys_fchdir(task, fd: int) -> int:
    """fchdir(2): the directory open as fd (fdget_raw(): O_PATH too; EBADF, ENOTDIR)."""
    file = task._file(fd)
    if file.inode.kind != S_IFDIR:
        raise kerr(ENOTDIR)
    task.cwd = file.path
    return 0


def sys_umask(task, mask: int) -> int:
    """umask(2): kernel/sys.c: the new mask's permission bits; returns the old one."""
    old = task.umask
    task.umask = mask & 0o777
    return old


def sys_getcwd(task, buf: int, size: int) -> int:
    """getcwd(2): fs/d_path.c: the working directory and its NUL, ERANGE if size is
    smaller, EFAULT; returns the length with the NUL."""
    path = os.fsencode(task.cwd) + b"\0"
    if len(path) > size & 0xFFFFFFFFFFFFFFFF:
        raise kerr(ERANGE)
    copy_to_user(task, buf, path)
    return len(path)


def sys_fsync(task, fd: int) -> int:
    """fsync(2), fdatasync(2): fs/sync.c vfs_fsync_range(): the file (EBADF), which
    must have ->fsync (EINVAL: pipes, terminals, character devices, /proc); the model's
    files are always on stable storage."""
    file = task._fdget(fd)
    inode = file.inode
    if is_stdio(file) or inode.kind not in (S_IFREG, S_IFDIR) or \
            inode.mount is not None and inode.mount.fstype == "proc":
        raise kerr(EINVAL)
    return 0


# --- fs/namei.c ---------------------------------------------------------------------

def do_mkdirat(task, path: str, mode: int) -> int:
    """mkdir(2), mkdirat(2): fs/namei.c do_mkdirat(): a new directory (EEXIST; ENOENT,
    ENOTDIR for its parent) with the mode's permission and sticky bits less the
    umask."""
    inode = task.kernel.fs.mkdir(path)
    inode.mode = mode & 0o1777 & ~task.umask
    return 0


def sys_rmdir(task, path: str) -> int:
    """rmdir(2): fs/namei.c do_rmdir() (Vfs.rmdir: ENOTDIR, EBUSY, ENOTEMPTY)."""
    task.kernel.fs.rmdir(path)
    return 0


def do_renameat2(task, old: str, new: str, flags: int) -> int:
    """renameat2(2): fs/namei.c do_renameat2(): EINVAL for unknown flags or
    RENAME_EXCHANGE with another; RENAME_NOREPLACE refuses an existing target
    (EEXIST); RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled (EINVAL:
    docs/deviations.md). Then rename(2)'s work (Process.rename)."""
    flags &= 0xFFFFFFFF
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) or \
            flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT):
        raise kerr(EINVAL)
    if flags & (RENAME_EXCHANGE | RENAME_WHITEOUT):
        raise kerr(EINVAL)
    if flags & RENAME_NOREPLACE:
        task.kernel.fs.lookup(old)
        if new in task.kernel.fs.inodes:
            raise kerr(EEXIST)
    return task.rename(old, new)


# --- fs/file.c, fs/fcntl.c ----------------------------------------------------------

def do_dup2(task, oldfd: int, newfd: int, flags: int) -> int:
    """fs/file.c ksys_dup3(): EINVAL for flags but O_CLOEXEC; EBADF for a newfd at or
    past RLIMIT_NOFILE or a bad oldfd; newfd, closed first if open, becomes a copy of
    oldfd, close-on-exec as the flags say. Returns newfd."""
    oldfd, newfd = oldfd & 0xFFFFFFFF, newfd & 0xFFFFFFFF
    if flags & ~O_CLOEXEC:
        raise kerr(EINVAL)
    if newfd >= task.rlimit(RLIMIT_NOFILE):
        raise kerr(EBADF)
    file = task._file(oldfd)
    if newfd in task.files:
        task.close(newfd)
    task.files[newfd] = file.get()
    if flags & O_CLOEXEC:
        task.close_on_exec.add(newfd)
    return newfd


def sys_dup2(task, oldfd: int, newfd: int) -> int:
    """dup2(2): fs/file.c: oldfd equal to newfd is newfd if open (else EBADF);
    otherwise dup3() without flags."""
    if oldfd & 0xFFFFFFFF == newfd & 0xFFFFFFFF:
        task._file(oldfd)
        return newfd & 0xFFFFFFFF
    return do_dup2(task, oldfd, newfd, 0)


def sys_dup3(task, oldfd: int, newfd: int, flags: int) -> int:
    """dup3(2): EINVAL for oldfd equal to newfd, then ksys_dup3()."""
    if oldfd & 0xFFFFFFFF == newfd & 0xFFFFFFFF:
        raise kerr(EINVAL)
    return do_dup2(task, oldfd, newfd, flags & 0xFFFFFFFF)


#: include/uapi/linux/close_range.h
CLOSE_RANGE_UNSHARE = 1 << 1
CLOSE_RANGE_CLOEXEC = 1 << 2


def sys_close_range(task, fd: int, max_fd: int, flags: int) -> int:
    """close_range(2): fs/file.c: EINVAL for other flags or fd above max_fd; then each
    open fd in [fd, max_fd] is closed, or with CLOSE_RANGE_CLOEXEC marked close-on-exec.
    CLOSE_RANGE_UNSHARE gives the caller its own copy of the table first (unshare_fd());
    the model's table is the thread group's, so that copy is the table itself: exact
    for a single-threaded caller, which is what uses it (before an exec)."""
    fd, max_fd, flags = fd & 0xFFFFFFFF, max_fd & 0xFFFFFFFF, flags & 0xFFFFFFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or fd > max_fd:
        raise kerr(EINVAL)
    for n in sorted(n for n in task.files if fd <= n <= max_fd):
        if flags & CLOSE_RANGE_CLOEXEC:
            task.close_on_exec.add(n)
        else:
            task.close(n)
    return 0


def file_status_flags(file: File) -> int:
    """fcntl(F_GETFL): the file's f_flags, without what open(2) used up (O_CREAT,
    O_EXCL, O_NOCTTY, O_TRUNC, O_CLOEXEC), with O_LARGEFILE where open(2) or the file's
    maker added it (not O_PATH files, pipes, pidfds); a stdio file's are the host's."""
    if is_stdio(file):
        return file.f_flags
    flags = file.f_flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)
    if file.f_mode & FMODE_PATH:
        return flags & ~O_LARGEFILE | O_PATH
    if file.inode.kind == S_IFIFO or file.f_op is PIDFD_OPS:
        return flags
    return flags | O_LARGEFILE


def set_file_status_flags(file: File, arg: int) -> int:
    """fcntl(F_SETFL): fs/fcntl.c setfl(): only SETFL_MASK changes (the model's FASYNC
    sends no SIGIO; a stdio file's change stays in the model, the host's fd is left
    as it is)."""
    file.f_flags = file.f_flags & ~SETFL_MASK | arg & SETFL_MASK
    return 0
