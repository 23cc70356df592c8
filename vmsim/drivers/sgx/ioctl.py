"""The seven SGX ioctls: arch/x86/kernel/cpu/sgx/ioctl.c, checks in the driver's
order, `count`/`result` written back on success and on failure.

Each handler gets the calling task, the enclave and the user address of its argument,
which it reads and writes with copy_from_user/copy_to_user (EFAULT on a bad pointer).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

from ...arch.x86.sgx import cpu as arch
from ...arch.x86.sgx import paging
from ...arch.x86.sgx.defs import (
    SECINFO_SIZE,
    SECS_SIZE,
    SGX_ATTR_DEBUG,
    SGX_ATTR_PROVISIONKEY,
    SGX_ATTR_UNPRIV_MASK,
    SGX_PAGE_TYPE_REG,
    SGX_PAGE_TYPE_TCS,
    SGX_PAGE_TYPE_TRIM,
    SGX_SECINFO_PERMISSION_MASK,
    SGX_SECINFO_R,
    SGX_SECINFO_RESERVED_MASK,
    SGX_SECINFO_W,
    SIGSTRUCT_SIZE,
)
from ...errors import EACCES, EAGAIN, EBUSY, EFAULT, EINVAL, EIO, ENODEV, EPERM, kerr
from ...fs.file import FileOperations
from ...mm.fault import copy_from_user, copy_to_user, get_user_page
from ...mm.flags import VM_MAYEXEC, VM_READ, VM_WRITE
from ...uapi import PAGE_SHIFT, PAGE_SIZE
from .encl import Backing, Encl, EnclPage, secinfo_to_vm_prot
from .uapi import (
    ADD_PAGES,
    CREATE,
    INIT,
    MODIFY_TYPES,
    PROVISION,
    REMOVE_PAGES,
    RESTRICT_PERMISSIONS,
    SGX_IOC_ENCLAVE_ADD_PAGES,
    SGX_IOC_ENCLAVE_CREATE,
    SGX_IOC_ENCLAVE_INIT,
    SGX_IOC_ENCLAVE_MODIFY_TYPES,
    SGX_IOC_ENCLAVE_PROVISION,
    SGX_IOC_ENCLAVE_REMOVE_PAGES,
    SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
    SGX_PAGE_MEASURE,
)

U64 = (1 << 64) - 1
MAX_LFS_FILESIZE = (1 << 63) - 1


def _read(task, arg: int, fmt: struct.Struct) -> list[int]:
    return list(fmt.unpack(copy_from_user(task, arg, fmt.size)))


def validate_offset_length(encl: Encl, offset: int, length: int) -> None:
    """sgx_validate_offset_length()."""
    if offset % PAGE_SIZE or not length or length % PAGE_SIZE or offset + length > U64 or \
            offset + length - PAGE_SIZE >= encl.size:
        raise kerr(EINVAL)


# --- SGX_IOC_ENCLAVE_CREATE ----------------------------------------------------------

def ioc_create(task, encl: Encl, arg: int) -> int:
    """sgx_ioc_enclave_create()."""
    if encl.created:
        raise kerr(EINVAL)
    (src,) = _read(task, arg, CREATE)
    encl_create(encl, copy_from_user(task, src, SECS_SIZE))
    return 0


def encl_create(encl: Encl, secs: bytes) -> None:
    """sgx_encl_create(): the power-of-two check, the first VA page (sgx_encl_grow()),
    then the backing store and the SECS; a failure gives the VA page back
    (sgx_encl_shrink())."""
    size, base = struct.unpack_from("<QQ", secs)
    attributes = struct.unpack_from("<Q", secs, 48)[0]
    if not size or size & (size - 1):
        raise kerr(EINVAL)
    va_page = encl.grow(reclaim=True)
    try:
        encl.secs = ecreate_secs(encl, secs, size)
    except OSError:
        encl.backing = None
        encl.shrink(va_page)
        raise
    encl.base, encl.size, encl.attributes = base, size, attributes
    encl.attributes_mask = SGX_ATTR_UNPRIV_MASK    # a PROVISION before CREATE is lost
    encl.debug = bool(attributes & SGX_ATTR_DEBUG)
    encl.created = True


def ecreate_secs(encl: Encl, secs: bytes, size: int) -> arch.EpcPage:
    """sgx_encl_create()'s middle: the backing store (shmem_file_setup() of size +
    a page + 1/32 for PCMDs), the SECS's EPC page (with reclaim), ECREATE (any fault:
    EIO)."""
    if size + (size >> 5) + PAGE_SIZE > MAX_LFS_FILESIZE:
        raise kerr(EINVAL)
    encl.backing = Backing(size)
    epc = encl.epc.alloc_epc_page(reclaim=True)
    try:
        arch.ecreate(encl.cpu, secs, epc)
    except arch.EnclsFault:
        encl.free_epc_page(epc)
        raise kerr(EIO) from None
    return epc


# --- SGX_IOC_ENCLAVE_ADD_PAGES ---------------------------------------------------------

def validate_secinfo(data: bytes) -> int:
    """sgx_validate_secinfo(): returns the flags, or EINVAL."""
    flags = struct.unpack_from("<Q", data)[0]
    perm = flags & SGX_SECINFO_PERMISSION_MASK
    pt = (flags >> 8) & 0xFF
    if pt not in (SGX_PAGE_TYPE_REG, SGX_PAGE_TYPE_TCS):
        raise kerr(EINVAL)
    if perm & SGX_SECINFO_W and not perm & SGX_SECINFO_R:
        raise kerr(EINVAL)
    if pt == SGX_PAGE_TYPE_TCS and perm:
        raise kerr(EINVAL)
    if flags & SGX_SECINFO_RESERVED_MASK or any(data[8:SECINFO_SIZE]):
        raise kerr(EINVAL)
    return flags


def ioc_add_pages(task, encl: Encl, arg: int) -> int:
    if not encl.created or encl.initialized:
        raise kerr(EINVAL)
    add = _read(task, arg, ADD_PAGES)
    src, offset, length, secinfo_ptr, flags, _count = add
    if src % PAGE_SIZE:
        raise kerr(EINVAL)
    validate_offset_length(encl, offset, length)
    secinfo = validate_secinfo(copy_from_user(task, secinfo_ptr, SECINFO_SIZE))
    error = None
    done = 0
    while done < length:
        try:
            encl_add_page(task, encl, src + done, offset + done, secinfo, flags)
        except OSError as exc:
            error = exc
            break
        done += PAGE_SIZE
    add[5] = done
    copy_to_user(task, arg, ADD_PAGES.pack(*add))
    if error is not None:
        raise error
    return 0


def encl_add_page(task, encl: Encl, src: int, offset: int, secinfo: int, flags: int) -> None:
    """sgx_encl_add_page(): the EPC page and sgx_encl_grow()'s VA page (with reclaim),
    insert, EADD from the user page, EEXTEND if measured, then the page is
    reclaimable; a failure undoes them in reverse."""
    addr = encl.base + offset
    epc = encl.epc.alloc_epc_page(reclaim=True)
    try:
        va_page = encl.grow(reclaim=True)
    except OSError:
        encl.free_epc_page(epc)
        raise
    if addr >> PAGE_SHIFT in encl.pages:
        encl.shrink(va_page)
        encl.free_epc_page(epc)
        raise kerr(EBUSY)           # xa_insert() of a present index
    page = EnclPage(encl, addr, secinfo_to_vm_prot(secinfo), (secinfo >> 8) & 0xFF, epc)
    encl.insert_page(page)
    try:
        eadd_from_user(task, encl, epc, addr, src, secinfo, flags)
    except OSError:
        encl.erase_page(page)
        encl.shrink(va_page)
        encl.free_epc_page(epc)
        raise
    encl.secs_child_cnt += 1
    encl.epc.mark_page_reclaimable(epc, page)


def eadd_from_user(task, encl: Encl, epc: arch.EpcPage, addr: int, src: int, secinfo: int,
                   flags: int) -> None:
    """__sgx_encl_add_page() ("Deny noexec", get_user_pages(), EADD) and, if measured,
    __sgx_encl_extend() (16 EEXTENDs); an EADD/EEXTEND fault is EIO."""
    vma = task.mm.tree.find_vma(src)
    if vma is None:
        raise kerr(EFAULT)
    if not vma.flags & VM_MAYEXEC:
        raise kerr(EACCES)
    contents = get_user_page(task, src)
    try:
        arch.eadd(encl.secs, epc, addr, contents, secinfo)
        if flags & SGX_PAGE_MEASURE:
            for off in range(0, PAGE_SIZE, 256):
                arch.eextend(encl.secs, epc, off)
    except arch.EnclsFault:
        raise kerr(EIO) from None


# --- SGX_IOC_ENCLAVE_INIT --------------------------------------------------------------

def ioc_init(task, encl: Encl, arg: int) -> int:
    if not encl.created or encl.initialized:
        raise kerr(EINVAL)
    (sig_ptr,) = _read(task, arg, INIT)
    sig = copy_from_user(task, sig_ptr, SIGSTRUCT_SIZE)
    vendor = struct.unpack_from("<I", sig, 16)[0]
    if vendor not in (0x0000, 0x8086):
        raise kerr(EINVAL)
    cpu = encl.cpu
    miscselect, misc_mask = struct.unpack_from("<II", sig, 900)
    attributes, xfrm, attributes_mask, xfrm_mask = struct.unpack_from("<4Q", sig, 928)
    if encl.attributes & ~encl.attributes_mask:
        raise kerr(EACCES)
    if attributes & attributes_mask & cpu.attributes_reserved_mask or \
            miscselect & misc_mask & cpu.misc_reserved_mask or \
            xfrm & xfrm_mask & cpu.xfrm_reserved_mask:
        raise kerr(EINVAL)
    cpu.lepubkeyhash = hashlib.sha256(sig[128:512]).digest()   # sgx_update_lepubkeyhash()
    try:
        code = arch.einit(cpu, sig, encl.secs)  # never written out before EINIT
    except arch.EnclsFault:
        raise kerr(EIO) from None
    if code:
        raise kerr(EPERM)
    encl.initialized = True
    return 0


# --- SGX_IOC_ENCLAVE_PROVISION ---------------------------------------------------------

class SgxProvisionFops(FileOperations):
    """sgx_provision_fops (main.c): /dev/sgx_provision; only its identity matters."""


def ioc_provision(task, encl: Encl, arg: int) -> int:
    """sgx_ioc_enclave_provision() -> sgx_set_attribute(): the fd must be an open
    /dev/sgx_provision; it lets the enclave have ATTRIBUTE.PROVISIONKEY."""
    (fd,) = _read(task, arg, PROVISION)
    file = task.files.get(fd & 0xFFFFFFFF)          # fget() takes an unsigned int
    if file is None or not isinstance(file.f_op, SgxProvisionFops):
        raise kerr(EINVAL)
    encl.attributes_mask |= SGX_ATTR_PROVISIONKEY
    return 0


# --- SGX2 -------------------------------------------------------------------------------

def sgx2_ready(encl: Encl) -> None:
    if not encl.cpu.sgx2:
        raise kerr(ENODEV)
    if not encl.initialized:
        raise kerr(EINVAL)


def load_page(encl: Encl, addr: int) -> tuple[EnclPage, arch.EpcPage]:
    """sgx_reclaim_direct(), then sgx_encl_load_page(): the page at addr and its EPC
    page, loaded back if written out. EFAULT for a hole or a failed ELDU, EAGAIN when
    no EPC page is free for it."""
    encl.epc.reclaim_direct()
    page = encl.pages.get(addr >> PAGE_SHIFT)
    if page is None:
        raise kerr(EFAULT)
    try:
        encl.load_page(page)
    except OSError as exc:
        raise kerr(EAGAIN if exc.errno == EBUSY else EFAULT) from None
    assert page.epc is not None
    return page, page.epc


def enclave_etrack(encl: Encl) -> None:
    """sgx_enclave_etrack(): ETRACK, after an IPI and once more if it failed (EFAULT if
    it fails again), then an IPI to every CPU in the enclave."""
    assert encl.secs is not None and encl.secs.enclave is not None
    if paging.etrack(encl.secs):
        paging.ipi(encl.secs.enclave)
        if paging.etrack(encl.secs):
            raise kerr(EFAULT)
    paging.ipi(encl.secs.enclave)


def _sgx2_loop(task, encl: Encl, arg: int, fmt: struct.Struct, params: list[int],
               count_index: int, step: Callable[[int, list[int]], None]) -> int:
    """Run `step(page_addr, params)` over the range; write count (and result) back."""
    offset, length = params[0], params[1]
    error = None
    done = 0
    while done < length:
        try:
            step(encl.base + offset + done, params)
        except OSError as exc:
            error = exc
            break
        done += PAGE_SIZE
    params[count_index] = done
    copy_to_user(task, arg, fmt.pack(*params))
    if error is not None:
        raise error
    return 0


def ioc_restrict_permissions(task, encl: Encl, arg: int) -> int:
    sgx2_ready(encl)
    params = _read(task, arg, RESTRICT_PERMISSIONS)
    offset, length, perms, result, count = params
    validate_offset_length(encl, offset, length)
    if perms & ~SGX_SECINFO_PERMISSION_MASK:
        raise kerr(EINVAL)
    if perms & SGX_SECINFO_W and not perms & SGX_SECINFO_R:
        raise kerr(EINVAL)
    if result or count:
        raise kerr(EINVAL)

    def step(addr, params):
        page, epc = load_page(encl, addr)
        if page.type != SGX_PAGE_TYPE_REG:
            raise kerr(EINVAL)
        try:
            code = arch.emodpr(epc, perms)
        except arch.EnclsFault:
            raise kerr(EFAULT) from None
        if code:
            params[3] = code
            raise kerr(EFAULT)
        enclave_etrack(encl)
    return _sgx2_loop(task, encl, arg, RESTRICT_PERMISSIONS, params, 4, step)


def ioc_modify_types(task, encl: Encl, arg: int) -> int:
    sgx2_ready(encl)
    params = _read(task, arg, MODIFY_TYPES)
    offset, length, page_type, result, count = params
    validate_offset_length(encl, offset, length)
    if page_type & ~0xFF:
        raise kerr(EINVAL)
    if result or count:
        raise kerr(EINVAL)
    if page_type not in (SGX_PAGE_TYPE_TCS, SGX_PAGE_TYPE_TRIM):
        params[4] = 0
        copy_to_user(task, arg, MODIFY_TYPES.pack(*params))
        raise kerr(EINVAL)

    def step(addr, params):
        page, epc = load_page(encl, addr)
        if not (page.type == SGX_PAGE_TYPE_REG or
                (page.type == SGX_PAGE_TYPE_TCS and page_type == SGX_PAGE_TYPE_TRIM)):
            raise kerr(EINVAL)
        restore = page.vm_max_prot_bits
        if page.type == SGX_PAGE_TYPE_REG and page_type == SGX_PAGE_TYPE_TCS:
            if ~page.vm_max_prot_bits & (VM_READ | VM_WRITE):
                raise kerr(EPERM)
            encl.set_max_prot(page, VM_READ | VM_WRITE)
            encl.epc.unmark_page_reclaimable(epc)   # not reclaimed while unlocked
            encl.zap_ptes(addr)
            encl.epc.mark_page_reclaimable(epc, page)
        try:
            code = arch.emodt(epc, page_type)
        except arch.EnclsFault:
            encl.set_max_prot(page, restore)
            raise kerr(EFAULT) from None
        if code:
            encl.set_max_prot(page, restore)
            params[3] = code
            raise kerr(EFAULT)
        enclave_etrack(encl)
        page.type = page_type
    return _sgx2_loop(task, encl, arg, MODIFY_TYPES, params, 4, step)


def ioc_remove_pages(task, encl: Encl, arg: int) -> int:
    sgx2_ready(encl)
    params = _read(task, arg, REMOVE_PAGES)
    offset, length, count = params
    validate_offset_length(encl, offset, length)
    if count:
        raise kerr(EINVAL)

    def step(addr, params):
        page, epc = load_page(encl, addr)
        if page.type != SGX_PAGE_TYPE_TRIM:
            raise kerr(EPERM)
        # EMODPR is the probe: it faults (#PF) only once EACCEPT has run on the trim.
        try:
            arch.emodpr(epc, SGX_SECINFO_PERMISSION_MASK)
        except arch.EnclsFault as fault:
            if fault.trapnr != arch.PF:
                raise kerr(EPERM) from None
        else:
            raise kerr(EPERM)
        encl.epc.unmark_page_reclaimable(epc)
        encl.zap_ptes(addr)
        encl.free_epc_page(epc)
        encl.secs_child_cnt -= 1
        encl.erase_page(page)
        encl.shrink(None)
    return _sgx2_loop(task, encl, arg, REMOVE_PAGES, params, 2, step)


IOCTLS = {
    SGX_IOC_ENCLAVE_CREATE: ioc_create,
    SGX_IOC_ENCLAVE_ADD_PAGES: ioc_add_pages,
    SGX_IOC_ENCLAVE_INIT: ioc_init,
    SGX_IOC_ENCLAVE_PROVISION: ioc_provision,
    SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS: ioc_restrict_permissions,
    SGX_IOC_ENCLAVE_MODIFY_TYPES: ioc_modify_types,
    SGX_IOC_ENCLAVE_REMOVE_PAGES: ioc_remove_pages,
}
