"""The scalar executor: a loop over Python floats in topological order.

For narrow graphs of 0-d values (chains), where a numpy call per node (about 1 us) would cost
more than the arithmetic. Each gate is a step, a tuple of four ints: its position, its kernel
pair (the op's float forward and vjp with its attrs bound, one pair a kind and arity), and its
inputs. Tuples of ints only are left alone by the garbage collector once it has seen them.
A kernel that raises on inf or nan hands the node to the op's numpy rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from engine.executors.base import (
    DEADLINE_STRIDE,
    FLOAT_FAULTS,
    Deadline,
    Executor,
    check_deadline,
    flags,
)
from engine.ops import Op

if TYPE_CHECKING:
    from engine.plan import Plan

# A step is (node, kernel pair, a, b): b is the second input of a two-input gate, UNARY for a
# one-input gate, and WIDE for a gate of more inputs, whose input positions are wide[a].
UNARY = -1
WIDE = -2


@dataclass(frozen=True, slots=True)
class FloatProgram:
    """The steps in chunks of DEADLINE_STRIDE, the kernel pairs they name, and what the numpy
    fallback needs."""

    chunks: tuple[tuple[tuple[int, int, int, int], ...], ...]
    forwards: tuple[Callable, ...]
    vjps: tuple[Callable, ...]
    wide: tuple[tuple[int, ...], ...]
    ops: tuple[Op, ...]
    attrs: tuple[dict, ...]
    size: int
    out: int


class ScalarExecutor(Executor):
    name = "scalar"
    gives_floats = True

    def prepare(self, plan: Plan) -> FloatProgram:
        steps, kernels, wide = _steps(plan)
        chunks = tuple(tuple(steps[k : k + DEADLINE_STRIDE])
                       for k in range(0, len(steps), DEADLINE_STRIDE))
        return FloatProgram(chunks, tuple(f for f, _ in kernels), tuple(v for _, v in kernels),
                            wide, plan.ops, plan.attrs, len(plan.ids), plan.out)

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
        needed = flags(needed)
        grads = [0.0] * state.size
        grads[state.out] = float(seed)
        for chunk in reversed(state.chunks):
            check_deadline(deadline)
            _backward_chunk(state, chunk, values, grads, needed)
        return grads


def _steps(plan: Plan) -> tuple[list[tuple], list[tuple[Callable, Callable]], tuple]:
    """The gates' steps in topological order; the kernel pairs; the wide inputs."""
    gates = plan.gates()
    if not gates.size:
        return [], [], ()
    arity = plan.ins.lengths()[gates]
    stride = int(arity.max()) + 1  # (kind, arity) pairs as one integer each
    pairs, which = np.unique(plan.kinds[gates] * stride + arity, return_inverse=True)
    kernels = [_kernels(*plan.kind_table[pair // stride], pair % stride)
               for pair in pairs.tolist()]
    first = plan.ins.indices[plan.ins.indptr[gates]]
    second = np.where(arity == 2, plan.ins.indices[plan.ins.indptr[gates] + 1 - (arity < 2)],
                      UNARY)
    many = np.flatnonzero(arity > 2)
    wide = tuple(plan.ins[int(i)] for i in gates[many])
    first[many] = np.arange(many.size)
    second[many] = WIDE
    # one int object a position, shared by every step that names it (a third of the memory);
    # the markers last, so that pool[UNARY] and pool[WIDE] are the markers themselves
    pool = [*range(len(plan.ids)), WIDE, UNARY]
    columns = [list(map(pool.__getitem__, column.tolist())) for column in (gates, first, second)]
    return list(zip(columns[0], which.reshape(-1).tolist(), columns[1], columns[2], strict=True)), \
        kernels, wide


def _kernels(op: Op, attrs: dict, arity: int) -> tuple[Callable, Callable]:
    """An op's float forward and vjp for `arity` inputs, with `attrs` bound."""
    kernels = op.scalar
    pairwise = arity == 2 and kernels.pairwise is not None
    forward = kernels.pairwise if pairwise else kernels.forward
    if not attrs:
        return forward, kernels.vjp
    return partial(forward, **attrs), partial(kernels.vjp, **attrs)


def _inputs(state: FloatProgram, a: int, b: int) -> tuple[int, ...]:
    if b >= 0:
        return (a, b)
    return (a,) if b == UNARY else state.wide[a]


def _numpy_twin(state: FloatProgram, rule: Callable, i: int, *args) -> tuple:
    """Recompute one node with the numpy rule when a float kernel raised (inf, nan cases)."""
    return rule(*[np.float64(a) for a in args], **state.attrs[i])


def _forward_chunk(state: FloatProgram, chunk: tuple[tuple, ...], values: list) -> None:
    forwards = state.forwards
    for i, k, a, b in chunk:
        try:
            if b == UNARY:
                values[i] = forwards[k](values[a])
            elif b >= 0:
                values[i] = forwards[k](values[a], values[b])
            else:
                values[i] = forwards[k](*[values[j] for j in state.wide[a]])
        except FLOAT_FAULTS:
            args = [values[j] for j in _inputs(state, a, b)]
            values[i] = float(_numpy_twin(state, state.ops[i].forward, i, *args))


def _backward_chunk(
    state: FloatProgram, chunk: tuple[tuple, ...], values: list, grads: list, needed
) -> None:
    vjps = state.vjps
    for i, k, a, b in reversed(chunk):
        if not needed[i]:
            continue
        g = grads[i]
        try:
            if b == UNARY:
                (da,) = vjps[k](g, values[i], values[a])
                grads[a] += da
            elif b >= 0:
                da, db = vjps[k](g, values[i], values[a], values[b])
                grads[a] += da
                grads[b] += db
            else:
                ins = state.wide[a]
                local = vjps[k](g, values[i], *[values[j] for j in ins])
                for j, contribution in zip(ins, local, strict=True):
                    grads[j] += contribution
        except FLOAT_FAULTS:
            ins = _inputs(state, a, b)
            local = _numpy_twin(state, state.ops[i].vjp, i, g, values[i],
                                *[values[j] for j in ins])
            for j, contribution in zip(ins, local, strict=True):
                grads[j] += float(contribution)
