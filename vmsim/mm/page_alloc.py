"""Physical page frames: mm/page_alloc.c's alloc_page()/__free_page() over one
"physical memory", so that a page's contents exist once and a CPU emulator can map
that memory as its RAM (vmsim.arch.x86.emu).

Physical memory is a list of chunks, each an anonymous host mapping (MAP_NORESERVE: a
frame costs host memory only once touched). Chunk i holds the physical addresses
[PHYS_BASE + i * CHUNK_SIZE, + its size); the first is FIRST_CHUNK_SIZE bytes, each
next twice its predecessor up to CHUNK_SIZE, so that a process whose address space is
capped (RLIMIT_AS) can start and an emulator still maps few regions (physical memory
has holes between the smaller chunks). A frame is a writable `memoryview` of
PAGE_SIZE bytes inside a chunk; it reads and writes like a bytearray (indexing,
slices, slice assignment of the same length, bytes(), comparison by content), but
never changes size, cannot be hashed and has no bytes methods (find(), +): copy with
bytes() first.

A frame is freed when the last reference to its memoryview goes (a weak reference's
callback, where the kernel has put_page()): the frame goes back on the free list
and is zeroed when handed out again. So a frame must not be kept through a slice
(`page[a:b]` views the same memory but does not keep the frame allocated): copy
with bytes() what must outlive the page.

The zero page (mm/memory.c ZERO_PAGE(0), what a read fault on anonymous memory maps)
is one frame, allocated on first use and never freed; zero_page() hands out a read-only
view of it, so that nothing in the model can write it (page_to_phys() accepts that view).

copy.deepcopy() (check/'s snapshots) copies a frame into a new frame (the zero page
stays itself), through a copyreg reducer: a memoryview cannot be copied otherwise.

Listeners (`on_new_chunk`) hear of each chunk as it is added, so that an emulator maps
it; `on_free` hears of each frame freed (a CPU drops translations of code it held).

Cost: alloc_page() and its freeing O(1) (about 1 µs together); page_to_phys()
O(chunks) (about 0.5 µs).
"""

from __future__ import annotations

import copyreg
import ctypes
import mmap
import weakref
from collections.abc import Callable

from ..uapi import PAGE_SHIFT, PAGE_SIZE

#: a page frame: a writable memoryview of PAGE_SIZE bytes in a chunk
Page = memoryview

#: the most one chunk of physical memory holds, and the spacing of chunks' physical
#: addresses (1 GiB: the emulator maps few regions)
CHUNK_SIZE = 1 << 30
#: the size of the first chunk (each next one is twice as large, up to CHUNK_SIZE)
FIRST_CHUNK_SIZE = 16 << 20
#: where physical memory starts (leaves 0 unused: no frame has physical address 0)
PHYS_BASE = 1 << 32


class Chunk:
    """One host mapping of `size` bytes holding physical [phys, phys + size) (an
    emulator maps [host, host + size) there with mem_map_ptr). `host` is its address in
    this process, `view` a memoryview of all of it, `used` how many frames from its
    start were ever handed out (those past it were never touched)."""

    __slots__ = ("phys", "size", "mapping", "view", "host", "used")

    def __init__(self, phys: int, size: int) -> None:
        self.phys = phys
        self.size = size
        self.mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                                 | getattr(mmap, "MAP_NORESERVE", 0))
        self.view = memoryview(self.mapping)
        self.host = ctypes.addressof(ctypes.c_char.from_buffer(self.mapping))
        self.used = 0


class _FrameRef(weakref.ref):
    """The weak reference to a frame handed out, whose callback frees it; `phys` is the
    frame's physical address."""

    __slots__ = ("phys",)
    phys: int


class PhysMemory:
    """The frames of the machine.

    Invariants (_check()): chunk i's phys is PHYS_BASE + i * CHUNK_SIZE, its size
    min(FIRST_CHUNK_SIZE << i, CHUNK_SIZE); `free`
    holds distinct physical addresses of frames handed out once and since freed;
    `allocated` == len(refs), and + len(free) == the sum of chunk.used; the zero page,
    once allocated, is all zeros and not free.
    """

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        #: physical addresses of freed frames, handed out again first (LIFO)
        self.free: list[int] = []
        #: frames now handed out
        self.allocated = 0
        #: physical address -> the weak reference to the frame handed out there (kept
        #: here so that its callback runs when the frame goes)
        self.refs: dict[int, _FrameRef] = {}
        self.on_new_chunk: list[Callable[[Chunk], None]] = []
        self.on_free: list[Callable[[int], None]] = []
        #: the zero page's frame once allocated (held here: never freed), and the
        #: read-only view of it zero_page() hands out; both None before first use
        self.zero_frame: Page | None = None
        self.zero: Page | None = None

    def alloc_page(self) -> Page:
        """alloc_page(GFP_KERNEL | __GFP_ZERO): a zeroed frame. O(1)."""
        page, reused = self._take_frame()
        if reused:
            page[:] = ZEROS
        return page

    def copy_page(self, src: Page | bytes | bytearray) -> Page:
        """A new frame holding a copy of src, PAGE_SIZE bytes (copy_user_highpage() for
        COW). O(1)."""
        page, _ = self._take_frame()
        page[:] = src
        return page

    def zero_page(self) -> Page:
        """ZERO_PAGE(0): a read-only view of the one frame of zeros, allocated on first
        use. Never written, never freed."""
        if self.zero is None:
            self.zero_frame = self.alloc_page()
            self.zero = self.zero_frame.toreadonly()
        return self.zero

    def page_to_phys(self, page: Page) -> int:
        """The physical address of a frame handed out by alloc_page(), or of the zero
        page. O(chunks)."""
        if page is self.zero and self.zero_frame is not None:
            page = self.zero_frame
        host = ctypes.addressof(ctypes.c_char.from_buffer(page))
        for chunk in self.chunks:
            if chunk.host <= host < chunk.host + chunk.size:
                return chunk.phys + (host - chunk.host)
        raise ValueError("not a page frame of this machine")

    def is_frame(self, page: object) -> bool:
        """Whether page is a frame from this memory (the hook contract's check)."""
        if type(page) is not memoryview or len(page) != PAGE_SIZE or page.readonly:
            return False
        return any(page.obj is chunk.mapping for chunk in self.chunks)

    def _take_frame(self) -> tuple[Page, bool]:
        """A frame now counted as allocated, with its finalizer, and whether it was
        used before (its old contents are still there)."""
        if self.free:
            phys = self.free.pop()
            reused = True
        else:
            chunk = self.chunks[-1] if self.chunks else None
            if chunk is None or chunk.used == chunk.size >> PAGE_SHIFT:
                chunk = self._add_chunk()
            phys = chunk.phys + (chunk.used << PAGE_SHIFT)
            chunk.used += 1
            reused = False
        page = self._view(phys)
        self.allocated += 1
        ref = self.refs[phys] = _FrameRef(page, self._free)
        ref.phys = phys
        return page, reused

    def _view(self, phys: int) -> Page:
        chunk = self.chunks[(phys - PHYS_BASE) // CHUNK_SIZE]
        off = phys - chunk.phys
        return chunk.view[off:off + PAGE_SIZE]

    def _add_chunk(self) -> Chunk:
        i = len(self.chunks)
        chunk = Chunk(PHYS_BASE + i * CHUNK_SIZE, min(FIRST_CHUNK_SIZE << i, CHUNK_SIZE))
        self.chunks.append(chunk)
        for listener in self.on_new_chunk:
            listener(chunk)
        return chunk

    def _free(self, ref: _FrameRef) -> None:
        """__free_page(): the frame's last reference went."""
        phys = ref.phys
        del self.refs[phys]
        self.allocated -= 1
        self.free.append(phys)
        for listener in self.on_free:
            listener(phys)

    def _check(self) -> None:
        for i, chunk in enumerate(self.chunks):
            assert chunk.phys == PHYS_BASE + i * CHUNK_SIZE
            assert chunk.size == min(FIRST_CHUNK_SIZE << i, CHUNK_SIZE)
            assert chunk.used <= chunk.size >> PAGE_SHIFT
        assert len(set(self.free)) == len(self.free)
        assert self.allocated == len(self.refs)
        assert self.allocated + len(self.free) == sum(c.used for c in self.chunks)
        if self.zero_frame is not None:
            assert self.zero_frame == ZEROS, "the zero page was written"
            assert self.page_to_phys(self.zero_frame) not in self.free


def _reduce_frame(view: memoryview) -> tuple[Callable[..., Page], tuple]:
    """copyreg's reducer for memoryview: copy.deepcopy() of a frame is a new frame with
    its contents, of the zero page the zero page itself; any other memoryview still
    cannot be copied."""
    if view is PHYS.zero:
        return zero_page, ()
    if not PHYS.is_frame(view):
        raise TypeError("cannot pickle 'memoryview' object")
    return copy_page, (bytes(view),)


ZEROS = bytes(PAGE_SIZE)

#: the machine's memory: one per Python process, as every Kernel's frames may be mapped
#: by one emulator and a fork()ed child's pages are copies in the same memory
PHYS = PhysMemory()
alloc_page = PHYS.alloc_page
copy_page = PHYS.copy_page
page_to_phys = PHYS.page_to_phys
is_frame = PHYS.is_frame
zero_page = PHYS.zero_page
copyreg.pickle(memoryview, _reduce_frame)
