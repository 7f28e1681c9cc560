"""The levels executor: for wide graphs of 0-d values, every node of one op on one topological
level is computed by a single numpy call over gathered operands."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.executors.base import Deadline, Executor, check_deadline

if TYPE_CHECKING:
    from engine.plan import Plan


@dataclass(slots=True)
class LevelGroup:
    """Every node of one op (same arity and attrs) on one topological level, with the op's
    forward and vjp in a form that computes all of them in one call."""

    forward: Callable
    vjp: Callable
    attrs: dict
    idx: np.ndarray
    ins: list[np.ndarray]


@dataclass(frozen=True, slots=True)
class LevelProgram:
    """The gates in groups, level by level; `size` nodes in all, the output at `out`."""

    size: int
    out: int
    levels: tuple[tuple[LevelGroup, ...], ...]


class LevelsExecutor(Executor):
    name = "levels"
    gives_floats = True

    def prepare(self, plan: Plan) -> LevelProgram:
        return LevelProgram(len(plan.ids), plan.out, _group_levels(plan))

    def forward(
        self, state: LevelProgram, sources: Mapping[int, np.ndarray], deadline: Deadline
    ) -> np.ndarray:
        v = np.zeros(state.size)
        for i, value in sources.items():
            v[i] = value
        for level in state.levels:
            check_deadline(deadline)
            for group in level:
                v[group.idx] = group.forward(*[v[a] for a in group.ins], **group.attrs)
        return v

    def backward(
        self, state: LevelProgram, values: np.ndarray, seed: np.ndarray, needed: Sequence[bool],
        deadline: Deadline,
    ) -> list[float]:
        grad = np.zeros(state.size)
        grad[state.out] = seed
        need = np.asarray(needed, dtype=bool)
        for level in reversed(state.levels):
            check_deadline(deadline)
            for group in level:
                _backward_group(group, values, grad, need)
        return grad.tolist()

    def listed(self, values: np.ndarray) -> list[float]:
        return values.tolist()


def _backward_group(group: LevelGroup, v: np.ndarray, grad: np.ndarray, need: np.ndarray) -> None:
    """Add the group's members' input gradients into `grad`, skipping members nobody needs."""
    idx, ins = group.idx, group.ins
    keep = need[idx]
    if not keep.all():
        if not keep.any():
            return
        idx, ins = idx[keep], [a[keep] for a in ins]
    local = group.vjp(grad[idx], v[idx], *[v[a] for a in ins], **group.attrs)
    for a, contribution in zip(ins, local, strict=True):
        np.add.at(grad, a, contribution)


def _group_levels(plan: Plan) -> tuple[tuple[LevelGroup, ...], ...]:
    """The gates grouped by (level, kind, arity), members in topological order; the groups of
    a level in the order of their first member."""
    levels: list[list[LevelGroup]] = [[] for _ in range(int(np.max(plan.levels)) + 1)]
    for members in _groups(plan):
        op, attrs = plan.kind_table[int(plan.kinds[members[0]])]
        arity = int(plan.ins.indptr[members[0] + 1] - plan.ins.indptr[members[0]])
        first_input = plan.ins.indptr[members]
        # numpy's rule for an elementwise op; on 0-d values the others are the identity,
        # whose float kernels serve a gathered row of values as well
        forward, vjp = (op.forward, op.vjp) if op.elementwise else (op.scalar.forward,
                                                                   op.scalar.vjp)
        levels[int(plan.levels[members[0]])].append(
            LevelGroup(forward, vjp, attrs, members,
                       [plan.ins.indices[first_input + k] for k in range(arity)])
        )
    return tuple(tuple(level) for level in levels)


def _groups(plan: Plan) -> list[np.ndarray]:
    """The members of each group, the groups in the order of their first member."""
    gates = plan.gates()
    if not gates.size:
        return []
    keys = (plan.ins.lengths()[gates], plan.kinds[gates], plan.levels[gates])
    by_key = np.lexsort(keys)  # stable: members stay in topological order within a group
    gates = gates[by_key]
    arity, kinds, levels = (key[by_key] for key in keys)
    new = np.flatnonzero((np.diff(levels) != 0) | (np.diff(kinds) != 0) | (np.diff(arity) != 0))
    groups = np.split(gates, new + 1)
    firsts = gates[np.concatenate(([0], new + 1))]
    return [groups[g] for g in np.argsort(firsts).tolist()]
