"""DataSetObjective: the mean over a data set (or each step's mini-batch) of a batched plan's
output, against a loop over the points of the unbatched plan; and a whole run over a data set
against the same run written as one mean-loss graph."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from engine import bind_sources, compile_plan
from engine.optim import SGD, Adam
from engine.optimize import DataSetObjective, ParamVector, minibatches, optimize
from tests.engine.graphs import graph, node

RNG = np.random.default_rng(5)
X = RNG.normal(size=(9, 2))
Y = np.sign(X[:, 0] - X[:, 1])


def hinge_graph():
    """One point's loss: relu(1 - y * (w . x + b)) + 0.01 * (w . w), w shared (2,), b shared."""
    return graph(
        node("x", "input", value=[0.0, 0.0]), node("y", "input", value=0.0),
        node("w", "input", value=[0.3, -0.2]), node("b", "input", value=0.1),
        node("wx", "matmul", ["w", "x"]), node("s", "add", ["wx", "b"]),
        node("ys", "mul", ["y", "s"]), node("m", "scale", ["ys"], a=-1.0),
        node("h", "add_const", ["m"], c=1.0), node("r", "relu", ["h"]),
        node("ww", "matmul", ["w", "w"]), node("l2", "scale", ["ww"], a=0.01),
        node("f", "add", ["r", "l2"]), output="f",
    )


def batched_plan():
    g = hinge_graph()
    sources = bind_sources(g, {"x": X, "y": Y})
    shapes = {k: v.shape[1:] if k in ("x", "y") else v.shape for k, v in sources.items()}
    return compile_plan(g, shapes, batched=["x", "y"]), sources


def point_by_point(points):
    """The mean over `points` of the unbatched plan's value and (w, b) gradients."""
    g = hinge_graph()
    sources = bind_sources(g)
    plan = compile_plan(g, {k: v.shape for k, v in sources.items()})
    runs = [plan.run({**sources, "x": X[k], "y": Y[k]}, wrt=["w", "b"]) for k in points]
    value = np.mean([run.value for run in runs])
    grads = [np.mean([run.grads[name] for run in runs], axis=0) for name in ("w", "b")]
    return value, np.concatenate([np.ravel(grads[0]), np.ravel(grads[1])])


def test_every_point_at_each_step_is_the_mean_of_a_loop_over_points():
    plan, sources = batched_plan()
    params = ParamVector(sources, ["w", "b"])
    objective = DataSetObjective(plan, sources, params, {"x": X, "y": Y})
    value, grad = objective(0)
    want_value, want_grad = point_by_point(range(len(X)))
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12)


def test_mini_batches_follow_the_seeded_shuffle():
    plan, sources = batched_plan()
    params = ParamVector(sources, ["w", "b"])
    objective = DataSetObjective(plan, sources, params, {"x": X, "y": Y}, batch_size=4,
                                 shuffle_seed=3)
    for k, chosen in enumerate(islice(minibatches(len(X), 4, shuffle_seed=3), 5)):
        value, grad = objective(k)
        want_value, want_grad = point_by_point(chosen)
        assert value == pytest.approx(want_value, rel=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12)


def test_a_batch_size_of_every_point_is_the_whole_set_in_order():
    plan, sources = batched_plan()
    params = ParamVector(sources, ["w", "b"])
    whole = DataSetObjective(plan, sources, params, {"x": X, "y": Y})(0)
    at_least_all = DataSetObjective(plan, sources, params, {"x": X, "y": Y}, batch_size=20)(0)
    assert whole[0] == at_least_all[0]
    np.testing.assert_array_equal(whole[1], at_least_all[1])


@pytest.mark.parametrize("optimizer", [SGD(lr=0.1, momentum=0.9), Adam(lr=0.05)])
def test_a_run_over_a_data_set_is_the_run_of_its_mean_loss(optimizer):
    plan, sources = batched_plan()
    data = {"x": X, "y": Y}
    result = optimize(plan, sources, ["w", "b"], optimizer=optimizer, steps=30,
                      objective=lambda params: DataSetObjective(plan, sources, params, data))
    mean_graph = _mean_loss_graph()
    mean_sources = bind_sources(mean_graph)
    mean_plan = compile_plan(mean_graph, {k: v.shape for k, v in mean_sources.items()})
    expected = optimize(mean_plan, mean_sources, ["w", "b"], optimizer=optimizer, steps=30)
    assert result.value == pytest.approx(expected.value, rel=1e-10)
    np.testing.assert_allclose(result.params["w"], expected.params["w"], rtol=1e-10)
    assert result.params["b"] == pytest.approx(expected.params["b"], rel=1e-10)
    assert result.value < result.trajectory[0]["value"]


def _mean_loss_graph():
    """The hinge loss written out over the 9 points as constants, averaged."""
    nodes = [node("w", "input", value=[0.3, -0.2]), node("b", "input", value=0.1),
             node("ww", "matmul", ["w", "w"]), node("l2", "scale", ["ww"], a=0.01)]
    terms = []
    for k in range(len(X)):
        nodes += [node(f"x{k}", "const", value=X[k]), node(f"y{k}", "const", value=Y[k]),
                  node(f"wx{k}", "matmul", ["w", f"x{k}"]), node(f"s{k}", "add", [f"wx{k}", "b"]),
                  node(f"ys{k}", "mul", [f"y{k}", f"s{k}"]),
                  node(f"m{k}", "scale", [f"ys{k}"], a=-1.0),
                  node(f"h{k}", "add_const", [f"m{k}"], c=1.0), node(f"r{k}", "relu", [f"h{k}"]),
                  node(f"f{k}", "add", [f"r{k}", "l2"])]
        terms.append(f"f{k}")
    nodes += [node("total", "add", terms), node("mean", "scale", ["total"], a=1 / len(X))]
    return graph(*nodes, output="mean")
