"""The path around the engine: one canonical pass per request, no collector scans inside one."""

from __future__ import annotations

import gc
from itertools import chain

import orjson
import pytest

import service.graphs
import service.known_structures
import service.pipeline
import service.plans
from schemas import canonical
from tests.service.conftest import chain_request


@pytest.fixture
def canonical_passes(monkeypatch) -> list[int]:
    """How many graphs were put in canonical form (every caller in the service counted)."""
    calls: list[int] = []

    def counted(graph):
        calls.append(len(graph.nodes))
        return canonical.canonical_graph(graph)

    for module in (service.pipeline, service.graphs):
        monkeypatch.setattr(module, "canonical_graph", counted)
    monkeypatch.setattr(service.plans, "graph_id", lambda graph: counted(graph).id)
    return calls


def test_an_inline_request_puts_its_graph_in_canonical_form_once(client, canonical_passes):
    body = chain_request(50)
    first = client.post("/v1/gradients", json=body)  # miss: hash, plan key, compile
    assert first.status_code == 200 and canonical_passes == [51]
    longer = client.post("/v1/gradients", json=chain_request(60))  # another structure
    assert longer.status_code == 200 and canonical_passes == [51, 61]


def test_a_known_structure_needs_no_canonical_pass(client, canonical_passes):
    """The same nodes with new values: from the structure's second load on, its canonical
    form is reused."""
    for start in (0.5, 0.25):
        body = chain_request(50, start)
        assert client.post("/v1/gradients", json=body).status_code == 200
        again = client.post("/v1/gradients", json={**body, "inputs": {"x": start / 2}})
        assert again.status_code == 200
    assert canonical_passes == [51, 51]


def test_a_registered_request_needs_no_canonical_pass(client, canonical_passes):
    graph_id = client.post("/v1/graphs", json={"graph": chain_request(50)["graph"]}).json["id"]
    assert canonical_passes == [51]  # registration: id, record and the plan key
    for x in (0.1, 0.2):
        answer = client.post(f"/v1/graphs/{graph_id}/gradients", json={"inputs": {"x": x}})
        assert answer.status_code == 200
    assert canonical_passes == [51]


def test_the_collector_is_held_off_while_a_request_is_served(app, client):
    seen = []
    app.add_url_rule("/probe-collector", "probe", lambda: seen.append(gc.isenabled()) or "ok")
    assert gc.isenabled()
    assert client.get("/probe-collector").status_code == 200
    assert seen == [False] and gc.isenabled()


def test_no_collection_runs_inside_a_request_however_much_the_worker_holds(app, client):
    """Parse and load allocate in bulk; a collection among them would scan everything the
    worker holds (cached plans included), so its cost would grow with each repeat."""
    inside: list[bool] = []
    collections_inside = []

    def count(phase: str, info: dict) -> None:
        if phase == "start" and inside:
            collections_inside.append(info["generation"])

    app.before_request(lambda: inside.append(True))
    app.teardown_request(lambda error: inside.clear())
    gc.callbacks.append(count)
    try:
        for x in range(6):  # a new structure each time: every plan is kept
            body = chain_request(20_000 + x, start=0.1 * x)
            assert client.post("/v1/gradients", json=body).status_code == 200
    finally:
        gc.callbacks.remove(count)
    assert collections_inside == []


def held_columns(graph) -> tuple:
    table = graph.nodes
    return table.ids, table.ops, table.inputs, table.attrs, table.values


def test_graphs_kept_between_requests_leave_the_collector_nothing_to_scan(app, client):
    """Registered graphs and known structures hold their nodes as columns of tuples: a
    collection stops tracking the id, op and input columns; the attrs and values columns stay
    tracked, but nothing in them is (a pass looks at each item and goes no further)."""
    body = chain_request(300)
    graph_id = client.post("/v1/graphs", json={"graph": body["graph"]}).json["id"]
    for start in (0.5, 0.25):  # a structure is kept the second time it loads
        sent = orjson.dumps(chain_request(300, start))  # keys in the order structure_of reads
        response = client.post("/v1/gradients", data=sent, content_type="application/json")
        assert response.status_code == 200
    shared = app.extensions["chainrule"]
    registered = shared.graphs.find(graph_id)
    known = shared.known_structures.recall(
        service.known_structures.structure_of(chain_request(300)), None
    )
    assert registered is not None and known is not None
    gc.collect()
    # a recalled graph shares the held columns but its values (this request's own)
    for columns in (held_columns(registered.graph), held_columns(known.graph)[:4]):
        assert [gc.is_tracked(column) for column in columns[:3]] == [False, False, False]
        assert not any(map(gc.is_tracked, chain.from_iterable(columns[3:])))
