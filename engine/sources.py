"""Binding a graph's sources to values, and the checks on values that run on every request.

Compiled plans are reused across requests, so whatever depends on the values rather than the
structure (missing values, non-finite numbers, a finite seed) is checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import compress

import numpy as np

from engine.errors import (
    MissingInput,
    NonfiniteInput,
    UnexpectedValue,
    UnknownNode,
    named_nodes,
    quoted_with_article,
)
from engine.graph import Graph, Node, NodeTable
from engine.ops import OP_TABLE, OPS

# The field error for a `value` on a gate: "only input and const nodes take a value".
GATE_TAKES_NO_VALUE = (
    "only " + " and ".join(op.name for op in OP_TABLE if op.is_source) + " nodes take a value"
)


def input_ids(nodes: Iterable[Node]) -> list[str]:
    """The ids of the variable sources (the nodes a request's `inputs` may feed), in order;
    read from the columns of a NodeTable (no node objects built)."""
    if type(nodes) is NodeTable:
        return list(compress(nodes.ids, map(_is_variable, nodes.ops)))
    return [node.id for node in nodes if _is_variable(node.op)]


def _is_variable(op_name: str) -> bool:
    op = OPS.get(op_name)
    return op is not None and op.is_variable


def check_finite(value: np.ndarray, node: str | None, what: str) -> None:
    """Raise NonfiniteInput unless every element of `value` is finite."""
    if not np.all(np.isfinite(value)):
        raise NonfiniteInput(
            f"{what} holds NaN or infinity; set allow_nonfinite to send such values", node
        )


def check_seed(seed: np.ndarray | None, output: str, *, allow_nonfinite: bool = False) -> None:
    """Refuse a non-finite seed, naming the output it seeds, unless `allow_nonfinite`."""
    if seed is not None and not allow_nonfinite:
        check_finite(np.asarray(seed, dtype=np.float64), output, "the seed")


def bind_sources(
    graph: Graph,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    allow_nonfinite: bool = False,
) -> dict[str, np.ndarray]:
    """The effective value of every source node: `inputs` over a variable's own value.

    Raises UnexpectedValue for a value on a gate, MissingInput, NonfiniteInput, and UnknownNode
    for an `inputs` key that is not a variable source.
    """
    inputs = inputs or {}
    sources: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for node in graph.nodes:
        op = OPS.get(node.op)
        if op is None or not op.is_source:
            _refuse_value(node)
            continue
        if node.id in sources:
            continue
        value = inputs.get(node.id, node.value) if op.is_variable else node.value
        if value is None:
            missing.append(node.id)
            continue
        value = np.asarray(value, dtype=np.float64)
        if not allow_nonfinite:
            check_finite(value, node.id, f"the value of '{node.id}'")
        sources[node.id] = value
    if missing:
        raise missing_input_error(missing)
    if inputs:
        _check_input_keys(graph, inputs)
    return sources


def missing_input_error(missing: list[str]) -> MissingInput:
    """The error for sources without a value: the first named, every one listed in details."""
    listed = named_nodes([f"'{name}'" for name in missing], ", ")
    many = len(missing) > 1
    return MissingInput(
        f"input node{'s' if many else ''} {listed} {'have' if many else 'has'} no value: "
        f"give {'them' if many else 'it'} one in inputs (or as the node's value)",
        missing[0], {"missing": missing},
    )


def _refuse_value(node: Node) -> None:
    if node.value is not None:
        raise UnexpectedValue(
            f"node '{node.id}' is {quoted_with_article(node.op)} gate; {GATE_TAKES_NO_VALUE}",
            node.id, {"value": [GATE_TAKES_NO_VALUE]},
        )


def _check_input_keys(graph: Graph, inputs: Mapping[str, object]) -> None:
    variables = set(input_ids(graph.nodes))
    for key in inputs:
        if key not in variables:
            raise UnknownNode(f"inputs names '{key}', which is not an input node", key)
