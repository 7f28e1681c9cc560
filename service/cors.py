"""Cross-origin access for browser callers: off unless CORS_ORIGINS lists their origins.

CORS_ORIGINS is a comma-separated list of origins (`https://app.example`), or `*` for any.
A request from a listed origin gets Access-Control-Allow-Origin (and the headers a script may
read); a preflight (OPTIONS with Access-Control-Request-Method, answered by Flask's automatic
OPTIONS) also gets the methods and headers it may use. Unlisted origins get no CORS headers, so
the browser keeps its same-origin rule.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

# What a browser script may read from a response besides the simple headers (a 429's
# Retry-After and a 401's WWW-Authenticate among them).
EXPOSED_HEADERS = "ETag, X-Cache, X-Request-ID, Server-Timing, Retry-After, WWW-Authenticate"
ALLOWED_REQUEST_HEADERS = "Authorization, Content-Type, Accept, If-None-Match, X-Request-ID"
PREFLIGHT_MAX_AGE_SECONDS = "600"


def parse_origins(text: str) -> tuple[str, ...]:
    """CORS_ORIGINS's text as origins; empty text allows none."""
    origins = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and "://" not in origin:
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port]) or *")
    return origins


def _add_cors_headers(response: Response) -> Response:
    origins = current_app.config["CORS_ORIGINS"]
    origin = request.headers.get("Origin")
    if not origins or not origin:
        return response
    headers = response.headers
    headers.add("Vary", "Origin")
    if "*" in origins:
        headers["Access-Control-Allow-Origin"] = "*"
    elif origin.rstrip("/") in origins:
        headers["Access-Control-Allow-Origin"] = origin
    else:
        return response
    headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        headers["Access-Control-Allow-Methods"] = headers.get("Allow", "GET, POST")
        headers["Access-Control-Allow-Headers"] = ALLOWED_REQUEST_HEADERS
        headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE_SECONDS
    return response


def init_app(app: Flask) -> None:
    """Add the CORS headers to responses, when CORS_ORIGINS lists any origin (without, no
    response carries them, so no hook needs to run)."""
    if app.config["CORS_ORIGINS"]:
        app.after_request(_add_cors_headers)
