"""A thread: the kernel's task_struct for one schedulable entity of a thread group
(kernel/fork.c copy_process(), include/linux/sched.h). The thread group itself, with its
mm, fd table, limits and personality, is the vmsim Process; what is per thread is here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..arch.x86.ptrace import PtRegs
from .signal_types import SigPending

if TYPE_CHECKING:
    from ..process import Process


@dataclass(eq=False)
class Thread:
    """One thread of `process`.

    Invariants: tid is unique among live threads of the Kernel, and the thread group
    leader's tid equals process.pid; regs holds the user registers whenever the thread
    is not running on a CPU; `state` is "runnable", "blocked" (waiting: `wait` says
    on what) or "dead".
    """

    process: Process
    tid: int
    regs: PtRegs = field(default_factory=PtRegs)
    #: set_tid_address(2) / CLONE_CHILD_CLEARTID: the word cleared and futex-woken at exit
    clear_child_tid: int = 0
    #: set_robust_list(2): the head of the robust futex list, and its length
    robust_list: int = 0
    robust_len: int = 0
    #: rseq(2): the registered area (0: none), its length and signature
    rseq: int = 0
    rseq_len: int = 0
    rseq_sig: int = 0
    #: the blocked signals (a bit per signal, bit n-1 for signal n)
    sigmask: int = 0
    # --- signals (vmsim.task.signal; the group's part is process.signal) ---
    #: task->pending: the signals sent to this thread alone (tkill, faults), with siginfos
    pending: SigPending = field(default_factory=SigPending)
    #: TIF_SIGPENDING: a signal may be deliverable (set by signal_wake_up(), cleared by
    #: recalc_sigpending() of the thread itself)
    sigpending: bool = False
    #: the mask rt_sigsuspend() replaced; restore_sigmask (TS_RESTORE_SIGMASK) says it is
    #: put back on the way to user mode unless a handler's frame saved it
    saved_sigmask: int = 0
    restore_sigmask: bool = False
    #: sigaltstack(2): sas_ss_sp, sas_ss_size, sas_ss_flags (sas_ss_size 0: none)
    sas_ss_sp: int = 0
    sas_ss_size: int = 0
    sas_ss_flags: int = 0
    #: PF_EXITING: past exit_signals(), the thread takes no more group-wide signals
    exiting: bool = False
    #: struct restart_block: what restart_syscall(2) runs, set by a call that returned
    #: -ERESTART_RESTARTBLOCK, with what it saved bound in; None: do_no_restart_syscall()
    restart_block: Callable[[Thread], int] | None = None
    #: thread_struct trap_nr, error_code, cr2: the last fault that raised a signal (the
    #: trapno, err and cr2 of every later signal frame, as in the kernel)
    trap_nr: int = 0
    error_code: int = 0
    cr2: int = 0
    state: str = "runnable"
    #: what a blocked thread waits on (a futex key, a child pid, ...)
    wait: object = None
    # --- the process tree (kernel/fork.c, kernel/exit.c; vmsim.task.fork, task.exit) ---
    #: group_leader: the thread whose tid is the pid (None: this one)
    group_leader: Thread | None = None
    #: real_parent: the thread whose fork made this thread's process, for every thread
    #: of the group (None: the first process, or an orphan)
    parent: Thread | None = None
    #: the group leaders of the processes this thread forked, zombies until reaped
    children: list[Thread] = field(default_factory=list)
    #: the signal the parent gets when this process ends (clone's CSIGNAL; 0: none)
    exit_signal: int = 0
    #: the wait status once dead (exit code << 8, or the killing signal)
    exit_code: int = 0
    #: the thread's PKRU register; while the thread runs it is also its Process's pkru,
    #: which the page walk and the pkey syscalls read and write (one CPU runs them all)
    pkru: int = 0

    def __post_init__(self) -> None:
        """copy_process(): the new thread joins its group's thread list."""
        self.process.signal.threads.append(self)


class ThreadExit(Exception):
    """exit(2): the thread ends with `status` (the run loop reaps it: do_exit())."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class GroupExit(Exception):
    """exit_group(2), or a fatal signal: every thread of the group ends; `status` is the
    wait status the parent sees (exit code << 8, or the signal number)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status
