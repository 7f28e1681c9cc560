"""The array-based compile gives what the per-node reference gives: order, levels, shapes,
inputs, reachability, level groups, and the same error naming the same node."""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import EngineError, Graph, Limits, Node, compile_plan, topological_order
from engine import ordering as engine_ordering
from tests.engine.graphs import chain, random_scalar_dag
from tests.engine.reference_compile import (
    reference_batched,
    reference_compile,
    reference_groups,
    reference_needed,
    reference_sum_order,
)
from tests.engine.reference_compile import (
    topological_order as reference_order,
)

# (op, attrs, arity or None for 2-4 inputs); attrs repeat so that kinds are shared
GATES = [
    ("exp", {}, 1), ("sigmoid", {}, 1), ("neg", {}, 1), ("pow", {"exponent": 2.0}, 1),
    ("pow", {"exponent": 3}, 1), ("scale", {"a": 0.5}, 1), ("scale", {"a": 1.5}, 1),
    ("add_const", {"c": 2.0}, 1), ("sum", {}, 1), ("add", {}, None), ("mul", {}, 2),
    ("max", {}, None), ("clip", {"lo": -0.5}, 1), ("clip", {"lo": 0.1, "hi": 0.9}, 1),
    ("leaky_relu", {"slope": 0.2}, 1), ("leaky_relu", {}, 1), ("sum", {"keepdims": True}, 1),
]
SHAPES = [(), (), (), (3,), (2, 3), (1, 3)]


@contextmanager
def narrow(width: int):
    """Run the ordering with levels of fewer than `width` nodes taken node by node."""
    saved = engine_ordering.NARROW
    engine_ordering.NARROW = width
    try:
        yield
    finally:
        engine_ordering.NARROW = saved


@st.composite
def graphs(draw, max_gates: int = 40, tensors: bool = False):
    """A random DAG with random ids, listed in a random order; its source shapes."""
    n_sources = draw(st.integers(1, 5))
    n_gates = draw(st.integers(0, max_gates))
    total = n_sources + n_gates
    ids = draw(st.lists(st.text("abxy019", min_size=1, max_size=4), min_size=total,
                        max_size=total, unique=True))
    nodes = [Node(ids[k], "input") for k in range(n_sources)]
    for k in range(n_sources, total):
        op, attrs, arity = draw(st.sampled_from(GATES))
        arity = arity or draw(st.integers(2, 4))
        low = draw(st.sampled_from([0, max(0, k - 3)]))  # some graphs grow long chains
        inputs = tuple(ids[draw(st.integers(low, k - 1))] for _ in range(arity))
        nodes.append(Node(ids[k], op, inputs, dict(attrs)))
    listing = draw(st.permutations(nodes))
    output = draw(st.sampled_from([ids[-1], draw(st.sampled_from(ids))]))
    shapes = {ids[k]: draw(st.sampled_from(SHAPES)) if tensors else () for k in range(n_sources)}
    return Graph(tuple(listing), output), shapes


def _outcome(compile_fn, *args):
    try:
        return compile_fn(*args)
    except EngineError as error:
        return error


def assert_same_plan(plan, ref) -> None:
    assert plan.ids == ref.ids
    assert plan.levels.tolist() == list(ref.levels)
    assert plan.ancestors.tolist() == list(ref.ancestors)
    assert plan.ins.tuples() == list(ref.ins)
    assert plan.shapes == ref.shapes
    assert all(a is b for a, b in zip(plan.ops, ref.ops, strict=True))
    assert plan.attrs == ref.attrs
    assert plan.sources == ref.sources
    assert plan.out == ref.out
    assert {name: plan.index[name] for name in plan.index} == {n: i for i, n in enumerate(ref.ids)}
    assert [(n.id, n.op, n.inputs, n.attrs) for n in plan.nodes] == [
        (name, op.name, tuple(ref.ids[j] for j in ins), attrs)
        for name, op, ins, attrs in zip(ref.ids, ref.ops, ref.ins, ref.attrs, strict=True)
    ]


def assert_same_outcome(graph: Graph, shapes, limits: Limits | None = None) -> None:
    limits = limits or Limits()
    ref = _outcome(reference_compile, graph, shapes, limits)
    plan = _outcome(compile_plan, graph, shapes, limits)
    if isinstance(ref, EngineError):
        assert isinstance(plan, EngineError), f"compiled, but the reference raised {ref!r}"
        assert (type(plan), plan.node, plan.message) == (type(ref), ref.node, ref.message)
    else:
        assert not isinstance(plan, EngineError), f"raised {plan!r}"
        assert_same_plan(plan, ref)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.sampled_from([1, 2, 1000]))
def test_random_dags_compile_as_the_reference_does(case, width):
    graph, shapes = case
    with narrow(width):
        assert_same_outcome(graph, shapes)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(tensors=True), st.sampled_from([1, 1000]))
def test_tensor_shapes_and_their_errors_are_the_reference_ones(case, width):
    graph, shapes = case
    with narrow(width):
        assert_same_outcome(graph, shapes)


def _break(graph: Graph, shapes: dict, fault: str, rng: random.Random):
    """`graph` with one fault of kind `fault` at a random node, and its source shapes."""
    nodes = list(graph.nodes)
    k = rng.randrange(len(nodes))
    victim = nodes[k]
    ids = [node.id for node in nodes]
    if fault == "duplicate":
        nodes[k] = replace(victim, id=rng.choice(ids))
    elif fault == "unknown_op":
        nodes[k] = replace(victim, op="frobnicate")
    elif fault == "arity":
        nodes[k] = replace(victim, inputs=victim.inputs + (rng.choice(ids),) * rng.randint(1, 2))
    elif fault == "attrs":
        nodes[k] = replace(victim, attrs=rng.choice([{"zz": 1}, {"exponent": "2"},
                                                     {"a": True}, {"c": float("nan")}]))
    elif fault == "unknown_node":
        nodes[k] = replace(victim, inputs=victim.inputs[:-1] + ("nope",)) if victim.inputs \
            else victim
    elif fault == "cycle" and victim.inputs:
        nodes[k] = replace(victim, inputs=(rng.choice(ids),) + victim.inputs[1:])
    elif fault == "output":
        graph = replace(graph, output="nowhere")
    elif fault == "missing" and shapes:
        shapes = dict(shapes)
        del shapes[rng.choice(sorted(shapes))]
    elif fault == "scalar_attr":  # a reduction over an axis a 0-d value does not have
        nodes[k] = replace(victim, op="sum", inputs=victim.inputs[:1] or (ids[0],),
                           attrs={"axis": 0})
    return replace(graph, nodes=tuple(nodes)), shapes


FAULTS = ["duplicate", "unknown_op", "arity", "attrs", "unknown_node", "cycle", "output",
          "missing", "scalar_attr"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(max_gates=25), st.lists(st.sampled_from(FAULTS), min_size=1, max_size=3),
       st.integers(0, 2**32), st.sampled_from([1, 1000]))
def test_faults_are_reported_as_the_reference_reports_them(case, faults, seed, width):
    graph, shapes = case
    rng = random.Random(seed)
    for fault in faults:
        graph, shapes = _break(graph, shapes, fault, rng)
    with narrow(width):
        assert_same_outcome(graph, shapes)


@settings(max_examples=60, deadline=None)
@given(graphs(max_gates=20), st.integers(1, 30), st.integers(1, 4))
def test_element_limits_name_the_reference_node(case, total, per_node):
    graph, shapes = case
    assert_same_outcome(graph, shapes, Limits(max_elements=per_node, max_total_elements=total))


@settings(max_examples=60, deadline=None)
@given(graphs(), st.randoms(use_true_random=False))
def test_the_order_does_not_depend_on_the_listing(case, rng):
    graph, shapes = case
    shuffled = list(graph.nodes)
    rng.shuffle(shuffled)
    again = replace(graph, nodes=tuple(shuffled))
    first = _outcome(compile_plan, graph, shapes)
    if not isinstance(first, EngineError):
        assert compile_plan(again, shapes).ids == first.ids
        assert [n.id for n in topological_order(again.nodes)] == list(first.ids)


@pytest.mark.parametrize("width", [1, 48, 10**9])
def test_large_graphs_wide_deep_and_mixed_match_the_reference(width):
    wide = random_scalar_dag(3000, width=120, seed=5)
    deep = chain(1500)
    # a wide graph feeding a chain feeding a wide graph: the order switches paths mid-way
    mixed_nodes = list(wide.nodes) + [Node(f"c{k}", "exp", (f"c{k - 1}" if k else wide.output,))
                                      for k in range(200)]
    mixed_nodes += [Node(f"w{k}", "mul", ("c199", f"x{k % 120}")) for k in range(500)]
    mixed_nodes.append(Node("end", "add", tuple(f"w{k}" for k in range(500))))
    mixed = Graph(tuple(reversed(mixed_nodes)), "end")
    with narrow(width):
        for graph in (wide, deep, mixed):
            shapes = {n.id: () for n in graph.nodes if n.op == "input"}
            assert_same_outcome(graph, shapes)
            assert [n.id for n in topological_order(graph.nodes)] == \
                [n.id for n in reference_order(graph.nodes)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(max_gates=60))
def test_level_groups_are_the_reference_groups(case):
    graph, shapes = case
    plan = _outcome(compile_plan, graph, shapes)
    if isinstance(plan, EngineError):
        return
    plan = compile_plan(graph, shapes, strategy="levels")
    ref = reference_compile(graph, shapes)
    groups = [
        [(g.forward, {**g.attrs, **_listed(g.columns)}, g.idx.tolist(),
          [column.tolist() for column in g.ins])
         for g in level.groups]
        for level in plan.state.levels
    ]
    expected = [
        [(_level_forward(plan, name), attrs, members, columns)
         for name, attrs, members, columns in level]
        for level in reference_groups(ref)
    ]
    assert groups == expected
    state = plan.state
    order = reference_sum_order(ref)
    assert [state.targets[level.start:level.stop].tolist() for level in state.levels] == [
        [j for _, _, j in level] for level in order]
    slot_of = {(i, k): level.start + s
               for level, entries in zip(state.levels, order, strict=True)
               for s, (i, k, _) in enumerate(entries)}
    for group in (g for level in state.levels for g in level.groups):
        for k, slots in enumerate(group.slots):
            assert slots.tolist() == [slot_of[(i, k)] for i in group.idx.tolist()]


def _listed(attrs: dict) -> dict:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in attrs.items()}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(max_gates=60), st.sampled_from([1, 1000]), st.randoms(use_true_random=False))
def test_nodes_needed_for_wrt_are_the_reference_ones(case, width, rng):
    graph, shapes = case
    plan = _outcome(compile_plan, graph, shapes)
    if isinstance(plan, EngineError):
        return
    reported = sorted(rng.sample(range(len(plan.ids)), rng.randint(1, len(plan.ids))))
    with narrow(width):
        needed = plan._needed(reported)
    assert needed.tolist() == reference_needed(reference_compile(graph, shapes), reported)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(max_gates=60), st.sampled_from([1, 1000]), st.randoms(use_true_random=False))
def test_nodes_depending_on_batched_inputs_are_the_reference_ones(case, width, rng):
    graph, shapes = case
    if isinstance(_outcome(compile_plan, graph, shapes), EngineError):
        return
    inputs = sorted(n.id for n in graph.nodes if n.op == "input")
    names = rng.sample(inputs, rng.randint(0, len(inputs)))
    with narrow(width):
        plan = compile_plan(graph, shapes, batched=names)
    expected = reference_batched(reference_compile(graph, shapes), set(names))
    assert plan.batched.tolist() == expected
    assert plan.is_batched == bool(names)


def _level_forward(plan, name: str):
    op = next(op for op in plan.ops if op.name == name)
    return op.forward if op.elementwise else op.scalar.forward


def test_a_cycle_is_named_on_the_wide_path_too():
    wide = random_scalar_dag(2000, width=100, seed=2)
    nodes = list(wide.nodes)
    # the first gate now reads the output: every node downstream of it waits forever
    first_gate = next(k for k, n in enumerate(nodes) if n.op != "input")
    nodes[first_gate] = replace(nodes[first_gate], inputs=(wide.output,))
    broken = Graph(tuple(nodes), wide.output)
    shapes = {n.id: () for n in nodes if n.op == "input"}
    with pytest.raises(EngineError) as info:
        reference_compile(broken, shapes)
    for width in (1, 10**9):
        with narrow(width), pytest.raises(EngineError) as ours:
            compile_plan(broken, shapes)
        assert (ours.value.code, ours.value.node) == ("cycle", info.value.node)


def test_a_cached_plan_holds_arrays_not_per_node_objects():
    g = random_scalar_dag(5000, width=200, seed=1)
    plan = compile_plan(g, {n.id: () for n in g.nodes if n.op == "input"})
    assert plan.strategy == "levels"
    assert isinstance(plan.ins.indices, np.ndarray) and isinstance(plan.levels, np.ndarray)
    assert len({id(attrs) for attrs in plan.attrs}) < 10  # one dict per kind, shared


def test_attrs_equal_in_python_but_not_as_attrs_are_checked_apart():
    x = Node("x", "input")
    one, true = Node("a", "scale", ("x",), {"a": 1}), Node("b", "scale", ("x",), {"a": True})
    ref = _outcome(reference_compile, Graph((x, one, true), "b"), {"x": ()})
    assert ref.code == "bad_attr" and ref.node == "b"
    assert_same_outcome(Graph((x, one, true), "b"), {"x": ()})
    zero, minus_zero = Node("z", "scale", ("x",), {"a": 0.0}), Node("m", "scale", ("x",),
                                                                   {"a": -0.0})
    plan = compile_plan(Graph((x, zero, minus_zero), "m"), {"x": ()})
    assert [str(attrs["a"]) for attrs in plan.attrs[1:]] == ["-0.0", "0.0"]
    assert plan.run({"x": np.float64(1.0)}).values["m"] == 0.0  # and its sign is negative
    assert np.signbit(plan.run({"x": np.float64(1.0)}).values["m"])


def test_a_plan_finds_its_sources_without_indexing_every_node():
    """`wrt` naming sources (the usual case) is answered from the sources' own positions; the
    index of every node is built only when a gate is named, and agrees with the order."""
    nodes = (Node("x", "input"), Node("y", "input"), Node("s", "add", ("x", "y")),
             Node("f", "exp", ("s",)))
    plan = compile_plan(Graph(nodes, "f"), {"x": (), "y": ()})
    sources = {"x": np.array(0.5), "y": np.array(-0.25)}
    result = plan.run(sources, wrt=["y", "x"])
    assert plan.index._positions is None  # not built: both are sources
    assert set(result.grads) == {"x", "y"}
    with pytest.raises(EngineError, match="'nowhere'"):
        plan.run(sources, wrt=["nowhere"])
    assert plan.run(sources, wrt=["s"]).grads["s"] == pytest.approx(np.exp(0.25))
    assert [plan.index[name] for name in plan.ids] == list(range(len(plan.ids)))
