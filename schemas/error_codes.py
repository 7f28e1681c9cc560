"""The error codes as the OpenAPI document states them: once, in its description.

The codes themselves come from the engine's error tree (graph faults) and CONTRACT section 3;
each error response of the document refers to this one section instead of repeating it.
"""

from __future__ import annotations

from engine import GraphError

VALIDATION_ERROR = "validation_error"
# The engine's graph faults, each naming its node. UnexpectedValue (a value on a gate) shares
# validation_error: the request schema refuses that as a field error before the engine sees it.
GRAPH_FAULT_CODES = sorted(
    {cls.code for cls in GraphError.__subclasses__()} - {VALIDATION_ERROR}
)

# The one statement of the error codes: the document's description shows it once, and each
# error response refers to it.
ERRORS_SECTION = "\n".join([
    "## Errors",
    "",
    "Every error, for every status, has the body `{\"error\": {\"code\", \"message\", "
    "\"node\", \"details\"}}` (the `Error` schema), and the response carries `X-Request-ID`.",
    "",
    "| status | code | when |",
    "|---|---|---|",
    "| 400 | `bad_json` | the body is not JSON |",
    "| 401 | `unauthorized` | `API_KEYS` is set and the request has no known bearer key |",
    "| 429 | `rate_limited` | over `RATE_LIMIT`; `Retry-After` says when to come back |",
    "| 413 | `too_large` | the body, the graph or a tensor is over its limit (numpy's own "
    "included), `node` set where one is to blame |",
    "| 415 | `unsupported_media_type` | the body is not `application/json` |",
    "| 408 | `request_timeout` | the body did not arrive in time: the client went silent for "
    "`CLIENT_TIMEOUT_SECONDS` or fell behind `CLIENT_MIN_BYTES_PER_SECOND` |",
    f"| 422 | `{VALIDATION_ERROR}` | fields wrong per the request schema: `details` holds the "
    "field errors, shaped like the request; `node` names the node under `graph.nodes.N` |",
    "| 422 | " + ", ".join(f"`{code}`" for code in GRAPH_FAULT_CODES)
    + " | graph faults, with `node` set; `cycle` lists the whole cycle and `missing_input` "
    "every missing input in `details` (the message names the first ten) |",
    "| 404 | `not_found` | unknown hash or route |",
    "| 405 | `method_not_allowed` | a route that does not take the method |",
    "| 504 | `deadline_exceeded` | the computation ran past `COMPUTE_DEADLINE_SECONDS` |",
    "| 503 | `diagram_unavailable` | /v1/diagram: the server's Graphviz cannot draw |",
    "| 503 | `not_ready` | /readyz: the store is unusable (Redis or a cluster shard unreachable) |",
    "| 500 | `internal` | a bug: no traceback in the body; the log holds the request id |",
])
