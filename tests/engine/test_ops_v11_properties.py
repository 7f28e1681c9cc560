"""Property tests over catalog 1.1: random DAGs of (2, 3) tensors where each step applies one of
the new ops (with whatever reshaping brings its result back to (2, 3)), mixed with the older
gates; every input's gradient agrees with centred finite differences."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import gradcheck
from tests.engine.graphs import Builder, compiled, random_tensor_dag

UNARY = ("sin", "cos", "softplus", "gelu", "leaky_relu")
REDUCTIONS = ("amax", "amin", "logsumexp", "var")
STEPS = (*UNARY, *REDUCTIONS, "log1p", "clip", "concat", "stack", "slice", "take",
         "broadcast_to", "cross_entropy", "conv2d", "max_pool2d", "mul", "tanh")


def test_the_steps_cover_every_new_op():
    v11 = {"sin", "cos", "log1p", "softplus", "gelu", "leaky_relu", "clip", "amax", "amin",
           "logsumexp", "var", "concat", "stack", "slice", "take", "broadcast_to",
           "cross_entropy", "conv2d", "max_pool2d"}
    assert v11 <= set(STEPS)


def _images_step(draw, add: Builder, a: str, b: str, kind: str) -> str:
    """conv2d and max_pool2d on images made of (2, 3) nodes, back to (2, 3)."""
    if kind == "conv2d" and draw(st.booleans()):
        x = add("reshape", [a], shape=[1, 2, 1, 3])
        w = add("reshape", [b], shape=[3, 2, 1, 1])
        out = add("conv2d", [x, w])  # (1, 3, 1, 3)
        return add("slice", [add("reshape", [out], shape=[3, 3])], slices=[[0, 2]])
    if kind == "conv2d":
        x = add("reshape", [a], shape=[1, 1, 2, 3])
        w = add("reshape", [add("slice", [b], slices=[0, [0, 2]])], shape=[1, 1, 1, 2])
        out = add("conv2d", [x, w], padding=1)  # (1, 1, 4, 4)
        return add("slice", [out], slices=[0, 0, [1, 3], [0, 3]])
    wide = add("reshape", [add("concat", [a, b], axis=1)], shape=[1, 1, 2, 6])
    stride = draw(st.sampled_from([None, 1]))
    pooled = add("max_pool2d", [wide], size=2, stride=stride)  # (1, 1, 1, 3) or (1, 1, 1, 5)
    row = add("slice", [pooled], slices=[0, 0, 0, [0, 3]])
    return add("broadcast_to", [row], shape=[2, 3])


def _step(draw, add: Builder, a: str, b: str) -> str:
    kind = draw(st.sampled_from(STEPS))
    if kind in UNARY or kind == "tanh":
        out = add(kind, [a])
    elif kind == "mul":
        out = add("mul", [a, b])
    elif kind == "log1p":
        out = add("log1p", [add("sigmoid", [a])])
    elif kind == "clip":
        out = add("clip", [a], lo=-0.5, hi=draw(st.sampled_from([0.5, None])))
    elif kind in REDUCTIONS:
        reduced = add(kind, [a], axis=draw(st.sampled_from([0, 1, -1])), keepdims=True)
        out = add("add", [reduced, b])
    elif kind == "concat":
        out = add("slice", [add("concat", [a, b])], slices=[[1, 3]])  # rows 1..2 of (4, 3)
    elif kind == "stack":
        axis = draw(st.sampled_from([0, 1, 2, -1]))
        out = add("var", [add("stack", [a, b, a], axis=axis)], axis=axis)
    elif kind == "slice":
        out = add("slice", [a], slices=[[None, None, -1], [None, None, -1]])
    elif kind == "take":
        out = add("take", [a], indices=[2, 0, 2], axis=1)
    elif kind == "broadcast_to":
        out = add("broadcast_to", [add("amax", [a], axis=0)], shape=[2, 3])
    elif kind == "cross_entropy":
        targets = [draw(st.integers(0, 2)), draw(st.integers(0, 2))]
        losses = add("cross_entropy", [a], targets=targets, reduction="none")
        out = add("add", [add("reshape", [losses], shape=[2, 1]), b])
    else:
        out = _images_step(draw, add, a, b, kind)
    return out


@st.composite
def v11_dags(draw):
    return random_tensor_dag(draw, _step)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(v11_dags())
def test_random_dags_over_the_new_ops_agree_with_finite_differences(g):
    plan, sources = compiled(g)
    for name, outcome in gradcheck(plan, sources, eps=1e-6).items():
        scale = max(1.0, float(np.max(np.abs(outcome.numeric))))
        assert float(np.max(np.abs(outcome.analytic - outcome.numeric))) < 1e-6 * scale, name
