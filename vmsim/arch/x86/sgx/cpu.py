"""An emulated SGX CPU: CPUID, the EPC with its EPCM, and the ENCLS leaves the driver
uses (ECREATE, EADD, EEXTEND, EINIT, EPA, EAUG, EMODPR, EMODT, EREMOVE, EDBGRD, EDBGWR;
the paging leaves EBLOCK, ETRACK, EWB, ELDB/ELDU are paging.py). Semantics from the
Intel SDM as summarised in spec/sgx-driver.md §3.

A leaf either succeeds (returns 0), returns an SGX error code (RAX with ZF=1), or
faults: `EnclsFault(trapnr)` (#GP = 13, #PF = 14). The driver turns these into errnos
as arch/x86/kernel/cpu/sgx/encls.h and ioctl.c do.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Protocol

from ....mm.page_alloc import Page, alloc_page, copy_page
from ....uapi import PAGE_SIZE
from .defs import (
    EXINFO_FORMAT,
    GPRSGX_FORMAT,
    SECS_FORMAT,
    SGX_ATTR_ASYNC_EXIT_NOTIFY,
    SGX_ATTR_DEBUG,
    SGX_ATTR_EINITTOKENKEY,
    SGX_ATTR_INIT,
    SGX_ATTR_KSS,
    SGX_ATTR_MODE64BIT,
    SGX_ATTR_PROVISIONKEY,
    SGX_ATTR_RESERVED_MASK,
    SGX_CHILD_PRESENT,
    SGX_ENCLAVE_ACT,
    SGX_INVALID_ATTRIBUTE,
    SGX_INVALID_EINITTOKEN,
    SGX_INVALID_MEASUREMENT,
    SGX_MISC_EXINFO,
    SGX_PAGE_NOT_MODIFIABLE,
    SGX_PAGE_TYPE_REG,
    SGX_PAGE_TYPE_SECS,
    SGX_PAGE_TYPE_TCS,
    SGX_PAGE_TYPE_TRIM,
    SGX_PAGE_TYPE_VA,
    SGX_SECINFO_PAGE_TYPE_MASK,
    SGX_SECINFO_PERMISSION_MASK,
    SGX_SECINFO_R,
    SGX_SECINFO_W,
    SGX_SECINFO_X,
    TCS_FLAGS_AEXNOTIFY,
    TCS_FLAGS_DBGOPTIN,
    TCS_FORMAT,
)
from .measure import Measurement
from .sigstruct import Sigstruct, verify

#: the exception vectors a leaf raises (arch/x86/include/asm/trapnr.h)
UD = 6
GP = 13
PF = 14
VECTOR_NAMES = {UD: "#UD", GP: "#GP", PF: "#PF"}
#: reset value of IA32_SGXLEPUBKEYHASH0..3 (Intel's launch enclave key hash)
INTEL_LE_PUBKEYHASH = struct.pack("<4Q", 0xA6053E051270B7AC, 0x6CFBE8BA8B3B413D,
                                  0xC4916D99F2B3735D, 0xD4F8C05909F9BB3B)
#: end offset of each XSAVE state component in the non-compacted area, by XFRM bit
XSAVE_END = {0: 576, 1: 576, 2: 832, 3: 1088, 4: 1088, 5: 2688, 6: 2688, 7: 2688,
             9: 2696, 17: 11008, 18: 11008}
GPRSGX_SIZE = GPRSGX_FORMAT.size
EXINFO_SIZE = EXINFO_FORMAT.size
#: what a read of an EPC page outside enclave mode returns (abort-page semantics)
ABORT_PAGE = b"\xff" * PAGE_SIZE


class EnclsFault(Exception):
    """An ENCLS/ENCLU leaf, or an access in enclave mode, faulted: the exception vector
    `trapnr` (#UD, #GP, #PF), its `error_code` (a #PF's X86_PF_* bits, 0 for a #GP)
    and, for a #PF, the linear address `addr` (what CR2 would hold)."""

    def __init__(self, trapnr: int, why: str = "", error_code: int = 0, addr: int = 0):
        super().__init__(f"{VECTOR_NAMES.get(trapnr, f'vector {trapnr}')}: {why}")
        self.trapnr = trapnr
        self.why = why
        self.error_code = error_code
        self.addr = addr


@dataclass
class SgxCpu:
    """CPUID leaf 0x12 and the EPC: what the emulated processor supports.

    miscselect/attributes/xfrm: the bits ECREATE accepts (CPUID(0x12,0).EBX,
    CPUID(0x12,1).EAX:EBX and .ECX:EDX); max_enclave_size_64/_32: log2 limits
    (CPUID(0x12,0).EDX); epc_pages: the EPC size in pages (every page the driver
    takes counts: the SECS, the enclave's pages and its Version Array pages).

    `attributes` lists what software may set at ECREATE, so ATTRIBUTES.INIT (set by
    EINIT only) is never among them: sgx_drv_init()'s sgx_attributes_reserved_mask
    = ~CPUID(0x12,1) | SGX_ATTR_RESERVED_MASK then covers INIT, and a SIGSTRUCT that
    requires INIT (attributes & attributes_mask) is EINVAL at SGX_IOC_ENCLAVE_INIT.
    """

    sgx2: bool = True
    flc: bool = True
    miscselect: int = SGX_MISC_EXINFO
    attributes: int = (SGX_ATTR_DEBUG | SGX_ATTR_MODE64BIT | SGX_ATTR_PROVISIONKEY |
                       SGX_ATTR_EINITTOKENKEY | SGX_ATTR_KSS | SGX_ATTR_ASYNC_EXIT_NOTIFY)
    xfrm: int = 0x2E7           # x87 SSE AVX AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM) PKRU
    max_enclave_size_64: int = 36
    max_enclave_size_32: int = 31
    epc_pages: int = 16384      # 64 MiB
    #: the key hierarchy's inputs that belong to the package (EGETKEY, EREPORT; see
    #: enclu.py): the fused root secret, never readable (equal secrets: the same CPU,
    #: whose sealed data and reports the other can open and verify); CR_SEAL_FUSES;
    #: CR_SGXOWNEREPOCH (IA32_SGXOWNEREPOCH, the platform owner's); CR_CPUSVN, one
    #: security version byte per microcode/firmware component
    fuse_key: bytes = bytes.fromhex("766d73696d2073677820637075206b31")
    seal_fuses: bytes = bytes.fromhex("5eb1f05e5eb1f05e5eb1f05e5eb1f05e")
    owner_epoch: bytes = bytes(16)
    cpusvn: bytes = bytes.fromhex("0d0d0203ff0300000000000000000000")

    def __post_init__(self):
        self.epc_free = self.epc_pages
        self.lepubkeyhash = INTEL_LE_PUBKEYHASH
        #: the last enclave ID ECREATE gave (SECS.EID: unique per enclave)
        self.last_eid = 0
        #: the last version EWB gave a page written out (unique per EWB: paging.py)
        self.paging_version = 0

    # --- the driver's view of CPUID (arch/x86/kernel/cpu/sgx/driver.c sgx_drv_init) ---
    @property
    def misc_reserved_mask(self) -> int:
        """~CPUID(0x12,0).EBX | GENMASK(63, 1): only EXINFO is ever allowed."""
        return (~self.miscselect & 0xFFFFFFFF) | (((1 << 64) - 1) & ~1)

    @property
    def attributes_reserved_mask(self) -> int:
        """~CPUID(0x12,1).EBX:EAX | SGX_ATTR_RESERVED_MASK (INIT included)."""
        return (~self.attributes & ((1 << 64) - 1)) | SGX_ATTR_RESERVED_MASK

    @property
    def xfrm_reserved_mask(self) -> int:
        return ~self.xfrm & ((1 << 64) - 1)

    # --- the EPC ---
    def alloc_epc_page(self) -> EpcPage | None:
        """A free EPC page, or None when none is free (__sgx_alloc_epc_page(); the
        driver's sgx_alloc_epc_page() reclaims: vmsim/drivers/sgx/main.py)."""
        if not self.epc_free:
            return None
        self.epc_free -= 1
        return EpcPage(self)

    def free_epc_page(self, page: EpcPage) -> None:
        page.valid = False
        self.epc_free += 1


class EpcPage:
    """One EPC page and its EPCM entry (SDM Table 38-27).

    Invariant: `valid` is False exactly while the page is free; `secs` is the SECS
    page of the owning enclave (None for a SECS or a VA page, which belong to no
    enclave); `addr` the enclave linear address; `data` the page's contents, a frame
    of mm/page_alloc.py (what enclave-mode accesses read and write); `bepoch` the
    epoch of its enclave when EBLOCK blocked it (paging.py); `accessed` whether a page
    walk reached it through a PTE since the reclaimer last looked (the accessed bit of
    the PTEs that map it, as one bit: sgx_encl_test_and_clear_young()).
    A non-enclave access sees abort-page semantics (cpu_page()).
    """

    __slots__ = ("cpu", "data", "valid", "r", "w", "x", "pt", "secs", "addr", "blocked",
                 "pending", "modified", "pr", "enclave", "bepoch", "accessed")

    def __init__(self, cpu: SgxCpu):
        self.cpu = cpu
        self.data = alloc_page()
        self.valid = False
        self.r = self.w = self.x = False
        self.pt = SGX_PAGE_TYPE_REG
        self.secs: EpcPage | None = None
        self.addr = 0
        self.blocked = self.pending = self.modified = self.pr = False
        self.enclave: SecsState | None = None       # for a SECS page
        self.bepoch = 0
        self.accessed = False

    def owner(self) -> SecsState:
        """The SECS state of the enclave this (valid, non-SECS) page belongs to."""
        assert self.secs is not None and self.secs.enclave is not None
        return self.secs.enclave

    def cpu_page(self) -> Page:
        """What an access outside enclave mode reads and writes: abort-page semantics,
        reads return all-ones and writes are dropped (a new frame of all-ones each
        time, which nothing else sees). Every page walk through a PTE of the page asks
        for it, and sets the PTE's accessed bit."""
        self.accessed = True
        return copy_page(ABORT_PAGE)

    def perms(self) -> int:
        return (SGX_SECINFO_R if self.r else 0) | (SGX_SECINFO_W if self.w else 0) | \
            (SGX_SECINFO_X if self.x else 0)

    def set_perms(self, perms: int) -> None:
        self.r, self.w, self.x = bool(perms & 1), bool(perms & 2), bool(perms & 4)


class LogicalProcessor(Protocol):
    """A logical processor in enclave mode (enclu.EnclaveMode), as its enclave sees it:
    the TCS it entered and the pages of the SSA frame it holds while inside."""

    tcs: EpcPage | None
    ssa_pages: tuple[EpcPage, ...]


@dataclass
class SecsState:
    """The architectural state ECREATE puts in the SECS page.

    `children`: its pages in the EPC (EREMOVE of the SECS, and EWB of it, need none);
    `eid`: SECS.EID, unique per enclave (EWB binds a page written out to it); `epoch`:
    the tracking epoch ETRACK advances; `lps`: each logical processor inside, with the
    epoch it entered in (paging.py: tracking)."""

    size: int
    base: int
    ssa_frame_size: int
    miscselect: int
    attributes: int
    xfrm: int
    measurement: Measurement
    initialized: bool = False
    mrenclave: bytes = bytes(32)
    mrsigner: bytes = bytes(32)
    isvprodid: int = 0
    isvsvn: int = 0
    config_id: bytes = bytes(64)
    config_svn: int = 0
    children: int = 0
    eid: int = 0
    epoch: int = 0
    lps: dict[LogicalProcessor, int] = field(default_factory=dict)

    @property
    def active_threads(self) -> int:
        """How many logical processors are inside the enclave."""
        return len(self.lps)

    def enter(self, lp: LogicalProcessor) -> None:
        """EENTER/ERESUME: lp is inside, in the current epoch."""
        self.lps[lp] = self.epoch

    def leave(self, lp: LogicalProcessor) -> None:
        """EEXIT/AEX: lp has left."""
        del self.lps[lp]


def xsave_size(xfrm: int) -> int:
    return max((end for bit, end in XSAVE_END.items() if xfrm & (1 << bit)), default=576)


def canonical(addr: int) -> bool:
    """A 48-bit canonical address (bits 63..47 all equal)."""
    return addr < (1 << 47) or addr >= (1 << 64) - (1 << 47)


def ecreate(cpu: SgxCpu, secs: bytes, epc: EpcPage) -> None:
    """ECREATE: validate the SECS image and start the measurement (#GP on any error)."""
    (size, base, ssa, misc, attrs, xfrm, _mre, rsv2, _mrs, rsv3, config_id, prodid, svn,
     cfgsvn) = SECS_FORMAT.unpack_from(secs)
    if attrs & SGX_ATTR_INIT:
        raise EnclsFault(GP, "ATTRIBUTES.INIT set")
    if attrs & SGX_ATTR_RESERVED_MASK or attrs & ~cpu.attributes:
        raise EnclsFault(GP, "unsupported or reserved attribute")
    if misc & ~cpu.miscselect:
        raise EnclsFault(GP, "unsupported MISCSELECT")
    mode64 = bool(attrs & SGX_ATTR_MODE64BIT)
    limit = 1 << (cpu.max_enclave_size_64 if mode64 else cpu.max_enclave_size_32)
    if size < 2 * PAGE_SIZE or size & (size - 1) or size >= limit:
        raise EnclsFault(GP, "bad SIZE")
    if base & (size - 1):
        raise EnclsFault(GP, "BASEADDR not aligned to SIZE")
    if mode64 and not (canonical(base) and canonical(base + size - 1)):
        raise EnclsFault(GP, "non-canonical ELRANGE")
    if not mode64 and base + size > 1 << 32:
        raise EnclsFault(GP, "32-bit enclave beyond 4 GiB")
    if xfrm & 3 != 3 or xfrm & ~cpu.xfrm or bool(xfrm & 8) != bool(xfrm & 16) or \
            (xfrm & 0xE0 and (xfrm & 0xE0 != 0xE0 or not xfrm & 4)):
        raise EnclsFault(GP, "illegal XFRM")
    need = xsave_size(xfrm) + GPRSGX_SIZE + (EXINFO_SIZE if misc & SGX_MISC_EXINFO else 0)
    if ssa < 1 or ssa * PAGE_SIZE < need:
        raise EnclsFault(GP, "SSAFRAMESIZE too small")
    if any(secs[24:48]) or any(rsv2) or any(rsv3) or any(secs[262:PAGE_SIZE]):
        raise EnclsFault(GP, "reserved SECS field set")
    if epc.valid:
        raise EnclsFault(PF, "EPC page in use")
    if not attrs & SGX_ATTR_KSS and (any(config_id) or cfgsvn):
        raise EnclsFault(GP, "CONFIGID without KSS")
    epc.valid, epc.pt, epc.secs = True, SGX_PAGE_TYPE_SECS, None
    epc.set_perms(0)
    cpu.last_eid += 1
    epc.enclave = SecsState(size, base, ssa, misc, attrs, xfrm, Measurement(size, ssa),
                            config_id=bytes(config_id), config_svn=cfgsvn, eid=cpu.last_eid)


def _check_secs(secs_page: EpcPage | None, initialized: bool) -> SecsState:
    if secs_page is None or not secs_page.valid or secs_page.pt != SGX_PAGE_TYPE_SECS:
        raise EnclsFault(GP, "not a SECS")
    state = secs_page.enclave
    assert state is not None            # ECREATE made it a SECS
    if state.initialized != initialized:
        raise EnclsFault(GP, "enclave initialized" if state.initialized else "not initialized")
    return state


def in_elrange(state: SecsState, linaddr: int) -> bool:
    """linaddr is inside the enclave's ELRANGE (SECS.BASEADDR, SECS.SIZE)."""
    return state.base <= linaddr < state.base + state.size


def eadd(secs_page: EpcPage | None, epc: EpcPage, linaddr: int, contents: bytes, secinfo: int) -> None:
    """EADD: copy a page into the EPC with the SECINFO's type and permissions."""
    state = _check_secs(secs_page, initialized=False)
    if epc.valid:
        raise EnclsFault(PF, "EPC page in use")
    pt = (secinfo >> 8) & 0xFF
    perms = secinfo & SGX_SECINFO_PERMISSION_MASK
    if secinfo & ~(SGX_SECINFO_PERMISSION_MASK | SGX_SECINFO_PAGE_TYPE_MASK) or \
            pt not in (SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS):
        raise EnclsFault(GP, "bad SECINFO")
    if perms & SGX_SECINFO_W and not perms & SGX_SECINFO_R:
        raise EnclsFault(GP, "W without R")
    if linaddr % PAGE_SIZE or not in_elrange(state, linaddr):
        raise EnclsFault(GP, "linear address outside ELRANGE")
    data = bytearray(contents)
    if pt == SGX_PAGE_TYPE_TCS:
        (_state, flags, ossa, _cssa, nssa, oentry, _aep, ofs, ogs, fsl, gsl) = \
            TCS_FORMAT.unpack_from(data)
        if flags & ~(TCS_FLAGS_DBGOPTIN | TCS_FLAGS_AEXNOTIFY) or \
                any(data[TCS_FORMAT.size:]) or ossa % PAGE_SIZE or ofs % PAGE_SIZE or \
                ogs % PAGE_SIZE:
            raise EnclsFault(GP, "malformed TCS")
        TCS_FORMAT.pack_into(data, 0, 0, flags & ~TCS_FLAGS_DBGOPTIN, ossa, 0, nssa, oentry,
                             0, ofs, ogs, fsl, gsl)
        perms = 0       # a TCS never has EPCM permissions
    epc.data[:] = data
    epc.valid, epc.pt, epc.secs, epc.addr = True, pt, secs_page, linaddr
    epc.set_perms(perms)
    epc.blocked = epc.pending = epc.modified = epc.pr = False
    state.children += 1
    state.measurement.eadd(linaddr - state.base, secinfo)


def eextend(secs_page: EpcPage | None, epc: EpcPage, offset: int) -> None:
    """EEXTEND: measure the 256 bytes at `offset` inside the page (as now in the EPC)."""
    state = _check_secs(secs_page, initialized=False)
    if not epc.valid or epc.secs is not secs_page or offset % 256:
        raise EnclsFault(GP, "bad EEXTEND target")
    state.measurement.eextend(epc.addr - state.base + offset, bytes(epc.data[offset:offset + 256]))


def einit(cpu: SgxCpu, sigstruct: bytes, secs_page: EpcPage | None) -> int:
    """EINIT (token VALID=0): returns 0 or an SGX error code; the SIGSTRUCT checks come
    first, then the measurement, then attributes, then the launch key hash."""
    state = _check_secs(secs_page, initialized=False)
    code = verify(sigstruct)
    if code:
        return code
    sig = Sigstruct.unpack(sigstruct)
    mrenclave = state.measurement.digest()
    if mrenclave != sig.mrenclave:
        return SGX_INVALID_MEASUREMENT
    mrsigner = hashlib.sha256(sig.modulus).digest()
    if state.attributes & SGX_ATTR_EINITTOKENKEY and mrsigner != cpu.lepubkeyhash:
        return SGX_INVALID_ATTRIBUTE
    if (state.attributes & sig.attributes_mask) != (sig.attributes & sig.attributes_mask) or \
            (state.xfrm & sig.xfrm_mask) != (sig.xfrm & sig.xfrm_mask) or \
            (state.miscselect & sig.misc_mask) != (sig.miscselect & sig.misc_mask):
        return SGX_INVALID_ATTRIBUTE
    if mrsigner != cpu.lepubkeyhash:
        return SGX_INVALID_EINITTOKEN
    state.initialized = True
    state.attributes |= SGX_ATTR_INIT
    state.mrenclave, state.mrsigner = mrenclave, mrsigner
    state.isvprodid, state.isvsvn = sig.isvprodid, sig.isvsvn
    return 0


def epa(epc: EpcPage) -> None:
    """EPA: make a free EPC page a Version Array page (PT_VA, its 512 slots empty)."""
    if epc.valid:
        raise EnclsFault(PF, "EPC page in use")
    epc.data[:] = bytes(PAGE_SIZE)
    epc.valid, epc.pt, epc.secs, epc.addr = True, SGX_PAGE_TYPE_VA, None, 0
    epc.set_perms(0)
    epc.blocked = epc.pending = epc.modified = epc.pr = False


def eaug(secs_page: EpcPage | None, epc: EpcPage, linaddr: int) -> None:
    """EAUG (SGX2): a zeroed, PENDING, REG RW page at linaddr of an initialized enclave."""
    state = _check_secs(secs_page, initialized=True)
    if epc.valid:
        raise EnclsFault(PF, "EPC page in use")
    if linaddr % PAGE_SIZE or not in_elrange(state, linaddr):
        raise EnclsFault(GP, "linear address outside ELRANGE")
    epc.data[:] = bytes(PAGE_SIZE)
    epc.valid, epc.pt, epc.secs, epc.addr = True, SGX_PAGE_TYPE_REG, secs_page, linaddr
    epc.set_perms(SGX_SECINFO_R | SGX_SECINFO_W)
    epc.blocked = epc.modified = epc.pr = False
    epc.pending = True
    state.children += 1


def emodpr(epc: EpcPage, perms: int) -> int:
    """EMODPR (SGX2): restrict a REG page's EPCM permissions; sets PR."""
    if not epc.valid:
        raise EnclsFault(PF, "invalid EPC page")
    if epc.pending or epc.modified:
        return SGX_PAGE_NOT_MODIFIABLE
    if epc.pt != SGX_PAGE_TYPE_REG:
        raise EnclsFault(PF, "not a REG page")
    if not epc.owner().initialized:
        raise EnclsFault(GP, "enclave not initialized")
    epc.set_perms(epc.perms() & perms)
    epc.pr = True
    return 0


def emodt(epc: EpcPage, page_type: int) -> int:
    """EMODT (SGX2): change a REG/TCS page's type to TCS or TRIM; sets MODIFIED and
    clears the permissions."""
    if page_type not in (SGX_PAGE_TYPE_TCS, SGX_PAGE_TYPE_TRIM):
        raise EnclsFault(GP, "bad page type")
    if not epc.valid or epc.pt not in (SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS):
        raise EnclsFault(PF, "not a REG or TCS page")
    if epc.pending or epc.modified:
        return SGX_PAGE_NOT_MODIFIABLE
    epc.pt = page_type
    epc.modified = True
    epc.set_perms(0)
    return 0


def eremove(epc: EpcPage) -> int:
    """EREMOVE: free an EPC page (a SECS only once it has no children; a VA page
    belongs to no enclave)."""
    if not epc.valid:
        return 0
    if epc.pt == SGX_PAGE_TYPE_SECS:
        assert epc.enclave is not None
        if epc.enclave.children:
            return SGX_CHILD_PRESENT
    elif epc.pt != SGX_PAGE_TYPE_VA:
        state = epc.owner()
        if state.active_threads:
            return SGX_ENCLAVE_ACT
        state.children -= 1
    epc.cpu.free_epc_page(epc)
    return 0


def edbgrd(epc: EpcPage, offset: int, n: int) -> bytes:
    """EDBGRD: read enclave memory of a debug enclave (#GP otherwise)."""
    _check_debuggable(epc)
    return bytes(epc.data[offset:offset + n])


def edbgwr(epc: EpcPage, offset: int, data: bytes) -> None:
    """EDBGWR: write enclave memory of a debug enclave; on a TCS only the FLAGS word."""
    _check_debuggable(epc)
    if epc.pt == SGX_PAGE_TYPE_TCS and (offset != 8 or len(data) != 8):
        raise EnclsFault(GP, "EDBGWR to a TCS field other than FLAGS")
    epc.data[offset:offset + len(data)] = data


def _check_debuggable(epc: EpcPage) -> None:
    if not epc.valid or epc.pt not in (SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS):
        raise EnclsFault(GP, "not a REG or TCS page")
    if not epc.owner().attributes & SGX_ATTR_DEBUG:
        raise EnclsFault(GP, "not a debug enclave")
