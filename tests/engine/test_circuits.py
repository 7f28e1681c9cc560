"""The backprop notes' circuits with their worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import run_graph
from tests.engine.graphs import graph, node


def test_add_then_mul():
    g = graph(node("x", "input", value=-2), node("y", "input", value=5),
              node("z", "input", value=-4), node("q", "add", ["x", "y"]),
              node("f", "mul", ["q", "z"]), output="f")
    r = run_graph(g)
    assert r.value == -12.0
    assert r.grads == {"x": -4.0, "y": -4.0, "z": 3.0, "q": -4.0, "f": 1.0}
    assert r.order == ["x", "y", "z", "q", "f"]


NEURON = dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)
NEURON_GRADS = dict(w0=-0.19661193, x0=0.39322387, w1=-0.39322387, x1=-0.58983580,
                    w2=0.19661193)


def _neuron_inputs():
    return [node(k, "input", value=v) for k, v in NEURON.items()]


def test_sigmoid_neuron_as_gate_chain():
    g = graph(*_neuron_inputs(),
              node("m0", "mul", ["w0", "x0"]), node("m1", "mul", ["w1", "x1"]),
              node("s0", "add", ["m0", "m1"]), node("dot", "add", ["s0", "w2"]),
              node("negdot", "scale", ["dot"], a=-1.0), node("e", "exp", ["negdot"]),
              node("den", "add_const", ["e"], c=1.0), node("f", "inv", ["den"]), output="f")
    r = run_graph(g)
    assert r.value == pytest.approx(0.73105858)
    for k, v in NEURON_GRADS.items():
        assert r.grads[k] == pytest.approx(v, rel=1e-6)
    # the notes: the gradient on the wire into the "1/x" gate is -0.53, into exp -0.20 ...
    assert r.grads["den"] == pytest.approx(-0.53444665, rel=1e-6)
    assert r.grads["dot"] == pytest.approx(0.19661193, rel=1e-6)


def test_sigmoid_neuron_as_one_gate():
    g = graph(*_neuron_inputs(),
              node("m0", "mul", ["w0", "x0"]), node("m1", "mul", ["w1", "x1"]),
              node("dot", "add", ["m0", "m1", "w2"]), node("f", "sigmoid", ["dot"]), output="f")
    r = run_graph(g)
    assert r.value == pytest.approx(0.73105858)
    for k, v in NEURON_GRADS.items():
        assert r.grads[k] == pytest.approx(v, rel=1e-6)


def _staged_by_hand(x, y):
    """The notes' line-by-line forward and backward pass of (x + sig(y)) / (sig(x) + (x+y)^2)."""
    sig = lambda v: 1.0 / (1 + math.exp(-v))  # noqa: E731
    sigy = sig(y)
    num = x + sigy
    sigx = sig(x)
    xpy = x + y
    xpysqr = xpy**2
    den = sigx + xpysqr
    invden = 1.0 / den
    f = num * invden
    dnum = invden
    dinvden = num
    dden = (-1.0 / den**2) * dinvden
    dsigx = dden
    dxpysqr = dden
    dxpy = 2 * xpy * dxpysqr
    dx = dxpy
    dy = dxpy
    dx += ((1 - sigx) * sigx) * dsigx
    dx += dnum
    dsigy = dnum
    dy += ((1 - sigy) * sigy) * dsigy
    return f, dx, dy


def test_staged_function_matches_the_line_by_line_backward_pass():
    g = graph(node("x", "input", value=3), node("y", "input", value=-4),
              node("sigy", "sigmoid", ["y"]), node("num", "add", ["x", "sigy"]),
              node("sigx", "sigmoid", ["x"]), node("xpy", "add", ["x", "y"]),
              node("xpysqr", "pow", ["xpy"], exponent=2), node("den", "add", ["sigx", "xpysqr"]),
              node("invden", "inv", ["den"]), node("f", "mul", ["num", "invden"]), output="f")
    r = run_graph(g)
    f, dx, dy = _staged_by_hand(3.0, -4.0)
    assert r.value == pytest.approx(f, rel=1e-12)
    assert r.grads["x"] == pytest.approx(dx, rel=1e-12)
    assert r.grads["y"] == pytest.approx(dy, rel=1e-12)


def test_max_mul_routing_circuit():
    g = graph(node("x", "input", value=3), node("y", "input", value=-4),
              node("z", "input", value=2), node("w", "input", value=-1),
              node("xy", "mul", ["x", "y"]), node("m", "max", ["z", "w"]),
              node("s", "add", ["xy", "m"]), node("f", "scale", ["s"], a=2), output="f")
    r = run_graph(g)
    assert r.value == -20.0
    assert r.grads["x"] == -8.0 and r.grads["y"] == 6.0
    assert r.grads["z"] == 2.0 and r.grads["w"] == 0.0


def test_matmul_with_upstream_gradient():
    rng = np.random.default_rng(0)
    w, x, dd = rng.normal(size=(5, 10)), rng.normal(size=(10, 3)), rng.normal(size=(5, 3))
    g = graph(node("W", "input", value=w), node("X", "input", value=x),
              node("D", "matmul", ["W", "X"]), output="D")
    r = run_graph(g, seed=dd)
    np.testing.assert_allclose(r.value, w @ x)
    np.testing.assert_allclose(r.grads["W"], dd @ x.T)
    np.testing.assert_allclose(r.grads["X"], w.T @ dd)


def test_gradients_add_up_at_forks():
    g = graph(node("x", "input", value=3), node("f", "mul", ["x", "x"]), output="f")
    assert run_graph(g).grads["x"] == 6.0
    g = graph(node("x", "input", value=3), node("a", "scale", ["x"], a=2),
              node("b", "exp", ["x"]), node("f", "add", ["a", "b", "x"]), output="f")
    assert run_graph(g).grads["x"] == pytest.approx(3 + math.exp(3))


def test_max_and_min_split_ties_equally():
    g = graph(node("a", "input", value=2), node("b", "input", value=2),
              node("c", "input", value=1), node("f", "max", ["a", "b", "c"]), output="f")
    assert run_graph(g).grads == {"a": 0.5, "b": 0.5, "c": 0.0, "f": 1.0}
    g = graph(node("a", "input", value=[1.0, 5.0]), node("b", "input", value=1.0),
              node("f", "min", ["a", "b"]), output="f")
    r = run_graph(g)
    np.testing.assert_array_equal(r.grads["a"], [0.5, 0.0])
    assert r.grads["b"] == 1.5


@pytest.mark.parametrize("op", ["relu", "abs"])
def test_relu_and_abs_have_zero_gradient_at_zero(op):
    g = graph(node("x", "input", value=[0.0, -0.0, 1.0]), node("f", op, ["x"]), output="f")
    np.testing.assert_array_equal(run_graph(g).grads["x"][:2], [0.0, 0.0])
    g = graph(node("x", "input", value=0.0), node("f", op, ["x"]), output="f")
    assert run_graph(g).grads["x"] == 0.0


@pytest.mark.parametrize("op", ["sigmoid", "softmax", "log_softmax", "tanh"])
def test_stable_at_large_magnitudes(op):
    x = np.array([1000.0, -1000.0, 0.0])
    g = graph(node("x", "input", value=x), node("f", op, ["x"]), output="f")
    r = run_graph(g)  # filterwarnings=error turns any overflow warning into a failure
    assert np.all(np.isfinite(r.value)) and np.all(np.isfinite(r.grads["x"]))


def test_non_finite_results_are_returned_not_raised():
    g = graph(node("x", "input", value=0.0), node("l", "log", ["x"]),
              node("e", "input", value=1000.0), node("big", "exp", ["e"]),
              node("f", "add", ["l", "big"]), output="f")
    r = run_graph(g)
    assert r.values["l"] == -math.inf and r.values["big"] == math.inf
    assert math.isnan(r.value)


def test_unconnected_nodes_get_zero_gradients_of_their_shape():
    g = graph(node("x", "input", value=1.0), node("u", "input", value=[1.0, 2.0]),
              node("v", "exp", ["u"]), node("f", "neg", ["x"]), output="f")
    r = run_graph(g)
    np.testing.assert_array_equal(r.grads["u"], [0.0, 0.0])
    np.testing.assert_array_equal(r.grads["v"], [0.0, 0.0])
    np.testing.assert_allclose(r.values["v"], np.exp([1.0, 2.0]))


def test_wrt_limits_what_is_reported():
    g = graph(node("x", "input", value=-2), node("y", "input", value=5),
              node("z", "input", value=-4), node("q", "add", ["x", "y"]),
              node("f", "mul", ["q", "z"]), output="f")
    r = run_graph(g, wrt=["z", "x"])
    assert r.order == ["x", "z"]
    assert r.grads == {"x": -4.0, "z": 3.0}
    assert r.values == {"x": -2.0, "z": -4.0}


def test_forward_only():
    g = graph(node("x", "input", value=2), node("f", "exp", ["x"]), output="f")
    r = run_graph(g, forward_only=True)
    assert r.grads is None and r.value == pytest.approx(math.exp(2))


def test_inputs_override_defaults_and_seed_scales():
    g = graph(node("x", "input", value=1.0), node("f", "scale", ["x"], a=3), output="f")
    r = run_graph(g, {"x": np.float64(2.0)}, seed=np.float64(-2.0))
    assert r.value == 6.0 and r.grads["x"] == -6.0


def test_default_seed_of_a_tensor_output_is_ones():
    g = graph(node("x", "input", value=[1.0, 2.0, 3.0]), node("f", "pow", ["x"], exponent=2),
              output="f")
    np.testing.assert_array_equal(run_graph(g).grads["x"], [2.0, 4.0, 6.0])
