"""Stateful property tests: a Hypothesis `RuleBasedStateMachine` over the whole
syscall surface of vmsim (docs/api.md).

The machine drives one kernel with one or more processes (fork adds children; each
child is then driven by the same rules) through random sequences of

    mmap (anonymous private/shared, files MAP_SHARED/MAP_PRIVATE, /dev/zero, MAP_FIXED,
          MAP_FIXED_NOREPLACE, hints, MAP_GROWSDOWN/LOCKED/POPULATE/...), munmap,
    mprotect, pkey_mprotect, pkey_alloc, pkey_free, PKRU writes, mremap (every flag,
    DONTUNMAP, old_len 0 on shared mappings), mseal, madvise (every advice value),
    mlock/mlock2/munlock, brk, personality (READ_IMPLIES_EXEC), prctl (PR_SET_MDWE,
    PR_SET_MEMORY_MERGE), open/close/dup/pwrite/ftruncate, fork/exit and memory
    reads, writes and touches, and misuse: arguments of the wrong Python type, brk
    below start_brk or past TASK_SIZE, rlimit resources out of range, cur > max and
    raised hard limits, the VFS's own ioctls (O_PATH fds included), negative file
    offsets, and calls by exited processes,

all inside a small window (NPAGES pages at WINDOW) so that calls collide often.  Two
machines run: `PkuMachine` (Kernel(pkeys=True)) and `NoPkuMachine` (pkeys=False).

What is checked is model-level consistency that must hold whatever the exact kernel
semantics of a call are:

* after every step, for every process, `p.mm.validate()` passes;
* every call returns or raises OSError with a positive errno (memory accesses raise
  vmsim.Fault); any other exception escaping vmsim is a bug;
* `p.maps()` lines are 1:1 with `p.vmas()` (addresses, perms, offset, name), sorted and
  non-overlapping, and the last line is [vsyscall]; `p.smaps()` headers are the maps
  lines, `Size`, `ProtectionKey` and `VmFlags` agree with the views;
* a call on one process never changes another process's maps;
* a call on [start, end) never changes the pages outside its range(s) (compared as a
  per-page view, so pure splits/merges are invisible), and on success changes inside the
  range only the flags it is about (mprotect: access/pkey/VM_ACCOUNT, mlock: lock bits,
  madvise: the advice's bit, mseal: VM_SEALED);
* argument errors the kernel detects before taking the mmap lock give EINVAL (EBADF...)
  and leave maps byte-for-byte unchanged; so do all failures that the kernel documents
  as side-effect free (non-MAP_FIXED mmap, mseal, ...);
* bytes written to private pages read back unchanged (shadow copy per process), until a
  call that may discard them (munmap, MAP_FIXED, mremap moves the shadow with the pages,
  DONTNEED/FREE/REMOVE/guard install, brk shrink, ftruncate, fork copies/wipes it);
* shared file mappings read what the file holds; writes through them reach the file;
* after a successful munmap every page of the range faults with SEGV_MAPERR;
* a memory access leaves maps unchanged unless it grew a stack; the fault it raises
  (or not) agrees with the VMA's permissions, the PKRU and the file size;
* sealed pages keep their protection, file and offset for ever;
* MDWE: once set, no successful call makes a page W+X or adds X to a page;
* a misused call raises TypeError (wrong type) or the kernel's errno (ESRCH after
  exit) and changes nothing: maps, fds, rlimits, break, commit charge, files.

Keep the default run short for CI; for long local runs:

    VMSIM_STATEFUL_EXAMPLES=3000 VMSIM_STATEFUL_STEPS=60 python3 -m pytest tests/test_stateful.py
"""

from __future__ import annotations

import bisect
import errno
import itertools
import os

import hypothesis.strategies as st
from hypothesis import HealthCheck, Phase, note, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

import vmsim
from vmsim import (
    ADDR_COMPAT_LAYOUT,
    ADDR_NO_RANDOMIZE,
    FIOASYNC,
    FIOCLEX,
    FIONBIO,
    FIONCLEX,
    FIONREAD,
    FIOQSIZE,
    MADV_COLD,
    MADV_COLLAPSE,
    MADV_DODUMP,
    MADV_DOFORK,
    MADV_DONTDUMP,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_DONTNEED_LOCKED,
    MADV_FREE,
    MADV_GUARD_INSTALL,
    MADV_GUARD_REMOVE,
    MADV_HUGEPAGE,
    MADV_HWPOISON,
    MADV_KEEPONFORK,
    MADV_MERGEABLE,
    MADV_NOHUGEPAGE,
    MADV_NORMAL,
    MADV_PAGEOUT,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MADV_RANDOM,
    MADV_REMOVE,
    MADV_SEQUENTIAL,
    MADV_SOFT_OFFLINE,
    MADV_UNMERGEABLE,
    MADV_WILLNEED,
    MADV_WIPEONFORK,
    MAP_32BIT,
    MAP_ANONYMOUS,
    MAP_DROPPABLE,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_LOCKED,
    MAP_NONBLOCK,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_STACK,
    MAP_SYNC,
    MLOCK_ONFAULT,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_CREAT,
    O_PATH,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    PKEY_DISABLE_ACCESS,
    PKEY_DISABLE_WRITE,
    PR_GET_MDWE,
    PR_GET_MEMORY_MERGE,
    PR_MDWE_NO_INHERIT,
    PR_SET_MDWE,
    PR_SET_MEMORY_MERGE,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_READ,
    PROT_SEM,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
    RLIM_INFINITY,
    RLIM_NLIMITS,
    RLIMIT_MEMLOCK,
    VM_ACCOUNT,
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_DROPPABLE,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGEPAGE,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_MAYBE_GUARD,
    VM_MAYEXEC,
    VM_MAYSHARE,
    VM_MERGEABLE,
    VM_NOHUGEPAGE,
    VM_RAND_READ,
    VM_READ,
    VM_SEALED,
    VM_SEQ_READ,
    VM_SHARED,
    VM_WIPEONFORK,
    VM_WRITE,
)

PAGE = vmsim.PAGE_SIZE
U64 = (1 << 64) - 1
WINDOW = 0x7E0000000000
NPAGES = 64
WINDOW_END = WINDOW + NPAGES * PAGE
BRK_START = WINDOW + 40 * PAGE          # the heap grows into the window's top
TASK_SIZE = 0x7FFFFFFFF000
MAX_PROCS = 4

VM_ACCESS = VM_READ | VM_WRITE | VM_EXEC
VM_PKEY_MASK = 0xF << 32
#: sticky flags a merge may spread to pages outside a call's range (docs: `gu`)
IGNORED = VM_MAYBE_GUARD

EXAMPLES = int(os.environ.get("VMSIM_STATEFUL_EXAMPLES", "150"))
STEPS = int(os.environ.get("VMSIM_STATEFUL_STEPS", "40"))

#: files present in every run: (path, initial size in bytes)
FILES = {"/tmp/f0": 3 * PAGE + 123, "/dev/shm/s0": 2 * PAGE, "/mnt/nx/x0": PAGE + 7}
OPEN_PATHS = ["/tmp/f0", "/dev/shm/s0", "/mnt/nx/x0", "/dev/zero", "/dev/null",
              "/proc/self/status", "/tmp", "/tmp/new"]

MADVICES = [MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE,
            MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK, MADV_MERGEABLE, MADV_UNMERGEABLE,
            MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK,
            MADV_KEEPONFORK, MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
            MADV_DONTNEED_LOCKED, MADV_COLLAPSE, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE,
            MADV_HWPOISON, MADV_SOFT_OFFLINE]
VALID_MADVICES = set(MADVICES) - {MADV_HWPOISON, MADV_SOFT_OFFLINE}
#: advice that may throw page contents away (shadow entries are dropped)
DISCARDING = {MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE, MADV_REMOVE, MADV_GUARD_INSTALL,
              MADV_PAGEOUT, MADV_COLD}
#: advice -> (bits set, bits cleared) on success
ADVICE_FLAGS = {
    MADV_NORMAL: (0, VM_RAND_READ | VM_SEQ_READ),
    MADV_SEQUENTIAL: (VM_SEQ_READ, VM_RAND_READ),
    MADV_RANDOM: (VM_RAND_READ, VM_SEQ_READ),
    MADV_DONTFORK: (VM_DONTCOPY, 0),
    MADV_DOFORK: (0, VM_DONTCOPY),
    MADV_WIPEONFORK: (VM_WIPEONFORK, 0),
    MADV_KEEPONFORK: (0, VM_WIPEONFORK),
    MADV_DONTDUMP: (VM_DONTDUMP, 0),
    MADV_DODUMP: (0, VM_DONTDUMP),
    MADV_MERGEABLE: (VM_MERGEABLE, 0),
    MADV_UNMERGEABLE: (0, VM_MERGEABLE),
    MADV_HUGEPAGE: (VM_HUGEPAGE, VM_NOHUGEPAGE),
    MADV_NOHUGEPAGE: (VM_NOHUGEPAGE, VM_HUGEPAGE),
}


def page_align(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1) & U64


def access_bits(prot: int) -> int:
    return (VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0) | \
        (VM_EXEC if prot & PROT_EXEC else 0)


def ksm_compatible(flags: int) -> bool:
    return not flags & (VM_SHARED | VM_MAYSHARE | VM_DROPPABLE)


# --------------------------------------------------------------------------- page views
#
# A "segment view" of an address space is the list of its VMAs as
# (start, end, key, base): key holds what a page observably is (flags without the
# sticky ones, file, name of the file), base the file page index of `start` (None for
# anonymous memory).  Normalising merges neighbours that are the same page by page, so
# two address spaces that differ only by where VMAs are split compare equal.

def file_key(v):
    return (v.file, v.name) if v.file is not None else None


def is_anon(v):
    """vma_is_anonymous(): no file, or a private /dev/zero mapping (whose pgoff
    copy_vma() rebases like an anonymous VMA's)."""
    return v.file is None or (v.file == "/dev/zero" and not v.flags & VM_MAYSHARE)


def segments(p):
    return [(v.start, v.end, (v.flags & ~IGNORED, file_key(v)),
             None if is_anon(v) else v.pgoff) for v in p.vmas()]


def clip(segs, lo, hi):
    out = []
    for s, e, k, b in segs:
        ns, ne = max(s, lo), min(e, hi)
        if ns < ne:
            out.append((ns, ne, k, None if b is None else b + ((ns - s) >> 12)))
    return out


def normalize(segs):
    out = []
    for s, e, k, b in segs:
        if out:
            ps, pe, pk, pb = out[-1]
            if pe == s and pk == k and (pb is None) == (b is None) and \
                    (b is None or pb + ((pe - ps) >> 12) == b):
                out[-1] = (ps, e, k, pb)
                continue
        out.append((s, e, k, b))
    return out


def outside(segs, ranges):
    """The view restricted to the complement of the union of `ranges`."""
    ranges = sorted((lo, hi) for lo, hi in ranges if lo < hi)
    out, pos = [], 0
    for lo, hi in ranges:
        if lo > pos:
            out += clip(segs, pos, lo)
        pos = max(pos, hi)
    out += clip(segs, pos, 1 << 64)
    return normalize(out)


def seg_at(segs, addr):
    """(start, end, key, base) of the segment holding addr, or None."""
    i = bisect.bisect_right([s[0] for s in segs], addr) - 1
    if i >= 0 and segs[i][0] <= addr < segs[i][1]:
        return segs[i]
    return None


def vma_at(views, addr):
    for v in views:
        if v.start <= addr < v.end:
            return v
    return None


def page_attr(segs, addr):
    """(flags, file key, file index) of the page at addr, or None if unmapped."""
    s = seg_at(segs, addr)
    if s is None:
        return None
    start, _, (flags, fk), base = s
    return flags, fk, None if base is None else base + ((addr - start) >> 12)


def pages(lo, hi):
    return range(lo & ~(PAGE - 1), hi, PAGE)


def mapped_pages(segs, lo, hi):
    """The addresses of the pages of [lo, hi) that `segs` maps (bounded by its size)."""
    for s, e, _, _ in clip(segs, lo & ~(PAGE - 1), hi):
        yield from range(s, e, PAGE)


class PState:
    """What the test knows about one process."""

    def __init__(self, p):
        self.p = p
        self.shadow: dict[int, dict[int, int]] = {}     # vpn -> {offset: byte}
        self.sealed: dict[int, tuple] = {}              # vpn -> (flags subset, file, index)
        self.fds: dict[int, tuple[str, int]] = {}       # fd -> (path, open flags)
        self.pkeys: set[int] = set()                    # returned by pkey_alloc, not freed
        self.persona = 0
        self.mdwe = 0
        self.merge_any = False
        self.brk = BRK_START

    def drop(self, lo, hi):
        """Forget expected contents in [lo, hi)."""
        for vpn in [v for v in self.shadow if lo <= v << 12 < hi]:
            del self.shadow[vpn]


def sealed_key(flags, fk, index):
    return (flags & (VM_ACCESS | VM_MAYSHARE | VM_PKEY_MASK | VM_SEALED), fk, index)


# --------------------------------------------------------------------------- strategies

page_index = st.integers(0, NPAGES - 1)
win_addr = page_index.map(lambda i: WINDOW + i * PAGE)
unaligned_addr = st.builds(lambda i, o: WINDOW + i * PAGE + o, page_index, st.integers(1, PAGE - 1))
page_len = st.integers(1, 8).map(lambda n: n * PAGE)
any_len = st.one_of(page_len, page_len, page_len, st.integers(1, 10 * PAGE),
                    st.sampled_from([0, U64, U64 - PAGE + 1, TASK_SIZE + PAGE]))
prot_st = st.one_of(st.integers(0, 7), st.integers(0, 7),
                    st.sampled_from([PROT_SEM | PROT_READ, PROT_GROWSDOWN | PROT_READ,
                                     PROT_GROWSDOWN | PROT_READ | PROT_WRITE,
                                     PROT_GROWSUP | PROT_READ, PROT_GROWSDOWN | PROT_GROWSUP,
                                     0x10, 0x80000000 | PROT_READ]))
mmap_extra = st.sets(st.sampled_from([MAP_GROWSDOWN, MAP_LOCKED, MAP_POPULATE, MAP_NORESERVE,
                                      MAP_STACK, MAP_32BIT, MAP_SYNC, MAP_NONBLOCK, 0x200]),
                     max_size=2).map(lambda s: sum(s))
placement = st.sampled_from(["fixed", "fixed", "noreplace", "hint", "none"])
proc_index = st.integers(0, MAX_PROCS - 1)

#: misuse: calls as (name, ((kind, good value), ...)); a rule spoils one argument
MISUSE_CALLS = [
    ("mmap", (("int", WINDOW), ("int", PAGE), ("int", PROT_READ),
              ("int", MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED), ("int", -1), ("int", 0))),
    ("munmap", (("int", WINDOW), ("int", PAGE))),
    ("mprotect", (("int", WINDOW), ("int", PAGE), ("int", PROT_READ))),
    ("mremap", (("int", WINDOW), ("int", PAGE), ("int", 2 * PAGE), ("int", MREMAP_MAYMOVE))),
    ("madvise", (("int", WINDOW), ("int", PAGE), ("int", MADV_DONTNEED))),
    ("mlock2", (("int", WINDOW), ("int", PAGE), ("int", MLOCK_ONFAULT))),
    ("mseal", (("int", WINDOW), ("int", PAGE), ("int", 0))),
    ("brk", (("int", BRK_START + PAGE),)),
    ("personality", (("int", READ_IMPLIES_EXEC),)),
    ("prctl", (("int", PR_SET_MEMORY_MERGE), ("int", 1))),
    ("open", (("path", "/tmp/new"), ("int", O_RDWR | O_CREAT), ("int", 0o600))),
    ("dup", (("int", 0),)),
    ("close", (("int", 0),)),
    ("ftruncate", (("int", 0), ("int", 0))),
    ("pread", (("int", 0), ("int", 8), ("int", 0))),
    ("pwrite", (("int", 0), ("buf", b"spoilt!!"), ("int", 0))),
    ("ioctl", (("int", 0), ("int", FIONBIO), ("int", WINDOW))),
    ("setrlimit", (("int", RLIMIT_MEMLOCK), ("int", 0))),
    ("getrlimit", (("int", RLIMIT_MEMLOCK),)),
    ("unlink", (("path", "/tmp/f0"),)),
    ("write", (("int", WINDOW), ("buf", b"spoilt"))),
    ("read", (("int", WINDOW), ("int", 8))),
    ("touch", (("int", WINDOW), ("mode", "w"))),
]
BAD_VALUES = {
    "int": [1.5, float(PAGE), None, "7", b"7", [7], 2.0 ** 70],
    "buf": [5, 2 ** 200, "text", None, [1, 2]],
    "path": [b"/tmp/f0", None, 3],
    "mode": [1, None, b"w"],
}
#: calls an exited process tries
AFTER_EXIT_CALLS = [
    ("mmap", (0, 1 << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)),
    ("munmap", (WINDOW, PAGE)), ("mprotect", (WINDOW, PAGE, PROT_READ)),
    ("mremap", (WINDOW, PAGE, 2 * PAGE, MREMAP_MAYMOVE)), ("mseal", (WINDOW, PAGE)),
    ("madvise", (WINDOW, PAGE, MADV_WILLNEED)), ("mlock", (WINDOW, PAGE)),
    ("munlock", (WINDOW, PAGE)), ("pkey_alloc", ()), ("pkey_free", (1,)),
    ("pkey_mprotect", (WINDOW, PAGE, PROT_READ, 0)), ("brk", (BRK_START + PAGE,)),
    ("personality", (0xFFFFFFFF,)), ("prctl", (PR_GET_MDWE,)), ("open", ("/tmp/f0", O_RDWR)),
    ("close", (0,)), ("dup", (0,)), ("pipe", ()), ("ftruncate", (0, 0)), ("pread", (0, 8, 0)),
    ("pwrite", (0, b"x", 0)), ("unlink", ("/tmp/f0",)), ("ioctl", (0, FIOCLEX)),
    ("getrlimit", (RLIMIT_MEMLOCK,)), ("setrlimit", (RLIMIT_MEMLOCK, 0)),
    ("read", (WINDOW, 1)), ("write", (WINDOW, b"x")), ("touch", (WINDOW, "w")),
    ("fork", ()), ("exit", ()),
]


class VmsimMachine(RuleBasedStateMachine):
    """The machine; subclasses choose the kernel configuration."""

    PKEYS = True
    mapped = Bundle("mapped")

    # ------------------------------------------------------------------ set-up
    @initialize()
    def setup(self):
        k = self.k = vmsim.Kernel(pkeys=self.PKEYS)
        k.fs.mkdir("/mnt")
        k.fs.mkdir("/mnt/nx")
        k.fs.mount("/mnt/nx", noexec=True)
        for path, size in FILES.items():
            k.fs.create(path, bytes((i * 7 + len(path)) & 0xFF for i in range(size)))
        p = k.spawn(stack=True, brk=BRK_START)
        ps = PState(p)
        self.procs = [ps]
        self.dead: list[vmsim.Process] = []     # exited processes (the misuse rules call them)
        # a few descriptors to start with (the rules open, dup and close more)
        for path, flags in [("/tmp/f0", O_RDWR), ("/tmp/f0", O_RDONLY), ("/dev/zero", O_RDWR),
                            ("/dev/shm/s0", O_RDWR), ("/mnt/nx/x0", O_RDWR)]:
            fd = p.open(path, flags)
            ps.fds[fd] = (path, flags)

    def proc(self, i) -> PState:
        return self.procs[i % len(self.procs)]

    # ------------------------------------------------------------------ helpers
    def call(self, ps, name, *args):
        """Run one syscall: (True, result) or (False, errno).  Anything but OSError
        escaping vmsim fails the test."""
        fn = getattr(ps.p, name)
        try:
            res = fn(*args)
        except OSError as e:
            assert isinstance(e.errno, int) and e.errno > 0, f"{name}: OSError without errno: {e!r}"
            note(f"pid {ps.p.pid}: {name}{tuple(hex(a) if isinstance(a, int) else a for a in args)}"
                 f" -> {errno.errorcode.get(e.errno, e.errno)}")
            return False, e.errno
        note(f"pid {ps.p.pid}: {name}{tuple(hex(a) if isinstance(a, int) else a for a in args)}"
             f" -> {res if not isinstance(res, int) else hex(res)}")
        return True, res

    def snapshot(self):
        return {id(q): (q.p.maps(), segments(q.p)) for q in self.procs}

    def others_unchanged(self, ps, snap):
        for q in self.procs:
            if q is not ps and id(q) in snap:
                assert q.p.maps() == snap[id(q)][0], \
                    f"a call in pid {ps.p.pid} changed the maps of pid {q.p.pid}"

    def assert_outside_unchanged(self, before, after, ranges, what, mask=0):
        """Pages outside `ranges` are the same before and after (flags compared
        without the bits in `mask`)."""
        if mask:
            before = [(s, e, (k[0] & ~mask, k[1]), b) for s, e, k, b in before]
            after = [(s, e, (k[0] & ~mask, k[1]), b) for s, e, k, b in after]
        b, a = outside(before, ranges), outside(after, ranges)
        assert b == a, f"{what} changed pages outside {[(hex(x), hex(y)) for x, y in ranges]}:" \
            f"\nbefore {fmt(b)}\nafter  {fmt(a)}"

    def assert_flags_only(self, before, after, lo, hi, mask, what):
        """Every page of [lo, hi) mapped before is still mapped, with the same file and
        index, and its flags changed only within `mask`."""
        for a in mapped_pages(before, lo, hi):
            pb = page_attr(before, a)
            pa = page_attr(after, a)
            assert pa is not None, f"{what}: page {a:#x} was unmapped"
            assert pa[1:] == pb[1:], f"{what}: page {a:#x} changed file/offset {pb} -> {pa}"
            assert not (pa[0] ^ pb[0]) & ~mask, \
                f"{what}: page {a:#x} flags {pb[0]:#x} -> {pa[0]:#x} beyond mask {mask:#x}"

    def file_size(self, path):
        try:
            return len(self.k.fs.read(path))
        except OSError:
            return None

    # ------------------------------------------------------------------ files
    @rule(i=proc_index, path=st.sampled_from(OPEN_PATHS),
          flags=st.sampled_from([O_RDONLY, O_RDWR, O_WRONLY, O_PATH, O_RDWR | O_CREAT, 3]))
    def open_file(self, i, path, flags):
        ps = self.proc(i)
        snap = self.snapshot()
        ok, fd = self.call(ps, "open", path, flags)
        if ok:
            assert fd not in ps.fds, f"open returned fd {fd} that is already open"
            ps.fds[fd] = (path, flags)
        assert ps.p.maps() == snap[id(ps)][0]
        self.others_unchanged(ps, snap)

    @rule(i=proc_index, fd=st.integers(-1, 9))
    def close_fd(self, i, fd):
        ps = self.proc(i)
        snap = self.snapshot()
        ok, res = self.call(ps, "close", fd)
        assert ok == (fd in ps.fds), f"close({fd}) ok={ok} but open fds are {sorted(ps.fds)}"
        if ok:
            assert res == 0
            del ps.fds[fd]
        else:
            assert res == errno.EBADF
        assert ps.p.maps() == snap[id(ps)][0]
        self.others_unchanged(ps, snap)

    @rule(i=proc_index, fd=st.integers(-1, 9))
    def dup_fd(self, i, fd):
        ps = self.proc(i)
        ok, res = self.call(ps, "dup", fd)
        assert ok == (fd in ps.fds), f"dup({fd}) ok={ok} but open fds are {sorted(ps.fds)}"
        if ok:
            assert res not in ps.fds
            ps.fds[res] = ps.fds[fd]

    @rule(i=proc_index, fd=st.integers(0, 7), size=st.sampled_from([0, 100, PAGE, PAGE + 1,
                                                                      3 * PAGE, 5 * PAGE + 9]))
    def ftruncate(self, i, fd, size):
        ps = self.proc(i)
        snap = self.snapshot()
        ok, _ = self.call(ps, "ftruncate", fd, size)
        if ok:
            # truncation zaps private COW copies of the file's pages in every process
            for q in self.procs:
                for v in q.p.vmas():
                    if v.file is not None:
                        q.drop(v.start, v.end)
        for q in self.procs:
            assert q.p.maps() == snap[id(q)][0], "ftruncate changed maps"

    @rule(i=proc_index, fd=st.integers(0, 7), data=st.binary(min_size=1, max_size=64),
          off=st.integers(0, 5 * PAGE))
    def pwrite(self, i, fd, data, off):
        ps = self.proc(i)
        snap = self.snapshot()
        self.call(ps, "pwrite", fd, data, off)
        for q in self.procs:
            assert q.p.maps() == snap[id(q)][0], "pwrite changed maps"

    # ------------------------------------------------------------------ mmap
    def _mmap(self, ps, addr, length, prot, flags, fd, off, fixedness):
        p = ps.p
        snap = self.snapshot()
        before = snap[id(ps)][1]
        maps_before = snap[id(ps)][0]
        ok, r = self.call(ps, "mmap", addr, length, prot, flags, fd, off)
        after = segments(p)
        self.others_unchanged(ps, snap)
        anon = bool(flags & MAP_ANONYMOUS)
        plain_fixed = flags & MAP_FIXED and not flags & MAP_FIXED_NOREPLACE
        if off & (PAGE - 1):
            assert not ok and r == errno.EINVAL, "mmap with an unaligned offset must be EINVAL"
        elif not anon and (fd not in ps.fds or ps.fds[fd][1] & O_PATH):
            assert not ok and r == errno.EBADF, f"mmap of fd {fd} (not open/O_PATH) must be EBADF"
        elif length == 0:
            assert not ok and r == errno.EINVAL, "mmap of length 0 must be EINVAL"
        if not ok:
            if not plain_fixed or r in (errno.EINVAL, errno.EBADF, errno.EACCES, errno.ENODEV,
                                        errno.EOVERFLOW, errno.EEXIST):
                assert p.maps() == maps_before, \
                    f"mmap failed with {errno.errorcode[r]} but changed maps"
            else:
                lo, hi = addr, addr + page_align(length)
                ps.drop(lo, hi)
                self.assert_outside_unchanged(before, after, [(lo, hi)], "failed MAP_FIXED mmap")
            return multiple()
        # success
        length = page_align(length)
        assert r % PAGE == 0, f"mmap returned unaligned {r:#x}"
        assert r + length <= TASK_SIZE
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            assert r == addr, f"MAP_FIXED mmap at {addr:#x} returned {r:#x}"
        if not plain_fixed:
            assert not clip(before, r, r + length), \
                f"mmap without MAP_FIXED placed {r:#x}+{length:#x} over an existing mapping"
        self.assert_outside_unchanged(before, after, [(r, r + length)], "mmap")
        ps.drop(r, r + length)
        # the new range: fully mapped, with the asked-for protection and type
        path = None if anon else ps.fds[fd][0]
        want = access_bits(prot)
        noexec = path is not None and path.startswith("/mnt/nx")
        if prot & PROT_READ and ps.persona & READ_IMPLIES_EXEC and not noexec:
            want |= VM_EXEC
        shared = flags & 0xF in (MAP_SHARED, MAP_SHARED_VALIDATE)
        for a in pages(r, r + length):
            pa = page_attr(after, a)
            assert pa is not None, f"mmap returned {r:#x} but page {a:#x} is not mapped"
            fl, fk, idx = pa
            assert fl & VM_ACCESS == want, \
                f"mmap prot {prot:#x}: page {a:#x} has access {fl & VM_ACCESS:#x}, want {want:#x}"
            assert bool(fl & VM_MAYSHARE) == bool(shared), f"page {a:#x} shared-ness wrong"
            if path is not None:
                assert fk is not None and fk[0] == path, f"page {a:#x} maps {fk}, want {path}"
                if path in FILES:
                    assert idx == off // PAGE + (a - r) // PAGE, f"page {a:#x} file index {idx}"
            elif shared:
                assert fk is not None and fk[1] == "/dev/zero (deleted)", \
                    f"shared anonymous page {a:#x} shows {fk}"
            else:
                assert fk is None, f"private anonymous page {a:#x} has a file {fk}"
            if flags & MAP_GROWSDOWN:
                assert fl & VM_GROWSDOWN
            if flags & MAP_LOCKED:
                assert fl & VM_LOCKED, f"MAP_LOCKED page {a:#x} not locked"
            if ps.mdwe:
                assert fl & (VM_WRITE | VM_EXEC) != VM_WRITE | VM_EXEC, "MDWE: mmap made W+X"
            if not self.PKEYS or (prot & 7) != PROT_EXEC:
                assert fl & VM_PKEY_MASK == 0, f"page {a:#x} got pkey {fl >> 32 & 15}"
        return multiple(r)

    @rule(target=mapped, i=proc_index, addr=st.one_of(win_addr, win_addr, unaligned_addr),
          length=any_len, prot=st.integers(0, 7),
          mtype=st.sampled_from([MAP_PRIVATE, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE,
                                 MAP_DROPPABLE, 0]),
          where=placement, extra=mmap_extra)
    def mmap_anon(self, i, addr, length, prot, mtype, where, extra):
        flags = mtype | MAP_ANONYMOUS | extra | {"fixed": MAP_FIXED, "noreplace":
                                                 MAP_FIXED_NOREPLACE}.get(where, 0)
        if where == "none":
            addr = 0
        return self._mmap(self.proc(i), addr, length, prot, flags, -1, 0, where)

    @rule(target=mapped, i=proc_index, addr=st.one_of(win_addr, win_addr, unaligned_addr),
          length=any_len, prot=st.integers(0, 7),
          mtype=st.sampled_from([MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, 0]),
          where=placement, extra=mmap_extra, fd=st.integers(-1, 7),
          off=st.one_of(st.integers(0, 5).map(lambda n: n * PAGE), st.integers(1, 6 * PAGE),
                        st.just((1 << 63) - PAGE)))
    def mmap_file(self, i, addr, length, prot, mtype, where, extra, fd, off):
        flags = mtype | extra | {"fixed": MAP_FIXED, "noreplace": MAP_FIXED_NOREPLACE}.get(where, 0)
        if where == "none":
            addr = 0
        return self._mmap(self.proc(i), addr, length, prot, flags, fd, off, where)

    # ------------------------------------------------------------------ munmap
    @rule(i=proc_index, addr=st.one_of(win_addr, win_addr, win_addr, unaligned_addr, mapped),
          length=any_len, mode=st.sampled_from("rwx"))
    def munmap(self, i, addr, length, mode):
        ps = self.proc(i)
        p = ps.p
        snap = self.snapshot()
        before, maps_before = snap[id(ps)][1], snap[id(ps)][0]
        ok, r = self.call(ps, "munmap", addr, length)
        self.others_unchanged(ps, snap)
        after = segments(p)
        if addr & (PAGE - 1) or length == 0:
            assert not ok and r == errno.EINVAL, "munmap with bad arguments must be EINVAL"
        if not ok:
            if r == errno.EINVAL:
                assert p.maps() == maps_before, "munmap EINVAL changed maps"
            else:
                # a refused munmap (EPERM: sealed) may leave a split, nothing else
                assert normalize(before) == normalize(after), \
                    f"failed munmap ({errno.errorcode[r]}) changed pages"
            return
        assert r == 0
        end = addr + page_align(length)
        self.assert_outside_unchanged(before, after, [(addr, end)], "munmap")
        ps.drop(addr, end)
        assert not clip(after, addr, end), "munmap left pages mapped in its range"
        # every page of the range faults with SEGV_MAPERR (unless a stack could grow into it)
        views = p.vmas()
        for a in itertools.islice(pages(addr, end), 16):
            above = next((v for v in views if v.end > a), None)
            if above is not None and above.flags & VM_GROWSDOWN:
                continue
            m0 = p.maps()
            try:
                p.touch(a, mode)
            except vmsim.Fault as f:
                assert (f.signal, f.code, f.addr) == ("SIGSEGV", "SEGV_MAPERR", a), \
                    f"touch({a:#x}, {mode}) after munmap: {f.signal} {f.code} at {f.addr:#x}"
            else:
                raise AssertionError(f"touch({a:#x}, {mode!r}) after munmap did not fault")
            assert p.maps() == m0

    # ------------------------------------------------------------------ mprotect / pkeys
    def _mprotect(self, ps, addr, length, prot, pkey):
        p = ps.p
        snap = self.snapshot()
        before, maps_before = snap[id(ps)][1], snap[id(ps)][0]
        views = p.vmas()
        if pkey is None:
            ok, r = self.call(ps, "mprotect", addr, length, prot)
        else:
            ok, r = self.call(ps, "pkey_mprotect", addr, length, prot, pkey)
        self.others_unchanged(ps, snap)
        after = segments(p)
        grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
        if grows == PROT_GROWSDOWN | PROT_GROWSUP or addr & (PAGE - 1):
            assert not ok and r == errno.EINVAL, "mprotect with bad arguments must be EINVAL"
        elif length == 0:
            assert ok, "mprotect of length 0 at an aligned address must succeed"
        elif page_align(length) == 0 or addr + page_align(length) > U64:
            assert not ok and r == errno.ENOMEM
        elif prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM | PROT_GROWSDOWN | PROT_GROWSUP):
            assert not ok and r == errno.EINVAL, "mprotect with unknown prot bits must be EINVAL"
        elif pkey is not None and not -1 <= pkey < 16:
            assert not ok and r == errno.EINVAL, f"pkey_mprotect with pkey {pkey} must be EINVAL"
        if ok and length == 0:
            assert p.maps() == maps_before
            return
        end = (addr + page_align(length)) & U64
        lo = addr
        if ok and grows & PROT_GROWSDOWN:
            first = next(v for v in views if v.end > addr)
            lo = min(first.start, addr)
        if not ok:
            if r == errno.EINVAL:
                assert p.maps() == maps_before, "mprotect EINVAL changed maps"
            if end > addr:
                lo2 = addr
                if grows & PROT_GROWSDOWN:
                    first = next((v for v in views if v.end > addr), None)
                    if first is not None:
                        lo2 = min(first.start, addr)
                self.assert_outside_unchanged(before, after, [(lo2, end)], "failed mprotect")
            return
        assert r == 0
        self.assert_outside_unchanged(before, after, [(lo, end)], "mprotect")
        self.assert_flags_only(before, after, lo, end,
                               VM_ACCESS | VM_PKEY_MASK | VM_ACCOUNT, "mprotect")
        base = access_bits(prot)
        for a in pages(lo, end):
            pb, pa = page_attr(before, a), page_attr(after, a)
            assert pb is not None, f"mprotect succeeded over the hole at {a:#x}"
            want = base
            if prot & PROT_READ and ps.persona & READ_IMPLIES_EXEC and pb[0] & VM_MAYEXEC:
                want |= VM_EXEC
            assert pa[0] & VM_ACCESS == want, \
                f"mprotect({prot:#x}): page {a:#x} access {pa[0] & VM_ACCESS:#x}, want {want:#x}"
            if pkey is not None and pkey != -1:
                assert (pa[0] >> 32) & 15 == pkey, f"pkey_mprotect: page {a:#x} pkey wrong"
            if ps.mdwe:
                assert pa[0] & (VM_WRITE | VM_EXEC) != VM_WRITE | VM_EXEC, "MDWE: mprotect W+X"
                assert not pa[0] & VM_EXEC or pb[0] & VM_EXEC, "MDWE: mprotect added X"

    @rule(i=proc_index, addr=st.one_of(win_addr, win_addr, win_addr, unaligned_addr, mapped),
          length=any_len, prot=prot_st)
    def mprotect(self, i, addr, length, prot):
        self._mprotect(self.proc(i), addr, length, prot, None)

    @rule(i=proc_index, addr=st.one_of(win_addr, win_addr, mapped), length=any_len,
          prot=prot_st, pkey=st.one_of(st.integers(-1, 4), st.sampled_from([15, 16, -2, 1 << 31])))
    def pkey_mprotect(self, i, addr, length, prot, pkey):
        self._mprotect(self.proc(i), addr, length, prot, pkey)

    @rule(i=proc_index, flags=st.sampled_from([0, 0, 0, 1]),
          rights=st.sampled_from([0, PKEY_DISABLE_ACCESS, PKEY_DISABLE_WRITE, 3, 4]))
    def pkey_alloc(self, i, flags, rights):
        ps = self.proc(i)
        snap = self.snapshot()
        ok, r = self.call(ps, "pkey_alloc", flags, rights)
        for q in self.procs:
            assert q.p.maps() == snap[id(q)][0], "pkey_alloc changed maps"
        if flags or rights & ~3:
            assert not ok and r == errno.EINVAL
        if not self.PKEYS:
            assert not ok, "pkey_alloc succeeded without PKU"
        if ok:
            assert 0 <= r < 16 and r not in ps.pkeys, f"pkey_alloc returned {r}, held {ps.pkeys}"
            ps.pkeys.add(r)
            bits = (ps.p.pkru >> (2 * r)) & 3
            assert bits == rights & 3, f"pkey_alloc({rights}) left PKRU bits {bits} for key {r}"

    @rule(i=proc_index, pkey=st.one_of(st.integers(-1, 5), st.sampled_from([15, 16])))
    def pkey_free(self, i, pkey):
        ps = self.proc(i)
        snap = self.snapshot()
        ok, r = self.call(ps, "pkey_free", pkey)
        for q in self.procs:
            assert q.p.maps() == snap[id(q)][0], "pkey_free changed maps"
        if pkey in ps.pkeys:
            assert ok, f"pkey_free({pkey}) of a key pkey_alloc returned failed"
        if not -1 < pkey < 16 or not self.PKEYS:
            assert not ok and r == errno.EINVAL
        if ok:
            ps.pkeys.discard(pkey)

    @rule(i=proc_index, pkru=st.one_of(st.just(0), st.just(0x55555554),
                                       st.integers(0, 0xFFFFFFFF)))
    def set_pkru(self, i, pkru):
        ps = self.proc(i)
        note(f"pid {ps.p.pid}: pkru = {pkru:#x}")
        ps.p.pkru = pkru

    # ------------------------------------------------------------------ mremap
    @rule(i=proc_index, addr=st.one_of(win_addr, win_addr, win_addr, unaligned_addr, mapped),
          old_len=st.one_of(page_len, page_len, st.just(0), st.integers(1, 3 * PAGE)),
          new_len=st.one_of(page_len, page_len, st.just(0), st.integers(1, 3 * PAGE),
                            st.just(TASK_SIZE + PAGE)),
          flags=st.one_of(st.sampled_from([0, MREMAP_MAYMOVE, MREMAP_MAYMOVE | MREMAP_FIXED,
                                           MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
                                           MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP]),
                          st.integers(0, 15)),
          new_addr=st.one_of(win_addr, win_addr, unaligned_addr, st.just(0)),
          same=st.booleans())
    def mremap(self, i, addr, old_len, new_len, flags, new_addr, same):
        ps = self.proc(i)
        p = ps.p
        if same:
            new_len = old_len if old_len else new_len
        snap = self.snapshot()
        before, maps_before = snap[id(ps)][1], snap[id(ps)][0]
        ok, r = self.call(ps, "mremap", addr, old_len, new_len, flags, new_addr)
        self.others_unchanged(ps, snap)
        after = segments(p)
        olen, nlen = page_align(old_len), page_align(new_len)
        implies_new = flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)
        bad = (flags & ~7 or addr & (PAGE - 1) or nlen == 0 or nlen > TASK_SIZE or
               (implies_new and (new_addr & (PAGE - 1) or new_addr > TASK_SIZE - nlen
                                 or not flags & MREMAP_MAYMOVE
                                 or (flags & MREMAP_DONTUNMAP and olen != nlen)
                                 or (addr < new_addr + nlen and new_addr < addr + olen))))
        if bad:
            assert not ok and r == errno.EINVAL, "mremap with bad arguments must be EINVAL"
        if not ok:
            if r == errno.EINVAL:
                assert p.maps() == maps_before, "mremap EINVAL changed maps"
            ranges = [(addr, addr + max(olen, nlen))]
            if implies_new:
                ranges.append((new_addr, new_addr + nlen))
            for lo, hi in ranges:
                ps.drop(lo, hi)
            if not bad:
                self.assert_outside_unchanged(before, after, ranges, "failed mremap")
            return
        assert r % PAGE == 0
        if flags & MREMAP_FIXED:
            assert r == new_addr, f"MREMAP_FIXED to {new_addr:#x} returned {r:#x}"
        if not flags & MREMAP_MAYMOVE:
            assert r == addr, "mremap without MAYMOVE moved"
        moved = r != addr
        keep_old = bool(flags & MREMAP_DONTUNMAP) or olen == 0
        ranges = [(r, r + nlen)]
        if not keep_old or (flags & MREMAP_DONTUNMAP and moved):
            ranges.append((addr, addr + olen))      # DONTUNMAP: checked below
        # dontunmap_complete() clears the lock bits of the whole source VMA, also
        # outside the range moved (mm/mremap.c: vm_flags_clear(vrm->vma, VM_LOCKED_MASK))
        self.assert_outside_unchanged(before, after, ranges, "mremap",
                                      VM_LOCKED | VM_LOCKONFAULT if flags & MREMAP_DONTUNMAP else 0)
        # the new range holds the old pages, same flags and file offsets
        for k in range(nlen // PAGE):
            a = r + k * PAGE
            pa = page_attr(after, a)
            if k < olen // PAGE:
                pb = page_attr(before, addr + k * PAGE)
                if pb is None:          # holes of a multi-VMA move are not unmapped at
                    continue            # the destination (each VMA unmaps its own part)
                want = pb
            else:
                src = addr + max(olen, PAGE) - PAGE
                pb = page_attr(before, src)
                n = k - olen // PAGE + (1 if olen else 0)
                want = (pb[0], pb[1], None if pb[2] is None else pb[2] + n)
            mask = VM_ACCOUNT | (VM_LOCKED | VM_LOCKONFAULT if moved else 0)
            assert pa is not None, f"mremap returned {r:#x} but {a:#x} is not mapped"
            assert pa[1:] == want[1:] and not (pa[0] ^ want[0]) & ~mask, \
                f"mremap: page {a:#x} is {pa}, expected {want}"
        if flags & MREMAP_DONTUNMAP and moved:
            self.assert_flags_only(before, after, addr, addr + olen,
                                   VM_LOCKED | VM_LOCKONFAULT | VM_ACCOUNT, "DONTUNMAP source")
        # contents travel with the pages
        moved_shadow = {}
        for vpn in list(ps.shadow):
            a = vpn << 12
            if addr <= a < addr + olen:
                data = ps.shadow.pop(vpn)
                if a - addr < nlen and olen:
                    moved_shadow[(r + a - addr) >> 12] = data
        ps.drop(r, r + nlen)
        if keep_old and moved:
            pass        # DONTUNMAP: the old range is now empty (or the shared pages)
        ps.shadow.update(moved_shadow)

    # ------------------------------------------------------------------ mseal
    @rule(i=proc_index, addr=st.one_of(win_addr, win_addr, unaligned_addr, mapped),
          length=any_len, flags=st.sampled_from([0, 0, 0, 1]))
    def mseal(self, i, addr, length, flags):
        ps = self.proc(i)
        p = ps.p
        snap = self.snapshot()
        before, maps_before = snap[id(ps)][1], snap[id(ps)][0]
        ok, r = self.call(ps, "mseal", addr, length, flags)
        self.others_unchanged(ps, snap)
        after = segments(p)
        if flags or addr & (PAGE - 1):
            assert not ok and r == errno.EINVAL, "mseal with bad arguments must be EINVAL"
        if not ok:
            assert p.maps() == maps_before, f"failed mseal ({errno.errorcode[r]}) changed maps"
            return
        end = addr + page_align(length)
        self.assert_outside_unchanged(before, after, [(addr, end)], "mseal")
        self.assert_flags_only(before, after, addr, end, VM_SEALED, "mseal")
        for a in pages(addr, end):
            pa = page_attr(after, a)
            assert pa is not None and pa[0] & VM_SEALED, f"mseal succeeded but {a:#x} not sealed"
            ps.sealed[a >> 12] = sealed_key(*pa)

    # ------------------------------------------------------------------ madvise
    @rule(i=proc_index, addr=st.one_of(win_addr, win_addr, win_addr, unaligned_addr, mapped),
          length=any_len, advice=st.one_of(st.sampled_from(MADVICES), st.integers(-1, 110)))
    def madvise(self, i, addr, length, advice):
        ps = self.proc(i)
        p = ps.p
        snap = self.snapshot()
        before, maps_before = snap[id(ps)][1], snap[id(ps)][0]
        ok, r = self.call(ps, "madvise", addr, length, advice)
        self.others_unchanged(ps, snap)
        after = segments(p)
        end = (addr + page_align(length)) & U64
        if advice not in VALID_MADVICES or addr & (PAGE - 1):
            assert not ok and r == errno.EINVAL, "madvise with bad arguments must be EINVAL"
            assert p.maps() == maps_before, "madvise EINVAL changed maps"
            return
        if advice in DISCARDING:
            ps.drop(addr, end)
        if end <= addr:
            return
        self.assert_outside_unchanged(before, after, [(addr, end)], "madvise")
        set_bits, clear_bits = ADVICE_FLAGS.get(advice, (0, 0))
        self.assert_flags_only(before, after, addr, end, set_bits | clear_bits,
                               f"madvise({advice})")
        if not ok:
            return
        assert r == 0
        for a in pages(addr, end):
            pa = page_attr(after, a)
            assert pa is not None, f"madvise succeeded over the hole at {a:#x}"
            fl = pa[0]
            if advice == MADV_MERGEABLE and not ksm_compatible(fl):
                continue
            assert fl & set_bits == set_bits and not fl & clear_bits, \
                f"madvise({advice}) succeeded but page {a:#x} has flags {fl:#x}"
            if advice == MADV_WIPEONFORK:
                assert pa[1] is None and not fl & VM_SHARED, "WIPEONFORK accepted on a file"

    # ------------------------------------------------------------------ mlock
    @rule(i=proc_index, addr=st.one_of(win_addr, win_addr, unaligned_addr, mapped),
          length=any_len, call=st.sampled_from(["mlock", "mlock2", "munlock"]),
          flags=st.sampled_from([0, MLOCK_ONFAULT, 0, 2]))
    def mlock(self, i, addr, length, call, flags):
        ps = self.proc(i)
        p = ps.p
        snap = self.snapshot()
        before, maps_before = snap[id(ps)][1], snap[id(ps)][0]
        args = (addr, length, flags) if call == "mlock2" else (addr, length)
        ok, r = self.call(ps, call, *args)
        self.others_unchanged(ps, snap)
        after = segments(p)
        if call == "mlock2" and flags & ~MLOCK_ONFAULT:
            assert not ok and r == errno.EINVAL
            assert p.maps() == maps_before
            return
        lo = addr & ~(PAGE - 1)
        hi = page_align(addr + length) if addr + length <= U64 else lo
        if hi <= lo:
            return
        self.assert_outside_unchanged(before, after, [(lo, hi)], call)
        self.assert_flags_only(before, after, lo, hi, VM_LOCKED | VM_LOCKONFAULT, call)
        if not ok:
            return
        for a in pages(lo, hi):
            pa = page_attr(after, a)
            assert pa is not None, f"{call} succeeded over the hole at {a:#x}"
            if call == "munlock":
                assert not pa[0] & (VM_LOCKED | VM_LOCKONFAULT), f"munlock left {a:#x} locked"
            elif not pa[0] & VM_DROPPABLE:      # mlock_fixup() skips droppable VMAs
                assert pa[0] & VM_LOCKED, f"{call} succeeded but {a:#x} is not locked"
                assert bool(pa[0] & VM_LOCKONFAULT) == bool(call == "mlock2" and flags), \
                    f"{call}: lock-on-fault wrong at {a:#x}"

    # ------------------------------------------------------------------ brk
    @rule(i=proc_index, where=st.one_of(st.integers(-2, 40).map(lambda n: BRK_START + n * PAGE),
                                        st.integers(-PAGE, 40 * PAGE).map(lambda n: BRK_START + n),
                                        st.just(0)))
    def brk(self, i, where):
        ps = self.proc(i)
        p = ps.p
        snap = self.snapshot()
        before = snap[id(ps)][1]
        old = ps.brk
        res = p.brk(where)          # brk(2) never fails: it returns the break
        note(f"pid {p.pid}: brk({where:#x}) -> {res:#x}")
        self.others_unchanged(ps, snap)
        after = segments(p)
        assert res in (where, old), f"brk({where:#x}) returned {res:#x}, old break {old:#x}"
        ps.brk = res
        if res == old and where != old:
            assert normalize(before) == normalize(after), "refused brk changed pages"
            return
        lo, hi = sorted((page_align(old), page_align(res)))
        self.assert_outside_unchanged(before, after, [(lo, hi)], "brk")
        if res > old:
            want = VM_READ | VM_WRITE | (VM_EXEC if ps.persona & READ_IMPLIES_EXEC else 0)
            for a in pages(lo, hi):
                pa = page_attr(after, a)
                assert pa is not None and pa[1] is None, f"brk grew but {a:#x} is not heap"
                assert pa[0] & VM_ACCESS == want, \
                    f"brk heap page {a:#x} has access {pa[0] & VM_ACCESS:#x}, want {want:#x}"
        else:
            ps.drop(lo, hi)
            assert not clip(after, lo, hi), "brk shrank but pages stay mapped"

    # ------------------------------------------------------------------ personality, prctl
    @rule(i=proc_index, persona=st.sampled_from([0, READ_IMPLIES_EXEC, 0xFFFFFFFF,
                                                 ADDR_NO_RANDOMIZE,
                                                 READ_IMPLIES_EXEC | ADDR_COMPAT_LAYOUT]))
    def personality(self, i, persona):
        ps = self.proc(i)
        ok, r = self.call(ps, "personality", persona)
        assert ok and r == ps.persona, f"personality returned {r:#x}, want {ps.persona:#x}"
        if persona != 0xFFFFFFFF:
            ps.persona = persona

    @rule(i=proc_index, bits=st.sampled_from([0, 1, 1, 2, 3, 4]),
          arg3=st.sampled_from([0, 0, 0, 1]))
    def prctl_mdwe(self, i, bits, arg3):
        ps = self.proc(i)
        snap = self.snapshot()
        ok, r = self.call(ps, "prctl", PR_SET_MDWE, bits, arg3)
        valid = not arg3 and not bits & ~3 and not (bits & 2 and not bits & 1)
        if not valid:
            assert not ok and r == errno.EINVAL
        elif ps.mdwe and ps.mdwe != bits:
            assert not ok and r == errno.EPERM, "MDWE cannot be changed once set"
        else:
            assert ok, f"prctl(PR_SET_MDWE, {bits}) failed"
            ps.mdwe |= bits
        ok, r = self.call(ps, "prctl", PR_GET_MDWE)
        assert ok and r == ps.mdwe, f"PR_GET_MDWE {r} != {ps.mdwe}"
        for q in self.procs:
            assert q.p.maps() == snap[id(q)][0], "prctl changed maps"

    @rule(i=proc_index, on=st.booleans())
    def prctl_memory_merge(self, i, on):
        ps = self.proc(i)
        p = ps.p
        snap = self.snapshot()
        before = snap[id(ps)][1]
        ok, r = self.call(ps, "prctl", PR_SET_MEMORY_MERGE, int(on))
        assert ok
        was = ps.merge_any
        ps.merge_any = on
        ok, r = self.call(ps, "prctl", PR_GET_MEMORY_MERGE)
        assert ok and r == int(on)
        for q in self.procs:
            assert q.p.maps() == snap[id(q)][0], "prctl changed maps"
        after = segments(p)
        for (s, e, (fb, fkb), bb), (s2, e2, (fa, fka), ba) in zip(before, after, strict=True):
            assert (s, e, fkb, bb) == (s2, e2, fka, ba)
            assert not (fa ^ fb) & ~VM_MERGEABLE
            if on and ksm_compatible(fa):
                assert fa & VM_MERGEABLE, f"merge-any did not mark {s:#x}-{e:#x}"
            if not on and was:
                assert not fa & VM_MERGEABLE, \
                    f"PR_SET_MEMORY_MERGE 0 left VM_MERGEABLE on {s:#x}-{e:#x}"

    # ------------------------------------------------------------------ memory access
    def expected(self, ps, views, addr, mode):
        """The set of outcomes an access of kind mode at addr's page may have:
        "ok", "SEGV_MAPERR", "SEGV_ACCERR", "SEGV_PKUERR", "BUS_ADRERR"."""
        v = vma_at(views, addr)
        if v is None:
            above = next((w for w in views if w.end > addr), None)
            if above is not None and above.flags & VM_GROWSDOWN:
                return {"SEGV_MAPERR"} | self.perm_outcomes(ps, above, addr, mode, grown=True)
            return {"SEGV_MAPERR"}
        return self.perm_outcomes(ps, v, addr, mode)

    def perm_outcomes(self, ps, v, addr, mode, grown=False):
        fl = v.flags
        pkru = ps.p.pkru
        key = (fl >> 32) & 15
        if self.PKEYS and mode != "x" and (pkru >> (2 * key) & 1 or
                                          (mode == "w" and pkru >> (2 * key) & 2)):
            return {"SEGV_PKUERR"}
        need = {"r": VM_ACCESS, "w": VM_WRITE, "x": VM_EXEC}[mode]
        if not fl & need:
            if mode == "x" and fl & VM_ACCESS:
                # x86: an instruction fetch from a not-present page of a readable VMA
                # is first handled as a read fault (which may SIGBUS or hit a guard
                # marker); only the retry on the present NX PTE is ACCERR.
                return {"SEGV_ACCERR"} | (self.fault_outcomes(v, addr, grown) - {"ok"})
            return {"SEGV_ACCERR"}
        return self.fault_outcomes(v, addr, grown)

    def fault_outcomes(self, v, addr, grown):
        """What handling a fault on an accessible page of VMA v may give."""
        fl = v.flags
        out = {"ok"}
        if fl & VM_MAYBE_GUARD:
            out.add("SEGV_MAPERR")
        if not is_anon(v):
            size = self.file_size(v.file) if v.file in FILES else None
            if size is None:
                out.add("BUS_ADRERR")
            elif not grown:
                index = v.pgoff + (addr - v.start) // PAGE
                if index >= -(-size // PAGE):
                    out = {"BUS_ADRERR"} | (out - {"ok"})
        return out

    def _access(self, ps, addr, length, mode, data=None):
        p = ps.p
        snap = self.snapshot()
        views = p.vmas()
        before = snap[id(ps)][1]
        page_list = list(pages(addr, addr + length))
        exp = [self.expected(ps, views, a, mode) for a in page_list]
        note(f"pid {p.pid}: {mode} {addr:#x}+{length} expecting {exp}")
        fault = None
        out = None
        try:
            if mode == "w":
                if data is None:
                    p.touch(addr, "w")
                else:
                    p.write(addr, data)
            elif data is None and length == 1:
                p.touch(addr, mode)
            else:
                out = p.read(addr, length)
        except vmsim.Fault as f:
            fault = f
            note(f"  -> {f.signal} {f.code} at {f.addr:#x}")
        self.others_unchanged(ps, snap)
        # what happened agrees with the VMAs seen before
        if fault is None:
            for a, e in zip(page_list, exp, strict=True):
                assert "ok" in e, f"{mode} access at {a:#x} succeeded, expected {e}"
            done = addr + length
        else:
            assert fault.signal == ("SIGBUS" if fault.code == "BUS_ADRERR" else "SIGSEGV")
            assert addr <= fault.addr < addr + length and \
                (fault.addr == addr or fault.addr % PAGE == 0), f"fault address {fault.addr:#x}"
            k = (fault.addr >> 12) - (addr >> 12)
            for a, e in zip(page_list[:k], exp[:k], strict=True):
                assert "ok" in e, f"{mode} access at {a:#x} succeeded, expected {e}"
            assert fault.code in exp[k], \
                f"{mode} access at {fault.addr:#x}: {fault.code}, expected {exp[k]}"
            done = fault.addr
        # maps change only by a stack growing down
        after = segments(p)
        if after != before:
            b = {(s[1], s[2]): s for s in before}
            for s in after:
                if s in before:
                    continue
                old = b.get((s[1], s[2]))
                assert old is not None and s[0] < old[0] and s[2][0] & VM_GROWSDOWN, \
                    f"a memory access changed VMA {s[0]:#x}-{s[1]:#x} (not a stack growth)"
            assert len(after) == len(before), "a memory access added or removed VMAs"
        # contents
        if mode == "w" and data is not None:
            after_views = p.vmas()
            for j, byte in enumerate(data[:done - addr]):
                a = addr + j
                v = vma_at(after_views, a)
                if v.flags & VM_MAYSHARE:
                    ps.shadow.pop(a >> 12, None)
                else:
                    ps.shadow.setdefault(a >> 12, {})[a & (PAGE - 1)] = byte
            self.check_shared_file(ps, after_views, addr, done, data)
        if out is not None:
            for j, byte in enumerate(out):
                a = addr + j
                want = ps.shadow.get(a >> 12, {}).get(a & (PAGE - 1))
                assert want is None or want == byte, f"read {a:#x}: {byte:#x}, wrote {want:#x}"
            self.check_shared_file(ps, p.vmas(), addr, addr + len(out), out)

    def check_shared_file(self, ps, views, lo, hi, data):
        """Bytes seen through a MAP_SHARED mapping of a named file are the file's."""
        for j in range(hi - lo):
            a = lo + j
            v = vma_at(views, a)
            if v is None or not v.flags & VM_SHARED or v.file not in FILES:
                continue
            content = self.k.fs.read(v.file)
            off = (v.pgoff + (a - v.start) // PAGE) * PAGE + (a & (PAGE - 1))
            if off < len(content):
                assert content[off] == data[j], \
                    f"shared mapping of {v.file} at {a:#x} shows {data[j]:#x}, file has {content[off]:#x}"

    @rule(i=proc_index, addr=st.one_of(win_addr, unaligned_addr, mapped),
          data=st.binary(min_size=1, max_size=40))
    def write(self, i, addr, data):
        self._access(self.proc(i), addr, len(data), "w", data)

    @rule(i=proc_index, addr=st.one_of(win_addr, unaligned_addr, mapped),
          n=st.integers(1, 2 * PAGE))
    def read(self, i, addr, n):
        self._access(self.proc(i), addr, n, "r")

    @rule(i=proc_index, addr=st.one_of(win_addr, unaligned_addr, mapped),
          mode=st.sampled_from("rwx"))
    def touch(self, i, addr, mode):
        self._access(self.proc(i), addr, 1, mode)

    @rule(i=proc_index, below=st.integers(0, 300), mode=st.sampled_from("rwx"))
    def touch_below_stack(self, i, below, mode):
        ps = self.proc(i)
        stack = next((v for v in ps.p.vmas() if v.end == TASK_SIZE), None)
        if stack is None:
            return
        self._access(ps, stack.start - below * PAGE - 8, 1, mode)

    # ------------------------------------------------------------------ fork / exit
    @rule(i=proc_index)
    def fork(self, i):
        if len(self.procs) >= MAX_PROCS:
            return
        ps = self.proc(i)
        p = ps.p
        snap = self.snapshot()
        before = snap[id(ps)][1]
        child = p.fork()
        note(f"pid {p.pid}: fork -> {child.pid}")
        assert isinstance(child, vmsim.Process) and child.pid != p.pid
        for q in self.procs:
            assert q.p.maps() == snap[id(q)][0], "fork changed a parent's maps"
        cs = PState(child)
        views = p.vmas()
        kept = [(s, e, (f & ~(VM_LOCKED | VM_LOCKONFAULT), fk), b)
                for s, e, (f, fk), b in before if not f & VM_DONTCOPY]
        got = segments(child)
        assert normalize(got) == normalize(kept), \
            f"fork child's pages differ:\nwant {fmt(normalize(kept))}\ngot  {fmt(normalize(got))}"
        for vpn, data in ps.shadow.items():
            v = vma_at(views, vpn << 12)
            if v is None or v.flags & VM_DONTCOPY:
                continue
            cs.shadow[vpn] = {o: 0 for o in data} if v.flags & VM_WIPEONFORK else dict(data)
        for vpn, key in ps.sealed.items():
            v = vma_at(views, vpn << 12)
            if v is not None and not v.flags & VM_DONTCOPY:
                cs.sealed[vpn] = key
        cs.fds = dict(ps.fds)
        cs.pkeys = set(ps.pkeys)
        cs.persona = ps.persona
        cs.mdwe = 0 if ps.mdwe & PR_MDWE_NO_INHERIT else ps.mdwe
        cs.merge_any = ps.merge_any
        cs.brk = ps.brk
        assert child.pkru == p.pkru, "fork: the child's PKRU differs"
        assert child.personality(0xFFFFFFFF) == ps.persona, "fork: personality not inherited"
        assert child.prctl(PR_GET_MDWE) == cs.mdwe, "fork: MDWE inheritance wrong"
        self.procs.append(cs)

    @rule(i=proc_index)
    def exit(self, i):
        if len(self.procs) < 2:
            return
        ps = self.proc(i)
        snap = self.snapshot()
        note(f"pid {ps.p.pid}: exit")
        ps.p.exit()
        self.procs.remove(ps)
        self.dead.append(ps.p)
        for q in self.procs:
            assert q.p.maps() == snap[id(q)][0], "exit changed another process's maps"
        assert ps.p.maps() == VSYSCALL_ONLY, "an exited process still has mappings"

    # ------------------------------------------------------------------ misuse
    def global_state(self):
        """Everything a refused call must leave alone, in every process and the VFS."""
        return ([(q.p.maps(), sorted(q.p.files), dict(q.p.rlimits), q.p.mm.brk, q.p.persona)
                 for q in self.procs], self.k.committed, sorted(self.k.processes),
                {path: self.file_size(path) for path in FILES}, sorted(self.k.fs.inodes))

    @rule(i=proc_index, data=st.data())
    def wrong_type(self, i, data):
        """One argument of the wrong Python type: TypeError before any effect."""
        p = self.proc(i).p
        name, args = data.draw(st.sampled_from(MISUSE_CALLS), label="call")
        slot = data.draw(st.integers(0, len(args) - 1), label="slot")
        kind, _ = args[slot]
        bad = data.draw(st.sampled_from(BAD_VALUES[kind]), label="bad value")
        values = [bad if j == slot else good for j, (_, good) in enumerate(args)]
        note(f"pid {p.pid}: {name}{tuple(values)} (argument {slot} of the wrong type)")
        before = self.global_state()
        try:
            getattr(p, name)(*values)
        except TypeError:
            pass
        else:
            raise AssertionError(f"{name} accepted {bad!r} as argument {slot}")
        assert self.global_state() == before, f"a refused {name} changed something"

    @rule(i=proc_index, where=st.builds(lambda w, k: w + (k << 64),
                                        st.one_of(st.integers(TASK_SIZE + 1, U64),
                                                  st.integers(0, BRK_START - 1)),
                                        st.integers(-2, 2)))
    def brk_wild(self, i, where):
        """brk below start_brk or past TASK_SIZE (in any of its 2**64 spellings): the
        break stays, nothing changes."""
        ps = self.proc(i)
        before = self.global_state()
        ok, res = self.call(ps, "brk", where)
        assert ok and res == ps.brk, f"brk({where:#x}) -> {res:#x}, the break is {ps.brk:#x}"
        assert self.global_state() == before, "a refused brk changed something"

    @rule(i=proc_index,
          resource=st.one_of(st.integers(0, RLIM_NLIMITS + 2),
                             st.sampled_from([-1, U64, (1 << 32) | 7, 1 << 40, 99])),
          how=st.sampled_from(["get", "same", "cur>max", "raise"]))
    def rlimit_misuse(self, i, resource, how):
        """do_prlimit(): EINVAL for a resource past RLIM_NLIMITS (an unsigned int) or
        cur > max; EPERM to raise a hard limit (the kernel has no CAP_SYS_RESOURCE)."""
        ps = self.proc(i)
        valid = resource & 0xFFFFFFFF < RLIM_NLIMITS
        cur, hard = ps.p.rlimits[resource & 0xFFFFFFFF] if valid else (0, 0)
        before = self.global_state()
        if how == "get":
            ok, r = self.call(ps, "getrlimit", resource)
            assert (ok, r) == ((True, (cur, hard)) if valid else (False, errno.EINVAL))
        elif how == "same":
            ok, r = self.call(ps, "setrlimit", resource, cur, hard)
            assert ok == valid and (ok or r == errno.EINVAL)
        elif how == "cur>max":
            ok, r = self.call(ps, "setrlimit", resource, 5, 4)
            assert (ok, r) == (False, errno.EINVAL)
        elif hard < RLIM_INFINITY:
            ok, r = self.call(ps, "setrlimit", resource, cur, hard + 1)
            assert (ok, r) == (False, errno.EPERM if valid else errno.EINVAL)
        assert self.global_state() == before, f"setrlimit/getrlimit ({how}) changed something"

    @rule(i=proc_index, fd=st.integers(-1, 9),
          cmd=st.sampled_from([FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC, FIOQSIZE, FIONREAD, 0x1234,
                               (1 << 32) | FIOCLEX]),
          arg=st.one_of(st.just(0), win_addr))
    def vfs_ioctl(self, i, fd, cmd, arg):
        """The VFS's own ioctls: EBADF for no file or an O_PATH one; then the answers
        of fs/ioctl.c do_vfs_ioctl() (none of these files has a driver ioctl)."""
        ps = self.proc(i)
        ok, r = self.call(ps, "ioctl", fd, cmd, arg)
        if fd not in ps.fds or ps.fds[fd][1] & O_PATH:
            assert (ok, r) == (False, errno.EBADF)
            return
        path = ps.fds[fd][0]
        kind = "dir" if path == "/tmp" else "chr" if path in ("/dev/zero", "/dev/null") else "reg"
        cmd &= 0xFFFFFFFF
        if cmd in (FIOCLEX, FIONCLEX):
            assert (ok, r) == (True, 0)
        elif cmd == 0x1234 or (cmd == FIOQSIZE and kind == "chr") or \
                (cmd == FIONREAD and kind != "reg"):
            assert (ok, r) == (False, errno.ENOTTY)
        elif cmd == FIOASYNC:
            assert ok or r in (errno.EFAULT, errno.ENOTTY)
        else:
            assert ok or r == errno.EFAULT
        if ok and cmd in (FIOQSIZE, FIONREAD):
            ps.drop(arg, arg + 8)               # the answer was written at arg

    @rule(i=proc_index, fd=st.integers(-1, 9), call=st.sampled_from(["ftruncate", "pread", "pwrite"]),
          value=st.sampled_from([-1, U64, 1 << 63, -(1 << 62), (1 << 63) - 1]))
    def file_misuse(self, i, fd, call, value):
        """A negative file offset or length (as loff_t) is EINVAL before the fd is looked
        at; an offset whose end passes LLONG_MAX is EINVAL after it."""
        ps = self.proc(i)
        before = self.global_state()
        if call == "ftruncate":
            value = value if value != (1 << 63) - 1 else -1     # growing a tmpfs file is legal
            ok, r = self.call(ps, "ftruncate", fd, value)
        elif call == "pread":
            ok, r = self.call(ps, "pread", fd, 8, value)
        else:
            ok, r = self.call(ps, "pwrite", fd, b"12345678", value)
        assert not ok
        if value == (1 << 63) - 1:
            mode = ps.fds[fd][1] & (O_PATH | 3) if fd in ps.fds else None
            usable = mode is not None and not mode & O_PATH and \
                (mode in (O_RDONLY, O_RDWR) if call == "pread" else mode in (O_WRONLY, O_RDWR))
            path = ps.fds[fd][0] if fd in ps.fds else None
            if call == "pwrite" and mode is not None and not mode & O_PATH and \
                    path is not None and path.startswith("/proc/"):
                # procfs files are not FMODE_PWRITE: ksys_pwrite64 answers ESPIPE before
                # it looks at the access mode or the offset (checked on this kernel)
                assert r == errno.ESPIPE, (call, fd, path)
            else:
                assert r == (errno.EINVAL if usable else errno.EBADF), (call, fd, mode)
        else:
            assert r == errno.EINVAL
        assert self.global_state() == before, f"a refused {call} changed something"

    @precondition(lambda self: getattr(self, "dead", None))
    @rule(data=st.data())
    def call_after_exit(self, data):
        """An exited process makes no calls: ESRCH, and nothing is created or charged."""
        p = data.draw(st.sampled_from(self.dead), label="exited process")
        name, args = data.draw(st.sampled_from(AFTER_EXIT_CALLS), label="call")
        before = self.global_state()
        note(f"exited pid {p.pid}: {name}{args}")
        try:
            getattr(p, name)(*args)
        except ProcessLookupError as e:
            assert e.errno == errno.ESRCH
        else:
            raise AssertionError(f"exited pid {p.pid}: {name} succeeded")
        assert self.global_state() == before, f"{name} after exit changed something"
        assert p.maps() == VSYSCALL_ONLY and not p.files

    # ------------------------------------------------------------------ invariants
    @invariant()
    def validate(self):
        if not hasattr(self, "procs"):
            return
        for ps in self.procs:
            ps.p.mm.validate()

    @invariant()
    def maps_consistent(self):
        if not hasattr(self, "procs"):
            return
        for ps in self.procs:
            p = ps.p
            text = p.maps()
            assert text.endswith("\n")
            lines = text.split("\n")[:-1]
            views = p.vmas()
            assert len(lines) == len(views) + 1, "maps lines are not 1:1 with vmas()"
            assert lines[-1].endswith("[vsyscall]") and \
                lines[-1].startswith("ffffffffff600000-ffffffffff601000 --xp "), \
                "the last maps line is not [vsyscall]"
            prev_end = 0
            for line, v in zip(lines, views, strict=False):     # [vsyscall] last
                fields = line.split(None, 5)
                rng, perms, off = fields[0], fields[1], fields[2]
                s, e = (int(x, 16) for x in rng.split("-"))
                assert (s, e) == (v.start, v.end), f"maps line {line!r} vs view {v}"
                assert s < e and s % PAGE == 0 and e % PAGE == 0 and s >= prev_end, \
                    f"maps not sorted/non-overlapping at {line!r}"
                prev_end = e
                assert perms == v.perms, f"{line!r}: perms vs {v.perms}"
                want_perms = ("r" if v.flags & VM_READ else "-") + \
                    ("w" if v.flags & VM_WRITE else "-") + ("x" if v.flags & VM_EXEC else "-") + \
                    ("s" if v.flags & VM_MAYSHARE else "p")
                assert perms == want_perms, f"{line!r}: perms do not match flags {v.flags:#x}"
                want_off = v.pgoff * PAGE if v.file is not None else 0
                assert int(off, 16) == want_off, f"{line!r}: offset, pgoff {v.pgoff:#x}"
                name = fields[5] if len(fields) > 5 else None
                assert name == v.name, f"{line!r}: name vs {v.name!r}"
                if not self.PKEYS:
                    assert v.pkey == 0
            assert e <= TASK_SIZE if views else True
            # smaps: headers are the maps lines, fields agree with the views
            blocks = p.smaps().split("VmFlags:")
            assert len(blocks) == len(views) + 2, "smaps blocks are not 1:1 with vmas()"
            for j, v in enumerate(views):
                block = blocks[j] if j == 0 else blocks[j].split("\n", 1)[1]
                head = block.split("\n", 1)[0]
                assert head == lines[j], f"smaps header {head!r} != maps line {lines[j]!r}"
                fields = dict(field.split(":", 1) for field in block.split("\n")[1:] if ":" in field)
                assert int(fields["Size"].split()[0]) == (v.end - v.start) >> 10
                assert ("ProtectionKey" in fields) == self.PKEYS
                if self.PKEYS:
                    assert int(fields["ProtectionKey"]) == v.pkey
                assert int(fields["Rss"].split()[0]) <= (v.end - v.start) >> 10
                flags_line = blocks[j + 1].split("\n", 1)[0]
                assert flags_line.split() == v.vmflags, f"VmFlags {flags_line!r} vs {v.vmflags}"

    @invariant()
    def contents_and_seals(self):
        if not hasattr(self, "procs"):
            return
        for ps in self.procs:
            p = ps.p
            segs = segments(p)
            for vpn, key in ps.sealed.items():
                pa = page_attr(segs, vpn << 12)
                assert pa is not None, f"sealed page {vpn << 12:#x} was unmapped"
                assert sealed_key(*pa) == key, \
                    f"sealed page {vpn << 12:#x} changed: {key} -> {sealed_key(*pa)}"
            if not ps.shadow:
                continue
            views = p.vmas()
            saved = p.pkru
            p.pkru = 0
            try:
                for vpn, data in sorted(ps.shadow.items()):
                    a = vpn << 12
                    v = vma_at(views, a)
                    assert v is not None, f"pid {p.pid}: page {a:#x} holding written data vanished"
                    if not v.flags & VM_ACCESS:
                        continue
                    try:
                        got = p.read(a, PAGE)
                    except vmsim.Fault as f:
                        raise AssertionError(f"pid {p.pid}: reading back {a:#x}: {f}") from None
                    for off, byte in data.items():
                        assert got[off] == byte, \
                            f"pid {p.pid}: {a + off:#x} reads {got[off]:#x}, expected {byte:#x}"
            finally:
                p.pkru = saved


VSYSCALL_ONLY = ("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0"
                 + " " * 18 + "[vsyscall]\n")


def fmt(segs):
    return " ".join(f"[{s:#x}-{e:#x} {k[0]:#x} {k[1]} {b}]" for s, e, k, b in segs)


class PkuMachine(VmsimMachine):
    PKEYS = True


class NoPkuMachine(VmsimMachine):
    PKEYS = False


SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target,
                            Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])

TestPkuMachine = PkuMachine.TestCase
TestPkuMachine.settings = SETTINGS
TestNoPkuMachine = NoPkuMachine.TestCase
TestNoPkuMachine.settings = SETTINGS
