"""read(2), write(2), their positioned and vectored forms, lseek(2) and pipe2(2), with
the buffers in the process's memory: fs/read_write.c (ksys_read(), vfs_read(),
do_readv(), ...) and fs/pipe.c, for the calls a program makes through the x86-64 entry.

The checks run in the kernel's order: the fd (EBADF), the file's mode (EBADF) and
operations (EINVAL), access_ok() of the buffer (EFAULT), the position (EINVAL); then
the data moves through the same vfs_pread()/vfs_pwrite() the Process methods use. A
buffer that faults part way gives a short count, as copy_to_iter() does, or EFAULT if
nothing moved. `struct file`'s position (File.f_pos) is read and advanced; pipes,
terminals and the stdio files (vmsim.fs.stdio) have none (FMODE_STREAM).
"""

from __future__ import annotations

import os
import struct

from ..errors import EAGAIN, EBADF, EFAULT, EINVAL, ENXIO, EPIPE, ESPIPE, kerr
from ..mm.fault import copy_from_user, copy_to_user
from ..task.sched import Block
from ..uapi import O_APPEND, O_CLOEXEC, O_NONBLOCK, PAGE_SIZE
from .file import FMODE_READ, FMODE_WRITE, S_IFCHR, S_IFDIR, S_IFIFO, S_IFREG, File
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
)

#: include/uapi/linux/fs.h: lseek's whence
SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = range(5)
#: include/uapi/linux/fcntl.h O_DIRECT (a packet pipe), and the other flags pipe2 takes
O_DIRECT = 0o40000
O_NOTIFICATION_PIPE = 0o200
PIPE2_FLAGS = O_CLOEXEC | O_NONBLOCK | O_DIRECT | O_NOTIFICATION_PIPE


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
    return file.inode.kind == S_IFIFO or is_stdio(file)


def _check_read(task, file: File, buf: int, count: int) -> None:
    """vfs_read()'s checks: FMODE_READ (EBADF), FMODE_CAN_READ (EINVAL), access_ok()."""
    if not file.f_mode & FMODE_READ:
        raise kerr(EBADF)
    if not (can_read(file.inode) or is_stdio(file)):
        raise kerr(EINVAL)
    if not access_ok(task, buf, count):
        raise kerr(EFAULT)


def _check_write(task, file: File, buf: int, count: int) -> None:
    """vfs_write()'s checks: FMODE_WRITE (EBADF), FMODE_CAN_WRITE (EINVAL), access_ok()."""
    if not file.f_mode & FMODE_WRITE:
        raise kerr(EBADF)
    if not (can_write(file.inode) or is_stdio(file)):
        raise kerr(EINVAL)
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
    assert pos is not None
    return vfs_pread(task, file, count, pos)


def file_write(task, file: File, data: bytes, pos: int | None) -> int:
    """->write_iter of the file: data at pos (None: a stream). Returns the count."""
    if is_stdio(file):
        try:
            return file.private_data.write(data[:MAX_RW_COUNT])
        except OSError as err:
            raise kerr(err.errno or EPIPE) from None
    if file.inode.kind == S_IFIFO:
        return pipe_write(file, data)
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


def ksys_write(task, fd: int, buf: int, count: int) -> int:
    """write(2): fs/read_write.c ksys_write() -> vfs_write() at the file position."""
    file = task._fdget(fd)
    count &= (1 << 64) - 1
    _check_write(task, file, buf, count)
    count = min(count, MAX_RW_COUNT)
    data = copy_from_user_partial(task, buf, count)
    _moved(len(data), count)
    if is_stream(file):
        return file_write(task, file, data, None)
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
    if not file.f_mode & FMODE_READ:
        raise kerr(EBADF)
    if not (can_read(file.inode) or is_stdio(file)):
        raise kerr(EINVAL)
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


def do_writev(task, fd: int, vec: int, vlen: int) -> int:
    """writev(2): fs/read_write.c do_writev() -> vfs_writev(): the file's checks,
    import_iovec(), then the ranges' bytes gathered (up to the first fault) and
    written as one write."""
    file = task._fdget(fd)
    if not file.f_mode & FMODE_WRITE:
        raise kerr(EBADF)
    if not (can_write(file.inode) or is_stdio(file)):
        raise kerr(EINVAL)
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
        return file_write(task, file, bytes(data), None)
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
    if file.inode.kind == S_IFIFO:
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


def pipe_write(file: File, data: bytes) -> int:
    """pipe_write(): EPIPE once no reader is left (Linux also sends SIGPIPE), else the
    bytes are kept for the reader."""
    pipe = file.private_data
    if pipe is None or pipe.reader.refs == 0:
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
