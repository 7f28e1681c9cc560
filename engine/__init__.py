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
    "UnknownNode",
    "UnknownOp",
    "bind_sources",
    "check_finite",
    "compile_plan",
    "describe_ops",
    "gradcheck",
    "relative_error",
    "run_graph",
    "topological_order",
    "unbroadcast",
]
