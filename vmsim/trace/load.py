"""Reading a trace file: JSON Lines (vmsim.trace.format) or strace text
(vmsim.trace.strace), told apart by the name or the first line."""

from __future__ import annotations

from .format import Trace, TraceError, parse_jsonl
from .strace import parse_strace


def read_trace(text: str, path: str | None = None) -> Trace:
    """A JSON Lines trace (a .jsonl/.json name, or a first line starting with `{` or
    `[`), else strace text."""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if first.startswith(("{", "[")) or (path or "").endswith((".jsonl", ".json")):
        return parse_jsonl(text, path)
    return parse_strace(text, path)


def load_trace(path: str) -> Trace:
    """The trace in file `path`; TraceError naming the file (and line) when it is not
    readable UTF-8 text or does not parse."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror}", path) from None
    if b"\0" in raw:
        raise TraceError("binary data, not a trace (NUL byte)", path,
                         raw[:raw.index(b"\0")].count(b"\n") + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TraceError("not UTF-8 text", path, raw[:exc.start].count(b"\n") + 1) from None
    return read_trace(text, path)
