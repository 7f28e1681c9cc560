"""The three executors of a plan, and the choice between them (made once, when compiling).

- tensor: one numpy call per node; for graphs holding any non-scalar value.
- scalar: a loop over Python floats; for narrow graphs of 0-d values (chains).
- levels: one numpy call per op per topological level; for wide graphs of 0-d values.
- batched: one numpy call per node over every point of a batch; for plans with batched inputs.

All three give the same numbers as the per-node numpy rules of the op table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from engine.executors.base import Executor
from engine.executors.batched import BatchedExecutor
from engine.executors.levels import LevelsExecutor
from engine.executors.scalar import ScalarExecutor
from engine.executors.tensor import TensorExecutor
from engine.executors.workspace import POOL as WORKSPACES
from engine.ops import Op, Shape

# A scalar graph whose topological levels hold this many nodes on average runs level by level.
LEVEL_WIDTH_THRESHOLD = 16
LEVEL_MIN_NODES = 256

TENSOR = TensorExecutor()
SCALAR = ScalarExecutor()
LEVELS = LevelsExecutor()
BATCHED = BatchedExecutor()
EXECUTORS: dict[str, Executor] = {e.name: e for e in (TENSOR, SCALAR, LEVELS, BATCHED)}


def choose_executor(
    ops: Iterable[Op],
    shapes: Sequence[Shape],
    levels: np.ndarray,
    forced: str | None = None,
    *,
    batched: bool = False,
) -> Executor:
    """The fastest executor that can run the graph, or `forced` when the graph allows it.

    `ops` are the graph's op rows (each distinct row once is enough). A plan with batched
    inputs always runs batched.
    """
    if batched:
        return BATCHED
    if forced == BATCHED.name:
        raise ValueError("strategy 'batched' needs batched inputs")
    scalar = shapes.count(()) == len(shapes) and all(op.takes_scalars for op in ops)
    if forced is not None:
        if forced not in EXECUTORS:
            raise ValueError(f"unknown strategy {forced!r}")
        if forced != TENSOR.name and not scalar:
            raise ValueError(f"strategy {forced!r} needs an all-scalar graph")
        return EXECUTORS[forced]
    if not scalar:
        return TENSOR
    width = len(shapes) / (int(np.max(levels)) + 1)
    if len(shapes) >= LEVEL_MIN_NODES and width >= LEVEL_WIDTH_THRESHOLD:
        return LEVELS
    return SCALAR


__all__ = [
    "BATCHED",
    "EXECUTORS",
    "WORKSPACES",
    "BatchedExecutor",
    "Executor",
    "choose_executor",
]
