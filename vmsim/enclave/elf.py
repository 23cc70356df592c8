"""Reading an enclave ELF as the kselftest loader does: tools/testing/selftests/sgx/
load.c encl_load() (spec/sgx-driver.md §5.a step 3), with pyelftools.

PT_LOAD segments in program-header order. #0 must be exactly PF_R|PF_W and becomes TCS
pages (SECINFO TCS, perms 0, prot RW); the others become REG pages with SECINFO perms
and prot from p_flags. Enclave offset = (p_offset & ~0xfff) - (first p_offset &
~0xfff); size = p_filesz rounded up to pages; contents = the file from p_offset &
~0xfff (zero past EOF, as in a file mapping's last page). Then an unmeasured REG RW heap
right after the last segment.
"""

from __future__ import annotations

import io
import re

from elftools.elf.elffile import ELFFile

from ..arch.x86.sgx.defs import SGX_SECINFO_R, SGX_SECINFO_REG, SGX_SECINFO_TCS, SGX_SECINFO_W
from ..uapi import PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE
from .segment import ImageError, Segment

#: p_flags bits (include/uapi/linux/elf.h)
PF_X, PF_W, PF_R = 1, 2, 4


def kselftest_segments(raw: bytes, heap_size: int, path: str) -> list[Segment]:
    """The segments encl_load() adds for the ELF file ``raw``, then a heap of
    ``heap_size`` bytes (0: no heap). ImageError (naming ``path``) if the file is not
    an ELF the loader accepts."""
    if heap_size < 0 or heap_size % PAGE_SIZE:
        raise ImageError(f"heap size {heap_size:#x} is not a multiple of the page size", path)
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
        if flags & ~(PF_R | PF_W | PF_X):
            raise ImageError(f"program header {i} has invalid segment flags {flags:#04x}", path)
        if not segments and flags != PF_R | PF_W:
            raise ImageError(f"TCS (first PT_LOAD, program header {i}) has invalid "
                             f"segment flags {flags:#04x}; it must be exactly PF_R|PF_W",
                             path)
        start = ph.p_offset & ~(PAGE_SIZE - 1)
        if not segments:
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
    return segments


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
