#!/usr/bin/env python3
"""bench_oracle.py - throughput of vmsim.oracle and of `vmsim diff --fuzz`.

A benchmark, not a test: pytest never runs it and it asserts nothing.  It prints a
table and says whether the target of issue #3 is met (at least 500 five-call
scenarios per second through the oracle).

Rows:
  oracle, state each   five-call scenarios through Oracle.run (a fresh forked child
                       each, window state read from /proc/self/smaps after every call)
  oracle, state end    the same, state read once at the end
  session              single calls through one persistent session child
  model                the same five-call scenario on a fresh model process
  fuzz                 `vmsim diff --fuzz` without shrinking: compared calls per second
                       (oracle + model + comparison, generator included)

Usage:
  python3 benchmarks/bench_oracle.py           # ~15 s
  python3 benchmarks/bench_oracle.py --quick   # ~3 s
  python3 benchmarks/bench_oracle.py --json
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vmsim import oracle as O
from vmsim.diff import fuzz  # noqa: E402
from vmsim.diff import scenario as S
from vmsim.diff.model import run_model

FIVE = """\
mmap(W+0x1000, 0x4000, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)
mprotect(W+0x2000, 0x1000, PROT_READ)
touch(W+0x1000, "w")
touch(W+0x2000, "w")
munmap(W+0x3000, 0x1000)
"""


def rate(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    dt = time.perf_counter() - t
    return n / dt, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--fuzz", type=int, default=None, help="fuzz scenarios (default 1000)")
    args = ap.parse_args()
    n = 500 if args.quick else 3000
    nf = args.fuzz or (200 if args.quick else 1000)
    kw = O.kernel_kwargs()
    o = O.Oracle()
    sc = S.parse(FIVE)
    for _ in range(50):                                  # warm up
        o.run(sc)
    rows = {}
    r, _ = rate(lambda: o.run(sc, "each"), n)
    rows["oracle_each_scenarios_per_s"] = r
    r, _ = rate(lambda: o.run(sc, "end"), n)
    rows["oracle_end_scenarios_per_s"] = r
    with o.session() as s:
        call = S.parse("mprotect(W+0x2000, 0x1000, PROT_READ)").calls[0]
        s.call(sc.calls[0])
        r, _ = rate(lambda: s.call(call), n)
    rows["session_calls_per_s"] = r
    r, _ = rate(lambda: run_model(sc, kw, o.env), n // 3)
    rows["model_scenarios_per_s"] = r
    rep = fuzz.campaign(o, nf, 12345, kw, out_dir=None, shrink_each=False)
    rows["fuzz_scenarios"] = rep.scenarios
    rows["fuzz_compared_calls"] = rep.calls
    rows["fuzz_seconds"] = rep.seconds
    rows["fuzz_compared_calls_per_s"] = rep.calls / rep.seconds
    rows["fuzz_scenarios_per_s"] = rep.scenarios / rep.seconds
    o.close()
    target = rows["oracle_each_scenarios_per_s"] >= 500
    if args.json:
        print(json.dumps({"rows": rows, "target_500_five_call_scenarios_per_s": target},
                         indent=1))
        return
    print(f"{'oracle, state after each call':34} {rows['oracle_each_scenarios_per_s']:9.0f} "
          "five-call scenarios/s")
    print(f"{'oracle, state at the end':34} {rows['oracle_end_scenarios_per_s']:9.0f} "
          "five-call scenarios/s")
    print(f"{'oracle session':34} {rows['session_calls_per_s']:9.0f} calls/s")
    print(f"{'model (fresh process each)':34} {rows['model_scenarios_per_s']:9.0f} "
          "five-call scenarios/s")
    print(f"{'fuzz (no shrinking)':34} {rows['fuzz_compared_calls_per_s']:9.0f} compared calls/s"
          f"  ({rep.scenarios} scenarios, {rep.calls} calls, {rep.seconds:.1f} s, "
          f"{len(rep.signatures)} distinct divergences)")
    print(f"target >= 500 five-call scenarios/s through the oracle: "
          f"{'met' if target else 'NOT met'}")


if __name__ == "__main__":
    main()
