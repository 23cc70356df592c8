"""SIGSTRUCT as the processor reads it: layout, MRSIGNER, and the signature check EINIT
makes (RSA-3072, e = 3, with the Q1/Q2 helper values).

Layout: spec/sgx-driver.md §1.4 (kernel arch/x86/include/asm/sgx.h struct
sgx_sigstruct, SDM Vol. 3D "SIGSTRUCT"). The Q1/Q2 values: §4.3 (what
tools/testing/selftests/sgx/sigstruct.c calc_q1q2 does).
Verification order: §3.2.4 steps 2-3 (EINIT): structure sanity first
(SGX_INVALID_SIG_STRUCT), then the signature (SGX_INVALID_SIGNATURE). The
measurement, attribute and launch-token steps of EINIT belong to the emulated CPU,
which calls ``verify()`` first. Building and signing one is the signer's business
(vmsim/enclave/signing.py).

Big numbers (modulus, signature, q1, q2) are stored little endian, as in the
structure; ``Sigstruct`` keeps them as raw 384-byte strings so that any SIGSTRUCT,
even a malformed one, round-trips through ``unpack``/``pack`` byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from dataclasses import dataclass

from .defs import (
    SGX_ATTR_MODE64BIT,
    SGX_INVALID_SIG_STRUCT,
    SGX_INVALID_SIGNATURE,
    SIGSTRUCT_SIZE,
)

SGX_MODULUS_SIZE = 384
SIGSTRUCT_EXPONENT = 3
# HEADER = 06000000E10000000000010000000000h and HEADER2 =
# 01010000600000006000000001000000h, as the bytes stored at offsets 0 and 24.
SIGSTRUCT_HEADER = bytes.fromhex("06000000e10000000000010000000000")
SIGSTRUCT_HEADER2 = bytes.fromhex("01010000600000006000000001000000")
SIGSTRUCT_VENDORS = (0x0000, 0x8086)
# EMSA-PKCS1-v1_5 DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1).
SHA256_DIGESTINFO = bytes.fromhex("3031300d060960864801650304020105000420")

# (name, struct code, offset) — offsets are asserted against the table in §1.4.
_LAYOUT = (
    ("header", "16s", 0),
    ("vendor", "I", 16),
    ("date", "I", 20),
    ("header2", "16s", 24),
    ("swdefined", "I", 40),
    ("reserved1", "84s", 44),
    ("modulus", "384s", 128),
    ("exponent", "I", 512),
    ("signature", "384s", 516),
    ("miscselect", "I", 900),
    ("misc_mask", "I", 904),
    ("reserved2", "20s", 908),
    ("attributes", "Q", 928),
    ("xfrm", "Q", 936),
    ("attributes_mask", "Q", 944),
    ("xfrm_mask", "Q", 952),
    ("mrenclave", "32s", 960),
    ("reserved3", "32s", 992),
    ("isvprodid", "H", 1024),
    ("isvsvn", "H", 1026),
    ("reserved4", "12s", 1028),
    ("q1", "384s", 1040),
    ("q2", "384s", 1424),
)
_STRUCT = struct.Struct("<" + "".join(code for _, code, _ in _LAYOUT))
assert _STRUCT.size == SIGSTRUCT_SIZE
assert all(struct.calcsize("<" + "".join(c for _, c, _ in _LAYOUT[:i])) == off
           for i, (_, _, off) in enumerate(_LAYOUT))

SIGNED_HEADER = slice(0, 128)        # header: HEADER .. reserved1
SIGNED_BODY = slice(900, 1028)       # body: miscselect .. isvsvn
RESERVED_FIELDS = ("reserved1", "reserved2", "reserved3", "reserved4")


def _zeros(n: int):
    return dataclasses.field(default=bytes(n))


@dataclass
class Sigstruct:
    """One SIGSTRUCT (1808 bytes). Field names follow the kernel's
    ``struct sgx_sigstruct`` (header/body flattened); defaults are the kselftest's
    (§4.3): MODE64BIT, xfrm 3, all masks 0, vendor 0, unsigned."""

    header: bytes = SIGSTRUCT_HEADER
    vendor: int = 0
    date: int = 0
    header2: bytes = SIGSTRUCT_HEADER2
    swdefined: int = 0
    reserved1: bytes = _zeros(84)
    modulus: bytes = _zeros(SGX_MODULUS_SIZE)
    exponent: int = SIGSTRUCT_EXPONENT
    signature: bytes = _zeros(SGX_MODULUS_SIZE)
    miscselect: int = 0
    misc_mask: int = 0
    reserved2: bytes = _zeros(20)
    attributes: int = SGX_ATTR_MODE64BIT
    xfrm: int = 3
    attributes_mask: int = 0
    xfrm_mask: int = 0
    mrenclave: bytes = _zeros(32)
    reserved3: bytes = _zeros(32)
    isvprodid: int = 0
    isvsvn: int = 0
    reserved4: bytes = _zeros(12)
    q1: bytes = _zeros(SGX_MODULUS_SIZE)
    q2: bytes = _zeros(SGX_MODULUS_SIZE)

    def pack(self) -> bytes:
        """The 1808-byte structure. ValueError names the field that does not fit."""
        values: list[bytes | int] = []
        for name, code, _ in _LAYOUT:
            v = getattr(self, name)
            if code.endswith("s"):
                want = int(code[:-1])
                if not isinstance(v, (bytes, bytearray)) or len(v) != want:
                    raise ValueError(f"SIGSTRUCT.{name} must be {want} bytes")
                values.append(bytes(v))
            else:
                bits = struct.calcsize(code) * 8
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << bits:
                    raise ValueError(f"SIGSTRUCT.{name} {v!r} does not fit in {bits} bits")
                values.append(v)
        return _STRUCT.pack(*values)

    @classmethod
    def unpack(cls, data: bytes) -> Sigstruct:
        if len(data) != SIGSTRUCT_SIZE:
            raise ValueError(f"a SIGSTRUCT is {SIGSTRUCT_SIZE} bytes, got {len(data)}")
        return cls(*_STRUCT.unpack(bytes(data)))

    def signed_bytes(self) -> bytes:
        """The 256 signed bytes: header [0, 128) ‖ body [900, 1028)."""
        return signed_bytes(self.pack())

    def mrsigner(self) -> bytes:
        return mrsigner(self.modulus)

    @property
    def modulus_int(self) -> int:
        return int.from_bytes(self.modulus, "little")

    @property
    def signature_int(self) -> int:
        return int.from_bytes(self.signature, "little")


def signed_bytes(raw: bytes) -> bytes:
    """The signed part of a packed SIGSTRUCT."""
    if len(raw) != SIGSTRUCT_SIZE:
        raise ValueError(f"a SIGSTRUCT is {SIGSTRUCT_SIZE} bytes, got {len(raw)}")
    return bytes(raw[SIGNED_HEADER]) + bytes(raw[SIGNED_BODY])


def mrsigner(modulus_le: bytes) -> bytes:
    """MRSIGNER = SHA-256 over the 384 stored (little-endian) modulus bytes (§4.2;
    the kernel hashes the same bytes for the IA32_SGXLEPUBKEYHASH MSRs)."""
    if len(modulus_le) != SGX_MODULUS_SIZE:
        raise ValueError(f"the modulus is {SGX_MODULUS_SIZE} bytes, got {len(modulus_le)}")
    return hashlib.sha256(bytes(modulus_le)).digest()


def q1q2(s: int, n: int) -> tuple[int, int]:
    """The helper values EINIT uses to check s^3 mod n (§4.3):
    q1 = floor(s^2 / n), q2 = floor(s * (s^2 mod n) / n)."""
    q1 = s * s // n
    q2 = s * (s * s % n) // n
    return q1, q2


def pkcs1_v15_sha256(message: bytes, k: int = SGX_MODULUS_SIZE) -> int:
    """EMSA-PKCS1-v1_5 encoding of SHA-256(message) for a k-byte modulus, as an int:
    00 01 FF..FF 00 ‖ DigestInfo ‖ hash."""
    t = SHA256_DIGESTINFO + hashlib.sha256(message).digest()
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return int.from_bytes(em, "big")


# --- verifying (EINIT) ---

def diagnose(sigstruct: bytes | Sigstruct) -> tuple[int, str]:
    """``verify()`` with the reason: (0, "ok") or (SGX error code, why)."""
    raw = sigstruct.pack() if isinstance(sigstruct, Sigstruct) else bytes(sigstruct)
    if len(raw) != SIGSTRUCT_SIZE:
        raise ValueError(f"a SIGSTRUCT is {SIGSTRUCT_SIZE} bytes, got {len(raw)}")
    sig = Sigstruct.unpack(raw)

    # §3.2.4 step 2: structure sanity -> SGX_INVALID_SIG_STRUCT
    if sig.header != SIGSTRUCT_HEADER:
        return SGX_INVALID_SIG_STRUCT, "HEADER is not the architectural constant"
    if sig.vendor not in SIGSTRUCT_VENDORS:
        return SGX_INVALID_SIG_STRUCT, f"VENDOR {sig.vendor:#x} is neither 0 nor 0x8086"
    if sig.header2 != SIGSTRUCT_HEADER2:
        return SGX_INVALID_SIG_STRUCT, "HEADER2 is not the architectural constant"
    if sig.exponent != SIGSTRUCT_EXPONENT:
        return SGX_INVALID_SIG_STRUCT, f"EXPONENT is {sig.exponent}, not 3"
    for name in RESERVED_FIELDS:
        if any(getattr(sig, name)):
            return SGX_INVALID_SIG_STRUCT, f"{name} is not zero"

    # §3.2.4 step 3: RSA-3072 check with the q1/q2 helpers -> SGX_INVALID_SIGNATURE
    n, s = sig.modulus_int, sig.signature_int
    if n < 2 or s >= n:
        return SGX_INVALID_SIGNATURE, "signature is not smaller than the modulus"
    q1, q2 = q1q2(s, n)
    if int.from_bytes(sig.q1, "little") != q1 or int.from_bytes(sig.q2, "little") != q2:
        return SGX_INVALID_SIGNATURE, "Q1/Q2 do not match the signature and modulus"
    if pow(s, SIGSTRUCT_EXPONENT, n) != pkcs1_v15_sha256(signed_bytes(raw)):
        return SGX_INVALID_SIGNATURE, "s^3 mod n is not the PKCS#1 v1.5 SHA-256 encoding"
    return 0, "ok"


def verify(sigstruct: bytes | Sigstruct) -> int:
    """What EINIT's SIGSTRUCT checks return: 0, SGX_INVALID_SIG_STRUCT (header,
    header2, vendor, exponent, non-zero reserved fields) or SGX_INVALID_SIGNATURE
    (q1/q2 inconsistent, or s^3 mod n is not the PKCS#1 v1.5 encoding of the
    signed bytes). ValueError if the input is not 1808 bytes."""
    return diagnose(sigstruct)[0]
