"""Expanding states: a worker's part of the search (vmsim.check.explore). An Expander
holds the start state of a Job and rebuilds a frontier state by replaying its path on a
snapshot, keeping the last parent built; paths, keys and verdicts are all that cross
process boundaries. State properties are checked once per key in each worker, and not
at all for a key the search sends as already found good (by any worker).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from . import designs
from .properties import mprotect_post, state_properties
from .state import snapshot, state_key
from .world import Config, Op, World, apply, ops, start

Path = tuple[int, ...]
#: what expanding one state gives per op: (op index, child key, [(property, message)])
Child = tuple[int, bytes, list[tuple[str, str]]]


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to rebuild states: picklable."""

    config: Config
    design: str
    properties: tuple[str, ...]
    #: the enclave signing key (PEM), the same in every worker; b"": a new one
    key_pem: bytes = b""


class Expander:
    """Expands states of a Job (one per worker process)."""

    def __init__(self, job: Job):
        self.job = job
        self.ops: tuple[Op, ...] = ops(job.config)
        self.start = start(job.config, designs.new_kernel(job.design), key_pem=job.key_pem)
        self.props = state_properties(job.properties)
        self.check_mprotect = "mprotect" in job.properties
        self.verdicts: dict[bytes, list[tuple[str, str]]] = {}
        #: keys of states the search already holds to keep every state property (sent
        #: by the search with each chunk: another worker may have checked them)
        self.known_good: set[bytes] = set()
        self.last: tuple[Path, World] | None = None

    def world(self, path: Path) -> World:
        """The state path leads to (a fresh copy)."""
        if self.last is not None and self.last[0] == path:
            return snapshot(self.last[1])
        w = snapshot(self.start)
        for i in path:
            apply(w, self.ops[i])
        self.last = (path, w)
        return snapshot(w)

    def state_verdicts(self, key: bytes, w: World) -> list[tuple[str, str]]:
        found = self.verdicts.get(key)
        if found is None:
            found = [(name, msg) for name, prop in self.props.items()
                     if (msg := prop(w)) is not None]
            self.verdicts[key] = found
        return found

    def expand(self, path: Path) -> list[Child]:
        out: list[Child] = []
        for i, op in enumerate(self.ops):
            w = self.world(path)
            result = apply(w, op)
            key = state_key(w)
            bad = [] if key in self.known_good else list(self.state_verdicts(key, w))
            if self.check_mprotect and (msg := mprotect_post(w, op, result)) is not None:
                bad.append(("mprotect", msg))
            out.append((i, key, bad))
        return out

    def expand_many(self, paths: Sequence[Path], known_good: Iterable[bytes] = ()
                    ) -> list[list[Child]]:
        """Expand each path; known_good: keys the search found good since the last call."""
        self.known_good.update(known_good)
        return [self.expand(p) for p in paths]
