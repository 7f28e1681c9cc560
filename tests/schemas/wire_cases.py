"""Shared helpers for the schema tests: request bodies, the load-bind-hash pipeline, strategies."""

from __future__ import annotations

import base64

import numpy as np
import orjson
from hypothesis import strategies as st

from engine import bind_sources
from schemas import load_request, parse_json, request_hash
from tests.circuits import CIRCUIT


def circuit_request(**fields) -> dict:
    """The contract's example request (a fresh copy), with extra top-level fields."""
    return {"graph": orjson.loads(orjson.dumps(CIRCUIT)), **fields}


def single_node_request(value: object, **node_fields) -> dict:
    """A graph of one input node holding `value`."""
    node = {"id": "a", "op": "input", "value": value, **node_fields}
    return {"graph": {"nodes": [node], "output": "a"}}


def b64_tensor(array: np.ndarray, dtype: str = "float64") -> dict:
    data = np.asarray(array, dtype="<f8" if dtype == "float64" else "<f4")
    return {"dtype": dtype, "shape": list(data.shape),
            "b64": base64.b64encode(data.tobytes()).decode()}


def pipeline_hash(kind: str, body: bytes | dict) -> str:
    """What the service does before computing: parse, load, bind, hash."""
    data = parse_json(body if isinstance(body, bytes) else orjson.dumps(body))
    request = load_request(kind, data)
    sources = bind_sources(request.graph, request.inputs, allow_nonfinite=request.allow_nonfinite)
    return request_hash(kind, request, sources)


# ---------------------------------------------------------------- strategies

finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
# Values that exercise the spelling: signed zeros, subnormals, extremes, integers.
edge_floats = st.one_of(
    finite_floats,
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                     -1.7976931348623157e308, 1.0, 2.0, 0.1]),
)
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)


@st.composite
def float_arrays(draw, shape=None):
    shape = draw(shapes) if shape is None else shape
    size = int(np.prod(shape))
    values = draw(st.lists(edge_floats, min_size=size, max_size=size))
    return np.array(values, dtype=np.float64).reshape(shape)


@st.composite
def scalar_graphs(draw):
    """A request dict: a few scalar inputs and gates over earlier nodes, with distinct ids."""
    sources = draw(st.integers(1, 4))
    gates = draw(st.integers(1, 6))
    nodes = []
    for i in range(sources):
        value = draw(st.floats(-100, 100, allow_nan=False).map(lambda v: round(v, 3)))
        nodes.append({"id": f"in{i}", "op": "input", "value": value})
    for i in range(gates):
        earlier = [node["id"] for node in nodes]
        op = draw(st.sampled_from(["add", "mul", "sub", "scale", "tanh"]))
        arity = {"add": 2, "mul": 2, "sub": 2, "scale": 1, "tanh": 1}[op]
        node = {"id": f"g{i}", "op": op,
                "inputs": draw(st.lists(st.sampled_from(earlier), min_size=arity,
                                        max_size=arity))}
        if op == "scale":
            node["attrs"] = {"a": draw(st.integers(-3, 3))}
        nodes.append(node)
    return {"graph": {"nodes": nodes, "output": nodes[-1]["id"]}}
