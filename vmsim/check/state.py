"""Model states as `vmsim check` handles them: a canonical key (equal observable states
explored once) and a snapshot (a copy to apply the next call to).

The key hashes what is observable and nothing else: per process (in pid order, pids
themselves left out) its fd table, persona and PKRU, and its mm (VMAs with flags, pgoff,
file identity, anon_vma identity and chain, vm_ops type and private data; anonymous
pages by content digest; file, PFN and guard PTEs; the counters); every file (path,
mode, references); every enclave (flags, page_cnt, VA pages, references and each
page's intent, type and EPCM entry with a digest of its contents); the commit charge
and the free EPC. Identities (struct file, anon_vma, enclave, EPC page) become small
integers in the order the walk first meets them, so no Python object id leaks in.

The snapshot is `copy.deepcopy` of the World (kernel, processes, enclave handles in one
memo), with the enclave's running SHA-256 measurement copied by `hash.copy()` (hashlib
objects cannot be deep-copied), the kernel's random generator by its state (a tuple of
625 ints deepcopy would walk one by one), and the enclave image, which nothing writes,
shared (benchmarks/bench_check.py measures it against rebuilding the start).
"""

from __future__ import annotations

import copy
import hashlib
import random
from typing import Any

from ..arch.x86.sgx.cpu import EpcPage
from ..drivers.sgx.encl import Encl
from ..mm.mm_struct import MmStruct
from .world import World


class Ids:
    """Object identity -> small integer, in the order first met (None -> 0)."""

    def __init__(self) -> None:
        self.ids: dict[int, int] = {}
        self.objs: list[Any] = []

    def __call__(self, obj: Any) -> int:
        if obj is None:
            return 0
        n = self.ids.get(id(obj))
        if n is None:
            n = self.ids[id(obj)] = len(self.ids) + 1
            self.objs.append(obj)       # keeps ids unique while the key is built
        return n


def _digest(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


def mm_key(mm: MmStruct, ids: Ids) -> tuple:
    vmas = tuple((v.start, v.end, v.flags, v.pgoff, ids(v.file), ids(v.anon_vma),
                  tuple(ids(a) for a in v.avc),
                  tuple(ids(a.parent) for a in v.avc),
                  type(v.vm_ops).__name__, ids(v.private_data)) for v in mm.tree)
    return (vmas,
            tuple((vpn, _digest(page)) for vpn, page in sorted(mm.anon_pages.items())),
            tuple(sorted(mm.file_ptes.items())), tuple(sorted(mm.guards)),
            tuple((vpn, ids(pfn)) for vpn, pfn in sorted(mm.pfn_ptes.items())),
            (mm.total_vm, mm.data_vm, mm.exec_vm, mm.stack_vm, mm.locked_vm, mm.committed,
             mm.brk, mm.pkey_allocation_map, mm.execute_only_pkey, mm.has_mdwe,
             mm.mdwe_no_inherit, mm.merge_any),
            tuple(sorted(mm.pmd_tables)))


def _epc_key(epc: EpcPage) -> tuple:
    return (epc.valid, epc.r, epc.w, epc.x, epc.pt, epc.addr, epc.blocked, epc.pending,
            epc.modified, epc.pr, _digest(epc.data))


def _swapped_key(encl: Encl, index: int) -> tuple:
    """A page written out of the EPC (EWB): its backing page and PCMD (None: gone)."""
    assert encl.backing is not None
    pages, pcmd = encl.backing.pages, encl.backing.pcmd_offset(index)
    contents, pcmd_page = pages.get(index), pages.get(pcmd >> 12)
    off = pcmd & 4095
    return (None if contents is None else _digest(contents),
            None if pcmd_page is None else _digest(pcmd_page[off:off + 128]))


def encl_key(encl: Encl, ids: Ids) -> tuple:
    pages = tuple((pfn, p.vm_max_prot_bits, p.type, ids(p.epc), _epc_key(p.epc))
                  if p.epc is not None else
                  (pfn, p.vm_max_prot_bits, p.type, _swapped_key(encl, p.index()))
                  for pfn, p in sorted(encl.pages.items()))
    secs = encl.secs
    threads = (secs.enclave.initialized, secs.enclave.active_threads, secs.enclave.children) \
        if secs is not None and secs.enclave is not None else None
    return (encl.created, encl.initialized, encl.base, encl.size, encl.page_cnt,
            len(encl.va_pages), encl.refs, tuple(sorted(ids(mm) for mm in encl.mm_list)),
            threads, pages)


def state_key(world: World) -> bytes:
    """The canonical key of a state: equal for states no call can tell apart."""
    ids = Ids()
    k = world.kernel
    procs = []
    for _pid, p in sorted(k.processes.items()):
        procs.append((p is world.main, ids(p.mm), p.persona, p.pkru,
                      tuple((fd, ids(f)) for fd, f in sorted(p.files.items())),
                      mm_key(p.mm, ids)))
    objs: list[tuple] = []
    i = 0
    while i < len(ids.objs):        # the objects met so far, and those they refer to
        obj = ids.objs[i]
        if isinstance(obj, Encl):
            objs.append(("encl", ids(obj), encl_key(obj, ids)))
        elif hasattr(obj, "inode") and hasattr(obj, "refs"):
            objs.append(("file", ids(obj), obj.path, obj.f_mode, obj.refs,
                         ids(obj.private_data)))
        i += 1
    epc_free = k.sgx_cpu.epc_free if k.sgx_cpu is not None else 0
    text = repr((tuple(procs), tuple(objs), k.committed, epc_free)).encode()
    return hashlib.blake2b(text, digest_size=16).digest()


def snapshot(world: World) -> World:
    """A copy of the World that shares nothing with it (see the module docstring)."""
    memo: dict[int, Any] = {}
    for encl in enclaves(world):
        if encl.secs is not None and encl.secs.enclave is not None:
            h = encl.secs.enclave.measurement._h
            memo[id(h)] = h.copy()
    rng = random.Random()
    rng.setstate(world.kernel.random.getstate())    # not 625 ints one by one
    memo[id(world.kernel.random)] = rng
    if world.enclave is not None:                   # the image is only read
        memo[id(world.enclave.image)] = world.enclave.image
    return copy.deepcopy(world, memo)


def enclaves(world: World) -> list[Encl]:
    """Every enclave an fd or a VMA of a process refers to."""
    found: dict[int, Encl] = {}
    for p in world.kernel.processes.values():
        objs = [f.private_data for f in p.files.values()] + \
            [v.private_data for v in p.mm.tree]
        for obj in objs:
            if isinstance(obj, Encl):
                found[id(obj)] = obj
    if world.enclave is not None:
        encl = world.enclave.dev.p.files[world.enclave.dev.fd].private_data \
            if world.enclave.dev.fd in world.enclave.dev.p.files else None
        if isinstance(encl, Encl):
            found[id(encl)] = encl
    return list(found.values())
