"""Expressions: every operator, method and function builds the contract's graph JSON."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

import chainrule_client as cr
from tests.client.expressions import micrograd_readme


def nodes_by_id(graph: dict) -> dict[str, dict]:
    return {entry["id"]: entry for entry in graph["nodes"]}


def output_entry(expr: object) -> dict:
    graph = cr.to_graph(expr)
    return nodes_by_id(graph)[graph["output"]]


def input_ops(expr: object) -> list[str]:
    """The ops of the output's inputs, in argument order."""
    graph = cr.to_graph(expr)
    nodes = nodes_by_id(graph)
    return [nodes[i]["op"] for i in nodes[graph["output"]].get("inputs", [])]


x = cr.input("x", 2.0)
y = cr.input("y", 3.0)
W = np.arange(6.0).reshape(2, 3)

# (expression, op, ops of its inputs in order, attrs or None)
OPERATOR_CASES = [
    (lambda: x + y, "add", ["input", "input"], None),
    (lambda: x + 2, "add", ["input", "const"], None),
    (lambda: 2 + x, "add", ["const", "input"], None),
    (lambda: x - y, "sub", ["input", "input"], None),
    (lambda: x - 2.5, "sub", ["input", "const"], None),
    (lambda: 2.5 - x, "sub", ["const", "input"], None),
    (lambda: x * y, "mul", ["input", "input"], None),
    (lambda: 3 * x, "mul", ["const", "input"], None),
    (lambda: x / y, "div", ["input", "input"], None),
    (lambda: 10.0 / x, "div", ["const", "input"], None),
    (lambda: x / 4, "div", ["input", "const"], None),
    (lambda: x**2, "pow", ["input"], {"exponent": 2.0}),
    (lambda: x**-0.5, "pow", ["input"], {"exponent": -0.5}),
    (lambda: x ** np.float64(3), "pow", ["input"], {"exponent": 3.0}),
    (lambda: x ** np.array(3.0), "pow", ["input"], {"exponent": 3.0}),
    (lambda: -x, "neg", ["input"], None),
    (lambda: abs(x), "abs", ["input"], None),
    (lambda: W @ x, "matmul", ["const", "input"], None),
    (lambda: x @ W, "matmul", ["input", "const"], None),
    (lambda: x @ y, "matmul", ["input", "input"], None),
    (lambda: np.ones(3) + x, "add", ["const", "input"], None),
    (lambda: np.ones(3) * x, "mul", ["const", "input"], None),
    (lambda: np.ones(3) - x, "sub", ["const", "input"], None),
    (lambda: np.ones(3) / x, "div", ["const", "input"], None),
    (lambda: np.float64(2.0) * x, "mul", ["const", "input"], None),
    (lambda: x * [1.0, 2.0], "mul", ["input", "const"], None),
]

METHOD_CASES = [
    (lambda: x.exp(), "exp", None),
    (lambda: x.log(), "log", None),
    (lambda: x.sqrt(), "sqrt", None),
    (lambda: x.abs(), "abs", None),
    (lambda: x.sigmoid(), "sigmoid", None),
    (lambda: x.tanh(), "tanh", None),
    (lambda: x.relu(), "relu", None),
    (lambda: x.sum(), "sum", None),
    (lambda: x.sum(axis=0), "sum", {"axis": 0}),
    (lambda: x.sum(axis=(0, 1), keepdims=True), "sum", {"axis": [0, 1], "keepdims": True}),
    (lambda: x.mean(), "mean", None),
    (lambda: x.mean(axis=-1, keepdims=True), "mean", {"axis": -1, "keepdims": True}),
    (lambda: x.transpose(), "transpose", None),
    (lambda: x.transpose(None), "transpose", None),
    (lambda: x.transpose((1, 0)), "transpose", {"axes": [1, 0]}),
    (lambda: x.transpose(1, 0), "transpose", {"axes": [1, 0]}),
    (lambda: x.T, "transpose", None),
    (lambda: x.reshape((2, 3)), "reshape", {"shape": [2, 3]}),
    (lambda: x.reshape(2, 3), "reshape", {"shape": [2, 3]}),
    (lambda: x.reshape([6]), "reshape", {"shape": [6]}),
    (lambda: x.reshape(6), "reshape", {"shape": [6]}),
    (lambda: x.softmax(), "softmax", None),
    (lambda: x.softmax(axis=0), "softmax", {"axis": 0}),
    (lambda: x.log_softmax(), "log_softmax", None),
    (lambda: x.log_softmax(axis=1), "log_softmax", {"axis": 1}),
    (lambda: cr.inv(x), "inv", None),
    (lambda: cr.add_const(x, 2.5), "add_const", {"c": 2.5}),
    (lambda: cr.scale(x, -3), "scale", {"a": -3.0}),
]


@pytest.mark.parametrize(("build", "op", "input_kinds", "attrs"), OPERATOR_CASES)
def test_operator_builds_its_gate(build, op, input_kinds, attrs):
    expr = build()
    entry = output_entry(expr)
    assert entry["op"] == op
    assert input_ops(expr) == input_kinds
    assert entry.get("attrs") == attrs


@pytest.mark.parametrize(("build", "op", "attrs"), METHOD_CASES)
def test_method_builds_its_gate(build, op, attrs):
    entry = output_entry(build())
    assert entry["op"] == op
    assert entry["inputs"] == ["x"]
    assert entry.get("attrs") == attrs


def test_the_full_graph_of_the_circuit_is_the_contract_example_up_to_gate_ids():
    z = cr.input("z", -4.0)
    q = (x + y).named("q")
    f = (q * z).named("f")
    assert cr.to_graph(f) == {
        "nodes": [
            {"id": "x", "op": "input", "value": 2.0},
            {"id": "y", "op": "input", "value": 3.0},
            {"id": "q", "op": "add", "inputs": ["x", "y"]},
            {"id": "z", "op": "input", "value": -4.0},
            {"id": "f", "op": "mul", "inputs": ["q", "z"]},
        ],
        "output": "f",
    }


def test_consts_carry_their_values_and_inputs_their_defaults():
    graph = cr.to_graph(cr.input("a") * cr.const([[1, 2], [3, 4]]) + 0.5)
    nodes = nodes_by_id(graph)
    assert "value" not in nodes["a"]
    consts = [e["value"] for e in graph["nodes"] if e["op"] == "const"]
    assert consts == [[[1.0, 2.0], [3.0, 4.0]], 0.5]


def test_maximum_and_minimum_take_any_number_of_operands():
    z = cr.input("z")
    assert output_entry(cr.maximum(x, y, z))["inputs"] == ["x", "y", "z"]
    assert output_entry(cr.maximum(x, y))["op"] == "max"
    entry = output_entry(cr.minimum(x, 0))
    assert entry["op"] == "min"
    assert input_ops(cr.minimum(x, 0)) == ["input", "const"]


def test_plus_equals_builds_a_new_node_like_micrograd():
    c = x
    c += c + 1
    graph = cr.to_graph(c)
    out = nodes_by_id(graph)[graph["output"]]
    assert out["op"] == "add"
    assert out["inputs"][0] == "x"
    inner = nodes_by_id(graph)[out["inputs"][1]]
    assert inner["op"] == "add" and inner["inputs"][0] == "x"


def test_unary_plus_is_the_node_itself():
    assert +x is x


def test_a_shared_subexpression_is_listed_once():
    a = x * y
    graph = cr.to_graph(a + a)
    assert [e["op"] for e in graph["nodes"]] == ["input", "input", "mul", "add"]
    out = nodes_by_id(graph)[graph["output"]]
    assert out["inputs"][0] == out["inputs"][1]


def test_the_same_input_may_be_named_twice():
    graph = cr.to_graph(cr.input("u", 1.0) * cr.input("u", 1.0))
    assert [e["id"] for e in graph["nodes"]] == ["u", "mul_2"]


def test_two_different_nodes_with_one_name_are_refused():
    with pytest.raises(ValueError, match="'u'"):
        cr.to_graph(cr.input("u", 1.0) * cr.input("u", 2.0))
    with pytest.raises(ValueError, match="'u'"):
        cr.to_graph(cr.input("u") + cr.const(1.0, id="u"))


# -------------------------------------------------------------------- deterministic ids


def micrograd_expression():
    return micrograd_readme(cr.input("a", -4.0), cr.input("b", 2.0))


def test_the_same_expression_gives_the_same_json():
    first = json.dumps(cr.to_graph(micrograd_expression()))
    for _ in range(3):  # building other expressions in between must not shift any id
        cr.to_graph(x * y + 1)
    assert json.dumps(cr.to_graph(micrograd_expression())) == first


def test_serialising_twice_gives_the_same_json_and_leaves_nodes_unnamed():
    g = micrograd_expression()
    assert cr.to_graph(g) == cr.to_graph(g)
    assert g.id is None


def test_ids_are_unique_and_the_listing_is_topological():
    graph = cr.to_graph(micrograd_expression())
    ids = [e["id"] for e in graph["nodes"]]
    assert len(ids) == len(set(ids))
    position = {node_id: i for i, node_id in enumerate(ids)}
    for entry in graph["nodes"]:
        for name in entry.get("inputs", []):
            assert position[name] < position[entry["id"]]
    assert ids[-1] == graph["output"]


def test_generated_ids_step_around_user_names():
    taken = (x + y).named("add_2")  # the id the gate below would otherwise get
    graph = cr.to_graph(x + y + taken)
    ids = [e["id"] for e in graph["nodes"]]
    assert len(ids) == len(set(ids))
    assert "add_2" in ids and "add_2_" in ids


def test_a_deep_chain_serialises_without_recursion():
    node = cr.input("x0", 1.0)
    for _ in range(50_000):
        node = node * 1.0001 + 0.5
    limit = sys.getrecursionlimit()
    graph = cr.to_graph(node)
    assert sys.getrecursionlimit() == limit
    assert len(graph["nodes"]) == 1 + 4 * 50_000
    assert json.loads(json.dumps(graph))["output"] == graph["output"]
    rebuilt = cr.from_graph(graph)
    assert cr.to_graph(rebuilt) == graph


# -------------------------------------------------------------------- graph dicts


def test_a_graph_dict_passes_through_to_graph():
    graph = cr.to_graph(micrograd_expression())
    assert cr.to_graph(graph) == graph


def test_a_graph_dict_is_usable_as_an_operand_and_round_trips():
    graph = cr.to_graph((x + y).named("s"))
    doubled = cr.to_graph(graph + x)
    nodes = nodes_by_id(doubled)
    assert nodes[doubled["output"]]["inputs"] == ["s", "x"]
    assert output_entry(x * graph)["inputs"] == ["x", "s"]
    assert cr.to_graph(cr.from_graph(graph)) == graph
    assert output_entry(cr.maximum(graph, 0.0))["op"] == "max"


def test_numpy_values_in_a_graph_dict_become_json():
    graph = {"nodes": [{"id": "c", "op": "const", "value": np.ones(2)}], "output": "c"}
    assert cr.to_graph(graph)["nodes"][0]["value"] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"nodes": []}, "output"),
        ({"nodes": [{"id": "a", "op": "neg", "inputs": ["a"]}], "output": "a"}, "cycle"),
        (
            {
                "nodes": [
                    {"id": "a", "op": "neg", "inputs": ["b"]},
                    {"id": "b", "op": "neg", "inputs": ["a"]},
                ],
                "output": "a",
            },
            "cycle",
        ),
        ({"nodes": [{"id": "a", "op": "neg", "inputs": ["zz"]}], "output": "a"}, "unknown"),
        ({"nodes": [{"id": "a", "op": "input"}] * 2, "output": "a"}, "duplicate"),
        ({"nodes": [{"id": "a", "op": "input"}], "output": "b"}, "not one of its nodes"),
        ({"nodes": [{"op": "input"}], "output": "a"}, "id"),
    ],
)
def test_from_graph_refuses_malformed_graphs(graph, message):
    with pytest.raises(ValueError, match=message):
        cr.from_graph(graph)


# -------------------------------------------------------------------- misuse


def test_node_and_tensor_exponents_are_type_errors():
    with pytest.raises(TypeError, match="exponent must be a number"):
        x**y
    with pytest.raises(TypeError, match="exponent must be a number"):
        2**x
    with pytest.raises(TypeError, match="exponent must be a number"):
        x ** np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        x ** math.inf


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: x + "a", TypeError),
        (lambda: x * True, TypeError),
        (lambda: x + None, TypeError),
        (lambda: cr.maximum(x), TypeError),
        (lambda: cr.minimum(), TypeError),
        (lambda: cr.add_const(x, math.nan), ValueError),
        (lambda: cr.scale(x, "2"), TypeError),
        (lambda: cr.input(""), ValueError),
        (lambda: cr.input(3), ValueError),
        (lambda: cr.const(None), ValueError),
        (lambda: cr.const([[1.0], [2.0, 3.0]]), ValueError),
        (lambda: cr.const([True, False]), TypeError),
        (lambda: cr.const("1.5"), TypeError),
        (lambda: x.sum(keepdims=1), TypeError),
        (lambda: x.sum(axis=1.5), TypeError),
        (lambda: x.softmax(axis=0.5), TypeError),
        (lambda: x.reshape(2.0, 3), TypeError),
        (lambda: cr.to_graph(3.0), TypeError),
    ],
)
def test_misuse_is_caught_before_sending(build, error):
    with pytest.raises(error):
        build()


def test_reprs_say_what_a_node_is():
    assert repr(x) == "input('x', 2.0)"
    assert repr(cr.const(np.ones(3))) == "const(<array of shape (3,)>)"
    assert repr((x + y).named("s")) == "<Node add 's' of 2 inputs>"
