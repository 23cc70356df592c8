"""Merge cases found while building the model, each checked on the 6.18.44 host."""

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
)

P = PAGE_SIZE
W = 0x7E0000000000
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED


def layout(p):
    return [((v.start - W) // P, (v.end - W) // P) for v in p.vmas()]


def test_faulted_vma_moved_into_unfaulted_neighbour_keeps_its_anon_vma():
    # A (faulted) at 5..10 moves to 20 and back next to an unfaulted B at 0..5:
    #   0123456789
    #   BBBBBAAAAA   -> one VMA [0,10) that must still own A's anon_vma.
    # Observed on the host: a fork child's new neighbour at 10 does not merge with
    # it (the merged VMA is faulted and the child's chain is not single).
    p = vmsim.Kernel(pkeys=False).spawn()
    p.mmap(W + 5 * P, 5 * P, RW, ANON)
    p.write(W + 5 * P, b"A")
    p.mremap(W + 5 * P, 5 * P, 5 * P, MREMAP_MAYMOVE | MREMAP_FIXED, W + 20 * P)
    p.mmap(W, 5 * P, RW, ANON)
    p.mremap(W + 20 * P, 5 * P, 5 * P, MREMAP_MAYMOVE | MREMAP_FIXED, W + 5 * P)
    assert layout(p) == [(0, 10)]
    assert p.vmas()[0].anon_vma is not None
    assert p.read(W + 5 * P, 1) == b"A"
    child = p.fork()
    child.mmap(W + 10 * P, 5 * P, RW, ANON)
    assert layout(child) == [(0, 10), (10, 15)]
    p.mm.validate()
    child.mm.validate()
