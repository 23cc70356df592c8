"""Page faults and memory access: arch/x86/mm/fault.c do_user_addr_fault(),
mm/memory.c handle_mm_fault() (anonymous, file and COW faults), mm/rmap.c
anon_vma_prepare() and mm/mmap.c expand_downwards() (stack growth).

Pages live in two places: the page cache of a file's inode (shared and file pages)
and the mm's `anon_pages` (anonymous pages and private COW copies), keyed by virtual
page number; every page is a frame of mm/page_alloc.py. A read fault on anonymous
memory maps the zero page: no page of its own, no anon_vma (but where THP may serve the
fault: mm/huge_memory.c do_huge_pmd_anonymous_page()).
`mm.pmd_tables` holds the 2 MiB blocks that have a page table (or a huge PMD); a PMD
mapping of a shmem huge folio is all 512 of its pages in `mm.file_ptes`.
"""

from __future__ import annotations

from ..errors import EFAULT, EINVAL, Fault, HookContractError, kerr
from ..uapi import (
    BUS_ADRERR,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SIZE,
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
    VM_HUGEPAGE,
    VM_IGNORE_MERGE,
    VM_IO,
    VM_LOCKED,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    vma_pkey,
)
from .hooks import vm_access, vm_fault
from .page_alloc import Page, alloc_page, copy_page, is_frame, zero_page
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
    mm.tree.set_start(vma, address)
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
    task.mm.mmap_lock("fault")
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

def fault_page(task, vma, addr: int, write: bool) -> Page:
    """handle_mm_fault(): the frame now mapped at addr (the read-only zero page for a
    read of anonymous memory never written). Raises Fault(SIGBUS) from the
    driver/file. A fault that fails leaves the block without the page table it did not
    need."""
    mm = task.mm
    vpn = addr >> PAGE_SHIFT
    if vpn in mm.guards:
        raise Fault(SIGSEGV, SEGV_MAPERR, addr)     # a guard PTE marker
    page = mm.anon_pages.get(vpn)
    if page is not None:
        return page
    if vma.vm_ops is None:
        return do_anonymous_fault(mm, vma, addr, write)
    if vma.vm_ops.fault is None:
        raise Fault(SIGBUS, BUS_ADRERR, addr)
    if vma.flags & VM_PFNMAP:                   # the driver inserts the PFN itself
        pfn = mm.pfn_ptes.get(vpn)
        if pfn is None:
            vm_fault(vma, addr, write)
            pfn = mm.pfn_ptes[vpn]
            mm.pmd_tables.add(addr >> 21)
        return pfn_page(pfn, addr)
    cow = write and not vma.flags & VM_SHARED
    if cow:                                     # do_cow_fault(), wp_page_copy(): anon_vma first
        anon_vma_prepare(vma)
        if pmd_mapped(mm, vma, addr):
            zap_huge_pmd(mm, vma, addr)         # wp_huge_pmd(): COW is done on PTEs
    page = file_page_mapped(mm, vma, addr)
    if page is None:
        page = do_file_fault(mm, vma, addr, write, cow)
    if cow:
        mm.file_ptes.pop(vpn, None)
        page = mm.anon_pages[vpn] = copy_page(page)
    elif write:
        mm.file_ptes[vpn] = True                # dirty
    return page


def do_anonymous_fault(mm, vma, addr: int, write: bool) -> Page:
    """do_anonymous_page(); or, where the block has no page table yet and THP may serve
    the fault, do_huge_pmd_anonymous_page(), whose vmf_anon_prepare() gives the VMA its
    anon_vma even for a read fault (that maps the huge zero page). The model maps 4 KiB
    pages only."""
    block = addr >> 21
    if block not in mm.pmd_tables and thp_fault_allowed(vma, addr):
        anon_vma_prepare(vma)
    mm.pmd_tables.add(block)
    if not write:
        return zero_page()
    anon_vma_prepare(vma)
    page = mm.anon_pages[addr >> PAGE_SHIFT] = alloc_page()
    return page


def file_page_mapped(mm, vma, addr: int):
    """The page-cache page a present PTE (or the PMD of a huge folio) maps at addr, which
    the CPU reaches without a fault; None if not mapped. Only a PMD maps a page past
    EOF: if that PMD has been split since (a VMA split or partial unmap, a partial zap,
    the folio split), __split_huge_pmd() zapped all of it."""
    if addr >> PAGE_SHIFT not in mm.file_ptes or not isinstance(vma.vm_ops, FileVmOps):
        return None
    inode = vma.file.inode
    index = vma.pgoff_at(addr)
    if index >= -(-inode.size // PAGE_SIZE) and not pmd_mapped(mm, vma, addr):
        zap_huge_pmd(mm, vma, addr)
        return None
    return inode.pages.get(index)


def do_file_fault(mm, vma, addr: int, write: bool, cow: bool) -> Page:
    """do_read_fault() (fault-around first), do_cow_fault(), do_shared_fault(): the
    page from ->fault, then finish_fault()."""
    vpn = addr >> PAGE_SHIFT
    if not write and isinstance(vma.vm_ops, FileVmOps) and fault_around(mm, vma, addr):
        return vma.file.inode.pages[vma.pgoff_at(addr)]
    page = vm_fault(vma, addr, write)
    assert page is not None                     # vm_fault() held ->fault to that
    if not cow and huge_folio_at(vma, addr) and pmd_mappable(mm, vma, addr):
        map_huge_pmd(mm, vma, addr)             # finish_fault() -> do_set_pmd()
    mm.pmd_tables.add(addr >> 21)
    if not cow:
        mm.file_ptes.setdefault(vpn, False)
    return page


def fault_around(mm, vma, addr: int) -> bool:
    """do_fault_around() and filemap_map_pages(): a read fault first maps the cached
    pages of the aligned 16-page (fault_around_bytes) window around it, clipped to the
    VMA, the page table and EOF; the window slides right when clipped at the VMA start.
    The first cached page of the window inside EOF decides how: a shmem huge folio is
    mapped whole by a PMD if the block has no page table yet and the VMA can hold it;
    otherwise the block gets its page table (filemap_map_pmd()) and the pages their
    PTEs — but for a file other than shmem whose first such page is its last one
    (can_map_large false: no table is installed, so with none yet nothing is mapped).
    True if addr is now mapped."""
    nr = 16
    vpn = addr >> PAGE_SHIFT
    pte_off = vpn & 511
    vma_off = (addr - vma.start) >> PAGE_SHIFT
    from_pte = max(pte_off & ~(nr - 1), pte_off - min(pte_off, vma_off))
    to_pte = min(from_pte + nr, 512, pte_off + vma.pages - vma_off)
    inode = vma.file.inode
    eof_pages = -(-inode.size // PAGE_SIZE)
    first_vpn = vpn - pte_off + from_pte
    window = [(v, vma.pgoff_at(v << PAGE_SHIFT)) for v in range(first_vpn, vpn - pte_off + to_pte)]
    cached = [(v, index) for v, index in window if index < eof_pages and index in inode.pages]
    if not cached:
        return False
    block = addr >> 21
    if vma.file.f_op.is_shmem or cached[0][1] + 1 < eof_pages:     # can_map_large
        if huge_folio_at(vma, addr) and pmd_mappable(mm, vma, addr):
            map_huge_pmd(mm, vma, addr)
            return True
        mm.pmd_tables.add(block)
    elif block not in mm.pmd_tables:
        return False
    for v, _ in cached:
        if v not in mm.anon_pages and v not in mm.file_ptes and v not in mm.guards:
            mm.file_ptes[v] = False
    return vpn in mm.file_ptes


# --- transparent huge pages (mm/huge_memory.c, include/linux/huge_mm.h) ----------

#: pages in a PMD-sized folio
HPAGE_PMD_NR = PMD_SIZE >> PAGE_SHIFT


def thp_vma_suitable_order(vma, addr: int) -> bool:
    """thp_vma_suitable_order(vma, addr, PMD_ORDER): the aligned 2 MiB block holding
    addr lies inside the VMA, and a file VMA's pages line up with the file's huge pages
    ((vm_start >> PAGE_SHIFT) - vm_pgoff a multiple of 512); in the kernel's unsigned
    arithmetic."""
    if not vma.is_anonymous() and ((vma.start >> PAGE_SHIFT) - vma.pgoff) % HPAGE_PMD_NR:
        return False
    haddr = addr & ~(PMD_SIZE - 1)
    return vma.start <= haddr and (haddr + PMD_SIZE) & U64 <= vma.end


def thp_fault_allowed(vma, addr: int) -> bool:
    """thp_vma_allowable_order(vma, TVA_PAGEFAULT, PMD_ORDER) and thp_vma_suitable_order()
    for an anonymous fault: THP "always", or "madvise" and MADV_HUGEPAGE; not
    MADV_NOHUGEPAGE; the block inside the VMA."""
    mode = vma.mm.kernel.thp
    if vma.flags & VM_NOHUGEPAGE or mode == "never":
        return False
    if mode == "madvise" and not vma.flags & VM_HUGEPAGE:
        return False
    return thp_vma_suitable_order(vma, addr)


def huge_folio_at(vma, addr: int) -> bool:
    """The page cache holds a PMD-sized folio (shmem after MADV_COLLAPSE) at addr."""
    if not isinstance(vma.vm_ops, FileVmOps):
        return False
    return vma.pgoff_at(addr) & ~(HPAGE_PMD_NR - 1) in vma.file.inode.huge_folios


def pmd_mappable(mm, vma, addr: int) -> bool:
    """do_set_pmd()'s conditions: the block has no page table yet, THP is not disabled
    in the VMA (MADV_NOHUGEPAGE) and the VMA can hold the folio."""
    return addr >> 21 not in mm.pmd_tables and not vma.flags & VM_NOHUGEPAGE and \
        thp_vma_suitable_order(vma, addr)


def pmd_mapped(mm, vma, addr: int) -> bool:
    """A PMD maps the huge folio at addr: the VMA can hold it and all 512 pages of the
    block are mapped (what map_huge_pmd() leaves)."""
    if not huge_folio_at(vma, addr) or not thp_vma_suitable_order(vma, addr):
        return False
    haddr = addr & ~(PMD_SIZE - 1)
    return len(mm.present_in(haddr, haddr + PMD_SIZE, mm.file_ptes)) == HPAGE_PMD_NR


def pmd_mapped_blocks(mm, vma) -> set[int]:
    """The 2 MiB blocks of the VMA a PMD maps. O(huge folios of its file)."""
    if not isinstance(vma.vm_ops, FileVmOps):
        return set()
    blocks = set()
    for head in vma.file.inode.huge_folios:
        haddr = vma.start + ((head - vma.pgoff) << PAGE_SHIFT)
        if vma.start <= haddr < vma.end and pmd_mapped(mm, vma, haddr):
            blocks.add(haddr >> 21)
    return blocks


def zap_huge_pmd(mm, vma, addr: int) -> None:
    """zap_huge_pmd(), and __split_huge_pmd() of a file folio, which zaps it too: every
    page of the folio the VMA maps in the block is unmapped, and the block is left
    without a page table unless something else is mapped in it."""
    haddr = addr & ~(PMD_SIZE - 1)
    start, end = max(haddr, vma.start), min(haddr + PMD_SIZE, vma.end)
    for vpn in mm.present_in(start, end, mm.file_ptes):
        del mm.file_ptes[vpn]
    tables = (mm.anon_pages, mm.file_ptes, mm.pfn_ptes, mm.guards)
    if not any(mm.present_in(haddr, haddr + PMD_SIZE, table) for table in tables):
        mm.pmd_tables.discard(addr >> 21)


def map_huge_pmd(mm, vma, addr: int) -> None:
    """do_set_pmd(): one PMD maps all 512 pages of the huge folio at addr, past EOF too
    (shmem has long mapped PMDs across i_size), so none of them faults."""
    first = (addr & ~(PMD_SIZE - 1)) >> PAGE_SHIFT
    for vpn in range(first, first + HPAGE_PMD_NR):
        if vpn not in mm.anon_pages and vpn not in mm.guards:
            mm.file_ptes.setdefault(vpn, False)
    mm.pmd_tables.add(addr >> 21)


def vmf_insert_pfn(vma, addr: int, pfn) -> None:
    """mm/memory.c vmf_insert_pfn(): a driver's fault handler maps `pfn` at addr.
    `pfn` stands for the physical page: pfn.cpu_page() is the frame an ordinary (non
    enclave-mode) access to it reads and writes. Outside the VMA, or in a VMA without
    VM_PFNMAP, it is a driver bug (Linux: VM_FAULT_SIGBUS, BUG_ON): HookContractError."""
    if not vma.start <= addr < vma.end or not vma.flags & VM_PFNMAP:
        raise HookContractError(f"vmf_insert_pfn() at {addr:#x}, outside the VM_PFNMAP VMA "
                                f"{vma.start:#x}-{vma.end:#x}")
    vma.mm.pfn_ptes[addr >> PAGE_SHIFT] = pfn


def pfn_page(pfn, addr: int) -> Page:
    """The frame behind a PFN mapped at addr (pfn.cpu_page()); a PFN that gives anything
    else is a driver bug: HookContractError."""
    page = pfn.cpu_page()
    if not is_frame(page):
        raise HookContractError(f"the PFN mapped at {addr:#x} gave a {type(page).__name__} "
                                "for its page, not a page frame")
    return page


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


# --- another process's memory (ptrace, /proc/PID/mem) --------------------------------

def access_remote_vm(task, addr: int, length: int, write: bool, data: bytes = b"") -> bytes | int:
    """mm/memory.c __access_remote_vm(): ptrace and /proc/PID/mem read or write `task`'s
    memory with FOLL_FORCE, a page at a time. An address in no VMA grows the stack above
    it down to it, as a fault would (expand_stack()) [obs]. A page is faulted in and
    copied (get_user_pages(); FOLL_FORCE needs VM_MAYREAD, or for a write VM_WRITE or a
    private mapping: a COW; the access is foreign, so PKRU does not apply); where that
    fails (always on VM_IO|VM_PFNMAP) the VMA's vm_ops->access, if any, may do part.
    Stops at the first byte it cannot reach. Returns the bytes read, or for a write the
    count written."""
    mm = task.mm
    mm.mmap_lock("access_remote_vm")
    out = bytearray()
    done = 0
    while done < length:
        at = (addr + done) & U64
        vma = lock_mm_and_find_vma(task, at)        # vma_lookup(), else expand_stack()
        if vma is None:
            break
        n = 0
        if not vma.flags & (VM_IO | VM_PFNMAP):
            n = _access_page(task, vma, at, length - done, write, data[done:], out)
        if n <= 0:
            n = _access_by_driver(vma, at, length - done, write, data[done:], out)
        if n <= 0:
            break
        done += n
    return done if write else bytes(out)


def _access_by_driver(vma, addr: int, length: int, write: bool, data: bytes,
                      out: bytearray) -> int:
    """vm_ops->access (none: nothing), where get_user_pages() failed; its refusal ends
    the access."""
    if vma.vm_ops is None or vma.vm_ops.access is None:
        return 0
    try:
        result = vm_access(vma, addr, length, write, data)
    except OSError:
        return 0
    if isinstance(result, int):
        return result
    out += result
    return len(result)


def _access_page(task, vma, addr: int, length: int, write: bool, data: bytes,
                 out: bytearray) -> int:
    """One page through get_user_pages(FOLL_FORCE): check_vma_flags(), then the fault."""
    flags = vma.flags
    if write and not (flags & VM_WRITE or (flags & VM_MAYWRITE and not flags & VM_SHARED)):
        return 0
    if not write and not flags & (VM_READ | VM_MAYREAD):
        return 0
    try:
        page = fault_page(task, vma, addr, write)
    except Fault:
        return 0
    off = addr & (PAGE_SIZE - 1)
    n = min(PAGE_SIZE - off, length)
    if write:
        page[off:off + n] = data[:n]
    else:
        out += page[off:off + n]
    return n
