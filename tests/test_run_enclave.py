"""Enclave mode of the CPU bridge (issue #12), on real enclave code: a probe enclave and
its host, built here with gcc from the test enclave's entry, layout and loader
(vmsim/enclave/testenclave: encl_entry.S, encl.lds, host_load.c, host_vdso.c) and the
operations and scenarios below, run on the emulated CPU with the model as the kernel.

What is checked, each against the SDM and the kernel's vDSO ABI: EACCEPT's answer in RAX
to the enclave code (SGX_PAGE_ATTRIBUTES_MISMATCH); SYSCALL and CPUID inside the enclave
are #UD, an AEX reported through struct sgx_enclave_run, and the SSA frame then holds
the interrupted registers (read through the model: the EPC page's contents); a first
touch of an enclave page, and EACCEPT of a hole, are an AEX (#PF in the SSA frame's
EXITINFO and EXINFO), the driver's ->fault, and the ERESUME at the vDSO's AEP, which
completes the access; the augment flow (#PF, EAUG, the AEX reported as
ERESUME/14/0x8007, EACCEPT from the other TCS, ERESUME); a host that enters without the
vDSO gets SIGSEGV with the SGX error code at the AEP; the end of a thread's slice inside
the enclave is an interrupt AEX, and ERESUME at the vDSO's AEP carries on, also with two
threads in one enclave on its two TCSs; the REPORT of EREPORT verifies with the key
EGETKEY gives and with the one the model derives.
"""

import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

import vmsim
from vmsim.arch.x86.sgx import enclu
from vmsim.arch.x86.sgx.cpu import SgxCpu
from vmsim.arch.x86.sgx.defs import (
    GPRSGX_FORMAT,
    GPRSGX_REGS,
    SGX_ATTR_INIT,
    SGX_ATTR_MODE64BIT,
    SGX_MISC_EXINFO,
)
from vmsim.drivers.sgx.encl import Encl
from vmsim.enclave import signing
from vmsim.enclave.testenclave import build

pytest.importorskip("unicorn")

PAGE = 4096
MAGIC = 0x1122334455667788
#: the registers the probe enclave sets before its SYSCALL and CPUID
MARKS = {"r12": 0x1212121212121212, "r13": 0x1313131313131313, "r14": 0x1414141414141414,
         "r15": 0x1515151515151515}
#: EXITINFO of a #UD: VALID, EXIT_TYPE 3 (hardware exception), vector 6
EXITINFO_UD = 1 << 31 | 3 << 8 | 6
#: EXITINFO of a #PF with MISCSELECT.EXINFO: VALID, EXIT_TYPE 3, vector 14
EXITINFO_PF = 1 << 31 | 3 << 8 | 14
#: SGX_IOC_ENCLAVE_CREATE: _IOW(0xa4, 0, struct sgx_enclave_create)
SGX_IOC_ENCLAVE_CREATE = 0x4008A400
SYS_IOCTL = 16
#: the offset of MISCSELECT in the SECS
SECS_MISCSELECT = 20
#: the EPC the probes run on, in pages
EPC_PAGES = 256
SYS_GETPPID = 110

PROBE_OPS = r"""
/* The probe enclave's operations (tests/test_run_enclave.py). */
#include <stdint.h>

#include "encl_abi.h"

uint8_t encl_buffer[2 * 4096] __attribute__((section(".data.encl_buffer"))) = { 1 };

enum { PROBE_EACCEPT, PROBE_SYSCALL, PROBE_CPUID, PROBE_PUT, PROBE_GET, PROBE_SPIN };

struct probe_op {
    uint64_t type;
    uint64_t addr;
    uint64_t value;
    uint64_t ret;
};

/* EACCEPT of the page at addr with the SECINFO flags in value: RAX in ret */
static void probe_eaccept(struct probe_op *op)
{
    struct sgx_secinfo secinfo = { .flags = op->value };
    uint64_t rax;

    asm volatile("enclu" : "=a" (rax) : "a" (EACCEPT), "b" (&secinfo), "c" (op->addr)
             : "memory");
    op->ret = rax;
}

/* SYSCALL (getpid) with R12-R15 marked; enclave mode refuses it: #UD */
static void probe_syscall(struct probe_op *op)
{
    register uint64_t r12 asm("r12") = 0x1212121212121212;
    register uint64_t r13 asm("r13") = 0x1313131313131313;
    register uint64_t r14 asm("r14") = 0x1414141414141414;
    register uint64_t r15 asm("r15") = 0x1515151515151515;

    asm volatile(".globl probe_syscall_at\nprobe_syscall_at:\n\tsyscall"
             : : "a" (39), "r" (r12), "r" (r13), "r" (r14), "r" (r15)
             : "rcx", "r11", "memory");
}

/* CPUID of leaf 0x12: #UD inside an enclave */
static void probe_cpuid(struct probe_op *op)
{
    asm volatile(".globl probe_cpuid_at\nprobe_cpuid_at:\n\tcpuid"
             : : "a" (0x12), "c" (0) : "rbx", "rdx", "memory");
}

static void probe_put(struct probe_op *op)
{
    *(volatile uint64_t *)op->addr = op->value;
}

static void probe_get(struct probe_op *op)
{
    op->value = *(volatile uint64_t *)op->addr;
}

/* value rounds of a 64-bit LCG from 1: long enough for the slice to end inside */
__attribute__((noinline)) void probe_spin(struct probe_op *op)
{
    uint64_t x = 1, i;

    for (i = 0; i < op->value; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    op->ret = x;
}

void encl_dispatch(void *op);

void encl_dispatch(void *_op)
{
    struct probe_op *op = _op;

    switch (op->type) {
    case PROBE_EACCEPT: probe_eaccept(op); break;
    case PROBE_SYSCALL: probe_syscall(op); break;
    case PROBE_CPUID: probe_cpuid(op); break;
    case PROBE_PUT: probe_put(op); break;
    case PROBE_GET: probe_get(op); break;
    case PROBE_SPIN: probe_spin(op); break;
    }
}
"""

PROBE_HOST = r"""
/* The probe enclave's host (tests/test_run_enclave.py): probe ELF SIGSTRUCTS SCENARIO */
#define _GNU_SOURCE  /* REG_* of ucontext.h */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "host.h"

enum { PROBE_EACCEPT, PROBE_SYSCALL, PROBE_CPUID, PROBE_PUT, PROBE_GET, PROBE_SPIN };

struct probe_op {
    uint64_t type;
    uint64_t addr;
    uint64_t value;
    uint64_t ret;
};

vdso_sgx_enter_enclave_t vdso_sgx_enter_enclave;
static struct encl encl;

void diag(const char *fmt, ...)
{
    va_list ap;

    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* Every entry from one place: a resumed enclave returns to its EENTER's stack frame. */
static __attribute__((noinline)) int enter(struct sgx_enclave_run *run, struct probe_op *op,
                       unsigned int function)
{
    int ret = vdso_sgx_enter_enclave((unsigned long)op, 0, 0, function, 0, 0, run);

    asm volatile("" : : : "r12", "r13", "r14", "r15");  /* zero after an AEX */
    return ret;
}

static void report(const char *what, int ret, const struct sgx_enclave_run *run)
{
    uint64_t addr = run->exception_addr ? run->exception_addr - encl.base : 0;

    printf("%s: ret %d function %u vector %u error %#x addr +%#llx\n", what, ret,
           run->function, run->exception_vector, run->exception_error_code,
           (unsigned long long)addr);
}

static void call(const char *what, uint64_t tcs, struct probe_op *op)
{
    struct sgx_enclave_run run = { .tcs = encl.base + tcs };

    report(what, enter(&run, op, EENTER), &run);
}

static void eaccept(void)
{
    uint64_t data = encl.base + encl_data_offset(&encl);
    struct probe_op wrong = { PROBE_EACCEPT, data, SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_PR };
    struct probe_op pending = { PROBE_EACCEPT, data, SGX_SECINFO_REG | SGX_SECINFO_R |
                    SGX_SECINFO_W | SGX_SECINFO_PENDING };
    struct probe_op same = { PROBE_EACCEPT, data, SGX_SECINFO_REG | SGX_SECINFO_R |
                 SGX_SECINFO_W | SGX_SECINFO_PR };

    call("eaccept r", 0, &wrong);
    printf("eaccept r: rax %llu\n", (unsigned long long)wrong.ret);
    call("eaccept rw pending", 0, &pending);
    printf("eaccept rw pending: rax %llu\n", (unsigned long long)pending.ret);
    call("eaccept rw", 0, &same);
    printf("eaccept rw: rax %llu\n", (unsigned long long)same.ret);
}

static void refused(void)
{
    struct probe_op syscall_op = { PROBE_SYSCALL }, cpuid_op = { PROBE_CPUID };

    call("syscall", 0, &syscall_op);
    getppid();  /* the test reads the SSA frame here */
    call("cpuid", PAGE_SIZE, &cpuid_op);
    call("again", 0, &syscall_op);  /* TCS #0's one SSA frame is in use */
}

static void augment(void)
{
    uint64_t page = encl.base + encl_loaded_size(&encl);
    struct sgx_enclave_run run = { .tcs = encl.base };
    struct probe_op put = { PROBE_PUT, page, 0x1122334455667788ULL };
    struct probe_op accept = { PROBE_EACCEPT, page, SGX_SECINFO_REG | SGX_SECINFO_R |
                   SGX_SECINFO_W | SGX_SECINFO_PENDING };
    struct probe_op get = { PROBE_GET, page };

    if (mmap((void *)page, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
         encl.fd, 0) == MAP_FAILED) {
        perror("mmap");
        return;
    }
    report("put", enter(&run, &put, EENTER), &run);
    run.exception_vector = run.exception_error_code = run.exception_addr = 0;
    call("eaccept", PAGE_SIZE, &accept);
    printf("eaccept: rax %llu\n", (unsigned long long)accept.ret);
    report("resume", enter(&run, &put, ERESUME), &run);
    call("get", 0, &get);
    printf("get: %#llx\n", (unsigned long long)get.value);
}

extern char raw_aep[];
static sigjmp_buf after_signal;

static void on_segv(int sig, siginfo_t *info, void *context)
{
    const greg_t *gregs = ((ucontext_t *)context)->uc_mcontext.gregs;

    printf("SIGSEGV code %d addr +%#llx err %#llx trapno %lld at aep %d rax %lld rbx +%#llx\n",
           info->si_code, (unsigned long long)((uint64_t)info->si_addr - encl.base),
           (unsigned long long)gregs[REG_ERR], (long long)gregs[REG_TRAPNO],
           gregs[REG_RIP] == (greg_t)raw_aep, (long long)gregs[REG_RAX],
           (unsigned long long)(gregs[REG_RBX] - encl.base));
    siglongjmp(after_signal, 1);
}

/* EENTER with an ENCLU of our own as the AEP: an exception inside is a signal */
static void signal_at_aep(void)
{
    struct probe_op put = { PROBE_PUT, encl.base, 1 };  /* the TCS page: EPCM refuses */
    struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };

    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(after_signal, 1))
        return;
    asm volatile("lea raw_aep(%%rip), %%rcx\n"
             ".globl raw_aep\nraw_aep:\n\tenclu"
             : : "a" (EENTER), "b" (encl.base), "D" (&put)
             : "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
               "memory");
    printf("no signal\n");
}

struct spinner {
    uint64_t tcs;
    struct probe_op op;
    struct sgx_enclave_run run;
    int ret;
};

static void *spin(void *arg)
{
    struct spinner *s = arg;

    s->run.tcs = encl.base + s->tcs;
    s->ret = enter(&s->run, &s->op, EENTER);
    return NULL;
}

static volatile int spun;

static void *wait_for_spin(void *arg)
{
    while (!spun)
        ;
    return NULL;
}

/* a first touch inside: the PTE of encl_buffer's second page is installed by the
   driver's ->fault after an AEX; the ERESUME at the vDSO's AEP completes the write */
static void first_touch(void)
{
    uint64_t data = encl.base + encl_data_offset(&encl);
    struct probe_op warm = { PROBE_GET, data };
    struct probe_op put = { PROBE_PUT, data + PAGE_SIZE + 8, 0x1122334455667788ULL };
    struct probe_op get = { PROBE_GET, data + PAGE_SIZE + 8 };

    call("warm", 0, &warm);
    call("put", 0, &put);
    getppid();  /* the test reads the SSA frame here */
    call("get", 0, &get);
    printf("get: %#llx\n", (unsigned long long)get.value);
}

/* EACCEPT of a mapped hole no access has faulted in: the leaf's #PF is an AEX, the
   driver EAUGs the page, the ERESUME at the vDSO's AEP executes the EACCEPT again */
static void accept_first(void)
{
    uint64_t page = encl.base + encl_loaded_size(&encl);
    struct probe_op accept = { PROBE_EACCEPT, page, SGX_SECINFO_REG | SGX_SECINFO_R |
                   SGX_SECINFO_W | SGX_SECINFO_PENDING };
    struct probe_op put = { PROBE_PUT, page, 0x1122334455667788ULL };
    struct probe_op get = { PROBE_GET, page };

    if (mmap((void *)page, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
         encl.fd, 0) == MAP_FAILED) {
        perror("mmap");
        return;
    }
    call("eaccept", 0, &accept);
    printf("eaccept: rax %llu\n", (unsigned long long)accept.ret);
    getppid();  /* the test reads the SSA frame here */
    call("put", 0, &put);
    call("get", 0, &get);
    printf("get: %#llx\n", (unsigned long long)get.value);
}

/* one thread in the enclave while another runs: its slice ends inside */
static void preempted(void)
{
    struct spinner s = { 0, { PROBE_SPIN, 0, 3000 } };
    pthread_t other;

    pthread_create(&other, NULL, wait_for_spin, NULL);
    spin(&s);
    spun = 1;
    pthread_join(other, NULL);
    report("spin", s.ret, &s.run);
    printf("spin: %#llx\n", (unsigned long long)s.op.ret);
}

/* two threads in the enclave at once, one per TCS */
static void two_threads(void)
{
    struct spinner s[2] = { { 0, { PROBE_SPIN, 0, 2000 } },
                { PAGE_SIZE, { PROBE_SPIN, 0, 3000 } } };
    pthread_t threads[2];
    unsigned int i;

    for (i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, spin, &s[i]);
    for (i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        report("spin", s[i].ret, &s[i].run);
        printf("spin: %#llx\n", (unsigned long long)s[i].op.ret);
    }
}

/* EENTER of a TCS that is none, without an enclave: the fault of ENCLU itself */
static void no_tcs(void)
{
    static uint8_t page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
    struct probe_op op = { PROBE_SPIN };
    uint64_t tcs[] = { (uint64_t)page, (uint64_t)page + 64 };
    unsigned int i;

    for (i = 0; i < 2; i++) {
        struct sgx_enclave_run run = { .tcs = tcs[i] };
        int ret = enter(&run, &op, EENTER);

        printf("tcs +%u: ret %d function %u vector %u error %#x at tcs %d\n",
               (unsigned int)(tcs[i] - (uint64_t)page), ret, run.function,
               run.exception_vector, run.exception_error_code, run.exception_addr == tcs[i]);
    }
}

int main(int argc, char *argv[])
{
    static const struct { const char *name; void (*run)(void); } scenarios[] = {
        { "eaccept", eaccept }, { "refused", refused }, { "augment", augment },
        { "signal", signal_at_aep }, { "preempted", preempted },
        { "two_threads", two_threads }, { "first_touch", first_touch },
        { "accept_first", accept_first },
    };
    unsigned int i;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 4)
        return 2;
    vdso_sgx_enter_enclave = vdso_symbol("__vdso_sgx_enter_enclave");
    if (!vdso_sgx_enter_enclave)
        return 1;
    if (!strcmp(argv[3], "no_tcs")) {
        no_tcs();
        return 0;
    }
    if (!encl_load(&encl, argv[1], PAGE_SIZE) || !encl_sign(&encl, argv[2]) ||
        !encl_build(&encl) || !encl_map(&encl))
        return 1;
    for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (!strcmp(argv[3], scenarios[i].name))
            scenarios[i].run();
    return 0;
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """(host, enclave ELF, SIGSTRUCT file, the enclave's symbols): built here."""
    if shutil.which("gcc") is None:
        pytest.skip("no gcc to build the probe enclave")
    tmp = tmp_path_factory.mktemp("probe")
    (tmp / "probe_ops.c").write_text(PROBE_OPS)
    (tmp / "probe_host.c").write_text(PROBE_HOST)
    include = f"-I{build.SOURCE_DIR}"
    enclave = build.Program(
        name="probe_encl.elf", sources=("encl_entry.S", str(tmp / "probe_ops.c")),
        inputs=("encl_entry.S", str(tmp / "probe_ops.c"), "encl_abi.h", "sgx_arch.h", "encl.lds"),
        flags=(*build.ENCLAVE.flags, include))
    # an enclave resumed after an AEX returns to the stack pointer of the EENTER it
    # resumes: outgoing arguments in the frame keep RSP the same at every call
    host = build.Program(
        name="probe_host", sources=("host_load.c", "host_vdso.c", str(tmp / "probe_host.c")),
        inputs=("host_load.c", "host_vdso.c", str(tmp / "probe_host.c"), "host.h", "encl_abi.h",
                "sgx_arch.h"),
        flags=(*build.HOST.flags, include, "-pthread", "-maccumulate-outgoing-args"))
    elf = build.build(enclave, tmp)
    sigs = tmp / "probe.sigstructs"
    sigs.write_bytes(build.sigstructs(elf.read_bytes(), signing.generate_key(), [PAGE]))
    return build.build(host, tmp), elf, sigs, symbols(elf.read_bytes())


def symbols(raw):
    """{name: (value, size)} of an ELF file's .symtab."""
    ehdr = struct.unpack_from("<16sHHIQQQIHHHHHH", raw)
    shoff, shentsize, shnum = ehdr[6], ehdr[11], ehdr[12]
    heads = [struct.unpack_from("<IIQQQQIIQQ", raw, shoff + i * shentsize) for i in range(shnum)]
    symtab = next(h for h in heads if h[1] == 2)            # SHT_SYMTAB
    strtab = heads[symtab[6]][4]
    out = {}
    for off in range(symtab[4], symtab[4] + symtab[5], 24):
        name, _info, _other, _shndx, value, size = struct.unpack_from("<IBBHQQ", raw, off)
        if name:
            out[raw[strtab + name:raw.index(b"\0", strtab + name)].decode()] = (value, size)
    return out


def watch(inspect):
    """A Tracer (writing and recording nothing) whose `seen` gets what inspect(thread)
    returns at each getppid() the host makes."""
    from vmsim.run.strace import Tracer

    class Watch(Tracer):
        seen: list = []

        def enter(self, thread):
            if thread.regs.orig_rax == SYS_GETPPID:
                self.seen.append(inspect(thread))
            super().enter(thread)

    return Watch()


def run_probe(probe, scenario, tmp_path, slice_insns=None, tracer=None, at_exit=None, sgx=True):
    """The probe host running `scenario` on the model (a Kernel with an EPC of
    EPC_PAGES; without SGX if not `sgx`): (wait status, stdout lines)."""
    from vmsim.arch.x86.emu.cpuid import host_cpu_model
    from vmsim.fs.stdio import HostStream
    from vmsim.run.machine import SLICE, Machine

    host, elf, sigs, _syms = probe
    sgx_cpu = SgxCpu(epc_pages=EPC_PAGES) if sgx else None
    cpu = host_cpu_model(sgx=sgx_cpu)
    kernel = vmsim.Kernel(pkeys=cpu.pkeys, sgx=sgx_cpu or False)
    out = tmp_path / f"{scenario}.out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with Machine(kernel, cpu, slice_insns=slice_insns or SLICE, tracer=tracer,
                     on_exit=at_exit) as m:
            leader = m.start(str(host), [str(host), str(elf), str(sigs), scenario], [],
                             (HostStream(0), HostStream(fd), HostStream(2)),
                             personality=vmsim.ADDR_NO_RANDOMIZE)
            status = m.run(leader)
    finally:
        os.close(fd)
    return status, out.read_text().splitlines()


def encl_of(process) -> Encl:
    """The enclave the process has open."""
    return next(f.private_data for f in process.files.values() if isinstance(f.private_data, Encl))


def with_exinfo(inspect):
    """watch(inspect), which also sets MISCSELECT.EXINFO in the SECS the host passes to
    SGX_IOC_ENCLAVE_CREATE (as a debugger pokes the host's memory): the SSA frame then
    reports a #PF in EXITINFO and EXINFO. EINIT accepts it: the SIGSTRUCT's MISCMASK is
    0."""
    from vmsim.mm.fault import copy_from_user, copy_to_user

    tracer = watch(inspect)
    enter = tracer.enter

    def create_with_exinfo(thread):
        regs = thread.regs
        if regs.orig_rax == SYS_IOCTL and regs.rsi == SGX_IOC_ENCLAVE_CREATE:
            secs = struct.unpack("<Q", copy_from_user(thread.process, regs.rdx, 8))[0]
            copy_to_user(thread.process, secs + SECS_MISCSELECT, struct.pack("<I", SGX_MISC_EXINFO))
        enter(thread)

    tracer.enter = create_with_exinfo
    return tracer


def exinfo(encl: Encl, ssa: int) -> tuple[int, int]:
    """EXINFO (MADDR, ERRCD) of the SSA frame at offset ssa, just below its GPRSGX."""
    epc = encl.pages[(encl.base + ssa) >> 12].epc
    return struct.unpack_from("<QI4x", epc.data, PAGE - GPRSGX_FORMAT.size - 16)


def gprsgx(encl: Encl, ssa: int) -> dict[str, int]:
    """The GPRSGX of the SSA frame at offset ssa (one page), from its EPC page."""
    epc = encl.pages[(encl.base + ssa) >> 12].epc
    names = (*GPRSGX_REGS, "rflags", "rip", "ursp", "urbp", "exitinfo", "aexnotify", "fsbase",
             "gsbase")
    return dict(zip(names, GPRSGX_FORMAT.unpack_from(epc.data, PAGE - GPRSGX_FORMAT.size),
                    strict=True))


def tcs_cssa(encl: Encl, tcs: int) -> int:
    return struct.unpack_from("<I", encl.pages[(encl.base + tcs) >> 12].epc.data, 24)[0]


def loaded_size(raw):
    """What the loader adds of an enclave ELF: each PT_LOAD's pages, then the heap (one
    page)."""
    ehdr = struct.unpack_from("<16sHHIQQQIHHHHHH", raw)
    phdrs = [struct.unpack_from("<IIQQQQQQ", raw, ehdr[5] + i * ehdr[9]) for i in range(ehdr[10])]
    return sum(-(-ph[5] // PAGE) * PAGE for ph in phdrs if ph[0] == 1) + PAGE


def lcg(rounds):
    x = 1
    for _ in range(rounds):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    return x


def test_eaccept_mismatch_is_rax_19_to_the_enclave(probe, tmp_path):
    """EACCEPT whose SECINFO differs from the EPCM entry (R against RW; PENDING on a page
    that is not) answers SGX_PAGE_ATTRIBUTES_MISMATCH in RAX, no exception; PR is not
    compared, so REG|R|W|PR on the RW page is a no-op accept."""
    status, lines = run_probe(probe, "eaccept", tmp_path)
    assert status == 0
    assert lines == [
        "eaccept r: ret 0 function 4 vector 0 error 0 addr +0", "eaccept r: rax 19",
        "eaccept rw pending: ret 0 function 4 vector 0 error 0 addr +0",
        "eaccept rw pending: rax 19",
        "eaccept rw: ret 0 function 4 vector 0 error 0 addr +0", "eaccept rw: rax 0"]


def test_an_exception_of_enclu_itself_goes_to_the_vdso_fixup(probe, tmp_path):
    """EENTER's own exceptions reach the caller through the vDSO's exception table too,
    run.function the leaf that faulted: a TCS address that is no EPC page is #PF with
    X86_PF_SGX (0x8005, a read of the TCS), a misaligned one #GP; and on a CPU without
    SGX, ENCLU is #UD."""
    status, lines = run_probe(probe, "no_tcs", tmp_path)
    assert status == 0
    assert lines == ["tcs +0: ret 0 function 2 vector 14 error 0x8005 at tcs 1",
                     "tcs +64: ret 0 function 2 vector 13 error 0 at tcs 0"]
    status, lines = run_probe(probe, "no_tcs", tmp_path, sgx=False)
    assert status == 0
    assert lines == ["tcs +0: ret 0 function 2 vector 6 error 0 at tcs 0",
                     "tcs +64: ret 0 function 2 vector 6 error 0 at tcs 0"]


def test_syscall_and_cpuid_are_ud_and_the_ssa_holds_the_registers(probe, tmp_path):
    """SYSCALL and CPUID inside the enclave: #UD, an AEX the vDSO reports (ERESUME,
    vector 6). The SSA frame of TCS #0 then holds the registers at the SYSCALL (RAX =
    39, R12-R15 as the enclave set them, RIP at the instruction), EXITINFO says #UD,
    URSP/URBP the host's stack, and CSSA is 1: the next EENTER there is #GP."""
    _host, _elf, _sigs, syms = probe

    def inspect(thread):
        encl = encl_of(thread.process)
        return gprsgx(encl, syms["encl_ssa"][0]), tcs_cssa(encl, 0), thread.regs.rsp

    tracer = watch(inspect)
    status, lines = run_probe(probe, "refused", tmp_path, tracer=tracer)
    assert status == 0
    assert lines == ["syscall: ret 0 function 3 vector 6 error 0 addr +0",
                     "cpuid: ret 0 function 3 vector 6 error 0 addr +0",
                     "again: ret 0 function 2 vector 13 error 0 addr +0"]
    [(frame, cssa, host_rsp)] = tracer.seen
    assert cssa == 1
    assert {r: frame[r] for r in MARKS} == MARKS
    assert frame["rax"] == 39
    assert frame["exitinfo"] == EXITINFO_UD
    encl_base = frame["rip"] - syms["probe_syscall_at"][0]
    assert encl_base % 0x10000 == 0
    stacks, _size = syms["encl_stacks"]
    assert encl_base + stacks <= frame["rsp"] < encl_base + stacks + PAGE    # TCS #0's stack
    assert frame["fsbase"] == frame["gsbase"] == encl_base                   # OFSBASE 0
    assert abs(frame["ursp"] - host_rsp) < PAGE
    assert frame["urbp"] == frame["ursp"] + 8             # vsgx.S: RBP, then RBX pushed


def test_augment_flow(probe, tmp_path):
    """The SGX2 augment flow on real code: a write to a mapped hole of ELRANGE faults
    (an AEX the vDSO does not report: the kernel fixed it), the driver EAUGs the page
    (PENDING), the write retried by the ERESUME at the AEP is #PF with the SGX bit,
    reported as ERESUME/14/0x8007 at the page; EACCEPT from TCS #1; ERESUME finishes
    the write."""
    status, lines = run_probe(probe, "augment", tmp_path)
    assert status == 0
    loaded = loaded_size(probe[1].read_bytes())
    assert lines == [f"put: ret 0 function 3 vector 14 error 0x8007 addr +{loaded:#x}",
                     "eaccept: ret 0 function 4 vector 0 error 0 addr +0", "eaccept: rax 0",
                     "resume: ret 0 function 4 vector 0 error 0 addr +0",
                     "get: ret 0 function 4 vector 0 error 0 addr +0", f"get: {MAGIC:#x}"]


def test_a_first_touch_inside_is_an_aex_and_the_aep_resumes(probe, tmp_path):
    """A write to a page of the enclave whose PTE the driver has not installed yet (the
    second page of encl_buffer, after a first call faulted in the code, the stack and
    the first page): #PF, an AEX (the SSA frame holds the registers at the write, RIP in
    probe_put, EXITINFO #PF and EXINFO the address and error code 6, a write not
    present from user mode), the driver's ->fault installs the PTE, the kernel returns
    to the vDSO's AEP, whose ERESUME completes the write: no exception for the host,
    CSSA back to 0, and the value reads back."""
    _host, _elf, _sigs, syms = probe

    def inspect(thread):
        encl = encl_of(thread.process)
        ssa = syms["encl_ssa"][0]
        return gprsgx(encl, ssa), exinfo(encl, ssa), tcs_cssa(encl, 0), encl.base

    tracer = with_exinfo(inspect)
    status, lines = run_probe(probe, "first_touch", tmp_path, tracer=tracer)
    assert status == 0
    assert lines == ["warm: ret 0 function 4 vector 0 error 0 addr +0",
                     "put: ret 0 function 4 vector 0 error 0 addr +0",
                     "get: ret 0 function 4 vector 0 error 0 addr +0", f"get: {MAGIC:#x}"]
    [(frame, (maddr, errcd), cssa, base)] = tracer.seen
    target = base + syms["encl_buffer"][0] + PAGE + 8
    assert cssa == 0
    assert frame["exitinfo"] == EXITINFO_PF
    assert (maddr, errcd) == (target, 6)
    put, size = syms["probe_put"]
    assert base + put <= frame["rip"] < base + put + size
    saved = {frame[r] for r in GPRSGX_REGS}
    assert target in saved and MAGIC in saved


def test_eaccept_of_a_hole_is_an_aex_and_runs_again(probe, tmp_path):
    """SGX2, as the kselftest's augment_via_eaccept: EACCEPT of a mapped hole of ELRANGE
    that nothing has faulted in. The leaf's page walk finds no PTE: #PF, an AEX with the
    registers at the ENCLU (RIP in probe_eaccept, RAX = EACCEPT), EXINFO the page and
    error code 4 (a read, not present); the driver's ->fault EAUGs the page, and the
    ERESUME at the vDSO's AEP executes the EACCEPT again, which accepts it (RAX 0):
    the page then holds what the enclave writes."""
    _host, _elf, _sigs, syms = probe

    def inspect(thread):
        encl = encl_of(thread.process)
        ssa = syms["encl_ssa"][0]
        return gprsgx(encl, ssa), exinfo(encl, ssa), tcs_cssa(encl, 0), encl.base

    tracer = with_exinfo(inspect)
    status, lines = run_probe(probe, "accept_first", tmp_path, tracer=tracer)
    assert status == 0
    assert lines == ["eaccept: ret 0 function 4 vector 0 error 0 addr +0", "eaccept: rax 0",
                     "put: ret 0 function 4 vector 0 error 0 addr +0",
                     "get: ret 0 function 4 vector 0 error 0 addr +0", f"get: {MAGIC:#x}"]
    [(frame, (maddr, errcd), cssa, base)] = tracer.seen
    assert cssa == 0
    assert frame["exitinfo"] == EXITINFO_PF
    assert (maddr, errcd) == (base + loaded_size(probe[1].read_bytes()), 4)
    eaccept, size = syms["probe_eaccept"]
    assert base + eaccept <= frame["rip"] < base + eaccept + size
    assert frame["rax"] == enclu.EACCEPT


def test_a_host_without_the_vdso_gets_sigsegv_at_the_aep(probe, tmp_path):
    """An AEP outside the vDSO's exception table: the enclave's #PF (a write to its TCS
    page, which the EPCM refuses) is SIGSEGV, SEGV_ACCERR at the page, the error code
    with X86_PF_SGX, trap 14, taken at the AEP with the AEX's synthetic RAX (ERESUME)
    and RBX (the TCS)."""
    status, lines = run_probe(probe, "signal", tmp_path)
    assert status == 0
    assert lines == ["SIGSEGV code 2 addr +0 err 0x8007 trapno 14 at aep 1 rax 3 rbx +0"]


def test_the_slice_ends_inside_the_enclave(probe, tmp_path):
    """With another thread runnable, the slice ends inside the enclave: an interrupt AEX
    (EXITINFO 0) to the vDSO's AEP, which ERESUMEs when the thread runs again; the
    enclave's loop finishes with the right value, and its SSA frame holds where the
    last interrupt found it."""
    _host, _elf, _sigs, syms = probe
    frames = []

    def at_exit(process):
        encl = encl_of(process)
        frames.append((gprsgx(encl, syms["encl_ssa"][0]), tcs_cssa(encl, 0), encl.base))

    status, lines = run_probe(probe, "preempted", tmp_path, slice_insns=2000, at_exit=at_exit)
    assert status == 0
    assert lines == ["spin: ret 0 function 4 vector 0 error 0 addr +0", f"spin: {lcg(3000):#x}"]
    [(frame, cssa, base)] = frames
    spin, size = syms["probe_spin"]
    assert cssa == 0 and frame["exitinfo"] == 0
    assert base + spin <= frame["rip"] < base + spin + size


def test_two_threads_in_one_enclave(probe, tmp_path):
    """Two threads, one per TCS, preempting each other inside the enclave: both loops
    finish with their values; each SSA frame shows an interrupt in the loop."""
    _host, _elf, _sigs, syms = probe
    frames = []

    def at_exit(process):
        encl = encl_of(process)
        ssa = syms["encl_ssa"][0]
        frames.extend((gprsgx(encl, ssa + n * PAGE), tcs_cssa(encl, n * PAGE), encl.base)
                      for n in range(2))

    status, lines = run_probe(probe, "two_threads", tmp_path, slice_insns=2000, at_exit=at_exit)
    assert status == 0
    assert lines == ["spin: ret 0 function 4 vector 0 error 0 addr +0", f"spin: {lcg(2000):#x}",
                     "spin: ret 0 function 4 vector 0 error 0 addr +0", f"spin: {lcg(3000):#x}"]
    spin, size = syms["probe_spin"]
    for frame, cssa, base in frames:
        assert cssa == 0 and frame["exitinfo"] == 0
        assert base + spin <= frame["rip"] < base + spin + size


def test_report_round_trip_with_the_model_keys(tmp_path):
    """The test enclave's EREPORT for itself, then EGETKEY of the report key: the key
    verifies the report's MAC, and it is the key the model's CPU derives for the
    report's enclave and KEYID (enclu.report_key()), so a verifier holding the CPU's
    secret agrees."""
    from cryptography.hazmat.primitives.ciphers.algorithms import AES
    from cryptography.hazmat.primitives.cmac import CMAC

    if shutil.which("gcc") is None:
        pytest.skip("no gcc to build the test enclave")
    elf, host = build.enclave_elf(), build.host_program()
    sigs = tmp_path / "test_encl.sigstructs"
    sigs.write_bytes(build.sigstructs(elf.read_bytes(), signing.generate_key(), [PAGE]))
    r = subprocess.run([sys.executable, "-m", "vmsim", "run", "--", host, elf, sigs, "egetkey"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    found = dict(re.findall(r"^# (report|report_key) ([0-9a-f]+)$", r.stdout, re.M))
    report, key = bytes.fromhex(found["report"]), bytes.fromhex(found["report_key"])
    mac = CMAC(AES(key))
    mac.update(report[:384])
    assert mac.finalize() == report[416:432]
    cpu = SgxCpu()
    mrenclave, keyid = report[64:96], report[384:416]
    attributes = (SGX_ATTR_INIT | SGX_ATTR_MODE64BIT, 3)
    assert keyid == enclu.report_keyid(cpu)
    assert enclu.report_key(cpu, attributes, mrenclave, 0, bytes(64), 0, keyid).derive(cpu) == key
