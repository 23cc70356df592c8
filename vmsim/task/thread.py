"""A thread: the kernel's task_struct for one schedulable entity of a thread group
(kernel/fork.c copy_process(), include/linux/sched.h). The thread group itself, with its
mm, fd table, limits and personality, is the vmsim Process; what is per thread is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..arch.x86.ptrace import PtRegs

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
    #: rseq(2): the registered area (0: none)
    rseq: int = 0
    #: the blocked signals (a bit per signal, bit n-1 for signal n)
    sigmask: int = 0
    state: str = "runnable"
    #: what a blocked thread waits on (a futex key, a child pid, ...)
    wait: object = None


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
