#!/usr/bin/env python3
"""bench_mm.py - vmsim mm layer against the native kernel, measured in the same run.

This is a benchmark, not a test: pytest never runs it and it asserts nothing about
time. It prints one table and says which performance targets are met.

Workloads, with N existing VMAs (N = 100, 1000, 10000, 60000):

  (a) split   mprotect(test+PG, PG, PROT_READ)             3-page VMA -> 3 VMAs
  (b) merge   mprotect(test+PG, PG, PROT_READ|PROT_WRITE)  3 VMAs -> 1 VMA
  (c) mmap    mmap(slot, PG, RW, MAP_PRIVATE|MAP_ANONYMOUS)  (hint; lands at slot)
  (d) munmap  munmap(slot, PG)
  maps        /proc/self/maps read (native) or p.maps() (model), per line

and, on the model only, the total time of FILE_MMAPS = 5,000 and 20,000 non-fixed
mmaps of one page of a file, each through its own open() (a new struct file, so
they never merge) and placed top-down below mmap_base, packed: each placement
searches below all the previous ones (get_unmapped_area's gap search).

The N VMAs are built identically on both sides (as spec/mm_probe_maxmap.c does): a
PROT_NONE MAP_NORESERVE reservation at a fixed address with alternate pages
mprotected to PROT_READ so nothing merges. There are two reservations, A below and
B above the test area, so the measured VMAs sit in the middle of the tree.

The native side is benchmarks/native_mm.c, compiled with the system cc into a cache
directory ($XDG_CACHE_HOME/vmsim or ~/.cache/vmsim). It is limited by
vm.max_map_count (65530 by default; 60,000 + the process's own ~25 VMAs fits). The
model gets Kernel(max_map_count=...) high enough for the largest N.

Usage:
  python3 benchmarks/bench_mm.py            # full run (~1-3 minutes, model dependent)
  python3 benchmarks/bench_mm.py --quick    # N = 100, 1000, 10000; fewer repetitions
  python3 benchmarks/bench_mm.py --json     # machine-readable results on stdout
  python3 benchmarks/bench_mm.py --profile  # also cProfile the model's worst case
"""

import argparse
import cProfile
import gc
import hashlib
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NATIVE_SRC = os.path.join(HERE, "native_mm.c")

# Layout: must match native_mm.c
PG = 4096
REGION_A = 0x100000000000
TEST_BASE = 0x110000000000
REGION_B = 0x120000000000
TEST_VMA = TEST_BASE          # 3 pages
SLOT = TEST_BASE + 8 * PG     # 1 page, unmapped gaps on both sides

OPS = ("split", "merge", "mmap", "munmap")
FILE_MMAPS = (5000, 20000)
OP_LABEL = {
    "split": "(a) mprotect split",
    "merge": "(b) mprotect merge",
    "mmap": "(c) mmap 1 page",
    "munmap": "(d) munmap 1 page",
}

TARGET_CALL_RATIO = 10.0      # model per call <= 10x native
TARGET_SCALING = 1.3          # model cost at N max <= 1.3x its cost at N min
TARGET_BYTES_PER_VMA = 600
TARGET_MAPS_RATIO = 3.0       # maps rendering <= 3x the kernel, per line

# Maps rendering, both sides: MAPS_ROUNDS rounds per N, each a burst of native reads in a
# fresh native_mm process then a burst of p.maps() calls; each burst is MAPS_WARMUP_READS
# untimed reads, then at least MAPS_MIN_REPS timed ones and a time budget. The figure is
# the minimum read of each side. Rendering N lines is fixed work, and a shared machine
# (other tasks, the hypervisor's other guests on the L3) only ever adds to it, so the
# minimum is the steady figure (the median moved by 30% from run to run natively); the
# alternation puts both sides under the same spells of load, and the fresh processes
# keep one process's placement of its VMAs from deciding the native figure.
MAPS_ROUNDS = 5
MAPS_WARMUP_READS = 3         # must match native_mm.c
MAPS_MIN_REPS = 5


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def region_pages(nmax):
    """Pages per reservation; must match native_mm.c (k = (nmax-2)/4 + 2)."""
    kmax = (nmax - 2) // 2 // 2 + 2
    return 2 * kmax + 4


def split_k(n):
    """PROT_READ pages in reservation A and B so that (2kA+1)+(2kB+1) == n."""
    half = (n - 2) // 2
    return (half + 1) // 2, half // 2


# ---------------------------------------------------------------------------
# native side

def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = os.path.join(base, "vmsim")
    try:
        os.makedirs(d, exist_ok=True)
        return d
    except OSError:
        import tempfile
        return tempfile.mkdtemp(prefix="vmsim-bench-")


def build_native():
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError("no C compiler (cc) found")
    cflags = ["-O2", "-Wall"]
    src = open(NATIVE_SRC, "rb").read()
    tag = hashlib.sha256(src + cc.encode() + " ".join(cflags).encode()).hexdigest()[:16]
    exe = os.path.join(cache_dir(), "native_mm-" + tag)
    if not os.path.exists(exe):
        tmp = f"{exe}.tmp{os.getpid()}"
        r = subprocess.run([cc] + cflags + ["-o", tmp, NATIVE_SRC],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("compiling native_mm.c failed:\n" + r.stderr)
        os.replace(tmp, exe)
    return exe


def parse_kv(line):
    kind, _, rest = line.partition(" ")
    rec = {}
    for tok in rest.split():
        k, _, v = tok.partition("=")
        rec[k] = float(v) if any(c in v for c in ".e") else int(v)
    return kind, rec


def run_native_mm(exe, sizes, iters, runs, maps_ms):
    """One native_mm process: its parsed records (runs=0: the maps reads only)."""
    cmd = [exe, str(iters), str(runs), str(MAPS_MIN_REPS), str(maps_ms)] + [str(n) for n in sizes]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"native_mm failed ({r.returncode}): {r.stderr.strip()}")
    return [parse_kv(line) for line in r.stdout.splitlines()]


def run_native(sizes, iters, runs):
    """The per-call medians, from one native_mm process."""
    exe = build_native()
    out = {"info": {}, "calls": {}, "maps": {}, "exe": exe}
    for kind, rec in run_native_mm(exe, sizes, iters, runs, 0):
        if kind == "info":
            out["info"] = rec
        elif kind == "calls":
            out["calls"][rec["n"]] = {op: rec[op + "_ns"] / 1000.0 for op in OPS}
    return out


def native_maps_burst(exe, n, maps_ms):
    """One fresh native_mm process's maps reads at n VMAs: (lines, reps, min ns, median ns)."""
    for kind, rec in run_native_mm(exe, [n], 0, 0, maps_ms):
        if kind == "maps":
            return rec["lines"], rec["reps"], rec["min_read_ns"], rec["median_read_ns"]
    raise RuntimeError(f"native_mm printed no maps record for N={n}")


def model_maps_burst(lay, budget_s):
    """p.maps() as native_mm.c times its reads: (lines, reps, min ns, median ns)."""
    clock = time.perf_counter_ns
    for _ in range(MAPS_WARMUP_READS):
        lines = lay.p.maps().count("\n")
    samples: list[int] = []
    start = clock()
    while len(samples) < MAPS_MIN_REPS or clock() - start < budget_s * 1e9:
        t0 = clock()
        lay.p.maps()
        samples.append(clock() - t0)
    return lines, len(samples), min(samples), statistics.median(samples)


def maps_record(bursts):
    """One side's maps row from its bursts: the minimum read is the figure (see MAPS_ROUNDS);
    medians_us, each burst's median read, only shows the noise."""
    lines = bursts[0][0]
    min_us = min(b[2] for b in bursts) / 1000.0
    return {"lines": lines, "reps": sum(b[1] for b in bursts), "render_us": min_us,
            "per_line_us": min_us / lines, "medians_us": [b[3] / 1000.0 for b in bursts]}


def measure_maps(native, lay, n, native_ms, model_s):
    """MAPS_ROUNDS rounds of a native burst then a model burst (no model: lay is None)."""
    native_bursts, model_bursts = [], []
    for _ in range(MAPS_ROUNDS):
        if native:
            native_bursts.append(native_maps_burst(native["exe"], n, native_ms))
        if lay is not None:
            model_bursts.append(model_maps_burst(lay, model_s))
    if native:
        native["maps"][n] = maps_record(native_bursts)
    return maps_record(model_bursts) if model_bursts else None


# ---------------------------------------------------------------------------
# model side

def import_vmsim():
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import vmsim
    vmsim.Kernel().spawn()      # fail early if the model is not there yet
    return vmsim


class ModelLayout:
    """The native layout, on one vmsim Process."""

    def __init__(self, vmsim, nmax, test_area=True):
        self.v = vmsim
        self.k = vmsim.Kernel(max_map_count=max(65530, 2 * nmax + 1000))
        self.p = self.k.spawn()
        self.pages = region_pages(nmax)
        fl = vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS
        fixed = getattr(vmsim, "MAP_FIXED_NOREPLACE", vmsim.MAP_FIXED)
        for base in (REGION_A, REGION_B):
            a = self.p.mmap(base, self.pages * PG, vmsim.PROT_NONE,
                            fl | vmsim.MAP_NORESERVE | fixed)
            assert a == base, hex(a)
        if test_area:
            a = self.p.mmap(TEST_VMA, 3 * PG, vmsim.PROT_READ | vmsim.PROT_WRITE, fl | fixed)
            assert a == TEST_VMA, hex(a)
        self.kA = self.kB = 0

    def grow(self, n):
        tA, tB = split_k(n)
        mprotect, R = self.p.mprotect, self.v.PROT_READ
        while self.kA < tA:
            self.kA += 1
            mprotect(REGION_A + 2 * self.kA * PG, PG, R)
        while self.kB < tB:
            self.kB += 1
            mprotect(REGION_B + 2 * self.kB * PG, PG, R)

    def count(self, lo, hi):
        return sum(1 for v in self.p.vmas() if lo <= v.start < hi)

    def sanity(self, n=None):
        v, p = self.v, self.p
        RW = v.PROT_READ | v.PROT_WRITE
        lo, hi = TEST_BASE, TEST_BASE + 64 * PG
        p.mprotect(TEST_VMA + PG, PG, v.PROT_READ)
        c3 = self.count(lo, hi)
        p.mprotect(TEST_VMA + PG, PG, RW)
        c1 = self.count(lo, hi)
        a = p.mmap(SLOT, PG, RW, v.MAP_PRIVATE | v.MAP_ANONYMOUS)
        c2 = self.count(lo, hi)
        p.munmap(a, PG)
        if (c3, c1, a, c2) != (3, 1, SLOT, 2):
            raise RuntimeError(f"model sanity check failed: split->{c3} merge->{c1} mmap at {a:#x} "
                               f"({c2})")
        if n is not None:
            span = self.pages * PG
            built = self.count(REGION_A, REGION_A + span) + self.count(REGION_B, REGION_B + span)
            if built != n:
                raise RuntimeError(f"model built {built} VMAs, wanted {n}")


def clock_overhead_ns():
    clock = time.perf_counter_ns
    samples = []
    for _ in range(21):
        t0 = clock()
        for _ in range(2000):
            clock()
        samples.append((clock() - t0) / 2000)
    return statistics.median(samples)


def model_calls(lay, iters, runs, clock_ns):
    """Per-call microseconds (median over runs of the mean of iters calls)."""
    v, p = lay.v, lay.p
    R, RW = v.PROT_READ, v.PROT_READ | v.PROT_WRITE
    PA = v.MAP_PRIVATE | v.MAP_ANONYMOUS
    mprotect, mmap, munmap = p.mprotect, p.mmap, p.munmap
    clock = time.perf_counter_ns
    tp, slot = TEST_VMA + PG, SLOT
    res = {op: [] for op in OPS}
    for _ in range(runs):
        s_split = s_merge = s_mmap = s_munmap = 0
        for _ in range(iters):
            t0 = clock()
            mprotect(tp, PG, R)
            t1 = clock()
            mprotect(tp, PG, RW)
            t2 = clock()
            a = mmap(slot, PG, RW, PA)
            t3 = clock()
            munmap(a, PG)
            t4 = clock()
            s_split += t1 - t0
            s_merge += t2 - t1
            s_mmap += t3 - t2
            s_munmap += t4 - t3
        for op, s in zip(OPS, (s_split, s_merge, s_mmap, s_munmap), strict=True):
            res[op].append((s / iters - clock_ns) / 1000.0)
    return {op: statistics.median(res[op]) for op in OPS}, res


def model_bytes_per_vma(vmsim, n):
    """tracemalloc delta of building n VMAs, divided by n."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    lay = ModelLayout(vmsim, n, test_area=False)
    lay.grow(n)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    span = lay.pages * PG
    built = lay.count(REGION_A, REGION_A + span) + lay.count(REGION_B, REGION_B + span)
    del lay
    gc.collect()
    return (after - before) / n, built


def model_file_mmaps(vmsim, n):
    """Seconds for n non-mergeable one-page file mmaps (open, mmap(NULL), close each)."""
    k = vmsim.Kernel(max_map_count=max(65530, 2 * n + 1000))
    p = k.spawn()
    path = "/tmp/bench_mm_file_mmaps"
    p.close(p.open(path, vmsim.O_RDWR | vmsim.O_CREAT))
    fd = p.open(path, vmsim.O_RDWR)
    p.ftruncate(fd, PG)
    p.close(fd)
    open_, mmap, close = p.open, p.mmap, p.close
    R, PRIV, RDONLY = vmsim.PROT_READ, vmsim.MAP_PRIVATE, vmsim.O_RDONLY
    t0 = time.perf_counter()
    for _ in range(n):
        fd = open_(path, RDONLY)
        mmap(0, PG, R, PRIV, fd)
        close(fd)
    seconds = time.perf_counter() - t0
    if len(p.vmas()) != n:
        raise RuntimeError(f"{n} file mmaps made {len(p.vmas())} VMAs")
    return seconds


def profile_model(lay, what, iters):
    """cProfile `what` on the model layout; returns the top of the tottime listing."""
    v, p = lay.v, lay.p
    R, RW = v.PROT_READ, v.PROT_READ | v.PROT_WRITE
    PA = v.MAP_PRIVATE | v.MAP_ANONYMOUS
    prof = cProfile.Profile()
    if what in ("split", "merge"):
        def work():
            for _ in range(iters):
                p.mprotect(TEST_VMA + PG, PG, R)
                p.mprotect(TEST_VMA + PG, PG, RW)
    elif what in ("mmap", "munmap"):
        def work():
            for _ in range(iters):
                p.munmap(p.mmap(SLOT, PG, RW, PA), PG)
    else:
        def work():
            for _ in range(max(1, iters // 500)):
                p.maps()
    prof.runcall(work)
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.sort_stats("tottime").print_stats(18)
    top = []
    for (fn, line, name), (_cc, nc, tt, ct, _) in sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:18]:
        where = os.path.relpath(fn, REPO) if fn.startswith(REPO) else fn
        top.append({"function": f"{where}:{line}({name})",
                    "ncalls": nc, "tottime_s": tt, "cumtime_s": ct})
    return s.getvalue(), top


# ---------------------------------------------------------------------------

def fmt_us(x):
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def fmt_ratio(x):
    return "-" if x is None else (f"{x:.1f}x" if x < 100 else f"{x:.0f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 100, 1000, 10000 and fewer repetitions")
    ap.add_argument("--json", action="store_true", help="emit machine-readable results on stdout")
    ap.add_argument("--profile", nargs="?", const="auto", default=None,
                    choices=("auto", "split", "merge", "mmap", "munmap", "maps"),
                    help="cProfile the model on the worst case (or the named workload) at the largest N")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                    help="comma-separated N values (even, ascending)")
    ap.add_argument("--runs", type=int, help="runs per measurement (median is reported)")
    ap.add_argument("--gc", action="store_true",
                    help="leave Python's garbage collector on during timed loops (timeit turns it off)")
    ap.add_argument("--native-only", action="store_true", help="skip the model")
    ap.add_argument("--cpu", type=int, help="pin this process (and the native child) to one CPU")
    args = ap.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    sizes = args.sizes or ([100, 1000, 10000] if args.quick else [100, 1000, 10000, 60000])
    if any(n < 2 or n % 2 for n in sizes) or sizes != sorted(sizes):
        ap.error("sizes must be even, >= 2 and ascending")
    runs = args.runs or (5 if args.quick else 7)
    native_iters = 5000 if args.quick else 20000
    model_run_s = 0.04 if args.quick else 0.12     # target duration of one model run
    maps_burst_s = 0.1 if args.quick else 0.25     # one side's burst of maps reads
    t_start = time.time()

    results: dict[str, Any] = {
        "host": {"kernel": platform.release(), "python": platform.python_version(),
                 "machine": platform.machine()},
        "sizes": sizes, "runs": runs, "native": None, "model": None, "ratios": None,
        "targets": None, "errors": [],
    }

    log("native: building and running native_mm.c ...")
    try:
        native = run_native(sizes, native_iters, runs)
        results["native"] = {"info": native["info"], "exe": native["exe"], "iters": native_iters,
                             "calls_us": native["calls"], "maps": native["maps"]}
        mmc = native["info"].get("max_map_count", -1)
        if mmc > 0 and max(sizes) + native["info"].get("baseline_lines", 0) + 4 > mmc:
            results["errors"].append(f"vm.max_map_count={mmc} is too low for N={max(sizes)} natively")
    except Exception as e:  # noqa: BLE001 - report, keep going with the model
        native = None
        results["errors"].append(f"native: {e}")
        log(f"native: {e}")

    model = None
    lay = None
    if not args.native_only:
        try:
            vmsim = import_vmsim()
        except Exception as e:  # noqa: BLE001
            vmsim = None
            results["errors"].append(f"model unavailable: {type(e).__name__}: {e}")
            log(f"model unavailable: {type(e).__name__}: {e}")
        if vmsim is not None:
            try:
                model = {"calls_us": {}, "maps": {}, "runs_us": {}, "build_s": {}, "iters": {}}
                clock_ns = clock_overhead_ns()
                model["clock_ns"] = clock_ns
                lay = ModelLayout(vmsim, max(sizes))
                lay.sanity()
                gc_was = gc.isenabled()
                for n in sizes:
                    t0 = time.perf_counter()
                    lay.grow(n)
                    model["build_s"][n] = time.perf_counter() - t0
                    lay.sanity(n)
                    log(f"model: N={n} built in {model['build_s'][n]:.2f}s")
                    # calibrate iterations so one run takes about model_run_s
                    t0 = time.perf_counter()
                    model_calls(lay, 10, 1, clock_ns)
                    per_iter = (time.perf_counter() - t0) / 10
                    iters = int(min(20000, max(20, model_run_s / max(per_iter, 1e-9))))
                    model["iters"][n] = iters
                    if not args.gc:
                        gc.collect()
                        gc.disable()
                    try:
                        med, allruns = model_calls(lay, iters, runs, clock_ns)
                        model["calls_us"][n] = med
                        model["runs_us"][n] = allruns
                        model["maps"][n] = measure_maps(native, lay, n, int(maps_burst_s * 1000),
                                                        maps_burst_s)
                    finally:
                        if gc_was:
                            gc.enable()
                model["file_mmaps_s"] = {}
                for n in FILE_MMAPS:
                    log(f"model: {n} non-mergeable file mmaps ...")
                    model["file_mmaps_s"][n] = model_file_mmaps(vmsim, n)
                log(f"model: measuring bytes per VMA at N={max(sizes)} (tracemalloc) ...")
                bpv, built = model_bytes_per_vma(vmsim, max(sizes))
                model["bytes_per_vma"] = bpv
                model["bytes_per_vma_n"] = max(sizes)
                if built != max(sizes):
                    results["errors"].append(f"bytes-per-VMA build made {built} VMAs, "
                                             f"wanted {max(sizes)}")
            except Exception as e:  # noqa: BLE001
                import traceback
                results["errors"].append(f"model failed: {type(e).__name__}: {e}")
                log(traceback.format_exc())
                if not model or not model["calls_us"]:
                    model = None
    results["model"] = model
    if native and not native["maps"]:       # no model: the native maps reads alone
        for n in sizes:
            measure_maps(native, None, n, int(maps_burst_s * 1000), 0)

    # ratios and targets
    ratios = None
    targets = []
    if native and model:
        ratios = {"calls": {}, "maps": {}}
        for n in sizes:
            if n in model["calls_us"] and n in native["calls"]:
                ratios["calls"][n] = {op: model["calls_us"][n][op] / native["calls"][n][op]
                                      for op in OPS}
            if n in model["maps"] and n in native["maps"]:
                ratios["maps"][n] = model["maps"][n]["per_line_us"] / native["maps"][n]["per_line_us"]
        worst = max(((r, n, op) for n, d in ratios["calls"].items() for op, r in d.items()),
                    default=None)
        if worst:
            targets.append({"target": f"model per call <= {TARGET_CALL_RATIO:g}x native",
                            "value": worst[0], "met": worst[0] <= TARGET_CALL_RATIO,
                            "detail": f"worst {OP_LABEL[worst[2]]} at N={worst[1]}"})
    if model and len(model["calls_us"]) >= 2:
        lo, hi = min(model["calls_us"]), max(model["calls_us"])
        sc = {op: model["calls_us"][hi][op] / model["calls_us"][lo][op] for op in OPS}
        op = max(sc, key=sc.get)
        model["scaling"] = {"n_lo": lo, "n_hi": hi, "ratio": sc}
        targets.append({"target": f"model cost at N={hi} <= {TARGET_SCALING:g}x its cost at N={lo}",
                        "value": sc[op], "met": sc[op] <= TARGET_SCALING,
                        "detail": f"worst {OP_LABEL[op]}"})
    if model and "bytes_per_vma" in model:
        targets.append({"target": f"<= {TARGET_BYTES_PER_VMA} bytes per VMA",
                        "value": model["bytes_per_vma"],
                        "met": model["bytes_per_vma"] <= TARGET_BYTES_PER_VMA,
                        "detail": f"tracemalloc, N={model['bytes_per_vma_n']}"})
    if ratios and ratios["maps"]:
        n = max(ratios["maps"], key=ratios["maps"].get)
        targets.append({"target": f"maps rendering <= {TARGET_MAPS_RATIO:g}x the kernel per line",
                        "value": ratios["maps"][n], "met": ratios["maps"][n] <= TARGET_MAPS_RATIO,
                        "detail": f"worst at N={n}"})
    results["ratios"] = ratios
    results["targets"] = targets

    # profile
    prof_text = None
    if args.profile and model and lay is not None:
        what = args.profile
        if what == "auto":
            n = max(sizes)
            cands = {}
            if ratios and n in ratios["calls"]:
                cands.update(ratios["calls"][n])
            if ratios and n in ratios["maps"]:
                cands["maps"] = ratios["maps"][n]
            if not cands:
                cands = dict(model["calls_us"][n])
            what = max(cands, key=cands.get)
        log(f"profiling model: {what} at N={max(sizes)} ...")
        prof_text, top = profile_model(lay, what, 500 if args.quick else 2000)
        results["profile"] = {"workload": what, "n": max(sizes), "top_tottime": top}

    results["elapsed_s"] = time.time() - t_start

    if args.json:
        json.dump(results, sys.stdout, indent=1, sort_keys=True, default=str)
        print()
        return 0

    # ---- the table
    h = results["host"]
    print(f"vmsim mm benchmark: Linux {h['kernel']} {h['machine']}, Python {h['python']}; "
          f"per call: medians of {runs} runs; maps: minimum read")
    if native:
        inf = native["info"]
        print(f"native: {os.path.basename(native['exe'])} (cc -O2), {native_iters} iterations/run, "
              f"vm.max_map_count={inf.get('max_map_count')}, {inf.get('baseline_lines', 0)} VMAs of "
              "its own besides the N built + 1 test VMA; clock_gettime overhead "
              f"{inf.get('clock_ns', 0):.0f} ns subtracted")
    if model:
        iters_by_n = ", ".join(f"{n}:{iters}" for n, iters in model["iters"].items())
        print(f"model: vmsim, Kernel(max_map_count={max(65530, 2 * max(sizes) + 1000)}), "
              f"gc {'on' if args.gc else 'off'} during timing, perf_counter_ns overhead "
              f"{model['clock_ns']:.0f} ns subtracted, iterations/run by N: {iters_by_n}")
    print()
    print(f"{'N':>7}  {'call':<20} {'native us':>12} {'model us':>12} {'model/native':>12}")
    for n in sizes:
        for op in OPS:
            nv = native["calls"].get(n, {}).get(op) if native else None
            mv = model["calls_us"].get(n, {}).get(op) if model else None
            r = ratios["calls"].get(n, {}).get(op) if ratios else None
            print(f"{n:7d}  {OP_LABEL[op]:<20} {fmt_us(nv):>12} {fmt_us(mv):>12} {fmt_ratio(r):>12}")
    print()
    print(f"/proc/PID/maps rendering, minimum read of {MAPS_ROUNDS} alternating rounds (native: "
          "open+read(2)+close of /proc/self/maps, a fresh process each round; model: p.maps())")
    print(f"{'N':>7}  {'native lines':>12} {'native us/line':>14} {'model lines':>12} "
          f"{'model us/line':>14} {'ratio':>8}")
    for n in sizes:
        nm = native["maps"].get(n) if native else None
        mm = model["maps"].get(n) if model else None
        r = ratios["maps"].get(n) if ratios else None
        native_lines, native_us = (nm["lines"], fmt_us(nm["per_line_us"])) if nm else ("-", "-")
        model_lines, model_us = (mm["lines"], fmt_us(mm["per_line_us"])) if mm else ("-", "-")
        print(f"{n:7d}  {native_lines!s:>12} {native_us:>14} {model_lines!s:>12} {model_us:>14} "
              f"{fmt_ratio(r):>8}")
    print()
    if model and "bytes_per_vma" in model:
        print(f"model memory: {model['bytes_per_vma']:.0f} bytes per VMA (tracemalloc delta of "
              f"building N={model['bytes_per_vma_n']} VMAs / N)")
    if model and "scaling" in model:
        sc = model["scaling"]
        ratios_text = ", ".join(f"{op} {sc['ratio'][op]:.2f}x" for op in OPS)
        print(f"model scaling N={sc['n_hi']} / N={sc['n_lo']}: {ratios_text}")
    if model and "file_mmaps_s" in model:
        print("model non-mergeable file mmaps (top-down, packed): " + ", ".join(
            f"{n} in {s:.2f}s ({s / n * 1e6:.0f} us each)" for n, s in model["file_mmaps_s"].items()))
    if model:
        print("model build time: " + ", ".join(f"N={n} {s:.2f}s" for n, s in model["build_s"].items()))
    print()
    print("Targets:")
    if not targets:
        print("  (none evaluated: need both the native and the model results)")
    for t in targets:
        v = t["value"]
        vs = f"{v:.0f} B" if "bytes" in t["target"] else f"{v:.2f}x"
        print(f"  [{'MET ' if t['met'] else 'MISS'}] {t['target']:<46} {vs:>10}  ({t['detail']})")
    if max(sizes) < 60000:
        print(f"  note: the 60,000-VMA targets were evaluated at N={max(sizes)} (--quick/--sizes)")
    for e in results["errors"]:
        print(f"  error: {e}")
    if prof_text:
        print()
        print(f"cProfile of the model, {results['profile']['workload']} at N={results['profile']['n']} "
              "(top by tottime):")
        print(prof_text.rstrip())
    print()
    print(f"elapsed {results['elapsed_s']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
