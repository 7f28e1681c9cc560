"""Reading a request body: JSON only, and never past the size limit."""

from __future__ import annotations

from flask import current_app, request

from service.errors import ApiError


def read_json_body() -> bytes:
    """The raw body of an application/json request (415 otherwise; 413 over MAX_BODY_BYTES)."""
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
