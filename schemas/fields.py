"""Field types the request schemas share: strict JSON booleans and numbers, strict schemas."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class StrictBoolean(fields.Boolean):
    """true or false only (marshmallow's Boolean also reads 1, "yes", "on"...)."""

    def _deserialize(self, value, attr, data, **kwargs) -> bool:
        if type(value) is not bool:
            raise self.make_error("invalid", input=value)
        return value


class JsonNumber(fields.Float):
    """A finite JSON number (marshmallow's Float also reads numeric strings)."""

    def _validated(self, value) -> float:
        if type(value) not in (int, float):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)
