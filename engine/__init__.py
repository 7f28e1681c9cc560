"""chainrule's engine: numpy forward and reverse-mode backward passes over computation graphs."""

from engine.errors import (
    Arity,
    BadAttr,
    Cycle,
    DeadlineExceeded,
    DuplicateId,
    EngineError,
    GraphError,
    MissingInput,
    NonfiniteInput,
    ShapeMismatch,
    TooLarge,
    UnexpectedValue,
    UnknownNode,
    UnknownOp,
)
from engine.gradcheck import GradCheck, gradcheck, relative_error
from engine.graph import Graph, Limits, Node
from engine.ops import OP_TABLE, OPS, Attr, Op, describe_ops, unbroadcast
from engine.plan import (
    Plan,
    RunResult,
    bind_sources,
    check_finite,
    compile_plan,
    gc_paused,
    run_graph,
    topological_order,
)

# Part of every result hash and cache key: bump it whenever a number the engine returns may change.
ENGINE_VERSION = "1"

__all__ = [
    "ENGINE_VERSION",
    "OPS",
    "OP_TABLE",
    "Arity",
    "Attr",
    "BadAttr",
    "Cycle",
    "DeadlineExceeded",
    "DuplicateId",
    "EngineError",
    "GradCheck",
    "Graph",
    "GraphError",
    "Limits",
    "MissingInput",
    "Node",
    "NonfiniteInput",
    "Op",
    "Plan",
    "RunResult",
    "ShapeMismatch",
    "TooLarge",
    "UnexpectedValue",
    "UnknownNode",
    "UnknownOp",
    "bind_sources",
    "check_finite",
    "compile_plan",
    "describe_ops",
    "gc_paused",
    "gradcheck",
    "relative_error",
    "run_graph",
    "topological_order",
    "unbroadcast",
]
