"""The ordered index of an mm's VMAs (Linux keeps them in a maple tree, mm->mm_mt).

A sorted list of start addresses plus a dict from start to VMA. Lookups cost
O(log n); inserting or removing one VMA costs O(log n) amortised.

Like the maple tree, which keeps in every internal node the largest gap below it, the
index keeps the free gap below each VMA (its start minus the previous VMA's end) and
answers "the highest / lowest VMA in a range whose gap below is at least `size`" in
O(log n) (mas_empty_area_rev() / mas_empty_area() in lib/maple_tree.c). For that the
starts are kept in blocks of LOAD/2..2*LOAD (sortedcontainers' layout: `_lists` of sorted
blocks and `_maxes`, the last start of each block), each start with its gap in the
parallel `_gaps`, and a max-tree over the blocks' largest gaps (`_seg`). A VMA's gap
depends on its neighbour's end, so every change of a start or end of a VMA in the tree
goes through VmaTree (insert, remove, set_start, set_end).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import chain

LOAD = 64               # a block splits above 2*LOAD starts and merges below LOAD/2
NO_GAP = -(1 << 64)     # below any gap: the max-tree's value for no block, no VMA


class GapIndexedStarts:
    """The start addresses of the VMAs in `vmas` (a dict start -> VMA), sorted, each with
    the gap below its VMA: start - the previous VMA's end (the first VMA's: start).

    Changes only note the blocks whose largest gap may have changed (`_dirty`) and the
    VMAs whose end changed (`ended`: the gap above each is stale); the next search brings
    the gaps and the max-tree up to date, so a split or merge costs O(log n) list work
    and no max-tree walks."""

    __slots__ = ("vmas", "ended", "_lists", "_maxes", "_gaps", "_seg", "_dirty", "_len")

    def __init__(self, vmas: dict):
        self.vmas = vmas
        self.clear()

    def clear(self) -> None:
        self._lists: list[list[int]] = []
        self._maxes: list[int] = []
        self._gaps: list[list[int]] = []
        self._seg: list[int] = [NO_GAP, NO_GAP]
        self._dirty: set[int] = set()
        self.ended: set = set()
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        return chain.from_iterable(self._lists)

    # --- positions -----------------------------------------------------------------

    def _locate(self, start: int) -> tuple[int, int]:
        """The (block, index) of `start`, which must be present. O(log n)."""
        b = bisect_left(self._maxes, start)
        lst = self._lists[b] if b < len(self._lists) else []
        i = bisect_left(lst, start)
        if i == len(lst) or lst[i] != start:
            raise ValueError(f"{start:#x} not in the VMA tree")
        return b, i

    def _prev_end(self, b: int, i: int) -> int:
        """The end of the VMA before position (b, i), 0 for the first."""
        if i:
            return self.vmas[self._lists[b][i - 1]].end
        if b:
            return self.vmas[self._lists[b - 1][-1]].end
        return 0

    # --- the max-tree over blocks ----------------------------------------------------

    def flush_ends(self) -> None:
        """Refresh the gap above each VMA in `ended` that is still in the tree (removing
        one refreshed the gap above it). O(len(ended) * log n)."""
        lists, maxes, vmas, dirty = self._lists, self._maxes, self.vmas, self._dirty
        for vma in self.ended:
            start, end = vma.start, vma.end
            if vmas.get(start) is not vma:
                continue
            b = bisect_left(maxes, start)
            lst = lists[b]
            i = bisect_left(lst, start) + 1
            if i < len(lst):
                self._gaps[b][i] = lst[i] - end
            elif b + 1 < len(lists):
                b += 1
                self._gaps[b][0] = lists[b][0] - end
            else:
                continue
            dirty.add(b)
        self.ended.clear()

    def _flush(self) -> None:
        """Bring the gaps and the max-tree up to date. O(ended * log n + dirty * (LOAD + log n))."""
        self.flush_ends()
        seg, gaps = self._seg, self._gaps
        cap = len(seg) // 2
        for b in self._dirty:
            k = cap + b
            seg[k] = max(gaps[b])
            k >>= 1
            while k:
                left, right = seg[2 * k], seg[2 * k + 1]
                m = left if left > right else right
                if seg[k] == m:
                    break
                seg[k] = m
                k >>= 1
        self._dirty.clear()

    def _leaves(self) -> list[int]:
        """Every block's largest gap (NO_GAP for an empty one); clears `_dirty`."""
        cap = len(self._seg) // 2
        leaves = self._seg[cap:cap + len(self._lists)]
        for b in self._dirty:
            leaves[b] = max(self._gaps[b], default=NO_GAP)
        self._dirty.clear()
        return leaves

    def _rebuild(self, leaves: list[int]) -> None:
        """Build the max-tree over `leaves`, one per block. O(number of blocks)."""
        cap = 1
        while cap < len(leaves):
            cap *= 2
        seg = [NO_GAP] * (2 * cap)
        seg[cap:cap + len(leaves)] = leaves
        for k in range(cap - 1, 0, -1):
            seg[k] = max(seg[2 * k], seg[2 * k + 1])
        self._seg = seg

    def _balance(self, b: int) -> None:
        """Split block b if it grew too big or merge it into a neighbour if it shrank too
        small (as SortedList._expand/_delete), then rebuild the max-tree. O(LOAD + n/LOAD),
        once in LOAD/2 changes at most."""
        lists, maxes, gaps = self._lists, self._maxes, self._gaps
        leaves = self._leaves()
        if not lists[b]:
            del lists[b], maxes[b], gaps[b], leaves[b]
        elif len(lists[b]) < LOAD // 2 and len(lists) > 1:
            a = b - 1 if b else 0
            lists[a] += lists[a + 1]
            gaps[a] += gaps[a + 1]
            del lists[a + 1], maxes[a + 1], gaps[a + 1], leaves[a + 1]
            maxes[a] = lists[a][-1]
            leaves[a] = max(gaps[a])
            if len(lists[a]) > 2 * LOAD:
                self._split(a, leaves)
        else:
            self._split(b, leaves)
        self._rebuild(leaves)

    def _split(self, b: int, leaves: list[int]) -> None:
        lists, maxes, gaps = self._lists, self._maxes, self._gaps
        lists.insert(b + 1, lists[b][LOAD:])
        gaps.insert(b + 1, gaps[b][LOAD:])
        del lists[b][LOAD:], gaps[b][LOAD:]
        maxes[b] = lists[b][-1]
        maxes.insert(b + 1, lists[b + 1][-1])
        leaves[b] = max(gaps[b])
        leaves.insert(b + 1, max(gaps[b + 1]))

    # --- changes ------------------------------------------------------------------------

    def add(self, start: int, end: int) -> None:
        """Add the VMA [start, end) (already in `vmas`), refreshing the next one's gap.
        O(log n)."""
        lists, maxes = self._lists, self._maxes
        self._len += 1
        if not maxes:
            lists.append([start])
            maxes.append(start)
            self._gaps.append([start])
            self._rebuild([start])
            return
        b = bisect_right(maxes, start)
        if b == len(maxes):
            b -= 1
            maxes[b] = start
        lst, gaps, dirty = lists[b], self._gaps[b], self._dirty
        i = bisect_left(lst, start)
        lst.insert(i, start)
        gaps.insert(i, start - self._prev_end(b, i))
        dirty.add(b)
        if i + 1 < len(lst):
            gaps[i + 1] = lst[i + 1] - end
        elif b + 1 < len(lists):
            self._gaps[b + 1][0] = lists[b + 1][0] - end
            dirty.add(b + 1)
        if len(lst) > 2 * LOAD:
            self._balance(b)

    def remove(self, start: int) -> None:
        """Remove `start` and refresh the next VMA's gap. O(log n)."""
        lists, dirty = self._lists, self._dirty
        b = bisect_left(self._maxes, start)
        lst = lists[b] if b < len(lists) else []
        i = bisect_left(lst, start)
        if i == len(lst) or lst[i] != start:
            raise ValueError(f"{start:#x} not in the VMA tree")
        gaps = self._gaps[b]
        del lst[i], gaps[i]
        self._len -= 1
        dirty.add(b)
        if i < len(lst) or b + 1 < len(lists):      # the next VMA's gap now starts lower
            prev = lst[i - 1] if i else lists[b - 1][-1] if b else None
            prev_end = self.vmas[prev].end if prev is not None else 0
            if i < len(lst):
                gaps[i] = lst[i] - prev_end
            else:
                self._gaps[b + 1][0] = lists[b + 1][0] - prev_end
                dirty.add(b + 1)
        if not lst or (len(lst) < LOAD // 2 and len(self._lists) > 1):
            self._balance(b)
        else:
            self._maxes[b] = lst[-1]

    def move(self, old: int, new: int, end: int) -> None:
        """The VMA [old, end), already in `vmas` at `new`, now starts at `new`: in place
        if that keeps the order (it does in any valid tree), else removed and added
        again. O(log n)."""
        b, i = self._locate(old)
        lists, lst = self._lists, self._lists[b]
        lower = lst[i - 1] if i else self._maxes[b - 1] if b else -1
        upper = lst[i + 1] if i + 1 < len(lst) else lists[b + 1][0] if b + 1 < len(lists) else new + 1
        if not lower < new < upper:
            self.remove(old)
            self.add(new, end)
            return
        lst[i] = new
        if i + 1 == len(lst):
            self._maxes[b] = new
        self._gaps[b][i] = new - self._prev_end(b, i)
        self._dirty.add(b)

    # --- queries ------------------------------------------------------------------------

    def irange(self, lo: int, hi: int) -> list[int]:
        """The starts in [lo, hi], in order. O(log n + k)."""
        lists = self._lists
        b = bisect_left(self._maxes, lo)
        if b == len(lists):
            return []
        i = bisect_left(lists[b], lo)
        out: list[int] = []
        while b < len(lists):
            lst = lists[b]
            j = bisect_right(lst, hi, i)
            out += lst[i:j]
            if j < len(lst):
                break
            b, i = b + 1, 0
        return out

    def highest_fit(self, lo: int, hi: int, size: int) -> int | None:
        """The highest start s, lo < s <= hi (both starts present), whose gap below is at
        least `size`, or None. O(log n)."""
        self._flush()
        bl, il = self._locate(lo)
        bh, ih = self._locate(hi)
        if bl == bh:
            return self._last_in_block(bh, il + 1, ih + 1, size)
        found = self._last_in_block(bh, 0, ih + 1, size)
        if found is None:
            b = self._last_block(1, 0, len(self._seg) // 2 - 1, bl + 1, bh - 1, size)
            if b is not None:
                return self._last_in_block(b, 0, len(self._lists[b]), size)
            found = self._last_in_block(bl, il + 1, len(self._lists[bl]), size)
        return found

    def lowest_fit(self, lo: int, hi: int, size: int) -> int | None:
        """The lowest start s, lo < s <= hi (both starts present), whose gap below is at
        least `size`, or None. O(log n)."""
        self._flush()
        bl, il = self._locate(lo)
        bh, ih = self._locate(hi)
        if bl == bh:
            return self._first_in_block(bl, il + 1, ih + 1, size)
        found = self._first_in_block(bl, il + 1, len(self._lists[bl]), size)
        if found is None:
            b = self._first_block(1, 0, len(self._seg) // 2 - 1, bl + 1, bh - 1, size)
            if b is not None:
                return self._first_in_block(b, 0, len(self._lists[b]), size)
            found = self._first_in_block(bh, 0, ih + 1, size)
        return found

    def _last_in_block(self, b: int, i: int, j: int, size: int) -> int | None:
        gaps = self._gaps[b]
        if i >= j or max(gaps[i:j]) < size:
            return None
        k = j - 1
        while gaps[k] < size:
            k -= 1
        return self._lists[b][k]

    def _first_in_block(self, b: int, i: int, j: int, size: int) -> int | None:
        gaps = self._gaps[b]
        if i >= j or max(gaps[i:j]) < size:
            return None
        k = i
        while gaps[k] < size:
            k += 1
        return self._lists[b][k]

    def _last_block(self, node: int, nl: int, nr: int, lo: int, hi: int, size: int) -> int | None:
        """The last block in [lo, hi] whose largest gap is >= size, below max-tree `node`
        covering blocks [nl, nr]."""
        if nr < lo or nl > hi or self._seg[node] < size:
            return None
        if nl == nr:
            return nl
        mid = (nl + nr) // 2
        found = self._last_block(2 * node + 1, mid + 1, nr, lo, hi, size)
        return found if found is not None else self._last_block(2 * node, nl, mid, lo, hi, size)

    def _first_block(self, node: int, nl: int, nr: int, lo: int, hi: int, size: int) -> int | None:
        """The first block in [lo, hi] whose largest gap is >= size (see _last_block)."""
        if nr < lo or nl > hi or self._seg[node] < size:
            return None
        if nl == nr:
            return nl
        mid = (nl + nr) // 2
        found = self._first_block(2 * node, nl, mid, lo, hi, size)
        return found if found is not None else self._first_block(2 * node + 1, mid + 1, nr, lo, hi, size)

    def check(self) -> None:
        """Assert the blocks, the gaps and the max-tree agree with `vmas`. O(n)."""
        self._flush()
        lists = self._lists
        assert all(lists) and all(len(g) == len(s) for s, g in zip(lists, self._gaps, strict=True))
        assert self._maxes == [lst[-1] for lst in lists] and self._len == sum(map(len, lists))
        prev_end = 0
        for start, gap in zip(self, chain.from_iterable(self._gaps), strict=True):
            assert gap == start - prev_end, f"stale gap below {start:#x}"
            prev_end = self.vmas[start].end
        seg = self._seg
        cap = len(seg) // 2
        assert cap >= len(lists) and self._leaves() == [max(g) for g in self._gaps], "stale block gap"
        assert all(v == NO_GAP for v in seg[cap + len(lists):]), "stale max-tree leaf"
        assert all(seg[k] == max(seg[2 * k], seg[2 * k + 1]) for k in range(1, cap)), "stale max-tree"


class VmaTree:
    """VMAs keyed by start address.

    Invariant: `starts` holds exactly the keys of `by_start`, and
    by_start[s].start == s. A VMA in the tree changes its start or end only through
    set_start and set_end.
    """

    __slots__ = ("starts", "by_start")

    def __init__(self):
        self.by_start: dict = {}
        self.starts = GapIndexedStarts(self.by_start)

    def __len__(self) -> int:
        return len(self.by_start)

    def __iter__(self):
        """All VMAs in address order. O(n)."""
        by_start = self.by_start
        return (by_start[s] for s in self.starts)

    def insert(self, vma) -> None:
        """Link `vma`. O(log n)."""
        self.by_start[vma.start] = vma
        self.starts.add(vma.start, vma.end)

    def remove(self, vma) -> None:
        """Unlink `vma` (the gap above it is refreshed now: it leaves `ended`). O(log n)."""
        self.starts.remove(vma.start)
        self.starts.ended.discard(vma)
        del self.by_start[vma.start]

    def set_start(self, vma, new_start: int) -> None:
        """Set vma.start = new_start keeping the index right. O(log n)."""
        old = vma.start
        if new_start != old:
            by_start = self.by_start
            del by_start[old]
            vma.start = new_start
            by_start[new_start] = vma
            self.starts.move(old, new_start, vma.end)

    def set_end(self, vma, new_end: int) -> None:
        """Set vma.end = new_end; the gap above it is refreshed by the next search (or
        once LOAD ends have changed). O(1), O(log n) amortised."""
        if new_end != vma.end:
            vma.end = new_end
            ended = self.starts.ended
            ended.add(vma)
            if len(ended) > LOAD:
                self.starts.flush_ends()

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

    def find(self, addr: int):
        """The VMA containing addr, or None (vma_lookup). O(log n)."""
        s = self._floor(addr)
        if s is None:
            return None
        vma = self.by_start[s]
        return vma if addr < vma.end else None

    def find_vma(self, addr: int):
        """The first VMA with end > addr, or None (find_vma): the one starting at or below
        addr if it contains addr, else the next one. O(log n)."""
        maxes, by_start = self.starts._maxes, self.by_start
        pos = bisect_right(maxes, addr)
        if pos == len(maxes):
            floor, higher = (maxes[-1] if maxes else None), None
        else:
            lst = self.starts._lists[pos]
            i = bisect_right(lst, addr)
            floor, higher = (lst[i - 1] if i else maxes[pos - 1] if pos else None), lst[i]
        if floor is not None:
            vma = by_start[floor]
            if addr < vma.end:
                return vma
        return by_start[higher] if higher is not None else None

    def find_intersecting(self, start: int, end: int):
        """The first VMA intersecting [start, end), or None (vma_find). O(log n)."""
        if start >= end:
            return None
        vma = self.find_vma(start)
        return vma if vma is not None and vma.start < end else None

    def prev(self, vma):
        """The VMA before `vma` (vma_prev). O(log n)."""
        return self.prev_of(vma.start)

    def next(self, vma):
        """The VMA after `vma` (vma_next): the smallest start above its start. O(log n)."""
        start = vma.start
        maxes = self.starts._maxes
        pos = bisect_right(maxes, start)
        if pos == len(maxes):
            return None
        lst = self.starts._lists[pos]
        return self.by_start[lst[bisect_right(lst, start)]]

    def prev_of(self, addr: int):
        """The last VMA that starts below addr: the largest start < addr. O(log n)."""
        maxes = self.starts._maxes
        pos = bisect_left(maxes, addr)
        if pos == len(maxes):
            return self.by_start[maxes[-1]] if maxes else None
        lst = self.starts._lists[pos]
        i = bisect_left(lst, addr)
        if i:
            return self.by_start[lst[i - 1]]
        return self.by_start[maxes[pos - 1]] if pos else None

    def intersecting(self, start: int, end: int) -> list:
        """Every VMA intersecting [start, end), in order. O(log n + k)."""
        vma = self.find_intersecting(start, end)
        if vma is None:
            return []
        by_start = self.by_start
        return [by_start[s] for s in self.starts.irange(vma.start, end - 1)]

    def highest_gap_fit(self, lowest, highest, size: int):
        """The highest VMA after `lowest`, up to `highest`, with at least `size` free
        bytes between it and its predecessor, or None. O(log n)."""
        s = self.starts.highest_fit(lowest.start, highest.start, size)
        return self.by_start[s] if s is not None else None

    def lowest_gap_fit(self, lowest, highest, size: int):
        """The lowest VMA after `lowest`, up to `highest`, with at least `size` free
        bytes between it and its predecessor, or None. O(log n)."""
        s = self.starts.lowest_fit(lowest.start, highest.start, size)
        return self.by_start[s] if s is not None else None
