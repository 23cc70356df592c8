"""mseal(2) behaviour, ported from Linux 6.18 tools/testing/selftests/mm/mseal_test.c.

Each test that takes `seal` in the selftest runs twice here (pytest parametrize):
seal=False expects the operation to succeed, seal=True expects the kernel to
refuse it.  The selftest mostly asserts `ret < 0`; the exact errno asserted
here (EPERM for a sealed VMA, ENOMEM for a hole in the range, EINVAL for bad
arguments) is what the real 6.18.44 kernel of this machine returns for the
same calls.

The selftest lets the kernel place each mapping (mmap(NULL, ...)).  Here every
mapping gets its own fixed address with unmapped guard pages around it, so
mappings never touch by accident and the layout is deterministic.

Diagrams: one character per page; R = PROT_READ, W = read/write, - = PROT_NONE,
. = unmapped, and a capital S marks sealed pages where it matters.
"""

import errno
import itertools

import pytest

import vmsim

PAGE = vmsim.PAGE_SIZE
ANON = vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS
RO = vmsim.PROT_READ
RW = vmsim.PROT_READ | vmsim.PROT_WRITE
MOVE_FIXED = vmsim.MREMAP_MAYMOVE | vmsim.MREMAP_FIXED
MOVE_DONTUNMAP = vmsim.MREMAP_MAYMOVE | vmsim.MREMAP_DONTUNMAP
PKEY_DISABLE_WRITE = vmsim.PKEY_DISABLE_WRITE
ARENA = 0x200000000000           # fixed addresses are handed out from here
SLOT = 64 * PAGE                 # each mapping gets its own 64-page slot

SEAL = pytest.mark.parametrize("seal", [False, True], ids=["unsealed", "sealed"])


# --------------------------------------------------------------------------- helpers

class Setup:
    """A process plus a supply of fixed, well separated addresses."""

    def __init__(self):
        self.kernel = vmsim.Kernel()
        self.p = self.kernel.spawn()
        self._slots = itertools.count(1)

    def next_addr(self):
        """Start of a fresh slot (never mapped before)."""
        return ARENA + next(self._slots) * SLOT

    def map(self, size, prot=RO, flags=ANON):
        """setup_single_address(): a private anonymous mapping (PROT_READ by default)."""
        addr = self.next_addr()
        assert self.p.mmap(addr, size, prot, flags | vmsim.MAP_FIXED) == addr
        return addr

    def map_rw(self, size):
        """setup_single_address_rw()."""
        return self.map(size, prot=RW)


@pytest.fixture
def s():
    setup = Setup()
    yield setup
    setup.p.mm.validate()


def vma_size_at(p, addr):
    """get_vma_size(): (size, perms) of the VMA that *starts* at addr, or (0, None)."""
    for vma in p.vmas():
        if vma.start == addr:
            return vma.end - vma.start, vma.perms[:3]
    return 0, None


def expect(seal, errno_if_sealed, call, *args):
    """Run call(*args); it must fail with errno_if_sealed when sealed, else succeed."""
    if seal:
        fails(errno_if_sealed, call, *args)
        return None
    result = call(*args)
    validate_owner(call)
    return result


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


# --------------------------------------------------------------------------- sealing itself

def test_seal_addseal(s):
    # mseal_test.c: test_seal_addseal
    ptr = s.map(4 * PAGE)
    assert s.p.mseal(ptr, 4 * PAGE) == 0
    assert "sl" in [v for v in s.p.vmas() if v.start == ptr][0].vmflags


def test_seal_unmapped_start(s):
    # mseal_test.c: test_seal_unmapped_start
    #   ..RR   (first two pages unmapped)
    ptr = s.map(4 * PAGE)
    s.p.munmap(ptr, 2 * PAGE)
    fails(errno.ENOMEM, s.p.mprotect, ptr, 4 * PAGE, RW)
    fails(errno.ENOMEM, s.p.mseal, ptr, 4 * PAGE)
    assert s.p.mseal(ptr + 2 * PAGE, 2 * PAGE) == 0


def test_seal_unmapped_middle(s):
    # mseal_test.c: test_seal_unmapped_middle
    #   R..R
    ptr = s.map(4 * PAGE)
    s.p.munmap(ptr + PAGE, 2 * PAGE)
    fails(errno.ENOMEM, s.p.mprotect, ptr, 4 * PAGE, RW)
    fails(errno.ENOMEM, s.p.mseal, ptr, 4 * PAGE)
    assert s.p.mseal(ptr, PAGE) == 0
    assert s.p.mseal(ptr + 3 * PAGE, PAGE) == 0


def test_seal_unmapped_end(s):
    # mseal_test.c: test_seal_unmapped_end
    #   RR..
    ptr = s.map(4 * PAGE)
    s.p.munmap(ptr + 2 * PAGE, 2 * PAGE)
    fails(errno.ENOMEM, s.p.mprotect, ptr, 4 * PAGE, RW)
    fails(errno.ENOMEM, s.p.mseal, ptr, 4 * PAGE)
    assert s.p.mseal(ptr, 2 * PAGE) == 0


def test_seal_multiple_vmas(s):
    # mseal_test.c: test_seal_multiple_vmas
    #   RWWR  -> mprotect(all, R) -> RRRR -> RWWR -> mseal(all)
    ptr = s.map(4 * PAGE)
    s.p.mprotect(ptr + PAGE, 2 * PAGE, RW)
    s.p.mprotect(ptr, 4 * PAGE, RO)
    assert vma_size_at(s.p, ptr) == (4 * PAGE, "r--")
    s.p.mprotect(ptr + PAGE, 2 * PAGE, RW)
    assert s.p.mseal(ptr, 4 * PAGE) == 0
    assert vma_size_at(s.p, ptr) == (PAGE, "r--")
    assert vma_size_at(s.p, ptr + PAGE) == (2 * PAGE, "rw-")
    assert vma_size_at(s.p, ptr + 3 * PAGE) == (PAGE, "r--")


def test_seal_split_start(s):
    # mseal_test.c: test_seal_split_start
    #   WWRR -> S|W|RR -> SSSS (three VMAs, all sealed)
    ptr = s.map(4 * PAGE)
    s.p.mprotect(ptr, 2 * PAGE, RW)
    assert s.p.mseal(ptr, PAGE) == 0
    assert vma_size_at(s.p, ptr) == (PAGE, "rw-")
    assert s.p.mseal(ptr + PAGE, 3 * PAGE) == 0
    assert vma_size_at(s.p, ptr) == (2 * PAGE, "rw-")


def test_seal_split_end(s):
    # mseal_test.c: test_seal_split_end
    ptr = s.map(4 * PAGE)
    s.p.mprotect(ptr, 2 * PAGE, RW)
    assert s.p.mseal(ptr + 3 * PAGE, PAGE) == 0
    assert vma_size_at(s.p, ptr + 3 * PAGE) == (PAGE, "r--")
    assert s.p.mseal(ptr, 3 * PAGE) == 0
    assert vma_size_at(s.p, ptr + 2 * PAGE) == (2 * PAGE, "r--")


def test_seal_invalid_input(s):
    # mseal_test.c: test_seal_invalid_input
    #   RRRR....  (8 pages mapped, the last 4 unmapped again)
    ptr = s.map(8 * PAGE)
    s.p.munmap(ptr + 4 * PAGE, 4 * PAGE)
    fails(errno.EINVAL, s.p.mseal, ptr, 4 * PAGE, 0x20)            # invalid flag
    fails(errno.EINVAL, s.p.mseal, ptr + 1, 2 * PAGE)              # unaligned start
    fails(errno.ENOMEM, s.p.mseal, ptr, 5 * PAGE)                  # length too big
    fails(errno.ENOMEM, s.p.mseal, ptr, (2**64 - 1) // PAGE)       # "length overflow"
    fails(errno.ENOMEM, s.p.mseal, ptr - PAGE, 5 * PAGE)           # start not mapped
    # Nothing was sealed by the failed calls.
    assert s.p.mprotect(ptr, 4 * PAGE, RW) == 0


def test_seal_zero_length(s):
    # mseal_test.c: test_seal_zero_length
    ptr = s.map(4 * PAGE)
    assert s.p.mprotect(ptr, 0, RW) == 0
    assert s.p.mseal(ptr, 0) == 0
    assert s.p.mprotect(ptr, 4 * PAGE, RW) == 0      # not sealed


def test_seal_zero_address(s):
    # mseal_test.c: test_seal_zero_address.  Root (CAP_SYS_RAWIO) may map page 0.
    assert s.p.mmap(0, 4 * PAGE, vmsim.PROT_NONE, ANON | vmsim.MAP_FIXED) == 0
    assert vma_size_at(s.p, 0) == (4 * PAGE, "---")
    assert s.p.mseal(0, 4 * PAGE) == 0
    fails(errno.EPERM, s.p.mprotect, 0, 4 * PAGE, RW)


def test_seal_twice(s):
    # mseal_test.c: test_seal_twice
    ptr = s.map(4 * PAGE)
    assert s.p.mseal(ptr, 4 * PAGE) == 0
    assert s.p.mseal(ptr, 4 * PAGE) == 0             # idempotent


# --------------------------------------------------------------------------- mprotect

@SEAL
def test_seal_mprotect(s, seal):
    # mseal_test.c: test_seal_mprotect
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    expect(seal, errno.EPERM, s.p.mprotect, ptr, 4 * PAGE, RW)
    assert vma_size_at(s.p, ptr) == (4 * PAGE, "r--" if seal else "rw-")
    # A sealed VMA really stayed read-only.
    if seal:
        with pytest.raises(vmsim.Fault) as fault:
            s.p.write(ptr, b"w")
        assert (fault.value.signal, fault.value.code) == ("SIGSEGV", "SEGV_ACCERR")
    else:
        s.p.write(ptr, b"w")


@SEAL
def test_seal_start_mprotect(s, seal):
    # mseal_test.c: test_seal_start_mprotect
    #   SRRR
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, PAGE)
    expect(seal, errno.EPERM, s.p.mprotect, ptr, PAGE, RW)
    assert s.p.mprotect(ptr + PAGE, 3 * PAGE, RW) == 0


@SEAL
def test_seal_end_mprotect(s, seal):
    # mseal_test.c: test_seal_end_mprotect
    #   RSSS
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr + PAGE, 3 * PAGE)
    assert s.p.mprotect(ptr, PAGE, RW) == 0
    expect(seal, errno.EPERM, s.p.mprotect, ptr + PAGE, 3 * PAGE, RW)


@SEAL
def test_seal_mprotect_unalign_len(s, seal):
    # mseal_test.c: test_seal_mprotect_unalign_len: a length of 2 pages - 1
    # rounds up and seals 2 pages.
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 2 * PAGE - 1)
    expect(seal, errno.EPERM, s.p.mprotect, ptr, 2 * PAGE, RW)
    assert s.p.mprotect(ptr + 2 * PAGE, PAGE, RW) == 0


@SEAL
def test_seal_mprotect_unalign_len_variant_2(s, seal):
    # mseal_test.c: test_seal_mprotect_unalign_len_variant_2: 2 pages + 1 seals 3.
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 2 * PAGE + 1)
    expect(seal, errno.EPERM, s.p.mprotect, ptr, 3 * PAGE, RW)
    assert s.p.mprotect(ptr + 3 * PAGE, PAGE, RW) == 0


@SEAL
def test_seal_mprotect_two_vma(s, seal):
    # mseal_test.c: test_seal_mprotect_two_vma
    #   WWRR, all four sealed
    ptr = s.map(4 * PAGE)
    s.p.mprotect(ptr, 2 * PAGE, RW)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    expect(seal, errno.EPERM, s.p.mprotect, ptr, 2 * PAGE, RW)
    expect(seal, errno.EPERM, s.p.mprotect, ptr + 2 * PAGE, 2 * PAGE, RW)


@SEAL
def test_seal_mprotect_two_vma_with_split(s, seal):
    # mseal_test.c: test_seal_mprotect_two_vma_with_split
    #   W S S R   (the seal straddles the W/R boundary and splits both VMAs)
    ptr = s.map(4 * PAGE)
    s.p.mprotect(ptr, 2 * PAGE, RW)
    if seal:
        s.p.mseal(ptr + PAGE, 2 * PAGE)
    assert s.p.mprotect(ptr, PAGE, RW) == 0
    expect(seal, errno.EPERM, s.p.mprotect, ptr + PAGE, PAGE, RW)
    expect(seal, errno.EPERM, s.p.mprotect, ptr + 2 * PAGE, PAGE, RW)
    assert s.p.mprotect(ptr + 3 * PAGE, PAGE, RW) == 0


@SEAL
def test_seal_mprotect_partial_mprotect(s, seal):
    # mseal_test.c: test_seal_mprotect_partial_mprotect
    #   SRRR, mprotect of the first two pages
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, PAGE)
    expect(seal, errno.EPERM, s.p.mprotect, ptr, 2 * PAGE, RW)


@SEAL
def test_seal_mprotect_partial_mprotect_tail(s, seal):
    # mseal_test.c: test_seal_mprotect_partial_mprotect_tail
    #   RS, mprotect(both, PROT_EXEC): the sealed second VMA is never touched
    #   (the first may be changed: mprotect is not atomic across VMAs).
    ptr = s.map(2 * PAGE)
    if seal:
        s.p.mseal(ptr + PAGE, PAGE)
    expect(seal, errno.EPERM, s.p.mprotect, ptr, 2 * PAGE, vmsim.PROT_EXEC)
    if seal:
        assert vma_size_at(s.p, ptr + PAGE) == (PAGE, "r--")
        # Observed on 6.18.44: the unsealed first VMA was already changed.
        assert vma_size_at(s.p, ptr) == (PAGE, "--x")


def test_seal_mprotect_two_vma_with_gap(s):
    # mseal_test.c: test_seal_mprotect_two_vma_with_gap
    #   W..W
    ptr = s.map(4 * PAGE)
    s.p.mprotect(ptr, PAGE, RW)
    s.p.mprotect(ptr + 3 * PAGE, PAGE, RW)
    s.p.munmap(ptr + PAGE, 2 * PAGE)
    # The gap fails the call; the first page has already been changed
    # ("internally mprotect still updated the first page"), the last has not.
    fails(errno.ENOMEM, s.p.mprotect, ptr, 4 * PAGE, RO)
    assert vma_size_at(s.p, ptr) == (PAGE, "r--")
    assert vma_size_at(s.p, ptr + 3 * PAGE) == (PAGE, "rw-")
    fails(errno.ENOMEM, s.p.mseal, ptr, 4 * PAGE)
    # Neither end was sealed by the failed mseal.
    assert s.p.mprotect(ptr, PAGE, RO) == 0
    assert s.p.mprotect(ptr + 3 * PAGE, PAGE, RO) == 0


@SEAL
def test_seal_mprotect_split(s, seal):
    # mseal_test.c: test_seal_mprotect_split
    #   WRRR, all four sealed
    ptr = s.map(4 * PAGE)
    s.p.mprotect(ptr, PAGE, RW)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    expect(seal, errno.EPERM, s.p.mprotect, ptr, 2 * PAGE, RO)
    expect(seal, errno.EPERM, s.p.mprotect, ptr + 2 * PAGE, 2 * PAGE, RO)


@SEAL
def test_seal_mprotect_merge(s, seal):
    # mseal_test.c: test_seal_mprotect_merge
    #   W R R R, first two sealed
    ptr = s.map(4 * PAGE)
    s.p.mprotect(ptr, PAGE, RW)
    if seal:
        s.p.mseal(ptr, 2 * PAGE)
    expect(seal, errno.EPERM, s.p.mprotect, ptr, 2 * PAGE, RO)
    assert s.p.mprotect(ptr + 2 * PAGE, 2 * PAGE, RO) == 0
    if not seal:
        assert vma_size_at(s.p, ptr) == (4 * PAGE, "r--")


# --------------------------------------------------------------------------- munmap

@SEAL
def test_seal_munmap(s, seal):
    # mseal_test.c: test_seal_munmap
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)
    assert vma_size_at(s.p, ptr) == ((4 * PAGE, "r--") if seal else (0, None))


@SEAL
def test_seal_munmap_two_vma(s, seal):
    # mseal_test.c: test_seal_munmap_two_vma
    #   WWRR, all sealed
    ptr = s.map(4 * PAGE)
    s.p.mprotect(ptr, 2 * PAGE, RW)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    expect(seal, errno.EPERM, s.p.munmap, ptr, 2 * PAGE)
    expect(seal, errno.EPERM, s.p.munmap, ptr + PAGE, 2 * PAGE)


@SEAL
def test_seal_munmap_vma_with_gap(s, seal):
    # mseal_test.c: test_seal_munmap_vma_with_gap
    #   R..R: mseal over the gap fails, so munmap works afterwards
    ptr = s.map(4 * PAGE)
    s.p.munmap(ptr + PAGE, 2 * PAGE)
    if seal:
        fails(errno.ENOMEM, s.p.mseal, ptr, 4 * PAGE)
    assert s.p.munmap(ptr, PAGE) == 0
    assert s.p.munmap(ptr + 2 * PAGE, PAGE) == 0
    assert s.p.munmap(ptr, 4 * PAGE) == 0


@SEAL
def test_seal_munmap_partial_across_vmas(s, seal):
    # mseal_test.c: test_seal_munmap_partial_across_vmas
    #   RS: munmap of both fails and the sealed VMA survives
    ptr = s.map(2 * PAGE)
    if seal:
        s.p.mseal(ptr + PAGE, PAGE)
    expect(seal, errno.EPERM, s.p.munmap, ptr, 2 * PAGE)
    if seal:
        assert vma_size_at(s.p, ptr + PAGE) == (PAGE, "r--")
        assert vma_size_at(s.p, ptr) == (PAGE, "r--")      # nothing was unmapped


@SEAL
def test_munmap_start_freed(s, seal):
    # mseal_test.c: test_munmap_start_freed
    #   .SSS
    ptr = s.map(4 * PAGE)
    s.p.munmap(ptr, PAGE)
    if seal:
        s.p.mseal(ptr + PAGE, 3 * PAGE)
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)
    expected = (3 * PAGE, "r--") if seal else (0, None)
    assert vma_size_at(s.p, ptr + PAGE) == expected


@SEAL
def test_munmap_end_freed(s, seal):
    # mseal_test.c: test_munmap_end_freed
    #   SSS.
    ptr = s.map(4 * PAGE)
    s.p.munmap(ptr + 3 * PAGE, PAGE)
    if seal:
        s.p.mseal(ptr, 3 * PAGE)
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)


@SEAL
def test_munmap_middle_freed(s, seal):
    # mseal_test.c: test_munmap_middle_freed
    #   S..R
    ptr = s.map(4 * PAGE)
    s.p.munmap(ptr + PAGE, 2 * PAGE)
    if seal:
        s.p.mseal(ptr, PAGE)
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)
    if seal:
        assert vma_size_at(s.p, ptr) == (PAGE, "r--")
        assert vma_size_at(s.p, ptr + 3 * PAGE) == (PAGE, "r--")
    else:
        assert vma_size_at(s.p, ptr) == (0, None)
        assert vma_size_at(s.p, ptr + 3 * PAGE) == (0, None)


# --------------------------------------------------------------------------- mremap

@SEAL
def test_seal_mremap_shrink(s, seal):
    # mseal_test.c: test_seal_mremap_shrink
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mremap, ptr, 4 * PAGE, 2 * PAGE, 0, 0)
    if not seal:
        assert got == ptr


@SEAL
def test_seal_mremap_expand(s, seal):
    # mseal_test.c: test_seal_mremap_expand
    #   SS.. -> grow in place to 4 pages
    ptr = s.map(4 * PAGE)
    s.p.munmap(ptr + 2 * PAGE, 2 * PAGE)
    if seal:
        s.p.mseal(ptr, 2 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mremap, ptr, 2 * PAGE, 4 * PAGE, 0, 0)
    if not seal:
        assert got == ptr


@SEAL
def test_seal_mremap_move(s, seal):
    # mseal_test.c: test_seal_mremap_move
    ptr = s.map(PAGE)
    new_ptr = s.map(PAGE)
    s.p.munmap(new_ptr, PAGE)
    if seal:
        s.p.mseal(ptr, PAGE)
    got = expect(seal, errno.EPERM, s.p.mremap, ptr, PAGE, PAGE, MOVE_FIXED, new_ptr)
    if not seal:
        assert got == new_ptr


@SEAL
def test_seal_mremap_shrink_fixed(s, seal):
    # mseal_test.c: test_seal_mremap_shrink_fixed (sealed source)
    ptr = s.map(4 * PAGE)
    new_addr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mremap, ptr, 4 * PAGE, 2 * PAGE, MOVE_FIXED, new_addr)
    if not seal:
        assert got == new_addr


@SEAL
def test_seal_mremap_expand_fixed(s, seal):
    # mseal_test.c: test_seal_mremap_expand_fixed (sealed destination)
    ptr = s.map(PAGE)
    new_addr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(new_addr, 4 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mremap, ptr, PAGE, 4 * PAGE, MOVE_FIXED, new_addr)
    if not seal:
        assert got == new_addr


@SEAL
def test_seal_mremap_move_fixed(s, seal):
    # mseal_test.c: test_seal_mremap_move_fixed (sealed destination)
    ptr = s.map(4 * PAGE)
    new_addr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(new_addr, 4 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mremap, ptr, 4 * PAGE, 4 * PAGE, MOVE_FIXED, new_addr)
    if not seal:
        assert got == new_addr


@SEAL
def test_seal_mremap_move_fixed_zero(s, seal):
    # mseal_test.c: test_seal_mremap_move_fixed_zero: MREMAP_FIXED to address 0
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mremap, ptr, 4 * PAGE, 2 * PAGE, MOVE_FIXED, 0)
    if not seal:
        assert got == 0
        assert vma_size_at(s.p, 0) == (2 * PAGE, "r--")


@SEAL
def test_seal_mremap_move_dontunmap(s, seal):
    # mseal_test.c: test_seal_mremap_move_dontunmap (the kernel picks the address)
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mremap, ptr, 4 * PAGE, 4 * PAGE, MOVE_DONTUNMAP, 0)
    if not seal:
        assert got != ptr
        assert vma_size_at(s.p, got) == (4 * PAGE, "r--")


@SEAL
def test_seal_mremap_move_dontunmap_anyaddr(s, seal):
    # mseal_test.c: test_seal_mremap_move_dontunmap_anyaddr: new_addr is a free
    # address used as a hint, and the kernel takes it.
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    ptr2 = s.map(4 * PAGE)
    s.p.munmap(ptr2, 4 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mremap, ptr, 4 * PAGE, 4 * PAGE, MOVE_DONTUNMAP, ptr2)
    if not seal:
        assert got == ptr2


# --------------------------------------------------------------------------- mmap over a seal

@SEAL
def test_seal_mmap_overwrite_prot(s, seal):
    # mseal_test.c: test_seal_mmap_overwrite_prot
    ptr = s.map(PAGE)
    if seal:
        s.p.mseal(ptr, PAGE)
    got = expect(seal, errno.EPERM, s.p.mmap, ptr, PAGE, vmsim.PROT_NONE, ANON | vmsim.MAP_FIXED)
    if not seal:
        assert got == ptr
    assert vma_size_at(s.p, ptr) == (PAGE, "r--" if seal else "---")


@SEAL
def test_seal_mmap_expand(s, seal):
    # mseal_test.c: test_seal_mmap_expand
    #   SSSSSSSS.... -> MAP_FIXED over all 12 pages
    ptr = s.map(12 * PAGE)
    s.p.munmap(ptr + 8 * PAGE, 4 * PAGE)
    if seal:
        s.p.mseal(ptr, 8 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mmap, ptr, 12 * PAGE, RO, ANON | vmsim.MAP_FIXED)
    if not seal:
        assert got == ptr


@SEAL
def test_seal_mmap_shrink(s, seal):
    # mseal_test.c: test_seal_mmap_shrink: MAP_FIXED over the first 8 of 12 sealed pages
    ptr = s.map(12 * PAGE)
    if seal:
        s.p.mseal(ptr, 12 * PAGE)
    got = expect(seal, errno.EPERM, s.p.mmap, ptr, 8 * PAGE, RO, ANON | vmsim.MAP_FIXED)
    if not seal:
        assert got == ptr


# --------------------------------------------------------------------------- madvise

@SEAL
def test_seal_madvise_nodiscard(s, seal):
    # mseal_test.c: test_seal_madvise_nodiscard: MADV_RANDOM does not discard,
    # so it is allowed on a sealed VMA.
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    assert s.p.madvise(ptr, 4 * PAGE, vmsim.MADV_RANDOM) == 0
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)


@SEAL
def test_seal_discard_ro_anon(s, seal):
    # mseal_test.c: test_seal_discard_ro_anon
    ptr = s.map(4 * PAGE)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    expect(seal, errno.EPERM, s.p.madvise, ptr, 4 * PAGE, vmsim.MADV_DONTNEED)
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)


@SEAL
def test_seal_discard_across_vmas(s, seal):
    # mseal_test.c: test_seal_discard_across_vmas
    #   RS
    ptr = s.map(2 * PAGE)
    if seal:
        s.p.mseal(ptr + PAGE, PAGE)
    expect(seal, errno.EPERM, s.p.madvise, ptr, 2 * PAGE, vmsim.MADV_DONTNEED)
    expect(seal, errno.EPERM, s.p.munmap, ptr, 2 * PAGE)


@SEAL
def test_seal_discard_across_vmas_partial_effect(s, seal):
    # Not in mseal_test.c: test_seal_discard_across_vmas with content in the
    # first page.  Observed on 6.18.44: madvise() works VMA by VMA, so the
    # unsealed first VMA is discarded before the sealed one fails the call.
    #   [q][S]  -> MADV_DONTNEED over both -> [0][S], EPERM
    ptr = s.map_rw(2 * PAGE)
    s.p.write(ptr, b"q")
    s.p.mprotect(ptr, 2 * PAGE, RO)
    if seal:
        s.p.mseal(ptr + PAGE, PAGE)
    expect(seal, errno.EPERM, s.p.madvise, ptr, 2 * PAGE, vmsim.MADV_DONTNEED)
    assert s.p.read(ptr, 1) == b"\0"


@SEAL
def test_seal_discard_ro_anon_on_rw(s, seal):
    # mseal_test.c: test_seal_discard_ro_anon_on_rw: writable memory may be
    # discarded even when sealed.
    ptr = s.map_rw(4 * PAGE)
    s.p.write(ptr, b"data")
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    assert s.p.madvise(ptr, 4 * PAGE, vmsim.MADV_DONTNEED) == 0
    assert s.p.read(ptr, 4) == b"\0\0\0\0"           # private anon: zero-fill again
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)


@SEAL
def test_seal_discard_ro_anon_on_shared(s, seal):
    # mseal_test.c: test_seal_discard_ro_anon_on_shared
    ptr = s.map(4 * PAGE, flags=vmsim.MAP_SHARED | vmsim.MAP_ANONYMOUS)
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    assert s.p.madvise(ptr, 4 * PAGE, vmsim.MADV_DONTNEED) == 0
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)


@SEAL
def test_seal_discard_ro_anon_on_filebacked(s, seal):
    # mseal_test.c: test_seal_discard_ro_anon_on_filebacked.  The selftest uses
    # memfd_create + fallocate; a 4-page tmpfs file is the same shmem object.
    path = "/dev/shm/vmsim-mseal-filebacked"
    s.kernel.fs.create(path, b"\0" * 4 * PAGE)
    fd = s.p.open(path, vmsim.O_RDWR)
    ptr = s.next_addr()
    assert s.p.mmap(ptr, 4 * PAGE, RO, vmsim.MAP_PRIVATE | vmsim.MAP_FIXED, fd, 0) == ptr
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    assert s.p.madvise(ptr, 4 * PAGE, vmsim.MADV_DONTNEED) == 0
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)
    s.p.close(fd)
    s.kernel.fs.unlink(path)


@SEAL
def test_seal_discard_ro_anon_on_pkey(s, seal):
    # mseal_test.c: test_seal_discard_ro_anon_on_pkey.  Discarding sealed
    # anonymous memory is refused when PKRU denies writes to its pkey.
    # (Not verifiable on a CPU without PKU; the selftest skips there too.)
    ptr = s.map_rw(4 * PAGE)
    try:
        pkey = s.p.pkey_alloc(0, 0)
    except OSError as exc:
        assert exc.errno == errno.EINVAL
        pytest.skip("no protection keys")
    assert pkey > 0
    assert s.p.pkey_mprotect(ptr, 4 * PAGE, RW, pkey) == 0
    if seal:
        s.p.mseal(ptr, 4 * PAGE)
    shift = 2 * pkey
    s.p.pkru = s.p.pkru & ~(3 << shift)                          # unrestricted
    assert s.p.madvise(ptr, 4 * PAGE, vmsim.MADV_DONTNEED) == 0
    s.p.pkru = (s.p.pkru & ~(3 << shift)) | (PKEY_DISABLE_WRITE << shift)
    expect(seal, errno.EPERM, s.p.madvise, ptr, 4 * PAGE, vmsim.MADV_DONTNEED)
    expect(seal, errno.EPERM, s.p.munmap, ptr, 4 * PAGE)


# --------------------------------------------------------------------------- split and merge

def test_seal_merge_and_split(s):
    # mseal_test.c: test_seal_merge_and_split.  Sealing splits and merges like
    # mprotect: N = PROT_NONE, R = read-only, S = read-only and sealed.
    p = s.p
    ptr = s.map(24 * PAGE)

    def at(page_no):
        return vma_size_at(p, ptr + page_no * PAGE)

    # N RRRRRRRRRRRRRRRRRRRRRR N
    p.mprotect(ptr, PAGE, vmsim.PROT_NONE)
    p.mprotect(ptr + 23 * PAGE, PAGE, vmsim.PROT_NONE)
    assert at(1) == (22 * PAGE, "r--")
    # N S RRRRRRRRRRRRRRRRRRRRR N        split from the beginning
    p.mseal(ptr + PAGE, PAGE)
    assert at(1) == (PAGE, "r--")
    assert at(2) == (21 * PAGE, "r--")
    # N S RRRRRRRRRRRRRRRRRRRR S N       split from the end
    p.mseal(ptr + 22 * PAGE, PAGE)
    assert at(22) == (PAGE, "r--")
    assert at(2) == (20 * PAGE, "r--")
    # N SS RRRRRRRRRRRRRRRRRRR S N       merge with prev
    p.mseal(ptr + 2 * PAGE, PAGE)
    assert at(1) == (2 * PAGE, "r--")
    # N SS RRRRRRRRRRRRRRRRRR SS N       merge with next
    p.mseal(ptr + 21 * PAGE, PAGE)
    assert at(21) == (2 * PAGE, "r--")
    # N SSS RRRRRRRRRRRRRRRRR SS N       split and merge with prev
    p.mseal(ptr + 2 * PAGE, 2 * PAGE)
    assert at(1) == (3 * PAGE, "r--")
    fails(errno.EPERM, p.munmap, ptr + PAGE, PAGE)
    fails(errno.EPERM, p.mprotect, ptr + 2 * PAGE, PAGE, vmsim.PROT_NONE)
    # N SSS RRRRRRRRRRRRRRRR SSS N       split and merge with next
    p.mseal(ptr + 20 * PAGE, 2 * PAGE)
    assert at(20) == (3 * PAGE, "r--")
    # N SSSSSSSSSSSSSSSSSSSSSS N         merge prev, middle and next
    p.mseal(ptr + 2 * PAGE, 20 * PAGE)
    assert at(1) == (22 * PAGE, "r--")
