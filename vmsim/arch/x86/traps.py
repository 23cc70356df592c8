"""CPU exceptions in user mode and the signals they raise: arch/x86/kernel/traps.c
(do_error_trap(), exc_general_protection(), do_int3_user(), math_error()) and, for a
page fault the model refused, arch/x86/mm/fault.c through vmsim.arch.x86.signal's
bad_area().

The emulated core (vmsim.arch.x86.emu) reports what it raised as a Trap; force_trap()
turns it into the signal the kernel forces on the thread (vmsim.task.signal), recording
trap_nr and error_code for the signal frame as the kernel's thread_struct keeps them.
A #PF the core did not hand to the model's fault path (in enclave mode, where the AEX
comes first) goes through handle_user_fault() before: fixed, it is no signal.

A page fault's error code is the hardware's: X86_PF_PROT (and X86_PF_PK) only where the
PTE was present (pte_present()), so a write to a never-touched read-only page is
USER|WRITE (6) and the same write after the page was mapped is 7.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import Fault
from ...fs.binfmt_elf import VDSO_OPS
from ...mm.fault import fault_page, user_fault
from ...mm.flags import VM_ACCESS_FLAGS
from ...task.signal import force_sig, force_sig_fault
from ...task.signal_types import SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP
from ...task.thread import Thread
from ...uapi import PAGE_SHIFT, PAGE_SIZE, SEGV_ACCERR, SEGV_PKUERR
from .entry.vdso.extable import fixup_vdso_exception
from .signal import bad_area

#: arch/x86/include/asm/trapnr.h
X86_TRAP_DE, X86_TRAP_DB, X86_TRAP_BP, X86_TRAP_OF, X86_TRAP_BR, X86_TRAP_UD = 0, 1, 3, 4, 5, 6
X86_TRAP_GP, X86_TRAP_PF, X86_TRAP_MF, X86_TRAP_AC, X86_TRAP_XF = 13, 14, 16, 17, 19
#: the page fault error code (arch/x86/include/asm/trap_pf.h)
X86_PF_PROT, X86_PF_WRITE, X86_PF_USER, X86_PF_INSTR, X86_PF_PK = 1 << 0, 1 << 1, 1 << 2, 1 << 4, 1 << 5
#: include/uapi/asm-generic/siginfo.h
ILL_ILLOPN, FPE_INTDIV, FPE_FLTINV, BUS_ADRALN, TRAP_TRACE = 2, 1, 7, 1, 2
#: the traps that are force_sig_fault() of a signal and si_code, with si_addr the
#: instruction's address (do_error_trap(), math_error(), exc_alignment_check())
FAULTS_AT_RIP = {
    X86_TRAP_DE: (SIGFPE, FPE_INTDIV),
    X86_TRAP_DB: (SIGTRAP, TRAP_TRACE),
    X86_TRAP_UD: (SIGILL, ILL_ILLOPN),
    X86_TRAP_MF: (SIGFPE, FPE_FLTINV),
    X86_TRAP_AC: (SIGBUS, BUS_ADRALN),
    X86_TRAP_XF: (SIGFPE, FPE_FLTINV),
}


@dataclass(frozen=True)
class Trap:
    """An exception the core raised in user mode: its vector, the error code it pushed,
    and for a page fault (#PF) the address (cr2) and the model's answer (the signal,
    vmsim.errors.Fault). The thread's rip is at the instruction (after it for INT3 and
    INT n)."""

    vector: int
    error_code: int = 0
    address: int = 0
    fault: Fault | None = None


def page_fault(fault: Fault, kind: str, present: bool) -> Trap:
    """The #PF of an access of `kind` ("r", "w", "x") the model refused, with the error
    code the CPU pushes: the access, and X86_PF_PROT if the PTE was `present` (with
    X86_PF_PK when the key refused it). A refusal on a PTE not present (the VMA's
    protection or key checked by do_user_addr_fault(), or no VMA at all) has no PROT."""
    code = {"w": X86_PF_WRITE, "x": X86_PF_INSTR}.get(kind, 0)
    if present:
        code |= X86_PF_PROT
        if fault.code == SEGV_PKUERR:
            code |= X86_PF_PK
    return Trap(X86_TRAP_PF, code, fault.addr, fault)


def pte_present(task, fault: Fault, kind: str) -> bool:
    """The PTE of the faulting page was present to the CPU (_PAGE_PRESENT): the model maps
    a page there (a private page, a page-cache page, a PFN) in a VMA that is not
    PROT_NONE (whose PTEs the CPU sees as not present). An instruction fetch refused
    with SEGV_ACCERR from an accessible VMA was first handled as a read
    (mm/fault.py user_fault()): the retry hit a present NX PTE. The zero page a read of
    anonymous memory maps is not recorded by the model: absent here
    (docs/deviations.md)."""
    mm = task.mm
    vma = mm.tree.find(fault.addr)
    if vma is None or not vma.flags & VM_ACCESS_FLAGS:
        return False
    if kind == "x" and fault.code == SEGV_ACCERR:
        return True
    vpn = fault.addr >> PAGE_SHIFT
    return vpn in mm.anon_pages or vpn in mm.file_ptes or vpn in mm.pfn_ptes


def handle_user_fault(thread: Thread, trap: Trap) -> Trap | None:
    """do_user_addr_fault() for a #PF the core left to the kernel (an enclave page whose
    PTE was not present: the AEX came first, `trap.address` is CR2, the page): the
    model's fault path (mm/fault.py user_fault(), then fault_page(): the SGX driver's
    ->fault, its EAUG and ELDU) for the access the error code names. None when it
    fixed the fault (the thread returns to user mode at the AEP), else the trap with
    the model's answer, for force_trap()."""
    code = trap.error_code
    kind = "w" if code & X86_PF_WRITE else "x" if code & X86_PF_INSTR else "r"
    task = thread.process
    try:
        vma = user_fault(task, trap.address, kind)
        fault_page(task, vma, trap.address, kind == "w")
    except Fault as fault:
        return Trap(trap.vector, code, trap.address, fault)
    return None


def force_trap(thread: Thread, trap: Trap) -> bool:
    """The signal `trap` forces on `thread`: a page fault's from bad_area(); a #GP, INT3,
    INTO, BOUND or an INT n through a gate user mode may not use, force_sig() (SI_KERNEL,
    no address); the others force_sig_fault() at the instruction's address. First, as
    each of the kernel's handlers does, the vDSO's exception table (vdso_fixup()):
    False when it fixed the exception up and no signal was sent."""
    if vdso_fixup(thread, trap):
        return False
    if trap.vector == X86_TRAP_PF:
        assert trap.fault is not None           # a #PF always carries the model's answer
        bad_area(thread, trap.fault, trap.error_code)
        return True
    thread.trap_nr, thread.error_code = trap.vector, trap.error_code
    fault = FAULTS_AT_RIP.get(trap.vector)
    if fault is not None:
        force_sig_fault(thread, fault[0], fault[1], thread.regs.rip)
    elif trap.vector == X86_TRAP_BP:
        force_sig(thread, SIGTRAP)
    else:
        force_sig(thread, SIGSEGV)
    return True


def vdso_fixup(thread: Thread, trap: Trap) -> bool:
    """fixup_vdso_exception() with what each handler passes: a page fault's error code as
    the CPU pushed it (with X86_PF_USER) and CR2 (__bad_area_nosemaphore(),
    do_sigbus()), math_error()'s error code 0, the others' error code and no address."""
    regs = thread.regs
    if trap.vector == X86_TRAP_PF:
        code, addr = trap.error_code | X86_PF_USER, trap.address
    else:
        code, addr = 0 if trap.vector in (X86_TRAP_MF, X86_TRAP_XF) else trap.error_code, 0
    return fixup_vdso_exception(regs, vdso_base(thread.process, regs.rip), trap.vector, code, addr)


def vdso_base(task, addr: int) -> int | None:
    """current->mm->context.vdso as the fixup uses it: the start of the [vdso] mapping
    that holds addr (it follows an mremap of [vdso], as vdso_mremap() keeps it); None
    when addr is not in [vdso], where no entry of the table can be."""
    vma = task.mm.tree.find(addr)
    if vma is None or vma.vm_ops is not VDSO_OPS:
        return None
    return vma.start - vma.pgoff * PAGE_SIZE
