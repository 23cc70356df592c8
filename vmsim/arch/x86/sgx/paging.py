"""EPC paging: the ENCLS leaves that take an enclave page out of the EPC and bring it
back (EBLOCK, ETRACK, EWB, ELDB/ELDU), with their Version Array slots and Paging Crypto
MetaData (PCMD), as the Intel SDM Vol. 3D specifies them ("Enclave Page Cache Management:
Eviction of Enclave Pages", "TLB Tracking" and the leaf references). Linux runs them from
arch/x86/kernel/cpu/sgx/main.c (the reclaimer: sgx_reclaimer_block(), sgx_encl_ewb())
and encl.c (__sgx_encl_eldu()), through encls.h.

Tracking. Each enclave has an epoch (SecsState.epoch) and records the epoch each logical
processor inside it entered in (SecsState.lps). EBLOCK stamps the page with the epoch
(EpcPage.bepoch); ETRACK starts the next epoch, and refuses (SGX_PREV_TRK_INCMPL) while
a logical processor of an older epoch is still inside; EWB of a blocked page is
SGX_NOT_TRACKED until an ETRACK came after its EBLOCK and every logical processor that
entered before that ETRACK has left. An interrupt makes a logical processor leave (its
AEX): `ipi()` is what Linux's IPI to the enclave's CPUs does to the tracking.

Integrity. EWB writes the page's contents to the backing page in the clear (the model
does not encrypt) and a PCMD (SECINFO, ENCLAVEID, MAC): the MAC is an AES-CMAC, under
a key of the CPU (CR_BASE_PK: derived from the fused secret, not random per boot), of
the page's version (a CPU-wide counter, kept in the Version Array slot), its enclave,
linear address and SECINFO, and its contents. ELDU recomputes it with the version in
the slot: a changed page or PCMD, a page of another enclave or address, or an older
copy of the page (replay: another version) is SGX_MAC_COMPARE_FAIL.

A SECS is written out as the SECS page's image (SECS_FORMAT) with the hidden fields the
model keeps (EID, epoch) at the end of its reserved area.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from ....uapi import PAGE_SIZE
from .cpu import GP, PF, EnclsFault, EpcPage, SecsState, SgxCpu
from .defs import (
    SECS_FORMAT,
    SGX_ATTR_INIT,
    SGX_BLKSTATE,
    SGX_CHILD_PRESENT,
    SGX_MAC_COMPARE_FAIL,
    SGX_NOT_TRACKED,
    SGX_NOTBLOCKABLE,
    SGX_PAGE_NOT_BLOCKED,
    SGX_PAGE_TYPE_REG,
    SGX_PAGE_TYPE_SECS,
    SGX_PAGE_TYPE_TCS,
    SGX_PAGE_TYPE_TRIM,
    SGX_PAGE_TYPE_VA,
    SGX_PG_INVLD,
    SGX_PG_IS_SECS,
    SGX_PREV_TRK_INCMPL,
    SGX_SECINFO_MODIFIED,
    SGX_SECINFO_PENDING,
    SGX_SECINFO_PR,
    SGX_VA_SLOT_OCCUPIED,
)
from .measure import Measurement

#: struct sgx_pcmd (arch/x86/include/asm/sgx.h): SECINFO (flags, 56 reserved bytes),
#: ENCLAVEID, 40 reserved bytes, MAC
PCMD_FORMAT = struct.Struct("<Q56sQ40s16s")
PCMD_SIZE = PCMD_FORMAT.size
#: a Version Array page holds 512 versions of 8 bytes
VA_SLOT_SIZE = 8
#: page types whose eviction needs EBLOCK and tracking (the enclave's children)
CHILD_TYPES = (SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS, SGX_PAGE_TYPE_TRIM)
#: where the model keeps a written-out SECS's hidden fields (EID, epoch): the last
#: bytes of the page, inside SECS.RESERVED4
SECS_HIDDEN = struct.Struct("<QQ")
SECS_HIDDEN_OFFSET = PAGE_SIZE - SECS_HIDDEN.size


# --- tracking ------------------------------------------------------------------------------

def eblock(epc: EpcPage) -> int:
    """EBLOCK: mark a REG, TCS or TRIM page BLOCKED (no new TLB entries: enclave-mode
    accesses to it fault) in the current epoch of its enclave. SGX_PG_INVLD for a free
    page, SGX_PG_IS_SECS / SGX_NOTBLOCKABLE for a SECS / VA page, SGX_BLKSTATE if it
    is blocked already."""
    if not epc.valid:
        return SGX_PG_INVLD
    if epc.pt not in CHILD_TYPES:
        return SGX_PG_IS_SECS if epc.pt == SGX_PAGE_TYPE_SECS else SGX_NOTBLOCKABLE
    if epc.blocked:
        return SGX_BLKSTATE
    epc.blocked = True
    epc.bepoch = epc.owner().epoch
    return 0


def etrack(secs_page: EpcPage) -> int:
    """ETRACK: start the enclave's next epoch, so that EWB can tell when every logical
    processor inside at this moment has left. SGX_PREV_TRK_INCMPL while one that entered
    before the previous ETRACK is still inside; #PF if the page is not a valid SECS."""
    if not secs_page.valid or secs_page.pt != SGX_PAGE_TYPE_SECS:
        raise EnclsFault(PF, "ETRACK: not a SECS")
    state = secs_page.enclave
    assert state is not None
    if any(epoch < state.epoch for epoch in state.lps.values()):
        return SGX_PREV_TRK_INCMPL
    state.epoch += 1
    return 0


def tracked(state: SecsState, bepoch: int) -> bool:
    """EWB's "tracking done correctly" for a page blocked in epoch `bepoch`: an ETRACK
    came after the EBLOCK and no logical processor of that epoch or older is inside."""
    return bepoch < state.epoch and all(epoch > bepoch for epoch in state.lps.values())


def ipi(state: SecsState) -> None:
    """What an interrupt to every CPU inside the enclave does to its tracking: each
    logical processor leaves (AEX), and enters again (ERESUME) in the current epoch.
    The model only has logical processors inside while the kernel runs in the middle of
    their page fault, whose #PF is that exit already (the model's walk does not make
    the AEX/ERESUME round trip), so nothing else of their state changes."""
    for lp in state.lps:
        state.lps[lp] = state.epoch


# --- EWB, ELDB/ELDU -------------------------------------------------------------------------

def paging_key(cpu: SgxCpu) -> bytes:
    """CR_BASE_PK, the key EWB and ELDU MAC pages with."""
    return _cmac(cpu.fuse_key, b"CR_BASE_PK\0\0\0\0\0\0")


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def page_mac(cpu: SgxCpu, version: int, eid: int, linaddr: int, secinfo: bytes,
             reserved: bytes, contents: bytes) -> bytes:
    """The MAC of a written-out page: its version and header (EID, LINADDR, SECINFO and
    the PCMD's reserved bytes) and its contents."""
    header = struct.pack("<QQQ", version, eid, linaddr) + secinfo + reserved
    return _cmac(paging_key(cpu), header + contents)


def _va_slot(va_page: EpcPage, offset: int) -> memoryview:
    """The 8-byte slot at `offset` of a Version Array page: #GP if misaligned, #PF if
    the page is not a valid PT_VA page."""
    if offset % VA_SLOT_SIZE or not 0 <= offset < PAGE_SIZE:
        raise EnclsFault(GP, "VA slot misaligned")
    if not va_page.valid or va_page.pt != SGX_PAGE_TYPE_VA:
        raise EnclsFault(PF, "VA slot not in a VA page")
    return va_page.data[offset:offset + VA_SLOT_SIZE]


def _secinfo_flags(epc: EpcPage) -> int:
    return epc.pt << 8 | epc.perms() | (SGX_SECINFO_PENDING if epc.pending else 0) | \
        (SGX_SECINFO_MODIFIED if epc.modified else 0) | (SGX_SECINFO_PR if epc.pr else 0)


def ewb(epc: EpcPage, va_page: EpcPage, va_offset: int, contents: memoryview,
        pcmd: memoryview) -> int:
    """EWB: write the EPC page out to `contents` (a page of memory) with its PCMD (128
    bytes), its version into the VA slot, and free it (back to the EPC's pool, as
    EREMOVE does). A child page (REG, TCS, TRIM) must be BLOCKED (else
    SGX_PAGE_NOT_BLOCKED) and tracked (else SGX_NOT_TRACKED); a SECS must have no child
    in the EPC (SGX_CHILD_PRESENT); a VA page needs neither. A slot that already held a
    version is overwritten and reported: SGX_VA_SLOT_OCCUPIED (the page is written out
    all the same). #PF for a free page, #GP for a VA slot in the page itself."""
    if not epc.valid:
        raise EnclsFault(PF, "EWB of a free EPC page")
    if va_page is epc:
        raise EnclsFault(GP, "EWB: the VA slot is in the page written out")
    slot = _va_slot(va_page, va_offset)
    if epc.pt in CHILD_TYPES:
        state = epc.owner()
        if not epc.blocked:
            return SGX_PAGE_NOT_BLOCKED
        if not tracked(state, epc.bepoch):
            return SGX_NOT_TRACKED
        header_eid = enclave_id = state.eid
        data = bytes(epc.data)
    elif epc.pt == SGX_PAGE_TYPE_SECS:
        assert epc.enclave is not None
        if epc.enclave.children:
            return SGX_CHILD_PRESENT
        header_eid, enclave_id, data = 0, epc.enclave.eid, secs_image(epc.enclave)
    else:
        header_eid = enclave_id = 0
        data = bytes(epc.data)
    cpu = epc.cpu
    cpu.paging_version += 1
    version = cpu.paging_version
    secinfo = struct.pack("<Q56x", _secinfo_flags(epc))
    mac = page_mac(cpu, version, header_eid, epc.addr, secinfo, bytes(40), data)
    contents[:] = data
    PCMD_FORMAT.pack_into(pcmd, 0, _secinfo_flags(epc), bytes(56), enclave_id, bytes(40), mac)
    occupied = any(slot)
    slot[:] = struct.pack("<Q", version)
    if epc.pt in CHILD_TYPES:
        epc.owner().children -= 1
    cpu.free_epc_page(epc)
    return SGX_VA_SLOT_OCCUPIED if occupied else 0


def eldu(epc: EpcPage, va_page: EpcPage, va_offset: int, linaddr: int,
         secs_page: EpcPage | None, contents: memoryview, pcmd: memoryview,
         blocked: bool = False) -> int:
    """ELDU (ELDB with `blocked`): load a page written out by EWB into the free EPC page
    `epc`, at `linaddr` of the enclave of `secs_page` (None for a SECS or a VA page),
    checking the MAC with the version in the VA slot: SGX_MAC_COMPARE_FAIL, the EPC page
    left free, if anything differs from what EWB wrote; on success the slot is cleared.
    #PF for an EPC page in use or a bad SECS, #GP for a page type that cannot be loaded
    or a SECS given for a SECS or VA page."""
    if epc.valid:
        raise EnclsFault(PF, "ELDU into an EPC page in use")
    slot = _va_slot(va_page, va_offset)
    flags, secinfo_rsvd, _enclave_id, reserved, mac = PCMD_FORMAT.unpack_from(pcmd)
    pt = (flags >> 8) & 0xFF
    if pt in CHILD_TYPES:
        if secs_page is None or not secs_page.valid or secs_page.pt != SGX_PAGE_TYPE_SECS:
            raise EnclsFault(PF, "ELDU: not a SECS")
        assert secs_page.enclave is not None
        header_eid = secs_page.enclave.eid
    elif pt in (SGX_PAGE_TYPE_SECS, SGX_PAGE_TYPE_VA):
        if secs_page is not None:
            raise EnclsFault(GP, "ELDU: a SECS given for a SECS or VA page")
        header_eid = 0
    else:
        raise EnclsFault(GP, "ELDU: bad page type in the PCMD")
    data = bytes(contents)
    version = struct.unpack("<Q", slot)[0]
    secinfo = struct.pack("<Q", flags) + secinfo_rsvd
    if page_mac(epc.cpu, version, header_eid, linaddr, secinfo, reserved, data) != mac:
        return SGX_MAC_COMPARE_FAIL
    slot[:] = bytes(VA_SLOT_SIZE)
    epc.valid, epc.pt, epc.addr = True, pt, linaddr
    epc.set_perms(flags)
    epc.pending = bool(flags & SGX_SECINFO_PENDING)
    epc.modified = bool(flags & SGX_SECINFO_MODIFIED)
    epc.pr = bool(flags & SGX_SECINFO_PR)
    epc.blocked = blocked and pt in CHILD_TYPES
    epc.secs = secs_page
    if pt == SGX_PAGE_TYPE_SECS:
        epc.enclave = secs_state(data)
    else:
        epc.data[:] = data
    if pt in CHILD_TYPES:
        epc.owner().children += 1
    return 0


def eldb(epc: EpcPage, va_page: EpcPage, va_offset: int, linaddr: int,
         secs_page: EpcPage | None, contents: memoryview, pcmd: memoryview) -> int:
    """ELDB: ELDU, the page loaded BLOCKED (a SECS or VA page never is)."""
    return eldu(epc, va_page, va_offset, linaddr, secs_page, contents, pcmd, blocked=True)


# --- a SECS written out ----------------------------------------------------------------------

def secs_image(state: SecsState) -> bytes:
    """The SECS page as EWB writes it: the architectural fields and the hidden ones.
    Only an initialized enclave's: before EINIT its MRENCLAVE is a running SHA-256
    the model cannot write out (Linux never writes such a SECS out: sgx_reclaimer_write()
    waits for SGX_ENCL_INITIALIZED), a #GP in the model."""
    if not state.initialized:
        raise EnclsFault(GP, "the model cannot write out the SECS of an uninitialized enclave")
    image = bytearray(PAGE_SIZE)
    SECS_FORMAT.pack_into(image, 0, state.size, state.base, state.ssa_frame_size,
                          state.miscselect, state.attributes, state.xfrm, state.mrenclave,
                          bytes(32), state.mrsigner, bytes(32), state.config_id,
                          state.isvprodid, state.isvsvn, state.config_svn)
    SECS_HIDDEN.pack_into(image, SECS_HIDDEN_OFFSET, state.eid, state.epoch)
    return bytes(image)


def secs_state(image: bytes) -> SecsState:
    """The SecsState of a SECS page loaded back (secs_image()'s inverse): no child in
    the EPC and no logical processor inside yet."""
    (size, base, ssa, misc, attrs, xfrm, mrenclave, _rsv2, mrsigner, _rsv3, config_id,
     isvprodid, isvsvn, config_svn) = SECS_FORMAT.unpack_from(image)
    eid, epoch = SECS_HIDDEN.unpack_from(image, SECS_HIDDEN_OFFSET)
    return SecsState(size, base, ssa, misc, attrs, xfrm, Measurement(size, ssa),
                     initialized=bool(attrs & SGX_ATTR_INIT), mrenclave=mrenclave,
                     mrsigner=mrsigner, isvprodid=isvprodid, isvsvn=isvsvn,
                     config_id=config_id, config_svn=config_svn, eid=eid, epoch=epoch)
