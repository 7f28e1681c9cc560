"""The levels executor: for wide graphs of 0-d values, the gates of one op on one topological
level are computed by a single numpy call over gathered operands.

Gates share a call when they have the same op, arity and attrs, except for the attrs the op row
declares `array_attrs`: those are gathered into arrays of one value per member, so a level of
scale gates with a thousand different factors is still one call. The backward pass adds a
level's gradient contributions in one `np.add.at`, in the order the per-node executors add
them (consumers last to first, each one's inputs first to last), so the gradients are the same
floats whatever the grouping. A level is computed whole, and the contributions of gates
nobody needs are left out of its sum, as the per-node executors skip those gates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.executors.base import Deadline, Executor, check_deadline
from engine.ops import Op

if TYPE_CHECKING:
    from engine.plan import Plan


@dataclass(frozen=True, slots=True)
class LevelGroup:
    """Gates of one op, arity and shared attrs on one level, computed in one call.

    `attrs` are the shared attrs, `columns` the op's array attrs with one value per member;
    `ins[k]` are the members' k-th inputs, and `slots[k]` where the gradients for them go
    among the contributions the backward pass adds up.
    """

    forward: Callable
    vjp: Callable
    attrs: dict
    columns: dict[str, np.ndarray]
    idx: np.ndarray
    ins: tuple[np.ndarray, ...]
    slots: tuple[np.ndarray, ...]


@dataclass(frozen=True, slots=True)
class Level:
    """The groups of one level, whose gates are nodes `first:last`; its gradient contributions
    are `start:stop` of the sum order."""

    groups: tuple[LevelGroup, ...]
    first: int
    last: int
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class LevelProgram:
    """`size` nodes, the output at `out`; the levels from the sources up. Contribution s of
    the backward pass comes from gate `consumers[s]` and goes to node `targets[s]`."""

    size: int
    out: int
    levels: tuple[Level, ...]
    targets: np.ndarray
    consumers: np.ndarray


class LevelsExecutor(Executor):
    name = "levels"
    gives_floats = True

    def prepare(self, plan: Plan) -> LevelProgram:
        return LevelProgram(len(plan.ids), plan.out, _group_levels(plan), *_sum_order(plan))

    def forward(
        self, state: LevelProgram, sources: Mapping[int, np.ndarray], deadline: Deadline
    ) -> np.ndarray:
        v = np.zeros(state.size)
        for i, value in sources.items():
            v[i] = value
        for level in state.levels:
            check_deadline(deadline)
            for group in level.groups:
                v[group.idx] = group.forward(*[v[a] for a in group.ins], **group.attrs,
                                             **group.columns)
        return v

    def backward(
        self, state: LevelProgram, values: np.ndarray, seed: np.ndarray, needed: Sequence[bool],
        deadline: Deadline,
    ) -> list[float]:
        grad = np.zeros(state.size)
        grad[state.out] = seed
        need = np.asarray(needed, dtype=bool)
        contributions = np.empty(len(state.targets))
        for level in reversed(state.levels):
            check_deadline(deadline)
            needed_here = need[level.first : level.last]
            if not needed_here.any():
                continue
            for group in level.groups:
                _contribute(group, values, grad, contributions)
            span = slice(level.start, level.stop)
            targets, local = state.targets[span], contributions[span]
            if not needed_here.all():
                keep = need[state.consumers[span]]
                targets, local = targets[keep], local[keep]
            np.add.at(grad, targets, local)
        return grad.tolist()

    def listed(self, values: np.ndarray) -> list[float]:
        return values.tolist()


def _contribute(group: LevelGroup, v: np.ndarray, grad: np.ndarray, out: np.ndarray) -> None:
    """Write the gradient contributions of the group's members into their slots of `out`."""
    idx = group.idx
    local = group.vjp(grad[idx], v[idx], *[v[a] for a in group.ins], **group.attrs,
                      **group.columns)
    for where, contribution in zip(group.slots, local, strict=True):
        out[where] = contribution


# ---------------------------------------------------------------- compiling


def _sum_order(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Each gradient contribution's target and consumer, in the order they are added: gates
    from the last to the first, the inputs of each from its first to its last.

    Input entry e of gate c (the Ragged's flat order) has slot E - indptr[c + 1] + (e -
    indptr[c]), E the number of entries: the gates' blocks reversed, each kept in order.
    """
    indptr, indices = plan.ins.indptr, plan.ins.indices
    lengths = np.diff(indptr)
    consumer = np.repeat(np.arange(len(lengths), dtype=np.intp), lengths)
    slot = len(indices) - indptr[consumer + 1] + (np.arange(len(indices)) - indptr[consumer])
    targets = np.empty_like(indices)
    consumers = np.empty_like(consumer)
    targets[slot] = indices
    consumers[slot] = consumer
    return targets, consumers


@dataclass(frozen=True, slots=True)
class Family:
    """Kinds that share calls: one op, the same attrs but for its array attrs (`merged`)."""

    op: Op
    shared: dict
    merged: tuple[str, ...]


def _families(table: Sequence[tuple[Op, dict]]) -> tuple[np.ndarray, list[Family], dict]:
    """Each kind's family, the families, and each merged attr's value by kind (nan where a
    kind has none). A null array attr stays shared: clip without a bound is another call."""
    family_of: list[int] = []
    families: list[Family] = []
    known: dict[tuple, int] = {}
    merged_values: dict[str, tuple[list[int], list[float]]] = {}
    for k, (op, attrs) in enumerate(table):
        merged = tuple(name for name in op.array_attrs if attrs[name] is not None)
        shared = _shared_attrs(op, attrs, merged) if attrs else attrs
        key = (op.name, repr(shared), merged)  # repr: 2 and 2.0 are not the same attrs
        family = known.get(key)
        if family is None:
            family = known[key] = len(families)
            families.append(Family(op, shared, merged))
        family_of.append(family)
        for name in merged:
            kinds, values = merged_values.setdefault(name, ([], []))
            kinds.append(k)
            values.append(attrs[name])
    columns = {}
    for name, (kinds, values) in merged_values.items():
        columns[name] = np.full(len(table), np.nan)
        columns[name][kinds] = values
    return np.array(family_of, dtype=np.intp), families, columns


def _shared_attrs(op: Op, attrs: dict, merged: tuple[str, ...]) -> dict:
    if not op.elementwise and op.scalar is not None and op.scalar.identity:
        return {}  # the identity on 0-d values whatever its attrs: every kind shares a call
    return {name: value for name, value in attrs.items() if name not in merged}


def _group_levels(plan: Plan) -> tuple[Level, ...]:
    """The gates grouped by (level, family, arity), members in topological order; the groups
    of a level in the order of their first member."""
    family_of, families, columns = _families(plan.kind_table)
    depth = int(np.max(plan.levels)) + 1
    grouped: list[list[LevelGroup]] = [[] for _ in range(depth)]
    for members in _groups(plan, family_of[plan.kinds]):
        family = families[int(family_of[plan.kinds[members[0]]])]
        level = int(plan.levels[members[0]])
        grouped[level].append(_group(plan, family, members, columns))
    # a level's nodes are consecutive (levels never decrease along the order), so are their
    # input entries, and so are the entries' slots, reversed
    first = np.searchsorted(plan.levels, np.arange(depth + 1)).tolist()
    entries = (len(plan.ins.indices) - plan.ins.indptr[first]).tolist()
    return tuple(Level(tuple(groups), first[d], first[d + 1], entries[d + 1], entries[d])
                 for d, groups in enumerate(grouped))


def _group(plan: Plan, family: Family, members: np.ndarray, columns: dict) -> LevelGroup:
    op = family.op
    starts = plan.ins.indptr[members]
    arity = int(plan.ins.indptr[members[0] + 1] - starts[0])
    # numpy's rule for an elementwise op; on 0-d values the others are the identity, whose
    # float kernels serve a gathered row of values as well
    forward, vjp = (op.forward, op.vjp) if op.elementwise else (op.scalar.forward, op.scalar.vjp)
    merged = {}
    if family.merged:
        kinds = plan.kinds[members]
        merged = {name: columns[name][kinds] for name in family.merged}
    slots = len(plan.ins.indices) - arity - starts  # the first input's, see _sum_order
    return LevelGroup(forward, vjp, family.shared, merged, members,
                      tuple(plan.ins.indices[starts + k] for k in range(arity)),
                      tuple(slots + k for k in range(arity)))


def _group_key(arity: np.ndarray, family: np.ndarray, level: np.ndarray) -> np.ndarray:
    """(level, family, arity) as one integer each, ordered as the triples are: one stable
    sort of it is twice as fast as a lexsort of the three. Where the product could pass
    int64, the rank of each triple instead."""
    families, arities = int(family.max()) + 1, int(arity.max()) + 1
    if (int(level.max()) + 1) * families * arities < 2**62:
        return (level * families + family) * arities + arity
    order = np.lexsort((arity, family, level))
    rank = np.empty_like(order)
    step = np.diff(level[order], prepend=-1) | np.diff(family[order], prepend=-1) | np.diff(
        arity[order], prepend=-1)
    rank[order] = np.cumsum(step != 0)
    return rank


def _groups(plan: Plan, families: np.ndarray) -> list[np.ndarray]:
    """The members of each group, the groups in the order of their first member; `families`
    is every node's family."""
    gates = plan.gates()
    if not gates.size:
        return []
    key = _group_key(plan.ins.lengths()[gates], families[gates], plan.levels[gates])
    by_key = np.argsort(key, kind="stable")  # members stay in topological order in a group
    gates = gates[by_key]
    new = np.flatnonzero(np.diff(key[by_key]) != 0)
    groups = np.split(gates, new + 1)
    firsts = gates[np.concatenate(([0], new + 1))]
    return [groups[g] for g in np.argsort(firsts).tolist()]
