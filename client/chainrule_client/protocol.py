"""The sans-IO core that Client and AsyncClient share: calls, retries and errors, no sockets.

A `Call` is one HTTP request (method, path, body, headers) plus the function that reads its
success reply. `exchange(call, policy)` is a generator that drives one call to completion: it
yields `Send(call)` when the request should go out (and is sent back a `Reply` or the
transport's exception) and `Sleep(seconds)` between retries, and finally returns the parsed
result or raises the SDK's exception.

An endpoint that needs several calls (register a graph, then compute on it) is a `Flow`: a
generator that yields Calls and is sent each one's parsed result (or has its exception thrown
in). `conduct(flow, policy)` runs a flow's calls through `exchange`, so the two clients only
perform the same two actions, Send and Sleep, blocking or awaiting.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import httpx

from chainrule_client.exceptions import (
    APIError,
    ChainruleError,
    NetworkError,
    Timeout,
    TransportError,
    api_error_class,
)

__all__ = [
    "Action",
    "Call",
    "EventSink",
    "Flow",
    "Reply",
    "Request",
    "RetryPolicy",
    "Send",
    "Sleep",
    "api_error",
    "broken_stream",
    "conduct",
    "exchange",
    "single",
    "transport_error",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# 429 and 503 say "come back later"; every other status is the answer.
RETRY_STATUSES = frozenset({429, 503})
# 503s that say "not here, not soon": retrying cannot help (graphviz is missing on the server).
FINAL_CODES = frozenset({"diagram_unavailable"})
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


class EventSink:
    """Receives a streamed response's body chunk by chunk, as it arrives (see `sse`)."""

    def feed(self, chunk: bytes) -> None:
        raise NotImplementedError


class Request(Protocol[T_co]):
    """What a client needs to send a request and read its success reply."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def body(self) -> bytes | None: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def events(self) -> EventSink | None: ...
    def parse(self, reply: Reply) -> T_co: ...


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reader of its success reply; `events` asks for a streamed body."""

    method: str
    path: str
    body: bytes | None
    headers: Mapping[str, str]
    parse: Callable[[Reply], T]
    events: EventSink | None = None


@dataclass(frozen=True)
class Send:
    """Send this call's request and feed back the Reply (or the transport's exception)."""

    call: Request[Any]


@dataclass(frozen=True)
class Sleep:
    seconds: float


Action = Send | Sleep
Flow = Generator[Request[Any], Any, T]


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
    call: Request[T], policy: RetryPolicy
) -> Generator[Action, Reply | httpx.TransportError | None, T]:
    """Drive one call: yield Send / Sleep actions, return the parsed result or raise."""
    attempt = 0
    while True:
        outcome = yield Send(call)
        retry_left = attempt < policy.retries
        if isinstance(outcome, httpx.TransportError):
            if retry_left and isinstance(outcome, RETRY_EXCEPTIONS):
                yield Sleep(policy.delay(attempt))
                attempt += 1
                continue
            raise transport_error(outcome) from outcome
        if not isinstance(outcome, Reply):
            raise TypeError(f"exchange() takes a Reply or a transport error, not {outcome!r}")
        if _retryable(outcome) and retry_left:
            yield Sleep(policy.delay(attempt, _retry_after(outcome.headers)))
            attempt += 1
            continue
        if not 200 <= outcome.status < 300:
            raise api_error(outcome)
        return call.parse(outcome)


def conduct(
    flow: Flow[T], policy: RetryPolicy
) -> Generator[Action, Reply | httpx.TransportError | None, T]:
    """Drive a flow: each Call it yields goes through `exchange`; its result or error goes back."""
    result: Any = None
    error: ChainruleError | None = None
    while True:
        try:
            call = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as done:
            return done.value
        result, error = None, None
        try:
            result = yield from exchange(call, policy)
        except ChainruleError as exc:
            error = exc


def single(call: Request[T]) -> Flow[T]:
    """The flow of an endpoint that is one call."""
    return (yield call)


def broken_stream(exc: httpx.TransportError) -> httpx.TransportError:
    """A streamed body that broke after part of it arrived: never retried, because its events
    were already handed to the caller and would be handed over again."""
    return httpx.ReadError(f"the response stream broke after it began: {exc}")


def transport_error(exc: httpx.TransportError) -> TransportError:
    """The SDK's exception for an httpx transport failure."""
    kind = Timeout if isinstance(exc, httpx.TimeoutException) else NetworkError
    request = getattr(exc, "_request", None)
    where = f" ({request.method} {request.url})" if request is not None else ""
    return kind(f"{type(exc).__name__}: {exc or 'no details'}{where}")


def api_error(reply: Reply) -> APIError:
    """The SDK's exception for an error status, from the contract's error body when there is one."""
    request_id = reply.headers.get("x-request-id")
    error = _error_body(reply.content)
    if error is None:
        code, node, details = "http_error", None, None
        text = reply.content[:200].decode("utf-8", "replace").strip()
        message = f"HTTP {reply.status}" + (f": {text}" if text else "")
    else:
        code, message, node, details = error
    cls = api_error_class(reply.status, code)
    return cls(reply.status, code, message, node=node, details=details, request_id=request_id)


def _error_body(content: bytes) -> tuple[str, str, Any, Any] | None:
    """(code, message, node, details) of the contract's error body, or None if it is not one."""
    try:
        error = json.loads(content)["error"]
        code, message = error["code"], error["message"]
        if not isinstance(code, str) or not isinstance(message, str):
            raise TypeError
        return code, message, error.get("node"), error.get("details")
    except (ValueError, KeyError, TypeError):
        return None


def _retryable(reply: Reply) -> bool:
    if reply.status not in RETRY_STATUSES:
        return False
    error = _error_body(reply.content)
    return error is None or error[0] not in FINAL_CODES


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:  # an HTTP date: rare enough to fall back on the backoff
        return None
    return max(seconds, 0.0)
