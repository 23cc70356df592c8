"""Replaying a trace on the model: every call runs on a model process started from a
/proc/PID/maps dump (or empty), its result is compared with the recorded one, and every
refusal is explained (vmsim.trace.explain).

    r = Replayer(trace, maps=text, placement="trace")
    for out in r.run():          # one Outcome per record
        print(out.verdict, out.why)
    r.process(pid).maps()

Every call is applied through the one dispatcher (vmsim.syscalls.dispatch); what this
module adds is the replay's own bookkeeping: the trace's fds and pids mapped onto the
model's, addresses translated, files created, SGX ioctl arguments laid out in memory.

Placement: with "trace" a non-fixed mmap is given the recorded address as its hint
(the kernel takes a free hint as is, so the model must land there when its state
agrees), and an mremap the model moved elsewhere is moved on to the recorded address;
with "model" the model chooses, and later arguments inside a range it placed elsewhere
are translated.

The model is the kernel's mm layer, not its file system: a path the trace opened
successfully is created in the model's VFS when missing. An `execve` is run by the
model (Process.execve: the image, ld.so, the vDSO and the stack, from this machine's
files), in the first process and in every child after its own execve; only when a
--maps dump is given is the first execve taken as that dump. An execve recorded with
ASLR on is run with the random bases its process's first calls show (vmsim.trace.aslr:
mmap_base, the load bias, start_brk); what they cannot show (the stack's base, always)
keeps the model's ASLR-off value. A replay whose start state is not wholly known (no
dump, no execve first; a base of an ASLR-on exec) is partial, and says why
(`Replayer.partial`).

Threads (CLONE_VM|CLONE_THREAD) share their process's model; CLONE_FILES shares the
trace-fd table; a vfork child borrows its parent's address space until its execve.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..arch.x86.vdso import enclave_access
from ..enclave.loader import Scratch, marshal
from ..errors import Fault
from ..fs.exec import ExecBases
from ..fs.procmaps import _mkdirs
from ..kernel import Kernel
from ..mm.munmap import page_align
from ..process import Process
from ..syscalls import strace as syntax
from ..syscalls.dispatch import dispatch, outcome
from ..syscalls.names import CONSTANTS, errno_name, strerror
from ..syscalls.table import syscall
from ..uapi import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_CREAT,
    O_EXCL,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    PAGE_SIZE,
    U64,
)
from .aslr import LOOKAHEAD, Evidence, infer_bases
from .explain import RANGED, explain
from .format import (
    MAX_BLOBS,
    SGX_IOCTL_NAMES,
    Record,
    Trace,
    TraceError,
    format_clone_flags,
    kinds,
    secinfo_text,
)

_CLONE_VM = CONSTANTS["CLONE_VM"]
_CLONE_FILES = CONSTANTS["CLONE_FILES"]
_CLONE_THREAD = CONSTANTS["CLONE_THREAD"]


def format_result(call: str | None, kind: str, value: object) -> str:
    """A recorded or model result as strace prints it (`-1 EACCES (Permission denied)`,
    an address in hex)."""
    if kind == "err":
        assert isinstance(value, str)
        return syntax.format_error(value)
    if kind == "ok":
        if value is None:
            return "?"
        assert isinstance(value, int) and call is not None
        if syscall(call).addr_result:
            return f"{value & U64:#x}"
        return str(value)
    return "?"


def format_args(rec: Record) -> str:
    """The record as an strace call line (without the result)."""
    if rec.call is None:
        return rec.text or f"--- {rec.signal} ---"
    parts = []
    for kind, v in zip(kinds(rec.call), rec.args, strict=False):
        kind = kind.rstrip("?")
        if isinstance(v, dict):
            parts.append(_format_struct(v))
        elif kind in ("path", "str"):
            parts.append("NULL" if v is None else syntax.format_cstring(
                v.encode("utf-8", "surrogateescape")))
        elif kind == "ioctlcmd":
            parts.append(SGX_IOCTL_NAMES.get(v, f"{v:#x}"))
        elif kind == "ioctlarg":
            parts.append(f"{v:#x}")
        elif kind == "cloneflags":
            parts.append(f"flags={format_clone_flags(v)}")
        elif kind == "iovec":
            parts.append("[" + ", ".join(f"{{iov_base={b:#x}, iov_len={n}}}" for b, n in v) + "]")
        elif kind == "fd" and rec.fd_path and v >= 0 and rec.call != "dup2":
            parts.append(f"{v}<{rec.fd_path}>")
        elif kind == "prot" and v == 0:
            parts.append("PROT_NONE")
        else:
            parts.append(syntax.format_value(kind, v))
    while rec.call in ("open", "exit", "clone") and len(parts) > 2 and parts[-1] == "0":
        parts.pop()
    if rec.call == "execve":
        parts.append(_format_strings(rec.argv))
        parts.append("?" if rec.envp is None else f"[/* {len(rec.envp)} vars */]")
    return f"{rec.call}({', '.join(parts)})"


def _format_strings(strings: list[str] | None) -> str:
    """An execve's argv as strace prints it; `?` when not in the trace."""
    if strings is None:
        return "?"
    shown = [syntax.format_cstring(x.encode("utf-8", "surrogateescape")) for x in strings[:8]]
    return "[" + ", ".join(shown) + (", ..." if len(strings) > 8 else "") + "]"


def _format_struct(v: dict) -> str:
    out = []
    for k, val in v.items():
        if isinstance(val, bytes):
            out.append(f"{k}=<{len(val)} bytes>")
        elif k == "secinfo":
            out.append(f"secinfo={secinfo_text(val)}")
        elif k == "flags" and val == CONSTANTS["SGX_PAGE_MEASURE"]:
            out.append("flags=SGX_PAGE_MEASURE")
        elif k in ("src", "ptr", "offset", "length"):
            out.append(f"{k}={val:#x}")
        else:
            out.append(f"{k}={val}")
    return "{" + ", ".join(out) + "}"


@dataclass
class Outcome:
    """What replaying one record gave. verdict: "agree", "differ", "placement" (the
    model placed a mapping elsewhere; a divergence only with --placement trace),
    "unchecked" (no recorded result), "skipped", "env" (a file-system or process
    call taken as recorded), "event" (signal / exit lines)."""
    rec: Record
    verdict: str
    model: tuple | None = None          # ("ok", value) / ("err", "EACCES")
    why: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def recorded(self) -> tuple | None:
        if self.rec.err is not None:
            return ("err", self.rec.err)
        if self.rec.ret is not None:
            return ("ok", self.rec.ret)
        return None

    def to_json(self) -> dict:
        rec = self.rec
        d: dict[str, Any] = {"line": rec.line, "pid": rec.pid, "call": rec.call or rec.event,
             "text": format_args(rec), "verdict": self.verdict}
        if self.recorded is not None:
            d["recorded"] = format_result(rec.call, *self.recorded)
        if self.model is not None:
            d["model"] = format_result(rec.call, *self.model)
        if self.why:
            d["why"] = self.why
        if self.note:
            d["note"] = self.note
        return d


class _Proc:
    """A traced pid: its model process, trace-fd -> model-fd table (shared with the
    threads and CLONE_FILES children that share it), status."""

    def __init__(self, p: Process | None, fds: dict[int, int] | None = None,
                 share_fds: bool = False):
        self.p = p
        self.fds: dict[int, int] = fds if share_fds and fds is not None else dict(fds or {})
        self.unknown: str | None = None     # why this pid's address space is unknown
        self.exited = False
        self.brk_seen = False
        self.execd = False
        self.borrowed = False               # a vfork child: p is its parent's until execve
        self.aslr = False                   # its exec had ASLR on: bases read from the trace


class Replayer:
    def __init__(self, trace: Trace, maps: str | None = None, smaps: str | None = None,
                 maps_path: str | None = None, placement: str = "trace",
                 kernel_kwargs: dict | None = None, smaps_path: str | None = None):
        if placement not in ("trace", "model"):
            raise ValueError("placement is 'trace' or 'model'")
        self.trace = trace
        self.placement = placement
        self.k = Kernel(**(kernel_kwargs or {}))
        if maps is None and trace.maps is not None:
            maps, maps_path = trace.maps, f"{trace.path or '<trace>'} header"
        self.start_maps = maps
        if maps is not None:
            p = self.k.spawn(maps=maps, smaps=smaps, maps_path=maps_path, smaps_path=smaps_path)
        else:
            p = self.k.spawn(stack=True)
        for _ in range(3):          # stdin, stdout, stderr: the first open returns 3
            p.open("/dev/null", O_RDWR)
        self.first = _Proc(p, {0: 0, 1: 1, 2: 2})
        #: why the replay cannot know the whole address space, None when it can
        #: what the replay cannot know of the address space (`partial`)
        self.gaps: list[str] = [] if maps is not None else self._start_unknown()
        self.procs: dict[int | None, _Proc] = {}
        self.main_pid: int | None = None
        self.xlat: list[tuple[int, int, int]] = []   # (recorded start, length, model start)
        self.outcomes: list[Outcome] = []
        self.created: list[tuple[int, int]] = []     # ranges the trace itself mapped
        self.shmids: dict[int, int] = {}             # recorded SysV shm id -> model's
        self._positions: dict[int, int] | None = None  # id(record) -> its index, on demand
        #: give files created on demand the host's device, inode number and size (the
        #: trace cannot show them; right when replaying on the machine that recorded it)
        self.host_files = True

    # ------------------------------------------------------------------ helpers
    @property
    def partial(self) -> str | None:
        """Why the replay cannot know the whole address space, None when it can."""
        return "partial: " + "; ".join(self.gaps) if self.gaps else None

    def _start_unknown(self) -> list[str]:
        """Without a maps dump: the reason the start state is unknown, unless the first
        process's first call is a successful execve (the model builds it)."""
        first = next((r for r in self.trace.records if r.call is not None), None)
        if first is not None and first.call == "execve" and first.err is None:
            return []
        return ["the image and the initial stack are not in the trace (it does not start "
                "with execve; record it with `vmsim record`, or give --maps)"]

    def proc_for(self, pid: int | None) -> _Proc:
        if pid not in self.procs:
            if self.main_pid is None or not self.procs:
                self.main_pid = pid
                self.procs[pid] = self.first
            else:               # a pid whose creation the trace does not show
                st = _Proc(None)
                st.unknown = (f"pid {pid} appears without a clone/fork in the trace (strace "
                              "attached to it, or the log starts after its creation)")
                self.procs[pid] = st
        return self.procs[pid]

    def process(self, pid: int | None = None) -> Process:
        """The model process of pid (default: the first traced process)."""
        p = self.first.p if pid is None else self.procs[pid].p
        assert p is not None, f"pid {pid}'s address space is not known"
        return p

    def tr(self, addr: int) -> int:
        """A recorded address translated to the model's (placement "model")."""
        for rs, ln, ms in reversed(self.xlat):
            if rs <= addr < rs + ln or (addr == rs + ln and ln):
                return ms + (addr - rs)
        return addr

    def _model_fd(self, st: _Proc, fd: int, rec: Record) -> int | None:
        if fd in st.fds:
            return st.fds[fd]
        if rec.fd_path:
            assert st.p is not None
            mfd = self._open_path(st.p, rec.fd_path, O_RDWR if rec.call == "ioctl"
                                  else O_RDONLY)
            if mfd is not None:
                st.fds[fd] = mfd
                return mfd
        return None

    def _open_path(self, p: Process, path: str, flags: int) -> int | None:
        """Open path in the model, creating a missing regular file (and its parents).
        With host_files, symbolic links are resolved as on the host (the model's VFS
        has none, and maps shows the resolved path)."""
        if self.host_files and path.startswith("/") and \
                not path.startswith(("/dev/", "/proc/", "/sys/")):
            real = os.path.realpath(path)
            if real != path and os.path.exists(real):
                path = real
        try:
            self.k.fs.lookup(path)
            existed = True
        except OSError:
            existed = False
        try:
            fd = dispatch(p, "open", [path, flags, 0o644])
            if not existed and self.host_files:
                file = p.files.get(fd)
                if file is not None:
                    _like_host(file.inode, path)
            return fd
        except FileNotFoundError:
            if not path.startswith("/") or path.startswith(("/dev/", "/proc/", "/sys/")):
                return None
        except OSError:
            return None
        flags &= ~(O_CREAT | O_EXCL | O_TRUNC)
        if self.host_files and os.path.isdir(path):
            try:
                _mkdirs(self.k.fs, path + "/x")        # the directory itself, and parents
                return dispatch(p, "open", [path, flags, 0])
            except OSError:
                return None
        try:
            _mkdirs(self.k.fs, path)
            inode = self.k.fs.create(path, b"", 0o755)
            if self.host_files:
                _like_host(inode, path)
            return dispatch(p, "open", [path, flags, 0o644])
        except OSError:
            return None

    @staticmethod
    def _scratch(p: Process, need: int) -> Scratch:
        try:
            return Scratch.away_from_vmas(p, need)
        except OSError:
            raise TraceError("no room in the address space for the ioctl arguments") \
                from None

    # ------------------------------------------------------------------ main loop
    def run(self) -> Iterator[Outcome]:
        for rec in self.trace.records:
            out = self.step(rec)
            self.outcomes.append(out)
            yield out

    def run_all(self) -> list[Outcome]:
        return list(self.run())

    def step(self, rec: Record) -> Outcome:
        st = self.proc_for(rec.pid)
        if rec.call is None:
            if rec.event in ("exited", "killed"):
                st.exited = True
            if rec.event == "undecoded":
                return Outcome(rec, "skipped", note=f"not decoded ({rec.comment})")
            if rec.event == "access" and st.p is not None and st.unknown is None:
                return self._replay_access(st.p, rec)
            return Outcome(rec, "event")
        if st.unknown is not None and rec.call != "exit":
            return Outcome(rec, "skipped", note=st.unknown)
        replay = _REPLAY.get(rec.call, Replayer._replay_syscall)
        try:
            out = replay(self, st, rec)
        except Fault as f:                  # e.g. writing an ioctl argument
            out = Outcome(rec, "skipped", note=f"model fault {f.signal} {f.code} at "
                                               f"{f.addr:#x} while preparing the call")
        return out

    def _replay_access(self, p: Process, rec: Record) -> Outcome:
        """An access record: the model's access (Process.touch; in enclave mode
        vdso.enclave_access) and its fault, if any, against the recorded one."""
        assert rec.addr is not None and rec.mode is not None
        if rec.tcs is not None:
            model = enclave_access(p, self.tr(rec.tcs), self.tr(rec.addr), rec.mode)
            if (None if model[0] == "ok" else model) == rec.exception:
                return Outcome(rec, "agree")
            return Outcome(rec, "differ", note="the model's enclave access: " + (
                "EEXIT" if model[0] == "ok" else
                f"{model[0]} vector {model[1]} error code {model[2]:#x} at {model[3]:#x}"))
        try:
            p.touch(self.tr(rec.addr), rec.mode)
            got = None
        except Fault as f:
            got = (f.signal, f.code)
        if got == (None if rec.signal is None else (rec.signal, rec.code)):
            return Outcome(rec, "agree")
        return Outcome(rec, "differ", note="the model's access " + (
            "succeeded" if got is None else f"faulted: {got[0]} {got[1]}"))

    # ------------------------------------------------------------------ compare
    def _compare(self, rec: Record, model: tuple, st: _Proc) -> Outcome:
        assert st.p is not None and rec.call is not None
        recd: tuple | None = (("err", rec.err) if rec.err is not None else
                              ("ok", rec.ret) if rec.ret is not None else None)
        if recd is None:
            out = Outcome(rec, "unchecked", model)
        elif recd[0] == "ok" and model[0] == "ok" and syscall(rec.call).addr_result:
            out = Outcome(rec, "agree" if self.tr(recd[1]) == model[1] else "differ", model)
        elif recd == model:
            out = Outcome(rec, "agree", model)
        else:
            out = Outcome(rec, "differ", model)
        if model[0] == "err" or (recd and recd[0] == "err"):
            err = model[1] if model[0] == "err" else rec.err
            assert err is not None
            out.why = explain(st.p, rec, err, st.fds, self.tr)
        if out.verdict == "differ" and self.partial is not None and \
                rec.call in RANGED and not self._created_covers(rec.args[0], rec.args[1]):
            out.verdict, out.why = "skipped", []
            out.note = (f"[{rec.args[0]:#x}, {rec.args[0] + page_align(rec.args[1]):#x}) was "
                        "not mapped by the trace, and no --maps dump says what was there "
                        "(the exec image?)")
        if recd is not None and recd[0] == "ok" and rec.call in ("mmap", "mremap") and \
                model[0] == "ok":
            ln = rec.args[1] if rec.call == "mmap" else rec.args[2]
            self.created.append((recd[1], recd[1] + page_align(ln)))
        return out

    def _created_covers(self, addr: int, length: int) -> bool:
        end = addr + page_align(length)
        cur = addr
        for s, e in sorted(self.created):
            if s <= cur < e:
                cur = e
            if cur >= end:
                return True
        return cur >= end

    # ------------------------------------------------------------------ mm calls
    def _replay_syscall(self, st: _Proc, rec: Record) -> Outcome:
        """A call replayed as recorded, the start of a range translated."""
        assert st.p is not None and rec.call is not None
        args = list(rec.args)
        if rec.call in RANGED:
            args[0] = self.tr(args[0])
        return self._compare(rec, outcome(st.p, rec.call, args), st)

    def _replay_mmap(self, st: _Proc, rec: Record) -> Outcome:
        assert st.p is not None
        addr, length, prot, flags, fd, off = rec.args
        note = None
        mfd: int | None = -1
        if not flags & MAP_ANONYMOUS and fd & 0xFFFFFFFF != 0xFFFFFFFF:
            mfd = self._model_fd(st, fd, rec)
            if mfd is None:
                return Outcome(rec, "skipped", note=f"fd {fd} was not opened in the trace "
                                                    "(strace -y shows the path); it is not "
                                                    "in the replay's fd table")
        elif flags & MAP_ANONYMOUS:
            mfd = fd
        fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
        if fixed or addr:
            addr = self.tr(addr)
        if not fixed and self.placement == "trace" and rec.ret is not None and rec.err is None:
            addr = rec.ret              # the recorded address, exactly when it is free
            if st.p.mm.tree.find_intersecting(addr, addr + page_align(length)) is None:
                flags |= MAP_FIXED_NOREPLACE
        before = _span(st.p, addr, length) if flags & MAP_FIXED else None
        model = outcome(st.p, "mmap", [addr, length, prot, flags, mfd, off])
        out = self._compare(rec, model, st)
        if model[0] == "err" and before and before != _span(st.p, addr, length):
            out.why.append(f"the failed MAP_FIXED mmap has already unmapped what was at "
                           f"[{addr:#x}, {addr + page_align(length):#x}) (mmap_region() "
                           "clears the old mapping before calling the driver's ->mmap)")
        if model[0] == "ok" and rec.ret is not None and rec.err is None and \
                model[1] != self.tr(rec.ret):
            if self.placement == "model" and not fixed:
                self.xlat.append((rec.ret, page_align(length), model[1]))
                out.verdict = "placement"
                note = f"the model placed it at {model[1]:#x}"
            else:
                note = (f"the model placed it at {model[1]:#x}: the recorded range was not "
                        "free in the model")
        out.note = note
        return out

    def _replay_mremap(self, st: _Proc, rec: Record) -> Outcome:
        assert st.p is not None
        old, old_len, new_len, flags, new = rec.args
        old_m = self.tr(old)
        if flags & MREMAP_FIXED:
            new = self.tr(new)
        model = outcome(st.p, "mremap", [old_m, old_len, new_len, flags, new])
        out = self._compare(rec, model, st)
        if model[0] == "ok" and rec.ret is not None and rec.err is None and \
                model[1] != self.tr(rec.ret) and not flags & MREMAP_FIXED:
            moved_both = model[1] != old_m and rec.ret != old
            if self.placement == "trace" and moved_both:
                ln = page_align(new_len)
                again = outcome(st.p, "mremap", [model[1], ln, ln,
                                                 MREMAP_MAYMOVE | MREMAP_FIXED, rec.ret])
                out.verdict = "agree" if again == ("ok", rec.ret) else "differ"
                out.note = (f"the model moved it to {model[1]:#x}; moved on to the recorded "
                            f"{rec.ret:#x}" if out.verdict == "agree" else
                            f"the model moved it to {model[1]:#x} and could not move it to "
                            f"the recorded {rec.ret:#x}")
            elif self.placement == "model" and moved_both:
                self.xlat.append((rec.ret, page_align(new_len), model[1]))
                out.verdict = "placement"
                out.note = f"the model moved it to {model[1]:#x}"
        return out

    def _replay_brk(self, st: _Proc, rec: Record) -> Outcome:
        p = st.p
        assert p is not None
        (addr,) = rec.args
        note = None
        mm = p.mm
        if not st.brk_seen and rec.ret is not None and addr == 0 and mm.brk == mm.start_brk \
                and not any(v.name == "[heap]" for v in p.vmas()) and mm.brk != rec.ret:
            if st.execd and not st.aslr:
                self.gaps.insert(0, f"the run had ASLR on (its brk starts at {rec.ret:#x}, "
                                 f"the model's at {mm.brk:#x}) and its first calls do not "
                                 "show its bases: the image, ld.so and the stack are placed "
                                 "as with ASLR off; brk and the mappings the trace shows "
                                 "are taken from it (record with setarch -R or `vmsim "
                                 "record`)")
            mm.start_brk = mm.brk = rec.ret     # neither a maps dump nor execve shows it
            note = f"start_brk taken from the trace: {rec.ret:#x}"
        st.brk_seen = True
        out = self._compare(rec, outcome(p, "brk", [addr]), st)
        out.note = note
        return out

    # ------------------------------------------------------------------ files
    def _replay_open(self, st: _Proc, rec: Record) -> Outcome:
        p = st.p
        assert p is not None
        path, flags, mode = rec.args
        path = rec.ret_path or path
        if rec.err is not None:
            model = outcome(p, "open", [path, flags, mode])
            if model[0] == "ok":
                outcome(p, "close", [model[1]])
                return Outcome(rec, "env", model, note="the file exists in the model")
            return Outcome(rec, "agree" if model == ("err", rec.err) else "env", model)
        if not path.startswith("/"):
            return Outcome(rec, "env", note="relative path: the open is not replayed")
        mfd = self._open_path(p, path, flags)
        if mfd is None:
            model = outcome(p, "open", [path, flags, mode])
            if model[0] == "ok":
                outcome(p, "close", [model[1]])
                model = ("ok", None)
            return Outcome(rec, "env", model, note=f"not opened in the model ({path}: "
                           f"{strerror(model[1]) if model[0] == 'err' else 'not a file'}); "
                           "mappings of this fd are skipped")
        if rec.ret is None:
            outcome(p, "close", [mfd])      # the trace does not say which fd it is
            return Outcome(rec, "unchecked", ("ok", None))
        self._install_fd(st, rec.ret, mfd)
        return Outcome(rec, "agree", ("ok", rec.ret))

    @staticmethod
    def _install_fd(st: _Proc, fd: int, mfd: int) -> None:
        """Trace fd `fd` is now model fd `mfd`; the model fd it was before is closed
        (the trace closed it without the replay seeing it, or never opened it)."""
        old = st.fds.get(fd)
        if old is not None and old != mfd and old not in st.fds.values():
            assert st.p is not None
            outcome(st.p, "close", [old])
        st.fds[fd] = mfd

    def _replay_close(self, st: _Proc, rec: Record) -> Outcome:
        assert st.p is not None
        (fd,) = rec.args
        if fd not in st.fds:
            return Outcome(rec, "env", note=f"fd {fd} is not known to the replay")
        return self._compare(rec, outcome(st.p, "close", [st.fds.pop(fd)]), st)

    def _replay_dup(self, st: _Proc, rec: Record) -> Outcome:
        assert st.p is not None
        (fd,) = rec.args
        mfd = self._model_fd(st, fd, rec)
        if mfd is None:
            return Outcome(rec, "env", note=f"fd {fd} is not known to the replay")
        model = self._adopt_fd(st, rec, outcome(st.p, "dup", [mfd]))
        return self._compare(rec, model, st)

    def _replay_dup2(self, st: _Proc, rec: Record) -> Outcome:
        """dup2(old, new): the model's fd numbers are its own, so a dup of old that the
        fd table then knows as new."""
        assert st.p is not None
        old, new = rec.args
        mfd = self._model_fd(st, old, rec)
        if mfd is None or rec.ret is None:
            return Outcome(rec, "env", note=f"fd {old} is not known to the replay")
        if st.fds.get(new) == mfd:
            return self._compare(rec, ("ok", new), st)
        model = outcome(st.p, "dup", [mfd])
        if model[0] == "ok":
            self._install_fd(st, new, model[1])
            model = ("ok", new)
        return self._compare(rec, model, st)

    def _replay_fcntl(self, st: _Proc, rec: Record) -> Outcome:
        """fcntl(F_DUPFD*, F_SETFD, F_ADD_SEALS) on the model fd; a new fd is tracked."""
        assert st.p is not None
        fd, cmd, arg = rec.args
        mfd = self._model_fd(st, fd, rec)
        if mfd is None:
            return Outcome(rec, "env", note=f"fd {fd} is not known to the replay")
        model = outcome(st.p, "fcntl", [mfd, cmd, arg])
        if cmd in _FCNTL_DUP:
            model = self._adopt_fd(st, rec, model)
        return self._compare(rec, model, st)

    def _adopt_fd(self, st: _Proc, rec: Record, model: tuple) -> tuple:
        """A new model fd known from now on by the recorded one; closed again when the
        recorded call failed or its result is unknown. Returns the outcome to compare."""
        assert st.p is not None
        if model[0] != "ok":
            return model
        if rec.ret is None or rec.err is not None:
            outcome(st.p, "close", [model[1]])
            return model
        self._install_fd(st, rec.ret, model[1])
        return ("ok", rec.ret)

    def _replay_memfd_create(self, st: _Proc, rec: Record) -> Outcome:
        """memfd_create(2): the model's memfd, tracked as the recorded fd."""
        assert st.p is not None
        model = self._adopt_fd(st, rec, outcome(st.p, "memfd_create", rec.args))
        return self._compare(rec, model, st)

    def _replay_path_call(self, st: _Proc, rec: Record) -> Outcome:
        """unlink, unlinkat, rename: on the model's files (a mapped file unlinked shows
        ` (deleted)`); a path the model does not have is the file system's business."""
        assert st.p is not None and rec.call is not None
        args = list(rec.args)
        paths = [i for i, kind in enumerate(kinds(rec.call)) if kind == "path"]
        for i in paths:
            if not args[i].startswith("/"):
                return Outcome(rec, "env", note="relative path: not replayed")
            args[i] = _host_path(args[i])
        if rec.call == "unlinkat" and args[0] != CONSTANTS["AT_FDCWD"]:
            return Outcome(rec, "env", note="a path relative to a directory fd: not replayed")
        model = outcome(st.p, rec.call, args)
        if model[0] == "err" and rec.err is None and model[1] in ("ENOENT", "ENOTDIR"):
            return Outcome(rec, "env", model, note="the model does not have the file")
        return self._compare(rec, model, st)

    def _replay_shmget(self, st: _Proc, rec: Record) -> Outcome:
        """shmget(2): the model's segment id, known by the recorded one."""
        assert st.p is not None
        model = outcome(st.p, "shmget", rec.args)
        if model[0] == "ok" and rec.ret is not None and rec.err is None:
            self.shmids[rec.ret] = model[1]
            model = ("ok", rec.ret)
        return self._compare(rec, model, st)

    def _replay_shmctl(self, st: _Proc, rec: Record) -> Outcome:
        """shmctl(IPC_RMID) of a recorded segment id."""
        assert st.p is not None
        shmid, cmd, buf = rec.args
        return self._compare(rec, outcome(st.p, "shmctl", [self.shmids.get(shmid, shmid),
                                                            cmd, buf]), st)

    def _replay_ftruncate(self, st: _Proc, rec: Record) -> Outcome:
        assert st.p is not None
        fd, length = rec.args
        mfd = self._model_fd(st, fd, rec)
        if mfd is None:
            return Outcome(rec, "env", note=f"fd {fd} is not known to the replay")
        return self._compare(rec, outcome(st.p, "ftruncate", [mfd, length]), st)

    def _replay_shmat(self, st: _Proc, rec: Record) -> Outcome:
        assert st.p is not None
        shmid, addr, flags = rec.args
        model = outcome(st.p, "shmat", [self.shmids.get(shmid, shmid), self.tr(addr), flags])
        out = self._compare(rec, model, st)
        if model[0] == "ok" and rec.ret is not None and rec.err is None and \
                model[1] != self.tr(rec.ret):
            out.note = f"the model attached it at {model[1]:#x}"
        return out

    def _replay_pidfd_open(self, st: _Proc, rec: Record) -> Outcome:
        """pidfd_open(2) of a traced pid: a pidfd of its model process."""
        assert st.p is not None
        pid, flags = rec.args
        target = self.procs.get(pid)
        if target is None or target.p is None:
            return Outcome(rec, "env", note=f"pid {pid} is not a traced process")
        model = self._adopt_fd(st, rec, outcome(st.p, "pidfd_open", [target.p.pid, flags]))
        return self._compare(rec, model, st)

    def _replay_process_madvise(self, st: _Proc, rec: Record) -> Outcome:
        """process_madvise(2): the iovec laid out in a scratch mapping away from every
        VMA, the pidfd the model's."""
        assert st.p is not None
        pidfd, vec, vlen, advice, flags = rec.args
        mfd = self._model_fd(st, pidfd, rec)
        if mfd is None:
            return Outcome(rec, "skipped", note=f"pidfd {pidfd} is not known to the replay "
                           "(pidfd_open is not imported)")
        data = b"".join(self.tr(b).to_bytes(8, "little") + n.to_bytes(8, "little")
                        for b, n in vec)
        with self._scratch(st.p, len(data)) as scratch:
            model = outcome(st.p, "process_madvise",
                            [mfd, scratch.put(data, 16), vlen, advice, flags])
        return self._compare(rec, model, st)

    # ------------------------------------------------------------------ processes
    def _replay_clone(self, st: _Proc, rec: Record) -> Outcome:
        flags = rec.args[0] if rec.args else 0
        return self._new_child(st, rec, flags)

    def _replay_fork(self, st: _Proc, rec: Record) -> Outcome:
        return self._new_child(st, rec, 0)

    def _replay_vfork(self, st: _Proc, rec: Record) -> Outcome:
        return self._new_child(st, rec, _CLONE_VM)

    def _new_child(self, st: _Proc, rec: Record, flags: int) -> Outcome:
        """kernel/fork.c copy_process(): a thread or vfork child (CLONE_VM) shares the
        model process, a fork child is the model's fork; CLONE_FILES shares the fd
        table, else the child has a copy."""
        assert st.p is not None
        if rec.ret is None or rec.err is not None:
            return Outcome(rec, "env", note="no child was created")
        share = bool(flags & _CLONE_FILES)
        if flags & _CLONE_VM:
            child = _Proc(st.p, st.fds, share)
            child.borrowed = not flags & _CLONE_THREAD or st.borrowed
            child.execd, child.aslr = st.execd, st.aslr
            note = f"pid {rec.ret} shares this address space"
        else:
            child = _Proc(self.k.processes[dispatch(st.p, "fork", [])], st.fds)
            child.execd, child.aslr = st.execd, st.aslr
            note = f"pid {rec.ret} is a copy (fork)"
        self.procs[rec.ret] = child
        return Outcome(rec, "env", ("ok", rec.ret),
                       note=note + (" and this fd table" if share else ""))

    def _replay_execve(self, st: _Proc, rec: Record) -> Outcome:
        """fs/exec.c: the model's execve (Process.execve) with the recorded argv and
        envp, and the recorded random bases if the run had ASLR on (_aslr_exec); a vfork
        child gets its own process first. The first execve is the --maps dump instead
        when one is given."""
        if rec.err is not None:
            return Outcome(rec, "env", note="a failed execve changes nothing")
        assert st.p is not None
        if st is self.first and self.start_maps is not None and not st.execd:
            st.execd = True
            return Outcome(rec, "env", note="the replay starts from the address space "
                           "after this execve (the --maps dump)")
        path = rec.args[0]
        p = st.p
        if st.borrowed:                     # the vfork child leaves its parent's mm
            p = self.k.processes[dispatch(p, "fork", [])]
        notes = []
        if rec.argv is None:
            notes.append("argv is not in the trace (strace -v -s 4096 shows it): "
                         "[path] taken")
        if rec.envp is None:
            notes.append("the environment is not in the trace (strace -v shows it): "
                         "none taken, the [stack] may start higher than recorded")
        argv, envp = rec.argv or [path], rec.envp or []
        st.aslr = False
        try:
            p.execve(path, argv, envp)
            notes += self._aslr_exec(st, rec, p, argv, envp)
            model: tuple = ("ok", 0)
        except OSError as exc:
            model = ("err", errno_name(exc.errno) if exc.errno is not None else "?")
        if model[0] != "ok":
            st.unknown = (f"the model's execve of {path} failed ({model[1]}): the new "
                          "image is not known")
            if st is self.first:
                self.gaps.append(st.unknown)
            missing = model[1] in ("ENOENT", "ENOTDIR", "EACCES")   # not on this machine
            return Outcome(rec, "skipped" if missing else "differ", model, note=st.unknown)
        st.p, st.borrowed, st.execd = p, False, True
        if st is self.first and rec.envp is None:
            self.gaps.append("the environment of the first execve is not in the trace "
                             "(strace -v shows it; `vmsim record` records it): the [stack] "
                             "may start elsewhere")
        st.fds = {fd: mfd for fd, mfd in st.fds.items() if mfd in p.files}  # unshare, cloexec
        st.brk_seen = False
        return Outcome(rec, "agree" if rec.ret == 0 else "unchecked", ("ok", 0),
                       note="; ".join(notes) or None)

    def _aslr_exec(self, st: _Proc, rec: Record, p: Process, argv: list[str],
                   envp: list[str]) -> list[str]:
        """When the first calls after the model's execve of p (ASLR off) show the run laid
        out something else (brk(NULL), the first mmap): p exec'd again with the bases
        those calls show (vmsim.trace.aslr), so that the rest of the replay lays out what
        the run did. Each base no call shows (the stack's always) is a gap of the replay.
        Returns the note naming each base taken from the trace."""
        evidence = Evidence.gather(self._after(rec))
        if not evidence.contradicts(p):
            return []
        path = rec.args[0]
        p.execve(path, argv, envp, bases=ExecBases())
        inferred = infer_bases(p, evidence)
        p.execve(path, argv, envp, bases=inferred.bases)
        st.aslr = True
        for unknown in inferred.unknown:
            gap = f"{path} ran with ASLR on, and {unknown}"
            if gap not in self.gaps:
                self.gaps.append(gap)
        return ["ASLR was on; taken from the trace: " + "; ".join(inferred.taken)
                if inferred.taken else "ASLR was on; no base is in the trace"]

    def _after(self, rec: Record) -> Iterator[Record]:
        """The records of rec's pid after rec, up to its next execve or its end, at most
        LOOKAHEAD of them."""
        if self._positions is None:
            self._positions = {id(r): i for i, r in enumerate(self.trace.records)}
        records = self.trace.records
        start = self._positions.get(id(rec))
        if start is None:
            return
        mine = (r for r in (records[i] for i in range(start + 1, len(records)))
                if r.pid == rec.pid)
        for _, r in zip(range(LOOKAHEAD), mine, strict=False):
            if r.call == "execve" or r.event in ("exited", "killed"):
                return
            yield r

    def _replay_exit(self, st: _Proc, rec: Record) -> Outcome:
        st.exited = True
        return Outcome(rec, "env")

    # ------------------------------------------------------------------ SGX ioctls
    def _replay_ioctl(self, st: _Proc, rec: Record) -> Outcome:
        """An SGX ioctl with its decoded struct: the struct and what it points to laid
        out in a temporary mapping (vmsim.enclave.loader.marshal), then the ioctl."""
        assert st.p is not None
        fd, cmd, arg = rec.args
        mfd = self._model_fd(st, fd, rec)
        if mfd is None:
            return Outcome(rec, "skipped", note=f"fd {fd} was not opened in the trace")
        if not isinstance(arg, dict):
            name = SGX_IOCTL_NAMES.get(cmd, f"{cmd:#x}")
            return Outcome(rec, "skipped", note=f"{name}: the argument struct is not in the "
                           "trace (strace prints a bare pointer; record a vmsim JSON trace)")
        need = 4 * PAGE_SIZE + sum(len(v) for v in arg.values() if isinstance(v, bytes))
        fields = dict(arg)
        if "data" in fields:                # ADD_PAGES: the source pages, `length` of them
            want = fields.get("length", 0)
            data = fields["data"][:want]
            fields["data"] = data.ljust(want, b"\0") if want <= MAX_BLOBS else data
        if SGX_IOCTL_NAMES.get(cmd) == "SGX_IOC_ENCLAVE_PROVISION":
            fields["fd"] = st.fds.get(fields.get("fd", -1), -1)
        with self._scratch(st.p, need) as scratch:
            model = outcome(st.p, "ioctl", [mfd, cmd, marshal(scratch, cmd, fields)])
        return self._compare(rec, model, st)


#: how each call is replayed; any other is `_replay_syscall`
_REPLAY: dict[str, Callable[[Replayer, _Proc, Record], Outcome]] = {
    "mmap": Replayer._replay_mmap, "mremap": Replayer._replay_mremap,
    "brk": Replayer._replay_brk, "open": Replayer._replay_open,
    "close": Replayer._replay_close, "dup": Replayer._replay_dup,
    "dup2": Replayer._replay_dup2, "clone": Replayer._replay_clone,
    "fork": Replayer._replay_fork, "vfork": Replayer._replay_vfork,
    "execve": Replayer._replay_execve, "exit": Replayer._replay_exit,
    "ioctl": Replayer._replay_ioctl, "fcntl": Replayer._replay_fcntl,
    "memfd_create": Replayer._replay_memfd_create, "unlink": Replayer._replay_path_call,
    "unlinkat": Replayer._replay_path_call, "rename": Replayer._replay_path_call,
    "shmget": Replayer._replay_shmget, "shmat": Replayer._replay_shmat,
    "process_madvise": Replayer._replay_process_madvise,
    "pidfd_open": Replayer._replay_pidfd_open, "shmctl": Replayer._replay_shmctl,
    "ftruncate": Replayer._replay_ftruncate,
}
_FCNTL_DUP = frozenset({CONSTANTS["F_DUPFD"], CONSTANTS["F_DUPFD_CLOEXEC"]})


def _host_path(path: str) -> str:
    """path with the host's symbolic links resolved, as the replay's opens do."""
    real = os.path.realpath(path)
    return real if real != path and os.path.lexists(os.path.dirname(real)) else path


def final_differences(trace: Trace, p: Process) -> list[str]:
    """A recorded run's exit snapshot (`vmsim record`) against the model process p:
    the maps lines only one of them has, then the VMAs whose VmFlags differ. Empty
    when identical, or when the trace has no snapshot."""
    out: list[str] = []
    if trace.exit_maps is None:
        return out
    recorded = [_comparable(ln) for ln in trace.exit_maps.splitlines()]
    model = [_comparable(ln) for ln in p.maps().splitlines()]
    only_rec, only_model = set(recorded) - set(model), set(model) - set(recorded)
    out += [f"recorded only: {ln}" for ln in recorded if ln in only_rec]
    out += [f"model only:    {ln}" for ln in model if ln in only_model]
    if trace.exit_smaps is not None:
        theirs, ours = _vmflags(trace.exit_smaps), _vmflags(p.smaps())
        out += [f"VmFlags of {rng}: recorded {flags}, model {ours[rng]}"
                for rng, flags in theirs.items() if rng in ours and ours[rng] != flags]
    return out


#: the files a run creates whose inode number the trace cannot show: memfds, SysV
#: segments (the inode is the host's shmid) and files deleted since
_UNKNOWABLE_INODE = ("/memfd:", "/SYSV")


def _comparable(line: str) -> str:
    """A maps line, its inode shown as `?` when the trace cannot know it."""
    fields = line.split(None, 5)
    if len(fields) == 6 and (fields[5].startswith(_UNKNOWABLE_INODE) or
                             fields[5].endswith(" (deleted)")):
        start = line.index(fields[4], len(" ".join(fields[:4])))
        return line[:start] + "?".ljust(len(fields[4])) + line[start + len(fields[4]):]
    return line


def _vmflags(smaps: str) -> dict[str, str]:
    """range -> VmFlags of an smaps text."""
    out: dict[str, str] = {}
    rng = ""
    for line in smaps.splitlines():
        if line.startswith("VmFlags:"):
            out[rng] = " ".join(line.split()[1:])
        elif line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
            rng = line.split(" ", 1)[0]
    return out


def _like_host(inode, path: str) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        return
    inode.dev, inode.ino = (os.major(st.st_dev), os.minor(st.st_dev)), st.st_ino
    inode.size = st.st_size


def _span(p: Process, addr: int, length: int) -> list:
    end = addr + page_align(length)
    return [(v.start, v.end, v.perms, v.name) for v in p.vmas() if v.start < end and v.end > addr]


def summarize(outcomes: list[Outcome], placement: str = "trace") -> dict:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.verdict] = counts.get(o.verdict, 0) + 1
    refused = sum(1 for o in outcomes if o.verdict == "agree" and o.rec.err is not None)
    diverged = counts.get("differ", 0) + (counts.get("placement", 0)
                                          if placement == "trace" else 0)
    return {"calls": sum(1 for o in outcomes if o.rec.call is not None or o.rec.event == "access"),
            "agree": counts.get("agree", 0), "refused_as_recorded": refused,
            "differ": counts.get("differ", 0), "placement": counts.get("placement", 0),
            "unchecked": counts.get("unchecked", 0), "skipped": counts.get("skipped", 0),
            "env": counts.get("env", 0), "divergent": diverged}
