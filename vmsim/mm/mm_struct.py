"""The address space of a process (`struct mm_struct`) and its invariants.

Mirrors include/linux/mm_types.h (mm_struct), mm/util.c (vm_stat_account,
__vm_enough_memory via the Kernel), mm/mmap.c (may_expand_vm, mlock_future_ok) and
mm/vma.c (vma_link, insert_vm_struct).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import HookContractError
from ..uapi import PAGE_SHIFT, PAGE_SIZE, RLIMIT_AS, RLIMIT_DATA, RLIMIT_MEMLOCK
from .flags import VM_ACCOUNT, VM_LOCKED, is_data_mapping, is_exec_mapping, is_stack_mapping
from .page_alloc import Page
from .tree import VmaTree


class Pfn(Protocol):
    """A physical page a driver maps with mm.fault.vmf_insert_pfn() (VM_PFNMAP)."""

    def cpu_page(self) -> Page:
        """The frame (mm/page_alloc.py: is_frame()) an ordinary (non enclave-mode) access
        to the page reads and writes; anything else makes the access raise
        HookContractError (mm.fault.pfn_page())."""
        ...


@dataclass(slots=True)
class HookFrame:
    """A driver hook the core is running in an mm (MmStruct.hook), or an operation that
    holds the mm while drivers run (fork, exit): what it is, whether the mmap_lock is
    held across it (`locked`: a call into this mm is a re-entry), and the first call
    into the mm made under it."""

    what: str
    locked: bool
    entered: str | None = None


class MmStruct:
    """One address space.

    Invariants (validate()):
      * tree: sorted, non-overlapping, page-aligned VMAs, each with vma.mm is self;
        the kernel's map_count is len(tree).
      * total_vm/data_vm/exec_vm/stack_vm equal the sums over the VMAs
        (vm_stat_account classes).
      * anon_pages: private pages (anonymous or COW copies, frames of mm/page_alloc.py,
        each mapped once: dropping the entry frees it) by virtual page number, only
        inside VMAs; file_ptes: page numbers mapped from a page cache, with
        their dirty bit; pfn_ptes: raw PFN mappings a driver installed with
        vmf_insert_pfn (VM_PFNMAP VMAs); guards: guard markers. All map vpn -> value.
      * pkeys: allocation bitmap of keys 0..15 (pkey_free(0) is allowed, so bit 0
        may be clear); execute_only_pkey is -1 or a key.
    """

    def __init__(self, kernel: Any):
        #: the Kernel (kernel.py sits above mm/): sysctls, CPU features, the commit
        self.kernel = kernel
        self.tree = VmaTree()
        self.total_vm = 0
        self.data_vm = 0
        self.exec_vm = 0
        self.stack_vm = 0
        self.locked_vm = 0
        self.committed = 0          # this mm's share of vm_committed_as
        self.def_flags = 0
        self.topdown = True         # MMF_TOPDOWN
        self.mmap_base = 0
        self.mmap_legacy_base = 0
        self.start_brk = self.brk = 0
        self.start_stack = 0
        self.has_mdwe = False       # MMF_HAS_MDWE
        self.mdwe_no_inherit = False
        self.merge_any = False      # MMF_VM_MERGE_ANY (prctl PR_SET_MEMORY_MERGE)
        # init_new_context(): only a PKU CPU gets pkey 0 allocated and "no
        # execute-only key yet" (-1); otherwise both stay zero.
        self.pkey_allocation_map = 1 if kernel.pkeys else 0
        self.execute_only_pkey = -1 if kernel.pkeys else 0
        self.anon_pages: dict[int, Page] = {}
        self.file_ptes: dict[int, bool] = {}
        self.guards: dict[int, bool] = {}       # guard PTE markers (MADV_GUARD_INSTALL)
        self.pfn_ptes: dict[int, Pfn] = {}      # VM_PFNMAP PTEs: vpn -> the driver's pfn
        #: 2 MiB blocks (addr >> 21) that have a page table: allocated by the first fault
        #: in the block, freed by an unmap that leaves no VMA in it (free_pgtables)
        self.pmd_tables: set[int] = set()
        #: the Process (process.py sits above mm/), for drivers that need current
        self.owner: Any = None
        #: mmu notifiers' ->release, called by exit_mmap()
        self.exit_notifiers: list[Callable[[MmStruct], None]] = []
        #: the innermost driver hook running in this mm (mm.hooks), None when none is
        self.hook: HookFrame | None = None

    # --- mmap_lock ---
    def mmap_lock(self, call: str) -> None:
        """mmap_write_lock()/mmap_read_lock() at the entry of an mm operation `call`.

        The model is single-threaded, so the lock is only ever found taken while the
        core runs a driver hook under it: Linux would deadlock, the model raises
        HookContractError and records the call, so that a hook that catches the error
        is caught all the same. Under a hook that runs without the lock (an ioctl, a
        ->release) the call is allowed and recorded. O(1)."""
        frame = self.hook
        if frame is None:
            return
        if frame.entered is None:
            frame.entered = call
        if frame.locked:
            raise HookContractError(
                f"{frame.what} called {call}() with the mmap_lock held: a hook cannot "
                "re-enter mm (Linux would deadlock)")

    @contextmanager
    def held(self, what: str) -> Iterator[None]:
        """Hold the mmap_lock model across an operation that runs driver hooks on
        behalf of this mm (dup_mmap() of the parent, exit_mmap()): a call into the mm
        from any of them is a re-entry."""
        outer = self.hook
        self.hook = HookFrame(what, locked=True)
        try:
            yield
        finally:
            self.hook = outer

    @property
    def map_count(self) -> int:
        return len(self.tree)

    # --- accounting ---
    def vm_stat_account(self, flags: int, npages: int) -> None:
        """mm/mmap.c vm_stat_account()."""
        self.total_vm += npages
        if is_exec_mapping(flags):
            self.exec_vm += npages
        elif is_stack_mapping(flags):
            self.stack_vm += npages
        elif is_data_mapping(flags):
            self.data_vm += npages

    def may_expand_vm(self, task, flags: int, npages: int) -> bool:
        """RLIMIT_AS for every mapping, RLIMIT_DATA for private writable ones."""
        if self.total_vm + npages > task.rlimit(RLIMIT_AS) >> PAGE_SHIFT:
            return False
        if is_data_mapping(flags) and \
                self.data_vm + npages > task.rlimit(RLIMIT_DATA) >> PAGE_SHIFT:
            cur, hard = task.rlimits[RLIMIT_DATA]
            # mm/mmap.c: the Valgrind workaround for a zero soft limit
            return cur == 0 and self.data_vm + npages <= hard >> PAGE_SHIFT
        return True

    def account(self, npages: int) -> None:
        """security_vm_enough_memory_mm(): charge the commit, ENOMEM if refused."""
        self.kernel.vm_enough_memory(self, npages)
        self.committed += npages

    def unaccount(self, npages: int) -> None:
        """vm_unacct_memory()."""
        self.kernel.committed -= npages
        self.committed -= npages

    def mlock_future_ok(self, task, flags: int, nbytes: int) -> bool:
        """mm/mmap.c mlock_future_ok(): RLIMIT_MEMLOCK unless CAP_IPC_LOCK."""
        if not flags & VM_LOCKED or task.capable("CAP_IPC_LOCK"):
            return True
        return (nbytes >> PAGE_SHIFT) + self.locked_vm <= task.rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT

    # --- linking new VMAs (mm/vma.c) ---
    def vma_link(self, vma) -> None:
        """vma_link(): a VMA built outside the tree enters it (map_count is the tree's
        size), with the vm_stat_account() its callers do (total_vm and its classes,
        locked_vm). Operations that store VMAs within their own accounting (split and
        merge, mmap_region, mremap's copy_vma, a munmap that gives up) use the tree
        directly. O(log n)."""
        self.tree.insert(vma)
        self.vm_stat_account(vma.flags, vma.pages)
        if vma.flags & VM_LOCKED:
            self.locked_vm += vma.pages

    def insert_vm_struct(self, vma) -> None:
        """insert_vm_struct(): charge a VM_ACCOUNT VMA's pages (ENOMEM if refused),
        then vma_link() it."""
        if vma.flags & VM_ACCOUNT:
            self.account(vma.pages)
        self.vma_link(vma)

    # --- pages ---
    def zap(self, start: int, end: int, markers: bool = True) -> None:
        """Drop every PTE in [start, end), and the guard markers too unless told to
        keep them (MADV_DONTNEED keeps them, unmapping does not).
        O(min(pages, present))."""
        tables = (self.anon_pages, self.file_ptes, self.pfn_ptes, self.guards) if markers \
            else (self.anon_pages, self.file_ptes, self.pfn_ptes)
        for table in tables:
            for vpn in self.present_in(start, end, table):
                del table[vpn]

    @staticmethod
    def present_in(start: int, end: int, table: dict) -> list[int]:
        """Page numbers of `table` inside [start, end), ascending.
        O(min(pages in range, len(table)))."""
        first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        if not table:
            return []
        if last - first <= len(table):
            return [v for v in range(first, last) if v in table]
        return sorted(v for v in table if first <= v < last)

    def free_pgtables(self, start: int, end: int) -> None:
        """free_pgtables() after an unmap: drop the page tables of the 2 MiB blocks of
        [start, end) that no VMA touches any more. O(min(blocks, tables))."""
        for block in self._blocks_with_tables(start, end):
            if self.tree.find_intersecting(block << 21, (block + 1) << 21) is None:
                self.pmd_tables.discard(block)

    def _blocks_with_tables(self, start: int, end: int) -> list[int]:
        first, last = start >> 21, ((end - 1) >> 21) + 1
        if last - first <= len(self.pmd_tables):
            return [b for b in range(first, last) if b in self.pmd_tables]
        return [b for b in self.pmd_tables if first <= b < last]

    def move_pages(self, old: int, new: int, length: int) -> None:
        """move_page_tables(): PTEs of [old, old+len) now map [new, new+len)."""
        if self._blocks_with_tables(old, old + length):
            self.pmd_tables.update(range(new >> 21, ((new + length - 1) >> 21) + 1))
        shift = (new - old) >> PAGE_SHIFT
        tables: tuple[dict[int, Any], ...] = (self.anon_pages, self.file_ptes, self.pfn_ptes,
                                              self.guards)
        for table in tables:
            items = [(v, table.pop(v)) for v in self.present_in(old, old + length, table)]
            for v, value in items:
                table[v + shift] = value

    # --- invariants ---
    def validate(self) -> None:
        """Assert every invariant of the address space. O(n + pages)."""
        tree = self.tree
        assert list(tree.starts) == sorted(tree.by_start), "tree keys out of sync"
        tree.starts.check()
        prev_end = 0
        totals = dict(total=0, data=0, exec=0, stack=0, locked=0, acct=0)
        task_size = self.kernel.task_size
        for vma in tree:
            assert vma.mm is self, f"{vma} belongs to another mm"
            assert vma.start % PAGE_SIZE == 0 and vma.end % PAGE_SIZE == 0, f"{vma} unaligned"
            assert vma.start < vma.end <= task_size, f"{vma} bad range"
            assert vma.start >= prev_end, f"{vma} overlaps its predecessor"
            assert (vma.anon_vma is None) == (vma.avc == ()), f"{vma} anon_vma/chain mismatch"
            assert vma.anon_vma is None or vma.anon_vma in vma.avc, f"{vma} chain lacks anon_vma"
            assert vma.file is None or vma.file.refs > 0, f"{vma} holds a released file"
            prev_end = vma.end
            n = vma.pages
            totals["total"] += n
            if is_exec_mapping(vma.flags):
                totals["exec"] += n
            elif is_stack_mapping(vma.flags):
                totals["stack"] += n
            elif is_data_mapping(vma.flags):
                totals["data"] += n
            if vma.flags & VM_LOCKED:
                totals["locked"] += n
            if vma.flags & VM_ACCOUNT:
                totals["acct"] += n
            if vma.vm_ops is not None and vma.vm_ops.check is not None:
                vma.vm_ops.check(vma)
        # locked_vm and the commit charge are not asserted: the kernel's own
        # arithmetic lets them drift (MREMAP_DONTUNMAP keeps the old VMA's locked_vm;
        # stack growth charges pages without VM_ACCOUNT), and the model keeps that.
        del totals["locked"], totals["acct"]
        got = dict(total=self.total_vm, data=self.data_vm, exec=self.exec_vm,
                   stack=self.stack_vm)
        assert got == totals, f"counters {got} != recomputed {totals}"
        for vpn in [*self.anon_pages, *self.file_ptes, *self.pfn_ptes, *self.guards]:
            assert tree.find(vpn << PAGE_SHIFT) is not None, f"page {vpn:#x} outside any VMA"
        for vpn in self.anon_pages:
            assert tree.find(vpn << PAGE_SHIFT).anon_vma is not None, \
                f"anonymous page {vpn:#x} in a VMA without an anon_vma"
        assert 0 <= self.pkey_allocation_map < 1 << 16, "pkey map beyond 16 keys"
        assert -1 <= self.execute_only_pkey < 16, "bad execute-only pkey"
