"""`vmsim diff`: run scenarios (docs/scenario-format.md) on the model and on the host
kernel and print the first divergence of each; or, with --fuzz, generate random
scenarios, compare them and shrink each divergence to a minimal scenario file.

Exit status: 0 every call agrees, 1 a divergence, 2 bad input or usage, 3 the oracle
cannot run on this host.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..diff import fuzz
from ..diff import scenario as S
from ..diff.compare import first_divergence, skipped
from ..diff.model import run_model
from ..oracle import Oracle, OracleUnavailable, kernel_kwargs


def add_parsers(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("diff", help="compare the model with the host kernel",
                       description="Run scenarios (docs/scenario-format.md) on the model "
                       "and on the host kernel and print the first divergence of each; "
                       "or, with --fuzz, generate random scenarios, compare them and "
                       "shrink each divergence to a minimal scenario file.")
    d.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario files")
    d.add_argument("--fuzz", type=int, metavar="N", help="generate N random scenarios")
    d.add_argument("--seed", type=int, default=0, help="fuzz seed (default 0)")
    d.add_argument("--out", default="vmsim-divergences", metavar="DIR",
                   help="where --fuzz writes shrunk divergences (default ./vmsim-divergences)")
    d.add_argument("--no-shrink", action="store_true", help="do not shrink divergences")
    d.add_argument("--state", choices=("each", "end"), default="each",
                   help="compare the window state after each call (default) or at the end")
    d.add_argument("--no-expect", action="store_true",
                   help="ignore the expected results written in scenario files")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    d.add_argument("--workers", type=int, default=1, metavar="N",
                   help="--fuzz: compare in N local processes, each with its own oracle")
    d.add_argument("--ray", metavar="ADDRESS", help="--fuzz: compare on a Ray cluster "
                   "('local' starts one; needs vmsim[cluster])")
    d.set_defaults(func=cmd_diff)


def cmd_diff(args: argparse.Namespace) -> int:
    if args.fuzz is None and not args.scenarios:
        print("vmsim diff: give SCENARIO files or --fuzz N", file=sys.stderr)
        return 2
    if args.fuzz is not None and args.fuzz < 0:
        print("vmsim diff: --fuzz N must be >= 0", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("vmsim diff: --workers N must be >= 1", file=sys.stderr)
        return 2
    scenarios = []
    for path in args.scenarios:              # parse everything first: exit 2 on bad input
        try:
            scenarios.append(S.load(path))
        except S.ScenarioError as exc:
            if args.json:
                print(json.dumps({"error": str(exc), "file": exc.file, "line": exc.line,
                                  "reason": exc.reason}))
            else:
                print(f"vmsim diff: {exc}", file=sys.stderr)
            return 2
    try:
        oracle, kw = Oracle(), kernel_kwargs()
    except (OracleUnavailable, OSError) as exc:     # OSError: the executor did not start
        msg = f"vmsim diff: the oracle cannot run here: {exc}"
        if args.json:
            print(json.dumps({"error": msg}))
        else:
            print(msg, file=sys.stderr)
        return 3
    try:
        status = 0
        out: dict[str, Any] = {"scenarios": [], "fuzz": None}
        if scenarios:
            status |= _diff_files(args, oracle, kw, scenarios, out)
        if args.fuzz is not None:
            status |= _fuzz(args, oracle, kw, out)
        if args.json:
            print(json.dumps(out, indent=1))
        return status
    finally:
        oracle.close()


def _indented(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _diff_files(args: argparse.Namespace, oracle: Oracle, kw: dict,
                scenarios: list[S.Scenario], out: dict[str, Any]) -> int:
    """Compare each scenario file; 1 if any diverges."""
    status = 0
    for sc in scenarios:
        ks = oracle.run(sc, args.state)
        ms = run_model(sc, kw, oracle.env, args.state)
        d = first_divergence(sc, ks, ms, oracle.env, check_expected=not args.no_expect)
        sk = skipped(ks)
        entry = {"file": sc.path, "calls": len(sc.calls), "divergence": None,
                 "skipped": None if sk is None else {"line": sc.calls[sk[0]].line,
                                                     "reason": sk[1]}}
        if d is not None:
            status = 1
            entry["divergence"] = d.to_json(oracle.env)
        out["scenarios"].append(entry)
        if not args.json:
            if d is None and sk is not None:
                print(f"{sc.path}: ok up to line {sc.calls[sk[0]].line}, skipped from there: "
                      f"{sk[1]}")
            elif d is None:
                print(f"{sc.path}: ok ({len(sc.calls)} calls agree)")
            else:
                print(f"{sc.path}: DIVERGES")
                print(_indented(d.describe(oracle.env)))
    return status


class _Progress:
    """A progress bar on a terminal: rich if installed, else a plain one."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled and sys.stderr.isatty()
        self.rich: Any = None
        self.t0 = time.perf_counter()
        if self.enabled:
            try:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                )
                self.rich = Progress(TextColumn("fuzz"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                     transient=True)
                self.rich.start()
                self.task = self.rich.add_task("fuzz", total=total, info="")
            except ImportError:
                self.rich = None

    def __call__(self, done: int, total: int, rep: fuzz.FuzzReport) -> None:
        if not self.enabled:
            return
        info = f"{rep.calls} calls, {len(rep.signatures)} divergent kinds"
        if self.rich is not None:
            self.rich.update(self.task, completed=done, info=info)
        elif done == total or done % 10 == 0:
            width = 30
            fill = width * done // max(total, 1)
            sys.stderr.write(f"\rfuzz [{'#' * fill}{'.' * (width - fill)}] {done}/{total} "
                             f"{info}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()
        elif self.enabled:
            sys.stderr.write("\r" + " " * 79 + "\r")


def _fuzz(args: argparse.Namespace, oracle: Oracle, kw: dict, out: dict[str, Any]) -> int:
    """Run the fuzz campaign and report it; 1 if any scenario diverged."""
    prog = _Progress(args.fuzz, not args.quiet and not args.json)
    try:
        rep = fuzz.campaign(oracle, args.fuzz, args.seed, kw, out_dir=args.out,
                            progress=prog, shrink_each=not args.no_shrink,
                            workers=args.workers, ray_address=args.ray)
    finally:
        prog.close()
    ndiv = sum(rep.signatures.values())
    summary = (f"fuzz: {rep.scenarios} scenarios, {rep.calls} calls compared, "
               f"{ndiv} divergent scenarios ({len(rep.signatures)} distinct), "
               f"{rep.seconds:.1f}s, {rep.rate:.0f} compared calls/s")
    out["fuzz"] = {"scenarios": rep.scenarios, "calls": rep.calls, "divergent": ndiv,
                   "distinct": len(rep.signatures), "seconds": round(rep.seconds, 3),
                   "calls_per_second": round(rep.rate, 1), "seed": args.seed,
                   "divergences": [{"scenario": i, "signature": repr(d.signature()),
                                    "count": rep.signatures[d.signature()],
                                    "shrunk_calls": len(sh), "file": p,
                                    "divergence": d.to_json(oracle.env)}
                                   for i, d, sh, p in rep.divergences]}
    out["fuzz"]["skipped"] = rep.skipped
    if not args.json:
        for reason, n in rep.skipped.items():
            print(f"note: {n} scenario(s) cut short: {reason}")
        for i, d, sh, p in rep.divergences:
            n = rep.signatures[d.signature()]
            how = "cut after the divergent call:" if args.no_shrink else "shrunk to"
            print(f"divergence in scenario {i} ({n} scenario(s) alike), {how} "
                  f"{len(sh)} call(s){': ' + p if p else ''}")
            print(_indented(d.describe(oracle.env)))
        print(summary)
    return 1 if ndiv else 0
