"""getdents64(2): fs/readdir.c, the entries of a directory as struct linux_dirent64
records in the caller's buffer.

A directory's entries are ".", "..", then, for a directory mirrored from this machine
(namei.py), the host's entries in the order the host's getdents64 gives them (Python's
os.scandir), then the entries only the model has (files the program made). The file
position of the open directory counts the entries already given.
"""

from __future__ import annotations

import os
import posixpath
import stat as host_stat
import struct

from ..errors import EFAULT, EINVAL, ENOENT, ENOTDIR, kerr
from .file import S_IFCHR, S_IFDIR, S_IFIFO, S_IFREG, Inode
from .read_write import access_ok, copy_to_user_partial
from .stat import host_twin

#: include/linux/fs.h: d_type
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12
_DT_OF_KIND = {S_IFREG: DT_REG, S_IFDIR: DT_DIR, S_IFCHR: DT_CHR, S_IFIFO: DT_FIFO}
#: struct linux_dirent64 up to d_name: d_ino, d_off, d_reclen, d_type
DIRENT64 = struct.Struct("<QqHB")


def _host_dtype(entry: os.DirEntry) -> int:
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return DT_UNKNOWN
    for test, dtype in ((host_stat.S_ISDIR, DT_DIR), (host_stat.S_ISREG, DT_REG),
                        (host_stat.S_ISLNK, DT_LNK), (host_stat.S_ISCHR, DT_CHR),
                        (host_stat.S_ISBLK, DT_BLK), (host_stat.S_ISFIFO, DT_FIFO),
                        (host_stat.S_ISSOCK, DT_SOCK)):
        if test(mode):
            return dtype
    return DT_UNKNOWN


def dir_entries(fs, inode: Inode) -> list[tuple[str, int, int]]:
    """(name, d_ino, d_type) of every entry of the directory, in order (see the
    module's docstring)."""
    path = inode.path
    parent = fs.inodes.get(posixpath.dirname(path)) if path != "/" else inode
    out = [(".", inode.ino, DT_DIR), ("..", (parent or inode).ino, DT_DIR)]
    names = {".", ".."}
    if host_twin(inode) is not None:
        with os.scandir(path) as it:
            for entry in it:
                child = fs.inodes.get(posixpath.join(path, entry.name))
                if child is not None:
                    out.append((entry.name, child.ino, _DT_OF_KIND[child.kind]))
                else:
                    out.append((entry.name, entry.inode(), _host_dtype(entry)))
                names.add(entry.name)
    prefix = path.rstrip("/") + "/"
    for child_path, child in fs.inodes.items():
        name = child_path[len(prefix):]
        if child_path.startswith(prefix) and name and "/" not in name and name not in names:
            out.append((name, child.ino, _DT_OF_KIND[child.kind]))
    return out


def sys_getdents64(task, fd: int, dirent: int, count: int) -> int:
    """getdents64(2): the file (EBADF), a directory (ENOTDIR), a buffer in user space
    (EFAULT); records from the file position on while they fit, each 8-byte aligned;
    EINVAL if not even the first fits; 0 at the end. A directory removed while open
    has no entries (ENOENT). Returns the bytes written."""
    file = task._fdget(fd)
    count &= 0xFFFFFFFF
    if not access_ok(task, dirent, count):
        raise kerr(EFAULT)
    inode = file.inode
    if inode.kind != S_IFDIR:
        raise kerr(ENOTDIR)
    if inode.nlink == 0:
        raise kerr(ENOENT)
    entries = dir_entries(task.kernel.fs, inode)
    out = bytearray()
    pos = file.f_pos
    while pos < len(entries):
        name, ino, dtype = entries[pos]
        raw = os.fsencode(name) + b"\0"
        reclen = (DIRENT64.size + len(raw) + 7) & ~7
        if len(out) + reclen > count:
            break
        out += DIRENT64.pack(ino, pos + 1, reclen, dtype) + raw.ljust(reclen - DIRENT64.size, b"\0")
        pos += 1
    if not out and pos < len(entries):
        raise kerr(EINVAL)
    if copy_to_user_partial(task, dirent, bytes(out)) < len(out):
        raise kerr(EFAULT)
    file.f_pos = pos
    return len(out)
