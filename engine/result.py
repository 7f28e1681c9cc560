"""What a run of a plan answers: the reported nodes' values and gradients."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass
class RunResult:
    """Values and gradients of the reported nodes; 0-d ones as Python floats.

    `value_list` and `grad_list` run parallel to `order` (what serialisers walk); the by-id
    dicts `values` and `grads` are built on first use.
    """

    output: str
    value: object
    order: list[str]
    value_list: list
    grad_list: list | None

    @cached_property
    def values(self) -> dict[str, object]:
        return dict(zip(self.order, self.value_list, strict=True))

    @cached_property
    def grads(self) -> dict[str, object] | None:
        if self.grad_list is None:
            return None
        return dict(zip(self.order, self.grad_list, strict=True))


def plain(value):
    """0-d results as Python floats, others as float64 arrays."""
    if type(value) is float:
        return value
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value
