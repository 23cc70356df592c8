"""Random scenarios for differential testing, and fuzz campaigns.

`Generator(seed).scenario()` draws a scenario from a weighted generator over every
call of the mm core: anonymous and file memory (ext4 and tmpfs files, /dev/zero, a
noexec tmpfs), memory accesses (touch/peek/poke: faults), pkeys, mremap, mseal,
madvise, mlock/mlock2/munlock, brk, MDWE, READ_IMPLIES_EXEC, fork.  Addresses are
mostly page-aligned inside the first 64 pages of the window W (so calls interact),
with occasional unaligned, huge, negative or heap-window values; lengths are mostly
1-16 pages with occasional edge values; flags and prot mostly valid with occasional
junk bits.  Values that could reach the executor's own mappings (lengths between
1 GiB and TASK_SIZE, addresses outside the windows but for harmless junk) are never
drawn, and an address a call returned outside the window is never reused.

`campaign` compares generated scenarios with the host kernel and shrinks the first
divergence of every kind (vmsim.diff.shrink).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from .. import uapi as U
from ..oracle import Oracle, OracleError
from ..syscalls.names import CONSTANTS
from ..syscalls.table import TABLE
from .compare import Divergence, first_divergence, skipped
from .model import run_model
from .normalise import Step, token_to_result
from .scenario import DEFAULT_ENV, WINDOW_SIZE, Call, Scenario, dump
from .shrink import shrink_divergence

PAGE = U.PAGE_SIZE
NPAGES = 64                     # the busy part of the window, in pages

#: lengths that always fail (never map anything): PAGE_ALIGN overflow or > TASK_SIZE
HUGE_LENGTHS = [1 << 47, 1 << 48, -PAGE, -1, 1 << 63, (1 << 64) - 2 * PAGE]
#: for madvise, which applies the advice to every VMA of [start, start+len) whatever
#: the holes, only lengths whose end wraps (from an address inside a window; from a
#: junk address only small lengths): a longer range would reach the executor's own
#: mappings
WRAPPING_LENGTHS = [-PAGE, -1, (1 << 64) - 2 * PAGE]

MADVICES = [  # (advice, weight)
    (U.MADV_DONTNEED, 6), (U.MADV_FREE, 3), (U.MADV_DONTFORK, 4), (U.MADV_DOFORK, 3),
    (U.MADV_WIPEONFORK, 4), (U.MADV_KEEPONFORK, 2), (U.MADV_HUGEPAGE, 3),
    (U.MADV_NOHUGEPAGE, 2), (U.MADV_DONTDUMP, 2), (U.MADV_DODUMP, 2),
    (U.MADV_GUARD_INSTALL, 4), (U.MADV_GUARD_REMOVE, 3), (U.MADV_POPULATE_READ, 2),
    (U.MADV_POPULATE_WRITE, 2), (U.MADV_NORMAL, 1), (U.MADV_RANDOM, 1),
    (U.MADV_SEQUENTIAL, 1), (U.MADV_WILLNEED, 2), (U.MADV_COLD, 1), (U.MADV_PAGEOUT, 1),
    (U.MADV_REMOVE, 1), (U.MADV_DONTNEED_LOCKED, 2), (U.MADV_MERGEABLE, 1),
    (U.MADV_UNMERGEABLE, 1), (U.MADV_COLLAPSE, 1), (99, 1), (-1, 1),
]

POKE_BYTES = [0x00, 0x41, 0x90, 0xC3]   # harmless as the first instruction of an exec touch


def _call(name: str, *args: object, comment: str | None = None) -> Call:
    return Call(name=name, args=list(args), comment=comment)


class _Draws(random.Random):
    """The generator's random numbers: `random()`, and so `choices()`, can be skewed
    to a part [lo, lo + span) of [0, 1) for a whole scenario."""

    skew = (0.0, 1.0)

    def random(self) -> float:
        lo, span = self.skew
        return lo + span * super().random()

    def getrandbits(self, k: int) -> int:
        # defined here too so that Random.__init_subclass__ keeps drawing integers
        # (randrange, choice) from getrandbits, untouched by the skew
        return super().getrandbits(k)


class Generator:
    """A weighted random scenario generator (deterministic for a given seed)."""

    def __init__(self, seed: int | str = 0, env: Mapping[str, int] | None = None,
                 min_len: int = 4, max_len: int = 24):
        self.rng = _Draws(seed)
        self.env = dict(env or DEFAULT_ENV)
        self.min_len, self.max_len = min_len, max_len

    # -- value draws --
    def page(self) -> int:
        r = self.rng
        return r.choice([r.randrange(NPAGES), r.randrange(8), r.randrange(16) + 8])

    def addr(self) -> int:
        r = self.rng.random()
        W = self.env["W"]
        if self.marks and r < 0.3:
            # an edge an earlier call used: hits exact VMA boundaries (splits, merges)
            return self.rng.choice(self.marks)
        if r < 0.9:
            return W + self.page() * PAGE
        if r < 0.94:
            return W + self.page() * PAGE + self.rng.choice([1, 7, 0x800, PAGE - 1])
        if r < 0.97:
            return self.env["B"] + self.rng.randrange(8) * PAGE
        return self.rng.choice([0, -PAGE, 1 << 47, 0x7FFFFFFFF000, W + (1 << 40) - PAGE])

    def length(self) -> int:
        r = self.rng.random()
        if r < 0.85:
            return self.rng.choice([1, 1, 1, 2, 2, 3, 4, 4, 6, 8, 12, 16]) * PAGE
        if r < 0.93:
            return self.rng.choice([0, 1, PAGE - 1, PAGE + 1, 3 * PAGE - 5])
        if r < 0.97:
            return self.rng.choice([2 << 20, 4 << 20, (2 << 20) + PAGE])
        return self.rng.choice(HUGE_LENGTHS)

    def prot(self) -> int:
        r = self.rng.random()
        base = self.rng.choice([0, 1, 3, 3, 3, 5, 7, 4, 2, 1])
        if r < 0.9:
            return base
        return base | self.rng.choice([U.PROT_SEM, 0x10, U.PROT_GROWSDOWN, U.PROT_GROWSUP,
                                       0x100])

    # -- the scenario --
    def scenario(self) -> Scenario:
        r = self.rng
        # A sixth of the scenarios skew every draw: towards the rare end of each
        # choice (junk values, edge lengths, rare flags) or towards the common end
        # with every optional feature on (files, flags).  The rest draw plainly.
        bias = r.random()
        r.skew = (0.6, 0.4) if bias < 1 / 12 else (0.0, 0.4) if bias < 1 / 6 else (0.0, 1.0)
        self.calls: list = []
        self.fds: dict = {}            # fd -> kind ("ext4", "ro", "shm", "zero", "noexec")
        self.forks = 0
        self.pkeys: list = []
        self.marks: list = []          # page-aligned addresses earlier calls started/ended at
        if r.random() < 0.45:
            self._files()
        n = r.randint(self.min_len, self.max_len)
        if r.random() < 0.15:
            n *= 2                          # now and then a long one: deeper states
        # a few mappings first so most calls meet something
        for _ in range(r.randint(1, 4)):
            self._mmap(fixed=True)
            self._mark(self.calls[-1])
        ops = [(self._mmap, 20), (self._munmap, 7), (self._mprotect, 10),
               (self._pkey_mprotect, 3), (self._pkey_alloc_free, 2), (self._mremap, 9),
               (self._mseal, 3), (self._madvise, 10), (self._mlock, 5), (self._brk, 3),
               (self._touch, 10), (self._peek, 2), (self._poke, 3), (self._fork, 1.5),
               (self._mdwe, 1), (self._personality, 1), (self._fileop, 3),
               (self._pkru, 0.3), (self._ksm, 0.3)]
        funcs, weights = zip(*ops, strict=True)
        while len(self.calls) < n:
            r.choices(funcs, weights)[0]()
            self._mark(self.calls[-1])
        return Scenario(self.calls)

    def _mark(self, call):
        """Remember the page-aligned window edges of a call's range."""
        kinds = TABLE[call.name].kinds
        W = self.env["W"]
        for i, kind in enumerate(kinds):
            if kind.rstrip("?") != "addr" or i >= len(call.args):
                continue
            a = call.args[i]
            if not isinstance(a, int) or a % PAGE or not W <= a < W + NPAGES * 4 * PAGE:
                continue
            edges = [a]
            if i + 1 < len(kinds) and kinds[i + 1] == "len":
                ln = call.args[i + 1]
                if isinstance(ln, int) and 0 < ln <= 64 * PAGE:
                    edges.append(a + (-(-ln // PAGE)) * PAGE)
            for e in edges:
                if e not in self.marks:
                    self.marks.append(e)

    def _next_fd(self) -> int:
        fd = 3
        while fd in self.fds:
            fd += 1
        return fd

    def _open(self, path, flags, kind, mode=0o600):
        fd = self._next_fd()
        self.calls.append(_call("open", path, flags, mode))
        self.fds[fd] = kind
        return fd

    def _files(self):
        r = self.rng
        fd = self._open("/tmp/f1", U.O_RDWR | U.O_CREAT, "ext4")
        self.calls.append(_call("ftruncate", fd, r.choice([1, 2, 4, 8, 16]) * PAGE))
        if r.random() < 0.5:
            self._open("/tmp/f1", U.O_RDONLY, "ro", 0)
        if r.random() < 0.3:
            fd2 = self._open("/dev/shm/f2", U.O_RDWR | U.O_CREAT, "shm")
            self.calls.append(_call("ftruncate", fd2, r.choice([2, 8]) * PAGE))
        if r.random() < 0.3:
            self._open("/dev/zero", U.O_RDWR, "zero", 0)
        if r.random() < 0.25:
            self.calls.append(_call("mkdir", "/tmp/nx", 0o755))
            self.calls.append(_call("mount", "tmpfs", "/tmp/nx", "tmpfs", CONSTANTS["MS_NOEXEC"], None))
            fd3 = self._open("/tmp/nx/f3", U.O_RDWR | U.O_CREAT, "noexec")
            self.calls.append(_call("ftruncate", fd3, 4 * PAGE))
        if r.random() < 0.2:
            fd = r.choice(list(self.fds))
            self.calls.append(_call("dup", fd))
            self.fds[self._next_fd()] = self.fds[fd]

    def _mmap(self, fixed=None):
        r = self.rng
        use_file = self.fds and r.random() < 0.45
        typ = r.choices([U.MAP_PRIVATE, U.MAP_SHARED, U.MAP_SHARED_VALIDATE, U.MAP_DROPPABLE,
                         0], [60, 25, 5, 4, 1])[0]
        flags = typ
        if fixed is None:
            fixed = r.random() < 0.7
        if fixed:
            flags |= U.MAP_FIXED if r.random() < 0.85 else U.MAP_FIXED_NOREPLACE
        for bit, p in ((U.MAP_NORESERVE, 0.08), (U.MAP_POPULATE, 0.06), (U.MAP_LOCKED, 0.04),
                       (U.MAP_GROWSDOWN, 0.04), (U.MAP_STACK, 0.05), (U.MAP_SYNC, 0.02),
                       (U.MAP_HUGETLB, 0.01), (0x200, 0.01), (U.MAP_32BIT, 0.01),
                       (U.MAP_UNINITIALIZED, 0.01)):
            if r.random() < p:
                flags |= bit
        if use_file:
            fd = r.choice(list(self.fds))
            off = r.choice([0, 0, 0, 1, 2, 3]) * PAGE
            if r.random() < 0.03:
                off = r.choice([5, 1 << 62, -PAGE])
        else:
            flags |= U.MAP_ANONYMOUS
            fd = -1 if r.random() < 0.97 else r.choice([987, 0])
            off = 0 if r.random() < 0.95 else r.choice([PAGE, 5])
        addr = self.addr() if r.random() < 0.97 else 0
        length = self.length()
        if flags & U.MAP_HUGETLB:
            length = 2 << 20
        self.calls.append(_call("mmap", addr, length, self.prot(), flags, fd, off))

    def _munmap(self):
        self.calls.append(_call("munmap", self.addr(), self.length()))

    def _mprotect_range(self):
        """addr, len, prot for mprotect.  With PROT_GROWSDOWN the kernel starts at the
        first VMA of [addr, addr+len) wherever it is, so a range reaching past the
        window would meet the executor's own mappings: keep such ranges short."""
        addr, length, prot = self.addr(), self.length(), self.prot()
        if prot & (U.PROT_GROWSDOWN | U.PROT_GROWSUP):
            a, end = addr & U.U64, (addr & U.U64) + (length & U.U64)
            W = self.env["W"]
            if end < 1 << 64 and (end > W + WINDOW_SIZE or not W <= a < W + WINDOW_SIZE):
                length = self.rng.choice([1, 2, 16]) * PAGE
        return addr, length, prot

    def _mprotect(self):
        self.calls.append(_call("mprotect", *self._mprotect_range()))

    def _pkey_mprotect(self):
        key = self.rng.choice(self.pkeys + [-1, 0, 1, 2, 15, 16])
        self.calls.append(_call("pkey_mprotect", *self._mprotect_range(), key))

    def _pkey_alloc_free(self):
        r = self.rng
        if r.random() < 0.6:
            self.calls.append(_call("pkey_alloc", r.choice([0, 0, 0, 1]),
                                    r.choice([0, 0, U.PKEY_DISABLE_WRITE,
                                              U.PKEY_DISABLE_ACCESS, 4])))
            self.pkeys.append(1 + len(self.pkeys))
        else:
            self.calls.append(_call("pkey_free", r.choice(self.pkeys + [0, 1, 3, 16, -1])))

    def _mremap(self):
        r = self.rng
        flags = r.choices([0, U.MREMAP_MAYMOVE, U.MREMAP_MAYMOVE | U.MREMAP_FIXED,
                           U.MREMAP_MAYMOVE | U.MREMAP_DONTUNMAP,
                           U.MREMAP_MAYMOVE | U.MREMAP_FIXED | U.MREMAP_DONTUNMAP,
                           U.MREMAP_FIXED, 8], [25, 25, 30, 8, 8, 2, 2])[0]
        old_len = self.length() if r.random() < 0.9 else 0
        new_len = old_len if r.random() < 0.3 else self.length()
        new_addr = self.addr() if flags & U.MREMAP_FIXED else 0
        if flags & U.MREMAP_FIXED and r.random() < 0.05:
            new_addr += 1
        self.calls.append(_call("mremap", self.addr(), old_len, new_len, flags, new_addr))

    def _mseal(self):
        self.calls.append(_call("mseal", self.addr(), self.length(),
                                0 if self.rng.random() < 0.95 else 1))

    def _madvise(self):
        advs, ws = zip(*MADVICES, strict=True)
        addr, length = self.addr(), self.length()
        W, B = self.env["W"], self.env["B"]
        inside = W <= addr & U.U64 < W + WINDOW_SIZE or B <= addr & U.U64 < B + (1 << 30)
        if length & U.U64 > 1 << 32:
            if not inside:
                length = self.rng.choice([1, 4, 16]) * PAGE
            elif addr + length < 1 << 64:
                length = self.rng.choice(WRAPPING_LENGTHS)
        self.calls.append(_call("madvise", addr, length,
                                self.rng.choices(advs, ws)[0]))

    def _mlock(self):
        r = self.rng.random()
        if r < 0.4:
            self.calls.append(_call("mlock", self.addr(), self.length()))
        elif r < 0.7:
            self.calls.append(_call("mlock2", self.addr(), self.length(),
                                    self.rng.choice([0, U.MLOCK_ONFAULT, U.MLOCK_ONFAULT, 2])))
        else:
            self.calls.append(_call("munlock", self.addr(), self.length()))

    def _brk(self):
        r = self.rng
        B = self.env["B"]
        v = r.choices([B + r.randrange(16) * PAGE, B + r.randrange(16) * PAGE + 123, 0,
                       B - PAGE, B + (2 << 20), self.env["W"] + self.page() * PAGE],
                      [60, 8, 10, 5, 5, 3])[0]
        self.calls.append(_call("brk", v))

    def _access_addr(self, exec_=False):
        r = self.rng
        if r.random() < 0.05:
            # just below a page start: the stack-growth path of a MAP_GROWSDOWN VMA
            return self.env["W"] + max(self.page(), 1) * PAGE - r.choice([8, PAGE])
        if r.random() < 0.93:
            # an exec touch runs one instruction: keep it inside the page
            offs = [0, 0, 0, 8] if exec_ else [0, 0, 0, 8, 0xFFF]
            return self.env["W"] + self.page() * PAGE + r.choice(offs)
        return self.env["B"] + r.randrange(8) * PAGE

    def _touch(self):
        mode = self.rng.choices("rwx", [4, 5, 2])[0]
        self.calls.append(_call("touch", self._access_addr(mode == "x"), mode))

    def _peek(self):
        self.calls.append(_call("peek", self._access_addr()))

    def _poke(self):
        self.calls.append(_call("poke", self._access_addr(), self.rng.choice(POKE_BYTES)))

    def _fork(self):
        if self.forks < 2:
            self.forks += 1
            self.calls.append(_call("fork"))

    def _mdwe(self):
        r = self.rng
        a2 = r.choices([U.PR_MDWE_REFUSE_EXEC_GAIN,
                        U.PR_MDWE_REFUSE_EXEC_GAIN | U.PR_MDWE_NO_INHERIT,
                        U.PR_MDWE_NO_INHERIT, 4], [10, 3, 1, 1])[0]
        if r.random() < 0.8:
            self.calls.append(_call("prctl", U.PR_SET_MDWE, a2, 0, 0, 0))
        else:
            self.calls.append(_call("prctl", U.PR_GET_MDWE, 0, 0, 0, 0))

    def _pkru(self):
        self.calls.append(_call("set_pkru", self.rng.choice(
            [0, 0x55555554, 0x4, 0x8, 0xC, 0xFFFFFFFC])))

    def _ksm(self):
        self.calls.append(_call("prctl", U.PR_SET_MEMORY_MERGE, self.rng.choice([1, 0]),
                                0, 0, 0))

    def _personality(self):
        v = self.rng.choices([U.READ_IMPLIES_EXEC | U.ADDR_NO_RANDOMIZE, U.READ_IMPLIES_EXEC,
                              U.ADDR_NO_RANDOMIZE, 0xFFFFFFFF], [5, 2, 1, 1])[0]
        self.calls.append(_call("personality", v))

    def _fileop(self):
        r = self.rng
        if not self.fds:
            return self._mmap()
        fd = r.choice(list(self.fds))
        x = r.random()
        if x < 0.3:
            self.calls.append(_call("ftruncate", fd, r.choice([0, 1, 2, 3, 8]) * PAGE))
        elif x < 0.5:
            # nops: an exec touch of the written bytes runs one harmless instruction
            self.calls.append(_call("pwrite64", fd, b"\x90" * 16, 16, r.randrange(4) * PAGE))
        elif x < 0.7:
            self.calls.append(_call("close", fd))
            del self.fds[fd]
        elif x < 0.85:
            self.calls.append(_call("unlink", r.choice(["/tmp/f1", "/dev/shm/f2"])))
        else:
            self.calls.append(_call("dup", fd))
            self.fds[self._next_fd()] = self.fds[fd]


# --------------------------------------------------------------------------- campaigns

class FuzzReport:
    """The outcome of a fuzz campaign."""

    def __init__(self) -> None:
        self.scenarios = 0
        self.calls = 0
        #: (scenario index, Divergence, shrunk calls, file written or None)
        self.divergences: list[tuple[int, Divergence, list[Call], str | None]] = []
        self.signatures: dict[tuple, int] = {}      # signature -> count
        self.skipped: dict[str, int] = {}           # reason -> scenarios cut short by the host
        self.seconds = 0.0
        self.compare_seconds = 0.0

    @property
    def rate(self) -> float:
        return self.calls / self.compare_seconds if self.compare_seconds else 0.0


def scenario_for(seed: int, index: int, env: Mapping[str, int]) -> Scenario:
    return Generator(f"{seed}:{index}", env).scenario()


def write_divergence(path: str, calls: list[Call], div_after: list[Step],
                     env: Mapping[str, int], comment: str) -> None:
    """Write a shrunk scenario with the kernel's results as expectations."""
    sc = Scenario(list(calls), header=comment.splitlines())
    results = [token_to_result(c.name, st.result, env) if st.result[0] != "crash" else None
               for c, st in zip(calls, div_after, strict=False)]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(dump(sc, env, results))


@dataclass
class Compared:
    """One generated scenario compared (or the oracle error that stopped it):
    picklable, so a worker process can do the comparing."""

    index: int
    scenario: Scenario
    kernel_steps: list[Step] | None = None
    divergence: Divergence | None = None
    seconds: float = 0.0
    error: str | None = None


def compare_one(oracle: Oracle, seed: int, index: int, kernel_kwargs: dict) -> Compared:
    """Generate scenario `index` of `seed` and compare it with the host kernel."""
    sc = scenario_for(seed, index, oracle.env)
    tc = time.perf_counter()
    try:
        ks = oracle.run(sc)
    except OracleError as exc:          # a hung or dead executor: restarted, noted
        return Compared(index, sc, error=f"oracle error: {exc}")
    ms = run_model(sc, kernel_kwargs, oracle.env)
    d = first_divergence(sc, ks, ms, oracle.env, check_expected=False)
    return Compared(index, sc, ks, d, time.perf_counter() - tc)


_WORKER_ORACLE: Oracle | None = None


def _compare_in_worker(seed: int, index: int, kernel_kwargs: dict) -> Compared:
    """compare_one() with this worker process's own oracle."""
    global _WORKER_ORACLE
    if _WORKER_ORACLE is None:
        _WORKER_ORACLE = Oracle()
    return compare_one(_WORKER_ORACLE, seed, index, kernel_kwargs)


def compared_in_parallel(n: int, seed: int, kernel_kwargs: dict, workers: int,
                         ray_address: str | None = None,
                         seconds: float | None = None) -> Iterator[Compared]:
    """compare_one() for scenarios 0..n-1, in index order, computed by `workers`
    local processes (each with its own oracle) or, with ray_address, Ray tasks
    ("local" starts a cluster; Ray is an optional extra imported only here). Stops
    starting new batches once `seconds` have passed."""
    t0 = time.perf_counter()
    batch = 4 * max(workers, 1)
    if ray_address is not None:
        import ray  # the optional extra vmsim[cluster]
        if not ray.is_initialized():
            ray.init(address=None if ray_address == "local" else ray_address,
                     include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=1)(_compare_in_worker)

        def run(idx: list[int]) -> list[Compared]:
            return ray.get([task.remote(seed, i, kernel_kwargs) for i in idx])
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(workers)

        def run(idx: list[int]) -> list[Compared]:
            assert pool is not None
            return pool.starmap(_compare_in_worker, [(seed, i, kernel_kwargs) for i in idx])
    try:
        for lo in range(0, n, batch):
            if seconds is not None and time.perf_counter() - t0 > seconds:
                return
            yield from run(list(range(lo, min(lo + batch, n))))
    finally:
        if pool is not None:
            pool.terminate()


def campaign(oracle: Oracle, n: int, seed: int, kernel_kwargs: dict,
             out_dir: str | None = None,
             progress: Callable[[int, int, FuzzReport], None] | None = None,
             shrink_each: bool = True, max_shrink_tries: int = 2000,
             seconds: float | None = None, workers: int = 1,
             ray_address: str | None = None) -> FuzzReport:
    """Generate n scenarios (or as many as fit in `seconds`), compare each; shrink
    the first divergence of every distinct signature and write it to out_dir.
    workers > 1 (or ray_address) compares in parallel (compared_in_parallel); the
    report is the same, since shrinking stays here, in scenario order."""
    rep = FuzzReport()
    t0 = time.perf_counter()
    if workers > 1 or ray_address is not None:
        results: Iterable[Compared] = compared_in_parallel(n, seed, kernel_kwargs, workers,
                                                           ray_address, seconds)
    else:
        in_time = itertools.takewhile(
            lambda _: seconds is None or time.perf_counter() - t0 <= seconds, range(n))
        results = (compare_one(oracle, seed, i, kernel_kwargs) for i in in_time)
    for c in results:
        i, sc, ks, d = c.index, c.scenario, c.kernel_steps, c.divergence
        if c.error is not None or ks is None:
            why = c.error or "oracle error"
            rep.skipped[why] = rep.skipped.get(why, 0) + 1
            continue
        rep.compare_seconds += c.seconds
        rep.scenarios += 1
        sk = skipped(ks)
        if sk is not None:
            rep.skipped[sk[1]] = rep.skipped.get(sk[1], 0) + 1
        rep.calls += (d.index + 1 if d is not None else sk[0] if sk is not None
                      else len(sc.calls))
        if d is not None:
            sig = d.signature()
            first = sig not in rep.signatures
            rep.signatures[sig] = rep.signatures.get(sig, 0) + 1
            if first:
                shrunk, path = sc.calls[:d.index + 1], None
                if shrink_each:
                    shrunk = shrink_divergence(oracle, kernel_kwargs, sc, d, max_shrink_tries)
                if out_dir:
                    path = os.path.join(out_dir, f"fuzz-{seed}-{i}.scn")
                    small = Scenario(list(shrunk))
                    ks2 = oracle.run(small)
                    ms2 = run_model(small, kernel_kwargs, oracle.env)
                    d2 = first_divergence(small, ks2, ms2, oracle.env, check_expected=False)
                    text = (f"vmsim diff --fuzz: seed {seed}, scenario {i}, shrunk from "
                            f"{len(sc.calls)} to {len(shrunk)} calls\n")
                    text += (d2 or d).describe(oracle.env)
                    text += "\nexpected results below are the kernel's"
                    write_divergence(path, shrunk, ks2, oracle.env, text)
                rep.divergences.append((i, d, shrunk, path))
        if progress:
            progress(i + 1, n, rep)
    rep.seconds = time.perf_counter() - t0
    return rep
