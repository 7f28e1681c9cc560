"""One thread-safe least-recently-used map, bounded by its entry count and by a total cost.

The in-process result store (cost: bytes), the plan cache (cost: nodes) and the known-request
map (count only) are all this map with different bounds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _no_cost(key: object, value: object) -> int:
    return 0


class LockedLRU(Generic[K, V]):
    """At most `max_items` entries whose `cost(key, value)` sums to at most `max_cost`;
    the least recently used go first. An entry costing more than `max_cost` on its own is
    not kept. Every method takes one lock, so threads may share it."""

    def __init__(
        self,
        *,
        max_items: int | None = None,
        max_cost: int | None = None,
        cost: Callable[[K, V], int] = _no_cost,
    ):
        self.max_items = max_items
        self.max_cost = max_cost
        self.cost_of = cost
        self.cost = 0  # the sum over the entries held
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The value of `key`, now the most recently used, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V) -> bool:
        """Keep `value` under `key` (replacing any), evicting as needed; False if too costly."""
        cost = self.cost_of(key, value)
        if self.max_cost is not None and cost > self.max_cost:
            return False
        with self._lock:
            self._pop(key)
            self._entries[key] = (value, cost)
            self.cost += cost
            while self._over_bounds():
                self._pop(next(iter(self._entries)))
        return True

    def pop(self, key: K) -> V | None:
        """Drop `key`; its value, or None if it was not held."""
        with self._lock:
            return self._pop(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.cost = 0

    def _pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.cost -= entry[1]
        return entry[0]

    def _over_bounds(self) -> bool:
        too_many = self.max_items is not None and len(self._entries) > self.max_items
        return too_many or (self.max_cost is not None and self.cost > self.max_cost)
