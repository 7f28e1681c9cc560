"""The plan cache: reuse by structure, bounded by plan count and by the nodes the plans hold."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Graph, Limits, Node, bind_sources
from service.plans import PlanCache


def chain_graph(length: int, op: str = "tanh") -> Graph:
    """x followed by `length` gates: `length + 1` nodes."""
    nodes = [Node("x", "input", value=np.asarray(0.5))]
    for i in range(length):
        nodes.append(Node(f"n{i}", op, (nodes[-1].id,)))
    return Graph(tuple(nodes), nodes[-1].id)


def lookup(cache: PlanCache, graph: Graph) -> bool:
    plan, cached = cache.plan_for(graph, bind_sources(graph))
    assert plan.output == graph.output
    return cached


def test_the_same_structure_is_compiled_once():
    cache = PlanCache(size=8, max_nodes=100, limits=Limits())
    assert lookup(cache, chain_graph(3)) is False
    assert lookup(cache, chain_graph(3)) is True
    assert len(cache) == 1 and cache.nodes == 4


def test_plans_are_evicted_when_their_nodes_exceed_the_budget():
    cache = PlanCache(size=100, max_nodes=10, limits=Limits())
    for op in ("tanh", "exp", "sigmoid"):  # three structures of 4 nodes each
        lookup(cache, chain_graph(3, op))
    assert len(cache) == 2 and cache.nodes == 8
    assert lookup(cache, chain_graph(3, "sigmoid")) is True
    assert lookup(cache, chain_graph(3, "exp")) is True
    assert lookup(cache, chain_graph(3, "tanh")) is False  # the least recently used went


def test_a_plan_over_the_whole_budget_is_used_but_not_kept():
    cache = PlanCache(size=100, max_nodes=10, limits=Limits())
    lookup(cache, chain_graph(3))
    assert lookup(cache, chain_graph(20)) is False
    assert lookup(cache, chain_graph(20)) is False
    assert len(cache) == 1 and cache.nodes == 4  # and what was cached stays


def test_the_plan_count_still_bounds_the_cache():
    cache = PlanCache(size=2, max_nodes=1_000, limits=Limits())
    for length in (1, 2, 3):
        lookup(cache, chain_graph(length))
    assert len(cache) == 2 and cache.nodes == 3 + 4


@pytest.mark.parametrize("app_config", [{"PLAN_CACHE_MAX_NODES": 50}])
def test_the_app_applies_the_node_budget(app, client, chain):
    plans = app.extensions["chainrule"].plans
    assert client.post("/v1/gradients", json=chain(100)).status_code == 200
    assert len(plans) == 0
    assert client.post("/v1/gradients", json=chain(10)).status_code == 200
    assert len(plans) == 1 and plans.nodes == 11
