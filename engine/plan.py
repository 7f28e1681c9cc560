"""Compile a graph into a reusable plan, then run it: forward values and reverse-mode gradients.

Compiling does every check that needs no arithmetic (ops, ids, arity, attrs, references,
cycles, shapes, size limits) and picks an execution strategy:

- "tensor": one numpy call per node; for graphs holding any non-scalar value.
- "scalar": a loop over Python floats in topological order; for narrow scalar graphs (chains),
  where a per-node numpy call (about 1 us) would cost more than the arithmetic.
- "levels": for wide scalar graphs, every node of one op on one topological level is computed
  by a single numpy call over gathered operands.

All three give the same numbers as the per-node numpy rules of the op table.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property, partial
from operator import attrgetter

import numpy as np

from engine import ops as op_catalog
from engine.errors import (
    Arity,
    BadAttr,
    Cycle,
    DeadlineExceeded,
    DuplicateId,
    MissingInput,
    NonfiniteInput,
    ShapeMismatch,
    TooLarge,
    UnexpectedValue,
    UnknownNode,
    UnknownOp,
)
from engine.graph import NO_LIMITS, Graph, Limits, Node
from engine.ops import Op, coerce_attr, same_shape, unbroadcast

Shape = tuple[int, ...]

# A scalar graph whose topological levels hold this many nodes on average runs level by level.
LEVEL_WIDTH_THRESHOLD = 16
LEVEL_MIN_NODES = 256
# The float loops look at the clock once per this many nodes.
DEADLINE_STRIDE = 1024

_FLOAT_FAULTS = (ArithmeticError, ValueError)


@dataclass
class RunResult:
    """Values and gradients of the reported nodes; 0-d ones as Python floats.

    `value_list` and `grad_list` run parallel to `order` (what serialisers walk); the by-id
    dicts `values` and `grads` are built on first use.
    """

    output: str
    value: object
    order: list[str]
    value_list: list
    grad_list: list | None

    @cached_property
    def values(self) -> dict[str, object]:
        return dict(zip(self.order, self.value_list, strict=True))

    @cached_property
    def grads(self) -> dict[str, object] | None:
        if self.grad_list is None:
            return None
        return dict(zip(self.order, self.grad_list, strict=True))


@dataclass(slots=True)
class _LevelGroup:
    """Every node of one op (same arity and attrs) on one topological level, with the op's
    forward and vjp in a form that computes all of them in one call."""

    forward: Callable
    vjp: Callable
    attrs: dict
    idx: np.ndarray
    ins: list[np.ndarray]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic collector: compiling and running allocate many acyclic objects, and
    on 100,000-node graphs its repeated full scans cost about as much as the work itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ---------------------------------------------------------------- sources


def check_finite(value: np.ndarray, node: str | None, what: str) -> None:
    """Raise NonfiniteInput unless every element of `value` is finite."""
    if not np.all(np.isfinite(value)):
        raise NonfiniteInput(
            f"{what} holds NaN or infinity; set allow_nonfinite to send such values", node
        )


def bind_sources(
    graph: Graph,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    allow_nonfinite: bool = False,
) -> dict[str, np.ndarray]:
    """The effective value of every input and const node: `inputs` over the node's default.

    Runs on every request (compiled plans are reused), so the checks of values live here.
    """
    inputs = inputs or {}
    sources: dict[str, np.ndarray] = {}
    input_ids = set()
    for node in graph.nodes:
        if node.op == "input":
            input_ids.add(node.id)
        if node.op not in ("input", "const"):
            if node.value is not None:  # checked here because binding runs on every request
                raise UnexpectedValue(
                    f"node '{node.id}' is a '{node.op}' gate; only input and const nodes take "
                    "a value", node.id, {"value": ["only input and const nodes take a value"]},
                )
            continue
        if node.id in sources:
            continue
        value = inputs.get(node.id, node.value) if node.op == "input" else node.value
        if value is None:
            what = "input" if node.op == "input" else "const"
            raise MissingInput(f"{what} node '{node.id}' has no value", node.id)
        value = np.asarray(value, dtype=np.float64)
        if not allow_nonfinite:
            check_finite(value, node.id, f"the value of '{node.id}'")
        sources[node.id] = value
    for key in inputs:
        if key not in input_ids:
            raise UnknownNode(f"inputs names '{key}', which is not an input node", key)
    return sources


# ---------------------------------------------------------------- compile


def _checked_attrs(op: Op, node: Node) -> dict:
    if not op.attrs and not node.attrs:
        return {}
    declared = {a.name: a for a in op.attrs}
    for name in node.attrs:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise BadAttr(f"op '{op.name}' has no attr '{name}' (its attrs: {known})", node.id)
    attrs = {}
    for attr in op.attrs:
        if attr.name in node.attrs:
            attrs[attr.name] = coerce_attr(attr, node.attrs[attr.name], node.id)
        elif attr.required:
            raise BadAttr(f"op '{op.name}' needs attr '{attr.name}'", node.id)
        else:
            attrs[attr.name] = attr.default
    return attrs


def _check_node(node: Node) -> tuple[Op, dict]:
    op = op_catalog.OPS.get(node.op)
    if op is None:
        raise UnknownOp(f"unknown op '{node.op}'", node.id)
    n = len(node.inputs)
    if n < op.min_arity or (op.max_arity is not None and n > op.max_arity):
        raise Arity(f"op '{op.name}' takes {op.arity_text} inputs, got {n}", node.id)
    return op, _checked_attrs(op, node)


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


def compile_plan(
    graph: Graph,
    source_shapes: Mapping[str, Shape],
    limits: Limits = NO_LIMITS,
    *,
    strategy: str | None = None,
) -> Plan:
    """Validate `graph` and infer every shape without arithmetic; raise a GraphError or TooLarge.

    `strategy` forces an executor ("tensor", "scalar" or "levels") where the graph allows it;
    benchmarks and tests use it to compare them.
    """
    nodes = graph.nodes
    if limits.max_nodes is not None and len(nodes) > limits.max_nodes:
        raise TooLarge(f"the graph has {len(nodes)} nodes; the limit is {limits.max_nodes}")
    with gc_paused():
        return _compile(graph, source_shapes, limits, strategy)


def _compile(graph, source_shapes, limits, strategy) -> Plan:
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
    return Plan(topological_order(nodes), checked, source_shapes, graph.output, limits, strategy)


class Plan:
    """A validated graph in topological order with every shape known; run it on new values."""

    def __init__(self, order, checked, source_shapes, output, limits, strategy=None):
        self.ids: list[str] = [node.id for node in order]
        self.index = {name: i for i, name in enumerate(self.ids)}
        # the plan outlives the request that compiled it: keep no source values alive
        self.nodes: list[Node] = [node if node.value is None else replace(node, value=None)
                                  for node in order]
        self.ops: list[Op] = [checked[node.id][0] for node in order]
        self.attrs: list[dict] = [checked[node.id][1] for node in order]
        position = self.index.__getitem__
        self.ins: list[tuple[int, ...]] = [tuple(map(position, node.inputs)) for node in order]
        self.output = output
        self.out = self.index[output]
        self.sources = [i for i, op in enumerate(self.ops) if op.is_source]
        self.shapes = self._infer_shapes(source_shapes, limits)
        self.levels = self._levels()
        self.ancestors = self._ancestors_of_output()
        self.strategy = self._choose_strategy(strategy)
        self._level_groups = self._group_levels() if self.strategy == "levels" else None
        self._scalar_chunks = self._float_steps() if self.strategy == "scalar" else None

    # ---- introspection

    def op_of(self, name: str) -> Op:
        return self.ops[self.index[name]]

    def shape_of(self, name: str) -> Shape:
        return self.shapes[self.index[name]]

    # ---- compile steps

    def _infer_shapes(self, source_shapes: Mapping[str, Shape], limits: Limits) -> list[Shape]:
        shapes: list[Shape] = []
        total = 0
        for i, name in enumerate(self.ids):
            op = self.ops[i]
            if op.is_source:
                if name not in source_shapes:
                    raise MissingInput(f"{op.name} node '{name}' has no value", name)
                shape = tuple(source_shapes[name])
            elif op.shape is same_shape:
                shape = shapes[self.ins[i][0]]
            else:
                shape = op.shape([shapes[j] for j in self.ins[i]], self.attrs[i], name)
            size = math.prod(shape) if shape else 1
            if limits.max_elements is not None and size > limits.max_elements:
                raise TooLarge(
                    f"node '{name}' would hold {size} elements; the limit is {limits.max_elements}",
                    name,
                )
            total += size
            if limits.max_total_elements is not None and total > limits.max_total_elements:
                raise TooLarge(
                    f"the graph's values pass {limits.max_total_elements} elements in all "
                    f"at node '{name}'",
                    name,
                )
            shapes.append(shape)
        return shapes

    def _levels(self) -> list[int]:
        levels = [0] * len(self.ids)
        level_of = levels.__getitem__
        for i, ins in enumerate(self.ins):
            if ins:
                levels[i] = 1 + max(map(level_of, ins))
        return levels

    def _ancestors_of_output(self) -> list[bool]:
        return self._reaching({self.out})

    def _reaching(self, targets: set[int]) -> list[bool]:
        """Which nodes have a path to one of `targets` (the targets included)."""
        reach = [False] * len(self.ids)
        for i in targets:
            reach[i] = True
        for i in range(len(self.ids) - 1, -1, -1):
            if reach[i]:
                for j in self.ins[i]:
                    reach[j] = True
        return reach

    def _choose_strategy(self, forced: str | None) -> str:
        scalar = all(s == () for s in self.shapes) and all(
            op.name in op_catalog.SCALAR_OPS for op in self.ops
        )
        if forced is not None:
            if forced not in ("tensor", "scalar", "levels"):
                raise ValueError(f"unknown strategy {forced!r}")
            if forced != "tensor" and not scalar:
                raise ValueError(f"strategy {forced!r} needs an all-scalar graph")
            return forced
        if not scalar:
            return "tensor"
        n = len(self.ids)
        width = n / (max(self.levels) + 1)
        if n >= LEVEL_MIN_NODES and width >= LEVEL_WIDTH_THRESHOLD:
            return "levels"
        return "scalar"

    def _float_steps(self) -> list[list[tuple]]:
        """Per gate (i, forward kernel, vjp rule, inputs, a, b) with attrs bound, in chunks of
        DEADLINE_STRIDE. `a`, `b` are the input indices of a one- or two-input gate (b = -1 for
        one input); gates with more inputs have a = b = -2 and read `inputs`."""
        bound: dict = {}

        def bind(kernel, attrs):
            if not attrs:
                return kernel
            key = (kernel, tuple(attrs.items()))
            if key not in bound:  # share one partial between nodes with equal attrs
                bound[key] = partial(kernel, **attrs)
            return bound[key]

        steps = []
        for i, op in enumerate(self.ops):
            if op.is_source:
                continue
            ins, attrs = self.ins[i], self.attrs[i]
            kernel = op.scalar_forward
            if len(ins) == 2 and op.scalar_pairwise is not None:
                kernel = op.scalar_pairwise
            a, b = (ins[0], -1) if len(ins) == 1 else ins if len(ins) == 2 else (-2, -2)
            steps.append((i, bind(kernel, attrs), bind(op.scalar_vjp, attrs), ins, a, b))
        return [steps[k : k + DEADLINE_STRIDE] for k in range(0, len(steps), DEADLINE_STRIDE)]

    def _group_levels(self) -> list[list[_LevelGroup]]:
        keyed: dict[tuple, list[int]] = {}
        for i, op in enumerate(self.ops):
            if op.is_source:
                continue
            key = (self.levels[i], op.name, len(self.ins[i]), tuple(self.attrs[i].items()))
            keyed.setdefault(key, []).append(i)
        levels: list[list[_LevelGroup]] = [[] for _ in range(max(self.levels) + 1)]
        for (level, _, arity, _), members in keyed.items():
            ins = np.array([self.ins[i] for i in members], dtype=np.intp).reshape(-1, arity)
            op = self.ops[members[0]]
            # numpy's rule for an elementwise op; on 0-d values the others are the identity,
            # whose float kernels serve a gathered row of values as well
            forward, vjp = (op.forward, op.vjp) if op.elementwise else (
                op.scalar_forward, op.scalar_vjp)
            levels[level].append(
                _LevelGroup(
                    forward,
                    vjp,
                    self.attrs[members[0]],
                    np.array(members, dtype=np.intp),
                    [np.ascontiguousarray(ins[:, k]) for k in range(arity)],
                )
            )
        return levels

    # ---- run

    def run(
        self,
        sources: Mapping[str, np.ndarray],
        *,
        seed: np.ndarray | None = None,
        wrt: Sequence[str] | None = None,
        forward_only: bool = False,
        deadline: float | None = None,
    ) -> RunResult:
        """Forward (and unless `forward_only`, backward) on new source values."""
        reported = self._reported(wrt)
        source_values = self._source_values(sources)
        seed = self._seed(seed)
        needed = self.ancestors if wrt is None else self._needed(reported)
        runner = {
            "tensor": self._run_tensor,
            "scalar": self._run_scalar,
            "levels": self._run_levels,
        }[self.strategy]
        with np.errstate(all="ignore"), gc_paused():
            values, grads = runner(source_values, seed, needed, forward_only, deadline)
            return self._result(values, grads, reported)

    def _reported(self, wrt: Sequence[str] | None) -> list[int]:
        if wrt is None:
            return list(range(len(self.ids)))
        for name in wrt:
            if name not in self.index:
                raise UnknownNode(f"wrt names '{name}', which is not a node of the graph", name)
        return sorted({self.index[name] for name in wrt})

    def _needed(self, reported: list[int]) -> list[bool]:
        """Nodes whose gradient is needed: on a path from a reported node to the output."""
        from_reported = [False] * len(self.ids)
        for i in reported:
            from_reported[i] = True
        for i, ins in enumerate(self.ins):
            if not from_reported[i] and any(from_reported[j] for j in ins):
                from_reported[i] = True
        return [a and b for a, b in zip(self.ancestors, from_reported, strict=True)]

    def _source_values(self, sources: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
        values = {}
        for i in self.sources:
            name = self.ids[i]
            if name not in sources:
                raise MissingInput(f"{self.ops[i].name} node '{name}' has no value", name)
            value = np.asarray(sources[name], dtype=np.float64)
            if value.shape != self.shapes[i]:
                raise ShapeMismatch(
                    f"node '{name}' has shape {list(value.shape)}, the plan was compiled for "
                    f"{list(self.shapes[i])}",
                    name,
                )
            values[i] = value
        return values

    def _seed(self, seed: np.ndarray | None) -> np.ndarray:
        shape = self.shapes[self.out]
        if seed is None:
            return np.ones(shape)
        seed = np.asarray(seed, dtype=np.float64)
        if seed.shape != shape:
            raise ShapeMismatch(
                f"seed has shape {list(seed.shape)}; the output '{self.output}' has shape "
                f"{list(shape)}",
                self.output,
            )
        return seed

    def _check_deadline(self, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded("the computation ran past its time limit")

    def _result(self, values: list, grads: list | None, reported: list[int]) -> RunResult:
        """Pick the reported nodes; the float strategies' lists hold plain floats already."""
        floats = self.strategy != "tensor"
        plain = (lambda v: v) if floats else _plain
        if grads is not None and not floats:
            grads = [np.zeros(self.shapes[i]) if g is None else g for i, g in enumerate(grads)]
        everything = len(reported) == len(self.ids)

        def pick(column: list) -> list:
            if everything and floats:
                return column
            return [plain(column[i]) for i in reported]

        order = list(self.ids) if everything else [self.ids[i] for i in reported]
        return RunResult(self.output, plain(values[self.out]), order, pick(values),
                         None if grads is None else pick(grads))

    # ---- strategy: one numpy call per node

    def _run_tensor(self, sources, seed, needed, forward_only, deadline):
        n = len(self.ids)
        values: list = [None] * n
        for i in range(n):
            self._check_deadline(deadline)
            if i in sources:
                values[i] = sources[i]
            else:
                values[i] = self.ops[i].forward(*[values[j] for j in self.ins[i]], **self.attrs[i])
        if forward_only:
            return values, None
        grads: list = [None] * n
        grads[self.out] = seed
        for i in range(n - 1, -1, -1):
            g = grads[i]
            if not needed[i] or g is None or self.ops[i].is_source:
                continue
            self._check_deadline(deadline)
            for j, contribution in zip(self.ins[i], self._vjp(i, g, values, needed), strict=True):
                if contribution is None or not needed[j]:
                    continue
                contribution = unbroadcast(contribution, self.shapes[j])
                grads[j] = contribution if grads[j] is None else grads[j] + contribution
        return values, grads

    def _vjp(self, i: int, g, values: list, needed: list[bool]):
        op = self.ops[i]
        xs = [values[j] for j in self.ins[i]]
        if op.vjp_takes_needs:
            needs = tuple(needed[j] for j in self.ins[i])
            return op.vjp(g, values[i], *xs, needs=needs, **self.attrs[i])
        return op.vjp(g, values[i], *xs, **self.attrs[i])

    # ---- strategy: Python floats, node by node

    def _numpy_twin(self, rule, i: int, *args) -> tuple:
        """Recompute one node with the numpy rule when a float kernel raised (inf, nan cases)."""
        return rule(*[np.float64(a) for a in args], **self.attrs[i])

    def _run_scalar(self, sources, seed, needed, forward_only, deadline):
        values = [0.0] * len(self.ids)
        for i, value in sources.items():
            values[i] = float(value)
        for chunk in self._scalar_chunks:
            self._check_deadline(deadline)
            for i, kernel, _, ins, a, b in chunk:
                try:
                    if b == -1:
                        values[i] = kernel(values[a])
                    elif b >= 0:
                        values[i] = kernel(values[a], values[b])
                    else:
                        values[i] = kernel(*[values[j] for j in ins])
                except _FLOAT_FAULTS:
                    args = [values[j] for j in ins]
                    values[i] = float(self._numpy_twin(self.ops[i].forward, i, *args))
        if forward_only:
            return values, None
        grads = [0.0] * len(self.ids)
        grads[self.out] = float(seed)
        for chunk in reversed(self._scalar_chunks):
            self._check_deadline(deadline)
            for i, _, rule, ins, a, b in reversed(chunk):
                if not needed[i]:
                    continue
                g = grads[i]
                try:
                    if b == -1:
                        (da,) = rule(g, values[i], values[a])
                        grads[a] += da
                    elif b >= 0:
                        da, db = rule(g, values[i], values[a], values[b])
                        grads[a] += da
                        grads[b] += db
                    else:
                        local = rule(g, values[i], *[values[j] for j in ins])
                        for j, contribution in zip(ins, local, strict=True):
                            grads[j] += contribution
                except _FLOAT_FAULTS:
                    args = [values[j] for j in ins]
                    local = self._numpy_twin(self.ops[i].vjp, i, g, values[i], *args)
                    for j, contribution in zip(ins, local, strict=True):
                        grads[j] += float(contribution)
        return values, grads

    # ---- strategy: numpy over whole topological levels

    def _run_levels(self, sources, seed, needed, forward_only, deadline):
        n = len(self.ids)
        v = np.zeros(n)
        for i, value in sources.items():
            v[i] = value
        for level in self._level_groups:
            self._check_deadline(deadline)
            for group in level:
                v[group.idx] = group.forward(*[v[a] for a in group.ins], **group.attrs)
        if forward_only:
            return v.tolist(), None
        grad = np.zeros(n)
        grad[self.out] = seed
        need = np.array(needed, dtype=bool)
        for level in reversed(self._level_groups):
            self._check_deadline(deadline)
            for group in level:
                idx, ins = group.idx, group.ins
                keep = need[idx]
                if not keep.all():
                    if not keep.any():
                        continue
                    idx, ins = idx[keep], [a[keep] for a in ins]
                local = group.vjp(grad[idx], v[idx], *[v[a] for a in ins], **group.attrs)
                for a, contribution in zip(ins, local, strict=True):
                    np.add.at(grad, a, contribution)
        return v.tolist(), grad.tolist()


def _plain(value):
    """0-d results as Python floats, others as float64 arrays."""
    if type(value) is float:
        return value
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value


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
    if seed is not None and not allow_nonfinite:
        check_finite(np.asarray(seed, dtype=np.float64), graph.output, "seed")
    plan = compile_plan(graph, {name: np.shape(v) for name, v in sources.items()}, limits)
    return plan.run(sources, seed=seed, wrt=wrt, forward_only=forward_only, deadline=deadline)
