"""System V shared memory: ipc/shm.c (newseg(), ksys_shmget(), do_shmat(), ksys_shmdt(),
ksys_shmctl(), shm_file_operations, shm_vm_ops) and the parts of ipc/util.c it uses
(ipcget(), ipc_addid() and its cyclic ids, ipc_findkey(), ipcperms(),
ipcctl_obtain_check()).

A segment (`ShmSegment`, struct shmid_kernel) is an unlinked shmem object on the
kernel's internal mount (SHM_HUGETLB: a hugetlbfs one) named "SYSV%08x" after its key,
whose inode number is its id, so maps shows "/SYSV00001234 (deleted)" on 00:01 with the
shmid as inode from the first attach on, before and after IPC_RMID alike [obs]. Every
shmat() maps a new open file of the segment (alloc_file_clone()) with
shm_file_operations, so two attaches never merge, and gives its VMAs shm_vm_ops, whose
->open and ->close count every VMA of the segment in shm_nattch: a split half, a fork
copy and an mremap copy count too [obs]; ->close also keeps those VMAs from being merged
away, so an mprotect undone leaves the pieces [obs]. When the count drops to 0 a
segment marked SHM_DEST (IPC_RMID while attached) is destroyed.

Simplifications, none visible in maps or results: the segment's own shmem file is not
kept apart from the attaches' (the model keeps file operations on the inode, so the
segment's inode has shm_file_operations); times (shm_atime, shm_dtime, shm_ctime) are
0, the model has no clock; groups are not modelled (ipcperms() sees owner or other, and
gid/cgid are 0).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ..errors import EACCES, EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC, EPERM, kerr
from ..fs.file import FMODE_READ, FMODE_WRITE, File, FileOperations
from ..fs.vfs import HugetlbFileOps
from ..mm.fault import copy_from_user, copy_to_user, hugetlb_vm_ops
from ..mm.flags import VM_DONTEXPAND, VM_HUGETLB
from ..mm.mmap import HUGE_PAGE_SHIFTS, do_mmap, mm_populate
from ..mm.munmap import do_vmi_munmap, page_align
from ..mm.vma import Vma, VmOperations
from ..uapi import (
    IPC_CREAT,
    IPC_EXCL,
    IPC_INFO,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    MAP_FIXED,
    MAP_SHARED,
    O_RDONLY,
    O_RDWR,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    RLIM_INFINITY,
    RLIMIT_MEMLOCK,
    SHM_DEST,
    SHM_EXEC,
    SHM_HUGE_MASK,
    SHM_HUGE_SHIFT,
    SHM_HUGETLB,
    SHM_INFO,
    SHM_LOCK,
    SHM_LOCKED,
    SHM_NORESERVE,
    SHM_RDONLY,
    SHM_REMAP,
    SHM_RND,
    SHM_STAT,
    SHM_STAT_ANY,
    SHM_UNLOCK,
    SHMLBA,
    U64,
)

SHMMIN = 1
#: the shm sysctls of an ipc namespace as on this machine [obs]: kernel.shmmax and
#: kernel.shmall (ULONG_MAX - 2^24, the defaults), kernel.shmmni
SHMMAX = U64 - (1 << 24)
SHMALL = U64 - (1 << 24)
SHMMNI = 4096
#: ipc/util.h: an id is (seq << IPCMNI_SHIFT) + idx
IPCMNI_SHIFT = 15
IPCMNI = 1 << IPCMNI_SHIFT
#: ipc/util.c ipc_min_cycle (RADIX_TREE_MAP_SIZE): ids cycle through at least 64 indexes
IPC_MIN_CYCLE = 64
#: ipcid_seq_max(): INT_MAX >> IPCMNI_SHIFT
IPCID_SEQ_MAX = ((1 << 31) - 1) >> IPCMNI_SHIFT
S_IRWXUGO = 0o777
S_IRUGO = 0o444
S_IWUGO = 0o222
S_IXUGO = 0o111
#: uid_t -1: INVALID_UID for ipc_update_perm()
INVALID_ID = 0xFFFFFFFF

#: struct shmid64_ds (x86_64): ipc64_perm (key, uid, gid, cuid, cgid, mode, seq, two
#: unused longs), shm_segsz, the three times, shm_cpid, shm_lpid, shm_nattch, two unused
SHMID64_DS = struct.Struct("<iIIIIIH2x4xQQQqqqiiQQQ")
#: struct shminfo64: shmmax, shmmin, shmmni, shmseg, shmall, four unused
SHMINFO64 = struct.Struct("<9Q")
#: struct shm_info: used_ids, shm_tot, shm_rss, shm_swp, swap_attempts, swap_successes
SHM_INFO_STRUCT = struct.Struct("<i4x5Q")


class ShmSegment:
    """struct shmid_kernel: its kern_ipc_perm (id, seq, key, owner, creator, mode), the
    size asked for (shm_segsz), the shmem or hugetlbfs file, the attach count and the
    pids of the creator and the last attach or detach. `pages`: its part of shm_tot;
    `charged`: pages charged against the commit limit until it is destroyed; `base_fops`:
    the file operations of its shmem or hugetlbfs file, which the attaches call."""

    __slots__ = ("id", "seq", "key", "uid", "gid", "cuid", "mode", "segsz", "file", "base_fops",
                 "nattch", "cpid", "lpid", "pages", "charged", "deleted")

    def __init__(self, key: int, uid: int, mode: int, segsz: int, file: File,
                 base_fops: FileOperations, cpid: int, pages: int, charged: int):
        self.id = self.seq = 0
        self.key = key
        self.uid = self.cuid = uid
        self.gid = 0
        self.mode = mode
        self.segsz = segsz
        self.file = file
        self.base_fops = base_fops
        self.nattch = 0
        self.cpid = cpid
        self.lpid = 0
        self.pages = pages
        self.charged = charged
        self.deleted = False


class ShmIds:
    """The shm part of one IPC namespace: struct ipc_ids shm_ids (the segments by index,
    the cyclic index cursor and the sequence number of ipc_idr_alloc()), shm_tot, the
    shm sysctls, the pages SHM_LOCK holds per user, and the Kernel (for its commit)."""

    def __init__(self, kernel, *, shmmax: int = SHMMAX, shmall: int = SHMALL,
                 shmmni: int = SHMMNI) -> None:
        self.kernel = kernel
        self.ctlmax, self.ctlall, self.ctlmni = shmmax, shmall, shmmni
        self.by_idx: dict[int, ShmSegment] = {}
        self.by_key: dict[int, ShmSegment] = {}
        self.next_idx = 0
        self.last_idx = -1
        self.seq = 0
        self.tot = 0
        self.locked: dict[int, int] = {}

    def __iter__(self) -> Iterator[ShmSegment]:
        return iter(self.by_idx.values())

    def addid(self, seg: ShmSegment) -> None:
        """ipc/util.c ipc_addid() and ipc_idr_alloc(): ENOSPC past shmmni; the lowest
        free index from the cursor up, wrapping once, below max(in_use * 3/2, 64); the
        sequence number steps when the index does not grow."""
        if len(self.by_idx) >= min(self.ctlmni, IPCMNI):
            raise kerr(ENOSPC)
        max_idx = min(max(len(self.by_idx) * 3 // 2, IPC_MIN_CYCLE), IPCMNI)
        idx = self._free_idx(self.next_idx, max_idx)
        if idx is None and self.next_idx > 0:
            idx = self._free_idx(0, max_idx)
        if idx is None:
            raise kerr(ENOSPC)
        self.next_idx = idx + 1
        if idx <= self.last_idx:
            self.seq = 0 if self.seq + 1 >= IPCID_SEQ_MAX else self.seq + 1
        self.last_idx = idx
        seg.seq = self.seq
        seg.id = (self.seq << IPCMNI_SHIFT) + idx
        self.by_idx[idx] = seg
        if seg.key != IPC_PRIVATE:
            self.by_key[seg.key] = seg

    def _free_idx(self, start: int, end: int) -> int | None:
        return next((i for i in range(start, end) if i not in self.by_idx), None)

    def obtain(self, idx: int) -> ShmSegment:
        """ipc_obtain_object_idr(): the segment at index idx (EINVAL)."""
        seg = self.by_idx.get(idx & (IPCMNI - 1))
        if seg is None:
            raise kerr(EINVAL)
        return seg

    def obtain_check(self, shmid: int) -> ShmSegment:
        """ipc_obtain_object_check(): the segment of an id, its sequence number too
        (EINVAL)."""
        seg = self.obtain(shmid)
        if shmid >> IPCMNI_SHIFT != seg.seq:
            raise kerr(EINVAL)
        return seg

    def set_key_private(self, seg: ShmSegment) -> None:
        """ipc_set_key_private(): no shmget() finds it any more."""
        self.by_key.pop(seg.key, None)
        seg.key = IPC_PRIVATE

    def maxidx(self) -> int:
        """ipc_get_maxidx(): the highest index in use, -1 for none."""
        return max(self.by_idx, default=-1)


class ShmFileData:
    """struct shm_file_data: the private data of one attach's open file: its segment and
    the vm_ops the segment file's ->mmap chose, which shm_vm_ops forwards to."""

    __slots__ = ("segment", "vm_ops")

    def __init__(self, segment: ShmSegment) -> None:
        self.segment = segment
        self.vm_ops: VmOperations | None = None


def sfd_of(file: File) -> ShmFileData:
    """shm_file_data()."""
    sfd = file.private_data
    assert isinstance(sfd, ShmFileData)
    return sfd


def hugetlbfs_shm_mmap(fops: HugetlbFileOps, vma: Vma) -> None:
    """fs/hugetlbfs/inode.c hugetlbfs_file_mmap() for a segment's inode, which is
    S_PRIVATE (HUGETLB_SHMFS_INODE): its pages need no reservation [obs: a SHM_NORESERVE
    segment attaches with no huge page in the pool, and without "nr"]."""
    vma.flags |= VM_HUGETLB | VM_DONTEXPAND
    if vma.pgoff & ((fops.size >> PAGE_SHIFT) - 1):
        raise kerr(EINVAL)
    vma.vm_ops = hugetlb_vm_ops(fops.size)


class ShmFileOps(FileOperations):
    """ipc/shm.c shm_file_operations (shm_file_operations_huge, which is_file_hugepages()
    recognises, for SHM_HUGETLB): the open file of one attach; placement and ->mmap are
    the segment file's. Not shmem_file_operations: shmem_file() is false for them."""

    def __init__(self, huge: bool) -> None:
        self.is_hugetlbfs = huge

    def get_unmapped_area(self, task, file, addr, length, pgoff, flags):
        """shm_get_unmapped_area(): the segment file's."""
        base = sfd_of(file).segment.base_fops
        assert base.get_unmapped_area is not None       # shmem's and hugetlbfs' have one
        return base.get_unmapped_area(task, file, addr, length, pgoff, flags)

    def mmap(self, file, vma):
        """shm_mmap(): __shm_open() (EINVAL once the segment is gone), the segment
        file's ->mmap, then shm_vm_ops in front of the vm_ops it chose."""
        sfd = sfd_of(file)
        shm_open_segment(sfd.segment, vma)
        base = sfd.segment.base_fops
        try:
            if isinstance(base, HugetlbFileOps):
                hugetlbfs_shm_mmap(base, vma)
            else:
                assert base.mmap is not None                # shmem_mmap()
                base.mmap(file, vma)
        except OSError:
            shm_close_segment(sfd.segment, vma)
            raise
        sfd.vm_ops = vma.vm_ops
        vma.vm_ops = SHM_VM_OPS


SHM_FILE_OPS = ShmFileOps(huge=False)
SHM_HUGE_FILE_OPS = ShmFileOps(huge=True)


class ShmVmOps(VmOperations):
    """ipc/shm.c shm_vm_ops: ->open and ->close count every VMA of the segment in
    shm_nattch; faults, splits and the page size are the segment file's vm_ops'. It has
    no ->map_pages, so a read fault maps no pages around it."""

    def open(self, vma):
        """shm_open()."""
        shm_open_segment(sfd_of(vma.file).segment, vma)

    def close(self, vma):
        """shm_close()."""
        shm_close_segment(sfd_of(vma.file).segment, vma)

    def fault(self, vma, addr, write):
        """shm_fault()."""
        ops = sfd_of(vma.file).vm_ops
        assert ops is not None and ops.fault is not None
        return ops.fault(vma, addr, write)

    def may_split(self, vma, addr):
        """shm_may_split()."""
        ops = sfd_of(vma.file).vm_ops
        if ops is not None and ops.may_split is not None:
            ops.may_split(vma, addr)

    def pagesize(self, vma):
        """shm_pagesize()."""
        ops = sfd_of(vma.file).vm_ops
        if ops is not None and ops.pagesize is not None:
            return ops.pagesize(vma)
        return PAGE_SIZE


SHM_VM_OPS = ShmVmOps()


def shm_open_segment(seg: ShmSegment, vma: Vma) -> None:
    """ipc/shm.c __shm_open(): one more VMA maps the segment (EINVAL once it is gone);
    shm_lprid is the VMA's process (Linux's current: at fork, the parent)."""
    if seg.deleted:
        raise kerr(EINVAL)
    seg.lpid = vma.mm.owner.pid
    seg.nattch += 1


def shm_close_segment(seg: ShmSegment, vma: Vma) -> None:
    """ipc/shm.c __shm_close(): one VMA fewer; the last one of a segment marked SHM_DEST
    destroys it."""
    seg.lpid = vma.mm.owner.pid
    seg.nattch -= 1
    ids = vma.mm.kernel.shm
    if shm_may_destroy(seg):
        shm_destroy(ids, seg)


def shm_may_destroy(seg: ShmSegment) -> bool:
    """ipc/shm.c shm_may_destroy(): unattached and removed (kernel.shm_rmid_forced is 0,
    this machine's, and not modelled)."""
    return seg.nattch == 0 and bool(seg.mode & SHM_DEST)


def shm_destroy(ids: ShmIds, seg: ShmSegment) -> None:
    """ipc/shm.c shm_destroy(): the id and the key go, shm_tot and the SHM_LOCK pages
    drop, and the commit charge goes with the file (shmem_unacct_size())."""
    del ids.by_idx[seg.id & (IPCMNI - 1)]
    if ids.by_key.get(seg.key) is seg:
        del ids.by_key[seg.key]
    ids.tot -= seg.pages
    if seg.mode & SHM_LOCKED:
        ids.locked[seg.uid] -= seg.pages
    ids.kernel.committed -= seg.charged
    seg.deleted = True


def ipcperms(task, seg: ShmSegment, flag: int) -> bool:
    """ipc/util.c ipcperms(): the rwx bits asked for (in any of the three positions of
    flag) are granted to the owner or creator by the user bits, else by the other bits,
    or CAP_IPC_OWNER overrides. True if allowed."""
    requested = (flag >> 6) | (flag >> 3) | flag
    granted = seg.mode >> 6 if task.uid in (seg.uid, seg.cuid) else seg.mode
    return not requested & ~granted & 0o7 or task.capable("CAP_IPC_OWNER")


# --- shmget -----------------------------------------------------------------------------

def ksys_shmget(task, key: int, size: int, shmflg: int) -> int:
    """ipc/shm.c ksys_shmget() -> ipc/util.c ipcget(): IPC_PRIVATE always makes a new
    segment; another key finds its segment or, with IPC_CREAT, makes one (ENOENT). An
    existing one: EEXIST under IPC_CREAT|IPC_EXCL, EINVAL if smaller than size,
    EACCES if shmflg asks for access its mode denies. Returns the id."""
    ids = task.kernel.shm
    if key == IPC_PRIVATE:
        return newseg(task, key, size, shmflg)
    seg = ids.by_key.get(key)
    if seg is None:
        if not shmflg & IPC_CREAT:
            raise kerr(ENOENT)
        return newseg(task, key, size, shmflg)
    if shmflg & IPC_CREAT and shmflg & IPC_EXCL:
        raise kerr(EEXIST)
    if seg.segsz < size:
        raise kerr(EINVAL)          # shm_more_checks()
    if not ipcperms(task, seg, shmflg):
        raise kerr(EACCES)
    return seg.id


def newseg(task, key: int, size: int, shmflg: int) -> int:
    """ipc/shm.c newseg(): EINVAL for a size below SHMMIN or above shmmax, ENOSPC past
    shmall pages in all. SHM_HUGETLB: a hugetlbfs object of the size rounded up to the
    huge page the flags encode (EINVAL for a size the CPU lacks), for CAP_IPC_LOCK only
    (EPERM: hugetlb_shm_group is not modelled), ENOMEM unless SHM_NORESERVE (the pool is
    empty). Otherwise a shmem object charged against the commit limit (ENOMEM) unless
    SHM_NORESERVE (still charged under vm.overcommit_memory=2). Then an id (ENOSPC past
    shmmni), which becomes the inode number. Returns the id."""
    ids, kernel = task.kernel.shm, task.kernel
    pages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
    if size < SHMMIN or size > ids.ctlmax:
        raise kerr(EINVAL)
    if ids.tot + pages > ids.ctlall:
        raise kerr(ENOSPC)
    name = f"/SYSV{key & 0xFFFFFFFF:08x}"
    charged = 0
    if shmflg & SHM_HUGETLB:
        shift = (shmflg >> SHM_HUGE_SHIFT) & SHM_HUGE_MASK or HUGE_PAGE_SHIFTS[0]
        if shift not in HUGE_PAGE_SHIFTS:
            raise kerr(EINVAL)
        if not task.capable("CAP_IPC_LOCK"):
            raise kerr(EPERM)       # hugetlb_file_setup(): can_do_hugetlb_shm()
        hugesize = (size + (1 << shift) - 1) & ~((1 << shift) - 1)
        file = kernel.fs.hugetlb_file(shift, hugesize, name)
        if not shmflg & SHM_NORESERVE:
            raise kerr(ENOMEM)      # hugetlb_reserve_pages(): no huge page to reserve
    else:
        if not shmflg & SHM_NORESERVE or kernel.overcommit_memory == 2:
            kernel.vm_enough_memory(task.mm, pages)     # shmem_acct_size()
            charged = pages
        file = kernel.fs.shmem_file(size, name)
    inode = file.inode
    seg = ShmSegment(key, task.uid, shmflg & S_IRWXUGO, size, file, inode.fops, task.pid,
                     pages, charged)
    try:
        ids.addid(seg)
    except OSError:
        kernel.committed -= charged
        raise
    inode.ino = seg.id              # "shmid gets reported as inode# in /proc/pid/maps"
    inode.fops = SHM_HUGE_FILE_OPS if shmflg & SHM_HUGETLB else SHM_FILE_OPS
    ids.tot += pages
    return seg.id


# --- shmat, shmdt -----------------------------------------------------------------------

def do_shmat(task, shmid: int, addr: int, shmflg: int) -> int:
    """ipc/shm.c do_shmat(): the address is rounded down to SHMLBA under SHM_RND (to 0:
    EINVAL with SHM_REMAP), else must be page aligned (EINVAL); it is MAP_FIXED, and
    without SHM_REMAP must not meet a mapping (EINVAL); SHM_REMAP needs an address.
    SHM_RDONLY maps read-only from a read-only open file (no VM_SHARED, no VM_MAYWRITE),
    SHM_EXEC adds PROT_EXEC; the segment (EINVAL) must grant that access (EACCES).
    The whole file (i_size: the size rounded up to pages, or to huge pages) is mapped
    shared at offset 0 by do_mmap() (its errors: ENOMEM out of range, ...); unknown
    flags are ignored [obs]. Returns the address."""
    if shmid < 0:
        raise kerr(EINVAL)
    flags = MAP_SHARED
    if addr:
        if addr & (SHMLBA - 1):
            if not shmflg & SHM_RND:
                raise kerr(EINVAL)
            addr &= ~(SHMLBA - 1)
            if not addr and shmflg & SHM_REMAP:
                raise kerr(EINVAL)
        flags |= MAP_FIXED
    elif shmflg & SHM_REMAP:
        raise kerr(EINVAL)
    if shmflg & SHM_RDONLY:
        prot, acc_mode, f_mode, f_flags = PROT_READ, S_IRUGO, FMODE_READ, O_RDONLY
    else:
        prot, acc_mode = PROT_READ | PROT_WRITE, S_IRUGO | S_IWUGO
        f_mode, f_flags = FMODE_READ | FMODE_WRITE, O_RDWR
    if shmflg & SHM_EXEC:
        prot |= PROT_EXEC
        acc_mode |= S_IXUGO
    ids = task.kernel.shm
    seg = ids.obtain_check(shmid)
    if not ipcperms(task, seg, acc_mode):
        raise kerr(EACCES)
    seg.nattch += 1                 # held across the mapping
    try:
        file = File(seg.file.inode, f_mode, f_flags)
        file.private_data = ShmFileData(seg)
        return _shmat_map(task, file, addr, prot, flags, shmflg)
    finally:
        seg.nattch -= 1
        if shm_may_destroy(seg):
            shm_destroy(ids, seg)


def _shmat_map(task, file: File, addr: int, prot: int, flags: int, shmflg: int) -> int:
    """The mapping half of do_shmat(), under the mmap_lock."""
    mm = task.mm
    size = file.inode.size
    mm.mmap_lock("shmat")
    if addr and not shmflg & SHM_REMAP:
        if addr + size > U64 or mm.tree.find_intersecting(addr, addr + size) is not None:
            raise kerr(EINVAL)
    addr, populate = do_mmap(task, file, addr, size, prot, flags, 0)
    if populate:
        mm_populate(task, addr, populate)
    return addr


def ksys_shmdt(task, addr: int) -> int:
    """ipc/shm.c ksys_shmdt(): EINVAL for an unaligned address. From addr up, the first
    VMA of an attach whose start lies as many pages above addr as its pgoff (the start
    of an attach, or of a piece of one left by munmap or mprotect) is unmapped: that
    file's size bounds the search, and every further VMA of the same attach (the same
    open file) in it that fits the same rule is unmapped too. EINVAL if none; unmap
    errors are ignored. Cost: O(log n) per VMA above addr."""
    if addr & ~PAGE_MASK:
        raise kerr(EINVAL)
    mm = task.mm
    mm.mmap_lock("shmdt")
    vma = mm.tree.find_vma(addr)
    while vma is not None and not _shmdt_matches(vma, addr):
        vma = mm.tree.next(vma)
    if vma is None:
        raise kerr(EINVAL)
    file = vma.file
    size = page_align(file.inode.size)
    vma = _shmdt_unmap(mm, vma)
    while vma is not None and vma.end - addr <= size:
        if _shmdt_matches(vma, addr) and vma.file is file:
            vma = _shmdt_unmap(mm, vma)
        else:
            vma = mm.tree.next(vma)
    return 0


def _shmdt_matches(vma: Vma, addr: int) -> bool:
    """A shm VMA with (vm_start - addr) / PAGE_SIZE == vm_pgoff, in unsigned arithmetic."""
    return vma.vm_ops is SHM_VM_OPS and ((vma.start - addr) & U64) >> PAGE_SHIFT == vma.pgoff


def _shmdt_unmap(mm, vma: Vma) -> Vma | None:
    """do_vmi_align_munmap() of one whole VMA, its error ignored; the VMA after it."""
    end = vma.end
    try:
        do_vmi_munmap(mm, vma.start, vma.end - vma.start)
    except OSError:
        pass
    return mm.tree.find_vma(end)


# --- shmctl -----------------------------------------------------------------------------

def ksys_shmctl(task, shmid: int, cmd: int, buf: int) -> int:
    """ipc/shm.c ksys_shmctl() (IPC_64, the only version on x86_64: a command with the
    IPC_64 bit is EINVAL [obs]): EINVAL for a negative id or command, or an unknown one.
    IPC_STAT, SHM_STAT, SHM_STAT_ANY, IPC_INFO and SHM_INFO copy their struct to buf
    (EFAULT after the checks); IPC_SET reads one from buf first; IPC_RMID, SHM_LOCK and
    SHM_UNLOCK ignore buf."""
    if cmd < 0 or shmid < 0:
        raise kerr(EINVAL)
    ids = task.kernel.shm
    if cmd == IPC_INFO:
        info = SHMINFO64.pack(ids.ctlmax, SHMMIN, ids.ctlmni, ids.ctlmni, ids.ctlall, 0, 0, 0, 0)
        copy_to_user(task, buf, info)
        return max(ids.maxidx(), 0)
    if cmd == SHM_INFO:
        rss = sum(len(seg.file.inode.pages) for seg in ids)
        copy_to_user(task, buf, SHM_INFO_STRUCT.pack(len(ids.by_idx), ids.tot, rss, 0, 0, 0))
        return max(ids.maxidx(), 0)
    if cmd in (IPC_STAT, SHM_STAT, SHM_STAT_ANY):
        seg, result = shmctl_stat(task, ids, shmid, cmd)
        copy_to_user(task, buf, shmid64_ds(seg))
        return result
    if cmd == IPC_SET:
        perm = SHMID64_DS.unpack(copy_from_user(task, buf, SHMID64_DS.size))
        shmctl_down(task, ids, shmid, cmd, perm[1:3], perm[5])
        return 0
    if cmd == IPC_RMID:
        shmctl_down(task, ids, shmid, cmd, (0, 0), 0)
        return 0
    if cmd in (SHM_LOCK, SHM_UNLOCK):
        shmctl_do_lock(task, ids, shmid, cmd)
        return 0
    raise kerr(EINVAL)


def shmctl_stat(task, ids: ShmIds, shmid: int, cmd: int) -> tuple[ShmSegment, int]:
    """ipc/shm.c shmctl_stat(): IPC_STAT by id (EINVAL) and read permission (EACCES),
    returning 0; SHM_STAT by index, with read permission, and SHM_STAT_ANY without,
    returning the full id."""
    if cmd == IPC_STAT:
        seg = ids.obtain_check(shmid)
    else:
        seg = ids.obtain(shmid)
    if cmd != SHM_STAT_ANY and not ipcperms(task, seg, S_IRUGO):
        raise kerr(EACCES)
    return seg, 0 if cmd == IPC_STAT else seg.id


def shmid64_ds(seg: ShmSegment) -> bytes:
    """The struct shmid64_ds of IPC_STAT: the key (IPC_PRIVATE after IPC_RMID), the mode
    with SHM_DEST and SHM_LOCKED, shm_segsz as asked for, shm_nattch [obs]."""
    return SHMID64_DS.pack(seg.key, seg.uid, seg.gid, seg.cuid, 0, seg.mode, seg.seq, 0, 0,
                           seg.segsz, 0, 0, 0, seg.cpid, seg.lpid, seg.nattch, 0, 0)


def shmctl_down(task, ids: ShmIds, shmid: int, cmd: int, owner: tuple[int, int],
                mode: int) -> None:
    """ipc/shm.c shmctl_down() after ipcctl_obtain_check(): the segment (EINVAL), whose
    owner or creator the caller must be without CAP_SYS_ADMIN (EPERM). IPC_RMID:
    do_shm_rmid() destroys an unattached segment, else marks it SHM_DEST and hides its
    key. IPC_SET: ipc_update_perm() takes the owner (uid, gid; EINVAL for -1) and the
    permission bits of the mode."""
    seg = ids.obtain_check(shmid)
    if not task.capable("CAP_SYS_ADMIN") and task.uid not in (seg.uid, seg.cuid):
        raise kerr(EPERM)
    if cmd == IPC_RMID:
        if seg.nattch:
            seg.mode |= SHM_DEST
            ids.set_key_private(seg)
        else:
            shm_destroy(ids, seg)
        return
    if INVALID_ID in owner:
        raise kerr(EINVAL)
    seg.uid, seg.gid = owner
    seg.mode = (seg.mode & ~S_IRWXUGO) | (mode & S_IRWXUGO)


def shmctl_do_lock(task, ids: ShmIds, shmid: int, cmd: int) -> None:
    """ipc/shm.c shmctl_do_lock(): the segment (EINVAL); without CAP_IPC_LOCK only its
    owner or creator (EPERM), and SHM_LOCK only under a non-zero RLIMIT_MEMLOCK (EPERM).
    Hugetlb segments are left alone. SHM_LOCK: shmem_lock() -> user_shm_lock() counts the
    pages against the owner's RLIMIT_MEMLOCK without CAP_IPC_LOCK (ENOMEM) and sets
    SHM_LOCKED; SHM_UNLOCK clears it. Locking keeps the pages in memory: nothing the
    model shows but the mode."""
    seg = ids.obtain_check(shmid)
    capable = task.capable("CAP_IPC_LOCK")
    if not capable:
        if task.uid not in (seg.uid, seg.cuid):
            raise kerr(EPERM)
        if cmd == SHM_LOCK and not task.rlimit(RLIMIT_MEMLOCK):
            raise kerr(EPERM)
    if isinstance(seg.base_fops, HugetlbFileOps):
        return
    if cmd == SHM_UNLOCK:
        if seg.mode & SHM_LOCKED:
            ids.locked[seg.uid] -= seg.pages
            seg.mode &= ~SHM_LOCKED
        return
    if seg.mode & SHM_LOCKED:
        return
    limit = task.rlimit(RLIMIT_MEMLOCK)
    locked = ids.locked.get(seg.uid, 0) + seg.pages
    if limit != RLIM_INFINITY and locked > limit >> PAGE_SHIFT and not capable:
        raise kerr(ENOMEM)
    ids.locked[seg.uid] = locked
    seg.mode |= SHM_LOCKED
