"""Splitting and merging VMAs: the model of mm/vma.c (Linux 6.18).

One `VmaMergeStruct` carries each merge attempt, as `struct vma_merge_struct` does:

    |------|--------|------|
    | prev | middle | next |
    |------|--------|------|

`vma_merge_existing_range` changes part of an existing VMA (mprotect, mlock, madvise,
mseal); `vma_merge_new_range` places a new range (mmap, brk, mremap destination).
Neither changes flags: callers set the new flags on the VMA returned (the
`vma_modify_flags` contract: "the VMA is perhaps split, perhaps merged ... and the
caller is expected to perform the actual modification").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ..errors import ENOMEM, kerr
from ..uapi import PAGE_SHIFT
from .flags import VM_IGNORE_MERGE, VM_SPECIAL, VM_STICKY
from .hooks import vm_may_split, vm_open
from .mm_struct import MmStruct
from .vma import AnonVma, Vma


class MergeState(enum.Enum):
    START = 0
    ERROR_NOMEM = 1
    NOMERGE = 2
    SUCCESS = 3


@dataclass(slots=True, eq=False)
class VmaMergeStruct:
    """One merge attempt (mm/vma.h struct vma_merge_struct).

    start/end/pgoff/flags/file/anon_vma describe the range being placed or changed;
    prev/middle/next the VMAs around it; target the VMA that survives a merge.
    copied_from: the source VMA of an mremap move (its fork lineage counts).
    just_expand: brk-style, merge with prev only.
    """

    mm: MmStruct
    prev: Vma | None = None
    middle: Vma | None = None
    next: Vma | None = None
    target: Vma | None = None
    start: int = 0
    end: int = 0
    pgoff: int = 0
    flags: int = 0
    file: Any = None
    anon_vma: AnonVma | None = None
    copied_from: Vma | None = None
    just_expand: bool = False
    state: MergeState = MergeState.START

    @classmethod
    def for_vma(cls, mm: MmStruct, prev: Vma | None, vma: Vma, start: int, end: int,
                flags: int | None = None) -> VmaMergeStruct:
        """VMG_VMA_STATE(): a range inside `vma`, taking its file and anon_vma."""
        return cls(mm, prev=prev, middle=vma, start=start, end=end,
                   pgoff=vma.pgoff_at(start), flags=vma.flags if flags is None else flags,
                   file=vma.file, anon_vma=vma.anon_vma)


# --- predicates ---------------------------------------------------------------------

def is_mergeable_vma(vmg: VmaMergeStruct, merge_next: bool) -> bool:
    """Same flags but the sticky ones (VM_IGNORE_MERGE) and the same struct file.

    mempolicy, userfaultfd context and anon_vma_name are always equal in the model
    (no NUMA policy, no uffd, CONFIG_ANON_VMA_NAME off on the target kernel).
    """
    vma = vmg.next if merge_next else vmg.prev
    assert vma is not None          # the caller found the neighbour adjacent
    return not (vma.flags ^ vmg.flags) & ~VM_IGNORE_MERGE and vma.file is vmg.file


def is_mergeable_anon_vma(vmg: VmaMergeStruct, merge_next: bool) -> bool:
    """Can the range's anon_vma live with the target's? (6.16+ form)

    Case 1: only the source has one: dup it into the target, unless the source (or
            the mremap source it was copied from) is a fork child.
    Case 2: only the target has one: use it, unless the target is a fork child.
    Case 3: both or neither: they must be the same.
    """
    tgt = vmg.next if merge_next else vmg.prev
    assert tgt is not None
    tgt_anon, src_anon = tgt.anon_vma, vmg.anon_vma
    if tgt_anon is None and src_anon is not None:
        src, copied = vmg.middle, vmg.copied_from
        return not (src is not None and src.had_uncowed_parents()) and \
            not (copied is not None and copied.had_uncowed_parents())
    if tgt_anon is not None and src_anon is None:
        return not tgt.had_uncowed_parents()
    return src_anon is tgt_anon


def can_vma_merge_before(vmg: VmaMergeStruct) -> bool:
    """The range can go in front of next: mergeable and file pages continue."""
    nxt = vmg.next
    assert nxt is not None
    pglen = (vmg.end - vmg.start) >> PAGE_SHIFT
    return (is_mergeable_vma(vmg, True) and is_mergeable_anon_vma(vmg, True)
            and nxt.pgoff == vmg.pgoff + pglen)


def can_vma_merge_after(vmg: VmaMergeStruct) -> bool:
    """The range can go behind prev: mergeable and file pages continue."""
    prev = vmg.prev
    assert prev is not None
    return (is_mergeable_vma(vmg, False) and is_mergeable_anon_vma(vmg, False)
            and prev.pgoff + prev.pages == vmg.pgoff)


def can_vma_merge_left(vmg: VmaMergeStruct) -> bool:
    return vmg.prev is not None and vmg.prev.end == vmg.start and can_vma_merge_after(vmg)


def can_vma_merge_right(vmg: VmaMergeStruct, can_merge_left: bool) -> bool:
    """Next can take the range; when prev can too, prev and next must agree."""
    nxt = vmg.next
    if nxt is None or vmg.end != nxt.start or not can_vma_merge_before(vmg):
        return False
    if not can_merge_left:
        return True
    prev = vmg.prev
    assert prev is not None
    return prev.anon_vma is None or nxt.anon_vma is None or prev.anon_vma is nxt.anon_vma


def can_merge_remove_vma(vma: Vma) -> bool:
    """"We can only remove VMAs when merging if they do not have a close hook."""
    return vma.vm_ops is None or vma.vm_ops.close is None


def dup_anon_vma(dst: Vma, src: Vma) -> None:
    """The expanding VMA takes the shrinking one's anon_vma (and chain) if it had none."""
    if src.anon_vma is not None and dst.anon_vma is None:
        dst.anon_vma = src.anon_vma
        dst.avc = src.avc


# --- merging ------------------------------------------------------------------------

def _remove_merged(mm, vma: Vma) -> None:
    """vma_complete() for a VMA a merge deletes: unlink, drop its file reference."""
    mm.tree.remove(vma)
    if vma.file is not None:
        vma.file.put()


def vma_merge_existing_range(vmg: VmaMergeStruct) -> Vma | None:
    """Merge [start, end) of vmg.middle, whose flags become vmg.flags, with neighbours.

    Returns the VMA that now holds the range, or None (vmg.state says why).

    ASSUMPTIONS:
      - vmg.middle is set and [start, end) lies inside it;
      - vmg.prev is the VMA before middle, or middle itself when start is inside it;
      - vmg.next is not set (we look it up);
      - the caller applies vmg.flags to the returned VMA afterwards.
    """
    mm, middle, prev = vmg.mm, vmg.middle, vmg.prev
    assert middle is not None
    start, end = vmg.start, vmg.end
    left_side = start == middle.start
    right_side = end == middle.end
    vmg.state = MergeState.NOMERGE

    if vmg.flags & VM_SPECIAL or (not left_side and not right_side):
        return None

    merge_left = left_side and can_vma_merge_left(vmg)
    nxt = None
    if right_side:
        nxt = vmg.next = mm.tree.next(middle)
        merge_right = can_vma_merge_right(vmg, merge_left)
    else:
        merge_right = False
    if not merge_left and not merge_right:
        return None

    remove_middle = left_side and right_side
    if remove_middle and not can_merge_remove_vma(middle):
        return None
    if merge_left and merge_right:
        assert nxt is not None
        if not can_merge_remove_vma(nxt):
            merge_right = False     # reduce to prev + middle

    sticky = vmg.flags & VM_STICKY
    if merge_right:
        assert nxt is not None      # can_vma_merge_right() found it adjacent
        sticky |= nxt.flags & VM_STICKY
    if merge_left:
        assert prev is not None     # can_vma_merge_left() found it adjacent
        sticky |= prev.flags & VM_STICKY
    tree = mm.tree
    if merge_left and merge_right:
        assert prev is not None and nxt is not None
        #  |<-------------------->|
        #  |-------********-------|
        #    prev   middle   next
        #   extend  delete  delete
        dup_anon_vma(prev, nxt if nxt.anon_vma is not None else middle)
        _remove_merged(mm, middle)
        _remove_merged(mm, nxt)
        tree.set_end(prev, nxt.end)
        vmg.target = prev
    elif merge_left:
        #  |<------------>|      OR
        #  |<----------------->|
        #  |-------*************
        #    prev     middle
        #   extend shrink/delete
        assert prev is not None
        dup_anon_vma(prev, middle)
        if remove_middle:
            _remove_merged(mm, middle)
        else:
            middle.pgoff += (end - middle.start) >> PAGE_SHIFT
            tree.set_start(middle, end)
        tree.set_end(prev, end)
        vmg.target = prev
    else:
        #      |<------------->| OR
        #  |<----------------->|
        #  *************-------|
        #     middle     next
        #  shrink/delete extend
        assert nxt is not None
        dup_anon_vma(nxt, middle)
        if remove_middle:
            _remove_merged(mm, middle)
        else:
            tree.set_end(middle, start)
        nxt.pgoff -= (nxt.start - start) >> PAGE_SHIFT
        tree.set_start(nxt, start)
        vmg.target = nxt
    target = vmg.target
    target.flags |= sticky
    vmg.state = MergeState.SUCCESS
    return target


def vma_merge_new_range(vmg: VmaMergeStruct) -> Vma | None:
    """Place the new range [start, end) by extending prev and/or next.

    Proposed: |-----|, Existing: prev |+++|     |+++| next

      1. both:   |+++|=====|+++|  -> prev grows over the range and next (deleted)
      2. left:   |+++|=====|      -> prev grows
      3. right:        |=====|+++| -> next grows down

    Returns the VMA now covering the range, or None.

    ASSUMPTIONS:
      - vmg.prev/vmg.next are the VMAs around the (free) range, either may be None;
      - vmg.middle is None; vmg.anon_vma is set only for an mremap copy.
    """
    prev, nxt = vmg.prev, vmg.next
    vmg.state = MergeState.NOMERGE
    if vmg.flags & VM_SPECIAL or (prev is None and nxt is None):
        return None
    can_merge_left = can_vma_merge_left(vmg)
    can_merge_right = not vmg.just_expand and can_vma_merge_right(vmg, can_merge_left)
    if can_merge_right:
        assert nxt is not None      # can_vma_merge_right() found it adjacent
        vmg.middle = nxt
        if not can_merge_left or can_merge_remove_vma(nxt):
            vmg.end = nxt.end
    if can_merge_left:
        assert prev is not None     # can_vma_merge_left() found it adjacent
        vmg.start = prev.start
        vmg.middle = prev
        vmg.pgoff = prev.pgoff
    if vmg.middle is None:
        return None
    vma_expand(vmg)
    vmg.state = MergeState.SUCCESS
    return vmg.middle


def vma_expand(vmg: VmaMergeStruct) -> None:
    """Grow vmg.middle to [start, end) with pgoff, swallowing vmg.next if reached.

    ASSUMPTIONS:
      - middle lies inside [start, end) and the rest of the range is free except
        for next, which is deleted when end == next.end.
    """
    mm, middle, nxt = vmg.mm, vmg.middle, vmg.next
    assert middle is not None
    sticky = vmg.flags & VM_STICKY
    if nxt is not None and nxt is not middle and vmg.end == nxt.end:
        sticky |= nxt.flags & VM_STICKY
        dup_anon_vma(middle, nxt)
        _remove_merged(mm, nxt)
    if vmg.copied_from is not None:
        # mremap: a faulted source merging into an unfaulted neighbour brings its
        # anon_vma along ("mm/vma: fix anon_vma UAF on mremap() faulted, unfaulted
        # merge"; the 6.18.44 host agrees).
        dup_anon_vma(middle, vmg.copied_from)
    middle.flags |= sticky
    vmg.target = middle
    mm.tree.set_start(middle, vmg.start)
    mm.tree.set_end(middle, vmg.end)
    middle.pgoff = vmg.pgoff


def vma_merge_extend(mm, vma: Vma, delta: int) -> Vma | None:
    """Grow `vma` in place by delta bytes, merging with next if it is reached."""
    vmg = VmaMergeStruct.for_vma(mm, vma, vma, vma.end, vma.end + delta)
    vmg.pgoff = vma.pgoff + vma.pages
    vmg.next = mm.tree.next(vma)
    vmg.middle = None
    return vma_merge_new_range(vmg)


# --- splitting ----------------------------------------------------------------------

def split_vma_unchecked(mm, vma: Vma, addr: int, new_below: bool) -> Vma:
    """__split_vma(): split `vma` at addr; the new VMA is the part below (new_below) or above.

    `vma` keeps the other part. Asks ->may_split first and calls ->open on the new
    VMA. No max_map_count check (callers that need it use split_vma). An ->open that
    breaks its contract fails the split as __split_vma()'s own errors do: the new VMA
    is freed (its file reference dropped) and `vma` stays whole.
    """
    vm_may_split(vma, addr)
    new = vma.dup()
    if new_below:
        new.end = addr
    else:
        new.start = addr
        new.pgoff += (addr - vma.start) >> PAGE_SHIFT
    _open_new_vma(new)
    if new_below:
        vma.pgoff += (addr - vma.start) >> PAGE_SHIFT
        mm.tree.set_start(vma, addr)
    else:
        mm.tree.set_end(vma, addr)
    mm.tree.insert(new)
    return new


def split_vma(mm, vma: Vma, addr: int, new_below: bool) -> Vma:
    """__split_vma with the max_map_count check: ENOMEM when already at the limit."""
    if len(mm.tree) >= mm.kernel.max_map_count:
        raise kerr(ENOMEM)
    return split_vma_unchecked(mm, vma, addr, new_below)


def vma_modify(vmg: VmaMergeStruct) -> Vma:
    """Merge [start, end) of vmg.middle if possible, else split it out (mm/vma.c).

    Returns the VMA that now spans exactly the range's pages (merged: maybe more).
    The head split is not undone when the tail split fails.
    """
    merged = vma_merge_existing_range(vmg)
    if merged is not None:
        return merged
    vma, mm = vmg.middle, vmg.mm
    assert vma is not None
    if vma.start < vmg.start:
        split_vma(mm, vma, vmg.start, True)
    if vma.end > vmg.end:
        split_vma(mm, vma, vmg.end, False)
    return vma


def vma_modify_flags(mm, prev: Vma | None, vma: Vma, start: int, end: int,
                     flags: int) -> tuple[Vma, int]:
    """Prepare [start, end) of `vma` for new flags; the caller then sets them.

    Returns (vma, flags): after a merge the flags to set include the sticky flags
    the neighbours contributed (the kernel passes vm_flags by pointer for this).
    """
    vmg = VmaMergeStruct.for_vma(mm, prev, vma, start, end, flags)
    vma = vma_modify(vmg)
    return vma, vma.flags if vmg.state is MergeState.SUCCESS else flags


# --- copying (mremap) ---------------------------------------------------------------

def copy_vma(mm, vma: Vma, addr: int, length: int, pgoff: int) -> Vma:
    """The destination VMA of an mremap move, merged with neighbours if possible.

    An unfaulted anonymous VMA gets pgoff = addr >> PAGE_SHIFT at its new place so
    it can merge there; a faulted one keeps its pgoff.
    """
    if vma.is_anonymous() and vma.anon_vma is None:
        pgoff = addr >> PAGE_SHIFT
    vmg = VmaMergeStruct.for_vma(mm, mm.tree.prev_of(addr), vma, addr, addr + length)
    vmg.pgoff = pgoff
    vmg.next = mm.tree.find_vma(addr)
    vmg.middle = None
    vmg.copied_from = vma
    merged = vma_merge_new_range(vmg)
    if merged is not None:
        return merged
    new = vma.dup()
    new.start, new.end, new.pgoff = addr, addr + length, pgoff
    _open_new_vma(new)
    mm.tree.insert(new)
    return new


def _open_new_vma(new: Vma) -> None:
    """get_file() and ->open for a VMA about to enter the tree; if ->open breaks its
    contract, the reference goes again (copy_vma()'s and __split_vma()'s unwinding)."""
    if new.file is not None:
        new.file.get()
    try:
        vm_open(new)
    except BaseException:
        if new.file is not None:
            new.file.put()
        raise
