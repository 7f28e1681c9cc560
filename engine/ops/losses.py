"""Losses (catalog 1.1): softmax cross-entropy of logits (N, C) against one class per row.

Computed through a stable log-softmax, so logits of any size (|x| = 1000) give finite losses and
gradients; the gradient is softmax(x) minus the one-hot targets, scaled by the reduction.
"""

from __future__ import annotations

import numpy as np

from engine.errors import BadAttr, ShapeMismatch
from engine.ops.base import Attr, Op, Shape

REDUCTIONS = ("mean", "sum", "none")


def _cross_entropy_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    if len(shape) != 2 or 0 in shape:
        raise ShapeMismatch(f"cross_entropy needs logits (N, C) with N, C >= 1, got {list(shape)}",
                            node)
    rows, classes = shape
    targets = attrs["targets"]
    if len(targets) != rows:
        raise BadAttr(f"targets has {len(targets)} entries for {rows} rows of logits", node)
    for row, target in enumerate(targets):
        if not 0 <= target < classes:
            raise BadAttr(f"target {target} of row {row} is not a class of {classes} "
                          f"(0 <= target < {classes})", node)
    return (rows,) if attrs["reduction"] == "none" else ()


def _log_softmax_rows(x):
    z = x - np.max(x, axis=1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))


def _picked(rows: int, targets: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(rows), np.asarray(targets, dtype=np.intp)


def _cross_entropy(x, *, targets, reduction):
    losses = -_log_softmax_rows(x)[_picked(len(x), targets)]
    if reduction == "none":
        return losses
    total = np.sum(losses)
    return total / len(x) if reduction == "mean" else total


def _cross_entropy_vjp(g, out, x, *, targets, reduction):
    grad = np.exp(_log_softmax_rows(x))
    grad[_picked(len(x), targets)] -= 1.0
    if reduction == "none":
        return (grad * np.reshape(g, (-1, 1)),)
    return (grad * (g / len(x) if reduction == "mean" else g),)


ROWS: tuple[Op, ...] = (
    Op(name="cross_entropy", arity=(1, 1), symbol="xent",
       doc="softmax cross-entropy of logits (N, C): -log softmax(x)[n, targets[n]], reduced by "
           "mean, sum or none",
       attrs=(Attr("targets", "int_list"),
              Attr("reduction", "choice", "mean", choices=REDUCTIONS)),
       infer_shape=_cross_entropy_shape, forward=_cross_entropy, vjp=_cross_entropy_vjp),
)
