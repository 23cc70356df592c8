"""The emulated CPU over the model (vmsim.arch.x86.emu) and the run loop (vmsim.run):
small programs of our own, built with gcc at test time, run on the model; each one's
output and exit status are compared with its native run on this machine.

What each program checks:
    hello      static, no libc: write(2) and exit_group(2) from registers
    exit       static, no libc: exit(2) of the last thread, the process's status
    heap       static glibc: brk, malloc through mmap, realloc through mremap, mprotect
    forkwait   fork(2), the child's exit status through wait4(2)
    jit        code written into an mmap and run, W^X flipped with mprotect twice: the
               second translation must not be the first
    readcode   code read(2) into an executable page by the kernel side, run, read
               again and run; then a page whose frame held code is unmapped and a new
               one filled: a stale translation must not run
    kwrite     a page the program has only read (the zero page, a private file page)
               written by read(2): the program must see the new bytes (its TLB entry
               for the old frame goes)
    cow        a private file mapping read, then written: the file keeps its bytes
    threads    pthread_create/join, a mutex: clone3, futex, clear_child_tid
    spin       two threads spinning on each other's stores, no syscall between: only
               the instruction slice lets the other run
    handler    SIGSEGV and SIGFPE handlers: si_code, and si_addr the byte that faulted
    spawn      posix_spawn (clone3 with CLONE_VM|CLONE_VFORK), then waitpid
    sigchld    a SIGCHLD handler runs when a child exits; with SIGCHLD ignored the
               child leaves no zombie (waitpid: ECHILD)
    sleeper    nanosleep of 10 s on the virtual clock: no real sleeping
    cpuid      CPUID shows no AVX/AVX2/XSAVE: what the emulator cannot run
    pku        protection keys: pkey_alloc, pkey_mprotect, WRPKRU, SEGV_PKUERR
    segv       a NULL write: killed by SIGSEGV
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import time

import pytest

pytest.importorskip("unicorn")

from vmsim import Kernel  # noqa: E402
from vmsim.arch.x86.emu.cpu import Cpu  # noqa: E402
from vmsim.arch.x86.emu.cpuid import cpuid_for, host_cpu_model  # noqa: E402
from vmsim.arch.x86.ptrace import PtRegs  # noqa: E402
from vmsim.fs.stdio import HostStream  # noqa: E402
from vmsim.run.machine import Machine  # noqa: E402
from vmsim.run.strace import Tracer  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

HELLO_S = r"""
.globl _start
_start:
    mov $1, %edi
    lea msg(%rip), %rsi
    mov $len, %edx
    mov $1, %eax
    syscall
    mov $42, %edi
    mov $231, %eax
    syscall
msg: .ascii "hello from the model\n"
len = . - msg
"""

EXIT_S = r"""
.globl _start
_start:
    mov $7, %edi
    mov $60, %eax
    syscall
"""

HEAP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
int main(void) {
    char *small = malloc(100);
    strcpy(small, "small");
    char *big = malloc(1 << 20);
    memset(big, 'x', 1 << 20);
    big = realloc(big, 4 << 20);
    big[(4 << 20) - 1] = 'y';
    char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page[0] = 'p';
    if (mprotect(page, 4096, PROT_READ))
        return 1;
    printf("%s %c %c %c\n", small, big[0], big[(4 << 20) - 1], page[0]);
    free(big);
    munmap(page, 8192);
    return 3;
}
"""

FORKWAIT_C = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
    int status = 0;
    pid_t pid = fork();
    if (pid == 0) {
        printf("child\n");
        fflush(stdout);
        _exit(7);
    }
    pid_t got = waitpid(pid, &status, 0);
    printf("parent: %s, exited %d\n", got == pid ? "reaped" : "lost", WEXITSTATUS(status));
    return 0;
}
"""

JIT_C = r"""
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
typedef int (*fn)(void);
int main(void) {
    unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char one[] = {0xb8, 1, 0, 0, 0, 0xc3}, two[] = {0xb8, 2, 0, 0, 0, 0xc3};
    memcpy(p, one, sizeof one);
    mprotect(p, 4096, PROT_READ | PROT_EXEC);
    int a = ((fn)p)();
    mprotect(p, 4096, PROT_READ | PROT_WRITE);
    memcpy(p, two, sizeof two);
    mprotect(p, 4096, PROT_READ | PROT_EXEC);
    int b = ((fn)p)();
    printf("%d %d\n", a, b);
    return 0;
}
"""

READCODE_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
typedef int (*fn)(void);
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fd < 0 || read(fd, p, 6) != 6)
        return 1;
    int a = ((fn)p)();
    if (read(fd, p, 6) != 6)
        return 1;
    int b = ((fn)p)();
    munmap(p, 4096);
    p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (read(fd, p, 6) != 6 || mprotect(p, 4096, PROT_READ | PROT_EXEC))
        return 1;
    int c = ((fn)p)();
    printf("%d %d %d\n", a, b, c);
    return 0;
}
"""

KWRITE_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
static char bss[8192];
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    char *file = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    volatile char zero = bss[4096], first = file[0];
    if (pread(fd, bss + 4096, 5, 0) != 5 || pread(fd, file, 5, 5) != 5)
        return 1;
    printf("%.5s %.5s %d %c\n", bss + 4096, file, zero, first);
    return 0;
}
"""

COW_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    char *file = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    char was = file[0];
    file[0] = 'Z';
    char again[1];
    pread(fd, again, 1, 0);
    printf("%c %c %c\n", was, file[0], again[0]);
    return 0;
}
"""

THREADS_C = r"""
#include <pthread.h>
#include <stdio.h>
static int counter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *work(void *arg) {
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return arg;
}
int main(void) {
    pthread_t t[4];
    long sum = 0;
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("%d %ld\n", counter, sum);
    return 0;
}
"""

SLEEPER_C = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec a, b, ten = {10, 0};
    clock_gettime(CLOCK_MONOTONIC, &a);
    nanosleep(&ten, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%s\n", b.tv_sec - a.tv_sec >= 10 ? "slept 10 s" : "woke early");
    return 0;
}
"""

CPUID_C = r"""
#include <cpuid.h>
#include <stdio.h>
int main(void) {
    unsigned a, b, c, d;
    __cpuid(1, a, b, c, d);
    int avx = c >> 28 & 1, xsave = c >> 26 & 1, sse2 = d >> 26 & 1;
    __cpuid_count(7, 0, a, b, c, d);
    printf("sse2 %d avx %d xsave %d avx2 %d\n", sse2, avx, xsave, b >> 5 & 1);
    return 0;
}
"""

SPIN_C = r"""
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
static atomic_int flag, ready;
static void *other(void *arg) {
    atomic_store(&ready, 1);
    while (!atomic_load(&flag))
        ;
    atomic_store(&flag, 2);
    return arg;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, other, NULL);
    while (!atomic_load(&ready))
        ;
    atomic_store(&flag, 1);
    while (atomic_load(&flag) != 2)
        ;
    pthread_join(t, NULL);
    printf("spun %d\n", atomic_load(&flag));
    return 0;
}
"""

HANDLER_C = r"""
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
static sigjmp_buf env;
static void *fault_addr;
static int code;
static void handler(int sig, siginfo_t *si, void *uc) {
    fault_addr = si->si_addr;
    code = si->si_code;
    siglongjmp(env, sig);
}
__attribute__((noinline)) static int divide(int a, int b) { return a / b; }
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    char *p = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(env, 1) == 0)
        p[4097] = 1;
    printf("SIGSEGV code %d at +%ld\n", code, (long)((char *)fault_addr - p));
    if (sigsetjmp(env, 1) == 0)
        printf("%d\n", divide(1, 0));
    printf("SIGFPE code %d\n", code);
    return 0;
}
"""

SPAWN_C = r"""
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
extern char **environ;
int main(void) {
    pid_t pid;
    char *argv[] = {"echo", "spawned", NULL};
    fflush(stdout);
    if (posix_spawn(&pid, "/bin/echo", NULL, NULL, argv, environ))
        return 1;
    int status;
    waitpid(pid, &status, 0);
    printf("child %d\n", WEXITSTATUS(status));
    return 0;
}
"""

SIGCHLD_C = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
static volatile int got;
static void on_chld(int sig) { got = sig; }
int main(void) {
    int status;
    signal(SIGCHLD, on_chld);
    pid_t pid = fork();
    if (pid == 0)
        _exit(5);
    waitpid(pid, &status, 0);
    printf("handler %d status %d\n", got, WEXITSTATUS(status));
    signal(SIGCHLD, SIG_IGN);
    pid = fork();
    if (pid == 0)
        _exit(6);
    int r = waitpid(pid, &status, 0);
    printf("ignored: %d %s\n", r, r < 0 && errno == ECHILD ? "ECHILD" : "?");
    return 0;
}
"""

PKU_C = r"""
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
static sigjmp_buf env;
static siginfo_t last;
static void handler(int sig, siginfo_t *si, void *uc) { last = *si; siglongjmp(env, 1); }
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    int pkey = pkey_alloc(0, 0);
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 1;
    if (pkey < 0 || pkey_mprotect(p, 4096, PROT_READ | PROT_WRITE, pkey))
        return 1;
    pkey_set(pkey, PKEY_DISABLE_WRITE);
    int denied = 0;
    if (sigsetjmp(env, 1) == 0)
        p[1] = 2;
    else
        denied = 1;
    int readable = p[0];
    pkey_set(pkey, 0);
    p[1] = 3;
    printf("pkey %d rights %d denied %d code %d addr +%ld pkey %d read %d wrote %d\n", pkey,
           pkey_get(pkey), denied, last.si_code, (long)((char *)last.si_addr - p),
           last.si_pkey, readable, p[1]);
    return 0;
}
"""

SEGV_C = r"""
int main(void) {
    *(volatile int *)0 = 1;
    return 0;
}
"""

SOURCES = {"hello": (HELLO_S, ".S", ["-static", "-nostdlib"]),
           "exit": (EXIT_S, ".S", ["-static", "-nostdlib"]),
           "heap": (HEAP_C, ".c", ["-static", "-O1"]),
           "forkwait": (FORKWAIT_C, ".c", []),
           "jit": (JIT_C, ".c", ["-O1"]),
           "readcode": (READCODE_C, ".c", ["-O1"]),
           "kwrite": (KWRITE_C, ".c", ["-O1"]),
           "cow": (COW_C, ".c", ["-O1"]),
           "threads": (THREADS_C, ".c", ["-O1", "-pthread"]),
           "sleeper": (SLEEPER_C, ".c", []),
           "cpuid": (CPUID_C, ".c", []),
           "spin": (SPIN_C, ".c", ["-O1", "-pthread"]),
           "handler": (HANDLER_C, ".c", ["-O1"]),
           "spawn": (SPAWN_C, ".c", ["-O1"]),
           "sigchld": (SIGCHLD_C, ".c", ["-O1"]),
           "pku": (PKU_C, ".c", ["-O1"]),
           "segv": (SEGV_C, ".c", [])}
#: the environment of both runs
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C"}


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    out = tmp_path_factory.mktemp("progs")
    for name, (src, ext, flags) in SOURCES.items():
        (out / (name + ext)).write_text(src)
        subprocess.run(["gcc", *flags, "-o", str(out / name), str(out / (name + ext))],
                       check=True, capture_output=True)
    (out / "code.bin").write_bytes(bytes([0xB8, 1, 0, 0, 0, 0xC3, 0xB8, 2, 0, 0, 0, 0xC3,
                                          0xB8, 3, 0, 0, 0, 0xC3]))
    (out / "data.txt").write_bytes(b"helloworld")
    return out


def run_model(argv: list[str], trace: list[str] | None = None, cwd: str = "/",
              pkeys: bool = False) -> tuple[int, bytes]:
    """argv run on the model (protection keys as `pkeys`: off, as on this machine): its
    wait status and what it wrote to stdout."""
    kernel = Kernel(pkeys=pkeys)
    with tempfile.TemporaryFile() as out, \
            Machine(kernel, tracer=Tracer(trace.append) if trace is not None else None) as m:
        leader = m.start(argv[0], argv, [f"{k}={v}" for k, v in ENV.items()],
                         (HostStream(0), HostStream(out.fileno()), HostStream(2)), cwd=cwd)
        status = m.run(leader)
        out.seek(0)
        return status, out.read()


def run_native(argv: list[str]) -> tuple[int, bytes]:
    """argv run natively: its wait status (as the model reports it) and stdout."""
    r = subprocess.run(argv, capture_output=True, env=ENV)
    return (-r.returncode if r.returncode < 0 else r.returncode << 8), r.stdout


@pytest.mark.parametrize("name,args", [
    ("hello", []), ("exit", []), ("heap", []), ("forkwait", []), ("jit", []), ("readcode", ["code.bin"]),
    ("kwrite", ["data.txt"]), ("cow", ["data.txt"]), ("threads", []),
    ("spin", []), ("handler", []), ("spawn", []), ("sigchld", []), ("pku", []),
])
def test_program_as_natively(progs, name, args):
    argv = [str(progs / name), *(str(progs / a) for a in args)]
    assert run_model(argv) == run_native(argv)


def test_expected_outputs(progs):
    """What the programs print, spelled out (the native run could be wrong too)."""
    assert run_model([str(progs / "hello")]) == (42 << 8, b"hello from the model\n")
    assert run_model([str(progs / "heap")]) == (3 << 8, b"small x y p\n")
    assert run_model([str(progs / "forkwait")]) == (0, b"child\nparent: reaped, exited 7\n")
    assert run_model([str(progs / "jit")]) == (0, b"1 2\n")
    assert run_model([str(progs / "readcode"), str(progs / "code.bin")]) == (0, b"1 2 3\n")
    assert run_model([str(progs / "kwrite"), str(progs / "data.txt")]) == (0, b"hello world 0 h\n")
    assert run_model([str(progs / "cow"), str(progs / "data.txt")]) == (0, b"h Z h\n")
    assert run_model([str(progs / "threads")]) == (0, b"4000 6\n")
    assert run_model([str(progs / "spin")]) == (0, b"spun 2\n")
    assert run_model([str(progs / "handler")]) == \
        (0, b"SIGSEGV code 2 at +4097\nSIGFPE code 1\n")
    assert run_model([str(progs / "spawn")]) == (0, b"spawned\nchild 0\n")
    assert run_model([str(progs / "sigchld")]) == (0, b"handler 17 status 5\nignored: -1 ECHILD\n")


def test_protection_keys(progs):
    """With PKU (the model's, CPUID showing it): pkey_alloc, pkey_mprotect, and PKRU
    written with WRPKRU by glibc's pkey_set(): a write denied by the key is SIGSEGV with
    SEGV_PKUERR, the byte's address and the key; reads go on; rights restored, the write
    goes through."""
    assert run_model([str(progs / "pku")], pkeys=True) == \
        (0, b"pkey 1 rights 0 denied 1 code 4 addr +1 pkey 1 read 1 wrote 3\n")


def test_sleep_is_virtual(progs):
    start = time.monotonic()
    assert run_model([str(progs / "sleeper")]) == (0, b"slept 10 s\n")
    assert time.monotonic() - start < 10


def test_cpuid_hides_what_the_emulator_cannot_run(progs):
    assert run_model([str(progs / "cpuid")]) == (0, b"sse2 1 avx 0 xsave 0 avx2 0\n")


def test_segv_kills_with_the_signal(progs):
    status, out = run_model([str(progs / "segv")])
    assert status & 0x7F == 11 and out == b""
    assert run_native([str(progs / "segv")])[0] & 0x7F == 11


def mm_calls(lines: list[str]) -> list[str]:
    """The mm calls of an strace-syntax log, spacing normalised."""
    names = ("mmap(", "munmap(", "mprotect(", "brk(", "mremap(", "madvise(")
    return [" = ".join(part.strip() for part in line.rsplit(" = ", 1))
            for line in lines if line.startswith(names)]


def test_static_heap_mm_calls_as_natively(progs, tmp_path):
    """brk, mmap, mremap, mprotect, munmap of a static glibc program: the same calls
    with the same addresses and results as `setarch -R strace -e trace=memory`."""
    if shutil.which("strace") is None or shutil.which("setarch") is None:
        pytest.skip("needs strace and setarch")
    prog = str(progs / "heap")
    log = tmp_path / "strace.log"
    subprocess.run(["setarch", "-R", "strace", "-e", "trace=memory", "-o", str(log), prog],
                   capture_output=True, env=ENV)
    native = mm_calls(log.read_text().splitlines())
    trace: list[str] = []
    run_model([prog], trace)
    assert mm_calls(trace) == native
    assert any(line.startswith("mremap(") for line in native)


def test_runs_repeat_exactly(progs):
    """Two runs of a multi-threaded program make the same calls in the same order."""
    first: list[str] = []
    second: list[str] = []
    run_model([str(progs / "threads")], first)
    run_model([str(progs / "threads")], second)
    assert first == second


def test_registers_round_trip():
    """PtRegs into the core and back: every general register, the segment bases and the
    FXSAVE image (x87 stack, tag word, MXCSR, XMM registers) come back as they went in."""
    cpu = Cpu(cpuid_for(host_cpu_model()))
    try:
        image = bytearray(512)
        struct.pack_into("<HHBxHQQII", image, 0, 0x37F, 0x3800 | 0x41, 0x81, 0x1DB, 0x401000,
                         0x7FFF0000, 0x1F80, 0x2FFFF)
        for i in (0, 7):
            struct.pack_into("<QH", image, 32 + 16 * i, 0xC000000000000000 | i, 0x3FFF + i)
        for i in range(16):
            image[160 + 16 * i:176 + 16 * i] = bytes(range(i, i + 16))
        regs = PtRegs(**{name: 0x1111 * (n + 1) for n, name in enumerate(
            ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
             "rdx", "rax", "rcx", "rsp", "rip"))}, eflags=0x246, fs_base=0x7FFFF7DD2740,
            gs_base=0x1234, fxsave=bytes(image))
        cpu.regs.load(regs)
        back = PtRegs()
        cpu.regs.store(back)
        assert back == regs
    finally:
        cpu.close()


def test_frames_of_exited_programs_are_freed(progs):
    """The frames a run allocated go back to the arena once its processes are gone."""
    import gc

    from vmsim.mm.page_alloc import PHYS
    run_model([str(progs / "forkwait")])
    gc.collect()
    before = PHYS.allocated
    run_model([str(progs / "forkwait")])
    gc.collect()
    assert PHYS.allocated == before


def test_relative_paths_start_from_the_working_directory(progs):
    """A relative path resolves from the working directory the process starts in."""
    status, out = run_model([str(progs / "cow"), "data.txt"], cwd=str(progs))
    assert (status, out) == (0, b"h Z h\n")


@pytest.fixture(autouse=True)
def _no_leaked_listeners():
    from vmsim.mm.page_alloc import PHYS
    before = (len(PHYS.on_new_chunk), len(PHYS.on_free))
    yield
    assert (len(PHYS.on_new_chunk), len(PHYS.on_free)) == before


def test_environment_reaches_the_program(progs, tmp_path):
    script = tmp_path / "env.sh"
    script.write_text("#!/bin/sh\necho \"$LANG\"\n")
    os.chmod(script, 0o755)
    assert run_model([str(script)]) == (0, b"C\n")
