"""Work arrays kept between batched runs, so that a run does not fault in fresh pages.

A batched run keeps every batched node's value alive until it ends: B x nodes floats.
Allocated afresh, those pages are faulted in on every run (glibc hands freed memory back to
the OS) and the faults cost about twice the arithmetic. A Workspace is one flat float64 array
cut into per-node views; the pool lends workspaces to runs and takes them back, keeping at
most `max_bytes` of them (a workspace is never shared by two runs at once).
"""

from __future__ import annotations

import threading

import numpy as np

# What the pool keeps between runs (per process): the values and gradients of a 1,000-node
# graph at 10,000 points take 2 x 38 MiB.
DEFAULT_POOL_BYTES = 128 * 2**20


class WorkspacePool:
    """Flat float64 arrays lent out by size and taken back; thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_POOL_BYTES):
        self.max_bytes = max_bytes
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, elements: int) -> np.ndarray:
        """A flat array of at least `elements` floats (contents undefined)."""
        with self._lock:
            fits = [k for k, a in enumerate(self._free) if a.size >= elements]
            if fits:
                best = min(fits, key=lambda k: self._free[k].size)
                return self._free.pop(best)
        return np.empty(elements)

    def give(self, array: np.ndarray) -> None:
        """Take `array` back; kept when it fits in the pool's budget (the largest go first)."""
        if array.nbytes > self.max_bytes:
            return
        with self._lock:
            self._free.append(array)
            self._free.sort(key=lambda a: a.size)
            self._trim()

    def _trim(self) -> None:
        while self._free and sum(a.nbytes for a in self._free) > self.max_bytes:
            self._free.pop()

    def resize(self, max_bytes: int) -> None:
        """A new budget; kept arrays over it are let go, the largest first."""
        with self._lock:
            self.max_bytes = max_bytes
            self._trim()

    def clear(self) -> None:
        """Let go of every kept array."""
        with self._lock:
            self._free.clear()

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(a.nbytes for a in self._free)


POOL = WorkspacePool()


class Workspace:
    """One run's storage for batched values: `views[i]` is node i's (B, *shape)
    slot of a flat array borrowed from the pool (None for a node without one); `release`
    gives the array back."""

    def __init__(self, slots: tuple[tuple[int, int, int, tuple[int, ...]], ...], elements: int,
                 size: int, nodes: int, scalar_slots: bool, pool: WorkspacePool = POOL):
        self.pool = pool
        self.flat = pool.take(elements * size)
        self.views: list[np.ndarray | None] = [None] * nodes
        if scalar_slots:  # one row per node: cheap views
            rows = list(self.flat[: elements * size].reshape(elements, size))
            for (node, _, _, _), row in zip(slots, rows, strict=True):
                self.views[node] = row
            return
        for node, start, count, shape in slots:
            self.views[node] = self.flat[start * size : (start + count) * size].reshape(
                size, *shape)

    def release(self) -> None:
        self.pool.give(self.flat)
        self.flat = None
        self.views = []
