"""AF_UNIX stream sockets made by socketpair(2), and the socket calls on them: the
connected pair of net/unix/af_unix.c (unix_stream_connect()'s result without a name:
unix_socketpair(), unix_stream_sendmsg(), unix_stream_read_generic(), unix_shutdown(),
unix_getname(), unix_poll()) under the syscalls of net/socket.c (__sys_socketpair(),
__sys_sendto(), __sys_recvfrom(), __sys_shutdown(), __sys_getsockname(),
do_sock_getsockopt()) on sockfs files (S_IFSOCK, `socket:[ino]`).

The model keeps each socket's received bytes (its sk_receive_queue) as one buffer:
a stream read takes what is waiting across the writes that put it there, as
unix_stream_read_generic() does. Like the model's pipes (vmsim.fs.read_write), a
socket never fills: a writer never waits. A socket whose peer's file is gone
reads as unix_release_sock() leaves it: both directions shut down. Only SOCK_STREAM
pairs are modelled: SOCK_DGRAM and SOCK_SEQPACKET are ESOCKTNOSUPPORT here, and
every family but AF_UNIX is EAFNOSUPPORT, as sys_socket() answers (no network stack).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from errno import EISCONN, ENOPROTOOPT, ENOTSOCK, EPROTONOSUPPORT, ESOCKTNOSUPPORT

from ..errors import EAFNOSUPPORT, EAGAIN, EBADF, EFAULT, EINVAL, EOPNOTSUPP, EPIPE, kerr
from ..mm.fault import copy_from_user, copy_to_user
from ..task.sched import Block
from ..task.signal import send_sig
from ..task.signal_types import SIGPIPE
from ..task.thread import Thread
from ..uapi import O_CLOEXEC, O_NONBLOCK
from .file import FMODE_READ, FMODE_WRITE, S_IFSOCK, File, Inode
from .select import POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM, POLLWRBAND, POLLWRNORM, PollableFile
from .vfs import MAX_RW_COUNT, NoMmapOps

#: include/linux/socket.h: the address family, and the SOCK_* of include/linux/net.h
AF_UNIX, SOCK_STREAM = 1, 1
SOCK_TYPE_MASK, SOCK_MAX = 0xF, 11
SOCK_CLOEXEC, SOCK_NONBLOCK = O_CLOEXEC, O_NONBLOCK
#: include/linux/socket.h NPROTO (AF_MAX)
NPROTO = 46
#: the msg_flags the model acts on
MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL, MSG_NOSIGNAL = 0x2, 0x40, 0x100, 0x4000
#: include/net/sock.h sk_shutdown bits (shutdown(2)'s how + 1)
RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK = 1, 2, 3
#: include/uapi/asm-generic/socket.h: the SOL_SOCKET options the model answers
SOL_SOCKET, SO_TYPE, SO_ERROR, SO_PROTOCOL, SO_DOMAIN = 1, 3, 4, 38, 39
#: include/linux/socket.h sockaddr_storage: the longest address a call takes
SOCKADDR_STORAGE = 128
#: the sockfs superblock's device (00:09 on this kernel)
SOCKFS_DEV = (0x00, 0x09)
INT = struct.Struct("<i")


class SocketOps(NoMmapOps):
    """net/socket.c socket_file_ops: sock_mmap() -> sock_no_mmap(): ENODEV."""


SOCKET_OPS = SocketOps()


class UnixSock(PollableFile):
    """struct unix_sock of one end of a pair, the File's private_data. Invariants:
    `peer.peer is self`; `rx` holds the bytes the peer sent and this end has not read;
    `shutdown` holds the RCV_SHUTDOWN/SEND_SHUTDOWN bits shutdown(2) set on this end
    (the peer's file closing sets both: see `sk_shutdown`)."""

    def __init__(self, file: File) -> None:
        self.file = file
        self.peer: UnixSock = self
        self.rx = bytearray()
        self.shutdown = 0

    def sk_shutdown(self) -> int:
        """sk->sk_shutdown: this end's bits, all of them once the peer is released."""
        return SHUTDOWN_MASK if self.peer.file.refs == 0 else self.shutdown

    def poll(self) -> int:
        """unix_poll(): POLLHUP once shut both ways, POLLRDHUP and readable once shut for
        reading, readable with bytes waiting; always writable (the model never fills)."""
        shut = self.sk_shutdown()
        mask = POLLOUT | POLLWRNORM | POLLWRBAND
        if shut == SHUTDOWN_MASK:
            mask |= POLLHUP
        if shut & RCV_SHUTDOWN or self.rx:
            mask |= POLLIN | POLLRDNORM
        if shut & RCV_SHUTDOWN:
            mask |= POLLRDHUP
        return mask

    def generation(self) -> int:
        return hash((len(self.rx), self.sk_shutdown()))


def is_socket(file: File) -> bool:
    """S_ISSOCK(file_inode(file)->i_mode)."""
    return file.inode.kind == S_IFSOCK


def sock_from_file(task, fd: int) -> UnixSock:
    """sockfd_lookup_light(): EBADF for an fd not open, ENOTSOCK for a file not a socket."""
    file = task.files.get(fd & 0xFFFFFFFF)
    if file is None:
        raise kerr(EBADF)
    if not is_socket(file):
        raise kerr(ENOTSOCK)
    return file.private_data


# --- the data path: unix_stream_sendmsg(), unix_stream_read_generic() ----------------

def unix_stream_sendmsg(sock: UnixSock, data: bytes, flags: int, current: Thread | None) -> int:
    """unix_stream_sendmsg(): EPIPE (and SIGPIPE for the caller unless MSG_NOSIGNAL)
    once this end is shut for sending or the peer is gone or shut for receiving (an
    empty message too); else the bytes join the peer's receive queue."""
    if sock.sk_shutdown() & SEND_SHUTDOWN or \
            sock.peer.sk_shutdown() & RCV_SHUTDOWN:
        if current is not None and not flags & MSG_NOSIGNAL:
            send_sig(SIGPIPE, current)
        raise kerr(EPIPE)
    sock.peer.rx += data
    return len(data)


def unix_stream_recvmsg(sock: UnixSock, size: int, flags: int) -> bytes:
    """unix_stream_read_generic(): what is waiting, up to size (MSG_PEEK: left waiting);
    with nothing waiting 0 bytes once shut for receiving, else EAGAIN under
    MSG_DONTWAIT or a sleep until bytes or the shutdown come (MSG_WAITALL: until size
    bytes are waiting)."""
    if not size:
        return b""
    shut = sock.sk_shutdown() & RCV_SHUTDOWN
    want = size if flags & MSG_WAITALL else 1
    if len(sock.rx) < want and not shut:
        if not sock.rx and flags & MSG_DONTWAIT:
            raise kerr(EAGAIN)
        if not flags & MSG_DONTWAIT:
            raise Block(("unix_wait", id(sock)),
                        ready=lambda: len(sock.rx) >= want or bool(sock.sk_shutdown() & RCV_SHUTDOWN))
    out = bytes(sock.rx[:size])
    if not flags & MSG_PEEK:
        del sock.rx[:size]
    return out


def _nonblock(file: File, flags: int) -> int:
    """sock_read_iter()/__sys_sendto(): O_NONBLOCK on the file is MSG_DONTWAIT."""
    return flags | MSG_DONTWAIT if file.f_flags & O_NONBLOCK else flags


def sock_read(file: File, count: int) -> bytes:
    """sock_read_iter(): read(2) and readv(2) of a socket."""
    return unix_stream_recvmsg(file.private_data, count, _nonblock(file, 0))


def sock_write(file: File, data: bytes, current: Thread | None) -> int:
    """sock_write_iter(): write(2) and writev(2) of a socket."""
    return unix_stream_sendmsg(file.private_data, data, _nonblock(file, 0), current)


# --- the calls: net/socket.c -------------------------------------------------------------

def _sock_alloc_file(task) -> File:
    """sock_alloc() + sock_alloc_file(): a sockfs inode (mode 0777) and its open file."""
    ino = task.kernel.fs._pipe_ino()            # get_next_ino(): pipefs's counter too
    inode = Inode(ino, SOCKFS_DEV, S_IFSOCK, SOCKET_OPS, f"socket:[{ino}]")
    inode.mode = 0o777
    file = File(inode, FMODE_READ | FMODE_WRITE, 2)
    file.private_data = UnixSock(file)
    return file


def unix_create(family: int, type_: int, protocol: int) -> None:
    """__sock_create() and unix_create()'s checks: EAFNOSUPPORT for a family out of
    range or other than AF_UNIX (the model has no other), EINVAL for a type out of
    range, EPROTONOSUPPORT for a protocol, ESOCKTNOSUPPORT for a type unix_create()
    refuses and, in the model, for the datagram types it does not have."""
    if not 0 <= family < NPROTO:
        raise kerr(EAFNOSUPPORT)
    if not 0 <= type_ < SOCK_MAX:
        raise kerr(EINVAL)
    if family != AF_UNIX:
        raise kerr(EAFNOSUPPORT)
    if protocol and protocol != AF_UNIX:
        raise kerr(EPROTONOSUPPORT)
    if type_ != SOCK_STREAM:
        raise kerr(ESOCKTNOSUPPORT)


def sys_socketpair(task, family: int, type_: int, protocol: int, usockvec: int) -> int:
    """socketpair(2): __sys_socketpair(): EINVAL for flags but SOCK_CLOEXEC and
    SOCK_NONBLOCK; two free fds (EMFILE), written to usockvec (EFAULT) before the
    sockets are made (unix_create()'s errors); then unix_socketpair() joins them."""
    family, type_, protocol = _int(family), type_ & 0xFFFFFFFF, _int(protocol)
    flags = type_ & ~SOCK_TYPE_MASK
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise kerr(EINVAL)
    fds = task._unused_fds(2)
    copy_to_user(task, usockvec, struct.pack("<ii", *fds))
    unix_create(family, type_ & SOCK_TYPE_MASK, protocol)
    a, b = _sock_alloc_file(task), _sock_alloc_file(task)
    a.private_data.peer, b.private_data.peer = b.private_data, a.private_data
    for fd, file in zip(fds, (a, b), strict=True):
        file.f_flags |= flags & SOCK_NONBLOCK
        task.files[fd] = file.get()
        if flags & SOCK_CLOEXEC:
            task.close_on_exec.add(fd)
    return 0


def _user_buffer(task, buf: int, size: int) -> int:
    """import_ubuf(): the length cut to MAX_RW_COUNT; EFAULT unless it lies in user space."""
    size = min(size & 0xFFFFFFFFFFFFFFFF, MAX_RW_COUNT)
    if buf + size > task.kernel.task_size:
        raise kerr(EFAULT)
    return size


def sys_sendto(task, fd: int, buf: int, size: int, flags: int, addr: int, addrlen: int,
               current: Thread | None = None) -> int:
    """sendto(2) and send(2): __sys_sendto(): the buffer (EFAULT), the socket (EBADF,
    ENOTSOCK), an address (EINVAL past sockaddr_storage, EFAULT) which a connected
    stream socket refuses (EISCONN); then unix_stream_sendmsg() (SIGPIPE for `current`)."""
    size = _user_buffer(task, buf, size)
    sock = sock_from_file(task, fd)
    if addr:
        addrlen = _int(addrlen)
        if not 0 <= addrlen <= SOCKADDR_STORAGE:
            raise kerr(EINVAL)
        copy_from_user(task, addr, addrlen)
        if addrlen:
            raise kerr(EISCONN)
    data = copy_from_user(task, buf, size)
    return unix_stream_sendmsg(sock, data, _nonblock(sock.file, flags & 0xFFFFFFFF), current)


def sys_recvfrom(task, fd: int, buf: int, size: int, flags: int, addr: int, addrlen: int) -> int:
    """recvfrom(2) and recv(2): __sys_recvfrom(): the buffer (EFAULT), the socket (EBADF,
    ENOTSOCK), unix_stream_recvmsg(); the bytes copied out; an address asked for gets
    the peer's, which has no name: length 0 (move_addr_to_user())."""
    size = _user_buffer(task, buf, size)
    sock = sock_from_file(task, fd)
    data = unix_stream_recvmsg(sock, size, _nonblock(sock.file, flags & 0xFFFFFFFF))
    copy_to_user(task, buf, data)
    if addr:
        move_addr_to_user(task, b"", addr, addrlen)
    return len(data)


def move_addr_to_user(task, kaddr: bytes, uaddr: int, ulen: int) -> None:
    """move_addr_to_user(): the user's length (EFAULT, EINVAL if negative), as much of
    the address as it allows, then the address's own length written back."""
    (length,) = INT.unpack(copy_from_user(task, ulen, INT.size))
    if length < 0:
        raise kerr(EINVAL)
    length = min(length, len(kaddr))
    if length:
        copy_to_user(task, uaddr, kaddr[:length])
    copy_to_user(task, ulen, INT.pack(len(kaddr)))


def sys_getname(task, fd: int, uaddr: int, ulen: int) -> int:
    """getsockname(2) and getpeername(2): the socket (EBADF, ENOTSOCK); unix_getname() of
    an unnamed socket (either end of a pair): sa_family alone, length 2."""
    sock_from_file(task, fd)
    move_addr_to_user(task, struct.pack("<H", AF_UNIX), uaddr, ulen)
    return 0


def sys_shutdown(task, fd: int, how: int) -> int:
    """shutdown(2): unix_shutdown(): EINVAL for `how` but SHUT_RD, SHUT_WR, SHUT_RDWR;
    the bits on this end, and their mirror on the peer (a side shut for sending is
    the other's shut for receiving)."""
    sock = sock_from_file(task, fd)
    how = _int(how)
    if not 0 <= how <= 2:
        raise kerr(EINVAL)
    mode = how + 1
    sock.shutdown |= mode
    sock.peer.shutdown |= (RCV_SHUTDOWN if mode & SEND_SHUTDOWN else 0) | \
        (SEND_SHUTDOWN if mode & RCV_SHUTDOWN else 0)
    return 0


def sys_getsockopt(task, fd: int, level: int, optname: int, optval: int, optlen: int) -> int:
    """getsockopt(2): do_sock_getsockopt(): the socket (EBADF, ENOTSOCK); AF_UNIX has no
    options of its own (EOPNOTSUPP for a level but SOL_SOCKET); sk_getsockopt(): the
    length (EFAULT, EINVAL if negative), then the int, cut to the length. The model
    answers SO_TYPE, SO_ERROR, SO_PROTOCOL and SO_DOMAIN (ENOPROTOOPT for the rest)."""
    sock_from_file(task, fd)
    if _int(level) != SOL_SOCKET:
        raise kerr(EOPNOTSUPP)
    (length,) = INT.unpack(copy_from_user(task, optlen, INT.size))
    if length < 0:
        raise kerr(EINVAL)
    values = {SO_TYPE: SOCK_STREAM, SO_ERROR: 0, SO_PROTOCOL: 0, SO_DOMAIN: AF_UNIX}
    value = values.get(_int(optname))
    if value is None:
        raise kerr(ENOPROTOOPT)
    length = min(length, INT.size)
    copy_to_user(task, optval, INT.pack(value)[:length])
    copy_to_user(task, optlen, INT.pack(length))
    return 0


def _int(x: int) -> int:
    """A C int argument."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


#: the call of this module the x86-64 entry serves with the calling thread: a send may
#: end at a peer gone, whose SIGPIPE is the thread's
SOCKET_CALLS: dict[str, Callable[[Thread, Sequence[int]], int]] = {
    "sendto": lambda t, a: sys_sendto(t.process, a[0], a[1], a[2], a[3], a[4], a[5], t),
}
