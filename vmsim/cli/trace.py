"""`vmsim replay`, `vmsim maps`, `vmsim demo` (and bare `vmsim`): replay a trace on the
model with a verdict per call, show the address space it leaves, replay the bundled SGX
demo.  Exit status: 0 every call agrees (and, for a `vmsim record` trace, the final maps
are the recorded ones), 1 a divergence, 2 bad input or usage. A replay whose start
state is not in the trace says so in its verdict (`partial: ...`).
Bad input is answered with one line `vmsim CMD: FILE:LINE: reason`, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from ..check import designs
from ..fs.procmaps import MapsError
from ..kernel import Kernel
from ..syscalls.inputs import InputError, read_text
from ..trace import views
from ..trace.demo import demo_trace_path
from ..trace.format import Trace, TraceError
from ..trace.load import load_trace
from ..trace.replay import (
    Outcome,
    Replayer,
    final_differences,
    format_args,
    format_result,
    summarize,
)

if TYPE_CHECKING:
    from rich.console import Console

LEGEND = ("ok = the model agrees with the recorded result; refused = both refuse it the "
          "same way; DIFFERS = the model disagrees; skipped = cannot be replayed; "
          ". = not an mm call, taken as recorded")

COLOR_CHOICES = ("auto", "always", "never")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_demo_parser(sub)
    _add_replay_parser(sub)
    _add_maps_parser(sub)


def _read_text(path: str) -> str:
    """The text of a maps or smaps dump (vmsim.syscalls.inputs: size-capped)."""
    try:
        return read_text(path)
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror}", path) from None
    except InputError as exc:
        raise TraceError(exc.reason, path, exc.line) from None


def _bad(prog: str, msg: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": msg}))
    else:
        print(f"{prog}: {msg}", file=sys.stderr)
    return 2


def _replayer(args: argparse.Namespace) -> Replayer:
    """The Replayer of args.trace, from args.maps/args.smaps; bad input raises TraceError."""
    trace = load_trace(args.trace)
    maps = _read_text(args.maps) if args.maps else None
    smaps = _read_text(args.smaps) if args.smaps else None
    pkeys = {"on": True, "off": False}.get(getattr(args, "pkeys", None) or "", trace.pkeys)
    design = getattr(args, "design", None) or trace.design or "merged"
    try:
        designs.check_design(design)
    except ValueError as exc:
        raise TraceError(str(exc), args.trace) from None
    try:
        return designs.replayer(trace, design, maps=maps, smaps=smaps, maps_path=args.maps,
                                smaps_path=args.smaps, placement=args.placement,
                                kernel_kwargs=None if pkeys is None else {"pkeys": pkeys})
    except MapsError as exc:
        raise TraceError(exc.reason, exc.path, exc.line) from None


# --------------------------------------------------------------------------- replay

def _add_replay_parser(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser("replay", help="replay a trace (strace -f output or JSONL) on the "
                        "model, with verdicts",
                        description="Replay a trace (JSON Lines or strace -f output) on "
                        "the model: a verdict on every call, an explanation for every "
                        "refusal, and the final maps.")
    ap.add_argument("trace", metavar="TRACE", help="a .jsonl trace or strace output")
    ap.add_argument("--maps", metavar="FILE", help="/proc/PID/maps of the process when the "
                    "trace starts (default: the trace header's, or an empty process)")
    ap.add_argument("--smaps", metavar="FILE", help="its /proc/PID/smaps (VmFlags)")
    ap.add_argument("--placement", choices=("trace", "model"), default="trace",
                    help="trace: use the recorded mmap addresses (default); model: let "
                    "the model choose and report where it differs")
    ap.add_argument("--pkeys", choices=("on", "off"),
                    help="whether the CPU has protection keys (default: the trace header's, "
                    "which `vmsim record` writes; else on)")
    ap.add_argument("--design", metavar="DESIGN",
                    help="the ->mprotect hook design of the kernel (vmsim check --design: "
                    f"{', '.join(designs.BUILTIN)} or MODULE:FUNCTION; default: the trace "
                    "header's, else merged)")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="print only divergences, refusals and the summary")
    _add_output_options(ap)
    ap.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    return _replay(args, "vmsim replay")


def _replay(args: argparse.Namespace, prog: str, banner: str | None = None,
            display_name: str | None = None) -> int:
    """Replay args.trace and print the verdicts (or JSON Lines), the summary and the
    final address space; the exit status."""
    try:
        r = _replayer(args)
    except TraceError as exc:
        return _bad(prog, str(exc), args.json)
    try:
        outcomes = r.run_all()
    except TraceError as exc:
        return _bad(prog, str(exc), args.json)
    summary = summarize(outcomes, args.placement)
    summary["skipped_syscalls"] = dict(r.trace.skipped)
    summary["partial"] = r.partial
    final = final_differences(r.trace, r.process())
    summary["final_differences"] = final
    status = 1 if summary["divergent"] or final else 0
    if args.json:
        _print_json(r, outcomes, summary, status, args.form)
        return status
    out = sys.stdout
    console = views._console(args.color, out)
    if banner:
        _emit(console, out, banner, "bold")
    start = ("the trace header's maps" if r.trace.maps is not None and not args.maps else
             f"{args.maps}" if args.maps else "an empty process")
    name = display_name or args.trace
    _emit(console, out, f"replaying {name}: {summary['calls']} calls, starting from "
          f"{start}, placement {args.placement}", "bold")
    _emit(console, out, LEGEND, "dim")
    multi = len({o.rec.pid for o in outcomes if o.rec.call is not None}) > 1
    for o in outcomes:
        _print_outcome(console, out, o, args.quiet, multi)
    _print_summary(console, out, summary, r.trace)
    if args.form != "none":
        pid = r.main_pid
        _emit(console, out, f"\nfinal address space{f' of pid {pid}' if pid else ''} "
              f"({args.form}):", "bold")
        out.flush()
        views.print_view(r.process(), args.form, annotate=True, color=args.color, file=out)
    return status


def _print_json(r: Replayer, outcomes: list[Outcome], summary: dict, status: int,
                form: str) -> None:
    for o in outcomes:
        print(json.dumps(o.to_json()))
    final = {"summary": summary, "status": status}
    if form != "none":
        final["maps"] = r.process().maps()
    print(json.dumps(final))


def _emit(console: Console | None, out: TextIO, text: str, style: str | None = None) -> None:
    """Print a line, in `style` when colouring (rich is loaded only then)."""
    if console is None:
        print(text, file=out)
    else:
        from rich.text import Text
        console.print(Text(text, style=style or ""), soft_wrap=True)


_TAG_STYLE = {"ok": "green", "refused": "yellow", "DIFFERS": "bold red", "moved": "yellow",
              "skipped": "dim", ".": "dim", "event": "dim", "unchecked": "cyan"}

#: the tag printed for each verdict ("agree" is "ok" or "refused")
_VERDICT_TAG = {"differ": "DIFFERS", "placement": "moved", "env": ".", "event": "event"}


def _tag(o: Outcome) -> str:
    if o.verdict == "agree":
        return "refused" if o.rec.err is not None else "ok"
    return _VERDICT_TAG.get(o.verdict, o.verdict)


def _print_outcome(console: Console | None, out: TextIO, o: Outcome, quiet: bool,
                   multi: bool = False) -> None:
    """One call's line: tag, trace line, call and recorded result; then the model's
    result, the reasons and the notes below it."""
    rec = o.rec
    tag = _tag(o)
    if quiet and tag in ("ok", ".", "event", "moved"):
        return
    if rec.call is None:
        text = (rec.text or f"--- {rec.signal} ---").strip()
    else:
        recorded = o.recorded
        text = format_args(rec) + " = " + (format_result(rec.call, *recorded)
                                           if recorded else "?")
    if rec.comment and not quiet and rec.event != "undecoded":     # its note says it
        _emit(console, out, f"{'':17}# {rec.comment}", "cyan")
    where = f"{rec.line:>5}" if rec.line is not None else "     "
    pid = f"[pid {rec.pid}] " if multi and rec.pid is not None else ""
    line = f"  {tag:<8}{where}  {pid}{text}"
    if console is None:
        print(line, file=out)
    else:
        from rich.text import Text
        t = Text()
        t.append(f"  {tag:<8}", style=_TAG_STYLE.get(tag, ""))
        t.append(f"{where}  {pid}{text}", style="dim" if tag in (".", "event") else "")
        console.print(t, soft_wrap=True)
    extra = []
    if o.verdict in ("differ", "unchecked", "placement") and o.model and rec.call is not None:
        extra.append(("model:", format_result(rec.call, *o.model)))
    for w in o.why:
        extra.append(("why:", w))
    if o.note and (o.verdict != "env" or not quiet):
        extra.append(("note:" if o.verdict != "skipped" else "skipped:", o.note))
    for k, v in extra:
        _emit(console, out, f"{'':17}{k} {v}", "red" if k == "model:" and tag == "DIFFERS"
              else "yellow" if k == "why:" else "dim")


def _print_summary(console: Console | None, out: TextIO, s: dict, trace: Trace) -> None:
    skipped = trace.skipped
    parts = [f"{s['calls']} calls", f"{s['agree'] - s['refused_as_recorded']} agree",
             f"{s['refused_as_recorded']} refused as recorded", f"{s['differ']} differ"]
    if s["placement"]:
        parts.append(f"{s['placement']} placed elsewhere")
    if s["skipped"]:
        parts.append(f"{s['skipped']} skipped")
    if s["unchecked"]:
        parts.append(f"{s['unchecked']} without a recorded result")
    parts.append(f"{s['env']} taken as recorded")
    _emit(console, out, "\n" + ", ".join(parts) + ".",
          "bold red" if s["divergent"] else "bold green")
    if skipped:
        n = sum(skipped.values())
        top = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items(), key=lambda kv: -kv[1]))
        _emit(console, out, f"{n} lines of other syscalls not modelled, skipped: {top}", "dim")
    if trace.exit_maps is not None:
        final = s["final_differences"]
        _emit(console, out, f"final maps: {len(final)} differences from the recorded exit "
              "snapshot" if final else "final maps and VmFlags: identical to the recorded "
              "exit snapshot", "bold red" if final else "bold green")
        for line in final:
            _emit(console, out, f"  {line}", "red")
    bad = s["divergent"] or s["final_differences"]
    verdict = ("the model diverges from the recorded run" if bad else
               s["partial"] if s["partial"] else
               "the model agrees with every recorded call")
    _emit(console, out, "verdict: " + verdict,
          "bold red" if bad else "bold yellow" if s["partial"] else "bold green")


# --------------------------------------------------------------------------- maps

def _add_maps_parser(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser("maps", help="show the address space a trace leaves, as maps, smaps "
                        "or pmap",
                        description="Show an address space in /proc/PID/maps, smaps or "
                        "pmap form: a maps dump as the model restores it, or the state after "
                        "replaying a trace.")
    ap.add_argument("trace", nargs="?", metavar="TRACE", help="replay this trace first")
    ap.add_argument("--maps", metavar="FILE", help="a /proc/PID/maps dump")
    ap.add_argument("--smaps", metavar="FILE", help="its smaps (VmFlags)")
    ap.add_argument("--form", "-f", choices=("maps", "smaps", "pmap"), default="maps",
                    help="the form to print (default maps)")
    ap.add_argument("--placement", choices=("trace", "model"), default="trace",
                    help="trace: use the recorded mmap addresses (default); model: let "
                    "the model choose")
    ap.add_argument("--no-annotate", action="store_true",
                    help="no enclave annotation lines (byte-exact maps)")
    ap.add_argument("--color", choices=COLOR_CHOICES, default="auto",
                    help="colour the output (default: auto, on a terminal)")
    ap.set_defaults(func=cmd_maps)


def cmd_maps(args: argparse.Namespace) -> int:
    prog = "vmsim maps"
    if not args.trace and not args.maps:
        print(f"{prog}: give a TRACE, a --maps FILE, or both", file=sys.stderr)
        return 2
    try:
        if args.trace:
            r = _replayer(args)
            r.run_all()
            p = r.process()
        else:
            maps = _read_text(args.maps)
            smaps = _read_text(args.smaps) if args.smaps else None
            try:
                p = Kernel().spawn(maps=maps, smaps=smaps, maps_path=args.maps,
                                   smaps_path=args.smaps)
            except MapsError as exc:
                raise TraceError(exc.reason, exc.path, exc.line) from None
    except TraceError as exc:
        return _bad(prog, str(exc), False)
    views.print_view(p, args.form, annotate=not args.no_annotate, color=args.color)
    return 0


# --------------------------------------------------------------------------- demo

DEMO_BANNER = """\
vmsim: the Linux 6.18 memory-map layer and the in-kernel SGX driver, as a model.
This demo replays a recorded enclave loader: it opens /dev/sgx_enclave, reserves an
aligned area, creates the enclave, adds its pages (each with the permissions it may
ever be mapped with), initializes it and maps it -- then tries four things the driver
must refuse. For every call: what the kernel returned, whether the model agrees, and
why a call was refused. Then the final /proc/PID/maps, each enclave mapping annotated
with its pages' declared permissions.
  (your own traces: `vmsim replay TRACE [--maps FILE]`; strace -f output works too)
"""


def _add_output_options(ap: argparse.ArgumentParser) -> None:
    """--json, --form, --color: how replay and demo print what they found."""
    ap.add_argument("--json", "-j", action="store_true",
                    help="JSON Lines: one object per call, then a summary object")
    ap.add_argument("--form", choices=("maps", "smaps", "pmap", "none"), default="maps",
                    help="how to print the final address space (default maps)")
    ap.add_argument("--color", choices=COLOR_CHOICES, default="auto",
                    help="colour the output (default: auto, on a terminal)")


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser("demo", help="replay the bundled SGX enclave-loading trace (what "
                        "bare `vmsim` does)",
                        description="Replay the bundled SGX enclave-loading trace.")
    _add_output_options(ap)
    ap.set_defaults(func=cmd_demo, trace=demo_trace_path(), maps=None, smaps=None,
                    placement="trace", quiet=False)


def cmd_demo(args: argparse.Namespace) -> int:
    return _replay(args, "vmsim demo", banner=None if args.json else DEMO_BANNER,
                   display_name="the bundled demo trace (vmsim/trace/data/sgx_demo.jsonl)")
