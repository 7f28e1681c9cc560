"""The op catalog: every gate declared once with its arity, attrs, shape rule, forward and vjp.

A vjp rule takes the upstream gradient `g`, the op's output and its inputs, and returns one
gradient per input. Rules written with arithmetic operators only serve numpy arrays and Python
floats alike; ops whose numpy form has no float twin also carry `scalar_forward`/`scalar_vjp`
kernels over `math`, used by the engine's scalar fast path. A float kernel may raise
(ZeroDivisionError, OverflowError, ValueError): the engine then recomputes that node with the
numpy rule, so both paths agree on inf and nan.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

import numpy as np

from engine.errors import BadAttr, ShapeMismatch

Shape = tuple[int, ...]
REQUIRED = object()


@dataclass(frozen=True, slots=True)
class Attr:
    """An op attribute: `kind` is one of number, int, bool, axis, axes, shape."""

    name: str
    kind: str
    default: object = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True, slots=True)
class Op:
    name: str
    min_arity: int
    max_arity: int | None  # None: any number from min_arity up
    description: str
    shape: Callable[..., Shape]
    forward: Callable | None = None
    vjp: Callable | None = None
    attrs: tuple[Attr, ...] = ()
    symbol: str = ""
    scalar_forward: Callable | None = None
    scalar_vjp: Callable | None = None
    # The vjp takes `needs` (one bool per input) and may skip gradients nobody asked for.
    vjp_takes_needs: bool = False
    # n-ary ops: the float kernel for exactly two inputs (the common case, kept call-cheap).
    scalar_pairwise: Callable | None = None
    # forward and vjp act element by element, so one call can serve many scalar nodes at once
    elementwise: bool = False

    @property
    def is_source(self) -> bool:
        return self.forward is None

    @property
    def arity_text(self) -> str:
        if self.max_arity is None:
            return f">= {self.min_arity}"
        return str(self.min_arity)


# ---------------------------------------------------------------- attrs

def _is_int(value: object) -> bool:
    return type(value) is int  # bool is an int subclass and must not pass


def _is_number(value: object) -> bool:
    return type(value) is float or type(value) is int


def _int_list(value: object) -> bool:
    return isinstance(value, list | tuple) and all(_is_int(v) for v in value)


def coerce_attr(attr: Attr, value: object, node: str) -> object:
    """Check one attr value against its kind; return it normalised (lists become tuples)."""
    kind = attr.kind
    if kind == "number" and _is_number(value):
        if not math.isfinite(value):
            raise BadAttr(f"attr '{attr.name}' must be a finite number", node)
        return float(value)
    if kind == "int" and _is_int(value):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "axis" and (value is None or _is_int(value)):
        return value
    if kind in ("axis", "axes") and (value is None or _int_list(value)):
        return None if value is None else tuple(value)
    if kind == "shape" and _int_list(value):
        return tuple(value)
    expected = ATTR_KINDS[kind]
    raise BadAttr(f"attr '{attr.name}' must be {expected}, got {value!r}", node)


ATTR_KINDS = {
    "number": "a number",
    "int": "an integer",
    "bool": "a boolean",
    "axis": "an integer, a list of integers, or null",
    "axes": "a list of integers or null",
    "shape": "a list of integers",
}


# ---------------------------------------------------------------- shape rules

def same_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    return shapes[0]


def _broadcast_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = ", ".join(str(list(s)) for s in shapes)
        raise ShapeMismatch(f"shapes {listed} do not broadcast together", node) from None


def _source_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    raise AssertionError("source shapes come from their values")


def normalize_axes(axis: object, ndim: int, node: str, attr: str = "axis") -> tuple[int, ...]:
    """Turn an axis attr (None, int or tuple) into sorted non-negative axes, or raise BadAttr."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else axis
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise BadAttr(f"{attr} {a} is out of range for a {ndim}-d tensor", node)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise BadAttr(f"{attr} {list(axes)} repeats an axis", node)
    return tuple(sorted(out))


def _reduce_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    axes = normalize_axes(attrs["axis"], len(shape), node)
    if attrs["keepdims"]:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _softmax_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    normalize_axes(attrs["axis"], len(shape), node)
    return shape


def _matmul_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    a, b = shapes
    if not a or not b:
        raise ShapeMismatch("matmul needs inputs of at least one dimension", node)
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ShapeMismatch(
            f"matmul of {list(a)} and {list(b)}: inner dimensions {a2[-1]} and {b2[-2]} differ",
            node,
        )
    try:
        batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        raise ShapeMismatch(
            f"matmul of {list(a)} and {list(b)}: batch dimensions do not broadcast", node
        ) from None
    rows = () if len(a) == 1 else (a2[-2],)
    cols = () if len(b) == 1 else (b2[-1],)
    return batch + rows + cols


def _transpose_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    axes = attrs["axes"]
    if axes is None:
        return shape[::-1]
    ndim = len(shape)
    if sorted(a % ndim if -ndim <= a < ndim else -1 for a in axes) != list(range(ndim)):
        raise BadAttr(f"axes {list(axes)} is not a permutation of {ndim} axes", node)
    return tuple(shape[a % ndim] for a in axes)


def _reshape_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    target = attrs["shape"]
    size = math.prod(shape)
    unknown = [i for i, n in enumerate(target) if n == -1]
    if any(n < -1 for n in target) or len(unknown) > 1:
        raise BadAttr(f"shape {list(target)}: sizes must be >= 0, with at most one -1", node)
    known = math.prod(n for n in target if n != -1)
    if unknown:
        if known == 0 or size % known:
            raise ShapeMismatch(f"cannot reshape {list(shape)} into {list(target)}", node)
        target = tuple(size // known if n == -1 else n for n in target)
    if math.prod(target) != size:
        raise ShapeMismatch(
            f"cannot reshape {list(shape)} ({size} elements) into {list(target)}", node
        )
    return tuple(target)


# ---------------------------------------------------------------- helpers

def unbroadcast(grad, shape: Shape):
    """Sum a gradient over the axes numpy broadcasting added, back to `shape`."""
    if np.shape(grad) == shape:
        return grad
    grad = np.asarray(grad)
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return np.broadcast_to(grad, shape) if grad.shape != shape else grad


def _product(values):
    return reduce(lambda a, b: a * b, values)


def _total(values):
    return reduce(lambda a, b: a + b, values)


# ---------------------------------------------------------------- unary kernels

def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


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


# ---------------------------------------------------------------- n-ary kernels

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


# ---------------------------------------------------------------- reductions

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


def _identity(x, **attrs):
    return x


def _identity_vjp(g, out, x, **attrs):
    return (g,)


# ---------------------------------------------------------------- shape ops

def _transpose_vjp(g, out, x, *, axes):
    return (np.transpose(g, None if axes is None else np.argsort(axes)),)


def _matmul_vjp(g, out, a, b, *, needs=(True, True)):
    """dA = G B^T and dB = A^T G, with numpy's 1-d promotion undone afterwards."""
    if a.ndim == 1 and b.ndim == 1:
        return (g * b if needs[0] else None, g * a if needs[1] else None)
    a2 = a[np.newaxis, :] if a.ndim == 1 else a
    b2 = b[:, np.newaxis] if b.ndim == 1 else b
    g2 = np.asarray(g)
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    da = db = None
    if needs[0]:
        da = g2 @ np.swapaxes(b2, -1, -2)
        da = da[..., 0, :] if a.ndim == 1 else da
    if needs[1]:
        db = np.swapaxes(a2, -1, -2) @ g2
        db = db[..., :, 0] if b.ndim == 1 else db
    return (da, db)


# ---------------------------------------------------------------- nn

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


# ---------------------------------------------------------------- the table

_REDUCE_ATTRS = (Attr("axis", "axis", None), Attr("keepdims", "bool", False))


def _unary(name, symbol, description, forward, vjp, *, scalar_forward=None, scalar_vjp=None,
           attrs=(), shape=same_shape):
    return Op(name, 1, 1, description, shape, forward, vjp, attrs, symbol,
              scalar_forward or forward, scalar_vjp or vjp, elementwise=shape is same_shape)


def _nary(name, symbol, description, forward, vjp, pairwise, *, min_arity=2, max_arity=None):
    return Op(name, min_arity, max_arity, description, _broadcast_shape, forward, vjp, (),
              symbol, pairwise if max_arity == 2 else lambda *xs: reduce(pairwise, xs), vjp,
              scalar_pairwise=pairwise, elementwise=True)


OP_TABLE: tuple[Op, ...] = (
    # sources
    Op("input", 0, 0, "a variable, fed by its value or the request's inputs", _source_shape,
       symbol="in"),
    Op("const", 0, 0, "a fixed value", _source_shape, symbol="const"),
    # n-ary and binary elementwise (numpy broadcasting)
    _nary("add", "+", "x1 + x2 + ...", lambda *xs: _total(xs),
          lambda g, out, *xs: (g,) * len(xs), operator.add),
    _nary("mul", "*", "x1 * x2 * ...", lambda *xs: _product(xs), _mul_vjp, operator.mul),
    _nary("sub", "-", "x - y", operator.sub, lambda g, out, x, y: (g, -g), operator.sub,
          max_arity=2),
    _nary("div", "/", "x / y", operator.truediv, lambda g, out, x, y: (g / y, -g * x / (y * y)),
          operator.truediv, max_arity=2),
    _nary("max", "max", "elementwise maximum; ties split the gradient equally",
          lambda *xs: reduce(np.maximum, xs), _tie_split_vjp, _max2),
    _nary("min", "min", "elementwise minimum; ties split the gradient equally",
          lambda *xs: reduce(np.minimum, xs), _tie_split_vjp, _min2),
    # unary elementwise
    _unary("neg", "-x", "-x", lambda x: -x, lambda g, out, x: (-g,)),
    _unary("inv", "1/x", "1 / x", lambda x: 1.0 / x, lambda g, out, x: (-g * out * out,)),
    _unary("add_const", "+c", "c + x", lambda x, *, c: c + x, lambda g, out, x, *, c: (g,),
           attrs=(Attr("c", "number"),)),
    _unary("scale", "*a", "a * x", lambda x, *, a: a * x, lambda g, out, x, *, a: (g * a,),
           attrs=(Attr("a", "number"),)),
    _unary("pow", "**", "x ** exponent", lambda x, *, exponent: np.power(x, exponent), _pow_vjp,
           scalar_forward=lambda x, *, exponent: math.pow(x, exponent),
           scalar_vjp=_pow_vjp_scalar, attrs=(Attr("exponent", "number"),)),
    _unary("exp", "exp", "e ** x", np.exp, lambda g, out, x: (g * out,), scalar_forward=math.exp),
    _unary("log", "log", "natural logarithm", np.log, lambda g, out, x: (g / x,),
           scalar_forward=math.log),
    _unary("sqrt", "sqrt", "square root", np.sqrt, lambda g, out, x: (g * 0.5 / out,),
           scalar_forward=math.sqrt),
    _unary("abs", "abs", "absolute value (gradient 0 at 0)", np.abs,
           lambda g, out, x: (g * np.sign(x),), scalar_forward=abs, scalar_vjp=_abs_grad_scalar),
    _unary("sigmoid", "σ", "1 / (1 + e ** -x), computed without overflow", _sigmoid,
           lambda g, out, x: (g * out * (1.0 - out),), scalar_forward=_sigmoid_scalar),
    _unary("tanh", "tanh", "hyperbolic tangent", np.tanh,
           lambda g, out, x: (g * (1.0 - out * out),), scalar_forward=math.tanh),
    _unary("relu", "relu", "max(x, 0) (gradient 0 at 0)", lambda x: np.maximum(x, 0.0),
           lambda g, out, x: (g * (x > 0),), scalar_forward=_relu_scalar),
    # reductions
    _unary("sum", "Σ", "sum over axis (all axes when null)", _sum, _sum_vjp,
           scalar_forward=_identity, scalar_vjp=_identity_vjp, attrs=_REDUCE_ATTRS,
           shape=_reduce_shape),
    _unary("mean", "mean", "mean over axis (all axes when null)", _mean, _mean_vjp,
           scalar_forward=_identity, scalar_vjp=_identity_vjp, attrs=_REDUCE_ATTRS,
           shape=_reduce_shape),
    # shape
    Op("matmul", 2, 2, "numpy matmul: vectors, matrices and batches", _matmul_shape,
       np.matmul, _matmul_vjp, (), "@", vjp_takes_needs=True),
    _unary("transpose", "ᵀ", "numpy transpose (reversed axes when null)",
           lambda x, *, axes: np.transpose(x, axes), _transpose_vjp,
           scalar_forward=_identity, scalar_vjp=_identity_vjp,
           attrs=(Attr("axes", "axes", None),), shape=_transpose_shape),
    _unary("reshape", "reshape", "numpy reshape (one size may be -1)",
           lambda x, *, shape: np.reshape(x, shape),
           lambda g, out, x, *, shape: (np.reshape(g, np.shape(x)),),
           scalar_forward=_identity, scalar_vjp=_identity_vjp,
           attrs=(Attr("shape", "shape"),), shape=_reshape_shape),
    # nn
    _unary("softmax", "softmax", "softmax along axis, computed stably", _softmax, _softmax_vjp,
           attrs=(Attr("axis", "int", -1),), shape=_softmax_shape),
    _unary("log_softmax", "log_softmax", "log of softmax along axis, computed stably",
           _log_softmax, _log_softmax_vjp, attrs=(Attr("axis", "int", -1),),
           shape=_softmax_shape),
)

OPS: dict[str, Op] = {op.name: op for op in OP_TABLE}
# The scalar executors take sources, elementwise ops, and the shape and reduction ops that are
# the identity on a 0-d value (sum, mean, transpose, reshape); not matmul or softmax, which a
# scalar cannot take at all.
SCALAR_OPS = frozenset(
    name for name, op in OPS.items()
    if op.is_source or op.elementwise or op.scalar_forward is _identity
)

def describe_ops() -> list[dict]:
    """The catalog as data: what GET /v1/ops shows and what the docs are generated from."""
    return [
        {
            "name": op.name,
            "arity": op.arity_text,
            "min_inputs": op.min_arity,
            "max_inputs": op.max_arity,
            "attrs": [
                {"name": a.name, "type": ATTR_KINDS[a.kind],
                 "default": None if a.required else a.default, "required": a.required}
                for a in op.attrs
            ],
            "symbol": op.symbol,
            "description": op.description,
        }
        for op in OP_TABLE
    ]
