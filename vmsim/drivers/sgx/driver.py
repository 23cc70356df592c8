"""The SGX device files: arch/x86/kernel/cpu/sgx/driver.c: /dev/sgx_enclave's open,
release, mmap, get_unmapped_area and the ioctl entry.

`install(kernel, cpu)` sets up the EPC's allocator and reclaimer (main.py) and registers
/dev/sgx_enclave and /dev/sgx_provision (whose file operations, which
SGX_IOC_ENCLAVE_PROVISION checks for, are in ioctl.py) in the kernel's /dev, as
sgx_init() and sgx_drv_init() do at boot when the CPU has SGX1 and flexible launch
control.
"""

from __future__ import annotations

from ...arch.x86.sgx import cpu as arch
from ...errors import EBUSY, EINVAL, ENOTTY, kerr
from ...fs.file import File, FileOperations
from ...mm.flags import VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_PFNMAP
from ...mm.placement import mm_get_unmapped_area
from ...mm.vma import Vma
from ...uapi import MAP_FIXED, MAP_PRIVATE, MAP_TYPE
from .encl import SGX_VM_OPS, SGX_VM_OPS_V40, Encl
from .ioctl import IOCTLS, SgxProvisionFops
from .main import Epc


class SgxEnclaveFops(FileOperations):
    """sgx_encl_fops, over the EPC `epc`."""

    def __init__(self, epc: Epc):
        self.epc = epc

    def open(self, file: File) -> None:
        """sgx_open(): one enclave per open file."""
        file.private_data = Encl(self.epc)

    def release(self, file: File) -> None:
        """sgx_release(): drop every mm's reference, then the file's own."""
        encl = file.private_data
        for mm in list(encl.mm_list):
            encl.mm_release(mm)
        encl.put()

    def get_unmapped_area(self, task, file: File, addr: int, length: int, pgoff: int,
                          flags: int) -> int:
        """sgx_get_unmapped_area(): enclaves are MAP_SHARED; MAP_FIXED is taken as is."""
        if flags & MAP_TYPE == MAP_PRIVATE:
            raise kerr(EINVAL)
        if flags & MAP_FIXED:
            return addr
        return mm_get_unmapped_area(task, file, addr, length, pgoff, flags)

    def mmap(self, file: File, vma: Vma) -> None:
        """sgx_mmap(): the intent check, then a VM_PFNMAP|VM_IO mapping with sgx_vm_ops."""
        encl = file.private_data
        encl.may_map(vma.mm.owner, vma.start, vma.end, vma.flags)
        encl.mm_add(vma.mm)
        vma.vm_ops = SGX_VM_OPS_V40 if vma.mm.kernel.mprotect_hook == "v40" else SGX_VM_OPS
        vma.flags |= VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP | VM_IO
        vma.private_data = encl

    def unlocked_ioctl(self, task, file: File, cmd: int, arg: int) -> int:
        """sgx_ioctl(): the SGX_ENCL_IOCTL bit first (a busy enclave is EBUSY whatever
        the command), then the dispatch (an unknown command is -ENOIOCTLCMD, which the
        VFS turns into ENOTTY), then the bit is cleared. Then ksgxd runs, if the call
        woke it (main.py)."""
        encl = file.private_data
        if encl.busy:
            raise kerr(EBUSY)
        encl.busy = True
        try:
            handler = IOCTLS.get(cmd)
            if handler is None:
                raise kerr(ENOTTY)
            return handler(task, encl, arg)
        finally:
            encl.busy = False
            self.epc.ksgxd()


def install(kernel, cpu: arch.SgxCpu) -> None:
    """Register /dev/sgx_enclave and /dev/sgx_provision (needs SGX1 with FLC)."""
    if not cpu.flc:
        return
    kernel.sgx_cpu = cpu
    kernel.fs.add_device("/dev/sgx_enclave", SgxEnclaveFops(Epc(cpu)))
    kernel.fs.add_device("/dev/sgx_provision", SgxProvisionFops())
