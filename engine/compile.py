"""Compiling a graph into a reusable Plan, without arithmetic.

Every check that needs no numbers runs here, in this order: size, duplicate ids, per node
(unknown op, arity, attrs), unknown references, the output, cycles (while ordering), then in
topological order missing sources, shapes and element limits. The executor is chosen here too,
once per plan.

The work runs over whole columns of integers (engine.columns, engine.ordering): ids are mapped
to positions once, and a graph whose every value is 0-d has its shapes decided in bulk.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from operator import itemgetter

import numpy as np

from engine.collector import gc_paused
from engine.columns import Columns, node_columns, source_kinds
from engine.errors import GraphError, MissingInput, TooLarge, UnknownNode
from engine.executors import choose_executor
from engine.graph import NO_LIMITS, Graph, Limits, Node, node_table
from engine.numpy_limits import check_shape
from engine.ops import Op, Shape, same_shape
from engine.ordering import canonical_order, reached_from, reaching
from engine.plan import Plan, Positions, kind_columns
from engine.ragged import Ragged
from engine.result import RunResult
from engine.sources import bind_sources, check_seed, missing_input_error


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
        table = node_table(nodes)
        columns = node_columns(table)
        if graph.output not in columns.index:
            raise UnknownNode(f"output '{graph.output}' is not a node of the graph", graph.output)
        _check_batched(columns, batched)
        order, levels = canonical_order(columns.ids, columns.ins, table.by_id())
        return _plan(columns, order, levels, source_shapes, graph.output, limits, strategy,
                     frozenset(batched))


def _check_batched(columns: Columns, batched: Collection[str]) -> None:
    for name in sorted(batched):
        k = columns.index.get(name)
        if k is None or not columns.table[columns.kinds[k]][0].is_variable:
            raise UnknownNode(f"batch names '{name}', which is not an input node", name)


def topological_order(nodes: Sequence[Node]) -> list[Node]:
    """`nodes` in the canonical topological order (the same for every listing of them);
    raises the GraphError compiling would for malformed nodes or a cycle."""
    columns = node_columns(nodes)
    order, _ = canonical_order(columns.ids, columns.ins)
    return [nodes[k] for k in order.tolist()]


def _plan(columns: Columns, order, levels, source_shapes, output, limits, strategy,
          batched_sources: frozenset[str]) -> Plan:
    n = len(order)
    position = np.empty(n, dtype=np.intp)
    position[order] = np.arange(n, dtype=np.intp)
    ids = _pick(columns.ids, order)
    kinds = columns.kinds[order]
    ins = columns.ins.take(order, position)
    shapes = _shapes(ids, ins, kinds, columns.table, source_shapes, limits)
    out = int(position[columns.index[output]])
    is_source = source_kinds(columns.table)
    sources = tuple(np.flatnonzero(is_source[kinds]).tolist())
    batched = _batched(columns, order, ins, levels, batched_sources)
    _check_batch_axis(ids, shapes, batched)
    return Plan(
        output=output,
        out=out,
        ids=ids,
        index=Positions(ids, sources),
        kinds=kinds,
        kind_table=columns.table,
        ins=ins,
        shapes=shapes,
        levels=levels,
        ancestors=reaching(ins, levels, out),
        sources=sources,
        batched=batched,
        limits=limits,
        executor=choose_executor([op for op, _ in columns.table], shapes, levels, strategy,
                                 batched=bool(batched.any())),
    )


def _batched(columns: Columns, order, ins: Ragged, levels, batched_sources) -> np.ndarray:
    """Which nodes depend on a batched source (the sources themselves included)."""
    marked = np.zeros(len(order), dtype=bool)
    if batched_sources:
        listed = np.array([columns.index[name] for name in batched_sources], dtype=np.intp)
        marked[np.isin(order, listed)] = True
        return reached_from(ins, levels, marked)
    return marked


def _pick(column: Sequence, which: np.ndarray) -> tuple:
    """`column[k]` for every k in `which`, as a tuple."""
    if len(which) == 1:
        return (column[int(which[0])],)
    return itemgetter(*which.tolist())(column) if len(which) else ()


# ---------------------------------------------------------------- shapes


def _shapes(ids, ins: Ragged, kinds, table, source_shapes, limits) -> tuple:
    """Every node's shape: decided in bulk when every value is 0-d, else node by node."""
    if _all_scalar(ids, ins, kinds, table, source_shapes, limits):
        return ((),) * len(ids)
    ops, attrs = kind_columns(table, kinds)
    return _infer_shapes(ids, ops, attrs, ins.tuples(), source_shapes, limits)


def _all_scalar(ids, ins: Ragged, kinds, table, source_shapes, limits) -> bool:
    """Whether every shape is () with no error to report: every source is 0-d, every kind of
    gate with its arity maps 0-d inputs to 0-d, and 0-d values fit the limits."""
    is_source = source_kinds(table)[kinds]
    for k in np.flatnonzero(is_source).tolist():
        shape = source_shapes.get(ids[k])
        if shape is None or len(shape) != 0:
            return False
    lengths = ins.lengths()
    gates = ~is_source
    stride = int(lengths.max(initial=0)) + 1  # (kind, arity) pairs as one integer each
    for pair in np.unique(kinds[gates] * stride + lengths[gates]).tolist():
        op, attrs = table[pair // stride]
        if not _maps_scalars_to_scalar(op, attrs, pair % stride):
            return False
    try:  # the largest a 0-d graph gets: one element a node, one per node in all
        _check_size(ids[-1], 1, len(ids), limits)
    except TooLarge:
        return False  # the per-node pass names the node where it passes the limit
    return True


def _maps_scalars_to_scalar(op: Op, attrs: dict, arity: int) -> bool:
    if op.infer_shape is same_shape and arity:  # the first input's shape, whatever the attrs
        return True
    try:
        return tuple(op.infer_shape([()] * arity, attrs, "")) == ()
    except GraphError:
        return False


def _check_batch_axis(ids, shapes, batched) -> None:
    """A batched node's values gain a leading axis: numpy's limits must leave room for it."""
    for k in np.flatnonzero(batched).tolist():
        check_shape((1, *shapes[k]), ids[k])


def _infer_shapes(ids, ops, attrs, ins, source_shapes, limits: Limits) -> tuple[Shape, ...]:
    shapes: list[Shape] = []
    total = 0
    for i, name in enumerate(ids):
        op = ops[i]
        if op.is_source:
            if name not in source_shapes:
                raise _missing_inputs(ids, ops, source_shapes)
            shape = tuple(source_shapes[name])
        elif op.infer_shape is same_shape:  # the common case, without building a list
            shape = shapes[ins[i][0]]
        else:
            input_shapes = [shapes[j] for j in ins[i]]
            shape = _gate_shape(op, input_shapes, attrs[i], name)
            if op.work_size is not None:
                _check_work(name, op.work_size(input_shapes, attrs[i]), limits)
        size = math.prod(shape) if shape else 1
        total += size
        _check_size(name, size, total, limits)
        shapes.append(shape)
    return tuple(shapes)


def _missing_inputs(ids, ops, source_shapes) -> MissingInput:
    """One error listing every source without a value, so a caller can fix them all at once."""
    missing = [name for name, op in zip(ids, ops, strict=True)
               if op.is_source and name not in source_shapes]
    return missing_input_error(missing)


def _gate_shape(op: Op, in_shapes: list[Shape], attrs: dict, name: str) -> Shape:
    """The op's shape rule, fenced by numpy's limits: every inferred shape passes here."""
    if len(in_shapes) > 1:  # numpy broadcasts several arrays over at most 32 dimensions
        for shape in in_shapes:
            check_shape(shape, name, broadcast=True)
    shape = op.infer_shape(in_shapes, attrs, name)
    check_shape(shape, name)
    return shape


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


def _check_work(name: str, size: int, limits: Limits) -> None:
    if limits.max_elements is not None and size > limits.max_elements:
        raise TooLarge(
            f"node '{name}' would need a temporary of {size} elements; the limit is "
            f"{limits.max_elements}",
            name,
        )


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


def warm_up() -> None:
    """Compile and run a three-node graph once, so that what numpy loads on first use
    (numpy.ma, imported by np.unique: some 10-20 ms) is loaded before any request needs it."""
    graph = Graph((Node("x", "input"), Node("y", "input"), Node("f", "mul", ("x", "y"))), "f")
    run_graph(graph, {"x": np.array(2.0), "y": np.array(3.0)})
