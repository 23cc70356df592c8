"""The ordered index of an mm's VMAs (Linux keeps them in a maple tree, mm->mm_mt).

A sorted list of start addresses (sortedcontainers) plus a dict from start to VMA.
Lookups cost O(log n); inserting or removing one VMA costs O(log n) amortised.
"""

from __future__ import annotations

from sortedcontainers import SortedList


class VmaTree:
    """VMAs keyed by start address.

    Invariant: `starts` holds exactly the keys of `by_start`, and
    by_start[s].start == s. Callers change a VMA's start only through `rekey`.
    """

    __slots__ = ("starts", "by_start")

    def __init__(self):
        self.starts = SortedList()
        self.by_start: dict = {}

    def __len__(self) -> int:
        return len(self.by_start)

    def __iter__(self):
        """All VMAs in address order. O(n)."""
        by_start = self.by_start
        return (by_start[s] for s in self.starts)

    def insert(self, vma) -> None:
        """Link `vma`. O(log n)."""
        self.starts.add(vma.start)
        self.by_start[vma.start] = vma

    def remove(self, vma) -> None:
        """Unlink `vma`. O(log n)."""
        self.starts.remove(vma.start)
        del self.by_start[vma.start]

    def rekey(self, vma, new_start: int) -> None:
        """Set vma.start = new_start keeping the index right. O(log n)."""
        if new_start != vma.start:
            self.remove(vma)
            vma.start = new_start
            self.insert(vma)

    def find(self, addr: int):
        """The VMA containing addr, or None (vma_lookup). O(log n)."""
        starts = self.starts
        i = starts.bisect_right(addr) - 1
        if i < 0:
            return None
        vma = self.by_start[starts[i]]
        return vma if addr < vma.end else None

    def find_vma(self, addr: int):
        """The first VMA with end > addr, or None (find_vma). O(log n)."""
        starts = self.starts
        i = starts.bisect_right(addr) - 1
        if i >= 0:
            vma = self.by_start[starts[i]]
            if addr < vma.end:
                return vma
        i += 1
        return self.by_start[starts[i]] if i < len(starts) else None

    def find_intersecting(self, start: int, end: int):
        """The first VMA intersecting [start, end), or None (vma_find). O(log n)."""
        vma = self.find_vma(start)
        return vma if vma is not None and vma.start < end else None

    def prev(self, vma):
        """The VMA before `vma` (vma_prev). O(log n)."""
        i = self.starts.bisect_left(vma.start)
        return self.by_start[self.starts[i - 1]] if i > 0 else None

    def next(self, vma):
        """The VMA after `vma` (vma_next). O(log n)."""
        i = self.starts.bisect_right(vma.start)
        return self.by_start[self.starts[i]] if i < len(self.starts) else None

    def prev_of(self, addr: int):
        """The last VMA that starts below addr. O(log n)."""
        i = self.starts.bisect_left(addr)
        return self.by_start[self.starts[i - 1]] if i > 0 else None

    def intersecting(self, start: int, end: int) -> list:
        """Every VMA intersecting [start, end), in order. O(log n + k)."""
        out = []
        vma = self.find_intersecting(start, end)
        if vma is None:
            return out
        starts, by_start = self.starts, self.by_start
        i = starts.bisect_left(vma.start)
        n = len(starts)
        while i < n:
            vma = by_start[starts[i]]
            if vma.start >= end:
                break
            out.append(vma)
            i += 1
        return out
