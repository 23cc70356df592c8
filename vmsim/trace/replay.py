"""Replaying a trace on the model: every call runs on a model process started from a
/proc/PID/maps dump (or empty), its result is compared with the recorded one, and every
refusal is explained.

    r = Replayer(trace, maps=text, placement="trace")
    for out in r.run():          # one Outcome per record
        print(out.verdict, out.why)
    r.process(pid).maps()

Placement: with "trace" a non-fixed mmap is given the recorded address as its hint
(the kernel takes a free hint as is, so the model must land there when its state
agrees), and an mremap the model moved elsewhere is moved on to the recorded address;
with "model" the model chooses, and later arguments inside a range it placed elsewhere
are translated.

The model is the kernel's mm layer, not its file system: a path the trace opened
successfully is created in the model's VFS when missing, and `execve` of the first
process is taken as the start state (the --maps dump); a later execve makes that
process's address space unknown, and its calls are skipped with that reason.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
from dataclasses import dataclass, field

from .. import uapi as U
from ..diff import scenario as S
from ..drivers.sgx import uapi as sgx
from .format import CLONE_VM, KINDS, MAX_BLOB, SGX_IOCTL_NAMES, Record, Trace, TraceError

U64 = (1 << 64) - 1
PAGE = 4096
MM_CALLS = {"mmap", "munmap", "mprotect", "pkey_mprotect", "mremap", "brk", "madvise",
            "mseal", "mlock", "mlock2", "munlock"}
ADDR_RESULT = {"mmap", "mremap", "brk"}
_NOWIN = {"W": 1 << 70, "B": 1 << 70}


def strerror(name: str) -> str:
    code = getattr(_errno, name, None)
    return os.strerror(code) if code else name


def format_result(call: str, kind: str, value) -> str:
    if kind == "err":
        return f"-1 {value} ({strerror(value)})"
    if kind == "ok":
        if value is None:
            return "?"
        if call in ADDR_RESULT:
            return f"{value & U64:#x}"
        return str(value)
    return "?"


def format_args(rec: Record) -> str:
    if rec.call is None:
        return rec.text or f"--- {rec.signal} ---"
    parts = []
    for kind, v in zip(KINDS[rec.call], rec.args):
        kind = kind.rstrip("?")
        if isinstance(v, dict):
            parts.append(_format_struct(v))
        elif kind in ("path", "str"):
            parts.append("NULL" if v is None else S.format_cstring(
                v.encode("utf-8", "surrogateescape")))
        elif kind == "ioctlcmd":
            parts.append(SGX_IOCTL_NAMES.get(v, f"{v:#x}"))
        elif kind in ("ioctlarg",):
            parts.append(f"{v:#x}")
        elif kind == "cloneflags":
            from .format import _fmt_int
            parts.append(f"flags={_fmt_int(kind, v)}")
        elif kind in ("fd",) and rec.fd_path and v >= 0 and rec.call != "dup2":
            parts.append(f"{v}<{rec.fd_path}>")
        elif kind == "prot" and v == 0:
            parts.append("PROT_NONE")
        elif kind in ("addr", "len", "off", "int", "fd", "pkey") or kind in S._FLAG_NAMES \
                or kind in S._ENUM_NAMES or kind in ("mapflags", "oflags", "mode"):
            parts.append(S.format_value(kind, v, _NOWIN))
        else:
            parts.append(str(v))
    while rec.call in ("open", "exit", "clone") and len(parts) > 2 and parts[-1] == "0":
        parts.pop()
    name = rec.call
    return f"{name}({', '.join(parts)})"


def _format_struct(v: dict) -> str:
    from .format import _secinfo_text
    out = []
    for k, val in v.items():
        if isinstance(val, bytes):
            out.append(f"{k}=<{len(val)} bytes>")
        elif k == "secinfo":
            out.append(f"secinfo={_secinfo_text(val)}")
        elif k == "flags" and val == sgx.SGX_PAGE_MEASURE:
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
    why: list = field(default_factory=list)
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
        d = {"line": rec.line, "pid": rec.pid, "call": rec.call or rec.event,
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
    """A traced pid: its model process, trace-fd -> model-fd table, status."""

    def __init__(self, p, fds=None):
        self.p = p
        self.fds: dict = dict(fds or {})
        self.unknown: str | None = None     # why this pid's address space is unknown
        self.exited = False
        self.brk_seen = False
        self.calls = 0


class Replayer:
    def __init__(self, trace: Trace, maps: str | None = None, smaps: str | None = None,
                 maps_path: str | None = None, placement: str = "trace",
                 kernel_kwargs: dict | None = None):
        import vmsim
        if placement not in ("trace", "model"):
            raise ValueError("placement is 'trace' or 'model'")
        self.vmsim = vmsim
        self.trace = trace
        self.placement = placement
        self.k = vmsim.Kernel(**(kernel_kwargs or {}))
        if maps is None and trace.maps is not None:
            maps, maps_path = trace.maps, f"{trace.path or '<trace>'} header"
        self.start_maps = maps
        if maps is not None:
            p = self.k.spawn(maps=maps, smaps=smaps, maps_path=maps_path)
        else:
            p = self.k.spawn(stack=True)
        for _ in range(3):          # stdin, stdout, stderr: the first open returns 3
            p.open("/dev/null", U.O_RDWR)
        self.first = _Proc(p, {0: 0, 1: 1, 2: 2})
        self.procs: dict = {}
        self.main_pid = None
        self.xlat: list = []        # (recorded start, length, model start)
        self.outcomes: list[Outcome] = []
        self.created: list = []     # ranges the trace itself mapped (recorded addresses)
        #: give files created on demand the host's device, inode number and size (the
        #: trace cannot show them; right when replaying on the machine that recorded it)
        self.host_files = True

    # ------------------------------------------------------------------ helpers
    def proc_for(self, pid) -> _Proc:
        if pid not in self.procs:
            if self.main_pid is None or not self.procs:
                self.main_pid = pid
                self.procs[pid] = self.first
            else:               # a pid whose creation the trace does not show
                st = _Proc(None)
                st.unknown = f"pid {pid} appears without a clone/fork in the trace"
                self.procs[pid] = st
        return self.procs[pid]

    def process(self, pid=None):
        """The model process of pid (default: the first traced process)."""
        if pid is None:
            return self.first.p
        return self.procs[pid].p

    def tr(self, addr: int) -> int:
        """A recorded address translated to the model's (placement "model")."""
        for rs, ln, ms in reversed(self.xlat):
            if rs <= addr < rs + ln or (addr == rs + ln and ln):
                return ms + (addr - rs)
        return addr

    def _model_fd(self, st: _Proc, fd: int, rec: Record, create: bool = True):
        if fd in st.fds:
            return st.fds[fd]
        if rec.fd_path and create:
            mfd = self._open_path(st.p, rec.fd_path, U.O_RDWR if rec.call == "ioctl"
                                  else U.O_RDONLY, writable_hint=rec)
            if mfd is not None:
                st.fds[fd] = mfd
                return mfd
        return None

    def _open_path(self, p, path: str, flags: int, writable_hint=None):
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
            fd = p.open(path, flags, 0o644)
            if not existed and self.host_files:
                file = p.files.get(fd)
                if file is not None:
                    _like_host(file.inode, path)
            return fd
        except OSError as exc:
            if exc.errno != _errno.ENOENT or not path.startswith("/") or \
                    path.startswith(("/dev/", "/proc/", "/sys/")):
                return None
        from ..fs.procmaps import _mkdirs
        if self.host_files and os.path.isdir(path):
            try:
                _mkdirs(self.k.fs, path + "/x")
            except OSError:
                pass
            return None
        try:
            _mkdirs(self.k.fs, path)
            inode = self.k.fs.create(path, b"", 0o755)
            if self.host_files:
                _like_host(inode, path)
            return p.open(path, flags & ~(U.O_CREAT | U.O_EXCL | U.O_TRUNC), 0o644)
        except OSError:
            return None

    # ------------------------------------------------------------------ main loop
    def run(self):
        for rec in self.trace.records:
            out = self.step(rec)
            self.outcomes.append(out)
            yield out

    def run_all(self) -> list:
        return list(self.run())

    def step(self, rec: Record) -> Outcome:
        if rec.call is None:
            st = self.proc_for(rec.pid)
            if rec.event in ("exited", "killed"):
                st.exited = True
            return Outcome(rec, "event")
        st = self.proc_for(rec.pid)
        if st.unknown is not None and rec.call not in ("exit",):
            return Outcome(rec, "skipped", note=st.unknown)
        handler = getattr(self, "do_" + rec.call, None)
        if handler is None:
            handler = self.do_mm
        try:
            out = handler(st, rec)
        except self.vmsim.Fault as f:       # e.g. an ioctl argument write
            out = Outcome(rec, "skipped", note=f"model fault {f.signal} {f.code} at "
                                               f"{f.addr:#x} while preparing the call")
        if st.p is not None and rec.call in MM_CALLS:
            st.calls += 1
        return out

    # ------------------------------------------------------------------ compare
    def _compare(self, rec: Record, model: tuple, st: _Proc) -> Outcome:
        recd = (("err", rec.err) if rec.err is not None else
                ("ok", rec.ret) if rec.ret is not None else None)
        if recd is None:
            out = Outcome(rec, "unchecked", model)
        elif recd[0] == "ok" and model[0] == "ok" and rec.call in ADDR_RESULT:
            out = Outcome(rec, "agree" if self.tr(recd[1]) == model[1] else "differ", model)
        elif recd == model:
            out = Outcome(rec, "agree", model)
        else:
            out = Outcome(rec, "differ", model)
        if model[0] == "err" or (recd and recd[0] == "err"):
            out.why = self.explain(st, rec, model if model[0] == "err" else recd)
        if out.verdict == "differ" and self.start_maps is None and \
                rec.call in _RANGED and not self._created_covers(rec.args[0], rec.args[1]):
            out.verdict, out.why = "skipped", []
            out.note = (f"[{rec.args[0]:#x}, {rec.args[0] + _pages(rec.args[1]):#x}) was not "
                        "mapped by the trace, and no --maps dump says what was there (the "
                        "exec image?)")
        if recd is not None and recd[0] == "ok" and rec.call in ("mmap", "mremap") and \
                model[0] == "ok":
            ln = rec.args[1] if rec.call == "mmap" else rec.args[2]
            self.created.append((recd[1], recd[1] + _pages(ln)))
        return out

    def _created_covers(self, addr: int, length: int) -> bool:
        end = addr + _pages(length)
        cur = addr
        for s, e in sorted(self.created):
            if s <= cur < e:
                cur = e
            if cur >= end:
                return True
        return cur >= end

    def _call(self, p, name: str, *args) -> tuple:
        try:
            r = getattr(p, name)(*args)
        except OSError as exc:
            return ("err", _errno.errorcode.get(exc.errno, str(exc.errno)))
        if not isinstance(r, int):
            r = 0
        if name not in ADDR_RESULT:
            r &= U64
            if r >= 1 << 63:
                r -= 1 << 64
        return ("ok", r)

    # ------------------------------------------------------------------ mm calls
    def do_mm(self, st: _Proc, rec: Record) -> Outcome:
        a = list(rec.args)
        name = rec.call
        if name in ("munmap", "mprotect", "pkey_mprotect", "madvise", "mseal", "mlock",
                    "mlock2", "munlock"):
            a[0] = self.tr(a[0])
        return self._compare(rec, self._call(st.p, name, *a), st)

    def do_mmap(self, st: _Proc, rec: Record) -> Outcome:
        addr, length, prot, flags, fd, off = rec.args
        note = None
        mfd = -1
        if not flags & U.MAP_ANONYMOUS and fd & 0xFFFFFFFF != 0xFFFFFFFF:
            mfd = self._model_fd(st, fd, rec)
            if mfd is None:
                return Outcome(rec, "skipped", note=f"fd {fd} was not opened in the trace "
                                                    "(strace -y shows the path)")
        elif flags & U.MAP_ANONYMOUS:
            mfd = fd
        fixed = flags & (U.MAP_FIXED | U.MAP_FIXED_NOREPLACE)
        if fixed or addr:
            addr = self.tr(addr)
        if not fixed and self.placement == "trace" and rec.ret is not None and rec.err is None:
            addr = rec.ret              # the recorded address as the hint
        before = _span(st.p, addr, length) if flags & U.MAP_FIXED else None
        model = self._call(st.p, "mmap", addr, length, prot, flags, mfd, off)
        out = self._compare(rec, model, st)
        if model[0] == "err" and before and before != _span(st.p, addr, length):
            out.why.append(f"the failed MAP_FIXED mmap has already unmapped what was at "
                           f"[{addr:#x}, {addr + _pages(length):#x}) (mmap_region() clears "
                           "the old mapping before calling the driver's ->mmap)")
        if model[0] == "ok" and rec.ret is not None and rec.err is None and \
                model[1] != self.tr(rec.ret):
            if self.placement == "model" and not fixed:
                self.xlat.append((rec.ret, _pages(length), model[1]))
                out.verdict = "placement"
                note = f"the model placed it at {model[1]:#x}"
            else:
                note = (f"the model placed it at {model[1]:#x}: the recorded range was not "
                        "free in the model")
        out.note = note
        return out

    def do_mremap(self, st: _Proc, rec: Record) -> Outcome:
        old, old_len, new_len, flags, new = rec.args
        old_m = self.tr(old)
        if flags & U.MREMAP_FIXED:
            new = self.tr(new)
        model = self._call(st.p, "mremap", old_m, old_len, new_len, flags, new)
        out = self._compare(rec, model, st)
        if model[0] == "ok" and rec.ret is not None and rec.err is None and \
                model[1] != self.tr(rec.ret) and not flags & U.MREMAP_FIXED:
            moved_both = model[1] != old_m and rec.ret != old
            if self.placement == "trace" and moved_both:
                ln = _pages(new_len)
                again = self._call(st.p, "mremap", model[1], ln, ln,
                                   U.MREMAP_MAYMOVE | U.MREMAP_FIXED, rec.ret)
                out.verdict = "agree" if again == ("ok", rec.ret) else "differ"
                out.note = (f"the model moved it to {model[1]:#x}; moved on to the recorded "
                            f"{rec.ret:#x}" if out.verdict == "agree" else
                            f"the model moved it to {model[1]:#x} and could not move it to "
                            f"the recorded {rec.ret:#x}")
            elif self.placement == "model" and moved_both:
                self.xlat.append((rec.ret, _pages(new_len), model[1]))
                out.verdict = "placement"
                out.note = f"the model moved it to {model[1]:#x}"
        return out

    def do_brk(self, st: _Proc, rec: Record) -> Outcome:
        p = st.p
        (addr,) = rec.args
        note = None
        mm = p.mm
        if not st.brk_seen and rec.ret is not None and addr == 0 and mm.brk == mm.start_brk \
                and not any(v.name == "[heap]" for v in p.vmas()) and mm.brk != rec.ret:
            mm.start_brk = mm.brk = rec.ret     # the maps dump cannot show it
            note = f"start_brk taken from the trace: {rec.ret:#x}"
        st.brk_seen = True
        out = self._compare(rec, self._call(p, "brk", addr), st)
        out.note = note
        return out

    # ------------------------------------------------------------------ files
    def do_open(self, st: _Proc, rec: Record) -> Outcome:
        path, flags, mode = rec.args
        path = rec.ret_path or path
        if rec.err is not None:
            model = self._call(st.p, "open", path, flags, mode)
            if model[0] == "ok":
                st.p.close(model[1])
                return Outcome(rec, "env", model, note="the file exists in the model")
            return Outcome(rec, "agree" if model == ("err", rec.err) else "env", model)
        if not path.startswith("/"):
            return Outcome(rec, "env", note="relative path: the open is not replayed")
        mfd = self._open_path(st.p, path, flags)
        if mfd is None:
            try:
                st.p.open(path, flags, mode)
                model = ("ok", None)
            except OSError as exc:
                model = ("err", _errno.errorcode.get(exc.errno, "?"))
            return Outcome(rec, "env", model, note=f"not opened in the model ({path}: "
                           f"{strerror(model[1]) if model[0] == 'err' else 'not a file'}); "
                           "mappings of this fd are skipped")
        if rec.ret is not None:
            if rec.ret in st.fds:
                try:
                    st.p.close(st.fds[rec.ret])
                except OSError:
                    pass
            st.fds[rec.ret] = mfd
        return Outcome(rec, "agree" if rec.ret is not None else "unchecked", ("ok", rec.ret))

    def do_close(self, st: _Proc, rec: Record) -> Outcome:
        (fd,) = rec.args
        if fd not in st.fds:
            return Outcome(rec, "env", note=f"fd {fd} is not known to the replay")
        model = self._call(st.p, "close", st.fds.pop(fd))
        return self._compare(rec, model, st)

    def do_dup(self, st: _Proc, rec: Record) -> Outcome:
        (fd,) = rec.args
        mfd = self._model_fd(st, fd, rec)
        if mfd is None:
            return Outcome(rec, "env", note=f"fd {fd} is not known to the replay")
        model = self._call(st.p, "dup", mfd)
        if model[0] == "ok" and rec.ret is not None:
            st.fds[rec.ret] = model[1]
            model = ("ok", rec.ret)
        return self._compare(rec, model, st)

    def do_dup2(self, st: _Proc, rec: Record) -> Outcome:
        old, new = rec.args
        mfd = self._model_fd(st, old, rec)
        if mfd is None or rec.ret is None:
            return Outcome(rec, "env", note=f"fd {old} is not known to the replay")
        if new in st.fds and st.fds[new] != mfd:
            st.p.close(st.fds.pop(new))
        model = self._call(st.p, "dup", mfd)
        if model[0] == "ok":
            st.fds[new] = model[1]
            model = ("ok", new)
        return self._compare(rec, model, st)

    # ------------------------------------------------------------------ processes
    def do_clone(self, st: _Proc, rec: Record) -> Outcome:
        flags = rec.args[0] if rec.args else 0
        return self._new_child(st, rec, shared=bool(flags & CLONE_VM))

    def do_fork(self, st: _Proc, rec: Record) -> Outcome:
        return self._new_child(st, rec, shared=False)

    def do_vfork(self, st: _Proc, rec: Record) -> Outcome:
        return self._new_child(st, rec, shared=True)

    def _new_child(self, st: _Proc, rec: Record, shared: bool) -> Outcome:
        if rec.ret is None or rec.err is not None:
            return Outcome(rec, "env", note="no child was created")
        if shared:
            child = _Proc(st.p, st.fds)
            child.shared_with = st
        else:
            child = _Proc(st.p.fork(), st.fds)
        self.procs[rec.ret] = child
        return Outcome(rec, "env", ("ok", rec.ret),
                       note=f"pid {rec.ret} shares this address space" if shared
                       else f"pid {rec.ret} is a copy (fork)")

    def do_execve(self, st: _Proc, rec: Record) -> Outcome:
        if rec.err is not None:
            return Outcome(rec, "env")
        if st is self.first and st.calls == 0 and not getattr(st, "execd", False):
            st.execd = True
            return Outcome(rec, "env", note="the replay starts from the address space "
                           "after this execve" + (" (the --maps dump)" if self.start_maps
                                                  else " (empty: give --maps)"))
        new = _Proc(None)
        new.unknown = (f"after execve (line {rec.line}) the new image's address space is "
                       "not in the trace")
        self.procs[rec.pid] = new
        return Outcome(rec, "env", note="the rest of this process is not replayed")

    def do_exit(self, st: _Proc, rec: Record) -> Outcome:
        st.exited = True
        return Outcome(rec, "env")

    # ------------------------------------------------------------------ SGX ioctls
    def do_ioctl(self, st: _Proc, rec: Record) -> Outcome:
        fd, cmd, arg = rec.args
        mfd = self._model_fd(st, fd, rec)
        if mfd is None:
            return Outcome(rec, "skipped", note=f"fd {fd} was not opened in the trace")
        name = SGX_IOCTL_NAMES.get(cmd, f"{cmd:#x}")
        if not isinstance(arg, dict):
            return Outcome(rec, "skipped", note=f"{name}: the argument struct is not in the "
                           "trace (strace prints a bare pointer; record a vmsim JSON trace)")
        model = self._sgx_ioctl(st, mfd, cmd, name, arg)
        return self._compare(rec, model, st)

    def _sgx_ioctl(self, st: _Proc, mfd: int, cmd: int, name: str, a: dict) -> tuple:
        p = st.p
        need = 4 * PAGE + len(a.get("data", b"")) + len(a.get("secs", b"")) + \
            len(a.get("sigstruct", b""))
        with _Scratch(p, need) as scratch:
            if name == "SGX_IOC_ENCLAVE_CREATE":
                src = scratch.put(a["secs"], PAGE) if "secs" in a else a.get("src", 0)
                fmt, fields = sgx.CREATE, (src,)
            elif name == "SGX_IOC_ENCLAVE_ADD_PAGES":
                src = a.get("src", 0)
                data = a.get("data")
                if data is not None:
                    want = a.get("length", 0)
                    data = data[:want]
                    if want <= MAX_BLOB:
                        data = data.ljust(want, b"\0")
                    if src and _writable(p, src, len(data)):
                        p.write(src, data)
                    else:
                        src = scratch.put(data, PAGE)
                secinfo = scratch.put(struct.pack("<Q", a.get("secinfo", 0)) + bytes(56), 64)
                fmt = sgx.ADD_PAGES
                fields = (src, a.get("offset", 0), a.get("length", 0), secinfo,
                          a.get("flags", 0), a.get("count", 0))
            elif name == "SGX_IOC_ENCLAVE_INIT":
                ss = scratch.put(a["sigstruct"], PAGE) if "sigstruct" in a else 0
                fmt, fields = sgx.INIT, (ss,)
            elif name == "SGX_IOC_ENCLAVE_PROVISION":
                pfd = self._model_fd(st, a.get("fd", -1), Record("ioctl")) \
                    if a.get("fd", -1) in st.fds else -1
                fmt, fields = sgx.PROVISION, (pfd & U64,)
            elif name == "SGX_IOC_VEPC_REMOVE_ALL":
                return self._call(p, "ioctl", mfd, cmd, 0)
            else:
                key = {"SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS":
                       (sgx.RESTRICT_PERMISSIONS, ("offset", "length", "permissions",
                                                   "result", "count")),
                       "SGX_IOC_ENCLAVE_MODIFY_TYPES":
                       (sgx.MODIFY_TYPES, ("offset", "length", "page_type", "result",
                                           "count")),
                       "SGX_IOC_ENCLAVE_REMOVE_PAGES":
                       (sgx.REMOVE_PAGES, ("offset", "length", "count"))}[name]
                fmt, fields = key[0], tuple(a.get(f, 0) for f in key[1])
            ptr = scratch.put(fmt.pack(*fields), 64)
            return self._call(p, "ioctl", mfd, cmd, ptr)

    # ------------------------------------------------------------------ explanations
    def explain(self, st: _Proc, rec: Record, res: tuple) -> list:
        """Why the call was refused, in words: SGX intent first, then the mm rules."""
        err = res[1]
        p = st.p
        out = []
        try:
            out = self._explain_sgx(st, rec, err)
        except Exception:       # an explanation must never break a replay
            out = []
        if not out and p is not None:
            try:
                out = self._explain_mm(st, rec, err)
            except Exception:
                out = []
        if not out:
            generic = _GENERIC.get((rec.call, err)) or _GENERIC.get((None, err))
            if generic:
                out = [generic]
        if p is None:
            return out
        return out

    def _explain_mm(self, st: _Proc, rec: Record, err: str) -> list:
        """The mm rule behind an errno, with the VMA or file that triggered it."""
        from ..fs.file import FMODE_WRITE
        from ..mm.flags import VM_SEALED
        p, a = st.p, rec.args
        ranged = rec.call in ("munmap", "mprotect", "pkey_mprotect", "madvise", "mseal",
                              "mlock", "mlock2", "munlock", "mremap")
        if ranged:
            start = self.tr(a[0])
            end = start + _pages(a[1])
            if err == "EINVAL" and start % PAGE:
                return [f"{start:#x} is not page aligned"]
            if err == "EINVAL" and not a[1] and rec.call == "munmap":
                return ["the length is 0"]
            if err == "ENOMEM":
                cur = start
                for v in p.mm.tree:
                    if v.end <= cur:
                        continue
                    if v.start > cur or v.start >= end:
                        break
                    cur = v.end
                if cur < end:
                    return [f"{cur:#x} is not mapped: the call stops at the first hole in "
                            f"[{start:#x}, {end:#x})" + (" (the part before it was already "
                                                          "changed)" if cur > start else "")]
            if err == "EPERM":
                for v in p.mm.tree:
                    if v.start < end and v.end > start and v.flags & VM_SEALED:
                        return [f"[{v.start:#x}, {v.end:#x}) is sealed (mseal): it cannot be "
                                "unmapped, moved, reprotected or discarded"]
        if rec.call == "mmap":
            addr, length, prot, flags, fd, off = a
            if err == "EEXIST":
                s0 = self.tr(addr)
                for v in p.vmas():
                    if v.start < s0 + _pages(length) and v.end > s0:
                        return [f"MAP_FIXED_NOREPLACE: [{s0:#x}, {s0 + _pages(length):#x}) "
                                f"overlaps [{v.start:#x}, {v.end:#x}) {v.name or ''}".rstrip()]
            if err == "EACCES" and fd in st.fds:
                file = p.files.get(st.fds[fd])
                if file is not None:
                    if flags & 0xF in (1, 3) and prot & U.PROT_WRITE and \
                            not file.f_mode & FMODE_WRITE:
                        return [f"fd {fd} is not open for writing: MAP_SHARED with "
                                "PROT_WRITE needs it"]
                    if prot & U.PROT_EXEC and getattr(file.inode, "noexec", False):
                        return [f"fd {fd} is on a noexec mount: PROT_EXEC is refused"]
        return []

    def _encl_of_fd(self, st: _Proc, fd: int):
        from ..drivers.sgx.encl import Encl
        mfd = st.fds.get(fd)
        if mfd is None:
            return None
        file = st.p.files.get(mfd)
        enc = getattr(file, "private_data", None)
        return enc if isinstance(enc, Encl) else None

    def _explain_sgx(self, st: _Proc, rec: Record, err: str) -> list:
        from ..drivers.sgx.encl import Encl
        p = st.p
        if rec.call == "mmap":
            addr, length, prot, flags, fd, off = rec.args
            encl = self._encl_of_fd(st, fd)
            if encl is None:
                return []
            if err == "EINVAL" and flags & U.MAP_PRIVATE:
                return ["/dev/sgx_enclave is mapped MAP_SHARED only: sgx_get_unmapped_area() "
                        "refuses MAP_PRIVATE with EINVAL"]
            if err == "EACCES":
                start = self.tr(addr) if addr else (rec.ret or 0)
                end = start + _pages(length)
                vmf = _prot_to_vm(prot, p)
                why = encl.explain(start, end, vmf)
                if why == "allowed":
                    if p.persona & U.READ_IMPLIES_EXEC:
                        why = "the process has READ_IMPLIES_EXEC: enclaves refuse it"
                    else:
                        return []
                return [f"SGX: {why} (sgx_encl_may_map() from sgx_mmap())"]
            return []
        if rec.call in ("mprotect", "pkey_mprotect") and err == "EACCES":
            start = self.tr(rec.args[0])
            end = start + _pages(rec.args[1])
            vmf = _prot_to_vm(rec.args[2], p)
            for v in p.mm.tree:
                if v.end <= start or v.start >= end:
                    continue
                enc = getattr(v, "private_data", None)
                if isinstance(enc, Encl):
                    why = enc.explain(max(start, v.start), min(end, v.end), vmf)
                    if why != "allowed":
                        return [f"SGX: {why} (sgx_vma_mprotect(), the ->mprotect hook)"]
            return []
        if rec.call == "ioctl":
            name = SGX_IOCTL_NAMES.get(rec.args[1], "ioctl")
            encl = self._encl_of_fd(st, rec.args[0])
            if encl is None:
                return []
            hints = {
                ("SGX_IOC_ENCLAVE_ADD_PAGES", "EACCES"):
                    "the source page's VMA lacks VM_MAYEXEC (a noexec mount)",
                ("SGX_IOC_ENCLAVE_ADD_PAGES", "EINVAL"):
                    "bad offset/length, SECINFO (W without R, reserved bits, TCS perms) or "
                    "the enclave is already initialized",
                ("SGX_IOC_ENCLAVE_ADD_PAGES", "EEXIST"): "the page was already added",
                ("SGX_IOC_ENCLAVE_INIT", "EINVAL"): "SIGSTRUCT rejected (attributes)",
                ("SGX_IOC_ENCLAVE_CREATE", "EINVAL"): "SECS rejected (size, base, attributes)"
                                                     " or the enclave already exists",
            }
            h = hints.get((name, err))
            state = ("initialized" if encl.initialized else "created" if encl.created
                     else "not created")
            return [f"{name}: {h}; enclave {state}" if h else f"{name}: enclave {state}"]
        return []


_RANGED = {"munmap", "mprotect", "pkey_mprotect", "madvise", "mseal", "mlock", "mlock2",
           "munlock", "mremap"}

_GENERIC = {
    ("munmap", "EINVAL"): "address not page aligned, length 0, or the range leaves "
                          "the user address space",
    ("mprotect", "ENOMEM"): "part of the range is not mapped (mprotect stops at the hole, "
                            "after changing what lies before it)",
    ("mprotect", "EACCES"): "a VMA lacks the VM_MAY* bit for the new protection (a file "
                            "opened without write access under MAP_SHARED, or a noexec "
                            "mount), or a driver's ->mprotect refused",
    ("mmap", "EACCES"): "the file's open mode or mount does not allow this protection",
    ("mmap", "EEXIST"): "MAP_FIXED_NOREPLACE and the range is already mapped",
    ("mmap", "ENODEV"): "the file cannot be memory mapped",
    ("mmap", "EBADF"): "fd is not open",
    ("mremap", "EFAULT"): "the old range is not one mapping",
    (None, "EPERM"): "the range is sealed (mseal) or the operation needs a privilege",
    (None, "ENOMEM"): "part of the range is not mapped, or a limit (max_map_count, "
                      "overcommit, RLIMIT) was hit",
    (None, "EINVAL"): "an argument is invalid (alignment, flags, length)",
}


def _like_host(inode, path: str) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    import stat as _stat
    if not _stat.S_ISREG(st.st_mode):
        return
    inode.dev, inode.ino = (os.major(st.st_dev), os.minor(st.st_dev)), st.st_ino
    inode.size = st.st_size


def _span(p, addr: int, length: int) -> list:
    end = addr + _pages(length)
    return [(v.start, v.end, v.perms, v.name) for v in p.vmas() if v.start < end and v.end > addr]


def _pages(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)


def _prot_to_vm(prot: int, p) -> int:
    from ..mm.flags import VM_EXEC, VM_READ, VM_WRITE
    v = (VM_READ if prot & U.PROT_READ else 0) | (VM_WRITE if prot & U.PROT_WRITE else 0) | \
        (VM_EXEC if prot & U.PROT_EXEC else 0)
    if p is not None and p.persona & U.READ_IMPLIES_EXEC and prot & U.PROT_READ:
        v |= VM_EXEC
    return v


def _writable(p, addr: int, n: int) -> bool:
    end = addr + n
    cur = addr
    for v in p.vmas():
        if v.end <= cur or v.start > cur:
            continue
        if "w" not in v.perms:
            return False
        cur = v.end
        if cur >= end:
            return True
    return cur >= end


class _Scratch:
    """A temporary private mapping, far from every VMA, holding ioctl arguments (a
    loader's stack and heap, which strace cannot show); unmapped afterwards."""

    def __init__(self, p, size: int):
        self.p = p
        self.size = _pages(max(size, PAGE)) + 2 * PAGE
        self.base = None
        self.next = 0

    def __enter__(self):
        gap = 1 << 30
        views = self.p.vmas()
        for cand in range(0x100000000000, 0x7F0000000000, 0x10000000000):
            lo, hi = cand - gap, cand + self.size + gap
            if all(v.end <= lo or v.start >= hi for v in views):
                self.base = self.p.mmap(cand, self.size, U.PROT_READ | U.PROT_WRITE,
                                        U.MAP_PRIVATE | U.MAP_ANONYMOUS |
                                        U.MAP_FIXED_NOREPLACE | U.MAP_NORESERVE)
                return self
        raise TraceError("no room in the address space for the ioctl arguments")

    def put(self, data: bytes, align: int = 64) -> int:
        self.next = (self.next + align - 1) & ~(align - 1)
        addr = self.base + self.next
        self.p.write(addr, data)
        self.next += len(data)
        return addr

    def __exit__(self, *exc):
        if self.base is not None:
            self.p.munmap(self.base, self.size)
        return False


def summarize(outcomes: list, placement: str = "trace") -> dict:
    counts: dict = {}
    for o in outcomes:
        counts[o.verdict] = counts.get(o.verdict, 0) + 1
    refused = sum(1 for o in outcomes if o.verdict == "agree" and o.rec.err is not None)
    diverged = counts.get("differ", 0) + (counts.get("placement", 0)
                                          if placement == "trace" else 0)
    return {"calls": sum(1 for o in outcomes if o.rec.call is not None),
            "agree": counts.get("agree", 0), "refused_as_recorded": refused,
            "differ": counts.get("differ", 0), "placement": counts.get("placement", 0),
            "unchecked": counts.get("unchecked", 0), "skipped": counts.get("skipped", 0),
            "env": counts.get("env", 0), "divergent": diverged}
