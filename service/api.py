"""The /v1 endpoints. A computing view is: parse, load, bind, hash, cache lookup, plan, run,
dump, store; each stage is timed into the Server-Timing header.

A cache hit returns the stored bytes with only "cached" flipped; `cache: false` requests
neither read nor write the cache (X-Cache: bypass). A body seen before byte for byte already
has a known result hash (service/known_requests.py), so its hit skips everything up to the
cache lookup.

Each request has one compute deadline, set when it starts: waiting for an identical request
that is computing, compiling, running and gradchecking all spend from it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from flask import Blueprint, Response, current_app, g, request

from engine import (
    Plan,
    RunResult,
    TooLarge,
    describe_ops,
    gradcheck,
)
from schemas import (
    Request,
    dump_evaluate,
    dump_gradcheck,
    dump_result,
    load_request,
    mark_cached,
    parse_json,
    request_hash,
)
from service import diagram
from service.binding import bind_request
from service.cache import fetch_or_compute
from service.errors import ApiError
from service.resources import resources

blueprint = Blueprint("api", __name__, url_prefix="/v1")

HASH_FORMAT = re.compile(r"[0-9a-f]{64}")

# The share of the deadline a request spends waiting for an identical one that is computing
# before it computes itself: ample for the usual millisecond computations, and most of the
# deadline is left should the other never finish (its worker killed, say).
SINGLE_FLIGHT_WAIT_SHARE = 0.25


@dataclass(slots=True)
class Loaded:
    """A request through parse, schema load, source binding and hashing."""

    kind: str
    request: Request
    sources: dict[str, np.ndarray]
    hash: str


# ---------------------------------------------------------------- endpoints


@blueprint.before_request
def _start_deadline() -> None:
    started = time.monotonic()
    seconds = current_app.config["COMPUTE_DEADLINE_SECONDS"]
    g.deadline = started + seconds
    g.wait_until = started + SINGLE_FLIGHT_WAIT_SHARE * seconds


@blueprint.post("/gradients")
def gradients() -> Response:
    return _cached_computation("gradients", _gradients_body)


@blueprint.post("/evaluate")
def evaluate() -> Response:
    return _cached_computation("evaluate", _evaluate_body)


@blueprint.post("/gradcheck")
def gradient_check() -> Response:
    return _cached_computation("gradcheck", _gradcheck_body)


@blueprint.post("/diagram")
def circuit_diagram() -> Response:
    loaded = _load("diagram", _read_json_body())
    graph = loaded.request.graph
    resources().metrics.graph_nodes.labels("diagram").observe(len(graph.nodes))
    limit = current_app.config["DIAGRAM_MAX_NODES"]
    if len(graph.nodes) > limit:
        raise TooLarge(
            f"a diagram of {len(graph.nodes)} nodes is over the limit of {limit}; "
            "draw a smaller graph or use /v1/gradients"
        )
    plan = _plan(loaded)
    result = _run(loaded, plan, forward_only=False)
    fmt = loaded.request.format
    with g.timer("render"):
        dot = diagram.circuit_dot(diagram.circuit_nodes(plan, result), result.output)
        image = diagram.render_circuit(
            dot, fmt, timeout=current_app.config["DIAGRAM_TIMEOUT_SECONDS"]
        )
    return Response(image, mimetype=diagram.MEDIA_TYPES[fmt], headers={"ETag": f'"{loaded.hash}"'})


@blueprint.get("/results/<digest>")
def stored_result(digest: str) -> Response:
    if not HASH_FORMAT.fullmatch(digest):
        raise ApiError(
            404, "not_found", "no result has that hash: a hash is 64 lowercase hex characters"
        )
    results = resources().results
    body = results.get(digest)
    if body is None:
        reason = results.unavailable_reason(probe=False)
        message = f"no cached result with hash {digest}"
        raise ApiError(404, "not_found", f"{message} ({reason})" if reason else message)
    return _json_response(mark_cached(body), digest, "hit")


@blueprint.get("/ops")
def op_catalog() -> dict:
    return {"ops": describe_ops()}


# ---------------------------------------------------------------- what each kind computes


def _gradients_body(loaded: Loaded) -> bytes:
    result = _run(loaded, _plan(loaded), forward_only=False)
    with g.timer("dump"):
        return dump_result(result, hash=loaded.hash, encoding=loaded.request.encoding)


def _evaluate_body(loaded: Loaded) -> bytes:
    result = _run(loaded, _plan(loaded), forward_only=True)
    with g.timer("dump"):
        return dump_evaluate(result, hash=loaded.hash, encoding=loaded.request.encoding)


def _gradcheck_body(loaded: Loaded) -> bytes:
    req = loaded.request
    checked = req.check if req.check is not None else _input_ids(req)
    elements = sum(loaded.sources[name].size for name in checked if name in loaded.sources)
    limit = current_app.config["MAX_GRADCHECK_ELEMENTS"]
    if elements > limit:
        raise TooLarge(
            f"a gradient check of {elements} input elements is over the limit of {limit}; "
            "name fewer inputs in 'check'"
        )
    plan = _plan(loaded)
    with _engine_stage(loaded.kind, "run"):
        checks = gradcheck(
            plan, loaded.sources, check=req.check, eps=req.eps, seed=req.seed,
            deadline=_deadline(),
        )
    with g.timer("dump"):
        return dump_gradcheck(checks, hash=loaded.hash, encoding=loaded.request.encoding)


def _input_ids(req: Request) -> list[str]:
    return [node.id for node in req.graph.nodes if node.op == "input"]


# ---------------------------------------------------------------- the pipeline


def _cached_computation(kind: str, compute: Callable[[Loaded], bytes]) -> Response:
    body = _read_json_body()
    shared = resources()
    timer = g.timer
    with timer("fingerprint"):
        fingerprint = shared.known_requests.fingerprint(kind, body)
        known_hash = shared.known_requests.get(fingerprint)
    if known_hash is not None:
        with timer("cache_read"):
            stored = shared.results.get(known_hash)
        if stored is not None:
            shared.metrics.count_cache_lookup("hit")
            return _json_response(mark_cached(stored), known_hash, "hit")

    loaded = _load(kind, body)
    shared.metrics.graph_nodes.labels(kind).observe(len(loaded.request.graph.nodes))
    if not loaded.request.cache:
        shared.metrics.count_cache_lookup("bypass")
        return _json_response(compute(loaded), loaded.hash, "bypass")
    shared.known_requests.put(fingerprint, loaded.hash)
    result, outcome = fetch_or_compute(
        shared.results, loaded.hash, lambda: compute(loaded), wait_until=g.wait_until, timer=timer
    )
    shared.metrics.count_cache_lookup(outcome)
    return _json_response(mark_cached(result) if outcome == "hit" else result, loaded.hash, outcome)


def _read_json_body() -> bytes:
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be application/json, not {request.mimetype or 'unlabelled'}",
        )
    limit = current_app.config["MAX_BODY_BYTES"]
    # A Content-Length over the limit was refused before the view; a body streamed without
    # one (chunked) is cut at the limit by werkzeug, so one byte more means it was over.
    body = request.get_data(cache=False)
    over = (
        len(body) >= limit
        and request.content_length is None
        and request.environ["wsgi.input"].read(1)
    )
    if over:
        raise ApiError(413, "too_large", f"the request body is over the limit of {limit} bytes")
    return body


def _load(kind: str, body: bytes) -> Loaded:
    timer = g.timer
    config = current_app.config
    with timer("parse"):
        data = parse_json(body)
    _reject_oversized_graph(data, config["MAX_NODES"])
    with timer("load"):
        req = load_request(kind, data, max_elements=config["MAX_ELEMENTS"])
    with timer("bind"):
        sources = bind_request(req)
    with timer("hash"):
        digest = request_hash(kind, req, sources)
    return Loaded(kind, req, sources, digest)


def _reject_oversized_graph(data: object, max_nodes: int) -> None:
    # Counting the raw list first spares the schema load of a graph the engine would refuse.
    graph = data.get("graph") if isinstance(data, dict) else None
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    if isinstance(nodes, list) and len(nodes) > max_nodes:
        raise TooLarge(f"the graph has {len(nodes)} nodes; the limit is {max_nodes}")


def _plan(loaded: Loaded) -> Plan:
    with _engine_stage(loaded.kind, "compile"):
        plan, cached = resources().plans.plan_for(loaded.request.graph, loaded.sources)
    resources().metrics.plan_lookups.labels("hit" if cached else "miss").inc()
    return plan


def _run(loaded: Loaded, plan: Plan, *, forward_only: bool) -> RunResult:
    req = loaded.request
    with _engine_stage(loaded.kind, "run"):
        return plan.run(
            loaded.sources,
            seed=None if forward_only else req.seed,
            wrt=req.wrt,
            forward_only=forward_only,
            deadline=_deadline(),
        )


def _deadline() -> float:
    """This request's deadline (a time.monotonic() value), set once when it started."""
    return g.deadline


def _json_response(body: bytes, digest: str, outcome: str) -> Response:
    return Response(
        body, mimetype="application/json", headers=[("ETag", f'"{digest}"'), ("X-Cache", outcome)]
    )


@contextmanager
def _engine_stage(kind: str, stage: str) -> Iterator[None]:
    """A request stage inside the engine: timed for Server-Timing and the engine histogram."""
    started = time.perf_counter()
    try:
        with g.timer(stage):
            yield
    finally:
        elapsed = time.perf_counter() - started
        resources().metrics.engine_seconds.labels(kind, stage).observe(elapsed)
