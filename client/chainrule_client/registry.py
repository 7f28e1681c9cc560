"""Graphs as resources (CONTRACT section 7), from the client's side: send a big graph once.

A graph of `threshold` nodes or more is registered (`POST /v1/graphs` -> id) the first time it
is used; later requests over the same structure go to `/v1/graphs/<id>/<kind>` with only their
values. The structure is the graph without its input nodes' default values: those travel in
`inputs`, so an expression rebuilt with new values (micrograd style) is still the same graph.
When the service answers 404 for an id (it expired), the flow registers it again and retries
once. A service without the endpoint (404 on registration) gets inline requests from then on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypeVar

from chainrule_client.calls import GraphRequest, dumps
from chainrule_client.exceptions import APIError, NotFound, ProtocolError
from chainrule_client.protocol import Call, Flow, Reply
from chainrule_client.replies import json_body

__all__ = [
    "GraphRegistry",
    "registered_flow",
    "split_defaults",
    "structure_key",
]

T = TypeVar("T")

# Statuses that say "this service has no /v1/graphs": it predates version 1.1.
_NO_REGISTRATION = frozenset({404, 405})


class GraphRegistry:
    """The ids this client's service gave to graph structures (bounded, thread-safe)."""

    def __init__(self, enabled: bool = True, threshold: int = 64, capacity: int = 256) -> None:
        if threshold < 1:
            raise ValueError(f"the registration threshold must be >= 1 node, got {threshold}")
        self.enabled = enabled
        self.threshold = threshold
        self._capacity = capacity
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def wants(self, request: object) -> bool:
        """Whether this request should travel by registered graph."""
        return (
            self.enabled
            and isinstance(request, GraphRequest)
            and len(request.graph.get("nodes", ())) >= self.threshold
        )

    def get(self, key: str) -> str | None:
        with self._lock:
            graph_id = self._ids.get(key)
            if graph_id is not None:
                self._ids.move_to_end(key)
            return graph_id

    def remember(self, key: str, graph_id: str) -> None:
        with self._lock:
            self._ids[key] = graph_id
            self._ids.move_to_end(key)
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._ids.pop(key, None)


def registered_flow(request: GraphRequest[T], registry: GraphRegistry) -> Flow[T]:
    """Send `request` against its registered graph, registering it when needed."""
    structure, defaults = split_defaults(request.graph)
    key = structure_key(structure)
    values = _with_defaults(request.fields, defaults)
    graph_id = registry.get(key)
    if graph_id is None:
        graph_id = yield from _register(structure, key, registry)
        if graph_id is None:
            return (yield request)
    try:
        return (yield request.on_graph(graph_id, values))
    except NotFound:
        registry.forget(key)
    # The id expired between uses: register again and retry once.
    graph_id = yield from _register(structure, key, registry)
    if graph_id is None:
        return (yield request)
    return (yield request.on_graph(graph_id, values))


def split_defaults(graph: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The graph without input defaults, and those defaults by input id."""
    nodes, defaults = [], {}
    for entry in graph["nodes"]:
        if entry.get("op") == "input" and "value" in entry:
            defaults[entry["id"]] = entry["value"]
            entry = {k: v for k, v in entry.items() if k != "value"}
        nodes.append(entry)
    return {**graph, "nodes": nodes}, defaults


def structure_key(structure: Mapping[str, Any]) -> str:
    text = json.dumps(structure, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _with_defaults(fields: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The body's fields with the input defaults as `inputs`, under what the caller gave."""
    batched = fields.get("batch", {})
    inputs = {k: v for k, v in defaults.items() if k not in batched}
    inputs.update(fields.get("inputs", {}))
    return {**fields, "inputs": inputs} if inputs else dict(fields)


def _register(structure: dict[str, Any], key: str, registry: GraphRegistry) -> Flow[str | None]:
    try:
        graph_id = yield Call(
            "POST",
            "/v1/graphs",
            dumps({"graph": structure}),
            {"Content-Type": "application/json", "Accept": "application/json"},
            _graph_id,
        )
    except APIError as exc:
        if exc.status not in _NO_REGISTRATION:
            raise
        registry.enabled = False
        return None
    registry.remember(key, graph_id)
    return graph_id


def _graph_id(reply: Reply) -> str:
    body = json_body(reply)
    graph_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(graph_id, str) or not graph_id:
        raise ProtocolError("a graph registration answered no id")
    return graph_id
