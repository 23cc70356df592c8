"""Page faults and memory access: arch/x86/mm/fault.c do_user_addr_fault(),
mm/memory.c handle_mm_fault() (anonymous, file and COW faults), mm/rmap.c
anon_vma_prepare() and mm/mmap.c expand_downwards() (stack growth).

Pages live in two places: the page cache of a file's inode (shared and file pages)
and the mm's `anon_pages` (anonymous pages and private COW copies), keyed by virtual
page number. A read fault on anonymous memory maps the zero page: no page, no anon_vma.
"""

from __future__ import annotations

from ..errors import EFAULT, EINVAL, Fault, HookContractError, kerr
from ..uapi import (
    BUS_ADRERR,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    RLIMIT_STACK,
    SEGV_ACCERR,
    SEGV_MAPERR,
    SEGV_PKUERR,
    SIGBUS,
    SIGSEGV,
    U64,
)
from .flags import (
    VM_ACCESS_FLAGS,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_IGNORE_MERGE,
    VM_IO,
    VM_LOCKED,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    vma_pkey,
)
from .vma import AnonVma, VmOperations


class FileVmOps(VmOperations):
    """generic_file_vm_ops / shmem_vm_ops: pages come from the inode's page cache;
    a page wholly past EOF is SIGBUS."""

    def fault(self, vma, addr, write):
        inode = vma.file.inode
        index = vma.pgoff_at(addr)
        if index >= -(-inode.size // PAGE_SIZE):
            raise Fault(SIGBUS, BUS_ADRERR, addr)
        return inode.page(index)


FILE_VM_OPS = FileVmOps()


class HugetlbVmOps(VmOperations):
    """hugetlb_vm_ops: splits only at huge-page boundaries; with no huge pages in the
    pool every fault is SIGBUS."""

    def __init__(self, size: int):
        self.size = size

    def may_split(self, vma, addr):
        if addr & (self.size - 1):
            raise kerr(EINVAL)

    def fault(self, vma, addr, write):
        raise Fault(SIGBUS, BUS_ADRERR, addr)

    def pagesize(self, vma) -> int:
        return self.size


_HUGETLB_VM_OPS: dict[int, HugetlbVmOps] = {}


def hugetlb_vm_ops(size: int) -> HugetlbVmOps:
    return _HUGETLB_VM_OPS.setdefault(size, HugetlbVmOps(size))


# --- anon_vma -----------------------------------------------------------------------

def anon_vma_compatible(a, b) -> bool:
    """a, b adjacent (a below b) and alike but for R/W/X: they may share an anon_vma."""
    return (a.end == b.start and a.file is b.file
            and not (a.flags ^ b.flags) & ~(VM_ACCESS_FLAGS | VM_IGNORE_MERGE)
            and b.pgoff == a.pgoff + a.pages)


def find_mergeable_anon_vma(vma):
    """Reuse a neighbour's anon_vma (next first, then prev) if its chain is single."""
    tree = vma.mm.tree
    nxt = tree.next(vma)
    if nxt is not None and anon_vma_compatible(vma, nxt) and nxt.anon_vma is not None \
            and len(nxt.avc) == 1:
        return nxt.anon_vma
    prev = tree.prev(vma)
    if prev is not None and anon_vma_compatible(prev, vma) and prev.anon_vma is not None \
            and len(prev.avc) == 1:
        return prev.anon_vma
    return None


def anon_vma_prepare(vma) -> None:
    """Give `vma` an anon_vma on its first anonymous page (mm/rmap.c)."""
    if vma.anon_vma is None:
        av = find_mergeable_anon_vma(vma) or AnonVma()
        vma.anon_vma = av
        vma.avc = (av,)


# --- finding the VMA, growing stacks --------------------------------------------------

def expand_downwards(task, vma, address: int) -> bool:
    """Grow a VM_GROWSDOWN VMA down to `address` (mm/mmap.c). False if refused."""
    mm, kernel = task.mm, task.kernel
    address &= PAGE_MASK
    if address < kernel.mmap_min_addr:
        return False
    prev = mm.tree.prev(vma)
    if prev is not None and not prev.flags & VM_GROWSDOWN and prev.flags & VM_ACCESS_FLAGS \
            and address - prev.end < kernel.stack_guard_gap:
        return False
    anon_vma_prepare(vma)
    if address >= vma.start:
        return True
    size = vma.end - address
    grow = (vma.start - address) >> PAGE_SHIFT
    if grow > vma.pgoff:
        return False
    if not mm.may_expand_vm(task, vma.flags, grow) or size > task.rlimit(RLIMIT_STACK) or \
            not mm.mlock_future_ok(task, vma.flags, grow << PAGE_SHIFT):
        return False
    try:
        mm.account(grow)        # acct_stack_growth() charges whatever the flags
    except OSError:
        return False
    if vma.flags & VM_LOCKED:
        mm.locked_vm += grow
    mm.vm_stat_account(vma.flags, grow)
    mm.tree.rekey(vma, address)
    vma.pgoff -= grow
    return True


def lock_mm_and_find_vma(task, addr: int):
    """The VMA for a user fault at addr, growing a stack if needed; None: MAPERR."""
    vma = task.mm.tree.find_vma(addr)
    if vma is None:
        return None
    if vma.start <= addr:
        return vma
    if not vma.flags & VM_GROWSDOWN:
        return None
    return vma if expand_downwards(task, vma, addr) else None


def access_error(task, vma, kind: str):
    """arch/x86/mm/fault.c access_error(): None if allowed, else the si_code."""
    if kind != "x" and task.kernel.pkeys:
        pkey = vma_pkey(vma.flags)
        pkru = task.pkru
        if pkru & (1 << (2 * pkey)) or (kind == "w" and pkru & (2 << (2 * pkey))):
            return SEGV_PKUERR
    if kind == "w":
        return None if vma.flags & VM_WRITE else SEGV_ACCERR
    if kind == "x":
        return None if vma.flags & VM_EXEC else SEGV_ACCERR
    return None if vma.flags & VM_ACCESS_FLAGS else SEGV_ACCERR


def user_fault(task, addr: int, kind: str):
    """do_user_addr_fault() up to handle_mm_fault: the VMA, or raise the signal."""
    vma = lock_mm_and_find_vma(task, addr)
    if vma is None:
        raise Fault(SIGSEGV, SEGV_MAPERR, addr)
    code = access_error(task, vma, kind)
    if code is not None:
        if kind == "x" and code == SEGV_ACCERR and vma.flags & VM_ACCESS_FLAGS:
            # An instruction fetch from a non-executable but accessible VMA: the
            # not-present fault is handled like a read (it may SIGBUS, or hit a
            # guard marker); the retry on the now-present NX PTE is ACCERR.
            fault_page(task, vma, addr, False)
        raise Fault(SIGSEGV, code, addr)
    return vma


# --- handling the fault: find or make the page ------------------------------------------

def fault_page(task, vma, addr: int, write: bool):
    """handle_mm_fault(): the page now mapped at addr (a bytearray), or None for the
    zero page. Raises Fault(SIGBUS) from the driver/file."""
    mm = task.mm
    vpn = addr >> PAGE_SHIFT
    mm.pmd_tables.add(addr >> 21)               # __handle_mm_fault(): pmd/pte_alloc
    if vpn in mm.guards:
        raise Fault(SIGSEGV, SEGV_MAPERR, addr)     # a guard PTE marker
    page = mm.anon_pages.get(vpn)
    if page is not None:
        return page
    if vma.vm_ops is None:                      # do_anonymous_page()
        if not write:
            return None
        anon_vma_prepare(vma)
        page = mm.anon_pages[vpn] = bytearray(PAGE_SIZE)
        return page
    if vma.vm_ops.fault is None:
        raise Fault(SIGBUS, BUS_ADRERR, addr)
    if vma.flags & VM_PFNMAP:                   # the driver inserts the PFN itself
        pfn = mm.pfn_ptes.get(vpn)
        if pfn is None:
            vma.vm_ops.fault(vma, addr, write)
            pfn = mm.pfn_ptes.get(vpn)
            if pfn is None:
                raise HookContractError(
                    "->fault of a VM_PFNMAP VMA must map a PFN (vmf_insert_pfn) or fail")
        return pfn.cpu_page()
    if write and not vma.flags & VM_SHARED:     # do_cow_fault(): anon_vma first
        anon_vma_prepare(vma)
    page = vma.vm_ops.fault(vma, addr, write)   # do_read_fault/do_shared_fault
    if write and not vma.flags & VM_SHARED:
        mm.file_ptes.pop(vpn, None)
        page = mm.anon_pages[vpn] = bytearray(page)
        return page
    if write:
        mm.file_ptes[vpn] = True                # dirty
    elif vpn not in mm.file_ptes:
        if isinstance(vma.vm_ops, FileVmOps):
            fault_around(mm, vma, addr)
        mm.file_ptes[vpn] = False
    return page


def fault_around(mm, vma, addr: int) -> None:
    """do_fault_around(): a read fault also maps the cached pages of the aligned
    16-page (fault_around_bytes) window around it, clipped to the VMA and to the
    page table; the window slides right when clipped at the VMA start."""
    nr = 16
    pte_off = (addr >> PAGE_SHIFT) & 511
    vma_off = (addr - vma.start) >> PAGE_SHIFT
    from_pte = max(pte_off & ~(nr - 1), pte_off - min(pte_off, vma_off))
    to_pte = min(from_pte + nr, 512, pte_off + vma.pages - vma_off)
    inode = vma.file.inode
    eof_pages = -(-inode.size // PAGE_SIZE)
    base_vpn = (addr >> PAGE_SHIFT) - pte_off
    for pte in range(from_pte, to_pte):
        vpn = base_vpn + pte
        index = vma.pgoff + vpn - (vma.start >> PAGE_SHIFT)
        if index < eof_pages and index in inode.pages and vpn not in mm.anon_pages \
                and vpn not in mm.file_ptes and vpn not in mm.guards:
            mm.file_ptes[vpn] = False


def vmf_insert_pfn(vma, addr: int, pfn) -> None:
    """mm/memory.c vmf_insert_pfn(): a driver's fault handler maps `pfn` at addr.
    `pfn` stands for the physical page: pfn.cpu_page() is what an ordinary (non
    enclave-mode) access to it reads and writes."""
    vma.mm.pfn_ptes[addr >> PAGE_SHIFT] = pfn


def zap_vma_ptes(vma, addr: int, length: int) -> None:
    """mm/memory.c zap_vma_ptes(): drop a driver's PFN mappings in a VMA."""
    vma.mm.zap(addr, addr + length, markers=False)


def handle_mm_fault(task, vma, addr: int, write: bool) -> bool:
    """Fault one page in for populate/mlock: False if the fault failed (SIGBUS)."""
    try:
        fault_page(task, vma, addr, write)
    except Fault:
        return False
    return True


def access(task, addr: int, length: int, kind: str, data: bytes = b"") -> bytes:
    """Read (kind "r"), write ("w") or execute ("x") [addr, addr+length) as the
    process would, page by page; the first failing page raises its signal."""
    out = bytearray()
    pos = 0
    while pos < length:
        a = (addr + pos) & U64
        off = a & (PAGE_SIZE - 1)
        chunk = min(PAGE_SIZE - off, length - pos)
        vma = user_fault(task, a, kind)
        page = fault_page(task, vma, a, kind == "w")
        if kind == "w":
            page[off:off + chunk] = data[pos:pos + chunk]
        elif page is None:
            out += bytes(chunk)
        else:
            out += page[off:off + chunk]
        pos += chunk
    return bytes(out)


# --- kernel access to user memory (arch/x86/lib/usercopy, mm/gup.c) -----------------

def copy_from_user(task, addr: int, n: int) -> bytes:
    """The bytes at [addr, addr+n) as the kernel reads them for a syscall: the same
    faults as a user access, reported as EFAULT."""
    try:
        return access(task, addr, n, "r")
    except Fault:
        raise kerr(EFAULT) from None


def copy_to_user(task, addr: int, data: bytes) -> None:
    """Write data at addr on behalf of a syscall; EFAULT where the user could not."""
    try:
        access(task, addr, len(data), "w", data)
    except Fault:
        raise kerr(EFAULT) from None


def get_user_page(task, addr: int) -> bytes:
    """get_user_pages(addr, 1) for reading: the page's contents, or EFAULT (no VMA,
    VM_IO/VM_PFNMAP, no VM_READ, PKRU, or the fault fails)."""
    vma = task.mm.tree.find(addr)
    if vma is None or vma.flags & (VM_IO | VM_PFNMAP) or not vma.flags & VM_READ:
        raise kerr(EFAULT)
    page_addr = addr & PAGE_MASK
    return copy_from_user(task, page_addr, PAGE_SIZE)
