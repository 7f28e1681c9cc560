"""Request schemas (CONTRACT sections 2 and 3) and `load_request`: wire JSON to engine objects.

Field errors come back as marshmallow's `ValidationError.messages` (the service answers 422
`validation_error` with them as `details`). The schemas check the wire shape, including the
contract's rule on `value` (required on const, refused on gates), and op names against the
engine's catalog (`unknown_op`, naming the node); arity, attrs, references, cycles, shapes and
non-finite values are left to the engine, which names the node too. Each kind takes only the
fields that mean something for it: the rest are unknown fields. Optional fields take their
default when absent (the Request dataclass's default where the schema gives none); null is
never a value.

A registered graph (CONTRACT section 7) is loaded once by `load_graph` (`{"graph": ...}`, the
body of POST /v1/graphs); the requests against it are each kind's schema without `graph`
(`REGISTERED_SCHEMAS`, derived from REQUEST_SCHEMAS), loaded by `load_request(..., graph=)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_not, not_

import numpy as np
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from engine import (
    GATE_TAKES_NO_VALUE,
    OPS,
    REDUCES,
    Graph,
    Node,
    NodeTable,
    UnknownOp,
    gc_paused,
    node_table,
)
from schemas.fields import JsonNumber, StrictBoolean, StrictSchema
from schemas.objectlist import ObjectList, TupleList
from schemas.optimize import GOALS, LrScheduleSchema, OptimizerSchema, StopSchema, count
from schemas.tensors import Tensor, check_size, element_limit, nominal_size

REQUEST_KINDS = ("gradients", "evaluate", "gradcheck", "diagram", "jacobian", "optimize")
ENCODINGS = ("json", "b64")
DIAGRAM_FORMATS = ("svg", "dot", "png")
DEFAULT_ENCODING = "json"
DEFAULT_EPS = 1e-5
DEFAULT_FORMAT = "svg"
DEFAULT_REDUCE = "none"
MAX_ID_LENGTH = 128
# Ops that compute their value, so take none on the wire (unknown ops are left to unknown_op).
GATE_OPS = frozenset(name for name, op in OPS.items() if not op.is_source)
CONST_NEEDS_VALUE = "a const node needs a value"


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
                check_size(nominal_size(item), key if type(key) is str else None)
        return super()._deserialize(value, attr, data, **kwargs)


class BatchValues(SourceValues):
    """`batch`: input id -> tensor whose leading axis holds the points, the same length B >= 1
    for every one; a tensor counts B times a point's elements against the element limit."""

    def _deserialize(self, value, attr, data, **kwargs) -> dict:
        values = super()._deserialize(value, attr, data, **kwargs)
        if not values:
            raise ValidationError("a batch names one or more inputs")
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


class NodeSchema(StrictSchema):
    """A node; its fields are the engine Node's parameters, loaded into one by
    `node_from_fields`."""

    id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_ID_LENGTH),
        metadata={"description": "unique in the graph"},
    )
    op = fields.String(
        required=True,
        metadata={"enum": list(OPS), "description": "a name from GET /v1/ops"},
    )
    inputs = TupleList(
        fields.String(),
        load_default=tuple,
        metadata={"description": "ids of other nodes, in argument order"},
    )
    attrs = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        metadata={"description": "the op's attributes (GET /v1/ops)"},
    )
    value = Tensor(
        metadata={"description": "an input's default value, or a const's value (required on "
                  "const; other ops take none)"},
    )

    @post_load
    def _node(self, data: dict, **kwargs) -> Node:
        return node_from_fields(**data)


def node_from_fields(
    id: str, op: str, inputs: tuple[str, ...], attrs: dict, value: np.ndarray | None = None
) -> Node:
    """The engine Node of a node object's loaded fields.

    Raises a ValidationError on the `value` field when the value breaks the contract's rule:
    a const needs one, a gate takes none.
    """
    if value is None:
        if op == "const":
            raise ValidationError(CONST_NEEDS_VALUE, "value")
    elif op in GATE_OPS:
        raise ValidationError(GATE_TAKES_NO_VALUE, "value")
    return Node(id, op, inputs, attrs, value)


def node_table_from_fields(
    id: list[str], op: list[str], inputs: list[tuple[str, ...]], attrs: list[dict],
    value: list[np.ndarray | None],
) -> NodeTable:
    """The NodeTable of the loaded field columns of many node objects: `node_from_fields`
    over whole columns. Raises a ValidationError when some node breaks the rule on `value`
    (the loader then finds which, node by node)."""
    has_value = list(map(is_not, value, repeat(None)))
    valued_ops = set(compress(op, has_value))
    if not GATE_OPS.isdisjoint(valued_ops):
        raise ValidationError(GATE_TAKES_NO_VALUE, "value")
    if "const" in op and "const" in set(compress(op, map(not_, has_value))):
        raise ValidationError(CONST_NEEDS_VALUE, "value")
    return NodeTable(id, op, inputs, attrs, value)


class GraphSchema(StrictSchema):
    nodes = ObjectList(NodeSchema, node_from_fields, node_table_from_fields, required=True)
    output = fields.String(required=True, metadata={"description": "the node backward starts from"})

    @post_load
    def _graph(self, data: dict, **kwargs) -> Graph:
        nodes = data["nodes"]
        return Graph(nodes if type(nodes) is NodeTable else tuple(nodes), data["output"])


def _seed() -> Tensor:
    return Tensor(metadata={"description": "dL/d(output), the output's shape (default: ones)"})


def _wrt() -> fields.List:
    return fields.List(
        fields.String(),
        metadata={"description": "the node ids to report (default: every node)"},
    )


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

    wrt = fields.List(
        fields.String(), required=True, validate=validate.Length(min=1),
        metadata={"description": "the input or gate ids to differentiate by"},
    )


class GradcheckRequestSchema(ResultRequestSchema):
    """The /v1/gradients request plus `eps` and `check` (the contract's "same request").

    `wrt` is accepted as on /v1/gradients but chooses nothing here: `check` picks the inputs.
    """

    wrt = _wrt()
    seed = _seed()
    eps = JsonNumber(load_default=DEFAULT_EPS, validate=validate.Range(min=0, min_inclusive=False))
    check = fields.List(
        fields.String(),
        metadata={"description": "input ids to check (default: every input node)"},
    )


class DiagramRequestSchema(ResultRequestSchema):
    """The /v1/gradients request plus `format` (the contract's "same request").

    `encoding` and `cache` are accepted as on /v1/gradients but change nothing: the answer is
    an image, rendered afresh each time.
    """

    seed = _seed()
    wrt = _wrt()
    format = fields.String(load_default=DEFAULT_FORMAT, validate=validate.OneOf(DIAGRAM_FORMATS))


class OptimizeRequestSchema(BatchedRequestSchema):
    """POST /v1/optimize (CONTRACT section 6): the loop of `steps` updates of `params`; with
    a `batch`, each step's value is the mean over the points (or a mini-batch of them)."""

    params = fields.List(
        fields.String(), required=True, validate=validate.Length(min=1),
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


class RegisterGraphSchema(StrictSchema):
    """The body of POST /v1/graphs."""

    graph = fields.Nested(GraphSchema, required=True)


REGISTER_GRAPH_SCHEMA = RegisterGraphSchema()


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
    with element_limit(max_elements), gc_paused():
        loaded = schema.load(data)
    if graph is None:
        _check_ops(loaded["graph"])
    else:
        loaded["graph"] = graph
    return Request(**loaded)


def load_graph(data: object, *, max_elements: int | None = None) -> Graph:
    """The graph of a POST /v1/graphs body (`{"graph": {...}}`), checked as `load_request`
    checks an inline one."""
    with element_limit(max_elements), gc_paused():
        graph = REGISTER_GRAPH_SCHEMA.load(data)["graph"]
    _check_ops(graph)
    return graph


def _check_ops(graph: Graph) -> None:
    table = node_table(graph.nodes)
    unknown = set(table.ops) - OPS.keys()
    if unknown:
        node = table.node(next(i for i, op in enumerate(table.ops) if op in unknown))
        raise UnknownOp(f"unknown op '{node.op}'; GET /v1/ops lists the ops", node.id)


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
    "GraphSchema",
    "NodeSchema",
    "Request",
    "load_graph",
    "load_request",
    "node_from_fields",
    "node_table_from_fields",
]
