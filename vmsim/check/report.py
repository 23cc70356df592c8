"""Counterexamples written out: a JSONL trace `vmsim replay` takes (the start state's
calls — the enclave load — then the counterexample's; its header names the design, so
`vmsim replay` builds that design's kernel), and, for a configuration without SGX, a
scenario file `vmsim diff` takes.

A memory access, in enclave mode too, is an `access` record (replayed, its fault
compared); a fork and the child's exit are written as comments on the next call, or
the last (the trace format has no record for them).
"""

from __future__ import annotations

import os

from ..diff.scenario import DEFAULT_ENV, Call, Scenario, dump
from ..trace.demo import Recorder
from ..trace.format import Record, parse_jsonl, write_trace
from ..trace.replay import Replayer
from . import designs
from .expand import Job
from .explore import Counterexample
from .world import Op, World, apply, ops, start

PID = 1


def recorded_run(job: Job, path: tuple[int, ...]) -> tuple[World, list[Record]]:
    """Run the start and path again through a trace recorder."""
    recorder: list[Recorder] = []

    def wrap(p):
        recorder.append(Recorder(p, PID))
        return recorder[0]
    w = start(job.config, designs.new_kernel(job.design), wrap)
    records = recorder[0].records
    alphabet = ops(job.config)
    pending: list[str] = []
    for i in path:
        op = alphabet[i]
        before = len(records)
        result = apply(w, op)
        if op.group in ("access", "eaccess"):
            records.append(_access_record(w, op, result))
        if len(records) == before:
            pending.append(f"{op.label()} -> {_result_text(result)}")
        elif pending:
            records[before].comment = "before this call: " + "; ".join(pending)
            pending = []
    if pending and records:
        last = records[-1]
        last.comment = "; ".join(filter(None, [last.comment,
                                               "after this call: " + "; ".join(pending)]))
    return w, records


def _access_record(w: World, op: Op, result: tuple) -> Record:
    """The trace record of an access op (touch, or eaccess: in enclave mode) and its
    result."""
    *tcs, addr, mode = (w.addr(a) for a in op.args)
    assert isinstance(addr, int) and isinstance(mode, str)
    rec = Record(None, pid=PID, event="access", addr=addr, mode=mode,
                 text=f"{op.label()} -> {_result_text(result)}")
    if tcs:
        assert isinstance(tcs[0], int)
        rec.tcs = tcs[0]
        rec.exception = result if result[0] != "ok" else None
    elif result[0] == "sig":
        rec.signal, rec.code = result[1], result[2]
    return rec


def _result_text(result: tuple) -> str:
    if result[0] == "sig":
        return f"{result[1]} {result[2]} at {result[3]:#x}"
    if result[0] in ("aex", "eenter"):
        return f"{result[0].upper()} vector {result[1]} error code {result[2]:#x} at {result[3]:#x}"
    return str(result[1])


def write(job: Job, cex: Counterexample, out_dir: str, n: int) -> None:
    """Write cex's trace (and scenario) into out_dir; set cex.trace/cex.scenario."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{_safe(job.design)}-{_safe(cex.property)}-{n}")
    _w, records = recorded_run(job, cex.path)
    comment = (f"vmsim check --design {job.design}: {cex.property} violated after "
               f"{cex.length} call(s): {cex.message}; calls: {', '.join(cex.labels)}")
    cex.trace = stem + ".jsonl"
    with open(cex.trace, "w", encoding="utf-8") as f:
        write_trace(records, f, comment=comment, header={"design": job.design})
    if job.config.pages == 0 and all(ops(job.config)[i].call != "exit_child"
                                     for i in cex.path):
        cex.scenario = stem + ".scn"
        with open(cex.scenario, "w", encoding="utf-8") as f:
            f.write(dump(scenario(job, cex), DEFAULT_ENV))


def scenario(job: Job, cex: Counterexample) -> Scenario:
    """cex as a scenario (a configuration without SGX: addresses in the window W)."""
    alphabet = ops(job.config)
    w = start(job.config, designs.new_kernel(job.design))
    calls = [Call(alphabet[i].call, [w.addr(a) for a in alphabet[i].args]) for i in cex.path]
    return Scenario(calls, header=[f"vmsim check --design {job.design}: {cex.property}: "
                                   f"{cex.message}"])


def replay(path: str, design: str | None = None) -> Replayer:
    """Replay a counterexample trace on a kernel of design (default: the one its
    header names; all outcomes run), as `vmsim replay` does."""
    with open(path, encoding="utf-8") as f:
        trace = parse_jsonl(f.read(), path)
    r = designs.replayer(trace, design or trace.design or "merged")
    r.run_all()
    return r


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
