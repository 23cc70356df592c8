"""Truncating a file and punching holes in it, as the mm layer sees it: mm/truncate.c
(truncate_setsize, truncate_pagecache, truncate_pagecache_range), mm/memory.c
(unmap_mapping_range) and the checks of fs/open.c vfs_fallocate() a hole punched
through a mapping (MADV_REMOVE) meets. The page cache loses the pages, and every
mapping of the file loses the PTEs that mapped them.

Linux finds a file's mappings in its address_space's i_mmap tree; the model keeps no
reverse map and walks the VMAs of every process of the kernel: O(VMAs in the system).
"""

from __future__ import annotations

from ..errors import EFBIG, EINVAL, ENODEV, EPERM, kerr
from ..fs.file import S_IFREG, File, Inode
from ..uapi import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, U64

#: LLONG_MAX, the largest loff_t
LOFF_MAX = (1 << 63) - 1
#: pages in a PMD-sized folio
HPAGE_PMD_NR = PMD_SIZE >> PAGE_SHIFT


def loff_t(value: int) -> int:
    """`value` as a loff_t (long long) holds it: C arithmetic on file offsets wraps to
    64 bits, signed (the kernel is built with -fno-strict-overflow)."""
    value &= U64
    return value - (1 << 64) if value > LOFF_MAX else value


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


def vfs_fallocate_punch_hole(kernel, file: File, offset: int, length: int) -> None:
    """fs/open.c vfs_fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
    len) as madvise_remove() calls it, with loff_t arguments: a negative offset is
    EINVAL, an append-only file EPERM, a file that is not regular ENODEV, a hole whose
    end overflows a loff_t or passes the filesystem's s_maxbytes EFBIG (ext4: 16 TiB -
    4 KiB; tmpfs: 2^63 - 1). Then ->fallocate: shmem_fallocate() and ext4_punch_hole()
    both end in truncate_pagecache_range()."""
    inode = file.inode
    if offset < 0 or length <= 0:
        raise kerr(EINVAL)
    if inode.append_only:
        raise kerr(EPERM)
    if inode.kind != S_IFREG:
        raise kerr(ENODEV)
    end = offset + length
    if end > LOFF_MAX or end > inode.mount.maxbytes:
        raise kerr(EFBIG)
    truncate_pagecache_range(kernel, inode, offset, end - 1)


def truncate_pagecache_range(kernel, inode: Inode, lstart: int, lend: int) -> None:
    """mm/truncate.c truncate_pagecache_range(): the hole [lstart, lend] (inclusive, whole
    pages: MADV_REMOVE punches page-aligned holes) leaves every shared mapping (private
    COW copies and guard markers stay) and the page cache; a huge folio it cuts into is
    split. O(min(pages, cached))."""
    unmap_mapping_range(kernel, inode, lstart, lend + 1 - lstart, False)
    first, last = lstart >> PAGE_SHIFT, (lend + 1) >> PAGE_SHIFT
    for head in [h for h in inode.huge_folios if first < h + HPAGE_PMD_NR and h < last]:
        split_huge_folio(inode, head)
    cache = inode.pages
    gone = range(first, last) if last - first <= len(cache) else \
        [index for index in cache if first <= index < last]
    for index in gone:
        cache.pop(index, None)


def split_huge_folio(inode: Inode, head: int) -> None:
    """mm/huge_memory.c split_folio() of the shmem huge folio at index `head`: its pages
    become small folios, and those past EOF leave the page cache. (Its PMD mappings go
    too: the fault path finds them split, fault.file_page_mapped().)"""
    inode.huge_folios.discard(head)
    eof_pages = -(-inode.size // PAGE_SIZE)
    for index in range(max(head, eof_pages), head + HPAGE_PMD_NR):
        inode.pages.pop(index, None)
