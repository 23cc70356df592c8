"""Calling driver code: the core's side of vm_operations_struct (include/linux/mm.h)
and file_operations (include/linux/fs.h), each member held to its contract.

Linux trusts a driver's hooks. The model does not: every call of a driver's member
goes through `_run()`, which

* models the mmap_lock. Linux calls the VMA hooks with the mmap_lock held (for writing
  in mmap, munmap, mprotect, mremap and fork, for reading in a fault and in
  /proc/PID/maps), so a hook that calls back into mm deadlocks. Here the hook runs
  under a `HookFrame`, and every mm entry point (`MmStruct.mmap_lock()`) refuses to
  run under it with HookContractError; the call is recorded, so a hook that catches
  the error is caught all the same. f_op->unlocked_ioctl and f_op->release run
  without the lock (an ioctl is a syscall of its own; Linux runs __fput() from task
  work, after the syscall that dropped the last reference) and may call into mm;
* snapshots what the hook can reach (`MmSnapshot`): every VMA of the mm (the tree and
  each VMA's fields), the counters (total_vm, data_vm, exec_vm, stack_vm, locked_vm,
  map_count, the mm's and the kernel's commit charge), the layout and page-table
  objects, and the reference count of every file mapped; after the call it compares
  by identity, and integers by exact type and value, so an object whose `__eq__`
  always answers True, a float or an int subclass in place of an int is a change;
* holds the result to the member's documented result (returns nothing, an int, a
  page frame, a name; refuses with an OSError whose errno is 1..4095, or with vmsim.Fault).

On a violation (a change, a re-entry, any other result or exception) the snapshot is
restored, so the address space is as it was before the hook ran; the caller then takes
the kernel's error path for that hook's failure (or, for a hook that cannot fail,
finishes its work) and HookContractError reaches the caller of the syscall.
KeyboardInterrupt and SystemExit are not the driver's to decide: the snapshot is
restored, the caller cleans up the same way, and they propagate.

The kernel's own operations (generic_file_vm_ops, shmem, hugetlbfs, /dev/zero, the
special mappings) are part of the core, not drivers, and are called directly: a VMA
without a driver pays nothing. Cost of a driver hook call: O(VMAs of the mm).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from itertools import chain
from typing import Any

from ..errors import Fault, HookContractError, kerr
from ..uapi import BUS_ADRERR, PAGE_SHIFT, PAGE_SIZE, SEGV_MAPERR, SIGBUS, SIGSEGV, U64
from .flags import (
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_GROWSDOWN,
    VM_MAY_FLAGS,
    VM_MAYSHARE,
    VM_PFNMAP,
    VM_PKEY_MASK,
    VM_SEALED,
    VM_SHARED,
)
from .mm_struct import HookFrame, MmStruct
from .page_alloc import Page, is_frame
from .vma import Vma, VmOperations

#: include/linux/err.h: the largest errno a hook may return
MAX_ERRNO = 4095
#: the modules that define the kernel's own vm_operations and file_operations
KERNEL_OPS_MODULES = frozenset({"vmsim.mm.fault", "vmsim.fs.vfs", "vmsim.fs.procmaps",
                                "vmsim.fs.binfmt_elf", "vmsim.ipc.shm"})
#: flags ->mmap may neither add nor remove: they decide access, sharing, accounting,
#: stack growth, sealing and the pkey, all settled by do_mmap() before the call
MMAP_FIXED_FLAGS = VM_ACCESS_FLAGS | VM_SHARED | VM_MAYSHARE | VM_ACCOUNT | VM_GROWSDOWN | \
    VM_SEALED | VM_PKEY_MASK

VMA_FIELDS = ("mm", "start", "end", "flags", "pgoff", "file", "anon_vma", "avc", "vm_ops",
              "private_data")
MM_FIELDS = ("tree", "kernel", "owner", "total_vm", "data_vm", "exec_vm", "stack_vm",
             "locked_vm", "committed", "def_flags", "topdown", "mmap_base",
             "mmap_legacy_base", "start_brk", "brk", "start_stack", "has_mdwe",
             "mdwe_no_inherit", "merge_any", "pkey_allocation_map", "execute_only_pkey",
             "anon_pages", "file_ptes", "guards", "pfn_ptes", "pmd_tables", "exit_notifiers")
_vma_fields = operator.attrgetter(*VMA_FIELDS)
_file_field = operator.itemgetter(VMA_FIELDS.index("file"))
_mm_fields = operator.attrgetter(*MM_FIELDS)
#: the fields of a new VMA that f_op->mmap may set (vm_ops, vm_private_data, vm_flags)
MMAP_SETS = frozenset({"flags", "vm_ops", "private_data"})


def is_kernel_ops(ops: object) -> bool:
    """The kernel's own vm_operations or file_operations, called without checks."""
    return type(ops).__module__ in KERNEL_OPS_MODULES


def _same(old: object, new: object) -> bool:
    """Unchanged: the same object, or an int of exactly type int and the same value."""
    return old is new or (type(old) is int and type(new) is int and old == new)


def _first_change(names: tuple[str, ...], old: tuple, new: tuple,
                  skip: frozenset[str] = frozenset()) -> str | None:
    """The first of `names` whose value changed (skipping `skip`), or None."""
    if all(map(operator.is_, old, new)):
        return None
    for name, a, b in zip(names, old, new, strict=True):
        if name not in skip and not _same(a, b):
            return name
    return None


class MmSnapshot:
    """Everything of one mm that a hook can reach, to compare and restore.

    vmas: the VMAs in the tree (in address order), then `extra` ones outside it (a new
    VMA being set up, a detached one being closed); fields: each one's VMA_FIELDS.
    """

    __slots__ = ("mm", "mm_fields", "committed", "tree_parts", "starts", "in_tree", "vmas",
                 "fields", "refs")

    def __init__(self, mm: MmStruct, extra: tuple[Vma, ...] = (), files: tuple = ()):
        tree = mm.tree
        self.mm = mm
        self.mm_fields = _mm_fields(mm)
        self.committed = mm.kernel.committed
        self.tree_parts = (tree.starts, tree.by_start)
        self.starts = list(tree.starts)
        self.vmas = list(map(tree.by_start.__getitem__, self.starts))
        self.in_tree = len(self.vmas)
        self.vmas += extra
        self.fields = list(map(_vma_fields, self.vmas))
        mapped = dict.fromkeys(chain(files, map(_file_field, self.fields)))
        mapped.pop(None, None)
        self.refs = [(f, f.refs) for f in mapped]

    def change(self, driver_vma: Vma | None = None) -> str | None:
        """What the hook changed, or None. `driver_vma` is the VMA f_op->mmap sets up:
        its MMAP_SETS fields are checked by the caller instead. O(n)."""
        mm = self.mm
        name = _first_change(MM_FIELDS, self.mm_fields, _mm_fields(mm))
        if name is not None:
            return f"mm.{name}"
        if not _same(self.committed, mm.kernel.committed):
            return "the kernel's commit charge"
        tree = mm.tree
        starts, by_start = self.tree_parts
        if tree.starts is not starts or tree.by_start is not by_start or \
                len(by_start) != self.in_tree or len(starts) != self.in_tree or \
                not all(map(operator.is_, self.starts, starts)) or \
                not all(map(operator.is_, map(by_start.get, self.starts), self.vmas)):
            return "the VMA tree"
        old, new = self.fields, list(map(_vma_fields, self.vmas))
        if not all(map(operator.is_, chain.from_iterable(old), chain.from_iterable(new))):
            for vma, before, after in zip(self.vmas, old, new, strict=True):
                skip = MMAP_SETS if vma is driver_vma else frozenset()
                name = _first_change(VMA_FIELDS, before, after, skip)
                if name is not None:
                    return f"the {name} of the VMA {before[1]:#x}-{before[2]:#x}"
        for file, refs in self.refs:
            if not _same(refs, file.refs):
                return f"the reference count of {file.path}"
        return None

    def restore(self) -> None:
        """Put back every field, the tree and the references. O(n log n)."""
        mm = self.mm
        for name, value in zip(MM_FIELDS, self.mm_fields, strict=True):
            setattr(mm, name, value)
        mm.kernel.committed = self.committed
        tree = mm.tree
        tree.starts, tree.by_start = self.tree_parts
        tree.starts.clear()
        tree.by_start.clear()
        for vma, fields in zip(self.vmas, self.fields, strict=True):
            for name, value in zip(VMA_FIELDS, fields, strict=True):
                setattr(vma, name, value)
        for vma in self.vmas[:self.in_tree]:
            tree.insert(vma)
        for file, refs in self.refs:
            file.refs = refs


def _run(mm: MmStruct, what: str, hook: Callable[..., Any], args: tuple, *,
         locked: bool = True, extra: tuple[Vma, ...] = (), files: tuple = (),
         driver_vma: Vma | None = None) -> tuple[Any, Exception | None]:
    """Call a driver's hook(*args) in `mm` and return (its result, the exception it
    raised). A re-entry under the lock, or a change to what the snapshot holds,
    restores the snapshot and raises HookContractError; KeyboardInterrupt and
    SystemExit propagate after the restore. A hook that runs unlocked and called
    into mm changed the mm legitimately: its changes are not compared."""
    snapshot = MmSnapshot(mm, extra, files)
    outer = mm.hook
    frame = mm.hook = HookFrame(what, locked or (outer is not None and outer.locked))
    result: Any = None
    raised: BaseException | None = None
    try:
        result = hook(*args)
    except BaseException as exc:        # a driver may raise anything
        raised = exc
    finally:
        mm.hook = outer
    problem = None
    if frame.entered is not None and frame.locked:
        problem = f"called {frame.entered}() with the mmap_lock held (Linux would deadlock)"
    elif frame.entered is None:
        change = snapshot.change(driver_vma)
        if change is not None:
            problem = f"changed {change}"
    if problem is not None:
        snapshot.restore()
    if raised is not None and not isinstance(raised, Exception):
        raise raised
    if problem is not None:
        raise HookContractError(f"{what} {problem}: the core put it back") from raised
    return result, raised


def _broken(what: str, raised: BaseException | None, result: object = None) -> HookContractError:
    """The error for a result or an exception the member does not document."""
    if raised is not None:
        err = HookContractError(f"{what} raised {type(raised).__name__} ({_message(raised)}), "
                                "which is not a result it documents")
        err.__cause__ = raised
        return err
    return HookContractError(f"{what} returned a {type(result).__name__}, which is not "
                             "a result it documents")


def _message(exc: BaseException) -> str:
    """str(exc), at most 200 characters, if the driver's exception can say it."""
    try:
        text = str(exc)
    except Exception:       # a driver's __str__ is foreign code too
        return "unprintable"
    return text if type(text) is str and len(text) <= 200 else "..."


def _refusal(raised: Exception) -> OSError | None:
    """A documented refusal: an OSError whose errno is an int in 1..MAX_ERRNO. A fresh
    OSError with that errno, or None."""
    if not isinstance(raised, OSError):
        return None
    code = raised.errno
    if type(code) is int and 0 < code <= MAX_ERRNO:
        return kerr(code)
    return None


def _returns_nothing(what: str, result: object, raised: Exception | None,
                     refusable: bool) -> None:
    """The contract of a member that returns nothing (and, if refusable, may refuse)."""
    if raised is None and result is None:
        return
    refusal = _refusal(raised) if refusable and raised is not None else None
    if refusal is not None:
        raise refusal from None
    raise _broken(what, raised, result)


# --- vm_operations_struct -------------------------------------------------------------

def vm_open(vma: Vma, parent: MmStruct | None = None) -> None:
    """vm_ops->open(vma): `vma` is new (a split half, a fork copy, an mremap copy) and not
    yet in the tree. Returns nothing and cannot fail. At fork the parent's mm, which
    dup_mmap() holds, is snapshotted too."""
    ops = vma.vm_ops
    if ops is None or ops.open is None:
        return
    if is_kernel_ops(ops):
        ops.open(vma)
        return
    parent_snapshot = MmSnapshot(parent) if parent is not None else None
    held = parent.hook if parent is not None else None
    try:
        result, raised = _run(vma.mm, "vm_ops->open", ops.open, (vma,), extra=(vma,))
    finally:
        change = parent_snapshot.change() if parent_snapshot is not None else None
        if held is not None and held.entered is not None:
            change = f"mm: called {held.entered}() with the mmap_lock held"
        if parent_snapshot is not None and change is not None:
            parent_snapshot.restore()
    if change is not None:
        raise HookContractError(f"vm_ops->open changed the parent's {change}: the core "
                                "put it back") from raised
    _returns_nothing("vm_ops->open", result, raised, refusable=False)


def vm_close(vma: Vma) -> None:
    """vm_ops->close(vma): `vma` is out of the tree, being removed. Returns nothing and
    cannot fail."""
    ops = vma.vm_ops
    if ops is None or ops.close is None:
        return
    if is_kernel_ops(ops):
        ops.close(vma)
        return
    result, raised = _run(vma.mm, "vm_ops->close", ops.close, (vma,), extra=(vma,))
    _returns_nothing("vm_ops->close", result, raised, refusable=False)


def vm_may_split(vma: Vma, addr: int) -> None:
    """vm_ops->may_split(vma, addr): returns nothing, or refuses (OSError)."""
    ops = vma.vm_ops
    if ops is None or ops.may_split is None:
        return
    if is_kernel_ops(ops):
        ops.may_split(vma, addr)
        return
    result, raised = _run(vma.mm, "vm_ops->may_split", ops.may_split, (vma, addr))
    _returns_nothing("vm_ops->may_split", result, raised, refusable=True)


def vm_mremap(vma: Vma) -> None:
    """vm_ops->mremap(new_vma): returns nothing, or refuses (OSError)."""
    ops = vma.vm_ops
    if ops is None or ops.mremap is None:
        return
    if is_kernel_ops(ops):
        ops.mremap(vma)
        return
    result, raised = _run(vma.mm, "vm_ops->mremap", ops.mremap, (vma,))
    _returns_nothing("vm_ops->mremap", result, raised, refusable=True)


def vm_mprotect(vma: Vma, start: int, end: int, newflags: int) -> None:
    """vm_ops->mprotect(vma, start, end, newflags): a pure check; returns nothing, or
    refuses (OSError)."""
    ops = vma.vm_ops
    assert ops is not None and ops.mprotect is not None      # the caller found it
    if is_kernel_ops(ops):
        ops.mprotect(vma, start, end, newflags)
        return
    result, raised = _run(vma.mm, "vm_ops->mprotect", ops.mprotect, (vma, start, end, newflags))
    _returns_nothing("vm_ops->mprotect", result, raised, refusable=True)


def vm_fault(vma: Vma, addr: int, write: bool) -> Page | None:
    """vm_ops->fault(vma, addr, write): the page (a frame of mm/page_alloc.py:
    is_frame()), or in a VM_PFNMAP VMA None with a PFN mapped at addr's page; refuses
    with vmsim.Fault (SIGBUS, or SIGSEGV), which the core raises at `addr`. A broken
    result leaves no PFN behind."""
    ops = vma.vm_ops
    assert ops is not None and ops.fault is not None        # the caller found it
    if is_kernel_ops(ops):
        return ops.fault(vma, addr, write)
    mm, vpn = vma.mm, addr >> PAGE_SHIFT
    pfnmap = vma.flags & VM_PFNMAP
    had_pfn = vpn in mm.pfn_ptes
    result, raised = _run(mm, "vm_ops->fault", ops.fault, (vma, addr, write))
    if raised is None and (
            (pfnmap and result is None and vpn in mm.pfn_ptes) or
            (not pfnmap and is_frame(result))):
        return result
    if not had_pfn:
        mm.pfn_ptes.pop(vpn, None)
    if isinstance(raised, Fault) and type(raised.signal) is str and \
            raised.signal in (SIGBUS, SIGSEGV):
        raise Fault(raised.signal, BUS_ADRERR if raised.signal == SIGBUS else SEGV_MAPERR,
                    addr) from None
    if raised is None and pfnmap and result is None:
        raise HookContractError(
            "vm_ops->fault of a VM_PFNMAP VMA must map a PFN (vmf_insert_pfn) or fail")
    raise _broken("vm_ops->fault", raised, result)


def vm_access(vma: Vma, addr: int, length: int, write: bool, data: bytes) -> bytes | int:
    """vm_ops->access(vma, addr, length, write, data): for a read the bytes read (at
    most length), for a write the count written (0..length); refuses (OSError)."""
    ops = vma.vm_ops
    assert ops is not None and ops.access is not None       # the caller found it
    if is_kernel_ops(ops):
        return ops.access(vma, addr, length, write, data)
    result, raised = _run(vma.mm, "vm_ops->access", ops.access, (vma, addr, length, write, data))
    if raised is None:
        if write and type(result) is int and 0 <= result <= length:
            return result
        if not write and type(result) is bytes and len(result) <= length:
            return result
    refusal = _refusal(raised) if raised is not None else None
    if refusal is not None:
        raise refusal from None
    raise _broken("vm_ops->access", raised, result)


def vm_name(vma: Vma) -> str | None:
    """vm_ops->name(vma): the name /proc/PID/maps prints (a str), or None."""
    ops = vma.vm_ops
    assert ops is not None and ops.name is not None         # the caller found it
    if is_kernel_ops(ops):
        return ops.name(vma)
    result, raised = _run(vma.mm, "vm_ops->name", ops.name, (vma,))
    if raised is None and (result is None or type(result) is str):
        return result
    raise _broken("vm_ops->name", raised, result)


def vm_pagesize(vma: Vma) -> int:
    """vm_ops->pagesize(vma): a power of two, at least PAGE_SIZE (PAGE_SIZE if absent)."""
    ops = vma.vm_ops
    if ops is None or ops.pagesize is None:
        return PAGE_SIZE
    if is_kernel_ops(ops):
        return ops.pagesize(vma)
    result, raised = _run(vma.mm, "vm_ops->pagesize", ops.pagesize, (vma,))
    if raised is None and type(result) is int and result >= PAGE_SIZE and \
            not result & (result - 1):
        return result
    raise _broken("vm_ops->pagesize", raised, result)


# --- file_operations -------------------------------------------------------------------

def f_mmap(file: Any, vma: Vma) -> None:
    """f_op->mmap(file, vma): `vma` is new and not in the tree. May set vm_ops (a
    VmOperations or None), private_data and flags (not MMAP_FIXED_FLAGS, and no VM_MAY*
    bit it lacked); returns nothing, or refuses (OSError)."""
    mmap = file.f_op.mmap
    if is_kernel_ops(file.f_op):
        mmap(file, vma)
        return
    flags, vm_ops, private_data = vma.flags, vma.vm_ops, vma.private_data
    result, raised = _run(vma.mm, "f_op->mmap", mmap, (file, vma), extra=(vma,),
                          files=(file,), driver_vma=vma)
    problem = _mmap_settings(flags, vma)
    if problem is None:
        _returns_nothing("f_op->mmap", result, raised, refusable=True)
        return
    vma.flags, vma.vm_ops, vma.private_data = flags, vm_ops, private_data
    if raised is not None and not isinstance(raised, Exception):
        raise raised
    raise HookContractError(f"f_op->mmap {problem}: the core put it back") from raised


def _mmap_settings(flags: int, vma: Vma) -> str | None:
    """What f_op->mmap set that it may not, or None."""
    new = vma.flags
    if type(new) is not int or not 0 <= new <= U64:
        return f"set the VMA's flags to a {type(new).__name__}"
    if (new ^ flags) & MMAP_FIXED_FLAGS or new & ~flags & VM_MAY_FLAGS:
        return f"changed flags {new ^ flags:#x} that do_mmap() settled"
    if vma.vm_ops is not None and not isinstance(vma.vm_ops, VmOperations):
        return f"set vm_ops to a {type(vma.vm_ops).__name__}"
    return None


def f_get_unmapped_area(task: Any, file: Any, addr: int, length: int, pgoff: int,
                        flags: int) -> int:
    """f_op->get_unmapped_area(task, file, addr, length, pgoff, flags): an address (an
    int in 0..2^64-1; the core then checks it as any), or a refusal (OSError)."""
    fops = file.f_op
    if is_kernel_ops(fops):
        return fops.get_unmapped_area(task, file, addr, length, pgoff, flags)
    result, raised = _run(task.mm, "f_op->get_unmapped_area", fops.get_unmapped_area,
                          (task, file, addr, length, pgoff, flags), files=(file,))
    if raised is None and type(result) is int and 0 <= result <= U64:
        return result
    refusal = _refusal(raised) if raised is not None else None
    if refusal is not None:
        raise refusal from None
    raise _broken("f_op->get_unmapped_area", raised, result)


def f_release(file: Any, mm: MmStruct | None) -> None:
    """f_op->release(file) (__fput()): the last reference went. Runs without the
    mmap_lock; `mm` is the address space of the operation that dropped the reference
    (None: a file table), snapshotted unless the hook calls into it. Returns nothing
    and cannot fail."""
    release = file.f_op.release
    if release is None:
        return
    if is_kernel_ops(file.f_op):
        release(file)
        return
    if mm is None:
        try:
            result = release(file)
        except Exception as exc:
            raise _broken("f_op->release", exc) from exc
        raised = None
    else:
        result, raised = _run(mm, "f_op->release", release, (file,), locked=False, files=(file,))
    _returns_nothing("f_op->release", result, raised, refusable=False)


def f_unlocked_ioctl(task: Any, file: Any, cmd: int, arg: int) -> int:
    """f_op->unlocked_ioctl(task, file, cmd, arg): an int, or a refusal (OSError). Runs
    without the mmap_lock and may call into mm."""
    ioctl = file.f_op.unlocked_ioctl
    if is_kernel_ops(file.f_op):
        return ioctl(task, file, cmd, arg)
    result, raised = _run(task.mm, "f_op->unlocked_ioctl", ioctl, (task, file, cmd, arg),
                          locked=False, files=(file,))
    if raised is None and type(result) is int:
        return result
    refusal = _refusal(raised) if raised is not None else None
    if refusal is not None:
        raise refusal from None
    raise _broken("f_op->unlocked_ioctl", raised, result)
