"""User-space side of SGX: what an enclave loader does with the driver, as calls on a
vmsim Process — the ioctl wrappers (arguments marshalled into the process's own memory,
as a C loader passes pointers) and the kselftest loader (tools/testing/selftests/sgx/
load.c + main.c, spec/sgx-driver.md §5.a).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ...uapi import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, O_RDWR, PAGE_SIZE,
                     PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE)
from . import uapi
from .image import EnclaveImage


class Scratch:
    """A private anonymous buffer in the process for ioctl arguments (a C loader's
    stack and heap): `put(bytes) -> address`."""

    def __init__(self, p, size: int = 16 * PAGE_SIZE):
        self.p = p
        self.size = size
        self.base = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        self.next = 0

    def put(self, data: bytes, align: int = 64) -> int:
        self.next = (self.next + align - 1) & ~(align - 1)
        if self.next + len(data) > self.size:
            self.next = 0
        addr = self.base + self.next
        self.p.write(addr, data)
        self.next += len(data)
        return addr


class SgxDevice:
    """An open /dev/sgx_enclave and the seven ioctls, each returning the written-back
    struct fields (a failing ioctl raises OSError; `last` keeps what the driver wrote
    back, e.g. `count` of a partial ADD_PAGES)."""

    def __init__(self, p, path: str = "/dev/sgx_enclave", flags: int = O_RDWR):
        self.p = p
        self.fd = p.open(path, flags)
        self.scratch = Scratch(p)
        self.last = None

    def _ioctl(self, cmd: int, fmt: struct.Struct, *fields) -> tuple:
        arg = self.scratch.put(fmt.pack(*fields))
        try:
            self.p.ioctl(self.fd, cmd, arg)
        finally:
            self.last = fmt.unpack(self.p.read(arg, fmt.size))
        return self.last

    def create(self, secs: bytes) -> None:
        self._ioctl(uapi.SGX_IOC_ENCLAVE_CREATE, uapi.CREATE, self.scratch.put(secs, 4096))

    def add_pages(self, src: int, offset: int, length: int, secinfo_flags: int,
                  measure: bool = True) -> int:
        secinfo = self.scratch.put(struct.pack("<Q", secinfo_flags) + bytes(56))
        flags = uapi.SGX_PAGE_MEASURE if measure else 0
        return self._ioctl(uapi.SGX_IOC_ENCLAVE_ADD_PAGES, uapi.ADD_PAGES, src, offset,
                           length, secinfo, flags, 0)[5]

    def init(self, sigstruct: bytes) -> None:
        self._ioctl(uapi.SGX_IOC_ENCLAVE_INIT, uapi.INIT, self.scratch.put(sigstruct, 4096))

    def provision(self, fd: int) -> None:
        self._ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, uapi.PROVISION, fd)

    def restrict_permissions(self, offset: int, length: int, perms: int) -> tuple:
        return self._ioctl(uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
                           uapi.RESTRICT_PERMISSIONS, offset, length, perms, 0, 0)

    def modify_types(self, offset: int, length: int, page_type: int) -> tuple:
        return self._ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, uapi.MODIFY_TYPES, offset,
                           length, page_type, 0, 0)

    def remove_pages(self, offset: int, length: int) -> tuple:
        return self._ioctl(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, uapi.REMOVE_PAGES, offset,
                           length, 0)


@dataclass
class LoadedEnclave:
    """What a loader leaves behind: the device, the ELRANGE and the segments' places."""

    dev: SgxDevice
    base: int
    size: int
    image: EnclaveImage
    segments: list = field(default_factory=list)    # (addr, length, prot, segment)

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


def kselftest_load(p, image: EnclaveImage, key, probe: bool = True) -> LoadedEnclave:
    """The kselftest loader: probe the device mmap (PROT_READ, then PROT_EXEC: fails
    with EPERM on a noexec /dev), reserve an aligned PROT_NONE area, CREATE, ADD_PAGES
    per segment, INIT, then map every segment MAP_SHARED|MAP_FIXED with its prot."""
    dev = SgxDevice(p)
    if probe:
        for prot in (PROT_READ, PROT_EXEC):
            a = p.mmap(0, PAGE_SIZE, prot, MAP_SHARED, dev.fd, 0)
            p.munmap(a, PAGE_SIZE)
    base = reserve_aligned(p, image.size)
    dev.create(image.secs(base))
    enclave = LoadedEnclave(dev, base, image.size, image)
    for seg in image.segments:
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
