"""What GET /v1/ops, the probes and the package version answer, as schemas for the OpenAPI
document (the op catalog's content comes from the engine's table)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from marshmallow import INCLUDE, Schema, fields


def package_version() -> str:
    """The installed chainrule distribution's version: the document's, the CLI's, /metrics'."""
    try:
        return version("chainrule")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


class OpAttrSchema(Schema):
    name = fields.String(required=True)
    type = fields.String(required=True)
    default = fields.Raw(required=True, allow_none=True)
    required = fields.Boolean(required=True)


class OpSchema(Schema):
    name = fields.String(required=True)
    arity = fields.String(required=True, metadata={"example": ">= 2"})
    min_inputs = fields.Integer(required=True)
    max_inputs = fields.Integer(required=True, allow_none=True)
    attrs = fields.List(fields.Nested(OpAttrSchema), required=True)
    symbol = fields.String(required=True)
    description = fields.String(required=True)


class OpsResponseSchema(Schema):
    ops = fields.List(fields.Nested(OpSchema), required=True)


class HealthSchema(Schema):
    class Meta:
        unknown = INCLUDE  # the service may add facts (cache backend, version)

    status = fields.String(required=True, metadata={"example": "ok"})
    cache = fields.String(metadata={"description": "/readyz: the result cache's backend"})
