"""The per-node compile that engine.compile replaced, kept as the reference its results must equal.

Everything here walks one node at a time over Python tuples: checks in listing order, Kahn's
queue over the nodes sorted by id, shapes, levels, reachability, and the levels executor's
grouping. The tests compare the array-based compile with it over random graphs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import attrgetter

from engine import Arity, Cycle, DuplicateId, Graph, TooLarge, UnknownNode, UnknownOp
from engine.graph import NO_LIMITS, Limits, Node
from engine.numpy_limits import check_shape
from engine.ops import OPS, checked_attrs, same_shape
from engine.sources import missing_input_error


@dataclass
class ReferencePlan:
    ids: tuple
    ops: tuple
    attrs: tuple
    ins: tuple
    shapes: tuple
    levels: tuple
    ancestors: tuple
    sources: tuple
    out: int


def reference_compile(graph: Graph, source_shapes, limits: Limits = NO_LIMITS) -> ReferencePlan:
    checked = _checked_nodes(graph)
    order = topological_order(graph.nodes)
    ids = tuple(node.id for node in order)
    index = {name: i for i, name in enumerate(ids)}
    ops = tuple(checked[name][0] for name in ids)
    attrs = tuple(checked[name][1] for name in ids)
    ins = tuple(tuple(index[name] for name in node.inputs) for node in order)
    shapes = _infer_shapes(ids, ops, attrs, ins, source_shapes, limits)
    return ReferencePlan(
        ids, ops, attrs, ins, shapes, _levels(ins), _reaching(ins, index[graph.output]),
        tuple(i for i, op in enumerate(ops) if op.is_source), index[graph.output],
    )


def _checked_nodes(graph: Graph) -> dict:
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


def _check_node(node: Node):
    op = OPS.get(node.op)
    if op is None:
        raise UnknownOp(f"unknown op '{node.op}'", node.id)
    n = len(node.inputs)
    low, high = op.arity
    if n < low or (high is not None and n > high):
        raise Arity(f"op '{op.name}' takes {op.arity_text} inputs, got {n}", node.id)
    return op, checked_attrs(op, node.attrs, node.id)


def topological_order(nodes) -> list[Node]:
    nodes = sorted(nodes, key=attrgetter("id"))
    position = {node.id: k for k, node in enumerate(nodes)}
    pending = [len(node.inputs) for node in nodes]
    consumers: list[list[int]] = [[] for _ in nodes]
    for k, node in enumerate(nodes):
        for name in node.inputs:
            consumers[position[name]].append(k)
    queue = [k for k, count in enumerate(pending) if not count]
    for k in queue:
        for consumer in consumers[k]:
            pending[consumer] -= 1
            if not pending[consumer]:
                queue.append(consumer)
    if len(queue) < len(nodes):
        current = next(k for k, count in enumerate(pending) if count)
        walk: list[int] = []
        seen: dict[int, int] = {}
        while current not in seen:
            seen[current] = len(walk)
            walk.append(current)
            current = next(position[name] for name in nodes[current].inputs
                           if pending[position[name]])
        loop = walk[seen[current]:]
        cycle = [nodes[k].id for k in (loop[0], *reversed(loop[1:]))]
        raise Cycle.through(cycle)
    return [nodes[k] for k in queue]


def _infer_shapes(ids, ops, attrs, ins, source_shapes, limits):
    shapes = []
    total = 0
    for i, name in enumerate(ids):
        op = ops[i]
        if op.is_source:
            if name not in source_shapes:
                raise missing_input_error([n for n, o in zip(ids, ops, strict=True)
                                           if o.is_source and n not in source_shapes])
            shape = tuple(source_shapes[name])
        elif op.infer_shape is same_shape:
            shape = shapes[ins[i][0]]
        else:
            in_shapes = [shapes[j] for j in ins[i]]
            if len(in_shapes) > 1:
                for in_shape in in_shapes:
                    check_shape(in_shape, name, broadcast=True)
            shape = op.infer_shape(in_shapes, attrs[i], name)
            check_shape(shape, name)
        size = math.prod(shape) if shape else 1
        total += size
        if limits.max_elements is not None and size > limits.max_elements:
            raise TooLarge(
                f"node '{name}' would hold {size} elements; the limit is {limits.max_elements}",
                name)
        if limits.max_total_elements is not None and total > limits.max_total_elements:
            raise TooLarge(f"the graph's values pass {limits.max_total_elements} elements in "
                           f"all at node '{name}'", name)
        shapes.append(shape)
    return tuple(shapes)


def _levels(ins) -> tuple:
    levels = [0] * len(ins)
    for i, node_ins in enumerate(ins):
        if node_ins:
            levels[i] = 1 + max(levels[j] for j in node_ins)
    return tuple(levels)


def _reaching(ins, target: int) -> tuple:
    reach = [False] * len(ins)
    reach[target] = True
    for i in range(len(ins) - 1, -1, -1):
        if reach[i]:
            for j in ins[i]:
                reach[j] = True
    return tuple(reach)


def reference_groups(plan) -> list[list[tuple]]:
    """The levels executor's groups as the per-node grouping built them: per level, each
    group's (op name, attrs, members, input columns), groups in order of first appearance.

    Gates share a group when level, op, arity and attrs agree, except for the op's non-null
    array attrs, which become lists of one value per member; the attrs of an op that is the
    identity on 0-d values do not matter."""
    keyed: dict[tuple, list[int]] = {}
    for i, op in enumerate(plan.ops):
        if op.is_source:
            continue
        key = (plan.levels[i], op.name, len(plan.ins[i]), repr(_shared(op, plan.attrs[i])),
               _merged(op, plan.attrs[i]))
        keyed.setdefault(key, []).append(i)
    levels: list[list[tuple]] = [[] for _ in range(max(plan.levels) + 1)]
    for (level, name, arity, _, merged), members in keyed.items():
        columns = [[plan.ins[i][k] for i in members] for k in range(arity)]
        attrs = dict(_shared(plan.ops[members[0]], plan.attrs[members[0]]))
        attrs.update({a: [plan.attrs[i][a] for i in members] for a in merged})
        levels[level].append((name, attrs, members, columns))
    return levels


def _merged(op, attrs: dict) -> tuple:
    return tuple(a for a in op.array_attrs if attrs[a] is not None)


def _shared(op, attrs: dict) -> dict:
    if not op.elementwise and op.scalar.identity:
        return {}
    merged = _merged(op, attrs)
    return {a: v for a, v in attrs.items() if a not in merged}


def reference_sum_order(plan) -> list[list[tuple[int, int, int]]]:
    """Per level, the (gate, k, its k-th input) of every gradient contribution in the order the
    per-node executors add them: the level's gates last to first, each one's inputs in order."""
    levels: list[list[tuple[int, int, int]]] = [[] for _ in range(max(plan.levels) + 1)]
    for i in range(len(plan.ops) - 1, -1, -1):
        levels[plan.levels[i]].extend((i, k, j) for k, j in enumerate(plan.ins[i]))
    return levels


def reference_needed(ref: ReferencePlan, reported: list[int]) -> list[bool]:
    """Nodes on a path from a reported node to the output, as the per-node plan found them."""
    from_reported = [False] * len(ref.ids)
    for i in reported:
        from_reported[i] = True
    for i, ins in enumerate(ref.ins):
        if not from_reported[i] and any(from_reported[j] for j in ins):
            from_reported[i] = True
    return [a and b for a, b in zip(ref.ancestors, from_reported, strict=True)]


def reference_batched(ref: ReferencePlan, names) -> list[bool]:
    """Which nodes depend on a batched source, as the per-node compile found them."""
    flags = [name in names for name in ref.ids]
    for i, node_ins in enumerate(ref.ins):
        if node_ins and not flags[i]:
            flags[i] = any(flags[j] for j in node_ins)
    return flags
