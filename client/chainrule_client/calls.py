"""Request bodies: each endpoint's arguments checked and turned into the contract's JSON.

A `GraphRequest` is a computing request (gradients, evaluate, gradcheck, diagram, ...): the
serialised graph, the rest of the body, and the reader of its reply. It is sent inline
(`POST /v1/<kind>` with the graph in the body) or, once the graph is registered, as
`POST /v1/graphs/<id>/<kind>` with only the rest of the body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import numpy as np

from chainrule_client import replies
from chainrule_client.expr import GraphLike, Node
from chainrule_client.graphs import serialise
from chainrule_client.protocol import Call, EventSink, Reply
from chainrule_client.results import GradcheckResult, JacobianResult, Result, known_id
from chainrule_client.tensors import as_array, encode_tensor

__all__ = [
    "DIAGRAM_TYPES",
    "GraphRequest",
    "Inputs",
    "NodeRef",
    "Nodes",
    "batch_by_id",
    "check_encoding",
    "check_reduce",
    "diagram_call",
    "dumps",
    "evaluate_call",
    "gradcheck_call",
    "gradients_call",
    "graph_request",
    "health_call",
    "jacobian_call",
    "node_id",
    "node_ids",
    "ops_call",
    "result_call",
    "tensors_by_id",
]

T = TypeVar("T")

NodeRef = Node | str
Nodes = NodeRef | Iterable[NodeRef]
Inputs = Mapping[NodeRef, Any]
DIAGRAM_TYPES = {"svg": "image/svg+xml", "dot": "text/vnd.graphviz", "png": "image/png"}
REDUCES = ("none", "sum", "mean")


class GraphRequest(Generic[T]):
    """A computing request over one graph; its method/path/body are the inline form."""

    method = "POST"

    def __init__(
        self,
        kind: str,
        graph: dict[str, Any],
        ids: Mapping[Node, str],
        fields: dict[str, Any],
        parse: Callable[[Reply], T],
        *,
        accept: str = "application/json",
        events: EventSink | None = None,
    ) -> None:
        self.kind = kind
        self.graph = graph
        self.ids = ids
        self.fields = fields
        self.parse = parse
        self.headers = {"Content-Type": "application/json", "Accept": accept}
        self.events = events

    @property
    def path(self) -> str:
        return f"/v1/{self.kind}"

    @cached_property
    def body(self) -> bytes:
        return dumps({"graph": self.graph, **self.fields})

    def on_graph(self, graph_id: str, fields: Mapping[str, Any] | None = None) -> Call[T]:
        """The same request against the registered graph `graph_id`: the body without graph
        (`fields` in place of the request's own, when given)."""
        path = f"/v1/graphs/{quote(graph_id, safe='')}/{self.kind}"
        body = dumps(self.fields if fields is None else fields)
        return Call("POST", path, body, self.headers, self.parse, self.events)


def dumps(body: object) -> bytes:
    """Compact JSON; numpy values become lists and numbers, NaN is refused (tensors encode it)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False, default=_jsonable).encode()


def _jsonable(value: object) -> object:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# -------------------------------------------------------------------- naming nodes


def node_id(node: NodeRef, ids: Mapping[Node, str]) -> str:
    """The id a node (of the expression sent, or named) or an id string stands for."""
    key = known_id(node, ids)
    if key is None:
        raise ValueError("an unnamed node that is not part of the expression cannot be named")
    return key


def node_ids(refs: Nodes, ids: Mapping[Node, str]) -> list[str]:
    listed = [refs] if isinstance(refs, Node | str) else list(refs)
    return [node_id(x, ids) for x in listed]


def tensors_by_id(values: Inputs, ids: Mapping[Node, str]) -> dict[str, Any]:
    return {node_id(k, ids): encode_tensor(v) for k, v in values.items()}


def batch_by_id(batch: Inputs, ids: Mapping[Node, str], inputs: Mapping[str, Any]) -> dict:
    """The `batch` field: per input id a tensor whose leading axis is the batch axis (length B,
    the same for every input; an input is batched or given in `inputs`, not both)."""
    if not isinstance(batch, Mapping) or not batch:
        raise ValueError("batch must map one or more input nodes (or ids) to arrays")
    encoded, lengths = {}, {}
    for ref, values in batch.items():
        key = node_id(ref, ids)
        array = as_array(values)
        if array.ndim == 0 or len(array) == 0:
            raise ValueError(f"batch[{key!r}] needs a leading batch axis of length >= 1")
        if key in inputs:
            raise ValueError(f"input {key!r} is both in batch and in inputs")
        encoded[key], lengths[key] = encode_tensor(array), len(array)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"every batch array needs the same leading length, got {lengths}")
    return encoded


def check_reduce(reduce: str) -> str | None:
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be one of {', '.join(REDUCES)}, got {reduce!r}")
    return None if reduce == "none" else reduce


# -------------------------------------------------------------------- computing requests


def graph_request(
    kind: str,
    output: GraphLike,
    parse: Callable[[Reply, Mapping[Node, str]], T],
    *,
    inputs: Inputs | None = None,
    batch: Inputs | None = None,
    seed: Any = None,
    wrt: Nodes | None = None,
    check: Nodes | None = None,
    params: Nodes | None = None,
    cache: bool = True,
    allow_nonfinite: bool = False,
    accept: str = "application/json",
    events: EventSink | None = None,
    **extra: Any,
) -> GraphRequest[T]:
    """The request for `kind` over the expression (or graph dict) ending in `output`.

    Fields at their contract default are left out, so equal calls give equal bodies; `extra`
    fields are sent when not None.
    """
    serialised = serialise(output)
    ids = serialised.ids
    fields: dict[str, Any] = {}
    if inputs:
        fields["inputs"] = tensors_by_id(inputs, ids)
    if batch is not None:
        fields["batch"] = batch_by_id(batch, ids, fields.get("inputs", {}))
    if seed is not None:
        fields["seed"] = encode_tensor(seed)
    if wrt is not None:
        fields["wrt"] = node_ids(wrt, ids)
    if check is not None:
        fields["check"] = node_ids(check, ids)
    if params is not None:
        fields["params"] = node_ids(params, ids)
    if not cache:
        fields["cache"] = False
    if allow_nonfinite:
        fields["allow_nonfinite"] = True
    fields.update({k: v for k, v in extra.items() if v is not None})
    return GraphRequest(
        kind, serialised.graph, ids, fields, lambda reply: parse(reply, ids),
        accept=accept, events=events,
    )


def check_encoding(encoding: str) -> str | None:
    if encoding not in ("json", "b64"):
        raise ValueError(f"encoding must be 'json' or 'b64', got {encoding!r}")
    return "b64" if encoding == "b64" else None


def gradients_call(
    output: GraphLike,
    inputs: Inputs | None = None,
    seed: Any = None,
    wrt: Nodes | None = None,
    cache: bool = True,
    *,
    batch: Inputs | None = None,
    reduce: str = "none",
    encoding: str = "json",
    allow_nonfinite: bool = False,
) -> GraphRequest[Result]:
    """Forward and backward pass of the expression (or graph dict) ending in `output`.

    `inputs` maps input nodes or ids to values; `seed` is dL/d(output) (default ones);
    `wrt` limits the nodes reported; `encoding="b64"` asks for base64 tensors back.
    `batch` maps inputs to arrays whose leading axis holds B points: one request, one
    vectorised pass; batched nodes answer (B, ...) values and gradients. `reduce` "none" gives
    every node per-point gradients; "sum" / "mean" give shared nodes (weights) one reduced
    gradient of their own shape, as a training step needs.
    """
    return graph_request(
        "gradients", output, replies.gradients_reader, inputs=inputs, batch=batch, seed=seed,
        wrt=wrt, cache=cache, allow_nonfinite=allow_nonfinite,
        reduce=check_reduce(reduce), encoding=check_encoding(encoding),
    )


def evaluate_call(
    output: GraphLike,
    inputs: Inputs | None = None,
    wrt: Nodes | None = None,
    cache: bool = True,
    *,
    batch: Inputs | None = None,
    encoding: str = "json",
    allow_nonfinite: bool = False,
) -> GraphRequest[Result]:
    """Forward pass only; the Result has values and no gradients. `batch` as for gradients."""
    return graph_request(
        "evaluate", output, replies.evaluate_reader, inputs=inputs, batch=batch, wrt=wrt,
        cache=cache, allow_nonfinite=allow_nonfinite, encoding=check_encoding(encoding),
    )


def jacobian_call(
    output: GraphLike,
    wrt: Nodes,
    inputs: Inputs | None = None,
    cache: bool = True,
    *,
    batch: Inputs | None = None,
    encoding: str = "json",
    allow_nonfinite: bool = False,
) -> GraphRequest[JacobianResult]:
    """The full Jacobian of the output with respect to each node in `wrt` (inputs or gates):
    `result.jacobian(x)` has shape output.shape + x.shape, after a leading B with a `batch`."""
    return graph_request(
        "jacobian", output, replies.parse_jacobian, inputs=inputs, batch=batch, wrt=wrt,
        cache=cache, allow_nonfinite=allow_nonfinite, encoding=check_encoding(encoding),
    )


def gradcheck_call(
    output: GraphLike,
    inputs: Inputs | None = None,
    seed: Any = None,
    check: Nodes | None = None,
    eps: float | None = None,
    cache: bool = True,
    *,
    allow_nonfinite: bool = False,
) -> GraphRequest[GradcheckResult]:
    """Compare the backward pass with centred finite differences, per input in `check`."""
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, int | float) or eps <= 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    return graph_request(
        "gradcheck", output, replies.parse_gradcheck, inputs=inputs, seed=seed, check=check,
        cache=cache, allow_nonfinite=allow_nonfinite, eps=eps,
    )


def diagram_call(
    output: GraphLike,
    inputs: Inputs | None = None,
    seed: Any = None,
    wrt: Nodes | None = None,
    format: str = "svg",
    cache: bool = True,
) -> GraphRequest[bytes]:
    """The circuit drawn with values and gradients: svg, dot or png bytes."""
    if format not in DIAGRAM_TYPES:
        raise ValueError(f"format must be one of {', '.join(DIAGRAM_TYPES)}, got {format!r}")
    return graph_request(
        "diagram", output, replies.image_reader, inputs=inputs, seed=seed, wrt=wrt,
        cache=cache, accept=DIAGRAM_TYPES[format], format=format,
    )


# -------------------------------------------------------------------- reading calls


def result_call(hash: str) -> Call[Result | GradcheckResult | JacobianResult]:
    """A cached answer by its hash (NotFound when the cache no longer holds it)."""
    if not isinstance(hash, str) or not hash:
        raise ValueError(f"a result hash must be a non-empty string, got {hash!r}")
    path = "/v1/results/" + quote(hash, safe="")
    return Call("GET", path, None, {"Accept": "application/json"}, replies.parse_any_result)


def ops_call() -> Call[list[dict[str, Any]]]:
    """The service's op catalog."""
    return Call("GET", "/v1/ops", None, {"Accept": "application/json"}, replies.parse_ops)


def health_call() -> Call[dict[str, Any]]:
    """The /healthz body; raises when the service does not answer 200."""
    return Call("GET", "/healthz", None, {"Accept": "application/json"}, replies.parse_health)
