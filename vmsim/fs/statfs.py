"""statfs(2) and fstatfs(2): fs/statfs.c, what a program learns of the filesystem a
file is on, as struct statfs (include/uapi/asm-generic/statfs.h, 120 bytes on x86-64).

A file of this machine's (its path on the model's root filesystem, or a stdio file) is
on the host's filesystem, which answers; the model's own mounts (tmpfs, /dev, /proc)
answer as their Linux filesystems do, with the sizes tmpfs has by default (half the
Kernel's RAM).
"""

from __future__ import annotations

import ctypes
import os
import struct

from ..errors import kerr
from ..mm.fault import copy_to_user
from ..uapi import PAGE_SIZE
from .namei import host_backed
from .stdio import is_stdio

#: f_type of the model's filesystem types (include/uapi/linux/magic.h)
TMPFS_MAGIC = 0x01021994
PROC_SUPER_MAGIC = 0x9FA0
#: pipes and the other files of no mount (pidfds) are on the kernel's pseudo filesystems
PIPEFS_MAGIC = 0x50495045
#: f_flags: ST_VALID, ST_RELATIME, and ST_NOEXEC for a noexec mount
ST_VALID, ST_NOEXEC, ST_RELATIME = 0x20, 0x8, 0x400
#: struct statfs: f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree,
#: f_fsid[2], f_namelen, f_frsize, f_flags, f_spare[4]
STATFS = struct.Struct("<qqQQQQQiiqqq32x")
#: the host's syscall numbers
_NR_STATFS, _NR_FSTATFS = 137, 138

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _host_statfs(nr: int, arg: bytes | int) -> bytes:
    """The host's struct statfs of a path or fd; its errno if it fails."""
    buf = ctypes.create_string_buffer(STATFS.size)
    target = ctypes.c_char_p(arg) if isinstance(arg, bytes) else ctypes.c_long(arg)
    if _libc.syscall(ctypes.c_long(nr), target, buf) == -1:
        raise kerr(ctypes.get_errno())
    return buf.raw


def _model_statfs(kernel, mount) -> bytes:
    """A model mount's struct statfs: procfs with no blocks, the others tmpfs's."""
    flags = ST_VALID | ST_RELATIME | (ST_NOEXEC if mount.noexec else 0)
    if mount.fstype == "proc":
        return STATFS.pack(PROC_SUPER_MAGIC, PAGE_SIZE, 0, 0, 0, 0, 0, 0, 0, 255, PAGE_SIZE, flags)
    pages = kernel.total_ram_pages // 2
    return STATFS.pack(TMPFS_MAGIC, PAGE_SIZE, pages, pages, pages, pages, pages, 0, 0, 255,
                       PAGE_SIZE, flags)


def _on_host(path: str) -> bytes:
    """The host's path whose filesystem a root-filesystem path of the model is on: the
    path itself, or (a file only the model has) its nearest ancestor the host has."""
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return os.fsencode(path)


def _inode_statfs(task, inode) -> bytes:
    if inode.mount is not None and host_backed(task.kernel.fs, inode.path):
        return _host_statfs(_NR_STATFS, _on_host(inode.path))
    if inode.mount is not None:
        return _model_statfs(task.kernel, inode.mount)
    return STATFS.pack(PIPEFS_MAGIC, PAGE_SIZE, 0, 0, 0, 0, 0, 0, 0, 255, PAGE_SIZE, ST_VALID)


def sys_statfs(task, path: str, buf: int) -> int:
    """statfs(2) of the walked path (ENOENT for no such file), then the struct (EFAULT)."""
    copy_to_user(task, buf, _inode_statfs(task, task.kernel.fs.lookup(path)))
    return 0


def sys_fstatfs(task, fd: int, buf: int) -> int:
    """fstatfs(2): the file of fd (EBADF; O_PATH too), its filesystem's struct."""
    file = task._file(fd)
    if is_stdio(file):
        data = _host_statfs(_NR_FSTATFS, file.private_data.fd)
    else:
        data = _inode_statfs(task, file.inode)
    copy_to_user(task, buf, data)
    return 0
