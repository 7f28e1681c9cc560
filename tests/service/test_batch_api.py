"""Batches and Jacobians through the real app (CONTRACT section 5): a batched response equals B
separate requests; /v1/jacobian; the 422s naming field or node; the 413 before allocation."""

from __future__ import annotations

import base64

import numpy as np
import pytest

RNG = np.random.default_rng(5)
XS = RNG.normal(size=(4, 2))
W = [0.5, -1.0]


def layer_request(**fields) -> dict:
    """f = sum(tanh(w * x) + c): x batched in the tests, w and c shared."""
    nodes = [
        {"id": "x", "op": "input"},
        {"id": "w", "op": "input", "value": W},
        {"id": "c", "op": "input", "value": 0.3},
        {"id": "m", "op": "mul", "inputs": ["w", "x"]},
        {"id": "t", "op": "tanh", "inputs": ["m"]},
        {"id": "a", "op": "add", "inputs": ["t", "c"]},
        {"id": "f", "op": "sum", "inputs": ["a"]},
    ]
    return {"graph": {"nodes": nodes, "output": "f"}, **fields}


def decoded(tensor) -> np.ndarray:
    if isinstance(tensor, dict):
        data = np.frombuffer(base64.b64decode(tensor["b64"]), dtype="<f8")
        return data.reshape(tensor["shape"])
    return np.asarray(tensor, dtype=np.float64)


def ok(client, path: str, body: dict) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def separate(client, path: str, points: np.ndarray, **fields) -> list[dict]:
    return [ok(client, path, layer_request(inputs={"x": p.tolist()}, **fields)) for p in points]


@pytest.mark.parametrize("encoding", ["json", "b64"])
@pytest.mark.parametrize("reduce", ["none", "sum", "mean"])
def test_a_batched_response_equals_b_separate_requests(client, reduce, encoding):
    body = ok(client, "/v1/gradients", layer_request(
        batch={"x": XS.tolist()}, reduce=reduce, encoding=encoding))
    singles = separate(client, "/v1/gradients", XS)
    size = len(XS)
    np.testing.assert_allclose(decoded(body["value"]), [s["value"] for s in singles],
                               rtol=1e-12)
    for name in ("x", "w", "c", "m", "t", "a", "f"):
        values = np.stack([decoded(s["nodes"][name]["value"]) for s in singles])
        grads = np.stack([decoded(s["nodes"][name]["grad"]) for s in singles])
        shared = name in ("w", "c")
        want_value = values[0] if shared else values
        if reduce == "none":
            want_grad = grads
        elif shared:
            want_grad = grads.sum(0) if reduce == "sum" else grads.mean(0)
        else:
            want_grad = grads / size if reduce == "mean" else grads
        np.testing.assert_allclose(decoded(body["nodes"][name]["value"]), want_value, rtol=1e-12)
        got = decoded(body["nodes"][name]["grad"])
        assert got.shape == want_grad.shape, name
        np.testing.assert_allclose(got, want_grad, rtol=1e-12, atol=1e-15)


def test_a_per_point_seed_and_evaluate(client):
    seeds = RNG.normal(size=len(XS))
    body = ok(client, "/v1/gradients", layer_request(batch={"x": XS.tolist()},
                                                     seed=seeds.tolist()))
    singles = [ok(client, "/v1/gradients", layer_request(inputs={"x": p.tolist()}, seed=s))
               for p, s in zip(XS, seeds, strict=True)]
    np.testing.assert_allclose(body["nodes"]["w"]["grad"],
                               [s["nodes"]["w"]["grad"] for s in singles], rtol=1e-12)
    evaluated = ok(client, "/v1/evaluate", layer_request(batch={"x": XS.tolist()}, wrt=["w", "f"]))
    assert list(evaluated["nodes"]) == ["w", "f"]
    assert evaluated["nodes"]["w"] == {"value": W}  # shared: once, without the batch axis
    np.testing.assert_allclose(evaluated["value"], body["value"], rtol=1e-12)


def test_a_scalar_graph_batches_too(client):
    nodes = [{"id": "x", "op": "input"}, {"id": "w", "op": "input", "value": 2.0},
             {"id": "p", "op": "mul", "inputs": ["w", "x", "x"]}]
    graph = {"nodes": nodes, "output": "p"}
    body = ok(client, "/v1/gradients", {"graph": graph, "batch": {"x": [1.0, 2.0, 3.0]},
                                        "reduce": "sum"})
    assert body["nodes"]["x"]["grad"] == [4.0, 8.0, 12.0]
    assert body["nodes"]["w"]["grad"] == 14.0


def test_the_hash_covers_the_batch_and_reduce_and_caches(client):
    first = client.post("/v1/gradients", json=layer_request(batch={"x": XS.tolist()}))
    again = client.post("/v1/gradients", json=layer_request(batch={"x": XS.tolist()}))
    assert again.headers["X-Cache"] == "hit" and again.headers["ETag"] == first.headers["ETag"]
    summed = client.post("/v1/gradients", json=layer_request(batch={"x": XS.tolist()},
                                                             reduce="sum"))
    moved = client.post("/v1/gradients", json=layer_request(batch={"x": (XS + 1).tolist()}))
    etags = {r.headers["ETag"] for r in (first, summed, moved)}
    assert len(etags) == 3
    stored = client.get(f"/v1/results/{first.headers['ETag'].strip(chr(34))}")
    assert stored.status_code == 200 and stored.get_json()["cached"] is True


# ---------------------------------------------------------------- /v1/jacobian


def softmax_request(**fields) -> dict:
    nodes = [{"id": "z", "op": "input", "value": [0.1, -0.4, 2.0]},
             {"id": "s", "op": "softmax", "inputs": ["z"]}]
    return {"graph": {"nodes": nodes, "output": "s"}, **fields}


def test_the_jacobian_of_softmax_equals_one_gradient_request_per_output(client):
    body = ok(client, "/v1/jacobian", softmax_request(wrt=["z", "s"]))
    assert set(body) == {"hash", "output", "value", "jacobian", "cached"}
    p = np.asarray(body["value"])
    np.testing.assert_allclose(body["jacobian"]["z"], np.diag(p) - np.outer(p, p), rtol=1e-10)
    rows = [ok(client, "/v1/gradients", softmax_request(seed=np.eye(3)[m].tolist(),
                                                         wrt=["z"]))["nodes"]["z"]["grad"]
            for m in range(3)]
    np.testing.assert_allclose(body["jacobian"]["z"], rows, rtol=1e-12)
    assert body["jacobian"]["s"] == np.eye(3).tolist()


def test_a_batched_jacobian_gains_the_leading_axis_in_b64(client):
    zs = RNG.normal(size=(5, 3))
    body = ok(client, "/v1/jacobian", softmax_request(wrt=["z"], batch={"z": zs.tolist()},
                                                      encoding="b64"))
    jac = decoded(body["jacobian"]["z"])
    assert jac.shape == (5, 3, 3)
    for k, point in enumerate(zs):
        single = ok(client, "/v1/jacobian",
                    softmax_request(wrt=["z"], inputs={"z": point.tolist()}))
        np.testing.assert_allclose(jac[k], single["jacobian"]["z"], rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- faults


def error_of(client, path: str, body: dict, status: int = 422) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


def test_batch_faults_are_422s_naming_the_field_or_node(client):
    lengths = error_of(client, "/v1/gradients", layer_request(
        batch={"x": XS.tolist(), "c": [1.0]}))
    assert lengths["code"] == "validation_error"
    (message,) = next(iter(lengths["details"]["batch"].values()))
    assert "'c' 1" in message and "'x' 4" in message
    both = error_of(client, "/v1/gradients", layer_request(
        batch={"x": XS.tolist()}, inputs={"x": [1.0, 2.0]}))
    assert both["code"] == "validation_error" and "x" in both["details"]["batch"]
    empty = error_of(client, "/v1/gradients", layer_request(batch={"x": []}))
    assert "x" in empty["details"]["batch"]
    not_input = error_of(client, "/v1/gradients", layer_request(
        batch={"x": XS.tolist(), "m": XS.tolist()}))
    assert not_input["code"] == "unknown_node" and not_input["node"] == "m"
    unknown = error_of(client, "/v1/evaluate", layer_request(batch={"nope": [1.0]}))
    assert unknown["code"] == "unknown_node" and unknown["node"] == "nope"
    seed = error_of(client, "/v1/gradients", layer_request(batch={"x": XS.tolist()},
                                                           seed=[1.0, 2.0]))
    assert seed["code"] == "shape_mismatch" and seed["node"] == "f"
    point = error_of(client, "/v1/gradients", layer_request(batch={"x": [[1.0, 2.0, 3.0]]}))
    assert point["code"] == "shape_mismatch" and point["node"] == "m"
    nan = error_of(client, "/v1/gradients", layer_request(batch={"x": [[1.0, "NaN"]]}))
    assert nan["code"] == "nonfinite_input" and nan["node"] == "x"
    wrt = error_of(client, "/v1/jacobian", softmax_request())
    assert "wrt" in wrt["details"]


@pytest.fixture
def app_config() -> dict:
    return {"MAX_ELEMENTS": 1000, "MAX_TOTAL_ELEMENTS": 4000}


def test_b_times_a_points_elements_over_the_limits_is_413(client):
    ok(client, "/v1/gradients", layer_request(batch={"x": np.ones((300, 2)).tolist()}))
    # 600 points x 2 elements = 1200 in the batch tensor alone
    too_big = error_of(client, "/v1/gradients", layer_request(
        batch={"x": np.ones((600, 2)).tolist()}), 413)
    assert too_big["code"] == "too_large"
    # each tensor fits; the graph's values do not: 9 batched elements a point, 490 points
    total = error_of(client, "/v1/gradients", layer_request(
        batch={"x": np.ones((490, 2)).tolist()}), 413)
    assert total["code"] == "too_large"
    jac = error_of(client, "/v1/jacobian", {
        "graph": {"nodes": [{"id": "z", "op": "input", "value": np.zeros(200).tolist()},
                            {"id": "s", "op": "softmax", "inputs": ["z"]}], "output": "s"},
        "wrt": ["z"]}, 413)
    assert jac["code"] == "too_large"


def _sine_jacobian(**fields) -> dict:
    return {"graph": {"nodes": [{"id": "z", "op": "input"},
                                {"id": "s", "op": "sin", "inputs": ["z"]}], "output": "s"},
            "wrt": ["z"], **fields}


def test_a_jacobian_tensor_over_max_elements_is_413_naming_the_node(client):
    # J and the per-seed gradients of z hold n * n elements (n seeds), the graph's values n:
    # under MAX_TOTAL_ELEMENTS (4000) in all, over MAX_ELEMENTS (1000) in one tensor at n = 40
    fits = ok(client, "/v1/jacobian", _sine_jacobian(inputs={"z": np.ones(31).tolist()}))
    assert np.shape(fits["jacobian"]["z"]) == (31, 31)
    too_big = error_of(client, "/v1/jacobian",
                       _sine_jacobian(inputs={"z": np.ones(40).tolist()}), 413)
    assert too_big["code"] == "too_large" and too_big["node"] == "z"
    assert "1600 elements" in too_big["message"] and "1000" in too_big["message"]
    # a batch multiplies the seeds: 12 points of 10 elements, 120 seeds, 1200 elements in J
    batched = ok(client, "/v1/jacobian", _sine_jacobian(batch={"z": np.ones((9, 10)).tolist()}))
    assert np.shape(batched["jacobian"]["z"]) == (9, 10, 10)
    too_many = error_of(client, "/v1/jacobian",
                        _sine_jacobian(batch={"z": np.ones((12, 10)).tolist()}), 413)
    assert too_many["code"] == "too_large" and too_many["node"] == "z"


def test_the_workspace_budget_is_a_setting(make_app):
    from engine import WORKSPACES

    make_app({"BATCH_WORKSPACE_BYTES": 0})
    assert WORKSPACES.max_bytes == 0
    client = make_app({"BATCH_WORKSPACE_BYTES": 0}).test_client()
    assert ok(client, "/v1/gradients", layer_request(batch={"x": XS.tolist()}))["nodes"]
    assert WORKSPACES.held_bytes == 0  # nothing kept with a budget of 0
    make_app({})
    assert WORKSPACES.max_bytes == 128 * 2**20


def test_a_b64_batch_is_the_same_request_as_a_nested_list(client):
    data = np.ascontiguousarray(XS, dtype="<f8")
    encoded = {"dtype": "float64", "shape": list(XS.shape),
               "b64": base64.b64encode(data.tobytes()).decode()}
    as_list = client.post("/v1/gradients", json=layer_request(batch={"x": XS.tolist()}))
    as_b64 = client.post("/v1/gradients", json=layer_request(batch={"x": encoded}))
    assert as_b64.status_code == 200
    assert as_b64.headers["ETag"] == as_list.headers["ETag"]
    assert as_b64.headers["X-Cache"] == "hit"
