"""`Client` and `AsyncClient`: the endpoints of `Endpoints` performed over httpx, blocking or
with asyncio.

Both drive the same sans-IO flows (`protocol.conduct`); they differ only in how they send a
request, read a streamed body, and wait between retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TypeVar

import httpx

from chainrule_client import protocol
from chainrule_client.endpoints import Endpoints
from chainrule_client.protocol import Flow, Reply, Request, RetryPolicy, Send

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")

VERSION = "0.1.0"


def _headers(extra: Mapping[str, str] | None) -> dict[str, str]:
    return {"User-Agent": f"chainrule-client/{VERSION}", **(extra or {})}


class Client(Endpoints):
    """A blocking client for one chainrule service; use it as a context manager.

    `timeout` (seconds) bounds each attempt; `retries` more attempts follow a connection error,
    a 429 or a 503, after exponential backoff with jitter starting near `backoff` seconds.
    `transport` is handed to httpx (e.g. `httpx.WSGITransport(app=app)` to test in-process).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | None = 10.0,
        retries: int = 3,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        backoff: float = 0.2,
    ) -> None:
        self._policy = RetryPolicy(retries=retries, backoff=backoff)
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, headers=_headers(headers), transport=transport
        )

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
        try:
            if call.events is None:
                response = self._http.request(
                    call.method, call.path, content=call.body, headers=call.headers
                )
                return Reply(response.status_code, response.headers, response.content)
            with self._http.stream(
                call.method, call.path, content=call.body, headers=call.headers
            ) as response:
                chunks = []
                for chunk in response.iter_bytes():
                    if response.is_success:
                        call.events.feed(chunk)
                    chunks.append(chunk)
                return Reply(response.status_code, response.headers, b"".join(chunks))
        except httpx.TransportError as exc:
            return exc


class AsyncClient(Endpoints):
    """The asyncio twin of `Client`: the same constructor and methods, awaited."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | None = 10.0,
        retries: int = 3,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: float = 0.2,
    ) -> None:
        self._policy = RetryPolicy(retries=retries, backoff=backoff)
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=_headers(headers), transport=transport
        )

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
        try:
            if call.events is None:
                response = await self._http.request(
                    call.method, call.path, content=call.body, headers=call.headers
                )
                return Reply(response.status_code, response.headers, response.content)
            async with self._http.stream(
                call.method, call.path, content=call.body, headers=call.headers
            ) as response:
                chunks = []
                async for chunk in response.aiter_bytes():
                    if response.is_success:
                        call.events.feed(chunk)
                    chunks.append(chunk)
                return Reply(response.status_code, response.headers, b"".join(chunks))
        except httpx.TransportError as exc:
            return exc
