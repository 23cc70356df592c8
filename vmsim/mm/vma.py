"""The VMA record (`struct vm_area_struct`), anon_vma identity, and the driver hooks.

Mirrors include/linux/mm_types.h (vm_area_struct), include/linux/mm.h
(vm_operations_struct) and the parts of mm/rmap.c that decide merging: which anon_vma
a VMA uses and how many anon_vmas its chain links (a fork child links its parents').
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from ..uapi import PAGE_SHIFT
from .mm_struct import MmStruct
from .page_alloc import Page

_anon_ids = itertools.count(1)


class AnonVma:
    """`struct anon_vma`: compared only by identity.

    parent: the anon_vma this one was forked from (None for a root).
    """

    __slots__ = ("id", "parent")

    def __init__(self, parent: AnonVma | None = None):
        self.id = next(_anon_ids)
        self.parent = parent

    def __repr__(self):
        return f"anon_vma#{self.id}"


class VmOperations:
    """`struct vm_operations_struct`: how a driver takes part in a VMA's life.

    Drivers subclass it and define the members they need as methods; a member left
    None is absent, and absence is meaningful (a VMA with ->close is never removed by a
    merge; a VMA without ->fault cannot be faulted in). The core calls each member
    exactly where Linux 6.18 does (include/linux/mm.h) and holds it to the contract in
    its docstring (mm/hooks.py; docs/api.md "Driver hooks"):

    * The mmap_lock is held across every member: a call back into mm (munmap, mmap,
      mprotect, mremap, a fault, maps...) would deadlock in Linux and raises
      HookContractError here, even if the hook catches it.
    * "Changes nothing" means nothing the core keeps: every VMA of the mm (the tree,
      each VMA's fields), the counters (total_vm, data_vm, exec_vm, stack_vm,
      locked_vm, map_count), the commit charge, the file references. The core compares
      by identity and integers by exact type. The driver's own state is its own.
    * A refusal is an OSError whose errno is 1..4095 (vmsim.errors.kerr(errno)), for the
      members that may refuse; ->fault refuses with vmsim.Fault.
    * On a violation — a change, a re-entry, another result or exception — the core puts
      back what the hook changed, takes the kernel's error path for that member (said
      below), and raises HookContractError. KeyboardInterrupt and SystemExit take the
      same path and propagate.

    The kernel's own operations (generic_file_vm_ops, shmem, hugetlbfs, the special
    mappings) are part of the core: they are called without the checks.
    """

    open: Callable[[Vma], None] | None = None
    """open(vma): a new VMA now refers to the driver's object: the new half of a split,
    the child's copy at fork, the destination of an mremap move; not yet in the tree.
    May update the driver's own bookkeeping; changes nothing, returns nothing, cannot
    fail (at fork the parent's mm is checked too). Violation: the new VMA is dropped
    without further hooks, as __split_vma(), copy_vma() and dup_mmap() unwind: the split
    fails (the VMA stays whole), mremap fails before anything moved, fork fails and the
    child is torn down."""

    close: Callable[[Vma], None] | None = None
    """close(vma): the VMA is being removed (munmap, MAP_FIXED replacement, exit, mremap
    source), already out of the tree. A VMA with ->close is never deleted by a merge
    (it may still be extended or shrunk). Changes nothing, returns nothing, cannot
    fail. Violation: the removal completes, then HookContractError (a MAP_FIXED mmap
    fails with its range unmapped, as when ->mmap fails)."""

    may_split: Callable[[Vma, int], None] | None = None
    """may_split(vma, addr): asked before the VMA is split at addr (mprotect, munmap,
    mremap, ...). Returns nothing, or refuses: the operation fails with that errno, as
    it does on a violation (nothing split)."""

    mremap: Callable[[Vma], None] | None = None
    """mremap(vma): called on the new VMA after its pages moved. Returns nothing, or
    refuses. Refusal and violation alike: the pages move back, the new range is
    unmapped (mm/mremap.c copy_vma_and_data()) and mremap fails."""

    mprotect: Callable[[Vma, int, int, int], None] | None = None
    """mprotect(vma, start, end, newflags): the 5.11 hook, as merged after review (Mel
    Gorman, LKML 2020-11-06): a pure permission check. Called by mprotect() for each VMA
    of the range, after the VM_MAY*/MDWE/arch checks and before mprotect_fixup(), with
    the part of the request inside this VMA (start, end) and the complete new vm_flags.
    Returns nothing, or refuses. It MUST NOT modify the VMA, nor any other. Refusal and
    violation alike end the loop: the VMAs before this one keep their new protection
    (mprotect is not atomic), this one and the rest are unchanged. Returning normally
    lets the core do the split/merge and the flag change.

    Under Kernel(mprotect_hook="v40") the member is the hook of the original SGX patch
    instead (`mm.mprotect.MprotectHookV40`): mprotect(vma, pprev, start, end, newflags),
    called in place of mprotect_fixup(); it must call mm.mprotect.mprotect_fixup()
    itself and store the resulting VMA in pprev[0]. That design gives the hook the VMA
    surgery, so the core cannot check it: that is why review rejected it."""

    fault: Callable[[Vma, int, bool], Page | None] | None = None
    """fault(vma, addr, write): supply the page backing `addr` and return it: a frame of
    mm/page_alloc.py from alloc_page() or copy_page() (a bytearray or any other buffer
    is a violation); a page-cache page for files; the core copies it for a private
    write. In a VM_PFNMAP VMA, map a PFN at addr's page with
    mm.fault.vmf_insert_pfn() (inside the VMA) instead and return None. Refuses with
    vmsim.Fault, SIGBUS or SIGSEGV: the access gets that signal at `addr`. Changes
    nothing else (the read lock is held). Violation: no page is mapped (a PFN it
    inserted goes) and the access raises HookContractError."""

    access: Callable[[Vma, int, int, bool, bytes], bytes | int] | None = None
    """access(vma, addr, length, write, data): ptrace / `/proc/PID/mem` access
    (mm.fault.access_remote_vm(), as __access_remote_vm() does) where the normal page
    access fails: a VMA without struct pages (VM_IO|VM_PFNMAP), or a page it refuses.
    Returns the bytes read (at most length), or for a write of `data` the count written
    (0..length); a refusal ends the access there. Changes nothing."""

    name: Callable[[Vma], str | None] | None = None
    """name(vma): the name /proc/PID/maps prints for the VMA when it has no file: a str,
    or None. Changes nothing; a violation fails the read of maps."""

    pagesize: Callable[[Vma], int] | None = None
    """pagesize(vma): the page size smaps reports (KernelPageSize, MMUPageSize): a power
    of two, at least PAGE_SIZE; absent means PAGE_SIZE. Changes nothing."""

    check: Callable[[Vma], None] | None = None
    """check(vma): model only (no kernel counterpart): assert that the driver's private
    state for this VMA is consistent. MmStruct.validate() calls it directly, without
    the checks: it only reads. Must not change anything."""


class Vma:
    """`struct vm_area_struct`.

    Invariants (checked by MmStruct.validate):
      * start < end, both page aligned; VMAs of one mm never overlap.
      * flags holds VM_* bits including the pkey bits (32..35).
      * pgoff: file page offset of `start` for file VMAs; for anonymous private VMAs
        the page number of the address it was created at (addr >> PAGE_SHIFT),
        adjusted by splits like a file offset.
      * anon_vma is None until the first fault that needs an anonymous page;
        avc (the anon_vma_chain) is () exactly when anon_vma is None, and contains
        anon_vma; len(avc) > 1 means the VMA was forked ("had unCoW'd parents").
      * file holds one reference (File.refs) per VMA that points at it.
    """

    __slots__ = ("mm", "start", "end", "flags", "pgoff", "file", "anon_vma", "avc",
                 "vm_ops", "private_data", "__weakref__")

    def __init__(self, mm: MmStruct, start: int, end: int, flags: int, pgoff: int,
                 file: Any = None, vm_ops: VmOperations | None = None):
        self.mm = mm
        self.start = start
        self.end = end
        self.flags = flags
        self.pgoff = pgoff
        #: the mapped fs.file.File, or None (that module imports this one: typed Any)
        self.file = file
        self.anon_vma: AnonVma | None = None
        self.avc: tuple[AnonVma, ...] = ()
        self.vm_ops = vm_ops
        #: the driver's own state (vm_private_data)
        self.private_data: Any = None

    def __repr__(self):
        return f"<Vma {self.start:#x}-{self.end:#x} {self.flags:#x} pgoff={self.pgoff:#x}>"

    @property
    def pages(self) -> int:
        """vma_pages()."""
        return (self.end - self.start) >> PAGE_SHIFT

    def is_anonymous(self) -> bool:
        """vma_is_anonymous(): no vm_ops (private /dev/zero keeps its file)."""
        return self.vm_ops is None

    def pgoff_at(self, addr: int) -> int:
        """linear_page_index(): the file page `addr` maps."""
        return self.pgoff + ((addr - self.start) >> PAGE_SHIFT)

    def dup(self) -> Vma:
        """vm_area_dup(): a copy sharing file, anon_vma chain, ops and private data."""
        new = Vma(self.mm, self.start, self.end, self.flags, self.pgoff, self.file, self.vm_ops)
        new.anon_vma = self.anon_vma
        new.avc = self.avc
        new.private_data = self.private_data
        return new

    def had_uncowed_parents(self) -> bool:
        """vma_had_uncowed_parents(): faulted and its chain is not a single entry."""
        return self.anon_vma is not None and len(self.avc) != 1
