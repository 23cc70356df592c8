"""`vmsim record` and the real-program corpus: programs of this machine recorded (ASLR
off, strace for the calls, a ptrace tracer for the maps at exec and exit) and replayed
from their execve with no other input: identical final maps and VmFlags, 0 DIFFERS.

The corpus is the kinds of programs users bring (coreutils, interpreters, sqlite3,
git, compressors, a shell that forks and execs, gcc (vfork + exec), two JITs (node,
java: threads, malloc arenas, pkey_alloc), and tests/realprog/corpus_calls.c for
threads, fork+exec, realloc growth, memfd, SysV shm, unlink while mapped,
process_madvise); each is skipped, with the reason, when this machine lacks it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from vmsim.cli.main import main
from vmsim.trace.load import load_trace
from vmsim.trace.record import cpu_has_pkeys
from vmsim.trace.replay import Replayer, final_differences

HERE = os.path.dirname(__file__)

#: (id, argv): small workloads, a second or two each to record and replay
CORPUS = [
    ("ls", ["ls", "-l", "/usr"]),
    ("python3", ["python3", "-c", "import os; [0 for _ in os.walk('/usr/lib/python3')]"]),
    ("perl", ["perl", "-e", "my @a = (1) x 100000; print scalar(@a), qq(\\n)"]),
    ("awk", ["awk", "BEGIN { for (i = 0; i < 10000; i++) s = s i; print length(s) }"]),
    ("sed", ["sed", "-n", "1p", "/etc/passwd"]),
    ("sqlite3", ["sqlite3", ":memory:", "create table t(x); insert into t values (1); "
                 "select * from t;"]),
    ("git", ["git", "--version"]),
    ("bash", ["bash", "-c", "ls /usr > /dev/null; true"]),   # fork + exec
    ("grep", ["grep", "-c", "root", "/etc/passwd"]),
    ("xz", ["xz", "-9", "-c", "/etc/passwd"]),                # a 94 MiB mmap'd dictionary
    ("zstd", ["zstd", "-c", "/etc/passwd"]),
    ("sort", ["sort", "/etc/passwd"]),
    ("tar", ["tar", "cf", "/dev/null", "/etc/hostname"]),
    ("find", ["find", "/etc", "-maxdepth", "1"]),
    ("gcc", ["gcc", "-c", "-o", "/dev/null", "-x", "c", "/dev/null"]),  # vfork + exec
    ("node", ["node", "-e", "let a = []; for (let i = 0; i < 1e5; i++) a.push(i)"]),  # JIT
    ("java", ["java", "-Xshare:auto", "-version"]),          # JIT, threads, THP alignment
]


def _can_record() -> str | None:
    if shutil.which("strace") is None:
        return "strace is not installed"
    r = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True)
    if r.returncode != 0:
        return "strace cannot trace here (ptrace not permitted?)"
    return None


@pytest.fixture(scope="module")
def recordable():
    why = _can_record()
    if why:
        pytest.skip(why)


def _record_and_replay(tmp_path, argv, capsys):
    out = str(tmp_path / "t.jsonl")
    assert main(["record", "-o", out, "--", *argv]) == 0
    capsys.readouterr()
    status = main(["replay", out, "--form", "none", "-q"])
    text = capsys.readouterr().out
    return out, status, text


@pytest.mark.parametrize("argv", [c[1] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_corpus_replays_identically(recordable, tmp_path, capsys, argv):
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    path, status, text = _record_and_replay(tmp_path, argv, capsys)
    assert "final maps and VmFlags: identical to the recorded exit snapshot" in text, text
    assert status == 0 and "DIFFERS  " not in text, text
    assert "verdict: the model agrees with every recorded call" in text


@pytest.fixture(scope="module")
def corpus_calls(tmp_path_factory):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = str(tmp_path_factory.mktemp("cc") / "corpus_calls")
    subprocess.run([cc, "-O1", "-pthread", "-o", exe,
                    os.path.join(HERE, "realprog", "corpus_calls.c")], check=True)
    return exe


def test_threads_fork_exec_memfd_shm_unlink(recordable, corpus_calls, tmp_path, capsys):
    path, status, text = _record_and_replay(tmp_path, [corpus_calls], capsys)
    assert status == 0 and "identical to the recorded exit snapshot" in text, text
    trace = load_trace(path)
    r = Replayer(trace, kernel_kwargs={"pkeys": bool(trace.pkeys)})
    outs = r.run_all()
    calls = {o.rec.call for o in outs if o.verdict == "agree"}
    assert {"memfd_create", "unlink", "shmget", "shmat", "shmdt", "shmctl", "msync",
            "mlockall", "munlockall", "process_madvise", "pidfd_open", "fcntl"} <= calls
    execs = [o for o in outs if o.rec.call == "execve"]
    assert len(execs) == 2 and all(o.verdict == "agree" for o in execs)   # the child's too
    maps = r.process().maps()
    assert "/memfd:vmsim-corpus (deleted)" in maps and "/tmp/vmsim-corpus-calls (deleted)" \
        in maps and "/SYSV00000000 (deleted)" in maps
    assert final_differences(trace, r.process()) == []


def test_record_header_and_pkeys(recordable, tmp_path, capsys):
    out = str(tmp_path / "t.jsonl")
    assert main(["record", "-o", out, "--", "true"]) == 0
    trace = load_trace(out)
    assert trace.pkeys is cpu_has_pkeys()
    assert trace.exec_maps and "[stack]" in trace.exec_maps and trace.exit_smaps
    assert trace.records[0].call == "execve" and trace.records[0].envp is not None
    for flag in ("on", "off"):
        assert main(["replay", out, "--pkeys", flag, "--form", "none"]) == 0


def test_cpu_flags(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor : 0\nflags : fpu sse pku ospke avx\n")
    assert cpu_has_pkeys(str(f))
    f.write_text("processor : 0\nflags : fpu sse avx\n")
    assert not cpu_has_pkeys(str(f))


def test_record_refuses_a_missing_command(capsys, tmp_path):
    assert main(["record", "-o", str(tmp_path / "t.jsonl"), "--", "no-such-cmd-vmsim"]) == 2
    assert "command not found" in capsys.readouterr().err
