"""mincore(2): mm/mincore.c, which pages of a range are resident.

A page is resident when the model holds it: an anonymous page or private copy
(`anon_pages`), a mapped page-cache page (`file_ptes`), or, for a file mapping, a page
of the file's page cache that is not mapped (mincore_page()). A private anonymous page
only read is mapped to the zero page in Linux and counts as resident there; the model
records no zero-page mappings, so it reads as not resident (docs/deviations.md).
"""

from __future__ import annotations

from ..errors import EFAULT, EINVAL, ENOMEM, kerr
from ..uapi import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from .fault import copy_to_user


def do_mincore(task, start: int, length: int, vec: int) -> int:
    """mm/mincore.c sys_mincore(): EINVAL for an unaligned start; ENOMEM for a range
    past user space; EFAULT for a vector outside it; then VMA by VMA (do_mincore()),
    a byte per page written before the next VMA is looked up: ENOMEM at the first page
    in no VMA, the bytes before it written."""
    if start & ~PAGE_MASK:
        raise kerr(EINVAL)
    task_size = task.kernel.task_size
    if start + length > task_size:
        raise kerr(ENOMEM)
    pages = (length + PAGE_SIZE - 1) >> PAGE_SHIFT
    if vec + pages > task_size:
        raise kerr(EFAULT)
    mm = task.mm
    vpn = start >> PAGE_SHIFT
    end = vpn + pages
    while vpn < end:
        vma = mm.tree.find(vpn << PAGE_SHIFT)
        if vma is None or vma.start > vpn << PAGE_SHIFT:
            raise kerr(ENOMEM)
        stop = min(end, vma.end >> PAGE_SHIFT)
        copy_to_user(task, vec + vpn - (start >> PAGE_SHIFT),
                     bytes(_resident(mm, vma, v) for v in range(vpn, stop)))
        vpn = stop
    return 0


def _resident(mm, vma, vpn: int) -> int:
    if vpn in mm.anon_pages or vpn in mm.file_ptes:
        return 1
    if vma.file is None:
        return 0
    index = vpn - (vma.start >> PAGE_SHIFT) + vma.pgoff
    return int(index in vma.file.inode.pages)
