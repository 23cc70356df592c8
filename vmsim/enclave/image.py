"""Enclave images: what a loader feeds to SGX_IOC_ENCLAVE_CREATE / ADD_PAGES / INIT.

An ``EnclaveImage`` is the SECS parameters (ELRANGE size, SSA frame size,
attributes, XFRM, MISCSELECT), the SIGSTRUCT body parameters a signer chooses
(ISVPRODID, ISVSVN, masks, vendor, date) and an *ordered* list of ``Segment``s.
The order is the EADD order, which is part of MRENCLAVE.

Two ways to get one:

* ``EnclaveImage.from_elf(...)``: the Linux kselftest loader
  (tools/testing/selftests/sgx/load.c encl_load, spec/sgx-driver.md §5.a step 3):
  PT_LOAD #0 must be exactly PF_R|PF_W and becomes TCS pages; later PT_LOADs are
  REG pages with the ELF permissions; offsets follow the file layout; an
  unmeasured RW heap is appended; SECS = {ssa 1, MODE64BIT, xfrm 3}.
* ``EnclaveImage.from_text(...)``: a small line-based format for tests and
  examples, documented in docs/enclave-image-format.md.

Malformed input raises ``ImageError`` carrying the file, the line (if any) and a
one-line reason; ``str(err)`` is ``file:line: reason``, which is what the CLI
prints.
"""

from __future__ import annotations

import os
import re
import shlex
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..arch.x86.sgx import sigstruct as _sigstruct
from ..arch.x86.sgx.measure import PAGE_SIZE, Measurement
from ..drivers.sgx.uapi import (
    SECS_SIZE,
    SGX_ATTR_ASYNC_EXIT_NOTIFY,
    SGX_ATTR_DEBUG,
    SGX_ATTR_EINITTOKENKEY,
    SGX_ATTR_INIT,
    SGX_ATTR_KSS,
    SGX_ATTR_MODE64BIT,
    SGX_ATTR_PROVISIONKEY,
    SGX_MISC_EXINFO,
    SGX_PAGE_TYPE_REG,
    SGX_PAGE_TYPE_TCS,
    SGX_SECINFO_PAGE_TYPE_MASK,
    SGX_SECINFO_PERMISSION_MASK,
    SGX_SECINFO_R,
    SGX_SECINFO_REG,
    SGX_SECINFO_TCS,
    SGX_SECINFO_W,
    SGX_SECINFO_X,
)
from ..uapi import PROT_EXEC, PROT_READ, PROT_WRITE

_U16, _U32, _U64 = (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1

ATTRIBUTE_NAMES = {
    "INIT": SGX_ATTR_INIT,
    "DEBUG": SGX_ATTR_DEBUG,
    "MODE64BIT": SGX_ATTR_MODE64BIT,
    "PROVISIONKEY": SGX_ATTR_PROVISIONKEY,
    "EINITTOKENKEY": SGX_ATTR_EINITTOKENKEY,
    "KSS": SGX_ATTR_KSS,
    "ASYNC_EXIT_NOTIFY": SGX_ATTR_ASYNC_EXIT_NOTIFY,
}
MISC_NAMES = {"EXINFO": SGX_MISC_EXINFO}


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


# --- TCS page layout (spec §1.4, arch/x86/include/asm/sgx.h struct sgx_tcs) ---

_TCS = struct.Struct("<QQQIIQQQQII4024x")
TCS_FIELDS = ("flags", "ossa", "nssa", "oentry", "ofsbase", "ogsbase", "fslimit", "gslimit")
#: What a TCS field left out of the image defaults to; the limits are those of the
#: kselftest's static TCS (test_encl_bootstrap.S) and of its INIT_TCS_PAGE op.
TCS_DEFAULTS = {"flags": 0, "ossa": 0, "nssa": 1, "oentry": 0, "ofsbase": 0,
                "ogsbase": 0, "fslimit": 0xFFFFFFFF, "gslimit": 0xFFFFFFFF}
_TCS_WIDTH = {"flags": _U64, "ossa": _U64, "nssa": _U32, "oentry": _U64,
              "ofsbase": _U64, "ogsbase": _U64, "fslimit": _U32, "gslimit": _U32}


def encode_tcs(*, flags: int = 0, ossa: int = 0, nssa: int = 1, oentry: int = 0,
               ofsbase: int = 0, ogsbase: int = 0, fslimit: int = 0xFFFFFFFF,
               gslimit: int = 0xFFFFFFFF) -> bytes:
    """A 4096-byte TCS page. STATE, CSSA and AEP (set by the CPU) are 0, as are the
    4024 reserved bytes."""
    return _TCS.pack(0, flags, ossa, 0, nssa, oentry, 0, ofsbase, ogsbase, fslimit, gslimit)


def decode_tcs(page: bytes) -> dict | None:
    """The loader-set fields of a TCS page, or None if ``page`` is not something
    ``encode_tcs`` produces (CPU-owned fields or reserved bytes non-zero)."""
    if len(page) != PAGE_SIZE:
        return None
    state, flags, ossa, cssa, nssa, oentry, aep, ofsbase, ogsbase, fsl, gsl = \
        _TCS.unpack(page)
    if state or cssa or aep or any(page[_TCS.size - 4024:]):
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


def _tcs_pages(fields: dict, pages: int, ssa_frame_size: int) -> bytes:
    """Consecutive TCS pages: page i gets OSSA + i·NSSA·SSAFRAMESIZE pages, so each
    thread has its own SSA frames; the other fields are shared."""
    out = []
    for i in range(pages):
        f = dict(fields)
        f["ossa"] = fields["ossa"] + i * fields["nssa"] * ssa_frame_size * PAGE_SIZE
        if f["ossa"] > _U64:
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


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def covering_size(end: int) -> int:
    """The kselftest's encl_size: the smallest power of two >= 4096 that is >= end."""
    size = PAGE_SIZE
    while size < end:
        size <<= 1
    return size


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
        if not isinstance(self.size, int) or not _is_pow2(self.size) or self.size > _U64:
            raise ImageError(f"size {self.size!r} is not a power of two")
        for name, limit in (("ssa_frame_size", _U32), ("attributes", _U64), ("xfrm", _U64),
                            ("miscselect", _U32), ("misc_mask", _U32),
                            ("attributes_mask", _U64), ("xfrm_mask", _U64),
                            ("isvprodid", _U16), ("isvsvn", _U16), ("vendor", _U32),
                            ("date", _U32)):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v <= limit:
                raise ImageError(f"{name} {v!r} out of range")
        seen: list[Segment] = []
        for seg in self.segments:
            label = f"segment {seg.name or '#%d' % len(seen)}"
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
            for other in seen:
                if seg.offset < other.end and other.offset < seg.end:
                    raise ImageError(f"{label}: [{seg.offset:#x}, {seg.end:#x}) overlaps "
                                     f"segment {other.name} [{other.offset:#x}, "
                                     f"{other.end:#x})")
            seen.append(seg)

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

    def unsigned_sigstruct(self) -> _sigstruct.Sigstruct:
        return _sigstruct.build(
            self.measure(), attributes=self.attributes, xfrm=self.xfrm,
            attributes_mask=self.attributes_mask, xfrm_mask=self.xfrm_mask,
            miscselect=self.miscselect, misc_mask=self.misc_mask,
            isvprodid=self.isvprodid, isvsvn=self.isvsvn, vendor=self.vendor,
            date=self.date)

    def sigstruct(self, key) -> bytes:
        """The signed SIGSTRUCT (1808 bytes) for this image, signed with ``key``."""
        return _sigstruct.sign(self.unsigned_sigstruct(), key).pack()

    def secs(self, base: int = 0) -> bytes:
        """The 4096-byte SECS a loader passes to SGX_IOC_ENCLAVE_CREATE (§1.4)."""
        head = struct.pack("<QQII24xQQ", self.size, base, self.ssa_frame_size,
                           self.miscselect, self.attributes, self.xfrm)
        return head + bytes(SECS_SIZE - len(head))

    # -- loaders --

    @classmethod
    def load(cls, path: str, heap_size: int = PAGE_SIZE) -> EnclaveImage:
        """An ELF (by its magic) or a declarative image file."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ImageError(e.strerror or str(e), path) from None
        if raw[:4] == b"\x7fELF":
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
        """The kselftest loader's image (load.c encl_load, spec §5.a step 3).

        PT_LOAD segments in program-header order. #0 must be exactly PF_R|PF_W and
        becomes TCS pages (SECINFO TCS, perms 0, prot RW); the others become REG
        pages with SECINFO perms and prot from p_flags. Enclave offset =
        (p_offset & ~0xfff) - (first p_offset & ~0xfff); size = p_filesz rounded up
        to pages; contents = the file from p_offset & ~0xfff (zero past EOF, as in a
        file mapping's last page). Then an unmeasured REG RW heap of ``heap_size``
        bytes right after the last segment (0: no heap). ELRANGE = the smallest
        power of two >= 4096 covering everything.
        """
        import io

        from elftools.elf.elffile import ELFFile

        if isinstance(source, (bytes, bytearray)):
            raw = bytes(source)
            path = path or "<elf>"
        else:
            path = path or os.fspath(source)
            try:
                with open(source, "rb") as f:
                    raw = f.read()
            except OSError as e:
                raise ImageError(e.strerror or str(e), path) from None
        if heap_size < 0 or heap_size % PAGE_SIZE:
            raise ImageError(f"heap size {heap_size:#x} is not a multiple of the page size",
                             path)
        try:
            elf = ELFFile(io.BytesIO(raw))
            phdrs = [(i, s.header) for i, s in enumerate(elf.iter_segments())]
            sections = list(elf.iter_sections())
        except Exception as e:     # pyelftools raises ELFError and construct errors
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ImageError(f"not a valid ELF file: {reason}", path) from None

        segments: list[Segment] = []
        src_offset = 0
        for i, ph in phdrs:
            if ph.p_type != "PT_LOAD":
                continue
            flags = ph.p_flags
            if flags & ~(_PF_R | _PF_W | _PF_X):
                raise ImageError(f"program header {i} has invalid segment flags "
                                 f"{flags:#04x}", path)
            if not segments and flags != _PF_R | _PF_W:
                raise ImageError(f"TCS (first PT_LOAD, program header {i}) has invalid "
                                 f"segment flags {flags:#04x}; it must be exactly PF_R|PF_W",
                                 path)
            start = ph.p_offset & ~(PAGE_SIZE - 1)
            if not segments:
                src_offset = start
                secinfo, prot = SGX_SECINFO_TCS, PROT_READ | PROT_WRITE
            else:
                prot = ((PROT_READ if flags & _PF_R else 0) |
                        (PROT_WRITE if flags & _PF_W else 0) |
                        (PROT_EXEC if flags & _PF_X else 0))
                secinfo = SGX_SECINFO_REG | prot
            if start < src_offset:
                raise ImageError(f"program header {i}: p_offset {ph.p_offset:#x} lies "
                                 f"before the TCS segment's {src_offset:#x}", path)
            size = (ph.p_filesz + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
            if size == 0:
                raise ImageError(f"program header {i}: PT_LOAD with p_filesz 0 "
                                 "(ADD_PAGES rejects a zero length)", path)
            data = raw[start:start + size]
            data += bytes(size - len(data))
            name = _segment_name(sections, ph, len(segments))
            segments.append(Segment(start - src_offset, data, secinfo, prot, True, name))
        if not segments:
            raise ImageError("no PT_LOAD segments", path)
        if heap_size:
            segments.append(Segment(segments[-1].end, bytes(heap_size),
                                    SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W,
                                    PROT_READ | PROT_WRITE, False, "heap"))
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
        return _TextParser(path or "<text>", base_dir).parse(text)

    def to_text(self) -> str:
        """The image in the declarative format; ``from_text(to_text())`` gives an
        equal image. Contents are written as ``fill=`` when uniform or a ramp, as
        TCS fields when they decode as such, otherwise inline as ``data=`` hex."""
        self.validate()
        lines = ["# vmsim enclave image", f"size = {self.size:#x}",
                 f"ssa_frame_size = {self.ssa_frame_size}",
                 f"attributes = {_flags_text(self.attributes, ATTRIBUTE_NAMES)}",
                 f"xfrm = {self.xfrm:#x}"]
        if self.miscselect:
            lines.append(f"miscselect = {_flags_text(self.miscselect, MISC_NAMES)}")
        for key in ("misc_mask", "attributes_mask", "xfrm_mask", "isvprodid", "isvsvn",
                    "vendor", "date"):
            v = getattr(self, key)
            if v:
                lines.append(f"{key} = {v:#x}")
        names = _unique_names(self.segments)
        for seg, name in zip(self.segments, names):
            words = [f"segment {name}", f"offset={seg.offset:#x}", f"pages={seg.pages}"]
            if seg.is_tcs:
                words.append("type=TCS")
                if seg.perms:
                    raise ImageError(f"segment {name}: TCS with SECINFO perms "
                                     f"{perms_str(seg.perms)} cannot be written as text")
                default_prot = PROT_READ | PROT_WRITE
            else:
                if seg.perms & SGX_SECINFO_W and not seg.perms & SGX_SECINFO_R:
                    raise ImageError(f"segment {name}: perms W without R cannot be "
                                     "written as text")
                words.append(f"perms={perms_str(seg.perms)}")
                default_prot = perms_to_prot(seg.secinfo_flags)
            if seg.secinfo_flags & ~(SGX_SECINFO_PAGE_TYPE_MASK | SGX_SECINFO_PERMISSION_MASK):
                raise ImageError(f"segment {name}: SECINFO flags {seg.secinfo_flags:#x} "
                                 "have bits the text format cannot express")
            if seg.prot != default_prot:
                words.append(f"prot={perms_str(seg.prot)}")
            words.extend(_content_words(seg, self.ssa_frame_size))
            words.append("measured" if seg.measured else "unmeasured")
            lines.append(" ".join(words))
        return "\n".join(lines) + "\n"


_PF_X, _PF_W, _PF_R = 1, 2, 4


def _segment_name(sections, ph, index: int) -> str:
    """The first section inside the PT_LOAD (".text" -> "text"), else "segN"."""
    for sec in sections:
        h = sec.header
        if not h.sh_size or h.sh_type == "SHT_NOBITS" or not sec.name:
            continue
        if ph.p_offset <= h.sh_offset and h.sh_offset + h.sh_size <= ph.p_offset + ph.p_filesz:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", sec.name.lstrip("."))
            if name:
                return name
    return f"seg{index}"


def _unique_names(segments: list[Segment]) -> list[str]:
    out, used = [], set()
    for i, seg in enumerate(segments):
        base = seg.name if _NAME_RE.fullmatch(seg.name or "") else f"seg{i}"
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        out.append(name)
    return out


def _flags_text(value: int, names: dict[str, int]) -> str:
    parts, rest = [], value
    for name, bit in names.items():
        if value & bit:
            parts.append(name)
            rest &= ~bit
    if rest or not parts:
        parts.append(f"{rest:#x}")
    return "|".join(parts)


def _content_words(seg: Segment, ssa_frame_size: int) -> list[str]:
    data = seg.data
    if not any(data):
        return []
    if data.count(data[:1]) == len(data):
        return [f"fill={data[0]:#04x}"]
    if data == _ramp(len(data)):
        return ["fill=ramp"]
    if seg.is_tcs:
        fields = decode_tcs(data[:PAGE_SIZE])
        if fields is not None:
            try:
                same = _tcs_pages(fields, seg.pages, ssa_frame_size) == data
            except ValueError:
                same = False
            if same:
                return [f"{k}={fields[k]:#x}" for k in TCS_FIELDS
                        if fields[k] != TCS_DEFAULTS[k] or k == "ossa"]
    return ["data=" + data.rstrip(b"\0").hex()]


def _ramp(n: int) -> bytes:
    return bytes(range(256)) * (n // 256) + bytes(range(n % 256))


# --- the declarative format ---

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_HEADER_KEYS = {
    # key: (limit, flag names or None)
    "size": (_U64, None),
    "ssa_frame_size": (_U32, None),
    "attributes": (_U64, ATTRIBUTE_NAMES),
    "xfrm": (_U64, None),
    "miscselect": (_U32, MISC_NAMES),
    "misc_mask": (_U32, MISC_NAMES),
    "attributes_mask": (_U64, ATTRIBUTE_NAMES),
    "xfrm_mask": (_U64, None),
    "isvprodid": (_U16, None),
    "isvsvn": (_U16, None),
    "vendor": (_U32, None),
    "date": (_U32, None),
}
_SEGMENT_KEYS = {"offset", "pages", "type", "perms", "prot", "fill", "hex", "bin",
                 "data"} | set(TCS_FIELDS)
_CONTENT_KEYS = ("fill", "hex", "bin", "data")


class _TextParser:
    def __init__(self, path: str, base_dir: str):
        self.path = path
        self.base_dir = base_dir
        self.lineno = 0

    def error(self, reason: str, line: int | None = None) -> ImageError:
        return ImageError(reason, self.path, self.lineno if line is None else line)

    def parse(self, text: str) -> EnclaveImage:
        header: dict[str, int] = {}
        header_line: dict[str, int] = {}
        segments: list[tuple[int, Segment]] = []     # (line, segment)
        pending_tcs: list[tuple[int, Segment, dict]] = []
        for self.lineno, line in enumerate(text.splitlines(), 1):
            try:
                lex = shlex.shlex(line, posix=True)
                lex.whitespace_split = True
                lex.commenters = "#"
                tokens = list(lex)
            except ValueError as e:
                raise self.error(f"cannot split line: {e}") from None
            if not tokens:
                continue
            if tokens[0] == "segment":
                seg, tcs = self.segment(tokens[1:], segments)
                segments.append((self.lineno, seg))
                if tcs is not None:
                    pending_tcs.append((self.lineno, seg, tcs))
                continue
            joined = " ".join(tokens)
            if "=" not in joined:
                raise self.error(f"expected 'key = value' or 'segment NAME ...', "
                                 f"got {tokens[0]!r}")
            key, value = (s.strip() for s in joined.split("=", 1))
            if key not in _HEADER_KEYS:
                raise self.error(f"unknown key {key!r} (known: "
                                 f"{', '.join(_HEADER_KEYS)}, segment)")
            if key in header:
                raise self.error(f"{key} given twice (first on line {header_line[key]})")
            limit, names = _HEADER_KEYS[key]
            header[key] = self.number(key, value, limit, names)
            header_line[key] = self.lineno
            if key == "size" and not _is_pow2(header[key]):
                raise self.error(f"size {header[key]:#x} is not a power of two")
            if key == "ssa_frame_size" and header[key] == 0:
                raise self.error("ssa_frame_size must be at least 1")
        end_line = self.lineno

        ssa = header.get("ssa_frame_size", 1)
        for line, seg, tcs in pending_tcs:       # OSSA stride needs ssa_frame_size
            try:
                seg.data = _tcs_pages(tcs, seg.pages, ssa)
            except ValueError as e:
                raise self.error(f"segment {seg.name}: {e}", line) from None

        if "size" in header:
            size = header["size"]
            for line, seg in segments:
                if seg.end > size:
                    raise self.error(f"segment {seg.name} [{seg.offset:#x}, {seg.end:#x}) "
                                     f"does not fit in size {size:#x}", line)
        elif segments:
            size = covering_size(max(seg.end for _, seg in segments))
        else:
            raise self.error("no segments and no size: say 'size = ...'",
                             max(end_line, 1))
        image = EnclaveImage(size=size, segments=[s for _, s in segments],
                             **{k: v for k, v in header.items() if k != "size"})
        try:
            image.validate()
        except ImageError as e:        # should have been caught above; keep a location
            raise self.error(e.reason, max(end_line, 1)) from None
        return image

    def number(self, key: str, value: str, limit: int, names: dict | None = None) -> int:
        """An integer (decimal, 0x, 0o, 0b, '_' separators) or, where the key has
        flag names, NAME|NAME|0x.. ."""
        parts = [p.strip() for p in value.split("|")] if names else [value.strip()]
        total = 0
        for p in parts:
            if names and p.upper().removeprefix("SGX_ATTR_").removeprefix("SGX_MISC_") in names:
                total |= names[p.upper().removeprefix("SGX_ATTR_").removeprefix("SGX_MISC_")]
                continue
            try:
                v = int(p, 0)
            except ValueError:
                hint = f" or one of {'|'.join(names)}" if names else ""
                raise self.error(f"{key}: {p!r} is not a number{hint}") from None
            if v < 0:
                raise self.error(f"{key}: {p!r} is negative")
            total |= v
        if total > limit:
            raise self.error(f"{key}: {total:#x} does not fit in {limit.bit_length()} bits")
        return total

    def perms(self, key: str, value: str) -> int:
        v = value.upper()
        if v in ("NONE", "-", "0"):
            return 0
        if not v or any(c not in "RWX" for c in v) or len(set(v)) != len(v):
            raise self.error(f"{key}: {value!r} is not a permission set "
                             "(letters R, W, X, or NONE)")
        return ((SGX_SECINFO_R if "R" in v else 0) | (SGX_SECINFO_W if "W" in v else 0)
                | (SGX_SECINFO_X if "X" in v else 0))

    def segment(self, words: list[str], previous: list[tuple[int, Segment]]):
        if not words:
            raise self.error("segment needs a name")
        name = words[0]
        if not _NAME_RE.fullmatch(name):
            raise self.error(f"segment name {name!r} must match [A-Za-z_][A-Za-z0-9_.-]*")
        for line, seg in previous:
            if seg.name == name:
                raise self.error(f"segment {name} already defined on line {line}")
        opts: dict[str, str] = {}
        measured: bool | None = None
        for w in words[1:]:
            if "=" not in w:
                if w in ("measured", "unmeasured"):
                    if measured is not None:
                        raise self.error(f"segment {name}: measured/unmeasured given twice")
                    measured = w == "measured"
                    continue
                raise self.error(f"segment {name}: unexpected word {w!r} (options are "
                                 "key=value, plus 'measured' or 'unmeasured')")
            k, v = w.split("=", 1)
            if k not in _SEGMENT_KEYS:
                raise self.error(f"segment {name}: unknown option {k!r}")
            if k in opts:
                raise self.error(f"segment {name}: {k} given twice")
            opts[k] = v

        kind = opts.get("type", "REG").upper()
        if kind not in ("REG", "TCS"):
            raise self.error(f"segment {name}: type {opts['type']!r} is neither REG nor TCS")
        tcs_keys = [k for k in TCS_FIELDS if k in opts]
        content_keys = [k for k in _CONTENT_KEYS if k in opts]
        if len(content_keys) > 1:
            raise self.error(f"segment {name}: give at most one of fill=, hex=, bin=, data= "
                             f"(got {', '.join(content_keys)})")
        if kind == "TCS":
            secinfo = SGX_SECINFO_TCS
            if "perms" in opts and self.perms(f"segment {name}: perms", opts["perms"]):
                raise self.error(f"segment {name}: a TCS takes no perms (its SECINFO "
                                 "permissions must be 0; ADD_PAGES refuses others)")
            if tcs_keys and content_keys:
                raise self.error(f"segment {name}: give TCS fields or {content_keys[0]}=, "
                                 "not both")
        else:
            if tcs_keys:
                raise self.error(f"segment {name}: {tcs_keys[0]}= is a TCS field, but the "
                                 "segment is not type=TCS")
            if "perms" not in opts:
                raise self.error(f"segment {name}: a REG segment needs perms= "
                                 "(R, RW, RX, RWX, X or NONE)")
            perms = self.perms(f"segment {name}: perms", opts["perms"])
            if perms & SGX_SECINFO_W and not perms & SGX_SECINFO_R:
                raise self.error(f"segment {name}: perms W without R (ADD_PAGES refuses it)")
            secinfo = SGX_SECINFO_REG | perms
        prot = (self.perms(f"segment {name}: prot", opts["prot"]) if "prot" in opts
                else (PROT_READ | PROT_WRITE if kind == "TCS" else perms_to_prot(secinfo)))

        if "offset" in opts:
            offset = self.number(f"segment {name}: offset", opts["offset"], _U64)
        else:
            offset = previous[-1][1].end if previous else 0
        if offset % PAGE_SIZE:
            raise self.error(f"segment {name}: offset {offset:#x} is not page aligned")

        content = self.content(name, content_keys[0], opts[content_keys[0]]) \
            if content_keys else None
        if "pages" in opts:
            pages = self.number(f"segment {name}: pages", opts["pages"], _U64 // PAGE_SIZE)
            if pages == 0:
                raise self.error(f"segment {name}: pages must be at least 1")
        elif isinstance(content, bytes) and content:
            pages = (len(content) + PAGE_SIZE - 1) // PAGE_SIZE
        else:
            raise self.error(f"segment {name}: pages= is required")
        length = pages * PAGE_SIZE
        if offset + length > _U64:
            raise self.error(f"segment {name}: offset + size overflows")

        tcs = None
        if content is None:
            data = bytes(length)
            if tcs_keys:
                tcs = dict(TCS_DEFAULTS)
                for k in tcs_keys:
                    tcs[k] = self.number(f"segment {name}: {k}", opts[k], _TCS_WIDTH[k])
        elif isinstance(content, int):             # one fill byte
            data = bytes([content]) * length
        elif content == "ramp":
            data = _ramp(length)
        else:
            if len(content) > length:
                raise self.error(f"segment {name}: {len(content)} content bytes do not fit "
                                 f"in {pages} page(s)")
            data = content + bytes(length - len(content))

        for line, seg in previous:
            if offset < seg.end and seg.offset < offset + length:
                raise self.error(f"segment {name} [{offset:#x}, {offset + length:#x}) "
                                 f"overlaps segment {seg.name} [{seg.offset:#x}, "
                                 f"{seg.end:#x}) from line {line}")
        seg = Segment(offset, data, secinfo, prot,
                      True if measured is None else measured, name)
        return seg, tcs

    def content(self, name: str, key: str, value: str):
        """fill -> int byte or "ramp"; hex/bin/data -> bytes."""
        if key == "fill":
            v = value.lower()
            if v in ("zero", "zeros", "0"):
                return 0
            if v == "ramp":
                return "ramp"
            try:
                b = int(v, 0)
            except ValueError:
                b = -1
            if not 0 <= b <= 255:
                raise self.error(f"segment {name}: fill={value!r} is not zero, ramp or a "
                                 "byte value 0..0xff")
            return b
        if key == "data":
            return self.hex_text(name, value, self.path, self.lineno, inline=True)
        fpath = os.path.join(self.base_dir, value)
        try:
            with open(fpath, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise self.error(f"segment {name}: {key}={value}: {e.strerror or e}") from None
        if key == "bin":
            return raw
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"segment {name}: {key}={value}: not a text hex file") from None
        return self.hex_text(name, text, fpath, 1, inline=False)

    def hex_text(self, name: str, text: str, where: str, first_line: int,
                 inline: bool) -> bytes:
        """Hex digits in pairs; whitespace, ':' and '#' comments (files only) ignored."""
        out = bytearray()
        for n, line in enumerate(text.splitlines() or [""], first_line):
            if not inline:
                line = line.split("#", 1)[0]
            digits = re.sub(r"[\s:]", "", line)
            if digits.lower().startswith("0x"):
                digits = digits[2:]
            bad = re.search(r"[^0-9A-Fa-f]", digits)
            if bad:
                msg = f"segment {name}: bad hex digit {bad.group()!r}"
                raise ImageError(msg, where, n) if not inline else self.error(msg)
            if len(digits) % 2:
                msg = f"segment {name}: odd number of hex digits"
                raise ImageError(msg, where, n) if not inline else self.error(msg)
            out += bytes.fromhex(digits)
        return bytes(out)


__all__ = ["EnclaveImage", "Segment", "ImageError", "encode_tcs", "decode_tcs", "tcs_after_eadd",
           "covering_size", "perms_to_prot", "perms_str", "ATTRIBUTE_NAMES", "TCS_FIELDS",
           "TCS_DEFAULTS"]
