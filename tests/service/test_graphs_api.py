"""Graphs as resources (CONTRACT section 7) through the real app, in-process store and Redis."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from werkzeug.serving import make_server

from engine import ENGINE_VERSION
from service.kinds import KINDS
from tests.service.conftest import CIRCUIT, chain_request

# A body for each kind beyond the graph (every kind of the table must have one).
KIND_FIELDS = {
    "gradients": {"inputs": {"x": 3}, "wrt": ["x", "q"]},
    "evaluate": {"inputs": {"y": 1.5}},
    "gradcheck": {"check": ["x"], "eps": 1e-6},
    "diagram": {"format": "dot", "inputs": {"z": 2}},
    "jacobian": {"wrt": ["x", "q"], "batch": {"x": [1, 2, 3]}},
    "optimize": {"params": ["x", "y"], "optimizer": {"name": "adam", "lr": 0.1}, "steps": 5,
                 "inputs": {"z": 2}},
}


def test_every_kind_has_a_case_here():
    assert KIND_FIELDS.keys() == KINDS.keys()


@pytest.fixture(params=["memory", "redis"])
def graph_app(request, make_app):
    """The app over the in-process store, then over a real Redis."""
    if request.param == "memory":
        return make_app()
    return make_app({"REDIS_URL": request.getfixturevalue("redis_server").url})


def register(client, graph: dict):
    return client.post("/v1/graphs", json={"graph": graph})


def registered_id(client, graph: dict | None = None) -> str:
    response = register(client, graph or copy.deepcopy(CIRCUIT["graph"]))
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()["id"]


def test_registration_answers_the_summary_then_200_for_the_same_graph(graph_app):
    client = graph_app.test_client()
    first = register(client, CIRCUIT["graph"])
    assert first.status_code == 201
    summary = first.get_json()
    assert len(summary["id"]) == 64 and int(summary["id"], 16) >= 0
    assert summary == {
        "id": summary["id"], "nodes": 5, "inputs": {"x": [], "y": [], "z": []}, "output": "f",
    }
    assert first.headers["Location"] == f"/v1/graphs/{summary['id']}"
    again = register(client, CIRCUIT["graph"])
    assert again.status_code == 200 and again.get_json() == summary


def test_spelling_and_order_do_not_change_the_id_but_a_const_does(graph_app):
    client = graph_app.test_client()
    graph = copy.deepcopy(CIRCUIT["graph"])
    base = registered_id(client, graph)
    respelled = {"output": "f", "nodes": list(reversed(graph["nodes"]))}
    respelled["nodes"][-1] = {"id": "x", "op": "input", "value": -2.0}  # 2 vs 2.0
    assert registered_id(client, respelled) == base
    other_default = copy.deepcopy(graph)
    other_default["nodes"][0]["value"] = -3
    assert registered_id(client, other_default) != base
    with_const = {"nodes": [{"id": "c", "op": "const", "value": 2}, {"id": "x", "op": "input"},
                            {"id": "f", "op": "mul", "inputs": ["c", "x"]}], "output": "f"}
    other_const = copy.deepcopy(with_const)
    other_const["nodes"][0]["value"] = 3
    assert registered_id(client, with_const) != registered_id(client, other_const)


def test_get_answers_the_canonical_graph_which_registers_the_same_id(graph_app):
    client = graph_app.test_client()
    graph = {"nodes": [{"id": "x", "op": "input", "value": [1, 2]},
                       {"id": "s", "op": "softmax", "inputs": ["x"]},
                       {"id": "t", "op": "sum", "inputs": ["s"], "attrs": {"axis": 0}}],
             "output": "t"}
    graph_id = registered_id(client, graph)
    shown = client.get(f"/v1/graphs/{graph_id}")
    assert shown.status_code == 200
    body = shown.get_json()
    assert list(body) == ["id", "graph", "nodes", "inputs", "output"]
    assert body["id"] == graph_id and body["nodes"] == 3 and body["output"] == "t"
    assert body["inputs"] == {"x": [2]}
    nodes = body["graph"]["nodes"]
    assert [node["id"] for node in nodes] == ["s", "t", "x"]
    assert nodes[0]["attrs"] == {"axis": -1}  # defaults spelled out
    assert nodes[2]["value"] == [1.0, 2.0]
    assert registered_id(client, body["graph"]) == graph_id


@pytest.mark.parametrize("kind", list(KIND_FIELDS))
def test_a_registered_request_answers_as_the_inline_one(graph_app, kind):
    client = graph_app.test_client()
    graph_id = registered_id(client)
    fields = KIND_FIELDS[kind]
    by_id = client.post(f"/v1/graphs/{graph_id}/{kind}", json=fields)
    inline = client.post(f"/v1/{kind}", json={**copy.deepcopy(CIRCUIT), **fields})
    assert by_id.status_code == inline.status_code == 200
    assert by_id.headers["ETag"] == inline.headers["ETag"]
    assert by_id.mimetype == inline.mimetype
    if KINDS[kind].cached:
        assert by_id.headers["X-Cache"] == "miss" and inline.headers["X-Cache"] == "hit"
        assert by_id.get_json() == {**inline.get_json(), "cached": False}
    else:
        assert by_id.data == inline.data


def test_inputs_without_defaults_come_with_each_request(graph_app):
    client = graph_app.test_client()
    graph = {"nodes": [{"id": "x", "op": "input"}, {"id": "w", "op": "input", "value": [1, 2]},
                       {"id": "f", "op": "mul", "inputs": ["x", "w"]}], "output": "f"}
    response = register(client, graph)
    assert response.status_code == 201
    assert response.get_json()["inputs"] == {"w": [2], "x": None}
    graph_id = response.get_json()["id"]
    answer = client.post(f"/v1/graphs/{graph_id}/evaluate", json={"inputs": {"x": [3, 4]}})
    assert answer.status_code == 200 and answer.get_json()["value"] == [3.0, 8.0]
    missing = client.post(f"/v1/graphs/{graph_id}/evaluate", json={})
    assert missing.status_code == 422
    assert missing.get_json()["error"]["code"] == "missing_input"
    assert missing.get_json()["error"]["node"] == "x"
    mismatch = client.post(f"/v1/graphs/{graph_id}/evaluate", json={"inputs": {"x": [1, 2, 3]}})
    assert mismatch.get_json()["error"]["code"] == "shape_mismatch"


def test_the_body_of_a_registered_request_takes_no_graph(graph_app):
    client = graph_app.test_client()
    graph_id = registered_id(client)
    response = client.post(f"/v1/graphs/{graph_id}/gradients", json=copy.deepcopy(CIRCUIT))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and "graph" in error["details"]
    unknown_input = client.post(f"/v1/graphs/{graph_id}/gradients", json={"inputs": {"q": 1}})
    assert unknown_input.get_json()["error"]["node"] == "q"


@pytest.mark.parametrize("graph_id", ["0" * 64, "A" * 64, "abc", "0" * 65])
def test_an_unknown_or_malformed_id_is_404(graph_app, graph_id):
    client = graph_app.test_client()
    for response in (client.get(f"/v1/graphs/{graph_id}"),
                     client.post(f"/v1/graphs/{graph_id}/gradients", json={})):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def test_an_unknown_kind_under_a_graph_is_404(graph_app):
    client = graph_app.test_client()
    graph_id = registered_id(client)
    assert client.post(f"/v1/graphs/{graph_id}/results", json={}).status_code == 404


# ---------------------------------------------------------------- validation at registration

INVALID_GRAPHS = [
    ({"nodes": [{"id": "a", "op": "neg", "inputs": ["b"]},
                {"id": "b", "op": "neg", "inputs": ["a"]}], "output": "a"}, 422, "cycle", "a"),
    ({"nodes": [{"id": "a", "op": "frobnicate"}], "output": "a"}, 422, "unknown_op", "a"),
    ({"nodes": [{"id": "x", "op": "input", "value": 1},
                {"id": "f", "op": "neg", "inputs": ["x", "x"]}], "output": "f"}, 422, "arity", "f"),
    ({"nodes": [{"id": "x", "op": "input", "value": [1, 2]},
                {"id": "y", "op": "input", "value": [1, 2, 3]},
                {"id": "f", "op": "add", "inputs": ["x", "y"]}], "output": "f"},
     422, "shape_mismatch", "f"),
    ({"nodes": [{"id": "x", "op": "input"},
                {"id": "f", "op": "scale", "inputs": ["x"], "attrs": {"b": 2}}], "output": "f"},
     422, "bad_attr", "f"),
    ({"nodes": [{"id": "x", "op": "input"}], "output": "nope"}, 422, "unknown_node", "nope"),
    ({"nodes": [{"id": "x", "op": "input"}, {"id": "x", "op": "input"}], "output": "x"},
     422, "duplicate_id", "x"),
    ({"nodes": [{"id": "x", "op": "const"}], "output": "x"}, 422, "validation_error", None),
    ({"nodes": "x", "output": "x"}, 422, "validation_error", None),
]


@pytest.mark.parametrize(("graph", "status", "code", "node"), INVALID_GRAPHS)
def test_an_invalid_graph_is_refused_at_registration(graph_app, graph, status, code, node):
    response = register(graph_app.test_client(), graph)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert (error["code"], error["node"]) == (code, node)


def test_registration_checks_the_body_and_the_limits(make_app):
    client = make_app({"MAX_NODES": 10, "MAX_ELEMENTS": 4}).test_client()
    too_many = client.post("/v1/graphs", json=chain_request(20))
    assert too_many.status_code == 413 and too_many.get_json()["error"]["code"] == "too_large"
    big = {"nodes": [{"id": "x", "op": "input", "value": [1, 2, 3, 4, 5]}], "output": "x"}
    assert register(client, big).status_code == 413
    extra = client.post("/v1/graphs", json={**copy.deepcopy(CIRCUIT), "inputs": {"x": 1}})
    assert extra.status_code == 422 and "inputs" in extra.get_json()["error"]["details"]
    assert client.post("/v1/graphs", json={}).status_code == 422
    not_json = client.post("/v1/graphs", data="{}", content_type="text/plain")
    assert not_json.status_code == 415
    assert client.post("/v1/graphs", data="{", content_type="application/json").status_code == 400


# ---------------------------------------------------------------- the TTL


@pytest.fixture(params=["memory", "redis"])
def ttl_app(request, make_app):
    """make(ttl): an app whose graphs live `ttl` seconds, over each store."""

    def make(ttl: int):
        config = {"GRAPH_TTL_SECONDS": ttl}
        if request.param == "redis":
            config["REDIS_URL"] = request.getfixturevalue("redis_server").url
        return make_app(config)

    return make


@pytest.fixture
def short_ttl_app(ttl_app):
    return ttl_app(1)


def test_a_graph_unused_past_its_ttl_is_404_until_registered_again(short_ttl_app):
    client = short_ttl_app.test_client()
    graph_id = registered_id(client)
    time.sleep(1.3)
    assert client.get(f"/v1/graphs/{graph_id}").status_code == 404
    assert client.post(f"/v1/graphs/{graph_id}/gradients", json={}).status_code == 404
    assert register(client, CIRCUIT["graph"]).status_code == 201
    assert client.post(f"/v1/graphs/{graph_id}/gradients", json={}).status_code == 200


def test_each_use_refreshes_the_ttl(ttl_app):
    # Two-second TTL used every 0.2 s for five seconds: a busy machine may delay a use by up
    # to a second without the graph lapsing, yet only refreshing keeps it past its first TTL.
    client = ttl_app(2).test_client()
    graph_id = registered_id(client)
    give_up = time.monotonic() + 5.0
    while time.monotonic() < give_up:
        response = client.post(f"/v1/graphs/{graph_id}/evaluate", json={})
        assert response.status_code == 200
        time.sleep(0.2)


def test_redis_holds_the_graph_under_its_key_with_the_graph_ttl(make_app, redis_server):
    client = make_app({"REDIS_URL": redis_server.url}).test_client()
    graph_id = registered_id(client)
    key = f"chainrule:v{ENGINE_VERSION}:{{{graph_id}}}:graph"
    with redis_server.client() as raw:
        assert raw.get(key).startswith(b"chainrule-graph-1\n")
        assert 86000 < raw.ttl(key) <= 86400


def test_another_replica_serves_a_graph_registered_on_one(make_app, redis_server):
    first = make_app({"REDIS_URL": redis_server.url}).test_client()
    second = make_app({"REDIS_URL": redis_server.url}).test_client()
    graph_id = registered_id(first)
    by_second = second.post(f"/v1/graphs/{graph_id}/gradients", json={"inputs": {"x": 7}})
    by_first = first.post(f"/v1/graphs/{graph_id}/gradients", json={"inputs": {"x": 7}})
    assert by_second.status_code == 200 and by_second.headers["X-Cache"] == "miss"
    assert by_first.headers["X-Cache"] == "hit"
    assert by_first.headers["ETag"] == by_second.headers["ETag"]
    assert second.get(f"/v1/graphs/{graph_id}").get_json() == (
        first.get(f"/v1/graphs/{graph_id}").get_json()
    )


def test_in_process_stores_do_not_share_graphs(make_app):
    graph_id = registered_id(make_app().test_client())
    assert make_app().test_client().get(f"/v1/graphs/{graph_id}").status_code == 404


# ---------------------------------------------------------------- over real HTTP


@pytest.fixture(params=["memory", "redis"])
def live_url(request, make_app) -> Iterator[str]:
    """The app served by a real threaded HTTP server on a free loopback port."""
    config = {}
    if request.param == "redis":
        config["REDIS_URL"] = request.getfixturevalue("redis_server").url
    server = make_server("127.0.0.1", 0, make_app(config), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def test_concurrent_registrations_of_one_graph_agree(live_url):
    body = {"graph": chain_request(2000)["graph"]}
    barrier = threading.Barrier(4)
    answers: list[httpx.Response] = []

    def register_over_http() -> None:
        with httpx.Client(base_url=live_url, timeout=60) as http:
            barrier.wait(10)
            answers.append(http.post("/v1/graphs", json=body))

    threads = [threading.Thread(target=register_over_http) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 4
    assert {answer.status_code for answer in answers} <= {200, 201}
    assert 201 in {answer.status_code for answer in answers}
    ids = {answer.json()["id"] for answer in answers}
    assert len(ids) == 1
    with httpx.Client(base_url=live_url, timeout=60) as http:
        graph_id = ids.pop()
        assert http.post("/v1/graphs", json=body).status_code == 200
        shown = http.get(f"/v1/graphs/{graph_id}")
        assert shown.status_code == 200 and shown.json()["nodes"] == 2001
        result = http.post(f"/v1/graphs/{graph_id}/gradients", json={"inputs": {"x": 0.1}})
        inline = http.post("/v1/gradients", json={**body, "inputs": {"x": 0.1}})
        assert result.status_code == 200 and result.headers["ETag"] == inline.headers["ETag"]


def test_one_body_sent_to_two_registered_graphs_answers_for_each(graph_app):
    client = graph_app.test_client()
    doubled = {"nodes": [{"id": "x", "op": "input"}, {"id": "f", "op": "scale",
                                                      "inputs": ["x"], "attrs": {"a": 2}}],
               "output": "f"}
    tripled = copy.deepcopy(doubled)
    tripled["nodes"][1]["attrs"]["a"] = 3
    values = [
        client.post(f"/v1/graphs/{registered_id(client, graph)}/evaluate",
                    json={"inputs": {"x": 1}}).get_json()["value"]
        for graph in (doubled, tripled)
    ]
    assert values == [2.0, 3.0]


def test_a_worker_serves_the_graphs_it_holds_while_redis_is_away(make_app, redis_server):
    client = make_app({"REDIS_URL": redis_server.url, "GRAPH_TTL_SECONDS": 1}).test_client()
    graph_id = registered_id(client)
    redis_server.stop()
    time.sleep(0.6)  # past half the TTL: the worker asks the store, which does not answer
    answer = client.post(f"/v1/graphs/{graph_id}/gradients", json={"inputs": {"x": 1}})
    assert answer.status_code == 200 and answer.headers["X-Cache"] == "miss"
    unknown = client.get(f"/v1/graphs/{'1' * 64}")
    assert unknown.status_code == 404 and "unreachable" in unknown.get_json()["error"]["message"]
