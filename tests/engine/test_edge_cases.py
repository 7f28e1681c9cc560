"""Edges a review found: negative transpose axes in the backward pass, conv2d over zero images
or zero filters, gelu's gradient where tanh has saturated."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Graph, Node, ShapeMismatch, run_graph


def _sum_of(*nodes: Node, last: str) -> Graph:
    return Graph((*nodes, Node("s", "sum", (last,))), "s")


def test_transpose_gradient_with_negative_axes_equals_the_positive_spelling():
    x = np.arange(24.0).reshape(2, 3, 4)
    weights = np.arange(24.0).reshape(4, 2, 3)
    grads = []
    for axes in ([-1, 0, 1], [2, 0, 1]):
        graph = _sum_of(
            Node("x", "input", value=x), Node("t", "transpose", ("x",), {"axes": axes}),
            Node("w", "const", value=weights), Node("m", "mul", ("t", "w")), last="m",
        )
        grads.append(run_graph(graph).grads["x"])
    np.testing.assert_array_equal(grads[0], grads[1])
    np.testing.assert_array_equal(grads[0], np.transpose(weights, (1, 2, 0)))


@pytest.mark.parametrize(("x_shape", "w_shape"), [((0, 1, 3, 3), (1, 1, 2, 2)),
                                                  ((1, 1, 3, 3), (0, 1, 2, 2))])
def test_conv2d_over_no_images_or_no_filters_has_empty_results(x_shape, w_shape):
    graph = _sum_of(
        Node("x", "input", value=np.ones(x_shape)), Node("w", "input", value=np.ones(w_shape)),
        Node("y", "conv2d", ("x", "w")), last="y",
    )
    result = run_graph(graph)
    assert result.value == 0.0
    assert result.grads["x"].shape == x_shape and not result.grads["x"].any()
    assert result.grads["w"].shape == w_shape and not result.grads["w"].any()


def test_conv2d_refuses_an_empty_filter_window():
    graph = Graph((Node("x", "input", value=np.ones((1, 1, 3, 3))),
                   Node("w", "input", value=np.ones((1, 1, 0, 2))),
                   Node("y", "conv2d", ("x", "w"))), "y")
    with pytest.raises(ShapeMismatch) as info:
        run_graph(graph)
    assert info.value.node == "y"


@pytest.mark.parametrize("strategy_value", [1e200, np.array([1e200, -1e200, 0.5])])
def test_gelu_gradient_is_finite_where_tanh_saturates(strategy_value):
    x = np.asarray(strategy_value, dtype=np.float64)
    graph = _sum_of(Node("x", "input", value=x), Node("y", "gelu", ("x",)), last="y")
    grad = np.asarray(run_graph(graph).grads["x"])
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(np.where(np.abs(x) > 1e100, (x > 0) * 1.0, grad), grad)
