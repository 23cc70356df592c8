"""`vmsim run --record FILE`: a run on the model written as a trace that `vmsim replay`
replays with the all-agree verdict: every call agrees (0 DIFFERS, nothing skipped or
unchecked), the replay is complete (no `partial:`), and its final maps and VmFlags are
the exit snapshot's. Programs of this machine (true, ls, python3), a shell that forks
and execs (sh -c), and small programs of our own built at test time
(tests/test_run_cpu.py): threads, posix_spawn, fork and wait, a signal handler, a
static heap; one whose mm calls are refused and that a fault kills, and vmsim's SGX
host program loading its enclave, whose explanations under --trace are the replay's
own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("unicorn")

from test_run_cli import ENV, refused, workdir  # noqa: E402,F401  (fixtures)
from test_run_cpu import progs  # noqa: E402,F401  (fixture: the programs, built with gcc)

from vmsim.trace.format import SGX_IOCTL_NAMES, parse_jsonl  # noqa: E402

#: the verdicts of a replay in which every call agrees: ok/refused, a file or process
#: call taken as recorded, an event (a signal, an exit)
AGREEING = {"agree", "env", "event"}


def vmsim(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmsim", *args], cwd=cwd, env=ENV,
                          capture_output=True, timeout=600)


def record_and_replay(argv: list[str], cwd, trace) -> tuple[subprocess.CompletedProcess,
                                                             list[dict], dict]:
    """argv run with --record trace, then the trace replayed: the run, the replay's
    outcome per call and its summary (vmsim replay --json)."""
    run = vmsim(["run", "--record", str(trace), "--", *argv], cwd)
    replay = vmsim(["replay", "--json", "--form", "none", str(trace)], cwd)
    lines = [json.loads(line) for line in replay.stdout.decode().splitlines()]
    final = lines.pop()
    assert replay.returncode == final["status"]
    return run, lines, final


def assert_all_agree(outcomes: list[dict], final: dict) -> None:
    summary = final["summary"]
    assert [o for o in outcomes if o["verdict"] not in AGREEING] == []
    assert (summary["differ"], summary["skipped"], summary["unchecked"]) == (0, 0, 0)
    assert summary["partial"] is None and summary["final_differences"] == []
    assert final["status"] == 0


PROGRAMS = [
    ["true"],
    ["ls", "dir"],
    ["python3", "-c", "import json; print(json.dumps({'a': [1, 2.5, None]}))"],
    ["sh", "-c", "ls; true"],
    ["sh", "-c", "ls"],
]


@pytest.mark.parametrize("argv", PROGRAMS, ids=" ".join)
def test_programs_replay_agreeing(workdir, tmp_path, argv):  # noqa: F811
    run, outcomes, final = record_and_replay(argv, workdir, tmp_path / "run.jsonl")
    assert run.returncode == 0 and run.stderr == b""
    assert_all_agree(outcomes, final)
    assert final["summary"]["agree"] > 10


def test_trace_is_complete(workdir, tmp_path):  # noqa: F811
    """The header has the CPU facts and both snapshots; the trace starts with the
    execve that started the program (its argv and environment), holds a fork's child
    and its execve, and every call not recorded is counted by name."""
    trace_path = tmp_path / "sh.jsonl"
    vmsim(["run", "--record", str(trace_path), "--", "sh", "-c", "ls dir; true"], workdir)
    text = trace_path.read_text()
    header = json.loads(text.splitlines()[0])
    assert header["pkeys"] in (True, False)
    assert header["exec_maps"].splitlines()[0].endswith("/usr/bin/dash")
    assert header["exit_maps"].splitlines()[0].endswith("/usr/bin/dash")
    assert "VmFlags:" in header["exit_smaps"]
    assert header["skipped"]["rt_sigaction"] > 0 and "wait4" in header["skipped"]
    trace = parse_jsonl(text, str(trace_path))
    first = trace.records[0]
    assert (first.call, first.args, first.argv) == ("execve", ["/usr/bin/sh"],
                                                    ["sh", "-c", "ls dir; true"])
    assert sorted(first.envp or []) == sorted(f"{k}={v}" for k, v in ENV.items())
    pids = {r.pid for r in trace.records}
    assert len(pids) == 2
    child = [r for r in trace.records if r.pid != first.pid]
    execs = [r for r in child if r.call == "execve"]
    assert execs[-1].args == ["/usr/bin/ls"] and execs[-1].argv == ["ls", "dir"]
    assert all(r.err == "ENOENT" for r in execs[:-1])
    opened = [r for r in child if r.call == "open" and r.ret is not None]
    assert any(r.args[0] == "/lib/x86_64-linux-gnu/libc.so.6" and
               r.ret_path == "/usr/lib/x86_64-linux-gnu/libc.so.6" for r in opened)
    assert any(r.args[0] == os.path.join(str(workdir), "dir") for r in opened)


@pytest.mark.parametrize("name", ["threads", "spawn", "forkwait", "handler", "heap"])
def test_own_programs_replay_agreeing(progs, tmp_path, name):  # noqa: F811
    run, outcomes, final = record_and_replay([str(progs / name)], progs, tmp_path / "p.jsonl")
    assert run.stderr == b""
    assert_all_agree(outcomes, final)
    calls = {o["call"] for o in outcomes}
    if name in ("threads", "spawn", "forkwait"):
        assert len({o["pid"] for o in outcomes}) > 1 and calls & {"clone", "fork", "vfork"}


def test_refusals_replay_as_traced(workdir, refused, tmp_path):  # noqa: F811
    """Refused calls and a fatal fault: the replay agrees with each refusal, and the
    reasons --trace gave are the replay's, word for word."""
    trace = tmp_path / "refused.jsonl"
    run = vmsim(["run", "--trace", "--record", str(trace), "--", str(refused)], workdir)
    assert run.returncode == 128 + 11
    replay = vmsim(["replay", "--json", "--form", "none", str(trace)], workdir)
    lines = [json.loads(line) for line in replay.stdout.decode().splitlines()]
    final = lines.pop()
    assert_all_agree(lines, final)
    refusals = [o for o in lines if o.get("why")]
    assert [o["recorded"].split()[1] for o in refusals] == ["ENOMEM", "EINVAL", "EEXIST", "EPERM"]
    traced = [line.removeprefix("  why: ") for line in run.stderr.decode().splitlines()
              if line.startswith("  why: ")]
    assert traced[:-1] == [why for o in refusals for why in o["why"]]
    assert traced[-1].endswith("r--p does not allow writing")
    events = [(o["call"], o["text"]) for o in lines if o["verdict"] == "event"]
    assert events[0][0] == "signal" and events[0][1].startswith(
        "--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr=0x")
    assert events[-1] == ("killed", "+++ killed by SIGSEGV +++")


@pytest.fixture(scope="module")
def sgx_host(tmp_path_factory):
    """vmsim's SGX host program, its test enclave and a SIGSTRUCT file for it
    (vmsim/enclave/testenclave: built with gcc at first use)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    from vmsim.enclave import signing
    from vmsim.enclave.testenclave import build
    elf, host = build.enclave_elf(), build.host_program()
    sigs = tmp_path_factory.mktemp("sgx") / "test_encl.sigstructs"
    sigs.write_bytes(build.sigstructs(elf.read_bytes(), signing.generate_key(), [4096]))
    return [str(host), str(elf), str(sigs)]


def test_sgx_loader_replays_as_traced(sgx_host, tmp_path):
    """An SGX loader on the model (the host's tcs_permissions scenario: CREATE,
    ADD_PAGES, INIT, the enclave's mmaps, SGX2 ioctls the driver refuses): each ioctl
    recorded with its struct and the bytes it points to, replayed agreeing, and each
    refusal's reason under --trace the replay's."""
    trace = tmp_path / "sgx.jsonl"
    run = vmsim(["run", "--trace", "--record", str(trace), "--", *sgx_host, "tcs_permissions"],
                tmp_path)
    assert run.returncode == 0 and run.stdout.endswith(b"# Totals: pass:1 fail:0 skip:0\n")
    replay = vmsim(["replay", "--json", "--form", "none", str(trace)], tmp_path)
    lines = [json.loads(line) for line in replay.stdout.decode().splitlines()]
    final = lines.pop()
    assert_all_agree(lines, final)
    structs = {SGX_IOCTL_NAMES[r.args[1]]: r.args[2] for r in parse_jsonl(trace.read_text()).records
               if r.call == "ioctl"}
    assert len(structs["SGX_IOC_ENCLAVE_CREATE"]["secs"]) == 4096
    assert len(structs["SGX_IOC_ENCLAVE_INIT"]["sigstruct"]) == 1808
    added = structs["SGX_IOC_ENCLAVE_ADD_PAGES"]
    assert len(added["data"]) == added["length"] > 0
    refusals = [o for o in lines if o.get("why")]
    assert refusals and all("SGX_IOC_" in o["text"] for o in refusals)
    traced = [line.removeprefix("  why: ") for line in run.stderr.decode().splitlines()
              if line.startswith("  why: ")]
    assert traced == [why for o in refusals for why in o["why"]]
