"""The enclave and its VMA hooks: arch/x86/kernel/cpu/sgx/encl.c.

Every enclave page carries the permissions its creator declared when adding it
(`vm_max_prot_bits`, the *intent*). The driver holds every mapping to it: on mmap
(`sgx_mmap` -> `may_map`), on mprotect (the `->mprotect` hook -> `may_map`) and on fault
(`->fault`: the whole VMA's R/W/X must be within the page's intent, else SIGBUS).
The intents are kept as runs of equal permissions, so a check costs O(log n + runs).

The enclave also holds Version Array pages (encl->va_pages): one from ECREATE on, and
one more for every SGX_VA_SLOT_COUNT pages it grows by (sgx_encl_grow()), each an EPC
page of its own until the enclave is released.
"""

from __future__ import annotations

from sortedcontainers import SortedDict  # type: ignore[import-untyped]  # ships no types

from ...arch.x86.sgx import cpu as arch
from ...arch.x86.sgx.defs import (
    SGX_PAGE_TYPE_REG,
    SGX_PAGE_TYPE_TCS,
    SGX_PAGE_TYPE_VA,
    SGX_SECINFO_R,
    SGX_SECINFO_W,
    SGX_SECINFO_X,
)
from ...errors import EACCES, EFAULT, EIO, ENOMEM, Fault, kerr
from ...mm.fault import vmf_insert_pfn, zap_vma_ptes
from ...mm.flags import VM_ACCESS_FLAGS, VM_EXEC, VM_READ, VM_WRITE
from ...mm.mm_struct import MmStruct
from ...mm.mprotect import mprotect_fixup
from ...mm.vma import Vma, VmOperations
from ...uapi import BUS_ADRERR, PAGE_SHIFT, PAGE_SIZE, READ_IMPLIES_EXEC, SIGBUS

#: slots of a Version Array page, so enclave pages one VA page serves (encl.h)
SGX_VA_SLOT_COUNT = 512


class IntentRuns:
    """vm_max_prot_bits of the present pages, as maximal runs of equal permissions.

    runs: start page number -> (end page number, prot); runs never overlap, and two
    adjacent runs never have the same prot. Holes (no page) carry no run.
    """

    def __init__(self):
        self.runs = SortedDict()

    def _run_at(self, pfn: int) -> tuple[int, int, int] | None:
        i = self.runs.bisect_right(pfn) - 1
        if i < 0:
            return None
        start = self.runs.keys()[i]
        end, prot = self.runs[start]
        return (start, end, prot) if pfn < end else None

    def get(self, pfn: int) -> int | None:
        run = self._run_at(pfn)
        return None if run is None else run[2]

    def set(self, pfn: int, prot: int | None) -> None:
        """Give page pfn the intent prot (None: the page is gone). O(log n)."""
        run = self._run_at(pfn)
        if run is not None:
            start, end, old = run
            if old == prot:
                return
            del self.runs[start]
            if start < pfn:
                self.runs[start] = (pfn, old)
            if pfn + 1 < end:
                self.runs[pfn + 1] = (end, old)
        if prot is None:
            return
        start, end = pfn, pfn + 1
        left = self._run_at(pfn - 1)
        if left is not None and left[2] == prot:
            start = left[0]
            del self.runs[left[0]]
        right = self.runs.get(pfn + 1)
        if right is not None and right[1] == prot:
            end = right[0]
            del self.runs[pfn + 1]
        self.runs[start] = (end, prot)

    def exceeds(self, first: int, last: int, prot: int) -> bool:
        """Does any present page in [first, last] allow less than prot? O(log n + k)."""
        i = max(self.runs.bisect_right(first) - 1, 0)
        keys = self.runs.keys()
        while i < len(keys):
            start = keys[i]
            if start > last:
                break
            end, allowed = self.runs[start]
            if end > first and prot & ~allowed:
                return True
            i += 1
        return False


def secinfo_to_vm_prot(secinfo_flags: int) -> int:
    """sgx_encl_page_alloc(): SECINFO R/W/X -> VM_READ/VM_WRITE/VM_EXEC; TCS: RW."""
    if (secinfo_flags >> 8) & 0xFF == SGX_PAGE_TYPE_TCS:
        return VM_READ | VM_WRITE
    return (VM_READ if secinfo_flags & SGX_SECINFO_R else 0) | \
        (VM_WRITE if secinfo_flags & SGX_SECINFO_W else 0) | \
        (VM_EXEC if secinfo_flags & SGX_SECINFO_X else 0)


class EnclPage:
    """struct sgx_encl_page: one page of the enclave (present in page_array)."""

    __slots__ = ("addr", "vm_max_prot_bits", "type", "epc")

    def __init__(self, addr: int, vm_max_prot_bits: int, page_type: int, epc: arch.EpcPage):
        self.addr = addr
        self.vm_max_prot_bits = vm_max_prot_bits
        self.type = page_type
        self.epc = epc


class Encl:
    """struct sgx_encl: one per open of /dev/sgx_enclave.

    Invariants: `pages` (the page_array, by page number) and `intent` agree;
    every page's EPC page is valid, owned by `secs` and at the page's address;
    `page_cnt` counts the SECS and the pages, and `va_pages` (valid PT_VA pages) has
    at least one VA page per SGX_VA_SLOT_COUNT of them (REMOVE_PAGES frees none);
    `refs` counts the open file plus each mm in `mm_list`.
    """

    def __init__(self, cpu: arch.SgxCpu):
        self.cpu = cpu
        self.created = False
        self.initialized = False
        self.debug = False
        self.busy = False           # SGX_ENCL_IOCTL
        self.base = 0
        self.size = 0
        self.attributes = 0
        self.attributes_mask = 0
        self.secs: arch.EpcPage | None = None
        self.pages: dict[int, EnclPage] = {}
        self.intent = IntentRuns()
        self.page_cnt = 0
        self.va_pages: list[arch.EpcPage] = []
        self.mm_list: set[MmStruct] = set()
        self.refs = 1

    # --- page_array ---
    def insert_page(self, page: EnclPage) -> None:
        self.pages[page.addr >> PAGE_SHIFT] = page
        self.intent.set(page.addr >> PAGE_SHIFT, page.vm_max_prot_bits)

    def set_max_prot(self, page: EnclPage, prot: int) -> None:
        page.vm_max_prot_bits = prot
        self.intent.set(page.addr >> PAGE_SHIFT, prot)

    def erase_page(self, page: EnclPage) -> None:
        del self.pages[page.addr >> PAGE_SHIFT]
        self.intent.set(page.addr >> PAGE_SHIFT, None)

    def free_epc_page(self, epc: arch.EpcPage) -> None:
        """sgx_encl_free_epc_page(): EREMOVE, then back to the EPC."""
        arch.eremove(epc)

    # --- Version Array pages ---
    def grow(self) -> arch.EpcPage | None:
        """sgx_encl_grow() (ioctl.c): account one more page (the SECS at CREATE, an
        EADDed or EAUGed page); when page_cnt is a multiple of SGX_VA_SLOT_COUNT, first
        a new VA page (sgx_alloc_va_page(): EPC page + EPA), returned so that a failure
        further on can give it back. ENOMEM when the EPC has no page for it."""
        va_page = None
        if not self.page_cnt % SGX_VA_SLOT_COUNT:
            va_page = self.cpu.alloc_epc_page()
            if va_page is None:
                raise kerr(ENOMEM)
            arch.epa(va_page)
            self.va_pages.append(va_page)
        self.page_cnt += 1
        return va_page

    def shrink(self, va_page: arch.EpcPage | None) -> None:
        """sgx_encl_shrink(): undo grow(); with va_page None only the count (what
        REMOVE_PAGES does: its VA page stays)."""
        self.page_cnt -= 1
        if va_page is not None:
            self.va_pages.remove(va_page)
            self.free_epc_page(va_page)

    # --- mm_list, lifetime ---
    def mm_add(self, mm: MmStruct) -> None:
        """sgx_encl_mm_add(): the first mapping by an mm takes a reference, and the
        mm's exit (the mmu notifier's release) drops it."""
        if mm in self.mm_list:
            return
        self.mm_list.add(mm)
        self.refs += 1
        mm.exit_notifiers.append(self.mm_release)

    def mm_release(self, mm: MmStruct) -> None:
        if mm in self.mm_list:
            self.mm_list.discard(mm)
            self.put()

    def put(self) -> None:
        """kref_put() -> sgx_encl_release(): the last reference EREMOVEs every page,
        then the SECS, then the VA pages."""
        self.refs -= 1
        if self.refs:
            return
        for page in list(self.pages.values()):
            self.free_epc_page(page.epc)
            self.erase_page(page)
        if self.secs is not None:
            arch.eremove(self.secs)
            self.secs = None
        for va_page in self.va_pages:
            self.free_epc_page(va_page)
        self.va_pages.clear()

    def zap_ptes(self, addr: int) -> None:
        """sgx_zap_enclave_ptes(): drop the PTE of addr in every mm mapping us."""
        for mm in list(self.mm_list):
            vma = mm.tree.find(addr)
            if vma is not None and vma.private_data is self:
                zap_vma_ptes(vma, addr, PAGE_SIZE)

    # --- the intent check ---
    def may_map(self, task, start: int, end: int, vm_flags: int) -> None:
        """sgx_encl_may_map(): EACCES when `refusal` gives a reason."""
        if self.refusal(start, end, vm_flags, task.persona) is not None:
            raise kerr(EACCES)

    def refusal(self, start: int, end: int, vm_flags: int, personality: int) -> str | None:
        """sgx_encl_may_map()'s checks, in its order, with the reason for a refusal: may
        [start, end) be mapped with the R/W/X of vm_flags? Inside ELRANGE once
        initialized, never for a READ_IMPLIES_EXEC task, and within the intent of every
        page present (holes are unrestricted). None when it may. O(log n + runs)."""
        if self.initialized and (start < self.base or end > self.base + self.size):
            return (f"[{start:#x}, {end:#x}) is outside ELRANGE "
                    f"[{self.base:#x}, {self.base + self.size:#x}) of an initialized enclave")
        if personality & READ_IMPLIES_EXEC:
            return "the process has READ_IMPLIES_EXEC: enclaves refuse it"
        want = vm_flags & VM_ACCESS_FLAGS
        first, last = start >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT
        if not self.intent.exceeds(first, last, want):
            return None
        runs = self.intent.runs
        for run_start in runs.islice(max(runs.bisect_right(first) - 1, 0)):
            run_end, prot = runs[run_start]
            if run_end > first and want & ~prot:
                return (f"page {max(run_start, first) << PAGE_SHIFT:#x} was added with "
                        f"{prot_name(prot)}, {prot_name(want)} was asked")
        raise AssertionError("IntentRuns.exceeds() found a page the runs do not hold")

    # --- invariants ---
    def check(self) -> None:
        for pfn, page in self.pages.items():
            assert page.addr >> PAGE_SHIFT == pfn, "page_array index mismatch"
            assert self.intent.get(pfn) == page.vm_max_prot_bits, "intent runs out of sync"
            epc = page.epc
            assert epc.valid and epc.secs is self.secs and epc.addr == page.addr, \
                f"EPCM entry of {page.addr:#x} inconsistent with the driver"
            assert epc.pt == page.type or (epc.modified and page.type in (
                SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS)), f"EPCM type of {page.addr:#x}"
        nruns = sum(end - start for start, (end, _) in self.intent.runs.items())
        assert nruns == len(self.pages), "intent runs cover pages that are not present"
        assert self.page_cnt == len(self.pages) + (self.secs is not None), "page_cnt"
        assert len(self.va_pages) * SGX_VA_SLOT_COUNT >= self.page_cnt, "VA pages missing"
        assert all(va.valid and va.pt == SGX_PAGE_TYPE_VA for va in self.va_pages), \
            "a VA page is not a valid PT_VA EPC page"


def prot_name(vm_prot: int) -> str:
    return "".join(c if vm_prot & bit else "-" for c, bit in
                   (("r", VM_READ), ("w", VM_WRITE), ("x", VM_EXEC)))


class SgxVmOps(VmOperations):
    """sgx_vm_ops: .open, .fault, .mprotect, .access (no .close, .may_split, .mremap)."""

    def open(self, vma: Vma) -> None:
        """sgx_vma_open(): a split half, a fork copy or an mremap destination."""
        encl = vma.private_data
        if encl is not None:
            encl.mm_add(vma.mm)

    def mprotect(self, vma: Vma, start: int, end: int, newflags: int) -> None:
        """sgx_vma_mprotect(): the same check as mmap, against the new flags."""
        encl = vma.private_data
        if encl is None:
            raise kerr(EACCES)
        encl.may_map(vma.mm.owner, start, end, newflags)

    def fault(self, vma: Vma, addr: int, write: bool) -> None:
        """sgx_vma_fault(): map the enclave page, EAUG a hole on SGX2, or SIGBUS."""
        encl = vma.private_data
        if encl is None:
            raise Fault(SIGBUS, BUS_ADRERR, addr)
        page = encl.pages.get(addr >> PAGE_SHIFT)
        if page is None and encl.cpu.sgx2:
            page = eaug_page(encl, addr)
        elif page is None or \
                (page.vm_max_prot_bits & vma.flags & VM_ACCESS_FLAGS) != \
                vma.flags & VM_ACCESS_FLAGS:
            raise Fault(SIGBUS, BUS_ADRERR, addr)
        vmf_insert_pfn(vma, addr & ~(PAGE_SIZE - 1), page.epc)

    def access(self, vma: Vma, addr: int, length: int, write: bool,
               data: bytes = b"") -> bytes | int:
        """sgx_vma_access(): ptrace / /proc/PID/mem on a debug enclave only, one
        aligned 8-byte word at a time (EDBGRD, and for writes EDBGWR of the whole
        modified word). Returns the bytes read, or the count written."""
        encl = vma.private_data
        if encl is None or not encl.debug:
            raise kerr(EFAULT)
        out = bytearray()
        pos = 0
        while pos < length:
            a = addr + pos
            page = encl.pages.get(a >> PAGE_SHIFT)
            if page is None or (page.vm_max_prot_bits & vma.flags & VM_ACCESS_FLAGS) != \
                    vma.flags & VM_ACCESS_FLAGS:
                raise kerr(EFAULT)
            word = a & (PAGE_SIZE - 1) & ~7
            off = a & 7
            chunk = min(8 - off, length - pos)
            try:
                value = bytearray(arch.edbgrd(page.epc, word, 8))
                if write:
                    value[off:off + chunk] = data[pos:pos + chunk]
                    arch.edbgwr(page.epc, word, bytes(value))
                else:
                    out += value[off:off + chunk]
            except arch.EnclsFault:
                raise kerr(EIO) from None
            pos += chunk
        return length if write else bytes(out)

    def check(self, vma: Vma) -> None:
        """The intent invariant: no PTE that maps an enclave page at the page's own
        address has more permissions than the page's vm_max_prot_bits.

        A PTE that mremap moved elsewhere is not checked: Linux moves it too
        (sgx_vm_ops has no ->mremap), ->mprotect then consults the intents at the new
        addresses, and the driver's zaps only look at a page's own address. Such a PTE
        is useless (the EPCM's address check stops enclave use, abort-page semantics
        outside) — see docs/sgx.md."""
        encl = vma.private_data
        mm = vma.mm
        prot = vma.flags & VM_ACCESS_FLAGS
        for vpn in mm.present_in(vma.start, vma.end, mm.pfn_ptes):
            epc = mm.pfn_ptes[vpn]
            assert isinstance(epc, arch.EpcPage), f"PTE at {vpn << PAGE_SHIFT:#x} is not EPC"
            if epc.addr != vpn << PAGE_SHIFT:
                continue
            page = encl.pages.get(vpn) if encl is not None else None
            assert page is not None and page.epc is epc, \
                f"PTE at {vpn << PAGE_SHIFT:#x} maps an EPC page the enclave no longer has"
            assert not prot & ~page.vm_max_prot_bits, (
                f"PTE at {vpn << PAGE_SHIFT:#x} is {prot_name(prot)} but the page's "
                f"declared permissions are {prot_name(page.vm_max_prot_bits)}")
        if encl is not None:
            encl.check()


class SgxVmOpsV40(SgxVmOps):
    """sgx_vm_ops of the v40 patch series: ->mprotect got `pprev` and did the fixup
    itself after the intent check (Kernel(mprotect_hook="v40"))."""

    # the v40 signature (mm.mprotect.MprotectHookV40), which the core casts to:
    def mprotect(self, vma: Vma, pprev: list[Vma | None],  # type: ignore[override]
                 start: int, end: int, newflags: int) -> None:
        encl = vma.private_data
        if encl is None:
            raise kerr(EACCES)
        encl.may_map(vma.mm.owner, start, end, newflags)
        pprev[0] = mprotect_fixup(vma.mm.owner, vma, pprev[0], start, end, newflags)


SGX_VM_OPS = SgxVmOps()
SGX_VM_OPS_V40 = SgxVmOpsV40()


def eaug_page(encl: Encl, addr: int) -> EnclPage:
    """sgx_encl_eaug_page(): add a page on fault (SGX2): RWX intent, EPCM PENDING.
    The EPC page comes first, then sgx_encl_grow()'s VA page; a refusal is SIGBUS at
    the faulting address."""
    fault_addr, addr = addr, addr & ~(PAGE_SIZE - 1)
    if not encl.initialized:
        raise Fault(SIGBUS, BUS_ADRERR, fault_addr)
    epc = encl.cpu.alloc_epc_page()
    if epc is None:
        raise Fault(SIGBUS, BUS_ADRERR, fault_addr)
    try:
        va_page = encl.grow()
    except OSError:
        encl.cpu.free_epc_page(epc)
        raise Fault(SIGBUS, BUS_ADRERR, fault_addr) from None
    try:
        arch.eaug(encl.secs, epc, addr)
    except arch.EnclsFault:
        encl.shrink(va_page)
        encl.cpu.free_epc_page(epc)
        raise Fault(SIGBUS, BUS_ADRERR, fault_addr) from None
    page = EnclPage(addr, VM_READ | VM_WRITE | VM_EXEC, SGX_PAGE_TYPE_REG, epc)
    encl.insert_page(page)
    return page
