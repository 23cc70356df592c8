"""Building and signing the test enclave, and building its host, with this machine's gcc:
what the Linux SGX kselftest's Makefile (tools/testing/selftests/sgx/Makefile, 6.7+)
and its signer (sigstruct.c) do for test_encl.elf and test_sgx.

The enclave (encl_entry.S, encl_ops.c, linked by encl.lds) is built with the
kselftest's flags: a static PIE, freestanding, without the standard library or stack
protector; and two of ours: general registers only (the enclave never touches the
x87/SSE state, which its host owns) and hidden visibility (no GOT: nothing relocates
the enclave). The host (host_*.c, host_call.S) is an ordinary program built with
-Wall -Werror. Both are cached under vmsim's cache directory ($XDG_CACHE_HOME/vmsim,
as the vDSO image), named by a hash of their inputs and command, so gcc runs once per
change of the sources.

The SIGSTRUCTs are vmsim's own (vmsim.enclave.image, .signing): one per heap size
the host will load the enclave with, since the heap's pages are part of MRENCLAVE,
written to one file the host reads (host_load.c encl_sign()): records of the heap
size (8 bytes, little endian) and the 1808-byte SIGSTRUCT.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from ...arch.x86.entry.vdso.build import cache_dir
from ..image import EnclaveImage

SOURCE_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Program:
    """What gcc builds from this directory: its sources (compiled and linked), every
    file it reads (the cache key covers them), its flags and its cached name."""
    name: str
    sources: tuple[str, ...]
    inputs: tuple[str, ...]
    flags: tuple[str, ...]

    def cache_key(self) -> str:
        h = hashlib.sha256()
        for name in self.inputs:
            h.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
        h.update("\0".join(self.flags).encode())
        return h.hexdigest()[:16]


ENCLAVE = Program(
    name="test_encl.elf",
    sources=("encl_entry.S", "encl_ops.c"),
    inputs=("encl_entry.S", "encl_ops.c", "encl_abi.h", "sgx_arch.h", "encl.lds"),
    flags=("-Wall", "-Werror", "-static-pie", "-nostdlib", "-ffreestanding", "-fPIE",
           "-fno-stack-protector", "-mrdrnd", "-mgeneral-regs-only", "-fvisibility=hidden",
           "-Wl,-T,encl.lds,--build-id=none"),
)
HOST = Program(
    name="sgx_host",
    sources=("host_main.c", "host_scenarios.c", "host_load.c", "host_vdso.c", "host_call.S"),
    inputs=("host_main.c", "host_scenarios.c", "host_load.c", "host_vdso.c", "host_call.S",
            "host.h", "encl_abi.h", "sgx_arch.h"),
    flags=("-Wall", "-Werror", "-O2"),
)
#: the size of one record of the SIGSTRUCT file: the heap size and a SIGSTRUCT
SIGSTRUCT_RECORD = struct.Struct("<Q1808s")


class EnclaveBuildError(RuntimeError):
    """The enclave or its host cannot be built; the message is one line."""


def build(program: Program, cache: Path | None = None) -> Path:
    """The path of `program`, built now unless the cache holds it. Raises
    EnclaveBuildError without gcc, when gcc fails, or when the cache directory cannot
    be written."""
    directory = cache if cache is not None else cache_dir()
    stem, dot, suffix = program.name.partition(".")
    out = directory / f"{stem}-{program.cache_key()}{dot}{suffix}"
    if out.is_file():
        return out
    gcc = shutil.which("gcc")
    if gcc is None:
        raise EnclaveBuildError(f"vmsim: building {program.name} needs gcc, which is not on PATH")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{stem}-", dir=directory)
        os.close(fd)
    except OSError as e:
        raise EnclaveBuildError(f"vmsim: cannot write {program.name} to {directory}: "
                                f"{e.strerror}") from None
    partial = Path(name)
    try:
        r = subprocess.run([gcc, *program.flags, "-o", str(partial), *program.sources],
                           cwd=SOURCE_DIR, capture_output=True, text=True)
        if r.returncode:
            errors = [ln for ln in r.stderr.splitlines() if "error" in ln] or r.stderr.splitlines()
            raise EnclaveBuildError(f"vmsim: building {program.name} failed: "
                                    f"{errors[0] if errors else 'gcc exit status ' + str(r.returncode)}")
        os.chmod(partial, 0o755)
        os.replace(partial, out)        # atomic: parallel builders write the same bytes
    finally:
        partial.unlink(missing_ok=True)
    return out


def enclave_elf(cache: Path | None = None) -> Path:
    """The test enclave, an ELF file laid out as the kselftest's loader expects."""
    return build(ENCLAVE, cache)


def host_program(cache: Path | None = None) -> Path:
    """The host program (its usage: host_main.c)."""
    return build(HOST, cache)


def sigstructs(elf: bytes, key: rsa.RSAPrivateKey, heap_sizes: Iterable[int]) -> bytes:
    """The SIGSTRUCT file for the enclave ELF `elf` loaded with each of `heap_sizes`
    (bytes, multiples of the page size), signed with `key` (RSA-3072, e = 3): the
    SECS and SIGSTRUCT body as the kselftest's loader and signer set them."""
    return b"".join(SIGSTRUCT_RECORD.pack(heap, EnclaveImage.from_elf(elf, heap).sigstruct(key))
                    for heap in heap_sizes)
