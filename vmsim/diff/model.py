"""The model side of a scenario: its calls run on a fresh vmsim process laid out like
the oracle's executor child, through the one dispatcher (vmsim.syscalls.dispatch),
each giving one normalised `Step` -- the shape `vmsim.oracle` returns for the host
kernel.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any

from ..kernel import Kernel
from ..syscalls.dispatch import outcome
from ..uapi import ADDR_NO_RANDOMIZE, MAP_FIXED, MAP_PRIVATE, O_RDWR, PAGE_SIZE, PROT_READ, PROT_WRITE
from .normalise import Normaliser, Step, result_token, windows
from .scenario import DEFAULT_ENV, Call, Scenario

#: a model call running longer than this (seconds) is reported as a crash (a hang
#: in the model is a finding, not a reason to stop a fuzz run); 0 disables
MODEL_CALL_TIMEOUT = float(os.environ.get("VMSIM_MODEL_TIMEOUT", "10"))


class ModelTimeout(BaseException):
    """Raised inside a model call that exceeded MODEL_CALL_TIMEOUT."""


class _time_limit:
    """SIGALRM-based limit, active only in the main thread of the main interpreter."""

    def __init__(self, seconds: float):
        self.on = bool(seconds) and hasattr(signal, "setitimer") and \
            threading.current_thread() is threading.main_thread()
        self.seconds = seconds
        self.old: Any = None

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        raise ModelTimeout()

    def __enter__(self) -> _time_limit:
        if self.on:
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.on:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)


class ModelRunner:
    """Runs scenario calls on a fresh model process laid out like the oracle's
    child: personality ADDR_NO_RANDOMIZE, start_brk = B, fds 0-2 open."""

    def __init__(self, kernel_kwargs: dict | None = None, env: Mapping[str, int] | None = None,
                 state: str = "each", validate: bool = True):
        self.env = dict(env or DEFAULT_ENV)
        self.k = Kernel(**(kernel_kwargs or {}))
        self.p = self.k.spawn(brk=self.env["B"], personality=ADDR_NO_RANDOMIZE)
        for _ in range(3):
            self.p.open("/dev/null", O_RDWR)
        # The executor's data segment ends at B (a private file mapping): mirror it,
        # so guard gaps and merges below the heap window see a neighbour there.
        self.k.fs.create("/.vmsim-executor", b"\0" * PAGE_SIZE)
        fd = self.p.open("/.vmsim-executor", O_RDWR)
        self.p.mmap(self.env["B"] - PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_FIXED, fd, 0)
        self.p.close(fd)
        self.norm = Normaliser(self.env)
        self.state_each = state == "each"
        self.validate = validate

    def state(self) -> tuple:
        """The window VMAs as the host side reports them: the maps line (p.maps())
        with the VmFlags and ProtectionKey smaps would print (p.vmas())."""
        wins = windows(self.env)
        views = self.p.vmas()
        lines = self.p.maps().splitlines()
        pkeys = self.k.pkeys
        out = []
        for v, line in zip(views, lines, strict=False):
            if not any(v.start < hi and v.end > lo for lo, hi in wins):
                continue
            fields = line.split(None, 5)
            name = fields[5].rstrip() if len(fields) > 5 else ""
            out.append(self.norm.vma(v.start, v.end, fields[1], fields[2], fields[3],
                                     fields[4], name, v.vmflags, v.pkey if pkeys else None))
        return tuple(out)

    def call(self, call: Call) -> Step:
        try:
            with _time_limit(MODEL_CALL_TIMEOUT):
                res = self._result(call)
        except ModelTimeout:
            res = ("crash", f"timeout: the model call did not return within "
                   f"{MODEL_CALL_TIMEOUT:g} s")
        except Exception as exc:  # a model bug: reported as a divergence, never a crash
            res = ("crash", f"{type(exc).__name__}: {exc}")
        if self.validate and res[0] != "crash":
            try:
                self.p.mm.validate()
            except Exception as exc:
                res = ("crash", f"validate(): {type(exc).__name__}: {exc}")
        st = self.state() if self.state_each else None
        return Step(res, st)

    def _result(self, call: Call) -> tuple:
        """The normalised result of one call; after fork() the scenario goes on in the
        child, where fork returned 0."""
        res = outcome(self.p, call.name, call.values(self.env))
        if res[0] == "sig":
            return res[:3] + (self.norm.addr(res[3]),)
        if res[0] == "err":
            return res
        if call.name == "fork":
            self.p = self.k.processes[res[1]]
            return ("ok", 0)
        return ("ok", result_token(call.name, res[1], self.norm))


def run_model(scenario: Scenario, kernel_kwargs: dict | None = None,
              env: Mapping[str, int] | None = None, state: str = "each",
              validate: bool = True) -> list[Step]:
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
