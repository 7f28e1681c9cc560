"""The SDK's client.optimize against the real app: the seeds' example, on_step fed by the
event stream (sync and async clients), an MLP trained on a data set in mini-batches."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule_client as cr

RNG = np.random.default_rng(11)


def test_the_seeds_example_one_sgd_step_uphill(sdk):
    a, b, c = cr.input("a", 5.0), cr.input("b", -3.0), cr.input("c", -2.0)
    f = (a + b) * c
    result = sdk.optimize(f, params=[a, b, c], optimizer="sgd", lr=0.01, steps=1,
                          goal="maximize")
    assert result.params[a] == pytest.approx(4.98, rel=1e-12)
    assert result.params["b"] == pytest.approx(-3.02, rel=1e-12)
    assert result.params[c] == pytest.approx(-1.98, rel=1e-12)
    assert result.value == pytest.approx(-3.8808, rel=1e-12)
    assert (result.steps, result.stopped) == (1, "steps")
    assert result.trajectory[0] == cr.Step(0, -4.0, pytest.approx(12**0.5, rel=1e-12))


def test_on_step_follows_the_stream_of_the_real_app(sdk):
    x = cr.input("x", 3.0)
    steps = []
    result = sdk.optimize((x - 1) ** 2, params=[x], optimizer="adam", lr=0.1, steps=40,
                          record_every=10, on_step=steps.append)
    assert [s.step for s in steps] == [0, 10, 20, 30, 40]
    assert steps == result.trajectory
    assert result.value < 4.0
    assert sdk.evaluate((x - 1) ** 2, inputs=result.params).value == pytest.approx(result.value)


def test_an_mlp_trains_on_a_data_set_in_one_call(sdk):
    from chainrule_client import nn

    model = nn.MLP(2, [8, 1], seed=3)
    x0, x1, y = cr.input("x0"), cr.input("x1"), cr.input("y")
    loss = (1 + -y * model([x0, x1])).relu()
    points = RNG.normal(size=(32, 2))
    labels = np.where(points[:, 0] + points[:, 1] > 0, 1.0, -1.0)
    data = {x0: points[:, 0], x1: points[:, 1], y: labels}
    result = sdk.optimize(loss, params=model.parameters(), optimizer="sgd", lr=0.1,
                          momentum=0.9, steps=100, batch=data, batch_size=16,
                          lr_schedule={"name": "linear", "end": 0.1})
    assert result.trajectory[-1].value < result.trajectory[0].value
    scores = sdk.evaluate(model([x0, x1]), inputs=result.params,
                          batch={x0: points[:, 0], x1: points[:, 1]}).value
    assert np.mean(np.sign(scores) == labels) >= 0.9


def test_the_async_client_optimises_with_a_stream(live_url):
    import asyncio

    x = cr.input("x", -2.0)
    steps = []

    async def main():
        async with cr.AsyncClient(live_url) as client:
            return await client.optimize(x * x, params=[x], optimizer="sgd", lr=0.25, steps=3,
                                         on_step=steps.append)

    result = asyncio.run(main())
    assert [s.value for s in steps] == [4.0, 1.0, 0.25, 0.0625]
    assert result.params[x] == -0.25
