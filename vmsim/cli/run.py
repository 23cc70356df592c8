"""`vmsim run [--trace] [--maps] [--record FILE] [--stdin FILE] -- PROG ARGS...`: execute
a real x86-64 program of this machine on the emulated CPU with the model as its kernel
(vmsim.run.Machine), and exit with its exit status (128 + the signal that killed it).

PROG is found on PATH as a shell finds it (a name with a slash is a path). The program
gets the caller's environment and working directory, fds 0, 1 and 2 connected to ours
(stdin from FILE with --stdin), and runs as under `setarch -R`: personality
ADDR_NO_RANDOMIZE, no ASLR. The CPU is this machine's, as far as the emulator executes
it (vmsim.arch.x86.emu.cpuid); protection keys are the model's if this CPU has them.
Its SGX EPC has --sgx-epc-pages N pages (default 16384, 64 MiB): an enclave larger than
that runs as on hardware, the driver writing pages out and back (EWB/ELDU).

--trace writes each syscall to stderr as strace prints it, under a call the model
refused and under a fault the reason `vmsim replay` would give (vmsim.run.strace), and
at the end the syscall numbers the model does not know (each answered ENOSYS); --maps
writes the program's final /proc/PID/maps to stderr as it exits (before its mm is torn
down); --record FILE writes the run as a JSON Lines trace that `vmsim replay FILE`
replays (vmsim.run.record). The vDSO image is built before the program starts (it
needs gcc). Bad usage, a program that cannot be found or executed, a vDSO that cannot
be built, a trace file that cannot be written: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO

from ..uapi import ADDR_NO_RANDOMIZE


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser("run", help="execute a real program on the emulated CPU with the "
                        "model as its kernel",
                        description="Run PROG (found on PATH) on an emulated x86-64 CPU whose "
                        "memory and syscalls are the model's, ASLR off as under setarch -R; "
                        "exit with its exit status (128+N when killed by signal N).")
    ap.add_argument("--trace", action="store_true",
                    help="write each syscall to stderr in strace syntax")
    ap.add_argument("--maps", action="store_true",
                    help="write the final /proc/PID/maps to stderr as the program exits")
    ap.add_argument("--record", metavar="FILE",
                    help="write the run as a JSON Lines trace that `vmsim replay FILE` replays")
    ap.add_argument("--stdin", metavar="FILE", help="the program's stdin (default: ours)")
    ap.add_argument("--sgx-epc-pages", metavar="N", type=epc_pages,
                    help="the emulated SGX CPU's EPC size in pages (default 16384: 64 MiB)")
    ap.add_argument("command", nargs=argparse.REMAINDER, metavar="-- PROG ARGS...",
                    help="the program and its arguments")
    ap.set_defaults(func=cmd_run)


def find_program(name: str, path: str | None) -> str | None:
    """The file a shell would execute for `name`: itself if it has a slash, else the
    first executable regular file of that name in the PATH directories."""
    if "/" in name:
        return name
    for directory in (path or os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def epc_pages(text: str) -> int:
    """--sgx-epc-pages: a positive number of pages."""
    if not text.isdigit() or not int(text):
        raise argparse.ArgumentTypeError(f"not a positive number of pages: {text!r}")
    return int(text)


def exit_status(wait_status: int) -> int:
    """A shell's $? for a wait status: the exit code, or 128 + the killing signal."""
    signal = wait_status & 0x7F
    return 128 + signal if signal else (wait_status >> 8) & 0xFF


def cmd_run(args: argparse.Namespace) -> int:
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not argv:
        print("vmsim run: no program given (vmsim run -- PROG ARGS...)", file=sys.stderr)
        return 2
    path = find_program(argv[0], os.environ.get("PATH"))
    if path is None:
        print(f"vmsim run: {argv[0]}: command not found", file=sys.stderr)
        return 2
    try:
        stdin = os.open(args.stdin, os.O_RDONLY) if args.stdin else 0
    except OSError as exc:
        print(f"vmsim run: {args.stdin}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        record = open(args.record, "w") if args.record else None
    except OSError as exc:
        print(f"vmsim run: {args.record}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        return _run(path, argv, stdin, record, args)
    finally:
        if stdin:
            os.close(stdin)
        if record is not None:
            record.close()


def _run(path: str, argv: list[str], stdin: int, record: IO[str] | None,
         args: argparse.Namespace) -> int:
    try:
        import unicorn  # noqa: F401  (the emulator: the `emu` extra)
    except ImportError:
        print("vmsim run: needs the unicorn package (pip install vmsim[emu])", file=sys.stderr)
        return 2
    from ..arch.x86.emu.cpuid import host_cpu_model
    from ..arch.x86.entry.vdso.build import VdsoBuildError, vdso_image
    from ..arch.x86.sgx.cpu import SgxCpu
    from ..fs.stdio import HostStream
    from ..kernel import Kernel
    from ..process import Process
    from ..run.machine import Deadlock, Machine
    from ..run.record import RunRecorder
    from ..run.strace import Tracer
    from ..syscalls.table import UNMODELLED_NAMES

    try:
        vdso_image()
    except VdsoBuildError as exc:
        print(f"vmsim run: {str(exc).removeprefix('vmsim: ')}", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    sgx = SgxCpu(epc_pages=args.sgx_epc_pages) if args.sgx_epc_pages else SgxCpu()
    cpu = host_cpu_model(sgx=sgx)           # CPUID leaf 0x12 reports its EPC
    kernel = Kernel(pkeys=cpu.pkeys, sgx=sgx)
    final_maps: dict[int, str] = {}
    recorder = RunRecorder("vmsim run --record -- " + " ".join(argv)) if record else None
    tracer = Tracer(say if args.trace else None, recorder) if args.trace or recorder else None
    envp = _environ()

    def at_exit(process: Process) -> None:
        final_maps[process.pid] = process.maps()
        if recorder is not None:
            recorder.exiting(process)

    with Machine(kernel, cpu, tracer=tracer, on_exit=at_exit) as m:
        try:
            leader = m.start(path, argv, envp, (HostStream(stdin), HostStream(1),
                             HostStream(2)), personality=ADDR_NO_RANDOMIZE, cwd=os.getcwd())
        except OSError as exc:
            print(f"vmsim run: {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        if recorder is not None:
            recorder.started(leader, path, argv, envp)
        try:
            status = m.run(leader)
        except Deadlock as exc:
            print(f"vmsim run: {exc}", file=sys.stderr)
            return 2
    if args.maps:
        sys.stderr.write(final_maps.get(leader.process.pid, ""))
    for nr in kernel.unknown_syscalls:      # once each, after the program's own output
        name = UNMODELLED_NAMES.get(nr)
        say(f"vmsim run: syscall {nr}{f' ({name})' if name else ''} is not modelled (answered ENOSYS)")
    if recorder is not None and record is not None:
        try:
            recorder.write(record, cpu.pkeys)
            record.flush()
        except OSError as exc:
            print(f"vmsim run: {args.record}: {exc.strerror}", file=sys.stderr)
            return 2
    return exit_status(status)


def _environ() -> list[bytes]:
    """The caller's environment as it gave it to us (/proc/self/environ: without what
    Python itself added, such as the LC_CTYPE of its C locale coercion, PEP 538)."""
    try:
        with open("/proc/self/environ", "rb") as f:
            return [var for var in f.read().split(b"\0") if var]
    except OSError:
        return [key + b"=" + value for key, value in os.environb.items()]
