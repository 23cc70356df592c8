"""One test per row of docs/deviations.md: each pins what the model does where it
knowingly differs from Linux 6.18, so a change there is a deliberate one. The
docstring of each test says what the kernel does instead."""

import errno
import itertools
import shutil
import struct
import subprocess
import sys

import pytest

import vmsim
from vmsim import (
    MADV_COLLAPSE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_HUGETLB,
    MAP_NORESERVE,
    MAP_PRIVATE,
    O_CREAT,
    O_RDONLY,
    O_RDWR,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    RLIMIT_FSIZE,
)
from vmsim.fs.binfmt_elf import AT_EGID, AT_EUID, AT_GID, AT_SECURE, AT_UID

P = PAGE_SIZE
W = 0x7E0000000000
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def test_fork_child_always_gets_new_anon_vma():
    """Row 1. Linux may hand a grandchild an ancestor's idle anon_vma."""
    k = vmsim.Kernel()
    parent = k.spawn()
    parent.mmap(W, P, RW, ANON | MAP_FIXED)
    parent.write(W, b"x")
    child = parent.fork()
    grandchild = child.fork()
    child.exit()
    great = grandchild.fork()
    ids = [proc.vmas()[0].anon_vma for proc in (parent, grandchild, great)]
    assert len(set(ids)) == 3
    # each forked VMA's chain links its three ancestors' anon_vmas and its own
    assert len(great.mm.tree.find(W).avc) == 4


def test_smaps_counts_forked_pages_as_private():
    """Row 2. Linux shows the child's unwritten private pages as Shared_Dirty."""
    k = vmsim.Kernel(pkeys=False)
    p = k.spawn()
    p.mmap(W, P, RW, ANON | MAP_FIXED)
    p.write(W, b"x")
    child = p.fork()
    block = child.smaps().split("\n")
    assert "Private_Dirty:         4 kB" in block
    assert "Shared_Dirty:          0 kB" in block


def test_hugetlb_pool_is_empty():
    """Row 3. With huge pages in the pool Linux would reserve and fault them in."""
    p = vmsim.Kernel().spawn()
    with pytest.raises(OSError) as err:
        p.mmap(0, 2 << 20, RW, ANON | MAP_HUGETLB)
    assert err.value.errno == errno.ENOMEM
    a = p.mmap(0, P, RW, ANON | MAP_HUGETLB | MAP_NORESERVE)
    assert a % (2 << 20) == 0
    assert p.maps().splitlines()[0].endswith("/anon_hugepage (deleted)")
    with pytest.raises(vmsim.Fault) as fault:
        p.write(a, b"x")
    assert fault.value.signal == "SIGBUS"


def test_madv_collapse_without_huge_pages():
    """Row 4. Linux allocates a THP per block (and may fail to); the model only
    applies the eligibility rules: an untouched block is SCAN_PMD_NULL (EINVAL)."""
    p = vmsim.Kernel().spawn()
    a = p.mmap(0, 4 << 20, RW, ANON)
    with pytest.raises(OSError) as err:
        p.madvise(a, 4 << 20, MADV_COLLAPSE)
    assert err.value.errno == errno.EINVAL
    p.write(a, b"x")
    p.write(a + (2 << 20), b"x")
    assert p.madvise(a, 4 << 20, MADV_COLLAPSE) == 0
    assert "AnonHugePages:         0 kB" in p.smaps()


def test_pkru_is_per_process():
    """Row 5. Linux keeps PKRU per thread; the model has one thread per process,
    and fork copies it."""
    p = vmsim.Kernel(pkeys=True).spawn()
    assert p.pkru == 0x55555554
    key = p.pkey_alloc(0, 0)
    assert p.pkru == 0x55555554 & ~(3 << (2 * key))
    assert p.fork().pkru == p.pkru


def test_spawn_is_empty_but_for_vsyscall():
    """Row 6. A real process also has [vvar], [vvar_vclock], [vdso] and its images."""
    k = vmsim.Kernel()
    assert k.spawn().maps() == ("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0"
                                "                  [vsyscall]\n")
    lines = k.spawn(stack=True).maps().splitlines()
    assert lines[0] == ("7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0"
                        + " " * 26 + "[stack]")


def _tiny_image():
    from vmsim.enclave.image import EnclaveImage
    return EnclaveImage.from_text(
        "size = 0x4000\n"
        "segment tcs  offset=0x0000 pages=1 type=TCS ossa=0x3000 oentry=0x1000\n"
        "segment text offset=0x1000 pages=1 perms=RX\n"
        "segment data offset=0x2000 pages=2 perms=RW\n")


def test_add_pages_is_never_interrupted():
    """Row 9. Linux returns a partial count when a signal arrives between pages."""
    from vmsim.enclave import loader
    p = vmsim.Kernel().spawn()
    dev = loader.SgxDevice(p)
    img = _tiny_image()
    base = loader.reserve_aligned(p, img.size)
    dev.create(img.secs(base))
    src = p.mmap(0, 3 * P, RW, ANON)
    assert dev.add_pages(src, 0x1000, 3 * P, 0x203) == 3 * P


def _auxv(p) -> dict[int, int]:
    """The auxv on the stack of a process that has just exec'd."""
    words = struct.unpack(f"<{(0x7FFFFFFFF000 - p.mm.start_stack) // 8}Q",
                          p.read(p.mm.start_stack, 0x7FFFFFFFF000 - p.mm.start_stack))
    at = words.index(0, words.index(0, 1) + 1) + 1      # past argv's and envp's NULLs
    pairs = zip(words[at::2], words[at + 1::2], strict=False)
    return dict(itertools.takewhile(lambda pair: pair[0] != 0, pairs))


def _program(k, path: str, mode: int) -> str:
    k.fs.create(path, open("/bin/true", "rb").read(), mode)
    return path


ELF32_START = """
.globl _start
_start:
    movl $1, %eax
    movl $7, %ebx
    int $0x80
"""


def test_32bit_binaries_are_enoexec(tmp_path):
    """Row 11. Linux runs an ia32 binary (here one that exits with 7, built with gcc -m32
    if this machine can, and run for real) through compat_binfmt_elf."""
    elf32 = b"\x7fELF\x01\x01\x01" + bytes(9) + struct.pack("<HHI", 2, 3, 1) + bytes(32)
    src, exe = tmp_path / "t32.S", tmp_path / "t32"
    src.write_text(ELF32_START)
    if shutil.which("gcc") and subprocess.run(["gcc", "-m32", "-nostdlib", "-static", "-o", str(exe),
                                               str(src)], capture_output=True).returncode == 0:
        assert subprocess.run([str(exe)]).returncode == 7
        elf32 = exe.read_bytes()
    k = vmsim.Kernel()
    p = k.spawn(stack=True)
    k.fs.create("/tmp/t32", elf32, 0o755)
    with pytest.raises(OSError) as err:
        p.execve("/tmp/t32", ["t32"])
    assert err.value.errno == errno.ENOEXEC


def test_every_process_passes_permission_checks_as_root():
    """Row 12. On Linux uid 1000 could not run a mode-0700 file it does not own
    (EACCES), and AT_GID/AT_EGID would be its gids."""
    k = vmsim.Kernel(uid=1000)
    p = k.spawn(stack=True)
    p.execve(_program(k, "/tmp/prog", 0o700), ["prog"])
    auxv = _auxv(p)
    assert (auxv[AT_UID], auxv[AT_EUID], auxv[AT_GID], auxv[AT_EGID]) == (1000, 1000, 0, 0)


def test_setuid_bit_is_ignored():
    """Row 13. Linux runs a set-user-ID root file with euid 0 and AT_SECURE 1."""
    k = vmsim.Kernel(uid=1000)
    p = k.spawn(stack=True)
    p.execve(_program(k, "/tmp/suid", 0o4755), ["suid"])
    auxv = _auxv(p)
    assert (auxv[AT_EUID], auxv[AT_SECURE]) == (1000, 0)


def test_no_comm_and_no_proc_pid_exe():
    """Row 14. Linux names the process after its program (comm) and links
    /proc/self/exe to it."""
    k = vmsim.Kernel()
    p = k.spawn(stack=True)
    p.execve(_program(k, "/tmp/prog", 0o755), ["prog"])
    assert p.exe_file is not None and p.exe_file.inode is k.fs.lookup("/tmp/prog")
    assert not hasattr(p, "comm")
    with pytest.raises(FileNotFoundError):
        p.open("/proc/self/exe", O_RDONLY)


def test_rlimit_fsize_is_efbig_without_sigxfsz():
    """Row 15. Linux also sends SIGXFSZ, whose default action kills the process."""
    p = vmsim.Kernel().spawn()
    fd = p.open("/tmp/f", O_RDWR | O_CREAT)
    p.setrlimit(RLIMIT_FSIZE, PAGE_SIZE)
    with pytest.raises(OSError) as err:
        p.pwrite(fd, b"x", PAGE_SIZE)
    assert err.value.errno == errno.EFBIG
    assert p.alive and p.pwrite(fd, b"x", 0) == 1


def test_vdso_functions_make_the_syscall():
    """Row 27. Linux's __vdso_clock_gettime reads [vvar]: date(1) makes no
    clock_gettime syscall. The model's vDSO makes it, so --trace shows one."""
    pytest.importorskip("unicorn")
    if shutil.which("gcc") is None:
        pytest.skip("the vDSO is built with gcc")
    r = subprocess.run([sys.executable, "-m", "vmsim", "run", "--trace", "--", "date", "+%s"],
                       capture_output=True, env={"PATH": "/usr/bin:/bin", "LANG": "C"}, timeout=120)
    assert r.returncode == 0
    assert any(line.startswith("clock_gettime(CLOCK_REALTIME, ")
               for line in r.stderr.decode().splitlines())
