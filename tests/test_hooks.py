"""The driver hooks: where the core calls vm_operations_struct and file_operations
members, and the contracts it holds them to.

A toy character device (/dev/toy) records every hook call. The expectations come
from Linux 6.18: mm/mprotect.c do_mprotect_pkey() (the ->mprotect call site, spec
§1.1-1.2), mm/vma.c (__split_vma calls ->may_split then ->open on the new part;
->close on removal; a VMA with ->close is never deleted by a merge), mm/mremap.c
(->may_split at both cut points, ->mremap after the page tables moved, undone on
error), mm/vma.c __mmap_new_file_vma() (a failing ->mmap leaves the MAP_FIXED range
unmapped) and fs/file_table.c (->release on the last fput).
"""

import errno

import pytest

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_RDWR,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    VM_DONTDUMP,
    VM_DONTEXPAND,
    VM_IO,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
)
from vmsim.mm.page_alloc import alloc_page

P = PAGE_SIZE
W = 0x7E0000000000          # the window the tests map into
RW = PROT_READ | PROT_WRITE


class ToyOps(vmsim.VmOperations):
    """Records every call; refuses what the test tells it to."""

    def __init__(self, log, refuse=None, special=True):
        self.log = log
        self.refuse = refuse or {}      # hook name -> errno
        self.pages = {}

    def _maybe_refuse(self, name):
        if name in self.refuse:
            raise OSError(self.refuse[name], "refused by the toy driver")

    def open(self, vma):
        self.log.append(("open", vma.start, vma.end))

    def close(self, vma):
        self.log.append(("close", vma.start, vma.end))

    def may_split(self, vma, addr):
        self.log.append(("may_split", vma.start, vma.end, addr))
        self._maybe_refuse("may_split")

    def mremap(self, vma):
        self.log.append(("mremap", vma.start, vma.end))
        self._maybe_refuse("mremap")

    def mprotect(self, vma, start, end, newflags):
        self.log.append(("mprotect", start, end, newflags))
        self._maybe_refuse("mprotect")

    def fault(self, vma, addr, write):
        self.log.append(("fault", addr, write))
        self._maybe_refuse("fault")
        return self.pages.setdefault(vma.pgoff_at(addr), alloc_page())

    def name(self, vma):
        return "[toy]"


class ToyDevice(vmsim.FileOperations):
    """A device whose ->mmap installs ToyOps; special=True adds VM_IO|VM_DONTEXPAND
    like drivers of device memory (so its VMAs never merge). No VM_PFNMAP: its
    ->fault hands out pages rather than inserting PFNs."""

    def __init__(self, log, special=True, refuse=None):
        self.log = log
        self.special = special
        self.refuse = refuse or {}
        self.ops = ToyOps(log, self.refuse)

    def mmap(self, file, vma):
        self.log.append(("mmap", vma.start, vma.end))
        if "mmap" in self.refuse:
            raise OSError(self.refuse["mmap"], "refused")
        vma.vm_ops = self.ops
        if self.special:
            vma.flags |= VM_IO | VM_DONTEXPAND | VM_DONTDUMP

    def unlocked_ioctl(self, task, file, cmd, arg):
        self.log.append(("ioctl", cmd, arg))
        return 7

    def release(self, file):
        self.log.append(("release",))


def toy(special=True, refuse=None):
    k = vmsim.Kernel(pkeys=False)
    log = []
    dev = ToyDevice(log, special, refuse)
    k.fs.add_device("/dev/toy", dev)
    p = k.spawn()
    fd = p.open("/dev/toy", O_RDWR)
    return p, fd, log, dev


def mmap_toy(p, fd, page, npages, prot=RW, off=0):
    return p.mmap(W + page * P, npages * P, prot, MAP_SHARED | MAP_FIXED, fd, off)


def calls(log, name):
    return [c[1:] for c in log if c[0] == name]


def layout(p):
    return [((v.start - W) // P, (v.end - W) // P, v.perms) for v in p.vmas()]


# --- ->mprotect ---------------------------------------------------------------------

def test_mprotect_hook_called_per_vma_in_order_with_clipped_range_and_full_flags():
    #   0123
    #   AABB     two toy VMAs (VM_SPECIAL: never merged); mprotect pages 1..2
    p, fd, log, _ = toy()
    mmap_toy(p, fd, 0, 2)
    mmap_toy(p, fd, 2, 2, off=2 * P)
    log.clear()
    p.mprotect(W + P, 2 * P, PROT_READ)
    base = VM_READ | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_SHARED | VM_MAYSHARE | \
        VM_IO | VM_DONTEXPAND | VM_DONTDUMP
    assert calls(log, "mprotect") == [(W + P, W + 2 * P, base), (W + 2 * P, W + 3 * P, base)]
    # the hook ran before the fixup, which then split each VMA (->may_split, ->open)
    assert layout(p) == [(0, 1, "rw-s"), (1, 2, "r--s"), (2, 3, "r--s"), (3, 4, "rw-s")]
    assert [c[0] for c in log] == ["mprotect", "may_split", "open",
                                   "mprotect", "may_split", "open"]
    p.mm.validate()


def test_mprotect_hook_called_even_when_nothing_changes():
    p, fd, log, _ = toy()
    mmap_toy(p, fd, 0, 2)
    log.clear()
    p.mprotect(W, 2 * P, RW)
    assert len(calls(log, "mprotect")) == 1
    assert layout(p) == [(0, 2, "rw-s")]


def test_mprotect_hook_runs_after_the_vm_may_checks():
    # PROT_EXEC on a MAP_SHARED mapping of an fd opened O_RDWR is allowed, but a
    # read-only fd clears VM_MAYWRITE: PROT_WRITE is EACCES before the hook.
    k = vmsim.Kernel(pkeys=False)
    log = []
    k.fs.add_device("/dev/toy", ToyDevice(log))
    p = k.spawn()
    fd = p.open("/dev/toy", vmsim.O_RDONLY)
    p.mmap(W, P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)
    log.clear()
    with pytest.raises(PermissionError):
        p.mprotect(W, P, RW)
    assert calls(log, "mprotect") == []


def test_mprotect_hook_runs_after_mdwe():
    p, fd, log, _ = toy()
    mmap_toy(p, fd, 0, 1, prot=PROT_READ)
    p.prctl(vmsim.PR_SET_MDWE, vmsim.PR_MDWE_REFUSE_EXEC_GAIN)
    log.clear()
    with pytest.raises(PermissionError):
        p.mprotect(W, P, PROT_READ | PROT_EXEC)
    assert calls(log, "mprotect") == []


def test_mprotect_hook_refusal_stops_the_loop_after_earlier_vmas_changed():
    #   0123
    #   aaTT    anonymous VMA then a toy VMA whose hook refuses
    p, fd, log, dev = toy(refuse={"mprotect": errno.EACCES})
    p.mmap(W, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    mmap_toy(p, fd, 2, 2)
    with pytest.raises(PermissionError):
        p.mprotect(W, 4 * P, PROT_READ)
    assert layout(p) == [(0, 2, "r--p"), (2, 4, "rw-s")]
    p.mm.validate()


def test_mprotect_hook_consulted_before_the_seal_check():
    p, fd, log, _ = toy()
    mmap_toy(p, fd, 0, 1)
    p.mseal(W, P)
    log.clear()
    with pytest.raises(PermissionError) as err:
        p.mprotect(W, P, PROT_READ)
    assert err.value.errno == errno.EPERM
    assert len(calls(log, "mprotect")) == 1


def test_mprotect_hook_that_modifies_the_vma_breaks_the_contract():
    p, fd, log, dev = toy()
    mmap_toy(p, fd, 0, 1)

    def meddling(vma, start, end, newflags):
        vma.flags = newflags                # doing the core's job: not allowed
    dev.ops.mprotect = meddling
    with pytest.raises(vmsim.HookContractError):
        p.mprotect(W, P, PROT_READ)


# --- split, open, close, merge --------------------------------------------------------

def test_may_split_refusal_fails_munmap_and_mprotect_without_change():
    p, fd, log, _ = toy(refuse={"may_split": errno.EINVAL})
    mmap_toy(p, fd, 0, 3)
    with pytest.raises(OSError) as err:
        p.munmap(W + P, P)
    assert err.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        p.mprotect(W + P, P, PROT_READ)
    assert layout(p) == [(0, 3, "rw-s")]
    # the whole VMA needs no split: fine
    p.mprotect(W, 3 * P, PROT_READ)
    assert layout(p) == [(0, 3, "r--s")]
    p.mm.validate()


def test_close_called_for_every_unmapped_vma_and_open_for_split_halves():
    p, fd, log, _ = toy()
    mmap_toy(p, fd, 0, 4)
    log.clear()
    p.munmap(W + P, P)          # head split leaves [0,1); tail split leaves [2,4)
    assert calls(log, "open") == [(W, W + P), (W + 2 * P, W + 4 * P)]
    assert calls(log, "close") == [(W + P, W + 2 * P)]
    log.clear()
    p.munmap(W, 4 * P)
    assert calls(log, "close") == [(W, W + P), (W + 2 * P, W + 4 * P)]


def test_vma_with_close_is_not_deleted_by_a_merge():
    # A non-special toy mapping (no VM_IO) has ->close: restoring the protection of
    # its whole middle VMA may not delete it, so three VMAs remain (mm/vma.c
    # can_merge_remove_vma()).
    p, fd, log, _ = toy(special=False)
    mmap_toy(p, fd, 0, 3)
    p.mprotect(W + P, P, PROT_READ)
    p.mprotect(W + P, P, RW)
    assert layout(p) == [(0, 1, "rw-s"), (1, 2, "rw-s"), (2, 3, "rw-s")]
    p.mm.validate()


# --- mremap ------------------------------------------------------------------------------

def test_mremap_hook_refusal_moves_back_and_unmaps_the_new_range():
    p, fd, log, _ = toy(special=False, refuse={"mremap": errno.EPERM})
    mmap_toy(p, fd, 0, 2)
    p.write(W, b"kept")
    with pytest.raises(PermissionError):
        p.mremap(W, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, W + 10 * P)
    assert layout(p) == [(0, 2, "rw-s")]
    assert p.read(W, 4) == b"kept"
    assert calls(log, "mremap") == [(W + 10 * P, W + 12 * P)]
    p.mm.validate()


def test_mremap_asks_may_split_at_both_cut_points():
    p, fd, log, _ = toy(special=False)
    mmap_toy(p, fd, 0, 4)
    log.clear()
    p.mremap(W + P, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, W + 10 * P)
    assert calls(log, "may_split")[:2] == [(W, W + 4 * P, W + P), (W, W + 4 * P, W + 2 * P)]


# --- fault, name, mmap, ioctl, release ------------------------------------------------

def test_fault_hook_supplies_pages_and_its_refusal_is_sigbus():
    p, fd, log, dev = toy()
    mmap_toy(p, fd, 0, 2)
    p.write(W + 5, b"dev")
    assert dev.ops.pages[0][5:8] == b"dev"
    assert p.read(W + 5, 3) == b"dev"
    dev.ops.refuse["fault"] = errno.EFAULT

    def sigbus(vma, addr, write):
        raise vmsim.Fault("SIGBUS", "BUS_ADRERR", addr)
    dev.ops.fault = sigbus
    with pytest.raises(vmsim.Fault) as f:
        p.read(W + P, 1)
    assert (f.value.signal, f.value.code, f.value.addr) == ("SIGBUS", "BUS_ADRERR", W + P)


def test_maps_prints_the_file_path_for_a_device_mapping():
    p, fd, log, _ = toy()
    mmap_toy(p, fd, 0, 1)
    line = p.maps().splitlines()[0]
    assert line.endswith(" /dev/toy") and line.index("/dev/toy") == 73
    assert line.split()[1] == "rw-s"


def test_failing_driver_mmap_leaves_the_fixed_range_unmapped():
    p, fd, log, dev = toy(refuse={"mmap": errno.EACCES})
    p.mmap(W, 3 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    with pytest.raises(PermissionError):
        mmap_toy(p, fd, 1, 1)
    assert layout(p) == [(0, 1, "rw-p"), (2, 3, "rw-p")]
    p.mm.validate()


def test_ioctl_dispatch_and_enotty():
    p, fd, log, _ = toy()
    assert p.ioctl(fd, 0xA400, 0x1234) == 7
    assert calls(log, "ioctl") == [(0xA400, 0x1234)]
    zfd = p.open("/dev/zero", O_RDWR)
    with pytest.raises(OSError) as err:
        p.ioctl(zfd, 0xA400, 0)
    assert err.value.errno == errno.ENOTTY


def test_release_runs_when_the_last_reference_goes():
    p, fd, log, _ = toy()
    mmap_toy(p, fd, 0, 2)
    p.close(fd)
    assert calls(log, "release") == []      # the VMA still holds the file
    p.munmap(W, P)
    assert calls(log, "release") == []      # so does the other half
    p.munmap(W + P, P)
    assert calls(log, "release") == [()]
