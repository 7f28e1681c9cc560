"""The /v1 endpoints through Flask's test client, with the in-process result cache."""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ElementTree

import numpy as np
import orjson
import pytest

from engine import ENGINE_VERSION, Plan, describe_ops
from service import kinds
from service.plans import PlanCache


def hash_of(response) -> str:
    return response.headers["ETag"].strip('"')


def test_gradients_of_the_contract_example(client, circuit):
    response = client.post("/v1/gradients", json=circuit)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["output"] == "f" and body["value"] == -12.0 and body["cached"] is False
    assert body["nodes"] == {
        "x": {"value": -2.0, "grad": -4.0},
        "y": {"value": 5.0, "grad": -4.0},
        "z": {"value": -4.0, "grad": 3.0},
        "q": {"value": 3.0, "grad": -4.0},
        "f": {"value": -12.0, "grad": 1.0},
    }
    assert response.headers["ETag"] == f'"{body["hash"]}"'
    assert len(body["hash"]) == 64
    assert response.headers["X-Cache"] == "miss"


def test_a_repeat_is_a_hit_with_the_same_bytes_but_cached(client, circuit):
    miss = client.post("/v1/gradients", json=circuit)
    hit = client.post("/v1/gradients", json=circuit)
    assert hit.headers["X-Cache"] == "hit"
    assert hit.headers["ETag"] == miss.headers["ETag"]
    assert hit.data == miss.data.replace(b'"cached":false}', b'"cached":true}')


def test_listing_order_and_spelling_do_not_change_the_hash(client, circuit):
    first = client.post("/v1/gradients", json=circuit)
    circuit["graph"]["nodes"].reverse()
    circuit["graph"]["nodes"][-1]["value"] = -2.0  # x, now last
    again = client.post("/v1/gradients", json=circuit)
    assert again.headers["X-Cache"] == "hit" and hash_of(again) == hash_of(first)


def test_changed_inputs_are_a_different_result(client, circuit):
    first = client.post("/v1/gradients", json=circuit)
    second = client.post("/v1/gradients", json={**circuit, "inputs": {"x": 3}})
    assert second.headers["X-Cache"] == "miss" and hash_of(second) != hash_of(first)
    assert second.get_json()["value"] == -32.0


def test_cache_false_neither_reads_nor_writes(client, circuit):
    bypass = client.post("/v1/gradients", json={**circuit, "cache": False})
    assert bypass.headers["X-Cache"] == "bypass"
    assert bypass.get_json()["cached"] is False
    assert client.get(f"/v1/results/{hash_of(bypass)}").status_code == 404
    client.post("/v1/gradients", json=circuit)
    again = client.post("/v1/gradients", json={**circuit, "cache": False})
    assert again.headers["X-Cache"] == "bypass" and again.get_json()["cached"] is False


def test_results_returns_the_cached_body(client, circuit):
    miss = client.post("/v1/gradients", json=circuit)
    stored = client.get(f"/v1/results/{hash_of(miss)}")
    assert stored.status_code == 200
    assert stored.mimetype == "application/json"
    assert stored.headers["ETag"] == miss.headers["ETag"]
    assert stored.data == miss.data.replace(b'"cached":false}', b'"cached":true}')


def test_b64_encoding_describes_the_same_numbers(client):
    request = {
        "graph": {
            "nodes": [
                {"id": "v", "op": "input", "value": [1.5, -2.0, 0.25]},
                {"id": "s", "op": "sum", "inputs": ["v"]},
            ],
            "output": "s",
        }
    }
    plain = client.post("/v1/gradients", json=request).get_json()
    encoded = client.post("/v1/gradients", json={**request, "encoding": "b64"}).get_json()
    assert encoded["hash"] != plain["hash"]  # a different body, so a different cache entry
    value = encoded["nodes"]["v"]["value"]
    assert value["dtype"] == "float64" and value["shape"] == [3]
    decoded = np.frombuffer(base64.b64decode(value["b64"]), "<f8")
    assert decoded.tolist() == plain["nodes"]["v"]["value"]


def test_wrt_limits_the_reported_nodes(client, circuit):
    body = client.post("/v1/gradients", json={**circuit, "wrt": ["z", "x"]}).get_json()
    assert list(body["nodes"]) == ["x", "z"]


def test_tensor_graph_with_seed(client):
    request = {
        "graph": {
            "nodes": [
                {"id": "W", "op": "input", "value": [[1, 2], [3, 4]]},
                {"id": "v", "op": "const", "value": [1, -1]},
                {"id": "y", "op": "matmul", "inputs": ["W", "v"]},
            ],
            "output": "y",
        },
        "seed": [1, 0],
    }
    body = client.post("/v1/gradients", json=request).get_json()
    assert body["value"] == [-1.0, -1.0]
    assert body["nodes"]["W"]["grad"] == [[1.0, -1.0], [0.0, 0.0]]


def test_evaluate_reports_values_only(client, circuit):
    response = client.post("/v1/evaluate", json=circuit)
    body = response.get_json()
    assert response.status_code == 200 and body["value"] == -12.0
    assert body["nodes"]["q"] == {"value": 3.0}
    assert response.headers["X-Cache"] == "miss"
    gradients = client.post("/v1/gradients", json=circuit)
    assert hash_of(gradients) != hash_of(response)  # the kind is part of the hash


def test_gradcheck_passes_on_a_correct_graph(client, circuit):
    response = client.post("/v1/gradcheck", json=circuit)
    assert response.status_code == 200
    body = response.get_json()
    assert body["passed"] is True and sorted(body["checks"]) == ["x", "y", "z"]
    assert body["checks"]["z"]["verdict"] == "good"
    assert body["checks"]["z"]["analytic"] == 3.0
    assert body["cached"] is False
    again = client.post("/v1/gradcheck", json=circuit)
    assert again.headers["X-Cache"] == "hit" and again.get_json()["cached"] is True
    assert hash_of(response) != hash_of(client.post("/v1/gradients", json=circuit))


def test_gradcheck_of_named_inputs(client, circuit):
    body = client.post("/v1/gradcheck", json={**circuit, "check": ["y"], "eps": 1e-4}).get_json()
    assert list(body["checks"]) == ["y"]


@pytest.mark.parametrize(
    "fmt, media_type",
    [("svg", "image/svg+xml"), ("dot", "text/vnd.graphviz"), ("png", "image/png")],
)
def test_diagram_formats(client, circuit, fmt, media_type):
    response = client.post("/v1/diagram", json={**circuit, "format": fmt})
    assert response.status_code == 200
    assert response.mimetype == media_type
    if fmt == "svg":
        ElementTree.fromstring(response.data)
    elif fmt == "png":
        assert response.data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert response.data.startswith(b"digraph")
    assert response.headers["ETag"]


def test_a_diagram_reporting_no_node_still_renders(client, circuit):
    # wrt=[] leaves every wire without numbers; Graphviz must still get valid DOT.
    response = client.post("/v1/diagram", json={**circuit, "wrt": []})
    assert response.status_code == 200, response.data


@pytest.mark.parametrize("app_config", [{"DIAGRAM_TIMEOUT_SECONDS": 1e-6}])
def test_a_diagram_over_its_render_time_is_504(client, circuit):
    response = client.post("/v1/diagram", json=circuit)
    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == "deadline_exceeded"


def test_diagram_defaults_to_svg(client, circuit):
    assert client.post("/v1/diagram", json=circuit).mimetype == "image/svg+xml"


def test_ops_is_the_engine_catalog(client):
    response = client.get("/v1/ops")
    assert response.status_code == 200
    assert response.get_json() == orjson.loads(orjson.dumps({"ops": describe_ops()}))
    names = {op["name"] for op in response.get_json()["ops"]}
    assert {"input", "const", "add", "mul", "matmul", "softmax"} <= names


def test_content_type_with_charset_is_json(client, circuit):
    response = client.post(
        "/v1/gradients", data=orjson.dumps(circuit), content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 200


def stages_of(response) -> list[str]:
    return [part.split(";")[0] for part in response.headers["Server-Timing"].split(", ")]


def test_server_timing_names_the_stages(client, circuit):
    assert stages_of(client.post("/v1/gradients", json=circuit)) == [
        "fingerprint", "parse", "load", "bind", "hash", "cache_read", "compile", "run", "dump",
        "cache_write",
    ]


def test_a_byte_identical_repeat_hits_without_loading(client, circuit):
    body = orjson.dumps(circuit)
    client.post("/v1/gradients", data=body, content_type="application/json")
    hit = client.post("/v1/gradients", data=body, content_type="application/json")
    assert hit.headers["X-Cache"] == "hit"
    assert stages_of(hit) == ["fingerprint", "cache_read"]
    # The same request spelled differently is still a hit, found through the canonical hash.
    respelled = client.post("/v1/gradients", data=body.replace(b":-2", b":-2.0"),
                            content_type="application/json")
    assert respelled.headers["X-Cache"] == "hit" and hash_of(respelled) == hash_of(hit)
    assert "load" in stages_of(respelled)


def test_a_known_body_whose_result_is_gone_is_computed_again(app, client, circuit):
    body = orjson.dumps(circuit)
    first = client.post("/v1/gradients", data=body, content_type="application/json")
    results = app.extensions["chainrule"].results  # the near cache over the embedded store
    results.near._entries.clear()
    results.far.cache.clear()
    again = client.post("/v1/gradients", data=body, content_type="application/json")
    assert again.headers["X-Cache"] == "miss" and again.data == first.data


def test_known_bodies_are_remembered_per_kind(client, circuit):
    body = orjson.dumps(circuit)
    client.post("/v1/gradients", data=body, content_type="application/json")
    evaluate = client.post("/v1/evaluate", data=body, content_type="application/json")
    assert evaluate.headers["X-Cache"] == "miss" and "nodes" in evaluate.get_json()
    assert "grad" not in evaluate.get_json()["nodes"]["x"]


def test_plans_are_reused_for_the_same_structure(app, client, circuit):
    client.post("/v1/gradients", json=circuit)
    client.post("/v1/gradients", json={**circuit, "inputs": {"x": 1}})
    client.post("/v1/evaluate", json={**circuit, "inputs": {"x": 2}})
    assert len(app.extensions["chainrule"].plans) == 1


def test_engine_version_is_in_the_hash_input(client, circuit, monkeypatch):
    uncached = {**circuit, "cache": False}  # a new engine version comes with a new process
    first = hash_of(client.post("/v1/gradients", json=uncached))
    monkeypatch.setattr("engine.ENGINE_VERSION", ENGINE_VERSION + "-next")
    assert hash_of(client.post("/v1/gradients", json=uncached)) != first


# ---------------------------------------------------------------- single flight and the deadline


def _claimed_elsewhere(app, client, body: dict) -> str:
    """The request's hash, claimed as if another worker were computing it and never finished."""
    digest = client.post("/v1/gradients", json={**body, "cache": False}).get_json()["hash"]
    assert app.extensions["chainrule"].results.claim(digest)
    return digest


@pytest.mark.parametrize("app_config", [{"COMPUTE_DEADLINE_SECONDS": 2.0}])
def test_a_request_waits_only_briefly_for_an_identical_one(app, client, circuit):
    _claimed_elsewhere(app, client, circuit)
    started = time.monotonic()
    response = client.post("/v1/gradients", json=circuit)
    waited = time.monotonic() - started
    assert response.status_code == 200 and response.headers["X-Cache"] == "miss"
    # Computing here after a quarter of the deadline, not after all of it.
    assert 0.4 <= waited < 1.5


@pytest.mark.parametrize("app_config", [{"COMPUTE_DEADLINE_SECONDS": 2.0}])
@pytest.mark.parametrize("path", ["/v1/gradients", "/v1/evaluate", "/v1/gradcheck"])
def test_one_deadline_per_request_covers_waiting_and_computing(
    app, client, circuit, monkeypatch, path
):
    deadlines = []
    real_run, real_gradcheck = Plan.run, kinds.gradcheck

    def run(self, *args, deadline=None, **kwargs):
        deadlines.append(deadline)
        return real_run(self, *args, deadline=deadline, **kwargs)

    def gradcheck(*args, deadline=None, **kwargs):
        deadlines.append(deadline)
        return real_gradcheck(*args, deadline=deadline, **kwargs)

    def slow_plan_for(self, *args, **kwargs):
        time.sleep(0.3)  # a compile that takes a while must not move the deadline
        return real_plan_for(self, *args, **kwargs)

    real_plan_for = PlanCache.plan_for
    monkeypatch.setattr(Plan, "run", run)
    monkeypatch.setattr(kinds, "gradcheck", gradcheck)
    monkeypatch.setattr(PlanCache, "plan_for", slow_plan_for)
    if path == "/v1/gradients":
        _claimed_elsewhere(app, client, circuit)
    deadlines.clear()
    started = time.monotonic()
    assert client.post(path, json=circuit).status_code == 200
    assert deadlines and len(set(deadlines)) == 1
    # Set when the request started (not when waiting ended or a stage began).
    assert started < deadlines[0] - 2.0 < started + 0.25


def test_a_reformatted_repeat_hits_after_parsing_only(client, circuit):
    client.post("/v1/gradients", json=circuit)
    spaced = orjson.dumps(circuit).replace(b",", b", ").replace(b":", b": ")
    reordered = orjson.dumps(dict(reversed(list(circuit.items()))))
    for body in (spaced, reordered):
        hit = client.post("/v1/gradients", data=body, content_type="application/json")
        assert hit.headers["X-Cache"] == "hit"
        assert stages_of(hit) == ["fingerprint", "parse", "cache_read"]


def test_an_infinite_literal_and_null_are_never_one_known_body(client, circuit):
    allowed = {**circuit, "allow_nonfinite": True}
    body = orjson.dumps({**allowed, "inputs": {"x": 1}}).replace(b'"x":1', b'"x":1e999')
    first = client.post("/v1/gradients", data=body, content_type="application/json")
    assert first.status_code == 200 and first.get_json()["nodes"]["x"]["value"] == "Infinity"
    null = orjson.dumps({**allowed, "inputs": {"x": None}})
    refused = client.post("/v1/gradients", data=null, content_type="application/json")
    assert refused.status_code == 422
