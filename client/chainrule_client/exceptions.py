"""The SDK's exceptions: one root, transport failures apart from errors the service answered.

    ChainruleError                 root of everything the SDK raises about a call
    ├── TransportError             no HTTP response arrived
    │   ├── Timeout                connect, read, write or pool timeout
    │   └── NetworkError           connection refused or reset, DNS failure, broken HTTP
    ├── APIError                   the service answered with an error status (or an `error`
    │   │                          event in a stream): .status .code .message .node .details
    │   │                          .request_id
    │   ├── BadRequest             400 bad_json, 415 unsupported_media_type
    │   ├── NotFound               404 not_found (unknown result hash or route; an expired
    │   │                          graph id is re-registered before this is raised)
    │   ├── TooLarge               413 too_large (body, graph or tensor over a limit)
    │   ├── ValidationError        422 validation_error (.details holds the field errors)
    │   ├── GraphError             422 unknown_op, cycle, shape_mismatch, ... (.node names it)
    │   ├── Unavailable            429 or 503, still so after every retry (503
    │   │                          diagram_unavailable is not retried)
    │   ├── DeadlineExceeded       504 deadline_exceeded
    │   └── ServerError            500 internal and any other 5xx
    └── ProtocolError              a response that breaks the wire contract (e.g. an event
                                   stream that ends without its result)

Misuse caught before anything is sent (an unnamed node in `wrt`, a tensor exponent, a ragged
array) raises the ordinary TypeError or ValueError.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "BadRequest",
    "ChainruleError",
    "DeadlineExceeded",
    "GraphError",
    "NetworkError",
    "NotFound",
    "ProtocolError",
    "ServerError",
    "Timeout",
    "TooLarge",
    "TransportError",
    "Unavailable",
    "ValidationError",
]


class ChainruleError(Exception):
    """Root of every error the SDK raises about a call to the service."""


class TransportError(ChainruleError):
    """The request got no HTTP response (after retries, where retrying applies)."""


class Timeout(TransportError):
    """The connect, read, write or pool timeout ran out."""


class NetworkError(TransportError):
    """The connection could not be made or broke before a response arrived."""


class ProtocolError(ChainruleError):
    """The service's response does not follow the wire contract."""


class APIError(ChainruleError):
    """The service answered with an error status and (normally) the contract's error body.

    `code` is the contract's error code, or "http_error" when the body was not a chainrule
    error (a proxy's error page, say).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        node: str | None = None,
        details: object = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.node = node
        self.details = details
        self.request_id = request_id

    def __str__(self) -> str:
        where = f" (node {self.node!r})" if self.node is not None else ""
        return f"{self.status} {self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, node={self.node!r}, request_id={self.request_id!r})"
        )


class BadRequest(APIError):
    """400 bad_json or 415 unsupported_media_type."""


class NotFound(APIError):
    """404: no cached result under that hash, or no such route."""


class TooLarge(APIError):
    """413: the body, graph or a tensor is over the service's limits."""


class ValidationError(APIError):
    """422 validation_error: `details` maps fields to their errors, which str() lists too."""

    def __str__(self) -> str:
        fields = _field_errors(self.details)
        return super().__str__() + (f" [{'; '.join(fields)}]" if fields else "")


# str() of a ValidationError lists at most this many field errors (`details` holds them all).
FIELDS_SHOWN = 5


def _field_errors(details: object, path: str = "") -> list[str]:
    """'field.sub: message' for each error in marshmallow-shaped `details` (nested dicts
    of lists of messages), the first FIELDS_SHOWN of them."""
    found: list[str] = []
    stack = [(path, details)]
    while stack and len(found) < FIELDS_SHOWN:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack += [(f"{where}.{key}" if where else str(key), value)
                      for key, value in reversed(item.items())]
        elif isinstance(item, list) and all(isinstance(message, str) for message in item):
            found.append(f"{where or 'body'}: {' '.join(item)}")
        elif item is not None:
            found.append(f"{where or 'body'}: {item}")
    return found


class GraphError(APIError):
    """422 for a fault in the graph itself; `node` names the offending node."""


class Unavailable(APIError):
    """429 or 503, and still so when the retries ran out; 503 diagram_unavailable at once."""


class DeadlineExceeded(APIError):
    """504: the computation ran over the service's time limit."""


class ServerError(APIError):
    """500 (a bug in the service) or another 5xx."""


GRAPH_CODES = frozenset(
    {
        "unknown_op",
        "unknown_node",
        "duplicate_id",
        "cycle",
        "arity",
        "bad_attr",
        "missing_input",
        "shape_mismatch",
        "nonfinite_input",
    }
)

_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    404: NotFound,
    413: TooLarge,
    415: BadRequest,
    422: ValidationError,
    429: Unavailable,
    503: Unavailable,
    504: DeadlineExceeded,
}


def api_error_class(status: int, code: str) -> type[APIError]:
    """The most specific APIError subclass for a status and contract error code."""
    if status == 422 and code in GRAPH_CODES:
        return GraphError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return APIError
