"""The emulated SGX CPU and the vDSO against their specifications, where the driver
is not the one deciding: ENCLU[EACCEPT]'s exact matching (Intel SDM Vol. 3D,
"EACCEPT—Accept Changes to an EPC Page", Operation), what CPUID leaf 0x12 reports as
settable attributes (arch/x86/kernel/cpu/sgx/driver.c sgx_drv_init(), ioctl.c
sgx_encl_init()), and the reserved bytes of struct sgx_enclave_run
(arch/x86/entry/vdso/vsgx.S).

The enclave is the kselftest's (sgx_helpers.py): EACCEPT runs as its ENCL_OP_EACCEPT,
so RAX comes back in the op struct and a fault is an AEX reported in `run` (#GP:
vector 13, error code 0).
"""

from __future__ import annotations

import errno

import pytest
from sgx_helpers import (
    ENCL_DYN_ENTRY,
    ENCL_SSA_TCS1,
    MAGIC,
    PAGE_SIZE,
    TestEnclave,
    build_test_encl,
)

import vmsim
from vmsim import MAP_FIXED, MAP_SHARED, PROT_READ, PROT_WRITE
from vmsim.arch.x86.sgx.cpu import SgxCpu
from vmsim.arch.x86.sgx.defs import EENTER, EEXIT, ERESUME
from vmsim.enclave import loader
from vmsim.enclave import signing as S

# SECINFO flags and page types (SDM Vol. 3D, SECINFO), spelled out, not imported
SI_R, SI_W, SI_X, SI_PENDING, SI_MODIFIED, SI_PR = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
PT_TCS, PT_REG, PT_TRIM = 1, 2, 4
SI_TCS, SI_REG, SI_TRIM = PT_TCS << 8, PT_REG << 8, PT_TRIM << 8
SGX_PAGE_ATTRIBUTES_MISMATCH = 19
GP = (13, 0)                        # (vector, error code) of a #GP AEX
A_INIT = 1 << 0


@pytest.fixture(scope="module")
def key():
    return S.generate_key()


def setup(key, cpu: SgxCpu | None = None) -> TestEnclave:
    p = vmsim.Kernel(sgx=cpu if cpu is not None else True).spawn(stack=True)
    return TestEnclave(p, loader.kselftest_load(p, build_test_encl(), key))


def eaccept(t: TestEnclave, addr: int, flags: int):
    """ENCL_OP_EACCEPT through TCS #1: ("rax", value) after EEXIT, or ("aex", vector,
    error code) when EACCEPT faulted."""
    ret, eret = t.eaccept(addr, flags)
    assert ret == 0
    if t.run.function == ERESUME:
        return ("aex", t.run.exception_vector, t.run.exception_error_code)
    assert t.run.function == EEXIT
    return ("rax", eret)


def rax(value):
    return ("rax", value)


def aex_gp():
    return ("aex", *GP)


def eaug_page(t: TestEnclave) -> int:
    """A hole after the image, mapped RW: EACCEPT's own page walk EAUGs it (kselftest
    augment_via_eaccept), so its EPCM is REG, R|W, PENDING."""
    addr = t.base + t.total_size
    t.p.mmap(addr, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, t.fd, 0)
    return addr


def trimmed_page(t: TestEnclave) -> int:
    """The data page after MODIFY_TYPES(TRIM): EPCM PT_TRIM, MODIFIED, R=W=X=0."""
    t.loaded.dev.modify_types(t.data_offset + PAGE_SIZE, PAGE_SIZE, PT_TRIM)
    return t.base + t.data_offset + PAGE_SIZE


def restricted_page(t: TestEnclave) -> int:
    """The data page (RW) after RESTRICT_PERMISSIONS(R): EPCM REG, R, PR."""
    t.loaded.dev.restrict_permissions(t.data_offset + PAGE_SIZE, PAGE_SIZE, SI_R)
    return t.base + t.data_offset + PAGE_SIZE


def plain_page(t: TestEnclave) -> int:
    """The data page as EADD left it: EPCM REG, R|W, nothing pending."""
    return t.base + t.data_offset + PAGE_SIZE


#: (page, SECINFO flags, outcome). Per the SDM's pseudo-code, in its order: reserved
#: SECINFO bits -> #GP; PT_REG without PR or PENDING, or with MODIFIED, and
#: PT_TCS/PT_TRIM without MODIFIED or with PR/PENDING -> #GP ("check that the
#: combination of requested PT, PENDING and MODIFIED is legal"); then PENDING,
#: MODIFIED, R, W, X and PT must equal the EPCM's (the PR bit is not compared) ->
#: else SGX_PAGE_ATTRIBUTES_MISMATCH.
EACCEPT_CASES = {
    "EAUG: REG|R|W|PENDING": (eaug_page, SI_REG | SI_R | SI_W | SI_PENDING, rax(0)),
    "EAUG: ...|PR (PR not compared)": (eaug_page, SI_REG | SI_R | SI_W | SI_PENDING | SI_PR,
                                       rax(0)),
    "EAUG: ...|MODIFIED (illegal for REG)": (
        eaug_page, SI_REG | SI_R | SI_W | SI_PENDING | SI_MODIFIED, aex_gp()),
    "EAUG: REG|R|W (neither PENDING nor PR)": (eaug_page, SI_REG | SI_R | SI_W, aex_gp()),
    "EAUG: REG|R|PENDING (W differs)": (eaug_page, SI_REG | SI_R | SI_PENDING,
                                        rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
    "EAUG: REG|R|W|X|PENDING (X differs)": (eaug_page, SI_REG | SI_R | SI_W | SI_X | SI_PENDING,
                                            rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
    "EAUG: REG|R|W|PR (PENDING differs)": (eaug_page, SI_REG | SI_R | SI_W | SI_PR,
                                           rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
    "EAUG: reserved bit 6": (eaug_page, SI_REG | SI_R | SI_W | SI_PENDING | 1 << 6, aex_gp()),
    "EAUG: reserved bit 16": (eaug_page, SI_REG | SI_R | SI_W | SI_PENDING | 1 << 16,
                              aex_gp()),
    "TRIM: TRIM|MODIFIED": (trimmed_page, SI_TRIM | SI_MODIFIED, rax(0)),
    "TRIM: TRIM|MODIFIED|R|W|X (perms differ)": (
        trimmed_page, SI_TRIM | SI_MODIFIED | SI_R | SI_W | SI_X,
        rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
    "TRIM: TRIM|MODIFIED|R (perms differ)": (trimmed_page, SI_TRIM | SI_MODIFIED | SI_R,
                                             rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
    "TRIM: TCS|MODIFIED (PT differs)": (trimmed_page, SI_TCS | SI_MODIFIED,
                                        rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
    "TRIM: ...|PENDING (illegal for TRIM)": (trimmed_page, SI_TRIM | SI_MODIFIED | SI_PENDING,
                                             aex_gp()),
    "TRIM: ...|PR (illegal for TRIM)": (trimmed_page, SI_TRIM | SI_MODIFIED | SI_PR, aex_gp()),
    "TRIM: TRIM without MODIFIED": (trimmed_page, SI_TRIM, aex_gp()),
    "PR: REG|PR|R": (restricted_page, SI_REG | SI_PR | SI_R, rax(0)),
    "PR: REG|PR|R|W (W differs)": (restricted_page, SI_REG | SI_PR | SI_R | SI_W,
                                   rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
    "PR: REG|PR (R differs)": (restricted_page, SI_REG | SI_PR,
                               rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
    "PR: REG|R|PENDING (PENDING differs)": (restricted_page, SI_REG | SI_R | SI_PENDING,
                                            rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
    "PR: ...|MODIFIED (illegal for REG)": (restricted_page, SI_REG | SI_PR | SI_R | SI_MODIFIED,
                                           aex_gp()),
    "plain: REG|PR|R|W (PR not compared)": (plain_page, SI_REG | SI_PR | SI_R | SI_W, rax(0)),
    "plain: REG|R|W|PENDING (PENDING differs)": (plain_page, SI_REG | SI_R | SI_W | SI_PENDING,
                                                 rax(SGX_PAGE_ATTRIBUTES_MISMATCH)),
}


@pytest.mark.parametrize("case", EACCEPT_CASES)
def test_eaccept_matches_the_epcm_exactly(key, case):
    """SDM Vol. 3D, ENCLU[EACCEPT] Operation (May 2018 edition, pp. 40-86/87): the
    SECINFO must be a legal request (#GP otherwise) and describe the EPCM entry
    exactly (PT, R/W/X, PENDING, MODIFIED; not PR), else RAX =
    SGX_PAGE_ATTRIBUTES_MISMATCH (19) with the page unchanged."""
    t = setup(key)
    make_page, flags, outcome = EACCEPT_CASES[case]
    addr = make_page(t)
    assert eaccept(t, addr, flags) == outcome


def test_eaccept_mismatch_leaves_the_page_pending(key):
    """SDM EACCEPT: a mismatch returns before the EPCM update, so the EAUGed page stays
    PENDING (an access is #PF 0x8007, as in kselftest augment) until the right
    EACCEPT (REG|R|W|PENDING, main.c augment_via_eaccept) clears it."""
    t = setup(key)
    addr = eaug_page(t)
    assert eaccept(t, addr, SI_REG | SI_R | SI_X | SI_PENDING) == \
        rax(SGX_PAGE_ATTRIBUTES_MISMATCH)
    assert t.put_to_addr(addr, MAGIC) == 0
    assert (t.run.function, t.run.exception_vector, t.run.exception_error_code) == \
        (ERESUME, 14, 0x8007)
    t.run.tcs = t.base + PAGE_SIZE                       # TCS #2
    t.clear_exception()
    assert eaccept(t, addr, SI_REG | SI_R | SI_W | SI_PENDING) == rax(0)
    t.run.tcs = t.base
    assert t.eresume() == 0 and t.run.function == EEXIT
    assert t.get_from_addr(addr) == (0, MAGIC)


def test_eaccept_trim_twice_mismatch(key):
    """SDM EACCEPT clears MODIFIED, so a second TRIM|MODIFIED no longer matches (19)."""
    t = setup(key)
    addr = trimmed_page(t)
    assert eaccept(t, addr, SI_TRIM | SI_MODIFIED) == rax(0)
    assert eaccept(t, addr, SI_TRIM | SI_MODIFIED) == rax(SGX_PAGE_ATTRIBUTES_MISMATCH)


@pytest.mark.parametrize("where", ["misaligned", "outside ELRANGE"])
def test_eaccept_bad_address_gp(key, where):
    """SDM EACCEPT: DS:RCX not 4 KiB aligned, or not within CR_ELRANGE: #GP(0)."""
    t = setup(key)
    addr = plain_page(t) + 8 if where == "misaligned" else t.stack
    assert eaccept(t, addr, SI_REG | SI_PR | SI_R | SI_W) == aex_gp()


def new_tcs_page(t: TestEnclave, nssa: int) -> int:
    """An EAUGed, accepted page that the enclave fills as INIT_TCS_PAGE does (with
    NSSA = nssa), then MODIFY_TYPES(TCS): EPCM PT_TCS, MODIFIED."""
    addr = eaug_page(t)
    assert eaccept(t, addr, SI_REG | SI_R | SI_W | SI_PENDING) == rax(0)
    assert t.init_tcs_page(addr, ENCL_SSA_TCS1, ENCL_DYN_ENTRY) == 0
    assert t.put_to_addr(addr + 24, nssa << 32) == 0        # CSSA 0, NSSA
    assert t.loaded.dev.modify_types(addr - t.base, PAGE_SIZE, PT_TCS)[4] == PAGE_SIZE
    return addr


@pytest.mark.parametrize("nssa,outcome", [(1, rax(0)), (0, aex_gp())])
def test_eaccept_new_tcs_checks_its_contents(key, nssa, outcome):
    """SDM EACCEPT, "for TCS pages, perform additional checks": CSSA >= NSSA (here
    NSSA = 0) is #GP(0); a TCS laid out as the kselftest's INIT_TCS_PAGE is accepted
    (tcs_create)."""
    t = setup(key)
    addr = new_tcs_page(t, nssa)
    assert eaccept(t, addr, SI_TCS | SI_MODIFIED) == outcome


# --- CPUID leaf 0x12 sub-leaf 1 ---------------------------------------------------------

def test_default_cpu_does_not_report_init_settable():
    """CPUID(0x12,1).EAX:EBX lists the SECS.ATTRIBUTES software may set with ECREATE;
    INIT is set by EINIT only, so it is not among them and sgx_drv_init()'s
    sgx_attributes_reserved_mask (~CPUID | SGX_ATTR_RESERVED_MASK) covers it."""
    cpu = SgxCpu()
    assert not cpu.attributes & A_INIT
    assert cpu.attributes_reserved_mask & A_INIT


def test_sigstruct_requiring_init_einval(key):
    """ioctl.c sgx_encl_init(): sigstruct attributes & attributes_mask &
    sgx_attributes_reserved_mask -> EINVAL, before EINIT runs; with INIT settable the
    CPU's EINIT would have refused it instead (INVALID_ATTRIBUTE -> EPERM)."""
    p = vmsim.Kernel(sgx=True).spawn(stack=True)
    image = build_test_encl()
    dev = loader.SgxDevice(p)
    base = loader.reserve_aligned(p, image.size)
    dev.create(image.secs(base))
    sig = S.build(image.measure(), attributes=image.attributes | A_INIT,
                  attributes_mask=A_INIT)
    with pytest.raises(OSError) as exc:
        dev.init(S.sign(sig, key).pack())
    assert exc.value.errno == errno.EINVAL


# --- struct sgx_enclave_run ---------------------------------------------------------------

@pytest.mark.parametrize("pos", [0, 7, 8, 215])
def test_vdso_reserved_byte_einval(key, pos):
    """vsgx.S: before ENCLU the vDSO checks run->reserved (bytes 40-255, 8 at a
    time) and returns -EINVAL if any is non-zero; the enclave is not entered, so
    run.function is left as it was."""
    t = setup(key)
    reserved = bytearray(216)
    reserved[pos] = 1
    t.run.reserved = bytes(reserved)
    t.run.function = 0x55
    assert t.put_to_buf(MAGIC) == -errno.EINVAL
    assert t.run.function == 0x55
    t.run.reserved = bytes(216)
    assert t.get_from_buf() == (0, 1)            # encl_buffer[0] still holds its 1


def test_vdso_user_data_is_not_checked(key):
    """vsgx.S: SGX_ENCLAVE_RUN_USER_DATA is "not used": any value enters the enclave."""
    t = setup(key)
    t.run.user_data = 0xFFFFFFFFFFFFFFFF
    assert t.put_to_buf(MAGIC) == 0 and t.run.function == EEXIT


def test_vdso_reserved_checked_again_on_reentry_from_the_handler(key):
    """vsgx.S: a positive return from the user handler jumps back to .Lenter_enclave,
    where the leaf and the reserved bytes are checked again: a handler that dirties
    run->reserved and asks for EENTER gets -EINVAL from the vDSO."""
    t = setup(key)
    calls = []

    def handler(rdi, rsi, rdx, rsp, r8, r9, run):
        calls.append(run.function)
        run.reserved = b"\x01" + bytes(215)
        return EENTER

    t.run.user_handler = handler
    assert t.put_to_buf(MAGIC) == -errno.EINVAL
    assert calls == [EEXIT]
