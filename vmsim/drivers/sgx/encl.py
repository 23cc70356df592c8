"""The enclave and its VMA hooks: arch/x86/kernel/cpu/sgx/encl.c.

Every enclave page carries the permissions its creator declared when adding it
(`vm_max_prot_bits`, the *intent*). The driver holds every mapping to it: on mmap
(`sgx_mmap` -> `may_map`), on mprotect (the `->mprotect` hook -> `may_map`) and on fault
(`->fault`: the whole VMA's R/W/X must be within the page's intent, else SIGBUS).
The intents are kept as runs of equal permissions, so a check costs O(log n + runs).

A page of the enclave is in the EPC or written out (main.py's reclaimer: EWB) to the
enclave's backing store, a shmem file of the enclave's size plus a page for the SECS and
1/32 for the PCMDs (`Backing`), with its version in a slot of one of the enclave's
Version Array pages (`VaPage`): one from ECREATE on, and one more for every
SGX_VA_SLOT_COUNT pages the enclave grows by (sgx_encl_grow()), each an EPC page of its
own until the enclave is released. Whoever needs a page written out loads it back
(ELDU): the fault handler, the SGX2 ioctls, ptrace; the SECS first, if it was written
out too. An ELDU that fails (the backing was changed: SGX_MAC_COMPARE_FAIL) loses the
page, as in Linux: the fault is SIGBUS, and stays so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from sortedcontainers import SortedDict  # type: ignore[import-untyped]  # ships no types

from ...arch.x86.sgx import cpu as arch
from ...arch.x86.sgx import paging
from ...arch.x86.sgx.defs import (
    SGX_PAGE_TYPE_REG,
    SGX_PAGE_TYPE_TCS,
    SGX_PAGE_TYPE_VA,
    SGX_SECINFO_R,
    SGX_SECINFO_W,
    SGX_SECINFO_X,
)
from ...errors import EACCES, EBUSY, EFAULT, EIO, Fault, kerr
from ...mm.fault import vmf_insert_pfn, zap_vma_ptes
from ...mm.flags import VM_ACCESS_FLAGS, VM_EXEC, VM_READ, VM_WRITE
from ...mm.mm_struct import MmStruct
from ...mm.mprotect import mprotect_fixup
from ...mm.page_alloc import Page, alloc_page
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


class EpcAllocator(Protocol):
    """What an enclave asks of main.c (main.py's `Epc`): EPC pages, and the reclaimer's
    active page list (`active`: EPC page -> the enclave page it holds)."""

    cpu: arch.SgxCpu

    @property
    def active(self) -> Mapping[arch.EpcPage, EnclPage]: ...

    def alloc_epc_page(self, reclaim: bool) -> arch.EpcPage: ...

    def mark_page_reclaimable(self, epc: arch.EpcPage, owner: EnclPage) -> None: ...

    def unmark_page_reclaimable(self, epc: arch.EpcPage) -> None: ...

    def reclaim_direct(self) -> None: ...

    def wait_for_free_page(self) -> bool: ...


class VaPage:
    """struct sgx_va_page: a Version Array page and which of its slots hold the version
    of a page written out (`slots`, a bitmap: bit i is the slot at byte offset 8 i)."""

    __slots__ = ("epc_page", "slots")

    def __init__(self, epc_page: arch.EpcPage):
        self.epc_page = epc_page
        self.slots = 0

    def alloc_slot(self) -> int:
        """sgx_alloc_va_slot(): the first free slot's offset in the page."""
        slot = (~self.slots & (self.slots + 1)).bit_length() - 1
        self.slots |= 1 << slot
        return slot * paging.VA_SLOT_SIZE

    def free_slot(self, offset: int) -> None:
        """sgx_free_va_slot()."""
        self.slots &= ~(1 << offset // paging.VA_SLOT_SIZE)

    def full(self) -> bool:
        """sgx_va_page_full()."""
        return self.slots == (1 << SGX_VA_SLOT_COUNT) - 1

    def used(self) -> int:
        return self.slots.bit_count()


class Backing:
    """encl->backing, the shmem file sgx_encl_create() sets up ("SGX backing"), as its
    page cache: page index -> frame. Page i < size / PAGE_SIZE holds the enclave page
    at offset i * PAGE_SIZE while it is written out, page size / PAGE_SIZE the SECS,
    then come the PCMDs, 32 to a page, in the same order. A page exists from the first
    write to it until truncated (ELDU truncates what it has read)."""

    def __init__(self, size: int):
        self.size = size
        self.pages: dict[int, Page] = {}

    def page(self, index: int) -> Page:
        """shmem_read_mapping_page(): the page at index, a new zeroed one if absent."""
        page = self.pages.get(index)
        if page is None:
            page = self.pages[index] = alloc_page()
        return page

    def pcmd_offset(self, index: int) -> int:
        """sgx_encl_get_backing_page_pcmd_offset(): where page index's PCMD is."""
        return self.size + PAGE_SIZE + index * paging.PCMD_SIZE

    def get(self, index: int) -> tuple[Page, Page, int]:
        """__sgx_encl_get_backing(): the contents page of page index, the page holding
        its PCMD, and the PCMD's offset in it."""
        offset = self.pcmd_offset(index)
        return self.page(index), self.page(offset >> PAGE_SHIFT), offset & (PAGE_SIZE - 1)

    def truncate(self, index: int) -> None:
        """sgx_encl_truncate_backing_page()."""
        self.pages.pop(index, None)


class EnclPage:
    """struct sgx_encl_page: one page of the enclave (present in page_array).

    `epc` is its EPC page while it is in the EPC, None while it is written out, and
    then `va_page` and `va_offset` say where its version is (the desc's VA offset)."""

    __slots__ = ("encl", "addr", "vm_max_prot_bits", "type", "epc", "va_page", "va_offset")

    def __init__(self, encl: Encl, addr: int, vm_max_prot_bits: int, page_type: int,
                 epc: arch.EpcPage):
        self.encl = encl
        self.addr = addr
        self.vm_max_prot_bits = vm_max_prot_bits
        self.type = page_type
        self.epc: arch.EpcPage | None = epc
        self.va_page: VaPage | None = None
        self.va_offset = 0

    def index(self) -> int:
        """The page's index in the backing store."""
        return (self.addr - self.encl.base) >> PAGE_SHIFT


class Encl:
    """struct sgx_encl: one per open of /dev/sgx_enclave.

    Invariants: `pages` (the page_array, by page number) and `intent` agree;
    every page in the EPC has a valid EPC page owned by `secs` at its address, on the
    reclaimer's active list, and `secs_child_cnt` counts them; every page written out
    holds a slot of one of `va_pages` (the list's head is where EWB takes a slot
    first), and so does the SECS while it is written out (`secs` None, `secs_va` its
    slot; only an initialized enclave's, once none of its pages is in the EPC);
    `page_cnt` counts the SECS and the pages, with at least one VA page per
    SGX_VA_SLOT_COUNT of them (REMOVE_PAGES frees none); `refs` counts the open file
    plus each mm in `mm_list`.
    """

    def __init__(self, epc: EpcAllocator):
        self.epc = epc
        self.cpu = epc.cpu
        self.created = False
        self.initialized = False
        self.debug = False
        self.busy = False           # SGX_ENCL_IOCTL
        self.base = 0
        self.size = 0
        self.attributes = 0
        self.attributes_mask = 0
        self.secs: arch.EpcPage | None = None
        self.secs_va: tuple[VaPage, int] | None = None
        self.secs_child_cnt = 0
        self.backing: Backing | None = None
        self.pages: dict[int, EnclPage] = {}
        self.intent = IntentRuns()
        self.page_cnt = 0
        self.va_pages: list[VaPage] = []
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
        """sgx_encl_free_epc_page(): EREMOVE, then back to the EPC (a page EREMOVE finds
        free, as a failed ELDU leaves it, goes straight back)."""
        if epc.valid:
            arch.eremove(epc)
        else:
            self.cpu.free_epc_page(epc)

    # --- Version Array pages ---
    def grow(self, reclaim: bool) -> VaPage | None:
        """sgx_encl_grow() (ioctl.c): account one more page (the SECS at CREATE, an
        EADDed or EAUGed page); when page_cnt is a multiple of SGX_VA_SLOT_COUNT, first
        a new VA page (sgx_alloc_va_page(): an EPC page, with reclaim as asked, + EPA) at
        the head of va_pages, returned so that a failure further on can give it back.
        ENOMEM (or EBUSY without reclaim) when the EPC has no page for it."""
        va_page = None
        if not self.page_cnt % SGX_VA_SLOT_COUNT:
            epc = self.epc.alloc_epc_page(reclaim)
            arch.epa(epc)
            va_page = VaPage(epc)
            self.va_pages.insert(0, va_page)
        self.page_cnt += 1
        return va_page

    def shrink(self, va_page: VaPage | None) -> None:
        """sgx_encl_shrink(): undo grow(); with va_page None only the count (what
        REMOVE_PAGES does: its VA page stays)."""
        self.page_cnt -= 1
        if va_page is not None:
            self.free_epc_page(va_page.epc_page)
            self.va_pages.remove(va_page)

    # --- loading pages back (ELDU) ---
    def eldu(self, va_page: VaPage, va_offset: int, index: int, linaddr: int,
             secs_page: arch.EpcPage | None) -> arch.EpcPage:
        """sgx_encl_eldu() and __sgx_encl_eldu(): an EPC page (without reclaim: EBUSY
        when none is free), ELDU from the backing page `index` and its PCMD; the PCMD is
        zeroed and the backing page truncated whether ELDU succeeded or not (and the
        PCMD's page, once all its PCMDs are zero); a failed ELDU is EFAULT, the page
        then lost. On success the VA slot is free and its VA page goes to the head."""
        epc = self.epc.alloc_epc_page(reclaim=False)
        assert self.backing is not None
        contents, pcmd_page, off = self.backing.get(index)
        try:
            ret = paging.eldu(epc, va_page.epc_page, va_offset, linaddr, secs_page, contents,
                              pcmd_page[off:off + paging.PCMD_SIZE])
        except arch.EnclsFault:
            ret = EFAULT
        pcmd_page[off:off + paging.PCMD_SIZE] = bytes(paging.PCMD_SIZE)
        self.backing.truncate(index)
        if not any(pcmd_page):
            self.backing.truncate(self.backing.pcmd_offset(index) >> PAGE_SHIFT)
        if ret:
            self.free_epc_page(epc)
            raise kerr(EFAULT)
        va_page.free_slot(va_offset)
        self.va_pages.remove(va_page)
        self.va_pages.insert(0, va_page)
        return epc

    def load_secs(self) -> arch.EpcPage:
        """sgx_encl_load_secs(): the SECS, loaded back first if it was written out."""
        if self.secs is None:
            assert self.secs_va is not None
            va_page, va_offset = self.secs_va
            self.secs = self.eldu(va_page, va_offset, self.size >> PAGE_SHIFT, 0, None)
            self.secs_va = None
        return self.secs

    def load_page(self, page: EnclPage) -> EnclPage:
        """__sgx_encl_load_page(): the page in the EPC, loaded back (after its SECS) if
        it was written out, and then reclaimable again. EBUSY when the EPC has no free
        page right now, EFAULT when ELDU fails. (Linux's EBUSY for a page the reclaimer
        is writing out cannot happen: the model's reclaimer finishes what it started
        before anything else runs.)"""
        if page.epc is not None:
            return page
        secs = self.load_secs()
        assert page.va_page is not None
        page.epc = self.eldu(page.va_page, page.va_offset, page.index(), page.addr, secs)
        page.va_page = None
        self.secs_child_cnt += 1
        self.epc.mark_page_reclaimable(page.epc, page)
        return page

    def load_page_in_vma(self, addr: int, vm_flags: int) -> EnclPage:
        """sgx_encl_load_page_in_vma(): the page at addr if the VMA's R/W/X are within
        its intent (else EFAULT), loaded."""
        page = self.pages.get(addr >> PAGE_SHIFT)
        want = vm_flags & VM_ACCESS_FLAGS
        if page is None or page.vm_max_prot_bits & want != want:
            raise kerr(EFAULT)
        return self.load_page(page)

    def reserve_page(self, addr: int, vm_flags: int) -> EnclPage:
        """sgx_encl_reserve_page(): load_page_in_vma(), again as long as it is EBUSY (the
        reclaimer frees pages meanwhile)."""
        while True:
            try:
                return self.load_page_in_vma(addr, vm_flags)
            except OSError as exc:
                if exc.errno != EBUSY or not self.epc.wait_for_free_page():
                    raise

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
        """kref_put() -> sgx_encl_release(): the last reference EREMOVEs every page in
        the EPC (off the active list first), then the SECS, then the VA pages, and
        drops the backing store (and with it every page written out)."""
        self.refs -= 1
        if self.refs:
            return
        for page in list(self.pages.values()):
            if page.epc is not None:
                self.epc.unmark_page_reclaimable(page.epc)
                self.free_epc_page(page.epc)
                self.secs_child_cnt -= 1
            self.erase_page(page)
        if not self.secs_child_cnt and self.secs is not None:
            self.free_epc_page(self.secs)
            self.secs = None
        for va_page in self.va_pages:
            self.free_epc_page(va_page.epc_page)
        self.va_pages.clear()
        self.backing = None

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
        resident = written_out = 0
        for pfn, page in self.pages.items():
            assert page.addr >> PAGE_SHIFT == pfn, "page_array index mismatch"
            assert self.intent.get(pfn) == page.vm_max_prot_bits, "intent runs out of sync"
            epc = page.epc
            if epc is None:
                assert page.va_page in self.va_pages and \
                    page.va_page.slots >> (page.va_offset // paging.VA_SLOT_SIZE) & 1, \
                    f"{page.addr:#x} is written out without a VA slot"
                written_out += 1
                continue
            resident += 1
            assert epc.valid and epc.secs is self.secs and epc.addr == page.addr, \
                f"EPCM entry of {page.addr:#x} inconsistent with the driver"
            assert epc.pt == page.type or (epc.modified and page.type in (
                SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS)), f"EPCM type of {page.addr:#x}"
            assert self.epc.active.get(epc) is page, f"{page.addr:#x} is not reclaimable"
        assert resident == self.secs_child_cnt, "secs_child_cnt"
        if self.secs is not None:
            assert self.secs.enclave is not None and self.secs.enclave.children == resident, \
                "the SECS's child count disagrees with the driver"
        elif self.secs_va is not None:
            assert self.initialized and not resident, "a SECS written out with children"
            written_out += 1
        nruns = sum(end - start for start, (end, _) in self.intent.runs.items())
        assert nruns == len(self.pages), "intent runs cover pages that are not present"
        has_secs = self.secs is not None or self.secs_va is not None
        assert self.page_cnt == len(self.pages) + has_secs, "page_cnt"
        assert len(self.va_pages) * SGX_VA_SLOT_COUNT >= self.page_cnt, "VA pages missing"
        assert all(va.epc_page.valid and va.epc_page.pt == SGX_PAGE_TYPE_VA
                   for va in self.va_pages), "a VA page is not a valid PT_VA EPC page"
        assert sum(va.used() for va in self.va_pages) == written_out, \
            "VA slots in use differ from the pages written out"


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
        """sgx_vma_fault(): map the enclave page (loaded back if written out), EAUG a
        hole on SGX2, or SIGBUS. VM_FAULT_NOPAGE without a PTE (no free EPC page right
        now: EBUSY) makes the CPU retry the access while the reclaimer frees pages:
        the model retries once a page is free (SIGBUS if none can be freed)."""
        encl = vma.private_data
        if encl is None:
            raise Fault(SIGBUS, BUS_ADRERR, addr)
        while True:
            try:
                page = vma_fault(encl, vma, addr)
                break
            except OSError as exc:
                if exc.errno != EBUSY or not encl.epc.wait_for_free_page():
                    raise Fault(SIGBUS, BUS_ADRERR, addr) from None
        assert page.epc is not None
        vmf_insert_pfn(vma, addr & ~(PAGE_SIZE - 1), page.epc)

    def access(self, vma: Vma, addr: int, length: int, write: bool,
               data: bytes = b"") -> bytes | int:
        """sgx_vma_access(): ptrace / /proc/PID/mem on a debug enclave only, one
        aligned 8-byte word at a time (sgx_encl_reserve_page(): loaded back if written
        out; EDBGRD, and for writes EDBGWR of the whole modified word). Returns the
        bytes read, or the count written."""
        encl = vma.private_data
        if encl is None or not encl.debug:
            raise kerr(EFAULT)
        out = bytearray()
        pos = 0
        while pos < length:
            a = addr + pos
            epc = encl.reserve_page(a & ~(PAGE_SIZE - 1), vma.flags).epc
            assert epc is not None
            word = a & (PAGE_SIZE - 1) & ~7
            off = a & 7
            chunk = min(8 - off, length - pos)
            try:
                value = bytearray(arch.edbgrd(epc, word, 8))
                if write:
                    value[off:off + chunk] = data[pos:pos + chunk]
                    arch.edbgwr(epc, word, bytes(value))
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


def vma_fault(encl: Encl, vma: Vma, addr: int) -> EnclPage:
    """sgx_vma_fault()'s body: on SGX2 a hole is EAUGed; otherwise the page, loaded
    back if written out and its accessed bit cleared (the access the CPU now retries
    sets it). SIGBUS for a hole (SGX1) or a VMA beyond the page's intent, or a failed
    ELDU; EBUSY (VM_FAULT_NOPAGE) when no EPC page is free."""
    if encl.cpu.sgx2 and addr >> PAGE_SHIFT not in encl.pages:
        return eaug_page(encl, addr)
    try:
        page = encl.load_page_in_vma(addr, vma.flags)
    except OSError as exc:
        if exc.errno == EBUSY:
            raise
        raise Fault(SIGBUS, BUS_ADRERR, addr) from None
    assert page.epc is not None
    page.epc.accessed = False           # sgx_encl_test_and_clear_young()
    return page


def eaug_page(encl: Encl, addr: int) -> EnclPage:
    """sgx_encl_eaug_page(): add a page on fault (SGX2): RWX intent, EPCM PENDING, then
    reclaimable. The SECS (loaded back if written out), the EPC page, then
    sgx_encl_grow()'s VA page, all without reclaim: EBUSY (VM_FAULT_NOPAGE) when the
    EPC has no free page; any other refusal is SIGBUS at the faulting address."""
    fault_addr, addr = addr, addr & ~(PAGE_SIZE - 1)
    if not encl.initialized:
        raise Fault(SIGBUS, BUS_ADRERR, fault_addr)
    try:
        secs = encl.load_secs()
        epc = encl.epc.alloc_epc_page(reclaim=False)
    except OSError as exc:
        if exc.errno == EBUSY:
            raise
        raise Fault(SIGBUS, BUS_ADRERR, fault_addr) from None
    try:
        va_page = encl.grow(reclaim=False)
    except OSError as exc:
        encl.free_epc_page(epc)
        if exc.errno == EBUSY:
            raise
        raise Fault(SIGBUS, BUS_ADRERR, fault_addr) from None
    try:
        arch.eaug(secs, epc, addr)
    except arch.EnclsFault:
        encl.shrink(va_page)
        encl.free_epc_page(epc)
        raise Fault(SIGBUS, BUS_ADRERR, fault_addr) from None
    page = EnclPage(encl, addr, VM_READ | VM_WRITE | VM_EXEC, SGX_PAGE_TYPE_REG, epc)
    encl.insert_page(page)
    encl.secs_child_cnt += 1
    encl.epc.mark_page_reclaimable(epc, page)
    return page
