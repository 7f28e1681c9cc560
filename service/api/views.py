"""The /v1 endpoints: one route per row of service/kinds.py, plus /results and /ops (the routes
of registered graphs are in graphs.py and share the computing views here).

A computing view reads the body, runs it through service/pipeline.py and answers. A cached
kind (a JSON answer) goes through the store first: a hit returns the stored bytes with only
"cached" flipped; `cache: false` requests neither read nor write it (X-Cache: bypass). A body
seen before, byte for byte or as the same parsed JSON (spelled with other whitespace, keys in
another order), already has a known result hash (service/known_requests.py), so its hit skips
the schema load, binding and hashing. An inline body whose skeleton is known (the same bytes
but for the numbers of its nodes' values: service/skeletons.py) is not parsed at all. Each
stage is timed into Server-Timing.

A streaming kind asked for `Accept: text/event-stream` answers as events (service/api/stream.py).

Each request has one compute deadline, set once its body has arrived: loading, waiting for an
identical request that is computing, compiling, running and gradchecking all spend from it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from flask import Blueprint, Response, current_app, g, request

from engine import describe_ops
from schemas import mark_cached, parse_json
from service.api.body import read_json_body
from service.api.held import hold_until_sent
from service.api.stream import event_stream_response, wants_event_stream
from service.errors import ApiError
from service.kinds import KINDS, Kind
from service.observe.metrics import ServiceMetrics
from service.observe.timing import StageTimer
from service.pipeline import ComputeContext, Loaded, RequestLimits, Timer, load, recall_body
from service.resources import Resources, resources
from service.skeletons import Skeleton, skeleton_of
from service.store import Unstored, fetch_or_compute

blueprint = Blueprint("api", __name__, url_prefix="/v1")

HASH_FORMAT = re.compile(r"[0-9a-f]{64}")

# The share of the deadline a request spends waiting for an identical one that is computing
# before it computes itself: ample for the usual millisecond computations, and most of the
# deadline is left should the other never finish (its worker killed, say).
SINGLE_FLIGHT_WAIT_SHARE = 0.25


def start_deadline() -> None:
    """A request's compute deadline and how long it may wait for an identical one, counted
    from when its body has arrived (a slow upload is the worker's pace to judge, not this)."""
    started = time.monotonic()
    seconds = current_app.config["COMPUTE_DEADLINE_SECONDS"]
    state = g._get_current_object()
    state.deadline = started + seconds
    state.wait_until = started + SINGLE_FLIGHT_WAIT_SHARE * seconds


def _kind_view(kind: Kind):
    def view() -> Response:
        return computation(kind, read_json_body(), InlineLoader(kind))

    view.__name__ = kind.name
    return view


for _kind in KINDS.values():
    blueprint.add_url_rule(f"/{_kind.name}", view_func=_kind_view(_kind), methods=["POST"])


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
    # If-None-Match compares weakly (RFC 9110 13.1.2): W/"<hash>", a list naming it, or *
    if request.if_none_match.contains_weak(digest):
        # the client holds this very result (a result never changes under its hash)
        return Response(status=304, headers=[("ETag", f'"{digest}"'), ("X-Cache", "hit")])
    return _json_response(mark_cached(body), digest, "hit")


@blueprint.get("/ops")
def op_catalog() -> dict:
    return {"ops": describe_ops()}


# ---------------------------------------------------------------- computing views

class Loader(Protocol):
    """Loads a request body (inline, or against a registered graph): `recall` from its bytes
    alone when it can (else None), calling it from the parsed body."""

    def recall(self, body: bytes) -> Loaded | None: ...

    def __call__(self, data: object) -> Loaded: ...


@dataclass(slots=True)
class InlineLoader:
    """Loads an inline body of `kind`: from its bytes when its skeleton is known, else parsed
    (its skeleton then remembered with its structure). One per request."""

    kind: Kind
    skeleton: Skeleton | None = None

    def recall(self, body: bytes) -> Loaded | None:
        shared = resources()
        with g.timer("fingerprint"):
            self.skeleton = skeleton_of(self.kind.name, body)
        loaded = recall_body(
            self.kind.name, self.skeleton, shared.request_limits, g.timer,
            shared.known_structures,
        )
        return None if loaded is None else observed(loaded)

    def __call__(self, data: object) -> Loaded:
        shared = resources()
        return observed(load(
            self.kind.name, data, shared.request_limits, g.timer, shared.known_structures,
            self.skeleton,
        ))


def computation(kind: Kind, body: bytes, load: Loader, scope: str = "") -> Response:
    """The answer of `kind` to `body`, loaded by `load`. `scope` tells apart bodies that load
    differently though their bytes are equal (the registered graph they are sent to)."""
    start_deadline()
    if kind.streams and wants_event_stream():
        return _streamed_computation(kind, _loaded(body, load))
    if kind.cached:
        return _cached_computation(kind, body, load, scope)
    return _fresh_computation(kind, body, load)


def _loaded(body: bytes, load: Loader) -> Loaded:
    return load.recall(body) or load(_parsed(body))


def _fresh_computation(kind: Kind, body: bytes, load: Loader) -> Response:
    loaded = _loaded(body, load)
    hold_until_sent(loaded)
    answer = _answer(kind, loaded)
    return Response(
        answer, mimetype=kind.media_type(loaded), headers={"ETag": f'"{loaded.hash}"'}
    )


def _cached_computation(kind: Kind, body: bytes, load: Loader, scope: str) -> Response:
    """A known body (by its bytes, else by its parsed JSON) answers from the store without
    loading; any other is loaded, hashed and looked up, computing on a miss."""
    shared = resources()
    known = shared.known_requests
    state = g._get_current_object()
    timer = state.timer
    with timer("fingerprint"):
        fingerprint = known.fingerprint(kind.name + scope, body)
    hit = _known_hit(shared, timer, fingerprint)
    if hit is not None:
        return hit
    loaded, json_fingerprint = load.recall(body), None
    if loaded is None:
        with timer("parse"):  # the parsed value's fingerprint is part of reading it
            data = parse_json(body)
            json_fingerprint = known.json_fingerprint(kind.name + scope, data, len(body))
        hit = _known_hit(shared, timer, json_fingerprint)
        if hit is not None:
            known.put(fingerprint, hit.headers["ETag"].strip('"'))
            return hit
        loaded = load(data)
        hold_until_sent(data, loaded)  # freeing a big graph's takes a while: not before sending
    if not loaded.request.cache:
        shared.metrics.count_cache_lookup("bypass")
        return _json_response(_answer(kind, loaded), loaded.hash, "bypass")
    for key in (fingerprint, json_fingerprint):
        known.put(key, loaded.hash)
    result, outcome = fetch_or_compute(
        shared.results, loaded.hash, lambda: _storable_answer(kind, loaded),
        wait_until=state.wait_until, timer=timer,
    )
    shared.metrics.count_cache_lookup(outcome)
    return _json_response(mark_cached(result) if outcome == "hit" else result, loaded.hash, outcome)


def _known_hit(shared: Resources, timer: Timer, fingerprint: bytes | None) -> Response | None:
    """The stored answer of a body seen before, or None."""
    known_hash = shared.known_requests.get(fingerprint) if fingerprint is not None else None
    if known_hash is None:
        return None
    with timer("cache_read"):
        stored = shared.results.get(known_hash)
    if stored is None:
        return None
    shared.metrics.count_cache_lookup("hit")
    return _json_response(mark_cached(stored), known_hash, "hit")


def _parsed(body: bytes) -> object:
    with g.timer("parse"):
        return parse_json(body)


def observed(loaded: Loaded) -> Loaded:
    """`loaded`, its graph's size counted in the metrics."""
    resources().metrics.observe_graph_nodes(loaded.kind, len(loaded.request.graph.nodes))
    return loaded


def _streamed_computation(kind: Kind, loaded: Loaded) -> Response:
    # built here, where the app is current; its stages are timed apart from the request's,
    # as they run in the stream's thread after the headers went out
    context = _compute_context(kind, StageTimer())

    def compute(on_record: Callable[[dict], None]) -> bytes | Unstored:
        return _storable_answer(kind, loaded, replace(context, on_record=on_record))

    return event_stream_response(loaded, compute, wait_until=g.wait_until)


def _answer(kind: Kind, loaded: Loaded) -> bytes:
    """The kind's computation of the loaded request, written as its response body."""
    answer = kind.compute(loaded, _compute_context(kind))
    with g.timer("dump"):
        return kind.dump(answer, loaded)


def _storable_answer(
    kind: Kind, loaded: Loaded, context: ComputeContext | None = None
) -> bytes | Unstored:
    """`_answer`, marked Unstored when the kind says its answer is not to be kept."""
    context = context or _compute_context(kind)
    answer = kind.compute(loaded, context)
    with context.timer("dump"):
        body = kind.dump(answer, loaded)
    return body if kind.stored(answer) else Unstored(body)


def request_limits() -> RequestLimits:
    return resources().request_limits


def _compute_context(kind: Kind, timer: Timer | None = None) -> ComputeContext:
    """The context of computing a request of `kind`, its stages timed by `timer` (default: the
    request's, reported in Server-Timing)."""
    shared = resources()
    state = g._get_current_object()
    timer = timer or state.timer
    return ComputeContext(
        plans=shared.plans,
        limits=shared.request_limits,
        deadline=state.deadline,
        timer=timer,
        engine_stage=EngineStages(kind.name, timer, shared.metrics),
        on_plan_lookup=shared.metrics.count_plan_lookup,
    )


class EngineStages:
    """The Timer of the stages inside the engine (compile, run): each is timed into `timer`
    (Server-Timing) and into the engine histogram under the request's kind."""

    __slots__ = ("kind", "timer", "metrics")

    def __init__(self, kind: str, timer: Timer, metrics: ServiceMetrics):
        self.kind = kind
        self.timer = timer
        self.metrics = metrics

    def __call__(self, stage: str) -> _EngineStage:
        return _EngineStage(self, stage)


class _EngineStage:
    """One timed engine stage (a class, not a generator: it runs twice per request)."""

    __slots__ = ("stages", "stage", "timed", "started")

    def __init__(self, stages: EngineStages, stage: str):
        self.stages = stages
        self.stage = stage

    def __enter__(self) -> None:
        self.started = time.perf_counter()
        self.timed = self.stages.timer(self.stage)
        self.timed.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.timed.__exit__(*exc_info)
        finally:
            elapsed = time.perf_counter() - self.started
            self.stages.metrics.observe_engine(self.stages.kind, self.stage, elapsed)


def _json_response(body: bytes, digest: str, outcome: str) -> Response:
    return Response(
        body, mimetype="application/json", headers=[("ETag", f'"{digest}"'), ("X-Cache", outcome)]
    )
