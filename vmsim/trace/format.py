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

Integer arguments are JSON numbers or strings holding an expression of scenario.py's
grammar (`0x7f..`, `PROT_READ|PROT_WRITE`, `NULL`, `-1`); paths are strings; SGX
ioctl arguments are objects (the struct, decoded: strace cannot show them) or a bare
pointer when unknown. `read_trace` turns every value into Python ints, strs, bytes and
dicts, validating each line; a bad line raises TraceError("file:line: reason").
"""

from __future__ import annotations

import errno as _errno
import json
import re
from dataclasses import dataclass, field

from ..diff import scenario as S
from ..drivers.sgx import uapi as sgx

U64 = (1 << 64) - 1
FORMAT_VERSION = 1
#: the largest byte blob a trace may carry (an ADD_PAGES source of 64 MiB)
MAX_BLOB = 64 << 20


class TraceError(Exception):
    """Malformed trace input: `str()` is "file:line: reason"."""

    def __init__(self, reason: str, file: str | None = None, line: int | None = None):
        self.reason, self.file, self.line = reason, file or "<trace>", line
        super().__init__(f"{self.file}:{line}: {reason}" if line is not None
                         else f"{self.file}: {reason}")


# --------------------------------------------------------------------------- calls

#: call name -> argument kinds, as scenario.CALLS ('?': optional), plus the calls a
#: trace carries that a scenario does not
KINDS: dict[str, tuple[str, ...]] = dict(S.CALLS)
for _n in ("touch", "peek", "poke", "set_pkru", "mount", "mkdir", "unlink", "pwrite64",
           "ftruncate"):
    KINDS.pop(_n, None)
KINDS.update({
    "ioctl": ("fd", "ioctlcmd", "ioctlarg?"),
    "clone": ("cloneflags?",),          # the flags only (clone, clone3); ret = child pid
    "fork": (),
    "vfork": (),
    "execve": ("path",),
    "exit": ("int?",),
    "dup2": ("fd", "fd"),
})
#: strace names folded onto ours
ALIASES = {"mmap2": "mmap", "exit_group": "exit", "clone3": "clone", "openat": "open",
           "pwrite": "pwrite64"}

CLONE_VM = 0x00000100
CLONE_VFORK = 0x00004000
CLONE_THREAD = 0x00010000
CLONE_FLAGS = {"CLONE_VM": CLONE_VM, "CLONE_FS": 0x200, "CLONE_FILES": 0x400,
               "CLONE_SIGHAND": 0x800, "CLONE_PIDFD": 0x1000, "CLONE_PTRACE": 0x2000,
               "CLONE_VFORK": CLONE_VFORK, "CLONE_PARENT": 0x8000, "CLONE_THREAD": CLONE_THREAD,
               "CLONE_NEWNS": 0x20000, "CLONE_SYSVSEM": 0x40000, "CLONE_SETTLS": 0x80000,
               "CLONE_PARENT_SETTID": 0x100000, "CLONE_CHILD_CLEARTID": 0x200000,
               "CLONE_DETACHED": 0x400000, "CLONE_UNTRACED": 0x800000,
               "CLONE_CHILD_SETTID": 0x1000000, "CLONE_NEWCGROUP": 0x2000000,
               "CLONE_NEWUTS": 0x4000000, "CLONE_NEWIPC": 0x8000000,
               "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
               "CLONE_NEWNET": 0x40000000, "CLONE_IO": 0x80000000, "SIGCHLD": 17}

SGX_IOCTLS = {name: getattr(sgx, name) for name in dir(sgx) if name.startswith("SGX_IOC_")}
SGX_IOCTL_NAMES = {v: k for k, v in SGX_IOCTLS.items()}
#: the decoded struct of each SGX ioctl: field -> kind ("int", "blob", "secinfo")
SGX_STRUCTS = {
    "SGX_IOC_ENCLAVE_CREATE": {"src": "int", "secs": "blob"},
    "SGX_IOC_ENCLAVE_ADD_PAGES": {"src": "int", "offset": "int", "length": "int",
                                  "secinfo": "int", "flags": "int", "count": "int",
                                  "data": "blob"},
    "SGX_IOC_ENCLAVE_INIT": {"sigstruct": "blob"},
    "SGX_IOC_ENCLAVE_PROVISION": {"fd": "int"},
    "SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS": {"offset": "int", "length": "int",
                                             "permissions": "int", "result": "int",
                                             "count": "int"},
    "SGX_IOC_ENCLAVE_MODIFY_TYPES": {"offset": "int", "length": "int", "page_type": "int",
                                     "result": "int", "count": "int"},
    "SGX_IOC_ENCLAVE_REMOVE_PAGES": {"offset": "int", "length": "int", "count": "int"},
    "SGX_IOC_VEPC_REMOVE_ALL": {},
}
#: extra names accepted in integer expressions of traces (besides scenario.CONSTANTS)
EXTRA_NAMES = {k: getattr(sgx, k) for k in dir(sgx)
               if k.startswith(("SGX_SECINFO_", "SGX_PAGE_", "SGX_ATTR_"))
               and isinstance(getattr(sgx, k), int)}
EXTRA_NAMES.update(SGX_IOCTLS)
EXTRA_NAMES.update(CLONE_FLAGS)
EXTRA_NAMES.update({  # open(2) and mmap(2) names strace prints that vmsim.uapi lacks
    "O_LARGEFILE": 0o100000, "O_NOATIME": 0o1000000, "O_DIRECT": 0o40000,
    "O_DSYNC": 0o10000, "O_SYNC": 0o4010000, "O_TMPFILE": 0o20200000, "O_ASYNC": 0o20000,
    "O_NDELAY": 0o4000, "O_RSYNC": 0o4010000, "FASYNC": 0o20000,
    "MAP_HUGE_2MB": 21 << 26, "MAP_HUGE_1GB": 30 << 26, "MAP_HUGE_64KB": 16 << 26,
    "MAP_FILE": 0, "MAP_ANON": 0x20, "PROT_NONE": 0, "MAP_SHARED_VALIDATE": 3,
    "MREMAP_DONTUNMAP": 4, "PKEY_DISABLE_EXECUTE": 4, "MLOCK_ONFAULT": 1,
})

_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def parse_int(v, what: str = "argument") -> int:
    """An integer argument: a JSON number or an expression string. ValueError."""
    if isinstance(v, bool) or v is None:
        if v is None:
            return 0
        raise ValueError(f"{what}: expected an integer, got {json.dumps(v)}")
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        raise ValueError(f"{what}: expected an integer, got {v}")
    if not isinstance(v, str):
        raise ValueError(f"{what}: expected an integer, got {type(v).__name__}")
    text = _IDENT.sub(lambda m: str(EXTRA_NAMES[m.group(0)])
                      if m.group(0) in EXTRA_NAMES and m.group(0) not in S.CONSTANTS
                      else m.group(0), v)
    try:
        return S.parse_expr(text).eval({"W": S.WINDOW_BASE, "B": S.DEFAULT_BRK})
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def parse_blob(v, what: str) -> bytes:
    """{"hex": "..", "size": N} (trailing zeros implied up to size), or a hex string."""
    if isinstance(v, str):
        v = {"hex": v}
    if not isinstance(v, dict) or "hex" not in v or not set(v) <= {"hex", "size"}:
        raise ValueError(f"{what}: expected {{\"hex\": ..., \"size\": N}}")
    h = v["hex"]
    if not isinstance(h, str) or len(h) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", h):
        raise ValueError(f"{what}: bad hex string")
    data = bytes.fromhex(h)
    size = v.get("size", len(data))
    if not isinstance(size, int) or isinstance(size, bool) or not len(data) <= size <= MAX_BLOB:
        raise ValueError(f"{what}: size {size!r} smaller than the hex data or too large")
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
    the call came from."""
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

    @property
    def unknown_result(self) -> bool:
        return self.ret is None and self.err is None


def _check_args(call: str, args: list) -> list:
    kinds = KINDS[call]
    need = sum(1 for k in kinds if not k.endswith("?"))
    if not need <= len(args) <= len(kinds):
        want = str(need) if need == len(kinds) else f"{need} to {len(kinds)}"
        raise ValueError(f"{call} takes {want} arguments, got {len(args)}")
    out = []
    cmd = None
    for i, (kind, v) in enumerate(zip(kinds, args)):
        kind = kind.rstrip("?")
        what = f"{call} argument {i + 1}"
        if kind in ("path", "str"):
            if v is None:
                out.append(None)
            elif not isinstance(v, str):
                raise ValueError(f"{what}: expected a path string")
            else:
                out.append(v)
        elif kind == "ioctlcmd":
            cmd = parse_int(v, what) & 0xFFFFFFFF
            out.append(cmd)
        elif kind == "ioctlarg":
            out.append(_check_ioctl_arg(cmd, v, what))
        else:
            out.append(parse_int(v, what))
    for kind in kinds[len(args):]:
        out.append(None if kind.rstrip("?") in ("path", "str") else 0)
    return out


def _check_ioctl_arg(cmd, v, what):
    if not isinstance(v, dict):
        return parse_int(v, what)       # a bare pointer (strace)
    name = SGX_IOCTL_NAMES.get(cmd)
    if name is None:
        raise ValueError(f"{what}: a decoded struct is only known for SGX ioctls")
    fields = SGX_STRUCTS[name]
    out = {}
    for k, val in v.items():
        if k == "ptr":
            out[k] = parse_int(val, f"{what}.{k}")
        elif k not in fields:
            raise ValueError(f"{what}: {name} has no field {k!r} "
                             f"(fields: {', '.join(fields) or 'none'}, ptr)")
        elif fields[k] == "blob":
            out[k] = parse_blob(val, f"{what}.{k}")
        else:
            out[k] = parse_int(val, f"{what}.{k}")
    return out


def record_from_json(obj, path=None, line=None) -> Record | None:
    """Validate one decoded JSON line. None for the header. Raises ValueError."""
    if not isinstance(obj, dict):
        raise ValueError("a trace line must be a JSON object")
    if "vmsim_trace" in obj:
        if obj["vmsim_trace"] != FORMAT_VERSION:
            raise ValueError(f"unsupported trace format version {obj['vmsim_trace']!r}")
        return None
    pid = obj.get("pid")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or pid < 0):
        raise ValueError(f"bad pid {pid!r}")
    if "event" in obj:
        ev = obj["event"]
        if ev not in ("signal", "exited", "killed"):
            raise ValueError(f"unknown event {ev!r} (signal, exited, killed)")
        sig = obj.get("signal")
        if sig is not None and not (isinstance(sig, str) and re.fullmatch(r"SIG[A-Z0-9]+", sig)):
            raise ValueError(f"bad signal {sig!r}")
        return Record(None, pid=pid, event=ev, signal=sig, line=line,
                      text=obj.get("text") if isinstance(obj.get("text"), str) else None)
    unknown = set(obj) - {"pid", "call", "args", "ret", "err", "fd_path", "ret_path",
                          "text", "line", "comment"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    call = obj.get("call")
    if not isinstance(call, str):
        raise ValueError("missing \"call\"")
    call = ALIASES.get(call, call)
    if call not in KINDS:
        raise ValueError(f"unknown call {call!r}")
    args = obj.get("args", [])
    if not isinstance(args, list):
        raise ValueError("\"args\" must be a list")
    args = _check_args(call, args)
    ret = err = None
    if "ret" in obj and "err" in obj:
        raise ValueError("a call has \"ret\" or \"err\", not both")
    if "ret" in obj and obj["ret"] is not None:
        ret = parse_int(obj["ret"], "ret")
    if "err" in obj:
        err = obj["err"]
        if not isinstance(err, str) or not re.fullmatch(r"E[A-Z0-9]+", err) or \
                not hasattr(_errno, err):
            raise ValueError(f"unknown errno {err!r}")
    for k in ("fd_path", "ret_path", "text", "comment"):
        if k in obj and not isinstance(obj[k], (str, type(None))):
            raise ValueError(f"\"{k}\" must be a string")
    return Record(call, args, pid, ret, err, line, obj.get("text"), obj.get("fd_path"),
                  obj.get("ret_path"), comment=obj.get("comment"))


@dataclass
class Trace:
    records: list
    path: str | None = None
    maps: str | None = None          # initial maps from the header, if any
    comment: str | None = None
    skipped: dict = field(default_factory=dict)    # strace: unknown syscall -> count
    source: str = "jsonl"


def parse_jsonl(text: str, path: str | None = None) -> Trace:
    records = []
    maps = comment = None
    for no, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TraceError(f"not valid JSON: {exc.msg} (column {exc.colno})", path, no) \
                from None
        except RecursionError:
            raise TraceError("JSON nested too deeply", path, no) from None
        try:
            rec = record_from_json(obj, path, no)
        except (ValueError, OverflowError) as exc:
            raise TraceError(str(exc), path, no) from None
        if rec is None:
            if records:
                raise TraceError("the header must be the first line", path, no)
            m = obj.get("maps")
            if m is not None and not isinstance(m, str):
                raise TraceError("header \"maps\" must be a string", path, no)
            maps, comment = m, obj.get("comment")
            continue
        records.append(rec)
    return Trace(records, path, maps, comment)


def read_trace(text: str, path: str | None = None) -> Trace:
    """A JSON Lines trace (a .jsonl/.json name, or a first line starting with `{` or
    `[`), else strace text."""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if first.startswith(("{", "[")) or (path or "").endswith((".jsonl", ".json")):
        return parse_jsonl(text, path)
    from .strace import parse_strace
    return parse_strace(text, path)


def load_trace(path: str) -> Trace:
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


# --------------------------------------------------------------------------- writing

_NOWIN = {"W": 1 << 70, "B": 1 << 70}


def _fmt_int(kind: str, v: int):
    """The JSON value of an integer argument: symbolic where that reads better."""
    if kind in ("addr",):
        return "NULL" if v == 0 else (f"{v & U64:#x}" if v >= 0 else v)
    if kind == "prot" and v == 0:
        return "PROT_NONE"
    if kind in ("prot", "mapflags", "mremapflags", "madv", "oflags", "pkeyrights",
                "mlockflags", "persona", "prctl"):
        return S.format_value(kind, v, _NOWIN)
    if kind == "ioctlcmd":
        return SGX_IOCTL_NAMES.get(v, f"{v:#x}")
    if kind == "cloneflags":
        parts = [n for n, b in CLONE_FLAGS.items() if b and n != "SIGCHLD" and v & b == b]
        rest = v & ~sum(CLONE_FLAGS[n] for n in parts)
        if rest == 17:
            parts.append("SIGCHLD")
        elif rest:
            parts.append(f"{rest:#x}")
        return "|".join(parts) or 0
    return v


def _secinfo_text(v: int) -> str:
    t = (v >> 8) & 0xFF
    parts = [{0: "SGX_SECINFO_SECS", 1: "SGX_SECINFO_TCS", 2: "SGX_SECINFO_REG",
              4: "SGX_SECINFO_TRIM"}.get(t, f"{t << 8:#x}")]
    for n in ("R", "W", "X"):
        if v & getattr(sgx, "SGX_SECINFO_" + n):
            parts.append("SGX_SECINFO_" + n)
    rest = v & ~0xFF07
    if rest:
        parts.append(f"{rest:#x}")
    return "|".join(parts)


def record_to_json(rec: Record) -> dict:
    if rec.call is None:
        d = {"pid": rec.pid, "event": rec.event}
        if rec.signal:
            d["signal"] = rec.signal
        if rec.text:
            d["text"] = rec.text
        return d
    kinds = KINDS[rec.call]
    args = []
    for kind, v in zip(kinds, rec.args):
        kind = kind.rstrip("?")
        if isinstance(v, dict):
            args.append(_struct_json(v))
        elif isinstance(v, str) or v is None:
            args.append(v)
        else:
            args.append(_fmt_int(kind, v))
    # drop trailing optional arguments left at their default
    while args and kinds[len(args) - 1].endswith("?") and rec.args[len(args) - 1] in (0, None):
        args.pop()
    d = {"pid": rec.pid, "call": rec.call, "args": args}
    if rec.err is not None:
        d["err"] = rec.err
    elif rec.ret is not None:
        d["ret"] = f"{rec.ret & U64:#x}" if rec.call in ("mmap", "mremap", "brk") \
            else rec.ret
    if rec.fd_path:
        d["fd_path"] = rec.fd_path
    if rec.ret_path:
        d["ret_path"] = rec.ret_path
    if rec.line is not None:
        d["line"] = rec.line
    if rec.comment:
        d["comment"] = rec.comment
    return d


def _struct_json(v: dict) -> dict:
    out = {}
    for k, val in v.items():
        if isinstance(val, bytes):
            out[k] = blob_json(val)
        elif k == "secinfo":
            out[k] = _secinfo_text(val)
        elif k == "flags" and val == sgx.SGX_PAGE_MEASURE:
            out[k] = "SGX_PAGE_MEASURE"
        elif k in ("src", "ptr") or k in ("offset",) and val:
            out[k] = f"{val:#x}"
        else:
            out[k] = val
    return out


def write_trace(records, f, maps: str | None = None, comment: str | None = None) -> None:
    """Write records as JSON Lines to the text file f (with a header line)."""
    head = {"vmsim_trace": FORMAT_VERSION}
    if comment:
        head["comment"] = comment
    if maps is not None:
        head["maps"] = maps
    f.write(json.dumps(head) + "\n")
    for rec in records:
        f.write(json.dumps(record_to_json(rec)) + "\n")


def dumps_trace(records, maps: str | None = None, comment: str | None = None) -> str:
    import io
    buf = io.StringIO()
    write_trace(records, buf, maps, comment)
    return buf.getvalue()
