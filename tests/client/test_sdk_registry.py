"""Graphs as resources from the SDK's side (issue 16): what goes on the wire when a big graph
is registered, reused, expired and re-registered. The service is played by an httpx
MockTransport handler here; test_sdk_v11_end_to_end.py runs the same against the real app."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest

import chainrule_client as cr

ANSWER = {"hash": "a" * 64, "output": "out", "value": 1.0,
          "nodes": {"out": {"value": 1.0, "grad": 1.0}}, "cached": False}

JACOBIAN = {"hash": "b" * 64, "output": "out", "value": 1.0, "jacobian": {"x": 2.0},
            "cached": False}


class GraphService:
    """Answers /v1/graphs like the contract says; records every request; `expire()` forgets."""

    def __init__(self, registration: bool = True):
        self.registration = registration
        self.graphs: dict[str, dict] = {}
        self.requests: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        path = request.url.path
        self.requests.append((path, body))
        if path == "/v1/graphs" and self.registration:
            graph_id = hashlib.sha256(json.dumps(body["graph"], sort_keys=True).encode())
            self.graphs[graph_id.hexdigest()] = body["graph"]
            return httpx.Response(201, json={"id": graph_id.hexdigest()})
        if path.startswith("/v1/graphs/"):
            graph_id = path.split("/")[3]
            if graph_id not in self.graphs:
                return httpx.Response(404, json={"error": {
                    "code": "not_found", "message": "no such graph", "node": None,
                    "details": None}})
            if path.endswith("/jacobian"):
                return httpx.Response(200, json=JACOBIAN)
            return httpx.Response(200, json=ANSWER)
        if path.startswith("/v1/graphs"):
            return httpx.Response(404, json={"error": {
                "code": "not_found", "message": "no route", "node": None, "details": None}})
        return httpx.Response(200, json=ANSWER)

    def expire(self) -> None:
        self.graphs.clear()

    def paths(self) -> list[str]:
        return [path.replace(next(iter(self.graphs), "?"), "<id>") for path, _ in self.requests]


def chain(start: float, length: int = 70) -> tuple[cr.Node, cr.Node]:
    x = cr.input("x", start)
    node = x
    for k in range(length):
        node = node * 1.01 + k
    return x, node.named("out")


def client_for(service: GraphService, **options) -> cr.Client:
    return cr.Client("http://t", transport=httpx.MockTransport(service), **options)


def test_a_big_graph_is_registered_once_then_only_values_are_sent():
    service = GraphService()
    with client_for(service) as client:
        x, out = chain(1.0)
        client.gradients(out)
        client.gradients(out, inputs={x: 5.0})
        _, rebuilt = chain(2.0)  # the same structure with a new default value
        client.gradients(rebuilt, wrt=["x"])
    assert service.paths() == ["/v1/graphs"] + ["/v1/graphs/<id>/gradients"] * 3
    registered = service.requests[0][1]["graph"]
    assert all("value" not in e for e in registered["nodes"] if e["op"] == "input")
    assert [body for _, body in service.requests[1:]] == [
        {"inputs": {"x": 1.0}}, {"inputs": {"x": 5.0}}, {"inputs": {"x": 2.0}, "wrt": ["x"]}]


def test_an_expired_graph_is_registered_again_transparently():
    service = GraphService()
    with client_for(service) as client:
        _, out = chain(1.0)
        client.evaluate(out)
        service.expire()
        assert client.evaluate(out).value == 1.0
    assert service.paths() == ["/v1/graphs", "/v1/graphs/<id>/evaluate",
                               "/v1/graphs/<id>/evaluate", "/v1/graphs",
                               "/v1/graphs/<id>/evaluate"]


def test_small_graphs_and_switched_off_registration_go_inline():
    service = GraphService()
    with client_for(service) as client:
        client.gradients(chain(1.0, length=10)[1])
    with client_for(service, register_graphs=False) as client:
        client.gradients(chain(1.0)[1])
    with client_for(service, register_threshold=5) as client:
        client.gradients(chain(1.0, length=10)[1])
    assert service.paths() == ["/v1/gradients", "/v1/gradients", "/v1/graphs",
                               "/v1/graphs/<id>/gradients"]
    with pytest.raises(ValueError):
        cr.Client("http://t", register_threshold=0)


def test_a_service_without_registration_gets_inline_requests():
    service = GraphService(registration=False)
    with client_for(service) as client:
        _, out = chain(1.0)
        client.gradients(out)
        client.gradients(out)
    assert [path for path, _ in service.requests] == [
        "/v1/graphs", "/v1/gradients", "/v1/gradients"]
    assert "graph" in service.requests[1][1]


def test_batched_inputs_are_not_sent_as_inputs_too():
    service = GraphService()
    with client_for(service) as client:
        x, out = chain(1.0)
        client.gradients(out, batch={x: [1.0, 2.0]}, reduce="mean")
    assert service.requests[1][1] == {"batch": {"x": [1.0, 2.0]}, "reduce": "mean"}


def test_the_async_client_registers_alike():
    service = GraphService()

    async def main():
        async with cr.AsyncClient("http://t", transport=httpx.MockTransport(service)) as client:
            _, out = chain(1.0)
            await client.gradients(out)
            service.expire()
            await client.jacobian(out, wrt=["x"])

    asyncio.run(main())
    assert service.paths() == ["/v1/graphs", "/v1/graphs/<id>/gradients",
                               "/v1/graphs/<id>/jacobian", "/v1/graphs",
                               "/v1/graphs/<id>/jacobian"]
