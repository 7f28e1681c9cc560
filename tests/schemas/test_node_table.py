"""The column graph: the loader's NodeTable reads as the nodes marshmallow builds, and the
canonical form memoised by listing equals the one computed afresh, never confusing listings."""

from __future__ import annotations

import math

import pytest

from engine import Graph, Node, NodeTable, compile_plan
from schemas import canonical_graph, load_request
from schemas.canonical import _LISTINGS


def graph_body(nodes: list[dict], output: str = "f") -> dict:
    return {"graph": {"nodes": nodes, "output": output}}


NODES = [
    {"id": "x", "op": "input", "value": 2},
    {"id": "c", "op": "const", "value": [1.0, 2.0]},
    {"id": "s", "op": "scale", "inputs": ["x"], "attrs": {"a": 0.5}},
    {"id": "f", "op": "mul", "inputs": ["s", "c"]},
]


@pytest.fixture(autouse=True)
def empty_memo():
    _LISTINGS.forms.clear()
    _LISTINGS.held = 0
    yield
    _LISTINGS.forms.clear()
    _LISTINGS.held = 0


def test_the_fast_loader_hands_a_table_that_reads_as_nodes():
    graph = load_request("gradients", graph_body(NODES)).graph
    assert type(graph.nodes) is NodeTable
    assert graph.nodes.ids == ["x", "c", "s", "f"] and len(graph.nodes) == 4
    assert graph.nodes[2] == Node("s", "scale", ("x",), {"a": 0.5})
    f = list(graph.nodes)[3]
    assert f.inputs == ("s", "c") and f.attrs == {} and f.value is None


def test_a_table_compiles_and_hashes_as_the_tuple_of_its_nodes():
    table = load_request("gradients", graph_body(NODES)).graph
    nodes = Graph(tuple(table.nodes), table.output)
    shapes = {"x": (), "c": (2,)}
    assert canonical_graph(table).text == canonical_graph(nodes).text
    assert compile_plan(table, shapes).ids == compile_plan(nodes, shapes).ids


def test_a_memoised_canonical_form_equals_a_fresh_one():
    first = canonical_graph(load_request("gradients", graph_body(NODES)).graph)
    assert len(_LISTINGS.forms) == 1
    again = canonical_graph(load_request("gradients", graph_body(NODES)).graph)
    _LISTINGS.forms.clear()
    fresh = canonical_graph(load_request("gradients", graph_body(NODES)).graph)
    assert again is first and fresh.text == first.text and fresh.id == first.id


@pytest.mark.parametrize("a, b", [
    (2, 2.0), (1, True), (0.0, -0.0), (None, math.nan), (math.inf, "inf"),
])
def test_the_memo_keeps_apart_attrs_that_python_calls_equal_or_orjson_spells_alike(a, b):
    def graph_id(value: object) -> str:
        nodes = (Node("x", "input"), Node("s", "scale", ("x",), {"a": value}))
        return canonical_graph(Graph(nodes, "s")).id

    ids = [graph_id(a), graph_id(b)]
    _LISTINGS.forms.clear()
    assert ids == [graph_id(a), graph_id(b)]  # as computed without the memo
    if (a, b) != (2, 2.0):  # 2 and 2.0 are one canonical attr; the others are not
        assert ids[0] != ids[1]


def test_a_listing_that_might_hold_an_abbreviated_repr_is_never_memoised():
    nodes = (Node("x", "input"), Node("s", "scale", ("x",), {"a": "[1.0, ..., 9.0]"}))
    canonical_graph(Graph(nodes, "s"))
    assert not _LISTINGS.forms


def test_the_memo_is_bounded_by_the_bytes_it_holds():
    limit = _LISTINGS.max_bytes
    try:
        _LISTINGS.max_bytes = 400
        for k in range(10):
            canonical_graph(Graph((Node(f"x{k}", "input"),), f"x{k}"))
            assert _LISTINGS.held <= 400
        assert 0 < len(_LISTINGS.forms) < 10
    finally:
        _LISTINGS.max_bytes = limit
