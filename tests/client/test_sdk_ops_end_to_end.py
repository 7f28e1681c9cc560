"""The SDK's catalog 1.1 ops against the real app (issue 14): each new op evaluates to the value
numpy gives and passes gradcheck; the client README's small CNN runs as written.

Taken from the SDK's held 1.1 end-to-end tests (their op part), unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path

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
