"""Each syscall a program makes, as strace prints it, with the model's verdict where it
refused one (`vmsim run --trace`), and the run as a trace (`vmsim run --record`).

The run loop (vmsim.run.machine) tells the Tracer of every syscall as it enters and
leaves, of every CPU exception that raised a signal, of every signal dequeued for
delivery, and of every thread's end. A call is written as this machine's strace writes
it (strace 6.x, default options), by the project's one formatter
(vmsim.arch.x86.entry.syscall_64 strace_line, vmsim.syscalls.strace format_syscall):
the arguments from the registers the call was made with, its memory read after it
returned (a read's buffer then holds what was read), but what a call overwrites read
as it enters: execve's path, argv and envp (a successful one replaces the memory that
held them), the fd sets and timeout of select, pselect6, poll and ppoll (strace shows
them as given, and after the result what the call left). The lines of a thread are
prefixed `[pid TID] ` while more than one thread is traced, as strace -f prefixes them.

Signals are written as strace writes them at the ptrace signal-delivery stop: `---
SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, ...} ---`, a fault's as it is raised
with the VMA and permission the fault handler checked; a call a signal interrupted
ends first, `= ? ERESTARTSYS (To be restarted if SA_RESTART is set)`, and the
restart_syscall that resumes it names it. A traced process never ignores a signal
(sig_ignored()), so strace shows the SIGCHLD a parent leaves at SIG_DFL, which the
model drops: it is written as the parent next leaves the kernel. An end is `+++
exited with N +++` or `+++ killed by SIGSEGV +++`, one for each thread of a group that
ends, the leader's last. The execve that starts the program is made before the run
(vmsim.run.machine Machine.start), not by the program: it is written first, as strace
writes the first call of the program it starts, its strings read where execve left
them on the new stack (its envp too: strace's address is that of its own copy, which
no model run can share).

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..arch.x86.entry.syscall_64 import strace_line
from ..arch.x86.traps import X86_PF_INSTR, X86_PF_WRITE, X86_TRAP_PF, Trap
from ..errors import ERESTART_RESTARTBLOCK, Fault
from ..mm.fault import copy_from_user
from ..process import Process
from ..syscalls.names import SI_CODES, signal_name
from ..syscalls.strace import (
    RESULT_COLUMN,
    Peek,
    format_address,
    format_siginfo,
    format_signal,
    format_sigset,
)
from ..syscalls.table import SYS_CALL_TABLE, Syscall
from ..task.sched import threads_of
from ..task.signal import WCOREFLAG
from ..task.signal_types import CLD_DUMPED, CLD_EXITED, CLD_KILLED, SIG_DFL, SIGCHLD, SigInfo
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
#: the calls whose lines show memory the call overwrites, read as they enter: execve's
#: strings (a successful one replaces the memory), the fd sets and timeouts of select,
#: pselect6, poll and ppoll
READ_AT_ENTRY = frozenset({"execve", "select", "pselect6", "poll", "ppoll", "getsockname", "getpeername",
                           "recvfrom", "getsockopt"})
#: the length of the SYSCALL instruction (0f 05)
SYSCALL_SIZE = 2
#: the calls that make a process
FORKS = frozenset({"clone", "fork", "vfork"})
#: the calls a parent may sleep in until its child execs or exits (CLONE_VFORK)
VFORKS = FORKS | {"clone3"}
#: the si_codes every signal shares (include/uapi/asm-generic/siginfo.h)
SI_KERNEL, SI_QUEUE = 0x80, -1
#: the codes of a signal a process sent (kill, tgkill, sigqueue, ...): si_pid and si_uid
SENDER_CODES = {0: "SI_USER", -1: "SI_QUEUE", -3: "SI_MESGQ", -4: "SI_ASYNCIO", -6: "SI_TKILL"}
#: SIGCHLD's codes: si_pid, si_uid, si_status (the exit code, or a signal), the times
CLD_CODES = {CLD_EXITED: "CLD_EXITED", CLD_KILLED: "CLD_KILLED", CLD_DUMPED: "CLD_DUMPED",
             4: "CLD_TRAPPED", 5: "CLD_STOPPED", 6: "CLD_CONTINUED"}
NR_EXECVE, NR_RESTART_SYSCALL = 59, 219
#: the auxv entry holding the address of the filename execve was given
AT_EXECFN = 31
#: where rt_sigreturn finds the mask it restores: the frame's ucontext is at the stack
#: pointer (the handler's return popped pretcode), its uc_sigmask after uc_flags,
#: uc_link, uc_stack (40 bytes) and uc_mcontext (256)
UC_SIGMASK = 296
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
    #: the peek its overwritten inputs are read with (select's fd sets, a timeout the
    #: call updates), holding them as it entered; None: it has none
    inputs: Peek | None = None
    #: what strace shows between the parentheses of a call the table gives no
    #: arguments, read as it entered (rt_sigreturn's mask); None: nothing
    inside: str | None = None


class _Remembered:
    """A peek that keeps what it read, then answers from that alone (`frozen`): the
    memory a line shows that the call overwrites, read before it did (execve's
    strings, select's fd sets)."""

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


def _u64_at(process: Process, addr: int) -> int:
    return int.from_bytes(copy_from_user(process, addr, 8), "little")


def _auxv(process: Process, addr: int) -> Iterator[tuple[int, int]]:
    """The (type, value) pairs of the auxiliary vector at addr, up to AT_NULL."""
    while key := _u64_at(process, addr):
        yield key, _u64_at(process, addr + 8)
        addr += 16


def siginfo_text(info: SigInfo) -> str:
    """The line strace prints as a signal is delivered: `--- SIGCHLD {si_signo=SIGCHLD,
    si_code=CLD_EXITED, si_pid=N, si_uid=0, si_status=7, si_utime=0, si_stime=0} ---`;
    what follows si_code is the fields of the layout the code selects (printsiginfo())."""
    name, code = format_signal(info.signo), info.code
    raw = info.raw
    if name == "SIGCHLD" and code in CLD_CODES:
        pid, uid, status, utime, stime = struct.unpack_from("<iIi4xqq", raw, 16)
        shown = format_signal(status) if code != CLD_EXITED else str(status)
        fields = [f"si_pid={pid}", f"si_uid={uid}", f"si_status={shown}", f"si_utime={utime}",
                  f"si_stime={stime}"]
        return _siginfo_line(name, CLD_CODES[code], fields)
    if code in SENDER_CODES:
        pid, uid = struct.unpack_from("<iI", raw, 16)
        fields = [f"si_pid={pid}", f"si_uid={uid}"]
        if code == SI_QUEUE:
            value = struct.unpack_from("<Q", raw, 24)[0]
            fields += [f"si_int={_signed32(value)}", f"si_ptr={format_address(value)}"]
        return _siginfo_line(name, SENDER_CODES[code], fields)
    if code == SI_KERNEL and (name, code) not in SI_CODES:     # not a fault's: no si_addr
        return _siginfo_line(name, "SI_KERNEL", [])
    text = SI_CODES.get((name, code)) or str(code)
    pkey = struct.unpack_from("<I", raw, SI_PKEY)[0] if text == "SEGV_PKUERR" else None
    return format_siginfo(name, text, info.addr, pkey)


def _siginfo_line(name: str, code: str, fields: list[str]) -> str:
    return f"--- {name} {{{', '.join([f'si_signo={name}', f'si_code={code}', *fields])}}} ---"


def _signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


class Tracer:
    """Watches the syscalls, faults and exits of a run: writes them in strace syntax to
    `write` (None: nothing written) and hands them to `recorder` (None: not recorded).

    Invariant: `_calls` holds the calls entered and not yet left, by tid."""

    def __init__(self, write: Callable[[str], None] | None = None,
                 recorder: RunRecorder | None = None) -> None:
        self.write = write
        self.recorder = recorder
        self._calls: dict[int, _Call] = {}
        #: the call each thread's restart_syscall resumes (one a signal interrupted
        #: with ERESTART_RESTARTBLOCK), by tid
        self._interrupted: dict[int, str] = {}
        #: the siginfo of the fault each thread's signal line was written for (trap()),
        #: not written again as it is delivered
        self._shown: dict[int, bytes] = {}
        #: the threads whose end was written (no longer counted as traced)
        self._ended: set[int] = set()
        #: the signals the model dropped as ignored that strace would show, by the pid
        #: of the process they were for
        self._ignored: dict[int, list[SigInfo]] = {}

    def enter(self, thread: Thread) -> None:
        """syscall-enter: the number and registers; what must be read now (execve's
        strings, the record's arguments)."""
        regs = thread.regs
        nr, args = regs.orig_rax, regs.syscall_args()
        entry = SYS_CALL_TABLE.get(nr)
        peek = inputs = None
        if entry is not None and entry.name in READ_AT_ENTRY and self.write is not None:
            remembered = _Remembered(thread.process)
            strace_line(thread, nr, args, None, remembered)
            remembered.frozen = True
            peek, inputs = (remembered, None) if entry.name == "execve" else (None, remembered)
        rec = None
        if entry is not None and (self.recorder is not None or entry.name in EXPLAINED):
            rec = call_record(thread, entry, args)
        if rec is not None and self.recorder is not None:
            self.recorder.faults(thread)
        inside = None
        if entry is not None and entry.name == "rt_sigreturn" and self.write is not None:
            mask = _Remembered(thread.process)(regs.rsp + UC_SIGMASK, 8)
            inside = f"{{mask={format_sigset(int.from_bytes(mask, 'little'))}}}" if mask else None
        self._calls[thread.tid] = _Call(nr, args, regs.rip, entry, peek, rec, inputs, inside)

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
            self._say(thread, self._line(thread, call, value))
            if rec is not None and rec.err is not None and rec.call in EXPLAINED:
                fds = {fd: fd for fd in process.files}
                for why in explain(process, rec, rec.err, fds, lambda addr: addr):
                    self._say(thread, f"  why: {why}")
        if self.recorder is not None:
            self._record(process, call, rec)
        if process.alive:
            self._say_ignored(thread)

    def _line(self, thread: Thread, call: _Call, value: int | None) -> str:
        """The call's line; rt_sigreturn's shows the mask it restores, restart_syscall's
        the call it resumes."""
        line = strace_line(thread, call.nr, call.args, value, call.peek, call.inputs)
        inside = call.inside
        if call.nr == NR_RESTART_SYSCALL and thread.tid in self._interrupted:
            inside = f"<... resuming interrupted {self._interrupted.pop(thread.tid)} ...>"
        if inside is None or call.entry is None:
            return line
        text = f"{call.entry.name}({inside})"
        result = line.removeprefix(f"{call.entry.name}()").lstrip()
        return f"{text:{RESULT_COLUMN}}{result}" if len(text) < RESULT_COLUMN else f"{text} {result}"

    def started(self, thread: Thread) -> None:
        """The execve that started the program (Machine.start()), as strace writes it:
        its filename (AT_EXECFN's string), argv and envp read from the new stack where
        execve left them (argc at the stack pointer, then argv, envp, the auxv)."""
        if self.write is None:
            return
        process, sp = thread.process, thread.regs.rsp
        argc = _u64_at(process, sp)
        argv = sp + 8
        envp = argv + 8 * (argc + 1)
        auxv = envp + 8
        while _u64_at(process, auxv - 8):
            auxv += 8
        execfn = next(value for key, value in _auxv(process, auxv) if key == AT_EXECFN)
        self._say(thread, strace_line(thread, NR_EXECVE, (execfn, argv, envp, 0, 0, 0), 0))

    def signal(self, thread: Thread, info: SigInfo | None) -> None:
        """exit_to_user_mode(): the call the thread was in ends here (its result in rax,
        an ERESTART code if it is to be made again), then the signal `info` (None: a
        restart without one) is delivered: its siginfo as strace shows it."""
        call = self._calls.get(thread.tid)
        if call is not None and thread.regs.rip == call.rip:
            rax = thread.regs.rax
            self.leave(thread, rax)
            if _signed(rax) == -ERESTART_RESTARTBLOCK and call.entry is not None:
                self._interrupted[thread.tid] = call.entry.name
        if info is not None and self._shown.pop(thread.tid, None) != info.raw and self.write is not None:
            self._say(thread, siginfo_text(info))

    def sleeps(self, thread: Thread) -> None:
        """The thread sleeps in a call whose result is set (its rax), which it returns
        when woken unless a signal interrupts it: left as it returns (resume(),
        signal()), but a vfork's now: the trace needs the child before its calls."""
        call = self._calls.get(thread.tid)
        if call is not None and call.entry is not None and call.entry.name in VFORKS:
            self.leave(thread, thread.regs.rax)

    def resume(self, thread: Thread) -> None:
        """The thread goes back to user mode: a call it slept in that a wakeup completed
        (sched.wake_up() with a value: the thread goes on after it) is left now, with
        the value in rax; one a signal handler's frame interrupted, as not returning. A
        call to be made again (its SYSCALL next) stays in flight."""
        call = self._calls.get(thread.tid)
        if call is None:
            self._say_ignored(thread)
        elif thread.regs.rip != call.rip - SYSCALL_SIZE:
            self.leave(thread, thread.regs.rax if thread.regs.rip == call.rip else None)

    def _say_ignored(self, thread: Thread) -> None:
        """The signals for the thread's process that the model dropped as ignored (a
        call in flight ends first: strace sees them as the thread leaves the kernel)."""
        for info in self._ignored.pop(thread.process.pid, []):
            if self.write is not None:
                self._say(thread, siginfo_text(info))

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
        text = siginfo_text(info)
        self._shown[thread.tid] = info.raw
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
        self._ended.add(thread.tid)
        if all(t.tid in self._ended for t in thread.process.signal.threads):
            self._notify_parent(thread, status)
        if self.recorder is not None:
            self.recorder.event(thread.tid, "killed" if name else "exited", name, text)

    def _notify_parent(self, thread: Thread, status: int) -> None:
        """do_notify_parent() as strace sees it: a parent that leaves SIGCHLD at SIG_DFL
        has it dropped as ignored, but not while traced (sig_ignored()): strace shows
        it as the parent next returns to user mode. `thread` is the group's last."""
        process = thread.process
        leader = next((t for t in process.signal.threads if t.tid == process.pid), thread)
        parent = leader.parent
        if leader.exit_signal != SIGCHLD or parent is None or not parent.process.alive or \
                parent.process.signal.sighand.action[SIGCHLD - 1].handler != SIG_DFL:
            return
        killed = status & 0x7F
        code = CLD_EXITED if not killed else CLD_DUMPED if status & WCOREFLAG else CLD_KILLED
        info = SigInfo.build(SIGCHLD, code, 0, (16, "<i", process.pid), (20, "<I", process.uid),
                             (24, "<i", killed or status >> 8))
        self._ignored.setdefault(parent.process.pid, []).append(info)

    def group_exit(self, thread: Thread, status: int) -> None:
        """The group of `thread` ends with `status` (exit_group, a fatal signal): its
        end, then each other thread's (the call it was in did not return), the
        leader's last, as strace reports them (the leader is reaped after its group)."""
        pid = thread.process.pid
        group = thread.process.signal.threads
        ends = [t for t in group if t is not thread and t.tid != pid] + [thread] + \
            [t for t in group if t is not thread and t.tid == pid]
        for end in [thread, *ends]:
            if end.tid in self._calls:
                self.leave(end, None)
        for end in ends:
            self.exit(end, status)

    def _say(self, thread: Thread, line: str) -> None:
        assert self.write is not None
        several = sum(t.tid not in self._ended for t in threads_of(thread.process.kernel)) > 1
        self.write(f"[pid {thread.tid:5}] {line}" if several else line)
