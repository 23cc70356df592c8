"""execve(2) from a thread's registers: fs/exec.c SYSCALL_DEFINE3(execve) with
get_user_arg_ptr()/count() (the argv and envp arrays of the caller's memory), then the
model's execve (Process.execve: vmsim.fs.exec, fs.binfmt_elf), then what becomes of
the calling thread: de_thread() (the other threads of the group die, the caller takes
the group leader's tid), the vfork parent let go, the signal handlers reset and the
alternate stack forgotten (vmsim.task.signal.exec_signals()), rseq and the robust list
forgotten, and the registers the new program starts from (start_thread():
Process.start_regs). The group's maxrss takes in the old mm's resident set.

Deviation: the kernel walks the robust lists of the caller and of the threads
de_thread() kills against the old mm (exec_mm_release(), exit_mm_release()); the
model's execve has replaced the mm by then, and forgets the lists unwalked (a robust
mutex held across another thread's execve is not marked FUTEX_OWNER_DIED).

A failure before the point of no return leaves the caller as it was, with the errno;
after it the process has been killed (exec_binprm() failing past begin_new_exec()) and
the thread ends with SIGSEGV, as force_fatal_sig(SIGSEGV) ends it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from ..errors import E2BIG, kerr
from ..fs.exec import MAX_ARG_STRLEN
from ..fs.namei import strncpy_from_user
from ..mm.fault import copy_from_user
from ..uapi import RLIMIT_STACK
from .exit import mm_release, setmax_mm_hiwater_rss
from .signal import exec_signals, exit_signals
from .signal_types import SIGSEGV
from .thread import GroupExit, Thread


def get_user_arg_strings(thread: Thread, uptr: int) -> list[bytes]:
    """count() and copy_strings() of one argv or envp array at uptr (NULL: none): the
    pointers up to the NULL one, each string at most MAX_ARG_STRLEN with its NUL
    (E2BIG; EFAULT); no more pointers than a quarter of the stack limit holds."""
    if not uptr:
        return []
    process = thread.process
    most = max(process.rlimit(RLIMIT_STACK) // 4, MAX_ARG_STRLEN) // 8
    out: list[bytes] = []
    while True:
        if len(out) >= most:
            raise kerr(E2BIG)
        (ptr,) = struct.unpack("<Q", copy_from_user(process, uptr + 8 * len(out), 8))
        if not ptr:
            return out
        s = strncpy_from_user(process, ptr, MAX_ARG_STRLEN)
        if s is None:
            raise kerr(E2BIG)
        out.append(s)


def sys_execve(thread: Thread, args: Sequence[Any]) -> int:
    """execve(2) (filename, argv, envp: the filename as the caller spelled it, which
    the exec walks from the working directory and keeps as bprm->filename; the arrays
    from rsi and rdx): the new program in the calling thread's process; 0 is never
    seen: the thread starts the program instead (its registers are the new ones)."""
    process = thread.process
    argv = get_user_arg_strings(thread, thread.regs.rsi)
    envp = get_user_arg_strings(thread, thread.regs.rdx)
    setmax_mm_hiwater_rss(process)              # exec_mmap(): the old mm's
    try:
        process.execve(args[0], argv, envp)
    except OSError:
        if process.alive:
            raise
        raise GroupExit(SIGSEGV) from None
    de_thread(thread)
    mm_release(thread)
    exec_signals(thread)
    thread.rseq = thread.rseq_len = thread.rseq_sig = 0         # rseq_execve()
    thread.robust_list = thread.robust_len = 0
    assert process.start_regs is not None      # set by every successful execve
    thread.regs = process.start_regs.copy()
    return 0


def de_thread(thread: Thread) -> None:
    """de_thread(): every other thread of the group is killed; the caller takes the
    leader's place (its tid becomes the pid, its parent the leader's)."""
    process = thread.process
    leader = thread.group_leader or thread
    for other in list(process.signal.threads):
        if other is not thread:
            other.state = "dead"
            other.wait = None
            exit_signals(other)
    if leader is not thread:
        thread.tid = process.pid
        thread.parent, thread.children = leader.parent, leader.children + thread.children
        thread.exit_signal = leader.exit_signal
        thread.group_leader = None
        if leader.parent is not None:
            siblings = leader.parent.children
            siblings[siblings.index(leader)] = thread
