"""mlock(2), mlock2(2), munlock(2): mm/mlock.c do_mlock(), apply_vma_lock_flags(),
mlock_fixup(). Locking changes vm_flags (VM_LOCKED, VM_LOCKONFAULT), so it splits
and merges; mlock then populates the range.
"""

from __future__ import annotations

from ..errors import EAGAIN, EFAULT, EINVAL, ENOMEM, EPERM, kerr
from ..uapi import MLOCK_ONFAULT, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, RLIMIT_MEMLOCK, U64
from .flags import VM_DROPPABLE, VM_HUGETLB, VM_LOCKED, VM_LOCKED_MASK, VM_LOCKONFAULT, VM_SPECIAL
from .merge import vma_modify_flags
from .mmap import can_do_mlock, mm_populate
from .munmap import page_align


def vma_supports_mlock(vma) -> bool:
    return not vma.flags & (VM_SPECIAL | VM_DROPPABLE | VM_HUGETLB)


def mlock_fixup(task, vma, prev, start, end, newflags):
    """Set the lock flags on [start, end) of vma (split/merge), counting locked_vm."""
    mm = task.mm
    oldflags = vma.flags
    if newflags == oldflags or not vma_supports_mlock(vma):
        return vma
    vma, newflags = vma_modify_flags(mm, prev, vma, start, end, newflags)
    nr = (end - start) >> PAGE_SHIFT
    if not newflags & VM_LOCKED:
        nr = -nr
    elif oldflags & VM_LOCKED:
        nr = 0
    mm.locked_vm += nr
    vma.flags = newflags
    return vma


def apply_vma_lock_flags(task, start: int, length: int, flags: int) -> None:
    mm = task.mm
    end = start + length
    if end > U64:
        raise kerr(EINVAL)
    if end == start:
        return
    vma = mm.tree.find(start)
    if vma is None:
        raise kerr(ENOMEM)
    prev = vma if start > vma.start else mm.tree.prev(vma)
    nstart, tmp = start, vma.start
    while vma is not None and vma.start < end:
        if vma.start != tmp:
            raise kerr(ENOMEM)
        newflags = (vma.flags & ~VM_LOCKED_MASK) | flags
        tmp = min(vma.end, end)
        vma = mlock_fixup(task, vma, prev, nstart, tmp, newflags)
        prev = vma
        tmp = vma.end
        nstart = tmp
        vma = mm.tree.next(vma)
    if tmp < end:
        raise kerr(ENOMEM)


def do_mlock(task, start: int, length: int, flags: int) -> int:
    mm = task.mm
    if not can_do_mlock(task):
        raise kerr(EPERM)
    length = page_align(length + (start & (PAGE_SIZE - 1)))
    start &= PAGE_MASK
    lock_limit = task.rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT
    locked = (length >> PAGE_SHIFT) + mm.locked_vm
    capable = task.capable("CAP_IPC_LOCK")
    if locked > lock_limit and not capable:
        locked -= sum((min(v.end, start + length) - max(v.start, start)) >> PAGE_SHIFT
                      for v in mm.tree.intersecting(start, start + length)
                      if v.flags & VM_LOCKED)
    if locked > lock_limit and not capable:
        raise kerr(ENOMEM)
    apply_vma_lock_flags(task, start, length, flags)
    err = mm_populate(task, start, length, ignore_errors=False)
    if err == EFAULT:
        raise kerr(ENOMEM)          # __mlock_posix_error_return()
    if err == ENOMEM:
        raise kerr(EAGAIN)
    return 0


def sys_mlock2(task, start: int, length: int, flags: int) -> int:
    if flags & ~MLOCK_ONFAULT:
        raise kerr(EINVAL)
    vm_flags = VM_LOCKED | (VM_LOCKONFAULT if flags & MLOCK_ONFAULT else 0)
    return do_mlock(task, start, length, vm_flags)


def sys_munlock(task, start: int, length: int) -> int:
    length = page_align(length + (start & (PAGE_SIZE - 1)))
    start &= PAGE_MASK
    apply_vma_lock_flags(task, start, length, 0)
    return 0
