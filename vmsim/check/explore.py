"""The exhaustive explorer: every call sequence of a Config's alphabet up to a depth,
breadth first, each distinct state (vmsim.check.state.state_key) expanded once.

The search is level-synchronous: the frontier of depth d is cut into chunks in order,
each chunk expanded (vmsim.check.expand: in this process, in `workers` local
processes, or on Ray actors, vmsim.check.cluster), and the children merged in frontier
order, so every way of running it finds the same states, the same transitions and the
same counterexamples, shortest first.

A state that violates a property is a counterexample and is not expanded further.
"""

from __future__ import annotations

import builtins
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..enclave.signing import key_to_pem
from .expand import Child, Expander, Job, Path
from .state import snapshot, state_key
from .world import signing_key


@dataclass
class Counterexample:
    """A shortest path to a state (or transition) that breaks `property`; `trace` and
    `scenario` are the files vmsim.check.report wrote for it."""

    property: str
    message: str
    path: Path
    labels: list[str]
    trace: str | None = None
    scenario: str | None = None

    @builtins.property      # `property` is a field here
    def length(self) -> int:
        return len(self.path)


@dataclass
class Result:
    """What a search found. states: distinct states that hold every property (a
    violating state is not expanded); transitions: calls applied."""

    design: str
    depth: int
    depth_reached: int = 0
    states: int = 0
    transitions: int = 0
    seconds: float = 0.0
    properties: tuple[str, ...] = ()
    counterexamples: list[Counterexample] = field(default_factory=list)
    #: distinct violating states per property (all of them, saved or not)
    violations: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"design": self.design, "depth": self.depth, "depth_reached": self.depth_reached,
                "states": self.states, "transitions": self.transitions,
                "seconds": round(self.seconds, 3), "properties": list(self.properties),
                "violations": self.violations,
                "counterexamples": [{"property": c.property, "length": c.length,
                                     "message": c.message, "calls": c.labels,
                                     "trace": c.trace, "scenario": c.scenario}
                                    for c in self.counterexamples]}


# --------------------------------------------------------------------------- workers

_EXPANDER: Expander | None = None


def _init_worker(job: Job) -> None:
    global _EXPANDER
    _EXPANDER = Expander(job)


def _expand_chunk(chunk: tuple[Sequence[Path], tuple[bytes, ...]]) -> list[list[Child]]:
    assert _EXPANDER is not None, "worker not initialised"
    return _EXPANDER.expand_many(*chunk)


#: chunks of (paths, keys found good since the last level) -> their expansions, in order
Mapper = Callable[[list[tuple[list[Path], tuple[bytes, ...]]]], Iterable[list[list[Child]]]]


def _chunks(frontier: list[Path], n: int) -> list[list[Path]]:
    size = max(1, -(-len(frontier) // n))
    return [frontier[i:i + size] for i in range(0, len(frontier), size)]


# --------------------------------------------------------------------------- the search

def explore(job: Job, depth: int, workers: int = 1, ray_address: str | None = None,
            max_counterexamples: int = 3,
            progress: Callable[[int, int, int], None] | None = None) -> Result:
    """Explore job to depth; keep up to max_counterexamples per property, shortest
    first. workers > 1 shards over local processes; ray_address over a Ray cluster
    ("local" starts one)."""
    t0 = time.perf_counter()
    if not job.key_pem:
        job = replace(job, key_pem=key_to_pem(signing_key()))
    local = Expander(job)
    if ray_address is not None:
        from .cluster import ray_mapper  # Ray is an optional extra: loaded when asked
        mapper, close = ray_mapper(job, ray_address, workers)
        chunking = 4 * max(workers, 1)
    elif workers > 1:
        ctx = multiprocessing.get_context("fork")
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(job,))
        mapper, close = (lambda chunks: pool.imap(_expand_chunk, chunks)), pool.terminate
        chunking = 4 * workers
    else:
        mapper, close = (lambda chunks: (local.expand_many(*c) for c in chunks)), (lambda: None)
        chunking = 1
    try:
        res = _search(job, local, depth, mapper, chunking, max_counterexamples, progress)
    finally:
        close()
    res.seconds = time.perf_counter() - t0
    return res


def _search(job: Job, local: Expander, depth: int, mapper: Mapper, chunking: int,
            keep: int, progress: Callable[[int, int, int], None] | None) -> Result:
    res = Result(job.design, depth, properties=job.properties)
    key0 = state_key(local.start)
    seen = {key0}
    bad_seen: set[tuple[str, bytes]] = set()
    res.states = 1
    frontier: list[Path] = [()]
    for name, msg in local.state_verdicts(key0, snapshot(local.start)):
        _record(res, local, name, msg, (), keep)
        frontier = []
    # states in `seen` hold every state property: workers need not check them again,
    # so each level's new keys travel with the next level's chunks
    new_good: tuple[bytes, ...] = (key0,) if frontier else ()
    for d in range(1, depth + 1):
        if not frontier:
            break
        nxt: list[Path] = []
        found: list[bytes] = []
        chunks = _chunks(frontier, chunking)
        for chunk, expanded in zip(chunks, mapper([(c, new_good) for c in chunks]), strict=True):
            for path, children in zip(chunk, expanded, strict=True):
                for i, key, bad in children:
                    res.transitions += 1
                    child = (*path, i)
                    if bad:
                        for name, msg in bad:
                            if (name, key) not in bad_seen:
                                bad_seen.add((name, key))
                                _record(res, local, name, msg, child, keep)
                        continue
                    if key not in seen:
                        seen.add(key)
                        found.append(key)
                        nxt.append(child)
        new_good = tuple(found)
        res.states = len(seen)
        res.depth_reached = d
        frontier = nxt
        if progress:
            progress(d, res.states, res.transitions)
    return res


def _record(res: Result, local: Expander, name: str, msg: str, path: Path, keep: int) -> None:
    res.violations[name] = res.violations.get(name, 0) + 1
    if sum(c.property == name for c in res.counterexamples) < keep:
        res.counterexamples.append(Counterexample(name, msg, path,
                                                  [local.ops[i].label() for i in path]))
