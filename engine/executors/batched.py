"""The batched executor: one numpy call per gate over all B points of a batch.

A plan compiled with batched sources marks every node that depends on one as batched: its
value carries a leading axis of length B; the other nodes (weights, constants) are computed
once, as the tensor executor would. Each batched gate runs its op's batching rule (chosen when
the plan is compiled, engine/ops/batching.py), never a loop over points.

Batched values live in a Workspace lent by a pool (engine/executors/workspace.py) when the
caller passes one: the rules still compute into fresh arrays, which are short-lived and so
recycled by the allocator, while the B x nodes floats that a run keeps alive stay in pages
faulted in once. Gradients need no workspace: a gradient nobody asked for is dropped as soon
as its node has passed it on, so the backward pass lives on recycled memory.

Shared 0-d values are Python floats, computed by the ops' float kernels as the scalar
executor does (a numpy call on a 0-d array costs about a microsecond; a float operation a
tenth of that), with the numpy rule as the fallback on inf and nan.

Backward comes in two forms. Summed (`per_point` False): a batched node's gradient is per
point, a shared node's is summed over the points - the vjp of the batched function, and what
reduce sum / mean need. Per point (`per_point` True): every gradient carries the batch axis, a
shared node's too (reduce none, as vmap(grad) gives; and the Jacobian's one-hot seeds). There,
each gate runs its rule for all-batched inputs, shared operands broadcast along the batch axis.

Why one numpy call per node rather than the levels executor's one call per op and level over
an (nodes, B) matrix: on bench/batch.py's 1,000-node graph at B = 10,000 the levels form took
285 ms against 12.5 ms (gathering and scattering whole rows, and temporaries of nodes x B
floats that miss every cache), while a (B,) array per node stays in cache.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
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
from engine.executors.workspace import Workspace
from engine.ops import Batched, Op, Shape, batching, unbroadcast, unbroadcast_points

if TYPE_CHECKING:
    from engine.plan import Plan


@dataclass(frozen=True, slots=True)
class BatchSteps:
    """The plan's columns, which nodes are batched, and each batched gate's rule.

    `all_batched` holds the rules for all-batched inputs, made on first need (per-point
    backward passes only): a shared gate of an op without a rule is fine otherwise.
    """

    ops: tuple[Op, ...]
    attrs: tuple[dict, ...]
    ins: tuple[tuple[int, ...], ...]
    shapes: tuple[Shape, ...]
    ids: tuple[str, ...]
    batched: tuple[bool, ...]
    rules: tuple[Batched | None, ...]
    out: int
    slots: tuple[tuple[int, int, int, Shape], ...]  # (gate, start, elements, shape) a point
    slot_elements: int  # the slots' elements at one point
    scalar_slots: bool  # every slot is 0-d at a point
    steps: tuple[tuple, ...]  # the forward pass, one (node, kind, call, attrs, ins) a gate
    floats: frozenset[int]  # the shared 0-d nodes whose values are Python floats
    float_vjps: dict[int, object]  # the float vjps of the gates among them, attrs bound
    # (largest batched node, all batched nodes, all shared nodes) in elements at one point
    element_counts: tuple[int, int, int]
    all_batched: dict[int, Batched] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: Plan) -> BatchSteps:
        slots, elements = _slots(plan)
        rules = _rules(plan)
        floats = _float_nodes(plan)
        steps = _steps(plan, rules, floats)
        # the per-node loops index rows one at a time: plain tuples serve them fastest
        return cls(plan.ops, plan.attrs, tuple(plan.ins.tuples()), plan.shapes, plan.ids,
                   tuple(plan.batched.tolist()), rules, plan.out, slots, elements,
                   all(shape == () for _, _, _, shape in slots),
                   steps, floats, _float_vjps(plan, steps), _element_counts(plan))

    def workspace(self, size: int) -> Workspace:
        """Storage for the batched gates' values over `size` points."""
        return Workspace(self.slots, self.slot_elements, size, len(self.ops),
                         self.scalar_slots)

    def rule_for_points(self, i: int) -> Batched:
        """Node i's rule with every input batched."""
        rule = self.all_batched.get(i)
        if rule is None:
            arity = len(self.ins[i])
            rule = batching(self.ops[i], (True,) * arity, [self.shapes[j] for j in self.ins[i]],
                            self.attrs[i], self.ids[i])
            self.all_batched[i] = rule
        return rule


def _slots(plan: Plan) -> tuple[tuple[tuple[int, int, int, Shape], ...], int]:
    slots = []
    offset = 0
    for i, op in enumerate(plan.ops):
        if plan.batched[i] and not op.is_source:
            size = math.prod(plan.shapes[i])
            slots.append((i, offset, size, plan.shapes[i]))
            offset += size
    return tuple(slots), offset


def _float_vjps(plan: Plan, steps) -> dict[int, object]:
    vjps = {}
    for i, kind, _, attrs, _ in steps:
        if kind == FLOAT:
            vjp = plan.ops[i].scalar.vjp
            vjps[i] = partial(vjp, **attrs) if attrs else vjp
    return vjps


def _element_counts(plan: Plan) -> tuple[int, int, int]:
    """(largest per-point value or temporary of a batched node, batched elements per point,
    shared elements): what B points need, for check_batch_size's quick test."""
    sizes = [math.prod(shape) for shape in plan.shapes]
    batched = [n for n, b in zip(sizes, plan.batched, strict=True) if b]
    work = [op.work_size([plan.shapes[j] for j in plan.ins[i]], plan.attrs[i])
            for i, op in enumerate(plan.ops) if plan.batched[i] and op.work_size is not None]
    return (max(batched + work, default=0), sum(batched),
            sum(n for n, b in zip(sizes, plan.batched, strict=True) if not b))


def _float_nodes(plan: Plan) -> frozenset[int]:
    """The shared 0-d nodes held as Python floats: sources, and gates with float kernels whose
    inputs are all floats (in topological order, so inputs are decided first)."""
    floats: set[int] = set()
    for i, op in enumerate(plan.ops):
        if plan.batched[i] or plan.shapes[i] != ():
            continue
        if op.is_source or (op.scalar is not None and all(j in floats for j in plan.ins[i])):
            floats.add(i)
    return frozenset(floats)


# The kinds of forward step: a float kernel, the row's numpy forward, a batching rule.
FLOAT, SHARED, BATCHED = 0, 1, 2


def _steps(plan: Plan, rules, floats: frozenset[int]) -> tuple[tuple, ...]:
    """Each gate's forward as (node, kind, callable, attrs, input positions)."""
    steps = []
    for i, op in enumerate(plan.ops):
        if op.is_source:
            continue
        ins, attrs = plan.ins[i], plan.attrs[i]
        rule = rules[i]
        if rule is not None:
            steps.append((i, BATCHED, rule.forward, rule.attrs, ins))
        elif i in floats:
            kernels = op.scalar
            kernel = kernels.pairwise if len(ins) == 2 and kernels.pairwise else kernels.forward
            steps.append((i, FLOAT, partial(kernel, **attrs) if attrs else kernel, attrs, ins))
        else:
            steps.append((i, SHARED, op.forward, attrs, ins))
    return tuple(steps)


def _rules(plan: Plan) -> tuple[Batched | None, ...]:
    """Each batched gate's rule for its mix of batched and shared inputs (None elsewhere)."""
    rules: list[Batched | None] = []
    for i, op in enumerate(plan.ops):
        if op.is_source or not plan.batched[i]:
            rules.append(None)
            continue
        ins = plan.ins[i]
        operand_flags = tuple(bool(plan.batched[j]) for j in ins)
        rules.append(batching(op, operand_flags, [plan.shapes[j] for j in ins], plan.attrs[i],
                              plan.ids[i]))
    return tuple(rules)


class BatchedExecutor(Executor):
    name = "batched"
    gives_floats = False

    def prepare(self, plan: Plan) -> BatchSteps:
        return BatchSteps.of(plan)

    def forward(
        self, state: BatchSteps, sources: Mapping[int, np.ndarray], deadline: Deadline,
        workspace: Workspace | None = None,
    ) -> list:
        """Every node's value; batched gates' in `workspace` when one is given."""
        values: list = [None] * len(state.ops)
        for i, value in sources.items():
            values[i] = float(value) if i in state.floats else value
        slots = workspace.views if workspace is not None else None
        for count, (i, kind, call, attrs, ins) in enumerate(state.steps):
            if kind == BATCHED or not count % DEADLINE_STRIDE:  # a batched gate may take long
                check_deadline(deadline)
            xs = [values[j] for j in ins]
            if kind == FLOAT:
                try:
                    values[i] = call(*xs)
                except FLOAT_FAULTS:  # inf or nan on the way: numpy's rule says what it is
                    values[i] = float(state.ops[i].forward(*map(np.float64, xs), **attrs))
                continue
            out = call(*xs, **attrs)
            if kind == BATCHED:
                rule = state.rules[i]
                if rule.out_axis != 0:
                    out = np.moveaxis(out, rule.out_axis, 0)
                if slots is not None:
                    np.copyto(slots[i], out)
                    out = slots[i]
            values[i] = out
        return values

    def backward(
        self, state: BatchSteps, values: list, seed: np.ndarray, needed: Sequence[bool],
        deadline: Deadline, *, per_point: bool = False, keep: Collection[int] | None = None,
    ) -> list:
        """Gradients in reverse topological order, summed at forks; None where none flowed.

        `seed` is the output's gradient as the pass takes it: with the batch axis when the
        output is batched or the pass is `per_point`, else without. With `keep`, a gradient
        outside it is dropped once its node has passed it on, so that its memory goes back to
        the allocator for the next one (the live gradients are the pass's frontier, not B x
        nodes floats).
        """
        needed = flags(needed)
        grads: list = [None] * len(values)
        grads[state.out] = seed
        size = np.shape(seed)[0] if per_point else None
        kept = None if keep is None else frozenset(keep)
        for i in range(len(values) - 1, -1, -1):
            g = grads[i]
            if g is None or not needed[i] or state.ops[i].is_source:
                continue
            check_deadline(deadline)
            float_vjp = None if per_point else state.float_vjps.get(i)
            if float_vjp is not None:  # floats in, floats out: nothing to unbroadcast
                local = _float_vjp(state, i, float_vjp, g, values)
            elif per_point:
                local = _vjp_per_point(state, i, g, values, needed, size)
            else:
                local = _vjp_summed(state, i, g, values, needed)
            if kept is not None and i not in kept:
                grads[i] = None
            for j, contribution in zip(state.ins[i], local, strict=True):
                if contribution is None or not needed[j]:
                    continue
                grads[j] = contribution if grads[j] is None else grads[j] + contribution
        return grads


def _needs(state: BatchSteps, i: int, needed: Sequence[bool]) -> tuple[bool, ...]:
    return tuple(needed[j] for j in state.ins[i])


def _call_vjp(state: BatchSteps, i: int, vjp, takes_needs: bool, g, out, xs, attrs, needed):
    if takes_needs:  # only those rows read which inputs need a gradient
        return vjp(g, out, *xs, needs=_needs(state, i, needed), **attrs)
    return vjp(g, out, *xs, **attrs)


def _vjp_summed(state: BatchSteps, i: int, g, values: list, needed) -> list:
    """Node i's contributions: per point into batched inputs, summed into shared ones."""
    ins, shapes, batched = state.ins[i], state.shapes, state.batched
    xs = [values[j] for j in ins]
    rule = state.rules[i]
    if rule is None:  # a shared gate: everything here is one point's
        op = state.ops[i]
        local = _call_vjp(state, i, op.vjp, op.vjp_takes_needs, g, values[i], xs,
                          state.attrs[i], needed)
        return [None if c is None else unbroadcast(c, shapes[j])
                for j, c in zip(ins, local, strict=True)]
    out = values[i]
    if rule.out_axis != 0:
        g, out = _at_out_axis(rule, g, out)
    local = _call_vjp(state, i, rule.vjp, rule.vjp_takes_needs, g, out, xs, rule.attrs, needed)
    return [
        None if c is None
        else _per_point(c, shapes[j]) if batched[j] else unbroadcast(c, shapes[j])
        for j, c in zip(ins, local, strict=True)
    ]


def _float_vjp(state: BatchSteps, i: int, vjp, g, values: list):
    """A float gate's vjp by its float kernel, or on inf and nan by the row's numpy rule."""
    xs = [values[j] for j in state.ins[i]]
    try:
        return vjp(g, values[i], *xs)
    except FLOAT_FAULTS:
        return state.ops[i].vjp(g, values[i], *map(np.float64, xs), **state.attrs[i])


def _per_point(contribution, shape: Shape):
    """A batched input's contribution at its point shape (most already are)."""
    if (type(contribution) is np.ndarray and contribution.ndim == len(shape) + 1
            and contribution.shape[1:] == shape):
        return contribution
    return unbroadcast_points(contribution, shape)


def _vjp_per_point(state: BatchSteps, i: int, g, values: list, needed, size: int) -> list:
    """Node i's contributions, every one per point: shared operands ride along the batch axis."""
    ins, shapes, batched = state.ins[i], state.shapes, state.batched
    all_in = all(batched[j] for j in ins)
    rule = state.rules[i] if all_in and state.rules[i] is not None else state.rule_for_points(i)
    xs = [values[j] if batched[j] else _along(values[j], size) for j in ins]
    out = values[i] if batched[i] else _along(values[i], size)
    g, out = _at_out_axis(rule, g, out)
    local = _call_vjp(state, i, rule.vjp, rule.vjp_takes_needs, g, out, xs, rule.attrs, needed)
    return [None if c is None else unbroadcast_points(c, shapes[j])
            for j, c in zip(ins, local, strict=True)]


def _along(value, size: int) -> np.ndarray:
    """A shared value seen at every point (a view)."""
    value = np.asarray(value)
    return np.broadcast_to(value, (size, *value.shape))


def _at_out_axis(rule: Batched, g, out):
    if rule.out_axis == 0:
        return g, out
    return np.moveaxis(g, 0, rule.out_axis), np.moveaxis(out, 0, rule.out_axis)
