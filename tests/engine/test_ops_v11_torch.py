"""Every op of catalog 1.1 against PyTorch (CPU, float64): the same forward values and the same
gradients for a random seed, including torch's conventions at the kinks it shares with us
(leaky_relu at 0, clip at its bounds, ties of amax/amin)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import compile_plan
from tests.engine.graphs import graph, node

V11_OPS = {"sin", "cos", "log1p", "softplus", "gelu", "leaky_relu", "clip", "amax", "amin",
           "logsumexp", "var", "concat", "stack", "slice", "take", "broadcast_to",
           "cross_entropy", "conv2d", "max_pool2d"}


def _ties(x: np.ndarray) -> np.ndarray:
    """Values rounded to halves: many ties, which torch splits as we do."""
    return np.round(x * 2) / 2


# (op, attrs, input values (numpy), the torch function of the input tensors)
CASES = [
    ("sin", {}, [(3, 4)], torch.sin),
    ("cos", {}, [(3, 4)], torch.cos),
    ("log1p", {}, [("positive", (3, 4))], torch.log1p),
    ("softplus", {}, [(3, 4)], F.softplus),
    ("gelu", {}, [(2, 5)], lambda x: F.gelu(x, approximate="tanh")),
    ("leaky_relu", {}, [(3, 4)], F.leaky_relu),
    ("leaky_relu", {"slope": 0.3}, [("zeros", (2, 3))], lambda x: F.leaky_relu(x, 0.3)),
    ("clip", {"lo": -0.5, "hi": 0.5}, [("ties", (4, 4))], lambda x: x.clamp(-0.5, 0.5)),
    ("clip", {"lo": 0.0}, [(3, 4)], lambda x: x.clamp(min=0.0)),
    ("amax", {"axis": 1}, [(3, 4)], lambda x: x.amax(1)),
    ("amax", {}, [("ties", (4, 5))], torch.amax),
    ("amin", {"axis": [0, 2], "keepdims": True}, [("ties", (3, 2, 4))],
     lambda x: x.amin((0, 2), keepdim=True)),
    ("logsumexp", {"axis": -1}, [(3, 4)], lambda x: x.logsumexp(-1)),
    ("logsumexp", {}, [("large", (3, 4))], lambda x: x.logsumexp((0, 1))),
    ("var", {}, [(3, 4)], lambda x: x.var(correction=0)),
    ("var", {"axis": 0, "ddof": 1, "keepdims": True}, [(5, 3)],
     lambda x: x.var(0, correction=1, keepdim=True)),
    ("concat", {"axis": 1}, [(3, 4), (3, 2)], lambda a, b: torch.cat([a, b], 1)),
    ("stack", {"axis": -1}, [(3, 4), (3, 4), (3, 4)], lambda *xs: torch.stack(xs, -1)),
    ("slice", {"slices": [[1, 3], [None, None, 2]]}, [(4, 5)], lambda x: x[1:3, ::2]),
    ("slice", {"slices": [-1, [None, -1]]}, [(4, 5, 2)], lambda x: x[-1, :-1]),
    ("take", {"indices": [[2, 0], [2, 2]]}, [(3, 4)],
     lambda x: x[torch.tensor([[2, 0], [2, 2]])]),
    ("take", {"indices": [3, 1, 3, -4], "axis": 1}, [(3, 4)],
     lambda x: torch.index_select(x, 1, torch.tensor([3, 1, 3, 0]))),
    ("broadcast_to", {"shape": [2, 3, 4]}, [(3, 1)], lambda x: x.broadcast_to((2, 3, 4))),
    ("cross_entropy", {"targets": [0, 3, 1]}, [(3, 4)],
     lambda x: F.cross_entropy(x, torch.tensor([0, 3, 1]))),
    ("cross_entropy", {"targets": [2, 2], "reduction": "sum"}, [("large", (2, 3))],
     lambda x: F.cross_entropy(x, torch.tensor([2, 2]), reduction="sum")),
    ("cross_entropy", {"targets": [1, 0, 1], "reduction": "none"}, [(3, 2)],
     lambda x: F.cross_entropy(x, torch.tensor([1, 0, 1]), reduction="none")),
    ("conv2d", {}, [(2, 3, 7, 9), (4, 3, 2, 3)], F.conv2d),
    ("conv2d", {"stride": 2, "padding": 1}, [(2, 3, 8, 8), (4, 3, 3, 3)],
     lambda x, w: F.conv2d(x, w, stride=2, padding=1)),
    ("conv2d", {"stride": 3, "padding": 2}, [(1, 2, 6, 5), (3, 2, 4, 2)],
     lambda x, w: F.conv2d(x, w, stride=3, padding=2)),
    ("conv2d", {"padding": 4, "stride": 2}, [(2, 2, 12, 10), (3, 2, 9, 9)],
     lambda x, w: F.conv2d(x, w, stride=2, padding=4)),
    ("max_pool2d", {"size": 2}, [(2, 3, 8, 8)], lambda x: F.max_pool2d(x, 2)),
    ("max_pool2d", {"size": 9, "stride": 2}, [(2, 2, 13, 12)], lambda x: F.max_pool2d(x, 9, 2)),
    ("max_pool2d", {"size": 3, "stride": 2}, [(2, 2, 9, 8)], lambda x: F.max_pool2d(x, 3, 2)),
    ("max_pool2d", {"size": 2, "stride": 1}, [(1, 2, 5, 6)], lambda x: F.max_pool2d(x, 2, 1)),
]


def _value(rng, spec) -> np.ndarray:
    kind, shape = spec if isinstance(spec[0], str) else ("normal", spec)
    x = rng.normal(size=shape)
    return {"normal": x, "positive": np.abs(x), "ties": _ties(x), "large": 1000 * x,
            "zeros": np.where(np.abs(x) < 0.5, 0.0, x)}[kind]


def test_every_new_op_is_compared_with_torch():
    assert {case[0] for case in CASES} == V11_OPS


@pytest.mark.parametrize(("op", "attrs", "specs", "reference"), CASES,
                         ids=[f"{c[0]}-{k}" for k, c in enumerate(CASES)])
def test_forward_and_backward_agree_with_torch(op, attrs, specs, reference):
    rng = np.random.default_rng(zlib.crc32(f"{op}{attrs}".encode()))
    values = [_value(rng, spec) for spec in specs]
    nodes = [node(f"a{k}", "input", value=v) for k, v in enumerate(values)]
    nodes.append(node("f", op, [f"a{k}" for k in range(len(values))], **attrs))
    g = graph(*nodes, output="f")
    plan = compile_plan(g, {f"a{k}": v.shape for k, v in enumerate(values)})
    seed = rng.normal(size=plan.shape_of("f"))
    ours = plan.run({f"a{k}": v for k, v in enumerate(values)}, seed=seed)

    tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    out = reference(*tensors)
    out.backward(torch.tensor(seed, dtype=torch.float64))

    np.testing.assert_allclose(ours.value, out.detach().numpy(), rtol=1e-12, atol=1e-12)
    for k, tensor in enumerate(tensors):
        np.testing.assert_allclose(ours.grads[f"a{k}"], tensor.grad.numpy(), rtol=1e-10,
                                   atol=1e-12)
