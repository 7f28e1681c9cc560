"""The SDK's client.optimize against the real app: the seeds' example, on_step fed by the
event stream (sync and async clients)."""

from __future__ import annotations

import pytest

import chainrule_client as cr


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
