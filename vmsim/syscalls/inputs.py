"""Reading vmsim's input files -- strace logs and JSON Lines traces, scenarios, maps and
smaps dumps, enclave images and keys -- in bounded memory and time, whatever the path
names: a regular file, a pipe, /dev/zero, a FIFO nobody writes to, a directory.

* At most `limit` bytes are read (MAX_INPUT_SIZE unless the format says otherwise): a
  larger input is refused, not truncated, and a regular file's size is checked first.
* A FIFO is opened without waiting for a writer; with none, it reads as empty.
* Text stops at its first NUL byte or invalid UTF-8 sequence, so /dev/zero and
  /dev/urandom are refused after one chunk.

A path that cannot be opened or read raises OSError (a directory: IsADirectoryError);
anything else wrong raises InputError with the line it is on, when it has one.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat

#: the largest input file vmsim reads (a trace, a dump, a scenario, an image)
MAX_INPUT_SIZE = 256 << 20
_CHUNK = 1 << 20


class InputError(ValueError):
    """An input file vmsim refuses to read: `reason`, and the 1-based `line` (or None)."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason, self.line = reason, line


def size_text(n: int) -> str:
    """A byte count as the limits are written: `256 MiB`, `16 KiB`, `100 bytes`."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def read_bytes(path: str, limit: int = MAX_INPUT_SIZE, *,
               binary_magic: bytes | None = None) -> bytes:
    """The contents of the file at `path`, at most `limit` bytes.  With `binary_magic`,
    a file that does not start with it is text, and its first NUL byte refuses it."""
    return b"".join(_chunks(path, limit, binary_magic, None))


def read_text(path: str, limit: int = MAX_INPUT_SIZE) -> str:
    """The UTF-8 text of the file at `path`, at most `limit` bytes of it."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts = []
    for chunk in _chunks(path, limit, b"", decoder):
        parts.append(decoder.decode(chunk))
    return "".join(parts)


def _chunks(path: str, limit: int, binary_magic: bytes | None,
            decoder: codecs.IncrementalDecoder | None):
    """The file's chunks, checked as they arrive; binary_magic b"": always text."""
    fd = _open(path, limit)
    try:
        total = lines = 0
        text: bool | None = None if binary_magic else binary_magic is not None
        head = b""
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - total)):
            total += len(chunk)
            if total > limit:
                raise InputError(f"larger than the {size_text(limit)} an input may have")
            if text is None:
                head += chunk[:len(binary_magic or b"")]
                text = not head.startswith(binary_magic or b"")
            if text:
                _check_text(chunk, lines, decoder)
                lines += chunk.count(b"\n")
            yield chunk
            if total > limit:
                break
        if decoder is not None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise InputError("not UTF-8 text", lines + 1) from None
    finally:
        os.close(fd)


def _open(path: str, limit: int) -> int:
    """An fd reading `path`: O_NONBLOCK so that a FIFO opens without a writer, then
    blocking again; a directory or a regular file larger than limit refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if stat.S_ISREG(st.st_mode) and st.st_size > limit:
            raise InputError(f"larger than the {size_text(limit)} an input may have")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_text(chunk: bytes, lines: int, decoder: codecs.IncrementalDecoder | None) -> None:
    """InputError at the first NUL byte or (with a decoder) invalid UTF-8 of chunk;
    `lines` newlines came before it."""
    nul = chunk.find(b"\0")
    if nul >= 0:
        raise InputError("binary data, not text (NUL byte)",
                         lines + chunk.count(b"\n", 0, nul) + 1)
    if decoder is None:
        return
    pending = len(decoder.getstate()[0])
    try:
        decoder.decode(chunk)
    except UnicodeDecodeError as exc:
        at = max(exc.start - pending, 0)
        raise InputError("not UTF-8 text", lines + chunk.count(b"\n", 0, at) + 1) from None
    decoder.setstate((decoder.getstate()[0], 0))
