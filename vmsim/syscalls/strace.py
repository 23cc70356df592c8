"""The strace syntax: how `strace -f [-t|-tt|-ttt] [-T] [-y|-yy] [-X raw|abbrev|verbose]`
writes a call, and how vmsim reads and writes one (scenarios, strace logs, JSON
Lines traces, replay output).

    [pid 12] 12:34:56.123 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|
        MAP_ANONYMOUS, -1, 0) = 0x7f8a3c2b1000 <0.000012>
    openat(AT_FDCWD</tmp>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>
    mprotect(0x7f1a00000000, 4096, 0x7 /* PROT_READ|PROT_WRITE|PROT_EXEC */) = -1
        EACCES (Permission denied)
    --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---

Pieces, from the bottom up: the line prefixes (pid, timestamp, `-T` time, the
`<unfinished ...>` / `<... resumed>` halves), `-y`/`-yy` decorations and `/* */`
comments (`strip_decorations`), argument lists (`split_args`), integer expressions
(`parse_expr`: numbers, constant names, `| + - * <<` and parentheses), C strings,
results (`= -1 ENOMEM (Cannot allocate memory)`, `= ?`, a signal), whole lines
(`parse_line`), argument values by kind (`bind_args`, `format_value`; kinds:
vmsim.syscalls.table) and signal / exit lines (`parse_event`).
"""

from __future__ import annotations

import datetime
import re
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..uapi import AT_FDCWD, MAP_TYPE, O_ACCMODE, PAGE_SIZE, U64
from .inputs import check_path, quote, size_text
from .names import CONSTANTS, errno_name, is_errno, signal_name, strerror, with_prefix
from .table import Syscall

# --------------------------------------------------------------------------- line prefixes

# Every pattern here is matched in time linear in the line: those searched for (not
# anchored) start at the beginning of a run of blanks (`(?<!\s)`), so that no run is
# scanned once per character in it; numbers converted with int() have a bounded length.

#: `12345 ` (strace -o) or `[pid 12345] ` (strace to stderr, several tracees)
PID_PREFIX = re.compile(r"^(?:\[pid\s+(\d{1,10})\]\s*|(\d{1,10})\s+)")
#: both prefixes at once (strip_prefix's common case)
_PREFIXES = re.compile(r"(?:\[pid\s+(\d{1,10})\]\s*|(\d{1,10})\s+)?"
                       r"(?:(?:\d+:\d+:\d+(?:\.\d+)?|\d+\.\d+)\s+)?")
#: -t `12:34:56`, -tt `12:34:56.123456`, -ttt `1700000000.123456`
TIMESTAMP = re.compile(r"^(?:\d+:\d+:\d+(?:\.\d+)?|\d+\.\d+)\s+")
#: -T: the time spent in the call, after the result
TIMING = re.compile(r"(?<!\s)\s*<\d+\.\d+>\s*$")
UNFINISHED = re.compile(r"(?<!\s)\s*<unfinished \.\.\.>\s*$")
RESUMED = re.compile(r"^<\.\.\.\s+([A-Za-z_0-9]+)\s+resumed>\s?")
CALL_NAME = re.compile(r"^([A-Za-z_][A-Za-z_0-9]*)\s*\(")


def strip_prefix(line: str) -> tuple[int | None, bool, str]:
    """(pid, whether it was `[pid N]`, the rest) of a line without its pid and
    timestamp prefixes."""
    m = _PREFIXES.match(line)
    assert m is not None                # every part is optional
    bracketed, bare = m.group(1), m.group(2)
    pid = int(bracketed or bare) if bracketed or bare else None
    return pid, bracketed is not None, line[m.end():]


#: what strip_decorations stops at: a string literal, a /* comment, a `<` right after a
#: name or number that is neither a shift (`1<<12`) nor `<unfinished ...>`
_DECORATION_SCAN = re.compile(r'"|/\*|(?<=[A-Za-z0-9_])<(?![<=]|unfinished)')
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
_DECORATION_BRACKETS = re.compile(r"[<>]")


def strip_decorations(s: str) -> tuple[str, list[tuple[int, str]]]:
    """Remove -y/-yy decorations (`3</path>`, `3</memfd:x>(deleted)`, `AT_FDCWD</tmp>`,
    nested `<...<char 1:3>>`) and /* */ comments (-X verbose) outside string literals;
    `<<` is a shift.
    Returns (text, [(pos, path)]) with pos the index in the cleaned text where the
    decoration was. Linear in the line: regular expressions find each next piece."""
    if "<" not in s and "/*" not in s:
        return s, []
    out: list[str] = []
    decos: list[tuple[int, str]] = []
    size = 0                            # the length of "".join(out)
    pos = 0
    while (m := _DECORATION_SCAN.search(s, pos)) is not None:
        i = m.start()
        out.append(s[pos:i])
        size += i - pos
        if m.group() == '"':
            lit = _STRING_LITERAL.match(s, i)
            j = lit.end() if lit else len(s)
            out.append(s[i:j])
            size += j - i
        elif m.group() == "/*":
            k = s.find("*/", i + 2)
            if k < 0:
                raise ValueError("unterminated /* comment")
            j = k + 2
        else:
            j = _decoration_end(s, i) + 1
            inner = s[i + 1:j - 1]
            k = inner.find("<")
            decos.append((size, inner[:k] if k >= 0 else inner))
            if s.startswith("(deleted)", j):     # -y on a file unlinked since
                j += len("(deleted)")
        pos = j
    out.append(s[pos:])
    return "".join(out), decos


def _decoration_end(s: str, start: int) -> int:
    """Index of the '>' closing the '<' at start (decorations nest: `<char 1:3>`)."""
    depth = 0
    for m in _DECORATION_BRACKETS.finditer(s, start):
        depth += 1 if m.group() == "<" else -1
        if depth == 0:
            return m.start()
    raise ValueError("unterminated <...> fd decoration")


def split_args(s: str) -> list[str]:
    """Split a top-level comma-separated argument list, respecting quotes and
    (), [], {} nesting."""
    args: list[str] = []
    cur: list[str] = []
    depth, i = 0, 0
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


#: an argument list without brackets: its arguments are runs of non-commas and string
#: literals (which may hold commas); first characters disjoint, so linear
_FLAT_ARGS = re.compile(r'(?:"(?:[^"\\]|\\.)*"(?:\.\.\.)?|[^,"])+')


def split_flat_args(s: str) -> list[str]:
    """split_args for the common list without (), [], {}: in C time. Falls back to
    split_args otherwise."""
    if "(" in s or "[" in s or "{" in s or ")" in s or "]" in s or "}" in s:
        return split_args(s)
    if '"' not in s:
        parts = s.split(",")
        return [] if len(parts) == 1 and not parts[0].strip() else [x.strip() for x in parts]
    args = [x.strip() for x in _FLAT_ARGS.findall(s)]
    if sum(len(x) for x in args) + len(args) - 1 > len(s) or s.count('"') % 2:
        return split_args(s)            # an empty argument, or an unterminated string
    return args


def call_close(s: str, start: int) -> int:
    """Index of the ')' closing a call line's argument list opened at start: the `)`
    before the last ` = ` (strace pads between them; a result never holds one), else
    find_close's answer."""
    eq = s.rfind(" = ", start)
    if eq > start:
        close = len(s[:eq].rstrip()) - 1
        if close > start and s[close] == ")" and s.find(")", start) == close and \
                not s.count('"', start, close) % 2:
            return close                # no other ')' in the arguments, strings closed
    return find_close(s, start)


def find_close(s: str, start: int) -> int:
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


# --------------------------------------------------------------------------- expressions

#: every value an expression takes on its way must fit in 128 bits (an argument has at
#: most 64, the ABI's; `1<<64` and `-(1<<64)` may pass through); so a number has at
#: most 43 digits (octal) and no chain of operators grows a value without bound
VALUE_BITS = 128
_MAX_DIGITS = 43


class Expr:
    """An integer expression: numbers (C octal and hex too), constant names (names.py)
    and the caller's variables, combined with | + - * << and parentheses. Kept in
    postfix order, so that neither parsing nor evaluating recurses however deep the
    parentheses; evaluated late: a scenario's variables W and B are known only at run
    time."""

    __slots__ = ("text", "postfix")

    def __init__(self, text: str, postfix: tuple[tuple[str, Any], ...]):
        self.text, self.postfix = text, postfix

    def eval(self, env: Mapping[str, int]) -> int:
        """The value, with env giving the variables'."""
        stack: list[int] = []
        for kind, v in self.postfix:
            if kind == "num":
                stack.append(v)
            elif kind == "name":
                stack.append(env[v] if v in env else CONSTANTS[v])
            elif v == "neg":
                stack.append(-stack.pop())
            else:
                b = stack.pop()
                stack.append(_fits(_apply(v, stack.pop(), b), self.text))
        return stack[0]

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _apply(op: str, a: int, b: int) -> int:
    if op == "|":
        return a | b
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if not 0 <= b < VALUE_BITS:
        raise ValueError(f"shift count {b} out of range")
    return a << b


def _fits(v: int, text: str) -> int:
    if abs(v) >> VALUE_BITS:
        raise ValueError(f"{quote(text)} does not fit in {VALUE_BITS} bits")
    return v


_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|\d+)|([A-Za-z_][A-Za-z_0-9]*)|(<<|[|+\-*()]))")


def _number(s: str) -> int:
    """A number token: hex, C octal (as strace prints modes) or decimal."""
    hexa = s[:2] in ("0x", "0X")
    if len((s[2:] if hexa else s).lstrip("0")) > _MAX_DIGITS:
        raise ValueError(f"number {quote(s)} does not fit in {VALUE_BITS} bits")
    v = int(s, 16) if hexa else int(s, 8) if len(s) > 1 and s[0] == "0" else int(s)
    if v >> VALUE_BITS:
        raise ValueError(f"number {quote(s)} does not fit in {VALUE_BITS} bits")
    return v


def _tokens(text: str, variables: Collection[str]) -> list[tuple[str, Any]]:
    toks: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse {quote(text[pos:])} in {quote(text)}")
        pos = m.end()
        if m.group(1):
            toks.append(("num", _number(m.group(1))))
        elif m.group(2):
            name = m.group(2)
            if name not in CONSTANTS and name not in variables:
                raise ValueError(f"unknown name {quote(name)}")
            toks.append(("name", name))
        else:
            toks.append(("op", m.group(3)))
    if not toks:
        raise ValueError("empty argument")
    return toks


#: binary operators by precedence: | below << below + - below *; a unary minus binds
#: tighter than all
_PRECEDENCE = {"|": 1, "<<": 2, "+": 3, "-": 3, "*": 4, "neg": 5}


#: a plain number: parsed without the tokenizer
_PLAIN_NUMBER = re.compile(r"0[xX][0-9a-fA-F]{1,32}|[1-9][0-9]{0,37}|0")
#: parse_expr's answers for texts without variables (flag sets repeat in every log)
_EXPR_CACHE: dict[str, Expr] = {}
_EXPR_CACHE_SIZE = 1 << 14


def parse_expr(text: str, variables: Collection[str] = ()) -> Expr:
    """Parse an integer expression whose names are constants or `variables`;
    ValueError with the reason. Operator precedence parsing (Dijkstra's shunting
    yard): binary operators are left-associative. A plain number, or a text parsed
    before without variables, is answered at once."""
    if _PLAIN_NUMBER.fullmatch(text):
        return Expr(text, (("num", int(text, 0)),))
    if not variables:
        cached = _EXPR_CACHE.get(text)
        if cached is None:
            if len(_EXPR_CACHE) >= _EXPR_CACHE_SIZE:
                _EXPR_CACHE.clear()
            cached = _EXPR_CACHE[text] = _parse_expr(text, ())
        return cached
    return _parse_expr(text, variables)


#: int_value's answers (flag sets, fds and sizes repeat in every log)
_VALUE_CACHE: dict[str, int] = {}


def int_value(text: str) -> int:
    """The value of an expression without variables: parse_expr(text).eval({}),
    remembered. ValueError."""
    v = _VALUE_CACHE.get(text)
    if v is None:
        if _PLAIN_NUMBER.fullmatch(text):
            return int(text, 0)
        if len(_VALUE_CACHE) >= _EXPR_CACHE_SIZE:
            _VALUE_CACHE.clear()
        v = _VALUE_CACHE[text] = parse_expr(text).eval({})
    return v


def _parse_expr(text: str, variables: Collection[str]) -> Expr:
    text_s = text.strip()
    postfix: list[tuple[str, Any]] = []
    ops: list[str] = []                 # operators waiting for their right operand, "("
    depth = 0                           # the "(" in ops
    operand = True                      # an operand comes next
    for kind, v in _tokens(text_s, variables):
        if operand and kind != "op":
            postfix.append((kind, v))
            operand = False
        elif operand and v in ("(", "-"):
            ops.append("neg" if v == "-" else v)
            depth += v == "("
        elif operand:
            raise ValueError(f"unexpected {_shown(v)} in {quote(text_s)}")
        elif kind == "op" and v in _PRECEDENCE:
            while ops and ops[-1] != "(" and _PRECEDENCE[ops[-1]] >= _PRECEDENCE[v]:
                postfix.append(("op", ops.pop()))
            ops.append(v)
            operand = True
        elif v == ")" and depth:
            while (op := ops.pop()) != "(":
                postfix.append(("op", op))
            depth -= 1
        else:
            raise ValueError(f"missing ')' in {quote(text_s)}" if depth else
                             f"trailing {_shown(v)} in {quote(text_s)}")
    if operand:
        raise ValueError(f"unexpected end of {quote(text_s)}")
    if depth:
        raise ValueError(f"missing ')' in {quote(text_s)}")
    postfix += [("op", op) for op in reversed(ops)]
    return Expr(text_s, tuple(postfix))


def _shown(token: int | str) -> str:
    return quote(token) if isinstance(token, str) else repr(token)


# --------------------------------------------------------------------------- C strings

_ESC = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "\\": "\\", '"': '"',
        "'": "'", "a": "\a", "b": "\b", "e": "\x1b"}


def parse_cstring(text: str) -> tuple[bytes, bool]:
    """A C string literal as strace prints it (octal and hex escapes, optional
    trailing `...` for truncation). Returns (bytes, truncated)."""
    t = text.strip()
    truncated = t.endswith("...")
    if truncated:
        t = t[:-3]
    if len(t) < 2 or t[0] != '"' or t[-1] != '"':
        raise ValueError(f"bad string literal {quote(text)}")
    s = t[1:-1]
    if "\\" not in s:                   # nothing escaped (most paths)
        return s.encode(), truncated
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        i += 1
        if i >= len(s):
            raise ValueError(f"dangling backslash in {quote(text)}")
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
                raise ValueError(f"bad \\x escape in {quote(text)}")
            out.append(int(s[i + 1:j], 16))
            i = j
        elif c in _ESC:
            out += _ESC[c].encode()
            i += 1
        else:
            raise ValueError(f"unknown escape \\{c} in {quote(text)}")
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


# --------------------------------------------------------------------------- results

@dataclass
class Result:
    """A call's outcome: kind "ok" (value), "err" (errno name), "sig" (signal, code,
    addr), "unknown" (`= ?`)."""
    kind: str
    value: Expr | int | str | None = None     # "ok"; the str "outside" (scenarios)
    errname: str | None = None
    signal: str | None = None
    code: str | None = None
    addr: Expr | int | None = None


_SIG_RESULT = re.compile(r"^(SIG[A-Z]+)\s*(?:\{(.*)\})?$")


def parse_result(text: str, variables: Collection[str] = ()) -> Result:
    """The part after '=': `0`, `0x7f..`, `-1 EACCES (Permission denied)`, `?`,
    `SIGSEGV {si_code=SEGV_ACCERR, si_addr=0x7f..}`, optionally followed by a strace
    parenthetical such as `(flags O_RDWR)`; `outside` (a scenario's address outside
    both windows)."""
    t = text.strip()
    if _PLAIN_NUMBER.fullmatch(t):
        return Result("ok", value=Expr(t, (("num", int(t, 0)),)))
    if t == "?":
        return Result("unknown")
    if t == "outside":
        return Result("ok", value="outside")
    m = _SIG_RESULT.match(t)
    if m:
        return _signal_result(m.group(1), m.group(2) or "", variables)
    m = re.match(r"^-1\s+(E[A-Z0-9]+)(?:\s+\(.*\))?$", t)
    if m:
        if not is_errno(m.group(1)):
            raise ValueError(f"unknown errno {m.group(1)}")
        return Result("err", errname=m.group(1))
    m = re.match(r"^(\S+)(?:\s+\(.*\))?$", t)
    if not m:
        raise ValueError(f"cannot parse result {quote(t)}")
    return Result("ok", value=parse_expr(m.group(1), variables))


def _signal_result(signal: str, detail: str, variables: Collection[str]) -> Result:
    code = addr = None
    for part in detail.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"bad signal detail {quote(part)}")
        k, v = (x.strip() for x in part.split("=", 1))
        if k == "si_code":
            code = v
        elif k == "si_addr":
            addr = parse_expr(v, variables)
        elif k != "si_signo":
            raise ValueError(f"unknown signal field {quote(k)}")
    return Result("sig", signal=signal, code=code, addr=addr)


def format_error(errname: str) -> str:
    """`-1 ENOMEM (Cannot allocate memory)`"""
    return f"-1 {errname} ({strerror(errname)})"


def parse_event(s: str) -> tuple[str, str | None]:
    """A `--- SIGSEGV {...} ---` line: ("signal", "SIGSEGV"); `+++ exited with 0 +++`:
    ("exited", None); `+++ killed by SIGKILL +++`: ("killed", "SIGKILL"); `+++
    superseded by execve in pid N +++`: ("superseded", None). ValueError."""
    if s.startswith("---"):
        if not s.endswith("---"):
            raise ValueError("unterminated `--- ... ---` signal line")
        sig = re.match(r"(?:stopped by )?(SIG[A-Z0-9]+)", s[3:-3].strip())
        return "signal", sig.group(1) if sig else None
    if not s.endswith("+++"):
        raise ValueError("unterminated `+++ ... +++` exit line")
    body = s[3:-3].strip()
    if body.startswith("superseded by execve"):     # a thread's exec took over the group
        return "superseded", None
    m = re.match(r"killed by (SIG[A-Z0-9]+)", body)
    if m:
        return "killed", m.group(1)
    if re.match(r"exited with -?\d+$", body):
        return "exited", None
    raise ValueError(f"unknown strace event {quote(body)}")


# --------------------------------------------------------------------------- lines

@dataclass
class Line:
    """One call line: the name, the argument texts, the result (None when the line
    has none) and a trailing `# comment`."""
    name: str
    raw_args: list[str]
    result: Result | None
    text: str
    comment: str | None = None


def parse_line(text: str, variables: Collection[str] = ()) -> Line | None:
    """Parse one line. None for blank lines, `#` comments and signal or exit lines;
    else the Line. ValueError with the reason."""
    s = text.strip()
    if not s or s.startswith("#"):
        return None
    _pid, _bracketed, s = strip_prefix(s)
    if s.startswith(("---", "+++")):
        return None
    s = TIMING.sub("", s)
    m = CALL_NAME.match(s)
    if not m:
        raise ValueError("expected `name(args...)`")
    close = find_close(s, m.end() - 1)
    raw_args = split_args(s[m.end():close])
    rest = s[close + 1:].strip()
    comment = None
    if rest.startswith("#"):
        comment, rest = rest[1:].strip(), ""
    elif " #" in rest:
        rest, comment = (x.strip() for x in rest.split(" #", 1))
    result = None
    if rest:
        if not rest.startswith("="):
            raise ValueError(f"expected '= result' after ')', got {quote(rest)}")
        result = parse_result(rest[1:], variables)
    return Line(m.group(1), raw_args, result, text.rstrip("\n"), comment)


# --------------------------------------------------------------------------- values by kind

def _bind_arg(kind: str, raw: str, variables: Collection[str]) -> Expr | str | bytes | None:
    if kind in ("path", "str", "data"):
        if raw == "NULL":
            return None if kind != "data" else b""
        data, _truncated = parse_cstring(raw)
        if kind == "path":
            check_path(data)
        return data if kind == "data" else data.decode("utf-8", "surrogateescape")
    if kind == "touchmode":
        mode = parse_cstring(raw)[0].decode()
        if mode not in ("r", "w", "x"):
            raise ValueError(f'touch mode must be "r", "w" or "x", not {quote(mode)}')
        return mode
    return parse_expr(raw, variables)


#: the most bytes a pwrite64 may write: its buffer is padded with zeros to the count,
#: strace showing only its start, so the count is memory to allocate
MAX_PWRITE = 16 << 20


def bind_args(call: Syscall, raw: Sequence[str], env: Mapping[str, int]) -> list:
    """The values of a call's argument texts, by kind: Expr for integers (checked by
    evaluating them with env, which gives the variables they may use), str for paths,
    bytes for data, None for a NULL path; absent optional arguments 0 or None.
    ValueError when the count or a value is wrong."""
    kinds = call.kinds
    if not call.required <= len(raw) <= len(kinds):
        want = str(call.required) if call.required == len(kinds) else \
            f"{call.required} to {len(kinds)}"
        raise ValueError(f"{call.name} takes {want} arguments, got {len(raw)}")
    args: list[Any] = [_bind_arg(kind.rstrip("?"), text, env.keys())
            for kind, text in zip(kinds, raw, strict=False)]
    for value in args:
        if isinstance(value, Expr):
            value.eval(env)                 # raises ValueError now, not at run time
    if call.name == "pwrite64":             # strace truncates long buffers: pad to count
        data, count = args[1], args[2]
        assert isinstance(data, bytes) and isinstance(count, Expr)
        n = count.eval(env)
        if n > MAX_PWRITE:
            raise ValueError(f"pwrite64 count {n} is more than {size_text(MAX_PWRITE)}, "
                             "the most a pwrite64 may write")
        args[1] = data.ljust(n, b"\0")
        args[2] = n
    args += [None if kind.rstrip("?") in ("str", "path") else 0 for kind in kinds[len(raw):]]
    return args


#: the bits of each flag-set kind, most specific first (for `format_value`; the flag sets
#: of XFLAGS, open's among them, are strace's own tables)
FLAG_NAMES: dict[str, list[str]] = {
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
    "msflags": ["MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC"],
}
#: the names of each enumeration kind's values
ENUM_NAMES: dict[str, dict[int, str]] = {
    "madv": {v: k for k, v in with_prefix("MADV_").items()},
    "prctl": {v: k for k, v in CONSTANTS.items() if k.startswith(("PR_SET_", "PR_GET_"))},
}
_MAP_TYPES = {CONSTANTS[n]: n for n in ("MAP_SHARED", "MAP_PRIVATE", "MAP_SHARED_VALIDATE",
                                        "MAP_DROPPABLE")}


def format_address(v: int) -> str:
    """An address as strace prints it: hex, NULL for 0, negative past 2^63."""
    v &= U64
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


def format_value(kind: str, v: int | str | bytes | None,
                 address: Callable[[int], str] = format_address) -> str:
    """An argument value as strace prints it (symbolic flags, C strings); `address`
    writes addresses (a scenario's are W/B-relative)."""
    kind = kind.rstrip("?")
    if v is None:
        return "NULL"
    if isinstance(v, str):              # path, str, touchmode
        return format_cstring(v.encode("utf-8", "surrogateescape"))
    if isinstance(v, bytes):            # data
        return format_cstring(v)
    if kind == "addr":
        return address(v)
    if kind in ("int", "fd", "pkey", "len", "off", "byte"):
        return _format_int(kind, v)
    if kind == "mode":
        return f"0{v:o}" if v else "0"
    if kind == "mapflags":
        v &= U64
        typ = _MAP_TYPES.get(v & MAP_TYPE)
        return _flags(v & ~MAP_TYPE if typ else v, FLAG_NAMES["mapflags"],
                      [typ] if typ else None)
    if kind in FLAG_NAMES:
        return _flags(v & U64, FLAG_NAMES[kind])
    if kind in ENUM_NAMES:
        return ENUM_NAMES[kind].get(v & U64) or _format_int("int", v)
    return _format_syscall_value(kind, v)


def _format_syscall_value(kind: str, v: int) -> str:
    """The kinds of the calls only programs make, as strace prints them: strace's names
    for enumerations and flag sets (XLAT, XFLAGS), a directory fd, a hex number, and a
    struct or buffer by its address (what strace shows of one it cannot read)."""
    if kind == "dirfd":
        return "AT_FDCWD" if _int32(v) == AT_FDCWD else str(_int32(v))
    if kind == "hex":
        return f"{v & U64:#x}" if v else "0"
    if kind in XLAT:
        name = XLAT[kind].get(v & 0xFFFFFFFF)
        if name is None and kind == "fadvice":      # printxval()'s default
            return f"{v & 0xFFFFFFFF:#x} /* POSIX_FADV_??? */"
        return name or (f"{v & 0xFFFFFFFF:#x}" if kind == "ioctlcmd" else str(_int32(v)))
    if kind in XFLAGS:
        return _xflags(kind, v & 0xFFFFFFFF)
    if kind in MEMORY_KINDS:
        return format_address(v)
    return str(v)


def _format_int(kind: str, v: int) -> str:
    v64 = v & U64
    if v64 >= 1 << 63:
        return str(v64 - (1 << 64))
    if kind in ("len", "off") and v64 >= 0x1000:
        return f"{v64:#x}" if v64 % 0x1000 == 0 and v64 >= 1 << 20 else str(v64)
    return str(v64)


# --------------------------------------------------------------------------- calls from registers

# `vmsim run --trace`: a call a program made, printed from its registers and memory as
# this machine's strace (6.x, default options: -s 32, abbreviated structs) prints it:
#     openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
#     read(3, "\177ELF\2\1\1\3\0\0\0\0\0\0\0\0\3\0>\0\1\0\0\0\20t\2\0\0\0\0\0"..., 832) = 832
# Structs strace decodes in full are shown by their fields where the formatter knows
# them (stat, timespec, rlimit, utsname, iovec, cpu masks, fd pairs), else as addresses.

#: strace -s: the bytes of a buffer shown; the column " = " is aligned to
STRING_LIMIT = 32
RESULT_COLUMN = 40
#: the most bytes of a path read for printing (PATH_MAX)
PATH_LIMIT = 4096

#: the names strace gives the values of some argument kinds (its xlat tables)
XLAT: dict[str, dict[int, str]] = {
    "whence": {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"},
    "clockid": {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
                3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW",
                5: "CLOCK_REALTIME_COARSE", 6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME",
                8: "CLOCK_REALTIME_ALARM", 9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"},
    "rlimres": {v: k for k, v in with_prefix("RLIMIT_").items()},
    "fcntlcmd": {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL",
                 1030: "F_DUPFD_CLOEXEC", 1033: "F_ADD_SEALS", 1034: "F_GET_SEALS"},
    "archcode": {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
                 0x1004: "ARCH_GET_GS", 0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID"},
    "ioctlcmd": {0x5401: "TCGETS", 0x5413: "TIOCGWINSZ", 0x541B: "FIONREAD", 0x5421: "FIONBIO",
                 0x5451: "FIOCLEX", 0x5450: "FIONCLEX",
                 **{v: k for k, v in with_prefix("SGX_IOC_").items()}},
    "fadvice": {0: "POSIX_FADV_NORMAL", 1: "POSIX_FADV_RANDOM", 2: "POSIX_FADV_SEQUENTIAL",
                3: "POSIX_FADV_WILLNEED", 4: "POSIX_FADV_DONTNEED", 5: "POSIX_FADV_NOREUSE"},
}
#: flag sets as strace names them, most specific first; the empty set's name
XFLAGS: dict[str, tuple[list[tuple[int, str]], str]] = {
    "atflags": ([(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"),
                 (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH"),
                 (0x2000, "AT_STATX_FORCE_SYNC"), (0x4000, "AT_STATX_DONT_SYNC")], "0"),
    "accmode": ([(4, "R_OK"), (2, "W_OK"), (1, "X_OK")], "F_OK"),
    "grndflags": ([(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")], "0"),
    "fdflags": ([(1, "FD_CLOEXEC")], "0"),
    "closerangeflags": ([(2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC")], "0"),
    "oflags": ([(0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
                (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"),
                (0o10000, "O_DSYNC"), (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"),
                (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"),
                (0o10000000, "O_PATH"), (0o20200000, "O_TMPFILE"), (0o200000, "O_DIRECTORY"),
                (0o20000, "FASYNC")], ""),
    "fdoflags": ([(0o2000000, "O_CLOEXEC"), (0o4000, "O_NONBLOCK"), (0o40000, "O_DIRECT"),
                  (0o200, "O_NOTIFICATION_PIPE")], "0"),
    "pollevents": ([(1 << n, name) for n, name in enumerate(
        ("POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL", "POLLRDNORM",
         "POLLRDBAND", "POLLWRNORM", "POLLWRBAND", "POLLMSG", "", "POLLREMOVE", "POLLRDHUP")) if name],
                   "0"),
}
_S_IFMT = {0o140000: "S_IFSOCK", 0o120000: "S_IFLNK", 0o100000: "S_IFREG",
           0o060000: "S_IFBLK", 0o040000: "S_IFDIR", 0o020000: "S_IFCHR", 0o010000: "S_IFIFO"}

#: the kinds whose value is the address of a buffer or struct in the process's memory
MEMORY_KINDS = frozenset({"buf", "outbuf", "iovec", "ioctlarg", "statbuf", "rlimit", "timespec",
                          "timeval", "fdpair", "cpumask", "utsname", "dirents", "pollfds", "fdset",
                          "timeout", "tvtimeout", "sigsetp", "sigsetpack", "loffp"})

#: reads `n` bytes of the traced process's memory at an address; None if it cannot
Peek = Callable[[int, int], bytes | None]


def strace_quote(data: bytes, force_hex: bool = False) -> str:
    """A byte string as strace's string_quote() writes it: printable ASCII as it is,
    \\t \\n \\v \\f \\r, the rest in octal (three digits before an octal digit); every
    byte in hex under QUOTE_FORCE_HEX (getrandom's buffer)."""
    out = ['"']
    for i, b in enumerate(data):
        if force_hex:
            out.append(f"\\x{b:02x}")
        elif b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        elif b in _C_ESCAPES:
            out.append(_C_ESCAPES[b])
        elif i + 1 < len(data) and 0x30 <= data[i + 1] <= 0x37:
            out.append(f"\\{b:03o}")
        else:
            out.append(f"\\{b:o}")
    out.append('"')
    return "".join(out)


_C_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0C: "\\f", 0x0D: "\\r"}


def _int32(v: int) -> int:
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _xflags(kind: str, v: int) -> str:
    """A flag set by strace's names (open flags: the access mode first)."""
    bits, empty = XFLAGS[kind]
    parts = []
    if kind == "oflags":
        parts.append(("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[v & O_ACCMODE])
        v &= ~O_ACCMODE
    for bit, name in bits:
        if v & bit == bit:
            parts.append(name)
            v &= ~bit
    if v:
        parts.append(f"{v:#x}")
    return "|".join(parts) or empty


class _CallView:
    """One call being printed: its entry, raw argument registers, result and memory."""

    def __init__(self, call: Syscall, args: Sequence[int], result: int | None, peek: Peek):
        self.call, self.args, self.result, self.peek = call, args, result, peek
        #: the view of the memory as the call entered (format_syscall's `entry`)
        self.inputs = self

    @property
    def ok(self) -> bool:
        return self.result is not None and not -4096 < self.result < 0

    def cstring(self, addr: int, limit: int = PATH_LIMIT) -> str:
        """printpath()/printstr(): the NUL-terminated string at addr, its first `limit`
        bytes and `...` when it is longer."""
        if addr == 0:
            return "NULL"
        data = bytearray()
        while len(data) <= limit:
            at = addr + len(data)
            chunk = self.peek(at, min(64, limit + 1 - len(data), PAGE_SIZE - at % PAGE_SIZE))
            if not chunk:
                return f"{addr:#x}" if not data else strace_quote(bytes(data)) + "..."
            nul = chunk.find(0)
            if nul >= 0 and len(data) + nul <= limit:
                return strace_quote(bytes(data + chunk[:nul]))
            data += chunk
        return strace_quote(bytes(data[:limit])) + "..."

    def pointers(self, addr: int, most: int) -> tuple[list[int], bool] | None:
        """The pointers of the NULL-terminated array at addr (an argv), at most `most`
        of them, and whether there are more; None if it cannot be read."""
        out: list[int] = []
        while len(out) <= most:
            word = self.peek(addr + 8 * len(out), 8)
            if word is None:
                return None
            (ptr,) = struct.unpack("<Q", word)
            if not ptr:
                return out, False
            out.append(ptr)
        return out[:most], True

    def buffer(self, addr: int, count: int, force_hex: bool = False) -> str:
        """printstrn(): count bytes at addr, the first STRING_LIMIT of them shown."""
        data = self.peek(addr, min(count, STRING_LIMIT)) if count > 0 else b""
        if data is None:
            return format_address(addr)
        return strace_quote(data, force_hex) + ("..." if count > STRING_LIMIT else "")

    def struct(self, addr: int, fmt: str) -> tuple | None:
        """The struct of layout fmt at addr, None where it cannot be read."""
        data = self.peek(addr, struct.calcsize(fmt)) if addr else None
        return struct.unpack(fmt, data) if data is not None else None


def _stat_text(view: _CallView, addr: int) -> str:
    fields = view.struct(addr, "<QQQIIIiQq") if view.ok else None
    if fields is None:
        return format_address(addr)
    mode, rdev, size = fields[3], fields[7], fields[8]
    text = f"{{st_mode={_mode_text(mode)}, "
    if mode & 0o170000 in (0o020000, 0o060000):
        major, minor = (rdev >> 8) & 0xFFF | (rdev >> 32) & ~0xFFF, rdev & 0xFF | (rdev >> 12) & ~0xFF
        return text + f"st_rdev=makedev({major:#x}, {minor:#x}), ...}}"
    return text + f"st_size={size}, ...}}"


def _mode_text(mode: int) -> str:
    kind = _S_IFMT.get(mode & 0o170000)
    perms = f"{mode & 0o7777:04o}"
    return f"{kind}|{perms}" if kind else perms


def _rlimit_value(v: int) -> str:
    if v == U64:
        return "RLIM64_INFINITY"
    return f"{v // 1024}*1024" if v and v % 1024 == 0 else str(v)


def _rlimit_text(view: _CallView, addr: int) -> str:
    fields = view.struct(addr, "<QQ")
    if fields is None:
        return format_address(addr)
    return f"{{rlim_cur={_rlimit_value(fields[0])}, rlim_max={_rlimit_value(fields[1])}}}"


def _timespec_text(view: _CallView, addr: int, micro: bool = False, read: bool | None = None) -> str:
    """A timespec (timeval: `micro`) the call read or wrote: read as the call succeeded
    (or always: `read`), else its address."""
    fields = view.struct(addr, "<qq") if (view.ok if read is None else read) else None
    if fields is None:
        return format_address(addr)
    return f"{{tv_sec={fields[0]}, {'tv_usec' if micro else 'tv_nsec'}={fields[1]}}}"


def _iovec_text(view: _CallView, addr: int, count: int, filled: int | None) -> str:
    vec = view.struct(addr, "<" + "QQ" * count) if count <= 1024 else None
    if vec is None:
        return format_address(addr)
    items = []
    for base, length in zip(vec[::2], vec[1::2], strict=True):
        shown = length if filled is None else max(0, min(length, filled))
        if filled is not None:
            filled -= shown
        items.append(f"{{iov_base={view.buffer(base, shown)}, iov_len={length}}}")
    return "[" + ", ".join(items) + "]"


def _arg_text(view: _CallView, i: int, kind: str) -> str:
    """One argument of the call, by its kind."""
    v, args, name = view.args[i] & U64, view.args, view.call.name
    if kind in ("fd", "pkey", "cint"):
        return str(_int32(v))
    if kind in ("path", "atpath", "str"):
        return view.cstring(v)
    if kind == "buf":
        return view.buffer(v, args[i + 1] & U64)
    if kind == "outbuf":
        if not view.ok:
            return format_address(v)
        assert view.result is not None
        if name == "getcwd":
            return view.cstring(v)
        return view.buffer(v, view.result, force_hex=name == "getrandom")
    if kind == "len":
        return str(v)
    if kind == "off":
        return f"{v:#x}" if v else "0"
    if kind == "mode":
        return f"0{v & 0o7777:o}" if v & 0o7777 else "0"
    if kind == "prot" and v == 0:
        return "PROT_NONE"
    if kind == "statbuf":
        return _stat_text(view, v)
    if kind == "rlimit":
        return _rlimit_text(view, v) if v else "NULL"
    if kind == "timespec":
        return _timespec_text(view, v) if v else "NULL"
    if kind == "timeval":
        return _timespec_text(view, v, micro=True) if v else "NULL"
    if kind == "iovec":
        filled = view.result if name == "readv" and view.ok else None
        return _iovec_text(view, v, args[i + 1] & 0xFFFFFFFF, filled)
    if kind == "fdpair":
        pair = view.struct(v, "<ii") if view.ok else None
        return f"[{pair[0]}, {pair[1]}]" if pair else format_address(v)
    if kind == "cpumask":
        return _cpumask_text(view, v)
    if kind == "utsname":
        return _utsname_text(view, v)
    if kind == "dirents":
        return format_address(v) + (f" /* {_dirent_count(view, v)} entries */" if view.ok else "")
    if kind in WAIT_KINDS:
        return _wait_arg_text(view, i, kind) if v else "NULL"
    if kind in ("int", "byte"):
        return str(v - (1 << 64) if v >= 1 << 63 else v)
    return format_value(kind, v)


def _cpumask_text(view: _CallView, addr: int) -> str:
    data = view.peek(addr, view.result) if view.ok and view.result else None
    if data is None:
        return format_address(addr)
    bits = int.from_bytes(data, "little")
    return "[" + " ".join(str(n) for n in range(len(data) * 8) if bits >> n & 1) + "]"


def _utsname_text(view: _CallView, addr: int) -> str:
    data = view.peek(addr, 130) if view.ok else None
    if data is None:
        return format_address(addr)
    sysname, nodename = (data[k:k + 65].split(b"\0", 1)[0] for k in (0, 65))
    return f"{{sysname={strace_quote(sysname)}, nodename={strace_quote(nodename)}, ...}}"


def _dirent_count(view: _CallView, addr: int) -> int:
    assert view.result is not None
    data = view.peek(addr, view.result) or b""
    count = pos = 0
    while pos + 19 <= len(data):
        reclen = int.from_bytes(data[pos + 16:pos + 18], "little")
        if not reclen:
            break
        count += 1
        pos += reclen
    return count


def _shown_kinds(call: Syscall, args: Sequence[int]) -> list[tuple[int, str]]:
    """The arguments strace shows: open's mode only with O_CREAT or O_TMPFILE, mremap's
    new address only with MREMAP_MAYMOVE|MREMAP_FIXED, fcntl's third only for the
    commands that take one."""
    kinds = [(i, kind.rstrip("?")) for i, kind in enumerate(call.kinds)]
    if call.name in ("open", "openat"):
        flags = args[kinds[-2][0]]
        if not flags & (0o100 | 0o20000000):
            kinds = kinds[:-1]
    if call.name == "mremap" and args[3] & _MREMAP_MOVE_FIXED != _MREMAP_MOVE_FIXED:
        kinds = kinds[:-1]
    if call.name == "fcntl" and args[1] & 0xFFFFFFFF in (1, 3, 1034):
        kinds = kinds[:2]
    if call.name == "fcntl" and args[1] & 0xFFFFFFFF == 2:
        kinds = [*kinds[:2], (2, "fdflags")]
    return kinds


#: the errors of a call a signal interrupted, never seen by the program (it is made
#: again, or returns EINTR): strace's names and words for them (include/linux/errno.h)
RESTART_ERRORS = {512: "ERESTARTSYS (To be restarted if SA_RESTART is set)",
                  513: "ERESTARTNOINTR (To be restarted)",
                  514: "ERESTARTNOHAND (To be restarted if no handler)",
                  516: "ERESTART_RESTARTBLOCK (Interrupted by signal)"}


def _result_text(call: Syscall, args: Sequence[int], result: int | None) -> str:
    """The result as strace shows it: an errno by name and text, an address in hex,
    umask's in octal, fcntl's flags and time's date decoded."""
    if result is None:
        return "?"
    if -result in RESTART_ERRORS:
        return f"? {RESTART_ERRORS[-result]}"
    if -4096 < result < 0:
        name = errno_name(-result)
        return f"-1 {name} ({strerror(name)})"
    if call.addr_result:
        return f"{result & U64:#x}"
    if call.name == "umask":
        return f"0{result:o}"
    cmd = args[1] & 0xFFFFFFFF if call.name == "fcntl" else None
    if cmd == 3:
        return f"{result:#x} (flags {_xflags('oflags', result)})"
    if cmd == 1 and result:
        return f"{result:#x} (flags {_xflags('fdflags', result)})"
    if call.name == "time":
        moment = datetime.datetime.fromtimestamp(result, datetime.UTC)
        return f"{result} ({moment.strftime('%Y-%m-%dT%H:%M:%S+0000')})"
    return str(result)


# poll(2), ppoll(2), select(2), pselect6(2), and the offsets of sendfile(2) and
# copy_file_range(2): what strace shows of their structs, and after the result what the
# call found (`= 1 ([{fd=3, revents=POLLIN}])`, `= 1 (in [3], left {...})`, `(Timeout)`)

#: the kinds of these calls' arguments: a pollfd array (its count the next argument), an
#: fd_set (of the first argument's fds), a timeout the call reads (timespec, timeval), a
#: sigset_t, pselect6's {sigset, size}, a loff_t
WAIT_KINDS = frozenset({"pollfds", "fdset", "timeout", "tvtimeout", "sigsetp", "sigsetpack",
                        "loffp"})
#: struct pollfd, struct __kernel_timespec (or timeval), pselect6's sigset_argpack
_POLLFD, _TIMESPEC, _ARGPACK = "<ihh", "<qq", "<QQ"


def _wait_arg_text(view: _CallView, i: int, kind: str) -> str:
    v, args, name = view.args[i] & U64, view.args, view.call.name
    if kind == "pollfds":
        return _pollfds_text(view, v, args[i + 1] & 0xFFFFFFFF, None) or format_address(v)
    if kind == "fdset":
        data = view.peek(v, (_int32(args[0]) + 63) // 64 * 8) if _int32(args[0]) > 0 else b""
        return _fds_text(data, _int32(args[0])) if data is not None else format_address(v)
    if kind in ("timeout", "tvtimeout"):
        fields = view.struct(v, _TIMESPEC)
        unit = "tv_usec" if kind == "tvtimeout" else "tv_nsec"
        return f"{{tv_sec={fields[0]}, {unit}={fields[1]}}}" if fields else format_address(v)
    if kind == "sigsetp":                       # its size the next argument
        mask = view.struct(v, "<Q") if args[i + 1] & U64 == 8 else None
        return format_sigset(mask[0]) if mask else format_address(v)
    if kind == "sigsetpack":
        pack = view.struct(v, _ARGPACK)
        if pack is None:
            return format_address(v)
        mask = view.struct(pack[0], "<Q") if pack[0] and pack[1] == 8 else None
        shown = format_sigset(mask[0]) if mask else format_address(pack[0]) if pack[0] else "NULL"
        return f"{{sigmask={shown}, sigsetsize={pack[1]}}}"
    loff = view.struct(v, "<q")                 # loffp: the offset as the call left it
    if loff is None:
        return format_address(v)
    moved = view.result if view.ok and view.result else 0
    if name == "sendfile" and moved:
        return f"[{loff[0] - moved}] => [{loff[0]}]"
    return f"[{loff[0] - moved}]"


def _pollfds_text(view: _CallView, addr: int, nfds: int, returned: int | None) -> str | None:
    """The pollfd array: `{fd=N, events=...}` each (`{fd=-1}` for a negative fd), or with
    `returned` the entries with revents, at most that many."""
    entries = view.struct(addr, "<" + _POLLFD[1:] * nfds) if nfds <= STRING_LIMIT else None
    if entries is None:
        return None
    items = []
    for fd, events, revents in zip(entries[::3], entries[1::3], entries[2::3], strict=True):
        if returned is None:
            items.append(f"{{fd={fd}, events={_xflags('pollevents', events & 0xFFFF)}}}"
                         if fd >= 0 else f"{{fd={fd}}}")
        elif revents and len(items) < returned:
            items.append(f"{{fd={fd}, revents={_xflags('pollevents', revents & 0xFFFF)}}}")
    return "[" + ", ".join(items) + "]"


def _fds_text(data: bytes, n: int) -> str:
    """An fd_set: the fds below n in it, `[3 5]`."""
    bits = int.from_bytes(data, "little")
    return "[" + " ".join(str(fd) for fd in range(n) if bits >> fd & 1) + "]"


def format_sigset(mask: int) -> str:
    """A sigset_t as strace names it: `[USR1 TERM]`, or `~[...]` of what it lacks when it
    holds more than half the signals."""
    if bin(mask).count("1") > 32:
        return "~" + format_sigset(~mask & U64)
    names = [signal_name(n).removeprefix("SIG") if n < 32 else "RTMIN" if n == 32 else f"RT_{n - 32}"
             for n in range(1, 65) if mask >> (n - 1) & 1]
    return "[" + " ".join(names) + "]"


def _wait_result_text(view: _CallView) -> str:
    """What strace adds after the result of poll, ppoll, select and pselect6: the ready
    entries or fds and the time left (ppoll, select, pselect6 with a timeout), or
    `(Timeout)` for 0."""
    name, args, result = view.call.name, view.args, view.result
    if name not in ("poll", "ppoll", "select", "pselect6") or not view.ok:
        return ""
    if not result:
        return " (Timeout)"
    assert result is not None
    parts = []
    if name in ("poll", "ppoll"):
        parts.append(_pollfds_text(view, args[0] & U64, args[1] & 0xFFFFFFFF, result) or "")
    else:
        n = _int32(args[0])
        for label, uset in zip(("in", "out", "except"), args[1:4], strict=True):
            data = view.peek(uset & U64, (n + 63) // 64 * 8) if uset and n > 0 else None
            if data and any(data):
                parts.append(f"{label} {_fds_text(data, n)}")
    timeout = {"ppoll": 2, "select": 4, "pselect6": 4}.get(name)
    if timeout is not None and args[timeout]:
        parts.append("left " + _wait_arg_text(view, timeout, "tvtimeout" if name == "select" else "timeout"))
    return f" ({', '.join(parts)})"


def _argv_text(view: _CallView, addr: int) -> str:
    """printargv(): execve's argv, its first STRING_LIMIT strings (each cut at
    STRING_LIMIT bytes), `...` for the rest."""
    got = view.pointers(addr, STRING_LIMIT) if addr else None
    if got is None:
        return format_address(addr)
    pointers, more = got
    return "[" + ", ".join([view.cstring(p, STRING_LIMIT) for p in pointers] +
                           (["..."] if more else [])) + "]"


def _envp_text(view: _CallView, addr: int) -> str:
    """printargc(): execve's envp, its address and how many strings it holds."""
    got = view.pointers(addr, MAX_ENV_SHOWN) if addr else None
    if got is None:
        return format_address(addr)
    count = len(got[0])
    return f"{addr:#x} /* {count} var{'' if count == 1 else 's'} */"


# The calls whose arguments strace decodes by their own rules (its per-call decoders):
# signals and sigsets, clone and clone3, futex, statx, wait4 and the sleeps. Only how
# they print; the table's kinds still say how a trace's text binds.

#: struct sigaction's sa_flags in strace's order (xlat/sigact_flags.in)
_SA_FLAGS = [(0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"),
             (0x20000000, "SA_INTERRUPT"), (0x40000000, "SA_NODEFER"), (0x80000000, "SA_RESETHAND"),
             (4, "SA_SIGINFO"), (1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT")]
_SIG_HOW = ("SIG_BLOCK", "SIG_UNBLOCK", "SIG_SETMASK")
_SA_RESTORER = 0x04000000
#: the clone flags by bit, lowest first (strace's order); CSIGNAL: the exit signal
_CLONE_FLAGS = sorted(((v, n) for n, v in CONSTANTS.items() if n.startswith("CLONE_")
                       and n != "CLONE_DETACHED"), key=lambda item: item[0])
_CSIGNAL = 0xFF
_FUTEX_OPS = ("FUTEX_WAIT", "FUTEX_WAKE", "FUTEX_FD", "FUTEX_REQUEUE", "FUTEX_CMP_REQUEUE",
              "FUTEX_WAKE_OP", "FUTEX_LOCK_PI", "FUTEX_UNLOCK_PI", "FUTEX_TRYLOCK_PI",
              "FUTEX_WAIT_BITSET", "FUTEX_WAKE_BITSET", "FUTEX_WAIT_REQUEUE_PI",
              "FUTEX_CMP_REQUEUE_PI", "FUTEX_LOCK_PI2")
_FUTEX_PRIVATE, _FUTEX_CLOCK_REALTIME, _FUTEX_CMD = 128, 256, 0x7F
_FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
#: statx's mask bits (include/uapi/linux/stat.h), the two sums strace names first
_STATX_BITS = [(0xFFF, "STATX_ALL"), (0x7FF, "STATX_BASIC_STATS")] + [
    (1 << n, name) for n, name in enumerate((
        "STATX_TYPE", "STATX_MODE", "STATX_NLINK", "STATX_UID", "STATX_GID", "STATX_ATIME",
        "STATX_MTIME", "STATX_CTIME", "STATX_INO", "STATX_SIZE", "STATX_BLOCKS", "STATX_BTIME",
        "STATX_MNT_ID", "STATX_DIOALIGN", "STATX_MNT_ID_UNIQUE", "STATX_SUBVOL",
        "STATX_WRITE_ATOMIC"))]
_AT_FLAGS = [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x800, "AT_NO_AUTOMOUNT"),
             (0x1000, "AT_EMPTY_PATH"), (0x2000, "AT_STATX_FORCE_SYNC"),
             (0x4000, "AT_STATX_DONT_SYNC")]
_WAIT_OPTIONS = [(1, "WNOHANG"), (2, "WUNTRACED"), (4, "WEXITED"), (8, "WCONTINUED"),
                 (0x01000000, "WNOWAIT"), (0x20000000, "__WNOTHREAD"), (0x40000000, "__WALL"),
                 (0x80000000, "__WCLONE")]
_TIMER_ABSTIME = 1


def format_signal(sig: int) -> str:
    """A signal number as strace names it: SIGUSR1, SIGRTMIN (32), SIGRT_1 (33)..."""
    if 0 < sig < 32:
        return signal_name(sig)
    return "SIGRTMIN" if sig == 32 else f"SIGRT_{sig - 32}" if 32 < sig <= 64 else str(sig)


def _flag_names(v: int, bits: Sequence[tuple[int, str]]) -> list[str]:
    names = []
    for bit, name in bits:
        if v & bit == bit:
            names.append(name)
            v &= ~bit
    return names + ([f"{v:#x}"] if v else [])


def _sigset_at(view: _CallView, addr: int, size: int) -> str:
    """A sigset_t the call reads or fills, by its names; NULL; its address if it cannot."""
    if not addr:
        return "NULL"
    mask = view.struct(addr, "<Q") if size == 8 else None
    return format_sigset(mask[0]) if mask else format_address(addr)


def _sigaction_at(view: _CallView, addr: int) -> str:
    """struct sigaction (the kernel's: handler, flags, restorer, mask)."""
    if not addr:
        return "NULL"
    act = view.struct(addr, "<QQQQ")
    if act is None:
        return format_address(addr)
    handler, flags, restorer, mask = act
    fields = [f"sa_handler={('SIG_DFL', 'SIG_IGN')[handler] if handler < 2 else format_address(handler)}",
              f"sa_mask={format_sigset(mask)}",
              f"sa_flags={'|'.join(_flag_names(flags, _SA_FLAGS)) or '0'}"]
    if flags & _SA_RESTORER:
        fields.append(f"sa_restorer={format_address(restorer)}")
    return "{" + ", ".join(fields) + "}"


def _rt_sigaction_args(view: _CallView) -> list[str]:
    sig, act, oact, size = (a & U64 for a in view.args[:4])
    return [format_signal(_int32(sig)), _sigaction_at(view, act),
            _sigaction_at(view, oact) if view.ok or not oact else format_address(oact), str(size)]


def _rt_sigprocmask_args(view: _CallView) -> list[str]:
    how, nset, oset, size = (a & U64 for a in view.args[:4])
    return [_SIG_HOW[how] if how < 3 else str(how), _sigset_at(view, nset, size),
            _sigset_at(view, oset, size) if view.ok or not oset else format_address(oset), str(size)]


def _kill_args(view: _CallView) -> list[str]:
    *ids, sig = (_int32(a) for a in view.args[:view.call.required])
    return [*map(str, ids), format_signal(sig) if sig else "0"]


def _clone_flags(flags: int) -> str:
    names = _flag_names(flags & ~_CSIGNAL, _CLONE_FLAGS)
    if flags & _CSIGNAL:
        names.append(format_signal(flags & _CSIGNAL))
    return "|".join(names) or "0"


def _clone_args(view: _CallView) -> list[str]:
    """clone(flags, stack, parent_tid, child_tid, tls): what the flags say is used."""
    flags, stack, parent_tid, child_tid, tls = (a & U64 for a in view.args[:5])
    shown = [f"child_stack={format_address(stack)}", f"flags={_clone_flags(flags)}"]
    if flags & (CONSTANTS["CLONE_PARENT_SETTID"] | CONSTANTS["CLONE_PIDFD"]):
        shown.append(f"parent_tid={format_address(parent_tid)}")
    if flags & CONSTANTS["CLONE_SETTLS"]:
        shown.append(f"tls={format_address(tls)}")
    if flags & (CONSTANTS["CLONE_CHILD_SETTID"] | CONSTANTS["CLONE_CHILD_CLEARTID"]):
        shown.append(f"child_tidptr={format_address(child_tid)}")
    return shown


def _clone3_args(view: _CallView) -> list[str]:
    """clone3(struct clone_args *, size): its fields as the flags use them, then what
    the kernel wrote back (`=> {parent_tid=[N]}`)."""
    addr, size = view.args[0] & U64, view.args[1] & U64
    ca = view.struct(addr, "<11Q") if size >= 88 else None
    if ca is None:
        return [format_address(addr), str(size)]
    flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls = ca[:8]
    fields = [f"flags={'|'.join(_flag_names(flags, _CLONE_FLAGS)) or '0'}"]
    if flags & CONSTANTS["CLONE_PIDFD"]:
        fields.append(f"pidfd={format_address(pidfd)}")
    if flags & (CONSTANTS["CLONE_CHILD_SETTID"] | CONSTANTS["CLONE_CHILD_CLEARTID"]):
        fields.append(f"child_tid={format_address(child_tid)}")
    if flags & CONSTANTS["CLONE_PARENT_SETTID"]:
        fields.append(f"parent_tid={format_address(parent_tid)}")
    fields += [f"exit_signal={format_signal(exit_signal) if exit_signal else 0}",
               f"stack={format_address(stack)}", f"stack_size={stack_size:#x}"]
    if flags & CONSTANTS["CLONE_SETTLS"]:
        fields.append(f"tls={format_address(tls)}")
    text = "{" + ", ".join(fields) + "}"
    written = view.struct(parent_tid, "<i") if view.ok and flags & CONSTANTS["CLONE_PARENT_SETTID"] else None
    if written is not None:
        text += f" => {{parent_tid=[{written[0]}]}}"
    return [text, str(size)]


def _futex_args(view: _CallView) -> list[str]:
    """futex(uaddr, op, val, timeout, uaddr2, val3): the arguments its command uses."""
    uaddr, op, val, timeout, uaddr2, val3 = (a & U64 for a in view.args[:6])
    cmd = op & _FUTEX_CMD
    name = _FUTEX_OPS[cmd] if cmd < len(_FUTEX_OPS) else str(cmd)
    name += "_PRIVATE" if op & _FUTEX_PRIVATE else ""
    name += "|FUTEX_CLOCK_REALTIME" if op & _FUTEX_CLOCK_REALTIME else ""
    shown = [format_address(uaddr), name, str(_int32(val))]
    when = _timespec_text(view, timeout, read=True) if timeout else "NULL"
    if name.startswith(("FUTEX_WAIT_BITSET", "FUTEX_WAKE_BITSET")):
        mask = "FUTEX_BITSET_MATCH_ANY" if val3 & 0xFFFFFFFF == _FUTEX_BITSET_MATCH_ANY else f"{val3:#x}"
        return [*shown, when, mask]
    if cmd == 0:                                # FUTEX_WAIT
        return [*shown, when]
    if cmd == 1:                                # FUTEX_WAKE
        return shown
    return [*shown, when, format_address(uaddr2), str(_int32(val3))]


def _statx_args(view: _CallView) -> list[str]:
    dirfd, path, flags, mask, buf = (a & U64 for a in view.args[:5])
    at = "|".join(["AT_STATX_SYNC_AS_STAT", *_flag_names(flags & 0xFFFFFFFF, _AT_FLAGS)])
    return [format_value("dirfd", dirfd), view.cstring(path), at,
            "|".join(_flag_names(mask & 0xFFFFFFFF, _STATX_BITS)) or "0", _statx_text(view, buf)]


def _statx_text(view: _CallView, addr: int) -> str:
    """struct statx as strace abbreviates it: mask, attributes, mode, size."""
    fields = view.struct(addr, "<IIQIIIH2xQQ") if view.ok else None
    if fields is None:
        return format_address(addr)
    mask, _, attributes, _, _, _, mode, _, size = fields
    return (f"{{stx_mask={'|'.join(_flag_names(mask, _STATX_BITS)) or '0'}, "
            f"stx_attributes={f'{attributes:#x}' if attributes else 0}, stx_mode={_mode_text(mode)}, "
            f"stx_size={size}, ...}}")


def _wait_status(status: int) -> str:
    """A wait status as strace's printstatus() spells it."""
    if status & 0x7F == 0:
        return f"[{{WIFEXITED(s) && WEXITSTATUS(s) == {status >> 8 & 0xFF}}}]"
    core = " && WCOREDUMP(s)" if status & 0x80 else ""
    return f"[{{WIFSIGNALED(s) && WTERMSIG(s) == {format_signal(status & 0x7F)}{core}}}]"


def _wait4_args(view: _CallView) -> list[str]:
    pid, status, options, rusage = (a & U64 for a in view.args[:4])
    got = view.struct(status, "<i") if view.ok and view.result else None
    return [str(_int32(pid)), _wait_status(got[0]) if got else format_address(status) if status else "NULL",
            "|".join(_flag_names(options & 0xFFFFFFFF, _WAIT_OPTIONS)) or "0",
            format_address(rusage) if rusage else "NULL"]


def _remaining(view: _CallView, addr: int) -> str:
    """A sleep's remaining time: written only when a signal interrupted it."""
    if not addr:
        return "NULL"
    interrupted = view.result is not None and view.result < 0
    return _timespec_text(view, addr, read=True) if interrupted else format_address(addr)


def _nanosleep_args(view: _CallView) -> list[str]:
    req, rem = (a & U64 for a in view.args[:2])
    return [_timespec_text(view, req, read=True) if req else "NULL", _remaining(view, rem)]


def _clock_nanosleep_args(view: _CallView) -> list[str]:
    clock, flags, req, rem = (a & U64 for a in view.args[:4])
    return [format_value("clockid", clock), "TIMER_ABSTIME" if flags == _TIMER_ABSTIME else str(flags),
            _timespec_text(view, req, read=True) if req else "NULL", _remaining(view, rem)]


def _getrusage_args(view: _CallView) -> list[str]:
    who, ru = _int32(view.args[0]), view.args[1] & U64
    times = view.struct(ru, "<qqqq") if view.ok else None
    return [_RUSAGE_WHO.get(who, str(who)),
            f"{{ru_utime={{tv_sec={times[0]}, tv_usec={times[1]}}}, "
            f"ru_stime={{tv_sec={times[2]}, tv_usec={times[3]}}}, ...}}" if times else format_address(ru)]


# sockets (vmsim.fs.socket): `socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, [4, 5])`,
# `getsockname(4, {sa_family=AF_UNIX}, [128 => 2])`, `sendto(5, "\\0", 1, 0, NULL, 0)`

_AF_NAMES = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}
_SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
               6: "SOCK_DCCP", 10: "SOCK_PACKET"}
_SOCK_FLAGS = [(0o2000000, "SOCK_CLOEXEC"), (0o4000, "SOCK_NONBLOCK")]
_MSG_FLAGS = [(1 << n, name) for n, name in enumerate(
    ("MSG_OOB", "MSG_PEEK", "MSG_DONTROUTE", "MSG_CTRUNC", "MSG_PROBE", "MSG_TRUNC", "MSG_DONTWAIT",
     "MSG_EOR", "MSG_WAITALL", "MSG_FIN", "MSG_SYN", "MSG_CONFIRM", "MSG_RST", "MSG_ERRQUEUE",
     "MSG_NOSIGNAL", "MSG_MORE", "MSG_WAITFORONE", "", "MSG_BATCH"))
    if name] + [(1 << 26, "MSG_ZEROCOPY"), (1 << 29, "MSG_FASTOPEN"), (1 << 30, "MSG_CMSG_CLOEXEC")]
_SHUT_HOW = ("SHUT_RD", "SHUT_WR", "SHUT_RDWR")
_SOL_SOCKET = 1
_SO_NAMES = {1: "SO_DEBUG", 2: "SO_REUSEADDR", 3: "SO_TYPE", 4: "SO_ERROR", 7: "SO_SNDBUF", 8: "SO_RCVBUF",
             38: "SO_PROTOCOL", 39: "SO_DOMAIN"}


def _family(v: int) -> str:
    return _AF_NAMES.get(v, f"{v:#x} /* AF_??? */")


def _sock_type(v: int) -> str:
    """socketpair's type: the SOCK_* type and its flags (printsock_type())."""
    known = 0o2000000 | 0o4000
    unknown = v & ~0xF & ~known
    names = [_SOCK_TYPES.get(v & 0xF, f"{v & 0xF:#x} /* SOCK_??? */"), *_flag_names(v & known, _SOCK_FLAGS)]
    return "|".join(names + ([f"{unknown:#x} /* SOCK_??? */"] if unknown else []))


def _msg_flags(v: int) -> str:
    return "|".join(_flag_names(v, _MSG_FLAGS)) or "0"


def _sockaddr(view: _CallView, addr: int, length: int) -> str:
    """print_sockaddr() of the `length` bytes at addr: the family alone for an unnamed
    AF_UNIX address, else the address."""
    family = view.struct(addr, "<H") if length >= 2 else None
    if family is None or length != 2:
        return _pointer(addr)
    return f"{{sa_family={_family(family[0])}}}"


def _socklen(view: _CallView, addr: int) -> tuple[int, int] | None:
    """The socklen_t at addr as the call entered and as it left, None if unreadable."""
    given, now = view.inputs.struct(addr, "<i"), view.struct(addr, "<i")
    if given is None or now is None:
        return None
    return given[0], now[0]


def _socklen_text(view: _CallView, addr: int) -> str:
    lengths = _socklen(view, addr) if addr else None
    if lengths is None:
        return _pointer(addr)
    given, now = lengths
    return f"[{given} => {now}]" if view.ok and given != now else f"[{given}]"


def _getname_args(view: _CallView) -> list[str]:
    """getsockname/getpeername(fd, addr, addrlen): the address as long as both lengths
    allow, the length given and the one returned."""
    fd, addr, addrlen = _int32(view.args[0]), view.args[1] & U64, view.args[2] & U64
    lengths = _socklen(view, addrlen) if addrlen else None
    shown = _sockaddr(view, addr, min(lengths)) if view.ok and lengths else _pointer(addr)
    return [str(fd), shown, _socklen_text(view, addrlen)]


def _socketpair_args(view: _CallView) -> list[str]:
    args = view.args
    sv = view.struct(args[3] & U64, "<ii") if view.ok else None
    return [_family(args[0] & 0xFFFFFFFF), _sock_type(args[1] & 0xFFFFFFFF), str(_int32(args[2])),
            f"[{sv[0]}, {sv[1]}]" if sv else _pointer(args[3])]


def _sendto_args(view: _CallView) -> list[str]:
    fd, buf, size, flags, addr, addrlen = view.args[:6]
    return [str(_int32(fd)), view.buffer(buf & U64, size & U64), str(size & U64),
            _msg_flags(flags & 0xFFFFFFFF), _sockaddr(view, addr & U64, _int32(addrlen)) if addr else "NULL",
            str(_int32(addrlen))]


def _recvfrom_args(view: _CallView) -> list[str]:
    fd, buf, size, flags, addr, addrlen = view.args[:6]
    data = view.buffer(buf & U64, view.result) if view.ok and view.result is not None else _pointer(buf)
    lengths = _socklen(view, addrlen & U64) if addr and addrlen else None
    shown = _sockaddr(view, addr & U64, min(lengths)) if view.ok and lengths else _pointer(addr)
    return [str(_int32(fd)), data, str(size & U64), _msg_flags(flags & 0xFFFFFFFF), shown,
            _socklen_text(view, addrlen & U64) if addrlen else "NULL"]


def _shutdown_args(view: _CallView) -> list[str]:
    how = view.args[1] & 0xFFFFFFFF
    return [str(_int32(view.args[0])), _SHUT_HOW[how] if how < 3 else f"{how:#x} /* SHUT_??? */"]


def _getsockopt_args(view: _CallView) -> list[str]:
    fd, level, name, optval, optlen = _int32(view.args[0]), _int32(view.args[1]), _int32(view.args[2]), \
        view.args[3] & U64, view.args[4] & U64
    value = view.struct(optval, "<i") if view.ok else None
    return [str(fd), "SOL_SOCKET" if level == _SOL_SOCKET else str(level),
            _SO_NAMES.get(name, str(name)) if level == _SOL_SOCKET else str(name),
            f"[{value[0]}]" if value else _pointer(optval), _socklen_text(view, optlen)]


# epoll(7) and eventfd(2): `epoll_ctl(5, EPOLL_CTL_ADD, 3, {events=EPOLLIN, data={u32=7,
# u64=7}})`, the events an epoll_wait returned (`[]` for none, the address on error)

_EPOLL_EVENTS = [(1 << n, name) for n, name in enumerate(
    ("EPOLLIN", "EPOLLPRI", "EPOLLOUT", "EPOLLERR", "EPOLLHUP", "EPOLLNVAL", "EPOLLRDNORM",
     "EPOLLRDBAND", "EPOLLWRNORM", "EPOLLWRBAND", "EPOLLMSG", "", "", "EPOLLRDHUP")) if name] + [
    (1 << 28, "EPOLLEXCLUSIVE"), (1 << 29, "EPOLLWAKEUP"), (1 << 30, "EPOLLONESHOT"), (1 << 31, "EPOLLET")]
_EPOLL_CTL_OPS = {1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"}
_EPOLL_CREATE_FLAGS = [(0o2000000, "EPOLL_CLOEXEC")]
_EFD_FLAGS = [(1, "EFD_SEMAPHORE"), (0o2000000, "EFD_CLOEXEC"), (0o4000, "EFD_NONBLOCK")]
#: struct epoll_event: packed on x86-64
_EPOLL_EVENT = "<IQ"


def _printflags(v: int, bits: Sequence[tuple[int, str]], prefix: str) -> str:
    """strace's printflags(): the names joined, the bits left in hex; none known, the
    number and `/* PREFIX??? */`."""
    names = _flag_names(v, bits)
    if names and not any(v & bit for bit, _ in bits):
        return f"{v:#x} /* {prefix}??? */"
    return "|".join(names) or "0"


def _pointer(v: int) -> str:
    """A pointer strace could not or would not read: hex (a kernel one too), NULL."""
    return f"{v & U64:#x}" if v else "NULL"


def _epoll_event_text(events: int, data: int) -> str:
    return (f"{{events={_printflags(events, _EPOLL_EVENTS, 'EPOLL')}, "
            f"data={{u32={data & 0xFFFFFFFF}, u64={data}}}}}")


def _epoll_create1_args(view: _CallView) -> list[str]:
    return [_printflags(view.args[0] & 0xFFFFFFFF, _EPOLL_CREATE_FLAGS, "EPOLL_")]


def _eventfd2_args(view: _CallView) -> list[str]:
    return [str(view.args[0] & 0xFFFFFFFF), _printflags(view.args[1] & 0xFFFFFFFF, _EFD_FLAGS, "EFD_")]


def _epoll_ctl_args(view: _CallView) -> list[str]:
    epfd, op, fd, event = _int32(view.args[0]), view.args[1] & 0xFFFFFFFF, _int32(view.args[2]), \
        view.args[3] & U64
    fields = view.struct(event, _EPOLL_EVENT) if event else None
    shown = _epoll_event_text(*fields) if fields else _pointer(event)
    return [str(epfd), _EPOLL_CTL_OPS.get(op, f"{op:#x} /* EPOLL_CTL_??? */"), str(fd), shown]


def _epoll_wait_args(view: _CallView) -> list[str]:
    """epoll_wait, epoll_pwait, epoll_pwait2: the events returned; the timeout (ms, or a
    timespec); the signal mask and its size."""
    args = view.args
    events = args[1] & U64
    found = view.struct(events, "<" + _EPOLL_EVENT[1:] * view.result) if view.ok and view.result else None
    if view.ok and not view.result:
        shown = "[]"
    elif found:
        pairs = zip(found[::2], found[1::2], strict=True)
        shown = "[" + ", ".join(_epoll_event_text(e, d) for e, d in pairs) + "]"
    else:
        shown = _pointer(events)
    out = [str(_int32(args[0])), shown, str(_int32(args[2]))]
    if view.call.name == "epoll_pwait2":
        out.append(_wait_arg_text(view, 3, "timeout") if args[3] else "NULL")
    else:
        out.append(str(_int32(args[3])))
    if view.call.name != "epoll_wait":
        out += [_wait_arg_text(view, 4, "sigsetp") if args[4] else "NULL", str(args[5] & U64)]
    return out


_RUSAGE_WHO = {0: "RUSAGE_SELF", -1: "RUSAGE_CHILDREN", 1: "RUSAGE_THREAD"}
_DECODERS: dict[str, Callable[[_CallView], list[str]]] = {
    "epoll_create1": _epoll_create1_args, "eventfd2": _eventfd2_args, "epoll_ctl": _epoll_ctl_args,
    "epoll_wait": _epoll_wait_args, "epoll_pwait": _epoll_wait_args, "epoll_pwait2": _epoll_wait_args,
    "getrusage": _getrusage_args, "getpeername": _getname_args, "getsockname": _getname_args,
    "socketpair": _socketpair_args, "sendto": _sendto_args, "recvfrom": _recvfrom_args,
    "shutdown": _shutdown_args, "getsockopt": _getsockopt_args,
    "rt_sigaction": _rt_sigaction_args, "rt_sigprocmask": _rt_sigprocmask_args,
    "kill": _kill_args, "tkill": _kill_args, "tgkill": _kill_args,
    "clone": _clone_args, "clone3": _clone3_args, "futex": _futex_args, "statx": _statx_args,
    "wait4": _wait4_args, "nanosleep": _nanosleep_args, "clock_nanosleep": _clock_nanosleep_args,
}


#: MREMAP_MAYMOVE|MREMAP_FIXED: the flags under which mremap takes a new address
_MREMAP_MOVE_FIXED = 3
#: the most environment strings an execve line counts
MAX_ENV_SHOWN = 1 << 20


def format_syscall(call: Syscall, args: Sequence[int], result: int | None, peek: Peek,
                   entry: Peek | None = None) -> str:
    """The line strace prints for `call` made with the six argument registers `args`
    and returning `result` (the signed rax; None: the call did not return, as
    exit_group), reading the process's memory with `peek` after the call (a read's
    buffer then holds what it read; execve's strings must be read before it, by a peek
    that remembers them), and the arguments of the calls that overwrite their inputs
    (select's fd sets, ppoll's timeout: WAIT_KINDS) with `entry`, a peek that holds
    them as the call entered (default: `peek`)."""
    view = _CallView(call, args, result, peek)
    decoder = _DECODERS.get(call.name)
    inputs = _CallView(call, args, result, entry) if entry is not None else view
    view.inputs = inputs
    shown = decoder(view) if decoder is not None else \
        [_arg_text(inputs if kind in WAIT_KINDS else view, i, kind) for i, kind in _shown_kinds(call, args)]
    if call.name == "execve":
        shown += [_argv_text(view, args[1] & U64), _envp_text(view, args[2] & U64)]
    text = f"{call.name}({', '.join(shown)})"
    pad = " " * (RESULT_COLUMN - len(text)) if len(text) < RESULT_COLUMN else " "
    return f"{text}{pad}= {_result_text(call, args, result)}{_wait_result_text(view)}"


def format_siginfo(signal: str, code: str, addr: int | None, pkey: int | None = None) -> str:
    """The line strace prints when a signal of a fault is delivered:
    `--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---` (si_addr for
    the codes that carry one, si_pkey for SEGV_PKUERR)."""
    fields = [f"si_signo={signal}", f"si_code={code}"]
    if addr is not None:
        fields.append(f"si_addr={format_address(addr)}")
    if pkey is not None:
        fields.append(f"si_pkey={pkey}")
    return f"--- {signal} {{{', '.join(fields)}}} ---"
