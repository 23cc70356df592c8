"""Reading a trace file: JSON Lines (vmsim.trace.format) or strace text
(vmsim.trace.strace), told apart by the name or the first line; the file read as
vmsim.syscalls.inputs reads every input, size-capped."""

from __future__ import annotations

from ..syscalls.inputs import InputError, read_text
from .format import Trace, TraceError, parse_jsonl
from .strace import parse_strace


def read_trace(text: str, path: str | None = None) -> Trace:
    """A JSON Lines trace (a .jsonl/.json name, or a first line starting with `{`: a
    JSON Lines record is an object), else strace text (whose first line may start
    with `[pid N]`)."""
    first = text.lstrip()[:1]
    if first == "{" or (path or "").endswith((".jsonl", ".json")):
        return parse_jsonl(text, path)
    return parse_strace(text, path)


def load_trace(path: str) -> Trace:
    """The trace in file `path`, of at most MAX_INPUT_SIZE bytes; TraceError naming the
    file (and line) when it is not readable UTF-8 text, is empty or does not parse."""
    try:
        text = read_text(path)
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror}", path) from None
    except InputError as exc:
        raise TraceError(exc.reason, path, exc.line) from None
    if not text.strip():
        raise TraceError("empty file: no strace lines, no JSON Lines records", path)
    return read_trace(text, path)
