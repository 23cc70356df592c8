"""Comparing a scenario's run on the host kernel (the oracle) with its run on the
model: the first divergence, its signature (for shrinking) and its description."""

from __future__ import annotations

from dataclasses import dataclass

from .model import run_model
from .normalise import Normaliser, Step, normalise_expect
from .scenario import Call, format_call


@dataclass
class Divergence:
    """The first call where the two sides differ.

    kind: "result" (return value / errno / signal), "state" (VMAs in the windows),
    "crash" (the model raised an unexpected exception or broke an invariant, or the
    host child died), or "expected" (the kernel disagrees with the scenario's
    recorded expectation while agreeing with the model)."""
    index: int
    kind: str
    call: Call
    kernel: Step
    model: Step
    expected: tuple | None = None

    def signature(self) -> tuple:
        """What must stay the same while shrinking: the call, the kind of
        divergence and the shape of both results (addresses abstracted)."""
        def shape(r):
            if r is None:
                return None
            if r[0] == "ok":
                return ("ok", "addr" if isinstance(r[1], str) else r[1])
            if r[0] == "sig":
                return r[:3]
            if r[0] == "crash":
                return ("crash", r[1].split(":")[0])
            return r
        if self.kind == "state":
            return (self.call.name, "state")
        return (self.call.name, self.kind, shape(self.kernel.result), shape(self.model.result))

    def describe(self, env: dict) -> str:
        line = format_call(self.call, env)
        where = f"line {self.call.line}" if self.call.line else f"call {self.index + 1}"
        out = [f"first divergence at {where}: {line}",
               f"  kind:   {self.kind}",
               f"  kernel: {fmt_result(self.kernel.result)}",
               f"  model:  {fmt_result(self.model.result)}"]
        if self.expected is not None:
            out.append(f"  expected: {fmt_result(self.expected)}")
        if self.kind == "state" or self.kernel.state != self.model.state:
            out.append("  kernel state:")
            out += ["    " + fmt_vma(v) for v in (self.kernel.state or ())] or ["    (none)"]
            out.append("  model state:")
            out += ["    " + fmt_vma(v) for v in (self.model.state or ())] or ["    (none)"]
        elif self.kernel.state is not None:
            out.append("  state (both):")
            out += ["    " + fmt_vma(v) for v in self.kernel.state] or ["    (none)"]
        return "\n".join(out)

    def to_json(self, env: dict) -> dict:
        return {"index": self.index, "line": self.call.line, "kind": self.kind,
                "call": format_call(self.call, env),
                "kernel": {"result": fmt_result(self.kernel.result),
                           "state": [fmt_vma(v) for v in self.kernel.state or ()]},
                "model": {"result": fmt_result(self.model.result),
                          "state": [fmt_vma(v) for v in self.model.state or ()]},
                "expected": fmt_result(self.expected) if self.expected else None}


def fmt_result(r) -> str:
    if r is None:
        return "-"
    if r[0] == "ok":
        v = r[1]
        return "= " + (v if isinstance(v, str) else str(v))
    if r[0] == "err":
        return f"= -1 {r[1]}"
    if r[0] == "sig":
        return f"= {r[1]} {{si_code={r[2]}, si_addr={r[3]}}}"
    return f"{r[0]}: {r[1]}"


def fmt_vma(v) -> str:
    start, end, perms, off, dev, ino, name, flags, pkey = v
    s = f"{start}-{end} {perms} {off} {dev} {ino}"
    if name:
        s += " " + name
    s += f"  [{flags}]"
    if pkey is not None:
        s += f" pkey={pkey}"
    return s


def first_divergence(scenario, kernel_steps, model_steps, env, check_expected=True):
    """The first Divergence of two runs of `scenario`, or None."""
    norm = Normaliser(env)
    for i, call in enumerate(scenario.calls):
        k = kernel_steps[i] if i < len(kernel_steps) else Step(("crash", "missing"))
        m = model_steps[i] if i < len(model_steps) else Step(("crash", "missing"))
        if k.result[0] == "unsupported":
            return None                 # the host cannot run the rest: see skipped()
        if k.result[0] == "crash" or m.result[0] == "crash":
            if k.result != m.result:
                return Divergence(i, "crash", call, k, m)
        if k.result != m.result:
            return Divergence(i, "result", call, k, m)
        if k.state != m.state:
            return Divergence(i, "state", call, k, m)
        if check_expected and call.expect is not None:
            exp = normalise_expect(call, env, norm)
            if exp is not None and exp != k.result:
                return Divergence(i, "expected", call, k, m, exp)
    return None


def skipped(kernel_steps):
    """(index, reason) of the first call the host could not run here (e.g. a noexec
    mount without permission for a private mount namespace), or None.  Comparison
    stops there."""
    for i, k in enumerate(kernel_steps):
        if k.result[0] == "unsupported":
            return i, k.result[1]
    return None


def run_both(oracle, scenario, kernel_kwargs, state="each", validate=True):
    """Run on the host and on the model: (kernel_steps, model_steps)."""
    ks = oracle.run(scenario, state)
    ms = run_model(scenario, kernel_kwargs, oracle.env, state, validate)
    return ks, ms


def diff(oracle, scenario, kernel_kwargs, state="each", check_expected=True):
    """(Divergence or None, kernel_steps, model_steps)."""
    ks, ms = run_both(oracle, scenario, kernel_kwargs, state)
    return first_divergence(scenario, ks, ms, oracle.env, check_expected), ks, ms
