"""epoll: fs/eventpoll.c (epoll_create1(2), epoll_ctl(2), epoll_wait(2),
epoll_pwait(2), epoll_pwait2(2): do_epoll_create(), do_epoll_ctl(), ep_insert(),
ep_modify(), ep_remove(), do_epoll_wait(), ep_poll(), ep_send_events(),
ep_eventpoll_poll()).

An epoll file is an anon-inode file ("anon_inode:[eventpoll]") over a struct
eventpoll: its watches (struct epitem), keyed by the watched file and the fd it was
added by (ep_find()), each with the events asked for and the user's data.

Readiness. The kernel puts a watch on its ready list when the watched file wakes its
wait queue with a matching event (ep_poll_callback()), and ep_send_events() polls
each listed watch again. The model has no wait queue callbacks: a watch is ready when
its file's events (vfs_poll()) match; a level-triggered one stays so, an
edge-triggered one (EPOLLET) is reported again only once its file has woken its
waiters since (PollableFile.generation(), a pipe's bytes waiting), or after an
EPOLL_CTL_MOD; EPOLLONESHOT disables a watch once reported, until EPOLL_CTL_MOD.
Sleepers are woken by the scheduler when a watch becomes ready (Block.ready).

A watch goes when its file's last reference does (eventpoll_release()): the model
drops watches of files no longer referenced when it next looks at them.

Deviations: ready watches are reported in the order they were added, not the order
their files woke; an edge-triggered pipe that is written and read back to the same
bytes waiting between two waits is not reported again.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from ..errors import EBADF, EEXIST, EFAULT, EINTR, EINVAL, ELOOP, ENOENT, EPERM, kerr
from ..mm.fault import copy_from_user, copy_to_user
from ..task.sched import Block
from ..task.signal import signal_pending
from ..task.thread import Thread
from ..uapi import O_CLOEXEC, O_RDWR
from .file import FMODE_READ, FMODE_WRITE, S_IFIFO, S_IFREG, File, FileOperations, Inode
from .select import (
    NSEC_PER_MSEC,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLOUT,
    POLLRDNORM,
    TIMESPEC,
    EndTime,
    PollableFile,
    _deadline,
    _expired,
    file_can_poll,
    poll_select_set_timeout,
    restore_user_sigmask,
    set_user_sigmask,
    vfs_poll,
)

#: include/uapi/linux/eventpoll.h
EPOLL_CLOEXEC = O_CLOEXEC
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
#: fs/eventpoll.c: the bits that are epoll's own, not the file's events
EP_PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE
#: the events an EPOLLEXCLUSIVE watch may ask for
EPOLLEXCLUSIVE_OK_BITS = POLLIN | POLLOUT | POLLERR | POLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE
#: struct epoll_event { __u32 events; __u64 data; } __attribute__((packed)) on x86-64
EPOLL_EVENT = struct.Struct("<IQ")
#: the most events one wait may ask for
EP_MAX_EVENTS = 0x7FFFFFFF // EPOLL_EVENT.size
#: how deep epoll files may watch each other
EP_MAX_NESTS = 4
ANON_INODE_DEV = (0x00, 0x0F)
ANON_INODE_INO = 1


class EventpollOps(FileOperations):
    """eventpoll_fops: poll only (no read, write or mmap)."""


EVENTPOLL_OPS = EventpollOps()


@dataclass
class Epitem:
    """struct epitem: a watch of `file` added by `fd`; `events` the events asked for
    and the EP_PRIVATE_BITS (only those once an EPOLLONESHOT watch fired); `data` the
    user's 64 bits; `seen` the file's generation when an EPOLLET watch was last
    reported (None: report it when ready)."""

    fd: int
    file: File
    events: int
    data: int
    seen: int | None = None

    def revents(self) -> int:
        """ep_item_poll(): the file's events among those asked for (0 for a disabled
        or an already reported edge-triggered watch)."""
        mask = vfs_poll(self.file) & self.events & ~EP_PRIVATE_BITS
        if mask and self.events & EPOLLET and self.seen == generation(self.file):
            return 0
        return mask


def generation(file: File) -> int:
    """What changes when the file wakes its waiters (see the module's docstring)."""
    if isinstance(file.private_data, PollableFile):
        return file.private_data.generation()
    if file.inode.kind == S_IFIFO and file.private_data is not None:
        pipe = file.private_data
        return hash((len(pipe.data), pipe.reader.refs == 0, pipe.writer.refs == 0))
    return 0


class EventPoll(PollableFile):
    """struct eventpoll: `items` the watches in the order they were added, keyed by
    (id of the file, fd); every watch's file is referenced but for watches not yet
    dropped (see the module's docstring). `rdllist`: the watches left on the ready list
    by the last ep_send_events() (level-triggered ones reported, at its tail; those
    past maxevents, at its head), each one of `items` or dropped since."""

    def __init__(self) -> None:
        self.items: dict[tuple[int, int], Epitem] = {}
        self.rdllist: list[Epitem] = []

    def live_items(self) -> list[Epitem]:
        """The watches, those of files whose last reference went removed first."""
        for key in [k for k, epi in self.items.items() if epi.file.refs == 0]:
            del self.items[key]
        return list(self.items.values())

    def ready(self) -> list[tuple[Epitem, int]]:
        """The ready watches and their events, in the ready list's order: those on it,
        then those that became ready since, in the order they were added."""
        live = self.live_items()
        listed = [epi for epi in self.rdllist if epi in live]
        ordered = listed + [epi for epi in live if epi not in listed]
        found = ((epi, epi.revents()) for epi in ordered)
        return [(epi, mask) for epi, mask in found if mask]

    def poll(self) -> int:
        """ep_eventpoll_poll(): readable while a watch is ready."""
        return POLLIN | POLLRDNORM if self.ready() else 0

    def generation(self) -> int:
        return hash(tuple((id(epi), mask) for epi, mask in self.ready()))


def is_eventpoll(file: File) -> bool:
    return file.f_op is EVENTPOLL_OPS


def do_epoll_create(task, flags: int) -> int:
    """do_epoll_create(): EINVAL for a flag but EPOLL_CLOEXEC; the file (O_RDWR) on
    the lowest free fd (EMFILE)."""
    flags &= 0xFFFFFFFF
    if flags & ~EPOLL_CLOEXEC:
        raise kerr(EINVAL)
    inode = Inode(ANON_INODE_INO, ANON_INODE_DEV, S_IFREG, EVENTPOLL_OPS, "anon_inode:[eventpoll]")
    inode.mode = 0o600
    file = File(inode, FMODE_READ | FMODE_WRITE, O_RDWR)
    file.private_data = EventPoll()
    (fd,) = task._unused_fds(1)
    task.files[fd] = file.get()
    if flags & EPOLL_CLOEXEC:
        task.close_on_exec.add(fd)
    return fd


def sys_epoll_create(task, size: int) -> int:
    """epoll_create(2): EINVAL for a size not positive (it is otherwise unused)."""
    if _int(size) <= 0:
        raise kerr(EINVAL)
    return do_epoll_create(task, 0)


# --- epoll_ctl(2) ----------------------------------------------------------------------------

def _fdget(task, fd: int) -> File:
    file = task.files.get(_int(fd))
    if file is None:
        raise kerr(EBADF)
    return file


def reaches(ep: EventPoll, target: EventPoll, depth: int = 0) -> bool:
    """ep_loop_check(): whether `target` is ep or watches it through epoll files,
    or the chain is deeper than EP_MAX_NESTS."""
    if target is ep or depth >= EP_MAX_NESTS:
        return True
    return any(reaches(ep, epi.file.private_data, depth + 1)
               for epi in target.live_items() if is_eventpoll(epi.file))


def do_epoll_ctl(task, epfd: int, op: int, fd: int, events: int, data: int) -> int:
    """do_epoll_ctl(): EBADF for either fd not open, EPERM for a file without ->poll,
    EINVAL for epfd not an epoll file or fd being it, for EPOLLEXCLUSIVE with MOD, or
    asking for more than EPOLLEXCLUSIVE_OK_BITS, or on an epoll file; ELOOP for a
    loop; then ADD (EEXIST), DEL, MOD (ENOENT; EINVAL for an EPOLLEXCLUSIVE watch).
    Each watch asks for POLLERR and POLLHUP too."""
    file, target = _fdget(task, epfd), _fdget(task, fd)
    if not file_can_poll(target):
        raise kerr(EPERM)
    if file is target or not is_eventpoll(file):
        raise kerr(EINVAL)
    has_event = op != EPOLL_CTL_DEL
    if has_event and events & EPOLLEXCLUSIVE:
        if op == EPOLL_CTL_MOD:
            raise kerr(EINVAL)
        if op == EPOLL_CTL_ADD and (is_eventpoll(target) or events & ~EPOLLEXCLUSIVE_OK_BITS):
            raise kerr(EINVAL)
    ep: EventPoll = file.private_data
    if op == EPOLL_CTL_ADD and is_eventpoll(target) and reaches(ep, target.private_data):
        raise kerr(ELOOP)
    ep.live_items()
    key = (id(target), _int(fd))
    epi = ep.items.get(key)
    if op == EPOLL_CTL_ADD:
        if epi is not None:
            raise kerr(EEXIST)
        ep.items[key] = Epitem(_int(fd), target, events | POLLERR | POLLHUP, data)
    elif op == EPOLL_CTL_DEL:
        if epi is None:
            raise kerr(ENOENT)
        del ep.items[key]
    elif op == EPOLL_CTL_MOD:
        if epi is None:
            raise kerr(ENOENT)
        if epi.events & EPOLLEXCLUSIVE:
            raise kerr(EINVAL)
        epi.events, epi.data, epi.seen = events | POLLERR | POLLHUP, data, None
    else:
        raise kerr(EINVAL)
    return 0


def sys_epoll_ctl(task, epfd: int, op: int, fd: int, event: int) -> int:
    """epoll_ctl(2): the struct epoll_event (EFAULT) but for EPOLL_CTL_DEL."""
    op = _int(op)
    events = data = 0
    if op != EPOLL_CTL_DEL:
        events, data = EPOLL_EVENT.unpack(copy_from_user(task, event, EPOLL_EVENT.size))
    return do_epoll_ctl(task, epfd, op, fd, events, data)


# --- epoll_wait(2), epoll_pwait(2), epoll_pwait2(2) ---------------------------------------

def ep_send_events(thread: Thread, ep: EventPoll, uevents: int, maxevents: int) -> int:
    """ep_send_events(): up to maxevents ready watches written as struct epoll_event;
    each written EPOLLET watch marked seen, EPOLLONESHOT one disabled, level-triggered
    one put back at the ready list's tail, the watches not written left at its head.
    Returns how many were written; -EFAULT if the first cannot be."""
    ready = ep.ready()
    requeued: list[Epitem] = []
    count = 0
    for epi, mask in ready[:maxevents]:
        try:
            copy_to_user(thread.process, uevents + count * EPOLL_EVENT.size, EPOLL_EVENT.pack(mask, epi.data))
        except OSError:
            break
        count += 1
        if epi.events & EPOLLONESHOT:
            epi.events &= EP_PRIVATE_BITS
        elif epi.events & EPOLLET:
            epi.seen = generation(epi.file)
        else:
            requeued.append(epi)
    ep.rdllist = [epi for epi, _ in ready[count:]] + requeued
    return count or (-EFAULT if ready[:maxevents] else 0)


def do_epoll_wait(thread: Thread, epfd: int, uevents: int, maxevents: int, end: EndTime,
                  finish: Callable[[int], int]) -> int:
    """do_epoll_wait() and ep_poll(): EINVAL for maxevents not in 1..EP_MAX_EVENTS,
    EFAULT for an events array outside user space, EBADF, EINVAL for epfd not an epoll
    file; the ready events now, or with none and time left the caller sleeps until one
    is ready (the call made again), the timeout (0) or a signal (EINTR, never
    restarted)."""
    maxevents = _int(maxevents)
    if not 0 < maxevents <= EP_MAX_EVENTS:
        return finish(-EINVAL)
    if uevents + maxevents * EPOLL_EVENT.size > thread.process.kernel.task_size:
        return finish(-EFAULT)
    file = thread.process.files.get(_int(epfd))
    if file is None:
        return finish(-EBADF)
    if not is_eventpoll(file):
        return finish(-EINVAL)
    ep: EventPoll = file.private_data
    count = ep_send_events(thread, ep, uevents, maxevents)
    if count or _expired(thread, end):
        return finish(count)
    if signal_pending(thread):
        return finish(-EINTR)
    raise Block(("epoll", thread.tid), deadline=_deadline(thread, end),
                on_timeout=partial(finish, 0), on_signal=partial(finish, -EINTR),
                ready=lambda: bool(ep.ready()))


def _ms_timeout(thread: Thread, ms: int) -> EndTime:
    """ep_timeout_to_timespec(): a negative timeout waits forever."""
    ms = _int(ms)
    return None if ms < 0 else poll_select_set_timeout(thread, ms // 1000, ms % 1000 * NSEC_PER_MSEC)


def _pwait_finish(thread: Thread, ret: int) -> int:
    """restore_saved_sigmask_unless(ret == -EINTR): the mask of the call stays for the
    signal that ended it."""
    if ret != -EINTR:
        restore_user_sigmask(thread)
    return ret


def sys_epoll_wait(thread: Thread, args: Sequence[int]) -> int:
    """epoll_wait(2) (epfd, events, maxevents, timeout in ms)."""
    epfd, uevents, maxevents, timeout = args[:4]
    return do_epoll_wait(thread, epfd, uevents, maxevents, _ms_timeout(thread, timeout), _identity)


def sys_epoll_pwait(thread: Thread, args: Sequence[int]) -> int:
    """epoll_pwait(2): epoll_wait(2) with the signal mask at sigmask for the call."""
    epfd, uevents, maxevents, timeout, umask, sigsetsize = args
    end = _ms_timeout(thread, timeout)
    set_user_sigmask(thread, umask, sigsetsize)
    return do_epoll_wait(thread, epfd, uevents, maxevents, end, partial(_pwait_finish, thread))


def sys_epoll_pwait2(thread: Thread, args: Sequence[int]) -> int:
    """epoll_pwait2(2): epoll_pwait(2) with a struct timespec timeout (NULL: none;
    EFAULT, EINVAL), never written back."""
    epfd, uevents, maxevents, tsp, umask, sigsetsize = args
    end = None
    if tsp:
        sec, nsec = TIMESPEC.unpack(copy_from_user(thread.process, tsp, TIMESPEC.size))
        end = poll_select_set_timeout(thread, sec, nsec)
    set_user_sigmask(thread, umask, sigsetsize)
    return do_epoll_wait(thread, epfd, uevents, maxevents, end, partial(_pwait_finish, thread))


def _identity(ret: int) -> int:
    return ret


def _int(x: int) -> int:
    """A register narrowed to a C int."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


#: the calls of this module, for the x86-64 entry's THREAD_CALLS
EPOLL_CALLS: dict[str, Callable[[Thread, Sequence[int]], int]] = {
    "epoll_create": lambda t, a: sys_epoll_create(t.process, a[0]),
    "epoll_create1": lambda t, a: do_epoll_create(t.process, a[0]),
    "epoll_ctl": lambda t, a: sys_epoll_ctl(t.process, a[0], a[1], a[2], a[3]),
    "epoll_wait": sys_epoll_wait,
    "epoll_pwait": sys_epoll_pwait,
    "epoll_pwait2": sys_epoll_pwait2,
}
