"""What the views share across requests within one worker: the result store, caches, registered
graphs, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from service.graphs import GraphRegistry
from service.known_requests import KnownRequests
from service.known_structures import KnownStructures
from service.observe.metrics import ServiceMetrics
from service.pipeline import RequestLimits
from service.plans import PlanCache
from service.store import Store


@dataclass
class Resources:
    """Attached by create_app as app.extensions["chainrule"]."""

    results: Store
    plans: PlanCache
    known_requests: KnownRequests
    known_structures: KnownStructures
    metrics: ServiceMetrics
    graphs: GraphRegistry
    request_limits: RequestLimits  # what one request may ask for, read from the config once

    def close(self) -> None:
        """Release what the worker holds open (Redis connections): gunicorn's worker_exit hook
        (service/gunicorn.conf.py) calls it as a worker exits."""
        self.results.close()


def resources() -> Resources:
    """The current app's shared resources."""
    return current_app.extensions["chainrule"]
