"""mremap(2) as in Linux 6.18: mm/mremap.c (the 6.16 `vma_remap_struct` rewrite and
the 6.17 multi-VMA move), with copy_vma() from mm/vma.c.

    same size, no new address ........ no-op (returns addr)
    shrink, no new address ........... unmap the tail (may span VMAs)
    expand, no new address ........... in place if the tail is free, else move
                                       (MREMAP_MAYMOVE) or ENOMEM
    MREMAP_FIXED, same size .......... move every VMA of the range, holes kept
    MREMAP_FIXED / DONTUNMAP ......... unmap the destination, shrink, move

All checks that can fail (EFAULT, EPERM, EINVAL) run before anything is unmapped.
"""

from __future__ import annotations

from ..errors import EAGAIN, EFAULT, EINVAL, ENOMEM, EPERM, kerr
from ..uapi import (
    MAP_FIXED,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_MASK,
    PAGE_SHIFT,
    U64,
)
from .flags import (
    VM_ACCOUNT,
    VM_DONTEXPAND,
    VM_HUGETLB,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_MAYSHARE,
    VM_PFNMAP,
    VM_SEALED,
    VM_SHARED,
)
from .hooks import vm_may_split, vm_mremap, vm_pagesize
from .merge import copy_vma, vma_merge_extend
from .mmap import mm_populate
from .munmap import do_vmi_munmap, page_align
from .placement import get_unmapped_area
from .vma import Vma

NO_RESIZE, SHRINK, EXPAND = "no_resize", "shrink", "expand"


class VmaRemap:
    """One mremap in progress (struct vma_remap_struct).

    vma: the source VMA; None until looked up, and never None after check_prep_vma().
    """

    __slots__ = ("task", "mm", "addr", "old_len", "new_len", "flags", "new_addr", "vma",
                 "delta", "remap_type", "charged", "populate_expand")

    def __init__(self, task, addr, old_len, new_len, flags, new_addr):
        self.task = task
        self.mm = task.mm
        self.addr = addr
        self.old_len = old_len
        self.new_len = new_len
        self.flags = flags
        self.new_addr = new_addr
        self.vma: Vma | None = None
        self.delta = 0
        self.remap_type = NO_RESIZE
        self.charged = 0
        self.populate_expand = False

    def implies_new_addr(self) -> bool:
        return bool(self.flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))

    def will_map_new(self) -> bool:
        return self.remap_type == EXPAND or self.implies_new_addr()


def sys_mremap(task, addr, old_len, new_len, flags, new_addr) -> int:
    """do_mremap()."""
    vrm = VmaRemap(task, addr, page_align(old_len), page_align(new_len), flags, new_addr)
    check_mremap_params(vrm)
    task.mm.mmap_lock("mremap")
    if vrm.flags & MREMAP_FIXED and vrm.old_len == vrm.new_len:
        res = remap_move(vrm)
    else:
        vrm.vma = task.mm.tree.find(vrm.addr)
        check_prep_vma(vrm)
        res = mremap_to(vrm) if vrm.implies_new_addr() else mremap_at(vrm)
    if vrm.populate_expand:
        mm_populate(task, vrm.new_addr + vrm.old_len, vrm.delta)
    return res


def check_mremap_params(vrm: VmaRemap) -> None:
    """Argument checks made before the mmap lock is taken."""
    task_size = vrm.mm.kernel.task_size
    flags = vrm.flags
    if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP):
        raise kerr(EINVAL)
    if vrm.addr & ~PAGE_MASK:
        raise kerr(EINVAL)
    if not vrm.new_len or vrm.new_len > task_size:
        raise kerr(EINVAL)
    if not vrm.implies_new_addr():
        return
    if vrm.new_addr > task_size - vrm.new_len or vrm.new_addr & ~PAGE_MASK:
        raise kerr(EINVAL)
    if not flags & MREMAP_MAYMOVE:
        raise kerr(EINVAL)
    if flags & MREMAP_DONTUNMAP and vrm.old_len != vrm.new_len:
        raise kerr(EINVAL)
    end_old = (vrm.addr + vrm.old_len) & U64     # unsigned long arithmetic wraps
    end_new = (vrm.new_addr + vrm.new_len) & U64
    if end_old > vrm.new_addr and end_new > vrm.addr:
        raise kerr(EINVAL)      # vrm_overlaps(): source and destination overlap
    if len(vrm.mm.tree) + 2 >= vrm.mm.kernel.max_map_count - 3:
        raise kerr(ENOMEM)


def check_prep_vma(vrm: VmaRemap) -> None:
    """The VMA-dependent checks (EFAULT, EPERM, EINVAL, EAGAIN, ENOMEM)."""
    vma = vrm.vma
    if vma is None:
        raise kerr(EFAULT)
    if vma.flags & VM_SEALED:
        raise kerr(EPERM)
    if vma.flags & VM_HUGETLB and not align_hugetlb(vrm, vma):
        raise kerr(EINVAL)
    vrm.delta = abs(vrm.old_len - vrm.new_len)
    vrm.remap_type = NO_RESIZE if not vrm.delta else \
        SHRINK if vrm.old_len > vrm.new_len else EXPAND
    if not vrm.implies_new_addr():
        vrm.new_addr = vrm.addr
    if not vrm.will_map_new():
        return
    old_len, new_len = vrm.old_len, vrm.new_len
    if not old_len and not vma.flags & (VM_SHARED | VM_MAYSHARE):
        raise kerr(EINVAL)      # "attempted to duplicate a private mapping"
    if vrm.flags & MREMAP_DONTUNMAP and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise kerr(EINVAL)
    if vrm.remap_type == SHRINK:
        old_len = new_len
    if old_len > vma.end - vrm.addr:
        raise kerr(EFAULT)
    if new_len == old_len:
        return
    if vma.flags & VM_LOCKED:
        vrm.populate_expand = True
    pgoff = vma.pgoff_at(vrm.addr)
    if pgoff + (new_len >> PAGE_SHIFT) > U64:
        raise kerr(EINVAL)
    if vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise kerr(EFAULT)
    if not vrm.mm.mlock_future_ok(vrm.task, vma.flags, vrm.delta):
        raise kerr(EAGAIN)
    if not vrm.mm.may_expand_vm(vrm.task, vma.flags, vrm.delta >> PAGE_SHIFT):
        raise kerr(ENOMEM)


def align_hugetlb(vrm: VmaRemap, vma: Vma) -> bool:
    """Huge-page aligned addresses, lengths rounded up, and no expansion."""
    size = vm_pagesize(vma)
    vrm.old_len = (vrm.old_len + size - 1) & ~(size - 1)
    vrm.new_len = (vrm.new_len + size - 1) & ~(size - 1)
    if vrm.addr & (size - 1) or vrm.new_addr & (size - 1):
        return False
    return vrm.new_len <= vrm.old_len


def mremap_at(vrm: VmaRemap) -> int:
    """No new address: no-op, shrink in place, or expand (in place or moved)."""
    if vrm.remap_type == NO_RESIZE:
        return vrm.addr
    if vrm.remap_type == SHRINK:
        do_vmi_munmap(vrm.mm, vrm.addr + vrm.new_len, vrm.delta)
        return vrm.addr
    return expand_vma(vrm)


def expand_vma(vrm: VmaRemap) -> int:
    vma = vrm.vma
    assert vma is not None      # check_prep_vma() found it
    if vma.end - vrm.addr == vrm.old_len and vma_expandable(vrm):
        if not vrm_charge(vrm):
            raise kerr(ENOMEM)
        merged = vma_merge_extend(vrm.mm, vma, vrm.delta)
        if merged is None:
            vrm_uncharge(vrm)
            raise kerr(ENOMEM)
        vrm.vma = merged
        vrm_stat_account(vrm, vrm.delta)
        return vrm.addr
    if not vrm.flags & MREMAP_MAYMOVE:
        raise kerr(ENOMEM)
    vrm_set_new_addr(vrm)
    return move_vma(vrm)


def vma_expandable(vrm: VmaRemap) -> bool:
    """The range after the VMA is free and the grown VMA is a valid placement."""
    vma, kernel = vrm.vma, vrm.mm.kernel
    assert vma is not None
    end = vma.end + vrm.delta
    if vrm.mm.tree.find_intersecting(vma.end, end) is not None:
        return False
    length = end - vma.start
    return length <= kernel.task_size and vma.start <= kernel.task_size - length


def mremap_to(vrm: VmaRemap) -> int:
    """A new address is implied (MREMAP_FIXED or MREMAP_DONTUNMAP)."""
    mm = vrm.mm
    if vrm.flags & MREMAP_FIXED:
        do_vmi_munmap(mm, vrm.new_addr, vrm.new_len)
        vrm.vma = mm.tree.find(vrm.addr)
        if vrm.vma is None:
            raise kerr(EFAULT)
    if vrm.remap_type == SHRINK:
        do_vmi_munmap(mm, vrm.addr + vrm.new_len, vrm.delta)
        vrm.vma = mm.tree.find(vrm.addr)
        vrm.old_len = vrm.new_len
    assert vrm.vma is not None      # found again after each unmap
    if vrm.flags & MREMAP_DONTUNMAP and \
            not mm.may_expand_vm(vrm.task, vrm.vma.flags, vrm.old_len >> PAGE_SHIFT):
        raise kerr(ENOMEM)
    vrm_set_new_addr(vrm)
    return move_vma(vrm)


def vrm_set_new_addr(vrm: VmaRemap) -> None:
    """Choose the destination (MREMAP_FIXED: exactly new_addr)."""
    vma = vrm.vma
    assert vma is not None
    pgoff = vma.pgoff_at(vrm.addr)
    hint = vrm.new_addr if vrm.implies_new_addr() else 0
    map_flags = (MAP_FIXED if vrm.flags & MREMAP_FIXED else 0) | \
        (MAP_SHARED if vma.flags & VM_MAYSHARE else 0)
    vrm.new_addr = get_unmapped_area(vrm.task, vma.file, hint, vrm.new_len, pgoff, map_flags)


def vrm_charge(vrm: VmaRemap) -> bool:
    """vrm_calc_charge(): accounted VMAs pay for the growth (DONTUNMAP: all of it)."""
    assert vrm.vma is not None
    if not vrm.vma.flags & VM_ACCOUNT:
        return True
    charged = (vrm.new_len if vrm.flags & MREMAP_DONTUNMAP else vrm.delta) >> PAGE_SHIFT
    try:
        vrm.mm.account(charged)
    except OSError:
        return False
    vrm.charged = charged
    return True


def vrm_uncharge(vrm: VmaRemap) -> None:
    if vrm.charged:
        vrm.mm.unaccount(vrm.charged)
        vrm.charged = 0


def vrm_stat_account(vrm: VmaRemap, nbytes: int) -> None:
    pages = nbytes >> PAGE_SHIFT
    assert vrm.vma is not None
    vrm.mm.vm_stat_account(vrm.vma.flags, pages)
    if vrm.vma.flags & VM_LOCKED:
        vrm.mm.locked_vm += pages


def move_vma(vrm: VmaRemap) -> int:
    """Copy the VMA to new_addr, move its pages, then unmap the source (or, for
    MREMAP_DONTUNMAP, leave it empty). ->mremap may refuse: the move is undone and
    the new range unmapped."""
    mm, vma = vrm.mm, vrm.vma
    assert vma is not None
    if len(mm.tree) >= mm.kernel.max_map_count - 3:
        raise kerr(ENOMEM)
    if vma.start != vrm.addr:
        vm_may_split(vma, vrm.addr)
    if vma.end != vrm.addr + vrm.old_len:
        vm_may_split(vma, vrm.addr + vrm.old_len)
    if not vrm_charge(vrm):
        raise kerr(ENOMEM)
    err: BaseException | None = None
    src_start = vma.start
    try:
        new_vma = copy_vma(mm, vma, vrm.new_addr, vrm.new_len, vma.pgoff_at(vrm.addr))
    except BaseException:
        vrm_uncharge(vrm)
        raise
    if new_vma.start <= src_start < new_vma.end:
        vrm.vma = vma = new_vma     # an unfaulted source merged into its copy
    mm.move_pages(vrm.addr, vrm.new_addr, vrm.old_len)
    try:
        vm_mremap(new_vma)
    except BaseException as exc:
        err = exc
        mm.move_pages(vrm.new_addr, vrm.addr, vrm.old_len)
        vrm.vma, vrm.addr, vrm.old_len = new_vma, vrm.new_addr, vrm.new_len
    vrm_stat_account(vrm, vrm.new_len)
    if err is None and vrm.flags & MREMAP_DONTUNMAP:
        dontunmap_complete(vrm, new_vma)
    else:
        unmap_source_vma(vrm)
    if err is not None:
        raise err
    return vrm.new_addr


def dontunmap_complete(vrm: VmaRemap, new_vma: Vma) -> None:
    """The old VMA stays, unlocked; it loses its anon_vma if moved whole."""
    vma = vrm.vma
    assert vma is not None
    vma.flags &= ~VM_LOCKED_MASK
    if new_vma is not vma and vrm.addr == vma.start and vrm.addr + vrm.old_len == vma.end:
        vma.anon_vma, vma.avc = None, ()


def unmap_source_vma(vrm: VmaRemap) -> None:
    """Unmap [addr, addr+old_len) without unaccounting what moved: VM_ACCOUNT is
    cleared for the unmap and put back on the pieces of the source that remain."""
    mm, vma = vrm.mm, vrm.vma
    assert vma is not None
    addr, length = vrm.addr, vrm.old_len
    accountable = vma.flags & VM_ACCOUNT and not vrm.flags & MREMAP_DONTUNMAP
    if accountable:
        vma.flags &= ~VM_ACCOUNT
        vm_start, vm_end = vma.start, vma.end
    try:
        do_vmi_munmap(mm, addr, length)
    except OSError:
        return
    if accountable:
        if vm_start < addr:
            mm.tree.prev_of(addr).flags |= VM_ACCOUNT
        if vm_end > addr + length:
            mm.tree.find_vma(addr).flags |= VM_ACCOUNT


def vma_multi_allowed(vma) -> bool:
    """Several VMAs may move at once unless a driver places its own mappings."""
    file = vma.file
    return file is None or file.f_op.get_unmapped_area is None or file.f_op.trusted_placement


def remap_move(vrm: VmaRemap) -> int:
    """MREMAP_FIXED with old_len == new_len (6.17+): move each VMA of the range to
    the same offset at the destination, keeping the gaps between them."""
    mm = vrm.mm
    start, end = vrm.addr, vrm.addr + vrm.old_len
    target = vrm.new_addr
    res = None
    last_end = 0
    seen = False
    vma = mm.tree.find_intersecting(start, end)
    while vma is not None and vma.start < end:
        if not seen and start < vma.start:
            raise kerr(EFAULT)
        addr = max(vma.start, start)
        length = min(end, vma.end) - addr
        offset = vma.start - last_end if seen else 0
        last_end = vma.end
        if not vma_multi_allowed(vma) and (seen or vma.end < end):
            raise kerr(EFAULT)
        step = VmaRemap(vrm.task, addr, length, length, vrm.flags, target + offset)
        step.vma = vma
        check_prep_vma(step)
        got = mremap_to(step)
        if not seen:
            res = got
        seen = True
        target = got + length
        vma = mm.tree.find_intersecting(last_end, end)      # the iterator resumes after
    if res is None:
        raise kerr(EFAULT)
    return res
