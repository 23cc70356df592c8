"""MRENCLAVE, SIGSTRUCT and enclave images (vmsim/drivers/sgx/{measure,sigstruct,
image,tools}.py).

Expectations come from spec/sgx-driver.md: §4.1 record layouts and byte examples,
§4.5 test vectors V0-V3 and the MRSIGNER vector (B), §1.4 SIGSTRUCT/TCS layouts,
§3.2.4 EINIT's SIGSTRUCT checks and their order, §4.3 signing (q1/q2), §5.a the
kselftest loader's ELF handling.
"""

import dataclasses
import hashlib
import os
import shutil
import struct
import subprocess

import pytest

from vmsim.arch.x86.sgx import measure as M
from vmsim.arch.x86.sgx import sigstruct as S
from vmsim.arch.x86.sgx.defs import (
    SGX_ATTR_DEBUG,
    SGX_ATTR_MODE64BIT,
    SGX_INVALID_SIG_STRUCT,
    SGX_INVALID_SIGNATURE,
    SGX_SECINFO_REG,
    SGX_SECINFO_TCS,
)
from vmsim.cli.main import main
from vmsim.enclave import signing
from vmsim.enclave.image import EnclaveImage
from vmsim.enclave.segment import ImageError, Segment, decode_tcs, encode_tcs, tcs_after_eadd

P = 4096
ZERO = bytes(P)
RAMP = bytes(i & 0xFF for i in range(P))

# spec §4.5 (C)
V0 = "9e197c8837c6d65632dbdd59cd7df4f1a25b68d8e4e5eb6ca3b20b05311fecb8"
V1 = "3217b9b9bb6c98d6d47a85368257a9beb5ac3a008d6dd3972a1ff0f5a5d7029b"
V2 = "e253c00aa1d7c21cb976f448155257aafb9c119ab570cafbe4198d42754e82c9"
V3 = "0d6d2d29ffa8e9635abdae481af230f84fa848707787377e5e0bde7592357543"

V1_PAGES = [(0x0, ZERO, 0x100, True), (0x1000, ZERO, 0x203, True)]
V2_PAGES = [(0x0, ZERO, 0x100, True), (0x1000, ZERO, 0x203, False)]
V3_PAGES = [(0x0, RAMP, 0x205, True), (0x1000, ZERO, 0x203, False),
            (0x2000, ZERO, 0x100, True)]

V3_TEXT = """\
# spec/sgx-driver.md §4.5 vector V3
size = 0x4000
ssa_frame_size = 2
segment code  offset=0x0000 pages=1 perms=RX fill=ramp measured
segment data  offset=0x1000 pages=1 perms=RW unmeasured
segment tcs   offset=0x2000 pages=1 type=TCS measured
"""


# ---------------------------------------------------------------- §4.1 records

def test_record_bytes_match_spec_examples():
    assert M.ecreate_record(0x2000, 1) == bytes.fromhex(
        "4543524541544500" "01000000" "0020000000000000") + bytes(44)
    assert M.eadd_record(0x1000, 0x203) == bytes.fromhex(
        "4541444400000000" "0010000000000000" "0302000000000000") + bytes(40)
    assert M.eextend_header(0x1100) == bytes.fromhex(
        "45455854454e4400" "0011000000000000") + bytes(48)


def test_record_tags_spell_the_leaf_names():
    assert M.ecreate_record(0, 0)[:8] == b"ECREATE\0"
    assert M.eadd_record(0, 0)[:8] == b"EADD\0\0\0\0"
    assert M.eextend_header(0)[:8] == b"EEXTEND\0"
    assert {len(M.ecreate_record(1, 1)), len(M.eadd_record(0, 0)),
            len(M.eextend_header(0))} == {64}


def test_records_reject_values_that_do_not_fit():
    with pytest.raises(ValueError):
        M.ecreate_record(0x2000, 1 << 32)
    with pytest.raises(ValueError):
        M.eadd_record(-4096, 0x203)


# ---------------------------------------------------------------- vectors V0-V3

@pytest.mark.parametrize("size,ssa,pages,want", [
    (0x2000, 1, [], V0),
    (0x2000, 1, V1_PAGES, V1),
    (0x2000, 1, V2_PAGES, V2),
    (0x4000, 2, V3_PAGES, V3),
], ids=["V0", "V1", "V2", "V3"])
def test_vectors(size, ssa, pages, want):
    assert M.mrenclave(size, ssa, pages).hex() == want


def test_v1_record_by_record_equals_one_sha256_over_records():
    """MRENCLAVE is a plain SHA-256 over the concatenated records."""
    blob = M.ecreate_record(0x2000, 1)
    for off, data, flags, _measured in V1_PAGES:
        blob += M.eadd_record(off, flags)
        for i in range(0, P, 256):
            blob += M.eextend_header(off + i) + data[i:i + 256]
    assert hashlib.sha256(blob).hexdigest() == V1


def test_measurement_leaf_by_leaf_as_the_cpu_does_it():
    """What the emulated CPU does: ECREATE, EADD, 16 x EEXTEND per measured page."""
    m = M.Measurement(0x4000, 2)
    m.eadd(0x0, 0x205)
    for i in range(0, P, 256):
        m.eextend(i, RAMP[i:i + 256])
    m.eadd(0x1000, 0x203)
    m.add_page(0x2000, ZERO, 0x100, measured=True)
    assert m.digest().hex() == V3


def test_digest_does_not_disturb_the_running_state():
    m = M.Measurement(0x2000, 1)
    assert m.digest().hex() == V0
    assert m.digest().hex() == V0            # asking twice is harmless
    m.add_page(0, ZERO, 0x100)
    m.add_page(0x1000, ZERO, 0x203)
    assert m.digest().hex() == V1
    assert m.hexdigest() == V1


def test_copy_is_independent():
    m = M.Measurement(0x2000, 1)
    m.add_page(0, ZERO, 0x100)
    c = m.copy()
    c.add_page(0x1000, ZERO, 0x203, measured=False)
    m.add_page(0x1000, ZERO, 0x203, measured=True)
    assert (m.hexdigest(), c.hexdigest()) == (V1, V2)


def test_unmeasured_page_contributes_only_its_eadd():
    m = M.Measurement(0x2000, 1, log=True)
    m.add_page(0x1000, b"\xff" * P, 0x203, measured=False)
    n = M.Measurement(0x2000, 1)
    n.eadd(0x1000, 0x203)
    assert m.digest() == n.digest()
    assert [r.kind for r in m.records] == ["ECREATE", "EADD"]


def test_measurement_log():
    m = M.Measurement(0x2000, 1, log=True)
    m.add_page(0x1000, ZERO, 0x203)
    kinds = [r.kind for r in m.records]
    assert kinds == ["ECREATE", "EADD"] + ["EEXTEND"] * 16
    assert [r.offset for r in m.records[2:]] == list(range(0x1000, 0x2000, 0x100))
    assert M.Measurement(0x2000, 1).records is None


@pytest.mark.parametrize("call", [
    lambda m: m.eadd(0x800, 0x203),
    lambda m: m.eextend(0x80, bytes(256)),
    lambda m: m.eextend(0x100, bytes(255)),
    lambda m: m.add_page(0, bytes(100), 0x203),
    lambda m: m.add_pages(0, bytes(P + 1), 0x203),
])
def test_measurement_rejects_malformed_updates(call):
    with pytest.raises(ValueError):
        call(M.Measurement(0x2000, 1))


def test_mrenclave_accepts_multi_page_runs():
    assert M.mrenclave(0x2000, 1, [(0, ZERO * 2, 0x203, True)]) == \
        M.mrenclave(0x2000, 1, [(0, ZERO, 0x203, True), (0x1000, ZERO, 0x203, True)])


# ---------------------------------------------------------------- SIGSTRUCT layout

def test_sigstruct_layout_offsets():
    s = S.Sigstruct(vendor=0x8086, date=0x20261127, swdefined=0x11223344,
                    exponent=3, miscselect=1, misc_mask=0xFFFFFFFF,
                    attributes=0x6, xfrm=0x3, attributes_mask=0xAA, xfrm_mask=0xBB,
                    mrenclave=bytes(range(32)), isvprodid=0x1234, isvsvn=0x5678,
                    modulus=b"\x01" * 384, signature=b"\x02" * 384,
                    q1=b"\x03" * 384, q2=b"\x04" * 384)
    raw = s.pack()
    assert len(raw) == 1808

    def u(fmt, off):
        return struct.unpack_from("<" + fmt, raw, off)[0]
    assert raw[0:16] == bytes.fromhex("06000000e10000000000010000000000")
    assert u("I", 16) == 0x8086 and u("I", 20) == 0x20261127
    assert raw[24:40] == bytes.fromhex("01010000600000006000000001000000")
    assert u("I", 40) == 0x11223344
    assert raw[44:128] == bytes(84)
    assert raw[128:512] == b"\x01" * 384 and u("I", 512) == 3
    assert raw[516:900] == b"\x02" * 384
    assert (u("I", 900), u("I", 904)) == (1, 0xFFFFFFFF)
    assert raw[908:928] == bytes(20)
    assert (u("Q", 928), u("Q", 936), u("Q", 944), u("Q", 952)) == (6, 3, 0xAA, 0xBB)
    assert raw[960:992] == bytes(range(32)) and raw[992:1024] == bytes(32)
    assert (u("H", 1024), u("H", 1026)) == (0x1234, 0x5678)
    assert raw[1028:1040] == bytes(12)
    assert raw[1040:1424] == b"\x03" * 384 and raw[1424:1808] == b"\x04" * 384


def test_sigstruct_round_trip_any_bytes():
    raw = bytes((i * 7 + 3) & 0xFF for i in range(1808))
    s = S.Sigstruct.unpack(raw)
    assert s.pack() == raw
    assert S.Sigstruct.unpack(s.pack()) == s


def test_sigstruct_signed_bytes():
    s = signing.build(bytes(range(32)), isvsvn=7)
    raw = s.pack()
    sb = s.signed_bytes()
    assert len(sb) == 256
    assert sb == raw[0:128] + raw[900:1028]
    assert sb[128 + 60:128 + 92] == bytes(range(32))       # body.mrenclave


def test_sigstruct_defaults_are_the_kselftests():
    s = signing.build(bytes(32))
    assert (s.attributes, s.xfrm, s.attributes_mask, s.xfrm_mask, s.miscselect,
            s.misc_mask, s.isvprodid, s.isvsvn, s.vendor, s.date, s.exponent) == \
        (SGX_ATTR_MODE64BIT, 3, 0, 0, 0, 0, 0, 0, 0, 0, 3)


@pytest.mark.parametrize("bad", [
    dict(isvprodid=1 << 16), dict(miscselect=-1), dict(attributes=1 << 64),
])
def test_build_range_checks(bad):
    with pytest.raises(ValueError):
        signing.build(bytes(32), **bad)


def test_pack_and_unpack_reject_wrong_sizes():
    with pytest.raises(ValueError):
        signing.build(bytes(31))
    with pytest.raises(ValueError):
        S.Sigstruct(modulus=bytes(383)).pack()
    with pytest.raises(ValueError):
        S.Sigstruct.unpack(bytes(1807))
    with pytest.raises(ValueError):
        S.verify(bytes(1809))


# ---------------------------------------------------------------- signing

@pytest.fixture(scope="module")
def key():
    return signing.generate_key()


@pytest.fixture(scope="module")
def signed(key):
    return signing.sign(signing.build(bytes.fromhex(V1), isvprodid=1, isvsvn=2, date=0x20261127), key)


def test_generated_key_is_rsa3072_e3(key):
    assert key.key_size == 3072
    assert key.public_key().public_numbers().e == 3


def test_signature_made_here_verifies(signed, key):
    assert S.verify(signed.pack()) == 0
    assert S.verify(signed) == 0
    assert S.diagnose(signed) == (0, "ok")
    assert signed.mrenclave.hex() == V1
    assert signed.modulus_int == key.public_key().public_numbers().n
    assert signed.exponent == 3


def test_signature_checks_out_with_an_independent_verifier(signed, key):
    """cryptography's own PKCS#1 v1.5 verify over the big-endian signature."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    key.public_key().verify(signed.signature[::-1], signed.signed_bytes(),
                            padding.PKCS1v15(), hashes.SHA256())


def test_q1_q2_follow_the_formulas(signed):
    n, s = signed.modulus_int, signed.signature_int
    q1 = int.from_bytes(signed.q1, "little")
    q2 = int.from_bytes(signed.q2, "little")
    assert q1 == s * s // n
    assert q2 == (s * s * s - q1 * s * n) // n


def test_sign_does_not_modify_its_argument(key):
    unsigned = signing.build(bytes(32))
    before = dataclasses.replace(unsigned)
    signing.sign(unsigned, key)
    assert unsigned == before


def test_mrsigner_is_sha256_of_the_le_modulus(signed):
    assert S.mrsigner(signed.modulus) == hashlib.sha256(signed.modulus).digest()
    assert signed.mrsigner() == S.mrsigner(signed.modulus)
    with pytest.raises(ValueError):
        S.mrsigner(bytes(383))


# The PUBLIC modulus (big-endian hex) of the Linux kselftest signing key,
# tools/testing/selftests/sgx/sign_key.pem in torvalds/linux (also enarx/sgx
# tests/encl.pem). Only the modulus is kept here, never the private key.
KSELFTEST_MODULUS_BE = (
    "a5a9466eaed0faeb0cf7508fb64b2edc3f9bd0fadcf200052fa82b3379a0f390"
    "39071f1571f3173e0b6bc3c1181704310c0bf3656c25fbd55f397d040ab15106"
    "438770e886d129c00cdf3e14b8f55223544306e94ba3b384d5ae45c49b1ab692"
    "3b2525565574c8c412bdec32cc692539a5c17b7d0026acc805cf107dd4b12ae3"
    "fcaecd1981aea4fc197bde8b2b60a07220b253514799aa32c446c13a19e6ec77"
    "36d680a9fca95aa7838652e3230d83a2de4651f7fbd0883e08388f0a522c7729"
    "eddab6a93201f5ad2d19ef5aca9fb915bb9ca41e94ede3e895dd0479137a4652"
    "460c5f642fddeff0fe72933e46e60619da0d0ad57dac1c8595e21bb13e0bf93d"
    "781dc9061b2beea896a8f4779ae362ec17e7b52593a4aba0f4b553a51b7428c6"
    "e6dc4cf813465345690f4661ac8470d2579076735c08ef6c4c9b889d9ae061a7"
    "12549eee9ad07eb82b7ebb351eb1cfa5fb13d1600fbd7b5e252e4669ec0026a3"
    "d16f2fcd7a5c3234f5d79e849de2fcb98728244db6ea82e53a6b46317052be9d")


def test_mrsigner_vector_of_the_kselftest_key():
    """spec §4.5 (B): MRSIGNER = SHA-256 of the 384 little-endian modulus bytes."""
    n = int(KSELFTEST_MODULUS_BE, 16)
    assert n.bit_length() == 3072
    assert S.mrsigner(n.to_bytes(384, "little")).hex() == \
        "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4"


def _flip(raw, off, bit=0):
    b = bytearray(raw)
    b[off] ^= 1 << bit
    return bytes(b)


@pytest.mark.parametrize("off", [
    960,        # body.mrenclave
    1026,       # body.isvsvn
    928,        # body.attributes
    20,         # header.date (signed, but not a checked constant)
    40,         # header.swdefined
], ids=["mrenclave", "isvsvn", "attributes", "date", "swdefined"])
def test_flipped_signed_bit_is_invalid_signature(signed, off):
    assert S.verify(_flip(signed.pack(), off)) == SGX_INVALID_SIGNATURE


def test_flipped_signature_bit_is_invalid_signature(signed):
    assert S.verify(_flip(signed.pack(), 516 + 100)) == SGX_INVALID_SIGNATURE


def test_flipped_modulus_bit_is_invalid_signature(signed):
    assert S.verify(_flip(signed.pack(), 128 + 5)) == SGX_INVALID_SIGNATURE


@pytest.mark.parametrize("field", ["q1", "q2"])
def test_wrong_q1_q2_is_invalid_signature(signed, field):
    q = int.from_bytes(getattr(signed, field), "little") + 1
    bad = dataclasses.replace(signed, **{field: q.to_bytes(384, "little")})
    assert S.diagnose(bad) == (SGX_INVALID_SIGNATURE,
                               "Q1/Q2 do not match the signature and modulus")


def test_signature_not_below_modulus_is_invalid_signature(signed):
    bad = dataclasses.replace(signed, signature=signed.modulus)
    assert S.verify(bad) == SGX_INVALID_SIGNATURE


def test_unsigned_sigstruct_is_invalid_signature():
    assert S.verify(signing.build(bytes(32))) == SGX_INVALID_SIGNATURE


@pytest.mark.parametrize("change", [
    dict(header=bytes(16)),
    dict(header2=bytes.fromhex("01010000600000006000000001000001")),
    dict(vendor=0x1234),
    dict(exponent=65537),
    dict(exponent=0),
    dict(reserved1=b"\x01" + bytes(83)),
    dict(reserved2=bytes(19) + b"\x80"),
    dict(reserved3=bytes(16) + b"\x01" + bytes(15)),
    dict(reserved4=bytes(11) + b"\x01"),
], ids=["header", "header2", "vendor", "exponent65537", "exponent0", "reserved1",
        "reserved2", "reserved3", "reserved4"])
def test_malformed_structure_is_invalid_sig_struct(signed, change):
    assert S.verify(dataclasses.replace(signed, **change)) == SGX_INVALID_SIG_STRUCT


def test_structure_checked_before_signature(signed):
    """§3.2.4: step 2 (INVALID_SIG_STRUCT) comes before step 3 (INVALID_SIGNATURE)."""
    bad = dataclasses.replace(signed, exponent=5, q1=bytes(384), mrenclave=bytes(32))
    assert S.verify(bad) == SGX_INVALID_SIG_STRUCT


def test_vendor_8086_signed_verifies(key):
    s = signing.sign(signing.build(bytes(32), vendor=0x8086), key)
    assert S.verify(s) == 0


def test_resigning_a_tampered_body_verifies_again(signed, key):
    tampered = dataclasses.replace(signed, isvsvn=signed.isvsvn + 1)
    assert S.verify(tampered) == SGX_INVALID_SIGNATURE
    assert S.verify(signing.sign(tampered, key)) == 0


def test_pkcs1_encoding_layout():
    em = S.pkcs1_v15_sha256(b"abc").to_bytes(384, "big")
    assert em[:2] == b"\x00\x01" and em[2:332] == b"\xff" * 330 and em[332] == 0
    assert em[333:352] == bytes.fromhex("3031300d060960864801650304020105000420")
    assert em[352:] == hashlib.sha256(b"abc").digest()


def test_key_pem_round_trip(key):
    pem = signing.key_to_pem(key)
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    again = signing.load_key(pem)
    assert signing.public_modulus(again) == signing.public_modulus(key)
    assert signing.load_key(pem.decode()).key_size == 3072


def test_load_key_refuses_unsuitable_keys():
    from cryptography.hazmat.primitives.asymmetric import rsa
    with pytest.raises(ValueError, match="exponent is 65537"):
        signing.load_key(signing.key_to_pem(rsa.generate_private_key(65537, 3072)))
    with pytest.raises(ValueError, match="2048 bits"):
        signing.load_key(signing.key_to_pem(rsa.generate_private_key(3, 2048)))
    with pytest.raises(ValueError, match="cannot read PEM"):
        signing.load_key(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="cannot read PEM"):
        signing.load_key("not a key")


# ---------------------------------------------------------------- TCS layout

def test_tcs_layout():
    page = encode_tcs(flags=1, ossa=0x5000, nssa=2, oentry=0x1234, ofsbase=0x10,
                      ogsbase=0x20, fslimit=0xFFF, gslimit=0x1FFF)
    assert len(page) == P
    f = struct.unpack_from("<QQQIIQQQQII", page)
    # state, flags, ossa, cssa, nssa, oentry, aep, ofsbase, ogsbase, fslimit, gslimit
    assert f == (0, 1, 0x5000, 0, 2, 0x1234, 0, 0x10, 0x20, 0xFFF, 0x1FFF)
    assert page[72:] == bytes(4024)
    assert decode_tcs(page)["oentry"] == 0x1234
    assert decode_tcs(b"\x01" + page[1:]) is None          # STATE is the CPU's
    assert decode_tcs(page[:-1] + b"\x01") is None         # reserved bytes


def test_tcs_is_measured_as_eadd_leaves_it():
    """§3.2.2/§3.2.3: EADD zeroes STATE, CSSA, AEP and clears FLAGS.DBGOPTIN before
    the EEXTENDs read the page; the image's MRENCLAVE must be the CPU's."""
    plain = encode_tcs(ossa=0x2000, oentry=0x1000)
    dirty = bytearray(encode_tcs(flags=1, ossa=0x2000, oentry=0x1000))
    dirty[0:8] = b"\x07" * 8                                   # STATE
    dirty[24:28] = b"\x01\x00\x00\x00"                          # CSSA
    dirty[40:48] = b"\xaa" * 8                                 # AEP
    assert tcs_after_eadd(bytes(dirty)) == plain

    def image(tcs_page, flags=SGX_SECINFO_TCS):
        return EnclaveImage(size=0x4000, segments=[Segment(0, tcs_page, flags, 3)])
    assert image(bytes(dirty)).measure() == image(plain).measure() == \
        M.mrenclave(0x4000, 1, [(0, plain, 0x100, True)])
    # a REG page is measured byte for byte
    assert image(bytes(dirty), SGX_SECINFO_REG | 3).measure() != \
        image(plain, SGX_SECINFO_REG | 3).measure()
    with_flag = EnclaveImage.from_text("segment t type=TCS pages=1 ossa=0x2000 "
                                       "oentry=0x1000 flags=1\nsize = 0x4000\n")
    assert decode_tcs(with_flag.segments[0].data)["flags"] == 1     # handed to EADD
    assert with_flag.measure() == image(plain).measure()             # measured as 0


# ---------------------------------------------------------------- text images

@pytest.mark.parametrize("text,want", [
    ("size = 0x2000\n", V0),
    ("size=0x2000\nsegment t type=TCS pages=1\nsegment d perms=RW pages=1\n", V1),
    ("segment t type=TCS pages=1 measured\nsegment d perms=RW pages=1 unmeasured\n"
     "size = 8192\n", V2),
    (V3_TEXT, V3),
], ids=["V0", "V1", "V2", "V3"])
def test_text_images_reproduce_the_vectors(text, want):
    assert EnclaveImage.from_text(text).measure().hex() == want


def test_doc_example_parses(tmp_path):
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs",
                            "enclave-image-format.md")).read()
    example = doc.split("```\n", 2)[1]
    (tmp_path / "data.hex").write_text("# first bytes\n88 77 66 55\n44:33:22:11\n")
    (tmp_path / "encl.img").write_text(example)
    im = EnclaveImage.load(str(tmp_path / "encl.img"))
    assert im.size == 0x8000 and im.attributes == SGX_ATTR_MODE64BIT | SGX_ATTR_DEBUG
    assert [s.name for s in im.segments] == ["tcs", "text", "data", "ssa", "heap"]
    assert [s.offset for s in im.segments] == [0, 0x2000, 0x4000, 0x5000, 0x7000]
    tcs, text, data, ssa, heap = im.segments
    assert tcs.secinfo_flags == SGX_SECINFO_TCS and tcs.prot == 3
    assert decode_tcs(tcs.data[:P])["ossa"] == 0x5000
    assert decode_tcs(tcs.data[P:])["ossa"] == 0x6000      # its own SSA frame
    assert decode_tcs(tcs.data[P:])["oentry"] == 0x2000
    assert text.secinfo_flags == SGX_SECINFO_REG | 5 and text.data == b"\xcc" * 2 * P
    assert data.data[:8] == bytes.fromhex("8877665544332211") and data.data[8:] == bytes(P - 8)
    assert heap.measured is False and ssa.measured is True
    assert EnclaveImage.from_text(im.to_text()) == im


def test_text_defaults():
    im = EnclaveImage.from_text("segment a perms=RX pages=3\nsegment b perms=R pages=2\n")
    assert (im.ssa_frame_size, im.attributes, im.xfrm, im.miscselect) == \
        (1, SGX_ATTR_MODE64BIT, 3, 0)
    assert [(s.offset, s.size) for s in im.segments] == [(0, 3 * P), (3 * P, 2 * P)]
    assert im.size == 0x8000                 # smallest power of two covering 5 pages
    assert all(s.measured for s in im.segments)
    assert im.segments[1].prot == 1


def test_text_header_values():
    im = EnclaveImage.from_text(
        "size = 0x1_0000\nattributes = MODE64BIT | SGX_ATTR_DEBUG | 0x80\n"
        "miscselect = EXINFO\nxfrm = 0xe7\nisvprodid = 7\nisvsvn = 0b11\n"
        "vendor = 0x8086\ndate = 0x20261127\nmisc_mask = 0xffffffff\n"
        "attributes_mask = 0xffffffffffffffff\nxfrm_mask = 0xfffffffffff9ff1b\n")
    assert im.size == 0x10000 and im.attributes == 0x86 and im.miscselect == 1
    assert (im.xfrm, im.isvprodid, im.isvsvn, im.vendor, im.date) == \
        (0xE7, 7, 3, 0x8086, 0x20261127)
    assert EnclaveImage.from_text(im.to_text()) == im


def test_text_contents(tmp_path):
    (tmp_path / "b.bin").write_bytes(b"\x01\x02" * 3000)       # 6000 bytes -> 2 pages
    im = EnclaveImage.from_text(
        "segment a perms=R fill=0x5a pages=1\n"
        "segment b perms=R bin=b.bin\n"
        "segment c perms=R data=0xdeadbeef\n"
        "segment d perms=R fill=ramp pages=2\n"
        "segment e perms=NONE pages=1 prot=RW\n", base_dir=str(tmp_path))
    a, b, c, d, e = im.segments
    assert a.data == b"\x5a" * P
    assert b.pages == 2 and b.data[:6000] == b"\x01\x02" * 3000 and not any(b.data[6000:])
    assert c.pages == 1 and c.data[:4] == bytes.fromhex("deadbeef")
    assert d.data == bytes(i & 0xFF for i in range(2 * P))
    assert e.secinfo_flags == SGX_SECINFO_REG and e.prot == 3
    assert EnclaveImage.from_text(im.to_text()) == im


def test_text_tcs_fields_multi_page():
    im = EnclaveImage.from_text("ssa_frame_size = 2\n"
                                "segment t type=TCS pages=3 ossa=0x10000 nssa=2 "
                                "oentry=0x4000 flags=1 fslimit=0xfff\n")
    pages = [decode_tcs(im.segments[0].data[i:i + P]) for i in range(0, 3 * P, P)]
    assert [p["ossa"] for p in pages] == [0x10000, 0x14000, 0x18000]
    assert {(p["nssa"], p["oentry"], p["flags"], p["fslimit"], p["gslimit"])
            for p in pages} == {(2, 0x4000, 1, 0xFFF, 0xFFFFFFFF)}
    assert EnclaveImage.from_text(im.to_text()) == im


def test_to_text_round_trips_arbitrary_content():
    blob = bytes((i * 31 + 7) & 0xFF for i in range(P)) + bytes(P)
    im = EnclaveImage(size=0x4000, segments=[
        Segment(0x2000, blob, SGX_SECINFO_REG | 7, 7, True, "odd name!"),
        Segment(0x0, b"\x11" * P, SGX_SECINFO_TCS, 3, False, "t"),
    ], ssa_frame_size=3, attributes=SGX_ATTR_MODE64BIT | SGX_ATTR_DEBUG, isvsvn=9)
    again = EnclaveImage.from_text(im.to_text())
    assert again.measure() == im.measure()
    assert [s.name for s in again.segments] == ["seg0", "t"]
    assert [dataclasses.replace(s, name="") for s in again.segments] == \
        [dataclasses.replace(s, name="") for s in im.segments]


def test_image_sigstruct_and_secs(key):
    im = EnclaveImage.from_text(V3_TEXT + "attributes = MODE64BIT|DEBUG\nisvsvn = 4\n")
    raw = im.sigstruct(key)
    s = S.Sigstruct.unpack(raw)
    assert S.verify(raw) == 0
    assert s.mrenclave.hex() == V3
    assert (s.attributes, s.xfrm, s.isvsvn) == (SGX_ATTR_MODE64BIT | SGX_ATTR_DEBUG, 3, 4)
    secs = im.secs(base=0x7F0000000000)
    assert len(secs) == 4096
    assert struct.unpack_from("<QQII", secs) == (0x4000, 0x7F0000000000, 2, 0)
    assert struct.unpack_from("<QQ", secs, 48) == (SGX_ATTR_MODE64BIT | SGX_ATTR_DEBUG, 3)
    assert secs[24:48] == bytes(24) and secs[64:] == bytes(4096 - 64)


@pytest.mark.parametrize("text,line,reason", [
    ("size = 0x3000\n", 1, "not a power of two"),
    ("size = 0x2000\nsize = 0x4000\n", 2, "given twice"),
    ("# c\nbogus = 1\n", 2, "unknown key 'bogus'"),
    ("hello\n", 1, "expected 'key = value'"),
    ("ssa_frame_size = 0\n", 1, "at least 1"),
    ("isvsvn = 0x10000\n", 1, "does not fit in 16 bits"),
    ("attributes = MODE64BIT|FOO\n", 1, "'FOO' is not a number"),
    ("\n\nsegment a perms=RW\n", 3, "pages= is required"),
    ("segment a pages=1\n", 1, "needs perms="),
    ("segment a perms=RW pages=1 offset=0x800\n", 1, "not page aligned"),
    ("segment a perms=RW pages=1 offset=zz\n", 1, "segment a: offset: 'zz' is not a number"),
    ("segment a perms=W pages=1\n", 1, "W without R"),
    ("segment a perms=RQ pages=1\n", 1, "not a permission set"),
    ("segment a type=TCS perms=RW pages=1\n", 1, "a TCS takes no perms"),
    ("segment a type=VA pages=1\n", 1, "neither REG nor TCS"),
    ("segment a perms=R pages=1 ossa=0\n", 1, "is a TCS field"),
    ("segment a type=TCS pages=1 ossa=0 fill=1\n", 1, "not both"),
    ("segment a perms=R pages=1 fill=1 data=00\n", 1, "at most one of"),
    ("segment a perms=R pages=1 fill=0x100\n", 1, "fill='0x100'"),
    ("segment a perms=R pages=1 data=abc\n", 1, "odd number of hex digits"),
    ("segment a perms=R pages=1 data=zz\n", 1, "bad hex digit"),
    ("segment a perms=R pages=1 data=" + "00" * (P + 1) + "\n", 1, "do not fit"),
    ("segment a perms=R pages=0\n", 1, "at least 1"),
    ("segment a perms=R pages=1 colour=red\n", 1, "unknown option 'colour'"),
    ("segment a perms=R pages=1 bright\n", 1, "unexpected word 'bright'"),
    ("segment a perms=R pages=1 measured unmeasured\n", 1, "given twice"),
    ("segment a perms=R pages=1 pages=2\n", 1, "pages given twice"),
    ("segment\n", 1, "needs a name"),
    ("segment 9x perms=R pages=1\n", 1, "must match"),
    ("segment a perms=R pages=1\nsegment a perms=R pages=1\n", 2, "already defined on line 1"),
    ("segment a perms=R pages=2\nsegment b perms=R pages=1 offset=0x1000\n", 2,
     "overlaps segment a"),
    ("size = 0x2000\nsegment a perms=R pages=3\n", 2, "does not fit in size 0x2000"),
    ("segment a perms=R pages=1 hex=missing.hex\n", 1, "No such file"),
    ("segment a perms=R pages=1 hex='unterminated\n", 1, "cannot split line"),
    ("# nothing\n", 1, "no segments and no size"),
])
def test_text_errors_name_the_line(text, line, reason, tmp_path):
    with pytest.raises(ImageError) as ei:
        EnclaveImage.from_text(text, path="encl.img", base_dir=str(tmp_path))
    assert ei.value.line == line
    assert reason in ei.value.reason
    assert str(ei.value) == f"encl.img:{line}: {ei.value.reason}"
    assert "\n" not in str(ei.value)


def test_hex_file_errors_point_into_the_hex_file(tmp_path):
    (tmp_path / "d.hex").write_text("00 11\n# ok\n22 3g\n")
    with pytest.raises(ImageError) as ei:
        EnclaveImage.from_text("segment a perms=R pages=1 hex=d.hex\n",
                               path=str(tmp_path / "x.img"))
    assert (ei.value.path, ei.value.line) == (str(tmp_path / "d.hex"), 3)


def test_validate_catches_bad_hand_built_images():
    def seg(off, n=1, flags=SGX_SECINFO_REG | 3):
        return Segment(off, bytes(n * P), flags, 3, True, f"s{off:x}")
    with pytest.raises(ImageError, match="power of two"):
        EnclaveImage(size=0x3000).validate()
    with pytest.raises(ImageError, match="outside ELRANGE"):
        EnclaveImage(size=0x2000, segments=[seg(0x1000, 2)]).validate()
    with pytest.raises(ImageError, match="overlaps"):
        EnclaveImage(size=0x4000, segments=[seg(0, 2), seg(0x1000)]).validate()
    with pytest.raises(ImageError, match="neither REG nor TCS"):
        EnclaveImage(size=0x4000, segments=[seg(0, 1, 0x300)]).validate()
    with pytest.raises(ImageError, match="page size"):
        EnclaveImage(size=0x4000, segments=[Segment(0, bytes(10), 0x203, 3)]).validate()
    # SECINFO permission rules are the driver's: a W-only page is a valid image
    EnclaveImage(size=0x4000, segments=[seg(0, 1, SGX_SECINFO_REG | 2)]).validate()


# ---------------------------------------------------------------- ELF images

def make_elf(loads, e_machine=62):
    """A minimal ELF64 executable: ``loads`` is [(p_flags, p_offset, data)] and
    becomes PT_LOAD program headers (plus a PT_NOTE first, which must be ignored)."""
    phnum = len(loads) + 1
    hdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    hdr += struct.pack("<HHIQQQIHHHHHH", 2, e_machine, 1, 0, 64, 0, 0, 64, 56, phnum,
                       64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", 4, 4, 0, 0, 0, 0, 0, 4)        # PT_NOTE
    for flags, off, data in loads:
        phdrs += struct.pack("<IIQQQQQQ", 1, flags, off, off, off, len(data), len(data),
                             0x1000)
    body = bytearray(hdr + phdrs)
    for _, off, data in loads:
        if len(body) < off + len(data):
            body += bytes(off + len(data) - len(body))
        body[off:off + len(data)] = data
    return bytes(body)


PF_X, PF_W, PF_R = 1, 2, 4
TCS_PAGE = encode_tcs(ossa=0x3000, oentry=0x1000)


def test_elf_loader_follows_the_kselftest():
    elf = make_elf([(PF_R | PF_W, 0x1000, TCS_PAGE),
                    (PF_R | PF_X, 0x2000, b"\xcc" * 0x1100),        # 2 pages, rounded up
                    (PF_R | PF_W, 0x4000, b"\x88" * 8)])
    im = EnclaveImage.from_elf(elf)
    assert [(s.offset, s.pages, s.secinfo_flags, s.prot, s.measured) for s in im.segments] \
        == [(0x0000, 1, SGX_SECINFO_TCS, 3, True),
            (0x1000, 2, SGX_SECINFO_REG | 5, 5, True),
            (0x3000, 1, SGX_SECINFO_REG | 3, 3, True),
            (0x4000, 1, SGX_SECINFO_REG | 3, 3, False)]                 # the heap
    assert im.size == 0x8000                    # 5 pages -> next power of two
    assert (im.ssa_frame_size, im.attributes, im.xfrm) == (1, SGX_ATTR_MODE64BIT, 3)
    assert im.segments[0].data == TCS_PAGE
    assert im.segments[1].data == b"\xcc" * 0x1100 + bytes(0x2000 - 0x1100)
    assert im.segments[-1].name == "heap"
    expected = M.mrenclave(0x8000, 1, [
        (0x0, TCS_PAGE, 0x100, True), (0x1000, im.segments[1].data, 0x205, True),
        (0x3000, b"\x88" * 8 + bytes(P - 8), 0x203, True), (0x4000, ZERO, 0x203, False)])
    assert im.measure() == expected


def test_elf_heap_size():
    elf = make_elf([(PF_R | PF_W, 0x1000, TCS_PAGE)])
    assert EnclaveImage.from_elf(elf, heap_size=3 * P).segments[-1].size == 3 * P
    assert EnclaveImage.from_elf(elf, heap_size=3 * P).size == 0x4000
    assert len(EnclaveImage.from_elf(elf, heap_size=0).segments) == 1
    with pytest.raises(ImageError, match="heap size"):
        EnclaveImage.from_elf(elf, heap_size=100)


def test_elf_file_past_eof_reads_as_zero():
    elf = make_elf([(PF_R | PF_W, 0x1000, b"\x01" * 16)])     # file ends mid-page
    assert len(elf) < 0x2000
    im = EnclaveImage.from_elf(elf, heap_size=0)
    assert im.segments[0].data == b"\x01" * 16 + bytes(P - 16)


@pytest.mark.parametrize("loads,reason", [
    ([(PF_R | PF_X, 0x1000, TCS_PAGE)], "TCS (first PT_LOAD, program header 1) has "
                                         "invalid segment flags 0x05"),
    ([(PF_R | PF_W | PF_X, 0x1000, TCS_PAGE)], "invalid segment flags 0x07"),
    ([(PF_R | PF_W, 0x1000, TCS_PAGE), (PF_R | 0x8, 0x2000, b"x")],
     "program header 2 has invalid segment flags 0x0c"),
    ([(PF_R | PF_W, 0x2000, TCS_PAGE), (PF_R, 0x1000, b"x")], "before the TCS segment"),
    ([(PF_R | PF_W, 0x1000, TCS_PAGE), (PF_R, 0x1000, b"x")], "overlaps"),
    ([(PF_R | PF_W, 0x1000, b"")], "p_filesz 0"),
    ([], "no PT_LOAD segments"),
])
def test_elf_errors(loads, reason, tmp_path):
    f = tmp_path / "bad.elf"
    f.write_bytes(make_elf(loads))
    with pytest.raises(ImageError) as ei:
        EnclaveImage.load(str(f))
    assert reason in ei.value.reason
    assert ei.value.line is None and str(ei.value).startswith(f"{f}: ")


def test_elf_garbage_after_magic(tmp_path):
    f = tmp_path / "junk.elf"
    f.write_bytes(b"\x7fELF" + b"\xff" * 10)
    with pytest.raises(ImageError, match="not a valid ELF file"):
        EnclaveImage.load(str(f))


def _toolchain_elf(tmp_path):
    """Assemble and link a 3-segment enclave (.tcs RW, .text RX, .data RW) the way
    test_encl.lds lays out the kselftest's; None (with a reason) if we cannot.

    Each section is padded to a page: the loader measures whole pages straight from
    the file, so without the padding the bytes that follow a short section in the
    file (symbol table, string tables) would be measured too — faithfully, as in
    the kselftest, but then no hand-written twin could match."""
    gcc, ld = shutil.which("gcc"), shutil.which("ld")
    if not gcc or not ld:
        return None, "gcc or ld not found"
    (tmp_path / "encl.S").write_text(
        '\t.section ".tcs", "aw"\n\t.balign 4096\n'
        "\t.quad 0, 0, 0x2000\n\t.long 0, 1\n\t.quad encl_entry, 0, 0, 0\n"
        "\t.long 0xFFFFFFFF, 0xFFFFFFFF\n\t.fill 4024, 1, 0\n"
        "\t.text\n\t.globl encl_entry\nencl_entry:\n\t.fill 16, 1, 0xcc\n"
        "\t.data\n\t.balign 4096\n\t.quad 0x1122334455667788\n")
    (tmp_path / "encl.lds").write_text(
        "OUTPUT_FORMAT(elf64-x86-64)\nENTRY(encl_entry)\n"
        "PHDRS {\n tcs PT_LOAD FLAGS(6);\n text PT_LOAD FLAGS(5);\n"
        " data PT_LOAD FLAGS(6);\n}\n"
        "SECTIONS {\n . = 0;\n .tcs : { *(.tcs*) } : tcs\n . = ALIGN(4096);\n"
        " .text : { *(.text*) . = ALIGN(4096); } : text = 0\n"
        " .data : { *(.data*) . = ALIGN(4096); } : data\n"
        " /DISCARD/ : { *(.note*) *(.comment*) *(.eh_frame*) }\n}\n")
    try:
        subprocess.run([gcc, "-c", "encl.S", "-o", "encl.o"], cwd=tmp_path, check=True,
                       capture_output=True, timeout=60)
        subprocess.run([ld, "-T", "encl.lds", "-static", "-nostdlib",
                        "-z", "max-page-size=4096", "-o", "encl.elf", "encl.o"],
                       cwd=tmp_path, check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        err = getattr(e, "stderr", b"") or b""
        return None, f"cannot build a test ELF: {err.decode(errors='replace')[:200] or e}"
    return tmp_path / "encl.elf", None


def test_elf_built_by_the_toolchain_matches_its_declarative_twin(tmp_path):
    elf, why = _toolchain_elf(tmp_path)
    if elf is None:
        pytest.skip(why)
    im = EnclaveImage.load(str(elf))
    assert [s.name for s in im.segments] == ["tcs", "text", "data", "heap"]
    assert [(s.offset, s.secinfo_flags, s.prot, s.measured) for s in im.segments] == [
        (0x0, 0x100, 3, True), (0x1000, 0x205, 5, True), (0x2000, 0x203, 3, True),
        (0x3000, 0x203, 3, False)]
    twin = EnclaveImage.from_text(
        "size = 0x4000\n"
        "segment tcs  type=TCS pages=1 ossa=0x2000 oentry=0x1000\n"
        "segment text perms=RX pages=1 data=" + "cc" * 16 + "\n"
        "segment data perms=RW pages=1 data=8877665544332211\n"
        "segment heap perms=RW pages=1 unmeasured\n")
    assert im.measure() == twin.measure()
    assert EnclaveImage.from_text(im.to_text()).measure() == im.measure()


# ---------------------------------------------------------------- CLI

@pytest.fixture
def v3_image(tmp_path):
    p = tmp_path / "v3.img"
    p.write_text(V3_TEXT)
    return p


def test_cli_measure(v3_image, capsys):
    assert main(["sgx", "measure", str(v3_image)]) == 0
    out, err = capsys.readouterr()
    assert out == f"MRENCLAVE {V3}\n" and err == ""


def test_cli_measure_verbose(v3_image, capsys):
    assert main(["sgx", "measure", "-v", str(v3_image)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ECREATE  size=0x4000 ssa_frame_size=2"
    assert lines[1].split() == ["EADD", "0x00000000", "secinfo=0x0205", "REG", "RX",
                                "+16", "EEXTEND", "code"]
    assert lines[2].split() == ["EADD", "0x00001000", "secinfo=0x0203", "REG", "RW",
                                "unmeasured", "data"]
    assert lines[3].split()[3:5] == ["TCS", "NONE"]
    assert lines[4] == "records: 1 ECREATE, 3 EADD, 32 EEXTEND"
    assert lines[5] == f"MRENCLAVE {V3}"


def test_cli_measure_elf(tmp_path, capsys):
    f = tmp_path / "e.elf"
    f.write_bytes(make_elf([(PF_R | PF_W, 0x1000, TCS_PAGE)]))
    assert main(["sgx", "measure", str(f), "--heap-size", "0x2000"]) == 0
    want = EnclaveImage.from_elf(str(f), heap_size=0x2000).measure().hex()
    assert capsys.readouterr().out == f"MRENCLAVE {want}\n"


def test_cli_sign_generate_then_reuse_key(v3_image, tmp_path, capsys):
    keyf, out = tmp_path / "k.pem", tmp_path / "v3.sigstruct"
    assert main(["sgx", "sign", str(v3_image), "--generate-key", str(keyf), "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    raw = out.read_bytes()
    s = S.Sigstruct.unpack(raw)
    assert S.verify(raw) == 0 and s.mrenclave.hex() == V3
    assert lines == [f"MRENCLAVE {V3}", f"MRSIGNER  {s.mrsigner().hex()}"]
    assert oct(keyf.stat().st_mode & 0o777) == "0o600"

    out2 = tmp_path / "again.sigstruct"
    assert main(["sgx", "sign", str(v3_image), "--key", str(keyf), "-o", str(out2)]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert out2.read_bytes() == raw       # PKCS#1 v1.5 is deterministic


def test_cli_sign_refuses_to_overwrite_a_key(v3_image, tmp_path, capsys):
    keyf = tmp_path / "k.pem"
    keyf.write_text("precious")
    assert main(["sgx", "sign", str(v3_image), "--generate-key", str(keyf),
                      "-o", str(tmp_path / "o")]) == 2
    assert keyf.read_text() == "precious"
    assert capsys.readouterr().err == f"{keyf}: exists; not overwriting a key\n"


def _one_line_error(capsys):
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    return err.rstrip("\n")


@pytest.mark.parametrize("argv_tail", [[], ["-v"]])
def test_cli_measure_bad_image(tmp_path, capsys, argv_tail):
    f = tmp_path / "bad.img"
    f.write_text("size = 0x8000\nsegment a perms=RW pages=1\nsegment b perms=WX pages=1\n")
    assert main(["sgx", "measure", *argv_tail, str(f)]) == 2
    assert _one_line_error(capsys) == f"{f}:3: segment b: perms W without R " \
                                      "(ADD_PAGES refuses it)"


@pytest.mark.parametrize("argv,msg", [
    (["/nonexistent/x.img"], "/nonexistent/x.img: No such file or directory"),
    ([], "vmsim sgx measure: the following arguments are required: IMAGE"),
    (["--heap-size", "100", "x"], "vmsim sgx measure: argument --heap-size: "
                                  "100 is not a multiple of 4096"),
])
def test_cli_measure_usage_errors(argv, msg, capsys):
    assert main(["sgx", "measure", *argv]) == 2
    assert _one_line_error(capsys) == msg


def test_cli_measure_binary_garbage(tmp_path, capsys):
    f = tmp_path / "g.img"
    f.write_bytes(b"size = 0x2000\n\xff\xfe")
    assert main(["sgx", "measure", str(f)]) == 2
    assert _one_line_error(capsys) == f"{f}:2: not UTF-8 text and not an ELF file"


def test_cli_sign_errors(v3_image, tmp_path, capsys):
    out = str(tmp_path / "o.sigstruct")
    assert main(["sgx", "sign", str(v3_image), "-o", out]) == 2
    assert "exactly one of --key and --generate-key" in _one_line_error(capsys)
    assert main(["sgx", "sign", str(v3_image), "--key", "a", "--generate-key", "b", "-o", out]) == 2
    assert "exactly one of" in _one_line_error(capsys)
    assert main(["sgx", "sign", str(v3_image), "--key", str(tmp_path / "none.pem"), "-o", out]) == 2
    assert _one_line_error(capsys) == f"{tmp_path / 'none.pem'}: No such file or directory"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    assert main(["sgx", "sign", str(v3_image), "--key", str(junk), "-o", out]) == 2
    assert _one_line_error(capsys).startswith(f"{junk}: cannot read PEM private key")
    assert main(["sgx", "sign", str(v3_image), "--key", str(junk)]) == 2
    assert "required: -o/--output" in _one_line_error(capsys)
    assert not os.path.exists(out)


def test_cli_sign_bad_image(tmp_path, capsys):
    f = tmp_path / "bad.img"
    f.write_text("segment a perms=R pages=1 offset=0x10\n")
    assert main(["sgx", "sign", str(f), "--generate-key", str(tmp_path / "k.pem"),
                      "-o", str(tmp_path / "o")]) == 2
    assert _one_line_error(capsys) == f"{f}:1: segment a: offset 0x10 is not page aligned"
    assert not (tmp_path / "k.pem").exists()       # nothing written on bad input


def test_cli_help(capsys):
    assert main(["sgx", "measure", "--help"]) == 0
    assert "usage: vmsim sgx measure" in capsys.readouterr().out
    assert main(["sgx", "sign", "-h"]) == 0
    assert "--generate-key" in capsys.readouterr().out
