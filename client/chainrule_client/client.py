"""`Client` and `AsyncClient`: the endpoints of `Endpoints` performed over httpx, blocking or
with asyncio.

Both drive the same sans-IO flows (`protocol.conduct`); they differ only in how they send a
request, read a streamed body, and wait between retries.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TypeVar

import httpx

from chainrule_client import protocol
from chainrule_client.endpoints import Endpoints
from chainrule_client.protocol import Flow, Reply, Request, RetryPolicy, Send
from chainrule_client.registry import GraphRegistry

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")

VERSION = "0.1.0"
DEFAULT_URL = "http://localhost:8000"


def service_url(base_url: str | None) -> str:
    """The URL given, else $CHAINRULE_URL, else the local default (where `chainrule serve` is)."""
    return base_url or os.environ.get("CHAINRULE_URL") or DEFAULT_URL


def _headers(extra: Mapping[str, str] | None) -> dict[str, str]:
    return {"User-Agent": f"chainrule-client/{VERSION}", **(extra or {})}


def _arguments(call: Request[object]) -> dict[str, object]:
    """What httpx's request and stream take for this call."""
    return {"method": call.method, "url": call.path, "content": call.body, "headers": call.headers}


def _whole(response: httpx.Response) -> Reply:
    return Reply(response.status_code, response.headers, response.content)


class _Received:
    """A streamed body as it arrives. A success's chunks also go to the call's event sink as
    they come, so that its events reach the caller before the stream ends."""

    def __init__(self, call: Request[object]) -> None:
        self.call = call
        self.chunks: list[bytes] = []

    def take(self, response: httpx.Response, chunk: bytes) -> None:
        if response.is_success:
            self.call.events.feed(chunk)
        self.chunks.append(chunk)

    def reply(self, response: httpx.Response) -> Reply:
        return Reply(response.status_code, response.headers, b"".join(self.chunks))

    def failed(self, exc: httpx.TransportError) -> Reply | httpx.TransportError:
        """A stream that broke after part of it arrived is not retried (`broken_stream`)."""
        return protocol.broken_stream(exc) if self.chunks else exc


class _Face(Endpoints):
    """What both clients are made of: settings, an httpx client, and the endpoints."""

    _http_class: type[httpx.Client] | type[httpx.AsyncClient]

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float | None = 10.0,
        retries: int = 3,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        backoff: float = 0.2,
        register_graphs: bool = True,
        register_threshold: int = 64,
    ) -> None:
        self._policy = RetryPolicy(retries=retries, backoff=backoff)
        self._registry = GraphRegistry(register_graphs, register_threshold)
        self._http = self._http_class(
            base_url=service_url(base_url),
            timeout=timeout,
            headers=_headers(headers),
            transport=transport,  # type: ignore[arg-type]
        )


class Client(_Face):
    """A blocking client for one chainrule service; use it as a context manager.

    `base_url` defaults to the environment's CHAINRULE_URL, else http://localhost:8000.
    `timeout` (seconds) bounds each attempt; `retries` more attempts follow a connection error,
    a 429 or a 503 (not a 503 diagram_unavailable), after exponential backoff with jitter
    starting near `backoff` seconds. `transport` is handed to httpx (e.g.
    `httpx.WSGITransport(app=app)` to test in-process). With `register_graphs`, a graph of
    `register_threshold` nodes or more is registered once (POST /v1/graphs) and later calls
    over it send only their values (see `registry`).
    """

    _http: httpx.Client
    _http_class = httpx.Client

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _perform(self, flow: Flow[T]) -> T:
        driver = protocol.conduct(flow, self._policy)
        action = next(driver)
        while True:
            if isinstance(action, Send):
                feed: Reply | httpx.TransportError | None = self._send(action.call)
            else:
                time.sleep(action.seconds)
                feed = None
            try:
                action = driver.send(feed)
            except StopIteration as done:
                return done.value

    def _send(self, call: Request[object]) -> Reply | httpx.TransportError:
        received = _Received(call)
        try:
            if call.events is None:
                return _whole(self._http.request(**_arguments(call)))
            with self._http.stream(**_arguments(call)) as response:
                for chunk in response.iter_bytes():
                    received.take(response, chunk)
                return received.reply(response)
        except httpx.TransportError as exc:
            return received.failed(exc)


class AsyncClient(_Face):
    """The asyncio twin of `Client`: the same constructor and methods, awaited."""

    _http: httpx.AsyncClient
    _http_class = httpx.AsyncClient

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _perform(self, flow: Flow[T]) -> T:
        driver = protocol.conduct(flow, self._policy)
        action = next(driver)
        while True:
            if isinstance(action, Send):
                feed: Reply | httpx.TransportError | None = await self._send(action.call)
            else:
                await asyncio.sleep(action.seconds)
                feed = None
            try:
                action = driver.send(feed)
            except StopIteration as done:
                return done.value

    async def _send(self, call: Request[object]) -> Reply | httpx.TransportError:
        received = _Received(call)
        try:
            if call.events is None:
                return _whole(await self._http.request(**_arguments(call)))
            async with self._http.stream(**_arguments(call)) as response:
                async for chunk in response.aiter_bytes():
                    received.take(response, chunk)
                return received.reply(response)
        except httpx.TransportError as exc:
            return received.failed(exc)
