"""The gap index of the VMA tree (vmsim/mm/tree.py) against a brute-force walk.

get_unmapped_area() finds free ranges with the tree's gap index (O(log n), as the maple
tree's mas_empty_area_rev() / mas_empty_area()). Here random sequences of mmap, munmap,
mremap, mprotect, brk, stack growth, fork and exit run on processes whose VMAs crowd a
small window, with tiny index blocks so that blocks split and merge all the time; after
every step each live process passes MmStruct.validate() (which checks the index) and
the index's answers equal the walk over the VMAs (the pre-index code, kept here as the
reference) for random (low, high, size) queries.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_GROWSDOWN,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_CREAT,
    O_RDWR,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from vmsim.mm import tree as tree_module
from vmsim.mm.placement import _highest_gap, _lowest_gap

PG = 4096
WINDOW = 0x7F0000000000
NPAGES = 96


def walk_highest_gap(mm, low: int, high: int, size: int):
    """The reference: the end of the highest free range of `size` bytes in [low, high)."""
    tree = mm.tree
    upper = high
    below = tree.prev_of(high)
    while True:
        lower = max(below.end, low) if below is not None else low
        if upper >= lower and upper - lower >= size:
            return upper
        if below is None or lower <= low:
            return None
        upper = below.start
        below = tree.prev(below)


def walk_lowest_gap(mm, low: int, high: int, size: int):
    """The reference: the start of the lowest free range of `size` bytes in [low, high)."""
    tree = mm.tree
    vma = tree.find_vma(low)
    lower = low
    while True:
        upper = min(vma.start, high) if vma is not None else high
        if upper >= lower and upper - lower >= size:
            return lower
        if vma is None or vma.end >= high:
            return None
        lower = max(vma.end, low)
        vma = tree.next(vma)


pages = st.integers(0, NPAGES)
lengths = st.integers(1, 12)
protections = st.sampled_from([PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE])

operations = st.one_of(
    st.tuples(st.just("mmap"), pages, lengths, protections,
              st.sampled_from(["fixed", "hint", "none", "growsdown", "file", "shared"])),
    st.tuples(st.just("munmap"), pages, lengths),
    st.tuples(st.just("mprotect"), pages, lengths, protections),
    st.tuples(st.just("mremap"), pages, lengths, lengths, st.one_of(st.none(), pages)),
    st.tuples(st.just("brk"), st.integers(-4, 8)),
    st.tuples(st.just("touch"), pages),
    st.tuples(st.just("fork"), st.integers(0, 3)),
    st.tuples(st.just("exit"), st.integers(0, 3)),
    st.tuples(st.just("switch"), st.integers(0, 3)),
)

queries = st.lists(st.tuples(st.integers(-2, NPAGES + 2), st.integers(-2, NPAGES + 2),
                             st.integers(0, 3) | st.integers(0, 20)), min_size=1, max_size=6)


def apply(procs: list, cur: int, op: tuple, fd_of: dict) -> int:
    """Run one operation on procs[cur]; returns the index of the current process."""
    p = procs[cur]
    kind = op[0]
    rw = PROT_READ | PROT_WRITE
    if kind == "mmap":
        _, page, n, prot, how = op
        addr = WINDOW + page * PG
        if how == "fixed":
            p.mmap(addr, n * PG, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        elif how == "hint":
            p.mmap(addr, n * PG, prot, MAP_PRIVATE | MAP_ANONYMOUS)
        elif how == "none":
            p.mmap(0, n * PG, prot, MAP_PRIVATE | MAP_ANONYMOUS)
        elif how == "growsdown":
            p.mmap(addr, n * PG, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN)
        else:
            fd = fd_of.setdefault(id(p), p.open("/tmp/placement-index", O_RDWR | O_CREAT))
            p.ftruncate(fd, 64 * PG)
            flags = MAP_SHARED if how == "shared" else MAP_PRIVATE
            p.mmap(addr if page % 2 else 0, n * PG, prot, flags, fd, 0)
    elif kind == "munmap":
        p.munmap(WINDOW + op[1] * PG, op[2] * PG)
    elif kind == "mprotect":
        p.mprotect(WINDOW + op[1] * PG, op[2] * PG, op[3])
    elif kind == "mremap":
        _, page, old, new, dest = op
        if dest is None:
            p.mremap(WINDOW + page * PG, old * PG, new * PG, MREMAP_MAYMOVE)
        else:
            p.mremap(WINDOW + page * PG, old * PG, new * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
                     WINDOW + dest * PG)
    elif kind == "brk":
        p.brk(p.brk(0) + op[1] * PG)
    elif kind == "touch":
        try:
            p.touch(WINDOW + op[1] * PG, "w")
        except vmsim.Fault:
            pass
    elif kind == "fork":
        procs.append(procs[op[1] % len(procs)].fork())
    elif kind == "exit":
        if len(procs) > 1:
            procs.pop(op[1] % len(procs)).exit()
            return min(cur, len(procs) - 1)
    else:
        return op[1] % len(procs)
    return cur


def crowded_process(holes: list):
    """A process whose window is one mapping with every third page PROT_NONE (about
    NPAGES * 2/3 VMAs), then `holes` unmapped or made PROT_NONE."""
    p = vmsim.Kernel().spawn()
    p.mmap(WINDOW, NPAGES * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    for page in range(0, NPAGES, 3):
        p.mprotect(WINDOW + page * PG, PG, PROT_NONE)
    for page, n, unmap in holes:
        try:
            if unmap:
                p.munmap(WINDOW + page * PG, n * PG)
            else:
                p.mprotect(WINDOW + page * PG, n * PG, PROT_NONE)
        except OSError:         # ENOMEM: a part of the range is unmapped
            pass
    return p


def check_index(p, qs: list) -> None:
    mm = p.mm
    mm.validate()
    for lo, hi, size in qs:
        low, high, size = WINDOW + lo * PG, WINDOW + hi * PG, size * PG
        assert _highest_gap(mm, low, high, size) == walk_highest_gap(mm, low, high, size)
        assert _lowest_gap(mm, low, high, size) == walk_lowest_gap(mm, low, high, size)
    for low, high in ((PG, mm.mmap_base), (mm.mmap_legacy_base, mm.kernel.task_size)):
        for size in (PG, 3 * PG, 1 << 40):
            assert _highest_gap(mm, low, high, size) == walk_highest_gap(mm, low, high, size)
            assert _lowest_gap(mm, low, high, size) == walk_lowest_gap(mm, low, high, size)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(holes=st.lists(st.tuples(pages, lengths, st.booleans()), max_size=30),
       steps=st.lists(st.tuples(operations, queries), min_size=1, max_size=40))
def test_gap_index_matches_walk(holes, steps):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tree_module, "LOAD", 4)      # blocks of 2..8 VMAs split and merge often
        procs = [crowded_process(holes)]
        cur = 0
        fd_of: dict[int, int] = {}
        for op, qs in steps:
            try:
                cur = apply(procs, cur, op, fd_of)
            except OSError:
                pass
            for p in procs:
                check_index(p, qs)


def test_many_packed_vmas_split_and_merge_blocks():
    """Enough VMAs for the real block size: the index stays exact while blocks split
    (packed file mappings) and merge (unmapping most of them)."""
    p = vmsim.Kernel().spawn()
    fd = p.open("/tmp/placement-index", O_RDWR | O_CREAT)
    p.ftruncate(fd, PG)
    addrs = []
    for _ in range(600):
        f = p.open("/tmp/placement-index", O_RDWR)
        addrs.append(p.mmap(0, PG, PROT_READ, MAP_PRIVATE, f))
        p.close(f)
    check_index(p, [(0, NPAGES, 1)])
    mm = p.mm
    for i, addr in enumerate(addrs):
        if i % 7:
            p.munmap(addr, PG)
        if i % 50 == 0:
            check_index(p, [(0, NPAGES, 1)])
            for size in (PG, 2 * PG, 7 * PG, 50 * PG):
                for low, high in ((min(addrs), max(addrs)), (addr, addr + 100 * PG)):
                    assert _highest_gap(mm, low, high, size) == walk_highest_gap(mm, low, high, size)
                    assert _lowest_gap(mm, low, high, size) == walk_lowest_gap(mm, low, high, size)
    check_index(p, [(0, NPAGES, 1)])
