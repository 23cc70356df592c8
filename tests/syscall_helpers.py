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


def smaps_field(p, start, field):
    """The value (as text) of one smaps field of the VMA starting at `start`."""
    current = None
    for line in p.smaps().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and not head.endswith(":"):
            current = int(head.split("-")[0], 16)
        elif current == start and line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {field} for VMA at {start:#x}")
