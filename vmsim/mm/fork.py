"""An address space's copy at fork and its teardown at exit: kernel/fork.c dup_mmap()
and mm/mmap.c exit_mmap().
"""

from __future__ import annotations

from .fault import pmd_mapped_blocks
from .flags import (
    VM_ACCOUNT,
    VM_DONTCOPY,
    VM_LOCKED_MASK,
    VM_MAYBE_GUARD,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    VM_WIPEONFORK,
)
from .hooks import vm_open
from .mm_struct import MmStruct
from .munmap import VmaMunmap
from .page_alloc import copy_page
from .vma import AnonVma, Vma

#: the mm_struct fields a child inherits as they are (MMF_* flags, layout, brk, pkeys)
INHERITED = ("topdown", "mmap_base", "mmap_legacy_base", "start_brk", "brk",
             "start_stack", "pkey_allocation_map", "execute_only_pkey", "merge_any")
#: kernel/fork.c mm_init(): of mm->def_flags a child keeps only VM_INIT_DEF_MASK, not
#: mlockall(MCL_FUTURE)'s VM_LOCKED [obs]
VM_INIT_DEF_MASK = VM_NOHUGEPAGE


def dup_mmap(old: MmStruct, mm: MmStruct) -> None:
    """kernel/fork.c dup_mmap(): copy every VMA but VM_DONTCOPY ones; VM_WIPEONFORK
    VMAs start empty; VM_LOCKED is dropped; forked anon_vmas link the parent's.

    The parent's mm is held throughout (both mmap_locks are, in Linux). On an error
    (ENOMEM from the commit charge, an ->open that breaks its contract) the VMA being
    copied is dropped and the error propagates: the caller tears the child down, as
    copy_process() does with mmput()."""
    for attr in INHERITED:
        setattr(mm, attr, getattr(old, attr))
    mm.def_flags = old.def_flags & VM_INIT_DEF_MASK
    if not old.mdwe_no_inherit:
        mm.has_mdwe = old.has_mdwe
    with old.held("dup_mmap"):
        for vma in list(old.tree):
            if not vma.flags & VM_DONTCOPY:
                dup_vma(old, mm, vma)


def dup_vma(old: MmStruct, mm: MmStruct, vma: Vma) -> None:
    """One VMA of dup_mmap(): charge, copy, ->open, link, copy the page tables."""
    if vma.flags & VM_ACCOUNT:
        mm.account(vma.pages)
    new = vma.dup()
    new.mm = mm
    new.flags &= ~VM_LOCKED_MASK
    if new.flags & VM_WIPEONFORK:
        new.anon_vma, new.avc = None, ()
    elif vma.anon_vma is not None:
        av = AnonVma(parent=vma.anon_vma)
        new.anon_vma, new.avc = av, vma.avc + (av,)
    if new.file is not None:
        new.file.get()
    try:
        vm_open(new, parent=old)
    except BaseException:
        if new.file is not None:
            new.file.put(mm)
        if vma.flags & VM_ACCOUNT:
            mm.unaccount(vma.pages)
        raise
    mm.vma_link(new)
    if not new.flags & VM_WIPEONFORK:
        copy_page_range(old, mm, vma)


def copy_page_range(old: MmStruct, mm: MmStruct, vma: Vma) -> None:
    """mm/memory.c copy_page_range() for one VMA: private pages (into new frames: the
    model does not share them copy-on-write) and guard markers are copied; page
    tables, raw PFN mappings and page-cache PTEs only where a fault could not refill
    them (the VMA has an anon_vma, VM_PFNMAP or guard markers)."""
    for vpn in old.present_in(vma.start, vma.end, old.anon_pages):
        mm.anon_pages[vpn] = copy_page(old.anon_pages[vpn])
    for vpn in old.present_in(vma.start, vma.end, old.guards):
        mm.guards[vpn] = True
    huge = pmd_mapped_blocks(old, vma)      # copy_huge_pmd() leaves a file PMD to refault
    if vma.anon_vma is not None or vma.flags & (VM_PFNMAP | VM_MAYBE_GUARD):
        blocks = range(vma.start >> 21, ((vma.end - 1) >> 21) + 1)
        mm.pmd_tables.update(b for b in blocks if b in old.pmd_tables and b not in huge)
    if vma.flags & VM_PFNMAP:
        for vpn in old.present_in(vma.start, vma.end, old.pfn_ptes):
            mm.pfn_ptes[vpn] = old.pfn_ptes[vpn]
    if vma.anon_vma is not None:
        for vpn in old.present_in(vma.start, vma.end, old.file_ptes):
            if vpn >> 9 not in huge:
                mm.file_ptes[vpn] = old.file_ptes[vpn]


def exit_mmap(mm: MmStruct) -> None:
    """mm/mmap.c exit_mmap(): unmap every VMA (->close, fput, counters, the commit
    charge), then tell the mmu notifiers (mmu_notifier_release). The mm is held
    throughout: a ->close or ->release that calls into it is refused (Linux runs the
    last __fput() after exit_mm(), with no mm left to call into). A hook that breaks
    its contract is raised once everything is torn down."""
    with mm.held("exit_mmap"):
        try:
            if len(mm.tree):
                vms = VmaMunmap(mm, 0, mm.kernel.task_size)
                for vma in list(mm.tree):
                    mm.tree.remove(vma)
                    vms.detached.append(vma)
                    if vma.flags & VM_ACCOUNT:
                        vms.nr_accounted += vma.pages
                vms.complete()
        finally:
            for notify in mm.exit_notifiers:
                notify(mm)
            mm.exit_notifiers.clear()
