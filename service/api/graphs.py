"""Graphs as resources (CONTRACT section 7): POST /v1/graphs registers one, GET /v1/graphs/{id}
shows it, and every computing kind of service/kinds.py answers at /v1/graphs/{id}/<kind> a body
without `graph`, exactly as its inline endpoint answers the body with it (same hash, same
cache entry). The registry itself (validation, the store, each worker's copies) is
service/graphs.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from flask import Blueprint, Response, g

from schemas import parse_json
from schemas.graph import load_graph
from schemas.graphrecord import canonical_graph_json
from service.api.body import read_json_body
from service.api.views import (
    HASH_FORMAT,
    computation,
    observed,
    request_limits,
    start_deadline,
)
from service.errors import ApiError
from service.graphs import RegisteredGraph
from service.kinds import KINDS, Kind
from service.pipeline import Loaded, load_registered, reject_oversized_graph
from service.resources import resources

blueprint = Blueprint("graphs", __name__, url_prefix="/v1/graphs")
blueprint.before_request(start_deadline)

_JSON = "application/json"


@blueprint.post("")
def register() -> Response:
    """201 with the new graph's summary; 200 with it when the graph was registered already."""
    body = read_json_body()
    with g.timer("parse"):
        data = parse_json(body)
    limits = request_limits()
    if limits.max_nodes is not None:
        reject_oversized_graph(data, limits.max_nodes)
    with g.timer("load"):
        graph = load_graph(data, max_elements=limits.max_elements)
    with g.timer("register"):
        registered, created = resources().graphs.register(graph)
    return Response(
        orjson.dumps(registered.summary()),
        status=201 if created else 200,
        mimetype=_JSON,
        headers={"Location": f"{blueprint.url_prefix}/{registered.id}"},
    )


@blueprint.get("/<graph_id>")
def describe(graph_id: str) -> Response:
    registered = _registered(graph_id)
    summary = registered.summary()
    answer = {
        "id": summary["id"],
        "graph": canonical_graph_json(registered.record),
        "nodes": summary["nodes"],
        "inputs": summary["inputs"],
        "output": summary["output"],
    }
    return Response(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), mimetype=_JSON)


def _registered_kind_view(kind: Kind):
    def view(graph_id: str) -> Response:
        registered = _registered(graph_id)
        body = read_json_body()
        load = RegisteredLoader(kind, registered)
        return computation(kind, body, load, scope=":" + registered.id)

    view.__name__ = kind.name
    return view


for _kind in KINDS.values():
    blueprint.add_url_rule(
        f"/<graph_id>/{_kind.name}", view_func=_registered_kind_view(_kind), methods=["POST"]
    )


def _registered(graph_id: str) -> RegisteredGraph:
    """The registered graph of `graph_id`, or 404 not_found."""
    if not HASH_FORMAT.fullmatch(graph_id):
        raise ApiError(
            404, "not_found", "no graph has that id: an id is 64 lowercase hex characters"
        )
    shared = resources()
    registered = shared.graphs.find(graph_id)
    if registered is None:
        message = f"no registered graph with id {graph_id}; register it with POST /v1/graphs"
        reason = shared.results.unavailable_reason(probe=False)
        raise ApiError(404, "not_found", f"{message} ({reason})" if reason else message)
    return registered


@dataclass(frozen=True, slots=True)
class RegisteredLoader:
    """Loads a body of `kind` against a registered graph."""

    kind: Kind
    registered: RegisteredGraph

    def recall(self, body: bytes) -> Loaded | None:
        return None  # a body without nodes is parsed whole: it is small

    def __call__(self, data: object) -> Loaded:
        return observed(
            load_registered(self.kind.name, data, self.registered, request_limits(), g.timer)
        )
