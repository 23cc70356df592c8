"""`vmsim run`: real programs of this machine run on the model, compared with their
native runs: the same stdout and exit status, and under --trace the same mm syscalls
(mmap, munmap, mprotect, brk, mremap, madvise: addresses, arguments and results) as
`setarch -R strace -e trace=memory` shows natively, and the same lines of the file
calls (open, openat, read, write, close, fstat/newfstatat) as `setarch -R strace`
prints them, with the same argv[0], environment and working directory for both. The
lines are compared whole; none of the compared calls shows a pid or a time, the two
things a model run cannot share with a native one (set_tid_address's result and
getrandom's bytes, which do, are not compared). A program the model refuses or kills
is traced with the reasons `vmsim replay` gives; AT_EXECFN and the strings execve
copies are the caller's spelling of the filename, as natively. The lines strace decodes
by its own rules (the first execve, signals and their siginfo, sigaction and sigsets,
clone/clone3, futex, statx, wait4's status, select's fd sets as given, an interrupted
call's ERESTART and the restart_syscall that resumes it, one end per thread) are
compared with `setarch -R strace -f` thread by thread (run_helpers), pids replaced by
each thread's place in creation order.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("unicorn")

from run_helpers import lines_by_thread  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the environment of both runs (PYTHONPATH: so that vmsim imports; the program sees it
#: in both runs alike)
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C", "PYTHONPATH": REPO}
MM_CALLS = ("mmap(", "munmap(", "mprotect(", "brk(", "mremap(", "madvise(")
NATIVE_TOOLS = all(shutil.which(tool) for tool in ("strace", "setarch"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("work")
    (d / "lines.txt").write_text("pear\napple\nfig\n")
    (d / "dir").mkdir()
    for name in ("b", "a", "c.txt"):
        (d / "dir" / name).write_text(name)
    return d


def vmsim_run(args: list[str], cwd, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmsim", "run", *args], cwd=cwd, env=ENV,
                          input=stdin, capture_output=True, timeout=600)


def mm_lines(text: str) -> list[str]:
    """The mm calls of an strace-syntax log, the padding before ` = ` dropped."""
    return [" = ".join(part.strip() for part in line.rsplit(" = ", 1))
            for line in text.splitlines() if line.startswith(MM_CALLS)]


PROGRAMS = [
    ["true"],
    ["echo", "hello"],
    ["cat", "lines.txt"],
    ["ls", "dir"],
    ["sort", "lines.txt"],
    ["sha256sum", "lines.txt"],
    ["python3", "-c", "import json; print(json.dumps({'a': [1, 2.5, None]}))"],
]


@pytest.mark.parametrize("argv", PROGRAMS, ids=lambda argv: argv[0])
def test_output_and_status_as_natively(workdir, argv):
    native = subprocess.run(argv, cwd=workdir, env=ENV, capture_output=True, timeout=60)
    model = vmsim_run(["--", *argv], workdir)
    assert (model.returncode, model.stdout) == (native.returncode, native.stdout)
    assert model.stderr == native.stderr


@pytest.mark.skipif(not NATIVE_TOOLS, reason="needs strace and setarch")
@pytest.mark.parametrize("argv", PROGRAMS, ids=lambda argv: argv[0])
def test_mm_syscalls_as_natively(workdir, tmp_path, argv):
    log = tmp_path / "native.strace"
    subprocess.run(["setarch", "-R", "strace", "-e", "trace=memory", "-o", str(log), *argv],
                   cwd=workdir, env=ENV, capture_output=True, timeout=60)
    model = vmsim_run(["--trace", "--", *argv], workdir)
    native = mm_lines(log.read_text())
    assert native, "strace recorded no mm call"
    assert mm_lines(model.stderr.decode()) == native


def test_exit_status_and_signal(workdir):
    assert vmsim_run(["--", "sh", "-c", "exit 3"], workdir).returncode == 3
    assert vmsim_run(["--", "sh", "-c", "kill -SEGV $$"], workdir).returncode == 128 + 11


def test_pipeline_and_stdin(workdir, tmp_path):
    r = vmsim_run(["--", "sh", "-c", "sort | tr a-z A-Z"], workdir, stdin=b"b\na\n")
    assert (r.returncode, r.stdout) == (0, b"A\nB\n")
    given = tmp_path / "in.txt"
    given.write_bytes(b"zz\nyy\n")
    r = vmsim_run(["--stdin", str(given), "--", "sort"], workdir)
    assert (r.returncode, r.stdout) == (0, b"yy\nzz\n")


def test_maps_at_exit(workdir):
    r = vmsim_run(["--maps", "--", "true"], workdir)
    lines = r.stderr.decode().splitlines()
    assert r.returncode == 0
    assert any(line.endswith("/usr/bin/true") for line in lines)
    assert lines[-2].endswith("[stack]") and lines[-1].endswith("[vsyscall]")


def test_values_of_programs_calls_print_as_strace_does():
    """format_value for the argument kinds of the calls programs make: strace's names
    for enumerations and flag sets (open's flags in strace's order), a struct or buffer
    by its address (what strace shows of one it cannot read), NULL."""
    from vmsim.syscalls.names import CONSTANTS
    from vmsim.syscalls.strace import format_value
    assert [format_value(kind, v) for kind, v in [
        ("whence", 1), ("rlimres", 3), ("atflags", 0x1000), ("accmode", 0), ("accmode", 4),
        ("dirfd", -100 & (1 << 64) - 1), ("dirfd", 3), ("clockid", 1), ("grndflags", 1),
        ("fdoflags", 0o2000000), ("archcode", 0x1002), ("hex", 0x53053053),
        ("ioctlcmd", 0x5401), ("ioctlcmd", CONSTANTS["SGX_IOC_ENCLAVE_CREATE"]),
        ("ioctlcmd", 0x1234), ("oflags", 0o2204000), ("oflags", 0o20200002),
        ("fdpair", 0x7FFFFFFFE9F0), ("timespec", 0), ("rlimit", 0x7FFFFFFFEA00),
        ("statbuf", 0x7FFFFFFFE900), ("iovec", 0x555555559000),
    ]] == ["SEEK_CUR", "RLIMIT_STACK", "AT_EMPTY_PATH", "F_OK", "R_OK", "AT_FDCWD", "3",
           "CLOCK_MONOTONIC", "GRND_NONBLOCK", "O_CLOEXEC", "ARCH_SET_FS", "0x53053053",
           "TCGETS", "SGX_IOC_ENCLAVE_CREATE", "0x1234",
           "O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY", "O_RDWR|O_TMPFILE",
           "0x7fffffffe9f0", "NULL", "0x7fffffffea00", "0x7fffffffe900", "0x555555559000"]


def test_trace_shows_the_calls(workdir):
    r = vmsim_run(["--trace", "--", "true"], workdir)
    lines = r.stderr.decode().splitlines()
    # envp is where the new stack holds it: its address moves with the environment's
    # length (PYTHONPATH is this checkout's path), so only its range is fixed
    first = re.fullmatch(r'execve\("/usr/bin/true", \["true"\], 0x([0-9a-f]+) /\* 3 vars \*/\) = 0',
                         lines[0])
    assert first is not None, lines[0]
    assert 0x7FFFFFFDE000 <= int(first.group(1), 16) < 0x7FFFFFFFF000
    assert lines[1].startswith("brk(NULL)")
    assert lines[-2:] == ["exit_group(0)" + " " * 26 + " = ?", "+++ exited with 0 +++"]


#: the file calls whose lines are compared with strace's (glibc's fstat is newfstatat)
FILE_CALLS = ("open(", "openat(", "read(", "write(", "close(", "fstat(", "newfstatat(")


def traced_lines(text: str, calls: tuple[str, ...]) -> list[str]:
    """The lines of an strace-syntax log that start with one of `calls`, whole."""
    return [line for line in text.splitlines() if line.startswith(calls)]


@pytest.mark.skipif(not NATIVE_TOOLS, reason="needs strace and setarch")
@pytest.mark.parametrize("argv", [["echo", "hello"], ["cat", "lines.txt"], ["ls", "dir"]],
                         ids=lambda argv: " ".join(argv))
def test_trace_lines_as_natively(workdir, tmp_path, argv):
    """The mm and file calls of --trace are strace's lines, byte for byte: the same
    arguments (strings, flags, structs, buffers read after the call) and results."""
    log = tmp_path / "native.strace"
    subprocess.run(["setarch", "-R", "strace", "-o", str(log), *argv], cwd=workdir, env=ENV,
                   capture_output=True, timeout=60)
    model = vmsim_run(["--trace", "--", *argv], workdir)
    native = traced_lines(log.read_text(), MM_CALLS + FILE_CALLS)
    assert any(line.startswith("openat(") for line in native)
    assert traced_lines(model.stderr.decode(), MM_CALLS + FILE_CALLS) == native


REFUSED_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    char *a = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(a + 4096, 4096);
    int hole = mprotect(a, 3 * 4096, PROT_READ);
    int unaligned = munmap(a + 1, 4096);
    void *taken = mmap(a, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    long sealed = syscall(462, a + 2 * 4096, 4096, 0);
    int unmap_sealed = munmap(a + 2 * 4096, 4096);
    printf("%d %d %d %ld %d\n", hole, unaligned, taken == MAP_FAILED, sealed, unmap_sealed);
    fflush(stdout);
    a[0] = 1;
    return 0;
}
"""


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """A program whose mm calls the kernel refuses, killed by a write to a page it made
    read-only."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("refused")
    (d / "refused.c").write_text(REFUSED_C)
    subprocess.run(["gcc", "-O1", "-o", str(d / "refused"), str(d / "refused.c")], check=True,
                   capture_output=True)
    return d / "refused"


def test_refusals_and_faults_are_explained(workdir, refused):
    """Each refused mm call is followed by replay's `why:`; the fault by its signal as
    strace prints it and the VMA and permission that caused it."""
    r = vmsim_run(["--trace", "--", str(refused)], workdir)
    assert (r.returncode, r.stdout) == (128 + 11, b"-1 -1 1 0 -1\n")
    lines = r.stderr.decode().splitlines()

    def after(prefix: str) -> list[str]:
        i = next(i for i, line in enumerate(lines) if line.startswith(prefix))
        return [line for line in lines[i + 1:i + 3] if line.startswith("  why: ")]
    mapped = [line for line in lines if line.startswith("mmap(NULL, 12288, PROT_READ|PROT_WRITE")]
    a = int(mapped[-1].rsplit(" = ", 1)[1], 16)
    assert after(f"mprotect({a:#x}, 12288, PROT_READ)") == [
        f"  why: {a + 4096:#x} is not mapped: the call stops at the first hole in "
        f"[{a:#x}, {a + 3 * 4096:#x}) (the part before it was already changed)"]
    assert after(f"munmap({a + 1:#x}, 4096)") == [f"  why: {a + 1:#x} is not page aligned"]
    assert after(f"mmap({a:#x}, 4096, PROT_READ") == [
        f"  why: MAP_FIXED_NOREPLACE: [{a:#x}, {a + 4096:#x}) overlaps [{a:#x}, {a + 4096:#x})"]
    assert after(f"munmap({a + 2 * 4096:#x}, 4096)") == [
        f"  why: [{a + 2 * 4096:#x}, {a + 3 * 4096:#x}) is sealed (mseal): it cannot be "
        "unmapped, moved, reprotected or discarded"]
    signal = lines.index(f"--- SIGSEGV {{si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr={a:#x}}} ---")
    assert lines[signal + 1:] == [f"  why: [{a:#x}, {a + 4096:#x}) r--p does not allow writing",
                                  "+++ killed by SIGSEGV +++"]


@pytest.mark.skipif(not NATIVE_TOOLS, reason="needs strace and setarch")
def test_signal_lines_as_natively(workdir, refused, tmp_path):
    """The refused calls' lines, the signal and the end are strace's (mseal's is not
    compared: this machine's strace 6.1 predates it and prints every register)."""
    log = tmp_path / "native.strace"
    subprocess.run(["setarch", "-R", "strace", "-o", str(log), str(refused)], cwd=workdir,
                   env=ENV, capture_output=True, timeout=60)
    model = vmsim_run(["--trace", "--", str(refused)], workdir)
    wanted = MM_CALLS + ("---", "+++")
    native = traced_lines(log.read_text(), wanted)
    assert native[-2].startswith("--- SIGSEGV") and native[-1] == "+++ killed by SIGSEGV +++"
    assert sum(" = -1 " in line for line in native) == 4
    assert [_unpadded(line) for line in traced_lines(model.stderr.decode(), wanted)] == \
        [_unpadded(line) for line in native]


def _unpadded(line: str) -> str:
    return " = ".join(part.strip() for part in line.rsplit(" = ", 1))


EXECFN_C = r"""
#include <stdio.h>
#include <sys/auxv.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n < 0 ? 0 : n] = 0;
    const char *fn = (const char *)getauxval(AT_EXECFN);
    printf("AT_EXECFN %s at %p, argv[0] at %p, exe %s\n", fn, (void *)fn, (void *)argv[0], exe);
    fflush(stdout);
    if (argc > 1)
        execv(argv[1], argv + 1);
    return 0;
}
"""


@pytest.fixture(scope="module")
def execfn(tmp_path_factory):
    """A program that prints AT_EXECFN, where it and argv[0] lie on the stack and
    /proc/self/exe, then executes its arguments; and a symbolic link to it."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("execfn")
    (d / "execfn.c").write_text(EXECFN_C)
    subprocess.run(["gcc", "-O1", "-o", str(d / "execfn"), str(d / "execfn.c")], check=True,
                   capture_output=True)
    (d / "link").symlink_to("execfn")
    return d


@pytest.mark.skipif(shutil.which("setarch") is None, reason="needs setarch")
@pytest.mark.parametrize("argv", [
    ["./execfn"],
    ["./link"],
    ["./execfn", "../execfn0/../execfn0/link"],
    ["./link", "/bin/sh", "-c", "exec ./link"],
    ["/bin/sh", "-c", "./link \"$0\"; exec ./execfn", "./execfn"],
], ids=lambda argv: " ".join(argv))
def test_execfn_is_the_given_filename(execfn, argv):
    """execve keeps the filename as given: AT_EXECFN, the strings on the stack (their
    addresses) and a script's argv are native's, /proc/self/exe the resolved file."""
    argv = [a.replace("execfn0", execfn.name) for a in argv]
    native = subprocess.run(["setarch", "-R", *argv], cwd=execfn, env=ENV, capture_output=True,
                            timeout=60)
    model = vmsim_run(["--", *argv], execfn)
    assert model.stdout.count(b"AT_EXECFN") == native.stdout.count(b"AT_EXECFN") > 0
    assert (model.returncode, model.stdout) == (native.returncode, native.stdout)


def test_vdso_needs_gcc(workdir, tmp_path):
    """Without gcc (and no image built before), one line and status 2, before the
    program starts."""
    env = {**ENV, "PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "vmsim", "run", "--", "/bin/true"], cwd=workdir,
                       env=env, capture_output=True, timeout=600)
    assert r.returncode == 2
    assert r.stderr.decode() == "vmsim run: building the vDSO image needs gcc, which is not on PATH\n"


@pytest.mark.parametrize("args,message", [
    ([], "vmsim run: no program given"),
    (["--", "no-such-program-here"], "vmsim run: no-such-program-here: command not found"),
    (["--", "/etc/passwd"], "vmsim run: /etc/passwd: "),
    (["--stdin", "/no/such/file", "--", "true"], "vmsim run: /no/such/file: "),
    (["--record", "/no/such/dir/t.jsonl", "--", "true"], "vmsim run: /no/such/dir/t.jsonl: "),
])
def test_bad_input_is_one_line(workdir, args, message):
    r = vmsim_run(args, workdir)
    err = r.stderr.decode()
    assert r.returncode == 2
    assert err.startswith(message) and err.count("\n") == 1


TRACED_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static void on_signal(int sig) { (void)sig; }
static int started;
static void *idle(void *arg) {
    __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
    for (;;)
        pause();
    return arg;
}
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGRTMIN + 3);
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGUSR2, NULL, &sa);
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    kill(getpid(), SIGUSR2);
    syscall(SYS_tgkill, getpid(), getpid(), SIGUSR2);
    alarm(1);
    struct timespec five = {5, 0}, tiny = {0, 1000};
    nanosleep(&five, NULL);
    int word = 0;
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    syscall(SYS_futex, &word, FUTEX_WAIT, 0, &tiny, NULL, 0);
    struct statx stx;
    statx(AT_FDCWD, "lines.txt", 0, STATX_BASIC_STATS, &stx);
    statx(AT_FDCWD, "missing", AT_SYMLINK_NOFOLLOW, STATX_ALL, &stx);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    syscall(SYS_getpriority, PRIO_PROCESS, 0);
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    getpeername(0, (struct sockaddr *)&peer, &len);
    int fds[2];
    pipe(fds);
    fd_set in;
    FD_ZERO(&in);
    FD_SET(0, &in);
    FD_SET(fds[0], &in);
    struct timeval half = {0, 500000};
    select(fds[0] + 1, &in, NULL, NULL, &half);
    struct pollfd p = {fds[0], POLLIN, 0};
    struct timespec quarter = {0, 250000000};
    ppoll(&p, 1, &quarter, NULL);
    pid_t child = fork();
    if (child == 0)
        _exit(4);
    int status;
    wait4(child, &status, 0, NULL);
    child = fork();
    if (child == 0) {
        kill(getpid(), SIGTERM);
        _exit(1);
    }
    waitpid(child, &status, 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, idle, NULL);
    while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < 2)
        ;
    struct timespec settle = {0, 20000000};     /* for both to sleep in pause() */
    nanosleep(&settle, NULL);
    return 3;
}
"""
#: the calls and events the tracer decodes itself (besides the file and mm calls)
TRACED_CALLS = ("execve(", "rt_sigaction(SIGUSR2", "rt_sigaction(SIGALRM", "rt_sigprocmask(",
                "rt_sigreturn(", "kill(", "tgkill(", "alarm(", "clock_nanosleep(", "futex(", "statx(",
                "getrusage(", "getpeername(", "pipe(", "select(", "pselect6(", "ppoll(", "clone(",
                "clone3(", "wait4(", "exit_group(", "---", "+++")
#: what a model run cannot share with a native one: the envp address (strace's own
#: copy), the CPU times, and the time a wait left (the model's clock does not move
#: while a call finds its fds ready)
UNSHARED = [(re.compile(r"0x[0-9a-f]+ (/\* \d+ vars \*/)"), r"ENVP \1"),
            (re.compile(r"tv_usec=\d+"), "tv_usec=N"),
            (re.compile(r"left \{tv_sec=\d+, tv_nsec=\d+\}"), "left {...}")]


@pytest.fixture(scope="module")
def traced(workdir):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    (workdir / "traced.c").write_text(TRACED_C)
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(workdir / "traced"), str(workdir / "traced.c")],
                   check=True, capture_output=True)
    return workdir / "traced"


def traced_by_thread(text: str) -> list[list[str]]:
    """The decoded lines of each thread, in creation order, with each tid (as an
    argument, a result or a si_pid) replaced by its thread's place in that order."""
    tids, threads = lines_by_thread(text)
    out = []
    for lines in threads:
        kept = []
        for line in lines:
            if not line.startswith(TRACED_CALLS):
                continue
            for n, tid in enumerate(tids):
                line = re.sub(rf"(?<!sec=)\b{tid}\b", f"TID{n}", line)
            for pattern, replacement in UNSHARED:
                line = pattern.sub(replacement, line)
            kept.append(line)
        out.append(kept)
    return out


@pytest.mark.skipif(not NATIVE_TOOLS, reason="needs strace and setarch")
def test_tracer_lines_as_natively(workdir, traced, tmp_path):
    """The lines strace decodes by its own rules, thread by thread: the first execve;
    sigaction's struct and sigsets; signals sent with kill and tgkill, a SIGALRM that
    interrupts nanosleep (`= ? ERESTART_RESTARTBLOCK`, rt_sigreturn's mask), the
    SIGCHLD of a child that exits and of one killed by SIGTERM (its fatal signal's
    line), which a traced parent does not ignore; futex, statx, getrusage, getpeername
    (ENOTSOCK), select's fd sets as given, ppoll's timeout, clone, clone3 and wait4's
    status; an exit_group that ends two threads sleeping in pause(): their calls `= ?`
    and one `+++ exited with 3 +++` each, the leader's last. Every call by strace's
    name, getpriority's too (the model answers it ENOSYS, and says so once after the
    run)."""
    log = tmp_path / "native.strace"
    native = subprocess.run(["setarch", "-R", "strace", "-f", "-o", str(log), "./traced"],
                            cwd=workdir, env=ENV, capture_output=True, timeout=60)
    model = vmsim_run(["--trace", "--", "./traced"], workdir)
    assert (model.returncode, model.stdout) == (native.returncode, native.stdout) == (3, b"")
    expected = traced_by_thread(log.read_text())
    assert len(expected) == 5
    assert any(line.startswith("clock_nanosleep(") and "ERESTART_RESTARTBLOCK" in line
               for line in expected[0])
    assert traced_by_thread(model.stderr.decode()) == expected
    model_lines = model.stderr.decode().splitlines()
    assert call_names(model_lines[:-1]) == call_names(log.read_text().splitlines())
    assert model_lines[-1] == "vmsim run: syscall 140 (getpriority) is not modelled (answered ENOSYS)"


def call_names(lines: list[str]) -> list[list[str]]:
    """The names of the calls each thread made, in order (getpriority's: one the model
    does not have, printed by strace's name), from the lines of an strace -f log."""
    threads = lines_by_thread("\n".join(line for line in lines if not line.startswith("  why: ")))[1]
    return [[line.split("(", 1)[0] for line in thread if not line.startswith(("---", "+++"))]
            for thread in threads]


def test_bash_as_natively(workdir):
    """bash asks getpeername whether its stdin is a socket (ENOTSOCK: it is not); then
    prints what it prints natively, on stdout and stderr."""
    argv = ["bash", "-c", "echo hi"]
    native = subprocess.run(argv, cwd=workdir, env=ENV, capture_output=True, timeout=60)
    model = vmsim_run(["--", *argv], workdir)
    assert (model.returncode, model.stdout, model.stderr) == \
        (native.returncode, native.stdout, native.stderr) == (0, b"hi\n", b"")


RESTART_C = r"""
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
    pid_t parent = getpid();
    if (fork() == 0) {
        struct timespec t = {0, 100000000};
        nanosleep(&t, NULL);
        kill(parent, SIGSTOP);
        kill(parent, SIGCONT);
        _exit(0);
    }
    struct timespec two = {2, 0};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &two, NULL);
    wait(NULL);
    return 0;
}
"""


@pytest.mark.skipif(not NATIVE_TOOLS, reason="needs strace and setarch")
def test_interrupted_call_and_restart_as_natively(workdir, tmp_path):
    """A sleep a signal interrupts without a handler (SIGSTOP: the model does not stop,
    but the call is interrupted and made again all the same) is written `= ?
    ERESTART_RESTARTBLOCK (Interrupted by signal)`, the signal, then the
    restart_syscall that resumes it, naming it, as strace writes them. (Traced, the
    parent also stops, sees SIGCONT and SIGCHLD interrupt restart_syscall again: the
    results after that differ.)"""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    (tmp_path / "restart.c").write_text(RESTART_C)
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / "restart"), str(tmp_path / "restart.c")],
                   check=True, capture_output=True)
    log = tmp_path / "native.strace"
    subprocess.run(["setarch", "-R", "strace", "-f", "-o", str(log), "./restart"], cwd=tmp_path,
                   env=ENV, capture_output=True, timeout=60)
    model = vmsim_run(["--trace", "--", "./restart"], tmp_path)
    assert model.returncode == 0

    def parents(text: str) -> list[str]:
        lines = lines_by_thread(text)[1][0]
        first = next(i for i, line in enumerate(lines) if line.startswith("clock_nanosleep("))
        return [re.sub(r"si_pid=\d+", "si_pid=CHILD", line) for line in lines[first:first + 3]]
    native, ours = parents(log.read_text()), parents(model.stderr.decode())
    assert ours[0] == native[0] == "clock_nanosleep(CLOCK_MONOTONIC, 0, {tv_sec=2, tv_nsec=0}, NULL) = " \
        "? ERESTART_RESTARTBLOCK (Interrupted by signal)"
    assert ours[1] == native[1] == \
        "--- SIGSTOP {si_signo=SIGSTOP, si_code=SI_USER, si_pid=CHILD, si_uid=0} ---"
    resumed = "restart_syscall(<... resuming interrupted clock_nanosleep ...>)"
    assert ours[2] == resumed + " = 0"
    assert any(line.startswith(resumed + " = ") for line in lines_by_thread(log.read_text())[1][0])
