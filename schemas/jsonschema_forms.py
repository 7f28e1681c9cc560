"""JSON Schema forms that the marshmallow fields cannot state themselves, for the OpenAPI document.

The wire forms of a tensor (a number, a nested list, an encoded object, a non-finite spelling)
and of a batched one (a leading axis), exclusive bounds (apispec drops a Range's
min_inclusive=False), the number of keys of an object (apispec writes a Length on a Dict as a
string's minLength), and the rule on a node's `value` (const needs one, gates take none), so
that the document says what the server enforces.

Enums that several fields share (the non-finite spellings, `encoding`, `reduce`, `format`)
and a request's `inputs` and `batch` are components of their own, referenced where used: a
client generated from the document then has one type for each, the same for an inline
request and a registered one.
"""

from __future__ import annotations

from marshmallow import fields, validate

from engine import OP_TABLE, REDUCES
from schemas.jsontext import NONFINITE_SPELLINGS
from schemas.requests import DIAGRAM_FORMATS, ENCODINGS, BatchValues, SourceValues
from schemas.responses import WireFloat
from schemas.tensors import MAX_NDIM, WIRE_DTYPES, Tensor

_NONFINITE = {"$ref": "#/components/schemas/NonFiniteNumber"}

# Field choices that are a component: the choices, as the field's OneOf lists them, -> name.
_NAMED_CHOICES = {
    tuple(ENCODINGS): "Encoding",
    tuple(REDUCES): "Reduce",
    tuple(DIAGRAM_FORMATS): "DiagramFormat",
}

ENUM_COMPONENTS = {
    "NonFiniteNumber": {
        "type": "string",
        "description": "A number JSON cannot write, spelled as a string.",
        "enum": list(NONFINITE_SPELLINGS),
        # generators name enum members after these, where "-Infinity" has no name of its own
        "x-enum-varnames": ["NAN", "INFINITY", "NEGATIVE_INFINITY"],
    },
    **{name: {"type": "string", "enum": list(choices)}
       for choices, name in _NAMED_CHOICES.items()},
}

TENSOR_COMPONENTS = {
    "NestedNumbers": {
        "type": "array",
        "description": "A rectangular nested list of numbers, nested to any depth (ragged "
        "lists are refused). Its items are all numbers (or non-finite spellings), or all lists "
        "of the same length and kind; this schema says the first two levels of that (not "
        "written as a recursive schema: some OpenAPI tools cannot follow one), the server "
        "checks the rest.",
        "anyOf": [
            {"items": {"oneOf": [{"type": "number"}, _NONFINITE]}},
            {"items": {"type": "array", "anyOf": [
                {"items": {"oneOf": [{"type": "number"}, _NONFINITE]}},
                {"items": {"type": "array"}},
            ]}},
        ],
    },
    "EncodedTensor": {
        "type": "object",
        "description": "Raw little-endian C-order bytes; their count must equal dtype size "
        "x the product of shape.",
        "properties": {
            "dtype": {"type": "string", "enum": list(WIRE_DTYPES)},
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "maxItems": MAX_NDIM,
            },
            "b64": {"type": "string", "format": "byte"},
        },
        "required": ["dtype", "shape", "b64"],
        "additionalProperties": False,
    },
    "Tensor": {
        "description": "A tensor: a number (0-d), a rectangular nested list, or an encoded "
        "object. Non-finite numbers are the strings "
        + ", ".join(f'"{spelling}"' for spelling in NONFINITE_SPELLINGS)
        + "; inputs holding them need allow_nonfinite.",
        "oneOf": [
            {"type": "number"},
            _NONFINITE,
            {"$ref": "#/components/schemas/NestedNumbers"},
            {"$ref": "#/components/schemas/EncodedTensor"},
        ],
    },
    "Inputs": {
        "type": "object",
        "description": "input node id -> its value",
        "additionalProperties": {"$ref": "#/components/schemas/Tensor"},
    },
    "Batch": {
        "type": "object",
        "description": "input node id -> its values at B points",
        "additionalProperties": {"$ref": "#/components/schemas/BatchTensor"},
    },
    "BatchTensor": {
        "description": "A batch's tensor: a nested list or an encoded object whose leading "
        "axis holds the points, one at least (B >= 1, the same B for every batched input).",
        "oneOf": [
            {"allOf": [{"$ref": "#/components/schemas/NestedNumbers"}], "minItems": 1},
            {"allOf": [{"$ref": "#/components/schemas/EncodedTensor"}],
             "properties": {"shape": {"minItems": 1}}},
        ],
    },
}


def tensor_properties(self, field: fields.Field, ret: dict, **kwargs) -> dict:
    """apispec attribute function: tensors and wire floats by their wire forms, a request's
    values and batch by their components."""
    if isinstance(field, SourceValues):
        ret.pop("type", None)
        ret.pop("additionalProperties", None)
        name = "Batch" if isinstance(field, BatchValues) else "Inputs"
        return {"allOf": [{"$ref": f"#/components/schemas/{name}"}]}
    if isinstance(field, Tensor):
        return {"allOf": [{"$ref": "#/components/schemas/Tensor"}]}
    if isinstance(field, WireFloat):
        return {"oneOf": [{"type": "number"}, _NONFINITE]}
    return {}


def named_choices(self, field: fields.Field, ret: dict, **kwargs) -> dict:
    """apispec attribute function: a field whose choices are a named enum refers to its
    component; the inline `type` and `enum` are taken out of `ret`."""
    for validator in field.validators:
        if isinstance(validator, validate.OneOf):
            name = _NAMED_CHOICES.get(tuple(validator.choices))
            if name is not None:
                ret.pop("type", None)
                ret.pop("enum", None)
                return {"allOf": [{"$ref": f"#/components/schemas/{name}"}]}
    return {}


def exclusive_bounds(self, field: fields.Field, **kwargs) -> dict:
    """apispec attribute function: a Range that excludes its bound says so (apispec drops it).

    OpenAPI 3.0 writes an exclusive bound as a boolean beside minimum / maximum.
    """
    bounds: dict = {}
    for validator in field.validators:
        if isinstance(validator, validate.Range):
            if validator.min is not None and not validator.min_inclusive:
                bounds["exclusiveMinimum"] = True
            if validator.max is not None and not validator.max_inclusive:
                bounds["exclusiveMaximum"] = True
    return bounds


def object_sizes(self, field: fields.Field, ret: dict, **kwargs) -> dict:
    """apispec attribute function: a Length on a Dict bounds its keys (minProperties), where
    apispec writes the minLength of a string; the string keywords are taken out of `ret`."""
    if not isinstance(field, fields.Dict):
        return {}
    sizes = {}
    for string_word, object_word in (("minLength", "minProperties"),
                                     ("maxLength", "maxProperties")):
        if string_word in ret:
            sizes[object_word] = ret.pop(string_word)
    return sizes


def node_value_rules() -> list[dict]:
    """What JSON Schema can say of a node's `value`: sources that are not variables (const)
    need one, gates take none."""
    fixed = [op.name for op in OP_TABLE if op.is_source and not op.is_variable]
    sources = [op.name for op in OP_TABLE if op.is_source]
    return [
        {"anyOf": [{"properties": {"op": {"not": {"enum": fixed}}}}, {"required": ["value"]}]},
        {"anyOf": [{"properties": {"op": {"enum": sources}}}, {"not": {"required": ["value"]}}]},
    ]
