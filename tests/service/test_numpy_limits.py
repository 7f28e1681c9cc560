"""Shapes numpy cannot hold are a 413 naming the node, wherever they come from (issue 15).

Zero-size tensors with a huge dimension, dimensions past int64, more than 64 dimensions after a
reshape, more than 32 dimensions where numpy broadcasts: on the wire (inputs, node values, the
seed; nested and b64) and from shape inference.
"""

from __future__ import annotations

import pytest

from engine import TooLarge, compile_plan
from engine.graph import Graph, Node
from engine.numpy_limits import MAX_BROADCAST_NDIM, MAX_INTP, check_shape

HUGE = 1152921504606846976  # 2**60: times 8 bytes is past int64


def _encoded(shape: list[int]) -> dict:
    return {"dtype": "float64", "shape": shape, "b64": ""}


def _one_dim_ones(ndim: int) -> dict:
    """A one-element tensor of `ndim` dimensions, b64-encoded (1.0 little-endian)."""
    return {"dtype": "float64", "shape": [1] * ndim, "b64": "AAAAAAAA8D8="}


def _graph(*nodes: dict, output: str = "f") -> dict:
    return {"nodes": list(nodes), "output": output}


X_SUM = ({"id": "x", "op": "input"}, {"id": "f", "op": "sum", "inputs": ["x"]})


@pytest.mark.parametrize("shape", [[0, HUGE], [HUGE, 0], [0, MAX_INTP + 1], [0, 2**40, 2**40]])
def test_zero_size_node_value_with_a_huge_dimension_is_too_large(client, shape):
    graph = _graph({"id": "x", "op": "input", "value": _encoded(shape)}, X_SUM[1])
    response = client.post("/v1/gradients", json={"graph": graph})
    assert response.status_code == 413, response.data
    assert response.get_json()["error"]["node"] == "x"


@pytest.mark.parametrize("kind", ["gradients", "evaluate", "gradcheck", "diagram"])
def test_zero_size_input_with_a_huge_dimension_is_too_large(client, kind):
    body = {"graph": _graph(*X_SUM), "inputs": {"x": _encoded([0, HUGE])}}
    response = client.post(f"/v1/{kind}", json=body)
    assert response.status_code == 413, response.data
    assert response.get_json()["error"]["node"] == "x"


def test_zero_size_seed_with_a_huge_dimension_is_too_large(client):
    body = {"graph": _graph(*X_SUM), "inputs": {"x": 1.0}, "seed": _encoded([0, HUGE])}
    response = client.post("/v1/gradients", json=body)
    assert response.status_code == 413, response.data


@pytest.mark.parametrize("shape, status", [
    ([0, HUGE], 413), ([0, MAX_INTP + 1], 413),
    ([0] + [1] * 69, 422),  # reshape's own rule refuses results past 32 dimensions
])
def test_reshape_past_numpys_limits_is_refused(client, shape, status):
    graph = _graph({"id": "x", "op": "input", "value": []},
                   {"id": "f", "op": "reshape", "inputs": ["x"], "attrs": {"shape": shape}})
    response = client.post("/v1/gradients", json={"graph": graph})
    assert response.status_code == status, response.data
    assert response.get_json()["error"]["node"] == "f"


@pytest.mark.parametrize("op", ["add", "mul", "max", "matmul", "sub"])
def test_broadcasting_more_than_32_dimensions_is_too_large(client, op):
    wide = _one_dim_ones(MAX_BROADCAST_NDIM + 1)
    graph = _graph({"id": "x", "op": "input", "value": wide},
                   {"id": "y", "op": "input", "value": wide},
                   {"id": "f", "op": op, "inputs": ["x", "y"]})
    response = client.post("/v1/gradients", json={"graph": graph})
    assert response.status_code == 413, response.data
    error = response.get_json()["error"]
    assert error["node"] == "f" and "32" in error["message"]


def test_32_dimensions_still_broadcast(client):
    wide = _one_dim_ones(MAX_BROADCAST_NDIM)
    graph = _graph({"id": "x", "op": "input", "value": wide},
                   {"id": "y", "op": "input", "value": 2.0},
                   {"id": "f", "op": "mul", "inputs": ["x", "y"]})
    response = client.post("/v1/gradients", json={"graph": graph})
    assert response.status_code == 200, response.data


def test_unary_ops_keep_numpys_64_dimensions(client):
    graph = _graph({"id": "x", "op": "input", "value": _one_dim_ones(64)},
                   {"id": "f", "op": "exp", "inputs": ["x"]})
    assert client.post("/v1/gradients", json={"graph": graph}).status_code == 200


def test_compile_checks_every_inferred_shape():
    graph = Graph((Node("x", "input"), Node("f", "reshape", ("x",), {"shape": [0, HUGE]})), "f")
    with pytest.raises(TooLarge) as caught:
        compile_plan(graph, {"x": (0,)})
    assert caught.value.node == "f"


def test_check_shape_mirrors_numpy():
    import numpy as np

    for shape in ([0, 2**59], [0, 2**30, 2**29], [1] * 64, [0] * 64):
        check_shape(shape, "x")
        np.empty(shape)  # what check_shape lets through, numpy holds
    for shape in ([0, 2**60], [1] * 65, [0, 2**63]):
        with pytest.raises(TooLarge):
            check_shape(shape, "x")
        with pytest.raises((ValueError, OverflowError)):
            np.empty(shape)


def test_a_jacobian_past_numpys_dimensions_is_too_large(client):
    graph = _graph({"id": "x", "op": "input", "value": _one_dim_ones(40)},
                   {"id": "f", "op": "exp", "inputs": ["x"]})
    response = client.post("/v1/jacobian", json={"graph": graph, "wrt": ["x"]})
    assert response.status_code == 413, response.data  # J would have 40 + 40 dimensions
    assert response.get_json()["error"]["node"] == "x"
    graph["nodes"][0]["value"] = _one_dim_ones(32)
    response = client.post("/v1/jacobian", json={"graph": graph, "wrt": ["x"]})
    assert response.status_code == 200  # 64 dimensions fit


def test_a_batched_node_leaves_room_for_its_batch_axis():
    graph = Graph((Node("x", "input"), Node("f", "exp", ("x",))), "f")
    with pytest.raises(TooLarge) as caught:  # B points of 64 dimensions would be 65
        compile_plan(graph, {"x": (1,) * 64}, batched=["x"])
    assert caught.value.node == "x"
    compile_plan(graph, {"x": (1,) * 63}, batched=["x"])
    compile_plan(graph, {"x": (1,) * 64})
