"""Why a replayed call was refused, in words (the `why:` lines of `vmsim replay`).

The SGX driver is asked first: an enclave's own reason (`Encl.refusal`, the checks of
sgx_encl_may_map() that both sgx_mmap() and the ->mprotect hook make), a MAP_PRIVATE
mapping of the device, the ioctl that failed. Then the mm rule behind the errno,
with the VMA or file that triggered it: the mm's own predicates where it exports
them (`page_align`, as `checked_range` aligns), and where it keeps a rule inline the
few mirrored here, each naming the kernel function it mirrors. Else a generic
sentence per (call, errno). A memory access that faulted is explained by the VMA the
fault handler found and the permission it checked (`explain_fault`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..drivers.sgx.encl import Encl
from ..fs.file import FMODE_WRITE
from ..mm.flags import VM_SEALED, calc_vm_prot_bits, vma_pkey
from ..mm.munmap import page_align
from ..mm.procfs import perms, vma_name
from ..process import Process
from ..uapi import (
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    PROT_EXEC,
    PROT_WRITE,
    U64,
)
from .format import SGX_IOCTL_NAMES, Record

#: the calls whose first two arguments are a range [addr, addr + PAGE_ALIGN(len))
RANGED = frozenset({"munmap", "mprotect", "pkey_mprotect", "madvise", "mseal", "mlock",
                    "mlock2", "munlock", "mremap"})

#: what an errno means when nothing more precise is known, per call (None: any call)
GENERIC = {
    ("munmap", "EINVAL"): "address not page aligned, length 0, or the range leaves "
                          "the user address space",
    ("mprotect", "ENOMEM"): "part of the range is not mapped (mprotect stops at the hole, "
                            "after changing what lies before it)",
    ("mprotect", "EACCES"): "a VMA lacks the VM_MAY* bit for the new protection (a file "
                            "opened without write access under MAP_SHARED, or a noexec "
                            "mount), or a driver's ->mprotect refused",
    ("mmap", "EACCES"): "the file's open mode or mount does not allow this protection",
    ("mmap", "EEXIST"): "MAP_FIXED_NOREPLACE and the range is already mapped",
    ("mmap", "ENODEV"): "the file cannot be memory mapped",
    ("mmap", "EBADF"): "fd is not open",
    ("mremap", "EFAULT"): "the old range is not one mapping",
    (None, "EPERM"): "the range is sealed (mseal) or the operation needs a privilege",
    (None, "ENOMEM"): "part of the range is not mapped, or a limit (max_map_count, "
                      "overcommit, RLIMIT) was hit",
    (None, "EINVAL"): "an argument is invalid (alignment, flags, length)",
}

#: what a failing SGX ioctl's errno says
_IOCTL_HINTS = {
    ("SGX_IOC_ENCLAVE_ADD_PAGES", "EACCES"):
        "the source page's VMA lacks VM_MAYEXEC (a noexec mount)",
    ("SGX_IOC_ENCLAVE_ADD_PAGES", "EINVAL"):
        "bad offset/length, SECINFO (W without R, reserved bits, TCS perms) or "
        "the enclave is already initialized",
    ("SGX_IOC_ENCLAVE_ADD_PAGES", "EEXIST"): "the page was already added",
    ("SGX_IOC_ENCLAVE_INIT", "EINVAL"): "SIGSTRUCT rejected (attributes)",
    ("SGX_IOC_ENCLAVE_CREATE", "EINVAL"): "SECS rejected (size, base, attributes)"
                                         " or the enclave already exists",
}


def explain(p: Process, rec: Record, err: str, fds: Mapping[int, int],
            tr: Callable[[int], int]) -> list[str]:
    """Why `rec` failed with `err` on p (the model process): SGX first, then the mm,
    then the generic sentence. `fds` maps the trace's fds to p's, `tr` the trace's
    addresses to p's. An explanation never breaks a replay: a failure to explain
    gives the generic sentence."""
    out: list[str] = []
    for explainer in (_explain_sgx, _explain_mm):
        try:
            out = explainer(p, rec, err, fds, tr)
        except Exception:
            out = []
        if out:
            return out
    generic = GENERIC.get((rec.call, err)) or GENERIC.get((None, err))
    return [generic] if generic else []


# --------------------------------------------------------------------------- the SGX driver

def _encl_of_fd(p: Process, fds: Mapping[int, int], fd: int) -> Encl | None:
    mfd = fds.get(fd)
    file = p.files.get(mfd) if mfd is not None else None
    encl = getattr(file, "private_data", None)
    return encl if isinstance(encl, Encl) else None


def _explain_sgx(p: Process, rec: Record, err: str, fds: Mapping[int, int],
                 tr: Callable[[int], int]) -> list[str]:
    if rec.call == "mmap":
        return _explain_sgx_mmap(p, rec, err, fds, tr)
    if rec.call in ("mprotect", "pkey_mprotect") and err == "EACCES":
        start = tr(rec.args[0])
        end = start + page_align(rec.args[1])
        vm_flags = calc_vm_prot_bits(rec.args[2], 0)
        for vma in p.mm.tree.intersecting(start, end):
            encl = vma.private_data
            if not isinstance(encl, Encl):
                continue
            why = encl.refusal(max(start, vma.start), min(end, vma.end), vm_flags, p.persona)
            if why is not None:
                return [f"SGX: {why} (sgx_vma_mprotect(), the ->mprotect hook)"]
        return []
    if rec.call == "ioctl":
        name = SGX_IOCTL_NAMES.get(rec.args[1], "ioctl")
        encl = _encl_of_fd(p, fds, rec.args[0])
        if encl is None:
            return []
        hint = _IOCTL_HINTS.get((name, err))
        state = ("initialized" if encl.initialized else "created" if encl.created
                 else "not created")
        return [f"{name}: {hint}; enclave {state}" if hint else f"{name}: enclave {state}"]
    return []


def _explain_sgx_mmap(p: Process, rec: Record, err: str, fds: Mapping[int, int],
                      tr: Callable[[int], int]) -> list[str]:
    addr, length, prot, flags, fd, _off = rec.args
    encl = _encl_of_fd(p, fds, fd)
    if encl is None:
        return []
    if err == "EINVAL" and flags & MAP_PRIVATE:
        return ["/dev/sgx_enclave is mapped MAP_SHARED only: sgx_get_unmapped_area() "
                "refuses MAP_PRIVATE with EINVAL"]
    if err != "EACCES":
        return []
    start = tr(addr) if addr else (rec.ret or 0)
    why = encl.refusal(start, start + page_align(length), calc_vm_prot_bits(prot, 0),
                       p.persona)
    return [f"SGX: {why} (sgx_encl_may_map() from sgx_mmap())"] if why is not None else []


# --------------------------------------------------------------------------- the mm

def vma_is_sealed(vma) -> bool:
    """mm/vma.h vma_is_sealed() (the mm tests VM_SEALED inline)."""
    return bool(vma.flags & VM_SEALED)


def first_unmapped(mm, start: int, end: int) -> int | None:
    """The first address of [start, end) no VMA maps, or None: where the walks of
    do_mprotect_pkey(), apply_vma_lock_flags() and mseal's range_contains_unmapped()
    (mm/mprotect.c, mm/mlock.c, mm/mseal.c) stop with ENOMEM."""
    cur = start
    for vma in mm.tree.intersecting(start, end):
        if vma.start > cur:
            return cur
        cur = vma.end
    return cur if cur < end else None


def _explain_mm(p: Process, rec: Record, err: str, fds: Mapping[int, int],
                tr: Callable[[int], int]) -> list[str]:
    """The mm rule behind an errno, with the VMA or file that triggered it."""
    if rec.call in RANGED:
        return _explain_range(p, rec, err, tr)
    if rec.call == "mmap":
        return _explain_mmap(p, rec, err, fds, tr)
    return []


def _explain_range(p: Process, rec: Record, err: str, tr: Callable[[int], int]) -> list[str]:
    start = tr(rec.args[0])
    end = start + page_align(rec.args[1])
    if err == "EINVAL" and page_align(start) != start & U64:    # not page aligned
        return [f"{start:#x} is not page aligned"]
    if err == "EINVAL" and not rec.args[1] and rec.call == "munmap":
        return ["the length is 0"]             # do_vmi_munmap(): a zero length
    if err == "ENOMEM":
        hole = first_unmapped(p.mm, start, end)
        if hole is not None:
            return [f"{hole:#x} is not mapped: the call stops at the first hole in "
                    f"[{start:#x}, {end:#x})" + (" (the part before it was already "
                                                  "changed)" if hole > start else "")]
    if err == "EPERM":
        for vma in p.mm.tree.intersecting(start, end):
            if vma_is_sealed(vma):
                return [f"[{vma.start:#x}, {vma.end:#x}) is sealed (mseal): it cannot be "
                        "unmapped, moved, reprotected or discarded"]
    return []


def _explain_mmap(p: Process, rec: Record, err: str, fds: Mapping[int, int],
                  tr: Callable[[int], int]) -> list[str]:
    addr, length, prot, flags, fd, _off = rec.args
    if err == "EEXIST":
        start = tr(addr)
        end = start + page_align(length)
        for v in p.vmas():
            if v.start < end and v.end > start:
                return [f"MAP_FIXED_NOREPLACE: [{start:#x}, {end:#x}) "
                        f"overlaps [{v.start:#x}, {v.end:#x}) {v.name or ''}".rstrip()]
    if err == "EACCES" and fd in fds:
        file = p.files.get(fds[fd])
        if file is not None:
            # do_mmap(): a shared writable mapping needs a file opened for writing,
            # and PROT_EXEC a mount without noexec (path_noexec())
            if flags & MAP_TYPE in (MAP_SHARED, MAP_SHARED_VALIDATE) and \
                    prot & PROT_WRITE and not file.f_mode & FMODE_WRITE:
                return [f"fd {fd} is not open for writing: MAP_SHARED with "
                        "PROT_WRITE needs it"]
            if prot & PROT_EXEC and getattr(file.inode, "noexec", False):
                return [f"fd {fd} is on a noexec mount: PROT_EXEC is refused"]
    return []


# --------------------------------------------------------------------------- faults

#: what an access of each kind needs of its VMA
_ACCESS = {"r": "reading", "w": "writing", "x": "executing"}


def _vma_text(vma) -> str:
    name = vma_name(vma)
    return f"[{vma.start:#x}, {vma.end:#x}) {perms(vma.flags)}" + (f" {name}" if name else "")


def explain_fault(p: Process, code: str, addr: int, kind: str) -> list[str]:
    """Why an access of `kind` ("r", "w", "x") at addr faulted with si_code `code`
    (SEGV_MAPERR, SEGV_ACCERR, SEGV_PKUERR, BUS_ADRERR) on p: the VMA the fault handler
    found, or the gap it fell in (mm/fault.py lock_mm_and_find_vma()), and the
    permission it checked (access_error()); empty for a code it does not explain."""
    mm = p.mm
    vma = mm.tree.find_vma(addr)
    inside = vma is not None and vma.start <= addr
    if code == "SEGV_MAPERR" and inside:
        return [f"{addr:#x} is in a guard region (MADV_GUARD_INSTALL) of {_vma_text(vma)}"]
    if code == "SEGV_MAPERR":
        prev = mm.tree.prev_of(addr)
        where = (f"between {_vma_text(prev)} and {_vma_text(vma)}" if prev and vma else
                 f"below the first VMA, {_vma_text(vma)}" if vma else
                 f"above the last VMA, {_vma_text(prev)}" if prev else "in an empty address space")
        return [f"{addr:#x} is not mapped: it lies {where}"]
    if not inside:
        return []
    if code == "SEGV_ACCERR":
        return [f"{_vma_text(vma)} does not allow {_ACCESS.get(kind, 'this access')}"]
    if code == "SEGV_PKUERR":
        pkey = vma_pkey(vma.flags)
        denied = "writes" if kind == "w" and not p.pkru & (1 << 2 * pkey) else "access"
        return [f"{_vma_text(vma)} has protection key {pkey}, and PKRU {p.pkru:#x} denies "
                f"{denied} to it"]
    if code == "BUS_ADRERR" and vma.file is not None:
        return [f"{addr:#x} in {_vma_text(vma)} lies past the end of the file it maps, or "
                "the file's ->fault refused it"]
    return []
