#!/usr/bin/env python3
"""bench_check.py - the cost of `vmsim check` (vmsim.check).

A benchmark, not a test: pytest never runs it and it asserts nothing.  It reports

  snapshot        one copy of a start state: copy.deepcopy of the World (with the
                  enclave's SHA-256 state copied), against rebuilding the start
                  (kernel, enclave load) and replaying a 3-call prefix
  state key       one canonical state key
  search          states and transitions per second of a fixed search, and the memory
                  each explored state costs (tracemalloc peak / states)
  speed-up        the same search at 1, 2 and all local cores (--workers), the ratio
                  to 1 worker, and the CPU time spent (workers included): on a busy
                  machine the wall-clock ratio is bounded by the other jobs, the CPU
                  time shows what sharding itself costs

Usage:
  python3 benchmarks/bench_check.py            # depth 3, about a minute on 2 cores
  python3 benchmarks/bench_check.py --quick    # depth 2
  python3 benchmarks/bench_check.py --json
"""

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vmsim.check import designs  # noqa: E402
from vmsim.check.expand import Job  # noqa: E402
from vmsim.check.explore import explore  # noqa: E402
from vmsim.check.state import snapshot, state_key  # noqa: E402
from vmsim.check.world import Config, apply, ops, signing_key, start  # noqa: E402

CONFIG = Config(groups=("mprotect", "mremap", "access"))
PROPS = ("intent", "mprotect", "validate", "leak")


def per_call(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def snapshot_costs() -> dict:
    signing_key()
    w = start(CONFIG, designs.new_kernel("merged"))
    prefix = ops(CONFIG)[:3]

    def rebuild():
        x = start(CONFIG, designs.new_kernel("merged"))
        for op in prefix:
            apply(x, op)
    return {"deepcopy_ms": 1e3 * per_call(lambda: snapshot(w), 50),
            "rebuild_prefix_ms": 1e3 * per_call(rebuild, 20),
            "state_key_ms": 1e3 * per_call(lambda: state_key(w), 200)}


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def search(depth: int, workers: int, measure_memory: bool = False) -> dict:
    job = Job(CONFIG, "merged", PROPS)
    if measure_memory:
        tracemalloc.start()
    cpu0 = cpu_seconds()
    res = explore(job, depth, workers=workers)
    cpu = cpu_seconds() - cpu0
    peak = 0
    if measure_memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    out = {"workers": workers, "depth": depth, "states": res.states,
           "transitions": res.transitions, "seconds": round(res.seconds, 2),
           "states_per_s": round(res.states / res.seconds, 1),
           "transitions_per_s": round(res.transitions / res.seconds, 1),
           "cpu_s": round(cpu, 2)}
    if measure_memory:
        out["bytes_per_state"] = peak // max(res.states, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    depth = 2 if args.quick else 3
    cores = os.cpu_count() or 1
    out: dict = {"load_before": os.getloadavg()[0], "snapshot": snapshot_costs()}
    print("snapshot: " + ", ".join(f"{k} {v:.2f}" for k, v in out["snapshot"].items()),
          file=sys.stderr)
    out["memory"] = search(depth, 1, measure_memory=True)
    runs = []
    for w in sorted({1, 2, cores}):
        runs.append(search(depth, w))
        print(f"workers {w}: {runs[-1]}", file=sys.stderr)
    base = runs[0]["seconds"]
    for r in runs:
        r["speedup"] = round(base / r["seconds"], 2)
    out["runs"] = runs
    out["load_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(out, indent=1))
        return
    s = out["snapshot"]
    print(f"snapshot: deepcopy {s['deepcopy_ms']:.2f} ms, rebuild + 3-call prefix "
          f"{s['rebuild_prefix_ms']:.2f} ms, state key {s['state_key_ms']:.3f} ms")
    m = out["memory"]
    print(f"memory: {m['bytes_per_state']} bytes per explored state "
          f"({m['states']} states, tracemalloc peak)")
    print(f"{'workers':>7} {'states':>7} {'transitions':>11} {'seconds':>8} {'cpu s':>7} "
          f"{'states/s':>9} {'trans/s':>8} {'speed-up':>8}")
    for r in runs:
        print(f"{r['workers']:>7} {r['states']:>7} {r['transitions']:>11} {r['seconds']:>8} "
              f"{r['cpu_s']:>7} {r['states_per_s']:>9} {r['transitions_per_s']:>8} "
              f"{r['speedup']:>8}")
    print(f"load average {out['load_before']:.1f} before, {out['load_after']:.1f} after, on "
          f"{cores} cores: other jobs take their share of the speed-up", file=sys.stderr)


if __name__ == "__main__":
    main()
