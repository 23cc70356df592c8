"""A thread's registers in and out of the emulated core: what the kernel's entry code
saves into struct pt_regs (arch/x86/entry/entry_64.S PUSH_REGS) and what its FPU code
saves with FXSAVE (arch/x86/kernel/fpu/core.c save_fpregs_to_fpstate()) when a task
leaves the CPU, and restores when it comes back.

Each direction is two batched calls into Unicorn's C library with argument arrays built
once: the binding's own reg_read_batch() builds its ctypes objects on every call (about
33 µs for the general registers, against 2 µs here), and a syscall costs one move each way.
The FPU/SSE registers are read straight into an FXSAVE image (the SDM's 64-bit FXSAVE
layout: FCW, FSW, the abridged tag byte, FOP, FIP, FDP, MXCSR, ST0-ST7 in 16-byte slots,
XMM0-XMM15); bytes Unicorn does not hold (MXCSR_MASK, the reserved and software-available
tail) keep what the thread's image had.
"""

from __future__ import annotations

import ctypes
import struct

from unicorn import x86_const as x86
from unicorn.unicorn_py3.unicorn import uclib

from ..ptrace import GPRS, PtRegs

#: PtRegs' 64-bit fields as Unicorn names them, in one batch: the general registers,
#: then eflags and the segment bases
GPR_FIELDS = (*GPRS, "eflags", "fs_base", "gs_base")
GPR_IDS = tuple(getattr(x86, f"UC_X86_REG_{name.upper()}") for name in GPR_FIELDS)

#: the FPU/SSE registers and their offsets in the FXSAVE image; FSW comes first, as
#: writing it sets the x87 stack top that ST0-ST7 are relative to
FX_SLOTS = (
    (x86.UC_X86_REG_FPSW, 2), (x86.UC_X86_REG_FPCW, 0), (x86.UC_X86_REG_FOP, 6),
    (x86.UC_X86_REG_FIP, 8), (x86.UC_X86_REG_FDP, 16), (x86.UC_X86_REG_MXCSR, 24),
    *((getattr(x86, f"UC_X86_REG_ST{i}"), 32 + 16 * i) for i in range(8)),
    *((getattr(x86, f"UC_X86_REG_XMM{i}"), 160 + 16 * i) for i in range(16)),
)
#: the full x87 tag word (two bits per physical register, 3: empty), kept beside the
#: image: FXSAVE holds its abridged form (one bit per register, 1: not empty) at FTW
FTW = 4
FXSAVE_SIZE = 512


def abridged_tag(tag_word: int) -> int:
    """FXSAVE's abridged tag byte for a full x87 tag word."""
    return sum(1 << i for i in range(8) if (tag_word >> 2 * i) & 3 != 3)


def full_tag(abridged: int) -> int:
    """The full tag word FXRSTOR rebuilds from an abridged byte: a register marked
    not empty is valid (Unicorn keeps only empty or not)."""
    return sum(3 << 2 * i for i in range(8) if not abridged >> i & 1)


#: the conversions looked up at each move: the abridged bits of four registers' tags
#: (a byte of the tag word), and the full tag word of each abridged byte
ABRIDGED4 = bytes(abridged_tag(byte | 0xFF00) for byte in range(256))
FULL = tuple(full_tag(byte) for byte in range(256))


class RegisterFile:
    """The register transfer of one Unicorn core.

    Invariant: `fxsave` holds the last image loaded or stored; `tag` the full tag word
    of the same moment.
    """

    def __init__(self, uc) -> None:
        self._uch = uc._uch
        n = len(GPR_IDS)
        self.gpr_ids = (ctypes.c_int * n)(*GPR_IDS)
        self.gpr = (ctypes.c_uint64 * n)()
        self.gpr_ptrs = (ctypes.c_void_p * n)(*(ctypes.addressof(self.gpr) + 8 * i for i in range(n)))
        self.fxsave = ctypes.create_string_buffer(FXSAVE_SIZE)
        self.tag = ctypes.c_uint16()
        base = ctypes.addressof(self.fxsave)
        ids = [reg for reg, _ in FX_SLOTS] + [x86.UC_X86_REG_FPTAG]
        ptrs = [base + off for _, off in FX_SLOTS] + [ctypes.addressof(self.tag)]
        self.fx_ids = (ctypes.c_int * len(ids))(*ids)
        self.fx_ptrs = (ctypes.c_void_p * len(ptrs))(*ptrs)
        self._rip = ctypes.c_uint64()

    def load(self, regs: PtRegs) -> None:
        """Put `regs` into the core (switch_to() and the FPU restore on the way back to
        user mode)."""
        self.gpr[:] = [getattr(regs, name) for name in GPR_FIELDS]
        self._call(uclib.uc_reg_write_batch, self.gpr_ids, self.gpr_ptrs, len(GPR_IDS))
        image = regs.fxsave
        ctypes.memmove(self.fxsave, image, FXSAVE_SIZE)
        self.tag.value = FULL[image[FTW]]
        self._call(uclib.uc_reg_write_batch, self.fx_ids, self.fx_ptrs, len(self.fx_ids))

    def store(self, regs: PtRegs) -> None:
        """Take the core's registers into `regs` (the entry code's pt_regs, and the FPU
        state saved when the task leaves the CPU)."""
        self._call(uclib.uc_reg_read_batch, self.gpr_ids, self.gpr_ptrs, len(GPR_IDS))
        for name, value in zip(GPR_FIELDS, self.gpr, strict=True):
            setattr(regs, name, value)
        self._call(uclib.uc_reg_read_batch, self.fx_ids, self.fx_ptrs, len(self.fx_ids))
        tag = self.tag.value
        struct.pack_into("<BB", self.fxsave, FTW, ABRIDGED4[tag & 0xFF] | ABRIDGED4[tag >> 8] << 4, 0)
        regs.fxsave = self.fxsave.raw

    def rip(self) -> int:
        """The core's instruction pointer."""
        status = uclib.uc_reg_read(self._uch, x86.UC_X86_REG_RIP, ctypes.byref(self._rip))
        if status:
            raise RuntimeError(f"unicorn register read failed ({status})")
        return self._rip.value

    def _call(self, fn, ids, ptrs, count: int) -> None:
        status = fn(self._uch, ids, ptrs, count)
        if status:
            raise RuntimeError(f"unicorn register transfer failed ({status})")
