"""The trace format: JSON Lines, one call per line (docs/trace-format.md).

    {"vmsim_trace": 1, "maps": "...", "comment": "..."}                       optional header
    {"pid": 1, "call": "mmap", "args": ["NULL", 8192, "PROT_READ|PROT_WRITE",
     "MAP_PRIVATE|MAP_ANONYMOUS", -1, 0], "ret": "0x7f1a00000000"}
    {"pid": 1, "call": "mprotect", "args": ["0x7f1a00001000", 4096, "PROT_READ|PROT_WRITE|PROT_EXEC"],
     "err": "EACCES"}
    {"pid": 1, "call": "ioctl", "args": [3, "SGX_IOC_ENCLAVE_ADD_PAGES", {"src": "0x7f..",
     "offset": "0x2000", "length": 4096, "secinfo": "SGX_SECINFO_REG|SGX_SECINFO_R|SGX_SECINFO_X",
     "flags": "SGX_PAGE_MEASURE", "count": 0, "data": {"hex": "cccc..", "size": 4096}}], "ret": 0}
    {"pid": 1, "event": "signal", "signal": "SIGSEGV", "text": "..."}

Calls and their argument kinds are the syscall table's (vmsim.syscalls.table; `CALLS`
are those a trace records). Integer arguments are JSON numbers or strings holding an
expression of the strace syntax (`0x7f..`, `PROT_READ|PROT_WRITE`, `NULL`, `-1`);
paths are strings; SGX ioctl arguments are objects (the struct, decoded: strace cannot
show them) or a bare pointer when unknown. `parse_jsonl` turns every value into Python
ints, strs, bytes and dicts, validating each line; a bad line raises
TraceError("file:line: reason").
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import IO, Any

from ..arch.x86.sgx.defs import SGX_SECINFO_R, SGX_SECINFO_W, SGX_SECINFO_X
from ..drivers.sgx.uapi import SGX_PAGE_MEASURE
from ..enclave.loader import IOCTL_ARGS
from ..syscalls import strace
from ..syscalls.inputs import check_path, cut, quote, size_text
from ..syscalls.names import CONSTANTS, is_errno, with_prefix
from ..syscalls.table import fold, syscall
from ..uapi import U64

FORMAT_VERSION = 1
#: the most blob bytes a trace may carry, all its blobs together (the EPC of the
#: model's default CPU: 64 MiB)
MAX_BLOBS = 64 << 20

#: the calls a trace records (the mm calls, files, SGX ioctls, processes); an alias
#: is folded onto the call it names, but vfork is kept: its child shares the
#: parent's address space until it execs
CALLS = frozenset({
    "mmap", "munmap", "mprotect", "pkey_mprotect", "pkey_alloc", "pkey_free", "mremap",
    "mseal", "madvise", "mlock", "mlock2", "munlock", "brk", "personality", "prctl",
    "open", "close", "dup", "dup2", "ioctl", "clone", "fork", "vfork", "execve", "exit",
    "unlink", "unlinkat", "rename", "memfd_create", "msync", "mlockall", "munlockall",
    "shmget", "shmat", "shmdt", "shmctl", "process_madvise", "fcntl", "pidfd_open",
    "ftruncate",
})


class TraceError(Exception):
    """Malformed trace input: `str()` is "file:line: reason"."""

    def __init__(self, reason: str, file: str | None = None, line: int | None = None):
        self.reason, self.file, self.line = reason, file or "<trace>", line
        super().__init__(f"{self.file}:{line}: {reason}" if line is not None
                         else f"{self.file}: {reason}")


def kinds(call: str) -> tuple[str, ...]:
    """The argument kinds of a call a trace records."""
    return syscall(call).kinds


# --------------------------------------------------------------------------- SGX ioctls

SGX_IOCTLS = with_prefix("SGX_IOC_")
SGX_IOCTL_NAMES = {v: k for k, v in SGX_IOCTLS.items()}
#: the decoded struct of each SGX ioctl: field -> kind ("int", "blob"); the blobs are
#: the bytes a pointer field points to, carried inline (docs/trace-format.md)
_BLOBS = {"SGX_IOC_ENCLAVE_CREATE": {"secs": "blob"},
          "SGX_IOC_ENCLAVE_ADD_PAGES": {"data": "blob"},
          "SGX_IOC_ENCLAVE_INIT": {"sigstruct": "blob"}}
SGX_STRUCTS: dict[str, dict[str, str]] = {
    name: {**{f: "int" for f in IOCTL_ARGS[cmd][1]}, **_BLOBS.get(name, {})}
    if cmd in IOCTL_ARGS else {}
    for name, cmd in SGX_IOCTLS.items()
}


# --------------------------------------------------------------------------- values

def _shown(v: object) -> str:
    """A JSON value in a one-line reason: strings and numbers cut short, arrays and
    objects by their kind (they may nest too deeply to print)."""
    if isinstance(v, str):
        return quote(v)
    if v is None or isinstance(v, (bool, int, float)):
        return cut(json.dumps(v))
    return "an array" if isinstance(v, list) else "an object"


def parse_int(v: object, what: str = "argument") -> int:
    """An integer argument: a JSON number or an expression string. ValueError."""
    if v is None:
        return 0
    if isinstance(v, bool):
        raise ValueError(f"{what}: expected an integer, got {json.dumps(v)}")
    if isinstance(v, int):
        if abs(v) >> strace.VALUE_BITS:
            raise ValueError(f"{what}: {cut(str(v))} does not fit in {strace.VALUE_BITS} bits")
        return v
    if isinstance(v, float):
        raise ValueError(f"{what}: expected an integer, got {_shown(v)}")
    if not isinstance(v, str):
        raise ValueError(f"{what}: expected an integer, got {type(v).__name__}")
    try:
        return strace.int_value(v)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


class BlobBudget:
    """The blob bytes a trace may still carry: MAX_BLOBS for all its records together,
    taken before a blob is built."""

    def __init__(self) -> None:
        self.left = MAX_BLOBS

    def take(self, size: int, what: str) -> None:
        if size > self.left:
            raise ValueError(f"{what}: blob of {size} bytes is too large: a trace carries "
                             f"at most {size_text(MAX_BLOBS)} of blobs in all")
        self.left -= size


def parse_blob(v: object, what: str, budget: BlobBudget) -> bytes:
    """{"hex": "..", "size": N} (trailing zeros implied up to size), or a hex string;
    its size taken from budget."""
    if isinstance(v, str):
        v = {"hex": v}
    if not isinstance(v, dict) or "hex" not in v or not set(v) <= {"hex", "size"}:
        raise ValueError(f"{what}: expected {{\"hex\": ..., \"size\": N}}")
    h = v["hex"]
    if not isinstance(h, str) or len(h) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", h):
        raise ValueError(f"{what}: bad hex string")
    size = v.get("size", len(h) // 2)
    if not isinstance(size, int) or isinstance(size, bool) or size < len(h) // 2:
        raise ValueError(f"{what}: size {_shown(size)} smaller than the hex data")
    budget.take(size, what)
    data = bytes.fromhex(h)
    return data + bytes(size - len(data))


def blob_json(data: bytes) -> dict:
    trimmed = data.rstrip(b"\0")
    return {"hex": trimmed.hex(), "size": len(data)}


# --------------------------------------------------------------------------- records

@dataclass
class Record:
    """One traced call (or an event: `call` None, `event` set).

    args are Python values: ints, strs (paths), dicts (SGX structs, blobs as bytes).
    `ret` is the recorded return value, `err` the recorded errno name, both None for
    `= ?`; `fd_path` what strace -y printed for the fd argument; `line`/`text` where
    the call came from (`line` the completing line of an `<unfinished ...>` call);
    `argv`/`envp` an execve's strings (None when the trace does not show them)."""
    call: str | None
    args: list = field(default_factory=list)
    pid: int | None = None
    ret: int | None = None
    err: str | None = None
    line: int | None = None
    text: str | None = None
    fd_path: str | None = None
    ret_path: str | None = None
    event: str | None = None
    signal: str | None = None
    comment: str | None = None
    argv: list[str] | None = None
    envp: list[str] | None = None
    #: an access event: the address, "r"/"w"/"x", the si_code of its fault if any; in
    #: enclave mode the TCS and the exception ("aex"|"eenter", vector, error code, addr)
    addr: int | None = None
    mode: str | None = None
    code: str | None = None
    tcs: int | None = None
    exception: tuple | None = None

    @property
    def unknown_result(self) -> bool:
        return self.ret is None and self.err is None


def _check_args(call: str, args: list, blobs: BlobBudget) -> list:
    entry = syscall(call)
    need, most = entry.required, len(entry.kinds)
    if not need <= len(args) <= most:
        want = str(need) if need == most else f"{need} to {most}"
        raise ValueError(f"{call} takes {want} arguments, got {len(args)}")
    out: list = []
    cmd = None
    for i, (kind, v) in enumerate(zip(entry.kinds, args, strict=False)):
        kind = kind.rstrip("?")
        what = f"{call} argument {i + 1}"
        if kind in ("path", "str"):
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{what}: expected a path string")
            if kind == "path" and v is not None:
                check_path(v)
            out.append(v)
        elif kind == "ioctlcmd":
            cmd = parse_int(v, what) & 0xFFFFFFFF
            out.append(cmd)
        elif kind == "ioctlarg":
            out.append(_check_ioctl_arg(cmd, v, what, blobs))
        elif kind == "iovec":
            out.append(_check_iovec(v, what))
        else:
            out.append(parse_int(v, what))
    for kind in entry.kinds[len(args):]:
        out.append(None if kind.rstrip("?") in ("path", "str") else 0)
    return out


def _check_iovec(v: object, what: str) -> list[tuple[int, int]]:
    """process_madvise's struct iovec[]: a list of [base, len] pairs."""
    if not isinstance(v, list) or len(v) > 1024 or not all(
            isinstance(x, list) and len(x) == 2 for x in v):
        raise ValueError(f"{what}: expected at most 1024 [iov_base, iov_len] pairs")
    return [(parse_int(b, what), parse_int(n, what)) for b, n in v]


def _check_ioctl_arg(cmd: int | None, v: object, what: str,
                     blobs: BlobBudget) -> int | dict:
    if not isinstance(v, dict):
        return parse_int(v, what)       # a bare pointer (strace)
    name = SGX_IOCTL_NAMES.get(cmd) if cmd is not None else None
    if name is None:
        raise ValueError(f"{what}: a decoded struct is only known for SGX ioctls")
    fields = SGX_STRUCTS[name]
    out: dict[str, int | bytes] = {}
    for k, val in v.items():
        if k == "ptr":
            out[k] = parse_int(val, f"{what}.{cut(k)}")
        elif k not in fields:
            raise ValueError(f"{what}: {name} has no field {quote(k)} "
                             f"(fields: {', '.join(fields) or 'none'}, ptr)")
        elif fields[k] == "blob":
            out[k] = parse_blob(val, f"{what}.{cut(k)}", blobs)
        else:
            out[k] = parse_int(val, f"{what}.{cut(k)}")
    return out


#: what a record without a call is: a signal, an exit, a thread's exec taking over, a
#: call line kept without being decoded (its text and the reason in `comment`), a
#: memory access (`addr`, `mode`; `signal` and `code` when it faulted; in enclave
#: mode `tcs`, and `exception` when it did not reach EEXIT)
EVENTS = ("signal", "exited", "killed", "superseded", "undecoded", "access")


def _check_event(obj: dict, pid: int | None, line: int | None) -> Record:
    ev = obj["event"]
    if ev not in EVENTS:
        raise ValueError(f"unknown event {_shown(ev)} ({', '.join(EVENTS)})")
    sig = obj.get("signal")
    if sig is not None and not (isinstance(sig, str) and re.fullmatch(r"SIG[A-Z0-9]+", sig)):
        raise ValueError(f"bad signal {_shown(sig)}")
    text, comment = obj.get("text"), obj.get("comment")
    rec = Record(None, pid=pid, event=ev, signal=sig, line=line,
                 text=text if isinstance(text, str) else None,
                 comment=comment if isinstance(comment, str) else None)
    if ev == "access":
        _check_access(obj, rec)
    return rec


def _check_access(obj: dict, rec: Record) -> None:
    """An access record's address, mode ("r", "w", "x") and fault (si_code with signal)."""
    rec.addr = parse_int(obj.get("addr"), "addr") & U64
    rec.mode = obj.get("mode")
    if rec.mode not in ("r", "w", "x"):
        raise ValueError(f"access mode {_shown(rec.mode)} (r, w or x)")
    code = obj.get("code")
    if (code is None) != (rec.signal is None) or \
            code is not None and not (isinstance(code, str) and re.fullmatch(r"[A-Z_]+", code)):
        raise ValueError("an access that faulted has \"signal\" and \"code\" (SEGV_ACCERR, ...)")
    rec.code = code
    if obj.get("tcs") is not None:
        rec.tcs = parse_int(obj["tcs"], "tcs") & U64
        rec.exception = _check_exception(obj.get("exception"))
    if rec.text is None:
        rec.text = f"access({rec.addr:#x}, {rec.mode})"


def _check_exception(v: object) -> tuple | None:
    """An enclave access's exception: ("aex"|"eenter", vector, error code, address)."""
    if v is None:
        return None
    if not isinstance(v, dict) or v.get("at") not in ("aex", "eenter"):
        raise ValueError("\"exception\" is {\"at\": \"aex\" or \"eenter\", \"vector\", "
                         "\"error_code\", \"addr\"}")
    return (v["at"], *(parse_int(v.get(k), f"exception.{k}")
                       for k in ("vector", "error_code", "addr")))


def record_from_json(obj: object, line: int | None = None,
                     blobs: BlobBudget | None = None) -> Record | None:
    """Validate one decoded JSON line. None for the header. Raises ValueError. Its
    blobs are taken from `blobs`, the trace's (default: a budget of its own)."""
    if not isinstance(obj, dict):
        raise ValueError("a trace line must be a JSON object")
    if "vmsim_trace" in obj:
        if obj["vmsim_trace"] != FORMAT_VERSION:
            raise ValueError(f"unsupported trace format version {_shown(obj['vmsim_trace'])}")
        return None
    pid = obj.get("pid")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or pid < 0):
        raise ValueError(f"bad pid {_shown(pid)}")
    if "event" in obj:
        return _check_event(obj, pid, line)
    unknown = set(obj) - {"pid", "call", "args", "ret", "err", "fd_path", "ret_path",
                          "text", "line", "comment", "argv", "envp"}
    if unknown:
        raise ValueError(f"unknown key {quote(min(unknown))}")
    name = obj.get("call")
    if not isinstance(name, str):
        raise ValueError("missing \"call\"")
    call = fold(name, CALLS)
    if call is None:
        raise ValueError(f"unknown call {quote(name)}")
    args = obj.get("args", [])
    if not isinstance(args, list):
        raise ValueError("\"args\" must be a list")
    args = _check_args(call, args, blobs or BlobBudget())
    ret = err = None
    if "ret" in obj and "err" in obj:
        raise ValueError("a call has \"ret\" or \"err\", not both")
    if "ret" in obj and obj["ret"] is not None:
        ret = parse_int(obj["ret"], "ret")
    if "err" in obj:
        err = obj["err"]
        if not isinstance(err, str) or not is_errno(err):
            raise ValueError(f"unknown errno {_shown(err)}")
    for k in ("fd_path", "ret_path", "text", "comment"):
        if k in obj and not isinstance(obj[k], (str, type(None))):
            raise ValueError(f"\"{k}\" must be a string")
    for k in ("fd_path", "ret_path"):
        if obj.get(k) is not None:
            check_path(obj[k])
    return Record(call, args, pid, ret, err, line, obj.get("text"), obj.get("fd_path"),
                  obj.get("ret_path"), comment=obj.get("comment"),
                  argv=_strings(obj.get("argv"), "argv"), envp=_strings(obj.get("envp"), "envp"))


def _strings(v: object, what: str) -> list[str] | None:
    """An execve's argv or envp: a list of strings, or absent."""
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"\"{what}\" must be a list of strings")
    return v


@dataclass
class Trace:
    records: list[Record]
    path: str | None = None
    maps: str | None = None          # initial maps from the header, if any
    comment: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # strace: unknown syscall -> count
    source: str = "jsonl"
    #: a recorded run's snapshots (`vmsim record`): maps at the exec event, maps and
    #: smaps of the first process at its exit; whether its CPU had PKU
    exec_maps: str | None = None
    exit_maps: str | None = None
    exit_smaps: str | None = None
    pkeys: bool | None = None
    #: the ->mprotect hook design the trace was made on (`vmsim check --design`)
    design: str | None = None

#: the header's keys holding a recorded run's snapshots (strings)
SNAPSHOTS = ("exec_maps", "exit_maps", "exit_smaps")


def parse_jsonl(text: str, path: str | None = None) -> Trace:
    """JSON Lines text -> Trace. Raises TraceError(file, line, reason)."""
    records: list[Record] = []
    header: dict[str, Any] = {}
    blobs = BlobBudget()
    for no, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TraceError(f"not valid JSON: {exc.msg} (column {exc.colno})", path, no) \
                from None
        except ValueError:          # a number past Python's int-conversion limit
            raise TraceError("not valid JSON: a number with too many digits", path, no) \
                from None
        except RecursionError:
            raise TraceError("JSON nested too deeply", path, no) from None
        try:
            rec = record_from_json(obj, no, blobs)
        except (ValueError, OverflowError) as exc:
            raise TraceError(str(exc), path, no) from None
        if rec is None:
            if records:
                raise TraceError("the header must be the first line", path, no)
            header = _check_header(obj, path, no)
            continue
        records.append(rec)
    return Trace(records, path, header.pop("maps", None), header.pop("comment", None),
                 skipped=header.pop("skipped", None) or {}, **header)


def _check_header(obj: dict, path: str | None, no: int) -> dict:
    """The header's values by Trace field; TraceError for a value of the wrong type."""
    out: dict[str, Any] = {}
    for k in ("maps", "comment", "design", *SNAPSHOTS):
        if obj.get(k) is not None and not isinstance(obj[k], str):
            raise TraceError(f"header \"{k}\" must be a string", path, no)
        out[k] = obj.get(k)
    if obj.get("pkeys") is not None and not isinstance(obj["pkeys"], bool):
        raise TraceError("header \"pkeys\" must be true or false", path, no)
    out["pkeys"] = obj.get("pkeys")
    skipped = obj.get("skipped") or {}
    if not isinstance(skipped, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in skipped.items()):
        raise TraceError("header \"skipped\" must map names to counts", path, no)
    out["skipped"] = skipped
    return out


# --------------------------------------------------------------------------- writing

_CLONE_FLAGS = with_prefix("CLONE_")


def format_clone_flags(v: int) -> str | int:
    """clone's flags symbolically, the exit signal (SIGCHLD) last; 0 when none."""
    parts = [n for n, b in _CLONE_FLAGS.items() if b and v & b == b]
    rest = v & ~sum(_CLONE_FLAGS[n] for n in parts)
    if rest == CONSTANTS["SIGCHLD"]:
        parts.append("SIGCHLD")
    elif rest:
        parts.append(f"{rest:#x}")
    return "|".join(parts) or 0


def _fmt_int(kind: str, v: int) -> int | str:
    """The JSON value of an integer argument: symbolic where that reads better."""
    if kind == "addr":
        return "NULL" if v == 0 else (f"{v & U64:#x}" if v >= 0 else v)
    if kind == "prot" and v == 0:
        return "PROT_NONE"
    if kind in ("prot", "mapflags", "mremapflags", "madv", "oflags", "pkeyrights",
                "mlockflags", "persona", "prctl"):
        return strace.format_value(kind, v)
    if kind == "ioctlcmd":
        return SGX_IOCTL_NAMES.get(v, f"{v:#x}")
    if kind == "cloneflags":
        return format_clone_flags(v)
    return v


_PAGE_TYPES = {CONSTANTS[n] >> 8: n for n in ("SGX_SECINFO_SECS", "SGX_SECINFO_TCS",
                                               "SGX_SECINFO_REG", "SGX_SECINFO_TRIM")}


def secinfo_text(v: int) -> str:
    """SECINFO flags symbolically: `SGX_SECINFO_REG|SGX_SECINFO_R|SGX_SECINFO_X`."""
    t = (v >> 8) & 0xFF
    parts = [_PAGE_TYPES.get(t, f"{t << 8:#x}")]
    for name, bit in (("SGX_SECINFO_R", SGX_SECINFO_R), ("SGX_SECINFO_W", SGX_SECINFO_W),
                      ("SGX_SECINFO_X", SGX_SECINFO_X)):
        if v & bit:
            parts.append(name)
    rest = v & ~0xFF07
    if rest:
        parts.append(f"{rest:#x}")
    return "|".join(parts)


def record_to_json(rec: Record) -> dict:
    if rec.call is None:
        d: dict[str, Any] = {"pid": rec.pid, "event": rec.event}
        if rec.signal:
            d["signal"] = rec.signal
        if rec.text:
            d["text"] = rec.text
        if rec.comment:
            d["comment"] = rec.comment
        if rec.event == "access":
            assert rec.addr is not None
            d.update({"addr": f"{rec.addr:#x}", "mode": rec.mode})
            if rec.code:
                d["code"] = rec.code
            if rec.tcs is not None:
                d["tcs"] = f"{rec.tcs:#x}"
            if rec.exception is not None:
                at, vector, code, addr = rec.exception
                d["exception"] = {"at": at, "vector": vector, "error_code": f"{code:#x}",
                                  "addr": f"{addr:#x}"}
        return d
    call_kinds = kinds(rec.call)
    args: list = []
    for kind, v in zip(call_kinds, rec.args, strict=False):
        if isinstance(v, dict):
            args.append(_struct_json(v))
        elif isinstance(v, list):           # an iovec
            args.append([[f"{b & U64:#x}", n] for b, n in v])
        elif isinstance(v, str) or v is None:
            args.append(v)
        else:
            args.append(_fmt_int(kind.rstrip("?"), v))
    # drop trailing optional arguments left at their default
    while args and call_kinds[len(args) - 1].endswith("?") and rec.args[len(args) - 1] in (0, None):
        args.pop()
    d = {"pid": rec.pid, "call": rec.call, "args": args}
    if rec.err is not None:
        d["err"] = rec.err
    elif rec.ret is not None:
        d["ret"] = f"{rec.ret & U64:#x}" if syscall(rec.call).addr_result else rec.ret
    if rec.fd_path:
        d["fd_path"] = rec.fd_path
    if rec.ret_path:
        d["ret_path"] = rec.ret_path
    if rec.line is not None:
        d["line"] = rec.line
    if rec.comment:
        d["comment"] = rec.comment
    for k, strings in (("argv", rec.argv), ("envp", rec.envp)):
        if strings is not None:
            d[k] = strings
    return d


def _struct_json(v: dict) -> dict:
    out: dict[str, Any] = {}
    for k, val in v.items():
        if isinstance(val, bytes):
            out[k] = blob_json(val)
        elif k == "secinfo":
            out[k] = secinfo_text(val)
        elif k == "flags" and val == SGX_PAGE_MEASURE:
            out[k] = "SGX_PAGE_MEASURE"
        elif k in ("src", "ptr") or k in ("offset",) and val:
            out[k] = f"{val:#x}"
        else:
            out[k] = val
    return out


def write_trace(records: list[Record], f: IO[str], maps: str | None = None,
                comment: str | None = None, header: dict | None = None) -> None:
    """Write records as JSON Lines to the text file f (with a header line, `header`
    adding a recorded run's keys)."""
    head: dict[str, Any] = {"vmsim_trace": FORMAT_VERSION}
    if comment:
        head["comment"] = comment
    if maps is not None:
        head["maps"] = maps
    head.update({k: v for k, v in (header or {}).items() if v is not None})
    f.write(json.dumps(head) + "\n")
    for rec in records:
        f.write(json.dumps(record_to_json(rec)) + "\n")


def dumps_trace(records: list[Record], maps: str | None = None,
                comment: str | None = None) -> str:
    buf = io.StringIO()
    write_trace(records, buf, maps, comment)
    return buf.getvalue()
