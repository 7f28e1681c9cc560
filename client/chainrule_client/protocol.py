"""The sans-IO core that Client and AsyncClient share: requests, retries and parsing, no sockets.

A `Call` is one endpoint's request (method, path, body, headers) plus the function that reads its
success reply. `exchange(call, policy)` is a generator that drives a call to completion: it
yields `SEND` when the request should go out (and is sent back a `Reply` or the transport's
exception) and `Sleep(seconds)` between retries, and finally returns the parsed result or raises
the SDK's exception. The two clients only perform those two actions, blocking or awaiting.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import numpy as np

from chainrule_client.exceptions import (
    APIError,
    NetworkError,
    ProtocolError,
    Timeout,
    TransportError,
    api_error_class,
)
from chainrule_client.expr import GraphLike, Node, serialise
from chainrule_client.results import Check, GradcheckResult, Result
from chainrule_client.tensors import decode_tensor, encode_tensor

__all__ = [
    "SEND",
    "Call",
    "Inputs",
    "NodeRef",
    "Reply",
    "RetryPolicy",
    "Sleep",
    "api_error",
    "diagram_call",
    "evaluate_call",
    "exchange",
    "gradcheck_call",
    "gradients_call",
    "health_call",
    "ops_call",
    "parse_any_result",
    "parse_gradcheck",
    "parse_health",
    "parse_ops",
    "parse_result",
    "result_call",
    "transport_error",
]

T = TypeVar("T")

NodeRef = Node | str
Inputs = Mapping[NodeRef, Any]
DIAGRAM_TYPES = {"svg": "image/svg+xml", "dot": "text/vnd.graphviz", "png": "image/png"}

# 429 and 503 say "come back later"; every other status is the answer.
RETRY_STATUSES = frozenset({429, 503})
# Failures where the request cannot have reached the app. RemoteProtocolError is a kept-alive
# connection the server closed just as it was reused; every endpoint is a pure function of its
# body, so sending it again is safe.
RETRY_EXCEPTIONS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class Reply:
    """An HTTP response as the core sees it; `headers` must look names up case-insensitively."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    body: bytes | None
    headers: Mapping[str, str]
    parse: Callable[[Reply], T]


@dataclass(frozen=True)
class Sleep:
    seconds: float


class _Send:
    def __repr__(self) -> str:
        return "SEND"


SEND = _Send()


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` more attempts after the first; delays grow as backoff * 2**n, with jitter."""

    retries: int = 3
    backoff: float = 0.2
    max_delay: float = 10.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0:
            raise ValueError(f"backoff must be >= 0, got {self.backoff}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        ceiling = min(self.backoff * 2**attempt, self.max_delay)
        # "Equal jitter": at least half the step, so clients that failed together spread out
        # without any of them retrying immediately.
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def exchange(
    call: Call[T], policy: RetryPolicy
) -> Generator[_Send | Sleep, Reply | httpx.TransportError | None, T]:
    """Drive one call: yield SEND / Sleep actions, return the parsed result or raise."""
    attempt = 0
    while True:
        outcome = yield SEND
        retry_left = attempt < policy.retries
        if isinstance(outcome, httpx.TransportError):
            if retry_left and isinstance(outcome, RETRY_EXCEPTIONS):
                yield Sleep(policy.delay(attempt))
                attempt += 1
                continue
            raise transport_error(outcome) from outcome
        if not isinstance(outcome, Reply):
            raise TypeError(f"exchange() takes a Reply or a transport error, not {outcome!r}")
        if outcome.status in RETRY_STATUSES and retry_left:
            yield Sleep(policy.delay(attempt, _retry_after(outcome.headers)))
            attempt += 1
            continue
        if not 200 <= outcome.status < 300:
            raise api_error(outcome)
        return call.parse(outcome)


def transport_error(exc: httpx.TransportError) -> TransportError:
    """The SDK's exception for an httpx transport failure."""
    kind = Timeout if isinstance(exc, httpx.TimeoutException) else NetworkError
    request = getattr(exc, "_request", None)
    where = f" ({request.method} {request.url})" if request is not None else ""
    return kind(f"{type(exc).__name__}: {exc or 'no details'}{where}")


def api_error(reply: Reply) -> APIError:
    """The SDK's exception for an error status, from the contract's error body when there is one."""
    request_id = reply.headers.get("x-request-id")
    try:
        error = json.loads(reply.content)["error"]
        code, message = error["code"], error["message"]
        if not isinstance(code, str) or not isinstance(message, str):
            raise TypeError
        node, details = error.get("node"), error.get("details")
    except (ValueError, KeyError, TypeError):
        code, node, details = "http_error", None, None
        text = reply.content[:200].decode("utf-8", "replace").strip()
        message = f"HTTP {reply.status}" + (f": {text}" if text else "")
    cls = api_error_class(reply.status, code)
    return cls(reply.status, code, message, node=node, details=details, request_id=request_id)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:  # an HTTP date: rare enough to fall back on the backoff
        return None
    return max(seconds, 0.0)


# -------------------------------------------------------------------- request bodies


def _dumps(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False, default=_jsonable).encode()


def _jsonable(value: object) -> object:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _node_id(node: NodeRef, ids: Mapping[Node, str]) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, Node):
        if node in ids:
            return ids[node]
        if node.id is not None:
            return node.id
        raise ValueError("an unnamed node that is not part of the expression cannot be named")
    raise TypeError(f"expected a Node or a node id, got {type(node).__name__}")


def _graph_request(
    output: GraphLike,
    *,
    inputs: Inputs | None,
    seed: Any,
    wrt: NodeRef | Iterable[NodeRef] | None,
    cache: bool,
    allow_nonfinite: bool,
    check: NodeRef | Iterable[NodeRef] | None = None,
    **extra: Any,
) -> tuple[bytes, Mapping[Node, str]]:
    serialised = serialise(output)
    ids = serialised.ids
    body: dict[str, Any] = {"graph": serialised.graph}
    if inputs:
        body["inputs"] = {_node_id(k, ids): encode_tensor(v) for k, v in inputs.items()}
    if seed is not None:
        body["seed"] = encode_tensor(seed)
    if wrt is not None:
        body["wrt"] = _node_ids(wrt, ids)
    if check is not None:
        body["check"] = _node_ids(check, ids)
    if not cache:
        body["cache"] = False
    if allow_nonfinite:
        body["allow_nonfinite"] = True
    body.update({k: v for k, v in extra.items() if v is not None})
    return _dumps(body), ids


def _node_ids(refs: NodeRef | Iterable[NodeRef], ids: Mapping[Node, str]) -> list[str]:
    listed = [refs] if isinstance(refs, Node | str) else list(refs)
    return [_node_id(x, ids) for x in listed]


def _json_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/json"}


def _check_encoding(encoding: str) -> str | None:
    if encoding not in ("json", "b64"):
        raise ValueError(f"encoding must be 'json' or 'b64', got {encoding!r}")
    return "b64" if encoding == "b64" else None


def gradients_call(
    output: GraphLike,
    inputs: Inputs | None = None,
    seed: Any = None,
    wrt: NodeRef | Iterable[NodeRef] | None = None,
    cache: bool = True,
    *,
    encoding: str = "json",
    allow_nonfinite: bool = False,
) -> Call[Result]:
    body, ids = _graph_request(
        output, inputs=inputs, seed=seed, wrt=wrt, cache=cache,
        allow_nonfinite=allow_nonfinite, encoding=_check_encoding(encoding),
    )
    return Call("POST", "/v1/gradients", body, _json_headers(),
                lambda reply: parse_result(reply, ids, "gradients"))


def evaluate_call(
    output: GraphLike,
    inputs: Inputs | None = None,
    wrt: NodeRef | Iterable[NodeRef] | None = None,
    cache: bool = True,
    *,
    encoding: str = "json",
    allow_nonfinite: bool = False,
) -> Call[Result]:
    body, ids = _graph_request(
        output, inputs=inputs, seed=None, wrt=wrt, cache=cache,
        allow_nonfinite=allow_nonfinite, encoding=_check_encoding(encoding),
    )
    return Call("POST", "/v1/evaluate", body, _json_headers(),
                lambda reply: parse_result(reply, ids, "evaluate"))


def gradcheck_call(
    output: GraphLike,
    inputs: Inputs | None = None,
    seed: Any = None,
    check: NodeRef | Iterable[NodeRef] | None = None,
    eps: float | None = None,
    cache: bool = True,
    *,
    allow_nonfinite: bool = False,
) -> Call[GradcheckResult]:
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, int | float) or eps <= 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    body, ids = _graph_request(
        output, inputs=inputs, seed=seed, wrt=None, cache=cache,
        allow_nonfinite=allow_nonfinite, check=check, eps=eps,
    )
    return Call("POST", "/v1/gradcheck", body, _json_headers(),
                lambda reply: parse_gradcheck(reply, ids))


def diagram_call(
    output: GraphLike,
    inputs: Inputs | None = None,
    seed: Any = None,
    wrt: NodeRef | Iterable[NodeRef] | None = None,
    format: str = "svg",
    cache: bool = True,
) -> Call[bytes]:
    if format not in DIAGRAM_TYPES:
        raise ValueError(f"format must be one of {', '.join(DIAGRAM_TYPES)}, got {format!r}")
    body, _ = _graph_request(
        output, inputs=inputs, seed=seed, wrt=wrt, cache=cache,
        allow_nonfinite=False, format=format,
    )
    headers = {"Content-Type": "application/json", "Accept": DIAGRAM_TYPES[format]}
    return Call("POST", "/v1/diagram", body, headers, lambda reply: reply.content)


def result_call(hash: str) -> Call[Result | GradcheckResult]:
    if not isinstance(hash, str) or not hash:
        raise ValueError(f"a result hash must be a non-empty string, got {hash!r}")
    path = "/v1/results/" + quote(hash, safe="")
    return Call("GET", path, None, {"Accept": "application/json"}, parse_any_result)


def ops_call() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/v1/ops", None, {"Accept": "application/json"}, parse_ops)


def health_call() -> Call[dict[str, Any]]:
    return Call("GET", "/healthz", None, {"Accept": "application/json"}, parse_health)


# -------------------------------------------------------------------- reading replies


def _json_body(reply: Reply) -> Any:
    try:
        return json.loads(reply.content)
    except ValueError as exc:
        raise ProtocolError(f"the response body is not JSON: {exc}") from None


def _tensor(value: object, where: str) -> Any:
    try:
        return decode_tensor(value)
    except ValueError as exc:
        raise ProtocolError(f"{where}: {exc}") from None


def parse_result(reply: Reply, ids: Mapping[Node, str], kind: str) -> Result:
    """A /v1/gradients or /v1/evaluate body as a Result."""
    body = _json_body(reply)
    try:
        nodes = body["nodes"]
        values, grads = {}, {}
        for node_id, entry in nodes.items():
            values[node_id] = _tensor(entry["value"], f"nodes.{node_id}.value")
            if "grad" in entry:
                grads[node_id] = _tensor(entry["grad"], f"nodes.{node_id}.grad")
        return Result(
            output=body["output"],
            value=_tensor(body["value"], "value"),
            values=values,
            grads=grads,
            hash=body["hash"],
            cached=bool(body["cached"]),
            kind="evaluate" if kind == "evaluate" else "gradients",
            request_id=reply.headers.get("x-request-id"),
            ids=ids,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"a {kind} response is missing or mistypes {exc}") from None


def parse_gradcheck(reply: Reply, ids: Mapping[Node, str]) -> GradcheckResult:
    """A /v1/gradcheck body as a GradcheckResult."""
    body = _json_body(reply)
    try:
        checks = {}
        for node_id, entry in body["checks"].items():
            analytic, numeric = entry.get("analytic"), entry.get("numeric")
            checks[node_id] = Check(
                max_rel_error=float(_tensor(entry["max_rel_error"], f"checks.{node_id}")),
                verdict=entry["verdict"],
                analytic=None if analytic is None else _tensor(analytic, f"checks.{node_id}"),
                numeric=None if numeric is None else _tensor(numeric, f"checks.{node_id}"),
            )
        return GradcheckResult(
            checks=checks,
            passed=bool(body["passed"]),
            hash=body["hash"],
            cached=bool(body.get("cached", False)),
            request_id=reply.headers.get("x-request-id"),
            ids=ids,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"a gradcheck response is missing or mistypes {exc}") from None


def parse_any_result(reply: Reply) -> Result | GradcheckResult:
    """A cached body from /v1/results/{hash}: whichever endpoint produced it."""
    body = _json_body(reply)
    if isinstance(body, dict) and "checks" in body:
        return parse_gradcheck(reply, {})
    is_evaluate = isinstance(body, dict) and all(
        isinstance(entry, dict) and "grad" not in entry for entry in body.get("nodes", {}).values()
    )
    return parse_result(reply, {}, "evaluate" if is_evaluate and body.get("nodes") else "gradients")


def parse_ops(reply: Reply) -> list[dict[str, Any]]:
    """The op catalog as a list of dicts (name, arity, attrs, description, ...)."""
    body = _json_body(reply)
    ops = body.get("ops") if isinstance(body, dict) else body
    if not isinstance(ops, list) or not all(isinstance(op, dict) and "name" in op for op in ops):
        raise ProtocolError("the op catalog response is not a list of ops")
    return ops


def parse_health(reply: Reply) -> dict[str, Any]:
    """The /healthz body; a body that is not a JSON object is reported as its text."""
    try:
        body = json.loads(reply.content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"status": reply.content.decode("utf-8", "replace").strip() or "ok"}
