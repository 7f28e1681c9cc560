"""A registered graph as stored bytes, its id, and the canonical graph GET /v1/graphs/{id} shows.

The record is canonical, so its SHA-256 is the graph's id (CONTRACT section 7): equal graphs,
however spelled, have one record and one id. It is three lines:

    chainrule-graph-1
    <the canonical graph text (schemas/canonical.py): the structure, nodes sorted by id>
    <the source values: {"<id>": {"dtype": "float64", "shape": [..], "b64": ..}, ..}, sorted>

The structure is the graph part of the request hash; the values line holds the const values
and input defaults that the canonical structure leaves to the request's bound sources, so two
graphs that differ only in a const have two ids. orjson writes no raw newline, so the lines
split unambiguously. A record is read back without the schemas' checks: only records that
`graph_record` wrote from a loaded, validated graph are ever stored.
"""

from __future__ import annotations

import base64
import hashlib
import sys

import numpy as np
import orjson

from engine import Graph, NodeTable, gc_paused, node_table
from schemas.canonical import CanonicalGraph
from schemas.tensors import tensor_json

RECORD_FORMAT = b"chainrule-graph-1"
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY


def graph_record(graph: Graph, canonical: CanonicalGraph) -> bytes:
    """The stored form of a loaded graph whose canonical structure is `canonical`."""
    table = node_table(graph.nodes)
    values = {
        name: _encoded(value)
        for name, value in zip(table.ids, table.values, strict=True) if value is not None
    }
    return b"\n".join([RECORD_FORMAT, canonical.text, orjson.dumps(values, option=_SORTED)])


def record_id(record: bytes) -> str:
    """The registered graph's id: the SHA-256 of its record, lowercase hex."""
    return hashlib.sha256(record).hexdigest()


def read_graph_record(record: bytes) -> tuple[Graph, CanonicalGraph]:
    """The graph and canonical structure a record holds (raises ValueError on a foreign one)."""
    header, text, values_text = record.split(b"\n", 2)
    if header != RECORD_FORMAT:
        raise ValueError(f"not a graph record of this service: {header[:40]!r}")
    with gc_paused():
        form = orjson.loads(text)
        values = {name: _decoded(value) for name, value in orjson.loads(values_text).items()}
        # A graph read back stays in memory a long time: let every mention of an id, and
        # every op name, share one string object; its columns are tuples (NodeTable.held).
        rows = form["nodes"]
        names = {entry[0]: entry[0] for entry in rows}
        mention = names.get
        ids = tuple(names)
        nodes = NodeTable(
            ids,
            tuple([sys.intern(row[1]) for row in rows]),
            tuple([tuple([mention(i, i) for i in row[2]]) for row in rows]),
            tuple([row[3] for row in rows]),
            tuple(map(values.get, ids)),
        )
    canonical = CanonicalGraph.of(text)
    return Graph(nodes, form["output"]), canonical


def canonical_graph_json(record: bytes) -> dict:
    """The record's graph as the wire writes one, in canonical order (sorted by id, every attr
    spelled out, values as JSON numbers); posting it back registers the same id."""
    _, text, values_text = record.split(b"\n", 2)
    form = orjson.loads(text)
    values = orjson.loads(values_text)
    nodes = []
    for name, op, inputs, attrs in form["nodes"]:
        entry = {"id": name, "op": op, "inputs": inputs, "attrs": attrs}
        if name in values:
            entry["value"] = tensor_json(_decoded(values[name]))
        nodes.append(entry)
    return {"nodes": nodes, "output": form["output"]}


def _encoded(value: np.ndarray) -> dict:
    array = np.asarray(value, dtype="<f8")  # (ascontiguousarray would make a 0-d array 1-d)
    if not np.isfinite(array).all():  # one NaN: the wire cannot tell NaNs apart
        array = np.where(np.isnan(array), np.nan, array)
    return {
        "dtype": "float64",
        "shape": list(array.shape),
        "b64": base64.b64encode(array.tobytes(order="C")).decode("ascii"),
    }


def _decoded(value: dict) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(value["b64"]), dtype="<f8")
    return data.astype(np.float64).reshape(value["shape"])
