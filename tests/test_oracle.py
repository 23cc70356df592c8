"""vmsim.oracle against the host kernel, and every case of shared/spec/mm_probe.py
expressed as a scenario, run on BOTH the oracle and the model.

The probe's recorded expectations come from a PKU machine; this host may lack PKU,
so the scenarios carry no expected values: the model (configured like this host by
`oracle.kernel_kwargs()`) is compared with the oracle, call by call, results and the
window state (maps line, VmFlags, ProtectionKey) after every call.

Translation of the probe: its `Carve` (a 64-page PROT_NONE reservation mapped over
with MAP_FIXED) sits at W; `c.a(pg)` is `W+pg*0x1000`; `poke` is `poke(addr, 0x78)`;
files made with mkstemp+write are `open(O_CREAT)` + `ftruncate` (same size, zeros);
each `in_child` body is its own scenario (a fresh process); unhinted mmaps that
succeed get a hint inside W so their VMA is compared.  Probe cases that need the
host's own layout are listed in SKIPPED with the reason.
"""

import ast
import pathlib

import pytest

from vmsim.diff import scenario as S
from vmsim.diff.normalise import token_to_result

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROBE = ROOT.parent / "shared" / "spec" / "mm_probe.py"

P = 0x1000


def a(pg):
    return f"W+{pg * P:#x}"


def carve(n=64):
    return (f"mmap(W, {n * P:#x}, PROT_NONE, "
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE|MAP_FIXED, -1, 0)")


def m(pg, npg, prot="PROT_READ|PROT_WRITE", flags="MAP_PRIVATE|MAP_ANONYMOUS", fd=-1, off=0):
    return f"mmap({a(pg)}, {npg * P:#x}, {prot}, {flags}|MAP_FIXED, {fd}, {off:#x})"


def hole(pg, npg):
    return f"munmap({a(pg)}, {npg * P:#x})"


def poke(pg):
    return f"poke({a(pg)}, 0x78)"


RW = "PROT_READ|PROT_WRITE"
ANON = "MAP_PRIVATE|MAP_ANONYMOUS"

PROBE_SCENARIOS = {
    "t_mprotect_args": [
        carve(), m(1, 4),
        f"mprotect({a(1)}+1, 4096, PROT_READ)",
        f"mprotect({a(1)}, 0, 0xff0)",
        f"mprotect({a(1)}+1, 0, PROT_READ)",
        f"mprotect({a(1)}, 4096, PROT_GROWSDOWN|PROT_GROWSUP)",
        f"mprotect({a(1)}, 4096, 0x10)",
        f"mprotect({a(1)}, 4096, PROT_READ|PROT_SEM)",
        f"mprotect({a(1)}, -4096, PROT_READ)",
        f"mprotect({a(40)}, 4096, 0x10)",
        hole(40, 2), f"mprotect({a(40)}, 4096, PROT_READ)",
        f"mprotect({a(1)}, 4096, PROT_READ|PROT_GROWSDOWN)",
        f"mprotect({a(2)}, 1, PROT_READ)",
    ],
    "t_mprotect_holes": [
        carve(), m(1, 2), m(4, 2), hole(3, 1), hole(6, 4),
        f"mprotect({a(1)}, {5 * P:#x}, PROT_READ)",
        f"mprotect({a(4)}, {4 * P:#x}, PROT_READ)",
        f"mprotect({a(3)}, {2 * P:#x}, PROT_NONE)",
    ],
    "t_mprotect_partial_eacces": [
        carve(),
        'open("/tmp/probe", O_RDWR|O_CREAT, 0600)', "ftruncate(3, 0x8000)", "close(3)",
        'open("/tmp/probe", O_RDONLY)',
        m(1, 2), m(3, 2, "PROT_READ", "MAP_SHARED", 3, 0),
        f"mprotect({a(1)}, {4 * P:#x}, PROT_READ|PROT_WRITE|PROT_EXEC)",
        f"mprotect({a(3)}, 4096, PROT_WRITE)",
        m(6, 2, "PROT_READ", "MAP_PRIVATE", 3, 0),
        f"mprotect({a(6)}, 4096, PROT_READ|PROT_WRITE)",
        "mmap(W+0x100000, 4096, PROT_WRITE, MAP_SHARED, 3, 0)",
        "close(3)", 'open("/tmp/probe", O_WRONLY)',
        "mmap(W+0x100000, 4096, PROT_READ, MAP_PRIVATE, 3, 0)",
        "close(3)", 'unlink("/tmp/probe")',
    ],
    "t_noexec": [
        'mkdir("/tmp/nx", 0755)', 'mount("tmpfs", "/tmp/nx", "tmpfs", MS_NOEXEC, "size=1m")',
        'open("/tmp/nx/probe", O_RDWR|O_CREAT, 0600)', "ftruncate(3, 0x2000)",
        "mmap(W, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE, 3, 0)",
        "mmap(W, 4096, PROT_READ, MAP_PRIVATE, 3, 0)",
        "mprotect(W, 4096, PROT_READ|PROT_EXEC)",
        "munmap(W, 4096)", "close(3)", 'unlink("/tmp/nx/probe")',
    ],
    "t_pkeys": [
        carve(), m(1, 3),
        f"pkey_mprotect({a(1)}, 4096, PROT_READ, 5)",
        f"pkey_mprotect({a(1)}, 4096, PROT_READ, -1)",
        f"pkey_mprotect({a(1)}, 4096, PROT_READ, 0)",
        "pkey_alloc(0, 0)", "pkey_alloc(1, 0)", "pkey_alloc(0, 4)",
        f"pkey_mprotect({a(50)}, 4096, PROT_READ, 9)",
        f"pkey_mprotect({a(2)}, 4096, PROT_READ|PROT_WRITE, 1)",
        f"mprotect({a(2)}, 4096, PROT_READ|PROT_WRITE)",
        "pkey_free(1)", "pkey_free(1)",
    ],
    "t_pkey_execonly": [
        carve(), m(1, 2),
        f"mprotect({a(1)}, 4096, PROT_EXEC)",
        "pkey_alloc(0, 0)",
        f"mprotect({a(1)}, 4096, PROT_READ|PROT_EXEC)",
        "mmap(W+0x100000, 4096, PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
    ],
    "t_mdwe_and_rie.mdwe": [
        "prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0)",
        carve(), m(1, 1),
        f"mprotect({a(1)}, 4096, PROT_READ|PROT_EXEC)",
        "mmap(W+0x100000, 4096, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        "mmap(W+0x100000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        "mprotect(W+0x100000, 4096, PROT_READ)",
        "mprotect(W+0x100000, 4096, PROT_READ|PROT_EXEC)",
    ],
    "t_mdwe_and_rie.rie": [
        "personality(READ_IMPLIES_EXEC)",
        carve(), m(1, 1, "PROT_READ"), m(3, 1),
        f"mprotect({a(3)}, 4096, PROT_READ)",
    ],
    "t_merge_basic": [
        carve(), m(1, 2), m(3, 2), m(5, 1, "PROT_READ"),
        f"mprotect({a(5)}, 4096, {RW})", f"mprotect({a(2)}, 4096, PROT_READ)",
        f"mprotect({a(2)}, 4096, {RW})",
        m(8, 1, flags=ANON + "|MAP_STACK"), m(9, 1),
        m(11, 1, flags=ANON + "|MAP_NORESERVE"), m(12, 1),
        m(14, 1, flags="MAP_SHARED|MAP_ANONYMOUS"), m(15, 1, flags="MAP_SHARED|MAP_ANONYMOUS"),
    ],
    "t_merge_account": [
        carve(), m(1, 1), poke(1), f"mprotect({a(1)}, 4096, PROT_READ)", m(2, 1, "PROT_READ"),
        m(5, 1), f"mprotect({a(5)}, 4096, PROT_READ)", m(6, 1, "PROT_READ"),
    ],
    "t_merge_anon_vma": [
        carve(), m(1, 3), f"mprotect({a(2)}, 4096, PROT_READ)", poke(1), poke(3),
        f"mprotect({a(2)}, 4096, {RW})",
        m(10, 3), f"mprotect({a(11)}, 4096, PROT_READ)", poke(10),
        f"mprotect({a(11)}, 4096, {RW})",
        m(20, 10, flags=ANON + "|MAP_NORESERVE"), f"mprotect({a(20)}, {5 * P:#x}, PROT_READ)",
        poke(25), f"mprotect({a(25)}, {5 * P:#x}, PROT_READ)",
        m(40, 1), m(41, 1, "PROT_READ"), poke(40), f"mprotect({a(41)}, 4096, {RW})", poke(41),
    ],
    "t_merge_fork": [
        carve(), m(1, 5), poke(1), "fork()", poke(1), poke(2), poke(3), poke(4), poke(5),
        m(6, 5),
    ],
    "t_merge_file": [
        carve(), 'open("/tmp/probe", O_RDWR|O_CREAT, 0600)', "ftruncate(3, 0x10000)",
        m(1, 2, "PROT_READ", "MAP_SHARED", 3, 0), m(3, 2, "PROT_READ", "MAP_SHARED", 3, 2 * P),
        m(6, 2, "PROT_READ", "MAP_SHARED", 3, 0), m(8, 2, "PROT_READ", "MAP_SHARED", 3, 5 * P),
        "close(3)", 'unlink("/tmp/probe")',
    ],
    "t_merge_file_identity": [
        carve(32), 'open("/tmp/probe", O_RDWR|O_CREAT, 0600)', "ftruncate(3, 0x8000)",
        'open("/tmp/probe", O_RDWR)',
        m(1, 2, "PROT_READ", "MAP_SHARED", 3, 0), m(3, 2, "PROT_READ", "MAP_SHARED", 4, 2 * P),
        "dup(3)",
        m(10, 2, "PROT_READ", "MAP_SHARED", 3, 0), m(12, 2, "PROT_READ", "MAP_SHARED", 5, 2 * P),
        m(20, 3, flags="MAP_SHARED|MAP_ANONYMOUS"), f"mprotect({a(21)}, 4096, PROT_READ)",
        "close(3)", "close(4)", "close(5)", 'unlink("/tmp/probe")',
    ],
    "t_mseal": [
        carve(), m(1, 6),
        f"mseal({a(1)}, 4096, 1)", f"mseal({a(1)}+1, 4096, 0)", f"mseal({a(1)}, 0, 0)",
        hole(7, 1), f"mseal({a(6)}, 0x2000, 0)", f"mseal({a(3)}, 4096, 0)",
        f"mseal({a(3)}, 4096, 0)", f"mprotect({a(3)}, 4096, PROT_READ)",
        f"mprotect({a(3)}, 4096, {RW})", f"mprotect({a(1)}, {3 * P:#x}, PROT_READ)",
        f"munmap({a(3)}, 4096)", f"munmap({a(2)}, 0x2000)", m(3, 1),
        f"mremap({a(3)}, 4096, 2048, 0, 0)",
        f"mremap({a(5)}, 4096, 4096, MREMAP_MAYMOVE|MREMAP_FIXED, {a(3)})",
        f"mprotect({a(4)}, {3 * P:#x}, PROT_READ)", f"mseal({a(4)}, 4096, 0)",
        f"madvise({a(4)}, 4096, MADV_DONTNEED)", f"madvise({a(3)}, 4096, MADV_DONTNEED)",
    ],
    "t_mmap_args": [
        "mmap(W, 0, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        "mmap(W, -100, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        "mmap(W, 1<<48, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        "mmap(W, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 5)",
        "mmap(W+0x200000, 8192, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0xfffffffffffff000)",
        "mmap(W, 4096, 3, MAP_ANONYMOUS, -1, 0)",
        "mmap(W, 4096, 3, MAP_SHARED_VALIDATE|MAP_ANONYMOUS, -1, 0)",
        "mmap(W, 4096, 3, MAP_PRIVATE, 987, 0)",
        "mmap(W+0x300000, 4096, 3|0x100, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        carve(),
        f"mmap({a(1)}+1, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)",
        m(2, 1),
        f"mmap({a(2)}, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0)",
        f"mmap({a(1)}, 0x2000, 3, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0)",
        hole(5, 2),
        f"mmap({a(5)}, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0)",
        f"mmap({a(20)}+123, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        hole(30, 4),
        f"mmap({a(30)}+123, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        "mmap(W+0x400000, 4096, 3, MAP_SHARED|MAP_ANONYMOUS|MAP_GROWSDOWN, -1, 0)",
        'open("/tmp/probe", O_RDWR|O_CREAT, 0600)', "ftruncate(3, 4096)",
        "mmap(W+0x400000, 4096, 3, MAP_PRIVATE|MAP_GROWSDOWN, 3, 0)",
        "mmap(W+0x400000, 4096, 3, MAP_SHARED_VALIDATE|MAP_SYNC, 3, 0)",
        "mmap(W+0x400000, 4096, 3, MAP_SHARED|MAP_SYNC, 3, 0)",
        "mmap(W+0x400000, 4096, 3, MAP_PRIVATE|MAP_SYNC, 3, 0)",
        "mmap(W+0x400000, 0x2000, 1, MAP_PRIVATE, 3, 0x7ffffffffffff000)",
        'open("/dev/shm/probe", O_RDWR|O_CREAT, 0600)', "ftruncate(4, 4096)",
        "mmap(W+0x500000, 4096, 3, MAP_SHARED|MAP_SYNC, 4, 0)",
        "mmap(W+0x600000, 4096, 3, MAP_SHARED_VALIDATE|MAP_SYNC, 4, 0)",
        "munmap(W+0x500000, 4096)", "close(4)", "close(3)", 'unlink("/tmp/probe")',
        'unlink("/dev/shm/probe")',
        'open("/proc/self/status", O_RDONLY)',
        "mmap(W+0x500000, 4096, 1, MAP_PRIVATE, 3, 0)", "close(3)",
        f"mmap({a(40)}, 0x2000, 3, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED|MAP_GROWSDOWN, -1, 0)",
        f"mprotect({a(41)}, 4096, PROT_READ|PROT_GROWSDOWN)",
        "mmap(NULL, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)",
        "munmap(NULL, 4096)",
        "mmap(0x1000, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)",
        "munmap(0x1000, 4096)",
    ],
    "t_mmap_topdown": [
        # unhinted: both sides place outside the window (compared as "outside")
        "mmap(NULL, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        "mmap(NULL, 4096, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        "mmap(NULL, 0x400000, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
        "mmap(NULL, 0x401000, 3, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
    ],
    "t_munmap": [
        carve(), m(1, 5),
        f"munmap({a(1)}+1, 4096)", f"munmap({a(1)}, 0)", "munmap(1<<47, 4096)",
        f"munmap({a(3)}, 1)", f"munmap({a(3)}, 4096)", f"munmap({a(0)}, {10 * P:#x})",
    ],
    "t_mremap": [
        carve(128), m(1, 2),
        f"mremap({a(1)}, 4096, 4096, 8, 0)", f"mremap({a(1)}+1, 4096, 4096, 0, 0)",
        f"mremap({a(1)}, 4096, 0, 0, 0)", f"mremap({a(1)}, 4096, 4096, MREMAP_FIXED, {a(20)})",
        hole(10, 2), f"mremap({a(10)}, 4096, 4096, 0, 0)", f"mremap({a(1)}, 4096, 4096, 0, 0)",
        m(3, 1, "PROT_READ"),
        f"mremap({a(1)}, {3 * P:#x}, {4 * P:#x}, MREMAP_MAYMOVE, 0)",
        f"mremap({a(1)}, {2 * P:#x}, {3 * P:#x}, 0, 0)",
        hole(3, 1), f"mremap({a(1)}, {2 * P:#x}, {3 * P:#x}, 0, 0)",
        f"mremap({a(1)}, {3 * P:#x}, 4096, 0, 0)",
        f"mremap({a(1)}, 4096, 4096, MREMAP_MAYMOVE|MREMAP_FIXED, {a(1)})",
        f"mremap({a(1)}, 4096, 4096, MREMAP_MAYMOVE|MREMAP_FIXED, {a(20)}+1)",
        f"mremap({a(1)}, 0, 4096, MREMAP_MAYMOVE, 0)",
        f"mremap({a(1)}, 4096, 0x2000, MREMAP_MAYMOVE|MREMAP_DONTUNMAP, 0)",
        f"mremap({a(1)}, 4096, 4096, MREMAP_DONTUNMAP, 0)",
        poke(1),
        f"mremap({a(1)}, 4096, 4096, MREMAP_MAYMOVE|MREMAP_DONTUNMAP|MREMAP_FIXED, {a(30)})",
        m(40, 2), m(42, 2, "PROT_READ"),
        f"mremap({a(40)}, {4 * P:#x}, {4 * P:#x}, MREMAP_MAYMOVE|MREMAP_FIXED, {a(60)})",
        m(80, 2), m(83, 2, "PROT_READ"), hole(82, 1),
        f"mremap({a(80)}, {5 * P:#x}, {5 * P:#x}, MREMAP_MAYMOVE|MREMAP_FIXED, {a(100)})",
        hole(112, 2), m(114, 2),
        f"mremap({a(112)}, {4 * P:#x}, {4 * P:#x}, MREMAP_MAYMOVE|MREMAP_FIXED, {a(120)})",
        m(90, 2), m(92, 2, "PROT_READ"),
        f"mremap({a(90)}, {4 * P:#x}, {4 * P:#x}, MREMAP_MAYMOVE, 0)",
        hole(94, 2), f"mremap({a(90)}, {8 * P:#x}, {8 * P:#x}, 0, 0)",
        f"mremap({a(90)}, {4 * P:#x}, {5 * P:#x}, MREMAP_MAYMOVE|MREMAP_FIXED, {a(120)})",
        m(70, 4), f"mremap({a(70)}, {2 * P:#x}, {3 * P:#x}, MREMAP_MAYMOVE, 0)",
        "mmap(W+0x200000, 4096, 3, MAP_SHARED|MAP_ANONYMOUS, -1, 0)",
        "mremap(W+0x200000, 0, 4096, MREMAP_MAYMOVE, 0)",
        "munmap(W+0x200000, 4096)",
    ],
    "t_more_merge": [
        carve(96), m(1, 3), poke(1), poke(3), m(2, 1),
        m(10, 3), hole(11, 1), m(11, 1),
        m(20, 2), hole(22, 1), m(23, 2), f"mremap({a(20)}, 0x2000, 0x3000, 0, 0)",
        m(30, 5), m(40, 5), poke(30),
        f"mremap({a(40)}, 0x5000, 0x5000, MREMAP_MAYMOVE|MREMAP_FIXED, {a(35)})",
        m(50, 3), m(60, 3), poke(50), poke(60),
        f"mremap({a(60)}, 0x3000, 0x3000, MREMAP_MAYMOVE|MREMAP_FIXED, {a(53)})",
        m(70, 3), f"mlock({a(71)}, 4096)", f"munlock({a(71)}, 4096)",
        f"madvise({a(71)}, 4096, MADV_DONTFORK)",
    ],
    "t_brk_stack": [
        "brk(0)", "brk(4096)", "brk(B+0x3000)", "brk(B)",
    ],
    "t_maps_format": [
        carve(), m(2, 1), m(4, 1, flags="MAP_SHARED|MAP_ANONYMOUS"),
    ],
}

#: probe cases not expressible inside the scenario windows, with the reason
SKIPPED = {
    "t_max_map_count": "needs ~65530 VMAs (vm.max_map_count of the host, which the test must "
                       "not change); tests/test_mm_probe.py replays it on the model with a "
                       "small limit",
    "t_brk_stack[stack]": "the [stack] cases (guard gap of the host's stack) need the executor's "
                          "own [stack], outside the windows",
    "t_mremap[vvar]": "the [vvar] cases need the host's [vvar] VMA, outside the windows",
}


# the `oracle` and `kw` fixtures live in conftest.py


def _diff(oracle, kw, text, name="<test>"):
    from vmsim.diff.compare import diff, skipped
    sc = S.parse(text, name)
    d, ks, ms = diff(oracle, sc, kw)
    sk = skipped(ks)
    if sk is not None and d is None:
        pytest.skip(f"{name}: line {sc.calls[sk[0]].line}: {sk[1]}")
    return d, ks, ms, sc


@pytest.mark.parametrize("name", sorted(PROBE_SCENARIOS))
def test_mm_probe_case(oracle, kw, name):
    text = "\n".join(PROBE_SCENARIOS[name]) + "\n"
    d, ks, ms, sc = _diff(oracle, kw, text, name)
    assert d is None, "\n" + d.describe(oracle.env) + "\n\n" + S.dump(
        sc, oracle.env, [token_to_result(c.name, k.result, oracle.env)
                         if k.result[0] != "crash" else None for c, k in zip(sc.calls, ks, strict=True)])
    assert all(k.result[0] != "crash" for k in ks)


def test_mm_probe_coverage():
    """Every probe function is expressed here or skipped with a reason."""
    if not PROBE.exists():
        pytest.skip(f"{PROBE} not found (CI copies shared/ beside the clone)")
    tree = ast.parse(PROBE.read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TESTS"
                                                for t in node.targets):
            names = [e.id for e in node.value.elts]
    assert names, "TESTS not found in mm_probe.py"
    covered = {n.split(".")[0] for n in PROBE_SCENARIOS} | {n.split("[")[0] for n in SKIPPED}
    assert set(names) <= covered, set(names) - covered


# --------------------------------------------------------------------------- the oracle itself

def test_kernel_kwargs_mirror_host():
    from vmsim import oracle as O
    kw = O.kernel_kwargs()
    flags = open("/proc/cpuinfo").read()
    assert kw["pkeys"] == (" pku" in flags and " ospke" in flags)
    assert kw["max_map_count"] == int(open("/proc/sys/vm/max_map_count").read())
    import vmsim
    vmsim.Kernel(**kw).spawn()


def test_results_faults_and_state(oracle):
    sc = S.parse("mmap(W+0x1000, 0x2000, PROT_READ|PROT_WRITE, "
                 "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)\n"
                 "mprotect(W+0x1000, 4096, PROT_READ)\n"
                 'touch(W+0x1000, "w")\n'
                 'touch(W+0x5000, "r")\n'
                 "poke(W+0x2000, 0x41)\npeek(W+0x2000)\n"
                 'touch(W+0x2000, "x")\n'
                 "munmap(W+0x1000, 1)\n"
                 "mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n")
    ks = oracle.run(sc)
    r = [k.result for k in ks]
    assert r[0] == ("ok", "W+0x1000")
    assert r[2] == ("sig", "SIGSEGV", "SEGV_ACCERR", "W+0x1000")
    assert r[3] == ("sig", "SIGSEGV", "SEGV_MAPERR", "W+0x5000")
    assert r[5] == ("ok", 0x41)
    assert r[6] == ("sig", "SIGSEGV", "SEGV_ACCERR", "W+0x2000")
    assert r[8] == ("ok", "outside")
    assert ks[1].state[0][:3] == ("W+0x1000", "W+0x2000", "r--p")
    assert ks[1].state[0][7] == "rd mr mw me"
    assert ks[-1].state[0][:3] == ("W+0x2000", "W+0x3000", "rw-p")
    end = oracle.run(sc, state="end")
    assert end[-1].state == ks[-1].state and end[0].state is None


def test_files_noexec_fork_and_brk(oracle, kw):
    text = ('open("/tmp/f", O_RDWR|O_CREAT, 0600) = 3\n'
            "ftruncate(3, 0x2000) = 0\n"
            "mmap(W, 0x3000, PROT_READ, MAP_SHARED, 3, 0) = W\n"
            'touch(W+0x2000, "r") = SIGBUS {si_code=BUS_ADRERR, si_addr=W+0x2000}\n'
            'unlink("/tmp/f") = 0\n'
            'mkdir("/tmp/nx", 0755) = 0\n'
            'mount("tmpfs", "/tmp/nx", "tmpfs", MS_NOEXEC, NULL) = 0\n'
            'open("/tmp/nx/g", O_RDWR|O_CREAT, 0600) = 4\n'
            "ftruncate(4, 4096) = 0\n"
            "mmap(W+0x10000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE, 4, 0) = -1 EPERM\n"
            "mmap(W+0x20000, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
            " = W+0x20000\n"
            "poke(W+0x20000, 0x41) = 0\n"
            "madvise(W+0x20000, 4096, MADV_WIPEONFORK) = 0\n"
            "fork() = 0\n"
            "peek(W+0x20000) = 0\n"
            "brk(B+0x2000) = B+0x2000\n")
    d, ks, ms, sc = _diff(oracle, kw, text)
    assert d is None, d.describe(oracle.env)
    names = [v[6] for v in ks[-1].state]
    assert "[heap]" in names and "/tmp/f (deleted)" in names


def test_session_mode(oracle):
    calls = S.parse("mmap(W, 4096, PROT_READ|PROT_WRITE, "
                    "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0)\n"
                    "poke(W, 0x42)\nfork()\npeek(W)\nmunmap(W, 4096)\npeek(W)\n").calls
    with oracle.session() as s:
        out = [s.call(c) for c in calls]
    assert out[0].result == ("ok", "W+0x0")
    assert out[3].result == ("ok", 0x42)
    assert out[5].result == ("sig", "SIGSEGV", "SEGV_MAPERR", "W+0x0")
    assert out[4].state == ()
    # the oracle still runs whole scenarios afterwards
    assert oracle.run(S.Scenario(calls[:1]))[0].result == ("ok", "W+0x0")


def test_executor_is_cached():
    from vmsim import oracle as O
    p1 = O.executor_path()
    mtime = p1.stat().st_mtime
    assert O.executor_path() == p1 and p1.stat().st_mtime == mtime
