"""The fast node loader against marshmallow alone: same nodes, same errors, same exceptions."""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, validate

from engine import Node
from schemas import load_request, objectlist
from schemas.graph import NodeSchema
from schemas.objectlist import ColumnLoader, ObjectList

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def marshmallow_only():
    with mock.patch.object(ObjectList, "fast", False):
        yield


def outcome(nodes: list, max_elements: int | None = None) -> tuple:
    """What loading a graph of `nodes` gives: ("ok", nodes) or (exception type, its content)."""
    data = {"graph": {"nodes": nodes, "output": "out"}}
    try:
        request = load_request("gradients", data, max_elements=max_elements)
    except ValidationError as error:
        return ("ValidationError", error.messages, comparable(error.valid_data))
    except Exception as error:  # noqa: BLE001 - any exception must match the reference's
        return (type(error).__name__, str(error), getattr(error, "node", None))
    return ("ok", [node_fields(node) for node in request.graph.nodes])


def node_fields(node: Node) -> tuple:
    return (type(node), node.id, node.op, type(node.inputs), node.inputs, type(node.attrs),
            node.attrs, comparable(node.value))


def comparable(item: object) -> object:
    """`item` with nodes and arrays spelled out, so that == compares them exactly."""
    if isinstance(item, Node):
        return node_fields(item)
    if isinstance(item, np.ndarray):
        return ("array", item.dtype.str, item.shape, item.tobytes())
    if isinstance(item, dict):
        return {key: comparable(value) for key, value in item.items()}
    if isinstance(item, list):
        return [comparable(value) for value in item]
    return item


def assert_paths_agree(nodes: list, max_elements: int | None = None) -> None:
    fast = outcome(nodes, max_elements)
    with marshmallow_only():
        reference = outcome(nodes, max_elements)
    assert fast == reference


# ---------------------------------------------------------------- strategies

ids = st.one_of(
    st.text(min_size=1, max_size=6),
    st.sampled_from(["", "n" * 129, 5, None, b"id", ["x"]]),
)
ops = st.one_of(st.sampled_from(["input", "const", "add", "mul", "tanh", "plus"]), st.integers())
inputs = st.one_of(
    st.lists(st.text(max_size=3), max_size=3),
    st.sampled_from(["x", [1], ("a", "b"), None, [b"a"], {"a": 1}]),
)
attrs = st.one_of(
    st.dictionaries(st.text(max_size=3), st.one_of(st.integers(), st.floats(), st.none()),
                    max_size=2),
    st.sampled_from([[], None, {1: 2}, "a"]),
)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-10, 10),
    st.lists(st.floats(-5, 5), max_size=5),
    st.sampled_from([
        None, True, "NaN", "x", [[1, 2], [3]], [1, None], {"dtype": "float64", "shape": [1],
                                                          "b64": "AAAAAAAA8D8="},
        {"dtype": "float64", "shape": [2], "b64": "AAAAAAAA8D8="}, [1, 2, 3, 4, 5, 6, 7],
    ]),
)
node_ids = st.builds("n{}".format, st.integers(0, 10**6))
good_nodes = st.one_of(
    st.fixed_dictionaries({"id": node_ids, "op": st.sampled_from(["input", "const"]),
                           "value": st.floats(-3, 3)}),
    st.fixed_dictionaries({"id": node_ids, "op": st.just("input")}),
    st.fixed_dictionaries({"id": node_ids, "op": st.sampled_from(["add", "mul"]),
                           "inputs": st.lists(st.sampled_from(["a", "b"]), max_size=2)}),
)


@st.composite
def any_nodes(draw):
    node = {}
    for key, strategy in (("id", ids), ("op", ops), ("inputs", inputs), ("attrs", attrs),
                          ("value", values)):
        if draw(st.booleans()):
            node[key] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        node["extra"] = 1
    return node


node_lists = st.lists(
    st.one_of(good_nodes, good_nodes, any_nodes(), st.sampled_from([7, "node", None, []])),
    max_size=12,
)


# ---------------------------------------------------------------- agreement


@SETTINGS
@given(node_lists)
def test_both_paths_agree_on_any_node_list(nodes):
    assert_paths_agree(nodes)


@SETTINGS
@given(node_lists)
def test_both_paths_agree_under_an_element_limit(nodes):
    assert_paths_agree(nodes, max_elements=3)


@settings(max_examples=30, deadline=None)
@given(st.lists(good_nodes, min_size=1, max_size=40))
def test_well_formed_nodes_never_reach_marshmallow(nodes):
    with mock.patch.object(NodeSchema, "load", side_effect=AssertionError("slow path")):
        assert outcome(nodes)[0] in ("ok", "UnknownOp")


def test_one_bad_node_among_many_is_marshmallows_error():
    nodes = [{"id": f"x{i}", "op": "input", "value": float(i)} for i in range(1000)]
    nodes[637] = {"id": "x637", "op": "input", "value": True, "weight": 2}
    assert_paths_agree(nodes)
    fast = outcome(nodes)
    assert list(fast[1]["graph"]["nodes"]) == [637]
    assert set(fast[1]["graph"]["nodes"][637]) == {"value", "weight"}


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"id": "c", "op": "const"}, "a const node needs a value"),
        ({"id": "g", "op": "tanh", "inputs": ["x0"], "value": 1.0},
         "only input and const nodes take a value"),
        ({"id": "g", "op": "add", "inputs": ["x0", "x1"], "value": [[1.0, 2.0]]},
         "only input and const nodes take a value"),
    ],
)
def test_a_value_against_the_op_is_marshmallows_error_among_many(node, message):
    nodes = [{"id": f"x{i}", "op": "input", "value": float(i)} for i in range(1000)]
    nodes[400] = node
    assert_paths_agree(nodes)
    fast = outcome(nodes)
    assert fast[1] == {"graph": {"nodes": {400: {"value": [message]}}}}


@SETTINGS
@given(st.lists(st.one_of(good_nodes, good_nodes, any_nodes()), max_size=12))
def test_both_paths_agree_when_the_rows_go_in_small_chunks(nodes):
    with mock.patch.object(objectlist, "CHUNK", 3):  # every list spans several chunks
        assert_paths_agree(nodes)
        assert_paths_agree(nodes, max_elements=3)


def test_bad_nodes_in_several_chunks_of_a_long_list_are_marshmallows_errors():
    n = 3 * objectlist.CHUNK + 5
    nodes = [{"id": f"x{i}", "op": "input", "value": float(i)} for i in range(n)]
    bad = [7, objectlist.CHUNK + 1, 3 * objectlist.CHUNK + 4]
    for i in bad:
        nodes[i] = {"id": f"x{i}", "op": "input", "value": True}
    assert_paths_agree(nodes)
    assert list(outcome(nodes)[1]["graph"]["nodes"]) == bad


def test_a_long_list_of_good_nodes_loads_whole():
    n = 2 * objectlist.CHUNK + 1
    nodes = [{"id": f"x{i}", "op": "input", "value": float(i)} for i in range(n)]
    nodes += [{"id": "f", "op": "scale", "inputs": [f"x{n - 1}"], "attrs": {"a": 2}}]
    with mock.patch.object(NodeSchema, "load", side_effect=AssertionError("slow path")):
        loaded = outcome(nodes)
    assert loaded[0] == "ok" and len(loaded[1]) == n + 1
    assert loaded[1][-1][1:3] == ("f", "scale") and loaded[1][-1][6] == {"a": 2}


def test_defaults_are_fresh_objects():
    request = load_request("gradients", {"graph": {"nodes": [
        {"id": "a", "op": "input", "value": 1}, {"id": "b", "op": "input", "value": 2},
    ], "output": "a"}})
    a, b = request.graph.nodes
    assert a.attrs == {} and a.attrs is not b.attrs and a.inputs == ()


def test_values_are_zero_d_float64_arrays():
    request = load_request("gradients", {"graph": {"nodes": [
        {"id": "a", "op": "input", "value": 1}, {"id": "b", "op": "input", "value": 2.5},
    ], "output": "a"}})
    for node in request.graph.nodes:
        assert isinstance(node.value, np.ndarray) and node.value.dtype == np.float64
        assert node.value.shape == ()


# ---------------------------------------------------------------- derivation from the schema


def test_loader_refuses_a_build_that_does_not_match_the_fields():
    with pytest.raises(TypeError, match="build takes"):
        ColumnLoader(NodeSchema(), lambda id, op: None)


def test_loader_needs_a_default_for_every_optional_field():
    class Sparse(Schema):
        name = fields.String()

    with pytest.raises(TypeError, match="needs a load_default"):
        ColumnLoader(Sparse(), lambda name: name)


def test_loader_follows_other_validators_and_fields_generically():
    class Pair(Schema):
        name = fields.String(required=True, validate=validate.OneOf(["a", "b"]))
        count = fields.Integer(load_default=0)

    loader = ColumnLoader(Pair(), lambda name, count: (name, count))
    failed = []
    rows = [{"name": "a", "count": 2}, {"name": "c"}, {"name": "b", "count": "x"}, {"name": "b"}]
    built = loader.load(rows, lambda i: failed.append(i))
    assert built == [("a", 2), None, None, ("b", 0)]
    assert failed == [1, 2]
