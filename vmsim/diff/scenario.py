"""Scenarios: sequences of memory-map calls in strace syntax, shared by the model
and the host-kernel oracle (docs/scenario-format.md).

    mmap(W, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = W
    mprotect(W, 4096, PROT_READ) = 0
    touch(W, "w") = SIGSEGV {si_code=SEGV_ACCERR, si_addr=W}

Layers:

* `parse_line` is a general strace-line parser (pid prefixes, timings, strings with
  C escapes, flag sets, numbers, `= -1 EACCES (Permission denied)`, arrays and
  structs kept as raw text).  A later strace importer reuses it.
* `parse` / `load` build a `Scenario` and validate every line against the calls
  this module can run (`CALLS`); malformed input raises `ScenarioError` carrying
  file, line and reason.
* `format_call` / `dump` write calls back, with symbolic flags and W/B-relative
  addresses.
* `run_model` runs a scenario on a fresh `vmsim.Kernel` process and returns one
  normalised `Step` per call (result and, optionally, the window state) — the same
  shape `vmsim.oracle` returns for the host kernel.
"""

from __future__ import annotations

import errno as _errno
import re
from dataclasses import dataclass, field

from .. import uapi

U64 = (1 << 64) - 1
PAGE = 4096

#: The scenario window: every compared VMA lies in [W, W + WINDOW_SIZE) or in the
#: heap window [B, B + HEAP_WINDOW_SIZE), B being the initial program break.
WINDOW_BASE = 0x7E0000000000
WINDOW_SIZE = 1 << 40
HEAP_WINDOW_SIZE = 1 << 40
#: The initial break of the oracle's executor (setarch -R, small PIE); the model uses
#: the oracle's actual value when one runs, this one otherwise.
DEFAULT_BRK = 0x55555555A000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
AT_FDCWD = -100


class ScenarioError(Exception):
    """Malformed scenario input: `file:line: reason`."""

    def __init__(self, reason: str, file: str | None = None, line: int | None = None):
        self.reason, self.file, self.line = reason, file, line
        where = f"{file or '<scenario>'}:{line}: " if line is not None else (
            f"{file}: " if file else "")
        super().__init__(where + reason)


# --------------------------------------------------------------------------- constants

def _consts(prefixes):
    return {k: v for k, v in vars(uapi).items()
            if isinstance(v, int) and k.isupper() and k.startswith(prefixes)}


CONSTANTS: dict[str, int] = {}
CONSTANTS.update(_consts(("PROT_", "MAP_", "MREMAP_", "MADV_", "MLOCK_", "PKEY_", "PR_",
                          "O_", "ADDR_", "MMAP_PAGE_ZERO", "READ_IMPLIES_EXEC", "SHORT_INODE",
                          "WHOLE_SECONDS", "STICKY_TIMEOUTS", "PER_", "RLIMIT_")))
CONSTANTS.update(MS_RDONLY=MS_RDONLY, MS_NOSUID=MS_NOSUID, MS_NODEV=MS_NODEV,
                 MS_NOEXEC=MS_NOEXEC, AT_FDCWD=AT_FDCWD, NULL=0, MAP_FILE=0,
                 MAP_ANONYMOUS=0x20, PAGE_SIZE=PAGE)
for _k in ("PAGE_SHIFT", "PAGE_MASK", "PMD_SIZE", "LEGACY_MAP_MASK", "MAP_TYPE",
           "MAP_HUGE_SHIFT", "MAP_HUGE_MASK", "PKEY_ACCESS_MASK", "O_ACCMODE"):
    CONSTANTS.pop(_k, None)

#: names for the symbolic writer, per argument kind: [(value, name)], most specific first
_FLAG_NAMES = {
    "prot": ["PROT_READ", "PROT_WRITE", "PROT_EXEC", "PROT_SEM", "PROT_GROWSDOWN",
             "PROT_GROWSUP"],
    "mapflags": ["MAP_FIXED", "MAP_ANONYMOUS", "MAP_32BIT", "MAP_ABOVE4G", "MAP_GROWSDOWN",
                 "MAP_DENYWRITE", "MAP_EXECUTABLE", "MAP_LOCKED", "MAP_NORESERVE",
                 "MAP_POPULATE", "MAP_NONBLOCK", "MAP_STACK", "MAP_HUGETLB", "MAP_SYNC",
                 "MAP_FIXED_NOREPLACE", "MAP_UNINITIALIZED"],
    "mremapflags": ["MREMAP_MAYMOVE", "MREMAP_FIXED", "MREMAP_DONTUNMAP"],
    "mlockflags": ["MLOCK_ONFAULT"],
    "pkeyrights": ["PKEY_DISABLE_ACCESS", "PKEY_DISABLE_WRITE"],
    "persona": ["ADDR_NO_RANDOMIZE", "MMAP_PAGE_ZERO", "ADDR_COMPAT_LAYOUT",
                "READ_IMPLIES_EXEC", "ADDR_LIMIT_32BIT", "SHORT_INODE", "WHOLE_SECONDS",
                "STICKY_TIMEOUTS", "ADDR_LIMIT_3GB"],
    "oflags": ["O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK",
               "O_DIRECTORY", "O_NOFOLLOW", "O_CLOEXEC"],
    "msflags": ["MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC"],
}
_ENUM_NAMES = {
    "madv": {v: k for k, v in CONSTANTS.items() if k.startswith("MADV_")},
    "prctl": {v: k for k, v in CONSTANTS.items()
              if k.startswith("PR_SET_") or k.startswith("PR_GET_")},
}
_MAP_TYPES = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE", 8: "MAP_DROPPABLE"}
_O_ACC = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}

#: call name -> argument kinds ('?' suffix: optional, default 0).  Kinds:
#: addr len prot mapflags fd off int pkey pkeyrights mremapflags madv mlockflags
#: persona prctl path oflags mode data msflags str touchmode byte
CALLS: dict[str, tuple[str, ...]] = {
    "mmap": ("addr", "len", "prot", "mapflags", "fd", "off"),
    "munmap": ("addr", "len"),
    "mprotect": ("addr", "len", "prot"),
    "pkey_mprotect": ("addr", "len", "prot", "pkey"),
    "pkey_alloc": ("int?", "pkeyrights?"),
    "pkey_free": ("pkey",),
    "mremap": ("addr", "len", "len", "mremapflags?", "addr?"),
    "mseal": ("addr", "len", "int?"),
    "madvise": ("addr", "len", "madv"),
    "mlock": ("addr", "len"),
    "mlock2": ("addr", "len", "mlockflags?"),
    "munlock": ("addr", "len"),
    "brk": ("addr",),
    "personality": ("persona",),
    "prctl": ("prctl", "int?", "int?", "int?", "int?"),
    "open": ("path", "oflags", "mode?"),
    "close": ("fd",),
    "dup": ("fd",),
    "ftruncate": ("fd", "int"),
    "pwrite64": ("fd", "data", "int", "int"),
    "unlink": ("path",),
    "mkdir": ("path", "mode?"),
    "mount": ("str", "path", "str", "msflags", "str?"),
    "fork": (),
    "touch": ("addr", "touchmode"),
    "peek": ("addr",),
    "poke": ("addr", "byte"),
    "set_pkru": ("int",),
}
#: aliases accepted on input (strace spellings)
ALIASES = {"pwrite": "pwrite64", "vfork": "fork", "mmap2": "mmap"}
#: calls whose result is an address (normalised to a W/B-relative token)
ADDR_RESULT = {"mmap", "mremap", "brk"}
#: x86_64 syscall numbers of the calls the oracle issues as raw syscalls
SYSCALL_NR = {"mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12, "mremap": 25,
              "madvise": 28, "dup": 32, "personality": 135, "prctl": 157, "mlock": 149,
              "munlock": 150, "mlock2": 325, "pkey_mprotect": 329, "pkey_alloc": 330,
              "pkey_free": 331, "mseal": 462, "close": 3, "ftruncate": 77}


# --------------------------------------------------------------------------- values

class Expr:
    """An integer expression of a scenario argument: numbers, constant names, W, B,
    combined with | + - * and parentheses.  Evaluated late (B is known at run time)."""

    __slots__ = ("text", "ast")

    def __init__(self, text: str, ast):
        self.text, self.ast = text, ast

    def eval(self, env: dict) -> int:
        return _eval(self.ast, env)

    def __repr__(self):
        return f"Expr({self.text!r})"

    def __eq__(self, other):
        return isinstance(other, Expr) and other.text == self.text

    def __hash__(self):
        return hash(self.text)


def _eval(node, env):
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "name":
        name = node[1]
        if name in env:
            return env[name]
        return CONSTANTS[name]
    if kind == "neg":
        return -_eval(node[1], env)
    a, b = _eval(node[1], env), _eval(node[2], env)
    if kind == "|":
        return a | b
    if kind == "+":
        return a + b
    if kind == "-":
        return a - b
    if kind == "*":
        return a * b
    if not 0 <= b < 128:
        raise ValueError(f"shift count {b} out of range")
    return a << b


_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|\d+)|([A-Za-z_][A-Za-z_0-9]*)|(<<|[|+\-*()]))")


def parse_expr(text: str) -> Expr:
    """Parse an integer expression; raises ValueError with a reason."""
    toks = []
    pos = 0
    text_s = text.strip()
    while pos < len(text_s):
        m = _TOKEN.match(text_s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse {text_s[pos:]!r} in {text_s!r}")
        pos = m.end()
        if m.group(1):
            s = m.group(1)
            if s.lower().startswith("0x"):
                toks.append(("num", int(s, 16)))
            elif len(s) > 1 and s.startswith("0"):
                toks.append(("num", int(s, 8)))      # C octal, as strace prints modes
            else:
                toks.append(("num", int(s)))
        elif m.group(2):
            name = m.group(2)
            if name not in CONSTANTS and name not in ("W", "B"):
                raise ValueError(f"unknown name {name!r}")
            toks.append(("name", name))
        else:
            toks.append(("op", m.group(3)))
    if not toks:
        raise ValueError("empty argument")
    i = 0

    def peek():
        return toks[i] if i < len(toks) else None

    def take():
        nonlocal i
        i += 1
        return toks[i - 1]

    def level(ops, sub):
        left = sub()
        while peek() is not None and peek()[0] == "op" and peek()[1] in ops:
            op = take()[1]
            left = (op, left, sub())
        return left

    def atom():
        t = peek()
        if t is None:
            raise ValueError(f"unexpected end of {text_s!r}")
        take()
        if t[0] in ("num", "name"):
            return t
        if t == ("op", "-"):
            return ("neg", atom())
        if t == ("op", "("):
            e = p_or()
            if take() != ("op", ")"):
                raise ValueError(f"missing ')' in {text_s!r}")
            return e
        raise ValueError(f"unexpected {t[1]!r} in {text_s!r}")

    def p_mul():
        return level(("*",), atom)

    def p_add():
        return level(("+", "-"), p_mul)

    def p_shift():
        return level(("<<",), p_add)

    def p_or():
        return level(("|",), p_shift)

    ast = p_or()
    if i != len(toks):
        raise ValueError(f"trailing {toks[i][1]!r} in {text_s!r}")
    return Expr(text_s, ast)


_ESC = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "\\": "\\", '"': '"',
        "'": "'", "a": "\a", "b": "\b", "e": "\x1b"}


def parse_cstring(text: str) -> tuple[bytes, bool]:
    """A C string literal as strace prints it (octal and hex escapes, optional
    trailing `...` for truncation).  Returns (bytes, truncated)."""
    t = text.strip()
    truncated = t.endswith("...")
    if truncated:
        t = t[:-3]
    if len(t) < 2 or t[0] != '"' or t[-1] != '"':
        raise ValueError(f"bad string literal {text!r}")
    out = bytearray()
    s = t[1:-1]
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        i += 1
        if i >= len(s):
            raise ValueError(f"dangling backslash in {text!r}")
        c = s[i]
        if c in "01234567":
            j = i
            while j < len(s) and j < i + 3 and s[j] in "01234567":
                j += 1
            out.append(int(s[i:j], 8) & 0xFF)
            i = j
        elif c == "x":
            j = i + 1
            while j < len(s) and j < i + 3 and s[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 1:
                raise ValueError(f"bad \\x escape in {text!r}")
            out.append(int(s[i + 1:j], 16))
            i = j
        elif c in _ESC:
            out += _ESC[c].encode()
            i += 1
        else:
            raise ValueError(f"unknown escape \\{c} in {text!r}")
    return bytes(out), truncated


def format_cstring(data: bytes) -> str:
    out = ['"']
    for b in data:
        ch = chr(b)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 32 <= b < 127:
            out.append(ch)
        elif b == 0:
            out.append("\\0")
        else:
            out.append(f"\\x{b:02x}")
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------- lines

@dataclass
class Result:
    """A call's outcome: kind "ok" (value), "err" (errno name), "sig" (signal, code,
    addr), "unknown" (`= ?`)."""
    kind: str
    value: object = None            # int or Expr for ok
    errname: str | None = None
    signal: str | None = None
    code: str | None = None
    addr: object = None             # int or Expr


@dataclass
class Call:
    """One line: a call with its raw argument texts, parsed argument values (int,
    Expr, bytes or str) and the optional expected result."""
    name: str
    args: list
    expect: Result | None = None
    raw_args: list = field(default_factory=list)
    line: int | None = None
    text: str | None = None
    comment: str | None = None

    def values(self, env: dict) -> list:
        return [a.eval(env) if isinstance(a, Expr) else a for a in self.args]


@dataclass
class Scenario:
    calls: list
    path: str | None = None
    header: list = field(default_factory=list)     # leading comment lines

    def __len__(self):
        return len(self.calls)


_PID_PREFIX = re.compile(r"^(?:\[pid\s+\d+\]\s*|\d+\s+)")
_TIMING = re.compile(r"\s*<\d+\.\d+>\s*$")
_TIMESTAMP = re.compile(r"^\d+(?::\d+:\d+)?\.\d+\s+")


def split_args(s: str) -> list[str]:
    """Split a top-level comma-separated argument list, respecting quotes and
    (), [], {} nesting."""
    args, depth, cur, i = [], 0, [], 0
    in_str = False
    while i < len(s):
        c = s[i]
        if in_str:
            cur.append(c)
            if c == "\\" and i + 1 < len(s):
                cur.append(s[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            cur.append(c)
        elif c in "([{":
            depth += 1
            cur.append(c)
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced brackets")
            cur.append(c)
        elif c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if in_str:
        raise ValueError("unterminated string")
    if depth != 0:
        raise ValueError("unbalanced brackets")
    tail = "".join(cur).strip()
    if tail or args:
        args.append(tail)
    return args


def _find_close(s: str, start: int) -> int:
    """Index of the ')' closing the '(' at start."""
    depth, i, in_str = 0, start, False
    while i < len(s):
        c = s[i]
        if in_str:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("missing ')'")


_SIG_RESULT = re.compile(r"^(SIG[A-Z]+)\s*(?:\{(.*)\})?$")


def parse_result(text: str) -> Result:
    """The part after '=': `0`, `0x7f..`, `W+0x1000`, `-1 EACCES (Permission denied)`,
    `?`, `SIGSEGV {si_code=SEGV_ACCERR, si_addr=W+0x1000}`, optionally followed by a
    strace parenthetical such as `(flags O_RDWR)`."""
    t = text.strip()
    if t == "?":
        return Result("unknown")
    if t == "outside":                  # an address outside both windows (normalised)
        return Result("ok", value="outside")
    m = _SIG_RESULT.match(t)
    if m:
        code = addr = None
        for part in (m.group(2) or "").split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ValueError(f"bad signal detail {part!r}")
            k, v = (x.strip() for x in part.split("=", 1))
            if k == "si_code":
                code = v
            elif k == "si_addr":
                addr = parse_expr(v)
            elif k != "si_signo":
                raise ValueError(f"unknown signal field {k!r}")
        return Result("sig", signal=m.group(1), code=code, addr=addr)
    m = re.match(r"^-1\s+(E[A-Z0-9]+)(?:\s+\(.*\))?$", t)
    if m:
        if not hasattr(_errno, m.group(1)):
            raise ValueError(f"unknown errno {m.group(1)}")
        return Result("err", errname=m.group(1))
    m = re.match(r"^(\S+)(?:\s+\(.*\))?$", t)
    if not m:
        raise ValueError(f"cannot parse result {t!r}")
    return Result("ok", value=parse_expr(m.group(1)))


def parse_line(text: str):
    """Parse one strace-syntax line.  Returns None for blank lines, comments and
    strace event lines (`--- SIG... ---`, `+++ exited ... +++`), else a `Call` with
    `raw_args` (texts) and `expect`; `args` are left empty (see `bind_args`)."""
    s = text.strip()
    if not s or s.startswith("#"):
        return None
    comment = None
    s = _PID_PREFIX.sub("", s)
    s = _TIMESTAMP.sub("", s)
    if s.startswith(("---", "+++")):
        return None
    s = _TIMING.sub("", s)
    m = re.match(r"^([A-Za-z_][A-Za-z_0-9]*)\s*\(", s)
    if not m:
        raise ValueError("expected `name(args...)`")
    name = m.group(1)
    close = _find_close(s, m.end() - 1)
    raw_args = split_args(s[m.end():close])
    rest = s[close + 1:].strip()
    if rest.startswith("#"):
        comment, rest = rest[1:].strip(), ""
    elif " #" in rest:
        rest, comment = rest.split(" #", 1)
        rest, comment = rest.strip(), comment.strip()
    expect = None
    if rest:
        if not rest.startswith("="):
            raise ValueError(f"expected '= result' after ')', got {rest!r}")
        expect = parse_result(rest[1:])
    return Call(name=name, args=[], expect=expect, raw_args=raw_args, text=text.rstrip("\n"),
                comment=comment)


def _bind_arg(kind: str, raw: str):
    if kind in ("path", "str", "data"):
        if raw == "NULL":
            return None if kind != "data" else b""
        data, _trunc = parse_cstring(raw)
        return data if kind == "data" else data.decode("utf-8", "surrogateescape")
    if kind == "touchmode":
        data, _ = parse_cstring(raw)
        mode = data.decode()
        if mode not in ("r", "w", "x"):
            raise ValueError(f'touch mode must be "r", "w" or "x", not {mode!r}')
        return mode
    return parse_expr(raw)


def bind_args(call: Call) -> Call:
    """Check a parsed call against CALLS and parse its arguments.  Raises ValueError."""
    name = ALIASES.get(call.name, call.name)
    raw = list(call.raw_args)
    if name == "openat":
        if not raw or raw[0].strip() not in ("AT_FDCWD", "-100"):
            raise ValueError("openat is supported only with AT_FDCWD")
        name, raw = "open", raw[1:]
    if name not in CALLS:
        raise ValueError(f"unsupported call {call.name!r}")
    kinds = CALLS[name]
    need = sum(1 for k in kinds if not k.endswith("?"))
    if not need <= len(raw) <= len(kinds):
        want = str(need) if need == len(kinds) else f"{need} to {len(kinds)}"
        raise ValueError(f"{name} takes {want} arguments, got {len(raw)}")
    args = []
    for kind, r in zip(kinds, raw):
        args.append(_bind_arg(kind.rstrip("?"), r))
    if name == "pwrite64":                  # strace truncates long buffers: pad to count
        data, count = args[1], args[2]
        if isinstance(count, Expr):
            count = count.eval({"W": WINDOW_BASE, "B": DEFAULT_BRK})
        if len(data) < count:
            args[1] = data + b"\0" * (count - len(data))
        args[2] = count
    probe = {"W": WINDOW_BASE, "B": DEFAULT_BRK}
    for a in args:
        if isinstance(a, Expr):
            a.eval(probe)                   # raises ValueError now, not at run time
    for kind in kinds[len(raw):]:
        args.append(None if kind.rstrip("?") in ("str", "path") else 0)
    if name == "open" and len(raw) < 3:
        args[2] = 0
    call.name, call.args, call.raw_args = name, args, raw
    return call


def parse(text: str, path: str | None = None) -> Scenario:
    """Parse a whole scenario; raises ScenarioError(file, line, reason)."""
    calls, header = [], []
    seen_call = False
    for no, line in enumerate(text.splitlines(), 1):
        if not seen_call and line.strip().startswith("#"):
            header.append(line.strip()[1:].strip())
        try:
            call = parse_line(line)
            if call is None:
                continue
            bind_args(call)
        except ValueError as exc:
            raise ScenarioError(str(exc), path, no) from None
        call.line = no
        calls.append(call)
        seen_call = True
    return Scenario(calls, path, header)


def load(path: str) -> Scenario:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ScenarioError(f"cannot read: {exc.strerror}", path) from None
    except UnicodeDecodeError:
        raise ScenarioError("not UTF-8 text", path) from None
    return parse(text, path)


# --------------------------------------------------------------------------- writing

def format_addr(v: int, env: dict) -> str:
    v &= U64
    w, b = env.get("W", WINDOW_BASE), env.get("B", DEFAULT_BRK)
    if w <= v < w + WINDOW_SIZE:
        return "W" if v == w else f"W+{v - w:#x}"
    if b <= v < b + HEAP_WINDOW_SIZE:
        return "B" if v == b else f"B+{v - b:#x}"
    if v == 0:
        return "NULL"
    if v >= 1 << 63:
        return str(v - (1 << 64))
    return f"{v:#x}"


def _flags(v: int, names: list[str], base: list[str] | None = None) -> str:
    parts = list(base or [])
    for n in names:
        bit = CONSTANTS[n]
        if bit and v & bit == bit:
            parts.append(n)
            v &= ~bit
    if v:
        parts.append(f"{v:#x}")
    return "|".join(parts) if parts else "0"


def format_value(kind: str, v, env: dict) -> str:
    kind = kind.rstrip("?")
    if v is None:
        return "NULL"
    if kind in ("path", "str", "touchmode"):
        return format_cstring(v.encode("utf-8", "surrogateescape"))
    if kind == "data":
        return format_cstring(v)
    if isinstance(v, Expr):
        v = v.eval(env)
    if kind == "addr":
        return format_addr(v, env)
    if kind in ("int", "fd", "pkey", "len", "off", "byte"):
        v64 = v & U64
        if v64 >= 1 << 63:
            return str(v64 - (1 << 64))
        if kind in ("len", "off") and v64 >= 0x1000:
            return f"{v64:#x}" if v64 % 0x1000 == 0 and v64 >= 1 << 20 else str(v64)
        return str(v64)
    if kind == "mode":
        return f"0{v:o}" if v else "0"
    if kind == "mapflags":
        v &= U64
        typ = _MAP_TYPES.get(v & 0xF)
        rest = v & ~0xF if typ else v
        return _flags(rest, _FLAG_NAMES["mapflags"], [typ] if typ else None)
    if kind == "oflags":
        v &= 0xFFFFFFFF
        return _flags(v & ~3, _FLAG_NAMES["oflags"], [_O_ACC.get(v & 3, "O_ACCMODE")]) \
            if v & 3 != 3 else _flags(v, _FLAG_NAMES["oflags"])
    if kind in _FLAG_NAMES:
        v &= U64
        return _flags(v, _FLAG_NAMES[kind])
    if kind in _ENUM_NAMES:
        v64 = v & U64
        if v64 in _ENUM_NAMES[kind]:
            return _ENUM_NAMES[kind][v64]
        return str(v64 - (1 << 64)) if v64 >= 1 << 63 else str(v64)
    return str(v)


def format_result(name: str, r: Result, env: dict) -> str:
    if r.kind == "unknown":
        return "?"
    if r.kind == "err":
        return f"-1 {r.errname} ({_strerror(r.errname)})"
    if r.kind == "sig":
        addr = r.addr.eval(env) if isinstance(r.addr, Expr) else r.addr
        detail = [f"si_code={r.code}"] if r.code else []
        if addr is not None:
            detail.append(f"si_addr={format_addr(addr, env)}")
        return f"{r.signal} {{{', '.join(detail)}}}"
    v = r.value.eval(env) if isinstance(r.value, Expr) else r.value
    if isinstance(v, str):             # a token such as "outside"
        return v
    if name in ADDR_RESULT:
        return format_addr(v, env)
    if name == "peek":
        return f"{v:#x}"
    return str(v)


def _strerror(name: str) -> str:
    import os
    code = getattr(_errno, name, None)
    return os.strerror(code) if code else name


def format_call(call: Call, env: dict, result: Result | None = None) -> str:
    kinds = CALLS[call.name]
    vals = call.args
    parts = [format_value(k, v, env) for k, v in zip(kinds, vals)]
    # drop trailing optional arguments left at their default
    while parts and len(parts) > sum(1 for k in kinds if not k.endswith("?")) \
            and kinds[len(parts) - 1].endswith("?") and vals[len(parts) - 1] in (0, None):
        parts.pop()
    text = f"{call.name}({', '.join(parts)})"
    r = result if result is not None else call.expect
    if r is not None:
        text += " = " + format_result(call.name, r, env)
    return text


def dump(scenario: Scenario, env: dict, results: list | None = None) -> str:
    """Scenario text; `results` (Result per call) replace the expected values."""
    out = [f"# {h}" if h else "#" for h in scenario.header]
    for i, call in enumerate(scenario.calls):
        r = results[i] if results is not None and i < len(results) else None
        line = format_call(call, env, r)
        if call.comment:
            line += "  # " + call.comment
        out.append(line)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- normalised outcomes

@dataclass
class Step:
    """The normalised outcome of one call on one side: `result` is a tuple
    ("ok", token) / ("err", "EINVAL") / ("sig", signal, code, addr token) /
    ("crash", text); `state` a tuple of VMA tuples inside the windows, or None."""
    result: tuple
    state: tuple | None = None


class Normaliser:
    """Turns addresses into W/B-relative tokens and device/inode numbers into
    tokens by order of first appearance (one instance per run and side)."""

    def __init__(self, env: dict):
        self.env = env
        self.devs: dict = {}
        self.inos: dict = {}

    def addr(self, v: int) -> str:
        v &= U64
        w, b = self.env["W"], self.env["B"]
        if w <= v < w + WINDOW_SIZE:
            return f"W+{v - w:#x}"
        if b <= v < b + HEAP_WINDOW_SIZE:
            return f"B+{v - b:#x}"
        return "outside"

    def vma(self, start, end, perms, offset, dev, ino, name, vmflags, pkey) -> tuple:
        if ino in (0, "0") and dev in ("00:00", (0, 0)):
            devt, inot = "00:00", "0"
        else:
            devt = self.devs.setdefault(dev, f"dev{len(self.devs) + 1}")
            inot = self.inos.setdefault((dev, ino), f"ino{len(self.inos) + 1}")
        return (self.addr(start), self.addr(end), perms, offset, devt, inot, name or "",
                " ".join(vmflags), pkey)


ERRNAMES = {v: k for k, v in _errno.errorcode.items()}
SIGNAMES = {7: "SIGBUS", 11: "SIGSEGV", 4: "SIGILL", 5: "SIGTRAP", 8: "SIGFPE"}
SI_CODES = {("SIGSEGV", 1): "SEGV_MAPERR", ("SIGSEGV", 2): "SEGV_ACCERR",
            ("SIGSEGV", 4): "SEGV_PKUERR", ("SIGBUS", 1): "BUS_ADRALN",
            ("SIGBUS", 2): "BUS_ADRERR", ("SIGBUS", 3): "BUS_OBJERR",
            ("SIGSEGV", 0x80): "SI_KERNEL"}


def normalise_expect(call: Call, env: dict, norm: Normaliser) -> tuple | None:
    """The expected result of a call in the normalised form of Step.result."""
    r = call.expect
    if r is None or r.kind == "unknown":
        return None
    if r.kind == "err":
        return ("err", r.errname)
    if r.kind == "sig":
        addr = r.addr.eval(env) if isinstance(r.addr, Expr) else r.addr
        return ("sig", r.signal, r.code, norm.addr(addr) if addr is not None else None)
    v = r.value.eval(env) if isinstance(r.value, Expr) else r.value
    if isinstance(v, str):
        return ("ok", v)
    return ("ok", result_token(call.name, v, norm))


def result_token(name: str, v: int, norm: Normaliser):
    if name in ADDR_RESULT:
        return norm.addr(v)
    v &= U64
    return v - (1 << 64) if v >= 1 << 63 else v


def token_to_result(name: str, tok: tuple, env: dict) -> Result:
    """A normalised result back as a Result, for writing scenario files."""
    kind = tok[0]
    if kind == "err":
        return Result("err", errname=tok[1])
    if kind == "sig":
        return Result("sig", signal=tok[1], code=tok[2],
                      addr=parse_expr(tok[3]) if tok[3] not in (None, "outside") else None)
    if kind == "ok":
        v = tok[1]
        if isinstance(v, str):
            return Result("ok", value=parse_expr(v) if v != "outside" else v)
        return Result("ok", value=v)
    return Result("unknown")


def _is_header(line: str) -> bool:
    return bool(line) and line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]


def state_from_smaps(text, norm: Normaliser, rename=None, prefiltered: bool = False) -> tuple:
    """The window state from /proc/PID/smaps text (or from the oracle's filtered
    "V"/"F"/"K" lines with their prefixes removed): one normalised VMA tuple per VMA
    intersecting a window.  `rename` maps a host path back to the scenario's."""
    env = norm.env
    w, b = env["W"], env["B"]
    wins = ((w, w + WINDOW_SIZE), (b, b + HEAP_WINDOW_SIZE))
    out = []
    cur = None

    def flush():
        if cur is not None:
            out.append(norm.vma(*cur))

    lines = text.splitlines() if isinstance(text, str) else text
    for line in lines:
        if _is_header(line):
            flush()
            cur = None
            fields = line.split(None, 5)
            s, e = (int(x, 16) for x in fields[0].split("-"))
            if not prefiltered and not any(s < hi and e > lo for lo, hi in wins):
                continue
            name = fields[5].rstrip() if len(fields) > 5 else ""
            if rename is not None and name:
                name = rename(name)
            cur = [s, e, fields[1], fields[2], fields[3], fields[4], name, [], None]
        elif cur is not None and line.startswith("VmFlags:"):
            cur[7] = line[8:].split()
        elif cur is not None and line.startswith("ProtectionKey:"):
            cur[8] = int(line.split()[1])
    flush()
    return tuple(out)


# --------------------------------------------------------------------------- the model side

def model_kernel(**kernel_kwargs):
    import vmsim
    return vmsim.Kernel(**kernel_kwargs)


#: a model call running longer than this (seconds) is reported as a crash (a hang
#: in the model is a finding, not a reason to stop a fuzz run); 0 disables
MODEL_CALL_TIMEOUT = float(__import__("os").environ.get("VMSIM_MODEL_TIMEOUT", "10"))


class ModelTimeout(BaseException):
    """Raised inside a model call that exceeded MODEL_CALL_TIMEOUT."""


class _time_limit:
    """SIGALRM-based limit, active only in the main thread of the main interpreter."""

    def __init__(self, seconds: float):
        import signal
        import threading
        self.signal = signal
        self.on = bool(seconds) and hasattr(signal, "setitimer") and \
            threading.current_thread() is threading.main_thread()
        self.seconds = seconds

    def _fire(self, signum, frame):
        raise ModelTimeout()

    def __enter__(self):
        if self.on:
            self.old = self.signal.signal(self.signal.SIGALRM, self._fire)
            self.signal.setitimer(self.signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.on:
            self.signal.setitimer(self.signal.ITIMER_REAL, 0)
            self.signal.signal(self.signal.SIGALRM, self.old)
        return False


class ModelRunner:
    """Runs scenario calls on a fresh model process laid out like the oracle's
    child: personality ADDR_NO_RANDOMIZE, start_brk = B, fds 0-2 open."""

    def __init__(self, kernel_kwargs: dict | None = None, env: dict | None = None,
                 state: str = "each", validate: bool = True):
        import vmsim
        self.vmsim = vmsim
        self.env = dict(env or {"W": WINDOW_BASE, "B": DEFAULT_BRK})
        self.k = vmsim.Kernel(**(kernel_kwargs or {}))
        self.p = self.k.spawn(brk=self.env["B"], personality=uapi.ADDR_NO_RANDOMIZE)
        for _ in range(3):
            self.p.open("/dev/null", uapi.O_RDWR)
        # The executor's data segment ends at B (a private file mapping): mirror it,
        # so guard gaps and merges below the heap window see a neighbour there.
        self.k.fs.create("/.vmsim-executor", b"\0" * PAGE)
        fd = self.p.open("/.vmsim-executor", uapi.O_RDWR)
        self.p.mmap(self.env["B"] - PAGE, PAGE, uapi.PROT_READ | uapi.PROT_WRITE,
                    uapi.MAP_PRIVATE | uapi.MAP_FIXED, fd, 0)
        self.p.close(fd)
        self.norm = Normaliser(self.env)
        self.state_each = state == "each"
        self.validate = validate

    def state(self) -> tuple:
        """The window VMAs as the host side reports them: the maps line (p.maps())
        with the VmFlags and ProtectionKey smaps would print (p.vmas())."""
        w, b = self.env["W"], self.env["B"]
        wins = ((w, w + WINDOW_SIZE), (b, b + HEAP_WINDOW_SIZE))
        views = self.p.vmas()
        lines = self.p.maps().splitlines()
        pkeys = self.k.pkeys
        out = []
        for v, line in zip(views, lines):
            if not any(v.start < hi and v.end > lo for lo, hi in wins):
                continue
            fields = line.split(None, 5)
            name = fields[5].rstrip() if len(fields) > 5 else ""
            out.append(self.norm.vma(v.start, v.end, fields[1], fields[2], fields[3],
                                     fields[4], name, v.vmflags, v.pkey if pkeys else None))
        return tuple(out)

    def call(self, call: Call) -> Step:
        vals = call.values(self.env)
        try:
            with _time_limit(MODEL_CALL_TIMEOUT):
                res = self._dispatch(call.name, vals)
        except ModelTimeout:
            res = ("crash", f"timeout: the model call did not return within "
                   f"{MODEL_CALL_TIMEOUT:g} s")
        except OSError as exc:
            res = ("err", _errno.errorcode.get(exc.errno, str(exc.errno)))
        except self.vmsim.Fault as f:
            res = ("sig", f.signal, f.code, self.norm.addr(f.addr))
        except Exception as exc:  # a model bug: reported as a divergence, never a crash
            res = ("crash", f"{type(exc).__name__}: {exc}")
        if self.validate and res[0] != "crash":
            try:
                self.p.mm.validate()
            except Exception as exc:
                res = ("crash", f"validate(): {type(exc).__name__}: {exc}")
        st = self.state() if self.state_each else None
        return Step(res, st)

    def _dispatch(self, name, a):
        p, k = self.p, self.k
        if name in ADDR_RESULT:
            r = getattr(p, name)(*a)
            return ("ok", self.norm.addr(r))
        if name == "open":
            return ("ok", p.open(a[0], a[1], a[2]))
        if name == "pwrite64":
            return ("ok", p.pwrite(a[0], bytes(a[1][:a[2]]), a[3]))
        if name == "mkdir":
            k.fs.mkdir(a[0])
            return ("ok", 0)
        if name == "mount":
            k.fs.mount(a[1], noexec=bool(a[3] & MS_NOEXEC))
            return ("ok", 0)
        if name == "fork":
            self.p = p.fork()
            return ("ok", 0)
        if name == "touch":
            p.touch(a[0], a[1])
            return ("ok", 0)
        if name == "peek":
            return ("ok", p.read(a[0], 1)[0])
        if name == "poke":
            p.write(a[0], bytes([a[1] & 0xFF]))
            return ("ok", 0)
        if name == "set_pkru":
            if not k.pkeys:
                raise OSError(_errno.EOPNOTSUPP, "no PKU")
            p.pkru = a[0] & 0xFFFFFFFF
            return ("ok", 0)
        r = getattr(p, name)(*a)
        if not isinstance(r, int):
            r = 0
        return ("ok", result_token(name, r, self.norm))


def run_model(scenario: Scenario, kernel_kwargs: dict | None = None, env: dict | None = None,
              state: str = "each", validate: bool = True) -> list:
    """Run every call of `scenario` on a fresh model process; one Step per call
    (with state=\"end\", only the last Step carries the state)."""
    runner = ModelRunner(kernel_kwargs, env, state, validate)
    steps = [runner.call(c) for c in scenario.calls]
    if state == "end":
        st = runner.state()
        if steps:
            steps[-1].state = st
        else:
            steps.append(Step(("ok", None), st))
    return steps
