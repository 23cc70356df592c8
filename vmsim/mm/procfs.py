"""/proc/PID/maps and /proc/PID/smaps: fs/proc/task_mmu.c show_map_vma(),
show_vma_header_prefix(), get_vma_name(), show_smap() and show_smap_vma_flags().
"""

from __future__ import annotations

from ..uapi import PAGE_SHIFT, PAGE_SIZE
from .flags import VM_HUGEPAGE, VM_LOCKED, VM_MAYSHARE, VM_NOHUGEPAGE, vma_pkey, vmflags_mnemonics
from .hooks import vm_name, vm_pagesize

#: the x86_64 gate VMA (arch/x86/entry/vsyscall), printed last
VSYSCALL_LINE = ("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0"
                 + " " * 18 + "[vsyscall]\n")
NAME_COLUMN = 73        # seq_setwidth(25 + 6 * sizeof(void *) - 1) then one space


#: the four perms characters by (flags & (VM_READ|VM_WRITE|VM_EXEC)) | (VM_MAYSHARE >> 4)
_PERMS = tuple(("r" if i & 1 else "-") + ("w" if i & 2 else "-") + ("x" if i & 4 else "-")
               + ("s" if i & 8 else "p") for i in range(16))


def perms(flags: int) -> str:
    """r/w/x from VM_READ/VM_WRITE/VM_EXEC; s if VM_MAYSHARE else p."""
    return _PERMS[(flags & 7) | ((flags & VM_MAYSHARE) >> 4)]


def vma_name(vma) -> str | None:
    """get_vma_name(): the file path, the driver's name, [heap], [stack] or None."""
    if vma.file is not None:
        return vma.file.display_path().replace("\n", "\\012")
    ops = vma.vm_ops
    if ops is not None and ops.name is not None:
        return vm_name(vma)
    mm = vma.mm
    if vma.start < mm.brk and vma.end > mm.start_brk:
        return "[heap]"
    if mm.start_stack and vma.start <= mm.start_stack <= vma.end:
        return "[stack]"
    return None


def header(vma) -> str:
    """show_vma_header_prefix() plus the name, without the newline."""
    flags = vma.flags
    p = _PERMS[(flags & 7) | ((flags & VM_MAYSHARE) >> 4)]
    file = vma.file
    if file is None:
        line = f"{vma.start:08x}-{vma.end:08x} {p} 00000000 00:00 0 "
    else:
        inode = file.inode
        major, minor = inode.dev
        line = (f"{vma.start:08x}-{vma.end:08x} {p} {vma.pgoff << PAGE_SHIFT:08x} "
                f"{major:02x}:{minor:02x} {inode.ino} ")
    name = vma_name(vma)
    if name is None:
        return line
    return f"{line:<{NAME_COLUMN - 1}} {name}"


def show_maps(mm) -> str:
    """The text of /proc/PID/maps. O(n)."""
    mm.mmap_lock("show_map")
    return "\n".join([header(v) for v in mm.tree] + [VSYSCALL_LINE])


def _kb(name: str, value_bytes: int) -> str:
    return f"{name + ':':<16}{value_bytes >> 10:>8} kB\n"


SMAPS_COUNTERS = ("Rss", "Pss", "Pss_Dirty", "Shared_Clean", "Shared_Dirty", "Private_Clean",
                  "Private_Dirty", "Referenced", "Anonymous", "KSM", "LazyFree",
                  "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb",
                  "Private_Hugetlb", "Swap", "SwapPss", "Locked")


def smaps_counts(mm, vma) -> dict:
    """The page counters of one VMA (bytes)."""
    anon = mm.present_in(vma.start, vma.end, mm.anon_pages)
    files = mm.present_in(vma.start, vma.end, mm.file_ptes)
    dirty_files = sum(1 for v in files if mm.file_ptes[v])
    anon_b = len(anon) * PAGE_SIZE
    rss = anon_b + len(files) * PAGE_SIZE
    dirty = anon_b + dirty_files * PAGE_SIZE
    return dict(rss=rss, dirty=dirty, clean=rss - dirty, anonymous=anon_b,
                locked=rss if vma.flags & VM_LOCKED else 0)


def show_smap(mm, vma, pkeys: bool) -> str:
    c = smaps_counts(mm, vma)
    pagesize = vm_pagesize(vma)
    out = [header(vma) + "\n",
           _kb("Size", vma.end - vma.start), _kb("KernelPageSize", pagesize),
           _kb("MMUPageSize", pagesize), _kb("Rss", c["rss"]), _kb("Pss", c["rss"]),
           _kb("Pss_Dirty", c["dirty"]), _kb("Shared_Clean", 0),
           _kb("Shared_Dirty", 0), _kb("Private_Clean", c["clean"]),
           _kb("Private_Dirty", c["dirty"]), _kb("Referenced", c["rss"]),
           _kb("Anonymous", c["anonymous"]), _kb("KSM", 0), _kb("LazyFree", 0),
           _kb("AnonHugePages", 0), _kb("ShmemPmdMapped", 0), _kb("FilePmdMapped", 0),
           _kb("Shared_Hugetlb", 0), _kb("Private_Hugetlb", 0), _kb("Swap", 0),
           _kb("SwapPss", 0), _kb("Locked", c["locked"]),
           f"{'THPeligible:':<16}{1 if thp_eligible(vma) else 0:>8}\n"]
    if pkeys:
        out.append(f"ProtectionKey:  {vma_pkey(vma.flags):>8}\n")
    out.append("VmFlags: " + "".join(m + " " for m in vmflags_mnemonics(vma.flags)) + "\n")
    return "".join(out)


def thp_eligible(vma) -> bool:
    """An anonymous VMA holding an aligned 2 MiB, allowed by the THP mode: "always"
    unless VM_NOHUGEPAGE, "madvise" only with VM_HUGEPAGE, "never" not at all."""
    mode = vma.mm.kernel.thp
    if not vma.is_anonymous() or mode == "never" or vma.flags & VM_NOHUGEPAGE:
        return False
    if mode == "madvise" and not vma.flags & VM_HUGEPAGE:
        return False
    lo = (vma.start + (1 << 21) - 1) & ~((1 << 21) - 1)
    return lo + (1 << 21) <= vma.end


def show_smaps(mm, pkeys: bool) -> str:
    """The text of /proc/PID/smaps, ending with the [vsyscall] gate VMA. O(n)."""
    mm.mmap_lock("show_smap")
    gate = [VSYSCALL_LINE, _kb("Size", PAGE_SIZE), _kb("KernelPageSize", PAGE_SIZE),
            _kb("MMUPageSize", PAGE_SIZE)]
    gate += [_kb(name, 0) for name in SMAPS_COUNTERS]
    gate.append(f"{'THPeligible:':<16}{0:>8}\n")
    if pkeys:
        gate.append(f"ProtectionKey:  {0:>8}\n")
    gate.append("VmFlags: ex \n")
    return "".join(show_smap(mm, v, pkeys) for v in mm.tree) + "".join(gate)
