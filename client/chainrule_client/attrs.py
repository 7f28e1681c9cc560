"""Checking what users pass as op attrs, so a mistake fails before anything is sent.

Each helper answers the JSON form of one attr or raises TypeError / ValueError naming it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from chainrule_client.tensors import as_array

__all__ = [
    "clip_attrs",
    "finite",
    "integer",
    "integers",
    "nested_integers",
    "reduce_attrs",
    "slice_entries",
    "tensor_value",
]


def tensor_value(value: object) -> float | np.ndarray:
    """A node's value: a float for 0-d, a float64 array otherwise."""
    if isinstance(value, float):
        return float(value)
    array = as_array(value)
    return float(array) if array.ndim == 0 else array


def finite(value: object, name: str) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


def integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def integers(values: Iterable[object], name: str) -> list[int]:
    return [integer(v, name) for v in values]


def nested_integers(values: object, name: str) -> int | list[Any]:
    """An int or a rectangular nested list of ints (numpy integer arrays welcome)."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, got an array of dtype {values.dtype}")
        return values.tolist()
    if isinstance(values, list | tuple):
        return [nested_integers(v, name) for v in values]
    return integer(values, name)


def reduce_attrs(axis: int | Iterable[int] | None, keepdims: bool) -> dict[str, Any]:
    """`axis` and `keepdims` of a reduction, each left out at its default (None, False)."""
    attrs: dict[str, Any] = {}
    if axis is not None:
        attrs["axis"] = (
            integer(axis, "axis") if isinstance(axis, numbers.Integral) else integers(axis, "axis")
        )
    if not isinstance(keepdims, bool):
        raise TypeError(f"keepdims must be a bool, got {keepdims!r}")
    if keepdims:
        attrs["keepdims"] = True
    return attrs


def clip_attrs(lo: object, hi: object) -> dict[str, Any]:
    """`lo` and `hi` of clip, both sent (null is an open bound); lo > hi is refused."""
    low = None if lo is None else finite(lo, "lo")
    high = None if hi is None else finite(hi, "hi")
    if low is not None and high is not None and low > high:
        raise ValueError(f"clip needs lo <= hi, got lo={low} and hi={high}")
    return {"lo": low, "hi": high}


def slice_entries(key: object) -> list[Any]:
    """The `slices` attr for `x[key]`: per leading axis an int, or [start, stop, step]."""
    parts = key if isinstance(key, tuple) else (key,)
    if not parts:
        raise TypeError("x[()] selects nothing; index with ints and slices")
    return [_slice_entry(part) for part in parts]


def _slice_entry(part: object) -> int | list[int | None]:
    if isinstance(part, slice):
        start, stop, step = (
            None if bound is None else integer(bound, "a slice bound")
            for bound in (part.start, part.stop, part.step)
        )
        if step == 0:
            raise ValueError("a slice step cannot be zero")
        return [start, stop, step]
    if isinstance(part, numbers.Integral) and not isinstance(part, bool):
        return int(part)
    raise TypeError(
        f"a node is indexed by ints and slices only, not {type(part).__name__}; "
        "use x.take(indices, axis) to gather by an index array"
    )
