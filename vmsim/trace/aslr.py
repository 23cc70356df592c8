"""The random bases of an exec recorded with ASLR on, read back from the calls after it.

What fs/binfmt_elf.c load_elf_binary() drew (vmsim.fs.exec.ExecBases) is in no strace
line, but where the dynamic loader and libc then put things is, and the model knows
how each draw moves the layout it builds:

* arch_rnd() lowers mmap_base, and with it ld.so, [vvar], [vvar_vclock], [vdso] and
  every mapping the kernel places after them: the first mmap that lets the kernel
  choose (anonymous, without a hint: ld.so's first call) gives it;
* arch_mmap_rnd() moves a PIE, arch_rnd() ld.so and a static PIE: before main the
  dynamic loader makes each object's PT_GNU_RELRO read-only (glibc's
  _dl_protect_relro(): mprotect(PROT_READ) of the pages it covers whole), so an
  mprotect of that length, at an address the draw can give, outside everything the
  trace itself mapped, is where that object lies;
* arch_randomize_brk() moves start_brk, which brk(NULL) returns, from a page past the
  image (ELF_ET_DYN_BASE for a static PIE).

The stack's draws (randomize_stack_top(), arch_align_stack()) show in no call a program
makes before main: they are left 0, and [stack] ends where an ASLR-off exec puts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from ..fs.binfmt_elf import EHDR, ET_DYN, PT_LOAD, ElfHdr, load_elf_phdrs, maximum_alignment
from ..fs.exec import ExecBases
from ..mm.munmap import page_align
from ..mm.placement import get_unmapped_area
from ..mm.vma import Vma
from ..process import Process
from ..uapi import (
    MAP_32BIT,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_HUGETLB,
    PAGE_MASK,
    PAGE_SIZE,
    PROT_READ,
)
from .format import Record

#: include/uapi/linux/elf.h: the segment the dynamic loader makes read-only after
#: relocation
PT_GNU_RELRO = 0x6474E552
#: how many of a process's records after its execve are read for the bases: the
#: dynamic loader's and libc's start-up, before main
LOOKAHEAD = 256
#: the calls that change the address space before a first mmap could be placed
_RESHAPING = frozenset({"mmap", "munmap", "mremap", "shmat", "shmdt", "mseal"})


class Seen(NamedTuple):
    """A recorded call a base is read from: the address it returned (brk, mmap) or
    changed (mprotect), its length and flags (mmap), its line in the trace."""

    addr: int
    line: int | None
    length: int = 0
    flags: int = 0


@dataclass
class Evidence:
    """What the calls after an execve show of its bases: the first brk(NULL), the first
    mmap when it let the kernel choose and nothing reshaped the address space before
    it, and every mprotect(PROT_READ) of pages the trace did not map itself."""

    brk: Seen | None = None
    first_mmap: Seen | None = None
    read_only: list[Seen] = field(default_factory=list)

    @classmethod
    def gather(cls, records: Iterable[Record]) -> Evidence:
        """From the records of one process after its execve, in order."""
        ev = cls()
        mapped: list[tuple[int, int]] = []
        reshaped = False
        for r in records:
            if r.err is not None or r.ret is None:
                continue
            if r.call == "brk" and r.args[0] == 0 and ev.brk is None:
                ev.brk = Seen(r.ret, r.line)
            elif r.call == "mprotect" and r.args[2] == PROT_READ and \
                    not _inside(mapped, r.args[0], r.args[1]):
                ev.read_only.append(Seen(r.args[0], r.line, page_align(r.args[1])))
            if r.call == "mmap" and not reshaped and _kernel_chooses(r):
                ev.first_mmap = Seen(r.ret, r.line, page_align(r.args[1]), r.args[3])
            if r.call == "mmap":
                mapped.append((r.ret, r.ret + page_align(r.args[1])))
            reshaped = reshaped or r.call in _RESHAPING
        return ev

    def contradicts(self, p: Process) -> bool:
        """Whether the run did not lay out what the model's exec of p laid out: its
        brk(NULL) or its first mmap is elsewhere."""
        return (self.brk is not None and self.brk.addr != p.mm.start_brk) or \
            (self.first_mmap is not None and self.first_mmap.addr != _model_first_mmap(
                p, self.first_mmap))


def _kernel_chooses(r: Record) -> bool:
    """An anonymous mmap without a hint, placed by the top-down search alone."""
    addr, _, _, flags, _, _ = r.args
    return not addr and bool(flags & MAP_ANONYMOUS) and \
        not flags & (MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_32BIT | MAP_HUGETLB)


def _inside(ranges: list[tuple[int, int]], addr: int, length: int) -> bool:
    end = addr + page_align(length)
    return any(s <= addr and end <= e for s, e in ranges)


def _model_first_mmap(p: Process, mmap: Seen) -> int | None:
    """Where do_mmap() of p would put the anonymous mapping `mmap` asks for."""
    try:
        return get_unmapped_area(p, None, 0, mmap.length, 0, mmap.flags)
    except OSError:
        return None


class Loaded(NamedTuple):
    """An ELF object the exec mapped: its path, header, largest p_align, the model's
    load bias for it, and its RELRO pages (start at that bias, length), None when it
    has no whole page of RELRO."""

    path: str
    elf: ElfHdr
    alignment: int
    bias: int
    relro: tuple[int, int] | None

    def shifts(self, ev: Evidence) -> Iterable[tuple[int, Seen]]:
        """For each read-only mprotect as long as the RELRO: how far from the model's the
        object would lie if that call were its RELRO's."""
        if self.relro is None:
            return
        start, length = self.relro
        for call in ev.read_only:
            if call.length == length:
                yield call.addr - start, call


def loaded_objects(p: Process) -> tuple[Loaded, Loaded | None]:
    """The program and its interpreter (None for a static one) as p's exec mapped them:
    the file VMAs right after execve are theirs."""
    first: dict[int, Vma] = {}
    for vma in p.mm.tree:
        if vma.file is not None:
            first.setdefault(id(vma.file.inode), vma)
    assert p.exe_file is not None
    image = _loaded(first.pop(id(p.exe_file.inode)))
    return image, _loaded(next(iter(first.values()))) if first else None


def _loaded(vma: Vma) -> Loaded:
    file = vma.file
    elf = ElfHdr.parse(file.inode.read(0, EHDR.size))
    phdrs = load_elf_phdrs(elf, file) or []
    low = min(ph.vaddr for ph in phdrs if ph.type == PT_LOAD) & PAGE_MASK
    bias = vma.start - low
    relro = None
    for ph in phdrs:
        if ph.type == PT_GNU_RELRO:
            start, end = ph.vaddr & PAGE_MASK, (ph.vaddr + ph.memsz) & PAGE_MASK
            relro = (bias + start, end - start) if end > start else None
    return Loaded(file.path, elf, maximum_alignment(phdrs), bias, relro)


@dataclass
class Inferred:
    """The bases read back (`bases`), how each was found (`taken`), and the draws the
    calls do not show (`unknown`), each as a sentence."""

    bases: ExecBases
    taken: list[str]
    unknown: list[str]


def infer_bases(p: Process, ev: Evidence) -> Inferred:
    """The bases of the recorded exec, p being the model's exec of the same program with
    ExecBases() (every draw 0): each draw is how far the recorded layout lies from p's."""
    image, interp = loaded_objects(p)
    pie = image.elf.type == ET_DYN and interp is not None
    found: dict[str, int] = {}
    taken: list[str] = []
    mmap_rnd = _mmap_rnd(p, ev, image, interp, taken)
    if mmap_rnd is not None:
        found["mmap_rnd"] = mmap_rnd
    if pie:
        load = _relro_draw(image, ev, "load_rnd", 1, image.alignment)
        if load is not None:
            found["load_rnd"], call = load
            taken.append(f"the load bias of {image.path}, {image.bias + found['load_rnd']:#x} "
                         f"(arch_mmap_rnd() {found['load_rnd']:#x}), from its RELRO mprotect "
                         f"at {call.addr:#x}{_at(call)}")
    if ev.brk is not None and (not pie or "load_rnd" in found):
        brk_rnd = ev.brk.addr - p.mm.start_brk - found.get("load_rnd", 0)
        if ExecBases.fits("brk_rnd", brk_rnd):
            found["brk_rnd"] = brk_rnd
            taken.append(f"start_brk {ev.brk.addr:#x} (arch_randomize_brk() +{brk_rnd:#x}) "
                         f"from brk(NULL){_at(ev.brk)}")
    unknown = ["the stack's base is not in the trace: [stack] is placed as with ASLR off"]
    if mmap_rnd is None:
        unknown.append("mmap_base is not in the trace (no anonymous mmap without a hint, no "
                       "RELRO mprotect of ld.so or of a static PIE among the first calls): "
                       "the vDSO and ld.so are placed as with arch_rnd() 0")
    if pie and "load_rnd" not in found:
        unknown.append(f"the load bias of {image.path} is not in the trace (no mprotect of "
                       "its RELRO among the first calls): it is placed as with "
                       "arch_mmap_rnd() 0")
    return Inferred(ExecBases(**found), taken, unknown)


def _mmap_rnd(p: Process, ev: Evidence, image: Loaded, interp: Loaded | None,
              taken: list[str]) -> int | None:
    """arch_rnd(): from the first mmap, else from ld.so's RELRO, else from a static
    PIE's (placed by mmap below mmap_base)."""
    if ev.first_mmap is not None:
        model = _model_first_mmap(p, ev.first_mmap)
        if model is not None and ExecBases.fits("mmap_rnd", model - ev.first_mmap.addr):
            rnd = model - ev.first_mmap.addr
            taken.append(f"mmap_base {p.mm.mmap_base - rnd:#x} (arch_rnd() {rnd:#x}) from "
                         f"the first mmap's address {ev.first_mmap.addr:#x}"
                         f"{_at(ev.first_mmap)}")
            return rnd
    below_mmap_base = interp if interp is not None else \
        image if image.elf.type == ET_DYN else None
    if below_mmap_base is None:
        return None
    found = _relro_draw(below_mmap_base, ev, "mmap_rnd", -1, PAGE_SIZE)
    if found is None:
        return None
    rnd, call = found
    taken.append(f"mmap_base {p.mm.mmap_base - rnd:#x} (arch_rnd() {rnd:#x}) from the RELRO "
                 f"mprotect of {below_mmap_base.path} at {call.addr:#x}{_at(call)}")
    return rnd


def _relro_draw(obj: Loaded, ev: Evidence, name: str, sign: int,
                unit: int) -> tuple[int, Seen] | None:
    """The first read-only mprotect that is obj's RELRO for a draw `name` the kernel can
    make (sign: whether the draw moves obj up or down), a multiple of `unit`."""
    for shift, call in obj.shifts(ev):
        draw = sign * shift
        if ExecBases.fits(name, draw) and not draw % max(unit, PAGE_SIZE):
            return draw, call
    return None


def _at(call: Seen) -> str:
    return f" (line {call.line})" if call.line is not None else ""
