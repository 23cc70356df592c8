"""EPC reclaim (issue #12): the paging leaves of the emulated CPU (EBLOCK, ETRACK, EWB,
ELDU; vmsim/arch/x86/sgx/paging.py) and the driver's reclaimer (vmsim/drivers/sgx/
main.py: the active page list, ksgxd, the watermarks; encl.py: the backing store, VA
pages, ELDU from the fault handler), checked against arch/x86/kernel/cpu/sgx/main.c and
encl.c of Linux 6.18 and the SDM's leaf definitions.

Enclaves here are a TCS, its SSA frame and data pages whose contents say which page
they are; enclave code is a Python program entered through the model's vDSO.
"""

import errno
import shutil
import struct
import subprocess
import sys

import pytest

import vmsim
from vmsim import PROT_READ, PROT_WRITE
from vmsim.arch.x86 import vdso
from vmsim.arch.x86.sgx import paging
from vmsim.arch.x86.sgx.cpu import GP, PF, EnclsFault, SgxCpu
from vmsim.arch.x86.sgx.defs import (
    EENTER,
    EEXIT,
    SGX_ATTR_MODE64BIT,
    SGX_BLKSTATE,
    SGX_CHILD_PRESENT,
    SGX_MAC_COMPARE_FAIL,
    SGX_NOT_TRACKED,
    SGX_NOTBLOCKABLE,
    SGX_PAGE_NOT_BLOCKED,
    SGX_PG_INVLD,
    SGX_PG_IS_SECS,
    SGX_PREV_TRK_INCMPL,
    SGX_SECINFO_R,
    SGX_SECINFO_REG,
    SGX_SECINFO_TCS,
    SGX_SECINFO_W,
    SGX_VA_SLOT_OCCUPIED,
)
from vmsim.drivers.sgx.encl import SGX_VA_SLOT_COUNT
from vmsim.drivers.sgx.main import SGX_NR_HIGH_PAGES, SGX_NR_LOW_PAGES, SGX_NR_TO_SCAN
from vmsim.enclave import loader
from vmsim.enclave import signing as S
from vmsim.enclave.image import EnclaveImage
from vmsim.enclave.segment import Segment, covering_size, encode_tcs
from vmsim.mm.page_alloc import alloc_page

PAGE = 4096
RW = PROT_READ | PROT_WRITE
TCS_OFF, SSA_OFF, DATA_OFF = 0x0000, 0x1000, 0x2000


@pytest.fixture(scope="module")
def key():
    return S.generate_key()


def pattern(i: int, tag: int = 0) -> bytes:
    """The contents of data page i: its number and a tag, over and over."""
    return struct.pack("<II", i, tag) * (PAGE // 8)


def image(data_pages: int) -> EnclaveImage:
    segments = [
        Segment(TCS_OFF, encode_tcs(ossa=SSA_OFF, nssa=1, oentry=DATA_OFF), SGX_SECINFO_TCS,
                RW, True, "tcs"),
        Segment(SSA_OFF, bytes(PAGE), SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W, RW,
                True, "ssa"),
        Segment(DATA_OFF, b"".join(pattern(i) for i in range(data_pages)),
                SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W, RW, False, "data"),
    ]
    return EnclaveImage(size=covering_size(segments[-1].end), segments=segments,
                        ssa_frame_size=1, attributes=SGX_ATTR_MODE64BIT, xfrm=3)


class World:
    """A kernel whose SGX CPU has `epc_pages` EPC pages, a process, an enclave of
    `data_pages` data pages loaded by the kselftest loader."""

    def __init__(self, key, data_pages: int, epc_pages: int = 16384):
        self.cpu = SgxCpu(epc_pages=epc_pages)
        self.p = vmsim.Kernel(sgx=self.cpu).spawn(stack=True)
        self.data_pages = data_pages
        self.loaded = loader.kselftest_load(self.p, image(data_pages), key, probe=False)
        self.base = self.loaded.base
        self.encl = self.p.files[self.loaded.dev.fd].private_data

    def data(self, i: int) -> int:
        return self.base + DATA_OFF + i * PAGE

    def page(self, i: int):
        return self.encl.pages[self.data(i) >> 12]

    def enter(self, program, *args) -> vdso.SgxEnclaveRun:
        run = vdso.SgxEnclaveRun(tcs=self.base)
        assert vdso.enter_enclave(self.p, run, EENTER, program, args) == 0
        return run

    def evict_all(self) -> None:
        """Run the reclaimer until nothing is left on the active list."""
        epc = self.encl.epc
        while epc.active:
            epc.reclaim_pages()

    def written_out(self) -> int:
        return sum(page.epc is None for page in self.encl.pages.values())

    def resident(self) -> int:
        """EPC pages the enclave holds: its pages in the EPC, the SECS, the VA pages."""
        return len(self.encl.pages) - self.written_out() + (self.encl.secs is not None) + \
            len(self.encl.va_pages)


def read_all(ctx, world, seen):
    for i in range(world.data_pages):
        seen[i] = ctx.read(world.data(i), PAGE)


def write_all(ctx, world, tag):
    for i in range(world.data_pages):
        ctx.write(world.data(i), pattern(i, tag))


# --- an enclave larger than the EPC ----------------------------------------------------------

def test_an_enclave_three_times_the_epc_runs_and_every_page_reads_back(key):
    """An enclave of 3 x the EPC (a TCS, its SSA frame, 382 data pages on a 128-page
    EPC) loads, initializes, and every page reads back what was added, then what the
    enclave wrote: the reclaimer writes pages out (EWB) and the fault handler loads them
    back (ELDU), contents and all. Once the enclave is gone every EPC page is free."""
    epc_pages = 128
    w = World(key, 3 * epc_pages - 2, epc_pages)
    assert len(w.encl.pages) == 3 * epc_pages and w.written_out() > 2 * epc_pages
    assert w.cpu.epc_free + w.resident() == epc_pages
    seen: dict[int, bytes] = {}
    assert w.enter(read_all, w, seen).function == EEXIT
    assert all(seen[i] == pattern(i) for i in range(w.data_pages))
    assert w.enter(write_all, w, 7).function == EEXIT
    seen.clear()
    assert w.enter(read_all, w, seen).function == EEXIT
    assert all(seen[i] == pattern(i, 7) for i in range(w.data_pages))
    w.p.mm.validate()
    assert w.cpu.epc_free + w.resident() == epc_pages
    w.p.exit()
    assert w.cpu.epc_free == epc_pages
    assert w.encl.backing is None


def test_ksgxd_keeps_the_high_watermark_free(key):
    """An allocation with reclaim that leaves fewer than SGX_NR_LOW_PAGES free wakes
    ksgxd, which writes pages out until SGX_NR_HIGH_PAGES are free: after loading an
    enclave larger than the EPC, at least SGX_NR_LOW_PAGES are free, the pages written
    out the oldest (the TCS first)."""
    w = World(key, 300, 256)
    assert w.cpu.epc_free >= SGX_NR_LOW_PAGES
    assert w.encl.pages[w.base >> 12].epc is None                   # the TCS went first
    assert w.page(w.data_pages - 1).epc is not None                 # the last stays
    assert not w.encl.epc.ksgxd_woken


def test_no_reclaim_above_the_low_watermark(key):
    """On the default EPC a small enclave never gets near SGX_NR_LOW_PAGES: nothing is
    written out, no VA slot used, the backing store empty."""
    w = World(key, 8)
    seen: dict[int, bytes] = {}
    w.enter(read_all, w, seen)
    assert w.written_out() == 0 and w.encl.secs is not None
    assert [va.used() for va in w.encl.va_pages] == [0]
    assert not w.encl.backing.pages
    assert w.cpu.paging_version == 0


def test_the_secs_goes_out_with_the_last_page_and_comes_back_first(key):
    """sgx_reclaimer_write(): an initialized enclave left without a page in the EPC has
    its SECS written out (backing page size / PAGE_SIZE, a VA slot); a fault loads the
    SECS back, then the page."""
    w = World(key, 4)
    w.evict_all()
    assert w.encl.secs is None and w.encl.secs_va is not None
    assert w.written_out() == len(w.encl.pages) == 6
    assert w.encl.va_pages[0].used() == 7                          # 6 pages + the SECS
    assert w.encl.size // PAGE in w.encl.backing.pages
    assert w.cpu.epc_free == w.cpu.epc_pages - 1                   # only the VA page
    assert w.p.read(w.data(2), 1) == b"\xff"                        # abort page outside
    assert w.encl.secs is not None and w.encl.secs.enclave.children == 1
    assert w.encl.secs.enclave.initialized and w.encl.secs.enclave.eid
    seen: dict[int, bytes] = {}
    assert w.enter(read_all, w, seen).function == EEXIT
    assert seen == {i: pattern(i) for i in range(4)}
    w.p.mm.validate()


def test_the_secs_stays_before_einit(key):
    """Before EINIT the SECS is never written out (sgx_reclaimer_write() waits for
    SGX_ENCL_INITIALIZED), even with every page of the enclave out."""
    cpu = SgxCpu()
    p = vmsim.Kernel(sgx=cpu).spawn()
    img = image(3)
    dev = loader.SgxDevice(p)
    base = loader.reserve_aligned(p, img.size)
    dev.create(img.secs(base))
    for seg in img.segments:
        src = p.mmap(0, seg.size, RW, vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS)
        p.write(src, seg.data)
        dev.add_pages(src, seg.offset, seg.size, seg.secinfo_flags, seg.measured)
    encl = p.files[dev.fd].private_data
    while encl.epc.active:
        encl.epc.reclaim_pages()
    assert all(page.epc is None for page in encl.pages.values())
    assert encl.secs is not None and encl.secs_va is None
    dev.init(img.sigstruct(key))
    assert encl.initialized and encl.secs is not None


# --- Version Array pages ----------------------------------------------------------------------

def test_one_va_page_serves_512_pages_written_out(key):
    """sgx_encl_grow(): a VA page per SGX_VA_SLOT_COUNT pages of the enclave (the SECS
    counts); sgx_encl_ewb() takes slots from the first VA page with a free one, so the
    VA pages holding versions are ceil(pages written out / 512)."""
    w = World(key, 600)
    assert w.encl.page_cnt == 603 and len(w.encl.va_pages) == 2
    for batches in (1, 7, 32):
        while sum(va.used() for va in w.encl.va_pages) < batches * SGX_NR_TO_SCAN:
            w.encl.epc.reclaim_pages()
        out = w.written_out()
        assert out == batches * SGX_NR_TO_SCAN
        assert sum(1 for va in w.encl.va_pages if va.used()) == -(-out // SGX_VA_SLOT_COUNT)
    w.evict_all()
    assert sorted(va.used() for va in w.encl.va_pages) == [603 - 512, 512]   # + the SECS
    w.p.mm.validate()


def test_eldu_frees_the_slot_and_moves_its_va_page_to_the_head(key):
    """sgx_encl_eldu(): the slot is free again, the version in it cleared, and its VA
    page first in the list (the next EWB takes a slot from it)."""
    w = World(key, 600)
    w.evict_all()
    first, second = w.encl.va_pages
    page = w.page(0)
    va, offset = page.va_page, page.va_offset
    assert va is second and struct.unpack_from("<Q", va.epc_page.data, offset)[0]
    w.p.read(w.data(0), 1)
    assert page.epc is not None
    assert not va.slots >> (offset // 8) & 1
    assert va.epc_page.data[offset:offset + 8] == bytes(8)
    assert w.encl.va_pages == [second, first]


# --- tampering and replay ---------------------------------------------------------------------

def evicted(w, i):
    """Write data page i out and return its backing index."""
    w.evict_all()
    page = w.page(i)
    assert page.epc is None
    return page.index()


def test_a_tampered_backing_page_fails_eldu_and_the_fault_is_sigbus(key):
    """A page written out whose backing copy changed: ELDU is SGX_MAC_COMPARE_FAIL,
    __sgx_encl_eldu() returns EFAULT, sgx_vma_fault() VM_FAULT_SIGBUS; the PCMD was
    zeroed and the backing page truncated, so the page stays lost. Other pages load."""
    w = World(key, 8)
    index = evicted(w, 3)
    w.encl.backing.pages[index][100] ^= 1
    free = w.cpu.epc_free
    for _ in range(2):
        with pytest.raises(vmsim.Fault) as f:
            w.p.read(w.data(3), 1)
        assert (f.value.signal, f.value.code, f.value.addr) == ("SIGBUS", "BUS_ADRERR", w.data(3))
    assert index not in w.encl.backing.pages
    assert w.encl.secs is not None and w.cpu.epc_free == free - 1   # the SECS came back
    assert w.p.read(w.data(4), 1) == b"\xff"
    w.p.mm.validate()


def test_a_tampered_pcmd_fails_eldu(key):
    """The MAC covers the PCMD's SECINFO: a page written out RW cannot come back RWX."""
    w = World(key, 8)
    index = evicted(w, 5)
    pcmd_page = w.encl.backing.pages[w.encl.backing.pcmd_offset(index) >> 12]
    off = w.encl.backing.pcmd_offset(index) & (PAGE - 1)
    pcmd_page[off] |= 4                                             # SECINFO.X
    with pytest.raises(vmsim.Fault):
        w.p.read(w.data(5), 1)


def test_an_older_copy_of_a_page_is_refused(key):
    """Replay: the backing copy and PCMD of a page from an earlier EWB, put back after
    the page was written out again (a new version in its VA slot): SIGBUS."""
    w = World(key, 8)
    index = evicted(w, 2)
    backing = w.encl.backing
    pcmd_index = backing.pcmd_offset(index) >> 12
    old = bytes(backing.pages[index]), bytes(backing.pages[pcmd_index])
    w.enter(write_all, w, 9)
    index = evicted(w, 2)
    backing.pages[index][:], backing.pages[pcmd_index][:] = old
    with pytest.raises(vmsim.Fault):
        w.p.read(w.data(2), 1)


# --- the paging leaves --------------------------------------------------------------------------

def swap_buffers():
    contents, pcmd = alloc_page(), alloc_page()
    return contents, pcmd, pcmd[:paging.PCMD_SIZE]


def test_ewb_while_a_thread_is_inside_fails_until_etrack_and_exit(key):
    """EWB of a blocked page: SGX_NOT_TRACKED before an ETRACK, and after it while a
    logical processor that entered before it is still inside (a second ETRACK is then
    SGX_PREV_TRK_INCMPL); once it has left (EEXIT) EWB writes the page out, and ELDU
    brings it back at its address, the VA slot cleared."""
    w = World(key, 4)
    page = w.page(1)
    epc, secs = page.epc, w.encl.secs
    va = w.encl.va_pages[0].epc_page
    w.encl.epc.unmark_page_reclaimable(epc)        # the driver leaves it to us
    contents, pcmd_page, pcmd = swap_buffers()
    assert paging.eblock(epc) == 0
    inside = []

    def program(ctx):
        inside.append(paging.ewb(epc, va, 8 * 100, contents, pcmd))
        inside.append(paging.etrack(secs))
        inside.append(paging.ewb(epc, va, 8 * 100, contents, pcmd))
        inside.append(paging.etrack(secs))

    assert w.enter(program).function == EEXIT
    assert inside == [SGX_NOT_TRACKED, 0, SGX_NOT_TRACKED, SGX_PREV_TRK_INCMPL]
    assert secs.enclave.children == 6
    assert paging.ewb(epc, va, 8 * 100, contents, pcmd) == 0
    assert not epc.valid and secs.enclave.children == 5
    assert bytes(contents) == pattern(1)
    new = w.cpu.alloc_epc_page()
    assert paging.eldu(new, va, 8 * 100, page.addr + PAGE, secs, contents, pcmd) == \
        SGX_MAC_COMPARE_FAIL                                          # not its address
    assert paging.eldu(new, va, 8 * 100, page.addr, secs, contents, pcmd) == 0
    assert new.valid and not new.blocked and bytes(new.data) == pattern(1)
    assert (new.r, new.w, new.x, new.addr, new.secs) == (True, True, False, page.addr, secs)
    assert va.data[800:808] == bytes(8) and secs.enclave.children == 6
    page.epc = new
    w.encl.epc.mark_page_reclaimable(new, page)
    w.p.mm.zap(w.data(1), w.data(1) + PAGE, markers=False)         # the old PFN
    w.p.mm.validate()


def test_paging_leaf_errors(key):
    """EBLOCK: SGX_PG_INVLD (free page), SGX_PG_IS_SECS, SGX_NOTBLOCKABLE (VA page),
    SGX_BLKSTATE (blocked already); EWB: SGX_PAGE_NOT_BLOCKED, SGX_CHILD_PRESENT (a SECS
    with pages in the EPC), #PF for a slot outside a VA page, #GP for a misaligned slot,
    SGX_VA_SLOT_OCCUPIED (written out all the same); ETRACK of a non-SECS and ELDU into
    a page in use: #PF."""
    w = World(key, 2)
    cpu, secs = w.cpu, w.encl.secs
    va = w.encl.va_pages[0].epc_page
    data = w.page(0).epc
    free = cpu.alloc_epc_page()
    contents, _pcmd_page, pcmd = swap_buffers()
    assert paging.eblock(free) == SGX_PG_INVLD
    assert paging.eblock(secs) == SGX_PG_IS_SECS
    assert paging.eblock(va) == SGX_NOTBLOCKABLE
    assert paging.ewb(data, va, 0, contents, pcmd) == SGX_PAGE_NOT_BLOCKED
    assert paging.ewb(secs, va, 0, contents, pcmd) == SGX_CHILD_PRESENT
    with pytest.raises(EnclsFault) as f:
        paging.ewb(data, data, 0, contents, pcmd)
    assert f.value.trapnr == GP
    with pytest.raises(EnclsFault) as f:
        paging.ewb(data, secs, 0, contents, pcmd)
    assert f.value.trapnr == PF
    with pytest.raises(EnclsFault) as f:
        paging.ewb(data, va, 4, contents, pcmd)
    assert f.value.trapnr == GP
    with pytest.raises(EnclsFault) as f:
        paging.etrack(data)
    assert f.value.trapnr == PF
    w.encl.epc.unmark_page_reclaimable(data)
    assert paging.eblock(data) == 0
    assert paging.eblock(data) == SGX_BLKSTATE
    assert paging.etrack(secs) == 0
    va.data[16:24] = struct.pack("<Q", 1234)
    assert paging.ewb(data, va, 16, contents, pcmd) == SGX_VA_SLOT_OCCUPIED
    assert not data.valid and struct.unpack_from("<Q", va.data, 16)[0] == cpu.paging_version
    with pytest.raises(EnclsFault) as f:
        paging.eldu(secs, va, 16, w.data(0), secs, contents, pcmd)
    assert f.value.trapnr == PF


# --- the kernel's retry paths -------------------------------------------------------------------

def test_reclaim_while_a_thread_is_inside_takes_an_ipi_and_keeps_its_tcs_and_ssa(key,
                                                                                  monkeypatch):
    """A fault of enclave code that finds no free EPC page (VM_FAULT_NOPAGE) waits for
    the reclaimer, which runs while the logical processor is inside: EWB is
    SGX_NOT_TRACKED, ETRACK, SGX_NOT_TRACKED again, so sgx_encl_ewb() sends the IPI
    that makes it leave, and EWB succeeds. The model keeps that processor's TCS and SSA
    frame in the EPC (docs/deviations.md row 8)."""
    ipis = []
    real_ipi = paging.ipi
    monkeypatch.setattr(paging, "ipi", lambda state: (ipis.append(len(state.lps)),
                                                      real_ipi(state)))
    w = World(key, 200, 96)
    tcs_page, ssa_page = w.encl.pages[w.base >> 12], w.encl.pages[(w.base >> 12) + 1]
    held = []

    def program(ctx):
        read_all(ctx, w, {})
        held.append((ctx.mode.tcs is tcs_page.epc, ctx.mode.tcs.valid,
                     ctx.mode.ssa_pages[0] is ssa_page.epc))

    assert w.enter(program).function == EEXIT
    assert held == [(True, True, True)]
    assert 1 in ipis
    w.p.mm.validate()


def test_add_pages_reclaims_when_the_epc_is_full(key):
    """sgx_encl_add_page() allocates with reclaim: ADD_PAGES of more pages than the EPC
    has never fails for want of EPC pages; only an enclave with nothing on the active
    list (its SECS and VA page take the whole EPC) gets ENOMEM."""
    w = World(key, 40, 32)
    assert len(w.encl.pages) == 42
    cpu = SgxCpu(epc_pages=2)
    p = vmsim.Kernel(sgx=cpu).spawn()
    img = image(1)
    dev = loader.SgxDevice(p)
    dev.create(img.secs(loader.reserve_aligned(p, img.size)))
    src = p.mmap(0, PAGE, RW, vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS)
    with pytest.raises(OSError) as err:
        dev.add_pages(src, 0, PAGE, SGX_SECINFO_REG | SGX_SECINFO_R, False)
    assert err.value.errno == errno.ENOMEM


def test_sgx2_ioctls_load_pages_back(key):
    """The SGX2 ioctls reclaim directly below SGX_NR_LOW_PAGES and load a page written
    out back before changing it (sgx_encl_load_page()): MODIFY_TYPES to TRIM of pages
    written out works, and REMOVE_PAGES after EACCEPT frees them."""
    w = World(key, 8)
    w.evict_all()
    off, length = DATA_OFF, 8 * PAGE
    _o, _l, _t, result, count = w.loaded.dev.modify_types(off, length, 4)
    assert (result, count) == (0, length)
    assert all(w.page(i).epc is not None for i in range(8))

    def accept(ctx):
        for i in range(8):
            ctx.eaccept(w.data(i), 4 << 8 | 0x10)

    assert w.enter(accept).function == EEXIT
    assert w.loaded.dev.remove_pages(off, length)[2] == length
    assert all((w.data(i) >> 12) not in w.encl.pages for i in range(8))
    w.p.mm.validate()


def test_watermarks_are_the_kernels():
    assert (SGX_NR_TO_SCAN, SGX_NR_LOW_PAGES, SGX_NR_HIGH_PAGES) == (16, 32, 64)


def test_eldb_loads_the_page_blocked(key):
    """ELDB is ELDU with the page loaded BLOCKED: enclave-mode accesses to it fault
    until it is written out again."""
    w = World(key, 2)
    page = w.page(0)
    epc, secs = page.epc, w.encl.secs
    va = w.encl.va_pages[0].epc_page
    w.encl.epc.unmark_page_reclaimable(epc)
    contents, _pcmd_page, pcmd = swap_buffers()
    assert paging.eblock(epc) == 0 and paging.etrack(secs) == 0
    assert paging.ewb(epc, va, 0, contents, pcmd) == 0
    new = w.cpu.alloc_epc_page()
    assert paging.eldb(new, va, 0, page.addr, secs, contents, pcmd) == 0
    assert new.valid and new.blocked and bytes(new.data) == pattern(0)


# --- under `vmsim run` -------------------------------------------------------------------------

def test_oversubscribed_kselftests_under_vmsim_run_with_a_small_epc(key, tmp_path):
    """`vmsim run --sgx-epc-pages 256`: CPUID leaf 0x12 reports that EPC, the host
    program of the test enclave sizes the oversubscribed scenarios' heap from it as the
    kselftest does (get_total_epc_mem(), 1 MiB here, signed for), and both pass: the
    enclave does not fit, the driver reclaims."""
    pytest.importorskip("unicorn")
    if shutil.which("gcc") is None:
        pytest.skip("no gcc to build the test enclave")
    from vmsim.enclave.testenclave import build
    elf_path, host = build.enclave_elf(), build.host_program()
    sigs = tmp_path / "test_encl.sigstructs"
    sigs.write_bytes(build.sigstructs(elf_path.read_bytes(), key, [PAGE, 256 * PAGE]))
    r = subprocess.run([sys.executable, "-m", "vmsim", "run", "--sgx-epc-pages", "256", "--",
                        str(host), str(elf_path), str(sigs), "unclobbered_vdso_oversubscribed",
                        "unclobbered_vdso_oversubscribed_remove"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [ln for ln in r.stdout.splitlines() if ln.startswith(("ok", "not ok"))] == [
        "ok 1 unclobbered_vdso_oversubscribed", "ok 2 unclobbered_vdso_oversubscribed_remove"]
