"""How threads and processes end, and how a parent learns of it: kernel/exit.c
(do_exit(), do_group_exit(), exit_notify(), forget_original_parent(), release_task(),
wait4(), and kernel/sys.c getrusage() for wait4's rusage) and the exit half of
kernel/fork.c (exit_mm_release(): the robust futex list, clear_child_tid).

A thread that ends leaves its group's thread list, handing the children it forked to
a thread of the group that lives on. When the last one has gone the process ends: its
mm and files go (Process.exit(): exit_mm(), exit_files()), its children lose their
parent, and its group leader is a zombie in its parent's `children` until wait4() reaps
it, with its wait status in `exit_code`, and the parent is sent its exit signal
(SIGCHLD); a parent that ignores SIGCHLD gets no zombie. An orphan is reaped by nobody
(the model has no init to reparent to); the parent of the first process is the host
(the run loop reads its leader's exit_code).

wait4's rusage is the child's group's as far as the model knows it: ru_maxrss, the
largest resident set of the group (or of its reaped descendants: cmaxrss), in KiB; the
model keeps no high-water mark, so it is the largest resident set seen when a thread
exited or the group executed a new program (setmax_mm_hiwater_rss() at those moments).
The model keeps no CPU time (its virtual clock moves with clock readings and sleeps,
not instructions) and counts no faults, I/O or context switches: those fields are 0.

Not modelled: process groups (wait4 with pid 0 or below -1 waits for any child),
stopped and continued children (WUNTRACED and WCONTINUED report nothing), ptrace.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ..errors import ECHILD, EINVAL, kerr
from ..mm.fault import copy_to_user
from ..uapi import PAGE_SIZE
from .futex import futex_exit_release, futex_wake
from .sched import Block, wake_up_all
from .signal import WCOREFLAG, exit_signals, group_send_sig_info
from .signal_types import CLD_DUMPED, CLD_EXITED, CLD_KILLED, SA_NOCLDWAIT, SIG_IGN, SIGCHLD, SigInfo
from .thread import Thread

#: include/uapi/linux/wait.h
WNOHANG, WUNTRACED, WCONTINUED = 0x1, 0x2, 0x8
__WNOTHREAD, __WALL, __WCLONE = 0x20000000, 0x40000000, 0x80000000
WAIT4_OPTIONS = WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE
#: struct rusage: ru_utime, ru_stime (struct timeval), then fourteen longs from
#: ru_maxrss (KiB) on
RUSAGE = struct.Struct("<4q14q")


def wait_key(process) -> tuple[str, int]:
    """The wait queue a thread group's wait4() callers sleep on (signal->wait_chldexit)."""
    return ("wait_chldexit", process.pid)


def vfork_key(child: Thread) -> tuple[str, int]:
    """What a vfork parent sleeps on until `child` execs or exits (vfork_done)."""
    return ("vfork_done", child.tid)


def get_mm_rss(process) -> int:
    """get_mm_rss(): the pages the process's mm maps (anonymous, file and shmem; not the
    raw PFNs of a VM_PFNMAP mapping)."""
    return len(process.mm.anon_pages) + len(process.mm.file_ptes)


def setmax_mm_hiwater_rss(process) -> None:
    """setmax_mm_hiwater_rss(&signal->maxrss, mm): the group's maxrss is at least what
    its mm maps now (the model's stand-in for the mm's high-water mark)."""
    signal = process.signal
    signal.maxrss = max(signal.maxrss, get_mm_rss(process))


def exit_mm_release(thread: Thread) -> None:
    """kernel/fork.c exit_mm_release(): futex_exit_release() (the robust list), then
    mm_release()."""
    futex_exit_release(thread)
    mm_release(thread)


def mm_release(thread: Thread) -> None:
    """kernel/fork.c mm_release(): the vfork parent is let go; a thread that set
    clear_child_tid (the pthread join word) has 0 written there and one waiter woken,
    if other threads still use the mm (a word that cannot be written is left alone)."""
    wake_up_all(thread.process.kernel, vfork_key(thread))
    addr, thread.clear_child_tid = thread.clear_child_tid, 0
    if not addr or len(thread.process.signal.threads) < 2:
        return
    try:
        copy_to_user(thread.process, addr, bytes(4))
    except OSError:
        return
    futex_wake(thread, addr, 1)


def do_exit(thread: Thread, status: int) -> None:
    """do_exit(): `thread` ends (the group's maxrss updated, exit_mm_release()); if it
    was the group's last, the process ends with wait status `status`."""
    if thread.process.alive:
        setmax_mm_hiwater_rss(thread.process)
    exit_mm_release(thread)
    group = thread.process.signal.threads
    _leave(thread)
    if group:
        heir = group[0]
        for child in thread.children:
            child.parent = heir
        heir.children += thread.children
        thread.children = []
        return
    exit_process(thread, status)


def do_group_exit(thread: Thread, status: int) -> None:
    """do_group_exit(): every other thread of the group is killed (zap_other_threads()),
    then this one exits with `status`."""
    for other in list(thread.process.signal.threads):
        if other is not thread:
            exit_mm_release(other)
            _leave(other)
            thread.children += other.children
            other.children = []
    do_exit(thread, status)


def _leave(thread: Thread) -> None:
    """The thread is dead and no longer one of its group (exit_signals(),
    __exit_signal())."""
    thread.state = "dead"
    thread.wait = None
    exit_signals(thread)


def exit_process(last: Thread, status: int) -> None:
    """The last thread of its process ended: exit_mm() and exit_files() (Process.exit()),
    then exit_notify(): the children are orphaned, the leader is a zombie holding
    `status`, the parent's wait4() sleepers look again (SIGCHLD is the signal code's),
    and an orphan's zombie is released at once."""
    process = last.process
    if process.alive:
        process.exit()
    for child in last.children:
        child.parent = None
    last.children = []
    leader = last.group_leader or last
    leader.state = "dead"
    leader.exit_code = status
    if leader.parent is not None and do_notify_parent(leader, status):
        release_task(leader)


def do_notify_parent(leader: Thread, status: int) -> bool:
    """kernel/signal.c do_notify_parent(): the parent's group gets the child's exit
    signal with a SIGCHLD siginfo (CLD_EXITED and the exit code, or CLD_KILLED /
    CLD_DUMPED and the signal), its wait4() sleepers look again; a parent that ignores
    SIGCHLD (SIG_IGN, or SA_NOCLDWAIT) gets no zombie: True, the child is reaped now."""
    parent = leader.parent
    assert parent is not None
    sig = leader.exit_signal
    process = parent.process
    autoreap = False
    if sig == SIGCHLD:
        action = process.signal.sighand.action[SIGCHLD - 1]
        autoreap = action.handler == SIG_IGN or bool(action.flags & SA_NOCLDWAIT)
        if action.handler == SIG_IGN:
            sig = 0
    if sig and process.alive:
        killed = status & 0x7F
        code = CLD_EXITED if not killed else CLD_DUMPED if status & WCOREFLAG else CLD_KILLED
        info = SigInfo.build(sig, code, 0, (16, "<i", leader.tid),
                             (20, "<I", leader.process.uid), (24, "<i", killed or status >> 8))
        group_send_sig_info(sig, info, process, None)
    wake_up_all(process.kernel, wait_key(process))
    return autoreap


def eligible(child: Thread, pid: int, options: int) -> bool:
    """eligible_child(): `child` is the one wait4's pid names (> 0; else any), and its
    exit_signal is what __WCLONE asks (SIGCHLD or not: a "clone" child; __WALL: either)."""
    if pid > 0 and child.tid != pid:
        return False
    return bool(options & __WALL) or (child.exit_signal != SIGCHLD) == bool(options & __WCLONE)


def sys_wait4(thread: Thread, args: Sequence[int]) -> int:
    """wait4(2) (pid, stat_addr, options, rusage): kernel/exit.c kernel_wait4(): EINVAL
    for an unknown option; then the first eligible zombie among the children of the
    group's threads (of this thread alone with __WNOTHREAD) is reaped
    (wait_task_zombie(): its maxrss joins the caller's group's cmaxrss): its wait
    status written at stat_addr, its rusage at ru (EFAULT, the child reaped all the
    same), its pid returned. Without one: ECHILD if no child is eligible, 0 under
    WNOHANG, else the caller sleeps until a child exits."""
    upid, stat_addr, options, ru = args
    pid = _int(upid)
    options &= 0xFFFFFFFF
    if options & ~WAIT4_OPTIONS:
        raise kerr(EINVAL)
    parents = [thread] if options & __WNOTHREAD else thread.process.signal.threads
    candidates = [c for p in parents for c in p.children if eligible(c, pid, options)]
    if not candidates:
        raise kerr(ECHILD)
    zombie = next((c for c in candidates if c.state == "dead"), None)
    if zombie is None:
        if options & WNOHANG:
            return 0
        raise Block(wait_key(thread.process))
    child, parent = zombie.process.signal, thread.process.signal
    maxrss = max(child.maxrss, child.cmaxrss)
    parent.cmaxrss = max(parent.cmaxrss, maxrss)
    release_task(zombie)
    if stat_addr:
        copy_to_user(thread.process, stat_addr, struct.pack("<i", zombie.exit_code))
    if ru:
        copy_to_user(thread.process, ru, rusage(maxrss))
    return zombie.tid


def rusage(maxrss: int) -> bytes:
    """getrusage(RUSAGE_BOTH) of a reaped child as the model knows it: ru_maxrss
    (`maxrss` pages, in KiB); no times or counts (see the module's docstring)."""
    return RUSAGE.pack(0, 0, 0, 0, maxrss * (PAGE_SIZE // 1024), *(0,) * 13)


def release_task(zombie: Thread) -> None:
    """release_task(): the reaped zombie leaves its parent's children."""
    parent = zombie.parent
    if parent is not None and zombie in parent.children:
        parent.children.remove(zombie)
    zombie.parent = None


def _int(x: int) -> int:
    """A register narrowed to a C int (pid_t)."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x
