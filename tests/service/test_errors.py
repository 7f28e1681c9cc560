"""Every status and error code of the contract's table, each in the one JSON error shape."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

ERROR_KEYS = {"code", "message", "node", "details"}


def error_of(response, status: int) -> dict:
    """The response's error object, after checking the status and the contract's shape."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    assert response.headers["X-Request-ID"]
    body = orjson.loads(response.data)
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


# ---------------------------------------------------------------- 400, 415


@pytest.mark.parametrize(
    "body", [b"", b"{", b"not json", b'{"graph": NaN}', b"\xff\xfe", b"[" * 100_000]
)
def test_a_body_that_is_not_json_is_400_bad_json(client, body):
    response = client.post("/v1/gradients", data=body, content_type="application/json")
    assert error_of(response, 400)["code"] == "bad_json"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_labelled_json_is_415(client, circuit, content_type):
    response = client.post("/v1/gradients", data=orjson.dumps(circuit), content_type=content_type)
    assert error_of(response, 415)["code"] == "unsupported_media_type"


# ---------------------------------------------------------------- 413


@pytest.mark.parametrize("app_config", [{"MAX_BODY_BYTES": 1000}])
def test_a_body_over_the_limit_is_413_before_parsing(client):
    response = client.post(
        "/v1/gradients", data=b"x" * 1001, content_type="application/json"
    )
    assert error_of(response, 413)["code"] == "too_large"


@pytest.mark.parametrize("app_config", [{"MAX_BODY_BYTES": 1000}])
def test_a_streamed_body_without_length_is_cut_at_the_limit(client):
    response = client.post(
        "/v1/gradients",
        input_stream=io.BytesIO(b"[" + b"1," * 5000 + b"1]"),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
        headers={"Transfer-Encoding": "chunked"},
    )
    assert error_of(response, 413)["code"] == "too_large"


@pytest.mark.parametrize("app_config", [{"MAX_NODES": 10}])
def test_a_graph_over_max_nodes_is_413(client, chain):
    assert error_of(client.post("/v1/gradients", json=chain(10)), 413)["code"] == "too_large"
    assert client.post("/v1/gradients", json=chain(9)).status_code == 200


@pytest.mark.parametrize("app_config", [{"MAX_ELEMENTS": 100}])
def test_a_tensor_over_max_elements_is_413(client):
    request = {
        "graph": {
            "nodes": [
                {"id": "v", "op": "input", "value": [0.5] * 101},
                {"id": "s", "op": "sum", "inputs": ["v"]},
            ],
            "output": "s",
        }
    }
    assert error_of(client.post("/v1/gradients", json=request), 413)["code"] == "too_large"


@pytest.mark.parametrize("app_config", [{"MAX_TOTAL_ELEMENTS": 1000}])
def test_a_graph_over_max_total_elements_is_413(client):
    nodes = [{"id": "v", "op": "input", "value": [0.5] * 300}]
    nodes += [{"id": f"e{i}", "op": "exp", "inputs": ["v"]} for i in range(4)]
    nodes += [{"id": "s", "op": "add", "inputs": [f"e{i}" for i in range(4)]}]
    request = {"graph": {"nodes": nodes, "output": "s"}}
    assert error_of(client.post("/v1/gradients", json=request), 413)["code"] == "too_large"


@pytest.mark.parametrize("app_config", [{"MAX_GRADCHECK_ELEMENTS": 5}])
def test_a_gradcheck_over_its_element_limit_is_413(client):
    request = {
        "graph": {
            "nodes": [
                {"id": "v", "op": "input", "value": [1, 2, 3, 4, 5, 6]},
                {"id": "w", "op": "input", "value": 2},
                {"id": "p", "op": "mul", "inputs": ["v", "w"]},
                {"id": "s", "op": "sum", "inputs": ["p"]},
            ],
            "output": "s",
        }
    }
    assert error_of(client.post("/v1/gradcheck", json=request), 413)["code"] == "too_large"
    only_w = client.post("/v1/gradcheck", json={**request, "check": ["w"]})
    assert only_w.status_code == 200


@pytest.mark.parametrize("app_config", [{"DIAGRAM_MAX_NODES": 5}])
def test_a_diagram_over_its_node_limit_is_413(client, chain):
    error = error_of(client.post("/v1/diagram", json=chain(5)), 413)
    assert error["code"] == "too_large" and "diagram" in error["message"]
    assert client.post("/v1/diagram", json=chain(4)).status_code == 200


# ---------------------------------------------------------------- 422


@pytest.mark.parametrize(
    "request_body",
    [
        {},
        {"graph": 3},
        {"graph": {"nodes": [], "output": "f"}, "unexpected": 1},
        {"graph": {"nodes": [{"id": "x", "op": "input", "value": [[1, 2], [3]]}], "output": "x"}},
        {"graph": {"nodes": [{"id": "x", "op": "input", "value": True}], "output": "x"}},
        {"graph": {"nodes": [{"id": "", "op": "input", "value": 1}], "output": ""}},
    ],
)
def test_schema_errors_are_422_validation_error_with_details(client, request_body):
    error = error_of(client.post("/v1/gradients", json=request_body), 422)
    assert error["code"] == "validation_error"
    assert isinstance(error["details"], dict) and error["details"]


def test_a_request_that_is_not_an_object_is_422(client):
    error = error_of(client.post("/v1/gradients", json=[1, 2]), 422)
    assert error["code"] == "validation_error"


def node(id: str, op: str, *inputs: str, **fields) -> dict:
    return {"id": id, "op": op, "inputs": list(inputs), **fields}


GRAPH_FAULTS = {
    "unknown_op": ([node("x", "input", value=1), node("f", "frobnicate", "x")], "f", "f"),
    "unknown_node": ([node("x", "input", value=1), node("f", "exp", "ghost")], "f", "f"),
    "duplicate_id": ([node("x", "input", value=1), node("x", "input", value=2)], "x", "x"),
    "cycle": (
        [node("x", "input", value=1), node("a", "add", "x", "b"), node("b", "exp", "a")],
        "b",
        None,
    ),
    "arity": ([node("x", "input", value=1), node("f", "sub", "x")], "f", "f"),
    "bad_attr": ([node("x", "input", value=1), node("f", "scale", "x", attrs={"b": 2})], "f", "f"),
    "missing_input": ([node("x", "input"), node("f", "exp", "x")], "f", "x"),
    "shape_mismatch": (
        [node("u", "input", value=[1, 2]), node("v", "input", value=[1, 2, 3]),
         node("f", "add", "u", "v")],
        "f",
        "f",
    ),
}


@pytest.mark.parametrize("code", sorted(GRAPH_FAULTS))
def test_graph_faults_are_422_naming_the_node(client, code):
    nodes, output, faulty = GRAPH_FAULTS[code]
    error = error_of(client.post("/v1/gradients", json={"graph": {"nodes": nodes,
                                                                  "output": output}}), 422)
    assert error["code"] == code
    if faulty is None:
        assert error["node"] in {"a", "b"}
    else:
        assert error["node"] == faulty


def test_an_inputs_key_that_is_not_an_input_node_is_422(client, circuit):
    error = error_of(client.post("/v1/gradients", json={**circuit, "inputs": {"q": 1}}), 422)
    assert error["code"] == "unknown_node" and error["node"] == "q"


def test_nonfinite_inputs_are_422_unless_allowed(client, circuit):
    request = {**circuit, "inputs": {"x": "Infinity"}}
    error = error_of(client.post("/v1/gradients", json=request), 422)
    assert error["code"] == "nonfinite_input" and error["node"] == "x"
    allowed = client.post("/v1/gradients", json={**request, "allow_nonfinite": True})
    assert allowed.status_code == 200
    assert allowed.get_json()["value"] == "-Infinity"


def test_a_nonfinite_seed_is_422_unless_allowed(client, circuit):
    request = {**circuit, "seed": "NaN"}
    error = error_of(client.post("/v1/gradients", json=request), 422)
    assert error["code"] == "nonfinite_input" and error["node"] == "f"
    allowed = client.post("/v1/gradients", json={**request, "allow_nonfinite": True})
    assert allowed.status_code == 200


def test_a_seed_of_the_wrong_shape_is_422_naming_the_output(client, circuit):
    error = error_of(client.post("/v1/gradients", json={**circuit, "seed": [1, 2]}), 422)
    assert error["code"] == "shape_mismatch" and error["node"] == "f"


# ---------------------------------------------------------------- 404, 405


def test_an_unknown_route_is_404_not_found(client):
    assert error_of(client.get("/v2/gradients"), 404)["code"] == "not_found"


def test_an_unknown_hash_is_404_not_found(client):
    assert error_of(client.get("/v1/results/" + "a" * 64), 404)["code"] == "not_found"


@pytest.mark.parametrize("digest", ["A" * 64, "a" * 63, "a" * 65, "g" * 64, "..%2f"])
def test_a_malformed_hash_is_404_not_found(client, digest):
    assert error_of(client.get(f"/v1/results/{digest}"), 404)["code"] == "not_found"


def test_a_wrong_method_is_405_with_allow(client):
    response = client.get("/v1/gradients")
    assert error_of(response, 405)["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


# ---------------------------------------------------------------- 504, 500


@pytest.mark.parametrize("app_config", [{"COMPUTE_DEADLINE_SECONDS": 1e-9}])
def test_a_computation_over_the_deadline_is_504(client, chain):
    error = error_of(client.post("/v1/gradients", json=chain(5000)), 504)
    assert error["code"] == "deadline_exceeded"
    assert error["message"].endswith("time limit of 1e-09 s (COMPUTE_DEADLINE_SECONDS)")


def test_a_bug_is_500_without_traceback_and_logged_with_the_request_id(client, circuit,
                                                                        monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("service.kinds.dump_result", broken)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("chainrule")
    from service.observe.jsonlog import JsonLogFormatter

    handler.setFormatter(JsonLogFormatter())
    logger.addHandler(handler)
    try:
        response = client.post("/v1/gradients", json=circuit, headers={"X-Request-ID": "req-500"})
    finally:
        logger.removeHandler(handler)
    error = error_of(response, 500)
    assert error["code"] == "internal"
    assert b"secret" not in response.data and b"Traceback" not in response.data
    assert response.headers["X-Request-ID"] == "req-500"
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    logged = [line for line in lines if line["logger"] == "chainrule.errors"]
    assert len(logged) == 1
    assert logged[0]["request_id"] == "req-500"
    assert "secret internal detail" in logged[0]["exception"]
    assert all(line["request_id"] == "req-500" for line in lines)


def test_a_failed_computation_leaves_no_claim_behind(app, client, circuit, monkeypatch):
    monkeypatch.setattr("service.kinds.dump_result", lambda *a, **k: 1 / 0)
    assert client.post("/v1/gradients", json=circuit).status_code == 500
    monkeypatch.undo()
    assert client.post("/v1/gradients", json=circuit).headers["X-Cache"] == "miss"


# ---------------------------------------------------------------- request ids


def test_the_request_id_is_echoed_on_errors_too(client):
    response = client.get("/nowhere", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


def test_a_request_id_is_generated_when_absent_or_unusable(client):
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32
    long_id = client.get("/healthz", headers={"X-Request-ID": "x" * 500}).headers["X-Request-ID"]
    assert long_id != "x" * 500 and len(long_id) == 32
