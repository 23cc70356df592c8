"""Small helpers shared by the ported suites (LTP, gVisor)."""

import pytest

import vmsim


def spawn(stack=False, **config):
    """A fresh kernel (configured by `config`) and one process; `stack` adds [stack]."""
    kernel = vmsim.Kernel(**config)
    return kernel, kernel.spawn(stack=stack)


def errno_of(call, *args):
    """Run a syscall that must fail; return its errno."""
    with pytest.raises(OSError) as info:
        call(*args)
    return info.value.errno


def fault_of(access, *args):
    """Run a memory access that must fault; return the vmsim.Fault."""
    with pytest.raises(vmsim.Fault) as info:
        access(*args)
    return info.value
