"""Binary and n-ary elementwise ops: numpy broadcasting; the engine unbroadcasts their gradients.

Each row's rules are written with arithmetic operators only, so they serve numpy arrays and
Python floats alike; `pairwise` is the float kernel for two inputs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import reduce

import numpy as np

from engine.ops.base import Op, ScalarKernels, broadcast_shape


def _product(values):
    return reduce(lambda a, b: a * b, values)


def _total(values):
    return reduce(lambda a, b: a + b, values)


def _max2(a, b):
    return a if a > b or a != a else b


def _min2(a, b):
    return a if a < b or a != a else b


def _mul_vjp(g, out, *xs):
    if len(xs) == 2:
        return (g * xs[1], g * xs[0])
    return tuple(g * _product(xs[:i] + xs[i + 1 :]) for i in range(len(xs)))


def _tie_split_vjp(g, out, *xs):
    """max/min: the gradient goes to the inputs equal to the extreme, split equally on ties."""
    hits = [(x == out) * 1.0 for x in xs]  # as floats: numpy adds bools as logical or
    count = _total(hits)
    return tuple(g * hit / count for hit in hits)


def elementwise_nary(
    *,
    name: str,
    symbol: str,
    doc: str,
    forward: Callable,
    vjp: Callable,
    pairwise: Callable,
    binary: bool = False,
) -> Op:
    """A row for an op over two inputs (`binary`) or any number from two up."""
    scalar_forward = pairwise if binary else lambda *xs: reduce(pairwise, xs)
    return Op(
        name=name, arity=(2, 2 if binary else None), doc=doc, symbol=symbol,
        infer_shape=broadcast_shape, forward=forward, vjp=vjp, elementwise=True,
        scalar=ScalarKernels(forward=scalar_forward, vjp=vjp, pairwise=pairwise),
    )


ROWS: tuple[Op, ...] = (
    elementwise_nary(
        name="add", symbol="+", doc="x1 + x2 + ...",
        forward=lambda *xs: _total(xs), vjp=lambda g, out, *xs: (g,) * len(xs),
        pairwise=operator.add,
    ),
    elementwise_nary(
        name="mul", symbol="*", doc="x1 * x2 * ...",
        forward=lambda *xs: _product(xs), vjp=_mul_vjp, pairwise=operator.mul,
    ),
    elementwise_nary(
        name="sub", symbol="-", doc="x - y", binary=True,
        forward=operator.sub, vjp=lambda g, out, x, y: (g, -g), pairwise=operator.sub,
    ),
    elementwise_nary(
        name="div", symbol="/", doc="x / y", binary=True,
        forward=operator.truediv, vjp=lambda g, out, x, y: (g / y, -g * x / (y * y)),
        pairwise=operator.truediv,
    ),
    elementwise_nary(
        name="max", symbol="max", doc="elementwise maximum; ties split the gradient equally",
        forward=lambda *xs: reduce(np.maximum, xs), vjp=_tie_split_vjp, pairwise=_max2,
    ),
    elementwise_nary(
        name="min", symbol="min", doc="elementwise minimum; ties split the gradient equally",
        forward=lambda *xs: reduce(np.minimum, xs), vjp=_tie_split_vjp, pairwise=_min2,
    ),
)
