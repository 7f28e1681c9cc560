"""Reductions of catalog 1.1: amax, amin, logsumexp and var, taking `axis` and `keepdims` as sum
does. amax and amin split the gradient equally among the elements tied for the extreme (the
rule of max and min); logsumexp is computed stably. On a 0-d value the first three are the
identity and var is 0, so graphs of scalars keep their fast executors."""

from __future__ import annotations

import math

import numpy as np

from engine.errors import BadAttr, ShapeMismatch
from engine.ops.base import IDENTITY_ON_SCALARS, Attr, Op, ScalarKernels, Shape, normalize_axes
from engine.ops.batching import shifted_axes
from engine.ops.reductions import _expand_reduced, _reduce_shape

_REDUCE_ATTRS = (Attr("axis", "axis", None), Attr("keepdims", "bool", False))


def _reduced_axes(shape: Shape, axis) -> tuple[int, ...]:
    return normalize_axes(axis, len(shape), "")


def _reduced_count(shape: Shape, axis) -> int:
    return math.prod(shape[a] for a in _reduced_axes(shape, axis))


def _extreme_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    out = _reduce_shape(shapes, attrs, node)
    (shape,) = shapes
    if any(shape[a] == 0 for a in normalize_axes(attrs["axis"], len(shape), node)):
        raise ShapeMismatch(f"no extreme over an empty axis of {list(shape)}", node)
    return out


def _var_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    out = _reduce_shape(shapes, attrs, node)
    count, ddof = _reduced_count(shapes[0], attrs["axis"]), attrs["ddof"]
    if not 0 <= ddof < count:
        raise BadAttr(f"ddof {ddof} is out of range for {count} reduced elements "
                      f"(0 <= ddof < {count})", node)
    return out


# ---------------------------------------------------------------- amax, amin

def _tie_split_extreme_vjp(g, out, x, *, axis, keepdims):
    """The gradient goes to the elements equal to the extreme, split equally on ties."""
    hits = (x == _expand_reduced(out, x, axis, keepdims)) * 1.0
    count = np.sum(hits, axis=_reduced_axes(np.shape(x), axis), keepdims=True)
    return (_expand_reduced(g, x, axis, keepdims) * hits / count,)


def _amax(x, *, axis, keepdims):
    return np.amax(x, axis=axis, keepdims=keepdims)


def _amin(x, *, axis, keepdims):
    return np.amin(x, axis=axis, keepdims=keepdims)


# ---------------------------------------------------------------- logsumexp

def _shifted_exp(x, axis):
    """exp(x - top) with top the largest value along the axes, so no exp overflows; where that
    largest value is infinite, top is 0 instead (inf - inf would be nan), and the result
    carries the infinity as numpy's exp does."""
    top = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.exp(x - top), top


def _logsumexp(x, *, axis, keepdims):
    e, top = _shifted_exp(x, axis)
    total = np.log(np.sum(e, axis=axis, keepdims=True)) + top
    return total if keepdims else np.squeeze(total, axis=_reduced_axes(np.shape(x), axis))


def _logsumexp_vjp(g, out, x, *, axis, keepdims):
    # d/dx log(sum(exp(x))) = softmax(x), taken from the shifted exponentials rather than
    # exp(x - out): out has lost the low digits of a large x
    e, _ = _shifted_exp(x, axis)
    softmax = e / np.sum(e, axis=axis, keepdims=True)
    return (_expand_reduced(g, x, axis, keepdims) * softmax,)


# ---------------------------------------------------------------- var

def _centred(x, axis):
    return x - np.mean(x, axis=axis, keepdims=True)


def _var(x, *, axis, keepdims, ddof):
    d = _centred(x, axis)
    count = _reduced_count(np.shape(x), axis)
    return np.sum(d * d, axis=axis, keepdims=keepdims) / (count - ddof)


def _var_vjp(g, out, x, *, axis, keepdims, ddof):
    count = _reduced_count(np.shape(x), axis)
    return (_expand_reduced(g, x, axis, keepdims) * 2.0 * _centred(x, axis) / (count - ddof),)


def _var_scalar(x, *, axis, keepdims, ddof):
    d = x - x  # a 0-d value is its own mean; nan and inf give nan, as numpy does
    return d * d


def _var_vjp_scalar(g, out, x, *, axis, keepdims, ddof):
    return (2.0 * g * (x - x),)


def _reduction(name: str, symbol: str, doc: str, **rules) -> Op:
    # over a batch, the axes move past the batch axis and the row's own rules serve
    batch = shifted_axes(rules["forward"], rules["vjp"], "axis")
    return Op(name=name, arity=(1, 1), symbol=symbol, doc=doc, attrs=_REDUCE_ATTRS, batch=batch,
              **rules)


ROWS: tuple[Op, ...] = (
    _reduction("amax", "max", "max over axis (all axes when null); ties split the gradient",
               infer_shape=_extreme_shape, forward=_amax, vjp=_tie_split_extreme_vjp,
               scalar=IDENTITY_ON_SCALARS),
    _reduction("amin", "min", "min over axis (all axes when null); ties split the gradient",
               infer_shape=_extreme_shape, forward=_amin, vjp=_tie_split_extreme_vjp,
               scalar=IDENTITY_ON_SCALARS),
    _reduction("logsumexp", "logΣexp", "log(sum(exp(x))) over axis (all axes when null), stable",
               infer_shape=_reduce_shape, forward=_logsumexp, vjp=_logsumexp_vjp,
               scalar=IDENTITY_ON_SCALARS),
    Op(name="var", arity=(1, 1), symbol="var",
       doc="variance over axis (all axes when null), divided by count - ddof",
       attrs=(*_REDUCE_ATTRS, Attr("ddof", "int", 0)), infer_shape=_var_shape,
       forward=_var, vjp=_var_vjp, batch=shifted_axes(_var, _var_vjp, "axis"),
       scalar=ScalarKernels(forward=_var_scalar, vjp=_var_vjp_scalar)),
)
