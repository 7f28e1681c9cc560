"""Compiled plans reused across requests whose graphs share a structure (a bounded LRU).

The key is schemas.structure_hash: the graph and the source shapes, without values, so the
same network evaluated at new inputs skips validation, shape inference and planning.

A plan's memory grows with its node count (about 0.6 KB a node for scalar graphs), so the cache
is bounded by the nodes it holds as well as by the number of plans: a handful of maximal graphs
cannot take a worker's memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from engine import Graph, Limits, Plan, compile_plan
from schemas import structure_hash


class PlanCache:
    """Up to `size` compiled plans holding at most `max_nodes` nodes in all, least recently
    used evicted first. A plan of more than `max_nodes` nodes is compiled but not kept.
    Thread-safe."""

    def __init__(self, size: int, max_nodes: int, limits: Limits):
        self.size = size
        self.max_nodes = max_nodes
        self.limits = limits
        self.nodes = 0  # held by the cached plans
        self._plans: OrderedDict[str, tuple[Plan, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._plans)

    def plan_for(self, graph: Graph, sources: Mapping[str, np.ndarray]) -> tuple[Plan, bool]:
        """The plan for `graph` with sources of these shapes, and whether it was cached."""
        shapes = {name: value.shape for name, value in sources.items()}
        key = structure_hash(graph, shapes)
        with self._lock:
            entry = self._plans.get(key)
            if entry is not None:
                self._plans.move_to_end(key)
                return entry[0], True
        plan = compile_plan(graph, shapes, self.limits)
        cost = len(plan.ids)
        if cost > self.max_nodes:
            return plan, False
        with self._lock:
            replaced = self._plans.pop(key, None)
            if replaced is not None:  # compiled meanwhile by another thread
                self.nodes -= replaced[1]
            self._plans[key] = (plan, cost)
            self.nodes += cost
            while len(self._plans) > self.size or self.nodes > self.max_nodes:
                _, (_, dropped) = self._plans.popitem(last=False)
                self.nodes -= dropped
        return plan, False
