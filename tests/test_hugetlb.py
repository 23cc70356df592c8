"""Anonymous MAP_HUGETLB with an empty huge page pool, as observed on the 6.18.44
reference machine (vm.nr_hugepages = 0; probe in the module's tests):

    mmap(MAP_HUGETLB)                  -> ENOMEM (hugetlb_reserve_pages fails)
    mmap(MAP_HUGETLB|MAP_NORESERVE)    -> a 2 MiB-aligned, 2 MiB-rounded VMA,
                                          "/anon_hugepage (deleted)", VmFlags de nr ht
    MAP_HUGE_1GB                       -> the same with 1 GiB pages
    munmap/mprotect not huge-aligned   -> EINVAL (hugetlb_vm_op_split)
    mremap growing                     -> EINVAL; any access -> SIGBUS
"""

import errno

import pytest

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_HUGETLB,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
)

RW = PROT_READ | PROT_WRITE
HUGE = MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE
W = 0x7E0000000000


def test_anon_hugetlb_noreserve_vma():
    p = vmsim.Kernel(pkeys=False).spawn()
    a = p.mmap(0, 4096, RW, MAP_PRIVATE | HUGE)
    s = p.mmap(0, 4096, RW, MAP_SHARED | HUGE)
    assert a % (2 << 20) == 0 and s % (2 << 20) == 0
    lines = p.maps().splitlines()
    assert all(line.endswith("/anon_hugepage (deleted)") for line in lines[:2])
    assert [(v.end - v.start, v.perms, v.vmflags) for v in p.vmas()] == [
        (2 << 20, "rw-s", ["rd", "wr", "sh", "mr", "mw", "me", "ms", "de", "nr", "ht"]),
        (2 << 20, "rw-p", ["rd", "wr", "mr", "mw", "me", "de", "nr", "ht"])]
    assert "KernelPageSize:     2048 kB" in p.smaps()
    p.mm.validate()


def test_hugetlb_splits_only_at_huge_boundaries():
    p = vmsim.Kernel(pkeys=False).spawn()
    a = p.mmap(0, 4096, RW, MAP_PRIVATE | HUGE)
    for call in (lambda: p.munmap(a + PAGE_SIZE, PAGE_SIZE),
                 lambda: p.mprotect(a, PAGE_SIZE, PROT_READ),
                 lambda: p.mremap(a, 2 << 20, 4 << 20, MREMAP_MAYMOVE),
                 lambda: p.mmap(W + PAGE_SIZE, PAGE_SIZE, RW, MAP_PRIVATE | HUGE | MAP_FIXED)):
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == errno.EINVAL
    p.mprotect(a, 2 << 20, PROT_READ)
    assert p.vmas()[0].perms == "r--p"


def test_hugetlb_hint_rounds_up_and_1gb_pages():
    p = vmsim.Kernel(pkeys=False).spawn()
    assert p.mmap(W + PAGE_SIZE, 4096, RW, MAP_PRIVATE | HUGE) == W + (2 << 20)
    g = p.mmap(0, 4096, RW, MAP_PRIVATE | HUGE | (30 << 26))
    assert g % (1 << 30) == 0
    assert "KernelPageSize:  1048576 kB" in p.smaps()


def test_hugetlb_without_noreserve_and_access():
    p = vmsim.Kernel(pkeys=False).spawn()
    with pytest.raises(OSError) as err:
        p.mmap(0, 4096, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB)
    assert err.value.errno == errno.ENOMEM
    a = p.mmap(0, 4096, RW, MAP_PRIVATE | HUGE)
    with pytest.raises(vmsim.Fault) as fault:
        p.read(a, 1)
    assert (fault.value.signal, fault.value.code) == ("SIGBUS", "BUS_ADRERR")
    with pytest.raises(OSError) as err:
        p.mlock(a, 2 << 20)
    assert err.value.errno == errno.ENOMEM
