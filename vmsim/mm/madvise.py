"""madvise(2): mm/madvise.c (6.18) do_madvise(), madvise_walk_vmas(),
madvise_vma_behavior(), and the mseal rule for discards (can_madvise_modify).

Advice that changes vm_flags goes through vma_modify_flags (split/merge). Advice
without an effect the model can observe (WILLNEED, COLD, PAGEOUT, ...) is checked
and accepted. Unmapped holes in the range are skipped and reported as ENOMEM at the
end, after the mapped parts were advised.
"""

from __future__ import annotations

from ..errors import EACCES, EAGAIN, EFAULT, EINVAL, ENOMEM, EPERM, Fault, kerr
from ..uapi import (
    MADV_COLD,
    MADV_COLLAPSE,
    MADV_DODUMP,
    MADV_DOFORK,
    MADV_DONTDUMP,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_DONTNEED_LOCKED,
    MADV_FREE,
    MADV_GUARD_INSTALL,
    MADV_GUARD_REMOVE,
    MADV_HUGEPAGE,
    MADV_KEEPONFORK,
    MADV_MERGEABLE,
    MADV_NOHUGEPAGE,
    MADV_NORMAL,
    MADV_PAGEOUT,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MADV_RANDOM,
    MADV_REMOVE,
    MADV_SEQUENTIAL,
    MADV_UNMERGEABLE,
    MADV_WILLNEED,
    MADV_WIPEONFORK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SIZE,
    U64,
)
from .fault import (
    HPAGE_PMD_NR,
    anon_vma_prepare,
    fault_page,
    map_huge_pmd,
    pmd_mapped_blocks,
    thp_vma_suitable_order,
    zap_huge_pmd,
)
from .flags import (
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_DONTEXPAND,
    VM_DROPPABLE,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_IO,
    VM_LOCKED,
    VM_MAYBE_GUARD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_MERGEABLE,
    VM_MIXEDMAP,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    VM_RAND_READ,
    VM_READ,
    VM_SEALED,
    VM_SEQ_READ,
    VM_SHARED,
    VM_SPECIAL,
    VM_WIPEONFORK,
    VM_WRITE,
    vma_pkey,
)
from .merge import vma_modify_flags
from .munmap import checked_range
from .truncate import loff_t, vfs_fallocate_punch_hole

VALID = {MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE,
         MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK, MADV_MERGEABLE, MADV_UNMERGEABLE,
         MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK,
         MADV_KEEPONFORK, MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
         MADV_DONTNEED_LOCKED, MADV_COLLAPSE, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE}
# MADV_HWPOISON/MADV_SOFT_OFFLINE: EINVAL, the target kernel lacks CONFIG_MEMORY_FAILURE
#: discards a sealed read-only anonymous VMA refuses (mm/madvise.c is_discard)
DISCARDS = {MADV_FREE, MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_REMOVE, MADV_DONTFORK,
            MADV_WIPEONFORK, MADV_GUARD_INSTALL}


def ksm_compatible(flags: int) -> bool:
    """mm/ksm.c vma_ksm_compatible(): KSM ignores shared and special mappings."""
    return not flags & (VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | VM_DONTEXPAND |
                        VM_HUGETLB | VM_MIXEDMAP | VM_DROPPABLE)


def can_madvise_modify(task, vma, behavior: int) -> bool:
    """Sealed VMAs refuse discards unless file-backed or writable (pkey included)."""
    if not vma.flags & VM_SEALED or behavior not in DISCARDS:
        return True
    if not vma.is_anonymous():
        return True         # file-backed mappings, shared or private
    if vma.flags & VM_WRITE:
        pkey = vma_pkey(vma.flags)
        return not task.kernel.pkeys or not task.pkru & (3 << (2 * pkey))
    return False


def do_madvise(task, start: int, len_in: int, behavior: int) -> int:
    if behavior not in VALID:
        raise kerr(EINVAL)
    end = checked_range(start, len_in)
    if end == start:
        return 0
    task.mm.mmap_lock("madvise")
    if behavior in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
        return madvise_populate(task, start, end, behavior == MADV_POPULATE_WRITE)
    return madvise_walk_vmas(task, start, end, behavior)


def madvise_walk_vmas(task, start: int, end: int, behavior: int) -> int:
    mm = task.mm
    unmapped_error = 0
    vma = mm.tree.find_vma(start)
    prev = vma if vma is not None and start > vma.start else (
        mm.tree.prev(vma) if vma is not None else None)
    while True:
        if vma is None:
            raise kerr(ENOMEM)
        if start < vma.start:
            unmapped_error = ENOMEM
            start = vma.start
            if start >= end:
                break
        rend = min(vma.end, end)
        vma = madvise_vma_behavior(task, vma, prev, start, rend, behavior)
        prev = vma
        if rend < vma.end:
            rend = vma.end
        if rend >= end:
            break
        vma = mm.tree.find_vma(rend)
        start = rend
    if unmapped_error:
        raise kerr(unmapped_error)
    return 0


def madvise_vma_behavior(task, vma, prev, start, end, behavior):
    """Advise [start, end) of one VMA. Returns the VMA covering the range after."""
    mm = task.mm
    if not can_madvise_modify(task, vma, behavior):
        raise kerr(EPERM)
    flags = vma.flags
    if behavior in (MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE):
        forbidden = VM_PFNMAP | (0 if behavior == MADV_DONTNEED_LOCKED else VM_LOCKED)
        if flags & forbidden:
            raise kerr(EINVAL)
        if behavior == MADV_FREE:
            if not vma.is_anonymous():
                raise kerr(EINVAL)
            return vma      # lazily freed: contents stay until reclaim, never here
        zap_huge_pmds(mm, vma, start, end)
        mm.zap(start, end, markers=False)
        return vma
    if behavior in (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE):
        return madvise_guard(task, vma, start, end, behavior == MADV_GUARD_INSTALL)
    if behavior == MADV_REMOVE:
        return madvise_remove(task, vma, start, end)
    if behavior in (MADV_WILLNEED,):
        return vma
    if behavior in (MADV_COLD, MADV_PAGEOUT):
        if flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):
            raise kerr(EINVAL)
        return vma
    if behavior == MADV_COLLAPSE:
        return madvise_collapse(task, vma, start, end)
    new = flags
    if behavior == MADV_NORMAL:
        new &= ~(VM_RAND_READ | VM_SEQ_READ)
    elif behavior == MADV_SEQUENTIAL:
        new = (new & ~VM_RAND_READ) | VM_SEQ_READ
    elif behavior == MADV_RANDOM:
        new = (new & ~VM_SEQ_READ) | VM_RAND_READ
    elif behavior == MADV_DONTFORK:
        new |= VM_DONTCOPY
    elif behavior == MADV_DOFORK:
        if new & VM_IO:
            raise kerr(EINVAL)
        new &= ~VM_DONTCOPY
    elif behavior == MADV_WIPEONFORK:
        if vma.file is not None or new & VM_SHARED:
            raise kerr(EINVAL)
        new |= VM_WIPEONFORK
    elif behavior == MADV_KEEPONFORK:
        if new & VM_DROPPABLE:
            raise kerr(EINVAL)
        new &= ~VM_WIPEONFORK
    elif behavior == MADV_DONTDUMP:
        new |= VM_DONTDUMP
    elif behavior == MADV_DODUMP:
        if new & (VM_SPECIAL | VM_DROPPABLE):
            raise kerr(EINVAL)
        new &= ~VM_DONTDUMP
    elif behavior == MADV_MERGEABLE:
        if ksm_compatible(new):
            new |= VM_MERGEABLE
    elif behavior == MADV_UNMERGEABLE:
        new &= ~VM_MERGEABLE
    elif behavior == MADV_HUGEPAGE:
        new = (new & ~VM_NOHUGEPAGE) | VM_HUGEPAGE
    elif behavior == MADV_NOHUGEPAGE:
        new = (new & ~VM_HUGEPAGE) | VM_NOHUGEPAGE
    if new == flags:
        return vma
    try:
        vma, new = vma_modify_flags(mm, prev, vma, start, end, new)
    except OSError as exc:
        assert exc.errno is not None        # split_vma() and ->may_split raise kerr()
        raise kerr(EAGAIN if exc.errno == ENOMEM else exc.errno) from None
    mm.vm_stat_account(vma.flags, -vma.pages)
    vma.flags = new
    mm.vm_stat_account(vma.flags, vma.pages)
    return vma


def madvise_guard(task, vma, start, end, install: bool):
    """MADV_GUARD_INSTALL/REMOVE (6.13+): guard PTE markers that fault with SIGSEGV.
    Installing sets the sticky VM_MAYBE_GUARD on the whole VMA (no split), gives an
    anonymous VMA its anon_vma and zaps the range; removing keeps the flag."""
    mm = task.mm
    disallowed = VM_SPECIAL | VM_HUGETLB | (VM_LOCKED if install else 0)
    if vma.flags & disallowed:
        raise kerr(EINVAL)
    first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    if install:
        vma.flags |= VM_MAYBE_GUARD
        if vma.is_anonymous():
            anon_vma_prepare(vma)
        mm.zap(start, end)
        mm.guards.update(dict.fromkeys(range(first, last), True))
        mm.pmd_tables.update(range(start >> 21, ((end - 1) >> 21) + 1))
    else:
        for vpn in mm.present_in(start, end, mm.guards):
            del mm.guards[vpn]
    return vma


def thp_collapse_allowed(vma) -> bool:
    """thp_vma_allowable_order(..., TVA_FORCED_COLLAPSE, PMD_ORDER): anonymous memory
    that has an anon_vma, or shmem; not VM_NOHUGEPAGE; and thp_vma_suitable_order() at
    vm_end - 2 MiB, computed as the kernel does, in unsigned arithmetic (a one-page shmem
    VMA at address 0 passes)."""
    if vma.flags & (VM_NOHUGEPAGE | VM_HUGETLB | VM_SPECIAL):
        return False
    if not thp_vma_suitable_order(vma, (vma.end - PMD_SIZE) & U64):
        return False
    if vma.is_anonymous():
        return vma.anon_vma is not None     # "!vma->anon_vma": only smaps/faults pass
    return vma.file is not None and vma.file.f_op.is_shmem


def madvise_collapse(task, vma, start, end):
    """mm/khugepaged.c madvise_collapse(): EINVAL unless THP collapse is allowed here;
    then the aligned PMD blocks inside the range, in order. Anonymous memory: a block
    collapses if it has a page table, whatever its PTEs; one without (SCAN_PMD_NULL)
    makes the call EINVAL [obs] (anonymous huge pages are not modelled). shmem:
    collapse_file()."""
    if not thp_collapse_allowed(vma):
        raise kerr(EINVAL)
    mm = task.mm
    hstart = (start + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
    hend = end & ~(PMD_SIZE - 1)
    if hend < hstart:
        # "thps == (hend - hstart) >> HPAGE_PMD_SHIFT" in unsigned arithmetic: a range
        # inside one block compares 0 with a huge number, so it fails (EINVAL).
        raise kerr(EINVAL)
    for haddr in range(hstart, hend, PMD_SIZE):
        if vma.is_anonymous():
            if haddr >> 21 not in mm.pmd_tables:
                raise kerr(EINVAL)
        else:
            collapse_file(mm, vma, haddr)
    return vma


def collapse_file(mm, vma, haddr: int) -> None:
    """hpage_collapse_scan_file() and collapse_file() for the shmem block at haddr: a
    block holding no page of the file (an empty or truncated range: SCAN_TRUNCATED)
    stops the call with EINVAL, the blocks before it collapsed; otherwise its pages
    become one PMD-sized folio, the holes filled with zeroes, past EOF too, and
    collapse_pte_mapped_thp() maps it here by a PMD — unless the block has private COW
    copies or guard markers, whose PTEs stay."""
    inode = vma.file.inode
    first = vma.pgoff_at(haddr)
    indexes = range(first, first + HPAGE_PMD_NR)
    if not any(index in inode.pages for index in indexes):
        raise kerr(EINVAL)
    for index in indexes:
        inode.page(index)
    inode.huge_folios.add(first)
    if not mm.present_in(haddr, haddr + PMD_SIZE, mm.anon_pages) and \
            not mm.present_in(haddr, haddr + PMD_SIZE, mm.guards):
        map_huge_pmd(mm, vma, haddr)


def zap_huge_pmds(mm, vma, start: int, end: int) -> None:
    """The PMDs mapping shmem huge folios in [start, end) go whole, even where the range
    covers a block in part (zap_huge_pmd(), __split_huge_pmd() of a file folio)."""
    for block in pmd_mapped_blocks(mm, vma):
        if block << 21 < end and start < (block + 1) << 21:
            zap_huge_pmd(mm, vma, block << 21)


def madvise_remove(task, vma, start, end):
    """mm/madvise.c madvise_remove(): punch a hole in the file behind a shared writable
    mapping, at the loff_t offset (start - vm_start) + (vm_pgoff << PAGE_SHIFT), which
    wraps negative from 2^63 on: vfs_fallocate_punch_hole()."""
    if vma.flags & VM_LOCKED or vma.file is None:
        raise kerr(EINVAL)
    if vma.flags & (VM_SHARED | VM_MAYWRITE) != (VM_SHARED | VM_MAYWRITE):
        raise kerr(EACCES)          # !vma_is_shared_maywrite()
    offset = loff_t((start - vma.start) + (vma.pgoff << PAGE_SHIFT))
    vfs_fallocate_punch_hole(task.kernel, vma.file, offset, end - start)
    return vma


def madvise_populate(task, start: int, end: int, write: bool) -> int:
    """MADV_POPULATE_(READ|WRITE): fault the range in as read or write faults."""
    mm = task.mm
    addr = start
    while addr < end:
        vma = mm.tree.find(addr)
        if vma is None:
            raise kerr(ENOMEM)
        if vma.flags & (VM_IO | VM_PFNMAP):
            raise kerr(EINVAL)
        if not vma.flags & (VM_WRITE if write else VM_READ):
            raise kerr(EINVAL)      # "Incompatible mappings / permissions" [obs]
        try:
            fault_page(task, vma, addr, write)
        except Fault:
            raise kerr(EFAULT) from None
        addr += PAGE_SIZE
    return 0
