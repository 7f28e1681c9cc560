"""POST /v1/optimize through the real app: the seeds' example, the hash and the cache, stop
rules, the deadline (answered, never stored), non-finite runs, the 422s, and the event stream."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from schemas.responses import OptimizeResponseSchema
from tests.loopback import served_on_loopback

EVENT_STREAM = {"Accept": "text/event-stream"}


def node(id, op, inputs=(), **extra):
    return {"id": id, "op": op, "inputs": list(inputs), **extra}


def seeds_graph() -> dict:
    """f = (a + b) c at a = 5, b = -3, c = -2."""
    return {"nodes": [node("a", "input", value=5), node("b", "input", value=-3),
                      node("c", "input", value=-2), node("s", "add", ["a", "b"]),
                      node("f", "mul", ["s", "c"])], "output": "f"}


def seeds_request(**fields) -> dict:
    return {"graph": seeds_graph(), "params": ["a", "b", "c"], "goal": "maximize",
            "optimizer": {"name": "sgd", "lr": 0.01}, "steps": 1, **fields}


def square_request(**fields) -> dict:
    """(x - 1)^2 from x = 3."""
    graph = {"nodes": [node("x", "input", value=3.0),
                       node("d", "add_const", ["x"], attrs={"c": -1}),
                       node("f", "pow", ["d"], attrs={"exponent": 2})], "output": "f"}
    return {"graph": graph, "params": ["x"], "optimizer": {"name": "adam", "lr": 0.1},
            "steps": 40, **fields}


def events_of(body: bytes) -> list[tuple[str, object]]:
    """The (event, decoded data) pairs of a text/event-stream body."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], orjson.loads(lines["data"])))
    return events


def test_the_seeds_example(client):
    response = client.post("/v1/optimize", json=seeds_request())
    assert response.status_code == 200
    body = response.get_json()
    OptimizeResponseSchema().load(body)
    assert body["params"] == pytest.approx({"a": 4.98, "b": -3.02, "c": -1.98}, rel=1e-15)
    assert body["value"] == pytest.approx(-3.8808, rel=1e-15)
    assert (body["steps"], body["stopped"], body["cached"]) == (1, "steps", False)
    assert body["trajectory"][0] == {"step": 0, "value": -4.0, "grad_norm": math.sqrt(12)}
    assert [entry["step"] for entry in body["trajectory"]] == [0, 1]


def test_a_result_is_cached_under_its_hash(client):
    first = client.post("/v1/optimize", json=seeds_request())
    again = client.post("/v1/optimize", json=seeds_request(steps=1, goal="maximize"))
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("miss", "hit")
    assert again.data == first.data.replace(b'"cached":false}', b'"cached":true}')
    stored = client.get(f"/v1/results/{first.get_json()['hash']}")
    assert stored.status_code == 200 and stored.get_json()["trajectory"]


def test_the_hash_covers_what_decides_the_result_and_only_that(client):
    def digest(**fields):
        return client.post("/v1/optimize", json=seeds_request(cache=False, **fields)).get_json()[
            "hash"]

    base = digest()
    same = [
        digest(optimizer={"name": "sgd", "lr": 0.01, "momentum": 0, "weight_decay": 0.0}),
        digest(lr_schedule={"name": "constant", "end": 0.5}),
        digest(record_every=1, stop={}),
    ]
    assert same == [base] * 3
    different = [
        digest(steps=2), digest(goal="minimize"), digest(params=["a", "b"]),
        digest(params=["c", "b", "a"]), digest(optimizer={"name": "sgd", "lr": 0.02}),
        digest(optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9}),
        digest(optimizer={"name": "adam", "lr": 0.01}),
        digest(lr_schedule={"name": "linear", "end": 0.1}),
        digest(lr_schedule={"name": "cosine", "end": 0.1}), digest(record_every=2),
        digest(stop={"value_above": 0.0}), digest(encoding="b64"),
        digest(inputs={"a": 4}),
    ]
    assert len({base, *different}) == len(different) + 1


def test_schedules_stop_rules_and_record_every(client):
    body = client.post("/v1/optimize", json=square_request(
        steps=400, record_every=50, stop={"value_below": 1e-3},
        lr_schedule={"name": "cosine", "end": 0.1})).get_json()
    assert body["stopped"] == "value" and body["value"] < 1e-3 and body["steps"] < 400
    steps = [entry["step"] for entry in body["trajectory"]]
    assert steps[:-1] == list(range(0, steps[-1], 50)) and steps[-1] == body["steps"]
    assert body["params"]["x"] == pytest.approx(1.0, abs=0.05)


def long_run(length: int = 3000, **fields) -> dict:
    """A scalar chain (no BLAS, so its speed hardly depends on the machine's load): 10,000
    steps of 3,000 nodes take far longer than the short deadlines these tests set."""
    nodes = [node("x", "input", value=0.5)]
    nodes += [node(f"t{k}", "tanh", [f"t{k - 1}" if k else "x"]) for k in range(length)]
    graph = {"nodes": nodes, "output": f"t{length - 1}"}
    return {"graph": graph, "params": ["x"], "optimizer": {"name": "sgd", "lr": 1e-3},
            "steps": 10_000, **fields}


def test_a_run_past_the_deadline_is_answered_and_never_stored(make_app):
    client = make_app({"COMPUTE_DEADLINE_SECONDS": 1.0}).test_client()
    request = long_run(record_every=100)
    first = client.post("/v1/optimize", json=request)
    assert first.status_code == 200
    body = first.get_json()
    assert body["stopped"] == "deadline" and body["steps"] < 10_000
    assert body["trajectory"][-1]["step"] == body["steps"]
    again = client.post("/v1/optimize", json=request)
    assert again.headers["X-Cache"] == "miss" and again.get_json()["stopped"] == "deadline"
    assert client.get(f"/v1/results/{body['hash']}").status_code == 404


def test_a_nonfinite_value_stops_at_the_last_finite_step(client):
    graph = {"nodes": [node("x", "input", value=1.0), node("f", "log", ["x"])], "output": "f"}
    body = client.post("/v1/optimize", json={
        "graph": graph, "params": ["x"], "optimizer": {"name": "sgd", "lr": 2.0}, "steps": 5,
    }).get_json()
    assert (body["stopped"], body["steps"], body["params"], body["value"]) == (
        "nonfinite", 0, {"x": 1.0}, 0.0)


@pytest.mark.parametrize(("fields", "node_id", "details"), [
    ({"params": ["s"]}, "s", {"params": ["params names 's', an 'add' node; only input nodes "
                                         "can be optimised"]}),
    ({"params": ["zz"]}, "zz", {"params": ["params names 'zz', which is not a node of the "
                                           "graph; only input nodes can be optimised"]}),
    ({"params": []}, None, {"params": ["Shorter than minimum length 1."]}),
    ({"params": ["a", "a"]}, "a", {"params": ["params names 'a' twice"]}),
    ({"optimizer": {"name": "rmsprop", "lr": 0.1}}, None,
     {"optimizer": {"name": ["Must be one of: sgd, adam."]}}),
    ({"optimizer": {"name": "sgd", "lr": 0}}, None,
     {"optimizer": {"lr": ["Must be greater than 0."]}}),
    ({"optimizer": {"name": "sgd", "lr": -1}}, None,
     {"optimizer": {"lr": ["Must be greater than 0."]}}),
    ({"optimizer": {"name": "adam", "lr": 0.1, "momentum": 0.9}}, None,
     {"optimizer": {"momentum": ["not an option of adam"]}}),
    ({"optimizer": {"name": "sgd", "lr": 0.1, "nesterov": True}}, None,
     {"optimizer": {"nesterov": ["nesterov momentum needs a momentum > 0"]}}),
    ({"optimizer": {"name": "adam", "lr": 0.1, "betas": [0.9, 1.0]}}, None,
     {"optimizer": {"betas": {"1": ["Must be greater than or equal to 0 and less than 1."]}}}),
    ({"lr_schedule": {"name": "step"}}, None,
     {"lr_schedule": {"name": ["Must be one of: constant, linear, cosine."]}}),
    ({"goal": "up"}, None, {"goal": ["Must be one of: minimize, maximize."]}),
    ({"steps": 0}, None, {"steps": ["Must be greater than or equal to 1."]}),
    ({"steps": 10_001}, None, {"steps": ["at most 10000 steps (MAX_OPTIMIZE_STEPS)"]}),
    ({"stop": {"loss_below": 1}}, None, {"stop": {"loss_below": ["Unknown field."]}}),
])
def test_bad_requests_are_422_naming_the_field_or_node(client, fields, node_id, details):
    for headers in ({}, EVENT_STREAM):  # refused before any stream begins
        response = client.post("/v1/optimize", json=seeds_request(**fields), headers=headers)
        assert response.status_code == 422 and response.mimetype == "application/json"
        error = response.get_json()["error"]
        assert (error["code"], error["node"], error["details"]) == (
            "validation_error", node_id, details)


def test_graph_faults_name_the_node(client):
    vector = {"nodes": [node("x", "input", value=[1.0, 2.0]), node("f", "exp", ["x"])],
              "output": "f"}
    response = client.post("/v1/optimize", json={
        "graph": vector, "params": ["x"], "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 1})
    error = response.get_json()["error"]
    assert response.status_code == 422
    assert (error["code"], error["node"]) == ("shape_mismatch", "f")


def test_max_optimize_steps_is_a_setting(make_app):
    client = make_app({"MAX_OPTIMIZE_STEPS": 5}).test_client()
    assert client.post("/v1/optimize", json=seeds_request(steps=5)).status_code == 200
    error = client.post("/v1/optimize", json=seeds_request(steps=6)).get_json()["error"]
    assert error["details"] == {"steps": ["at most 5 steps (MAX_OPTIMIZE_STEPS)"]}


def test_b64_encoding_writes_tensor_params_as_encoded_objects(client):
    graph = {"nodes": [node("x", "input", value=[1.0, -2.0]), node("q", "mul", ["x", "x"]),
                       node("f", "sum", ["q"])], "output": "f"}
    body = client.post("/v1/optimize", json={
        "graph": graph, "params": ["x"], "optimizer": {"name": "sgd", "lr": 0.25}, "steps": 1,
        "encoding": "b64"}).get_json()
    assert body["params"]["x"]["shape"] == [2] and body["value"] == 1.25


# ---------------------------------------------------------------- the event stream


def test_the_event_stream_sends_each_recorded_step_then_the_body(client):
    plain = client.post("/v1/optimize", json=square_request(record_every=10, cache=False))
    streamed = client.post("/v1/optimize", json=square_request(record_every=10),
                           headers=EVENT_STREAM)
    assert streamed.status_code == 200 and streamed.mimetype == "text/event-stream"
    events = events_of(streamed.data)
    body = plain.get_json()
    assert [name for name, _ in events] == ["step"] * 5 + ["result"]
    assert [data for _, data in events[:-1]] == body["trajectory"]
    assert events[-1][1] == body
    assert streamed.headers["ETag"] == f'"{body["hash"]}"'
    assert (plain.headers["X-Cache"], streamed.headers["X-Cache"]) == ("bypass", "miss")


def test_a_stored_result_streams_as_a_fresh_one(client):
    fresh = events_of(client.post("/v1/optimize", json=square_request(),
                                  headers=EVENT_STREAM).data)
    response = client.post("/v1/optimize", json=square_request(), headers=EVENT_STREAM)
    replayed = events_of(response.data)
    assert response.headers["X-Cache"] == "hit"
    assert replayed[:-1] == fresh[:-1] and len(replayed) == 41 + 1
    assert replayed[-1][1] == {**fresh[-1][1], "cached": True}


def test_json_is_answered_unless_the_stream_is_preferred(client):
    for accept in ("application/json", "*/*", "text/event-stream;q=0.5, application/json"):
        response = client.post("/v1/optimize", json=seeds_request(), headers={"Accept": accept})
        assert response.mimetype == "application/json", accept
    response = client.post("/v1/optimize", json=seeds_request(),
                           headers={"Accept": "application/json;q=0.5, text/event-stream"})
    assert response.mimetype == "text/event-stream"


def test_a_failure_after_the_stream_began_is_an_error_event(client, monkeypatch):
    def broken(result, **kwargs):
        raise RuntimeError("a bug after the steps went out")

    monkeypatch.setattr("service.kinds.dump_optimize", broken)
    response = client.post("/v1/optimize", json=square_request(steps=3), headers=EVENT_STREAM)
    events = events_of(response.data)
    assert response.status_code == 200
    assert [name for name, _ in events] == ["step"] * 4 + ["error"]
    assert events[-1][1]["error"]["code"] == "internal"
    assert "Traceback" not in response.data.decode()


def test_a_stream_over_the_deadline_ends_in_a_deadline_result(make_app):
    client = make_app({"COMPUTE_DEADLINE_SECONDS": 1.0}).test_client()
    events = events_of(client.post("/v1/optimize", json=long_run(record_every=1000),
                                   headers=EVENT_STREAM).data)
    name, body = events[-1]
    assert name == "result" and body["stopped"] == "deadline"
    assert [data for _, data in events[:-1]] == body["trajectory"]


def test_the_openapi_document_describes_optimize_and_its_stream(client):
    spec = client.get("/openapi.json").get_json()
    ok = spec["paths"]["/v1/optimize"]["post"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/OptimizeResponse"}
    assert "event: step" in ok["text/event-stream"]["schema"]["description"]
    request = spec["components"]["schemas"]["OptimizeRequest"]
    assert request["properties"]["goal"]["enum"] == ["minimize", "maximize"]
    stopped = spec["components"]["schemas"]["OptimizeResponse"]["properties"]["stopped"]
    assert stopped["enum"] == ["steps", "grad_norm", "value", "deadline", "nonfinite"]


def test_the_readme_example_answers_what_the_readme_says(client):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Optimisation: POST /v1/optimize"):]
    command = section[section.index("```bash"):section.index("```", section.index("```bash") + 3)]
    body = json.loads(command[command.index("-d '") + 4:command.rindex("'")])
    answer = client.post("/v1/optimize", json=body).get_json()
    assert answer["params"] == pytest.approx({"a": 4.98, "b": -3.02, "c": -1.98}, rel=1e-15)
    assert f'"value": {answer["value"]!r}' in section
    assert json.dumps(answer["trajectory"][0]) in section.replace("\n", " ")


def test_a_client_that_leaves_ends_the_run(make_app):
    app = make_app({"COMPUTE_DEADLINE_SECONDS": 120.0})
    request = long_run(20_000, cache=False)  # 10,000 steps: minutes
    with served_on_loopback(app) as base:
        url = f"{base}/v1/optimize"
        with httpx.stream("POST", url, json=request, headers=EVENT_STREAM, timeout=30) as reply:
            first = next(reply.iter_lines())
        assert first == "event: step"
        give_up = time.monotonic() + 15
        while any(t.name == "chainrule-stream" for t in threading.enumerate()):
            assert time.monotonic() < give_up, "the run went on after its client left"
            time.sleep(0.02)


def test_a_registered_graph_optimises_and_streams_with_the_inline_hash(client):
    request = square_request(record_every=10)
    registered = client.post("/v1/graphs", json={"graph": request.pop("graph")}).get_json()
    path = f"/v1/graphs/{registered['id']}/optimize"
    inline = client.post("/v1/optimize", json=square_request(record_every=10)).get_json()
    plain = client.post(path, json=request).get_json()
    assert plain == {**inline, "cached": True}  # the inline request stored it, same hash
    events = events_of(client.post(path, json={**request, "cache": False},
                                   headers=EVENT_STREAM).data)
    assert [name for name, _ in events] == ["step"] * 5 + ["result"]
    assert events[-1][1] == {**inline, "hash": events[-1][1]["hash"]}


def test_a_stream_that_waited_for_an_identical_run_says_hit(make_app):
    app = make_app({"COMPUTE_DEADLINE_SECONDS": 60.0})
    request = {**long_run(1000), "steps": 6000}  # a few seconds of work
    with served_on_loopback(app) as base:
        url = f"{base}/v1/optimize"
        plain: dict = {}
        computing = threading.Thread(
            target=lambda: plain.update(reply=httpx.post(url, json=request, timeout=60)))
        computing.start()
        time.sleep(0.3)  # the plain request holds the claim and computes
        streamed = httpx.post(url, json=request, headers=EVENT_STREAM, timeout=60)
        computing.join(timeout=60)
        # one computed, the other waited for it (whichever claimed first) and says hit
        outcomes = {"plain": plain["reply"].headers["X-Cache"],
                    "streamed": streamed.headers["X-Cache"]}
        assert sorted(outcomes.values()) == ["hit", "miss"]
        if outcomes["streamed"] == "hit":
            assert events_of(streamed.content)[-1][1]["cached"] is True
