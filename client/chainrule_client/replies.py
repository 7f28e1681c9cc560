"""Reading replies: the service's JSON bodies turned into the SDK's result objects.

Every reader raises `ProtocolError` when a success body breaks the wire contract.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from chainrule_client.exceptions import ProtocolError
from chainrule_client.expr import Node
from chainrule_client.protocol import Reply
from chainrule_client.results import (
    Check,
    GradcheckResult,
    JacobianResult,
    OptimizeResult,
    Params,
    Result,
    Step,
)
from chainrule_client.tensors import decode_tensor

__all__ = [
    "evaluate_reader",
    "gradients_reader",
    "image_reader",
    "json_body",
    "json_of",
    "mistypes",
    "parse_any_result",
    "parse_gradcheck",
    "parse_health",
    "parse_jacobian",
    "parse_optimize",
    "read_optimize",
    "read_step",
    "parse_ops",
    "parse_result",
    "tensor",
]

# what reading a field of a decoded body raises when the field is missing or of another type
READ_ERRORS: tuple[type[Exception], ...] = (KeyError, TypeError, AttributeError)


def json_body(reply: Reply) -> Any:
    return json_of(reply.content, "the response body")


def json_of(text: bytes | str, what: str) -> Any:
    """Decoded JSON, or a ProtocolError saying that `what` is not JSON."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"{what} is not JSON: {exc}") from None


@contextmanager
def mistypes(what: str, errors: tuple[type[Exception], ...] = READ_ERRORS) -> Iterator[None]:
    """Turns a missing or mistyped field met while reading `what` into a ProtocolError."""
    try:
        yield
    except errors as exc:
        raise ProtocolError(f"{what} is missing or mistypes {exc}") from None


def tensor(value: object, where: str) -> Any:
    """A wire tensor decoded, or a ProtocolError saying where in the body it was."""
    try:
        return decode_tensor(value)
    except ValueError as exc:
        raise ProtocolError(f"{where}: {exc}") from None


def parse_result(reply: Reply, ids: Mapping[Node, str], kind: str) -> Result:
    """A /v1/gradients or /v1/evaluate body as a Result."""
    body = json_body(reply)
    with mistypes(f"a {kind} response"):
        nodes = body["nodes"]
        values, grads = {}, {}
        for node_id, entry in nodes.items():
            values[node_id] = tensor(entry["value"], f"nodes.{node_id}.value")
            if "grad" in entry:
                grads[node_id] = tensor(entry["grad"], f"nodes.{node_id}.grad")
        return Result(
            output=body["output"],
            value=tensor(body["value"], "value"),
            values=values,
            grads=grads,
            hash=body["hash"],
            cached=bool(body["cached"]),
            kind="evaluate" if kind == "evaluate" else "gradients",
            request_id=reply.headers.get("x-request-id"),
            ids=ids,
        )


def gradients_reader(reply: Reply, ids: Mapping[Node, str]) -> Result:
    return parse_result(reply, ids, "gradients")


def evaluate_reader(reply: Reply, ids: Mapping[Node, str]) -> Result:
    return parse_result(reply, ids, "evaluate")


def image_reader(reply: Reply, ids: Mapping[Node, str]) -> bytes:
    """A diagram: the image bytes as they came."""
    return reply.content


def parse_gradcheck(reply: Reply, ids: Mapping[Node, str]) -> GradcheckResult:
    """A /v1/gradcheck body as a GradcheckResult."""
    body = json_body(reply)
    with mistypes("a gradcheck response"):
        checks = {}
        for node_id, entry in body["checks"].items():
            analytic, numeric = entry.get("analytic"), entry.get("numeric")
            checks[node_id] = Check(
                max_rel_error=float(tensor(entry["max_rel_error"], f"checks.{node_id}")),
                verdict=entry["verdict"],
                analytic=None if analytic is None else tensor(analytic, f"checks.{node_id}"),
                numeric=None if numeric is None else tensor(numeric, f"checks.{node_id}"),
                details=entry.get("details"),
            )
        return GradcheckResult(
            checks=checks,
            passed=bool(body["passed"]),
            hash=body["hash"],
            cached=bool(body.get("cached", False)),
            request_id=reply.headers.get("x-request-id"),
            ids=ids,
        )


def parse_jacobian(reply: Reply, ids: Mapping[Node, str]) -> JacobianResult:
    """A /v1/jacobian body as a JacobianResult."""
    body = json_body(reply)
    with mistypes("a jacobian response"):
        return JacobianResult(
            output=body["output"],
            value=tensor(body["value"], "value"),
            jacobians={
                node_id: tensor(j, f"jacobian.{node_id}") for node_id, j in body["jacobian"].items()
            },
            hash=body["hash"],
            cached=bool(body["cached"]),
            request_id=reply.headers.get("x-request-id"),
            ids=ids,
        )


def parse_optimize(reply: Reply, ids: Mapping[Node, str]) -> OptimizeResult:
    """A /v1/optimize JSON body as an OptimizeResult."""
    return read_optimize(json_body(reply), ids, reply.headers.get("x-request-id"))


def read_optimize(body: Any, ids: Mapping[Node, str], request_id: str | None) -> OptimizeResult:
    """An optimize response body (already decoded JSON) as an OptimizeResult."""
    with mistypes("an optimize response", (*READ_ERRORS, ValueError)):
        params = {node_id: tensor(v, f"params.{node_id}") for node_id, v in body["params"].items()}
        return OptimizeResult(
            params=Params(params, ids),
            value=tensor(body["value"], "value"),
            steps=int(body["steps"]),
            stopped=str(body["stopped"]),
            trajectory=[read_step(entry) for entry in body["trajectory"]],
            hash=body["hash"],
            cached=bool(body["cached"]),
            request_id=request_id,
        )


def read_step(entry: Any) -> Step:
    """One trajectory entry (also the data of a streamed `step` event)."""
    with mistypes("a trajectory entry", (KeyError, TypeError, ValueError)):
        return Step(
            step=int(entry["step"]),
            value=tensor(entry["value"], "trajectory value"),
            grad_norm=float(tensor(entry["grad_norm"], "trajectory grad_norm")),
        )


def parse_any_result(reply: Reply) -> Result | GradcheckResult | JacobianResult | OptimizeResult:
    """A cached body from /v1/results/{hash}: whichever endpoint produced it."""
    body = json_body(reply)
    if isinstance(body, dict) and "checks" in body:
        return parse_gradcheck(reply, {})
    if isinstance(body, dict) and "jacobian" in body:
        return parse_jacobian(reply, {})
    if isinstance(body, dict) and "trajectory" in body:
        return parse_optimize(reply, {})
    is_evaluate = isinstance(body, dict) and all(
        isinstance(entry, dict) and "grad" not in entry for entry in body.get("nodes", {}).values()
    )
    return parse_result(reply, {}, "evaluate" if is_evaluate and body.get("nodes") else "gradients")


def parse_ops(reply: Reply) -> list[dict[str, Any]]:
    """The op catalog as a list of dicts (name, arity, attrs, description, ...)."""
    body = json_body(reply)
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
