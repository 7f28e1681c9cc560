"""Shape ops: matmul (numpy's rules for vectors, matrices and batches), transpose, reshape."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import BadAttr, ShapeMismatch
from engine.ops.base import IDENTITY_ON_SCALARS, Attr, Batched, Op, Shape, check_rank


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


# ---------------------------------------------------------------- matmul over a batch


def _matmul_batching(batched: tuple[bool, bool], shapes: list[Shape], attrs: dict) -> Batched:
    """Every mix of batched and shared operands, 1-d ones included.

    Batched rows times a shared matrix (a layer's weights: the common case) fold the points
    into the rows of one matrix product, whose vjp sums the shared gradient in the same
    product. Every other mix promotes 1-d operands as numpy does and gives the batched
    operands unit axes so that their batch axis stays in front of numpy's stacking axes.
    """
    (batched_a, batched_b), (a, b) = batched, shapes
    if batched_a and not batched_b and len(b) == 2:
        return Batched(forward=_rows_times_matrix, vjp=_rows_times_matrix_vjp, attrs={},
                       vjp_takes_needs=True)
    out = _matmul_shape(shapes, {}, "")
    stacking = len(out) - (len(a) != 1) - (len(b) != 1)  # numpy's stack axes in the result
    layout = _MatmulLayout(
        a_vector=len(a) == 1,
        b_vector=len(b) == 1,
        a_shape=_stacked((1, *a) if len(a) == 1 else a, batched_a, stacking),
        b_shape=_stacked((*b, 1) if len(b) == 1 else b, batched_b, stacking),
    )
    return Batched(forward=layout.forward, vjp=layout.vjp, attrs={}, vjp_takes_needs=True)


def _stacked(matrix: Shape, batched: bool, stacking: int) -> tuple[int, ...] | None:
    """The point shape a batched operand is viewed as (after its batch axis): unit stacking
    axes in front so that it lines up with the other operand's; None for a shared operand."""
    if not batched:
        return None
    return (1,) * (stacking - (len(matrix) - 2)) + tuple(matrix)


def _rows_times_matrix(a, b):
    return (a.reshape(-1, b.shape[0]) @ b).reshape(*a.shape[:-1], b.shape[1])


def _rows_times_matrix_vjp(g, out, a, b, *, needs=(True, True)):
    rows = a.reshape(-1, b.shape[0])
    g_rows = np.reshape(g, (-1, b.shape[1]))
    da = (g_rows @ b.T).reshape(a.shape) if needs[0] else None
    db = rows.T @ g_rows if needs[1] else None  # summed over the points and rows at once
    return (da, db)


@dataclass(frozen=True, slots=True, kw_only=True)
class _MatmulLayout:
    """How the operands of a batched matmul are viewed so that numpy's matmul applies:
    `a_shape`/`b_shape` are a batched operand's view after its batch axis (None: shared)."""

    a_vector: bool
    b_vector: bool
    a_shape: tuple[int, ...] | None
    b_shape: tuple[int, ...] | None

    def _views(self, a, b):
        a2 = a.reshape(a.shape[0], *self.a_shape) if self.a_shape else a
        b2 = b.reshape(b.shape[0], *self.b_shape) if self.b_shape else b
        if self.a_shape is None and self.a_vector:
            a2 = a[np.newaxis, :]
        if self.b_shape is None and self.b_vector:
            b2 = b[:, np.newaxis]
        return a2, b2

    def forward(self, a, b):
        a2, b2 = self._views(a, b)
        out = a2 @ b2
        if self.a_vector:
            out = out[..., 0, :]
        return out[..., 0] if self.b_vector else out

    def vjp(self, g, out, a, b, *, needs=(True, True)):
        a2, b2 = self._views(a, b)
        g2 = np.asarray(g)
        if self.b_vector:
            g2 = g2[..., np.newaxis]
        if self.a_vector:
            g2 = np.expand_dims(g2, -2)
        da = db = None
        if needs[0]:
            da = g2 @ np.swapaxes(b2, -1, -2)
            da = da[..., 0, :] if self.a_vector else da
        if needs[1]:
            db = np.swapaxes(a2, -1, -2) @ g2
            db = db[..., :, 0] if self.b_vector else db
        return (da, db)


# ---------------------------------------------------------------- transpose and reshape


def _transpose_batching(batched: tuple[bool], shapes: list[Shape], attrs: dict) -> Batched:
    rank = len(shapes[0])
    axes = attrs["axes"]
    point_axes = range(rank - 1, -1, -1) if axes is None else (a % rank for a in axes)
    return Batched(forward=_transpose, vjp=_transpose_vjp,
                   attrs={"axes": (0, *(a + 1 for a in point_axes))})


def _transpose(x, *, axes):
    return np.transpose(x, axes)


def _reshape_batching(batched: tuple[bool], shapes: list[Shape], attrs: dict) -> Batched:
    # the target with its -1 resolved: a batched value's -1 would be ambiguous when empty
    target = _reshape_shape(shapes, attrs, "")
    return Batched(forward=_reshape_points, vjp=_reshape_vjp, attrs={"shape": target})


def _reshape_points(x, *, shape):
    return np.reshape(x, (x.shape[0], *shape))


def _reshape(x, *, shape):
    return np.reshape(x, shape)


def _reshape_vjp(g, out, x, *, shape):
    return (np.reshape(g, np.shape(x)),)


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
    if axes is None:
        return (np.transpose(g),)
    # the inverse permutation of the axes, negative ones counted from the end
    return (np.transpose(g, np.argsort([a % np.ndim(x) for a in axes])),)


def _reshape_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (shape,) = shapes
    target = attrs["shape"]
    size = math.prod(shape)
    unknown = [i for i, n in enumerate(target) if n == -1]
    check_rank(len(target), node)
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
       infer_shape=_matmul_shape, forward=np.matmul, vjp=_matmul_vjp, vjp_takes_needs=True,
       batch=_matmul_batching),
    Op(name="transpose", arity=(1, 1), symbol="ᵀ", doc="numpy transpose (reversed axes when null)",
       attrs=(Attr("axes", "axes", None),), infer_shape=_transpose_shape,
       forward=_transpose, vjp=_transpose_vjp, batch=_transpose_batching,
       scalar=IDENTITY_ON_SCALARS),
    Op(name="reshape", arity=(1, 1), symbol="reshape", doc="numpy reshape (one size may be -1)",
       attrs=(Attr("shape", "shape"),), infer_shape=_reshape_shape,
       forward=_reshape, vjp=_reshape_vjp, batch=_reshape_batching,
       scalar=IDENTITY_ON_SCALARS),
)
