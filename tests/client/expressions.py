"""Expressions several SDK tests build."""

from __future__ import annotations


def micrograd_readme(a, b):
    """The expression of micrograd's README over two operands: chainrule Nodes or micrograd
    Values alike, so that the two can be compared."""
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return g
