"""mseal(2) (6.10, reworked in 6.17): mm/mseal.c do_mseal(), mseal_apply().

Sealing sets VM_SEALED through vma_modify_flags, so it splits and merges like
mprotect. The checks that sealing causes live with each operation (mprotect_fixup,
the munmap gather, mremap, madvise).
"""

from __future__ import annotations

from ..errors import EINVAL, ENOMEM, kerr
from .flags import VM_SEALED
from .merge import vma_modify_flags
from .munmap import checked_range


def range_contains_unmapped(mm, start: int, end: int) -> bool:
    prev_end = start
    for vma in mm.tree.intersecting(start, end):
        if vma.start > prev_end:
            return True
        prev_end = vma.end
    return prev_end < end


def do_mseal(task, start: int, len_in: int, flags: int) -> int:
    mm = task.mm
    if flags:
        raise kerr(EINVAL)
    end = checked_range(start, len_in)
    if end == start:
        return 0
    mm.mmap_lock("mseal")
    if range_contains_unmapped(mm, start, end):
        raise kerr(ENOMEM)
    vma = mm.tree.find(start)
    prev = vma if start > vma.start else mm.tree.prev(vma)
    curr_start = start
    while vma is not None and curr_start < end:
        curr_end = min(vma.end, end)
        if not vma.flags & VM_SEALED:
            vma, flags = vma_modify_flags(mm, prev, vma, curr_start, curr_end,
                                          vma.flags | VM_SEALED)
            vma.flags = flags
        prev = vma
        curr_start = curr_end
        # for_each_vma_range() resumes at curr_start: a VMA that a merge grew past
        # it is visited again (and skipped, being sealed).
        vma = mm.tree.find_vma(curr_start)
    return 0
