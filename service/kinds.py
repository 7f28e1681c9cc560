"""The request kinds, declared once: one row per computing endpoint.

A row says how its request is loaded (the kind's name picks its schema in
schemas.REQUEST_SCHEMAS), what it computes (`compute`, through service/pipeline.py), how the
answer is written (`dump`), whether that answer is cached under its hash, and how the endpoint
appears over HTTP (path, summary, response). The table drives the Flask routes
(service/api/views.py), the OpenAPI paths (`openapi_endpoints`, handed to schemas.build_spec)
and the command line. A new kind is a request schema, a dump function and a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from engine import (
    GradCheck,
    JacobianResult,
    Plan,
    RunResult,
    TooLarge,
    gradcheck,
    input_ids,
    jacobian,
)
from engine.optim import Schedule, make_optimizer
from engine.optimize import (
    BadParams,
    DataSetObjective,
    OptimizeResult,
    ParamVector,
    StopRule,
    optimize,
)
from schemas import (
    dump_evaluate,
    dump_gradcheck,
    dump_jacobian,
    dump_optimize,
    dump_result,
)
from schemas.openapi import ComputeEndpoint
from schemas.requests import REQUEST_SCHEMAS
from service import diagram
from service.pipeline import ComputeContext, Loaded, plan_of, run

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Kind:
    """One computing endpoint, POST /v1/<name>.

    `compute(loaded, context)` does the engine's work; `dump(answer, loaded)` writes the body.
    A `cached` kind answers JSON that is stored under the request hash (X-Cache, GET
    /v1/results) unless `stored(answer)` says no; the others answer afresh each time, as
    `media_type(loaded)`. A `streams` kind also answers `Accept: text/event-stream`, one event
    per trajectory entry (`context.on_record`) and the body as the last.
    """

    name: str
    summary: str
    compute: Callable[[Loaded, ComputeContext], Any]
    dump: Callable[[Any, Loaded], bytes]
    cached: bool = True
    response_schema: str | None = None  # the OpenAPI component of a JSON answer
    response_description: str = ""
    media_type: Callable[[Loaded], str] = lambda loaded: JSON
    image_types: tuple[str, ...] = ()  # what a non-JSON answer may be, for the OpenAPI document
    extra_errors: tuple[str, ...] = ()  # OpenAPI error responses beyond every kind's
    stored: Callable[[Any], bool] = lambda answer: True
    streams: bool = False

    @property
    def path(self) -> str:
        return f"/v1/{self.name}"


# ---------------------------------------------------------------- what each kind computes


def _forward_backward(loaded: Loaded, context: ComputeContext) -> RunResult:
    return run(loaded, plan_of(loaded, context), context, forward_only=False)


def _forward(loaded: Loaded, context: ComputeContext) -> RunResult:
    return run(loaded, plan_of(loaded, context), context, forward_only=True)


def _check(loaded: Loaded, context: ComputeContext) -> dict[str, GradCheck]:
    request = loaded.request
    _limit_gradcheck_size(loaded, context.limits.max_gradcheck_elements)
    plan = plan_of(loaded, context)
    with context.engine_stage("run"):
        return gradcheck(
            plan, loaded.sources, check=request.check, eps=request.eps, seed=request.seed,
            deadline=context.deadline,
        )


def _limit_gradcheck_size(loaded: Loaded, limit: int | None) -> None:
    request = loaded.request
    checked = request.check if request.check is not None else input_ids(loaded.request.graph.nodes)
    elements = sum(loaded.sources[name].size for name in checked if name in loaded.sources)
    if limit is not None and elements > limit:
        raise TooLarge(
            f"a gradient check of {elements} input elements is over the limit of {limit}; "
            "name fewer inputs in 'check'"
        )


def _jacobian(loaded: Loaded, context: ComputeContext) -> JacobianResult:
    plan = plan_of(loaded, context)
    with context.engine_stage("run"):
        return jacobian(plan, loaded.sources, loaded.request.wrt, deadline=context.deadline)


def _draw(loaded: Loaded, context: ComputeContext) -> bytes:
    nodes = len(loaded.request.graph.nodes)
    limit = context.limits.diagram_max_nodes
    if limit is not None and nodes > limit:
        raise TooLarge(
            f"a diagram of {nodes} nodes is over the limit of {limit}; "
            "draw a smaller graph or use /v1/gradients"
        )
    plan = plan_of(loaded, context)
    result = run(loaded, plan, context, forward_only=False)
    with context.timer("render"):
        return diagram.draw_circuit(
            plan, result, loaded.request.format, context.limits.diagram_timeout_seconds
        )


def _optimize(loaded: Loaded, context: ComputeContext) -> OptimizeResult:
    request = loaded.request
    _limit_steps(request.steps, context.limits.max_optimize_steps)
    _refuse_batched_params(request.params, request.batch)
    optimizer = make_optimizer(**request.optimizer)
    plan = plan_of(loaded, context)
    with context.engine_stage("run"):
        return optimize(
            plan, loaded.sources, request.params, optimizer=optimizer, steps=request.steps,
            lr_schedule=Schedule(**request.lr_schedule), goal=request.goal,
            stop=StopRule(**request.stop), record_every=request.record_every,
            deadline=context.deadline, on_record=context.on_record,
            objective=_data_set_objective(loaded, plan, context.deadline),
        )


def _data_set_objective(
    loaded: Loaded, plan: Plan, deadline: float | None
) -> Callable[[ParamVector], DataSetObjective] | None:
    """With a batch, what each step minimises: the mean over its points (or a mini-batch)."""
    request = loaded.request
    if not request.batch:
        return None  # the plan's output itself
    data = {name: loaded.sources[name] for name in request.batch}
    return lambda params: DataSetObjective(
        plan, loaded.sources, params, data, batch_size=request.batch_size,
        shuffle_seed=request.shuffle_seed, deadline=deadline)


def _refuse_batched_params(params: list[str], batch: dict) -> None:
    batched = [name for name in params if name in batch]
    if batched:
        message = (f"params names '{batched[0]}', a batched input; the params are shared "
                   "inputs, one value for every point")
        raise BadParams(message, batched[0], {"params": [message]})


def _limit_steps(steps: int, limit: int | None) -> None:
    if limit is not None and steps > limit:
        raise ValidationError({"steps": [f"at most {limit} steps (MAX_OPTIMIZE_STEPS)"]})


def _finished(result: OptimizeResult) -> bool:
    """A run the deadline cut short depends on the server's speed: answered, never stored."""
    return result.stopped != "deadline"


# ---------------------------------------------------------------- how each kind answers
# (module-level names looked up at call time, so a test may replace a dump function)


def _dump_gradients(result: RunResult, loaded: Loaded) -> bytes:
    return dump_result(result, hash=loaded.hash, encoding=loaded.request.encoding)


def _dump_evaluate(result: RunResult, loaded: Loaded) -> bytes:
    return dump_evaluate(result, hash=loaded.hash, encoding=loaded.request.encoding)


def _dump_gradcheck(checks: dict[str, GradCheck], loaded: Loaded) -> bytes:
    return dump_gradcheck(checks, hash=loaded.hash, encoding=loaded.request.encoding)


def _dump_jacobian(result: JacobianResult, loaded: Loaded) -> bytes:
    return dump_jacobian(result, hash=loaded.hash, encoding=loaded.request.encoding)
def _dump_optimize(result: OptimizeResult, loaded: Loaded) -> bytes:
    return dump_optimize(result, hash=loaded.hash, encoding=loaded.request.encoding)


def _image(image: bytes, loaded: Loaded) -> bytes:
    return image


def _image_type(loaded: Loaded) -> str:
    return diagram.MEDIA_TYPES[loaded.request.format]


# ---------------------------------------------------------------- the table

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("gradients", "Forward and backward pass", _forward_backward, _dump_gradients,
             response_schema="GradientsResponse",
             response_description="Values and gradients of the reported nodes."),
        Kind("evaluate", "Forward pass only", _forward, _dump_evaluate,
             response_schema="EvaluateResponse",
             response_description="Values of the reported nodes."),
        Kind("gradcheck", "Backward pass against centred finite differences", _check,
             _dump_gradcheck, response_schema="GradcheckResponse",
             response_description="One check per input."),
        Kind("jacobian", "Full Jacobians: one backward pass over the one-hot seeds", _jacobian,
             _dump_jacobian, response_schema="JacobianResponse",
             response_description="The output's value and d(output)/d(node) per wrt node."),
        Kind("diagram", "The circuit drawn with forward values and gradients", _draw, _image,
             cached=False, response_description="The image itself, in the requested format.",
             media_type=_image_type, image_types=tuple(diagram.MEDIA_TYPES.values()),
             extra_errors=("DiagramUnavailable",)),
        Kind("optimize", "The update rule run in the service: SGD or Adam over input nodes",
             _optimize, _dump_optimize, response_schema="OptimizeResponse",
             response_description="Where the run ended and its trajectory.",
             stored=_finished, streams=True),
    )
}
if KINDS.keys() != REQUEST_SCHEMAS.keys():
    raise RuntimeError("every request schema needs its kind in service/kinds.py, and back")


def openapi_endpoints() -> list[ComputeEndpoint]:
    """The computing endpoints as schemas.build_spec describes them."""
    return [
        ComputeEndpoint(
            kind=kind.name,
            path=kind.path,
            summary=kind.summary,
            response_schema=kind.response_schema,
            response_description=kind.response_description,
            image_types=kind.image_types,
            errors=kind.extra_errors,
            streams=kind.streams,
        )
        for kind in KINDS.values()
    ]
