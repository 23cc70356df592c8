"""A process: the syscall surface, its file table, personality, PKRU, fork and exit.

Each syscall method reinterprets its arguments as the x86_64 syscall ABI does
(unsigned 64-bit addresses and lengths, 32-bit ints) and calls the mm function that
mirrors the kernel's. Failures raise OSError with the kernel's errno.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from .errors import EBADF, EINVAL, EMFILE, ENOTTY, EPERM, kerr
from .fs.file import FMODE_READ, FMODE_WRITE, S_IFREG, File
from .fs.vfs import Vfs
from .mm import fault, madvise, mlock, mmap, mprotect, mremap, mseal, pkeys, procfs
from .mm.flags import VM_MERGEABLE, vma_pkey, vmflags_mnemonics
from .mm.fork import dup_mmap, exit_mmap
from .mm.madvise import ksm_compatible
from .mm.mm_struct import MmStruct
from .mm.munmap import do_vmi_munmap
from .mm.truncate import truncate_setsize
from .uapi import (
    PAGE_SHIFT,
    PR_GET_MDWE,
    PR_GET_MEMORY_MERGE,
    PR_MDWE_NO_INHERIT,
    PR_MDWE_REFUSE_EXEC_GAIN,
    PR_SET_MDWE,
    PR_SET_MEMORY_MERGE,
    PR_SET_VMA,
    U64,
)


class KernelView(Protocol):
    """What a Process uses of its Kernel. kernel.py imports this module, so the type
    is structural: vmsim.Kernel is the one implementation."""

    fs: Vfs
    pkeys: bool
    uid: int
    capabilities: frozenset[str]
    rlimits: dict[int, tuple[int, int]]
    processes: dict[int, Process]

    def _new_process(self, parent: Process | None = None) -> Process: ...


class VmaView(NamedTuple):
    """A read-only view of one VMA, as Process.vmas() gives it."""

    start: int
    end: int
    flags: int
    pgoff: int
    perms: str
    name: str | None
    pkey: int
    file: str | None
    anon_vma: int | None
    vmflags: list[str]
    offset: int
    dev: tuple[int, int]
    inode: int


def _ulong(x: object) -> int:
    if not isinstance(x, int):
        raise TypeError(f"expected an integer, got {type(x).__name__}")
    return x & U64


def _int(x: object) -> int:
    if not isinstance(x, int):
        raise TypeError(f"expected an integer, got {type(x).__name__}")
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _uint(x: object) -> int:
    if not isinstance(x, int):
        raise TypeError(f"expected an integer, got {type(x).__name__}")
    return x & 0xFFFFFFFF


class Process:
    """One single-threaded process of a Kernel.

    Invariants: `files` maps open fds to File objects holding one reference each;
    `mm.owner is self`; `pkru` is this thread's PKRU register.
    """

    def __init__(self, kernel: KernelView, pid: int, mm: MmStruct) -> None:
        self.kernel = kernel
        self.pid = pid
        self.mm = mm
        mm.owner = self
        self.files: dict[int, File] = {}
        self.persona = 0            # current->personality
        self.pkru = pkeys.INIT_PKRU_VALUE if kernel.pkeys else 0
        self.rlimits = dict(kernel.rlimits)
        self.caps = frozenset(kernel.capabilities)
        self.uid = kernel.uid
        self.map32_begin = 0x40000000
        self.alive = True

    # --- credentials and limits ---
    def capable(self, cap: str) -> bool:
        return cap in self.caps

    def rlimit(self, resource: int) -> int:
        return self.rlimits[resource][0]

    def setrlimit(self, resource: int, cur: int, max: int | None = None) -> None:
        hard = self.rlimits[resource][1] if max is None else max
        if cur > hard:
            raise kerr(EINVAL)
        self.rlimits[resource] = (cur, hard)

    def getrlimit(self, resource: int) -> tuple[int, int]:
        return self.rlimits[resource]

    # --- helpers used by mm ---
    def execute_only_pkey(self) -> int:
        return pkeys.execute_only_pkey(self)

    def pkey_is_allocated(self, pkey: int) -> bool:
        return pkeys.mm_pkey_is_allocated(self, pkey)

    # --- memory syscalls ---
    def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int = -1,
             offset: int = 0) -> int:
        """mmap(2). Cost: O(log n) plus the VMAs replaced."""
        return mmap.sys_mmap(self, _ulong(addr), _ulong(length), _ulong(prot),
                             _ulong(flags), _ulong(fd), _ulong(offset))

    def munmap(self, addr: int, length: int) -> int:
        """munmap(2). Cost: O(log n + k) for k VMAs unmapped."""
        do_vmi_munmap(self.mm, _ulong(addr), _ulong(length))
        return 0

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        """mprotect(2). Cost: O(log n) per VMA of the range."""
        mprotect.do_mprotect_pkey(self, _ulong(addr), _ulong(length), _ulong(prot), -1)
        return 0

    def pkey_mprotect(self, addr: int, length: int, prot: int, pkey: int) -> int:
        mprotect.do_mprotect_pkey(self, _ulong(addr), _ulong(length), _ulong(prot), _int(pkey))
        return 0

    def pkey_alloc(self, flags: int = 0, access_rights: int = 0) -> int:
        return pkeys.sys_pkey_alloc(self, _ulong(flags), _ulong(access_rights))

    def pkey_free(self, pkey: int) -> int:
        return pkeys.sys_pkey_free(self, _int(pkey))

    def mremap(self, old_addr: int, old_len: int, new_len: int, flags: int = 0,
               new_addr: int = 0) -> int:
        return mremap.sys_mremap(self, _ulong(old_addr), _ulong(old_len), _ulong(new_len),
                                 _ulong(flags), _ulong(new_addr))

    def mseal(self, addr: int, length: int, flags: int = 0) -> int:
        return mseal.do_mseal(self, _ulong(addr), _ulong(length), _ulong(flags))

    def madvise(self, addr: int, length: int, advice: int) -> int:
        return madvise.do_madvise(self, _ulong(addr), _ulong(length), _int(advice))

    def mlock(self, addr: int, length: int) -> int:
        return mlock.sys_mlock2(self, _ulong(addr), _ulong(length), 0)

    def mlock2(self, addr: int, length: int, flags: int = 0) -> int:
        return mlock.sys_mlock2(self, _ulong(addr), _ulong(length), _int(flags) & U64)

    def munlock(self, addr: int, length: int) -> int:
        return mlock.sys_munlock(self, _ulong(addr), _ulong(length))

    def brk(self, addr: int) -> int:
        return mmap.sys_brk(self, _ulong(addr))

    def personality(self, persona: int) -> int:
        """personality(2): returns the old persona; 0xffffffff only queries."""
        persona = _uint(persona)
        old = self.persona
        if persona != 0xFFFFFFFF:
            self.persona = persona
        return old

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
              arg5: int = 0) -> int:
        option = _int(option)
        arg2, arg3, arg4, arg5 = (_ulong(a) for a in (arg2, arg3, arg4, arg5))
        mm = self.mm
        if option == PR_SET_MDWE:
            if arg3 or arg4 or arg5:
                raise kerr(EINVAL)
            if arg2 & ~(PR_MDWE_REFUSE_EXEC_GAIN | PR_MDWE_NO_INHERIT):
                raise kerr(EINVAL)
            if arg2 & PR_MDWE_NO_INHERIT and not arg2 & PR_MDWE_REFUSE_EXEC_GAIN:
                raise kerr(EINVAL)
            current = self._mdwe_bits()
            if current and current != arg2:
                raise kerr(EPERM)
            mm.mdwe_no_inherit |= bool(arg2 & PR_MDWE_NO_INHERIT)
            mm.has_mdwe |= bool(arg2 & PR_MDWE_REFUSE_EXEC_GAIN)
            return 0
        if option == PR_GET_MDWE:
            if arg2 or arg3 or arg4 or arg5:
                raise kerr(EINVAL)
            return self._mdwe_bits()
        if option == PR_SET_MEMORY_MERGE:
            if arg3 or arg4 or arg5:
                raise kerr(EINVAL)
            was, mm.merge_any = mm.merge_any, bool(arg2)
            for vma in mm.tree:
                if mm.merge_any and ksm_compatible(vma.flags):
                    vma.flags |= VM_MERGEABLE       # ksm_enable_merge_any()
                elif was and not mm.merge_any:
                    vma.flags &= ~VM_MERGEABLE      # ksm_disable_merge_any(): ksm_del_vmas()
            return 0
        if option == PR_GET_MEMORY_MERGE:
            if arg2 or arg3 or arg4 or arg5:
                raise kerr(EINVAL)
            return int(mm.merge_any)
        if option == PR_SET_VMA:
            raise kerr(EINVAL)          # CONFIG_ANON_VMA_NAME is off on the target
        raise kerr(EINVAL)

    def _mdwe_bits(self) -> int:
        mm = self.mm
        return (PR_MDWE_REFUSE_EXEC_GAIN if mm.has_mdwe else 0) | \
            (PR_MDWE_NO_INHERIT if mm.mdwe_no_inherit else 0)

    # --- files ---
    def _install(self, file: File) -> int:
        fd = 0
        while fd in self.files:
            fd += 1
        if fd >= 1024:
            raise kerr(EMFILE)
        self.files[fd] = file.get()
        return fd

    def _file(self, fd: int) -> File:
        file = self.files.get(_int(fd))
        if file is None:
            raise kerr(EBADF)
        return file

    def open(self, path: str, flags: int = 0, mode: int = 0o666) -> int:
        return self._install(self.kernel.fs.open(path, _int(flags), mode))

    def close(self, fd: int) -> int:
        self._file(fd)
        self.files.pop(_int(fd)).put()
        return 0

    def dup(self, fd: int) -> int:
        return self._install(self._file(fd))

    def pipe(self) -> tuple[int, int]:
        r, w = self.kernel.fs.pipe()
        return self._install(r), self._install(w)

    def ftruncate(self, fd: int, length: int) -> int:
        """ftruncate(2): do_truncate() -> truncate_setsize() on a regular file."""
        file = self._file(fd)
        if not file.f_mode & FMODE_WRITE or file.inode.kind != S_IFREG or length < 0:
            raise kerr(EINVAL)
        truncate_setsize(self.kernel, file.inode, length)
        return 0

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        file = self._file(fd)
        if not file.f_mode & FMODE_READ:
            raise kerr(EBADF)
        return file.inode.read(offset, n)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        file = self._file(fd)
        if not file.f_mode & FMODE_WRITE:
            raise kerr(EBADF)
        file.inode.write(offset, bytes(data))
        return len(data)

    def unlink(self, path: str) -> int:
        self.kernel.fs.unlink(path)
        return 0

    def ioctl(self, fd: int, cmd: int, arg: int = 0) -> int:
        file = self._file(fd)
        if file.f_op.unlocked_ioctl is None:
            raise kerr(ENOTTY)
        return file.f_op.unlocked_ioctl(self, file, _uint(cmd), _ulong(arg))

    # --- memory access ---
    def read(self, addr: int, n: int) -> bytes:
        """Read n bytes as the process would. Raises vmsim.Fault."""
        return fault.access(self, _ulong(addr), n, "r")

    def write(self, addr: int, data: bytes) -> None:
        """Write bytes as the process would. Raises vmsim.Fault."""
        fault.access(self, _ulong(addr), len(data), "w", bytes(data))

    def touch(self, addr: int, mode: str = "r") -> None:
        """One access of kind "r", "w" or "x" at addr."""
        if mode not in ("r", "w", "x"):
            raise ValueError("mode must be 'r', 'w' or 'x'")
        if mode == "w":
            vma = fault.user_fault(self, _ulong(addr), "w")
            fault.fault_page(self, vma, _ulong(addr), True)
        else:
            fault.access(self, _ulong(addr), 1, mode)

    # --- views ---
    def maps(self) -> str:
        """/proc/PID/maps, byte for byte. O(n)."""
        return procfs.show_maps(self.mm)

    def smaps(self) -> str:
        """/proc/PID/smaps. O(n + pages)."""
        return procfs.show_smaps(self.mm, self.kernel.pkeys)

    def vmas(self) -> list[VmaView]:
        """Read-only views of the VMAs, in address order."""
        return [VmaView(v.start, v.end, v.flags, v.pgoff, procfs.perms(v.flags),
                        procfs.vma_name(v), vma_pkey(v.flags),
                        v.file.path if v.file is not None else None,
                        v.anon_vma.id if v.anon_vma is not None else None,
                        vmflags_mnemonics(v.flags),
                        v.pgoff << PAGE_SHIFT if v.file is not None else 0,
                        v.file.inode.dev if v.file is not None else (0, 0),
                        v.file.inode.ino if v.file is not None else 0)
                for v in self.mm.tree]

    # --- lifecycle ---
    def fork(self) -> Process:
        """fork(2): kernel/fork.c copy_process(): the file table and dup_mmap();
        returns the child."""
        child = self.kernel._new_process(self)
        for fd, file in self.files.items():
            child.files[fd] = file.get()
        dup_mmap(self.mm, child.mm)
        return child

    def exit(self) -> None:
        """exit(2): exit_mmap() (unmapping everything, calling ->close), then close
        every fd."""
        if not self.alive:
            return
        exit_mmap(self.mm)
        for fd in list(self.files):
            self.files.pop(fd).put()
        self.alive = False
        self.kernel.processes.pop(self.pid, None)
