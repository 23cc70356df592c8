"""The EPC page allocator and its reclaimer: arch/x86/kernel/cpu/sgx/main.c
(sgx_alloc_epc_page(), sgx_mark_page_reclaimable(), sgx_unmark_page_reclaimable(),
sgx_reclaim_pages() with sgx_reclaimer_age/block/write() and sgx_encl_ewb(),
sgx_reclaim_direct(), ksgxd).

Every page an enclave adds (EADD, EAUG) or loads back (ELDU) goes on the active page
list, oldest first; the SECS and the Version Array pages never do. sgx_reclaim_pages()
takes up to SGX_NR_TO_SCAN pages from its head, puts back at the tail those accessed
since the last scan (clearing their accessed bit), and writes the others out: zap their
PTEs in every mm and EBLOCK them, then EWB each into its enclave's backing store (the
version in a slot of the enclave's first VA page with one free), with ETRACK and then
an IPI to the enclave's CPUs when EWB is SGX_NOT_TRACKED; an initialized enclave left
without a page in the EPC has its SECS written out too.

Who reclaims, and when (the kernel's conditions; Linux's ksgxd runs beside the tasks,
the model's at fixed points):
* sgx_alloc_epc_page() with reclaim (CREATE, ADD_PAGES: no enclave lock held) reclaims
  a batch at a time while no page is free; without reclaim (the fault handler, ELDU for
  the SGX2 ioctls: enclave lock held) it fails with EBUSY, and the fault returns
  VM_FAULT_NOPAGE.
* An allocation that leaves fewer than SGX_NR_LOW_PAGES free wakes ksgxd, which
  reclaims until SGX_NR_HIGH_PAGES are free or the active list is empty. The model runs
  it when an ioctl of the driver returns (the task that woke it leaves the driver).
* The access a NOPAGE fault retries succeeds once ksgxd has freed pages: the model
  lets it reclaim until a batch frees some before each retry (wait_for_free_page()).
* The SGX2 ioctls reclaim a batch before each page when fewer than SGX_NR_LOW_PAGES are
  free (sgx_reclaim_direct()).

A logical processor the model has inside an enclave while the kernel runs is in the
middle of its page fault (the model's walk makes no AEX/ERESUME round trip) and holds
its TCS and SSA frame; the reclaimer leaves those pages in the EPC (as young pages),
where Linux, its IPI having made the processor leave, would write them out and
ERESUME would fault them back. An active list of nothing but such pages cannot be
reclaimed: the allocation then fails as with an empty list (ENOMEM, or SIGBUS).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from ...arch.x86.sgx import cpu as arch
from ...arch.x86.sgx import paging
from ...arch.x86.sgx.defs import SGX_NOT_TRACKED
from ...errors import EBUSY, ENOMEM, kerr
from ...uapi import PAGE_SHIFT
from .encl import Encl, EnclPage, VaPage

#: pages sgx_reclaim_pages() takes from the active list at a time
SGX_NR_TO_SCAN = 16
#: ksgxd is woken below this many free EPC pages ...
SGX_NR_LOW_PAGES = 32
#: ... and reclaims until this many are free
SGX_NR_HIGH_PAGES = 64


class Epc:
    """The EPC as main.c manages it: the CPU's free pages, the active page list
    (`active`: EPC page -> the enclave page it holds, oldest first: every page of an
    enclave in the EPC but its SECS and VA pages) and whether ksgxd has been woken and
    has yet to run (`ksgxd_woken`)."""

    def __init__(self, cpu: arch.SgxCpu):
        self.cpu = cpu
        self.active: OrderedDict[arch.EpcPage, EnclPage] = OrderedDict()
        self.ksgxd_woken = False

    # --- the allocator ---
    def alloc_epc_page(self, reclaim: bool) -> arch.EpcPage:
        """sgx_alloc_epc_page(): a free EPC page; while there is none, ENOMEM if the
        active list is empty (or holds nothing reclaimable), EBUSY without `reclaim`,
        else reclaim a batch and try again. Then wake ksgxd below SGX_NR_LOW_PAGES."""
        while True:
            epc = self.cpu.alloc_epc_page()
            if epc is not None:
                break
            if not self.active:
                raise kerr(ENOMEM)
            if not reclaim:
                self.ksgxd_woken = True
                raise kerr(EBUSY)
            if not self._reclaim_until(lambda: self.cpu.epc_free > 0):
                raise kerr(ENOMEM)
        if self.should_reclaim(SGX_NR_LOW_PAGES):
            self.ksgxd_woken = True
        return epc

    def should_reclaim(self, watermark: int) -> bool:
        """sgx_should_reclaim()."""
        return self.cpu.epc_free < watermark and bool(self.active)

    def mark_page_reclaimable(self, epc: arch.EpcPage, owner: EnclPage) -> None:
        """sgx_mark_page_reclaimable(): at the tail of the active list."""
        self.active[epc] = owner

    def unmark_page_reclaimable(self, epc: arch.EpcPage) -> None:
        """sgx_unmark_page_reclaimable(): off the active list (never EBUSY here: the
        model's reclaimer finishes a batch before anything else runs)."""
        del self.active[epc]

    # --- who reclaims ---
    def ksgxd(self) -> None:
        """ksgxd, if woken: reclaim until SGX_NR_HIGH_PAGES pages are free (or nothing
        reclaimable is left)."""
        if self.ksgxd_woken:
            self.ksgxd_woken = False
            self._reclaim_until(lambda: not self.should_reclaim(SGX_NR_HIGH_PAGES))

    def wait_for_free_page(self) -> bool:
        """What a VM_FAULT_NOPAGE (or sgx_encl_reserve_page()'s loop) waits for before
        the retry: ksgxd, woken by the allocation that failed, frees pages. False if it
        cannot."""
        free = self.cpu.epc_free
        return self._reclaim_until(lambda: self.cpu.epc_free > free)

    def reclaim_direct(self) -> None:
        """sgx_reclaim_direct(): one batch if fewer than SGX_NR_LOW_PAGES are free."""
        if self.should_reclaim(SGX_NR_LOW_PAGES):
            self.reclaim_pages()

    def _reclaim_until(self, done: Callable[[], bool]) -> bool:
        """sgx_reclaim_pages() until done(); False when the active list is empty, or two
        passes over it freed nothing (every page held by a logical processor inside)."""
        idle = 0
        while not done():
            if not self.active:
                return False
            if self.reclaim_pages():
                idle = 0
                continue
            idle += 1
            if idle > 2 * (len(self.active) // SGX_NR_TO_SCAN + 1):
                return False
        return True

    # --- sgx_reclaim_pages() ---
    def reclaim_pages(self) -> int:
        """sgx_reclaim_pages(): one batch from the head of the active list; the pages
        written out go back to the free pool. Returns how many."""
        chunk = [self.active.popitem(last=False)
                 for _ in range(min(SGX_NR_TO_SCAN, len(self.active)))]
        taken = []
        for epc, owner in chunk:
            if self.young(epc, owner.encl):
                self.active[epc] = owner
            else:
                taken.append((epc, owner))
        for epc, owner in taken:
            reclaimer_block(epc, owner)
        for epc, owner in taken:
            reclaimer_write(epc, owner)
        return len(taken)

    @staticmethod
    def young(epc: arch.EpcPage, encl: Encl) -> bool:
        """Not sgx_reclaimer_age(): accessed since the last scan (the bit is cleared),
        or held by a logical processor inside the enclave (the module docstring)."""
        if epc.accessed:
            epc.accessed = False
            return True
        state = encl.secs.enclave if encl.secs is not None else None
        return state is not None and any(
            epc is lp.tcs or epc in lp.ssa_pages for lp in state.lps)


def reclaimer_block(epc: arch.EpcPage, owner: EnclPage) -> None:
    """sgx_reclaimer_block(): no PTE maps the page any more in any mm, then EBLOCK."""
    owner.encl.zap_ptes(owner.addr)
    ret = paging.eblock(epc)
    assert not ret, f"EBLOCK of {owner.addr:#x}: {ret}"


def reclaimer_write(epc: arch.EpcPage, owner: EnclPage) -> None:
    """sgx_reclaimer_write(): EWB the page into its backing page and PCMD; then, if it
    was the last of an initialized enclave's pages in the EPC, the SECS too."""
    encl = owner.encl
    owner.va_page, owner.va_offset = encl_ewb(encl, epc, owner.index())
    owner.epc = None
    encl.secs_child_cnt -= 1
    if not encl.secs_child_cnt and encl.initialized:
        assert encl.secs is not None
        encl.secs_va = encl_ewb(encl, encl.secs, encl.size >> PAGE_SHIFT)
        encl.secs = None


def encl_ewb(encl: Encl, epc: arch.EpcPage, index: int) -> tuple[VaPage, int]:
    """sgx_encl_ewb(): a slot of the first VA page (a VA page now full goes to the
    tail), then EWB; SGX_NOT_TRACKED: ETRACK and EWB again; still: an IPI to the CPUs
    in the enclave and EWB once more, which must then succeed. Returns the slot."""
    va_page = encl.va_pages[0]
    va_offset = va_page.alloc_slot()
    if va_page.full():
        encl.va_pages.append(encl.va_pages.pop(0))
    assert encl.backing is not None and encl.secs is not None
    contents, pcmd_page, off = encl.backing.get(index)

    def ewb() -> int:
        return paging.ewb(epc, va_page.epc_page, va_offset, contents,
                          pcmd_page[off:off + paging.PCMD_SIZE])

    ret = ewb()
    if ret == SGX_NOT_TRACKED:
        paging.etrack(encl.secs)
        ret = ewb()
        if ret == SGX_NOT_TRACKED:
            ipi(encl)
            ret = ewb()
    assert not ret, f"EWB of page {index} of the enclave: {ret}"
    return va_page, va_offset


def ipi(encl: Encl) -> None:
    """on_each_cpu_mask(sgx_encl_cpumask(encl), sgx_ipi_cb): every CPU that runs one of
    the enclave's mms is interrupted, and leaves the enclave if it was inside."""
    assert encl.secs is not None and encl.secs.enclave is not None
    paging.ipi(encl.secs.enclave)
