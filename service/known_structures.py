"""Graphs seen before, by their structure: a known structure sent with new values skips the
schema load of its nodes, the engine's checks and the canonical form.

A client that evaluates one network at many points sends the same nodes every time, with new
`value`s on its inputs (and perhaps its consts). The structure of an inline graph is the graph as
parsed with every node's `value` taken out, plus which nodes had one: SHA-256 of orjson's writing
of it. Loading a graph depends on its values only through each value itself (decoded by the node
schema's `value` field, under the element limit) and through whether a node has one (a const
needs one, a gate takes none). So a structure that loaded once loads again to the same nodes,
and only the values need decoding: the known graph is reused with its valued nodes rebuilt
around the new values. When a value does not decode the request takes the whole way, so its
error is the one a full load gives. Only structures that loaded successfully are remembered.

A structure is kept the second time it loads, not the first: a loaded graph is many small
objects (about 0.35 KB a node), which the worker's cyclic collector scans on every full pass,
so graphs sent once are not worth holding. Until then only its key is remembered. Entries are
bounded as the plan cache is, by count and by the nodes they hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import is_not

import numpy as np
import orjson
from marshmallow import ValidationError

from engine import EngineError, Graph, NodeTable, node_table
from schemas import CanonicalGraph, load_node_values
from service.store.lru import LockedLRU

# Marks a node without a value in the column of popped values (null is a value, if a bad one).
_NO_VALUE = object()


@dataclass(frozen=True, slots=True)
class KnownGraph:
    """A structure's loaded graph (values of the request that first sent it), its canonical
    form, the listing positions of its nodes with a value, and of its source nodes."""

    graph: Graph
    canonical: CanonicalGraph
    valued: tuple[int, ...]
    sources: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Recalled:
    """A known structure with this request's values: its graph, source nodes, canonical form."""

    graph: Graph
    sources: Graph
    canonical: CanonicalGraph


@dataclass(frozen=True, slots=True)
class Structure:
    """A request graph's structure key and its values by listing position, as parsed."""

    key: bytes
    valued: list[int]
    values: list


def _nodes_held(key: bytes, known: KnownGraph) -> int:
    return len(known.graph.nodes)


# Keys of structures loaded once, kept to tell a structure's second load from its first.
SEEN_KEYS = 4096


class KnownStructures:
    """Up to `max_items` known structures holding at most `max_nodes` nodes in all. Thread-safe."""

    def __init__(self, max_items: int, max_nodes: int):
        self._known: LockedLRU[bytes, KnownGraph] = LockedLRU(
            max_items=max_items, max_cost=max_nodes, cost=_nodes_held
        )
        self._seen: LockedLRU[bytes, bool] = LockedLRU(max_items=SEEN_KEYS)

    def __len__(self) -> int:
        return len(self._known)

    def recall(self, structure: Structure, max_elements: int | None) -> Recalled | None:
        """The known graph of `structure` with its values, or None: unknown structure, or a
        value that does not decode (the full load then words the error)."""
        known = self._known.get(structure.key)
        if known is None:
            return None
        decoded = _decoded(structure.values, max_elements)
        if decoded is None:
            return None
        return _with_values(known, decoded)

    def remember(
        self,
        structure: Structure,
        graph: Graph,
        canonical: CanonicalGraph,
        sources: Sequence[int],
    ) -> None:
        """Keep a graph that loaded under its structure's key, with its canonical form and the
        positions of its source nodes (service.graphs.source_positions), if its structure
        loaded before; else only note the key."""
        if self._seen.get(structure.key) is None:
            self._seen.put(structure.key, True)
            return
        held = Graph(node_table(graph.nodes).held(), graph.output)
        known = KnownGraph(held, canonical, tuple(structure.valued), tuple(sources))
        self._known.put(structure.key, known)


def structure_of(data: object) -> Structure | None:
    """The structure of a parsed body's inline graph; None when there is no list of node
    objects to read one from (the full load words what is wrong).

    The values are taken out of the node objects to write the rest, and put back.
    """
    graph = data.get("graph") if type(data) is dict else None
    nodes = graph.get("nodes") if type(graph) is dict else None
    if type(nodes) is not list or not set(map(type, nodes)) <= {dict}:
        return None
    values = list(map(dict.pop, nodes, repeat("value"), repeat(_NO_VALUE)))
    valued = list(compress(range(len(values)), map(is_not, values, repeat(_NO_VALUE))))
    try:
        text = orjson.dumps(graph)
    except orjson.JSONEncodeError:
        return None
    finally:
        for i in valued:
            nodes[i]["value"] = values[i]
    digest = hashlib.sha256(text, usedforsecurity=False)
    # The text is one JSON object, so the positions that follow it have one reading.
    digest.update(np.array(valued, dtype="<i8").tobytes())
    return Structure(digest.digest(), valued, [values[i] for i in valued])


def _decoded(values: list, max_elements: int | None) -> list[np.ndarray] | None:
    """The values as the node schema decodes them; None if one fails."""
    try:
        return load_node_values(values, max_elements=max_elements)
    except (ValidationError, EngineError):
        return None


def _with_values(known: KnownGraph, values: Sequence[np.ndarray]) -> Recalled:
    """The known graph with its valued nodes holding `values` instead (its other columns
    shared: no node object is built but the sources)."""
    table = node_table(known.graph.nodes)
    column = list(table.values)
    for i, value in zip(known.valued, values, strict=True):
        column[i] = value
    nodes = NodeTable(table.ids, table.ops, table.inputs, table.attrs, column)
    output = known.graph.output
    sources = Graph(tuple(map(nodes.node, known.sources)), output)
    return Recalled(Graph(nodes, output), sources, known.canonical)
