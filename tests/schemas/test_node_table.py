"""The column graph: the loader's NodeTable reads as the nodes marshmallow builds, hashes and
compiles as they do, and its kind keys never confuse attrs or ops."""

from __future__ import annotations

import math

import pytest

from engine import Graph, Node, NodeTable, UnknownOp, compile_plan
from schemas import canonical_graph, load_request


def graph_body(nodes: list[dict], output: str = "f") -> dict:
    return {"graph": {"nodes": nodes, "output": output}}


NODES = [
    {"id": "x", "op": "input", "value": 2},
    {"id": "c", "op": "const", "value": [1.0, 2.0]},
    {"id": "s", "op": "scale", "inputs": ["x"], "attrs": {"a": 0.5}},
    {"id": "f", "op": "mul", "inputs": ["s", "c"]},
]


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


@pytest.mark.parametrize("a, b", [
    (2, 2.0), (1, True), (0.0, -0.0), (None, math.nan), (math.inf, "inf"),
])
def test_kinds_keep_apart_attrs_that_python_calls_equal_or_orjson_spells_alike(a, b):
    def graph_id(value: object) -> str:
        nodes = (Node("x", "input"), Node("s", "scale", ("x",), {"a": value}))
        return canonical_graph(Graph(NodeTable.of(nodes), "s")).id

    ids = [graph_id(a), graph_id(b)]
    if (a, b) != (2, 2.0):  # 2 and 2.0 are one canonical attr; the others are not
        assert ids[0] != ids[1]
    else:
        assert ids[0] == ids[1]


def test_an_op_named_like_another_ops_kind_key_is_not_taken_for_it():
    """"scale{'a': 0.5}" with no attrs would read as scale with a = 0.5 were kind keys plain
    concatenations; it is an unknown op."""
    for t_first in (True, False):  # whichever node stands for the shared key
        scaled = [Node("t", "scale{'a': 0.5}", ("x",)), Node("s", "scale", ("x",), {"a": 0.5})]
        nodes = [Node("x", "input"), *(scaled if t_first else scaled[::-1]),
                 Node("f", "add", ("s", "t"))]
        with pytest.raises(UnknownOp) as refused:
            compile_plan(Graph(NodeTable.of(nodes), "f"), {"x": ()})
        assert refused.value.node == "t"
