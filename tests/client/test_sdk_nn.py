"""chainrule_client.nn against the real app: a network built from expressions answers the
values and gradients micrograd's own network answers with the same weights."""

from __future__ import annotations

import random

import pytest

import chainrule_client as cr
from chainrule_client import nn

POINTS = [((0.5, -1.2), 1.0), ((-0.3, 0.8), -1.0), ((1.5, 0.2), 1.0), ((-1.0, -0.7), -1.0),
          ((0.1, 0.0), 1.0), ((2.0, -2.0), -1.0)]


def svm_loss(model, points, alpha=1e-4):
    """micrograd's demo loss: mean max-margin hinge over the points plus alpha * L2."""
    losses = [(1 + -label * model(list(x))).relu() for x, label in points]
    data_loss = sum(losses) * (1.0 / len(losses))
    return data_loss + alpha * sum(p * p for p in model.parameters())


def test_the_modules_name_their_parameters_and_draw_reproducibly():
    model = nn.MLP(2, [3, 1], seed=4)
    params = model.parameters()
    assert len(params) == 3 * (2 + 1) + (3 + 1)
    assert [p.id for p in params[:4]] == ["mlp.l0.n0.w0", "mlp.l0.n0.w1", "mlp.l0.n0.b",
                                          "mlp.l0.n1.w0"]
    assert all(p.op == "input" and -1 <= p.value <= 1 for p in params)
    assert [p.value for p in nn.MLP(2, [3, 1], seed=4).parameters()] == [p.value for p in params]
    assert repr(model) == "MLP(2 -> 3 -> 1)"
    assert repr(model.layers[0]) == "Layer(3 x Neuron(2 inputs, relu))"
    neuron = nn.Neuron(3, nonlin=False, name="n", rng=random.Random(0))
    assert [p.id for p in neuron.parameters()] == ["n.w0", "n.w1", "n.w2", "n.b"]
    assert cr.to_graph(neuron([1.0, 2.0, 3.0]))["nodes"][-1]["op"] == "add"
    assert isinstance(nn.Layer(2, 4)([1.0, 2.0]), list)
    with pytest.raises(ValueError):
        neuron([1.0])


def test_an_mlp_matches_micrograd_value_and_gradients(sdk):
    from micrograd import nn as micro

    model = nn.MLP(2, [8, 8, 1], seed=1)
    twin = micro.MLP(2, [8, 8, 1])
    for mine, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        theirs.data = mine.value
    loss = svm_loss(model, POINTS)
    result = sdk.gradients(loss, wrt=model.parameters())
    expected = svm_loss(twin, POINTS)
    expected.backward()
    assert result.value == pytest.approx(expected.data, rel=1e-12)
    for mine, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        assert result.grad(mine) == pytest.approx(theirs.grad, rel=1e-9, abs=1e-15)


def test_inputs_as_nodes_and_new_parameter_values_as_inputs(sdk):
    model = nn.MLP(2, [4, 1], seed=2)
    x = [cr.input("x0", 0.5), cr.input("x1", -0.5)]
    score = model(x)
    first = sdk.evaluate(score, wrt=[])
    shifted = {p.id: p.value + 0.1 for p in model.parameters()}
    second = sdk.evaluate(score, inputs={**shifted, "x0": 0.5}, wrt=[])
    assert first.value != second.value
    again = sdk.gradients(score, inputs={p: p.value for p in model.parameters()})
    assert again.value == first.value
    assert set(again.grads) >= {p.id for p in model.parameters()}
