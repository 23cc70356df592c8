"""Unit tests for the merge engine (vmsim.mm.merge), after the kernel's userland VMA
tests: Linux 6.18 tools/testing/vma/vma.c (the single-file layout; the VM_STICKY
permutations that a 7.x tree adds are left out, as spec §7.1 says).

The tests call the engine directly on a bare MmStruct, the way vma.c drives
mm/vma.c: VMAs are built and linked by hand, a VmaMergeStruct is filled in, and the
merge function under test is called. Each test keeps the kernel test's name.

Diagram legend (as in vma.c): one character per 4 KiB page, the address in pages
on the ruler line.  Capitals are VMAs (P prev, V the VMA being modified, N next,
A/B/C/D named VMAs), '*' marks the range being placed or changed and '<->' marks
the range of an existing VMA that is modified.

Things the model has no equivalent for, and what the port does instead:
  * vma_write_started() (per-VMA lock sequence numbers): the model has no per-VMA
    locks, so those asserts are dropped.
  * The VMA iterator: the model's tree is looked up by address, so the helper
    merge_new() finds prev/next by address where vma.c reads them off the iterator,
    and expand_only_mode's iterator-position assert is dropped.
  * anon_vma_clone()'s was_cloned / was_unlinked markers: "was cloned" becomes
    "the surviving VMA now has that anon_vma and its chain links it".
  * VMA_MERGE_ERROR_NOMEM: the model never fails an allocation (see
    test_vmi_prealloc_fail).

The counters (total_vm, data_vm, ...) are kept by the syscall layer, not by the
engine, so the helpers charge pages exactly where the kernel's callers would
(linking a VMA, placing a new range, growing a VMA) and mm.validate() is called
after each step: it then also checks that no merge lost, duplicated or overlapped
pages.
"""

from __future__ import annotations

import errno

import pytest

from vmsim.kernel import Kernel
from vmsim.mm import merge
from vmsim.mm.flags import (
    VM_DONTEXPAND,
    VM_IO,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_READ,
    VM_SPECIAL,
    VM_WRITE,
)
from vmsim.mm.merge import (
    MergeState,
    VmaMergeStruct,
    copy_vma,
    vma_expand,
    vma_merge_existing_range,
    vma_merge_extend,
    vma_merge_new_range,
    vma_modify_flags,
)
from vmsim.mm.mm_struct import MmStruct
from vmsim.mm.vma import AnonVma, Vma, VmOperations
from vmsim.uapi import PAGE_SHIFT

#: The flags every vma.c test uses for its VMAs.
FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE


# --------------------------------------------------------------------------- helpers

class CloseOps(VmOperations):
    """vm_ops with only a (do-nothing) ->close, like vma.c's dummy_close."""

    def close(self, vma):
        pass


def new_mm(**kernel_args) -> MmStruct:
    return MmStruct(Kernel(**kernel_args))


def pages(start: int, end: int) -> int:
    return (end - start) >> PAGE_SHIFT


def alloc_vma(mm, start, end, pgoff, flags=FLAGS) -> Vma:
    """A VMA that is not linked into the tree yet."""
    return Vma(mm, start, end, flags, pgoff)


def link_vma(mm, vma) -> Vma:
    """Link `vma` and charge its pages, as a syscall that creates a VMA does."""
    mm.tree.insert(vma)
    mm.vm_stat_account(vma.flags, vma.pages)
    return vma


def alloc_and_link_vma(mm, start, end, pgoff, flags=FLAGS) -> Vma:
    return link_vma(mm, alloc_vma(mm, start, end, pgoff, flags))


def set_anon_vma(vma, anon_vma) -> None:
    """Give `vma` an anon_vma with a one-entry chain (not a fork child), as vma.c's
    vma_set_dummy_anon_vma() does."""
    vma.anon_vma = anon_vma
    vma.avc = (anon_vma,)


def vmg_range(mm, start, end, pgoff, flags=FLAGS, *, prev=None, middle=None,
              anon_vma=None) -> VmaMergeStruct:
    """vma.c vmg_set_range() (+ _anon_vma): a fresh merge state for [start, end)."""
    return VmaMergeStruct(mm, prev=prev, middle=middle, start=start, end=end,
                          pgoff=pgoff, flags=flags, anon_vma=anon_vma)


def merge_new(vmg) -> Vma | None:
    """vma.c merge_new(): look up prev and next around the gap, then try the merge.

    A successful merge maps the range's pages, so they are charged here, as
    __mmap_region() does afterwards.
    """
    mm, start, end = vmg.mm, vmg.start, vmg.end
    vmg.prev = mm.tree.prev_of(start)
    vmg.next = mm.tree.find_vma(start)
    vma = vma_merge_new_range(vmg)
    if vma is not None:
        mm.vm_stat_account(vmg.flags, pages(start, end))
    return vma


def try_merge_new_vma(mm, start, end, pgoff, flags=FLAGS) -> tuple[Vma, bool]:
    """vma.c try_merge_new_vma(): merge the new range, else link a new VMA for it."""
    vmg = vmg_range(mm, start, end, pgoff, flags)
    merged = merge_new(vmg)
    if merged is not None:
        assert vmg.state is MergeState.SUCCESS
        return merged, True
    assert vmg.state is MergeState.NOMERGE
    return alloc_and_link_vma(mm, start, end, pgoff, flags), False


def expand_existing(vmg) -> None:
    """vma.c expand_existing(): vma_expand().

    Linux 6.18 names the VMA to grow vmg->target; vmsim's vma_expand reads it from
    vmg.middle (its documented contract), so the target is passed there.  The
    growth is charged like a new range.
    """
    vma = vmg.middle
    before = vma.pages
    nxt = vmg.next
    swallowed = nxt.pages if nxt is not None and nxt is not vma and vmg.end == nxt.end else 0
    vma_expand(vmg)
    mm = vmg.mm
    mm.vm_stat_account(vma.flags, vma.pages - before - swallowed)


def layout(mm) -> list[tuple[int, int, int]]:
    """Every VMA as (start, end, pgoff), in address order."""
    return [(v.start, v.end, v.pgoff) for v in mm.tree]


def span(vma) -> tuple[int, int, int]:
    return vma.start, vma.end, vma.pgoff


# --------------------------------------------------------------------------- simple

def test_simple_merge():
    """A new range between two compatible VMAs joins them into one."""
    mm = new_mm()
    # 0123
    # L*R
    left = alloc_and_link_vma(mm, 0x0000, 0x1000, 0)
    alloc_and_link_vma(mm, 0x2000, 0x3000, 2)
    vmg = vmg_range(mm, 0x1000, 0x2000, 1)

    vma = merge_new(vmg)

    # 0123
    # LLL
    assert vma is left
    assert vmg.state is MergeState.SUCCESS
    assert span(vma) == (0x0000, 0x3000, 0)
    assert vma.flags == FLAGS
    assert len(mm.tree) == 1
    mm.validate()


def test_simple_modify():
    """vma_modify_flags() on the middle of a VMA only splits (the caller would set
    the flags): three VMAs, and the one returned is the original record."""
    mm = new_mm()
    # 0123
    # VVV
    #  <>
    init_vma = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)

    vma, _ = vma_modify_flags(mm, init_vma, init_vma, 0x1000, 0x2000, VM_READ | VM_MAYREAD)

    # 0123
    # ABC      B is init_vma
    assert vma is init_vma
    assert span(vma) == (0x1000, 0x2000, 1)
    assert layout(mm) == [(0x0000, 0x1000, 0), (0x1000, 0x2000, 1), (0x2000, 0x3000, 2)]
    # Nothing changed the flags.
    assert all(v.flags == FLAGS for v in mm.tree)
    mm.validate()


def test_simple_expand():
    """vma_expand() grows a lone VMA over free space."""
    mm = new_mm()
    # 0123
    # V**
    vma = alloc_and_link_vma(mm, 0x0000, 0x1000, 0)
    vmg = VmaMergeStruct(mm, middle=vma, target=vma, start=0x0000, end=0x3000, pgoff=0)

    expand_existing(vmg)

    # 0123
    # VVV
    assert span(vma) == (0x0000, 0x3000, 0)
    assert len(mm.tree) == 1
    mm.validate()


def test_simple_shrink():
    """vma_shrink() trims a VMA to [0, 0x1000)."""
    vma_shrink = getattr(merge, "vma_shrink", None)
    if vma_shrink is None:
        pytest.skip("vmsim.mm.merge has no vma_shrink(): in 6.18 its only caller is "
                    "exec's relocate_vma_down() (mm/vma_exec.c), which vmsim does not model")
    mm = new_mm()
    # 0123
    # VVV  ->  V
    vma = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma_shrink(mm, vma, 0x0000, 0x1000, 0)
    mm.vm_stat_account(vma.flags, -2)
    assert span(vma) == (0x0000, 0x1000, 0)
    assert len(mm.tree) == 1
    mm.validate()


# --------------------------------------------------------------------------- new ranges

def test_merge_new():
    """Every way a new range can join its neighbours, ending in one VMA."""
    mm = new_mm()
    anon = AnonVma()
    ops = CloseOps()

    # 0123456789abc
    # AA B       CC
    vma_a = alloc_and_link_vma(mm, 0x0000, 0x2000, 0)
    vma_b = alloc_and_link_vma(mm, 0x3000, 0x4000, 3)
    vma_c = alloc_and_link_vma(mm, 0xb000, 0xc000, 0xb)
    mm.validate()

    # No merge: nothing adjacent.
    #
    # 0123456789abc
    # AA B   **  CC
    vma_d, merged = try_merge_new_vma(mm, 0x7000, 0x9000, 7)
    assert not merged
    assert span(vma_d) == (0x7000, 0x9000, 7)
    assert len(mm.tree) == 4
    mm.validate()

    # Merge both sides: A grows over the range and B, B is deleted.  A's ->close
    # does not matter (A is extended, not deleted); B's anon_vma moves to A.
    #
    # 0123456789abc
    # AA*B   DD  CC
    vma_a.vm_ops = ops
    set_anon_vma(vma_b, anon)
    vma, merged = try_merge_new_vma(mm, 0x2000, 0x3000, 2)
    assert merged
    assert vma is vma_a
    assert span(vma) == (0x0000, 0x4000, 0)
    assert vma.anon_vma is anon
    assert len(mm.tree) == 3
    assert mm.tree.find(0x3000) is vma_a
    mm.validate()

    # Merge with prev: A grows.
    #
    # 0123456789abc
    # AAAA*  DD  CC
    vma, merged = try_merge_new_vma(mm, 0x4000, 0x5000, 4)
    assert merged
    assert vma is vma_a
    assert span(vma) == (0x0000, 0x5000, 0)
    assert vma.anon_vma is anon
    assert len(mm.tree) == 3
    mm.validate()

    # Merge with next: D grows down.  D's ->close does not matter (D is extended).
    #
    # 0123456789abc
    # AAAAA *DD  CC
    set_anon_vma(vma_d, anon)
    vma_d.vm_ops = ops
    vma, merged = try_merge_new_vma(mm, 0x6000, 0x7000, 6)
    assert merged
    assert vma is vma_d
    assert span(vma) == (0x6000, 0x9000, 6)
    assert vma.anon_vma is anon
    assert len(mm.tree) == 3
    mm.validate()

    # Merge both sides: A grows over the range and D, D is deleted.  (With its
    # ->close D could not be deleted and the merge would shrink to A only, so the
    # kernel test clears D's vm_ops first.)
    #
    # 0123456789abc
    # AAAAA*DDD  CC
    vma_d.vm_ops = None
    vma, merged = try_merge_new_vma(mm, 0x5000, 0x6000, 5)
    assert merged
    assert vma is vma_a
    assert span(vma) == (0x0000, 0x9000, 0)
    assert vma.anon_vma is anon
    assert len(mm.tree) == 2
    mm.validate()

    # Merge with next: C grows down.
    #
    # 0123456789abc
    # AAAAAAAAA *CC
    set_anon_vma(vma_c, anon)
    vma, merged = try_merge_new_vma(mm, 0xa000, 0xb000, 0xa)
    assert merged
    assert vma is vma_c
    assert span(vma) == (0xa000, 0xc000, 0xa)
    assert vma.anon_vma is anon
    assert len(mm.tree) == 2
    mm.validate()

    # Merge both sides: A grows over the range and C, C is deleted.
    #
    # 0123456789abc
    # AAAAAAAAA*CCC
    vma, merged = try_merge_new_vma(mm, 0x9000, 0xa000, 9)
    assert merged
    assert vma is vma_a
    assert span(vma) == (0x0000, 0xc000, 0)
    assert vma.anon_vma is anon
    assert len(mm.tree) == 1
    mm.validate()

    # Final state.
    #
    # 0123456789abc
    # AAAAAAAAAAAA
    assert layout(mm) == [(0x0000, 0xc000, 0)]
    assert [v.anon_vma for v in mm.tree] == [anon]


def test_vma_merge_special_flags():
    """Each VM_SPECIAL flag blocks both a new-range merge and an existing-range merge."""
    special_flags = [VM_IO, VM_DONTEXPAND, VM_PFNMAP, VM_MIXEDMAP]
    # The set is exactly VM_SPECIAL (no new special flag crept in).
    all_special = 0
    for flag in special_flags:
        all_special |= flag
    assert all_special == VM_SPECIAL

    mm = new_mm()
    # 01234
    # AAA
    vma_left = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)

    # 1. A new range that would merge with A, but for the special flag.
    #
    # 01234
    # AAA*
    for flag in special_flags:
        vma_left.flags = FLAGS | flag
        vmg = vmg_range(mm, 0x3000, 0x4000, 3, FLAGS | flag)
        assert merge_new(vmg) is None
        assert vmg.state is MergeState.NOMERGE
        assert layout(mm) == [(0x0000, 0x3000, 0)]

    # 2. Changing all of B, which would then merge with A, but for the special flag.
    #
    # 01234
    # AAAB
    #    <>
    vma = alloc_and_link_vma(mm, 0x3000, 0x4000, 3)
    for flag in special_flags:
        vma_left.flags = FLAGS | flag
        vmg = vmg_range(mm, 0x3000, 0x4000, 3, FLAGS | flag, prev=vma_left, middle=vma)
        assert vma_merge_existing_range(vmg) is None
        assert vmg.state is MergeState.NOMERGE
        assert layout(mm) == [(0x0000, 0x3000, 0), (0x3000, 0x4000, 3)]
    mm.validate()


def test_vma_merge_with_close():
    """A VMA with ->close is never deleted by a merge.

    Where a merge would delete next (new range, or existing range merging both
    sides) it is reduced to extending prev; where it would delete the VMA being
    modified, there is no merge at all.  (Per the kernel test: prev is never
    deleted, and "middle has no ->close but next has" is impossible in practice,
    because equal vm_ops imply an equal file.)
    """
    ops = CloseOps()

    # New range, next has ->close: only prev is extended.
    #
    # 0123456789
    # PPP**NNNN
    #             ->
    # 0123456789
    # PPPPPNNNN
    mm = new_mm()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma_next = alloc_and_link_vma(mm, 0x5000, 0x9000, 5)
    vma_next.vm_ops = ops
    vmg = vmg_range(mm, 0x3000, 0x5000, 3)
    assert merge_new(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert span(vma_prev) == (0x0000, 0x5000, 0)
    assert span(vma_next) == (0x5000, 0x9000, 5)
    assert len(mm.tree) == 2
    mm.validate()

    # Existing range, all of V, V has ->close: merging left would delete V, so no
    # merge.
    #
    #    <>
    # 0123456789
    # PPPVV
    mm = new_mm()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    vma.vm_ops = ops
    vmg = vmg_range(mm, 0x3000, 0x5000, 3, prev=vma_prev, middle=vma)
    assert vma_merge_existing_range(vmg) is None
    assert vmg.state is MergeState.NOMERGE
    assert layout(mm) == [(0x0000, 0x3000, 0), (0x3000, 0x5000, 3)]
    mm.validate()

    # The same when merging right (no prev).
    #
    #    <>
    # 0123456789
    #    VVNNNN
    mm = new_mm()
    vma = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    alloc_and_link_vma(mm, 0x5000, 0x9000, 5)
    vma.vm_ops = ops
    vmg = vmg_range(mm, 0x3000, 0x5000, 3, middle=vma)
    assert vma_merge_existing_range(vmg) is None
    assert vmg.state is MergeState.NOMERGE
    assert layout(mm) == [(0x3000, 0x5000, 3), (0x5000, 0x9000, 5)]
    mm.validate()

    # Both sides, V has ->close: no merge.
    #
    #    <>
    # 0123456789
    # PPPVVNNNN
    mm = new_mm()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    alloc_and_link_vma(mm, 0x5000, 0x9000, 5)
    vma.vm_ops = ops
    vmg = vmg_range(mm, 0x3000, 0x5000, 3, prev=vma_prev, middle=vma)
    assert vma_merge_existing_range(vmg) is None
    assert vmg.state is MergeState.NOMERGE
    assert len(mm.tree) == 3
    mm.validate()

    # Both sides, N has ->close: reduced to a prev + V merge.
    #
    #    <>
    # 0123456789
    # PPPVVNNNN
    #            ->
    # 0123456789
    # PPPPPNNNN
    mm = new_mm()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    vma_next = alloc_and_link_vma(mm, 0x5000, 0x9000, 5)
    vma_next.vm_ops = ops
    vmg = vmg_range(mm, 0x3000, 0x5000, 3, prev=vma_prev, middle=vma)
    assert vma_merge_existing_range(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert span(vma_prev) == (0x0000, 0x5000, 0)
    assert span(vma_next) == (0x5000, 0x9000, 5)
    assert len(mm.tree) == 2
    mm.validate()


def test_vma_merge_new_with_close():
    """prev and next both have ->close: a new range between them extends prev and
    leaves next alone (next may not be deleted, prev may be extended).

           New VMA
       A  v-------v  B
    |-----|       |-----|
     close         close
                ->
          A          B
    |------------||-----|
     close         close
    """
    mm = new_mm()
    ops = CloseOps()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x2000, 0)
    vma_next = alloc_and_link_vma(mm, 0x5000, 0x7000, 5)
    vma_prev.vm_ops = ops
    vma_next.vm_ops = ops

    vmg = vmg_range(mm, 0x2000, 0x5000, 2)
    vma = merge_new(vmg)

    assert vma is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert span(vma) == (0x0000, 0x5000, 0)
    assert vma.vm_ops is ops
    assert span(vma_next) == (0x5000, 0x7000, 5)
    assert len(mm.tree) == 2
    mm.validate()


# --------------------------------------------------------------------------- existing ranges

def test_merge_existing():
    """Changing part or all of an existing VMA merges it with prev and/or next."""
    ops = CloseOps()
    anon = AnonVma()

    # Merge right, partial span: V keeps its head, N grows down over the rest.
    # ->close on V and N does not matter (neither is deleted).
    #
    #    <->
    # 0123456789
    #   VVVVNNN
    #            ->
    # 0123456789
    #   VNNNNNN
    mm = new_mm()
    vma = alloc_and_link_vma(mm, 0x2000, 0x6000, 2)
    vma.vm_ops = ops
    vma_next = alloc_and_link_vma(mm, 0x6000, 0x9000, 6)
    vma_next.vm_ops = ops
    set_anon_vma(vma, anon)
    vmg = vmg_range(mm, 0x3000, 0x6000, 3, prev=vma, middle=vma, anon_vma=anon)
    assert vma_merge_existing_range(vmg) is vma_next
    assert vmg.state is MergeState.SUCCESS
    assert span(vma_next) == (0x3000, 0x9000, 3)
    assert vma_next.anon_vma is anon
    assert span(vma) == (0x2000, 0x3000, 2)
    assert len(mm.tree) == 2
    mm.validate()

    # Merge right, full span: V is deleted, N grows down over all of it.
    #
    #   <-->
    # 0123456789
    #   VVVVNNN
    #            ->
    # 0123456789
    #   NNNNNNN
    mm = new_mm()
    vma = alloc_and_link_vma(mm, 0x2000, 0x6000, 2)
    vma_next = alloc_and_link_vma(mm, 0x6000, 0x9000, 6)
    vma_next.vm_ops = ops
    set_anon_vma(vma, anon)
    vmg = vmg_range(mm, 0x2000, 0x6000, 2, middle=vma, anon_vma=anon)
    assert vma_merge_existing_range(vmg) is vma_next
    assert vmg.state is MergeState.SUCCESS
    assert span(vma_next) == (0x2000, 0x9000, 2)
    assert vma_next.anon_vma is anon
    assert len(mm.tree) == 1
    assert layout(mm) == [(0x2000, 0x9000, 2)]
    mm.validate()

    # Merge left, partial span: P grows over V's head, V keeps its tail.
    #
    #    <->
    # 0123456789
    # PPPVVVV
    #            ->
    # 0123456789
    # PPPPPPV
    mm = new_mm()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma_prev.vm_ops = ops
    vma = alloc_and_link_vma(mm, 0x3000, 0x7000, 3)
    vma.vm_ops = ops
    set_anon_vma(vma, anon)
    vmg = vmg_range(mm, 0x3000, 0x6000, 3, prev=vma_prev, middle=vma, anon_vma=anon)
    assert vma_merge_existing_range(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert span(vma_prev) == (0x0000, 0x6000, 0)
    assert vma_prev.anon_vma is anon
    assert span(vma) == (0x6000, 0x7000, 6)
    assert len(mm.tree) == 2
    mm.validate()

    # Merge left, full span: V is deleted, P grows over all of it.
    #
    #    <-->
    # 0123456789
    # PPPVVVV
    #            ->
    # 0123456789
    # PPPPPPP
    mm = new_mm()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma_prev.vm_ops = ops
    vma = alloc_and_link_vma(mm, 0x3000, 0x7000, 3)
    set_anon_vma(vma, anon)
    vmg = vmg_range(mm, 0x3000, 0x7000, 3, prev=vma_prev, middle=vma, anon_vma=anon)
    assert vma_merge_existing_range(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert span(vma_prev) == (0x0000, 0x7000, 0)
    assert vma_prev.anon_vma is anon
    assert len(mm.tree) == 1
    mm.validate()

    # Merge both: V and N are deleted, P grows over both.
    #
    #    <-->
    # 0123456789
    # PPPVVVVNNN
    #             ->
    # 0123456789
    # PPPPPPPPPP
    mm = new_mm()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma_prev.vm_ops = ops
    vma = alloc_and_link_vma(mm, 0x3000, 0x7000, 3)
    alloc_and_link_vma(mm, 0x7000, 0x9000, 7)
    set_anon_vma(vma, anon)
    vmg = vmg_range(mm, 0x3000, 0x7000, 3, prev=vma_prev, middle=vma, anon_vma=anon)
    assert vma_merge_existing_range(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert span(vma_prev) == (0x0000, 0x9000, 0)
    assert vma_prev.anon_vma is anon
    assert len(mm.tree) == 1
    mm.validate()

    # Ranges that touch neither end of V never merge (the engine assumes the range
    # lies inside V, so only these need checking).
    #
    #     -
    #      -
    #       -
    #     <->
    #     <>
    #      <>
    # 0123456789a
    # PPPVVVVVNNN
    mm = new_mm()
    alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma = alloc_and_link_vma(mm, 0x3000, 0x8000, 3)
    alloc_and_link_vma(mm, 0x8000, 0xa000, 8)
    before = layout(mm)
    for start, end in [(0x4000, 0x5000), (0x5000, 0x6000), (0x6000, 0x7000),
                       (0x4000, 0x7000), (0x4000, 0x6000), (0x5000, 0x6000)]:
        vmg = vmg_range(mm, start, end, start >> PAGE_SHIFT, prev=vma, middle=vma)
        assert vma_merge_existing_range(vmg) is None, (hex(start), hex(end))
        assert vmg.state is MergeState.NOMERGE
        assert layout(mm) == before
    assert len(mm.tree) == 3
    mm.validate()


def test_anon_vma_non_mergeable():
    """prev and next each could take the range, but their anon_vmas differ, so they
    cannot both: the merge is reduced to prev + the range; next is untouched."""
    anon_1, anon_2 = AnonVma(), AnonVma()

    # Existing range.
    #
    #    <-->
    # 0123456789
    # PPPVVVVNNN
    #            ->
    # 0123456789
    # PPPPPPPNNN
    mm = new_mm()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma = alloc_and_link_vma(mm, 0x3000, 0x7000, 3)
    vma_next = alloc_and_link_vma(mm, 0x7000, 0x9000, 7)
    # One-entry chains, so each on its own is compatible with V (no anon_vma) ...
    set_anon_vma(vma_prev, anon_1)
    set_anon_vma(vma_next, anon_2)
    probe = vmg_range(mm, 0x3000, 0x7000, 3, prev=vma_prev, middle=vma)
    probe.next = vma_next
    assert merge.is_mergeable_anon_vma(probe, False)
    assert merge.is_mergeable_anon_vma(probe, True)
    # ... but not with each other.
    assert vma_prev.anon_vma is not vma_next.anon_vma
    vmg = vmg_range(mm, 0x3000, 0x7000, 3, prev=vma_prev, middle=vma)

    assert vma_merge_existing_range(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert span(vma_prev) == (0x0000, 0x7000, 0)
    assert vma_prev.anon_vma is anon_1
    assert span(vma_next) == (0x7000, 0x9000, 7)
    assert vma_next.anon_vma is anon_2
    assert len(mm.tree) == 2
    mm.validate()

    # New range in the gap: the same.
    #
    #    <-->
    # 0123456789
    # PPP****NNN
    #            ->
    # 0123456789
    # PPPPPPPNNN
    mm = new_mm()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma_next = alloc_and_link_vma(mm, 0x7000, 0x9000, 7)
    set_anon_vma(vma_prev, anon_1)
    set_anon_vma(vma_next, anon_2)
    vmg = vmg_range(mm, 0x3000, 0x7000, 3, prev=vma_prev)
    assert merge_new(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert span(vma_prev) == (0x0000, 0x7000, 0)
    assert vma_prev.anon_vma is anon_1
    assert span(vma_next) == (0x7000, 0x9000, 7)
    assert vma_next.anon_vma is anon_2
    assert len(mm.tree) == 2
    mm.validate()


def test_dup_anon_vma():
    """The VMA that survives a merge takes the anon_vma of a VMA the merge deletes or
    shrinks, when it had none (anon_vma_clone: same anon_vma, chain linked)."""

    def assert_cloned(vma, anon):
        assert vma.anon_vma is anon
        assert anon in vma.avc

    # vma_expand() over next: prev takes next's anon_vma.  (New-range merges are
    # expansions, so this covers them too.)
    #
    # 012345
    # PPPNN
    # <--->
    mm = new_mm()
    anon = AnonVma()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma_next = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    set_anon_vma(vma_next, anon)
    vmg = VmaMergeStruct(mm, middle=vma_prev, target=vma_prev, next=vma_next,
                         start=0x0000, end=0x5000, pgoff=0, flags=FLAGS)
    expand_existing(vmg)
    assert span(vma_prev) == (0x0000, 0x5000, 0)
    assert_cloned(vma_prev, anon)
    assert len(mm.tree) == 1
    mm.validate()

    # Both sides, next has the anon_vma: prev takes it.
    #
    #         |<----->|
    # |-------*********-------|
    #   prev     vma     next
    #  extend   delete  delete
    mm = new_mm()
    anon = AnonVma()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    vma_next = alloc_and_link_vma(mm, 0x5000, 0x8000, 5)
    set_anon_vma(vma_next, anon)
    vmg = vmg_range(mm, 0x3000, 0x5000, 3, prev=vma_prev, middle=vma)
    assert vma_merge_existing_range(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert (vma_prev.start, vma_prev.end) == (0x0000, 0x8000)
    assert_cloned(vma_prev, anon)
    assert len(mm.tree) == 1
    mm.validate()

    # Both sides, the modified VMA has the anon_vma: prev takes it.
    #
    #         |<----->|
    # |-------*********-------|
    #   prev     vma     next
    #  extend   delete  delete
    mm = new_mm()
    anon = AnonVma()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    alloc_and_link_vma(mm, 0x5000, 0x8000, 5)
    set_anon_vma(vma, anon)
    vmg = vmg_range(mm, 0x3000, 0x5000, 3, prev=vma_prev, middle=vma, anon_vma=anon)
    assert vma_merge_existing_range(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert (vma_prev.start, vma_prev.end) == (0x0000, 0x8000)
    assert_cloned(vma_prev, anon)
    assert len(mm.tree) == 1
    mm.validate()

    # Left only, the modified VMA has the anon_vma: prev takes it.
    #
    #         |<----->|
    # |-------*************
    #   prev       vma
    #  extend shrink/delete
    mm = new_mm()
    anon = AnonVma()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma = alloc_and_link_vma(mm, 0x3000, 0x8000, 3)
    set_anon_vma(vma, anon)
    vmg = vmg_range(mm, 0x3000, 0x5000, 3, prev=vma_prev, middle=vma, anon_vma=anon)
    assert vma_merge_existing_range(vmg) is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert (vma_prev.start, vma_prev.end) == (0x0000, 0x5000)
    assert_cloned(vma_prev, anon)
    assert span(vma) == (0x5000, 0x8000, 5)
    mm.validate()

    # Right only, the modified VMA has the anon_vma: next takes it.
    #
    #     |<----->|
    # *************-------|
    #      vma       next
    # shrink/delete extend
    mm = new_mm()
    anon = AnonVma()
    vma = alloc_and_link_vma(mm, 0x0000, 0x5000, 0)
    vma_next = alloc_and_link_vma(mm, 0x5000, 0x8000, 5)
    set_anon_vma(vma, anon)
    vmg = vmg_range(mm, 0x3000, 0x5000, 3, prev=vma, middle=vma, anon_vma=anon)
    assert vma_merge_existing_range(vmg) is vma_next
    assert vmg.state is MergeState.SUCCESS
    assert (vma_next.start, vma_next.end) == (0x3000, 0x8000)
    assert_cloned(vma_next, anon)
    assert span(vma) == (0x0000, 0x3000, 0)
    mm.validate()


def test_vmi_prealloc_fail():
    """vma.c makes the maple-tree preallocation fail and expects
    VMA_MERGE_ERROR_NOMEM with the cloned anon_vma unlinked.  vmsim never fails an
    allocation, so there is no such path (and MergeState.ERROR_NOMEM is never set).

    What the kernel test protects -- a merge that has been refused after the
    mergeability checks passed leaves nothing modified, and an allocation-style
    refusal returns ENOMEM with nothing modified -- is tested on the model's two
    equivalent paths instead:
      1. a merge refused late (the VMA to be deleted has ->close), with an anon_vma
         that a completed merge would have copied into prev;
      2. vma_modify() at max_map_count, where split_vma() refuses with ENOMEM before
         it changes anything (the model's only ENOMEM in the engine).
    """
    # 1. PPPVV, V has an anon_vma and ->close: would merge left and dup V's
    #    anon_vma into P, but V may not be deleted.
    #
    #    <>
    # 012345
    # PPPVV
    mm = new_mm()
    anon = AnonVma()
    vma_prev = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    vma = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    set_anon_vma(vma, anon)
    vma.vm_ops = CloseOps()
    vmg = vmg_range(mm, 0x3000, 0x5000, 3, prev=vma_prev, middle=vma, anon_vma=anon)
    assert vma_merge_existing_range(vmg) is None
    assert vmg.state is MergeState.NOMERGE
    assert layout(mm) == [(0x0000, 0x3000, 0), (0x3000, 0x5000, 3)]
    assert vma_prev.anon_vma is None and vma_prev.avc == ()
    assert vma.anon_vma is anon and vma.avc == (anon,)
    mm.validate()

    # 2. max_map_count == 2 and two VMAs: changing the middle of one needs a split,
    #    which fails with ENOMEM and leaves everything as it was.
    #
    # 0123456
    # AAA BBB
    #  <>
    mm = new_mm(max_map_count=2)
    vma_a = alloc_and_link_vma(mm, 0x0000, 0x3000, 0)
    alloc_and_link_vma(mm, 0x4000, 0x7000, 4)
    before = layout(mm)
    with pytest.raises(OSError) as exc:
        vma_modify_flags(mm, vma_a, vma_a, 0x1000, 0x2000, VM_READ | VM_MAYREAD)
    assert exc.value.errno == errno.ENOMEM
    assert layout(mm) == before
    assert all(v.flags == FLAGS for v in mm.tree)
    mm.validate()


# --------------------------------------------------------------------------- other entry points

def test_merge_extend():
    """vma_merge_extend() (mremap growing in place) reaches next and swallows it."""
    mm = new_mm()
    # 01234
    # V  N
    #  **
    vma = alloc_and_link_vma(mm, 0x0000, 0x1000, 0)
    alloc_and_link_vma(mm, 0x3000, 0x4000, 3)

    assert vma_merge_extend(mm, vma, 0x2000) is vma
    mm.vm_stat_account(vma.flags, 2)        # mremap charges the growth

    # 01234
    # VVVV
    assert span(vma) == (0x0000, 0x4000, 0)
    assert len(mm.tree) == 1
    mm.validate()


def test_copy_vma():
    """copy_vma() (mremap's destination): a new VMA where nothing is compatible, or
    the compatible neighbour grown over the destination."""
    # Move backwards without merging: a new VMA, pgoff of its new address (it is
    # anonymous and unfaulted).
    #
    # 012345
    # ** VV
    mm = new_mm()
    vma = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    vma_new = copy_vma(mm, vma, 0x0000, 0x2000, 0)
    mm.vm_stat_account(vma_new.flags, 2)    # the copy maps 2 more pages
    assert vma_new is not vma
    assert span(vma_new) == (0x0000, 0x2000, 0)
    assert mm.tree.find(0x0000) is vma_new
    assert span(vma) == (0x3000, 0x5000, 3)
    assert len(mm.tree) == 2
    mm.validate()

    # Move next to a compatible VMA: N grows down over the destination.
    #
    # 0123456789
    # VV  **NN
    mm = new_mm()
    vma = alloc_and_link_vma(mm, 0x0000, 0x2000, 0)
    vma_next = alloc_and_link_vma(mm, 0x6000, 0x8000, 6)
    vma_new = copy_vma(mm, vma, 0x4000, 0x2000, 4)
    mm.vm_stat_account(vma_new.flags, 2)
    assert vma_new is vma_next
    assert span(vma_next) == (0x4000, 0x8000, 4)
    assert len(mm.tree) == 2
    mm.validate()


def test_expand_only_mode():
    """just_expand (brk): merge with prev only; prev is found from vmg.prev, not by
    walking back (the VMA before prev must not be touched)."""
    mm = new_mm()
    # 0123456789
    # AA PP****
    vma_a = alloc_and_link_vma(mm, 0x0000, 0x2000, 0)
    vma_prev = alloc_and_link_vma(mm, 0x3000, 0x5000, 3)
    vmg = vmg_range(mm, 0x5000, 0x9000, 5, prev=vma_prev)
    vmg.just_expand = True

    vma = vma_merge_new_range(vmg)
    mm.vm_stat_account(FLAGS, 4)

    # 0123456789
    # AA PPPPPP
    assert vma is vma_prev
    assert vmg.state is MergeState.SUCCESS
    assert span(vma) == (0x3000, 0x9000, 3)
    assert span(vma_a) == (0x0000, 0x2000, 0)
    # (vma.c also asserts the iterator stayed at 0x3000; vmsim has no iterator.)
    assert len(mm.tree) == 2
    mm.validate()


def test_mmap_region_basic():
    """Four __mmap_region() calls: anonymous ranges with continuous pgoff merge.

    Driven through vmsim.mm.mmap.mmap_region (mmap_region + __mmap_region), which
    needs a task for its rlimit and accounting checks, so the mm is a spawned
    process's.
    """
    from vmsim.mm.mmap import mmap_region

    task = Kernel().spawn()
    mm = task.mm
    assert len(mm.tree) == 0

    # 0x250000 +0x3000 and 0x300000 +0x3000; then 0x303000 joins the second
    # (prev) and 0x24d000 the first (next).
    assert mmap_region(task, None, 0x300000, 0x3000, FLAGS, 0x300) == 0x300000
    assert mmap_region(task, None, 0x250000, 0x3000, FLAGS, 0x250) == 0x250000
    assert mmap_region(task, None, 0x303000, 0x3000, FLAGS, 0x303) == 0x303000
    assert mmap_region(task, None, 0x24d000, 0x3000, FLAGS, 0x24d) == 0x24d000

    assert len(mm.tree) == 2
    assert layout(mm) == [(0x24d000, 0x253000, 0x24d), (0x300000, 0x306000, 0x300)]
    mm.validate()
