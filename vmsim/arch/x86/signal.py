"""Signal delivery on x86-64: arch/x86/kernel/signal.c (get_sigframe(), handle_signal(),
arch_do_signal_or_restart()), signal_64.c (x64_setup_rt_frame(), rt_sigreturn),
fpu/signal.c (the FPU state in the frame) and the uapi layouts of
arch/x86/include/uapi/asm/sigcontext.h and ucontext.h.

The frame a handler gets, from its stack pointer up (all of it written through the
model's page walk, so stack growth, protection and pkeys apply as to the kernel's
uaccess):

    rsp (16n + 8)  struct rt_sigframe: pretcode (sa_restorer)       8 bytes
    rsp + 8          struct ucontext: uc_flags, uc_link, uc_stack,
                     uc_mcontext (struct sigcontext_64), uc_sigmask  304 bytes
    rsp + 312        struct siginfo (written only with SA_SIGINFO)  128 bytes
    ...              padding to 16
    fpstate (64n)  the FXSAVE image (XSAVE: and its header, PKRU),
                   software-reserved bytes 464..511 (FP_XSTATE_MAGIC1...), with XSAVE
                   FP_XSTATE_MAGIC2 after the image
    ...
    old rsp - 128  the red zone, skipped (or the top of the alternate stack)

Which FPU frame is built follows the CPU: `XstateConfig` (fpu_user_cfg and
use_xsave()). The emulated CPU (vmsim.arch.x86.emu.cpuid) reports no XSAVE, so its
frames are FXSAVE-only (EMULATED_XSTATE): 512 bytes, the software bytes with
FP_XSTATE_MAGIC1, no MAGIC2, uc_flags without UC_FP_XSTATE. PKRU is not part of such a
frame; delivery and sigreturn leave it alone (Linux has no PKU without XSAVE).

Registers: PtRegs has no cs/ss; the model runs 64-bit code only, so a frame always says
cs __USER_CS and ss __USER_DS and rt_sigreturn ignores what the handler put there.
The run loop keeps a thread's rip during a syscall where the kernel's pt_regs has it:
after the SYSCALL instruction (restarting a call moves it back by 2).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ...errors import EINTR, ERESTART_RESTARTBLOCK, ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS, Fault
from ...mm import pkeys
from ...mm.fault import copy_from_user, copy_to_user
from ...mm.flags import vma_pkey
from ...task import signal as ksig
from ...task.signal import (
    __on_sig_stack,
    force_sig,
    force_sig_fault,
    force_sig_pkuerr,
    get_signal,
    on_sig_stack,
    restore_altstack,
    restore_saved_sigmask,
    sas_ss_flags,
    set_current_blocked,
    sigmask_to_save,
    signal_setup_done,
)
from ...task.signal_types import (
    FAULT_CODES,
    FAULT_SIGNALS,
    SA_ONSTACK,
    SA_RESTART,
    SA_RESTORER,
    SA_SIGINFO,
    SEGV_PKUERR,
    SIGSEGV,
    KSignal,
    SigInfo,
)
from ...task.thread import Thread
from ...uapi import PAGE_SIZE, U64

# --- the ABI --------------------------------------------------------------------------

#: the highest user address + 1 an access_ok() passes (TASK_SIZE_MAX, 4-level paging)
TASK_SIZE_MAX = (1 << 47) - PAGE_SIZE
#: segment selectors of 64-bit user mode (__USER_CS, __USER_DS)
USER_CS, USER_DS = 0x33, 0x2B
#: uc_flags (arch/x86/include/uapi/asm/ucontext.h)
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 0x1, 0x2, 0x4
#: the software-reserved bytes of the FXSAVE image (struct _fpx_sw_bytes) and the magic after
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2, FP_XSTATE_MAGIC2_SIZE = 0x46505853, 0x46505845, 4
FPX_SW_BYTES = struct.Struct("<IIQI28x")
SW_RESERVED_OFFSET = 464
FXSAVE_SIZE, XSAVE_HEADER_SIZE = 512, 64
#: the FXSAVE image: the x87 part, MXCSR, MXCSR_MASK, the XMM registers
MXCSR_OFFSET, MXCSR_MASK_OFFSET, XMM_OFFSET, XMM_END = 24, 28, 160, 416
XFEATURE_FP, XFEATURE_SSE, XFEATURE_PKRU = 0, 1, 9
XFEATURE_MASK_FPSSE = 1 << XFEATURE_FP | 1 << XFEATURE_SSE
#: eflags bits (arch/x86/include/uapi/asm/processor-flags.h)
X86_EFLAGS_CF, X86_EFLAGS_PF, X86_EFLAGS_AF, X86_EFLAGS_ZF = 0x1, 0x4, 0x10, 0x40
X86_EFLAGS_SF, X86_EFLAGS_TF, X86_EFLAGS_DF, X86_EFLAGS_OF = 0x80, 0x100, 0x400, 0x800
X86_EFLAGS_RF, X86_EFLAGS_AC = 0x10000, 0x40000
#: asm/sighandling.h FIX_EFLAGS: the flags rt_sigreturn takes from the frame
FIX_EFLAGS = (X86_EFLAGS_AC | X86_EFLAGS_OF | X86_EFLAGS_DF | X86_EFLAGS_TF | X86_EFLAGS_SF
              | X86_EFLAGS_ZF | X86_EFLAGS_AF | X86_EFLAGS_PF | X86_EFLAGS_CF | X86_EFLAGS_RF)
#: page fault trap number and error code bits (arch/x86/include/asm/trap_pf.h)
X86_TRAP_PF = 14
X86_PF_PROT, X86_PF_WRITE, X86_PF_USER, X86_PF_INSTR, X86_PF_PK = 0x1, 0x2, 0x4, 0x10, 0x20
#: __NR_restart_syscall: what an -ERESTART_RESTARTBLOCK call restarts as
NR_RESTART_SYSCALL = 219
#: regs.orig_rax outside a syscall
NO_SYSCALL = U64

# struct rt_sigframe and what is in it, as offsets from the frame (the handler's rsp)
RT_SIGFRAME_SIZE = 440
UC = 8
UC_FLAGS, UC_LINK, UC_STACK, UC_MCONTEXT, UC_SIGMASK = UC, UC + 8, UC + 16, UC + 40, UC + 296
INFO = 312
#: struct sigcontext_64 up to reserved1 (what restore_sigcontext() reads): r8..r15, rdi,
#: rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags, cs, gs, fs, ss, err, trapno, oldmask,
#: cr2, fpstate
SIGCONTEXT = struct.Struct("<18Q4H5Q")
SC_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
           "rdx", "rax", "rcx", "rsp", "rip")
#: the offset of each sigcontext field
SC = {name: 8 * i for i, name in enumerate(SC_REGS + ("eflags",))} | {
    "cs": 144, "gs": 146, "fs": 148, "ss": 150, "err": 152, "trapno": 160, "oldmask": 168,
    "cr2": 176, "fpstate": 184}
#: the order x64_setup_rt_frame() writes the sigcontext in (__unsafe_setup_sigcontext())
SC_WRITE_ORDER = ("rdi", "rsi", "rbp", "rsp", "rbx", "rdx", "rcx", "rax", "r8", "r9", "r10",
                  "r11", "r12", "r13", "r14", "r15")


class XstateConfig(NamedTuple):
    """The FPU state signal frames hold (fpu_user_cfg, fpstate->user_size/user_xfeatures):
    `xsave` is use_xsave(); `user_size` the bytes of the (F)XSAVE image; `user_xfeatures`
    the user xfeatures (0 without XSAVE, whose fpstate keeps no feature mask);
    `pkru_offset` the PKRU component's offset in the standard XSAVE format (CPUID 0xd.9),
    0 when the features have no PKRU."""

    xsave: bool
    user_size: int
    user_xfeatures: int
    pkru_offset: int = 0

    @property
    def pkru(self) -> bool:
        return bool(self.user_xfeatures & 1 << XFEATURE_PKRU)


#: a CPU with FXSR and no XSAVE: the 512-byte FXSAVE image
FXSR_ONLY = XstateConfig(xsave=False, user_size=FXSAVE_SIZE, user_xfeatures=0)
#: the emulated CPU's (vmsim.arch.x86.emu.cpuid shows no XSAVE)
EMULATED_XSTATE = FXSR_ONLY


class BadFrame(Exception):
    """A signal frame rt_sigreturn cannot use (signal_fault())."""


def access_ok(addr: int, size: int) -> bool:
    """access_ok(): [addr, addr+size) lies in user space."""
    return addr + size <= TASK_SIZE_MAX


def _put(t: Thread, addr: int, data: bytes) -> None:
    """unsafe_put_user()/__copy_to_user(): OSError(EFAULT) where the user could not write."""
    copy_to_user(t.process, addr, data)


def _u64(v: int) -> bytes:
    return struct.pack("<Q", v & U64)


def _get_u64(t: Thread, addr: int) -> int:
    """__get_user() of a u64: OSError(EFAULT) where the user could not read."""
    return struct.unpack("<Q", copy_from_user(t.process, addr, 8))[0]


# --- the FPU part of the frame (arch/x86/kernel/fpu/signal.c) -------------------------------

def fpu__alloc_mathframe(sp: int, xstate: XstateConfig) -> tuple[int, int]:
    """fpu__alloc_mathframe(): room for the (F)XSAVE image (and MAGIC2) below sp, 64-byte
    aligned; (its address, its size)."""
    size = xstate_sigframe_size(xstate)
    return (sp - size) & ~63, size


def xstate_sigframe_size(xstate: XstateConfig) -> int:
    """xstate_sigframe_size(): the image, and MAGIC2 after it with XSAVE."""
    return xstate.user_size + (FP_XSTATE_MAGIC2_SIZE if xstate.xsave else 0)


def copy_fpstate_to_sigframe(t: Thread, buf: int, size: int, pkru: int,
                             xstate: XstateConfig) -> bool:
    """copy_fpstate_to_sigframe(): the thread's FPU state at buf as FXSAVE (or XSAVE, with
    its header cleared first, then XSTATE_BV with FP/SSE and PKRU, and PKRU's value from
    before the frame was written) writes it, then save_xstate_epilog()'s software bytes
    and MAGIC2. The reserved bytes 416..463 of the image are not written. False if the
    memory cannot be written."""
    if not access_ok(buf, size):
        return False
    try:
        if xstate.xsave:
            _put(t, buf + FXSAVE_SIZE, bytes(XSAVE_HEADER_SIZE))
        _put(t, buf, t.regs.fxsave[:XMM_END])
        if xstate.xsave:
            xstate_bv = XFEATURE_MASK_FPSSE | (1 << XFEATURE_PKRU if xstate.pkru else 0)
            _put(t, buf + FXSAVE_SIZE, _u64(xstate_bv))
            if xstate.pkru:
                _put(t, buf + xstate.pkru_offset, struct.pack("<II", pkru, 0))
        sw = FPX_SW_BYTES.pack(FP_XSTATE_MAGIC1, xstate.user_size + FP_XSTATE_MAGIC2_SIZE,
                               xstate.user_xfeatures, xstate.user_size)
        _put(t, buf + SW_RESERVED_OFFSET, sw)
        if xstate.xsave:
            _put(t, buf + xstate.user_size, struct.pack("<I", FP_XSTATE_MAGIC2))
    except OSError:
        return False
    return True


def init_fxsave(current: bytes) -> bytes:
    """The FXSAVE image of init_fpstate: FCW 0x37f, MXCSR 0x1f80, all else zero; the
    MXCSR_MASK field is the CPU's and stays."""
    image = bytearray(FXSAVE_SIZE)
    struct.pack_into("<H", image, 0, 0x37F)
    struct.pack_into("<I", image, MXCSR_OFFSET, 0x1F80)
    image[MXCSR_MASK_OFFSET:MXCSR_MASK_OFFSET + 4] = current[MXCSR_MASK_OFFSET:MXCSR_MASK_OFFSET + 4]
    return bytes(image)


def fpu__clear_user_states(t: Thread, xstate: XstateConfig) -> None:
    """fpu__clear_user_states(): the FPU registers in their init state, PKRU (where the
    frame holds it) init_pkru_value: a handler starts clean."""
    t.regs.fxsave = init_fxsave(t.regs.fxsave)
    if xstate.pkru:
        t.process.pkru = pkeys.INIT_PKRU_VALUE


def mxcsr_feature_mask(t: Thread) -> int:
    """mxcsr_feature_mask: the CPU's MXCSR_MASK (0xffbf when FXSAVE reports none)."""
    mask = struct.unpack_from("<I", t.regs.fxsave, MXCSR_MASK_OFFSET)[0]
    return mask or 0xFFBF


def fxrstor(t: Thread, buf: int) -> bool:
    """FXRSTOR from the frame: #GP (False) unless 16-byte aligned and MXCSR valid; the
    x87 and SSE state and MXCSR loaded (MXCSR_MASK and the reserved bytes are not)."""
    if buf % 16:
        return False
    image = copy_from_user(t.process, buf, FXSAVE_SIZE)
    if struct.unpack_from("<I", image, MXCSR_OFFSET)[0] & ~mxcsr_feature_mask(t):
        return False
    current = t.regs.fxsave
    t.regs.fxsave = (image[:MXCSR_MASK_OFFSET] + current[MXCSR_MASK_OFFSET:MXCSR_MASK_OFFSET + 4]
                     + image[MXCSR_MASK_OFFSET + 4:XMM_END] + current[XMM_END:])
    return True


def xrstor(t: Thread, buf: int, rfbm: int, xstate: XstateConfig) -> bool:
    """XRSTOR (standard form) of the components in rfbm: #GP (False) unless 64-byte
    aligned, with XSTATE_BV inside XCR0, the rest of the header zero and MXCSR valid.
    A component whose XSTATE_BV bit is clear gets its init state (PKRU 0)."""
    if buf % 64:
        return False
    image = copy_from_user(t.process, buf, FXSAVE_SIZE)
    header = copy_from_user(t.process, buf + FXSAVE_SIZE, XSAVE_HEADER_SIZE)
    xstate_bv = struct.unpack_from("<Q", header)[0]
    if xstate_bv & ~xstate.user_xfeatures or any(header[8:]):
        return False
    mxcsr = struct.unpack_from("<I", image, MXCSR_OFFSET)[0]
    if rfbm & 0b110 and mxcsr & ~mxcsr_feature_mask(t):
        return False
    init = init_fxsave(t.regs.fxsave)
    new = bytearray(t.regs.fxsave)
    if rfbm & 1 << XFEATURE_FP:
        src = image if xstate_bv & 1 << XFEATURE_FP else init
        new[:MXCSR_OFFSET] = src[:MXCSR_OFFSET]
        new[32:XMM_OFFSET] = src[32:XMM_OFFSET]
    if rfbm & 1 << XFEATURE_SSE:
        src = image if xstate_bv & 1 << XFEATURE_SSE else init
        new[XMM_OFFSET:XMM_END] = src[XMM_OFFSET:XMM_END]
    if rfbm & 0b110:
        new[MXCSR_OFFSET:MXCSR_MASK_OFFSET] = image[MXCSR_OFFSET:MXCSR_MASK_OFFSET]
    if rfbm & 1 << XFEATURE_PKRU and xstate.pkru:
        pkru = copy_from_user(t.process, buf + xstate.pkru_offset, 4)
        t.process.pkru = struct.unpack("<I", pkru)[0] if xstate_bv & 1 << XFEATURE_PKRU else 0
    t.regs.fxsave = bytes(new)
    return True


def xstate_calculate_size(xfeatures: int, xstate: XstateConfig) -> int:
    """xstate_calculate_size() in the standard format: the legacy area and header, up to
    the end of PKRU if it is asked for; the full size for any other feature."""
    if xfeatures & ~(XFEATURE_MASK_FPSSE | 1 << XFEATURE_PKRU):
        return xstate.user_size
    if xfeatures & 1 << XFEATURE_PKRU and xstate.pkru:
        return xstate.pkru_offset + 8
    return FXSAVE_SIZE + XSAVE_HEADER_SIZE


def check_xstate_in_sigframe(t: Thread, buf: int, xstate: XstateConfig) -> tuple[bool, int] | None:
    """check_xstate_in_sigframe(): (fx_only, xfeatures to restore) from the software
    bytes; a frame without valid magics falls back to FXSAVE-only; None (SIGSEGV) for
    an unreadable frame or an xstate_size too small for its features."""
    magic1, extended, xfeatures, xsize = FPX_SW_BYTES.unpack(
        copy_from_user(t.process, buf + SW_RESERVED_OFFSET, FPX_SW_BYTES.size))
    minimum = FXSAVE_SIZE + XSAVE_HEADER_SIZE
    if (magic1 != FP_XSTATE_MAGIC1 or not minimum <= xsize <= xstate.user_size
            or extended < xsize + FP_XSTATE_MAGIC2_SIZE):
        return True, XFEATURE_MASK_FPSSE
    magic2 = struct.unpack("<I", copy_from_user(t.process, buf + xsize, 4))[0]
    if magic2 != FP_XSTATE_MAGIC2:
        return True, XFEATURE_MASK_FPSSE
    if xsize != xstate.user_size or xfeatures != xstate.user_xfeatures:
        xfeatures &= xstate.user_xfeatures
        if xsize < xstate_calculate_size(xfeatures, xstate):
            return None
    return False, xfeatures


def fpu__restore_sig(t: Thread, buf: int, xstate: XstateConfig) -> bool:
    """fpu__restore_sig(): the FPU state from the frame's fpstate (NULL: init state);
    False, with the FPU state reset, if it cannot be restored."""
    if not buf:
        fpu__clear_user_states(t, xstate)
        return True
    try:
        ok = access_ok(buf, xstate_sigframe_size(xstate)) and _restore_fpregs(t, buf, xstate)
    except OSError:
        ok = False
    if not ok:
        fpu__clear_user_states(t, xstate)
    return ok


def _restore_fpregs(t: Thread, buf: int, xstate: XstateConfig) -> bool:
    """__restore_fpregs_from_user(): XRSTOR of what the frame holds and the init state of
    the other features, or FXRSTOR."""
    if not xstate.xsave:
        return fxrstor(t, buf)
    checked = check_xstate_in_sigframe(t, buf, xstate)
    if checked is None:
        return False
    fx_only, xfeatures = checked
    rfbm = xfeatures & xstate.user_xfeatures
    init_bv = xstate.user_xfeatures & ~rfbm
    if fx_only and not fxrstor(t, buf):
        return False
    if not fx_only and not xrstor(t, buf, rfbm, xstate):
        return False
    if init_bv & 1 << XFEATURE_PKRU and xstate.pkru:
        t.process.pkru = 0
    return True


# --- the frame (signal.c, signal_64.c) -----------------------------------------------------

def sig_prepare_pkru(t: Thread, xstate: XstateConfig) -> int:
    """sig_prepare_pkru(): PKRU 0 while the frame is written, so that whatever key
    protects the stack, it can be; the old value is returned (and saved in the frame)."""
    pkru = t.process.pkru
    if xstate.pkru:
        t.process.pkru = 0
    return pkru


def get_sigframe(t: Thread, ksig: KSignal, frame_size: int, xstate: XstateConfig) -> tuple[int, int]:
    """get_sigframe(): (frame, fpstate). Below the red zone, or at the top of the
    alternate stack with SA_ONSTACK when not on it already; the FPU state first (written
    here), the frame 16-byte aligned minus 8 below it. An alternate stack that would
    overflow, or FPU state that cannot be written, gives an always-bad frame (-1)."""
    sp = t.regs.rsp
    nested_altstack = on_sig_stack(t, sp)
    entering_altstack = False
    sp -= 128
    if ksig.ka.flags & SA_ONSTACK and sas_ss_flags(t, sp) == 0:
        sp = t.sas_ss_sp + t.sas_ss_size
        entering_altstack = True
    fpstate, math_size = fpu__alloc_mathframe(sp, xstate)
    sp = ((fpstate - frame_size) & ~15) - 8
    if (nested_altstack or entering_altstack) and not __on_sig_stack(t, sp):
        return U64, fpstate
    pkru = sig_prepare_pkru(t, xstate)
    if not copy_fpstate_to_sigframe(t, fpstate, math_size, pkru, xstate):
        t.process.pkru = pkru
        return U64, fpstate
    return sp, fpstate


def frame_uc_flags(xstate: XstateConfig) -> int:
    """frame_uc_flags(): UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS (64-bit code), and
    UC_FP_XSTATE when the FPU frame is XSAVE's."""
    return (UC_FP_XSTATE if xstate.xsave else 0) | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS


def setup_rt_frame(t: Thread, ksig: KSignal, xstate: XstateConfig = EMULATED_XSTATE) -> bool:
    """x64_setup_rt_frame(): write the frame (in the kernel's order: ucontext head,
    pretcode, sigcontext, sigmask, then the siginfo with SA_SIGINFO) and point the
    registers at the handler: rdi the signal, rsi &info, rdx &uc, rax 0, rsp the frame.
    False (the caller forces SIGSEGV) without SA_RESTORER or if the frame cannot be
    written."""
    ka = ksig.ka
    if not ka.flags & SA_RESTORER:
        return False
    frame, fpstate = get_sigframe(t, ksig, RT_SIGFRAME_SIZE, xstate)
    if not access_ok(frame, RT_SIGFRAME_SIZE):
        return False
    regs = t.regs
    writes = [(UC_FLAGS, _u64(frame_uc_flags(xstate))), (UC_LINK, _u64(0)),
              (UC_STACK, _u64(t.sas_ss_sp)), (UC_STACK + 8, struct.pack("<I", t.sas_ss_flags)),
              (UC_STACK + 16, _u64(t.sas_ss_size)), (0, _u64(ka.restorer))]
    writes += [(UC_MCONTEXT + SC[name], _u64(getattr(regs, name))) for name in SC_WRITE_ORDER]
    writes += [(UC_MCONTEXT + SC["trapno"], _u64(t.trap_nr)), (UC_MCONTEXT + SC["err"], _u64(t.error_code)),
               (UC_MCONTEXT + SC["rip"], _u64(regs.rip)), (UC_MCONTEXT + SC["eflags"], _u64(regs.eflags)),
               (UC_MCONTEXT + SC["cs"], struct.pack("<HHHH", USER_CS, 0, 0, USER_DS)),
               (UC_MCONTEXT + SC["fpstate"], _u64(fpstate)),
               (UC_MCONTEXT + SC["oldmask"], _u64(sigmask_to_save(t))),
               (UC_MCONTEXT + SC["cr2"], _u64(t.cr2)), (UC_SIGMASK, _u64(sigmask_to_save(t)))]
    if ka.flags & SA_SIGINFO:
        writes.append((INFO, ksig.info.to_user()))
    try:
        for offset, data in writes:
            _put(t, frame + offset, data)
    except OSError:
        return False
    regs.rdi, regs.rax = ksig.sig, 0
    regs.rsi, regs.rdx = frame + INFO, frame + UC
    regs.rip, regs.rsp = ka.handler, frame
    return True


def syscall_get_error(t: Thread) -> int:
    """syscall_get_error(): rax as a negative errno, 0 if it is not one."""
    rax = t.regs.rax & U64
    value = rax - (1 << 64) if rax >> 63 else rax
    return value if -4095 <= value < 0 else 0


def handle_signal(t: Thread, ksig: KSignal, xstate: XstateConfig = EMULATED_XSTATE) -> None:
    """handle_signal(): an interrupted syscall returns -EINTR, or with SA_RESTART (and
    always for -ERESTARTNOINTR) is made to run again when the handler returns; then the
    frame, the handler's clean eflags (no DF, RF, TF) and FPU state, and the new blocked
    mask; SIGSEGV if the frame could not be written."""
    regs = t.regs
    if regs.orig_rax != NO_SYSCALL:
        err = syscall_get_error(t)
        if err in (-ERESTART_RESTARTBLOCK, -ERESTARTNOHAND) or \
                (err == -ERESTARTSYS and not ksig.ka.flags & SA_RESTART):
            regs.rax = -EINTR & U64
        elif err in (-ERESTARTSYS, -ERESTARTNOINTR):
            regs.rax = regs.orig_rax
            regs.rip = (regs.rip - 2) & U64
    failed = not setup_rt_frame(t, ksig, xstate)
    if not failed:
        regs.eflags &= ~(X86_EFLAGS_DF | X86_EFLAGS_RF | X86_EFLAGS_TF)
        fpu__clear_user_states(t, xstate)
    signal_setup_done(failed, t, ksig)


#: told as a signal is dequeued for delivery (its siginfo: to a handler, or fatal) or a
#: call is restarted without one (None), while rax still holds the call's result: the
#: ptrace stops strace reports
SignalStop = Callable[[Thread, SigInfo | None], None]


def arch_do_signal_or_restart(t: Thread, xstate: XstateConfig = EMULATED_XSTATE,
                              stop: SignalStop | None = None) -> None:
    """arch_do_signal_or_restart(): deliver the next signal to its handler; without one,
    restart an interrupted syscall (-ERESTART_RESTARTBLOCK as restart_syscall) and put
    back the mask rt_sigsuspend() replaced. GroupExit for a fatal signal."""
    ksig = get_signal(t, stop)
    if ksig is None and stop is not None:
        stop(t, None)
    if ksig is not None:
        handle_signal(t, ksig, xstate)
        return
    regs = t.regs
    if regs.orig_rax != NO_SYSCALL:
        err = syscall_get_error(t)
        if err in (-ERESTARTNOHAND, -ERESTARTSYS, -ERESTARTNOINTR):
            regs.rax = regs.orig_rax
            regs.rip = (regs.rip - 2) & U64
        elif err == -ERESTART_RESTARTBLOCK:
            regs.rax = NR_RESTART_SYSCALL
            regs.rip = (regs.rip - 2) & U64
    restore_saved_sigmask(t)


def exit_to_user_mode_loop(t: Thread, xstate: XstateConfig = EMULATED_XSTATE,
                           stop: SignalStop | None = None) -> None:
    """kernel/entry/common.c exit_to_user_mode_loop(): while a signal may be pending,
    deliver (each handler's frame on top of the last) or restart, telling `stop` of
    each. The run loop calls this every time a thread is about to run user code again."""
    while t.sigpending:
        arch_do_signal_or_restart(t, xstate, stop)


# --- rt_sigreturn(2) --------------------------------------------------------------------

def restore_sigcontext(t: Thread, usc: int, xstate: XstateConfig) -> bool:
    """restore_sigcontext(): a pending restarted call will return -EINTR (the restart
    block cleared: do_no_restart_syscall), the registers from the frame's sigcontext
    (eflags: only FIX_EFLAGS), no syscall to restart (orig_rax -1), then the FPU state."""
    t.restart_block = None
    try:
        values = SIGCONTEXT.unpack(copy_from_user(t.process, usc, SIGCONTEXT.size))
    except OSError:
        return False
    regs = t.regs
    for name, value in zip(SC_REGS, values, strict=False):
        setattr(regs, name, value)
    regs.eflags = (regs.eflags & ~FIX_EFLAGS) | (values[len(SC_REGS)] & FIX_EFLAGS)
    regs.orig_rax = NO_SYSCALL
    return fpu__restore_sig(t, values[-1], xstate)


def sys_rt_sigreturn(t: Thread, xstate: XstateConfig = EMULATED_XSTATE) -> int:
    """rt_sigreturn(2): the frame at rsp - 8 (the handler's ret popped pretcode): its
    mask, registers, FPU state and alternate stack come back; the return value is the
    restored rax. A frame that cannot be read or restored is a SIGSEGV (signal_fault())."""
    frame = (t.regs.rsp - 8) & U64
    try:
        if not access_ok(frame, RT_SIGFRAME_SIZE):
            raise BadFrame
        blocked = _get_u64(t, frame + UC_SIGMASK)
        # uc_flags is read (and its fault is a bad frame) but its one flag, UC_STRICT_RESTORE_SS,
        # only decides whether a bad ss is repaired: the model has no ss
        _get_u64(t, frame + UC_FLAGS)
        set_current_blocked(t, blocked)
        if not restore_sigcontext(t, frame + UC_MCONTEXT, xstate):
            raise BadFrame
        restore_altstack(t, frame + UC_STACK)
    except (BadFrame, OSError):
        force_sig(t, SIGSEGV)
        return 0
    return t.regs.rax


# --- faults (arch/x86/mm/fault.c) --------------------------------------------------------

def set_signal_archinfo(t: Thread, address: int, error_code: int) -> None:
    """set_signal_archinfo(): trapno 14, the error code (with X86_PF_USER; a kernel
    address reads as a protection fault), cr2: what this and later frames report."""
    if address >= TASK_SIZE_MAX:
        error_code |= X86_PF_PROT
    t.trap_nr, t.error_code, t.cr2 = X86_TRAP_PF, error_code | X86_PF_USER, address


def bad_area(t: Thread, fault: Fault, error_code: int) -> None:
    """__bad_area_nosemaphore() and do_sigbus(): the signal of a user page fault the
    model refused (vmsim.errors.Fault), with the page fault error code the CPU pushed;
    SEGV_PKUERR carries the key of the VMA at the address (si_pkey)."""
    set_signal_archinfo(t, fault.addr, error_code)
    sig, code = FAULT_SIGNALS[fault.signal], FAULT_CODES[fault.code]
    if sig == SIGSEGV and code == SEGV_PKUERR:
        vma = t.process.mm.tree.find(fault.addr)
        force_sig_pkuerr(t, fault.addr, vma_pkey(vma.flags) if vma is not None else 0)
    else:
        force_sig_fault(t, sig, code, fault.addr)


# --- the syscall entry's handlers (vmsim.arch.x86.entry.syscall_64 THREAD_CALLS) -----------

#: the signal syscalls by the table's name, each taking the calling thread and the raw
#: argument registers (the entry's THREAD_CALLS)
SIGNAL_CALLS: dict[str, Callable[[Thread, Sequence[int]], int]] = {
    "rt_sigaction": lambda t, a: ksig.sys_rt_sigaction(t, a[0], a[1], a[2], a[3]),
    "rt_sigprocmask": lambda t, a: ksig.sys_rt_sigprocmask(t, a[0], a[1], a[2], a[3]),
    "rt_sigreturn": lambda t, a: sys_rt_sigreturn(t),
    "restart_syscall": lambda t, a: ksig.sys_restart_syscall(t),
    "pause": lambda t, a: ksig.sys_pause(t),
    "getitimer": lambda t, a: ksig.sys_getitimer(t, a[0], a[1]),
    "alarm": lambda t, a: ksig.sys_alarm(t, a[0]),
    "setitimer": lambda t, a: ksig.sys_setitimer(t, a[0], a[1], a[2]),
    "kill": lambda t, a: ksig.sys_kill(t, a[0], a[1]),
    "rt_sigpending": lambda t, a: ksig.sys_rt_sigpending(t, a[0], a[1]),
    "rt_sigqueueinfo": lambda t, a: ksig.sys_rt_sigqueueinfo(t, a[0], a[1], a[2]),
    "rt_sigsuspend": lambda t, a: ksig.sys_rt_sigsuspend(t, a[0], a[1]),
    "sigaltstack": lambda t, a: ksig.sys_sigaltstack(t, a[0], a[1]),
    "tkill": lambda t, a: ksig.sys_tkill(t, a[0], a[1]),
    "tgkill": lambda t, a: ksig.sys_tgkill(t, a[0], a[1], a[2]),
    "rt_tgsigqueueinfo": lambda t, a: ksig.sys_rt_tgsigqueueinfo(t, a[0], a[1], a[2], a[3]),
}

