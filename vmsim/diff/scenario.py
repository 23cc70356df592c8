"""Scenarios: sequences of calls in strace syntax, shared by the model and the
host-kernel oracle (docs/scenario-format.md).

    mmap(W, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = W
    mprotect(W, 4096, PROT_READ) = 0
    touch(W, "w") = SIGSEGV {si_code=SEGV_ACCERR, si_addr=W}

The syntax is vmsim.syscalls.strace's, the calls and their argument kinds the
syscall table's (`CALLS`: those the oracle's executor runs); a scenario adds the
variables W and B (the windows below) to integer expressions.

* `parse` / `load` build a `Scenario`; malformed input raises `ScenarioError`
  carrying file, line and reason.
* `format_call` / `dump` write calls back, with symbolic flags and W/B-relative
  addresses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..syscalls import strace
from ..syscalls.inputs import InputError, read_text
from ..syscalls.strace import Expr, Result
from ..syscalls.table import TABLE, fold
from ..uapi import U64

#: The scenario window: every compared VMA lies in [W, W + WINDOW_SIZE) or in the
#: heap window [B, B + HEAP_WINDOW_SIZE), B being the initial program break.
WINDOW_BASE = 0x7E0000000000
WINDOW_SIZE = 1 << 40
HEAP_WINDOW_SIZE = 1 << 40
#: The initial break of the oracle's executor (setarch -R, small PIE); the model uses
#: the oracle's actual value when one runs, this one otherwise.
DEFAULT_BRK = 0x55555555A000
#: the variables of a scenario's expressions, at their default values
DEFAULT_ENV = {"W": WINDOW_BASE, "B": DEFAULT_BRK}

#: the calls a scenario may make: the syscalls the oracle's executor runs and the
#: memory accesses of the scenario language
CALLS = frozenset({
    "mmap", "munmap", "mprotect", "pkey_mprotect", "pkey_alloc", "pkey_free", "mremap",
    "mseal", "madvise", "mlock", "mlock2", "munlock", "brk", "personality", "prctl",
    "open", "close", "dup", "ftruncate", "pwrite64", "unlink", "mkdir", "mount", "fork",
    "msync", "mlockall", "munlockall",
    "touch", "peek", "poke", "set_pkru",
})


class ScenarioError(Exception):
    """Malformed scenario input: `file:line: reason`."""

    def __init__(self, reason: str, file: str | None = None, line: int | None = None):
        self.reason, self.file, self.line = reason, file, line
        where = f"{file or '<scenario>'}:{line}: " if line is not None else (
            f"{file}: " if file else "")
        super().__init__(where + reason)


@dataclass
class Call:
    """One call: its name, argument values (int or Expr, str paths, bytes) and the
    optional expected result; `line`/`text`/`comment` where it came from."""
    name: str
    args: list
    expect: Result | None = None
    line: int | None = None
    text: str | None = None
    comment: str | None = None

    def values(self, env: Mapping[str, int]) -> list:
        return [a.eval(env) if isinstance(a, Expr) else a for a in self.args]


@dataclass
class Scenario:
    calls: list[Call]
    path: str | None = None
    header: list[str] = field(default_factory=list)     # leading comment lines

    def __len__(self) -> int:
        return len(self.calls)


# --------------------------------------------------------------------------- reading

def parse_call(line: strace.Line) -> Call:
    """A parsed line as a scenario Call: the name checked against CALLS (aliases
    folded: openat, pwrite, vfork, mmap2), the arguments bound by kind, the expected
    result's expressions evaluated (with the default W and B). ValueError."""
    raw = line.raw_args
    if line.name == "openat" and (not raw or raw[0].strip() not in ("AT_FDCWD", "-100")):
        raise ValueError("openat is supported only with AT_FDCWD")
    name = fold(line.name, CALLS)
    if name is None:
        raise ValueError(f"unsupported call {line.name!r}")
    if line.name == "openat":
        raw = raw[1:]
    args = strace.bind_args(TABLE[name], raw, DEFAULT_ENV)
    expect = line.result
    if expect is not None:              # evaluated now: a bad value is a parse error
        for value in (expect.value, expect.addr):
            if isinstance(value, Expr):
                value.eval(DEFAULT_ENV)
    return Call(name, args, expect, text=line.text, comment=line.comment)


def parse(text: str, path: str | None = None) -> Scenario:
    """Parse a whole scenario; raises ScenarioError(file, line, reason)."""
    calls: list[Call] = []
    header: list[str] = []
    for no, text_line in enumerate(text.splitlines(), 1):
        if not calls and text_line.strip().startswith("#"):
            header.append(text_line.strip()[1:].strip())
        try:
            line = strace.parse_line(text_line, DEFAULT_ENV.keys())
            if line is None:
                continue
            call = parse_call(line)
        except ValueError as exc:
            raise ScenarioError(str(exc), path, no) from None
        call.line = no
        calls.append(call)
    return Scenario(calls, path, header)


def load(path: str) -> Scenario:
    """The scenario in file `path` (vmsim.syscalls.inputs: at most MAX_INPUT_SIZE
    bytes); ScenarioError naming the file (and line)."""
    try:
        text = read_text(path)
    except OSError as exc:
        raise ScenarioError(f"cannot read: {exc.strerror}", path) from None
    except InputError as exc:
        raise ScenarioError(exc.reason, path, exc.line) from None
    return parse(text, path)


# --------------------------------------------------------------------------- writing

def format_addr(v: int, env: Mapping[str, int]) -> str:
    """An address relative to the window it lies in (`W+0x1000`, `B`), else as strace
    prints it."""
    v &= U64
    w, b = env.get("W", WINDOW_BASE), env.get("B", DEFAULT_BRK)
    if w <= v < w + WINDOW_SIZE:
        return "W" if v == w else f"W+{v - w:#x}"
    if b <= v < b + HEAP_WINDOW_SIZE:
        return "B" if v == b else f"B+{v - b:#x}"
    return strace.format_address(v)


def format_value(kind: str, v: object, env: Mapping[str, int]) -> str:
    if isinstance(v, Expr):
        v = v.eval(env)
    assert v is None or isinstance(v, (int, str, bytes))
    return strace.format_value(kind, v, lambda a: format_addr(a, env))


def format_result(name: str, r: Result, env: Mapping[str, int]) -> str:
    if r.kind == "unknown":
        return "?"
    if r.kind == "err":
        assert r.errname is not None
        return strace.format_error(r.errname)
    if r.kind == "sig":
        addr = r.addr.eval(env) if isinstance(r.addr, Expr) else r.addr
        detail = [f"si_code={r.code}"] if r.code else []
        if addr is not None:
            detail.append(f"si_addr={format_addr(addr, env)}")
        return f"{r.signal} {{{', '.join(detail)}}}"
    v = r.value.eval(env) if isinstance(r.value, Expr) else r.value
    if isinstance(v, str):             # a token such as "outside"
        return v
    assert v is not None
    if TABLE[name].addr_result:
        return format_addr(v, env)
    if name == "peek":
        return f"{v:#x}"
    return str(v)


def format_call(call: Call, env: Mapping[str, int], result: Result | None = None) -> str:
    entry = TABLE[call.name]
    kinds, vals = entry.kinds, call.args
    parts = [format_value(k, v, env) for k, v in zip(kinds, vals, strict=False)]
    # drop trailing optional arguments left at their default
    while len(parts) > entry.required and vals[len(parts) - 1] in (0, None):
        parts.pop()
    text = f"{call.name}({', '.join(parts)})"
    r = result if result is not None else call.expect
    if r is not None:
        text += " = " + format_result(call.name, r, env)
    return text


def dump(scenario: Scenario, env: Mapping[str, int],
         results: list[Result | None] | None = None) -> str:
    """Scenario text; `results` (Result per call) replace the expected values."""
    out = [f"# {h}" if h else "#" for h in scenario.header]
    for i, call in enumerate(scenario.calls):
        r = results[i] if results is not None and i < len(results) else None
        line = format_call(call, env, r)
        if call.comment:
            line += "  # " + call.comment
        out.append(line)
    return "\n".join(out) + "\n"
