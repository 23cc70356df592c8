"""The 64-bit SYSCALL entry: arch/x86/entry/syscall_64.c do_syscall_64() and the
sys_call_table it indexes (arch/x86/entry/syscalls/syscall_64.tbl).

A thread that executed SYSCALL comes here with its registers in `thread.regs`: the
number in orig_rax, the arguments in rdi, rsi, rdx, r10, r8, r9. The entry is the one
syscall table (vmsim.syscalls.table, `SYS_CALL_TABLE`): its argument kinds say how each
register is read (a path is a C string copied from the process's memory). The calls
that act on the thread itself (its tid, its exit) are served here from
`THREAD_CALLS`; every other one ends in the one dispatcher onto the thread's Process
(vmsim.syscalls.dispatch), as a replayed call does. The result, or -errno, is left in
rax as the kernel leaves it. A number with no entry answers -ENOSYS and is noted once
in the Kernel's `unknown_syscalls`, for the run loop to report.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from typing import Any

from ....errors import EBUSY, EFAULT, EINVAL, ENOSYS, EPERM, Fault, kerr
from ....fs.eventfd import EVENTFD_CALLS
from ....fs.eventpoll import EPOLL_CALLS
from ....fs.read_write import RW_CALLS
from ....fs.select import POLL_CALLS
from ....fs.socket import SOCKET_CALLS
from ....mm.fault import copy_to_user
from ....syscalls.dispatch import dispatch
from ....syscalls.strace import Peek, format_syscall
from ....syscalls.table import SYS_CALL_TABLE, UNMODELLED_NAMES, from_registers
from ....task.exec import sys_execve
from ....task.exit import sys_wait4
from ....task.fork import sys_clone, sys_clone3, sys_fork, sys_vfork
from ....task.futex import sys_futex
from ....task.sched import sys_clock_nanosleep, sys_nanosleep, sys_sched_yield
from ....task.thread import GroupExit, Thread, ThreadExit
from ....uapi import U64
from ..process_64 import sys_arch_prctl
from ..signal import SIGNAL_CALLS

#: include/linux/futex.h: sizeof(struct robust_list_head)
ROBUST_LIST_HEAD_SIZE = 24
#: include/uapi/linux/rseq.h: RSEQ_FLAG_UNREGISTER; the size and alignment of the
#: original struct rseq; offsetof(struct rseq, end), the size holding every field;
#: where node_id lies (mm_cid after it); cpu_id_start and cpu_id (or node_id and mm_cid)
RSEQ_FLAG_UNREGISTER = 1
ORIG_RSEQ_SIZE = 32
RSEQ_FEATURE_SIZE = 28
RSEQ_NODE_ID = 20
RSEQ_CPU_IDS = struct.Struct("<II")
#: a handler of THREAD_CALLS: the calling thread and the decoded arguments; returns the
#: syscall's value or raises OSError (its errno)
ThreadCall = Callable[[Thread, Sequence[Any]], int]


def sys_exit(thread: Thread, args: Sequence[Any]) -> int:
    """exit(2): kernel/exit.c do_exit() of this thread, with the low byte of the code."""
    raise ThreadExit(args[0] & 0xFF)


def sys_exit_group(thread: Thread, args: Sequence[Any]) -> int:
    """exit_group(2): kernel/exit.c do_group_exit(): every thread ends; the parent's
    wait status is the low byte of the code, shifted left by 8."""
    raise GroupExit((args[0] & 0xFF) << 8)


def sys_gettid(thread: Thread, args: Sequence[Any]) -> int:
    return thread.tid


def sys_getppid(thread: Thread, args: Sequence[Any]) -> int:
    """getppid(2): the pid of the process that forked this one; 0 for the first
    process, whose parent (the host) is outside the model, as Linux answers for a
    parent outside the caller's pid namespace."""
    parent = thread.parent
    return parent.process.pid if parent is not None else 0


def sys_set_tid_address(thread: Thread, args: Sequence[Any]) -> int:
    """set_tid_address(2): kernel/fork.c: remember the word cleared at exit; the tid."""
    thread.clear_child_tid = args[0]
    return thread.tid


def sys_set_robust_list(thread: Thread, args: Sequence[Any]) -> int:
    """set_robust_list(2): kernel/futex/syscalls.c: EINVAL unless len is the size of
    struct robust_list_head; the head is kept for exit (the futex code walks it)."""
    head, length = args[0], args[1]
    if length != ROBUST_LIST_HEAD_SIZE:
        raise kerr(EINVAL)
    thread.robust_list, thread.robust_len = head, length
    return 0


def sys_rseq(thread: Thread, args: Sequence[Any]) -> int:
    """rseq(2): kernel/rseq.c. Unregistering (RSEQ_FLAG_UNREGISTER alone) needs the
    registered area and length (EINVAL) and signature (EPERM); other flags are EINVAL;
    registering again is EBUSY (EINVAL for another area or length, EPERM for another
    signature); the area must be ORIG_RSEQ_SIZE bytes aligned to them, or hold every
    field and be aligned to 32 (EINVAL), and lie in user space (EFAULT). On the way back
    to user space the kernel fills cpu_id_start, cpu_id, node_id and mm_cid: the model
    runs every thread on CPU 0 of node 0 (a failing write, a SIGSEGV in Linux, is left
    out). The model never preempts a thread inside a critical section, so the area is
    never read."""
    area, length, flags, sig = args[0], args[1] & 0xFFFFFFFF, args[2] & 0xFFFFFFFF, \
        args[3] & 0xFFFFFFFF
    if flags & RSEQ_FLAG_UNREGISTER:
        if flags & ~RSEQ_FLAG_UNREGISTER or not thread.rseq or area != thread.rseq or \
                length != thread.rseq_len:
            raise kerr(EINVAL)
        if sig != thread.rseq_sig:
            raise kerr(EPERM)
        thread.rseq = thread.rseq_len = thread.rseq_sig = 0
        return 0
    if flags:
        raise kerr(EINVAL)
    if thread.rseq:
        if area != thread.rseq or length != thread.rseq_len:
            raise kerr(EINVAL)
        raise kerr(EPERM if sig != thread.rseq_sig else EBUSY)
    if length < ORIG_RSEQ_SIZE or area % ORIG_RSEQ_SIZE or \
            length != ORIG_RSEQ_SIZE and length < RSEQ_FEATURE_SIZE:
        raise kerr(EINVAL)
    if area + length > thread.process.kernel.task_size:
        raise kerr(EFAULT)
    thread.rseq, thread.rseq_len, thread.rseq_sig = area, length, sig
    try:
        copy_to_user(thread.process, area, RSEQ_CPU_IDS.pack(0, 0))
        copy_to_user(thread.process, area + RSEQ_NODE_ID, RSEQ_CPU_IDS.pack(0, 0))
    except OSError:
        pass
    return 0


#: the handlers of the calls that act on the calling thread, by the table's name
THREAD_CALLS: dict[str, ThreadCall] = {
    "exit": sys_exit,
    "exit_group": sys_exit_group,
    "gettid": sys_gettid,
    "getppid": sys_getppid,
    "set_tid_address": sys_set_tid_address,
    "set_robust_list": sys_set_robust_list,
    "rseq": sys_rseq,
    # the scheduler's and the CPU's (vmsim.task, vmsim.arch.x86.process_64)
    "clone": sys_clone,
    "clone3": sys_clone3,
    "fork": sys_fork,
    "vfork": sys_vfork,
    "execve": sys_execve,
    "wait4": sys_wait4,
    "futex": sys_futex,
    "sched_yield": sys_sched_yield,
    "nanosleep": sys_nanosleep,
    "clock_nanosleep": sys_clock_nanosleep,
    "arch_prctl": sys_arch_prctl,
    # the signals' (vmsim.task.signal, vmsim.arch.x86.signal)
    **SIGNAL_CALLS,
    # the files' that need the thread (vmsim.fs.read_write: SIGPIPE; vmsim.fs.select)
    **RW_CALLS,
    **POLL_CALLS,
    **EPOLL_CALLS,
    **EVENTFD_CALLS,
    **SOCKET_CALLS,
}


def do_syscall_64(thread: Thread) -> None:
    """arch/x86/entry/syscall_64.c do_syscall_64(): the call numbered regs.orig_rax
    with the arguments of the registers; its result, or -errno, in regs.rax.
    ThreadExit and GroupExit (exit, exit_group, a fatal signal) pass to the caller."""
    regs = thread.regs
    nr = regs.orig_rax
    entry = SYS_CALL_TABLE.get(nr)
    if entry is None:
        regs.rax = _unknown(thread, nr)
        return
    try:
        args = from_registers(thread.process, entry, regs.syscall_args())
        handler = THREAD_CALLS.get(entry.name)
        value = handler(thread, args) if handler is not None else \
            dispatch(thread.process, entry.name, args)
    except OSError as err:
        value = -(err.errno or ENOSYS)
    regs.rax = value & U64


def strace_line(thread: Thread, nr: int, args: Sequence[int], result: int | None,
                peek: Peek | None = None, entry: Peek | None = None) -> str:
    """The line `strace` prints for the call numbered nr that the thread made with the
    argument registers args (read before the call) and that returned result (rax,
    signed; None: it did not return), its memory read with `peek` (default: as it is
    after the call), the inputs it overwrites with `entry` (vmsim.syscalls.strace
    format_syscall). A number the table lacks is printed by strace's name for it
    (UNMODELLED_NAMES; `syscall_0x1f4` for a number that is no call) with every
    register, undecoded."""
    call = SYS_CALL_TABLE.get(nr)
    if call is None:
        shown = ", ".join(f"{a:#x}" if a else "0" for a in args)
        return f"{UNMODELLED_NAMES.get(nr, f'syscall_{nr:#x}')}({shown}) = " + (
            f"-1 ENOSYS ({os.strerror(ENOSYS)})" if result == -ENOSYS else str(result))
    process = thread.process

    def read(addr: int, n: int) -> bytes | None:
        try:
            return process.read(addr, n)
        except (Fault, OSError):
            return None
    return format_syscall(call, args, result, peek or read, entry)


def _unknown(thread: Thread, nr: int) -> int:
    """-ENOSYS for a number the table lacks (sys_ni_syscall()), noted once."""
    seen = thread.process.kernel.unknown_syscalls
    if nr not in seen:
        seen.append(nr)
    return -ENOSYS & U64
