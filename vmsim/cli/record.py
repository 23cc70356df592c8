"""`vmsim record [-o FILE] -- CMD ARGS...`: run a command with ASLR off and write the
trace `vmsim replay` takes with no other option: its syscalls (strace), its maps at
the exec event and its maps and smaps at exit, and whether the CPU has PKU
(vmsim.trace.record). Exit status: 0 recorded, 2 the command could not be recorded.
"""

from __future__ import annotations

import argparse
import sys

from ..syscalls.inputs import InputError
from ..trace.format import write_trace
from ..trace.record import RecordError, record, recording_trace


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser("record", help="run a command with ASLR off and record a trace "
                        "that `vmsim replay` checks, final maps included",
                        description="Run CMD with ASLR off (setarch -R) under strace, and "
                        "again under a ptrace tracer that reads /proc/PID/maps at the exec "
                        "event and maps and smaps at exit; write one JSON Lines trace.")
    ap.add_argument("-o", "--output", metavar="FILE", default="vmsim-record.jsonl",
                    help="the trace to write (default vmsim-record.jsonl)")
    ap.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...",
                    help="the command to record")
    ap.set_defaults(func=cmd_record)


def cmd_record(args: argparse.Namespace) -> int:
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        rec = record(argv)
        trace = recording_trace(rec, args.output)
    except (RecordError, InputError) as exc:
        print(f"vmsim record: {exc}", file=sys.stderr)
        return 2
    try:
        with open(args.output, "w") as f:
            write_trace(trace.records, f, comment=trace.comment, header={
                "exec_maps": trace.exec_maps, "exit_maps": trace.exit_maps,
                "exit_smaps": trace.exit_smaps, "pkeys": trace.pkeys,
                "skipped": trace.skipped})
    except OSError as exc:
        print(f"vmsim record: {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"recorded {' '.join(argv)} (exit status {rec.status}): {len(trace.records)} "
          f"records in {args.output}; replay it with `vmsim replay {args.output}`")
    return 0
