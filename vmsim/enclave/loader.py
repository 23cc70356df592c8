"""User-space side of SGX: what an enclave loader does with the driver, as calls on a
vmsim Process — the ioctl wrappers (`SgxDevice`: arguments marshalled into the
process's own memory as a C loader passes pointers, by `marshal`, which the trace
replayer uses too; `unmarshal` reads them back for the trace recorder) and the real
loaders' call sequences (spec/sgx-driver.md §5):

    kselftest_load  tools/testing/selftests/sgx/load.c + main.c          (§5.a)
    gramine_load    Gramine linux-sgx PAL host_framework.c/host_main.c   (§5.b)
    sdk_load        Intel SGX PSW libsgx_enclave_common + urts           (§5.c)
    enarx_load      enarx src/backend/sgx/enclave/builder.rs             (§5.d)

Every loader returns a LoadedEnclave; a failing step raises the OSError of the
syscall that failed (the loaders do not clean up, so the address space is left as the
real loader leaves it at the point of failure).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..arch.x86.sgx.defs import SECINFO_SIZE, SECS_SIZE, SGX_ATTR_PROVISIONKEY, SIGSTRUCT_SIZE
from ..arch.x86.sgx.measure import Measurement
from ..arch.x86.sgx.sigstruct import Sigstruct
from ..drivers.sgx import uapi
from ..errors import EAGAIN, EBUSY, EINTR, ENOMEM, kerr
from ..uapi import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    O_CLOEXEC,
    O_RDONLY,
    O_RDWR,
    PAGE_MASK,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    U64,
)
from . import signing
from .image import EnclaveImage
from .segment import Segment, tcs_after_eadd


class Scratch:
    """Private anonymous memory in the process for ioctl arguments (a C loader's
    stack and heap): `put(bytes) -> address`, starting over from the beginning when
    full. A context manager that unmaps it on exit."""

    def __init__(self, p, size: int = 16 * PAGE_SIZE, addr: int = 0, flags: int = 0):
        self.p = p
        self.size = size
        self.base = p.mmap(addr, size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | flags)
        self.next = 0

    @classmethod
    def away_from_vmas(cls, p, need: int) -> Scratch:
        """A scratch for `need` bytes at least 1 GiB away from every VMA, reserving
        no memory: unmapped again, it leaves no trace in the address space (the
        replayer's, whose maps are compared). ENOMEM when there is no such place."""
        size = ((max(need, PAGE_SIZE) + PAGE_SIZE - 1) & PAGE_MASK) + 2 * PAGE_SIZE
        gap = 1 << 30
        views = p.vmas()
        for cand in range(0x100000000000, 0x7F0000000000, 0x10000000000):
            lo, hi = cand - gap, cand + size + gap
            if all(v.end <= lo or v.start >= hi for v in views):
                return cls(p, size, cand, MAP_FIXED_NOREPLACE | MAP_NORESERVE)
        raise kerr(ENOMEM)

    def put(self, data: bytes, align: int = 64) -> int:
        self.next = (self.next + align - 1) & ~(align - 1)
        if self.next + len(data) > self.size:
            self.next = 0
        addr = self.base + self.next
        self.p.write(addr, data)
        self.next += len(data)
        return addr

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.p.munmap(self.base, self.size)


#: each SGX ioctl's argument struct and its fields in order (SGX_IOC_VEPC_REMOVE_ALL
#: takes none): arch/x86/include/uapi/asm/sgx.h
IOCTL_ARGS: dict[int, tuple[struct.Struct, tuple[str, ...]]] = {
    uapi.SGX_IOC_ENCLAVE_CREATE: (uapi.CREATE, ("src",)),
    uapi.SGX_IOC_ENCLAVE_ADD_PAGES: (uapi.ADD_PAGES, ("src", "offset", "length", "secinfo",
                                                      "flags", "count")),
    uapi.SGX_IOC_ENCLAVE_INIT: (uapi.INIT, ("sigstruct",)),
    uapi.SGX_IOC_ENCLAVE_PROVISION: (uapi.PROVISION, ("fd",)),
    uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS: (uapi.RESTRICT_PERMISSIONS, (
        "offset", "length", "permissions", "result", "count")),
    uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES: (uapi.MODIFY_TYPES, ("offset", "length", "page_type",
                                                            "result", "count")),
    uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES: (uapi.REMOVE_PAGES, ("offset", "length", "count")),
}


def marshal(scratch: Scratch, cmd: int, fields: Mapping[str, Any]) -> int:
    """Lay out an SGX ioctl's argument in the process as a C loader does; its address
    (0 for an ioctl without one). `fields` are the struct's (absent ones 0), but that
    a pointer's target may be given instead: CREATE `secs` (the SECS page), INIT
    `sigstruct` as bytes, ADD_PAGES `secinfo` as the SECINFO's flags and `data`, the
    source pages -- written at `src` when the process has that range mapped writable
    (a replayed loader's own buffer), else into the scratch."""
    if cmd not in IOCTL_ARGS:
        return 0
    fmt, names = IOCTL_ARGS[cmd]
    values = dict(fields)
    if cmd == uapi.SGX_IOC_ENCLAVE_CREATE and "secs" in values:
        values["src"] = scratch.put(values["secs"], PAGE_SIZE)
    elif cmd == uapi.SGX_IOC_ENCLAVE_ADD_PAGES:
        if values.get("data") is not None:
            values["src"] = _place_source(scratch, values.get("src", 0), values["data"])
        secinfo = struct.pack("<Q", values.get("secinfo", 0)) + bytes(SECINFO_SIZE - 8)
        values["secinfo"] = scratch.put(secinfo)
    elif cmd == uapi.SGX_IOC_ENCLAVE_INIT and isinstance(values.get("sigstruct"), bytes):
        values["sigstruct"] = scratch.put(values["sigstruct"], PAGE_SIZE)
    return scratch.put(fmt.pack(*(values.get(name, 0) & U64 for name in names)))


def _place_source(scratch: Scratch, src: int, data: bytes) -> int:
    p = scratch.p
    if src and _writable(p, src, len(data)):
        p.write(src, data)
        return src
    return scratch.put(data, PAGE_SIZE)


def _writable(p, addr: int, n: int) -> bool:
    """Is [addr, addr + n) mapped writable, without a hole?"""
    end = addr + n
    cur = addr
    for v in p.vmas():
        if v.end <= cur or v.start > cur:
            continue
        if "w" not in v.perms:
            return False
        cur = v.end
        if cur >= end:
            return True
    return cur >= end


def unmarshal(p, cmd: int, arg: int) -> dict | int:
    """An SGX ioctl's argument as a JSON trace carries it (docs/trace-format.md), read
    from the process: CREATE its SECS, ADD_PAGES its fields with the SECINFO's flags
    and the source pages, INIT its SIGSTRUCT, any other the struct's fields; the bare
    pointer for an ioctl without one."""
    if cmd not in IOCTL_ARGS:
        return arg
    fmt, names = IOCTL_ARGS[cmd]
    fields = dict(zip(names, fmt.unpack(p.read(arg, fmt.size)), strict=True))
    if cmd == uapi.SGX_IOC_ENCLAVE_CREATE:
        return {"secs": p.read(fields["src"], SECS_SIZE)}
    if cmd == uapi.SGX_IOC_ENCLAVE_ADD_PAGES:
        (fields["secinfo"],) = struct.unpack("<Q", p.read(fields["secinfo"], 8))
        return {**fields, "data": p.read(fields["src"], fields["length"])}
    if cmd == uapi.SGX_IOC_ENCLAVE_INIT:
        return {"sigstruct": p.read(fields["sigstruct"], SIGSTRUCT_SIZE)}
    return fields


class SgxDevice:
    """An open /dev/sgx_enclave and the seven ioctls, each returning the written-back
    struct fields (a failing ioctl raises OSError; `last` keeps what the driver wrote
    back, e.g. `count` of a partial ADD_PAGES)."""

    def __init__(self, p, path: str = "/dev/sgx_enclave", flags: int = O_RDWR):
        self.p = p
        self.fd = p.open(path, flags)
        self.scratch = Scratch(p)
        self.last: tuple | None = None

    def _ioctl(self, cmd: int, **fields: Any) -> tuple:
        fmt = IOCTL_ARGS[cmd][0]
        arg = marshal(self.scratch, cmd, fields)
        try:
            self.p.ioctl(self.fd, cmd, arg)
        finally:
            self.last = fmt.unpack(self.p.read(arg, fmt.size))
        return self.last

    def create(self, secs: bytes) -> None:
        self._ioctl(uapi.SGX_IOC_ENCLAVE_CREATE, secs=secs)

    def add_pages(self, src: int, offset: int, length: int, secinfo_flags: int,
                  measure: bool = True) -> int:
        return self._ioctl(uapi.SGX_IOC_ENCLAVE_ADD_PAGES, src=src, offset=offset,
                           length=length, secinfo=secinfo_flags,
                           flags=uapi.SGX_PAGE_MEASURE if measure else 0)[5]

    def init(self, sigstruct: bytes) -> None:
        self._ioctl(uapi.SGX_IOC_ENCLAVE_INIT, sigstruct=sigstruct)

    def provision(self, fd: int) -> None:
        self._ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, fd=fd)

    def restrict_permissions(self, offset: int, length: int, perms: int) -> tuple:
        return self._ioctl(uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, offset=offset,
                           length=length, permissions=perms)

    def modify_types(self, offset: int, length: int, page_type: int) -> tuple:
        return self._ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, offset=offset, length=length,
                           page_type=page_type)

    def remove_pages(self, offset: int, length: int) -> tuple:
        return self._ioctl(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, offset=offset, length=length)


@dataclass
class LoadedEnclave:
    """What a loader leaves behind: the device, the ELRANGE and the segments' places."""

    dev: SgxDevice
    base: int
    size: int
    image: EnclaveImage
    segments: list = field(default_factory=list)    # (addr, length, prot, segment)
    sigstruct: bytes | None = None                  # what SGX_IOC_ENCLAVE_INIT was given

    def tcs(self, n: int = 0) -> int:
        """The address of the n-th TCS page."""
        tcs = [addr + i * PAGE_SIZE for addr, length, _prot, seg in self.segments
               if seg.is_tcs for i in range(length // PAGE_SIZE)]
        return tcs[n]


def reserve_aligned(p, size: int) -> int:
    """encl_map_area(): mmap 2*size PROT_NONE, keep the size-aligned middle."""
    area = p.mmap(0, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
    base = (area + size - 1) & ~(size - 1)
    if base > area:
        p.munmap(area, base - area)
    if area + 2 * size > base + size:
        p.munmap(base + size, area + 2 * size - (base + size))
    return base


def kselftest_load(p, image: EnclaveImage, key, probe: bool = True,
                   source_file: str | None = None) -> LoadedEnclave:
    """The kselftest loader: probe the device mmap (PROT_READ, then PROT_EXEC: fails
    with EPERM on a noexec /dev), reserve an aligned PROT_NONE area, CREATE, ADD_PAGES
    per segment, INIT, then map every segment MAP_SHARED|MAP_FIXED with its prot.

    source_file: as load.c's encl_map_bin(), take the measured segments' contents
    from a PROT_READ, MAP_PRIVATE mapping of the enclave file (written to this path
    with every segment at its enclave offset, as test_encl.elf lays them out); the
    unmeasured heap still comes from anonymous memory. By default every segment is
    copied from an anonymous buffer."""
    dev = SgxDevice(p)
    if probe:
        for prot in (PROT_READ, PROT_EXEC):
            a = p.mmap(0, PAGE_SIZE, prot, MAP_SHARED, dev.fd, 0)
            p.munmap(a, PAGE_SIZE)
    binary = None
    if source_file is not None:
        blob = bytearray(max(seg.end for seg in image.segments))
        for seg in image.segments:
            blob[seg.offset:seg.end] = seg.data
        p.kernel.fs.create(source_file, bytes(blob))
        bfd = p.open(source_file, O_RDONLY)
        binary = p.mmap(0, len(blob), PROT_READ, MAP_PRIVATE, bfd, 0)
        p.close(bfd)
    base = reserve_aligned(p, image.size)
    dev.create(image.secs(base))
    enclave = LoadedEnclave(dev, base, image.size, image)
    for seg in image.segments:
        if binary is not None and seg.measured:
            dev.add_pages(binary + seg.offset, seg.offset, seg.size, seg.secinfo_flags,
                          seg.measured)
            continue
        src = p.mmap(0, seg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        p.write(src, seg.data)
        dev.add_pages(src, seg.offset, seg.size, seg.secinfo_flags, seg.measured)
        p.munmap(src, seg.size)
    dev.init(image.sigstruct(key))
    for seg in image.segments:
        addr = base + seg.offset
        p.mmap(addr, seg.size, seg.prot, MAP_SHARED | MAP_FIXED, dev.fd, 0)
        enclave.segments.append((addr, seg.size, seg.prot, seg))
    return enclave


# --- helpers shared by the real loaders ----------------------------------------------

def _add_pages_loop(dev: SgxDevice, src: int, offset: int, length: int, secinfo_flags: int,
                    measure: bool, advance_src: bool = True,
                    retry=(EINTR,)) -> None:
    """ADD_PAGES until `length` bytes are in, continuing after a short `count` (a
    signal after the first page) and retrying the errnos in `retry`. advance_src=False
    keeps one source page for every page (Gramine's shared zero buffer)."""
    while length:
        try:
            added = dev.add_pages(src, offset, length, secinfo_flags, measure)
        except OSError as exc:
            if exc.errno not in retry:
                raise
            assert dev.last is not None         # the ioctl wrote its struct back
            added = dev.last[5]
        offset += added
        if advance_src:
            src += added
        length -= added


def _copy_in(p, data: bytes, prot: int = PROT_READ | PROT_WRITE) -> int:
    """An anonymous, page-aligned buffer holding data (a loader's malloc'd copy)."""
    src = p.mmap(0, len(data), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(src, data)
    if prot != PROT_READ | PROT_WRITE:
        p.mprotect(src, len(data), prot)
    return src


def _map_prot(seg: Segment) -> int:
    """The prot loaders map a segment with: the SECINFO permissions, TCS -> RW."""
    return PROT_READ | PROT_WRITE if seg.is_tcs else seg.prot


# --- Gramine (spec §5.b) ----------------------------------------------------------------

#: Gramine's own MMAP_MIN_ADDR (pal_linux_defs.h): the lowest address it maps.
GRAMINE_MMAP_MIN_ADDR = 0x10000


def gramine_load(p, image: EnclaveImage, key=None, sigstruct: bytes | None = None,
                 base: int | None = None) -> LoadedEnclave:
    """Gramine's linux-sgx PAL (gramineproject/gramine pal/src/host/linux-sgx/
    host_main.c initialize_enclave, host_framework.c open_sgx_driver / create_enclave
    / add_pages_to_enclave / init_enclave; spec/sgx-driver.md §5.b):

    1. open("/dev/sgx_enclave", O_RDWR|O_CLOEXEC) (then "/dev/sgx/enclave").
    2. The SIGSTRUCT (the app's .sig, 1808 bytes; signed here with `key` unless given)
       supplies SECS.MISCSELECT, ATTRIBUTES and XFRM; SECS.BASE is `base`, by default
       the enclave size (Gramine's choice for PIE executables; 0 for non-PIE).
    3. Before ECREATE: mmap(max(base, MMAP_MIN_ADDR), size - clip,
       PROT_READ|PROT_WRITE|PROT_EXEC, MAP_FIXED_NOREPLACE|MAP_SHARED, fd, 0): the whole
       ELRANGE from the device, RWX (EPERM on a noexec /dev).
    4. SGX_IOC_ENCLAVE_CREATE.
    5-6. Per area (here: per image segment, in the image's order, which is the order
       Gramine's signer measured them in): ADD_PAGES in a loop on `count`, retrying
       EINTR, zero areas from one shared read-only zero buffer whose address is not
       advanced; then mmap(area, size, prot, MAP_FIXED|MAP_SHARED, fd, 0) over the
       RWX mapping with the area's prot (TCS: RW) -- before EINIT.
    7. SGX_IOC_ENCLAVE_INIT; munmap the zero buffer.
    ELRANGE pages no area covers keep the initial RWX mapping (EAUG-able with EDMM).
    """
    try:
        dev = SgxDevice(p, "/dev/sgx_enclave", O_RDWR | O_CLOEXEC)
    except FileNotFoundError:
        dev = SgxDevice(p, "/dev/sgx/enclave", O_RDWR | O_CLOEXEC)
    if sigstruct is None:
        sigstruct = image.sigstruct(key)
    sig = Sigstruct.unpack(sigstruct)
    if base is None:
        base = image.size
    secs = bytearray(image.secs(base))
    secs[20:24] = sig.miscselect.to_bytes(4, "little")
    secs[48:56] = sig.attributes.to_bytes(8, "little")
    secs[56:64] = sig.xfrm.to_bytes(8, "little")
    map_addr, map_size = base, image.size
    if map_addr < GRAMINE_MMAP_MIN_ADDR:
        map_size -= GRAMINE_MMAP_MIN_ADDR - map_addr
        map_addr = GRAMINE_MMAP_MIN_ADDR
    p.mmap(map_addr, map_size, PROT_READ | PROT_WRITE | PROT_EXEC,
           MAP_FIXED_NOREPLACE | MAP_SHARED, dev.fd, 0)
    dev.create(bytes(secs))
    enclave = LoadedEnclave(dev, base, image.size, image, sigstruct=sigstruct)
    zero_pages, zero_size = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), \
        PAGE_SIZE
    for seg in image.segments:
        addr = base + seg.offset
        if any(seg.data):
            src = _copy_in(p, seg.data)
            _add_pages_loop(dev, src, seg.offset, seg.size, seg.secinfo_flags,
                            seg.measured)
            p.munmap(src, seg.size)
        else:
            if zero_size < seg.size:
                p.munmap(zero_pages, zero_size)
                zero_pages = p.mmap(0, seg.size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
                zero_size = seg.size
            _add_pages_loop(dev, zero_pages, seg.offset, seg.size, seg.secinfo_flags,
                            seg.measured, advance_src=False)
        prot = _map_prot(seg)
        p.mmap(addr, seg.size, prot, MAP_FIXED | MAP_SHARED, dev.fd, 0)
        enclave.segments.append((addr, seg.size, prot, seg))
    dev.init(sigstruct)
    p.munmap(zero_pages, zero_size)
    return enclave


# --- Intel SGX SDK / PSW (spec §5.c) ----------------------------------------------------

def sdk_load(p, image: EnclaveImage, key=None, sigstruct: bytes | None = None,
             provision: bool = True, relro: tuple = ()) -> LoadedEnclave:
    """The Intel SGX PSW's in-kernel-driver path (intel/linux-sgx
    psw/enclave_common/sgx_enclave_common.cpp enclave_create_ex / enclave_load_data /
    enclave_initialize, psw/urts/loader.cpp CLoader::set_memory_protection; also what
    Open Enclave and Occlum run; spec/sgx-driver.md §5.c):

    1. open a new fd for this enclave: "/dev/sgx_enclave" (then "/dev/sgx/enclave").
    2. mmap(NULL, 2*size, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS), align to size, munmap
       head and tail.
    3. SGX_IOC_ENCLAVE_CREATE (secs.base = the aligned address).
    4. If the SECS asks for PROVISIONKEY (and `provision`): open "/dev/sgx/provision"
       or "/dev/sgx_provision" and SGX_IOC_ENCLAVE_PROVISION; a failure is only
       logged (INIT then fails with EACCES).
    5. enclave_load_data per region: ADD_PAGES (MEASURE unless unvalidated) in a loop
       on `count`, tolerating EBUSY/EAGAIN; data from an aligned copy (zero-filled
       when there is no source).
    6. Contiguous regions with the same prot are coalesced; when a region ends it is
       mmap(region, len, prot, MAP_SHARED|MAP_FIXED, fd, 0) with the SECINFO perms
       (TCS -> RW), replacing the reservation -- before EINIT.
    7. enclave_initialize: map the last pending region, SGX_IOC_ENCLAVE_INIT.
    8. urts after EINIT: mprotect every segment to its prot (segments named in
       `relro`, PT_GNU_RELRO-like, to PROT_READ) and the ELRANGE gaps to PROT_NONE:
       these only ever lower permissions.
    """
    def open_first(paths, flags):
        for i, path in enumerate(paths):
            try:
                return p.open(path, flags)
            except FileNotFoundError:
                if i == len(paths) - 1:
                    raise
    try:
        dev = SgxDevice(p, "/dev/sgx_enclave")
    except FileNotFoundError:
        dev = SgxDevice(p, "/dev/sgx/enclave")
    if sigstruct is None:
        sigstruct = image.sigstruct(key)
    base = reserve_aligned(p, image.size)
    try:
        dev.create(image.secs(base))
    except OSError:
        p.munmap(base, image.size)
        p.close(dev.fd)
        raise
    enclave = LoadedEnclave(dev, base, image.size, image, sigstruct=sigstruct)
    if provision and image.attributes & SGX_ATTR_PROVISIONKEY:
        try:
            pfd = open_first(("/dev/sgx/provision", "/dev/sgx_provision"), O_RDWR)
            dev.provision(pfd)
        except OSError:
            pass                    # "failure only logged"
    pending = None                  # [addr, length, prot]
    for seg in image.segments:
        addr = base + seg.offset
        src = _copy_in(p, seg.data)
        _add_pages_loop(dev, src, seg.offset, seg.size, seg.secinfo_flags, seg.measured,
                        retry=(EBUSY, EAGAIN))
        p.munmap(src, seg.size)
        prot = _map_prot(seg)
        if pending is not None and pending[0] + pending[1] == addr and pending[2] == prot:
            pending[1] += seg.size
        else:
            if pending is not None:
                p.mmap(pending[0], pending[1], pending[2], MAP_SHARED | MAP_FIXED, dev.fd, 0)
            pending = [addr, seg.size, prot]
        enclave.segments.append((addr, seg.size, prot, seg))
    if pending is not None:
        p.mmap(pending[0], pending[1], pending[2], MAP_SHARED | MAP_FIXED, dev.fd, 0)
    dev.init(sigstruct)
    covered = base
    for addr, length, prot, seg in sorted(enclave.segments, key=lambda s: s[0]):
        if addr > covered:
            p.mprotect(covered, addr - covered, PROT_NONE)
        p.mprotect(addr, length, PROT_READ if seg.name in relro else prot)
        covered = max(covered, addr + length)
    if covered < base + image.size:
        p.mprotect(covered, base + image.size - covered, PROT_NONE)
    return enclave


# --- enarx (spec §5.d) --------------------------------------------------------------------

def enarx_load(p, image: EnclaveImage, key=None) -> LoadedEnclave:
    """enarx's SGX backend (enarx/enarx src/backend/sgx/enclave/builder.rs with the
    `sgx` crate's Hasher and signer; spec/sgx-driver.md §5.d):

    1. mmap(NULL, 2*size, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS), split to align, keep
       the aligned part.
    2. open("/dev/sgx_enclave", O_RDWR); SGX_IOC_ENCLAVE_CREATE.
    3. Per region one SGX_IOC_ENCLAVE_ADD_PAGES (no loop on `count`), hashing the same
       pages in parallel (the Hasher), remembering (span, SECINFO).
    4. Sign the hash with a freshly generated RSA-3072 e=3 key (`key` unless given: so
       MRSIGNER differs on every run); SGX_IOC_ENCLAVE_INIT.
    5. Sorted by address, mmap(span, prot, MAP_SHARED|MAP_FIXED, fd, 0) with the
       SECINFO perms (TCS -> RW), after EINIT.
    """
    base = reserve_aligned(p, image.size)
    dev = SgxDevice(p, "/dev/sgx_enclave", O_RDWR)
    dev.create(image.secs(base))
    hasher = Measurement(image.size, image.ssa_frame_size)
    spans = []
    for seg in image.segments:
        src = _copy_in(p, seg.data)
        dev.add_pages(src, seg.offset, seg.size, seg.secinfo_flags, seg.measured)
        p.munmap(src, seg.size)
        for off, page in seg.page_data():
            hasher.add_page(off, tcs_after_eadd(page) if seg.is_tcs else page,
                            seg.secinfo_flags, seg.measured)
        spans.append((base + seg.offset, seg.size, _map_prot(seg), seg))
    if key is None:
        key = signing.generate_key()
    unsigned = signing.build(
        hasher.digest(), attributes=image.attributes, xfrm=image.xfrm,
        attributes_mask=image.attributes_mask, xfrm_mask=image.xfrm_mask,
        miscselect=image.miscselect, misc_mask=image.misc_mask,
        isvprodid=image.isvprodid, isvsvn=image.isvsvn, vendor=image.vendor, date=image.date)
    sigstruct = signing.sign(unsigned, key).pack()
    dev.init(sigstruct)
    enclave = LoadedEnclave(dev, base, image.size, image, sigstruct=sigstruct)
    for addr, length, prot, seg in sorted(spans, key=lambda s: s[0]):
        p.mmap(addr, length, prot, MAP_SHARED | MAP_FIXED, dev.fd, 0)
        enclave.segments.append((addr, length, prot, seg))
    return enclave
