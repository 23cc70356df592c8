"""Enclave mode: the ENCLU leaves and the asynchronous enclave exit (AEX) of the emulated
SGX CPU, as the Intel SDM Vol. 3D specifies them ("Enclave Access Control and Data
Structures" for the TCS, the SSA frame, REPORT, TARGETINFO and KEYREQUEST; "Enclave
Exiting Events" for the AEX; "Intel SGX Instruction References" for ENCLU[*]; the
ISE reference's "Asynchronous Enclave Exit Notify" chapter for AEX-Notify and
EDECCSSA). Linux has no code for these, the CPU executes them; Linux meets them in
arch/x86/entry/vdso/vsgx.S (EENTER/ERESUME and the AEP) and arch/x86/mm/fault.c
(the #PF an AEX delivers, X86_PF_SGX).

Each leaf takes the logical processor's enclave-mode state (`EnclaveMode`), the user
registers it reads (`PtRegs`: RAX, RBX, RCX, RDX, RIP at the ENCLU instruction) and a
page walk (`PageWalk`), and returns the registers after the leaf, or raises the fault
the SDM names (`EnclsFault`: #GP(0), #PF with its error code and address). A leaf that
faults changes no register. Memory operands are read and written through the EPC
pages after the walk and the EPCM checks, in the SDM's order; a #PF the EPCM raises
carries X86_PF_SGX (0x8000), one the page tables raise does not.

Enclave-mode accesses of enclave code (`enclave_access`) are checked the same way:
inside ELRANGE the EPCM (valid, this enclave, this linear address, PT_REG, not
BLOCKED/PENDING/MODIFIED, R/W/X); outside it an ordinary access, and an instruction
fetch there is #GP. An exception in enclave mode is an AEX (`aex`): the registers, the
FXSAVE image, EXITINFO and EXINFO go to the current SSA frame, CSSA goes up, and the
processor leaves enclave mode with the synthetic state at the AEP.

Keys (EREPORT, EGETKEY) are AES-CMACs under the CPU's fused secret (`SgxCpu.fuse_key`)
of the KEYDEPENDENCIES the SDM lists per key name (`KeyDependencies`), so they are
deterministic: a sealed blob opens again on the same CPU, and a REPORT verifies inside
the model with the REPORT key its target gets from EGETKEY.

What the model leaves out: 32-bit enclaves (the processor is in 64-bit mode: an
enclave without ATTRIBUTES.MODE64BIT cannot be entered), debug exceptions and
single-stepping (DBGOPTIN only changes what TF does), XSAVE components beyond x87 and
SSE (PtRegs holds an FXSAVE image: the SSA's XSTATE_BV says the others are in their
init state), CET, EACCEPT's SGX_NOT_TRACKED (EACCEPT does not ask whether the
EMODPR/EMODT it accepts was tracked: the driver runs ETRACK and its IPI after each, so
it always was), and the key derivation's PKCS padding input (the same constant in
every key of the model).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields, replace
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from ....errors import Fault
from ....mm.fault import fault_page, user_fault
from ....mm.page_alloc import Page
from ....uapi import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from ..ptrace import PtRegs
from .cpu import (
    GP,
    PF,
    UD,
    EnclsFault,
    EpcPage,
    SecsState,
    SgxCpu,
    canonical,
    in_elrange,
    xsave_size,
)
from .defs import (
    EACCEPT,
    EACCEPTCOPY,
    EDECCSSA,
    EENTER,
    EEXIT,
    EGETKEY,
    EINITTOKEN_KEY,
    EMODPE,
    EREPORT,
    ERESUME,
    EXINFO_FORMAT,
    EXIT_TYPE_HARDWARE,
    EXIT_TYPE_SOFTWARE,
    EXITINFO_TYPE_SHIFT,
    EXITINFO_VALID,
    FXSAVE_MXCSR,
    FXSAVE_SIZE,
    GPRSGX_AEXNOTIFY,
    GPRSGX_FORMAT,
    GPRSGX_REGS,
    GPRSGX_URSP,
    KEY_SIZE,
    KEYPOLICY_CONFIGID,
    KEYPOLICY_KSS,
    KEYPOLICY_MRENCLAVE,
    KEYPOLICY_MRSIGNER,
    KEYPOLICY_NOISVPRODID,
    KEYPOLICY_RESERVED,
    KEYREQUEST_FORMAT,
    PROVISION_KEY,
    PROVISION_SEAL_KEY,
    REPORT_BODY_FORMAT,
    REPORT_KEY,
    SEAL_KEY,
    SGX_ATTR_ASYNC_EXIT_NOTIFY,
    SGX_ATTR_DEBUG,
    SGX_ATTR_EINITTOKENKEY,
    SGX_ATTR_INIT,
    SGX_ATTR_KSS,
    SGX_ATTR_MODE64BIT,
    SGX_ATTR_PROVISIONKEY,
    SGX_INVALID_ATTRIBUTE,
    SGX_INVALID_CPUSVN,
    SGX_INVALID_ISVSVN,
    SGX_INVALID_KEYNAME,
    SGX_MISC_EXINFO,
    SGX_PAGE_ATTRIBUTES_MISMATCH,
    SGX_PAGE_TYPE_REG,
    SGX_PAGE_TYPE_TCS,
    SGX_PAGE_TYPE_TRIM,
    SGX_SECINFO_FLAGS_RESERVED_MASK,
    SGX_SECINFO_MODIFIED,
    SGX_SECINFO_PAGE_TYPE_MASK,
    SGX_SECINFO_PAGE_TYPE_SHIFT,
    SGX_SECINFO_PENDING,
    SGX_SECINFO_PERMISSION_MASK,
    SGX_SECINFO_PR,
    SGX_SECINFO_R,
    SGX_SECINFO_W,
    TARGETINFO_FORMAT,
    TCS_ACTIVE,
    TCS_AEP,
    TCS_CSSA,
    TCS_FLAGS_AEXNOTIFY,
    TCS_FLAGS_DBGOPTIN,
    TCS_FORMAT,
    TCS_STATE,
    XSAVE_HEADER,
    XSAVE_HEADER_RESERVED,
)

#: page-fault error code bits (arch/x86/include/asm/trap_pf.h X86_PF_*)
PF_P, PF_W, PF_U, PF_I, PF_SGX = 0x1, 0x2, 0x4, 0x10, 0x8000
#: RFLAGS bits (arch/x86/include/uapi/asm/processor-flags.h X86_EFLAGS_*)
CF, PF_FLAG, AF, ZF, SF, TF, DF, OF = 1 << 0, 1 << 2, 1 << 4, 1 << 6, 1 << 7, 1 << 8, 1 << 10, \
    1 << 11
NT, RF, VM, AC, ID = 1 << 14, 1 << 16, 1 << 17, 1 << 18, 1 << 21
#: the arithmetic flags EGETKEY clears (ZF says whether it failed)
STATUS_FLAGS = CF | PF_FLAG | AF | ZF | SF | OF
#: the RFLAGS bits ERESUME takes from the SSA frame
RESUMED_FLAGS = CF | PF_FLAG | AF | ZF | SF | DF | OF | NT | AC | ID | RF
#: the RFLAGS bits an AEX clears in the synthetic state
AEX_CLEARED_FLAGS = CF | PF_FLAG | AF | ZF | SF | OF | RF
#: ENCLU is 0F 01 D7 (a prefix makes it #UD), so the next instruction is 3 bytes on
ENCLU_SIZE = 3
#: MXCSR bits XRSTOR accepts (MXCSR_MASK with DAZ), the others are #GP
MXCSR_MASK = 0xFFFF
#: the x87/SSE synthetic state an AEX loads (SDM "Synthetic State on Asynchronous
#: Enclave Exit"): an FXSAVE image of FCW 037FH, MXCSR 1F80H, everything else 0
FXSAVE_INIT = struct.pack("<H22xI", 0x037F, 0x1F80).ljust(FXSAVE_SIZE, b"\0")
#: the exceptions an AEX reports in EXITINFO whatever MISCSELECT says, and their
#: EXIT_TYPE (#BP is a software exception); #GP and #PF need MISCSELECT.EXINFO
EXITINFO_TYPES = {0: EXIT_TYPE_HARDWARE, 1: EXIT_TYPE_HARDWARE, 3: EXIT_TYPE_SOFTWARE,
                  5: EXIT_TYPE_HARDWARE, 6: EXIT_TYPE_HARDWARE, 16: EXIT_TYPE_HARDWARE,
                  17: EXIT_TYPE_HARDWARE, 19: EXIT_TYPE_HARDWARE}


def gp(why: str) -> EnclsFault:
    """#GP(0)."""
    return EnclsFault(GP, why)


def pf(why: str, error_code: int, addr: int) -> EnclsFault:
    """#PF(error code) at the linear address addr."""
    return EnclsFault(PF, why, error_code, addr)


def pf_error_code(kind: str) -> int:
    """The X86_PF_* bits of a user access of kind "r", "w" or "x"."""
    return PF_U | (PF_W if kind == "w" else 0) | (PF_I if kind == "x" else 0)


# --- the page walk -----------------------------------------------------------------------

class PageWalk(Protocol):
    """How the CPU reaches memory: the frame the page tables map at a linear address
    after the kernel's fault handler ran (an EpcPage where the PTE maps an EPC page),
    or EnclsFault(#PF) with the error code the kernel could not fix."""

    def translate(self, addr: int, kind: str) -> EpcPage | Page: ...


class MmWalk:
    """The page walk of a task's address space (the hardware walk, then
    arch/x86/mm/fault.c do_user_addr_fault() when the PTE is missing or too weak:
    mm/fault.py user_fault() and fault_page(), which run the SGX driver's ->fault and
    its EAUG). A #PF the kernel answers with a signal is raised with the access's
    error code, and X86_PF_P if a PTE was present."""

    def __init__(self, task) -> None:
        self.task = task

    def translate(self, addr: int, kind: str) -> EpcPage | Page:
        mm = self.task.mm
        vpn = addr >> PAGE_SHIFT
        present = vpn in mm.pfn_ptes or vpn in mm.anon_pages or vpn in mm.file_ptes
        try:
            vma = user_fault(self.task, addr, kind)
            page = fault_page(self.task, vma, addr, kind == "w")
        except Fault:
            raise pf("page walk", pf_error_code(kind) | (PF_P if present else 0),
                     addr) from None
        pfn = mm.pfn_ptes.get(vpn)
        return pfn if isinstance(pfn, EpcPage) else page


# --- the logical processor ---------------------------------------------------------------

@dataclass(eq=False)
class EnclaveMode:
    """The enclave-mode state of one logical processor of `cpu` (the SDM's internal
    registers, "List of Internal CREG").

    Invariants: `tcs` is None exactly outside enclave mode (CR_ENCLAVE_MODE = 0); in
    enclave mode `tcs` is the TCS entered (CR_TCS_PA, STATE active, at linear address
    `tcs_la`: CR_TCS_LA), `secs` its enclave's SECS page (CR_ACTIVE_SECS), `ssa` the
    linear address of the current SSA frame (TCS.CSSA's) and `ssa_pages` its pages,
    checked at entry (CR_XSAVE_PAGE_n and CR_GPR_PA: an AEX writes through them and
    cannot fault); `saved_fs_base`/`saved_gs_base` are the outside FS/GS bases
    (CR_SAVE_FS/GS), `saved_tf` RFLAGS.TF at entry (CR_SAVE_TF) and `dbgoptin`
    TCS.FLAGS.DBGOPTIN at entry (CR_DBGOPTIN).
    """

    cpu: SgxCpu
    tcs: EpcPage | None = None
    tcs_la: int = 0
    secs: EpcPage | None = None
    ssa: int = 0
    ssa_pages: tuple[EpcPage, ...] = ()
    saved_fs_base: int = 0
    saved_gs_base: int = 0
    saved_tf: bool = False
    dbgoptin: bool = False

    @property
    def active(self) -> bool:
        """CR_ENCLAVE_MODE."""
        return self.tcs is not None

    @property
    def enclave(self) -> SecsState:
        """The SECS state of the enclave being executed."""
        assert self.secs is not None and self.secs.enclave is not None
        return self.secs.enclave

    def in_elrange(self, addr: int) -> bool:
        """CR_ELRANGE contains addr."""
        return self.secs is not None and in_elrange(self.enclave, addr)

    def leave(self) -> None:
        """Leave enclave mode (EEXIT, AEX): the TCS becomes available again."""
        assert self.tcs is not None
        self.tcs.data[TCS_STATE:TCS_STATE + 8] = bytes(8)
        self.enclave.leave(self)
        self.tcs = self.secs = None
        self.ssa_pages = ()


@dataclass(frozen=True)
class TcsFields:
    """The TCS fields EENTER/ERESUME read (SDM "Thread Control Structure"), offsets
    relative to the enclave base."""

    state: int
    flags: int
    ossa: int
    cssa: int
    nssa: int
    oentry: int
    ofsbase: int
    ogsbase: int

    @classmethod
    def read(cls, tcs: EpcPage) -> TcsFields:
        state, flags, ossa, cssa, nssa, oentry, _aep, ofs, ogs, _fsl, _gsl = \
            TCS_FORMAT.unpack_from(tcs.data)
        return cls(state, flags, ossa, cssa, nssa, oentry, ofs, ogs)


def set_cssa(tcs: EpcPage, cssa: int) -> None:
    struct.pack_into("<I", tcs.data, TCS_CSSA, cssa)


# --- EPCM checks -------------------------------------------------------------------------

def epcm_allows(mode: EnclaveMode, frame: object, page: int, kind: str) -> bool:
    """An enclave-mode access of `kind` to the enclave page at linear address `page`
    may use `frame`: a valid EPC page of this enclave, for this address, PT_REG, not
    BLOCKED, PENDING or MODIFIED, with the EPCM permission."""
    return (isinstance(frame, EpcPage) and frame.valid and frame.secs is mode.secs
            and frame.addr == page and frame.pt == SGX_PAGE_TYPE_REG
            and not (frame.blocked or frame.pending or frame.modified)
            and {"r": frame.r, "w": frame.w, "x": frame.x}[kind])


def enclave_access(mode: EnclaveMode, walk: PageWalk, addr: int, kind: str) -> Page:
    """The frame an access of enclave code at addr reads or writes (kind "r", "w";
    "x": an instruction fetch). Outside ELRANGE an ordinary access (an EPC page there
    reads as the abort page), and a fetch is #GP(0); inside, the walk then the EPCM:
    #PF with X86_PF_SGX when the EPCM refuses."""
    inside = mode.in_elrange(addr)
    if kind == "x" and not inside:
        raise gp("instruction fetch outside ELRANGE")
    frame = walk.translate(addr, kind)
    if not inside:
        return frame.cpu_page() if isinstance(frame, EpcPage) else frame
    if not epcm_allows(mode, frame, addr & PAGE_MASK, kind):
        raise pf("EPCM", pf_error_code(kind) | PF_P | PF_SGX, addr)
    assert isinstance(frame, EpcPage)
    return frame.data


def enclave_read(mode: EnclaveMode, walk: PageWalk, addr: int, n: int) -> bytes:
    """n bytes at addr, as enclave code reads them (page by page)."""
    out = bytearray()
    for a, off, chunk in _pieces(addr, n):
        out += enclave_access(mode, walk, a, "r")[off:off + chunk]
    return bytes(out)


def enclave_write(mode: EnclaveMode, walk: PageWalk, addr: int, data: bytes) -> None:
    """Write data at addr as enclave code does (each page checked before it is written:
    a fault leaves the pages before it written)."""
    pos = 0
    for a, off, chunk in _pieces(addr, len(data)):
        enclave_access(mode, walk, a, "w")[off:off + chunk] = data[pos:pos + chunk]
        pos += chunk


def _pieces(addr: int, n: int):
    pos = 0
    while pos < n:
        a = addr + pos
        off = a & (PAGE_SIZE - 1)
        chunk = min(PAGE_SIZE - off, n - pos)
        yield a, off, chunk
        pos += chunk


def _check_operand(mode: EnclaveMode, addr: int, align: int, what: str) -> None:
    """A leaf's memory operand must be aligned and inside CR_ELRANGE: #GP(0)."""
    if addr % align or not mode.in_elrange(addr):
        raise gp(f"{what} misaligned or outside ELRANGE")


def _resolve(walk: PageWalk, addr: int, kind: str, what: str) -> EpcPage:
    """The EPC page a leaf operand translates to ("does not resolve within an EPC":
    #PF)."""
    frame = walk.translate(addr, kind)
    if not isinstance(frame, EpcPage):
        raise pf(f"{what} not in the EPC", pf_error_code(kind) | PF_P | PF_SGX, addr)
    return frame


def _check_epcm(mode: EnclaveMode, epc: EpcPage, addr: int, kind: str, what: str) -> None:
    if not epcm_allows(mode, epc, addr & PAGE_MASK, kind):
        raise pf(f"{what}: EPCM", pf_error_code(kind) | PF_P | PF_SGX, addr)


def _operand(mode: EnclaveMode, walk: PageWalk, addr: int, align: int, kind: str,
             what: str) -> EpcPage:
    """One operand of EREPORT/EGETKEY, checked as the SDM does each in turn: alignment
    and ELRANGE (#GP), the EPC (#PF), the EPCM with R or W (#PF)."""
    _check_operand(mode, addr, align, what)
    epc = _resolve(walk, addr, kind, what)
    _check_epcm(mode, epc, addr, kind, what)
    return epc


# --- EENTER, ERESUME, EEXIT, AEX ------------------------------------------------------------

def _entered_tcs(mode: EnclaveMode, walk: PageWalk, regs: PtRegs) -> tuple[EpcPage, TcsFields]:
    """EENTER's and ERESUME's checks of RBX and the TCS, in the SDM's order (#GP(0)
    or #PF), up to the SSA frame."""
    tcs_la = regs.rbx
    if tcs_la % PAGE_SIZE:
        raise gp("TCS not page aligned")
    tcs = _resolve(walk, tcs_la, "r", "TCS")
    if not canonical(regs.rcx):
        raise gp("AEP not canonical")
    if not tcs.valid or tcs.blocked or tcs.addr != tcs_la or tcs.pt != SGX_PAGE_TYPE_TCS or \
            tcs.pending or tcs.modified:
        raise pf("not a TCS", PF_U | PF_P | PF_SGX, tcs_la)
    tcs_fields = TcsFields.read(tcs)
    if tcs_fields.ossa % PAGE_SIZE or tcs_fields.ofsbase % PAGE_SIZE or tcs_fields.ogsbase % PAGE_SIZE:
        raise gp("TCS.OSSA/OFSBASE/OGSBASE not page aligned")
    enclave = tcs.owner()
    if not (canonical(enclave.base + tcs_fields.ofsbase) and canonical(enclave.base + tcs_fields.ogsbase)):
        raise gp("FS/GS base not canonical")
    if tcs_fields.flags & ~_tcs_flags(mode.cpu):
        raise gp("reserved TCS.FLAGS bit")
    aexnotify = bool(enclave.attributes & SGX_ATTR_ASYNC_EXIT_NOTIFY)
    if aexnotify != bool(tcs_fields.flags & TCS_FLAGS_AEXNOTIFY) and \
            not tcs_fields.flags & TCS_FLAGS_DBGOPTIN:
        raise gp("ATTRIBUTES.AEXNOTIFY differs from TCS.FLAGS.AEXNOTIFY")
    if not enclave.initialized:
        raise gp("enclave not initialized")
    if not enclave.attributes & SGX_ATTR_MODE64BIT:
        raise gp("a 32-bit enclave entered in 64-bit mode")
    return tcs, tcs_fields


def _tcs_flags(cpu: SgxCpu) -> int:
    """The TCS.FLAGS bits this CPU defines (AEXNOTIFY where it has AEX-Notify)."""
    return TCS_FLAGS_DBGOPTIN | \
        (TCS_FLAGS_AEXNOTIFY if cpu.attributes & SGX_ATTR_ASYNC_EXIT_NOTIFY else 0)


def ssa_frame(enclave: SecsState, tcs: TcsFields, index: int) -> int:
    """The linear address of SSA frame `index` of a TCS."""
    return enclave.base + tcs.ossa + index * enclave.ssa_frame_size * PAGE_SIZE


def gprsgx_addr(enclave: SecsState, frame: int) -> int:
    """GPRSGX: the last bytes of an SSA frame."""
    return frame + enclave.ssa_frame_size * PAGE_SIZE - GPRSGX_FORMAT.size


def _check_ssa_frame(walk: PageWalk, tcs: EpcPage, frame: int) -> tuple[EpcPage, ...]:
    """The pages of an SSA frame the CPU will write: those of the XSAVE area and the
    one holding GPRSGX, each read/write accessible (the walk) and a valid, unblocked,
    REG, R and W EPC page of the TCS's enclave at its address (#PF otherwise)."""
    enclave = tcs.owner()
    xsave_end = frame + xsave_size(enclave.xfrm)
    addrs = list(range(frame, xsave_end, PAGE_SIZE))
    gpr_page = gprsgx_addr(enclave, frame) & PAGE_MASK
    if gpr_page not in addrs:
        addrs.append(gpr_page)
    pages = []
    for addr in addrs:
        epc = _resolve(walk, addr, "w", "SSA frame")
        if not (epc.valid and not epc.blocked and not epc.pending and not epc.modified
                and epc.addr == addr and epc.pt == SGX_PAGE_TYPE_REG and epc.secs is tcs.secs
                and epc.r and epc.w):
            raise pf("SSA frame: EPCM", PF_U | PF_W | PF_P | PF_SGX, addr)
        pages.append(epc)
    return tuple(pages)


class _Frame:
    """Bytes of the current SSA frame through the pages checked at entry (the CPU's
    cached physical addresses: no walk, no fault)."""

    def __init__(self, mode: EnclaveMode) -> None:
        self.pages = {epc.addr: epc for epc in mode.ssa_pages}

    def view(self, addr: int, n: int) -> memoryview:
        epc = self.pages[addr & PAGE_MASK]
        off = addr & (PAGE_SIZE - 1)
        assert off + n <= PAGE_SIZE
        return epc.data[off:off + n]


def _enter(mode: EnclaveMode, regs: PtRegs, tcs: EpcPage, tcs_fields: TcsFields, frame: int,
           pages: tuple[EpcPage, ...]) -> None:
    """The common end of EENTER and ERESUME: enclave mode on, the TCS busy, the AEP
    stored, the outside FS/GS and TF saved."""
    assert tcs.secs is not None
    tcs.data[TCS_STATE:TCS_STATE + 8] = struct.pack("<Q", TCS_ACTIVE)
    tcs.data[TCS_AEP:TCS_AEP + 8] = struct.pack("<Q", regs.rcx)
    mode.tcs, mode.tcs_la, mode.secs = tcs, regs.rbx, tcs.secs
    mode.ssa, mode.ssa_pages = frame, pages
    mode.saved_fs_base, mode.saved_gs_base = regs.fs_base, regs.gs_base
    mode.dbgoptin = bool(tcs_fields.flags & TCS_FLAGS_DBGOPTIN)
    mode.saved_tf = bool(regs.eflags & TF)
    mode.enclave.enter(mode)


def eenter(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU[EENTER]: enter the enclave at TCS RBX, RCX the AEP. After it RAX = CSSA,
    RCX = the address after ENCLU, RIP = base + OENTRY, FS/GS bases = base +
    OFSBASE/OGSBASE; the outside RSP and RBP are saved in the SSA frame's GPRSGX
    (URSP, URBP); TF is cleared unless the entry opts in to debugging. #GP(0) for a
    busy TCS, CSSA >= NSSA, ...; #PF for a TCS or SSA frame the EPCM refuses."""
    tcs, tcs_fields = _entered_tcs(mode, walk, regs)
    enclave = tcs.owner()
    if tcs_fields.cssa >= tcs_fields.nssa:
        raise gp("no free SSA frame (CSSA >= NSSA)")
    frame = ssa_frame(enclave, tcs_fields, tcs_fields.cssa)
    pages = _check_ssa_frame(walk, tcs, frame)
    return _enter_at_oentry(mode, regs, tcs, tcs_fields, frame, pages)


def _enter_at_oentry(mode: EnclaveMode, regs: PtRegs, tcs: EpcPage, tcs_fields: TcsFields,
                     frame: int, pages: tuple[EpcPage, ...]) -> PtRegs:
    """EENTER's entry (and ERESUME's delivery of an AEX-Notify)."""
    enclave = tcs.owner()
    target = enclave.base + tcs_fields.oentry
    if not canonical(target):
        raise gp("OENTRY not canonical")
    if tcs_fields.state == TCS_ACTIVE:
        raise gp("TCS busy")
    _enter(mode, regs, tcs, tcs_fields, frame, pages)
    gpr = _Frame(mode).view(gprsgx_addr(enclave, frame), GPRSGX_FORMAT.size)
    struct.pack_into("<QQ", gpr, GPRSGX_URSP, regs.rsp, regs.rbp)
    new = regs.copy()
    new.rax, new.rcx, new.rip = tcs_fields.cssa, regs.rip + ENCLU_SIZE, target
    new.fs_base = enclave.base + tcs_fields.ofsbase
    new.gs_base = enclave.base + tcs_fields.ogsbase
    if not mode.dbgoptin:
        new.eflags &= ~TF
    return new


def eresume(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU[ERESUME]: resume the thread of TCS RBX from SSA frame CSSA - 1 (its
    registers, RFLAGS' status bits, FS/GS bases, FXSAVE image), then CSSA - 1. #GP(0)
    when CSSA = 0, the TCS is busy, or the frame's XSAVE header is malformed. With
    AEX-Notify on (ATTRIBUTES, TCS.FLAGS and the frame's GPRSGX.AEXNOTIFY bit 0)
    ERESUME delivers the notification instead: an entry at OENTRY as EENTER's, on the
    next frame, the interrupted one left in place (EDECCSSA pops it)."""
    tcs, tcs_fields = _entered_tcs(mode, walk, regs)
    enclave = tcs.owner()
    if tcs_fields.cssa == 0:
        raise gp("no SSA frame to resume (CSSA = 0)")
    frame = ssa_frame(enclave, tcs_fields, tcs_fields.cssa - 1)
    pages = _check_ssa_frame(walk, tcs, frame)
    saved = _read_gprsgx(pages, enclave, frame)
    if tcs_fields.flags & TCS_FLAGS_AEXNOTIFY and saved["aexnotify"] & 1 and \
            enclave.attributes & SGX_ATTR_ASYNC_EXIT_NOTIFY:
        return _deliver_aex_notify(mode, regs, walk, tcs, tcs_fields)
    if not (canonical(saved["rip"]) and canonical(saved["fsbase"]) and
            canonical(saved["gsbase"])):
        raise gp("saved RIP or FS/GS base not canonical")
    if tcs_fields.state == TCS_ACTIVE:
        raise gp("TCS busy")
    fxsave = _xrstor(pages, enclave, frame)
    _enter(mode, regs, tcs, tcs_fields, frame, pages)
    set_cssa(tcs, tcs_fields.cssa - 1)
    new = regs.copy()
    for name in GPRSGX_REGS:
        setattr(new, name, saved[name])
    new.rip, new.fs_base, new.gs_base = saved["rip"], saved["fsbase"], saved["gsbase"]
    new.eflags = (regs.eflags & ~(RESUMED_FLAGS | VM)) | (saved["rflags"] & RESUMED_FLAGS)
    if not mode.dbgoptin:
        new.eflags &= ~TF
    new.fxsave = fxsave
    return new


def _deliver_aex_notify(mode: EnclaveMode, regs: PtRegs, walk: PageWalk, tcs: EpcPage,
                        tcs_fields: TcsFields) -> PtRegs:
    if tcs_fields.cssa >= tcs_fields.nssa:
        raise gp("no free SSA frame for the AEX-Notify entry")
    frame = ssa_frame(tcs.owner(), tcs_fields, tcs_fields.cssa)
    pages = _check_ssa_frame(walk, tcs, frame)
    return _enter_at_oentry(mode, regs, tcs, tcs_fields, frame, pages)


def _read_gprsgx(pages: tuple[EpcPage, ...], enclave: SecsState, frame: int) -> dict[str, int]:
    addr = gprsgx_addr(enclave, frame)
    epc = next(p for p in pages if p.addr == addr & PAGE_MASK)
    values = GPRSGX_FORMAT.unpack_from(epc.data, addr & (PAGE_SIZE - 1))
    names = (*GPRSGX_REGS, "rflags", "rip", "ursp", "urbp", "exitinfo", "aexnotify",
             "fsbase", "gsbase")
    return dict(zip(names, values, strict=True))


def _xrstor(pages: tuple[EpcPage, ...], enclave: SecsState, frame: int) -> bytes:
    """The FXSAVE image ERESUME restores from the frame's XSAVE area, after XRSTOR's
    checks (#GP(0)): XSTATE_BV within XFRM, header bytes 520-535 zero, no reserved
    MXCSR bit."""
    area = pages[0].data                 # the XSAVE area starts the frame
    xstate_bv = struct.unpack_from("<Q", area, XSAVE_HEADER)[0]
    mxcsr = struct.unpack_from("<I", area, FXSAVE_MXCSR)[0]
    if xstate_bv & ~enclave.xfrm or any(area[XSAVE_HEADER_RESERVED]) or mxcsr & ~MXCSR_MASK:
        raise gp("XRSTOR of the SSA frame")
    return bytes(area[:FXSAVE_SIZE])


def eexit(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU[EEXIT]: leave the enclave for RBX (#GP(0) if not canonical); RCX = the AEP
    of the entry (TCS.AEP), FS/GS bases and TF as at entry, the TCS available again.
    RSP, RBP and the other registers are left as the enclave set them."""
    if not canonical(regs.rbx):
        raise gp("EEXIT target not canonical")
    assert mode.tcs is not None
    new = regs.copy()
    new.rip = regs.rbx
    new.rcx = struct.unpack_from("<Q", mode.tcs.data, TCS_AEP)[0]
    new.fs_base, new.gs_base = mode.saved_fs_base, mode.saved_gs_base
    new.eflags = _outside_tf(mode, new.eflags)
    mode.leave()
    return new


def _outside_tf(mode: EnclaveMode, eflags: int) -> int:
    """RFLAGS.TF back as it was at entry (an opt-out entry saved and cleared it)."""
    if mode.dbgoptin:
        return eflags
    return (eflags & ~TF) | (TF if mode.saved_tf else 0)


@dataclass(frozen=True)
class Aex:
    """What an AEX leaves: the synthetic registers (RIP at the AEP), and the exception
    the kernel then receives (vector None for an interrupt), with CR2 (a #PF's address
    with its low 12 bits cleared: the enclave's layout within a page stays secret)."""

    regs: PtRegs
    vector: int | None
    error_code: int
    cr2: int


def aex(mode: EnclaveMode, regs: PtRegs, vector: int | None, error_code: int = 0,
        addr: int = 0) -> Aex:
    """The asynchronous enclave exit for an exception `vector` raised in enclave mode
    with registers `regs` (RIP at the faulting instruction), or an interrupt (vector
    None). The SSA frame gets GPRSGX (the registers, RFLAGS with TF clear, RIP, FS/GS
    bases, EXITINFO), EXINFO (#PF: the address and error code; #GP: the error code)
    when MISCSELECT.EXINFO is set, and the XSAVE area (the FXSAVE image, XSTATE_BV);
    CSSA goes up; the processor leaves enclave mode with RAX = ERESUME, RBX = the TCS,
    RCX = RIP = the AEP, RSP/RBP = URSP/URBP, the other registers 0, the outside FS/GS
    and the x87/SSE init state (SDM "AEX Operational Detail")."""
    assert mode.tcs is not None
    enclave = mode.enclave
    frame = _Frame(mode)
    _save_xsave(frame, mode.ssa, enclave.xfrm, regs.fxsave)
    gpr_addr = gprsgx_addr(enclave, mode.ssa)
    gpr = frame.view(gpr_addr, GPRSGX_FORMAT.size)
    ursp, urbp = struct.unpack_from("<QQ", gpr, GPRSGX_URSP)
    aexnotify = gpr[GPRSGX_AEXNOTIFY]
    exitinfo = _exitinfo(enclave, vector)
    GPRSGX_FORMAT.pack_into(gpr, 0, *(getattr(regs, r) for r in GPRSGX_REGS),
                            regs.eflags & ~TF, regs.rip, ursp, urbp, exitinfo, aexnotify,
                            regs.fs_base, regs.gs_base)
    if exitinfo and vector in (GP, PF):
        exinfo = frame.view(gpr_addr - EXINFO_FORMAT.size, EXINFO_FORMAT.size)
        EXINFO_FORMAT.pack_into(exinfo, 0, addr if vector == PF else 0, error_code)
    cssa = struct.unpack_from("<I", mode.tcs.data, TCS_CSSA)[0]
    set_cssa(mode.tcs, cssa + 1)
    aep = struct.unpack_from("<Q", mode.tcs.data, TCS_AEP)[0]
    new = PtRegs(rax=ERESUME, rbx=mode.tcs_la, rcx=aep, rip=aep, rsp=ursp, rbp=urbp,
                 fs_base=mode.saved_fs_base, gs_base=mode.saved_gs_base,
                 eflags=_outside_tf(mode, regs.eflags & ~AEX_CLEARED_FLAGS),
                 fxsave=FXSAVE_INIT)
    mode.leave()
    return Aex(new, vector, error_code, addr & PAGE_MASK if vector == PF else 0)


def _exitinfo(enclave: SecsState, vector: int | None) -> int:
    """EXITINFO: VALID, EXIT_TYPE and VECTOR for the exceptions reported inside the
    enclave (#GP and #PF only with MISCSELECT.EXINFO), 0 for everything else."""
    if vector in EXITINFO_TYPES:
        kind = EXITINFO_TYPES[vector]
    elif vector in (GP, PF) and enclave.miscselect & SGX_MISC_EXINFO:
        kind = EXIT_TYPE_HARDWARE
    else:
        return 0
    return EXITINFO_VALID | kind << EXITINFO_TYPE_SHIFT | vector


def _save_xsave(frame: _Frame, ssa: int, xfrm: int, fxsave: bytes) -> None:
    """XSAVE into the frame: the legacy region, XSTATE_BV (x87 and SSE: the model holds
    no other component, which is thus in its init state), the rest of the header 0."""
    frame.view(ssa, FXSAVE_SIZE)[:] = fxsave
    header = frame.view(ssa + XSAVE_HEADER, 64)
    header[:] = struct.pack("<Q", xfrm & 3).ljust(64, b"\0")


def edeccssa(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU[EDECCSSA] (AEX-Notify): make SSA frame CSSA - 1 the current one and
    CSSA - 1 the CSSA, from inside the enclave (after an AEX-Notify entry, to go back
    to the interrupted context without leaving). #GP(0) when CSSA = 0; #PF when the
    frame's pages are not valid, writable REG pages of the enclave."""
    assert mode.tcs is not None
    tcs_fields = TcsFields.read(mode.tcs)
    if tcs_fields.cssa == 0:
        raise gp("CSSA = 0")
    frame = ssa_frame(mode.enclave, tcs_fields, tcs_fields.cssa - 1)
    pages = _check_ssa_frame(walk, mode.tcs, frame)
    set_cssa(mode.tcs, tcs_fields.cssa - 1)
    mode.ssa, mode.ssa_pages = frame, pages
    return _next(regs)


def _next(regs: PtRegs) -> PtRegs:
    new = regs.copy()
    new.rip = regs.rip + ENCLU_SIZE
    return new


# --- EACCEPT, EACCEPTCOPY, EMODPE (SGX2) --------------------------------------------------

def _secinfo(mode: EnclaveMode, epc: EpcPage, addr: int) -> int:
    """The SECINFO at addr (an R EPC page of this enclave, #PF), its flags; the 56
    reserved bytes must be 0 (#GP(0))."""
    _check_epcm(mode, epc, addr, "r", "SECINFO")
    off = addr & (PAGE_SIZE - 1)
    raw = bytes(epc.data[off:off + 64])
    if any(raw[8:]):
        raise gp("SECINFO reserved bytes")
    return struct.unpack_from("<Q", raw)[0]


def _with_rax(regs: PtRegs, rax: int) -> PtRegs:
    """The registers after a leaf that answers in RAX (ZF set on an error code)."""
    new = _next(regs)
    new.rax = rax
    new.eflags = (regs.eflags & ~STATUS_FLAGS) | (ZF if rax else 0)
    return new


def eaccept(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU[EACCEPT]: accept the EAUG, EMODPR or EMODT of the page at RCX with the
    SECINFO at RBX (64-byte aligned) whose flags must match the EPCM exactly (see
    accept()); RAX = 0 or SGX_PAGE_ATTRIBUTES_MISMATCH."""
    _check_operand(mode, regs.rbx, 64, "SECINFO")
    _check_operand(mode, regs.rcx, PAGE_SIZE, "EACCEPT page")
    secinfo_page = _resolve(walk, regs.rbx, "r", "SECINFO")
    epc = _resolve(walk, regs.rcx, "r", "EACCEPT page")
    return _with_rax(regs, accept(mode, epc, regs.rcx, _secinfo(mode, secinfo_page, regs.rbx)))


def accept_page(mode: EnclaveMode, walk: PageWalk, addr: int, secinfo: int) -> int:
    """EACCEPT of the page at addr given its SECINFO flags: RCX page aligned and inside
    ELRANGE (#GP), an EPC page (#PF), then accept()."""
    _check_operand(mode, addr, PAGE_SIZE, "EACCEPT page")
    return accept(mode, _resolve(walk, addr, "r", "EACCEPT page"), addr, secinfo)


def accept(mode: EnclaveMode, epc: EpcPage, addr: int, flags: int) -> int:
    """EACCEPT once SECINFO is read, in the SDM's order: reserved SECINFO bits, an
    illegal request (REG needs PR or PENDING and no MODIFIED, TCS/TRIM need MODIFIED
    alone): #GP(0); a page that is not a valid, unblocked REG/TCS/TRIM page of this
    enclave: #PF; then SECINFO must equal the EPCM entry in address, PT, R/W/X,
    PENDING and MODIFIED (PR is not compared), else SGX_PAGE_ATTRIBUTES_MISMATCH;
    then a new TCS's contents are checked (#GP). Success clears PENDING, MODIFIED and
    PR and returns 0."""
    if flags & SGX_SECINFO_FLAGS_RESERVED_MASK or not _accept_request_legal(flags):
        raise gp("SECINFO flags")
    if not epc.valid or epc.blocked or epc.secs is not mode.secs or \
            epc.pt not in (SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS, SGX_PAGE_TYPE_TRIM):
        raise pf("EACCEPT page: EPCM", PF_U | PF_P | PF_SGX, addr)
    if epc.addr != addr or epcm_flags(epc) != flags & ~SGX_SECINFO_PR:
        return SGX_PAGE_ATTRIBUTES_MISMATCH
    if epc.pt == SGX_PAGE_TYPE_TCS and not _tcs_acceptable(epc, mode.enclave):
        raise gp("new TCS malformed")
    epc.pending = epc.modified = epc.pr = False
    return 0


def _accept_request_legal(flags: int) -> bool:
    """EACCEPT's "combination of requested PT, PENDING and MODIFIED is legal"."""
    pt = (flags & SGX_SECINFO_PAGE_TYPE_MASK) >> SGX_SECINFO_PAGE_TYPE_SHIFT
    pr, pending, modified = (bool(flags & bit) for bit in
                             (SGX_SECINFO_PR, SGX_SECINFO_PENDING, SGX_SECINFO_MODIFIED))
    if pt == SGX_PAGE_TYPE_REG:
        return (pr or pending) and not modified
    return pt in (SGX_PAGE_TYPE_TCS, SGX_PAGE_TYPE_TRIM) and modified and not (pr or pending)


def epcm_flags(epc: EpcPage) -> int:
    """The EPCM entry's PT, R/W/X, PENDING and MODIFIED as SECINFO flags."""
    return epc.pt << SGX_SECINFO_PAGE_TYPE_SHIFT | epc.perms() | \
        (SGX_SECINFO_PENDING if epc.pending else 0) | \
        (SGX_SECINFO_MODIFIED if epc.modified else 0)


def _tcs_acceptable(tcs: EpcPage, enclave: SecsState) -> bool:
    """EACCEPT's checks of a new TCS: reserved area zero, FLAGS.DBGOPTIN clear,
    CSSA < NSSA, AEP and STATE zero; a 32-bit enclave's FS/GS limits end in 0xFFF."""
    (state, flags, _ossa, cssa, nssa, _oentry, aep, _ofs, _ogs, fslimit, gslimit) = \
        TCS_FORMAT.unpack_from(tcs.data)
    if any(tcs.data[TCS_FORMAT.size:]) or flags & TCS_FLAGS_DBGOPTIN or cssa >= nssa or \
            aep or state:
        return False
    return bool(enclave.attributes & SGX_ATTR_MODE64BIT) or \
        (fslimit & 0xFFF == 0xFFF and gslimit & 0xFFF == 0xFFF)


def eacceptcopy(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU[EACCEPTCOPY]: fill the pending EAUGed page at RCX with the EPC page at RDX
    and give it the SECINFO's (RBX) permissions (see accept_copy()); RAX = 0 or
    SGX_PAGE_ATTRIBUTES_MISMATCH."""
    _check_operand(mode, regs.rbx, 64, "SECINFO")
    _check_operand(mode, regs.rcx, PAGE_SIZE, "destination")
    _check_operand(mode, regs.rdx, PAGE_SIZE, "source")
    secinfo_page = _resolve(walk, regs.rbx, "r", "SECINFO")
    secinfo = _secinfo(mode, secinfo_page, regs.rbx)
    return _with_rax(regs, _copy_checked(mode, walk, regs.rcx, regs.rdx, secinfo))


def accept_copy(mode: EnclaveMode, walk: PageWalk, dst: int, src: int, secinfo: int) -> int:
    """EACCEPTCOPY of src to dst given the SECINFO flags: both page aligned and inside
    ELRANGE (#GP), then as the leaf."""
    _check_operand(mode, dst, PAGE_SIZE, "destination")
    _check_operand(mode, src, PAGE_SIZE, "source")
    return _copy_checked(mode, walk, dst, src, secinfo)


def _copy_checked(mode: EnclaveMode, walk: PageWalk, dst: int, src: int, flags: int) -> int:
    """EACCEPTCOPY once the operands are aligned: the source a readable REG page of the
    enclave (#PF); SECINFO without reserved bits, PT_REG, W only with R (#GP); the
    destination a valid, unblocked page of this enclave (#PF) that must be a PENDING
    REG page as EAUG left it (RW, not MODIFIED, at dst), else
    SGX_PAGE_ATTRIBUTES_MISMATCH; then the copy, the SECINFO's permissions, PENDING
    cleared: 0."""
    source = _resolve(walk, src, "r", "source")
    _check_epcm(mode, source, src, "r", "source")
    target = _resolve(walk, dst, "w", "destination")
    pt = (flags & SGX_SECINFO_PAGE_TYPE_MASK) >> SGX_SECINFO_PAGE_TYPE_SHIFT
    perms = flags & SGX_SECINFO_PERMISSION_MASK
    if flags & (SGX_SECINFO_FLAGS_RESERVED_MASK | SGX_SECINFO_PENDING | SGX_SECINFO_MODIFIED |
                SGX_SECINFO_PR) or pt != SGX_PAGE_TYPE_REG or \
            (perms & SGX_SECINFO_W and not perms & SGX_SECINFO_R):
        raise gp("SECINFO flags")
    if not target.valid or target.blocked or target.secs is not mode.secs:
        raise pf("destination: EPCM", PF_U | PF_W | PF_P | PF_SGX, dst)
    if not target.pending or target.modified or target.pt != SGX_PAGE_TYPE_REG or \
            target.addr != dst or target.perms() != SGX_SECINFO_R | SGX_SECINFO_W:
        return SGX_PAGE_ATTRIBUTES_MISMATCH
    target.data[:] = source.data
    target.set_perms(perms)
    target.pending = False
    return 0


def emodpe(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU[EMODPE]: extend the EPCM permissions of the page at RCX by the SECINFO's
    (RBX) R/W/X (see extend_permissions()). No error codes, only faults."""
    _check_operand(mode, regs.rbx, 64, "SECINFO")
    _check_operand(mode, regs.rcx, PAGE_SIZE, "EMODPE page")
    secinfo_page = _resolve(walk, regs.rbx, "r", "SECINFO")
    epc = _resolve(walk, regs.rcx, "r", "EMODPE page")
    extend(mode, epc, regs.rcx, _secinfo(mode, secinfo_page, regs.rbx))
    return _next(regs)


def extend_permissions(mode: EnclaveMode, walk: PageWalk, addr: int, secinfo: int) -> None:
    """EMODPE of the page at addr given the SECINFO flags: page aligned and inside
    ELRANGE (#GP), an EPC page (#PF), then extend()."""
    _check_operand(mode, addr, PAGE_SIZE, "EMODPE page")
    extend(mode, _resolve(walk, addr, "r", "EMODPE page"), addr, secinfo)


def extend(mode: EnclaveMode, epc: EpcPage, addr: int, flags: int) -> None:
    """EMODPE once SECINFO is read: reserved bits, or W without R: #GP(0); a page that
    is not a valid REG page of this enclave at addr, or is PENDING or MODIFIED: #PF;
    then EPCM R/W/X |= SECINFO's."""
    perms = flags & SGX_SECINFO_PERMISSION_MASK
    if flags & (SGX_SECINFO_FLAGS_RESERVED_MASK | SGX_SECINFO_PAGE_TYPE_MASK |
                SGX_SECINFO_PENDING | SGX_SECINFO_MODIFIED | SGX_SECINFO_PR) or \
            (perms & SGX_SECINFO_W and not perms & SGX_SECINFO_R):
        raise gp("SECINFO flags")
    if not (epc.valid and not epc.blocked and epc.secs is mode.secs and epc.addr == addr and
            epc.pt == SGX_PAGE_TYPE_REG and not epc.pending and not epc.modified):
        raise pf("EMODPE page: EPCM", PF_U | PF_P | PF_SGX, addr)
    epc.set_perms(epc.perms() | perms)


# --- EREPORT, EGETKEY ---------------------------------------------------------------------

@dataclass(frozen=True)
class KeyDependencies:
    """TMP_KEYDEPENDENCIES: what a derived key depends on (the SDM lists, per key name,
    which of them come from the request, the SECS or the CPU; the rest are 0).
    derive() is an AES-CMAC under the CPU's fused secret over all of them in this
    order, with the CPU's seal fuses when `seal_fuses`."""

    keyname: int
    isvprodid: int = 0
    isvsvn: int = 0
    owner_epoch: bytes = bytes(16)
    attributes: tuple[int, int] = (0, 0)
    attributes_mask: tuple[int, int] = (0, 0)
    mrenclave: bytes = bytes(32)
    mrsigner: bytes = bytes(32)
    keyid: bytes = bytes(32)
    seal_fuses: bool = False
    cpusvn: bytes = bytes(16)
    miscselect: int = 0
    miscmask: int = 0
    keypolicy: int = 0
    configid: bytes = bytes(64)
    configsvn: int = 0
    isvfamilyid: bytes = bytes(16)
    isvextprodid: bytes = bytes(16)

    def derive(self, cpu: SgxCpu) -> bytes:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "seal_fuses":
                value = cpu.seal_fuses if value else bytes(16)
            parts.append(_encode(value))
        return cmac(cpu.fuse_key, b"".join(parts))


def _encode(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, tuple):
        return b"".join(struct.pack("<Q", v) for v in value)
    return struct.pack("<Q", value)


def cmac(key: bytes, data: bytes) -> bytes:
    """AES-128-CMAC (what the SDM's cmac() and derivekey() compute)."""
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def report_keyid(cpu: SgxCpu) -> bytes:
    """CR_REPORT_KEYID: "a statistically unique value" the CPU sets at boot (for key
    wear-out protection), here derived from its fused secret so that it is stable."""
    return cmac(cpu.fuse_key, b"CR_REPORT_KEYID\0") + cmac(cpu.fuse_key, b"CR_REPORT_KEYID\1")


def report_key(cpu: SgxCpu, attributes: tuple[int, int], mrenclave: bytes, miscselect: int,
               configid: bytes, configsvn: int, keyid: bytes) -> KeyDependencies:
    """The REPORT key of the enclave with this identity (ATTRIBUTES, MRENCLAVE,
    MISCSELECT, CONFIGID, CONFIGSVN): what EREPORT MACs a report for it with, and what
    EGETKEY(REPORT_KEY) gives that enclave."""
    return KeyDependencies(REPORT_KEY, owner_epoch=cpu.owner_epoch, attributes=attributes,
                           mrenclave=mrenclave, keyid=keyid, seal_fuses=True,
                           cpusvn=cpu.cpusvn, miscselect=miscselect, configid=configid,
                           configsvn=configsvn)


def ereport(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU[EREPORT]: the REPORT of this enclave (CPUSVN, MISCSELECT, ATTRIBUTES,
    MRENCLAVE, MRSIGNER, CONFIGID, ISVPRODID, ISVSVN, CONFIGSVN, the REPORTDATA at
    RCX, KEYID = CR_REPORT_KEYID) with a CMAC over its first 384 bytes under the REPORT
    key of the TARGETINFO's enclave (RBX), written at RDX. Operands: TARGETINFO 512-,
    REPORTDATA 128-, OUTPUTDATA 512-byte aligned, inside ELRANGE (#GP), readable
    (OUTPUTDATA writable) REG pages of the enclave (#PF). No register changes."""
    ti_page = _operand(mode, walk, regs.rbx, 512, "r", "TARGETINFO")
    rd_page = _operand(mode, walk, regs.rcx, 128, "r", "REPORTDATA")
    out_page = _operand(mode, walk, regs.rdx, 512, "w", "OUTPUTDATA")
    measurement, t_flags, t_xfrm, t_configsvn, t_misc, t_configid = \
        TARGETINFO_FORMAT.unpack_from(ti_page.data, regs.rbx & (PAGE_SIZE - 1))
    off = regs.rcx & (PAGE_SIZE - 1)
    reportdata = bytes(rd_page.data[off:off + 64])
    cpu, secs = mode.cpu, mode.enclave
    body = REPORT_BODY_FORMAT.pack(cpu.cpusvn, secs.miscselect, bytes(16), secs.attributes,
                                   secs.xfrm, secs.mrenclave, secs.mrsigner, secs.config_id,
                                   secs.isvprodid, secs.isvsvn, secs.config_svn, bytes(16),
                                   reportdata)
    keyid = report_keyid(cpu)
    key = report_key(cpu, (t_flags, t_xfrm), measurement, t_misc, t_configid, t_configsvn,
                     keyid).derive(cpu)
    off = regs.rdx & (PAGE_SIZE - 1)
    out_page.data[off:off + len(body) + 48] = body + keyid + cmac(key, body)
    return _next(regs)


def egetkey(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU[EGETKEY]: the 128-bit key the KEYREQUEST at RBX (512-byte aligned) names,
    written at RCX (16-byte aligned); RAX = 0, or with ZF set SGX_INVALID_ATTRIBUTE
    (PROVISION/EINITTOKEN key without the attribute), SGX_INVALID_CPUSVN (a CPUSVN
    component above the CPU's), SGX_INVALID_ISVSVN (ISVSVN or CONFIGSVN above the
    enclave's), SGX_INVALID_KEYNAME. #GP(0) for reserved KEYREQUEST bytes or
    KEYPOLICY bits, and for KSS policies or CONFIGSVN without ATTRIBUTES.KSS."""
    kr_page = _operand(mode, walk, regs.rbx, 512, "r", "KEYREQUEST")
    out_page = _operand(mode, walk, regs.rcx, KEY_SIZE, "w", "OUTPUTDATA")
    off = regs.rbx & (PAGE_SIZE - 1)
    (keyname, policy, isvsvn, reserved1, cpusvn, mask_flags, mask_xfrm, keyid, miscmask,
     configsvn, reserved2) = KEYREQUEST_FORMAT.unpack_from(kr_page.data, off)
    if any(reserved1) or any(reserved2) or policy & KEYPOLICY_RESERVED:
        raise gp("KEYREQUEST reserved field")
    secs = mode.enclave
    if not secs.attributes & SGX_ATTR_KSS and (policy & KEYPOLICY_KSS or configsvn):
        raise gp("KSS key policy without ATTRIBUTES.KSS")
    request = KeyRequest(keyname, policy, isvsvn, cpusvn, (mask_flags, mask_xfrm), keyid,
                         miscmask, configsvn)
    result = request.dependencies(mode.cpu, secs)
    if isinstance(result, int):
        return _with_rax(regs, result)
    off = regs.rcx & (PAGE_SIZE - 1)
    out_page.data[off:off + KEY_SIZE] = result.derive(mode.cpu)
    return _with_rax(regs, 0)


@dataclass(frozen=True)
class KeyRequest:
    """A KEYREQUEST's fields (SDM "Key Request (KEYREQUEST)")."""

    keyname: int
    policy: int
    isvsvn: int
    cpusvn: bytes
    attribute_mask: tuple[int, int]
    keyid: bytes
    miscmask: int
    configsvn: int

    def dependencies(self, cpu: SgxCpu, secs: SecsState) -> KeyDependencies | int:
        """The KEYDEPENDENCIES of the key asked for, or the SGX error code (EGETKEY's
        CASE over KEYNAME, with its checks in order)."""
        if self.keyname == REPORT_KEY:
            return report_key(cpu, (secs.attributes, secs.xfrm), secs.mrenclave, secs.miscselect,
                              secs.config_id, secs.config_svn, self.keyid)
        needs = {EINITTOKEN_KEY: SGX_ATTR_EINITTOKENKEY, PROVISION_KEY: SGX_ATTR_PROVISIONKEY,
                 PROVISION_SEAL_KEY: SGX_ATTR_PROVISIONKEY, SEAL_KEY: 0}
        if self.keyname not in needs:
            return SGX_INVALID_KEYNAME
        if needs[self.keyname] and not secs.attributes & needs[self.keyname]:
            return SGX_INVALID_ATTRIBUTE
        if any(r > c for r, c in zip(self.cpusvn, cpu.cpusvn, strict=True)):
            return SGX_INVALID_CPUSVN
        if self.isvsvn > secs.isvsvn or (self.keyname == SEAL_KEY and
                                         self.configsvn > secs.config_svn):
            return SGX_INVALID_ISVSVN
        return self._derived_key(cpu, secs)

    def _derived_key(self, cpu: SgxCpu, secs: SecsState) -> KeyDependencies:
        """The SEAL, PROVISION, PROVISION_SEAL and EINITTOKEN key's dependencies."""
        mask_flags, mask_xfrm = self.attribute_mask
        attributes = ((mask_flags | SGX_ATTR_INIT | SGX_ATTR_DEBUG) & secs.attributes,
                      mask_xfrm & secs.xfrm)
        common = KeyDependencies(self.keyname, isvsvn=self.isvsvn, cpusvn=self.cpusvn,
                                 attributes=attributes,
                                 miscselect=self.miscmask & secs.miscselect)
        if self.keyname == EINITTOKEN_KEY:
            return replace(common, isvprodid=secs.isvprodid, owner_epoch=cpu.owner_epoch,
                           mrsigner=secs.mrsigner, keyid=self.keyid, seal_fuses=True)
        miscmask = ~self.miscmask & 0xFFFFFFFF
        if self.keyname == PROVISION_KEY:
            return replace(common, isvprodid=secs.isvprodid, attributes_mask=self.attribute_mask,
                           mrsigner=secs.mrsigner, miscmask=miscmask)
        policy = self.policy
        sealing = replace(
            common, isvprodid=0 if policy & KEYPOLICY_NOISVPRODID else secs.isvprodid,
            attributes_mask=self.attribute_mask, miscmask=miscmask, keypolicy=policy,
            seal_fuses=True, configid=secs.config_id if policy & KEYPOLICY_CONFIGID else bytes(64),
            configsvn=self.configsvn if policy & KEYPOLICY_CONFIGID else 0)
        if self.keyname == PROVISION_SEAL_KEY:
            return replace(sealing, mrsigner=secs.mrsigner)
        return replace(sealing, owner_epoch=cpu.owner_epoch, keyid=self.keyid,
                       mrenclave=secs.mrenclave if policy & KEYPOLICY_MRENCLAVE else bytes(32),
                       mrsigner=secs.mrsigner if policy & KEYPOLICY_MRSIGNER else bytes(32))


# --- ENCLU --------------------------------------------------------------------------------

#: the leaves by EAX, and whether each runs outside (EENTER, ERESUME) or inside
#: enclave mode
LEAVES = {EREPORT: ereport, EGETKEY: egetkey, EENTER: eenter, ERESUME: eresume,
          EEXIT: eexit, EACCEPT: eaccept, EMODPE: emodpe, EACCEPTCOPY: eacceptcopy,
          EDECCSSA: edeccssa}
OUTSIDE_LEAVES = (EENTER, ERESUME)
SGX2_LEAVES = (EACCEPT, EMODPE, EACCEPTCOPY)


def enclu(mode: EnclaveMode, regs: PtRegs, walk: PageWalk) -> PtRegs:
    """ENCLU (0F 01 D7) at regs.rip, the leaf in EAX: #GP(0) for a leaf the CPU does
    not have (the SGX2 ones without SGX2, EDECCSSA without AEX-Notify), for EENTER or
    ERESUME in enclave mode and for the others outside it; then the leaf."""
    leaf = regs.rax & 0xFFFFFFFF
    cpu = mode.cpu
    if leaf not in LEAVES or (leaf in SGX2_LEAVES and not cpu.sgx2) or \
            (leaf == EDECCSSA and not cpu.attributes & SGX_ATTR_ASYNC_EXIT_NOTIFY):
        raise gp(f"ENCLU leaf {leaf} not supported")
    if mode.active == (leaf in OUTSIDE_LEAVES):
        raise gp(f"ENCLU leaf {leaf} {'in' if mode.active else 'outside'} enclave mode")
    return LEAVES[leaf](mode, regs, walk)


# --- instructions enclave mode refuses ----------------------------------------------------

@dataclass(frozen=True)
class Illegal:
    """An instruction that faults in enclave mode (SDM "Illegal Instructions Inside an
    Enclave"): its mnemonic, opcode (after any prefixes and REX), the ModRM reg field
    that selects it (None: any) and whether its ModRM must name memory (0F 01 with a
    register ModRM is another instruction), the exception, and why it is refused."""

    mnemonic: str
    opcode: bytes
    reg: int | None = None
    memory: bool = False
    vector: int = UD
    why: str = ""


VMEXIT = "may cause a VM exit, and the VMM cannot update the enclave"
IO = "I/O"
PRIVILEGE = "may change the privilege level"
#: the table the CPU bridge consults before it lets enclave code execute an instruction
#: (RDTSC and RDTSCP only on a CPU without SGX2: ILLEGAL_WITHOUT_SGX2). ENCLU[EENTER]
#: and ENCLU[ERESUME] are #GP(0) in enclave mode (enclu()); ENCLS is #UD at CPL 3.
ILLEGAL_IN_ENCLAVE = (
    Illegal("CPUID", b"\x0f\xa2", why=VMEXIT),
    Illegal("GETSEC", b"\x0f\x37", why=VMEXIT),
    Illegal("RDPMC", b"\x0f\x33", why=VMEXIT),
    Illegal("SGDT", b"\x0f\x01", 0, memory=True, why=VMEXIT),
    Illegal("SIDT", b"\x0f\x01", 1, memory=True, why=VMEXIT),
    Illegal("SLDT", b"\x0f\x00", 0, why=VMEXIT),
    Illegal("STR", b"\x0f\x00", 1, why=VMEXIT),
    Illegal("VMCALL", b"\x0f\x01\xc1", why=VMEXIT),
    Illegal("VMFUNC", b"\x0f\x01\xd4", why=VMEXIT),
    *(Illegal("IN", bytes([op]), why=IO) for op in (0xE4, 0xE5, 0xEC, 0xED)),
    *(Illegal("OUT", bytes([op]), why=IO) for op in (0xE6, 0xE7, 0xEE, 0xEF)),
    *(Illegal("INS", bytes([op]), why=IO) for op in (0x6C, 0x6D)),
    *(Illegal("OUTS", bytes([op]), why=IO) for op in (0x6E, 0x6F)),
    Illegal("CALL far", b"\xff", 3, why=PRIVILEGE),
    Illegal("JMP far", b"\xff", 5, why=PRIVILEGE),
    *(Illegal("RET far", bytes([op]), why=PRIVILEGE) for op in (0xCA, 0xCB)),
    Illegal("INT n", b"\xcd", why=PRIVILEGE),
    Illegal("IRET", b"\xcf", why=PRIVILEGE),
    Illegal("LSS", b"\x0f\xb2", why=PRIVILEGE),
    Illegal("LFS", b"\x0f\xb4", why=PRIVILEGE),
    Illegal("LGS", b"\x0f\xb5", why=PRIVILEGE),
    Illegal("MOV to Sreg", b"\x8e", why=PRIVILEGE),
    Illegal("POP FS", b"\x0f\xa1", why=PRIVILEGE),
    Illegal("POP GS", b"\x0f\xa9", why=PRIVILEGE),
    Illegal("SYSCALL", b"\x0f\x05", why=PRIVILEGE),
    Illegal("SYSENTER", b"\x0f\x34", why=PRIVILEGE),
)
ILLEGAL_WITHOUT_SGX2 = (
    Illegal("RDTSC", b"\x0f\x31", why=VMEXIT),
    Illegal("RDTSCP", b"\x0f\x01\xf9", why=VMEXIT),
)
#: legacy prefixes that may precede an opcode (REX follows them in 64-bit mode)
PREFIXES = frozenset(b"\x26\x2e\x36\x3e\x64\x65\x66\x67\xf0\xf2\xf3")


def illegal_in_enclave(code: bytes, sgx2: bool) -> Illegal | None:
    """The entry of ILLEGAL_IN_ENCLAVE (or, without SGX2, ILLEGAL_WITHOUT_SGX2) the
    64-bit instruction at the start of `code` matches, or None."""
    i = 0
    while i < len(code) and code[i] in PREFIXES:
        i += 1
    if i < len(code) and code[i] & 0xF0 == 0x40:         # REX
        i += 1
    body = code[i:]
    table = ILLEGAL_IN_ENCLAVE + (() if sgx2 else ILLEGAL_WITHOUT_SGX2)
    for entry in table:
        n = len(entry.opcode)
        if body[:n] != entry.opcode:
            continue
        if entry.reg is None:
            return entry
        if len(body) > n and (body[n] >> 3) & 7 == entry.reg and \
                not (entry.memory and body[n] >> 6 == 3):
            return entry
    return None

