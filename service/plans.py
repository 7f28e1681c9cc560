"""Compiled plans reused across requests whose graphs share a structure (a bounded LRU).

The key is schemas.structure_key: the graph id and the source shapes, without values, so the
same network evaluated at new inputs skips validation, shape inference and planning.

A plan's memory grows with its node count (about 0.15 KB a node for scalar graphs), so the cache
is bounded by the nodes it holds as well as by the number of plans: a handful of maximal graphs
cannot take a worker's memory.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from engine import Graph, Limits, Plan, compile_plan
from schemas import graph_id, structure_key
from service.store.lru import LockedLRU


def _plan_nodes(key: str, plan: Plan) -> int:
    return len(plan.ids)


class PlanCache:
    """Up to `size` compiled plans holding at most `max_nodes` nodes in all, least recently
    used evicted first. A plan of more than `max_nodes` nodes is compiled but not kept.
    Thread-safe."""

    def __init__(self, size: int, max_nodes: int, limits: Limits):
        self.size = size
        self.max_nodes = max_nodes
        self.limits = limits
        self._plans: LockedLRU[str, Plan] = LockedLRU(
            max_items=size, max_cost=max_nodes, cost=_plan_nodes
        )

    def __len__(self) -> int:
        return len(self._plans)

    @property
    def nodes(self) -> int:
        """Nodes held by the cached plans."""
        return self._plans.cost

    def plan_for(
        self,
        graph: Graph,
        sources: Mapping[str, np.ndarray],
        graph_key: str | None = None,
        batched: Collection[str] = (),
    ) -> tuple[Plan, bool]:
        """The plan for `graph` with sources of these shapes, and whether it was cached.

        `graph_key` is the graph's id (schemas.graph_id) when the caller has it already; the
        `batched` sources' values carry a leading batch axis, which the plan does not fix.
        """
        shapes = {name: value.shape[1:] if name in batched else value.shape
                  for name, value in sources.items()}
        key = structure_key(graph_key or graph_id(graph), shapes, batched)
        plan = self._plans.get(key)
        if plan is not None:
            return plan, True
        plan = compile_plan(graph, shapes, self.limits, batched=batched)
        self._plans.put(key, plan)
        return plan, False
