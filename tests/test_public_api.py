"""The surface outside tools rely on (docs/api.md), held across restructurings.

Iterating `p.mm.tree` gives the VMAs in address order with `start`, `end`, `flags`,
`pages`, `file`, `vm_ops`, `pgoff`; `p.mm.validate()`; `k.committed`; a File's `refs`;
`k.fs.add_device(path, fops)`; `vmsim.VmOperations`, `vmsim.FileOperations`,
`vmsim.HookContractError`; `p.files`.
"""

from __future__ import annotations

import errno

import pytest

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    O_RDWR,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)

RW = PROT_READ | PROT_WRITE


class CountingOps(vmsim.VmOperations):
    """A driver's vm_operations: counts the VMAs that refer to it."""

    def __init__(self) -> None:
        self.live = 0

    def open(self, vma: vmsim.Vma) -> None:
        self.live += 1

    def close(self, vma: vmsim.Vma) -> None:
        self.live -= 1


class CountingDevice(vmsim.FileOperations):
    def __init__(self) -> None:
        self.vm_ops = CountingOps()

    def mmap(self, file: vmsim.File, vma: vmsim.Vma) -> None:
        vma.vm_ops = self.vm_ops
        self.vm_ops.live += 1


def test_tree_iterates_vmas_in_address_order_with_their_fields():
    k = vmsim.Kernel()
    p = k.spawn()
    a = p.mmap(0, 3 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
    p.write(a, b"x")
    vmas = list(p.mm.tree)
    assert [(v.start, v.end) for v in vmas] == [
        (a, a + PAGE_SIZE), (a + PAGE_SIZE, a + 2 * PAGE_SIZE), (a + 2 * PAGE_SIZE, a + 3 * PAGE_SIZE)]
    assert [v.flags & (VM_READ | VM_WRITE) for v in vmas] == [VM_READ | VM_WRITE, VM_READ,
                                                               VM_READ | VM_WRITE]
    assert [v.pages for v in vmas] == [1, 1, 1]
    assert all(v.file is None and v.vm_ops is None for v in vmas)
    assert [v.pgoff for v in vmas] == [a >> 12, (a >> 12) + 1, (a >> 12) + 2]
    p.mm.validate()


def test_committed_files_refs_and_a_device_through_the_public_hooks():
    k = vmsim.Kernel()
    dev = CountingDevice()
    k.fs.add_device("/dev/counting", dev)
    p = k.spawn()
    before = k.committed
    a = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    assert k.committed == before + 2                  # pages of private writable memory
    fd = p.open("/dev/counting", O_RDWR)
    f = p.files[fd]
    assert isinstance(f, vmsim.File) and f.refs == 1
    d = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, fd, 0)
    assert f.refs == 2 and dev.vm_ops.live == 1
    p.munmap(d, PAGE_SIZE)                            # a split: ->open for the new half, ->close
    assert dev.vm_ops.live == 1 and f.refs == 2
    p.close(fd)
    assert fd not in p.files and f.refs == 1
    p.munmap(a, 2 * PAGE_SIZE)
    assert k.committed == before
    vma = next(v for v in p.mm.tree if v.file is f)
    assert vma.flags & VM_SHARED
    p.mm.validate()
    p.exit()
    assert f.refs == 0 and dev.vm_ops.live == 0 and k.committed == before


def test_a_hook_that_changes_its_vma_is_a_contract_error():
    class Meddling(vmsim.VmOperations):
        def mprotect(self, vma: vmsim.Vma, start: int, end: int, newflags: int) -> None:
            vma.flags |= VM_WRITE

    class MeddlingDevice(vmsim.FileOperations):
        def mmap(self, file: vmsim.File, vma: vmsim.Vma) -> None:
            vma.vm_ops = Meddling()

    k = vmsim.Kernel()
    k.fs.add_device("/dev/meddling", MeddlingDevice())
    p = k.spawn()
    fd = p.open("/dev/meddling", O_RDWR)
    a = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0)
    maps = p.maps()
    with pytest.raises(vmsim.HookContractError):
        p.mprotect(a, PAGE_SIZE, PROT_READ)
    assert p.maps() == maps                           # the change did not stay
    p.mm.validate()
    with pytest.raises(OSError) as e:
        p.mprotect(a, PAGE_SIZE, 0x1000)              # not a PROT_* bit
    assert e.value.errno == errno.EINVAL
