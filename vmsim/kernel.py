"""The Kernel: configuration (sysctls, CPU features, credentials, limits), the VFS,
the process table and the system-wide commit counter (mm/util.c vm_committed_as).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence

from .arch.x86.sgx.cpu import SgxCpu
from .drivers.sgx.driver import install as install_sgx
from .errors import ENOMEM, kerr
from .fs import procmaps
from .fs.binfmt_elf import REFERENCE_HWCAPS, load_elf_binary
from .fs.binfmt_script import load_script
from .fs.exec import BRK_RND_SIZE, LoadBinary, setup_new_exec
from .fs.vfs import Vfs
from .ipc.shm import ShmIds
from .mm.flags import VM_STACK_DEFAULT_FLAGS
from .mm.mm_struct import MmStruct
from .mm.vma import Vma
from .process import Process
from .task.timekeeping import Timekeeper
from .uapi import (
    ADDR_NO_RANDOMIZE,
    PAGE_SHIFT,
    PAGE_SIZE,
    RLIM_INFINITY,
    RLIM_NLIMITS,
    RLIMIT_AS,
    RLIMIT_CORE,
    RLIMIT_CPU,
    RLIMIT_DATA,
    RLIMIT_FSIZE,
    RLIMIT_LOCKS,
    RLIMIT_MEMLOCK,
    RLIMIT_MSGQUEUE,
    RLIMIT_NICE,
    RLIMIT_NOFILE,
    RLIMIT_NPROC,
    RLIMIT_RSS,
    RLIMIT_RTPRIO,
    RLIMIT_RTTIME,
    RLIMIT_SIGPENDING,
    RLIMIT_STACK,
    U64,
)

#: rlimits of a root shell on the reference machine (NPROC and SIGPENDING: fork_init()'s
#: max_threads / 2 for its 24 GiB), but RLIMIT_NOFILE: the kernel's own INR_OPEN_CUR /
#: INR_OPEN_MAX (include/asm-generic/resource.h INIT_RLIMITS)
DEFAULT_RLIMITS = {
    RLIMIT_CPU: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_FSIZE: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_DATA: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_STACK: (8 << 20, RLIM_INFINITY),
    RLIMIT_CORE: (0, RLIM_INFINITY),
    RLIMIT_RSS: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_NPROC: (96367, 96367),
    RLIMIT_NOFILE: (1024, 4096),
    RLIMIT_MEMLOCK: (8 << 20, 8 << 20),
    RLIMIT_AS: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_LOCKS: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_SIGPENDING: (96367, 96367),
    RLIMIT_MSGQUEUE: (819200, 819200),
    RLIMIT_NICE: (0, 0),
    RLIMIT_RTPRIO: (0, 0),
    RLIMIT_RTTIME: (RLIM_INFINITY, RLIM_INFINITY),
}


def checked_rlimits(rlimits: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """The rlimits a Kernel is configured with, each a resource below RLIM_NLIMITS
    mapped to (cur, max), unsigned 64-bit integers with cur <= max; TypeError or
    ValueError names the first that is not."""
    for resource, limits in rlimits.items():
        if not isinstance(resource, int) or not 0 <= resource < RLIM_NLIMITS:
            raise ValueError(f"rlimits: no resource {resource!r} (0 to {RLIM_NLIMITS - 1})")
        if not isinstance(limits, tuple) or len(limits) != 2 or \
                not all(isinstance(v, int) for v in limits):
            raise TypeError(f"rlimits[{resource}]: expected (cur, max) integers, got {limits!r}")
        cur, hard = limits
        if not 0 <= cur <= hard <= U64:
            raise ValueError(f"rlimits[{resource}]: need 0 <= cur <= max <= RLIM_INFINITY, "
                             f"got {limits!r}")
    return rlimits


class Kernel:
    """A Linux 6.18 x86_64 kernel as the mm layer sees it. See docs/api.md."""

    def __init__(self, *, max_map_count: int = 65530, mmap_min_addr: int = 4096,
                 lsm_mmap_min_addr: int = 65536, task_size: int = 0x7FFFFFFFF000,
                 overcommit_memory: int = 0, overcommit_ratio: int = 50,
                 total_ram_pages: int = 6 << 20, legacy_va_layout: bool = False,
                 pkeys: bool = True, aslr: bool = False, seed: int = 0, thp: str = "madvise",
                 stack_guard_gap: int = 256 << PAGE_SHIFT, uid: int = 0,
                 capabilities: Iterable[str] = frozenset({"CAP_SYS_RAWIO", "CAP_IPC_LOCK"}),
                 rlimits: dict[int, tuple[int, int]] | None = None,
                 sgx: bool | SgxCpu = True, mprotect_hook: str = "merged",
                 memfd_noexec: int = 0) -> None:
        self.max_map_count = max_map_count
        self.dac_mmap_min_addr = mmap_min_addr
        #: security/min_addr.c: max(vm.mmap_min_addr, CONFIG_LSM_MMAP_MIN_ADDR)
        self.mmap_min_addr = max(mmap_min_addr, lsm_mmap_min_addr)
        self.task_size = task_size
        self.overcommit_memory = overcommit_memory
        self.overcommit_ratio = overcommit_ratio
        self.total_ram_pages = total_ram_pages
        self.legacy_va_layout = legacy_va_layout
        self.pkeys = pkeys
        self.aslr = aslr
        self.random = random.Random(seed)
        self.thp = thp
        self.stack_guard_gap = stack_guard_gap
        self.uid = uid
        self.capabilities = frozenset(capabilities)
        self.rlimits = dict(DEFAULT_RLIMITS)
        self.rlimits.update(checked_rlimits(rlimits or {}))
        self.fs = Vfs()
        #: vm.memfd_noexec: 0 lets memfds be executable, 1 makes MFD_NOEXEC_SEAL the
        #: default, 2 requires it (fs/memfd.py)
        self.memfd_noexec = memfd_noexec
        #: the IPC namespace's shared memory segments and shm sysctls (ipc/shm.py)
        self.shm = ShmIds(self)
        #: the binary formats execve tries, in order (fs/exec.c formats)
        self.binfmts: list[LoadBinary] = [load_elf_binary, load_script]
        #: what the CPU puts in an exec's auxv (AT_HWCAP, AT_HWCAP2, AT_MINSIGSTKSZ)
        self.elf_hwcaps = REFERENCE_HWCAPS
        self.processes: dict[int, Process] = {}
        self.committed = 0
        #: the clocks programs read (a virtual clock: deterministic, always advancing)
        self.clock = Timekeeper()
        #: the syscall numbers the x86-64 entry answered ENOSYS, each once, in the order
        #: first seen (vmsim.arch.x86.entry.syscall_64), for the run loop to report
        self.unknown_syscalls: list[int] = []
        self._next_pid = 1000
        #: "merged" (5.11: ->mprotect is a pure check) or "v40" (the hook got pprev
        #: and had to call mprotect_fixup itself, as in the SGX v40 patch)
        self.mprotect_hook = mprotect_hook
        self.sgx_cpu: SgxCpu | None = None
        if sgx:
            install_sgx(self, SgxCpu() if sgx is True else sgx)

    # --- mm/util.c ---
    def vm_enough_memory(self, mm: MmStruct, pages: int) -> None:
        """__vm_enough_memory(): charge `pages` or raise ENOMEM by the overcommit policy."""
        self.committed += pages
        if self.overcommit_memory == 1:
            return
        if self.overcommit_memory == 0:
            if pages <= self.total_ram_pages:
                return
        else:
            allowed = self.total_ram_pages * self.overcommit_ratio // 100
            allowed -= min(mm.total_vm // 32, (128 << 20) >> PAGE_SHIFT)
            if self.committed - pages < allowed and self.committed <= allowed:
                return
        self.committed -= pages
        raise kerr(ENOMEM)

    # --- processes ---
    def alloc_pid(self) -> int:
        """kernel/pid.c alloc_pid(): the next pid, for a process or a thread (tids and
        pids are one number space); never reused."""
        pid = self._next_pid
        self._next_pid += 1
        return pid

    def _new_process(self, parent: Process | None = None) -> Process:
        pid = self.alloc_pid()
        p = Process(self, pid, MmStruct(self))
        if parent is not None:
            p.persona = parent.persona
            p.pkru = parent.pkru
            p.rlimits = dict(parent.rlimits)
            p.caps = parent.caps
            p.map32_begin = parent.map32_begin
        self.processes[pid] = p
        return p

    def spawn(self, *, stack: bool = False, brk: int = 0x555555559000,
              personality: int = 0, maps: str | None = None, smaps: str | None = None,
              maps_path: str | None = None, smaps_path: str | None = None,
              argv: Sequence[str | bytes] | None = None,
              envp: Sequence[str | bytes] = ()) -> Process:
        """A process with an empty address space, as after execve of a static binary
        whose image is not shown: mmap_base and layout from the stack rlimit,
        start_brk = brk, and optionally a 132 KiB [stack] at the top.

        argv (and envp): instead, execve(argv[0], argv, envp) in the new process (with
        `personality` set first, as setarch does); if execve fails the process is gone
        and the OSError raised.

        maps (and smaps): start instead from the address space of a real process's
        /proc/PID/maps (smaps) dump (vmsim.fs.procmaps); a malformed dump raises
        procmaps.MapsError naming maps_path (smaps_path) and the line."""
        if argv is not None and (not argv or maps is not None or stack):
            raise ValueError("spawn(argv=...) needs argv[0], the file to execute, and "
                             "takes neither maps= nor stack=")
        p = self._new_process()
        p.persona = personality
        if argv is not None:
            self._execve(p, argv, envp)
            return p
        mm = p.mm
        randomize = self.aslr and not personality & ADDR_NO_RANDOMIZE
        setup_new_exec(p, p.rlimit(RLIMIT_STACK), randomize)
        if randomize:       # arch_randomize_brk(): a page within BRK_RND_SIZE (1 GiB)
            brk += self.random.randrange(BRK_RND_SIZE >> PAGE_SHIFT) << PAGE_SHIFT
        mm.start_brk = mm.brk = brk
        if maps is not None:
            lines = procmaps.parse_maps(maps, maps_path)
            if smaps is not None:
                procmaps.parse_smaps_into(lines, smaps, smaps_path)
            procmaps.populate(p, lines, maps_path)
            return p
        if stack:
            top = self.task_size
            if randomize:   # randomize_stack_top()
                top -= self.random.getrandbits(22) << PAGE_SHIFT
            self._setup_stack(p, top)
        return p

    @staticmethod
    def _execve(p: Process, argv: Sequence[str | bytes], envp: Sequence[str | bytes]) -> None:
        """execve(argv[0], argv, envp) in the new process p; p exits if it fails
        before the point of no return (after it, execve has killed p already)."""
        try:
            p.execve(os.fsdecode(argv[0]), argv, envp)
        except BaseException:
            if p.alive:
                p.exit()
            raise

    def _setup_stack(self, p: Process, end: int) -> None:
        """fs/exec.c setup_arg_pages(): the initial 132 KiB [stack] VMA ending at end."""
        mm = p.mm
        start = end - (33 << PAGE_SHIFT)
        mm.insert_vm_struct(Vma(mm, start, end, VM_STACK_DEFAULT_FLAGS, start >> PAGE_SHIFT))
        mm.start_stack = end - PAGE_SIZE      # where argc sits, inside the VMA
