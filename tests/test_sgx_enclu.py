"""The ENCLU leaves and the AEX (vmsim/arch/x86/sgx/enclu.py) driven directly, with the
registers a CPU would hold, on enclaves the model's driver loads (the kselftest's,
sgx_helpers.py): Intel SDM Vol. 3D, "EENTER", "ERESUME", "EEXIT", "EACCEPT",
"EACCEPTCOPY", "EREPORT", "EGETKEY", "EDECCSSA", "AEX Operational Detail", "Synthetic
State on Asynchronous Enclave Exit", and the layouts of GPRSGX, EXINFO, REPORT,
TARGETINFO and KEYREQUEST.

Layout of the kselftest enclave (offsets from its base): TCS #1 0x0000 (OSSA 0x5000),
TCS #2 0x1000 (OSSA 0x6000), text 0x2000 (OENTRY), data 0x3000-0x9000 RW (the SSA
frames at 0x5000 and 0x6000 among it), heap 0x9000. Enclave code's own stores (a
KEYREQUEST, a SECINFO) are made as enclave-mode writes (enclu.enclave_write).
"""

from __future__ import annotations

import dataclasses
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.cmac import CMAC
from sgx_helpers import ENCL_ENTRY, PAGE_SIZE, build_test_encl

import vmsim
from vmsim import MAP_FIXED, MAP_SHARED, PROT_READ, PROT_WRITE
from vmsim.arch.x86.ptrace import PtRegs
from vmsim.arch.x86.sgx.cpu import EnclsFault, SgxCpu
from vmsim.arch.x86.sgx.enclu import (
    FXSAVE_INIT,
    EnclaveMode,
    MmWalk,
    aex,
    enclave_read,
    enclave_write,
    enclu,
    illegal_in_enclave,
)
from vmsim.enclave import loader
from vmsim.enclave import signing as S
from vmsim.enclave.segment import Segment, encode_tcs

# the architecture's numbers, spelled out (SDM), not imported
EREPORT, EGETKEY, EENTER, ERESUME, EEXIT, EACCEPT, EMODPE, EACCEPTCOPY, EDECCSSA = \
    0, 1, 2, 3, 4, 5, 6, 7, 9
UD, GP, PF = 6, 13, 14
SI_R, SI_W, SI_X, SI_PENDING = 0x1, 0x2, 0x4, 0x8
SI_REG, SI_TCS = 2 << 8, 1 << 8
MISC_EXINFO = 1
ATTR_INIT, ATTR_DEBUG, ATTR_MODE64BIT, ATTR_PROVISIONKEY, ATTR_AEXNOTIFY = 1, 2, 4, 16, 1 << 10
TCS_AEXNOTIFY = 2
REPORT_KEY, SEAL_KEY, PROVISION_KEY = 3, 4, 1
POLICY_MRENCLAVE, POLICY_MRSIGNER, POLICY_CONFIGID = 1, 2, 8
SGX_INVALID_ATTRIBUTE, SGX_PAGE_ATTRIBUTES_MISMATCH = 2, 19
SGX_INVALID_CPUSVN, SGX_INVALID_ISVSVN, SGX_INVALID_KEYNAME = 32, 64, 256
ZF, TF, IF, CF, SF = 1 << 6, 1 << 8, 1 << 9, 1 << 0, 1 << 7
#: GPRSGX (184 bytes at the end of the frame): RAX RCX RDX RBX RSP RBP RSI RDI R8-R15,
#: RFLAGS, RIP, URSP, URBP, EXITINFO, 3 reserved, AEXNOTIFY, FSBASE, GSBASE
GPRSGX = struct.Struct("<16QQQQQI3xBQQ")
GPRS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15")
SSA1 = 0x5000                      # TCS #1's OSSA
DATA = 0x3000                      # a RW data page (not an SSA frame)
AEP = 0x7F00_0000_1000             # where the host's ENCLU stands (its AEP)
OUTSIDE_RSP, OUTSIDE_RBP = 0x7FFF_FFFF_E000, 0x7FFF_FFFF_E100


@pytest.fixture(scope="module")
def key():
    return S.generate_key()


def load(key, p=None, **image_fields):
    """The kselftest enclave (image fields overridden) loaded in p (a new process)."""
    p = p if p is not None else vmsim.Kernel(sgx=True).spawn(stack=True)
    image = dataclasses.replace(build_test_encl(), **image_fields)
    return p, loader.kselftest_load(p, image, key)


def epc(p, loaded, offset):
    """The EPC page at an enclave offset (what the CPU holds, for the checks)."""
    return p.files[loaded.dev.fd].private_data.pages[(loaded.base + offset) >> 12].epc


class Processor:
    """One logical processor executing process p: its enclave-mode state and the
    registers it holds, ENCLU at AEP."""

    def __init__(self, p, loaded):
        self.p, self.base = p, loaded.base
        self.mode = EnclaveMode(p.kernel.sgx_cpu)
        self.walk = MmWalk(p)
        self.regs = PtRegs(rip=AEP, rsp=OUTSIDE_RSP, rbp=OUTSIDE_RBP, fs_base=0x1000,
                           gs_base=0x2000)

    def enclu(self, leaf: int, **regs) -> PtRegs:
        self.regs = enclu(self.mode, dataclasses.replace(self.regs, rax=leaf, **regs),
                          self.walk)
        return self.regs

    def eenter(self, tcs_offset: int = 0) -> PtRegs:
        return self.enclu(EENTER, rbx=self.base + tcs_offset, rcx=AEP, rip=AEP)

    def write(self, offset: int, data: bytes) -> None:
        enclave_write(self.mode, self.walk, self.base + offset, data)

    def read(self, offset: int, n: int) -> bytes:
        return enclave_read(self.mode, self.walk, self.base + offset, n)


def gp(fn, *args, **kw) -> EnclsFault:
    with pytest.raises(EnclsFault) as exc:
        fn(*args, **kw)
    assert exc.value.trapnr == GP, exc.value
    return exc.value


# --- EENTER, EEXIT ---------------------------------------------------------------------

def test_eenter_and_eexit_registers(key):
    """EENTER: RAX = CSSA, RCX = the address after ENCLU, RIP = base + OENTRY, FS/GS =
    base + OFSBASE/OGSBASE (0 here), the TCS busy with its AEP; EEXIT: RIP = RBX, RCX =
    the AEP, FS/GS back, the TCS available."""
    p, loaded = load(key)
    cpu = Processor(p, loaded)
    regs = cpu.eenter()
    b = loaded.base
    assert (regs.rax, regs.rbx, regs.rcx, regs.rip) == (0, b, AEP + 3, b + ENCL_ENTRY)
    assert (regs.fs_base, regs.gs_base, regs.rsp) == (b, b, OUTSIDE_RSP)
    tcs = epc(p, loaded, 0)
    assert struct.unpack_from("<Q", tcs.data, 0)[0] == 1              # STATE: active
    assert struct.unpack_from("<Q", tcs.data, 40)[0] == AEP           # TCS.AEP
    gprsgx = bytes(epc(p, loaded, SSA1).data[PAGE_SIZE - 184:])
    assert GPRSGX.unpack(gprsgx)[18:20] == (OUTSIDE_RSP, OUTSIDE_RBP)  # URSP, URBP
    regs = cpu.enclu(EEXIT, rbx=AEP + 3, rip=b + 0x2100, rsp=b + 0x7F00)
    assert (regs.rip, regs.rcx, regs.rsp) == (AEP + 3, AEP, b + 0x7F00)
    assert (regs.fs_base, regs.gs_base) == (0x1000, 0x2000)
    assert not cpu.mode.active
    assert struct.unpack_from("<Q", tcs.data, 0)[0] == 0
    assert tcs.owner().active_threads == 0


def test_eenter_of_a_busy_tcs_is_gp(key):
    """SDM EENTER: "IF (DS:RBX.STATE = ACTIVE) THEN #GP(0)" — a second logical
    processor cannot enter the TCS another one executes, but can enter the other TCS."""
    p, loaded = load(key)
    Processor(p, loaded).eenter()
    second = Processor(p, loaded)
    assert "busy" in gp(second.eenter).why
    assert not second.mode.active
    assert second.eenter(PAGE_SIZE).rax == 0                          # TCS #2


def test_enclu_leaf_and_mode_checks(key):
    """ENCLU: #GP(0) for an unknown leaf, for EENTER/ERESUME in enclave mode and for the
    other leaves outside it; the SGX2 leaves need SGX2."""
    p, loaded = load(key)
    cpu = Processor(p, loaded)
    gp(cpu.enclu, EEXIT, rbx=AEP)
    gp(cpu.enclu, 42)
    cpu.eenter()
    gp(cpu.enclu, EENTER, rbx=loaded.base + PAGE_SIZE, rcx=AEP)
    p1, loaded1 = load(key, vmsim.Kernel(sgx=SgxCpu(sgx2=False)).spawn(stack=True))
    sgx1 = Processor(p1, loaded1)
    sgx1.eenter()
    gp(sgx1.enclu, EACCEPT, rbx=loaded1.base + DATA, rcx=loaded1.base + DATA + PAGE_SIZE)


def test_cssa_equal_to_nssa_is_gp(key):
    """SDM EENTER: CSSA >= NSSA is #GP(0): after an AEX (CSSA 1 = NSSA) the thread can
    only be resumed, not entered again."""
    p, loaded = load(key)
    cpu = Processor(p, loaded)
    cpu.eenter()
    aex(cpu.mode, cpu.regs, 14, 0x8007, loaded.base + 0x9000)
    assert struct.unpack_from("<II", epc(p, loaded, 0).data, 24) == (1, 1)
    assert "CSSA" in gp(cpu.eenter).why


# --- AEX, ERESUME ----------------------------------------------------------------------

INTERRUPTED = dict(rax=0x1111, rcx=0x2222, rdx=0x3333, rbx=0x4444, rsp=0x5555, rbp=0x6666,
                   rsi=0x7777, rdi=0x8888, r8=8, r9=9, r10=10, r11=11, r12=12, r13=13,
                   r14=14, r15=15, eflags=IF | CF | SF | TF | 0x2)


def interrupted(cpu: Processor, loaded) -> PtRegs:
    """Registers of enclave code at an instruction of the text page."""
    fx = bytearray(FXSAVE_INIT)
    fx[160:176] = bytes(range(16))                  # XMM0
    return dataclasses.replace(cpu.regs, rip=loaded.base + 0x2040,
                               fs_base=loaded.base + 0x7000, gs_base=loaded.base + 0x7800,
                               fxsave=bytes(fx), **INTERRUPTED)


def test_aex_saves_the_registers_exitinfo_and_exinfo(key):
    """AEX on a #PF (error code 0x8007) with MISCSELECT.EXINFO: GPRSGX holds the
    interrupted registers (RFLAGS without TF), RIP, URSP/URBP from EENTER, FS/GS bases,
    EXITINFO = VALID | EXIT_TYPE 3 | vector 14; EXINFO (just below) the address and the
    error code; the XSAVE area the FXSAVE image and XSTATE_BV = x87|SSE; CSSA 1. The
    synthetic state: RAX = ERESUME, RBX = the TCS, RCX = RIP = the AEP, RSP/RBP the
    outside ones, the rest 0, the outside FS/GS, x87/SSE at init; CR2 page aligned."""
    p, loaded = load(key, miscselect=MISC_EXINFO)
    cpu = Processor(p, loaded)
    cpu.eenter()
    regs = interrupted(cpu, loaded)
    fault_addr = loaded.base + 0x9123
    left = aex(cpu.mode, regs, PF, 0x8007, fault_addr)
    frame = bytes(epc(p, loaded, SSA1).data)
    saved = dict(zip((*GPRS, "rflags", "rip", "ursp", "urbp", "exitinfo", "aexnotify",
                      "fsbase", "gsbase"), GPRSGX.unpack(frame[PAGE_SIZE - 184:]), strict=True))
    assert {r: saved[r] for r in GPRS} == {r: INTERRUPTED[r] for r in GPRS}
    assert saved["rflags"] == IF | CF | SF | 0x2                         # TF cleared
    assert (saved["rip"], saved["ursp"], saved["urbp"]) == \
        (loaded.base + 0x2040, OUTSIDE_RSP, OUTSIDE_RBP)
    assert (saved["fsbase"], saved["gsbase"]) == (loaded.base + 0x7000, loaded.base + 0x7800)
    assert saved["exitinfo"] == 1 << 31 | 3 << 8 | 14
    assert struct.unpack_from("<QI4x", frame, PAGE_SIZE - 184 - 16) == (fault_addr, 0x8007)
    assert frame[:512] == regs.fxsave
    assert struct.unpack_from("<QQQ", frame, 512) == (3, 0, 0)      # XSTATE_BV, XCOMP_BV
    assert struct.unpack_from("<II", epc(p, loaded, 0).data, 24) == (1, 1)
    out = left.regs
    assert (out.rax, out.rbx, out.rcx, out.rip) == (ERESUME, loaded.base, AEP, AEP)
    assert (out.rsp, out.rbp, out.fs_base, out.gs_base) == (OUTSIDE_RSP, OUTSIDE_RBP,
                                                             0x1000, 0x2000)
    assert [getattr(out, r) for r in ("rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
                                      "r13", "r14", "r15")] == [0] * 11
    assert out.eflags == IF | 0x2 and out.fxsave == FXSAVE_INIT
    assert (left.vector, left.error_code, left.cr2) == (PF, 0x8007, loaded.base + 0x9000)
    assert not cpu.mode.active and tcs_state(p, loaded) == 0


def tcs_state(p, loaded, offset=0):
    return struct.unpack_from("<Q", epc(p, loaded, offset).data, 0)[0]


def test_eresume_restores_what_the_aex_saved(key):
    """ERESUME (RBX = the TCS, RCX = the AEP): the registers, RIP, RFLAGS' status bits,
    FS/GS bases and the FXSAVE image come back from SSA[CSSA - 1]; CSSA goes back to 0;
    the thread is in enclave mode again, its TCS busy."""
    p, loaded = load(key, miscselect=MISC_EXINFO)
    cpu = Processor(p, loaded)
    cpu.eenter()
    regs = interrupted(cpu, loaded)
    cpu.regs = aex(cpu.mode, regs, PF, 0x8007, loaded.base + 0x9123).regs
    back = cpu.enclu(ERESUME, rbx=loaded.base, rcx=AEP, rip=AEP)
    assert {r: getattr(back, r) for r in GPRS} == {r: INTERRUPTED[r] for r in GPRS}
    assert (back.rip, back.fs_base, back.gs_base) == (regs.rip, regs.fs_base, regs.gs_base)
    assert back.eflags == IF | CF | SF | 0x2 and back.fxsave == regs.fxsave
    assert struct.unpack_from("<II", epc(p, loaded, 0).data, 24) == (0, 1)
    assert cpu.mode.active and tcs_state(p, loaded) == 1


def test_eresume_without_a_saved_frame_is_gp(key):
    p, loaded = load(key)
    assert "CSSA = 0" in gp(Processor(p, loaded).enclu, ERESUME, rbx=loaded.base, rcx=AEP).why


def test_exitinfo_without_exinfo(key):
    """MISCSELECT.EXINFO clear: a #PF is not reported inside the enclave (EXITINFO 0,
    no EXINFO); a #UD always is (VALID, type 3, vector 6), a #BP as a software
    exception (type 6), an interrupt never."""
    p, loaded = load(key)
    for vector, exitinfo in ((PF, 0), (UD, 1 << 31 | 3 << 8 | 6), (3, 1 << 31 | 6 << 8 | 3),
                             (None, 0)):
        cpu = Processor(p, loaded)
        cpu.eenter()
        cpu.write(SSA1 + PAGE_SIZE - 184 - 16, b"\xee" * 16)     # what EXINFO would cover
        left = aex(cpu.mode, cpu.regs, vector, 0x6 if vector == PF else 0,
                   loaded.base + 0x9000)
        frame = bytes(epc(p, loaded, SSA1).data)
        assert GPRSGX.unpack(frame[PAGE_SIZE - 184:])[20] == exitinfo
        assert frame[PAGE_SIZE - 200:PAGE_SIZE - 184] == b"\xee" * 16
        cpu.regs = left.regs
        cpu.enclu(ERESUME, rbx=loaded.base, rcx=AEP, rip=AEP)
        cpu.enclu(EEXIT, rbx=AEP + 3)


# --- EACCEPT, EACCEPTCOPY (SGX2) ---------------------------------------------------------

def eaug_hole(p, loaded) -> int:
    """The page after the image, mapped RW from the device: a walk EAUGs it (REG, RW,
    PENDING)."""
    addr = loaded.base + 0xA000
    p.mmap(addr, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, loaded.dev.fd, 0)
    return addr


def secinfo(flags: int) -> bytes:
    return struct.pack("<Q", flags) + bytes(56)


def test_eaccept_reads_secinfo_and_answers_in_rax(key):
    """EACCEPT with the SECINFO at RBX: REG|R|X|PENDING on an EAUGed (RW) page is
    SGX_PAGE_ATTRIBUTES_MISMATCH with ZF set and the page still PENDING; REG|R|W|PENDING
    accepts it (RAX 0, ZF clear), after which enclave code may write it."""
    p, loaded = load(key)
    page = eaug_hole(p, loaded)
    cpu = Processor(p, loaded)
    cpu.eenter()
    cpu.write(DATA, secinfo(SI_REG | SI_R | SI_X | SI_PENDING))
    regs = cpu.enclu(EACCEPT, rbx=loaded.base + DATA, rcx=page)
    assert (regs.rax, regs.eflags & ZF) == (SGX_PAGE_ATTRIBUTES_MISMATCH, ZF)
    assert epc(p, loaded, 0xA000).pending
    with pytest.raises(EnclsFault) as exc:
        enclave_write(cpu.mode, cpu.walk, page, b"x")
    assert (exc.value.trapnr, exc.value.error_code) == (PF, 0x8007)
    cpu.write(DATA, secinfo(SI_REG | SI_R | SI_W | SI_PENDING))
    regs = cpu.enclu(EACCEPT, rbx=loaded.base + DATA, rcx=page)
    assert (regs.rax, regs.eflags & ZF) == (0, 0)
    enclave_write(cpu.mode, cpu.walk, page, b"accepted")
    assert enclave_read(cpu.mode, cpu.walk, page, 8) == b"accepted"


def test_eaccept_operand_checks(key):
    """SECINFO not 64-byte aligned, or its reserved bytes set: #GP(0); SECINFO on a TCS
    page (not a readable REG page): #PF with the SGX bit."""
    p, loaded = load(key)
    page = eaug_hole(p, loaded)
    cpu = Processor(p, loaded)
    cpu.eenter()
    gp(cpu.enclu, EACCEPT, rbx=loaded.base + DATA + 8, rcx=page)
    cpu.write(DATA, secinfo(SI_REG | SI_R | SI_W | SI_PENDING)[:8] + b"\x01" + bytes(55))
    gp(cpu.enclu, EACCEPT, rbx=loaded.base + DATA, rcx=page)
    with pytest.raises(EnclsFault) as exc:
        cpu.enclu(EACCEPT, rbx=loaded.base + PAGE_SIZE, rcx=page)
    assert (exc.value.trapnr, exc.value.error_code, exc.value.addr) == \
        (PF, 0x8005, loaded.base + PAGE_SIZE)


def test_eacceptcopy(key):
    """EACCEPTCOPY: the pending page at RCX gets the contents of the EPC page at RDX and
    the SECINFO's permissions (here R: a write is then #PF 0x8007); a second one finds
    the page no longer pending: SGX_PAGE_ATTRIBUTES_MISMATCH."""
    p, loaded = load(key)
    page = eaug_hole(p, loaded)
    cpu = Processor(p, loaded)
    cpu.eenter()
    cpu.write(DATA + 0x800, b"copied contents")
    cpu.write(DATA + 0x40, secinfo(SI_REG | SI_R))
    regs = cpu.enclu(EACCEPTCOPY, rbx=loaded.base + DATA + 0x40, rcx=page,
                     rdx=loaded.base + DATA)
    assert regs.rax == 0
    assert enclave_read(cpu.mode, cpu.walk, page + 0x800, 15) == b"copied contents"
    assert epc(p, loaded, 0xA000).perms() == SI_R
    with pytest.raises(EnclsFault) as exc:
        enclave_write(cpu.mode, cpu.walk, page, b"x")
    assert exc.value.error_code == 0x8007
    regs = cpu.enclu(EACCEPTCOPY, rbx=loaded.base + DATA + 0x40, rcx=page,
                     rdx=loaded.base + DATA)
    assert (regs.rax, regs.eflags & ZF) == (SGX_PAGE_ATTRIBUTES_MISMATCH, ZF)


def test_emodpe_extends_what_emodpr_restricted(key):
    """RESTRICT_PERMISSIONS(R) (EMODPR) on a data page, EACCEPT(REG|PR|R): a write is
    #PF 0x8007; EMODPE with SECINFO R|W gives W back (RAX untouched), and the write
    goes through. EMODPE with W but not R is #GP(0)."""
    p, loaded = load(key)
    loaded.dev.restrict_permissions(DATA + PAGE_SIZE, PAGE_SIZE, SI_R)
    page = loaded.base + DATA + PAGE_SIZE
    cpu = Processor(p, loaded)
    cpu.eenter()
    cpu.write(DATA, secinfo(SI_REG | 0x20 | SI_R))                     # PR
    assert cpu.enclu(EACCEPT, rbx=loaded.base + DATA, rcx=page).rax == 0
    with pytest.raises(EnclsFault) as exc:
        enclave_write(cpu.mode, cpu.walk, page, b"x")
    assert exc.value.error_code == 0x8007
    cpu.write(DATA, secinfo(SI_W))
    gp(cpu.enclu, EMODPE, rbx=loaded.base + DATA, rcx=page)
    cpu.write(DATA, secinfo(SI_R | SI_W))
    regs = cpu.enclu(EMODPE, rbx=loaded.base + DATA, rcx=page, rip=loaded.base + 0x2050)
    assert (regs.rax, regs.rip) == (EMODPE, loaded.base + 0x2053)
    enclave_write(cpu.mode, cpu.walk, page, b"writable again")
    assert enclave_read(cpu.mode, cpu.walk, page, 14) == b"writable again"


# --- EREPORT, EGETKEY --------------------------------------------------------------------

TI, RD, OUT, KR, KEY = DATA, DATA + 0x200, DATA + 0x400, DATA + 0x800, DATA + 0xA00
REPORT_BODY = struct.Struct("<16sI12x16sQQ32s32x32s32x64sHHH42x16s64s")


def ereport(cpu: Processor, targetinfo: bytes, reportdata: bytes) -> bytes:
    cpu.write(TI, targetinfo)
    cpu.write(RD, reportdata)
    cpu.enclu(EREPORT, rbx=cpu.base + TI, rcx=cpu.base + RD, rdx=cpu.base + OUT)
    return cpu.read(OUT, 432)


def targetinfo_of(report: bytes) -> bytes:
    """The TARGETINFO of the enclave a REPORT describes (what the SDK's
    sgx_self_target builds): MEASUREMENT, ATTRIBUTES, CONFIGSVN, MISCSELECT, CONFIGID."""
    (_cpusvn, misc, _ext, flags, xfrm, mrenclave, _mrsigner, configid, _prodid, _svn,
     configsvn, _family, _data) = REPORT_BODY.unpack(report[:384])
    return struct.pack("<32sQQ2xHI8x64s384x", mrenclave, flags, xfrm, configsvn, misc,
                       configid)


def keyrequest(keyname: int, policy: int = 0, isvsvn: int = 0, cpusvn: bytes = bytes(16),
               keyid: bytes = bytes(32), attribute_mask: int = 0) -> bytes:
    return struct.pack("<HHH2x16sQQ32sIH434x", keyname, policy, isvsvn, cpusvn,
                       attribute_mask, 0, keyid, 0, 0)


def egetkey(cpu: Processor, request: bytes) -> tuple[int, bytes]:
    cpu.write(KR, request)
    regs = cpu.enclu(EGETKEY, rbx=cpu.base + KR, rcx=cpu.base + KEY)
    return regs.rax, cpu.read(KEY, 16)


def cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


@pytest.fixture
def two_enclaves(key):
    """Enclaves A and B of one signer (one key) in one process: B's extra heap page is
    another EADD, so another MRENCLAVE."""
    p, a = load(key)
    p, b = load(key, p, segments=build_test_encl(heap_pages=2).segments)
    return p, a, b


def test_ereport_verifies_with_the_targets_report_key(two_enclaves):
    """Local attestation: B learns its TARGETINFO from a report to itself; A's EREPORT
    for B carries A's identity and REPORTDATA; B's EGETKEY(REPORT_KEY, KEYID of the
    report) gives the key whose CMAC over the first 384 bytes is the report's MAC.
    A's own report key does not verify it."""
    p, a, b = two_enclaves
    cpu_b, cpu_a = Processor(p, b), Processor(p, a)
    cpu_b.eenter()
    cpu_a.eenter()
    b_target = targetinfo_of(ereport(cpu_b, bytes(512), bytes(64)))
    report = ereport(cpu_a, b_target, b"hello B".ljust(64, b"\0"))
    body, keyid, mac = report[:384], report[384:416], report[416:]
    fields = REPORT_BODY.unpack(body)
    secs_a = epc(p, a, 0).owner()
    assert fields[5] == secs_a.mrenclave and fields[6] == secs_a.mrsigner
    assert (fields[3], fields[4], fields[1]) == (ATTR_INIT | ATTR_MODE64BIT, 3, 0)
    assert fields[12] == b"hello B".ljust(64, b"\0")
    assert fields[0] == p.kernel.sgx_cpu.cpusvn
    rax, b_key = egetkey(cpu_b, keyrequest(REPORT_KEY, keyid=keyid))
    assert rax == 0 and cmac(b_key, body) == mac
    rax, a_key = egetkey(cpu_a, keyrequest(REPORT_KEY, keyid=keyid))
    assert rax == 0 and cmac(a_key, body) != mac
    gp(cpu_a.enclu, EREPORT, rbx=a.base + TI + 0x100, rcx=a.base + RD, rdx=a.base + OUT)
    for out, error_code in ((a.base + 0x2000, 0x6),         # text: the page tables refuse
                            (a.base + PAGE_SIZE, 0x8007)):  # a TCS: the EPCM refuses
        with pytest.raises(EnclsFault) as exc:
            cpu_a.enclu(EREPORT, rbx=a.base + TI, rcx=a.base + RD, rdx=out)
        assert (exc.value.trapnr, exc.value.error_code, exc.value.addr) == (PF, error_code, out)


def test_seal_key_policies(two_enclaves):
    """EGETKEY(SEAL_KEY): under KEYPOLICY.MRSIGNER enclaves of one signer get the same
    key; under MRENCLAVE each its own."""
    p, a, b = two_enclaves
    cpu_a, cpu_b = Processor(p, a), Processor(p, b)
    cpu_a.eenter()
    cpu_b.eenter()
    by_signer = [egetkey(c, keyrequest(SEAL_KEY, POLICY_MRSIGNER)) for c in (cpu_a, cpu_b)]
    assert by_signer[0] == by_signer[1] and by_signer[0][0] == 0
    by_enclave = [egetkey(c, keyrequest(SEAL_KEY, POLICY_MRENCLAVE)) for c in (cpu_a, cpu_b)]
    assert by_enclave[0][0] == by_enclave[1][0] == 0
    assert by_enclave[0][1] != by_enclave[1][1]
    assert by_enclave[0][1] != by_signer[0][1]


def test_a_sealed_blob_opens_on_the_same_cpu_only(key):
    """Keys come from the CPU's fused secret: the same enclave on another machine with
    the same SgxCpu opens what it sealed; a CPU with another secret cannot."""
    def seal_key(cpu: SgxCpu) -> bytes:
        p, loaded = load(key, vmsim.Kernel(sgx=cpu).spawn(stack=True))
        proc = Processor(p, loaded)
        proc.eenter()
        rax, k = egetkey(proc, keyrequest(SEAL_KEY, POLICY_MRENCLAVE))
        assert rax == 0
        return k

    blob = AESGCM(seal_key(SgxCpu())).encrypt(bytes(12), b"secret", None)
    assert AESGCM(seal_key(SgxCpu())).decrypt(bytes(12), blob, None) == b"secret"
    assert seal_key(SgxCpu(fuse_key=bytes(16))) != seal_key(SgxCpu())


def test_egetkey_refusals(key):
    """EGETKEY's error codes (RAX, ZF set): ISVSVN above the enclave's, a CPUSVN
    component above the CPU's, an unknown KEYNAME, the PROVISION key without
    ATTRIBUTES.PROVISIONKEY; a lower ISVSVN is a valid request for another key;
    #GP(0) for a reserved KEYPOLICY bit and for a KSS policy without KSS."""
    p, loaded = load(key, isvsvn=2)
    cpu = Processor(p, loaded)
    cpu.eenter()
    current = p.kernel.sgx_cpu.cpusvn
    above = bytes([current[0] + 1]) + current[1:]
    for request, rax in ((keyrequest(SEAL_KEY, POLICY_MRSIGNER, isvsvn=3), SGX_INVALID_ISVSVN),
                         (keyrequest(SEAL_KEY, POLICY_MRSIGNER, cpusvn=above),
                          SGX_INVALID_CPUSVN),
                         (keyrequest(7), SGX_INVALID_KEYNAME),
                         (keyrequest(PROVISION_KEY), SGX_INVALID_ATTRIBUTE)):
        cpu.write(KR, request)
        regs = cpu.enclu(EGETKEY, rbx=cpu.base + KR, rcx=cpu.base + KEY)
        assert (regs.rax, regs.eflags & ZF) == (rax, ZF)
    old = egetkey(cpu, keyrequest(SEAL_KEY, POLICY_MRSIGNER, isvsvn=1, cpusvn=current))
    new = egetkey(cpu, keyrequest(SEAL_KEY, POLICY_MRSIGNER, isvsvn=2, cpusvn=current))
    assert old[0] == new[0] == 0 and old[1] != new[1]
    for request in (keyrequest(SEAL_KEY, 1 << 6), keyrequest(SEAL_KEY, POLICY_CONFIGID)):
        cpu.write(KR, request)
        gp(cpu.enclu, EGETKEY, rbx=cpu.base + KR, rcx=cpu.base + KEY)


# --- AEX-Notify, EDECCSSA ------------------------------------------------------------------

def aexnotify_image_fields(tcs_flags: int) -> dict:
    """The kselftest enclave with ATTRIBUTES.AEXNOTIFY and TCS #1 of two SSA frames
    (0x5000, 0x6000) whose FLAGS are tcs_flags."""
    segments = build_test_encl().segments
    tcs = encode_tcs(flags=tcs_flags, ossa=SSA1, nssa=2, oentry=ENCL_ENTRY) + \
        encode_tcs(ossa=0x7000, nssa=1, oentry=ENCL_ENTRY)
    segments[0] = Segment(0, tcs, SI_TCS, PROT_READ | PROT_WRITE, True, "tcs")
    return dict(segments=segments, attributes=ATTR_MODE64BIT | ATTR_AEXNOTIFY)


def test_aexnotify_needs_the_tcs_flag(key):
    """EENTER: ATTRIBUTES.AEXNOTIFY differing from TCS.FLAGS.AEXNOTIFY is #GP(0)."""
    p, loaded = load(key, **aexnotify_image_fields(0))
    assert "AEXNOTIFY" in gp(Processor(p, loaded).eenter).why


def test_aexnotify_eresume_enters_at_oentry_and_edeccssa_pops_the_frame(key):
    """With AEX-Notify on (ATTRIBUTES, TCS.FLAGS, and bit 0 of the interrupted frame's
    GPRSGX.AEXNOTIFY, which enclave code sets) ERESUME does not resume: it enters at
    OENTRY with RAX = CSSA = 1, the interrupted frame kept; EDECCSSA then makes it the
    current frame again (CSSA 0), and the next AEX saves into it."""
    p, loaded = load(key, **aexnotify_image_fields(TCS_AEXNOTIFY))
    cpu = Processor(p, loaded)
    cpu.eenter()
    cpu.write(SSA1 + PAGE_SIZE - 184 + 167, b"\x01")               # GPRSGX.AEXNOTIFY
    regs = interrupted(cpu, loaded)
    cpu.regs = aex(cpu.mode, regs, PF, 0x8007, loaded.base + 0x9000).regs
    entered = cpu.enclu(ERESUME, rbx=loaded.base, rcx=AEP, rip=AEP)
    assert (entered.rax, entered.rip, entered.rcx) == (1, loaded.base + ENCL_ENTRY, AEP + 3)
    assert struct.unpack_from("<II", epc(p, loaded, 0).data, 24) == (1, 2)
    assert cpu.mode.ssa == loaded.base + SSA1 + PAGE_SIZE
    saved = GPRSGX.unpack(bytes(epc(p, loaded, SSA1).data[PAGE_SIZE - 184:]))
    assert saved[17] == regs.rip                                      # frame 0 kept
    cpu.enclu(EDECCSSA, rip=loaded.base + 0x2080)
    assert struct.unpack_from("<II", epc(p, loaded, 0).data, 24) == (0, 2)
    assert cpu.regs.rip == loaded.base + 0x2083 and cpu.mode.ssa == loaded.base + SSA1
    gp(cpu.enclu, EDECCSSA)
    aex(cpu.mode, dataclasses.replace(regs, rip=loaded.base + 0x2090), UD)
    assert GPRSGX.unpack(bytes(epc(p, loaded, SSA1).data[PAGE_SIZE - 184:]))[17] == \
        loaded.base + 0x2090


# --- instructions enclave mode refuses -----------------------------------------------------

@pytest.mark.parametrize("code,mnemonic", [
    (b"\x0f\x05", "SYSCALL"), (b"\x0f\x34", "SYSENTER"), (b"\x0f\xa2", "CPUID"),
    (b"\xcd\x80", "INT n"), (b"\xec", "IN"), (b"\x66\xef", "OUT"), (b"\xf3\x6c", "INS"),
    (b"\x0f\x01\xc1", "VMCALL"), (b"\x0f\x01\x00", "SGDT"), (b"\x48\xff\x18", "CALL far"),
    (b"\x8e\xd8", "MOV to Sreg"), (b"\x0f\xa9", "POP GS"), (b"\x48\xcf", "IRET"),
    (b"\x0f\x00\xc8", "STR"), (b"\x90", None), (b"\xff\xd0", None), (b"\x0f\x31", None),
    (b"\x0f\xae\xe8", None), (b"\xcc", None), (b"\x0f\x01\xd7", None),
])
def test_illegal_instructions_in_enclave_mode(code, mnemonic):
    """SDM "Illegal Instructions Inside an Enclave": #UD for the VM-exiting ones, I/O,
    and privilege-level changes; RDTSC is legal with SGX2, INT3 (a #BP) and ENCLU are
    legal, `call rax` is a near call."""
    entry = illegal_in_enclave(code, sgx2=True)
    assert (entry.mnemonic if entry else None) == mnemonic
    assert entry is None or entry.vector == UD


def test_rdtsc_is_illegal_without_sgx2():
    assert illegal_in_enclave(b"\x0f\x31", sgx2=False).mnemonic == "RDTSC"
    assert illegal_in_enclave(b"\x0f\x01\xf9", sgx2=False).mnemonic == "RDTSCP"
