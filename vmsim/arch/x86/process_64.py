"""arch_prctl(2): arch/x86/kernel/process_64.c do_arch_prctl_64() and the common
do_arch_prctl_common(), for the FS and GS bases (the thread's PtRegs fs_base and
gs_base, which the CPU loads as it runs the thread: glibc's TLS is FS-based) and
ARCH_GET_CPUID. The other codes (CPUID faulting, XSTATE permissions, shadow stacks,
LAM) answer EINVAL, as on a CPU without those features.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ...errors import EINVAL, EPERM, kerr
from ...mm.fault import copy_to_user
from ...task.thread import Thread

#: arch/x86/include/uapi/asm/prctl.h
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID = 0x1011
#: arch/x86/include/asm/page_64_types.h TASK_SIZE_MAX: a base must be below it
TASK_SIZE_MAX = (1 << 47) - 4096


def sys_arch_prctl(thread: Thread, args: Sequence[int]) -> int:
    """arch_prctl(2) (option, arg2): ARCH_SET_FS/GS (EPERM for a base at or past TASK_SIZE_MAX),
    ARCH_GET_FS/GS (the base stored at arg2: EFAULT), ARCH_GET_CPUID (1: CPUID does
    not fault); EINVAL for anything else."""
    option, arg2 = args[0] & 0xFFFFFFFF, args[1]
    regs = thread.regs
    if option in (ARCH_SET_FS, ARCH_SET_GS):
        if arg2 >= TASK_SIZE_MAX:
            raise kerr(EPERM)
        if option == ARCH_SET_FS:
            regs.fs_base = arg2
        else:
            regs.gs_base = arg2
        return 0
    if option in (ARCH_GET_FS, ARCH_GET_GS):
        base = regs.fs_base if option == ARCH_GET_FS else regs.gs_base
        copy_to_user(thread.process, arg2, struct.pack("<Q", base))
        return 0
    if option == ARCH_GET_CPUID:
        return 1
    raise kerr(EINVAL)
