"""Every endpoint the SDK calls, declared once for both clients.

An endpoint is a request builder from `calls` (its signature and docstring are the method's);
`Endpoints` lists them, and each client face (`Client`, `AsyncClient`) inherits the list and
says only how to perform a flow: blocking or awaited. A computing request becomes a flow
through `Endpoints._flow`, the one place that decides how a graph travels (see `registry`).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from chainrule_client import calls
from chainrule_client.optimize import optimize_call
from chainrule_client.protocol import Flow, Request, single
from chainrule_client.registry import GraphRegistry, registered_flow

if TYPE_CHECKING:
    from chainrule_client.client import AsyncClient, Client

__all__ = ["Endpoints", "endpoint"]

P = ParamSpec("P")
T = TypeVar("T")


class endpoint(Generic[P, T]):  # noqa: N801 - used like a decorator, named like one
    """A method made of a request builder: `client.name(...)` builds the request, then the
    client performs it (awaited on an AsyncClient)."""

    def __init__(self, build: Callable[P, Request[T]]) -> None:
        self.build = build
        self.name = build.__name__
        functools.update_wrapper(self, build)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, face: None, owner: type) -> endpoint[P, T]: ...
    @overload
    def __get__(self, face: Client, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, face: AsyncClient, owner: type) -> Callable[P, Awaitable[T]]: ...

    def __get__(self, face: Any, owner: type) -> Any:
        if face is None:
            return self
        build = self.build
        if inspect.iscoroutinefunction(face._perform):

            async def method(*args: Any, **kwargs: Any) -> Any:
                return await face._perform(face._flow(build(*args, **kwargs)))
        else:

            def method(*args: Any, **kwargs: Any) -> Any:
                return face._perform(face._flow(build(*args, **kwargs)))

        functools.update_wrapper(method, build)
        method.__name__ = method.__qualname__ = self.name
        method.__signature__ = _answer_signature(build)  # type: ignore[attr-defined]
        return method

    def __repr__(self) -> str:
        return f"<endpoint {self.name}>"


def _answer_signature(build: Callable[..., Any]) -> inspect.Signature:
    """The builder's signature, returning what the request's reply is read into."""
    signature = inspect.signature(build)
    answer = re.fullmatch(r"(?:GraphRequest|Call)\[(.*)\]", str(signature.return_annotation))
    if answer is None:
        return signature
    return signature.replace(return_annotation=answer.group(1))


class Endpoints:
    """The calls of the chainrule API, shared by `Client` and `AsyncClient`."""

    gradients = endpoint(calls.gradients_call)
    evaluate = endpoint(calls.evaluate_call)
    jacobian = endpoint(calls.jacobian_call)
    optimize = endpoint(optimize_call)
    gradcheck = endpoint(calls.gradcheck_call)
    diagram = endpoint(calls.diagram_call)
    result = endpoint(calls.result_call)
    ops = endpoint(calls.ops_call)
    health = endpoint(calls.health_call)

    _registry: GraphRegistry

    def _flow(self, request: Request[T]) -> Flow[T]:
        """How one request travels: big graphs by registered id, the rest as they are."""
        if self._registry.wants(request):
            return registered_flow(request, self._registry)  # type: ignore[arg-type]
        return single(request)
