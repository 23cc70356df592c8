"""The SGX kselftest enclave on the model: its image, its eight operations as an
enclave program, and the ENCL_CALL harness (tools/testing/selftests/sgx/
test_encl.c, test_encl_bootstrap.S, test_encl.lds, defines.h, main.c;
spec/sgx-driver.md §5.a and §6). Shared by test_sgx_kselftests.py and
test_sgx_loaders.py.

Image layout (test_encl.lds: PT_LOAD tcs, text, data; load.c appends the heap):

    0x0000  TCS #1, TCS #2   TCS, measured, mapped RW   OSSA 0x5000 / 0x6000, OENTRY encl_entry
    0x2000  .text            REG RX, measured           encl_entry 0x2000, encl_dyn_entry 0x2010
    0x3000  .data            REG RW, measured           encl_buffer[8192] = {1} (0x3000-0x5000),
                                                        encl_ssa_tcs1 0x5000, encl_ssa_tcs2 0x6000,
                                                        stack of TCS #1 0x7000 (encl_stack 0x8000),
                                                        stack of TCS #2 0x8000
    0x9000  heap             REG RW, unmeasured         heap_pages pages of zeros

ELRANGE = the smallest power of two covering it all (0x10000 with the default 1-page
heap), SECS {ssa_frame_size 1, MODE64BIT, xfrm 3}, as load.c/encl_ioc_create do.
"""

from __future__ import annotations

import struct

from vmsim import MAP_ANONYMOUS, MAP_PRIVATE, PROT_EXEC, PROT_READ, PROT_WRITE
from vmsim.arch.x86 import vdso
from vmsim.arch.x86.sgx.defs import (
    EENTER,
    ERESUME,
    SGX_ATTR_MODE64BIT,
    SGX_SECINFO_R,
    SGX_SECINFO_REG,
    SGX_SECINFO_TCS,
    SGX_SECINFO_W,
    SGX_SECINFO_X,
)
from vmsim.enclave.image import EnclaveImage
from vmsim.enclave.segment import Segment, covering_size, encode_tcs

PAGE_SIZE = 4096
MAGIC = 0x1122334455667788
MAGIC2 = 0x8877665544332211

TCS_OFFSET = 0x0000
TEXT_OFFSET = 0x2000
DATA_OFFSET = 0x3000
ENCL_BUFFER = DATA_OFFSET                 # encl_buffer, 2 pages
ENCL_SSA_TCS1 = 0x5000
ENCL_SSA_TCS2 = 0x6000
ENCL_STACK = 0x8000                       # label between the two stack pages
HEAP_OFFSET = 0x9000
ENCL_ENTRY = TEXT_OFFSET                  # symbol values (the enclave is linked at 0)
ENCL_DYN_ENTRY = TEXT_OFFSET + 0x10

# enum encl_op_type (defines.h)
(ENCL_OP_PUT_TO_BUFFER, ENCL_OP_GET_FROM_BUFFER, ENCL_OP_PUT_TO_ADDRESS,
 ENCL_OP_GET_FROM_ADDRESS, ENCL_OP_NOP, ENCL_OP_EACCEPT, ENCL_OP_EMODPE,
 ENCL_OP_INIT_TCS_PAGE, ENCL_OP_MAX) = range(9)


def build_test_encl(heap_pages: int = 1) -> EnclaveImage:
    """test_encl.elf as load.c turns it into segments, plus the heap."""
    tcs = b"".join(encode_tcs(ossa=ssa, nssa=1, oentry=ENCL_ENTRY)
                   for ssa in (ENCL_SSA_TCS1, ENCL_SSA_TCS2))
    text = b"\xcc" * PAGE_SIZE
    data = b"\x01" + bytes(6 * PAGE_SIZE - 1)
    rw = PROT_READ | PROT_WRITE
    segments = [
        Segment(TCS_OFFSET, tcs, SGX_SECINFO_TCS, rw, True, "tcs"),
        Segment(TEXT_OFFSET, text, SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_X,
                PROT_READ | PROT_EXEC, True, "text"),
        Segment(DATA_OFFSET, data, SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W, rw, True,
                "data"),
    ]
    if heap_pages:
        segments.append(Segment(HEAP_OFFSET, bytes(heap_pages * PAGE_SIZE),
                                SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W, rw, False,
                                "heap"))
    image = EnclaveImage(size=covering_size(segments[-1].end), segments=segments,
                         ssa_frame_size=1, attributes=SGX_ATTR_MODE64BIT, xfrm=3)
    image.validate()
    return image


# --- the enclave's code -------------------------------------------------------------

def _encl_body(ctx, base: int, rdi: int) -> None:
    """encl_body() and the do_encl_op_* functions of test_encl.c. The op struct lives
    in untrusted memory at rdi (the caller's stack), as in the selftest."""
    op_type = ctx.read64(rdi)
    if op_type >= ENCL_OP_MAX:
        return
    ctx.fetch(base + TEXT_OFFSET + 0x100 + 0x40 * op_type)     # the op function
    if op_type == ENCL_OP_PUT_TO_BUFFER:
        ctx.write64(base + ENCL_BUFFER, ctx.read64(rdi + 8))
    elif op_type == ENCL_OP_GET_FROM_BUFFER:
        ctx.write64(rdi + 8, ctx.read64(base + ENCL_BUFFER))
    elif op_type == ENCL_OP_PUT_TO_ADDRESS:
        value, addr = ctx.read64(rdi + 8), ctx.read64(rdi + 16)
        ctx.write64(addr, value)
    elif op_type == ENCL_OP_GET_FROM_ADDRESS:
        addr = ctx.read64(rdi + 16)
        ctx.write64(rdi + 8, ctx.read64(addr))
    elif op_type == ENCL_OP_NOP:
        pass
    elif op_type == ENCL_OP_EACCEPT:
        epc_addr, flags = ctx.read64(rdi + 8), ctx.read64(rdi + 16)
        ctx.write64(rdi + 24, ctx.eaccept(epc_addr, flags))
    elif op_type == ENCL_OP_EMODPE:
        epc_addr, flags = ctx.read64(rdi + 8), ctx.read64(rdi + 16)
        ctx.emodpe(epc_addr, flags)
    elif op_type == ENCL_OP_INIT_TCS_PAGE:
        tcs, ssa, entry = ctx.read64(rdi + 8), ctx.read64(rdi + 16), ctx.read64(rdi + 24)
        ctx.write(tcs, bytes(16))                            # STATE and FLAGS
        ctx.write(tcs + 16, struct.pack("<Q", ssa))          # OSSA
        ctx.write(tcs + 24, bytes(4))                        # CSSA
        ctx.write(tcs + 28, struct.pack("<I", 1))            # NSSA
        ctx.write(tcs + 32, struct.pack("<Q", entry))        # OENTRY
        ctx.write(tcs + 40, bytes(24))                       # AEP, OFSBASE, OGSBASE
        ctx.write(tcs + 64, struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF))  # FS/GS limit
        ctx.write(tcs + 72, bytes(4024))                     # reserved


def enclave_code(base: int, tcs: int):
    """The code at OENTRY (test_encl_bootstrap.S), where EENTER left RIP: encl_entry
    takes the stack encl_stack + (TCS - base); encl_dyn_entry takes the page just below
    the TCS. It pushes the caller's RSP and the return address, calls encl_body, pops,
    EEXITs."""
    def program(ctx, rdi):
        oentry = ctx.regs.rip - base
        ctx.fetch(base + oentry)
        if oentry == ENCL_ENTRY:
            rsp = base + ENCL_STACK + (tcs - base)
        else:
            rsp = tcs - 1
        ctx.write64(rsp - 8, 0x7FFFFFFFE000)         # push %rax (untrusted RSP)
        ctx.write64(rsp - 16, 0x7FFFF7FF0000)        # push %rcx (after EENTER)
        _encl_body(ctx, base, rdi)
        ctx.read64(rsp - 16)                         # pop %rbx
        ctx.read64(rsp - 8)                          # pop %rax
    return program


class TestEnclave:
    """The selftest's `self->encl` + `self->run` and ENCL_CALL, on a loaded enclave.

    The op structs are written to an anonymous page of the process (the selftest's
    stack) and passed to the enclave by address; the fields the enclave writes back
    are read from there after the call.
    """

    __test__ = False    # not a pytest class

    def __init__(self, p, loaded):
        self.p = p
        self.loaded = loaded
        self.base = loaded.base
        self.size = loaded.size
        self.fd = loaded.dev.fd
        self.encl = p.files[self.fd].private_data       # the driver's struct sgx_encl
        self.stack = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS)
        self.run = vdso.SgxEnclaveRun(tcs=self.base)
        self.segments = [seg for _a, _l, _p, seg in loaded.segments]

    @property
    def data_offset(self) -> int:
        """encl_get_data_offset(): the first RW segment after the TCS."""
        return next(s.offset for s in self.segments[1:] if s.prot == PROT_READ | PROT_WRITE)

    @property
    def tcs_offset(self) -> int:
        return self.segments[0].offset

    @property
    def total_size(self) -> int:
        return sum(s.size for s in self.segments)

    def call(self, op: list[int], function: int = EENTER) -> tuple[int, list[int]]:
        """ENCL_CALL(&op, &run, clobbered): returns (vDSO return value, op fields as
        the enclave left them)."""
        addr = self.stack
        self.p.write(addr, struct.pack(f"<{len(op)}Q", *op))
        tcs = self.run.tcs
        ret = vdso.enter_enclave(self.p, self.run, function=function,
                                 program=enclave_code(self.base, tcs),
                                 args=(addr,))
        return ret, list(struct.unpack(f"<{len(op)}Q", self.p.read(addr, 8 * len(op))))

    def eresume(self) -> int:
        """vdso_sgx_enter_enclave(..., ERESUME, ..., &run)."""
        return vdso.enter_enclave(self.p, self.run, function=ERESUME)

    def clear_exception(self) -> None:
        self.run.exception_vector = 0
        self.run.exception_error_code = 0
        self.run.exception_addr = 0

    # the ops, as main.c fills them in
    def put_to_buf(self, value: int) -> int:
        return self.call([ENCL_OP_PUT_TO_BUFFER, value])[0]

    def get_from_buf(self) -> tuple[int, int]:
        ret, op = self.call([ENCL_OP_GET_FROM_BUFFER, 0])
        return ret, op[1]

    def put_to_addr(self, addr: int, value: int) -> int:
        return self.call([ENCL_OP_PUT_TO_ADDRESS, value, addr])[0]

    def get_from_addr(self, addr: int) -> tuple[int, int]:
        ret, op = self.call([ENCL_OP_GET_FROM_ADDRESS, 0, addr])
        return ret, op[1]

    def nop(self) -> int:
        return self.call([ENCL_OP_NOP])[0]

    def eaccept(self, epc_addr: int, flags: int) -> tuple[int, int]:
        ret, op = self.call([ENCL_OP_EACCEPT, epc_addr, flags, 0])
        return ret, op[3]

    def emodpe(self, epc_addr: int, flags: int) -> int:
        return self.call([ENCL_OP_EMODPE, epc_addr, flags])[0]

    def init_tcs_page(self, tcs_page: int, ssa: int, entry: int) -> int:
        return self.call([ENCL_OP_INIT_TCS_PAGE, tcs_page, ssa, entry])[0]

    def exception(self) -> tuple[int, int, int]:
        return (self.run.exception_vector, self.run.exception_error_code,
                self.run.exception_addr)
