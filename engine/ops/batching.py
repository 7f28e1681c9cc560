"""Batching rules: how a gate computes over many points at once, one numpy call for all of them.

A batched value carries a leading batch axis of length B (the points); a shared value does not
and is the same at every point. When a plan is compiled with batched sources, each gate that
depends on one asks its row for a rule (`batching`), telling it which inputs are batched and
the inputs' shapes at one point (attrs always speak of one point). The rule answers a Batched:
the forward and vjp to call on the operands as they come, the attrs to call them with, and
where the result's batch axis is (first, for every rule here).

Rows declare rules in one of two ways:

- `elementwise=True`: the generic rule below (numpy broadcasting does the work; a batched
  operand of lower rank than the result gets unit axes after its batch axis so that it lines
  up with the shared ones). Elementwise rows need nothing more.
- `batch=<rule>`: a function of (batched, shapes, attrs) -> Batched. `shifted_axes(...)` makes
  the rule of a one-input op whose attrs name axes (reductions, softmax): they move past the
  batch axis. Shape ops and matmul have their own rules beside their rows.

Nothing outside engine/ops knows which rule an op has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.errors import GraphError
from engine.ops.base import Batched, BatchRule, Op, Shape, normalize_axes


class NotBatchable(GraphError):
    """A batched gate whose op has no batching rule (a row added without one)."""

    code = "validation_error"


def batching(op: Op, batched: tuple[bool, ...], shapes: list[Shape], attrs: dict,
             node: str) -> Batched:
    """The rule of `op` for a gate whose inputs are `batched` (one flag per input)."""
    if op.elementwise:
        return elementwise_rule(op, batched, shapes, attrs)
    if op.batch is None:
        raise NotBatchable(f"op '{op.name}' has no batching rule: it cannot take a batch", node)
    return op.batch(batched, shapes, attrs)


def is_batchable(op: Op) -> bool:
    """Whether a gate of this op can take batched inputs (sources take batches as values)."""
    return op.is_source or op.elementwise or op.batch is not None


# ---------------------------------------------------------------- the generic elementwise rule


def elementwise_rule(op: Op, batched: tuple[bool, ...], shapes: list[Shape],
                     attrs: dict) -> Batched:
    """Broadcasting with the batch axis first: a batched operand of lower rank than the result
    gains unit axes after its batch axis, so that it lines up with the shared operands."""
    rank = max(len(s) for s in shapes)
    lifts = tuple(rank - len(s) if b else 0 for s, b in zip(shapes, batched, strict=True))
    if not any(lifts):  # the usual case (every batched operand at full rank): the row as it is
        return Batched(forward=op.forward, vjp=op.vjp, attrs=attrs)
    forward, vjp = op.forward, op.vjp

    def lifted(xs):
        return [_lift(x, k) if k else x for x, k in zip(xs, lifts, strict=True)]

    def lifted_forward(*xs, **kw):
        return forward(*lifted(xs), **kw)

    def lifted_vjp(g, out, *xs, **kw):
        return vjp(g, out, *lifted(xs), **kw)

    return Batched(forward=lifted_forward, vjp=lifted_vjp, attrs=attrs)


def _lift(x: np.ndarray, axes: int) -> np.ndarray:
    """`x` with `axes` unit axes after its batch axis (a view)."""
    return x.reshape(x.shape[:1] + (1,) * axes + x.shape[1:])


# ---------------------------------------------------------------- helpers for the rows' rules


def shift_axis(axis: int) -> int:
    """A point's axis as an axis of the batched value (negative axes count from the end)."""
    return axis if axis < 0 else axis + 1


def shift_axes(axis: int | Sequence[int] | None, rank: int) -> tuple[int, ...] | int:
    """An axis attr (int, list or None for every axis of a `rank`-d point), past the batch axis."""
    if axis is None:
        return tuple(range(1, rank + 1))
    if isinstance(axis, int):
        return shift_axis(axis)
    return tuple(a % rank + 1 for a in normalize_axes(axis, rank, ""))


def shifted_axes(forward: Callable, vjp: Callable, *names: str) -> BatchRule:
    """The rule of a one-input op whose attrs `names` are axes of its input: shifted past the
    batch axis, the row's own forward and vjp serve the batched value as they are."""

    def rule(batched: tuple[bool, ...], shapes: list[Shape], attrs: dict) -> Batched:
        rank = len(shapes[0])
        moved = {**attrs, **{name: shift_axes(attrs[name], rank) for name in names}}
        return Batched(forward=forward, vjp=vjp, attrs=moved)

    return rule


def batch_length(xs: Sequence[np.ndarray], batched: Sequence[bool]) -> int:
    """B, read from the first batched operand."""
    return next(x.shape[0] for x, b in zip(xs, batched, strict=True) if b)


def with_batch_axis(xs: Sequence[np.ndarray], batched: Sequence[bool]) -> list[np.ndarray]:
    """Every operand with the batch axis: shared ones broadcast along it (views, no copies).

    For rules of ops that mix their inputs' axes (concat, stack): their vjp then gives the
    shared operands per-point contributions, which the engine sums or keeps.
    """
    size = batch_length(xs, batched)
    return [x if b else np.broadcast_to(x, (size, *np.shape(x)))
            for x, b in zip(xs, batched, strict=True)]


__all__ = [
    "NotBatchable",
    "batch_length",
    "batching",
    "elementwise_rule",
    "is_batchable",
    "shift_axes",
    "shift_axis",
    "shifted_axes",
    "with_batch_axis",
]
