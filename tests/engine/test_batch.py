"""Batched plans against a loop over points of the unbatched engine; Jacobians.

Every op case of test_op_gradients, for each mix of batched and shared inputs and each reduce;
random DAGs over the catalog with random batched subsets (hypothesis); Jacobians against
stacked single-seed backward passes and against finite differences.
"""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import (
    OPS,
    REDUCES,
    Graph,
    Limits,
    ShapeMismatch,
    TooLarge,
    UnknownNode,
    checked_attrs,
    compile_plan,
    jacobian,
)
from engine.errors import EngineError
from tests.engine.graphs import graph, node
from tests.engine.test_op_gradients import CASES

RTOL, ATOL = 1e-12, 1e-13


def _values(rng, shape, domain):
    magnitude = rng.uniform(0.5, 2.0, size=shape)
    if domain == "positive":
        return magnitude
    return magnitude * rng.choice([-1.0, 1.0], size=shape)


def _point(sources: dict, batched: set, k: int) -> dict:
    return {name: v[k] if name in batched else v for name, v in sources.items()}


def loop_reference(g: Graph, sources: dict, batched: set, size: int, seed, reduce: str):
    """Each point run on its own by the unbatched engine, combined as `reduce` says."""
    shapes = {name: np.shape(v[0] if name in batched else v) for name, v in sources.items()}
    plan = compile_plan(g, shapes)
    runs = [plan.run(_point(sources, batched, k),
                     seed=None if seed is None else seed[k] if seed.ndim > len(
                         plan.shape_of(g.output)) else seed)
            for k in range(size)]
    depends = compile_plan(g, shapes, batched=batched).batched if batched else None
    values, grads = {}, {}
    for name in runs[0].order:
        stacked_values = np.stack([np.asarray(r.values[name]) for r in runs])
        stacked_grads = np.stack([np.asarray(r.grads[name]) for r in runs])
        is_batched = depends[plan.index[name]]
        values[name] = stacked_values if is_batched else stacked_values[0]
        if reduce == "none" or is_batched:
            grads[name] = stacked_grads / size if reduce == "mean" else stacked_grads
        else:
            grads[name] = stacked_grads.mean(0) if reduce == "mean" else stacked_grads.sum(0)
    return values, grads


def assert_batch_matches_loop(g: Graph, sources: dict, batched: set, size: int, seed, reduce):
    shapes = {name: np.shape(v[0] if name in batched else v) for name, v in sources.items()}
    plan = compile_plan(g, shapes, batched=batched)
    result = plan.run(sources, seed=seed, reduce=reduce)
    values, grads = loop_reference(g, sources, batched, size, seed, reduce)
    for name in result.order:
        got_v, got_g = np.asarray(result.values[name]), np.asarray(result.grads[name])
        assert got_v.shape == values[name].shape, (name, "value")
        assert got_g.shape == grads[name].shape, (name, "grad")
        np.testing.assert_allclose(got_v, values[name], rtol=RTOL, atol=ATOL, err_msg=name)
        np.testing.assert_allclose(got_g, grads[name], rtol=RTOL, atol=ATOL, err_msg=name)


# ---------------------------------------------------------------- every op, every mix


def _op_cases():
    for name, cases in sorted(CASES.items()):
        if OPS[name].is_source:
            continue
        for k, (shapes, attrs, domain) in enumerate(cases):
            mixes = [f for f in itertools.product((True, False), repeat=len(shapes)) if any(f)]
            for flags in mixes:
                mix = "".join("b" if f else "s" for f in flags)
                yield pytest.param(name, shapes, attrs, domain, flags, id=f"{name}-{k}-{mix}")


@pytest.mark.parametrize(("name", "shapes", "attrs", "domain", "flags"), list(_op_cases()))
def test_every_op_batched_equals_a_loop_over_points(name, shapes, attrs, domain, flags):
    rng = np.random.default_rng(zlib.crc32(f"{name}{shapes}{attrs}{flags}".encode()))
    size = 3
    ids = [f"a{k}" for k in range(len(shapes))]
    g = graph(*[node(i, "input") for i in ids], node("f", name, ids, **attrs), output="f")
    batched = {i for i, f in zip(ids, flags, strict=True) if f}
    sources = {i: _values(rng, (size, *s) if i in batched else s, domain)
               for i, s in zip(ids, shapes, strict=True)}
    out_shape = compile_plan(g, {i: tuple(s) for i, s in zip(ids, shapes, strict=True)}
                             ).shape_of("f")
    for k, reduce in enumerate(REDUCES):
        # a per-point seed, one point's seed and the default, in turn
        seed = [rng.normal(size=(size, *out_shape)), rng.normal(size=out_shape), None][k]
        assert_batch_matches_loop(g, sources, batched, size, seed, reduce)


# ---------------------------------------------------------------- random DAGs over the catalog

SAFE_DOMAIN = {name for name, cases in CASES.items() if all(c[2] == "any" for c in cases)}
GATES = sorted(name for name in SAFE_DOMAIN if not OPS[name].is_source)
START_SHAPES = [(), (4,), (3, 4), (1, 4)]


def _random_gate(rng, nodes: list[tuple[str, tuple]], k: int):
    """A gate over earlier nodes that the engine accepts, with attrs from the op's cases."""
    for _ in range(50):
        name = GATES[rng.integers(len(GATES))]
        case_shapes, attrs, _ = CASES[name][rng.integers(len(CASES[name]))]
        picks = [nodes[rng.integers(len(nodes))] for _ in case_shapes]
        op = OPS[name]
        try:
            checked = checked_attrs(op, attrs, "g")
            shape = op.infer_shape([s for _, s in picks], checked, "g")
        except EngineError:
            continue
        if math.prod(shape) <= 64:
            return node(f"g{k}", name, [n for n, _ in picks], **attrs), shape
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_random_dags_with_random_batched_subsets(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 5))
    inputs = [(f"x{k}", START_SHAPES[rng.integers(len(START_SHAPES))]) for k in range(3)]
    nodes, listed = list(inputs), [node(n, "input") for n, _ in inputs]
    for k in range(int(rng.integers(2, 9))):
        made = _random_gate(rng, nodes, k)
        if made is not None:
            listed.append(made[0])
            nodes.append((made[0].id, made[1]))
    g = graph(*listed, output=nodes[-1][0])
    batched = {n for n, _ in inputs if rng.random() < 0.5} or {inputs[0][0]}
    sources = {n: rng.uniform(0.5, 1.5, (size, *s) if n in batched else s) for n, s in inputs}
    reduce = REDUCES[rng.integers(3)]
    assert_batch_matches_loop(g, sources, batched, size, None, reduce)


# ---------------------------------------------------------------- the plan and its checks


def _affine():
    return graph(node("x", "input"), node("w", "input", value=[0.5, -1.0]),
                 node("m", "mul", ["w", "x"]), node("f", "sum", ["m"]), output="f")


def test_one_plan_serves_every_batch_length():
    plan = compile_plan(_affine(), {"x": (2,), "w": (2,)}, batched={"x"})
    w = np.array([0.5, -1.0])
    for size in (1, 2, 7):
        xs = np.arange(2.0 * size).reshape(size, 2)
        result = plan.run({"x": xs, "w": w}, reduce="sum")
        np.testing.assert_allclose(result.value, xs @ w)
        np.testing.assert_allclose(result.grads["w"], xs.sum(0))
        np.testing.assert_allclose(result.grads["x"], np.broadcast_to(w, (size, 2)))


def test_batch_names_must_be_input_nodes():
    with pytest.raises(UnknownNode) as info:
        compile_plan(_affine(), {"x": (2,), "w": (2,)}, batched={"m"})
    assert info.value.node == "m"


def test_batched_values_must_share_a_length_and_fit_the_point():
    g = graph(node("x", "input"), node("y", "input"), node("f", "add", ["x", "y"]), output="f")
    plan = compile_plan(g, {"x": (2,), "y": ()}, batched={"x", "y"})
    with pytest.raises(ShapeMismatch, match="same leading length"):
        plan.run({"x": np.zeros((3, 2)), "y": np.zeros(4)})
    with pytest.raises(ShapeMismatch) as info:
        plan.run({"x": np.zeros((3, 3)), "y": np.zeros(3)})
    assert info.value.node == "x"
    with pytest.raises(ShapeMismatch, match="no points"):
        plan.run({"x": np.zeros((0, 2)), "y": np.zeros(0)})


def test_a_seed_of_the_wrong_shape_names_the_output():
    plan = compile_plan(_affine(), {"x": (2,), "w": (2,)}, batched={"x"})
    with pytest.raises(ShapeMismatch) as info:
        plan.run({"x": np.zeros((3, 2)), "w": np.zeros(2)}, seed=np.ones(4))
    assert info.value.node == "f"


def test_limits_count_b_times_a_points_elements():
    limits = Limits(max_elements=100, max_total_elements=1000)
    plan = compile_plan(_affine(), {"x": (2,), "w": (2,)}, limits, batched={"x"})
    plan.run({"x": np.zeros((50, 2)), "w": np.zeros(2)})
    with pytest.raises(TooLarge):
        plan.run({"x": np.zeros((51, 2)), "w": np.zeros(2)})


def test_an_output_no_batched_input_reaches():
    g = graph(node("x", "input"), node("w", "input", value=3.0), node("f", "mul", ["w", "w"]),
              node("u", "add", ["x", "w"]), output="f")
    plan = compile_plan(g, {"x": (), "w": ()}, batched={"x"})
    sources = {"x": np.arange(4.0), "w": np.array(3.0)}
    assert plan.run(sources, reduce="sum").grads["w"] == 24.0
    assert plan.run(sources, reduce="mean").grads["w"] == 6.0
    assert plan.run(sources).grads["w"].tolist() == [6.0] * 4
    assert plan.run(sources).grads["x"].tolist() == [0.0] * 4


def test_reported_arrays_do_not_share_the_workspace():
    plan = compile_plan(_affine(), {"x": (2,), "w": (2,)}, batched={"x"})
    w = np.array([0.5, -1.0])
    first = plan.run({"x": np.ones((3, 2)), "w": w})
    kept = first.values["m"].copy()
    plan.run({"x": np.full((3, 2), 7.0), "w": w})
    np.testing.assert_array_equal(first.values["m"], kept)


# ---------------------------------------------------------------- Jacobians


def _jacobian_graphs():
    yield "softmax", graph(node("z", "input"), node("f", "softmax", ["z"]), output="f"), {
        "z": (5,)}
    yield "layer", graph(node("x", "input"), node("w", "input"), node("m", "matmul", ["w", "x"]),
                         node("f", "tanh", ["m"]), output="f"), {"x": (4,), "w": (3, 4)}
    yield "scalar", graph(node("x", "input"), node("y", "input"), node("m", "mul", ["x", "y"]),
                          node("f", "log_softmax", ["m"], axis=0), output="f"), {
        "x": (2, 3), "y": (3,)}


@pytest.mark.parametrize(("label", "g", "shapes"), list(_jacobian_graphs()))
def test_jacobian_equals_stacked_single_seed_passes_and_finite_differences(label, g, shapes):
    rng = np.random.default_rng(zlib.crc32(label.encode()))
    sources = {n: rng.normal(size=s) for n, s in shapes.items()}
    plan = compile_plan(g, shapes)
    names = list(plan.ids)
    result = jacobian(plan, sources, names)
    out_shape = plan.shape_of("f")
    for name in names:
        rows = []
        for m in range(math.prod(out_shape)):
            seed = np.zeros(math.prod(out_shape))
            seed[m] = 1.0
            rows.append(np.asarray(plan.run(sources, seed=seed.reshape(out_shape)).grads[name]))
        stacked = np.stack(rows).reshape(*out_shape, *plan.shape_of(name))
        np.testing.assert_allclose(result.jacobians[name], stacked, rtol=1e-12, atol=1e-15)
    eps = 1e-6
    for name, shape in shapes.items():
        numeric = np.zeros((*out_shape, *shape))
        for index in np.ndindex(*shape):
            up, down = dict(sources), dict(sources)
            up[name] = sources[name].copy()
            down[name] = sources[name].copy()
            up[name][index] += eps
            down[name][index] -= eps
            delta = np.asarray(plan.run(up, forward_only=True).value) - np.asarray(
                plan.run(down, forward_only=True).value)
            numeric[(..., *index)] = delta / (2 * eps)
        np.testing.assert_allclose(result.jacobians[name], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("label", "g", "shapes"), list(_jacobian_graphs()))
def test_batched_jacobian_equals_one_per_point(label, g, shapes):
    rng = np.random.default_rng(zlib.crc32(label.encode()) + 1)
    size = 3
    first = next(iter(shapes))
    sources = {n: rng.normal(size=(size, *s) if n == first else s) for n, s in shapes.items()}
    batched_plan = compile_plan(g, shapes, batched={first})
    plan = compile_plan(g, shapes)
    result = jacobian(batched_plan, sources, list(shapes))
    for name in shapes:
        assert result.jacobians[name].shape[0] == size
        for k in range(size):
            single = jacobian(plan, _point(sources, {first}, k), [name])
            np.testing.assert_allclose(result.jacobians[name][k], single.jacobians[name],
                                       rtol=1e-12, atol=1e-15)


def test_jacobian_of_a_scalar_output_is_the_gradient():
    plan = compile_plan(_affine(), {"x": (2,), "w": (2,)})
    sources = {"x": np.array([2.0, 3.0]), "w": np.array([0.5, -1.0])}
    result = jacobian(plan, sources, ["x", "w"])
    assert result.jacobians["x"].tolist() == [0.5, -1.0]
    assert result.jacobians["w"].tolist() == [2.0, 3.0]
    with pytest.raises(UnknownNode):
        jacobian(plan, sources, ["nope"])


def test_jacobian_over_the_limit_is_refused():
    plan = compile_plan(graph(node("z", "input"), node("f", "softmax", ["z"]), output="f"),
                        {"z": (50,)}, Limits(max_total_elements=1000))
    with pytest.raises(TooLarge):
        jacobian(plan, {"z": np.zeros(50)}, ["z"])


def test_a_jacobian_tensor_over_the_tensor_limit_is_refused_naming_its_node():
    g = graph(node("z", "input"), node("f", "softmax", ["z"]), output="f")
    fits = compile_plan(g, {"z": (50,)}, Limits(max_elements=2500))
    assert jacobian(fits, {"z": np.zeros(50)}, ["z"]).jacobians["z"].shape == (50, 50)
    plan = compile_plan(g, {"z": (50,)}, Limits(max_elements=2499))
    with pytest.raises(TooLarge, match="2500 elements over the Jacobian's 50 seeds") as error:
        jacobian(plan, {"z": np.zeros(50)}, ["z"])
    assert error.value.node == "z"


@pytest.mark.parametrize("op", ["inv", "log", "sqrt", "exp", "abs", "relu", "sigmoid", "tanh"])
def test_shared_float_gates_agree_with_numpy_on_edge_values(op):
    """Shared 0-d gates run on float kernels; where those raise, numpy's rule decides."""
    edges = [0.0, -0.0, 1e-310, -2.0, 710.0, -710.0, math.inf, -math.inf, math.nan]
    nodes = [node("x", "input")]
    for k, _ in enumerate(edges):
        nodes += [node(f"w{k}", "input"), node(f"f{k}", op, [f"w{k}"]),
                  node(f"p{k}", "mul", [f"f{k}", "x"])]
    nodes.append(node("out", "add", [f"p{k}" for k in range(len(edges))]))
    g = graph(*nodes, output="out")
    sources = {f"w{k}": np.array(v) for k, v in enumerate(edges)}
    sources["x"] = np.array([0.5, -1.5])
    shapes = {name: () for name in sources}
    plan = compile_plan(g, shapes, batched={"x"})
    per_point = plan.run(sources)  # reduce none: the sums below would meet inf - inf
    summed = plan.run(sources, reduce="sum")
    tensor = compile_plan(g, shapes, strategy="tensor")
    reference = [tensor.run({**sources, "x": point}) for point in sources["x"]]
    for k in range(len(edges)):
        np.testing.assert_allclose(per_point.values[f"f{k}"], reference[0].values[f"f{k}"],
                                   rtol=1e-12)
        np.testing.assert_allclose(per_point.grads[f"w{k}"],
                                   [r.grads[f"w{k}"] for r in reference], rtol=1e-12)
        np.testing.assert_allclose(summed.grads[f"f{k}"],
                                   sum(r.grads[f"f{k}"] for r in reference), rtol=1e-12)


def test_the_workspace_pool_lends_and_keeps_within_its_budget():
    from engine.executors.workspace import WorkspacePool

    pool = WorkspacePool(max_bytes=1000 * 8)
    first = pool.take(600)
    assert first.size == 600
    pool.give(first)
    assert pool.held_bytes == 600 * 8
    assert pool.take(500) is first  # the smallest kept array that fits
    pool.give(first)
    pool.give(np.empty(500))  # over the budget with the first: the larger goes
    assert pool.held_bytes == 500 * 8
    pool.give(np.empty(2000))  # larger than the whole budget: not kept
    assert pool.held_bytes == 500 * 8
    pool.clear()
    assert pool.held_bytes == 0


def test_a_batched_run_past_its_deadline_stops():
    from engine import DeadlineExceeded

    plan = compile_plan(_affine(), {"x": (2,), "w": (2,)}, batched={"x"})
    with pytest.raises(DeadlineExceeded):
        plan.run({"x": np.zeros((3, 2)), "w": np.zeros(2)}, deadline=0.0)
