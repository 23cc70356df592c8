"""vmsim check: the exhaustive explorer of call sequences (vmsim.check, docs/check.md).

A small configuration keeps it quick: an enclave of two pages (a TCS, intent rw-, and a
page added r-x), prots r-- and rw-, and the mprotect, mremap and access groups.
"""

import functools
import json
import struct
import subprocess
import sys

import pytest

from vmsim.arch.x86 import vdso
from vmsim.arch.x86.sgx.defs import EENTER, ERESUME
from vmsim.check import designs, report
from vmsim.check.expand import Job
from vmsim.check.explore import Counterexample, explore
from vmsim.check.state import enclaves, snapshot, state_key
from vmsim.check.world import Config, Op, apply, ops, start
from vmsim.cli.main import main
from vmsim.diff import fuzz
from vmsim.trace.format import parse_jsonl

SMALL = Config(intents=("rw-", "r-x"), prots=("r--", "rw-"),
               groups=("mprotect", "mremap", "access"))
PROPS = ("intent", "mprotect", "validate", "leak")


def job(design, config=SMALL, props=PROPS):
    return Job(config, design, props)


@functools.cache
def run(design, depth):
    """explore() of the small configuration, once per (design, depth) in this session."""
    return explore(job(design), depth)


def test_exact_counts_at_depth_2_for_the_merged_design():
    res = run("merged", 2)
    assert (res.states, res.transitions, res.depth_reached) == (56, 429, 2)
    assert res.counterexamples == [] and res.violations == {}


def test_the_merged_design_meets_the_mremap_hole_at_depth_3():
    """The hole docs/sgx.md describes: mremap moves a PTE to an address whose intent
    is laxer, and ->mprotect checks the intent of the new address."""
    res = run("merged", 3)
    assert (res.states, res.transitions) == (121, 1848)
    (cex,) = res.counterexamples
    assert cex.property == "intent" and cex.length == 3
    assert cex.labels == ["touch(E+0x1000, 'r')", "mremap(E+0x1000, 0x1000, 0x1000, 3, E)",
                          "mprotect(E, 0x1000, 3)"]


def test_no_hook_maps_an_enclave_page_beyond_its_intent():
    res = run("none", 2)
    first = res.counterexamples[0]
    assert first.property == "intent" and first.length == 2
    assert first.labels[0].startswith("touch(") and first.labels[1].startswith("mprotect(")
    assert "its intent is" in first.message


def test_check_only_v40_driver_breaks_mprotects_postcondition():
    res = run("v40-check-only", 1)
    assert [c.property for c in res.counterexamples] == ["mprotect"]
    assert res.counterexamples[0].length == 1
    assert "returned 0 but" in res.counterexamples[0].message


def test_the_v40_driver_that_does_the_fixup_keeps_every_property():
    res = explore(job("v40"), 2)
    assert res.violations == {}


@pytest.mark.parametrize("design", ["none", "v40-check-only", "merged"])
def test_every_counterexample_replays(tmp_path, design, capsys):
    """Plain `vmsim replay` takes the design from the trace header; the accesses are
    access records, replayed and compared."""
    depth = 3 if design == "merged" else 2
    res = run(design, depth)
    assert res.counterexamples
    for n, cex in enumerate(res.counterexamples):
        report.write(job(design), cex, str(tmp_path), n)
        trace = parse_jsonl(open(cex.trace).read(), cex.trace)
        assert trace.design == design
        touches = sum(label.startswith("touch(") for label in cex.labels)
        assert sum(r.event == "access" for r in trace.records) == touches
        replayed = report.replay(cex.trace)
        verdicts = {o.verdict for o in replayed.outcomes}
        assert verdicts == {"agree"}, (cex.trace, verdicts)
        assert main(["replay", cex.trace, "--json", "--form", "none"]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["status"] == 0


def test_replay_design_option_overrides_the_header(tmp_path, capsys):
    """--design names the kernel to replay on whatever the header says; a design that
    does not exist is bad input (status 2, one line)."""
    cex = run("v40-check-only", 1).counterexamples[0]
    report.write(job("v40-check-only"), cex, str(tmp_path), 0)
    assert main(["replay", cex.trace, "--design", "v40-check-only", "-q", "--form", "none"]) == 0
    capsys.readouterr()
    assert main(["replay", cex.trace, "--design", "nonsense", "--form", "none"]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_workers_give_the_same_result():
    one = run("none", 2)
    two = explore(job("none"), 2, workers=2)
    assert (one.states, one.transitions, one.violations) == \
        (two.states, two.transitions, two.violations)
    assert [c.path for c in one.counterexamples] == [c.path for c in two.counterexamples]


def test_ray_local_cluster_gives_the_same_counts():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'vmsim[cluster]')")
    one = run("merged", 2)
    try:
        on_ray = explore(job("merged"), 2, workers=2, ray_address="local")
    finally:
        ray.shutdown()
    assert (one.states, one.transitions, one.violations) == \
        (on_ray.states, on_ray.transitions, on_ray.violations)


def test_state_key_ignores_object_identity_and_sees_contents():
    w = start(SMALL, designs.new_kernel("merged"))
    a, b = snapshot(w), snapshot(w)
    assert state_key(a) == state_key(b) == state_key(w)
    touch = next(op for op in ops(SMALL) if op.call == "touch" and op.args[1] == "r")
    apply(a, touch)
    assert state_key(a) != state_key(w)


EACCESS = Config(intents=("rw-", "r-x", "rw-", "---"), prots=("r--", "rw-"),
                 groups=("mprotect", "ioctl", "eaccess"))


def eaccess(page, mode):
    return Op("eaccess", "eaccess", (("E", 0), ("E", page * 0x1000), mode))


def tcs_cssa(world):
    (encl,) = enclaves(world)
    tcs = encl.pages[world.enclave.base >> 12].epc
    return struct.unpack_from("<II", tcs.data, 24)       # CSSA, NSSA


def test_enclave_access_outcomes_and_the_aex_state():
    """EEXIT after a permitted access; an AEX leaves CSSA incremented, no live thread
    (the World snapshots), and with CSSA == NSSA the next EENTER is #GP."""
    w = start(EACCESS, designs.new_kernel("merged"))
    assert tcs_cssa(w) == (0, 1)                        # OSSA: page 2, the one rw- page
    assert apply(snapshot(w), eaccess(2, "w")) == ("ok", 0)
    assert apply(snapshot(w), eaccess(1, "x")) == ("ok", 0)
    a = snapshot(w)
    vector, code, addr = apply(a, eaccess(1, "w"))[1:]
    assert (vector, code & 0x2, addr) == (14, 0x2, a.enclave.base + 0x1000)
    assert tcs_cssa(a) == (1, 1) and state_key(a) != state_key(w)
    b = snapshot(a)
    assert apply(b, eaccess(2, "r"))[:2] == ("eenter", 13)
    run = vdso.SgxEnclaveRun(tcs=b.enclave.base)
    with pytest.raises(RuntimeError, match="abandoned"):
        vdso.enter_enclave(b.main, run, ERESUME)


def test_eenter_below_nssa_works_from_the_architectural_state():
    cfg = Config(intents=("rw-", "rw-", "rw-", "r-x"), prots=("r--",), groups=("eaccess",))
    w = start(cfg, designs.new_kernel("merged"))
    assert tcs_cssa(w) == (0, 2)
    assert apply(w, eaccess(3, "w"))[0] == "aex"
    assert tcs_cssa(w) == (1, 2)
    assert apply(w, eaccess(1, "r")) == ("ok", 0)     # the second SSA frame
    assert apply(w, eaccess(0, "r"))[0] == "aex"       # a TCS page is not accessible
    assert tcs_cssa(w) == (2, 2)
    assert apply(w, eaccess(1, "r"))[:2] == ("eenter", 13)


def test_a_live_enclave_thread_refuses_a_copy():
    w = start(EACCESS, designs.new_kernel("merged"))
    run = vdso.SgxEnclaveRun(tcs=w.enclave.base)
    program = lambda ctx: ctx.write(w.enclave.base + 0x1000, b"x")   # noqa: E731
    assert vdso.enter_enclave(w.main, run, EENTER, program) == 0
    assert run.function == ERESUME
    with pytest.raises(TypeError, match="live thread"):
        snapshot(w)
    assert vdso.abandon_suspended(w.main) == 1
    assert tcs_cssa(snapshot(w)) == (1, 1)


def test_an_enclave_access_to_a_mapped_hole_takes_eaug():
    """SGX2: the driver's fault handler EAUGs the page (PENDING, RWX intent), and the
    access itself is a #PF with the SGX bit until the enclave EACCEPTs it."""
    w = start(EACCESS, designs.new_kernel("merged"))
    hole = w.enclave.base + 0x3000
    result = apply(w, eaccess(3, "r"))
    assert result[:2] == ("aex", 14) and result[2] & 0x8000 and result[3] == hole
    (encl,) = enclaves(w)
    page = encl.pages[hole >> 12]
    assert page.epc.pending and page.vm_max_prot_bits == 7


def test_enclave_accesses_are_trace_records_that_replay(tmp_path):
    """A path of enclave accesses (an AEX, EAUG, CSSA == NSSA) written as a trace:
    every access is an `access` record with its TCS, and the replay agrees."""
    alphabet = ops(EACCESS)
    path = tuple(alphabet.index(eaccess(page, mode))
                 for page, mode in ((2, "w"), (3, "r"), (2, "r")))
    cex = Counterexample("demo", "three enclave accesses", path,
                         [alphabet[i].label() for i in path])
    report.write(Job(EACCESS, "merged", PROPS), cex, str(tmp_path), 0)
    trace = parse_jsonl(open(cex.trace).read(), cex.trace)
    accesses = [r for r in trace.records if r.event == "access"]
    assert [r.exception[0] if r.exception else "ok" for r in accesses] == \
        ["ok", "aex", "eenter"]
    assert {o.verdict for o in report.replay(cex.trace).outcomes} == {"agree"}


def test_eaccess_search_holds_every_property():
    res = explore(Job(EACCESS, "merged", PROPS), 2)
    # an AEX writes the SSA frame's XSAVE area (enclu.aex()), so "write the SSA page's
    # first byte, then AEX" is the same state as the AEX alone: 2 states fewer than
    # when the AEX wrote nothing
    assert (res.states, res.transitions, res.violations) == (275, 943, {})


USER_PROPERTIES = """
def no_readonly_window(world):
    for vma in world.main.mm.tree:
        if world.window <= vma.start < world.window + 0x2000 and vma.flags & 7 == 1:
            return f"{vma.start:#x} is read-only"
    return None


def few_vmas(world):
    return len(world.main.mm.tree) < 8
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "check_user_props.py").write_text(USER_PROPERTIES)


def test_a_user_property_and_a_scenario_without_sgx(tmp_path, user_module):
    cfg = Config(intents=(), prots=("r--",), groups=("mmap", "mprotect"))
    props = ("mprotect", "check_user_props:no_readonly_window", "check_user_props:few_vmas")
    res = explore(Job(cfg, "merged", props), 2)
    assert list(res.violations) == ["check_user_props:no_readonly_window"]
    cex = res.counterexamples[0]
    assert cex.length == 2 and "is read-only" in cex.message
    report.write(Job(cfg, "merged", props), cex, str(tmp_path), 0)
    assert cex.scenario is not None
    text = open(cex.scenario).read()
    assert "mmap(W, 8192, PROT_READ|PROT_WRITE" in text and "mprotect(W" in text
    assert {o.verdict for o in report.replay(cex.trace, "merged").outcomes} == {"agree"}


def test_cli_exit_status_and_json(tmp_path, capsys):
    args = ["check", "--intents", "rw-,r-x", "--prots", "r--", "--ops", "mprotect",
            "--depth", "1", "--out", str(tmp_path)]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"design", "depth", "states", "transitions", "seconds", "properties",
            "counterexamples"} <= set(out)
    assert main(args + ["--design", "v40-check-only", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    cex = out["counterexamples"][0]
    assert cex["property"] == "mprotect" and cex["length"] == 1
    assert cex["trace"].endswith(".jsonl")
    assert main(args + ["--design", "v40-check-only"]) == 1
    assert "mprotect VIOLATED" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--design", "nonsense"], ["--depth", "-1"],
                                 ["--intents", "rw-,r-x,rw-"], ["--prots", "rwz"],
                                 ["--ops", "teleport"], ["--property", "nope"],
                                 ["--workers", "0"], ["--depth", "x"]])
def test_cli_bad_input_is_one_line_and_status_2(bad, capsys):
    assert main(["check", *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vmsim check: ") and err.count("\n") == 1


def test_vmsim_does_not_import_ray():
    code = ("import sys, vmsim, vmsim.check.explore, vmsim.cli.main; "
            "assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fuzz_workers_give_the_same_report(oracle, kw):
    """`vmsim diff --fuzz N --workers 2`: each worker compares with its own oracle;
    the report (shrinking stays in the parent) is the one of a single process."""
    one = fuzz.campaign(oracle, 12, 5, kw, shrink_each=False)
    two = fuzz.campaign(oracle, 12, 5, kw, shrink_each=False, workers=2)
    assert (one.scenarios, one.calls, one.signatures, one.skipped) == \
        (two.scenarios, two.calls, two.signatures, two.skipped)
