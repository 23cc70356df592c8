#!/usr/bin/env python3
"""bench_replay.py - `vmsim replay` of a real strace log, end to end: parse and replay.

This is a benchmark, not a test: pytest never runs it and it asserts nothing about
time. It makes the log (`strace -f -o LOG find DIR`, DIR /usr by default: about
230,000 lines on a Debian-like system; nothing is committed), reads it as
`vmsim replay` does (vmsim.trace.load.load_trace), replays every record
(vmsim.trace.replay.Replayer) and prints:

  calls/s           strace call lines per second, parse and replay together (every
                    line of the log is a call; most are not memory calls, and are named
                    and counted without being decoded)
  records/s         the calls replayed on the model per second, end to end
  parser / model    the split of the time between the two

Target: >= 50,000 calls/s end to end on a 2-core machine.

Usage:
  python3 benchmarks/bench_replay.py                 # strace find /usr
  python3 benchmarks/bench_replay.py --dir /usr/lib  # a smaller tree
  python3 benchmarks/bench_replay.py --log FILE      # an existing strace log
  python3 benchmarks/bench_replay.py --profile       # also cProfile, top 20 by tottime
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vmsim.trace.load import load_trace  # noqa: E402
from vmsim.trace.replay import Replayer  # noqa: E402

TARGET = 50_000


def make_log(directory: str, path: str) -> None:
    strace = shutil.which("strace")
    if strace is None:
        sys.exit("bench_replay: strace is not installed")
    subprocess.run([strace, "-f", "-o", path, "find", directory], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(path: str) -> dict:
    t0 = time.perf_counter()
    trace = load_trace(path)
    t1 = time.perf_counter()
    outcomes = Replayer(trace).run_all()
    t2 = time.perf_counter()
    with open(path, errors="replace") as f:
        lines = sum(1 for _ in f)
    return {"lines": lines, "records": len(outcomes), "parse_s": t1 - t0,
            "model_s": t2 - t1, "total_s": t2 - t0}


def report(r: dict) -> None:
    total = r["total_s"]
    print(f"log: {r['lines']} lines, {r['records']} records replayed")
    print(f"parse {r['parse_s']:.2f} s ({100 * r['parse_s'] / total:.0f}%), "
          f"model {r['model_s']:.2f} s ({100 * r['model_s'] / total:.0f}%), "
          f"total {total:.2f} s")
    rate = r["lines"] / total
    print(f"calls/s end to end: {rate:,.0f}; records/s: {r['records'] / total:,.0f}")
    print(f"target >= {TARGET:,} calls/s: {'met' if rate >= TARGET else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="/usr", help="the tree `find` walks (default /usr)")
    ap.add_argument("--log", help="an existing strace log instead")
    ap.add_argument("--profile", action="store_true", help="cProfile parse and replay")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        path = args.log or os.path.join(tmp, "find.strace")
        if not args.log:
            make_log(args.dir, path)
        report(measure(path))
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(measure, path)
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
