"""The real SGX loaders as clients of the model (spec/sgx-driver.md §5) and the
failures their users meet (§7).

Every loader loads the same image (the kselftest enclave of sgx_helpers.py: two TCS,
RX text, RW data, an unmeasured RW heap; ELRANGE 0x10000) into a fresh process, and
then:

* the enclave runs the selftest's PUT/GET programs through the vDSO;
* the MRENCLAVE the CPU computed matches the image's (§4.1);
* /proc/PID/maps is what that loader leaves behind.

Expected addresses follow from the kernel's top-down allocator (no ASLR): with a
[stack] VMA, mmap_base = TASK_SIZE - clamp(8 MiB stack rlimit + 1 MiB guard gap,
128 MiB, ...) = 0x7ffff7fff000, and each mmap(NULL) takes the highest gap that fits.
Every loader first opens the device; SgxDevice's 16-page argument buffer (the
loader's own stack/heap for ioctl structs) is its first anonymous mapping.
"""

import errno

import pytest
from sgx_helpers import (
    DATA_OFFSET,
    ENCL_DYN_ENTRY,
    HEAP_OFFSET,
    MAGIC,
    MAGIC2,
    PAGE_SIZE,
    TEXT_OFFSET,
    TestEnclave,
    build_test_encl,
)

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
)
from vmsim.arch.x86.sgx import sigstruct as S
from vmsim.arch.x86.sgx.cpu import SgxCpu
from vmsim.arch.x86.sgx.defs import (
    EEXIT,
    ERESUME,
    SGX_ATTR_MODE64BIT,
    SGX_ATTR_PROVISIONKEY,
    SGX_PAGE_TYPE_TCS,
    SGX_SECINFO_MODIFIED,
    SGX_SECINFO_PENDING,
    SGX_SECINFO_R,
    SGX_SECINFO_REG,
    SGX_SECINFO_TCS,
    SGX_SECINFO_W,
)
from vmsim.enclave import loader, signing
from vmsim.enclave.segment import encode_tcs

RW, RX, RWX = PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC
DEV = "/dev/sgx_enclave"
SCRATCH_TOP = (0x7ffff7fef000, 0x7ffff7fff000)      # first 16-page mmap(NULL)
STACK = (0x7ffffffde000, 0x7ffffffff000)
VSYSCALL = (0xffffffffff600000, 0xffffffffff601000)


@pytest.fixture(scope="module")
def key():
    return signing.generate_key()


@pytest.fixture
def image():
    return build_test_encl()


def new_process(cpu=None):
    k = vmsim.Kernel(sgx=cpu if cpu is not None else True)
    return k, k.spawn(stack=True)


def maps(p):
    """(start, end, perms, offset, name) of every /proc/PID/maps line."""
    out = []
    for line in p.maps().splitlines():
        f = line.split()
        start, end = (int(x, 16) for x in f[0].split("-"))
        out.append((start, end, f[1], int(f[2], 16), f[5] if len(f) > 5 else ""))
    return out


def anon(start, end, perms):
    return (start, end, perms, 0, "")


def dev_map(start, end, perms, pgoff=0):
    return (start, end, perms, pgoff, DEV)


def tail():
    return [(*STACK, "rw-p", 0, "[stack]"), (*VSYSCALL, "--xp", 0, "[vsyscall]")]


def mrenclave(p, loaded):
    return p.files[loaded.dev.fd].private_data.secs.enclave.mrenclave


def mrsigner(p, loaded):
    return p.files[loaded.dev.fd].private_data.secs.enclave.mrsigner


def run_put_get(p, loaded):
    """The selftest's PUT/GET through the vDSO on TCS #1 and TCS #2."""
    t = TestEnclave(p, loaded)
    assert t.put_to_buf(MAGIC) == 0
    assert t.run.function == EEXIT
    ret, value = t.get_from_buf()
    assert (ret, value, t.run.function) == (0, MAGIC, EEXIT)
    t.run.tcs = loaded.base + PAGE_SIZE
    ds = loaded.base + DATA_OFFSET + PAGE_SIZE
    assert t.put_to_addr(ds, MAGIC2) == 0
    ret, value = t.get_from_addr(ds)
    assert (ret, value, t.run.function) == (0, MAGIC2, EEXIT)
    assert t.exception() == (0, 0, 0)
    return t


# ======================================================================================
# The loaders end to end
# ======================================================================================

def test_kselftest_load_end_to_end(key, image):
    _k, p = new_process()
    e = loader.kselftest_load(p, image, key)
    # reservation: mmap(NULL, 0x20000) = [0x7ffff7fcf000, 0x7ffff7fef000), base aligned up
    b = 0x7ffff7fd0000
    assert e.base == b
    assert maps(p) == [
        dev_map(b, b + 0x2000, "rw-s"),             # TCS
        dev_map(b + 0x2000, b + 0x3000, "r-xs"),    # text
        dev_map(b + 0x3000, b + 0x9000, "rw-s"),    # data
        dev_map(b + 0x9000, b + 0xa000, "rw-s"),    # heap (VM_IO|VM_PFNMAP: never merged)
        anon(b + 0xa000, b + 0x10000, "---p"),      # the rest of the reservation
        anon(*SCRATCH_TOP, "rw-p"),
    ] + tail()
    assert mrenclave(p, e) == image.measure()
    run_put_get(p, e)
    p.mm.validate()


def test_gramine_load_end_to_end(key, image):
    _k, p = new_process()
    e = loader.gramine_load(p, image, key)
    b = image.size                  # Gramine's PIE base: the enclave size
    assert e.base == b == 0x10000
    assert maps(p) == [
        dev_map(b, b + 0x2000, "rw-s"),             # TCS area re-mmapped RW
        dev_map(b + 0x2000, b + 0x3000, "r-xs"),
        dev_map(b + 0x3000, b + 0x9000, "rw-s"),
        dev_map(b + 0x9000, b + 0xa000, "rw-s"),
        dev_map(b + 0xa000, b + 0x10000, "rwxs", 0xa000),   # left of the initial RWX map
        anon(*SCRATCH_TOP, "rw-p"),                 # the zero buffer was unmapped
    ] + tail()
    assert mrenclave(p, e) == image.measure()
    run_put_get(p, e)
    p.mm.validate()


def test_gramine_load_non_pie_base_zero_clips_below_mmap_min_addr(key):
    """base 0 (non-PIE): the device mapping starts at Gramine's MMAP_MIN_ADDR 0x10000;
    areas live above it (here one TCS, text, data at 0x10000..)."""
    img = build_test_encl()
    for seg in img.segments:
        seg.offset += 0x10000
    img.size = 0x20000
    img.segments[0].data = b"".join(encode_tcs(ossa=0x15000 + 0x1000 * i, oentry=0x12000)
                                    for i in range(2))
    _k, p = new_process()
    e = loader.gramine_load(p, img, key, base=0)
    assert e.base == 0
    assert maps(p)[0] == dev_map(0x10000, 0x12000, "rw-s")
    assert maps(p)[4] == dev_map(0x1a000, 0x20000, "rwxs", 0xa000)
    assert mrenclave(p, e) == img.measure()


def test_sdk_load_end_to_end(key, image):
    _k, p = new_process()
    e = loader.sdk_load(p, image, key)
    b = 0x7ffff7fd0000
    assert e.base == b
    assert maps(p) == [
        dev_map(b, b + 0x2000, "rw-s"),
        dev_map(b + 0x2000, b + 0x3000, "r-xs"),
        dev_map(b + 0x3000, b + 0xa000, "rw-s"),    # data + heap: one coalesced region
        anon(b + 0xa000, b + 0x10000, "---p"),
        anon(*SCRATCH_TOP, "rw-p"),
    ] + tail()
    assert mrenclave(p, e) == image.measure()
    run_put_get(p, e)
    p.mm.validate()


def test_sdk_load_post_init_mprotects_only_lower(key, image):
    """urts' set_memory_protection with a RELRO-like section: text goes to R; it may
    go back up to its intent (RX) but never beyond."""
    _k, p = new_process()
    e = loader.sdk_load(p, image, key, relro=("text",))
    b = e.base
    assert maps(p)[1] == dev_map(b + 0x2000, b + 0x3000, "r--s")
    assert p.mprotect(b + TEXT_OFFSET, PAGE_SIZE, RX) == 0
    with pytest.raises(OSError) as exc:
        p.mprotect(b + TEXT_OFFSET, PAGE_SIZE, RWX)
    assert exc.value.errno == errno.EACCES


def test_enarx_load_end_to_end(image):
    _k, p = new_process()
    e = loader.enarx_load(p, image)
    # the reservation comes before open(): [0x7ffff7fdf000, 0x7ffff7fff000), aligned up;
    # the 16-page buffer then no longer fits above it (0xf000 left) and goes below.
    b = 0x7ffff7fe0000
    assert e.base == b
    assert maps(p) == [
        anon(0x7ffff7fd0000, 0x7ffff7fe0000, "rw-p"),
        dev_map(b, b + 0x2000, "rw-s"),
        dev_map(b + 0x2000, b + 0x3000, "r-xs"),
        dev_map(b + 0x3000, b + 0x9000, "rw-s"),
        dev_map(b + 0x9000, b + 0xa000, "rw-s"),
        anon(b + 0xa000, b + 0x10000, "---p"),
    ] + tail()
    assert mrenclave(p, e) == image.measure()
    run_put_get(p, e)
    p.mm.validate()


def test_enarx_signs_with_a_fresh_key_every_run(image):
    signers = set()
    for _ in range(2):
        _k, p = new_process()
        e = loader.enarx_load(p, image)
        assert mrenclave(p, e) == image.measure()
        assert mrsigner(p, e) == S.mrsigner(S.Sigstruct.unpack(e.sigstruct).modulus)
        signers.add(mrsigner(p, e))
    assert len(signers) == 2


def test_all_loaders_agree_on_mrenclave(key, image):
    got = set()
    for load in (lambda p: loader.kselftest_load(p, image, key),
                 lambda p: loader.gramine_load(p, image, key),
                 lambda p: loader.sdk_load(p, image, key),
                 lambda p: loader.enarx_load(p, image, key)):
        _k, p = new_process()
        got.add(mrenclave(p, load(p)))
    assert got == {image.measure()}


# ======================================================================================
# Failures users meet (§7)
# ======================================================================================

# --- noexec /dev ------------------------------------------------------------------------

def test_noexec_dev_kselftest_probe_prot_exec_eperm(key, image):
    k, p = new_process()
    k.fs.remount("/dev", noexec=True)
    fd = p.open(DEV, vmsim.O_RDWR)
    a = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0)    # the PROT_READ probe is fine
    p.munmap(a, PAGE_SIZE)
    with pytest.raises(OSError) as exc:
        p.mmap(0, PAGE_SIZE, PROT_EXEC, MAP_SHARED, fd, 0)
    assert exc.value.errno == errno.EPERM
    with pytest.raises(OSError) as exc:
        loader.kselftest_load(p, image, key)
    assert exc.value.errno == errno.EPERM


def test_noexec_dev_without_probe_fails_at_the_text_mapping(key, image):
    """VM_MAYEXEC is cleared: the RX segment mmap after INIT is EPERM, and a later
    mprotect(PROT_EXEC) of a RW device mapping is EACCES."""
    k, p = new_process()
    k.fs.remount("/dev", noexec=True)
    with pytest.raises(OSError) as exc:
        loader.kselftest_load(p, image, key, probe=False)
    assert exc.value.errno == errno.EPERM
    b = 0x7ffff7fd0000
    m = maps(p)
    assert m[0] == dev_map(b, b + 0x2000, "rw-s")
    assert m[1] == anon(b + 0x2000, b + 0x10000, "---p")   # do_mmap refused: nothing unmapped
    with pytest.raises(OSError) as exc:
        p.mprotect(b, PAGE_SIZE, RWX)
    assert exc.value.errno == errno.EACCES


def test_noexec_dev_gramine_rwx_mapping_eperm(key, image):
    k, p = new_process()
    k.fs.remount("/dev", noexec=True)
    with pytest.raises(OSError) as exc:
        loader.gramine_load(p, image, key)
    assert exc.value.errno == errno.EPERM
    assert not [m for m in maps(p) if m[4] == DEV]


def test_noexec_dev_sdk_and_enarx_fail_on_the_rx_region(key, image):
    for load in (loader.sdk_load, loader.enarx_load):
        k, p = new_process()
        k.fs.remount("/dev", noexec=True)
        with pytest.raises(OSError) as exc:
            load(p, image, key)
        assert exc.value.errno == errno.EPERM, load.__name__


def test_exec_dev_again_after_remount(key, image):
    k, p = new_process()
    k.fs.remount("/dev", noexec=True)
    k.fs.remount("/dev", noexec=False)
    run_put_get(p, loader.kselftest_load(p, image, key))


# --- READ_IMPLIES_EXEC -------------------------------------------------------------------

def test_read_implies_exec_kselftest_probe_eacces(key, image):
    _k, p = new_process()
    p.personality(READ_IMPLIES_EXEC)
    fd = p.open(DEV, vmsim.O_RDWR)
    for prot in (PROT_READ, PROT_NONE, PROT_WRITE):
        with pytest.raises(OSError) as exc:
            p.mmap(0, PAGE_SIZE, prot, MAP_SHARED, fd, 0)
        assert exc.value.errno == errno.EACCES
    with pytest.raises(OSError) as exc:
        loader.kselftest_load(p, image, key)
    assert exc.value.errno == errno.EACCES


def test_read_implies_exec_gramine_eacces(key, image):
    _k, p = new_process()
    p.personality(READ_IMPLIES_EXEC)
    with pytest.raises(OSError) as exc:
        loader.gramine_load(p, image, key)
    assert exc.value.errno == errno.EACCES
    assert not [m for m in maps(p) if m[4] == DEV]


def test_read_implies_exec_sdk_leaves_a_gap(key, image):
    """The TCS region's MAP_FIXED mmap over the reservation is refused by sgx_mmap:
    the reservation there is gone and the range is a gap (6.12+ "restore the gap")."""
    _k, p = new_process()
    p.personality(READ_IMPLIES_EXEC)
    with pytest.raises(OSError) as exc:
        loader.sdk_load(p, image, key)
    assert exc.value.errno == errno.EACCES
    b = 0x7ffff7fd0000
    m = maps(p)
    assert m[0] == anon(b + 0x2000, b + 0x10000, "---p")
    assert not [x for x in m if x[0] < b + 0x2000 and x[1] > b]


def test_read_implies_exec_enarx_eacces_after_init(image):
    _k, p = new_process()
    p.personality(READ_IMPLIES_EXEC)
    with pytest.raises(OSError) as exc:
        loader.enarx_load(p, image)
    assert exc.value.errno == errno.EACCES


def test_read_implies_exec_mprotect_of_existing_enclave_vma(key, image):
    _k, p = new_process()
    e = loader.kselftest_load(p, image, key)
    p.personality(READ_IMPLIES_EXEC)
    for prot in (PROT_READ, PROT_NONE):
        with pytest.raises(OSError) as exc:
            p.mprotect(e.base + TEXT_OFFSET, PAGE_SIZE, prot)
        assert exc.value.errno == errno.EACCES
    p.personality(0)
    assert p.mprotect(e.base + TEXT_OFFSET, PAGE_SIZE, PROT_READ) == 0


# --- mprotect beyond the intent -----------------------------------------------------------

@pytest.mark.parametrize("offset,prot", [
    (0x0000, RWX),                  # TCS: intent RW
    (TEXT_OFFSET, RW),              # text: intent RX
    (TEXT_OFFSET, RWX),
    (DATA_OFFSET, RWX),             # data: intent RW
    (HEAP_OFFSET, RX),
])
def test_mprotect_beyond_intent_eacces(key, image, offset, prot):
    _k, p = new_process()
    e = loader.kselftest_load(p, image, key)
    before = p.maps()
    with pytest.raises(OSError) as exc:
        p.mprotect(e.base + offset, PAGE_SIZE, prot)
    assert exc.value.errno == errno.EACCES
    assert p.maps() == before


def test_mprotect_within_intent_allowed(key, image):
    _k, p = new_process()
    e = loader.kselftest_load(p, image, key)
    assert p.mprotect(e.base + TEXT_OFFSET, PAGE_SIZE, PROT_READ) == 0
    assert p.mprotect(e.base + TEXT_OFFSET, PAGE_SIZE, RX) == 0
    assert p.mprotect(e.base + DATA_OFFSET, PAGE_SIZE, PROT_NONE) == 0
    assert p.mprotect(e.base + DATA_OFFSET, PAGE_SIZE, RW) == 0
    assert p.mprotect(e.base + 0xa000, PAGE_SIZE, RWX) == 0     # anon reservation
    with pytest.raises(OSError) as exc:
        p.mprotect(e.base, 0x10000, RWX)                     # spans enclave pages
    assert exc.value.errno == errno.EACCES


# --- a new TCS in Gramine's RWX area (gramine#1451) -------------------------------------------

def test_modify_types_tcs_caps_rwx_vma_sigbus_and_eacces(key, image):
    _k, p = new_process()
    e = loader.gramine_load(p, image, key)
    t = TestEnclave(p, e)
    b = e.base
    stack, tcs, ssa = b + 0xa000, b + 0xb000, b + 0xc000     # in the RWX hole mapping
    pending = SGX_SECINFO_R | SGX_SECINFO_W | SGX_SECINFO_REG | SGX_SECINFO_PENDING
    for page in (stack, tcs, ssa):                           # EDMM add: EAUG + EACCEPT
        ret, eret = t.eaccept(page, pending)
        assert (ret, eret, t.run.function, t.exception()) == (0, 0, EEXIT, (0, 0, 0))
    assert t.init_tcs_page(tcs, ssa - b, ENCL_DYN_ENTRY) == 0
    _o, _l, _t, result, count = e.dev.modify_types(tcs - b, PAGE_SIZE, SGX_PAGE_TYPE_TCS)
    assert (result, count) == (0, 4096)

    # The PTE was zapped and the intent capped at RW: the RWX VMA now faults.
    with pytest.raises(vmsim.Fault) as fault:
        p.read(tcs, 8)
    assert fault.value.signal == "SIGBUS"
    assert fault.value.addr == tcs
    # ... also for the enclave's EACCEPT (a #PF the kernel cannot fix, via the vDSO)
    ret, _eret = t.eaccept(tcs, SGX_SECINFO_TCS | SGX_SECINFO_MODIFIED)
    assert ret == 0
    assert t.run.function == ERESUME
    assert t.run.exception_vector == 14
    assert t.run.exception_error_code == 0x4        # user read, PTE not present
    assert t.run.exception_addr == tcs
    # mprotect(RWX) is refused; RW is what Gramine does.
    with pytest.raises(OSError) as exc:
        p.mprotect(tcs, PAGE_SIZE, RWX)
    assert exc.value.errno == errno.EACCES
    assert p.mprotect(tcs, PAGE_SIZE, RW) == 0
    t.clear_exception()
    assert t.eresume() == 0                        # the EACCEPT is retried
    assert (t.run.function, t.exception()) == (EEXIT, (0, 0, 0))
    assert int.from_bytes(p.read(t.stack + 24, 8), "little") == 0     # eaccept_op.ret
    t.run.tcs = tcs
    assert t.put_to_buf(MAGIC2) == 0
    ret, value = t.get_from_buf()
    assert (ret, value, t.run.function) == (0, MAGIC2, EEXIT)
    with pytest.raises(OSError) as exc:
        p.mprotect(tcs, PAGE_SIZE, RWX)
    assert exc.value.errno == errno.EACCES
    p.mm.validate()


# --- a mapping made before ADD_PAGES ----------------------------------------------------------

def test_mapping_before_add_pages_faults_sigbus(key, image):
    """Map the whole ELRANGE RWX before CREATE (allowed: no pages yet), add the pages,
    INIT, but never re-map: every added page is now mapped beyond its intent and the
    fault handler answers SIGBUS; re-mmapping with the right prot fixes it."""
    _k, p = new_process()
    dev = loader.SgxDevice(p)
    b = 0x40000000
    assert p.mmap(b, image.size, RWX, MAP_FIXED_NOREPLACE | MAP_SHARED, dev.fd, 0) == b
    dev.create(image.secs(b))
    for seg in image.segments:
        src = p.mmap(0, seg.size, RW, MAP_PRIVATE | MAP_ANONYMOUS)
        p.write(src, seg.data)
        assert dev.add_pages(src, seg.offset, seg.size, seg.secinfo_flags,
                             seg.measured) == seg.size
        p.munmap(src, seg.size)
    dev.init(image.sigstruct(key))
    for off in (0x0000, TEXT_OFFSET, DATA_OFFSET, HEAP_OFFSET):
        with pytest.raises(vmsim.Fault) as fault:
            p.read(b + off, 8)
        assert (fault.value.signal, fault.value.code, fault.value.addr) == \
            ("SIGBUS", "BUS_ADRERR", b + off)
    # EENTER: the TCS cannot be faulted in either (reported through the vDSO).
    from vmsim.arch.x86 import vdso
    run = vdso.SgxEnclaveRun(tcs=b)
    assert vdso.enter_enclave(p, run, program=lambda ctx: None) == 0
    assert run.exception_vector == 14 and run.exception_addr == b
    # The hole above the image is still fine (EAUG-able, any prot).
    for seg in image.segments:
        p.mmap(b + seg.offset, seg.size, seg.prot, MAP_SHARED | MAP_FIXED, dev.fd, 0)
    assert p.read(b + DATA_OFFSET, 8) == b"\xff" * 8       # abort-page semantics
    e = loader.LoadedEnclave(dev, b, image.size, image,
                             [(b + s.offset, s.size, s.prot, s) for s in image.segments])
    run_put_get(p, e)


# --- ADD_PAGES from a noexec mount ----------------------------------------------------------

def test_add_pages_source_on_noexec_mount_eacces(key, image):
    k, p = new_process()
    k.fs.mkdir("/mnt")
    k.fs.mount("/mnt", noexec=True)
    with pytest.raises(OSError) as exc:
        loader.kselftest_load(p, image, key, source_file="/mnt/test_encl.elf")
    assert exc.value.errno == errno.EACCES
    # the same by hand: count written back as 0
    dev = loader.SgxDevice(p)
    fd = p.open("/mnt/test_encl.elf", vmsim.O_RDONLY)
    src = p.mmap(0, 0x9000, PROT_READ, MAP_PRIVATE, fd, 0)
    b = loader.reserve_aligned(p, image.size)
    dev.create(image.secs(b))
    seg = image.segments[0]
    with pytest.raises(OSError) as exc:
        dev.add_pages(src, seg.offset, seg.size, seg.secinfo_flags, True)
    assert exc.value.errno == errno.EACCES
    assert dev.last[5] == 0
    # an anonymous copy is fine (what loaders do)
    copy = p.mmap(0, seg.size, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(copy, p.read(src, seg.size))
    assert dev.add_pages(copy, seg.offset, seg.size, seg.secinfo_flags, True) == seg.size


def test_add_pages_source_on_exec_mount_ok(key, image):
    k, p = new_process()
    e = loader.kselftest_load(p, image, key, source_file="/tmp/test_encl.elf")
    assert mrenclave(p, e) == image.measure()
    run_put_get(p, e)


# --- PROVISIONKEY ----------------------------------------------------------------------------

def _provision_image():
    img = build_test_encl()
    img.attributes = SGX_ATTR_MODE64BIT | SGX_ATTR_PROVISIONKEY
    return img


def test_provisionkey_without_provision_eacces_at_init(key):
    img = _provision_image()
    k, p = new_process()
    k.fs.unlink("/dev/sgx_provision")            # no access to the provisioning device
    with pytest.raises(OSError) as exc:
        loader.sdk_load(p, img, key)
    assert exc.value.errno == errno.EACCES
    _k, p = new_process()
    with pytest.raises(OSError) as exc:
        loader.sdk_load(p, img, key, provision=False)
    assert exc.value.errno == errno.EACCES
    with pytest.raises(OSError) as exc:
        loader.kselftest_load(new_process()[1], img, key)    # never provisions
    assert exc.value.errno == errno.EACCES


def test_provisionkey_with_provision_inits(key):
    img = _provision_image()
    _k, p = new_process()
    e = loader.sdk_load(p, img, key)
    assert mrenclave(p, e) == img.measure()
    run_put_get(p, e)


# --- ECREATE EIO: the SECS asks for a CPU feature that is not there ----------------------------

def test_ecreate_eio_for_missing_cpu_feature(key):
    img = build_test_encl()
    img.xfrm = 0x7                                 # x87 | SSE | AVX
    _k, p = new_process(SgxCpu(xfrm=0x3))
    with pytest.raises(OSError) as exc:
        loader.gramine_load(p, img, key)
    assert exc.value.errno == errno.EIO
    # Gramine mapped the device before CREATE; that mapping is still there.
    assert [m[2] for m in maps(p) if m[4] == DEV] == ["rwxs"]
