"""The three executors agree with per-node numpy; plans are canonical, reusable and deep-safe."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import OPS, bind_sources, compile_plan, gradcheck, run_graph
from engine.ops import SCALAR_OPS
from tests.engine.graphs import (
    Builder,
    chain,
    graph,
    node,
    random_scalar_dag,
    random_tensor_dag,
)
from tests.engine.graphs import compiled as _plan  # the name these tests use


def _assert_same(a, b):
    assert a.order == b.order
    for name in a.order:
        np.testing.assert_allclose(a.values[name], b.values[name], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(a.grads[name], b.grads[name], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize(("n", "width", "expected"), [(3000, 100, "levels"), (600, 2, "scalar")])
def test_strategies_agree_with_per_node_numpy(n, width, expected):
    g = random_scalar_dag(n, width=width, seed=n)
    plan, sources = _plan(g)
    assert plan.strategy == expected
    reference = _plan(g, "tensor")[0].run(sources)
    for strategy in ("scalar", "levels"):
        _assert_same(_plan(g, strategy)[0].run(sources), reference)
    wrt = [plan.ids[5], plan.ids[-3]]
    _assert_same(plan.run(sources, wrt=wrt), _plan(g, "tensor")[0].run(sources, wrt=wrt))


EDGE_VALUES = [0.0, -0.0, 1e-310, -2.0, 710.0, -710.0, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("op", ["inv", "log", "sqrt", "exp", "abs", "relu", "sigmoid", "tanh"])
def test_float_kernels_agree_with_numpy_on_edge_values(op):
    for strategy in ("scalar", "levels"):
        nodes = [node(f"x{i}", "input", value=v) for i, v in enumerate(EDGE_VALUES)]
        nodes += [node(f"f{i}", op, [f"x{i}"]) for i in range(len(EDGE_VALUES))]
        nodes.append(node("out", "add", [f"f{i}" for i in range(len(EDGE_VALUES))]))
        g = graph(*nodes, output="out")
        sources = bind_sources(g, allow_nonfinite=True)
        shapes = {k: v.shape for k, v in sources.items()}
        fast = compile_plan(g, shapes, strategy=strategy).run(sources)
        slow = compile_plan(g, shapes, strategy="tensor").run(sources)
        for name in fast.order:
            np.testing.assert_allclose(fast.values[name], slow.values[name], rtol=1e-12)
            np.testing.assert_allclose(fast.grads[name], slow.grads[name], rtol=1e-12)


def test_pow_float_kernel_agrees_on_negative_bases_and_zero():
    for x, p in [(-8.0, 0.5), (0.0, -1.0), (0.0, 0.5), (-2.0, 3.0), (0.0, 0.0), (1e200, 2.0)]:
        g = graph(node("x", "input", value=x), node("f", "pow", ["x"], exponent=p), output="f")
        fast, sources = _plan(g, "scalar")
        slow = _plan(g, "tensor")[0]
        _assert_same(fast.run(sources), slow.run(sources))


def test_order_is_canonical_whatever_the_listing():
    g = random_scalar_dag(300, width=10, seed=3)
    shuffled = list(g.nodes)
    random.Random(1).shuffle(shuffled)
    assert _plan(g)[0].ids == _plan(graph(*shuffled, output=g.output))[0].ids


def test_plan_reruns_with_new_values():
    g = graph(node("x", "input", value=1.0), node("f", "mul", ["x", "x"]), output="f")
    plan, sources = _plan(g)
    assert plan.run(sources).grads["x"] == 2.0
    assert plan.run({"x": np.float64(5.0)}).grads["x"] == 10.0


def test_two_hundred_thousand_node_chain_and_graph():
    deep = chain(200_000)
    r = run_graph(deep, wrt=["x"])
    assert math.isfinite(r.grads["x"])
    plan, sources = _plan(deep, "tensor")  # the per-node path is iterative too
    assert plan.run(sources, wrt=["x"]).grads["x"] == pytest.approx(r.grads["x"], rel=1e-12)
    wide = random_scalar_dag(200_000, width=2000, seed=7)
    assert math.isfinite(run_graph(wide).value)


SMOOTH_UNARY = [("sigmoid", {}), ("tanh", {}), ("neg", {}), ("scale", {"a": 1.5}),
                ("add_const", {"c": -0.5}), ("pow", {"exponent": 2.0}), ("exp", {})]


@st.composite
def smooth_dags(draw):
    n_inputs = draw(st.integers(1, 4))
    nodes = [node(f"x{i}", "input", value=draw(st.floats(-1.5, 1.5))) for i in range(n_inputs)]
    for k in range(draw(st.integers(1, 12))):
        ids = [n.id for n in nodes]
        if draw(st.booleans()):
            op = draw(st.sampled_from(["add", "mul", "sub"]))
            arity = 2 if op == "sub" else draw(st.integers(2, 3))
            args = [draw(st.sampled_from(ids)) for _ in range(arity)]
            nodes.append(node(f"g{k}", op, args))
        else:
            op, attrs = draw(st.sampled_from(SMOOTH_UNARY))
            # squash before exp and pow so values stay moderate
            nodes.append(node(f"t{k}", "tanh", [draw(st.sampled_from(ids))]))
            nodes.append(node(f"g{k}", op, [f"t{k}"], **attrs))
    return graph(*nodes, output=nodes[-1].id)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(smooth_dags())
def test_random_dags_agree_with_finite_differences(g):
    plan, sources = _plan(g)
    for name, outcome in gradcheck(plan, sources, eps=1e-6).items():
        assert outcome.max_rel_error < 1e-5 or np.max(
            np.abs(outcome.analytic - outcome.numeric)) < 1e-8, name


SCALAR_ATTRS = {"add_const": {"c": 0.5}, "scale": {"a": -1.5}, "pow": {"exponent": 3.0},
                "sum": {"axis": None}, "mean": {"axis": None}, "transpose": {"axes": None},
                "reshape": {"shape": []},
                # catalog 1.1
                "leaky_relu": {"slope": 0.2}, "clip": {"lo": 0.8, "hi": 1.5},
                "slice": {"slices": []}, "broadcast_to": {"shape": []}}


@pytest.mark.parametrize("op", sorted(name for name in SCALAR_OPS if not OPS[name].is_source))
@pytest.mark.parametrize("forward_only", [False, True])
def test_every_scalar_op_agrees_across_the_three_executors(op, forward_only):
    """A wide level of one op (so "levels" batches it), read by an add of everything."""
    rng = np.random.default_rng(len(op))
    arity = max(OPS[op].min_arity, 1)
    width = 150
    nodes = [node(f"x{i}", "input", value=v) for i, v in enumerate(rng.uniform(0.5, 2.0, width))]
    for k in range(width):
        args = [f"x{(k + j) % width}" for j in range(arity)]
        nodes.append(node(f"g{k}", op, args, **SCALAR_ATTRS.get(op, {})))
    nodes.append(node("out", "add", [f"g{k}" for k in range(width)]))
    g = graph(*nodes, output="out")
    sources = bind_sources(g)
    shapes = {k: v.shape for k, v in sources.items()}
    reference = compile_plan(g, shapes, strategy="tensor").run(sources, forward_only=forward_only)
    for strategy in ("scalar", "levels"):
        result = compile_plan(g, shapes, strategy=strategy).run(sources, forward_only=forward_only)
        assert result.order == reference.order
        for name in result.order:
            np.testing.assert_allclose(result.values[name], reference.values[name], rtol=1e-12)
            if not forward_only:
                np.testing.assert_allclose(result.grads[name], reference.grads[name], rtol=1e-12)
    assert compile_plan(g, shapes).strategy == "levels"


# Random DAGs over (2, 3) tensors: each step applies one op of the catalog to pool nodes and
# comes back to a (2, 3) node, so any step can follow any other.
def _tensor_step(draw, add: Builder, a: str, b: str) -> str:
    def positive(x):  # into (1.5, 2.5): safe for log, sqrt, inv, div and fractional pow
        return add("add_const", [add("sigmoid", [x])], c=1.5)

    kind = draw(st.sampled_from([
        "add", "mul", "sub", "div", "max", "min", "neg", "inv", "add_const", "scale", "pow",
        "exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu", "sum", "mean", "matmul",
        "transpose", "reshape", "softmax", "log_softmax"]))
    if kind in ("add", "mul", "sub", "max", "min"):
        out = add(kind, [a, b])
    elif kind == "div":
        out = add("div", [a, positive(b)])
    elif kind in ("inv", "log", "sqrt"):
        out = add(kind, [positive(a)])
    elif kind == "pow":
        out = add("pow", [positive(a)], exponent=draw(st.sampled_from([2.0, 0.5, -1.0])))
    elif kind == "exp":
        out = add("exp", [add("tanh", [a])])
    elif kind in ("add_const", "scale"):
        out = add(kind, [a], **({"c": 0.5} if kind == "add_const" else {"a": -0.7}))
    elif kind in ("sum", "mean"):
        axis = draw(st.sampled_from([0, 1, -1]))
        reduced = add(kind, [a], axis=axis, keepdims=True)
        out = add("add", [reduced, b])  # broadcasts back to (2, 3)
    elif kind == "matmul":
        square = add("matmul", [a, add("transpose", [b])])  # (2, 3) @ (3, 2)
        out = add("matmul", [square, b])
    elif kind == "transpose":
        out = add("transpose", [add("transpose", [a], axes=[1, 0])])
    elif kind == "reshape":
        out = add("reshape", [add("reshape", [a], shape=[3, 2])], shape=[-1, 3])
    elif kind in ("softmax", "log_softmax"):
        out = add(kind, [a], axis=draw(st.sampled_from([0, 1])))
    else:
        out = add(kind, [a])
    return out


@st.composite
def tensor_dags(draw):
    return random_tensor_dag(draw, _tensor_step)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensor_dags())
def test_random_tensor_dags_over_the_catalog_agree_with_finite_differences(g):
    plan, sources = _plan(g)
    for name, outcome in gradcheck(plan, sources, eps=1e-6).items():
        scale = max(1.0, float(np.max(np.abs(outcome.numeric))))
        assert float(np.max(np.abs(outcome.analytic - outcome.numeric))) < 1e-6 * scale, name
