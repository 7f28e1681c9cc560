"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response

from service.errors import error_response
from service.resources import resources

blueprint = Blueprint("probes", __name__)


@blueprint.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz() -> Response | dict:
    results = resources().results
    reason = results.unavailable_reason()
    if reason is not None:
        return error_response(
            503,
            "not_ready",
            f"the result cache is unavailable: {reason}; /v1 requests are still answered, "
            "computed without the cache",
            details={"cache": results.backend},
        )
    return {"status": "ready", "cache": results.backend}


@blueprint.get("/metrics")
def metrics() -> Response:
    text, content_type = resources().metrics.exposition()
    return Response(text, content_type=content_type)
