"""The machine that runs programs: a Kernel, its threads, one emulated core, and the
loop the kernel runs around user mode (kernel/entry/common.c, kernel/sched/core.c).

    with Machine(Kernel(pkeys=False)) as m:
        leader = m.start("/bin/echo", ["echo", "hello"], ["PATH=/usr/bin:/bin"])
        status = m.run(leader)          # the wait status: 0 here

One step of the loop: wake the sleepers whose deadline passed or that a signal is
for; pick the next runnable thread (vmsim.task.sched: round robin in tid order);
deliver its pending signals on the way to user mode (vmsim.arch.x86.signal
exit_to_user_mode_loop(): a handler's frame, a restart, or the end of the group);
run it on the core until SYSCALL, an exception, or (when another thread could run) the
end of its slice of instructions; then serve the syscall (do_syscall_64(): the one
table, the model's Process) or turn the exception into its signal
(vmsim.arch.x86.traps). A syscall that must wait puts its thread to sleep (Block); when
nothing can run, the virtual clock jumps to the next deadline or timer.

What the kernel side changes of memory the core's TLB must forget: after a syscall
that changes mappings or permissions (MM_SYSCALLS, a write to /proc/PID/mem), or that
installed or replaced a PTE (a kernel write into a page the program had only read, a
COW: seen as a change of the mm's page tables' sizes), the TLB is flushed; translated
code goes when its frame changes (Cpu.check_code()) or exec permission goes
(Cpu.exec_dropped()).

The run is deterministic: the slice is counted in instructions, time is the Kernel's
virtual clock, and every order (threads, waiters) is fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..arch.x86.emu.cpu import Cpu, Stop
from ..arch.x86.emu.cpuid import CpuModel, cpuid_for, host_cpu_model
from ..arch.x86.entry.syscall_64 import do_syscall_64
from ..arch.x86.signal import exit_to_user_mode_loop
from ..arch.x86.traps import X86_TRAP_PF, Trap, force_trap, handle_user_fault
from ..fs.stdio import HostStream, install_stdio
from ..fs.vfs import PROC_MEM_OPS
from ..kernel import Kernel
from ..process import Process
from ..task.exit import do_exit, do_group_exit
from ..task.sched import (
    Block,
    expire_timeouts,
    next_deadline,
    nr_runnable,
    pick_next,
    signal_wakeups,
    sleep_on,
    threads_of,
)
from ..task.signal import next_timer_expiry, timer_expired
from ..task.thread import GroupExit, Thread, ThreadExit
from ..uapi import MAP_FIXED, PROT_EXEC
from .strace import Tracer

#: the x86-64 numbers of the calls that may take away or replace mappings, their
#: permissions or PTEs without changing how many PTEs there are: mprotect, munmap,
#: brk, mremap, madvise, shmat, shmdt, truncate, ftruncate, remap_file_pages,
#: fallocate, pkey_mprotect, process_madvise; clone, fork, vfork and clone3 (a fork
#: may write-protect the parent's pages for COW); and mmap with MAP_FIXED (one without
#: it maps only where nothing was: nothing translated goes stale)
MM_SYSCALLS = frozenset({10, 11, 12, 25, 28, 30, 56, 57, 58, 67, 76, 77, 216, 285, 329, 435,
                         440})
NR_MMAP = 9
#: the calls that may take exec permission from [arg0, arg0 + arg1): munmap, mremap,
#: madvise (MADV_DONTNEED and friends free the frames anyway); mprotect and
#: pkey_mprotect when their prot lacks PROT_EXEC
EXEC_DROPPING = frozenset({11, 25, 28})
MPROTECTS = frozenset({10, 329})
#: write, pwrite64, writev, pwritev, pwritev2: a write to /proc/PID/mem changes PTEs
WRITES = frozenset({1, 18, 20, 296, 328})
#: the calls that may write a file's pages: the writes, sendfile, truncate, ftruncate,
#: splice, fallocate, copy_file_range
FILE_WRITES = WRITES | {40, 76, 77, 275, 285, 326}
#: instructions a thread runs before another may take the CPU (when one is waiting)
SLICE = 200_000


class Deadlock(Exception):
    """Every thread sleeps and nothing will wake any of them."""


class Machine:
    """A Kernel whose programs run on one emulated core.

    Invariants: every live thread is in its Process's signal.threads; `prev` is the
    thread that ran last (the round robin continues after it).
    """

    def __init__(self, kernel: Kernel, cpu: CpuModel | None = None, slice_insns: int = SLICE,
                 tracer: Tracer | None = None,
                 on_exit: Callable[[Process], None] | None = None) -> None:
        self.kernel = kernel
        model = cpu or host_cpu_model(pkeys=kernel.pkeys, sgx=kernel.sgx_cpu)
        self.cpu = Cpu(cpuid_for(model))
        self.slice = slice_insns
        #: told of every syscall as it enters and leaves, of every thread going back to
        #: user mode (a call a wakeup completed), of every exception that raised a
        #: signal and of every thread's end (`vmsim run --trace`, `--record`)
        self.tracer = tracer
        #: called with a process about to end (its last thread exiting), before its mm
        #: and files go
        self.on_exit = on_exit
        self.prev: Thread | None = None

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.cpu.close()

    # --- programs -----------------------------------------------------------------

    def start(self, path: str, argv: Sequence[str | bytes], envp: Sequence[str | bytes] = (),
              stdio: tuple[HostStream, HostStream, HostStream] | None = None,
              personality: int = 0, cwd: str = "/") -> Thread:
        """A new process (personality set first, as setarch does; fds 0, 1 and 2 on the
        host streams `stdio` and the working directory `cwd`, as a shell leaves them)
        executing `path` with argv and envp: its one thread, ready to run from the
        registers execve left. OSError as execve fails (the process is then gone)."""
        process = self.kernel.spawn(personality=personality)
        process.cwd = cwd
        if stdio is not None:
            install_stdio(process, *stdio)
        try:
            process.execve(path, argv, envp)
        except BaseException:
            if process.alive:
                process.exit()
            raise
        assert process.start_regs is not None       # set by the execve that succeeded
        thread = Thread(process, process.pid, process.start_regs.copy(), pkru=process.pkru)
        if self.tracer is not None:
            self.tracer.started(thread)
        return thread

    def run(self, leader: Thread) -> int:
        """Run every thread until the process of `leader` has ended; its wait status
        (exit code << 8, or the signal that killed it). Deadlock if it never can."""
        while leader.process.alive:
            self.step()
        return leader.exit_code

    # --- the loop -----------------------------------------------------------------

    def step(self) -> None:
        """One turn of the loop (see the module's docstring)."""
        threads = threads_of(self.kernel)
        self._tick(threads)
        thread = pick_next(threads, self.prev)
        if thread is None:
            self._idle(threads)
            return
        self.prev = thread
        process = thread.process
        process.pkru = thread.pkru                  # switch_to(): the thread's PKRU
        if not self._to_user_mode(thread):
            return
        if self.tracer is not None:
            self.tracer.resume(thread)
        budget = self.slice if nr_runnable(threads) > 1 else 0
        stop = self.cpu.run(thread, budget)
        if stop is Stop.SYSCALL:
            self._syscall(thread)
        elif stop is Stop.TRAP:
            assert self.cpu.trap is not None        # set with every TRAP stop
            trap = self._page_fault(thread, self.cpu.trap)
            if trap is not None and force_trap(thread, trap) and self.tracer is not None:
                self.tracer.trap(thread, trap)
        thread.pkru = process.pkru                  # WRPKRU, pkey_alloc()

    def _tick(self, threads: list[Thread]) -> None:
        """Expired sleeps and interval timers; sleepers a signal is for."""
        kernel = self.kernel
        now = kernel.clock.elapsed
        for process in list(kernel.processes.values()):
            expiry = next_timer_expiry(process)
            if expiry is not None and expiry <= now:
                timer_expired(process)
        if any(t.state == "blocked" for t in threads):
            task = self.cpu.task
            before = pte_state(task) if task is not None else ()
            expire_timeouts(threads, now)
            signal_wakeups(threads)                 # an interrupted call may write memory
            if task is not None:
                self._flush_if_changed(task, before)

    def _idle(self, threads: list[Thread]) -> None:
        """Nothing can run: the clock jumps to the next deadline or interval timer (an
        idle CPU until it fires)."""
        kernel = self.kernel
        moments = [t for p in kernel.processes.values() if (t := next_timer_expiry(p)) is not None]
        deadline = next_deadline(threads)
        if deadline is not None:
            moments.append(deadline)
        if not moments:
            raise Deadlock("every thread sleeps and nothing will wake one: "
                           + ", ".join(f"{t.tid} on {t.wait!r}" for t in threads))
        kernel.clock.elapsed = max(kernel.clock.elapsed, min(moments))

    def _to_user_mode(self, thread: Thread) -> bool:
        """exit_to_user_mode(): pending signals delivered (frames written by the kernel
        side). False if a fatal one ended the thread's group."""
        if not thread.sigpending:
            return True
        before = pte_state(thread.process)
        try:
            exit_to_user_mode_loop(thread, stop=self.tracer.signal if self.tracer is not None else None)
        except GroupExit as end:
            self._exit(thread, end.status, group=True)
            return False
        self._flush_if_changed(thread.process, before)
        return True

    def _page_fault(self, thread: Thread, trap: Trap) -> Trap | None:
        """A #PF the core left to the kernel (enclave mode: after the AEX) goes through
        the fault handler: None if it fixed the fault, the thread then returns to the
        AEP (its ERESUME retries the access); the TLB and the translated code follow
        what the driver did (a PTE installed, others zapped by EWB, a frame rewritten by
        ELDU). Any other trap as it is."""
        if trap.vector != X86_TRAP_PF or trap.fault is not None:
            return trap
        unfixed = handle_user_fault(thread, trap)
        self.cpu.flush_tlb()
        self.cpu.check_code(files_written=False)
        return unfixed

    def _syscall(self, thread: Thread) -> None:
        """The syscall `thread` stopped at: served, the core's caches brought in line."""
        regs = thread.regs
        nr, args = regs.orig_rax, regs.syscall_args()
        process = thread.process
        before = pte_state(process)
        result: int | None = None
        if self.tracer is not None:
            self.tracer.enter(thread)
        try:
            do_syscall_64(thread)
            result = regs.rax
        except ThreadExit as end:                   # exit(2): do_exit((code & 0xff) << 8)
            self._exit(thread, (end.status & 0xFF) << 8, group=False)
        except GroupExit as end:
            self._exit(thread, end.status, group=True)
        except Block as block:
            sleep_on(thread, block)
            if block.value is None:
                return
            if self.tracer is not None:
                self.tracer.sleeps(thread)
        if self.tracer is not None and result is not None:
            self.tracer.leave(thread, result)
        if process.alive:
            self._after_syscall(process, nr, args, before)

    def _after_syscall(self, process: Process, nr: int, args: Sequence[int],
                       before: tuple) -> None:
        cpu = self.cpu
        if process is not cpu.task:
            return
        if nr in EXEC_DROPPING or nr in MPROTECTS and not args[2] & PROT_EXEC:
            cpu.exec_dropped(args[0], args[0] + args[1])
        if nr in MM_SYSCALLS or nr == NR_MMAP and args[3] & MAP_FIXED or \
                nr in WRITES and _is_proc_mem(process, args[0]):
            cpu.flush_tlb()
        else:
            self._flush_if_changed(process, before)
        cpu.check_code(files_written=nr in FILE_WRITES)

    def _flush_if_changed(self, process: Process, before: tuple) -> None:
        if process is self.cpu.task and pte_state(process) != before:
            self.cpu.flush_tlb()

    def _exit(self, thread: Thread, status: int, group: bool) -> None:
        """do_exit() / do_group_exit(), the on_exit hook first when the process ends."""
        process = thread.process
        if self.tracer is not None:
            (self.tracer.group_exit if group else self.tracer.exit)(thread, status)
        if group or process.signal.threads == [thread]:
            if self.on_exit is not None:
                self.on_exit(process)
        if group:
            do_group_exit(thread, status)
        else:
            do_exit(thread, status)


def pte_state(process: Process) -> tuple:
    """What a kernel-side access changes when it installs or replaces a PTE (a COW of
    the zero page or of a file page, a page faulted in for a syscall): the mm, and how
    many pages it maps of each kind. O(1)."""
    mm = process.mm
    return (id(mm), len(mm.anon_pages), len(mm.file_ptes), len(mm.pfn_ptes), len(mm.guards))


def _is_proc_mem(process: Process, fd: int) -> bool:
    """fd is open on a /proc/PID/mem file."""
    file = process.files.get(fd & 0xFFFFFFFF)
    return file is not None and file.f_op is PROC_MEM_OPS
