"""`vmsim run`: real programs of this machine run on the model, compared with their
native runs: the same stdout and exit status, and under --trace the same mm syscalls
(mmap, munmap, mprotect, brk, mremap, madvise: addresses, arguments and results) as
`setarch -R strace -e trace=memory` shows natively, with the same argv[0],
environment and working directory for both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("unicorn")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the environment of both runs (PYTHONPATH: so that vmsim imports; the program sees it
#: in both runs alike)
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
MM_CALLS = ("mmap(", "munmap(", "mprotect(", "brk(", "mremap(", "madvise(")
NATIVE_TOOLS = all(shutil.which(tool) for tool in ("strace", "setarch"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("work")
    (d / "lines.txt").write_text("pear\napple\nfig\n")
    (d / "dir").mkdir()
    for name in ("b", "a", "c.txt"):
        (d / "dir" / name).write_text(name)
    return d


def vmsim_run(args: list[str], cwd, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmsim", "run", *args], cwd=cwd, env=ENV,
                          input=stdin, capture_output=True, timeout=600)


def mm_lines(text: str) -> list[str]:
    """The mm calls of an strace-syntax log, the padding before ` = ` dropped."""
    return [" = ".join(part.strip() for part in line.rsplit(" = ", 1))
            for line in text.splitlines() if line.startswith(MM_CALLS)]


PROGRAMS = [
    ["true"],
    ["echo", "hello"],
    ["cat", "lines.txt"],
    ["ls", "dir"],
    ["sort", "lines.txt"],
    ["sha256sum", "lines.txt"],
    ["python3", "-c", "import json; print(json.dumps({'a': [1, 2.5, None]}))"],
]


@pytest.mark.parametrize("argv", PROGRAMS, ids=lambda argv: argv[0])
def test_output_and_status_as_natively(workdir, argv):
    native = subprocess.run(argv, cwd=workdir, env=ENV, capture_output=True, timeout=60)
    model = vmsim_run(["--", *argv], workdir)
    assert (model.returncode, model.stdout) == (native.returncode, native.stdout)
    assert model.stderr == native.stderr


@pytest.mark.skipif(not NATIVE_TOOLS, reason="needs strace and setarch")
@pytest.mark.parametrize("argv", PROGRAMS, ids=lambda argv: argv[0])
def test_mm_syscalls_as_natively(workdir, tmp_path, argv):
    log = tmp_path / "native.strace"
    subprocess.run(["setarch", "-R", "strace", "-e", "trace=memory", "-o", str(log), *argv],
                   cwd=workdir, env=ENV, capture_output=True, timeout=60)
    model = vmsim_run(["--trace", "--", *argv], workdir)
    native = mm_lines(log.read_text())
    assert native, "strace recorded no mm call"
    assert mm_lines(model.stderr.decode()) == native


def test_exit_status_and_signal(workdir):
    assert vmsim_run(["--", "sh", "-c", "exit 3"], workdir).returncode == 3
    assert vmsim_run(["--", "sh", "-c", "kill -SEGV $$"], workdir).returncode == 128 + 11


def test_pipeline_and_stdin(workdir, tmp_path):
    r = vmsim_run(["--", "sh", "-c", "sort | tr a-z A-Z"], workdir, stdin=b"b\na\n")
    assert (r.returncode, r.stdout) == (0, b"A\nB\n")
    given = tmp_path / "in.txt"
    given.write_bytes(b"zz\nyy\n")
    r = vmsim_run(["--stdin", str(given), "--", "sort"], workdir)
    assert (r.returncode, r.stdout) == (0, b"yy\nzz\n")


def test_maps_at_exit(workdir):
    r = vmsim_run(["--maps", "--", "true"], workdir)
    lines = r.stderr.decode().splitlines()
    assert r.returncode == 0
    assert any(line.endswith("/usr/bin/true") for line in lines)
    assert lines[-2].endswith("[stack]") and lines[-1].endswith("[vsyscall]")


def test_trace_shows_the_calls(workdir):
    r = vmsim_run(["--trace", "--", "true"], workdir)
    lines = r.stderr.decode().splitlines()
    assert lines[0].startswith("brk(NULL)") and lines[-1] == "exit_group(0)" + " " * 26 + " = ?"


@pytest.mark.parametrize("args,message", [
    ([], "vmsim run: no program given"),
    (["--", "no-such-program-here"], "vmsim run: no-such-program-here: command not found"),
    (["--", "/etc/passwd"], "vmsim run: /etc/passwd: "),
    (["--stdin", "/no/such/file", "--", "true"], "vmsim run: /no/such/file: "),
])
def test_bad_input_is_one_line(workdir, args, message):
    r = vmsim_run(args, workdir)
    err = r.stderr.decode()
    assert r.returncode == 2
    assert err.startswith(message) and err.count("\n") == 1
