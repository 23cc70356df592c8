"""The test enclave and the SGX host program of vmsim's own (vmsim/enclave/testenclave/,
issue #12): C and assembly built here with gcc.

What holds now: the enclave builds with the kselftest's flags and has the layout its
loader expects (TCS pages, text, data with encl_buffer first, the SSA frames, the
stacks); vmsim measures it to the MRENCLAVE an independent computation (hashlib over
EADD/EEXTEND records built here from the ELF's program headers) gives; the model's
kselftest loader loads it and EINIT accepts it, as it accepts the SIGSTRUCT file the
host reads; the host compiles with -Wall -Werror and, run natively on this machine
(no SGX), says SKIP as the kselftest does.

Under `vmsim run` (the CPU bridge's enclave mode, issue #12): the host loads the enclave
and runs the kselftest's sixteen scenarios on the enclave's own code, the two
oversubscribed ones on an EPC smaller than their enclave (the driver writes pages out
and loads them back), and its EREPORT/EGETKEY round trip verifies.
"""

import hashlib
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

import vmsim
from vmsim.arch.x86.sgx.cpu import SgxCpu
from vmsim.arch.x86.sgx.defs import (
    SGX_ATTR_MODE64BIT,
    SGX_SECINFO_R,
    SGX_SECINFO_REG,
    SGX_SECINFO_TCS,
    SGX_SECINFO_W,
    SGX_SECINFO_X,
)
from vmsim.arch.x86.sgx.sigstruct import Sigstruct, mrsigner, verify
from vmsim.cli.main import main as vmsim_main
from vmsim.enclave import loader, signing
from vmsim.enclave.image import EnclaveImage
from vmsim.enclave.testenclave import build

PAGE = 4096
HEAP = PAGE                         # the kselftest's ENCL_HEAP_SIZE_DEFAULT
#: the kselftest's TEST_Fs, in main.c's order (mainline 6.x)
KSELFTEST_SCENARIOS = [
    "unclobbered_vdso", "unclobbered_vdso_oversubscribed",
    "unclobbered_vdso_oversubscribed_remove", "clobbered_vdso",
    "clobbered_vdso_and_user_function", "tcs_entry", "pte_permissions", "tcs_permissions",
    "epcm_permissions", "augment", "augment_via_eaccept", "tcs_create",
    "remove_added_page_no_eaccept", "remove_added_page_invalid_access",
    "remove_added_page_invalid_access_after_eaccept", "remove_untouched_page",
]
#: the flags of the kselftest's Makefile (6.7+) for test_encl.elf
KSELFTEST_ENCL_CFLAGS = ["-static-pie", "-nostdlib", "-ffreestanding", "-fPIE",
                         "-fno-stack-protector", "-mrdrnd"]

# ELF (include/uapi/linux/elf.h)
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
RELA = struct.Struct("<QQq")
ET_DYN, EM_X86_64, PT_LOAD, PF_X, PF_W, PF_R = 3, 62, 1, 1, 2, 4
SHT_NOBITS, SHF_ALLOC = 8, 2
R_X86_64_RELATIVE = 8
# struct sgx_tcs up to GSLIMIT
TCS = struct.Struct("<QQQIIQQQQII")


@pytest.fixture(scope="module")
def elf_path():
    if shutil.which("gcc") is None:
        pytest.skip("no gcc to build the test enclave")
    return build.enclave_elf()


@pytest.fixture(scope="module")
def elf(elf_path):
    return elf_path.read_bytes()


@pytest.fixture(scope="module")
def host(elf_path):         # elf_path: skip without gcc
    return build.host_program()


@pytest.fixture(scope="module")
def key():
    return signing.generate_key()


# --- reading the ELF here, independently of vmsim.enclave.elf ---

def program_headers(raw):
    f = EHDR.unpack_from(raw)
    return [PHDR.unpack_from(raw, f[5] + i * f[9]) for i in range(f[10])]


def sections(raw):
    """{name: (type, flags, addr, offset, size, link)}"""
    f = EHDR.unpack_from(raw)
    shoff, shentsize, shnum, shstrndx = f[6], f[11], f[12], f[13]
    heads = [SHDR.unpack_from(raw, shoff + i * shentsize) for i in range(shnum)]
    names = heads[shstrndx][4]

    def name(at):
        return raw[names + at:raw.index(b"\0", names + at)].decode()
    return {name(h[0]): (h[1], h[2], h[3], h[4], h[5], h[6]) for h in heads}


def symbols(raw):
    secs = sections(raw)
    _t, _f, _a, off, size, link = secs[".symtab"]
    strtab = list(secs.values())[link][3]
    out = {}
    for i in range(0, size, SYM.size):
        st_name, _info, _other, _shndx, value, _size = SYM.unpack_from(raw, off + i)
        if st_name:
            out[raw[strtab + st_name:raw.index(b"\0", strtab + st_name)].decode()] = value
    return out


def loader_segments(raw):
    """(offset, bytes, p_flags) per PT_LOAD, as load.c reads them: offsets from the first
    one's page, p_filesz rounded up to pages, straight from the file."""
    loads = [ph for ph in program_headers(raw) if ph[0] == PT_LOAD]
    first = loads[0][2] & ~(PAGE - 1)
    out = []
    for _type, flags, offset, _vaddr, _paddr, filesz, _memsz, _align in loads:
        start = offset & ~(PAGE - 1)
        size = -(-filesz // PAGE) * PAGE
        out.append((start - first, raw[start:start + size].ljust(size, b"\0"), flags))
    return out


def secinfo_flags(index, p_flags):
    if index == 0:
        return SGX_SECINFO_TCS
    return SGX_SECINFO_REG | sum(bit for pf, bit in ((PF_R, SGX_SECINFO_R), (PF_W, SGX_SECINFO_W),
                                                     (PF_X, SGX_SECINFO_X)) if p_flags & pf)


def records_digest(raw, heap):
    """MRENCLAVE from the ECREATE, EADD and EEXTEND records (SDM Vol. 3D; spec
    §4.1), built here byte by byte: every PT_LOAD measured, then the heap unmeasured."""
    segs = loader_segments(raw)
    end = segs[-1][0] + len(segs[-1][1]) + heap
    size = PAGE
    while size < end:
        size *= 2
    h = hashlib.sha256()
    h.update(b"ECREATE\0" + struct.pack("<IQ", 1, size) + bytes(44))
    pages = [(off + i, data[i:i + PAGE], secinfo_flags(n, flags), True)
             for n, (off, data, flags) in enumerate(segs) for i in range(0, len(data), PAGE)]
    heap_start = segs[-1][0] + len(segs[-1][1])
    pages += [(heap_start + i, bytes(PAGE), SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W,
               False) for i in range(0, heap, PAGE)]
    for off, page, flags, measured in pages:
        h.update(b"EADD\0\0\0\0" + struct.pack("<QQ", off, flags) + bytes(40))
        for chunk in range(0, PAGE * measured, 256):
            h.update(b"EEXTEND\0" + struct.pack("<Q", off + chunk) + bytes(48))
            h.update(page[chunk:chunk + 256])
    return h.digest()


# --- the enclave ---

def test_enclave_is_built_with_the_kselftest_flags(elf_path, elf):
    flags = list(build.ENCLAVE.flags)
    assert all(f in flags for f in KSELFTEST_ENCL_CFLAGS + ["-Wall", "-Werror"])
    ident, e_type, machine, *_ = EHDR.unpack_from(elf)
    assert ident[:4] == b"\x7fELF" and ident[4] == 2 and ident[5] == 1     # ELF64, LSB
    assert (e_type, machine) == (ET_DYN, EM_X86_64)                         # a static PIE
    assert build.enclave_elf() == elf_path                                  # cached
    assert elf_path.name.startswith("test_encl-") and elf_path.suffix == ".elf"


def test_enclave_layout_is_what_the_kselftest_loader_expects(elf):
    """Three PT_LOADs: the TCS pages (exactly RW), the code (RX), the data (RW),
    contiguous from 0; in the data encl_buffer first, then the SSA frames, then one
    stack page per TCS; nothing in .bss (a loader adds p_filesz bytes only)."""
    phdrs = program_headers(elf)
    assert [(ph[0], ph[1]) for ph in phdrs] == [(PT_LOAD, PF_R | PF_W), (PT_LOAD, PF_R | PF_X),
                                                (PT_LOAD, PF_R | PF_W)]
    segs = loader_segments(elf)
    assert [(off, len(data)) for off, data, _ in segs] == [
        (0x0, 2 * PAGE), (0x2000, PAGE), (0x3000, 7 * PAGE)]
    assert all(ph[3] == off and ph[5] == ph[6] for ph, (off, _d, _f) in zip(phdrs, segs, strict=True))
    sym = symbols(elf)
    data = segs[2][0]
    assert sym["__encl_base"] == 0 and sym["encl_tcs"] == 0
    assert sym["encl_buffer"] == data
    assert sym["encl_ssa"] >= data + 2 * PAGE and sym["encl_ssa"] % PAGE == 0
    assert sym["encl_stacks"] == sym["encl_ssa"] + 2 * PAGE
    assert sym["encl_stacks"] + 2 * PAGE == data + len(segs[2][1])
    text = segs[1][0]
    assert text <= sym["encl_entry"] < sym["encl_dyn_entry"] < text + PAGE
    assert EHDR.unpack_from(elf)[4] == sym["encl_entry"]                    # e_entry
    allocated = [s for s in sections(elf).values() if s[1] & SHF_ALLOC]
    assert not [s for s in allocated if s[0] == SHT_NOBITS]
    assert "_GLOBAL_OFFSET_TABLE_" not in sym


def test_enclave_tcs_pages(elf):
    """TCS #n: OSSA = SSA frame n, one frame, OENTRY = encl_entry, FS/GS limits 4 GiB;
    the CPU's fields and the reserved bytes zero."""
    sym = symbols(elf)
    tcs_pages = loader_segments(elf)[0][1]
    for n in range(2):
        page = tcs_pages[n * PAGE:(n + 1) * PAGE]
        assert TCS.unpack_from(page) == (0, 0, sym["encl_ssa"] + n * PAGE, 0, 1,
                                         sym["encl_entry"], 0, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF)
        assert page[TCS.size:] == bytes(PAGE - TCS.size)


def test_enclave_is_never_relocated(elf):
    """Every relocation is R_X86_64_RELATIVE, already applied in the file (the value
    at the place is the addend, a link-time address = an offset from the base): the
    TCS fields OSSA and OENTRY, and the op table."""
    secs = sections(elf)
    _t, _f, _a, off, size, _l = secs[".rela.dyn"]
    segs = loader_segments(elf)
    image = b"".join(data for _o, data, _f in segs)
    places = []
    for i in range(0, size, RELA.size):
        where, info, addend = RELA.unpack_from(elf, off + i)
        assert info & 0xFFFFFFFF == R_X86_64_RELATIVE
        assert struct.unpack_from("<Q", image, where)[0] == addend
        places.append(where)
    tcs_fields = [n * PAGE + field for n in range(2) for field in (16, 32)]
    table = [p for p in places if p not in tcs_fields]
    assert sorted(set(places) & set(tcs_fields)) == tcs_fields
    assert len(table) == 10                                     # ENCL_OP_MAX
    assert all(segs[1][0] <= struct.unpack_from("<Q", image, p)[0] < segs[2][0] for p in table)


def test_vmsim_reads_the_segments_the_loader_adds(elf):
    image = EnclaveImage.from_elf(elf, heap_size=HEAP)
    rw, rx = vmsim.PROT_READ | vmsim.PROT_WRITE, vmsim.PROT_READ | vmsim.PROT_EXEC
    assert [(s.name, s.offset, s.size, s.secinfo_flags, s.prot, s.measured)
            for s in image.segments] == [
        ("tcs", 0x0, 2 * PAGE, SGX_SECINFO_TCS, rw, True),
        ("text", 0x2000, PAGE, SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_X, rx, True),
        ("data", 0x3000, 7 * PAGE, SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W, rw, True),
        ("heap", 0xA000, PAGE, SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W, rw, False)]
    assert image.size == 0x10000
    assert [s.data for s in image.segments[:3]] == [d for _o, d, _f in loader_segments(elf)]


@pytest.mark.parametrize("heap", [HEAP, 3 * PAGE, 0x10000])
def test_mrenclave_agrees_with_an_independent_computation(elf, heap):
    assert EnclaveImage.from_elf(elf, heap_size=heap).measure() == records_digest(elf, heap)


def test_vmsim_sgx_measure_prints_it(elf_path, elf, capsys):
    assert vmsim_main(["sgx", "measure", str(elf_path)]) == 0
    assert capsys.readouterr().out == f"MRENCLAVE {records_digest(elf, HEAP).hex()}\n"


def test_the_kselftest_loader_loads_it_and_einit_accepts_it(elf, key):
    k = vmsim.Kernel()
    p = k.spawn(stack=True)
    image = EnclaveImage.from_elf(elf, heap_size=HEAP)
    loaded = loader.kselftest_load(p, image, key)
    encl = p.files[loaded.dev.fd].private_data
    assert encl.initialized
    lines = [ln.split() for ln in p.maps().splitlines() if ln.endswith("/dev/sgx_enclave")]
    assert [(int(ln[0].split("-")[0], 16) - loaded.base, ln[1]) for ln in lines] == [
        (0x0, "rw-s"), (0x2000, "r-xs"), (0x3000, "rw-s"), (0xA000, "rw-s")]
    # the EPC holds the pages as added; outside enclave mode they read as the abort page
    text = next(s for s in image.segments if s.name == "text")
    epc = encl.pages[(loaded.base + text.offset) >> 12].epc
    assert bytes(epc.data) == text.data
    assert p.read(loaded.base + text.offset, 8) == b"\xff" * 8
    p.mm.validate()


# --- the SIGSTRUCT file the host reads ---

def test_sigstructs_file_has_one_record_per_heap_size(elf, key):
    heaps = [HEAP, 5 * PAGE]
    blob = build.sigstructs(elf, key, heaps)
    assert len(blob) == len(heaps) * build.SIGSTRUCT_RECORD.size
    for i, heap in enumerate(heaps):
        size, raw = build.SIGSTRUCT_RECORD.unpack_from(blob, i * build.SIGSTRUCT_RECORD.size)
        sig = Sigstruct.unpack(raw)
        assert size == heap
        assert verify(raw) == 0
        assert sig.mrenclave == records_digest(elf, heap)
        assert (sig.attributes, sig.xfrm, sig.attributes_mask, sig.xfrm_mask) == \
            (SGX_ATTR_MODE64BIT, 3, 0, 0)
        assert sig.mrsigner() == mrsigner(signing.public_modulus(key))


def test_einit_accepts_the_sigstruct_the_host_would_pass(elf, key):
    """load.c's calls, made here with the file's record for a two-page heap."""
    heap = 2 * PAGE
    image = EnclaveImage.from_elf(elf, heap_size=heap)
    _size, sig = build.SIGSTRUCT_RECORD.unpack(build.sigstructs(elf, key, [heap]))
    p = vmsim.Kernel().spawn(stack=True)
    dev = loader.SgxDevice(p)
    base = loader.reserve_aligned(p, image.size)
    dev.create(image.secs(base))
    for seg in image.segments:
        src = p.mmap(0, seg.size, vmsim.PROT_READ | vmsim.PROT_WRITE,
                     vmsim.MAP_PRIVATE | vmsim.MAP_ANONYMOUS)
        p.write(src, seg.data)
        dev.add_pages(src, seg.offset, seg.size, seg.secinfo_flags, seg.measured)
    dev.init(sig)
    assert p.files[dev.fd].private_data.initialized


# --- the host program ---

def test_host_compiles_with_wall_werror(host):
    assert {"-Wall", "-Werror"} <= set(build.HOST.flags)
    assert os.access(host, os.X_OK)
    assert build.host_program() == host


def test_host_lists_the_kselftest_scenarios_then_ours(host):
    r = subprocess.run([host, "-l"], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines() == KSELFTEST_SCENARIOS + ["ereport (ours)", "egetkey (ours)"]


@pytest.mark.parametrize("args,message", [
    ([], "usage: "),
    (["only-one"], "usage: "),
    (["-H", "100", "e", "s"], "-H 100: not a positive multiple of 4096"),
    (["e", "s", "no_such_scenario"], "no scenario no_such_scenario (-l lists them)"),
])
def test_host_bad_usage_is_exit_2(host, args, message):
    r = subprocess.run([host, *args], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr


def test_host_natively(host, elf_path, elf, key, tmp_path):
    """This machine's own run: without /dev/sgx_enclave the kselftest's SKIP (exit 4);
    on a machine with SGX, every scenario passes."""
    sigs = tmp_path / "test_encl.sigstructs"
    sigs.write_bytes(build.sigstructs(elf, key, [HEAP]))
    r = subprocess.run([host, "-H", str(HEAP), elf_path, sigs, "unclobbered_vdso"],
                       capture_output=True, text=True, timeout=120)
    if os.path.exists("/dev/sgx_enclave"):
        assert (r.returncode, r.stdout.splitlines()[-2:]) == (
            0, ["ok 1 unclobbered_vdso", "# Totals: pass:1 fail:0 skip:0"])
    else:
        assert (r.returncode, r.stdout, r.stderr) == (
            4, "TAP version 13\n1..0 # SKIP /dev/sgx_enclave: No such file or directory\n", "")


# --- under `vmsim run` ---

#: the EPC of the runs, in pages: the kselftest's oversubscribed heap is the whole EPC
#: (CPUID leaf 0x12), so that enclave cannot fit, and the driver writes pages out
RUN_EPC_PAGES = 512


def test_a_heap_of_the_whole_epc_loads(elf, key):
    """get_total_epc_mem() as the heap, as the kselftest's oversubscribed tests size it:
    the enclave is larger than the EPC, and loads; the reclaimer has written pages out
    (EWB) to make room, and keeps SGX_NR_LOW_PAGES (32) free at least."""
    cpu = SgxCpu(epc_pages=1100)
    p = vmsim.Kernel(sgx=cpu).spawn(stack=True)
    loaded = loader.kselftest_load(p, EnclaveImage.from_elf(elf, heap_size=1100 * PAGE), key)
    encl = p.files[loaded.dev.fd].private_data
    assert len(encl.pages) > cpu.epc_pages
    assert any(page.epc is None for page in encl.pages.values())
    assert cpu.epc_free >= 32
    p.mm.validate()


def vmsim_run(args, timeout, options=()):
    """`vmsim run OPTIONS -- ARGS` in a child Python, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "vmsim", "run", *map(str, options), "--",
                           *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run_files(host, elf_path, elf, key, tmp_path_factory):
    """(host, enclave, SIGSTRUCT file) for the host under `vmsim run`: signed for the
    default heap and for the oversubscribed scenarios' heap, the whole EPC of
    RUN_EPC_PAGES."""
    pytest.importorskip("unicorn")
    sigs = tmp_path_factory.mktemp("sgx_host") / "test_encl.sigstructs"
    sigs.write_bytes(build.sigstructs(elf, key, [HEAP, RUN_EPC_PAGES * PAGE]))
    return host, elf_path, sigs


def test_host_loader_under_vmsim_run(run_files, elf, key):
    """A scenario that never enters the enclave (tcs_permissions: CREATE, ADD_PAGES,
    INIT, the segment mmaps, the SGX2 ioctls), its mappings as the model's own loader
    leaves them."""
    if importlib.util.find_spec("vmsim.cli.run") is None:
        pytest.skip("no `vmsim run` yet (issue #11)")
    host, elf_path, sigs = run_files
    r = vmsim_run([host, "-v", elf_path, sigs, "tcs_permissions"], timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-2:] == ["ok 1 tcs_permissions", "# Totals: pass:1 fail:0 skip:0"]
    mapped = [ln.split() for ln in r.stdout.splitlines()
              if ln.startswith("# ") and ln.endswith("/dev/sgx_enclave")]
    base = int(mapped[0][1].split("-")[0], 16)
    assert [(int(m[1].split("-")[0], 16) - base, m[2]) for m in mapped] == [
        (0x0, "rw-s"), (0x2000, "r-xs"), (0x3000, "rw-s"), (0xA000, "rw-s")]


def test_host_runs_the_kselftest_scenarios_under_vmsim_run(run_files):
    """The sixteen; the oversubscribed ones with the kselftest's heap, the whole EPC,
    which the host reads from CPUID leaf 0x12."""
    host, elf_path, sigs = run_files
    r = vmsim_run([host, elf_path, sigs], timeout=3600, options=["--sgx-epc-pages", RUN_EPC_PAGES])
    lines = r.stdout.splitlines()
    assert [ln for ln in lines if re.match(r"(not )?ok ", ln)] == [
        f"ok {i} {name}" for i, name in enumerate(KSELFTEST_SCENARIOS, 1)], r.stdout + r.stderr
    assert lines[-1] == "# Totals: pass:16 fail:0 skip:0"
    assert r.returncode == 0


def test_report_round_trip_under_vmsim_run(run_files, key):
    """EREPORT for itself, then EGETKEY of the report key: the key verifies the
    report's MAC (AES-CMAC over its first 384 bytes); MRSIGNER is the key's."""
    from cryptography.hazmat.primitives.ciphers.algorithms import AES
    from cryptography.hazmat.primitives.cmac import CMAC
    host, elf_path, sigs = run_files
    r = vmsim_run([host, elf_path, sigs, "ereport", "egetkey"], timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    # egetkey prints its report after ereport's: the last one is the key's
    found = dict(re.findall(r"^# (mrsigner|report|report_key) ([0-9a-f]+)$", r.stdout, re.M))
    assert bytes.fromhex(found["mrsigner"]) == mrsigner(signing.public_modulus(key))
    report, report_key = bytes.fromhex(found["report"]), bytes.fromhex(found["report_key"])
    mac = CMAC(AES(report_key))
    mac.update(report[:384])
    assert mac.finalize() == report[416:432]
