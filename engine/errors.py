"""The engine's error tree: one root, one class per contract error code, each naming its node."""

from __future__ import annotations

from collections.abc import Sequence

# A message names at most this many nodes of a list (a cycle, the inputs lacking a value); the
# whole list goes in the error's details. A ring of 50,000 nodes made a message of 900 KB.
NAMED_IN_MESSAGE = 10


def named_nodes(names: Sequence[str], separator: str) -> str:
    """`names` joined for a message: the first NAMED_IN_MESSAGE, then how many there are."""
    if len(names) <= NAMED_IN_MESSAGE:
        return separator.join(names)
    shown = separator.join(names[:NAMED_IN_MESSAGE])
    return f"{shown}{separator}... ({len(names):,} nodes in all)"


def quoted_with_article(name: str) -> str:
    """`'name'` after its indefinite article, as a message says it: "an 'add'", "a 'sin'"
    (op names are read as spelled, so the first letter decides)."""
    return f"{'an' if name[:1] in 'aeiou' else 'a'} '{name}'"


class EngineError(Exception):
    """Root of every error the engine raises about a graph or its values."""

    code = "engine_error"

    def __init__(self, message: str, node: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.node = node
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, node={self.node!r})"


class GraphError(EngineError):
    """The graph itself is malformed (HTTP 422 at the service)."""


class UnknownOp(GraphError):
    code = "unknown_op"


class UnknownNode(GraphError):
    code = "unknown_node"


class DuplicateId(GraphError):
    code = "duplicate_id"


class Cycle(GraphError):
    code = "cycle"

    @classmethod
    def through(cls, cycle: list[str]) -> Cycle:
        """The error for `cycle` (ids in the direction values flow): it names its first node,
        its message the first few, its details every one."""
        # a short cycle is walked round to its first node again (one name more than it has)
        short = len(cycle) <= NAMED_IN_MESSAGE
        named = " -> ".join(cycle + cycle[:1]) if short else named_nodes(cycle, " -> ")
        return cls("the graph has a cycle through this node: " + named, cycle[0],
                   {"cycle": cycle})


class Arity(GraphError):
    code = "arity"


class BadAttr(GraphError):
    code = "bad_attr"


class UnexpectedValue(GraphError):
    """A `value` on a node that computes its value (only input and const nodes take one)."""

    code = "validation_error"


class MissingInput(GraphError):
    code = "missing_input"


class ShapeMismatch(GraphError):
    code = "shape_mismatch"


class NonfiniteInput(GraphError):
    code = "nonfinite_input"


class TooLarge(EngineError):
    """A graph or tensor over a configured limit (HTTP 413)."""

    code = "too_large"


class DeadlineExceeded(EngineError):
    """A run took longer than its deadline (HTTP 504)."""

    code = "deadline_exceeded"
