"""The 16 SGX kselftests (tools/testing/selftests/sgx/main.c, mainline 6.x;
spec/sgx-driver.md §6), ported onto the model.

Each TEST_F becomes a test function that sets the enclave up as setup_test_encl()
does (the kselftest loader, §5.a: vmsim.drivers.sgx.loader.kselftest_load) and then
makes the same calls and asserts what the selftest asserts (EXPECT_*/ASSERT_*), in
the same order. The test enclave (test_encl.c) and ENCL_CALL are in sgx_helpers.py:
the eight ops are a Python program run through the model's vDSO
(vdso.enter_enclave), reading its op struct from untrusted memory as the real
enclave does.

Differences forced by the model, each stated where it applies:

* "clobbered" vs "unclobbered" vDSO calls (the selftest's ABI-preserving asm
  wrapper) are the same call here: the model has no registers.
* user_handler (test 5): the model's vDSO does not call a user handler, so the
  assertion that the handler ran (user_data zeroed) is an expected failure.
* The oversubscribed tests size the heap as the whole EPC (get_total_epc_mem(), the
  sum of the CPUID EPC sections) on a model EPC of 64 pages, so the enclave does not
  fit: the driver's reclaimer writes pages out (EWB) and loads them back (ELDU).
"""

import errno

import pytest
from sgx_helpers import ENCL_DYN_ENTRY, MAGIC, MAGIC2, PAGE_SIZE, TestEnclave, build_test_encl

import vmsim
from vmsim import MAP_FIXED, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE
from vmsim.arch.x86.sgx.cpu import SgxCpu
from vmsim.arch.x86.sgx.defs import (
    EEXIT,
    ERESUME,
    SGX_PAGE_TYPE_TCS,
    SGX_PAGE_TYPE_TRIM,
    SGX_SECINFO_MODIFIED,
    SGX_SECINFO_PENDING,
    SGX_SECINFO_PR,
    SGX_SECINFO_R,
    SGX_SECINFO_REG,
    SGX_SECINFO_TCS,
    SGX_SECINFO_TRIM,
    SGX_SECINFO_W,
)
from vmsim.enclave import loader
from vmsim.enclave import signing as S

ENCL_HEAP_SIZE_DEFAULT = PAGE_SIZE          # main.h
#: the model's EPC for the oversubscribed tests (see the module docstring)
EPC_PAGES = 64


@pytest.fixture(scope="module")
def key():
    return S.generate_key()


def setup_test_encl(key, heap_size=ENCL_HEAP_SIZE_DEFAULT, cpu=None):
    """setup_test_encl(): load, measure, build, map every segment; then the fixture's
    `memset(&self->run, 0, ...); self->run.tcs = encl_base`."""
    k = vmsim.Kernel(sgx=cpu if cpu is not None else True)
    p = k.spawn(stack=True)
    image = build_test_encl(heap_pages=heap_size // PAGE_SIZE)
    loaded = loader.kselftest_load(p, image, key)
    p.mm.validate()
    return TestEnclave(p, loaded)


def expect_eexit_clean(t):
    """EXPECT_EEXIT + the three EXPECT_EQ(run.exception_*, 0)."""
    assert t.run.function == EEXIT, t.exception()
    assert t.exception() == (0, 0, 0)


def sgx2_probe(t, ioctl_name):
    """The "SGX2 probe": a zeroed struct must fail; ENOTTY/ENODEV would SKIP."""
    dev = t.loaded.dev
    call = {"MODIFY_TYPES": lambda: dev.modify_types(0, 0, 0),
            "RESTRICT_PERMISSIONS": lambda: dev.restrict_permissions(0, 0, 0)}[ioctl_name]
    with pytest.raises(OSError) as exc:
        call()
    if exc.value.errno == errno.ENOTTY:
        pytest.skip(f"Kernel does not support SGX_IOC_ENCLAVE_{ioctl_name} ioctl()")
    if exc.value.errno == errno.ENODEV:
        pytest.skip("System does not support SGX2")
    assert exc.value.errno == errno.EINVAL


def put_get_buffer(t):
    """PUT_TO_BUFFER MAGIC, GET_FROM_BUFFER: the body of tests 1, 2, 4."""
    assert t.put_to_buf(MAGIC) == 0
    assert t.run.function == EEXIT
    assert t.run.user_data == 0
    ret, value = t.get_from_buf()
    assert ret == 0
    assert value == MAGIC
    assert t.run.function == EEXIT
    assert t.run.user_data == 0


def put_get_addr(t, addr, value=MAGIC):
    assert t.put_to_addr(addr, value) == 0
    expect_eexit_clean(t)
    ret, got = t.get_from_addr(addr)
    assert ret == 0
    assert got == value
    expect_eexit_clean(t)


def data_start(t):
    return t.base + t.data_offset + PAGE_SIZE


# 1 ------------------------------------------------------------------------------------
def test_unclobbered_vdso(key):
    t = setup_test_encl(key)
    put_get_buffer(t)


# 2 ------------------------------------------------------------------------------------
def written_out(t) -> int:
    """How many of the enclave's pages are written out of the EPC (EWB) now."""
    return sum(page.epc is None for page in t.encl.pages.values())


def test_unclobbered_vdso_oversubscribed(key):
    """get_total_epc_mem() as the heap, as the selftest sizes it."""
    t = setup_test_encl(key, EPC_PAGES * PAGE_SIZE, SgxCpu(epc_pages=EPC_PAGES))
    assert len(t.encl.pages) > EPC_PAGES and written_out(t)
    put_get_buffer(t)


# 3 ------------------------------------------------------------------------------------
def test_unclobbered_vdso_oversubscribed_remove(key):
    heap_size = EPC_PAGES * PAGE_SIZE
    t = setup_test_encl(key, heap_size, SgxCpu(epc_pages=EPC_PAGES))
    sgx2_probe(t, "MODIFY_TYPES")
    heap = t.segments[-1]
    assert heap.name == "heap" and heap.size == heap_size
    put_get_buffer(t)

    # Trim entire heap.
    _o, _l, _t, result, count = t.loaded.dev.modify_types(heap.offset, heap.size,
                                                          SGX_PAGE_TYPE_TRIM)
    assert result == 0
    assert count == heap.size

    # EACCEPT all removed pages.
    addr = t.base + heap.offset
    for i in range(0, heap.size, PAGE_SIZE):
        ret, eret = t.eaccept(addr + i, SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED)
        assert ret == 0
        assert t.exception() == (0, 0, 0)
        assert eret == 0
        assert t.run.function == EEXIT

    # Complete page removal.
    _o, _l, count = t.loaded.dev.remove_pages(heap.offset, heap.size)
    assert count == heap.size
    encl = t.encl
    assert not any(heap.offset <= page.addr - t.base < heap.offset + heap.size
                   for page in encl.pages.values())
    resident = len(encl.pages) - written_out(t) + (encl.secs is not None) + len(encl.va_pages)
    assert encl.cpu.epc_free == EPC_PAGES - resident    # every heap page's EPC page is free
    t.p.mm.validate()


# 4 ------------------------------------------------------------------------------------
def test_clobbered_vdso(key):
    t = setup_test_encl(key)
    put_get_buffer(t)           # the model's vDSO has one calling convention


# 5 ------------------------------------------------------------------------------------
def _test_handler(rdi, rsi, rdx, ursp, r8, r9, run):
    """main.c test_handler(): zero user_data, return 0 (vDSO returns 0)."""
    run.user_data = 0
    return 0


def test_clobbered_vdso_and_user_function(key):
    """What the model can show: the calls succeed with EEXIT and MAGIC round-trips
    with run.user_handler set (the handler assertion is the next test)."""
    t = setup_test_encl(key)
    t.run.user_handler = _test_handler
    t.run.user_data = 0xdeadbeef
    assert t.put_to_buf(MAGIC) == 0
    assert t.run.function == EEXIT
    ret, value = t.get_from_buf()
    assert ret == 0
    assert value == MAGIC
    assert t.run.function == EEXIT


def test_clobbered_vdso_and_user_function_handler_runs(key):
    t = setup_test_encl(key)
    t.run.user_handler = _test_handler
    t.run.user_data = 0xdeadbeef
    assert t.put_to_buf(MAGIC) == 0
    assert t.run.function == EEXIT
    assert t.run.user_data == 0
    ret, value = t.get_from_buf()
    assert ret == 0
    assert value == MAGIC
    assert t.run.function == EEXIT
    assert t.run.user_data == 0


# 6 ------------------------------------------------------------------------------------
def test_tcs_entry(key):
    t = setup_test_encl(key)
    assert t.nop() == 0
    expect_eexit_clean(t)
    t.run.tcs = t.base + PAGE_SIZE          # Move to the next TCS.
    assert t.nop() == 0
    expect_eexit_clean(t)


# 7 ------------------------------------------------------------------------------------
def test_pte_permissions(key):
    t = setup_test_encl(key)
    ds = data_start(t)
    put_get_addr(t, ds)

    # Change PTE permissions of target page within the enclave.
    assert t.p.mprotect(ds, PAGE_SIZE, PROT_READ) == 0

    # PTE read-only, EPCM RW: a regular #PF.
    assert t.put_to_addr(ds, MAGIC2) == 0
    assert t.run.exception_vector == 14
    assert t.run.exception_error_code == 0x7
    assert t.run.exception_addr == ds
    t.clear_exception()

    assert t.p.mprotect(ds, PAGE_SIZE, PROT_READ | PROT_WRITE) == 0
    assert t.eresume() == 0
    expect_eexit_clean(t)

    ret, value = t.get_from_addr(ds)
    assert ret == 0
    assert value == MAGIC2
    expect_eexit_clean(t)


# 8 ------------------------------------------------------------------------------------
def test_tcs_permissions(key):
    t = setup_test_encl(key)
    sgx2_probe(t, "RESTRICT_PERMISSIONS")
    dev = t.loaded.dev
    with pytest.raises(OSError) as exc:
        dev.restrict_permissions(t.tcs_offset, PAGE_SIZE, SGX_SECINFO_R)
    assert exc.value.errno == errno.EINVAL
    _o, _l, _perm, result, count = dev.last
    assert result == 0
    assert count == 0


# 9 ------------------------------------------------------------------------------------
def test_epcm_permissions(key):
    t = setup_test_encl(key)
    sgx2_probe(t, "RESTRICT_PERMISSIONS")
    ds = data_start(t)
    put_get_addr(t, ds)

    # EPCM read-only; the kernel still considers the page writable.
    _o, _l, _p, result, count = t.loaded.dev.restrict_permissions(
        t.data_offset + PAGE_SIZE, PAGE_SIZE, SGX_SECINFO_R)
    assert result == 0
    assert count == 4096

    ret, eret = t.eaccept(ds, SGX_SECINFO_R | SGX_SECINFO_REG | SGX_SECINFO_PR)
    assert ret == 0
    expect_eexit_clean(t)
    assert eret == 0

    # #PF on the EPCM.
    assert t.put_to_addr(ds, MAGIC2) == 0
    assert t.run.function == ERESUME
    assert t.run.exception_vector == 14
    assert t.run.exception_error_code == 0x8007
    assert t.run.exception_addr == ds
    t.clear_exception()

    # EMODPE from TCS #2.
    t.run.tcs = t.base + PAGE_SIZE
    assert t.emodpe(ds, SGX_SECINFO_R | SGX_SECINFO_W) == 0
    expect_eexit_clean(t)

    # Resume TCS #1 at the faulting access.
    t.run.tcs = t.base
    assert t.eresume() == 0
    expect_eexit_clean(t)

    ret, value = t.get_from_addr(ds)
    assert ret == 0
    assert value == MAGIC2
    assert t.run.function == EEXIT
    assert t.run.user_data == 0
    assert t.exception() == (0, 0, 0)
    # The PTE stayed RW throughout.
    assert [v.perms for v in t.p.vmas() if v.start <= ds < v.end] == ["rw-s"]


# 10 -----------------------------------------------------------------------------------
def test_augment(key):
    t = setup_test_encl(key)
    if not t.encl.cpu.sgx2:
        pytest.skip("SGX2 not supported")
    total_size = t.total_size
    assert total_size + PAGE_SIZE < t.size

    # Any permissions over a page no enclave page backs.
    addr = t.p.mmap(t.base + total_size, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                    MAP_SHARED | MAP_FIXED, t.fd, 0)
    assert addr == t.base + total_size
    t.clear_exception()

    # #PF -> EAUG -> retry -> #PF(SGX): the page is PENDING.
    assert t.put_to_addr(addr, MAGIC) == 0
    assert t.run.function == ERESUME
    assert t.run.exception_vector == 14
    assert t.run.exception_addr == addr
    if t.run.exception_error_code == 0x6:
        pytest.skip("Kernel does not support adding pages to initialized enclave")
    assert t.run.exception_error_code == 0x8007
    t.clear_exception()

    # EACCEPT from TCS #2.
    t.run.tcs = t.base + PAGE_SIZE
    ret, eret = t.eaccept(t.base + total_size,
                          SGX_SECINFO_R | SGX_SECINFO_W | SGX_SECINFO_REG | SGX_SECINFO_PENDING)
    assert ret == 0
    expect_eexit_clean(t)
    assert eret == 0

    t.run.tcs = t.base
    assert t.eresume() == 0
    expect_eexit_clean(t)

    ret, value = t.get_from_addr(addr)
    assert ret == 0
    assert value == MAGIC
    expect_eexit_clean(t)
    assert t.p.munmap(addr, PAGE_SIZE) == 0
    t.p.mm.validate()


# 11 -----------------------------------------------------------------------------------
def test_augment_via_eaccept(key):
    t = setup_test_encl(key)
    if not t.encl.cpu.sgx2:
        pytest.skip("SGX2 not supported")
    total_size = t.total_size
    assert total_size + PAGE_SIZE < t.size
    addr = t.p.mmap(t.base + total_size, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                    MAP_SHARED | MAP_FIXED, t.fd, 0)
    assert addr == t.base + total_size
    t.clear_exception()

    # EACCEPT -> #PF -> EAUG -> EACCEPT again, transparently.
    ret, eret = t.eaccept(t.base + total_size,
                          SGX_SECINFO_R | SGX_SECINFO_W | SGX_SECINFO_REG | SGX_SECINFO_PENDING)
    assert ret == 0
    if t.exception() == (14, 4, t.base + total_size):
        pytest.skip("Kernel does not support adding pages to initialized enclave")
    expect_eexit_clean(t)
    assert eret == 0

    put_get_addr(t, addr)
    assert t.p.munmap(addr, PAGE_SIZE) == 0


# 12 -----------------------------------------------------------------------------------
def test_tcs_create(key):
    t = setup_test_encl(key)
    sgx2_probe(t, "MODIFY_TYPES")
    dev = t.loaded.dev
    total_size = t.total_size
    assert total_size + 3 * PAGE_SIZE < t.size

    addr = t.p.mmap(t.base + total_size, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_FIXED, t.fd, 0)
    assert addr == t.base + total_size
    t.clear_exception()
    stack_end = t.base + total_size
    tcs = t.base + total_size + PAGE_SIZE
    ssa = t.base + total_size + 2 * PAGE_SIZE
    pending = SGX_SECINFO_R | SGX_SECINFO_W | SGX_SECINFO_REG | SGX_SECINFO_PENDING

    ret, eret = t.eaccept(stack_end, pending)
    assert ret == 0
    if t.exception() == (14, 4, stack_end):
        pytest.skip("Kernel does not support adding pages to initialized enclave")
    expect_eexit_clean(t)
    assert eret == 0
    for page in (ssa, tcs):
        ret, eret = t.eaccept(page, pending)
        assert ret == 0
        expect_eexit_clean(t)
        assert eret == 0

    # Populate the TCS from inside; entry = encl_dyn_entry (stack just below the TCS).
    assert ENCL_DYN_ENTRY != 0
    assert t.init_tcs_page(tcs, total_size + 2 * PAGE_SIZE, ENCL_DYN_ENTRY) == 0
    expect_eexit_clean(t)

    _o, _l, _t, result, count = dev.modify_types(total_size + PAGE_SIZE, PAGE_SIZE,
                                                 SGX_PAGE_TYPE_TCS)
    assert result == 0
    assert count == 4096

    ret, eret = t.eaccept(tcs, SGX_SECINFO_TCS | SGX_SECINFO_MODIFIED)
    assert ret == 0
    expect_eexit_clean(t)
    assert eret == 0

    # Run a workload from the new TCS.
    t.run.tcs = tcs
    assert t.put_to_buf(MAGIC) == 0
    expect_eexit_clean(t)
    ret, value = t.get_from_buf()
    assert ret == 0
    assert value == MAGIC
    expect_eexit_clean(t)

    # Phase 2: remove the three pages, EAUG a regular page where the TCS was.
    _o, _l, _t, result, count = dev.modify_types(total_size, 3 * PAGE_SIZE,
                                                 SGX_PAGE_TYPE_TRIM)
    assert result == 0
    assert count == 3 * PAGE_SIZE

    t.run.tcs = t.base
    for page in (stack_end, tcs, ssa):
        ret, eret = t.eaccept(page, SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED)
        assert ret == 0
        expect_eexit_clean(t)
        assert eret == 0

    _o, _l, count = dev.remove_pages(total_size, 3 * PAGE_SIZE)
    assert count == 3 * PAGE_SIZE

    ret, eret = t.eaccept(tcs, pending)
    assert ret == 0
    expect_eexit_clean(t)
    assert eret == 0

    put_get_addr(t, tcs)
    assert t.p.munmap(addr, 3 * PAGE_SIZE) == 0
    t.p.mm.validate()


# 13 -----------------------------------------------------------------------------------
def test_remove_added_page_no_eaccept(key):
    t = setup_test_encl(key)
    sgx2_probe(t, "MODIFY_TYPES")
    dev = t.loaded.dev
    ds = data_start(t)
    put_get_addr(t, ds)

    _o, _l, _t, result, count = dev.modify_types(t.data_offset + PAGE_SIZE, PAGE_SIZE,
                                                 SGX_PAGE_TYPE_TRIM)
    assert result == 0
    assert count == 4096

    # Skip EACCEPT; the removal is refused.
    with pytest.raises(OSError) as exc:
        dev.remove_pages(t.data_offset + PAGE_SIZE, PAGE_SIZE)
    assert exc.value.errno == errno.EPERM
    assert dev.last[2] == 0                 # remove_ioc.count


# 14 -----------------------------------------------------------------------------------
def test_remove_added_page_invalid_access(key):
    t = setup_test_encl(key)
    sgx2_probe(t, "MODIFY_TYPES")
    ds = data_start(t)
    put_get_addr(t, ds)

    _o, _l, _t, result, count = t.loaded.dev.modify_types(t.data_offset + PAGE_SIZE,
                                                          PAGE_SIZE, SGX_PAGE_TYPE_TRIM)
    assert result == 0
    assert count == 4096

    ret, _value = t.get_from_addr(ds)
    assert ret == 0
    assert t.run.function == ERESUME
    assert t.run.exception_vector == 14
    assert t.run.exception_error_code == 0x8005
    assert t.run.exception_addr == ds


# 15 -----------------------------------------------------------------------------------
def test_remove_added_page_invalid_access_after_eaccept(key):
    t = setup_test_encl(key)
    sgx2_probe(t, "MODIFY_TYPES")
    ds = data_start(t)
    put_get_addr(t, ds)

    _o, _l, _t, result, count = t.loaded.dev.modify_types(t.data_offset + PAGE_SIZE,
                                                          PAGE_SIZE, SGX_PAGE_TYPE_TRIM)
    assert result == 0
    assert count == 4096

    ret, eret = t.eaccept(ds, SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED)
    assert ret == 0
    expect_eexit_clean(t)
    assert eret == 0

    # Skip the removal ioctl.
    ret, _value = t.get_from_addr(ds)
    assert ret == 0
    assert t.run.function == ERESUME
    assert t.run.exception_vector == 14
    assert t.run.exception_error_code == 0x8005
    assert t.run.exception_addr == ds


# 16 -----------------------------------------------------------------------------------
def test_remove_untouched_page(key):
    t = setup_test_encl(key)
    sgx2_probe(t, "MODIFY_TYPES")
    dev = t.loaded.dev
    ds = data_start(t)

    _o, _l, _t, result, count = dev.modify_types(t.data_offset + PAGE_SIZE, PAGE_SIZE,
                                                 SGX_PAGE_TYPE_TRIM)
    assert result == 0
    assert count == 4096

    ret, eret = t.eaccept(ds, SGX_SECINFO_TRIM | SGX_SECINFO_MODIFIED)
    assert ret == 0
    expect_eexit_clean(t)
    assert eret == 0

    _o, _l, count = dev.remove_pages(t.data_offset + PAGE_SIZE, PAGE_SIZE)
    assert count == 4096
    t.p.mm.validate()


# The loader's implicit checks (§6, "Implicit checks worth turning into explicit tests")

def test_setup_maps_every_segment_with_its_prot(key):
    t = setup_test_encl(key)
    lines = [ln for ln in t.p.maps().splitlines() if "/dev/sgx_enclave" in ln]
    perms = [ln.split()[1] for ln in lines]
    assert perms == ["rw-s", "r-xs", "rw-s", "rw-s"]      # TCS, text, data, heap


def test_data_pages_mprotect_up_to_rw_but_not_rwx(key):
    t = setup_test_encl(key)
    ds = data_start(t)
    assert t.p.mprotect(ds, PAGE_SIZE, PROT_READ) == 0
    assert t.p.mprotect(ds, PAGE_SIZE, PROT_READ | PROT_WRITE) == 0
    with pytest.raises(PermissionError):
        t.p.mprotect(ds, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC)


# The vDSO itself (arch/x86/entry/vdso/vsgx.S), as the selftests rely on it

def test_vdso_rejects_leaves_other_than_eenter_eresume(key):
    from vmsim.arch.x86 import vdso
    t = setup_test_encl(key)
    assert vdso.enter_enclave(t.p, t.run, function=EEXIT) == -errno.EINVAL


def test_vdso_eexit_leaves_exception_fields_alone(key):
    t = setup_test_encl(key)
    ds = data_start(t)
    assert t.put_to_addr(ds, MAGIC) == 0         # the PTE is present from here on
    assert t.p.mprotect(ds, PAGE_SIZE, PROT_READ) == 0
    assert t.put_to_addr(ds, MAGIC2) == 0
    assert t.exception() == (14, 0x7, ds)
    assert t.p.mprotect(ds, PAGE_SIZE, PROT_READ | PROT_WRITE) == 0
    assert t.eresume() == 0          # without clearing run.exception_* first
    assert t.run.function == EEXIT
    assert t.exception() == (14, 0x7, ds)


@pytest.mark.parametrize("how", ["trim", "restrict"])
def test_eenter_faults_when_the_ssa_frame_is_not_a_rw_reg_page(key, how):
    from sgx_helpers import ENCL_SSA_TCS1

    from vmsim.arch.x86.sgx.defs import EENTER
    t = setup_test_encl(key)
    dev = t.loaded.dev
    if how == "trim":
        dev.modify_types(ENCL_SSA_TCS1, PAGE_SIZE, SGX_PAGE_TYPE_TRIM)
    else:
        dev.restrict_permissions(ENCL_SSA_TCS1, PAGE_SIZE, SGX_SECINFO_R)
    ran = []
    from vmsim.arch.x86 import vdso
    assert vdso.enter_enclave(t.p, t.run, program=lambda ctx: ran.append(1)) == 0
    assert ran == []
    assert t.run.function == EENTER
    assert t.run.exception_vector == 14
