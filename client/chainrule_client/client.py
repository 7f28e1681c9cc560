"""`Client` and `AsyncClient`: the protocol core driven over httpx, blocking or with asyncio.

Both build their calls with `chainrule_client.protocol` and differ only in how they send a
request and wait between retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from chainrule_client import protocol
from chainrule_client.expr import GraphLike
from chainrule_client.protocol import Call, Inputs, NodeRef, Reply, RetryPolicy, Sleep
from chainrule_client.results import GradcheckResult, Result

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")
Nodes = NodeRef | Iterable[NodeRef]

VERSION = "0.1.0"


def _headers(extra: Mapping[str, str] | None) -> dict[str, str]:
    return {"User-Agent": f"chainrule-client/{VERSION}", **(extra or {})}


class Client:
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

    def _perform(self, call: Call[T]) -> T:
        flow = protocol.exchange(call, self._policy)
        action = next(flow)
        while True:
            feed: Reply | httpx.TransportError | None = None
            if isinstance(action, Sleep):
                time.sleep(action.seconds)
            else:
                try:
                    response = self._http.request(
                        call.method, call.path, content=call.body, headers=call.headers
                    )
                    feed = Reply(response.status_code, response.headers, response.content)
                except httpx.TransportError as exc:
                    feed = exc
            try:
                action = flow.send(feed)
            except StopIteration as done:
                return done.value

    def gradients(
        self,
        output: GraphLike,
        inputs: Inputs | None = None,
        seed: Any = None,
        wrt: Nodes | None = None,
        cache: bool = True,
        *,
        encoding: str = "json",
        allow_nonfinite: bool = False,
    ) -> Result:
        """Forward and backward pass of the expression (or graph dict) ending in `output`.

        `inputs` maps input nodes or ids to values; `seed` is dL/d(output) (default ones);
        `wrt` limits the nodes reported; `encoding="b64"` asks for base64 tensors back.
        """
        return self._perform(
            protocol.gradients_call(
                output, inputs, seed, wrt, cache, encoding=encoding,
                allow_nonfinite=allow_nonfinite,
            )
        )

    def evaluate(
        self,
        output: GraphLike,
        inputs: Inputs | None = None,
        wrt: Nodes | None = None,
        cache: bool = True,
        *,
        encoding: str = "json",
        allow_nonfinite: bool = False,
    ) -> Result:
        """Forward pass only; the Result has values and no gradients."""
        return self._perform(
            protocol.evaluate_call(
                output, inputs, wrt, cache, encoding=encoding, allow_nonfinite=allow_nonfinite
            )
        )

    def gradcheck(
        self,
        output: GraphLike,
        inputs: Inputs | None = None,
        seed: Any = None,
        check: Nodes | None = None,
        eps: float | None = None,
        cache: bool = True,
        *,
        allow_nonfinite: bool = False,
    ) -> GradcheckResult:
        """Compare the backward pass with centred finite differences, per input in `check`."""
        return self._perform(
            protocol.gradcheck_call(
                output, inputs, seed, check, eps, cache, allow_nonfinite=allow_nonfinite
            )
        )

    def diagram(
        self,
        output: GraphLike,
        inputs: Inputs | None = None,
        seed: Any = None,
        wrt: Nodes | None = None,
        format: str = "svg",
        cache: bool = True,
    ) -> bytes:
        """The circuit drawn with values and gradients: svg, dot or png bytes."""
        return self._perform(protocol.diagram_call(output, inputs, seed, wrt, format, cache))

    def result(self, hash: str) -> Result | GradcheckResult:
        """A cached answer by its hash (NotFound when the cache no longer holds it)."""
        return self._perform(protocol.result_call(hash))

    def ops(self) -> list[dict[str, Any]]:
        """The service's op catalog."""
        return self._perform(protocol.ops_call())

    def health(self) -> dict[str, Any]:
        """The /healthz body; raises when the service does not answer 200."""
        return self._perform(protocol.health_call())


class AsyncClient:
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

    async def _perform(self, call: Call[T]) -> T:
        flow = protocol.exchange(call, self._policy)
        action = next(flow)
        while True:
            feed: Reply | httpx.TransportError | None = None
            if isinstance(action, Sleep):
                await asyncio.sleep(action.seconds)
            else:
                try:
                    response = await self._http.request(
                        call.method, call.path, content=call.body, headers=call.headers
                    )
                    feed = Reply(response.status_code, response.headers, response.content)
                except httpx.TransportError as exc:
                    feed = exc
            try:
                action = flow.send(feed)
            except StopIteration as done:
                return done.value

    async def gradients(
        self,
        output: GraphLike,
        inputs: Inputs | None = None,
        seed: Any = None,
        wrt: Nodes | None = None,
        cache: bool = True,
        *,
        encoding: str = "json",
        allow_nonfinite: bool = False,
    ) -> Result:
        """See `Client.gradients`."""
        return await self._perform(
            protocol.gradients_call(
                output, inputs, seed, wrt, cache, encoding=encoding,
                allow_nonfinite=allow_nonfinite,
            )
        )

    async def evaluate(
        self,
        output: GraphLike,
        inputs: Inputs | None = None,
        wrt: Nodes | None = None,
        cache: bool = True,
        *,
        encoding: str = "json",
        allow_nonfinite: bool = False,
    ) -> Result:
        """See `Client.evaluate`."""
        return await self._perform(
            protocol.evaluate_call(
                output, inputs, wrt, cache, encoding=encoding, allow_nonfinite=allow_nonfinite
            )
        )

    async def gradcheck(
        self,
        output: GraphLike,
        inputs: Inputs | None = None,
        seed: Any = None,
        check: Nodes | None = None,
        eps: float | None = None,
        cache: bool = True,
        *,
        allow_nonfinite: bool = False,
    ) -> GradcheckResult:
        """See `Client.gradcheck`."""
        return await self._perform(
            protocol.gradcheck_call(
                output, inputs, seed, check, eps, cache, allow_nonfinite=allow_nonfinite
            )
        )

    async def diagram(
        self,
        output: GraphLike,
        inputs: Inputs | None = None,
        seed: Any = None,
        wrt: Nodes | None = None,
        format: str = "svg",
        cache: bool = True,
    ) -> bytes:
        """See `Client.diagram`."""
        return await self._perform(
            protocol.diagram_call(output, inputs, seed, wrt, format, cache)
        )

    async def result(self, hash: str) -> Result | GradcheckResult:
        """See `Client.result`."""
        return await self._perform(protocol.result_call(hash))

    async def ops(self) -> list[dict[str, Any]]:
        """See `Client.ops`."""
        return await self._perform(protocol.ops_call())

    async def health(self) -> dict[str, Any]:
        """See `Client.health`."""
        return await self._perform(protocol.health_call())
