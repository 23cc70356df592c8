"""strace import: the shapes real `strace -f` output takes (style-and-conventions
§4.3), on top of the scenario parser."""

from __future__ import annotations

import pytest

import vmsim.syscalls.strace as S
from vmsim import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE
from vmsim.drivers.sgx import uapi as sgx
from vmsim.trace import strace as T
from vmsim.trace.format import TraceError
from vmsim.trace.load import read_trace


def recs(text):
    return T.parse_strace(text, "t.strace").records


def test_shares_the_scenario_parser(monkeypatch):
    seen = []
    real = S.parse_result

    def spy(text):
        seen.append(text)
        return real(text)
    monkeypatch.setattr(S, "parse_result", spy)
    (r,) = recs("mprotect(0x7f0000000000, 4096, PROT_READ) = 0\n")
    assert seen and r.args == [0x7F0000000000, 4096, PROT_READ]


@pytest.mark.parametrize("prefix", ["", "12345 ", "[pid 12345] ", "12:34:56 ",
                                    "12:34:56.123456 ", "1700000000.123456 ",
                                    "12345 12:34:56.123456 ", "[pid  12345] 1700000000.1 "])
def test_prefixes(prefix):
    (r,) = recs(prefix + "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, "
                "-1, 0) = 0x7f8a3c2b1000 <0.000012>\n")
    assert r.call == "mmap" and r.ret == 0x7F8A3C2B1000
    assert r.args == [0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0]
    assert r.pid == (12345 if prefix.lstrip("[pid ").startswith("12345") else None)


def test_raw_and_verbose_and_abbrev_agree():
    abbrev = recs("mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7f0000000000\n")
    raw = recs("mmap(NULL, 0x1000, 0x3, 0x1, 3, 0) = 0x7f0000000000\n")
    verbose = recs("mmap(NULL, 4096, 0x3 /* PROT_READ|PROT_WRITE */, 0x1 /* MAP_SHARED */, "
                   "3, 0) = 0x7f0000000000\n")
    assert abbrev[0].args == raw[0].args == verbose[0].args
    assert abbrev[0].args[3] == MAP_SHARED


def test_errors_and_unknown_results():
    a, b, c = recs("mprotect(0x7f1a00000000, 4096, PROT_READ|PROT_WRITE|PROT_EXEC) = -1 EACCES "
                   "(Permission denied)\n"
                   "munmap(0x7f0000000000, 4096) = ? ERESTARTSYS (To be restarted if "
                   "SA_RESTART is set)\n"
                   "exit_group(0)                           = ?\n")
    assert a.err == "EACCES" and a.ret is None
    assert b.unknown_result and c.call == "exit" and c.unknown_result


def test_unfinished_resumed_pairs():
    text = ("100 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>\n"
            "101 munmap(0x7f0000100000, 4096 <unfinished ...>\n"
            "100 <... mmap resumed>)                 = 0x7f0000000000\n"
            "101 <... munmap resumed>) = 0\n")
    a, b = recs(text)
    assert (a.pid, a.call, a.ret, a.line) == (100, "mmap", 0x7F0000000000, 3)
    assert (b.pid, b.call, b.ret, b.line) == (101, "munmap", 0, 4)


def test_calls_are_in_completion_order():
    """A call is replayed where it completes: here pid 101's munmap, started later,
    completes first (replaying at the start lines unmapped before the mmap)."""
    text = ("100 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>\n"
            "101 munmap(0x7f0000000000, 4096 <unfinished ...>\n"
            "101 <... munmap resumed>) = 0\n"
            "100 <... mmap resumed>) = 0x7f0000000000\n")
    assert [r.call for r in recs(text)] == ["munmap", "mmap"]


def test_capabilities_are_not_decorations_and_pid_first_is_strace():
    """`1<<CAP_CHOWN` is a shift, not a -y decoration; a log whose first line starts
    with `[pid N]` is strace text, not JSON Lines."""
    text = ("[pid 7] capget({version=_LINUX_CAPABILITY_VERSION_3, pid=0}, "
            "{effective=1<<CAP_CHOWN|1<<CAP_KILL, permitted=0}) = 0\n"
            "[pid 7] mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n")
    trace = read_trace(text, "t.strace")
    assert [r.call for r in trace.records] == ["mmap"] and trace.skipped == {"capget": 1}


def test_unfinished_never_resumed_has_unknown_result():
    (r,) = recs("7 munmap(0x7f0000000000, 4096 <unfinished ...>\n7 +++ killed by SIGKILL +++\n"
                )[:1]
    assert r.call == "munmap" and r.unknown_result


def test_strace_messages_inside_lines():
    text = ("clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD/usr/bin/strace: "
            "Process 9 attached\n, child_tidptr=0x7f0000000a10) = 9\n"
            "wait4(9, strace: Process 9 attached\n <unfinished ...>\n"
            "[pid 9] munmap(0x7f0000000000, 4096) = 0\n"
            "<... wait4 resumed>NULL, 0, NULL) = 9\n")
    rs = recs(text)
    assert [r.call for r in rs] == ["clone", "munmap"]
    assert rs[0].ret == 9 and rs[1].pid == 9


def test_fd_decorations():
    rs = recs('openat(AT_FDCWD</tmp>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) '
              '= 3</usr/lib/x86_64-linux-gnu/libc.so.6>\n'
              "mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3</usr/lib/x86_64-linux-gnu/libc.so.6>, "
              "0) = 0x7f0000000000\n"
              "dup(1</dev/pts/0<char 136:0>>) = 4</dev/pts/0<char 136:0>>\n"
              "close(3</usr/lib/x86_64-linux-gnu/libc.so.6>) = 0\n")
    o, m, d, c = rs
    assert o.args[0] == "/lib/x86_64-linux-gnu/libc.so.6"
    assert o.ret == 3 and o.ret_path == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    assert m.fd_path == "/usr/lib/x86_64-linux-gnu/libc.so.6" and m.args[4] == 3
    assert d.args == [1] and d.fd_path == "/dev/pts/0" and d.ret == 4
    assert c.args == [3]


def test_events_and_skipped_counts():
    t = T.parse_strace("read(3, \"\\177ELF\\2\\1\"..., 832) = 832\n"
                       "newfstatat(3, \"\", {st_mode=S_IFREG|0755, st_size=1926232, ...}, "
                       "AT_EMPTY_PATH) = 0\n"
                       "read(3, \"x\", 1) = 1\n"
                       "ioctl(1, TCGETS, {c_iflag=ICRNL|IXON, ...}) = 0\n"
                       "--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr=0x7f0000000000} ---\n"
                       "+++ killed by SIGSEGV (core dumped) +++\n", "t")
    assert t.skipped == {"read": 2, "newfstatat": 1, "ioctl(non-SGX)": 1}
    sig, killed = t.records
    assert (sig.event, sig.signal) == ("signal", "SIGSEGV")
    assert (killed.event, killed.signal) == ("killed", "SIGSEGV")


def test_sgx_ioctls_by_name_and_number():
    a, b = recs("ioctl(3</dev/sgx_enclave>, SGX_IOC_ENCLAVE_CREATE, 0x7ffc4d1e2a30) = 0\n"
                "ioctl(3, 0xc030a401, 0x7ffc4d1e2a70) = -1 EINVAL (Invalid argument)\n")
    assert a.args == [3, sgx.SGX_IOC_ENCLAVE_CREATE, 0x7FFC4D1E2A30]
    assert b.args[1] == sgx.SGX_IOC_ENCLAVE_ADD_PAGES and b.err == "EINVAL"


def test_process_calls():
    rs = recs("clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, "
              "child_tidptr=0x7f0000000a10) = 12\n"
              "clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f0000000000, "
              "stack_size=0x9000}, 88) = 13\n"
              "vfork() = 14\nfork() = 15\n"
              'execve("/usr/bin/ls", ["ls", "-l"], 0x7ffd5e0 /* 39 vars */) = 0\n'
              "exit_group(1) = ?\n")
    assert [r.call for r in rs] == ["clone", "clone", "vfork", "fork", "execve", "exit"]
    assert rs[0].args[0] & 0x100 == 0 and rs[1].args[0] & 0x100
    assert rs[4].args == ["/usr/bin/ls"] and rs[5].args == [1]


def test_mseal_on_an_old_strace():
    (r,) = recs("syscall_0x1ce(0x7fe487b5b000, 0x2000, 0, 0xffffffff, 0, 0x7ffd3175) = 0\n")
    assert r.call == "mseal" and r.args == [0x7FE487B5B000, 0x2000, 0]


def test_line_cut_short_is_reported():
    with pytest.raises(TraceError) as ei:
        recs("brk(NULL) = 0x555555560000\nmmap(NULL, 4096, PROT_REA")
    assert str(ei.value).startswith("t.strace:2: ")


def test_child_lines_before_the_rest_of_the_clone_line():
    """strace on stderr: the child may print before the parent's clone line ends."""
    text = ("mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n"
            "clone(child_stack=NULL, flags=SIGCHLDstrace: Process 21 attached\n"
            "[pid 21] munmap(0x7f0000000000, 4096 <unfinished ...>\n"
            "[pid 20] <... clone resumed>, child_tidptr=0x7f0000000a10) = 21\n"
            "[pid 21] <... munmap resumed>) = 0\n"
            "[pid 20] wait4(21,  <unfinished ...>\n"
            "[pid 21] +++ exited with 0 +++\n"
            "<... wait4 resumed>NULL, 0, NULL) = 21\n"
            "munmap(0x7f0000000000, 4096) = 0\n")
    rs = [r for r in recs(text) if r.call]
    assert [(r.call, r.pid) for r in rs] == [("mmap", None), ("clone", None),
                                             ("munmap", 21), ("munmap", None)]


# --------------------------------------------------------------------------- issue #10

EVERY_FORM = "".join(line + "\n" for line in (
    '17434 12:34:56.123456 execve("/usr/bin/ls", ["ls", "/usr"], 0x7fffffffe820 '
    '/* 35 vars */) = 0 <0.000200>',
    "17434 12:34:56.123500 capget({version=_LINUX_CAPABILITY_VERSION_3, pid=0}, "
    "{effective=1<<CAP_CHOWN|1<<CAP_KILL, permitted=1<<CAP_CHOWN, inheritable=0}) = 0",
    " > /usr/lib/x86_64-linux-gnu/libc.so.6(__capget+0xb) [0x11b0ab]",
    " > /usr/bin/node(+0x1234) [0x5555]",
    "17434 mmap(NULL, 8192, 0x3 /* PROT_READ|PROT_WRITE */, "
    "0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0) = 0x7ffff7fc0000",
    '17434 openat(AT_FDCWD</tmp>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>',
    '17434 read(3</etc/ld.so.cache>, "\\177ELF\\2\\1\\1\\3\\0\\0>\\0P"..., 832) = 832',
    "17434 socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 4<UNIX:[123456]>",
    '17434 connect(4<UNIX:[123456]>, {sa_family=AF_UNIX, sun_path="/run/x"}, 110) '
    "= -1 ENOENT (No such file or directory)",
    "17434 fcntl(3</etc/ld.so.cache>, F_SETLK, {l_type=F_WRLCK, l_whence=SEEK_SET, "
    "l_start=0, l_len=0}) = 0",
    "17434 fcntl(3, F_GETFL) = 0x8000 (flags O_RDONLY|O_LARGEFILE)",
    "17434 pkey_alloc(0, 0) = -1 ENOSPC (No space left on device)",
    "17434 close(3</etc/ld.so.cache>) = 0",
    "17434 futex(0x7ffff7fc0000, FUTEX_WAIT_PRIVATE, 0, NULL <unfinished ...>",
    "17435 +++ superseded by execve in pid 17434 +++",
    "17434 <... futex resumed>) = ?",
    "17434 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=17436, si_uid=0, "
    "si_status=0, si_utime=0, si_stime=0} ---",
    "17434 --- stopped by SIGSTOP ---",
    "17434 exit_group(0) = ?",
    "17434 +++ exited with 0 +++",
))


def test_every_form_strace_prints_is_decoded_or_counted():
    """-tt, -T, -k frames, -yy decorations, -X verbose comments, shifts in flags,
    structs in calls that are not imported, superseded threads, signals: nothing fails."""
    trace = read_trace(EVERY_FORM, "t.strace")
    calls = [r.call for r in trace.records if r.call]
    assert calls == ["execve", "mmap", "open", "pkey_alloc", "close", "exit"]
    assert trace.records[0].argv == ["ls", "/usr"] and trace.records[0].envp is None
    assert trace.records[2].ret_path == "/etc/ld.so.cache"
    assert trace.skipped["capget"] == 1 and trace.skipped["fcntl(not replayed)"] == 2
    assert {"read", "socket", "connect", "futex"} <= set(trace.skipped)
    assert [r.event for r in trace.records if r.event] == ["superseded", "signal", "signal",
                                                           "exited"]


def test_a_skipped_call_is_not_decoded(monkeypatch):
    """Only the name of a call the table does not import is read."""
    monkeypatch.setattr(S, "strip_decorations", lambda s: pytest.fail("decoded " + s))
    trace = read_trace('read(3<x>, "\\x", 1) = 1\nfutex(0x1, 0 <unfinished ...>\n'
                       "<... futex resumed>) = 0\n", "t.strace")
    assert trace.records == [] and trace.skipped == {"read": 1, "futex": 1}


def test_execve_with_its_environment():
    (r,) = recs('execve("/bin/true", ["true", "a b"], ["HOME=/root", "X=1"]) = 0\n')
    assert r.args == ["/bin/true"] and r.argv == ["true", "a b"] and r.envp == ["HOME=/root",
                                                                                 "X=1"]
    (r,) = recs('execve("/bin/true", ["true", "a"...], ["HOME=/root", ...]) = 0\n')
    assert r.argv is None and r.envp is None        # cut short: not known


def test_new_calls_are_imported():
    rs = recs('memfd_create("x", MFD_CLOEXEC) = 3\n'
              "msync(0x7f0000000000, 4096, MS_SYNC) = 0\n"
              "mlockall(MCL_CURRENT|MCL_FUTURE) = 0\nmunlockall() = 0\n"
              "shmget(IPC_PRIVATE, 16384, IPC_CREAT|0600) = 65551\n"
              "shmat(65551, NULL, 0) = 0x7ffff7fba000\n"
              "shmctl(65551, IPC_RMID, NULL) = 0\nshmdt(0x7ffff7fba000) = 0\n"
              'unlink("/tmp/x") = 0\nunlinkat(AT_FDCWD, "/tmp/y", 0) = 0\n'
              'rename("/tmp/a", "/tmp/b") = 0\npidfd_open(7, 0) = 4\n'
              "process_madvise(4, [{iov_base=0x7f0000000000, iov_len=4096}], 1, MADV_COLD, 0)"
              " = 4096\nfcntl(3, F_DUPFD_CLOEXEC, 10) = 10\nftruncate(3, 8192) = 0\n")
    assert [r.call for r in rs] == [
        "memfd_create", "msync", "mlockall", "munlockall", "shmget", "shmat", "shmctl",
        "shmdt", "unlink", "unlinkat", "rename", "pidfd_open", "process_madvise", "fcntl",
        "ftruncate"]
    assert rs[12].args[1] == [(0x7F0000000000, 4096)]


def test_a_flag_without_a_name_here_keeps_the_line_undecoded():
    """A newer kernel's flag name does not fail the log: the line is kept, skipped
    with the reason, and the rest replays."""
    rs = recs("mmap(NULL, 4096, PROT_READ|PROT_FUTURE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = "
              "0x7f0000000000\nmunmap(0x7f0000000000, 4096) = 0\n")
    assert rs[0].call is None and rs[0].event == "undecoded" and "PROT_FUTURE" in rs[0].comment
    assert rs[1].call == "munmap"


def test_a_deleted_file_decoration():
    """-y prints `(deleted)` after the path of a file unlinked since."""
    (r,) = recs("mmap(NULL, 65536, PROT_READ|PROT_WRITE, MAP_SHARED, "
                "3</memfd:x>(deleted), 0) = 0x7f9827137000\n")
    assert r.args[4] == 3 and r.fd_path == "/memfd:x"
