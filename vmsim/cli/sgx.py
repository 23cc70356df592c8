"""``vmsim sgx measure`` and ``vmsim sgx sign``: MRENCLAVE and SIGSTRUCT for an
enclave image (an ELF laid out as the kselftest loader does, or the declarative
format of docs/enclave-image-format.md).

Both entry points take ``argv`` without the command words and return the exit
status: 0 on success, 2 for bad input (the image, the key, the arguments), with a
one-line ``file:line: reason`` on stderr and no traceback; 1 when an output file
cannot be written.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..arch.x86.sgx import sigstruct as _sig
from ..arch.x86.sgx.measure import PAGE_SIZE
from ..enclave.image import EnclaveImage, ImageError, perms_str


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line instead of exiting."""

    def error(self, message):
        raise _Usage(f"{self.prog}: {message}")


def _size(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v < 0 or v % PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"{text} is not a multiple of {PAGE_SIZE}")
    return v


def _run(parser: argparse.ArgumentParser, argv, body) -> int:
    try:
        args = parser.parse_args(argv)
    except _Usage as e:
        print(e, file=sys.stderr)
        return 2
    except SystemExit as e:        # --help
        return e.code if isinstance(e.code, int) else 0
    try:
        return body(args)
    except ImageError as e:
        print(e, file=sys.stderr)
        return 2


def _describe(image: EnclaveImage) -> list[str]:
    """One line per record kind and page, from the measurement's own log."""
    m = image.measurement(log=True)
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


def measure_main(argv: list[str]) -> int:
    """vmsim sgx measure [-v] [--heap-size N] IMAGE"""
    p = _Parser(prog="vmsim sgx measure",
                description="Print the MRENCLAVE of an enclave image.")
    p.add_argument("image", metavar="IMAGE", help="ELF enclave or declarative image")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="list the ECREATE/EADD/EEXTEND records first")
    p.add_argument("--heap-size", type=_size, default=PAGE_SIZE, metavar="N",
                   help="ELF only: unmeasured heap appended by the loader (default 4096)")

    def body(args) -> int:
        image = EnclaveImage.load(args.image, heap_size=args.heap_size)
        if args.verbose:
            for line in _describe(image):
                print(line)
        print(f"MRENCLAVE {image.measure().hex()}")
        return 0

    return _run(p, argv, body)


def sign_main(argv: list[str]) -> int:
    """vmsim sgx sign IMAGE (--key KEY.pem | --generate-key OUT.pem) -o OUT.sigstruct"""
    p = _Parser(prog="vmsim sgx sign",
                description="Write the signed SIGSTRUCT of an enclave image.")
    p.add_argument("image", metavar="IMAGE", help="ELF enclave or declarative image")
    p.add_argument("--key", metavar="KEY.pem", help="RSA-3072 private key with e=3")
    p.add_argument("--generate-key", metavar="OUT.pem",
                   help="generate a new key, write it here (never overwritten) and use it")
    p.add_argument("-o", "--output", required=True, metavar="OUT.sigstruct")
    p.add_argument("--heap-size", type=_size, default=PAGE_SIZE, metavar="N",
                   help="ELF only: unmeasured heap appended by the loader (default 4096)")

    def body(args) -> int:
        if bool(args.key) == bool(args.generate_key):
            print("vmsim sgx sign: give exactly one of --key and --generate-key",
                  file=sys.stderr)
            return 2
        image = EnclaveImage.load(args.image, heap_size=args.heap_size)
        if args.key:
            try:
                with open(args.key, "rb") as f:
                    pem = f.read()
            except OSError as e:
                print(f"{args.key}: {e.strerror or e}", file=sys.stderr)
                return 2
            try:
                key = _sig.load_key(pem)
            except ValueError as e:
                print(f"{args.key}: {e}", file=sys.stderr)
                return 2
        else:
            key = _sig.generate_key()
            try:
                fd = os.open(args.generate_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(_sig.key_to_pem(key))
            except FileExistsError:
                print(f"{args.generate_key}: exists; not overwriting a key", file=sys.stderr)
                return 2
            except OSError as e:
                print(f"{args.generate_key}: {e.strerror or e}", file=sys.stderr)
                return 1
        signed = _sig.sign(image.unsigned_sigstruct(), key)
        raw = signed.pack()
        try:
            with open(args.output, "wb") as f:
                f.write(raw)
        except OSError as e:
            print(f"{args.output}: {e.strerror or e}", file=sys.stderr)
            return 1
        print(f"MRENCLAVE {signed.mrenclave.hex()}")
        print(f"MRSIGNER  {signed.mrsigner().hex()}")
        return 0

    return _run(p, argv, body)


if __name__ == "__main__":     # python -m vmsim.drivers.sgx.tools {measure|sign} ...
    cmds = {"measure": measure_main, "sign": sign_main}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print("usage: python -m vmsim.drivers.sgx.tools {measure|sign} ...", file=sys.stderr)
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](sys.argv[2:]))
