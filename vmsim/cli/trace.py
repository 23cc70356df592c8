"""`vmsim replay`, `vmsim maps`, `vmsim demo` (and bare `vmsim`): each *_main(argv)
returns the exit status — 0 every call agrees, 1 a divergence, 2 bad input or usage.
Bad input is answered with one line `vmsim CMD: FILE:LINE: reason`, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..trace.format import TraceError

LEGEND = ("ok = the model agrees with the recorded result; refused = both refuse it the "
          "same way; DIFFERS = the model disagrees; skipped = cannot be replayed; "
          ". = not an mm call, taken as recorded")


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(f"{self.prog}: {message}")

    def exit(self, status=0, message=None):     # --help: return, do not exit
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


class _Exit(Exception):
    def __init__(self, status):
        self.status = status


def _load_inputs(prog, args):
    """(trace, maps text, smaps text, maps path) or raise the one-line error."""
    from ..fs.procmaps import MapsError
    from ..trace.format import load_trace
    trace = load_trace(args.trace) if getattr(args, "trace", None) else None
    maps = smaps = None
    if args.maps:
        maps = _read_text(args.maps)
    if getattr(args, "smaps", None):
        smaps = _read_text(args.smaps)
    return trace, maps, smaps, MapsError


def _read_text(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror}", path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TraceError("not UTF-8 text", path, raw[:exc.start].count(b"\n") + 1) from None


def _bad(prog, msg, as_json, out=None) -> int:
    if as_json:
        print(json.dumps({"error": msg}), file=out or sys.stdout)
    else:
        print(f"{prog}: {msg}", file=sys.stderr)
    return 2


def _replayer(prog, args):
    from ..fs.procmaps import MapsError
    from ..trace.replay import Replayer
    trace, maps, smaps, _ = _load_inputs(prog, args)
    try:
        return Replayer(trace, maps=maps, smaps=smaps, maps_path=args.maps,
                        placement=getattr(args, "placement", "trace"))
    except MapsError as exc:
        raise TraceError(exc.reason, exc.path, exc.line) from None


# --------------------------------------------------------------------------- replay

def _replay_parser(prog="vmsim replay"):
    ap = _Parser(prog=prog, description="Replay a trace (JSON Lines or strace -f output) on "
                 "the model: a verdict on every call, an explanation for every refusal, "
                 "and the final maps.")
    ap.add_argument("trace", metavar="TRACE", help="a .jsonl trace or strace output")
    ap.add_argument("--maps", metavar="FILE", help="/proc/PID/maps of the process when the "
                    "trace starts (default: the trace header's, or an empty process)")
    ap.add_argument("--smaps", metavar="FILE", help="its /proc/PID/smaps (VmFlags)")
    ap.add_argument("--placement", choices=("trace", "model"), default="trace",
                    help="trace: use the recorded mmap addresses (default); model: let "
                    "the model choose and report where it differs")
    ap.add_argument("--json", "-j", action="store_true",
                    help="JSON Lines: one object per call, then a summary object")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="print only divergences, refusals and the summary")
    ap.add_argument("--form", choices=("maps", "smaps", "pmap", "none"), default="maps",
                    help="how to print the final address space (default maps)")
    ap.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    return ap


def replay_main(argv=None, prog="vmsim replay", banner=None, display_name=None) -> int:
    as_json = "--json" in (argv or []) or "-j" in (argv or [])
    try:
        args = _replay_parser(prog).parse_args(argv)
    except _Usage as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except _Exit as exc:
        return exc.status
    try:
        r = _replayer(prog, args)
    except TraceError as exc:
        return _bad(prog, str(exc), as_json)
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:
        return _bad(prog, f"{args.trace}: cannot read the input: {exc}", as_json)
    try:
        outcomes = r.run_all()
    except TraceError as exc:
        return _bad(prog, str(exc), as_json)
    from ..trace.replay import summarize
    summary = summarize(outcomes, args.placement)
    summary["skipped_syscalls"] = dict(r.trace.skipped)
    status = 1 if summary["divergent"] else 0
    if args.json:
        for o in outcomes:
            print(json.dumps(o.to_json()))
        final = {"summary": summary, "status": status}
        if args.form != "none":
            final["maps"] = r.process().maps()
        print(json.dumps(final))
        return status
    out = sys.stdout
    console = _console(args.color, out)
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
    _print_summary(console, out, summary, r.trace.skipped)
    if args.form != "none":
        from ..trace.views import print_view
        pid = r.main_pid
        _emit(console, out, f"\nfinal address space{f' of pid {pid}' if pid else ''} "
              f"({args.form}):", "bold")
        out.flush()
        print_view(r.process(), args.form, annotate=True, color=args.color, file=out)
    return status


def _console(color, out):
    from ..trace.views import _console as c
    return c(color, out)


def _emit(console, out, text, style=None):
    if console is None:
        print(text, file=out)
    else:
        from rich.text import Text
        console.print(Text(text, style=style or ""), soft_wrap=True)


_TAG_STYLE = {"ok": "green", "refused": "yellow", "DIFFERS": "bold red", "moved": "yellow",
              "skipped": "dim", ".": "dim", "event": "dim", "unchecked": "cyan"}


def _print_outcome(console, out, o, quiet, multi=False):
    from ..trace.replay import format_args, format_result
    rec = o.rec
    if o.verdict == "agree":
        tag = "refused" if rec.err is not None else "ok"
    elif o.verdict == "differ":
        tag = "DIFFERS"
    elif o.verdict == "placement":
        tag = "moved"
    elif o.verdict == "env":
        tag = "."
    elif o.verdict == "event":
        tag = "event"
    else:
        tag = o.verdict
    if quiet and tag in ("ok", ".", "event", "moved"):
        return
    if rec.call is None:
        text = (rec.text or f"--- {rec.signal} ---").strip()
    else:
        recorded = o.recorded
        text = format_args(rec) + " = " + (format_result(rec.call, *recorded)
                                           if recorded else "?")
    if rec.comment and not quiet:
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
    if o.verdict in ("differ", "unchecked", "placement") and o.model is not None:
        extra.append(("model:", format_result(rec.call, *o.model)))
    for w in o.why:
        extra.append(("why:", w))
    if o.note and (o.verdict != "env" or not quiet):
        extra.append(("note:" if o.verdict != "skipped" else "skipped:", o.note))
    for k, v in extra:
        _emit(console, out, f"{'':17}{k} {v}", "red" if k == "model:" and tag == "DIFFERS"
              else "yellow" if k == "why:" else "dim")


def _print_summary(console, out, s, skipped):
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
    _emit(console, out, "verdict: " + ("the model diverges from the recorded run"
                                       if s["divergent"] else
                                       "the model agrees with every recorded call"),
          "bold red" if s["divergent"] else "bold green")


# --------------------------------------------------------------------------- maps

def maps_main(argv=None, prog="vmsim maps") -> int:
    ap = _Parser(prog=prog, description="Show an address space in /proc/PID/maps, smaps or "
                 "pmap form: a maps dump as the model restores it, or the state after "
                 "replaying a trace.")
    ap.add_argument("trace", nargs="?", metavar="TRACE", help="replay this trace first")
    ap.add_argument("--maps", metavar="FILE", help="a /proc/PID/maps dump")
    ap.add_argument("--smaps", metavar="FILE", help="its smaps (VmFlags)")
    ap.add_argument("--form", "-f", choices=("maps", "smaps", "pmap"), default="maps")
    ap.add_argument("--placement", choices=("trace", "model"), default="trace")
    ap.add_argument("--no-annotate", action="store_true",
                    help="no enclave annotation lines (byte-exact maps)")
    ap.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    try:
        args = ap.parse_args(argv)
    except _Usage as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except _Exit as exc:
        return exc.status
    if not args.trace and not args.maps:
        print(f"{prog}: give a TRACE, a --maps FILE, or both", file=sys.stderr)
        return 2
    try:
        if args.trace:
            r = _replayer(prog, args)
            r.run_all()
            p = r.process()
        else:
            import vmsim

            from ..fs.procmaps import MapsError
            _, maps, smaps, _ = _load_inputs(prog, args)
            try:
                p = vmsim.Kernel().spawn(maps=maps, smaps=smaps, maps_path=args.maps)
            except MapsError as exc:
                raise TraceError(exc.reason, exc.path, exc.line) from None
    except TraceError as exc:
        return _bad(prog, str(exc), False)
    from ..trace.views import print_view
    print_view(p, args.form, annotate=not args.no_annotate, color=args.color)
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


def demo_main(argv=None, prog="vmsim demo") -> int:
    from ..trace.demo import demo_trace_path
    argv = list(argv or [])
    ap = _Parser(prog=prog, description="Replay the bundled SGX enclave-loading trace.")
    ap.add_argument("--json", "-j", action="store_true")
    ap.add_argument("--form", choices=("maps", "smaps", "pmap", "none"), default="maps")
    ap.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    try:
        args = ap.parse_args(argv)
    except _Usage as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except _Exit as exc:
        return exc.status
    rest = [demo_trace_path(), "--form", args.form, "--color", args.color]
    if args.json:
        rest.append("--json")
    return replay_main(rest, prog=prog, banner=None if args.json else DEMO_BANNER,
                       display_name="the bundled demo trace (vmsim/trace/data/sgx_demo.jsonl)")


def main(argv=None) -> int:
    """Stand-alone entry (`python -m vmsim.trace.cli replay ...`) until vmsim.cli wires
    the subcommands."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        return demo_main([])
    cmd, rest = argv[0], argv[1:]
    table = {"replay": replay_main, "maps": maps_main, "demo": demo_main}
    if cmd not in table:
        print(f"vmsim: unknown command {cmd!r} (replay, maps, demo)", file=sys.stderr)
        return 2
    return table[cmd](rest)


if __name__ == "__main__":
    sys.exit(main())
