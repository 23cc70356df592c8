"""The configuration `vmsim check` explores, its start state and the calls it applies.

A `Config` names a small world: an enclave of a few pages with chosen intents (SECINFO
R/W/X per page, built into an image and loaded by the kselftest loader,
vmsim.enclave.loader.kselftest_load: CREATE, ADD_PAGES, INIT, each page mapped
MAP_SHARED|MAP_FIXED with its intent), a two-page non-enclave window just below it, and
the prot values calls use. `ops(config)` lists every call of the alphabet: mmap (the
device, anonymous shared/private, fixed), mprotect, munmap, mremap (shrink, grow, move,
DONTUNMAP), madvise (DONTNEED, DONTFORK, WIPEONFORK, guard install/remove), mseal, fork
and exit of the child, the seven SGX ioctls, r/w/x accesses to enclave and
non-enclave pages, and enclave-mode r/w/x accesses (EENTER at the TCS, one access,
EEXIT: vmsim.arch.x86.vdso.enclave_access). An intent "---" is a hole of ELRANGE: no page is added
there, the start maps it rw- (sgx_encl_may_map() passes pages not added), and an
access to it takes the SGX2 EAUG-on-fault path. With `pages=0` there is no enclave
and the window sits at the scenario window W, so counterexamples are scenarios
`vmsim diff` takes.

An `Op` is data (a call name and its arguments, addresses relative to the enclave base
"E" or the window "A"), so a path of op indices means the same in every worker.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..arch.x86.sgx.defs import (
    SGX_PAGE_TYPE_TCS,
    SGX_PAGE_TYPE_TRIM,
    SGX_SECINFO_R,
    SGX_SECINFO_REG,
    SGX_SECINFO_W,
)
from ..arch.x86.vdso import enclave_access
from ..diff.scenario import WINDOW_BASE
from ..enclave import signing
from ..enclave.image import EnclaveImage
from ..enclave.loader import LoadedEnclave, kselftest_load
from ..errors import Fault, kerr
from ..kernel import Kernel
from ..process import Process
from ..syscalls.dispatch import dispatch
from ..syscalls.names import errno_name
from ..uapi import (
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_GUARD_INSTALL,
    MADV_GUARD_REMOVE,
    MADV_WIPEONFORK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_RDWR,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)

P = PAGE_SIZE
PROT_NAMES = {"---": PROT_NONE, "r--": PROT_READ, "rw-": PROT_READ | PROT_WRITE,
              "r-x": PROT_READ | PROT_EXEC, "rwx": PROT_READ | PROT_WRITE | PROT_EXEC,
              "-w-": PROT_WRITE, "--x": PROT_EXEC, "-wx": PROT_WRITE | PROT_EXEC}
#: the pages of the window outside the enclave
WINDOW_PAGES = 2
#: the intent that stands for a hole of ELRANGE (no page added, mapped rw-)
HOLE = "---"


@dataclass(frozen=True)
class Config:
    """What is explored. intents: the enclave pages' SECINFO permissions ("r-x", ...;
    page 0 is a TCS whatever is written; HOLE: no page); prots: the prot values of mmap/mprotect;
    groups: the op groups of the alphabet (see GROUPS)."""

    intents: tuple[str, ...] = ("rw-", "r-x", "rw-", "r--")
    prots: tuple[str, ...] = ("r--", "rw-", "r-x", "rwx")
    groups: tuple[str, ...] = ("mmap", "mprotect", "munmap", "mremap", "madvise", "mseal",
                               "fork", "ioctl", "access", "eaccess")

    @property
    def pages(self) -> int:
        return len(self.intents)

    def check(self) -> None:
        """ValueError naming what is wrong with this configuration."""
        if self.pages not in (0, 1, 2, 4, 8):
            raise ValueError(f"{self.pages} enclave pages: ELRANGE is a power of two "
                             "(0, 1, 2, 4 or 8 pages)")
        for name in (*self.intents, *self.prots):
            if name not in PROT_NAMES:
                raise ValueError(f"unknown permissions {name!r} (one of "
                                 f"{', '.join(PROT_NAMES)})")
        for name in self.intents:
            if "r" not in name and name != HOLE:
                raise ValueError(f"intent {name!r}: an enclave page is readable (SECINFO R; "
                                 f"{HOLE} is a hole)")
        if self.intents and self.intents[0] == HOLE:
            raise ValueError("page 0 is the TCS: it cannot be a hole")
        for g in self.groups:
            if g not in GROUPS:
                raise ValueError(f"unknown op group {g!r} (one of {', '.join(GROUPS)})")


@dataclass(frozen=True)
class Op:
    """One call of the alphabet: `call` as the dispatcher names it (or an SGX ioctl by
    its SGX_IOC_ name), its arguments with addresses as ("E"|"A", byte offset)."""

    group: str
    call: str
    args: tuple = ()

    def label(self) -> str:
        return f"{self.call}({', '.join(_arg_text(a) for a in self.args)})"


def _arg_text(a: object) -> str:
    if isinstance(a, tuple):
        return f"{a[0]}+{a[1]:#x}" if a[1] else a[0]
    return hex(a) if isinstance(a, int) and a >= 0x1000 else repr(a)


@dataclass
class World:
    """A state: the kernel, the process explored (`main`), its enclave and window."""

    kernel: Kernel
    main: Process
    enclave: LoadedEnclave | None
    window: int
    provision_fd: int = -1
    sigstruct: bytes = b""
    #: what calls go through: main, or a trace recorder wrapping it
    actor: Any = None

    def addr(self, a: object) -> object:
        if isinstance(a, tuple):
            base = self.enclave.base if a[0] == "E" and self.enclave else self.window
            return base + a[1]
        return a

    def child(self) -> Process | None:
        """The most recent child of main still alive."""
        kids = [p for pid, p in sorted(self.kernel.processes.items()) if p is not self.main]
        return kids[-1] if kids else None


def _ranges(cfg: Config) -> list[tuple[str, int, int]]:
    """(base, offset, length): each enclave page, the whole enclave, the window."""
    out = [("E", i * P, P) for i in range(cfg.pages)]
    if cfg.pages > 1:
        out.append(("E", 0, cfg.pages * P))
    out += [("A", 0, P), ("A", 0, WINDOW_PAGES * P)]
    return out


def _mmap_ops(cfg: Config) -> list[Op]:
    ops = []
    for i in range(cfg.pages):
        for prot in cfg.prots:
            ops.append(Op("mmap", "mmap", (("E", i * P), P, PROT_NAMES[prot],
                                           MAP_SHARED | MAP_FIXED, "fd", 0)))
    for typ in (MAP_PRIVATE, MAP_SHARED):
        ops.append(Op("mmap", "mmap", (("A", 0), WINDOW_PAGES * P, PROT_READ | PROT_WRITE,
                                       typ | MAP_ANONYMOUS | MAP_FIXED, -1, 0)))
    if cfg.pages:           # the device outside ELRANGE, and MAP_PRIVATE: refused
        ops.append(Op("mmap", "mmap", (("A", 0), P, PROT_READ, MAP_SHARED | MAP_FIXED,
                                       "fd", 0)))
        ops.append(Op("mmap", "mmap", (("E", 0), P, PROT_READ, MAP_PRIVATE | MAP_FIXED,
                                       "fd", 0)))
    return ops


def _mprotect_ops(cfg: Config) -> list[Op]:
    prots = (PROT_NONE, *(PROT_NAMES[p] for p in cfg.prots))
    return [Op("mprotect", "mprotect", ((base, off), length, prot))
            for base, off, length in _ranges(cfg) for prot in prots]


def _munmap_ops(cfg: Config) -> list[Op]:
    return [Op("munmap", "munmap", ((base, off), length)) for base, off, length in _ranges(cfg)]


def _mremap_ops(cfg: Config) -> list[Op]:
    move = MREMAP_MAYMOVE | MREMAP_FIXED
    ops = [Op("mremap", "mremap", (("E", i * P), P, P, move, ("E", j * P)))
           for i in range(cfg.pages) for j in range(cfg.pages) if i != j]
    ops += [Op("mremap", "mremap", (("E", i * P), P, P, move, ("A", 0)))
            for i in range(cfg.pages)]
    if cfg.pages:
        ops.append(Op("mremap", "mremap", (("E", 0), P, P, move | MREMAP_DONTUNMAP, ("A", 0))))
        ops.append(Op("mremap", "mremap", (("E", 0), P, 2 * P, 0, 0)))       # grow in place
    ops += [Op("mremap", "mremap", (("A", 0), 2 * P, P, 0, 0)),             # shrink
            Op("mremap", "mremap", (("A", 0), P, 2 * P, 0, 0)),             # grow
            Op("mremap", "mremap", (("A", 0), P, P, move | MREMAP_DONTUNMAP, ("A", P)))]
    return ops


def _madvise_ops(cfg: Config) -> list[Op]:
    targets = [("A", 0, WINDOW_PAGES * P)]
    if cfg.pages:
        targets.insert(0, ("E", 0, cfg.pages * P))
    return [Op("madvise", "madvise", ((base, off), length, advice))
            for base, off, length in targets
            for advice in (MADV_DONTNEED, MADV_DONTFORK, MADV_WIPEONFORK, MADV_GUARD_INSTALL,
                           MADV_GUARD_REMOVE)]


def _mseal_ops(cfg: Config) -> list[Op]:
    ops = [Op("mseal", "mseal", (("A", 0), WINDOW_PAGES * P, 0))]
    if cfg.pages > 1:
        ops.append(Op("mseal", "mseal", (("E", P), P, 0)))
    return ops


def _fork_ops(cfg: Config) -> list[Op]:
    return [Op("fork", "fork"), Op("fork", "exit_child")]


def _ioctl_ops(cfg: Config) -> list[Op]:
    if not cfg.pages:
        return []
    last = (cfg.pages - 1) * P
    return [Op("ioctl", "SGX_IOC_ENCLAVE_CREATE"),
            Op("ioctl", "SGX_IOC_ENCLAVE_ADD_PAGES", (last,)),
            Op("ioctl", "SGX_IOC_ENCLAVE_INIT"),
            Op("ioctl", "SGX_IOC_ENCLAVE_PROVISION"),
            Op("ioctl", "SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS", (last, SGX_SECINFO_R)),
            Op("ioctl", "SGX_IOC_ENCLAVE_MODIFY_TYPES", (last, SGX_PAGE_TYPE_TCS)),
            Op("ioctl", "SGX_IOC_ENCLAVE_MODIFY_TYPES", (last, SGX_PAGE_TYPE_TRIM)),
            Op("ioctl", "SGX_IOC_ENCLAVE_REMOVE_PAGES", (last,))]


def _access_ops(cfg: Config) -> list[Op]:
    where = [("E", i * P) for i in range(cfg.pages)] + [("A", 0)]
    return [Op("access", "touch", (a, mode)) for a in where for mode in "rwx"]


def _eaccess_ops(cfg: Config) -> list[Op]:
    """EENTER at the TCS (page 0), one r, w or x access to each enclave page, EEXIT."""
    return [Op("eaccess", "eaccess", (("E", 0), ("E", i * P), mode))
            for i in range(cfg.pages) for mode in "rwx"]


#: the op groups, in the order the alphabet lists them
GROUPS: dict[str, Callable[[Config], list[Op]]] = {
    "mmap": _mmap_ops, "mprotect": _mprotect_ops, "munmap": _munmap_ops,
    "mremap": _mremap_ops, "madvise": _madvise_ops, "mseal": _mseal_ops,
    "fork": _fork_ops, "ioctl": _ioctl_ops, "access": _access_ops,
    "eaccess": _eaccess_ops,
}


@cache
def ops(cfg: Config) -> tuple[Op, ...]:
    """The alphabet of cfg, in a fixed order (paths are indices into it)."""
    return tuple(op for g in GROUPS if g in cfg.groups for op in GROUPS[g](cfg))


def ssa_frames(cfg: Config) -> tuple[int, int]:
    """The TCS's OSSA and NSSA: the first run of writable REG pages (one-page SSA
    frames), or (0, 1) when there is none (EENTER then faults on the SSA frame)."""
    writable = [i > 0 and "w" in intent for i, intent in enumerate(cfg.intents)]
    if True not in writable:
        return 0, 1
    first = writable.index(True)
    n = 0
    while first + n < len(writable) and writable[first + n]:
        n += 1
    return first * P, n


def secinfo(intent: str, tcs: bool, ossa: int = 0, nssa: int = 1) -> str:
    """The image text's segment attributes for one page."""
    if tcs:
        return f"type=TCS ossa={ossa:#x} nssa={nssa} oentry=0x0"
    return "perms=" + "".join(c.upper() for c in intent if c != "-")


def image(cfg: Config) -> EnclaveImage:
    """The enclave image of cfg: page 0 a TCS, page i a REG page with intents[i] (none
    for a HOLE)."""
    ossa, nssa = ssa_frames(cfg)
    lines = [f"size = {cfg.pages * P:#x}"]
    for i, intent in enumerate(cfg.intents):
        if intent != HOLE:
            lines.append(f"segment p{i} offset={i * P:#x} pages=1 "
                         f"{secinfo(intent, i == 0, ossa, nssa)}")
    return EnclaveImage.from_text("\n".join(lines) + "\n")


@cache
def signing_key(pem: bytes = b""):
    """The key of pem, or one new RSA-3072 key per process (generating it is the slow
    part of a start). Workers get the explorer's PEM: the SIGSTRUCT INIT reads lies in
    the loader's memory, so every process must sign with the same key."""
    return signing.load_key(pem) if pem else signing.generate_key()


def start(cfg: Config, kernel: Kernel, recorder: Callable[[Process], Any] | None = None,
          key_pem: bytes = b"") -> World:
    """The start state in `kernel`: a process with stdin/stdout/stderr and a stack, the
    enclave loaded by the kselftest loader (no probe mmaps), /dev/sgx_provision open.
    recorder: wraps the process to act through it (vmsim.trace.demo.Recorder), so that
    the start is recorded too; the World's ioctls then go through it."""
    main = kernel.spawn(stack=True)
    for _ in range(3):      # stdin, stdout, stderr, as a replay starts
        main.open("/dev/null", O_RDWR)
    actor = main if recorder is None else recorder(main)
    if not cfg.pages:
        return World(kernel, main, None, WINDOW_BASE, actor=actor)
    img = image(cfg)
    key = signing_key(key_pem)
    enclave = kselftest_load(actor, img, key, probe=False)
    for i, intent in enumerate(cfg.intents):
        if intent == HOLE:
            actor.mmap(enclave.base + i * P, P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                       enclave.dev.fd, 0)
    prov = actor.open("/dev/sgx_provision", O_RDWR)
    return World(kernel, main, enclave, enclave.base - WINDOW_PAGES * P, prov,
                 img.sigstruct(key), actor)


def apply(world: World, op: Op) -> tuple:
    """Make the call op in world: ("ok", value), ("err", "EACCES") or ("sig", signal,
    si_code, address), as vmsim.syscalls.dispatch.outcome gives it; an enclave-mode
    access as vmsim.arch.x86.vdso.enclave_access gives it ("ok", "aex", "eenter")."""
    if op.call == "eaccess":
        tcs, addr, mode = (world.addr(a) for a in op.args)
        assert isinstance(tcs, int) and isinstance(addr, int) and isinstance(mode, str)
        return enclave_access(world.main, tcs, addr, mode)
    try:
        return ("ok", _call(world, op))
    except OSError as exc:
        return ("err", errno_name(exc.errno) if exc.errno is not None else "?")
    except Fault as f:
        return ("sig", f.signal, f.code, f.addr)


def _call(world: World, op: Op) -> int:
    args = [world.addr(a) for a in op.args]
    enclave = world.enclave
    actor = world.actor
    if op.call == "fork":
        return actor.fork().pid
    if op.call == "exit_child":
        child = world.child()
        if child is None:
            raise kerr(errno.ECHILD)
        child.exit()
        return 0
    if op.call.startswith("SGX_IOC_"):
        assert enclave is not None
        return _ioctl(world, enclave, op.call, args)
    if op.call == "mmap" and args[4] == "fd":
        args[4] = enclave.dev.fd if enclave is not None else -1
    return dispatch(actor, op.call, args)


def _ioctl(world: World, enclave: LoadedEnclave, call: str, args: list) -> int:
    dev, img = enclave.dev, enclave.image
    if call == "SGX_IOC_ENCLAVE_CREATE":
        dev.create(img.secs(enclave.base))
    elif call == "SGX_IOC_ENCLAVE_ADD_PAGES":
        scratch = dev.scratch.put(bytes(P), P)
        dev.add_pages(scratch, args[0], P, SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W)
    elif call == "SGX_IOC_ENCLAVE_INIT":
        dev.init(world.sigstruct)
    elif call == "SGX_IOC_ENCLAVE_PROVISION":
        dev.provision(world.provision_fd)
    elif call == "SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS":
        dev.restrict_permissions(args[0], P, args[1])
    elif call == "SGX_IOC_ENCLAVE_MODIFY_TYPES":
        dev.modify_types(args[0], P, args[1])
    else:
        dev.remove_pages(args[0], P)
    return 0
