"""Building the vDSO image: what arch/x86/entry/vdso/Makefile and vdso2c do for Linux,
done at first use with this machine's gcc.

The sources beside this file (vclock_gettime.c, vgetcpu.c, vgetrandom.c, vsgx.S,
vdso-note.S, linked by vdso.lds) become one ELF shared object, linux-vdso.so.1, whose
symbols carry the version LINUX_2.6. The result is cached under
$XDG_CACHE_HOME/vmsim (else ~/.cache/vmsim), named by a hash of the sources and the
command, so gcc runs once per change of the sources. Like vdso2c, the build refuses
an image with relocations (nobody relocates the vDSO) or larger than the [vdso] this
kernel maps. docs/vdso.md tells what the image holds and how it differs from Linux's.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from .....uapi import PAGE_SIZE

#: the size of [vdso] on this kernel (vdso64_image.size, observed): the image is padded
#: to exactly this, so that the mappings and what glibc sees agree with the native run
VDSO_IMAGE_SIZE = 2 * PAGE_SIZE
#: KERNEL_VERSION(6, 18, 44), this machine's kernel, in the image's "Linux" note
LINUX_VERSION_CODE = (6 << 16) | (18 << 8) | 44

SOURCE_DIR = Path(__file__).parent
#: what gcc compiles, and what else the build reads (all of it goes into the cache key)
SOURCES = ("vclock_gettime.c", "vgetcpu.c", "vgetrandom.c", "vsgx.S", "vdso-note.S")
INPUTS = (*SOURCES, "vdso_syscall.h", "vdso.lds")
GCC_FLAGS = (
    "-shared", "-nostdlib", "-fPIC", "-O2", "-fno-stack-protector", "-ffreestanding", "-Wall",
    f"-DLINUX_VERSION_CODE={LINUX_VERSION_CODE:#x}",
    "-Wl,-T,vdso.lds", "-Wl,--hash-style=both", "-Wl,-soname=linux-vdso.so.1",
    "-Wl,-Bsymbolic", "-Wl,-z,now", "-Wl,--no-undefined", "-Wl,-z,max-page-size=4096",
    "-Wl,--build-id=sha1", "-Wl,--strip-all",
)

#: Elf64_Ehdr, Elf64_Shdr, Elf64_Sym (little-endian)
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
SHT_RELA, SHT_REL = 4, 9
STT_FUNC = 2
SHN_UNDEF = 0


class VdsoBuildError(RuntimeError):
    """The image cannot be built (no gcc, a failed build, an image Linux would refuse);
    the message is one line."""


class Section:
    """An Elf64_Shdr of the image: its name, type, address (the offset in the mapped
    image: the image is linked at 0) and file extent."""

    def __init__(self, image: bytes, off: int, names_off: int) -> None:
        name, self.type, _, self.addr, self.offset, self.size, *_ = SHDR.unpack_from(image, off)
        end = image.index(b"\0", names_off + name)
        self.name = image[names_off + name:end].decode()

    def data(self, image: bytes) -> bytes:
        return image[self.offset:self.offset + self.size]


def sections(image: bytes) -> dict[str, Section]:
    """The image's sections by name."""
    f = EHDR.unpack_from(image)
    shoff, shentsize, shnum, shstrndx = f[6], f[11], f[12], f[13]
    names = Section(image, shoff + shstrndx * shentsize, 0)
    out = (Section(image, shoff + i * shentsize, names.offset) for i in range(shnum))
    return {s.name: s for s in out}


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/vmsim, or ~/.cache/vmsim."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vmsim"


def cache_key() -> str:
    """A hash of every input file and the command that builds them."""
    h = hashlib.sha256()
    for name in INPUTS:
        h.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    h.update("\0".join(GCC_FLAGS).encode())
    return h.hexdigest()[:16]


def run_gcc(out: Path) -> None:
    """gcc, run in the source directory, writing the shared object to `out`."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise VdsoBuildError("vmsim: building the vDSO image needs gcc, which is not on PATH")
    r = subprocess.run([gcc, *GCC_FLAGS, "-o", str(out), *SOURCES], cwd=SOURCE_DIR,
                       capture_output=True, text=True)
    if r.returncode:
        errors = [ln for ln in r.stderr.splitlines() if "error" in ln] or r.stderr.splitlines()
        raise VdsoBuildError(f"vmsim: building the vDSO image failed: {errors[0] if errors else ''}")


def build_shared_object() -> bytes:
    """The shared object, from the cache or built now (and cached where the cache
    directory is writable)."""
    cached = cache_dir() / f"vdso-{cache_key()}.so"
    if cached.is_file():
        return cached.read_bytes()
    with tempfile.TemporaryDirectory(prefix="vmsim-vdso-") as tmp:
        out = Path(tmp) / "vdso.so"
        run_gcc(out)
        data = out.read_bytes()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, cached)     # atomic: parallel builders write the same bytes
    except OSError:
        pass                            # no writable cache: built again next time
    return data


def check_image(data: bytes) -> None:
    """vdso2c's refusals: no relocation section, and the size the kernel maps."""
    relocs = [s.name for s in sections(data).values() if s.type in (SHT_RELA, SHT_REL) and s.size]
    if relocs:
        raise VdsoBuildError(f"vmsim: the vDSO image has relocations ({', '.join(relocs)})")
    if len(data) > VDSO_IMAGE_SIZE:
        raise VdsoBuildError(f"vmsim: the vDSO image is {len(data)} bytes, more than the "
                             f"{VDSO_IMAGE_SIZE} of [vdso]")


@functools.cache
def vdso_image() -> bytes:
    """The image as [vdso] maps it (vdso64_image.data): the shared object padded with
    zeros to VDSO_IMAGE_SIZE. Raises VdsoBuildError."""
    data = build_shared_object()
    check_image(data)
    return data.ljust(VDSO_IMAGE_SIZE, b"\0")


@functools.cache
def vdso_symbols() -> dict[str, int]:
    """The functions the image exports (the __vdso_* names and their unprefixed weak
    aliases), each with its offset from the start of [vdso]."""
    image = vdso_image()
    secs = sections(image)
    dynsym, dynstr = secs[".dynsym"].data(image), secs[".dynstr"].data(image)
    out = {}
    for name, info, _, shndx, value, _ in SYM.iter_unpack(dynsym):
        if info & 0xF == STT_FUNC and shndx != SHN_UNDEF:
            out[dynstr[name:dynstr.index(b"\0", name)].decode()] = value
    return out


@functools.cache
def vdso_extable() -> tuple[tuple[int, int], ...]:
    """The image's exception table (vdso_image.extable, read by
    arch/x86/entry/vdso/extable.c fixup_vdso_exception()): (instruction, fixup) pairs,
    offsets from the start of [vdso]. An exception at such an instruction that the
    kernel does not fix goes to its fixup with RDI = vector, RSI = error code,
    RDX = address, instead of a signal."""
    image = vdso_image()
    table = sections(image)["__ex_table"]
    fields = struct.unpack_from(f"<{table.size // 4}i", image, table.offset)
    at = [table.addr + 4 * i + rel for i, rel in enumerate(fields)]
    return tuple(zip(at[0::2], at[1::2], strict=True))
