"""Names from user memory, and the paths they name: fs/namei.c getname() and path
walking (the working directory, a dirfd, ENOTDIR and ENAMETOOLONG on the way), for the
calls a program makes through the x86-64 entry.

The model's namespace is vmsim.fs.vfs; a path it lacks, outside the model's own mounts
(/proc, /dev, /dev/shm, tmpfs mounts), is this machine's: the file or directory is
mirrored into the model on first use (procmaps.mirror_host_file, as execve does), and
the host's symbolic links are followed as the host's path walk follows them (the model
has no symbolic links of its own). The host is only read: whatever the program writes
goes to the model's copy.
"""

from __future__ import annotations

import os
import posixpath
import stat

from ..errors import EFAULT, ENAMETOOLONG, ENOENT, ENOTDIR, kerr
from ..mm.fault import copy_from_user
from ..uapi import AT_FDCWD, PAGE_SIZE, PATH_MAX
from .file import S_IFDIR
from .procmaps import mirror_host_file

#: include/uapi/linux/limits.h: the longest name of one path component
NAME_MAX = 255


def strncpy_from_user(task, addr: int, limit: int) -> bytes | None:
    """lib/strncpy_from_user.c: the C string at addr, read up to `limit` bytes: its
    bytes without the NUL, or None if the first `limit` bytes hold no NUL. EFAULT for
    a fault before the NUL. Cost: O(string length)."""
    out = bytearray()
    while len(out) < limit:
        at = addr + len(out)
        chunk = copy_from_user(task, at, min(PAGE_SIZE - at % PAGE_SIZE, limit - len(out)))
        nul = chunk.find(0)
        if nul >= 0:
            return bytes(out + chunk[:nul])
        out += chunk
    return None


def getname(task, addr: int) -> str:
    """fs/namei.c getname(): the path at addr, for a call that needs one: EFAULT,
    ENAMETOOLONG for no NUL within PATH_MAX bytes, ENOENT for the empty string."""
    name = getname_empty(task, addr)
    if name is None:
        raise kerr(EFAULT)
    if not name:
        raise kerr(ENOENT)
    return name


def getname_empty(task, addr: int) -> str | None:
    """getname_uflags() with AT_EMPTY_PATH (LOOKUP_EMPTY): the path at addr, which may
    be empty; None for NULL, which the stat calls take as the empty path
    (vfs_empty_path()). EFAULT, ENAMETOOLONG as getname()."""
    if addr == 0:
        return None
    name = strncpy_from_user(task, addr, PATH_MAX)
    if name is None:
        raise kerr(ENAMETOOLONG)
    return os.fsdecode(name)


def strndup_user(task, addr: int) -> str | None:
    """A string argument that is not a path (memfd_create's name): read as
    strnlen_user() reads it, up to PATH_MAX bytes (the call itself refuses a longer
    one); None for NULL, which the call refuses."""
    if addr == 0:
        return None
    name = strncpy_from_user(task, addr, PATH_MAX)
    if name is None:
        name = copy_from_user(task, addr, PATH_MAX)
    return os.fsdecode(name)


# --- path walking -------------------------------------------------------------------

def dirfd_path(task, dirfd: int) -> str:
    """The directory a relative path starts from: the working directory for
    AT_FDCWD, else the directory open as dirfd (EBADF; ENOTDIR)."""
    dirfd = ((dirfd + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    if dirfd == AT_FDCWD:
        return task.cwd
    file = task._file(dirfd)
    if file.inode.kind != S_IFDIR:
        raise kerr(ENOTDIR)
    return file.path


def path_at(task, dirfd: int, name: str, follow: bool = True) -> str:
    """The absolute, normalised path `name` names from dirfd (fs/namei.c
    path_init() and link_path_walk()): ENAMETOOLONG for a component longer than
    NAME_MAX; a path through something that is not a directory, or a trailing slash
    after one, is ENOTDIR. The host's part of it is mirrored and its symbolic links
    followed, the last one only if `follow` (not under O_NOFOLLOW, AT_SYMLINK_NOFOLLOW,
    for lstat and readlink). The empty name is the start directory (AT_EMPTY_PATH)."""
    if any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in name.split("/")):
        raise kerr(ENAMETOOLONG)
    start = "/" if name.startswith("/") else dirfd_path(task, dirfd)
    path = posixpath.normpath(posixpath.join(start, name)) if name else start
    path = "/" + path.lstrip("/")
    fs = task.kernel.fs
    parent, base = posixpath.split(path)
    if follow or not base or not os.path.islink(path) or path in fs.inodes \
            or not host_backed(fs, path):
        path = follow_host(fs, path)
    else:
        path = posixpath.join(follow_host(fs, parent), base)
    _check_dirs(fs, path, name.endswith("/"))
    return path


def _check_dirs(fs, path: str, trailing_slash: bool) -> None:
    """ENOTDIR where a component before the last, or the last one with a trailing
    slash, exists and is not a directory."""
    parts = path.strip("/").split("/")
    prefix = ""
    for i, part in enumerate(parts):
        prefix += "/" + part
        inode = fs.inodes.get(prefix)
        if inode is None:
            return
        if inode.kind != S_IFDIR and (i < len(parts) - 1 or trailing_slash):
            raise kerr(ENOTDIR)


def host_backed(fs, path: str) -> bool:
    """The path belongs to this machine: it is on the model's root filesystem (not
    below /proc, /dev or another mount of the model's own)."""
    return fs.mount_of(path).path == "/"


def follow_host(fs, path: str) -> str:
    """The path with the host's symbolic links followed, and the host's file mirrored
    into the model; for a name the host lacks, the longest part of it the host has (the
    directory a new file goes in, or the file a walk through it stops at: ENOTDIR). A
    path the model has, or that is not the host's, as it is."""
    if path in fs.inodes or not host_backed(fs, path):
        return path
    head, rest = path, ""
    while not os.path.lexists(head):
        head, base = posixpath.split(head)
        rest = posixpath.join(base, rest) if rest else base
    real = os.path.realpath(head)
    _mirror(fs, real)
    return posixpath.join(real, rest) if rest else real


def _mirror(fs, real: str) -> None:
    """Mirror the host's file or directory at the resolved path `real`; one the host
    cannot give (a socket, a device, no permission) is left out: the lookup then
    fails in the model as ENOENT. The model's directories above it that the host has
    (/ and /tmp, made with the namespace) take the host's identity and mode: they are
    the host's directories."""
    try:
        mirror_host_file(fs, real)
    except OSError:
        pass
    prefix = ""
    for part in real.strip("/").split("/"):
        prefix += "/" + part
        inode = fs.inodes.get(prefix)
        if inode is None or inode.kind != S_IFDIR or not host_backed(fs, prefix):
            return
        try:
            st = os.stat(prefix)
        except OSError:
            return
        inode.dev, inode.ino = (os.major(st.st_dev), os.minor(st.st_dev)), st.st_ino
        inode.mode = stat.S_IMODE(st.st_mode)
