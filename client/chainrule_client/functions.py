"""Functions that build gates: those of several operands, and those with attrs that read
better as arguments than as methods."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chainrule_client.attrs import finite, integer, nested_integers
from chainrule_client.expr import Node, as_node

__all__ = [
    "add_const",
    "concat",
    "conv2d",
    "cross_entropy",
    "inv",
    "max_pool2d",
    "maximum",
    "minimum",
    "scale",
    "stack",
]

REDUCTIONS = ("mean", "sum", "none")


def maximum(*xs: object) -> Node:
    """Elementwise max of two or more operands (ties split the gradient equally)."""
    return Node("max", _operands(xs, "maximum"))


def minimum(*xs: object) -> Node:
    """Elementwise min of two or more operands (ties split the gradient equally)."""
    return Node("min", _operands(xs, "minimum"))


def inv(x: object) -> Node:
    """1 / x."""
    return Node("inv", (as_node(x),))


def add_const(x: object, c: float) -> Node:
    """c + x with c carried as an attr rather than a const node."""
    return Node("add_const", (as_node(x),), {"c": finite(c, "c")})


def scale(x: object, a: float) -> Node:
    """a * x with a carried as an attr rather than a const node."""
    return Node("scale", (as_node(x),), {"a": finite(a, "a")})


def concat(xs: Iterable[object], axis: int = 0) -> Node:
    """numpy concatenate of one or more operands along `axis`."""
    return Node("concat", _sequence(xs, "concat"), _axis_attr(axis))


def stack(xs: Iterable[object], axis: int = 0) -> Node:
    """numpy stack of one or more operands along a new `axis`."""
    return Node("stack", _sequence(xs, "stack"), _axis_attr(axis))


def cross_entropy(logits: object, targets: object, reduction: str = "mean") -> Node:
    """Softmax cross-entropy of logits (N, C) against one class index per row.

    `reduction` is "mean" (default), "sum" or "none" (one loss per row).
    """
    labels = nested_integers(targets, "targets")
    if not isinstance(labels, list) or any(isinstance(t, list) for t in labels):
        raise TypeError("targets must be a flat list of class indices, one per row")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    attrs: dict[str, Any] = {"targets": labels}
    if reduction != "mean":
        attrs["reduction"] = reduction
    return Node("cross_entropy", (as_node(logits),), attrs)


def conv2d(x: object, w: object, stride: int = 1, padding: int = 0) -> Node:
    """x (N, C, H, W) correlated with filters w (F, C, KH, KW), as PyTorch's conv2d, no bias."""
    attrs: dict[str, Any] = {}
    if _at_least(stride, 1, "stride") != 1:
        attrs["stride"] = int(stride)
    if _at_least(padding, 0, "padding") != 0:
        attrs["padding"] = int(padding)
    return Node("conv2d", (as_node(x), as_node(w)), attrs)


def max_pool2d(x: object, size: int, stride: int | None = None) -> Node:
    """Max over size x size windows of x (N, C, H, W); `stride` defaults to `size`."""
    attrs: dict[str, Any] = {"size": _at_least(size, 1, "size")}
    if stride is not None and _at_least(stride, 1, "stride") != attrs["size"]:
        attrs["stride"] = int(stride)
    return Node("max_pool2d", (as_node(x),), attrs)


def _sequence(xs: Iterable[object], name: str) -> tuple[Node, ...]:
    if isinstance(xs, Node) or not isinstance(xs, Iterable):
        raise TypeError(f"{name}() takes a list of operands, e.g. {name}([a, b])")
    nodes = tuple(as_node(x) for x in xs)
    if not nodes:
        raise ValueError(f"{name}() needs at least one operand")
    return nodes


def _axis_attr(axis: int) -> dict[str, Any]:
    return {} if integer(axis, "axis") == 0 else {"axis": int(axis)}


def _at_least(value: object, least: int, name: str) -> int:
    number = integer(value, name)
    if number < least:
        raise ValueError(f"{name} must be at least {least}, got {number}")
    return number


def _operands(xs: tuple[object, ...], name: str) -> tuple[Node, ...]:
    if len(xs) < 2:
        raise TypeError(f"{name}() takes two or more operands, got {len(xs)}")
    return tuple(as_node(x) for x in xs)
