"""A compiled graph (Plan): nodes in topological order with every shape known, and its executor.

A plan holds no values; `run` binds new source values to it, runs its executor (chosen once
when the plan was compiled) and picks the reported nodes out of what the executor computed.
Its per-node columns are numpy arrays or tuples of shared objects (the ops and attrs dicts
read from the kinds, built only when an executor or caller asks for them), so a cached plan
holds no per-node container for the garbage collector to walk.
A plan compiled with batched inputs takes those with a leading batch axis of any length B
(engine/batch.py turns its seed and `reduce` into the backward pass it runs).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine import batch
from engine.collector import gc_paused
from engine.columns import source_kinds
from engine.errors import MissingInput, ShapeMismatch, UnknownNode
from engine.executors.base import Executor
from engine.graph import NO_LIMITS, Limits, Node
from engine.ops import Op, Shape
from engine.ordering import reached_from
from engine.ragged import Ragged
from engine.result import RunResult, plain

# How many `wrt` lists a plan remembers the needed nodes of.
WRT_CACHE_SIZE = 16


class Positions(Mapping[str, int]):
    """Node id -> topological position. The sources' positions are known from the start (a
    request's `wrt` names sources most often); the others are built on first use: most plans
    are only ever run, and 100,000 ids in a dict would be a third of a cached plan's memory."""

    __slots__ = ("_ids", "_positions", "_sources")

    def __init__(self, ids: Sequence[str], sources: Sequence[int] = ()):
        self._ids = ids
        self._sources = {ids[i]: i for i in sources}
        self._positions: dict[str, int] | None = None

    def _built(self) -> dict[str, int]:
        if self._positions is None:  # two threads may both build it; either result serves
            self._positions = dict(zip(self._ids, range(len(self._ids)), strict=True))
        return self._positions

    def __getitem__(self, name: str) -> int:
        position = self._sources.get(name)
        return self._built()[name] if position is None else position

    def __contains__(self, name: object) -> bool:
        return name in self._sources or name in self._built()

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def kind_columns(
    kind_table: Sequence[tuple[Op, dict]], kinds: np.ndarray
) -> tuple[tuple[Op, ...], tuple[dict, ...]]:
    """Each node's op and attrs, from its kind."""
    which = kinds.tolist()
    ops = [op for op, _ in kind_table]
    attrs = [attrs for _, attrs in kind_table]
    return tuple(map(ops.__getitem__, which)), tuple(map(attrs.__getitem__, which))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)  # a plan is equal only to itself
class Plan:
    """Parallel columns indexed by topological position, with `index` mapping ids to positions.

    `ins[i]` are the positions of node i's inputs (a Ragged: two arrays); `levels[i]` its
    depth (sources 0, nondecreasing along the order); `ancestors[i]` whether the output depends
    on it; `sources` the positions of source nodes; `out` the output's position. `kinds[i]` is
    node i's row in `kind_table`, its (op, attrs): nodes of one kind share one attrs dict, which
    must not be mutated. `batched[i]` says whether node i depends on a batched input
    (`shapes` are then one point's); `limits` what a batch may grow to. `state` is what the
    executor prepared from the plan.
    """

    output: str
    out: int
    ids: tuple[str, ...]
    index: Mapping[str, int]
    kinds: np.ndarray
    kind_table: tuple[tuple[Op, dict], ...]
    ins: Ragged
    shapes: tuple[Shape, ...]
    levels: np.ndarray
    ancestors: np.ndarray
    sources: tuple[int, ...]
    batched: np.ndarray
    executor: Executor
    limits: Limits = NO_LIMITS
    state: object = field(init=False, repr=False)
    wrt_cache: dict = field(init=False, repr=False, default_factory=dict)
    _kind_columns: tuple | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", self.executor.prepare(self))  # frozen: set once here

    @property
    def ops(self) -> tuple[Op, ...]:
        """Each node's op (shared Op objects), read from `kinds` on first use."""
        return self._columns()[0]

    @property
    def attrs(self) -> tuple[dict, ...]:
        """Each node's canonical attrs (one dict per kind, shared), read from `kinds` on first
        use."""
        return self._columns()[1]

    def _columns(self) -> tuple[tuple[Op, ...], tuple[dict, ...]]:
        # Built on demand: the levels executor, most big plans', reads the kinds alone, so a
        # cached plan holds two tuples of 100,000 entries fewer. Two threads may both build
        # them; either result serves.
        if self._kind_columns is None:
            object.__setattr__(self, "_kind_columns", kind_columns(self.kind_table, self.kinds))
        return self._kind_columns

    @property
    def strategy(self) -> str:
        return self.executor.name

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes in topological order, without values, built afresh on each call."""
        return tuple(
            Node(name, op.name, tuple(self.ids[j] for j in ins), attrs)
            for name, op, ins, attrs in zip(self.ids, self.ops, self.ins, self.attrs, strict=True)
        )

    def op_of(self, name: str) -> Op:
        return self.ops[self.index[name]]

    def shape_of(self, name: str) -> Shape:
        return self.shapes[self.index[name]]

    def gates(self) -> np.ndarray:
        """The positions of the gates (every node but the sources), in topological order."""
        return np.flatnonzero(~source_kinds(self.kind_table)[self.kinds])

    @property
    def is_batched(self) -> bool:
        return bool(self.batched[list(self.sources)].any())

    def run(
        self,
        sources: Mapping[str, np.ndarray],
        *,
        seed: np.ndarray | None = None,
        wrt: Sequence[str] | None = None,
        forward_only: bool = False,
        deadline: float | None = None,
        reduce: str = "none",
    ) -> RunResult:
        """Forward (and unless `forward_only`, backward) on new source values.

        On a batched plan, `reduce` ("none", "sum" or "mean") says what shared nodes'
        gradients are (CONTRACT section 5); elsewhere it changes nothing.
        """
        reported, needed = self.needed_for(wrt)
        if self.is_batched:
            return batch.run_batch(self, sources, seed=seed, reported=reported, needed=needed,
                                   forward_only=forward_only, deadline=deadline, reduce=reduce)
        source_values = self.bound_sources(sources)
        seed = self._seed(seed)
        with np.errstate(all="ignore"), gc_paused():
            values, grads = self.executor.run(
                self.state, source_values, seed, needed, forward_only, deadline
            )
            return self._result(values, grads, reported)

    def _reported(self, wrt: Sequence[str] | None) -> list[int]:
        if wrt is None:
            return list(range(len(self.ids)))
        for name in wrt:
            if name not in self.index:
                raise UnknownNode(f"wrt names '{name}', which is not a node of the graph", name)
        return sorted({self.index[name] for name in wrt})

    def needed_for(self, wrt: Sequence[str] | None) -> tuple[list[int], np.ndarray]:
        """The reported positions for `wrt`, and which nodes the backward pass must visit.

        Remembered for the last few `wrt` lists: clients repeat theirs."""
        if wrt is None:
            return list(range(len(self.ids))), self.ancestors
        key = tuple(wrt)
        known = self.wrt_cache.get(key)
        if known is None:
            reported = self._reported(wrt)
            known = (reported, self._needed(reported))
            if len(self.wrt_cache) >= WRT_CACHE_SIZE:
                self.wrt_cache.clear()
            self.wrt_cache[key] = known
        return list(known[0]), known[1]

    def _needed(self, reported: list[int]) -> np.ndarray:
        """Nodes whose gradient is needed: on a path from a reported node to the output."""
        marked = np.zeros(len(self.ids), dtype=bool)
        marked[reported] = True
        return self.ancestors & reached_from(self.ins, self.levels, marked)

    def bound_sources(self, sources: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
        """Each source's value by position, checked against the plan's shapes."""
        values = {}
        for i in self.sources:
            name = self.ids[i]
            if name not in sources:
                raise MissingInput(f"{self.ops[i].name} node '{name}' has no value", name)
            value = np.asarray(sources[name], dtype=np.float64)
            if value.shape != self.shapes[i]:
                raise ShapeMismatch(
                    f"node '{name}' has shape {list(value.shape)}, the plan was compiled for "
                    f"{list(self.shapes[i])}",
                    name,
                )
            values[i] = value
        return values

    def _seed(self, seed: np.ndarray | None) -> np.ndarray:
        shape = self.shapes[self.out]
        if seed is None:
            return np.ones(shape)
        seed = np.asarray(seed, dtype=np.float64)
        if seed.shape != shape:
            raise ShapeMismatch(
                f"seed has shape {list(seed.shape)}; the output '{self.output}' has shape "
                f"{list(shape)}",
                self.output,
            )
        return seed

    def _result(self, values: list, grads: list | None, reported: list[int]) -> RunResult:
        """Pick the reported nodes; a float executor's lists hold plain floats already."""
        everything = len(reported) == len(self.ids)
        order = list(self.ids) if everything else [self.ids[i] for i in reported]
        value = values[self.out]
        if self.executor.gives_floats:
            if not everything:
                values = [values[i] for i in reported]
                grads = None if grads is None else [grads[i] for i in reported]
            return RunResult(self.output, value, order, values, grads)
        if grads is not None:  # a node the output does not depend on gets zeros of its shape
            grads = [plain(np.zeros(self.shapes[i]) if grads[i] is None else grads[i])
                     for i in reported]
        return RunResult(self.output, plain(value), order, [plain(values[i]) for i in reported],
                         grads)
