"""The engine's error tree: one root, one class per contract error code, each naming its node."""

from __future__ import annotations


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
