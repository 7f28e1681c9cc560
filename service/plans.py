"""Compiled plans reused across requests whose graphs share a structure (a bounded LRU).

The key is schemas.structure_hash: the graph and the source shapes, without values, so the
same network evaluated at new inputs skips validation, shape inference and planning.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from engine import Graph, Limits, Plan, compile_plan
from schemas import structure_hash


class PlanCache:
    """Up to `size` compiled plans, least recently used evicted first. Thread-safe."""

    def __init__(self, size: int, limits: Limits):
        self.size = size
        self.limits = limits
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._plans)

    def plan_for(self, graph: Graph, sources: Mapping[str, np.ndarray]) -> tuple[Plan, bool]:
        """The plan for `graph` with sources of these shapes, and whether it was cached."""
        shapes = {name: value.shape for name, value in sources.items()}
        key = structure_hash(graph, shapes)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan, True
        plan = compile_plan(graph, shapes, self.limits)
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self.size:
                self._plans.popitem(last=False)
        return plan, False
