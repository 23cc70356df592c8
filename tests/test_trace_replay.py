"""Replay: verdicts, explanations, placement, processes, the CLI functions and the
views, on the bundled SGX demo trace and on small synthetic traces."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vmsim.cli.main import main
from vmsim.trace.demo import START_MAPS, build_demo_records, demo_trace_path
from vmsim.trace.format import dumps_trace, parse_jsonl
from vmsim.trace.load import load_trace
from vmsim.trace.replay import Replayer, summarize
from vmsim.trace.strace import parse_strace
from vmsim.trace.views import render

HERE = os.path.dirname(__file__)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# --------------------------------------------------------------------------- the demo

@pytest.fixture(scope="module")
def demo():
    r = Replayer(load_trace(demo_trace_path()))
    return r, r.run_all()


def test_demo_every_call_agrees(demo):
    r, outcomes = demo
    s = summarize(outcomes)
    assert s["differ"] == s["skipped"] == s["divergent"] == 0
    assert s["refused_as_recorded"] == 4
    r.process().mm.validate()


def test_demo_explains_every_refusal(demo):
    _r, outcomes = demo
    refused = [o for o in outcomes if o.rec.err]
    assert [(o.rec.call, o.rec.err) for o in refused] == [
        ("mprotect", "EACCES"), ("mmap", "EACCES"), ("mmap", "EACCES"), ("mmap", "EINVAL")]
    why = [" ".join(o.why) for o in refused]
    assert "was added with r-x, rwx was asked" in why[0] and "->mprotect" in why[0]
    assert "was added with r-x, rwx was asked" in why[1] and "sgx_mmap" in why[1]
    assert "already unmapped" in why[1]
    assert "outside ELRANGE" in why[2]
    assert "MAP_SHARED only" in why[3]


def test_demo_records_are_reproducible():
    """The bundled trace is what the loader does on the model today (but the SIGSTRUCT,
    signed with a fresh key when rebuilt)."""
    fresh = build_demo_records()
    bundled = load_trace(demo_trace_path()).records

    def shape(recs):
        return [(r.call, [a if not isinstance(a, dict) else
                          {k: v for k, v in a.items() if k != "sigstruct"} for a in r.args],
                 r.ret, r.err) for r in recs]
    assert shape(fresh) == shape(bundled)


def test_demo_main_output(capsys):
    assert main(["demo", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vmsim: the Linux 6.18 memory-map layer")
    assert "refused" in out and "why: SGX: page 0x" in out
    assert "the model agrees with every recorded call" in out
    assert "/dev/sgx_enclave" in out and "# enclave (initialized) pages declared:" in out
    assert "r-x REG" in out and "rw- TCS" in out


def test_demo_json(capsys):
    assert main(["demo", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[-1]["status"] == 0 and "/dev/sgx_enclave" in lines[-1]["maps"]
    refused = [x for x in lines[:-1] if x.get("recorded", "").startswith("-1")]
    assert len(refused) == 4 and all(x["why"] for x in refused)


def test_bare_entry_runs_the_demo():
    r = subprocess.run([sys.executable, "-m", "vmsim"], capture_output=True,
                       text=True, cwd=os.path.join(HERE, ".."))
    assert r.returncode == 0 and "verdict: the model agrees" in r.stdout
    assert "\x1b[" not in r.stdout         # piped: plain


# --------------------------------------------------------------------------- verdicts

def test_divergence_exit_1(tmp_path, capsys):
    recs = load_trace(demo_trace_path()).records
    bad = next(r for r in recs if r.call == "mprotect" and r.err == "EACCES")
    bad.err, bad.ret = None, 0          # pretend the kernel allowed RWX
    path = write(tmp_path, "t.jsonl", dumps_trace(recs, START_MAPS))
    assert main(["replay", path, "--color", "never", "--form", "none"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "model: -1 EACCES" in out
    assert "was added with r-x" in out


def test_placement_trace_and_model(tmp_path, capsys):
    text = ('{"call": "mmap", "args": ["NULL", 8192, "PROT_READ|PROT_WRITE", '
            '"MAP_PRIVATE|MAP_ANONYMOUS", -1, 0], "ret": "0x7e0000000000"}\n'
            '{"call": "munmap", "args": ["0x7e0000001000", 4096], "ret": 0}\n'
            '{"call": "mprotect", "args": ["0x7e0000001000", 4096, "PROT_READ"], '
            '"err": "ENOMEM"}\n')
    path = write(tmp_path, "p.jsonl", text)
    r = Replayer(parse_jsonl(text))
    assert [o.verdict for o in r.run_all()] == ["agree"] * 3
    assert r.process().vmas()[0].start == 0x7E0000000000
    r = Replayer(parse_jsonl(text), placement="model")
    outs = r.run_all()
    assert [o.verdict for o in outs] == ["placement", "agree", "agree"]
    assert "the model placed it at" in outs[0].note
    assert main(["replay", path, "--placement", "model", "--form", "none"]) == 0
    assert "moved" in capsys.readouterr().out


def test_strace_sgx_pointers_are_skipped_with_the_reason():
    t = parse_strace('openat(AT_FDCWD, "/dev/sgx_enclave", O_RDWR) = 3</dev/sgx_enclave>\n'
                     "ioctl(3</dev/sgx_enclave>, SGX_IOC_ENCLAVE_CREATE, 0x7ffc4d1e2a30) = 0\n"
                     "mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3</dev/sgx_enclave>, 0) = -1 "
                     "EINVAL (Invalid argument)\n")
    outs = Replayer(t).run_all()
    assert [o.verdict for o in outs] == ["agree", "skipped", "agree"]
    assert "bare pointer" in outs[1].note
    assert "MAP_SHARED only" in outs[2].why[0]


def test_fork_child_has_its_own_copy_and_vfork_exec_is_followed():
    """A vfork child borrows its parent's mm until its execve, which the model runs in
    a process of its own: the child's later calls are replayed there."""
    t = parse_strace(
        "10 mmap(0x7e0000000000, 16384, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|"
        "MAP_FIXED, -1, 0) = 0x7e0000000000\n"
        "10 fork() = 11\n"
        "11 munmap(0x7e0000000000, 16384) = 0\n"
        "10 vfork() = 12\n"
        '12 execve("/bin/true", ["true"], 0x7ffd /* 1 var */) = 0\n'
        "12 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n"
        "10 mprotect(0x7e0000000000, 4096, PROT_READ) = 0\n"
        "11 +++ exited with 0 +++\n")
    r = Replayer(t)
    outs = r.run_all()
    assert [o.verdict for o in outs] == ["agree", "env", "agree", "env", "agree", "agree",
                                         "agree", "event"]
    assert "environment is not in the trace" in outs[4].note
    parent = r.process()
    assert [v.perms for v in parent.vmas() if v.start >= 0x7E0000000000][:2] == \
        ["r--p", "rw-p"]
    assert not any(v.start == 0x7E0000000000 for v in r.process(11).vmas())
    child = r.process(12)
    assert child is not parent and any(v.name.endswith("/true") for v in child.vmas() if v.name)
    assert not any(v.start == 0x7F0000000000 for v in parent.vmas())


def test_brk_start_taken_from_the_trace():
    t = parse_strace("brk(NULL) = 0x5555555a0000\nbrk(0x5555555c1000) = 0x5555555c1000\n")
    r = Replayer(t)
    outs = r.run_all()
    assert [o.verdict for o in outs] == ["agree", "agree"]
    assert "start_brk taken from the trace" in outs[0].note
    assert any(v.name == "[heap]" and v.start == 0x5555555A0000 for v in r.process().vmas())


# --------------------------------------------------------------------------- views

def test_views_forms(demo, tmp_path, capsys):
    r, _ = demo
    p = r.process()
    plain = render(p, "maps", annotate=False)
    assert plain == p.maps()
    pm = render(p, "pmap")
    assert pm.splitlines()[-1].startswith(" total ") and "[ stack ]" in pm
    assert "rw-s-" in pm and "sgx_enclave" in pm
    assert render(p, "smaps") == p.smaps()
    maps = write(tmp_path, "m.maps", START_MAPS)
    assert main(["maps", "--maps", maps, "--no-annotate", "--color", "never"]) == 0
    assert capsys.readouterr().out == START_MAPS
    assert main(["maps", demo_trace_path(), "--form", "pmap", "--color", "never"]) == 0
    assert " total " in capsys.readouterr().out


def test_colour_only_when_asked_or_a_terminal(capsys):
    pytest.importorskip("rich")
    assert main(["maps", demo_trace_path(), "--color", "always"]) == 0
    assert "\x1b[" in capsys.readouterr().out
    assert main(["maps", demo_trace_path()]) == 0           # captured: not a terminal
    assert "\x1b[" not in capsys.readouterr().out


def test_core_and_trace_import_without_rich():
    code = ("import sys, vmsim, vmsim.cli.trace, vmsim.trace.replay, vmsim.trace.views, "
            "vmsim.trace.strace, vmsim.trace.demo; assert 'rich' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=os.path.join(HERE, ".."))
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- issue #10

def test_replay_from_execve_builds_the_start_state():
    """No dump: the model's execve lays out the image, ld.so, the vDSO and the stack."""
    r = Replayer(parse_strace('execve("/bin/true", ["true"], []) = 0\nbrk(NULL) = 0x1\n'))
    outs = r.run_all()
    assert outs[0].verdict == "agree" and r.partial is not None and "ASLR on" in r.partial
    names = {v.name for v in r.process().vmas()}
    assert {"[stack]", "[vdso]"} <= names and any(n and n.endswith("true") for n in names)


def test_a_trace_without_execve_is_partial():
    r = Replayer(parse_strace("mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
                              " = 0x7f0000000000\n"))
    r.run_all()
    assert r.partial and r.partial.startswith("partial: the image and the initial stack")


def test_threads_share_one_fd_table():
    """CLONE_FILES: an fd one thread opens is the other's; closing it once closes it."""
    t = parse_strace(
        "10 clone(child_stack=0x7f0000001000, flags=CLONE_VM|CLONE_FS|CLONE_FILES|"
        "CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM) = 11\n"
        '11 openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3\n'
        "10 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0) = 0x7f0000100000\n"
        "10 close(3) = 0\n"
        "11 close(3) = -1 EBADF (Bad file descriptor)\n")
    r = Replayer(t)
    outs = r.run_all()
    assert [o.verdict for o in outs] == ["env", "agree", "agree", "agree", "env"]
    assert r.procs[10].fds is r.procs[11].fds and 3 not in r.procs[10].fds


def test_directory_opens_do_not_leak_fds():
    opens = "".join('openat(AT_FDCWD, "/usr", O_RDONLY|O_DIRECTORY) = 3\nclose(3) = 0\n'
                    for _ in range(1100))
    r = Replayer(parse_strace(opens))
    outs = r.run_all()
    assert all(o.verdict in ("agree", "env") for o in outs)
    assert len(r.process().files) == 3          # stdin, stdout, stderr


def test_unlink_of_a_mapped_file_shows_deleted(tmp_path):
    path = str(tmp_path / "data")
    with open(path, "wb") as f:
        f.write(b"x" * 8192)
    r = Replayer(parse_strace(
        f'openat(AT_FDCWD, "{path}", O_RDWR) = 3\n'
        "mmap(NULL, 8192, PROT_READ, MAP_SHARED, 3, 0) = 0x7f0000100000\n"
        f'unlink("{path}") = 0\n'))
    outs = r.run_all()
    assert [o.verdict for o in outs] == ["agree", "agree", "agree"]
    assert f"{os.path.realpath(path)} (deleted)" in r.process().maps()


def test_placement_trace_takes_the_recorded_address_when_free():
    """A non-fixed mapping lands exactly at the recorded address when that range is
    free in the model, even where the kernel would pad it for THP alignment."""
    r = Replayer(parse_strace("mmap(NULL, 4194304, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
                              " = 0x7f0000001000\n"))
    (out,) = r.run_all()
    assert out.verdict == "agree" and out.model == ("ok", 0x7F0000001000)
