"""The shrinker: a diverging scenario reduced to the fewest, simplest calls that still
diverge the same way.

`shrink_divergence` cuts the scenario after the divergent call, then `shrink`
delta-debugs the lines (chunks, then single lines) and `shrink_args` simplifies
arguments one at a time (fewer flag bits, page-sized lengths, lower window
addresses, zero offsets); a candidate is kept only if it still diverges with the
same signature (`Divergence.signature`), at its last call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from ..oracle import Oracle
from ..syscalls.table import TABLE
from ..uapi import PAGE_SIZE, U64
from .compare import Divergence, first_divergence
from .model import run_model
from .scenario import WINDOW_SIZE, Call, Scenario


def _simplifications(call: Call, env: Mapping[str, int]) -> Iterator[Call]:
    """Simpler variants of one call (one argument changed each)."""
    kinds = TABLE[call.name].kinds
    W = env["W"]
    for i, (kind, v) in enumerate(zip(kinds, call.args, strict=False)):
        kind = kind.rstrip("?")
        if not isinstance(v, int):
            continue
        cands = []
        if kind == "len":
            cands = [PAGE_SIZE, 2 * PAGE_SIZE] if v not in (PAGE_SIZE, 2 * PAGE_SIZE) else []
        elif kind in ("prot", "mapflags", "mremapflags", "oflags", "msflags", "mlockflags",
                      "pkeyrights", "persona"):
            bit = 1
            vv = v & U64
            while bit <= vv:
                if vv & bit:
                    cands.append(v & ~bit)
                bit <<= 1
        elif kind == "addr" and W <= v < W + WINDOW_SIZE:
            page = (v - W) // PAGE_SIZE
            if v % PAGE_SIZE:
                cands.append(v - v % PAGE_SIZE)
            if page > 0:
                cands += [W + p * PAGE_SIZE for p in sorted({0, 1, page // 2, page - 1}) if p < page]
        elif kind in ("off", "int") and v not in (0,) and call.name != "pwrite64":
            cands = [0]
        for c in cands:
            args = list(call.args)
            args[i] = c
            yield Call(name=call.name, args=args, comment=call.comment)


#: a shrinking candidate's test: does this list of calls still diverge the same way?
StillDiverges = Callable[[list[Call]], bool]


def shrink(calls: list[Call], still_diverges: StillDiverges, max_tries: int = 2000) -> list[Call]:
    """Delta-debug `calls` (a list of Calls ending at the divergent call) to a
    smaller list for which still_diverges(list) is true."""
    tries = 0

    def test(cand: list[Call]) -> bool:
        nonlocal tries
        tries += 1
        return still_diverges(cand)

    calls = list(calls)
    n = 2
    while len(calls) >= 2 and tries < max_tries:
        chunk = -(-len(calls) // n)
        reduced = False
        for i in range(0, len(calls), chunk):
            cand = calls[:i] + calls[i + chunk:]
            if cand and test(cand):
                calls = cand
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(calls), n * 2)
    # single lines, last to first
    i = len(calls) - 1
    while i >= 0 and tries < max_tries and len(calls) > 1:
        cand = calls[:i] + calls[i + 1:]
        if test(cand):
            calls = cand
        i -= 1
    return calls


def shrink_args(calls: list[Call], still_diverges: StillDiverges, env: Mapping[str, int],
                max_tries: int = 500) -> list[Call]:
    """Simplify arguments one at a time, keeping changes that still diverge."""
    calls = list(calls)
    tries = 0
    changed = True
    while changed and tries < max_tries:
        changed = False
        for i in range(len(calls)):
            for cand_call in _simplifications(calls[i], env):
                if tries >= max_tries:
                    break
                cand = calls[:i] + [cand_call] + calls[i + 1:]
                tries += 1
                if still_diverges(cand):
                    calls = cand
                    changed = True
                    break
    return calls


def make_checker(oracle: Oracle, kernel_kwargs: dict, signature: tuple) -> StillDiverges:
    """still_diverges(calls) for the shrinker: the same divergence signature, at the
    last call."""

    def still(calls: list[Call]) -> bool:
        sc = Scenario(list(calls))
        ks = oracle.run(sc)
        ms = run_model(sc, kernel_kwargs, oracle.env)
        d = first_divergence(sc, ks, ms, oracle.env, check_expected=False)
        return d is not None and d.signature() == signature and d.index == len(calls) - 1
    return still


def shrink_divergence(oracle: Oracle, kernel_kwargs: dict, scenario: Scenario, div: Divergence,
                      max_tries: int = 2000) -> list[Call]:
    """The minimal list of calls reproducing `div` (same signature)."""
    still = make_checker(oracle, kernel_kwargs, div.signature())
    calls = scenario.calls[:div.index + 1]
    if not still(calls):            # flaky or state-dependent beyond the prefix
        return calls
    calls = shrink(calls, still, max_tries)
    calls = shrink_args(calls, still, oracle.env, max_tries // 4)
    return calls
