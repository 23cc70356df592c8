"""Replaying runs recorded with ASLR on (issue #10): the replay reads the random bases of
each exec back from the calls after it (vmsim.trace.aslr) and runs the model's execve
with them (vmsim.fs.exec.ExecBases), so that every later call lands where it did.

Real programs of this machine are recorded randomized (vmsim.trace.record with
aslr=True: strace's calls and the maps of the same run as its exit_group began), three
runs each, and replayed with the model choosing every address itself: no call differs
or is placed elsewhere, the verdict is partial naming the stack's base only (and, for a
static non-PIE program that maps nothing, mmap_base), and the final maps are the real
ones but for the [stack] line. The exec with given bases is compared with native
randomized execs at their exec stop.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import vmsim
from vmsim.fs.exec import ExecBases
from vmsim.trace.record import record, recording_trace, snapshot_maps
from vmsim.trace.replay import Replayer, format_args, summarize
from vmsim.trace.strace import parse_strace

#: the calls whose every address the replay must reproduce
MM_CALLS = frozenset({"mmap", "munmap", "mprotect", "mremap", "brk"})
STACK_GAP = "the stack's base is not in the trace: [stack] is placed as with ASLR off"
HELLO_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
	char *p = malloc(100000);
	printf("%p\n", (void *)p);
	free(p);
	return 0;
}
"""
#: how each test program is built: (id, gcc flags)
BUILDS = [("static-pie", ["-static-pie"]), ("no-pie", ["-no-pie"]), ("static", ["-static"])]
RUNS = range(3)


@pytest.fixture(scope="module")
def strace():
    path = shutil.which("strace")
    if path is None:
        pytest.skip("strace is not installed")
    if subprocess.run([path, "-f", "-o", os.devnull, "true"], capture_output=True).returncode:
        pytest.skip("strace cannot trace here (ptrace not permitted?)")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The test program built each way gcc can build it here (id -> path)."""
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("no gcc")
    d = tmp_path_factory.mktemp("aslr")
    src = d / "hello.c"
    src.write_text(HELLO_C)
    out = {}
    for name, flags in BUILDS:
        exe = str(d / f"hello-{name}")
        if subprocess.run([cc, "-O1", *flags, "-o", exe, str(src)],
                          capture_output=True).returncode == 0:
            out[name] = exe
    return out


def _program(name: str, built: dict[str, str]) -> list[str]:
    if name == "ls":
        return [shutil.which("ls") or "/bin/ls", "/"]
    if name == "python3":
        python = shutil.which("python3", path="/usr/bin:/bin")
        if python is None:
            pytest.skip("no python3 in /usr/bin")
        return [python, "-c", "pass"]
    if name == "bash":
        if shutil.which("bash") is None:
            pytest.skip("no bash")
        return ["bash", "-c", "ls / > /dev/null; true"]
    if name not in built:
        pytest.skip(f"gcc cannot build a {name} program here")
    return [built[name]]


def _unchecked_mm(outcomes) -> list:
    """The mm calls the model did not reproduce at their recorded addresses."""
    return [(o.rec.line, format_args(o.rec), o.verdict, o.model, o.note) for o in outcomes
            if o.rec.call in MM_CALLS and (o.verdict != "agree" or o.note is not None)]


def _without(maps: str, unknown: tuple[str, ...]) -> list[str]:
    """The maps lines but those of the named VMAs."""
    return [ln for ln in maps.splitlines() if not ln.endswith(unknown)]


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("name", ["ls", "python3", "static-pie", "no-pie", "static", "bash"])
def test_aslr_run_replays_at_the_recorded_addresses(strace, built, name, run):
    argv = _program(name, built)
    trace = recording_trace(record(argv, aslr=True))
    execs = [r for r in trace.records if r.call == "execve"]
    for placement in ("model", "trace"):
        r = Replayer(trace, placement=placement, kernel_kwargs={"pkeys": bool(trace.pkeys)})
        outcomes = r.run_all()
        assert summarize(outcomes, placement)["divergent"] == 0
        assert not _unchecked_mm(outcomes)
        expected = {f"{rec.args[0]} ran with ASLR on, and {STACK_GAP}" for rec in execs}
        unknown = set(r.gaps) - expected
        assert set(r.gaps) >= expected
        unplaced: tuple[str, ...] = ("[stack]",)
        if name == "static":        # maps nothing before main: mmap_base is not shown
            assert len(unknown) == 1 and "mmap_base is not in the trace" in unknown.pop()
            unplaced += ("[vvar]", "[vvar_vclock]", "[vdso]")
        else:
            assert not unknown, r.partial
        for out in (o for o in outcomes if o.rec.call == "execve"):
            assert out.verdict == "agree" and "ASLR was on; taken from the trace: " in out.note
            assert "start_brk" in out.note
    assert trace.exit_maps is not None
    assert _without(r.process().maps(), unplaced) == _without(trace.exit_maps, unplaced)


def test_plain_strace_log_names_what_it_lacks(strace, tmp_path):
    """`strace -f -o log ls /`, no -v: the environment and the stack's base are what the
    replay cannot know; every mm call agrees all the same."""
    log = tmp_path / "ls.log"
    ls = shutil.which("ls") or "/bin/ls"
    assert subprocess.run([strace, "-f", "-o", str(log), ls, "/"],
                          capture_output=True).returncode == 0
    r = Replayer(parse_strace(log.read_text(), str(log)), placement="model")
    outcomes = r.run_all()
    assert not _unchecked_mm(outcomes)
    assert r.gaps == [f"{ls} ran with ASLR on, and {STACK_GAP}",
                      "the environment of the first execve is not in the trace (strace -v "
                      "shows it; `vmsim record` records it): the [stack] may start elsewhere"]
    assert r.partial is not None and r.partial.startswith("partial: ")


def test_aslr_off_run_takes_no_bases(strace):
    """Recorded with ASLR off, the first calls agree with the model's exec: nothing is
    inferred and nothing is partial."""
    trace = recording_trace(record(["/bin/true"]))
    r = Replayer(trace, kernel_kwargs={"pkeys": bool(trace.pkeys)})
    outcomes = r.run_all()
    assert r.partial is None and not _unchecked_mm(outcomes)
    assert outcomes[0].note is None


# --- the model's exec with given bases, against native randomized execs ---------------

def _first(maps: str, what) -> list[str]:
    return next(ln.split() for ln in maps.splitlines() if what(ln))


def _start(fields: list[str]) -> int:
    return int(fields[0].split("-")[0], 16)


def _end(fields: list[str]) -> int:
    return int(fields[0].split("-")[1], 16)


def _bases_between(zero: str, native: str, pie: bool) -> ExecBases:
    """The draws that move the model's exec with ExecBases() onto a native exec's maps:
    the image's first VMA, ld.so's, the end of [stack]."""
    def ld(ln):
        return "/ld-linux" in ln
    def stack(ln):
        return ln.endswith("[stack]")
    return ExecBases(
        mmap_rnd=_start(_first(zero, ld)) - _start(_first(native, ld)),
        stack_rnd=_end(_first(zero, stack)) - _end(_first(native, stack)),
        load_rnd=_start(native.split()) - _start(zero.split()) if pie else 0)


def _exec(argv: list[str], bases: ExecBases) -> vmsim.Process:
    p = vmsim.Kernel().spawn()
    p.execve(argv[0], argv, [f"{k}={v}" for k, v in os.environ.items()], bases=bases)
    p.mm.validate()
    return p


@pytest.mark.parametrize("name", ["true", "no-pie"])
def test_exec_with_bases_is_the_native_randomized_exec(built, name):
    argv = ["/bin/true"] if name == "true" else _program(name, built)
    zero = _exec(argv, ExecBases()).maps()
    layouts = set()
    for _ in RUNS:
        native, _, _ = snapshot_maps(argv, aslr=True)
        assert native is not None
        bases = _bases_between(zero, native, pie=name == "true")
        assert _exec(argv, bases).maps() == native
        layouts.add(bases)
    assert len(layouts) == len(RUNS)        # three randomizations, each reproduced


def test_zero_bases_are_a_randomized_exec():
    """ExecBases() is PF_RANDOMIZE with every draw 0: mmap_base leaves room for the
    largest stack randomization (16 GiB) below the 8 MiB stack and its guard gap, and
    brk skips a page past the image; the stack itself stays at the top."""
    off = vmsim.Kernel().spawn(argv=["/bin/true"])
    zero = _exec(["/bin/true"], ExecBases())
    assert off.mm.mmap_base == 0x7FFFFFFFF000 - (128 << 20)
    assert zero.mm.mmap_base == 0x7FFFFFFFF000 - (8 << 20) - (0x3FFFFF << 12) - (1 << 20)
    assert zero.mm.start_brk == off.mm.start_brk + 4096
    assert _first(zero.maps(), lambda ln: ln.endswith("[stack]"))[0] == \
        _first(off.maps(), lambda ln: ln.endswith("[stack]"))[0]


@pytest.mark.parametrize("field,value", [
    ("mmap_rnd", 1 << 40), ("mmap_rnd", 4095), ("stack_rnd", 0x400000 << 12),
    ("stack_align", 8192), ("load_rnd", -4096), ("tables_align", -1), ("brk_rnd", 1 << 30)])
def test_bases_out_of_the_kernels_range_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        ExecBases(**{field: value})
    assert not ExecBases.fits(field, value)


def test_seeded_draws_stay_in_range():
    import random
    rng = random.Random(7)
    for _ in range(200):
        ExecBases.draw(rng)         # __post_init__ checks each field
