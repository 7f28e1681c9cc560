"""The batched executor: one numpy call per gate over all B points of a batch.

A plan compiled with batched sources marks every node that depends on one as batched: its
value carries a leading axis of length B; the other nodes (weights, constants) are computed
once, as the tensor executor would. Each batched gate runs its op's batching rule (chosen when
the plan is compiled, engine/ops/batching.py), never a loop over points.

Batched values and gradients live in Workspaces lent by a pool (engine/executors/workspace.py)
when the caller passes them: the rules still compute into fresh arrays, which are short-lived
and so recycled by the allocator, while the B x nodes floats that a run keeps alive stay in
pages faulted in once.

Backward comes in two forms. Summed (`per_point` False): a batched node's gradient is per
point, a shared node's is summed over the points - the vjp of the batched function, and what
reduce sum / mean need. Per point (`per_point` True): every gradient carries the batch axis, a
shared node's too (reduce none, as vmap(grad) gives; and the Jacobian's one-hot seeds). There,
each gate runs its rule for all-batched inputs, shared operands broadcast along the batch axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.executors.base import Deadline, Executor, check_deadline, flags
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
    slots: dict[int, tuple[int, Shape]]  # batched gate -> (offset in points, point shape)
    slot_elements: int  # the slots' elements at one point
    all_batched: dict[int, Batched] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: Plan) -> BatchSteps:
        slots, elements = _slots(plan)
        # the per-node loops index rows one at a time: plain tuples serve them fastest
        return cls(plan.ops, plan.attrs, tuple(plan.ins.tuples()), plan.shapes, plan.ids,
                   tuple(plan.batched.tolist()), _rules(plan), plan.out, slots, elements)

    def workspace(self, size: int) -> Workspace:
        """Storage for the batched gates' values (or gradients) over `size` points."""
        return Workspace(self.slots, self.slot_elements, size)

    def rule_for_points(self, i: int) -> Batched:
        """Node i's rule with every input batched."""
        rule = self.all_batched.get(i)
        if rule is None:
            arity = len(self.ins[i])
            rule = batching(self.ops[i], (True,) * arity, [self.shapes[j] for j in self.ins[i]],
                            self.attrs[i], self.ids[i])
            self.all_batched[i] = rule
        return rule


def _slots(plan: Plan) -> tuple[dict[int, tuple[int, Shape]], int]:
    slots = {}
    offset = 0
    for i, op in enumerate(plan.ops):
        if plan.batched[i] and not op.is_source:
            slots[i] = (offset, plan.shapes[i])
            offset += math.prod(plan.shapes[i])
    return slots, offset


def _rules(plan: Plan) -> tuple[Batched | None, ...]:
    """Each batched gate's rule for its mix of batched and shared inputs (None elsewhere)."""
    rules: list[Batched | None] = []
    for i, op in enumerate(plan.ops):
        if op.is_source or not plan.batched[i]:
            rules.append(None)
            continue
        ins = plan.ins[i]
        flags = tuple(bool(plan.batched[j]) for j in ins)
        rules.append(batching(op, flags, [plan.shapes[j] for j in ins], plan.attrs[i],
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
        ops, attrs, ins, rules = state.ops, state.attrs, state.ins, state.rules
        values: list = [None] * len(ops)
        for i in range(len(ops)):
            check_deadline(deadline)
            if i in sources:
                values[i] = sources[i]
                continue
            xs = [values[j] for j in ins[i]]
            rule = rules[i]
            if rule is None:
                values[i] = ops[i].forward(*xs, **attrs[i])
            else:
                out = rule.forward(*xs, **rule.attrs)
                if rule.out_axis != 0:
                    out = np.moveaxis(out, rule.out_axis, 0)
                if workspace is not None:
                    slot = workspace.view(i)
                    np.copyto(slot, out)
                    out = slot
                values[i] = out
        return values

    def backward(
        self, state: BatchSteps, values: list, seed: np.ndarray, needed: Sequence[bool],
        deadline: Deadline, *, per_point: bool = False, workspace: Workspace | None = None,
    ) -> list:
        """Gradients in reverse topological order, summed at forks; None where none flowed.

        `seed` is the output's gradient as the pass takes it: with the batch axis when the
        output is batched or the pass is `per_point`, else without. Batched gates' gradients
        add up in `workspace` when one is given.
        """
        needed = flags(needed)
        grads: list = [None] * len(values)
        grads[state.out] = seed
        size = np.shape(seed)[0] if per_point else None
        for i in range(len(values) - 1, -1, -1):
            g = grads[i]
            if not needed[i] or g is None or state.ops[i].is_source:
                continue
            check_deadline(deadline)
            if per_point:
                local = _vjp_per_point(state, i, g, values, needed, size)
            else:
                local = _vjp_summed(state, i, g, values, needed)
            for j, contribution in zip(state.ins[i], local, strict=True):
                if contribution is None or not needed[j]:
                    continue
                slot = None if workspace is None or j == state.out else workspace.view(j)
                if slot is None:
                    grads[j] = contribution if grads[j] is None else grads[j] + contribution
                elif grads[j] is None:
                    np.copyto(slot, contribution)
                    grads[j] = slot
                else:
                    np.add(slot, contribution, out=slot)
        return grads


def _needs(state: BatchSteps, i: int, needed: Sequence[bool]) -> tuple[bool, ...]:
    return tuple(needed[j] for j in state.ins[i])


def _call_vjp(vjp, takes_needs: bool, g, out, xs, attrs, needs):
    if takes_needs:
        return vjp(g, out, *xs, needs=needs, **attrs)
    return vjp(g, out, *xs, **attrs)


def _vjp_summed(state: BatchSteps, i: int, g, values: list, needed) -> list:
    """Node i's contributions: per point into batched inputs, summed into shared ones."""
    ins, shapes, batched = state.ins[i], state.shapes, state.batched
    xs = [values[j] for j in ins]
    rule = state.rules[i]
    if rule is None:  # a shared gate: everything here is one point's
        op = state.ops[i]
        local = _call_vjp(op.vjp, op.vjp_takes_needs, g, values[i], xs, state.attrs[i],
                          _needs(state, i, needed))
        return [None if c is None else unbroadcast(c, shapes[j])
                for j, c in zip(ins, local, strict=True)]
    g, out = _at_out_axis(rule, g, values[i])
    local = _call_vjp(rule.vjp, rule.vjp_takes_needs, g, out, xs, rule.attrs,
                      _needs(state, i, needed))
    return [
        None if c is None
        else unbroadcast_points(c, shapes[j]) if batched[j] else unbroadcast(c, shapes[j])
        for j, c in zip(ins, local, strict=True)
    ]


def _vjp_per_point(state: BatchSteps, i: int, g, values: list, needed, size: int) -> list:
    """Node i's contributions, every one per point: shared operands ride along the batch axis."""
    ins, shapes, batched = state.ins[i], state.shapes, state.batched
    all_in = all(batched[j] for j in ins)
    rule = state.rules[i] if all_in and state.rules[i] is not None else state.rule_for_points(i)
    xs = [values[j] if batched[j] else _along(values[j], size) for j in ins]
    out = values[i] if batched[i] else _along(values[i], size)
    g, out = _at_out_axis(rule, g, out)
    local = _call_vjp(rule.vjp, rule.vjp_takes_needs, g, out, xs, rule.attrs,
                      _needs(state, i, needed))
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
