"""Unary elementwise ops of catalog 1.1: sin, cos, log1p and the activations softplus, gelu,
leaky_relu and clip. Each carries float kernels over `math` for the scalar executors; where a
kernel raises (inf, nan, a domain edge) the executor falls back to the numpy rule."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from engine.errors import BadAttr
from engine.ops.base import Attr, Op, Shape
from engine.ops.unary import _sigmoid, _sigmoid_scalar, elementwise_unary

# ---------------------------------------------------------------- softplus

def _softplus(x):
    # log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): no exp of a large positive number
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _softplus_scalar(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# ---------------------------------------------------------------- gelu (tanh approximation)

_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _gelu(x):
    return 0.5 * x * (1.0 + np.tanh(_GELU_K * (x + _GELU_C * x**3)))


def _gelu_vjp(g, out, x):
    t = np.tanh(_GELU_K * (x + _GELU_C * x**3))
    sech2 = 1.0 - t * t
    inner = _GELU_K * (1.0 + 3.0 * _GELU_C * x * x)
    # where tanh has saturated, sech^2 is 0 and so is its term, even if x * inner overflowed
    slope = np.where(sech2 == 0.0, 0.0, 0.5 * x * sech2 * inner)
    return (g * (0.5 * (1.0 + t) + slope),)


def _gelu_scalar(x):
    return 0.5 * x * (1.0 + math.tanh(_GELU_K * (x + _GELU_C * x**3)))


def _gelu_vjp_scalar(g, out, x):
    t = math.tanh(_GELU_K * (x + _GELU_C * x**3))
    sech2 = 1.0 - t * t
    slope = 0.0 if sech2 == 0.0 else 0.5 * x * sech2 * _GELU_K * (1.0 + 3.0 * _GELU_C * x * x)
    return (g * (0.5 * (1.0 + t) + slope),)


# ---------------------------------------------------------------- leaky_relu

def _leaky_relu(x, *, slope):
    return np.where(x > 0, x, slope * x)


def _leaky_relu_vjp(g, out, x, *, slope):
    # slope at 0, as relu (slope 0) has gradient 0 there
    return (g * np.where(x > 0, 1.0, slope),)


def _leaky_relu_scalar(x, *, slope):
    return x if x > 0 else slope * x


def _leaky_relu_vjp_scalar(g, out, x, *, slope):
    return (g if x > 0 else g * slope,)


# ---------------------------------------------------------------- clip

def _clip(x, *, lo, hi):
    # np.maximum / np.minimum pass nan through, as numpy's clip does
    if lo is not None:
        x = np.maximum(x, lo)
    if hi is not None:
        x = np.minimum(x, hi)
    return x


def _inside(x, lo, hi):
    """1.0 where lo <= x <= hi (a null bound does not limit), else 0.0; nan is outside."""
    above = True if lo is None else x >= lo
    below = True if hi is None else x <= hi
    return np.logical_and(above, below) * 1.0


def _clip_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    lo, hi = attrs["lo"], attrs["hi"]
    if lo is not None and hi is not None and lo > hi:
        raise BadAttr(f"clip bounds lo {lo:g} > hi {hi:g}", node)
    return shapes[0]


def _clip_vjp(g, out, x, *, lo, hi):
    return (g * _inside(x, lo, hi),)


def _clip_scalar(x, *, lo, hi):
    # as np.maximum and np.minimum: nan passes, and a bound equal to x is the result (which
    # tells 0.0 from -0.0)
    if lo is not None and x <= lo:
        x = lo
    if hi is not None and x >= hi:
        x = hi
    return x


def _clip_vjp_scalar(g, out, x, *, lo, hi):
    inside = (lo is None or x >= lo) and (hi is None or x <= hi)
    return (g if inside else g * 0.0,)


def _clip_label(attrs: Mapping[str, Any], number: Callable[[float], str]) -> str | None:
    lo, hi = attrs.get("lo"), attrs.get("hi")
    shown = ["" if bound is None else number(bound) for bound in (lo, hi)]
    return f"clip[{shown[0]}, {shown[1]}]"


def _slope_label(attrs: Mapping[str, Any], number: Callable[[float], str]) -> str | None:
    slope = attrs.get("slope")
    return None if slope is None else f"lrelu {number(slope)}"


ROWS: tuple[Op, ...] = (
    elementwise_unary(
        name="sin", symbol="sin", doc="sine",
        forward=np.sin, vjp=lambda g, out, x: (g * np.cos(x),),
        scalar_forward=math.sin, scalar_vjp=lambda g, out, x: (g * math.cos(x),),
    ),
    elementwise_unary(
        name="cos", symbol="cos", doc="cosine",
        forward=np.cos, vjp=lambda g, out, x: (-g * np.sin(x),),
        scalar_forward=math.cos, scalar_vjp=lambda g, out, x: (-g * math.sin(x),),
    ),
    elementwise_unary(
        name="log1p", symbol="log1p", doc="log(1 + x), accurate near 0",
        forward=np.log1p, vjp=lambda g, out, x: (g / (1.0 + x),), scalar_forward=math.log1p,
    ),
    elementwise_unary(
        name="softplus", symbol="softplus", doc="log(1 + e ** x), computed without overflow",
        forward=_softplus, vjp=lambda g, out, x: (g * _sigmoid(x),),
        scalar_forward=_softplus_scalar, scalar_vjp=lambda g, out, x: (g * _sigmoid_scalar(x),),
    ),
    elementwise_unary(
        name="gelu", symbol="gelu",
        doc="x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's approximate=\"tanh\"",
        forward=_gelu, vjp=_gelu_vjp, scalar_forward=_gelu_scalar, scalar_vjp=_gelu_vjp_scalar,
    ),
    elementwise_unary(
        name="leaky_relu", symbol="lrelu", doc="x if x > 0 else slope * x (gradient slope at 0)",
        attrs=(Attr("slope", "number", 0.01),), array_attrs=("slope",),
        forward=_leaky_relu, vjp=_leaky_relu_vjp,
        scalar_forward=_leaky_relu_scalar, scalar_vjp=_leaky_relu_vjp_scalar, label=_slope_label,
    ),
    replace(elementwise_unary(
        name="clip", symbol="clip",
        doc="x limited to [lo, hi] (a null bound does not limit); gradient 1 where "
            "lo <= x <= hi, else 0",
        attrs=(Attr("lo", "number_or_null", None), Attr("hi", "number_or_null", None)),
        array_attrs=("lo", "hi"),
        forward=_clip, vjp=_clip_vjp, scalar_forward=_clip_scalar, scalar_vjp=_clip_vjp_scalar,
        label=_clip_label,
    ), infer_shape=_clip_shape),
)
