"""Tensors on the wire (contract section 1): numbers, nested lists and base64-encoded objects.

`encode_tensor` turns what a user passes (a number, a nested list, a numpy array) into its JSON
form, switching to the base64 object for large or non-finite values; `decode_tensor` reads any
of the wire forms back into a Python float (0-d) or a float64 numpy array.
"""

from __future__ import annotations

import base64
import math
import numbers
from typing import Any

import numpy as np

__all__ = ["B64_THRESHOLD", "TensorLike", "as_array", "decode_tensor", "encode_tensor"]

# Arrays with more elements than this travel as base64: JSON text for floats is ~3x the bytes
# and slow to parse on both ends.
B64_THRESHOLD = 1024

TensorLike = float | int | np.ndarray | np.generic | list | tuple

NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_DTYPES = {"float64": np.dtype("<f8"), "float32": np.dtype("<f4")}


def as_array(value: object) -> np.ndarray:
    """A float64 copy of a number, nested list or array; TypeError for bools, strings etc."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"a tensor must hold numbers, not booleans ({value!r})")
    if isinstance(value, numbers.Real | np.ndarray | list | tuple):
        try:
            raw = np.asarray(value)
        except ValueError as exc:
            raise ValueError(f"a tensor must be a rectangular array of numbers: {exc}") from None
        if raw.dtype.kind not in "iuf":
            raise TypeError(f"a tensor must hold numbers, got an array of dtype {raw.dtype}")
        return np.array(raw, dtype=np.float64)
    raise TypeError(f"expected a number or an array of numbers, got {type(value).__name__}")


def encode_tensor(value: object, *, b64_threshold: int = B64_THRESHOLD) -> Any:
    """The JSON form of a tensor value; base64 when over `b64_threshold` elements or non-finite."""
    if type(value) is int:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return float(value)
    array = as_array(value)
    finite = bool(np.isfinite(array).all())
    if array.size > b64_threshold or not finite:
        return encode_b64(array)
    if array.ndim == 0:
        return float(array)
    return array.tolist()


def encode_b64(array: np.ndarray) -> dict[str, Any]:
    """The contract's encoded object for a float64 array."""
    data = np.ascontiguousarray(array, dtype="<f8").tobytes()
    return {
        "dtype": "float64",
        "shape": list(array.shape),
        "b64": base64.b64encode(data).decode("ascii"),
    }


def decode_tensor(obj: object) -> float | np.ndarray:
    """A wire tensor as a float (0-d) or float64 array; ValueError when it is not one."""
    if isinstance(obj, bool):
        raise ValueError("a boolean is not a tensor")
    if isinstance(obj, int | float):
        return float(obj)
    if isinstance(obj, str):
        if obj in NONFINITE:
            return NONFINITE[obj]
        raise ValueError(f"the string {obj!r} is not a tensor")
    if isinstance(obj, dict):
        return _decode_b64(obj)
    if isinstance(obj, list):
        return _decode_nested(obj)
    if isinstance(obj, np.ndarray | np.generic):
        array = as_array(obj)
        return float(array) if array.ndim == 0 else array
    raise ValueError(f"a {type(obj).__name__} is not a tensor")


def _decode_b64(obj: dict) -> float | np.ndarray:
    dtype = _DTYPES.get(obj.get("dtype"))  # type: ignore[arg-type]
    shape = obj.get("shape")
    text = obj.get("b64")
    if dtype is None:
        raise ValueError(
            f"an encoded tensor's dtype must be float64 or float32, got {obj.get('dtype')!r}"
        )
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ValueError(f"an encoded tensor's shape must be a list of sizes, got {shape!r}")
    if not isinstance(text, str):
        raise ValueError("an encoded tensor needs a 'b64' string")
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("an encoded tensor's 'b64' is not valid base64") from None
    count = math.prod(shape)
    if len(data) != count * dtype.itemsize:
        raise ValueError(
            f"an encoded tensor of shape {shape} and dtype {dtype.name} needs "
            f"{count * dtype.itemsize} bytes, got {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype).astype(np.float64).reshape(shape)
    return float(array) if array.ndim == 0 else array


def _decode_nested(obj: list) -> np.ndarray:
    try:
        raw = np.array(obj)
    except ValueError:
        raise ValueError("a nested-list tensor must be rectangular") from None
    if raw.dtype.kind in "iuf":
        return raw.astype(np.float64)
    # Strings among the numbers: only the three non-finite spellings are allowed.
    boxed = np.array(obj, dtype=object)
    if boxed.shape != raw.shape:
        raise ValueError("a nested-list tensor must be rectangular")
    out = np.empty(boxed.shape, dtype=np.float64)
    for index, item in np.ndenumerate(boxed):
        out[index] = decode_tensor(item)
    return out
