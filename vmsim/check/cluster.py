"""Sharding the search over a Ray cluster (the optional extra `vmsim[cluster]`).

`ray_mapper(job, address, workers)` starts one actor per worker (each an Expander,
vmsim.check.explore, building its own start state) and maps chunks of the frontier
onto them round-robin, giving the results back in chunk order, so the search merges
them exactly as it merges its own. address "local" starts a local cluster
(`ray.init()`); anything else is passed to `ray.init(address=...)`. This module is
imported only when --ray is given: vmsim works without Ray installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import ray

from .expand import Child, Expander, Job, Path


class _Worker:
    def __init__(self, job: Job):
        self.expander = Expander(job)

    def expand_many(self, paths: list[Path], known_good: tuple[bytes, ...]) -> list[list[Child]]:
        return self.expander.expand_many(paths, known_good)


def connect(address: str) -> None:
    """ray.init() for address ("local": a cluster on this machine), once."""
    if ray.is_initialized():
        return
    ray.init(address=None if address == "local" else address, include_dashboard=False,
             log_to_driver=False)


def ray_mapper(job: Job, address: str, workers: int
               ) -> tuple[Callable[[list[tuple[list[Path], tuple[bytes, ...]]]],
                                   Iterable[list[list[Child]]]],
                          Callable[[], None]]:
    """A mapper onto `workers` Ray actors (0: one per CPU of the cluster) and the
    function that stops them."""
    connect(address)
    n = workers if workers > 0 else int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    remote: Any = ray.remote(num_cpus=1)(_Worker)
    actors: list[Any] = [remote.remote(job) for _ in range(max(n, 1))]

    def mapper(chunks: list[tuple[list[Path], tuple[bytes, ...]]]) -> Iterable[list[list[Child]]]:
        refs = [actors[i % len(actors)].expand_many.remote(*c) for i, c in enumerate(chunks)]
        return ray.get(refs)

    def close() -> None:
        for a in actors:
            ray.kill(a)
    return mapper, close
