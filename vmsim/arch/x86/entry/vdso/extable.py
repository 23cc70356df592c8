"""The vDSO's exception fixups: arch/x86/entry/vdso/extable.c fixup_vdso_exception(),
which the kernel asks about every exception user mode raised before it sends a signal
(arch/x86/kernel/traps.c do_trap(), exc_general_protection(), math_error();
arch/x86/mm/fault.c __bad_area_nosemaphore(), do_sigbus()).

An exception at an instruction the image's exception table lists (build.vdso_extable():
in this image the ENCLU of __vdso_sgx_enter_enclave, vsgx.S) is no signal: the thread
goes on at that entry's fixup with the trap number in RDI, the error code in RSI and
the fault address in RDX. An exception inside an enclave reaches the kernel after the
AEX, at the AEP, and vsgx.S makes its ENCLU the AEP: so the enclave's exceptions come
back to the vDSO's caller in struct sgx_enclave_run. #DB and #BP are never fixed up
(the kernel cannot tell whether one came from inside an enclave).
"""

from __future__ import annotations

from ...ptrace import PtRegs
from .build import vdso_extable

#: arch/x86/include/asm/trapnr.h: the traps never fixed up
X86_TRAP_DB, X86_TRAP_BP = 1, 3


def fixup_vdso_exception(regs: PtRegs, vdso: int | None, trapnr: int, error_code: int,
                         fault_addr: int) -> bool:
    """fixup_vdso_exception(): if regs.rip is an instruction of the exception table of
    the vDSO mapped at `vdso` (current->mm->context.vdso; None: the mm has none),
    send the thread to its fixup with RDI = trapnr, RSI = error_code, RDX = fault_addr
    and return True; else False, the registers untouched."""
    if trapnr in (X86_TRAP_DB, X86_TRAP_BP) or vdso is None:
        return False
    for insn, fixup in vdso_extable():
        if regs.rip == vdso + insn:
            regs.rip, regs.rdi, regs.rsi, regs.rdx = vdso + fixup, trapnr, error_code, fault_addr
            return True
    return False
