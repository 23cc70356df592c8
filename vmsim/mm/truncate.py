"""Truncating a file and punching holes in it, as the mm layer sees it: mm/truncate.c
(truncate_setsize, truncate_pagecache, truncate_pagecache_range) and mm/memory.c
(unmap_mapping_range). The page cache loses the pages, and every mapping of the file
loses the PTEs that mapped them.

Linux finds a file's mappings in its address_space's i_mmap tree; the model keeps no
reverse map and walks the VMAs of every process of the kernel: O(VMAs in the system).
"""

from __future__ import annotations

from ..fs.file import Inode
from ..uapi import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE


def unmap_mapping_range(kernel, inode: Inode, holebegin: int, holelen: int,
                        even_cows: bool) -> None:
    """mm/memory.c unmap_mapping_range(): drop the PTEs that map the file pages of
    [holebegin, holebegin + holelen) (holelen 0: to the end of the file) in every
    mapping of `inode`. even_cows (truncation): private COW copies and PFN mappings go
    too; otherwise (a punched hole) only the PTEs of page-cache pages. Guard markers
    stay either way."""
    first = holebegin >> PAGE_SHIFT
    last = first + ((holelen + PAGE_SIZE - 1) >> PAGE_SHIFT) if holelen else None
    for proc in kernel.processes.values():
        mm = proc.mm
        for vma in mm.tree:
            if vma.file is None or vma.file.inode is not inode:
                continue
            lo = max(first, vma.pgoff)
            hi = vma.pgoff + vma.pages if last is None else min(last, vma.pgoff + vma.pages)
            if lo >= hi:
                continue
            start = vma.start + ((lo - vma.pgoff) << PAGE_SHIFT)
            end = vma.start + ((hi - vma.pgoff) << PAGE_SHIFT)
            if even_cows:
                mm.zap(start, end, markers=False)
            else:
                for vpn in mm.present_in(start, end, mm.file_ptes):
                    del mm.file_ptes[vpn]


def truncate_setsize(kernel, inode: Inode, newsize: int) -> None:
    """mm/truncate.c truncate_setsize() and truncate_pagecache(): the new i_size; pages
    wholly past it leave every mapping, private COW copies included, and the page cache;
    the tail of the last page is zeroed."""
    holebegin = (newsize + PAGE_SIZE - 1) & PAGE_MASK
    unmap_mapping_range(kernel, inode, holebegin, 0, True)
    inode.truncate(newsize)


def truncate_pagecache_range(kernel, inode: Inode, lstart: int, lend: int) -> None:
    """mm/truncate.c truncate_pagecache_range(): the hole [lstart, lend] (inclusive, whole
    pages: MADV_REMOVE punches page-aligned holes) leaves every shared mapping (private
    COW copies and guard markers stay) and the page cache. O(min(pages, cached))."""
    unmap_mapping_range(kernel, inode, lstart, lend + 1 - lstart, False)
    first, last = lstart >> PAGE_SHIFT, (lend + 1) >> PAGE_SHIFT
    cache = inode.pages
    gone = range(first, last) if last - first <= len(cache) else \
        [index for index in cache if first <= index < last]
    for index in gone:
        cache.pop(index, None)
