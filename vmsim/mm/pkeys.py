"""Memory protection keys on x86: mm/mprotect.c pkey_alloc/pkey_free,
arch/x86/include/asm/pkeys.h (allocation map) and arch/x86/mm/pkeys.c
(the execute-only key, PKRU updates).

PKRU has two bits per key: AD (access disable, bit 2k) and WD (write disable,
bit 2k+1). A new process starts with init_pkru_value: every key but 0 access-disabled.
"""

from __future__ import annotations

from ..errors import EINVAL, ENOSPC, kerr
from ..uapi import PKEY_ACCESS_MASK, PKEY_DISABLE_ACCESS, PKEY_DISABLE_WRITE

INIT_PKRU_VALUE = 0x55555554
PKRU_AD_BIT = 0x1
PKRU_WD_BIT = 0x2


def arch_max_pkey(kernel) -> int:
    return 16 if kernel.pkeys else 1


def mm_pkey_is_allocated(task, pkey: int) -> bool:
    mm = task.mm
    if pkey < 0 or pkey >= arch_max_pkey(task.kernel):
        return False
    if pkey == mm.execute_only_pkey:
        return False        # set in the map, but not for the user interfaces
    return bool(mm.pkey_allocation_map & (1 << pkey))


def mm_pkey_alloc(task) -> int:
    """The lowest free key, or -1."""
    mm = task.mm
    all_keys = (1 << arch_max_pkey(task.kernel)) - 1
    if mm.pkey_allocation_map == all_keys:
        return -1
    free = ~mm.pkey_allocation_map & all_keys
    pkey = (free & -free).bit_length() - 1
    mm.pkey_allocation_map |= 1 << pkey
    return pkey


def arch_set_user_pkey_access(task, pkey: int, init_val: int) -> None:
    """Set this thread's PKRU bits for pkey (EINVAL without PKU)."""
    if not task.kernel.pkeys:
        raise kerr(EINVAL)
    bits = (PKRU_AD_BIT if init_val & PKEY_DISABLE_ACCESS else 0) | \
        (PKRU_WD_BIT if init_val & PKEY_DISABLE_WRITE else 0)
    shift = 2 * pkey
    task.pkru = (task.pkru & ~((PKRU_AD_BIT | PKRU_WD_BIT) << shift)) | (bits << shift)


def sys_pkey_alloc(task, flags: int, init_val: int) -> int:
    if flags or init_val & ~PKEY_ACCESS_MASK:
        raise kerr(EINVAL)
    task.mm.mmap_lock("pkey_alloc")
    pkey = mm_pkey_alloc(task)
    if pkey == -1:
        raise kerr(ENOSPC)
    try:
        arch_set_user_pkey_access(task, pkey, init_val)
    except OSError:
        # mm_pkey_free() refuses a key it does not consider allocated: without PKU
        # key 0 is the (zeroed) execute-only key, so it stays set and the next
        # pkey_alloc finds the map full (ENOSPC) [obs].
        try:
            mm_pkey_free(task, pkey)
        except OSError:
            pass
        raise
    return pkey


def mm_pkey_free(task, pkey: int) -> None:
    if not mm_pkey_is_allocated(task, pkey):
        raise kerr(EINVAL)
    task.mm.pkey_allocation_map &= ~(1 << pkey)


def sys_pkey_free(task, pkey: int) -> int:
    task.mm.mmap_lock("pkey_free")
    mm_pkey_free(task, pkey)
    return 0


def execute_only_pkey(task) -> int:
    """__execute_only_pkey(): the mm's execute-only key, allocated on first use and
    access-disabled in PKRU; 0 without PKU, -1 when none can be had."""
    mm = task.mm
    if not task.kernel.pkeys:
        return 0
    pkey = mm.execute_only_pkey
    fresh = pkey == -1
    if fresh:
        pkey = mm_pkey_alloc(task)
        if pkey < 0:
            return -1
    elif task.pkru & (PKRU_AD_BIT << (2 * pkey)):
        return pkey          # PKRU already denies reads: nothing to set
    arch_set_user_pkey_access(task, pkey, PKEY_DISABLE_ACCESS)
    if fresh:
        mm.execute_only_pkey = pkey
    return pkey
