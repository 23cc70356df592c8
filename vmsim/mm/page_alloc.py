"""Physical page frames: mm/page_alloc.c's alloc_page()/__free_page() over one
"physical memory", so that a page's contents exist once and a CPU emulator can map
that memory as its RAM (vmsim.arch.x86.emu).

Physical memory is a list of chunks, each an anonymous host mapping of CHUNK_SIZE
bytes (MAP_NORESERVE: a frame costs host memory only once touched). Chunk i holds
the physical addresses [PHYS_BASE + i * CHUNK_SIZE, + CHUNK_SIZE). A frame is a
writable `memoryview` of PAGE_SIZE bytes inside a chunk; it reads and writes like
the bytearray it replaces (indexing, slices, slice assignment of the same length,
bytes(), comparison by content), but never changes size.

A frame is freed when the last reference to its memoryview goes (a weakref
finalizer, where the kernel has put_page()): the frame goes back on the free list
and is zeroed when handed out again. So a frame must not be kept through a slice
(`page[a:b]` views the same memory but does not keep the frame allocated): copy
with bytes() what must outlive the page.

Listeners (`on_new_chunk`) hear of each chunk as it is added, so that an emulator maps
it; `on_free` hears of each frame freed (a CPU drops translations of code it held).

Cost: alloc_page() O(1) (about 2 µs, the finalizer included); page_to_phys() O(1)
(about 0.5 µs).
"""

from __future__ import annotations

import ctypes
import mmap
import weakref
from collections.abc import Callable

from ..uapi import PAGE_SHIFT, PAGE_SIZE

#: a page frame: a writable memoryview of PAGE_SIZE bytes in a chunk
Page = memoryview

#: the size of one chunk of physical memory (1 GiB: the emulator maps few regions)
CHUNK_SIZE = 1 << 30
#: where physical memory starts (leaves 0 unused: no frame has physical address 0)
PHYS_BASE = 1 << 32


class Chunk:
    """One host mapping of CHUNK_SIZE bytes holding physical [phys, phys + CHUNK_SIZE).
    `host` is its address in this process (for an emulator's mem_map_ptr), `view` a
    memoryview of all of it, `used` how many frames from its start were ever handed
    out (those past it were never touched)."""

    __slots__ = ("phys", "mapping", "view", "host", "used")

    def __init__(self, phys: int) -> None:
        self.phys = phys
        self.mapping = mmap.mmap(-1, CHUNK_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                                 | getattr(mmap, "MAP_NORESERVE", 0))
        self.view = memoryview(self.mapping)
        self.host = ctypes.addressof(ctypes.c_char.from_buffer(self.mapping))
        self.used = 0


class PhysMemory:
    """The frames of the machine.

    Invariants (_check()): every chunk's phys is PHYS_BASE + index * CHUNK_SIZE; `free`
    holds distinct physical addresses of frames handed out once and since freed;
    `allocated` + len(free) == the sum of chunk.used.
    """

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        #: physical addresses of freed frames, handed out again first (LIFO)
        self.free: list[int] = []
        #: frames now handed out
        self.allocated = 0
        self.on_new_chunk: list[Callable[[Chunk], None]] = []
        self.on_free: list[Callable[[int], None]] = []

    def alloc_page(self) -> Page:
        """alloc_page(GFP_KERNEL | __GFP_ZERO): a zeroed frame. O(1)."""
        if self.free:
            phys = self.free.pop()
            page = self._view(phys)
            page[:] = ZEROS
        else:
            chunk = self.chunks[-1] if self.chunks else None
            if chunk is None or chunk.used == CHUNK_SIZE >> PAGE_SHIFT:
                chunk = self._add_chunk()
            phys = chunk.phys + (chunk.used << PAGE_SHIFT)
            chunk.used += 1
            page = self._view(phys)
        self.allocated += 1
        weakref.finalize(page, self._free, phys)
        return page

    def copy_page(self, src: Page | bytes | bytearray) -> Page:
        """A new frame holding a copy of src (copy_user_highpage() for COW). O(1)."""
        page = self.alloc_page()
        page[:] = src
        return page

    def page_to_phys(self, page: Page) -> int:
        """The physical address of a frame handed out by alloc_page(). O(chunks)."""
        host = ctypes.addressof(ctypes.c_char.from_buffer(page))
        for chunk in self.chunks:
            if chunk.host <= host < chunk.host + CHUNK_SIZE:
                return chunk.phys + (host - chunk.host)
        raise ValueError("not a page frame of this machine")

    def is_frame(self, page: object) -> bool:
        """Whether page is a frame from this memory (the hook contract's check)."""
        if type(page) is not memoryview or len(page) != PAGE_SIZE or page.readonly:
            return False
        return any(page.obj is chunk.mapping for chunk in self.chunks)

    def _view(self, phys: int) -> Page:
        chunk = self.chunks[(phys - PHYS_BASE) // CHUNK_SIZE]
        off = phys - chunk.phys
        return chunk.view[off:off + PAGE_SIZE]

    def _add_chunk(self) -> Chunk:
        chunk = Chunk(PHYS_BASE + len(self.chunks) * CHUNK_SIZE)
        self.chunks.append(chunk)
        for listener in self.on_new_chunk:
            listener(chunk)
        return chunk

    def _free(self, phys: int) -> None:
        """__free_page(): the frame's last reference went."""
        self.allocated -= 1
        self.free.append(phys)
        for listener in self.on_free:
            listener(phys)

    def _check(self) -> None:
        for i, chunk in enumerate(self.chunks):
            assert chunk.phys == PHYS_BASE + i * CHUNK_SIZE
        assert len(set(self.free)) == len(self.free)
        assert self.allocated + len(self.free) == sum(c.used for c in self.chunks)


ZEROS = bytes(PAGE_SIZE)

#: the machine's memory: one per Python process, as every Kernel's frames may be mapped
#: by one emulator and a fork()ed child's pages are copies in the same memory
PHYS = PhysMemory()
alloc_page = PHYS.alloc_page
copy_page = PHYS.copy_page
page_to_phys = PHYS.page_to_phys
is_frame = PHYS.is_frame
