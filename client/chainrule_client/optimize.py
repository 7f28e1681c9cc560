"""The optimisation request (POST /v1/optimize, CONTRACT section 6) and its event stream.

`optimize_call` checks the arguments and builds the body; with `on_step` it asks for
`text/event-stream` and hands each streamed `step` event to the callback as it arrives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from chainrule_client import replies
from chainrule_client.attrs import finite, integer
from chainrule_client.calls import GraphRequest, Inputs, Nodes, check_encoding, graph_request
from chainrule_client.exceptions import GRAPH_CODES, ProtocolError
from chainrule_client.expr import GraphLike, Node
from chainrule_client.protocol import Reply, api_error
from chainrule_client.results import OptimizeResult, Step
from chainrule_client.sse import Event, EventStream, parse_events

__all__ = [
    "OPTIMIZERS",
    "optimize_call",
    "optimizer_spec",
    "schedule_spec",
    "stop_spec",
]

# Each optimizer's options besides lr, as the contract names them.
OPTIMIZERS = {
    "sgd": ("momentum", "nesterov", "weight_decay"),
    "adam": ("betas", "eps", "weight_decay"),
}
SCHEDULES = ("constant", "linear", "cosine")
STOP_RULES = ("grad_norm_below", "value_below", "value_above")
GOALS = ("minimize", "maximize")
# An `event: error` carries the error body but no status; these give it the status the same
# error would have had before the stream began.
_STATUS_BY_CODE = {"bad_json": 400, "not_found": 404, "too_large": 413, "deadline_exceeded": 504}

OnStep = Callable[[Step], object]


def optimize_call(
    loss: GraphLike,
    params: Nodes,
    optimizer: str | Mapping[str, Any] = "adam",
    lr: float = 1e-2,
    steps: int = 500,
    goal: str = "minimize",
    *,
    inputs: Inputs | None = None,
    batch: Inputs | None = None,
    batch_size: int | None = None,
    shuffle_seed: int | None = None,
    lr_schedule: str | Mapping[str, Any] | None = None,
    stop: Mapping[str, float] | None = None,
    record_every: int | None = None,
    on_step: OnStep | None = None,
    cache: bool = True,
    encoding: str = "json",
    allow_nonfinite: bool = False,
    **optimizer_options: Any,
) -> GraphRequest[OptimizeResult]:
    """Run the update rule in the service: `steps` updates of the `params` (input nodes) of the
    scalar `loss`, by SGD or Adam as torch.optim defines them.

    `optimizer` is "sgd" or "adam" (options such as `momentum=0.9`, `nesterov=True`,
    `betas=(0.9, 0.999)`, `eps`, `weight_decay` as keywords), or the contract's optimizer object.
    `lr_schedule` is "constant", "linear" or "cosine", or {"name": ..., "end": factor}. `stop`
    holds any of grad_norm_below / value_below / value_above. With `batch`, each step uses the
    mean over the data set, or mini-batches of `batch_size` drawn by a shuffle from
    `shuffle_seed`. `on_step(step)` is called for each recorded step as the service streams it.
    """
    if batch_size is not None and batch is None:
        raise ValueError("batch_size needs a batch to draw mini-batches from")
    stream = None if on_step is None else _StepStream(on_step)
    request = graph_request(
        "optimize", loss, lambda reply, ids: _read(reply, ids, stream),
        inputs=inputs, batch=batch, params=params, cache=cache,
        allow_nonfinite=allow_nonfinite,
        accept="application/json" if stream is None else "text/event-stream",
        events=stream,
        goal=None if _choice(goal, GOALS, "goal") == "minimize" else goal,
        optimizer=optimizer_spec(optimizer, lr, optimizer_options),
        steps=_positive(steps, "steps"),
        lr_schedule=schedule_spec(lr_schedule),
        stop=stop_spec(stop),
        batch_size=None if batch_size is None else _positive(batch_size, "batch_size"),
        shuffle_seed=None if shuffle_seed is None else integer(shuffle_seed, "shuffle_seed"),
        record_every=None if record_every is None else _positive(record_every, "record_every"),
        encoding=check_encoding(encoding),
    )
    if not request.fields["params"]:
        raise ValueError("params names no node to optimise")
    return request


# -------------------------------------------------------------------- the body's parts


def optimizer_spec(
    optimizer: str | Mapping[str, Any], lr: float, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The contract's optimizer object: name, lr, and the options given."""
    spec = {"name": optimizer} if isinstance(optimizer, str) else dict(optimizer)
    name = _choice(spec.get("name"), tuple(OPTIMIZERS), "optimizer")
    spec = {**spec, **options}
    spec.setdefault("lr", lr)
    unknown = set(spec) - {"name", "lr", *OPTIMIZERS[name]}
    if unknown:
        raise TypeError(f"{name} takes no option {', '.join(sorted(unknown))}")
    if finite(spec["lr"], "lr") <= 0:
        raise ValueError(f"lr must be positive, got {spec['lr']}")
    if "betas" in spec:
        spec["betas"] = [finite(b, "betas") for b in spec["betas"]]
    return spec


def schedule_spec(schedule: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The lr_schedule object, or None for the default constant rate."""
    if schedule is None:
        return None
    spec = {"name": schedule} if isinstance(schedule, str) else dict(schedule)
    if _choice(spec.get("name"), SCHEDULES, "lr_schedule") == "constant" and len(spec) == 1:
        return None
    if "end" in spec:
        spec["end"] = finite(spec["end"], "lr_schedule end")
    return spec


def stop_spec(stop: Mapping[str, float] | None) -> dict[str, float] | None:
    if stop is None:
        return None
    unknown = set(stop) - set(STOP_RULES)
    if unknown:
        raise ValueError(
            f"unknown stop rule {', '.join(sorted(unknown))}; use {', '.join(STOP_RULES)}"
        )
    return {rule: finite(value, rule) for rule, value in stop.items()}


def _choice(value: object, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _positive(value: object, name: str) -> int:
    number = integer(value, name)
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


# -------------------------------------------------------------------- the answer


class _StepStream(EventStream):
    """Hands each streamed `step` event to the callback; counts them."""

    def __init__(self, on_step: OnStep) -> None:
        super().__init__(self._event)
        self.on_step = on_step
        self.delivered = 0

    def _event(self, event: Event) -> None:
        if event.name == "step":
            self.on_step(replies.read_step(_data(event)))
            self.delivered += 1


def _read(reply: Reply, ids: Mapping[Node, str], stream: _StepStream | None) -> OptimizeResult:
    content_type = reply.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        result = replies.parse_optimize(reply, ids)
        if stream is not None:  # answered whole (a cache hit, say): replay the recorded steps
            for step in result.trajectory:
                stream.on_step(step)
        return result
    request_id = reply.headers.get("x-request-id")
    for event in parse_events(reply.content):
        if event.name == "error":
            raise _stream_error(event, reply)
        if event.name == "result":
            return replies.read_optimize(_data(event), ids, request_id)
    raise ProtocolError("the optimize event stream ended without a result event")


def _data(event: Event) -> Any:
    return replies.json_of(event.data, f"an {event.name!r} event's data")


def _stream_error(event: Event, reply: Reply) -> Exception:
    body = event.data.encode()
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    status = 422 if code == "validation_error" or code in GRAPH_CODES else 500
    status = _STATUS_BY_CODE.get(code, status)  # type: ignore[arg-type]
    return api_error(Reply(status, reply.headers, body))
