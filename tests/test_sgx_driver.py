"""The in-kernel SGX driver's contract (spec/sgx-driver.md §1-§3), checked through the
syscall surface of vmsim: open/ioctl/mmap/mprotect/mremap/munmap/fork/exit and memory
accesses on /dev/sgx_enclave.

Every expected value comes from the spec (which quotes arch/x86/kernel/cpu/sgx/
ioctl.c, encl.c, driver.c and the SDM), never from the model:

* the errno of every row of the §2.12 cheat-sheet, in the order the driver checks
  (an earlier check wins even when a later one would also fail), with `count` /
  `result` written back exactly when the kernel copies the struct back;
* the intent rules of sgx_encl_may_map (§2.6, §2.7) and the transition table of
  vm_max_prot_bits (§2.11), observed as mmap/mprotect outcomes;
* the fault handler's SIGBUS cases (§2.8), abort-page semantics outside enclave mode
  (§3.4), the VM flags of an enclave VMA, fork/mremap/release (§2.9), ->access (§2.8).

The loaders' flows and the 16 kselftests live in test_sgx_loaders.py and
test_sgx_kselftests.py.

Enclave used by most tests (ELRANGE 0x10000, loaded as the kselftest loader does:
CREATE, ADD_PAGES per segment, INIT, then mmap each segment with its prot):

    0x0000 TCS (mapped RW)   0x1000 SSA RW     0x2000 text RX    0x3000 data RW (0x5a)
    0x4000 R (0x11)          0x5000 RWX        0x6000 X          0x7000 NONE
    0x8000-0x10000           holes (never added)
"""

from __future__ import annotations

import errno
import struct

import pytest

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_RDONLY,
    O_RDWR,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
)
from vmsim.arch.x86 import vdso
from vmsim.arch.x86.sgx.cpu import SgxCpu
from vmsim.arch.x86.sgx.defs import EEXIT
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
    SGX_IOC_ENCLAVE_PROVISION,
    SGX_IOC_ENCLAVE_REMOVE_PAGES,
    SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
)
from vmsim.enclave import loader
from vmsim.enclave import signing as S
from vmsim.enclave.image import EnclaveImage

PAGE = 4096
R, W, X = PROT_READ, PROT_WRITE, PROT_EXEC
RW, RX, RWX = R | W, R | X, R | W | X
SIZE = 0x10000
DEV = "/dev/sgx_enclave"

# SECINFO flags and page types, spelled out from spec §1.3 (not imported from the model)
SI_R, SI_W, SI_X = 0x1, 0x2, 0x4
SI_PENDING, SI_MODIFIED, SI_PR = 0x8, 0x10, 0x20
PT_SECS, PT_TCS, PT_REG, PT_VA, PT_TRIM = 0, 1, 2, 3, 4
SI_TCS, SI_REG, SI_TRIM = PT_TCS << 8, PT_REG << 8, PT_TRIM << 8
SGX_PAGE_MEASURE = 0x01
# SECS.ATTRIBUTES (§1.4)
A_INIT, A_DEBUG, A_MODE64BIT = 1 << 0, 1 << 1, 1 << 2
A_PROVISIONKEY, A_EINITTOKENKEY, A_KSS = 1 << 4, 1 << 5, 1 << 7
# SGX error codes (§1.5)
SGX_PAGE_NOT_MODIFIABLE = 20
UNMAPPED = 0x1000                  # below mmap_min_addr: never mapped, copy_*_user EFAULT
OUTSIDE = 0x10000000               # far from every mapping the tests make

TEXT = """
size = 0x10000
attributes = {attributes}
segment tcs  offset=0x0000 pages=1 type=TCS ossa=0x1000 oentry=0x2000
segment ssa  offset=0x1000 pages=1 perms=RW
segment text offset=0x2000 pages=1 perms=RX fill=0xcc
segment data offset=0x3000 pages=1 perms=RW fill=0x5a
segment ro   offset=0x4000 pages=1 perms=R fill=0x11
segment rwx  offset=0x5000 pages=1 perms=RWX
segment xo   offset=0x6000 pages=1 perms=X
segment none offset=0x7000 pages=1 perms=NONE
"""
TCS_OFF, SSA_OFF, TEXT_OFF, DATA_OFF, RO_OFF, RWX_OFF, XO_OFF, NONE_OFF = \
    range(0, 0x8000, PAGE)
HOLE_OFF = 0x8000


def image(attributes="MODE64BIT") -> EnclaveImage:
    return EnclaveImage.from_text(TEXT.format(attributes=attributes))


@pytest.fixture(scope="module")
def key():
    return S.generate_key()


# --- plumbing ------------------------------------------------------------------------

class Env:
    """A kernel with its SGX CPU, one process (with a stack) and helpers.

    `epc0 - n` counts every EPC page an enclave holds: its Version Array page
    (sgx_encl_create() -> sgx_encl_grow(), one per 512 pages), the SECS and its pages.
    """

    def __init__(self, cpu: SgxCpu | None = None):
        self.cpu = cpu if cpu is not None else SgxCpu()
        self.k = vmsim.Kernel(sgx=self.cpu)
        self.p = self.k.spawn(stack=True)
        self.epc0 = self.cpu.epc_free

    def device(self, flags=O_RDWR) -> loader.SgxDevice:
        return loader.SgxDevice(self.p, DEV, flags)

    def created(self, size=SIZE, attributes=A_MODE64BIT):
        """open, reserve an aligned PROT_NONE area, CREATE (kselftest steps 1-6)."""
        dev = self.device()
        base = loader.reserve_aligned(self.p, size)
        dev.create(secs(size, base, attributes=attributes))
        return dev, base

    def src(self, data: bytes = b"", pages: int = 1, prot=RW) -> int:
        """An anonymous source buffer for ADD_PAGES."""
        a = self.p.mmap(0, pages * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
        if data:
            self.p.write(a, data)
        if prot != RW:
            self.p.mprotect(a, pages * PAGE, prot)
        return a

    def add(self, dev, offset, flags, pages=1, data=b"", measure=True) -> int:
        return dev.add_pages(self.src(data, pages), offset, pages * PAGE, flags, measure)

    def loaded(self, key, attributes="MODE64BIT"):
        """The module's enclave, loaded by the kselftest loader (no device probes)."""
        return loader.kselftest_load(self.p, image(attributes), key, probe=False)

    def validate(self, *procs):
        for proc in procs or (self.p,):
            proc.mm.validate()


def secs(size, base, ssa=1, misc=0, attributes=A_MODE64BIT, xfrm=3) -> bytearray:
    """A SECS page laid out as spec §1.4 says (size@0 base@8 ssa@16 misc@20
    attributes@48 xfrm@56, everything else zero)."""
    b = bytearray(PAGE)
    struct.pack_into("<QQII", b, 0, size, base, ssa, misc)
    struct.pack_into("<QQ", b, 48, attributes, xfrm)
    return b


def secinfo(flags: int, reserved: bytes = bytes(56)) -> bytes:
    return struct.pack("<Q", flags) + reserved


def raw(dev, cmd: int, fmt: struct.Struct, *fields):
    """ioctl(fd, cmd, &struct): (errno or 0, the struct as the caller then sees it)."""
    arg = dev.scratch.put(fmt.pack(*fields))
    try:
        dev.p.ioctl(dev.fd, cmd, arg)
        err = 0
    except OSError as e:
        err = e.errno
    return err, fmt.unpack(dev.p.read(arg, fmt.size))


def err_of(fn, *args, **kw) -> int:
    try:
        fn(*args, **kw)
    except OSError as e:
        assert e.errno > 0
        return e.errno
    return 0


def fault_of(fn, *args):
    try:
        fn(*args)
    except vmsim.Fault as f:
        return f
    return None


def dev_map(p, dev, addr, length, prot):
    return p.mmap(addr, length, prot, MAP_SHARED | MAP_FIXED, dev.fd, 0)


def enter(p, tcs: int, program, *args) -> vdso.SgxEnclaveRun:
    """EENTER through the vDSO with `program` as the code at OENTRY."""
    run = vdso.SgxEnclaveRun(tcs=tcs)
    assert vdso.enter_enclave(p, run, program=program, args=args) == 0
    return run


def eaccept(p, tcs, addr, flags) -> int:
    """Run EACCEPT(addr, flags) in the enclave; return its RAX."""
    out = []
    run = enter(p, tcs, lambda ctx: out.append(ctx.eaccept(addr, flags)))
    assert run.function == EEXIT, (run.exception_vector, hex(run.exception_error_code))
    return out[0]


def enclave_read(p, tcs, addr, n=8) -> bytes:
    out = []
    run = enter(p, tcs, lambda ctx: out.append(ctx.read(addr, n)))
    assert run.function == EEXIT, (run.exception_vector, hex(run.exception_error_code))
    return out[0]


def sign(key, mrenclave, **body) -> bytes:
    return S.sign(S.build(mrenclave, **body), key).pack()


# =====================================================================================
# SGX_IOC_ENCLAVE_CREATE (§2.2)
# =====================================================================================

def test_create_twice_einval():
    e = Env()
    dev, base = e.created()
    assert err_of(dev.create, secs(SIZE, base)) == errno.EINVAL


def test_create_twice_einval_comes_before_copying_the_argument():
    e = Env()
    dev, _ = e.created()
    assert err_of(e.p.ioctl, dev.fd, SGX_IOC_ENCLAVE_CREATE, UNMAPPED) == errno.EINVAL


@pytest.mark.parametrize("size", [0, 0x3000, 0x6000, 0x10001, 3 << 20])
def test_create_size_not_power_of_two_einval(size):
    e = Env()
    dev = e.device()
    assert err_of(dev.create, secs(size, 0)) == errno.EINVAL
    assert e.cpu.epc_free == e.epc0


def test_create_size_check_precedes_ecreate():
    """size 0x3000 with a misaligned base and INIT set: the software check (EINVAL)
    runs before ECREATE (whose #GP would be EIO)."""
    e = Env()
    assert err_of(e.device().create,
                  secs(0x3000, 0x1000, attributes=A_MODE64BIT | A_INIT)) == errno.EINVAL


def test_create_bad_argument_pointer_efault():
    e = Env()
    dev = e.device()
    assert err_of(e.p.ioctl, dev.fd, SGX_IOC_ENCLAVE_CREATE, UNMAPPED) == errno.EFAULT
    err, _ = raw(dev, SGX_IOC_ENCLAVE_CREATE, CREATE, UNMAPPED)      # SECS pointer
    assert err == errno.EFAULT


def test_create_secs_must_be_fully_readable_efault():
    """The whole 4096-byte SECS is copied: a SECS whose second half is unmapped."""
    e = Env()
    dev = e.device()
    a = e.p.mmap(0, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    e.p.munmap(a + PAGE, PAGE)
    e.p.write(a + PAGE // 2, bytes(secs(SIZE, 0)[:PAGE // 2]))
    err, _ = raw(dev, SGX_IOC_ENCLAVE_CREATE, CREATE, a + PAGE // 2)
    assert err == errno.EFAULT


ECREATE_GP = {
    "one page": dict(size=0x1000),
    "base not aligned to size": dict(base_off=0x1000),
    "ATTRIBUTES.INIT": dict(attributes=A_MODE64BIT | A_INIT),
    "reserved attribute bit 3": dict(attributes=A_MODE64BIT | 1 << 3),
    "reserved attribute bit 11": dict(attributes=A_MODE64BIT | 1 << 11),
    "xfrm without SSE": dict(xfrm=1),
    "xfrm without x87": dict(xfrm=2),
    "ssa_frame_size 0": dict(ssa=0),
    "miscselect bit 1": dict(misc=2),
    "reserved1 non-zero": dict(poke=(24, 1)),
    "reserved4 non-zero": dict(poke=(4000, 1)),
    "non-canonical base": dict(size=0x2000, base=1 << 47),
}


@pytest.mark.parametrize("case", ECREATE_GP)
def test_create_ecreate_architectural_failure_eio(case):
    """§2.2/§3.2.1: every SECS rule beyond the power of two is ECREATE's; its #GP is
    EIO. The failed CREATE leaves the enclave OPEN (a good CREATE then works) and
    frees the EPC page."""
    c = ECREATE_GP[case]
    e = Env()
    dev = e.device()
    size = c.get("size", SIZE)
    base = c.get("base", loader.reserve_aligned(e.p, SIZE) + c.get("base_off", 0))
    s = secs(size, base, ssa=c.get("ssa", 1), misc=c.get("misc", 0),
             attributes=c.get("attributes", A_MODE64BIT), xfrm=c.get("xfrm", 3))
    if "poke" in c:
        s[c["poke"][0]] = c["poke"][1]
    assert err_of(dev.create, s) == errno.EIO
    assert e.cpu.epc_free == e.epc0
    good = loader.reserve_aligned(e.p, SIZE)
    dev.create(secs(SIZE, good))
    assert e.cpu.epc_free == e.epc0 - 2       # the VA page and the SECS


def test_create_attribute_the_cpu_lacks_eio():
    """CPUID(0x12,1) without KSS: a SECS asking for KSS is refused by ECREATE."""
    e = Env(SgxCpu(attributes=A_DEBUG | A_MODE64BIT | A_PROVISIONKEY))
    dev = e.device()
    base = loader.reserve_aligned(e.p, SIZE)
    assert err_of(dev.create, secs(SIZE, base, attributes=A_MODE64BIT | A_KSS)) == errno.EIO


def test_create_too_large_for_the_cpu_eio():
    e = Env(SgxCpu(max_enclave_size_64=20))         # 1 MiB enclaves at most
    dev = e.device()
    assert err_of(dev.create, secs(1 << 20, 1 << 30)) == errno.EIO
    dev.create(secs(1 << 19, 1 << 30))


# =====================================================================================
# SGX_IOC_ENCLAVE_ADD_PAGES (§2.3)
# =====================================================================================

def test_add_before_create_einval_even_with_a_bad_pointer():
    e = Env()
    dev = e.device()
    assert err_of(e.p.ioctl, dev.fd, SGX_IOC_ENCLAVE_ADD_PAGES, UNMAPPED) == errno.EINVAL
    assert err_of(e.add, dev, 0, SI_REG | SI_R) == errno.EINVAL


def test_add_after_init_einval(key):
    e = Env()
    loaded = e.loaded(key)
    assert err_of(e.add, loaded.dev, HOLE_OFF, SI_REG | SI_R) == errno.EINVAL
    assert err_of(e.p.ioctl, loaded.dev.fd, SGX_IOC_ENCLAVE_ADD_PAGES, UNMAPPED) == errno.EINVAL


def test_add_bad_argument_pointer_efault():
    e = Env()
    dev, _ = e.created()
    assert err_of(e.p.ioctl, dev.fd, SGX_IOC_ENCLAVE_ADD_PAGES, UNMAPPED) == errno.EFAULT


def add_raw(e, dev, src=None, offset=0x3000, length=PAGE, si=None, flags=SGX_PAGE_MEASURE,
            count=0):
    src = e.src() if src is None else src
    si = dev.scratch.put(secinfo(SI_REG | SI_R | SI_W)) if si is None else si
    return raw(dev, SGX_IOC_ENCLAVE_ADD_PAGES, ADD_PAGES, src, offset, length, si, flags,
               count)


@pytest.mark.parametrize("src_off", [1, 8, 0x800, 0xfff])
def test_add_src_not_page_aligned_einval(src_off):
    e = Env()
    dev, _ = e.created()
    err, out = add_raw(e, dev, src=e.src() + src_off, count=0x77)
    assert err == errno.EINVAL
    assert out[5] == 0x77          # returned before the struct is copied back


@pytest.mark.parametrize("offset,length", [
    (0x800, PAGE),                  # offset not page aligned
    (0x3000, 0),                    # length 0
    (0x3000, 0x800),                # length not a page multiple
    (0x3000, PAGE + 1),
    (SIZE, PAGE),                   # offset + length - PAGE >= size
    (SIZE - PAGE, 2 * PAGE),
    (0, SIZE + PAGE),
    ((1 << 64) - PAGE, 2 * PAGE),   # offset + length overflows
])
def test_add_offset_length_einval(offset, length):
    e = Env()
    dev, _ = e.created()
    err, out = add_raw(e, dev, offset=offset, length=length, count=0x77)
    assert err == errno.EINVAL and out[5] == 0x77


def test_add_last_page_of_elrange_ok():
    e = Env()
    dev, _ = e.created()
    err, out = add_raw(e, dev, offset=SIZE - PAGE, length=PAGE)
    assert (err, out[5]) == (0, PAGE)


def test_add_order_src_alignment_before_secinfo_copy():
    """A misaligned src wins over an unreadable SECINFO (EINVAL, not EFAULT), and so
    does a bad offset; with both valid the SECINFO copy fails with EFAULT."""
    e = Env()
    dev, _ = e.created()
    assert add_raw(e, dev, src=e.src() + 8, si=UNMAPPED)[0] == errno.EINVAL
    assert add_raw(e, dev, offset=SIZE, si=UNMAPPED)[0] == errno.EINVAL
    assert add_raw(e, dev, si=UNMAPPED)[0] == errno.EFAULT


def test_add_secinfo_copy_precedes_its_validation():
    """An unreadable SECINFO is EFAULT (copy), a readable bad one EINVAL."""
    e = Env()
    dev, _ = e.created()
    src = e.src()
    a = e.p.mmap(0, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    e.p.write(a + PAGE - 32, secinfo(SI_REG | SI_R | 1 << 40)[:32])
    assert add_raw(e, dev, src=src, si=a + PAGE - 32)[0] == errno.EINVAL
    e.p.munmap(a + PAGE, PAGE)                  # now the 64 bytes straddle a hole
    assert add_raw(e, dev, src=src, si=a + PAGE - 32)[0] == errno.EFAULT


BAD_SECINFO = {
    "type SECS": PT_SECS << 8 | SI_R,
    "type VA": PT_VA << 8 | SI_R,
    "type TRIM": SI_TRIM | SI_R,
    "type 5": 5 << 8 | SI_R,
    "type 0xff": 0xFF << 8 | SI_R,
    "REG W without R": SI_REG | SI_W,
    "REG WX without R": SI_REG | SI_W | SI_X,
    "TCS with R": SI_TCS | SI_R,
    "TCS with X": SI_TCS | SI_X,
    "TCS with RW": SI_TCS | SI_R | SI_W,
    "PENDING": SI_REG | SI_R | SI_PENDING,
    "MODIFIED": SI_REG | SI_R | SI_MODIFIED,
    "PR": SI_REG | SI_R | SI_PR,
    "bit 6": SI_REG | SI_R | 1 << 6,
    "bit 7": SI_REG | SI_R | 1 << 7,
    "bit 16": SI_REG | SI_R | 1 << 16,
    "bit 63": SI_REG | SI_R | 1 << 63,
}


@pytest.mark.parametrize("case", BAD_SECINFO)
def test_add_bad_secinfo_flags_einval(case):
    e = Env()
    dev, _ = e.created()
    err, out = add_raw(e, dev, si=dev.scratch.put(secinfo(BAD_SECINFO[case])), count=0x77)
    assert (err, out[5]) == (errno.EINVAL, 0x77)
    assert e.cpu.epc_free == e.epc0 - 2       # only the VA page and the SECS


@pytest.mark.parametrize("pos", [0, 1, 7, 31, 39, 40, 47, 48, 55])
def test_add_secinfo_reserved_byte_einval(pos):
    """secinfo.reserved[56] must be all zero, including the 8 bytes the EADD record
    does not measure (reserved[40:56])."""
    e = Env()
    dev, _ = e.created()
    reserved = bytearray(56)
    reserved[pos] = 0x80
    err, _ = add_raw(e, dev, si=dev.scratch.put(secinfo(SI_REG | SI_R, bytes(reserved))))
    assert err == errno.EINVAL


@pytest.mark.parametrize("perms", [0, SI_R, SI_X, SI_R | SI_W, SI_R | SI_X,
                                   SI_R | SI_W | SI_X])
def test_add_allowed_reg_perms(perms):
    e = Env()
    dev, _ = e.created()
    assert e.add(dev, 0x3000, SI_REG | perms) == PAGE


def test_add_tcs_with_zero_perms_ok():
    e = Env()
    dev, _ = e.created()
    from vmsim.enclave.segment import encode_tcs
    assert e.add(dev, 0, SI_TCS, data=encode_tcs(ossa=0x1000)) == PAGE


def test_add_malformed_tcs_contents_eio():
    """EADD #GPs on a TCS with reserved bytes set: EIO (§2.3 step 5, §3.2.2)."""
    e = Env()
    dev, _ = e.created()
    bad = bytearray(PAGE)
    bad[100] = 1
    assert err_of(e.add, dev, 0, SI_TCS, data=bytes(bad)) == errno.EIO
    assert e.cpu.epc_free == e.epc0 - 2


def test_add_count_input_ignored_and_unknown_flags_ignored():
    """`count` is output only; flags bits other than MEASURE are ignored, not refused."""
    e = Env()
    dev, _ = e.created()
    err, out = add_raw(e, dev, offset=0x3000, length=2 * PAGE, flags=0xFE, count=0xdead)
    assert err == 0 and out[5] == 2 * PAGE


def test_add_duplicate_page_ebusy_with_partial_count():
    """xa_insert of a present index is EBUSY (not EEXIST); count says how many bytes
    went in before it, and those pages stay added."""
    e = Env()
    dev, base = e.created()
    e.add(dev, 0x4000, SI_REG | SI_R)
    src = e.src(pages=3)
    err, out = add_raw(e, dev, src=src, offset=0x2000, length=3 * PAGE,
                       si=dev.scratch.put(secinfo(SI_REG | SI_R | SI_X)))
    assert (err, out[5]) == (errno.EBUSY, 2 * PAGE)
    assert e.cpu.epc_free == e.epc0 - 2 - 3   # VA, SECS, 0x4000, 0x2000, 0x3000
    # the two pages added by the failing call carry their intent (RX)
    dev_map(e.p, dev, base + 0x2000, 2 * PAGE, RX)
    assert err_of(dev_map, e.p, dev, base + 0x2000, 2 * PAGE, RWX) == errno.EACCES
    assert err_of(e.add, dev, 0x4000, SI_REG | SI_R) == errno.EBUSY
    e.validate()


def noexec_file(e, path="/mnt/src", data=b"\x42" * PAGE):
    e.k.fs.mkdir("/mnt")
    e.k.fs.mount("/mnt", noexec=True)
    e.k.fs.create(path, data)
    fd = e.p.open(path, O_RDONLY)
    return fd


def test_add_source_on_noexec_mount_eacces():
    e = Env()
    dev, _ = e.created()
    fd = noexec_file(e)
    src = e.p.mmap(0, PAGE, R, MAP_PRIVATE, fd, 0)
    err, out = add_raw(e, dev, src=src)
    assert (err, out[5]) == (errno.EACCES, 0)
    assert e.cpu.epc_free == e.epc0 - 2


def test_add_source_crossing_into_noexec_mapping_partial_count():
    """Page 1 from anonymous memory, page 2 from a noexec file: count = 4096, EACCES."""
    e = Env()
    dev, base = e.created()
    fd = noexec_file(e)
    src = e.src(pages=2)
    e.p.mmap(src + PAGE, PAGE, R, MAP_PRIVATE | MAP_FIXED, fd, 0)
    err, out = add_raw(e, dev, src=src, offset=0x3000, length=2 * PAGE)
    assert (err, out[5]) == (errno.EACCES, PAGE)
    assert e.cpu.epc_free == e.epc0 - 3


def test_add_source_in_hole_checked_against_next_vma():
    """find_vma() quirk (§2.3 step 4): a src in a hole is checked against the next VMA:
    below a noexec file mapping -> EACCES; below an anonymous one -> EFAULT (GUP)."""
    e = Env()
    dev, _ = e.created()
    fd = noexec_file(e)
    file_map = e.p.mmap(0, PAGE, R, MAP_PRIVATE, fd, 0)
    hole = file_map - PAGE
    assert vma_at(e.p, hole) is None
    assert add_raw(e, dev, src=hole)[0] == errno.EACCES
    anon = e.src(pages=2)
    e.p.munmap(anon, PAGE)
    assert add_raw(e, dev, src=anon)[0] == errno.EFAULT
    assert e.cpu.epc_free == e.epc0 - 2


def test_add_source_with_no_vma_at_or_above_efault():
    e = Env()
    dev, _ = e.created()
    stack = next(v for v in e.p.vmas() if v.name == "[stack]")
    e.p.munmap(stack.start, stack.end - stack.start)
    top = max(v.end for v in e.p.vmas())
    assert top < e.k.task_size
    err, out = add_raw(e, dev, src=top)
    assert (err, out[5]) == (errno.EFAULT, 0)


def test_add_source_prot_none_efault():
    """get_user_pages() without FOLL_FORCE needs VM_READ."""
    e = Env()
    dev, _ = e.created()
    assert add_raw(e, dev, src=e.src(prot=PROT_NONE))[0] == errno.EFAULT


def test_add_source_that_is_an_enclave_mapping_efault():
    """VM_IO|VM_PFNMAP: GUP fails (the device has VM_MAYEXEC, so it gets that far)."""
    e = Env()
    dev, _ = e.created()
    other = e.device()
    src = e.p.mmap(0, PAGE, R, MAP_SHARED, other.fd, 0)
    assert add_raw(e, dev, src=src)[0] == errno.EFAULT
    own = e.p.mmap(0, PAGE, R, MAP_SHARED, dev.fd, 0)          # before INIT: anywhere
    assert add_raw(e, dev, src=own)[0] == errno.EFAULT
    assert e.cpu.epc_free == e.epc0 - 2


# =====================================================================================
# SGX_IOC_ENCLAVE_INIT (§2.4)
# =====================================================================================

def empty_image(size=0x2000, **kw) -> EnclaveImage:
    return EnclaveImage(size=size, segments=[], **kw)


def test_init_before_create_einval_even_with_a_bad_pointer():
    e = Env()
    dev = e.device()
    assert err_of(e.p.ioctl, dev.fd, SGX_IOC_ENCLAVE_INIT, UNMAPPED) == errno.EINVAL


def test_init_twice_einval(key):
    e = Env()
    loaded = e.loaded(key)
    assert err_of(loaded.dev.init, loaded.image.sigstruct(key)) == errno.EINVAL


def test_init_bad_pointers_efault(key):
    e = Env()
    dev, _ = e.created(size=0x2000)
    assert err_of(e.p.ioctl, dev.fd, SGX_IOC_ENCLAVE_INIT, UNMAPPED) == errno.EFAULT
    assert raw(dev, SGX_IOC_ENCLAVE_INIT, INIT, UNMAPPED)[0] == errno.EFAULT


def test_init_no_pages_ok(key):
    e = Env()
    dev, _ = e.created(size=0x2000)
    dev.init(empty_image().sigstruct(key))


@pytest.mark.parametrize("vendor", [1, 0x8087, 0x80860000, 0xFFFFFFFF])
def test_init_vendor_einval(key, vendor):
    """Checked by the driver before anything else of the SIGSTRUCT; the rest of it
    may be garbage."""
    e = Env()
    dev, _ = e.created(size=0x2000)
    sig = bytearray(1808)
    struct.pack_into("<I", sig, 16, vendor)
    assert err_of(dev.init, bytes(sig)) == errno.EINVAL


def test_init_vendor_8086_is_accepted(key):
    e = Env()
    dev, _ = e.created(size=0x2000)
    dev.init(empty_image(vendor=0x8086).sigstruct(key))


def test_init_vendor_check_precedes_attribute_check(key):
    e = Env()
    dev, _ = e.created(size=0x2000, attributes=A_MODE64BIT | A_PROVISIONKEY)
    sig = bytearray(empty_image().sigstruct(key))
    struct.pack_into("<I", sig, 16, 0x1234)
    assert err_of(dev.init, bytes(sig)) == errno.EINVAL
    assert err_of(dev.init, empty_image().sigstruct(key)) == errno.EACCES


def test_init_provisionkey_without_provision_eacces_then_with_it_ok(key):
    e = Env()
    dev, _ = e.created(size=0x2000, attributes=A_MODE64BIT | A_PROVISIONKEY)
    img = empty_image(attributes=A_MODE64BIT | A_PROVISIONKEY)
    assert err_of(dev.init, img.sigstruct(key)) == errno.EACCES
    pfd = e.p.open("/dev/sgx_provision", O_RDWR)
    dev.provision(pfd)
    dev.init(img.sigstruct(key))


def test_init_einittokenkey_eacces_even_after_provision(key):
    e = Env()
    dev, _ = e.created(size=0x2000, attributes=A_MODE64BIT | A_EINITTOKENKEY)
    dev.provision(e.p.open("/dev/sgx_provision", O_RDWR))
    img = empty_image(attributes=A_MODE64BIT | A_EINITTOKENKEY)
    assert err_of(dev.init, img.sigstruct(key)) == errno.EACCES


@pytest.mark.parametrize("body", [
    dict(attributes=A_MODE64BIT | 1 << 3, attributes_mask=1 << 3),      # reserved
    dict(attributes=A_MODE64BIT | 1 << 40, attributes_mask=1 << 40),
    dict(miscselect=1 << 1, misc_mask=1 << 1),                          # GENMASK(63,1)
    dict(xfrm=3 | 1 << 17, xfrm_mask=1 << 17),                          # AMX: not on CPU
])
def test_init_sigstruct_reserved_mask_einval(key, body):
    """attributes/miscselect/xfrm & mask & reserved mask: EINVAL before EINIT (the
    signature and MRENCLAVE do not matter)."""
    e = Env()
    dev, _ = e.created(size=0x2000)
    sig = sign(key, bytes(32), **body)
    assert err_of(dev.init, sig) == errno.EINVAL


def test_init_reserved_bits_outside_the_mask_pass_the_driver(key):
    """Only bits also set in the mask count; unmasked ones go to EINIT."""
    e = Env()
    dev, _ = e.created(size=0x2000)
    img = empty_image()
    sig = sign(key, img.measure(), attributes=A_MODE64BIT | 1 << 3, attributes_mask=0)
    dev.init(sig)


def test_init_attribute_check_precedes_reserved_mask_check(key):
    e = Env()
    dev, _ = e.created(size=0x2000, attributes=A_MODE64BIT | A_PROVISIONKEY)
    sig = sign(key, bytes(32), miscselect=2, misc_mask=2)
    assert err_of(dev.init, sig) == errno.EACCES


def test_init_wrong_mrenclave_eperm_then_retry_ok(key):
    """INVALID_MEASUREMENT is an SGX code: EPERM. The enclave stays CREATED: more
    pages can be added and INIT retried."""
    e = Env()
    dev, _ = e.created(size=0x2000)
    assert err_of(dev.init, sign(key, b"\x01" * 32)) == errno.EPERM
    e.add(dev, 0x1000, SI_REG | SI_R | SI_W)
    img = EnclaveImage.from_text("size = 0x2000\nsegment d offset=0x1000 pages=1 perms=RW\n")
    dev.init(img.sigstruct(key))


@pytest.mark.parametrize("off,name", [(516, "signature"), (1040, "q1"), (1424, "q2"),
                                      (960, "mrenclave (signed body)"),
                                      (0, "header"), (24, "header2"), (512, "exponent"),
                                      (44, "reserved1")])
def test_init_bad_sigstruct_eperm(key, off, name):
    e = Env()
    dev, _ = e.created(size=0x2000)
    sig = bytearray(empty_image().sigstruct(key))
    sig[off] ^= 0x01
    assert err_of(dev.init, bytes(sig)) == errno.EPERM
    dev.init(empty_image().sigstruct(key))


def test_init_any_signer_is_accepted(key):
    """The driver writes the LE pubkey hash MSRs with each enclave's MRSIGNER."""
    other = S.generate_key()
    e = Env()
    for k in (key, other):
        dev, _ = e.created(size=0x2000)
        dev.init(empty_image().sigstruct(k))


def test_init_attribute_mismatch_eperm(key):
    """SIGSTRUCT asks (through its mask) for DEBUG; the SECS lacks it:
    INVALID_ATTRIBUTE -> EPERM."""
    e = Env()
    dev, _ = e.created(size=0x2000)
    img = empty_image()
    sig = sign(key, img.measure(), attributes=A_MODE64BIT | A_DEBUG, attributes_mask=A_DEBUG)
    assert err_of(dev.init, sig) == errno.EPERM


# =====================================================================================
# SGX_IOC_ENCLAVE_PROVISION (§2.5)
# =====================================================================================

def test_provision_works_before_create():
    e = Env()
    dev = e.device()
    dev.provision(e.p.open("/dev/sgx_provision", O_RDONLY))


def test_provision_after_init_still_returns_0(key):
    e = Env()
    loaded = e.loaded(key)
    loaded.dev.provision(e.p.open("/dev/sgx_provision", O_RDWR))


@pytest.mark.parametrize("what", ["closed", "minus one", "regular file", "enclave fd",
                                  "dev zero"])
def test_provision_bad_fd_einval(what):
    e = Env()
    dev = e.device()
    if what == "closed":
        fd = 999
    elif what == "minus one":
        fd = (1 << 64) - 1
    elif what == "regular file":
        e.k.fs.create("/tmp/f", b"x")
        fd = e.p.open("/tmp/f", O_RDONLY)
    elif what == "enclave fd":
        fd = e.device().fd
    else:
        fd = e.p.open("/dev/zero", O_RDONLY)
    assert err_of(dev.provision, fd) == errno.EINVAL


def test_provision_before_create_is_overwritten_by_create(key):
    """PROVISION returns 0 before CREATE (no state check, §2.5), but CREATE then sets
    attributes_mask = SGX_ATTR_UNPRIV_MASK (§2.2): INIT of a PROVISIONKEY enclave is
    EACCES unless PROVISION is repeated after CREATE."""
    e = Env()
    dev = e.device()
    pfd = e.p.open("/dev/sgx_provision", O_RDWR)
    dev.provision(pfd)
    base = loader.reserve_aligned(e.p, 0x2000)
    dev.create(secs(0x2000, base, attributes=A_MODE64BIT | A_PROVISIONKEY))
    img = empty_image(attributes=A_MODE64BIT | A_PROVISIONKEY)
    assert err_of(dev.init, img.sigstruct(key)) == errno.EACCES


def test_provision_fd_is_an_unsigned_int():
    """sgx_set_attribute(..., unsigned int attribute_fd): the u64 is truncated."""
    e = Env()
    dev = e.device()
    pfd = e.p.open("/dev/sgx_provision", O_RDWR)
    dev.provision(pfd | 1 << 32)
    assert err_of(dev.provision, (pfd + 1) | 1 << 32) == errno.EINVAL


def test_provision_bad_pointer_efault():
    e = Env()
    dev = e.device()
    assert err_of(e.p.ioctl, dev.fd, SGX_IOC_ENCLAVE_PROVISION, UNMAPPED) == errno.EFAULT


def test_provision_from_a_dup_fd_ok(key):
    e = Env()
    dev, _ = e.created(size=0x2000, attributes=A_MODE64BIT | A_PROVISIONKEY)
    pfd = e.p.open("/dev/sgx_provision", O_RDWR)
    dev.provision(e.p.dup(pfd))
    dev.init(empty_image(attributes=A_MODE64BIT | A_PROVISIONKEY).sigstruct(key))


# =====================================================================================
# Unknown ioctls, ioctl on a closed fd
# =====================================================================================

@pytest.mark.parametrize("cmd", [0x0000A404,     # SGX_IOC_VEPC_REMOVE_ALL: /dev/sgx_vepc only
                                 0xC028A408, 0x4008A4FF, 0x5401, 0, 0xFFFFFFFF])
def test_unknown_ioctl_enotty(cmd):
    e = Env()
    dev = e.device()
    assert err_of(e.p.ioctl, dev.fd, cmd, 0) == errno.ENOTTY


@pytest.mark.parametrize("cmd", [0x5401, SGX_IOC_ENCLAVE_CREATE])
def test_busy_enclave_ebusy_before_the_command_is_dispatched(cmd):
    """ioctl.c sgx_ioctl(): test_and_set_bit(SGX_ENCL_IOCTL) comes first, so while
    another ioctl holds the enclave (the bit set) even an unknown command is EBUSY,
    not ENOTTY; the bit is cleared after every dispatch, unknown commands included."""
    e = Env()
    dev = e.device()
    encl = e.p.files[dev.fd].private_data
    encl.busy = True                        # another thread is inside sgx_ioctl()
    assert err_of(e.p.ioctl, dev.fd, cmd, UNMAPPED) == errno.EBUSY
    encl.busy = False
    assert err_of(e.p.ioctl, dev.fd, 0x5401, 0) == errno.ENOTTY
    assert err_of(e.p.ioctl, dev.fd, SGX_IOC_ENCLAVE_CREATE, UNMAPPED) == errno.EFAULT


# =====================================================================================
# SGX2 ioctls (§2.10)
# =====================================================================================

def sgx2_fields(which, offset, length) -> list:
    """A well-formed struct for the ioctl: restrict to R, modify to TRIM, remove."""
    return {"restrict": [offset, length, SI_R, 0, 0],
            "modify": [offset, length, PT_TRIM, 0, 0],
            "remove": [offset, length, 0]}[which]


SGX2 = {
    "restrict": (SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, RESTRICT_PERMISSIONS, 5),
    "modify": (SGX_IOC_ENCLAVE_MODIFY_TYPES, MODIFY_TYPES, 5),
    "remove": (SGX_IOC_ENCLAVE_REMOVE_PAGES, REMOVE_PAGES, 3),
}


@pytest.mark.parametrize("which", SGX2)
def test_sgx2_on_sgx1_cpu_enodev_before_anything_else(key, which):
    """sgx_ioc_sgx2_ready() runs before the argument is copied: ENODEV whatever the
    state and the pointer."""
    cmd, fmt, n = SGX2[which]
    e = Env(SgxCpu(sgx2=False))
    dev = e.device()
    assert err_of(e.p.ioctl, dev.fd, cmd, UNMAPPED) == errno.ENODEV
    loaded = e.loaded(key)
    assert err_of(e.p.ioctl, loaded.dev.fd, cmd, UNMAPPED) == errno.ENODEV
    assert raw(loaded.dev, cmd, fmt, *[0] * n)[0] == errno.ENODEV


@pytest.mark.parametrize("which", SGX2)
def test_sgx2_before_init_einval_before_copying(which):
    cmd, fmt, n = SGX2[which]
    e = Env()
    dev = e.device()
    assert err_of(e.p.ioctl, dev.fd, cmd, UNMAPPED) == errno.EINVAL
    dev, _ = e.created()
    assert err_of(e.p.ioctl, dev.fd, cmd, UNMAPPED) == errno.EINVAL
    e.add(dev, 0x3000, SI_REG | SI_R | SI_W)
    assert raw(dev, cmd, fmt, *sgx2_fields(which, 0x3000, PAGE))[0] == errno.EINVAL


@pytest.mark.parametrize("which", SGX2)
def test_sgx2_after_init_bad_pointer_efault(key, which):
    cmd, _, _ = SGX2[which]
    e = Env()
    loaded = e.loaded(key)
    assert err_of(e.p.ioctl, loaded.dev.fd, cmd, UNMAPPED) == errno.EFAULT


@pytest.mark.parametrize("which", SGX2)
def test_sgx2_zeroed_struct_einval_the_support_probe(key, which):
    cmd, fmt, n = SGX2[which]
    e = Env()
    loaded = e.loaded(key)
    assert raw(loaded.dev, cmd, fmt, *[0] * n)[0] == errno.EINVAL


@pytest.mark.parametrize("which", SGX2)
@pytest.mark.parametrize("offset,length", [(0x800, PAGE), (DATA_OFF, 0), (DATA_OFF, 0x800),
                                           (SIZE, PAGE), ((1 << 64) - PAGE, 2 * PAGE)])
def test_sgx2_offset_length_einval(key, which, offset, length):
    cmd, fmt, n = SGX2[which]
    e = Env()
    loaded = e.loaded(key)
    assert raw(loaded.dev, cmd, fmt, *sgx2_fields(which, offset, length))[0] == errno.EINVAL


@pytest.mark.parametrize("perms", [1 << 3, SI_PR, 1 << 8, SI_W, SI_W | SI_X])
def test_restrict_bad_permissions_einval(key, perms):
    e = Env()
    loaded = e.loaded(key)
    err, out = raw(loaded.dev, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, RESTRICT_PERMISSIONS,
                   DATA_OFF, PAGE, perms, 0, 0)
    assert err == errno.EINVAL and out == (DATA_OFF, PAGE, perms, 0, 0)


@pytest.mark.parametrize("which,field", [("restrict", "result"), ("restrict", "count"),
                                         ("modify", "result"), ("modify", "count"),
                                         ("remove", "count")])
def test_sgx2_nonzero_result_or_count_einval_struct_untouched(key, which, field):
    """Input result/count must be 0; the EINVAL comes before the struct is copied
    back, so the caller's fields stay as they were."""
    cmd, fmt, n = SGX2[which]
    e = Env()
    loaded = e.loaded(key)
    fields = sgx2_fields(which, DATA_OFF, PAGE)
    idx = {"result": 3, "count": n - 1}[field]
    fields[idx] = 0x42
    err, out = raw(loaded.dev, cmd, fmt, *fields)
    assert err == errno.EINVAL and list(out) == fields
    assert e.cpu.epc_free == e.epc0 - 10


def test_restrict_permissions_on_tcs_einval(key):
    e = Env()
    loaded = e.loaded(key)
    err, out = raw(loaded.dev, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, RESTRICT_PERMISSIONS,
                   TCS_OFF, PAGE, SI_R, 0, 0)
    assert err == errno.EINVAL and out[3:] == (0, 0)


def test_restrict_permissions_on_trim_einval(key):
    e = Env()
    loaded = e.loaded(key)
    loaded.dev.modify_types(DATA_OFF, PAGE, PT_TRIM)
    assert err_of(loaded.dev.restrict_permissions, DATA_OFF, PAGE, SI_R) == errno.EINVAL
    assert loaded.dev.last[3:] == (0, 0)


def test_restrict_permissions_stops_at_a_hole_efault_with_count(key):
    e = Env()
    loaded = e.loaded(key)
    assert err_of(loaded.dev.restrict_permissions, NONE_OFF, 2 * PAGE, 0) == errno.EFAULT
    assert loaded.dev.last[3:] == (0, PAGE)


def test_restrict_permissions_on_pending_page_result_not_modifiable(key):
    """An EAUGed page not yet EACCEPTed: EMODPR returns SGX_PAGE_NOT_MODIFIABLE, the
    driver stores it in `result` and returns EFAULT."""
    e = Env()
    loaded = e.loaded(key)
    dev_map(e.p, loaded.dev, loaded.base + HOLE_OFF, PAGE, RW)
    e.p.read(loaded.base + HOLE_OFF, 1)                      # EAUG on fault
    assert err_of(loaded.dev.restrict_permissions, HOLE_OFF, PAGE, SI_R) == errno.EFAULT
    assert loaded.dev.last[3:] == (SGX_PAGE_NOT_MODIFIABLE, 0)


def test_restrict_permissions_ok_leaves_intent_vmas_and_ptes(key):
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + RWX_OFF
    before = e.p.maps()
    assert loaded.dev.restrict_permissions(DATA_OFF, PAGE, 0)[3:] == (0, PAGE)
    assert loaded.dev.restrict_permissions(RWX_OFF, PAGE, SI_R)[3:] == (0, PAGE)
    assert e.p.maps() == before
    e.p.mprotect(a, PAGE, RWX)                          # intent still RWX
    e.p.mprotect(loaded.base + DATA_OFF, PAGE, RW)
    assert err_of(e.p.mprotect, loaded.base + DATA_OFF, PAGE, RWX) == errno.EACCES
    e.validate()


def test_modify_types_bad_page_type_einval(key):
    e = Env()
    loaded = e.loaded(key)
    for pt in (PT_SECS, PT_REG, PT_VA, 5, 0xFF, 0x100 | PT_TRIM, 1 << 63):
        err, out = raw(loaded.dev, SGX_IOC_ENCLAVE_MODIFY_TYPES, MODIFY_TYPES,
                       DATA_OFF, PAGE, pt, 0, 0)
        assert err == errno.EINVAL and out[3:] == (0, 0), hex(pt)
    e.p.mprotect(loaded.base + DATA_OFF, PAGE, RW)           # still an RW REG page
    assert err_of(e.p.mprotect, loaded.base + DATA_OFF, PAGE, RWX) == errno.EACCES


@pytest.mark.parametrize("off", [TEXT_OFF, RO_OFF, XO_OFF, NONE_OFF])
def test_modify_reg_to_tcs_without_rw_intent_eperm(key, off):
    e = Env()
    loaded = e.loaded(key)
    assert err_of(loaded.dev.modify_types, off, PAGE, PT_TCS) == errno.EPERM
    assert loaded.dev.last[3:] == (0, 0)


def test_modify_reg_to_tcs_caps_intent_at_rw_and_zaps_the_pte(key):
    """§2.10/§2.11: vm_max_prot_bits becomes RW and the PTE is zapped, so the RWX
    VMA now SIGBUSes at the next access and mprotect(RWX) is EACCES; RW is fine."""
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + RWX_OFF
    assert e.p.read(a, 4) == b"\xff" * 4                 # PTE installed
    assert loaded.dev.modify_types(RWX_OFF, PAGE, PT_TCS)[3:] == (0, PAGE)
    f = fault_of(e.p.read, a, 1)
    assert f is not None and (f.signal, f.code) == ("SIGBUS", "BUS_ADRERR")
    assert err_of(e.p.mprotect, a, PAGE, RWX) == errno.EACCES
    e.p.mprotect(a, PAGE, RW)
    assert e.p.read(a, 1) == b"\xff"
    e.validate()


def test_modify_pending_reg_to_tcs_fails_and_restores_intent(key):
    """EMODT on a PENDING page: result = PAGE_NOT_MODIFIABLE, EFAULT, and the old
    vm_max_prot_bits (RWX, an EAUGed page) is restored."""
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + HOLE_OFF
    dev_map(e.p, loaded.dev, a, PAGE, RW)
    e.p.read(a, 1)
    assert err_of(loaded.dev.modify_types, HOLE_OFF, PAGE, PT_TCS) == errno.EFAULT
    assert loaded.dev.last[3:] == (SGX_PAGE_NOT_MODIFIABLE, 0)
    e.p.mprotect(a, PAGE, RWX)
    e.validate()


@pytest.mark.parametrize("first,second", [(PT_TRIM, PT_TRIM), (PT_TRIM, PT_TCS),
                                          (PT_TCS, PT_TCS)])
def test_modify_illegal_transitions_einval(key, first, second):
    """Allowed: REG->TCS, REG->TRIM, TCS->TRIM. The original TCS page stands in for
    TCS->TCS; the data page is made TRIM/TCS first."""
    e = Env()
    loaded = e.loaded(key)
    off = DATA_OFF
    loaded.dev.modify_types(off, PAGE, first)
    assert err_of(loaded.dev.modify_types, off, PAGE, second) == errno.EINVAL
    assert loaded.dev.last[3:] == (0, 0)
    if (first, second) == (PT_TCS, PT_TCS):
        assert err_of(loaded.dev.modify_types, TCS_OFF, PAGE, PT_TCS) == errno.EINVAL


def test_modify_tcs_to_trim_ok_and_intent_unchanged(key):
    e = Env()
    loaded = e.loaded(key)
    assert loaded.dev.modify_types(TCS_OFF, PAGE, PT_TRIM)[3:] == (0, PAGE)
    e.p.mprotect(loaded.base + TCS_OFF, PAGE, RW)
    assert err_of(e.p.mprotect, loaded.base + TCS_OFF, PAGE, RWX) == errno.EACCES


@pytest.mark.parametrize("off", [SSA_OFF, DATA_OFF])
def test_modify_multi_page_stops_at_the_first_refused_page_with_count(key, off):
    """SSA (RW) then text (RX), or data (RW) then the R page: the first page becomes
    a TCS, the second is refused with EPERM; count = 4096."""
    e = Env()
    loaded = e.loaded(key)
    assert err_of(loaded.dev.modify_types, off, 2 * PAGE, PT_TCS) == errno.EPERM
    assert loaded.dev.last[3:] == (0, PAGE)
    assert not allowed(e.p, loaded.base + off, RWX) and allowed(e.p, loaded.base + off, RW)


def test_modify_on_hole_efault(key):
    e = Env()
    loaded = e.loaded(key)
    assert err_of(loaded.dev.modify_types, HOLE_OFF, PAGE, PT_TRIM) == errno.EFAULT
    assert loaded.dev.last[3:] == (0, 0)


@pytest.mark.parametrize("off", [DATA_OFF, TCS_OFF, TEXT_OFF])
def test_remove_non_trim_eperm(key, off):
    e = Env()
    loaded = e.loaded(key)
    assert err_of(loaded.dev.remove_pages, off, PAGE) == errno.EPERM
    assert loaded.dev.last[2] == 0


def test_remove_trim_before_eaccept_eperm(key):
    e = Env()
    loaded = e.loaded(key)
    loaded.dev.modify_types(DATA_OFF, PAGE, PT_TRIM)
    assert err_of(loaded.dev.remove_pages, DATA_OFF, PAGE) == errno.EPERM
    assert loaded.dev.last[2] == 0
    assert e.cpu.epc_free == e.epc0 - 10


def test_remove_on_hole_efault(key):
    e = Env()
    loaded = e.loaded(key)
    assert err_of(loaded.dev.remove_pages, HOLE_OFF, PAGE) == errno.EFAULT


def test_remove_after_eaccept_frees_page_and_makes_a_hole(key):
    """The R page: MODIFY TRIM -> EACCEPT(TRIM|MODIFIED) -> REMOVE. Afterwards the
    address is a hole: mmap/mprotect RWX are allowed, and a fault EAUGs a fresh page."""
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + RO_OFF
    assert e.p.read(a, 1) == b"\xff"
    loaded.dev.modify_types(RO_OFF, PAGE, PT_TRIM)
    assert eaccept(e.p, loaded.base, a, SI_TRIM | SI_MODIFIED) == 0
    assert loaded.dev.remove_pages(RO_OFF, PAGE)[2] == PAGE
    assert e.cpu.epc_free == e.epc0 - 9
    e.p.mprotect(a, PAGE, RWX)
    dev_map(e.p, loaded.dev, a, PAGE, RWX)
    assert e.p.read(a, 1) == b"\xff"                    # EAUG
    assert e.cpu.epc_free == e.epc0 - 10
    assert eaccept(e.p, loaded.base, a, SI_REG | SI_R | SI_W | SI_PENDING) == 0
    e.validate()


def test_remove_multi_page_count_on_partial_failure(key):
    e = Env()
    loaded = e.loaded(key)
    loaded.dev.modify_types(DATA_OFF, 2 * PAGE, PT_TRIM)
    assert eaccept(e.p, loaded.base, loaded.base + DATA_OFF, SI_TRIM | SI_MODIFIED) == 0
    assert err_of(loaded.dev.remove_pages, DATA_OFF, 2 * PAGE) == errno.EPERM
    assert loaded.dev.last[2] == PAGE


# =====================================================================================
# mmap of the device (§2.6)
# =====================================================================================

@pytest.mark.parametrize("state", ["open", "created", "initialized"])
def test_mmap_private_einval(key, state):
    e = Env()
    if state == "open":
        dev, a = e.device(), 0
    elif state == "created":
        dev, a = e.created()
    else:
        loaded = e.loaded(key)
        dev, a = loaded.dev, loaded.base + HOLE_OFF
    for flags in (MAP_PRIVATE, MAP_PRIVATE | MAP_FIXED):
        if flags & MAP_FIXED and not a:
            continue
        assert err_of(e.p.mmap, a, PAGE, R, flags, dev.fd, 0) == errno.EINVAL


def test_mmap_shared_validate_is_shared():
    e = Env()
    dev = e.device()
    a = e.p.mmap(0, PAGE, R, vmsim.MAP_SHARED_VALIDATE, dev.fd, 0)
    assert next(v for v in e.p.vmas() if v.start == a).perms == "r--s"


def test_mmap_read_only_fd_shared_write_eacces():
    e = Env()
    dev = e.device(O_RDONLY)
    assert err_of(e.p.mmap, 0, PAGE, RW, MAP_SHARED, dev.fd, 0) == errno.EACCES
    a = e.p.mmap(0, PAGE, R, MAP_SHARED, dev.fd, 0)
    assert err_of(e.p.mprotect, a, PAGE, RW) == errno.EACCES


def test_mmap_before_create_anywhere_any_prot_any_size():
    e = Env()
    dev = e.device()
    a = e.p.mmap(0, 64 * PAGE, RWX, MAP_SHARED, dev.fd, 0)
    e.p.mprotect(a, 64 * PAGE, PROT_NONE)
    e.p.mprotect(a + PAGE, PAGE, RWX)
    e.p.mmap(OUTSIDE, PAGE, RWX, MAP_SHARED | MAP_FIXED, dev.fd, 0)
    e.validate()


def test_mmap_after_create_no_range_check_until_init():
    e = Env()
    dev, base = e.created()
    e.p.mmap(base + SIZE, 4 * PAGE, RWX, MAP_SHARED | MAP_FIXED, dev.fd, 0)
    e.p.mmap(base - 2 * PAGE, 4 * PAGE, RWX, MAP_SHARED | MAP_FIXED, dev.fd, 0)


def test_mmap_holes_unrestricted_present_pages_capped():
    e = Env()
    dev, base = e.created()
    e.add(dev, 0x4000, SI_REG | SI_R)
    dev_map(e.p, dev, base + 0x5000, 3 * PAGE, RWX)                 # holes only
    dev_map(e.p, dev, base + 0x3000, PAGE, RWX)
    for prot in (RW, RX, W, X, RWX):
        assert err_of(dev_map, e.p, dev, base + 0x3000, 3 * PAGE, prot) == errno.EACCES
    dev_map(e.p, dev, base + 0x3000, 3 * PAGE, R)
    dev_map(e.p, dev, base + 0x3000, 3 * PAGE, PROT_NONE)


def test_mmap_pgoff_is_ignored(key):
    """The intent is looked up by address; the file offset plays no part."""
    e = Env()
    loaded = e.loaded(key)
    fd = loaded.dev.fd
    assert err_of(e.p.mmap, loaded.base + RO_OFF, PAGE, RW, MAP_SHARED | MAP_FIXED, fd,
                  DATA_OFF) == errno.EACCES
    e.p.mmap(loaded.base + DATA_OFF, PAGE, RW, MAP_SHARED | MAP_FIXED, fd, 0x123000)


@pytest.mark.parametrize("where", ["below", "above", "straddle low", "straddle high"])
@pytest.mark.parametrize("prot", [PROT_NONE, R, RWX])
def test_mmap_outside_elrange_after_init_eacces(key, where, prot):
    e = Env()
    loaded = e.loaded(key)
    b, end = loaded.base, loaded.base + SIZE
    start, length = {"below": (b - 2 * PAGE, PAGE), "above": (end + PAGE, PAGE),
                     "straddle low": (b - PAGE, 2 * PAGE),
                     "straddle high": (end - PAGE, 2 * PAGE)}[where]
    assert err_of(e.p.mmap, start, length, prot, MAP_SHARED | MAP_FIXED, loaded.dev.fd, 0) \
        == errno.EACCES
    assert err_of(e.p.mmap, 0, PAGE, prot, MAP_SHARED, loaded.dev.fd, 0) == errno.EACCES


def test_mmap_hole_inside_elrange_after_init_any_prot(key):
    e = Env()
    loaded = e.loaded(key)
    dev_map(e.p, loaded.dev, loaded.base + HOLE_OFF, SIZE - HOLE_OFF, RWX)
    e.validate()


def test_vma_outside_elrange_survives_init_but_cannot_be_mprotected(key):
    e = Env()
    dev, base = e.created(size=0x2000)
    out = dev_map(e.p, dev, OUTSIDE, PAGE, RW)
    dev.init(empty_image().sigstruct(key))
    assert any(v.start == out and v.name == DEV for v in e.p.vmas())
    for prot in (PROT_NONE, R, RW):
        assert err_of(e.p.mprotect, out, PAGE, prot) == errno.EACCES
    e.p.munmap(out, PAGE)


def test_mmap_fixed_refused_leaves_a_gap(key):
    """§2.6: MAP_FIXED over existing mappings that sgx_mmap refuses: the range is
    left unmapped (6.12+ restores the gap)."""
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + RO_OFF
    assert err_of(dev_map, e.p, loaded.dev, a, PAGE, RW) == errno.EACCES
    f = fault_of(e.p.read, a, 1)
    assert f is not None and (f.signal, f.code) == ("SIGSEGV", "SEGV_MAPERR")
    assert not any(v.start <= a < v.end for v in e.p.vmas())
    e.validate()


def test_read_implies_exec_refuses_even_prot_none():
    e = Env()
    dev = e.device()
    a = e.p.mmap(0, PAGE, PROT_NONE, MAP_SHARED, dev.fd, 0)
    e.p.personality(READ_IMPLIES_EXEC)
    for prot in (PROT_NONE, W):
        assert err_of(e.p.mmap, 0, PAGE, prot, MAP_SHARED, dev.fd, 0) == errno.EACCES
        assert err_of(e.p.mprotect, a, PAGE, prot) == errno.EACCES
    e.p.personality(0)
    e.p.mprotect(a, PAGE, RWX)


# =====================================================================================
# mprotect: the ->mprotect hook (§2.7) and the transition table (§2.11)
# =====================================================================================

def allowed(p, addr, prot) -> bool:
    return err_of(p.mprotect, addr, PAGE, prot) == 0


ALL_PROTS = [PROT_NONE, R, W, X, RW, RX, W | X, RWX]


def vm_bits(prot: int) -> int:
    """calc_vm_prot_bits() without READ_IMPLIES_EXEC: W implies nothing in VM_* terms,
    so PROT_WRITE alone asks for VM_WRITE only."""
    return prot & 7


@pytest.mark.parametrize("off,intent", [(TCS_OFF, RW), (SSA_OFF, RW), (TEXT_OFF, RX),
                                        (DATA_OFF, RW), (RO_OFF, R), (RWX_OFF, RWX),
                                        (XO_OFF, X), (NONE_OFF, PROT_NONE)])
def test_transition_table_add_pages(key, off, intent):
    """ADD REG with perms P -> intent P; ADD TCS -> RW. mprotect is allowed exactly
    for the prots within the intent."""
    e = Env()
    loaded = e.loaded(key)
    for prot in ALL_PROTS:
        assert allowed(e.p, loaded.base + off, prot) == (not vm_bits(prot) & ~intent), \
            (hex(off), prot)
    e.validate()


def test_transition_table_eaug_is_rwx(key):
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + HOLE_OFF
    dev_map(e.p, loaded.dev, a, PAGE, R)
    e.p.read(a, 1)
    for prot in ALL_PROTS:
        assert allowed(e.p, a, prot)


def test_transition_table_trim_and_restrict_keep_intent(key):
    e = Env()
    loaded = e.loaded(key)
    loaded.dev.restrict_permissions(RWX_OFF, PAGE, 0)
    assert allowed(e.p, loaded.base + RWX_OFF, RWX)
    loaded.dev.modify_types(RWX_OFF, PAGE, PT_TRIM)
    assert allowed(e.p, loaded.base + RWX_OFF, RWX)
    loaded.dev.modify_types(RO_OFF, PAGE, PT_TRIM)
    assert allowed(e.p, loaded.base + RO_OFF, R)
    assert not allowed(e.p, loaded.base + RO_OFF, RW)


def test_transition_table_modify_to_tcs_is_rw(key):
    e = Env()
    loaded = e.loaded(key)
    loaded.dev.modify_types(RWX_OFF, PAGE, PT_TCS)
    for prot in ALL_PROTS:
        assert allowed(e.p, loaded.base + RWX_OFF, prot) == (not prot & X)


def test_transition_table_remove_makes_a_hole(key):
    e = Env()
    loaded = e.loaded(key)
    loaded.dev.modify_types(TEXT_OFF, PAGE, PT_TRIM)
    assert not allowed(e.p, loaded.base + TEXT_OFF, RW)
    assert eaccept(e.p, loaded.base, loaded.base + TEXT_OFF, SI_TRIM | SI_MODIFIED) == 0
    loaded.dev.remove_pages(TEXT_OFF, PAGE)
    for prot in ALL_PROTS:
        assert allowed(e.p, loaded.base + TEXT_OFF, prot)


def test_mprotect_partial_failure_across_enclave_vmas(key):
    """mprotect is not atomic across VMAs: the RWX page's VMA (first) is changed,
    the R page's VMA refuses with EACCES and keeps its prot (§2.7)."""
    e = Env()
    loaded = e.loaded(key)
    # 0x5000 RWX intent mapped RWX, 0x6000 X intent mapped X: separate VMAs
    e.p.mprotect(loaded.base + RWX_OFF, PAGE, R)
    assert err_of(e.p.mprotect, loaded.base + RWX_OFF, 2 * PAGE, RX) == errno.EACCES
    perms = {v.start - loaded.base: v.perms for v in e.p.vmas() if v.name == DEV}
    assert perms[RWX_OFF] == "r-xs"
    assert perms[XO_OFF] == "--xs"
    e.validate()


def test_mprotect_within_one_vma_refused_as_a_whole(key):
    """One VMA covering an RWX and an R page (mapped R): mprotect RW is refused and
    nothing changes (the hook sees the whole piece)."""
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + RO_OFF
    dev_map(e.p, loaded.dev, a, 2 * PAGE, R)
    before = e.p.maps()
    assert err_of(e.p.mprotect, a, 2 * PAGE, RW) == errno.EACCES
    assert e.p.maps() == before
    e.p.mprotect(a + PAGE, PAGE, RW)                    # the RWX page alone


def test_mprotect_before_create_and_before_init(key):
    e = Env()
    dev = e.device()
    a = e.p.mmap(0, PAGE, PROT_NONE, MAP_SHARED, dev.fd, 0)
    e.p.mprotect(a, PAGE, RWX)
    dev2, base = e.created()
    e.add(dev2, 0x3000, SI_REG | SI_R)
    out = dev_map(e.p, dev2, base + SIZE, PAGE, PROT_NONE)       # outside: fine pre-INIT
    e.p.mprotect(out, PAGE, RWX)
    m = dev_map(e.p, dev2, base + 0x3000, PAGE, PROT_NONE)
    assert err_of(e.p.mprotect, m, PAGE, RW) == errno.EACCES
    e.p.mprotect(m, PAGE, R)


# =====================================================================================
# Faults (§2.8) and accesses outside enclave mode (§3.4)
# =====================================================================================

def test_mapping_made_before_add_with_more_than_intent_sigbus(key):
    """A VMA is not re-validated when ADD_PAGES later caps its pages: the fault
    compares the whole VMA's R/W/X with the page's intent (even for a read)."""
    e = Env()
    dev, base = e.created(size=0x2000)
    m = dev_map(e.p, dev, base, 0x2000, RW)
    e.add(dev, 0, SI_REG | SI_R)
    e.add(dev, 0x1000, SI_REG | SI_R | SI_W)
    img = EnclaveImage.from_text("size = 0x2000\nsegment a offset=0 pages=1 perms=R\n"
                                 "segment b offset=0x1000 pages=1 perms=RW\n")
    dev.init(img.sigstruct(key))
    f = fault_of(e.p.read, m, 1)
    assert f is not None and (f.signal, f.code, f.addr) == ("SIGBUS", "BUS_ADRERR", m)
    assert e.p.read(m + PAGE, 1) == b"\xff"
    e.p.mprotect(m, PAGE, R)
    assert e.p.read(m, 1) == b"\xff"
    e.validate()


def test_sigbus_reports_the_faulting_address(key):
    e = Env()
    dev, base = e.created(size=0x2000)
    m = dev_map(e.p, dev, base, PAGE, RW)
    e.add(dev, 0, SI_REG | SI_R)
    f = fault_of(e.p.read, m + 0x123, 1)
    assert (f.signal, f.addr) == ("SIGBUS", m + 0x123)


def test_page_access_before_init_within_intent_works(key):
    """sgx_encl_load_page_in_vma() does not ask for INIT: a present page whose intent
    covers the VMA is mapped (reads the abort page)."""
    e = Env()
    dev, base = e.created()
    e.add(dev, 0x3000, SI_REG | SI_R | SI_W, data=b"\x5a" * PAGE)
    m = dev_map(e.p, dev, base + 0x3000, PAGE, RW)
    assert e.p.read(m, 2) == b"\xff\xff"


def test_sgx1_hole_sigbus(key):
    e = Env(SgxCpu(sgx2=False))
    loaded = e.loaded(key)
    a = dev_map(e.p, loaded.dev, loaded.base + HOLE_OFF, PAGE, RW)
    f = fault_of(e.p.read, a, 1)
    assert f is not None and (f.signal, f.code) == ("SIGBUS", "BUS_ADRERR")
    assert e.cpu.epc_free == e.epc0 - 10


def test_eaug_before_init_sigbus():
    e = Env()
    dev, base = e.created()
    a = dev_map(e.p, dev, base + HOLE_OFF, PAGE, RW)
    f = fault_of(e.p.read, a, 1)
    assert f is not None and (f.signal, f.code) == ("SIGBUS", "BUS_ADRERR")
    assert e.cpu.epc_free == e.epc0 - 2


def test_eaug_after_init_adds_a_page(key):
    e = Env()
    loaded = e.loaded(key)
    a = dev_map(e.p, loaded.dev, loaded.base + HOLE_OFF, PAGE, R)
    assert e.p.read(a, 3) == b"\xff" * 3
    assert e.cpu.epc_free == e.epc0 - 11
    e.validate()


def test_eaug_outside_elrange_sigbus_and_no_leak(key):
    """A VMA outside ELRANGE from before INIT: the fault tries EAUG, which #GPs (the
    address is not in ELRANGE): SIGBUS, the EPC page is freed again."""
    e = Env()
    dev, base = e.created(size=0x2000)
    out = dev_map(e.p, dev, OUTSIDE, PAGE, RW)
    dev.init(empty_image().sigstruct(key))
    f = fault_of(e.p.read, out, 1)
    assert f is not None and f.signal == "SIGBUS"
    assert e.cpu.epc_free == e.epc0 - 2
    e.validate()


def test_access_type_checked_before_the_driver(key):
    """A write to a PROT_READ enclave VMA is SIGSEGV/SEGV_ACCERR from the generic
    fault code, a fetch from a non-X one too."""
    e = Env()
    loaded = e.loaded(key)
    f = fault_of(e.p.write, loaded.base + RO_OFF, b"x")
    assert (f.signal, f.code) == ("SIGSEGV", "SEGV_ACCERR")
    f = fault_of(e.p.touch, loaded.base + DATA_OFF, "x")
    assert (f.signal, f.code) == ("SIGSEGV", "SEGV_ACCERR")
    f = fault_of(e.p.read, loaded.base + NONE_OFF, 1)
    assert (f.signal, f.code) == ("SIGSEGV", "SEGV_ACCERR")


def test_abort_page_semantics_outside_enclave_mode(key):
    """Reads return 0xff, writes are dropped; the enclave still sees its data."""
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + DATA_OFF
    assert e.p.read(a, 16) == b"\xff" * 16
    e.p.write(a, b"\x00" * 16)
    assert e.p.read(a, 16) == b"\xff" * 16
    assert enclave_read(e.p, loaded.base, a, 16) == b"\x5a" * 16
    assert e.p.read(loaded.base + RWX_OFF + 100, 4) == b"\xff" * 4
    e.p.touch(loaded.base + TEXT_OFF, "x")
    e.validate()


@pytest.mark.parametrize("case", ["W without R", "TCS page"])
def test_emodpe_fault_is_an_aex(key, case):
    """§3.3: EMODPE has no error codes, only faults (W without R -> #GP; a page that
    is not a REG page -> #PF); §1.2: faults inside the enclave are reported in run
    with function ERESUME."""
    e = Env()
    loaded = e.loaded(key)
    addr, flags, vector = {"W without R": (loaded.base + DATA_OFF, SI_W, 13),
                           "TCS page": (loaded.base + TCS_OFF, SI_R, 14)}[case]
    run = vdso.SgxEnclaveRun(tcs=loaded.base)
    assert vdso.enter_enclave(e.p, run, program=lambda ctx: ctx.emodpe(addr, flags)) == 0
    assert (run.function, run.exception_vector) == (vdso.ERESUME, vector)


def test_abort_page_read_spanning_two_enclave_pages(key):
    e = Env()
    loaded = e.loaded(key)
    assert e.p.read(loaded.base + DATA_OFF + PAGE - 4, 8) == b"\xff" * 8


# =====================================================================================
# The VMA: flags, maps/smaps
# =====================================================================================

def test_enclave_vma_flags_in_smaps_and_maps(key):
    e = Env()
    e.loaded(key)
    lines = [ln for ln in e.p.maps().splitlines() if ln.endswith(DEV)]
    assert len(lines) == 8
    perms = [ln.split()[1] for ln in lines]
    assert perms == ["rw-s", "rw-s", "r-xs", "rw-s", "r--s", "rwxs", "--xs", "---s"]
    flags = [ln.split()[1:] for ln in e.p.smaps().splitlines() if ln.startswith("VmFlags:")]
    enclave_flags = [f for f in flags if "pf" in f]
    assert len(enclave_flags) == 8
    for f in enclave_flags:
        for mn in ("sh", "mr", "mw", "me", "ms", "pf", "io", "de", "dd"):
            assert mn in f, (mn, f)
    for v in e.p.vmas():
        if v.name == DEV:
            assert {"pf", "io", "de", "dd", "sh", "ms"} <= set(v.vmflags)
            assert v.anon_vma is None


def test_enclave_vma_on_noexec_dev(key):
    """Generic mm (§2.6): PROT_EXEC of the device on a noexec /dev is EPERM, and
    VM_MAYEXEC is cleared so a later mprotect(PROT_EXEC) is EACCES."""
    e = Env()
    e.k.fs.remount("/dev", True)
    dev = e.device()
    assert err_of(e.p.mmap, 0, PAGE, RX, MAP_SHARED, dev.fd, 0) == errno.EPERM
    a = e.p.mmap(0, PAGE, R, MAP_SHARED, dev.fd, 0)
    assert err_of(e.p.mprotect, a, PAGE, RX) == errno.EACCES
    assert "me" not in next(v for v in e.p.vmas() if v.start == a).vmflags


# =====================================================================================
# ->access (ptrace / /proc/PID/mem path, §2.8)
# =====================================================================================

def vma_at(p, addr):
    return p.mm.tree.find(addr)


def test_access_non_debug_enclave_efault(key):
    e = Env()
    loaded = e.loaded(key)
    vma = vma_at(e.p, loaded.base + DATA_OFF)
    with pytest.raises(OSError) as ei:
        vma.vm_ops.access(vma, loaded.base + DATA_OFF, 8, False)
    assert ei.value.errno == errno.EFAULT


def test_access_debug_enclave_reads_and_writes(key):
    e = Env()
    loaded = e.loaded(key, attributes="MODE64BIT|DEBUG")
    a = loaded.base + DATA_OFF
    vma = vma_at(e.p, a)
    assert vma.vm_ops.access(vma, a + 8, 8, False) == b"\x5a" * 8
    assert vma.vm_ops.access(vma, a + 8, 4, True, b"\x01\x02\x03\x04") == 4
    assert vma.vm_ops.access(vma, a + 6, 8, False) == b"\x5a\x5a\x01\x02\x03\x04\x5a\x5a"
    assert enclave_read(e.p, loaded.base, a + 8, 4) == b"\x01\x02\x03\x04"


def test_access_debug_tcs_only_flags_word_writable(key):
    """EDBGWR on a TCS only to FLAGS (offset 8); elsewhere #GP -> EIO."""
    e = Env()
    loaded = e.loaded(key, attributes="MODE64BIT|DEBUG")
    vma = vma_at(e.p, loaded.base)
    assert vma.vm_ops.access(vma, loaded.base + 8, 8, True, struct.pack("<Q", 1)) == 8
    assert vma.vm_ops.access(vma, loaded.base + 8, 8, False) == struct.pack("<Q", 1)
    with pytest.raises(OSError) as ei:
        vma.vm_ops.access(vma, loaded.base + 16, 8, True, bytes(8))
    assert ei.value.errno == errno.EIO


def test_access_debug_partial_word_write_to_tcs_flags(key):
    e = Env()
    loaded = e.loaded(key, attributes="MODE64BIT|DEBUG")
    vma = vma_at(e.p, loaded.base)
    assert vma.vm_ops.access(vma, loaded.base + 8, 4, True, b"\x01\0\0\0") == 4
    assert vma.vm_ops.access(vma, loaded.base + 8, 8, False) == struct.pack("<Q", 1)


def test_access_debug_unaligned_read_spanning_words(key):
    e = Env()
    loaded = e.loaded(key, attributes="MODE64BIT|DEBUG")
    a = loaded.base + TEXT_OFF
    vma = vma_at(e.p, a)
    assert vma.vm_ops.access(vma, a + 3, 13, False) == b"\xcc" * 13


def test_access_debug_hole_efault(key):
    e = Env()
    loaded = e.loaded(key, attributes="MODE64BIT|DEBUG")
    h = dev_map(e.p, loaded.dev, loaded.base + HOLE_OFF, PAGE, RW)
    vma = vma_at(e.p, h)
    with pytest.raises(OSError) as ei:
        vma.vm_ops.access(vma, h, 8, False)
    assert ei.value.errno == errno.EFAULT


def test_access_debug_vma_beyond_intent_efault():
    """The same vm_max_prot_bits-vs-VMA check as the fault handler."""
    e = Env()
    dev, base = e.created(attributes=A_MODE64BIT | A_DEBUG)
    m = dev_map(e.p, dev, base, PAGE, RW)
    e.add(dev, 0, SI_REG | SI_R)
    vma = vma_at(e.p, m)
    with pytest.raises(OSError) as ei:
        vma.vm_ops.access(vma, m, 8, False)
    assert ei.value.errno == errno.EFAULT


# =====================================================================================
# fork, mremap, release (§2.9)
# =====================================================================================

MAGIC = 0x1122334455667788


def dev_for(p, fd) -> loader.SgxDevice:
    """SgxDevice's ioctl wrappers on an fd the process already has (inherited)."""
    d = object.__new__(loader.SgxDevice)
    d.p, d.fd, d.scratch, d.last = p, fd, loader.Scratch(p), None
    return d


def test_fork_child_shares_the_enclave(key):
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + DATA_OFF
    e.p.read(a, 1)
    child = e.p.fork()
    assert child.maps() == e.p.maps()
    assert [(v.start, v.end, v.flags) for v in child.vmas()] == \
        [(v.start, v.end, v.flags) for v in e.p.vmas()]
    run = enter(e.p, loaded.base, lambda ctx: ctx.write64(a, MAGIC))
    assert run.function == EEXIT
    assert enclave_read(child, loaded.base, a) == struct.pack("<Q", MAGIC)
    # the child's VMAs are held to the same intents
    assert err_of(child.mprotect, loaded.base + RO_OFF, PAGE, RW) == errno.EACCES
    child.mprotect(loaded.base + RWX_OFF, PAGE, RWX)
    e.validate(e.p, child)


def test_fork_then_parent_exit_keeps_the_enclave_until_the_child_exits(key):
    e = Env()
    loaded = e.loaded(key)
    child = e.p.fork()
    e.p.exit()
    assert e.cpu.epc_free == e.epc0 - 10
    assert enclave_read(child, loaded.base, loaded.base + DATA_OFF, 1) == b"\x5a"
    e.validate(child)
    child.exit()
    assert e.cpu.epc_free == e.epc0


def test_fork_child_sgx2_changes_seen_by_the_parent(key):
    """The child's REMOVE zaps PTEs in every mm (the parent's too)."""
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + DATA_OFF
    e.p.read(a, 1)
    child = e.p.fork()
    child_dev = dev_for(child, loaded.dev.fd)
    child_dev.modify_types(DATA_OFF, PAGE, PT_TRIM)
    assert eaccept(child, loaded.base, a, SI_TRIM | SI_MODIFIED) == 0
    child_dev.remove_pages(DATA_OFF, PAGE)
    e.validate(e.p, child)
    e.p.mprotect(a, PAGE, RWX)                   # a hole now, in the parent too
    assert e.p.read(a, 1) == b"\xff"             # EAUG
    e.validate(e.p, child)


def test_mremap_grow_efault(key):
    e = Env()
    loaded = e.loaded(key)
    a = dev_map(e.p, loaded.dev, loaded.base + HOLE_OFF, PAGE, RW)
    assert err_of(e.p.mremap, a, PAGE, 2 * PAGE) == errno.EFAULT
    assert err_of(e.p.mremap, a, PAGE, 2 * PAGE, MREMAP_MAYMOVE) == errno.EFAULT


def test_mremap_dontunmap_einval(key):
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + DATA_OFF
    assert err_of(e.p.mremap, a, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP) \
        == errno.EINVAL


def test_mremap_shrink_ok(key):
    e = Env()
    loaded = e.loaded(key)
    a = dev_map(e.p, loaded.dev, loaded.base + HOLE_OFF, 4 * PAGE, RW)
    assert e.p.mremap(a, 4 * PAGE, 2 * PAGE) == a
    e.validate()


def test_mremap_move_then_mprotect_keeps_the_intent_invariant(key):
    # Linux moves an enclave VMA's PTEs with it (no ->mremap), and ->mprotect checks
    # the intents at the new addresses: the moved PTE of the R page may become RWX.
    # The invariant validate() holds is about PTEs at their page's own address; the
    # displaced one is useless (EPCM address check; abort page outside enclave mode).
    e = Env()
    loaded = e.loaded(key)
    a = loaded.base + RO_OFF
    e.p.read(a, 1)                                       # PTE -> the R page
    new = e.p.mremap(a, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, loaded.base + HOLE_OFF)
    e.validate()
    e.p.mprotect(new, PAGE, RWX)                         # a hole at the new address
    e.validate()


def test_release_close_after_mmap_does_not_release(key):
    e = Env()
    loaded = e.loaded(key)
    e.p.close(loaded.dev.fd)
    assert e.cpu.epc_free == e.epc0 - 10
    assert enclave_read(e.p, loaded.base, loaded.base + DATA_OFF, 1) == b"\x5a"
    e.validate()


def test_release_last_munmap_after_close_eremoves_everything(key):
    e = Env()
    loaded = e.loaded(key)
    dev_map(e.p, loaded.dev, loaded.base + HOLE_OFF, PAGE, RW)
    e.p.read(loaded.base + HOLE_OFF, 1)                       # an EAUGed page too
    loaded.dev.modify_types(DATA_OFF, PAGE, PT_TRIM)          # and a TRIM page
    assert e.cpu.epc_free == e.epc0 - 11
    e.p.close(loaded.dev.fd)
    e.p.munmap(loaded.base, HOLE_OFF)
    assert e.cpu.epc_free == e.epc0 - 11                 # the hole's VMA holds the file
    e.p.munmap(loaded.base + HOLE_OFF, PAGE)
    assert e.cpu.epc_free == e.epc0
    e.validate()


def test_release_munmap_without_close_then_close(key):
    e = Env()
    loaded = e.loaded(key)
    e.p.munmap(loaded.base, SIZE)
    assert e.cpu.epc_free == e.epc0 - 10                 # the fd holds it
    assert loaded.dev.modify_types(DATA_OFF, PAGE, PT_TRIM)[4] == PAGE
    e.p.close(loaded.dev.fd)
    assert e.cpu.epc_free == e.epc0


def test_release_on_exit(key):
    e = Env()
    e.loaded(key)
    e.p.exit()
    assert e.cpu.epc_free == e.epc0


def test_release_of_an_enclave_never_created_or_never_initialized():
    e = Env()
    dev = e.device()
    e.p.close(dev.fd)
    dev, base = e.created()
    e.add(dev, 0x3000, SI_REG | SI_R, pages=2)
    assert e.cpu.epc_free == e.epc0 - 4
    e.p.close(dev.fd)
    assert e.cpu.epc_free == e.epc0


def test_release_dup_fd_keeps_it_open(key):
    e = Env()
    loaded = e.loaded(key)
    fd2 = e.p.dup(loaded.dev.fd)
    e.p.munmap(loaded.base, SIZE)
    e.p.close(loaded.dev.fd)
    assert e.cpu.epc_free == e.epc0 - 10
    e.p.close(fd2)
    assert e.cpu.epc_free == e.epc0


# =====================================================================================
# Version Array pages (ioctl.c sgx_encl_grow()/sgx_encl_shrink(), encl.c
# sgx_encl_eaug_page()/sgx_encl_release())
# =====================================================================================

VA_SLOTS = 512                      # SGX_VA_SLOT_COUNT (encl.h)
BIG = 0x400000                      # an ELRANGE of 1024 pages


def test_create_takes_a_va_page_then_the_secs():
    """sgx_encl_create(): sgx_encl_grow() allocates the first VA page (page_cnt 0)
    before the SECS page, so CREATE needs two EPC pages; the VA page is an EPC page of
    type PT_VA (EPA)."""
    e = Env(SgxCpu(epc_pages=2))
    dev, _ = e.created()
    assert e.cpu.epc_free == 0
    encl = e.p.files[dev.fd].private_data
    assert [(va.epc_page.valid, va.epc_page.pt) for va in encl.va_pages] == [(True, PT_VA)]
    err, out = add_raw(e, dev)
    assert (err, out[5]) == (errno.ENOMEM, 0)
    assert e.cpu.epc_free == 0


def test_create_with_one_free_epc_page_enomem_and_the_va_page_is_given_back():
    """sgx_encl_create(): the SECS allocation fails after sgx_encl_grow() took the
    only EPC page: ENOMEM, and err_out_shrink (sgx_encl_shrink()) frees the VA page;
    the enclave stays OPEN."""
    e = Env(SgxCpu(epc_pages=1))
    dev = e.device()
    base = loader.reserve_aligned(e.p, SIZE)
    assert err_of(dev.create, secs(SIZE, base)) == errno.ENOMEM
    assert e.cpu.epc_free == 1
    assert err_of(dev.create, secs(SIZE, base)) == errno.ENOMEM
    assert e.cpu.epc_free == 1


def add_pages(e, dev, offset, pages) -> int:
    """ADD_PAGES of `pages` unmeasured REG RW pages at offset: (errno or 0, count)."""
    err, out = add_raw(e, dev, src=e.src(pages=pages), offset=offset, length=pages * PAGE,
                       flags=0)
    return err, out[5]


def test_a_va_page_for_every_512_pages():
    """sgx_encl_grow(): a new VA page whenever page_cnt % SGX_VA_SLOT_COUNT == 0; the
    SECS counts, so the 512th added page takes the second VA page (two EPC pages for
    one), and an ADD that fails at xa_insert (EBUSY) gives that VA page back."""
    e = Env()
    dev, _ = e.created(size=BIG)
    assert add_pages(e, dev, 0, VA_SLOTS - 1) == (0, (VA_SLOTS - 1) * PAGE)
    assert e.cpu.epc_free == e.epc0 - 1 - 1 - (VA_SLOTS - 1)
    assert add_pages(e, dev, 0, 1) == (errno.EBUSY, 0)            # a present page
    assert e.cpu.epc_free == e.epc0 - 1 - 1 - (VA_SLOTS - 1)
    assert add_pages(e, dev, VA_SLOTS * PAGE, 1) == (0, PAGE)
    assert e.cpu.epc_free == e.epc0 - 2 - 1 - VA_SLOTS
    assert add_pages(e, dev, (VA_SLOTS + 1) * PAGE, 1) == (0, PAGE)
    assert e.cpu.epc_free == e.epc0 - 2 - 1 - (VA_SLOTS + 1)
    e.p.close(dev.fd)
    assert e.cpu.epc_free == e.epc0                               # VA pages freed too


def test_add_needing_a_va_page_on_a_full_epc_reclaims_for_it():
    """sgx_encl_add_page(): the EPC page, then sgx_encl_grow(), both with reclaim: the
    512th page of an ADD_PAGES takes the last free EPC page, and its VA page finds none,
    so sgx_alloc_epc_page() reclaims a batch (SGX_NR_TO_SCAN = 16 pages written out,
    the oldest first). The call woke ksgxd, which then reclaims until 64 pages
    (SGX_NR_HIGH_PAGES) are free: 4 batches more."""
    e = Env(SgxCpu(epc_pages=2 + (VA_SLOTS - 1) + 1))
    dev, _ = e.created(size=BIG)
    encl = e.p.files[dev.fd].private_data
    assert add_pages(e, dev, 0, VA_SLOTS) == (0, VA_SLOTS * PAGE)
    assert len(encl.va_pages) == 2
    out = sorted(addr for addr, page in encl.pages.items() if page.epc is None)
    assert out == sorted(encl.pages)[:16 + 4 * 16]
    assert e.cpu.epc_free == 16 - 1 + 4 * 16
    assert add_pages(e, dev, 0, 1) == (errno.EBUSY, 0)            # written out, present
    assert e.cpu.epc_free == 16 - 1 + 4 * 16
    e.validate()


BOUNDARY_IMAGE = f"""
size = {0x200000:#x}
segment tcs  offset=0x0000 pages=1 type=TCS ossa=0x1000 oentry=0x2000
segment data offset=0x1000 pages={VA_SLOTS - 2} perms=RW unmeasured
"""
BOUNDARY_HOLE = (VA_SLOTS - 1) * PAGE       # the SECS and 511 pages: page_cnt is 512


def boundary_enclave(e, key):
    loaded = loader.kselftest_load(e.p, EnclaveImage.from_text(BOUNDARY_IMAGE), key,
                                   probe=False)
    a = dev_map(e.p, loaded.dev, loaded.base + BOUNDARY_HOLE, PAGE, RW)
    return loaded, a


def test_eaug_at_the_512_boundary_takes_a_va_page(key):
    """sgx_encl_eaug_page() calls sgx_encl_grow() too: the fault that EAUGs the page
    taking page_cnt past 512 costs two EPC pages."""
    e = Env()
    loaded, a = boundary_enclave(e, key)
    assert e.cpu.epc_free == e.epc0 - 1 - 1 - (VA_SLOTS - 1)
    assert e.p.read(a, 1) == b"\xff"
    assert e.cpu.epc_free == e.epc0 - 2 - 1 - VA_SLOTS
    e.validate()


def test_eaug_without_an_epc_page_for_the_va_page_retries(key):
    """sgx_encl_eaug_page() allocates without reclaim: with one free EPC page the page
    takes it and sgx_encl_grow()'s VA page is EBUSY, so err_out_epc frees the page and
    the fault is VM_FAULT_NOPAGE; the access retries once ksgxd (woken by the failed
    allocation) has written a batch of 16 pages out, and the EAUG then succeeds."""
    e = Env(SgxCpu(epc_pages=2 + (VA_SLOTS - 1) + 1))
    loaded, a = boundary_enclave(e, key)
    encl = e.p.files[loaded.dev.fd].private_data
    out = [page.addr for page in encl.pages.values() if page.epc is None]
    for addr in out[:e.cpu.epc_free - 1]:
        e.p.read(addr, 1)                   # ELDU, no reclaim: one EPC page each
    assert e.cpu.epc_free == 1
    assert e.p.read(a, 1) == b"\xff"
    assert encl.pages[a >> 12].epc.pending and len(encl.va_pages) == 2
    assert e.cpu.epc_free == 1 + 16 - 2
    e.validate()


def test_remove_pages_keeps_the_va_page_and_the_next_eaug_takes_another(key):
    """sgx_encl_remove_pages() calls sgx_encl_shrink(encl, NULL): page_cnt drops, the
    VA page stays ("the enclave may end up with more VA pages than needed"), so the
    next EAUG at the boundary allocates a third VA page."""
    e = Env()
    loaded, a = boundary_enclave(e, key)
    e.p.read(a, 1)                                                  # EAUG: VA #2
    assert eaccept(e.p, loaded.base, a, SI_REG | SI_R | SI_W | SI_PENDING) == 0
    loaded.dev.modify_types(BOUNDARY_HOLE, PAGE, PT_TRIM)
    assert eaccept(e.p, loaded.base, a, SI_TRIM | SI_MODIFIED) == 0
    assert loaded.dev.remove_pages(BOUNDARY_HOLE, PAGE)[2] == PAGE
    assert e.cpu.epc_free == e.epc0 - 2 - 1 - (VA_SLOTS - 1)
    assert e.p.read(a, 1) == b"\xff"                               # EAUG: VA #3
    assert e.cpu.epc_free == e.epc0 - 3 - 1 - VA_SLOTS
    e.p.exit()
    assert e.cpu.epc_free == e.epc0
