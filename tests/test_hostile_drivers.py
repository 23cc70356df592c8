"""Hostile drivers: the core keeps its promises against any vm_operations_struct and
file_operations (issue #9).

A driver is foreign code. Each hook below is made to break its contract on purpose —
a wrong return type, an exception it does not document, a call back into mm while the
mmap_lock is held, a change to its own VMA, a neighbour or a counter (with objects
whose `__eq__` always answers True, a float, an int subclass) — and after every case:

* the call raised HookContractError (KeyboardInterrupt and SystemExit propagate);
* `p.mm.validate()` holds;
* the maps text, `k.committed` and the file's references are what they were before
  the call, or what the kernel's error path leaves (each trigger says which: `undo`);
* after `p.exit()` nothing is charged or referenced.

The kernel's error paths followed (Linux 6.18): a failing ->mmap leaves a MAP_FIXED
range unmapped (mm/vma.c __mmap_new_file_vma(): fput() and unmap_region()); a split
that fails leaves the VMA whole (__split_vma() unwinds); a failing ->mremap moves the
pages back and unmaps the new range (mm/mremap.c copy_vma_and_data()); a fork that
fails tears the child down (copy_process() -> mmput()); ->close and ->release cannot
fail, so the unmap or close that called them completes. f_op->unlocked_ioctl and
f_op->release run without the mmap_lock and may call into mm (Linux defers __fput()
to task work, after the syscall).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

import vmsim
from vmsim import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_RDONLY,
    O_RDWR,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    VM_EXEC,
    VM_IO,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_PFNMAP,
    VM_READ,
)
from vmsim.mm import hooks
from vmsim.mm.fault import access_remote_vm, vmf_insert_pfn
from vmsim.mm.page_alloc import Page, alloc_page, zero_page
from vmsim.mm.placement import mm_get_unmapped_area
from vmsim.mm.vma import Vma

P = PAGE_SIZE
W = 0x7E0000000000          # the window the tests map into
DEV = W + 2 * P             # the device mapping: pages 2..5
SPECIAL = W + 10 * P        # a file-less driver VMA (->name)
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED


# --- a driver that misbehaves where it is told to ------------------------------------

class HostileOps(vmsim.VmOperations):
    """Every member; `dev.hostile[name]` replaces the benign behaviour."""

    def __init__(self, dev: Device):
        self.dev = dev
        self.pages: dict[int, Page] = {}

    def _call(self, name, *args):
        misbehave = self.dev.hostile.get(name)
        if misbehave is not None:
            return misbehave(self.dev, name, args)
        return BENIGN[name](self.dev, args)

    def open(self, vma):
        return self._call("open", vma)

    def close(self, vma):
        return self._call("close", vma)

    def may_split(self, vma, addr):
        return self._call("may_split", vma, addr)

    def mremap(self, vma):
        return self._call("mremap", vma)

    def mprotect(self, vma, start, end, newflags):
        return self._call("mprotect", vma, start, end, newflags)

    def fault(self, vma, addr, write):
        return self._call("fault", vma, addr, write)

    def access(self, vma, addr, length, write, data):
        return self._call("access", vma, addr, length, write, data)

    def name(self, vma):
        return self._call("name", vma)

    def pagesize(self, vma):
        return self._call("pagesize", vma)


class Device(vmsim.FileOperations):
    """/dev/hostile: ->mmap installs HostileOps and adds `vm_flags`."""

    def __init__(self, vm_flags=0):
        self.vm_flags = vm_flags
        self.ops = HostileOps(self)
        self.hostile: dict[str, Callable] = {}
        self.released = 0
        self.env: Env | None = None

    def _call(self, name, *args):
        misbehave = self.hostile.get(name)
        if misbehave is not None:
            return misbehave(self, name, args)
        return BENIGN[name](self, args)

    def mmap(self, file, vma):
        return self._call("mmap", file, vma)

    def get_unmapped_area(self, task, file, addr, length, pgoff, flags):
        return self._call("get_unmapped_area", task, file, addr, length, pgoff, flags)

    def release(self, file):
        self.released += 1
        return self._call("release", file)

    def unlocked_ioctl(self, task, file, cmd, arg):
        return self._call("ioctl", task, file, cmd, arg)


def _benign_mmap(dev, args):
    file, vma = args
    vma.vm_ops = dev.ops
    vma.flags |= dev.vm_flags


def _benign_gua(dev, args):
    task, file, addr, length, pgoff, flags = args
    if flags & MAP_FIXED:
        return addr
    return mm_get_unmapped_area(task, file, addr, length, pgoff, flags)


def _benign_access(dev, args):
    vma, addr, length, write, data = args
    return length if write else bytes(length)


BENIGN: dict[str, Callable] = {
    "open": lambda dev, args: None,
    "close": lambda dev, args: None,
    "may_split": lambda dev, args: None,
    "mremap": lambda dev, args: None,
    "mprotect": lambda dev, args: None,
    "fault": lambda dev, args: dev.ops.pages.setdefault(args[0].pgoff_at(args[1]), alloc_page()),
    "access": _benign_access,
    "name": lambda dev, args: "[hostile]",
    "pagesize": lambda dev, args: P,
    "mmap": _benign_mmap,
    "get_unmapped_area": _benign_gua,
    "release": lambda dev, args: None,
    "ioctl": lambda dev, args: 0,
}


class Env:
    """A process with an anonymous VMA (pages 0-1), the device (2-5, MAP_SHARED) and
    one more anonymous page (7); for ->name a file-less driver VMA (page 10)."""

    def __init__(self, vm_flags=0, special=False):
        self.k = vmsim.Kernel(pkeys=False, sgx=False)
        self.dev = Device(vm_flags)
        self.dev.env = self
        self.k.fs.add_device("/dev/hostile", self.dev)
        p = self.p = self.k.spawn()
        self.fd = p.open("/dev/hostile", O_RDWR)
        self.file = p.files[self.fd]
        p.mmap(W, 2 * P, RW, ANON)
        p.mmap(DEV, 4 * P, RW, MAP_SHARED | MAP_FIXED, self.fd, 0)
        p.mmap(W + 7 * P, P, RW, ANON)
        p.write(W, b"anon")
        if special:         # as _install_special_mapping() makes one: no file
            p.mm.insert_vm_struct(Vma(p.mm, SPECIAL, SPECIAL + P, VM_READ | VM_MAYREAD,
                                      SPECIAL >> 12, vm_ops=self.dev.ops))

    def state(self):
        self.p.mm.validate()
        return self.p.maps(), self.k.committed, self.file.refs, len(self.k.processes)

    def exit_clean(self):
        """Benign again, exit: nothing stays charged or referenced."""
        self.dev.hostile.clear()
        if self.fd in self.p.files:
            self.p.close(self.fd)
        self.p.exit()
        assert self.k.committed == 0
        assert self.file.refs == 0 and self.dev.released == 1
        assert not self.k.processes


# --- what sets each hook off, and what the kernel's error path leaves ----------------

def _close_fd_first(env):
    env.p.close(env.fd)


def _unmap_device_first(env):
    env.p.munmap(DEV, 4 * P)


def _unmap_device(env):
    env.p.munmap(DEV, 4 * P)


class Trigger:
    """A syscall that calls `hook`. setup: run before it; undo: None when the address
    space must be as before the call, else what the kernel's error path does, run on a
    twin with a benign driver; env: keyword arguments of Env."""

    def __init__(self, hook, name, call, undo=None, setup=None, locked=True, **env):
        self.hook, self.name, self.call, self.undo = hook, name, call, undo
        self.setup, self.locked, self.env = setup, locked, env

    def __repr__(self):
        return f"{self.hook}-{self.name}"

    def make(self):
        env = Env(**self.env)
        if self.setup is not None:
            self.setup(env)
        return env


TRIGGERS = [
    Trigger("open", "split", lambda e: e.p.mprotect(DEV + P, P, PROT_READ)),
    Trigger("open", "fork", lambda e: e.p.fork()),
    Trigger("open", "mremap", lambda e: e.p.mremap(DEV, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED,
                                                   W + 20 * P)),
    # ->close cannot fail: the unmap completes
    Trigger("close", "munmap", _unmap_device, undo=_unmap_device),
    # ...and a MAP_FIXED mmap over it fails as a failing ->mmap would: range unmapped
    Trigger("close", "mmap", lambda e: e.p.mmap(DEV, 4 * P, RW, ANON), undo=_unmap_device),
    Trigger("may_split", "munmap", lambda e: e.p.munmap(DEV + P, P)),
    Trigger("may_split", "mprotect", lambda e: e.p.mprotect(DEV, P, PROT_READ)),
    Trigger("mremap", "move", lambda e: e.p.mremap(DEV, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED,
                                                   W + 20 * P)),
    Trigger("mprotect", "mprotect", lambda e: e.p.mprotect(DEV, 4 * P, PROT_READ)),
    Trigger("fault", "read", lambda e: e.p.read(DEV + P, 16)),
    Trigger("fault", "write", lambda e: e.p.write(DEV, b"x")),
    Trigger("access", "ptrace", lambda e: access_remote_vm(e.p, DEV, 16, False), vm_flags=VM_IO),
    Trigger("name", "maps", lambda e: e.p.maps(), special=True),
    Trigger("pagesize", "smaps", lambda e: e.p.smaps()),
    # __mmap_new_file_vma(): a failing ->mmap leaves the MAP_FIXED range unmapped
    Trigger("mmap", "fixed", lambda e: e.p.mmap(W + 7 * P, P, RW, MAP_SHARED | MAP_FIXED, e.fd, 0),
            undo=lambda e: e.p.munmap(W + 7 * P, P)),
    Trigger("get_unmapped_area", "mmap", lambda e: e.p.mmap(0, P, RW, MAP_SHARED, e.fd, 0)),
    # ->release cannot fail: the close, or the unmap, completes
    Trigger("release", "close", _close_fd_first, undo=_close_fd_first, setup=_unmap_device_first,
            locked=False),
    Trigger("release", "munmap", _unmap_device, undo=_unmap_device, setup=_close_fd_first,
            locked=False),
    Trigger("ioctl", "ioctl", lambda e: e.p.ioctl(e.fd, 0x1234, 0), locked=False),
]


# --- the misbehaviours ---------------------------------------------------------------

class AlwaysEqual:
    """Equal to everything: a comparison by == cannot see it replace a field."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


class LyingInt(int):
    """An int subclass that equals everything."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


def target(dev, args):
    """The VMA the hook is about: its argument, else the device's mapping, else the
    anonymous neighbour."""
    for arg in args:
        if isinstance(arg, Vma):
            return arg
    mm = dev.env.p.mm
    return mm.tree.find(DEV) or mm.tree.find(W)


def neighbour(dev, args):
    return dev.env.p.mm.tree.find(W)


def returns(value):
    def misbehave(dev, hook, args):
        return value
    misbehave.__name__ = f"returns {value!r}"[:40]
    return misbehave


def raises(exc):
    def misbehave(dev, hook, args):
        raise exc
    misbehave.__name__ = f"raises {exc!r}"
    return misbehave


def changes(what, change):
    def misbehave(dev, hook, args):
        result = BENIGN[hook](dev, args)
        change(dev, args)
        return result
    misbehave.__name__ = what
    return misbehave


def _setflags(pick, value):
    def change(dev, args):
        vma = pick(dev, args)
        vma.flags = value(vma.flags)
    return change


def _own_end(dev, args):
    target(dev, args).end += P


def _own_vm_ops(dev, args):
    target(dev, args).vm_ops = AlwaysEqual()


def _own_file(dev, args):
    target(dev, args).file = AlwaysEqual()


def _counter(name, delta):
    def change(dev, args):
        mm = dev.env.p.mm
        setattr(mm, name, getattr(mm, name) + delta)
    return change


def _kernel_commit(dev, args):
    dev.env.k.committed += 1


def _file_ref(dev, args):
    dev.env.file.refs += 1


def _drop_neighbour(dev, args):
    dev.env.p.mm.tree.remove(neighbour(dev, args))


def _modify_then_refuse(dev, hook, args):
    target(dev, args).flags |= VM_EXEC
    raise OSError(errno.EACCES, "refused, after meddling")


MODIFICATIONS = [
    changes("own VMA +exec", _setflags(target, lambda f: f | VM_EXEC)),
    changes("own VMA range", _own_end),
    changes("own flags float", _setflags(target, float)),
    changes("own flags int subclass", _setflags(target, LyingInt)),
    changes("own vm_ops always-equal", _own_vm_ops),
    changes("own file always-equal", _own_file),
    changes("neighbour +exec", _setflags(neighbour, lambda f: f | VM_EXEC)),
    changes("neighbour flags always-equal", _setflags(neighbour, lambda f: AlwaysEqual())),
    changes("total_vm", _counter("total_vm", 1)),
    changes("locked_vm", _counter("locked_vm", 1)),
    changes("mm commit", _counter("committed", 1)),
    changes("kernel commit", _kernel_commit),
    changes("file reference", _file_ref),
    changes("tree", _drop_neighbour),
    _modify_then_refuse,
]

EXCEPTIONS = [raises(ValueError("hostile")), raises(KeyError("hostile")),
              raises(vmsim.HookContractError("raised by the driver itself")),
              raises(OSError(0, "errno 0")), raises(OSError("no errno")),
              raises(vmsim.Fault("SIGKILL", "none", 0)), raises(RuntimeError("hostile"))]
FAULT_NOT_DOCUMENTED = raises(vmsim.Fault("SIGSEGV", "SEGV_MAPERR", 0))

WRONG_RETURNS = {
    "fault": [None, bytes(P), 7, bytearray(10), bytearray(2 * P), bytearray(P),
              memoryview(bytearray(P)), zero_page()],
    "access": ["x", -1, None, bytearray(16)],
    "name": [42, b"[x]", AlwaysEqual()],
    "pagesize": [float(P), 3, "4096", LyingInt(P), 0],
    "get_unmapped_area": [float(W), None, "0x1000", LyingInt(W), -P],
    "ioctl": [None, 1.0, "0", LyingInt(0), True],
}
VOID_WRONG_RETURNS = [0, -errno.EINVAL, True, "ok", AlwaysEqual()]


def reenters(what, call, swallow=False):
    """Call back into mm from inside the hook (on its own VMA's range)."""
    def misbehave(dev, hook, args):
        vma = target(dev, args)
        start, length = vma.start, vma.end - vma.start
        if swallow:
            try:
                call(dev.env.p, start, length)
            except vmsim.HookContractError:
                pass
        else:
            call(dev.env.p, start, length)
        return BENIGN[hook](dev, args)
    misbehave.__name__ = what + (" (error swallowed)" if swallow else "")
    misbehave.call = call
    return misbehave


REENTRIES = [
    reenters("munmap", lambda p, a, n: p.munmap(a, n)),
    reenters("mmap MAP_FIXED", lambda p, a, n: p.mmap(a, n, RW, ANON)),
    reenters("mprotect", lambda p, a, n: p.mprotect(a, n, PROT_READ | PROT_EXEC)),
    reenters("mremap", lambda p, a, n: p.mremap(a, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, W + 40 * P)),
    reenters("munmap", lambda p, a, n: p.munmap(a, n), swallow=True),
    reenters("mprotect", lambda p, a, n: p.mprotect(a, n, PROT_READ), swallow=True),
]
STOPS = [raises(KeyboardInterrupt()), raises(SystemExit(3))]


def misbehaviours(hook):
    out = list(MODIFICATIONS) + list(EXCEPTIONS)
    if hook != "fault":
        out.append(FAULT_NOT_DOCUMENTED)
    out += [returns(v) for v in WRONG_RETURNS.get(hook, VOID_WRONG_RETURNS)]
    return out


def _id(x):
    return getattr(x, "__name__", repr(x))


CASES = [pytest.param(t, m, id=f"{t!r}-{_id(m)}") for t in TRIGGERS for m in misbehaviours(t.hook)]


def expected(trigger: Trigger, env: Env):
    """The state the call must leave: as before it, or what its error path leaves."""
    if trigger.undo is None:
        return env.state()
    twin = trigger.make()
    trigger.undo(twin)
    return twin.state()


@pytest.mark.parametrize("trigger, misbehave", CASES)
def test_broken_contract_is_reported_and_undone(trigger, misbehave):
    env = trigger.make()
    want = expected(trigger, env)
    env.dev.hostile[trigger.hook] = misbehave
    with pytest.raises(vmsim.HookContractError):
        trigger.call(env)
    env.dev.hostile.clear()
    assert env.state() == want
    env.exit_clean()


@pytest.mark.parametrize("trigger", TRIGGERS, ids=repr)
@pytest.mark.parametrize("stop", STOPS, ids=_id)
def test_keyboard_interrupt_and_system_exit_propagate_after_cleanup(trigger, stop):
    env = trigger.make()
    want = expected(trigger, env)
    env.dev.hostile[trigger.hook] = stop
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        trigger.call(env)
    env.dev.hostile.clear()
    assert env.state() == want
    env.exit_clean()


@pytest.mark.parametrize("trigger", [t for t in TRIGGERS if t.locked], ids=repr)
@pytest.mark.parametrize("reentry", REENTRIES, ids=_id)
def test_reentry_under_the_mmap_lock_is_refused(trigger, reentry):
    env = trigger.make()
    want = expected(trigger, env)
    env.dev.hostile[trigger.hook] = reentry
    with pytest.raises(vmsim.HookContractError, match="mmap_lock"):
        trigger.call(env)
    env.dev.hostile.clear()
    assert env.state() == want
    env.exit_clean()


@pytest.mark.parametrize("trigger", [t for t in TRIGGERS if not t.locked], ids=repr)
@pytest.mark.parametrize("reentry", [r for r in REENTRIES if r.__name__ != "mremap"], ids=_id)
def test_unlocked_hooks_may_call_into_mm(trigger, reentry):
    """An ioctl is a syscall of its own, and __fput() runs after the syscall that
    dropped the last reference: their calls into mm take effect, as the same calls made
    after them would."""
    env = trigger.make()
    twin = trigger.make()
    if trigger.undo is not None:
        trigger.undo(twin)
    else:
        trigger.call(twin)
    vma = twin.p.mm.tree.find(DEV) or twin.p.mm.tree.find(W)
    reentry.call(twin.p, vma.start, vma.end - vma.start)
    env.dev.hostile[trigger.hook] = reentry
    trigger.call(env)
    env.dev.hostile.clear()
    assert env.state() == twin.state()
    env.exit_clean()


# --- the seed's case and the documented results ----------------------------------------

def test_mprotect_hook_that_makes_its_vma_executable_is_undone():
    env = Env()
    before = env.state()
    env.dev.hostile["mprotect"] = _modify_then_refuse
    with pytest.raises(vmsim.HookContractError, match="vm_ops->mprotect changed the flags"):
        env.p.mprotect(DEV, 4 * P, PROT_READ)
    env.dev.hostile.clear()
    assert env.state() == before
    assert "rw-s" in env.p.maps().splitlines()[1]
    env.exit_clean()


@pytest.mark.parametrize("hook, call", [
    ("may_split", lambda e: e.p.munmap(DEV + P, P)),
    ("mprotect", lambda e: e.p.mprotect(DEV, 4 * P, PROT_READ)),
    ("mremap", lambda e: e.p.mremap(DEV, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, W + 20 * P)),
    ("mmap", lambda e: e.p.mmap(W + 7 * P, P, RW, MAP_SHARED | MAP_FIXED, e.fd, 0)),
    ("get_unmapped_area", lambda e: e.p.mmap(0, P, RW, MAP_SHARED, e.fd, 0)),
    ("ioctl", lambda e: e.p.ioctl(e.fd, 1, 0)),
])
def test_a_refusal_is_the_errno_it_names(hook, call):
    env = Env()
    env.dev.hostile[hook] = raises(PermissionError(errno.EPERM, "refused"))
    with pytest.raises(OSError) as err:
        call(env)
    assert type(err.value) is PermissionError and err.value.errno == errno.EPERM
    env.p.mm.validate()
    env.exit_clean()


def test_fault_refusal_is_the_signal_at_the_faulting_address():
    env = Env()
    env.dev.hostile["fault"] = raises(vmsim.Fault("SIGSEGV", "whatever", 0))
    with pytest.raises(vmsim.Fault) as fault:
        env.p.read(DEV + P + 5, 1)
    assert (fault.value.signal, fault.value.code, fault.value.addr) == \
        ("SIGSEGV", "SEGV_MAPERR", DEV + P + 5)
    env.exit_clean()


def test_a_short_page_is_not_a_page():
    """The 10-byte bytearray that once made a 2-page read return 20 bytes."""
    env = Env()
    env.dev.hostile["fault"] = returns(bytearray(10))
    with pytest.raises(vmsim.HookContractError):
        env.p.read(DEV, 2 * P)
    env.dev.hostile.clear()
    assert len(env.p.read(DEV, 2 * P)) == 2 * P
    env.exit_clean()


def test_pfnmap_fault_must_insert_a_pfn_inside_its_vma():
    env = Env(vm_flags=VM_IO | VM_PFNMAP)

    class Pfn:
        def cpu_page(self):
            return alloc_page()

    env.dev.hostile["fault"] = returns(None)            # no vmf_insert_pfn()
    with pytest.raises(vmsim.HookContractError, match="must map a PFN"):
        env.p.read(DEV, 1)

    def elsewhere(dev, hook, args):
        vma, addr, write = args
        vmf_insert_pfn(vma, vma.end, Pfn())
    env.dev.hostile["fault"] = elsewhere
    with pytest.raises(vmsim.HookContractError, match="outside"):
        env.p.read(DEV, 1)

    def inserts_then_fails(dev, hook, args):
        vma, addr, write = args
        vmf_insert_pfn(vma, addr & ~(P - 1), Pfn())
        return alloc_page()                             # a page as well: not PFNMAP's result
    env.dev.hostile["fault"] = inserts_then_fails
    with pytest.raises(vmsim.HookContractError):
        env.p.read(DEV, 1)
    assert not env.p.mm.pfn_ptes                        # the PFN did not stay
    env.dev.hostile["fault"] = lambda dev, hook, args: vmf_insert_pfn(args[0], args[1], Pfn())
    assert env.p.read(DEV, 2) == b"\0\0"
    env.p.mm.validate()
    env.exit_clean()


def test_access_reads_through_the_driver_and_stops_at_its_refusal():
    env = Env(vm_flags=VM_IO)
    assert access_remote_vm(env.p, DEV, 16, False) == bytes(16)
    assert access_remote_vm(env.p, W, 4, False) == b"anon"
    assert access_remote_vm(env.p, W, 2, True, b"AN") == 2
    assert env.p.read(W, 4) == b"ANon"
    env.dev.hostile["access"] = raises(OSError(errno.EIO, "no"))
    assert access_remote_vm(env.p, DEV, 16, False) == b""
    env.exit_clean()


# --- what ->mmap may set ----------------------------------------------------------------

def test_mmap_may_set_ops_private_data_and_device_flags():
    env = Env()

    def device_memory(dev, hook, args):
        file, vma = args
        vma.vm_ops, vma.private_data = dev.ops, object()
        vma.flags = (vma.flags | VM_IO | VM_PFNMAP) & ~VM_MAYWRITE & ~vmsim.VM_MAYEXEC
    env.dev.hostile["mmap"] = device_memory
    env.p.mmap(W + 7 * P, P, PROT_READ, MAP_SHARED | MAP_FIXED, env.fd, 0)
    vma = env.p.mm.tree.find(W + 7 * P)
    assert vma.flags & VM_IO and not vma.flags & VM_MAYWRITE
    env.p.mm.validate()
    env.exit_clean()


def test_mmap_may_not_grant_what_the_fd_does_not():
    k = vmsim.Kernel(pkeys=False, sgx=False)
    dev = Device()
    k.fs.add_device("/dev/hostile", dev)
    p = k.spawn()
    fd = p.open("/dev/hostile", O_RDONLY)
    dev.hostile["mmap"] = changes("+maywrite", _setflags(target, lambda f: f | VM_MAYWRITE))
    with pytest.raises(vmsim.HookContractError, match="do_mmap"):
        p.mmap(W, P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)
    assert p.vmas() == [] and k.committed == 0 and p.files[fd].refs == 1
    dev.hostile["mmap"] = changes("+write", _setflags(target, lambda f: f | vmsim.VM_WRITE))
    with pytest.raises(vmsim.HookContractError):
        p.mmap(W, P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)
    assert p.vmas() == []
    p.exit()


# --- cost: a VMA without a driver pays nothing -------------------------------------------

def test_no_snapshot_without_a_driver(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a snapshot was taken for the core's own operations")
    monkeypatch.setattr(hooks, "MmSnapshot", refuse)
    k = vmsim.Kernel(pkeys=False, sgx=False)
    k.fs.create("/tmp/f", b"x" * 3 * P)
    p = k.spawn()
    fd = p.open("/tmp/f", O_RDWR)
    a = p.mmap(0, 3 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    f = p.mmap(0, 3 * P, RW, MAP_SHARED, fd, 0)
    p.write(a + P, b"y")
    assert p.read(f, 1) == b"x"
    p.mprotect(a + P, P, PROT_READ)
    p.mprotect(f + P, P, PROT_READ | PROT_EXEC)
    p.mremap(f, 3 * P, 3 * P, MREMAP_MAYMOVE | MREMAP_FIXED, W)
    p.munmap(a, 3 * P)
    p.maps()
    p.smaps()
    p.fork().exit()
    p.exit()
    assert k.committed == 0
