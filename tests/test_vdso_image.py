"""The project's vDSO image (vmsim/arch/x86/entry/vdso/) and the state execve leaves for a
CPU (binfmt_elf's start_thread()).

The image is checked with binutils' readelf (an ELF reader that is not ours), against
this machine's own [vdso] (dumped from /proc/self/mem), by glibc itself (dlopen +
dlvsym under LINUX_2.6, the lookup ld.so makes), and by running its code natively:
the time functions make their system calls, and __vdso_sgx_enter_enclave runs its
ENCLU under a harness that plays the CPU and the kernel (a SIGILL/SIGSEGV handler
doing EEXIT, or an AEX with fixup_vdso_exception()). The start registers are compared
with what ptrace shows at the exec stop of the same program run natively.
"""

import ctypes
import errno
import mmap
import os
import re
import shutil
import struct
import subprocess
import sys
import time

import pytest

import vmsim
from vmsim.arch.x86.entry.vdso.build import (
    LINUX_VERSION_CODE,
    SYM,
    VDSO_IMAGE_SIZE,
    sections,
    vdso_extable,
    vdso_image,
    vdso_symbols,
)
from vmsim.fs.binfmt_elf import AT_BASE, AT_SYSINFO_EHDR, INIT_FXSAVE

#: what glibc 2.36's ld.so looks up in the vDSO (setup_vdso_pointers()), under LINUX_2.6
GLIBC_NAMES = ("__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_getcpu",
               "__vdso_clock_getres")
SGX_ENTRY = "__vdso_sgx_enter_enclave"
ENCLU = b"\x0f\x01\xd7"
STACK_END = 0x7FFFFFFFF000


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"no {name}")
    return path


@pytest.fixture(scope="module")
def image() -> bytes:
    _tool("gcc")
    return vdso_image()


@pytest.fixture(scope="module")
def image_file(image, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("vdso") / "vdso.so"
    path.write_bytes(image)
    return str(path)


def native_vdso() -> bytes:
    """This process's [vdso], as the kernel maps it."""
    with open("/proc/self/maps") as maps:
        line = next(ln for ln in maps if ln.rstrip().endswith("[vdso]"))
    start, end = (int(x, 16) for x in line.split()[0].split("-"))
    with open("/proc/self/mem", "rb") as mem:
        mem.seek(start)
        return mem.read(end - start)


@pytest.fixture(scope="module")
def native_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("native") / "vdso.so"
    path.write_bytes(native_vdso())
    return str(path)


def readelf(path: str, *opts: str) -> str:
    return subprocess.run([_tool("readelf"), "-W", *opts, path], check=True, capture_output=True,
                          text=True).stdout


def program_headers(path: str) -> list[tuple[str, int, int, str]]:
    """(type, offset, vaddr, flags) of each program header."""
    out = []
    for ln in readelf(path, "-l").splitlines():
        m = re.match(r"\s+([A-Z_]+)\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x[0-9a-f]+ "
                     r"0x[0-9a-f]+ (.{3})", ln)
        if m:
            out.append((m[1], int(m[2], 16), int(m[3], 16), m[4]))
    return out


def dynamic_tags(path: str) -> dict[str, str]:
    out = {}
    for ln in readelf(path, "-d").splitlines():
        m = re.match(r"\s*0x[0-9a-f]+ \((\w+)\)\s+(.*)", ln)
        if m:
            out[m[1]] = m[2]
    return out


def dynamic_symbols(path: str) -> dict[str, tuple[int, str, str, str]]:
    """name -> (value, type, bind, version) of each defined dynamic symbol."""
    out = {}
    for ln in readelf(path, "--dyn-syms").splitlines():
        f = ln.split()
        if len(f) == 8 and f[0][:-1].isdigit() and f[6] != "UND":
            name, _, version = f[7].partition("@@")
            out[name] = (int(f[1], 16), f[3], f[4], version)
    return out


def linux_note(path: str) -> str:
    """The description bytes of the "Linux" note of type 0 (the version code)."""
    out = readelf(path, "-n")
    m = re.search(r"Linux\s+0x00000004\s+Unknown note type: \(0x00000000\)\s+"
                  r"description data: ([0-9a-f ]+)", out)
    assert m, out
    return m[1].strip()


# --- the image -------------------------------------------------------------------------

def test_image_is_the_size_of_this_kernels_vdso(image):
    assert len(image) == VDSO_IMAGE_SIZE == len(native_vdso()) == 2 * 4096


def test_elf_shape_glibc_needs(image_file, native_file):
    header = readelf(image_file, "-h")
    assert re.search(r"Type:\s+DYN", header) and re.search(r"Machine:\s+Advanced Micro Devices X86-64",
                                                           header)
    assert re.search(r"Entry point address:\s+0x0\n", header)
    phdrs = program_headers(image_file)
    assert [p[0] for p in phdrs] == [p[0] for p in program_headers(native_file)] == \
        ["LOAD", "DYNAMIC", "NOTE", "GNU_EH_FRAME"]
    assert phdrs[0] == ("LOAD", 0, 0, "R E")
    tags = dynamic_tags(image_file)
    assert tags["SONAME"] == "Library soname: [linux-vdso.so.1]"
    assert {"HASH", "GNU_HASH", "SYMTAB", "STRTAB", "VERSYM", "VERDEF"} <= tags.keys()
    assert not {"NEEDED", "RELA", "REL", "JMPREL", "TEXTREL"} & tags.keys()
    assert "There are no relocations in this file." in readelf(image_file, "-r")


def test_symbols_carry_linux_2_6(image_file):
    syms = dynamic_symbols(image_file)
    for name in (*GLIBC_NAMES, "__vdso_getrandom", SGX_ENTRY):
        value, kind, bind, version = syms[name]
        assert (kind, bind, version) == ("FUNC", "GLOBAL", "LINUX_2.6"), name
        assert vdso_symbols()[name] == value
    assert {n: s[0] for n, s in syms.items() if s[1] == "FUNC"} == vdso_symbols()
    versions = readelf(image_file, "-V")
    assert re.search(r"Flags: BASE\s+Index: 1\s+Cnt: 1\s+Name: linux-vdso.so.1", versions)
    assert re.search(r"Flags: none\s+Index: 2\s+Cnt: 1\s+Name: LINUX_2.6", versions)


def test_linux_version_note_is_this_kernels(image_file, native_file):
    assert linux_note(image_file) == linux_note(native_file) == \
        struct.pack("<I", LINUX_VERSION_CODE).hex(" ")


def test_same_exports_as_this_machines_vdso(image_file, native_file):
    """This kernel is built without CONFIG_X86_SGX, so its vDSO lacks the enclave entry
    that ours (the model has SGX) exports; every other name is the same, weak aliases
    included."""
    ours, native = set(dynamic_symbols(image_file)), set(dynamic_symbols(native_file))
    assert ours - {SGX_ENTRY} == native - {SGX_ENTRY}
    assert SGX_ENTRY in ours


def test_glibc_resolves_each_name_under_linux_2_6(image_file):
    """dlvsym() makes the versioned lookup (hash tables, versym, verdef) ld.so's
    dl_vdso_vsym() makes; the wrong version finds nothing."""
    lib = ctypes.CDLL(image_file)
    libc = ctypes.CDLL(None)
    libc.dlvsym.restype = ctypes.c_void_p
    libc.dlvsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    base = libc.dlvsym(lib._handle, b"__vdso_time", b"LINUX_2.6") - vdso_symbols()["__vdso_time"]
    for name in (*GLIBC_NAMES, "__vdso_getrandom", SGX_ENTRY):
        assert libc.dlvsym(lib._handle, name.encode(), b"LINUX_2.6") == base + vdso_symbols()[name]
        assert libc.dlvsym(lib._handle, name.encode(), b"LINUX_2.5") is None


# --- its code, run natively ------------------------------------------------------------

@pytest.fixture(scope="module")
def loaded(image):
    """The image copied into executable memory of this process: name -> ctypes address."""
    m = mmap.mmap(-1, len(image), prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(image)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    yield {name: base + off for name, off in vdso_symbols().items()}


def fn(addr: int, *argtypes):
    return ctypes.CFUNCTYPE(ctypes.c_long, *argtypes)(addr)


class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


def test_time_functions_answer_through_the_syscall(loaded):
    ts = Timespec()
    clock_gettime = fn(loaded["__vdso_clock_gettime"], ctypes.c_int, ctypes.c_void_p)
    assert clock_gettime(time.CLOCK_REALTIME, ctypes.addressof(ts)) == 0
    assert abs(ts.sec + ts.nsec / 1e9 - time.time()) < 5
    assert clock_gettime(1000, ctypes.addressof(ts)) == -errno.EINVAL
    assert fn(loaded["__vdso_clock_getres"], ctypes.c_int, ctypes.c_void_p)(
        time.CLOCK_MONOTONIC, ctypes.addressof(ts)) == 0
    assert (ts.sec, ts.nsec) == (0, 1)
    assert abs(fn(loaded["__vdso_time"], ctypes.c_void_p)(None) - time.time()) < 5
    tv = Timespec()
    assert fn(loaded["__vdso_gettimeofday"], ctypes.c_void_p, ctypes.c_void_p)(
        ctypes.addressof(tv), None) == 0
    assert abs(tv.sec - time.time()) < 5 and 0 <= tv.nsec < 1000000
    cpu = ctypes.c_uint(~0 & 0xFFFFFFFF)
    assert fn(loaded["__vdso_getcpu"], ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
        ctypes.addressof(cpu), None, None) == 0
    assert cpu.value < os.cpu_count()


def getrandom_answers(addr: int) -> list:
    """What a getrandom of the vDSO at addr answers: the parameter query, a state
    straddling a page, a plain fill, bad flags."""
    f = fn(addr, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t)
    params = (ctypes.c_uint32 * 16)(*[0xDEADBEEF] * 16)
    query = f(None, 0, 0, ctypes.addressof(params), (1 << 64) - 1)
    page = mmap.mmap(-1, 2 * 4096)
    straddling = ctypes.addressof(ctypes.c_char.from_buffer(page)) + 4096 - 8
    buf = ctypes.create_string_buffer(32)
    answers = [query, list(params), f(ctypes.addressof(buf), 32, 0, straddling, 144),
               f(ctypes.addressof(buf), 32, 0, None, 0), buf.raw != bytes(32),
               f(ctypes.addressof(buf), 32, 0x100, None, 0)]
    return answers


def test_getrandom_answers_as_this_kernels(loaded):
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    native = libc.getauxval(AT_SYSINFO_EHDR)
    native_syms = {}
    image = native_vdso()
    secs = sections(image)
    dynsym, dynstr = secs[".dynsym"].data(image), secs[".dynstr"].data(image)
    for name, _, _, _, value, _ in SYM.iter_unpack(dynsym):
        native_syms[dynstr[name:dynstr.index(b"\0", name)].decode()] = value
    ours = getrandom_answers(loaded["__vdso_getrandom"])
    assert ours == getrandom_answers(native + native_syms["__vdso_getrandom"])
    assert ours[0] == 0 and ours[1][:3] == [144, 0x3, 0x28] and ours[2] == -errno.EFAULT
    assert ours[3:] == [32, True, -errno.EINVAL]


SGX_HARNESS = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

struct sgx_enclave_run {
    uint64_t tcs;
    uint32_t function;
    uint16_t exception_vector;
    uint16_t exception_error_code;
    uint64_t exception_addr;
    uint64_t user_handler;
    uint64_t user_data;
    uint8_t reserved[216];
};
typedef int (*enter_t)(unsigned long, unsigned long, unsigned long, unsigned int,
               unsigned long, unsigned long, struct sgx_enclave_run *);

static char *base;
static unsigned long fixup;
static const char *cpu;		/* per ENCLU: x = EEXIT, a = AEX reported by the fixup */
static const char *rets;	/* per handler call: its return value, as a digit or -5 */
static int nenclu, nhandler;
static struct sgx_enclave_run run;

/* the CPU and the kernel: ENCLU raised #UD (no SGX here) or #GP */
static void on_enclu(int sig, siginfo_t *si, void *ctx)
{
    greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;

    printf("enclu %lld rax=%llx rbx=%llx rcx=%llx rdi=%llx rsi=%llx rdx=%llx r8=%llx r9=%llx\n",
           (long long)(g[REG_RIP] - (greg_t)base), g[REG_RAX], g[REG_RBX],
           g[REG_RCX] - (greg_t)base, g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R8], g[REG_R9]);
    if (cpu[nenclu++] == 'x') {	/* EEXIT to the RCX EENTER gave: after ENCLU */
        g[REG_RIP] += 3;
        g[REG_RAX] = 4;
        g[REG_RDI] = 0x11; g[REG_RSI] = 0x12; g[REG_RDX] = 0x13;
        g[REG_R8] = 0x18; g[REG_R9] = 0x19;
        g[REG_RSP] -= 40;	/* the enclave left data on the stack */
        if (*rets)
            g[REG_EFL] |= 0x400;	/* and DF set, for the handler to see cleared */
    } else {			/* AEX, then fixup_vdso_exception() */
        g[REG_RAX] = 3;
        g[REG_RIP] = (greg_t)(base + fixup);
        g[REG_RDI] = 14; g[REG_RSI] = 0x8007; g[REG_RDX] = 0x7000;
    }
    printf("exit rsp=%llx\n", g[REG_RSP]);
}

static int handler(long rdi, long rsi, long rdx, long rsp, long r8, long r9,
           struct sgx_enclave_run *r)
{
    unsigned long flags;
    char c = rets[nhandler++];

    asm volatile("pushf; pop %0" : "=r" (flags));
    printf("handler rdi=%lx rsi=%lx rdx=%lx rsp=%lx r8=%lx r9=%lx run=%d function=%u "
           "vector=%u error=%x addr=%llx aligned=%d df=%d\n", rdi, rsi, rdx, rsp, r8, r9,
           r == &run, r->function, r->exception_vector, r->exception_error_code,
           (unsigned long long)r->exception_addr,
           (int)(((unsigned long)__builtin_frame_address(0) & 15) == 0), (int)!!(flags & 0x400));
    return c == '-' ? -5 : c - '0';
}

/* argv: image, entry offset, fixup offset, function, cpu script, handler returns or "",
 * a reserved byte to set or -1 */
int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "rb");
    struct sigaction sa = { .sa_sigaction = on_enclu, .sa_flags = SA_SIGINFO };
    int ret, reserved = atoi(argv[7]);

    base = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fread(base, 1, 8192, f) != 8192 || mprotect(base, 8192, PROT_READ | PROT_EXEC))
        return 2;
    fixup = strtoul(argv[3], 0, 0);
    cpu = argv[5];
    rets = argv[6];
    sigaction(SIGILL, &sa, 0);
    sigaction(SIGSEGV, &sa, 0);
    run.tcs = 0x5000;
    run.user_handler = *rets ? (uint64_t)handler : 0;
    if (reserved >= 0)
        run.reserved[reserved] = 1;
    setvbuf(stdout, 0, _IONBF, 0);
    ret = ((enter_t)(base + strtoul(argv[2], 0, 0)))(1, 2, 3, atoi(argv[4]), 8, 9, &run);
    printf("ret=%d function=%u vector=%u error=%x addr=%llx\n", ret, run.function,
           run.exception_vector, run.exception_error_code,
           (unsigned long long)run.exception_addr);
    return 0;
}
"""


@pytest.fixture(scope="module")
def sgx_entry(image_file, tmp_path_factory):
    """sgx_entry(function, cpu, handler_returns, reserved_byte) -> the harness's lines."""
    d = tmp_path_factory.mktemp("vsgx")
    (d / "harness.c").write_text(SGX_HARNESS)
    exe = d / "harness"
    subprocess.run([_tool("gcc"), "-O1", "-fno-omit-frame-pointer", "-o", str(exe),
                    str(d / "harness.c")], check=True, capture_output=True)
    (enclu, fixup), = vdso_extable()

    def call(function: int, cpu: str = "", rets: str = "", reserved: int = -1) -> list[str]:
        r = subprocess.run([str(exe), image_file, str(vdso_symbols()[SGX_ENTRY]), str(fixup),
                            str(function), cpu, rets, str(reserved)],
                           capture_output=True, text=True, check=True)
        return r.stdout.splitlines()
    call.enclu = enclu
    return call


def test_extable_covers_the_enclu(image):
    (enclu, fixup), = vdso_extable()
    entry = vdso_symbols()[SGX_ENTRY]
    assert image[enclu:enclu + 3] == ENCLU and entry < enclu < fixup < entry + 0x100


@pytest.mark.parametrize("function, reserved", [(0, -1), (1, -1), (4, -1), (2, 0), (3, 215)])
def test_sgx_entry_refuses_bad_input(sgx_entry, function, reserved):
    """A leaf other than EENTER/ERESUME, or a non-zero reserved byte: -EINVAL, no ENCLU."""
    assert sgx_entry(function, reserved=reserved) == \
        [f"ret={-errno.EINVAL} function=0 vector=0 error=0 addr=0"]


def test_sgx_entry_eenter_to_eexit(sgx_entry):
    """ENCLU with RAX = the leaf, RBX = run->tcs, RCX = the AEP (the ENCLU itself), the
    arguments passed through; EEXIT: function = EEXIT, return 0, even with RSP moved."""
    lines = sgx_entry(2, "x")
    assert lines[0] == (f"enclu {sgx_entry.enclu} rax=2 rbx=5000 rcx={sgx_entry.enclu:x} rdi=1 "
                        "rsi=2 rdx=3 r8=8 r9=9")
    assert lines[2] == "ret=0 function=4 vector=0 error=0 addr=0"


def test_sgx_entry_reports_an_exception(sgx_entry):
    """An AEX the kernel does not fix: the fixup fills run->exception_* and returns 0."""
    assert sgx_entry(3, "a")[2] == "ret=0 function=3 vector=14 error=8007 addr=7000"


def test_sgx_entry_user_handler(sgx_entry):
    """The handler gets (rdi, rsi, rdx, rsp at exit, r8, r9, run) on an aligned stack with
    DF clear; a positive return is the next leaf (ERESUME), a negative one is returned, a
    return that is no leaf is -EINVAL."""
    lines = sgx_entry(2, "ax", "3-")
    exit_rsp = [int(ln.split("=")[1], 16) for ln in lines if ln.startswith("exit rsp=")]
    assert lines[2] == (f"handler rdi=e rsi=8007 rdx=7000 rsp={exit_rsp[0]:x} r8=8 r9=9 run=1 "
                        "function=3 vector=14 error=8007 addr=7000 aligned=1 df=0")
    assert lines[3].startswith(f"enclu {sgx_entry.enclu} rax=3 rbx=5000 ")
    assert lines[5] == (f"handler rdi=11 rsi=12 rdx=13 rsp={exit_rsp[1]:x} r8=18 r9=19 run=1 "
                        "function=4 vector=14 error=8007 addr=7000 aligned=1 df=0")
    assert lines[6] == "ret=-5 function=4 vector=14 error=8007 addr=7000"
    assert sgx_entry(2, "x", "7")[-1] == f"ret={-errno.EINVAL} function=4 vector=0 error=0 addr=0"


# --- in the model ----------------------------------------------------------------------

WITHOUT_GCC = """
import warnings
import vmsim
from vmsim.arch.x86.entry.vdso.build import VdsoBuildError, vdso_image
try:
    vdso_image()
except VdsoBuildError as e:
    print(e)
p = vmsim.Kernel().spawn(argv=["/bin/true"])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    p.maps()
    print(len(caught))
    vdso = [v for v in p.vmas() if v.name == "[vdso]"][0]
    print(p.read(vdso.start, 8192) == bytes(8192), p.read(vdso.start + 4096, 1))
    print(len(caught), caught[0].category.__name__, caught[0].message)
"""


def test_without_gcc_the_error_is_one_line_and_vdso_reads_as_zeros(tmp_path):
    """A kernel that runs no program never builds the image; without gcc the first
    fault of [vdso] warns once and maps zeros."""
    env = {**os.environ, "PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", WITHOUT_GCC], env=env, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    error = "vmsim: building the vDSO image needs gcc, which is not on PATH"
    assert out == [error, "0", "True b'\\x00'", f"1 RuntimeWarning {error}; [vdso] reads as zeros"]

def test_execve_maps_the_image_at_at_sysinfo_ehdr(kw, image):
    k = vmsim.Kernel(**kw)
    p = k.spawn(personality=vmsim.ADDR_NO_RANDOMIZE, argv=["/bin/true"])
    auxv = dict(auxv_of(p))
    vdso = {v.name: v for v in p.vmas()}["[vdso]"]
    assert auxv[AT_SYSINFO_EHDR] == vdso.start and vdso.end - vdso.start == VDSO_IMAGE_SIZE
    assert p.read(vdso.start, VDSO_IMAGE_SIZE) == image
    q = k.spawn(personality=vmsim.ADDR_NO_RANDOMIZE, argv=["/bin/true"])
    assert q.read(vdso.start, VDSO_IMAGE_SIZE) == image
    p.mprotect(vdso.start, VDSO_IMAGE_SIZE, vmsim.PROT_READ | vmsim.PROT_WRITE)
    p.write(vdso.start, b"\xcc")                # a private copy: the image stays one
    assert q.read(vdso.start, 1) == image[:1] and p.read(vdso.start, 1) == b"\xcc"
    p.mm.validate()
    q.mm.validate()


def auxv_of(p) -> list[tuple[int, int]]:
    stack = p.read(p.mm.start_stack, STACK_END - p.mm.start_stack)
    argc, = struct.unpack_from("<Q", stack)
    words = struct.unpack_from(f"<{len(stack) // 8}Q", stack)
    envp = words.index(0, argc + 2)             # the NULL after envp[]
    pairs = [(words[i], words[i + 1]) for i in range(envp + 1, len(words) - 1, 2)]
    return pairs[:[a for a, _ in pairs].index(0) + 1]


REGS_TRACER = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

/* argv: program, argv[0]; the environment is "A=1" */
int main(int argc, char **argv)
{
    char *envp[] = { "A=1", 0 };
    struct user_regs_struct r;
    struct user_fpregs_struct f;
    unsigned char *b = (unsigned char *)&f;
    int st;
    pid_t pid = fork();

    if (!pid) {
        personality(ADDR_NO_RANDOMIZE);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execve(argv[1], argv + 2, envp);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    ptrace(PTRACE_GETREGS, pid, 0, &r);
    ptrace(PTRACE_GETFPREGS, pid, 0, &f);
    printf("%llx %llx %llx %llx %llx %llx %llx %llx %llx %llx %llx %llx %llx %llx %llx "
           "%llx %llx %llx %llx\n", r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
           r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax, r.rcx, r.rsp, r.rip, r.eflags,
           r.fs_base);
    printf("%llx\n", r.gs_base);
    for (int i = 0; i < (int)sizeof f; i++)
        printf("%02x", b[i]);
    printf("\n");
    kill(pid, SIGKILL);
    return 0;
}
"""


def test_start_regs_are_the_kernels(kw, tmp_path):
    """After exec of /bin/true: rip = ld.so's entry (AT_BASE + its e_entry), rsp = the
    stack pointer whose first word is argc, and every register as ptrace shows it at
    the exec stop of the same program on this machine."""
    (tmp_path / "t.c").write_text(REGS_TRACER)
    subprocess.run([_tool("gcc"), "-O1", "-o", str(tmp_path / "t"), str(tmp_path / "t.c")],
                   check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "t"), "/bin/true", "true", "x"], check=True,
                         capture_output=True, text=True).stdout.split("\n")
    k = vmsim.Kernel(**kw)
    p = k.spawn(personality=vmsim.ADDR_NO_RANDOMIZE)
    p.execve("/bin/true", ["true", "x"], ["A=1"])
    regs = p.start_regs
    ldso = open("/lib64/ld-linux-x86-64.so.2", "rb").read(64)
    e_entry, = struct.unpack_from("<Q", ldso, 24)
    assert regs.rip == dict(auxv_of(p))[AT_BASE] + e_entry
    assert p.read(regs.rsp, 8) == struct.pack("<Q", 2) and regs.rsp == p.mm.start_stack
    names = ("r8 r9 r10 r11 r12 r13 r14 r15 rdi rsi rbp rbx rdx rax rcx rsp rip eflags "
             "fs_base").split()
    assert [getattr(regs, n) for n in names] == [int(x, 16) for x in out[0].split()]
    assert regs.gs_base == int(out[1], 16)
    assert regs.fxsave == INIT_FXSAVE == bytes.fromhex(out[2])
