"""vmsim.oracle: run scenario calls on the host kernel.

The calls run in a small C executor (executor.c, compiled with the system `cc` on
first use and cached in ~/.cache/vmsim keyed by the source hash).  The executor is a
persistent process running under personality(ADDR_NO_RANDOMIZE); for every
scenario it forks a fresh child, which runs the calls and reports per call the
return value or errno, or the signal (si_code, si_addr) a memory access raised, and
the VMAs inside the scenario windows (maps line, VmFlags, ProtectionKey) after each
call or only at the end.

Windows: W = WINDOW_BASE (0x7e0000000000, 1 TiB), far below the executor's own
mappings, and the heap window [B, B + 1 TiB) from its initial break B.  The
executor never calls malloc, so its break is untouched (brk == start_brk == B) and
no [heap] exists until a scenario calls brk.

    from vmsim import oracle
    from vmsim.diff import scenario
    with oracle.Oracle() as o:
        sc = scenario.parse("mmap(W, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)")
        steps = o.run(sc)                   # [Step(result=('ok', 'W+0x0'), state=(...))]
        with o.session() as s:              # interactive: one call at a time
            s.call(sc.calls[0])

`kernel_kwargs()` gives the `vmsim.Kernel` configuration matching this host.
"""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import queue
import resource
import select
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO

from .. import uapi
from ..diff.normalise import Normaliser, Step, result_token, state_from_smaps
from ..diff.scenario import HEAP_WINDOW_SIZE, WINDOW_BASE, WINDOW_SIZE, Call, Scenario
from ..syscalls.names import SI_CODES, errno_name, signal_name
from ..syscalls.table import TABLE
from ..uapi import U64

__all__ = ["Oracle", "OracleUnavailable", "OracleError", "kernel_kwargs", "host_info",
           "executor_path", "WINDOW_BASE", "WINDOW_SIZE"]

SOURCE = Path(__file__).with_name("executor.c")
#: a call that produces no answer within this many seconds kills the executor
TIMEOUT = float(os.environ.get("VMSIM_ORACLE_TIMEOUT", "20"))


class OracleUnavailable(Exception):
    """The host cannot run the oracle (not Linux x86_64, no C compiler, ...)."""


class OracleError(Exception):
    """The executor misbehaved (protocol error, timeout)."""


# --------------------------------------------------------------------------- host

def _read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def host_info() -> dict:
    """What the model must mirror about this host."""
    flags = set()
    for line in (_read("/proc/cpuinfo", "") or "").splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    mem = {}
    for line in (_read("/proc/meminfo", "") or "").splitlines():
        k, _, v = line.partition(":")
        if v.strip().endswith("kB"):
            mem[k] = int(v.split()[0])
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled", "[madvise]") or "[madvise]"
    thp_mode = thp[thp.index("[") + 1:thp.index("]")] if "[" in thp else "madvise"
    return {
        "release": platform.release(),
        "machine": platform.machine(),
        "pkeys": "pku" in flags and "ospke" in flags,
        "max_map_count": int((_read("/proc/sys/vm/max_map_count") or "65530").strip()),
        "mmap_min_addr": int((_read("/proc/sys/vm/mmap_min_addr") or "4096").strip()),
        "overcommit_memory": int((_read("/proc/sys/vm/overcommit_memory") or "0").strip()),
        "overcommit_ratio": int((_read("/proc/sys/vm/overcommit_ratio") or "50").strip()),
        "legacy_va_layout": bool(int((_read("/proc/sys/vm/legacy_va_layout") or "0").strip())),
        "total_ram_pages": (mem.get("MemTotal", 24 << 20) + mem.get("SwapTotal", 0)) // 4,
        "thp": thp_mode,
    }


def _rlimits() -> dict:
    out = {}
    for ours, theirs in ((uapi.RLIMIT_STACK, resource.RLIMIT_STACK),
                         (uapi.RLIMIT_DATA, resource.RLIMIT_DATA),
                         (uapi.RLIMIT_AS, resource.RLIMIT_AS),
                         (uapi.RLIMIT_MEMLOCK, resource.RLIMIT_MEMLOCK)):
        cur, mx = resource.getrlimit(theirs)
        out[ours] = (cur & U64 if cur != resource.RLIM_INFINITY else uapi.RLIM_INFINITY,
                     mx & U64 if mx != resource.RLIM_INFINITY else uapi.RLIM_INFINITY)
    return out


def kernel_kwargs() -> dict:
    """`vmsim.Kernel(**kernel_kwargs())` mirrors this host as the executor sees it:
    pkeys present or not, max_map_count, mmap_min_addr, overcommit policy and RAM,
    THP mode, rlimits, no ASLR (the executor runs with ADDR_NO_RANDOMIZE)."""
    h = host_info()
    kw = {k: h[k] for k in ("pkeys", "max_map_count", "mmap_min_addr", "overcommit_memory",
                            "overcommit_ratio", "legacy_va_layout", "total_ram_pages",
                            "thp")}
    kw["aslr"] = False
    kw["rlimits"] = _rlimits()
    return kw


# --------------------------------------------------------------------------- executor binary

def cache_dir() -> Path:
    d = os.environ.get("VMSIM_CACHE")
    if d:
        return Path(d)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "vmsim" if xdg else Path.home() / ".cache" / "vmsim"


def executor_path() -> Path:
    """The compiled executor, built with `cc` (or $CC) on first use."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        raise OracleUnavailable(f"the oracle needs Linux x86_64, not "
                                f"{platform.system()} {platform.machine()}")
    src = SOURCE.read_bytes()
    cc = os.environ.get("CC", "cc")
    key = hashlib.sha256(src + cc.encode()).hexdigest()[:16]
    d = cache_dir()
    exe = d / f"executor-{key}"
    if exe.exists():
        return exe
    if shutil.which(cc) is None:
        raise OracleUnavailable(f"no C compiler ({cc!r}) to build the oracle executor")
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".executor-")
    os.close(fd)
    try:
        r = subprocess.run([cc, "-O2", "-Wall", "-o", tmp, str(SOURCE)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise OracleUnavailable(f"compiling {SOURCE} failed:\n{r.stderr}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, exe)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return exe


# --------------------------------------------------------------------------- the oracle

PASSTHROUGH = ("/dev/", "/proc/", "/sys/")


class _Paths:
    """Maps a scenario's paths to a private per-run directory on the host, and the
    host paths in maps lines back.  /dev (but /dev/shm), /proc and /sys are the
    host's own; /dev/shm/... goes to a private directory on the host's /dev/shm
    (tmpfs); everything else under a private directory in /tmp (ext4 here)."""

    def __init__(self, base: str, n: int):
        self.root = f"{base}/r{n}"
        self.shm: str | None = None
        self.created = False
        self._n = n

    def setup(self):
        if not self.created:
            os.makedirs(self.root + "/tmp", exist_ok=True)
            self.shm = tempfile.mkdtemp(prefix=f"vmsim-oracle-{os.getpid()}-{self._n}-",
                                        dir="/dev/shm") if os.path.isdir("/dev/shm") \
                else self.root + "/dev/shm"
            os.makedirs(self.shm, exist_ok=True)
            self.created = True

    def host(self, p: str) -> str:
        self.setup()
        if p is None:
            return ""
        if not p.startswith("/"):
            return self.root + "/.relative/" + p
        if p == "/dev/shm" or p.startswith("/dev/shm/"):
            assert self.shm is not None         # setup() made it
            return self.shm + p[len("/dev/shm"):]
        if p in ("/dev", "/proc", "/sys") or p.startswith(PASSTHROUGH):
            return p
        return self.root + p if p != "/" else self.root

    def back(self, name: str) -> str:
        if self.created:
            if name.startswith(self.root + "/"):
                return name[len(self.root):]
            if self.shm and name.startswith(self.shm + "/"):
                return "/dev/shm" + name[len(self.shm):]
        return name

    def cleanup(self):
        if self.created:
            _reaper.remove(self.root)
            if self.shm:
                _reaper.remove(self.shm)
            self.created = False


def _remove_stale():
    """Remove the per-run directories of oracles whose process is gone (killed)."""
    for d in glob.glob("/tmp/vmsim-oracle-*-*") + glob.glob("/dev/shm/vmsim-oracle-*-*"):
        try:
            pid = int(os.path.basename(d).split("-")[2])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass


class _Reaper:
    """Removes used per-run directories in a background thread (unlinking on ext4
    costs about a millisecond per inode; the next scenario need not wait)."""

    def __init__(self) -> None:
        self.q: queue.Queue[str] | None = None
        self.lock = threading.Lock()

    def remove(self, path: str) -> None:
        with self.lock:
            if self.q is None:
                self.q = queue.Queue()
                threading.Thread(target=self._run, args=(self.q,), daemon=True,
                                 name="vmsim-reaper").start()
            q = self.q
        q.put(path)

    @staticmethod
    def _run(q: queue.Queue[str]) -> None:
        while True:
            path = q.get()
            shutil.rmtree(path, ignore_errors=True)
            q.task_done()

    def wait(self):
        if self.q is not None:
            self.q.join()


_reaper = _Reaper()


def _hex(s) -> str:
    if isinstance(s, str):
        s = s.encode("utf-8", "surrogateescape")
    return s.hex() or "-"


def encode_op(name: str, a: list, paths: _Paths) -> str:
    """One op of the executor's protocol (no ';' or newline in it): a call on a path
    (translated), fork, a memory access or PKRU write, else the raw syscall by its
    number (`S nr arg0..arg5`)."""
    if name == "open":
        return f"open {_hex(paths.host(a[0]))} {a[1] & 0xFFFFFFFF:#x} {a[2] & 0o7777:#o}"
    if name == "mkdir":
        return f"mkdir {_hex(paths.host(a[0]))} {(a[1] or 0o755) & 0o7777:#o}"
    if name == "unlink":
        return f"unlink {_hex(paths.host(a[0]))}"
    if name == "pwrite64":
        return f"pwrite {a[0] & 0xFFFFFFFF} {_hex(bytes(a[1][:a[2]]))} {a[3] & U64:#x}"
    if name == "mount":
        return f"mount {_hex(paths.host(a[1]))} {a[3] & U64:#x}"
    if name == "fork":
        return "fork"
    if name == "touch":
        return f"touch {a[0] & U64:#x} {a[1]}"
    if name == "peek":
        return f"peek {a[0] & U64:#x}"
    if name == "poke":
        return f"poke {a[0] & U64:#x} {a[1] & 0xFF}"
    if name == "set_pkru":
        return f"pkru {a[0] & 0xFFFFFFFF:#x}"
    nr = TABLE[name].nr
    if nr is None:
        raise ValueError(f"the oracle cannot run {name!r}")
    vals = [x & U64 for x in a] + [0] * (6 - len(a))
    return f"S {nr} {' '.join(f'{v:#x}' for v in vals[:6])}"


class Oracle:
    """A persistent executor.  `run(scenario)` runs a scenario in a fresh child;
    `session()` keeps one child for interactive use.  Use as a context manager or
    call close()."""

    def __init__(self, window_base: int = WINDOW_BASE, window_size: int = WINDOW_SIZE,
                 heap_window_size: int = HEAP_WINDOW_SIZE):
        self.exe = executor_path()
        self.window_base, self.window_size = window_base, window_size
        _remove_stale()
        self.tmp = tempfile.mkdtemp(prefix=f"vmsim-oracle-{os.getpid()}-", dir="/tmp")
        self._runs = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.heap_window_size = heap_window_size
        self._start()
        self.env = {"W": window_base, "B": self.brk}

    def _start(self):
        self.proc = subprocess.Popen(
            [str(self.exe), f"{self.window_base:#x}", f"{self.window_size:#x}", "0",
             f"{self.heap_window_size:#x}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, cwd=self.tmp)
        assert self.proc.stdout is not None
        self._out: IO[bytes] = self.proc.stdout
        self._rbuf = b""
        hello = self._readline()
        if not hello.startswith("HELLO "):
            raise OracleError(f"executor did not start: {hello!r}")
        parts = hello.split()
        self.brk = int(parts[1], 16)

    # -- low-level I/O with a timeout --
    def _readline(self) -> str:
        while b"\n" not in self._rbuf:
            r, _, _ = select.select([self._out], [], [], TIMEOUT)
            if not r:
                self._kill()
                raise OracleError(f"executor timed out after {TIMEOUT}s")
            chunk = os.read(self._out.fileno(), 1 << 16)
            if not chunk:
                self._kill()
                raise OracleError("executor exited")
            self._rbuf += chunk
        line, self._rbuf = self._rbuf.split(b"\n", 1)
        return line.decode("utf-8", "surrogateescape")

    def _send(self, text: str):
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(text.encode("utf-8", "surrogateescape"))
        except BrokenPipeError:
            self._kill()
            raise OracleError("executor exited") from None

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _restart(self):
        self._kill()
        self._start()

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self._send("QUIT\n")
                    assert self.proc.stdin is not None
                    self.proc.stdin.close()
                    self.proc.wait(timeout=5)
                except (OracleError, OSError, subprocess.TimeoutExpired):
                    self._kill()
            self.proc = None
        _reaper.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- running --
    def run(self, scenario: Scenario | list[Call], state: str = "each") -> list[Step]:
        """Run the scenario's calls in a fresh child: one Step per call.  With
        state="end" only the last Step carries the window state."""
        calls = scenario.calls if isinstance(scenario, Scenario) else list(scenario)
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self._runs += 1
        paths = _Paths(self.tmp, self._runs)
        try:
            ops = [encode_op(c.name, c.values(self.env), paths) for c in calls]
            each = state == "each"
            self._send(f"RUN {1 if each else 0} {';'.join(ops)}\n")
            try:
                return self._collect(calls, each, paths)
            except OracleError:
                self._restart()
                raise
        finally:
            paths.cleanup()

    def _collect(self, calls, each, paths, session=False) -> list:
        norm = Normaliser(self.env)
        steps: list = []
        crashed = None
        while True:
            line = self._readline()
            if line == "DONE":
                break
            tag = line[:1]
            if line.startswith("DIED"):
                crashed = crashed or f"child died (wait status {line.split()[1]})"
                continue
            if line.startswith("CRASH"):
                _, sig, code, addr = line.split()
                crashed = f"unexpected signal {sig} code {code} at {addr}"
                if len(steps) < len(calls):
                    steps.append(Step(("crash", crashed)))
                continue
            if tag in "REGU" and line[1:2] == " ":
                steps.append(Step(self._result(calls[len(steps)].name, line, norm)))
            elif tag == "V":
                block = [line[2:]]
                while True:
                    nxt = self._readline()
                    if nxt == ".":
                        break
                    if nxt[:1] == "V":
                        block.append(nxt[2:])
                    elif nxt[:1] == "F":
                        block.append("VmFlags:" + nxt[1:])
                    elif nxt[:1] == "K":
                        block.append("ProtectionKey: " + nxt[2:])
                st = state_from_smaps(block, norm, paths.back, prefiltered=True)
                self._attach(steps, st, calls)
            elif line == ".":
                self._attach(steps, (), calls)
            else:
                raise OracleError(f"unexpected executor output {line!r}")
        if len(steps) < len(calls):
            why = crashed or "not run"
            steps += [Step(("crash", why)) for _ in range(len(calls) - len(steps))]
        return steps

    @staticmethod
    def _attach(steps, st, calls):
        if steps:
            steps[-1].state = st
        else:
            steps.append(Step(("ok", None), st))

    @staticmethod
    def _result(name, line, norm) -> tuple:
        parts = line.split()
        if parts[0] == "R":
            return ("ok", result_token(name, int(parts[1], 16), norm))
        if parts[0] == "U":
            n = int(parts[1])
            return ("unsupported", f"{parts[2] if len(parts) > 2 else 'call'} not permitted "
                    f"on this host ({errno_name(n)})")
        if parts[0] == "E":
            return ("err", errno_name(int(parts[1])))
        sig = signal_name(int(parts[1]))
        code = SI_CODES.get((sig, int(parts[2])), parts[2])
        return ("sig", sig, code, norm.addr(int(parts[3], 16)))

    def session(self, state: str = "each") -> Session:
        return Session(self, state)


class Session:
    """One live child on the host: `call(call)` runs one scenario Call and returns its
    Step; the child (and its address space) persists until close().  After a fork()
    call, further calls go to the forked child."""

    def __init__(self, oracle: Oracle, state: str = "each"):
        self.o = oracle
        self.each = state == "each"
        self.o._runs += 1
        self.paths = _Paths(self.o.tmp, self.o._runs)
        self.norm = Normaliser(self.o.env)
        self.o._send(f"SESSION {1 if self.each else 0}\n")
        if self.o._readline() != "READY":
            raise OracleError("session did not start")
        self.open = True

    def call(self, call: Call) -> Step:
        if not self.open:
            raise OracleError("session closed")
        op = encode_op(call.name, call.values(self.o.env), self.paths)
        self.o._send(op + "\n")
        step: Step | None = None
        while True:
            line = self.o._readline()
            if line == "OK":
                if step is None:
                    raise OracleError("the executor answered OK without a result")
                return step
            if line == "DONE" or line.startswith("CRASH") or line.startswith("DIED"):
                self.open = False
                if line != "DONE":
                    while self.o._readline() != "DONE":
                        pass
                return Step(("crash", line))
            if line[:1] in "REGU" and line[1:2] == " ":
                step = Step(Oracle._result(call.name, line, self.norm))
            elif line[:1] == "V" or line == ".":
                block = []
                while line != ".":
                    if line[:1] == "V":
                        block.append(line[2:])
                    elif line[:1] == "F":
                        block.append("VmFlags:" + line[1:])
                    elif line[:1] == "K":
                        block.append("ProtectionKey: " + line[2:])
                    line = self.o._readline()
                st = state_from_smaps(block, self.norm, self.paths.back, prefiltered=True)
                if step is None:
                    step = Step(("ok", None))
                step.state = st

    def close(self):
        if self.open:
            self.o._send("END\n")
            while self.o._readline() != "DONE":
                pass
            self.open = False
        self.paths.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
