"""The one error handler: every exception becomes the contract's JSON error body.

    {"error": {"code": ..., "message": ..., "node": ..., "details": ...}}

Engine errors map by their `.code` (too_large 413, deadline_exceeded 504, graph faults 422),
marshmallow's ValidationError is 422 validation_error with the field errors as details, BadJson
is 400 bad_json, a diagram Graphviz cannot draw (no `dot`, or it failed) is 503
diagram_unavailable, Flask's own HTTP errors keep their status, and anything else is a bug: 500
internal, logged with its traceback and request id, never showing either in the body.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, has_app_context, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from engine import DeadlineExceeded, EngineError
from schemas import BadJson, error_body
from service.diagram import DiagramError

log = logging.getLogger("chainrule.errors")

ENGINE_STATUS = {"too_large": 413, "deadline_exceeded": 504}

# Flask's HTTP errors whose contract code is not simply their snake-cased name.
HTTP_CODES = {413: "too_large", 404: "not_found", 408: "request_timeout"}


class ApiError(Exception):
    """An error the service raises itself, already in contract terms."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        node: str | None = None,
        details: dict | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.node = node
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    node: str | None = None,
    details: dict | None = None,
    headers: dict | None = None,
) -> Response:
    """A response carrying the contract's error body, counted by its code in /metrics."""
    resources = current_app.extensions.get("chainrule") if has_app_context() else None
    if resources is not None:
        resources.metrics.count_error(code, status)
    body = error_body(code, message, node=node, details=details)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def handle_error(error: Exception) -> Response:
    """Turn any exception raised while serving a request into an error response."""
    if isinstance(error, ApiError):
        return error_response(
            error.status, error.code, error.message, node=error.node, details=error.details
        )
    if isinstance(error, EngineError):
        status = ENGINE_STATUS.get(error.code, 422)
        message = error.message
        if type(error) is DeadlineExceeded:  # the engine's clock knows the moment, not the
            # setting (a diagram's rendering timeout, a subclass, names its own)
            seconds = current_app.config["COMPUTE_DEADLINE_SECONDS"]
            message = f"{message} of {seconds:g} s (COMPUTE_DEADLINE_SECONDS)"
        return error_response(status, error.code, message, node=error.node, details=error.details)
    if isinstance(error, ValidationError):
        return error_response(
            422,
            "validation_error",
            "the request does not match the schema; details lists each field's errors",
            node=error.kwargs.get("node"),
            details=_as_object(error.messages),
        )
    if isinstance(error, BadJson):
        return error_response(400, "bad_json", f"the body is not valid JSON: {error}")
    if isinstance(error, DiagramError):
        log.error("diagram rendering failed: %s", error, extra=_where())
        return error_response(
            503,
            "diagram_unavailable",
            "the diagram cannot be drawn: the server's Graphviz is missing or failed (logged "
            "with the request id); the other endpoints still answer",
        )
    if isinstance(error, HTTPException) and error.code is not None and error.code < 500:
        return _http_error_response(error)
    log.error(
        "unhandled error", exc_info=(type(error), error, error.__traceback__), extra=_where()
    )
    return error_response(
        500, "internal", "an internal error occurred; it has been logged with the request id"
    )


def _http_error_response(error: HTTPException) -> Response:
    status = error.code or 500
    code = HTTP_CODES.get(status) or (error.name or "error").lower().replace(" ", "_")
    if status == 404:
        message = f"no such resource: {request.method} {request.path}"
    elif status == 405:
        allowed = ", ".join(sorted(getattr(error, "valid_methods", None) or ()))
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    elif status == 413:
        limit = request.max_content_length
        message = f"the request body is over the limit of {limit} bytes"
    else:
        message = error.description or error.name
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return error_response(status, code, message, headers=headers)


def _as_object(messages: object) -> dict:
    return messages if isinstance(messages, dict) else {"_schema": messages}


def _where() -> dict:
    return {"method": request.method, "path": request.path}


def init_app(app: Flask) -> None:
    # Flask looks handlers up along the exception's MRO, so this one catches HTTPException too.
    app.register_error_handler(Exception, handle_error)
