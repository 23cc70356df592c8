"""MRENCLAVE: the running SHA-256 that ECREATE starts, EADD and EEXTEND extend and
EINIT finalises (spec/sgx-driver.md §4.1; SDM Vol. 3D, ECREATE/EADD/EEXTEND
"Operation" sections; the userspace mirror is the kselftest's
tools/testing/selftests/sgx/sigstruct.c mrenclave_ecreate/eadd/eextend).

Every update is one or more 64-byte records, all integers little endian:

    ECREATE  "ECREATE\\0" | u32 SSAFRAMESIZE (pages) | u64 SIZE | 44 zero bytes
    EADD     "EADD\\0\\0\\0\\0" | u64 page offset | SECINFO[0:48] (u64 flags + 40 zeros)
    EEXTEND  "EEXTEND\\0" | u64 chunk offset | 48 zero bytes, then the 256 data bytes

Offsets are relative to the enclave base (linaddr - SECS.BASEADDR), so the base
address, attributes, XFRM and MISCSELECT are *not* measured.

The same class serves the emulated CPU (one Measurement per SECS: ECREATE builds
it, EADD/EEXTEND update it, EINIT compares ``digest()`` with SIGSTRUCT.ENCLAVEHASH)
and the signing tools (which replay a whole image through ``add_page``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ....uapi import PAGE_SIZE

EEXTEND_CHUNK = 256

# The record tags, as the u64 the records start with (kselftest enum mrtags).
MR_ECREATE = 0x0045544145524345   # "ECREATE\0"
MR_EADD = 0x0000000044444145      # "EADD\0\0\0\0"
MR_EEXTEND = 0x00444E4554584545   # "EEXTEND\0"

_ECREATE = struct.Struct("<QIQ44x")
_EADD = struct.Struct("<QQQ40x")
_EEXTEND = struct.Struct("<QQ48x")

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


def _check_u(name: str, value: int, limit: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise ValueError(f"{name} {value!r} does not fit the record field")


def ecreate_record(size: int, ssa_frame_size: int) -> bytes:
    """The 64-byte ECREATE record (SSAFRAMESIZE in pages, SIZE in bytes)."""
    _check_u("ssa_frame_size", ssa_frame_size, _U32)
    _check_u("size", size, _U64)
    return _ECREATE.pack(MR_ECREATE, ssa_frame_size, size)


def eadd_record(offset: int, secinfo_flags: int) -> bytes:
    """The 64-byte EADD record: the page offset and the first 48 bytes of SECINFO
    (the u64 flags followed by 40 of the reserved bytes, which must be zero)."""
    _check_u("offset", offset, _U64)
    _check_u("secinfo_flags", secinfo_flags, _U64)
    return _EADD.pack(MR_EADD, offset, secinfo_flags)


def eextend_header(offset: int) -> bytes:
    """The 64-byte header of an EEXTEND update (the 256 data bytes follow it)."""
    _check_u("offset", offset, _U64)
    return _EEXTEND.pack(MR_EEXTEND, offset)


@dataclass(frozen=True)
class Record:
    """One update of the running hash, kept only when a Measurement is asked to
    keep a log (``Measurement(..., log=True)``), e.g. for ``vmsim sgx measure -v``."""
    kind: str            # "ECREATE", "EADD" or "EEXTEND"
    offset: int          # page / chunk offset; 0 for ECREATE
    value: int           # ECREATE: SSAFRAMESIZE; EADD: SECINFO flags; EEXTEND: 0
    size: int = 0        # ECREATE: SIZE; otherwise 0


class Measurement:
    """A running MRENCLAVE.

    ``Measurement(size, ssa_frame_size)`` is the state right after ECREATE.
    ``eadd``/``eextend`` add one record each; ``add_page`` is what
    SGX_IOC_ENCLAVE_ADD_PAGES does for one page (EADD, then 16 EEXTENDs when the
    page is measured). ``digest()`` is the value EINIT would finalise; it works on
    a copy, so the running state is left as it was and can still be extended or
    compared again (a failed EINIT is retryable, spec §3.2.4 step 9).

    Only record layout is checked here (alignment, field widths); whether the
    offset lies inside ELRANGE, the page type is legal, etc. is the caller's
    business (the emulated CPU raises the architectural fault first).
    """

    __slots__ = ("size", "ssa_frame_size", "_h", "records")

    def __init__(self, size: int, ssa_frame_size: int, *, log: bool = False):
        record = ecreate_record(size, ssa_frame_size)
        self.size = size
        self.ssa_frame_size = ssa_frame_size
        self._h = hashlib.sha256(record)
        self.records: list[Record] | None = \
            [Record("ECREATE", 0, ssa_frame_size, size)] if log else None

    def eadd(self, offset: int, secinfo_flags: int) -> None:
        """EADD of the page at ``offset`` (page aligned) with SECINFO.FLAGS."""
        if offset % PAGE_SIZE:
            raise ValueError(f"EADD offset {offset:#x} is not page aligned")
        self._h.update(eadd_record(offset, secinfo_flags))
        if self.records is not None:
            self.records.append(Record("EADD", offset, secinfo_flags))

    def eextend(self, offset: int, data256: bytes | memoryview) -> None:
        """EEXTEND of the 256-byte chunk at ``offset`` (256-byte aligned)."""
        if offset % EEXTEND_CHUNK:
            raise ValueError(f"EEXTEND offset {offset:#x} is not 256-byte aligned")
        if len(data256) != EEXTEND_CHUNK:
            raise ValueError(f"EEXTEND needs 256 data bytes, got {len(data256)}")
        self._h.update(eextend_header(offset))
        self._h.update(bytes(data256))
        if self.records is not None:
            self.records.append(Record("EEXTEND", offset, 0))

    def add_page(self, offset: int, data4096: bytes, secinfo_flags: int,
                 measured: bool = True) -> None:
        """One page as the driver adds it (arch/x86/kernel/cpu/sgx/ioctl.c
        __sgx_encl_add_page + __sgx_encl_extend): EADD, then, if ``measured``
        (SGX_PAGE_MEASURE), EEXTEND at offset, offset+0x100, ..., offset+0xF00."""
        if len(data4096) != PAGE_SIZE:
            raise ValueError(f"a page is 4096 bytes, got {len(data4096)}")
        self.eadd(offset, secinfo_flags)
        if measured:
            view = memoryview(bytes(data4096))
            for i in range(0, PAGE_SIZE, EEXTEND_CHUNK):
                self.eextend(offset + i, view[i:i + EEXTEND_CHUNK])

    def add_pages(self, offset: int, data: bytes, secinfo_flags: int,
                  measured: bool = True) -> None:
        """``add_page`` for every page of ``data`` (a multiple of 4096 bytes)."""
        if len(data) % PAGE_SIZE:
            raise ValueError(f"length {len(data)} is not a multiple of the page size")
        for i in range(0, len(data), PAGE_SIZE):
            self.add_page(offset + i, data[i:i + PAGE_SIZE], secinfo_flags, measured)

    def digest(self) -> bytes:
        """MRENCLAVE as EINIT would finalise it now (32 bytes); non-destructive."""
        return self._h.copy().digest()

    def hexdigest(self) -> str:
        return self._h.copy().hexdigest()

    def copy(self) -> Measurement:
        """An independent copy of the running state (and of the log, if kept)."""
        other = object.__new__(Measurement)
        other.size = self.size
        other.ssa_frame_size = self.ssa_frame_size
        other._h = self._h.copy()
        other.records = None if self.records is None else list(self.records)
        return other

    def __repr__(self) -> str:
        return (f"Measurement(size={self.size:#x}, ssa_frame_size={self.ssa_frame_size}, "
                f"running={self.hexdigest()[:16]}...)")


def mrenclave(size: int, ssa_frame_size: int,
              pages: Iterable[tuple[int, bytes, int, bool]]) -> bytes:
    """MRENCLAVE of an enclave built from ``pages``, an iterable of
    ``(offset, data, secinfo_flags, measured)`` in the order they are added;
    ``data`` may span several pages (each gets its own EADD)."""
    m = Measurement(size, ssa_frame_size)
    for offset, data, flags, measured in pages:
        m.add_pages(offset, data, flags, measured)
    return m.digest()
