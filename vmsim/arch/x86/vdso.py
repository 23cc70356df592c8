"""Running enclave code: the vDSO's __vdso_sgx_enter_enclave() (arch/x86/entry/vdso/
vsgx.S) and the ENCLU leaves, with the access checks a CPU makes in enclave mode
(spec/sgx-driver.md §3.3-3.4). Enclave mode knows only architectural state: ELRANGE,
the initialized bit and the SSA frame size come from the SECS, permissions and page
types from the EPCM (vmsim/arch/x86/sgx/cpu.py); of the driver's enclave it reads
only which SECS an enclave VMA maps (`EnclaveMapping`).

The enclave's code is a Python callable `program(ctx, *args)` standing for the code at
the TCS's entry point. It touches memory and calls ENCLU leaves through `ctx`
(an `EnclaveContext`). An exception inside the enclave (#PF, #GP) is an AEX: the vDSO
returns with `run.function == ERESUME` and the exception reported, and the program is
suspended *at the faulting access*; ERESUME on that TCS retries the access and carries
on. Each entered TCS runs its program on a thread of its own, and control passes
between that thread and the caller strictly one at a time, so runs are deterministic.

The architectural state of an AEX is the TCS's CSSA, incremented (one SSA frame per
suspended program; EENTER with CSSA == NSSA is #GP, ERESUME with CSSA == 0 is #GP);
the frame's register contents are not modelled (the model has no registers). The
suspended program itself is a live Python thread, which `copy.deepcopy` refuses:
`abandon_suspended(task)` ends those threads and leaves the architectural state
exactly (CSSA, the frame in use, the exception it saved), as a host that never
ERESUMEs leaves it; ERESUME of an abandoned frame is refused (RuntimeError).

Access checks, in order (§3.4): the page tables first (the VMA, the PTE, faults the
kernel can fix are fixed transparently: PTE installation, EAUG), then inside ELRANGE
the EPCM (valid, this enclave, this address, REG, not BLOCKED/PENDING/MODIFIED, R/W/X);
EPCM failures are #PF with the SGX bit (0x8000). Outside ELRANGE an access is an
ordinary one, and an instruction fetch there is #GP.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ...errors import EINVAL, Fault, kerr
from ...mm import fault as mmfault
from ...uapi import PAGE_SHIFT, PAGE_SIZE
from .sgx.cpu import EpcPage, SecsState
from .sgx.defs import (
    EENTER,
    EEXIT,
    ERESUME,
    SGX_ATTR_MODE64BIT,
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
    TCS_FORMAT,
)

#: page-fault error code bits (arch/x86/include/asm/trap_pf.h X86_PF_*)
PF_P, PF_W, PF_U, PF_I, PF_SGX = 0x1, 0x2, 0x4, 0x10, 0x8000
#: struct sgx_enclave_run (arch/x86/include/uapi/asm/sgx.h), 256 bytes
RUN = struct.Struct("<QIHHQQQ216s")
#: its reserved[216], bytes 40-255 (vsgx.S SGX_ENCLAVE_RUN_RESERVED_START/_END)
RUN_RESERVED_SIZE = 216
#: the byte offset of CSSA (then NSSA) in the TCS (struct sgx_tcs)
TCS_CSSA = 24


@dataclass
class SgxEnclaveRun:
    """struct sgx_enclave_run: tcs in; function and exception_* out; user_data is the
    caller's (the vDSO never reads it); reserved must be all zero.

    Declared in the SGX uapi header, but only the vDSO reads it, so it lives here.
    """

    tcs: int = 0
    function: int = 0
    exception_vector: int = 0
    exception_error_code: int = 0
    exception_addr: int = 0
    user_handler: Callable[..., int] | None = None
    user_data: int = 0
    reserved: bytes = bytes(RUN_RESERVED_SIZE)

    def pack(self) -> bytes:
        return RUN.pack(self.tcs, self.function, self.exception_vector,
                        self.exception_error_code, self.exception_addr, 0, self.user_data,
                        self.reserved)


class _Exception(Exception):
    """An exception inside enclave mode: becomes an AEX."""

    def __init__(self, vector: int, error_code: int, addr: int):
        self.vector, self.error_code, self.addr = vector, error_code, addr


class _Abandoned(BaseException):
    """Raised inside a suspended program to end its thread (abandon_suspended)."""


@dataclass(frozen=True)
class AbandonedFrame:
    """An SSA frame in use whose program will never be resumed: what the AEX saved
    (vector, error code, address). Unlike an EnclaveThread, it can be copied."""

    vector: int
    error_code: int
    addr: int


class EnclaveThread:
    """The suspended or running program of one TCS (the SSA frame it would resume)."""

    def __init__(self, ctx, program, args):
        self.ctx = ctx
        self.program = program
        self.args = args
        self.to_enclave = threading.Semaphore(0)
        self.to_host = threading.Semaphore(0)
        self.event = None           # ("exit", None) or ("aex", _Exception)
        self.abandoned = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __deepcopy__(self, memo):
        raise TypeError("a suspended enclave program is a live thread and cannot be copied "
                        "(vmsim.arch.x86.vdso.abandon_suspended() leaves only its SSA frame)")

    def _run(self):
        self.to_enclave.acquire()
        try:
            self.program(self.ctx, *self.args)
            self.event = ("exit", None)
        except BaseException as exc:   # a bug in the program: hand it to the caller
            self.event = ("error", exc)
        self.to_host.release()

    def switch_in(self):
        """Run the enclave side until it exits or takes an exception."""
        if not self.thread.is_alive() and self.event is None:
            self.thread.start()
        self.event = None
        self.to_enclave.release()
        self.to_host.acquire()
        return self.event

    def aex(self, exc: _Exception):
        """Called on the enclave side: report the exception and wait for ERESUME."""
        self.event = ("aex", exc)
        self.to_host.release()
        self.to_enclave.acquire()
        if self.abandoned:
            raise _Abandoned

    def abandon(self) -> AbandonedFrame:
        """End the suspended program's thread; its SSA frame stays in use."""
        assert self.event is not None and self.event[0] == "aex"
        exc = self.event[1]
        self.abandoned = True
        self.to_enclave.release()
        self.to_host.acquire()
        self.thread.join()
        return AbandonedFrame(exc.vector, exc.error_code, exc.addr)


class EnclaveContext:
    """What enclave code can do: memory accesses and the ENCLU leaves.

    secs: the SECS page of the enclave entered (its SecsState gives ELRANGE).
    """

    def __init__(self, task, secs: EpcPage, tcs_page: EpcPage):
        self.task = task
        self.secs = secs
        self.enclave = _secs_state(secs)
        self.tcs_page = tcs_page
        self.thread: EnclaveThread | None = None
        #: RBX at EENTER (the TCS) and the entry point the CPU jumped to
        self.tcs_addr = tcs_page.addr
        self.oentry = self.enclave.base + struct.unpack_from("<Q", tcs_page.data, 32)[0]

    # --- memory ---
    def read(self, addr: int, n: int) -> bytes:
        out = bytearray()
        for a, off, chunk in _pages(addr, n):
            page = self._access(a, "r")
            out += page[off:off + chunk]
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        pos = 0
        for a, off, chunk in _pages(addr, len(data)):
            page = self._access(a, "w")
            page[off:off + chunk] = data[pos:pos + chunk]
            pos += chunk

    def read64(self, addr: int) -> int:
        return struct.unpack("<Q", self.read(addr, 8))[0]

    def write64(self, addr: int, value: int) -> None:
        self.write(addr, struct.pack("<Q", value))

    def fetch(self, addr: int) -> None:
        """An instruction fetch at addr (checks X)."""
        self._access(addr, "x")

    # --- ENCLU ---
    def eaccept(self, addr: int, secinfo_flags: int) -> int:
        """EACCEPT: acknowledge a pending EAUG, EMODPR or EMODT of the page at addr.

        The SDM's pseudo-code (Vol. 3D, "EACCEPT—Accept Changes to an EPC Page"), in
        its order: reserved SECINFO bits, a misaligned or outside-ELRANGE addr, a
        request that is neither REG with PR or PENDING (and not MODIFIED) nor TCS/TRIM
        with MODIFIED alone: #GP; a page that is not a valid, unblocked REG/TCS/TRIM
        page of this enclave: #PF. Then the SECINFO must match the EPCM entry exactly
        (address, PT, R/W/X, PENDING, MODIFIED; the PR bit is not compared), else
        SGX_PAGE_ATTRIBUTES_MISMATCH; then a new TCS's contents are checked (#GP).
        Success clears PENDING, MODIFIED and PR. A fault is an AEX, and ERESUME
        re-executes the leaf."""
        return self._retry(lambda: self._eaccept(addr, secinfo_flags))

    def _eaccept(self, addr: int, flags: int) -> int:
        """One execution of EACCEPT: RAX, or a fault raised as _Exception."""
        inside = self.enclave.base <= addr < self.enclave.base + self.enclave.size
        if flags & SGX_SECINFO_FLAGS_RESERVED_MASK or addr % PAGE_SIZE or not inside:
            raise _Exception(13, 0, 0)
        epc = self._epc_at(addr)
        if not _eaccept_request_legal(flags):
            raise _Exception(13, 0, 0)
        if not epc.valid or epc.blocked or epc.secs is not self.secs or \
                epc.pt not in (SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS, SGX_PAGE_TYPE_TRIM):
            raise _Exception(14, PF_U | PF_P | PF_SGX, addr)
        if epc.addr != addr or _epcm_flags(epc) != flags & ~SGX_SECINFO_PR:
            return SGX_PAGE_ATTRIBUTES_MISMATCH
        if epc.pt == SGX_PAGE_TYPE_TCS and not _tcs_acceptable(epc, self.enclave):
            raise _Exception(13, 0, 0)
        epc.pending = epc.modified = epc.pr = False
        return 0

    def eacceptcopy(self, dst: int, src: int, secinfo_flags: int) -> int:
        """EACCEPTCOPY: fill a pending EAUG page from src and give it SECINFO's perms."""
        data = self.read(src & ~(PAGE_SIZE - 1), PAGE_SIZE)
        perms = secinfo_flags & SGX_SECINFO_PERMISSION_MASK

        def leaf():
            if perms & SGX_SECINFO_W and not perms & SGX_SECINFO_R:
                raise _Exception(13, 0, 0)
            return self._epc_for_leaf(dst)
        epc = self._retry(leaf)
        if not epc.pending or (secinfo_flags >> 8) & 0xFF != SGX_PAGE_TYPE_REG:
            return SGX_PAGE_ATTRIBUTES_MISMATCH
        epc.data[:] = data
        epc.set_perms(perms)
        epc.pending = False
        return 0

    def emodpe(self, addr: int, secinfo_flags: int) -> None:
        """EMODPE: extend the EPCM permissions of a REG page (faults are AEXs)."""
        perms = secinfo_flags & SGX_SECINFO_PERMISSION_MASK

        def leaf():
            if perms & SGX_SECINFO_W and not perms & SGX_SECINFO_R:
                raise _Exception(13, 0, 0)
            epc = self._epc_for_leaf(addr)
            if epc.pt != SGX_PAGE_TYPE_REG or epc.pending or epc.modified:
                raise _Exception(14, PF_SGX | PF_P | PF_U, addr)
            return epc
        epc = self._retry(leaf)
        epc.set_perms(epc.perms() | perms)

    # --- the checks ---
    def _retry(self, check):
        """Run a check; an exception is an AEX, after which ERESUME retries it."""
        while True:
            try:
                return check()
            except _Exception as exc:
                assert self.thread is not None      # set before the program runs
                self.thread.aex(exc)

    def _access(self, addr: int, kind: str):
        return self._retry(lambda: self._check(addr, kind))

    def _check(self, addr: int, kind: str):
        inside = self.enclave.base <= addr < self.enclave.base + self.enclave.size
        if kind == "x" and not inside:
            raise _Exception(13, 0, 0)
        code = PF_U | (PF_W if kind == "w" else 0) | (PF_I if kind == "x" else 0)
        mm = self.task.mm
        vpn = addr >> PAGE_SHIFT
        present = vpn in mm.pfn_ptes or vpn in mm.anon_pages or vpn in mm.file_ptes
        try:
            vma = mmfault.user_fault(self.task, addr, kind)
            page = mmfault.fault_page(self.task, vma, addr, kind == "w")
        except Fault:
            raise _Exception(14, code | (PF_P if present else 0), addr) from None
        if not inside:
            return page
        epc = mm.pfn_ptes.get(vpn)
        ok = (isinstance(epc, EpcPage) and epc.valid and epc.secs is self.secs
              and epc.addr == addr & ~(PAGE_SIZE - 1) and epc.pt == SGX_PAGE_TYPE_REG
              and not (epc.blocked or epc.pending or epc.modified)
              and {"r": epc.r, "w": epc.w, "x": epc.x}[kind])
        if not ok:
            raise _Exception(14, code | PF_P | PF_SGX, addr)
        return epc.data

    def _epc_at(self, addr: int) -> EpcPage:
        """The EPC page addr translates to, read through the page tables (faults the
        kernel fixes are fixed); #PF when the walk fails or the frame is not EPC."""
        mm = self.task.mm
        try:
            vma = mmfault.user_fault(self.task, addr, "r")
            mmfault.fault_page(self.task, vma, addr, False)
        except Fault:
            present = (addr >> PAGE_SHIFT) in mm.pfn_ptes
            raise _Exception(14, PF_U | (PF_P if present else 0), addr) from None
        epc = mm.pfn_ptes.get(addr >> PAGE_SHIFT)
        if not isinstance(epc, EpcPage):
            raise _Exception(14, PF_U | PF_P | PF_SGX, addr)
        return epc

    def _epc_for_leaf(self, addr: int) -> EpcPage:
        """The EPC page an ENCLU leaf names: a valid page of this enclave at addr."""
        def check() -> EpcPage:
            epc = self._epc_at(addr)
            if not (epc.valid and epc.secs is self.secs
                    and epc.addr == addr & ~(PAGE_SIZE - 1)):
                raise _Exception(14, PF_U | PF_P | PF_SGX, addr)
            return epc
        return self._retry(check)


def _eaccept_request_legal(flags: int) -> bool:
    """EACCEPT's "combination of requested PT, PENDING and MODIFIED is legal"."""
    pt = (flags & SGX_SECINFO_PAGE_TYPE_MASK) >> SGX_SECINFO_PAGE_TYPE_SHIFT
    pr, pending, modified = (bool(flags & bit) for bit in
                             (SGX_SECINFO_PR, SGX_SECINFO_PENDING, SGX_SECINFO_MODIFIED))
    if pt == SGX_PAGE_TYPE_REG:
        return (pr or pending) and not modified
    return pt in (SGX_PAGE_TYPE_TCS, SGX_PAGE_TYPE_TRIM) and modified and \
        not (pr or pending)


def _epcm_flags(epc: EpcPage) -> int:
    """The EPCM entry's PT, R/W/X, PENDING and MODIFIED as SECINFO flags."""
    return epc.pt << SGX_SECINFO_PAGE_TYPE_SHIFT | epc.perms() | \
        (SGX_SECINFO_PENDING if epc.pending else 0) | \
        (SGX_SECINFO_MODIFIED if epc.modified else 0)


def _tcs_acceptable(tcs: EpcPage, enclave: SecsState) -> bool:
    """EACCEPT's checks of a new TCS: reserved area zero, FLAGS.DBGOPTIN clear,
    CSSA < NSSA, AEP and STATE zero; a 32-bit enclave's FS/GS limits end in 0xFFF."""
    (state, flags, _ossa, cssa, nssa, _oentry, aep, _ofs, _ogs, fslimit, gslimit) = \
        TCS_FORMAT.unpack_from(tcs.data)
    if any(tcs.data[TCS_FORMAT.size:]) or flags & 1 or cssa >= nssa or aep or state:
        return False
    return bool(enclave.attributes & SGX_ATTR_MODE64BIT) or \
        (fslimit & 0xFFF == 0xFFF and gslimit & 0xFFF == 0xFFF)


@runtime_checkable
class EnclaveMapping(Protocol):
    """What EENTER needs from an enclave VMA's private data before the TCS page is
    faulted in: the SECS page of the enclave it maps (None before ECREATE). The SGX
    driver's struct sgx_encl provides it; a VMA whose private data does not is not an
    enclave's."""

    secs: EpcPage | None


def _secs_state(secs: EpcPage) -> SecsState:
    assert secs.enclave is not None         # a SECS page: ECREATE set its state
    return secs.enclave


def _pages(addr: int, n: int):
    pos = 0
    while pos < n:
        a = addr + pos
        off = a & (PAGE_SIZE - 1)
        chunk = min(PAGE_SIZE - off, n - pos)
        yield a, off, chunk
        pos += chunk


def _tcs_at(task, addr: int) -> tuple[EpcPage, EpcPage]:
    """The SECS and TCS EPC pages at addr, as EENTER resolves RBX."""
    if addr % PAGE_SIZE:
        raise _Exception(13, 0, 0)
    vma = task.mm.tree.find(addr)
    mapping = vma.private_data if vma is not None else None
    if not isinstance(mapping, EnclaveMapping):
        raise _Exception(14, PF_U, addr)
    try:
        mmfault.fault_page(task, mmfault.user_fault(task, addr, "r"), addr, False)
    except Fault:
        raise _Exception(14, PF_U, addr) from None
    epc = task.mm.pfn_ptes.get(addr >> PAGE_SHIFT)
    if not (isinstance(epc, EpcPage) and epc.valid and epc.pt == SGX_PAGE_TYPE_TCS
            and epc.secs is mapping.secs and not epc.modified):
        raise _Exception(14, PF_U | PF_P | PF_SGX, addr)
    assert epc.secs is not None             # EADD gave the TCS its enclave
    return epc.secs, epc


def _check_ssa_frame(task, secs: EpcPage, tcs: EpcPage) -> None:
    """EENTER: the current SSA frame must be valid, writable REG pages of the enclave
    (#PF otherwise)."""
    ossa, cssa = struct.unpack_from("<QI", tcs.data, 16)
    enclave = _secs_state(secs)
    frame_pages = enclave.ssa_frame_size
    first = enclave.base + ossa + cssa * frame_pages * PAGE_SIZE
    for addr in range(first, first + frame_pages * PAGE_SIZE, PAGE_SIZE):
        try:
            vma = mmfault.user_fault(task, addr, "w")
            mmfault.fault_page(task, vma, addr, True)
        except Fault:
            raise _Exception(14, PF_U | PF_W, addr) from None
        epc = task.mm.pfn_ptes.get(addr >> PAGE_SHIFT)
        if not (isinstance(epc, EpcPage) and epc.valid and epc.secs is secs
                and epc.addr == addr and epc.pt == SGX_PAGE_TYPE_REG and epc.r and epc.w
                and not (epc.pending or epc.modified or epc.blocked)):
            raise _Exception(14, PF_SGX | PF_P | PF_W | PF_U, addr)


def _enter_once(task, run: SgxEnclaveRun, function: int, program, args) -> None:
    """One ENCLU[EENTER/ERESUME] and what follows until EEXIT or an exception; the
    outcome is reported in run (exception_* only on an exception, as vsgx.S does)."""
    threads = task.__dict__.setdefault("_sgx_threads", {})
    try:
        secs, tcs = _tcs_at(task, run.tcs)
        enclave = _secs_state(secs)
        if not enclave.initialized:
            raise _Exception(13, 0, 0)
        cssa, nssa = struct.unpack_from("<II", tcs.data, TCS_CSSA)
        parked = threads.get(tcs)
        if function == EENTER:
            if cssa >= max(nssa, 1):
                raise _Exception(13, 0, 0)      # CSSA == NSSA: no free SSA frame
            if program is None:
                raise kerr(EINVAL)
            _check_ssa_frame(task, secs, tcs)
            ctx = EnclaveContext(task, secs, tcs)
            thread = EnclaveThread(ctx, program, args)
            ctx.thread = thread
            threads.setdefault(tcs, []).append(thread)
        else:
            if not parked:
                raise _Exception(13, 0, 0)      # nothing to resume (CSSA == 0)
            thread = parked[-1]
            if isinstance(thread, AbandonedFrame):
                raise RuntimeError("ERESUME of an SSA frame whose program was abandoned "
                                   "(vdso.abandon_suspended): the model cannot resume it")
    except _Exception as exc:
        run.function = function
        run.exception_vector, run.exception_error_code = exc.vector, exc.error_code
        run.exception_addr = exc.addr
        return
    enclave.active_threads += 1
    kind, detail = thread.switch_in()
    enclave.active_threads -= 1
    if kind != "aex":
        threads[tcs].remove(thread)
    _set_cssa(tcs, len(threads[tcs]))
    if kind == "error":
        raise detail
    if kind == "exit":
        run.function = EEXIT
        return
    run.function = ERESUME
    run.exception_vector = detail.vector
    run.exception_error_code = detail.error_code
    run.exception_addr = detail.addr


def _set_cssa(tcs: EpcPage, cssa: int) -> None:
    """The TCS's CSSA: the SSA frames in use (one per suspended program)."""
    struct.pack_into("<I", tcs.data, TCS_CSSA, cssa)


def abandon_suspended(task) -> int:
    """End every suspended enclave program of task (its Python thread), leaving the
    architectural state of each AEX: CSSA and the frame in use, as an AbandonedFrame.
    What a host that never ERESUMEs leaves; a World holding it can be copied. Returns
    how many programs were abandoned."""
    n = 0
    for frames in task.__dict__.get("_sgx_threads", {}).values():
        for i, frame in enumerate(frames):
            if isinstance(frame, EnclaveThread):
                frames[i] = frame.abandon()
                n += 1
    return n


def _one_access(ctx: EnclaveContext, addr: int, mode: str) -> None:
    """Enclave code of one access at addr: read a byte, write 0x01, or fetch."""
    if mode == "r":
        ctx.read(addr, 1)
    elif mode == "w":
        ctx.write(addr, b"\x01")
    else:
        ctx.fetch(addr)


def enclave_access(task, tcs: int, addr: int, mode: str) -> tuple:
    """EENTER at tcs, one access to addr with mode ("r", "w", "x") in enclave mode,
    EEXIT: ("ok", 0) after EEXIT; ("aex", vector, error code, address) when the access
    faulted — then every suspended program of task is abandoned (abandon_suspended:
    CSSA stays incremented, nothing can ERESUME it), so the state can be copied;
    ("eenter", vector, error code, address) when EENTER itself faulted. What
    `vmsim check`'s eaccess ops and the replay of an enclave access record run."""
    run = SgxEnclaveRun(tcs=tcs)
    assert enter_enclave(task, run, EENTER, _one_access, (addr, mode)) == 0
    if run.function == EEXIT:
        return ("ok", 0)
    abandon_suspended(task)
    return ("aex" if run.function == ERESUME else "eenter", run.exception_vector,
            run.exception_error_code, run.exception_addr)


def enter_enclave(task, run: SgxEnclaveRun, function: int = EENTER, program=None,
                  args=()) -> int:
    """__vdso_sgx_enter_enclave(): EENTER or ERESUME through run.tcs.

    Returns 0 with run.function EEXIT after the program returned, or ERESUME after an
    exception (reported in run.exception_*); -EINVAL for another leaf or when
    run.reserved is not all zero (vsgx.S checks both before each ENCLU, re-entries
    from the handler included; run.user_data is not checked). With
    run.user_handler set, the vDSO calls it after each exit as
    handler(rdi, rsi, rdx, rsp, r8, r9, run) (the program's first five args stand for
    the registers): a result <= 0 is returned, a positive one is the next leaf.
    """
    while True:
        if function not in (EENTER, ERESUME) or any(run.reserved):
            return -EINVAL
        _enter_once(task, run, function, program, args)
        if run.user_handler is None:
            return 0
        regs = (list(args) + [0] * 5)[:5]
        ret = run.user_handler(regs[0], regs[1], regs[2], 0, regs[3], regs[4], run)
        if ret <= 0:
            return ret
        function = ret
