"""The parts of the OpenAPI document that many operations share: the error responses, the
headers, the request id parameter, the tags and the bearer scheme.

Every operation has an operationId and one tag: a client generated from the document puts
each tag's operations in a module of their own and names every call after its operationId.
"""

from __future__ import annotations

from apispec import APISpec

from schemas import examples
from schemas.error_codes import GRAPH_FAULT_CODES, VALIDATION_ERROR

TAGS = {
    "compute": "Computations on a graph sent in the request.",
    "graphs": "Graphs registered once, and computations on them by id.",
    "results": "Stored result bodies, by hash.",
    "catalog": "The op catalog.",
    "probes": "Liveness, readiness and metrics.",
    "pages": "The playground, the API documentation and this document.",
}

BEARER = "bearerAuth"
# Keys are off unless API_KEYS is set: a request without one is as valid as one with one.
OPTIONAL_BEARER = [{}, {BEARER: []}]

_ERRORS = {
    "BadJson": ("400", "The body is not JSON (bad_json)."),
    "Unauthorized": ("401", "API_KEYS is set and the request has no Authorization: Bearer "
                     "<key> with a known key (unauthorized)."),
    "TooLarge": ("413", "The body, the graph or a tensor is over its limit (too_large)."),
    "UnsupportedMediaType": ("415", "The body is not application/json."),
    "RequestTimeout": ("408", "The body did not arrive in time: the client went silent for "
                       "CLIENT_TIMEOUT_SECONDS or fell behind CLIENT_MIN_BYTES_PER_SECOND "
                       "(request_timeout)."),
    "Unprocessable": ("422", f"{VALIDATION_ERROR} (422, fields wrong per the request schema: "
                      "`details` holds them, `node` names a node under graph.nodes.N) or "
                      f"{', '.join(GRAPH_FAULT_CODES)} (422, graph faults with `node` set)."),
    "NotFound": ("404", "Unknown hash or route (not_found)."),
    "RateLimited": ("429", "Over RATE_LIMIT for this key, or this client address without "
                    "API_KEYS (rate_limited); `details` holds the limit."),
    "DeadlineExceeded": ("504", "The computation ran past its time limit."),
    "DiagramUnavailable": ("503", "Graphviz's dot is missing or failed (diagram_unavailable); "
                           "the other endpoints still answer."),
    "Internal": ("500", "A bug; the body holds no traceback, the log holds the request id."),
}

# Headers an error response carries beyond X-Request-ID.
_ERROR_HEADERS = {
    "Unauthorized": {"WWW-Authenticate": {"schema": {"type": "string"},
                                          "description": 'Bearer realm="chainrule"'}},
    "RateLimited": {"Retry-After": {"schema": {"type": "integer"},
                                    "description": "seconds until the limit lets one through"}},
}


def error_responses(*names: str) -> dict:
    """The responses of a /v1 operation: `names` and those every /v1 operation can answer
    (keys and limits apply to /v1 alone)."""
    return {_ERRORS[name][0]: name
            for name in ("Internal", "Unauthorized", "RateLimited", *names)}


def named(operation_id: str, tag: str, operation: dict) -> dict:
    """`operation` with its operationId and tag."""
    return {"operationId": operation_id, "tags": [tag], **operation}


def add_shared_components(spec: APISpec) -> None:
    """The tags, the bearer scheme, the request id parameter, the headers and the error
    responses that operations refer to."""
    for tag, description in TAGS.items():
        spec.tag({"name": tag, "description": description})
    spec.components.security_scheme(
        BEARER,
        {"type": "http", "scheme": "bearer",
         "description": "One of API_KEYS when the server sets it (else none is needed); "
                        "METRICS_TOKEN for /metrics when that is set."},
    )
    spec.components.parameter(
        "RequestId",
        "header",
        {"name": "X-Request-ID", "required": False, "schema": {"type": "string"},
         "description": "Echoed in the response; generated when absent."},
    )
    spec.components.header(
        "X-Request-ID", {"schema": {"type": "string"}, "description": "The request's id."}
    )
    spec.components.header(
        "ETag", {"schema": {"type": "string"}, "description": 'The result hash, quoted: "<hash>".'}
    )
    spec.components.header(
        "X-Cache",
        {"schema": {"type": "string", "enum": ["hit", "miss", "bypass"]},
         "description": "Whether the result came from the cache."},
    )
    for name, (_, description) in _ERRORS.items():
        spec.components.response(
            name,
            {"description": f"{description} The body is the `Error` schema; its codes are "
                            "listed once, under Errors.",
             "content": {"application/json": {"schema": "Error",
                                               "example": examples.ERROR_EXAMPLE}},
             "headers": {"X-Request-ID": "X-Request-ID", **_ERROR_HEADERS.get(name, {})}},
        )
