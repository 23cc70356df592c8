"""The ordered index of an mm's VMAs (Linux keeps them in a maple tree, mm->mm_mt).

A sorted list of start addresses (sortedcontainers) plus a dict from start to VMA.
Lookups cost O(log n); inserting or removing one VMA costs O(log n) amortised.

The neighbour lookups bisect SortedList's two-level layout (`_maxes`, the last key of
each sublist, and `_lists`, the sublists) directly: the public positional API
(`sl[i]`) rebuilds an index and costs several times more per call. That layout is
documented in sortedcontainers' implementation notes and has not changed since 2.0;
the version is pinned below 3 in pyproject.toml.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from sortedcontainers import SortedList  # type: ignore[import-untyped]  # ships no types


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

    def _floor(self, addr: int):
        """The largest start <= addr, or None. O(log n)."""
        maxes = self.starts._maxes
        pos = bisect_right(maxes, addr)
        if pos == len(maxes):
            return maxes[-1] if maxes else None
        lst = self.starts._lists[pos]
        i = bisect_right(lst, addr)
        if i:
            return lst[i - 1]
        return maxes[pos - 1] if pos else None

    def _higher(self, addr: int):
        """The smallest start > addr, or None. O(log n)."""
        maxes = self.starts._maxes
        pos = bisect_right(maxes, addr)
        if pos == len(maxes):
            return None
        lst = self.starts._lists[pos]
        return lst[bisect_right(lst, addr)]

    def _lower(self, addr: int):
        """The largest start < addr, or None. O(log n)."""
        maxes = self.starts._maxes
        pos = bisect_left(maxes, addr)
        if pos == len(maxes):
            return maxes[-1] if maxes else None
        lst = self.starts._lists[pos]
        i = bisect_left(lst, addr)
        if i:
            return lst[i - 1]
        return maxes[pos - 1] if pos else None

    def find(self, addr: int):
        """The VMA containing addr, or None (vma_lookup). O(log n)."""
        s = self._floor(addr)
        if s is None:
            return None
        vma = self.by_start[s]
        return vma if addr < vma.end else None

    def find_vma(self, addr: int):
        """The first VMA with end > addr, or None (find_vma). O(log n)."""
        s = self._floor(addr)
        if s is not None:
            vma = self.by_start[s]
            if addr < vma.end:
                return vma
        s = self._higher(addr)
        return self.by_start[s] if s is not None else None

    def find_intersecting(self, start: int, end: int):
        """The first VMA intersecting [start, end), or None (vma_find). O(log n)."""
        if start >= end:
            return None
        vma = self.find_vma(start)
        return vma if vma is not None and vma.start < end else None

    def prev(self, vma):
        """The VMA before `vma` (vma_prev). O(log n)."""
        s = self._lower(vma.start)
        return self.by_start[s] if s is not None else None

    def next(self, vma):
        """The VMA after `vma` (vma_next). O(log n)."""
        s = self._higher(vma.start)
        return self.by_start[s] if s is not None else None

    def prev_of(self, addr: int):
        """The last VMA that starts below addr. O(log n)."""
        s = self._lower(addr)
        return self.by_start[s] if s is not None else None

    def intersecting(self, start: int, end: int) -> list:
        """Every VMA intersecting [start, end), in order. O(log n + k)."""
        vma = self.find_intersecting(start, end)
        if vma is None:
            return []
        by_start = self.by_start
        return [by_start[s] for s in self.starts.irange(vma.start, end - 1)]
