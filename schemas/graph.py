"""The graph on the wire (CONTRACT section 2): node and graph schemas, the contract's rule on
`value` (required on const, refused on gates), op names checked against the engine's catalog,
and `load_graph` for the body of POST /v1/graphs.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import compress, repeat
from operator import is_not

import numpy as np
from marshmallow import ValidationError, fields, post_load, validate

from engine import (
    GATE_TAKES_NO_VALUE,
    OPS,
    Graph,
    Node,
    NodeTable,
    UnknownOp,
    gc_paused,
    node_table,
)
from schemas.fields import StrictSchema
from schemas.objectlist import ObjectList, TupleList
from schemas.tensors import Tensor, element_limit

MAX_ID_LENGTH = 128
# Ops that compute their value, so take none on the wire (unknown ops are left to unknown_op).
GATE_OPS = frozenset(name for name, op in OPS.items() if not op.is_source)
CONST_NEEDS_VALUE = "a const node needs a value"


class NodeSchema(StrictSchema):
    """A node; its fields are the engine Node's parameters, loaded into one by
    `node_from_fields`."""

    id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_ID_LENGTH),
        metadata={"description": "unique in the graph"},
    )
    op = fields.String(
        required=True,
        metadata={"enum": list(OPS), "description": "a name from GET /v1/ops"},
    )
    inputs = TupleList(
        fields.String(),
        load_default=tuple,
        metadata={"description": "ids of other nodes, in argument order"},
    )
    attrs = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        metadata={"description": "the op's attributes (GET /v1/ops)"},
    )
    value = Tensor(
        metadata={"description": "an input's default value, or a const's value (required on "
                  "const; other ops take none)"},
    )

    @post_load
    def _node(self, data: dict, **kwargs) -> Node:
        return node_from_fields(**data)


def node_from_fields(
    id: str, op: str, inputs: tuple[str, ...], attrs: dict, value: np.ndarray | None = None
) -> Node:
    """The engine Node of a node object's loaded fields.

    Raises a ValidationError on the `value` field when the value breaks the contract's rule:
    a const needs one, a gate takes none.
    """
    if value is None:
        if op == "const":
            raise ValidationError(CONST_NEEDS_VALUE, "value")
    elif op in GATE_OPS:
        raise ValidationError(GATE_TAKES_NO_VALUE, "value")
    return Node(id, op, inputs, attrs, value)


def node_table_from_fields(chunks: Iterable[list[list]]) -> NodeTable:
    """The NodeTable of the loaded field columns of many node objects, given a chunk of
    consecutive nodes at a time (id, op, inputs, attrs and value columns each):
    `node_from_fields` over whole columns. Raises a ValidationError when some node breaks the
    rule on `value` (the loader then finds which, node by node)."""
    table = NodeTable.of_chunks(chunks)
    op, value = table.ops, table.values
    has_value = list(map(is_not, value, repeat(None)))
    valued_ops = list(compress(op, has_value))  # few: the sources
    if not GATE_OPS.isdisjoint(valued_ops):
        raise ValidationError(GATE_TAKES_NO_VALUE, "value")
    # every const has a value when the consts number as many as the valued ones; the nodes
    # are counted by kind (numbered as the chunks came; the op check and the canonical form
    # use them next)
    kinds, firsts = table.kinds()
    const_kinds = [kind for kind, k in enumerate(firsts) if op[k] == "const"]
    if const_kinds:
        consts = int(np.bincount(kinds, minlength=len(firsts))[const_kinds].sum())
        if consts != valued_ops.count("const"):
            raise ValidationError(CONST_NEEDS_VALUE, "value")
    return table.with_shared_ops()


class GraphSchema(StrictSchema):
    nodes = ObjectList(NodeSchema, node_from_fields, node_table_from_fields, required=True)
    output = fields.String(required=True, metadata={"description": "the node backward starts from"})

    @post_load
    def _graph(self, data: dict, **kwargs) -> Graph:
        nodes = data["nodes"]
        return Graph(nodes if type(nodes) is NodeTable else tuple(nodes), data["output"])


class RegisterGraphSchema(StrictSchema):
    """The body of POST /v1/graphs."""

    graph = fields.Nested(GraphSchema, required=True)


REGISTER_GRAPH_SCHEMA = RegisterGraphSchema()


def load_graph(data: object, *, max_elements: int | None = None) -> Graph:
    """The graph of a POST /v1/graphs body (`{"graph": {...}}`), checked as `load_request`
    checks an inline one."""
    try:
        with element_limit(max_elements), gc_paused():
            graph = REGISTER_GRAPH_SCHEMA.load(data)["graph"]
    except ValidationError as error:
        error.kwargs["node"] = faulty_node(error.messages, data)
        raise
    check_ops(graph)
    return graph


_NODE_VALUE = NodeSchema().fields["value"]


def load_node_values(values: list, *, max_elements: int | None = None) -> list[np.ndarray]:
    """Node `value`s as the node schema's `value` field loads them (a column of plain numbers
    or encoded scalars at once). Raises ValidationError, or TooLarge over `max_elements`."""
    with element_limit(max_elements):
        decoded = _NODE_VALUE.load_numbers(values)
        if decoded is None:
            decoded = [_NODE_VALUE.deserialize(value, "value") for value in values]
    return decoded


def faulty_node(messages: object, data: object) -> str | None:
    """The id of the first node that field errors under graph.nodes.N point at, if it has one.

    An error response names that node in `node` as graph faults do (the details keep the
    index path, which is what a schema-driven client needs).
    """
    graph_errors = messages.get("graph") if isinstance(messages, dict) else None
    node_errors = graph_errors.get("nodes") if isinstance(graph_errors, dict) else None
    if not isinstance(node_errors, dict):
        return None
    graph = data.get("graph") if isinstance(data, dict) else None
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    if not isinstance(nodes, list):
        return None
    for index in sorted(k for k in map(_as_index, node_errors) if k is not None):
        node = nodes[index] if index < len(nodes) else None
        node_id = node.get("id") if isinstance(node, dict) else None
        if type(node_id) is str and node_id:
            return node_id
    return None


def _as_index(key: object) -> int | None:
    if type(key) is int:
        return key if key >= 0 else None
    return int(key) if type(key) is str and key.isdigit() else None


def check_ops(graph: Graph) -> None:
    table = node_table(graph.nodes)
    # one node of each kind shows every op; the kinds serve the canonical form and compile next
    unknown = {table.ops[k] for k in table.kinds()[1]} - OPS.keys()
    if unknown:
        node = table.node(next(i for i, op in enumerate(table.ops) if op in unknown))
        raise UnknownOp(f"unknown op '{node.op}'; GET /v1/ops lists the ops", node.id)
