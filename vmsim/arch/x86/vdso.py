"""Running enclave code: the vDSO's __vdso_sgx_enter_enclave() (arch/x86/entry/vdso/
vsgx.S) for enclave code written as Python callables. The CPU's side, the ENCLU leaves,
enclave-mode accesses and the AEX, is vmsim/arch/x86/sgx/enclu.py: this module adds
only what a Python stand-in for enclave code needs (spec/sgx-driver.md §3.3-3.4).

The enclave's code is a Python callable `program(ctx, *args)` standing for the code at
the TCS's entry point. It touches memory and calls ENCLU leaves through `ctx` (an
`EnclaveContext`), which runs them on enclu.py with the registers ENCLU[EENTER] left
(the program itself changes no register). An exception inside the enclave (#PF, #GP)
is an AEX (enclu.aex(): the SSA frame gets the registers, EXITINFO and EXINFO, CSSA
goes up): the vDSO returns with `run.function == ERESUME` and the exception reported,
and the program is suspended *at the faulting access*; ERESUME on that TCS
(enclu.eresume()) retries the access and carries on. Each entered TCS runs its
program on a thread of its own, and control passes between that thread and the caller
strictly one at a time, so runs are deterministic.

This entry executes no vDSO code: its ENCLU stands at address 0, which is also its AEP
(vsgx.S's AEP is its own ENCLU), so TCS.AEP stays 0; RSP and RBP are 0. After the
program returns, the enclave does EEXIT to the address EENTER left in RCX.

A suspended program is a live Python thread, which `copy.deepcopy` refuses:
`abandon_suspended(task)` ends those threads and leaves the architectural state
exactly (CSSA, the SSA frame in use), as a host that never ERESUMEs leaves it; ERESUME
of an abandoned frame is refused (RuntimeError), as is ERESUME of a frame no program
of this module saved.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import EINVAL, kerr
from ...uapi import PAGE_SIZE
from .ptrace import PtRegs
from .sgx import enclu
from .sgx.cpu import UD, EnclsFault, EpcPage
from .sgx.defs import EENTER, EEXIT, ERESUME, SGX_PAGE_TYPE_TCS
from .sgx.enclu import EnclaveMode, MmWalk, TcsFields

#: struct sgx_enclave_run (arch/x86/include/uapi/asm/sgx.h), 256 bytes
RUN = struct.Struct("<QIHHQQQ216s")
#: its reserved[216], bytes 40-255 (vsgx.S SGX_ENCLAVE_RUN_RESERVED_START/_END)
RUN_RESERVED_SIZE = 216


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
        self.event = None           # ("exit", None), ("aex", EnclsFault) or ("error", exc)
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

    def aex(self, exc: EnclsFault):
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
        return AbandonedFrame(exc.trapnr, exc.error_code, exc.addr)


class EnclaveContext:
    """What enclave code can do: memory accesses and the ENCLU leaves it runs.

    mode: the logical processor's enclave-mode state (enclave mode while the program
    runs); walk: the task's page walk; regs: the registers the enclave thread has
    (those EENTER left; after an AEX, those ERESUME restored).
    """

    def __init__(self, mode: EnclaveMode, walk: MmWalk, regs: PtRegs):
        self.mode = mode
        self.walk = walk
        self.regs = regs
        self.thread: EnclaveThread | None = None

    # --- memory, a page at a time: the retry after ERESUME is of the faulting page ---
    def read(self, addr: int, n: int) -> bytes:
        return b"".join(self._retry(enclu.enclave_read, a, size) for a, size in _pieces(addr, n))

    def write(self, addr: int, data: bytes) -> None:
        for a, size in _pieces(addr, len(data)):
            self._retry(enclu.enclave_write, a, data[a - addr:a - addr + size])

    def read64(self, addr: int) -> int:
        return struct.unpack("<Q", self.read(addr, 8))[0]

    def write64(self, addr: int, value: int) -> None:
        self.write(addr, struct.pack("<Q", value))

    def fetch(self, addr: int) -> None:
        """An instruction fetch at addr (checks X)."""
        self._retry(enclu.enclave_access, addr, "x")

    # --- ENCLU, its SECINFO given as flags ---
    def eaccept(self, addr: int, secinfo_flags: int) -> int:
        """EACCEPT of the page at addr (enclu.accept_page()): RAX; a fault is an AEX,
        and ERESUME re-executes the leaf."""
        return self._retry(enclu.accept_page, addr, secinfo_flags)

    def eacceptcopy(self, dst: int, src: int, secinfo_flags: int) -> int:
        """EACCEPTCOPY of the EPC page at src to the pending page at dst
        (enclu.accept_copy()): RAX."""
        return self._retry(enclu.accept_copy, dst, src, secinfo_flags)

    def emodpe(self, addr: int, secinfo_flags: int) -> None:
        """EMODPE of the page at addr (enclu.extend_permissions())."""
        self._retry(enclu.extend_permissions, addr, secinfo_flags)

    def _retry(self, leaf, *args):
        """leaf(mode, walk, *args), an access or an ENCLU leaf; an exception is an AEX,
        after which ERESUME (which gives the context its new mode) retries it."""
        while True:
            try:
                return leaf(self.mode, self.walk, *args)
            except EnclsFault as exc:
                assert self.thread is not None      # set before the program runs
                self.thread.aex(exc)


def _pieces(addr: int, n: int):
    """(address, size) of each piece of [addr, addr + n) within one page."""
    end = addr + n
    while addr < end:
        size = min(end, (addr | (PAGE_SIZE - 1)) + 1) - addr
        yield addr, size
        addr += size


def _report(run: SgxEnclaveRun, function: int, vector: int, error_code: int, addr: int) -> None:
    """What vsgx.S's exception fixup leaves in run (the leaf, the trap number, the error
    code, the address)."""
    run.function = function
    run.exception_vector, run.exception_error_code, run.exception_addr = \
        vector, error_code & 0xFFFF, addr


def _suspended_frames(task, walk: MmWalk, tcs_la: int) -> list:
    """The programs (or abandoned frames) suspended on the TCS at tcs_la, one per SSA
    frame in use; RuntimeError when ERESUME would resume a frame without a program."""
    threads = task.__dict__.setdefault("_sgx_threads", {})
    try:
        tcs = walk.translate(tcs_la, "r")
    except EnclsFault:
        return []                               # ERESUME itself faults
    if not isinstance(tcs, EpcPage) or not tcs.valid or tcs.pt != SGX_PAGE_TYPE_TCS or \
            not TcsFields.read(tcs).cssa:
        return []                               # ... or is #GP (CSSA = 0)
    frames = threads.get(_tcs_key(tcs), [])
    if frames and isinstance(frames[-1], AbandonedFrame):
        raise RuntimeError("ERESUME of an SSA frame whose program was abandoned "
                           "(vdso.abandon_suspended): the model cannot resume it")
    if not frames:
        raise RuntimeError("ERESUME of an SSA frame no program of this model saved")
    return frames


def _enter_once(task, run: SgxEnclaveRun, function: int, program, args) -> None:
    """One ENCLU[EENTER/ERESUME] and what follows until EEXIT or an exception; the
    outcome is reported in run (exception_* only on an exception, as vsgx.S does)."""
    entered = _enclu_entry(task, run, function, program, args)
    if entered is None:
        return
    mode, walk, thread = entered
    kind, detail = thread.switch_in()
    if kind == "aex":
        left = enclu.aex(mode, thread.ctx.regs, detail.trapnr, detail.error_code, detail.addr)
        _report(run, ERESUME, detail.trapnr, detail.error_code, left.cr2)
        return
    assert mode.tcs is not None
    key = _tcs_key(mode.tcs)
    exit_regs = thread.ctx.regs.copy()
    exit_regs.rax, exit_regs.rbx = EEXIT, exit_regs.rcx     # back to the address after EENTER
    enclu.enclu(mode, exit_regs, walk)
    task.__dict__["_sgx_threads"][key].remove(thread)
    if kind == "error":
        raise detail
    run.function = EEXIT


def _enclu_entry(task, run: SgxEnclaveRun, function: int, program, args):
    """ENCLU[function] at the TCS run.tcs: the logical processor's enclave mode, the
    walk and the program entered or resumed; None when the leaf faulted (reported in
    run)."""
    cpu = task.kernel.sgx_cpu
    if cpu is None:
        _report(run, function, UD, 0, 0)        # CPUID.(EAX=12H).SGX1 = 0: ENCLU is #UD
        return None
    if function == EENTER and program is None:
        raise kerr(EINVAL)
    walk = MmWalk(task)
    frames = _suspended_frames(task, walk, run.tcs) if function == ERESUME else []
    mode = EnclaveMode(cpu)
    try:
        regs = enclu.enclu(mode, PtRegs(rax=function, rbx=run.tcs, fxsave=enclu.FXSAVE_INIT),
                           walk)
    except EnclsFault as exc:
        _report(run, function, exc.trapnr, exc.error_code, exc.addr)
        return None
    if function == ERESUME:
        thread = frames[-1]
        thread.ctx.mode, thread.ctx.regs = mode, regs
        return mode, walk, thread
    ctx = EnclaveContext(mode, walk, regs)
    thread = EnclaveThread(ctx, program, args)
    ctx.thread = thread
    assert mode.tcs is not None
    task.__dict__.setdefault("_sgx_threads", {}).setdefault(_tcs_key(mode.tcs), []).append(thread)
    return mode, walk, thread


def _tcs_key(tcs: EpcPage) -> tuple[int, int]:
    """Which TCS programs are suspended on: its enclave (SECS.EID) and linear address,
    which stay when the EPC page holding it is written out and loaded again."""
    return tcs.owner().eid, tcs.addr


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
