"""execve(2) as fs/exec.c runs it: the file to execute, the argument strings on the
new stack, the search through the binary formats, the point of no return
(begin_new_exec: exec_mmap tears the old mm down and installs a new one, the
close-on-exec fds are closed) and setup_arg_pages (the initial [stack] VMA).

The binary formats themselves (fs/binfmt_elf.c, fs/binfmt_script.c) are in
binfmt_elf.py and binfmt_script.py; the Kernel keeps them in `binfmts`, the kernel's
`formats` list. A format's loader raises ENOEXEC to let the next one try, as
load_binary() returns -ENOEXEC; a script's loader names an interpreter to run next.

Files are looked up in the model's VFS; a path the model does not have is mirrored
from the host on first use (procmaps.mirror_host_file), so `execve("/bin/true")` runs
this machine's binary with its identity.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import E2BIG, EACCES, EAGAIN, EINVAL, ELOOP, ENAMETOOLONG, ENOEXEC, ENOMEM, ETXTBSY, kerr
from ..mm.fault import copy_to_user
from ..mm.flags import VM_EXEC, VM_NOHUGEPAGE, VM_STACK_DEFAULT_FLAGS
from ..mm.fork import exit_mmap
from ..mm.mm_struct import MmStruct
from ..mm.mmap import do_brk_flags, do_mmap, mm_populate
from ..mm.munmap import do_vmi_munmap, page_align
from ..mm.pkeys import INIT_PKRU_VALUE
from ..mm.placement import arch_pick_mmap_layout, get_unmapped_area
from ..mm.vma import Vma
from ..uapi import (
    ADDR_COMPAT_LAYOUT,
    AT_FDCWD,
    MAP_FIXED,
    O_RDONLY,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PATH_MAX,
    READ_IMPLIES_EXEC,
    RLIMIT_STACK,
    U64,
)
from .file import FMODE_READ, FMODE_WRITE, S_IFREG, File, Inode
from .namei import path_at
from .procmaps import mirror_host_file

#: include/uapi/linux/binfmts.h: the longest argument or environment string (with its
#: NUL), and the most strings
MAX_ARG_STRLEN = 32 * PAGE_SIZE
MAX_ARG_STRINGS = 0x7FFFFFFF
#: include/uapi/linux/limits.h: the argument space every stack limit allows
ARG_MAX = 131072
#: include/linux/sched.h _STK_LIM: 8 MiB
STK_LIM = 8 << 20
#: include/linux/binfmts.h: the head of the file every binary format looks at
BINPRM_BUF_SIZE = 256
#: fs/exec.c exec_binprm(): how many interpreters (scripts) may stand before the binary
MAX_INTERPRETER_DEPTH = 5
#: setup_arg_pages(): the stack VMA covers the argument pages plus this much
STACK_EXPAND = 131072
#: executable_stack, from PT_GNU_STACK (include/linux/binfmts.h)
EXSTACK_DEFAULT, EXSTACK_DISABLE_X, EXSTACK_ENABLE_X = 0, 1, 2
#: arch/x86: __STACK_RND_MASK for 64-bit, in pages; mmap_rnd_bits (the default 28)
STACK_RND_PAGES = 0x3FFFFF
MMAP_RND_BITS = 28
#: arch/x86/kernel/process.c: arch_align_stack() lowers the stack by less than this;
#: arch_randomize_brk() moves a 64-bit brk by less than SZ_1G (SZ_32M before 6.9)
STACK_ALIGN_RND = 8192
BRK_RND_SIZE = 1 << 30
#: mm_init(): the def_flags a new mm keeps from the execing one (VM_INIT_DEF_MASK)
VM_INIT_DEF_MASK = VM_NOHUGEPAGE


@dataclass(frozen=True)
class ExecBases:
    """The random quantities an ELF exec draws when the task has PF_RANDOMIZE, in bytes,
    in the order load_elf_binary() of 6.18 draws them (docs/spec-notes.md, "ASLR at
    exec"). Given to execve (`Process.execve(..., bases=)`), they are taken instead of
    drawn and the exec is randomized as the run that drew them was; the zero bases are
    an ASLR-on exec whose every draw came out 0. Invariant: each field is in its kernel
    range (EXEC_BASES_RANGES; ValueError otherwise)."""

    #: setup_new_exec() -> arch_pick_mmap_layout(): arch_rnd(mmap64_rnd_bits), how far
    #: below its unrandomized place mmap_base is (above, for the legacy base)
    mmap_rnd: int = 0
    #: setup_arg_pages(randomize_stack_top(STACK_TOP)): how far below STACK_TOP
    stack_rnd: int = 0
    #: setup_arg_pages() -> arch_align_stack(): that top lowered by this, then aligned
    stack_align: int = 0
    #: the PT_LOAD loop: arch_mmap_rnd() added to ELF_ET_DYN_BASE for an ET_DYN program
    #: with an interpreter (a PIE); drawn for no other image
    load_rnd: int = 0
    #: create_elf_tables() -> arch_align_stack(): the auxv's strings this much lower
    tables_align: int = 0
    #: arch_randomize_brk(): how far above its unrandomized place start_brk is
    brk_rnd: int = 0

    def __post_init__(self) -> None:
        for name, (limit, unit) in EXEC_BASES_RANGES.items():
            if not self.fits(name, getattr(self, name)):
                raise ValueError(f"ExecBases.{name} = {getattr(self, name):#x}: a multiple "
                                 f"of {unit:#x} below {limit:#x}")

    @staticmethod
    def fits(name: str, value: int) -> bool:
        """Whether `value` is one the kernel can draw for field `name`."""
        limit, unit = EXEC_BASES_RANGES[name]
        return 0 <= value < limit and not value % unit

    @classmethod
    def draw(cls, rng: random.Random) -> ExecBases:
        """Every quantity drawn from rng, uniformly in its range, in the kernel's order."""
        return cls(**{name: rng.randrange(limit // unit) * unit
                      for name, (limit, unit) in EXEC_BASES_RANGES.items()})


#: each ExecBases field: (the bound it stays below, the unit it is a multiple of) —
#: get_random_long() masked to mmap_rnd_bits pages, to STACK_RND_MASK pages;
#: get_random_u32_below(8192); randomize_page(mm->brk, SZ_1G)
EXEC_BASES_RANGES = {
    "mmap_rnd": (PAGE_SIZE << MMAP_RND_BITS, PAGE_SIZE),
    "stack_rnd": ((STACK_RND_PAGES + 1) * PAGE_SIZE, PAGE_SIZE),
    "stack_align": (STACK_ALIGN_RND, 1),
    "load_rnd": (PAGE_SIZE << MMAP_RND_BITS, PAGE_SIZE),
    "tables_align": (STACK_ALIGN_RND, 1),
    "brk_rnd": (BRK_RND_SIZE, PAGE_SIZE),
}


class LinuxBinprm:
    """`struct linux_binprm`: one execve in progress.

    The argument strings are laid out as the kernel copies them below the top of the
    new stack, STACK_TOP_MAX (the Kernel's task_size): 8 zero bytes, then the filename
    (`exec` points at it: AT_EXECFN), the environment and the arguments, each string
    in order with its NUL; `p` is the lowest byte used, `argmin` the lowest allowed.
    setup_arg_pages() moves them to the final stack top; `arg_start` is then where
    argv[0] is. `file` is the file being run, `buf` its head; `interp` the path a
    script's interpreter line puts in argv (the filename, then each interpreter's),
    `interpreter` the file a script's loader opened to run next. `bases`: the random
    quantities to take instead of drawing them (None: drawn, if the task randomizes).
    """

    def __init__(self, file: File, filename: str, argv: list[bytes], envp: list[bytes],
                 rlim_stack: int, stack_top_max: int, bases: ExecBases | None = None) -> None:
        self.file = file
        self.bases = bases
        self.filename = filename
        self.argv = argv
        self.envp = envp
        self.rlim_stack = rlim_stack
        self.stack_top_max = stack_top_max
        self.p = stack_top_max - 8          # __bprm_mm_init(): vm_end - sizeof(void *)
        self.argmin = 0
        self.exec = 0
        self.arg_start = 0
        self.buf = b""
        self.interp = filename
        self.interpreter: File | None = None
        self.point_of_no_return = False

    def prepare_binprm(self) -> None:
        """fs/exec.c prepare_binprm(): the head of the file, zero-padded."""
        self.buf = self.file.inode.read(0, BINPRM_BUF_SIZE).ljust(BINPRM_BUF_SIZE, b"\0")

    def put_files(self) -> None:
        """free_bprm(): the file being run and an interpreter opened for it go."""
        self.file.put()
        if self.interpreter is not None:
            self.interpreter.put()

    def strings(self) -> bytes:
        """The bytes of [p, stack_top_max): every string, then the 8 zero bytes."""
        return b"".join(s + b"\0" for s in (*self.argv, *self.envp,
                                            os.fsencode(self.filename))) + bytes(8)


#: what Kernel.binfmts holds: a format's load_binary(task, bprm)
LoadBinary = Callable[..., None]


def do_execveat_common(task, filename: str, argv: Sequence[bytes],
                       envp: Sequence[bytes], bases: ExecBases | None = None) -> None:
    """fs/exec.c do_execveat_common() for execve(2) (AT_FDCWD, no flags): the file (the
    filename walked from the working directory; bprm->filename keeps it as given), the
    strings (E2BIG), then bprm_execve(). Before the point of no return a failure
    leaves the process as it was; after it the process is killed (SIGSEGV) and the
    errno still raised. `bases`: see ExecBases. Cost: O(strings + the new image's
    VMAs and pages)."""
    task.mm.mmap_lock("execve")
    if len(os.fsencode(filename)) >= PATH_MAX:
        raise kerr(ENAMETOOLONG)                # getname()
    file = do_open_execat(task.kernel, path_at(task, AT_FDCWD, filename))
    bprm = LinuxBinprm(file.get(), filename, list(argv), list(envp), task.rlimit(RLIMIT_STACK),
                       task.kernel.task_size, bases)
    try:
        copy_strings(bprm)
        bprm_execve(task, bprm)
    finally:
        bprm.put_files()


def do_open_execat(kernel, name: str) -> File:
    """fs/exec.c do_open_execat(): the file to execute, opened for reading.

    The path is looked up in the model (a path it lacks is mirrored from the host);
    may_open() refuses anything but a regular file (EACCES), inode_permission(MAY_EXEC)
    a file without an x bit (EACCES: file ownership is not modelled, every process
    passes the DAC check as root does), path_noexec() a noexec mount (EACCES), and
    exe_file_deny_write_access() a file open for writing (ETXTBSY)."""
    try:
        inode = kernel.fs.lookup(name)
    except FileNotFoundError:
        inode = mirror_host_file(kernel.fs, name)
    if inode.kind != S_IFREG or not inode.mode & 0o111 or inode.noexec:
        raise kerr(EACCES)
    if _open_for_write(kernel, inode):
        raise kerr(ETXTBSY)
    return File(inode, FMODE_READ, O_RDONLY)


def _open_for_write(kernel, inode: Inode) -> bool:
    """i_writecount > 0: some struct file of the inode is open for writing, in a file
    table or held by a mapping. O(fds + VMAs of every process)."""
    for proc in kernel.processes.values():
        files = [*proc.files.values(), *(v.file for v in proc.mm.tree if v.file is not None)]
        if any(f.inode is inode and f.f_mode & FMODE_WRITE for f in files):
            return True
    return False


def bprm_stack_limits(bprm: LinuxBinprm) -> None:
    """fs/exec.c bprm_stack_limits(): the strings may take a quarter of the stack limit
    (at most 3/4 of _STK_LIM, at least ARG_MAX), less a pointer for each (E2BIG)."""
    limit = max(min(STK_LIM // 4 * 3, bprm.rlim_stack // 4), ARG_MAX)
    ptr_size = (max(len(bprm.argv), 1) + len(bprm.envp)) * 8
    if limit <= ptr_size:
        raise kerr(E2BIG)
    bprm.argmin = bprm.p - (limit - ptr_size)


def copy_strings(bprm: LinuxBinprm) -> None:
    """do_execveat_common()'s count(), bprm_stack_limits(), then copy_string_kernel()
    of the filename and copy_strings() of envp and argv, last string first: each at
    most MAX_ARG_STRLEN with its NUL, all above argmin (E2BIG). An empty argv gets
    argv[0] = "" (as 6.18 does, with a warning)."""
    if len(bprm.argv) > MAX_ARG_STRINGS or len(bprm.envp) > MAX_ARG_STRINGS:
        raise kerr(E2BIG)
    bprm_stack_limits(bprm)
    copy_string_kernel(bprm, os.fsencode(bprm.filename), new_argv0=False)
    bprm.exec = bprm.p
    for s in (*reversed(bprm.envp), *reversed(bprm.argv)):
        copy_string_kernel(bprm, s, new_argv0=False)
    if not bprm.argv:
        copy_string_kernel(bprm, b"")


def copy_string_kernel(bprm: LinuxBinprm, s: bytes, new_argv0: bool = True) -> None:
    """fs/exec.c copy_string_kernel() (and copy_strings()): the string s below the
    others, at most MAX_ARG_STRLEN with its NUL (valid_arg_len()), above argmin
    (E2BIG). It becomes the new argv[0] unless it is one of the strings execve was
    given (new_argv0 False: already in bprm.argv or bprm.envp)."""
    length = len(s) + 1
    if length > MAX_ARG_STRLEN:
        raise kerr(E2BIG)
    bprm.p -= length
    if bprm.p < bprm.argmin:
        raise kerr(E2BIG)
    if new_argv0:
        bprm.argv.insert(0, s)


def remove_arg_zero(bprm: LinuxBinprm) -> None:
    """fs/exec.c remove_arg_zero(): argv[0] leaves the strings."""
    bprm.p += len(bprm.argv.pop(0)) + 1


def bprm_execve(task, bprm: LinuxBinprm) -> None:
    """fs/exec.c bprm_execve() -> exec_binprm(). A failure past the point of no return
    kills the task (force_fatal_sig(SIGSEGV)): it has exited when the error is raised."""
    try:
        exec_binprm(task, bprm)
    except OSError:
        if bprm.point_of_no_return:
            task.exit()
        raise


def exec_binprm(task, bprm: LinuxBinprm) -> None:
    """fs/exec.c exec_binprm(): search_binary_handler(); while a format (a script's)
    names an interpreter, the interpreter becomes the file to run and the search starts
    again, at most MAX_INTERPRETER_DEPTH times (then ELOOP) [obs]."""
    for _ in range(MAX_INTERPRETER_DEPTH + 1):
        search_binary_handler(task, bprm)
        if bprm.interpreter is None:
            return
        bprm.file.put()
        bprm.file, bprm.interpreter = bprm.interpreter, None
    raise kerr(ELOOP)


def search_binary_handler(task, bprm: LinuxBinprm) -> None:
    """fs/exec.c search_binary_handler(): prepare_binprm(), then each format in turn
    until one does not answer ENOEXEC."""
    bprm.prepare_binprm()
    for load_binary in task.kernel.binfmts:
        try:
            load_binary(task, bprm)
            return
        except OSError as err:
            if bprm.point_of_no_return or err.errno != ENOEXEC:
                raise
    raise kerr(ENOEXEC)


# --- the point of no return --------------------------------------------------------

def begin_new_exec(task, bprm: LinuxBinprm) -> None:
    """fs/exec.c begin_new_exec(): from here on a failure kills the task. exec_mmap()
    puts the new mm in place and tears the old one down; the close-on-exec fds are
    closed (do_close_on_exec); the FPU state, PKRU included, is reset."""
    bprm.point_of_no_return = True
    set_mm_exe_file(task, bprm.file)
    exec_mmap(task, mm_alloc(task.mm))
    do_close_on_exec(task)
    if task.kernel.pkeys:
        task.pkru = INIT_PKRU_VALUE             # fpu_flush_thread()


def set_mm_exe_file(task, file: File) -> None:
    """kernel/fork.c set_mm_exe_file() for the new mm: `file` becomes the exe_file, which
    denies writes to it while it is one (exe_file_deny_write_access()); the old mm's
    goes with the old mm."""
    if task.exe_file is not None:
        task.exe_file.put(task.mm)
    task.exe_file = file.get()


def mm_alloc(old: MmStruct) -> MmStruct:
    """kernel/fork.c mm_alloc() -> mm_init() while `old` is current->mm: a new, empty mm
    keeping the inherited MMF_* flags (mmf_init_flags(): MDWE unless NO_INHERIT was
    set, KSM merge-any) and def_flags & VM_INIT_DEF_MASK."""
    mm = MmStruct(old.kernel)
    if not old.mdwe_no_inherit:
        mm.has_mdwe = old.has_mdwe
    mm.merge_any = old.merge_any
    mm.def_flags = old.def_flags & VM_INIT_DEF_MASK
    return mm


def exec_mmap(task, mm: MmStruct) -> None:
    """fs/exec.c exec_mmap(): the task switches to `mm`; the old mm is dropped (mmput()
    -> exit_mmap(): every VMA unmapped, ->close called, files put, the commit charge
    given back)."""
    old = task.mm
    task.mm = mm
    mm.owner = task
    exit_mmap(old)


def do_close_on_exec(task) -> None:
    """fs/file.c do_close_on_exec(): close every fd marked close-on-exec."""
    for fd in sorted(task.close_on_exec):
        file = task.files.pop(fd, None)
        if file is not None:
            file.put(task.mm)
    task.close_on_exec.clear()


def setup_new_exec(task, rlim_stack: int, randomize: bool, mmap_rnd: int | None = None) -> None:
    """fs/exec.c setup_new_exec(): arch_pick_mmap_layout() with arch_rnd() (mmap_rnd,
    drawn when None) and stack_maxrandom_size() when the task has PF_RANDOMIZE; the
    layout is legacy (bottom-up) under ADDR_COMPAT_LAYOUT or vm.legacy_va_layout
    (mmap_is_legacy()). The model also draws here, once per exec, the base of the
    MAP_32BIT window that find_start_end() randomises per call."""
    kernel = task.kernel
    rnd = 0
    if randomize:
        rnd = kernel.random.getrandbits(MMAP_RND_BITS) << PAGE_SHIFT if mmap_rnd is None \
            else mmap_rnd
    stack_rnd = STACK_RND_PAGES << PAGE_SHIFT if randomize else 0
    legacy = bool(task.persona & ADDR_COMPAT_LAYOUT) or kernel.legacy_va_layout
    arch_pick_mmap_layout(task.mm, rlim_stack, legacy, rnd, stack_rnd)
    task.map32_begin = 0x40000000
    if randomize:
        task.map32_begin += kernel.random.randrange(0x2000000 >> PAGE_SHIFT) << PAGE_SHIFT


def arch_align_stack(sp: int, rnd: int) -> int:
    """arch/x86/kernel/process.c arch_align_stack(): `rnd` (ExecBases.stack_align or
    tables_align: 0 without ASLR) lower, 16-byte aligned."""
    return (sp - rnd) & ~0xF


def setup_arg_pages(task, bprm: LinuxBinprm, stack_top: int, executable_stack: int,
                    stack_align: int) -> None:
    """fs/exec.c setup_arg_pages(): the [stack] VMA of the new mm.

    The strings were copied below STACK_TOP_MAX into a VMA covering their pages; the
    stack moves to `stack_top` (lowered by arch_align_stack(), stack_align, and rounded
    up to a page), gets VM_STACK_FLAGS (made executable or not by PT_GNU_STACK) and grows by
    128 KiB (stack_expand, within RLIMIT_STACK). The model builds the VMA at its final
    place and size and writes the strings there: the same VMA, pages and charge."""
    mm = task.mm
    kernel = task.kernel
    stack_top = page_align(arch_align_stack(stack_top, stack_align))
    vm_end, vm_start = bprm.stack_top_max, bprm.p & PAGE_MASK
    if stack_top < kernel.mmap_min_addr or vm_end - vm_start >= stack_top - kernel.mmap_min_addr:
        raise kerr(ENOMEM)
    stack_shift = vm_end - stack_top
    bprm.p -= stack_shift
    bprm.arg_start = bprm.p
    bprm.exec -= stack_shift
    flags = VM_STACK_DEFAULT_FLAGS | (VM_EXEC if task.persona & READ_IMPLIES_EXEC else 0)
    if executable_stack == EXSTACK_ENABLE_X:
        flags |= VM_EXEC
    elif executable_stack == EXSTACK_DISABLE_X:
        flags &= ~VM_EXEC
    flags |= mm.def_flags
    end, start = stack_top, vm_start - stack_shift
    stack_expand = min(bprm.rlim_stack & PAGE_MASK, end - start + STACK_EXPAND)
    start = min(start, end - stack_expand)
    mm.insert_vm_struct(Vma(mm, start, end, flags, start >> PAGE_SHIFT))
    mm.start_stack = bprm.p
    copy_to_user(task, bprm.p, bprm.strings())


# --- the mapping calls of exec (mm/util.c vm_mmap, mm/mmap.c vm_munmap, vm_brk_flags) ---

def vm_mmap(task, file: File | None, addr: int, length: int, prot: int, flags: int,
            offset: int) -> int:
    """mm/util.c vm_mmap() -> vm_mmap_pgoff(): do_mmap() on behalf of the kernel, then
    the populate it asks for; an offset off a page is EINVAL. Returns the address."""
    if offset & ~PAGE_MASK:
        raise kerr(EINVAL)
    addr, populate = do_mmap(task, file, addr, length, prot, flags, offset >> PAGE_SHIFT)
    if populate:
        mm_populate(task, addr, populate)
    return addr


def vm_munmap(task, start: int, length: int) -> None:
    """mm/vma.c vm_munmap()."""
    do_vmi_munmap(task.mm, start, length)


def vm_brk_flags(task, addr: int, request: int, is_exec: bool) -> None:
    """mm/mmap.c vm_brk_flags(): an anonymous data mapping of [addr, addr + request)
    rounded to pages, replacing whatever is there (check_brk_limits():
    get_unmapped_area(MAP_FIXED), then the mlock limit, EAGAIN), made by
    do_brk_flags(), which extends the VMA before it when they can merge."""
    length = page_align(request)
    if length > U64:
        raise kerr(ENOMEM)
    if not length:
        return
    mm = task.mm
    get_unmapped_area(task, None, addr, length, 0, MAP_FIXED)
    if not mm.mlock_future_ok(task, mm.def_flags, length):
        raise kerr(EAGAIN)
    do_vmi_munmap(mm, addr, length)
    do_brk_flags(task, mm.tree.prev_of(addr), addr, length, VM_EXEC if is_exec else 0)
