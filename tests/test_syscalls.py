"""vmsim.syscalls: the one syscall table, the strace syntax and the one dispatcher."""

from __future__ import annotations

import errno
import os
import re

import pytest

import vmsim
from vmsim import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE
from vmsim.syscalls import strace as S
from vmsim.syscalls.dispatch import dispatch, outcome
from vmsim.syscalls.names import CONSTANTS, errno_name, strerror
from vmsim.syscalls.table import ADDR_RESULT, ALIASES, BY_NUMBER, TABLE, fold, syscall

UNISTD = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"


# --------------------------------------------------------------------------- the table

def _unistd() -> dict[str, int]:
    with open(UNISTD) as f:
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r"^#define __NR_(\w+) (\d+)$", f.read(), re.M)}


@pytest.mark.skipif(not os.path.exists(UNISTD), reason=f"{UNISTD} is not installed")
def test_numbers_are_the_kernels():
    nr = _unistd()
    numbered = {e.name: e.nr for e in TABLE.values() if e.nr is not None}
    numbered.update({a.name: a.nr for a in ALIASES.values() if a.nr is not None})
    known = {name: n for name, n in numbered.items() if name in nr}
    assert known == {name: nr[name] for name in known}
    # only calls newer than the installed header may be missing from it
    assert set(numbered) - set(known) <= {"mseal"}
    assert numbered["mseal"] == 462 and numbered["mmap"] == 9 and numbered["openat"] == 257


def test_every_entry_has_a_number_but_the_scenario_pseudo_calls():
    assert {e.name for e in TABLE.values() if e.nr is None} == \
        {"touch", "peek", "poke", "set_pkru"}
    assert BY_NUMBER[462] is TABLE["mseal"] and BY_NUMBER[58] is TABLE["fork"]


def test_aliases_resolve():
    assert syscall("openat") is TABLE["open"] and ALIASES["openat"].dirfd
    assert syscall("mmap2") is TABLE["mmap"]
    assert syscall("pwrite") is TABLE["pwrite64"]
    assert syscall("vfork") is TABLE["fork"]
    assert syscall("exit_group") is TABLE["exit"]
    assert syscall("clone3") is TABLE["clone"]
    assert syscall("dup3") is TABLE["dup2"]
    with pytest.raises(KeyError):
        syscall("no_such_call")
    # a format folds an alias onto the call it names, unless it records the alias itself
    assert fold("openat", {"open"}) == "open"
    assert fold("vfork", {"fork"}) == "fork" and fold("vfork", {"fork", "vfork"}) == "vfork"
    assert fold("exit_group", {"open"}) is None and fold("read", {"open"}) is None


def test_address_results_and_kinds():
    assert ADDR_RESULT == {"mmap", "mremap", "brk", "shmat"}
    assert TABLE["mmap"].kinds == ("addr", "len", "prot", "mapflags", "fd", "off")
    assert TABLE["mremap"].required == 3 and len(TABLE["mremap"].kinds) == 5


def test_constants_come_from_every_uapi_module():
    assert CONSTANTS["PROT_EXEC"] == 4 and CONSTANTS["MAP_FIXED_NOREPLACE"] == 0x100000
    assert CONSTANTS["SGX_IOC_ENCLAVE_ADD_PAGES"] == 0xC030A401
    assert CONSTANTS["SGX_SECINFO_REG"] == 0x200 and CONSTANTS["SGX_PAGE_MEASURE"] == 1
    assert CONSTANTS["CLONE_VM"] == 0x100 and CONSTANTS["AT_FDCWD"] == -100
    assert CONSTANTS["O_LARGEFILE"] == 0o100000 and CONSTANTS["MS_NOEXEC"] == 8
    assert errno_name(errno.ENOMEM) == "ENOMEM" and errno_name(4095) == "4095"
    assert strerror("ENOMEM") == "Cannot allocate memory"


# --------------------------------------------------------------------------- the syntax

def test_yy_decorations_with_angle_brackets_in_paths():
    text = ('openat(AT_FDCWD</tmp/a<b>c>, "/dev/pts/0", O_RDWR) = '
            '3</dev/pts/0<char 136:0>>')
    clean, decos = S.strip_decorations(text)
    assert clean == 'openat(AT_FDCWD, "/dev/pts/0", O_RDWR) = 3'
    assert decos == [(15, "/tmp/a"), (len(clean), "/dev/pts/0")]
    # `<` inside a string literal is not a decoration
    clean, decos = S.strip_decorations('open("a<b>", O_RDONLY) = 3</x>')
    assert clean == 'open("a<b>", O_RDONLY) = 3' and decos == [(len(clean), "/x")]
    with pytest.raises(ValueError, match="unterminated <...> fd decoration"):
        S.strip_decorations("close(3</tmp/x")


def test_X_raw_and_verbose_agree_with_abbrev():
    verbose, _ = S.strip_decorations(
        "mmap(NULL, 4096, 0x3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|"
        "MAP_ANONYMOUS */, -1, 0) = 0x7f0000000000")
    lines = [S.parse_line(t) for t in (
        verbose,
        "mmap(NULL, 0x1000, 0x3, 0x22, -1, 0) = 0x7f0000000000",
        "mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = "
        "0x7f0000000000")]
    values = [[a.eval({}) for a in S.bind_args(TABLE["mmap"], line.raw_args, {})]
              for line in lines if line is not None]
    assert values == [[0, 4096, 3, 0x22, -1, 0]] * 3
    assert lines[0] is not None and lines[0].result is not None
    assert lines[0].result.kind == "ok" and lines[0].result.value == S.parse_expr("0x7f0000000000")


def test_c_strings_with_escapes():
    data, truncated = S.parse_cstring(r'"a\n\t\0\x41\101\\\"z"...')
    assert data == b'a\n\t\0AA\\"z' and truncated
    assert S.format_cstring(b'a"\\\0\xff') == r'"a\"\\\0\xff"'
    for bad, reason in ((r'"\q"', "unknown escape"), ('"abc', "bad string literal"),
                        (r'"\x"', "bad \\x escape")):
        with pytest.raises(ValueError, match=re.escape(reason)):
            S.parse_cstring(bad)


def test_prefixes_results_and_signals():
    assert S.strip_prefix("[pid  12] 12:34:56.789 brk(NULL) = 0x5000") == \
        (12, True, "brk(NULL) = 0x5000")
    assert S.strip_prefix("7 1700000000.5 brk(NULL) = 0") == (7, False, "brk(NULL) = 0")
    line = S.parse_line("mprotect(0x7f0000000000, 4096, PROT_READ) = -1 ENOMEM "
                        "(Cannot allocate memory) <0.000012>")
    assert line is not None and line.result is not None
    assert (line.name, line.result.kind, line.result.errname) == ("mprotect", "err", "ENOMEM")
    assert S.format_error("ENOMEM") == "-1 ENOMEM (Cannot allocate memory)"
    sig = S.parse_result("SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr=0x10}")
    assert (sig.kind, sig.signal, sig.code, sig.addr) == ("sig", "SIGSEGV", "SEGV_ACCERR",
                                                         S.parse_expr("0x10"))
    assert S.parse_event("--- SIGBUS {si_signo=SIGBUS, si_code=BUS_ADRERR} ---") == \
        ("signal", "SIGBUS")
    assert S.parse_event("+++ killed by SIGKILL +++") == ("killed", "SIGKILL")
    assert S.parse_event("+++ exited with 0 +++") == ("exited", None)
    assert S.parse_line("--- SIGCHLD {si_signo=SIGCHLD} ---") is None
    with pytest.raises(ValueError, match="unknown errno EWHAT"):
        S.parse_result("-1 EWHAT (x)")


def test_unfinished_and_resumed_halves():
    head = "mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>"
    assert S.UNFINISHED.search(head)
    m = S.RESUMED.match("<... mmap resumed>) = 0x7f0000000000")
    assert m and m.group(1) == "mmap"
    line = S.parse_line(S.UNFINISHED.sub("", head) + "<... mmap resumed>) = 0x7f0000000000"[m.end():])
    assert line is not None and line.raw_args == ["NULL", "4096", "PROT_READ",
                                                  "MAP_PRIVATE|MAP_ANONYMOUS", "-1", "0"]


def test_expressions_and_values():
    assert S.parse_expr("W+2*4096", ("W",)).eval({"W": 0x1000}) == 0x3000
    assert S.parse_expr("(1<<12)|PROT_READ").eval({}) == 0x1001
    assert S.parse_expr("0644").eval({}) == 0o644
    for bad, reason in (("PROT_BOGUS", "unknown name 'PROT_BOGUS'"), ("W", "unknown name 'W'"),
                        ("(1", "missing ')'"), ("1 +", "unexpected end")):
        with pytest.raises(ValueError, match=re.escape(reason)):
            S.parse_expr(bad)
    with pytest.raises(ValueError, match="takes 6 arguments, got 5"):
        S.bind_args(TABLE["mmap"], ["0", "1", "2", "3", "4"], {})
    assert S.format_value("mapflags", MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED) == \
        "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS"
    assert S.format_value("addr", 0) == "NULL" and S.format_value("addr", -4096) == "-4096"
    assert S.format_value("madv", 102) == "MADV_GUARD_INSTALL"
    assert S.format_value("oflags", 0o2000102) == "O_RDWR|O_CREAT|O_CLOEXEC"
    assert S.format_value("len", 2 << 20) == "0x200000"


# --------------------------------------------------------------------------- the dispatcher

@pytest.fixture
def p():
    return vmsim.Kernel().spawn()


def test_dispatch_returns_addresses_and_raises_errnos(p):
    a = dispatch(p, "mmap", [0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                             -1, 0])
    assert a == p.vmas()[-1].start and a >= 1 << 46       # unsigned, top-down
    assert dispatch(p, "mprotect", [a, 4096, PROT_READ]) == 0
    with pytest.raises(OSError) as ei:
        dispatch(p, "munmap", [a + 1, 4096])
    assert ei.value.errno == errno.EINVAL
    assert outcome(p, "mprotect", [a + 0x100000, 4096, PROT_READ]) == ("err", "ENOMEM")
    assert outcome(p, "mmap2", [a, 4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
                                -1, 0]) == ("ok", a)
    assert outcome(p, "pkey_free", [-1]) == ("err", "EINVAL")


def test_dispatch_memory_accesses_and_fork(p):
    a = p.mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
    assert outcome(p, "touch", [a, "w"]) == ("sig", "SIGSEGV", "SEGV_ACCERR", a)
    assert outcome(p, "peek", [a]) == ("ok", 0)
    fd = dispatch(p, "open", ["/tmp/f", vmsim.O_RDWR | vmsim.O_CREAT, 0o600])
    assert dispatch(p, "pwrite64", [fd, b"xyz", 2, 0]) == 2
    pid = dispatch(p, "vfork", [])
    child = p.kernel.processes[pid]
    assert pid != p.pid and child.maps() == p.maps()
    with pytest.raises(KeyError):
        dispatch(p, "execve", ["/bin/true"])
