"""Unmapping ranges: do_vmi_munmap() and the vms_* helpers of mm/vma.c (6.18).

Unmapping happens in two phases, as in the kernel: `gather` splits the edge VMAs
and detaches every VMA of the range (refusing sealed ones), `complete` clears the
page tables, calls ->close, drops files and updates the counters. MAP_FIXED mmap and
mremap use the same two phases around their own work.
"""

from __future__ import annotations

from ..errors import EINVAL, ENOMEM, EPERM, kerr
from ..uapi import PAGE_MASK, PAGE_SIZE, U64
from .flags import VM_ACCOUNT, VM_LOCKED, VM_SEALED
from .hooks import vm_close
from .merge import split_vma_unchecked


def page_align(n: int) -> int:
    """PAGE_ALIGN() on an unsigned 64-bit value (wraps to 0 past the top)."""
    return (n + PAGE_SIZE - 1) & PAGE_MASK & U64


def checked_range(start: int, len_in: int) -> int:
    """The end of [start, start + PAGE_ALIGN(len_in)) for madvise/mseal: EINVAL for an
    unaligned start, a length that rounds up from a small negative value to 0, or an
    end that wraps."""
    if start & ~PAGE_MASK:
        raise kerr(EINVAL)
    length = page_align(len_in)
    if len_in and not length:
        raise kerr(EINVAL)
    end = start + length
    if end > U64:
        raise kerr(EINVAL)
    return end


class VmaMunmap:
    """One unmap in progress (struct vma_munmap_struct).

    detached: the VMAs taken out of the tree, in address order; prev/next: the
    VMAs around the range after the edge splits.
    """

    __slots__ = ("mm", "start", "end", "detached", "prev", "next", "nr_pages",
                 "nr_accounted", "cleared", "failure")

    def __init__(self, mm, start: int, end: int):
        self.mm = mm
        self.start = start
        self.end = end
        self.detached: list = []
        self.prev = self.next = None
        self.nr_pages = 0
        self.nr_accounted = 0
        self.cleared = False
        #: what the first ->close or ->release that broke its contract raised: the
        #: unmap completes (those hooks cannot fail in Linux), then complete() raises it
        self.failure: BaseException | None = None

    def gather(self, vma) -> None:
        """vms_gather_munmap_vmas(): split the edges, detach the range's VMAs.

        `vma` is the first VMA intersecting the range. On error (ENOMEM at the
        map_count limit, EPERM for a sealed VMA, a ->may_split refusal) the
        detached VMAs go back; a split already made at the start remains.
        """
        mm, start, end = self.mm, self.start, self.end
        if start > vma.start:
            if end < vma.end and len(mm.tree) >= mm.kernel.max_map_count:
                raise kerr(ENOMEM)
            if vma.flags & VM_SEALED:
                raise kerr(EPERM)
            split_vma_unchecked(mm, vma, start, True)
        self.prev = mm.tree.prev(vma)
        try:
            for vma in mm.tree.intersecting(start, end):
                if vma.flags & VM_SEALED:
                    raise kerr(EPERM)
                if vma.end > end:
                    split_vma_unchecked(mm, vma, end, False)
                mm.tree.remove(vma)
                self.detached.append(vma)
                self.nr_pages += vma.pages
                if vma.flags & VM_ACCOUNT:
                    self.nr_accounted += vma.pages
        except BaseException:
            self.reattach()
            raise
        self.next = mm.tree.find_vma(end)

    def reattach(self) -> None:
        """reattach_vmas(): put the detached VMAs back as they were."""
        for vma in self.detached:
            self.mm.tree.insert(vma)
        self.detached = []
        self.nr_pages = self.nr_accounted = 0

    def clean_up_area(self) -> None:
        """vms_clean_up_area(): clear the PTEs and call ->close while detached. A
        ->close that breaks its contract is raised once all are closed."""
        for vma in self.detached:
            self.mm.zap(vma.start, vma.end)
            self._close(vma)
        self.cleared = True
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def _close(self, vma) -> None:
        try:
            vm_close(vma)
        except BaseException as exc:
            self.failure = self.failure or exc

    def complete(self) -> None:
        """vms_complete_munmap_vmas(): counters, ->close, fput, unaccount; then the
        ->release of every file whose last reference went (Linux defers __fput() to
        after the operation). Raises what the first hook that broke its contract
        raised, once everything is done."""
        mm = self.mm
        released = []
        for vma in self.detached:
            if not self.cleared:
                mm.zap(vma.start, vma.end)
            mm.vm_stat_account(vma.flags, -vma.pages)
            if vma.flags & VM_LOCKED:
                mm.locked_vm -= vma.pages
            if not self.cleared:
                self._close(vma)
            if vma.file is not None and vma.file.drop_ref():
                released.append(vma.file)
        if self.nr_accounted:
            mm.unaccount(self.nr_accounted)
        if self.detached:
            mm.free_pgtables(self.detached[0].start, self.detached[-1].end)
        self.detached = []
        for file in released:
            try:
                file.release(mm)
            except BaseException as exc:
                self.failure = self.failure or exc
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def abort(self) -> None:
        """vms_abort_munmap_vmas(): reattach if nothing was cleared yet, else leave
        the range unmapped (the old MAP_FIXED failure behaviour)."""
        if not self.detached:
            return
        if not self.cleared:
            self.reattach()
        else:
            self.complete()


def do_vmi_munmap(mm, start: int, length: int) -> None:
    """munmap(2) after its argument checks: EINVAL, or unmap (holes are fine)."""
    mm.mmap_lock("munmap")
    task_size = mm.kernel.task_size
    if start & ~PAGE_MASK or start > task_size or length > task_size - start:
        raise kerr(EINVAL)
    end = start + page_align(length)
    if end == start:
        raise kerr(EINVAL)
    vma = mm.tree.find_intersecting(start, end)
    if vma is None:
        return
    vms = VmaMunmap(mm, start, end)
    vms.gather(vma)
    vms.complete()
