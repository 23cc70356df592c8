"""mlock(2), mlock2(2), munlock(2), mlockall(2), munlockall(2): mm/mlock.c do_mlock(),
apply_vma_lock_flags(), apply_mlockall_flags(), mlock_fixup(). Locking changes vm_flags
(VM_LOCKED, VM_LOCKONFAULT), so it splits and merges; mlock then populates the range.
mlockall(MCL_FUTURE) sets mm->def_flags, which every later mapping (mmap, brk, shmat)
takes; a fork child starts without it (mm_init() keeps only VM_INIT_DEF_MASK).
"""

from __future__ import annotations

from ..errors import EAGAIN, EFAULT, EINVAL, ENOMEM, EPERM, kerr
from ..uapi import (
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MLOCK_ONFAULT,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    RLIMIT_MEMLOCK,
    U64,
)
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
    mm.mmap_lock("mlock")
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
    task.mm.mmap_lock("munlock")
    apply_vma_lock_flags(task, start, length, 0)
    return 0


def apply_mlockall_flags(task, flags: int) -> None:
    """mm/mlock.c apply_mlockall_flags(): MCL_FUTURE sets VM_LOCKED (with MCL_ONFAULT
    also VM_LOCKONFAULT) in mm->def_flags, and any other call clears them there (so
    mlockall(MCL_CURRENT) cancels an earlier MCL_FUTURE); MCL_CURRENT, or no MCL_FUTURE
    (munlockall), gives every VMA the new lock flags through mlock_fixup(), which
    skips the VMAs that cannot be locked (VM_SPECIAL, VM_DROPPABLE, hugetlb) and whose
    errors are ignored. Cost: O(n log n) for n VMAs."""
    mm = task.mm
    mm.def_flags &= ~VM_LOCKED_MASK
    onfault = VM_LOCKONFAULT if flags & MCL_ONFAULT else 0
    if flags & MCL_FUTURE:
        mm.def_flags |= VM_LOCKED | onfault
        if not flags & MCL_CURRENT:
            return
    to_add = VM_LOCKED | onfault if flags & MCL_CURRENT else 0
    vma = mm.tree.find_vma(0)
    prev = None
    while vma is not None:
        newflags = (vma.flags & ~VM_LOCKED_MASK) | to_add
        try:
            vma = mlock_fixup(task, vma, prev, vma.start, vma.end, newflags)
        except OSError:
            pass            # "Ignore errors, but prev needs fixing up."
        prev = vma
        vma = mm.tree.next(vma)


def sys_mlockall(task, flags: int) -> int:
    """mm/mlock.c SYSCALL_DEFINE1(mlockall): EINVAL for no flag, an unknown one or
    MCL_ONFAULT alone; EPERM when RLIMIT_MEMLOCK is 0 without CAP_IPC_LOCK; with
    MCL_CURRENT, ENOMEM when the whole address space (total_vm) exceeds RLIMIT_MEMLOCK
    without CAP_IPC_LOCK. Then apply_mlockall_flags() and, for MCL_CURRENT, populate
    everything (__mm_populate() ignoring errors; VM_LOCKONFAULT VMAs are skipped)."""
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        raise kerr(EINVAL)
    if not can_do_mlock(task):
        raise kerr(EPERM)
    mm = task.mm
    lock_limit = task.rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT
    mm.mmap_lock("mlockall")
    if flags & MCL_CURRENT and mm.total_vm > lock_limit and not task.capable("CAP_IPC_LOCK"):
        raise kerr(ENOMEM)
    apply_mlockall_flags(task, flags)
    if flags & MCL_CURRENT:
        mm_populate(task, 0, task.kernel.task_size)
    return 0


def sys_munlockall(task) -> int:
    """mm/mlock.c SYSCALL_DEFINE0(munlockall): apply_mlockall_flags(0) — every VMA and
    mm->def_flags lose VM_LOCKED and VM_LOCKONFAULT. Never fails."""
    task.mm.mmap_lock("munlockall")
    apply_mlockall_flags(task, 0)
    return 0
