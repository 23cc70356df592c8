"""Each syscall a program makes, as strace prints it, with the model's verdict where it
refused one (`vmsim run --trace`), and the run as a trace (`vmsim run --record`).

The run loop (vmsim.run.machine) tells the Tracer of every syscall as it enters and
leaves, of every CPU exception that raised a signal, and of every thread's end. A call
is written as this machine's strace writes it (strace 6.x, default options), by the
project's one formatter (vmsim.arch.x86.entry.syscall_64 strace_line,
vmsim.syscalls.strace format_syscall): the arguments from the registers the call was
made with, its memory read after it returned (a read's buffer then holds what was
read), but for execve, whose path, argv and envp are read as it enters: a successful
one replaces the memory that held them. The lines of a thread are prefixed
`[pid TID] ` while more than one thread lives, as strace -f prefixes them. A fault is
written as strace writes the signal (`--- SIGSEGV {si_signo=SIGSEGV, ...} ---`), an end
as `+++ exited with N +++` or `+++ killed by SIGSEGV +++`. The execve that starts the
program is made before the run (vmsim.run.machine Machine.start), not by the program,
and is not written; neither are the signals that are not a fault's.

Under `vmsim run` the model is the kernel, so every call agrees with it by
construction; what the trace adds is why the model refused what it refused, in the
words `vmsim replay` uses (vmsim.trace.explain): under a refused mm call or SGX ioctl
the `why:` lines replay prints for it, under a fault the VMA and the permission the
fault handler checked. Calls are shown as they complete: a call that sleeps (wait4, a
futex) is shown when it returns, after the calls other threads made meanwhile, where
strace shows it `<unfinished ...>` and `<... resumed>`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..arch.x86.entry.syscall_64 import strace_line
from ..arch.x86.traps import X86_PF_INSTR, X86_PF_WRITE, X86_TRAP_PF, Trap
from ..errors import Fault
from ..mm.fault import copy_from_user
from ..process import Process
from ..syscalls.names import SI_CODES, signal_name
from ..syscalls.strace import Peek, format_siginfo
from ..syscalls.table import SYS_CALL_TABLE, Syscall
from ..task.sched import threads_of
from ..task.thread import Thread
from ..trace.explain import explain, explain_fault
from ..trace.format import Record
from ..uapi import U64
from .record import RunRecorder, call_record, complete

#: the calls whose refusals are explained: the mm calls and the SGX ioctls
EXPLAINED = frozenset({
    "mmap", "munmap", "mprotect", "pkey_mprotect", "mremap", "mseal", "madvise", "mlock",
    "mlock2", "munlock", "brk", "msync", "mlockall", "munlockall", "shmat", "shmdt",
    "process_madvise", "pkey_alloc", "pkey_free", "ioctl",
})
#: the length of the SYSCALL instruction (0f 05)
SYSCALL_SIZE = 2
#: the calls that make a process
FORKS = frozenset({"clone", "fork", "vfork"})
#: the si_code names every signal shares (include/uapi/asm-generic/siginfo.h)
GENERIC_SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL"}
#: where a SEGV_PKUERR siginfo holds si_pkey (vmsim.task.signal_types fault_info)
SI_PKEY = 0x20


@dataclass
class _Call:
    """A syscall in flight: its number, argument registers, table entry (None: a
    number the model does not know), the peek its line is read with (None: the
    memory as it is after the call), and its record (None: not one a trace holds)."""

    nr: int
    args: Sequence[int]
    #: where the thread goes on once the call returns (after its SYSCALL instruction)
    rip: int
    entry: Syscall | None
    peek: Peek | None
    rec: Record | None


class _Remembered:
    """A peek that keeps what it read, then answers from that alone (`frozen`): the
    memory an execve line shows, read before the execve replaced it."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.seen: dict[tuple[int, int], bytes | None] = {}
        self.frozen = False

    def __call__(self, addr: int, n: int) -> bytes | None:
        if self.frozen or (addr, n) in self.seen:
            return self.seen.get((addr, n))
        try:
            data: bytes | None = copy_from_user(self.process, addr, n)
        except (OSError, Fault):
            data = None
        self.seen[addr, n] = data
        return data


def _signed(rax: int) -> int:
    return rax - (1 << 64) if rax >> 63 else rax


class Tracer:
    """Watches the syscalls, faults and exits of a run: writes them in strace syntax to
    `write` (None: nothing written) and hands them to `recorder` (None: not recorded).

    Invariant: `_calls` holds the calls entered and not yet left, by tid."""

    def __init__(self, write: Callable[[str], None] | None = None,
                 recorder: RunRecorder | None = None) -> None:
        self.write = write
        self.recorder = recorder
        self._calls: dict[int, _Call] = {}

    def enter(self, thread: Thread) -> None:
        """syscall-enter: the number and registers; what must be read now (execve's
        strings, the record's arguments)."""
        regs = thread.regs
        nr, args = regs.orig_rax, regs.syscall_args()
        entry = SYS_CALL_TABLE.get(nr)
        peek = None
        if entry is not None and entry.name == "execve" and self.write is not None:
            remembered = _Remembered(thread.process)
            strace_line(thread, nr, args, None, remembered)
            remembered.frozen = True
            peek = remembered
        rec = None
        if entry is not None and (self.recorder is not None or entry.name in EXPLAINED):
            rec = call_record(thread, entry, args)
        if rec is not None and self.recorder is not None:
            self.recorder.faults(thread)
        self._calls[thread.tid] = _Call(nr, args, regs.rip, entry, peek, rec)

    def leave(self, thread: Thread, result: int | None) -> None:
        """syscall-exit: the call's line with `result` (rax; None: the call did not
        return), and why the model refused it."""
        call = self._calls.pop(thread.tid, None)
        if call is None:
            return
        value = None if result is None else _signed(result & U64)
        process = thread.process
        rec = call.rec
        if rec is not None:
            complete(rec, process, value)
        if self.write is not None:
            self._say(thread, strace_line(thread, call.nr, call.args, value, call.peek))
            if rec is not None and rec.err is not None and rec.call in EXPLAINED:
                fds = {fd: fd for fd in process.files}
                for why in explain(process, rec, rec.err, fds, lambda addr: addr):
                    self._say(thread, f"  why: {why}")
        if self.recorder is not None:
            self._record(process, call, rec)

    def resume(self, thread: Thread) -> None:
        """The thread goes back to user mode: a call it slept in that a wakeup completed
        (sched.wake_up() with a value: the thread goes on after it) is left now, with
        the value in rax; one a signal handler's frame interrupted, as not returning. A
        call to be made again (its SYSCALL next) stays in flight."""
        call = self._calls.get(thread.tid)
        if call is None or thread.regs.rip == call.rip - SYSCALL_SIZE:
            return
        self.leave(thread, thread.regs.rax if thread.regs.rip == call.rip else None)

    def _record(self, process: Process, call: _Call, rec: Record | None) -> None:
        """The call recorded (a fork's child settled with its parent), or counted."""
        assert self.recorder is not None
        if rec is None:
            self.recorder.skip(call.entry.name if call.entry is not None else f"syscall_{call.nr:#x}")
            return
        self.recorder.add(rec)
        if process.alive:
            self.recorder.settle(process)
        child = process.kernel.processes.get(rec.ret) if rec.call in FORKS and rec.ret else None
        if child is not None:
            self.recorder.settle(child)

    def trap(self, thread: Thread, trap: Trap) -> None:
        """A CPU exception raised a signal (vmsim.arch.x86.traps force_trap(): its
        siginfo is the last the thread has pending): the signal as strace shows it
        being delivered, and for a page fault why the model refused the access."""
        if not thread.pending.queue:
            return
        info = thread.pending.queue[-1]
        name = signal_name(info.signo)
        code = SI_CODES.get((name, info.code)) or GENERIC_SI_CODES.get(info.code, str(info.code))
        pkey = struct.unpack_from("<I", info.raw, SI_PKEY)[0] if code == "SEGV_PKUERR" else None
        text = format_siginfo(name, code, info.addr, pkey)
        if self.write is not None:
            self._say(thread, text)
            if trap.vector == X86_TRAP_PF and trap.fault is not None:
                kind = "w" if trap.error_code & X86_PF_WRITE else \
                    "x" if trap.error_code & X86_PF_INSTR else "r"
                for why in explain_fault(thread.process, trap.fault.code, trap.fault.addr, kind):
                    self._say(thread, f"  why: {why}")
        if self.recorder is not None:
            self.recorder.event(thread.tid, "signal", name, text)

    def exit(self, thread: Thread, status: int) -> None:
        """The thread ends with the wait status `status` (its process's, if it is the
        last): `+++ exited with N +++`, or `+++ killed by SIGNAL +++`, after the call it
        was in (exit, exit_group, or one a fatal signal ended), which did not return."""
        if thread.tid in self._calls:
            self.leave(thread, None)
        signal = status & 0x7F
        name = signal_name(signal) if signal else None
        text = f"+++ killed by {name} +++" if name else f"+++ exited with {status >> 8 & 0xFF} +++"
        if self.write is not None:
            self._say(thread, text)
        if self.recorder is not None:
            self.recorder.event(thread.tid, "killed" if name else "exited", name, text)

    def _say(self, thread: Thread, line: str) -> None:
        assert self.write is not None
        several = len(threads_of(thread.process.kernel)) > 1
        self.write(f"[pid {thread.tid:5}] {line}" if several else line)
