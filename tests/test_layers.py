"""The package's shape: no import cycle, mm/ closed, one place per concern.

Every import of a vmsim module counts, including those inside functions. An edge
goes to the module named (`from ..mm import fault` is an edge to vmsim.mm.fault,
`from ..mm.flags import VM_READ` one to vmsim.mm.flags), and from every module to the
`__init__` of its own package, which Python runs first (the top `vmsim/__init__.py`,
the public face, is the exception: it imports the layers, not the other way round).
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "vmsim")

#: the top-level modules allowed beside the packages
TOP_LEVEL = {"__init__", "__main__", "kernel", "process", "uapi", "errors"}

#: what mm/ may never import (mm sees drivers only through its hook types)
MM_FORBIDDEN = ("vmsim.fs.vfs", "vmsim.fs.memfd", "vmsim.ipc", "vmsim.drivers", "vmsim.trace",
                "vmsim.cli", "vmsim.diff", "vmsim.oracle", "vmsim.kernel", "vmsim.process",
                "vmsim.arch", "vmsim.enclave", "vmsim.syscalls", "vmsim.check")


def _modules() -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, os.path.join(ROOT, ".."))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _resolve(module: str, is_pkg: bool, level: int, name: str | None) -> str:
    parts = module.split(".")
    if not is_pkg:
        parts = parts[:-1]
    if level > 1:
        parts = parts[:len(parts) - (level - 1)]
    return ".".join(parts + ([name] if name else []))


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    is_pkg = path.endswith("__init__.py")
    tree = ast.parse(open(path).read(), path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "vmsim")
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve(module, is_pkg, node.level, node.module) if node.level
                    else node.module or "")
            if base.split(".")[0] != "vmsim":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in MODULES else base)
    parent = module.rsplit(".", 1)[0]
    if parent != "vmsim":                 # the package's __init__ runs first
        out.add(parent)
    return {m for m in out if m in MODULES and m != module}


GRAPH = {m: imports_of(m) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(GRAPH):
        if m not in index:
            visit(m)
    return out


def test_no_import_cycle():
    assert _cycles() == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("vmsim.mm")))
def test_mm_is_closed(module):
    bad = sorted(m for m in GRAPH[module] if m.startswith(MM_FORBIDDEN))
    assert bad == [], f"{module} imports {bad}"


def test_only_the_package_face_at_top_level():
    top = {m.split(".")[1] for m in MODULES if m.count(".") == 1 and
           not os.path.basename(MODULES[m]) == "__init__.py"}
    assert top <= TOP_LEVEL, sorted(top - TOP_LEVEL)


def test_core_imports_no_optional_extra():
    """The core stays importable without the CLI's, the emulator's or the cluster's extras."""
    import subprocess
    import sys
    code = ("import sys, vmsim, vmsim.trace.replay, vmsim.diff.scenario, vmsim.enclave.loader; "
            "bad = {'rich', 'unicorn', 'ray'} & set(sys.modules); assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
