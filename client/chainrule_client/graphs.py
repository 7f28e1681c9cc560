"""Expressions to the contract's graph JSON and back.

`to_graph` walks an expression with an explicit stack (chains can be far deeper than Python's
recursion limit): named nodes keep their names, the rest are called after their op and their
position in the topological order, so the same expression always gives the same JSON (and the
same hash). `from_graph` turns a graph dict back into nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule_client.attrs import tensor_value
from chainrule_client.expr import GraphLike, Node
from chainrule_client.tensors import B64_THRESHOLD, decode_tensor, encode_tensor

__all__ = ["Serialised", "from_graph", "serialise", "to_graph", "topological_order"]


@dataclass(frozen=True)
class Serialised:
    """A graph dict with the ids `to_graph` gave each node of the expression."""

    graph: dict[str, Any]
    ids: Mapping[Node, str]


def to_graph(output: GraphLike, *, b64_threshold: int = B64_THRESHOLD) -> dict[str, Any]:
    """The contract's graph dict for the expression ending in `output` (or a graph dict)."""
    return serialise(output, b64_threshold=b64_threshold).graph


def serialise(output: GraphLike, *, b64_threshold: int = B64_THRESHOLD) -> Serialised:
    """Walk the expression (explicit stack: chains can be far deeper than Python's recursion)."""
    if isinstance(output, Mapping):
        return Serialised(_graph_dict(output, b64_threshold), {})
    if not isinstance(output, Node):
        raise TypeError(f"expected a Node or a graph dict, got {type(output).__name__}")
    order = topological_order(output)
    ids = _assign_ids(order)
    nodes = []
    seen: set[str] = set()
    for node in order:
        node_id = ids[node]
        if node_id in seen:  # a second object for an already-listed input of the same name
            continue
        seen.add(node_id)
        entry: dict[str, Any] = {"id": node_id, "op": node.op}
        if node.inputs:
            entry["inputs"] = [ids[x] for x in node.inputs]
        if node.attrs:
            entry["attrs"] = dict(node.attrs)
        if node.value is not None:
            entry["value"] = encode_tensor(node.value, b64_threshold=b64_threshold)
        nodes.append(entry)
    return Serialised({"nodes": nodes, "output": ids[output]}, ids)


def topological_order(output: Node) -> list[Node]:
    """Every node `output` depends on, inputs before users, in argument order."""
    order: list[Node] = []
    seen = {output}
    stack: list[tuple[Node, int]] = [(output, 0)]
    while stack:
        node, index = stack.pop()
        if index < len(node.inputs):
            stack.append((node, index + 1))
            child = node.inputs[index]
            if child not in seen:
                seen.add(child)
                stack.append((child, 0))
        else:
            order.append(node)
    return order


def _assign_ids(order: list[Node]) -> dict[Node, str]:
    named: dict[str, Node] = {}
    for node in order:
        if node.id is None:
            continue
        other = named.setdefault(node.id, node)
        if other is not node and not _same_source(other, node):
            raise ValueError(
                f"two different nodes are named {node.id!r}; give one of them another id"
            )
    used = set(named)
    ids: dict[Node, str] = {}
    for position, node in enumerate(order):
        if node.id is not None:
            ids[node] = node.id
            continue
        candidate = f"{node.op}_{position}"
        while candidate in used:
            candidate += "_"
        used.add(candidate)
        ids[node] = candidate
    return ids


def _same_source(a: Node, b: Node) -> bool:
    """Two `input` objects declaring the same variable alike may share its id."""
    if a.op != "input" or b.op != "input":
        return False
    if a.value is None or b.value is None:
        return a.value is None and b.value is None
    return bool(np.shape(a.value) == np.shape(b.value) and np.array_equal(a.value, b.value))


def _graph_dict(graph: Mapping[str, Any], b64_threshold: int) -> dict[str, Any]:
    """A user's graph dict, passed on as given except numpy values made JSON-ready."""
    nodes = graph.get("nodes")
    if not isinstance(nodes, list | tuple):
        raise ValueError("a graph dict needs a 'nodes' list")
    out_nodes = []
    for entry in nodes:
        if isinstance(entry, Mapping) and isinstance(entry.get("value"), np.ndarray | np.generic):
            entry = {**entry, "value": encode_tensor(entry["value"], b64_threshold=b64_threshold)}
        out_nodes.append(entry)
    return {**graph, "nodes": out_nodes}


def from_graph(graph: Mapping[str, Any]) -> Node:
    """The expression a graph dict describes, ending at its output; ValueError if malformed."""
    nodes = graph.get("nodes")
    output = graph.get("output")
    if not isinstance(nodes, list | tuple) or not isinstance(output, str):
        raise ValueError("a graph dict needs a 'nodes' list and an 'output' id")
    entries: dict[str, Mapping[str, Any]] = {}
    for entry in nodes:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            raise ValueError(f"every graph node needs a string 'id', got {entry!r}")
        if entry["id"] in entries:
            raise ValueError(f"duplicate node id {entry['id']!r}")
        entries[entry["id"]] = entry
    if output not in entries:
        raise ValueError(f"the graph's output {output!r} is not one of its nodes")

    built: dict[str, Node] = {}
    on_path: set[str] = {output}
    stack: list[tuple[str, int]] = [(output, 0)]
    while stack:
        node_id, index = stack.pop()
        entry = entries[node_id]
        inputs = entry.get("inputs") or []
        if not isinstance(inputs, list | tuple) or not all(isinstance(x, str) for x in inputs):
            raise ValueError(f"node {node_id!r}: 'inputs' must be a list of ids")
        if index < len(inputs):
            stack.append((node_id, index + 1))
            child = inputs[index]
            if child not in entries:
                raise ValueError(f"node {node_id!r} names unknown input {child!r}")
            if child in on_path:
                raise ValueError(f"node {child!r} is part of a cycle")
            if child not in built:
                on_path.add(child)
                stack.append((child, 0))
            continue
        value = entry.get("value")
        built[node_id] = Node(
            str(entry.get("op")),
            [built[x] for x in inputs],
            entry.get("attrs"),
            None if value is None else tensor_value(decode_tensor(value)),
            node_id,
        )
        on_path.discard(node_id)
    return built[output]
