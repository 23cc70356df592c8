"""The properties `vmsim check` asserts after every step.

    intent      no PTE of an enclave page, at any address, has more permissions than
                the page's intent (vm_max_prot_bits) — stricter than the driver's own
                VmOperations.check, which looks at a page's own address only
    mprotect    a successful mprotect leaves the whole range with the asked protection
    validate    MmStruct.validate() of every process
    leak        once every process has exited, no commit charge, no file reference
                and no EPC page is left
    MODULE:FUNC a user predicate: FUNC(world) returning False or a message is a violation

A state property returns None when it holds, else a one-line message; `mprotect` is a
property of the transition (it sees the call and its result).
"""

from __future__ import annotations

from collections.abc import Callable

from ..arch.x86.sgx.cpu import EpcPage
from ..drivers.sgx.encl import Encl, prot_name
from ..errors import HookContractError
from ..mm.flags import VM_ACCESS_FLAGS, calc_vm_prot_bits
from ..uapi import PAGE_SHIFT
from .plugins import load_callable
from .state import snapshot
from .world import Op, World

StateProperty = Callable[[World], "str | None"]
BUILTIN = ("intent", "mprotect", "validate", "leak")


def intent(world: World) -> str | None:
    """The intent invariant over every PTE of every enclave VMA."""
    for p in world.kernel.processes.values():
        mm = p.mm
        for vma in mm.tree:
            encl = vma.private_data
            if not isinstance(encl, Encl):
                continue
            prot = vma.flags & VM_ACCESS_FLAGS
            for vpn in mm.present_in(vma.start, vma.end, mm.pfn_ptes):
                epc = mm.pfn_ptes[vpn]
                assert isinstance(epc, EpcPage)
                page = encl.pages.get(epc.addr >> PAGE_SHIFT)
                if page is None or page.epc is not epc:
                    continue            # a PTE that outlived its page: no intent left
                if prot & ~page.vm_max_prot_bits:
                    return (f"pid {p.pid}: the PTE at {vpn << PAGE_SHIFT:#x} maps the enclave "
                            f"page {epc.addr:#x} {prot_name(prot)}, its intent is "
                            f"{prot_name(page.vm_max_prot_bits)}")
    return None


def validate(world: World) -> str | None:
    for p in world.kernel.processes.values():
        try:
            p.mm.validate()
        except (AssertionError, HookContractError) as exc:
            return f"pid {p.pid}: validate(): {exc}"
    return None


def leak(world: World) -> str | None:
    """Exit every process of a copy; then nothing may stay charged or referenced."""
    w = snapshot(world)
    k = w.kernel
    files = {id(f): f for p in k.processes.values()
             for f in [*p.files.values(), *(v.file for v in p.mm.tree if v.file)]}
    for p in sorted(k.processes.values(), key=lambda p: -p.pid):
        p.exit()
    held = [f for f in files.values() if f.refs]
    if held:
        return f"after exit {held[0].path} still has {held[0].refs} reference(s)"
    if k.committed:
        return f"after exit {k.committed} page(s) of commit charge remain"
    cpu = k.sgx_cpu
    if cpu is not None and cpu.epc_free != cpu.epc_pages:
        return f"after exit {cpu.epc_pages - cpu.epc_free} EPC page(s) are not freed"
    return None


def mprotect_post(world: World, op: Op, result: tuple) -> str | None:
    """A successful mprotect(addr, len, prot) leaves [addr, addr+len) covered by VMAs
    whose R/W/X are prot's (mm/mprotect.c: the syscall's contract)."""
    if op.call != "mprotect" or result[0] != "ok":
        return None
    addr, length, prot = (world.addr(a) for a in op.args)
    assert isinstance(addr, int) and isinstance(length, int) and isinstance(prot, int)
    want = calc_vm_prot_bits(prot, 0) & VM_ACCESS_FLAGS
    mm = world.main.mm
    pos = addr
    for vma in mm.tree:
        if vma.end <= addr or vma.start >= addr + length:
            continue
        if vma.start > pos:
            break
        if vma.flags & VM_ACCESS_FLAGS != want:
            return (f"mprotect({addr:#x}, {length:#x}, {prot_name(want)}) returned 0 but "
                    f"{max(vma.start, addr):#x} is {prot_name(vma.flags & VM_ACCESS_FLAGS)}")
        pos = vma.end
    if pos < addr + length:
        return f"mprotect({addr:#x}, {length:#x}) returned 0 but {pos:#x} is not mapped"
    return None


STATE_PROPERTIES: dict[str, StateProperty] = {"intent": intent, "validate": validate,
                                              "leak": leak}


def user_property(spec: str) -> StateProperty:
    """The predicate MODULE:FUNC as a state property; ValueError if it cannot be loaded."""
    fn = load_callable("property", spec, BUILTIN)

    def check(world: World) -> str | None:
        verdict = fn(world)
        if verdict is False:
            return f"{spec} returned False"
        return verdict if isinstance(verdict, str) else None
    return check


def state_properties(names: tuple[str, ...]) -> dict[str, StateProperty]:
    """The state properties among names (mprotect is the transition's)."""
    return {n: STATE_PROPERTIES[n] if n in STATE_PROPERTIES else user_property(n)
            for n in names if n != "mprotect"}
