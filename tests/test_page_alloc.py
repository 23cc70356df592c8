"""Page frames (vmsim/mm/page_alloc.py, mm/page_alloc.c's alloc_page()/__free_page()):
every page the model maps is a frame of one physical memory, handed out zeroed, freed
when its last reference goes; the zero page is one read-only frame. The frames the
model drops (munmap, MADV_DONTNEED, exit, COW, truncate) go back to the free list.
"""

from __future__ import annotations

import copy
import gc

import pytest

import vmsim
from vmsim import (
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    O_RDWR,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    VM_IO,
    VM_PFNMAP,
)
from vmsim.mm.fault import vmf_insert_pfn
from vmsim.mm.page_alloc import (
    CHUNK_SIZE,
    FIRST_CHUNK_SIZE,
    PHYS,
    PHYS_BASE,
    PhysMemory,
    alloc_page,
    copy_page,
    is_frame,
    page_to_phys,
    zero_page,
)

P = PAGE_SIZE
W = 0x7E0000000000
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED


def allocated() -> int:
    """Frames handed out now, once the garbage of earlier steps is gone."""
    gc.collect()
    return PHYS.allocated


@pytest.fixture
def start():
    """The number of frames allocated before the test (the zero page included)."""
    zero_page()
    before = allocated()
    yield before
    PHYS._check()


# --- frames ---------------------------------------------------------------------------

def test_a_new_frame_is_zeroed_even_when_reused(start):
    page = alloc_page()
    assert page == bytes(P) and len(page) == P and not page.readonly
    page[:] = b"\xa5" * P
    phys = page_to_phys(page)
    del page
    assert allocated() == start
    again = alloc_page()                # the free list is LIFO
    assert page_to_phys(again) == phys and again == bytes(P)
    assert allocated() == start + 1
    PHYS._check()


def test_copy_page_is_a_new_frame_with_the_same_bytes(start):
    src = alloc_page()
    src[100:104] = b"abcd"
    dup = copy_page(src)
    assert dup == src and page_to_phys(dup) != page_to_phys(src)
    dup[100] = ord("X")
    assert src[100:104] == b"abcd"      # independent
    from_bytes = copy_page(b"\x01" * P)
    assert from_bytes == b"\x01" * P and is_frame(from_bytes)
    assert allocated() == start + 3


def test_page_to_phys_is_distinct_aligned_and_in_a_chunk(start):
    frames = [alloc_page() for _ in range(64)]
    phys = [page_to_phys(f) for f in frames]
    assert len(set(phys)) == 64
    assert all(a % P == 0 and a >= PHYS_BASE for a in phys)
    for f, a in zip(frames, phys, strict=True):
        chunk = PHYS.chunks[(a - PHYS_BASE) // CHUNK_SIZE]
        assert chunk.phys <= a < chunk.phys + chunk.size
        off = a - chunk.phys
        f[0] = 0x5A
        assert chunk.view[off] == 0x5A  # the frame is that memory


def test_is_frame_accepts_frames_only():
    frame = alloc_page()
    assert is_frame(frame)
    for other in (bytearray(P), bytes(P), memoryview(bytearray(P)), frame[:P // 2],
                  frame.toreadonly(), zero_page(), None, 7):
        assert not is_frame(other), repr(type(other))


def test_the_zero_page_is_one_read_only_frame_of_zeros(start):
    zero = zero_page()
    assert zero is zero_page() and zero == bytes(P) and zero.readonly
    with pytest.raises(TypeError):
        zero[0] = 1
    assert page_to_phys(zero) >= PHYS_BASE
    assert allocated() == start         # allocated once, before the test


def test_on_free_hears_the_physical_address_freed(start):
    heard: list[int] = []
    PHYS.on_free.append(heard.append)
    try:
        page = alloc_page()
        phys = page_to_phys(page)
        del page
        gc.collect()
    finally:
        PHYS.on_free.remove(heard.append)
    assert heard == [phys]


def test_chunks_grow_from_the_first_size_and_listeners_hear_them():
    mem = PhysMemory()
    heard = []
    mem.on_new_chunk.append(heard.append)
    frames = [mem.alloc_page() for _ in range(FIRST_CHUNK_SIZE // P + 1)]
    assert [c.size for c in mem.chunks] == [FIRST_CHUNK_SIZE, 2 * FIRST_CHUNK_SIZE]
    assert heard == mem.chunks
    assert mem.page_to_phys(frames[-1]) == PHYS_BASE + CHUNK_SIZE   # the second chunk
    assert mem.page_to_phys(frames[-2]) == PHYS_BASE + FIRST_CHUNK_SIZE - P
    mem._check()
    del frames
    gc.collect()
    assert mem.allocated == 0
    mem._check()


def test_deepcopy_makes_new_frames_and_keeps_the_zero_page():
    frame = copy_page(b"\x07" * P)
    pair = [frame, frame, zero_page()]
    dup = copy.deepcopy(pair)
    assert dup[0] is dup[1] and dup[0] == frame and is_frame(dup[0])
    assert page_to_phys(dup[0]) != page_to_phys(frame)
    assert dup[2] is zero_page()
    with pytest.raises(TypeError):
        copy.deepcopy(memoryview(bytearray(P)))


# --- the model's pages are frames, and go when the model drops them ---------------------

def test_anonymous_and_page_cache_pages_are_frames(start):
    k = vmsim.Kernel()
    p = k.spawn()
    p.mmap(W, 2 * P, RW, ANON)
    p.write(W, b"anon")
    assert is_frame(p.mm.anon_pages[W // P])
    assert p.read(W + P, 4) == bytes(4)             # the zero page: nothing allocated
    assert W // P + 1 not in p.mm.anon_pages
    fd = p.memfd_create("f")
    p.ftruncate(fd, P)
    p.mmap(W + 4 * P, P, RW, MAP_SHARED | MAP_FIXED, fd)
    p.write(W + 4 * P, b"shm")
    cache = p.files[fd].inode.pages
    assert is_frame(cache[0]) and bytes(cache[0][:3]) == b"shm"
    p.mm.validate()


def test_frames_return_after_munmap(start):
    k = vmsim.Kernel()
    p = k.spawn()
    p.mmap(W, 8 * P, RW, ANON)
    for i in range(8):
        p.write(W + i * P, b"x")
    assert allocated() == start + 8
    p.munmap(W, 8 * P)
    assert allocated() == start
    p.mm.validate()


def test_frames_return_after_madv_dontneed(start):
    k = vmsim.Kernel()
    p = k.spawn()
    p.mmap(W, 4 * P, RW, ANON)
    p.write(W, b"y" * 4 * P)
    assert allocated() == start + 4
    p.madvise(W + P, 2 * P, MADV_DONTNEED)
    assert allocated() == start + 2
    assert p.read(W + P, 2) == b"\0\0"
    p.madvise(W, 4 * P, MADV_DONTNEED)
    assert allocated() == start


def test_frames_return_after_exit_of_parent_and_child(start):
    k = vmsim.Kernel()
    p = k.spawn()
    p.mmap(W, 4 * P, RW, ANON)
    p.write(W, b"z" * 4 * P)
    child = p.fork()
    assert allocated() == start + 8                 # the model copies at fork
    child_frame, parent_frame = child.mm.anon_pages[W // P], p.mm.anon_pages[W // P]
    assert child_frame == parent_frame and page_to_phys(child_frame) != page_to_phys(parent_frame)
    del child_frame, parent_frame
    child.exit()
    assert allocated() == start + 4
    p.exit()
    assert allocated() == start


def test_frames_return_after_cow_replaces_a_page(start):
    k = vmsim.Kernel()
    p = k.spawn()
    fd = p.memfd_create("cow")
    p.ftruncate(fd, 2 * P)
    p.pwrite(fd, b"file", 0)
    cached = allocated()
    p.mmap(W, 2 * P, RW, MAP_PRIVATE | MAP_FIXED, fd)
    assert p.read(W, 4) == b"file"                  # the page-cache page
    assert allocated() == cached
    p.write(W, b"COW!")                             # a private copy replaces it
    assert allocated() == cached + 1
    assert bytes(p.files[fd].inode.pages[0][:4]) == b"file"
    p.mmap(W, 2 * P, RW, MAP_PRIVATE | MAP_FIXED, fd)   # MAP_FIXED drops the copy
    assert allocated() == cached
    p.close(fd)


def test_frames_return_after_truncate(start):
    k = vmsim.Kernel()
    p = k.spawn()
    fd = p.memfd_create("t")
    p.ftruncate(fd, 4 * P)
    p.mmap(W, 4 * P, RW, MAP_SHARED | MAP_FIXED, fd)
    p.write(W, b"t" * 4 * P)
    assert allocated() == start + 4
    p.ftruncate(fd, P)
    assert allocated() == start + 1
    p.munmap(W, 4 * P)
    p.close(fd)
    assert allocated() == start


def test_a_tmpfs_file_keeps_its_pages_until_it_is_gone(start):
    k = vmsim.Kernel()
    p = k.spawn()
    fd = p.open("/dev/shm/pages", O_RDWR | vmsim.O_CREAT)
    p.ftruncate(fd, 2 * P)
    p.mmap(W, 2 * P, RW, MAP_SHARED | MAP_FIXED, fd)
    p.write(W, b"s" * 2 * P)
    p.munmap(W, 2 * P)
    p.close(fd)
    assert allocated() == start + 2                 # the page cache keeps them
    del k, p
    assert allocated() == start


# --- what drivers hand the core must be frames -------------------------------------------

class PagesOps(vmsim.VmOperations):
    """->fault hands out `page` for every address (or, in a VM_PFNMAP VMA, inserts a PFN
    whose cpu_page() is `page`)."""

    def __init__(self, page):
        self.page = page

    def fault(self, vma, addr, write):
        if not vma.flags & VM_PFNMAP:
            return self.page
        vmf_insert_pfn(vma, addr & ~(P - 1), self)
        return None

    def cpu_page(self):
        return self.page


class PagesDevice(vmsim.FileOperations):
    def __init__(self, page, vm_flags=0):
        self.ops, self.vm_flags = PagesOps(page), vm_flags

    def mmap(self, file, vma):
        vma.vm_ops = self.ops
        vma.flags |= self.vm_flags


def device_process(page, vm_flags=0):
    k = vmsim.Kernel(pkeys=False, sgx=False)
    k.fs.add_device("/dev/pages", PagesDevice(page, vm_flags))
    p = k.spawn()
    fd = p.open("/dev/pages", O_RDWR)
    p.mmap(W, P, RW, MAP_SHARED | MAP_FIXED, fd, 0)
    return p


@pytest.mark.parametrize("vm_flags", [0, VM_IO | VM_PFNMAP], ids=["fault", "pfn"])
def test_a_driver_page_must_be_a_frame(vm_flags):
    frame = copy_page(b"\x42" * P)
    p = device_process(frame, vm_flags)
    assert p.read(W, 2) == b"\x42\x42"
    p.write(W, b"w")                                # a shared page: written in place
    assert frame[0] == ord("w")
    for page in (bytearray(b"\x42" * P), memoryview(bytearray(P)), zero_page()):
        p = device_process(page, vm_flags)
        with pytest.raises(vmsim.HookContractError):
            p.read(W, 1)
        p.mm.validate()
