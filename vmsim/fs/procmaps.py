"""Reading a real /proc/PID/maps (and optionally smaps) dump, to start a model process
from the address space a real process had: `Kernel.spawn(maps=text, smaps=text)`.

Each line becomes a VMA with the same range, permissions, offset and name. Files are
recreated in the VFS by path (sized to cover what is mapped, one `struct file` per path,
as ld.so maps a library's segments through one fd), `(deleted)` files are unlinked,
`[heap]` sets the brk range and `[stack]` the stack. The flags the maps line cannot show
(VM_MAY*, VM_ACCOUNT, VM_GROWSDOWN, ...) are taken from smaps `VmFlags` when given, and
otherwise derived as the kernel would have set them for an ordinary mapping of that kind.

`mirror_host_file()` brings a file of this machine into the model with its contents and
identity (execve uses it for the binaries it runs).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass

from ..errors import EINVAL, EISDIR, ENOENT, kerr
from ..mm.fault import FILE_VM_OPS
from ..mm.flags import (
    MNEMONICS,
    VM_ACCOUNT,
    VM_DONTDUMP,
    VM_DONTEXPAND,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_IO,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from ..mm.vma import AnonVma, Vma, VmOperations
from ..uapi import PAGE_SHIFT, PAGE_SIZE, PATH_MAX
from .file import FMODE_READ, FMODE_WRITE, S_IFDIR, S_IFREG, File, Inode

LINE = re.compile(r"^([0-9a-f]{1,17})-([0-9a-f]{1,17}) ([r-])([w-])([x-])([sp]) ([0-9a-f]{1,17}) "
                  r"([0-9a-f]{1,8}):([0-9a-f]{1,8}) ([0-9]{1,20})(?: (.*))?$")
#: smaps `Anonymous:    12 kB`
ANONYMOUS = re.compile(r"^Anonymous:\s+([0-9]{1,20}) kB\s*$")
#: the end of the address space: no range may pass it
ADDRESS_LIMIT = 1 << 64
SPECIAL = ("[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[uprobes]")


class MapsError(ValueError):
    """A malformed maps/smaps dump: `str()` is "file:line: reason"."""

    def __init__(self, reason: str, path: str | None, line: int):
        super().__init__(reason)
        self.reason, self.path, self.line = reason, path or "<maps>", line

    def __str__(self):
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class MapsLine:
    start: int
    end: int
    perms: str
    offset: int
    dev: tuple
    inode: int
    name: str
    lineno: int
    vmflags: int | None = None
    anonymous_kb: int = 0


def parse_maps(text: str, path: str | None = None) -> list[MapsLine]:
    """Parse maps text; raises MapsError naming the line."""
    out = []
    prev_end = 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        m = LINE.match(raw)
        if m is None:
            raise MapsError("not a /proc/PID/maps line", path, n)
        start, end, offset = int(m[1], 16), int(m[2], 16), int(m[7], 16)
        if start >= end or start % PAGE_SIZE or end % PAGE_SIZE:
            raise MapsError(f"bad range {m[1]}-{m[2]}", path, n)
        if end > ADDRESS_LIMIT:
            raise MapsError(f"bad range {m[1]}-{m[2]}: past the 64-bit address "
                            "space", path, n)
        if offset >= ADDRESS_LIMIT:
            raise MapsError(f"bad offset {m[7]}: past 64 bits", path, n)
        if start < prev_end:
            raise MapsError("ranges overlap or are out of order", path, n)
        prev_end = end
        name = (m[11] or "").strip()
        if len(name.encode("utf-8", "surrogateescape")) >= PATH_MAX:
            raise MapsError(f"a name longer than PATH_MAX ({PATH_MAX}) allows", path, n)
        out.append(MapsLine(start, end, m[3] + m[4] + m[5] + m[6], offset,
                            (int(m[8], 16), int(m[9], 16)), int(m[10]), name, n))
    return out


def parse_smaps_into(lines: list[MapsLine], text: str, path: str | None = None) -> None:
    """Attach each smaps block's VmFlags and Anonymous to the matching maps line."""
    by_start = {ln.start: ln for ln in lines}
    names = {name: bit for bit, name in MNEMONICS}
    current = None
    for n, raw in enumerate(text.splitlines(), 1):
        m = LINE.match(raw)
        if m is not None:
            current = by_start.get(int(m[1], 16))
            continue
        if current is None:
            continue
        if raw.startswith("VmFlags:"):
            flags = 0
            for word in raw.split()[1:]:
                if word not in names:
                    raise MapsError(f"unknown VmFlags mnemonic {word[:20]!r}", path, n)
                flags |= names[word]
            current.vmflags = flags
        elif raw.startswith("Anonymous:"):
            anonymous = ANONYMOUS.match(raw)
            if anonymous is None:
                raise MapsError("expected `Anonymous: N kB`", path, n)
            current.anonymous_kb = int(anonymous[1])


class SpecialMappingOps(VmOperations):
    """mm/mmap.c special_mapping_vmops ([vdso], [vvar]): named, never split."""

    def __init__(self, name: str):
        self._name = name

    def name(self, vma):
        return self._name

    def may_split(self, vma, addr):
        raise kerr(EINVAL)


def default_flags(ln: MapsLine) -> int:
    """The vm_flags an ordinary mapping with this maps line would have."""
    r, w, x, s = tuple(ln.perms)
    flags = (VM_READ if r == "r" else 0) | (VM_WRITE if w == "w" else 0) | \
        (VM_EXEC if x == "x" else 0) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    if ln.name in ("[vvar]", "[vvar_vclock]"):
        return (flags & ~(VM_MAYWRITE | VM_MAYEXEC)) | VM_IO | VM_PFNMAP | VM_DONTEXPAND | \
            VM_DONTDUMP
    if ln.name == "[vdso]":
        return flags | VM_DONTEXPAND
    if s == "s":
        flags |= VM_MAYSHARE | (VM_SHARED if w == "w" else 0)
    elif w == "w":
        flags |= VM_ACCOUNT
    if ln.name == "[stack]":
        flags |= VM_GROWSDOWN | VM_ACCOUNT
    return flags


def populate(process, lines: list[MapsLine], path: str | None = None) -> None:
    """Create the VMAs of `lines` in an empty process (an execve-like setup); MapsError
    naming `path` (the dump) and the line for one the process cannot have: above
    TASK_SIZE, or a file the model cannot recreate.

    mmap_base becomes the end of the highest mapping below [stack] (where the first
    top-down mapping of the exec, ld.so, ended), since the dump's layout may have
    been randomised."""
    kernel, mm = process.kernel, process.mm
    for ln in lines:
        if ln.end > kernel.task_size and ln.name != "[vsyscall]":
            raise MapsError(f"range {ln.start:x}-{ln.end:x} ends above TASK_SIZE "
                            f"{kernel.task_size:x}", path, ln.lineno)
    stack = [ln for ln in lines if ln.name == "[stack]"]
    below = [ln.end for ln in lines if stack and ln.end <= stack[0].start]
    if below and max(below) > kernel.task_size // 3:
        mm.mmap_base = max(below)
    files: dict[tuple[str, bool], File] = {}
    for ln in lines:
        if ln.name == "[vsyscall]":
            continue
        flags = ln.vmflags if ln.vmflags is not None else default_flags(ln)
        vma = Vma(mm, ln.start, ln.end, flags, ln.start >> PAGE_SHIFT)
        name = ln.name
        if name in SPECIAL:
            vma.vm_ops = SpecialMappingOps(name)
        elif name == "[heap]":
            mm.start_brk, mm.brk = ln.start, ln.end
        elif name == "[stack]":
            mm.start_stack = ln.end - PAGE_SIZE
        elif name.startswith("/"):
            try:
                vma.file = _file_for(kernel, files, ln).get()
            except OSError as exc:
                raise MapsError(f"cannot recreate {name[:60]!r} in the model: "
                                f"{exc.strerror}", path, ln.lineno) from None
            vma.pgoff = ln.offset >> PAGE_SHIFT
            vma.vm_ops = None if _anonymous_dev_zero(ln) else FILE_VM_OPS
        if ln.anonymous_kb:
            vma.anon_vma = AnonVma()
            vma.avc = (vma.anon_vma,)
        mm.insert_vm_struct(vma)


def _anonymous_dev_zero(ln: MapsLine) -> bool:
    return ln.name == "/dev/zero" and ln.perms[3] == "p"


def _file_for(kernel, files: dict, ln: MapsLine):
    """One struct file per path, the file recreated (or grown) to cover the mapping."""
    deleted = ln.name.endswith(" (deleted)")
    path = ln.name[:-len(" (deleted)")] if deleted else ln.name
    key = (path, deleted)
    if key in files:
        file = files[key]
    else:
        fs = kernel.fs
        if path == "/dev/zero" and deleted:
            file = fs.shmem_file(0)
        else:
            try:
                inode = fs.lookup(path)
            except OSError:
                _mkdirs(fs, path)
                inode = fs.create(path)
                inode.dev, inode.ino = ln.dev, ln.inode     # as the dump printed them
            if inode.kind == S_IFDIR:
                raise kerr(EISDIR)
            file = File(inode, FMODE_READ | FMODE_WRITE, 0o2)
            if deleted:
                fs.unlink(path)
        files[key] = file
    need = ln.offset + (ln.end - ln.start)
    if file.inode.kind == S_IFREG and file.inode.size < need:
        file.inode.size = need
    return file


def _mkdirs(fs, path: str) -> None:
    """Create the directories above `path` that are missing (none, mostly: one lookup)."""
    try:
        fs.lookup(posixpath.dirname(path) or "/")
        return
    except OSError:
        pass
    parts = path.strip("/").split("/")[:-1]
    cur = ""
    for part in parts:
        cur += "/" + part
        try:
            fs.lookup(cur)
        except OSError:
            _host_identity(fs.mkdir(cur), cur)


def _host_identity(inode: Inode, path: str) -> Inode:
    """Give the model's copy of a host file or directory the host's device and inode
    number (a directory the host lacks keeps the model's)."""
    try:
        st = os.stat(path)
    except OSError:
        return inode
    inode.dev, inode.ino = (os.major(st.st_dev), os.minor(st.st_dev)), st.st_ino
    return inode


def mirror_host_file(fs, path: str) -> Inode:
    """The model's copy of the host's file at `path`, made on first use: at the host's
    resolved path (symlinks followed, as d_path() prints it), with the host file's
    bytes, permission bits, device and inode number (so maps lines show the host's
    identity), its parent directories created. A host directory becomes a model
    directory; a host path that is neither is ENOENT (the errno of the host's lookup
    when it fails: ENOENT, ENOTDIR). Cost: O(file size) the first time."""
    real = os.path.realpath(path)
    try:
        return fs.lookup(real)
    except FileNotFoundError:
        pass
    try:
        st = os.stat(real)
    except OSError as err:
        raise kerr(err.errno or ENOENT) from None
    if not stat.S_ISDIR(st.st_mode) and not stat.S_ISREG(st.st_mode):
        raise kerr(ENOENT)
    _mkdirs(fs, real)
    if stat.S_ISDIR(st.st_mode):
        inode = fs.mkdir(real)
        inode.mode = stat.S_IMODE(st.st_mode)
        return _host_identity(inode, real)
    with open(real, "rb") as host:
        inode = fs.create(real, host.read(), stat.S_IMODE(st.st_mode))
    return _host_identity(inode, real)
