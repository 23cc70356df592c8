"""`vmsim check`: explore every call sequence of a small configuration up to a depth,
for each `->mprotect` hook design, checking properties after every step
(vmsim.check; docs/check.md). Exit status: 0 every property held, 1 a counterexample
was found, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..check import designs, properties, report
from ..check.expand import Job
from ..check.explore import Result, explore
from ..check.world import GROUPS, Config


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser("check", help="explore every call sequence up to a depth, per hook "
                        "design, and check properties",
                        description="Explore every sequence of calls (mmap, mprotect, munmap, "
                        "mremap, madvise, mseal, fork, the SGX ioctls, accesses, enclave-mode "
                        "accesses) on a small "
                        "enclave up to --depth, for each --design of the ->mprotect hook, "
                        "checking the properties after every step; write each "
                        "counterexample as a trace `vmsim replay` takes (docs/check.md).",
                        epilog="Exit status: 0 every property held, 1 a counterexample was "
                        "found, 2 bad input or usage.")
    ap.add_argument("--design", action="append", metavar="DESIGN",
                    help=f"{', '.join(designs.BUILTIN)} or MODULE:FUNCTION (a driver variant); "
                    "repeat to compare (default merged)")
    ap.add_argument("--depth", type=int, default=3, help="calls per sequence (default 3)")
    ap.add_argument("--intents", default=",".join(Config().intents), metavar="PERMS,...",
                    help="the enclave pages' intents, page 0 a TCS, --- a hole (default "
                    "%(default)s; '' for no enclave)")
    ap.add_argument("--prots", default=",".join(Config().prots), metavar="PERMS,...",
                    help="the prot values of mmap and mprotect (default %(default)s)")
    ap.add_argument("--ops", default=",".join(Config().groups), metavar="GROUP,...",
                    help=f"the op groups ({', '.join(GROUPS)}; default all)")
    ap.add_argument("--property", action="append", metavar="PROPERTY",
                    help=f"{', '.join(properties.BUILTIN)} or MODULE:FUNCTION; repeat "
                    "(default the four built-in ones)")
    ap.add_argument("--workers", type=int, default=1, metavar="N",
                    help="local processes to shard the search over (default 1)")
    ap.add_argument("--ray", metavar="ADDRESS",
                    help="shard over a Ray cluster ('local' starts one; needs vmsim[cluster])")
    ap.add_argument("--max-counterexamples", type=int, default=3, metavar="K",
                    help="counterexamples saved per property (default 3)")
    ap.add_argument("--out", default="vmsim-check", metavar="DIR",
                    help="where counterexample traces go (default ./vmsim-check)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.set_defaults(func=cmd_check)


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _bad(msg: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": msg}))
    else:
        print(f"vmsim check: {msg}", file=sys.stderr)
    return 2


def _jobs(args: argparse.Namespace) -> list[Job]:
    """The jobs args ask for; ValueError names the first bad argument."""
    if args.depth < 0:
        raise ValueError("--depth must be >= 0")
    if args.workers < 1:
        raise ValueError("--workers must be >= 1")
    if args.max_counterexamples < 0:
        raise ValueError("--max-counterexamples must be >= 0")
    cfg = Config(_split(args.intents), _split(args.prots), _split(args.ops))
    cfg.check()
    props = tuple(args.property or properties.BUILTIN)
    for name in props:
        if name not in properties.BUILTIN:
            properties.user_property(name)
    specs = args.design or ["merged"]
    for spec in specs:
        designs.check_design(spec)
    return [Job(cfg, spec, props) for spec in specs]


def cmd_check(args: argparse.Namespace) -> int:
    try:
        jobs = _jobs(args)
    except ValueError as exc:
        return _bad(str(exc), args.json)
    if args.ray is not None:
        try:
            import ray  # noqa: F401  (only to report its absence in one line)
        except ImportError:
            return _bad("--ray needs Ray: pip install 'vmsim[cluster]'", args.json)
    results = []
    for job in jobs:
        res = explore(job, args.depth, args.workers, args.ray, args.max_counterexamples)
        for n, cex in enumerate(res.counterexamples):
            report.write(job, cex, args.out, n)
        results.append(res)
    if args.json:
        out: Any = results[0].to_json() if len(results) == 1 else \
            {"designs": [r.to_json() for r in results]}
        print(json.dumps(out, indent=1))
    else:
        _print_table(results)
    return 1 if any(r.counterexamples or r.violations for r in results) else 0


def _print_table(results: list[Result]) -> None:
    head = f"{'design':<16} {'depth':>5} {'states':>8} {'transitions':>11} {'seconds':>8}  properties"
    print(head)
    for r in results:
        verdicts = ", ".join(f"{p} {'held' if p not in r.violations else 'VIOLATED'}"
                             for p in r.properties)
        print(f"{r.design:<16} {r.depth_reached:>5} {r.states:>8} {r.transitions:>11} "
              f"{r.seconds:>8.1f}  {verdicts}")
    for r in results:
        for c in r.counterexamples:
            print(f"\n{r.design}: {c.property} violated after {c.length} call(s): {c.message}")
            for label in c.labels:
                print(f"  {label}")
            print(f"  trace: {c.trace}" + (f"  scenario: {c.scenario}" if c.scenario else ""))
