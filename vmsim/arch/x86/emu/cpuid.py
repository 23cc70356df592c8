"""CPUID: what the emulated processor tells a program about itself.

A program (glibc's init_cpu_features(), ld.so's choice of string functions, Python's
hashlib) picks its code paths by CPUID, so the answers must name only instructions the
emulator executes: a feature is shown when this machine has it (its /proc/cpuinfo flags,
arch/x86/kernel/cpu/proc.c show_cpuinfo(): arch/x86/include/asm/cpufeatures.h names)
and Unicorn's TCG core runs it (its own CPUID for the same CPU model, which QEMU filters
to what TCG implements: no AVX, AVX2, AVX-512, FMA or F16C). On top of that:

* XSAVE and OSXSAVE are never shown: the state is FXSAVE's (x87 and SSE), which
  glibc then saves with FXSAVE around lazy binding, and signal frames hold an FXSAVE
  image (vmsim.arch.x86.signal); leaf 0xd is empty.
* PKU and OSPKE follow `pkeys` (Kernel.pkeys), not the host: RDPKRU and WRPKRU are
  executed by the model (vmsim.arch.x86.emu.cpu), which keeps PKRU for the page walk.
* SGX (leaf 7: SGX, SGX_LC; leaf 0x12) follows the configured SgxCpu, as the SDM lays
  leaf 0x12 out: subleaf 0 SGX1/SGX2, MISCSELECT and the maximum enclave sizes,
  subleaf 1 the ATTRIBUTES and XFRM ECREATE accepts, subleaf 2 one EPC section.
* Vendor, family/model/stepping and the brand string are this machine's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ..sgx.cpu import SgxCpu

#: CPUID's four result registers
Regs4 = tuple[int, int, int, int]
EAX, EBX, ECX, EDX = range(4)

#: the feature bits /proc/cpuinfo names, by (leaf, subleaf, register): bit -> name
FEATURE_NAMES: dict[tuple[int, int, int], dict[int, str]] = {
    (1, 0, EDX): {
        0: "fpu", 1: "vme", 2: "de", 3: "pse", 4: "tsc", 5: "msr", 6: "pae", 7: "mce",
        8: "cx8", 9: "apic", 11: "sep", 12: "mtrr", 13: "pge", 14: "mca", 15: "cmov",
        16: "pat", 17: "pse36", 18: "pn", 19: "clflush", 21: "dts", 22: "acpi", 23: "mmx",
        24: "fxsr", 25: "sse", 26: "sse2", 27: "ss", 28: "ht", 29: "tm", 30: "ia64", 31: "pbe"},
    (1, 0, ECX): {
        0: "pni", 1: "pclmulqdq", 2: "dtes64", 3: "monitor", 4: "ds_cpl", 5: "vmx", 6: "smx",
        7: "est", 8: "tm2", 9: "ssse3", 10: "cid", 11: "sdbg", 12: "fma", 13: "cx16",
        14: "xtpr", 15: "pdcm", 17: "pcid", 18: "dca", 19: "sse4_1", 20: "sse4_2",
        21: "x2apic", 22: "movbe", 23: "popcnt", 24: "tsc_deadline_timer", 25: "aes",
        26: "xsave", 28: "avx", 29: "f16c", 30: "rdrand", 31: "hypervisor"},
    (7, 0, EBX): {
        0: "fsgsbase", 1: "tsc_adjust", 2: "sgx", 3: "bmi1", 4: "hle", 5: "avx2", 7: "smep",
        8: "bmi2", 9: "erms", 10: "invpcid", 11: "rtm", 12: "cqm", 14: "mpx", 15: "rdt_a",
        16: "avx512f", 17: "avx512dq", 18: "rdseed", 19: "adx", 20: "smap", 21: "avx512ifma",
        23: "clflushopt", 24: "clwb", 25: "intel_pt", 26: "avx512pf", 27: "avx512er",
        28: "avx512cd", 29: "sha_ni", 30: "avx512bw", 31: "avx512vl"},
    (7, 0, ECX): {
        1: "avx512vbmi", 2: "umip", 3: "pku", 4: "ospke", 5: "waitpkg", 6: "avx512_vbmi2",
        8: "gfni", 9: "vaes", 10: "vpclmulqdq", 11: "avx512_vnni", 12: "avx512_bitalg",
        13: "tme", 14: "avx512_vpopcntdq", 16: "la57", 22: "rdpid", 25: "cldemote",
        27: "movdiri", 28: "movdir64b", 30: "sgx_lc"},
    (7, 0, EDX): {
        2: "avx512_4vnniw", 3: "avx512_4fmaps", 4: "fsrm", 8: "avx512_vp2intersect",
        10: "md_clear", 14: "serialize", 16: "tsxldtrk", 18: "pconfig", 20: "ibt",
        22: "amx_bf16", 23: "avx512_fp16", 24: "amx_tile", 25: "amx_int8",
        29: "arch_capabilities"},
    (0x80000001, 0, ECX): {
        0: "lahf_lm", 1: "cmp_legacy", 2: "svm", 3: "extapic", 4: "cr8_legacy", 5: "abm",
        6: "sse4a", 7: "misalignsse", 8: "3dnowprefetch", 9: "osvw", 10: "ibs", 11: "xop",
        12: "skinit", 13: "wdt", 15: "lwp", 16: "fma4", 17: "tce", 19: "nodeid_msr",
        21: "tbm", 22: "topoext", 23: "perfctr_core", 24: "perfctr_nb", 26: "bpext",
        27: "ptsc", 28: "perfctr_llc", 29: "mwaitx"},
    (0x80000001, 0, EDX): {
        11: "syscall", 19: "mp", 20: "nx", 22: "mmxext", 25: "fxsr_opt", 26: "pdpe1gb",
        27: "rdtscp", 29: "lm", 30: "3dnowext", 31: "3dnow"},
}
#: AMD's leaf 0x80000001 EDX repeats these bits of leaf 1 EDX (no names of their own)
AMD_MIRRORED_EDX = 0x0183F3FF

#: bits never shown whatever the host and the emulator have (see the module docstring)
XSAVE, OSXSAVE = 1 << 26, 1 << 27
PKU, OSPKE = 1 << 3, 1 << 4
SGX, SGX_LC = 1 << 2, 1 << 30
#: leaves asked with a subleaf in ECX, and how many subleaves are kept
SUBLEAF_LEAVES = {4: 8, 7: 2, 0xB: 4, 0xD: 4, 0x12: 4, 0x8000001D: 8}
#: the Unicorn CPU models run for each vendor: the richest feature set TCG executes
UC_MODEL_BY_VENDOR = {"AuthenticAMD": "UC_CPU_X86_EPYC_ROME",
                      "GenuineIntel": "UC_CPU_X86_ICELAKE_SERVER"}
#: leaf 0x12 subleaf 2, an EPC section: where the EPC lies (physically; invented)
EPC_BASE = 0x80000000


@dataclass(frozen=True)
class CpuModel:
    """The processor a program is shown: identity (`vendor`, `family`, `model`,
    `stepping`, `brand`), the /proc/cpuinfo `flags` it may have, `pkeys` (PKU and
    OSPKE) and `sgx` (None: no SGX). `uc_model` is the name of the Unicorn CPU model
    that executes it (a UC_CPU_X86_* constant), whose TCG features bound `flags`."""

    vendor: str
    family: int
    model: int
    stepping: int
    brand: str
    flags: frozenset[str] = field(repr=False)
    pkeys: bool = False
    sgx: SgxCpu | None = None
    uc_model: str = "UC_CPU_X86_EPYC_ROME"

    def signature(self) -> int:
        """CPUID(1).EAX: stepping, model and family with their extended fields."""
        fam, mod = self.family, self.model
        ext_fam = fam - 0xF if fam > 0xF else 0
        return (self.stepping & 0xF) | ((mod & 0xF) << 4) | (min(fam, 0xF) << 8) | \
            ((mod >> 4) << 16) | (ext_fam << 20)


def host_cpu_model(*, pkeys: bool | None = None, sgx: SgxCpu | None = None,
                   cpuinfo: str = "/proc/cpuinfo") -> CpuModel:
    """This machine's processor, from the first CPU of /proc/cpuinfo; pkeys None: as
    the host (its "pku" flag)."""
    fields: dict[str, str] = {}
    with open(cpuinfo) as f:
        for line in f:
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    flags = frozenset(fields.get("flags", "").split())
    vendor = fields.get("vendor_id", "GenuineIntel")
    return CpuModel(vendor=vendor, family=int(fields.get("cpu family", "6")),
                    model=int(fields.get("model", "0")), stepping=int(fields.get("stepping", "0")),
                    brand=fields.get("model name", ""), flags=flags,
                    pkeys="pku" in flags if pkeys is None else pkeys, sgx=sgx,
                    uc_model=UC_MODEL_BY_VENDOR.get(vendor, "UC_CPU_X86_ICELAKE_SERVER"))


class Cpuid:
    """The answers of CPUID for a CpuModel, given the emulator's own answers for its
    Unicorn model (`native`: (leaf, subleaf) -> registers, for every leaf the emulator
    has). Cost: a dict lookup per CPUID."""

    def __init__(self, cpu: CpuModel, native: dict[tuple[int, int], Regs4]) -> None:
        self.cpu = cpu
        self.answers = {key: self._answer(key, regs) for key, regs in native.items()}
        self.answers.update(self._identity())
        ext = self.answers.get((0x80000001, 0))
        if ext is not None and cpu.vendor == "AuthenticAMD":
            mirrored = self.answers[(1, 0)][EDX] & AMD_MIRRORED_EDX
            self.answers[(0x80000001, 0)] = (cpu.signature(), ext[EBX], ext[ECX],
                                             ext[EDX] & ~AMD_MIRRORED_EDX | mirrored)
        if cpu.sgx is not None:
            self.answers.update(sgx_leaves(cpu.sgx))
            max_basic = self.answers[(0, 0)]
            self.answers[(0, 0)] = (max(max_basic[EAX], 0x12),) + max_basic[1:]
        for sub in range(SUBLEAF_LEAVES[0xD]):
            self.answers[(0xD, sub)] = (0, 0, 0, 0)

    def __call__(self, leaf: int, subleaf: int) -> Regs4:
        """CPUID(leaf, subleaf); a leaf past the maximum reads as zeros (AMD's rule)."""
        if leaf not in SUBLEAF_LEAVES:
            subleaf = 0
        return self.answers.get((leaf, subleaf), (0, 0, 0, 0))

    def _answer(self, key: tuple[int, int], regs: Regs4) -> Regs4:
        """The emulator's answer with each named feature bit the host lacks cleared,
        and the bits this module decides itself set or cleared."""
        out = list(regs)
        for reg in range(4):
            names = FEATURE_NAMES.get((*key, reg))
            if names is not None:
                out[reg] &= ~sum(1 << bit for bit, name in names.items()
                                 if name not in self.cpu.flags)
        if key == (1, 0):
            out[ECX] &= ~(XSAVE | OSXSAVE)
        elif key == (7, 0):
            out[ECX] = out[ECX] & ~(PKU | OSPKE | SGX_LC) | \
                ((PKU | OSPKE) if self.cpu.pkeys else 0) | \
                (SGX_LC if self.cpu.sgx is not None and self.cpu.sgx.flc else 0)
            out[EBX] = out[EBX] & ~SGX | (SGX if self.cpu.sgx is not None else 0)
        return (out[EAX], out[EBX], out[ECX], out[EDX])

    def _identity(self) -> dict[tuple[int, int], Regs4]:
        """Leaf 0's vendor string, leaf 1's signature, the brand string leaves."""
        cpu = self.cpu
        vendor = cpu.vendor.encode().ljust(12, b"\0")[:12]
        b, d, c = (int.from_bytes(vendor[i:i + 4], "little") for i in (0, 4, 8))
        out = {(0, 0): (self.answers.get((0, 0), (0xD,))[EAX], b, c, d)}
        leaf1 = self.answers.get((1, 0), (0, 0, 0, 0))
        out[(1, 0)] = (cpu.signature(), leaf1[EBX], leaf1[ECX], leaf1[EDX])
        brand = cpu.brand.encode()[:47].ljust(48, b"\0")
        for i in range(3):
            words = brand[16 * i:16 * i + 16]
            out[(0x80000002 + i, 0)] = tuple(int.from_bytes(words[j:j + 4], "little")
                                             for j in (0, 4, 8, 12))  # type: ignore[assignment]
        return out


def sgx_leaves(sgx: SgxCpu) -> dict[tuple[int, int], Regs4]:
    """CPUID leaf 0x12 for an SgxCpu (SDM Vol. 2A, CPUID, leaf 12H)."""
    max_size = sgx.max_enclave_size_32 | (sgx.max_enclave_size_64 << 8)
    epc_size = sgx.epc_pages << 12
    return {
        (0x12, 0): (1 | (2 if sgx.sgx2 else 0), sgx.miscselect, 0, max_size),
        (0x12, 1): (sgx.attributes & 0xFFFFFFFF, sgx.attributes >> 32,
                    sgx.xfrm & 0xFFFFFFFF, sgx.xfrm >> 32),
        (0x12, 2): (EPC_BASE | 1, 0, (epc_size & 0xFFFFF000) | 1, epc_size >> 32),
        (0x12, 3): (0, 0, 0, 0),
    }


@functools.cache
def unicorn_cpuid(uc_model: str) -> dict[tuple[int, int], Regs4]:
    """Every basic and extended leaf the Unicorn CPU model `uc_model` answers, asked of
    a scratch core (once per model and Python process: about 10 ms)."""
    import unicorn
    from unicorn import x86_const

    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    uc.ctl_set_cpu_model(getattr(x86_const, uc_model))
    code = b"\x0f\xa2"                  # cpuid
    uc.mem_map(0x1000, 0x1000)
    uc.mem_write(0x1000, code)
    regs = (x86_const.UC_X86_REG_EAX, x86_const.UC_X86_REG_EBX, x86_const.UC_X86_REG_ECX,
            x86_const.UC_X86_REG_EDX)

    def ask(leaf: int, subleaf: int) -> Regs4:
        uc.reg_write(regs[EAX], leaf)
        uc.reg_write(regs[ECX], subleaf)
        uc.emu_start(0x1000, 0x1000 + len(code))
        a, b, c, d = (uc.reg_read(r) for r in regs)
        return (a, b, c, d)

    out: dict[tuple[int, int], Regs4] = {}
    for base in (0, 0x80000000):
        top = ask(base, 0)[EAX]
        for leaf in range(base, top + 1):
            for sub in range(SUBLEAF_LEAVES.get(leaf, 1)):
                out[(leaf, sub)] = ask(leaf, sub)
    return out


def cpuid_for(cpu: CpuModel) -> Cpuid:
    """The CPUID answers of `cpu` as its Unicorn model executes it."""
    return Cpuid(cpu, unicorn_cpuid(cpu.uc_model))
