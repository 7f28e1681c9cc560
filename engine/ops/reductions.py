"""Reductions over axes: sum and mean, whose gradients broadcast back over what they reduced."""

from __future__ import annotations

import math

import numpy as np

from engine.ops.base import IDENTITY_ON_SCALARS, Attr, Op, Shape, normalize_axes
from engine.ops.batching import shifted_axes

_REDUCE_ATTRS = (Attr("axis", "axis", None), Attr("keepdims", "bool", False))


def _reduce_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    axes = normalize_axes(attrs["axis"], len(shape), node)
    if attrs["keepdims"]:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _reduced_count(shape: Shape, axis) -> int:
    return math.prod(shape[a] for a in normalize_axes(axis, len(shape), ""))


def _sum(x, *, axis, keepdims):
    return np.sum(x, axis=axis, keepdims=keepdims)


def _mean(x, *, axis, keepdims):
    return np.sum(x, axis=axis, keepdims=keepdims) / _reduced_count(np.shape(x), axis)


def _expand_reduced(g, x, axis, keepdims):
    """Broadcast a reduction's gradient back over the axes it reduced."""
    if not keepdims:
        g = np.expand_dims(g, normalize_axes(axis, np.ndim(x), ""))
    return np.broadcast_to(g, np.shape(x))


def _sum_vjp(g, out, x, *, axis, keepdims):
    return (_expand_reduced(g, x, axis, keepdims),)


def _mean_vjp(g, out, x, *, axis, keepdims):
    return (_expand_reduced(g, x, axis, keepdims) / _reduced_count(np.shape(x), axis),)


ROWS: tuple[Op, ...] = (
    Op(name="sum", arity=(1, 1), symbol="Σ", doc="sum over axis (all axes when null)",
       attrs=_REDUCE_ATTRS, infer_shape=_reduce_shape, forward=_sum, vjp=_sum_vjp,
       batch=shifted_axes(_sum, _sum_vjp, "axis"), scalar=IDENTITY_ON_SCALARS),
    Op(name="mean", arity=(1, 1), symbol="mean", doc="mean over axis (all axes when null)",
       attrs=_REDUCE_ATTRS, infer_shape=_reduce_shape, forward=_mean, vjp=_mean_vjp,
       batch=shifted_axes(_mean, _mean_vjp, "axis"), scalar=IDENTITY_ON_SCALARS),
)
