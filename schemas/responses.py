"""Response bodies: their marshmallow schemas (for the OpenAPI document) and fast writers.

The writers build plain dicts and let orjson write them, numpy arrays included, so that a
100,000-node result or a 1,000,000-element tensor is written at C speed; the schemas describe
exactly those bodies (the tests load every written body back through them). Every result body
ends in `,"cached":false}` so that `mark_cached` can flip it for a cache hit without
re-encoding: a cached body is byte for byte the fresh one except for that flag.
"""

from __future__ import annotations

import math

import numpy as np
import orjson
from marshmallow import Schema, fields, validate

from engine import GradCheck, JacobianResult, RunResult, gc_paused
from engine.optimize import OptimizeResult
from schemas.graph import GraphSchema
from schemas.jsontext import NONFINITE_SPELLINGS, spell_float
from schemas.requests import DEFAULT_ENCODING
from schemas.tensors import Tensor, tensor_json

CACHED_FALSE_SUFFIX = b',"cached":false}'
HASH_PATTERN = r"^[0-9a-f]{64}$"
VERDICTS = ("good", "ok", "suspect", "wrong")
STOP_REASONS = ("steps", "grad_norm", "value", "deadline", "nonfinite")
# gradcheck writes analytic/numeric only for tensors this small (CONTRACT, /v1/gradcheck).
GRADCHECK_MAX_LISTED_ELEMENTS = 64

_WRITE_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


# ---------------------------------------------------------------- schemas


class WireFloat(fields.Field):
    """A float that may be non-finite, written as a number or "NaN"/"Infinity"/"-Infinity"."""

    default_error_messages = {"invalid": "Not a valid number."}

    def _serialize(self, value, attr, obj, **kwargs) -> float | str | None:
        return None if value is None else spell_float(float(value))

    def _deserialize(self, value, attr, data, **kwargs) -> float:
        if type(value) is str and value in NONFINITE_SPELLINGS:
            return NONFINITE_SPELLINGS[value]
        if type(value) not in (int, float):
            raise self.make_error("invalid", input=value)
        return float(value)


class ResultHash(fields.String):
    """The 64-hex-digit result hash."""

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Regexp(HASH_PATTERN), **kwargs)


class NodeGradientSchema(Schema):
    value = Tensor(required=True)
    grad = Tensor(required=True, metadata={"description": "d(seed . output)/d(node)"})


class NodeValueSchema(Schema):
    value = Tensor(required=True)


class EvaluateResponseSchema(Schema):
    hash = ResultHash(required=True)
    output = fields.String(required=True)
    value = Tensor(required=True, metadata={"description": "the output's value"})
    nodes = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(NodeValueSchema),
        required=True,
        metadata={"description": "the reported nodes, in a topological order (inputs first)"},
    )
    cached = fields.Boolean(required=True)


class GradientsResponseSchema(EvaluateResponseSchema):
    """The /v1/evaluate response with each node's gradient beside its value."""

    nodes = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(NodeGradientSchema),
        required=True,
        metadata={"description": "the reported nodes, in a topological order (inputs first)"},
    )


class JacobianResponseSchema(Schema):
    hash = ResultHash(required=True)
    output = fields.String(required=True)
    value = Tensor(required=True, metadata={"description": "the output's value"})
    jacobian = fields.Dict(
        keys=fields.String(),
        values=Tensor(),
        required=True,
        metadata={"description": "per wrt node (in a topological order): d(output)/d(node), "
                  "of shape output.shape + node.shape, after a leading B with a batch"},
    )
    cached = fields.Boolean(required=True)


class CheckSchema(Schema):
    max_rel_error = WireFloat(
        required=True, metadata={"description": "max of |a - n| / max(|a|, |n|)"}
    )
    verdict = fields.String(required=True, validate=validate.OneOf(VERDICTS))
    analytic = Tensor(
        metadata={"description": f"for tensors of at most {GRADCHECK_MAX_LISTED_ELEMENTS} "
                  "elements"}
    )
    numeric = Tensor(
        metadata={"description": f"for tensors of at most {GRADCHECK_MAX_LISTED_ELEMENTS} "
                  "elements"}
    )
    details = fields.Dict(
        metadata={"description": "why the verdict is poor when the check can tell: `reason` "
                  "and `kinks` (index, left_slope, right_slope, analytic) where the function "
                  "has no derivative (relu or abs at 0, max ties)"}
    )


class GradcheckResponseSchema(Schema):
    hash = ResultHash(required=True)
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(CheckSchema),
        required=True,
        metadata={"description": "per checked input, sorted by id"},
    )
    passed = fields.Boolean(required=True, metadata={"description": "no verdict is wrong"})
    cached = fields.Boolean(required=True)


class GraphSummarySchema(Schema):
    """The answer of POST /v1/graphs (CONTRACT section 7)."""

    id = ResultHash(
        required=True,
        metadata={"description": "SHA-256 of the canonical graph: its structure and values"},
    )
    nodes = fields.Integer(required=True, metadata={"description": "how many nodes it has"})
    inputs = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Integer(), allow_none=True),
        required=True,
        metadata={"description": "each input node's default shape, or null without a default"},
    )
    output = fields.String(required=True)


class GraphResourceSchema(GraphSummarySchema):
    """The answer of GET /v1/graphs/{id}: the summary and the canonical graph."""

    graph = fields.Nested(
        GraphSchema,
        required=True,
        metadata={"description": "nodes sorted by id, every attr spelled out; posting it "
                  "back registers the same id"},
    )


class TrajectoryEntrySchema(Schema):
    step = fields.Integer(required=True, metadata={"description": "updates done"})
    value = WireFloat(required=True, metadata={"description": "the output after `step` updates"})
    grad_norm = WireFloat(
        required=True, metadata={"description": "L2 norm of d(output)/d(params) there"}
    )


class OptimizeResponseSchema(Schema):
    hash = ResultHash(required=True)
    params = fields.Dict(
        keys=fields.String(), values=Tensor(), required=True,
        metadata={"description": "the params' final values, in request order"},
    )
    value = Tensor(required=True, metadata={"description": "the output at the final params"})
    steps = fields.Integer(required=True, metadata={"description": "updates done"})
    stopped = fields.String(
        required=True, validate=validate.OneOf(STOP_REASONS),
        metadata={"description": "why the run ended; a \"deadline\" answer is not cached"},
    )
    trajectory = fields.List(fields.Nested(TrajectoryEntrySchema), required=True)
    cached = fields.Boolean(required=True)


class ErrorDetailSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    node = fields.String(required=True, allow_none=True)
    details = fields.Dict(
        required=True,
        allow_none=True,
        metadata={"description": "what the code adds, else null: for validation_error the "
                  "field errors, shaped like the request; `cycle` (every node of it) for cycle, "
                  "`missing` (every input lacking a value) for missing_input, `limit` and "
                  "`retry_after_seconds` for rate_limited, `cache` (the backend) for not_ready"},
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)


# ---------------------------------------------------------------- writers


def dump_result(result: RunResult, *, hash: str, encoding: str) -> bytes:
    """The /v1/gradients body: output value, then every reported node's value and grad."""
    with gc_paused():  # one small dict per node: the collector's scans would double the cost
        values = _wire_list(result.value_list, encoding)
        grads = _wire_list(result.grad_list, encoding)
        nodes = {
            name: {"value": value, "grad": grad}
            for name, value, grad in zip(result.order, values, grads, strict=True)
        }
        return _result_body(
            {"hash": hash, "output": result.output, "value": _wire(result.value, encoding),
             "nodes": nodes}
        )


def dump_evaluate(result: RunResult, *, hash: str, encoding: str) -> bytes:
    """The /v1/evaluate body: as /v1/gradients, each node with its value alone."""
    with gc_paused():
        values = _wire_list(result.value_list, encoding)
        nodes = {name: {"value": value} for name, value in zip(result.order, values, strict=True)}
        return _result_body(
            {"hash": hash, "output": result.output, "value": _wire(result.value, encoding),
             "nodes": nodes}
        )


def dump_jacobian(result: JacobianResult, *, hash: str, encoding: str) -> bytes:
    """The /v1/jacobian body: the output's value and each requested node's Jacobian."""
    jacobians = {name: _wire(j, encoding) for name, j in result.jacobians.items()}
    return _result_body(
        {"hash": hash, "output": result.output, "value": _wire(result.value, encoding),
         "jacobian": jacobians}
    )


def dump_gradcheck(
    checks: dict[str, GradCheck], *, hash: str, encoding: str = DEFAULT_ENCODING
) -> bytes:
    """The /v1/gradcheck body, checks sorted by input id; `analytic` and `numeric` are written
    in `encoding`, as /v1/gradients writes values and grads (0-d ones as numbers)."""
    body = {}
    for name in sorted(checks):
        check = checks[name]
        entry: dict[str, object] = {
            "max_rel_error": spell_float(float(check.max_rel_error)),
            "verdict": check.verdict,
        }
        if np.size(check.analytic) <= GRADCHECK_MAX_LISTED_ELEMENTS:
            entry["analytic"] = tensor_json(check.analytic, encoding)
            entry["numeric"] = tensor_json(check.numeric, encoding)
        if check.details is not None:
            entry["details"] = check.details
        body[name] = entry
    passed = all(check.verdict != "wrong" for check in checks.values())
    return _result_body({"hash": hash, "checks": body, "passed": passed})


def dump_optimize(result: OptimizeResult, *, hash: str, encoding: str) -> bytes:
    """The /v1/optimize body: final params and value, why the run ended, the trajectory."""
    return _result_body({
        "hash": hash,
        "params": {name: _wire(value, encoding) for name, value in result.params.items()},
        "value": _wire(result.value, encoding),
        "steps": result.steps,
        "stopped": result.stopped,
        "trajectory": [trajectory_entry(entry) for entry in result.trajectory],
    })


def trajectory_entry(entry: dict) -> dict:
    """A trajectory entry as the wire writes it (non-finite numbers spelled)."""
    return {"step": entry["step"], "value": spell_float(entry["value"]),
            "grad_norm": spell_float(entry["grad_norm"])}


def mark_cached(body: bytes) -> bytes:
    """A fresh result body as a cache hit returns it: `"cached":true`, nothing re-encoded."""
    if not body.endswith(CACHED_FALSE_SUFFIX):
        raise ValueError("not a result body: it does not end in ',\"cached\":false}'")
    return body[: -len(b"false}")] + b"true}"


def error_body(
    code: str, message: str, node: str | None = None, details: dict | None = None
) -> bytes:
    """The contract's error body; `details` may hold marshmallow messages (integer keys too)."""
    return orjson.dumps(
        {"error": {"code": code, "message": message, "node": node, "details": details}},
        option=orjson.OPT_NON_STR_KEYS,
        default=str,
    )


def _wire(value, encoding: str):
    if type(value) is float and value - value == 0.0:
        return value
    return tensor_json(value, encoding)


def _wire_list(values: list, encoding: str) -> list:
    """Every value as the wire writes it; for all-float lists (scalar graphs) only the
    non-finite ones are touched."""
    if not set(map(type, values)) <= {float}:
        return [_wire(value, encoding) for value in values]
    # math.isfinite over the floats themselves: quicker than an array of them, at any length
    if all(map(math.isfinite, values)):
        return values
    return [value if math.isfinite(value) else spell_float(value) for value in values]


def _result_body(body: dict) -> bytes:
    body["cached"] = False
    return orjson.dumps(body, option=_WRITE_OPTIONS)

