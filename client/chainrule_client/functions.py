"""Functions that build gates: those of several operands, and those with attrs that read
better as arguments than as methods."""

from __future__ import annotations

from chainrule_client.attrs import finite
from chainrule_client.expr import Node, as_node

__all__ = ["add_const", "inv", "maximum", "minimum", "scale"]


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


def _operands(xs: tuple[object, ...], name: str) -> tuple[Node, ...]:
    if len(xs) < 2:
        raise TypeError(f"{name}() takes two or more operands, got {len(xs)}")
    return tuple(as_node(x) for x in xs)
