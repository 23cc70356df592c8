"""The two designs of the ->mprotect hook (Kernel(mprotect_hook=...)).

v40 (the SGX series as posted, LKML 2020): the hook got `pprev` and replaced the core's
call to mprotect_fixup(), so every driver had to do the VMA surgery itself. Review (Mel
Gorman, 2020-11-06) cut it down to a pure check that receives (vma, start, end,
newflags), must not modify the VMA, and leaves mprotect_fixup() to the core: the design
merged in 5.11. These tests show why, on the same driver code paths.
"""

import errno

import pytest

import vmsim
from vmsim import MAP_FIXED, MAP_SHARED, O_RDWR, PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE
from vmsim.mm.page_alloc import alloc_page

P = PAGE_SIZE
W = 0x7E0000000000


class CheckOnly(vmsim.VmOperations):
    """A driver that only checks permissions in its hook (correct for 5.11+)."""

    def __init__(self):
        self.page = alloc_page()

    def mprotect(self, vma, *args):
        if len(args) == 4:          # v40 signature: (pprev, start, end, newflags)
            return                  # ...forgets to call mprotect_fixup()

    def fault(self, vma, addr, write):
        return self.page


class Meddling(vmsim.VmOperations):
    """A driver that does the fixup's work itself (what v40 required)."""

    def mprotect(self, vma, start, end, newflags):
        vma.flags = newflags


class Dev(vmsim.FileOperations):
    def __init__(self, ops):
        self.ops = ops

    def mmap(self, file, vma):
        vma.vm_ops = self.ops


def process(design, ops):
    k = vmsim.Kernel(mprotect_hook=design, pkeys=False)
    k.fs.add_device("/dev/toy", Dev(ops))
    p = k.spawn()
    fd = p.open("/dev/toy", O_RDWR)
    p.mmap(W, 2 * P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0)
    return p


def perms(p):
    return [v.perms for v in p.vmas()]


def test_v40_driver_that_forgets_the_fixup_succeeds_and_changes_nothing():
    p = process("v40", CheckOnly())
    assert p.mprotect(W, P, PROT_READ) == 0
    assert perms(p) == ["rw-s"]                 # silently unchanged...
    p.write(W, b"x")                            # ...and the page is still writable
    p.mm.validate()


def test_merged_design_does_the_fixup_for_the_same_driver():
    p = process("merged", CheckOnly())
    p.mprotect(W, P, PROT_READ)
    assert perms(p) == ["r--s", "rw-s"]
    with pytest.raises(vmsim.Fault) as fault:
        p.write(W, b"x")
    assert fault.value.code == "SEGV_ACCERR"
    p.mm.validate()


def test_merged_design_refuses_a_hook_that_touches_the_vma():
    p = process("merged", Meddling())
    with pytest.raises(vmsim.HookContractError):
        p.mprotect(W, P, PROT_READ)


def sgx_process(design):
    from vmsim.enclave import loader, signing
    from vmsim.enclave.image import EnclaveImage
    img = EnclaveImage.from_text(
        "size = 0x4000\n"
        "segment tcs  offset=0x0000 pages=1 type=TCS ossa=0x3000 oentry=0x1000\n"
        "segment text offset=0x1000 pages=1 perms=RX\n"
        "segment data offset=0x2000 pages=1 perms=RW\n"
        "segment ssa  offset=0x3000 pages=1 perms=RW\n")
    p = vmsim.Kernel(mprotect_hook=design).spawn()
    return p, loader.kselftest_load(p, img, signing.generate_key())


@pytest.mark.parametrize("design", ["merged", "v40"])
def test_sgx_intent_is_enforced_by_both_designs(design):
    p, e = sgx_process(design)
    text = e.base + 0x1000
    with pytest.raises(PermissionError):
        p.mprotect(text, P, PROT_READ | PROT_WRITE | PROT_EXEC)
    p.mprotect(text, P, PROT_READ)
    assert [v.perms for v in p.vmas() if v.start == text] == ["r--s"]
    with pytest.raises(OSError) as err:
        p.mprotect(e.base + 0x2000, P, PROT_READ | PROT_EXEC)
    assert err.value.errno == errno.EACCES
    p.mm.validate()
