"""The standard streams of a program the model runs: fds 0, 1 and 2 connected to this
machine's.

In Linux a program inherits its stdin, stdout and stderr from its parent: a terminal
(drivers/tty/tty_io.c tty_fops), a pipe or a file. Under `vmsim run` the parent is the
host process running the model, so each of the three is a model file whose reads and
writes go to a host file descriptor (the CLI's own, or a file given for stdin), and
whose fstat(2) and terminal ioctls are the host's answers for that descriptor, so
glibc's stdio picks the buffering it picks natively (isatty() is ioctl(TCGETS)).

    install_stdio(process, HostStream(0), HostStream(1), HostStream(2))
"""

from __future__ import annotations

import fcntl
import os
import select
import stat

from ..errors import ENOTTY, kerr
from ..mm.fault import copy_to_user
from ..uapi import O_ACCMODE, O_RDONLY, O_RDWR, O_WRONLY
from .file import FMODE_READ, FMODE_WRITE, S_IFCHR, S_IFDIR, S_IFIFO, S_IFREG, File, Inode
from .vfs import NoMmapOps

#: include/uapi/asm-generic/ioctls.h: the terminal's attributes (struct termios, 36
#: bytes on x86-64: four tcflag_t, c_line, c_cc[19]) and its window size (struct
#: winsize: four unsigned shorts)
TCGETS = 0x5401
TIOCGWINSZ = 0x5413
#: the most one read of a host stream asks the host for
READ_CHUNK = 1 << 20
#: the bytes each read-only terminal ioctl the model forwards puts at its argument
TTY_QUERIES = {TCGETS: 36, TIOCGWINSZ: 8}
#: the events a host fd is asked for when a program polls its stdio file (POLLERR,
#: POLLHUP and POLLNVAL come unasked)
POLL_EVENTS = (select.POLLIN | select.POLLPRI | select.POLLOUT | select.POLLRDNORM
               | select.POLLRDBAND | select.POLLWRNORM | select.POLLWRBAND | select.POLLRDHUP)


class HostStream:
    """A host file descriptor a stdio file reads or writes: `fd`, open for as long as
    the model uses it (the caller owns it and closes it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, count: int) -> bytes:
        """read(2) of the host fd: up to count bytes, at most READ_CHUNK (a short count,
        as a terminal or pipe gives; the buffer is not allocated for a huge count), b""
        at its end."""
        return os.read(self.fd, min(count, READ_CHUNK))

    def write(self, data: bytes) -> int:
        """write(2) of all of data to the host fd. Returns len(data)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        return len(data)

    def pread(self, count: int, pos: int) -> bytes:
        """pread(2) of the host fd (a regular file): up to count bytes at pos."""
        return os.pread(self.fd, min(count, READ_CHUNK), pos)

    def pwrite(self, data: bytes, pos: int) -> int:
        """pwrite(2) of all of data at pos of the host fd (a regular file)."""
        done = 0
        while done < len(data):
            done += os.pwrite(self.fd, data[done:], pos + done)
        return done

    def tell(self) -> int:
        """The host fd's file position."""
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def seek(self, pos: int) -> None:
        """Move the host fd's file position to pos."""
        os.lseek(self.fd, pos, os.SEEK_SET)

    def poll(self) -> int:
        """The host's poll(2) answer for the fd at this moment (no waiting): its events of
        POLL_EVENTS, POLLERR, POLLHUP."""
        poller = select.poll()
        poller.register(self.fd, POLL_EVENTS)
        ready = poller.poll(0)
        return ready[0][1] if ready else 0

    def can_poll(self) -> bool:
        """file_can_poll() of the host's file: whether the host's epoll takes the fd
        (EPERM for regular files and /dev/null: no ->poll)."""
        with select.epoll() as ep:
            try:
                ep.register(self.fd, 0)
            except OSError:
                return False
        return True

    def fstat(self) -> os.stat_result:
        return os.fstat(self.fd)

    def tty_query(self, cmd: int) -> bytes:
        """The host terminal's answer to one of TTY_QUERIES; ENOTTY when the fd is not a
        terminal, as the host answers."""
        try:
            return fcntl.ioctl(self.fd, cmd, bytes(TTY_QUERIES[cmd]))
        except OSError as err:
            raise kerr(err.errno or ENOTTY) from None


class StdioOps(NoMmapOps):
    """The file operations of a stdio file (file.private_data: its HostStream): no
    ->mmap; the terminal ioctls a program asks to learn what its stream is (TCGETS,
    TIOCGWINSZ) answered by the host; every other command, and both of these on a
    stream that is not a terminal, ENOTTY, as tty_ioctl() and a pipe or file answer.
    The model changes nothing of the host terminal."""

    def unlocked_ioctl(self, task, file, cmd, arg):
        if cmd not in TTY_QUERIES:
            raise kerr(ENOTTY)
        copy_to_user(task, arg, file.private_data.tty_query(cmd))
        return 0


STDIO_OPS = StdioOps()
#: include/linux/fs.h OPEN_FMODE(): f_mode of an access mode
_FMODE = {O_RDONLY: FMODE_READ, O_WRONLY: FMODE_WRITE, O_RDWR: FMODE_READ | FMODE_WRITE,
          O_ACCMODE: 0}


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return S_IFCHR
    if stat.S_ISFIFO(mode):
        return S_IFIFO
    return S_IFDIR if stat.S_ISDIR(mode) else S_IFREG


def stdio_file(stream: HostStream) -> File:
    """A model file for the host stream: an inode of the host fd's type and identity
    (dev, ino), named as the host's /proc/self/fd link names it, with the host fd's
    access mode and status flags (F_GETFL)."""
    st = stream.fstat()
    try:
        name = os.readlink(f"/proc/self/fd/{stream.fd}")
    except OSError:
        name = f"host:[{stream.fd}]"
    inode = Inode(st.st_ino, (os.major(st.st_dev), os.minor(st.st_dev)), _kind(st.st_mode),
                  STDIO_OPS, name)
    inode.mode = stat.S_IMODE(st.st_mode)
    flags = fcntl.fcntl(stream.fd, fcntl.F_GETFL)
    file = File(inode, _FMODE[flags & O_ACCMODE], flags)
    file.private_data = stream
    return file


def install_stdio(task, stdin: HostStream, stdout: HostStream, stderr: HostStream) -> None:
    """Open fds 0, 1 and 2 of the process `task` on the host streams, as a parent
    leaves them to the program it runs (replacing whatever those fds held)."""
    for fd, stream in enumerate((stdin, stdout, stderr)):
        old = task.files.pop(fd, None)
        if old is not None:
            old.put(task.mm)
        task.close_on_exec.discard(fd)
        task.files[fd] = stdio_file(stream).get()


def is_stdio(file: File) -> bool:
    return file.f_op is STDIO_OPS
