"""Stateful property test of the SGX driver on vmsim: a Hypothesis
`RuleBasedStateMachine` over the seven ioctls, the mm calls on /dev/sgx_enclave and
enclave entries.

Rules (every process, including fork children, is driven by all of them):

    open the device; CREATE (valid, size not a power of two, ECREATE #GP);
    ADD_PAGES (random SECINFO perms/type, measured or not, 1-3 pages, REG/TCS);
    INIT (a SIGSTRUCT signed over the pages really added, or a corrupted one);
    a one-step "load" (open + CREATE + ADD every page of a random layout + INIT + map
    each page with its intent), so that deep states are reached in few steps;
    RESTRICT_PERMISSIONS / MODIFY_TYPES / REMOVE_PAGES with random ranges and values;
    mmap of the device (random prot, inside and outside ELRANGE, MAP_FIXED over
    existing VMAs, MAP_PRIVATE), anonymous mmap, mprotect, munmap, mremap;
    personality(READ_IMPLIES_EXEC) on/off; close; fork; exit;
    reads / writes / fetches outside enclave mode;
    EENTER through vdso.enter_enclave with a small program (reads, writes, fetches,
    EACCEPT, EACCEPTCOPY, EMODPE on random enclave pages), and ERESUME after an AEX.

All calls happen inside a small window so that they collide. Checked:

* every step returns or raises OSError (errno > 0) / vmsim.Fault; anything else is a
  bug (Hypothesis reports it with the shrunk call sequence);
* after every step, for every live process: `p.mm.validate()` (which runs the SGX
  driver's own invariant), and directly: every PTE of an enclave VMA maps a page the
  enclave still has, and the VMA's R/W/X is within that page's vm_max_prot_bits;
* an independent mirror of each enclave's page_array (intent and type per page,
  updated from the spec's §2.11 transition table with the `count` the driver wrote
  back) agrees with the driver; pages the mirror does not know are EAUGed pages of an
  initialized enclave on an SGX2 CPU (REG, RWX intent);
* the EPC is conserved: free pages + pages held by live enclaves (their SECS, pages
  and Version Array pages) == EPC size, and a released enclave holds none;
* errnos the spec fixes from the enclave's state alone: CREATE twice, ADD/INIT before
  CREATE or after INIT -> EINVAL; SGX2 ioctls -> ENODEV on SGX1, EINVAL before INIT;
  a bad SECINFO -> EINVAL; INIT with the right SIGSTRUCT succeeds, a corrupted one is
  EPERM.

Known and excluded by default: an mremap that moves enclave PTEs (no ->mremap in
sgx_vm_ops) lets a later mprotect, MODIFY_TYPES(TCS) or REMOVE_PAGES leave a PTE
with more than its page's intent or on a removed page; see
test_sgx_driver.py::test_mremap_move_then_mprotect_keeps_the_intent_invariant. Set
VMSIM_SGX_STATEFUL_MREMAP_PTES=1 to let the machine do such moves.

Budget: VMSIM_SGX_STATEFUL_EXAMPLES (default 100), VMSIM_SGX_STATEFUL_STEPS
(default 30). Long local run:

    VMSIM_SGX_STATEFUL_EXAMPLES=3000 python3 -m pytest tests/test_sgx_stateful.py
"""

from __future__ import annotations

import errno
import os
import struct

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, note, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_RDWR,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
)
from vmsim.arch.x86 import vdso
from vmsim.arch.x86.sgx.cpu import SgxCpu
from vmsim.arch.x86.sgx.defs import EENTER, ERESUME
from vmsim.arch.x86.sgx.measure import Measurement
from vmsim.drivers.sgx.uapi import (
    ADD_PAGES,
    CREATE,
    INIT,
    MODIFY_TYPES,
    REMOVE_PAGES,
    RESTRICT_PERMISSIONS,
    SGX_IOC_ENCLAVE_ADD_PAGES,
    SGX_IOC_ENCLAVE_CREATE,
    SGX_IOC_ENCLAVE_INIT,
    SGX_IOC_ENCLAVE_MODIFY_TYPES,
    SGX_IOC_ENCLAVE_REMOVE_PAGES,
    SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
)
from vmsim.enclave import signing as S
from vmsim.enclave.segment import encode_tcs, tcs_after_eadd

EXAMPLES = int(os.environ.get("VMSIM_SGX_STATEFUL_EXAMPLES", "100"))
STEPS = int(os.environ.get("VMSIM_SGX_STATEFUL_STEPS", "30"))
MREMAP_PTES = os.environ.get("VMSIM_SGX_STATEFUL_MREMAP_PTES", "") not in ("", "0")

PAGE = 4096
R, W, X = PROT_READ, PROT_WRITE, PROT_EXEC
RW, RWX = R | W, R | W | X
VM_RWX = 7                          # VM_READ | VM_WRITE | VM_EXEC
DEV = "/dev/sgx_enclave"

# spec §1.3
SI_R, SI_W, SI_X, SI_PENDING, SI_MODIFIED, SI_PR = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
PT_TCS, PT_REG, PT_TRIM = 1, 2, 4
A_MODE64BIT, A_INIT = 1 << 2, 1 << 0

ENCL_SIZE = 0x8000                  # 8 pages per enclave
NPAGES = ENCL_SIZE // PAGE
WINDOW = 0x40000000                 # every mm call lands in [WINDOW, WINDOW_END)
WINDOW_PAGES = 48
WINDOW_END = WINDOW + WINDOW_PAGES * PAGE
SLOTS = [WINDOW + ENCL_SIZE * i for i in (1, 2, 3, 4)]     # ELRANGE bases
SCRATCH = 0x200000000               # per-process argument/source buffer, never touched
ARG, SRC, SECS_PAGE, SIG_PAGE = SCRATCH, SCRATCH + PAGE, SCRATCH + 5 * PAGE, \
    SCRATCH + 6 * PAGE
SCRATCH_PAGES = 8

KEY = None


def key():
    global KEY
    if KEY is None:
        KEY = S.generate_key()
    return KEY


def intent_of(flags: int) -> int:
    """§2.11: REG -> SECINFO R/W/X; TCS -> RW."""
    if (flags >> 8) & 0xFF == PT_TCS:
        return R | W
    return flags & 7


class Rec:
    """One open of the device: the mirror of the driver's enclave."""

    def __init__(self, encl, slot):
        self.encl = encl                # the model's Encl (for the cross-checks only)
        self.slot = slot
        self.created = False
        self.initialized = False
        self.base = 0
        self.adds: list[tuple[int, bytes, int, bool]] = []     # EADD order
        self.intent: dict[int, int] = {}    # page number -> vm_max_prot_bits
        self.type: dict[int, int] = {}      # page number -> page type

    @property
    def released(self) -> bool:
        return self.encl.refs == 0


class _Abort(BaseException):
    """Ends a parked enclave thread at teardown."""


class _Killer:
    def aex(self, exc):
        raise _Abort()


class SgxMachine(RuleBasedStateMachine):
    CPU = dict()

    def __init__(self):
        super().__init__()
        self.cpu = SgxCpu(**self.CPU)
        self.k = vmsim.Kernel(sgx=self.cpu)
        self.procs: list = []
        self.all_procs: list = []
        self.fds: dict = {}             # proc -> {fd: Rec}
        self.recs: list[Rec] = []
        self.aex: list = []             # (proc, tcs address, ops) with a parked thread
        self.spawn()

    # --- plumbing ----------------------------------------------------------------------

    def spawn(self):
        p = self.k.spawn(stack=True)
        p.mmap(SCRATCH, SCRATCH_PAGES * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        self.procs.append(p)
        self.all_procs.append(p)
        self.fds[p] = {}
        return p

    def teardown(self):
        for p in self.all_procs:
            for lst in p.__dict__.get("_sgx_threads", {}).values():
                for th in lst:
                    th.ctx.thread = _Killer()
                    th.to_enclave.release()
                    th.thread.join(timeout=5)
                lst.clear()

    def call(self, what, fn, *args):
        """Run a syscall: its result, or the errno (> 0) of its OSError."""
        try:
            r = fn(*args)
        except OSError as e:
            assert isinstance(e.errno, int) and e.errno > 0, e
            note(f"{what} -> {errno.errorcode.get(e.errno, e.errno)}")
            return -e.errno
        note(f"{what} -> {r if not isinstance(r, int) else hex(r)}")
        return r

    def ioctl(self, p, fd, cmd, fmt, fields):
        p.write(ARG, fmt.pack(*fields))
        r = self.call(f"ioctl({fd}, {cmd:#x}, {fields})", p.ioctl, fd, cmd, ARG)
        event(f"ioctl {cmd & 0xff} -> {errno.errorcode.get(-r, 0) if r < 0 else 0}")
        return (0 if r >= 0 else -r), list(fmt.unpack(p.read(ARG, fmt.size)))

    def access(self, what, fn, *args):
        try:
            fn(*args)
        except vmsim.Fault as f:
            assert f.signal in ("SIGSEGV", "SIGBUS"), f
            note(f"{what} -> {f}")
            return f
        except OSError as e:
            raise AssertionError(f"{what} raised OSError {e} instead of a Fault") from e
        note(f"{what} -> ok")
        return None

    def pick(self, data, items, label):
        return items[data.draw(st.integers(0, len(items) - 1), label=label)]

    def next_slot(self, data):
        """Mostly a slot no other enclave used last; sometimes a shared one."""
        self.slot_counter = getattr(self, "slot_counter", -1) + 1
        if data.draw(st.integers(0, 4), label="shared slot") == 0:
            return data.draw(st.sampled_from(SLOTS), label="slot")
        return SLOTS[self.slot_counter % len(SLOTS)]

    def pick_proc(self, data):
        return self.pick(data, self.procs, "proc")

    def pick_fd(self, data, p):
        fds = sorted(self.fds[p])
        if not fds:
            return None, None
        fd = self.pick(data, fds, "fd")
        return fd, self.fds[p][fd]

    # --- device and ioctls ----------------------------------------------------------------

    def open_dev(self, p, slot):
        fd = p.open(DEV, O_RDWR)
        rec = Rec(p.files[fd].private_data, slot)
        self.recs.append(rec)
        self.fds[p][fd] = rec
        note(f"open -> fd {fd} slot {slot:#x}")
        return fd, rec

    def do_create(self, p, fd, rec, kind="ok"):
        size, attributes = ENCL_SIZE, A_MODE64BIT
        if kind == "not pow2":
            size = 0x6000
        elif kind == "ecreate gp":
            attributes |= A_INIT
        secs = bytearray(PAGE)
        struct.pack_into("<QQII", secs, 0, size, rec.slot, 1, 0)
        struct.pack_into("<QQ", secs, 48, attributes, 3)
        p.write(SECS_PAGE, bytes(secs))
        err, _ = self.ioctl(p, fd, SGX_IOC_ENCLAVE_CREATE, CREATE, [SECS_PAGE])
        if rec.created:
            assert err == errno.EINVAL
        elif kind == "not pow2":
            assert err == errno.EINVAL
        elif kind == "ecreate gp":
            # the VA page and the SECS page are allocated before ECREATE runs (and
            # given back when it fails)
            assert err == errno.EIO or (err == errno.ENOMEM and self.cpu.epc_free < 2), err
        else:
            assert err == 0 or (err == errno.ENOMEM and self.cpu.epc_free < 2), err
            if err == 0:
                rec.created, rec.base = True, rec.slot
        return err

    def do_add(self, p, fd, rec, off, npages, flags, measure, tcs_body=False, ossa=None):
        datas = []
        for i in range(npages):
            if (flags >> 8) & 0xFF == PT_TCS and tcs_body:
                d = encode_tcs(ossa=((off + i + 1) % NPAGES) * PAGE if ossa is None else ossa,
                               nssa=2, oentry=0)
            else:
                d = bytes([(off * 31 + i * 7 + flags) & 0xFF]) * PAGE
            datas.append(d)
        p.write(SRC, b"".join(datas))
        p.write(ARG + 512, struct.pack("<Q", flags) + bytes(56))
        err, out = self.ioctl(p, fd, SGX_IOC_ENCLAVE_ADD_PAGES, ADD_PAGES,
                              [SRC, off * PAGE, npages * PAGE, ARG + 512,
                               1 if measure else 0, 0])
        perm, pt = flags & 7, (flags >> 8) & 0xFF
        bad_secinfo = pt not in (PT_REG, PT_TCS) or (perm & SI_W and not perm & SI_R) or \
            (pt == PT_TCS and perm) or flags & ~0xFF07
        if not rec.created or rec.initialized or bad_secinfo or off + npages > NPAGES:
            assert err == errno.EINVAL, err
            return err
        count = out[5]
        assert count % PAGE == 0 and count <= npages * PAGE
        assert (err == 0) == (count == npages * PAGE)
        for i in range(count // PAGE):
            pfn = (rec.base >> 12) + off + i
            assert pfn not in rec.intent, "ADD_PAGES succeeded on a present page"
            rec.intent[pfn] = intent_of(flags)
            rec.type[pfn] = pt
            d = tcs_after_eadd(datas[i]) if pt == PT_TCS else datas[i]
            rec.adds.append(((off + i) * PAGE, d, flags, measure))
        if err == errno.EBUSY:
            assert (rec.base >> 12) + off + count // PAGE in rec.intent
        return err

    def sigstruct(self, rec, corrupt: int | None = None) -> bytes:
        m = Measurement(ENCL_SIZE, 1)
        for off, d, flags, measured in rec.adds:
            m.add_page(off, d, flags, measured)
        sig = bytearray(S.sign(S.build(m.digest()), key()).pack())
        if corrupt is not None:
            sig[corrupt] ^= 0x10
        return bytes(sig)

    def do_init(self, p, fd, rec, corrupt=None):
        if rec.created and not rec.initialized:
            p.write(SIG_PAGE, self.sigstruct(rec, corrupt))
        err, _ = self.ioctl(p, fd, SGX_IOC_ENCLAVE_INIT, INIT, [SIG_PAGE])
        if not rec.created or rec.initialized:
            assert err == errno.EINVAL
        elif corrupt is None:
            assert err == 0, f"INIT with the right SIGSTRUCT failed: {err}"
            rec.initialized = True
        else:
            assert err in (errno.EPERM, errno.EINVAL), err
        return err

    def sgx2_prologue(self, rec, err):
        if not self.cpu.sgx2:
            assert err == errno.ENODEV, err
            return False
        if not rec.initialized:
            assert err == errno.EINVAL, err
            return False
        return True

    # --- rules: the device ----------------------------------------------------------------

    @precondition(lambda self: self.procs)
    @rule(data=st.data())
    def open_device(self, data):
        p = self.pick_proc(data)
        if len(self.fds[p]) < 3:
            self.open_dev(p, self.next_slot(data))

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), kind=st.sampled_from(["ok", "ok", "not pow2", "ecreate gp"]))
    def create(self, data, kind):
        p = self.pick_proc(data)
        fd, rec = self.pick_fd(data, p)
        if fd is not None:
            self.do_create(p, fd, rec, kind)

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), off=st.integers(0, NPAGES), npages=st.integers(1, 3),
          perm=st.integers(0, 7), pt=st.sampled_from([PT_REG, PT_REG, PT_REG, PT_TCS, 0, 3]),
          extra=st.sampled_from([0, 0, 0, 0, SI_PENDING, SI_PR, 1 << 16]),
          measure=st.booleans(), tcs_body=st.booleans())
    def add_pages(self, data, off, npages, perm, pt, extra, measure, tcs_body):
        p = self.pick_proc(data)
        fd, rec = self.pick_fd(data, p)
        if fd is None:
            return
        if pt == PT_TCS and data.draw(st.integers(0, 3), label="tcs perms") != 0:
            perm = 0
        self.do_add(p, fd, rec, off, npages, pt << 8 | perm | extra, measure, tcs_body)

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), corrupt=st.sampled_from([None, None, None, 0, 520, 970, 1050]))
    def init(self, data, corrupt):
        p = self.pick_proc(data)
        fd, rec = self.pick_fd(data, p)
        if fd is not None:
            self.do_init(p, fd, rec, corrupt)

    @initialize(data=st.data(),
                layout=st.lists(st.sampled_from([None, "TCS", 0, 1, 3, 4, 5, 7]),
                                min_size=NPAGES, max_size=NPAGES),
                map_prot=st.sampled_from(["intent"] * 5 + ["rw", "rwx", "none"]))
    def first_enclave(self, data, layout, map_prot):
        self.load(data, layout, map_prot)

    @precondition(lambda self: self.procs)
    @rule(data=st.data(),
          layout=st.lists(st.sampled_from([None, "TCS", 0, 1, 3, 4, 5, 7]),
                          min_size=NPAGES, max_size=NPAGES),
          map_prot=st.sampled_from(["intent"] * 5 + ["rw", "rwx", "none"]))
    def load(self, data, layout, map_prot):
        """open + CREATE + ADD each page + INIT + map every page (kselftest-like)."""
        p = self.pick_proc(data)
        if len(self.fds[p]) >= 3:
            return
        fd, rec = self.open_dev(p, self.next_slot(data))
        if self.do_create(p, fd, rec) != 0:
            return
        if "TCS" not in layout:
            layout[0] = "TCS"
        if 3 not in layout and 7 not in layout:
            layout[layout.index("TCS") ^ 1] = 3
        ssa = next(i for i, spec in enumerate(layout) if spec in (3, 7)) * PAGE
        for i, spec in enumerate(layout):
            if spec is None:
                continue
            flags = PT_TCS << 8 if spec == "TCS" else PT_REG << 8 | spec
            self.do_add(p, fd, rec, i, 1, flags, True, tcs_body=True, ossa=ssa)
        if self.do_init(p, fd, rec) != 0:
            return
        for i, spec in enumerate(layout):
            if map_prot == "intent":
                prot = RW if spec in ("TCS", None) else spec
            else:
                prot = {"rw": RW, "rwx": RWX, "none": PROT_NONE}[map_prot]
            self.call(f"mmap dev page {i} prot {prot}", p.mmap, rec.base + i * PAGE, PAGE,
                      prot, MAP_SHARED | MAP_FIXED, fd, 0)

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), off=st.integers(0, NPAGES), npages=st.integers(0, 3),
          perms=st.sampled_from([0, 1, 3, 5, 7, 2, 8]),
          result=st.sampled_from([0, 0, 0, 0, 1]))
    def restrict(self, data, off, npages, perms, result):
        p = self.pick_proc(data)
        fd, rec = self.pick_fd(data, p)
        if fd is None:
            return
        err, out = self.ioctl(p, fd, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
                              RESTRICT_PERMISSIONS, [off * PAGE, npages * PAGE, perms,
                                                     result, 0])
        if not self.sgx2_prologue(rec, err):
            return
        if npages == 0 or off + npages > NPAGES or perms & ~7 or (perms & 2 and not perms & 1) \
                or result:
            assert err == errno.EINVAL
            return
        assert out[4] % PAGE == 0 and (err == 0) == (out[4] == npages * PAGE)
        if err == errno.EINVAL:
            pfn = (rec.base >> 12) + off + out[4] // PAGE
            assert rec.type.get(pfn, PT_REG) != PT_REG

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), off=st.integers(0, NPAGES), npages=st.integers(0, 3),
          page_type=st.sampled_from([PT_TCS, PT_TRIM, PT_TRIM, PT_REG, 0x104]))
    def modify(self, data, off, npages, page_type):
        p = self.pick_proc(data)
        fd, rec = self.pick_fd(data, p)
        if fd is None:
            return
        err, out = self.ioctl(p, fd, SGX_IOC_ENCLAVE_MODIFY_TYPES, MODIFY_TYPES,
                              [off * PAGE, npages * PAGE, page_type, 0, 0])
        if not self.sgx2_prologue(rec, err):
            return
        if npages == 0 or off + npages > NPAGES or page_type not in (PT_TCS, PT_TRIM):
            assert err == errno.EINVAL and out[4] == 0
            return
        count = out[4]
        assert count % PAGE == 0 and (err == 0) == (count == npages * PAGE)
        for i in range(count // PAGE):
            pfn = (rec.base >> 12) + off + i
            self.sync_eaug(rec, pfn)
            old = rec.type[pfn]
            assert old == PT_REG or (old == PT_TCS and page_type == PT_TRIM), \
                f"MODIFY_TYPES {old} -> {page_type} succeeded"
            if old == PT_REG and page_type == PT_TCS:
                assert not ~rec.intent[pfn] & RW
                rec.intent[pfn] = RW
            rec.type[pfn] = page_type
        if err in (errno.EPERM, errno.EINVAL):
            pfn = (rec.base >> 12) + off + count // PAGE
            self.sync_eaug(rec, pfn)
            if err == errno.EPERM:
                assert rec.type[pfn] == PT_REG and page_type == PT_TCS and \
                    rec.intent[pfn] & RW != RW

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), off=st.integers(0, NPAGES), npages=st.integers(0, 3),
          count=st.sampled_from([0, 0, 0, 0, PAGE]))
    def remove(self, data, off, npages, count):
        p = self.pick_proc(data)
        fd, rec = self.pick_fd(data, p)
        if fd is None:
            return
        err, out = self.ioctl(p, fd, SGX_IOC_ENCLAVE_REMOVE_PAGES, REMOVE_PAGES,
                              [off * PAGE, npages * PAGE, count])
        if not self.sgx2_prologue(rec, err):
            return
        if npages == 0 or off + npages > NPAGES or count:
            assert err == errno.EINVAL
            return
        done = out[2]
        assert done % PAGE == 0 and (err == 0) == (done == npages * PAGE)
        for i in range(done // PAGE):
            pfn = (rec.base >> 12) + off + i
            self.sync_eaug(rec, pfn)
            assert rec.type[pfn] == PT_TRIM, "REMOVE_PAGES removed a non-TRIM page"
            del rec.intent[pfn], rec.type[pfn]

    @precondition(lambda self: self.procs)
    @rule(data=st.data())
    def close(self, data):
        p = self.pick_proc(data)
        fd, _ = self.pick_fd(data, p)
        if fd is not None:
            self.call(f"close({fd})", p.close, fd)
            del self.fds[p][fd]

    # --- rules: the address space -----------------------------------------------------------

    def window_range(self, data, p=None):
        """A range in the window; with p, often one around a present enclave PTE
        (where the driver's checks matter most)."""
        if p is not None:
            hot = [v << 12 for v in p.mm.pfn_ptes if WINDOW <= v << 12 < WINDOW_END]
            if hot and data.draw(st.booleans(), label="around a PTE"):
                a = self.pick(data, sorted(hot), "pte") - \
                    data.draw(st.integers(0, 1), label="pages before") * PAGE
                n = data.draw(st.integers(1, 3), label="pages")
                a = max(a, WINDOW)
                return a, min(n * PAGE, WINDOW_END - a)
        start = data.draw(st.integers(0, WINDOW_PAGES - 1), label="page")
        n = data.draw(st.integers(1, min(12, WINDOW_PAGES - start)), label="pages")
        return WINDOW + start * PAGE, n * PAGE

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), prot=st.integers(0, 7),
          how=st.sampled_from(["fixed", "fixed", "fixed", "noreplace", "hint", "private"]))
    def mmap_device(self, data, prot, how):
        p = self.pick_proc(data)
        fd, rec = self.pick_fd(data, p)
        if fd is None:
            return
        if data.draw(st.booleans(), label="over ELRANGE") and rec.slot:
            start = rec.slot + data.draw(st.integers(-2, NPAGES), label="elrange page") * PAGE
            length = data.draw(st.integers(1, 4), label="pages") * PAGE
        else:
            start, length = self.window_range(data)
        flags = {"fixed": MAP_SHARED | MAP_FIXED, "noreplace": MAP_SHARED | MAP_FIXED_NOREPLACE,
                 "hint": MAP_SHARED, "private": MAP_PRIVATE | MAP_FIXED}[how]
        r = self.call(f"mmap({start:#x}, {length:#x}, {prot}, {how}, fd {fd})", p.mmap,
                      start, length, prot, flags, fd, 0)
        if how == "private":
            assert r == -errno.EINVAL

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), prot=st.integers(0, 7))
    def mmap_anon(self, data, prot):
        p = self.pick_proc(data)
        start, length = self.window_range(data)
        self.call(f"mmap anon({start:#x}, {length:#x}, {prot})", p.mmap, start, length, prot,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), prot=st.integers(0, 7))
    def mprotect(self, data, prot):
        p = self.pick_proc(data)
        start, length = self.window_range(data, p)
        self.call(f"mprotect({start:#x}, {length:#x}, {prot})", p.mprotect, start, length,
                  prot)

    @precondition(lambda self: self.procs)
    @rule(data=st.data())
    def munmap(self, data):
        p = self.pick_proc(data)
        start, length = self.window_range(data)
        self.call(f"munmap({start:#x}, {length:#x})", p.munmap, start, length)

    def moves_enclave_ptes(self, p, start, length) -> bool:
        mm = p.mm
        for _vpn in mm.present_in(start, start + length, mm.pfn_ptes):
            return True
        return False

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), new_pages=st.integers(0, 6),
          flags=st.sampled_from([0, MREMAP_MAYMOVE, MREMAP_MAYMOVE | MREMAP_FIXED,
                                 MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
                                 MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP]))
    def mremap(self, data, new_pages, flags):
        p = self.pick_proc(data)
        start, length = self.window_range(data, p)
        new_len = new_pages * PAGE if new_pages else length
        new_addr, _ = self.window_range(data)
        moves = flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) or \
            (flags & MREMAP_MAYMOVE and new_len > length)
        if moves and not MREMAP_PTES and self.moves_enclave_ptes(p, start, length):
            note("mremap skipped: it could move enclave PTEs (known hole)")
            return
        self.call(f"mremap({start:#x}, {length:#x}, {new_len:#x}, {flags}, {new_addr:#x})",
                  p.mremap, start, length, new_len, flags, new_addr)

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), on=st.booleans())
    def personality(self, data, on):
        p = self.pick_proc(data)
        self.call(f"personality({on})", p.personality, READ_IMPLIES_EXEC if on else 0)

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), kind=st.sampled_from(["r", "w", "x"]),
          off=st.integers(0, PAGE - 8))
    def touch(self, data, kind, off):
        """An access outside enclave mode: enclave pages read as all-ones."""
        p = self.pick_proc(data)
        start, _ = self.window_range(data)
        a = start + off
        if kind == "r":
            try:
                b = p.read(a, 8)
            except vmsim.Fault as f:
                note(f"read {a:#x} -> {f}")
                return
            vma = p.mm.tree.find(a)
            if vma is not None and vma.private_data is not None and \
                    type(vma.private_data).__name__ == "Encl":
                assert b == b"\xff" * 8, f"enclave page read {b!r} outside enclave mode"
        elif kind == "w":
            self.access(f"write {a:#x}", p.write, a, b"\x00" * 8)
        else:
            self.access(f"fetch {a:#x}", p.touch, a, "x")

    @precondition(lambda self: self.procs and len(self.procs) < 4)
    @rule(data=st.data())
    def fork(self, data):
        p = self.pick_proc(data)
        child = p.fork()
        note(f"fork -> pid {child.pid}")
        self.procs.append(child)
        self.all_procs.append(child)
        self.fds[child] = dict(self.fds[p])

    @precondition(lambda self: self.procs)
    @rule(data=st.data())
    def exit(self, data):
        p = self.pick_proc(data)
        note(f"exit pid {p.pid}")
        p.exit()
        self.procs.remove(p)
        del self.fds[p]
        self.aex = [a for a in self.aex if a[0] is not p]
        if not self.procs:
            self.spawn()

    # --- rules: enclave mode -------------------------------------------------------------------

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), tcs_page=st.integers(0, NPAGES - 1), nops=st.integers(1, 4))
    def enter(self, data, tcs_page, nops):
        p = self.pick_proc(data)
        recs = [r for r in self.fds[p].values() if r.base]
        if not recs:
            return
        rec = self.pick(data, recs, "enclave")
        base = rec.base
        known = sorted((pfn << 12) - base for pfn in rec.intent)
        ops = []
        for _ in range(nops):
            kind = data.draw(st.sampled_from(["r", "w", "x", "eaccept", "eaccept", "emodpe",
                                              "eacceptcopy"]), label="op")
            if known and data.draw(st.booleans(), label="known page"):
                page = self.pick(data, known, "page") // PAGE
            else:
                page = data.draw(st.integers(-1, NPAGES), label="page")
            flags = data.draw(st.sampled_from(
                [None, None, PT_REG << 8 | SI_R | SI_W | SI_PENDING,
                 PT_TRIM << 8 | SI_MODIFIED, PT_TCS << 8 | SI_MODIFIED, PT_REG << 8 | SI_PR,
                 PT_REG << 8 | SI_PR | SI_R, SI_R, SI_R | SI_W, SI_R | SI_X, SI_W,
                 SI_R | SI_W | SI_X]), label="flags")
            other = data.draw(st.integers(-1, NPAGES), label="other page")
            ops.append((kind, page, flags, other))
        encl = rec.encl

        def matching(pa):
            """SECINFO flags that EACCEPT would accept now (None: a guess)."""
            page = encl.pages.get(pa >> 12)
            if page is None:
                return PT_REG << 8 | SI_R | SI_W | SI_PENDING       # EAUG on the way
            if page.epc is None:
                return SI_R                                         # written out: a guess
            epc = page.epc
            if epc.pending:
                return PT_REG << 8 | SI_PENDING | epc.perms()
            if epc.modified:
                return epc.pt << 8 | SI_MODIFIED
            return PT_REG << 8 | SI_PR | epc.perms()

        def program(ctx):
            for kind, page, flags, other in ops:
                a = base + page * PAGE + 8
                pa = base + page * PAGE
                if kind == "r":
                    ctx.read(a, 8)
                elif kind == "w":
                    ctx.write(a, b"\x5a" * 8)
                elif kind == "x":
                    ctx.fetch(a)
                elif kind == "eaccept":
                    ctx.eaccept(pa, matching(pa) if flags is None else flags)
                elif kind == "emodpe":
                    ctx.emodpe(pa, SI_R | SI_W if flags is None else flags)
                else:
                    ctx.eacceptcopy(pa, base + other * PAGE,
                                    PT_REG << 8 | SI_R | SI_W if flags is None else flags)

        tcss = sorted(pfn for pfn, t in rec.type.items() if t == PT_TCS)
        if tcss and data.draw(st.integers(0, 3), label="known TCS"):
            tcs = self.pick(data, tcss, "tcs") << 12
        else:
            tcs = base + tcs_page * PAGE
        run = vdso.SgxEnclaveRun(tcs=tcs)
        ret = vdso.enter_enclave(p, run, EENTER, program=program)
        note(f"EENTER tcs {tcs:#x} {ops} -> {ret} fn {run.function} vec "
             f"{run.exception_vector} code {run.exception_error_code:#x}")
        event(f"EENTER -> fn {run.function} vec {run.exception_vector}")
        assert ret == 0
        if run.function == ERESUME:
            self.aex.append((p, tcs, ops))

    @precondition(lambda self: self.procs)
    @rule(data=st.data(), tcs_page=st.integers(0, NPAGES - 1), nops=st.integers(1, 4))
    def enter_again(self, data, tcs_page, nops):
        """enter, twice as likely."""
        self.enter(data, tcs_page, nops)

    @precondition(lambda self: self.aex)
    @rule(data=st.data())
    def eresume_again(self, data):
        """eresume, twice as likely."""
        self.eresume(data)

    @precondition(lambda self: self.aex)
    @rule(data=st.data())
    def eresume(self, data):
        i = data.draw(st.integers(0, len(self.aex) - 1), label="aex")
        p, tcs, ops = self.aex.pop(i)
        run = vdso.SgxEnclaveRun(tcs=tcs)
        ret = vdso.enter_enclave(p, run, ERESUME)
        note(f"ERESUME tcs {tcs:#x} -> {ret} fn {run.function} vec {run.exception_vector}")
        assert ret == 0
        if run.function == ERESUME and run.exception_vector in (13, 14) and \
                p.__dict__.get("_sgx_threads"):
            if any(th for lst in p._sgx_threads.values() for th in lst):
                self.aex.append((p, tcs, ops))

    # --- invariants ------------------------------------------------------------------------

    def sync_eaug(self, rec, pfn):
        """A page the mirror does not know: it must be an EAUGed page."""
        if pfn in rec.intent:
            return
        page = rec.encl.pages.get(pfn)
        assert page is not None, f"{pfn << 12:#x}: driver and mirror disagree"
        assert self.cpu.sgx2 and rec.initialized, \
            f"page {pfn << 12:#x} appeared without EAUG (sgx2={self.cpu.sgx2})"
        assert rec.base <= pfn << 12 < rec.base + ENCL_SIZE, "EAUG outside ELRANGE"
        assert page.vm_max_prot_bits == VM_RWX and page.type == PT_REG, \
            "an EAUGed page is REG with RWX intent (§2.11)"
        rec.intent[pfn] = VM_RWX
        rec.type[pfn] = PT_REG

    @invariant()
    def mm_valid(self):
        for p in self.procs:
            p.mm.validate()

    @invariant()
    def ptes_within_intent(self):
        for p in self.procs:
            mm = p.mm
            for vma in mm.tree:
                encl = vma.private_data
                if encl is None or type(encl).__name__ != "Encl":
                    continue
                prot = vma.flags & VM_RWX
                for vpn in mm.present_in(vma.start, vma.end, mm.pfn_ptes):
                    epc = mm.pfn_ptes[vpn]
                    page = encl.pages.get(epc.addr >> 12)
                    assert page is not None and page.epc is epc, \
                        f"pid {p.pid}: PTE {vpn << 12:#x} maps a page the enclave lost"
                    assert not prot & ~page.vm_max_prot_bits, \
                        f"pid {p.pid}: PTE {vpn << 12:#x} prot {prot} > intent " \
                        f"{page.vm_max_prot_bits}"

    @invariant()
    def mirror_agrees(self):
        for rec in self.recs:
            encl = rec.encl
            if rec.released:
                assert not encl.pages and encl.secs is None and not encl.va_pages, \
                    "released enclave holds EPC"
                continue
            for pfn in list(encl.pages):
                self.sync_eaug(rec, pfn)
            assert set(encl.pages) == set(rec.intent), \
                f"pages {sorted(set(rec.intent) - set(encl.pages))} missing in the driver"
            for pfn, page in encl.pages.items():
                assert page.vm_max_prot_bits == rec.intent[pfn], \
                    f"{pfn << 12:#x}: intent {page.vm_max_prot_bits} != {rec.intent[pfn]}"
                assert page.type == rec.type[pfn], \
                    f"{pfn << 12:#x}: type {page.type} != {rec.type[pfn]}"
            assert encl.initialized == rec.initialized and encl.created == rec.created

    @invariant()
    def epc_conserved(self):
        held = 0
        for rec in self.recs:
            if not rec.released:
                held += sum(page.epc is not None for page in rec.encl.pages.values()) + \
                    (rec.encl.secs is not None) + len(rec.encl.va_pages)
        assert self.cpu.epc_free + held == self.cpu.epc_pages, \
            f"EPC: {self.cpu.epc_free} free + {held} held != {self.cpu.epc_pages}"


class Sgx2Machine(SgxMachine):
    CPU = dict()


class Sgx1SmallEpcMachine(SgxMachine):
    """No SGX2 (ENODEV, SIGBUS on holes) and an EPC of 24 pages (ENOMEM paths)."""
    CPU = dict(sgx2=False, epc_pages=24)


class Sgx2SmallEpcMachine(SgxMachine):
    """SGX2 with 20 EPC pages: EAUG runs out (SIGBUS), ADD_PAGES gets ENOMEM."""
    CPU = dict(epc_pages=20)


SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])

TestSgx2Machine = Sgx2Machine.TestCase
TestSgx2Machine.settings = SETTINGS
TestSgx1SmallEpcMachine = Sgx1SmallEpcMachine.TestCase
TestSgx1SmallEpcMachine.settings = SETTINGS
TestSgx2SmallEpcMachine = Sgx2SmallEpcMachine.TestCase
TestSgx2SmallEpcMachine.settings = SETTINGS
