"""The declarative enclave image format (docs/enclave-image-format.md): a small
line-based text that says exactly what a loader passes to the SGX driver, the SECS
fields SGX_IOC_ENCLAVE_CREATE sees and, in EADD order, each run of pages
SGX_IOC_ENCLAVE_ADD_PAGES adds. `parse_image` reads it, `format_image` writes it.

Both work on the image's parts, the header (SECS and SIGSTRUCT fields, by the names
of EnclaveImage's fields) and the ordered segments; EnclaveImage.from_text() and
to_text() (image.py) put them together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from sortedcontainers import SortedList  # type: ignore[import-untyped]  # ships no types

from ..arch.x86.sgx.defs import (
    SGX_ATTR_ASYNC_EXIT_NOTIFY,
    SGX_ATTR_DEBUG,
    SGX_ATTR_EINITTOKENKEY,
    SGX_ATTR_INIT,
    SGX_ATTR_KSS,
    SGX_ATTR_MODE64BIT,
    SGX_ATTR_PROVISIONKEY,
    SGX_MISC_EXINFO,
    SGX_SECINFO_PAGE_TYPE_MASK,
    SGX_SECINFO_PERMISSION_MASK,
    SGX_SECINFO_R,
    SGX_SECINFO_REG,
    SGX_SECINFO_TCS,
    SGX_SECINFO_W,
    SGX_SECINFO_X,
)
from ..syscalls.inputs import MAX_INPUT_SIZE, InputError, cut, quote, read_bytes, size_text
from ..uapi import PAGE_SIZE, PROT_READ, PROT_WRITE
from .segment import (
    MAX_IMAGE_SIZE,
    TCS_DEFAULTS,
    TCS_FIELDS,
    U16,
    U32,
    U64,
    ImageError,
    Segment,
    covering_size,
    decode_tcs,
    is_power_of_two,
    perms_str,
    perms_to_prot,
    tcs_pages,
)

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

_TCS_WIDTH = {"flags": U64, "ossa": U64, "nssa": U32, "oentry": U64,
              "ofsbase": U64, "ogsbase": U64, "fslimit": U32, "gslimit": U32}


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
HEADER_KEYS = {
    # key: (limit, flag names or None)
    "size": (U64, None),
    "ssa_frame_size": (U32, None),
    "attributes": (U64, ATTRIBUTE_NAMES),
    "xfrm": (U64, None),
    "miscselect": (U32, MISC_NAMES),
    "misc_mask": (U32, MISC_NAMES),
    "attributes_mask": (U64, ATTRIBUTE_NAMES),
    "xfrm_mask": (U64, None),
    "isvprodid": (U16, None),
    "isvsvn": (U16, None),
    "vendor": (U32, None),
    "date": (U32, None),
}
_SEGMENT_KEYS = {"offset", "pages", "type", "perms", "prot", "fill", "hex", "bin",
                 "data"} | set(TCS_FIELDS)
_CONTENT_KEYS = ("fill", "hex", "bin", "data")


#: a piece of a word, as POSIX shlex splits a line: a run of plain characters, a
#: '...' string (no escapes), a "..." string (\\ escapes \\ and "), an escaped
#: character; possessive, so a word is read in one pass however long it is
_WORD_PIECE = re.compile(r"""[^ \t\r\n'"\\#]++|'[^']*+'|"(?:[^"\\]++|\\.)*+"|\\.""", re.S)
_BLANKS = re.compile(r"[ \t\r\n]*+")
_QUOTED_ESCAPE = re.compile(r'\\([\\"])')


def split_words(line: str) -> list[str]:
    """The words of one line as shlex.split(line, comments=True) gives them (quotes,
    backslash escapes, a `#` comment ending the line), in time linear in the line.
    ValueError for an unclosed quote or a trailing backslash."""
    words: list[str] = []
    pos = _after_blanks(line, 0)
    while pos < len(line) and line[pos] != "#":
        pieces = []
        while (m := _WORD_PIECE.match(line, pos)) is not None:
            piece = m.group()
            if piece[0] == "'":
                pieces.append(piece[1:-1])
            elif piece[0] == '"':
                pieces.append(_QUOTED_ESCAPE.sub(r"\1", piece[1:-1]))
            else:
                pieces.append(piece[1:] if piece[0] == "\\" else piece)
            pos = m.end()
        if pos < len(line) and line[pos] in "'\"":
            backslashes = len(line) - len(line.rstrip("\\"))
            raise ValueError("No escaped character" if line[pos] == '"' and backslashes % 2
                             else "No closing quotation")
        if pos < len(line) and line[pos] == "\\":
            raise ValueError("No escaped character")
        words.append("".join(pieces))
        pos = _after_blanks(line, pos)
    return words


def _after_blanks(line: str, pos: int) -> int:
    m = _BLANKS.match(line, pos)
    assert m is not None                    # [...]*+ matches anywhere
    return m.end()


def parse_image(text: str, path: str = "<text>",
                base_dir: str = ".") -> tuple[dict[str, int], list[Segment]]:
    """The header (always with its size) and the segments of an image in the text
    format. ``path`` names the source in errors; ``hex=``/``bin=`` files are relative
    to ``base_dir``."""
    return _TextParser(path, base_dir).parse(text)


class _TextParser:
    def __init__(self, path: str, base_dir: str):
        self.path = path
        self.base_dir = base_dir
        self.lineno = 0
        self.names: dict[str, int] = {}          # segment name -> its line
        #: the segments so far by offset: (offset, end, name, line), never overlapping
        self.placed: SortedList = SortedList()
        self.room = MAX_IMAGE_SIZE               # the page data the image may still take

    def error(self, reason: str, line: int | None = None) -> ImageError:
        return ImageError(reason, self.path, self.lineno if line is None else line)

    def parse(self, text: str) -> tuple[dict[str, int], list[Segment]]:
        header: dict[str, int] = {}
        header_line: dict[str, int] = {}
        segments: list[tuple[int, Segment]] = []     # (line, segment)
        pending_tcs: list[tuple[int, Segment, dict[str, int]]] = []
        for self.lineno, line in enumerate(text.splitlines(), 1):
            try:
                tokens = split_words(line)
            except ValueError as e:
                raise self.error(f"cannot split line: {e}") from None
            if not tokens:
                continue
            if tokens[0] == "segment":
                seg, tcs = self.segment(tokens[1:], segments, header.get("size"))
                segments.append((self.lineno, seg))
                self.names[seg.name] = self.lineno
                self.placed.add((seg.offset, seg.end, seg.name, self.lineno))
                if tcs is not None:
                    pending_tcs.append((self.lineno, seg, tcs))
                continue
            joined = " ".join(tokens)
            if "=" not in joined:
                raise self.error(f"expected 'key = value' or 'segment NAME ...', "
                                 f"got {quote(tokens[0])}")
            key, value = (s.strip() for s in joined.split("=", 1))
            if key not in HEADER_KEYS:
                raise self.error(f"unknown key {quote(key)} (known: "
                                 f"{', '.join(HEADER_KEYS)}, segment)")
            if key in header:
                raise self.error(f"{key} given twice (first on line {header_line[key]})")
            limit, names = HEADER_KEYS[key]
            header[key] = self.number(key, value, limit, names)
            header_line[key] = self.lineno
            if key == "size" and not is_power_of_two(header[key]):
                raise self.error(f"size {header[key]:#x} is not a power of two")
            if key == "ssa_frame_size" and header[key] == 0:
                raise self.error("ssa_frame_size must be at least 1")
        end_line = self.lineno

        ssa = header.get("ssa_frame_size", 1)
        for seg_line, seg, tcs in pending_tcs:   # OSSA stride needs ssa_frame_size
            try:
                seg.data = tcs_pages(tcs, seg.pages, ssa)
            except ValueError as e:
                raise self.error(f"segment {seg.name}: {e}", seg_line) from None

        if "size" in header:
            size = header["size"]
            for seg_line, seg in segments:
                if seg.end > size:
                    raise self.error(f"segment {seg.name} [{seg.offset:#x}, {seg.end:#x}) "
                                     f"does not fit in size {size:#x}", seg_line)
        elif segments:
            size = covering_size(max(seg.end for _, seg in segments))
        else:
            raise self.error("no segments and no size: say 'size = ...'",
                             max(end_line, 1))
        header["size"] = size
        return header, [s for _, s in segments]

    def number(self, key: str, value: str, limit: int,
               names: dict[str, int] | None = None) -> int:
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
                raise self.error(f"{key}: {quote(p)} is not a number{hint}") from None
            if v < 0:
                raise self.error(f"{key}: {quote(p)} is negative")
            total |= v
        if total > limit:
            raise self.error(f"{key}: {cut(hex(total))} does not fit in {limit.bit_length()} bits")
        return total

    def perms(self, key: str, value: str) -> int:
        v = value.upper()
        if v in ("NONE", "-", "0"):
            return 0
        if not v or any(c not in "RWX" for c in v) or len(set(v)) != len(v):
            raise self.error(f"{key}: {quote(value)} is not a permission set "
                             "(letters R, W, X, or NONE)")
        return ((SGX_SECINFO_R if "R" in v else 0) | (SGX_SECINFO_W if "W" in v else 0)
                | (SGX_SECINFO_X if "X" in v else 0))

    def segment(self, words: list[str], previous: list[tuple[int, Segment]],
                size: int | None) -> tuple[Segment, dict[str, int] | None]:
        """A `segment NAME key=value...` line's segment (and its TCS fields, when the
        pages are built later); its pages are built only once they are known to fit
        the image: in `size` if given so far, in MAX_IMAGE_SIZE, beside the others."""
        if not words:
            raise self.error("segment needs a name")
        name = words[0]
        if not _NAME_RE.fullmatch(name):
            raise self.error(f"segment name {quote(name)} must match [A-Za-z_][A-Za-z0-9_.-]*")
        if name in self.names:
            raise self.error(f"segment {name} already defined on line {self.names[name]}")
        opts: dict[str, str] = {}
        measured: bool | None = None
        for w in words[1:]:
            if "=" not in w:
                if w in ("measured", "unmeasured"):
                    if measured is not None:
                        raise self.error(f"segment {name}: measured/unmeasured given twice")
                    measured = w == "measured"
                    continue
                raise self.error(f"segment {name}: unexpected word {quote(w)} (options are "
                                 "key=value, plus 'measured' or 'unmeasured')")
            k, v = w.split("=", 1)
            if k not in _SEGMENT_KEYS:
                raise self.error(f"segment {name}: unknown option {quote(k)}")
            if k in opts:
                raise self.error(f"segment {name}: {k} given twice")
            opts[k] = v

        kind = opts.get("type", "REG").upper()
        if kind not in ("REG", "TCS"):
            raise self.error(f"segment {name}: type {quote(opts['type'])} is neither REG nor TCS")
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
            offset = self.number(f"segment {name}: offset", opts["offset"], U64)
        else:
            offset = previous[-1][1].end if previous else 0
        if offset % PAGE_SIZE:
            raise self.error(f"segment {name}: offset {offset:#x} is not page aligned")

        content = self.content(name, content_keys[0], opts[content_keys[0]]) \
            if content_keys else None
        if "pages" in opts:
            pages = self.number(f"segment {name}: pages", opts["pages"], U64 // PAGE_SIZE)
            if pages == 0:
                raise self.error(f"segment {name}: pages must be at least 1")
        elif isinstance(content, bytes) and content:
            pages = (len(content) + PAGE_SIZE - 1) // PAGE_SIZE
        else:
            raise self.error(f"segment {name}: pages= is required")
        length = pages * PAGE_SIZE
        if offset + length > U64:
            raise self.error(f"segment {name}: offset + size overflows")
        tcs = None
        if content is None and tcs_keys:
            tcs = dict(TCS_DEFAULTS)
            for k in tcs_keys:
                tcs[k] = self.number(f"segment {name}: {k}", opts[k], _TCS_WIDTH[k])
        if isinstance(content, bytes) and len(content) > length:
            raise self.error(f"segment {name}: {len(content)} content bytes do not fit "
                             f"in {pages} page(s)")
        self.check_room(name, offset, pages, size)

        if content is None:
            data = bytes(length)
        elif isinstance(content, int):             # one fill byte
            data = bytes([content]) * length
        elif isinstance(content, str):             # "ramp"
            data = _ramp(length)
        else:
            data = content + bytes(length - len(content))

        seg = Segment(offset, data, secinfo, prot,
                      True if measured is None else measured, name)
        return seg, tcs

    def check_room(self, name: str, offset: int, pages: int, size: int | None) -> None:
        """ImageError unless `pages` pages at `offset` fit the image, before they are
        built: inside `size` (when given so far), beside every segment so far (two
        sharing a page: ADD_PAGES would refuse the second with EBUSY), and within the
        MAX_IMAGE_SIZE all segments together may hold."""
        end = offset + pages * PAGE_SIZE
        if size is not None and end > size:
            raise self.error(f"segment {name} [{offset:#x}, {end:#x}) does not fit in size "
                             f"{size:#x}")
        below = self.placed.bisect_left((end,))
        if below:
            start, other_end, other, line = self.placed[below - 1]
            if other_end > offset:
                raise self.error(f"segment {name} [{offset:#x}, {end:#x}) overlaps segment "
                                 f"{other} [{start:#x}, {other_end:#x}) from line {line}")
        if end - offset > self.room:
            raise self.error(f"segment {name}: {pages} pages take the image past "
                             f"{size_text(MAX_IMAGE_SIZE)}, the most an image may hold")
        self.room -= end - offset

    def content(self, name: str, key: str, value: str) -> int | str | bytes:
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
                raise self.error(f"segment {name}: fill={quote(value)} is not zero, ramp or a "
                                 "byte value 0..0xff")
            return b
        if key == "data":
            return self.hex_text(name, value, self.path, self.lineno, inline=True)
        fpath = os.path.join(self.base_dir, value)
        try:
            raw = read_bytes(fpath, MAX_IMAGE_SIZE if key == "bin" else MAX_INPUT_SIZE,
                             binary_magic=None if key == "bin" else b"")
        except OSError as e:
            raise self.error(f"segment {name}: {key}={cut(value)}: {e.strerror or e}") from None
        except InputError as e:
            raise self.error(f"segment {name}: {key}={cut(value)}: {e.reason}") from None
        if key == "bin":
            return raw
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"segment {name}: {key}={cut(value)}: not a text hex file") from None
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


def format_image(header: Mapping[str, int], segments: list[Segment]) -> str:
    """The image in the text format; ``parse_image`` gives back an equal header and
    segments. Contents are written as ``fill=`` when uniform or a ramp, as TCS fields
    when they decode as such, otherwise inline as ``data=`` hex."""
    lines = ["# vmsim enclave image", f"size = {header['size']:#x}",
             f"ssa_frame_size = {header['ssa_frame_size']}",
             f"attributes = {_flags_text(header['attributes'], ATTRIBUTE_NAMES)}",
             f"xfrm = {header['xfrm']:#x}"]
    if header['miscselect']:
        lines.append(f"miscselect = {_flags_text(header['miscselect'], MISC_NAMES)}")
    for key in ("misc_mask", "attributes_mask", "xfrm_mask", "isvprodid", "isvsvn",
                "vendor", "date"):
        v = header[key]
        if v:
            lines.append(f"{key} = {v:#x}")
    names = _unique_names(segments)
    for seg, name in zip(segments, names, strict=True):
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
        words.extend(_content_words(seg, header['ssa_frame_size']))
        words.append("measured" if seg.measured else "unmeasured")
        lines.append(" ".join(words))
    return "\n".join(lines) + "\n"


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
                same = tcs_pages(fields, seg.pages, ssa_frame_size) == data
            except ValueError:
                same = False
            if same:
                return [f"{k}={fields[k]:#x}" for k in TCS_FIELDS
                        if fields[k] != TCS_DEFAULTS[k] or k == "ossa"]
    return ["data=" + data.rstrip(b"\0").hex()]


def _ramp(n: int) -> bytes:
    return bytes(range(256)) * (n // 256) + bytes(range(n % 256))
