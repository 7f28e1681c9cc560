"""The scalar executor: a loop over Python floats in topological order.

For narrow graphs of 0-d values (chains), where a numpy call per node (about 1 us) would cost
more than the arithmetic. Each gate is a FloatStep holding the op's float kernels with its
attrs bound; a kernel that raises on inf or nan hands the node to the op's numpy rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from engine.executors.base import (
    DEADLINE_STRIDE,
    FLOAT_FAULTS,
    Deadline,
    Executor,
    check_deadline,
)
from engine.ops import Op

if TYPE_CHECKING:
    from engine.plan import Plan


class FloatStep(NamedTuple):
    """One gate: its position, float forward and vjp (attrs bound), input positions, arity.

    The loops hold each step as a plain tuple in this field order: CPython unpacks an exact
    tuple without the iterator protocol, about 20 ns a node faster than a NamedTuple.
    """

    node: int
    forward: Callable
    vjp: Callable
    ins: tuple[int, ...]
    arity: int


@dataclass(frozen=True, slots=True)
class FloatProgram:
    """The gates as FloatSteps in chunks of DEADLINE_STRIDE, and what the numpy fallback needs."""

    chunks: tuple[tuple[tuple, ...], ...]
    ops: tuple[Op, ...]
    attrs: tuple[dict, ...]
    size: int
    out: int


class ScalarExecutor(Executor):
    name = "scalar"
    gives_floats = True

    def prepare(self, plan: Plan) -> FloatProgram:
        rows = [tuple(step) for step in _float_steps(plan)]
        chunks = tuple(
            tuple(rows[k : k + DEADLINE_STRIDE]) for k in range(0, len(rows), DEADLINE_STRIDE)
        )
        return FloatProgram(chunks, plan.ops, plan.attrs, len(plan.ids), plan.out)

    def forward(
        self, state: FloatProgram, sources: Mapping[int, np.ndarray], deadline: Deadline
    ) -> list[float]:
        values = [0.0] * state.size
        for i, value in sources.items():
            values[i] = float(value)
        for chunk in state.chunks:
            check_deadline(deadline)
            _forward_chunk(state, chunk, values)
        return values

    def backward(
        self, state: FloatProgram, values: list[float], seed: np.ndarray,
        needed: Sequence[bool], deadline: Deadline,
    ) -> list[float]:
        grads = [0.0] * state.size
        grads[state.out] = float(seed)
        for chunk in reversed(state.chunks):
            check_deadline(deadline)
            _backward_chunk(state, chunk, values, grads, needed)
        return grads


def _float_steps(plan: Plan) -> list[FloatStep]:
    bound: dict = {}

    def bind(kernel: Callable, attrs: dict) -> Callable:
        if not attrs:
            return kernel
        key = (kernel, tuple(attrs.items()))
        if key not in bound:  # share one partial between nodes with equal attrs
            bound[key] = partial(kernel, **attrs)
        return bound[key]

    steps = []
    for i, op in enumerate(plan.ops):
        if op.is_source:
            continue
        ins, attrs, kernels = plan.ins[i], plan.attrs[i], op.scalar
        pairwise = len(ins) == 2 and kernels.pairwise is not None
        forward = kernels.pairwise if pairwise else kernels.forward
        steps.append(FloatStep(i, bind(forward, attrs), bind(kernels.vjp, attrs), ins, len(ins)))
    return steps


def _numpy_twin(state: FloatProgram, rule: Callable, i: int, *args) -> tuple:
    """Recompute one node with the numpy rule when a float kernel raised (inf, nan cases)."""
    return rule(*[np.float64(a) for a in args], **state.attrs[i])


def _forward_chunk(state: FloatProgram, chunk: tuple[tuple, ...], values: list) -> None:
    for i, forward, _, ins, arity in chunk:
        try:
            if arity == 1:
                values[i] = forward(values[ins[0]])
            elif arity == 2:
                a, b = ins
                values[i] = forward(values[a], values[b])
            else:
                values[i] = forward(*[values[j] for j in ins])
        except FLOAT_FAULTS:
            args = [values[j] for j in ins]
            values[i] = float(_numpy_twin(state, state.ops[i].forward, i, *args))


def _backward_chunk(
    state: FloatProgram, chunk: tuple[tuple, ...], values: list, grads: list, needed
) -> None:
    for i, _, vjp, ins, arity in reversed(chunk):
        if not needed[i]:
            continue
        g = grads[i]
        try:
            if arity == 1:
                (a,) = ins
                (da,) = vjp(g, values[i], values[a])
                grads[a] += da
            elif arity == 2:
                a, b = ins
                da, db = vjp(g, values[i], values[a], values[b])
                grads[a] += da
                grads[b] += db
            else:
                local = vjp(g, values[i], *[values[j] for j in ins])
                for j, contribution in zip(ins, local, strict=True):
                    grads[j] += contribution
        except FLOAT_FAULTS:
            args = [values[j] for j in ins]
            local = _numpy_twin(state, state.ops[i].vjp, i, g, values[i], *args)
            for j, contribution in zip(ins, local, strict=True):
                grads[j] += float(contribution)
