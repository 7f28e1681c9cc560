"""Shape ops: matmul (numpy's rules for vectors, matrices and batches), transpose, reshape."""

from __future__ import annotations

import math

import numpy as np

from engine.errors import BadAttr, ShapeMismatch
from engine.ops.base import IDENTITY_ON_SCALARS, Attr, Op, Shape


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


def _transpose_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    axes = attrs["axes"]
    if axes is None:
        return shape[::-1]
    ndim = len(shape)
    if sorted(a % ndim if -ndim <= a < ndim else -1 for a in axes) != list(range(ndim)):
        raise BadAttr(f"axes {list(axes)} is not a permutation of {ndim} axes", node)
    return tuple(shape[a % ndim] for a in axes)


def _transpose_vjp(g, out, x, *, axes):
    return (np.transpose(g, None if axes is None else np.argsort(axes)),)


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


ROWS: tuple[Op, ...] = (
    Op(name="matmul", arity=(2, 2), symbol="@", doc="numpy matmul: vectors, matrices and batches",
       infer_shape=_matmul_shape, forward=np.matmul, vjp=_matmul_vjp, vjp_takes_needs=True),
    Op(name="transpose", arity=(1, 1), symbol="ᵀ", doc="numpy transpose (reversed axes when null)",
       attrs=(Attr("axes", "axes", None),), infer_shape=_transpose_shape,
       forward=lambda x, *, axes: np.transpose(x, axes), vjp=_transpose_vjp,
       scalar=IDENTITY_ON_SCALARS),
    Op(name="reshape", arity=(1, 1), symbol="reshape", doc="numpy reshape (one size may be -1)",
       attrs=(Attr("shape", "shape"),), infer_shape=_reshape_shape,
       forward=lambda x, *, shape: np.reshape(x, shape),
       vjp=lambda g, out, x, *, shape: (np.reshape(g, np.shape(x)),),
       scalar=IDENTITY_ON_SCALARS),
)
