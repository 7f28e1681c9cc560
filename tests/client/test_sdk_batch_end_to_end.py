"""The SDK's batches and Jacobians against the real app (issue 11): a batch answers what separate
requests answer, reduce mean, evaluate over a batch; the Jacobian of softmax, batched and in b64;
the async client alike. Taken from the SDK's held 1.1 end-to-end tests."""

from __future__ import annotations

import numpy as np

import chainrule_client as cr

RNG = np.random.default_rng(11)


def test_a_batch_answers_what_separate_requests_answer(sdk):
    x, w, c = cr.input("x"), cr.input("w", np.array([0.5, -1.0])), cr.input("c", 0.3)
    f = ((w * x).tanh() + c).sum()
    xs = RNG.normal(size=(5, 2))
    batched = sdk.gradients(f, batch={x: xs})
    assert batched.value.shape == (5,)
    assert batched.grad(x).shape == (5, 2) and batched.grad(w).shape == (5, 2)
    for k, point in enumerate(xs):
        single = sdk.gradients(f, inputs={x: point})
        np.testing.assert_allclose(batched.value[k], single.value, rtol=1e-12)
        for node in (x, w, c):
            np.testing.assert_allclose(batched.grad(node)[k], single.grad(node), rtol=1e-12)
    mean = sdk.gradients(f, batch={"x": xs.tolist()}, reduce="mean")
    np.testing.assert_allclose(mean.grad(w), batched.grad(w).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(mean.grad(x), batched.grad(x) / 5, rtol=1e-12)
    evaluated = sdk.evaluate(f, batch={x: xs})
    np.testing.assert_allclose(evaluated.value, batched.value, rtol=1e-12)


def test_the_jacobian_of_softmax(sdk):
    z = cr.input("z", np.array([0.1, -0.4, 2.0]))
    s = z.softmax()
    result = sdk.jacobian(s, wrt=[z])
    p = np.exp(z.value) / np.exp(z.value).sum()
    np.testing.assert_allclose(result.jacobian(z), np.diag(p) - np.outer(p, p), rtol=1e-10)
    np.testing.assert_allclose(result.value, p, rtol=1e-12)
    zs = RNG.normal(size=(4, 3))
    batched = sdk.jacobian(s, wrt=["z"], batch={z: zs}, encoding="b64")
    assert batched.jacobian(z).shape == (4, 3, 3)
    for k, point in enumerate(zs):
        q = np.exp(point) / np.exp(point).sum()
        np.testing.assert_allclose(batched.jacobian(z)[k], np.diag(q) - np.outer(q, q), atol=1e-12)


def test_the_async_client_batches_too(live_url):
    import asyncio

    x, w = cr.input("x"), cr.input("w", 2.0)
    f = w * x * x

    async def main():
        async with cr.AsyncClient(live_url) as client:
            return (
                await client.gradients(f, batch={x: [1.0, 2.0, 3.0]}, reduce="sum"),
                await client.jacobian(f, wrt=[x], batch={x: [1.0, 2.0]}),
            )

    gradients, jacobian = asyncio.run(main())
    assert gradients.grad(x).tolist() == [4.0, 8.0, 12.0]
    assert gradients.grad(w) == 14.0
    assert jacobian.jacobian(x).tolist() == [4.0, 8.0]
