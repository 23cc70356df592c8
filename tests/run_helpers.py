"""What the `vmsim run` tests share: an strace -f log (native, or `vmsim run --trace`)
taken apart thread by thread. Pids differ between a native run and a model run, so each
run's threads are taken in the order they were created (the program's first, then each
clone/clone3/fork/vfork result in the order the calls returned) and compared one to one:
threads interleave differently, their own sequences do not."""

from __future__ import annotations

import re

#: `[pid N] ` (strace -f on stderr, vmsim run --trace) or `N ` (strace -f -o FILE)
PID_PREFIX = re.compile(r"(?:\[pid +(\d+)\] |(\d+) +)?(.*)")
RESUMED = re.compile(r"<\.\.\. (\w+) resumed>(.*)")
UNFINISHED = " <unfinished ...>"
#: the calls that make a thread or process: their result is its tid
FORKS = ("clone(", "clone3(", "fork(", "vfork(")
#: a line of a call that made a thread or process, with its result
FORK_RESULT = re.compile(r"^(?:\[pid +\d+\] |\d+ +)?(?:<\.\.\. )?(?:clone3?|v?fork)\b.* = (\d+)$",
                         re.MULTILINE)


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


def unpadded(line: str) -> str:
    """The line without the padding strace puts before ` = `."""
    return " = ".join(part.strip() for part in line.rsplit(" = ", 1))


def lines_by_thread(text: str) -> tuple[list[int], list[list[str]]]:
    """The tids of an strace -f log in creation order, and each one's lines (a call
    `<unfinished ...>` joined with its `<... resumed>`), padding dropped."""
    threads = _Threads({int(m[1]) for m in FORK_RESULT.finditer(text)})
    for raw in text.splitlines():
        threads.add(raw)
    return threads.order, [[unpadded(line) for line in threads.lines[tid]] for tid in threads.order]
