"""What every op row is made of: the row itself, its attrs and their one check, shared shape rules.

A row declares an op once: its arity, attrs, shape rule, numpy forward and vector-Jacobian rule
`vjp(g, out, *inputs, **attrs) -> one gradient per input`, the diagram's text for it, and what
the executors may do with it (float kernels for 0-d values, element-by-element application).
The sections of the table (`sources`, `unary`, `binary`, `reductions`, `shape`, `nn`) build
rows with keyword arguments only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from engine.errors import BadAttr, ShapeMismatch

Shape = tuple[int, ...]
# (input shapes, checked attrs, node id) -> output shape; raises ShapeMismatch or BadAttr.
ShapeRule = Callable[[list[Shape], dict, str], Shape]
# (checked attrs, number formatter) -> the diagram's text for a gate, or None for its symbol.
Label = Callable[[Mapping[str, Any], Callable[[float], str]], str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Batched:
    """How one gate computes over operands of which some carry a leading batch axis.

    `forward(*xs, **attrs)` takes the operands as they are (batched ones with the batch axis
    first, shared ones without it) and gives the result with its batch axis at `out_axis`.
    `vjp(g, out, *xs, **attrs)` takes `g` and `out` with that same batch axis and gives one
    contribution per input: a batched input's per point (batch axis first), a shared input's
    either per point (batch axis first) or already summed over the points (its own shape);
    the engine sums the per-point ones or keeps them, as the request's `reduce` says, and
    unbroadcasts what is left. With `vjp_takes_needs` the vjp takes `needs` as the row's does.
    """

    forward: Callable
    vjp: Callable
    attrs: Mapping[str, Any]
    out_axis: int = 0
    vjp_takes_needs: bool = False


# (which inputs carry the batch axis, the inputs' shapes at one point, checked attrs) -> Batched.
# It runs once per node when a plan is compiled: the batch length itself is known only at run
# time, so a rule reads it from its batched operands.
BatchRule = Callable[[tuple[bool, ...], list[Shape], dict], Batched]

REQUIRED = object()


@dataclass(frozen=True, slots=True)
class Attr:
    """An op attribute: `kind` is a key of ATTR_KINDS; a "choice" attr lists its `choices`."""

    name: str
    kind: str
    default: object = REQUIRED
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type_text(self) -> str:
        """What a value of this attr must be, as GET /v1/ops and error messages say it."""
        if self.kind == "choice":
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        return ATTR_KINDS[self.kind]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalarKernels:
    """An op's rules over Python floats, for graphs whose every value is 0-d.

    `forward(*xs, **attrs)` and `vjp(g, out, *xs, **attrs)` take and give floats; they may
    raise ArithmeticError or ValueError, and the executor then recomputes the node with the
    numpy rules so that both agree on inf and nan. `pairwise` is an n-ary op's kernel for
    exactly two inputs (the common case, kept call-cheap). `identity` marks ops that are the
    identity on a 0-d value (a reduction or reshape of a scalar).
    """

    forward: Callable
    vjp: Callable
    pairwise: Callable | None = None
    identity: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """One row of the op table.

    `arity` is (min, max) with max None for "any number from min up". Sources (`is_source`)
    have no forward, vjp or shape rule: their values come from the request; `is_variable`
    sources may be fed by the request's `inputs` and are what gradcheck perturbs.
    `elementwise` rows apply forward and vjp element by element, so one call may serve many
    nodes at once (the levels executor does so), and one generic batching rule serves them all.
    `array_attrs` names an elementwise row's number attrs that forward and vjp take as well as
    arrays of one value per element, giving exactly each element's result with its own number:
    nodes differing only in those attrs may then share a call. (Not pow's exponent: numpy
    computes x ** 2, x ** 0.5 and x ** -1 by routes an array of exponents does not take, and
    their last bits differ.)
    Every other gate declares `batch`: its batching rule (engine/ops/batching.py says what a
    rule is told and what it answers).
    """

    name: str
    arity: tuple[int, int | None]
    doc: str
    symbol: str
    attrs: tuple[Attr, ...] = ()
    infer_shape: ShapeRule | None = None
    forward: Callable | None = None
    vjp: Callable | None = None
    # the vjp takes `needs` (one bool per input) and may skip gradients nobody asked for
    vjp_takes_needs: bool = False
    label: Label | None = None
    is_source: bool = False
    is_variable: bool = False
    elementwise: bool = False
    array_attrs: tuple[str, ...] = ()
    batch: BatchRule | None = None
    scalar: ScalarKernels | None = None
    # elements of the largest temporary array forward or vjp allocates, for ops whose
    # temporaries can outgrow their inputs and output (compiling holds it to the tensor limit)
    work_size: Callable[[list[Shape], dict], int] | None = None

    def __post_init__(self) -> None:
        gate_parts = (self.infer_shape, self.forward, self.vjp)
        if self.is_source and any(part is not None for part in gate_parts):
            raise ValueError(f"op '{self.name}': a source has no shape rule, forward or vjp")
        if not self.is_source and any(part is None for part in gate_parts):
            raise ValueError(f"op '{self.name}': a gate needs a shape rule, forward and vjp")
        if self.is_variable and not self.is_source:
            raise ValueError(f"op '{self.name}': only a source can be a variable")
        numbers = {a.name for a in self.attrs if a.kind in ("number", "number_or_null")}
        if self.array_attrs and not (self.elementwise and numbers.issuperset(self.array_attrs)):
            raise ValueError(f"op '{self.name}': array_attrs must be number attrs of an "
                             "elementwise op")

    @property
    def min_arity(self) -> int:
        return self.arity[0]

    @property
    def max_arity(self) -> int | None:
        return self.arity[1]

    @property
    def arity_text(self) -> str:
        low, high = self.arity
        return f">= {low}" if high is None else str(low)

    @property
    def takes_scalars(self) -> bool:
        """Whether the float executors can run this op (every value of the graph being 0-d)."""
        return self.is_source or self.scalar is not None

    def label_text(self, attrs: Mapping[str, Any], number: Callable[[float], str]) -> str:
        """The diagram's text for a gate of this op with `attrs`; `number` formats numbers."""
        text = self.label(attrs, number) if self.label is not None else None
        return text or self.symbol or self.name


# ---------------------------------------------------------------- attrs

ATTR_KINDS = {
    "number": "a number",
    "int": "an integer",
    "bool": "a boolean",
    "axis": "an integer, a list of integers, or null",
    "axes": "a list of integers or null",
    "shape": "a list of integers",
    "number_or_null": "a number or null",
    "int_or_null": "an integer or null",
    "int_list": "a list of integers",
    "indices": "an integer or a rectangular nested list of integers",
    "slices": "a list with one entry per leading axis: an integer, or [start, stop] or "
              "[start, stop, step] of integers or nulls",
    "choice": "one of the listed strings",
}
# The kinds above that hold integers (alone, in lists, or in slices).
_INTEGER_KINDS = frozenset({"int", "int_or_null", "axis", "axes", "shape", "int_list",
                            "indices", "slices"})


def is_int(value: object) -> bool:
    return type(value) is int  # bool is an int subclass and must not pass


def is_number(value: object) -> bool:
    return type(value) is float or type(value) is int


def _int_list(value: object) -> bool:
    return isinstance(value, list | tuple) and all(is_int(v) for v in value)


def coerce_attr(attr: Attr, value: object, node: str) -> object:
    """Check one attr value against its kind; return it normalised (lists become tuples)."""
    kind = attr.kind
    if kind == "number" and is_number(value):
        if not math.isfinite(_as_float(value)):
            raise BadAttr(f"attr '{attr.name}' must be a finite number", node)
        return float(value)
    if kind == "int" and is_int(value):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "axis" and (value is None or is_int(value)):
        return value
    if kind in ("axis", "axes") and (value is None or _int_list(value)):
        return None if value is None else tuple(value)
    if kind == "shape" and _int_list(value):
        return tuple(value)
    if kind in ("number_or_null", "int_or_null") and value is None:
        return None
    if kind == "number_or_null" and is_number(value):
        return coerce_attr(Attr(attr.name, "number"), value, node)
    if kind == "int_or_null" and is_int(value):
        return value
    if kind == "int_list" and _int_list(value):
        return tuple(value)
    if kind == "choice" and isinstance(value, str) and value in attr.choices:
        return value
    if kind == "indices":
        indices = nested_ints(value)
        if indices is not None:
            return indices
    if kind == "slices" and isinstance(value, list | tuple):
        entries = [_slice_entry(entry) for entry in value]
        if all(entry is not None for entry in entries):
            return tuple(entries)
    # said only where integers are asked for: a number attr given [1e+30] is wrong as a list
    huge = attr.kind in _INTEGER_KINDS and _holds_huge_integer(value)
    beyond = " (past the 64-bit integer range)" if huge else ""
    raise BadAttr(f"attr '{attr.name}' must be {attr.type_text}, got {_shown(value)}{beyond}",
                  node)


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int past the float range
        return math.inf


# The integers an integer attr can hold (numpy's int64). A JSON integer past 2**64 - 1 is read
# as a float (schemas/jsontext.py), so such an attr arrives as a whole float, 1e+30.
INT64 = range(-(2**63), 2**63)

# In a repr: a quoted string (left alone), to its end when the repr was cut inside it, or a
# number. A string's text is never read as numbers: "1.2.3e+5" is no Decimal, and "1e+999999999"
# would be written out as a gigabyte of zeros.
_STRING_OR_NUMBER = re.compile(
    r"""'(?:[^'\\]|\\.?)*(?:'|\Z)|"(?:[^"\\]|\\.?)*(?:"|\Z)|\d+(?:\.\d*)?(?:e[+-]\d+)?"""
)
# A float's repr has at most this exponent; a larger one (some other object's repr) stays as is.
_FLOAT_EXPONENT_MAX = 308


def _shown(value: object) -> str:
    """`value` as a message shows it: its repr, where a float in exponent form with a positive
    exponent (a whole number of 1e16 or more) is written out as the integer it is."""
    try:
        given = repr(value)[:400]
    except RecursionError:  # a list nested as deep as the body's parser reads
        return "a value nested too deep to show"
    text = _STRING_OR_NUMBER.sub(_whole_spelled_out, given)
    return text if len(text) <= 80 else text[:77] + "..."


def _whole_spelled_out(token: re.Match) -> str:
    text = token[0]
    exponent = text.partition("e+")[2]
    if text[0].isdigit() and exponent and int(exponent) <= _FLOAT_EXPONENT_MAX:
        return format(Decimal(text), "f")
    return text


def _holds_huge_integer(value: object) -> bool:
    """Whether `value` (nested lists too) holds a whole number past the int64 range."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif (is_int(item) and item not in INT64) or (
                type(item) is float and math.isfinite(item) and abs(item) >= 2**63):
            return True
    return False


def _slice_entry(entry: object) -> int | tuple | None:
    """One `slices` entry as an int or a (start, stop, step) triple; None when ill-typed."""
    if is_int(entry):
        return entry
    well_formed = isinstance(entry, list | tuple) and len(entry) in (2, 3)
    if well_formed and all(part is None or is_int(part) for part in entry):
        return tuple(entry) + (None,) * (3 - len(entry))
    return None


def nested_ints(value: object) -> int | tuple | None:
    """An int, or a rectangular nested list of ints as nested tuples; None for anything else.

    Walked with an explicit stack (the lists come from strangers), then shaped by numpy, which
    refuses ragged nesting and more than its maximum number of dimensions.
    """
    if is_int(value):
        return value if value in INT64 else None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif not is_int(item):
            return None
    try:
        array = np.array(value, dtype=np.int64)
    except (ValueError, OverflowError):
        return None
    return _as_tuples(array.tolist())


def _as_tuples(value: list) -> tuple:
    """Nested lists as nested tuples (hashable, as attrs must be); depth is numpy's limit."""
    return tuple(_as_tuples(v) if isinstance(v, list) else v for v in value)


def checked_attrs(op: Op, attrs: Mapping[str, object], node: str) -> dict:
    """A node's attrs checked against its op, with defaults filled in: the canonical attrs.

    Raises BadAttr naming `node` for an unknown, missing or ill-typed attr.
    """
    if not op.attrs and not attrs:
        return {}
    declared = {a.name: a for a in op.attrs}
    for name in attrs:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise BadAttr(f"op '{op.name}' has no attr '{name}' (its attrs: {known})", node)
    checked = {}
    for attr in op.attrs:
        if attr.name in attrs:
            checked[attr.name] = coerce_attr(attr, attrs[attr.name], node)
        elif attr.required:
            raise BadAttr(f"op '{op.name}' needs attr '{attr.name}'", node)
        else:
            checked[attr.name] = attr.default
    return checked


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


# ---------------------------------------------------------------- shared shape rules

# Results of more dimensions than this are refused (numpy's own limit is 64, and some of its
# routines, np.add.at among them, fail well before it).
MAX_RANK = 32


def check_rank(rank: int, node: str) -> None:
    if rank > MAX_RANK:
        raise ShapeMismatch(f"the result would have {rank} dimensions; at most {MAX_RANK} "
                            "are allowed", node)


def same_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    return shapes[0]


def broadcast_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = ", ".join(str(list(s)) for s in shapes)
        raise ShapeMismatch(f"shapes {listed} do not broadcast together", node) from None


# ---------------------------------------------------------------- gradients

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


def unbroadcast_points(grad, shape: Shape):
    """Per-point gradients (batch axis first) summed back to `shape` at each point: the axes
    that broadcasting added or stretched inside a point are summed, the batch axis is kept."""
    grad = np.asarray(grad)
    extra = grad.ndim - 1 - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(1, 1 + extra)))
    axes = tuple(1 + i for i, n in enumerate(shape) if n == 1 and grad.shape[1 + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    full = (grad.shape[0], *shape)
    return np.broadcast_to(grad, full) if grad.shape != full else grad


def _identity(x, **attrs):
    return x


def _identity_vjp(g, out, x, **attrs):
    return (g,)


# Sum, mean, transpose and reshape of a 0-d value give that value back.
IDENTITY_ON_SCALARS = ScalarKernels(forward=_identity, vjp=_identity_vjp, identity=True)


def number_label(attr: str, prefix: str = "") -> Label:
    """A gate showing its number attr, as the notes' `*-1`, `**2` and `+1` gates do.

    With no `prefix` the number shows its own sign (`+1`, `-2.5`).
    """

    def label(attrs: Mapping[str, Any], number: Callable[[float], str]) -> str | None:
        value = attrs.get(attr)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if prefix:
            return prefix + number(value)
        return f"-{number(-value)}" if value < 0 else f"+{number(value)}"

    return label
