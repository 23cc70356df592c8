"""Choosing an address for a new mapping: get_unmapped_area() on x86_64.

Mirrors mm/mmap.c (__get_unmapped_area, vm_unmapped_area, unmapped_area,
unmapped_area_topdown), arch/x86/kernel/sys_x86_64.c (arch_get_unmapped_area,
arch_get_unmapped_area_topdown, find_start_end), arch/x86/mm/mmap.c (mmap_base,
arch_pick_mmap_layout), mm/huge_memory.c (__thp_get_unmapped_area) and mm/shmem.c
(shmem_get_unmapped_area with the default shmem_enabled=never, where it adds nothing).
"""

from __future__ import annotations

from ..errors import EINVAL, ENOMEM, EPERM, kerr
from ..uapi import (
    MAP_32BIT,
    MAP_ABOVE4G,
    MAP_FIXED,
    MAP_SHARED,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SIZE,
    U64,
)
from .flags import VM_GROWSDOWN, VM_SHADOW_STACK
from .hooks import f_get_unmapped_area
from .truncate import loff_t

SIZE_128M = 128 << 20
SIZE_4G = 1 << 32


def mmap_base(task_size: int, rlim_stack: int, guard_gap: int, stack_rnd: int, rnd: int) -> int:
    """arch/x86/mm/mmap.c mmap_base(): top of the top-down mmap area."""
    gap = rlim_stack
    pad = stack_rnd + guard_gap
    if gap + pad <= U64 and gap + pad > gap:
        gap += pad
    gap = min(max(gap, SIZE_128M), task_size // 6 * 5)
    return (task_size - gap - rnd + PAGE_SIZE - 1) & PAGE_MASK


def arch_pick_mmap_layout(mm, rlim_stack: int, legacy: bool, rnd: int, stack_rnd: int) -> None:
    """arch/x86/mm/mmap.c arch_pick_mmap_layout() for a 64-bit task: MMF_TOPDOWN unless
    the layout is legacy (mmap_is_legacy()); mmap_legacy_base is TASK_UNMAPPED_BASE +
    rnd, mmap_base the top-down base (the legacy base in the legacy layout). rnd is
    arch_rnd(mmap64_rnd_bits) and stack_rnd stack_maxrandom_size(): 0 without ASLR."""
    task_size = mm.kernel.task_size
    mm.topdown = not legacy
    mm.mmap_legacy_base = ((task_size // 3 + PAGE_SIZE - 1) & PAGE_MASK) + rnd
    mm.mmap_base = mm.mmap_legacy_base if legacy else \
        mmap_base(task_size, rlim_stack, mm.kernel.stack_guard_gap, stack_rnd, rnd)


def vm_start_gap(vma, guard_gap: int) -> int:
    """The lowest address a new mapping below `vma` may reach (stack guard gap)."""
    gap = guard_gap if vma.flags & VM_GROWSDOWN else PAGE_SIZE if vma.flags & VM_SHADOW_STACK else 0
    return max(vma.start - gap, 0)


def _highest_gap(mm, low: int, high: int, size: int):
    """The end of the highest free range of `size` bytes inside [low, high): the range
    below `high`, then the gaps between the VMAs below it, from the highest down, as
    mas_empty_area_rev() searches them; the lowest is cut at `low`. O(log n)."""
    tree = mm.tree
    below = tree.prev_of(high)
    lower = max(below.end, low) if below is not None else low
    if high >= lower and high - lower >= size:
        return high
    if below is None or lower <= low:
        return None
    first = tree.find_vma(low)          # the gap below it reaches down to `low`
    fit = tree.highest_gap_fit(first, below, size)
    if fit is not None:
        return fit.start
    prev = tree.prev(first)
    lower = max(prev.end, low) if prev is not None else low
    upper = first.start
    return upper if upper >= lower and upper - lower >= size else None


def _lowest_gap(mm, low: int, high: int, size: int):
    """The start of the lowest free range of `size` bytes inside [low, high): the range
    above `low`, then the gaps between the VMAs above it, from the lowest up, as
    mas_empty_area() searches them; the highest is cut at `high`. O(log n)."""
    tree = mm.tree
    vma = tree.find_vma(low)
    upper = min(vma.start, high) if vma is not None else high
    if upper >= low and upper - low >= size:
        return low
    if vma is None or vma.end >= high:
        return None
    last = tree.prev_of(high)           # the gap above it reaches up to `high`
    fit = tree.lowest_gap_fit(vma, last, size)
    if fit is not None:
        return tree.prev(fit).end
    if last.end >= high:
        return None
    nxt = tree.next(last)
    upper = min(nxt.start, high) if nxt is not None else high
    return last.end if upper >= last.end and upper - last.end >= size else None


def unmapped_area_topdown(mm, length, low, high, align_mask=0, align_offset=0):
    """The highest address for `length` bytes in [low, high), honouring guard gaps."""
    kernel = mm.kernel
    size = length + align_mask
    low = max(low, kernel.mmap_min_addr)
    while True:
        gap_end = _highest_gap(mm, low, high, size)
        if gap_end is None:
            return None
        gap = gap_end - length
        gap -= (gap - align_offset) & align_mask
        nxt = mm.tree.find_vma(gap_end)
        if nxt is not None and nxt.flags & (VM_GROWSDOWN | VM_SHADOW_STACK) and \
                gap_end > vm_start_gap(nxt, kernel.stack_guard_gap):
            high = vm_start_gap(nxt, kernel.stack_guard_gap)
            continue
        return gap


def unmapped_area(mm, length, low, high, align_mask=0, align_offset=0):
    """The lowest address for `length` bytes in [low, high), honouring guard gaps."""
    kernel = mm.kernel
    size = length + align_mask
    low = max(low, kernel.mmap_min_addr)
    while True:
        start = _lowest_gap(mm, low, high, size)
        if start is None:
            return None
        gap = start + ((align_offset - start) & align_mask)
        nxt = mm.tree.find_vma(start)
        if nxt is not None and nxt.flags & (VM_GROWSDOWN | VM_SHADOW_STACK) and \
                vm_start_gap(nxt, kernel.stack_guard_gap) < gap + length - 1:
            low = nxt.end
            continue
        return gap


def _hint_free(mm, addr: int, length: int) -> bool:
    vma = mm.tree.find_vma(addr)
    return vma is None or addr + length <= vm_start_gap(vma, mm.kernel.stack_guard_gap)


def arch_get_unmapped_area(task, file, addr, length, pgoff, flags) -> int:
    """Bottom-up search (legacy layout, MAP_32BIT, and the top-down fallback)."""
    mm = task.mm
    if flags & MAP_FIXED:
        return addr
    if flags & MAP_32BIT:
        begin, end = task.map32_begin, 0x80000000
    else:
        begin, end = mm.mmap_legacy_base, mm.kernel.task_size
    if length > end:
        raise kerr(ENOMEM)
    if addr:
        addr = (addr + PAGE_SIZE - 1) & PAGE_MASK
        if end - length >= addr and _hint_free(mm, addr, length):
            return addr
    found = unmapped_area(mm, length, begin, end)
    if found is None:
        raise kerr(ENOMEM)
    return found


def arch_get_unmapped_area_topdown(task, file, addr, length, pgoff, flags) -> int:
    """Top-down search below mmap_base, falling back to bottom-up."""
    mm = task.mm
    task_size = mm.kernel.task_size
    if length > task_size:
        raise kerr(ENOMEM)
    if flags & MAP_FIXED:
        return addr
    addr0 = addr
    if not flags & MAP_32BIT:
        if addr:
            addr &= PAGE_MASK
            if task_size - length >= addr and _hint_free(mm, addr, length):
                return addr
        low = SIZE_4G if flags & MAP_ABOVE4G else PAGE_SIZE
        found = unmapped_area_topdown(mm, length, low, mm.mmap_base)
        if found is not None:
            return found
    return arch_get_unmapped_area(task, file, addr0, length, pgoff, flags)


def mm_get_unmapped_area(task, file, addr, length, pgoff, flags) -> int:
    """mm_get_unmapped_area_vmflags(): the layout's search."""
    if task.mm.topdown:
        return arch_get_unmapped_area_topdown(task, file, addr, length, pgoff, flags)
    return arch_get_unmapped_area(task, file, addr, length, pgoff, flags)


def thp_get_unmapped_area(task, file, addr, length, pgoff, flags) -> int:
    """mm/huge_memory.c thp_get_unmapped_area() and __thp_get_unmapped_area(): place a
    mapping that holds a PMD-sized chunk of file offsets PMD-aligned if possible. The
    offsets are loff_t and wrap as C arithmetic does: near 2^63, round_up(off, PMD_SIZE)
    turns negative, the signed difference wraps back and compares unsigned with the
    size, so the padded search is taken [obs]."""
    off = loff_t(pgoff << PAGE_SHIFT)
    off_end = loff_t(off + length)
    off_align = loff_t(((off - 1) | (PMD_SIZE - 1)) + 1)            # round_up()
    if off_end <= off_align or (off_end - off_align) & U64 < PMD_SIZE:
        return mm_get_unmapped_area(task, file, addr, length, pgoff, flags)
    len_pad = (length + PMD_SIZE) & U64
    if len_pad < length or (off + len_pad) & U64 < off & U64:
        return mm_get_unmapped_area(task, file, addr, length, pgoff, flags)
    try:
        ret = mm_get_unmapped_area(task, file, addr, len_pad, (off >> PAGE_SHIFT) & U64, flags)
    except OSError:         # perhaps the padding: the caller retries without it
        return mm_get_unmapped_area(task, file, addr, length, pgoff, flags)
    if ret == addr:
        return addr
    off_sub = (off - ret) & (PMD_SIZE - 1)
    if task.mm.topdown and not off_sub:
        return ret + PMD_SIZE
    return ret + off_sub


def hugetlb_unmapped_area(task, size, addr, length, flags) -> int:
    """hugetlb_get_unmapped_area(): lengths and MAP_FIXED addresses must be huge
    aligned; a hint is rounded up; searches are aligned to the huge page size."""
    mm = task.mm
    task_size = mm.kernel.task_size
    if length & (size - 1):
        raise kerr(EINVAL)
    if length > task_size:
        raise kerr(ENOMEM)
    if flags & MAP_FIXED:
        if addr & (size - 1):
            raise kerr(EINVAL)
        return addr
    if addr:
        addr = (addr + size - 1) & ~(size - 1)
        if task_size - length >= addr and _hint_free(mm, addr, length):
            return addr
    found = None
    if mm.topdown:
        found = unmapped_area_topdown(mm, length, PAGE_SIZE, mm.mmap_base, size - 1)
    if found is None:
        found = unmapped_area(mm, length, mm.mmap_legacy_base, task_size, size - 1)
    if found is None:
        raise kerr(ENOMEM)
    return found


def get_unmapped_area(task, file, addr, length, pgoff, flags) -> int:
    """__get_unmapped_area(): dispatch, then the common range and address checks."""
    kernel = task.kernel
    if length > kernel.task_size:
        raise kerr(ENOMEM)
    if file is not None:
        if file.f_op.get_unmapped_area is not None:
            addr = f_get_unmapped_area(task, file, addr, length, pgoff, flags)
        else:
            addr = mm_get_unmapped_area(task, file, addr, length, pgoff, flags)
    elif flags & MAP_SHARED:
        addr = mm_get_unmapped_area(task, None, addr, length, 0, flags)   # shmem
    elif not addr and length % PMD_SIZE == 0:
        addr = thp_get_unmapped_area(task, None, addr, length, 0, flags)
    else:
        addr = mm_get_unmapped_area(task, None, addr, length, 0, flags)
    if addr > kernel.task_size - length:
        raise kerr(ENOMEM)
    if addr & ~PAGE_MASK:
        raise kerr(EINVAL)
    if addr < kernel.mmap_min_addr and not task.capable("CAP_SYS_RAWIO"):
        raise kerr(EPERM)      # security_mmap_addr()
    return addr
