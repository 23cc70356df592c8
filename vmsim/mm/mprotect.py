"""mprotect(2) and pkey_mprotect(2): mm/mprotect.c do_mprotect_pkey() and
mprotect_fixup(), with the 5.11 `vm_ops->mprotect` check-only hook.

mprotect is not atomic across VMAs: an error for the k-th VMA of the range leaves
VMAs 0..k-1 changed (and the k-th possibly split at its start).
"""

from __future__ import annotations

from typing import Protocol, cast

from ..errors import EACCES, EINVAL, ENOMEM, EPERM, kerr
from ..uapi import (
    PAGE_MASK,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_READ,
    PROT_SEM,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
    U64,
)
from .flags import (
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_FLAGS_CLEAR,
    VM_GROWSDOWN,
    VM_HUGETLB,
    VM_LOCKED,
    VM_MAYEXEC,
    VM_NORESERVE,
    VM_SEALED,
    VM_SHARED,
    VM_WRITE,
    calc_vm_prot_bits,
    vma_pkey,
)
from .hooks import vm_mprotect
from .merge import vma_modify_flags
from .mmap import map_deny_write_exec, mm_populate
from .munmap import page_align
from .vma import Vma


class MprotectHookV40(Protocol):
    """vm_ops->mprotect of the SGX v40 series (Kernel(mprotect_hook="v40")): called in
    place of mprotect_fixup(), it must call mprotect_fixup() itself and store the VMA
    that covers [start, end) afterwards in pprev[0]."""

    def __call__(self, vma: Vma, pprev: list[Vma | None], start: int, end: int,
                 newflags: int, /) -> None: ...


def arch_override_mprotect_pkey(task, vma, prot: int, pkey: int) -> int:
    """arch/x86/mm/pkeys.c __arch_override_mprotect_pkey() (0 without PKU)."""
    if not task.kernel.pkeys:
        return 0
    if pkey != -1:
        return pkey
    if prot == PROT_EXEC:
        xo = task.execute_only_pkey()
        if xo > 0:
            return xo
    elif vma_is_pkey_exec_only(task, vma):
        return 0
    return vma_pkey(vma.flags)


def vma_is_pkey_exec_only(task, vma) -> bool:
    mm = task.mm
    return (mm.execute_only_pkey > 0 and vma.flags & VM_ACCESS_FLAGS == 0x4
            and vma_pkey(vma.flags) == mm.execute_only_pkey)


def do_mprotect_pkey(task, start: int, length: int, prot: int, pkey: int) -> None:
    """The syscall body, errors in the kernel's order (spec §1.2)."""
    mm = task.mm
    grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
    prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
    if grows == PROT_GROWSDOWN | PROT_GROWSUP:
        raise kerr(EINVAL)
    if start & ~PAGE_MASK:
        raise kerr(EINVAL)
    if not length:
        return
    length = page_align(length)
    end = start + length
    if end > U64 or end <= start:
        raise kerr(ENOMEM)
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM):
        raise kerr(EINVAL)
    mm.mmap_lock("mprotect")
    reqprot = prot
    if pkey != -1 and not task.pkey_is_allocated(pkey):
        raise kerr(EINVAL)
    vma = mm.tree.find_intersecting(start, end)
    if vma is None:
        raise kerr(ENOMEM)
    if grows & PROT_GROWSDOWN:
        if vma.start >= end:
            raise kerr(ENOMEM)
        start = vma.start
        if not vma.flags & VM_GROWSDOWN:
            raise kerr(EINVAL)
    else:
        if vma.start > start:
            raise kerr(ENOMEM)
        if grows & PROT_GROWSUP:
            raise kerr(EINVAL)          # x86 has no VM_GROWSUP
    prev = vma if start > vma.start else mm.tree.prev(vma)
    nstart, tmp = start, vma.start
    while vma is not None and vma.start < end:
        if vma.start != tmp:
            raise kerr(ENOMEM)
        if reqprot & PROT_READ and task.persona & READ_IMPLIES_EXEC and \
                vma.flags & VM_MAYEXEC:
            prot = reqprot | PROT_EXEC
        else:
            prot = reqprot
        new_pkey = arch_override_mprotect_pkey(task, vma, prot, pkey)
        newflags = calc_vm_prot_bits(prot, new_pkey) | \
            (vma.flags & ~(VM_ACCESS_FLAGS | VM_FLAGS_CLEAR))
        if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:
            raise kerr(EACCES)
        if map_deny_write_exec(mm, vma.flags, newflags):
            raise kerr(EACCES)
        tmp = min(vma.end, end)
        ops = vma.vm_ops
        if ops is not None and ops.mprotect is not None:
            if task.kernel.mprotect_hook == "v40":
                vma, prev, nstart = v40_hook_step(task, vma, prev, nstart, tmp, end, newflags)
                if vma is None:
                    return
                tmp = nstart
                continue
            vm_mprotect(vma, nstart, tmp, newflags)
        vma = mprotect_fixup(task, vma, prev, nstart, tmp, newflags)
        prev = vma
        tmp = vma.end
        nstart = tmp
        vma = mm.tree.next(vma)
    if tmp < end:
        raise kerr(ENOMEM)


def v40_hook_step(task, vma: Vma, prev: Vma | None, nstart: int, tmp: int, end: int,
                  newflags: int) -> tuple[Vma | None, Vma | None, int]:
    """The design of the SGX v40 series (LKML, 2020), kept to show why review rejected
    it: the hook received `pprev` *instead of* the core calling mprotect_fixup(), so the
    driver had to call mprotect_fixup() itself and report the new prev. A hook that only
    checks leaves the VMA unchanged and mprotect still succeeds. The loop continues as
    the 5.10 do_mprotect_pkey() did, from prev. Returns (next vma or None when done,
    prev, nstart)."""
    assert vma.vm_ops is not None       # the caller found its ->mprotect
    pprev = [prev]
    hook = cast(MprotectHookV40, vma.vm_ops.mprotect)
    hook(vma, pprev, nstart, tmp, newflags)
    prev = pprev[0]
    nstart = tmp
    if prev is not None and nstart < prev.end:
        nstart = prev.end
    if nstart >= end:
        return None, prev, nstart
    nxt = task.mm.tree.next(prev) if prev is not None else task.mm.tree.find_vma(0)
    if nxt is None or nxt.start != nstart:
        raise kerr(ENOMEM)
    return nxt, prev, nstart


def mprotect_fixup(task, vma, prev, start: int, end: int, newflags: int):
    """Apply newflags to [start, end) of vma: seal check, commit accounting, then
    merge or split (vma_modify_flags) and set the flags. Returns the VMA covering
    the range afterwards."""
    mm = task.mm
    if vma.flags & VM_SEALED:
        raise kerr(EPERM)
    oldflags = vma.flags
    if newflags == oldflags:
        return vma
    nrpages = (end - start) >> PAGE_SHIFT
    charged = 0
    if newflags & VM_WRITE:
        if not mm.may_expand_vm(task, newflags, nrpages) and \
                mm.may_expand_vm(task, oldflags, nrpages):
            raise kerr(ENOMEM)
        if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
            mm.account(nrpages)
            charged = nrpages
            newflags |= VM_ACCOUNT
    elif oldflags & VM_ACCOUNT and vma.is_anonymous() and vma.anon_vma is None:
        newflags &= ~VM_ACCOUNT
    try:
        vma, newflags = vma_modify_flags(mm, prev, vma, start, end, newflags)
    except BaseException:
        if charged:
            mm.unaccount(charged)
        raise
    vma.flags = newflags
    if oldflags & VM_ACCOUNT and not newflags & VM_ACCOUNT:
        mm.unaccount(nrpages)
    if oldflags & VM_LOCKED and not oldflags & VM_WRITE and newflags & VM_WRITE \
            and not newflags & VM_SHARED:
        mm_populate(task, start, end - start)
    mm.vm_stat_account(oldflags, -nrpages)
    mm.vm_stat_account(newflags, nrpages)
    return vma
