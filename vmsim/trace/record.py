"""Recording a real program for replay (`vmsim record`): its syscalls as strace prints
them, and its /proc/PID/maps and smaps at the exec event and at exit, in one JSON Lines
trace (docs/trace-format.md, "Recorded runs").

Two runs of the command, both with ASLR off (personality(ADDR_NO_RANDOMIZE), as
`setarch -R` does), so that both lay out the same address space:

1. `strace -f -y -v -s 65536 -e inject=exit_group:delay_enter=N -o LOG -- CMD`: the
   syscall text (fd paths; argv and the environment in full, so that the model's
   execve builds the same stack). strace holds every exit_group at its entry for a
   moment; meanwhile this module watches the traced program's threads
   (/proc/PID/task/TID/syscall); when one of them is in exit_group it stops them all
   (SIGSTOP; the exit_group kills them, stopped) and reads the maps and smaps: the
   final address space of the very run whose calls are recorded.
2. CMD under a ptrace(2) tracer of this module (ctypes, no helper binary), stopped at
   its exec (PTRACE_TRACEME: the SIGTRAP after execve), where /proc/PID/maps is read;
   and at the leader's exit (PTRACE_O_TRACEEXIT), whose maps stand in for the final
   ones when run 1 could not take them (a program killed by a signal).

A single tracee can have a single tracer, which is why there are two runs; the exec
snapshot is taken before any thread or timing could make the runs differ. With
`aslr=True` (the tests of ASLR-on replay) the command runs randomized, as it would
without setarch -R, once: a second run would lay out other bases, so there is no exec
snapshot, and the exit snapshot is run 1's or none. The CPU
facts that change answers are recorded too: whether the CPU has PKU (/proc/cpuinfo
`pku` and `ospke`), which decides what pkey_alloc returns.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..syscalls.inputs import read_text
from .format import Trace
from .strace import parse_strace

#: include/uapi/linux/personality.h
ADDR_NO_RANDOMIZE = 0x0040000
#: include/uapi/linux/ptrace.h
PTRACE_TRACEME, PTRACE_CONT, PTRACE_SETOPTIONS = 0, 7, 0x4200
PTRACE_O_TRACEEXIT, PTRACE_EVENT_EXIT = 0x40, 6
#: strace's options: all processes, fd paths (-y: openat relative to a directory fd),
#: every argv and envp in full
STRACE_OPTIONS = ("-f", "-y", "-v", "-s", "65536", "-X", "abbrev")
#: how long strace holds an exit_group at its entry (microseconds), and how often the
#: recorder looks (seconds): the hold must be longer than a look
EXIT_HOLD_US, POLL_S = 200_000, 0.002
NR_EXIT_GROUP = 231


class RecordError(Exception):
    """The command could not be recorded: str() is the reason."""


@dataclass
class Recording:
    """What one recorded run gave: the strace text and the maps snapshots."""
    argv: list[str]
    strace_text: str
    exec_maps: str | None
    exit_maps: str | None
    exit_smaps: str | None
    pkeys: bool
    status: int


def cpu_has_pkeys(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has protection keys enabled: the `pku` and `ospke` flags."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"pku", "ospke"} <= flags
    except OSError:
        pass
    return False


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _no_aslr() -> None:
    """In the child, before exec: setarch -R."""
    libc = _libc()
    libc.personality(ctypes.c_ulong(ADDR_NO_RANDOMIZE))


def _traced_child(argv: Sequence[str], aslr: bool) -> None:
    """In the forked child: no ASLR unless `aslr`, PTRACE_TRACEME, exec (never
    returns)."""
    try:
        if not aslr:
            _no_aslr()
        libc = _libc()
        libc.ptrace(PTRACE_TRACEME, 0, None, None)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 1)
        os.execvp(argv[0], list(argv))
    finally:
        os._exit(127)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return None


def snapshot_maps(argv: Sequence[str],
                  aslr: bool = False) -> tuple[str | None, str | None, str | None]:
    """Run argv under ptrace with ASLR off (on with `aslr`): its maps at the exec stop,
    its maps and smaps at the leader's exit stop."""
    libc = _libc()
    pid = os.fork()
    if pid == 0:
        _traced_child(argv, aslr)
    exec_maps = exit_maps = exit_smaps = None
    _, status = os.waitpid(pid, 0)
    if os.WIFSTOPPED(status):
        exec_maps = _read(f"/proc/{pid}/maps")
        libc.ptrace(PTRACE_SETOPTIONS, pid, None, ctypes.c_void_p(PTRACE_O_TRACEEXIT))
        libc.ptrace(PTRACE_CONT, pid, None, None)
    while True:
        _, status = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(status):
            break
        sig = os.WSTOPSIG(status)
        if sig == signal.SIGTRAP and status >> 16 == PTRACE_EVENT_EXIT:
            exit_maps, exit_smaps = _read(f"/proc/{pid}/maps"), _read(f"/proc/{pid}/smaps")
            sig = 0
        elif sig == signal.SIGTRAP:
            sig = 0
        libc.ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(sig))
    return exec_maps, exit_maps, exit_smaps


def run_strace(argv: Sequence[str],
               aslr: bool = False) -> tuple[str, int, str | None, str | None]:
    """The strace text of argv run with ASLR off (on with `aslr`), strace's exit
    status, and the program's maps and smaps as its exit_group began (None when not
    seen)."""
    strace = shutil.which("strace")
    if strace is None:
        raise RecordError("strace is not installed (vmsim record runs the command under it)")
    with tempfile.TemporaryDirectory(prefix="vmsim-record-") as tmp:
        log = os.path.join(tmp, "strace.log")
        proc = subprocess.Popen([strace, *STRACE_OPTIONS, "-e",
                                 f"inject=exit_group:delay_enter={EXIT_HOLD_US}", "-o", log,
                                 "--", *argv], preexec_fn=None if aslr else _no_aslr,
                                stdout=subprocess.DEVNULL)
        maps, smaps = _watch_exit(proc, argv[0])
        if not os.path.exists(log):
            raise RecordError(f"strace wrote no log (exit status {proc.returncode})")
        return read_text(log), proc.returncode, maps, smaps


def _watch_exit(proc: subprocess.Popen, argv0: str) -> tuple[str | None, str | None]:
    """While strace (proc) runs: find the program it started (strace's child running
    argv0) and read its maps and smaps once one of its threads is held at
    exit_group's entry."""
    leader: int | None = None
    maps = smaps = None
    while proc.poll() is None:
        if leader is None:
            leader = _traced_program(proc.pid, argv0)
        elif maps is None and _in_exit_group(leader):
            _stop_threads(leader)
            maps, smaps = _read(f"/proc/{leader}/maps"), _read(f"/proc/{leader}/smaps")
        time.sleep(POLL_S)
    return maps, smaps


def _stop_threads(pid: int) -> None:
    """SIGSTOP the program while its exit_group is held, and wait (a little) until
    every thread is stopped: none maps anything after the snapshot. They are not
    continued: the exit_group, once strace lets it go on, kills them."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except OSError:
        return
    deadline = time.monotonic() + EXIT_HOLD_US / 4e6
    stopped_before = False
    while time.monotonic() < deadline:
        stopped = all(_state(pid, tid) in "tT" for tid in _listdir(f"/proc/{pid}/task"))
        if stopped and stopped_before:  # twice: not a passing syscall stop
            return
        stopped_before = stopped
        time.sleep(POLL_S)


def _state(pid: int, tid: str) -> str:
    """A thread's state letter (/proc/PID/task/TID/stat), "" when it is gone."""
    stat = _read(f"/proc/{pid}/task/{tid}/stat") or ""
    return stat[stat.rfind(")") + 2:][:1] if ")" in stat else "?"


def _traced_program(pid: int, argv0: str) -> int | None:
    """The child of strace (pid) that has exec'd argv0 (strace forks probes first)."""
    for task in _listdir(f"/proc/{pid}/task"):
        for child in (_read(f"/proc/{pid}/task/{task}/children") or "").split():
            if (_read(f"/proc/{child}/cmdline") or "").split("\0", 1)[0] == argv0:
                return int(child)
    return None


def _in_exit_group(pid: int) -> bool:
    """Whether a thread of pid is in exit_group (/proc/PID/task/TID/syscall)."""
    return any((_read(f"/proc/{pid}/task/{tid}/syscall") or "").split(" ", 1)[0] ==
               str(NR_EXIT_GROUP) for tid in _listdir(f"/proc/{pid}/task"))


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def record(argv: Sequence[str], aslr: bool = False) -> Recording:
    """Record argv: strace's text, then the maps snapshots of a second run; with
    `aslr`, one randomized run: strace's text and its exit snapshot."""
    if not argv:
        raise RecordError("no command to record")
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        raise RecordError(f"{argv[0]}: command not found")
    text, status, exit_maps, exit_smaps = run_strace(argv, aslr)
    exec_maps = None
    if not aslr:
        exec_maps, last_maps, last_smaps = snapshot_maps(argv)
        if exit_maps is None:           # never held at exit_group: the second run's
            exit_maps, exit_smaps = last_maps, last_smaps
    return Recording(list(argv), text, exec_maps, exit_maps, exit_smaps, cpu_has_pkeys(),
                     status)


def recording_trace(rec: Recording, path: str | None = None) -> Trace:
    """The Trace of a recording: the strace records, the snapshots in its header."""
    trace = parse_strace(rec.strace_text, path)
    for r in trace.records:             # the cwd is the recording's: make paths absolute
        if r.call == "execve" and not r.args[0].startswith("/"):
            r.args[0] = os.path.abspath(r.args[0])
    trace.exec_maps, trace.exit_maps, trace.exit_smaps = rec.exec_maps, rec.exit_maps, \
        rec.exit_smaps
    trace.pkeys = rec.pkeys
    trace.comment = "vmsim record -- " + " ".join(rec.argv)
    return trace
