"""msync(2): mm/msync.c SYSCALL_DEFINE3(msync).

msync changes nothing the model can observe: MS_ASYNC starts no I/O (not since 2.5.68),
and MS_SYNC writes dirty page-cache pages back to the file's storage, which the model
does not have (its page cache is the file). What is left is the result: the argument
checks, the walk that skips unmapped holes and answers ENOMEM at the end, and EBUSY for
MS_INVALIDATE over a VM_LOCKED VMA.

Not modelled: vfs_fsync_range() failing. Every file type of the model has an ->fsync
that succeeds; a driver file without one (the SGX enclave device) would make Linux's
MS_SYNC fail with EINVAL on its shared mappings.
"""

from __future__ import annotations

from ..errors import EBUSY, EINVAL, ENOMEM, kerr
from ..uapi import MS_ASYNC, MS_INVALIDATE, MS_SYNC, PAGE_MASK, PAGE_SIZE, U64
from .flags import VM_LOCKED


def sys_msync(task, start: int, length: int, flags: int) -> int:
    """mm/msync.c SYSCALL_DEFINE3(msync): EINVAL for unknown flags, an unaligned start
    or MS_ASYNC|MS_SYNC; ENOMEM when start + len (len rounded up to pages, in unsigned
    arithmetic: a len within a page of 2**64 rounds to 0) wraps. Then each VMA of the
    range in address order: a hole before it ends a plain MS_ASYNC at once (ENOMEM),
    otherwise is skipped and remembered; MS_INVALIDATE on a VM_LOCKED VMA is EBUSY at
    once; the remembered ENOMEM is returned after the last VMA. Changes nothing.
    Cost: O(log n) per VMA of the range."""
    if flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC):
        raise kerr(EINVAL)
    if start & ~PAGE_MASK:
        raise kerr(EINVAL)
    if flags & MS_ASYNC and flags & MS_SYNC:
        raise kerr(EINVAL)
    length = (length + PAGE_SIZE - 1) & PAGE_MASK & U64
    end = start + length
    if end > U64:
        raise kerr(ENOMEM)
    if end == start:
        return 0
    mm = task.mm
    mm.mmap_lock("msync")
    unmapped_error = 0
    vma = mm.tree.find_vma(start)
    while True:
        if vma is None:
            raise kerr(ENOMEM)
        if start < vma.start:
            if flags == MS_ASYNC:
                raise kerr(ENOMEM)
            start = vma.start
            if start >= end:
                raise kerr(ENOMEM)
            unmapped_error = ENOMEM
        if flags & MS_INVALIDATE and vma.flags & VM_LOCKED:
            raise kerr(EBUSY)
        start = vma.end
        if start >= end:
            break
        vma = mm.tree.find_vma(start)
    if unmapped_error:
        raise kerr(unmapped_error)
    return 0
