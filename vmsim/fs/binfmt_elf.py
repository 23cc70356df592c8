"""Loading an ELF executable: fs/binfmt_elf.c load_elf_binary() of Linux 6.18 on x86_64,
with the x86 parts it calls: SET_PERSONALITY (set_personality_64bit), ELF_ET_DYN_BASE,
arch_randomize_brk(), ARCH_DLINFO and ELF_HWCAP/ELF_HWCAP2 (the auxv), and
arch_setup_additional_pages() (arch/x86/entry/vdso/vma.c map_vdso(): [vvar],
[vvar_vclock], [vdso]).

What 6.18 does that older descriptions do not (read in the source, confirmed on this
machine, docs/kernel-observations.md §11):
* every PT_LOAD goes through elf_load() (6.7): the file part is mapped by elf_map(),
  the tail of its last page is zeroed (padzero(): a write fault, so an anonymous page,
  and an error only when the segment is writable), and the rest of p_memsz is an
  anonymous vm_brk_flags() mapping right after it; there is no separate set_brk();
* brk starts page-aligned after the highest segment, or at ELF_ET_DYN_BASE for a
  static PIE (ET_DYN without PT_INTERP) even without ASLR (6.15, brk_moved);
* the vDSO is placed by get_unmapped_area() like any mapping (map_vdso(image, 0), 6.2),
  so it lands just below the interpreter (or the image) in the top-down layout;
* READ_IMPLIES_EXEC is never set for an x86_64 binary (elf_read_implies_exec() is for
  ia32 only) and SET_PERSONALITY clears it: PT_GNU_STACK decides the stack alone.

[vdso] maps the project's own vDSO image (vmsim/arch/x86/entry/vdso/, docs/vdso.md),
built at the first fault of any [vdso]; [vvar] and [vvar_vclock] read as zeros. The
registers a CPU starts the new program from are kept in task.start_regs (start_thread()).
32-bit (compat) binaries are not modelled: ENOEXEC. Scripts ("#!"): binfmt_script.py.
"""

from __future__ import annotations

import functools
import struct
import warnings
from typing import NamedTuple

from ..arch.x86.entry.vdso.build import VDSO_IMAGE_SIZE, VdsoBuildError, vdso_image
from ..arch.x86.ptrace import PtRegs
from ..errors import EFAULT, EINVAL, EIO, ELIBBAD, ENOEXEC, EPERM, kerr
from ..mm.fault import copy_to_user, vmf_insert_pfn
from ..mm.flags import (
    VM_DONTDUMP,
    VM_DONTEXPAND,
    VM_EXEC,
    VM_IO,
    VM_LOCKED_MASK,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_PFNMAP,
    VM_READ,
)
from ..mm.mseal import do_mseal
from ..mm.page_alloc import Page, alloc_page, copy_page
from ..mm.placement import get_unmapped_area
from ..mm.vma import Vma
from ..uapi import (
    ADDR_NO_RANDOMIZE,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MMAP_PAGE_ZERO,
    PAGE_MASK,
    PAGE_SIZE,
    PATH_MAX,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
)
from .exec import (
    EXSTACK_DEFAULT,
    EXSTACK_DISABLE_X,
    EXSTACK_ENABLE_X,
    ExecBases,
    LinuxBinprm,
    arch_align_stack,
    begin_new_exec,
    do_open_execat,
    setup_arg_pages,
    setup_new_exec,
    vm_brk_flags,
    vm_mmap,
    vm_munmap,
)
from .file import File
from .procmaps import SpecialMappingOps

ELFMAG = b"\x7fELF"
ET_EXEC, ET_DYN = 2, 3
EM_X86_64 = 62
PT_LOAD, PT_INTERP = 1, 3
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
#: Elf64_Ehdr (64 bytes) and Elf64_Phdr (56 bytes), little-endian
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")

#: include/uapi/linux/auxvec.h, arch/x86/include/uapi/asm/auxvec.h
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_RSEQ_FEATURE_SIZE, AT_RSEQ_ALIGN = 23, 25, 26, 27, 28
AT_EXECFN, AT_SYSINFO_EHDR, AT_MINSIGSTKSZ = 31, 33, 51
#: ELF_PLATFORM on x86_64, copied to the stack with its NUL
ELF_PLATFORM = b"x86_64\0"
#: USER_HZ (AT_CLKTCK); sizeof(struct rseq) up to `end`, and its alignment
CLOCKS_PER_SEC = 100
RSEQ_FEATURE_SIZE, RSEQ_ALIGN = 28, 32

#: the pages this kernel maps before [vdso] (whose size, vdso64_image.size, is the
#: image's: VDSO_IMAGE_SIZE): the generic data store [vvar] (VDSO_NR_PAGES) and
#: [vvar_vclock] (VDSO_NR_VCLOCK_PAGES), observed
VVAR_PAGES = 4
VVAR_VCLOCK_PAGES = 2


#: arch/x86/include/uapi/asm/processor-flags.h
X86_EFLAGS_FIXED, X86_EFLAGS_IF = 0x2, 0x200
#: the FXSAVE image of the initial FPU state (fpstate_init_fxstate(): cwd 0x37f,
#: MXCSR_DEFAULT 0x1f80) with this machine's CPU's MXCSR_MASK (0x2ffff)
INIT_FXSAVE = struct.pack("<H22xII", 0x37F, 0x1F80, 0x2FFFF).ljust(512, b"\0")


class ElfHwcaps(NamedTuple):
    """What the CPU puts in the auxv on x86_64: AT_HWCAP (ELF_HWCAP: CPUID(1).EDX),
    AT_HWCAP2 (ELF_HWCAP2: ring3mwait, fsgsbase) and AT_MINSIGSTKSZ
    (get_sigframe_size(): the signal frame with this CPU's XSAVE area)."""

    hwcap: int
    hwcap2: int
    minsigstksz: int


#: this machine's values (its /proc/self/auxv; docs/kernel-observations.md §11)
REFERENCE_HWCAPS = ElfHwcaps(hwcap=0x178BFBFF, hwcap2=0x2, minsigstksz=0xD30)


class ElfHdr(NamedTuple):
    """The fields of Elf64_Ehdr the loader reads."""

    ident: bytes
    type: int
    machine: int
    entry: int
    phoff: int
    phentsize: int
    phnum: int

    @classmethod
    def parse(cls, data: bytes) -> ElfHdr:
        f = EHDR.unpack_from(data.ljust(EHDR.size, b"\0"))
        return cls(f[0], f[1], f[2], f[4], f[5], f[9], f[10])


class ElfPhdr(NamedTuple):
    """Elf64_Phdr (p_paddr left out)."""

    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int

    @classmethod
    def parse(cls, data: bytes, off: int) -> ElfPhdr:
        f = PHDR.unpack_from(data, off)
        return cls(f[0], f[1], f[2], f[3], f[5], f[6], f[7])


def elf_pagestart(v: int) -> int:
    return v & PAGE_MASK


def elf_pageoffset(v: int) -> int:
    return v & (PAGE_SIZE - 1)


def elf_pagealign(v: int) -> int:
    return (v + PAGE_SIZE - 1) & PAGE_MASK


def elf_et_dyn_base(task_size: int) -> int:
    """arch/x86/include/asm/elf.h ELF_ET_DYN_BASE for a 64-bit task:
    DEFAULT_MAP_WINDOW / 3 * 2 (0x555555554aaa with 47-bit addresses)."""
    return task_size // 3 * 2


# --- reading the file ----------------------------------------------------------------

def elf_read(file: File, length: int, pos: int) -> bytes:
    """elf_read(): exactly `length` bytes at `pos`, or EIO."""
    data = file.inode.read(pos, length)
    if len(data) != length:
        raise kerr(EIO)
    return data


def load_elf_phdrs(elf_ex: ElfHdr, file: File) -> list[ElfPhdr] | None:
    """load_elf_phdrs(): the program headers, or None if their size is wrong or they
    cannot be read."""
    size = PHDR.size * elf_ex.phnum
    if elf_ex.phentsize != PHDR.size or size == 0 or size > 65536:
        return None
    try:
        data = elf_read(file, size, elf_ex.phoff)
    except OSError:
        return None
    return [ElfPhdr.parse(data, i * PHDR.size) for i in range(elf_ex.phnum)]


def elf_check_arch(elf_ex: ElfHdr) -> bool:
    return elf_ex.ident[:4] == ELFMAG and elf_ex.machine == EM_X86_64


def total_mapping_size(phdrs: list[ElfPhdr]) -> int:
    """total_mapping_size(): from the lowest PT_LOAD page to the end of the highest."""
    loads = [ph for ph in phdrs if ph.type == PT_LOAD]
    if not loads:
        return 0
    return max(ph.vaddr + ph.memsz for ph in loads) - min(elf_pagestart(ph.vaddr) for ph in loads)


def maximum_alignment(phdrs: list[ElfPhdr]) -> int:
    """maximum_alignment(): the largest power-of-two p_align, page-aligned."""
    aligns = [ph.align for ph in phdrs
              if ph.type == PT_LOAD and ph.align and not ph.align & (ph.align - 1)]
    return elf_pagealign(max(aligns, default=0))


def make_prot(p_flags: int) -> int:
    """make_prot(): PF_R/W/X to PROT_READ/WRITE/EXEC (x86 adjusts nothing)."""
    return ((PROT_READ if p_flags & PF_R else 0) | (PROT_WRITE if p_flags & PF_W else 0)
            | (PROT_EXEC if p_flags & PF_X else 0))


# --- mapping segments ----------------------------------------------------------------

def elf_map(task, file: File, addr: int, ph: ElfPhdr, prot: int, flags: int,
            total_size: int) -> int:
    """elf_map(): map the file part of a segment. The first mapping of an image maps
    `total_size` (so the whole image fits where it lands) and unmaps the rest."""
    size = elf_pagealign(ph.filesz + elf_pageoffset(ph.vaddr))
    off = ph.offset - elf_pageoffset(ph.vaddr)
    addr = elf_pagestart(addr)
    if not size:
        return addr
    if not total_size:
        return vm_mmap(task, file, addr, size, prot, flags, off)
    total_size = elf_pagealign(total_size)
    map_addr = vm_mmap(task, file, addr, total_size, prot, flags, off)
    if total_size > size:
        vm_munmap(task, map_addr + size, total_size - size)
    return map_addr


def padzero(task, address: int) -> bool:
    """padzero(): zero the rest of the page at `address` as a user write would
    (clear_user()); False where the process could not write."""
    nbyte = elf_pageoffset(address)
    if nbyte:
        try:
            copy_to_user(task, address, bytes(PAGE_SIZE - nbyte))
        except OSError:
            return False
    return True


def elf_load(task, file: File, addr: int, ph: ElfPhdr, prot: int, flags: int,
             total_size: int) -> int:
    """elf_load(): the file part with elf_map(), the rest of its last page zeroed
    (padzero(), fatal only for a writable segment: EFAULT), and the pages up to
    p_memsz anonymous with vm_brk_flags() (executable if the segment is). Returns the
    address of the first page."""
    if ph.filesz:
        map_addr = elf_map(task, file, addr, ph, prot, flags, total_size)
        zero_start = map_addr + elf_pageoffset(ph.vaddr) + ph.filesz
        zero_end = map_addr + elf_pageoffset(ph.vaddr) + ph.memsz
        if ph.memsz > ph.filesz and not padzero(task, zero_start) and prot & PROT_WRITE:
            raise kerr(EFAULT)
    else:
        map_addr = zero_start = elf_pagestart(addr)
        zero_end = zero_start + elf_pageoffset(ph.vaddr) + ph.memsz
    if ph.memsz > ph.filesz:
        zero_start, zero_end = elf_pagealign(zero_start), elf_pagealign(zero_end)
        vm_brk_flags(task, zero_start, zero_end - zero_start, bool(prot & PROT_EXEC))
    return map_addr


def check_segment(ph: ElfPhdr, k: int, task_size: int, errno: int) -> None:
    """The "section's size will overflow the allowed task size" check of both loaders,
    with k the segment's (biased) start."""
    if k >= task_size or ph.filesz > ph.memsz or ph.memsz > task_size or \
            task_size - ph.memsz < k:
        raise kerr(errno)


def load_elf_interp(task, interp_ex: ElfHdr, interpreter: File, no_base: int,
                    phdrs: list[ElfPhdr]) -> int:
    """load_elf_interp(): map the interpreter's segments (ET_DYN: where mmap puts the
    first, the rest at fixed offsets from it). Returns its load address (AT_BASE). A
    bad interpreter is EPERM here (the kernel's ~0UL error), past the point of no
    return."""
    task_size = task.kernel.task_size
    if interp_ex.type not in (ET_EXEC, ET_DYN) or not elf_check_arch(interp_ex) or \
            interpreter.f_op.mmap is None:
        raise kerr(EPERM)
    total_size = total_mapping_size(phdrs)
    if not total_size:
        raise kerr(EINVAL)
    load_addr = 0
    load_addr_set = False
    for ph in phdrs:
        if ph.type != PT_LOAD:
            continue
        flags = MAP_PRIVATE
        if interp_ex.type == ET_EXEC or load_addr_set:
            flags |= MAP_FIXED
        elif no_base and interp_ex.type == ET_DYN:
            load_addr = -ph.vaddr
        map_addr = elf_load(task, interpreter, load_addr + ph.vaddr, ph, make_prot(ph.flags),
                            flags, total_size)
        total_size = 0
        if not load_addr_set and interp_ex.type == ET_DYN:
            load_addr = map_addr - elf_pagestart(ph.vaddr)
            load_addr_set = True
        check_segment(ph, load_addr + ph.vaddr, task_size, EINVAL)
    return load_addr


# --- the vDSO (arch/x86/entry/vdso/vma.c) ---------------------------------------------

class ZeroPfn:
    """A physical page of zeros: the placeholder behind [vvar] and [vvar_vclock]."""

    def __init__(self) -> None:
        self.page = alloc_page()

    def cpu_page(self) -> Page:
        return self.page


class VvarMappingOps(SpecialMappingOps):
    """vdso_vvar_mapping / vvar_vclock_mapping: VM_PFNMAP pages the kernel inserts on
    fault (vvar_fault(), vvar_vclock_fault()). Placeholder: zero pages."""

    def fault(self, vma: Vma, addr: int, write: bool) -> None:
        vmf_insert_pfn(vma, addr, ZeroPfn())


@functools.cache
def vdso_pages() -> tuple[Page, ...]:
    """The frames of the vDSO image (vdso64_image.data: one set for every process),
    filled at the first fault of any [vdso], so that only a kernel running programs
    needs gcc. If the image cannot be built they hold zeros, and a warning (once) says
    why."""
    try:
        image = vdso_image()
    except VdsoBuildError as e:
        warnings.warn(f"{e}; [vdso] reads as zeros", RuntimeWarning, stacklevel=2)
        image = bytes(VDSO_IMAGE_SIZE)
    return tuple(copy_page(image[off:off + PAGE_SIZE]) for off in range(0, len(image), PAGE_SIZE))


class VdsoMappingOps(SpecialMappingOps):
    """vdso_mapping: the pages of the vDSO image."""

    def fault(self, vma: Vma, addr: int, write: bool) -> Page:
        """vdso_fault(): the image's page at the fault's pgoff (the VMA cannot grow, and
        the core copies the page for a private write)."""
        return vdso_pages()[vma.pgoff_at(addr)]


VVAR_OPS = VvarMappingOps("[vvar]")
VVAR_VCLOCK_OPS = VvarMappingOps("[vvar_vclock]")
VDSO_OPS = VdsoMappingOps("[vdso]")


def install_special_mapping(mm, addr: int, length: int, flags: int,
                            ops: SpecialMappingOps) -> None:
    """mm/vma.c _install_special_mapping(): a named VMA with VM_DONTEXPAND and the mm's
    def_flags (never VM_LOCKED), pgoff 0."""
    flags = (flags | mm.def_flags | VM_DONTEXPAND) & ~VM_LOCKED_MASK
    mm.insert_vm_struct(Vma(mm, addr, addr + length, flags, 0, vm_ops=ops))


def map_vdso(task) -> int:
    """arch/x86/entry/vdso/vma.c map_vdso(&vdso64_image, 0): one range from
    get_unmapped_area() holding [vvar], [vvar_vclock] and [vdso], in that order; no
    VM_SEALED (CONFIG_MSEAL_SYSTEM_MAPPINGS is off here). Returns the [vdso] start
    (AT_SYSINFO_EHDR)."""
    mm = task.mm
    data_size = (VVAR_PAGES + VVAR_VCLOCK_PAGES) * PAGE_SIZE
    addr = get_unmapped_area(task, None, 0, VDSO_IMAGE_SIZE + data_size, 0, 0)
    text_start = addr + data_size
    install_special_mapping(mm, text_start, VDSO_IMAGE_SIZE,
                            VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC, VDSO_OPS)
    vvar_flags = VM_READ | VM_MAYREAD | VM_IO | VM_DONTDUMP | VM_PFNMAP
    install_special_mapping(mm, addr, VVAR_PAGES * PAGE_SIZE, vvar_flags, VVAR_OPS)
    install_special_mapping(mm, addr + VVAR_PAGES * PAGE_SIZE, VVAR_VCLOCK_PAGES * PAGE_SIZE,
                            vvar_flags, VVAR_VCLOCK_OPS)
    return text_start


# --- the initial stack ---------------------------------------------------------------

def randomize_stack_top(stack_top: int, stack_rnd: int) -> int:
    """mm/util.c randomize_stack_top(): stack_rnd (ExecBases.stack_rnd: up to
    STACK_RND_MASK pages, 0 without ASLR) below the page-aligned top."""
    return elf_pagealign(stack_top) - stack_rnd


def create_elf_tables(task, bprm: LinuxBinprm, elf_ex: ElfHdr, interp_load_addr: int,
                      e_entry: int, phdr_addr: int, vdso: int, tables_align: int) -> None:
    """create_elf_tables(): below the strings (arch_align_stack(): tables_align lower,
    16-byte aligned), AT_PLATFORM's string and AT_RANDOM's 16 bytes; then, from the new
    stack pointer (STACK_ROUND: 16-byte aligned) up, argc, argv[] and NULL, envp[] and
    NULL, and the auxv (ARCH_DLINFO first) ending with AT_NULL. Leaves bprm.p at the
    stack pointer."""
    kernel = task.kernel
    p = arch_align_stack(bprm.p, tables_align)
    u_platform = p = p - len(ELF_PLATFORM)
    copy_to_user(task, u_platform, ELF_PLATFORM)
    u_rand_bytes = p = p - 16
    copy_to_user(task, u_rand_bytes, kernel.random.getrandbits(128).to_bytes(16, "little"))
    hw = kernel.elf_hwcaps
    uid = task.uid
    auxv = [AT_SYSINFO_EHDR, vdso, AT_MINSIGSTKSZ, hw.minsigstksz, AT_HWCAP, hw.hwcap,
            AT_PAGESZ, PAGE_SIZE, AT_CLKTCK, CLOCKS_PER_SEC, AT_PHDR, phdr_addr,
            AT_PHENT, PHDR.size, AT_PHNUM, elf_ex.phnum, AT_BASE, interp_load_addr,
            AT_FLAGS, 0, AT_ENTRY, e_entry, AT_UID, uid, AT_EUID, uid, AT_GID, 0, AT_EGID, 0,
            AT_SECURE, 0, AT_RANDOM, u_rand_bytes, AT_HWCAP2, hw.hwcap2,
            AT_EXECFN, bprm.exec, AT_PLATFORM, u_platform,
            AT_RSEQ_FEATURE_SIZE, RSEQ_FEATURE_SIZE, AT_RSEQ_ALIGN, RSEQ_ALIGN, AT_NULL, 0]
    sp = p - len(auxv) * 8
    items = (len(bprm.argv) + 1) + (len(bprm.envp) + 1) + 1
    bprm.p = (sp - items * 8) & ~0xF
    words = [len(bprm.argv)]
    s = bprm.arg_start
    for strings in (bprm.argv, bprm.envp):
        for arg in strings:
            words.append(s)
            s += len(arg) + 1
        words.append(0)
    copy_to_user(task, bprm.p, struct.pack(f"<{len(words) + len(auxv)}Q", *words, *auxv))


# --- load_elf_binary -----------------------------------------------------------------

class ElfImage(NamedTuple):
    """What the checks before the point of no return found."""

    elf_ex: ElfHdr
    phdrs: list[ElfPhdr]
    executable_stack: int
    interp_ex: ElfHdr | None
    interp_phdrs: list[ElfPhdr]


def load_elf_binary(task, bprm: LinuxBinprm) -> None:
    """fs/binfmt_elf.c load_elf_binary(): the format's load_binary. ENOEXEC if this is
    not an x86_64 ET_EXEC/ET_DYN ELF file (the next format may try); the interpreter's
    errors (open_exec(): ENOENT, EACCES; EIO for a short header; ELIBBAD if it is not
    an x86_64 ELF) before the point of no return; then the new address space."""
    elf_ex = ElfHdr.parse(bprm.buf)
    if elf_ex.type not in (ET_EXEC, ET_DYN) or not elf_check_arch(elf_ex) or \
            bprm.file.f_op.mmap is None:
        raise kerr(ENOEXEC)
    phdrs = load_elf_phdrs(elf_ex, bprm.file)
    if phdrs is None:
        raise kerr(ENOEXEC)
    interpreter = open_interpreter(task, bprm, phdrs)
    try:
        image = check_interpreter(elf_ex, phdrs, interpreter)
        begin_new_exec(task, bprm)
        map_image(task, bprm, image, interpreter)
    finally:
        if interpreter is not None:
            interpreter.put()


def open_interpreter(task, bprm: LinuxBinprm, phdrs: list[ElfPhdr]) -> File | None:
    """The first PT_INTERP's file, opened as open_exec() does (ENOEXEC for a bad path
    length or a path without its NUL, EIO for a short read)."""
    for ph in phdrs:
        if ph.type != PT_INTERP:
            continue
        if ph.filesz > PATH_MAX or ph.filesz < 2:
            raise kerr(ENOEXEC)
        name = elf_read(bprm.file, ph.filesz, ph.offset)
        if name[-1]:
            raise kerr(ENOEXEC)
        path = name.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        return do_open_execat(task.kernel, path).get()
    return None


def check_interpreter(elf_ex: ElfHdr, phdrs: list[ElfPhdr],
                      interpreter: File | None) -> ElfImage:
    """The interpreter's header (EIO if short) must be an x86_64 ELF with readable
    program headers (ELIBBAD); PT_GNU_STACK gives executable_stack."""
    executable_stack = EXSTACK_DEFAULT
    for ph in phdrs:
        if ph.type == PT_GNU_STACK:
            executable_stack = EXSTACK_ENABLE_X if ph.flags & PF_X else EXSTACK_DISABLE_X
    if interpreter is None:
        return ElfImage(elf_ex, phdrs, executable_stack, None, [])
    interp_ex = ElfHdr.parse(elf_read(interpreter, EHDR.size, 0))
    if not elf_check_arch(interp_ex):
        raise kerr(ELIBBAD)
    interp_phdrs = load_elf_phdrs(interp_ex, interpreter)
    if interp_phdrs is None:
        raise kerr(ELIBBAD)
    return ElfImage(elf_ex, phdrs, executable_stack, interp_ex, interp_phdrs)


def map_image(task, bprm: LinuxBinprm, image: ElfImage, interpreter: File | None) -> None:
    """load_elf_binary() past begin_new_exec(): personality, layout and stack, the
    segments, the interpreter, the vDSO, the tables on the stack, then brk. Under
    PF_RANDOMIZE (or when bprm.bases are given) the random quantities are bprm.bases,
    or drawn all at once from kernel.random."""
    kernel = task.kernel
    task.persona &= ~READ_IMPLIES_EXEC          # SET_PERSONALITY2: set_personality_64bit()
    randomize = bprm.bases is not None or \
        (kernel.aslr and not task.persona & ADDR_NO_RANDOMIZE)         # PF_RANDOMIZE
    bases = bprm.bases or (ExecBases.draw(kernel.random) if randomize else ExecBases())
    setup_new_exec(task, bprm.rlim_stack, randomize, bases.mmap_rnd)
    setup_arg_pages(task, bprm, randomize_stack_top(kernel.task_size, bases.stack_rnd),
                    image.executable_stack, bases.stack_align)
    load_bias, phdr_addr, elf_brk = map_segments(task, bprm, image, bases.load_rnd)
    e_entry = image.elf_ex.entry + load_bias
    interp_load_addr = 0
    if interpreter is not None:
        assert image.interp_ex is not None      # found with the interpreter
        interp_load_addr = load_elf_interp(task, image.interp_ex, interpreter, load_bias,
                                           image.interp_phdrs)
        elf_entry = interp_load_addr + image.interp_ex.entry
    else:
        elf_entry = e_entry
    if elf_entry >= kernel.task_size:
        raise kerr(EINVAL)
    vdso = map_vdso(task)
    create_elf_tables(task, bprm, image.elf_ex, interp_load_addr, e_entry,
                      phdr_addr + load_bias, vdso, bases.tables_align)
    task.mm.start_stack = bprm.p
    set_brk(task, image.elf_ex.type == ET_DYN and interpreter is None, elf_brk + load_bias,
            randomize, bases.brk_rnd)
    if task.persona & MMAP_PAGE_ZERO:
        map_page_zero(task)
    task.start_regs = start_thread(elf_entry, bprm.p)


def start_thread(new_ip: int, new_sp: int) -> PtRegs:
    """arch/x86/kernel/process_64.c start_thread() after ELF_PLAT_INIT() (every general
    register zero) and the FPU reset of begin_new_exec() (fpu_flush_thread()): rip and
    rsp set, eflags IF and the fixed bit 1, fs and gs bases 0, x87/SSE in their
    initial state. What ptrace shows at the exec stop on this machine."""
    return PtRegs(rip=new_ip, rsp=new_sp, eflags=X86_EFLAGS_IF | X86_EFLAGS_FIXED,
                  fs_base=0, gs_base=0, fxsave=INIT_FXSAVE)


def map_segments(task, bprm: LinuxBinprm, image: ElfImage,
                 load_rnd: int) -> tuple[int, int, int]:
    """The PT_LOAD loop of load_elf_binary(). ET_EXEC: at p_vaddr, the first segment
    MAP_FIXED_NOREPLACE. ET_DYN with an interpreter (PIE): at ELF_ET_DYN_BASE + load_rnd
    (arch_mmap_rnd(), ExecBases.load_rnd: 0 without ASLR), aligned to the largest
    p_align; without (static PIE, ld.so run directly): where mmap puts it (load_bias 0),
    unless p_align asks for more than a page. Every later segment MAP_FIXED. Returns
    (load_bias, phdr_addr, elf_brk), the last two unbiased."""
    kernel, elf_ex, phdrs = task.kernel, image.elf_ex, image.phdrs
    load_bias = phdr_addr = elf_brk = 0
    first = True
    for ph in phdrs:
        if ph.type != PT_LOAD:
            continue
        prot = make_prot(ph.flags)
        flags = MAP_PRIVATE
        total_size = 0
        if not first:
            flags |= MAP_FIXED
        elif elf_ex.type == ET_EXEC:
            flags |= MAP_FIXED_NOREPLACE
        else:
            total_size = total_mapping_size(phdrs)
            if not total_size:
                raise kerr(EINVAL)
            load_bias, extra = dyn_load_bias(task, bprm, image, ph, prot, total_size,
                                             load_rnd)
            flags |= extra
        addr = elf_load(task, bprm.file, load_bias + ph.vaddr, ph, prot, flags, total_size)
        if first:
            first = False
            if elf_ex.type == ET_DYN:
                load_bias += addr - elf_pagestart(load_bias + ph.vaddr)
        if ph.offset <= elf_ex.phoff < ph.offset + ph.filesz:
            phdr_addr = elf_ex.phoff - ph.offset + ph.vaddr
        check_segment(ph, ph.vaddr, kernel.task_size, EINVAL)
        elf_brk = max(elf_brk, ph.vaddr + ph.memsz)
    return load_bias, phdr_addr, elf_brk


def dyn_load_bias(task, bprm: LinuxBinprm, image: ElfImage, ph: ElfPhdr, prot: int,
                  total_size: int, load_rnd: int) -> tuple[int, int]:
    """The load_bias of an ET_DYN image, page-aligned below its first p_vaddr, and the
    extra mmap flag for its first segment."""
    alignment = maximum_alignment(image.phdrs)
    extra = 0
    if image.interp_ex is not None:
        load_bias = elf_et_dyn_base(task.kernel.task_size) + load_rnd
        if alignment:
            load_bias &= ~(alignment - 1)
        extra = MAP_FIXED_NOREPLACE
    elif alignment > PAGE_SIZE:
        load_bias = elf_load(task, bprm.file, 0, ph, prot, MAP_PRIVATE, total_size)
        vm_munmap(task, load_bias, total_size)
        load_bias &= ~(alignment - 1)
        extra = MAP_FIXED_NOREPLACE
    else:
        load_bias = 0
    return elf_pagestart(load_bias - ph.vaddr), extra


def set_brk(task, static_pie: bool, elf_brk: int, randomize: bool, brk_rnd: int) -> None:
    """The "brk" handling of load_elf_binary(): start_brk = brk page-aligned after the
    image, or ELF_ET_DYN_BASE for a static PIE (brk_moved); under ASLR (randomize_va_space
    2) one page further unless moved, then arch_randomize_brk(): brk_rnd higher
    (ExecBases.brk_rnd, below 1 GiB for a 64-bit task since 6.9)."""
    mm = task.mm
    if static_pie:
        elf_brk = elf_et_dyn_base(task.kernel.task_size)
    brk = elf_pagealign(elf_brk)
    if randomize:
        if not static_pie:
            brk += PAGE_SIZE
        brk += brk_rnd
    mm.start_brk = mm.brk = brk


def map_page_zero(task) -> None:
    """MMAP_PAGE_ZERO (SVr4 compatibility): page 0 mapped read+exec and sealed; a
    failure only leaves it unmapped or unsealed."""
    try:
        vm_mmap(task, None, 0, PAGE_SIZE, PROT_READ | PROT_EXEC, MAP_FIXED | MAP_PRIVATE, 0)
        do_mseal(task, 0, PAGE_SIZE, 0)
    except OSError:
        pass
