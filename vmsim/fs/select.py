"""Waiting for file descriptors: fs/select.c (poll(2), ppoll(2), select(2), pselect6(2):
do_sys_poll(), do_poll(), core_sys_select(), do_select(), poll_select_finish()) and
each file's ->poll as vfs_poll() asks it (fs/pipe.c pipe_poll() for pipes).

What a file answers: a pipe's ends their state (bytes waiting, a writer or reader
left); the stdio files (vmsim.fs.stdio) the host's poll(2) of their fd at this moment;
every other file of the model (regular files, directories, devices, procfs files) has
no ->poll and is always ready: DEFAULT_POLLMASK.

Waiting. With nothing ready and a timeout not zero, the caller sleeps (Block) until a
file it asked about becomes ready (the call is then made again and finds it), the
timeout passes on the virtual clock (0: the revents or fd sets written empty), or a
signal comes: -ERESTARTNOHAND, which poll(2) turns into -ERESTART_RESTARTBLOCK with the
time left in the restart block (do_restart_poll()), and after which select(2),
pselect6(2) and ppoll(2) write the time left to the caller's timeout
(poll_select_finish()), restarting with it when no handler ran. ppoll and pselect6
install their signal mask for the call (set_user_sigmask()); a signal that ends the
wait finds it installed, the old mask back after its handler (TS_RESTORE_SIGMASK).

Deviation: a call made again because a file became ready that is no longer ready when
the caller runs (another thread took the bytes) waits its whole timeout again; the
kernel goes on to the original end. The host's stdio files are looked at while the
machine runs: a machine whose only waiter polls a host stream that never becomes ready
has nothing to wait for (vmsim.run.Machine reports a deadlock).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from functools import partial

from ..errors import EBADF, EFAULT, EINTR, EINVAL, ERESTART_RESTARTBLOCK, ERESTARTNOHAND, kerr
from ..mm.fault import copy_from_user, copy_to_user
from ..task.sched import Block
from ..task.signal import set_current_blocked, signal_pending
from ..task.thread import Thread
from ..uapi import RLIMIT_NOFILE
from .file import FMODE_READ, FMODE_WRITE, S_IFIFO, File
from .stdio import is_stdio

#: include/uapi/asm-generic/poll.h (x86-64 uses the generic values: mangle_poll() and
#: demangle_poll() are the identity)
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLMSG, POLLRDHUP = 0x40, 0x80, 0x100, 0x200, 0x400, 0x2000
#: include/linux/poll.h: what a file without ->poll reports
DEFAULT_POLLMASK = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM
#: fs/select.c: the events that make an fd ready for each of select's three sets
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI
#: struct pollfd: int fd; short events; short revents
POLLFD = struct.Struct("<ihh")
REVENTS_OFFSET = 6
#: struct __kernel_timespec, struct __kernel_old_timeval
TIMESPEC = struct.Struct("<qq")
TIMEVAL = struct.Struct("<qq")
#: pselect6's sixth argument: struct sigset_argpack { sigset_t *p; size_t size; }
SIGSET_ARGPACK = struct.Struct("<QQ")
SIGSET = struct.Struct("<Q")
NSEC_PER_SEC, NSEC_PER_USEC, NSEC_PER_MSEC, USEC_PER_SEC = 1_000_000_000, 1000, 1_000_000, 1_000_000
#: include/uapi/linux/personality.h STICKY_TIMEOUTS: select's timeout is never updated
STICKY_TIMEOUTS = 0x4000000
#: include/linux/fdtable.h NR_OPEN_DEFAULT: the fd table's first size (BITS_PER_LONG)
NR_OPEN_DEFAULT = 64
#: fs/file.c alloc_fdtable(): a table grows by 1024-byte pages of file pointers
FDTABLE_STEP = 1024 // 8
#: what poll_select_finish() writes the time left as
PT_TIMEVAL, PT_TIMESPEC = "timeval", "timespec"

#: a timeout's end (poll_select_set_timeout()): CLOCK_MONOTONIC ns on the virtual clock;
#: 0 for a zero timeout (never wait, nothing written back); None for none (wait forever)
EndTime = int | None
#: what a caller makes of do_sys_poll()'s or core_sys_select()'s result (a value or
#: -errno): the syscall's value
Finish = Callable[[int], int]


# --- what a file answers (vfs_poll()) ---------------------------------------------------

class PollableFile:
    """The private_data of an anon-inode file with a ->poll (vmsim.fs.eventfd,
    vmsim.fs.eventpoll): it answers vfs_poll() itself."""

    def poll(self) -> int:
        """->poll: the file's events now."""
        raise NotImplementedError

    def generation(self) -> int:
        """A value that changes whenever the file wakes its waiters (an edge-triggered
        epoll watch reports again when it has changed)."""
        raise NotImplementedError


def file_can_poll(file: File) -> bool:
    """file_can_poll(): the file has a ->poll: pipes, the host's streams the host's
    epoll takes, eventfd and epoll files; the model's other files have none."""
    if is_stdio(file):
        return file.private_data.can_poll()
    return file.inode.kind == S_IFIFO or isinstance(file.private_data, PollableFile)


def vfs_poll(file: File) -> int:
    """vfs_poll(): the events of the file now."""
    if isinstance(file.private_data, PollableFile):
        return file.private_data.poll()
    if is_stdio(file):
        return file.private_data.poll()
    if file.inode.kind == S_IFIFO:
        return pipe_poll(file)
    return DEFAULT_POLLMASK


def pipe_poll(file: File) -> int:
    """fs/pipe.c pipe_poll(): for the read end, readable with bytes waiting and POLLHUP
    once no writer is left; for the write end, writable (the model's pipe never fills)
    and POLLERR once no reader is left."""
    pipe = file.private_data
    mask = 0
    if file.f_mode & FMODE_READ:
        if pipe is not None and pipe.data:
            mask |= POLLIN | POLLRDNORM
        if pipe is None or pipe.writer.refs == 0:
            mask |= POLLHUP
    if file.f_mode & FMODE_WRITE:
        mask |= POLLOUT | POLLWRNORM
        if pipe is None or pipe.reader.refs == 0:
            mask |= POLLERR
    return mask


# --- timeouts ----------------------------------------------------------------------------

def _monotonic(thread: Thread) -> int:
    clock = thread.process.kernel.clock
    return clock.boot_uptime + clock.elapsed


def poll_select_set_timeout(thread: Thread, sec: int, nsec: int) -> int:
    """poll_select_set_timeout(): the end of a timeout of sec, nsec from now; 0 for a
    zero one. EINVAL for a negative second or a nanosecond out of range."""
    if sec < 0 or not 0 <= nsec < NSEC_PER_SEC:
        raise kerr(EINVAL)
    if not sec and not nsec:
        return 0
    return _monotonic(thread) + sec * NSEC_PER_SEC + nsec


def _deadline(thread: Thread, end: EndTime) -> int | None:
    """The scheduler's deadline (kernel.clock.elapsed) of an end time."""
    return None if end is None else end - thread.process.kernel.clock.boot_uptime


def _expired(thread: Thread, end: EndTime) -> bool:
    """The timeout allows no waiting: zero, or its end has passed."""
    return end == 0 or (end is not None and end <= _monotonic(thread))


def poll_select_finish(thread: Thread, end: EndTime, uaddr: int, kind: str, ret: int) -> int:
    """poll_select_finish(): the mask set_user_sigmask() installed put back unless a
    signal is to see it (-ERESTARTNOHAND); then, but for a zero timeout or
    STICKY_TIMEOUTS, the time left written to the caller's timeout (a timeval or a
    timespec). A timeout that cannot be written, or STICKY_TIMEOUTS, makes
    -ERESTARTNOHAND -EINTR: the call cannot be restarted with the time left."""
    if ret != -ERESTARTNOHAND:
        restore_user_sigmask(thread)
    if not uaddr:
        return ret
    if not thread.process.persona & STICKY_TIMEOUTS:
        if end == 0:
            return ret
        assert end is not None                  # a timeout was given: uaddr is its address
        left = max(end - _monotonic(thread), 0)
        sec, nsec = divmod(left, NSEC_PER_SEC)
        data = TIMEVAL.pack(sec, nsec // NSEC_PER_USEC) if kind == PT_TIMEVAL else TIMESPEC.pack(sec, nsec)
        try:
            copy_to_user(thread.process, uaddr, data)
            return ret
        except OSError:
            pass
    return -EINTR if ret == -ERESTARTNOHAND else ret


# --- the signal mask of ppoll(2) and pselect6(2) ------------------------------------------

def set_user_sigmask(thread: Thread, umask: int, sigsetsize: int) -> None:
    """set_user_sigmask(): the mask at umask (none: NULL) installed for the call, the old
    one kept to be restored (TS_RESTORE_SIGMASK); EINVAL for a size but 8, EFAULT. A
    call made again after its sleep finds its mask installed already and keeps it."""
    if not umask:
        return
    if sigsetsize != SIGSET.size:
        raise kerr(EINVAL)
    (mask,) = SIGSET.unpack(copy_from_user(thread.process, umask, SIGSET.size))
    if thread.restore_sigmask:
        return
    thread.saved_sigmask = thread.sigmask
    set_current_blocked(thread, mask)
    thread.restore_sigmask = True


def restore_user_sigmask(thread: Thread) -> None:
    """restore_saved_sigmask(): the mask before set_user_sigmask() back."""
    if thread.restore_sigmask:
        thread.restore_sigmask = False
        set_current_blocked(thread, thread.saved_sigmask)


# --- poll(2), ppoll(2) ---------------------------------------------------------------------

def do_pollfd(thread: Thread, fd: int, events: int) -> int:
    """do_pollfd(): nothing for a negative fd, POLLNVAL for one not open, else the file's
    events among those asked for, POLLERR and POLLHUP."""
    if fd < 0:
        return 0
    file = thread.process.files.get(fd)
    if file is None:
        return POLLNVAL
    return vfs_poll(file) & ((events & 0xFFFF) | POLLERR | POLLHUP)


def do_sys_poll(thread: Thread, ufds: int, nfds: int, end: EndTime, finish: Finish) -> int:
    """do_sys_poll() and do_poll(): EINVAL for more fds than RLIMIT_NOFILE; the array
    (EFAULT); each entry's revents (do_pollfd()); if any is ready, or the timeout allows
    no wait, the revents written back (EFAULT) and the number of entries ready; else the
    caller waits (see the module's docstring). `finish` is what the caller makes of the
    result, now or when the wait ends."""
    process = thread.process
    if nfds > process.rlimit(RLIMIT_NOFILE):
        return finish(-EINVAL)
    try:
        raw = copy_from_user(process, ufds, nfds * POLLFD.size) if nfds else b""
    except OSError:
        return finish(-EFAULT)
    entries = [POLLFD.unpack_from(raw, POLLFD.size * i)[:2] for i in range(nfds)]
    revents = [do_pollfd(thread, fd, events) for fd, events in entries]
    count = sum(1 for r in revents if r)
    if count or _expired(thread, end):
        return finish(_put_revents(thread, ufds, revents, count))
    if signal_pending(thread):
        return finish(_put_revents(thread, ufds, revents, -ERESTARTNOHAND))
    raise Block(("poll", thread.tid), deadline=_deadline(thread, end),
                on_timeout=lambda: finish(_put_revents(thread, ufds, revents, 0)),
                on_signal=lambda: finish(_put_revents(thread, ufds, revents, -ERESTARTNOHAND)),
                ready=lambda: any(do_pollfd(thread, fd, events) for fd, events in entries))


def _put_revents(thread: Thread, ufds: int, revents: list[int], ret: int) -> int:
    """do_sys_poll()'s copy back: each entry's revents; -EFAULT if one cannot be
    written, else ret."""
    try:
        for i, mask in enumerate(revents):
            copy_to_user(thread.process, ufds + POLLFD.size * i + REVENTS_OFFSET, struct.pack("<H", mask))
    except OSError:
        return -EFAULT
    return ret


def sys_poll(thread: Thread, args: Sequence[int]) -> int:
    """poll(2) (ufds, nfds, timeout_msecs): a negative timeout waits forever. Interrupted
    by a signal, -ERESTART_RESTARTBLOCK: restart_syscall(2) polls again to the same end
    (do_restart_poll())."""
    ufds, nfds, timeout = args[0], args[1] & 0xFFFFFFFF, _int(args[2])
    end = poll_select_set_timeout(thread, timeout // 1000, timeout % 1000 * NSEC_PER_MSEC) \
        if timeout >= 0 else None
    return do_sys_poll(thread, ufds, nfds, end, partial(_poll_restart, thread, ufds, nfds, end))


def _poll_restart(thread: Thread, ufds: int, nfds: int, end: EndTime, ret: int) -> int:
    """sys_poll()'s end: -ERESTARTNOHAND becomes -ERESTART_RESTARTBLOCK with the restart
    block set to do_restart_poll()."""
    if ret != -ERESTARTNOHAND:
        return ret
    thread.restart_block = partial(do_restart_poll, ufds=ufds, nfds=nfds, end=end)
    return -ERESTART_RESTARTBLOCK


def do_restart_poll(thread: Thread, ufds: int, nfds: int, end: EndTime) -> int:
    """do_restart_poll(): poll(2) again, to the end it had."""
    return do_sys_poll(thread, ufds, nfds, end, partial(_poll_restart, thread, ufds, nfds, end))


def sys_ppoll(thread: Thread, args: Sequence[int]) -> int:
    """ppoll(2) (ufds, nfds, tsp, sigmask, sigsetsize): the timeout (NULL: none; EFAULT,
    EINVAL), the mask for the call (set_user_sigmask()), then poll; the time left written
    back (poll_select_finish())."""
    ufds, nfds, tsp, umask, sigsetsize = args
    end = None
    if tsp:
        sec, nsec = TIMESPEC.unpack(copy_from_user(thread.process, tsp, TIMESPEC.size))
        end = poll_select_set_timeout(thread, sec, nsec)
    set_user_sigmask(thread, umask, sigsetsize)
    finish = partial(poll_select_finish, thread, end, tsp, PT_TIMESPEC)
    return do_sys_poll(thread, ufds, nfds & 0xFFFFFFFF, end, finish)


# --- select(2), pselect6(2) -----------------------------------------------------------------

def max_fds(thread: Thread) -> int:
    """files_fdtable()->max_fds: NR_OPEN_DEFAULT slots, grown by alloc_fdtable() (a power
    of two of 128-slot steps) to hold the highest fd open. The model keeps no table: one
    grown for an fd since closed reads as smaller."""
    top = max(thread.process.files, default=0)
    if top < NR_OPEN_DEFAULT:
        return NR_OPEN_DEFAULT
    steps = (top + 1) // FDTABLE_STEP + 1
    return (1 << (steps - 1).bit_length()) * FDTABLE_STEP


def fds_bytes(n: int) -> int:
    """FDS_BYTES(): the bytes of an fd_set of n bits, in whole longs."""
    return (n + 63) // 64 * 8


def get_fd_set(thread: Thread, n: int, ufdset: int) -> int:
    """get_fd_set(): the set's first FDS_BYTES(n) bytes as bits (NULL: empty); EFAULT."""
    if not ufdset:
        return 0
    return int.from_bytes(copy_from_user(thread.process, ufdset, fds_bytes(n)), "little")


def core_sys_select(thread: Thread, n: int, sets: tuple[int, int, int], end: EndTime,
                    finish: Finish) -> int:
    """core_sys_select() and do_select(): EINVAL for a negative n, n cut to the fd table's
    size; the three sets (EFAULT); EBADF for a set fd not open (max_select_fd()); each
    fd's events (vfs_poll()) against POLLIN_SET, POLLOUT_SET, POLLEX_SET. If any is
    ready, or the timeout allows no wait, the sets written back with the ready fds
    (EFAULT) and how many there are (an fd in two sets counts twice); else the caller
    waits (see the module's docstring); a signal leaves the sets as they were."""
    if n < 0:
        return finish(-EINVAL)
    n = min(n, max_fds(thread))
    try:
        inp, outp, exp = (get_fd_set(thread, n, uset) & ((1 << n) - 1) for uset in sets)
    except OSError:
        return finish(-EFAULT)
    wanted = (inp, outp, exp)
    files = thread.process.files
    if any(bits >> fd & 1 and fd not in files for bits in wanted for fd in range(n)):
        return finish(-EBADF)
    ready = do_select(thread, n, wanted)
    count = sum(bin(bits).count("1") for bits in ready)
    if count or _expired(thread, end):
        return finish(_put_fd_sets(thread, n, sets, ready, count))
    if signal_pending(thread):
        return finish(-ERESTARTNOHAND)
    empty = (0, 0, 0)
    raise Block(("select", thread.tid), deadline=_deadline(thread, end),
                on_timeout=lambda: finish(_put_fd_sets(thread, n, sets, empty, 0)),
                on_signal=partial(finish, -ERESTARTNOHAND),
                ready=lambda: any(do_select(thread, n, wanted)))


def do_select(thread: Thread, n: int, wanted: tuple[int, int, int]) -> tuple[int, int, int]:
    """do_select()'s pass over the fds: the ready ones of each set (an fd closed since
    the sets were checked is ready for none: select_poll_one()'s EPOLLNVAL)."""
    files = thread.process.files
    ready = [0, 0, 0]
    for fd in range(n):
        bit = 1 << fd
        file = files.get(fd)
        if not (wanted[0] | wanted[1] | wanted[2]) & bit or file is None:
            continue
        mask = vfs_poll(file)
        for i, events in enumerate((POLLIN_SET, POLLOUT_SET, POLLEX_SET)):
            if mask & events and wanted[i] & bit:
                ready[i] |= bit
    return ready[0], ready[1], ready[2]


def _put_fd_sets(thread: Thread, n: int, sets: tuple[int, int, int], ready: tuple[int, int, int],
                 ret: int) -> int:
    """set_fd_set() of each set given: its FDS_BYTES(n) bytes; -EFAULT if one cannot be
    written, else ret."""
    try:
        for uset, bits in zip(sets, ready, strict=True):
            if uset:
                copy_to_user(thread.process, uset, bits.to_bytes(fds_bytes(n), "little"))
    except OSError:
        return -EFAULT
    return ret


def sys_select(thread: Thread, args: Sequence[int]) -> int:
    """select(2) (n, inp, outp, exp, tvp): kern_select(): the timeval (NULL: none;
    EFAULT; microseconds past a second carried, EINVAL for a negative time), then
    core_sys_select(); the time left written back (poll_select_finish())."""
    n, inp, outp, exp, tvp = args
    end = None
    if tvp:
        sec, usec = TIMEVAL.unpack(copy_from_user(thread.process, tvp, TIMEVAL.size))
        end = poll_select_set_timeout(thread, sec + _cdiv(usec, USEC_PER_SEC),
                                      _crem(usec, USEC_PER_SEC) * NSEC_PER_USEC)
    finish = partial(poll_select_finish, thread, end, tvp, PT_TIMEVAL)
    return core_sys_select(thread, _int(n), (inp, outp, exp), end, finish)


def sys_pselect6(thread: Thread, args: Sequence[int]) -> int:
    """pselect6(2) (n, inp, outp, exp, tsp, sig): the sigset_argpack at sig (EFAULT), the
    timespec (EFAULT, EINVAL), the mask for the call (set_user_sigmask()), then
    core_sys_select(); the time left written back (poll_select_finish())."""
    n, inp, outp, exp, tsp, sig = args
    umask, sigsetsize = SIGSET_ARGPACK.unpack(copy_from_user(thread.process, sig, SIGSET_ARGPACK.size)) \
        if sig else (0, 0)
    end = None
    if tsp:
        sec, nsec = TIMESPEC.unpack(copy_from_user(thread.process, tsp, TIMESPEC.size))
        end = poll_select_set_timeout(thread, sec, nsec)
    set_user_sigmask(thread, umask, sigsetsize)
    finish = partial(poll_select_finish, thread, end, tsp, PT_TIMESPEC)
    return core_sys_select(thread, _int(n), (inp, outp, exp), end, finish)


def _int(x: int) -> int:
    """A register narrowed to a C int."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _cdiv(a: int, b: int) -> int:
    """C's a / b: truncated toward zero."""
    q = abs(a) // b
    return q if a >= 0 else -q


def _crem(a: int, b: int) -> int:
    """C's a % b: the sign of a."""
    return a - _cdiv(a, b) * b


#: the calls of this module, for the x86-64 entry's THREAD_CALLS
POLL_CALLS: dict[str, Callable[[Thread, Sequence[int]], int]] = {
    "poll": sys_poll, "ppoll": sys_ppoll, "select": sys_select, "pselect6": sys_pselect6,
}
