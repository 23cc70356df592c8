"""Fast user-space mutexes: kernel/futex/ (syscalls.c do_futex(), waitwake.c
futex_wait()/futex_wake(), core.c get_futex_key()) for the operations glibc's locks,
condition variables, pthread_join and barriers use: FUTEX_WAIT, FUTEX_WAKE,
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET, with or without FUTEX_PRIVATE_FLAG and
FUTEX_CLOCK_REALTIME.

A futex is named by its key: a private futex (and any in private memory) by its mm and
address, one in a shared file or shmem mapping by the inode and the offset, so
processes that map the same file meet on it. Waiters sleep on a FutexQ with the
scheduler (vmsim.task.sched), woken oldest first; a wait's timeout is on the Kernel's
virtual clock. The requeue, wake-op and priority-inheritance operations answer ENOSYS.

A thread that dies holding robust mutexes (set_robust_list(2)) has them marked
FUTEX_OWNER_DIED and a waiter of each woken (core.c exit_robust_list()), so that the
next locker gets EOWNERDEAD.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from ..errors import EAGAIN, EFAULT, EINVAL, ENOSYS, ETIMEDOUT, kerr
from ..mm.fault import copy_from_user, copy_to_user
from ..mm.flags import VM_SHARED
from ..uapi import PAGE_SHIFT, PAGE_SIZE, U64
from .sched import Block, waiters, wake_up
from .thread import Thread

#: include/uapi/linux/futex.h
FUTEX_WAIT, FUTEX_WAKE = 0, 1
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
#: struct __kernel_timespec: tv_sec, tv_nsec
TIMESPEC = struct.Struct("<qq")
NSEC_PER_SEC = 1_000_000_000
#: the futex word of a robust mutex: waiters, owner died, the owner's tid
FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
#: include/uapi/linux/futex.h ROBUST_LIST_LIMIT: the most entries walked at exit
ROBUST_LIST_LIMIT = 2048
#: struct robust_list_head: list.next, futex_offset, list_op_pending
ROBUST_HEAD_OFFSET, ROBUST_PENDING = 8, 16


@dataclass(frozen=True)
class FutexQ:
    """struct futex_q: what a waiter sleeps on, its key and the bitset it wakes for."""

    key: Hashable
    bitset: int


def get_futex_key(thread: Thread, uaddr: int, private: bool) -> Hashable:
    """get_futex_key(): EINVAL for a misaligned address, EFAULT outside any VMA; the
    mm and address, or for a shared file or shmem mapping its inode and offset."""
    if uaddr % 4:
        raise kerr(EINVAL)
    mm = thread.process.mm
    if private:
        return (id(mm), uaddr)
    vma = mm.tree.find(uaddr)
    if vma is None:
        raise kerr(EFAULT)
    if vma.flags & VM_SHARED and vma.file is not None:
        offset = (vma.pgoff_at(uaddr) << PAGE_SHIFT) | (uaddr & (PAGE_SIZE - 1))
        return (id(vma.file.inode), offset)
    return (id(mm), uaddr)


def futex_wait(thread: Thread, uaddr: int, val: int, deadline: int | None, bitset: int,
               private: bool) -> int:
    """futex_wait(): EAGAIN if the word at uaddr (EFAULT) is not `val`; else sleep until
    a FUTEX_WAKE whose bitset meets ours (then 0) or the deadline (ETIMEDOUT)."""
    key = get_futex_key(thread, uaddr, private)
    word = struct.unpack("<I", copy_from_user(thread.process, uaddr, 4))[0]
    if word != val:
        raise kerr(EAGAIN)
    raise Block(FutexQ(key, bitset), deadline=deadline, on_timeout=-ETIMEDOUT)


def futex_wake(thread: Thread, uaddr: int, nr: int, bitset: int = FUTEX_BITSET_MATCH_ANY,
               private: bool = False) -> int:
    """futex_wake(): wake up to nr waiters on the key of uaddr whose bitset meets
    `bitset`, oldest first; each returns 0. Returns how many were woken."""
    key = get_futex_key(thread, uaddr, private)
    woken = waiters(thread.process.kernel,
                    lambda on: isinstance(on, FutexQ) and on.key == key and bool(on.bitset & bitset))
    woken = woken[:max(nr, 0)]
    for t in woken:
        wake_up(t, 0)
    return len(woken)


# --- robust futexes: kernel/futex/core.c ---------------------------------------------------

def futex_exit_release(thread: Thread) -> None:
    """futex_exit_release() -> futex_cleanup(): the thread's robust list walked, then
    forgotten."""
    if thread.robust_list:
        exit_robust_list(thread)
    thread.robust_list = thread.robust_len = 0


def fetch_robust_entry(thread: Thread, uaddr: int) -> tuple[int, bool]:
    """fetch_robust_entry(): the list pointer at uaddr, and its low bit (a PI futex);
    OSError (EFAULT) if it cannot be read."""
    (word,) = struct.unpack("<Q", copy_from_user(thread.process, uaddr, 8))
    return word & ~1 & U64, bool(word & 1)


def exit_robust_list(thread: Thread) -> None:
    """exit_robust_list(): each entry of the list at thread.robust_list (the head's
    list.next, futex_offset from it to the futex word, list_op_pending: a lock being
    taken or released) has its futex handled as its owner's death
    (handle_futex_death()), the pending one last and once; at most ROBUST_LIST_LIMIT of
    them, and none after a fault or a misaligned word."""
    head = thread.robust_list
    try:
        entry, pi = fetch_robust_entry(thread, head)
        (futex_offset,) = struct.unpack("<q", copy_from_user(thread.process, head + ROBUST_HEAD_OFFSET, 8))
        pending, pending_pi = fetch_robust_entry(thread, head + ROBUST_PENDING)
    except OSError:
        return
    for _ in range(ROBUST_LIST_LIMIT):
        if entry == head:
            break
        try:
            next_entry, next_pi = fetch_robust_entry(thread, entry)
        except OSError:
            next_entry = None
        if entry != pending and not handle_futex_death(thread, (entry + futex_offset) & U64, pi, False):
            return
        if next_entry is None:
            return
        entry, pi = next_entry, next_pi
    if pending:
        handle_futex_death(thread, (pending + futex_offset) & U64, pending_pi, True)


def handle_futex_death(thread: Thread, uaddr: int, pi: bool, pending_op: bool) -> bool:
    """handle_futex_death(): a futex word owned by the dying thread (its tid) becomes
    FUTEX_OWNER_DIED (keeping FUTEX_WAITERS), one waiter woken if it had any (a PI
    futex's waiters are the PI code's: not modelled); a pending non-PI lock with no
    owner has a waiter woken. False (stop walking) for a misaligned word or one that
    cannot be read or written."""
    if uaddr % 4:
        return False
    try:
        (uval,) = struct.unpack("<I", copy_from_user(thread.process, uaddr, 4))
        owner = uval & FUTEX_TID_MASK
        if owner == thread.tid:
            copy_to_user(thread.process, uaddr, struct.pack("<I", (uval & FUTEX_WAITERS) | FUTEX_OWNER_DIED))
    except OSError:
        return False
    if (pending_op and not pi and not owner) or \
            (owner == thread.tid and not pi and uval & FUTEX_WAITERS):
        futex_wake(thread, uaddr, 1)
    return True


def timeout_deadline(thread: Thread, utime: int, absolute: bool, realtime: bool) -> int | None:
    """The deadline on the virtual clock (kernel.clock.elapsed, ns) of the timeout at
    utime (NULL: none): relative for FUTEX_WAIT, absolute on CLOCK_MONOTONIC (or
    CLOCK_REALTIME) for FUTEX_WAIT_BITSET. EINVAL for a bad timespec, EFAULT."""
    if not utime:
        return None
    sec, nsec = TIMESPEC.unpack(copy_from_user(thread.process, utime, TIMESPEC.size))
    if sec < 0 or not 0 <= nsec < NSEC_PER_SEC:
        raise kerr(EINVAL)
    ns = sec * NSEC_PER_SEC + nsec
    clock = thread.process.kernel.clock
    if not absolute:
        return clock.elapsed + ns
    return max(ns - (clock.boot_realtime if realtime else clock.boot_uptime), 0)


def sys_futex(thread: Thread, args: Sequence[int]) -> int:
    """futex(2) (uaddr, op, val, utime, uaddr2, val3): kernel/futex/syscalls.c
    do_futex() for the operations this module models; ENOSYS for the others, as for an
    unknown one."""
    uaddr, op, val, utime, _uaddr2, val3 = args
    op &= 0xFFFFFFFF
    cmd = op & FUTEX_CMD_MASK
    private = bool(op & FUTEX_PRIVATE_FLAG)
    realtime = bool(op & FUTEX_CLOCK_REALTIME)
    val &= 0xFFFFFFFF
    bitset = val3 & 0xFFFFFFFF
    if realtime and cmd not in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        raise kerr(ENOSYS)
    if cmd in (FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET) and not bitset:
        raise kerr(EINVAL)
    if cmd == FUTEX_WAIT:
        deadline = timeout_deadline(thread, utime, False, realtime)
        return futex_wait(thread, uaddr, val, deadline, FUTEX_BITSET_MATCH_ANY, private)
    if cmd == FUTEX_WAIT_BITSET:
        deadline = timeout_deadline(thread, utime, True, realtime)
        return futex_wait(thread, uaddr, val, deadline, bitset, private)
    if cmd == FUTEX_WAKE:
        return futex_wake(thread, uaddr, _int(val), FUTEX_BITSET_MATCH_ANY, private)
    if cmd == FUTEX_WAKE_BITSET:
        return futex_wake(thread, uaddr, _int(val), bitset, private)
    raise kerr(ENOSYS)


def _int(x: int) -> int:
    """A 32-bit value as a C int."""
    return x - (1 << 32) if x & 0x80000000 else x
