"""Neural-network ops: softmax and log-softmax along one axis, computed stably."""

from __future__ import annotations

import numpy as np

from engine.ops.base import Attr, Op, Shape, normalize_axes
from engine.ops.batching import shifted_axes


def _softmax_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    normalize_axes(attrs["axis"], len(shape), node)
    return shape


def _softmax(x, *, axis):
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _softmax_vjp(g, out, x, *, axis):
    return (out * (g - np.sum(g * out, axis=axis, keepdims=True)),)


def _log_softmax(x, *, axis):
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _log_softmax_vjp(g, out, x, *, axis):
    return (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),)


_AXIS = (Attr("axis", "int", -1),)

ROWS: tuple[Op, ...] = (
    Op(name="softmax", arity=(1, 1), symbol="softmax", doc="softmax along axis, computed stably",
       attrs=_AXIS, infer_shape=_softmax_shape, forward=_softmax, vjp=_softmax_vjp,
       batch=shifted_axes(_softmax, _softmax_vjp, "axis")),
    Op(name="log_softmax", arity=(1, 1), symbol="log_softmax",
       doc="log of softmax along axis, computed stably",
       attrs=_AXIS, infer_shape=_softmax_shape, forward=_log_softmax, vjp=_log_softmax_vjp,
       batch=shifted_axes(_log_softmax, _log_softmax_vjp, "axis")),
)
