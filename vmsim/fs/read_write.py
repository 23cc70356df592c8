"""read(2), write(2), their positioned and vectored forms, lseek(2), sendfile(2),
copy_file_range(2), fadvise64(2) and pipe2(2), with the buffers in the process's
memory: fs/read_write.c (ksys_read(), vfs_read(), do_readv(), do_sendfile(),
vfs_copy_file_range(), ...), mm/fadvise.c and fs/pipe.c, for the calls a program makes
through the x86-64 entry.

The checks run in the kernel's order: the fd (EBADF), the file's mode (EBADF) and
operations (EINVAL), access_ok() of the buffer (EFAULT), the position (EINVAL); then
the data moves through the same vfs_pread()/vfs_pwrite() the Process methods use. A
buffer that faults part way gives a short count, as copy_to_iter() does, or EFAULT if
nothing moved. `struct file`'s position (File.f_pos) is read and advanced; pipes,
terminals and the stdio files (vmsim.fs.stdio) have none (FMODE_STREAM), but where a
call names a position of a stdio file that is a host regular file (sendfile(2),
copy_file_range(2)): then it is the host fd's.

A write to a pipe without a reader (or to a host stream whose reader has gone) is EPIPE
and sends the calling thread SIGPIPE (`current`: None for a call replayed without
threads, which gets EPIPE alone).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence

from ..errors import (
    EAGAIN,
    EBADF,
    EFAULT,
    EINVAL,
    EISDIR,
    ENXIO,
    EOVERFLOW,
    EPIPE,
    ESPIPE,
    EXDEV,
    kerr,
)
from ..mm.fault import copy_from_user, copy_to_user
from ..mm.mmap import MAX_LFS_FILESIZE
from ..task.sched import Block
from ..task.signal import send_sig
from ..task.signal_types import SIGPIPE
from ..task.thread import Thread
from ..uapi import O_APPEND, O_CLOEXEC, O_NONBLOCK, PAGE_SIZE, U64
from .eventfd import eventfd_read, eventfd_write, is_eventfd
from .eventpoll import is_eventpoll
from .file import FMODE_READ, FMODE_WRITE, S_IFCHR, S_IFDIR, S_IFIFO, S_IFREG, S_IFSOCK, File, Inode
from .socket import is_socket, sock_read, sock_write
from .stdio import is_stdio
from .vfs import (
    LOFF_MAX,
    MAX_RW_COUNT,
    ProcMemOps,
    ProcSeqOps,
    can_read,
    can_write,
    rw_verify_area,
    vfs_pread,
    vfs_pwrite,
    write_check_limits,
)

#: include/uapi/linux/fs.h: lseek's whence
SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = range(5)
#: include/uapi/linux/fcntl.h O_DIRECT (a packet pipe), and the other flags pipe2 takes
O_DIRECT = 0o40000
O_NOTIFICATION_PIPE = 0o200
PIPE2_FLAGS = O_CLOEXEC | O_NONBLOCK | O_DIRECT | O_NOTIFICATION_PIPE
#: include/uapi/linux/fadvise.h: POSIX_FADV_NORMAL .. POSIX_FADV_NOREUSE
POSIX_FADV_NOREUSE = 5
#: loff_t in user memory (sendfile's offset, copy_file_range's off_in and off_out)
LOFF = struct.Struct("<q")


# --- user buffers (lib/iov_iter.c, arch/x86/lib/usercopy) -----------------------------

def access_ok(task, addr: int, size: int) -> bool:
    """arch/x86 access_ok(): the range lies in user space."""
    return addr + size <= task.kernel.task_size


def copy_to_user_partial(task, addr: int, data: bytes) -> int:
    """copy_to_iter() into one user range: page by page up to the first page that
    faults. Returns the bytes copied."""
    done = 0
    while done < len(data):
        chunk = min(PAGE_SIZE - (addr + done) % PAGE_SIZE, len(data) - done)
        try:
            copy_to_user(task, addr + done, data[done:done + chunk])
        except OSError:
            break
        done += chunk
    return done


def copy_from_user_partial(task, addr: int, count: int) -> bytes:
    """copy_from_iter() of one user range: the bytes up to the first page that
    faults."""
    out = bytearray()
    while len(out) < count:
        at = addr + len(out)
        try:
            out += copy_from_user(task, at, min(PAGE_SIZE - at % PAGE_SIZE, count - len(out)))
        except OSError:
            break
    return bytes(out)


def _moved(n: int, wanted: int) -> int:
    """The count a transfer returns: EFAULT when a buffer faulted before any byte."""
    if wanted and not n:
        raise kerr(EFAULT)
    return n


# --- the file side ------------------------------------------------------------------

def is_stream(file: File) -> bool:
    """FMODE_STREAM: no file position (pipes, the stdio files)."""
    return file.inode.kind in (S_IFIFO, S_IFSOCK) or is_stdio(file) or is_eventfd(file) or \
        is_eventpoll(file)


def _check_readable(file: File) -> None:
    """vfs_read()'s and vfs_readv()'s first checks: FMODE_READ (EBADF), FMODE_CAN_READ
    (EINVAL)."""
    if not file.f_mode & FMODE_READ:
        raise kerr(EBADF)
    if not (can_read(file.inode) or is_stdio(file)):
        raise kerr(EINVAL)


def _check_writable(file: File) -> None:
    """vfs_write()'s and vfs_writev()'s first checks: FMODE_WRITE (EBADF),
    FMODE_CAN_WRITE (EINVAL)."""
    if not file.f_mode & FMODE_WRITE:
        raise kerr(EBADF)
    if not (can_write(file.inode) or is_stdio(file)):
        raise kerr(EINVAL)


def _check_read(task, file: File, buf: int, count: int) -> None:
    """vfs_read()'s checks: the file's, then access_ok()."""
    _check_readable(file)
    if not access_ok(task, buf, count):
        raise kerr(EFAULT)


def _check_write(task, file: File, buf: int, count: int) -> None:
    """vfs_write()'s checks: the file's, then access_ok()."""
    _check_writable(file)
    if not access_ok(task, buf, count):
        raise kerr(EFAULT)


def file_read(task, file: File, count: int, pos: int | None) -> bytes:
    """->read_iter of the file, `count` bytes at `pos` (None: a stream): the host's
    stream, a pipe's buffer, or vfs_pread() (regular files, directories: EISDIR,
    character devices, /proc files)."""
    if is_stdio(file):
        return file.private_data.read(min(count, MAX_RW_COUNT))
    if file.inode.kind == S_IFIFO:
        return pipe_read(file, count)
    if is_socket(file):
        return sock_read(file, count)
    if is_eventfd(file):
        return eventfd_read(file, count)
    if is_eventpoll(file):
        raise kerr(EINVAL)                      # eventpoll_fops: no ->read
    assert pos is not None
    return vfs_pread(task, file, count, pos)


def file_write(task, file: File, data: bytes, pos: int | None, current: Thread | None = None) -> int:
    """->write_iter of the file: data at pos (None: a stream). Returns the count. A host
    stream whose reader has gone is EPIPE and SIGPIPE for `current`, as the host's pipe
    would send it."""
    if is_stdio(file):
        try:
            return file.private_data.write(data[:MAX_RW_COUNT])
        except OSError as err:
            if err.errno == EPIPE and current is not None:
                send_sig(SIGPIPE, current)
            raise kerr(err.errno or EPIPE) from None
    if file.inode.kind == S_IFIFO:
        return pipe_write(file, data, current)
    if is_socket(file):
        return sock_write(file, data, current)
    if is_eventfd(file):
        return eventfd_write(file, data)
    if is_eventpoll(file):
        raise kerr(EINVAL)                      # eventpoll_fops: no ->write
    assert pos is not None
    return vfs_pwrite(task, file, data, pos)


def _write_start(file: File) -> int:
    """Where write(2) writes: the end of the file under O_APPEND (IOCB_APPEND; not for
    /proc/PID/mem), else the file position."""
    if file.f_flags & O_APPEND and file.inode.kind == S_IFREG and \
            not isinstance(file.f_op, ProcMemOps):
        return file.inode.size
    return file.f_pos


# --- the calls ----------------------------------------------------------------------

def ksys_read(task, fd: int, buf: int, count: int) -> int:
    """read(2): fs/read_write.c ksys_read() -> vfs_read() at the file position."""
    file = task._fdget(fd)
    count &= (1 << 64) - 1
    _check_read(task, file, buf, count)
    if is_stream(file):
        data = file_read(task, file, count, None)
        return _moved(copy_to_user_partial(task, buf, data), len(data))
    n = _read_into(task, file, buf, count, file.f_pos)
    file.f_pos += n
    return n


def _read_into(task, file: File, buf: int, count: int, pos: int) -> int:
    data = file_read(task, file, count, pos)
    return _moved(copy_to_user_partial(task, buf, data), len(data))


def ksys_write(task, fd: int, buf: int, count: int, current: Thread | None = None) -> int:
    """write(2): fs/read_write.c ksys_write() -> vfs_write() at the file position."""
    file = task._fdget(fd)
    count &= (1 << 64) - 1
    _check_write(task, file, buf, count)
    count = min(count, MAX_RW_COUNT)
    data = copy_from_user_partial(task, buf, count)
    _moved(len(data), count)
    if is_stream(file):
        return file_write(task, file, data, None, current)
    start = _write_start(file)
    n = file_write(task, file, data, file.f_pos)
    file.f_pos = start + n
    return n


def _positioned(task, fd: int, pos: int) -> File:
    """ksys_pread64()/ksys_pwrite64(): a negative position is EINVAL before the fd;
    then the file, which must have one (ESPIPE)."""
    if pos < 0:
        raise kerr(EINVAL)
    file = task._fdget(fd)
    if is_stream(file):
        raise kerr(ESPIPE)
    return file


def ksys_pread64(task, fd: int, buf: int, count: int, pos: int) -> int:
    """pread64(2): the file position is neither used nor moved."""
    file = _positioned(task, fd, _loff(pos))
    count &= (1 << 64) - 1
    _check_read(task, file, buf, count)
    return _read_into(task, file, buf, count, _loff(pos))


def ksys_pwrite64(task, fd: int, buf: int, count: int, pos: int) -> int:
    """pwrite64(2) from user memory (the replay's, with the bytes at hand, is
    Process.pwrite): the same checks, then vfs_pwrite()."""
    pos = _loff(pos)
    file = _positioned(task, fd, pos)
    count &= (1 << 64) - 1
    _check_write(task, file, buf, count)
    count = min(count, MAX_RW_COUNT)
    data = copy_from_user_partial(task, buf, count)
    _moved(len(data), count)
    return vfs_pwrite(task, file, data, pos)


def do_readv(task, fd: int, vec: int, vlen: int) -> int:
    """readv(2): fs/read_write.c do_readv() -> vfs_readv(): the file's checks, then
    import_iovec() (EINVAL, EFAULT), then one read of the total, scattered over the
    ranges in order; a range that faults ends it."""
    file = task._fdget(fd)
    _check_readable(file)
    ranges = task._import_iovec(vec, vlen & 0xFFFFFFFF)
    total = sum(n for _, n in ranges)
    if not total:
        return 0
    stream = is_stream(file)
    if not stream:
        rw_verify_area(file, file.f_pos, total)
    data = file_read(task, file, total, None if stream else file.f_pos)
    done = 0
    for base, n in ranges:
        piece = data[done:done + n]
        copied = copy_to_user_partial(task, base, piece)
        done += copied
        if copied < len(piece) or len(piece) < n:
            break
    _moved(done, len(data))
    if not stream:
        file.f_pos += done
    return done


def do_writev(task, fd: int, vec: int, vlen: int, current: Thread | None = None) -> int:
    """writev(2): fs/read_write.c do_writev() -> vfs_writev(): the file's checks,
    import_iovec(), then the ranges' bytes gathered (up to the first fault) and
    written as one write."""
    file = task._fdget(fd)
    _check_writable(file)
    ranges = task._import_iovec(vec, vlen & 0xFFFFFFFF)
    total = sum(n for _, n in ranges)
    if not total:
        return 0
    data = bytearray()
    for base, n in ranges:
        piece = copy_from_user_partial(task, base, n)
        data += piece
        if len(piece) < n:
            break
    _moved(len(data), total)
    if is_stream(file):
        return file_write(task, file, bytes(data), None, current)
    rw_verify_area(file, file.f_pos, total)
    start = _write_start(file)
    n = file_write(task, file, bytes(data), file.f_pos)
    file.f_pos = start + n
    return n


def ksys_lseek(task, fd: int, offset: int, whence: int) -> int:
    """lseek(2): fs/read_write.c ksys_lseek() -> vfs_llseek(): EINVAL for a whence past
    SEEK_HOLE; no position (pipes, terminals) is ESPIPE; the stdio files seek the host's
    fd as the host answers. Then the file's ->llseek: generic_file_llseek() for files
    and directories (a position below 0 or past the filesystem's largest file, or
    SEEK_DATA/SEEK_HOLE at or past the end, is EINVAL/ENXIO), mem_lseek() for
    /proc/PID/mem (any position, SEEK_SET and SEEK_CUR only), seq_lseek() for the other
    /proc files (SEEK_SET and SEEK_CUR, not below 0), null_lseek() for the devices
    (always 0). Returns the new position."""
    file = task._fdget(fd)
    offset, whence = _loff(offset), whence & 0xFFFFFFFF
    if whence > SEEK_HOLE:
        raise kerr(EINVAL)
    if is_stdio(file):
        return _host_lseek(file, offset, whence)
    if file.inode.kind in (S_IFIFO, S_IFSOCK):
        raise kerr(ESPIPE)
    if file.inode.kind == S_IFCHR:
        file.f_pos = 0
        return 0
    if isinstance(file.f_op, ProcMemOps | ProcSeqOps):
        if whence not in (SEEK_SET, SEEK_CUR):
            raise kerr(EINVAL)
        pos = offset if whence == SEEK_SET else file.f_pos + offset
        if isinstance(file.f_op, ProcMemOps):
            pos &= (1 << 64) - 1
        elif pos < 0:
            raise kerr(EINVAL)
        file.f_pos = pos
        return pos
    file.f_pos = _generic_llseek(file, offset, whence)
    return file.f_pos


def _generic_llseek(file: File, offset: int, whence: int) -> int:
    """fs/read_write.c generic_file_llseek_size() with the file's size and the
    filesystem's largest file; an ext4 directory's end and limit are LLONG_MAX
    (ext4_dir_llseek(): hash positions), a tmpfs one moves only by SEEK_SET and
    SEEK_CUR (dcache_dir_lseek())."""
    inode = file.inode
    size = inode.size
    if inode.kind == S_IFDIR:
        if inode.mount is not None and inode.mount.fstype != "ext4" and \
                whence not in (SEEK_SET, SEEK_CUR):
            raise kerr(EINVAL)
        size = LOFF_MAX
    if whence == SEEK_END:
        pos = size + offset
    elif whence == SEEK_CUR:
        pos = file.f_pos + offset
    elif whence == SEEK_SET:
        pos = offset
    else:
        if offset < 0 or offset >= size:
            raise kerr(ENXIO)
        pos = offset if whence == SEEK_DATA else size
    maxbytes = size if inode.kind == S_IFDIR or inode.mount is None else inode.mount.maxbytes
    if pos < 0 or pos > maxbytes:
        raise kerr(EINVAL)
    return pos


def _host_lseek(file: File, offset: int, whence: int) -> int:
    try:
        return os.lseek(file.private_data.fd, offset, whence)
    except OSError as err:
        raise kerr(err.errno or ESPIPE) from None


def _loff(x: int) -> int:
    """loff_t: a signed 64-bit position."""
    return ((x + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


# --- sendfile(2), copy_file_range(2), fadvise64(2) ---------------------------------------

#: include/linux/pipe_fs_i.h PIPE_DEF_BUFFERS: the pages a pipe holds, the most one
#: splice into a pipe moves
PIPE_DEF_BUFFERS = 16


def _pos(file: File) -> int:
    """The position a call that names one takes from the file: a stdio file's that is a
    host regular file is its host fd's; any other file's is File.f_pos."""
    if is_stdio(file) and file.inode.kind == S_IFREG:
        return file.private_data.tell()
    return file.f_pos


def _set_pos(file: File, pos: int) -> None:
    if is_stdio(file) and file.inode.kind == S_IFREG:
        file.private_data.seek(pos)
    else:
        file.f_pos = pos


def _size(file: File) -> int:
    """i_size_read(): a host file's size as the host has it."""
    return file.private_data.fstat().st_size if is_stdio(file) else file.inode.size


def _maxbytes(inode: Inode) -> int:
    """The superblock's s_maxbytes (pipes and the host's files: MAX_LFS_FILESIZE)."""
    return inode.mount.maxbytes if inode.mount is not None else MAX_LFS_FILESIZE


def _verify_area(file: File, pos: int, count: int) -> None:
    """rw_verify_area(): a count that is negative as an ssize_t, or a negative position,
    is EINVAL; then the model's rw_verify_area()."""
    if count > LOFF_MAX or pos < 0:
        raise kerr(EINVAL)
    rw_verify_area(file, pos, count)


def splice_read(task, file: File, count: int, pos: int) -> bytes:
    """do_splice_read(): up to count bytes of the file at pos, fewer at its end; EINVAL
    for a file without ->splice_read (pipes, directories)."""
    if file.inode.kind in (S_IFIFO, S_IFDIR):
        raise kerr(EINVAL)
    if is_stdio(file):
        stream = file.private_data
        return stream.pread(count, pos) if file.inode.kind == S_IFREG else stream.read(count)
    return vfs_pread(task, file, count, pos)


def splice_write(task, file: File, data: bytes, pos: int, current: Thread | None) -> int:
    """->splice_write: data at pos (a pipe, a terminal: at its end). Returns the count."""
    if is_stdio(file) and file.inode.kind == S_IFREG:
        return file.private_data.pwrite(data, pos)
    if is_stream(file):
        return file_write(task, file, data, None, current)
    return vfs_pwrite(task, file, data, pos)


def do_sendfile(task, out_fd: int, in_fd: int, ppos: int | None, count: int,
                current: Thread | None) -> tuple[int, int]:
    """fs/read_write.c do_sendfile(): the input (EBADF unless open for reading; ESPIPE
    for a position given to a file that has none), rw_verify_area() (EINVAL), the count
    cut to MAX_RW_COUNT; the output (EBADF unless open for writing); both files' s_maxbytes
    (EOVERFLOW at it, the count cut below it). Into a pipe, splice_file_to_pipe(): at most
    the pipe's pages (SIGPIPE and EPIPE without a reader); else do_splice_direct()
    (EINVAL for O_APPEND): the bytes at the input's position written at the output's.
    Returns the count and the input's new position (written to `ppos`'s file position
    when none was given); the output's position moves by the count."""
    f_in = task._fdget(in_fd)
    if not f_in.f_mode & FMODE_READ:
        raise kerr(EBADF)
    if ppos is None:
        pos = _pos(f_in)
    else:
        pos = ppos
        if is_stream(f_in) and not (is_stdio(f_in) and f_in.inode.kind == S_IFREG):
            raise kerr(ESPIPE)
    _verify_area(f_in, pos, count)
    count = min(count, MAX_RW_COUNT)
    f_out = task._fdget(out_fd)
    if not f_out.f_mode & FMODE_WRITE:
        raise kerr(EBADF)
    out_pos = _pos(f_out)
    most = min(_maxbytes(f_in.inode), _maxbytes(f_out.inode))
    if pos + count > most:
        if pos >= most:
            raise kerr(EOVERFLOW)
        count = most - pos
    if f_out.inode.kind == S_IFIFO:
        count = min(count, PIPE_DEF_BUFFERS * PAGE_SIZE - pos % PAGE_SIZE)
    else:
        _verify_area(f_out, out_pos, count)
        if f_out.f_flags & O_APPEND:
            raise kerr(EINVAL)
    data = splice_read(task, f_in, count, pos) if count else b""
    n = splice_write(task, f_out, data, out_pos, current) if data else 0
    if n > 0:
        if not is_stream(f_out) or f_out.inode.kind == S_IFREG:
            _set_pos(f_out, out_pos + n)
        pos += n
        if ppos is None:
            _set_pos(f_in, pos)
    if pos > most:
        raise kerr(EOVERFLOW)
    return n, pos


def sys_sendfile64(task, out_fd: int, in_fd: int, offset: int, count: int,
                   current: Thread | None = None) -> int:
    """sendfile(2) (out_fd, in_fd, offset, count): from the input's position, or from
    the loff_t at offset (EFAULT), written back there whatever the outcome (EFAULT)."""
    count &= (1 << 64) - 1
    if not offset:
        return do_sendfile(task, out_fd, in_fd, None, count, current)[0]
    (pos,) = LOFF.unpack(copy_from_user(task, offset, LOFF.size))
    try:
        n, pos = do_sendfile(task, out_fd, in_fd, pos, count, current)
    except OSError as err:
        n = -(err.errno or EINVAL)
    copy_to_user(task, offset, LOFF.pack(pos))
    return n


def vfs_copy_file_range(task, f_in: File, pos_in: int, f_out: File, pos_out: int,
                        count: int) -> int:
    """fs/read_write.c vfs_copy_file_range() and generic_copy_file_checks(): EISDIR for a
    directory, EINVAL for anything but two regular files, EBADF unless the input is open
    for reading and the output for writing without O_APPEND, EXDEV across filesystems
    (no filesystem of the model has ->copy_file_range: same superblock, the same device
    number), EOVERFLOW for a range that wraps; the count cut at the input's end and at
    the output's limits (generic_write_check_limits()); EINVAL for ranges overlapping
    in one file; rw_verify_area() of both. Then the copy (do_splice_direct()): the bytes
    copied."""
    inode_in, inode_out = f_in.inode, f_out.inode
    if S_IFDIR in (inode_in.kind, inode_out.kind):
        raise kerr(EISDIR)
    if inode_in.kind != S_IFREG or inode_out.kind != S_IFREG:
        raise kerr(EINVAL)
    if not f_in.f_mode & FMODE_READ or not f_out.f_mode & FMODE_WRITE or f_out.f_flags & O_APPEND:
        raise kerr(EBADF)
    if inode_in.dev != inode_out.dev:
        raise kerr(EXDEV)
    if (pos_in & U64) + count > U64 or (pos_out & U64) + count > U64:
        raise kerr(EOVERFLOW)
    size_in = _size(f_in)
    count = 0 if pos_in >= size_in else min(count, (size_in - pos_in) & U64)
    if inode_out.mount is not None:
        count = write_check_limits(task, inode_out, pos_out, count)
    if inode_in is inode_out and pos_out + count > pos_in and pos_out < pos_in + count:
        raise kerr(EINVAL)
    _verify_area(f_in, pos_in, count)
    _verify_area(f_out, pos_out, count)
    if not count:
        return 0
    data = splice_read(task, f_in, min(count, MAX_RW_COUNT), pos_in)
    return splice_write(task, f_out, data, pos_out, None) if data else 0


def sys_copy_file_range(task, fd_in: int, off_in: int, fd_out: int, off_out: int, length: int,
                        flags: int) -> int:
    """copy_file_range(2): EINVAL for any flag; the two files (EBADF); the offsets at
    off_in and off_out (EFAULT; NULL: the file positions); vfs_copy_file_range(); each
    offset moved by the count copied, written back (EFAULT) or the file's position."""
    if flags & 0xFFFFFFFF:
        raise kerr(EINVAL)
    f_in, f_out = task._fdget(fd_in), task._fdget(fd_out)
    pos_in = LOFF.unpack(copy_from_user(task, off_in, LOFF.size))[0] if off_in else _pos(f_in)
    pos_out = LOFF.unpack(copy_from_user(task, off_out, LOFF.size))[0] if off_out else _pos(f_out)
    n = vfs_copy_file_range(task, f_in, pos_in, f_out, pos_out, length & U64)
    if n <= 0:
        return n
    for file, uoff, pos in ((f_in, off_in, pos_in + n), (f_out, off_out, pos_out + n)):
        if not uoff:
            _set_pos(file, pos)
            continue
        try:
            copy_to_user(task, uoff, LOFF.pack(pos))
        except OSError:
            n = -EFAULT
    return n


def ksys_fadvise64_64(task, fd: int, offset: int, length: int, advice: int) -> int:
    """fadvise64(2): mm/fadvise.c generic_fadvise(): EBADF, ESPIPE for a pipe, EINVAL for
    a negative length or an unknown advice; else 0 (the model's page cache keeps every
    page: no advice changes what it holds)."""
    file = task._fdget(fd)
    if file.inode.kind == S_IFIFO:
        raise kerr(ESPIPE)
    advice = advice & 0xFFFFFFFF
    if _loff(length) < 0 or advice > POSIX_FADV_NOREUSE:
        raise kerr(EINVAL)
    return 0


# --- pipes: fs/pipe.c ---------------------------------------------------------------

class PipeBuffer:
    """The bytes written to a pipe and not yet read, shared by its two ends (each
    File's private_data). Invariant: `reader` and `writer` are the two ends; an end
    is open while its File has a reference."""

    def __init__(self, reader: File, writer: File) -> None:
        self.data = bytearray()
        self.reader = reader
        self.writer = writer


def pipe_read(file: File, count: int) -> bytes:
    """pipe_read(): up to count bytes waiting; 0 bytes (end of file) once no writer
    is left; with a writer and nothing waiting EAGAIN under O_NONBLOCK, else the reader
    sleeps until data or the end comes (vmsim.task.sched.Block), and reads again."""
    pipe = file.private_data
    if pipe is None or not pipe.data:
        if pipe is None or pipe.writer.refs == 0:
            return b""
        if file.f_flags & O_NONBLOCK:
            raise kerr(EAGAIN)
        raise Block(("pipe_wait", id(pipe)), ready=lambda: bool(pipe.data) or pipe.writer.refs == 0)
    out = bytes(pipe.data[:count])
    del pipe.data[:count]
    return out


def pipe_write(file: File, data: bytes, current: Thread | None = None) -> int:
    """pipe_write(): once no reader is left, SIGPIPE for the writer
    (send_sig(SIGPIPE, current, 0)) and EPIPE; else the bytes are kept for the reader
    (the model's pipe has no capacity: a writer never waits)."""
    pipe = file.private_data
    if pipe is None or pipe.reader.refs == 0:
        if current is not None:
            send_sig(SIGPIPE, current)
        raise kerr(EPIPE)
    pipe.data += data
    return len(data)


def do_pipe2(task, fildes: int, flags: int) -> int:
    """pipe2(2): fs/pipe.c do_pipe2(): EINVAL for flags but O_CLOEXEC, O_NONBLOCK,
    O_DIRECT and O_NOTIFICATION_PIPE; the two ends on the two lowest free fds (EMFILE);
    the two fds stored at fildes, or both closed again and EFAULT."""
    flags &= 0xFFFFFFFF
    if flags & ~PIPE2_FLAGS:
        raise kerr(EINVAL)
    rfd, wfd = task.pipe()
    reader, writer = task.files[rfd], task.files[wfd]
    reader.private_data = writer.private_data = PipeBuffer(reader, writer)
    for end in (reader, writer):
        end.f_flags |= flags & (O_NONBLOCK | O_DIRECT)
    try:
        copy_to_user(task, fildes, struct.pack("<ii", rfd, wfd))
    except OSError:
        task.close(rfd)
        task.close(wfd)
        raise
    if flags & O_CLOEXEC:
        task.close_on_exec.update((rfd, wfd))
    return 0


#: the calls of this module the x86-64 entry serves with the calling thread (its
#: THREAD_CALLS): a write may end at a pipe without a reader, whose SIGPIPE is the
#: thread's; copy_file_range and fadvise64 only programs make
RW_CALLS: dict[str, Callable[[Thread, Sequence[int]], int]] = {
    "write": lambda t, a: ksys_write(t.process, a[0], a[1], a[2], t),
    "writev": lambda t, a: do_writev(t.process, a[0], a[1], a[2], t),
    "sendfile": lambda t, a: sys_sendfile64(t.process, a[0], a[1], a[2], a[3], t),
    "copy_file_range": lambda t, a: sys_copy_file_range(t.process, *a[:6]),
    "fadvise64": lambda t, a: ksys_fadvise64_64(t.process, a[0], a[1], a[2], a[3]),
}
