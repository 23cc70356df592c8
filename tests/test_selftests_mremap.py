"""mremap and MAP_FIXED_NOREPLACE behaviour, ported from Linux 6.18
tools/testing/selftests/mm/:

* mremap_test.c: "mremap expand merge", "... expand merge offset", "move within
  range", "move 1mb from start", the 6.17+ multi-VMA tests ("shrink multiple
  vmas" in place and moved, "move multiple vmas" and "move multiple vmas split",
  each also with MREMAP_DONTUNMAP) and the table of moves between PTE-, 1MB-,
  PMD- and PUD-aligned source and destination, checking the contents after the
  move.  Not ported: "move multiple invalid vmas" (needs userfaultfd) and the
  1 GiB timing cases.
* mremap_dontunmap.c: simple, simple_shmem, simple_fixed, partial_mapping,
  partial_mapping_overwrite.
* map_fixed_noreplace.c: the whole sequence.

The selftests let the kernel choose most addresses; here they are fixed so the
model is deterministic.  Content is checked with a seeded byte pattern, over
the first VALIDATE bytes and the last page of each region (the selftest checks
the first 4 MiB by default).  Layout assertions beyond the selftests' own were
checked against the real 6.18.44 kernel of this machine.

Diagrams: one character per page; letters are page contents, '.' unmapped,
'0' a page that reads as zero.
"""

import errno
import random

import pytest

import vmsim

PAGE = vmsim.PAGE_SIZE
KB, MB, GB = 1 << 10, 1 << 20, 1 << 30
PMD, PUD = 2 * MB, GB
RW = vmsim.PROT_READ | vmsim.PROT_WRITE
PRIVATE_ANON = vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS
SHARED_ANON = vmsim.MAP_SHARED | vmsim.MAP_ANONYMOUS
FIXED = vmsim.MAP_FIXED
NOREPLACE = vmsim.MAP_FIXED_NOREPLACE
MOVE_FIXED = vmsim.MREMAP_MAYMOVE | vmsim.MREMAP_FIXED
DONTUNMAP = vmsim.MREMAP_DONTUNMAP
SEED = 0x6180
VALIDATE = 1 * MB

BASE = 0x300000000000          # small tests
TABLE_BASE = 0x400000000000    # alignment table: 2**46, aligned to every size used


# --------------------------------------------------------------------------- helpers

def pattern(n, seed=SEED):
    """n reproducible pseudo-random bytes (the selftest's srand/rand stream)."""
    return random.Random(seed).randbytes(n)


def spans(p, lo, hi):
    """VMAs inside [lo, hi) as (start - lo, end - lo) in pages."""
    return [((v.start - lo) // PAGE, (v.end - lo) // PAGE)
            for v in p.vmas() if lo <= v.start and v.end <= hi]


def is_range_mapped(p, start, end):
    """mremap_test.c is_range_mapped(): one VMA contains all of [start, end)."""
    return any(v.start <= start and end <= v.end for v in p.vmas())


def is_mapped(p, addr):
    return any(v.start <= addr < v.end for v in p.vmas())


def fails(err, call, *args):
    """call(*args) must fail with errno err (and leave a consistent mm)."""
    with pytest.raises(OSError) as exc:
        call(*args)
    assert exc.value.errno == err
    validate_owner(call)


def validate_owner(call):
    """Check the mm invariants of the process a bound syscall method belongs to."""
    owner = getattr(call, "__self__", None)
    if owner is not None:
        owner.mm.validate()


@pytest.fixture
def k():
    return vmsim.Kernel()


@pytest.fixture
def p(k):
    proc = k.spawn()
    yield proc
    proc.mm.validate()


# =========================================================================== mremap_test.c

def test_mremap_expand_merge(p):
    # mremap_test.c: mremap_expand_merge
    #   AAA -> A.A -> grow the first VMA in place by one page -> AAA, one VMA
    start = p.mmap(BASE, 3 * PAGE, RW, PRIVATE_ANON | FIXED)
    p.munmap(start + PAGE, PAGE)
    assert p.mremap(start, PAGE, 2 * PAGE, 0) == start
    assert is_range_mapped(p, start, start + 3 * PAGE)
    assert spans(p, BASE, BASE + 16 * PAGE) == [(0, 3)]


def test_mremap_expand_merge_offset(p):
    # mremap_test.c: mremap_expand_merge_offset
    #   AAA -> AA. -> grow from the second page by one page -> AAA, one VMA
    start = p.mmap(BASE, 3 * PAGE, RW, PRIVATE_ANON | FIXED)
    p.munmap(start + 2 * PAGE, PAGE)
    assert p.mremap(start + PAGE, PAGE, 2 * PAGE, 0) == start + PAGE
    assert is_range_mapped(p, start, start + 3 * PAGE)
    assert spans(p, BASE, BASE + 16 * PAGE) == [(0, 3)]


def test_mremap_move_within_range(p):
    # mremap_test.c: mremap_move_within_range.  In a 20 MiB mapping, move the
    # upper 1 MiB of a 2 MiB-aligned source block s down by 2 MiB; the lower
    # half of the source (S) must not be corrupted:
    #
    #   |DDDDddddSSSSssss|   each letter 256 KiB; s moves onto d
    ptr = p.mmap(BASE, 20 * MB, RW, PRIVATE_ANON | FIXED)
    src = (ptr + 6 * MB) & ~(2 * MB - 1)
    data = pattern(2 * MB)
    p.write(src, data)
    dest = src - 2 * MB
    assert p.mremap(src + MB, MB, MB, MOVE_FIXED, dest + MB) == dest + MB
    assert p.read(src, MB) == data[:MB]
    assert p.read(dest + MB, MB) == data[MB:]
    assert not is_mapped(p, src + MB)
    # The moved piece keeps its pgoff, so it merges with neither neighbour.
    assert spans(p, ptr, ptr + 20 * MB) == [
        (0, 1280), (1280, 1536), (1536, 1792), (2048, 5120)]


def test_mremap_move_1mb_from_start(p):
    # mremap_test.c: mremap_move_1mb_from_start.  Source and destination are
    # 6 MiB shared mappings at 1.25 MiB-aligned (not 2 MiB-aligned) addresses;
    # the first 1 MiB of the destination is unmapped, so aligning the move
    # down to a PMD would land on nothing.  The source's first 1 MiB stays intact.
    align = MB + 256 * KB
    src = p.mmap(41 * align, 6 * MB, RW, SHARED_ANON | NOREPLACE)
    dest = p.mmap(49 * align, 6 * MB, RW, SHARED_ANON | NOREPLACE)
    assert src % (2 * MB) and dest % (2 * MB)
    data = pattern(2 * MB)
    p.write(src, data)
    p.munmap(dest, MB)
    assert p.mremap(src + MB, MB, MB, MOVE_FIXED, dest + MB) == dest + MB
    assert p.read(src, MB) == data[:MB]
    assert p.read(dest + MB, MB) == data[MB:]


@pytest.mark.parametrize("inplace", [True, False], ids=["inplace", "moved"])
def test_mremap_shrink_multiple_vmas(p, inplace):
    # mremap_test.c: mremap_shrink_multiple_vmas.  Shrinking from 10 pages to
    # 1 unmaps the rest of the range, across VMAs and holes:
    #
    #   A.B.C.D.E.  ->  A.........        (in place)
    #               ->  .......... and A at tgt   (MREMAP_FIXED)
    ptr = p.mmap(BASE, 10 * PAGE, RW, PRIVATE_ANON | FIXED)
    tgt = BASE + 64 * PAGE
    for i in range(1, 10, 2):
        p.munmap(ptr + i * PAGE, PAGE)
    p.write(ptr, b"A")
    if inplace:
        assert p.mremap(ptr, 10 * PAGE, PAGE, 0) == ptr
        assert spans(p, BASE, BASE + 128 * PAGE) == [(0, 1)]
        assert p.read(ptr, 1) == b"A"
    else:
        assert p.mremap(ptr, 10 * PAGE, PAGE, MOVE_FIXED, tgt) == tgt
        assert spans(p, BASE, BASE + 128 * PAGE) == [(64, 65)]
        assert p.read(tgt, 1) == b"A"


# Layout of the multi-VMA move test: pages 0, 2, 4-5, 6, 8, 10 mapped.
#
#   0   2   4 5 6   8   10   offset in buffer
#  |*| |*| |*****| |*| |*|
#   0   1   2 3 4   5   6    pattern piece
MULTI_PIECES = [(0, 1), (2, 1), (4, 2), (6, 1), (8, 1), (10, 1)]   # (page, pages)
MULTI_HOLES = [1, 3, 7, 9]


def write_multi_pattern(p, ptr):
    data = pattern(7 * PAGE)
    pos = 0
    for first, npages in MULTI_PIECES:
        p.write(ptr + first * PAGE, data[pos:pos + npages * PAGE])
        pos += npages * PAGE
    return data


def check_multi_pattern(p, ptr, data, hole_perms=None):
    """is_multiple_vma_range_ok(): every piece holds its data.

    The holes of the source are not part of the move: at the destination they
    stay unmapped (hole_perms None) or keep what was mapped there before.
    """
    pos = 0
    for first, npages in MULTI_PIECES:
        assert p.read(ptr + first * PAGE, npages * PAGE) == data[pos:pos + npages * PAGE]
        pos += npages * PAGE
    for hole in MULTI_HOLES:
        vma = next((v for v in p.vmas() if v.start <= ptr + hole * PAGE < v.end), None)
        assert (vma.perms if vma else None) == hole_perms


def check_source_left_zeroed(p, ptr):
    """After MREMAP_DONTUNMAP the source VMAs stay, reading as fresh zero pages."""
    for first, npages in MULTI_PIECES:
        assert p.read(ptr + first * PAGE, npages * PAGE) == bytes(npages * PAGE)


@pytest.mark.parametrize("dontunmap", [False, True], ids=["move", "dontunmap"])
def test_mremap_move_multiple_vmas(p, dontunmap):
    # mremap_test.c: mremap_move_multiple_vmas (6.17+): MREMAP_FIXED with
    # old_len == new_len moves every VMA in the range, keeping the holes.
    flags = MOVE_FIXED | (DONTUNMAP if dontunmap else 0)
    size = 11 * PAGE
    ptr = p.mmap(BASE, size, RW, PRIVATE_ANON | FIXED)
    tgt = BASE + 64 * PAGE
    for hole in MULTI_HOLES:
        p.munmap(ptr + hole * PAGE, PAGE)
    data = write_multi_pattern(p, ptr)

    # Move the whole thing.
    assert p.mremap(ptr, size, size, flags, tgt) == tgt
    check_multi_pattern(p, tgt, data)
    if dontunmap:
        check_source_left_zeroed(p, ptr)
    else:
        assert spans(p, ptr, ptr + size) == []

    # Move it again, right next to itself.
    assert p.mremap(tgt, size, size, flags, tgt + size) == tgt + size
    check_multi_pattern(p, tgt + size, data)

    # Map PROT_NONE over the old place and move back on top of it.  Only the
    # destination of each moved VMA is replaced: PROT_NONE stays in the holes.
    #
    #   tgt: ---------- -> A-B-CCC-D-E
    assert p.mmap(tgt, size, vmsim.PROT_NONE, PRIVATE_ANON | FIXED) == tgt
    assert p.mremap(tgt + size, size, size, flags, tgt) == tgt
    check_multi_pattern(p, tgt, data, hole_perms="---p")
    assert spans(p, tgt, tgt + size) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 7),
                                         (7, 8), (8, 9), (9, 10), (10, 11)]
    if dontunmap:
        # Both earlier sources are still mapped, hole for hole.
        pieces = [(0, 1), (2, 3), (4, 7), (8, 9), (10, 11)]
        assert spans(p, ptr, ptr + size) == pieces
        assert spans(p, tgt + size, tgt + 2 * size) == pieces
        check_source_left_zeroed(p, tgt + size)


@pytest.mark.parametrize("dontunmap", [False, True], ids=["move", "dontunmap"])
def test_mremap_move_multiple_vmas_split(p, dontunmap):
    # mremap_test.c: mremap_move_multiple_vmas_split: the moved range starts
    # and ends inside VMAs, so both are split.
    #
    #       <------------->
    #   0 1 2 3 4 5 6 7 8 9      offset in buffer       0 1 2 3 4 5 6
    #  |**********| |*******|                    ->    |*****| |*****|
    #   0 1 2 3 4   5 6 7 8 9    pattern page           2 3 4   6 7 8
    flags = MOVE_FIXED | (DONTUNMAP if dontunmap else 0)
    ptr = p.mmap(BASE, 10 * PAGE, RW, PRIVATE_ANON | FIXED)
    tgt = BASE + 64 * PAGE
    p.munmap(ptr + 5 * PAGE, PAGE)
    data = pattern(10 * PAGE)
    for i in range(10):
        if i != 5:
            p.write(ptr + i * PAGE, data[i * PAGE:(i + 1) * PAGE])

    assert p.mremap(ptr + 2 * PAGE, 7 * PAGE, 7 * PAGE, flags, tgt) == tgt
    for i in range(7):
        if i == 3:
            assert not is_mapped(p, tgt + i * PAGE)
            continue
        src_page = i + 2
        assert p.read(tgt + i * PAGE, PAGE) == data[src_page * PAGE:(src_page + 1) * PAGE]
    # The untouched ends of the source keep their data.
    assert p.read(ptr, 2 * PAGE) == data[:2 * PAGE]
    assert p.read(ptr + 9 * PAGE, PAGE) == data[9 * PAGE:]
    if dontunmap:
        assert p.read(ptr + 2 * PAGE, 3 * PAGE) == bytes(3 * PAGE)
        # The emptied middle parts merge back with the untouched ends.
        assert spans(p, ptr, ptr + 10 * PAGE) == [(0, 5), (6, 10)]
    else:
        assert spans(p, ptr, ptr + 10 * PAGE) == [(0, 2), (9, 10)]
    assert spans(p, tgt, tgt + 10 * PAGE) == [(0, 3), (4, 7)]


# --------------------------------------------------------------------------- alignment table

class Case:
    """One MAKE_TEST() row: move a region between addresses of given alignments."""

    def __init__(self, name, src_align, dest_align, size, overlapping=False,
                 should_fail=False, preamble=0):
        self.name, self.src_align, self.dest_align = name, src_align, dest_align
        self.size, self.overlapping = size, overlapping
        self.should_fail, self.preamble = should_fail, preamble

    def src_addr(self):
        """Aligned to src_align but not to twice that (get_source_mapping())."""
        return TABLE_BASE + self.src_align

    def dest_addr(self, src):
        """remap_region(): just past (or, if overlapping, inside the end of) src."""
        offset = -self.dest_align if self.overlapping else self.dest_align
        addr = (src + self.size + offset) & ~(self.dest_align - 1)
        addr += self.preamble
        if not addr & self.dest_align:
            addr |= self.dest_align
        return addr


ALIGNMENT_CASES = [
    Case("overlapping", PAGE, PAGE, PAGE, overlapping=True, should_fail=True),
    Case("dest_misaligned_1KB", PAGE, PAGE // 4, PAGE, should_fail=True),
    Case("src_misaligned_1KB", PAGE // 4, PAGE, PAGE, should_fail=True),
    Case("8KB_src_PTE_dest_PTE", PAGE, PAGE, 2 * PAGE),
    Case("2MB_src_1MB_dest_PTE", MB, PAGE, 2 * MB),
    Case("2MB_src_1MB_dest_1MB", MB, MB, 2 * MB),
    Case("4MB_src_PMD_dest_PTE", PMD, PAGE, 4 * MB),
    Case("4MB_src_PMD_dest_1MB", PMD, MB, 4 * MB),
    Case("4MB_src_PMD_dest_PMD", PMD, PMD, 4 * MB),
    Case("2GB_src_PUD_dest_PTE", PUD, PAGE, 2 * GB),
    Case("2GB_src_PUD_dest_1MB", PUD, MB, 2 * GB),
    Case("2GB_src_PUD_dest_PMD", PUD, PMD, 2 * GB),
    Case("2GB_src_PUD_dest_PUD", PUD, PUD, 2 * GB),
    Case("5MB_src_1MB_dest_1MB", MB, MB, 5 * MB),
    Case("5MB_src_1MB_dest_1MB_40MB_preamble", MB, MB, 5 * MB, preamble=40 * MB),
    # perf_test_cases[] (run by the selftest only with -t >= 1024).
    Case("1GB_src_PTE_dest_PTE", PAGE, PAGE, GB),
    Case("1GB_src_PMD_dest_PMD", PMD, PMD, GB),
    Case("1GB_src_PUD_dest_PUD", PUD, PUD, GB),
]


def fill_region(p, addr, size, seed):
    """Pattern over the first VALIDATE bytes and the last page; returns both."""
    head = pattern(min(VALIDATE, size), seed)
    tail = pattern(PAGE, seed + 1)
    p.write(addr, head)
    if size > VALIDATE:
        p.write(addr + size - PAGE, tail)
    return head, tail


def check_region(p, addr, size, expected):
    head, tail = expected
    assert p.read(addr, len(head)) == head
    if size > VALIDATE:
        assert p.read(addr + size - PAGE, PAGE) == tail


@pytest.mark.parametrize("case", ALIGNMENT_CASES, ids=[c.name for c in ALIGNMENT_CASES])
def test_mremap_alignment_table(p, case):
    # mremap_test.c: remap_region() over the test_cases[] table.  The source
    # is a MAP_SHARED anonymous mapping placed with MAP_FIXED_NOREPLACE.
    src = case.src_addr()
    if case.src_align % PAGE:
        # get_source_mapping() cannot map a 1 KiB-aligned address at all.
        fails(errno.EINVAL, p.mmap, src, case.size, RW, SHARED_ANON | NOREPLACE)
        return
    assert p.mmap(src, case.size, RW, SHARED_ANON | NOREPLACE) == src
    expected = fill_region(p, src, case.size, SEED)
    dest = case.dest_addr(src)

    if case.preamble:
        pre = dest - case.preamble
        assert p.mmap(pre, case.preamble, RW, SHARED_ANON | NOREPLACE) == pre
        pre_expected = fill_region(p, pre, case.preamble, SEED + 7)

    if case.should_fail:
        # Overlapping ranges and an unaligned new_addr are both EINVAL.
        fails(errno.EINVAL, p.mremap, src, case.size, case.size, MOVE_FIXED, dest)
        check_region(p, src, case.size, expected)
        return

    assert p.mremap(src, case.size, case.size, MOVE_FIXED, dest) == dest
    check_region(p, dest, case.size, expected)
    assert not is_mapped(p, src)
    with pytest.raises(vmsim.Fault) as fault:
        p.read(src, 1)
    assert (fault.value.signal, fault.value.code, fault.value.addr) == (
        "SIGSEGV", "SEGV_MAPERR", src)
    assert is_range_mapped(p, dest, dest + case.size)
    if case.preamble:
        check_region(p, pre, case.preamble, pre_expected)


# =========================================================================== mremap_dontunmap.c

def vma_at(p, addr):
    return next((v for v in p.vmas() if v.start <= addr < v.end), None)


def test_dontunmap_kernel_support(p):
    # mremap_dontunmap.c: kernel_support_for_mremap_dontunmap(): a PROT_NONE
    # page can be moved with MREMAP_DONTUNMAP to a kernel-chosen address.
    src = p.mmap(BASE, PAGE, vmsim.PROT_NONE, PRIVATE_ANON | FIXED)
    dest = p.mremap(src, PAGE, PAGE, DONTUNMAP | vmsim.MREMAP_MAYMOVE, 0)
    assert dest != src
    assert p.munmap(dest, PAGE) == 0
    assert p.munmap(src, PAGE) == 0


def test_mremap_dontunmap_simple(p):
    # mremap_dontunmap.c: mremap_dontunmap_simple
    #   source aaaaa -> dest aaaaa, source stays mapped as 00000
    src = p.mmap(BASE, 5 * PAGE, RW, PRIVATE_ANON | FIXED)
    p.write(src, b"a" * 5 * PAGE)
    flags_before = vma_at(p, src).vmflags
    dest = p.mremap(src, 5 * PAGE, 5 * PAGE, DONTUNMAP | vmsim.MREMAP_MAYMOVE, 0)
    assert dest != src
    assert p.read(dest, 5 * PAGE) == b"a" * 5 * PAGE
    assert p.read(src, 5 * PAGE) == bytes(5 * PAGE)
    # The source VMA is unchanged, VM_ACCOUNT included (6.18-rc3 fix).
    source = vma_at(p, src)
    assert (source.start, source.end, source.perms) == (src, src + 5 * PAGE, "rw-p")
    assert source.vmflags == flags_before
    assert "ac" in source.vmflags
    p.munmap(dest, 5 * PAGE)
    p.munmap(src, 5 * PAGE)


def test_mremap_dontunmap_simple_shmem(k, p):
    # mremap_dontunmap.c: mremap_dontunmap_simple_shmem.  The selftest uses a
    # memfd; a tmpfs file is the same shmem object.  Both places show the
    # shared pages afterwards.
    path = "/dev/shm/vmsim-dontunmap-shmem"
    k.fs.create(path)
    fd = p.open(path, vmsim.O_RDWR)
    p.ftruncate(fd, 5 * PAGE)
    src = p.mmap(BASE, 5 * PAGE, RW, vmsim.MAP_SHARED | FIXED, fd, 0)
    p.close(fd)
    p.write(src, b"a" * 5 * PAGE)
    dest = p.mremap(src, 5 * PAGE, 5 * PAGE, DONTUNMAP | vmsim.MREMAP_MAYMOVE, 0)
    assert dest != src
    assert p.read(dest, 5 * PAGE) == b"a" * 5 * PAGE
    assert p.read(src, 5 * PAGE) == b"a" * 5 * PAGE
    p.munmap(dest, 5 * PAGE)
    p.munmap(src, 5 * PAGE)
    k.fs.unlink(path)


def test_mremap_dontunmap_simple_fixed(p):
    # mremap_dontunmap.c: mremap_dontunmap_simple_fixed
    #   dest XXXXX is replaced by aaaaa; source reads 00000
    dest = p.mmap(BASE, 5 * PAGE, RW, PRIVATE_ANON | FIXED)
    p.write(dest, b"X" * 5 * PAGE)
    src = p.mmap(BASE + 64 * PAGE, 5 * PAGE, RW, PRIVATE_ANON | FIXED)
    p.write(src, b"a" * 5 * PAGE)
    flags = DONTUNMAP | MOVE_FIXED
    assert p.mremap(src, 5 * PAGE, 5 * PAGE, flags, dest) == dest
    assert p.read(dest, 5 * PAGE) == b"a" * 5 * PAGE
    assert p.read(src, 5 * PAGE) == bytes(5 * PAGE)


def test_mremap_dontunmap_partial_mapping(p):
    # mremap_dontunmap.c: mremap_dontunmap_partial_mapping
    #   source aaaaaaaaaa -> aaaaa00000, dest aaaaa
    src = p.mmap(BASE, 10 * PAGE, RW, PRIVATE_ANON | FIXED)
    p.write(src, b"a" * 10 * PAGE)
    dest = p.mremap(src + 5 * PAGE, 5 * PAGE, 5 * PAGE,
                    DONTUNMAP | vmsim.MREMAP_MAYMOVE, 0)
    assert p.read(src, 5 * PAGE) == b"a" * 5 * PAGE
    assert p.read(src + 5 * PAGE, 5 * PAGE) == bytes(5 * PAGE)
    assert p.read(dest, 5 * PAGE) == b"a" * 5 * PAGE
    # The source range is still fully mapped.
    assert is_range_mapped(p, src, src + 5 * PAGE)
    assert is_range_mapped(p, src + 5 * PAGE, src + 10 * PAGE)


def test_mremap_dontunmap_partial_mapping_overwrite(p):
    # mremap_dontunmap.c: mremap_dontunmap_partial_mapping_overwrite
    #   source aaaaa -> 00000; dest XXXXXXXXXX -> aaaaaXXXXX
    src = p.mmap(BASE, 5 * PAGE, RW, PRIVATE_ANON | FIXED)
    p.write(src, b"a" * 5 * PAGE)
    dest = p.mmap(BASE + 64 * PAGE, 10 * PAGE, RW, PRIVATE_ANON | FIXED)
    p.write(dest, b"X" * 10 * PAGE)
    assert p.mremap(src, 5 * PAGE, 5 * PAGE, DONTUNMAP | MOVE_FIXED, dest) == dest
    assert p.read(src, 5 * PAGE) == bytes(5 * PAGE)
    assert p.read(dest, 5 * PAGE) == b"a" * 5 * PAGE
    assert p.read(dest + 5 * PAGE, 5 * PAGE) == b"X" * 5 * PAGE


# =========================================================================== map_fixed_noreplace.c

def test_map_fixed_noreplace(p):
    # map_fixed_noreplace.c: main()
    base = BASE
    flags = PRIVATE_ANON | NOREPLACE
    none = vmsim.PROT_NONE

    def noreplace(first_page, npages):
        return p.mmap(base + first_page * PAGE, npages * PAGE, none, flags)

    # The whole 5-page area can be mapped, then is unmapped again.
    assert noreplace(0, 5) == base
    assert p.munmap(base, 5 * PAGE) == 0

    #   .MMM.
    assert noreplace(1, 3) == base + PAGE

    # Exact same 5 pages again, contained, overlapping the end, overlapping
    # the start: all EEXIST, and nothing changes.
    for first_page, npages in [(0, 5), (2, 1), (3, 2), (0, 2)]:
        fails(errno.EEXIST, noreplace, first_page, npages)
        assert spans(p, base, base + 5 * PAGE) == [(1, 4)]

    # Adjacent to the start and to the end: fine (and they merge).
    assert noreplace(0, 1) == base
    assert noreplace(4, 1) == base + 4 * PAGE
    assert spans(p, base, base + 5 * PAGE) == [(0, 5)]

    assert p.munmap(base, 5 * PAGE) == 0
    assert spans(p, base, base + 5 * PAGE) == []
