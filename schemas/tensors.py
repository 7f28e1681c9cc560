"""Tensors on the wire (CONTRACT section 1): decoded to float64 arrays, and written back.

A tensor is a JSON number, a rectangular nested list of numbers, or an encoded object
`{"dtype": "float64" | "float32", "shape": [..], "b64": "<little-endian C-order bytes>"}`.
Decoding stays at C speed for big tensors: numpy converts the nested list, and one pass of
`set(map(type, ...))` over the leaves catches what numpy would silently accept (booleans as
1.0, null as NaN, numeric strings). Sizes are checked against the element limit before any
float64 array is allocated, and an encoded object's byte count before its base64 is decoded.

Non-finite values are decoded, not refused: the engine's `bind_sources` refuses them (naming
the node) unless the request allows them, so that rule lives in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import chain

import numpy as np
from marshmallow import ValidationError, fields
from pybase64 import b64decode, b64encode_as_string

from engine import TooLarge
from engine.numpy_limits import MAX_NDIM, check_shape
from schemas.jsontext import INFINITY, NAN, NEG_INFINITY, NONFINITE_SPELLINGS, spell_float

WIRE_DTYPES: dict[str, np.dtype] = {"float64": np.dtype("<f8"), "float32": np.dtype("<f4")}
ENCODED_KEYS = frozenset({"dtype", "shape", "b64"})

_NUMBER_TYPES = frozenset({float, int})
_FLOAT64_MAX = np.finfo(np.float64).max
_element_limit: ContextVar[int | None] = ContextVar("element_limit", default=None)


@contextmanager
def element_limit(max_elements: int | None) -> Iterator[None]:
    """Tensor fields loaded inside this block refuse more than `max_elements` (TooLarge)."""
    token = _element_limit.set(max_elements)
    try:
        yield
    finally:
        _element_limit.reset(token)


# ---------------------------------------------------------------- decoding


def decode_tensor(value: object, node: str | None = None) -> np.ndarray:
    """One wire tensor as a float64 array (0-d for a number); ValidationError if malformed.

    Raises TooLarge (naming `node`) when it holds more elements than the current limit.
    """
    kind = type(value)
    if kind is float or kind is int:
        return np.array(_number(value), dtype=np.float64)
    if kind is list:
        return _decode_nested(value, node)
    if kind is dict:
        return _decode_encoded(value, node)
    if kind is str and value in NONFINITE_SPELLINGS:
        return np.array(NONFINITE_SPELLINGS[value], dtype=np.float64)
    raise ValidationError(f"{_describe(value)} is not a tensor: {_TENSOR_FORMS}")


_TENSOR_FORMS = (
    "expected a number, a rectangular nested list of numbers, or "
    '{"dtype", "shape", "b64"}'
)


def nominal_size(value: object) -> int:
    """Elements a wire tensor claims to hold, read without converting it (1 if it does not say)."""
    return math.prod(nominal_shape(value))


def nominal_shape(value: object) -> list[int]:
    """The shape a wire tensor claims, read without converting it ([] if it does not say)."""
    if type(value) is list:
        return _nominal_shape(value)
    if type(value) is dict and _is_shape(value.get("shape")):
        return value["shape"]
    return []


def check_nominal(value: object, node: str | None) -> None:
    """Raise TooLarge, naming `node`, for a wire tensor numpy or the element limit refuses."""
    shape = nominal_shape(value)
    check_shape(shape, node)
    check_size(math.prod(shape), node)


def check_size(size: int, node: str | None) -> None:
    """Raise TooLarge when `size` elements pass the current element limit."""
    limit = _element_limit.get()
    if limit is not None and size > limit:
        where = f"the value of '{node}'" if node is not None else "a tensor"
        raise TooLarge(f"{where} holds {size} elements; the limit is {limit}", node)


def _number(value: float | int) -> float:
    try:
        return float(value)
    except OverflowError:
        # An integer literal past float64's range is the same number as 1e309: infinite.
        return math.copysign(math.inf, value)


def _nominal_shape(value: list) -> list[int]:
    """The shape implied by the first element at each depth (exact for rectangular lists)."""
    shape = []
    while type(value) is list:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _decode_nested(value: list, node: str | None) -> np.ndarray:
    check_size(math.prod(_nominal_shape(value)), node)
    try:
        array = np.array(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise ValidationError(_nested_fault(value)) from None
    leaves = value
    for _ in range(array.ndim - 1):
        leaves = chain.from_iterable(leaves)
    leaf_types = set(map(type, leaves))
    if not leaf_types <= _NUMBER_TYPES:
        if leaf_types <= _NUMBER_TYPES | {str} and _only_nonfinite_spellings(value, array.ndim):
            return array
        raise ValidationError(_nested_fault(value))
    return array


def _only_nonfinite_spellings(value: list, ndim: int) -> bool:
    leaves = value
    for _ in range(ndim - 1):
        leaves = chain.from_iterable(leaves)
    return all(leaf in NONFINITE_SPELLINGS for leaf in leaves if type(leaf) is str)


def _nested_fault(value: list) -> str:
    """Say what is wrong with a nested list numpy refused or our leaf check caught."""
    shape = _nominal_shape(value)
    stack: list[tuple[object, tuple[int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        depth = len(path)
        where = "".join(f"[{i}]" for i in path) or "the tensor"
        if type(item) is list:
            if depth >= len(shape) or len(item) != shape[depth]:
                return f"ragged nested list: {where} does not match the shape {shape}"
            stack.extend((child, (*path, i)) for i, child in reversed(list(enumerate(item))))
            continue
        if depth != len(shape):
            return f"ragged nested list: {where} is a number where the shape {shape} has a list"
        if type(item) is str and item in NONFINITE_SPELLINGS:
            continue
        if type(item) not in _NUMBER_TYPES:
            return f"element {where} is {_describe(item)}, not a number"
        if type(item) is int and abs(item) > _FLOAT64_MAX:
            return f"element {where} is an integer beyond float64's range"
    if len(shape) > MAX_NDIM:
        return f"a tensor may have at most {MAX_NDIM} dimensions"
    return "not a rectangular nested list of numbers"


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) is str:
        return "a string other than NaN, Infinity or -Infinity"
    if type(value) is dict:
        return "an object"
    if type(value) is list:
        return "a list"
    return f"a {type(value).__name__}"


def _is_shape(shape: object) -> bool:
    return (
        type(shape) is list
        and len(shape) <= MAX_NDIM
        and all(type(n) is int and n >= 0 for n in shape)
    )


# An encoded float64 scalar: 8 bytes, 12 base64 characters.
_SCALAR_B64_LENGTH = 12


def _is_encoded_scalar(value: dict) -> bool:
    text = value.get("b64")
    return (
        value.keys() == ENCODED_KEYS and value["dtype"] == "float64" and value["shape"] == []
        and type(text) is str and len(text) == _SCALAR_B64_LENGTH
    )


def _encoded_scalars(values: list[dict]) -> list[np.ndarray] | None:
    """Encoded float64 scalars decoded in one pass (a registered graph's many input values);
    None unless every one is exactly such an object with valid base64."""
    if not all(map(_is_encoded_scalar, values)):
        return None
    try:  # the decoder _decode_encoded uses, so both paths accept the same texts
        raw = b"".join([b64decode(value["b64"], validate=True) for value in values])
    except ValueError:
        return None
    if len(raw) != 8 * len(values):
        return None
    return [np.array(number) for number in np.frombuffer(raw, "<f8").tolist()]


def _decode_encoded(value: dict, node: str | None) -> np.ndarray:
    keys = value.keys()
    if keys != ENCODED_KEYS:
        missing = sorted(ENCODED_KEYS - keys)
        unknown = sorted(keys - ENCODED_KEYS)
        problem = f"lacks {missing}" if missing else f"has unknown keys {unknown}"
        raise ValidationError(f'an encoded tensor has exactly "dtype", "shape" and "b64"; this '
                              f"one {problem}")
    dtype = WIRE_DTYPES.get(value["dtype"]) if type(value["dtype"]) is str else None
    if dtype is None:
        raise ValidationError(f'"dtype" must be one of {sorted(WIRE_DTYPES)}')
    shape = value["shape"]
    if not _is_shape(shape):
        raise ValidationError(
            f'"shape" must be a list of at most {MAX_NDIM} non-negative integers'
        )
    check_shape(shape, node)  # decoded as float64, even from float32
    size = math.prod(shape)
    check_size(size, node)
    text = value["b64"]
    if type(text) is not str or len(text) % 4:
        raise ValidationError('"b64" must be a base64 string (standard alphabet, padded)')
    padding = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    byte_count = len(text) // 4 * 3 - (padding if text else 0)
    expected = size * dtype.itemsize
    if byte_count != expected:
        raise ValidationError(
            f'"b64" holds {byte_count} bytes; {value["dtype"]} x {shape} needs {expected}'
        )
    try:
        raw = b64decode(text, validate=True)
    except ValueError:
        raise ValidationError(
            '"b64" must be a base64 string (standard alphabet, padded)'
        ) from None
    if len(raw) != expected:  # padding in the middle can shorten the decoded bytes
        raise ValidationError(f'"b64" holds {len(raw)} bytes; {expected} were expected')
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.float64)


# ---------------------------------------------------------------- encoding


def tensor_json(value: float | np.ndarray, encoding: str = "json") -> object:
    """A float or float64 array as orjson should write it (with OPT_SERIALIZE_NUMPY).

    0-d values become numbers; non-finite elements become their spellings; with `encoding`
    "b64" a non-scalar array becomes an encoded float64 object. So does an empty array whose
    shape a nested list cannot carry (a zero before the last dimension: [] could be (0,) or
    (0, 3)), so that both encodings describe the same tensor.
    """
    if type(value) is float:
        return spell_float(value)
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return spell_float(float(array))
    if encoding == "b64" or 0 in array.shape[:-1]:
        data = np.ascontiguousarray(array, dtype="<f8")
        return {
            "dtype": "float64",
            "shape": list(array.shape),
            "b64": b64encode_as_string(data),
        }
    if np.isfinite(array).all():
        return np.ascontiguousarray(array)
    return _spelled_list(array)


def _spelled_list(array: np.ndarray) -> list:
    spelled = array.astype(object)
    spelled[np.isnan(array)] = NAN
    spelled[array == np.inf] = INFINITY
    spelled[array == -np.inf] = NEG_INFINITY
    return spelled.tolist()


# ---------------------------------------------------------------- the field


class Tensor(fields.Field):
    """A tensor on the wire; loads to a float64 ndarray (0-d for a number).

    The node id for TooLarge messages comes from the enclosing object's "id" when it has one.
    """

    default_error_messages = {"null": "Field may not be null: a tensor is required."}

    def _deserialize(self, value, attr, data, **kwargs) -> np.ndarray:
        node = data.get("id") if isinstance(data, dict) else None
        return decode_tensor(value, node if type(node) is str else None)

    def _serialize(self, value, attr, obj, **kwargs) -> object:
        if value is None:
            return None
        return tensor_json(value)

    def load_numbers(self, values: list) -> list[np.ndarray] | None:
        """Decode a column of plain numbers, or of encoded float64 scalars, at once; None when
        it holds anything else.

        Used by the fast loaders; agrees with `deserialize` on every value it accepts.
        """
        kinds = set(map(type, values))
        if kinds <= _NUMBER_TYPES:
            return [np.array(_number(v), dtype=np.float64) for v in values]
        if kinds == {dict}:
            return _encoded_scalars(values)
        return None
