"""The `vmsim` command: one argparse tree, one subparser per command.

    vmsim                                     the demo: a recorded SGX enclave load, replayed
    vmsim demo                                the same
    vmsim replay TRACE [--maps FILE]          replay an strace log or a JSONL trace
    vmsim maps TRACE [--form maps|smaps|pmap] the address space a trace leaves behind
    vmsim record [-o FILE] -- CMD ARGS...     run CMD with ASLR off, record a replayable trace
    vmsim run [--trace] [--maps] -- PROG ARGS...  execute PROG on the emulated CPU, the model
                                              its kernel
    vmsim diff SCENARIO...                    run scenarios on the model and the host kernel
    vmsim diff --fuzz N --seed S [--out DIR]  random differential testing with shrinking
    vmsim check [--design D] [--depth N]      every call sequence up to N, properties checked
    vmsim sgx measure IMAGE                   MRENCLAVE of an enclave image
    vmsim sgx sign IMAGE --key K -o OUT       a signed SIGSTRUCT for it
    vmsim tour                                a short tour of the Python API

Exit status: 0 no divergence, 1 divergence, 2 bad input or usage, 3 the oracle
cannot run on this host.  Bad usage and bad input get one line on stderr,
`vmsim CMD: reason` (or `FILE:LINE: reason`), never the usage text or a traceback.
Each command family adds its subparsers with `add_parsers(sub)` and sets `func`, which
takes the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import check, diff, record, run, sgx, tour, trace

#: what bare `vmsim` runs
DEFAULT_COMMAND = "demo"


class Parser(argparse.ArgumentParser):
    """argparse with the command's one error style: `PROG: reason` on one line of
    stderr and exit status 2.  Subparsers inherit the class, so the innermost command
    reports its own errors, unrecognized arguments included."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")

    # one signature for typeshed's three overloads (ours never takes a namespace type)
    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> Parser:
    ap = Parser(prog="vmsim", description="An executable model of the Linux 6.18 memory-map "
                "layer and of the in-kernel SGX driver. Without a command: the demo.",
                epilog="Exit status: 0 the model agrees, 1 a divergence, 2 bad input or "
                "usage, 3 the host-kernel oracle cannot run here.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    trace.add_parsers(sub)
    record.add_parsers(sub)
    run.add_parsers(sub)
    diff.add_parsers(sub)
    check.add_parsers(sub)
    sgx.add_parsers(sub)
    tour.add_parsers(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run `vmsim ARGV...` and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv) or [DEFAULT_COMMAND]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:           # --help, or a usage error already reported
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("vmsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:             # `vmsim replay ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
