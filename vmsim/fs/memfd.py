"""memfd_create(2) and file sealing: mm/memfd.c (memfd_create(), memfd_add_seals(),
memfd_get_seals(), memfd_fcntl()), kept beside the shmem and hugetlbfs file types
(vfs.py) whose files it makes.

A memfd is an unlinked shmem file (or hugetlbfs file, MFD_HUGETLB) on the kernel's
internal mount, named "memfd:NAME": maps shows "/memfd:NAME (deleted)" [obs]. Seals are
inode state (`Inode.seals`: shmem_inode_info->seals, the hugetlbfs inode's seals);
every shmem and hugetlbfs inode starts with F_SEAL_SEAL, and only memfd_create() can
leave it off (MFD_ALLOW_SEALING, MFD_NOEXEC_SEAL). They take effect where Linux checks
them: mm/mmap.py memfd_check_seals_mmap() (a write-sealed file is never mapped shared
and writable again), vfs.py shmem_setattr_seals() (ftruncate) and
shmem_write_begin_seals() (pwrite).

A memfd's mode is 0777, or 0666 under MFD_NOEXEC_SEAL [obs]: with exec bits, adding
F_SEAL_EXEC implies the write seals ("SEAL_EXEC implys SEAL_WRITE, making W^X from the
start").
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import EACCES, EBUSY, EFAULT, EINVAL, ENODEV, EPERM, kerr
from ..mm.flags import VM_MAYWRITE, VM_SHARED
from ..mm.mm_struct import MmStruct
from ..mm.mmap import HUGE_PAGE_SHIFTS
from ..uapi import (
    F_ADD_SEALS,
    F_GET_SEALS,
    F_SEAL_EXEC,
    F_SEAL_FUTURE_WRITE,
    F_SEAL_GROW,
    F_SEAL_SEAL,
    F_SEAL_SHRINK,
    F_SEAL_WRITE,
    MFD_ALLOW_SEALING,
    MFD_CLOEXEC,
    MFD_EXEC,
    MFD_HUGE_MASK,
    MFD_HUGE_SHIFT,
    MFD_HUGETLB,
    MFD_NOEXEC_SEAL,
)
from .file import FMODE_WRITE, File, Inode
from .vfs import Vfs

MFD_NAME_PREFIX = "memfd:"
#: NAME_MAX less the prefix: the longest name, in bytes
MFD_NAME_MAX_LEN = 255 - len(MFD_NAME_PREFIX)
MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC
F_ALL_SEALS = (F_SEAL_SEAL | F_SEAL_EXEC | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
               | F_SEAL_FUTURE_WRITE)
#: vm.memfd_noexec (include/linux/pid_namespace.h MEMFD_NOEXEC_SCOPE_*): 0, the default
#: and this machine's [obs], lets memfds be executable; from 1 on, MFD_NOEXEC_SEAL is
#: the default, from 2 on it is required
MEMFD_NOEXEC_SCOPE_NOEXEC_SEAL = 1
MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED = 2


def sanitize_flags(flags: int, noexec_scope: int) -> int:
    """mm/memfd.c sanitize_flags() and check_sysctl_memfd_noexec(): EINVAL for an
    unknown flag (a huge page size only with MFD_HUGETLB) or MFD_EXEC|MFD_NOEXEC_SEAL;
    neither given, the vm.memfd_noexec scope chooses (MFD_NOEXEC_SEAL from 1 on, else
    MFD_EXEC); from 2 on, anything but MFD_NOEXEC_SEAL is EACCES. Returns the flags."""
    allowed = MFD_ALL_FLAGS | (MFD_HUGE_MASK << MFD_HUGE_SHIFT if flags & MFD_HUGETLB else 0)
    if flags & ~allowed:
        raise kerr(EINVAL)
    if flags & MFD_EXEC and flags & MFD_NOEXEC_SEAL:
        raise kerr(EINVAL)
    if not flags & (MFD_EXEC | MFD_NOEXEC_SEAL):
        flags |= MFD_NOEXEC_SEAL if noexec_scope >= MEMFD_NOEXEC_SCOPE_NOEXEC_SEAL else MFD_EXEC
    if not flags & MFD_NOEXEC_SEAL and noexec_scope >= MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED:
        raise kerr(EACCES)
    return flags


def alloc_name(uname: str | None) -> str:
    """mm/memfd.c alloc_name(): "memfd:" and the user's name: EFAULT for a NULL name,
    EINVAL past MFD_NAME_MAX_LEN bytes."""
    if uname is None:
        raise kerr(EFAULT)
    if len(uname.encode("utf-8", "surrogateescape")) > MFD_NAME_MAX_LEN:
        raise kerr(EINVAL)
    return MFD_NAME_PREFIX + uname


def memfd_alloc_file(vfs: Vfs, name: str, flags: int) -> File:
    """mm/memfd.c memfd_alloc_file(): an unlinked shmem file of size 0, or with
    MFD_HUGETLB a hugetlbfs file of the page size the flags encode (the default 2 MiB;
    a size the CPU lacks is ENODEV), not charged (VM_NORESERVE), mode 0777; then
    MFD_NOEXEC_SEAL takes the exec bits away and gives F_SEAL_EXEC and no F_SEAL_SEAL,
    MFD_ALLOW_SEALING no F_SEAL_SEAL."""
    path = "/" + name
    if flags & MFD_HUGETLB:
        shift = (flags >> MFD_HUGE_SHIFT) & MFD_HUGE_MASK or HUGE_PAGE_SHIFTS[0]
        if shift not in HUGE_PAGE_SHIFTS:
            raise kerr(ENODEV)
        file = vfs.hugetlb_file(shift, 0, path)
    else:
        file = vfs.shmem_file(0, path)
    inode = file.inode
    inode.mode = 0o777
    if flags & MFD_NOEXEC_SEAL:
        inode.mode &= ~0o111
        inode.seals = (inode.seals & ~F_SEAL_SEAL) | F_SEAL_EXEC
    elif flags & MFD_ALLOW_SEALING:
        inode.seals &= ~F_SEAL_SEAL
    return file


def memfd_file_sealable(file: File) -> bool:
    """mm/memfd.c memfd_file_seals_ptr() != NULL: a shmem or hugetlbfs file."""
    return file.f_op.is_shmem or file.f_op.is_hugetlbfs


def memfd_fcntl(mms: Iterable[MmStruct], file: File, cmd: int, arg: int) -> int:
    """mm/memfd.c memfd_fcntl(): F_ADD_SEALS with the low 32 bits of arg (fs/fcntl.c
    do_fcntl() passes argi), F_GET_SEALS. `mms`: every address space of the Kernel."""
    if cmd == F_ADD_SEALS:
        memfd_add_seals(mms, file, arg & 0xFFFFFFFF)
        return 0
    if cmd == F_GET_SEALS:
        return memfd_get_seals(file)
    raise kerr(EINVAL)


def memfd_add_seals(mms: Iterable[MmStruct], file: File, seals: int) -> None:
    """mm/memfd.c memfd_add_seals(), 6.18.44 (with "memfd: deny writeable mappings when
    implying SEAL_WRITE"): EPERM unless the file is open for writing; EINVAL for an
    unknown seal or a file that has no seals; EPERM once F_SEAL_SEAL is set. F_SEAL_EXEC
    on a file with exec bits implies the shrink, grow and write seals; a new F_SEAL_WRITE
    is EBUSY while any VMA of any process maps the file shared and may write it
    (mapping_deny_writable(): i_mmap_writable). Seals are only ever added.
    `mms`: every address space of the Kernel. Cost: O(VMAs of all processes) for a new
    F_SEAL_WRITE, else O(1)."""
    if not file.f_mode & FMODE_WRITE:
        raise kerr(EPERM)
    if seals & ~F_ALL_SEALS:
        raise kerr(EINVAL)
    if not memfd_file_sealable(file):
        raise kerr(EINVAL)
    inode = file.inode
    if inode.seals & F_SEAL_SEAL:
        raise kerr(EPERM)
    if seals & F_SEAL_EXEC and inode.mode & 0o111:
        seals |= F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE
    if seals & F_SEAL_WRITE and not inode.seals & F_SEAL_WRITE and \
            mapping_writably_mapped(mms, inode):
        raise kerr(EBUSY)
    inode.seals |= seals


def memfd_get_seals(file: File) -> int:
    """mm/memfd.c memfd_get_seals(): the seals, EINVAL for a file that has none."""
    if not memfd_file_sealable(file):
        raise kerr(EINVAL)
    return file.inode.seals


def mapping_writably_mapped(mms: Iterable[MmStruct], inode: Inode) -> bool:
    """include/linux/fs.h mapping_writably_mapped(): a VMA of one of `mms` maps the inode
    shared with VM_MAYWRITE (vma_is_shared_maywrite(), what i_mmap_writable counts),
    even read-only for now. O(VMAs of all of them)."""
    for mm in mms:
        for vma in mm.tree:
            if vma.file is not None and vma.file.inode is inode and \
                    vma.flags & (VM_SHARED | VM_MAYWRITE) == VM_SHARED | VM_MAYWRITE:
                return True
    return False
