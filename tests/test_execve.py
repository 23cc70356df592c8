"""execve in the model (vmsim.fs.exec, vmsim.fs.binfmt_elf) against the real execve of this
machine's Linux 6.18.

A small C tracer, built here with gcc, forks; the child sets ADDR_NO_RANDOMIZE (and any
other personality asked), PTRACE_TRACEME, opens the fds asked, and execve()s; the parent
stops it at the exec event, prints its maps, smaps, stat, auxv, fds and the stack from its
stack pointer up, and kills it. The model's process right after execve must be the same:
maps and smaps byte for byte, the stack (argc, argv, envp, auxv, strings) but for the 16
random bytes of AT_RANDOM, startstack and start_brk. The binaries: this machine's
/bin/true (a dynamic PIE) and programs built here (-static, -static-pie, -no-pie, ...).
"""

import errno
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field

import pytest

import vmsim
from vmsim.arch.x86.entry.vdso.build import vdso_image
from vmsim.fs.binfmt_elf import AT_HWCAP, AT_HWCAP2, AT_MINSIGSTKSZ, AT_RANDOM, REFERENCE_HWCAPS
from vmsim.fs.procmaps import mirror_host_file

TRACER_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

/* stdin, NUL-separated: PERSONA(hex) PATH ARGC ARG... ENVC ENV... NFDS (FD CLOEXEC)... */
static char in[64 << 20];
static char *w[1 << 20];

static void dump(const char *title, int pid, const char *file)
{
	char path[64], buf[65536];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
	fd = open(path, O_RDONLY);
	printf("== %s\n", title);
	fflush(stdout);
	while ((n = read(fd, buf, sizeof buf)) > 0)
		fwrite(buf, 1, n, stdout);
	close(fd);
}

int main(void)
{
	size_t len = fread(in, 1, sizeof in, stdin), pos = 0;
	int nw = 0, i = 0;
	while (pos < len) {
		w[nw++] = in + pos;
		pos += strlen(in + pos) + 1;
	}
	unsigned long persona = strtoul(w[i++], 0, 16);
	char *exe = w[i++];
	int argc = atoi(w[i++]);
	char **argv = calloc(argc + 1, sizeof(char *));
	for (int j = 0; j < argc; j++) argv[j] = w[i++];
	int envc = atoi(w[i++]);
	char **envp = calloc(envc + 1, sizeof(char *));
	for (int j = 0; j < envc; j++) envp[j] = w[i++];
	int nfds = atoi(w[i++]);

	pid_t pid = fork();
	if (pid == 0) {
		for (int j = 0; j < nfds; j++) {
			int fd = open("/dev/null", O_RDONLY);
			int want = atoi(w[i + 2 * j]);
			dup3(fd, want, atoi(w[i + 2 * j + 1]) ? O_CLOEXEC : 0);
			close(fd);
		}
		personality(ADDR_NO_RANDOMIZE | persona);
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		execve(exe, argv, envp);
		_exit(errno);
	}
	int st;
	waitpid(pid, &st, 0);
	if (WIFEXITED(st)) {
		printf("== errno %d\n", WEXITSTATUS(st));
		return 0;
	}
	if (WIFSIGNALED(st) || WSTOPSIG(st) != SIGTRAP) {
		/* killed, or stopped by the fatal signal of a failure past exec's point of no return */
		printf("== killed %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : WSTOPSIG(st));
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return 0;
	}
	struct user_regs_struct regs;
	ptrace(PTRACE_GETREGS, pid, 0, &regs);
	dump("maps", pid, "maps");
	dump("smaps", pid, "smaps");
	dump("stat", pid, "stat");
	char path[64];
	unsigned long long av[256];
	snprintf(path, sizeof path, "/proc/%d/auxv", pid);
	int fd = open(path, O_RDONLY);
	ssize_t n = read(fd, av, sizeof av);
	close(fd);
	printf("== auxv\n");
	for (int j = 0; j + 1 < n / 8; j += 2)
		printf("%llx %llx\n", av[j], av[j + 1]);
	snprintf(path, sizeof path, "/proc/%d/fd", pid);
	DIR *d = opendir(path);
	struct dirent *e;
	printf("== fds\n");
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			printf("%s\n", e->d_name);
	closedir(d);
	unsigned long long end = 0x7ffffffff000ULL;
	printf("== stack %llx\n", regs.rsp);
	snprintf(path, sizeof path, "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	for (unsigned long long a = regs.rsp; a < end; a += 16) {
		unsigned char b[16];
		if (pread(fd, b, 16, a) != 16)
			break;
		for (int j = 0; j < 16; j++)
			printf("%02x", b[j]);
		printf("\n");
	}
	close(fd);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 0;
}
"""

HELLO_C = r"""
#include <stdio.h>
int big[5000];
int data = 5;
int main(int argc, char **argv) { big[0] = argc; printf("hi %d\n", data); return 0; }
"""

STACK_END = 0x7FFFFFFFF000
PT_GNU_STACK = 0x6474E551


@dataclass
class RealExec:
    """What the tracer saw at the exec stop (or the errno / signal instead)."""

    errno: int | None = None
    killed: int | None = None
    sections: dict[str, str] = field(default_factory=dict)
    rsp: int = 0

    @classmethod
    def parse(cls, out: str) -> "RealExec":
        real = cls()
        lines: dict[str, list[str]] = {}
        name = None
        for line in out.splitlines(keepends=True):
            if line.startswith("== "):
                words = line.split()
                if words[1] == "errno":
                    real.errno = int(words[2])
                elif words[1] == "killed":
                    real.killed = int(words[2])
                elif words[1] == "stack":
                    real.rsp = int(words[2], 16)
                name = words[1]
                lines[name] = []
            elif name is not None:
                lines[name].append(line)
        real.sections = {name: "".join(text) for name, text in lines.items()}
        return real

    @property
    def stat(self) -> list[int]:
        """/proc/PID/stat fields 1.. as numbers (comm left out), by proc(5) number."""
        text = self.sections["stat"]
        rest = text[text.rindex(")") + 2:].split()
        return [0, int(text.split()[0]), 0] + [int(x) if x.lstrip("-").isdigit() else 0
                                               for x in rest]

    @property
    def auxv(self) -> list[tuple[int, int]]:
        return [tuple(int(x, 16) for x in line.split())
                for line in self.sections["auxv"].splitlines()]

    @property
    def stack(self) -> bytes:
        return bytes.fromhex(self.sections["stack"].replace("\n", ""))

    @property
    def fds(self) -> set[int]:
        return {int(x) for x in self.sections["fds"].split()}


def _cc() -> str:
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("no gcc to build the tracer and the test programs")
    return cc


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """build(name, source, *flags): a program compiled here with gcc."""
    cc = _cc()
    d = tmp_path_factory.mktemp("execve")

    def build(name: str, source: str, *flags: str) -> str:
        src = d / f"{name}.c"
        src.write_text(source)
        out = d / name
        subprocess.run([cc, "-O1", "-o", str(out), str(src), *flags], check=True,
                       capture_output=True)
        return str(out)
    build.dir = d
    return build


@pytest.fixture(scope="module")
def tracer(build):
    path = build("tracer", TRACER_C)

    def run(exe: str, argv: list[str], envp: list[str], persona: int = 0,
            fds: tuple[tuple[int, bool], ...] = ()) -> RealExec:
        words = [f"{persona:x}", exe, str(len(argv)), *argv, str(len(envp)), *envp,
                 str(len(fds))]
        for fd, cloexec in fds:
            words += [str(fd), str(int(cloexec))]
        data = b"".join(os.fsencode(w) + b"\0" for w in words)
        r = subprocess.run([path], input=data, capture_output=True, check=True)
        return RealExec.parse(r.stdout.decode())
    return run


@pytest.fixture(scope="module")
def progs(build):
    """The test programs: static, static PIE, non-PIE, PIE with an executable stack, and
    the non-PIE one without PT_GNU_STACK (its program header made PT_NULL)."""
    out = {"pie": "/bin/true",
           "static": build("h_static", HELLO_C, "-static"),
           "static-pie": build("h_spie", HELLO_C, "-static-pie"),
           "no-pie": build("h_nopie", HELLO_C, "-no-pie"),
           "execstack": build("h_xstack", HELLO_C, "-z", "execstack")}
    data = bytearray(open(out["no-pie"], "rb").read())
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    for i in range(phnum):
        if struct.unpack_from("<I", data, phoff + 56 * i)[0] == PT_GNU_STACK:
            struct.pack_into("<I", data, phoff + 56 * i, 0)
    nostack = build.dir / "h_nogstack"
    nostack.write_bytes(bytes(data))
    nostack.chmod(0o755)
    out["no-gnu-stack"] = str(nostack)
    return out


def model_exec(kw, path: str, argv: list[str], envp: list[str], persona: int = 0):
    k = vmsim.Kernel(**kw)
    p = k.spawn(personality=vmsim.ADDR_NO_RANDOMIZE | persona)
    p.execve(path, argv, envp)
    p.mm.validate()
    return k, p


def model_stack(p) -> bytes:
    return p.read(p.mm.start_stack, STACK_END - p.mm.start_stack)


def model_auxv(p, argc: int, envc: int) -> list[tuple[int, int]]:
    """The auxv on the model's stack, after argc, argv[], NULL, envp[], NULL."""
    stack = model_stack(p)
    start = 8 * (argc + envc + 3)
    pairs = list(struct.iter_unpack("<QQ", stack[start:start + 16 * ((len(stack) - start) // 16)]))
    return pairs[:[a for a, _ in pairs].index(0) + 1]


def assert_same_exec(real: RealExec, k, p, argv: list[str], envp: list[str]) -> None:
    assert real.errno is None and real.killed is None, real
    assert p.maps() == real.sections["maps"]
    assert p.smaps() == real.sections["smaps"]
    stat = real.stat
    assert p.mm.start_stack == stat[28] == real.rsp
    assert p.mm.start_brk == stat[47]
    argc = max(len(argv), 1)
    assert model_auxv(p, argc, len(envp)) == real.auxv
    rnd = dict(real.auxv)[AT_RANDOM] - real.rsp
    model, theirs = model_stack(p), real.stack
    assert len(model) == len(theirs)
    assert model[:rnd] == theirs[:rnd] and model[rnd + 16:] == theirs[rnd + 16:]


LAYOUTS = {
    "pie": (["true", "hello"], ["A=1", "HOME=/"]),
    "static": (["h_static", "x"], ["X=1"]),
    "static-pie": (["h_spie"], []),
    "no-pie": (["h_nopie", "a", "b"], ["Y=2"]),
    "execstack": (["h_xstack"], ["Z=3"]),
    "no-gnu-stack": (["h_nogstack"], []),
}


@pytest.mark.parametrize("prog", sorted(LAYOUTS))
def test_address_space_after_execve_is_the_kernels(kw, tracer, progs, prog):
    argv, envp = LAYOUTS[prog]
    real = tracer(progs[prog], argv, envp)
    k, p = model_exec(kw, progs[prog], argv, envp)
    assert_same_exec(real, k, p, argv, envp)


@pytest.mark.parametrize("argv, envp", [
    ([], []),                                   # argv[0] = "" is added
    (["a" * 131071], []),                       # the longest string: 33 pages of strings
    (["a" * 100000] * 20, ["B=2"]),             # near the 2 MiB limit (RLIMIT_STACK / 4)
    (["x"] * 3000, ["E=" + "e" * 5000] * 10),
], ids=["empty-argv", "longest-arg", "2MiB", "many"])
def test_stack_sized_as_the_kernel_sizes_it(kw, tracer, argv, envp):
    real = tracer("/bin/true", argv, envp)
    k, p = model_exec(kw, "/bin/true", argv, envp)
    assert_same_exec(real, k, p, argv, envp)


@pytest.mark.parametrize("persona", [vmsim.ADDR_COMPAT_LAYOUT, vmsim.MMAP_PAGE_ZERO,
                                     vmsim.READ_IMPLIES_EXEC],
                         ids=["compat-layout", "page-zero", "read-implies-exec"])
def test_personality_at_execve(kw, tracer, persona):
    """Bottom-up layout from TASK_UNMAPPED_BASE; page 0 mapped r-x and sealed;
    READ_IMPLIES_EXEC cleared by an x86_64 exec (nothing becomes executable)."""
    real = tracer("/bin/true", ["true"], [], persona)
    k, p = model_exec(kw, "/bin/true", ["true"], [], persona)
    assert_same_exec(real, k, p, ["true"], [])
    assert not p.persona & vmsim.READ_IMPLIES_EXEC
    assert p.persona & persona == persona & ~vmsim.READ_IMPLIES_EXEC


def test_reference_hwcaps_are_this_machines(tracer):
    auxv = dict(tracer("/bin/true", ["true"], []).auxv)
    assert (auxv[AT_HWCAP], auxv[AT_HWCAP2], auxv[AT_MINSIGSTKSZ]) == tuple(REFERENCE_HWCAPS)


# --- errors ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad(build):
    """Files execve refuses, each with what the kernel says."""
    d = build.dir
    notelf = d / "notelf"
    notelf.write_bytes(b"hello")
    junk = d / "junk"
    junk.write_bytes(bytes(range(100)))
    empty = d / "empty"
    empty.write_bytes(b"")
    noexec = d / "noxbit"
    noexec.write_bytes(open("/bin/true", "rb").read())
    for f in (notelf, junk, empty):
        f.chmod(0o755)
    noexec.chmod(0o644)
    obj = d / "obj.o"
    subprocess.run([_cc(), "-c", "-o", str(obj), "-x", "c", "-"], input=b"int f(void){return 1;}",
                   check=True)
    obj.chmod(0o755)
    interp = {name: build(f"h_interp_{name}", HELLO_C, f"-Wl,--dynamic-linker={path}")
              for name, path in [("missing", str(d / "none")), ("short", str(notelf)),
                                 ("junk", str(junk)), ("noxbit", str(noexec)),
                                 ("dir", str(d))]}
    return dict(missing=str(d / "none"), notelf=str(notelf), empty=str(empty), dir=str(d),
                noxbit=str(noexec), obj=str(obj), notdir=str(notelf / "x"),
                **{f"interp-{k}": v for k, v in interp.items()})


ERRNO_CASES = {
    "missing": errno.ENOENT, "notelf": errno.ENOEXEC, "empty": errno.ENOEXEC,
    "dir": errno.EACCES, "noxbit": errno.EACCES, "obj": errno.ENOEXEC,
    "notdir": errno.ENOTDIR, "interp-missing": errno.ENOENT, "interp-short": errno.EIO,
    "interp-junk": errno.ELIBBAD, "interp-noxbit": errno.EACCES, "interp-dir": errno.EACCES,
}


def assert_untouched_by_failed_exec(k, p, maps: str, committed: int) -> None:
    assert p.alive and p.maps() == maps and k.committed == committed
    p.mm.validate()


@pytest.mark.parametrize("case", sorted(ERRNO_CASES))
def test_errno_is_the_kernels(kw, tracer, bad, case):
    real = tracer(bad[case], ["x"], [])
    assert real.errno == ERRNO_CASES[case]
    k = vmsim.Kernel(**kw)
    p = k.spawn(stack=True)
    maps, committed = p.maps(), k.committed
    with pytest.raises(OSError) as err:
        p.execve(bad[case], ["x"], [])
    assert err.value.errno == real.errno
    assert_untouched_by_failed_exec(k, p, maps, committed)


@pytest.mark.parametrize("argv, envp", [
    (["a" * 131072], []),                       # one string past MAX_ARG_STRLEN
    (["x"], ["a" * 131072]),
    (["a" * 100000] * 21, []),                  # past RLIMIT_STACK / 4
], ids=["long-arg", "long-env", "total"])
def test_e2big_is_the_kernels(kw, tracer, argv, envp):
    assert tracer("/bin/true", argv, envp).errno == errno.E2BIG
    k = vmsim.Kernel(**kw)
    p = k.spawn(stack=True)
    maps, committed = p.maps(), k.committed
    with pytest.raises(OSError) as err:
        p.execve("/bin/true", argv, envp)
    assert err.value.errno == errno.E2BIG
    assert_untouched_by_failed_exec(k, p, maps, committed)


def test_etxtbsy_while_open_for_writing(kw, tracer, build):
    path = build("h_busy", HELLO_C)
    with open(path, "ab"):
        assert tracer(path, ["x"], []).errno == errno.ETXTBSY
    k = vmsim.Kernel(**kw)
    mirror_host_file(k.fs, path)
    writer = k.spawn()
    fd = writer.open(path, vmsim.O_WRONLY)
    p = k.spawn()
    with pytest.raises(OSError) as err:
        p.execve(path, ["x"], [])
    assert err.value.errno == errno.ETXTBSY
    writer.close(fd)
    p.execve(path, ["x"], [])


def test_noexec_mount_is_eacces(kw, tracer, build):
    d = build.dir / "nx"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec", "tmpfs", str(d)],
                      capture_output=True).returncode == 0:
        try:
            shutil.copy("/bin/true", d / "true")
            assert tracer(str(d / "true"), ["x"], []).errno == errno.EACCES
        finally:
            subprocess.run(["umount", str(d)], check=True)
    k = vmsim.Kernel(**kw)
    k.fs.mkdir("/mnt")
    k.fs.mount("/mnt", noexec=True)
    k.fs.create("/mnt/true", open("/bin/true", "rb").read(), 0o755)
    with pytest.raises(PermissionError):
        k.spawn(argv=["/mnt/true"])
    assert list(k.processes) == []


def test_failure_past_the_point_of_no_return_kills(kw, tracer, build):
    """An interpreter that looks like an x86_64 ELF but is not loadable (e_type
    ET_CORE) fails in load_elf_interp(), after the old mm is gone: SIGSEGV."""
    ld = bytearray(open(os.path.realpath("/lib64/ld-linux-x86-64.so.2"), "rb").read())
    struct.pack_into("<H", ld, 16, 4)
    core = build.dir / "ld-core.so"
    core.write_bytes(bytes(ld))
    core.chmod(0o755)
    prog = build("h_interp_core", HELLO_C, f"-Wl,--dynamic-linker={core}")
    assert tracer(prog, ["x"], []).killed == 11
    k = vmsim.Kernel(**kw)
    p = k.spawn()
    with pytest.raises(OSError):
        p.execve(prog, ["x"], [])
    assert not p.alive and p.pid not in k.processes and k.committed == 0


# --- what execve does to the process ---------------------------------------------------

def test_close_on_exec(kw, tracer):
    real = tracer("/bin/true", ["true"], [], fds=((10, True), (11, False)))
    assert 11 in real.fds and 10 not in real.fds
    k = vmsim.Kernel(**kw)
    p = k.spawn()
    cloexec = p.open("/dev/null", vmsim.O_RDONLY | vmsim.O_CLOEXEC)
    kept = p.open("/dev/null", vmsim.O_RDONLY)
    by_ioctl = p.open("/dev/null", vmsim.O_RDONLY)
    p.ioctl(by_ioctl, vmsim.FIOCLEX)
    cleared = p.open("/dev/null", vmsim.O_RDONLY | vmsim.O_CLOEXEC)
    p.ioctl(cleared, vmsim.FIONCLEX)
    dup = p.dup(cloexec)
    file = p.files[cloexec]
    child = p.fork()
    p.execve("/bin/true", ["true"], [])
    assert sorted(p.files) == sorted([kept, cleared, dup])
    assert file.refs == 3                        # the dup, and the child's two copies
    assert child.close_on_exec == {cloexec, by_ioctl}


def test_old_mm_is_torn_down_and_its_charge_released(kw):
    k = vmsim.Kernel(**kw)
    fresh = k.spawn(argv=["/bin/true"])
    charge = k.committed
    assert charge == fresh.mm.committed > 0
    fresh.exit()
    assert k.committed == 0
    p = k.spawn()
    p.mmap(0, 1000 * 4096, vmsim.PROT_READ | vmsim.PROT_WRITE,
           vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS)
    fd = p.open("/dev/zero", vmsim.O_RDWR)
    p.mmap(0, 4096, vmsim.PROT_READ, vmsim.MAP_SHARED, fd)
    p.close(fd)
    old = p.mm
    assert k.committed > 1000                     # and the shmem object's page
    p.execve("/bin/true", ["true"], [])
    assert p.mm is not old and len(old.tree) == 0
    assert k.committed == charge == p.mm.committed
    p.mm.validate()


def test_fork_then_execve(kw, progs):
    k = vmsim.Kernel(**kw)
    parent = k.spawn(argv=["/bin/true", "parent"])
    maps = parent.maps()
    child = parent.fork()
    child.execve(progs["static"], ["h_static"], [])
    alone = vmsim.Kernel(**kw).spawn(argv=[progs["static"]])
    assert child.maps() == alone.maps()
    assert parent.maps() == maps
    assert k.committed == parent.mm.committed + child.mm.committed
    child.exit()
    assert k.committed == parent.mm.committed
    parent.mm.validate()


def test_spawn_with_argv_is_spawn_then_execve(kw):
    a = vmsim.Kernel(**kw).spawn(argv=["/bin/true", "x"], envp=["A=1"])
    b = vmsim.Kernel(**kw).spawn()
    b.execve("/bin/true", ["/bin/true", "x"], ["A=1"])
    assert a.maps() == b.maps() and a.smaps() == b.smaps()
    assert model_stack(a) == model_stack(b)
    k = vmsim.Kernel(**kw)
    with pytest.raises(FileNotFoundError):
        k.spawn(argv=["/no/such/file"])
    assert list(k.processes) == []
    for bad in (dict(argv=[]), dict(argv=["/bin/true"], stack=True),
                dict(argv=["/bin/true"], maps="")):
        with pytest.raises(ValueError):
            k.spawn(**bad)


def test_arguments_are_c_strings(kw):
    p = vmsim.Kernel(**kw).spawn()
    with pytest.raises(TypeError):
        p.execve("/bin/true", "true", [])
    with pytest.raises(TypeError):
        p.execve("/bin/true", [1], [])
    with pytest.raises(ValueError):
        p.execve("/bin/true", ["a\0b"], [])
    p.execve("/bin/true", [b"\xff"], [b"K=\xfe"])
    assert p.read(p.mm.start_stack, 8) == struct.pack("<Q", 1)


def test_a_file_of_the_model_runs_with_its_identity(kw, progs):
    k = vmsim.Kernel(**kw)
    inode = k.fs.create("/tmp/prog", open(progs["static"], "rb").read(), 0o755)
    p = k.spawn(argv=["/tmp/prog"])
    first = p.maps().splitlines()[0]
    assert first.endswith(" /tmp/prog") and f" {inode.ino} " in first
    k.fs.create("/tmp/data", b"\x7fELF", 0o644)
    with pytest.raises(PermissionError):
        p.execve("/tmp/data", ["x"], [])


def test_vdso_is_special_and_holds_the_image(kw):
    p = vmsim.Kernel(**kw).spawn(argv=["/bin/true"])
    views = {v.name: v for v in p.vmas()}
    vdso, vvar = views["[vdso]"], views["[vvar]"]
    assert vdso.end - vdso.start == 2 * 4096 and vvar.end - vvar.start == 4 * 4096
    assert p.read(vdso.start, 64) == vdso_image()[:64]      # tests/test_vdso_image.py
    assert p.read(vvar.start, 64) == bytes(64)
    with pytest.raises(OSError) as err:
        p.mprotect(vdso.start, 4096, vmsim.PROT_READ)      # special mappings never split
    assert err.value.errno == errno.EINVAL
    p.mm.validate()


def test_aslr_is_seeded(kw):
    def layout(seed):
        k = vmsim.Kernel(**{**kw, "aslr": True, "seed": seed})
        p = k.spawn(argv=["/bin/true"])
        p.mm.validate()
        return p
    a, b, c = layout(1), layout(1), layout(2)
    assert a.maps() == b.maps() != c.maps()
    for p in (a, c):
        v = p.vmas()
        pie = v[0].start
        assert 0x555555554000 <= pie < 0x555555554000 + (1 << 40)
        assert p.mm.start_brk >= v[3].end + 4096         # a page past the image, then random
        stack = [x for x in v if x.name == "[stack]"][0]
        assert stack.end <= STACK_END and stack.start <= p.mm.start_stack < stack.end
