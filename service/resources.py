"""What the views share across requests within one worker: caches, metrics and limits."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from engine import Limits
from service.cache import ResultCache
from service.known_requests import KnownRequests
from service.metrics import ServiceMetrics
from service.plans import PlanCache


@dataclass
class Resources:
    """Attached by create_app as app.extensions["chainrule"]."""

    results: ResultCache
    plans: PlanCache
    known_requests: KnownRequests
    metrics: ServiceMetrics
    limits: Limits


def resources() -> Resources:
    """The current app's shared resources."""
    return current_app.extensions["chainrule"]
