"""The tensor executor: one numpy call per node; it runs any graph, and must for non-scalar ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.executors.base import Deadline, Executor, check_deadline, flags
from engine.ops import Op, Shape, unbroadcast

if TYPE_CHECKING:
    from engine.plan import Plan


@dataclass(frozen=True, slots=True)
class TensorSteps:
    """The plan's columns the per-node loops read."""

    ops: tuple[Op, ...]
    attrs: tuple[dict, ...]
    ins: tuple[tuple[int, ...], ...]
    shapes: tuple[Shape, ...]
    out: int


class TensorExecutor(Executor):
    name = "tensor"
    gives_floats = False

    def prepare(self, plan: Plan) -> TensorSteps:
        return TensorSteps(plan.ops, plan.attrs, tuple(plan.ins.tuples()), plan.shapes, plan.out)

    def forward(
        self, state: TensorSteps, sources: Mapping[int, np.ndarray], deadline: Deadline
    ) -> list:
        ops, attrs, ins = state.ops, state.attrs, state.ins
        values: list = [None] * len(ops)
        for i in range(len(ops)):
            check_deadline(deadline)
            if i in sources:
                values[i] = sources[i]
            else:
                values[i] = ops[i].forward(*[values[j] for j in ins[i]], **attrs[i])
        return values

    def backward(
        self, state: TensorSteps, values: list, seed: np.ndarray, needed: Sequence[bool],
        deadline: Deadline,
    ) -> list:
        """Gradients in reverse topological order, summed at forks; None where none flowed."""
        needed = flags(needed)
        grads: list = [None] * len(values)
        grads[state.out] = seed
        for i in range(len(values) - 1, -1, -1):
            g = grads[i]
            if not needed[i] or g is None or state.ops[i].is_source:
                continue
            check_deadline(deadline)
            ins = state.ins[i]
            for j, contribution in zip(ins, _vjp(state, i, g, values, needed), strict=True):
                if contribution is None or not needed[j]:
                    continue
                contribution = unbroadcast(contribution, state.shapes[j])
                grads[j] = contribution if grads[j] is None else grads[j] + contribution
        return grads


def _vjp(state: TensorSteps, i: int, g, values: list, needed: Sequence[bool]):
    op = state.ops[i]
    xs = [values[j] for j in state.ins[i]]
    if op.vjp_takes_needs:
        needs = tuple(needed[j] for j in state.ins[i])
        return op.vjp(g, values[i], *xs, needs=needs, **state.attrs[i])
    return op.vjp(g, values[i], *xs, **state.attrs[i])
