"""The SDK's version 1.1 features against the real app (needs the server side of issues 11, 12,
14 and 16). Each op of catalog 1.1: the value numpy gives and a passing gradcheck; the client
README's small CNN as written."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
import pytest

import chainrule_client as cr

README = Path(__file__).resolve().parents[2] / "client" / "README.md"

RNG = np.random.default_rng(11)
A = RNG.normal(size=(3, 4))  # no ties, no zeros: every op is differentiable here
B = RNG.normal(size=(3, 4))
IMAGES = RNG.normal(size=(2, 3, 8, 8))
FILTERS = RNG.normal(size=(4, 3, 3, 3))


def softplus(a):
    return np.logaddexp(0.0, a)


def gelu(a):
    return a / 2 * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))


def logsumexp(a, axis=None, keepdims=False):
    top = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def cross_entropy(logits, targets):
    log_probs = logits - logsumexp(logits, axis=1, keepdims=True)
    return -np.mean(log_probs[np.arange(len(targets)), targets])


def conv2d(x, w, stride=1, padding=0):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    return np.einsum("nchwij,fcij->nfhw", windows, w)


def max_pool2d(x, size):
    n, c, h, w = x.shape
    h, w = h // size, w // size
    x = x[:, :, : h * size, : w * size].reshape(n, c, h, size, w, size)
    return x.max(axis=(3, 5))


a, b = cr.input("a", A), cr.input("b", B)
images, filters = cr.input("images", IMAGES), cr.input("filters", FILTERS)

# (name, expression, numpy value)
OPS = [
    ("sin", lambda: a.sin(), np.sin(A)),
    ("cos", lambda: a.cos(), np.cos(A)),
    ("log1p", lambda: a.abs().log1p(), np.log1p(np.abs(A))),
    ("softplus", lambda: a.softplus(), softplus(A)),
    ("gelu", lambda: a.gelu(), gelu(A)),
    ("leaky_relu", lambda: a.leaky_relu(0.1), np.where(A > 0, A, 0.1 * A)),
    ("clip", lambda: a.clip(-0.5, 0.5), np.clip(A, -0.5, 0.5)),
    ("amax", lambda: a.amax(axis=1), A.max(axis=1)),
    ("amin", lambda: a.amin(), A.min()),
    ("logsumexp", lambda: a.logsumexp(axis=0, keepdims=True), logsumexp(A, 0, True)),
    ("var", lambda: a.var(axis=1, ddof=1), A.var(axis=1, ddof=1)),
    ("concat", lambda: cr.concat([a, b], axis=1), np.concatenate([A, B], axis=1)),
    ("stack", lambda: cr.stack([a, b]), np.stack([A, B])),
    ("slice", lambda: a[1:3, ::2], A[1:3, ::2]),
    ("slice int", lambda: a[-1], A[-1]),
    ("take", lambda: a.take([2, 0, 2]), A.take([2, 0, 2], axis=0)),
    ("broadcast_to", lambda: a[0].broadcast_to((2, 4)), np.broadcast_to(A[0], (2, 4))),
    ("cross_entropy", lambda: cr.cross_entropy(a, [0, 3, 1]), cross_entropy(A, [0, 3, 1])),
    ("conv2d", lambda: cr.conv2d(images, filters, stride=2, padding=1),
     conv2d(IMAGES, FILTERS, 2, 1)),
    ("max_pool2d", lambda: cr.max_pool2d(images, 3), max_pool2d(IMAGES, 3)),
]


@pytest.mark.parametrize(("name", "build", "expected"), OPS, ids=[op[0] for op in OPS])
def test_each_new_op_evaluates_as_numpy_and_passes_gradcheck(sdk, name, build, expected):
    expr = build()
    value = sdk.evaluate(expr, wrt=[]).value
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)
    weights = np.linspace(-1.0, 1.0, np.size(expected)).reshape(np.shape(expected))
    check = sdk.gradcheck((expr * weights).sum())
    assert check.passed, check.checks


def readme_cnn() -> str:
    section = README.read_text().split("## A small CNN", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the client README has no python block after its CNN heading"
    return match.group(1)


def test_the_readme_cnn_runs_against_the_service(live_url, monkeypatch, capsys):
    monkeypatch.setenv("CHAINRULE_URL", live_url)
    scope: dict = {"__name__": "readme"}
    exec(compile(readme_cnn(), str(README), "exec"), scope)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 1, 6, 6))
    w = 0.3 * rng.normal(size=(4, 1, 3, 3))
    v = 0.3 * rng.normal(size=(16, 3))
    expected = cross_entropy(
        max_pool2d(np.maximum(conv2d(x, w, padding=1), 0), 3).reshape(2, 16) @ v, [0, 2]
    )
    assert capsys.readouterr().out == f"{round(expected, 4)} (4, 1, 3, 3) (16, 3)\n"
    with cr.Client(live_url) as client:
        check = client.gradcheck(scope["loss"], check=[scope["filters"], scope["weights"]])
    assert check.passed


# -------------------------------------------------------------------- batches and Jacobians


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


# -------------------------------------------------------------------- optimisation


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


# -------------------------------------------------------------------- registered graphs


class Recording(httpx.BaseTransport):
    """The real app behind httpx.WSGITransport, with every request's path written down."""

    def __init__(self, app):
        self.inner = httpx.WSGITransport(app=app)
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return self.inner.handle_request(request)


def chain(start: float, length: int = 80) -> tuple[cr.Node, cr.Node]:
    x = cr.input("x", start)
    node = x
    for k in range(length):
        node = (node * 0.99 + k / 100).tanh()
    return x, node


def registered_round_trip(app):
    transport = Recording(app)
    with cr.Client("http://t", transport=transport) as client, cr.Client(
        "http://t", transport=httpx.WSGITransport(app=app), register_graphs=False
    ) as inline:
        x, out = chain(0.5)
        first = client.gradients(out)
        again = client.gradients(out, inputs={x: -0.25})
        _, rebuilt = chain(0.75)
        third = client.gradients(rebuilt)
        plain = inline.gradients(out)
        split = inline.gradients(
            {**cr.to_graph(out), "nodes": [
                {k: v for k, v in e.items() if not (e["op"] == "input" and k == "value")}
                for e in cr.to_graph(out)["nodes"]]},
            inputs={"x": 0.5},
        )
    ids = {path.split("/")[3] for path in transport.paths if path.count("/") == 4}
    assert len(ids) == 1
    assert transport.paths == ["/v1/graphs"] + [f"/v1/graphs/{ids.pop()}/gradients"] * 3
    assert first.values == plain.values and first.grads == plain.grads
    assert first.hash == split.hash
    assert again.grad(x) != first.grad(x) and third.value != first.value
    return transport


def test_a_big_graph_is_registered_once_with_the_embedded_store(app):
    registered_round_trip(app)


def test_registration_with_redis_and_expiry(make_app, redis_server):
    app = make_app({"REDIS_URL": redis_server.url})
    transport = registered_round_trip(app)
    _, out = chain(0.5)
    with cr.Client("http://t", transport=transport) as client:
        before = len(transport.paths)
        value = client.evaluate(out).value  # a new client: registers (the same id) first
        redis_server.client().flushall()  # every registered graph gone, as after its TTL
        assert client.evaluate(out).value == value
    graph_path = transport.paths[before + 1].rsplit("/", 1)[0]
    assert transport.paths[before:] == [
        "/v1/graphs", f"{graph_path}/evaluate",
        f"{graph_path}/evaluate", "/v1/graphs", f"{graph_path}/evaluate",
    ]
