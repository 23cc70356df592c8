"""Reading an enclave ELF as the kselftest loader does: tools/testing/selftests/sgx/
load.c encl_load() (spec/sgx-driver.md §5.a step 3), which takes the file as an
Elf64_Ehdr and its Elf64_Phdr table.

PT_LOAD segments in program-header order. #0 must be exactly PF_R|PF_W and becomes TCS
pages (SECINFO TCS, perms 0, prot RW); the others become REG pages with SECINFO perms
and prot from p_flags. Enclave offset = (p_offset & ~0xfff) - (first p_offset &
~0xfff); size = p_filesz rounded up to pages; contents = the file from p_offset &
~0xfff (zero past EOF, as in a file mapping's last page). Then an unmeasured REG RW heap
right after the last segment. A segment is named after the first section inside it.

The headers are read here with struct, every table checked against the file's size
first, so a hostile ELF costs time linear in its size; the image's pages are bounded
by MAX_IMAGE_SIZE before any is built.
"""

from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass

from ..arch.x86.sgx.defs import SGX_SECINFO_R, SGX_SECINFO_REG, SGX_SECINFO_TCS, SGX_SECINFO_W
from ..syscalls.inputs import cut, size_text
from ..uapi import PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE
from .segment import MAX_IMAGE_SIZE, ImageError, Segment

#: p_flags bits (include/uapi/linux/elf.h)
PF_X, PF_W, PF_R = 1, 2, 4
PT_LOAD = 1
SHT_NOBITS = 8
#: e_ident: ELFCLASS64, ELFDATA2LSB
ELFCLASS64, ELFDATA2LSB = 2, 1
#: e_shnum / e_shstrndx values that say "look in section header 0" (elf.h)
SHN_UNDEF, SHN_XINDEX = 0, 0xFFFF

#: Elf64_Ehdr from e_type on (after the 16-byte e_ident), Elf64_Phdr, Elf64_Shdr
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
#: the longest section name read (a segment's name is cosmetic)
_NAME_MAX = 64


@dataclass
class _Phdr:
    index: int
    p_flags: int
    p_offset: int
    p_filesz: int


@dataclass
class _Shdr:
    sh_name: int
    sh_type: int
    sh_offset: int
    sh_size: int


def kselftest_segments(raw: bytes, heap_size: int, path: str) -> list[Segment]:
    """The segments encl_load() adds for the ELF file ``raw``, then a heap of
    ``heap_size`` bytes (0: no heap). ImageError (naming ``path``) if the file is not
    an ELF the loader accepts, or its pages are more than MAX_IMAGE_SIZE."""
    if heap_size < 0 or heap_size % PAGE_SIZE:
        raise ImageError(f"heap size {heap_size:#x} is not a multiple of the page size", path)
    if heap_size > MAX_IMAGE_SIZE:
        raise ImageError(f"heap size {cut(hex(heap_size))} is more than "
                         f"{size_text(MAX_IMAGE_SIZE)}, the most an image may hold", path)
    phdrs, shdrs, strtab = _headers(raw, path)
    loads = _load_segments(raw, phdrs, MAX_IMAGE_SIZE - heap_size, path)
    if not loads:
        raise ImageError("no PT_LOAD segments", path)
    segments = [seg for _, seg in loads]
    for name, seg in zip(_names_inside(raw, [ph for ph, _ in loads], shdrs, strtab), segments,
                         strict=True):
        seg.name = name
    if heap_size:
        segments.append(Segment(segments[-1].end, bytes(heap_size),
                                SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W,
                                PROT_READ | PROT_WRITE, False, "heap"))
    return segments


def _load_segments(raw: bytes, phdrs: list[_Phdr], room: int,
                   path: str) -> list[tuple[_Phdr, Segment]]:
    """encl_load()'s loop over the PT_LOAD headers: their segments, unnamed; at most
    `room` bytes of pages."""
    out: list[tuple[_Phdr, Segment]] = []
    src_offset = 0
    for ph in phdrs:
        i, flags = ph.index, ph.p_flags
        if flags & ~(PF_R | PF_W | PF_X):
            raise ImageError(f"program header {i} has invalid segment flags {flags:#04x}", path)
        if not out and flags != PF_R | PF_W:
            raise ImageError(f"TCS (first PT_LOAD, program header {i}) has invalid "
                             f"segment flags {flags:#04x}; it must be exactly PF_R|PF_W",
                             path)
        start = ph.p_offset & ~(PAGE_SIZE - 1)
        if not out:
            src_offset = start
            secinfo, prot = SGX_SECINFO_TCS, PROT_READ | PROT_WRITE
        else:
            prot = ((PROT_READ if flags & PF_R else 0) |
                    (PROT_WRITE if flags & PF_W else 0) |
                    (PROT_EXEC if flags & PF_X else 0))
            secinfo = SGX_SECINFO_REG | prot
        if start < src_offset:
            raise ImageError(f"program header {i}: p_offset {ph.p_offset:#x} lies "
                             f"before the TCS segment's {src_offset:#x}", path)
        size = (ph.p_filesz + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        if size == 0:
            raise ImageError(f"program header {i}: PT_LOAD with p_filesz 0 "
                             "(ADD_PAGES rejects a zero length)", path)
        if size > room:
            raise ImageError(f"program header {i}: p_filesz {ph.p_filesz:#x} takes the "
                             f"image past {size_text(MAX_IMAGE_SIZE)} (the heap included), "
                             "the most an image may hold", path)
        room -= size
        data = raw[start:start + size]
        data += bytes(size - len(data))
        out.append((ph, Segment(start - src_offset, data, secinfo, prot, True)))
    return out


def _headers(raw: bytes, path: str) -> tuple[list[_Phdr], list[_Shdr], int | None]:
    """The PT_LOAD program headers, the section headers and the offset of the
    section-name string table (None without one)."""
    if len(raw) < _EHDR.size:
        raise ImageError("not a valid ELF file: shorter than its ELF header", path)
    (ident, _type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize,
     phnum, shentsize, shnum, shstrndx) = _EHDR.unpack_from(raw)
    if ident[4] != ELFCLASS64 or ident[5] != ELFDATA2LSB:
        raise ImageError("not a valid ELF file: not ELF64 little-endian (encl_load() reads "
                         "an Elf64_Ehdr)", path)
    shdr0 = _table(raw, shoff, min(shoff, 1), shentsize, _SHDR, "section", path)
    if shoff and shnum == SHN_UNDEF and shdr0:
        shnum = shdr0[0][5]                     # sh_size of section 0
    if shoff and shstrndx == SHN_XINDEX and shdr0:
        shstrndx = shdr0[0][6]                  # sh_link of section 0
    phdrs = [_Phdr(i, ph[1], ph[2], ph[5])
             for i, ph in enumerate(_table(raw, phoff, phnum, phentsize, _PHDR, "program", path))
             if ph[0] == PT_LOAD]
    shdrs = [_Shdr(sh[0], sh[1], sh[4], sh[5])
             for sh in _table(raw, shoff, shnum if shoff else 0, shentsize, _SHDR, "section",
                              path)]
    strtab = shdrs[shstrndx].sh_offset if SHN_UNDEF < shstrndx < len(shdrs) else None
    return phdrs, shdrs, strtab


def _table(raw: bytes, offset: int, count: int, entsize: int, entry: struct.Struct,
           what: str, path: str) -> list[tuple]:
    """The `count` entries of a header table, checked to lie inside the file."""
    if not count:
        return []
    if entsize != entry.size:
        raise ImageError(f"not a valid ELF file: {what} header size {entsize}, not "
                         f"{entry.size}", path)
    if offset + count * entsize > len(raw):
        raise ImageError(f"not a valid ELF file: {count} {what} headers at {offset:#x} "
                         "pass the end of the file", path)
    return [entry.unpack_from(raw, offset + i * entsize) for i in range(count)]


def _names_inside(raw: bytes, loads: list[_Phdr], shdrs: list[_Shdr],
                  strtab: int | None) -> list[str]:
    """Each PT_LOAD's name: the first section (in header order) with contents and a
    name that lies inside it (".text" -> "text"), else "segN". A section is looked for
    in the one PT_LOAD starting at or below it: an image whose PT_LOADs overlap is
    refused anyway."""
    names = [f"seg{i}" for i in range(len(loads))]
    named = [False] * len(loads)
    order = sorted(range(len(loads)), key=lambda i: loads[i].p_offset)
    starts = [loads[i].p_offset for i in order]
    for sh in shdrs:
        if not sh.sh_size or sh.sh_type == SHT_NOBITS or strtab is None:
            continue
        at = bisect.bisect_right(starts, sh.sh_offset) - 1
        if at < 0:
            continue
        i = order[at]
        ph = loads[i]
        if named[i] or sh.sh_offset + sh.sh_size > ph.p_offset + ph.p_filesz:
            continue
        name = _section_name(raw, strtab + sh.sh_name)
        if name:
            names[i], named[i] = name, True
    return names


def _section_name(raw: bytes, at: int) -> str:
    """The section name at `at` in the file, as a segment name: "" if none."""
    end = raw.find(b"\0", at, at + _NAME_MAX)
    text = raw[at:end if end >= 0 else at + _NAME_MAX].decode("latin-1")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text.lstrip("."))
