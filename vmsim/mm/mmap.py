"""mmap(2) and brk(2): mm/mmap.c do_mmap(), mm/vma.c mmap_region()/__mmap_region(),
mm/util.c vm_mmap_pgoff(), mm/mmap.c do_brk_flags(), mm/gup.c populate.
"""

from __future__ import annotations

from ..errors import (
    EACCES,
    EAGAIN,
    EBADF,
    EEXIST,
    EFAULT,
    EINVAL,
    ENODEV,
    ENOMEM,
    EOPNOTSUPP,
    EOVERFLOW,
    EPERM,
    kerr,
)
from ..fs.file import FMODE_PATH, FMODE_READ, FMODE_WRITE, S_IFREG, File
from ..uapi import (
    F_SEAL_FUTURE_WRITE,
    F_SEAL_WRITE,
    LEGACY_MAP_MASK,
    MAP_ANONYMOUS,
    MAP_DROPPABLE,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_HUGE_MASK,
    MAP_HUGE_SHIFT,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_NONBLOCK,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_SYNC,
    MAP_TYPE,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
    RLIM_INFINITY,
    RLIMIT_DATA,
    RLIMIT_MEMLOCK,
    U64,
)
from .fault import handle_mm_fault
from .flags import (
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_DATA_DEFAULT_FLAGS,
    VM_DONTDUMP,
    VM_DROPPABLE,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_IO,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_LOCKONFAULT,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_MERGEABLE,
    VM_NORESERVE,
    VM_PFNMAP,
    VM_SHARED,
    VM_SPECIAL,
    VM_WIPEONFORK,
    VM_WRITE,
    calc_vm_flag_bits,
    calc_vm_prot_bits,
)
from .hooks import f_mmap
from .madvise import ksm_compatible
from .merge import VmaMergeStruct, vma_merge_existing_range, vma_merge_new_range
from .munmap import VmaMunmap, do_vmi_munmap, page_align
from .placement import get_unmapped_area, vm_start_gap
from .vma import Vma

MAX_LFS_FILESIZE = (1 << 63) - 1
#: huge page sizes this x86_64 CPU supports, by log2 (MAP_HUGE_2MB, MAP_HUGE_1GB)
HUGE_PAGE_SHIFTS = (21, 30)


def map_deny_write_exec(mm, old: int, new: int) -> bool:
    """include/linux/mman.h: MDWE refuses W+X, and X that the old flags lacked."""
    if not mm.has_mdwe or not new & VM_EXEC:
        return False
    return bool(new & VM_WRITE) or not old & VM_EXEC


def can_do_mlock(task) -> bool:
    return task.rlimit(RLIMIT_MEMLOCK) != 0 or task.capable("CAP_IPC_LOCK")


def file_mmap_ok(file, pgoff: int, length: int) -> bool:
    """mm/mmap.c file_mmap_ok(): offset + length within the file type's maximum."""
    maxsize = MAX_LFS_FILESIZE if file.inode.kind == S_IFREG else U64
    if length > maxsize:
        return False
    return pgoff <= (maxsize - length) >> PAGE_SHIFT


def is_file_hugepages(file: File | None) -> bool:
    """include/linux/hugetlb.h is_file_hugepages(): a hugetlbfs file."""
    return file is not None and file.f_op.is_hugetlbfs


def accountable_mapping(file, flags: int) -> bool:
    """Private writable mappings are charged against the commit limit (not hugetlb,
    which reserves huge pages instead)."""
    if is_file_hugepages(file):
        return False
    return flags & (VM_NORESERVE | VM_SHARED | VM_WRITE) == VM_WRITE


def sys_mmap(task, addr, length, prot, flags, fd, off) -> int:
    """arch/x86/kernel/sys_x86_64.c sys_mmap() -> ksys_mmap_pgoff() -> vm_mmap_pgoff()."""
    task.mm.mmap_lock("mmap")
    if off & ~PAGE_MASK:
        raise kerr(EINVAL)
    pgoff = off >> PAGE_SHIFT
    file = None
    if not flags & MAP_ANONYMOUS:
        file = task.files.get(fd & 0xFFFFFFFF)
        if file is None or file.f_mode & FMODE_PATH:
            raise kerr(EBADF)
        if flags & MAP_HUGETLB:
            raise kerr(EINVAL)      # not a hugetlbfs file
    elif flags & MAP_HUGETLB:
        shift = (flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK or HUGE_PAGE_SHIFTS[0]
        if shift not in HUGE_PAGE_SHIFTS:
            raise kerr(EINVAL)
        size = 1 << shift
        length = (length + size - 1) & ~(size - 1) & U64
        file = task.kernel.fs.hugetlb_file(shift, length)
    addr, populate = do_mmap(task, file, addr, length, prot, flags, pgoff)
    if populate:
        mm_populate(task, addr, populate)
    return addr


def do_mmap(task, file, addr, length, prot, flags, pgoff, vm_flags=0):
    """mm/mmap.c do_mmap(), checks in the kernel's order. Returns (addr, populate)."""
    mm, kernel = task.mm, task.kernel
    if not length:
        raise kerr(EINVAL)
    if prot & PROT_READ and task.persona & READ_IMPLIES_EXEC and \
            not (file is not None and file.inode.noexec):
        prot |= PROT_EXEC
    if flags & MAP_FIXED_NOREPLACE:
        flags |= MAP_FIXED
    if not flags & MAP_FIXED:
        addr &= PAGE_MASK
        if addr and addr < kernel.mmap_min_addr:          # round_hint_to_min()
            addr = page_align(kernel.mmap_min_addr)
    length = page_align(length)
    if not length:
        raise kerr(ENOMEM)
    if pgoff + (length >> PAGE_SHIFT) > U64:
        raise kerr(EOVERFLOW)
    if len(mm.tree) > kernel.max_map_count:
        raise kerr(ENOMEM)
    pkey = 0
    if prot == PROT_EXEC:
        pkey = max(task.execute_only_pkey(), 0)
    vm_flags |= (calc_vm_prot_bits(prot, pkey) | calc_vm_flag_bits(flags) | mm.def_flags
                 | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC)
    addr = get_unmapped_area(task, file, addr, length, pgoff, flags)
    if flags & MAP_FIXED_NOREPLACE and mm.tree.find_intersecting(addr, addr + length):
        raise kerr(EEXIST)
    if flags & MAP_LOCKED and not can_do_mlock(task):
        raise kerr(EPERM)
    if not mm.mlock_future_ok(task, vm_flags, length):
        raise kerr(EAGAIN)
    if file is not None:
        vm_flags = _file_vm_flags(file, flags, prot, pgoff, length, vm_flags)
    else:
        vm_flags, pgoff = _anon_vm_flags(flags, addr, vm_flags)
    if flags & MAP_NORESERVE and (kernel.overcommit_memory != 2 or is_file_hugepages(file)):
        vm_flags |= VM_NORESERVE
    if mm.merge_any and ksm_compatible(vm_flags):
        vm_flags |= VM_MERGEABLE        # update_ksm_flags(), before the merge attempt
    addr = mmap_region(task, file, addr, length, vm_flags, pgoff)
    populate = length if (vm_flags & VM_LOCKED or
                          flags & (MAP_POPULATE | MAP_NONBLOCK) == MAP_POPULATE) else 0
    return addr, populate


def _file_vm_flags(file, flags, prot, pgoff, length, vm_flags) -> int:
    """The file half of do_mmap(): mapping type, access mode, noexec, ->mmap support,
    seals."""
    if not file_mmap_ok(file, pgoff, length):
        raise kerr(EOVERFLOW)
    flags_mask = LEGACY_MAP_MASK | (MAP_SYNC if file.f_op.mmap_sync else 0)
    mtype = flags & MAP_TYPE
    if mtype in (MAP_SHARED, MAP_SHARED_VALIDATE):
        if mtype == MAP_SHARED:
            flags &= LEGACY_MAP_MASK
        if flags & ~flags_mask:
            raise kerr(EOPNOTSUPP)
        if prot & PROT_WRITE and not file.f_mode & FMODE_WRITE:
            raise kerr(EACCES)
        if file.inode.append_only and file.f_mode & FMODE_WRITE:
            raise kerr(EACCES)
        vm_flags |= VM_SHARED | VM_MAYSHARE
        if not file.f_mode & FMODE_WRITE:
            vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
    elif mtype != MAP_PRIVATE:
        raise kerr(EINVAL)
    if not file.f_mode & FMODE_READ:
        raise kerr(EACCES)
    if file.inode.noexec:
        if vm_flags & VM_EXEC:
            raise kerr(EPERM)
        vm_flags &= ~VM_MAYEXEC
    if file.f_op.mmap is None:
        raise kerr(ENODEV)
    if vm_flags & VM_GROWSDOWN:
        raise kerr(EINVAL)
    return memfd_check_seals_mmap(file, vm_flags)


def memfd_check_seals_mmap(file, vm_flags: int) -> int:
    """mm/memfd.c memfd_check_seals_mmap(): a shmem or hugetlbfs file sealed against
    writing (F_SEAL_WRITE, F_SEAL_FUTURE_WRITE) is not mapped shared and writable again
    (EPERM); a shared read-only mapping loses VM_MAYWRITE, so mprotect() cannot make it
    writable (EACCES) [obs]. Private mappings stay copy-on-write writable. Returns the
    flags."""
    f_op = file.f_op
    if not (f_op.is_shmem or f_op.is_hugetlbfs) or \
            not file.inode.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) or not vm_flags & VM_SHARED:
        return vm_flags
    if vm_flags & VM_WRITE:
        raise kerr(EPERM)
    return vm_flags & ~VM_MAYWRITE


def _anon_vm_flags(flags, addr, vm_flags):
    """The anonymous half of do_mmap(): returns (vm_flags, pgoff)."""
    mtype = flags & MAP_TYPE
    if mtype == MAP_SHARED:
        if vm_flags & VM_GROWSDOWN:
            raise kerr(EINVAL)
        return vm_flags | VM_SHARED | VM_MAYSHARE, 0
    if mtype == MAP_DROPPABLE:
        if flags & (MAP_LOCKED | MAP_HUGETLB) or vm_flags & VM_GROWSDOWN:
            raise kerr(EINVAL)
        vm_flags |= VM_DROPPABLE | VM_NORESERVE | VM_WIPEONFORK | VM_DONTDUMP
    elif mtype != MAP_PRIVATE:
        raise kerr(EINVAL)
    return vm_flags, addr >> PAGE_SHIFT


def mmap_region(task, file, addr, length, vm_flags, pgoff) -> int:
    """mm/vma.c mmap_region() and __mmap_region()."""
    mm = task.mm
    if map_deny_write_exec(mm, vm_flags, vm_flags):
        raise kerr(EACCES)
    end = addr + length
    pglen = length >> PAGE_SHIFT
    first = mm.tree.find_intersecting(addr, end)
    if first is not None:
        vms = VmaMunmap(mm, addr, end)
        vms.gather(first)
        prev, nxt = vms.prev, vms.next
    else:
        vms = None          # nothing to replace
        prev, nxt = mm.tree.prev_of(addr), mm.tree.find_vma(addr)
    charged = 0
    try:
        if not mm.may_expand_vm(task, vm_flags, pglen - (vms.nr_pages if vms else 0)):
            raise kerr(ENOMEM)
        if accountable_mapping(file, vm_flags):
            charged = pglen - (vms.nr_accounted if vms else 0)
            if charged:
                mm.account(charged)
            if vms:
                vms.nr_accounted = 0
            vm_flags |= VM_ACCOUNT
        if vms:
            vms.clean_up_area()
        vma = None
        if prev is not None or nxt is not None:
            vmg = VmaMergeStruct(mm, prev=prev, next=nxt, start=addr, end=end, pgoff=pgoff,
                                 flags=vm_flags, file=file)
            vma = vma_merge_new_range(vmg)
        if vma is None:
            vma = _mmap_new_vma(task, file, addr, end, vm_flags, pgoff)
    except BaseException:
        if charged:
            mm.unaccount(charged)
        if vms:
            vms.abort()
        raise
    _mmap_complete(mm, vma, pglen)
    if vms:
        vms.complete()
    return addr


def _mmap_new_vma(task, file, addr, end, vm_flags, pgoff) -> Vma:
    """__mmap_new_vma(): a fresh VMA, handed to the file's ->mmap (or shmem). When
    ->mmap fails or breaks its contract, __mmap_new_file_vma()'s error path: fput(),
    and unmap_region() undoes what the driver mapped."""
    mm = task.mm
    vma = Vma(mm, addr, end, vm_flags, pgoff)
    if file is not None:
        vma.file = file.get()
        try:
            f_mmap(file, vma)
        except BaseException:
            file.put(mm)
            mm.zap(addr, end)
            raise
    elif vm_flags & VM_SHARED:
        task.kernel.fs.shmem_zero_setup(vma)
    mm.tree.insert(vma)
    if vma.flags != vm_flags and not vma.flags & VM_SPECIAL:
        # __mmap_region(): the driver changed the flags; try to merge again.
        vmg = VmaMergeStruct.for_vma(mm, mm.tree.prev(vma), vma, vma.start, vma.end)
        merged = vma_merge_existing_range(vmg)
        if merged is not None:
            return merged
    return vma


def _mmap_complete(mm, vma, pglen) -> None:
    """__mmap_complete(): counters; VM_LOCKED does not stick to special mappings."""
    mm.vm_stat_account(vma.flags, pglen)
    if vma.flags & VM_LOCKED:
        if vma.flags & VM_SPECIAL:
            vma.flags &= ~VM_LOCKED_MASK
        else:
            mm.locked_vm += pglen


def mm_populate(task, start, length, ignore_errors=True) -> int:
    """mm/gup.c __mm_populate(): fault every page in, as writes for private writable
    mappings; VM_IO/VM_PFNMAP, PROT_NONE and VM_LOCKONFAULT ranges are skipped.
    A failed fault (past EOF) ends that VMA when ignoring errors (MAP_POPULATE),
    else returns EFAULT (mlock). Returns 0 or the errno."""
    end = start + length
    mm = task.mm
    for vma in mm.tree.intersecting(start, end):
        if vma.flags & (VM_IO | VM_PFNMAP | VM_LOCKONFAULT):
            continue
        if not vma.flags & VM_ACCESS_FLAGS:     # "we've never faulted in PROT_NONE pages"
            if ignore_errors:
                continue
            return EFAULT
        write = vma.flags & (VM_WRITE | VM_SHARED) == VM_WRITE
        lo, hi = max(start, vma.start), min(end, vma.end)
        if not write and vma.is_anonymous():
            if not populate_zero_pages(task, vma, lo, hi) and not ignore_errors:
                return EFAULT
            continue
        for addr in range(lo, hi, PAGE_SIZE):
            if not handle_mm_fault(task, vma, addr, write):
                if not ignore_errors:
                    return EFAULT
                break
    return 0


def populate_zero_pages(task, vma, lo: int, hi: int) -> bool:
    """Read faults over [lo, hi) of an anonymous VMA map the zero page: only the first
    fault of each 2 MiB block is observable (do_anonymous_fault(): a page table, or the
    huge zero page and the VMA's anon_vma), so one fault per block is made. False at a
    guard marker (its block already has a page table)."""
    mm = task.mm
    addr = lo
    while addr < hi:
        block_end = min(hi, (addr | (PMD_SIZE - 1)) + 1)
        if mm.present_in(addr, block_end, mm.guards) or not handle_mm_fault(task, vma, addr, False):
            return False
        addr = block_end
    return True


# --- brk --------------------------------------------------------------------------

def sys_brk(task, brk: int) -> int:
    """mm/mmap.c brk(2): returns the new break, or the old one on any failure (a break
    past the top of the address space included: its PAGE_ALIGN() wraps to 0, and
    check_brk_limits() refuses the wrapped length)."""
    mm, kernel = task.mm, task.kernel
    mm.mmap_lock("brk")
    origbrk = mm.brk
    if brk < mm.start_brk:
        return origbrk
    rlim = task.rlimit(RLIMIT_DATA)
    if rlim < RLIM_INFINITY and brk - mm.start_brk > rlim:     # check_data_rlimit()
        return origbrk
    newbrk = page_align(brk)
    oldbrk = page_align(mm.brk)
    if oldbrk == newbrk:
        mm.brk = brk
        return brk
    if brk <= mm.brk:
        # Always allow shrinking brk, if the range holds a VMA.
        if mm.tree.find_intersecting(newbrk, oldbrk) is None:
            return origbrk
        mm.brk = brk
        try:
            do_vmi_munmap(mm, newbrk, oldbrk - newbrk)
        except OSError:
            mm.brk = origbrk
            return origbrk
        return brk
    # check_brk_limits(): get_unmapped_area(MAP_FIXED) and the mlock limit
    length = (newbrk - oldbrk) & U64
    if length > kernel.task_size or oldbrk > kernel.task_size - length or \
            not mm.mlock_future_ok(task, mm.def_flags, length):
        return origbrk
    nxt = mm.tree.find_vma(oldbrk)
    if nxt is not None and newbrk + PAGE_SIZE > vm_start_gap(nxt, kernel.stack_guard_gap):
        return origbrk
    brkvma = mm.tree.prev_of(oldbrk + 1) if oldbrk else None
    if brkvma is not None and brkvma.end <= mm.start_brk:
        brkvma = None
    try:
        do_brk_flags(task, brkvma, oldbrk, length, 0)
    except OSError:
        return origbrk
    mm.brk = brk
    return brk


def do_brk_flags(task, vma, addr, length, flags) -> None:
    """Extend the brk VMA (just_expand merge with prev only) or create one."""
    mm = task.mm
    flags |= VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT | mm.def_flags
    if task.persona & READ_IMPLIES_EXEC:
        flags |= VM_EXEC            # VM_DATA_FLAGS_TSK_EXEC: TASK_EXEC
    if mm.merge_any:
        flags |= VM_MERGEABLE
    pglen = length >> PAGE_SHIFT
    if not mm.may_expand_vm(task, flags, pglen):
        raise kerr(ENOMEM)
    if len(mm.tree) > mm.kernel.max_map_count:
        raise kerr(ENOMEM)
    mm.account(pglen)
    if vma is not None and vma.end == addr:
        vmg = VmaMergeStruct(mm, prev=vma, next=None, start=addr, end=addr + length,
                             pgoff=addr >> PAGE_SHIFT, flags=flags, just_expand=True)
        if vma_merge_new_range(vmg) is not None:
            mm.vm_stat_account(flags, pglen)
            if flags & VM_LOCKED:
                mm.locked_vm += pglen
            return
    mm.vma_link(Vma(mm, addr, addr + length, flags, addr >> PAGE_SHIFT))
