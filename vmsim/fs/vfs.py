"""The namespace: paths, mounts, regular files, directories, pipes, devices, shmem,
pidfds, /proc/PID/mem; and what every open file answers: ioctl, pread, pwrite, ftruncate.

Stands for fs/namei.c (lookup, unlink, rmdir, rename), fs/namespace.c, fs/open.c,
fs/pipe.c, fs/pidfs.c, fs/ioctl.c, fs/read_write.c, mm/shmem.c (shmem_file_setup,
shmem_zero_setup, the seal checks of shmem_setattr and shmem_write_begin),
drivers/char/mem.c (/dev/zero, /dev/null, /dev/random) and fs/proc/base.c
(/proc/PID/mem: another process's memory as debuggers read it) — only as far as the mm
layer can observe them: which file types can be mmapped, the mode an open file has,
noexec mounts, the largest file each filesystem holds, inode identity and contents, and
unlinked and renamed files.
"""

from __future__ import annotations

import posixpath
import re
import struct

from ..errors import (
    EACCES,
    EBADF,
    EBUSY,
    EEXIST,
    EFAULT,
    EFBIG,
    EINVAL,
    EIO,
    EISDIR,
    ENOENT,
    ENOMEM,
    ENOTDIR,
    ENOTEMPTY,
    ENOTTY,
    EOPNOTSUPP,
    EPERM,
    ESPIPE,
    ETXTBSY,
    EXDEV,
    kerr,
)
from ..mm.fault import FILE_VM_OPS, access_remote_vm, copy_from_user, copy_to_user, hugetlb_vm_ops
from ..mm.flags import VM_DONTEXPAND, VM_HUGETLB, VM_NORESERVE, VM_SHARED, VM_SYNC
from ..mm.hooks import f_unlocked_ioctl
from ..mm.mmap import MAX_LFS_FILESIZE
from ..mm.placement import hugetlb_unmapped_area, mm_get_unmapped_area, thp_get_unmapped_area
from ..mm.truncate import truncate_setsize
from ..uapi import (
    F_SEAL_FUTURE_WRITE,
    F_SEAL_GROW,
    F_SEAL_SHRINK,
    F_SEAL_WRITE,
    FASYNC,
    FIOASYNC,
    FIOCLEX,
    FIONBIO,
    FIONCLEX,
    FIONREAD,
    FIOQSIZE,
    MAP_SHARED,
    O_ACCMODE,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOFOLLOW,
    O_NONBLOCK,
    O_PATH,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    RLIM_INFINITY,
    RLIMIT_FSIZE,
)
from .file import (
    FMODE_PATH,
    FMODE_READ,
    FMODE_WRITE,
    S_IFCHR,
    S_IFDIR,
    S_IFIFO,
    S_IFREG,
    File,
    FileOperations,
    Inode,
)
from .proc_array import proc_pid_status

#: fs/ext4/super.c ext4_max_size() of an extent-mapped file with 4 KiB blocks: 2^32 - 1
#: blocks (the tmpfs, devtmpfs, procfs and hugetlbfs limit is MAX_LFS_FILESIZE)
EXT4_MAXBYTES = 0xFFFFFFFF000
#: open(2) with O_PATH keeps only these flags (fs/open.c build_open_how())
O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC


class Mount:
    """A mounted filesystem: its device number, type, the noexec option and the
    largest file it holds (sb->s_maxbytes)."""

    __slots__ = ("path", "dev", "fstype", "noexec", "next_ino", "maxbytes")

    def __init__(self, path, dev, fstype, noexec=False, first_ino=2):
        self.path = path
        self.dev = dev
        self.fstype = fstype
        self.noexec = noexec
        self.next_ino = first_ino
        self.maxbytes = EXT4_MAXBYTES if fstype == "ext4" else MAX_LFS_FILESIZE

    def new_ino(self) -> int:
        self.next_ino += 1
        return self.next_ino - 1


# --- file types -------------------------------------------------------------------

class NoMmapOps(FileOperations):
    """Directories, procfs files, /dev/null: no ->mmap (ENODEV)."""


class DevNullOps(NoMmapOps):
    """/dev/null (drivers/char/mem.c null_fops): no ->mmap; reads find the end of the
    file, writes are discarded (see chrdev_read(), chrdev_write())."""


#: include/uapi/linux/random.h: the ioctls of /dev/random and /dev/urandom
RNDGETENTCNT = 0x80045200
RNDADDTOENTCNT = 0x40045201
RNDADDENTROPY = 0x40085203
RNDZAPENTCNT = 0x5204
RNDCLEARPOOL = 0x5206
RNDRESEEDCRNG = 0x5207
#: drivers/char/random.c POOL_READY_BITS: the entropy count of a ready input pool
POOL_READY_BITS = 256


class RandomOps(NoMmapOps):
    """/dev/random (drivers/char/random.c): no ->mmap; SIGIO may be asked for; reads
    give random bytes (from the kernel's seeded generator), writes are mixed in."""

    def fasync(self, file, on):
        """random_fasync(): the core keeps FASYNC in f_flags; the model sends no SIGIO."""

    def unlocked_ioctl(self, task, file, cmd, arg):
        """random_ioctl(): RNDGETENTCNT puts the pool's entropy count (the model's pool
        is always ready: POOL_READY_BITS); the commands that feed or reset the pool need
        CAP_SYS_ADMIN (EPERM), read their arguments (EFAULT; a negative count is EINVAL)
        and change nothing the model shows; any other command is EINVAL, FIONREAD
        included [obs]."""
        if cmd == RNDGETENTCNT:
            copy_to_user(task, arg, struct.pack("<i", POOL_READY_BITS))
            return 0
        if cmd not in (RNDADDTOENTCNT, RNDADDENTROPY, RNDZAPENTCNT, RNDCLEARPOOL, RNDRESEEDCRNG):
            raise kerr(EINVAL)
        if not task.capable("CAP_SYS_ADMIN"):
            raise kerr(EPERM)
        if cmd in (RNDADDTOENTCNT, RNDADDENTROPY) and _get_user_int(task, arg) < 0:
            raise kerr(EINVAL)
        if cmd == RNDADDENTROPY:
            size = _get_user_int(task, arg + 4) & 0xFFFFFFFF
            if size > task.kernel.task_size:
                raise kerr(EFAULT)      # import_ubuf() of a negative int's length
            copy_from_user(task, arg + 8, size)
        return 0


class PipeOps(NoMmapOps):
    """fs/pipe.c pipefifo_fops: no ->mmap; SIGIO may be asked for; FIONREAD tells the
    bytes waiting."""

    def fasync(self, file, on):
        """pipe_fasync(): the core keeps FASYNC in f_flags; the model sends no SIGIO."""

    def unlocked_ioctl(self, task, file, cmd, arg):
        """pipe_ioctl(): FIONREAD puts the bytes waiting (the model's pipes carry none);
        any other command is ENOTTY."""
        if cmd != FIONREAD:
            raise kerr(ENOTTY)
        copy_to_user(task, arg, struct.pack("<i", 0))
        return 0


class Ext4FileOps(FileOperations):
    """ext4 regular files: generic_file_mmap, THP-aligned placement, no DAX.

    ext4_file_mmap() refuses VM_SYNC without DAX (EOPNOTSUPP); ext4 declares
    FOP_MMAP_SYNC, so MAP_SHARED_VALIDATE|MAP_SYNC gets as far as that refusal.
    """

    mmap_sync = True
    #: thp_get_unmapped_area is one of the placements mremap trusts for multi-VMA moves
    trusted_placement = True

    def get_unmapped_area(self, task, file, addr, length, pgoff, flags):
        return thp_get_unmapped_area(task, file, addr, length, pgoff, flags)

    def mmap(self, file, vma):
        if vma.flags & VM_SYNC:
            raise kerr(EOPNOTSUPP)
        vma.vm_ops = FILE_VM_OPS


class ShmemFileOps(FileOperations):
    """tmpfs / shmem files (shmem_mmap): page-cache backed, shmem placement.

    shmem_get_unmapped_area() with the default shmem_enabled=never adds no alignment.
    """

    trusted_placement = True
    is_shmem = True

    def get_unmapped_area(self, task, file, addr, length, pgoff, flags):
        return mm_get_unmapped_area(task, file, addr, length, pgoff, flags)

    def mmap(self, file, vma):
        vma.vm_ops = FILE_VM_OPS


class AccountedShmemOps(ShmemFileOps):
    """The shmem object behind one shared anonymous mapping, charged whole against the
    commit limit when it was set up (mm/shmem.c shmem_acct_size()); the charge goes
    with its last reference (shmem_evict_inode() -> shmem_unacct_size())."""

    def __init__(self, kernel, pages: int):
        self.kernel = kernel
        self.pages = pages

    def release(self, file):
        self.kernel.committed -= self.pages     # vm_unacct_memory()


class DevZeroOps(FileOperations):
    """/dev/zero (drivers/char/mem.c mmap_zero, get_unmapped_area_zero).

    MAP_SHARED: shmem_zero_setup() swaps the VMA's file for a new shmem object, shown
    as "/dev/zero (deleted)". MAP_PRIVATE: the VMA becomes anonymous (vm_ops NULL) but
    keeps /dev/zero as its file, so maps shows /dev/zero and merges need that file.
    """

    def __init__(self, vfs):
        self.vfs = vfs

    def get_unmapped_area(self, task, file, addr, length, pgoff, flags):
        if flags & MAP_SHARED:
            return mm_get_unmapped_area(task, None, addr, length, pgoff, flags)
        return thp_get_unmapped_area(task, file, addr, length, pgoff, flags)

    def mmap(self, file, vma):
        if vma.flags & VM_SHARED:
            self.vfs.shmem_zero_setup(vma)
        else:
            vma.vm_ops = None


class HugetlbFileOps(FileOperations):
    """hugetlbfs files (fs/hugetlbfs/inode.c): huge-page placement and alignment,
    VM_HUGETLB|VM_DONTEXPAND, and a page reservation that fails with ENOMEM unless
    VM_NORESERVE: the model has no huge pages (vm.nr_hugepages = 0, as on the
    reference machine), so every access to a hugetlb mapping is SIGBUS."""

    trusted_placement = True
    is_hugetlbfs = True

    def __init__(self, shift: int):
        self.shift = shift
        self.size = 1 << shift

    def get_unmapped_area(self, task, file, addr, length, pgoff, flags):
        """hugetlb_get_unmapped_area(): huge-aligned MAP_FIXED, hints and searches."""
        return hugetlb_unmapped_area(task, self.size, addr, length, flags)

    def mmap(self, file, vma):
        """hugetlbfs_file_mmap()."""
        vma.flags |= VM_HUGETLB | VM_DONTEXPAND
        if vma.pgoff & ((self.size >> PAGE_SHIFT) - 1):
            raise kerr(EINVAL)
        if not vma.flags & VM_NORESERVE:
            raise kerr(ENOMEM)      # hugetlb_reserve_pages(): no free huge pages
        vma.vm_ops = hugetlb_vm_ops(self.size)


SHMEM_OPS = ShmemFileOps()
EXT4_OPS = Ext4FileOps()
NO_MMAP_OPS = NoMmapOps()
DEV_NULL_OPS = DevNullOps()
RANDOM_OPS = RandomOps()
PIPE_OPS = PipeOps()


class PidfdOps(NoMmapOps):
    """fs/pidfs.c pidfs_file_operations: a pidfd names a process (file.private_data:
    its pid); no ->mmap (ENODEV) [obs]."""


PIDFD_OPS = PidfdOps()


class ProcMemOps(NoMmapOps):
    """fs/proc/base.c proc_mem_operations, of /proc/PID/mem: the process's memory at
    file positions equal to its virtual addresses (mem_rw()), read and written with
    pread/pwrite (the model has no lseek); no ->mmap (ENODEV) [obs]. FOP_UNSIGNED_OFFSET:
    a position plus a count may pass LLONG_MAX (rw_verify_area()). file.private_data is
    the mm taken at open (proc_mem_open())."""


PROC_MEM_OPS = ProcMemOps()


class ProcSeqOps(NoMmapOps):
    """The seq_file text files of /proc/PID (fs/seq_file.c seq_read_iter()): `show`
    makes the text for the process; a read starting at position 0 makes it anew, the
    reads after it continue in that text (file.private_data). No ->mmap, no
    ->write (ESPIPE for pwrite, as for every procfs file but mem)."""

    def __init__(self, show):
        self.show = show


#: the /proc/PID entries the model serves as text (fs/proc/base.c tgid_base_stuff)
PROC_PID_TEXT = {
    "maps": ProcSeqOps(lambda task: task.maps()),
    "smaps": ProcSeqOps(lambda task: task.smaps()),
    "status": ProcSeqOps(proc_pid_status),
}


def filesystems_proc_show(task) -> str:
    """fs/filesystems.c filesystems_proc_show(): the filesystem types the kernel has
    registered, as this machine's kernel lists them."""
    with open("/proc/filesystems") as host:
        return host.read()


#: the entries of /proc itself the model serves as text (proc_create_single())
PROC_TEXT = {"filesystems": ProcSeqOps(filesystems_proc_show)}


def seq_read(file: File, count: int, pos: int) -> bytes:
    """seq_read_iter(): count bytes of the text at pos."""
    ops, inode = file.f_op, file.inode
    assert isinstance(ops, ProcSeqOps) and isinstance(inode, ProcInode)
    if pos == 0 or file.private_data is None:
        file.private_data = ops.show(inode.task).encode("utf-8", "surrogateescape")
    return file.private_data[pos:pos + count]


class ProcInode(Inode):
    """struct proc_inode of a /proc/PID entry: an inode that names a process (its pid:
    here the Process itself, `task`)."""

    __slots__ = ("task",)

    def __init__(self, ino: int, mount: Mount, fops: FileOperations, path: str, task):
        super().__init__(ino, mount.dev, S_IFREG, fops, path, mount)
        self.task = task


class Vfs:
    """The file namespace of one Kernel.

    Invariant: every path in `inodes` has its parent directory in `inodes`; `mounts`
    maps a directory path to the Mount whose root it is ("/" is always there).
    """

    ROOT_DEV = (0xFE, 0x00)    # /dev/vda, ext4, as on the reference machine
    DEVTMPFS_DEV = (0x00, 0x06)
    SHM_DEV = (0x00, 0x1B)
    SHM_MNT_DEV = (0x00, 0x01)  # the kernel-internal shm_mnt (shared anonymous memory)
    PIDFS_DEV = (0x00, 0x05)

    def __init__(self):
        self.inodes: dict[str, Inode] = {}
        self.mounts: dict[str, Mount] = {}
        self.shm_mnt = Mount(None, self.SHM_MNT_DEV, "tmpfs", first_ino=1025)
        #: the internal hugetlbfs mounts, one per huge page size (2 MiB, 1 GiB)
        self.hugetlb_mnts = {21: (Mount(None, (0x00, 0x11), "hugetlbfs", first_ino=424536),
                                  HugetlbFileOps(21)),
                             30: (Mount(None, (0x00, 0x12), "hugetlbfs", first_ino=424536),
                                  HugetlbFileOps(30))}
        self._next_anon_dev = 0x30
        root = self.mounts["/"] = Mount("/", self.ROOT_DEV, "ext4")
        self.inodes["/"] = Inode(2, root.dev, S_IFDIR, NO_MMAP_OPS, "/", root)
        self.mkdir("/tmp")
        self.mkdir("/dev")
        dev = self.mounts["/dev"] = Mount("/dev", self.DEVTMPFS_DEV, "devtmpfs", first_ino=1)
        self.inodes["/dev"] = Inode(dev.new_ino(), dev.dev, S_IFDIR, NO_MMAP_OPS, "/dev", dev)
        self.add_device("/dev/null", DEV_NULL_OPS, ino=3)
        self.add_device("/dev/zero", DevZeroOps(self), ino=4)
        self.add_device("/dev/random", RANDOM_OPS, ino=6)
        dev.next_ino = 7
        self.mkdir("/dev/shm")
        shm = self.mounts["/dev/shm"] = Mount("/dev/shm", self.SHM_DEV, "tmpfs", first_ino=1)
        self.inodes["/dev/shm"] = Inode(shm.new_ino(), shm.dev, S_IFDIR, NO_MMAP_OPS,
                                        "/dev/shm", shm)
        self.mkdir("/proc")
        proc = self.mounts["/proc"] = Mount("/proc", (0x00, 0x17), "proc", first_ino=1)
        self.inodes["/proc"] = Inode(1, proc.dev, S_IFDIR, NO_MMAP_OPS, "/proc", proc)
        self.mkdir("/proc/self")
        self._create("/proc/self/status", S_IFREG, NO_MMAP_OPS, b"")

    # --- lookup ---
    @staticmethod
    def _norm(path: str) -> str:
        if not isinstance(path, str) or not path.startswith("/"):
            raise kerr(ENOENT)
        return posixpath.normpath(path).replace("//", "/")

    def mount_of(self, path: str) -> Mount:
        while path not in self.mounts:
            path = posixpath.dirname(path)
        return self.mounts[path]

    def lookup(self, path: str) -> Inode:
        path = self._norm(path)
        inode = self.inodes.get(path)
        if inode is None:
            parent = posixpath.dirname(path)
            if parent in self.inodes and self.inodes[parent].kind != S_IFDIR:
                raise kerr(ENOTDIR)
            raise kerr(ENOENT)
        return inode

    def _create(self, path, kind, fops, data=b"", ino=None) -> Inode:
        path = self._norm(path)
        if path in self.inodes:
            raise kerr(EEXIST)
        parent = self.inodes.get(posixpath.dirname(path))
        if parent is None:
            raise kerr(ENOENT)
        if parent.kind != S_IFDIR:
            raise kerr(ENOTDIR)
        mnt = self.mount_of(path)
        inode = Inode(ino if ino is not None else mnt.new_ino(), mnt.dev, kind, fops, path, mnt)
        if data:
            inode.write(0, data)
        self.inodes[path] = inode
        return inode

    # --- the public face (Kernel.fs) ---
    def create(self, path: str, data: bytes = b"", mode: int = 0o644) -> Inode:
        """A regular file with `data` and the permission bits of `mode`. Cost:
        O(len(data))."""
        mnt = self.mount_of(self._norm(path))
        inode = self._create(path, S_IFREG, self._regular_ops(mnt), bytes(data))
        inode.mode = mode & 0o7777
        return inode

    def mkdir(self, path: str) -> Inode:
        return self._create(path, S_IFDIR, NO_MMAP_OPS)

    def mount(self, path: str, noexec: bool = False) -> Mount:
        """Mount a fresh tmpfs on the existing directory `path`."""
        path = self._norm(path)
        if self.lookup(path).kind != S_IFDIR:
            raise kerr(ENOTDIR)
        mnt = Mount(path, (0x00, self._next_anon_dev), "tmpfs", noexec, first_ino=1)
        self._next_anon_dev += 1
        for p in [p for p in self.inodes if p.startswith(path + "/")]:
            del self.inodes[p]       # covered by the new mount
        self.mounts[path] = mnt
        self.inodes[path] = Inode(mnt.new_ino(), mnt.dev, S_IFDIR, NO_MMAP_OPS, path, mnt)
        return mnt

    def remount(self, path: str, noexec: bool) -> Mount:
        """mount -o remount,[no]exec of the filesystem mounted at `path` (e.g. /dev)."""
        path = self._norm(path)
        mnt = self.mounts.get(path)
        if mnt is None:
            raise kerr(EINVAL)
        mnt.noexec = noexec
        return mnt

    def unlink(self, path: str) -> None:
        inode = self.lookup(path)
        if inode.kind == S_IFDIR:
            raise kerr(EISDIR)
        inode.nlink = 0
        del self.inodes[self._norm(path)]

    def rmdir(self, path: str) -> None:
        """fs/namei.c do_rmdir(), vfs_rmdir(): a directory (ENOTDIR) that is not a mount
        point (EBUSY) and is empty (ENOTEMPTY). Cost: O(paths in the namespace)."""
        path = self._norm(path)
        inode = self.lookup(path)
        if inode.kind != S_IFDIR:
            raise kerr(ENOTDIR)
        if path in self.mounts:
            raise kerr(EBUSY)
        if self._has_children(path):
            raise kerr(ENOTEMPTY)
        inode.nlink = 0
        del self.inodes[path]

    def rename(self, old: str, new: str) -> None:
        """fs/namei.c do_renameat2() and vfs_rename() without flags: both parents exist
        (ENOENT, ENOTDIR) on one mount (EXDEV); the source exists (ENOENT), is not an
        ancestor of the target (EINVAL) nor below it (ENOTEMPTY: lock_rename()'s trap),
        and neither is a mount point (EBUSY). A target is replaced only by the same kind
        (EISDIR, ENOTDIR), a directory only if empty (ENOTEMPTY); the replaced inode is
        unlinked, so its mappings show its old name and " (deleted)". The source keeps
        its inode, open files and mappings, which show the new name (d_path), as does
        everything below a renamed directory [obs]. Cost: O(paths in the namespace)."""
        old, new = self._norm(old), self._norm(new)
        old_dir, new_dir = self._parent_dir(old), self._parent_dir(new)
        if self.mount_of(old_dir) is not self.mount_of(new_dir):
            raise kerr(EXDEV)
        inode = self.lookup(old)
        if old == new:
            return
        if new.startswith(old + "/"):
            raise kerr(EINVAL)
        if old.startswith(new + "/"):
            raise kerr(ENOTEMPTY)
        if old in self.mounts or new in self.mounts:
            raise kerr(EBUSY)
        target = self.inodes.get(new)
        if target is not None:
            if inode.kind == S_IFDIR and target.kind != S_IFDIR:
                raise kerr(ENOTDIR)
            if inode.kind != S_IFDIR and target.kind == S_IFDIR:
                raise kerr(EISDIR)
            if target.kind == S_IFDIR and self._has_children(new):
                raise kerr(ENOTEMPTY)
            target.nlink = 0
        for path in [p for p in self.inodes if p == old or p.startswith(old + "/")]:
            moved = self.inodes.pop(path)
            moved.path = new + path[len(old):]
            self.inodes[moved.path] = moved
        for path in [p for p in self.mounts if p.startswith(old + "/")]:
            mnt = self.mounts.pop(path)
            mnt.path = new + path[len(old):]
            self.mounts[mnt.path] = mnt

    def _parent_dir(self, path: str) -> str:
        """The parent of path, which must be a directory (ENOENT, ENOTDIR)."""
        parent = posixpath.dirname(path)
        if self.lookup(parent).kind != S_IFDIR:
            raise kerr(ENOTDIR)
        return parent

    def _has_children(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(p.startswith(prefix) for p in self.inodes)

    def read(self, path: str) -> bytes:
        inode = self.lookup(path)
        return inode.read(0, inode.size)

    def add_device(self, path, fops, ino=None) -> Inode:
        """A character device node whose file operations are `fops` (a driver)."""
        return self._create(path, S_IFCHR, fops, ino=ino)

    @staticmethod
    def _regular_ops(mnt: Mount) -> FileOperations:
        return EXT4_OPS if mnt.fstype == "ext4" else SHMEM_OPS

    # --- /proc/PID (fs/proc/base.c) ---
    def proc_pid_lookup(self, task, path: str) -> ProcInode | None:
        """fs/proc/base.c proc_pid_lookup() and proc_pident_lookup() of the per-process
        entries the model has: /proc/PID/mem and the text files of PROC_PID_TEXT (maps,
        smaps, status), and the same under /proc/self (`task`, the caller's). A pid of
        no live process is ENOENT (an exited process is gone at once: the model has no
        zombies). None for any other path. The inode is a new one (mode 0600 for mem,
        0444 for text, as proc_pid_make_inode() makes them), whose number nothing
        observes. The text files of /proc itself (PROC_TEXT) are found here too."""
        path = self._norm(path)
        proc = self.mounts["/proc"]
        if path.removeprefix("/proc/") in PROC_TEXT:
            inode = ProcInode(proc.new_ino(), proc, PROC_TEXT[path[6:]], path, task)
            inode.mode = 0o444
            return inode
        match = re.fullmatch(r"/proc/(self|[1-9][0-9]*)/(mem|maps|smaps|status)", path)
        if match is None:
            return None
        pid, entry = match.groups()
        target = proc_pid_task(task, pid)
        fops = PROC_MEM_OPS if entry == "mem" else PROC_PID_TEXT[entry]
        inode = ProcInode(proc.new_ino(), proc, fops, f"/proc/{target.pid}/{entry}", target)
        inode.mode = 0o600 if entry == "mem" else 0o444
        return inode

    # --- opening ---
    def open(self, task, path: str, flags: int, mode: int = 0o666) -> File:
        """do_sys_open() and fs/namei.c do_open() by `task`: the File for `path` with
        f_mode from the access mode. O_PATH keeps only O_PATH_FLAGS (build_open_how())
        and gives a file with empty_fops whose driver is never opened (do_dentry_open()).
        Access mode 3 asks for read and write permission but gives neither FMODE_READ
        nor FMODE_WRITE (OPEN_FMODE(): a file for ioctl(2) only). Then may_open(); a
        running program's file is not opened for writing or truncated (ETXTBSY) [obs];
        the driver's ->open (/proc/PID/mem's: mem_open()), and O_TRUNC's
        handle_truncate()."""
        kernel = task.kernel
        if flags & O_PATH:
            flags &= O_PATH_FLAGS
        try:
            inode = self.proc_pid_lookup(task, path) or self.lookup(path)
            if flags & O_CREAT and flags & O_EXCL:
                raise kerr(EEXIST)
        except FileNotFoundError:
            if not flags & O_CREAT:
                raise
            inode = self.create(path, b"", mode)
        if flags & O_DIRECTORY and inode.kind != S_IFDIR:
            raise kerr(ENOTDIR)
        if flags & O_PATH:
            return File(inode, FMODE_PATH, flags)
        may_open(inode, flags)
        f_mode = {O_RDONLY: FMODE_READ, O_WRONLY: FMODE_WRITE,
                  O_RDWR: FMODE_READ | FMODE_WRITE, O_ACCMODE: 0}[flags & O_ACCMODE]
        if (f_mode & FMODE_WRITE or flags & O_TRUNC) and inode.kind == S_IFREG and \
                is_running_program(kernel, inode):
            raise kerr(ETXTBSY)     # get_write_access(): do_dentry_open(), handle_truncate()
        file = File(inode, f_mode, flags)
        if isinstance(inode, ProcInode):
            file.private_data = proc_mem_open(task, inode.task)
        elif inode.fops.open is not None:
            inode.fops.open(file)
        if flags & O_TRUNC and inode.kind == S_IFREG:
            handle_truncate(kernel, inode)
        return file

    def pipe(self) -> tuple[File, File]:
        """fs/pipe.c: a pipe inode (pipefs, 00:0e) and its two ends."""
        inode = Inode(self._pipe_ino(), (0x00, 0x0E), S_IFIFO, PIPE_OPS, "pipe:")
        inode.path = f"pipe:[{inode.ino}]"
        return File(inode, FMODE_READ, O_RDONLY), File(inode, FMODE_WRITE, O_WRONLY)

    _pipe_count = 9000

    def _pipe_ino(self) -> int:
        Vfs._pipe_count += 1
        return Vfs._pipe_count

    # --- shmem (mm/shmem.c) ---
    def shmem_file(self, size: int, name: str = "/dev/zero",
                   fops: ShmemFileOps = SHMEM_OPS) -> File:
        """shmem_kernel_file_setup(): an unlinked shmem object on the internal mount."""
        inode = Inode(self.shm_mnt.new_ino(), self.shm_mnt.dev, S_IFREG, fops, name,
                      self.shm_mnt, size=size)
        inode.nlink = 0
        return File(inode, FMODE_READ | FMODE_WRITE, O_RDWR)

    def hugetlb_file(self, shift: int, size: int, name: str = "/anon_hugepage") -> File:
        """hugetlb_file_setup(): an unlinked hugetlbfs object on the internal mount of its
        page size: the object behind anonymous MAP_HUGETLB, shown as "/anon_hugepage
        (deleted)", a MFD_HUGETLB memfd or a SHM_HUGETLB segment."""
        mnt, fops = self.hugetlb_mnts[shift]
        inode = Inode(mnt.new_ino(), mnt.dev, S_IFREG, fops, name, mnt, size=size)
        inode.nlink = 0
        return File(inode, FMODE_READ | FMODE_WRITE, O_RDWR)

    def pidfd_file(self, pid: int, flags: int) -> File:
        """fs/pidfs.c pidfd_prepare(): an open file (O_RDWR, and O_NONBLOCK from the
        flags) of the pid's pidfs inode (00:05 [obs]; the model numbers it by the pid),
        whose private_data is the pid."""
        inode = Inode(pid, self.PIDFS_DEV, S_IFREG, PIDFD_OPS, "anon_inode:[pidfd]")
        file = File(inode, FMODE_READ | FMODE_WRITE, O_RDWR | (flags & O_NONBLOCK))
        file.private_data = pid
        return file

    def shmem_zero_setup(self, vma) -> None:
        """mm/shmem.c shmem_zero_setup(): back a shared anonymous VMA by a new shmem
        object of its size. Unless VM_NORESERVE, __shmem_file_setup() charges the whole
        object against the commit limit first (shmem_acct_size(): ENOMEM, as a private
        writable mapping of that size would get) [obs: 32 GiB on a 24 GiB machine]."""
        size = vma.end - vma.start
        fops = SHMEM_OPS
        if not vma.flags & VM_NORESERVE:
            mm = vma.mm
            mm.kernel.vm_enough_memory(mm, size >> PAGE_SHIFT)
            fops = AccountedShmemOps(mm.kernel, size >> PAGE_SHIFT)
        file = self.shmem_file(size, fops=fops).get()
        if vma.file is not None:
            vma.file.put()
        vma.file = file
        vma.vm_ops = FILE_VM_OPS


def may_open(inode: Inode, flags: int) -> None:
    """fs/namei.c may_open() for a process that passes every permission check (the
    model's are root's): a directory opened with write access (an access mode but
    O_RDONLY, or O_TRUNC) is EISDIR; an append-only file opened for writing without
    O_APPEND, or with O_TRUNC, is EPERM [obs]."""
    wants_write = flags & O_ACCMODE != O_RDONLY or flags & O_TRUNC
    if inode.kind == S_IFDIR and wants_write:
        raise kerr(EISDIR)
    if inode.append_only and (flags & O_ACCMODE != O_RDONLY and not flags & O_APPEND
                              or flags & O_TRUNC):
        raise kerr(EPERM)


def is_running_program(kernel, inode: Inode) -> bool:
    """Some process's mm->exe_file is `inode` (exe_file_deny_write_access() made its
    i_writecount negative). O(processes)."""
    return any(proc.exe_file is not None and proc.exe_file.inode is inode
               for proc in kernel.processes.values())


def handle_truncate(kernel, inode: Inode) -> None:
    """fs/namei.c handle_truncate() -> fs/open.c do_truncate() to size 0, whatever the
    access mode (O_RDONLY|O_TRUNC truncates too) [obs]: the shmem seals are checked
    (F_SEAL_SHRINK: EPERM), then truncate_setsize(): every mapping of the file loses
    its PTEs, private COW copies included, so a later access is SIGBUS."""
    shmem_setattr_seals(inode, 0)
    truncate_setsize(kernel, inode, 0)


# --- what every open file answers: fs/ioctl.c, fs/read_write.c, fs/open.c ----------

#: fs/read_write.c MAX_RW_COUNT: the most one read or write transfers
MAX_RW_COUNT = 0x7FFFF000
#: LLONG_MAX: a file position (loff_t) never passes it
LOFF_MAX = (1 << 63) - 1


def do_vfs_ioctl(task, file: File, cmd: int, arg: int) -> int:
    """fs/ioctl.c do_vfs_ioctl(), then vfs_ioctl(): the commands the VFS answers for
    every file never reach the driver; the rest go to ->unlocked_ioctl (none: ENOTTY).
    `arg` is a user address where the command reads or writes its argument (EFAULT).

    FIOCLEX/FIONCLEX set the fd's close-on-exec flag, which lives in the process's fd
    table (Process.ioctl sets it before calling here). The model has no read(2), so
    FIONREAD counts from position 0."""
    inode = file.inode
    if cmd in (FIOCLEX, FIONCLEX):
        return 0
    if cmd == FIONBIO:
        on = _get_user_int(task, arg)
        file.f_flags = file.f_flags | O_NONBLOCK if on else file.f_flags & ~O_NONBLOCK
        return 0
    if cmd == FIOASYNC:
        return ioctl_fioasync(task, file, arg)
    if cmd == FIOQSIZE:
        if inode.kind not in (S_IFDIR, S_IFREG):
            raise kerr(ENOTTY)
        copy_to_user(task, arg, struct.pack("<q", inode_get_bytes(inode)))
        return 0
    if cmd == FIONREAD and inode.kind == S_IFREG:
        copy_to_user(task, arg, struct.pack("<I", inode.size & 0xFFFFFFFF))
        return 0
    if file.f_op.unlocked_ioctl is None:
        raise kerr(ENOTTY)
    return f_unlocked_ioctl(task, file, cmd, arg)


def _get_user_int(task, arg: int) -> int:
    """get_user() of an int at the user address arg (EFAULT)."""
    return int.from_bytes(copy_from_user(task, arg, 4), "little", signed=True)


def ioctl_fioasync(task, file: File, arg: int) -> int:
    """fs/ioctl.c ioctl_fioasync(): turning FASYNC on or off needs ->fasync (ENOTTY)."""
    on = _get_user_int(task, arg) != 0
    if bool(file.f_flags & FASYNC) != on:
        if file.f_op.fasync is None:
            raise kerr(ENOTTY)
        file.f_op.fasync(file, on)
        file.f_flags ^= FASYNC
    return 0


def inode_get_bytes(inode: Inode) -> int:
    """fs/stat.c inode_get_bytes(): the bytes of the blocks the inode holds: a block per
    page-cache page of a file (for ext4 after writeback; delayed allocation shows 0
    before it), one block for an ext4 directory, none for a tmpfs one."""
    if inode.kind == S_IFDIR:
        return 1 << PAGE_SHIFT if inode.mount is not None and inode.mount.fstype == "ext4" else 0
    return len(inode.pages) << PAGE_SHIFT


def rw_verify_area(file: File, pos: int, count: int) -> None:
    """fs/read_write.c rw_verify_area(): pos + count must stay a file position, unless
    the file has unsigned offsets (FOP_UNSIGNED_OFFSET: /proc/PID/mem) [obs]."""
    if pos + count > LOFF_MAX and not isinstance(file.f_op, ProcMemOps):
        raise kerr(EINVAL)


def vfs_pread(task, file: File, count: int, pos: int) -> bytes:
    """fs/read_write.c ksys_pread64() once the file is found, and vfs_read(): pipes
    cannot seek (ESPIPE), the file must be open for reading (EBADF) and have a ->read
    (EINVAL), a count no user buffer can hold fails access_ok() (EFAULT); directories
    are EISDIR. Reads min(count, MAX_RW_COUNT) bytes, fewer at the end of the file."""
    if file.inode.kind == S_IFIFO:
        raise kerr(ESPIPE)              # no FMODE_PREAD
    if not file.f_mode & FMODE_READ:
        raise kerr(EBADF)
    if not can_read(file.inode):
        raise kerr(EINVAL)              # no FMODE_CAN_READ
    if count > task.kernel.task_size:
        raise kerr(EFAULT)
    rw_verify_area(file, pos, count)
    count = min(count, MAX_RW_COUNT)
    if isinstance(file.f_op, ProcMemOps):
        return mem_read(file, count, pos)
    if isinstance(file.f_op, ProcSeqOps):
        return seq_read(file, count, pos)
    if file.inode.kind == S_IFCHR:
        return chrdev_read(task, file.inode, count)
    if file.inode.kind == S_IFDIR:
        raise kerr(EISDIR)              # generic_read_dir()
    return file.inode.read(pos, count)


def vfs_pwrite(task, file: File, data: bytes, pos: int) -> int:
    """fs/read_write.c ksys_pwrite64() once the file is found, vfs_write() and
    mm/filemap.c generic_write_checks(): ESPIPE (pipes, and procfs files but
    /proc/PID/mem, whose seq_open() clears FMODE_PWRITE [obs]), EBADF, EINVAL without a
    ->write (hugetlbfs [obs], SGX), EINVAL past LOFF_MAX; nothing to write succeeds
    anywhere; /proc/PID/mem writes at pos whatever O_APPEND says (mem_write()) [obs]; a
    character device takes the bytes (chrdev_write()); O_APPEND writes at the end
    whatever pos says; then generic_write_check_limits(): RLIMIT_FSIZE and the
    filesystem's s_maxbytes each make a write starting at or past them EFBIG and one
    crossing them short. Returns the bytes written."""
    inode = file.inode
    if inode.kind == S_IFIFO or inode.mount is not None and inode.mount.fstype == "proc" \
            and not isinstance(file.f_op, ProcMemOps):
        raise kerr(ESPIPE)              # no FMODE_PWRITE
    if not file.f_mode & FMODE_WRITE:
        raise kerr(EBADF)
    if not can_write(inode):
        raise kerr(EINVAL)              # no FMODE_CAN_WRITE
    rw_verify_area(file, pos, len(data))
    data = data[:MAX_RW_COUNT]
    if not data:
        return 0
    if isinstance(file.f_op, ProcMemOps):
        return mem_write(file, data, pos)
    if inode.kind == S_IFCHR:
        return len(data)                # write_null(), write_iter_zero(), random_write_iter()
    if file.f_flags & O_APPEND:
        pos = inode.size                # IOCB_APPEND
    data = data[:write_check_limits(task, inode, pos, len(data))]
    data = data[:shmem_write_begin_seals(inode, pos, len(data))]
    if pos > inode.size and inode.mount.fstype == "ext4":
        ext4_block_zero_eof(inode, inode.size, pos)         # ext4_write_checks()
    inode.write(pos, data)
    return len(data)


# --- /proc/PID/mem: fs/proc/base.c -------------------------------------------------

def proc_mem_open(task, target):
    """fs/proc/base.c mem_open() -> proc_mem_open() -> kernel/fork.c mm_access() with
    PTRACE_MODE_ATTACH_FSCREDS: `task` may have the mm of `target` if it is its own, or
    kernel/ptrace.c __ptrace_may_access() allows it: the same process, the same uid, or
    CAP_SYS_PTRACE (no Yama, as on the reference machine); else EACCES. The mm is held
    (mmgrab()) but not its memory (mmput()): it is the mm of this moment, which the file
    keeps through the target's execve or exit (mem_rw() then reads nothing) and through a
    fork of the opener (the child reads the parent's memory) [obs]."""
    if target is not task and target.uid != task.uid and not task.capable("CAP_SYS_PTRACE"):
        raise kerr(EACCES)
    return target.mm


def mmget_not_zero(mm) -> bool:
    """include/linux/sched/mm.h mmget_not_zero(): the mm still has a user, its process:
    alive and not moved on to another mm by execve."""
    owner = mm.owner
    return owner is not None and owner.alive and owner.mm is mm


def mem_read(file: File, count: int, pos: int) -> bytes:
    """fs/proc/base.c mem_read() -> mem_rw(): the bytes read."""
    got = mem_rw(file, count, pos, False)
    assert isinstance(got, bytes)
    return got


def mem_write(file: File, data: bytes, pos: int) -> int:
    """fs/proc/base.c mem_write() -> mem_rw(): the count written."""
    got = mem_rw(file, len(data), pos, True, data)
    assert isinstance(got, int)
    return got


def mem_rw(file: File, count: int, pos: int, write: bool, data: bytes = b"") -> bytes | int:
    """fs/proc/base.c mem_rw(): `count` bytes of the file's mm at the address `pos`, a
    page-sized piece at a time (whatever the alignment) through mm/memory.c
    access_remote_vm() with FOLL_FORCE (CONFIG_PROC_MEM_ALWAYS_FORCE, the reference
    machine's): a private read-only or PROT_NONE mapping is read and written (a write
    COWs the page), a shared one without VM_WRITE is not. A piece that gets nothing ends
    the call: short, or EIO if nothing was copied. No mm (none at open), or one with no
    user left: nothing, 0 bytes [obs]. Returns the bytes read, or the count written."""
    mm = file.private_data
    if mm is None or not mmget_not_zero(mm):
        return 0 if write else b""
    out = bytearray()
    copied = 0
    while copied < count:
        this_len = min(count - copied, PAGE_SIZE)
        got = access_remote_vm(mm.owner, pos + copied, this_len, write,
                               data[copied:copied + this_len])
        n = got if isinstance(got, int) else len(got)
        if not n:
            if not copied:
                raise kerr(EIO)
            break
        if isinstance(got, bytes):
            out += got
        copied += n
    return copied if write else bytes(out)


def write_check_limits(task, inode: Inode, pos: int, count: int) -> int:
    """mm/filemap.c generic_write_check_limits(): a write starting at or past
    RLIMIT_FSIZE is EFBIG (Linux also sends SIGXFSZ: the model does not, see
    docs/deviations.md), one crossing it is cut there; the same for s_maxbytes.
    Returns how many of the count bytes at pos may be written."""
    limit = task.rlimit(RLIMIT_FSIZE)
    if limit != RLIM_INFINITY:
        if pos >= limit:
            raise kerr(EFBIG)
        count = min(count, limit - pos)
    maxbytes = inode.mount.maxbytes
    if pos >= maxbytes:
        raise kerr(EFBIG)
    return min(count, maxbytes - pos)


def can_read(inode: Inode) -> bool:
    """FMODE_CAN_READ (do_dentry_open(): the file operations have ->read or
    ->read_iter): every file type of the model but a driver's character device."""
    return inode.kind != S_IFCHR or isinstance(inode.fops, (DevNullOps, DevZeroOps, RandomOps))


def can_write(inode: Inode) -> bool:
    """FMODE_CAN_WRITE (->write or ->write_iter): not hugetlbfs, nor a driver's
    character device."""
    return not inode.fops.is_hugetlbfs and can_read(inode)


def chrdev_read(task, inode: Inode, count: int) -> bytes:
    """The ->read_iter of the character devices of drivers/char/mem.c (read_iter_null():
    end of file; read_iter_zero(): zeros) and drivers/char/random.c (random_read_iter():
    bytes from the kernel's seeded generator); the position does not matter."""
    if isinstance(inode.fops, DevNullOps):
        return b""
    if isinstance(inode.fops, RandomOps):
        return task.kernel.random.randbytes(count)
    return bytes(count)


def do_ftruncate(task, file: File, length: int) -> None:
    """fs/open.c do_ftruncate() (do_sys_ftruncate() has refused a negative length and
    found the file), do_truncate() and fs/attr.c inode_newsize_ok(): a regular file
    open for writing (EINVAL), not append-only (EPERM), growing no further than
    RLIMIT_FSIZE (EFBIG; Linux also sends SIGXFSZ, the model does not) and the
    filesystem's s_maxbytes (EFBIG)."""
    inode = file.inode
    if inode.kind != S_IFREG or not file.f_mode & FMODE_WRITE:
        raise kerr(EINVAL)
    if inode.append_only:
        raise kerr(EPERM)
    if length > inode.size and (length > task.rlimit(RLIMIT_FSIZE) or length > inode.mount.maxbytes):
        raise kerr(EFBIG)
    shmem_setattr_seals(inode, length)
    if length > inode.size and inode.mount.fstype == "ext4":
        ext4_block_zero_eof(inode, inode.size, LOFF_MAX)    # ext4_setattr()
    truncate_setsize(task.kernel, inode, length)


def shmem_setattr_seals(inode: Inode, newsize: int) -> None:
    """mm/shmem.c shmem_setattr() and fs/hugetlbfs/inode.c hugetlbfs_setattr() on a size
    change: a hugetlbfs file changes only by whole huge pages (EINVAL) [obs]; F_SEAL_SHRINK
    and F_SEAL_GROW refuse a smaller and a larger size (EPERM) [obs]."""
    fops = inode.fops
    if isinstance(fops, HugetlbFileOps) and newsize & (fops.size - 1):
        raise kerr(EINVAL)
    if not (fops.is_shmem or fops.is_hugetlbfs):
        return
    if newsize < inode.size and inode.seals & F_SEAL_SHRINK or \
            newsize > inode.size and inode.seals & F_SEAL_GROW:
        raise kerr(EPERM)


def shmem_write_begin_seals(inode: Inode, pos: int, count: int) -> int:
    """mm/shmem.c shmem_write_begin() on a sealed shmem file, as generic_perform_write()
    calls it page by page: F_SEAL_WRITE and F_SEAL_FUTURE_WRITE refuse every write
    (EPERM); F_SEAL_GROW refuses the first page-sized piece that would end past i_size,
    so a write crossing the end is short and one starting at it is EPERM [obs]. Returns
    how many of the count bytes at pos may be written."""
    if not inode.fops.is_shmem:
        return count
    if inode.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
        raise kerr(EPERM)
    if inode.seals & F_SEAL_GROW and pos + count > inode.size:
        count = max((inode.size & PAGE_MASK) - pos, 0)
        if not count:
            raise kerr(EPERM)
    return count


def ext4_block_zero_eof(inode: Inode, start: int, end: int) -> None:
    """fs/ext4/inode.c ext4_block_zero_eof(): before an ext4 file grows from i_size
    `start`, the block holding the old EOF is zeroed from there to `end` or to the
    block's end, whichever comes first; so what a shared mapping wrote past EOF does
    not become file data (a write at pos > i_size: end = pos; a truncate up: end =
    LLONG_MAX). tmpfs has no such step and keeps those bytes [obs]. The blocks of the
    reference machine's ext4 are pages (4 KiB)."""
    offset = start % PAGE_SIZE
    page = inode.pages.get(start // PAGE_SIZE)
    if offset and page is not None:
        stop = min(PAGE_SIZE, offset + end - start)
        page[offset:stop] = bytes(stop - offset)


def proc_pid_task(task, pid: str):
    """The process a /proc/PID path names ("self": the caller); ENOENT for none."""
    target = task if pid == "self" else task.kernel.processes.get(int(pid))
    if target is None:
        raise kerr(ENOENT)
    return target
