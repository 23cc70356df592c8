"""The pieces of an enclave image: `Segment` (a run of pages a loader adds with one
SECINFO), the TCS page a loader writes (arch/x86/include/asm/sgx.h struct sgx_tcs,
spec/sgx-driver.md §1.4), and `ImageError`, the one error every image reader raises.

The whole image (SECS and SIGSTRUCT parameters, the ordered segments) is image.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..arch.x86.sgx.defs import (
    SGX_PAGE_TYPE_TCS,
    SGX_SECINFO_PAGE_TYPE_MASK,
    SGX_SECINFO_PERMISSION_MASK,
    SGX_SECINFO_R,
    SGX_SECINFO_W,
    SGX_SECINFO_X,
    TCS_FORMAT,
)
from ..uapi import PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE

#: the largest values of the SECS, TCS and SIGSTRUCT fields, by width
U16, U32, U64 = (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1
#: the most page data an image may hold, all its segments together (the ELF heap
#: included): checked before a segment's pages are built
MAX_IMAGE_SIZE = 256 << 20


class ImageError(Exception):
    """Malformed enclave image. ``path`` and ``line`` (1-based, or None when the
    problem has no line, e.g. in an ELF file) locate it; ``reason`` says why."""

    def __init__(self, reason: str, path: str | None = None, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = self.path or "<image>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.reason}"


# --- the TCS page ---

TCS_FIELDS = ("flags", "ossa", "nssa", "oentry", "ofsbase", "ogsbase", "fslimit", "gslimit")
#: What a TCS field left out of the image defaults to; the limits are those of the
#: kselftest's static TCS (test_encl_bootstrap.S) and of its INIT_TCS_PAGE op.
TCS_DEFAULTS = {"flags": 0, "ossa": 0, "nssa": 1, "oentry": 0, "ofsbase": 0,
                "ogsbase": 0, "fslimit": 0xFFFFFFFF, "gslimit": 0xFFFFFFFF}


def encode_tcs(*, flags: int = 0, ossa: int = 0, nssa: int = 1, oentry: int = 0,
               ofsbase: int = 0, ogsbase: int = 0, fslimit: int = 0xFFFFFFFF,
               gslimit: int = 0xFFFFFFFF) -> bytes:
    """A 4096-byte TCS page. STATE, CSSA and AEP (set by the CPU) are 0, as are the
    4024 reserved bytes."""
    fields = TCS_FORMAT.pack(0, flags, ossa, 0, nssa, oentry, 0, ofsbase, ogsbase, fslimit,
                             gslimit)
    return fields + bytes(PAGE_SIZE - TCS_FORMAT.size)


def decode_tcs(page: bytes) -> dict[str, int] | None:
    """The loader-set fields of a TCS page, or None if ``page`` is not something
    ``encode_tcs`` produces (CPU-owned fields or reserved bytes non-zero)."""
    if len(page) != PAGE_SIZE:
        return None
    state, flags, ossa, cssa, nssa, oentry, aep, ofsbase, ogsbase, fsl, gsl = \
        TCS_FORMAT.unpack_from(page)
    if state or cssa or aep or any(page[TCS_FORMAT.size:]):
        return None
    return {"flags": flags, "ossa": ossa, "nssa": nssa, "oentry": oentry,
            "ofsbase": ofsbase, "ogsbase": ogsbase, "fslimit": fsl, "gslimit": gsl}


def tcs_after_eadd(page: bytes) -> bytes:
    """The TCS page as EADD leaves it in the EPC, which is what the EEXTENDs that
    follow measure (spec §3.2.2-3.2.3): STATE, CSSA and AEP zeroed, FLAGS.DBGOPTIN
    cleared (a debugger sets it later through EDBGWR, as Gramine does)."""
    b = bytearray(page)
    b[0:8] = bytes(8)                       # STATE
    b[8] &= 0xFE                            # FLAGS.DBGOPTIN (bit 0 of the u64 at 8)
    b[24:28] = bytes(4)                     # CSSA
    b[40:48] = bytes(8)                     # AEP
    return bytes(b)


def tcs_pages(fields: dict[str, int], pages: int, ssa_frame_size: int) -> bytes:
    """Consecutive TCS pages: page i gets OSSA + i·NSSA·SSAFRAMESIZE pages, so each
    thread has its own SSA frames; the other fields are shared."""
    out = []
    for i in range(pages):
        f = dict(fields)
        f["ossa"] = fields["ossa"] + i * fields["nssa"] * ssa_frame_size * PAGE_SIZE
        if f["ossa"] > U64:
            raise ValueError("ossa overflows")
        out.append(encode_tcs(**f))
    return b"".join(out)


# --- segments ---

def perms_to_prot(secinfo_flags: int) -> int:
    """mmap prot for SECINFO R/W/X (same bit values: R=1, W=2, X=4)."""
    p = secinfo_flags & SGX_SECINFO_PERMISSION_MASK
    return ((PROT_READ if p & SGX_SECINFO_R else 0) | (PROT_WRITE if p & SGX_SECINFO_W else 0)
            | (PROT_EXEC if p & SGX_SECINFO_X else 0))


def perms_str(bits: int) -> str:
    """"R", "RW", "RX", "RWX", ... or "NONE" (SECINFO perms or PROT_* bits)."""
    s = "".join(c for c, b in (("R", 1), ("W", 2), ("X", 4)) if bits & b)
    return s or "NONE"


@dataclass
class Segment:
    """A run of pages added with one SECINFO.

    ``offset``: from the enclave base, page aligned. ``data``: the page contents,
    a non-zero multiple of 4096 bytes. ``secinfo_flags``: SGX_SECINFO_REG | perms,
    or SGX_SECINFO_TCS (perms 0). ``prot``: the PROT_* a loader maps the pages with
    (TCS: RW). ``measured``: added with SGX_PAGE_MEASURE (EEXTEND every 256 bytes).
    """
    offset: int
    data: bytes
    secinfo_flags: int
    prot: int
    measured: bool = True
    name: str = ""

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def end(self) -> int:
        return self.offset + len(self.data)

    @property
    def pages(self) -> int:
        return len(self.data) // PAGE_SIZE

    @property
    def page_type(self) -> int:
        return (self.secinfo_flags & SGX_SECINFO_PAGE_TYPE_MASK) >> 8

    @property
    def is_tcs(self) -> bool:
        return self.page_type == SGX_PAGE_TYPE_TCS

    @property
    def perms(self) -> int:
        return self.secinfo_flags & SGX_SECINFO_PERMISSION_MASK

    def page_data(self) -> Iterator[tuple[int, bytes]]:
        """(offset, 4096 bytes) for every page, in order."""
        for i in range(0, len(self.data), PAGE_SIZE):
            yield self.offset + i, self.data[i:i + PAGE_SIZE]


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def covering_size(end: int) -> int:
    """The kselftest's encl_size: the smallest power of two >= 4096 that is >= end."""
    size = PAGE_SIZE
    while size < end:
        size <<= 1
    return size
