"""Enclave mode of the emulated core: what an SGX processor does around the code it runs
when that code executes ENCLU and while it runs inside an enclave (Intel SDM Vol. 3D,
"Enclave Operation", "Enclave Exiting Events", "Illegal Instructions Inside an
Enclave"). Linux has no code for it, the CPU does it; Linux meets it in
arch/x86/entry/vdso/vsgx.S (the AEP), arch/x86/mm/fault.c (X86_PF_SGX) and
arch/x86/entry/vdso/extable.c (the exception an AEX reports at the AEP).

The leaves and the AEX are data-level operations of vmsim.arch.x86.sgx.enclu; this
module is what the core (vmsim.arch.x86.emu.cpu) adds around them:

* ENCLU (0F 01 D7) is an instruction Unicorn does not know: emulation stops at it,
  the core performs the leaf on the thread's registers (`EnclaveUnit.execute`) and
  starts again, so that mode switches, TLB flushes and hook changes happen outside
  Unicorn's hooks.
* In enclave mode the TLB fill of a page inside ELRANGE (`EnclaveUnit.translate`)
  walks the page tables: a PTE the SGX driver has not installed (never faulted, or
  zapped when the page was written out) is a #PF the fill only reports (`NotPresent`),
  since every exception in enclave mode is an AEX: the core stops, performs the AEX,
  and the kernel's page-fault handler runs outside emulation (vmsim.arch.x86.traps
  handle_user_fault(): the driver's ->fault with its EAUG and ELDU) and returns to the
  AEP, whose ERESUME (vsgx.S's ENCLU) retries the access. A present PTE is checked
  against the VMA, then the EPCM (enclu.epcm_allows: valid, this enclave, this linear
  address, PT_REG, not BLOCKED/PENDING/MODIFIED, R/W/X), and the EPC page's own frame
  is mapped with the EPCM's permissions within the PTE's. A refusal of the EPCM is #PF
  with X86_PF_SGX, one of the page tables the PTE's error code. Outside ELRANGE the
  ordinary walk: an enclave reads and writes its host's memory (an EPC page there is
  the abort page), and fetches nothing (#GP).
* Instructions enclave mode refuses (enclu.ILLEGAL_IN_ENCLAVE: SYSCALL, CPUID, INT n,
  ...) are found by a code hook over the entered enclave's ELRANGE: #UD before they
  execute.
* Every stop in enclave mode is an AEX (`EnclaveUnit.exit_async`): an exception, and
  the end of the thread's slice, which is an interrupt (no exception information).

A fault on the host's memory the enclave touches (outside ELRANGE) is still served by
the fault handler from inside the fill, as outside enclave mode, without an AEX
(docs/sgx.md, "Running real enclaves").
"""

from __future__ import annotations

from dataclasses import fields

from unicorn import unicorn_const as uc_const

from ....errors import Fault
from ....mm.fault import fault_page, user_fault
from ....mm.flags import VM_PFNMAP
from ....mm.page_alloc import Page
from ....mm.vma import Vma
from ....uapi import PAGE_MASK, PAGE_SHIFT, SEGV_ACCERR, SIGSEGV
from ..ptrace import PtRegs
from ..sgx.cpu import PF, EnclsFault, EpcPage, SgxCpu
from ..sgx.enclu import (
    ILLEGAL_IN_ENCLAVE,
    ILLEGAL_WITHOUT_SGX2,
    PF_P,
    PF_SGX,
    PF_U,
    PREFIXES,
    EnclaveMode,
    Illegal,
    aex,
    enclu,
    epcm_allows,
    gp,
    illegal_in_enclave,
    pf,
    pf_error_code,
)
from ..traps import Trap, page_fault, pte_present

#: the longest x86 instruction
MAX_INSN = 15
#: an instruction starts with one of these bytes (after any prefixes and REX) if enclave
#: mode may refuse it: what the illegal-instruction hook looks at before it decodes
ILLEGAL_FIRST_BYTES = frozenset(entry.opcode[0] for entry in ILLEGAL_IN_ENCLAVE + ILLEGAL_WITHOUT_SGX2)
#: legacy prefixes and REX: an instruction starting with one is decoded in full
PREFIX_BYTES = PREFIXES | frozenset(range(0x40, 0x50))


class NotPresent(Exception):
    """The page walk in enclave mode found no PTE for a page of ELRANGE: #PF with
    `error_code` (the access's, X86_PF_P clear) at `addr`, which the kernel's handler
    sees only after the AEX."""

    def __init__(self, error_code: int, addr: int) -> None:
        super().__init__(f"#PF {error_code:#x} at {addr:#x}: PTE not present")
        self.error_code = error_code
        self.addr = addr


def driver_pte_missing(mm, addr: int) -> bool:
    """The page at addr lies in a VMA whose driver inserts PFNs (VM_PFNMAP: the SGX
    driver's) and has no PTE: the walk fails not present, and only the driver's ->fault
    can make it present."""
    vma = mm.tree.find(addr)
    return vma is not None and bool(vma.flags & VM_PFNMAP) and addr >> PAGE_SHIFT not in mm.pfn_ptes


class CoreWalk:
    """The page walk of the leaves the core executes (enclu.PageWalk): the model's fault
    path, as enclu.MmWalk, with the error code the core's own page walk gives
    (traps.page_fault()); `fault` keeps the model's answer to a refused #PF, which
    the kernel's side turns into a signal. For a leaf executed in enclave mode
    (`inside`: EACCEPT, EMODPE, EREPORT, ...) a missing PTE of the driver's is
    NotPresent, as in EnclaveUnit.translate(): the kernel's handler runs after the
    AEX, and the leaf executes again after the ERESUME."""

    def __init__(self, task, inside: bool) -> None:
        self.task = task
        self.inside = inside
        self.fault: Fault | None = None

    def translate(self, addr: int, kind: str) -> EpcPage | Page:
        task = self.task
        if self.inside and driver_pte_missing(task.mm, addr):
            raise NotPresent(pf_error_code(kind), addr)
        try:
            vma = user_fault(task, addr, kind)
            page = fault_page(task, vma, addr, kind == "w")
        except Fault as fault:
            self.fault = fault
            code = page_fault(fault, kind, pte_present(task, fault, kind)).error_code
            raise pf("page walk", code | PF_U, addr) from None
        epc = task.mm.pfn_ptes.get(addr >> PAGE_SHIFT)
        return epc if isinstance(epc, EpcPage) else page


def leaf_trap(exc: EnclsFault, walk_fault: Fault | None) -> Trap:
    """The exception a leaf raised, as the core reports it: a #PF carries the model's
    answer, the walk's, or (the EPCM refused: X86_PF_SGX) SEGV_ACCERR, which is what
    access_error() makes of an SGX fault."""
    if exc.trapnr != PF:
        return Trap(exc.trapnr, exc.error_code)
    fault = walk_fault or Fault(SIGSEGV, SEGV_ACCERR, exc.addr)
    return Trap(PF, exc.error_code, exc.addr, fault)


def assign(regs: PtRegs, new: PtRegs) -> None:
    """regs takes every value of new (in place: the thread keeps its PtRegs)."""
    for f in fields(PtRegs):
        setattr(regs, f.name, getattr(new, f.name))


def epcm_prot(epc: EpcPage) -> int:
    """The EPCM's R/W/X as Unicorn's protection bits."""
    return (uc_const.UC_PROT_READ if epc.r else 0) | (uc_const.UC_PROT_WRITE if epc.w else 0) | \
        (uc_const.UC_PROT_EXEC if epc.x else 0)


class EnclaveUnit:
    """The enclave-mode side of one emulated core: its logical processor's state
    (`mode`, enclu.EnclaveMode, the SDM's CREGs) and what the core needs while inside.

    Invariants: `mode` is active only while Cpu.run() runs a thread (every stop inside
    is an AEX, and a thread leaves the core only at a stop); `code` holds, by virtual
    page number, the frames of the pages of ELRANGE filled for an instruction fetch
    since the last entry (what the illegal-instruction hook reads).
    """

    def __init__(self, sgx: SgxCpu) -> None:
        self.mode = EnclaveMode(sgx)
        self.code: dict[int, Page] = {}

    @property
    def active(self) -> bool:
        """CR_ENCLAVE_MODE."""
        return self.mode.active

    def elrange(self) -> tuple[int, int]:
        """The first and last byte of the entered enclave's ELRANGE."""
        enclave = self.mode.enclave
        return enclave.base, enclave.base + enclave.size - 1

    # --- ENCLU ----------------------------------------------------------------------

    def execute(self, task, regs: PtRegs) -> Trap | None:
        """ENCLU at regs.rip (enclu.enclu(): the leaf in EAX) with the page walk of
        `task`: regs become the registers after the leaf, or the exception it raised
        is returned and regs stay as they were (RIP at the ENCLU)."""
        was_inside = self.active
        walk = CoreWalk(task, was_inside)
        try:
            new = enclu(self.mode, regs, walk)
        except NotPresent as exc:
            return Trap(PF, exc.error_code, exc.addr)
        except EnclsFault as exc:
            return leaf_trap(exc, walk.fault)
        assign(regs, new)
        if self.active and not was_inside:
            self.code.clear()
        return None

    # --- memory in enclave mode ----------------------------------------------------

    def translate(self, task, addr: int, kind: str) -> tuple[Vma, Page, int | None]:
        """The TLB fill of the page at addr for an access of `kind` ("r", "w", "x") in
        enclave mode: the VMA, the frame to map and the protection the EPCM allows
        (None outside ELRANGE, where no EPCM applies). Raises NotPresent for a page of
        ELRANGE whose PTE is not present (the #PF the kernel's handler may fix after
        the AEX), the model's Fault when the page tables refuse, EnclsFault for a fetch
        outside ELRANGE (#GP) or an access the EPCM refuses (#PF with X86_PF_SGX)."""
        mode = self.mode
        inside = mode.in_elrange(addr)
        if kind == "x" and not inside:
            raise gp("instruction fetch outside ELRANGE")
        mm = task.mm
        vpn = addr >> PAGE_SHIFT
        if inside and driver_pte_missing(mm, addr):
            raise NotPresent(pf_error_code(kind), addr)
        vma = user_fault(task, addr, kind)
        page = fault_page(task, vma, addr, kind == "w")
        if not inside:
            return vma, page, None
        epc = mm.pfn_ptes.get(vpn)
        if not epcm_allows(mode, epc, addr & PAGE_MASK, kind):
            raise pf("EPCM", pf_error_code(kind) | PF_P | PF_SGX, addr)
        assert isinstance(epc, EpcPage)         # epcm_allows() checked it
        if kind == "x":
            self.code[vpn] = epc.data
        return vma, epc.data, epcm_prot(epc)

    def instruction(self, addr: int) -> bytes:
        """The bytes of the enclave's instruction at addr (up to MAX_INSN, from the
        code pages filled since the entry)."""
        code = b""
        while len(code) < MAX_INSN:
            page = self.code.get(addr >> PAGE_SHIFT)
            if page is None:
                break
            off = addr & ~PAGE_MASK
            piece = bytes(page[off:off + MAX_INSN - len(code)])
            code += piece
            addr += len(piece)
        return code

    def illegal(self, addr: int) -> Illegal | None:
        """The entry of ILLEGAL_IN_ENCLAVE the instruction at addr matches, or None."""
        code = self.instruction(addr)
        if not code or (code[0] not in PREFIX_BYTES and code[0] not in ILLEGAL_FIRST_BYTES):
            return None
        return illegal_in_enclave(code, self.mode.cpu.sgx2)

    # --- the AEX --------------------------------------------------------------------

    def exit_async(self, regs: PtRegs, trap: Trap | None) -> Trap | None:
        """The AEX of the thread whose registers are `regs` (RIP where it stopped) for
        the exception `trap`, or for an interrupt (None: the end of its slice):
        enclu.aex() saves them in the SSA frame and regs become the synthetic state
        at the AEP. Returns the exception as the kernel then receives it: a #PF's
        address is CR2, the page without its offset (so is the signal's si_addr)."""
        if trap is None:
            assign(regs, aex(self.mode, regs, None).regs)
            return None
        code = trap.error_code | (PF_U if trap.vector == PF else 0)
        left = aex(self.mode, regs, trap.vector, code, trap.address)
        assign(regs, left.regs)
        fault = trap.fault
        if fault is not None:
            fault = Fault(fault.signal, fault.code, left.cr2)
        return Trap(trap.vector, code, left.cr2, fault)
