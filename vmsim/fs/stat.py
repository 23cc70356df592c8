"""stat(2), fstat(2), lstat(2), newfstatat(2), statx(2) and readlink(2): fs/stat.c, with
struct stat and struct statx laid out as x86-64 has them
(arch/x86/include/uapi/asm/stat.h, include/uapi/linux/stat.h).

What a file's attributes are: a file mirrored from this machine (its device and inode
number are the host's) has the host's (mode, links, owner, times, blocks) and the
model's size; a stdio file has the host's fstat of its fd; a symbolic link of the host
is the host's lstat; every other file is the model's own, owned by the process's uid,
its times the moment the model's clock booted.
"""

from __future__ import annotations

import ctypes
import os
import re
import stat as host_stat
import struct
from dataclasses import dataclass

from ..errors import EFAULT, EINVAL, ENOENT, kerr
from ..mm.fault import copy_to_user
from ..uapi import AT_FDCWD, PAGE_SIZE
from .file import S_IFCHR, S_IFDIR, S_IFIFO, S_IFSOCK, File, Inode
from .namei import path_at
from .read_write import access_ok, copy_to_user_partial
from .stdio import is_stdio
from .vfs import DevNullOps, DevZeroOps, RandomOps, inode_get_bytes, proc_pid_task

#: include/uapi/linux/fcntl.h: the flags of the *at() stat calls
AT_SYMLINK_NOFOLLOW = 0x100
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000
#: include/uapi/linux/stat.h: statx's mask bits
STATX_BASIC_STATS = 0x7FF
STATX_BTIME = 0x800
STATX_MNT_ID = 0x1000
STATX__RESERVED = 0x80000000

#: struct stat (144 bytes): st_dev, st_ino, st_nlink, st_mode, st_uid, st_gid, pad,
#: st_rdev, st_size, st_blksize, st_blocks, then seconds and nanoseconds of st_atime,
#: st_mtime, st_ctime, and three unused longs
STAT = struct.Struct("<QQQIIIiQqqqQQQQQQ24x")
#: struct statx (256 bytes) up to stx_mnt_id; the rest is zero
STATX_HEAD = struct.Struct("<IIQIIIH2xQQQQ" + "qIi" * 4 + "IIIIQ")
STATX_SIZE = 256
#: where stx_size and stx_blocks lie in struct statx
STATX_SIZE_OFFSET = 40
STATX_SIZE_BLOCKS = struct.Struct("<QQ")
#: fs/proc/root.c proc_fill_super(): procfs's block size
PROC_BLOCK_SIZE = 1024
#: the host's statx(2), for the files it has
_NR_STATX = 332
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_S_IFMT = {"reg": host_stat.S_IFREG, "dir": host_stat.S_IFDIR, "chr": host_stat.S_IFCHR,
           "fifo": host_stat.S_IFIFO, S_IFSOCK: host_stat.S_IFSOCK}
#: drivers/char/mem.c devlist: the device numbers of the model's memory devices
_RDEV = {DevNullOps: (1, 3), DevZeroOps: (1, 5), RandomOps: (1, 8)}


@dataclass
class Kstat:
    """struct kstat: a file's attributes, times in ns."""

    dev: tuple[int, int]
    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    rdev: tuple[int, int]
    size: int
    blksize: int
    blocks: int
    atime: int
    mtime: int
    ctime: int


def new_encode_dev(dev: tuple[int, int]) -> int:
    """include/linux/kdev_t.h new_encode_dev(): the dev_t of (major, minor)."""
    major, minor = dev
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def _from_host(st: os.stat_result) -> Kstat:
    return Kstat((os.major(st.st_dev), os.minor(st.st_dev)), st.st_ino, st.st_mode, st.st_nlink,
                 st.st_uid, st.st_gid, (os.major(st.st_rdev), os.minor(st.st_rdev)), st.st_size,
                 st.st_blksize, st.st_blocks, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


def host_twin(inode: Inode) -> os.stat_result | None:
    """The host's stat of the file the inode mirrors: the host file at the inode's path
    with the inode's device and inode number; None for a file of the model's own."""
    try:
        st = os.stat(inode.path)
    except (OSError, ValueError):
        return None
    if (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) != (*inode.dev, inode.ino):
        return None
    return st


def inode_getattr(task, inode: Inode) -> Kstat:
    """vfs_getattr(): the inode's attributes (see the module's docstring)."""
    twin = host_twin(inode)
    if twin is not None:
        k = _from_host(twin)
        if inode.kind != S_IFDIR and k.size != inode.size:
            k.size, k.blocks = inode.size, inode_get_bytes(inode) // 512
        return k
    boot = task.kernel.clock.boot_realtime
    nlink = inode.nlink if inode.kind != S_IFDIR else 2
    mode = _S_IFMT[inode.kind] | (inode.mode & 0o7777)
    rdev = _RDEV.get(type(inode.fops), (0, 0)) if inode.kind == S_IFCHR else (0, 0)
    size = inode.size if inode.kind not in (S_IFCHR, S_IFIFO, S_IFSOCK) else 0
    return Kstat(inode.dev, inode.ino, mode, nlink, task.uid, task.uid, rdev, size,
                 _blksize(inode), inode_get_bytes(inode) // 512, boot, boot, boot)


def _blksize(inode: Inode) -> int:
    """generic_fillattr(): st_blksize is the superblock's block size: procfs's 1024
    (proc_fill_super()), a page for the model's other filesystems."""
    mount = inode.mount
    return PROC_BLOCK_SIZE if mount is not None and mount.fstype == "proc" else PAGE_SIZE


def file_getattr(task, file: File) -> Kstat:
    """vfs_fstat(): the attributes of an open file (an O_PATH one too)."""
    if is_stdio(file):
        return _from_host(file.private_data.fstat())
    return inode_getattr(task, file.inode)


def stat_target(task, dirfd: int, name: str | None, flags: int) -> File | Inode | str:
    """vfs_statx()'s lookup: the file `name` names from dirfd; the empty name (or NULL)
    with AT_EMPTY_PATH is dirfd's open file itself (EBADF for a bad fd); the last
    component not followed under AT_SYMLINK_NOFOLLOW: a host symbolic link is then its
    host path (a str)."""
    if not name:
        if name is None and not flags & AT_EMPTY_PATH:
            raise kerr(EFAULT)
        if not flags & AT_EMPTY_PATH:
            raise kerr(ENOENT)
        if (dirfd & 0xFFFFFFFF) != AT_FDCWD & 0xFFFFFFFF:
            return task._file(dirfd)
    follow = not flags & AT_SYMLINK_NOFOLLOW
    path = path_at(task, dirfd, name or "", follow)
    if path not in task.kernel.fs.inodes and os.path.islink(path):
        return path
    return task.kernel.fs.lookup(path)


def target_getattr(task, target: File | Inode | str) -> Kstat:
    if isinstance(target, File):
        return file_getattr(task, target)
    if isinstance(target, str):
        return _from_host(os.lstat(target))
    return inode_getattr(task, target)


def path_getattr(task, dirfd: int, name: str | None, flags: int) -> Kstat:
    """The attributes of what stat_target() finds."""
    return target_getattr(task, stat_target(task, dirfd, name, flags))


def cp_new_stat(task, k: Kstat, statbuf: int) -> int:
    """fs/stat.c cp_new_stat(): struct stat at statbuf (EFAULT)."""
    copy_to_user(task, statbuf, STAT.pack(
        new_encode_dev(k.dev), k.ino, k.nlink, k.mode, k.uid, k.gid, 0, new_encode_dev(k.rdev),
        k.size, k.blksize, k.blocks, *_sec_nsec(k.atime), *_sec_nsec(k.mtime),
        *_sec_nsec(k.ctime)))
    return 0


def _sec_nsec(ns: int) -> tuple[int, int]:
    return ns // 1_000_000_000, ns % 1_000_000_000


# --- the calls ----------------------------------------------------------------------

def sys_newfstat(task, fd: int, statbuf: int) -> int:
    return cp_new_stat(task, file_getattr(task, task._file(fd)), statbuf)


def sys_newstat(task, path: str, statbuf: int) -> int:
    """stat(2) of the walked path."""
    return cp_new_stat(task, inode_getattr(task, task.kernel.fs.lookup(path)), statbuf)


def sys_newlstat(task, name: str | None, statbuf: int) -> int:
    return cp_new_stat(task, path_getattr(task, AT_FDCWD, name, AT_SYMLINK_NOFOLLOW), statbuf)


def sys_newfstatat(task, dirfd: int, name: str | None, statbuf: int, flags: int) -> int:
    """newfstatat(2): fs/stat.c vfs_fstatat(): EINVAL for flags but AT_SYMLINK_NOFOLLOW,
    AT_NO_AUTOMOUNT and AT_EMPTY_PATH; then the file, then the struct."""
    flags &= 0xFFFFFFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH):
        raise kerr(EINVAL)
    return cp_new_stat(task, path_getattr(task, dirfd, name, flags), statbuf)


def sys_statx(task, dirfd: int, name: str | None, flags: int, mask: int, buf: int) -> int:
    """statx(2): fs/stat.c do_statx(): EINVAL for a reserved mask bit, unknown flags or
    both sync types at once; then the file and struct statx (cp_statx()): every basic
    field and the mount id, whatever the mask asked (stx_mask says which)."""
    flags, mask = flags & 0xFFFFFFFF, mask & 0xFFFFFFFF
    if mask & STATX__RESERVED:
        raise kerr(EINVAL)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE):
        raise kerr(EINVAL)
    if flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE:
        raise kerr(EINVAL)
    target = stat_target(task, dirfd, name, flags)
    host = _host_statx(target, flags, mask)
    if host is not None:
        copy_to_user(task, buf, host)
        return 0
    k = target_getattr(task, target)
    times = [x for t in (k.atime, 0, k.ctime, k.mtime) for x in (*_sec_nsec(t), 0)]
    head = STATX_HEAD.pack(STATX_BASIC_STATS | STATX_MNT_ID, k.blksize, 0, k.nlink, k.uid,
                           k.gid, k.mode, k.ino, k.size, k.blocks, 0, *times, *k.rdev, *k.dev,
                           1)
    copy_to_user(task, buf, head.ljust(STATX_SIZE, b"\0"))
    return 0


def _host_statx(target: File | Inode | str, flags: int, mask: int) -> bytes | None:
    """The host's struct statx of a host file (its mask, birth time, attributes and
    mount id are the host filesystem's), its size and blocks the model's; None for a
    file of the model's own."""
    if isinstance(target, File) and is_stdio(target):
        return _statx_syscall(target.private_data.fd, b"", AT_EMPTY_PATH, mask)
    inode = target.inode if isinstance(target, File) else target
    if isinstance(inode, str):
        return _statx_syscall(AT_FDCWD, os.fsencode(inode), AT_SYMLINK_NOFOLLOW, mask)
    if host_twin(inode) is None:
        return None
    raw = bytearray(_statx_syscall(AT_FDCWD, os.fsencode(inode.path),
                                   flags & (AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE), mask))
    size, _blocks = STATX_SIZE_BLOCKS.unpack_from(raw, STATX_SIZE_OFFSET)
    if inode.kind != S_IFDIR and size != inode.size:
        STATX_SIZE_BLOCKS.pack_into(raw, STATX_SIZE_OFFSET, inode.size, inode_get_bytes(inode) // 512)
    return bytes(raw)


def _statx_syscall(dirfd: int, path: bytes, flags: int, mask: int) -> bytes:
    buf = ctypes.create_string_buffer(STATX_SIZE)
    if _libc.syscall(ctypes.c_long(_NR_STATX), ctypes.c_long(dirfd), ctypes.c_char_p(path),
                     ctypes.c_long(flags), ctypes.c_long(mask), buf) == -1:
        raise kerr(ctypes.get_errno())
    return buf.raw


# --- readlink: fs/stat.c do_readlinkat() ----------------------------------------------

#: /proc/PID/exe, /proc/PID/cwd, /proc/PID/fd/N: the links of fs/proc/base.c
_PROC_LINK = re.compile(r"/proc/(self|[1-9][0-9]*)/(exe|cwd|fd/[0-9]+)")


def do_readlinkat(task, dirfd: int, name: str | None, buf: int, bufsiz: int) -> int:
    """readlinkat(2): EINVAL for a size not above 0; the name (EFAULT for NULL, ENOENT
    for the empty one); the link's target (a host symbolic link's, or /proc/PID/exe,
    cwd and fd/N: proc_pid_readlink()), cut to bufsiz bytes and copied without a NUL;
    a file that is not a link is EINVAL. Returns the bytes copied."""
    bufsiz = ((bufsiz + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    if bufsiz <= 0:
        raise kerr(EINVAL)
    if name is None:
        raise kerr(EFAULT)
    if not name:
        raise kerr(ENOENT)
    path = path_at(task, dirfd, name, follow=False)
    target = _proc_link(task, path)
    if target is None:
        if path not in task.kernel.fs.inodes and os.path.islink(path):
            target = os.readlink(path)
        else:
            task.kernel.fs.lookup(path)
            raise kerr(EINVAL)
    data = os.fsencode(target)[:bufsiz]
    if not access_ok(task, buf, len(data)):
        raise kerr(EFAULT)
    n = copy_to_user_partial(task, buf, data)
    if n < len(data):
        raise kerr(EFAULT)
    return n


def _proc_link(task, path: str) -> str | None:
    """The target of a /proc/PID link: the exe's path, the cwd, an fd's file; ENOENT
    for no such process, exe or fd. None: not one of them."""
    match = _PROC_LINK.fullmatch(path)
    if match is None:
        return None
    pid, entry = match.groups()
    target = proc_pid_task(task, pid)
    if entry == "cwd":
        return target.cwd
    if entry == "exe":
        if target.exe_file is None:
            raise kerr(ENOENT)
        return target.exe_file.display_path()
    file = target.files.get(int(entry[3:]))
    if file is None:
        raise kerr(ENOENT)
    return file.display_path()

