"""`vmsim diff`: the scenario format, the fuzz budget against the host kernel, the
shrinker, the recorded divergences and the CLI.

Environment:
  VMSIM_FUZZ_SECONDS   time budget of the random differential run (default 120)
  VMSIM_FUZZ_SEED      its seed (default 1)
Tests needing the host kernel are skipped with the reason when the oracle cannot
run (not Linux x86_64, no C compiler).
"""

import errno
import json
import os
import pathlib
import subprocess
import sys

import pytest

import vmsim
from vmsim.diff import fuzz, shrink
from vmsim.diff import scenario as S
from vmsim.diff.model import run_model
from vmsim.diff.normalise import Normaliser, normalise_expect
from vmsim.uapi import U64

ROOT = pathlib.Path(__file__).resolve().parents[1]
DIVERGENCES = sorted((ROOT / "tests" / "divergences").glob("*.scn"))

#: divergences accepted as deliberate deviations of the model, with the reason.
#: (Empty: every divergence found is a model bug to fix; see tests/divergences/.)
DOCUMENTED_DEVIATIONS: dict = {}


# the `oracle` and `kw` fixtures live in conftest.py


# --------------------------------------------------------------------------- format

STRACE = """\
mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f8a3c2b1000
[pid  1234] mprotect(0x7f8a3c2b1000, 4096, PROT_READ) = 0 <0.000012>
openat(AT_FDCWD, "/tmp/x\\n\\0", O_RDWR|O_CREAT|O_CLOEXEC, 0644) = 3
munmap(0x7f8a3c2b1000, 4096) = -1 EINVAL (Invalid argument)
--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---
pwrite64(3, "ab"..., 4, 0) = 4
+++ exited with 0 +++
"""


def test_parser_accepts_strace_lines():
    sc = S.parse(STRACE, "strace.txt")
    names = [c.name for c in sc.calls]
    assert names == ["mmap", "mprotect", "open", "munmap", "pwrite64"]
    env = {"W": S.WINDOW_BASE, "B": S.DEFAULT_BRK}
    mm = sc.calls[0]
    assert mm.values(env) == [0, 4096, 3, 0x22, -1, 0]
    assert mm.expect.kind == "ok" and mm.expect.value.eval(env) == 0x7F8A3C2B1000
    assert sc.calls[2].values(env) == ["/tmp/x\n\0", 0o2000102, 0o644]
    assert sc.calls[3].expect.kind == "err" and sc.calls[3].expect.errname == "EINVAL"
    assert sc.calls[4].values(env)[1] == b"ab\0\0"          # truncated buffer padded


def test_parser_pseudo_calls_and_relative_addresses():
    sc = S.parse('touch(W+0x1000, "w") = SIGSEGV {si_code=SEGV_ACCERR, si_addr=W+0x1000}\n'
                 'brk(B+2*4096) = B+0x2000\npeek(W) = 0x41\nfork() = 0\n')
    env = {"W": S.WINDOW_BASE, "B": S.DEFAULT_BRK}
    assert sc.calls[0].values(env) == [S.WINDOW_BASE + 0x1000, "w"]
    assert sc.calls[0].expect.code == "SEGV_ACCERR"
    assert sc.calls[1].values(env) == [S.DEFAULT_BRK + 0x2000]


def test_outside_token_round_trip():
    env = {"W": S.WINDOW_BASE, "B": S.DEFAULT_BRK}
    text = "mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = outside\n"
    sc = S.parse(text)
    assert normalise_expect(sc.calls[0], env, Normaliser(env)) == ("ok", "outside")
    assert S.dump(sc, env) == text


@pytest.mark.parametrize("text,reason", [
    ("mmap(W, 4096, PROT_READ, MAP_PRIVATE, -1)\n", "takes 6 arguments"),
    ("mprotect(W, 4096, PROT_BOGUS)\n", "unknown name 'PROT_BOGUS'"),
    ("frobnicate(1)\n", "unsupported call"),
    ("mprotect(W, 4096, PROT_READ) = what\n", "unknown name"),
    ("mprotect(W, 4096, PROT_READ\n", "missing ')'"),
    ('touch(W, "q")\n', "touch mode"),
    ("munmap(W, 4096) = -1 EWHAT (x)\n", "unknown errno"),
])
def test_malformed_lines_give_file_line_reason(text, reason):
    with pytest.raises(S.ScenarioError) as ei:
        S.parse("# ok\n" + text, "x.scn")
    assert ei.value.file == "x.scn" and ei.value.line == 2
    assert reason in ei.value.reason


def test_writer_round_trip():
    env = {"W": S.WINDOW_BASE, "B": S.DEFAULT_BRK}
    for i in range(30):
        sc = fuzz.scenario_for(7, i, env)
        text = S.dump(sc, env)
        again = S.parse(text)
        def norm(calls):       # integers as the syscall ABI sees them (64-bit)
            return [[v & U64 if isinstance(v, int) else v for v in c.values(env)]
                    for c in calls]
        assert norm(again.calls) == norm(sc.calls)
        assert S.dump(again, env) == text


def test_cli_malformed_exit_2(tmp_path):
    bad = tmp_path / "bad.scn"
    bad.write_text("mmap(W, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\nnot a call\n")
    r = subprocess.run([sys.executable, "-m", "vmsim", "diff", str(bad)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{bad}:2: " in r.stderr


def test_cli_usage_exit_2():
    r = subprocess.run([sys.executable, "-m", "vmsim", "diff"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2


# --------------------------------------------------------------------------- against the host

def test_cli_scenario_and_json(oracle, tmp_path):
    f = tmp_path / "ok.scn"
    f.write_text("mmap(W+0x1000, 8192, PROT_READ|PROT_WRITE, "
                 "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = W+0x1000\n"
                 "mprotect(W+0x1000, 4096, PROT_READ) = 0\n"
                 "touch(W+0x1000, \"w\") = SIGSEGV {si_code=SEGV_ACCERR, si_addr=W+0x1000}\n")
    r = subprocess.run([sys.executable, "-m", "vmsim", "diff", "--json", str(f)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["scenarios"][0]["divergence"] is None
    # a wrong expectation is reported (the kernel disagrees with the file)
    f.write_text("mprotect(W, 4096, PROT_READ) = 0\n")
    r = subprocess.run([sys.executable, "-m", "vmsim", "diff", str(f)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "expected" in r.stdout


@pytest.mark.parametrize("path", DIVERGENCES, ids=[p.stem for p in DIVERGENCES])
def test_recorded_divergence_fixed(oracle, kw, path):
    """Each file is a minimal scenario on which the model diverged from this kernel
    (its first line says how).  They pass once the model is fixed."""
    from vmsim.diff.compare import diff
    sc = S.load(str(path))
    d, _, _ = diff(oracle, sc, kw)
    assert d is None, d.describe(oracle.env)


def test_fuzz_budget(oracle, kw, tmp_path):
    """A fixed budget of random sequences against the host kernel: no divergence
    but the documented deviations."""
    seconds = float(os.environ.get("VMSIM_FUZZ_SECONDS", "120"))
    seed = int(os.environ.get("VMSIM_FUZZ_SEED", "1"))
    rep = fuzz.campaign(oracle, 10 ** 9, seed, kw, out_dir=str(tmp_path),
                        seconds=seconds, max_shrink_tries=300)
    assert rep.scenarios > 0
    bad = [(i, d, sh, p) for i, d, sh, p in rep.divergences
           if d.signature() not in DOCUMENTED_DEVIATIONS]
    msg = "\n\n".join(f"scenario {i} (shrunk to {len(sh)} calls, {p}):\n"
                      + d.describe(oracle.env) + "\n" + S.dump(S.Scenario(sh), oracle.env)
                      for i, d, sh, p in bad)
    assert not bad, f"{len(bad)} distinct divergences in {rep.scenarios} scenarios:\n{msg}"


def test_shrinker_reduces_injected_fault(oracle, kw, monkeypatch, tmp_path):
    """Inject a wrong errno (mprotect to PROT_READ answers EPERM) and show that the
    shrinker reduces a long random scenario to a few lines."""
    real = vmsim.Process.mprotect

    def wrong(self, addr, length, prot):
        if prot == vmsim.PROT_READ:
            raise OSError(errno.EPERM, "injected")
        return real(self, addr, length, prot)

    monkeypatch.setattr(vmsim.Process, "mprotect", wrong)
    from vmsim.diff.compare import first_divergence
    for i in range(500):
        gen = fuzz.Generator(f"shrink:{i}", oracle.env, min_len=20, max_len=30)
        sc = gen.scenario()
        ks = oracle.run(sc)
        ms = run_model(sc, kw, oracle.env)
        d = first_divergence(sc, ks, ms, oracle.env, check_expected=False)
        if d is not None and d.call.name == "mprotect" and d.index >= 10:
            break
    else:
        pytest.fail("no scenario hit the injected fault")
    shrunk = shrink.shrink_divergence(oracle, kw, sc, d)
    assert len(shrunk) <= 3, S.dump(S.Scenario(shrunk), oracle.env)
    assert shrunk[-1].name == "mprotect"
    assert shrunk[-1].args[2] == vmsim.PROT_READ
    path = tmp_path / "shrunk.scn"
    ks2 = oracle.run(S.Scenario(shrunk))
    fuzz.write_divergence(str(path), shrunk, ks2, oracle.env, "injected fault")
    again = S.load(str(path))
    assert len(again.calls) == len(shrunk)
