"""Compiling a graph into a reusable Plan, without arithmetic.

Every check that needs no numbers runs here, in this order: size, duplicate ids, per node
(unknown op, arity, attrs), unknown references, the output, cycles (while ordering), then in
topological order missing sources, shapes and element limits. The executor is chosen here too,
once per plan.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from operator import attrgetter

import numpy as np

from engine.collector import gc_paused
from engine.errors import Arity, Cycle, DuplicateId, MissingInput, TooLarge, UnknownNode, UnknownOp
from engine.executors import choose_executor
from engine.graph import NO_LIMITS, Graph, Limits, Node
from engine.ops import OPS, Op, Shape, checked_attrs, same_shape
from engine.plan import Plan
from engine.result import RunResult
from engine.sources import bind_sources, check_seed


def compile_plan(
    graph: Graph,
    source_shapes: Mapping[str, Shape],
    limits: Limits = NO_LIMITS,
    *,
    strategy: str | None = None,
    batched: Collection[str] = (),
) -> Plan:
    """Validate `graph` and infer every shape without arithmetic; raise a GraphError or TooLarge.

    `batched` names the input nodes that take a batch: their `source_shapes` are one point's,
    and the plan serves every batch length. `strategy` forces an executor ("tensor", "scalar"
    or "levels") where the graph allows it; benchmarks and tests use it to compare them.
    """
    nodes = graph.nodes
    if limits.max_nodes is not None and len(nodes) > limits.max_nodes:
        raise TooLarge(f"the graph has {len(nodes)} nodes; the limit is {limits.max_nodes}")
    with gc_paused():
        checked = _checked_nodes(graph)
        _check_batched(checked, batched)
        return _plan(topological_order(nodes), checked, source_shapes, graph.output, limits,
                     strategy, frozenset(batched))


def _checked_nodes(graph: Graph) -> dict[str, tuple[Op, dict]]:
    """Each node's op row and checked attrs, after the checks that need no order."""
    nodes = graph.nodes
    seen: set[str] = set()
    for node in nodes:
        if node.id in seen:
            raise DuplicateId(f"node id '{node.id}' is used more than once", node.id)
        seen.add(node.id)
    checked = {node.id: _check_node(node) for node in nodes}
    for node in nodes:
        for name in node.inputs:
            if name not in seen:
                raise UnknownNode(f"node '{node.id}' takes unknown node '{name}'", node.id)
    if graph.output not in seen:
        raise UnknownNode(f"output '{graph.output}' is not a node of the graph", graph.output)
    return checked


def _check_batched(checked: dict[str, tuple[Op, dict]], batched: Collection[str]) -> None:
    for name in sorted(batched):
        entry = checked.get(name)
        if entry is None or not entry[0].is_variable:
            raise UnknownNode(f"batch names '{name}', which is not an input node", name)


def _check_node(node: Node) -> tuple[Op, dict]:
    op = OPS.get(node.op)
    if op is None:
        raise UnknownOp(f"unknown op '{node.op}'", node.id)
    n = len(node.inputs)
    low, high = op.arity
    if n < low or (high is not None and n > high):
        raise Arity(f"op '{op.name}' takes {op.arity_text} inputs, got {n}", node.id)
    return op, checked_attrs(op, node.attrs, node.id)


def topological_order(nodes: Sequence[Node]) -> list[Node]:
    """Kahn's algorithm with an explicit queue, over nodes sorted by id so that every listing of
    the same graph gives the same order."""
    nodes = sorted(nodes, key=attrgetter("id"))
    position = {node.id: k for k, node in enumerate(nodes)}
    pending = [len(node.inputs) for node in nodes]
    consumers: list[list[int]] = [[] for _ in nodes]
    for k, node in enumerate(nodes):
        for name in node.inputs:
            consumers[position[name]].append(k)
    queue = [k for k, count in enumerate(pending) if not count]
    for k in queue:  # the queue grows while it is walked
        for consumer in consumers[k]:
            pending[consumer] -= 1
            if not pending[consumer]:
                queue.append(consumer)
    if len(queue) < len(nodes):
        on_cycle = _node_on_cycle(nodes, position, pending)
        raise Cycle("the graph has a cycle through this node", on_cycle)
    return [nodes[k] for k in queue]


def _node_on_cycle(nodes: list[Node], position: dict[str, int], pending: list[int]) -> str:
    """Walk back through unfinished inputs until a node repeats: that node is on a cycle."""
    current = next(k for k, count in enumerate(pending) if count)
    seen = set()
    while current not in seen:
        seen.add(current)
        current = next(position[name] for name in nodes[current].inputs
                       if pending[position[name]])
    return nodes[current].id


def _plan(order, checked, source_shapes, output, limits, strategy, batched_sources) -> Plan:
    ids = tuple(node.id for node in order)
    index = {name: i for i, name in enumerate(ids)}
    ops = tuple(checked[name][0] for name in ids)
    attrs = tuple(checked[name][1] for name in ids)
    position = index.__getitem__
    ins = tuple(tuple(map(position, node.inputs)) for node in order)
    shapes = _infer_shapes(ids, ops, attrs, ins, source_shapes, limits)
    levels = _levels(ins)
    batched = _batched(ids, ins, batched_sources)
    return Plan(
        output=output,
        out=index[output],
        ids=ids,
        index=index,
        # the plan outlives the request that compiled it: keep no source values alive
        nodes=tuple(node if node.value is None else replace(node, value=None) for node in order),
        ops=ops,
        attrs=attrs,
        ins=ins,
        shapes=shapes,
        levels=levels,
        ancestors=_reaching(ins, index[output]),
        sources=tuple(i for i, op in enumerate(ops) if op.is_source),
        batched=batched,
        limits=limits,
        executor=choose_executor(ops, shapes, levels, strategy, batched=any(batched)),
    )


def _batched(ids, ins, batched_sources: frozenset[str]) -> tuple[bool, ...]:
    """Which nodes depend on a batched source (the sources themselves included)."""
    flags = [name in batched_sources for name in ids]
    for i, node_ins in enumerate(ins):
        if node_ins and not flags[i]:
            flags[i] = any(flags[j] for j in node_ins)
    return tuple(flags)


def _infer_shapes(ids, ops, attrs, ins, source_shapes, limits: Limits) -> tuple[Shape, ...]:
    shapes: list[Shape] = []
    total = 0
    for i, name in enumerate(ids):
        op = ops[i]
        if op.is_source:
            if name not in source_shapes:
                raise MissingInput(f"{op.name} node '{name}' has no value", name)
            shape = tuple(source_shapes[name])
        elif op.infer_shape is same_shape:  # the common case, without building a list
            shape = shapes[ins[i][0]]
        else:
            shape = op.infer_shape([shapes[j] for j in ins[i]], attrs[i], name)
        size = math.prod(shape) if shape else 1
        total += size
        _check_size(name, size, total, limits)
        shapes.append(shape)
    return tuple(shapes)


def _check_size(name: str, size: int, total: int, limits: Limits) -> None:
    if limits.max_elements is not None and size > limits.max_elements:
        raise TooLarge(
            f"node '{name}' would hold {size} elements; the limit is {limits.max_elements}", name
        )
    if limits.max_total_elements is not None and total > limits.max_total_elements:
        raise TooLarge(
            f"the graph's values pass {limits.max_total_elements} elements in all "
            f"at node '{name}'",
            name,
        )


def _levels(ins: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """Each node's depth: 0 for sources, else one more than its deepest input."""
    levels = [0] * len(ins)
    level_of = levels.__getitem__
    for i, node_ins in enumerate(ins):
        if node_ins:
            levels[i] = 1 + max(map(level_of, node_ins))
    return tuple(levels)


def _reaching(ins: Sequence[tuple[int, ...]], target: int) -> tuple[bool, ...]:
    """Which nodes have a path to `target` (the target included)."""
    reach = [False] * len(ins)
    reach[target] = True
    for i in range(len(ins) - 1, -1, -1):
        if reach[i]:
            for j in ins[i]:
                reach[j] = True
    return tuple(reach)


def run_graph(
    graph: Graph,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    seed: np.ndarray | None = None,
    wrt: Sequence[str] | None = None,
    forward_only: bool = False,
    limits: Limits = NO_LIMITS,
    deadline: float | None = None,
    allow_nonfinite: bool = False,
) -> RunResult:
    """Bind, compile and run in one call (the service caches plans instead)."""
    sources = bind_sources(graph, inputs, allow_nonfinite=allow_nonfinite)
    check_seed(seed, graph.output, allow_nonfinite=allow_nonfinite)
    plan = compile_plan(graph, {name: np.shape(v) for name, v in sources.items()}, limits)
    return plan.run(sources, seed=seed, wrt=wrt, forward_only=forward_only, deadline=deadline)
