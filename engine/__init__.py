"""chainrule's engine: numpy forward and reverse-mode backward passes over computation graphs."""

from engine.batch import REDUCES, check_batch_size
from engine.collector import gc_paused
from engine.compile import compile_plan, run_graph, topological_order, warm_up
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
from engine.executors import EXECUTORS, WORKSPACES, Executor
from engine.gradcheck import GradCheck, gradcheck, relative_error
from engine.graph import Graph, Limits, Node, NodeTable, node_table
from engine.jacobian import JacobianResult, jacobian
from engine.ops import (
    OP_TABLE,
    OPS,
    Attr,
    Op,
    ScalarKernels,
    checked_attrs,
    coerce_attr,
    describe_ops,
    unbroadcast,
)
from engine.plan import Plan
from engine.result import RunResult
from engine.sources import (
    GATE_TAKES_NO_VALUE,
    bind_sources,
    check_finite,
    check_seed,
    input_ids,
)

# Part of every result hash and cache key: bump it whenever a number the engine returns may change.
ENGINE_VERSION = "1"

__all__ = [
    "ENGINE_VERSION",
    "EXECUTORS",
    "GATE_TAKES_NO_VALUE",
    "OPS",
    "OP_TABLE",
    "REDUCES",
    "Arity",
    "Attr",
    "BadAttr",
    "Cycle",
    "DeadlineExceeded",
    "DuplicateId",
    "EngineError",
    "Executor",
    "GradCheck",
    "Graph",
    "JacobianResult",
    "GraphError",
    "Limits",
    "MissingInput",
    "Node",
    "NodeTable",
    "NonfiniteInput",
    "Op",
    "Plan",
    "RunResult",
    "ScalarKernels",
    "ShapeMismatch",
    "TooLarge",
    "UnexpectedValue",
    "UnknownNode",
    "UnknownOp",
    "WORKSPACES",
    "bind_sources",
    "check_batch_size",
    "check_finite",
    "check_seed",
    "checked_attrs",
    "coerce_attr",
    "compile_plan",
    "describe_ops",
    "gc_paused",
    "gradcheck",
    "input_ids",
    "jacobian",
    "node_table",
    "relative_error",
    "run_graph",
    "topological_order",
    "warm_up",
    "unbroadcast",
]
