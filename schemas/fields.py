"""Field types the request schemas share: strict JSON booleans and numbers, strict schemas."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, missing


class StrictSchema(Schema):
    """A schema that refuses unknown fields, and loads a well-formed object field by field
    without marshmallow's per-field bookkeeping (closures, error store, dotted attributes).

    The short way is taken for one object with only known keys; it calls each field's own
    `deserialize` in the schema's order, so values and exceptions are the schema's. At the
    first ValidationError the object is loaded again by marshmallow itself, which collects
    and words every error. Schema-level validators and post_load hooks run as usual.
    """

    class Meta:
        unknown = RAISE

    def _deserialize(self, data, *, error_store, many=False, partial=None, unknown=RAISE,
                     index=None):
        columns = self._columns()
        if (many or partial is not None or unknown != RAISE or type(data) is not dict
                or columns is None or not columns[0].issuperset(data)):
            return super()._deserialize(data, error_store=error_store, many=many,
                                        partial=partial, unknown=unknown, index=index)
        loaded = self.dict_class()
        try:
            for key, name, field, default in columns[1]:
                value = data.get(key, missing)
                if value is missing and default is not None:
                    value = default()  # the field's load_default, as its deserialize gives it
                else:
                    value = field.deserialize(value, key, data)
                if value is not missing:
                    loaded[name] = value
        except ValidationError:
            return super()._deserialize(data, error_store=error_store, many=many,
                                        partial=partial, unknown=unknown, index=index)
        return loaded

    def _columns(self) -> tuple[frozenset[str], list[tuple]] | None:
        """(the data keys, per field: data key, loaded name, field, what an absent value
        loads to) for the short way, worked out once; None if some field needs marshmallow's
        own handling (a dotted attribute)."""
        try:
            return self.__dict__["_strict_columns"]
        except KeyError:
            pass
        columns = []
        for name, field in self.load_fields.items():
            key = field.data_key if field.data_key is not None else name
            target = field.attribute or name
            if "." in target:
                columns = None
                break
            columns.append((key, target, field, _absent_loader(field)))
        plan = None if columns is None else (frozenset(c[0] for c in columns), columns)
        self.__dict__["_strict_columns"] = plan
        return plan


def _absent_loader(field: fields.Field):
    """What loads an absent value of `field` without calling it (None: call its deserialize,
    which refuses a required field or applies its pre_load hooks)."""
    if field.required or type(field).deserialize is not fields.Field.deserialize:
        return None
    default = field.load_default
    return default if callable(default) else lambda: default


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


class StringList(fields.List):
    """A List of String that loads a list of plain strings whole: marshmallow reads a list
    item by item, a few microseconds each (a `wrt` naming 2,000 inputs took longer than the
    3,000-node graph around it). Anything else (bytes, null, other types) goes through List
    itself, so values and errors are marshmallow's."""

    def __init__(self, **kwargs):
        super().__init__(fields.String(), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> list:
        # String loads a str as itself (validators of the list run after, as ever)
        if type(value) is list and set(map(type, value)) <= {str}:
            return list(value)
        return super()._deserialize(value, attr, data, **kwargs)
