"""VMA merge behaviour, ported from Linux 6.18 tools/testing/selftests/mm/merge.c.

Every test maps inside a 30-page PROT_NONE carve-out placed at a fixed address
(the selftest lets the kernel choose it; a fixed one keeps the model
deterministic) and then asks which VMA covers an address, as the selftest does
with PROCMAP_QUERY.  Where the whole carve-out layout is asserted as well, it
was checked against the real 6.18.44 kernel of this machine.

Ported: the mprotect_* tests, forked_target_vma, forked_source_vma, ksm_merge,
the mremap_* tests and the mremap_faulted_to_unfaulted_* (MREMAP_DONTUNMAP
anon_vma propagation) tests.  Not ported: handle_uprobe_upon_merged_vma (needs
perf uprobes) and the linux-next-only MREMAP_MUST_RELOCATE_ANON tests.

Diagram legend: each cell of a box is one VMA; "faulted" means it has an
anon_vma (a page was written), "unfaulted" that it has none.
"""

import pytest

import vmsim

PAGE = vmsim.PAGE_SIZE
CARVEOUT = 0x100000000000          # fixed carve-out base (selftest: mmap(NULL, ...))
CARVEOUT_PAGES = 30

ANON = vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS
RW = vmsim.PROT_READ | vmsim.PROT_WRITE
RWX = RW | vmsim.PROT_EXEC
MOVE_FIXED = vmsim.MREMAP_MAYMOVE | vmsim.MREMAP_FIXED
# include/uapi/linux/prctl.h; defined here in case the model's uapi lacks it.
PR_SET_MEMORY_MERGE = getattr(vmsim, "PR_SET_MEMORY_MERGE", 67)


# --------------------------------------------------------------------------- helpers

def page(n):
    """Address of page n of the carve-out."""
    return CARVEOUT + n * PAGE


def vma_covering(p, addr):
    """The VMA containing addr, or None (PROCMAP_QUERY without flags)."""
    for vma in p.vmas():
        if vma.start <= addr < vma.end:
            return vma
    return None


def assert_vma_span(p, addr, start, end):
    """The VMA covering addr is exactly [start, end)."""
    vma = vma_covering(p, addr)
    assert vma is not None, f"no VMA covers {addr:#x}"
    assert (hex(vma.start), hex(vma.end)) == (hex(start), hex(end))


def carveout_layout(p):
    """VMAs inside the carve-out as (first page, end page, perms)."""
    lo, hi = page(0), page(CARVEOUT_PAGES)
    return [((v.start - lo) // PAGE, (v.end - lo) // PAGE, v.perms)
            for v in p.vmas() if lo <= v.start and v.end <= hi]


def carveout_maps(p):
    """The /proc/PID/maps lines of VMAs starting inside the carve-out."""
    lo, hi = page(0), page(CARVEOUT_PAGES)
    return [line for line in p.maps().splitlines(keepends=True)
            if lo <= int(line.split("-", 1)[0], 16) < hi]


def map_anon(p, addr, npages, prot=RW, extra=0):
    """MAP_FIXED private anonymous mapping; returns its address."""
    got = p.mmap(addr, npages * PAGE, prot, ANON | vmsim.MAP_FIXED | extra)
    assert got == addr
    p.mm.validate()
    return got


def fault_in(p, addr):
    """Write one byte, as `ptr[0] = 'x'` does: gives the VMA an anon_vma."""
    p.write(addr, b"x")
    p.mm.validate()


def move(p, src, npages, dst, extra=0):
    """mremap(src, n, n, MAYMOVE|FIXED[|extra], dst); returns dst."""
    got = p.mremap(src, npages * PAGE, npages * PAGE, MOVE_FIXED | extra, dst)
    assert got == dst
    p.mm.validate()
    return got


@pytest.fixture
def p():
    """A process with the PROT_NONE carve-out mapped (FIXTURE_SETUP(merge))."""
    proc = vmsim.Kernel().spawn()
    map_anon(proc, CARVEOUT, CARVEOUT_PAGES, prot=vmsim.PROT_NONE)
    yield proc
    proc.mm.validate()


# --------------------------------------------------------------------------- mprotect

def test_mprotect_unfaulted_left(p):
    # merge.c: mprotect_unfaulted_left
    ptr = map_anon(p, page(1), 10, extra=vmsim.MAP_NORESERVE)
    #      RO          RW
    # |-----------|-----------|
    # | unfaulted | unfaulted |
    # |-----------|-----------|
    p.mprotect(ptr, 5 * PAGE, vmsim.PROT_READ)
    #      RO          RW
    # |-----------|-----------|
    # | unfaulted |  faulted  |
    # |-----------|-----------|
    fault_in(p, ptr + 5 * PAGE)
    # RO over the RW part merges left:
    # |-----------------------|
    # |        faulted        |   RO
    # |-----------------------|
    p.mprotect(ptr + 5 * PAGE, 5 * PAGE, vmsim.PROT_READ)
    assert_vma_span(p, ptr, ptr, ptr + 10 * PAGE)
    assert carveout_layout(p) == [(0, 1, "---p"), (1, 11, "r--p"), (11, 30, "---p")]
    # Byte-exact maps: anonymous lines end in one space after the inode.
    assert carveout_maps(p) == [
        "100000000000-100000001000 ---p 00000000 00:00 0 \n",
        "100000001000-10000000b000 r--p 00000000 00:00 0 \n",
        "10000000b000-10000001e000 ---p 00000000 00:00 0 \n",
    ]
    # The merged VMA is read-only throughout, and keeps the written byte.
    assert p.read(ptr + 5 * PAGE, 1) == b"x"
    with pytest.raises(vmsim.Fault) as fault:
        p.write(ptr + 9 * PAGE, b"y")
    assert (fault.value.signal, fault.value.code) == ("SIGSEGV", "SEGV_ACCERR")


def test_mprotect_unfaulted_right(p):
    # merge.c: mprotect_unfaulted_right
    ptr = map_anon(p, page(1), 10, extra=vmsim.MAP_NORESERVE)
    #      RW          RO
    # |-----------|-----------|
    # |  faulted  | unfaulted |
    # |-----------|-----------|
    p.mprotect(ptr + 5 * PAGE, 5 * PAGE, vmsim.PROT_READ)
    fault_in(p, ptr)
    # RO over the RW part merges right:
    # |-----------------------|
    # |        faulted        |   RO
    # |-----------------------|
    p.mprotect(ptr, 5 * PAGE, vmsim.PROT_READ)
    assert_vma_span(p, ptr, ptr, ptr + 10 * PAGE)
    assert carveout_layout(p) == [(0, 1, "---p"), (1, 11, "r--p"), (11, 30, "---p")]


def test_mprotect_unfaulted_both(p):
    # merge.c: mprotect_unfaulted_both
    ptr = map_anon(p, page(2), 9, extra=vmsim.MAP_NORESERVE)
    #      RO          RW          RO
    # |-----------|-----------|-----------|
    # | unfaulted |  faulted  | unfaulted |
    # |-----------|-----------|-----------|
    p.mprotect(ptr, 3 * PAGE, vmsim.PROT_READ)
    p.mprotect(ptr + 6 * PAGE, 3 * PAGE, vmsim.PROT_READ)
    fault_in(p, ptr + 3 * PAGE)
    # Three-way merge:
    # |-----------------------------------|
    # |              faulted              |   RO
    # |-----------------------------------|
    p.mprotect(ptr + 3 * PAGE, 3 * PAGE, vmsim.PROT_READ)
    assert_vma_span(p, ptr, ptr, ptr + 9 * PAGE)
    assert carveout_layout(p) == [(0, 2, "---p"), (2, 11, "r--p"), (11, 30, "---p")]


def test_mprotect_faulted_left_unfaulted_right(p):
    # merge.c: mprotect_faulted_left_unfaulted_right
    ptr = map_anon(p, page(2), 9, extra=vmsim.MAP_NORESERVE)
    #             RW               RO
    # |-----------------------|-----------|
    # |        faulted        | unfaulted |
    # |-----------------------|-----------|
    p.mprotect(ptr + 6 * PAGE, 3 * PAGE, vmsim.PROT_READ)
    fault_in(p, ptr)
    #      RO          RW          RO
    # |-----------|-----------|-----------|
    # |  faulted  |  faulted  | unfaulted |
    # |-----------|-----------|-----------|
    p.mprotect(ptr, 3 * PAGE, vmsim.PROT_READ)
    p.mprotect(ptr + 3 * PAGE, 3 * PAGE, vmsim.PROT_READ)
    assert_vma_span(p, ptr, ptr, ptr + 9 * PAGE)
    assert carveout_layout(p) == [(0, 2, "---p"), (2, 11, "r--p"), (11, 30, "---p")]


def test_mprotect_unfaulted_left_faulted_right(p):
    # merge.c: mprotect_unfaulted_left_faulted_right
    ptr = map_anon(p, page(2), 9, extra=vmsim.MAP_NORESERVE)
    #      RO                RW
    # |-----------|-----------------------|
    # | unfaulted |        faulted        |
    # |-----------|-----------------------|
    p.mprotect(ptr, 3 * PAGE, vmsim.PROT_READ)
    fault_in(p, ptr + 3 * PAGE)
    #      RO          RW          RO
    # |-----------|-----------|-----------|
    # | unfaulted |  faulted  |  faulted  |
    # |-----------|-----------|-----------|
    p.mprotect(ptr + 6 * PAGE, 3 * PAGE, vmsim.PROT_READ)
    p.mprotect(ptr + 3 * PAGE, 3 * PAGE, vmsim.PROT_READ)
    assert_vma_span(p, ptr, ptr, ptr + 9 * PAGE)
    assert carveout_layout(p) == [(0, 2, "---p"), (2, 11, "r--p"), (11, 30, "---p")]


# --------------------------------------------------------------------------- fork

def test_forked_target_vma(p):
    # merge.c: forked_target_vma
    ptr = map_anon(p, page(1), 5)
    fault_in(p, ptr)
    child = p.fork()
    # Writing every page in the child (unCoWing) does not make its VMA a
    # plain single-anon_vma VMA again.
    for i in range(5):
        child.write(ptr + i * PAGE, b"x")
    #     forked
    # |-----------|-----------|
    # |  faulted  | unfaulted |
    # |-----------|-----------|
    #      ptr         ptr2
    map_anon(child, ptr + 5 * PAGE, 5)
    assert_vma_span(child, ptr, ptr, ptr + 5 * PAGE)
    assert carveout_layout(child) == [(0, 1, "---p"), (1, 6, "rw-p"),
                                      (6, 11, "rw-p"), (11, 30, "---p")]
    # The parent is untouched by what the child did.
    assert carveout_layout(p) == [(0, 1, "---p"), (1, 6, "rw-p"), (6, 30, "---p")]
    child.mm.validate()


def test_forked_source_vma(p):
    # merge.c: forked_source_vma
    ptr = map_anon(p, page(1), 5, extra=vmsim.MAP_NORESERVE)
    fault_in(p, ptr)
    child = p.fork()
    for i in range(5):
        child.write(ptr + i * PAGE, b"x")
    #   forked RW      RWX
    # |-----------|-----------|
    # |  faulted  | unfaulted |
    # |-----------|-----------|
    #      ptr        ptr2
    ptr2 = map_anon(child, page(6), 5, prot=RWX, extra=vmsim.MAP_NORESERVE)
    assert_vma_span(child, ptr2, ptr2, ptr2 + 5 * PAGE)
    # Making the forked VMA RWX would make it the merge source for ptr2;
    # it must not merge because ptr was forked.
    child.mprotect(ptr, 5 * PAGE, RWX)
    assert_vma_span(child, ptr2, ptr2, ptr2 + 5 * PAGE)
    assert carveout_layout(child) == [(0, 1, "---p"), (1, 6, "rwxp"),
                                      (6, 11, "rwxp"), (11, 30, "---p")]
    child.mm.validate()


# --------------------------------------------------------------------------- KSM

def test_ksm_merge(p):
    # merge.c: ksm_merge.  KSM is built in on the target kernel (CONFIG_KSM=y),
    # so PR_SET_MEMORY_MERGE succeeds and must not stop merging.
    #
    # |-----------|-----------|
    # |    R/W    |    R/W    |   -> one VMA
    # |-----------|-----------|
    #      ptr         ptr2
    ptr = map_anon(p, page(1), 1)
    ptr2 = map_anon(p, page(2), 1)
    assert_vma_span(p, ptr, ptr, ptr + 2 * PAGE)
    p.munmap(ptr2, PAGE)

    assert p.prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0
    # The surviving VMA is now VM_MERGEABLE; a new neighbour gets it too.
    assert "mg" in vma_covering(p, ptr).vmflags
    map_anon(p, page(2), 1)
    assert_vma_span(p, ptr, ptr, ptr + 2 * PAGE)

    p.munmap(ptr, 2 * PAGE)
    map_anon(p, page(1), 1)
    map_anon(p, page(2), 1)
    assert_vma_span(p, ptr, ptr, ptr + 2 * PAGE)
    assert "mg" in vma_covering(p, ptr).vmflags


# --------------------------------------------------------------------------- mremap

def test_mremap_unfaulted_to_faulted(p):
    # merge.c: mremap_unfaulted_to_faulted
    ptr = map_anon(p, page(1), 5)
    ptr2 = map_anon(p, page(7), 5)
    ptr2 = move(p, ptr2, 5, ptr2 + 1000 * PAGE)
    fault_in(p, ptr)
    # |-----------|-----------|        |----------------------|
    # |  faulted  | unfaulted |   ->   |       faulted        |
    # |-----------|-----------|        |----------------------|
    #      ptr         ptr2                       ptr
    move(p, ptr2, 5, ptr + 5 * PAGE)
    assert_vma_span(p, ptr, ptr, ptr + 10 * PAGE)
    assert carveout_layout(p) == [(0, 1, "---p"), (1, 11, "rw-p"), (12, 30, "---p")]


def test_mremap_unfaulted_behind_faulted(p):
    # merge.c: mremap_unfaulted_behind_faulted
    ptr = map_anon(p, page(6), 5)
    ptr2 = map_anon(p, page(14), 5)
    ptr2 = move(p, ptr2, 5, ptr2 + 1000 * PAGE)
    fault_in(p, ptr)
    # |-----------|-----------|        |----------------------|
    # | unfaulted |  faulted  |   ->   |       faulted        |
    # |-----------|-----------|        |----------------------|
    #      ptr2        ptr                        ptr2
    ptr2 = move(p, ptr2, 5, page(1))
    assert_vma_span(p, ptr2, ptr2, ptr2 + 10 * PAGE)
    assert carveout_layout(p) == [(0, 1, "---p"), (1, 11, "rw-p"), (11, 14, "---p"),
                                  (19, 30, "---p")]


def test_mremap_unfaulted_between_faulted(p):
    # merge.c: mremap_unfaulted_between_faulted
    ptr = map_anon(p, page(1), 5)
    ptr2 = map_anon(p, page(7), 5)
    ptr3 = map_anon(p, page(14), 5)
    ptr3 = move(p, ptr3, 5, ptr3 + 2000 * PAGE)
    ptr2 = move(p, ptr2, 5, ptr2 + 1000 * PAGE)
    fault_in(p, ptr)
    fault_in(p, ptr3)
    #                                        \
    # |-----------|           |-----------|  /  |-----------|
    # |  faulted  |           |  faulted  |  \  | unfaulted |
    # |-----------|           |-----------|  /  |-----------|
    #      ptr                     ptr3      \       ptr2
    ptr3 = move(p, ptr3, 5, ptr + 10 * PAGE)
    # ptr2 into the hole: ptr and ptr3 have different anon_vmas, so only
    # ptr and ptr2 merge.
    # |-----------------------|-----------|
    # |        faulted        |  faulted  |
    # |-----------------------|-----------|
    move(p, ptr2, 5, ptr + 5 * PAGE)
    assert_vma_span(p, ptr, ptr, ptr + 10 * PAGE)
    assert_vma_span(p, ptr3, ptr3, ptr3 + 5 * PAGE)


def test_mremap_unfaulted_between_faulted_unfaulted(p):
    # merge.c: mremap_unfaulted_between_faulted_unfaulted
    ptr = map_anon(p, page(1), 5)
    ptr2 = map_anon(p, page(7), 5)
    ptr3 = map_anon(p, page(14), 5)
    ptr3 = move(p, ptr3, 5, ptr3 + 2000 * PAGE)
    ptr2 = move(p, ptr2, 5, ptr2 + 1000 * PAGE)
    fault_in(p, ptr)
    ptr3 = move(p, ptr3, 5, ptr + 10 * PAGE)
    # |-----------|-----------|-----------|      |-----------------------------------|
    # |  faulted  | unfaulted | unfaulted |  ->  |              faulted              |
    # |-----------|-----------|-----------|      |-----------------------------------|
    #      ptr        ptr2         ptr3
    move(p, ptr2, 5, ptr + 5 * PAGE)
    assert_vma_span(p, ptr, ptr, ptr + 15 * PAGE)


def test_mremap_unfaulted_between_correctly_placed_faulted(p):
    # merge.c: mremap_unfaulted_between_correctly_placed_faulted
    ptr = map_anon(p, page(1), 15)
    fault_in(p, ptr)
    # Unmap the middle: the two faulted halves share one anon_vma and their
    # pgoffs still equal their page addresses.
    # |-----------|           |-----------|
    # |  faulted  |           |  faulted  |
    # |-----------|           |-----------|
    p.munmap(ptr + 5 * PAGE, 5 * PAGE)
    ptr2 = map_anon(p, page(20), 5)
    # |-----------|-----------|-----------|      |-----------------------------------|
    # |  faulted  | unfaulted |  faulted  |  ->  |              faulted              |
    # |-----------|-----------|-----------|      |-----------------------------------|
    move(p, ptr2, 5, ptr + 5 * PAGE)
    assert_vma_span(p, ptr, ptr, ptr + 15 * PAGE)
    assert carveout_layout(p) == [(0, 1, "---p"), (1, 16, "rw-p"), (16, 20, "---p"),
                                  (25, 30, "---p")]


def test_mremap_correct_placed_faulted(p):
    # merge.c: mremap_correct_placed_faulted.  Pieces of one faulted VMA keep
    # their pgoff when moved, so each re-merges once back in its original place.
    ptr = map_anon(p, page(1), 15)
    fault_in(p, ptr)
    #                \                 \
    # |-----------|  /  |-----------|  /  |-----------|
    # |  faulted  |  \  |  faulted  |  \  |  faulted  |
    # |-----------|  /  |-----------|  /  |-----------|
    #      ptr       \       ptr2      \       ptr3
    ptr3 = move(p, ptr + 10 * PAGE, 5, ptr + 10 * PAGE + 2000 * PAGE)
    ptr2 = move(p, ptr + 5 * PAGE, 5, ptr + 5 * PAGE + 1000 * PAGE)

    # ptr2 back in place: [ptr ptr2] merge.
    ptr2 = move(p, ptr2, 5, ptr + 5 * PAGE)
    assert_vma_span(p, ptr, ptr, ptr + 10 * PAGE)

    # ptr out and back in: [ptr ptr2] again.
    ptr = move(p, ptr, 5, ptr + 1000 * PAGE)
    ptr = move(p, ptr, 5, page(1))
    assert_vma_span(p, ptr, ptr, ptr + 10 * PAGE)

    # ptr out again, ptr3 back after ptr2: [ptr2 ptr3] merge.
    ptr = move(p, ptr, 5, ptr + 1000 * PAGE)
    ptr3 = move(p, ptr3, 5, ptr2 + 5 * PAGE)
    assert_vma_span(p, ptr2, ptr2, ptr2 + 10 * PAGE)

    # ptr back: all three merge.
    ptr = move(p, ptr, 5, page(1))
    assert_vma_span(p, ptr, ptr, ptr + 15 * PAGE)

    # ptr2 out and back: all three merge again.
    ptr2 = move(p, ptr2, 5, ptr2 + 1000 * PAGE)
    ptr2 = move(p, ptr2, 5, ptr + 5 * PAGE)
    assert_vma_span(p, ptr, ptr, ptr + 15 * PAGE)

    # ptr3 out and back: all three merge again.
    ptr3 = move(p, ptr3, 5, ptr3 + 1000 * PAGE)
    ptr3 = move(p, ptr3, 5, ptr + 10 * PAGE)
    assert_vma_span(p, ptr, ptr, ptr + 15 * PAGE)
    assert carveout_layout(p) == [(0, 1, "---p"), (1, 16, "rw-p"), (16, 30, "---p")]


# ------------------------------------------------- mremap(MREMAP_DONTUNMAP) onto unfaulted

DONTUNMAP = vmsim.MREMAP_DONTUNMAP


def test_mremap_faulted_to_unfaulted_prev(p):
    # merge.c: mremap_faulted_to_unfaulted_prev
    #                             |------------|
    #                             |    \       |
    #           |-----------|     |    /  |---------|
    #           | unfaulted |     v    \  | faulted |
    #           |-----------|          /  |---------|
    #                 B                \       A
    ptr_a = map_anon(p, page(4), 3)
    fault_in(p, ptr_a)
    ptr_a = move(p, ptr_a, 3, page(20))
    ptr_b = map_anon(p, page(1), 3)
    move(p, ptr_a, 3, page(4), extra=DONTUNMAP)
    assert_vma_span(p, ptr_b, ptr_b, ptr_b + 6 * PAGE)


def test_mremap_faulted_to_unfaulted_next(p):
    # merge.c: mremap_faulted_to_unfaulted_next
    #      |---------------------------|
    #      |                   \       |
    #      |    |-----------|  /  |---------|
    #      v    | unfaulted |  \  | faulted |
    #           |-----------|  /  |---------|
    #                 B        \       A
    ptr_a = map_anon(p, page(1), 3)
    fault_in(p, ptr_a)
    ptr_a = move(p, ptr_a, 3, page(20))
    map_anon(p, page(4), 3)
    ptr_a = move(p, ptr_a, 3, page(1), extra=DONTUNMAP)
    assert_vma_span(p, ptr_a, ptr_a, ptr_a + 6 * PAGE)


def test_mremap_faulted_to_unfaulted_prev_unfaulted_next(p):
    # merge.c: mremap_faulted_to_unfaulted_prev_unfaulted_next
    #                  |---------------------------|
    #                  |                   \       |
    # |-----------|    |    |-----------|  /  |---------|
    # | unfaulted |    v    | unfaulted |  \  | faulted |
    # |-----------|         |-----------|  /  |---------|
    #       A                     C        \        B
    ptr_b = map_anon(p, page(4), 3)
    fault_in(p, ptr_b)
    ptr_b = move(p, ptr_b, 3, page(20))
    ptr_a = map_anon(p, page(1), 3)
    map_anon(p, page(7), 3)
    move(p, ptr_b, 3, page(4), extra=DONTUNMAP)
    assert_vma_span(p, ptr_a, ptr_a, ptr_a + 9 * PAGE)


def test_mremap_faulted_to_unfaulted_prev_faulted_next(p):
    # merge.c: mremap_faulted_to_unfaulted_prev_faulted_next
    #                  |---------------------------|
    #                  |                   \       |
    # |-----------|    |    |-----------|  /  |---------|
    # | unfaulted |    v    |  faulted  |  \  | faulted |
    # |-----------|         |-----------|  /  |---------|
    #       A                     C        \       B
    # B and C are mapped together so they share the anon_vma and pgoffs line up.
    ptr_bc = map_anon(p, page(4), 6)
    fault_in(p, ptr_bc)
    ptr_b = move(p, ptr_bc, 3, page(20))
    ptr_a = map_anon(p, page(1), 3)
    move(p, ptr_b, 3, page(4), extra=DONTUNMAP)
    assert_vma_span(p, ptr_a, ptr_a, ptr_a + 9 * PAGE)
