"""getxattr(2), lgetxattr(2), fgetxattr(2) and their listxattr(2) forms: fs/xattr.c, the
extended attributes a program reads (ls asks each file for its ACLs and SELinux label).

A file mirrored from this machine (vmsim.fs.stat host_twin) and a stdio file have the
host's attributes, read from the host; the model's own files have none (ENODATA from
tmpfs and ext4, EOPNOTSUPP from procfs, which has no xattr handler). Setting attributes
is not modelled.
"""

from __future__ import annotations

import os

from ..errors import EFAULT, ENODATA, ENOENT, EOPNOTSUPP, ERANGE, kerr
from ..mm.fault import copy_to_user
from .file import File, Inode
from .namei import path_at
from .stat import host_twin
from .stdio import is_stdio

#: include/uapi/linux/limits.h: the longest attribute name and value
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536


def _host_or_none(inode: Inode) -> str | None:
    return inode.path if host_twin(inode) is not None else None


def _fetch(host: str | int | None, inode: Inode | None, name: str, follow: bool) -> bytes:
    """The attribute's value from the host, or the model's answer (no attributes)."""
    if host is None:
        mount = inode.mount if inode is not None else None
        raise kerr(EOPNOTSUPP if mount is not None and mount.fstype == "proc" else ENODATA)
    try:
        return os.getxattr(host, name, follow_symlinks=follow)
    except OSError as err:
        raise kerr(err.errno or ENODATA) from None


def _names(host: str | int | None, follow: bool) -> bytes:
    if host is None:
        return b""
    try:
        return b"".join(os.fsencode(n) + b"\0" for n in os.listxattr(host, follow_symlinks=follow))
    except OSError as err:
        raise kerr(err.errno or EOPNOTSUPP) from None


def _give(task, data: bytes, value: int, size: int) -> int:
    """The value to user memory: its length when size is 0, ERANGE if it does not fit."""
    size &= 0xFFFFFFFFFFFFFFFF
    if not size:
        return len(data)
    if len(data) > min(size, XATTR_SIZE_MAX):
        raise kerr(ERANGE)
    copy_to_user(task, value, data)
    return len(data)


def _check_name(name: str | None) -> str:
    """strncpy_from_user() of the name (EFAULT for NULL): ERANGE when empty or longer
    than XATTR_NAME_MAX."""
    if name is None:
        raise kerr(EFAULT)
    if not name or len(os.fsencode(name)) > XATTR_NAME_MAX:
        raise kerr(ERANGE)
    return name


def path_getxattr(task, dirfd: int, pathname: str | None, name: str | None, value: int,
                  size: int, follow: bool) -> int:
    """getxattr(2) (follow) and lgetxattr(2): fs/xattr.c path_getxattrat()."""
    name = _check_name(name)
    path = _walk(task, dirfd, pathname, follow)
    inode = task.kernel.fs.lookup(path) if path in task.kernel.fs.inodes else None
    host = path if inode is None else _host_or_none(inode)
    return _give(task, _fetch(host, inode, name, follow), value, size)


def sys_fgetxattr(task, fd: int, name: str | None, value: int, size: int) -> int:
    """fgetxattr(2): the file of fd (EBADF), then its attribute."""
    file = task._fdget(fd)
    name = _check_name(name)
    return _give(task, _fetch(_file_host(file), file.inode, name, True), value, size)


def path_listxattr(task, dirfd: int, pathname: str | None, buf: int, size: int,
                   follow: bool) -> int:
    """listxattr(2) (follow) and llistxattr(2): the names, each with its NUL."""
    path = _walk(task, dirfd, pathname, follow)
    inode = task.kernel.fs.lookup(path) if path in task.kernel.fs.inodes else None
    host = path if inode is None else _host_or_none(inode)
    return _give(task, _names(host, follow), buf, size)


def sys_flistxattr(task, fd: int, buf: int, size: int) -> int:
    file = task._fdget(fd)
    return _give(task, _names(_file_host(file), True), buf, size)


def _file_host(file: File) -> str | int | None:
    if is_stdio(file):
        return file.private_data.fd
    return _host_or_none(file.inode)


def _walk(task, dirfd: int, pathname: str | None, follow: bool) -> str:
    """The file named (EFAULT for NULL, ENOENT for the empty name); a host symbolic link
    not followed stays the host's (lgetxattr reads the link's own attributes)."""
    if pathname is None:
        raise kerr(EFAULT)
    if not pathname:
        raise kerr(ENOENT)
    path = path_at(task, dirfd, pathname, follow)
    if path not in task.kernel.fs.inodes and not (not follow and os.path.islink(path)):
        task.kernel.fs.lookup(path)
    return path
