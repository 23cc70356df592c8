"""The scheduler's part of the model: which thread runs next (kernel/sched/core.c
schedule(), a deterministic round robin here), and how a thread waits and is woken
(include/linux/wait.h wait queues, kernel/sched/wait.c, the hrtimer timeouts of
kernel/time/hrtimer.c), on the Kernel's virtual clock (kernel.clock, in ns).

Waiting. A syscall that must wait raises Block: the run loop then puts the calling
thread to sleep on a key (any hashable naming what it waits for: a futex, a pipe, a
thread group's children) with sleep_on(). The call is made again when the thread is
woken without a value, as the kernel restarts a call that returned -ERESTARTNOINTR
(the thread's rip is moved back onto its SYSCALL instruction while it sleeps); woken
with a value (wake_up(thread, value)), the call returns that value instead (a futex
wait that was woken, a sleep that ended, a signal's -ERESTARTSYS). A deadline wakes the
thread with the Block's `on_timeout` value when the virtual clock reaches it. A signal
wakes it with the Block's `on_signal`: a value, or the tail the call runs once its sleep
was cut short (nanosleep's: the time left written, the restart block set).

Order. Runnable threads take turns in tid order; the run loop gives a thread the CPU
until its syscall, fault or instruction slice, so two runs of a program interleave
their threads identically. Waiters on one key are woken in the order they slept
(FIFO, as a futex hash bucket's plist of equal priorities).

Cost: O(threads) to find the next thread or the waiters on a key.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from ..errors import EINVAL, ERESTART_RESTARTBLOCK, ERESTARTNOHAND, ERESTARTSYS, kerr
from ..mm.fault import copy_from_user, copy_to_user
from ..uapi import U64

if TYPE_CHECKING:
    from .thread import Thread

#: the order threads went to sleep in (FIFO wakeups)
_sleep_order = itertools.count()


class Block(Exception):
    """The calling thread must wait on `on` before its syscall can complete.

    `deadline`: the virtual time (kernel.clock.elapsed, ns) at which it is woken
    anyway, the call then returning `on_timeout`. `on_signal`: what the call returns
    when a signal wakes it (the way back to user mode then restarts it or makes it
    -EINTR: vmsim.arch.x86.signal). Either may be a function that finishes the call at
    that moment and returns its value, as the kernel's code after schedule() finishes
    it (writing the time left, setting the restart block). `value`: the call has
    completed with this value
    already and the thread only waits to be let go (a vfork parent); it is not made
    again, and a signal does not end the wait. `ready`: the scheduler wakes the thread
    (the call made again) once it returns true, for a waker that cannot name its
    sleepers (the last writer of a pipe closing)."""

    def __init__(self, on: Hashable, *, deadline: int | None = None,
                 on_timeout: int | Callable[[], int] = 0,
                 on_signal: int | Callable[[], int] = -ERESTARTSYS, value: int | None = None,
                 ready: Callable[[], bool] | None = None) -> None:
        super().__init__(on)
        self.on = on
        self.deadline = deadline
        self.on_timeout = on_timeout
        self.on_signal = on_signal
        self.value = value
        self.ready = ready


@dataclass
class Wait:
    """What a blocked thread waits for (Thread.wait): the key, the deadline and the value
    the call returns when it passes, the value a signal makes it return (None: a signal
    does not end the wait; either value may be Block's function giving it), the call's
    fate on a plain wakeup (`restart`: the thread was moved back onto its SYSCALL), when
    it slept (`seq`), and the condition that ends the wait by itself (`ready`, Block's)."""

    on: Hashable
    deadline: int | None
    on_timeout: int | Callable[[], int]
    on_signal: int | Callable[[], int] | None
    restart: bool
    seq: int
    ready: Callable[[], bool] | None = None


def sleep_on(thread: Thread, block: Block) -> None:
    """The calling thread sleeps as `block` says (prepare_to_wait() + schedule())."""
    regs = thread.regs
    restart = block.value is None
    if block.value is None:
        regs.rip -= 2                       # back onto SYSCALL: the call is made again
        regs.rax = regs.orig_rax
    else:
        regs.rax = block.value & U64
    thread.state = "blocked"
    thread.wait = Wait(block.on, block.deadline, block.on_timeout,
                       block.on_signal if restart else None, restart, next(_sleep_order),
                       block.ready)


def wake_up(thread: Thread, value: int | None = None) -> None:
    """try_to_wake_up(): a blocked thread becomes runnable; with a value its call
    returns it (else a restarting call is made again). A thread whose call has its value
    already (Block.value) is let go only by a wakeup without one."""
    wait = thread.wait
    if thread.state != "blocked":
        return
    if isinstance(wait, Wait) and value is not None:
        if not wait.restart:
            return
        thread.regs.rip += 2
        thread.regs.rax = value & U64
    thread.state = "runnable"
    thread.wait = None


def threads_of(kernel) -> list[Thread]:
    """Every live thread of the kernel, in tid order."""
    return sorted((t for p in kernel.processes.values() for t in p.signal.threads),
                  key=lambda t: t.tid)


def waiters(kernel, on: Hashable | Callable[[Hashable], bool]) -> list[Thread]:
    """The threads sleeping on `on` (or on a key `on` accepts, if it is a predicate),
    in the order they went to sleep."""
    match = on if callable(on) else (lambda key: key == on)
    found = [(t.wait.seq, t) for t in threads_of(kernel)
             if t.state == "blocked" and isinstance(t.wait, Wait) and match(t.wait.on)]
    return [t for _, t in sorted(found, key=lambda pair: pair[0])]


def wake_up_all(kernel, on: Hashable, value: int | None = None) -> int:
    """wake_up_all() of the wait queue `on`. Returns how many were woken."""
    woken = waiters(kernel, on)
    for thread in woken:
        wake_up(thread, value)
    return len(woken)


# --- the scheduler's view of `threads`: every live thread, in tid order (threads_of()) ---

def pick_next(threads: Sequence[Thread], prev: Thread | None) -> Thread | None:
    """pick_next_task(): the first runnable thread after `prev` in tid order, wrapping
    round; None when none can run."""
    runnable = [t for t in threads if t.state == "runnable"]
    if not runnable:
        return None
    after = [t for t in runnable if prev is not None and t.tid > prev.tid]
    return (after or runnable)[0]


def nr_runnable(threads: Sequence[Thread]) -> int:
    return sum(1 for t in threads if t.state == "runnable")


def signal_wakeups(threads: Sequence[Thread]) -> None:
    """signal_wake_up() seen by the scheduler: a sleeping thread with a signal pending
    (TIF_SIGPENDING) wakes, its call returning the Block's on_signal value (or what its
    on_signal function returns); a wait a signal does not end (a vfork parent's) goes on."""
    for thread in threads:
        wait = thread.wait
        if thread.state == "blocked" and thread.sigpending and \
                not (isinstance(wait, Wait) and wait.on_signal is None):
            value = wait.on_signal if isinstance(wait, Wait) else None
            wake_up(thread, value() if callable(value) else value)


def expire_timeouts(threads: Sequence[Thread], now: int) -> int:
    """hrtimer_interrupt(): wake each sleeper whose deadline the clock (`now`) has
    reached, and each whose condition has come true. Returns how many."""
    woken = 0
    for thread in threads:
        wait = thread.wait
        if thread.state != "blocked" or not isinstance(wait, Wait):
            continue
        if wait.deadline is not None and wait.deadline <= now:
            wake_up(thread, wait.on_timeout() if callable(wait.on_timeout) else wait.on_timeout)
        elif wait.ready is not None and wait.ready():
            wake_up(thread)
        else:
            continue
        woken += 1
    return woken


def next_deadline(threads: Sequence[Thread]) -> int | None:
    """The earliest deadline of a sleeping thread (None: no sleeper has one)."""
    deadlines = [t.wait.deadline for t in threads
                 if t.state == "blocked" and isinstance(t.wait, Wait) and t.wait.deadline is not None]
    return min(deadlines, default=None)


# --- giving up the CPU and sleeping (kernel/sched/syscalls.c, kernel/time/hrtimer.c) ---

#: struct __kernel_timespec: tv_sec, tv_nsec
TIMESPEC = struct.Struct("<qq")
NSEC_PER_SEC = 1_000_000_000
#: include/uapi/linux/time.h: clock_nanosleep's clocks (CLOCK_REALTIME_ALARM and
#: CLOCK_BOOTTIME_ALARM need CAP_WAKE_ALARM: not modelled) and its flag
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI = 0, 1, 7, 11
CLOCK_PROCESS_CPUTIME_ID = 2
TIMER_ABSTIME = 1


def sys_sched_yield(thread: Thread, args: Sequence[int]) -> int:
    """sched_yield(2): 0; the run loop gives the CPU to the next runnable thread after
    every syscall anyway."""
    return 0


def get_timespec64(thread: Thread, addr: int) -> int:
    """get_timespec64() and timespec64_valid(): the nanoseconds of the struct timespec at
    addr (EFAULT); EINVAL for a negative second or a nanosecond out of range."""
    sec, nsec = TIMESPEC.unpack(copy_from_user(thread.process, addr, TIMESPEC.size))
    if sec < 0 or not 0 <= nsec < NSEC_PER_SEC:
        raise kerr(EINVAL)
    return sec * NSEC_PER_SEC + nsec


def hrtimer_nanosleep(thread: Thread, expires: int, rmtp: int, absolute: bool = False) -> int:
    """hrtimer_nanosleep() -> do_nanosleep(): sleep on the virtual clock until `expires`
    (kernel.clock.elapsed ns); 0 when it is reached. A signal ends it early
    (nanosleep_interrupted()). The timer slack (50 µs past the expiry a sleeper may be
    woken) is not modelled: the sleeper wakes at `expires`."""
    if expires <= thread.process.kernel.clock.elapsed:
        return 0
    raise Block(("hrtimer_nanosleep", thread.tid), deadline=expires, on_timeout=0,
                on_signal=partial(nanosleep_interrupted, thread, expires, rmtp, absolute))


def nanosleep_interrupted(thread: Thread, expires: int, rmtp: int, absolute: bool) -> int:
    """The end of do_nanosleep() and hrtimer_nanosleep() when a signal woke the sleeper:
    with an rmtp (nanosleep_copyout(), TT_NATIVE) the time left is written there
    (-EFAULT if it cannot be), or if none is left the sleep is over (0); then a
    relative sleep returns -ERESTART_RESTARTBLOCK with the restart block set to sleep on
    to the same expiry (-EINTR after a handler, restart_syscall(2) without one), an
    absolute one -ERESTARTNOHAND (made again as it was)."""
    if rmtp:
        left = expires - thread.process.kernel.clock.elapsed
        if left <= 0:
            return 0
        try:
            copy_to_user(thread.process, rmtp, TIMESPEC.pack(*divmod(left, NSEC_PER_SEC)))
        except OSError as err:
            return -(err.errno or EINVAL)
    if absolute:
        return -ERESTARTNOHAND
    thread.restart_block = partial(hrtimer_nanosleep_restart, expires=expires, rmtp=rmtp)
    return -ERESTART_RESTARTBLOCK


def hrtimer_nanosleep_restart(thread: Thread, expires: int, rmtp: int) -> int:
    """hrtimer_nanosleep_restart(): restart_syscall(2) of an interrupted relative sleep
    sleeps on to the expiry it had (an absolute sleep now), its rmtp as before."""
    return hrtimer_nanosleep(thread, expires, rmtp)


def sys_nanosleep(thread: Thread, args: Sequence[int]) -> int:
    """nanosleep(2) (rqtp, rmtp): a relative sleep on CLOCK_MONOTONIC; the restart block
    cleared first (do_no_restart_syscall), rmtp kept for an interruption."""
    rqtp, rmtp = args
    ns = get_timespec64(thread, rqtp)
    thread.restart_block = None
    return hrtimer_nanosleep(thread, thread.process.kernel.clock.elapsed + ns, rmtp)


def sys_clock_nanosleep(thread: Thread, args: Sequence[int]) -> int:
    """clock_nanosleep(2) (which, flags, rqtp, rmtp): EINVAL for CLOCK_THREAD_CPUTIME_ID
    and the clocks that cannot sleep, then a relative sleep or, with TIMER_ABSTIME (no
    rmtp then), one until the clock reads the time given (the process's CPU clock reads
    the virtual time since boot)."""
    which, flags, rqtp, rmtp = args
    which &= 0xFFFFFFFF
    if which not in (CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI,
                     CLOCK_PROCESS_CPUTIME_ID):
        raise kerr(EINVAL)
    ns = get_timespec64(thread, rqtp)
    clock = thread.process.kernel.clock
    thread.restart_block = None
    if not flags & TIMER_ABSTIME:
        return hrtimer_nanosleep(thread, clock.elapsed + ns, rmtp)
    base = clock.boot_realtime if which in (CLOCK_REALTIME, CLOCK_TAI) else \
        0 if which == CLOCK_PROCESS_CPUTIME_ID else clock.boot_uptime
    return hrtimer_nanosleep(thread, ns - base, 0, absolute=True)
