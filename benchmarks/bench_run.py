#!/usr/bin/env python3
"""bench_run.py - `vmsim run` against the native CPU and kernel, measured in the same run.

This is a benchmark, not a test: pytest never runs it and it asserts nothing about
time. It prints one table: each workload's rate or time under the model, natively,
and how many times slower the model is.

Workloads:

  alu        a static, libc-free loop of register arithmetic (add, dec, jnz: three
             instructions per iteration): instructions per second
  memory     the same loop storing to and loading from a 64 KiB buffer (six
             instructions per iteration): instructions per second
  syscalls   a static, libc-free loop of getpid(2): syscalls per second (each one a
             stop of the emulated core, the model's entry, and a restart)
  python     `python3 -c pass`: wall time of one run, in-process (a Machine) and
             through the command (`python3 -m vmsim run`, which adds the model's own
             start-up), against the native run

The programs are assembled with the system gcc into a temporary directory. The model
figures come from the Machine API (vmsim.run.machine), the first run of each workload
included once for the translation cache to fill, then the best of --repeat runs.

Usage:
  python3 benchmarks/bench_run.py            # ~1 minute
  python3 benchmarks/bench_run.py --quick    # smaller loops, fewer repetitions
  python3 benchmarks/bench_run.py --json     # machine-readable results on stdout
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from vmsim import Kernel  # noqa: E402
from vmsim.fs.stdio import HostStream  # noqa: E402
from vmsim.run.machine import Machine  # noqa: E402

#: the loops' sources; {n} is the iteration count
ALU_S = """
.globl _start
_start:
    mov ${n}, %rcx
1:  add %rcx, %rax
    dec %rcx
    jnz 1b
    xor %edi, %edi
    mov $231, %eax
    syscall
"""
MEMORY_S = """
.globl _start
_start:
    mov ${n}, %rcx
    lea buf(%rip), %rsi
1:  mov %rcx, %rdx
    and $0xfff8, %edx
    mov %rcx, (%rsi,%rdx)
    add (%rsi,%rdx), %rax
    dec %rcx
    jnz 1b
    xor %edi, %edi
    mov $231, %eax
    syscall
.bss
buf: .skip 65536
"""
SYSCALL_S = """
.globl _start
_start:
    mov ${n}, %rbx
1:  mov $39, %eax
    syscall
    dec %rbx
    jnz 1b
    xor %edi, %edi
    mov $231, %eax
    syscall
"""
#: instructions per iteration of each loop
PER_ITERATION = {"alu": 3, "memory": 6, "syscalls": 4}


def build(directory: str, name: str, source: str, n: int) -> str:
    src = os.path.join(directory, name + ".S")
    out = os.path.join(directory, name)
    with open(src, "w") as f:
        f.write(source.replace("{n}", str(n)))
    subprocess.run(["gcc", "-static", "-nostdlib", "-o", out, src], check=True)
    return out


def run_model(argv: list[str]) -> float:
    """Seconds one run of argv takes on the model (exec included), stdout discarded."""
    with open(os.devnull, "wb") as null, Machine(Kernel(pkeys=False)) as m:
        start = time.perf_counter()
        leader = m.start(argv[0], argv, ["PATH=/usr/bin:/bin"],
                         (HostStream(0), HostStream(null.fileno()), HostStream(2)))
        status = m.run(leader)
        elapsed = time.perf_counter() - start
    assert status == 0, f"{argv} ended with wait status {status:#x}"
    return elapsed


def run_native(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    return time.perf_counter() - start


def best(fn, argv: list[str], repeat: int) -> float:
    fn(argv)                                # warm: translation cache, host page cache
    return min(fn(argv) for _ in range(repeat))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller loops, fewer repetitions")
    ap.add_argument("--repeat", type=int, default=None, help="runs per figure (best kept)")
    ap.add_argument("--json", action="store_true", help="results as JSON on stdout")
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.quick else 3)
    scale = 1 if args.quick else 4
    loops = {"alu": 50_000_000 * scale, "memory": 5_000_000 * scale, "syscalls": 20_000 * scale}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in (("alu", ALU_S), ("memory", MEMORY_S), ("syscalls", SYSCALL_S)):
            prog = build(tmp, name, source, loops[name])
            count = loops[name] * (1 if name == "syscalls" else PER_ITERATION[name])
            model, native = best(run_model, [prog], repeat), best(run_native, [prog], repeat)
            unit = "syscalls/s" if name == "syscalls" else "instructions/s"
            rows.append((name, unit, count / model, count / native))
    python = ["/usr/bin/python3", "-c", "pass"]
    model_s = best(run_model, python, repeat)
    command = [sys.executable, "-m", "vmsim", "run", "--", *python]
    start = time.perf_counter()
    subprocess.run(command, check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO})
    command_s = time.perf_counter() - start
    native_s = best(run_native, python, repeat)
    rows.append(("python", "s (Machine)", model_s, native_s))
    rows.append(("python", "s (vmsim run)", command_s, native_s))
    if args.json:
        json.dump([dict(zip(("workload", "unit", "model", "native"), r, strict=True)) for r in rows],
                  sys.stdout, indent=1)
        print()
        return 0
    print(f"{'workload':10} {'unit':16} {'model':>14} {'native':>14} {'slowdown':>13}")
    for name, unit, model, native in rows:
        ratio = native / model if unit.endswith("/s") else model / native
        print(f"{name:10} {unit:16} {model:14.4g} {native:14.4g} {ratio:12.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
