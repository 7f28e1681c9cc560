"""Request schemas (CONTRACT sections 2 and 3) and `load_request`: wire JSON to engine objects.

Field errors come back as marshmallow's `ValidationError.messages` (the service answers 422
`validation_error` with them as `details`). The schemas check the wire shape, including the
contract's rule on `value` (required on const, refused on gates), and op names against the
engine's catalog (`unknown_op`, naming the node); arity, attrs, references, cycles, shapes and
non-finite values are left to the engine, which names the node too. Each kind takes only the
fields that mean something for it: the rest are unknown fields. Optional fields take their
default when absent (the Request dataclass's default where the schema gives none); null is
never a value.

A registered graph (CONTRACT section 7) is loaded once by `schemas.graph.load_graph`; the
requests against it are each kind's schema without `graph`
(`REGISTERED_SCHEMAS`, derived from REQUEST_SCHEMAS), loaded by `load_request(..., graph=)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from engine import REDUCES, Graph, gc_paused
from schemas.fields import JsonNumber, StrictBoolean, StrictSchema, StringList
from schemas.graph import GraphSchema, check_ops, faulty_node
from schemas.optimize import GOALS, LrScheduleSchema, OptimizerSchema, StopSchema, count
from schemas.tensors import Tensor, check_nominal, element_limit

REQUEST_KINDS = ("gradients", "evaluate", "gradcheck", "diagram", "jacobian", "optimize")
ENCODINGS = ("json", "b64")
DIAGRAM_FORMATS = ("svg", "dot", "png")
DEFAULT_ENCODING = "json"
DEFAULT_EPS = 1e-5
DEFAULT_FORMAT = "svg"
DEFAULT_REDUCE = "none"


@dataclass(frozen=True, slots=True)
class Request:
    """A loaded request of any kind; fields a kind does not take keep their defaults."""

    graph: Graph
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    seed: np.ndarray | None = None
    wrt: list[str] | None = None
    encoding: str = DEFAULT_ENCODING
    cache: bool = True
    allow_nonfinite: bool = False
    eps: float = DEFAULT_EPS
    check: list[str] | None = None
    format: str = DEFAULT_FORMAT
    # CONTRACT section 5: batched input values (leading axis B) and what shared grads are
    batch: dict[str, np.ndarray] = field(default_factory=dict)
    reduce: str = DEFAULT_REDUCE
    # /v1/optimize (the nested objects in canonical form: every option, defaults filled in)
    params: list[str] = field(default_factory=list)
    goal: str = "minimize"
    optimizer: dict = field(default_factory=dict)
    lr_schedule: dict = field(default_factory=lambda: {"name": "constant", "end": 0.0})
    steps: int = 1
    stop: dict = field(default_factory=dict)
    record_every: int = 1
    batch_size: int | None = None
    shuffle_seed: int = 0


class SourceValues(fields.Dict):
    """`inputs`: node id -> tensor; a tensor over the element limit is TooLarge naming its id."""

    def __init__(self, **kwargs):
        super().__init__(keys=fields.String(), values=Tensor(), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> dict:
        if isinstance(value, dict):
            if set(map(type, value)) <= {str}:
                # Many scalar inputs: decoded as one column, as Tensor would one by one.
                numbers = self.value_field.load_numbers(list(value.values()))
                if numbers is not None:
                    return dict(zip(value, numbers, strict=True))
            for key, item in value.items():
                check_nominal(item, key if type(key) is str else None)
        return super()._deserialize(value, attr, data, **kwargs)


class BatchValues(SourceValues):
    """`batch`: input id -> tensor whose leading axis holds the points, the same length B >= 1
    for every one; a tensor counts B times a point's elements against the element limit.
    It names one input at least (its validator, so that the OpenAPI document says so too)."""

    def __init__(self, **kwargs):
        super().__init__(
            validate=validate.Length(min=1, error="a batch names one or more inputs"), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> dict:
        values = super()._deserialize(value, attr, data, **kwargs)
        errors = {}
        for key, array in values.items():
            if array.ndim == 0:
                errors[key] = [f"'{key}' needs a leading batch axis: one entry per point"]
            elif array.shape[0] < 1:
                errors[key] = [f"'{key}' holds no points; a batch needs at least one"]
        if errors:
            raise ValidationError(errors)
        lengths = {key: array.shape[0] for key, array in values.items()}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"'{key}' {n}" for key, n in lengths.items())
            first = next(iter(lengths.values()))
            raise ValidationError({
                key: [f"every batch array needs the same leading length B; got {listed}"]
                for key, n in lengths.items() if n != first
            })
        return values


def _seed() -> Tensor:
    return Tensor(metadata={"description": "dL/d(output), the output's shape (default: ones)"})


def _wrt(description: str = "the node ids to report (default: every node)") -> fields.List:
    return StringList(metadata={"description": description})


class GraphRequestSchema(StrictSchema):
    """What every kind takes: the graph and the values of its inputs."""

    graph = fields.Nested(GraphSchema, required=True)
    inputs = SourceValues(
        load_default=dict,
        metadata={"description": "values for input nodes, over their own value"},
    )
    allow_nonfinite = StrictBoolean(load_default=False)


class ResultRequestSchema(GraphRequestSchema):
    """A kind whose JSON result is cached under its hash."""

    encoding = fields.String(
        load_default=DEFAULT_ENCODING,
        validate=validate.OneOf(ENCODINGS),
        metadata={"description": "how the response writes tensors: nested lists or b64 objects"},
    )
    cache = StrictBoolean(
        load_default=True,
        metadata={"description": "false computes afresh, neither reading nor writing the cache"},
    )


def _batch() -> BatchValues:
    return BatchValues(metadata={
        "description": "input id -> values at B points (leading axis B, the same for every "
        "one); an input is batched or in inputs, not both. Batched nodes answer with a leading "
        "B axis; axis attrs refer to one point's shape"})


class BatchedRequestSchema(ResultRequestSchema):
    """A kind that takes a batch (CONTRACT section 5)."""

    batch = _batch()

    @validates_schema
    def _batched_or_shared(self, data: dict, **kwargs) -> None:
        both = sorted(set(data.get("batch", {})) & set(data.get("inputs", {})))
        if both:
            raise ValidationError(
                {name: [f"input '{name}' is both in batch and in inputs; it is batched or "
                        "shared, not both"] for name in both}, "batch")


class EvaluateRequestSchema(BatchedRequestSchema):
    wrt = _wrt()


class GradientsRequestSchema(EvaluateRequestSchema):
    seed = Tensor(metadata={"description": "dL/d(output), the output's shape (default: ones); "
                            "with a batch, one point's output shape or that with the leading B"})
    reduce = fields.String(
        load_default=DEFAULT_REDUCE, validate=validate.OneOf(REDUCES),
        metadata={"description": "with a batch: none keeps every gradient per point (shared "
                  "nodes' gain the B axis); sum / mean give shared nodes one gradient of the "
                  "sum / mean over points (batched nodes' per point, / B for mean)"},
    )


class JacobianRequestSchema(BatchedRequestSchema):
    """POST /v1/jacobian: the full Jacobian of the output with respect to each `wrt` node."""

    wrt = StringList(
        required=True, validate=validate.Length(min=1),
        metadata={"description": "the input or gate ids to differentiate by"},
    )


class GradcheckRequestSchema(ResultRequestSchema):
    """The /v1/gradients request plus `eps` and `check` (the contract's "same request").

    `wrt` is accepted as on /v1/gradients but chooses nothing here: `check` picks the inputs.
    """

    wrt = _wrt()
    seed = _seed()
    eps = JsonNumber(load_default=DEFAULT_EPS, validate=validate.Range(min=0, min_inclusive=False))
    check = StringList(metadata={"description": "input ids to check (default: every input node)"})


class DiagramRequestSchema(ResultRequestSchema):
    """The /v1/gradients request plus `format` (the contract's "same request").

    `encoding` and `cache` are accepted as on /v1/gradients but change nothing: the answer is
    an image, rendered afresh each time. So does `wrt`: every wire is drawn with its own share
    of the gradient, which needs every node's.
    """

    seed = _seed()
    wrt = _wrt("accepted as on /v1/gradients (the ids must be nodes) but the diagram draws "
               "every wire, each with the gradient flowing back along it")
    format = fields.String(load_default=DEFAULT_FORMAT, validate=validate.OneOf(DIAGRAM_FORMATS))


class OptimizeRequestSchema(BatchedRequestSchema):
    """POST /v1/optimize (CONTRACT section 6): the loop of `steps` updates of `params`; with
    a `batch`, each step's value is the mean over the points (or a mini-batch of them)."""

    params = StringList(
        required=True, validate=validate.Length(min=1),
        metadata={"description": "the input ids to update"},
    )
    goal = fields.String(load_default="minimize", validate=validate.OneOf(GOALS))
    optimizer = fields.Nested(OptimizerSchema, required=True)
    lr_schedule = fields.Nested(LrScheduleSchema)
    steps = count(1, required=True, metadata={"description": "1..MAX_OPTIMIZE_STEPS"})
    stop = fields.Nested(StopSchema)
    record_every = count(1, load_default=1, metadata={
        "description": "keep a trajectory entry every this many steps (and the last)"})
    batch_size = count(1, metadata={
        "description": "with a batch: each step uses this many points, drawn by a shuffle"})
    shuffle_seed = count(0, metadata={"description": "the mini-batch shuffle's seed (default 0)"})

    @validates_schema
    def _batch_size_needs_a_batch(self, data: dict, **kwargs) -> None:
        if "batch_size" in data and "batch" not in data:
            raise ValidationError("batch_size draws mini-batches from a batch; send one",
                                  "batch_size")

    @post_load
    def _canonical(self, data: dict, **kwargs) -> dict:
        if "batch_size" not in data:  # no shuffle: its seed cannot change the result
            data.pop("shuffle_seed", None)
        return data


REQUEST_SCHEMAS: dict[str, Schema] = {
    "gradients": GradientsRequestSchema(),
    "evaluate": EvaluateRequestSchema(),
    "gradcheck": GradcheckRequestSchema(),
    "diagram": DiagramRequestSchema(),
    "jacobian": JacobianRequestSchema(),
    "optimize": OptimizeRequestSchema(),
}


# The requests against a registered graph: each kind's fields but `graph`.
REGISTERED_SCHEMAS: dict[str, Schema] = {
    kind: type(schema)(exclude=("graph",)) for kind, schema in REQUEST_SCHEMAS.items()
}


def load_request(
    kind: str, data: object, *, max_elements: int | None = None, graph: Graph | None = None
) -> Request:
    """Validate a parsed body of endpoint `kind` and decode it into a Request.

    With `graph` (a registered graph, already loaded and checked), the body is the kind's
    request without `graph`. Raises marshmallow.ValidationError for field errors, TooLarge for
    a tensor over `max_elements`, and UnknownOp (naming the node) for an op missing from the
    catalog.
    """
    schemas = REQUEST_SCHEMAS if graph is None else REGISTERED_SCHEMAS
    schema = schemas.get(kind)
    if schema is None:
        raise ValueError(f"unknown request kind {kind!r}; expected one of {REQUEST_KINDS}")
    # Loading a big graph allocates many acyclic objects; the collector's scans would cost
    # about as much as the loading.
    try:
        with element_limit(max_elements), gc_paused():
            loaded = schema.load(data)
    except ValidationError as error:
        error.kwargs["node"] = faulty_node(error.messages, data)
        raise
    if graph is None:
        check_ops(loaded["graph"])
    else:
        loaded["graph"] = graph
    return Request(**loaded)


__all__ = [
    "DIAGRAM_FORMATS",
    "ENCODINGS",
    "JsonNumber",
    "StrictBoolean",
    "StrictSchema",
    "REQUEST_KINDS",
    "REGISTERED_SCHEMAS",
    "REQUEST_SCHEMAS",
    "BatchValues",
    "Request",
    "load_request",
]
