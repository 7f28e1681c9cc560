"""The optimisation loop: the seeds' example, a torch loop over the same graph, trajectories,
stop rules, the deadline, non-finite runs, bad requests and the mini-batch order."""

from __future__ import annotations

import math
import time
from itertools import islice

import numpy as np
import pytest
import torch

from engine import DeadlineExceeded, ShapeMismatch
from engine.optim import SGD, Adam, Schedule
from engine.optimize import (
    MAX_TRAJECTORY,
    BadParams,
    PlanObjective,
    StopRule,
    minibatches,
    optimize,
)
from tests.engine.graphs import compiled, graph, node


def seeds_graph():
    """f = (a + b) c at a = 5, b = -3, c = -2."""
    return graph(node("a", "input", value=5), node("b", "input", value=-3),
                 node("c", "input", value=-2), node("s", "add", ["a", "b"]),
                 node("f", "mul", ["s", "c"]), output="f")


def value_at(g, params):
    plan, sources = compiled(g)
    return plan.run({**sources, **params}, forward_only=True).value


def test_the_seeds_example():
    plan, sources = compiled(seeds_graph())
    result = optimize(plan, sources, ["a", "b", "c"], optimizer=SGD(lr=0.01), steps=1,
                      goal="maximize")
    assert result.params == pytest.approx({"a": 4.98, "b": -3.02, "c": -1.98}, rel=1e-15, abs=0)
    assert result.value == pytest.approx(-3.8808, rel=1e-15, abs=0)
    assert round(result.value, 2) == -3.88
    assert (result.steps, result.stopped) == (1, "steps")
    assert result.trajectory[0] == {"step": 0, "value": -4.0, "grad_norm": math.sqrt(12)}
    assert [e["step"] for e in result.trajectory] == [0, 1]
    assert result.trajectory[1]["value"] == result.value


def test_minimize_goes_the_other_way_and_fixed_inputs_stay():
    plan, sources = compiled(seeds_graph())
    result = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=0.01), steps=1)
    assert result.params == pytest.approx({"a": 5.02, "b": -2.98}, rel=1e-15, abs=0)
    assert result.value == pytest.approx(-4.08, rel=1e-15, abs=0)
    assert float(sources["a"]) == 5.0  # the caller's values are not touched


# ---------------------------------------------------------------- against a torch loop


def mlp_graph():
    """A 2-3-1 tanh network on one point, its squared error: params W1 (3, 2), b1 (3,), w2."""
    rng = np.random.default_rng(0)
    return graph(
        node("W1", "input", value=rng.normal(size=(3, 2))), node("b1", "input", value=[0.1] * 3),
        node("w2", "input", value=rng.normal(size=3)), node("x", "const", value=[0.5, -1.5]),
        node("y", "const", value=0.7), node("h", "matmul", ["W1", "x"]),
        node("hb", "add", ["h", "b1"]), node("t", "tanh", ["hb"]),
        node("o", "matmul", ["t", "w2"]), node("e", "sub", ["o", "y"]),
        node("f", "pow", ["e"], exponent=2.0), output="f",
    )


def torch_mlp_loop(make, steps, schedule=None, maximize=False):
    g = mlp_graph()
    values = {n.id: torch.tensor(n.value, dtype=torch.float64) for n in g.nodes
              if n.value is not None}
    params = [values[name].requires_grad_() for name in ("W1", "b1", "w2")]
    optimizer = make(params, maximize=maximize, foreach=False)
    scheduler = schedule(optimizer) if schedule else None
    for _ in range(steps):
        optimizer.zero_grad()
        W1, b1, w2 = params
        loss = ((torch.tanh(W1 @ values["x"] + b1) @ w2 - values["y"]) ** 2)
        loss.backward()
        optimizer.step()
        if scheduler:
            scheduler.step()
    return {name: p.detach().numpy() for name, p in zip(("W1", "b1", "w2"), params, strict=True)}


@pytest.mark.parametrize(("ours", "theirs"), [
    (dict(optimizer=SGD(lr=0.05, momentum=0.9, nesterov=True)),
     dict(make=lambda p, **kw: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, **kw))),
    (dict(optimizer=Adam(lr=0.02, weight_decay=0.01), goal="maximize"),
     dict(make=lambda p, **kw: torch.optim.Adam(p, lr=0.02, weight_decay=0.01, **kw),
          maximize=True)),
    (dict(optimizer=SGD(lr=0.1), lr_schedule=Schedule("linear", 0.1)),
     dict(make=lambda p, **kw: torch.optim.SGD(p, lr=0.1, **kw),
          schedule=lambda o: torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.1, 30))),
    (dict(optimizer=Adam(lr=0.05), lr_schedule=Schedule("cosine", 0.0)),
     dict(make=lambda p, **kw: torch.optim.Adam(p, lr=0.05, **kw),
          schedule=lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 30))),
], ids=["sgd-nesterov", "adam-maximize-wd", "sgd-linear", "adam-cosine"])
def test_the_loop_follows_a_torch_loop(ours, theirs):
    """Forward and backward round differently in torch (MKL's tanh), so 1e-12, not bits."""
    plan, sources = compiled(mlp_graph())
    result = optimize(plan, sources, ["W1", "b1", "w2"], steps=30, **ours)
    expected = torch_mlp_loop(steps=30, **theirs)
    assert result.stopped == "steps"
    for name, value in expected.items():
        np.testing.assert_allclose(result.params[name], value, rtol=1e-12, atol=1e-14)
    assert result.value == pytest.approx(value_at(mlp_graph(), result.params), rel=1e-15)


@pytest.mark.parametrize("strategy", ["scalar", "tensor", "levels"])
def test_every_executor_gives_the_same_run(strategy):
    plan, sources = compiled(seeds_graph(), strategy=strategy)
    result = optimize(plan, sources, ["a", "b", "c"], optimizer=Adam(lr=0.1), steps=20)
    reference_plan, _ = compiled(seeds_graph(), strategy="tensor")
    reference = optimize(reference_plan, sources, ["a", "b", "c"], optimizer=Adam(lr=0.1),
                         steps=20)
    assert result.params == reference.params
    assert result.trajectory == reference.trajectory


# ---------------------------------------------------------------- trajectory


def square_graph(start=4.0):
    """f = (a - 3)^2 + b^2, minimum 0 at a = 3, b = 0."""
    return graph(node("a", "input", value=start), node("b", "input", value=1.0),
                 node("d", "add_const", ["a"], c=-3.0), node("d2", "pow", ["d"], exponent=2.0),
                 node("b2", "mul", ["b", "b"]), node("f", "add", ["d2", "b2"]), output="f")


def test_trajectory_every_k_and_the_final_step():
    plan, sources = compiled(square_graph())
    seen = []
    result = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=0.1), steps=10,
                      record_every=3, on_record=seen.append)
    assert [e["step"] for e in result.trajectory] == [0, 3, 6, 9, 10]
    assert seen == result.trajectory
    first = result.trajectory[0]
    assert first["value"] == 2.0 and first["grad_norm"] == pytest.approx(math.sqrt(8))
    for entry in result.trajectory:
        assert entry["grad_norm"] == pytest.approx(2 * math.sqrt(entry["value"]), rel=1e-12)
    assert result.value == result.trajectory[-1]["value"]
    assert result.value == value_at(square_graph(), result.params)


def test_trajectory_is_capped():
    plan, sources = compiled(square_graph())
    steps = MAX_TRAJECTORY + 50
    result = optimize(plan, sources, ["a"], optimizer=SGD(lr=1e-6), steps=steps)
    assert len(result.trajectory) == MAX_TRAJECTORY
    assert result.trajectory[-2]["step"] == MAX_TRAJECTORY - 2
    assert result.trajectory[-1]["step"] == steps == result.steps


def test_zero_steps_evaluates_the_start():
    plan, sources = compiled(square_graph())
    result = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=0.1), steps=0)
    assert (result.steps, result.stopped, result.value) == (0, "steps", 2.0)
    assert result.params == {"a": 4.0, "b": 1.0}


# ---------------------------------------------------------------- stop rules


def test_grad_norm_below_stops_before_the_update():
    plan, sources = compiled(square_graph())
    result = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=0.1), steps=1000,
                      stop=StopRule(grad_norm_below=1e-3))
    assert result.stopped == "grad_norm"
    assert 0 < result.steps < 1000
    last, before = result.trajectory[-1], result.trajectory[-2]
    assert last["step"] == result.steps and before["step"] == result.steps - 1
    assert last["grad_norm"] < 1e-3 <= before["grad_norm"]
    assert result.value == value_at(square_graph(), result.params)


@pytest.mark.parametrize(("stop", "goal"), [
    (StopRule(value_below=0.5), "minimize"),
    (StopRule(value_above=10.0), "maximize"),
])
def test_value_rules(stop, goal):
    plan, sources = compiled(square_graph())
    result = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=0.05), steps=500,
                      goal=goal, stop=stop)
    assert result.stopped == "value"
    values = [e["value"] for e in result.trajectory]
    holds = (lambda v: v < 0.5) if goal == "minimize" else (lambda v: v > 10.0)
    assert holds(values[-1]) and not any(map(holds, values[:-1]))


def test_a_rule_holding_at_the_start_does_no_update():
    plan, sources = compiled(square_graph())
    result = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=0.1), steps=5,
                      stop=StopRule(value_above=1.0))
    assert (result.steps, result.stopped, result.params) == (0, "value", {"a": 4.0, "b": 1.0})


# ---------------------------------------------------------------- deadline and non-finite


def test_deadline_answers_what_was_reached():
    plan, sources = compiled(square_graph())
    result = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=1e-9), steps=10**9,
                      record_every=10**6, deadline=time.monotonic() + 0.2)
    assert result.stopped == "deadline"
    assert 0 < result.steps < 10**9
    assert result.trajectory[-1]["step"] == result.steps
    assert result.value == value_at(square_graph(), result.params)


def test_deadline_inside_an_evaluation_steps_back():
    """An evaluation cut by the deadline leaves the run at the params evaluated before it."""
    plan, sources = compiled(square_graph())

    def objective(vector):
        inner = PlanObjective(plan, sources, vector)

        def evaluate(step):
            if step == 4:
                raise DeadlineExceeded("the computation ran past its time limit")
            return inner(step)
        return evaluate

    reference = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=0.1), steps=3)
    result = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=0.1), steps=10,
                      objective=objective)
    assert (result.stopped, result.steps) == ("deadline", 3)
    assert result.params == reference.params and result.value == reference.value


def test_a_deadline_before_the_first_evaluation_raises():
    plan, sources = compiled(square_graph())
    with pytest.raises(DeadlineExceeded):
        optimize(plan, sources, ["a"], optimizer=SGD(lr=0.1), steps=5,
                 deadline=time.monotonic() - 1)


def log_graph(start):
    return graph(node("a", "input", value=start), node("f", "log", ["a"]), output="f")


def test_nonfinite_stops_at_the_last_finite_step():
    """a -= 1/a from 3: 2.67, 2.29, 1.86, 1.32, 0.56, then negative, and log of it is NaN."""
    plan, sources = compiled(log_graph(3.0))
    result = optimize(plan, sources, ["a"], optimizer=SGD(lr=1.0), steps=100)
    assert (result.stopped, result.steps) == ("nonfinite", 5)
    a = 3.0
    for _ in range(5):
        a = a - 1 / a
    assert result.params["a"] == pytest.approx(a, rel=1e-15, abs=0)
    assert result.value == pytest.approx(math.log(a), rel=1e-15, abs=0)
    assert result.trajectory[-1] == {"step": 5, "value": result.value,
                                     "grad_norm": pytest.approx(1 / a)}


def test_nonfinite_at_the_start():
    plan, sources = compiled(log_graph(0.0))
    result = optimize(plan, sources, ["a"], optimizer=SGD(lr=1.0), steps=10)
    assert (result.stopped, result.steps, result.params) == ("nonfinite", 0, {"a": 0.0})
    assert result.value == -math.inf
    assert len(result.trajectory) == 1


def test_a_gradient_norm_past_float64_stops_the_run_without_a_warning():
    """Each gradient is finite (1e200) but their squared norm is not: inf, and the run stops
    (the suite turns warnings into errors, so an unguarded overflow would fail here)."""
    plan, sources = compiled(graph(
        node("a", "input", value=1.0), node("b", "input", value=1.0),
        node("c", "const", value=1e200), node("p", "mul", ["a", "c"]),
        node("q", "mul", ["b", "c"]), node("f", "add", ["p", "q"]), output="f"))
    result = optimize(plan, sources, ["a", "b"], optimizer=SGD(lr=1.0), steps=3)
    assert (result.stopped, result.steps, result.value) == ("nonfinite", 0, 2e200)


# ---------------------------------------------------------------- bad requests


def test_params_must_be_input_nodes():
    plan, sources = compiled(seeds_graph())
    with pytest.raises(BadParams) as caught:
        optimize(plan, sources, ["a", "s"], optimizer=SGD(lr=0.1), steps=1)
    assert caught.value.node == "s" and caught.value.code == "validation_error"
    assert "params" in caught.value.details
    with pytest.raises(BadParams) as twice:
        optimize(plan, sources, ["a", "b", "a"], optimizer=SGD(lr=0.1), steps=1)
    assert twice.value.node == "a"
    with pytest.raises(BadParams):
        optimize(plan, sources, [], optimizer=SGD(lr=0.1), steps=1)
    with pytest.raises(BadParams) as unknown:  # a field naming no node: the field's error
        optimize(plan, sources, ["zz"], optimizer=SGD(lr=0.1), steps=1)
    assert unknown.value.node == "zz" and "params" in unknown.value.details


def test_the_output_must_be_a_scalar():
    g = graph(node("w", "input", value=[1.0, 2.0]), node("f", "tanh", ["w"]), output="f")
    plan, sources = compiled(g)
    with pytest.raises(ShapeMismatch) as caught:
        optimize(plan, sources, ["w"], optimizer=SGD(lr=0.1), steps=1)
    assert caught.value.node == "f"


# ---------------------------------------------------------------- mini-batch order


def test_minibatches_are_consecutive_slices_of_seeded_permutations():
    rng = np.random.default_rng(7)
    first, second = rng.permutation(10), rng.permutation(10)
    batches = list(islice(minibatches(10, 4, shuffle_seed=7), 6))
    expected = [first[0:4], first[4:8], first[8:10], second[0:4], second[4:8], second[8:10]]
    for got, want in zip(batches, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_minibatches_cover_every_point_each_epoch_and_repeat_by_seed():
    batches = list(islice(minibatches(7, 3, shuffle_seed=1), 9))
    for epoch in range(3):
        assert sorted(np.concatenate(batches[3 * epoch : 3 * epoch + 3])) == list(range(7))
    again = list(islice(minibatches(7, 3, shuffle_seed=1), 9))
    other = list(islice(minibatches(7, 3, shuffle_seed=2), 9))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other, strict=True))
    with pytest.raises(ValueError):
        next(minibatches(5, 0))
