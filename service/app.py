"""The application factory: configuration, shared resources, request hooks and blueprints.

Every request gets an id (the client's X-Request-ID when it sends a usable one, echoed in the
response for gunicorn's JSON access line), a stage timer reported in Server-Timing, a body-size
check before anything reads the body, and on the way out its metrics.

The cyclic garbage collector is held off while a request is served. A request allocates in
bulk (a 100,000-node graph is some 400,000 containers) and frees nearly all of it by reference
counting when it ends; a collection started by those allocations would scan every object the
worker holds, cached plans included, so its cost would grow with the caches rather than with
the request (parse times doubled on repeats). Collections run between requests instead, where
the objects of a finished request are already gone: a big body's are let go after its response
is sent, and the collector resumes after that (service/api/held.py).
"""

from __future__ import annotations

import inspect
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import FunctionType
from typing import Any

from flask import Flask, Request, Response, current_app, g, request
from flask.testing import FlaskClient
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.test import TestResponse

from engine import ENGINE_VERSION, WORKSPACES, Limits
from service import access, cors, errors
from service.api import api_blueprint, graphs_blueprint, probes_blueprint
from service.api.held import release_after_sending, resume_collector, stop_collector
from service.config import ConfigError, load_config
from service.errors import ApiError
from service.graphs import GraphRegistry
from service.known_requests import KnownRequests
from service.known_structures import KnownStructures
from service.observe import jsonlog
from service.observe.metrics import ServiceMetrics
from service.observe.timing import StageTimer
from service.pipeline import RequestLimits
from service.plans import PlanCache
from service.resources import Resources, resources
from service.site import pages
from service.store import DiskStore, MemoryStore, NearCachedStore, RedisStore, Store
from service.store.disk import STORE_ERRORS

STATIC_FOLDER = str(Path(__file__).with_name("site") / "static")

# Result hashes of recently seen request bodies (about 200 bytes each).
KNOWN_REQUESTS_SIZE = 4096

# A client's request id is echoed when it is 1-200 visible ASCII characters; else we make one.
CLIENT_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")


class ClosingTestClient(FlaskClient):
    """Flask's test client, closing each response once it is read, as a WSGI server closes a
    response it has sent (what a request held is let go then: service/api/held.py)."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> TestResponse:
        return super().open(*args, buffered=buffered, **kwargs)


class ServiceFlask(Flask):
    """Flask, whose check before every hook and view call (is it a coroutine function?) reads
    a plain function's code flags directly instead of going through inspect: our hooks and
    views are all plain functions, some six calls per request. Its test client closes its
    responses."""

    test_client_class = ClosingTestClient

    def ensure_sync(self, func: Callable) -> Callable:
        # A plain function with nothing set on it (no marker of a wrapped or marked coroutine
        # function) is a coroutine function exactly when its code says so.
        plain = type(func) is FunctionType and not func.__dict__
        if plain and not func.__code__.co_flags & inspect.CO_COROUTINE:
            return func
        return super().ensure_sync(func)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the service. `config` overrides the environment (keys as in service/config.py)."""
    # The playground's script and style are served from service/site/static at /static/...
    app = ServiceFlask(__name__, static_folder=STATIC_FOLDER)
    settings = load_config(config)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY_BYTES"]

    jsonlog.init_app(app)
    errors.init_app(app)
    metrics = ServiceMetrics(settings["PROMETHEUS_MULTIPROC_DIR"])
    # batched runs' work arrays kept between runs (per process; engine/executors/workspace.py)
    WORKSPACES.resize(settings["BATCH_WORKSPACE_BYTES"])
    limits = Limits(
        max_nodes=settings["MAX_NODES"],
        max_elements=settings["MAX_ELEMENTS"],
        max_total_elements=settings["MAX_TOTAL_ELEMENTS"],
    )
    results = _result_store(settings, metrics)
    plans = PlanCache(settings["PLAN_CACHE_SIZE"], settings["PLAN_CACHE_MAX_NODES"], limits)
    app.extensions["chainrule"] = Resources(
        results=results,
        plans=plans,
        known_requests=KnownRequests(KNOWN_REQUESTS_SIZE),
        # Known structures and loaded registered graphs are bounded as the plans are: they
        # hold as many nodes.
        known_structures=KnownStructures(
            max_items=settings["PLAN_CACHE_SIZE"], max_nodes=settings["PLAN_CACHE_MAX_NODES"]
        ),
        metrics=metrics,
        graphs=GraphRegistry(
            results, plans, ttl_seconds=settings["GRAPH_TTL_SECONDS"],
            max_items=settings["PLAN_CACHE_SIZE"], max_nodes=settings["PLAN_CACHE_MAX_NODES"],
        ),
        request_limits=RequestLimits.from_config(settings),
    )
    app.before_request(_start_request)
    app.after_request(_finish_request)
    access.init_app(app, settings)  # after _start_request: a 401 carries the request id
    app.after_request(release_after_sending)  # runs first: after_request goes in reverse
    app.teardown_request(resume_collector)
    cors.init_app(app)
    app.register_blueprint(api_blueprint)
    app.register_blueprint(graphs_blueprint)
    app.register_blueprint(probes_blueprint)
    app.register_blueprint(pages.blueprint)
    return app


def _result_store(settings: dict[str, Any], metrics: ServiceMetrics) -> Store:
    """Redis when REDIS_URL is set, else the embedded store in CACHE_DIR shared by the server's
    workers; either way behind a small per-worker near cache unless NEAR_CACHE_MAX_BYTES is 0."""
    shared = _redis_store(settings, metrics) if settings["REDIS_URL"] else _embedded_store(
        settings, metrics
    )
    if not settings["NEAR_CACHE_MAX_BYTES"]:
        return shared
    near = MemoryStore(
        max_bytes=settings["NEAR_CACHE_MAX_BYTES"],
        max_entry_bytes=settings["CACHE_MAX_ENTRY_BYTES"],
        ttl_seconds=settings["CACHE_TTL_SECONDS"],
    )
    return NearCachedStore(near, shared)


def _count_error(metrics: ServiceMetrics):
    return lambda operation: metrics.cache_errors.labels(operation).inc()


def _shared_store_settings(settings: dict[str, Any], metrics: ServiceMetrics) -> dict[str, Any]:
    """What every shared store takes alike: key version, lifetimes, entry size, error count."""
    return {
        "engine_version": ENGINE_VERSION,
        "ttl_seconds": settings["CACHE_TTL_SECONDS"],
        "graph_ttl_seconds": settings["GRAPH_TTL_SECONDS"],
        "max_entry_bytes": settings["CACHE_MAX_ENTRY_BYTES"],
        "claim_ttl_seconds": settings["COMPUTE_DEADLINE_SECONDS"],
        "on_error": _count_error(metrics),
    }


def _redis_store(settings: dict[str, Any], metrics: ServiceMetrics) -> RedisStore:
    return RedisStore(
        settings["REDIS_URL"],
        timeout_seconds=settings["REDIS_TIMEOUT_SECONDS"],
        **_shared_store_settings(settings, metrics),
    )


def _embedded_store(settings: dict[str, Any], metrics: ServiceMetrics) -> DiskStore:
    try:
        return DiskStore(
            settings["CACHE_DIR"],
            max_bytes=settings["CACHE_MAX_BYTES"],
            **_shared_store_settings(settings, metrics),
        )
    except STORE_ERRORS as error:  # a directory we cannot write is a configuration error
        message = f"CACHE_DIR={settings['CACHE_DIR']!r} cannot hold the store: {error}"
        raise ConfigError(message) from None


# The hooks run on every request: they look up `request` and `g` once, not per attribute.


def _start_request() -> None:
    req = request._get_current_object()
    state = g._get_current_object()
    stop_collector()
    state.started = time.perf_counter()
    incoming = req.headers.get("X-Request-ID")
    if incoming and CLIENT_REQUEST_ID.fullmatch(incoming):
        state.request_id = incoming
    else:
        state.request_id = new_request_id()
    state.timer = StageTimer()
    length, limit = req.content_length, req.max_content_length
    if length is not None and limit is not None and length > limit:
        message = f"the request body is {length} bytes; the limit is {limit}"
        raise ApiError(413, "too_large", message)


def new_request_id() -> str:
    """A random version-4 UUID as 32 hex digits, as uuid.uuid4().hex (without its object)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    return raw.hex()


def _finish_request(response: Response) -> Response:
    req = request._get_current_object()
    state = g._get_current_object()
    finished = time.perf_counter()
    elapsed = finished - getattr(state, "started", finished)
    headers = response.headers
    headers["X-Request-ID"] = getattr(state, "request_id", None) or new_request_id()
    timer = getattr(state, "timer", None)
    if timer is not None and timer.stages:
        headers["Server-Timing"] = timer.server_timing()
    status = response.status_code
    route, method, metrics = _route_of(req), req.method, resources().metrics
    if response.is_streamed:  # an event stream: its time runs until its last event is sent
        started = finished - elapsed
        response.call_on_close(lambda: metrics.observe_request(
            route, method, status, time.perf_counter() - started))
    else:
        metrics.observe_request(route, method, status, elapsed)
    return response


def _route_of(req: Request) -> str:
    """The route a request is counted under: its rule, even when the method was wrong (405)."""
    rule = req.url_rule
    if rule is not None:
        return rule.rule
    refusal = req.routing_exception
    if isinstance(refusal, MethodNotAllowed) and refusal.valid_methods:
        adapter = current_app.url_map.bind_to_environ(req.environ)
        matched, _ = adapter.match(method=refusal.valid_methods[0], return_rule=True)
        return matched.rule
    return "unmatched"
