"""New threads and processes: kernel/fork.c (kernel_clone(), copy_process(), the
clone, clone3, fork and vfork syscalls).

A new process is Process.fork() (the file table, dup_mmap()) with one thread, its
group leader, whose tid is the new pid; a new thread (CLONE_THREAD) joins the caller's
Process. The child starts from the caller's registers as they leave the syscall, with
rax 0 (and, when given, the stack pointer and the FS base of CLONE_SETTLS); it is
runnable at once and the scheduler decides when it runs. What it has of signals is
vmsim.task.signal.copy_signals()'s.

Deviation: CLONE_VM without CLONE_THREAD (vfork, posix_spawn) gets a copy of the
address space, not the parent's own: what the child writes before its execve is not
seen by the parent (the model's Process owns its mm). CLONE_VFORK still holds the
parent until the child execs or exits. Namespaces, cgroups, pidfds (CLONE_PIDFD),
CLONE_PARENT, CLONE_SETTID arrays (set_tid) and CLONE_FILES/CLONE_FS without
CLONE_THREAD are not modelled: EINVAL.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ..errors import E2BIG, EINVAL, kerr
from ..mm.fault import copy_from_user, copy_to_user
from ..uapi import PAGE_SIZE
from .exit import vfork_key
from .sched import Block
from .signal import copy_signals
from .thread import Thread

#: include/uapi/linux/sched.h
CSIGNAL = 0x000000FF
CLONE_VM = 0x00000100
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SIGHAND = 0x00000800
CLONE_PIDFD = 0x00001000
CLONE_PTRACE = 0x00002000
CLONE_VFORK = 0x00004000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_SYSVSEM = 0x00040000
CLONE_SETTLS = 0x00080000
CLONE_PARENT_SETTID = 0x00100000
CLONE_CHILD_CLEARTID = 0x00200000
CLONE_DETACHED = 0x00400000
CLONE_UNTRACED = 0x00800000
CLONE_CHILD_SETTID = 0x01000000
CLONE_IO = 0x80000000
SIGCHLD = 17
#: the highest signal number (_NSIG)
NSIG = 64
#: the flags the model carries out; any namespace or cgroup flag is EINVAL here
MODELLED = (CSIGNAL | CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_PTRACE
            | CLONE_VFORK | CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID
            | CLONE_CHILD_CLEARTID | CLONE_DETACHED | CLONE_UNTRACED | CLONE_CHILD_SETTID
            | CLONE_IO)
#: struct clone_args (clone3): flags, pidfd, child_tid, parent_tid, exit_signal, stack,
#: stack_size, tls (CLONE_ARGS_SIZE_VER0), set_tid, set_tid_size (VER1), cgroup (VER2)
CLONE_ARGS = struct.Struct("<8Q")
CLONE_ARGS_SIZE_VER0, CLONE_ARGS_SIZE_VER2 = 64, 88


def kernel_clone(thread: Thread, flags: int, exit_signal: int, stack: int, parent_tid: int,
                 child_tid: int, tls: int) -> int:
    """kernel_clone(): copy_process() and wake_up_new_task(); the child's tid for the
    caller, who sleeps until the child execs or exits under CLONE_VFORK."""
    child = copy_process(thread, flags, exit_signal, stack, child_tid, tls)
    if flags & CLONE_PARENT_SETTID:
        copy_to_user(thread.process, parent_tid, struct.pack("<i", child.tid))
    if flags & CLONE_VFORK:
        raise Block(vfork_key(child), value=child.tid)
    return child.tid


def copy_process(thread: Thread, flags: int, exit_signal: int, stack: int, child_tid: int,
                 tls: int) -> Thread:
    """copy_process(): the flag checks (EINVAL), then the new thread or process."""
    if flags & ~MODELLED:
        raise kerr(EINVAL)
    if flags & CLONE_THREAD and not flags & CLONE_SIGHAND or \
            flags & CLONE_SIGHAND and not flags & CLONE_VM:
        raise kerr(EINVAL)
    if flags & (CLONE_FILES | CLONE_FS) and not flags & CLONE_THREAD:
        raise kerr(EINVAL)
    parent = thread.process
    regs = thread.regs.copy()
    regs.rax = 0
    if stack:
        regs.rsp = stack
    if flags & CLONE_SETTLS:
        regs.fs_base = tls
    if flags & CLONE_THREAD:
        tid = parent.kernel.alloc_pid()
        child = Thread(parent, tid, regs, group_leader=thread.group_leader or thread,
                       parent=thread.parent, exit_signal=0)
    else:
        process = parent.fork()
        child = Thread(process, process.pid, regs, parent=thread, exit_signal=exit_signal)
        thread.children.append(child)
    copy_signals(thread, child, flags)
    child.pkru = thread.pkru
    if flags & CLONE_CHILD_SETTID:
        copy_to_user(child.process, child_tid, struct.pack("<i", child.tid))
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = child_tid
    return child


def sys_clone(thread: Thread, args: Sequence[int]) -> int:
    """clone(2), in the x86-64 argument order: flags (CSIGNAL: the exit signal), stack,
    parent_tid, child_tid, tls, read from the registers (the table's kinds for clone
    are what strace prints)."""
    flags, newsp, parent_tid, child_tid, tls, _ = thread.regs.syscall_args()
    flags &= 0xFFFFFFFF
    return kernel_clone(thread, flags & ~CSIGNAL, flags & CSIGNAL, newsp, parent_tid,
                        child_tid, tls)


def sys_fork(thread: Thread, args: Sequence[int]) -> int:
    """fork(2): clone(SIGCHLD)."""
    return kernel_clone(thread, 0, SIGCHLD, 0, 0, 0, 0)


def sys_vfork(thread: Thread, args: Sequence[int]) -> int:
    """vfork(2): clone(CLONE_VFORK | CLONE_VM | SIGCHLD)."""
    return kernel_clone(thread, CLONE_VFORK | CLONE_VM, SIGCHLD, 0, 0, 0, 0)


def sys_clone3(thread: Thread, args: Sequence[int]) -> int:
    """clone3(2) (uargs, size): copy_clone_args_from_user() (E2BIG past a page or for set bytes past
    the struct the kernel knows, EINVAL below CLONE_ARGS_SIZE_VER0), then
    clone3_args_valid(): EINVAL for CSIGNAL bits in flags, an exit signal that is not
    one or that CLONE_THREAD comes with, a stack without a size or a size without a
    stack. The stack pointer is stack + stack_size. set_tid and cgroup: EINVAL unless
    zero (not modelled)."""
    uargs, size = args
    if size > PAGE_SIZE:
        raise kerr(E2BIG)
    if size < CLONE_ARGS_SIZE_VER0:
        raise kerr(EINVAL)
    raw = copy_from_user(thread.process, uargs, size)
    if any(raw[CLONE_ARGS_SIZE_VER2:]):
        raise kerr(E2BIG)
    raw = raw.ljust(CLONE_ARGS_SIZE_VER2, b"\0")
    flags, _pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls = \
        CLONE_ARGS.unpack_from(raw)
    if any(raw[CLONE_ARGS.size:CLONE_ARGS_SIZE_VER2]) or flags & CSIGNAL or \
            exit_signal & ~CSIGNAL or exit_signal > NSIG or \
            flags & (CLONE_THREAD | CLONE_PARENT) and exit_signal or bool(stack) != bool(stack_size):
        raise kerr(EINVAL)
    return kernel_clone(thread, flags, exit_signal, stack + stack_size if stack else 0,
                        parent_tid, child_tid, tls)
