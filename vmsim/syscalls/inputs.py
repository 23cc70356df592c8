"""Reading vmsim's input files -- strace logs and JSON Lines traces, scenarios, maps and
smaps dumps, enclave images and keys -- in bounded memory and time, whatever the path
names: a regular file, a pipe, /dev/zero, a FIFO nobody writes to, a directory.

* At most `limit` bytes are read (MAX_INPUT_SIZE unless the format says otherwise): a
  larger input is refused, not truncated, and a regular file's size is checked first.
* A FIFO is opened without waiting for a writer; with none, it reads as empty.
* Text is refused at its first NUL byte, so /dev/zero and /dev/urandom are refused
  after one chunk.

A path that cannot be opened or read raises OSError (a directory: IsADirectoryError);
anything else wrong raises InputError with the line it is on, when it has one.
"""

from __future__ import annotations

import errno
import os
import stat

from ..uapi import PATH_MAX

#: the largest input file vmsim reads (a trace, a dump, a scenario, an image)
MAX_INPUT_SIZE = 256 << 20
_CHUNK = 1 << 20


class InputError(ValueError):
    """An input file vmsim refuses to read: `reason`, and the 1-based `line` (or None)."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason, self.line = reason, line


def check_path(path: str | bytes) -> None:
    """ValueError for a path no syscall takes (getname(): PATH_MAX bytes with its NUL),
    so none a trace, scenario or maps dump can hold."""
    n = len(path if isinstance(path, bytes) else path.encode("utf-8", "surrogateescape"))
    if n >= PATH_MAX:
        raise ValueError(f"a path of {n} bytes: longer than PATH_MAX ({PATH_MAX}) allows")


def size_text(n: int) -> str:
    """A byte count as the limits are written: `256 MiB`, `16 KiB`, `100 bytes`."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def cut(text: str, width: int = 60) -> str:
    """text, cut after `width` characters (`...` says so): input in a one-line reason."""
    return text if len(text) <= width else text[:width] + "..."


def quote(text: str, width: int = 60) -> str:
    """repr(text), cut after `width` characters: how a one-line reason quotes input."""
    if len(text) <= width:
        return repr(text)
    head = repr(text[:width])
    return head[:-1] + "..." + head[-1]


def read_bytes(path: str, limit: int = MAX_INPUT_SIZE, *,
               binary_magic: bytes | None = None) -> bytes:
    """The contents of the file at `path`, at most `limit` bytes.  With `binary_magic`,
    a file that does not start with it is text, and its first NUL byte refuses it."""
    return _read(path, limit, binary_magic)


def read_text(path: str, limit: int = MAX_INPUT_SIZE) -> str:
    """The UTF-8 text of the file at `path`, at most `limit` bytes of it."""
    raw = _read(path, limit, b"")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", raw.count(b"\n", 0, exc.start) + 1) from None


def _read(path: str, limit: int, binary_magic: bytes | None) -> bytes:
    """The file's bytes, a chunk at a time.  binary_magic None: any bytes; b"": text;
    else text unless the first chunk starts with it."""
    fd = _open(path, limit)
    try:
        chunks: list[bytes] = []
        total = lines = 0
        text = binary_magic is not None
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - total)):
            if not chunks and binary_magic:
                text = not chunk.startswith(binary_magic)
            if text:
                nul = chunk.find(b"\0")
                if nul >= 0:
                    raise InputError("binary data, not text (NUL byte)",
                                     lines + chunk.count(b"\n", 0, nul) + 1)
                lines += chunk.count(b"\n")
            total += len(chunk)
            if total > limit:
                raise InputError(_too_large(limit))
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_large(limit: int) -> str:
    return f"too large: more than {size_text(limit)}, the most vmsim reads of such a file"


def _open(path: str, limit: int) -> int:
    """An fd reading `path`: O_NONBLOCK so that a FIFO opens without a writer, then
    blocking again; a directory or a regular file larger than limit refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if stat.S_ISREG(st.st_mode) and st.st_size > limit:
            raise InputError(_too_large(limit))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd
