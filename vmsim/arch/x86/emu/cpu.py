"""One emulated x86-64 core running user-mode code, with the model as its MMU: what
the hardware page walk and arch/x86/mm/fault.c do_user_addr_fault() do for a real CPU.

Memory. Unicorn runs in UC_TLB_VIRTUAL mode: it asks `_tlb_fill` for each virtual page
it needs. The answer is the model's: the fault path of Process.read/write/touch
(mm/fault.py user_fault(): the VMA, stack growth, access_error() with PKRU; then
fault_page(): the PTE, COW, the driver's ->fault) and the frame it leaves mapped,
whose physical address is the answer. Unicorn's physical memory is the frame arena of
mm/page_alloc.py, mapped once per chunk, so a page's contents exist once. The
permissions answered are those of the PTE the kernel would have installed, so a later
stronger access comes back for a new fill, as a real CPU faults on a PTE that is too
weak: a read fill of a private file page or of the zero page is not writable, so the
write that follows COWs. A refused fill stops emulation with RIP at the instruction;
the Fault is delivered from Python after the stop (never change state Unicorn holds
inside a hook: remapping in a memory hook crashed the prototype).

TLB and translation cache. The TLB holds one mm's PTEs with one PKRU: it is flushed
when the core switches to another mm or PKRU (switch_mm()) and, by the caller, after
every syscall that changes mappings or PTEs (flush_tlb(): the kernel's TLB shootdown).
Translated code is looked up by physical address (QEMU's TB hash), so it survives
switches between processes that share frames (libc's page cache) and is dropped
(flush_tb()) when a frame that held translated code is freed (page_alloc on_free), when
its contents change behind the CPU's back (a syscall writing it: check_code()), or when
exec permission goes away from a page that held code (exec_dropped()). Writes the guest
makes itself are seen by QEMU.

Why one core for the machine: a Unicorn instance costs about 7 ms and a few MB to make,
and its translated code is private to it; with one core, switching threads costs a
register load (about 5 µs) and a TLB flush when the mm changes, and libc is translated
once for every process of a run (fork, exec). Threads of one mm keep the TLB.

Privilege. The core runs at CPL 0 with the model as its page tables, so nothing makes
a privileged instruction fault as at CPL 3, but HLT (which stops the core: #GP here)
and the instructions Unicorn does not know (#UD).

Enclave mode (vmsim.arch.x86.emu.enclave). ENCLU stops the core as an instruction
Unicorn does not know; the model performs the leaf (enclu.py) on the thread's registers
and starts again. Each switch into or out of enclave mode empties the TLB, since a page
of ELRANGE maps the EPC page's own frame inside and the abort page outside; inside,
the fill checks the EPCM after the page walk, and a code hook over the enclave's
ELRANGE refuses the instructions enclave mode does not execute. Every stop inside
(an exception, the end of the slice) is an AEX before run() returns: the thread leaves
the core at the AEP with the synthetic state, the exception (if any) in `trap`. A page
of ELRANGE without a PTE is a #PF the fill does not handle: `trap` has no Fault yet,
the kernel's side runs the fault handler after the AEX (traps.handle_user_fault()).

Budget. run() with a budget counts instructions (emu_start's count, which instruments
every translated instruction): a preemptive round-robin slice. Counting and
non-counting code cannot be mixed in the cache, so switching between them flushes it;
the scheduler counts only while two threads could run.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from unicorn import unicorn_const as uc_const
from unicorn import x86_const
from unicorn.unicorn_py3 import Uc, UcError

from ....errors import Fault
from ....mm.fault import access, access_error, fault_page, user_fault
from ....mm.flags import VM_EXEC, VM_PFNMAP, VM_SHARED, VM_WRITE
from ....mm.page_alloc import CHUNK_SIZE, PHYS, PHYS_BASE, Chunk, alloc_page, page_to_phys
from ....uapi import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, U64
from ..ptrace import PtRegs
from ..sgx.cpu import EnclsFault
from ..signal import NO_SYSCALL
from ..traps import X86_PF_INSTR, X86_TRAP_GP, X86_TRAP_PF, X86_TRAP_UD, Trap, page_fault, pte_present
from .cpuid import Cpuid
from .enclave import EnclaveUnit, NotPresent, leaf_trap
from .regs import RegisterFile

if TYPE_CHECKING:
    from ....process import Process

#: emu_start()'s end address: never reached (0 is below mmap_min_addr). When the core
#: stops, Unicorn asks for a fetch translation of the page of UNTIL - 1, which is no
#: access of the program's: _tlb_fill refuses it silently.
UNTIL = 0
SPURIOUS_PAGE = ((UNTIL - 1) & U64) >> PAGE_SHIFT
#: Unicorn's access types, as the page walk names them
ACCESS_KINDS = {uc_const.UC_MEM_READ: "r", uc_const.UC_MEM_WRITE: "w", uc_const.UC_MEM_FETCH: "x"}
#: the most data pages one instruction touches (a string move across page ends)
PROBE_PAGES = 4
#: the instructions the model executes itself when Unicorn does not (it lacks PKU)
RDPKRU, WRPKRU = b"\x0f\x01\xee", b"\x0f\x01\xef"
#: the instruction the model executes for an SGX CPU (Unicorn does not know it)
ENCLU = b"\x0f\x01\xd7"


class Stop(enum.Enum):
    """Why run() returned."""

    #: SYSCALL: the registers hold the call, rip the instruction after it
    SYSCALL = "syscall"
    #: an exception: Cpu.trap says which
    TRAP = "trap"
    #: the instruction budget ran out
    PREEMPTED = "preempted"


def canonical(addr: int) -> bool:
    """A 48-bit canonical address (bits 63..47 all equal)."""
    top = addr >> 47
    return top == 0 or top == (1 << 17) - 1


class Cpu:
    """An emulated core with the model as its MMU.

    Invariants: every chunk of PHYS is mapped at its physical address, or waits in
    `_unmapped` while emulation runs (mapped before the next start); the TLB holds
    translations of `tlb_mm` under `tlb_pkru` only; `code` holds the physical address
    of each frame translated code was made from since the last flush_tb(), with its
    contents then, `anon_code` those of them that were anonymous or EPC pages (which
    the kernel side and ENCLU change in place); `exec_vpns`
    the virtual pages of tlb_mm fetched from since then; `trap` is the exception of the
    last stop. `enclave` is the enclave-mode side of an SGX CPU (None without SGX);
    `_insn_hook` the code hook over the entered enclave's ELRANGE, exactly while in
    enclave mode; `_tlb_stale` asks for a TLB flush before the next start.
    """

    def __init__(self, cpuid: Cpuid) -> None:
        self.uc = Uc(uc_const.UC_ARCH_X86, uc_const.UC_MODE_64)
        self.uc.ctl_set_cpu_model(getattr(x86_const, cpuid.cpu.uc_model))
        self.uc.ctl_set_tlb_mode(uc_const.UC_TLB_VIRTUAL)
        self.cpuid = cpuid
        self.regs = RegisterFile(self.uc)
        self.task: Process | None = None    # whose thread runs: its mm is walked
        self.tlb_mm: object = None
        self.tlb_pkru = 0
        self.code: dict[int, bytes] = {}
        self.anon_code: set[int] = set()
        self.exec_vpns: set[int] = set()
        self.counting = False
        self.trap: Trap | None = None
        self._stop: Stop | None = None
        self._error: BaseException | None = None
        self._restart = False
        self._tb_stale = False
        self._tlb_stale = False
        self._running = False
        self.enclave = EnclaveUnit(cpuid.cpu.sgx) if cpuid.cpu.sgx is not None else None
        self._insn_hook: int | None = None
        self._unmapped: list[Chunk] = []
        #: while _probe_access() runs: the scratch frame of each data page touched
        self._probe: dict[int, int] | None = None
        self._scratch = [alloc_page() for _ in range(PROBE_PAGES)]
        for chunk in PHYS.chunks:
            self._map(chunk)
        PHYS.on_new_chunk.append(self._chunk_added)
        PHYS.on_free.append(self._frame_freed)
        hooks = self.uc.hook_add
        hooks(uc_const.UC_HOOK_TLB_FILL, self._tlb_fill)
        hooks(uc_const.UC_HOOK_INSN, self._syscall, None, 1, 0, x86_const.UC_X86_INS_SYSCALL)
        hooks(uc_const.UC_HOOK_INSN, self._cpuid, None, 1, 0, x86_const.UC_X86_INS_CPUID)
        hooks(uc_const.UC_HOOK_INTR, self._interrupt)
        hooks(uc_const.UC_HOOK_INSN_INVALID, self._invalid)

    def close(self) -> None:
        """Stop hearing of the arena (the core is not used again)."""
        PHYS.on_new_chunk.remove(self._chunk_added)
        PHYS.on_free.remove(self._frame_freed)

    # --- running a thread ---------------------------------------------------------

    def run(self, thread, budget: int = 0) -> Stop:
        """Run `thread` (a vmsim.task.thread.Thread) in user mode from its registers
        until it executes SYSCALL, faults, or (budget > 0) has executed `budget`
        instructions; its registers are then back in thread.regs. On a SYSCALL, rcx and
        r11 hold rip and rflags, orig_rax the number, as the instruction and the entry
        code leave them; on any other stop orig_rax is -1, as the exception and
        interrupt entries push it, so that no signal takes rax for a syscall's result."""
        self.switch_mm(thread.process)
        if self.counting != (budget > 0):
            self.counting = budget > 0
            self.flush_tb()
        self.regs.load(thread.regs)
        stop = self._emulate(thread.regs.rip, budget)
        self.regs.store(thread.regs)
        if self.enclave is not None and self.enclave.active:
            self._exit_enclave_async(thread.regs, stop)
        regs = thread.regs
        if stop is Stop.SYSCALL:
            regs.rcx, regs.r11, regs.orig_rax = regs.rip, regs.eflags, regs.rax
        else:
            regs.orig_rax = NO_SYSCALL          # an exception or interrupt entry: no syscall
        return stop

    def _emulate(self, rip: int, budget: int) -> Stop:
        """emu_start() until a stop that is the program's: a restart the model asked
        for (a chunk to map, stale translations to drop) or an instruction the model
        executes itself continues."""
        while True:
            self.trap, self._stop, self._error, self._restart = None, None, None, False
            self._prepare()
            self._running = True
            try:
                self.uc.emu_start(rip, UNTIL, count=budget)
            except UcError as err:
                self._stop = self._stop or self._after_error(err)
            finally:
                self._running = False
            if self._error is not None:
                raise self._error
            rip = self.regs.rip()
            if self._restart:
                continue
            if self._stop is None:
                if budget:
                    return Stop.PREEMPTED
                self.trap = Trap(X86_TRAP_GP)       # HLT at CPL 3
                return Stop.TRAP
            if self.trap is not None and self.trap.vector == X86_TRAP_PF:
                self.trap = self._exact_page_fault(self.trap, rip)
            return self._stop

    def _prepare(self) -> None:
        """Before a start: map the chunks added while emulation ran, drop the stale
        translations."""
        while self._unmapped:
            self._map(self._unmapped.pop())
        if self._tb_stale:
            self.flush_tb()
        elif self._tlb_stale:
            self.flush_tlb()

    def _after_error(self, err: UcError) -> Stop | None:
        """emu_start() failed: a refused fill (the trap is set, or a restart asked),
        an invalid instruction (#UD), or a failure of the emulator itself (#GP)."""
        if self._restart:
            return None
        if self.trap is None:
            rip = self.regs.rip()
            if err.errno != uc_const.UC_ERR_INSN_INVALID:
                self.trap = Trap(X86_TRAP_GP)
            elif self._pkru_instruction(rip):
                self._restart = True
                return None
            elif not self._enclu_instruction(rip):
                self.trap = Trap(X86_TRAP_UD)
            elif self.trap is None:                 # the leaf is done
                self._restart = True
                return None
        return Stop.TRAP

    # --- the faulting address ---------------------------------------------------------

    def _exact_page_fault(self, trap: Trap, rip: int) -> Trap:
        """The page fault with the address CR2 holds: Unicorn asks the page walk for a
        page, not for the byte that faulted. An instruction fetch faults at rip (or at
        the page the instruction runs into); a data access is found by executing the
        instruction once more with every data page it touches backed by a scratch
        frame and the accesses watched (registers put back after, scratch writes
        dropped): the first byte it touches in the faulting page. A #PF the kernel's
        handler has yet to see (no Fault: enclave mode) keeps that."""
        page = trap.address
        if trap.error_code & X86_PF_INSTR:
            cr2 = rip if rip >> PAGE_SHIFT == page >> PAGE_SHIFT else page
        else:
            cr2 = self._probe_access(rip, page)
        fault = None if trap.fault is None else Fault(trap.fault.signal, trap.fault.code, cr2)
        return Trap(trap.vector, trap.error_code, cr2, fault)

    def _probe_access(self, rip: int, page: int) -> int:
        """The address of the first access of the instruction at rip that touches
        `page`; `page` itself if none is seen."""
        uc = self.uc
        seen: list[tuple[int, int]] = []

        def watch(uc, access, addr, size, value, data) -> None:
            seen.append((addr, size))

        context = uc.context_save()
        self._probe = {}
        hook = uc.hook_add(uc_const.UC_HOOK_MEM_READ | uc_const.UC_HOOK_MEM_WRITE, watch)
        self.flush_tlb()
        try:
            uc.emu_start(rip, UNTIL, count=1)
        except UcError:
            pass
        finally:
            uc.hook_del(hook)
            uc.context_restore(context)
            scratch = {phys: vpage for vpage, phys in self._probe.items()}
            self._probe = None
            self.flush_tlb()
        for addr, size in seen:
            vpage = scratch.get(addr & PAGE_MASK)
            if vpage is None:
                continue
            vaddr = vpage | addr & ~PAGE_MASK
            if vaddr & PAGE_MASK == page:
                return vaddr
            if vaddr < page < vaddr + size:
                return page
        return page

    def _probe_fill(self, probe: dict[int, int], vaddr: int, entry) -> bool:
        """A data page during _probe_access(): a scratch frame of its own."""
        vpage = vaddr & PAGE_MASK
        if vpage not in probe:
            if len(probe) == len(self._scratch):
                return False
            probe[vpage] = page_to_phys(self._scratch[len(probe)])
        entry.paddr = probe[vpage]
        entry.perms = uc_const.UC_PROT_READ | uc_const.UC_PROT_WRITE
        return True

    # --- the MMU ------------------------------------------------------------------

    def switch_mm(self, task) -> None:
        """switch_mm(): run `task`'s threads; the TLB goes if it held another mm's
        translations or another PKRU's (the Process's pkru: the running thread's)."""
        self.task = task
        if task.mm is not self.tlb_mm or task.pkru != self.tlb_pkru:
            self.flush_tlb()
            self.tlb_mm, self.tlb_pkru = task.mm, task.pkru

    def flush_tlb(self) -> None:
        """flush_tlb_mm(): every translation goes; each page is filled again on use."""
        self.uc.ctl(uc_const.UC_CTL_TLB_FLUSH, uc_const.UC_CTL_IO_WRITE)
        self.exec_vpns.clear()
        self._tlb_stale = False

    def flush_tb(self) -> None:
        """Drop all translated code (and the TLB with it)."""
        self.uc.ctl_flush_tb()
        self.flush_tlb()
        self.code.clear()
        self.anon_code.clear()
        self._tb_stale = False

    def check_code(self, files_written: bool) -> None:
        """After the kernel side may have written memory (a syscall): drop the
        translations if a frame code was translated from no longer holds what it held.
        The frames checked are the anonymous ones (a syscall writes into a program's
        own pages), and the page-cache ones too if files were written (write(2) to a
        file a program executes from). O(the frames checked)."""
        for phys in self.code if files_written else self.anon_code:
            chunk = PHYS.chunks[(phys - PHYS_BASE) // CHUNK_SIZE]
            off = phys - chunk.phys
            if chunk.mapping[off:off + PAGE_SIZE] != self.code[phys]:
                self.flush_tb()
                return

    def exec_dropped(self, start: int, end: int) -> None:
        """[start, end) of the running mm may have lost exec permission (mprotect,
        munmap, mremap): drop the translations if code was fetched from it."""
        first, last = start >> PAGE_SHIFT, (end + PAGE_SIZE - 1) >> PAGE_SHIFT
        if last - first < len(self.exec_vpns):
            hit = any(vpn in self.exec_vpns for vpn in range(first, last))
        else:
            hit = any(first <= vpn < last for vpn in self.exec_vpns)
        if hit:
            self.flush_tb()

    def _tlb_fill(self, uc, vaddr: int, access_type: int, entry, _data) -> bool:
        """The page walk for one virtual page (the hardware walk, and the fault handler
        when the PTE is missing or too weak). Refuses (False) with self.trap set, or
        self._restart for a start over."""
        try:
            kind = ACCESS_KINDS[access_type]
            if kind == "x" and vaddr >> PAGE_SHIFT == SPURIOUS_PAGE:
                return False
            if self._probe is not None and kind != "x":
                return self._probe_fill(self._probe, vaddr, entry)
            if not canonical(vaddr):
                self.trap = Trap(X86_TRAP_GP)       # not a #PF
                return False
            task = self.task
            assert task is not None                 # run() switched to the thread's mm
            epcm: int | None = None                 # what the EPCM allows of an enclave page
            if self.enclave is not None and self.enclave.active:
                vma, page, epcm = self.enclave.translate(task, vaddr, kind)
            else:
                vma = user_fault(task, vaddr, kind)
                page = fault_page(task, vma, vaddr, kind == "w")
            if self._unmapped or self._tb_stale:
                self._restart = True
                return False
            phys = page_to_phys(page)
            entry.paddr = phys
            perms = self._pte_perms(task, vma, vaddr, page, kind)
            entry.perms = perms if epcm is None else perms & epcm
            if kind == "x":
                self.exec_vpns.add(vaddr >> PAGE_SHIFT)
                if phys not in self.code:
                    self.code[phys] = bytes(page)
                    if epcm is not None or task.mm.anon_pages.get(vaddr >> PAGE_SHIFT) is page:
                        self.anon_code.add(phys)
            return True
        except Fault as fault:
            kind = ACCESS_KINDS[access_type]
            self.trap = page_fault(fault, kind, pte_present(self.task, fault, kind))
        except NotPresent as exc:           # enclave mode: the kernel's handler runs after the AEX
            self.trap = Trap(X86_TRAP_PF, exc.error_code, exc.addr)
        except EnclsFault as exc:           # enclave mode: the EPCM refused, or #GP
            self.trap = leaf_trap(exc, None)
        except BaseException as exc:        # a model bug: re-raised after the stop
            self._error = exc
        return False

    @staticmethod
    def _pte_perms(task, vma, addr: int, page, kind: str) -> int:
        """The permissions of the PTE fault_page() left: readable and executable as the
        VMA and PKRU allow; writable after a write fault, or when the page is already
        the task's own writable page (a private anonymous or COW page, a dirty shared
        page), never for the zero page, a page-cache page mapped privately or a PFN."""
        perms = 0
        if access_error(task, vma, "r") is None:
            perms |= uc_const.UC_PROT_READ
        if vma.flags & VM_EXEC:
            perms |= uc_const.UC_PROT_EXEC
        if kind == "w":
            return perms | uc_const.UC_PROT_WRITE
        if vma.flags & VM_WRITE and not vma.flags & VM_PFNMAP and access_error(task, vma, "w") is None:
            vpn = addr >> PAGE_SHIFT
            mm = task.mm
            if mm.anon_pages.get(vpn) is page or (vma.flags & VM_SHARED and mm.file_ptes.get(vpn)):
                perms |= uc_const.UC_PROT_WRITE
        return perms

    # --- the arena ----------------------------------------------------------------

    def _map(self, chunk: Chunk) -> None:
        self.uc.mem_map_ptr(chunk.phys, chunk.size, uc_const.UC_PROT_ALL, chunk.host)

    def _chunk_added(self, chunk: Chunk) -> None:
        """A chunk of physical memory was added: map it, or once the core has stopped."""
        if self._running:
            self._unmapped.append(chunk)
        else:
            self._map(chunk)

    def _frame_freed(self, phys: int) -> None:
        """A frame went back to the allocator: translations made from it are stale."""
        if phys in self.code:
            self._tb_stale = True

    # --- instructions the model handles ---------------------------------------------

    def _syscall(self, uc, _data) -> None:
        self._stop = Stop.SYSCALL
        uc.emu_stop()

    def _cpuid(self, uc, _data) -> int:
        """CPUID: the configured model's answer (the instruction is then skipped)."""
        leaf = uc.reg_read(x86_const.UC_X86_REG_EAX) & 0xFFFFFFFF
        subleaf = uc.reg_read(x86_const.UC_X86_REG_ECX) & 0xFFFFFFFF
        a, b, c, d = self.cpuid(leaf, subleaf)
        uc.reg_write(x86_const.UC_X86_REG_RAX, a)
        uc.reg_write(x86_const.UC_X86_REG_RBX, b)
        uc.reg_write(x86_const.UC_X86_REG_RCX, c)
        uc.reg_write(x86_const.UC_X86_REG_RDX, d)
        return 1

    def _interrupt(self, uc, vector: int, _data) -> None:
        """An exception or INT n: reported after the stop."""
        self.trap = Trap(vector)
        self._stop = Stop.TRAP
        uc.emu_stop()

    def _invalid(self, uc, _data) -> bool:
        """An instruction Unicorn cannot execute: stop; _after_error() decides."""
        return False

    def _pkru_instruction(self, rip: int) -> bool:
        """RDPKRU/WRPKRU, which the model executes (Unicorn lacks PKU) when the CPU model
        has PKU: PKRU is the Process's (its running thread's), read by the page walk.
        False if the instruction at rip is neither, or PKU is not shown."""
        task = self.task
        if task is None or not self.cpuid.cpu.pkeys:
            return False
        insn = self._fetch(task, rip, 3)
        uc = self.uc
        ecx = uc.reg_read(x86_const.UC_X86_REG_RCX) & 0xFFFFFFFF
        edx = uc.reg_read(x86_const.UC_X86_REG_RDX) & 0xFFFFFFFF
        if insn == RDPKRU and ecx == 0:
            uc.reg_write(x86_const.UC_X86_REG_RAX, task.pkru)
            uc.reg_write(x86_const.UC_X86_REG_RDX, 0)
        elif insn == WRPKRU and ecx == 0 and edx == 0:
            task.pkru = uc.reg_read(x86_const.UC_X86_REG_RAX) & 0xFFFFFFFF
            self.switch_mm(task)
        else:
            return False
        uc.reg_write(x86_const.UC_X86_REG_RIP, rip + 3)
        return True

    def _fetch(self, task, rip: int, n: int) -> bytes:
        """The n bytes of the instruction at rip as the core fetched them: in enclave
        mode from the enclave's code pages, else through the page walk; b"" if they
        cannot be fetched."""
        if self.enclave is not None and self.enclave.active:
            return self.enclave.instruction(rip)[:n]
        try:
            return access(task, rip, n, "x")
        except Fault:
            return b""

    # --- enclave mode -------------------------------------------------------------

    def _enclu_instruction(self, rip: int) -> bool:
        """ENCLU at rip, which the model executes for an SGX CPU: the leaf performed on
        the registers (EnclaveUnit.execute()), or its exception left in `trap`. Each
        leaf empties the TLB: a mode switch changes what ELRANGE maps, a leaf inside
        may change the EPCM or write a page code was translated from. False if the
        instruction is not ENCLU, or the CPU has no SGX (#UD)."""
        enclave, task = self.enclave, self.task
        if enclave is None or task is None or self._fetch(task, rip, 3) != ENCLU:
            return False
        regs = PtRegs()
        self.regs.store(regs)
        was_inside = enclave.active
        self.trap = enclave.execute(task, regs)
        if self.trap is not None:
            return True
        self.regs.load(regs)
        self.flush_tlb()
        if enclave.active != was_inside:
            self._watch_enclave_code(enclave.active)
        else:
            self.check_code(files_written=False)
        return True

    def _exit_enclave_async(self, regs: PtRegs, stop: Stop) -> None:
        """A stop in enclave mode: the AEX (EnclaveUnit.exit_async()) for the exception
        in `trap`, or an interrupt when the slice ended."""
        assert self.enclave is not None and stop is not Stop.SYSCALL   # SYSCALL is #UD inside
        self.trap = self.enclave.exit_async(regs, self.trap if stop is Stop.TRAP else None)
        self.flush_tlb()
        self._watch_enclave_code(False)

    def _watch_enclave_code(self, inside: bool) -> None:
        """The code hook over the entered enclave's ELRANGE, set on entry and removed
        on exit. Translated code calls only the hooks present when it was translated:
        code of an EPC page is translated in enclave mode only (outside, its pages map
        the abort page), so every such translation calls it."""
        if inside:
            assert self.enclave is not None
            first, last = self.enclave.elrange()
            self._insn_hook = self.uc.hook_add(uc_const.UC_HOOK_CODE, self._enclave_insn, None,
                                               first, last)
        elif self._insn_hook is not None:
            self.uc.hook_del(self._insn_hook)
            self._insn_hook = None

    def _enclave_insn(self, uc, address: int, _size: int, _data) -> None:
        """Before each instruction of enclave code: one enclave mode refuses
        (ILLEGAL_IN_ENCLAVE) stops the core with its exception, not executed."""
        if self._probe is not None:
            return
        assert self.enclave is not None
        illegal = self.enclave.illegal(address)
        if illegal is not None:
            self.trap = Trap(illegal.vector)
            self._stop = Stop.TRAP
            uc.emu_stop()
