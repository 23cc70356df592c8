"""Enclave images: what a loader feeds to SGX_IOC_ENCLAVE_CREATE / ADD_PAGES / INIT.

An ``EnclaveImage`` is the SECS parameters (ELRANGE size, SSA frame size,
attributes, XFRM, MISCSELECT), the SIGSTRUCT body parameters a signer chooses
(ISVPRODID, ISVSVN, masks, vendor, date) and an *ordered* list of ``Segment``s
(segment.py). The order is the EADD order, which is part of MRENCLAVE.

Two ways to get one, besides building it:

* ``EnclaveImage.from_elf(...)``: the Linux kselftest loader's reading of an enclave
  ELF (elf.py); SECS = {ssa 1, MODE64BIT, xfrm 3}.
* ``EnclaveImage.from_text(...)``: a small line-based format for tests and
  examples (textformat.py, docs/enclave-image-format.md); ``to_text()`` writes it.

Malformed input raises ``ImageError`` carrying the file, the line (if any) and a
one-line reason; ``str(err)`` is ``file:line: reason``, which is what the CLI
prints.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from ..arch.x86.sgx.defs import (
    SECS_SIZE,
    SGX_ATTR_MODE64BIT,
    SGX_PAGE_TYPE_REG,
    SGX_PAGE_TYPE_TCS,
    SGX_SECINFO_PAGE_TYPE_MASK,
    SGX_SECINFO_TCS,
)
from ..arch.x86.sgx.measure import Measurement
from ..arch.x86.sgx.sigstruct import Sigstruct
from ..syscalls.inputs import InputError, read_bytes
from ..uapi import PAGE_SIZE
from . import elf, signing, textformat
from .segment import U16, U32, U64, ImageError, Segment, covering_size, is_power_of_two, tcs_after_eadd


@dataclass
class EnclaveImage:
    """SECS parameters, SIGSTRUCT body parameters and the ordered segments."""
    size: int
    segments: list[Segment] = field(default_factory=list)
    ssa_frame_size: int = 1
    attributes: int = SGX_ATTR_MODE64BIT
    xfrm: int = 3
    miscselect: int = 0
    # SIGSTRUCT body/header choices (defaults: the kselftest's, spec §4.3)
    misc_mask: int = 0
    attributes_mask: int = 0
    xfrm_mask: int = 0
    isvprodid: int = 0
    isvsvn: int = 0
    vendor: int = 0
    date: int = 0

    # -- checks --

    def validate(self) -> None:
        """ImageError unless the image is structurally sound: ELRANGE a power of
        two, fields within their widths, every segment page aligned, a non-empty
        page multiple, inside ELRANGE, REG or TCS, and no two segments sharing a
        page (ADD_PAGES would fail the second with EBUSY). SECINFO permission rules
        (W needs R, TCS perms 0) are the driver's to enforce and are not checked."""
        if not isinstance(self.size, int) or not is_power_of_two(self.size) or self.size > U64:
            raise ImageError(f"size {self.size!r} is not a power of two")
        for name, limit in (("ssa_frame_size", U32), ("attributes", U64), ("xfrm", U64),
                            ("miscselect", U32), ("misc_mask", U32),
                            ("attributes_mask", U64), ("xfrm_mask", U64),
                            ("isvprodid", U16), ("isvsvn", U16), ("vendor", U32),
                            ("date", U32)):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v <= limit:
                raise ImageError(f"{name} {v!r} out of range")
        for i, seg in enumerate(self.segments):
            label = _label(seg, i)
            if seg.offset < 0 or seg.offset % PAGE_SIZE:
                raise ImageError(f"{label}: offset {seg.offset:#x} is not page aligned")
            if not seg.data or len(seg.data) % PAGE_SIZE:
                raise ImageError(f"{label}: size {len(seg.data):#x} is not a non-zero "
                                 "multiple of the page size")
            if seg.end > self.size:
                raise ImageError(f"{label}: [{seg.offset:#x}, {seg.end:#x}) is outside "
                                 f"ELRANGE [0, {self.size:#x})")
            if seg.page_type not in (SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS):
                raise ImageError(f"{label}: page type {seg.page_type} is neither REG nor TCS")
        self._check_no_overlap()

    def _check_no_overlap(self) -> None:
        """ImageError naming the later of two segments that share a page (by offset,
        so O(n log n))."""
        by_offset = sorted(range(len(self.segments)), key=lambda i: self.segments[i].offset)
        for a, b in itertools.pairwise(by_offset):
            if self.segments[b].offset < self.segments[a].end:
                i, j = max(a, b), min(a, b)
                seg, other = self.segments[i], self.segments[j]
                raise ImageError(f"{_label(seg, i)}: [{seg.offset:#x}, {seg.end:#x}) overlaps "
                                 f"segment {other.name} [{other.offset:#x}, {other.end:#x})")

    # -- measurement and signing --

    def pages(self) -> Iterator[tuple[int, bytes, int, bool]]:
        """(offset, 4096 bytes, SECINFO flags, measured) in EADD order."""
        for seg in self.segments:
            for off, page in seg.page_data():
                yield off, page, seg.secinfo_flags, seg.measured

    def measurement(self, log: bool = False) -> Measurement:
        """The running measurement after every page was added (before EINIT).
        TCS pages are measured as EADD leaves them (``tcs_after_eadd``), so the
        result is what the CPU computes even if the image sets CPU-owned fields."""
        m = Measurement(self.size, self.ssa_frame_size, log=log)
        for off, page, flags, measured in self.pages():
            if (flags & SGX_SECINFO_PAGE_TYPE_MASK) == SGX_SECINFO_TCS:
                page = tcs_after_eadd(page)
            m.add_page(off, page, flags, measured)
        return m

    def measure(self) -> bytes:
        """MRENCLAVE (32 bytes)."""
        return self.measurement().digest()

    def unsigned_sigstruct(self) -> Sigstruct:
        return signing.build(
            self.measure(), attributes=self.attributes, xfrm=self.xfrm,
            attributes_mask=self.attributes_mask, xfrm_mask=self.xfrm_mask,
            miscselect=self.miscselect, misc_mask=self.misc_mask,
            isvprodid=self.isvprodid, isvsvn=self.isvsvn, vendor=self.vendor,
            date=self.date)

    def sigstruct(self, key: rsa.RSAPrivateKey) -> bytes:
        """The signed SIGSTRUCT (1808 bytes) for this image, signed with ``key``."""
        return signing.sign(self.unsigned_sigstruct(), key).pack()

    def secs(self, base: int = 0) -> bytes:
        """The 4096-byte SECS a loader passes to SGX_IOC_ENCLAVE_CREATE (§1.4)."""
        head = struct.pack("<QQII24xQQ", self.size, base, self.ssa_frame_size,
                           self.miscselect, self.attributes, self.xfrm)
        return head + bytes(SECS_SIZE - len(head))

    # -- loaders --

    @classmethod
    def load(cls, path: str, heap_size: int = PAGE_SIZE) -> EnclaveImage:
        """An ELF (by its magic) or a declarative image file, of at most
        MAX_INPUT_SIZE bytes (vmsim.syscalls.inputs)."""
        raw = _read(path, binary_magic=ELF_MAGIC)
        if raw[:4] == ELF_MAGIC:
            return cls.from_elf(raw, heap_size=heap_size, path=path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[:e.start].count(b"\n") + 1
            raise ImageError("not UTF-8 text and not an ELF file", path, line) from None
        return cls.from_text(text, path=path)

    @classmethod
    def from_elf(cls, source: str | bytes | os.PathLike, heap_size: int = PAGE_SIZE, *,
                 path: str | None = None, ssa_frame_size: int = 1,
                 attributes: int = SGX_ATTR_MODE64BIT, xfrm: int = 3) -> EnclaveImage:
        """The kselftest loader's image (load.c encl_load, spec §5.a step 3): the
        segments elf.kselftest_segments() reads, then an unmeasured REG RW heap of
        ``heap_size`` bytes right after the last one (0: no heap). ELRANGE = the
        smallest power of two >= 4096 covering everything."""
        if isinstance(source, (bytes, bytearray)):
            raw = bytes(source)
            path = path or "<elf>"
        else:
            path = path or os.fspath(source)
            raw = _read(os.fspath(source))
        segments = elf.kselftest_segments(raw, heap_size, path)
        image = cls(size=covering_size(segments[-1].end), segments=segments,
                    ssa_frame_size=ssa_frame_size, attributes=attributes, xfrm=xfrm)
        try:
            image.validate()
        except ImageError as e:
            raise ImageError(e.reason, path) from None
        return image

    @classmethod
    def from_text(cls, text: str, path: str | None = None,
                  base_dir: str | None = None) -> EnclaveImage:
        """Parse the declarative format (docs/enclave-image-format.md). ``path``
        names the source in errors; ``hex=``/``bin=`` files are relative to
        ``base_dir`` (default: the directory of ``path``, else the cwd)."""
        if base_dir is None:
            base_dir = os.path.dirname(path) if path else "."
        header, segments = textformat.parse_image(text, path or "<text>", base_dir)
        image = cls(segments=segments, **header)
        try:
            image.validate()
        except ImageError as e:        # e.g. a covering size past 2^64; keep a location
            raise ImageError(e.reason, path or "<text>",
                             max(len(text.splitlines()), 1)) from None
        return image

    def to_text(self) -> str:
        """The image in the declarative format; ``from_text(to_text())`` gives an
        equal image. Contents are written as ``fill=`` when uniform or a ramp, as
        TCS fields when they decode as such, otherwise inline as ``data=`` hex."""
        self.validate()
        header = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name != "segments"}
        return textformat.format_image(header, self.segments)


ELF_MAGIC = b"\x7fELF"


def _label(seg: Segment, index: int) -> str:
    return f"segment {seg.name or f'#{index}'}"


def _read(path: str, binary_magic: bytes | None = None) -> bytes:
    """The bytes of an image file; ImageError naming it when it cannot be read."""
    try:
        return read_bytes(path, binary_magic=binary_magic)
    except OSError as e:
        raise ImageError(e.strerror or str(e), path) from None
    except InputError as e:
        raise ImageError(e.reason, path, e.line) from None
