"""strace import: the text of `strace -f [-t|-tt|-ttt] [-T] [-y|-yy] [-X raw|abbrev|verbose]
[-k] [-v]` as Records.

The line grammar is vmsim.syscalls.strace's (`strip_prefix`, `strip_decorations`,
`split_flat_args`, `parse_result`, `parse_event`), the calls and their arguments the
syscall table's; this module adds what a whole strace log has:

* `<unfinished ...>` / `<... NAME resumed>` pairs, joined per pid; the call is placed
  where it completed (the resumed line), a clone/fork/vfork where it started;
* `-y`/`-yy` decorations (`3</usr/lib/libc.so.6>`, `AT_FDCWD</tmp>`, `(deleted)`),
  kept as the record's fd_path / ret_path;
* strace's own `strace: Process N attached` messages, also where they cut a line, and
  `-k` stack frames;
* the arguments strace prints its own way: ioctl (SGX commands only), clone/clone3
  (`flags=`), execve's argv and environment (when strace shows them in full), fcntl
  (the commands replayed), shmctl (IPC_RMID), process_madvise's iovec, and
  `syscall_0x1ce(...)` (mseal on an strace that does not know it: every register is
  printed).

A call the table does not import is only named and counted (`Trace.skipped`), never
decoded; an imported call with a flag name vmsim does not know is kept undecoded (an
`undecoded` record, skipped at replay with the reason). Every step is linear in the
line. A line that is not strace output, is cut short or holds a value that cannot be
(a number past 128 bits) raises TraceError naming file and line.
"""

from __future__ import annotations

import re

from ..syscalls import strace as syntax
from ..syscalls.inputs import check_path, cut
from ..syscalls.names import CONSTANTS
from ..syscalls.strace import Expr
from ..syscalls.table import ALIASES, BY_NUMBER, TABLE, fold
from .format import CALLS, SGX_IOCTL_NAMES, Record, Trace, TraceError, parse_int

#: the calls imported; prctl is not (strace prints its string arguments, PR_SET_NAME)
STRACE_CALLS = CALLS - {"prctl"}

_CALL = re.compile(r"^([A-Za-z_][A-Za-z_0-9]*)\(")
_BY_NUMBER = re.compile(r"syscall_(0x[0-9a-f]{1,16}|\d{1,20})")
#: `strace: Process 12 attached`, also as `/usr/bin/strace: ...`; searched for in every
#: line, so the program name starts where a run of non-blanks does (linear time)
_STRACE_MSG = re.compile(r"(?:(?<!\S)\S*/)?strace: Process (\d{1,10}) "
                         r"(?:attached|detached|suspended)(?: \(waiting for parent\))?")


def imported_as(name: str) -> str | None:
    """The call a strace name is imported as (aliases folded, `syscall_0x1ce` by its
    number), or None: skipped."""
    m = _BY_NUMBER.fullmatch(name)
    if m:
        nr = m.group(1)
        entry = BY_NUMBER.get(int(nr, 16) if nr.startswith("0x") else int(nr))
        return entry.name if entry is not None and entry.name in STRACE_CALLS else None
    return fold(name, STRACE_CALLS)


def _strings(raw: list[str]) -> list[str] | None:
    """execve's argv or envp as strace prints it (`["ls", "-l"]`); None when it shows
    only an address (`0x7ffd... /* 39 vars */`) or cuts the array or a string short."""
    if not raw or not raw[0].startswith("[") or not raw[0].endswith("]"):
        return None
    items = syntax.split_args(raw[0][1:-1])
    out = []
    for item in items:
        if item == "..." or item.endswith("..."):
            return None
        data = syntax.parse_cstring(item)[0]
        out.append(data.decode("utf-8", "surrogateescape"))
    return out


#: the fcntl commands replayed (new fds, close-on-exec, memfd seals); others are skipped
FCNTL_CMDS = frozenset(CONSTANTS[n] for n in ("F_DUPFD", "F_DUPFD_CLOEXEC", "F_SETFD",
                                              "F_ADD_SEALS"))
_IOVEC = re.compile(r"\{iov_base=([^,{}]*), iov_len=([^,{}]*)\}")


_FCNTL_CMD = re.compile(r"fcntl\([^,]*,\s*(F_[A-Z0-9_]+)")
_FCNTL_NAMES = frozenset(("F_DUPFD", "F_DUPFD_CLOEXEC", "F_SETFD", "F_ADD_SEALS"))


def _fcntl_not_replayed(s: str) -> bool:
    """Whether an fcntl line names a command that is not replayed (F_GETFL, locks):
    known by its name, before decoding the line."""
    m = _FCNTL_CMD.match(s)
    return m is not None and m.group(1) not in _FCNTL_NAMES


def _bind_fcntl(raw: list[str]) -> list | None:
    """fcntl(fd, cmd[, arg]) for the commands in FCNTL_CMDS; None for another (its
    argument may be a struct: a lock, an owner)."""
    if len(raw) < 2:
        raise ValueError("fcntl takes 2 or 3 arguments")
    try:
        cmd = parse_int(raw[1])
    except ValueError:
        return None
    if cmd not in FCNTL_CMDS:
        return None
    return [parse_int(raw[0]), cmd, parse_int(raw[2]) if len(raw) > 2 else 0]


def _bind_process_madvise(raw: list[str]) -> list:
    """process_madvise(pidfd, [{iov_base=..., iov_len=...}, ...], vlen, advice, flags):
    the iovec as a list of (base, len)."""
    if len(raw) < 4:
        raise ValueError("process_madvise takes 5 arguments")
    vec = [(parse_int(b), parse_int(n)) for b, n in _IOVEC.findall(raw[1])]
    advice = syntax.parse_expr(raw[3]).eval({})
    return [parse_int(raw[0]), vec, parse_int(raw[2]), advice,
            parse_int(raw[4]) if len(raw) > 4 else 0]


def _path(raw: str) -> str:
    data = syntax.parse_cstring(raw)[0]
    check_path(data)
    return data.decode("utf-8", "surrogateescape")


class _Importer:
    def __init__(self, path: str | None):
        self.path = path
        self.records: list[Record] = []
        self.skipped: dict[str, int] = {}
        self.pending: dict = {}          # pid -> (text, line, name); text "": not imported
        self.names: dict[str, str | None] = {}     # strace name -> imported_as()
        # strace writing to stderr prefixes `[pid N]` only while several tracees live:
        # the unprefixed process is then shown with its pid, and once it is gone the
        # last one left loses its prefix. alias maps such pids onto one identity.
        self.alias: dict = {}
        self.children: set = set()
        self.live: set = set()
        self.bare_seen = False
        self.bare_exited = False

    def canon(self, pid: int | None) -> int | None:
        if pid is None:
            if self.bare_exited:
                others = [p for p in self.live if p is not None]
                if len(others) == 1:
                    return others[0]
            self.bare_seen = True
            return None
        if pid in self.alias:
            return self.alias[pid]
        if self.bare_seen and not self.bare_exited and pid not in self.children:
            self.alias[pid] = None
            return None
        return pid

    def err(self, reason: str, line: int) -> TraceError:
        return TraceError(reason, self.path, line)

    def skip(self, name: str) -> None:
        self.skipped[name] = self.skipped.get(name, 0) + 1

    def feed(self, raw: str, no: int) -> None:
        """One line: a call, a half of one, an event, or strace's own text. A call the
        table does not import is only named and counted, never decoded."""
        s = raw.strip()
        if not s or s[0] == ">" or s.startswith("strace: "):   # `-k` frames, messages
            return
        pid, bracketed, s = syntax.strip_prefix(s)
        if bracketed or pid is None:
            pid = self.canon(pid)
        if s.startswith(("---", "+++")):
            self.event(s, pid, no, raw)
            return
        if s[:1] == "<":
            self.resumed(s, pid, no, raw)
            return
        m = _CALL.match(s)
        if m is None:
            raise self.err("not an strace line: expected `name(args...) = result`", no)
        name = m.group(1)
        ours = self.imported(name)
        if s.endswith(">") and syntax.UNFINISHED.search(s):
            if pid in self.pending:
                raise self.err(f"pid {pid} has two unfinished calls", no)
            self.pending[pid] = (syntax.UNFINISHED.sub("", s) if ours else "", no, name)
            return
        if ours is None or (ours == "fcntl" and _fcntl_not_replayed(s)):
            self.skip(name if ours is None else f"{name}(not replayed)")
            return
        self.call(s, pid, no, raw, ours)

    def imported(self, name: str) -> str | None:
        """imported_as(name), remembered: a log names few calls many times."""
        try:
            return self.names[name]
        except KeyError:
            ours = self.names[name] = imported_as(name)
            return ours

    def resumed(self, s: str, pid: int | None, no: int, raw: str) -> None:
        """`<... NAME resumed>...`: the call completes here, and is replayed here (its
        effects are the kernel's when it returns); a process-creating call at its
        start, where its child begins."""
        m = syntax.RESUMED.match(s)
        if m is None:
            raise self.err("not an strace line: expected `<... NAME resumed>`", no)
        name = m.group(1)
        start = self.pending.pop(pid, None)
        if start is None or start[2] != name:
            raise self.err(f"`<... {cut(name)} resumed>` without an earlier "
                           f"`{cut(name)}(... <unfinished ...>` of pid {pid}", no)
        ours = self.imported(name)
        if ours is None:
            self.skip(name)
            return
        line = start[1] if ours in ("clone", "fork", "vfork") else no
        self.call(start[0] + s[m.end():], pid, line, raw, ours)

    def event(self, s: str, pid: int | None, no: int, raw: str) -> None:
        try:
            event, sig = syntax.parse_event(s)
        except ValueError as exc:
            raise self.err(str(exc), no) from None
        self.records.append(Record(None, pid=pid, line=no, text=raw.rstrip("\n"),
                                   event=event, signal=sig))
        if event != "signal":
            self.live.discard(pid)
            if pid is None:
                self.bare_exited = True

    def call(self, s: str, pid: int | None, no: int, raw: str, ours: str) -> None:
        """Decode an imported call's line into a Record."""
        m = _CALL.match(s)
        if not m:
            raise self.err("not an strace line: expected `name(args...) = result`", no)
        name = m.group(1)
        try:
            clean, decos = syntax.strip_decorations(s)
            close = syntax.call_close(clean, m.end() - 1)
        except ValueError as exc:
            raise self.err(f"{exc} (is the line cut short?)", no) from None
        rest = clean[close + 1:].strip()
        if not rest.startswith("="):
            raise self.err("missing `= result` after the call (is the line cut short?)", no)
        res_text = rest[1:].strip()
        if res_text.startswith("?"):
            res_text = "?"
        elif res_text.endswith(">"):
            res_text = syntax.TIMING.sub("", res_text)
        try:
            raw_args = syntax.split_flat_args(clean[m.end():close])
            result = syntax.parse_result(res_text)
        except ValueError as exc:
            raise self.err(str(exc), no) from None
        rec = Record(ours, pid=pid, line=no, text=raw.strip())
        try:
            for pos, path in decos:
                check_path(path)
                if pos > close:
                    rec.ret_path = path
                elif not clean.endswith(("AT_FDCWD", "-100"), 0, pos):  # a dirfd: not the fd
                    rec.fd_path = path
            self.result(rec, result)
            args = self.bind(ours, name, raw_args)
            if ours == "execve":
                rec.argv, rec.envp = _strings(raw_args[1:2]), _strings(raw_args[2:3])
        except ValueError as exc:
            if "unknown name" not in str(exc):
                raise self.err(str(exc), no) from None
            # a flag this vmsim has no name for (a newer kernel's): kept, not decoded
            self.records.append(Record(None, pid=pid, line=no, text=raw.strip(),
                                       event="undecoded", comment=f"{name}: {exc}"))
            return
        if ours in ("clone", "fork", "vfork") and rec.ret is not None and rec.ret > 0:
            self.children.add(rec.ret)
            self.live.update({rec.ret, pid})
        if args is None:                    # an ioctl not SGX's, an fcntl not replayed
            self.skip(f"{name}(non-SGX)" if ours == "ioctl" else f"{name}(not replayed)")
            return
        rec.args = args
        self.records.append(rec)

    @staticmethod
    def result(rec: Record, r: syntax.Result | None) -> None:
        if r is None or r.kind == "unknown":
            return
        if r.kind == "sig":
            raise ValueError("a signal is not a syscall result")
        if r.kind == "err":
            rec.err = r.errname
        elif isinstance(r.value, Expr):
            rec.ret = r.value.eval({})
        else:
            raise ValueError(f"bad result {r.value!r}")

    def bind(self, ours: str, name: str, raw: list[str]) -> list | None:
        """The Record's arguments from strace's argument texts; None for an ioctl
        that is not SGX's."""
        alias = ALIASES.get(name)
        if alias is not None and alias.dirfd:
            if len(raw) < 3:
                raise ValueError(f"{name} takes 3 or 4 arguments")
            raw = raw[1:]
        if ours == "open":
            if not 2 <= len(raw) <= 3:
                raise ValueError("open takes 2 or 3 arguments")
            mode = parse_int(raw[2], "open mode") if len(raw) > 2 else 0
            return [_path(raw[0]), parse_int(raw[1], "open flags"), mode]
        if ours == "dup2":
            if len(raw) < 2:
                raise ValueError(f"{name} takes 2 or 3 arguments")
            return [parse_int(raw[0]), parse_int(raw[1])]
        if ours == "ioctl":
            return self.bind_ioctl(raw)
        if ours == "clone":
            m = re.search(r"flags=([^,}]+)", ", ".join(raw))
            return [parse_int(m.group(1).strip(), "clone flags") if m else 0]
        if ours in ("fork", "vfork"):
            return []
        if ours == "execve":
            if not raw:
                raise ValueError("execve takes 3 arguments")
            return [_path(raw[0])]
        if ours == "exit":
            return [parse_int(raw[0])] if raw else [0]
        if ours == "fcntl":
            return _bind_fcntl(raw)
        if ours == "process_madvise":
            return _bind_process_madvise(raw)
        if ours == "shmctl":            # IPC_RMID only: the others print a struct
            if len(raw) < 2 or raw[1].strip() != "IPC_RMID":
                return None
            return [parse_int(raw[0]), CONSTANTS["IPC_RMID"], 0]
        if _BY_NUMBER.fullmatch(name):      # strace printed every register
            raw = raw[:len(TABLE[ours].kinds)]
        args = syntax.bind_args(TABLE[ours], raw, {})
        return [a.eval({}) if isinstance(a, Expr) else a for a in args]

    @staticmethod
    def bind_ioctl(raw: list[str]) -> list | None:
        if len(raw) < 2:
            raise ValueError("ioctl takes 2 or 3 arguments")
        try:
            cmd = parse_int(raw[1].strip()) & 0xFFFFFFFF
        except ValueError:
            return None
        if cmd not in SGX_IOCTL_NAMES:
            return None
        arg = 0
        if len(raw) > 2:
            try:
                arg = parse_int(raw[2])
            except ValueError:
                arg = 0                 # a struct strace decoded: not SGX's
        return [parse_int(raw[0]), cmd, arg]

    def finish(self) -> Trace:
        for pid, (body, no, name) in sorted(self.pending.items(), key=lambda kv: kv[1][1]):
            if self.imported(name) is None:
                self.skip(name)
                continue
            ending = " = ?" if body.rstrip().endswith(")") else ") = ?"
            try:                        # never resumed: the process died in it
                self.call(body + ending, pid, no, body + " <unfinished ...>",
                          imported_as(name) or name)
            except TraceError:
                self.skip(name)
        self.records.sort(key=lambda r: r.line or 0)
        return Trace(self.records, self.path, skipped=self.skipped, source="strace")


def _join_strace_messages(lines: list[str], imp: _Importer) -> None:
    """strace's own messages ("strace: Process 12 attached") land in the middle of a
    line when strace writes to a terminal or stderr; the `<unfinished ...>` of that
    line then follows on a line of its own. Mend the lines in place; a process
    attached after the start is a child."""
    seen_call = False
    for i, ln in enumerate(lines):
        m = _STRACE_MSG.search(ln) if "strace: " in ln else None
        if m is None:
            seen_call = seen_call or bool(ln.strip())
            continue
        if seen_call or m.start() > 0:
            imp.children.add(int(m.group(1)))
        head = ln[:m.start()]
        if head.strip() and m.end() == len(ln.rstrip()):
            # the message and its newline cut a line in two: the rest of it is the next
            # line that continues a call (`, ...`, `) = ...`, ` <unfinished ...>`)
            for j in range(i + 1, min(i + 64, len(lines))):
                if lines[j].lstrip().startswith((",", ")", "<unfinished")):
                    lines[i] = head + lines[j]
                    lines[j] = ""
                    break
            else:                           # continued by a `<... NAME resumed>` line
                lines[i] = head + " <unfinished ...>"
        else:
            lines[i] = head + ln[m.end():]
        seen_call = seen_call or bool(lines[i].strip())
    last: int | None = None                 # the last line with text
    marked: int | None = None               # the last line given an `<unfinished ...>`
    for i, ln in enumerate(lines):
        if ln.strip() == "<unfinished ...>" and last is not None:
            if marked != last:
                lines[last] = lines[last].rstrip() + " <unfinished ...>"
                marked = last
            lines[i] = ""
        elif ln.strip():
            last = i


def parse_strace(text: str, path: str | None = None) -> Trace:
    """strace text -> Trace. Raises TraceError(file, line, reason)."""
    imp = _Importer(path)
    lines = text.splitlines()
    _join_strace_messages(lines, imp)
    for no, raw in enumerate(lines, 1):
        imp.feed(raw, no)
    return imp.finish()
