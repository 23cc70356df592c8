"""Inodes, open files (`struct file`) and the file_operations contract.

Mirrors include/linux/fs.h: an `Inode` holds the data (its page cache) and identity
(dev, ino); a `File` is one open() of it: the identity the mm layer compares when it
decides whether two VMAs may merge (two opens never merge, a dup does).
"""

from __future__ import annotations

from ..uapi import PAGE_SIZE

S_IFREG = "reg"
S_IFDIR = "dir"
S_IFCHR = "chr"
S_IFIFO = "fifo"

#: f_mode bits (include/linux/fs.h)
FMODE_READ = 0x1
FMODE_WRITE = 0x2
FMODE_PATH = 0x4000   # an O_PATH file: fget() refuses it for mmap


class FileOperations:
    """`struct file_operations`: what a file type lets the core do with it.

    Drivers subclass this. Members left as None are absent, as in the kernel.

    open(file) -> None
        A new open file (struct file) of this inode; may set file.private_data or
        refuse (raise OSError).
    mmap(file, vma) -> None
        Called by mmap_region() for a new VMA that could not be merged, after the
        VMA's range, flags and pgoff are set. May set vma.vm_ops, vma.private_data
        and add flags (e.g. VM_PFNMAP|VM_IO); may refuse by raising OSError (the
        MAP_FIXED range then stays unmapped). Must not change the range.
    get_unmapped_area(file, addr, length, pgoff, flags) -> addr
        Chooses the address of a new mapping, or refuses (raise OSError).
    unlocked_ioctl(task, file, cmd, arg) -> int
        ioctl(2) by `task` (the kernel's current). Raise OSError to fail.
    release(file) -> None
        The last reference to the open file went away.
    """

    open = None
    mmap = None
    get_unmapped_area = None
    unlocked_ioctl = None
    release = None
    #: FOP_MMAP_SYNC: MAP_SHARED_VALIDATE may pass MAP_SYNC to this file's mmap.
    mmap_sync = False
    #: get_unmapped_area is thp_get_unmapped_area or shmem's, which honour MAP_FIXED,
    #: so mremap may move several VMAs of this file at once (vma_multi_allowed()).
    trusted_placement = False


class Inode:
    """An inode: identity (dev, ino), type, size and the page cache.

    Invariant: `pages` holds only indexes below ceil(size / PAGE_SIZE) for regular
    files and shmem objects (truncation drops the rest).
    """

    __slots__ = ("ino", "dev", "kind", "size", "pages", "fops", "nlink", "path",
                 "mount", "rdev_name", "append_only", "private")

    def __init__(self, ino, dev, kind, fops, path, mount=None, size=0):
        self.ino = ino
        self.dev = dev          # (major, minor)
        self.kind = kind
        self.size = size
        self.pages: dict[int, bytearray] = {}
        self.fops = fops
        self.nlink = 1
        self.path = path        # name shown in maps (d_path at open time)
        self.mount = mount
        self.append_only = False
        self.private = None

    # --- page cache (mm/filemap.c) ---
    def page(self, index: int) -> bytearray:
        """The page-cache page at `index`, created (zero-filled) on first use."""
        pg = self.pages.get(index)
        if pg is None:
            pg = self.pages[index] = bytearray(PAGE_SIZE)
        return pg

    def read(self, offset: int, n: int) -> bytes:
        out = bytearray()
        end = min(offset + n, self.size)
        while offset < end:
            idx, off = divmod(offset, PAGE_SIZE)
            chunk = min(PAGE_SIZE - off, end - offset)
            pg = self.pages.get(idx)
            out += pg[off:off + chunk] if pg is not None else bytes(chunk)
            offset += chunk
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            idx, off = divmod(offset + pos, PAGE_SIZE)
            chunk = min(PAGE_SIZE - off, len(data) - pos)
            self.page(idx)[off:off + chunk] = data[pos:pos + chunk]
            pos += chunk
        self.size = max(self.size, offset + len(data))

    def truncate(self, size: int) -> None:
        """Set i_size; pages wholly past it leave the cache, the tail is zeroed."""
        if size < self.size:
            first_gone = -(-size // PAGE_SIZE)
            for idx in [i for i in self.pages if i >= first_gone]:
                del self.pages[idx]
            tail = size % PAGE_SIZE
            if tail and (size // PAGE_SIZE) in self.pages:
                pg = self.pages[size // PAGE_SIZE]
                pg[tail:] = bytes(PAGE_SIZE - tail)
        self.size = size

    @property
    def noexec(self) -> bool:
        return self.mount is not None and self.mount.noexec


class File:
    """`struct file`: one open of an inode. Compared by identity when merging VMAs."""

    __slots__ = ("inode", "f_mode", "f_flags", "refs", "private_data", "path")

    def __init__(self, inode: Inode, f_mode: int, f_flags: int, path: str | None = None):
        self.inode = inode
        self.f_mode = f_mode
        self.f_flags = f_flags
        self.refs = 0
        self.private_data = None
        self.path = path if path is not None else inode.path

    @property
    def f_op(self) -> FileOperations:
        return self.inode.fops

    def get(self) -> File:
        """get_file(): one more reference (an fd, a VMA)."""
        self.refs += 1
        return self

    def put(self) -> None:
        """fput(): drop a reference; the last one calls ->release."""
        self.refs -= 1
        if self.refs == 0 and self.f_op.release is not None:
            self.f_op.release(self)

    def display_path(self) -> str:
        """d_path() as /proc/PID/maps prints it."""
        if self.inode.nlink == 0:
            return self.path + " (deleted)"
        return self.path

