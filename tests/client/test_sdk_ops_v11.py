"""The nineteen ops of catalog 1.1 as expressions: each method and function emits the graph JSON
of CONTRACT section 4 ("Ops added in version 1.1"), attrs at their defaults left out."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule_client as cr


def nodes_by_id(graph: dict) -> dict[str, dict]:
    return {entry["id"]: entry for entry in graph["nodes"]}


def output_entry(expr: cr.Node) -> dict:
    graph = cr.to_graph(expr)
    return nodes_by_id(graph)[graph["output"]]


x = cr.input("x", np.ones((2, 3, 8, 8)))
w = cr.input("w", np.ones((4, 3, 3, 3)))
v = cr.input("v", 2.0)

# (expression, op, input ids, attrs or None)
CASES = [
    (lambda: v.sin(), "sin", ["v"], None),
    (lambda: v.cos(), "cos", ["v"], None),
    (lambda: v.log1p(), "log1p", ["v"], None),
    (lambda: v.softplus(), "softplus", ["v"], None),
    (lambda: v.gelu(), "gelu", ["v"], None),
    (lambda: v.leaky_relu(), "leaky_relu", ["v"], None),
    (lambda: v.leaky_relu(slope=0.2), "leaky_relu", ["v"], {"slope": 0.2}),
    (lambda: v.leaky_relu(0), "leaky_relu", ["v"], {"slope": 0.0}),
    (lambda: v.clip(-1, 1), "clip", ["v"], {"lo": -1.0, "hi": 1.0}),
    (lambda: v.clip(hi=2.5), "clip", ["v"], {"lo": None, "hi": 2.5}),
    (lambda: v.clip(), "clip", ["v"], {"lo": None, "hi": None}),
    (lambda: x.amax(), "amax", ["x"], None),
    (lambda: x.amax(axis=(2, 3), keepdims=True), "amax", ["x"], {"axis": [2, 3], "keepdims": True}),
    (lambda: x.amin(axis=1), "amin", ["x"], {"axis": 1}),
    (lambda: x.logsumexp(), "logsumexp", ["x"], None),
    (lambda: x.logsumexp(axis=-1), "logsumexp", ["x"], {"axis": -1}),
    (lambda: x.var(), "var", ["x"], None),
    (lambda: x.var(axis=0, ddof=1), "var", ["x"], {"axis": 0, "ddof": 1}),
    (lambda: x.var(keepdims=True), "var", ["x"], {"keepdims": True}),
    (lambda: cr.concat([x, w]), "concat", ["x", "w"], None),
    (lambda: cr.concat([x, w, x], axis=1), "concat", ["x", "w", "x"], {"axis": 1}),
    (lambda: cr.concat((x,)), "concat", ["x"], None),
    (lambda: cr.stack([v, v], axis=-1), "stack", ["v", "v"], {"axis": -1}),
    (lambda: cr.stack([x, w]), "stack", ["x", "w"], None),
    (lambda: x[1:3], "slice", ["x"], {"slices": [[1, 3, None]]}),
    (lambda: x[0, ::2], "slice", ["x"], {"slices": [0, [None, None, 2]]}),
    (lambda: x[1], "slice", ["x"], {"slices": [1]}),
    (lambda: x[-1, 1:, :-1:3], "slice", ["x"], {"slices": [-1, [1, None, None], [None, -1, 3]]}),
    (lambda: x[np.int64(2)], "slice", ["x"], {"slices": [2]}),
    (lambda: w.take([0, 2, 2]), "take", ["w"], {"indices": [0, 2, 2]}),
    (lambda: w.take(np.array([[1, 0]]), axis=1), "take", ["w"], {"indices": [[1, 0]], "axis": 1}),
    (lambda: w.take(3), "take", ["w"], {"indices": 3}),
    (lambda: v.broadcast_to((2, 3)), "broadcast_to", ["v"], {"shape": [2, 3]}),
    (lambda: v.broadcast_to(4), "broadcast_to", ["v"], {"shape": [4]}),
    (lambda: cr.cross_entropy(v, [0, 2]), "cross_entropy", ["v"], {"targets": [0, 2]}),
    (lambda: cr.cross_entropy(v, np.array([1, 0]), reduction="none"), "cross_entropy", ["v"],
     {"targets": [1, 0], "reduction": "none"}),
    (lambda: cr.cross_entropy(v, [1], "sum"), "cross_entropy", ["v"],
     {"targets": [1], "reduction": "sum"}),
    (lambda: cr.conv2d(x, w), "conv2d", ["x", "w"], None),
    (lambda: cr.conv2d(x, w, stride=2, padding=1), "conv2d", ["x", "w"],
     {"stride": 2, "padding": 1}),
    (lambda: cr.max_pool2d(x, 2), "max_pool2d", ["x"], {"size": 2}),
    (lambda: cr.max_pool2d(x, 2, stride=2), "max_pool2d", ["x"], {"size": 2}),
    (lambda: cr.max_pool2d(x, 3, stride=1), "max_pool2d", ["x"], {"size": 3, "stride": 1}),
]

V11_OPS = {
    "sin", "cos", "log1p", "softplus", "gelu", "leaky_relu", "clip", "amax", "amin",
    "logsumexp", "var", "concat", "stack", "slice", "take", "broadcast_to", "cross_entropy",
    "conv2d", "max_pool2d",
}


@pytest.mark.parametrize(("build", "op", "inputs", "attrs"), CASES)
def test_each_new_op_builds_its_gate(build, op, inputs, attrs):
    entry = output_entry(build())
    assert entry["op"] == op
    assert entry["inputs"] == inputs
    assert entry.get("attrs") == attrs


def test_every_op_added_in_1_1_has_a_case():
    assert {case[1] for case in CASES} == V11_OPS


def test_numbers_and_arrays_become_consts_in_the_functions():
    graph = cr.to_graph(cr.concat([v, 1.0, np.zeros(2)]))
    assert [entry["op"] for entry in graph["nodes"]] == ["input", "const", "const", "concat"]


def test_the_small_cnn_graph():
    images = cr.input("images", np.zeros((2, 1, 6, 6)))
    filters = cr.input("filters", np.zeros((4, 1, 3, 3)))
    weights = cr.input("weights", np.zeros((16, 3)))
    hidden = cr.max_pool2d(cr.conv2d(images, filters, padding=1).relu(), 3)
    loss = cr.cross_entropy(hidden.reshape(2, 16) @ weights, [0, 2])
    ops = [entry["op"] for entry in cr.to_graph(loss)["nodes"]]
    assert ops == ["input", "input", "conv2d", "relu", "max_pool2d", "reshape", "input",
                   "matmul", "cross_entropy"]


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: v.leaky_relu("0.1"), TypeError),
        (lambda: v.leaky_relu(math.inf), ValueError),
        (lambda: v.clip(2, 1), ValueError),
        (lambda: v.clip(math.nan), ValueError),
        (lambda: x.var(ddof=0.5), TypeError),
        (lambda: x.amax(axis=0.5), TypeError),
        (lambda: x.logsumexp(keepdims=1), TypeError),
        (lambda: cr.concat([]), ValueError),
        (lambda: cr.concat(x), TypeError),
        (lambda: cr.stack([x], axis=1.0), TypeError),
        (lambda: x[::0], ValueError),
        (lambda: x[1.5], TypeError),
        (lambda: x[...], TypeError),
        (lambda: x[None], TypeError),
        (lambda: x[[0, 1]], TypeError),
        (lambda: x[()], TypeError),
        (lambda: x[True], TypeError),
        (lambda: w.take([0.5]), TypeError),
        (lambda: w.take(np.array([0.0])), TypeError),
        (lambda: w.take([0], axis=None), TypeError),
        (lambda: v.broadcast_to(2.0), TypeError),
        (lambda: cr.cross_entropy(v, [[0], [1]]), TypeError),
        (lambda: cr.cross_entropy(v, 1), TypeError),
        (lambda: cr.cross_entropy(v, [0], reduction="max"), ValueError),
        (lambda: cr.conv2d(x, w, stride=0), ValueError),
        (lambda: cr.conv2d(x, w, padding=-1), ValueError),
        (lambda: cr.conv2d(x, "w"), TypeError),
        (lambda: cr.max_pool2d(x, 0), ValueError),
        (lambda: cr.max_pool2d(x, 2, stride=1.5), TypeError),
        (lambda: list(x), TypeError),
    ],
)
def test_misuse_of_the_new_ops_is_caught_before_sending(build, error):
    with pytest.raises(error):
        build()
