"""Signals, the generic half: kernel/signal.c (sending, queueing, dequeuing, the default
actions, the signal syscalls) and kernel/time/itimer.c (alarm, setitimer's ITIMER_REAL).
The arch half (the x86-64 signal frame, rt_sigreturn, syscall restart, the way back to
user mode) is vmsim.arch.x86.signal.

State: a thread's blocked mask (`Thread.sigmask`), private pending set (`Thread.pending`),
TIF_SIGPENDING (`Thread.sigpending`) and alternate stack; its group's handler table,
shared pending set, group-exit state, ITIMER_REAL and thread list (`Process.signal`, a
vmsim.task.signal_types.SignalStruct).

Contract with the run loop (vmsim.run):
* A sleeping syscall is interruptible: the scheduler wakes a sleeping thread whose
  signal_pending() is true (vmsim.task.sched.signal_wakeups()), the call returning its
  -ERESTART* code. pause() and rt_sigsuspend() sleep on SIGNAL_WAIT with their value,
  -ERESTARTNOHAND, already set: only a signal ends that sleep.
* Before a thread returns to user mode (after a syscall, a fault, or waking up), the run
  loop calls vmsim.arch.x86.signal.exit_to_user_mode_loop(thread). A fatal signal
  raises vmsim.task.thread.GroupExit with the wait status.
* A CPU fault becomes a signal with vmsim.arch.x86.signal.bad_area() (a page fault) or
  force_sig_fault().
* ITIMER_REAL runs on the Kernel's virtual clock (kernel.clock.elapsed, ns):
  `next_timer_expiry()` says when the run loop must call `timer_expired()` (an idle
  machine lets the clock pass to it, as to a sleeper's deadline).

Not modelled (docs/signals.md): job control (stop signals are ignored, SIGCONT only
discards pending stop signals), process groups (kill(0) and kill(-pgrp) reach the
process whose pid is pgrp), core files (the 0x80 of the wait status is reported, no file
written), RLIMIT_SIGPENDING, ptrace, signalfd, POSIX timers, rt_sigtimedwait.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import E2BIG, EFAULT, EINTR, EINVAL, ENOMEM, EPERM, ERESTARTNOHAND, ESRCH, kerr
from ..mm.fault import copy_from_user, copy_to_user
from ..uapi import PAGE_SIZE, RLIMIT_CORE
from .signal_types import (
    KERNEL_SIGINFO_SIZE,
    MINSIGSTKSZ,
    SA_NODEFER,
    SA_RESETHAND,
    SEGV_PKUERR,
    SI_EXPANSION_SIZE,
    SI_KERNEL,
    SI_TKILL,
    SI_USER,
    SIG_BLOCK,
    SIG_DFL,
    SIG_IGN,
    SIG_KERNEL_IGNORE_MASK,
    SIG_KERNEL_STOP_MASK,
    SIG_SETMASK,
    SIG_UNBLOCK,
    SIGALRM,
    SIGCONT,
    SIGKILL,
    SIGNAL_GROUP_EXIT,
    SIGRTMIN,
    SIGSEGV,
    SIGSET_ALL,
    SS_AUTODISARM,
    SS_DISABLE,
    SS_FLAG_BITS,
    SS_ONSTACK,
    SYNCHRONOUS_MASK,
    UAPI_SA_FLAGS,
    UNBLOCKABLE,
    KSignal,
    SigAction,
    SigInfo,
    SignalStruct,
    SigPending,
    fault_info,
    kill_info,
    known_siginfo_layout,
    sig_kernel_coredump,
    sig_kernel_ignore,
    sig_kernel_only,
    sig_kernel_stop,
    sigmask,
    valid_signal,
)
from .thread import GroupExit, Thread

if TYPE_CHECKING:
    from ..process import Process

#: Thread.wait of a thread in pause() or rt_sigsuspend(): only a signal wakes it
SIGNAL_WAIT = "signal"
#: fs/binfmt_elf.c min_coredump: a core is dumped (WCOREDUMP, 0x80 in the wait status) only
#: if RLIMIT_CORE allows one page (with core_pattern a file name, as on the reference machine)
CORE_MIN = PAGE_SIZE
#: the wait status flag of a fatal signal that dumped core
WCOREFLAG = 0x80
#: struct sigset_t in user memory: 64 bits
SIGSET = struct.Struct("<Q")
#: stack_t: ss_sp, ss_flags (int, then padding), ss_size
STACK_T = struct.Struct("<Qi4xQ")
#: struct __kernel_old_itimerval: it_interval, it_value, each (tv_sec, tv_usec)
ITIMERVAL = struct.Struct("<qqqq")
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
NSEC_PER_SEC, NSEC_PER_USEC = 1_000_000_000, 1000


def _int(x: int) -> int:
    """A register narrowed to a C int (pid_t, int sig)."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


# --- pending state ------------------------------------------------------------------

def recalc_sigpending_tsk(t: Thread) -> bool:
    """recalc_sigpending_tsk(): set TIF_SIGPENDING if a signal is pending and not blocked
    (never clears it: only the thread itself may, recalc_sigpending())."""
    shared = t.process.signal.shared_pending.signal
    if (t.pending.signal | shared) & ~t.sigmask:
        t.sigpending = True
        return True
    return False


def recalc_sigpending(t: Thread) -> None:
    """recalc_sigpending() of the thread itself."""
    if not recalc_sigpending_tsk(t):
        t.sigpending = False


def signal_pending(t: Thread) -> bool:
    """signal_pending(): a signal may be deliverable; a sleeping thread wakes up."""
    return t.sigpending


def signal_wake_up(t: Thread) -> None:
    """signal_wake_up(): TIF_SIGPENDING set; the scheduler wakes a sleeping thread that
    has it (vmsim.task.sched.signal_wakeups())."""
    t.sigpending = True


def next_signal(pending: SigPending, mask: int) -> int:
    """next_signal(): the lowest pending unblocked signal, synchronous ones first."""
    x = pending.signal & ~mask
    if x & SYNCHRONOUS_MASK:
        x &= SYNCHRONOUS_MASK
    return (x & -x).bit_length()


def collect_signal(sig: int, pending: SigPending) -> SigInfo:
    """collect_signal(): take sig's first queued siginfo (the signal stays pending if
    another is queued); without one, SI_USER with zero ids."""
    first = next((q for q in pending.queue if q.signo == sig), None)
    if first is None:
        pending.signal &= ~sigmask(sig)
        return kill_info(sig, SI_USER, 0, 0)
    pending.queue.remove(first)
    if not any(q.signo == sig for q in pending.queue):
        pending.signal &= ~sigmask(sig)
    return first


def dequeue_signal(t: Thread, mask: int) -> tuple[int, SigInfo | None]:
    """dequeue_signal(): the next signal not in mask, the thread's own first, then the
    group's; a dequeued SIGALRM re-arms a periodic ITIMER_REAL."""
    signal = t.process.signal
    sig = next_signal(t.pending, mask)
    info = collect_signal(sig, t.pending) if sig else None
    if not sig:
        sig = next_signal(signal.shared_pending, mask)
        info = collect_signal(sig, signal.shared_pending) if sig else None
        if sig == SIGALRM:
            posixtimer_rearm_itimer(t.process)
    recalc_sigpending(t)
    return sig, info


def dequeue_synchronous_signal(t: Thread) -> tuple[int, SigInfo | None]:
    """dequeue_synchronous_signal(): a fault's signal (a positive si_code) queued for the
    thread goes before anything else, so that the frame's rip is the faulting one."""
    if not (t.pending.signal & ~t.sigmask) & SYNCHRONOUS_MASK:
        return 0, None
    sync = next((q for q in t.pending.queue
                 if q.code > SI_USER and sigmask(q.signo) & SYNCHRONOUS_MASK), None)
    if sync is None:
        return 0, None
    after = t.pending.queue[t.pending.queue.index(sync) + 1:]
    if not any(q.signo == sync.signo for q in after):
        t.pending.signal &= ~sigmask(sync.signo)
        recalc_sigpending(t)
    t.pending.queue.remove(sync)
    return sync.signo, sync


# --- sending ------------------------------------------------------------------------

def sig_handler_ignored(handler: int, sig: int) -> bool:
    """sig_handler_ignored(): SIG_IGN, or SIG_DFL of a signal whose default is to ignore."""
    return handler == SIG_IGN or (handler == SIG_DFL and sig_kernel_ignore(sig))


def sig_ignored(signal: SignalStruct, t: Thread | None, sig: int) -> bool:
    """sig_ignored(): a signal blocked by the target is never ignored (its handler may
    change before it is unblocked)."""
    if t is not None and t.sigmask & sigmask(sig):
        return False
    return sig_handler_ignored(signal.sighand.action[sig - 1].handler, sig)


def sig_fatal(signal: SignalStruct, sig: int) -> bool:
    """sig_fatal(): the default action of sig, if it is the handler, kills the group."""
    stop_or_ignore = sig < SIGRTMIN and sigmask(sig) & (SIG_KERNEL_IGNORE_MASK | SIG_KERNEL_STOP_MASK)
    return not stop_or_ignore and signal.sighand.action[sig - 1].handler == SIG_DFL


def prepare_signal(sig: int, signal: SignalStruct, t: Thread | None) -> bool:
    """prepare_signal(): the effects of generating sig whatever happens to it (a stop
    signal discards a pending SIGCONT, SIGCONT the pending stop signals); False if the
    signal is dropped (the group is dying, or the signal is ignored)."""
    if signal.flags & SIGNAL_GROUP_EXIT:
        return False
    if sig_kernel_stop(sig):
        _flush_everywhere(signal, sigmask(SIGCONT))
    elif sig == SIGCONT:
        _flush_everywhere(signal, SIG_KERNEL_STOP_MASK)
    return not sig_ignored(signal, t, sig)


def _flush_everywhere(signal: SignalStruct, mask: int) -> None:
    signal.shared_pending.flush(mask)
    for t in signal.threads:
        t.pending.flush(mask)


def wants_signal(sig: int, p: Thread, current: Thread | None) -> bool:
    """wants_signal(): p can take sig now (not blocking it, not exiting; running, or with
    nothing pending yet)."""
    if p.sigmask & sigmask(sig) or p.exiting:
        return False
    if sig == SIGKILL:
        return True
    return p is current or not p.sigpending


def complete_signal(sig: int, signal: SignalStruct, p: Thread | None, group: bool,
                    current: Thread | None) -> None:
    """complete_signal(): find a thread to take sig (p first, then round the group from
    the last one chosen) and wake it; a fatal signal takes the whole group down at once."""
    if p is not None and wants_signal(sig, p, current):
        t = p
    elif not group or len(signal.threads) <= 1:
        return
    else:
        start = signal.curr_target if signal.curr_target in signal.threads else signal.threads[0]
        i = signal.threads.index(start)
        ring = signal.threads[i:] + signal.threads[:i]
        chosen = next((c for c in ring if wants_signal(sig, c, current)), None)
        if chosen is None:
            return
        t = chosen
        signal.curr_target = t
    if sig_fatal(signal, sig) and not signal.flags & SIGNAL_GROUP_EXIT:
        signal.flags = SIGNAL_GROUP_EXIT
        signal.exit_dequeue = True
        signal.group_exit_code = sig
        for member in signal.threads:
            member.pending.signal |= sigmask(SIGKILL)
            signal_wake_up(member)
        return
    signal_wake_up(t)


def send_signal_locked(sig: int, info: SigInfo, signal: SignalStruct, t: Thread | None,
                       group: bool, current: Thread | None) -> None:
    """__send_signal_locked(): sig (with its siginfo) pending for thread t alone, or for
    the group (t then the thread the pid named, None if it has none). A signal below
    SIGRTMIN already pending there is not queued again."""
    if not prepare_signal(sig, signal, t):
        return
    if group or t is None:
        pending = signal.shared_pending
    else:
        pending = t.pending
    if sig < SIGRTMIN and pending.signal & sigmask(sig):
        return
    if sig != SIGKILL:
        pending.queue.append(info)
    pending.signal |= sigmask(sig)
    complete_signal(sig, signal, t, group, current)


def do_send_sig_info(sig: int, info: SigInfo, process: Process, p: Thread | None,
                     current: Thread | None) -> None:
    """do_send_sig_info(PIDTYPE_TGID): sig for the whole group, thread p (by default the
    one whose tid is the pid) tried first."""
    signal = process.signal
    if p is None:
        p = next((t for t in signal.threads if t.tid == process.pid),
                 signal.threads[0] if signal.threads else None)
    send_signal_locked(sig, info, signal, p, True, current)


def group_send_sig_info(sig: int, info: SigInfo, process: Process, current: Thread | None) -> None:
    """A kernel-generated signal for a whole group (SIGALRM of ITIMER_REAL): no
    permission check."""
    do_send_sig_info(sig, info, process, None, current)


HANDLER_CURRENT, HANDLER_SIG_DFL = "current", "sig_dfl"


def force_sig_info_to_task(info: SigInfo, t: Thread, handler: str = HANDLER_CURRENT) -> None:
    """force_sig_info_to_task(): a signal the thread cannot ignore or block: if it is
    blocked or ignored (or HANDLER_SIG_DFL is asked) the action becomes SIG_DFL and the
    signal is unblocked."""
    sig = info.signo
    signal = t.process.signal
    action = signal.sighand.action[sig - 1]
    blocked = bool(t.sigmask & sigmask(sig))
    if blocked or action.handler == SIG_IGN or handler != HANDLER_CURRENT:
        action.handler = SIG_DFL
        if blocked:
            t.sigmask &= ~sigmask(sig)
    send_signal_locked(sig, info, signal, t, False, t)
    if not t.sigpending:
        signal_wake_up(t)


def send_sig(sig: int, t: Thread) -> None:
    """send_sig(sig, t, 0): a signal the kernel sends for a thread's own call, to that
    thread alone, as if it had sent it itself (SEND_SIG_NOINFO: SI_USER, its tgid and
    uid): pipe_write()'s SIGPIPE."""
    send_signal_locked(sig, kill_info(sig, SI_USER, t.process.pid, t.process.uid), t.process.signal,
                       t, False, t)


def force_sig(t: Thread, sig: int) -> None:
    """force_sig(): a kernel-generated signal (SI_KERNEL) the thread cannot ignore."""
    force_sig_info_to_task(kill_info(sig, SI_KERNEL, 0, 0), t)


def force_fatal_sig(t: Thread, sig: int) -> None:
    """force_fatal_sig(): as force_sig(), and the handler is not run (SIG_DFL)."""
    force_sig_info_to_task(kill_info(sig, SI_KERNEL, 0, 0), t, HANDLER_SIG_DFL)


def force_sigsegv(t: Thread, sig: int) -> None:
    """force_sigsegv(): delivering sig failed (no room for its frame): SIGSEGV, and if sig
    was SIGSEGV itself, a fatal one."""
    if sig == SIGSEGV:
        force_fatal_sig(t, SIGSEGV)
    else:
        force_sig(t, SIGSEGV)


def force_sig_fault(t: Thread, sig: int, code: int, addr: int) -> None:
    """force_sig_fault(): the signal of a CPU fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
    SIGTRAP) with its si_code and si_addr."""
    force_sig_info_to_task(fault_info(sig, code, addr), t)


def force_sig_pkuerr(t: Thread, addr: int, pkey: int) -> None:
    """force_sig_pkuerr(): SIGSEGV/SEGV_PKUERR with si_addr and the key (si_pkey)."""
    force_sig_info_to_task(fault_info(SIGSEGV, SEGV_PKUERR, addr, pkey), t)


# --- kill(2), tgkill(2), tkill(2), rt_sigqueueinfo(2) -------------------------------------

INT_MIN = -(1 << 31)


def find_task_by_vpid(current: Thread, pid: int) -> tuple[Process, Thread | None] | None:
    """find_task_by_vpid(): the thread whose tid is pid and its group; a process of the
    model that has no Thread (one driven by calls only) is found by its pid."""
    for process in current.process.kernel.processes.values():
        for t in process.signal.threads:
            if t.tid == pid:
                return process, t
    found = current.process.kernel.processes.get(pid)
    if found is None or not found.alive:
        return None
    return found, None


def check_kill_permission(sig: int, info: SigInfo, target: Process, current: Thread) -> None:
    """check_kill_permission(): EINVAL for no such signal; a signal from user space (an
    si_code <= 0) to another group needs the same uid or CAP_KILL (EPERM)."""
    if not valid_signal(sig):
        raise kerr(EINVAL)
    if info.code > 0 or target is current.process:
        return
    if target.uid != current.process.uid and not current.process.capable("CAP_KILL"):
        raise kerr(EPERM)


def _send_group(sig: int, info: SigInfo, target: tuple[Process, Thread | None],
                current: Thread) -> None:
    """group_send_sig_info(): the permission check, then the signal (none for sig 0)."""
    process, t = target
    check_kill_permission(sig, info, process, current)
    if sig:
        do_send_sig_info(sig, info, process, t, current)


def prepare_kill_siginfo(sig: int, current: Thread, code: int) -> SigInfo:
    """prepare_kill_siginfo(): SI_USER (kill) or SI_TKILL (tkill, tgkill), with the
    sender's tgid and uid."""
    return kill_info(sig, code, current.process.pid, current.process.uid)


def kill_something_info(current: Thread, sig: int, info: SigInfo, pid: int) -> int:
    """kill_something_info(): pid > 0 a process (the group of the thread with that
    id); -1 every process but the caller's and pid 1; 0 and -pgrp a process group (not
    modelled: the process whose pid is pgrp, the caller's for 0)."""
    if pid > 0:
        target = find_task_by_vpid(current, pid)
        if target is None:
            raise kerr(ESRCH)
        _send_group(sig, info, target, current)
        return 0
    if pid == INT_MIN:
        raise kerr(ESRCH)
    if pid != -1:
        target = (current.process, current) if pid == 0 else find_task_by_vpid(current, -pid)
        if target is None:
            raise kerr(ESRCH)
        _send_group(sig, info, target, current)
        return 0
    errno, count = 0, 0
    for process in list(current.process.kernel.processes.values()):
        if process.pid > 1 and process is not current.process and process.alive:
            count += 1
            try:
                _send_group(sig, info, (process, None), current)
                errno = 0
            except OSError as err:
                errno = errno if err.errno == EPERM else err.errno or 0
    if not count:
        raise kerr(ESRCH)
    if errno:
        raise kerr(errno)
    return 0


def sys_kill(current: Thread, pid: int, sig: int) -> int:
    """kill(2)."""
    pid, sig = _int(pid), _int(sig)
    return kill_something_info(current, sig, prepare_kill_siginfo(sig, current, SI_USER), pid)


def do_send_specific(current: Thread, tgid: int, pid: int, sig: int, info: SigInfo) -> int:
    """do_send_specific(): sig to the thread pid alone (of group tgid, if tgid > 0);
    ESRCH if there is none; sig 0 only checks."""
    target = find_task_by_vpid(current, pid)
    if target is None or target[1] is None or (tgid > 0 and target[0].pid != tgid):
        raise kerr(ESRCH)
    process, t = target
    check_kill_permission(sig, info, process, current)
    if sig:
        send_signal_locked(sig, info, process.signal, t, False, current)
    return 0


def sys_tgkill(current: Thread, tgid: int, pid: int, sig: int) -> int:
    """tgkill(2): EINVAL for a pid or tgid not positive."""
    tgid, pid, sig = _int(tgid), _int(pid), _int(sig)
    if pid <= 0 or tgid <= 0:
        raise kerr(EINVAL)
    return do_send_specific(current, tgid, pid, sig, prepare_kill_siginfo(sig, current, SI_TKILL))


def sys_tkill(current: Thread, pid: int, sig: int) -> int:
    """tkill(2)."""
    pid, sig = _int(pid), _int(sig)
    if pid <= 0:
        raise kerr(EINVAL)
    return do_send_specific(current, 0, pid, sig, prepare_kill_siginfo(sig, current, SI_TKILL))


def copy_siginfo_from_user(current: Thread, sig: int, uinfo: int) -> SigInfo:
    """__copy_siginfo_from_user(): the user's kernel_siginfo with si_signo = sig; an
    si_code the kernel does not know needs the rest of the siginfo_t zero (E2BIG)."""
    info = SigInfo(copy_from_user(current.process, uinfo, KERNEL_SIGINFO_SIZE)).with_signo(sig)
    if not known_siginfo_layout(sig, info.code):
        if any(copy_from_user(current.process, uinfo + KERNEL_SIGINFO_SIZE, SI_EXPANSION_SIZE)):
            raise kerr(E2BIG)
    return info


def _may_queue(current: Thread, info: SigInfo, pid: int) -> None:
    """Not even root may send what looks like a kernel's or kill()'s siginfo to
    another thread (EPERM)."""
    if (info.code >= 0 or info.code == SI_TKILL) and pid != current.tid:
        raise kerr(EPERM)


def sys_rt_sigqueueinfo(current: Thread, pid: int, sig: int, uinfo: int) -> int:
    """rt_sigqueueinfo(2): do_rt_sigqueueinfo()."""
    pid, sig = _int(pid), _int(sig)
    info = copy_siginfo_from_user(current, sig, uinfo)
    _may_queue(current, info, pid)
    target = find_task_by_vpid(current, pid) if pid > 0 else None
    if target is None:
        raise kerr(ESRCH)
    _send_group(sig, info, target, current)
    return 0


def sys_rt_tgsigqueueinfo(current: Thread, tgid: int, pid: int, sig: int, uinfo: int) -> int:
    """rt_tgsigqueueinfo(2): do_rt_tgsigqueueinfo()."""
    tgid, pid, sig = _int(tgid), _int(pid), _int(sig)
    info = copy_siginfo_from_user(current, sig, uinfo)
    if pid <= 0 or tgid <= 0:
        raise kerr(EINVAL)
    _may_queue(current, info, pid)
    return do_send_specific(current, tgid, pid, sig, info)


# --- rt_sigaction(2), rt_sigprocmask(2), rt_sigpending(2) -----------------------------------

def do_sigaction(current: Thread, sig: int, act: SigAction | None) -> SigAction:
    """do_sigaction(): install act (flags cut to UAPI_SA_FLAGS, SIGKILL/SIGSTOP out of
    the mask) and return the old action. A signal now ignored is discarded from every
    pending set (POSIX 3.3.1.3). EINVAL for no such signal, or a new action for SIGKILL
    or SIGSTOP."""
    if not valid_signal(sig) or sig < 1 or (act is not None and sig_kernel_only(sig)):
        raise kerr(EINVAL)
    signal = current.process.signal
    old = replace(signal.sighand.action[sig - 1])
    old.flags &= UAPI_SA_FLAGS
    if act is not None:
        new = SigAction(act.handler, act.flags & UAPI_SA_FLAGS, act.restorer, act.mask & ~UNBLOCKABLE)
        signal.sighand.action[sig - 1] = new
        if sig_handler_ignored(new.handler, sig):
            _flush_everywhere(signal, sigmask(sig))
    return old


def sys_rt_sigaction(current: Thread, sig: int, act: int, oact: int, sigsetsize: int) -> int:
    """rt_sigaction(2): EINVAL for a sigsetsize other than 8; EFAULT for an act that
    cannot be read (nothing changes) or an oact that cannot be written (the new action
    is in place)."""
    if sigsetsize != SIGSET.size:
        raise kerr(EINVAL)
    new = SigAction.unpack(copy_from_user(current.process, act, SigAction.LAYOUT.size)) if act else None
    old = do_sigaction(current, _int(sig), new)
    if oact:
        copy_to_user(current.process, oact, old.pack())
    return 0


def set_current_blocked(t: Thread, newset: int) -> None:
    """set_current_blocked(): the blocked mask, never SIGKILL or SIGSTOP."""
    __set_current_blocked(t, newset & ~UNBLOCKABLE)


def __set_current_blocked(t: Thread, newset: int) -> None:
    """__set_task_blocked(): a group-wide signal this thread now blocks goes to a thread
    that can take it (retarget_shared_pending())."""
    if t.sigpending and len(t.process.signal.threads) > 1:
        retarget_shared_pending(t, newset & ~t.sigmask)
    t.sigmask = newset
    recalc_sigpending(t)


def retarget_shared_pending(t: Thread, which: int) -> None:
    """retarget_shared_pending(): wake the other threads that can take the group's
    pending signals in `which`, which t will not take."""
    retarget = t.process.signal.shared_pending.signal & which
    for other in t.process.signal.threads:
        if not retarget:
            return
        if other is t or other.exiting or not retarget & ~other.sigmask:
            continue
        retarget &= other.sigmask
        if not other.sigpending:
            signal_wake_up(other)


def sigprocmask(t: Thread, how: int, mask: int) -> None:
    """sigprocmask(): SIG_BLOCK, SIG_UNBLOCK or SIG_SETMASK; EINVAL for another how."""
    if how == SIG_BLOCK:
        newset = t.sigmask | mask
    elif how == SIG_UNBLOCK:
        newset = t.sigmask & ~mask
    elif how == SIG_SETMASK:
        newset = mask
    else:
        raise kerr(EINVAL)
    __set_current_blocked(t, newset)


def sys_rt_sigprocmask(current: Thread, how: int, nset: int, oset: int, sigsetsize: int) -> int:
    """rt_sigprocmask(2): EINVAL for a sigsetsize other than 8, or a bad how when nset
    is given (how is not looked at without it); EFAULT."""
    if sigsetsize != SIGSET.size:
        raise kerr(EINVAL)
    old = current.sigmask
    if nset:
        new = SIGSET.unpack(copy_from_user(current.process, nset, SIGSET.size))[0]
        sigprocmask(current, _int(how), new & ~UNBLOCKABLE)
    if oset:
        copy_to_user(current.process, oset, SIGSET.pack(old))
    return 0


def sys_rt_sigpending(current: Thread, uset: int, sigsetsize: int) -> int:
    """rt_sigpending(2): the pending signals the thread blocks; sigsetsize may be
    smaller than 8 (that many bytes are written), not larger (EINVAL)."""
    if sigsetsize > SIGSET.size:
        raise kerr(EINVAL)
    pending = (current.pending.signal | current.process.signal.shared_pending.signal) & current.sigmask
    copy_to_user(current.process, uset, SIGSET.pack(pending)[:sigsetsize])
    return 0


# --- sigaltstack(2) ---------------------------------------------------------------------

def on_sig_stack(t: Thread, sp: int) -> bool:
    """on_sig_stack(): sp is on the alternate stack (never with SS_AUTODISARM)."""
    return not t.sas_ss_flags & SS_AUTODISARM and __on_sig_stack(t, sp)


def __on_sig_stack(t: Thread, sp: int) -> bool:
    return sp > t.sas_ss_sp and sp - t.sas_ss_sp <= t.sas_ss_size


def sas_ss_flags(t: Thread, sp: int) -> int:
    """sas_ss_flags(): SS_DISABLE without an alternate stack, SS_ONSTACK on it, else 0."""
    if not t.sas_ss_size:
        return SS_DISABLE
    return SS_ONSTACK if on_sig_stack(t, sp) else 0


def sas_ss_reset(t: Thread) -> None:
    """sas_ss_reset(): no alternate stack."""
    t.sas_ss_sp, t.sas_ss_size, t.sas_ss_flags = 0, 0, SS_DISABLE


def do_sigaltstack(t: Thread, ss: tuple[int, int, int] | None, sp: int) -> tuple[int, int, int]:
    """do_sigaltstack(): the old stack (ss_sp, ss_flags, ss_size) as the thread's sp sees
    it, then the new one installed: EPERM while running on the alternate stack, EINVAL
    for a mode but 0, SS_ONSTACK or SS_DISABLE, ENOMEM below MINSIGSTKSZ."""
    old = (t.sas_ss_sp, sas_ss_flags(t, sp) | (t.sas_ss_flags & SS_FLAG_BITS), t.sas_ss_size)
    if ss is None:
        return old
    ss_sp, ss_flags, ss_size = ss
    ss_flags &= 0xFFFFFFFF
    if on_sig_stack(t, sp):
        raise kerr(EPERM)
    mode = ss_flags & ~SS_FLAG_BITS
    if mode not in (SS_DISABLE, SS_ONSTACK, 0):
        raise kerr(EINVAL)
    if (t.sas_ss_sp, t.sas_ss_size, t.sas_ss_flags) == (ss_sp, ss_size, ss_flags):
        return old
    if mode == SS_DISABLE:
        ss_sp, ss_size = 0, 0
    elif ss_size < MINSIGSTKSZ:
        raise kerr(ENOMEM)
    t.sas_ss_sp, t.sas_ss_size, t.sas_ss_flags = ss_sp, ss_size, ss_flags
    return old


def read_stack_t(t: Thread, addr: int) -> tuple[int, int, int]:
    """A stack_t from user memory (EFAULT): ss_sp, ss_flags, ss_size."""
    ss_sp, ss_flags, ss_size = STACK_T.unpack(copy_from_user(t.process, addr, STACK_T.size))
    return ss_sp, ss_flags, ss_size


def sys_sigaltstack(current: Thread, uss: int, uoss: int) -> int:
    """sigaltstack(2) at the thread's stack pointer."""
    new = read_stack_t(current, uss) if uss else None
    old = do_sigaltstack(current, new, current.regs.rsp)
    if uoss:
        copy_to_user(current.process, uoss, STACK_T.pack(old[0], _int(old[1]), old[2]))
    return 0


def restore_altstack(t: Thread, uss: int) -> None:
    """restore_altstack() of rt_sigreturn: the frame's stack_t reinstalled, every error
    but EFAULT ignored."""
    try:
        do_sigaltstack(t, read_stack_t(t, uss), t.regs.rsp)
    except OSError as err:
        if err.errno == EFAULT:
            raise


# --- restart_syscall(2) -----------------------------------------------------------------

def sys_restart_syscall(current: Thread) -> int:
    """restart_syscall(2): what the thread's restart block says, as a call interrupted
    with -ERESTART_RESTARTBLOCK left it (the entry makes this call when no handler ran);
    without one (do_no_restart_syscall(): after rt_sigreturn, or never set) -EINTR."""
    restart = current.restart_block
    if restart is None:
        raise kerr(EINTR)
    return restart(current)


# --- pause(2), rt_sigsuspend(2) -----------------------------------------------------------

def _sleep_for_signal(t: Thread) -> None:
    """Sleep (TASK_INTERRUPTIBLE) on SIGNAL_WAIT until a signal is pending; the call's
    value, already in place, is -ERESTARTNOHAND."""
    if not signal_pending(t):
        t.state = "blocked"
        t.wait = SIGNAL_WAIT
    raise kerr(ERESTARTNOHAND)


def sys_pause(current: Thread) -> int:
    """pause(2): sleep until a signal; -EINTR once a handler ran, else restarted."""
    _sleep_for_signal(current)
    return 0


def sys_rt_sigsuspend(current: Thread, unewset: int, sigsetsize: int) -> int:
    """rt_sigsuspend(2): sleep with the given mask until a signal; the old mask comes
    back after the handler (the frame saved it) or before a restart."""
    if sigsetsize != SIGSET.size:
        raise kerr(EINVAL)
    newset = SIGSET.unpack(copy_from_user(current.process, unewset, SIGSET.size))[0]
    current.saved_sigmask = current.sigmask
    set_current_blocked(current, newset)
    current.restore_sigmask = True
    _sleep_for_signal(current)
    return 0


def restore_saved_sigmask(t: Thread) -> None:
    """restore_saved_sigmask(): put back the mask rt_sigsuspend() replaced."""
    if t.restore_sigmask:
        t.restore_sigmask = False
        __set_current_blocked(t, t.saved_sigmask)


def sigmask_to_save(t: Thread) -> int:
    """sigmask_to_save(): the mask a signal frame saves (the one before rt_sigsuspend)."""
    return t.saved_sigmask if t.restore_sigmask else t.sigmask


# --- delivery (get_signal) --------------------------------------------------------------

def get_signal(t: Thread, stop: Callable[[Thread, SigInfo], None] | None = None) -> KSignal | None:
    """get_signal(): the next signal for a handler (a fault's first), after taking the
    default action of those without one: ignore, or kill the group (GroupExit with the
    wait status: the signal, WCOREFLAG if a core is dumped). None if nothing is to be
    delivered. Stop signals' default (stopping the group) is not modelled: ignored.
    `stop` is told of each signal dequeued (where ptrace_signal() stops a tracee)."""
    signal = t.process.signal
    if not t.sigpending:
        return None
    while True:
        if signal.flags & SIGNAL_GROUP_EXIT:
            t.pending.signal &= ~sigmask(SIGKILL)
            _do_exit(t, dequeue_exit_signal(t, stop), signal.group_exit_code)
        sig, info = dequeue_synchronous_signal(t)
        if not sig:
            sig, info = dequeue_signal(t, t.sigmask)
        if not sig or info is None:
            return None
        if stop is not None:
            stop(t, info)
        ka = signal.sighand.action[sig - 1]
        if ka.handler == SIG_IGN:
            continue
        if ka.handler != SIG_DFL:
            ksig = KSignal(sig, info, replace(ka))
            if ka.flags & SA_RESETHAND:
                ka.handler = SIG_DFL
            return ksig
        if sig_kernel_ignore(sig) or sig_kernel_stop(sig):
            continue
        signal.flags = SIGNAL_GROUP_EXIT
        signal.group_exit_code = sig
        for other in signal.threads:
            if other is not t:
                other.pending.signal |= sigmask(SIGKILL)
                signal_wake_up(other)
        _do_exit(t, sig, sig)


def dequeue_exit_signal(t: Thread, stop: Callable[[Thread, SigInfo], None] | None = None) -> int:
    """dequeue_exit_signal(): the signal complete_signal() found fatal to the group, taken
    off its queue (`stop` told of it, as get_signal()'s); SIGKILL when the group dies for
    another reason."""
    signal = t.process.signal
    if not signal.exit_dequeue:
        recalc_sigpending(t)
        return SIGKILL
    signal.exit_dequeue = False
    sig = signal.group_exit_code
    info = collect_signal(sig, t.pending if t.pending.signal & sigmask(sig) else signal.shared_pending)
    recalc_sigpending(t)
    if stop is not None:
        stop(t, info)
    return sig


def _do_exit(t: Thread, sig: int, exit_code: int) -> None:
    """The fatal end of get_signal(): a core dump (sig_kernel_coredump(), if RLIMIT_CORE
    allows it) adds WCOREFLAG; do_exit() of the group."""
    if sig_kernel_coredump(sig) and t.process.rlimit(RLIMIT_CORE) >= CORE_MIN:
        exit_code |= WCOREFLAG
        t.process.signal.group_exit_code = exit_code
    raise GroupExit(exit_code)


def signal_delivered(t: Thread, ksig: KSignal) -> None:
    """signal_delivered(): the frame holds the old mask; now block sa_mask and, without
    SA_NODEFER, the signal itself; an SS_AUTODISARM alternate stack is disarmed."""
    t.restore_sigmask = False
    blocked = t.sigmask | ksig.ka.mask
    if not ksig.ka.flags & SA_NODEFER:
        blocked |= sigmask(ksig.sig)
    set_current_blocked(t, blocked)
    if t.sas_ss_flags & SS_AUTODISARM:
        sas_ss_reset(t)


def signal_setup_done(failed: bool, t: Thread, ksig: KSignal) -> None:
    """signal_setup_done(): a frame that could not be written is a SIGSEGV."""
    if failed:
        force_sigsegv(t, ksig.sig)
    else:
        signal_delivered(t, ksig)


# --- a thread's life: fork, exec, exit ---------------------------------------------------

CLONE_VM, CLONE_SIGHAND, CLONE_VFORK, CLONE_THREAD = 0x100, 0x800, 0x4000, 0x10000
CLONE_CLEAR_SIGHAND = 0x100000000


def copy_signals(parent: Thread, child: Thread, clone_flags: int) -> None:
    """What copy_process() gives a new thread of signals: the parent's blocked mask and
    alternate stack (none for a thread sharing the mm without CLONE_VFORK), an empty
    pending set; a new process (no CLONE_THREAD) a copy of the handler table
    (CLONE_CLEAR_SIGHAND: default handlers but ignored ones), no ITIMER_REAL."""
    child.sigmask = parent.sigmask
    child.trap_nr, child.error_code, child.cr2 = parent.trap_nr, parent.error_code, parent.cr2
    if clone_flags & (CLONE_VM | CLONE_VFORK) == CLONE_VM:
        sas_ss_reset(child)
    else:
        child.sas_ss_sp, child.sas_ss_size = parent.sas_ss_sp, parent.sas_ss_size
        child.sas_ss_flags = parent.sas_ss_flags
    if child.process is not parent.process:
        child.process.signal.sighand = parent.process.signal.sighand.copy()
        if clone_flags & CLONE_CLEAR_SIGHAND:
            flush_signal_handlers(child.process.signal, force_default=False)


def flush_signal_handlers(signal: SignalStruct, force_default: bool) -> None:
    """flush_signal_handlers(): every action SIG_DFL (an ignored one stays SIG_IGN
    unless force_default), without flags, restorer or mask."""
    for i, ka in enumerate(signal.sighand.action):
        handler = SIG_IGN if ka.handler == SIG_IGN and not force_default else SIG_DFL
        signal.sighand.action[i] = SigAction(handler)


def exec_signals(t: Thread) -> None:
    """begin_new_exec(): handlers flushed (ignored signals stay ignored), the alternate
    stack forgotten (its flags stay); the mask and pending signals are kept."""
    t.sas_ss_sp = t.sas_ss_size = 0
    flush_signal_handlers(t.process.signal, force_default=False)


def exit_signals(t: Thread) -> None:
    """exit_signals() and the unhashing of __exit_signal(): the thread takes no more
    group-wide signals (those pending go to another thread) and leaves its group."""
    t.exiting = True
    signal = t.process.signal
    if t.sigpending and not signal.flags & SIGNAL_GROUP_EXIT:
        retarget_shared_pending(t, ~t.sigmask & SIGSET_ALL)
    if t in signal.threads:
        signal.threads.remove(t)
    if signal.curr_target is t:
        signal.curr_target = None


# --- alarm(2), setitimer(2), getitimer(2): ITIMER_REAL ----------------------------------

def _now(process: Process) -> int:
    """The virtual time of the Kernel's clock (ns), as the scheduler's deadlines count it."""
    return process.kernel.clock.elapsed


def _timeval(ns: int) -> tuple[int, int]:
    return ns // NSEC_PER_SEC, ns % NSEC_PER_SEC // NSEC_PER_USEC


def itimer_get_remtime(process: Process) -> int:
    """itimer_get_remtime(): ns to the expiry, at least 1 µs while armed; 0 disarmed."""
    expires = process.signal.real_timer.expires
    if expires is None:
        return 0
    return max(expires - _now(process), NSEC_PER_USEC)


def do_setitimer(process: Process, interval: int, value: int) -> tuple[int, int]:
    """do_setitimer(ITIMER_REAL): the old (interval, remaining), then the timer armed
    to expire `value` ns from now (0: disarmed), repeating every `interval` ns."""
    timer = process.signal.real_timer
    old = (timer.interval, itimer_get_remtime(process))
    if value:
        timer.expires, timer.interval = _now(process) + value, interval
    else:
        timer.expires, timer.interval = None, 0
    return old


def sys_alarm(current: Thread, seconds: int) -> int:
    """alarm(2): alarm_setitimer(): the seconds left of the old alarm, rounded up from
    under a second and to the nearest second otherwise."""
    seconds &= 0xFFFFFFFF
    _, old = do_setitimer(current.process, 0, seconds * NSEC_PER_SEC)
    sec, usec = _timeval(old)
    if (not sec and usec) or usec >= 500_000:
        sec += 1
    return sec


def _get_itimerval(current: Thread, addr: int) -> tuple[int, int]:
    """get_itimerval(): (interval, value) in ns; EINVAL for a timeval out of range."""
    i_sec, i_usec, v_sec, v_usec = ITIMERVAL.unpack(copy_from_user(current.process, addr, ITIMERVAL.size))
    for sec, usec in ((i_sec, i_usec), (v_sec, v_usec)):
        if sec < 0 or not 0 <= usec * NSEC_PER_USEC < NSEC_PER_SEC:
            raise kerr(EINVAL)
    return i_sec * NSEC_PER_SEC + i_usec * NSEC_PER_USEC, v_sec * NSEC_PER_SEC + v_usec * NSEC_PER_USEC


def _put_itimerval(current: Thread, addr: int, interval: int, value: int) -> None:
    copy_to_user(current.process, addr, ITIMERVAL.pack(*_timeval(interval), *_timeval(value)))


def sys_setitimer(current: Thread, which: int, value: int, ovalue: int) -> int:
    """setitimer(2): ITIMER_REAL on the virtual clock; ITIMER_VIRTUAL and ITIMER_PROF
    (CPU time, not modelled) are kept but never expire; EINVAL for another timer; a
    NULL value disarms (the kernel's "misfeature")."""
    which = _int(which)
    new = _get_itimerval(current, value) if value else (0, 0)
    signal = current.process.signal
    if which == ITIMER_REAL:
        old = do_setitimer(current.process, *new)
    elif which in (ITIMER_VIRTUAL, ITIMER_PROF):
        old = signal.cpu_timers.get(which, (0, 0))
        signal.cpu_timers[which] = new
    else:
        raise kerr(EINVAL)
    if ovalue:
        _put_itimerval(current, ovalue, *old)
    return 0


def sys_getitimer(current: Thread, which: int, value: int) -> int:
    """getitimer(2)."""
    which = _int(which)
    signal = current.process.signal
    if which == ITIMER_REAL:
        interval, remaining = signal.real_timer.interval, itimer_get_remtime(current.process)
    elif which in (ITIMER_VIRTUAL, ITIMER_PROF):
        interval, remaining = signal.cpu_timers.get(which, (0, 0))
    else:
        raise kerr(EINVAL)
    _put_itimerval(current, value, interval, remaining)
    return 0


def next_timer_expiry(process: Process) -> int | None:
    """When (kernel.clock.elapsed) the run loop must call timer_expired() for this group;
    None: never."""
    return process.signal.real_timer.expires


def timer_expired(process: Process) -> None:
    """it_real_fn(): if ITIMER_REAL has expired by the clock's time, SIGALRM (SI_KERNEL)
    to the group; a periodic timer is re-armed when the signal is dequeued
    (posixtimer_rearm_itimer())."""
    timer = process.signal.real_timer
    if timer.expires is None or _now(process) < timer.expires:
        return
    timer.fired, timer.expires = timer.expires, None
    group_send_sig_info(SIGALRM, kill_info(SIGALRM, SI_KERNEL, 0, 0), process, None)


def posixtimer_rearm_itimer(process: Process) -> None:
    """posixtimer_rearm_itimer(): a periodic ITIMER_REAL not armed is forwarded from its
    last expiry by whole intervals past the present (hrtimer_forward_now())."""
    timer = process.signal.real_timer
    if timer.expires is not None or not timer.interval or timer.fired is None:
        return
    missed = (_now(process) - timer.fired) // timer.interval + 1
    timer.expires = timer.fired + max(missed, 1) * timer.interval
