"""vmsim: an executable model of the Linux 6.18 x86_64 memory-map layer.

    import vmsim
    k = vmsim.Kernel()
    p = k.spawn()
    a = p.mmap(0, 3 * 4096, vmsim.PROT_READ | vmsim.PROT_WRITE,
               vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS)
    print(p.maps())

See docs/api.md for the whole public surface.
"""

from .errors import Fault, HookContractError  # noqa: F401  (public API)
from .fs.file import File, FileOperations, Inode  # noqa: F401
from .kernel import Kernel  # noqa: F401
from .mm.flags import *  # noqa: F401,F403  (the VM_* flags)
from .mm.vma import Vma, VmOperations  # noqa: F401
from .process import Process, VmaView  # noqa: F401
from .uapi import *  # noqa: F401,F403  (PROT_*, MAP_*, ...)

__version__ = "0.1.0"
