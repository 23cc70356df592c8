"""`vmsim tour`: a short tour of the model's Python API.

Maps three pages, splits them with mprotect, merges them back, faults a page,
and shows what the kernel would print and refuse at each step.
"""

from __future__ import annotations

import argparse

from .. import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Fault, Kernel, Process


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser("tour", help="a short tour of the Python API",
                        description="Map three pages, split them with mprotect, merge them "
                        "back, fault a page, and show /proc/PID/maps and the refusals at "
                        "each step.")
    ap.set_defaults(func=cmd_tour)


def _step(title: str, p: Process) -> None:
    print(f"--- {title}")
    print(p.maps(), end="")


def cmd_tour(args: argparse.Namespace) -> int:
    k = Kernel()
    p = k.spawn(stack=True)
    a = p.mmap(0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    _step(f"mmap(NULL, 3 pages, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS) = {a:#x}", p)
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
    _step("mprotect(middle page, PROT_READ): the VMA splits in three", p)
    try:
        p.write(a + PAGE_SIZE, b"x")
    except Fault as fault:
        print(f"--- write to the read-only page: {fault.signal} {fault.code} at {fault.addr:#x}")
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE)
    _step("mprotect(middle page, PROT_READ|PROT_WRITE): merged back into one VMA", p)
    try:
        p.mprotect(a, 4 * PAGE_SIZE, PROT_READ)
    except OSError as err:
        print(f"--- mprotect over a hole at the end: {err.strerror} "
              f"(errno {err.errno}), though the mapped part already changed:")
        print(p.maps(), end="")
    p.mm.validate()
    return 0
