"""Inodes, open files (`struct file`) and the file_operations contract.

Mirrors include/linux/fs.h: an `Inode` holds the data (its page cache) and identity
(dev, ino); a `File` is one open() of it: the identity the mm layer compares when it
decides whether two VMAs may merge (two opens never merge, a dup does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..mm.hooks import f_release
from ..mm.page_alloc import Page, alloc_page
from ..mm.vma import Vma
from ..uapi import F_SEAL_SEAL, PAGE_SIZE

S_IFREG = "reg"
S_IFDIR = "dir"
S_IFCHR = "chr"
S_IFIFO = "fifo"
S_IFSOCK = "sock"

#: f_mode bits (include/linux/fs.h)
FMODE_READ = 0x1
FMODE_WRITE = 0x2
FMODE_PATH = 0x4000   # an O_PATH file: fget() refuses it for mmap


class FileOperations:
    """`struct file_operations`: what a file type lets the core do with it.

    Drivers subclass it and define the members they need as methods; a member left
    None is absent, as in the kernel (mmap without ->mmap is ENODEV, ioctl without
    ->unlocked_ioctl ENOTTY). `task` is the calling Process (the kernel's current).

    The core holds the members below to their contracts as it does VmOperations' (see
    there and mm/hooks.py): ->mmap and ->get_unmapped_area run under the mmap_lock (a
    call back into mm is refused), ->unlocked_ioctl and ->release without it (they may
    call into mm); what a member may change is said below, anything else it changes is
    put back; a refusal is an OSError with errno 1..4095; on a violation the core takes
    the kernel's error path and raises HookContractError (KeyboardInterrupt and
    SystemExit propagate after the same cleanup). The kernel's own file types
    (fs/vfs.py) are called without the checks.
    """

    open: Callable[[File], None] | None = None
    """open(file): a new open file (struct file) of this inode. May set
    file.private_data; raise OSError to refuse the open(2). Returns nothing."""

    mmap: Callable[[File, Vma], None] | None = None
    """mmap(file, vma): called by mmap_region() for a new VMA that could not be merged,
    after the VMA's range, flags and pgoff are set and before it enters the tree. May
    set vma.vm_ops (a VmOperations, or None) and vma.private_data, and change flags
    (e.g. add VM_PFNMAP|VM_IO, clear VM_MAYWRITE; changed flags without VM_SPECIAL make
    the core try a merge again) but for mm.hooks.MMAP_FIXED_FLAGS (access, sharing,
    VM_ACCOUNT, VM_GROWSDOWN, VM_SEALED, the pkey) and without gaining a VM_MAY* bit
    (Linux warns when it gains VM_MAYWRITE). Returns nothing, or refuses. Refusal and
    violation alike take __mmap_new_file_vma()'s error path: fput(), the PTEs the
    driver made go, and the MAP_FIXED range stays unmapped."""

    get_unmapped_area: Callable[[Any, File, int, int, int, int], int] | None = None
    """get_unmapped_area(task, file, addr, length, pgoff, flags): choose the address of
    a new mapping of `file` (addr is the hint, or the address under MAP_FIXED) and
    return it, an int in 0..2^64-1; or refuse. Absent: the mm's own top-down/bottom-up
    search. The core then checks the result as for any mapping (inside TASK_SIZE, page
    aligned, mmap_min_addr). Changes nothing; a violation fails the mmap or mremap
    before anything is mapped."""

    unlocked_ioctl: Callable[[Any, File, int, int], int] | None = None
    """unlocked_ioctl(task, file, cmd, arg): ioctl(2) by `task` of a command the VFS
    does not answer itself (fs/ioctl.c do_vfs_ioctl()); returns its result, an int, or
    refuses. A syscall of its own: it may call into mm (copy_from_user(), vm_munmap(),
    ...); if it does not, it must change nothing of task's mm."""

    fasync: Callable[[File, bool], None] | None = None
    """fasync(file, on): FIOASYNC turned SIGIO on I/O readiness on or off; the core then
    sets or clears FASYNC in file.f_flags. Absent: FIOASYNC on is ENOTTY. Raise OSError
    to refuse. Returns nothing."""

    release: Callable[[File], None] | None = None
    """release(file): the last reference to the open file went away (its last fd
    closed and its last VMA unmapped). Runs after the operation that dropped it (Linux
    runs __fput() from task work) and without the mmap_lock, so it may call into mm,
    except during exit, when the mm is going away. Returns nothing, cannot fail. A
    violation does not undo the close or unmap: it completes, then HookContractError."""

    #: FOP_MMAP_SYNC: MAP_SHARED_VALIDATE may pass MAP_SYNC to this file's mmap.
    mmap_sync: bool = False
    #: get_unmapped_area is thp_get_unmapped_area or shmem's, which honour MAP_FIXED,
    #: so mremap may move several VMAs of this file at once (vma_multi_allowed()).
    trusted_placement: bool = False
    #: shmem_file(): these are shmem_file_operations (tmpfs, shared anonymous memory).
    is_shmem: bool = False
    #: is_file_hugepages(): these are hugetlbfs_file_operations.
    is_hugetlbfs: bool = False


#: fs/open.c empty_fops: the file operations of an O_PATH file
EMPTY_FOPS = FileOperations()


class Inode:
    """An inode: identity (dev, ino), type, size and the page cache.

    Invariant: `pages` holds only indexes below ceil(size / PAGE_SIZE) for regular
    files and shmem objects (truncation drops the rest), but for the tail of a
    PMD-sized shmem folio (MADV_COLLAPSE), which may lie past EOF; `huge_folios` holds
    the first index of each such folio, whose 512 pages are all in `pages`. Each page
    is a frame of mm/page_alloc.py, freed when it leaves the cache.
    """

    __slots__ = ("ino", "dev", "kind", "size", "pages", "fops", "nlink", "path",
                 "mount", "append_only", "huge_folios", "mode", "seals")

    def __init__(self, ino: int, dev: tuple[int, int], kind: str, fops: FileOperations,
                 path: str, mount: Any = None, size: int = 0):
        self.ino = ino
        self.dev = dev          # (major, minor)
        self.kind = kind
        self.size = size
        self.pages: dict[int, Page] = {}
        self.fops = fops
        self.nlink = 1
        self.path = path        # its name, shown in maps (d_path); rename() moves it
        #: the vfs.Mount (that module imports this one: typed Any), None for pipes
        self.mount = mount
        self.append_only = False
        self.huge_folios: set[int] = set()
        #: the permission bits of i_mode (S_IFMT is `kind`); execve needs an x bit
        self.mode = 0o644
        #: F_SEAL_* of a shmem or hugetlbfs inode (shmem_inode_info->seals): F_SEAL_SEAL
        #: from the start, so only memfd_create() makes a sealable file (fs/memfd.py);
        #: never consulted for other file types
        self.seals = F_SEAL_SEAL

    # --- page cache (mm/filemap.c) ---
    def page(self, index: int) -> Page:
        """The page-cache page at `index`, created (a zeroed frame) on first use."""
        pg = self.pages.get(index)
        if pg is None:
            pg = self.pages[index] = alloc_page()
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
            # a huge folio the new EOF cuts into is split (truncate_inode_partial_folio)
            self.huge_folios = {h for h in self.huge_folios if (h + 512) * PAGE_SIZE <= size}
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

    __slots__ = ("inode", "f_mode", "f_flags", "refs", "private_data", "f_pos")

    def __init__(self, inode: Inode, f_mode: int, f_flags: int):
        self.inode = inode
        self.f_mode = f_mode
        self.f_flags = f_flags
        self.refs = 0
        #: the file position read(2), write(2) and lseek(2) use (fs/read_write.py): a
        #: loff_t, never negative; shared by the fds a dup() made, as the struct is
        self.f_pos = 0
        #: the driver's own state (file->private_data)
        self.private_data: Any = None

    @property
    def path(self) -> str:
        """The name it was opened by, as it is now (the dentry's: a rename moves it; the
        model has no hard links, so it is the inode's name)."""
        return self.inode.path

    @property
    def f_op(self) -> FileOperations:
        """The inode's file operations; an O_PATH file has none (fs/open.c
        do_dentry_open() gives it empty_fops: no mmap, ioctl, or release)."""
        return EMPTY_FOPS if self.f_mode & FMODE_PATH else self.inode.fops

    def get(self) -> File:
        """get_file(): one more reference (an fd, a VMA)."""
        self.refs += 1
        return self

    def put(self, mm: Any = None) -> None:
        """fput(): drop a reference; the last one calls ->release at once (see
        release(); `mm`: the address space of the operation that dropped it)."""
        if self.drop_ref():
            self.release(mm)

    def drop_ref(self) -> bool:
        """The counting half of fput(): True when that was the last reference, and
        release() is due (an unmap calls it once it is done, as Linux runs __fput()
        from task work)."""
        self.refs -= 1
        return self.refs == 0

    def release(self, mm: Any = None) -> None:
        """__fput(): f_op->release, held to its contract (mm.hooks.f_release) in `mm`,
        the address space of the operation that dropped the last reference (None: a
        file table)."""
        f_release(self, mm)

    def display_path(self) -> str:
        """d_path() as /proc/PID/maps prints it."""
        if self.inode.nlink == 0:
            return self.path + " (deleted)"
        return self.path

