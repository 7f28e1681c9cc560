"""The ops of catalog 1.1 beyond finite differences: the numerics the notes teach (stability at
|x| = 1000, repeated take indices, ties, clip's closed interval), every range check with its code
and node, the CS231n convolution check, and the float kernels against numpy on edge values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import EngineError, Limits, bind_sources, compile_plan, gradcheck, run_graph
from engine.ops import OPS
from tests.engine.graphs import graph, node


def _run(op: str, value, inputs=None, **attrs):
    values = [value] if inputs is None else inputs
    nodes = [node(f"a{k}", "input", value=v) for k, v in enumerate(values)]
    nodes.append(node("f", op, [f"a{k}" for k in range(len(values))], **attrs))
    return run_graph(graph(*nodes, output="f"))


# ---------------------------------------------------------------- numerics


@pytest.mark.parametrize("x", [1000.0, -1000.0])
def test_softplus_is_stable_at_a_thousand(x):
    result = _run("softplus", np.array([x, 0.0]))
    assert result.value.tolist() == [max(x, 0.0), math.log(2.0)]
    assert result.grads["a0"].tolist() == [1.0 if x > 0 else 0.0, 0.5]


def test_logsumexp_is_stable_at_a_thousand():
    x = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]])
    result = _run("logsumexp", x, axis=1)
    np.testing.assert_allclose(result.value, [1000.0 + math.log(2), -1000.0 + math.log(2)],
                               rtol=1e-15)
    np.testing.assert_allclose(result.grads["a0"], np.full((2, 2), 0.5), rtol=1e-15)


def test_logsumexp_of_infinities_is_what_torch_answers():
    x = np.array([np.inf, 1.0])
    g = graph(node("x", "input", value=x), node("f", "logsumexp", ["x"]), output="f")
    assert run_graph(g, allow_nonfinite=True).value == np.inf


def test_cross_entropy_is_stable_at_a_thousand():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]])
    result = _run("cross_entropy", logits, targets=[1, 2], reduction="none")
    np.testing.assert_allclose(result.value, [2000.0, math.log(2)], rtol=1e-15)
    np.testing.assert_allclose(
        result.grads["a0"], [[1.0, -1.0, 0.0], [0.0, 0.5, -0.5]], atol=1e-300)


def test_cross_entropy_reductions_scale_the_gradient():
    logits = np.random.default_rng(1).normal(size=(4, 3))
    per_row = _run("cross_entropy", logits, targets=[0, 1, 2, 0], reduction="none")
    total = _run("cross_entropy", logits, targets=[0, 1, 2, 0], reduction="sum")
    mean = _run("cross_entropy", logits, targets=[0, 1, 2, 0])
    assert total.value == pytest.approx(per_row.value.sum(), rel=1e-15)
    assert mean.value == pytest.approx(per_row.value.mean(), rel=1e-15)
    np.testing.assert_allclose(mean.grads["a0"] * 4, total.grads["a0"], rtol=1e-15)


def test_repeated_take_indices_add_their_gradients():
    table = np.arange(12.0).reshape(4, 3)
    result = _run("take", table, indices=[[1, 3], [1, 1]])
    assert result.value.shape == (2, 2, 3)
    assert result.grads["a0"].tolist() == [[0.0] * 3, [3.0] * 3, [0.0] * 3, [1.0] * 3]
    negative = _run("take", table, indices=[-1, 3], axis=0)
    assert negative.grads["a0"][3].tolist() == [2.0] * 3


def test_take_of_one_index_drops_the_axis():
    result = _run("take", np.arange(6.0).reshape(2, 3), indices=2, axis=1)
    assert result.value.tolist() == [2.0, 5.0]
    assert result.grads["a0"].tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]


@pytest.mark.parametrize(("op", "axis", "expected"), [
    ("amax", None, [[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]),
    ("amax", 1, [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]),
    ("amin", 0, [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]),
])
def test_amax_and_amin_split_ties_equally(op, axis, expected):
    x = np.array([[3.0, 1.0, 3.0], [-2.0, 2.0, -2.0]])
    assert _run(op, x, axis=axis).grads["a0"].tolist() == expected


def test_max_pool2d_splits_ties_and_overlapping_windows_add():
    x = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).reshape(1, 1, 3, 3)
    tied = _run("max_pool2d", x, size=2)  # one window, four tied elements
    assert tied.value.tolist() == [[[[1.0]]]]
    assert tied.grads["a0"][0, 0].tolist() == [[0.25, 0.25, 0.0], [0.25, 0.25, 0.0],
                                               [0.0, 0.0, 0.0]]
    peak = np.zeros((1, 1, 3, 3))
    peak[0, 0, 1, 1] = 5.0  # the max of all four overlapping windows
    overlapping = _run("max_pool2d", peak, size=2, stride=1)
    assert overlapping.value.tolist() == [[[[5.0, 5.0], [5.0, 5.0]]]]
    assert overlapping.grads["a0"][0, 0, 1, 1] == 4.0
    assert overlapping.grads["a0"].sum() == 4.0


def test_large_pooling_windows_split_ties_and_add_overlaps_too():
    flat = _run("max_pool2d", np.ones((1, 2, 9, 10)), size=9)  # 81 elements: the one-go path
    np.testing.assert_allclose(flat.grads["a0"][..., :9], 1 / 81, rtol=1e-15)
    assert flat.grads["a0"][..., 9].tolist() == [[[0.0] * 9] * 2]
    peak = np.zeros((1, 1, 10, 10))
    peak[0, 0, 5, 5] = 1.0  # in all four 9x9 windows of stride 1
    assert _run("max_pool2d", peak, size=9, stride=1).grads["a0"][0, 0, 5, 5] == 4.0


def test_max_pool2d_drops_what_does_not_fill_a_window():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    result = _run("max_pool2d", x, size=2)
    assert result.value.tolist() == [[[[6.0, 8.0], [16.0, 18.0]]]]
    assert result.grads["a0"][0, 0, 4].tolist() == [0.0] * 5
    assert result.grads["a0"][0, 0, :, 4].tolist() == [0.0] * 5


def test_clip_passes_the_gradient_on_its_closed_interval():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    result = _run("clip", x, lo=-1.0, hi=1.0)
    assert result.value.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]
    assert result.grads["a0"].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert _run("clip", x, hi=0.0).grads["a0"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    unbounded = _run("clip", x)
    assert unbounded.value.tolist() == x.tolist() and unbounded.grads["a0"].tolist() == [1.0] * 5


def test_gelu_is_the_tanh_approximation():
    x = np.array([-3.0, -0.5, 0.0, 0.7, 2.0])
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(_run("gelu", x).value, expected, rtol=1e-15)


def test_leaky_relu_has_its_slope_at_zero_and_below():
    result = _run("leaky_relu", np.array([-2.0, 0.0, 3.0]), slope=0.1)
    assert result.value.tolist() == [-0.2, 0.0, 3.0]
    assert result.grads["a0"].tolist() == [0.1, 0.1, 1.0]


def test_var_of_a_scalar_is_zero_and_ddof_divides():
    assert _run("var", 3.0).value == 0.0
    x = np.array([1.0, 2.0, 4.0])
    assert _run("var", x, ddof=1).value == pytest.approx(np.var(x, ddof=1), rel=1e-15)


def test_an_empty_slice_is_a_zero_size_tensor():
    result = _run("slice", np.ones((3, 4)), slices=[[2, 1]])
    assert result.value.shape == (0, 4)
    assert result.grads["a0"].tolist() == np.zeros((3, 4)).tolist()


def test_slice_entries_of_two_and_three_are_the_same_attr():
    two = compile_plan(graph(node("x", "input"), node("f", "slice", ["x"], slices=[[0, 2]]),
                             output="f"), {"x": (4,)})
    assert two.attrs[two.index["f"]] == {"slices": ((0, 2, None),)}


# ---------------------------------------------------------------- range checks


M = np.ones((3, 4))
IMAGES = np.ones((2, 3, 8, 8))

RANGE_ERRORS = [
    ("amax", [M], {"axis": 2}, "bad_attr"),
    ("logsumexp", [M], {"axis": [0, -3]}, "bad_attr"),
    ("var", [M], {"axis": 0, "ddof": 3}, "bad_attr"),
    ("var", [M], {"ddof": -1}, "bad_attr"),
    ("var", [2.0], {"ddof": 1}, "bad_attr"),
    ("amin", [np.ones((0, 3))], {"axis": 0}, "shape_mismatch"),
    ("concat", [M, M], {"axis": 2}, "bad_attr"),
    ("concat", [M, np.ones((2, 3))], {}, "shape_mismatch"),
    ("concat", [1.0, 2.0], {}, "shape_mismatch"),
    ("stack", [M, M], {"axis": 3}, "bad_attr"),
    ("stack", [M, np.ones((4, 3))], {}, "shape_mismatch"),
    ("slice", [M], {"slices": [[0, 2, 0]]}, "bad_attr"),
    ("slice", [M], {"slices": [3]}, "bad_attr"),
    ("slice", [M], {"slices": [0, -5]}, "bad_attr"),
    ("slice", [M], {"slices": [0, 0, 0]}, "bad_attr"),
    ("slice", [M], {"slices": [[0, 1, 2, 3]]}, "bad_attr"),
    ("slice", [M], {"slices": [[0.5, 1]]}, "bad_attr"),
    ("take", [M], {"indices": [0, 3]}, "bad_attr"),
    ("take", [M], {"indices": [[-4]]}, "bad_attr"),
    ("take", [M], {"indices": 0, "axis": 2}, "bad_attr"),
    ("take", [M], {"indices": [[0, 1], [2]]}, "bad_attr"),
    ("take", [M], {"indices": [True]}, "bad_attr"),
    ("take", [M], {"indices": [2**80]}, "bad_attr"),
    ("take", [2.0], {"indices": 0}, "shape_mismatch"),
    ("broadcast_to", [M], {"shape": [4, 3]}, "shape_mismatch"),
    ("broadcast_to", [M], {"shape": [-1, 4]}, "bad_attr"),
    ("clip", [M], {"lo": 1.0, "hi": 0.0}, "bad_attr"),
    ("clip", [M], {"lo": "0"}, "bad_attr"),
    ("leaky_relu", [M], {"slope": None}, "bad_attr"),
    ("cross_entropy", [M], {"targets": [0, 4, 1]}, "bad_attr"),
    ("cross_entropy", [M], {"targets": [0, -1, 1]}, "bad_attr"),
    ("cross_entropy", [M], {"targets": [0, 1]}, "bad_attr"),
    ("cross_entropy", [M], {"targets": [0, 1, 2], "reduction": "max"}, "bad_attr"),
    ("cross_entropy", [M], {}, "bad_attr"),
    ("cross_entropy", [np.ones(4)], {"targets": [0]}, "shape_mismatch"),
    ("conv2d", [IMAGES, np.ones((4, 3, 11, 3))], {"padding": 1}, "bad_attr"),
    ("conv2d", [IMAGES, np.ones((4, 3, 3, 3))], {"stride": 0}, "bad_attr"),
    ("conv2d", [IMAGES, np.ones((4, 3, 3, 3))], {"padding": -1}, "bad_attr"),
    ("conv2d", [IMAGES, np.ones((4, 2, 3, 3))], {}, "shape_mismatch"),
    ("conv2d", [M, np.ones((4, 3, 3, 3))], {}, "shape_mismatch"),
    ("max_pool2d", [IMAGES], {"size": 9}, "bad_attr"),
    ("max_pool2d", [IMAGES], {"size": 0}, "bad_attr"),
    ("max_pool2d", [IMAGES], {"size": 2, "stride": 0}, "bad_attr"),
    ("max_pool2d", [IMAGES], {}, "bad_attr"),
    ("max_pool2d", [M], {"size": 2}, "shape_mismatch"),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "code"), RANGE_ERRORS,
                         ids=[f"{case[0]}-{k}" for k, case in enumerate(RANGE_ERRORS)])
def test_range_errors_name_the_node_before_any_arithmetic(op, inputs, attrs, code):
    nodes = [node(f"a{k}", "input", value=v) for k, v in enumerate(inputs)]
    nodes.append(node("bad", op, [f"a{k}" for k in range(len(inputs))], **attrs))
    nodes.append(node("out", "sum", ["bad"]))
    g = graph(*nodes, output="out")
    sources = bind_sources(g)
    with pytest.raises(EngineError) as info:
        compile_plan(g, {k: v.shape for k, v in sources.items()})
    assert (info.value.code, info.value.node) == (code, "bad")
    assert info.value.message


# ---------------------------------------------------------------- convolution


def test_conv2d_gradients_match_finite_differences_cs231n_style():
    """The convolutional-networks assignment's check: x (2, 3, 8, 8), w (4, 3, 3, 3)."""
    rng = np.random.default_rng(231)
    x, w = rng.normal(size=(2, 3, 8, 8)), rng.normal(size=(4, 3, 3, 3))
    g = graph(node("x", "input", value=x), node("w", "input", value=w),
              node("y", "conv2d", ["x", "w"], stride=1, padding=1), output="y")
    sources = bind_sources(g)
    plan = compile_plan(g, {k: v.shape for k, v in sources.items()})
    assert plan.shape_of("y") == (2, 4, 8, 8)
    seed = rng.normal(size=(2, 4, 8, 8))
    # the output is linear in each input, so centred differences are exact for any step but
    # for rounding, which a larger step keeps small
    for name, outcome in gradcheck(plan, sources, seed=seed, eps=1e-3).items():
        assert outcome.max_rel_error < 1e-7, (name, outcome.max_rel_error)


def test_conv2d_without_padding_is_a_plain_correlation():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    result = _run("conv2d", None, inputs=[x, w], stride=2)
    assert result.value.tolist() == [[[[-5.0, -5.0], [-5.0, -5.0]]]]
    # every input pixel is read once with weight +1 or -1
    assert result.grads["a0"][0, 0].tolist() == [[1.0, 0.0] * 2, [0.0, -1.0] * 2] * 2


# ---------------------------------------------------------------- float kernels

EDGE_VALUES = [0.0, -0.0, 1e-310, -2.0, -1.0, 710.0, -710.0, math.inf, -math.inf, math.nan]
SCALAR_V11 = [("sin", {}), ("cos", {}), ("log1p", {}), ("softplus", {}), ("gelu", {}),
              ("leaky_relu", {"slope": 0.2}), ("clip", {"lo": -1.0, "hi": 1.0}),
              ("clip", {"hi": 0.0}), ("amax", {}), ("amin", {}), ("logsumexp", {}), ("var", {})]


def test_every_scalar_capable_new_op_is_in_the_edge_value_table():
    v11 = {"sin", "cos", "log1p", "softplus", "gelu", "leaky_relu", "clip", "amax", "amin",
           "logsumexp", "var", "concat", "stack", "slice", "take", "broadcast_to",
           "cross_entropy", "conv2d", "max_pool2d"}
    scalar = {name for name in v11 if OPS[name].takes_scalars and not OPS[name].scalar.identity}
    assert scalar <= {op for op, _ in SCALAR_V11}


@pytest.mark.parametrize(("op", "attrs"), SCALAR_V11, ids=[f"{o}{a}" for o, a in SCALAR_V11])
def test_float_kernels_of_new_ops_agree_with_numpy_on_edge_values(op, attrs):
    # the identities (a reduction of a 0-d value) are not asked what numpy's rule makes of
    # nan and inf: their gradient there is the identity's, 1
    edges = [v for v in EDGE_VALUES if not OPS[op].scalar.identity or math.isfinite(v)]
    nodes = [node(f"x{i}", "input", value=v) for i, v in enumerate(edges)]
    nodes += [node(f"f{i}", op, [f"x{i}"], **attrs) for i in range(len(edges))]
    nodes.append(node("out", "add", [f"f{i}" for i in range(len(edges))]))
    g = graph(*nodes, output="out")
    sources = bind_sources(g, allow_nonfinite=True)
    shapes = {k: v.shape for k, v in sources.items()}
    slow = compile_plan(g, shapes, strategy="tensor").run(sources)
    for strategy in ("scalar", "levels"):
        fast = compile_plan(g, shapes, strategy=strategy).run(sources)
        for name in fast.order:
            np.testing.assert_allclose(fast.values[name], slow.values[name], rtol=1e-12)
            np.testing.assert_allclose(fast.grads[name], slow.grads[name], rtol=1e-12)


# ---------------------------------------------------------------- sizes


LIMITS = Limits(max_elements=1_000_000)


@pytest.mark.parametrize(("op", "inputs", "attrs"), [
    # small output, but a padded input of 4e12 elements
    ("conv2d", [np.ones((1, 1, 4, 4)), np.ones((1, 1, 1, 1))],
     {"padding": 10**6, "stride": 10**6}),
    # windows of 250,000 elements each, read at 251,001 places
    ("conv2d", [np.ones((1, 1, 1000, 1000)), np.ones((1, 1, 500, 500))], {}),
    ("max_pool2d", [np.ones((1, 1, 1000, 1000))], {"size": 500, "stride": 1}),
    ("broadcast_to", [np.ones(3)], {"shape": [2**62, 3]}),
])
def test_temporaries_past_the_tensor_limit_are_refused_before_allocation(op, inputs, attrs):
    nodes = [node(f"a{k}", "input", value=v) for k, v in enumerate(inputs)]
    nodes.append(node("big", op, [f"a{k}" for k in range(len(inputs))], **attrs))
    with pytest.raises(EngineError) as info:
        run_graph(graph(*nodes, output="big"), limits=LIMITS)
    assert (info.value.code, info.value.node) == ("too_large", "big")


def test_indices_nested_past_the_rank_limit_are_refused():
    deep = 0
    for _ in range(40):
        deep = [deep]
    with pytest.raises(EngineError) as info:
        _run("take", np.ones((3, 4)), indices=deep)
    assert info.value.code == "shape_mismatch" and "dimensions" in info.value.message
    for _ in range(100):
        deep = [deep]
    with pytest.raises(EngineError) as info:
        _run("take", np.ones((3, 4)), indices=deep)
    assert info.value.code == "bad_attr"


def test_many_dimensional_indices_gather_their_gradients():
    deep = [[2, 2]]
    for _ in range(20):
        deep = [deep]
    result = _run("take", np.ones((3, 4)), indices=deep)
    assert result.value.shape == (1,) * 21 + (2, 4)
    assert result.grads["a0"].tolist() == [[0.0] * 4, [0.0] * 4, [2.0] * 4]


def test_numbers_past_the_float_range_are_bad_attrs():
    with pytest.raises(EngineError) as info:
        _run("leaky_relu", np.ones(2), slope=2**1100)
    assert info.value.code == "bad_attr"


def test_temporaries_count_every_point_of_a_batch():
    g = graph(node("x", "input"), node("w", "input", value=np.ones((2, 1, 3, 3))),
              node("y", "conv2d", ["x", "w"], padding=1), output="y")
    # one point: a (1, 1, 10, 10) image, 100 windows of 9: 900 elements of columns
    plan = compile_plan(g, {"x": (1, 1, 10, 10), "w": (2, 1, 3, 3)}, Limits(max_elements=9000),
                        batched={"x"})
    assert plan.run({"x": np.ones((10, 1, 1, 10, 10)), "w": np.ones((2, 1, 3, 3))}).value.shape \
        == (10, 1, 2, 10, 10)
    with pytest.raises(EngineError) as info:
        plan.run({"x": np.ones((11, 1, 1, 10, 10)), "w": np.ones((2, 1, 3, 3))})
    assert (info.value.code, info.value.node) == ("too_large", "y")


def test_reshape_past_the_rank_limit_is_a_shape_mismatch_not_a_crash():
    with pytest.raises(EngineError) as info:
        _run("reshape", 1.0, shape=[1] * 70)
    assert (info.value.code, info.value.node) == ("shape_mismatch", "f")
