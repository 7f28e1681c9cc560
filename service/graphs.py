"""Registered graphs (CONTRACT section 7): registration, lookup by id, each worker's loaded copies.

Registering validates a graph as an inline request would (the schema, the limits, the engine's
checks: at the inputs' default shapes when every input has one, else every check that needs no
shape), stores its record (schemas/graphrecord.py) under its id and keeps the loaded graph in
this worker's LRU. A request against an id takes the loaded graph from that LRU, or reads the
record from the store (another worker or replica registered it) without validating it again.

The store refreshes a graph's TTL on `get_graph`. A worker confirms a graph with the store at
most once per half TTL: after a confirmation the store holds the graph a full TTL, so nothing
the store has let expire is served in between, and any use in the second half refreshes it.
While the store is unavailable the worker serves the graphs it holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import count

from engine import OPS, Graph, MissingInput, node_table
from schemas.canonical import CanonicalGraph, canonical_graph
from schemas.graphrecord import graph_record, read_graph_record, record_id
from service.plans import PlanCache
from service.store import LockedLRU, Store


@dataclass(frozen=True, slots=True)
class RegisteredGraph:
    """A registered graph, loaded: what a request against its id needs, computed once."""

    id: str
    graph: Graph
    canonical: CanonicalGraph  # the structure: request hashes and plan keys build on it
    sources: Graph  # its source nodes alone (`source_nodes`): all that binding values reads
    record: bytes

    @classmethod
    def of(cls, graph: Graph, canonical: CanonicalGraph, record: bytes) -> RegisteredGraph:
        held = Graph(node_table(graph.nodes).held(), graph.output)
        return cls(record_id(record), held, canonical, source_nodes(held), record)

    def summary(self) -> dict:
        """The registration answer: id, node count, each input's default shape, the output."""
        inputs = sorted(
            (node.id, None if node.value is None else list(node.value.shape))
            for node in self.sources.nodes if OPS[node.op].is_variable
        )
        return {
            "id": self.id,
            "nodes": len(self.graph.nodes),
            "inputs": dict(inputs),
            "output": self.graph.output,
        }


def _registered_nodes(key: str, entry: tuple[float, RegisteredGraph]) -> int:
    return len(entry[1].graph.nodes)


class GraphRegistry:
    """Registers graphs in `store` and keeps up to `max_items` loaded ones (at most `max_nodes`
    nodes in all) in this worker, each confirmed with the store once per half `ttl_seconds`."""

    def __init__(
        self, store: Store, plans: PlanCache, *, ttl_seconds: float, max_items: int, max_nodes: int
    ):
        self.store = store
        self.plans = plans
        self.ttl_seconds = ttl_seconds
        # id -> (when the store last confirmed it, as time.monotonic(); the loaded graph)
        self._loaded: LockedLRU[str, tuple[float, RegisteredGraph]] = LockedLRU(
            max_items=max_items, max_cost=max_nodes, cost=_registered_nodes
        )

    def register(self, graph: Graph) -> tuple[RegisteredGraph, bool]:
        """Validate and store a loaded graph: (the registered graph, whether it is new here).

        Raises the engine's error naming the node, or TooLarge, as an inline request would.
        """
        canonical = canonical_graph(graph)
        self._validate(graph, canonical)
        registered = RegisteredGraph.of(graph, canonical, graph_record(graph, canonical))
        # Two registrations at once may both find it absent and both put: the same bytes.
        known = self.store.get_graph(registered.id) is not None
        if not known:
            self.store.put_graph(registered.id, registered.record)
        self._loaded.put(registered.id, (time.monotonic(), registered))
        return registered, not known

    def find(self, graph_id: str) -> RegisteredGraph | None:
        """The registered graph `graph_id`, or None when the store no longer holds it."""
        entry = self._loaded.get(graph_id)
        now = time.monotonic()
        if entry is not None and now < entry[0] + self.ttl_seconds / 2:
            return entry[1]
        record = self.store.get_graph(graph_id)
        if record is None:
            if entry is not None and self.store.unavailable_reason(probe=False):
                return entry[1]
            self._loaded.pop(graph_id)
            return None
        registered = entry[1] if entry is not None else _loaded_from(record)
        self._loaded.put(graph_id, (now, registered))
        return registered

    def _validate(self, graph: Graph, canonical: CanonicalGraph) -> None:
        """Compile the graph at its default shapes (the plan is cached for the first request).

        An input without a default leaves shapes from it unchecked: the engine's structural
        checks (ids, ops, arity, attrs, references, cycles) all run before shape inference
        stops at such an input with MissingInput.
        """
        table = node_table(graph.nodes)
        defaults = {
            name: value for name, value in zip(table.ids, table.values, strict=True)
            if value is not None
        }
        try:
            self.plans.plan_for(graph, defaults, canonical.id)
        except MissingInput as error:
            if not _is_open_input(graph, error.node):
                raise


_SOURCE_OPS = frozenset(name for name, op in OPS.items() if op.is_source)


def source_nodes(graph: Graph) -> Graph:
    """The graph's source nodes, and any other node holding a value (for binding to refuse):
    all that `engine.bind_sources` reads, without a pass over a big graph's gates."""
    table = node_table(graph.nodes)
    return Graph(tuple(map(table.node, source_positions(graph))), graph.output)


def source_positions(graph: Graph) -> list[int]:
    """The listing positions of `source_nodes`."""
    table = node_table(graph.nodes)
    sources = _SOURCE_OPS
    return [
        i for i, op, value in zip(count(), table.ops, table.values)
        if op in sources or value is not None
    ]


def _is_open_input(graph: Graph, node_id: str | None) -> bool:
    """Whether `node_id` is an input without a default (its value comes with each request)."""
    table = node_table(graph.nodes)
    return any(
        name == node_id and OPS[op].is_variable and value is None
        for name, op, value in zip(table.ids, table.ops, table.values, strict=True)
    )


def _loaded_from(record: bytes) -> RegisteredGraph:
    graph, canonical = read_graph_record(record)
    return RegisteredGraph.of(graph, canonical, record)
