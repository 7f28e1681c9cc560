"""Short text for numbers and tensors: what a wire of the diagram or a row of the CLI shows.

One `summarize` serves both, in two styles: `WIRE` (the diagram: `[3×4] -1.2…3.4`, three
significant digits) and `TABLE` (the CLI: `[3x4] min -1.2 max 3.4`, scalars to six digits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class SummaryStyle:
    """How `summarize` writes: significant digits, the shape's separator, the range's form."""

    scalar_digits: int
    range_digits: int
    times: str  # between a shape's dimensions
    spread: str  # the range, from {low} and {high}
    collapse_equal: bool  # a constant tensor shows its one value instead of a range


WIRE = SummaryStyle(3, 3, "×", "{low}…{high}", collapse_equal=True)
TABLE = SummaryStyle(6, 4, "x", "min {low} max {high}", collapse_equal=False)


def format_number(x: float, digits: int = 3) -> str:
    """`digits` significant digits; nan, inf and -inf spelled out; no negative zero."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.{digits}g}"
    return "0" if text == "-0" else text


def summarize(value: Any, style: SummaryStyle = WIRE) -> str:
    """A scalar as a short number; a tensor as its shape and range (NaNs noted after it)."""
    if value is None:
        return ""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return format_number(float(array), style.scalar_digits)
    shape = "[" + style.times.join(str(n) for n in array.shape) + "]"
    if array.size == 0:
        return f"{shape} empty"
    nan = np.isnan(array)
    if nan.all():
        return f"{shape} nan"
    finite_part = array[~nan]
    low = format_number(float(finite_part.min()), style.range_digits)
    high = format_number(float(finite_part.max()), style.range_digits)
    if style.collapse_equal and low == high:
        text = f"{shape} {low}"
    else:
        text = f"{shape} " + style.spread.format(low=low, high=high)
    return f"{text} nan" if nan.any() else text
