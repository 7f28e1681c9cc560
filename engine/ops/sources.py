"""Sources: the nodes whose values come with the request rather than from other nodes."""

from __future__ import annotations

from engine.ops.base import Op

ROWS: tuple[Op, ...] = (
    Op(name="input", arity=(0, 0), symbol="in", is_source=True, is_variable=True,
       doc="a variable, fed by its value or the request's inputs"),
    Op(name="const", arity=(0, 0), symbol="const", is_source=True, doc="a fixed value"),
)
