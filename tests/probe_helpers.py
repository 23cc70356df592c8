"""Model-side twins of the helpers in shared/spec/mm_probe.py.

`mm_probe.py` drives the real kernel through raw syscalls and reads
/proc/self/maps and /proc/self/smaps; these helpers drive a `vmsim.Process`
through its public API (docs/api.md) and read `p.maps()` / `p.smaps()`, computing
every view (`lay`, `smaps_flags`, the map count) exactly as the probe does, so
the probe's recorded 6.18.44 results can be asserted unchanged.

Differences from the probe, all deliberate:

* The carve-out is placed with MAP_FIXED at `CARVE_BASE` (the probe lets the
  kernel choose), so runs are deterministic.  Its VMAs are still a private
  PROT_NONE MAP_NORESERVE reservation mapped over with MAP_FIXED.
* The probe's `sc()` returns -errno; the model raises `OSError`.  `ename()` and
  `value()` turn both outcomes back into the probe's vocabulary ("ok",
  "ok:0x...", "EINVAL", ...).
* Each probe function collects its cases in a `ProbeChecks`: like the probe, a
  wrong result does not stop the sequence; at the end every wrong case is
  reported by its probe name.
"""

import errno
import pathlib

PAGE = 4096

# Kernel values (x86_64), the same table as mm_probe.py.
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC, PROT_SEM = 0, 1, 2, 4, 8
PROT_GROWSDOWN, PROT_GROWSUP = 0x01000000, 0x02000000
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE = 1, 2, 3
MAP_FIXED, MAP_ANON = 0x10, 0x20
MAP_GROWSDOWN, MAP_LOCKED, MAP_NORESERVE = 0x100, 0x2000, 0x4000
MAP_POPULATE, MAP_STACK, MAP_FIXED_NOREPLACE = 0x8000, 0x20000, 0x100000
MAP_SYNC = 0x80000
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MADV_DONTNEED, MADV_DONTFORK = 4, 10
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
READ_IMPLIES_EXEC = 0x0400000
O_RDONLY, O_WRONLY, O_RDWR = 0, 1, 2

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANON

#: Where every carve-out starts: far below the top-down mmap_base of a fresh
#: process, so unhinted mmaps never land inside it.
CARVE_BASE = 0x7f0000000000

#: The probe's recorded output, found beside the clone (CI copies shared/ there).
PROBE_OUTPUT = (pathlib.Path(__file__).resolve().parents[2]
                / "shared" / "spec" / "mm_probe_output_6.18.44.txt")


# --------------------------------------------------------------------------- processes

def new_kernel(**config):
    """A fresh model kernel (imported lazily so the static case count runs without it)."""
    import vmsim
    return vmsim.Kernel(**config)


def new_process(**spawn_args):
    """A fresh process on a fresh kernel, and the kernel."""
    k = new_kernel()
    return k, k.spawn(**spawn_args)


def poke(p, addr):
    """Write one byte, as the probe's poke(): a write fault."""
    p.write(addr, b"x")


def make_file(k, path, npages):
    """A regular file of npages zero pages (the probe's mkstemp + write)."""
    k.fs.create(path, b"\0" * (npages * PAGE))
    return path


# --------------------------------------------------------------------------- outcomes

def errname(exc):
    """Probe-style name of a model exception: the errno's name for OSError."""
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return f"raised {type(exc).__name__}: {exc}"


def ename(fn, *args):
    """Run a model call and describe it as mm_probe.ename() describes a syscall."""
    try:
        r = fn(*args)
    except Exception as exc:  # any wrong outcome becomes a failing case, not a crash
        return errname(exc)
    if isinstance(r, int) and r == 0:
        return "ok"
    if isinstance(r, int):
        return f"ok:{r:#x}"
    return f"ok:{r!r}"


def status(fn, *args):
    """Like mm_probe_maxmap.c's printing: "ok" for any success, else the errno name."""
    try:
        fn(*args)
    except Exception as exc:
        return errname(exc)
    return "ok"


def value(fn, *args):
    """The call's return value, or the errno name when it fails."""
    try:
        return fn(*args)
    except Exception as exc:
        return errname(exc)


def mapped_ok(r):
    """The probe's `a > 0` on an mmap/mremap result (errno names pass through)."""
    return r > 0 if isinstance(r, int) else r


# --------------------------------------------------------------------------- views

def maps_lines(p):
    return p.maps().splitlines()


def map_count(p):
    """mm_probe_maxmap.c mc(): lines of maps minus the [vsyscall] gate line."""
    return p.maps().count("\n") - 1


def layout(p, base, npages):
    """VMAs intersecting [base, base+npages) as (startpg, endpg, perms) (probe layout())."""
    res = []
    lo, hi = base, base + npages * PAGE
    for ln in maps_lines(p):
        rng, perms = ln.split()[0], ln.split()[1]
        s, e = (int(x, 16) for x in rng.split("-"))
        if e <= lo or s >= hi:
            continue
        res.append(((max(s, lo) - base) // PAGE, (min(e, hi) - base) // PAGE, perms))
    return res


def smaps_flags(p):
    """{start: [end, set(VmFlags), pkey]} parsed from p.smaps() (probe smaps_flags())."""
    out, cur = {}, None
    for line in p.smaps().splitlines(keepends=True):
        if "-" in line.split(" ")[0] and not line.startswith(("VmFlags", "ProtectionKey")):
            s, e = line.split(" ")[0].split("-")
            cur = int(s, 16)
            out[cur] = [int(e, 16), set(), None]
        elif line.startswith("VmFlags:"):
            out[cur][1] = set(line.split()[1:])
        elif line.startswith("ProtectionKey:"):
            out[cur][2] = int(line.split()[1])
    return out


def _smaps_entry(p, addr):
    entry = smaps_flags(p).get(addr)
    return entry if entry is not None else f"no smaps entry starts at {addr:#x}"


def has_flag(p, addr, mnemonic):
    """`mnemonic in smaps_flags()[addr][1]`, or a diagnostic if no VMA starts there."""
    entry = _smaps_entry(p, addr)
    return entry if isinstance(entry, str) else mnemonic in entry[1]


def pkey_at(p, addr):
    """`smaps_flags()[addr][2]` (the ProtectionKey line), or a diagnostic."""
    entry = _smaps_entry(p, addr)
    return entry if isinstance(entry, str) else entry[2]


# --------------------------------------------------------------------------- carve-out

class Carve:
    """A private PROT_NONE reservation we map over with MAP_FIXED (probe Carve)."""

    def __init__(self, p, npages=64, base=CARVE_BASE, _reserve=True):
        self.p, self.n, self.base = p, npages, base
        if _reserve:
            got = p.mmap(base, npages * PAGE, PROT_NONE,
                         MAP_PRIVATE | MAP_ANON | MAP_NORESERVE | MAP_FIXED)
            assert got == base, f"carve-out placed at {got:#x}, not {base:#x}"

    def on(self, other):
        """The same carve-out seen from another process (e.g. a fork child)."""
        return Carve(other, self.n, self.base, _reserve=False)

    def a(self, pg):
        return self.base + pg * PAGE

    def map(self, pg, npg, prot=RW, flags=ANON, fd=-1, off=0):
        return self.p.mmap(self.a(pg), npg * PAGE, prot, flags | MAP_FIXED, fd, off)

    def hole(self, pg, npg):
        return self.p.munmap(self.a(pg), npg * PAGE)

    def lay(self, first=0, n=None):
        """Non-reservation VMAs inside the window, as the probe reports them."""
        return [v for v in layout(self.p, self.a(first), n or self.n) if v[2] != "---p"]

    def free(self):
        self.p.munmap(self.base, self.n * PAGE)


# --------------------------------------------------------------------------- checks

class ProbeChecks:
    """Collects one probe function's cases; fails naming every wrong case.

    Use as a context manager.  `check(name, got, want)` records a case (the name
    is the probe's, so a failure points at the probe output line).  After each
    case the invariants of the watched processes are checked with
    `p.mm.validate()`, reported as a case of their own.  An unexpected exception
    stops the sequence (as in the probe) and is reported with the cases so far.
    """

    def __init__(self, group):
        self.group = group
        self.results = []
        self.watched = []
        self._broken = set()

    def watch(self, p):
        self.watched.append(p)
        return p

    def check(self, name, got, want):
        self.results.append((name, got, want, got == want))
        self._validate(name)

    def _validate(self, name):
        """Check the watched processes' invariants; report only the first break of each."""
        for p in self.watched:
            if id(p) in self._broken:
                continue
            try:
                p.mm.validate()
            except Exception as exc:
                self._broken.add(id(p))
                self.results.append((f"mm.validate() after {name.strip()!r}",
                                     f"raised {type(exc).__name__}: {exc}", "ok", False))

    def failures(self):
        return [r for r in self.results if not r[3]]

    def report(self):
        lines = [f"{self.group}: {len(self.failures())} of {len(self.results)} cases differ "
                 "from Linux 6.18.44:"]
        for name, got, want, _ in self.failures():
            lines.append(f"  {name.strip():<58} model={got!r}  kernel={want!r}")
        return "\n".join(lines)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, AssertionError):
            last = self.results[-1][0].strip() if self.results else "(none)"
            raise AssertionError(f"{self.group} stopped by {exc_type.__name__}: {exc} "
                                 f"(last case: {last!r})\n{self.report()}") from exc
        if exc_type is None:
            assert not self.failures(), self.report()
        return False


# --------------------------------------------------------------------------- probe output

def parse_probe_output(path=PROBE_OUTPUT):
    """(cases, printed) from the probe's output file.

    cases: {name: observed text} for the `name | observed | expected | OK` rows.
    printed: {label: text} for the extra `      label: value` lines the probe prints.
    """
    cases, printed = {}, {}
    for line in pathlib.Path(path).read_text().splitlines():
        parts = line.split(" | ")
        if len(parts) == 4 and parts[3].strip() in ("OK", "DIFF"):
            cases[parts[0].strip()] = parts[1].strip()
        elif line.startswith("      ") and ": " in line:
            label, text = line.strip().split(": ", 1)
            printed[label] = text
    return cases, printed
