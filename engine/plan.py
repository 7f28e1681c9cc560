"""A compiled graph (Plan): nodes in topological order with every shape known, and its executor.

A plan holds no values; `run` binds new source values to it, runs its executor (chosen once
when the plan was compiled) and picks the reported nodes out of what the executor computed.
A plan compiled with batched inputs takes those with a leading batch axis of any length B
(engine/batch.py turns its seed and `reduce` into the backward pass it runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine import batch
from engine.collector import gc_paused
from engine.errors import MissingInput, ShapeMismatch, UnknownNode
from engine.executors.base import Executor
from engine.graph import NO_LIMITS, Limits, Node
from engine.ops import Op, Shape
from engine.result import RunResult, plain


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)  # a plan is equal only to itself
class Plan:
    """Parallel tuples indexed by topological position, with `index` mapping ids to positions.

    `ins[i]` are the positions of node i's inputs; `levels[i]` its depth (sources 0);
    `ancestors[i]` whether the output depends on it; `sources` the positions of source nodes;
    `out` the output's position; `batched[i]` whether node i depends on a batched input
    (`shapes` are then one point's); `limits` what a batch may grow to. `state` is what the
    executor prepared from the plan.
    """

    output: str
    out: int
    ids: tuple[str, ...]
    index: dict[str, int]
    nodes: tuple[Node, ...]
    ops: tuple[Op, ...]
    attrs: tuple[dict, ...]
    ins: tuple[tuple[int, ...], ...]
    shapes: tuple[Shape, ...]
    levels: tuple[int, ...]
    ancestors: tuple[bool, ...]
    sources: tuple[int, ...]
    batched: tuple[bool, ...]
    executor: Executor
    limits: Limits = NO_LIMITS
    state: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", self.executor.prepare(self))  # frozen: set once here

    @property
    def strategy(self) -> str:
        return self.executor.name

    def op_of(self, name: str) -> Op:
        return self.ops[self.index[name]]

    def shape_of(self, name: str) -> Shape:
        return self.shapes[self.index[name]]

    @property
    def is_batched(self) -> bool:
        return any(self.batched[i] for i in self.sources)

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
        reported = self._reported(wrt)
        needed = self.ancestors if wrt is None else self._needed(reported)
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

    def needed_for(self, wrt: Sequence[str] | None) -> tuple[list[int], Sequence[bool]]:
        """The reported positions for `wrt`, and which nodes the backward pass must visit."""
        reported = self._reported(wrt)
        return reported, self.ancestors if wrt is None else self._needed(reported)

    def _needed(self, reported: list[int]) -> list[bool]:
        """Nodes whose gradient is needed: on a path from a reported node to the output."""
        from_reported = [False] * len(self.ids)
        for i in reported:
            from_reported[i] = True
        for i, ins in enumerate(self.ins):
            if not from_reported[i] and any(from_reported[j] for j in ins):
                from_reported[i] = True
        return [a and b for a, b in zip(self.ancestors, from_reported, strict=True)]

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
