"""Building and signing a SIGSTRUCT, as an enclave's signer does it in user space: the
kselftest's tools/testing/selftests/sgx/sigstruct.c (encl_measure), Intel's sgx_sign,
Gramine's gramine-sgx-sign (spec/sgx-driver.md §4.3).

The key is RSA-3072 with public exponent 3; the signature is PKCS#1 v1.5 over SHA-256
of the signed bytes, and the structure carries the Q1/Q2 helper values EINIT uses.
The layout and EINIT's check are the processor's (vmsim/arch/x86/sgx/sigstruct.py).
"""

from __future__ import annotations

import dataclasses

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..arch.x86.sgx.defs import SGX_ATTR_MODE64BIT
from ..arch.x86.sgx.sigstruct import SGX_MODULUS_SIZE, SIGSTRUCT_EXPONENT, Sigstruct, q1q2

# --- keys ---

def generate_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-3072 key with public exponent 3 (what SGX requires)."""
    return rsa.generate_private_key(public_exponent=SIGSTRUCT_EXPONENT, key_size=3072)


def check_key(key: object) -> rsa.RSAPrivateKey:
    """``key`` if it is an RSA-3072 private key with e = 3, else ValueError."""
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    if key.key_size != 3072:
        raise ValueError(f"RSA key is {key.key_size} bits; SIGSTRUCT needs 3072")
    e = key.public_key().public_numbers().e
    if e != SIGSTRUCT_EXPONENT:
        raise ValueError(f"RSA public exponent is {e}; SIGSTRUCT needs 3")
    return key


#: the largest PEM key file read (an RSA-3072 key takes 2.5 KiB; a far larger one
#: would only cost time to parse before it is refused)
MAX_KEY_SIZE = 64 << 10


def load_key(pem: bytes | str, password: bytes | None = None) -> rsa.RSAPrivateKey:
    """Parse a PEM private key (PKCS#1 or PKCS#8); ValueError with a one-line
    reason if it is not usable for SGX signing."""
    if isinstance(pem, str):
        pem = pem.encode()
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot read PEM private key: {reason}") from None
    return check_key(key)


def key_to_pem(key: rsa.RSAPrivateKey) -> bytes:
    """The key as an unencrypted "BEGIN RSA PRIVATE KEY" PEM (the selftest's format)."""
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def public_modulus(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """The 384-byte little-endian modulus of ``key`` (private or public)."""
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return pub.public_numbers().n.to_bytes(SGX_MODULUS_SIZE, "little")


# --- building and signing ---

def build(mrenclave: bytes, attributes: int = SGX_ATTR_MODE64BIT, xfrm: int = 3,
          attributes_mask: int = 0, xfrm_mask: int = 0, miscselect: int = 0,
          misc_mask: int = 0, isvprodid: int = 0, isvsvn: int = 0, vendor: int = 0,
          date: int = 0, swdefined: int = 0) -> Sigstruct:
    """An unsigned SIGSTRUCT for a loader; defaults are the kselftest's (§4.3).
    Pass it to ``sign()``."""
    if len(mrenclave) != 32:
        raise ValueError(f"MRENCLAVE is 32 bytes, got {len(mrenclave)}")
    s = Sigstruct(vendor=vendor, date=date, swdefined=swdefined, miscselect=miscselect,
                  misc_mask=misc_mask, attributes=attributes, xfrm=xfrm,
                  attributes_mask=attributes_mask, xfrm_mask=xfrm_mask,
                  mrenclave=bytes(mrenclave), isvprodid=isvprodid, isvsvn=isvsvn)
    s.pack()        # range-check every field now, not at signing time
    return s


def sign(sigstruct: Sigstruct, private_key: rsa.RSAPrivateKey) -> Sigstruct:
    """A signed copy of ``sigstruct``: modulus, exponent 3, the PKCS#1 v1.5 SHA-256
    signature over ``signed_bytes()`` and q1/q2, all stored little endian.
    The argument is not modified."""
    key = check_key(private_key)
    n = key.public_key().public_numbers().n
    out = dataclasses.replace(sigstruct, modulus=n.to_bytes(SGX_MODULUS_SIZE, "little"),
                              exponent=SIGSTRUCT_EXPONENT)
    sig_be = key.sign(out.signed_bytes(), padding.PKCS1v15(), hashes.SHA256())
    s = int.from_bytes(sig_be, "big")
    q1, q2 = q1q2(s, n)
    out.signature = s.to_bytes(SGX_MODULUS_SIZE, "little")
    out.q1 = q1.to_bytes(SGX_MODULUS_SIZE, "little")
    out.q2 = q2.to_bytes(SGX_MODULUS_SIZE, "little")
    return out
