"""Per-wire gradients: each (consumer, input) edge's share, from the op table's vjp rules, adds
up to the node's gradient (issue 15: the diagram showed the total on every wire)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import bind_sources, compile_plan
from engine.edges import edge_gradients
from tests.engine.graphs import graph, node, random_scalar_dag

STAGED = graph(
    node("x", "input", value=3), node("y", "input", value=-4),
    node("sigy", "sigmoid", ["y"]), node("num", "add", ["x", "sigy"]),
    node("sigx", "sigmoid", ["x"]), node("xpy", "add", ["x", "y"]),
    node("xpysqr", "pow", ["xpy"], exponent=2), node("den", "add", ["sigx", "xpysqr"]),
    node("invden", "inv", ["den"]), node("f", "mul", ["num", "invden"]), output="f",
)


def _run(g, seed=None):
    sources = bind_sources(g)
    plan = compile_plan(g, {name: value.shape for name, value in sources.items()})
    return plan, plan.run(sources, seed=seed)


def _sums_by_input(plan, shares):
    totals: dict[str, object] = {}
    for (consumer, position), share in shares.items():
        name = plan.ids[plan.ins[plan.index[consumer]][position]]
        totals[name] = totals.get(name, 0.0) + np.asarray(share)
    return totals


def test_the_staged_circuits_three_wires_from_x():
    plan, result = _run(STAGED)
    shares = edge_gradients(plan, result)
    assert shares[("num", 0)] == pytest.approx(0.512, abs=5e-4)
    assert shares[("sigx", 0)] == pytest.approx(-0.036, abs=5e-4)
    assert shares[("xpy", 0)] == pytest.approx(1.583, abs=5e-4)
    assert shares[("num", 0)] + shares[("sigx", 0)] + shares[("xpy", 0)] == pytest.approx(
        result.grads["x"], rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_shares_add_up_to_every_nodes_gradient(seed):
    plan, result = _run(random_scalar_dag(60, width=4, seed=seed))
    totals = _sums_by_input(plan, edge_gradients(plan, result))
    for name, total in totals.items():
        assert total == pytest.approx(result.grads[name], rel=1e-9, abs=1e-15)


def test_tensor_shares_are_unbroadcast_to_the_inputs_shape():
    g = graph(node("w", "input", value=np.arange(6.0).reshape(2, 3)),
              node("b", "input", value=[1.0, 2.0, 3.0]),
              node("h", "add", ["w", "b"]), node("m", "matmul", ["h", "b"]),
              node("f", "sum", ["m"]), output="f")
    plan, result = _run(g)
    shares = edge_gradients(plan, result)
    assert np.shape(shares[("h", 1)]) == (3,) and np.shape(shares[("m", 1)]) == (3,)
    np.testing.assert_allclose(shares[("h", 1)] + shares[("m", 1)], result.grads["b"])


def test_the_same_input_twice_gets_two_wires():
    plan, result = _run(graph(node("x", "input", value=3), node("f", "mul", ["x", "x"]),
                              output="f"))
    shares = edge_gradients(plan, result)
    assert shares == {("f", 0): 3.0, ("f", 1): 3.0}


def test_a_run_that_left_nodes_out_is_refused():
    sources = bind_sources(STAGED)
    plan = compile_plan(STAGED, {name: value.shape for name, value in sources.items()})
    with pytest.raises(ValueError):
        edge_gradients(plan, plan.run(sources, wrt=["x"]))
