"""The bundled demo trace (data/sgx_demo.jsonl): an SGX enclave loader as the kernel
selftest's load.c runs it, recorded on the model, then four calls the driver must
refuse. `python -m vmsim.trace.demo --rebuild` writes it again (a fresh signing key,
so the SIGSTRUCT bytes change; everything else is deterministic).

The loader (vmsim.enclave.loader.kselftest_load):
    open /dev/sgx_enclave; probe mmap PROT_READ and PROT_EXEC; reserve 2*size PROT_NONE
    and trim it to a size-aligned base; SGX_IOC_ENCLAVE_CREATE; per segment an anonymous
    source buffer and SGX_IOC_ENCLAVE_ADD_PAGES; SGX_IOC_ENCLAVE_INIT; map each segment
    MAP_SHARED|MAP_FIXED with its permissions.
Then:
    mprotect(text, RWX)                     EACCES  the text pages were added R-X
    mmap(text, RWX, MAP_SHARED|MAP_FIXED)   EACCES  the same check, from sgx_mmap()
    mmap(base + size, MAP_FIXED)            EACCES  outside ELRANGE after INIT
    mmap(NULL, MAP_PRIVATE)                 EINVAL  enclaves are MAP_SHARED only
    mmap(text, R-X, MAP_SHARED|MAP_FIXED)   ok      the failed MAP_FIXED mmap unmapped it
    mprotect(data, PROT_READ)               0       less than declared is fine
"""

from __future__ import annotations

import os
import sys

from ..arch.x86.sgx.defs import (
    SGX_ATTR_MODE64BIT,
    SGX_SECINFO_R,
    SGX_SECINFO_REG,
    SGX_SECINFO_TCS,
    SGX_SECINFO_W,
    SGX_SECINFO_X,
)
from ..enclave import signing
from ..enclave.image import EnclaveImage
from ..enclave.loader import kselftest_load, unmarshal
from ..enclave.segment import Segment, covering_size, encode_tcs
from ..kernel import Kernel
from ..syscalls.names import errno_name
from ..uapi import (
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    O_RDWR,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
)
from .format import SGX_IOCTL_NAMES, Record, write_trace

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
DEMO_TRACE = "sgx_demo.jsonl"

#: the address space the demo loader starts from: a small PIE and glibc, as this
#: machine's /proc/self/maps shows them under `setarch -R`
START_MAPS = (
    "555555554000-555555556000 r--p 00000000 fe:00 260200                     "
    "/usr/local/bin/encl-loader\n"
    "555555556000-55555555b000 r-xp 00002000 fe:00 260200                     "
    "/usr/local/bin/encl-loader\n"
    "55555555b000-55555555e000 r--p 00007000 fe:00 260200                     "
    "/usr/local/bin/encl-loader\n"
    "55555555e000-55555555f000 r--p 00009000 fe:00 260200                     "
    "/usr/local/bin/encl-loader\n"
    "55555555f000-555555560000 rw-p 0000a000 fe:00 260200                     "
    "/usr/local/bin/encl-loader\n"
    "555555560000-555555581000 rw-p 00000000 00:00 0                          "
    "[heap]\n"
    "7ffff7dd2000-7ffff7dd5000 rw-p 00000000 00:00 0 \n"
    "7ffff7dd5000-7ffff7dfb000 r--p 00000000 fe:00 339380                     "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7ffff7dfb000-7ffff7f51000 r-xp 00026000 fe:00 339380                     "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7ffff7f51000-7ffff7fa4000 r--p 0017c000 fe:00 339380                     "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7ffff7fa4000-7ffff7fa8000 r--p 001cf000 fe:00 339380                     "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7ffff7fa8000-7ffff7faa000 rw-p 001d3000 fe:00 339380                     "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7ffff7faa000-7ffff7fb7000 rw-p 00000000 00:00 0 \n"
    "7ffff7fc2000-7ffff7fc6000 r--p 00000000 00:00 0                          "
    "[vvar]\n"
    "7ffff7fc6000-7ffff7fc8000 r--p 00000000 00:00 0                          "
    "[vvar_vclock]\n"
    "7ffff7fc8000-7ffff7fca000 r-xp 00000000 00:00 0                          "
    "[vdso]\n"
    "7ffff7fca000-7ffff7fcb000 r--p 00000000 fe:00 338944                     "
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
    "7ffff7fcb000-7ffff7ff1000 r-xp 00001000 fe:00 338944                     "
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
    "7ffff7ff1000-7ffff7ffb000 r--p 00027000 fe:00 338944                     "
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
    "7ffff7ffb000-7ffff7ffd000 r--p 00031000 fe:00 338944                     "
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
    "7ffff7ffd000-7ffff7fff000 rw-p 00033000 fe:00 338944                     "
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n"
    "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          "
    "[stack]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  "
    "[vsyscall]\n"
)

PID = 4242


def demo_trace_path() -> str:
    return os.path.join(DATA_DIR, DEMO_TRACE)


class Recorder:
    """A model Process whose syscalls are recorded as trace Records (SGX ioctl
    arguments decoded from the process's memory, with the bytes they point to)."""

    CALLS = ("mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "mseal", "open",
             "close", "dup", "ioctl")

    def __init__(self, p, pid: int = PID):
        self._p = p
        self._pid = pid
        self.records: list[Record] = []

    def __getattr__(self, name):
        attr = getattr(self._p, name)
        if name not in self.CALLS:
            return attr

        def call(*args):
            rec = Record(name, list(args) if name != "ioctl" else self._ioctl_args(*args),
                         pid=self._pid)
            if name == "open":
                rec.args = [args[0], args[1] if len(args) > 1 else 0,
                            args[2] if len(args) > 2 else 0]
            if name == "mmap":
                rec.args = list(args) + [-1, 0][len(args) - 4:] if len(args) < 6 \
                    else list(args)
            if name == "mremap":
                rec.args = (list(args) + [0, 0])[:5]
            try:
                r = attr(*args)
            except OSError as exc:
                assert exc.errno is not None        # a syscall's OSError has one
                rec.err = errno_name(exc.errno)
                self._fd_path(rec)
                self.records.append(rec)
                raise
            rec.ret = r if isinstance(r, int) else 0
            self._fd_path(rec)
            self.records.append(rec)
            return r
        return call

    def _fd_path(self, rec: Record) -> None:
        """What strace -y would print for the fd argument."""
        idx = {"mmap": 4, "ioctl": 0, "close": 0, "dup": 0}.get(rec.call or "")
        if idx is None or idx >= len(rec.args):
            return
        file = self._p.files.get(rec.args[idx])
        path = getattr(file, "path", None)
        if path:
            rec.fd_path = path

    def _ioctl_args(self, fd: int, cmd: int, arg: int = 0) -> list:
        return [fd, cmd, unmarshal(self._p, cmd, arg)]


def demo_image():
    """The kselftest's test enclave (two TCS, text R-X, data RW, one heap page)."""
    page = PAGE_SIZE
    tcs = b"".join(encode_tcs(ossa=ssa, nssa=1, oentry=0x2000) for ssa in (0x5000, 0x6000))
    rw = PROT_READ | PROT_WRITE
    segments = [
        Segment(0x0000, tcs, SGX_SECINFO_TCS, rw, True, "tcs"),
        Segment(0x2000, b"\xcc" * page, SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_X,
                PROT_READ | PROT_EXEC, True, "text"),
        Segment(0x3000, b"\x01" + bytes(6 * page - 1),
                SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W, rw, True, "data"),
        Segment(0x9000, bytes(page), SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W, rw,
                False, "heap"),
    ]
    image = EnclaveImage(size=covering_size(segments[-1].end), segments=segments,
                         ssa_frame_size=1, attributes=SGX_ATTR_MODE64BIT, xfrm=3)
    image.validate()
    return image


def build_demo_records(key=None) -> list[Record]:
    """Run the loader and the refused calls on a model process; return the records."""
    k = Kernel()
    p = k.spawn(maps=START_MAPS)
    for _ in range(3):
        p.open("/dev/null", O_RDWR)
    rec = Recorder(p)
    image = demo_image()
    encl = kselftest_load(rec, image, key or signing.generate_key())
    fd, base, size = encl.dev.fd, encl.base, encl.size
    text = base + 0x2000
    rwx = PROT_READ | PROT_WRITE | PROT_EXEC
    attempts = [
        ("mprotect", (text, 4096, rwx)),
        ("mmap", (text, 4096, rwx, MAP_SHARED | MAP_FIXED, fd, 0)),
        ("mmap", (base + size, 4096, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0)),
        ("mmap", (0, 4096, PROT_READ, MAP_PRIVATE, fd, 0)),
        ("mmap", (text, 4096, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED, fd, 0)),
        ("mprotect", (base + 0x3000, 4096, PROT_READ)),
    ]
    for name, args in attempts:
        try:
            getattr(rec, name)(*args)
        except OSError:
            pass
    p.mm.validate()
    _annotate(rec.records, base, size)
    return rec.records


def _annotate(records, base: int, size: int) -> None:
    """Comments a newcomer can read the demo by (shown above the calls)."""
    seen_probe = 0
    first_add = True
    refusals = iter([
        "ask for RWX on the text page, which was added R-X: the ->mprotect hook refuses",
        "the same through mmap: sgx_mmap() checks the page's declared permissions",
        "a page just past the enclave: after INIT nothing outside ELRANGE may be mapped",
        "a private mapping of the device: enclaves are shared memory only",
    ])
    for i, r in enumerate(records):
        if i == 1 and r.call == "mmap" and r.args[4] == -1:
            r.comment = "the loader's buffer for ioctl arguments (a C loader's stack and heap)"
        elif r.call == "open" and r.args[0] == "/dev/sgx_enclave":
            r.comment = "open the SGX device: one enclave per open file"
        elif r.call == "mmap" and r.args[4] != -1 and not r.args[0] and r.err is None \
                and seen_probe < 2:
            seen_probe += 1
            if seen_probe == 1:
                r.comment = ("load.c probes the device mapping (PROT_READ, then PROT_EXEC: "
                             "a noexec /dev fails here); no pages yet, so nothing to check")
        elif r.call == "mmap" and r.args[1] == 2 * size and r.args[2] == 0:
            r.comment = (f"reserve twice the enclave size ({size:#x}) PROT_NONE, then trim "
                         "it to a size-aligned base with two munmaps")
        elif r.call == "ioctl":
            name = SGX_IOCTL_NAMES.get(r.args[1], "")
            if name.endswith("CREATE"):
                r.comment = f"ECREATE: ELRANGE is [{base:#x}, {base + size:#x})"
            elif name.endswith("ADD_PAGES") and first_add:
                first_add = False
                r.comment = ("EADD per segment from an anonymous source buffer; SECINFO R/W/X "
                             "is each page's declared maximum permissions (its intent)")
            elif name.endswith("INIT"):
                r.comment = ("EINIT with the signed SIGSTRUCT: the measurement matches, no pages "
                             "can be added now")
        elif r.call == "mmap" and r.args[0] == base and r.err is None:
            r.comment = "map each segment MAP_SHARED|MAP_FIXED with its permissions"
        elif r.err is not None:
            r.comment = next(refusals, None)
        elif i >= len(records) - 2 and r.call == "mmap":
            r.comment = ("map the text page again: the failed MAP_FIXED mmap above had "
                         "already unmapped it")
        elif i == len(records) - 1:
            r.comment = "less than declared is always fine: the data page becomes read-only"


def rebuild(path: str | None = None) -> str:
    path = path or demo_trace_path()
    records = build_demo_records()
    with open(path, "w", encoding="utf-8") as f:
        write_trace(records, f, maps=START_MAPS,
                    comment="vmsim demo: the SGX kselftest loader (load.c) on the model, "
                    "then four calls the driver must refuse; rebuild with "
                    "`python -m vmsim.trace.demo --rebuild`")
    return path


if __name__ == "__main__":
    if "--rebuild" not in sys.argv[1:]:
        sys.exit("usage: python -m vmsim.trace.demo --rebuild   (the demo itself: vmsim demo)")
    print(rebuild())
