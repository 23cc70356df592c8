"""strace import: the text of `strace -f [-tt|-ttt|-t] [-y|-yy] [-X raw|abbrev]` as Records.

The line grammar is scenario.py's (`parse_line`, `split_args`, `parse_result`,
`bind_args`); this module adds what real strace output has and a scenario has not:

* `<unfinished ...>` / `<... NAME resumed>` pairs, joined per pid;
* `-y`/`-yy` decorations (`3</usr/lib/libc.so.6>`, `AT_FDCWD</tmp>`), kept as the
  record's fd_path / ret_path;
* `/* ... */` comments (`-X verbose`, `/* 39 vars */`), `-t` timestamps without a
  fraction, `= ? ERESTARTSYS (...)` and `= ? <unavailable>` results;
* the calls a scenario has not: ioctl (SGX commands), clone/clone3/fork/vfork,
  execve, exit/exit_group, dup2/dup3, and `syscall_0x1ce(...)` (mseal on an strace
  that does not know it).

Unknown syscalls are skipped and counted (`Trace.skipped`); a line that is not strace
output, is cut short or does not parse raises TraceError naming file and line.
"""

from __future__ import annotations

import re

from ..diff import scenario as S
from .format import EXTRA_NAMES, SGX_IOCTL_NAMES, SGX_IOCTLS, Record, Trace, TraceError, parse_int

#: the syscalls imported (strace name -> ours); everything else is skipped and counted
HANDLED = {"mmap": "mmap", "mmap2": "mmap", "munmap": "munmap", "mprotect": "mprotect",
           "pkey_mprotect": "pkey_mprotect", "pkey_alloc": "pkey_alloc",
           "pkey_free": "pkey_free", "mremap": "mremap", "brk": "brk", "madvise": "madvise",
           "mseal": "mseal", "syscall_0x1ce": "mseal", "syscall_462": "mseal",
           "mlock": "mlock", "mlock2": "mlock2", "munlock": "munlock",
           "personality": "personality", "open": "open", "openat": "open",
           "close": "close", "dup": "dup", "dup2": "dup2", "dup3": "dup2", "ioctl": "ioctl",
           "clone": "clone", "clone3": "clone", "fork": "fork", "vfork": "vfork",
           "execve": "execve", "exit": "exit", "exit_group": "exit"}

_PID = re.compile(r"^(?:\[pid\s+(\d+)\]\s*|(\d+)\s+)")
_TS = re.compile(r"^(?:\d+:\d+:\d+(?:\.\d+)?|\d+\.\d+)\s+")
_UNFINISHED = re.compile(r"\s*<unfinished \.\.\.>\s*$")
_RESUMED = re.compile(r"^<\.\.\.\s+([A-Za-z_0-9]+)\s+resumed>\s?")
_COMMENT = re.compile(r"/\*.*?\*/")
_NAME = re.compile(r"^([A-Za-z_][A-Za-z_0-9]*)\(")
_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z_0-9]*\b")


def strip_decorations(s: str) -> tuple[str, list]:
    """Remove -y/-yy decorations (`3</path>`, `AT_FDCWD</tmp>`, nested `<...<char
    1:3>>`) and /* */ comments outside string literals. Returns (text, [(pos, path)])
    with pos the index in the cleaned text where the decoration was."""
    out, decos, i, n = [], [], 0, len(s)
    in_str = False
    while i < n:
        c = s[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(s[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
            continue
        if c == '"':
            in_str = True
            out.append(c)
            i += 1
            continue
        if c == "/" and s.startswith("/*", i):
            j = s.find("*/", i + 2)
            if j < 0:
                raise ValueError("unterminated /* comment")
            i = j + 2
            continue
        if c == "<" and out and (out[-1].isalnum() or out[-1] == "_") and \
                not s.startswith("<unfinished", i):
            depth, j = 0, i
            while j < n:
                if s[j] == "<":
                    depth += 1
                elif s[j] == ">":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise ValueError("unterminated <...> fd decoration")
            inner = s[i + 1:j]
            k = inner.find("<")
            decos.append((len(out), inner[:k] if k >= 0 else inner))
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out), decos


def _subst_names(raw: str) -> str:
    """Replace names scenario.CONSTANTS lacks but strace prints by their values."""
    if '"' in raw:
        return raw
    return _IDENT.sub(lambda m: str(EXTRA_NAMES[m.group(0)])
                      if m.group(0) in EXTRA_NAMES and m.group(0) not in S.CONSTANTS
                      else m.group(0), raw)


def _value(expr) -> int:
    return expr.eval({"W": S.WINDOW_BASE, "B": S.DEFAULT_BRK}) if isinstance(expr, S.Expr) \
        else expr


class _Importer:
    def __init__(self, path):
        self.path = path
        self.records: list[Record] = []
        self.skipped: dict[str, int] = {}
        self.pending: dict = {}          # pid -> (text, line)
        # strace writing to stderr prefixes `[pid N]` only while several tracees live:
        # the unprefixed process is then shown with its pid, and once it is gone the
        # last one left loses its prefix. alias maps such pids onto one identity.
        self.alias: dict = {}
        self.children: set = set()
        self.live: set = set()
        self.bare_seen = False
        self.bare_exited = False

    def canon(self, pid):
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

    def err(self, reason, line):
        return TraceError(reason, self.path, line)

    def feed(self, raw: str, no: int) -> None:
        s = raw.strip()
        if not s or s.startswith(("strace: ", "> ")):
            return
        pid = None
        m = _PID.match(s)
        bracket = False
        if m:
            pid = int(m.group(1) or m.group(2))
            bracket = m.group(1) is not None
            s = s[m.end():]
        if bracket or pid is None:
            pid = self.canon(pid)
        m = _TS.match(s)
        if m:
            s = s[m.end():]
        if s.startswith("---"):
            if not s.endswith("---"):
                raise self.err("unterminated `--- ... ---` signal line", no)
            body = s[3:-3].strip()
            sig = re.match(r"(?:stopped by )?(SIG[A-Z0-9]+)", body)
            self.records.append(Record(None, pid=pid, line=no, text=raw.rstrip("\n"),
                                       event="signal", signal=sig.group(1) if sig else None))
            return
        if s.startswith("+++"):
            if not s.endswith("+++"):
                raise self.err("unterminated `+++ ... +++` exit line", no)
            body = s[3:-3].strip()
            m = re.match(r"killed by (SIG[A-Z0-9]+)", body)
            if m:
                ev, sig = "killed", m.group(1)
            elif re.match(r"exited with -?\d+$", body):
                ev, sig = "exited", None
            else:
                raise self.err(f"unknown strace event {body!r}", no)
            self.records.append(Record(None, pid=pid, line=no, text=raw.rstrip("\n"),
                                       event=ev, signal=sig))
            self.live.discard(pid)
            if pid is None:
                self.bare_exited = True
            return
        m = _RESUMED.match(s)
        if m:
            name = m.group(1)
            start = self.pending.pop(pid, None)
            if start is None or start[2] != name:
                raise self.err(f"`<... {name} resumed>` without an earlier "
                               f"`{name}(... <unfinished ...>` of pid {pid}", no)
            s, no0 = start[0] + s[m.end():], start[1]
            self.call(s, pid, no0, raw)
            return
        if _UNFINISHED.search(s):
            body = _UNFINISHED.sub("", s)
            m = _NAME.match(body)
            if not m:
                raise self.err("expected `name(args...` before <unfinished ...>", no)
            if pid in self.pending:
                raise self.err(f"pid {pid} has two unfinished calls", no)
            self.pending[pid] = (body, no, m.group(1))
            return
        self.call(s, pid, no, raw)

    def call(self, s: str, pid, no: int, raw: str) -> None:
        m = _NAME.match(s)
        if not m:
            raise self.err("not an strace line: expected `name(args...) = result`", no)
        name = m.group(1)
        try:
            clean, decos = strip_decorations(s)
            close = S._find_close(clean, m.end() - 1)
        except ValueError as exc:
            raise self.err(f"{exc} (is the line cut short?)", no) from None
        rest = clean[close + 1:].strip()
        if not rest.startswith("="):
            raise self.err("missing `= result` after the call (is the line cut short?)", no)
        if name not in HANDLED:
            self.skipped[name] = self.skipped.get(name, 0) + 1
            return
        ours = HANDLED[name]
        res_text = rest[1:].strip()
        if res_text.startswith("?"):
            res_text = "?"
        line_text = clean[:close + 1] + " = " + res_text
        try:
            call = S.parse_line(line_text)
        except ValueError as exc:
            raise self.err(str(exc), no) from None
        fd_path = ret_path = None
        for pos, path in decos:
            if pos > close:
                ret_path = path
            elif not re.search(r"AT_FDCWD\s*$|-100\s*$", clean[:pos]):
                fd_path = path
        rec = Record(ours, pid=pid, line=no, text=raw.strip(), fd_path=fd_path,
                     ret_path=ret_path)
        r = call.expect
        try:
            if r is None or r.kind == "unknown":
                pass
            elif r.kind == "err":
                rec.err = r.errname
            elif r.kind == "ok":
                rec.ret = _value(r.value)
            else:
                raise ValueError("a signal is not a syscall result")
            rec.args = self.bind(ours, name, call.raw_args)
        except ValueError as exc:
            raise self.err(str(exc), no) from None
        if ours in ("clone", "fork", "vfork") and rec.ret is not None and rec.ret > 0:
            self.children.add(rec.ret)
            self.live.update({rec.ret, pid})
        if rec.args is None:                # an ioctl that is not SGX's
            self.skipped[f"{name}(non-SGX)"] = self.skipped.get(f"{name}(non-SGX)", 0) + 1
            return
        self.records.append(rec)

    def bind(self, ours: str, name: str, raw: list):
        if ours == "open":
            if name == "openat":
                if len(raw) < 3:
                    raise ValueError("openat takes 3 or 4 arguments")
                raw = raw[1:]
            if not 2 <= len(raw) <= 3:
                raise ValueError("open takes 2 or 3 arguments")
            path, _ = S.parse_cstring(raw[0])
            flags = parse_int(_subst_names(raw[1]), "open flags")
            mode = parse_int(raw[2], "open mode") if len(raw) > 2 else 0
            return [path.decode("utf-8", "surrogateescape"), flags, mode]
        if ours == "mseal" and name != "mseal":
            raw = raw[:3]
        if ours in ("dup2",):
            if len(raw) < 2:
                raise ValueError(f"{name} takes 2 or 3 arguments")
            return [parse_int(raw[0]), parse_int(raw[1])]
        if ours == "ioctl":
            if len(raw) < 2:
                raise ValueError("ioctl takes 2 or 3 arguments")
            cmd_text = raw[1].strip()
            if cmd_text in SGX_IOCTLS:
                cmd = SGX_IOCTLS[cmd_text]
            else:
                try:
                    cmd = parse_int(cmd_text) & 0xFFFFFFFF
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
        if ours == "clone":
            flags = 0
            joined = ", ".join(raw)
            m = re.search(r"flags=([^,}]+)", joined)
            if m:
                flags = parse_int(_subst_names(m.group(1).strip()), "clone flags")
            return [flags]
        if ours in ("fork", "vfork"):
            return []
        if ours == "execve":
            if not raw:
                raise ValueError("execve takes 3 arguments")
            path, _ = S.parse_cstring(raw[0])
            return [path.decode("utf-8", "surrogateescape")]
        if ours == "exit":
            return [parse_int(raw[0])] if raw else [0]
        call = S.Call(name=ours, args=[], raw_args=[_subst_names(a) for a in raw])
        S.bind_args(call)
        return [_value(a) for a in call.args]

    def finish(self) -> Trace:
        for pid, (body, no, name) in sorted(self.pending.items(), key=lambda kv: kv[1][1]):
            if name in HANDLED:             # never resumed: the process died in it
                try:
                    self.call(body + ") = ?", pid, no, body + " <unfinished ...>") \
                        if not body.rstrip().endswith(")") else \
                        self.call(body + " = ?", pid, no, body + " <unfinished ...>")
                except TraceError:
                    self.skipped[name] = self.skipped.get(name, 0) + 1
        self.records.sort(key=lambda r: r.line or 0)
        return Trace(self.records, self.path, skipped=self.skipped, source="strace")


def parse_strace(text: str, path: str | None = None) -> Trace:
    """strace text -> Trace. Raises TraceError(file, line, reason)."""
    imp = _Importer(path)
    lines = text.splitlines()
    # strace's own messages ("strace: Process 12 attached") land in the middle of a
    # line when strace writes to a terminal or stderr; the `<unfinished ...>` of that
    # line then follows on a line of its own
    seen_call = False
    for i, ln in enumerate(lines):
        m = _STRACE_MSG.search(ln)
        if m is None:
            seen_call = seen_call or bool(ln.strip())
            continue
        if seen_call or m.start() > 0:       # a process attached after the start: a child
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
    for i, ln in enumerate(lines):
        if ln.strip() == "<unfinished ...>" and i:
            j = i - 1
            while j > 0 and not lines[j].strip():
                j -= 1
            lines[j] = lines[j].rstrip() + " <unfinished ...>"
            lines[i] = ""
    for no, raw in enumerate(lines, 1):
        imp.feed(raw, no)
    return imp.finish()


_STRACE_MSG = re.compile(r"(?:\S*/)?strace: Process (\d+) (?:attached|detached|suspended)"
                         r"(?: \(waiting for parent\))?")
