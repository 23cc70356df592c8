"""`vmsim run --trace` of the small C programs of test_run_cpu.py and test_run_guard.py
against `setarch -R strace -f` of their native runs: the mm calls (mmap, munmap,
mprotect, brk, mremap, madvise) with their arguments and results, addresses included,
thread by thread, each run's threads in the order they were created (run_helpers:
pids differ, and threads interleave differently). What this holds the model to: a fork child's
calls after COW, the thread stacks glibc maps (mmap PROT_NONE, mprotect of all but the
guard page), posix_spawn's vfork stack, the JIT's mprotect sequence, the guard
program's PROT_NONE page and MADV_GUARD_INSTALL.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytest.importorskip("unicorn")

from run_helpers import lines_by_thread  # noqa: E402
from test_run_cli import ENV, MM_CALLS  # noqa: E402
from test_run_cpu import SOURCES  # noqa: E402
from test_run_guard import GUARD_C  # noqa: E402

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("gcc", "strace", "setarch")),
                                reason="needs gcc, strace and setarch")

PROGRAMS = ("forkwait", "threads", "jit", "heap", "handler", "spawn", "guard")
#: advice values this machine's strace (6.1) predates and prints as numbers: the names
#: later strace prints (6.13+), as the model's --trace does
NEWER_ADVICE = {"0x66 /* MADV_??? */": "MADV_GUARD_INSTALL", "0x67 /* MADV_??? */": "MADV_GUARD_REMOVE"}


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    out = tmp_path_factory.mktemp("mmprogs")
    sources = {name: SOURCES[name] for name in PROGRAMS if name in SOURCES}
    sources["guard"] = (GUARD_C, ".c", ["-O1"])
    for name, (src, ext, flags) in sources.items():
        (out / (name + ext)).write_text(src)
        subprocess.run(["gcc", *flags, "-o", str(out / name), str(out / (name + ext))],
                       check=True, capture_output=True)
    return out


def _normalised(line: str) -> str:
    for number, name in NEWER_ADVICE.items():
        line = line.replace(number, name)
    return line


def mm_calls_by_thread(text: str) -> list[list[str]]:
    """Each thread's mm calls, in creation order (run_helpers.lines_by_thread)."""
    return [[_normalised(line) for line in lines if line.startswith(MM_CALLS)]
            for lines in lines_by_thread(text)[1]]


@pytest.mark.parametrize("name", PROGRAMS)
def test_mm_calls_by_thread_as_natively(progs, tmp_path, name):
    log = tmp_path / "native.strace"
    native = subprocess.run(["setarch", "-R", "strace", "-f", "-o", str(log), f"./{name}"],
                            cwd=progs, env=ENV, capture_output=True, timeout=60)
    model = subprocess.run([sys.executable, "-m", "vmsim", "run", "--trace", "--", f"./{name}"],
                           cwd=progs, env=ENV, capture_output=True, timeout=600)
    assert (model.returncode, model.stdout) == (native.returncode, native.stdout)
    expected = mm_calls_by_thread(log.read_text())
    assert len(expected) == {"forkwait": 2, "threads": 5, "spawn": 2}.get(name, 1)
    assert mm_calls_by_thread(model.stderr.decode()) == expected


def test_threads_lines_are_split_by_creation_order():
    """The parser: unprefixed lines are the live thread's, clone results create threads
    in order, `<unfinished ...>` and `<... resumed>` join."""
    text = "\n".join([
        "brk(NULL) = 0x1000",
        "[pid   100] clone3({flags=CLONE_VM}, 88 <unfinished ...>",
        "[pid   101] mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x2000",
        "[pid   100] <... clone3 resumed>) = 101",
        "[pid   101] +++ exited with 0 +++",
        "munmap(0x2000, 4096) = 0",
    ])
    assert mm_calls_by_thread(text) == [
        ["brk(NULL) = 0x1000", "munmap(0x2000, 4096) = 0"],
        ["mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x2000"]]
