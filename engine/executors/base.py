"""What every executor provides, and what they share: the deadline check and float faults.

An executor turns a compiled plan into a prepared state once (`prepare`), then runs that state
on each request's values (`run`: `forward`, then unless forward-only `backward`), giving one
value per node and one gradient per node (None or 0.0 where none flowed), in topological order.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from engine.errors import DeadlineExceeded

if TYPE_CHECKING:
    from engine.plan import Plan

# A time.monotonic() value to stop by, or None for no limit.
Deadline = float | None
# The float loops look at the clock once per this many nodes.
DEADLINE_STRIDE = 1024
# What a float kernel may raise on inf, nan or a domain edge; numpy then computes the node.
FLOAT_FAULTS = (ArithmeticError, ValueError)


class Executor(ABC):
    """Runs plans one way. `forward` and `backward` are separate so that one forward pass can
    serve several backward passes (several seeds); `run` is the usual pair of both."""

    name: ClassVar[str]
    # values and gradients come back as Python floats (the plan then skips converting them)
    gives_floats: ClassVar[bool]

    @abstractmethod
    def prepare(self, plan: Plan) -> Any:
        """Everything the runs of `plan` share, computed once when the plan is compiled."""

    @abstractmethod
    def forward(self, state: Any, sources: Mapping[int, np.ndarray], deadline: Deadline) -> Any:
        """Every node's value, in the executor's own form, from the sources' values."""

    @abstractmethod
    def backward(
        self, state: Any, values: Any, seed: np.ndarray, needed: Sequence[bool], deadline: Deadline
    ) -> list:
        """d(seed . output)/d(node) for the `needed` nodes (None or 0.0 where none flowed)."""

    def listed(self, values: Any) -> list:
        """`forward`'s values as a list in topological order."""
        return values

    def run(
        self,
        state: Any,
        sources: Mapping[int, np.ndarray],
        seed: np.ndarray,
        needed: Sequence[bool],
        forward_only: bool,
        deadline: Deadline,
    ) -> tuple[list, list | None]:
        """Values of every node and, unless `forward_only`, gradients of the `needed` ones."""
        values = self.forward(state, sources, deadline)
        grads = None if forward_only else self.backward(state, values, seed, needed, deadline)
        return self.listed(values), grads


def flags(needed: Sequence[bool]) -> list[bool]:
    """`needed` as a list, which the per-node loops index faster than an array."""
    return needed.tolist() if isinstance(needed, np.ndarray) else list(needed)


def check_deadline(deadline: Deadline) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded("the computation ran past its time limit")
