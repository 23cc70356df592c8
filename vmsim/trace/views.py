"""Views of a model process's address space: /proc/PID/maps, smaps and a pmap-like
table, optionally annotated with each enclave page's declared permissions, and
coloured with `rich` on a terminal (imported only then: the core never needs it).

    render(p, form="maps", annotate=True) -> str          plain text
    print_view(p, form, color=None, file=sys.stdout)      coloured when a terminal
"""

from __future__ import annotations

import sys

from ..arch.x86.sgx.defs import (
    SGX_PAGE_TYPE_REG,
    SGX_PAGE_TYPE_SECS,
    SGX_PAGE_TYPE_TCS,
    SGX_PAGE_TYPE_TRIM,
    SGX_PAGE_TYPE_VA,
)
from ..drivers.sgx.encl import Encl, prot_name
from ..uapi import PAGE_SHIFT

FORMS = ("maps", "smaps", "pmap")

_TYPE_NAMES = {SGX_PAGE_TYPE_SECS: "SECS", SGX_PAGE_TYPE_TCS: "TCS", SGX_PAGE_TYPE_REG: "REG",
               SGX_PAGE_TYPE_VA: "VA", SGX_PAGE_TYPE_TRIM: "TRIM"}


def _encl(vma):
    enc = getattr(vma, "private_data", None)
    return enc if isinstance(enc, Encl) else None


def enclave_note(vma) -> str | None:
    """The declared permissions of the enclave pages under vma, as runs:
    `declared: +0x0000-0x2000 rw- TCS, ...` (offsets from the enclave base)."""
    encl = _encl(vma)
    if encl is None:
        return None
    first, last = vma.start >> PAGE_SHIFT, vma.end >> PAGE_SHIFT
    parts = []
    base = encl.base
    for start, (end, prot) in encl.intent.runs.items():
        s, e = max(start, first), min(end, last)
        if s >= e:
            continue
        types = sorted({_TYPE_NAMES.get(encl.pages[pfn].type, "?")
                        for pfn in range(s, e) if pfn in encl.pages})
        parts.append(f"{(s << PAGE_SHIFT) - base:#x}-{(e << PAGE_SHIFT) - base:#x} "
                     f"{prot_name(prot)} {'/'.join(types)}")
    covered = sum(min(end, last) - max(start, first) for start, (end, _) in
                  encl.intent.runs.items() if min(end, last) > max(start, first))
    if covered < last - first:
        parts.append(f"{last - first - covered} page(s) never added")
    state = "initialized" if encl.initialized else "created" if encl.created else "empty"
    return f"enclave ({state}) pages declared: " + ", ".join(parts) if parts else \
        f"enclave ({state}): no pages added here"


def _lines_maps(p, annotate: bool):
    """(line text, kind, note) per VMA, kind for colouring."""
    text = p.maps().splitlines()    # maps() ends with a newline, as the kernel's
    vmas = list(p.mm.tree)
    out = []
    for i, line in enumerate(text):
        vma = vmas[i] if i < len(vmas) else None
        kind = _kind(line, vma)
        note = enclave_note(vma) if annotate and vma is not None else None
        out.append((line, kind, note))
    return out


def _kind(line: str, vma) -> str:
    name = line[73:] if len(line) > 73 else ""
    perms = line.split()[1] if len(line.split()) > 1 else "----"
    if vma is not None and _encl(vma) is not None:
        return "enclave"
    if name == "[stack]":
        return "stack"
    if name == "[heap]":
        return "heap"
    if name.startswith("["):
        return "special"
    if "x" in perms:
        return "code"
    if name:
        return "file"
    return "anon" if perms != "---p" else "none"


def render(p, form: str = "maps", annotate: bool = True) -> str:
    """The address space as text: "maps" (byte-exact /proc/PID/maps, with enclave
    annotations on their own `#` lines when annotate), "smaps", or "pmap"."""
    if form == "smaps":
        return p.smaps()
    if form == "pmap":
        return "\n".join(_pmap_lines(p)) + "\n"
    if form != "maps":
        raise ValueError(f"unknown form {form!r} ({', '.join(FORMS)})")
    out = []
    for line, _kind, note in _lines_maps(p, annotate):
        out.append(line)
        if note:
            out.append(f"    # {note}")
    return "\n".join(out) + "\n"


def _pmap_lines(p) -> list[str]:
    """procps pmap's default form: "%016lx %6luK %s %s", then " total %16ldK"."""
    out, total = [], 0
    for v in p.vmas():
        kb = (v.end - v.start) >> 10
        total += kb
        mode = v.perms[:3] + ("s" if v.perms[3] == "s" else "-") + "-"
        name = v.name or ("[ stack ]" if False else "[ anon ]")
        if name == "[stack]":
            name = "[ stack ]"
        elif name.startswith("/"):
            name = name.rsplit("/", 1)[-1]
        out.append(f"{v.start:016x} {kb:6d}K {mode} {name}")
    out.append(f" total {total:16d}K")
    return out


STYLES = {"enclave": "bold magenta", "stack": "yellow", "heap": "blue", "special": "cyan",
          "code": "red", "file": "green", "anon": "white", "none": "dim"}


def want_color(color: str | None, file) -> bool:
    if color == "always":
        return True
    if color == "never":
        return False
    return hasattr(file, "isatty") and file.isatty()


def print_view(p, form: str = "maps", annotate: bool = True, color: str | None = None,
               file=None) -> None:
    """Print render(p, form) — coloured with rich when color is "always", or "auto"/None
    and file is a terminal (and rich is installed)."""
    file = file or sys.stdout
    console = _console(color, file)
    if console is None or form != "maps":
        file.write(render(p, form, annotate))
        return
    from rich.text import Text
    for line, kind, note in _lines_maps(p, annotate):
        console.print(Text(line, style=STYLES.get(kind, "")), soft_wrap=True)
        if note:
            console.print(Text(f"    # {note}", style="magenta"), soft_wrap=True)


def _console(color, file):
    if not want_color(color, file):
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(file=file, force_terminal=True, highlight=False, soft_wrap=True)
