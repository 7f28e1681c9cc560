"""Graphs seen before, by their structure: a known structure sent with new values skips the
schema load of its nodes, the engine's checks and the canonical form.

A client that evaluates one network at many points sends the same nodes every time, with new
`value`s on its inputs (and perhaps its consts). The structure of an inline graph is the graph as
parsed with every node's `value` taken out, plus which nodes had one: SHA-256 of orjson's writing
of it. Loading a graph depends on its values only through each value itself (decoded by the node
schema's `value` field, under the element limit) and through whether a node has one (a const
needs one, a gate takes none). So a structure that loaded once loads again to the same nodes,
and only the values need decoding: the known graph's columns are reused with the new values
in its values column. When a value does not decode the request takes the whole way, so its
error is the one a full load gives. Only structures that loaded successfully are remembered.

A known structure's bodies are known by their skeletons too (service/skeletons.py): the bytes
with the value literals cut out. A body whose skeleton is known is not even parsed: its values
are read from its holes, and the rest of the body (its fields but `graph`) is the rest of the
body that made the skeleton known, kept as orjson writes it. A skeleton is proven (which parses
the body once more) the second time it comes with a held structure, and a refuted one is not
tried again.

A structure is kept the second time it loads, not the first: a held graph takes about 0.3 KB a
node (its columns as tuples, which the cyclic collector stops tracking: NodeTable.held), so
graphs sent once are not worth holding. Until then only its graph id is remembered (the hash
stage gives it for free), and its structure key is not even read: that is a pass over the body
(some 30 ms for 100,000 nodes) which a graph sent once would pay for nothing. For the same
reason a body's key is read before loading only when a structure of its size is held. Entries
are bounded as the plan cache is, by count and by the nodes they hold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import compress, repeat
from operator import is_not

import numpy as np
import orjson
from marshmallow import ValidationError

from engine import EngineError, Graph, node_table
from schemas import CanonicalGraph, load_node_values
from service.graphs import source_positions
from service.skeletons import Skeleton, holes_are_values
from service.store.lru import LockedLRU

# Marks a node without a value in the column of popped values (null is a value, if a bad one).
_NO_VALUE = object()
# Ids of graphs loaded once, kept to tell a structure's second load from its first.
SEEN_KEYS = 4096
# The rests of the bodies of known skeletons, as written, take at most this many bytes in all.
KNOWN_BODY_REST_BYTES = 1 << 24


@dataclass(frozen=True, slots=True)
class KnownGraph:
    """A structure's loaded graph (without values: each request brings its own), its
    canonical form, the listing positions of its nodes with a value, and of its source
    nodes."""

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
    values: list[object]  # as parsed: numbers, nested lists, b64 objects, or anything sent


@dataclass(frozen=True, slots=True)
class KnownBody:
    """A known skeleton's structure key, and the rest of its body (the fields but `graph`) as
    orjson writes it."""

    structure: bytes
    rest: bytes


def _nodes_held(key: bytes, known: KnownGraph) -> int:
    return len(known.graph.nodes)


def _rest_bytes(key: bytes, body: KnownBody) -> int:
    return len(body.rest)


class KnownStructures:
    """Up to `max_items` known structures holding at most `max_nodes` nodes in all. Thread-safe."""

    def __init__(self, max_items: int, max_nodes: int):
        self._known: LockedLRU[bytes, KnownGraph] = LockedLRU(
            max_items=max_items, max_cost=max_nodes, cost=_nodes_held
        )
        self._seen: LockedLRU[str, bool] = LockedLRU(max_items=SEEN_KEYS)  # graph ids
        # the node counts of the structures held (and of some no longer held)
        self._sizes: LockedLRU[int, bool] = LockedLRU(max_items=max_items)
        self._bodies: LockedLRU[bytes, KnownBody] = LockedLRU(
            max_items=max_items, max_cost=KNOWN_BODY_REST_BYTES, cost=_rest_bytes
        )
        # the sizes of the skeletons known (and of some no longer known): a body of another
        # size is not known, and its skeleton's key need not be digested
        self._body_sizes: LockedLRU[tuple[int, int], bool] = LockedLRU(max_items=max_items)
        # skeletons seen once (False) or refuted (True), by key
        self._unproven: LockedLRU[bytes, bool] = LockedLRU(max_items=SEEN_KEYS)

    def __len__(self) -> int:
        return len(self._known)

    def recall(self, structure: Structure, max_elements: int | None) -> Recalled | None:
        """The known graph of `structure` with its values, or None: unknown structure, or a
        value that does not decode (the full load then words the error)."""
        known = self._known.get(structure.key)
        return None if known is None else _with_values(known, structure.values, max_elements)

    def may_hold(self, data: object) -> bool:
        """Whether the graph of `data` (a parsed body) may be a known structure: one of its
        size is held. Reading a structure's key costs a pass over the body (some 30 ms for
        100,000 nodes); a new graph of another size is spared it."""
        nodes = _nodes_of(data)
        return nodes is not None and self._sizes.get(len(nodes)) is not None

    def remember(
        self, data: object, structure: Structure | None, graph: Graph, canonical: CanonicalGraph
    ) -> Structure | None:
        """Keep the graph of `data` (a parsed body that loaded to `graph`, with its canonical
        form) under its structure's key, if a graph with its id loaded before; else only note
        the id. The structure it is kept under (read now if `structure` is None), or None."""
        if self._seen.get(canonical.id) is None:
            self._seen.put(canonical.id, True)
            return None
        structure = structure or structure_of(data)
        if structure is None:
            return None
        # without its values: every recall brings its own
        table = node_table(graph.nodes)
        held = Graph(table.held(values=(None,) * len(table)), graph.output)
        known = KnownGraph(held, canonical, tuple(structure.valued),
                           tuple(source_positions(graph)))
        self._known.put(structure.key, known)
        self._sizes.put(len(table), True)
        return structure

    def knows_body(self, skeleton: Skeleton) -> bool:
        if self._body_sizes.get(skeleton.size) is None:
            return False
        return self._bodies.get(skeleton.key) is not None

    def recall_body(
        self, skeleton: Skeleton, max_elements: int | None
    ) -> tuple[Recalled, dict] | None:
        """The known graph of a body with a known skeleton, holding the values in its holes,
        and the rest of the body; None: unknown skeleton, its structure no longer held, or a
        value that does not decode (the full parse and load then word the error)."""
        body = self._bodies.get(skeleton.key)
        known = self._known.get(body.structure) if body is not None else None
        values = skeleton.values() if known is not None else None
        recalled = _with_values(known, values, max_elements) if values is not None else None
        return None if recalled is None else (recalled, orjson.loads(body.rest))

    def remember_body(self, skeleton: Skeleton, structure: Structure, data: dict) -> None:
        """Know `skeleton` as a body of `structure`, if that structure is held, the skeleton
        was seen before, and its holes are proven to be the structure's values; `data` is the
        body as parsed, which loaded successfully. The proof parses the whole body again, so a
        skeleton is proven on its second sighting (a body sent once is not worth it), and one
        the proof refutes is not tried again."""
        if len(skeleton.holes) != len(structure.valued):
            return
        if self._known.get(structure.key) is None:
            return
        key = skeleton.key
        if self._bodies.get(key) is not None:
            return
        refuted = self._unproven.get(key)
        if refuted is None:
            self._unproven.put(key, False)
            return
        if refuted:
            return
        rest = {name: value for name, value in data.items() if name != "graph"}
        try:
            text = orjson.dumps(rest)
        except orjson.JSONEncodeError:
            return
        if b"null" in text and _nonfinite_in(rest):
            return  # its writing could stand for two rests (see structure_of)
        proven = holes_are_values(skeleton, data, structure.valued)
        if proven:
            self._bodies.put(key, KnownBody(structure.key, text))
            self._body_sizes.put(skeleton.size, True)
            self._unproven.pop(key)
        elif proven is not None:  # None: undecided by these values; the next body may prove it
            self._unproven.put(key, True)


def structure_of(data: object) -> Structure | None:
    """The structure of a parsed body's inline graph; None when there is no list of node
    objects to read one from (the full load words what is wrong).

    The values are taken out of the node objects to write the rest, and put back.
    """
    nodes = _nodes_of(data)
    if nodes is None or not set(map(type, nodes)) <= {dict}:
        return None
    graph = data["graph"]
    values = list(map(dict.pop, nodes, repeat("value"), repeat(_NO_VALUE)))
    valued = list(compress(range(len(values)), map(is_not, values, repeat(_NO_VALUE))))
    try:
        text = orjson.dumps(graph)
    except orjson.JSONEncodeError:
        return None
    finally:
        for i in valued:
            nodes[i]["value"] = values[i]
    # orjson writes an infinity or NaN (a number literal beyond float64, read as infinity) as
    # null, as it writes null: such a graph's text could stand for two graphs
    if b"null" in text and any(map(_nonfinite_in, map(dict.get, nodes, repeat("attrs")))):
        return None
    digest = hashlib.sha256(text, usedforsecurity=False)
    # The text is one JSON object, so the positions that follow it have one reading.
    digest.update(np.array(valued, dtype="<i8").tobytes())
    return Structure(digest.digest(), valued, [values[i] for i in valued])


def _nodes_of(data: object) -> list | None:
    """The list of nodes of a parsed body's inline graph, if it has one."""
    graph = data.get("graph") if type(data) is dict else None
    nodes = graph.get("nodes") if type(graph) is dict else None
    return nodes if type(nodes) is list else None


def _nonfinite_in(value: object) -> bool:
    """Whether a parsed JSON value holds a non-finite float anywhere."""
    kind = type(value)
    if kind is float:
        return value - value != 0.0
    if kind is list:
        return any(map(_nonfinite_in, value))
    if kind is dict:
        return any(map(_nonfinite_in, value.values()))
    return False


def _with_values(known: KnownGraph, values: list, max_elements: int | None) -> Recalled | None:
    """The known graph with its valued nodes holding `values` (as parsed) instead, decoded by
    the node schema (its other columns shared: no node object is built but the sources); None
    if a value does not decode."""
    try:
        decoded = load_node_values(values, max_elements=max_elements)
    except (ValidationError, EngineError):
        return None
    table = node_table(known.graph.nodes)
    column = list(table.values)
    for i, value in zip(known.valued, decoded, strict=True):
        column[i] = value
    nodes = table.view(values=column)
    output = known.graph.output
    sources = Graph(tuple(map(nodes.node, known.sources)), output)
    return Recalled(Graph(nodes, output), sources, known.canonical)
