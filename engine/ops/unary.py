"""Unary elementwise ops. Rules written with arithmetic operators serve floats as they are; the
others carry float kernels over `math` for the scalar executors."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from engine.ops.base import Attr, Label, Op, ScalarKernels, number_label, same_shape


def _sigmoid(x):
    """1 / (1 + e) for x >= 0 and e / (1 + e) below, with e = exp(-|x|): no overflow.

    Written as max(x >= 0, e) / (1 + e), in place: the same numbers as the two-branch form
    in fewer passes over the data (this is the hot gate of batched scalar graphs).
    """
    if np.ndim(x) == 0:
        e = np.exp(-np.abs(x))
        return (1.0 if x >= 0 else e) / (1.0 + e)
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    numerator = np.greater_equal(x, 0.0).astype(np.float64)
    np.maximum(numerator, e, out=numerator)
    e += 1.0
    return np.divide(numerator, e, out=numerator)


def _sigmoid_scalar(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _pow_vjp(g, out, x, *, exponent):
    if exponent == 0:
        return (g * 0.0,)
    return (g * exponent * x ** (exponent - 1),)


def _pow_vjp_scalar(g, out, x, *, exponent):
    if exponent == 0:
        return (g * 0.0,)
    return (g * exponent * math.pow(x, exponent - 1),)


def _abs_grad_scalar(g, out, x):
    if x > 0:
        return (g,)
    if x < 0:
        return (-g,)
    return (g * 0.0 if x == 0 else math.nan,)


def _relu_scalar(x):
    return x if x > 0 or x != x else 0.0


def elementwise_unary(
    *,
    name: str,
    symbol: str,
    doc: str,
    forward: Callable,
    vjp: Callable,
    scalar_forward: Callable | None = None,
    scalar_vjp: Callable | None = None,
    attrs: tuple[Attr, ...] = (),
    array_attrs: tuple[str, ...] = (),
    label: Label | None = None,
) -> Op:
    """A row for a one-input elementwise op; the float kernels default to the numpy rules."""
    return Op(
        name=name, arity=(1, 1), doc=doc, symbol=symbol, attrs=attrs, infer_shape=same_shape,
        forward=forward, vjp=vjp, label=label, elementwise=True, array_attrs=array_attrs,
        scalar=ScalarKernels(forward=scalar_forward or forward, vjp=scalar_vjp or vjp),
    )


ROWS: tuple[Op, ...] = (
    elementwise_unary(
        name="neg", symbol="-x", doc="-x",
        forward=lambda x: -x, vjp=lambda g, out, x: (-g,),
    ),
    elementwise_unary(
        name="inv", symbol="1/x", doc="1 / x",
        forward=lambda x: 1.0 / x, vjp=lambda g, out, x: (-g * out * out,),
    ),
    elementwise_unary(
        name="add_const", symbol="+c", doc="c + x", attrs=(Attr("c", "number"),),
        array_attrs=("c",),
        forward=lambda x, *, c: c + x, vjp=lambda g, out, x, *, c: (g,),
        label=number_label("c"),
    ),
    elementwise_unary(
        name="scale", symbol="*a", doc="a * x", attrs=(Attr("a", "number"),), array_attrs=("a",),
        forward=lambda x, *, a: a * x, vjp=lambda g, out, x, *, a: (g * a,),
        label=number_label("a", "*"),
    ),
    elementwise_unary(
        name="pow", symbol="**", doc="x ** exponent", attrs=(Attr("exponent", "number"),),
        forward=lambda x, *, exponent: np.power(x, exponent), vjp=_pow_vjp,
        scalar_forward=lambda x, *, exponent: math.pow(x, exponent), scalar_vjp=_pow_vjp_scalar,
        label=number_label("exponent", "**"),
    ),
    elementwise_unary(
        name="exp", symbol="exp", doc="e ** x",
        forward=np.exp, vjp=lambda g, out, x: (g * out,), scalar_forward=math.exp,
    ),
    elementwise_unary(
        name="log", symbol="log", doc="natural logarithm",
        forward=np.log, vjp=lambda g, out, x: (g / x,), scalar_forward=math.log,
    ),
    elementwise_unary(
        name="sqrt", symbol="sqrt", doc="square root",
        forward=np.sqrt, vjp=lambda g, out, x: (g * 0.5 / out,), scalar_forward=math.sqrt,
    ),
    elementwise_unary(
        name="abs", symbol="abs", doc="absolute value (gradient 0 at 0)",
        forward=np.abs, vjp=lambda g, out, x: (g * np.sign(x),),
        scalar_forward=abs, scalar_vjp=_abs_grad_scalar,
    ),
    elementwise_unary(
        name="sigmoid", symbol="σ", doc="1 / (1 + e ** -x), computed without overflow",
        forward=_sigmoid, vjp=lambda g, out, x: (g * out * (1.0 - out),),
        scalar_forward=_sigmoid_scalar,
    ),
    elementwise_unary(
        name="tanh", symbol="tanh", doc="hyperbolic tangent",
        forward=np.tanh, vjp=lambda g, out, x: (g * (1.0 - out * out),),
        scalar_forward=math.tanh,
    ),
    elementwise_unary(
        name="relu", symbol="relu", doc="max(x, 0) (gradient 0 at 0)",
        forward=lambda x: np.maximum(x, 0.0), vjp=lambda g, out, x: (g * (x > 0),),
        scalar_forward=_relu_scalar,
    ),
)
