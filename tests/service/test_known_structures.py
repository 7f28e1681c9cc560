"""Known structures (service/known_structures.py): the same nodes sent again with new values
answer exactly as a new graph would, errors included, without loading the nodes again."""

from __future__ import annotations

import copy

import orjson
import pytest

from engine import Graph, Node
from schemas import canonical_graph
from service.known_requests import JSON_FINGERPRINT_MAX_BYTES
from service.known_structures import KnownStructures, structure_of
from tests.service.conftest import chain_request

# each kind's fields beyond the graph
KINDS = {"gradients": {}, "evaluate": {}, "jacobian": {"wrt": ["x", "z"]}, "gradcheck": {}}


def with_values(body: dict, values: dict[str, object]) -> dict:
    """A copy of `body` whose nodes named in `values` hold those values instead."""
    body = copy.deepcopy(body)
    for node in body["graph"]["nodes"]:
        if node["id"] in values:
            node["value"] = values[node["id"]]
    return body


def make_known(client, kind: str, body: dict) -> None:
    """Load `body`'s structure twice (a structure is kept the second time it loads): the
    second time uncached, so that it is loaded rather than found by its bytes."""
    for cache in (True, False):
        assert client.post(f"/v1/{kind}", json={**body, "cache": cache}).status_code == 200


def answers(client, kind: str, body: dict) -> tuple[int, dict, str | None]:
    response = client.post(f"/v1/{kind}", json=body)
    answer = response.get_json()
    answer.pop("cached", None)
    return response.status_code, answer, response.headers.get("ETag")


@pytest.fixture(params=["embedded", "redis"])
def two_apps(request, make_app):
    """Two apps over one kind of store: the one under test, and a fresh one per request."""
    config = {}
    if request.param == "redis":
        config = {"REDIS_URL": request.getfixturevalue("redis_server").url}
    return make_app(config), lambda: make_app(config).test_client()


@pytest.mark.parametrize("kind", KINDS)
def test_new_values_on_a_known_structure_answer_as_a_new_graph(two_apps, circuit, kind):
    app, fresh = two_apps
    client = app.test_client()
    circuit.update(KINDS[kind])
    make_known(client, kind, circuit)
    for values in ({"x": 3, "y": -1.5, "z": 0.25}, {"x": 1e-3}, {"z": [1.0, 2.0]}):
        body = with_values(circuit, values)
        assert answers(client, kind, body) == answers(fresh(), kind, body)
    assert len(app.extensions["chainrule"].known_structures) == 1


def test_a_const_takes_its_new_value(client):
    body = {"graph": {"nodes": [
        {"id": "x", "op": "input", "value": 2},
        {"id": "c", "op": "const", "value": 3},
        {"id": "f", "op": "mul", "inputs": ["x", "c"]},
    ], "output": "f"}}
    make_known(client, "gradients", body)
    assert client.post("/v1/gradients", json=body).json["nodes"]["f"]["value"] == 6.0
    again = client.post("/v1/gradients", json=with_values(body, {"c": -5})).json
    assert again["nodes"]["f"]["value"] == -10.0 and again["nodes"]["x"]["grad"] == -5.0


@pytest.mark.parametrize("value, status", [
    ("three", 422), (None, 422), ({"dtype": "float64", "shape": [2], "b64": "!"}, 422),
    ([[1.0, 2.0], [3.0]], 422), ([0.5] * 50, 413),
])
def test_a_bad_value_on_a_known_structure_is_refused_as_on_a_new_graph(
    make_app, circuit, value, status
):
    config = {"MAX_ELEMENTS": 10}
    app = make_app(config)
    client = app.test_client()
    make_known(client, "gradients", circuit)
    assert len(app.extensions["chainrule"].known_structures) == 1
    body = with_values(circuit, {"y": value})
    known = client.post("/v1/gradients", json=body)
    new = make_app(config).test_client().post("/v1/gradients", json=body)
    assert known.status_code == new.status_code == status
    assert known.json["error"] == new.json["error"]


def test_a_node_without_its_value_is_another_structure(client, circuit):
    make_known(client, "gradients", circuit)
    del circuit["graph"]["nodes"][0]["value"]  # x, an input, now without a default
    missing = client.post("/v1/gradients", json=circuit)
    assert missing.status_code == 422 and missing.json["error"]["node"] == "x"
    supplied = client.post("/v1/gradients", json={**circuit, "inputs": {"x": -2}})
    assert supplied.json["nodes"]["f"]["value"] == -12.0


def test_a_gate_given_a_value_is_refused_though_its_structure_is_known(client, circuit):
    make_known(client, "gradients", circuit)
    refused = client.post("/v1/gradients", json=with_values(circuit, {"q": 1.0}))
    assert refused.status_code == 422 and refused.json["error"]["node"] == "q"


def test_reading_the_structure_leaves_the_body_as_sent(circuit):
    sent = copy.deepcopy(circuit)
    structure = structure_of(circuit)
    assert circuit == sent
    assert structure.valued == [0, 1, 2] and structure.values == [-2, 5, -4]
    assert structure_of(with_values(circuit, {"x": 7})).key == structure.key
    respelled = copy.deepcopy(circuit)
    respelled["graph"]["nodes"][3]["inputs"] = ["y", "x"]
    assert structure_of(respelled).key != structure.key


@pytest.mark.parametrize("body", [[], {"graph": []}, {"graph": {"nodes": [1]}}, {"graph": {}}])
def test_a_body_without_node_objects_has_no_structure(body):
    assert structure_of(body) is None


def remember(known: KnownStructures, body: dict) -> None:
    nodes = [Node(n["id"], n["op"], tuple(n.get("inputs", ())), {}, n.get("value"))
             for n in body["graph"]["nodes"]]
    graph = Graph(tuple(nodes), body["graph"]["output"])
    known.remember(body, None, graph, canonical_graph(graph))


def test_a_structure_is_kept_the_second_time_it_loads():
    known = KnownStructures(max_items=8, max_nodes=1000)
    remember(known, chain_request(5))
    assert len(known) == 0 and known.recall(structure_of(chain_request(5)), None) is None
    remember(known, chain_request(5, 0.75))
    assert len(known) == 1 and known.recall(structure_of(chain_request(5)), None) is not None


def test_known_structures_are_bounded_by_the_nodes_they_hold():
    known = KnownStructures(max_items=8, max_nodes=120)
    for length in (50, 51, 52):
        for _ in range(2):
            remember(known, chain_request(length))
    assert len(known) == 2  # 51 + 52 + 53 nodes do not fit in 120
    oldest = structure_of(chain_request(50))
    assert known.recall(oldest, None) is None
    newest = known.recall(structure_of(chain_request(52, 0.75)), None)
    assert newest is not None and float(newest.sources.nodes[0].value) == 0.75


def test_the_structure_key_ignores_spelling_of_values_only(circuit):
    """Values are read, not written: 2 and 2.0 are one value; the key is the rest."""
    a = structure_of(orjson.loads(orjson.dumps(with_values(circuit, {"x": 2}))))
    b = structure_of(orjson.loads(orjson.dumps(with_values(circuit, {"x": 2.0}))))
    assert a.key == b.key


def test_a_reformatted_repeat_of_a_big_body_hits_through_its_known_structure(
    client, monkeypatch
):
    """Bodies over JSON_FINGERPRINT_MAX_BYTES are not fingerprinted as parsed values; their
    reformatted repeats are still hits, found by loading and hashing them: from the third
    send on, through the known structure."""
    recalled = []
    recall = KnownStructures.recall
    monkeypatch.setattr(KnownStructures, "recall",
                        lambda *args: recalled.append(recall(*args)) or recalled[-1])
    body = chain_request(25_000)
    sent = orjson.dumps(body)
    assert len(sent) > JSON_FINGERPRINT_MAX_BYTES
    first = client.post("/v1/evaluate", data=sent, content_type="application/json")
    assert first.headers["X-Cache"] == "miss"
    for indent in (orjson.OPT_INDENT_2, orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE):
        again = client.post("/v1/evaluate", data=orjson.dumps(body, option=indent),
                            content_type="application/json")
        assert again.headers["X-Cache"] == "hit"
        assert again.headers["ETag"] == first.headers["ETag"]
        stages = [part.split(";")[0] for part in again.headers["Server-Timing"].split(", ")]
        assert "load" in stages and "compile" not in stages
    # recall is tried only once a structure of that size is held: from the second load on
    assert [known is not None for known in recalled] == [True]


def test_an_infinite_attr_is_not_taken_for_a_null_one(make_app):
    """orjson writes infinity as null: a structure holding one is never recalled as the
    same structure with null there (1e400 reads as infinity, which sum's axis refuses)."""
    client = make_app().test_client()
    body = {"graph": {"nodes": [
        {"id": "x", "op": "input", "value": [[1, 2], [3, 4]]},
        {"id": "s", "op": "sum", "inputs": ["x"], "attrs": {"axis": None}},
    ], "output": "s"}}
    for cache in (True, False):  # known, sent with its keys in the order of the one below
        sent = orjson.dumps({**body, "cache": cache})
        assert client.post("/v1/gradients", data=sent,
                           content_type="application/json").status_code == 200
    infinite = orjson.dumps(body).replace(b"null", b"1e400")
    refused = client.post("/v1/gradients", data=infinite, content_type="application/json")
    fresh = make_app().test_client().post("/v1/gradients", data=infinite,
                                          content_type="application/json")
    assert refused.status_code == fresh.status_code == 422
    assert refused.json["error"] == fresh.json["error"]


def test_a_known_structure_keeps_no_values(circuit):
    """Each recall brings its own values: keeping the first request's would hold its arrays
    (any size) for as long as the structure is known."""
    known = KnownStructures(max_items=8, max_nodes=1000)
    remember(known, circuit)
    remember(known, circuit)
    held = known._known.get(structure_of(circuit).key)  # the entry itself, as kept
    assert held.graph.nodes.values == (None,) * 5
    recalled = known.recall(structure_of(with_values(circuit, {"y": 7})), None)
    assert [float(node.value) for node in recalled.sources.nodes] == [-2.0, 7.0, -4.0]


def test_a_new_graph_pays_no_structure_key_until_its_second_load(client, monkeypatch):
    """Reading a structure's key is a pass over the body: a graph loaded for the first time
    (its id not seen) and a graph of a size no held structure has are spared it."""
    import service.known_structures as known_structures
    import service.pipeline as pipeline

    calls = []
    read = known_structures.structure_of

    def counted(data):
        calls.append(len(data["graph"]["nodes"]))
        return read(data)

    monkeypatch.setattr(pipeline, "structure_of", counted)
    monkeypatch.setattr(known_structures, "structure_of", counted)
    for start in (0.5, 0.25):  # new, then kept (its key read after loading)
        assert client.post("/v1/evaluate", json=chain_request(40, start)).status_code == 200
    indented = orjson.dumps(chain_request(40, 0.125), option=orjson.OPT_INDENT_2)  # parsed
    recalled = client.post("/v1/evaluate", data=indented, content_type="application/json")
    assert recalled.status_code == 200
    assert calls == [41, 41]  # the second load's, and the recall's
    assert client.post("/v1/evaluate", json=chain_request(45)).status_code == 200
    assert calls == [41, 41]  # another size: no key read


def test_a_structure_is_kept_on_its_graph_ids_second_load_in_any_listing_order(make_app):
    app = make_app()
    client = app.test_client()
    body = chain_request(6)
    assert client.post("/v1/evaluate", json=body).status_code == 200
    shuffled = copy.deepcopy(body)
    shuffled["graph"]["nodes"].reverse()
    assert client.post("/v1/evaluate", json=shuffled).status_code == 200
    assert len(app.extensions["chainrule"].known_structures) == 1
