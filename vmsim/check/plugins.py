"""Loading what a user names as MODULE:FUNCTION: a design's driver variant
(vmsim.check.designs) or a state property (vmsim.check.properties)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def load_callable(kind: str, spec: str, builtin: Iterable[str]) -> Callable[..., Any]:
    """The callable MODULE:FUNCTION names; ValueError, saying what `kind` of name was
    expected (one of `builtin`, or MODULE:FUNCTION), when it cannot be loaded."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"{kind} {spec!r}: expected one of {', '.join(builtin)} or "
                         "MODULE:FUNCTION")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{kind} {spec!r}: {exc}") from None
    if not callable(fn):
        raise ValueError(f"{kind} {spec!r}: not callable")
    return fn
