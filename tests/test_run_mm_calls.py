"""`vmsim run --trace` of the small C programs of test_run_cpu.py and test_run_guard.py
against `setarch -R strace -f` of their native runs: the mm calls (mmap, munmap,
mprotect, brk, mremap, madvise) with their arguments and results, addresses included,
thread by thread. Pids differ between the two runs, so each run's threads are taken in
the order they were created (the program's first, then each clone/clone3/fork/vfork
result in the order the calls returned) and compared one to one; threads interleave
differently, their own sequences do not. What this holds the model to: a fork child's
calls after COW, the thread stacks glibc maps (mmap PROT_NONE, mprotect of all but the
guard page), posix_spawn's vfork stack, the JIT's mprotect sequence, the guard
program's PROT_NONE page and MADV_GUARD_INSTALL.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("unicorn")

from test_run_cli import ENV, MM_CALLS  # noqa: E402
from test_run_cpu import SOURCES  # noqa: E402
from test_run_guard import GUARD_C  # noqa: E402

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("gcc", "strace", "setarch")),
                                reason="needs gcc, strace and setarch")

PROGRAMS = ("forkwait", "threads", "jit", "heap", "handler", "spawn", "guard")
#: the calls that make a thread or process: their result is its tid
FORKS = ("clone(", "clone3(", "fork(", "vfork(")
#: `[pid N] ` (strace -f on stderr, vmsim run --trace) or `N ` (strace -f -o FILE)
PID_PREFIX = re.compile(r"(?:\[pid +(\d+)\] |(\d+) +)?(.*)")
RESUMED = re.compile(r"<\.\.\. (\w+) resumed>(.*)")
UNFINISHED = " <unfinished ...>"
#: a line of a call that made a thread or process, with its result
FORK_RESULT = re.compile(r"^(?:\[pid +\d+\] |\d+ +)?(?:<\.\.\. )?(?:clone3?|v?fork)\b.* = (\d+)$",
                         re.MULTILINE)
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


class _Threads:
    """The lines of an strace -f log by thread, threads in creation order. Lines without
    a pid are the one live thread's (strace -f and --trace drop the prefix while one
    thread is traced); before the first prefixed line that is the program's first, whose
    tid is the first one no call returned (a vfork child's lines come before the call's)."""

    def __init__(self, children: set[int]) -> None:
        #: the tids the log's clone, clone3, fork and vfork calls returned
        self.children = children
        self.order: list[int] = [0]             # 0: the first thread, until its tid shows
        self.live: list[int] = [0]
        self.lines: dict[int, list[str]] = {0: []}
        self.unfinished: dict[int, str] = {}

    def add(self, raw: str) -> None:
        match = PID_PREFIX.fullmatch(raw)
        assert match is not None
        tid = int(match[1] or match[2] or 0) or (self.live[0] if len(self.live) == 1 else 0)
        if tid not in self.lines:
            self._first_tid(tid)
        body = match[3]
        if body.endswith(UNFINISHED):
            self.unfinished[tid] = body.removesuffix(UNFINISHED)
            return
        resumed = RESUMED.fullmatch(body)
        if resumed:
            body = self.unfinished.pop(tid, resumed[1] + "(") + resumed[2]
        self.lines[tid].append(body)
        if body.startswith("+++") and tid in self.live:
            self.live.remove(tid)
        if body.startswith(FORKS) and (child := body.rsplit(" = ", 1)[-1].split()[0]).isdigit():
            self.order.append(int(child))
            if int(child) not in self.lines:
                self._first_tid(int(child))

    def _first_tid(self, tid: int) -> None:
        """A tid not seen before: the first thread's, or a child's (its lines may come
        before the call that made it returns)."""
        if self.order[0] == 0 and tid not in self.children:
            self.order[0] = tid
            self.live = [tid if t == 0 else t for t in self.live]
            self.lines[tid] = self.lines.pop(0)
        else:
            self.live.append(tid)
            self.lines[tid] = []

    def mm_calls(self) -> list[list[str]]:
        """Each thread's mm calls, padding before ` = ` dropped."""
        return [[_normalised(line) for line in self.lines[tid] if line.startswith(MM_CALLS)]
                for tid in self.order]


def _normalised(line: str) -> str:
    line = " = ".join(part.strip() for part in line.rsplit(" = ", 1))
    for number, name in NEWER_ADVICE.items():
        line = line.replace(number, name)
    return line


def mm_calls_by_thread(text: str) -> list[list[str]]:
    threads = _Threads({int(m[1]) for m in FORK_RESULT.finditer(text)})
    for raw in text.splitlines():
        threads.add(raw)
    return threads.mm_calls()


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
