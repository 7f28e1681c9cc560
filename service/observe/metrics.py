"""Prometheus metrics of the service, correct under several gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR in the environment (before the process starts: prometheus_client
decides at import), every worker writes its values to files in that directory and /metrics
merges them all, whichever worker answers. Without it, each app keeps its own registry.
Either way /metrics also shows the answering process's `process_*` series and a
`chainrule_build_info` series whose labels name the versions.
"""

from __future__ import annotations

import os
import platform

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from engine import ENGINE_VERSION
from schemas.catalog import package_version

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
NODE_BUCKETS = (1, 10, 30, 100, 300, 1_000, 10_000, 100_000, 1_000_000)
# What the result store reports failing; each series exists (at 0) from the start, so a rate()
# over it works before the first failure.
CACHE_OPERATIONS = ("get", "put", "claim", "wait", "ping")


class BuildInfoCollector(Collector):
    """chainrule_build_info 1, labelled with the package, engine and Python versions."""

    def collect(self):
        family = GaugeMetricFamily(
            "chainrule_build_info", "The running build: always 1, its versions as labels.",
            labels=["version", "engine_version", "python_version"],
        )
        family.add_metric([package_version(), ENGINE_VERSION, platform.python_version()], 1)
        yield family


class MultiprocessSetupError(RuntimeError):
    """PROMETHEUS_MULTIPROC_DIR is configured but was not in the environment at startup."""


class ServiceMetrics:
    """The service's counters and histograms, and their exposition for GET /metrics."""

    def __init__(self, multiprocess_dir: str | None = None):
        if multiprocess_dir and os.environ.get("PROMETHEUS_MULTIPROC_DIR") != multiprocess_dir:
            raise MultiprocessSetupError(
                "PROMETHEUS_MULTIPROC_DIR must be set in the environment before the process "
                "starts, so that prometheus_client writes the values where /metrics reads them"
            )
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        counter, histogram = self._counter, self._histogram
        self.requests = counter(
            "chainrule_http_requests", "HTTP requests answered, by route, method and status.",
            "route", "method", "status",
        )
        self.latency = histogram(
            "chainrule_http_request_duration_seconds",
            "Time from request start to response, by route.", LATENCY_BUCKETS, "route",
        )
        self.errors = counter(
            "chainrule_errors", "Error answers by the contract's code and HTTP status (an event "
            "stream's error event among them).", "code", "status",
        )
        self.cache_lookups = counter(
            "chainrule_cache_lookups",
            "Result cache lookups by outcome: hit, miss, or bypass (the request set cache false).",
            "outcome",
        )
        self.cache_errors = counter(
            "chainrule_cache_errors", "Result cache backend failures, by operation.", "operation"
        )
        for operation in CACHE_OPERATIONS:
            self.cache_errors.labels(operation)
        self.plan_lookups = counter(
            "chainrule_plan_cache_lookups", "Compiled-plan cache lookups by outcome: hit or miss.",
            "outcome",
        )
        self.engine_seconds = histogram(
            "chainrule_engine_seconds",
            "Time in the engine per computed request, by kind and stage (compile or run).",
            LATENCY_BUCKETS, "kind", "stage",
        )
        self.graph_nodes = histogram(
            "chainrule_graph_nodes",
            "Nodes per graph loaded from a request body, by kind (a body seen before and found "
            "in the cache is not loaded again).",
            NODE_BUCKETS, "kind",
        )

        _add_process_collectors(self.registry)

        # Children of labelled metrics, looked up once: labels() takes a lock and builds keys.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._cache_lookup_children = {
            outcome: self.cache_lookups.labels(outcome) for outcome in ("hit", "miss", "bypass")
        }
        self._plan_lookup_children = {
            True: self.plan_lookups.labels("hit"), False: self.plan_lookups.labels("miss")
        }
        self._engine_children: dict[tuple[str, str], Histogram] = {}
        self._error_children: dict[tuple[str, int], Counter] = {}
        self._graph_nodes_children: dict[str, Histogram] = {}

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _histogram(
        self, name: str, documentation: str, buckets: tuple[float, ...], *labels: str
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            counter = self.requests.labels(route, method, str(status))
            children = (counter, self.latency.labels(route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_error(self, code: str, status: int) -> None:
        """One error answer with the contract's `code`."""
        child = self._error_children.get((code, status))
        if child is None:
            child = self._error_children[code, status] = self.errors.labels(code, str(status))
        child.inc()

    def count_cache_lookup(self, outcome: str) -> None:
        """One result cache lookup: "hit", "miss" or "bypass"."""
        self._cache_lookup_children[outcome].inc()

    def count_plan_lookup(self, cached: bool) -> None:
        """One compiled-plan cache lookup, found (`cached`) or not."""
        self._plan_lookup_children[cached].inc()

    def observe_engine(self, kind: str, stage: str, seconds: float) -> None:
        """Time spent in one engine stage (compile, run) of a request of `kind`."""
        child = self._engine_children.get((kind, stage))
        if child is None:
            child = self._engine_children[kind, stage] = self.engine_seconds.labels(kind, stage)
        child.observe(seconds)

    def observe_graph_nodes(self, kind: str, nodes: int) -> None:
        """The size of a graph loaded from a request body of `kind`."""
        child = self._graph_nodes_children.get(kind)
        if child is None:
            child = self._graph_nodes_children[kind] = self.graph_nodes.labels(kind)
        child.observe(nodes)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text of every worker's values (or this app's), and its content type."""
        if self.multiprocess_dir:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=self.multiprocess_dir)
            _add_process_collectors(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _add_process_collectors(registry: CollectorRegistry) -> None:
    """The answering process's process_* series and the build info."""
    ProcessCollector(registry=registry)
    registry.register(BuildInfoCollector())
