"""VMA flags (vm_flags_t) for x86_64 Linux 6.18, and the prot/flag translations.

Mirrors include/linux/mm.h (VM_*), include/linux/mman.h (calc_vm_prot_bits,
calc_vm_flag_bits) and fs/proc/task_mmu.c (show_smap_vma_flags mnemonics).
"""

from ..uapi import MAP_GROWSDOWN, MAP_LOCKED, MAP_STACK, MAP_SYNC, PROT_EXEC, PROT_READ, PROT_WRITE

VM_NONE = 0
VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYEXEC = 0x00000040
VM_MAYSHARE = 0x00000080
VM_GROWSDOWN = 0x00000100
VM_UFFD_MISSING = 0x00000200
VM_PFNMAP = 0x00000400
#: "gu": MADV_GUARD_INSTALL ran on this VMA. Sticky: it never blocks a merge and
#: the merged VMA keeps it (present in 6.18.44 [obs], docs/kernel-observations.md §4).
VM_MAYBE_GUARD = 0x00000800
VM_UFFD_WP = 0x00001000
VM_LOCKED = 0x00002000
VM_IO = 0x00004000
VM_SEQ_READ = 0x00008000
VM_RAND_READ = 0x00010000
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_LOCKONFAULT = 0x00080000
VM_ACCOUNT = 0x00100000
VM_NORESERVE = 0x00200000
VM_HUGETLB = 0x00400000
VM_SYNC = 0x00800000
VM_ARCH_1 = 0x01000000
VM_WIPEONFORK = 0x02000000
VM_DONTDUMP = 0x04000000
VM_SOFTDIRTY = 0            # CONFIG_MEM_SOFT_DIRTY is off on the target kernel
VM_MIXEDMAP = 0x10000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_MERGEABLE = 0x80000000
VM_PKEY_SHIFT = 32
VM_PKEY_BIT0 = 1 << 32
VM_PKEY_BIT1 = 1 << 33
VM_PKEY_BIT2 = 1 << 34
VM_PKEY_BIT3 = 1 << 35
VM_SHADOW_STACK = 1 << 37
VM_DROPPABLE = 1 << 40
VM_SEALED = 1 << 42         # 6.17+: bit 42 (bit 63 before)

VM_PAT = VM_ARCH_1
VM_STACK = VM_GROWSDOWN
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_MAY_FLAGS = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VM_PKEY_MASK = VM_PKEY_BIT0 | VM_PKEY_BIT1 | VM_PKEY_BIT2 | VM_PKEY_BIT3
#: x86: VM_FLAGS_CLEAR = ARCH_VM_PKEY_FLAGS | VM_ARCH_CLEAR (empty)
VM_FLAGS_CLEAR = VM_PKEY_MASK
#: VMAs the merge code never touches (include/linux/mm.h VM_SPECIAL).
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP
#: flags OR-ed together when VMAs merge, and ignored when deciding whether they may
VM_STICKY = VM_SOFTDIRTY | VM_MAYBE_GUARD
VM_IGNORE_MERGE = VM_STICKY
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT
#: VM_DATA_DEFAULT_FLAGS on x86_64 (VM_DATA_FLAGS_TSK_EXEC without READ_IMPLIES_EXEC).
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VM_STACK_DEFAULT_FLAGS = VM_DATA_DEFAULT_FLAGS | VM_GROWSDOWN | VM_ACCOUNT

#: fs/proc/task_mmu.c show_smap_vma_flags(): one mnemonic per bit, printed in bit order.
MNEMONICS = tuple(sorted((
    (VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"),
    (VM_MAYREAD, "mr"), (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"), (VM_MAYSHARE, "ms"),
    (VM_GROWSDOWN, "gd"), (VM_UFFD_MISSING, "um"), (VM_PFNMAP, "pf"), (VM_MAYBE_GUARD, "gu"),
    (VM_UFFD_WP, "uw"), (VM_LOCKED, "lo"), (VM_IO, "io"), (VM_SEQ_READ, "sr"),
    (VM_RAND_READ, "rr"), (VM_DONTCOPY, "dc"), (VM_DONTEXPAND, "de"), (VM_LOCKONFAULT, "lf"),
    (VM_ACCOUNT, "ac"), (VM_NORESERVE, "nr"), (VM_HUGETLB, "ht"), (VM_SYNC, "sf"),
    (VM_ARCH_1, "ar"), (VM_WIPEONFORK, "wf"), (VM_DONTDUMP, "dd"), (VM_MIXEDMAP, "mm"),
    (VM_HUGEPAGE, "hg"), (VM_NOHUGEPAGE, "nh"), (VM_MERGEABLE, "mg"),
    (VM_SHADOW_STACK, "ss"), (VM_DROPPABLE, "dp"), (VM_SEALED, "sl"),
)))


def vmflags_mnemonics(flags: int) -> list[str]:
    """The smaps `VmFlags:` words for `flags`, in the kernel's order."""
    return [name for bit, name in MNEMONICS if flags & bit]


def calc_vm_prot_bits(prot: int, pkey: int) -> int:
    """include/linux/mman.h calc_vm_prot_bits() with the x86 pkey bits."""
    flags = 0
    if prot & PROT_READ:
        flags |= VM_READ
    if prot & PROT_WRITE:
        flags |= VM_WRITE
    if prot & PROT_EXEC:
        flags |= VM_EXEC
    return flags | (pkey << VM_PKEY_SHIFT)


def calc_vm_flag_bits(flags: int) -> int:
    """include/linux/mman.h calc_vm_flag_bits(): MAP_* to VM_* (MAP_STACK: 6.7+)."""
    vm = 0
    if flags & MAP_GROWSDOWN:
        vm |= VM_GROWSDOWN
    if flags & MAP_LOCKED:
        vm |= VM_LOCKED
    if flags & MAP_SYNC:
        vm |= VM_SYNC
    if flags & MAP_STACK:
        vm |= VM_NOHUGEPAGE
    return vm


def vma_pkey(flags: int) -> int:
    """arch/x86 vma_pkey(): the protection key held in the flags."""
    return (flags & VM_PKEY_MASK) >> VM_PKEY_SHIFT


def is_data_mapping(flags: int) -> bool:
    """mm/internal.h: private, writable, not stack."""
    return flags & (VM_WRITE | VM_SHARED | VM_STACK) == VM_WRITE


def is_exec_mapping(flags: int) -> bool:
    return flags & (VM_EXEC | VM_WRITE | VM_STACK) == VM_EXEC


def is_stack_mapping(flags: int) -> bool:
    return flags & VM_STACK == VM_STACK
