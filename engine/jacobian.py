"""Full Jacobians: one backward pass over every one-hot seed at once.

The output's M = output.size one-hot seeds become a batch axis of length M, and one per-point
backward pass (engine/executors/batched.py) carries them all: d(output[m])/d(node) for every
m in one numpy call per gate. With a request batch of B points, each point's values are
repeated M times (point-major), so the pass runs over B * M seeds and J gains a leading B.
J of a node has shape output.shape + node.shape (after B).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.batch import batched_sources
from engine.collector import gc_paused
from engine.errors import TooLarge
from engine.executors import BATCHED
from engine.executors.batched import BatchSteps
from engine.numpy_limits import check_shape
from engine.plan import Plan
from engine.result import plain


@dataclass(frozen=True, slots=True)
class JacobianResult:
    """The output's value and, per requested node, its Jacobian (0-d ones as floats)."""

    output: str
    value: object
    jacobians: dict[str, object]


def jacobian(
    plan: Plan,
    sources: Mapping[str, np.ndarray],
    wrt: Sequence[str],
    *,
    deadline: float | None = None,
) -> JacobianResult:
    """d(output)/d(node) for each node of `wrt`, of shape output.shape + node.shape.

    On a batched plan every Jacobian has a leading batch axis. Raises UnknownNode for a `wrt`
    id that is not a node, TooLarge when the seeds times the nodes pass the plan's limits.
    """
    reported, needed = plan.needed_for(wrt)
    state = plan.state if plan.executor is BATCHED else BatchSteps.of(plan)
    out_shape = plan.shapes[plan.out]
    seeds = math.prod(out_shape)
    if plan.is_batched:
        values_in, points = batched_sources(plan, sources)
    else:
        values_in, points = plan.bound_sources(sources), 1
    _check_size(plan, points * seeds, needed)
    lead = (points,) if plan.is_batched else ()
    for i in reported:  # J's shape, and the seed axis the backward pass adds, fit numpy
        check_shape((*lead, *out_shape, *plan.shapes[i]), plan.ids[i])
    for i, shape in enumerate(plan.shapes):
        if needed[i]:
            check_shape((1, *shape), plan.ids[i])
    with np.errstate(all="ignore"), gc_paused():
        values = BATCHED.forward(state, values_in, deadline)
        repeated = _repeated(plan, values, seeds) if plan.is_batched else values
        one_hot = _one_hot_seeds(out_shape, points)
        grads = BATCHED.backward(state, repeated, one_hot, needed, deadline, per_point=True,
                                 keep=reported)
    jacobians = {}
    for i in reported:
        shape = (*lead, *out_shape, *plan.shapes[i])
        j = grads[i]
        jacobians[plan.ids[i]] = plain(np.zeros(shape) if j is None else np.reshape(j, shape))
    return JacobianResult(plan.output, plain(values[plan.out]), jacobians)


def _one_hot_seeds(out_shape: tuple[int, ...], points: int) -> np.ndarray:
    """Every one-hot seed of the output, point-major over `points` points."""
    seeds = math.prod(out_shape)
    eye = np.eye(seeds).reshape(seeds, *out_shape)
    if points == 1:
        return eye
    return np.broadcast_to(eye, (points, *eye.shape)).reshape(points * seeds, *out_shape)


def _repeated(plan: Plan, values: list, seeds: int) -> list:
    """Each batched value repeated once per seed (point-major); shared values as they are."""
    return [np.repeat(v, seeds, axis=0) if plan.batched[i] and v is not None else v
            for i, v in enumerate(values)]


def _check_size(plan: Plan, rows: int, needed: np.ndarray) -> None:
    """TooLarge, before anything is allocated, when the pass over `rows` seeds would pass the
    plan's limits: in all, or in one tensor (a node's per-seed gradients, which a reported
    node's J is, or a batched node's values repeated once per seed)."""
    limits = plan.limits
    sizes = [math.prod(shape) for shape in plan.shapes]
    if limits.max_total_elements is not None and rows * sum(sizes) > limits.max_total_elements:
        raise TooLarge(
            f"a Jacobian over {rows} seeds of a graph of {sum(sizes)} elements passes the limit "
            f"of {limits.max_total_elements} elements in all; ask for a smaller output or "
            "fewer points")
    limit = limits.max_elements
    if limit is None or rows * max(sizes, default=0) <= limit:
        return
    held = needed | plan.batched if plan.is_batched else needed
    for i in np.flatnonzero(held).tolist():
        if rows * sizes[i] > limit:
            name = plan.ids[i]
            raise TooLarge(
                f"node '{name}' would hold {rows * sizes[i]} elements over the Jacobian's "
                f"{rows} seeds; the limit is {limit}; ask for a smaller output or fewer points",
                name)
