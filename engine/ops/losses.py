"""Losses (catalog 1.1): softmax cross-entropy of logits (N, C) against one class per row.

Computed through a stable log-softmax, so logits of any size (|x| = 1000) give finite losses and
gradients; the gradient is softmax(x) minus the one-hot targets, scaled by the reduction.
"""

from __future__ import annotations

import numpy as np

from engine.errors import BadAttr, ShapeMismatch
from engine.ops.base import Attr, Batched, Op, Shape

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
    z = x - np.max(x, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def _one_hot(targets: tuple[int, ...], classes: int) -> np.ndarray:
    return np.arange(classes) == np.asarray(targets)[:, np.newaxis]


# The rules take logits (N, C) or, over a batch, (B, N, C): the class axis is the last.

def _cross_entropy(x, *, targets, reduction):
    picked = _one_hot(targets, x.shape[-1])
    # where, not a product: a logit of -inf elsewhere in the row must not make nan
    losses = -np.sum(np.where(picked, _log_softmax_rows(x), 0.0), axis=-1)
    if reduction == "none":
        return losses
    total = np.sum(losses, axis=-1)
    return total / len(targets) if reduction == "mean" else total


def _cross_entropy_vjp(g, out, x, *, targets, reduction):
    grad = np.exp(_log_softmax_rows(x)) - _one_hot(targets, x.shape[-1])
    if reduction == "none":
        return (grad * np.expand_dims(g, -1),)
    scale = np.expand_dims(g, (-1, -2))
    return (grad * (scale / len(targets) if reduction == "mean" else scale),)


def _cross_entropy_batching(batched: tuple[bool], shapes: list[Shape], attrs: dict) -> Batched:
    return Batched(forward=_cross_entropy, vjp=_cross_entropy_vjp, attrs=attrs)


ROWS: tuple[Op, ...] = (
    Op(name="cross_entropy", arity=(1, 1), symbol="xent",
       doc="softmax cross-entropy of logits (N, C): -log softmax(x)[n, targets[n]], reduced by "
           "mean, sum or none",
       attrs=(Attr("targets", "int_list"),
              Attr("reduction", "choice", "mean", choices=REDUCTIONS)),
       infer_shape=_cross_entropy_shape, forward=_cross_entropy, vjp=_cross_entropy_vjp,
       batch=_cross_entropy_batching),
)
