"""Replaying real programs: strace them on this machine, replay the trace from the
start snapshot of their /proc/self/maps (and smaps), and require the end snapshot to
equal the model's maps byte for byte inside every range the trace touched.

Programs (tests/realprog/): mmapseq.c, a known sequence of memory-map calls; and
`python3 -c pass` and `ls` with the dumpmaps.c LD_PRELOAD shim. The tests skip, with
the reason, only when strace or a C compiler cannot run here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from vmsim.syscalls.table import ADDR_RESULT
from vmsim.trace.replay import Replayer, format_args
from vmsim.trace.strace import parse_strace

HERE = os.path.dirname(__file__)
SRC = os.path.join(HERE, "realprog")
PAGE = 4096


def _strace_problem() -> str | None:
    exe = shutil.which("strace")
    if exe is None:
        return "strace is not installed (.ci/run installs it)"
    try:
        r = subprocess.run([exe, "-f", "-o", os.devnull, "true"], capture_output=True,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"strace cannot run here: {exc}"
    if r.returncode != 0:
        return "strace cannot trace here (ptrace not permitted?): " + \
            r.stderr.decode(errors="replace").strip().splitlines()[-1:][0] \
            if r.stderr.strip() else f"strace exited with {r.returncode}"
    return None


def _cc():
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@pytest.fixture(scope="module")
def strace():
    why = _strace_problem()
    if why:
        pytest.skip(why)
    return shutil.which("strace")


@pytest.fixture(scope="module")
def built(tmp_path_factory, strace):
    cc = _cc()
    if cc is None:
        pytest.skip("no C compiler (cc) to build tests/realprog")
    out = tmp_path_factory.mktemp("realprog")
    prog, shim = str(out / "mmapseq"), str(out / "dumpmaps.so")
    for cmd in ([cc, "-O0", "-I", SRC, "-o", prog, os.path.join(SRC, "mmapseq.c")],
                [cc, "-O0", "-shared", "-fPIC", "-I", SRC, "-o", shim,
                 os.path.join(SRC, "dumpmaps.c")]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return {"mmapseq": prog, "shim": shim}


def cut(text: str) -> str:
    """The trace between the start maps dump and the end smaps dump."""
    lines = text.splitlines()
    first = next(i for i, ln in enumerate(lines) if '"/proc/self/maps"' in ln)
    last = max(i for i, ln in enumerate(lines) if '"/proc/self/smaps"' in ln)
    assert first < last, "the program did not take both snapshots"
    # keep the line numbers of the original output in error messages
    return "\n" * (first + 1) + "\n".join(lines[first + 1:last])


def touched(records, r: Replayer) -> list:
    """The address ranges the replayed calls named or returned."""
    out = []
    for rec in records:
        if rec.call is None or rec.pid not in (None, r.main_pid):
            continue
        a = rec.args
        if rec.call in ("mmap", "munmap", "mprotect", "pkey_mprotect", "madvise", "mseal",
                        "mlock", "mlock2", "munlock"):
            if a[0]:
                out.append((a[0], a[0] + a[1]))
        if rec.call == "mremap":
            out.append((a[0], a[0] + a[1]))
        if rec.call in ("mmap", "mremap") and rec.ret is not None:
            ln = a[1] if rec.call == "mmap" else a[2]
            out.append((rec.ret, rec.ret + ln))
    p = r.process()
    if p.mm.brk != p.mm.start_brk or any(rec.call == "brk" for rec in records):
        out.append((p.mm.start_brk, max(p.mm.brk, p.mm.start_brk + PAGE)))
    return [(s & ~(PAGE - 1), (e + PAGE - 1) & ~(PAGE - 1)) for s, e in out if e > s]


def lines_in(maps_text: str, ranges) -> list:
    keep = []
    for line in maps_text.splitlines():
        if not line.strip():
            continue
        s, e = (int(x, 16) for x in line.split()[0].split("-"))
        if any(s < hi and e > lo for lo, hi in ranges):
            keep.append(line)
    return keep


def replay_and_compare(trace_path, prefix, placement="trace"):
    with open(trace_path) as f:
        text = f.read()
    trace = parse_strace(cut(text), trace_path)
    with open(prefix + "start.maps") as f:
        start = f.read()
    with open(prefix + "start.smaps") as f:
        smaps = f.read()
    with open(prefix + "end.maps") as f:
        end = f.read()
    r = Replayer(trace, maps=start, smaps=smaps, maps_path=prefix + "start.maps",
                 placement=placement)
    outcomes = r.run_all()
    bad = [f"{trace_path}:{o.rec.line}: {format_args(o.rec)} recorded "
           f"{o.recorded} model {o.model} {o.note or ''}" for o in outcomes
           if o.verdict in ("differ", "placement")]
    assert not bad, "calls diverge:\n" + "\n".join(bad)
    rng = touched(trace.records, r)
    assert rng, "the trace touched nothing"
    model = r.process().maps()
    assert lines_in(model, rng) == lines_in(end, rng), \
        "final maps differ inside the touched ranges"
    return r, outcomes


STRACE_FLAGS = [["-f"], ["-f", "-tt"], ["-f", "-y"], ["-f", "-X", "raw"],
                ["-f", "-ttt", "-yy", "-X", "abbrev"], ["-tt", "-y"]]


@pytest.mark.parametrize("flags", STRACE_FLAGS, ids=lambda f: " ".join(f))
def test_mmapseq(built, strace, tmp_path, flags):
    prefix = str(tmp_path / "snap.")
    out = str(tmp_path / "trace.txt")
    r = subprocess.run([strace, *flags, "-o", out, built["mmapseq"], prefix,
                        str(tmp_path / "mapped.file")], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    replayer, outcomes = replay_and_compare(out, prefix)
    by_call = {}
    for o in outcomes:
        by_call.setdefault(o.rec.call, []).append(o)
    # the refusals the program provokes are replayed and agree
    errs = {(o.rec.call, o.rec.err) for o in outcomes if o.rec.err and o.verdict == "agree"}
    assert {("mprotect", "ENOMEM"), ("munmap", "EINVAL"), ("mmap", "EACCES"),
            ("munmap", "EPERM")} <= errs
    assert any(o.rec.call == "mseal" and o.verdict == "agree" for o in outcomes)
    if "-f" in flags:       # the forked child's calls ran on its own copy and agree
        child = [o for o in outcomes if o.rec.pid not in (None, replayer.main_pid)
                 and o.rec.call in ("munmap", "mprotect")]
        assert child and all(o.verdict == "agree" for o in child)


def test_mmapseq_stderr_pid_prefixes(built, strace, tmp_path):
    """strace -f without -o: `[pid N]` prefixes on the child's lines only."""
    prefix = str(tmp_path / "snap.")
    r = subprocess.run([strace, "-f", built["mmapseq"], prefix,
                        str(tmp_path / "mapped.file")], capture_output=True, timeout=120)
    assert r.returncode == 0
    out = tmp_path / "trace.txt"
    out.write_bytes(r.stderr)
    assert b"[pid " in r.stderr
    replay_and_compare(str(out), prefix)


def _shim_run(strace, built, tmp_path, argv, flags):
    prefix = str(tmp_path / "snap.")
    out = str(tmp_path / "trace.txt")
    r = subprocess.run([strace, *flags, "-E", f"LD_PRELOAD={built['shim']}",
                        "-E", f"VMSIM_MAPS_OUT={prefix}", "-o", out, *argv],
                       capture_output=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    return replay_and_compare(out, prefix)


def _real_python():
    """The interpreter binary itself (not a pyenv/venv shim that execs another)."""
    return os.path.realpath(sys.executable)


@pytest.mark.parametrize("flags", [["-f", "-y"], ["-f", "-tt", "-X", "raw"]],
                         ids=lambda f: " ".join(f))
def test_python_pass(built, strace, tmp_path, flags):
    _shim_run(strace, built, tmp_path, [_real_python(), "-c", "pass"], flags)


@pytest.mark.parametrize("flags", [["-f", "-y"], ["-f", "-tt"]], ids=lambda f: " ".join(f))
def test_ls(built, strace, tmp_path, flags):
    ls = shutil.which("ls")
    if ls is None:
        pytest.skip("no ls here")
    _shim_run(strace, built, tmp_path, [ls, "-l", "/"], flags)


def test_whole_ls_trace_from_execve(strace, tmp_path):
    """A whole `strace -f ls` (from execve, no maps): every mm call the model can
    check agrees, and ld.so's library mappings are reproduced at their places."""
    out = str(tmp_path / "trace.txt")
    r = subprocess.run([strace, "-f", "-y", "-o", out, shutil.which("ls") or "ls", "/"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0
    with open(out) as f:
        trace = parse_strace(f.read(), out)
    rp = Replayer(trace)
    outcomes = rp.run_all()
    assert outcomes[0].rec.call == "execve" and outcomes[0].verdict == "agree"
    # the model's execve builds the image; recorded with ASLR on, its bases are not in
    # the trace (the replay says so): only calls on it (RELRO mprotects) may differ,
    # never one on a mapping the trace created
    assert rp.partial is None or "ASLR on" in rp.partial
    created = [(o.rec.ret, o.rec.ret + o.rec.args[1]) for o in outcomes
               if o.rec.call == "mmap" and o.rec.ret is not None]
    bad = [(o.rec.line, format_args(o.rec), o.model) for o in outcomes
           if o.verdict == "differ" and (o.rec.call != "mprotect" or any(
               s <= o.rec.args[0] < e for s, e in created))]
    assert not bad
    names = {v.name for v in rp.process().vmas()}
    assert any(n and "libc.so" in n for n in names)
    assert trace.skipped      # newfstatat, read, ... counted, not replayed
    assert all(o.rec.call in ADDR_RESULT | {"munmap", "mprotect", "madvise", "open",
                                            "close", "execve", "exit", None}
               or o.verdict != "differ" for o in outcomes)


def test_model_placement_matches_the_kernel(built, strace, tmp_path):
    """Left to choose addresses itself (mmap_base from the maps dump), the model picks
    the ones the kernel picked."""
    prefix = str(tmp_path / "snap.")
    out = str(tmp_path / "trace.txt")
    r = subprocess.run([strace, "-f", "-o", out, built["mmapseq"], prefix,
                        str(tmp_path / "mapped.file")], capture_output=True, timeout=120)
    assert r.returncode == 0
    _r, outcomes = replay_and_compare(out, prefix, placement="model")
    assert not [o for o in outcomes if o.verdict == "placement"]
