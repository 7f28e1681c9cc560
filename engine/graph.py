"""The graph as the engine receives it: plain, already-decoded nodes and limits.

A graph's `nodes` is a sequence of Node: a tuple, or a NodeTable (the same nodes held as
parallel columns, as the wire loader produces them). The hot paths (canonical form, compile)
read the columns of either through `node_table`; a NodeTable builds Node objects only when
something iterates it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Node:
    """One gate or source. `value` is a float64 array (sources only), or None."""

    id: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict = field(default_factory=dict)
    value: np.ndarray | None = None


class NodeTable(Sequence):
    """Nodes as five parallel lists (ids, ops, inputs, attrs, values), read as a sequence of
    Node. The lists are never modified; the Nodes are built once, on first iteration."""

    __slots__ = ("_by_id", "_kind_keys", "_kinds", "_nodes", "attrs", "ids", "inputs", "ops",
                 "values")
    __hash__ = None  # equal to a tuple of the same nodes, like one it is not hashable

    def __init__(self, ids: list[str], ops: list[str], inputs: list[tuple[str, ...]],
                 attrs: list[dict], values: list[np.ndarray | None]):
        self.ids = ids
        self.ops = ops
        self.inputs = inputs
        self.attrs = attrs
        self.values = values
        self._nodes: tuple[Node, ...] | None = None
        self._kind_keys: list | None = None
        self._by_id: list[int] | None = None
        self._kinds: dict[str, int] | None = None

    @classmethod
    def of(cls, nodes: Sequence[Node]) -> NodeTable:
        """The table of a sequence of nodes."""
        return cls([node.id for node in nodes], [node.op for node in nodes],
                   [node.inputs for node in nodes], [node.attrs for node in nodes],
                   [node.value for node in nodes])

    def nodes(self) -> tuple[Node, ...]:
        if self._nodes is None:
            self._nodes = tuple(map(Node, self.ids, self.ops, self.inputs, self.attrs,
                                    self.values))
        return self._nodes

    def kind_keys(self) -> list:
        """Per node, its op, or its op followed by repr(attrs) when it has attrs: equal keys,
        equal op and attrs (an op name holds no "{"). repr tells apart what == does not (2
        and 2.0, 1 and True, 0.0 and -0.0), and is unambiguous over decoded JSON. Strings
        keep their hash once computed, so grouping by these keys is cheap. Computed once; the
        canonical form and compile share them."""
        if self._kind_keys is None:
            if any("{" in op for op in set(self.ops)):  # an unknown op (refused later) that
                # could read as another op's key: keys as (op, repr) pairs, unambiguous
                self._kind_keys = [
                    (op, repr(attrs)) if attrs else op
                    for op, attrs in zip(self.ops, self.attrs, strict=True)
                ]
            else:
                self._kind_keys = [
                    op + repr(attrs) if attrs else op
                    for op, attrs in zip(self.ops, self.attrs, strict=True)
                ]
        return self._kind_keys

    def kinds(self) -> dict[str, int]:
        """Each distinct kind key (in order of first listing) with the position of a node of
        that kind. Computed once; the canonical form and compile share it."""
        if self._kinds is None:
            keys = self.kind_keys()
            self._kinds = dict(zip(keys, range(len(keys)), strict=True))
        return self._kinds

    def by_id(self) -> list[int]:
        """The listing positions in id order (Python's string order; stable for equal ids).
        Computed once; the canonical form and the topological order share it."""
        if self._by_id is None:
            self._by_id = sorted(range(len(self.ids)), key=self.ids.__getitem__)
        return self._by_id

    def held(self) -> NodeTable:
        """The same nodes, to be kept a long time: the columns as tuples and nothing derived
        from them. A tuple of strings, or of tuples of strings, is one the cyclic collector
        stops tracking; the attrs and values columns stay tracked, but their plain dicts and
        arrays are not, so a full pass over a held graph looks at each and goes no further."""
        return NodeTable(*map(tuple, (self.ids, self.ops, self.inputs, self.attrs, self.values)))

    def node(self, i: int) -> Node:
        """Node i, built alone (an error path naming one node needs no others)."""
        return Node(self.ids[i], self.ops[i], self.inputs[i], self.attrs[i], self.values[i])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return self.nodes()[i]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NodeTable | tuple | list):
            return self.nodes() == tuple(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"NodeTable({list(self.nodes())!r})"


def node_table(nodes: Sequence[Node]) -> NodeTable:
    """`nodes` as columns: the table itself when it is one."""
    return nodes if type(nodes) is NodeTable else NodeTable.of(nodes)


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: Sequence[Node]  # a tuple of Node, or a NodeTable
    output: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits checked before anything is allocated; None means unlimited."""

    max_nodes: int | None = None
    max_elements: int | None = None
    max_total_elements: int | None = None


NO_LIMITS = Limits()
