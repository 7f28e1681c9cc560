"""Joining, cutting and repeating tensors (catalog 1.1): concat, stack, slice, take, broadcast_to.

Their gradients route each element's gradient back to where the element came from: split for
concat and stack, written into zeros for slice, added up (np.add.at) for take's repeated
indices, summed over the broadcast axes for broadcast_to.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import BadAttr, ShapeMismatch
from engine.ops.base import (
    IDENTITY_ON_SCALARS,
    Attr,
    Batched,
    Op,
    Shape,
    check_rank,
    unbroadcast,
)
from engine.ops.batching import shift_axis, shifted_axes, with_batch_axis


def _check_axis(axis: int, ndim: int, node: str) -> int:
    if not -ndim <= axis < ndim:
        raise BadAttr(f"axis {axis} is out of range for a {ndim}-d result", node)
    return axis % ndim


def _listed(shapes: list[Shape]) -> str:
    return ", ".join(str(list(s)) for s in shapes)


# ---------------------------------------------------------------- concat, stack

def _concat_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    first = shapes[0]
    if not first:
        raise ShapeMismatch("concat needs inputs of at least one dimension", node)
    axis = _check_axis(attrs["axis"], len(first), node)
    for shape in shapes:
        if len(shape) != len(first) or any(
            n != m for i, (n, m) in enumerate(zip(shape, first, strict=True)) if i != axis
        ):
            raise ShapeMismatch(f"concat along axis {axis}: shapes {_listed(shapes)} "
                                "differ off that axis", node)
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1 :]


def _concat_vjp(g, out, *xs, axis):
    bounds = np.cumsum([np.shape(x)[axis] for x in xs])[:-1]
    return tuple(np.split(g, bounds, axis=axis))


def _stack_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    first = shapes[0]
    if any(shape != first for shape in shapes):
        raise ShapeMismatch(f"stack needs equal shapes, got {_listed(shapes)}", node)
    axis = _check_axis(attrs["axis"], len(first) + 1, node)
    check_rank(len(first) + 1, node)
    return first[:axis] + (len(shapes),) + first[axis:]


def _stack_vjp(g, out, *xs, axis):
    return tuple(np.moveaxis(g, axis, 0))


def _joining_batching(forward, vjp):
    """concat's and stack's rule: shared operands broadcast along the batch axis (views), the
    axis moved past it; the vjp then gives shared operands per-point parts, which the engine
    adds up or keeps."""

    def rule(batched: tuple[bool, ...], shapes: list[Shape], attrs: dict) -> Batched:
        def batched_forward(*xs, axis):
            return forward(*with_batch_axis(xs, batched), axis=axis)

        def batched_vjp(g, out, *xs, axis):
            return vjp(g, out, *with_batch_axis(xs, batched), axis=axis)

        return Batched(forward=batched_forward, vjp=batched_vjp,
                       attrs={"axis": shift_axis(attrs["axis"])})

    return rule


# ---------------------------------------------------------------- slice

def _index(slices: tuple) -> tuple:
    """The `slices` attr as a numpy basic index."""
    return tuple(e if isinstance(e, int) else slice(*e) for e in slices)


def _slice_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    slices = attrs["slices"]
    if len(slices) > len(shape):
        raise BadAttr(f"{len(slices)} slices for a {len(shape)}-d tensor", node)
    out = []
    for axis, (entry, n) in enumerate(zip(slices, shape, strict=False)):
        if isinstance(entry, int):
            if not -n <= entry < n:
                raise BadAttr(f"index {entry} is out of range for axis {axis} of length {n}",
                              node)
            continue
        if entry[2] == 0:
            raise BadAttr(f"slice step 0 on axis {axis}", node)
        out.append(len(range(n)[slice(*entry)]))
    return tuple(out) + shape[len(slices) :]


def _slice(x, *, slices):
    return x[_index(slices)]


def _slice_vjp(g, out, x, *, slices):
    grad = np.zeros(np.shape(x))
    grad[_index(slices)] = g  # basic indexing never repeats an element
    return (grad,)


def _slice_batching(batched: tuple[bool], shapes: list[Shape], attrs: dict) -> Batched:
    # every point: a full slice over the batch axis in front
    return Batched(forward=_slice, vjp=_slice_vjp,
                   attrs={"slices": ((None, None, None), *attrs["slices"])})


# ---------------------------------------------------------------- take

def _take_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    if not shape:
        raise ShapeMismatch("take needs an input of at least one dimension", node)
    axis = _check_axis(attrs["axis"], len(shape), node)
    indices = np.asarray(attrs["indices"], dtype=np.intp)
    n = shape[axis]
    if indices.size and not (-n <= indices.min() and indices.max() < n):
        bad = indices[(indices < -n) | (indices >= n)].flat[0]
        raise BadAttr(f"index {bad} is out of range for axis {axis} of length {n}", node)
    check_rank(len(shape) - 1 + indices.ndim, node)
    return shape[:axis] + indices.shape + shape[axis + 1 :]


def _take(x, *, indices, axis):
    return np.take(x, np.asarray(indices, dtype=np.intp), axis=axis)


def _take_vjp(g, out, x, *, indices, axis):
    shape = np.shape(x)
    axis %= len(shape)
    flat = np.asarray(indices, dtype=np.intp).reshape(-1)
    # as 3-d (before the axis, along it, after it): np.add.at fails on many-dimensional indices
    before, after = math.prod(shape[:axis]), math.prod(shape[axis + 1 :])
    grad = np.zeros((before, shape[axis], after))
    np.add.at(grad, (slice(None), flat), np.reshape(g, (before, flat.size, after)))
    return (grad.reshape(shape),)  # a repeated index gathered every one of its gradients


# ---------------------------------------------------------------- broadcast_to

def _broadcast_to_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    target = attrs["shape"]
    if any(n < 0 for n in target):
        raise BadAttr(f"shape {list(target)} has a negative size", node)
    check_rank(len(target), node)
    # numpy's rule, written out so that sizes too large for numpy reach the size limits
    fits = len(shape) <= len(target) and all(
        n in (1, m) for n, m in zip(reversed(shape), reversed(target), strict=False))
    if not fits:
        raise ShapeMismatch(f"cannot broadcast {list(shape)} to {list(target)}", node)
    return target


def _broadcast_to_batching(batched: tuple[bool], shapes: list[Shape], attrs: dict) -> Batched:
    (shape,), target = shapes, attrs["shape"]
    lift = len(target) - len(shape)  # unit axes after the batch axis, as numpy adds in front

    def forward(x, *, shape):
        lifted = x.reshape(x.shape[:1] + (1,) * lift + x.shape[1:])
        return np.broadcast_to(lifted, (x.shape[0], *shape))

    # per point: the engine sums each point's gradient back to the point's shape
    return Batched(forward=forward, vjp=lambda g, out, x, *, shape: (g,), attrs=attrs)


def _concat(*xs, axis):
    return np.concatenate(xs, axis=axis)


def _stack(*xs, axis):
    return np.stack(xs, axis=axis)


ROWS: tuple[Op, ...] = (
    Op(name="concat", arity=(1, None), symbol="concat", doc="numpy concatenate along axis",
       attrs=(Attr("axis", "int", 0),), infer_shape=_concat_shape,
       forward=_concat, vjp=_concat_vjp, batch=_joining_batching(_concat, _concat_vjp)),
    Op(name="stack", arity=(1, None), symbol="stack", doc="numpy stack along a new axis",
       attrs=(Attr("axis", "int", 0),), infer_shape=_stack_shape,
       forward=_stack, vjp=_stack_vjp, batch=_joining_batching(_stack, _stack_vjp)),
    Op(name="slice", arity=(1, 1), symbol="[:]",
       doc="numpy basic indexing: per leading axis [start, stop, step] (nulls allowed) or an "
           "int, which drops the axis",
       attrs=(Attr("slices", "slices"),), infer_shape=_slice_shape, forward=_slice,
       vjp=_slice_vjp, batch=_slice_batching, scalar=IDENTITY_ON_SCALARS),
    Op(name="take", arity=(1, 1), symbol="take",
       doc="numpy take along axis (an embedding lookup); repeated indices add their gradients",
       attrs=(Attr("indices", "indices"), Attr("axis", "int", 0)), infer_shape=_take_shape,
       forward=_take, vjp=_take_vjp, batch=shifted_axes(_take, _take_vjp, "axis")),
    Op(name="broadcast_to", arity=(1, 1), symbol="broadcast", doc="numpy broadcast_to shape",
       attrs=(Attr("shape", "shape"),), infer_shape=_broadcast_to_shape,
       forward=lambda x, *, shape: np.broadcast_to(x, shape),
       vjp=lambda g, out, x, *, shape: (unbroadcast(g, np.shape(x)),),
       batch=_broadcast_to_batching, scalar=IDENTITY_ON_SCALARS),
)
