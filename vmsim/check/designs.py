"""The designs of the `->mprotect` hook `vmsim check` compares, and driver variants as
plugins.

    merged          5.11+: the check-only hook (vmsim.Kernel(), the default)
    v40             the SGX v40 series: Kernel(mprotect_hook="v40"), the hook replaces
                    mprotect_fixup() and the v40 driver does the fixup itself
    v40-check-only  the same core with a driver whose hook only checks (what review
                    feared every driver would get wrong)
    none            no ->mprotect at all, as before the series: only mmap is checked
    MODULE:FUNC     a plugin: FUNC(kernel) installs a driver variant in a new Kernel

A driver variant replaces the file operations of /dev/sgx_enclave with a subclass of
the driver's own whose `mmap` gives the VMA other `vm_operations_struct`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..drivers.sgx.driver import SgxEnclaveFops
from ..drivers.sgx.encl import SgxVmOps, SgxVmOpsV40
from ..errors import EACCES, kerr
from ..fs.file import File
from ..kernel import Kernel
from ..mm.vma import Vma, VmOperations
from ..trace.format import Trace
from ..trace.replay import Replayer
from .plugins import load_callable

BUILTIN = ("merged", "v40", "v40-check-only", "none")


class SgxVmOpsNoHook(SgxVmOps):
    """sgx_vm_ops before the series: no ->mprotect, so mprotect consults nobody."""

    mprotect = None     # type: ignore[assignment]  # absent: the point of this design


class SgxVmOpsV40CheckOnly(SgxVmOpsV40):
    """A v40 driver that checks the intent and forgets mprotect_fixup()."""

    def mprotect(self, vma: Vma, pprev: list[Vma | None],  # type: ignore[override]
                 start: int, end: int, newflags: int) -> None:
        encl = vma.private_data
        if encl is None:
            raise kerr(EACCES)
        encl.may_map(vma.mm.owner, start, end, newflags)
        pprev[0] = vma


class VariantFops(SgxEnclaveFops):
    """/dev/sgx_enclave with the driver's mmap, then `ops` on the new VMA."""

    def __init__(self, base: SgxEnclaveFops, ops: VmOperations):
        super().__init__(base.epc)
        self.ops = ops

    def mmap(self, file: File, vma: Vma) -> None:
        super().mmap(file, vma)
        vma.vm_ops = self.ops


def install_vm_ops(kernel: Kernel, ops: VmOperations) -> None:
    """Give /dev/sgx_enclave's new mappings `ops` (a driver variant)."""
    inode = kernel.fs.lookup("/dev/sgx_enclave")
    assert isinstance(inode.fops, SgxEnclaveFops), "the SGX driver is not installed"
    inode.fops = VariantFops(inode.fops, ops)


def plugin(spec: str) -> Callable[[Kernel], None]:
    """The function MODULE:FUNC names; ValueError when it cannot be loaded."""
    return load_callable("design", spec, BUILTIN)


def check_design(spec: str) -> None:
    """ValueError if spec names no design."""
    if spec not in BUILTIN:
        plugin(spec)


def kernel_kwargs(spec: str) -> dict:
    """The Kernel keyword arguments of design spec."""
    return {"mprotect_hook": "v40"} if spec.startswith("v40") else {}


def install(spec: str, kernel: Kernel) -> None:
    """Install design spec's driver variant into a Kernel(**kernel_kwargs(spec))."""
    if spec == "v40-check-only":
        install_vm_ops(kernel, SgxVmOpsV40CheckOnly())
    elif spec == "none":
        install_vm_ops(kernel, SgxVmOpsNoHook())
    elif spec not in BUILTIN:
        plugin(spec)(kernel)


def new_kernel(spec: str) -> Kernel:
    """A Kernel of design spec, its SGX driver installed accordingly."""
    kernel = Kernel(**kernel_kwargs(spec))
    install(spec, kernel)
    return kernel


def replayer(trace: Trace, spec: str, **kwargs) -> Replayer:
    """A Replayer of trace on a kernel of design spec (kwargs: Replayer's; its
    kernel_kwargs are added to the design's)."""
    kwargs["kernel_kwargs"] = {**kernel_kwargs(spec), **(kwargs.get("kernel_kwargs") or {})}
    r = Replayer(trace, **kwargs)
    install(spec, r.k)
    return r
