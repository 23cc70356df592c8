"""`vmsim sgx measure` and `vmsim sgx sign`: MRENCLAVE and SIGSTRUCT for an enclave
image (an ELF laid out as the kselftest loader does, or the declarative format of
docs/enclave-image-format.md).

Exit status: 0 on success, 2 for bad input (the image, the key, the arguments), with a
one-line `file:line: reason` on stderr and no traceback; 1 when an output file cannot
be written.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ..enclave import signing
from ..enclave.image import EnclaveImage
from ..enclave.segment import ImageError, perms_str
from ..syscalls.inputs import InputError, read_bytes
from ..uapi import PAGE_SIZE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sgx = sub.add_parser("sgx", help="enclave tools: `vmsim sgx measure IMAGE`, "
                         "`vmsim sgx sign IMAGE ...`",
                         description="Enclave tools: the MRENCLAVE and the signed SIGSTRUCT "
                         "of an enclave image (docs/enclave-image-format.md).")
    tools = sgx.add_subparsers(dest="tool", metavar="TOOL", required=True)
    _add_measure_parser(tools)
    _add_sign_parser(tools)


def _size(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v < 0 or v % PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"{text} is not a multiple of {PAGE_SIZE}")
    return v


def _add_image_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("image", metavar="IMAGE", help="ELF enclave or declarative image")
    ap.add_argument("--heap-size", type=_size, default=PAGE_SIZE, metavar="N",
                    help="ELF only: unmeasured heap appended by the loader (default 4096)")


def _load_image(args: argparse.Namespace) -> EnclaveImage | None:
    """The image of args.image, or None after printing why it is bad."""
    try:
        return EnclaveImage.load(args.image, heap_size=args.heap_size)
    except ImageError as e:
        print(e, file=sys.stderr)
        return None


def _describe(image: EnclaveImage) -> list[str]:
    """One line per record kind and page, from the measurement's own log."""
    m = image.measurement(log=True)
    assert m.records is not None            # log=True keeps them
    owner = {}
    for seg in image.segments:
        for off, _ in seg.page_data():
            owner[off] = seg.name
    lines = []
    counts = {"ECREATE": 0, "EADD": 0, "EEXTEND": 0}
    extends: dict[int, int] = {}
    for r in m.records:
        counts[r.kind] += 1
        if r.kind == "EEXTEND":
            page = r.offset & ~(PAGE_SIZE - 1)
            extends[page] = extends.get(page, 0) + 1
    for r in m.records:
        if r.kind == "ECREATE":
            lines.append(f"ECREATE  size={r.size:#x} ssa_frame_size={r.value}")
        elif r.kind == "EADD":
            ptype = (r.value >> 8) & 0xFF
            tname = {1: "TCS", 2: "REG"}.get(ptype, f"type{ptype}")
            n = extends.get(r.offset, 0)
            ext = f"+{n} EEXTEND" if n else "unmeasured"
            lines.append(f"EADD     {r.offset:#010x} secinfo={r.value:#06x} {tname:3} "
                         f"{perms_str(r.value & 7):4} {ext:12} {owner.get(r.offset, '')}"
                         .rstrip())
    lines.append(f"records: {counts['ECREATE']} ECREATE, {counts['EADD']} EADD, "
                 f"{counts['EEXTEND']} EEXTEND")
    return lines


# --------------------------------------------------------------------------- measure

def _add_measure_parser(tools: argparse._SubParsersAction) -> None:
    ap = tools.add_parser("measure", help="print the MRENCLAVE of an enclave image",
                          description="Print the MRENCLAVE of an enclave image.")
    _add_image_arguments(ap)
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="list the ECREATE/EADD/EEXTEND records first")
    ap.set_defaults(func=cmd_measure)


def cmd_measure(args: argparse.Namespace) -> int:
    """vmsim sgx measure [-v] [--heap-size N] IMAGE"""
    image = _load_image(args)
    if image is None:
        return 2
    if args.verbose:
        for line in _describe(image):
            print(line)
    print(f"MRENCLAVE {image.measure().hex()}")
    return 0


# --------------------------------------------------------------------------- sign

def _add_sign_parser(tools: argparse._SubParsersAction) -> None:
    ap = tools.add_parser("sign", help="write the signed SIGSTRUCT of an enclave image",
                          description="Write the signed SIGSTRUCT of an enclave image.")
    _add_image_arguments(ap)
    ap.add_argument("--key", metavar="KEY.pem", help="RSA-3072 private key with e=3")
    ap.add_argument("--generate-key", metavar="OUT.pem",
                    help="generate a new key, write it here (never overwritten) and use it")
    ap.add_argument("-o", "--output", required=True, metavar="OUT.sigstruct",
                    help="where to write the SIGSTRUCT")
    ap.set_defaults(func=cmd_sign)


def cmd_sign(args: argparse.Namespace) -> int:
    """vmsim sgx sign IMAGE (--key KEY.pem | --generate-key OUT.pem) -o OUT.sigstruct"""
    if bool(args.key) == bool(args.generate_key):
        print("vmsim sgx sign: give exactly one of --key and --generate-key", file=sys.stderr)
        return 2
    image = _load_image(args)
    if image is None:
        return 2
    try:
        key = _read_key(args.key) if args.key else _generate_key(args.generate_key)
        signed = signing.sign(image.unsigned_sigstruct(), key)
        _write(args.output, signed.pack())
    except _Refused as e:
        print(e, file=sys.stderr)
        return e.status
    print(f"MRENCLAVE {signed.mrenclave.hex()}")
    print(f"MRSIGNER  {signed.mrsigner().hex()}")
    return 0


class _Refused(Exception):
    """`vmsim sgx sign` cannot go on: str() is the one line for stderr."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _read_key(path: str) -> RSAPrivateKey:
    """The signing key in the PEM file (text, at most MAX_KEY_SIZE bytes)."""
    try:
        pem = read_bytes(path, signing.MAX_KEY_SIZE, binary_magic=b"")
    except OSError as e:
        raise _Refused(f"{path}: {e.strerror or e}", 2) from None
    except InputError as e:
        raise _Refused(str(ImageError(e.reason, path, e.line)), 2) from None
    try:
        return signing.load_key(pem)
    except ValueError as e:
        raise _Refused(f"{path}: {e}", 2) from None


def _generate_key(path: str) -> RSAPrivateKey:
    """A new signing key, written to path (never over an existing file)."""
    key = signing.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(signing.key_to_pem(key))
    except FileExistsError:
        raise _Refused(f"{path}: exists; not overwriting a key", 2) from None
    except OSError as e:
        raise _Refused(f"{path}: {e.strerror or e}", 1) from None
    return key


def _write(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise _Refused(f"{path}: {e.strerror or e}", 1) from None
