"""Event counters: fs/eventfd.c (eventfd(2), eventfd2(2): do_eventfd(),
eventfd_read(), eventfd_write(), eventfd_poll()).

An eventfd is an anon-inode file ("anon_inode:[eventfd]") over a 64-bit counter
(struct eventfd_ctx). A read takes the counter (or 1 of it under EFD_SEMAPHORE) and
waits while it is 0; a write adds to it and waits while the sum would reach
ULLONG_MAX. Both move exactly 8 bytes (EINVAL for less; more is not looked at).
Sleepers are woken by the scheduler when the counter lets them go (Block.ready).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from ..errors import EAGAIN, EINVAL, kerr
from ..task.sched import Block
from ..task.thread import Thread
from ..uapi import O_CLOEXEC, O_NONBLOCK, O_RDWR
from .file import FMODE_READ, FMODE_WRITE, S_IFREG, File, FileOperations, Inode
from .select import POLLERR, POLLIN, POLLOUT, PollableFile

#: include/linux/eventfd.h
EFD_SEMAPHORE = 1
EFD_CLOEXEC = O_CLOEXEC
EFD_NONBLOCK = O_NONBLOCK
EFD_FLAGS_SET = EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK
ULLONG_MAX = (1 << 64) - 1
COUNT = struct.Struct("<Q")
#: fs/anon_inodes.c: the one anon inode's device (anon_inodefs)
ANON_INODE_DEV = (0x00, 0x0F)
ANON_INODE_INO = 1


class EventfdOps(FileOperations):
    """eventfd_fops: read, write and poll (served by this module), no mmap."""


EVENTFD_OPS = EventfdOps()


class EventfdCtx(PollableFile):
    """struct eventfd_ctx: `count` in 0..ULLONG_MAX-1 (a write never makes it
    ULLONG_MAX); `semaphore`: EFD_SEMAPHORE."""

    def __init__(self, count: int, semaphore: bool) -> None:
        self.count = count
        self.semaphore = semaphore

    def poll(self) -> int:
        """eventfd_poll(): readable with a count, writable while 1 more fits."""
        mask = POLLIN if self.count > 0 else 0
        if self.count == ULLONG_MAX:
            mask |= POLLERR
        if ULLONG_MAX - 1 > self.count:
            mask |= POLLOUT
        return mask

    def generation(self) -> int:
        return self.count


def is_eventfd(file: File) -> bool:
    return file.f_op is EVENTFD_OPS


def do_eventfd(task, count: int, flags: int) -> int:
    """do_eventfd(): EINVAL for an unknown flag; the file (O_RDWR, O_NONBLOCK kept) on
    the lowest free fd (EMFILE), close-on-exec under EFD_CLOEXEC."""
    count &= 0xFFFFFFFF
    flags &= 0xFFFFFFFF
    if flags & ~EFD_FLAGS_SET:
        raise kerr(EINVAL)
    inode = Inode(ANON_INODE_INO, ANON_INODE_DEV, S_IFREG, EVENTFD_OPS, "anon_inode:[eventfd]")
    inode.mode = 0o600
    file = File(inode, FMODE_READ | FMODE_WRITE, O_RDWR | (flags & EFD_NONBLOCK))
    file.private_data = EventfdCtx(count, bool(flags & EFD_SEMAPHORE))
    (fd,) = task._unused_fds(1)
    task.files[fd] = file.get()
    if flags & EFD_CLOEXEC:
        task.close_on_exec.add(fd)
    return fd


def eventfd_read(file: File, count: int) -> bytes:
    """eventfd_read(): EINVAL for fewer than 8 bytes; with the counter 0, EAGAIN under
    O_NONBLOCK, else the reader sleeps until it is not; then the counter (1 under
    EFD_SEMAPHORE) taken from it."""
    ctx: EventfdCtx = file.private_data
    if count < COUNT.size:
        raise kerr(EINVAL)
    if ctx.count == 0:
        if file.f_flags & O_NONBLOCK:
            raise kerr(EAGAIN)
        raise Block(("eventfd", id(ctx)), ready=lambda: ctx.count > 0)
    taken = 1 if ctx.semaphore else ctx.count
    ctx.count -= taken
    return COUNT.pack(taken)


def eventfd_write(file: File, data: bytes) -> int:
    """eventfd_write(): EINVAL for fewer than 8 bytes or the value ULLONG_MAX; while
    the sum would not stay below ULLONG_MAX, EAGAIN under O_NONBLOCK, else the writer
    sleeps; then the value added. Returns 8."""
    ctx: EventfdCtx = file.private_data
    if len(data) < COUNT.size:
        raise kerr(EINVAL)
    (value,) = COUNT.unpack_from(data)
    if value == ULLONG_MAX:
        raise kerr(EINVAL)
    if ULLONG_MAX - ctx.count <= value:
        if file.f_flags & O_NONBLOCK:
            raise kerr(EAGAIN)
        raise Block(("eventfd", id(ctx)), ready=lambda: ULLONG_MAX - ctx.count > value)
    ctx.count += value
    return COUNT.size


#: the calls of this module, for the x86-64 entry's THREAD_CALLS
EVENTFD_CALLS: dict[str, Callable[[Thread, Sequence[int]], int]] = {
    "eventfd": lambda t, a: do_eventfd(t.process, a[0], 0),
    "eventfd2": lambda t, a: do_eventfd(t.process, a[0], a[1]),
}
