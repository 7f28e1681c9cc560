"""The graph as the engine receives it: plain, already-decoded nodes and limits.

A graph's `nodes` is a sequence of Node: a tuple, or a NodeTable (the same nodes held as
parallel columns, as the wire loader produces them). The hot paths (canonical form, compile)
read the columns of either through `node_table`; a NodeTable builds Node objects only when
something iterates it.
"""

from __future__ import annotations

import marshal
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, count

import numpy as np

# marshal's version 2 writes every object whole (later ones share repeated objects by
# reference, depending on reference counts): equal attrs of one type give equal bytes.
_MARSHAL_VERSION = 2


@dataclass(frozen=True, slots=True)
class Node:
    """One gate or source. `value` is a float64 array (sources only), or None."""

    id: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict = field(default_factory=dict)
    value: np.ndarray | None = None


class NodeTable(Sequence):
    """Nodes as five parallel columns (ids, ops, inputs, attrs, values: lists, or tuples in a
    held table), read as a sequence of Node. The columns are never modified; what is worked
    out from them (kinds, id order, input edges, the Nodes themselves) is computed once, on
    first use or while loading (`of_chunks`), and kept with the table."""

    __slots__ = ("_by_id", "_edges", "_kind_keys", "_kinds", "_nodes", "_read_kinds", "attrs",
                 "ids", "inputs", "ops", "values")
    __hash__ = None  # equal to a tuple of the same nodes, like one it is not hashable

    def __init__(self, ids: list[str], ops: list[str], inputs: list[tuple[str, ...]],
                 attrs: list[dict], values: list[np.ndarray | None]):
        self.ids = ids
        self.ops = ops
        self.inputs = inputs
        self.attrs = attrs
        self.values = values
        self._nodes: tuple[Node, ...] | None = None
        self._kind_keys: dict | None = None
        self._by_id: list[int] | None = None
        self._edges: tuple[list[str], np.ndarray] | None = None
        self._kinds: tuple[np.ndarray, list[int]] | None = None
        self._read_kinds: list | None = None  # kept by engine.columns.read_kinds

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

    def kinds(self) -> tuple[np.ndarray, list[int]]:
        """Each node's kind, the kinds numbered in order of first listing, and the listing
        position of the first node of each kind. Computed once; the op check, the canonical
        form and compile share it.

        A node's kind key is its op, or (op, the marshal bytes of its attrs) when it has
        attrs: equal keys, equal op and attrs. marshal tells apart what == does not (2 and
        2.0, 1 and True, 0.0 and -0.0) and writes attrs of plain types at C speed; attrs it
        cannot write (numpy arrays, say) fall back to (op, repr). An op alone never equals a
        pair, so no op name reads as another op's attrs. `_kind_keys` keeps the distinct keys
        with their numbers.
        """
        if self._kinds is None:
            numbering = _Numbering()
            try:
                numbers = _marshal_kinds(numbering, self.ops, self.attrs)
            except ValueError:  # an object marshal does not write: its repr tells kinds apart
                numbering = _Numbering()
                numbers = list(map(numbering.__getitem__,
                                   map(_repr_key, self.ops, self.attrs, count())))
            self._number_kinds(numbering, numbers)
        return self._kinds

    def _number_kinds(self, numbering: dict, numbers: list[int]) -> None:
        kinds = np.array(numbers, dtype=np.intp)
        # numbered by first listing: a kind starts where the running maximum rises (compared
        # by slices: np.diff's prepend costs a small graph more than the whole pass)
        running = np.maximum.accumulate(kinds)
        rises = np.flatnonzero(running[1:] != running[:-1]) + 1
        self._kind_keys = numbering
        self._kinds = (kinds, [0, *rises.tolist()] if len(kinds) else [])

    @classmethod
    def of_chunks(cls, chunks: Iterable[Sequence[list]]) -> NodeTable:
        """The table of its five columns given in chunks of consecutive nodes (ids and input
        ids strings), each chunk's kinds numbered and edges listed as it arrives: a loader
        hands each chunk on as soon as it has checked it, so its objects are still in the
        processor's cache (a pass over the whole table later would fetch them all from memory
        again)."""
        columns: tuple[list, ...] = ([], [], [], [], [])
        numbering = _Numbering()
        numbers: list[int] | None = []
        flat: list[str] = []
        lengths: list[np.ndarray] = [np.zeros(0, dtype=np.intp)]
        for chunk in chunks:
            for column, part in zip(columns, chunk, strict=True):
                column += part
            inputs = chunk[2]
            input_ids = list(chain.from_iterable(inputs))
            flat += input_ids
            lengths.append(np.fromiter(map(len, inputs), np.intp, len(inputs)))
            # A string keeps its hash once computed: hashing the ids now, while they are in
            # cache, makes compile's id index and lookups faster by more than it costs here.
            deque(map(hash, chunk[0]), maxlen=0)
            deque(map(hash, input_ids), maxlen=0)
            if numbers is not None:
                try:
                    numbers += _marshal_kinds(numbering, chunk[1], chunk[3])
                except ValueError:  # `kinds` numbers the whole table its other way
                    numbers = None
        table = cls(*columns)
        table._edges = (flat, np.concatenate(lengths))
        if numbers is not None:
            table._number_kinds(numbering, numbers)
        return table

    def edges(self) -> tuple[list[str], np.ndarray]:
        """Every node's input ids one after another (in listing and argument order), and each
        node's input count. Computed once (while loading, by `of_chunks`); compile reads it."""
        if self._edges is None:
            self._edges = (list(chain.from_iterable(self.inputs)),
                           np.fromiter(map(len, self.inputs), np.intp, len(self.inputs)))
        return self._edges

    def with_shared_ops(self) -> NodeTable:
        """The same nodes with each op string its kind's (an equal string): a column of a few
        objects, which later passes read from the cache and a held table keeps instead of one
        string a node. The kinds worked out already come along."""
        kinds, firsts = self.kinds()
        kind_ops = [self.ops[k] for k in firsts]
        table = NodeTable(self.ids, list(map(kind_ops.__getitem__, kinds.tolist())),
                          self.inputs, self.attrs, self.values)
        table._kinds, table._kind_keys, table._edges = self._kinds, self._kind_keys, self._edges
        return table

    def by_id(self) -> list[int]:
        """The listing positions in id order (Python's string order; stable for equal ids).
        Computed once; the canonical form and the topological order share it."""
        if self._by_id is None:
            self._by_id = sorted(range(len(self.ids)), key=self.ids.__getitem__)
        return self._by_id

    def held(self, values: Sequence | None = None) -> NodeTable:
        """The same nodes (holding `values` when given), to be kept a long time: the columns
        as tuples, and nothing worked out from them. A tuple of strings, or of tuples of
        strings, is one the cyclic collector stops tracking; the attrs and values columns stay
        tracked, but their plain dicts and arrays are not, so a full pass over a held graph
        looks at each and goes no further. Requests read a held table through a `view`."""
        columns = (self.ids, self.ops, self.inputs, self.attrs,
                   self.values if values is None else values)
        return NodeTable(*map(tuple, columns))

    def view(self, values: Sequence | None = None) -> NodeTable:
        """A fresh table over the same columns (holding `values` when given): what one
        request works out from it stays with the request, not with a held table."""
        return NodeTable(self.ids, self.ops, self.inputs, self.attrs,
                         self.values if values is None else values)

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


def _marshal_kinds(numbering: dict, ops: Sequence[str], attrs: Sequence[dict]) -> list[int]:
    """The kind numbers of these nodes (see NodeTable.kinds), each key numbered as it is made
    (one pass: its op read once). Raises ValueError for attrs marshal cannot write (having
    numbered some keys already: the numbering is then of no further use)."""
    return [
        numbering[op, marshal.dumps(attrs, _MARSHAL_VERSION)] if attrs else numbering[op]
        for op, attrs in zip(ops, attrs, strict=True)
    ]


class _Numbering(dict):
    """key -> a number, the next one for each new key."""

    def __missing__(self, key: object) -> int:
        number = self[key] = len(self)
        return number


def _repr_key(op: str, attrs: dict, position: int) -> object:
    if not attrs:
        return op
    text = repr(attrs)
    # an abbreviated repr (a big numpy array's "...") tells nothing apart: a kind of its own
    return (op, text) if "..." not in text else (op, text, position)


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
