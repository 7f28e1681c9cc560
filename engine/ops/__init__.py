"""The op table: every op declared once, gathered from its section, and the catalog built from it.

`OPS` is what compiling looks ops up in and what validation and GET /v1/ops show; nothing
outside this package names a particular op.
"""

from __future__ import annotations

from engine.ops import (
    activations,
    aggregates,
    binary,
    conv,
    indexing,
    losses,
    nn,
    reductions,
    shape,
    sources,
    unary,
)
from engine.ops.base import (
    ATTR_KINDS,
    Attr,
    Batched,
    BatchRule,
    Label,
    Op,
    ScalarKernels,
    Shape,
    ShapeRule,
    checked_attrs,
    coerce_attr,
    normalize_axes,
    same_shape,
    unbroadcast,
    unbroadcast_points,
)
from engine.ops.batching import NotBatchable, batching, is_batchable

OP_TABLE: tuple[Op, ...] = (
    *sources.ROWS,
    *binary.ROWS,
    *unary.ROWS,
    *reductions.ROWS,
    *shape.ROWS,
    *nn.ROWS,
    # catalog 1.1
    *activations.ROWS,
    *aggregates.ROWS,
    *indexing.ROWS,
    *losses.ROWS,
    *conv.ROWS,
)

OPS: dict[str, Op] = {op.name: op for op in OP_TABLE}
# The ops the float executors take: sources, elementwise ops, and the shape and reduction ops
# that are the identity on a 0-d value; not matmul or softmax, which a scalar cannot take.
SCALAR_OPS = frozenset(name for name, op in OPS.items() if op.takes_scalars)


def describe_ops() -> list[dict]:
    """The catalog as data: what GET /v1/ops shows and what the docs are generated from."""
    return [
        {
            "name": op.name,
            "arity": op.arity_text,
            "min_inputs": op.min_arity,
            "max_inputs": op.max_arity,
            "attrs": [
                {"name": a.name, "type": a.type_text,
                 "default": None if a.required else a.default, "required": a.required}
                for a in op.attrs
            ],
            "symbol": op.symbol,
            "description": op.doc,
        }
        for op in OP_TABLE
    ]


__all__ = [
    "ATTR_KINDS",
    "OPS",
    "OP_TABLE",
    "SCALAR_OPS",
    "Attr",
    "BatchRule",
    "Batched",
    "NotBatchable",
    "Label",
    "Op",
    "ScalarKernels",
    "Shape",
    "ShapeRule",
    "batching",
    "checked_attrs",
    "coerce_attr",
    "describe_ops",
    "is_batchable",
    "normalize_axes",
    "same_shape",
    "unbroadcast",
    "unbroadcast_points",
]
