"""Normalised outcomes: what the model and the host kernel report for a scenario
call, in a form the two can be compared in (docs/scenario-format.md, "Comparison and
normalisation").

Addresses become W/B-relative tokens (`W+0x1000`) or `outside`; device and inode
numbers become tokens by order of first appearance (`dev1`, `ino1`); the window
state is one tuple per VMA intersecting a window (range, perms, offset, device,
inode, name, VmFlags, ProtectionKey), read from the model's views or from
/proc/PID/smaps text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..syscalls.strace import Expr, Result, parse_expr
from ..syscalls.table import TABLE
from ..uapi import U64
from .scenario import HEAP_WINDOW_SIZE, WINDOW_SIZE, Call


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

    def __init__(self, env: Mapping[str, int]):
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


def windows(env: Mapping[str, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """[W, W + WINDOW_SIZE) and [B, B + HEAP_WINDOW_SIZE)."""
    w, b = env["W"], env["B"]
    return (w, w + WINDOW_SIZE), (b, b + HEAP_WINDOW_SIZE)


def result_token(name: str, v: int, norm: Normaliser) -> str | int:
    """A call's return value normalised: an address as its token, else a signed long."""
    if TABLE[name].addr_result:
        return norm.addr(v)
    v &= U64
    return v - (1 << 64) if v >= 1 << 63 else v


def normalise_expect(call: Call, env: Mapping[str, int], norm: Normaliser) -> tuple | None:
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
    assert v is not None
    return ("ok", result_token(call.name, v, norm))


def token_to_result(name: str, tok: tuple, env: Mapping[str, int]) -> Result:
    """A normalised result back as a Result, for writing scenario files."""
    kind = tok[0]
    if kind == "err":
        return Result("err", errname=tok[1])
    if kind == "sig":
        return Result("sig", signal=tok[1], code=tok[2],
                      addr=parse_expr(tok[3], env.keys())
                      if tok[3] not in (None, "outside") else None)
    if kind == "ok":
        v = tok[1]
        if isinstance(v, str):
            return Result("ok", value=parse_expr(v, env.keys()) if v != "outside" else v)
        return Result("ok", value=v)
    return Result("unknown")


def _is_header(line: str) -> bool:
    return bool(line) and line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]


def state_from_smaps(text: str | Iterable[str], norm: Normaliser,
                     rename: Callable[[str], str] | None = None,
                     prefiltered: bool = False) -> tuple:
    """The window state from /proc/PID/smaps text (or from the oracle's filtered
    "V"/"F"/"K" lines with their prefixes removed): one normalised VMA tuple per VMA
    intersecting a window.  `rename` maps a host path back to the scenario's."""
    wins = windows(norm.env)
    out = []
    cur: list | None = None
    lines = text.splitlines() if isinstance(text, str) else text
    for line in lines:
        if _is_header(line):
            if cur is not None:
                out.append(norm.vma(*cur))
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
    if cur is not None:
        out.append(norm.vma(*cur))
    return tuple(out)
