"""Work arrays kept between batched runs, so that a run does not fault in fresh pages.

A batched run keeps every batched node's value and gradient alive until it ends: B x nodes
floats each. Allocated afresh, those pages are faulted in on every run (glibc hands freed
memory back to the OS) and the faults cost about twice the arithmetic. A Workspace is one
flat float64 array cut into per-node views; the pool lends workspaces to runs and takes them
back, keeping at most `max_bytes` of them (a workspace is never shared by two runs at once).
"""

from __future__ import annotations

import threading

import numpy as np

# What the pool keeps between runs: enough for a 1,000-node graph at 10,000 points twice over.
DEFAULT_POOL_BYTES = 256 * 2**20


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
            while sum(a.nbytes for a in self._free) > self.max_bytes:
                self._free.pop()

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(a.nbytes for a in self._free)


POOL = WorkspacePool()


class Workspace:
    """One run's storage for batched values and gradients: node i's at `offsets[i]` of a flat
    array borrowed from the pool (in units of B floats), returned by `release`."""

    def __init__(self, offsets: dict[int, tuple[int, tuple[int, ...]]], elements: int,
                 size: int, pool: WorkspacePool = POOL):
        self.offsets = offsets  # node -> (start in points, point shape)
        self.size = size
        self.pool = pool
        self.flat = pool.take(elements * size)

    def view(self, i: int) -> np.ndarray | None:
        """Node i's (B, *shape) slot, or None when it has none."""
        entry = self.offsets.get(i)
        if entry is None:
            return None
        start, shape = entry
        count = int(np.prod(shape, dtype=np.int64)) * self.size
        return self.flat[start * self.size : start * self.size + count].reshape(self.size, *shape)

    def release(self) -> None:
        self.pool.give(self.flat)
        self.flat = None
