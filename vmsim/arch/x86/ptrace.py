"""The user registers of an x86-64 task: arch/x86/include/asm/ptrace.h `struct pt_regs`
(the general registers, rip, eflags, rsp), with the segment bases and the FPU/SSE state
that arch/x86 keeps in thread_struct and the fpstate beside it.

The CPU emulator (vmsim.arch.x86.emu) loads a thread's registers from here when it runs
it and stores them back when it stops; a syscall reads its number from orig_rax and its
arguments from rdi, rsi, rdx, r10, r8, r9 and leaves its result in rax; signal delivery
(vmsim.arch.x86.signal) saves them into a frame and rt_sigreturn restores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

#: the general registers, in struct pt_regs / struct sigcontext_64 naming
GPRS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
        "rdx", "rax", "rcx", "rsp", "rip")


@dataclass(slots=True)
class PtRegs:
    """A thread's user state. Every field is a 64-bit unsigned value but `fxsave`,
    the 512-byte FXSAVE image of the x87/SSE state (its layout: the SDM's FXSAVE
    table); orig_rax is the syscall number while a syscall is served (-1 otherwise,
    as the kernel keeps it)."""

    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    rdi: int = 0
    rsi: int = 0
    rbp: int = 0
    rbx: int = 0
    rdx: int = 0
    rax: int = 0
    rcx: int = 0
    rsp: int = 0
    rip: int = 0
    eflags: int = 0x202
    orig_rax: int = (1 << 64) - 1
    fs_base: int = 0
    gs_base: int = 0
    fxsave: bytes = field(default=bytes(512), repr=False)

    def syscall_args(self) -> tuple[int, int, int, int, int, int]:
        """The six arguments of a syscall, in the x86-64 ABI's registers."""
        return (self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9)

    def copy(self) -> PtRegs:
        """A copy (a fork child's registers, a signal frame's saved ones)."""
        return PtRegs(**{f.name: getattr(self, f.name) for f in fields(self)})
