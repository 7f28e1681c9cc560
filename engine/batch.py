"""Running a batched plan: B points in one vectorised pass (CONTRACT section 5).

The batched inputs come with a leading axis of length B; every other source is shared. The
output's seed is one point's shape (used at every point) or that shape with the batch axis.
`reduce` decides what flows back into shared nodes: "none" keeps every gradient per point
(shared nodes' gradients gain the batch axis, as vmap(grad) gives), "sum" and "mean"
differentiate the sum or mean over points of seed . output (shared nodes get one gradient of
their own shape; batched nodes keep per-point ones, scaled by 1/B for mean).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from engine.collector import gc_paused
from engine.errors import MissingInput, ShapeMismatch, TooLarge
from engine.result import RunResult, plain

if TYPE_CHECKING:
    from engine.plan import Plan

REDUCES = ("none", "sum", "mean")


def run_batch(
    plan: Plan,
    sources: Mapping[str, np.ndarray],
    *,
    seed: np.ndarray | None,
    reported: list[int],
    needed: Sequence[bool],
    forward_only: bool,
    deadline: float | None,
    reduce: str,
) -> RunResult:
    """Forward (and unless `forward_only`, backward) of `plan` over every point at once."""
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be one of {REDUCES}, got {reduce!r}")
    values_in, size = batched_sources(plan, sources)
    per_point = reduce == "none"
    g = None if forward_only else output_gradient(plan, seed, size, reduce)
    executor, state = plan.executor, plan.state
    workspace = state.workspace(size)
    try:
        with np.errstate(all="ignore"), gc_paused():
            values = executor.forward(state, values_in, deadline, workspace)
            grads = None
            if g is not None:
                grads = executor.backward(state, values, g, needed, deadline,
                                          per_point=per_point, keep=reported)
            # what is reported leaves the workspace, which goes back to the pool
            return _result(plan, values, grads, reported, size, per_point)
    finally:
        workspace.release()


def batched_sources(plan: Plan, sources: Mapping[str, np.ndarray]) -> tuple[dict, int]:
    """Each source's value by position, and B; ShapeMismatch or TooLarge naming the node."""
    values: dict[int, np.ndarray] = {}
    size = None
    for i in plan.sources:
        name = plan.ids[i]
        if name not in sources:
            raise MissingInput(f"{plan.ops[i].name} node '{name}' has no value", name)
        value = np.asarray(sources[name], dtype=np.float64)
        point = plan.shapes[i]
        if plan.batched[i]:
            if value.ndim != len(point) + 1 or value.shape[1:] != point:
                raise ShapeMismatch(
                    f"batch['{name}'] has shape {list(value.shape)}; the plan takes "
                    f"[B, {', '.join(map(str, point))}]".replace(", ]", "]"), name)
            if value.shape[0] < 1:
                raise ShapeMismatch(f"batch['{name}'] holds no points; a batch needs one", name)
            if size is not None and value.shape[0] != size:
                raise ShapeMismatch(
                    f"batch['{name}'] holds {value.shape[0]} points, another batched input "
                    f"{size}: every batch array needs the same leading length", name)
            size = value.shape[0]
        elif value.shape != point:
            raise ShapeMismatch(
                f"node '{name}' has shape {list(value.shape)}, the plan was compiled for "
                f"{list(point)}", name)
        values[i] = value
    if size is None:
        raise ValueError("batched_sources needs a plan compiled with batched inputs")
    check_batch_size(plan, size)
    return values, size


def check_batch_size(plan: Plan, size: int) -> None:
    """TooLarge, before anything is allocated, when B points would pass the plan's limits."""
    limits = plan.limits
    largest, batched, shared = plan.state.element_counts
    if ((limits.max_elements is None or largest * size <= limits.max_elements)
            and (limits.max_total_elements is None
                 or batched * size + shared <= limits.max_total_elements)):
        return
    total = 0
    for i, shape in enumerate(plan.shapes):
        elements = math.prod(shape) * (size if plan.batched[i] else 1)
        total += elements
        name = plan.ids[i]
        if limits.max_elements is not None and elements > limits.max_elements:
            raise TooLarge(
                f"node '{name}' would hold {elements} elements over {size} points; the limit "
                f"is {limits.max_elements}", name)
        if limits.max_total_elements is not None and total > limits.max_total_elements:
            raise TooLarge(
                f"{size} points pass {limits.max_total_elements} elements in all at node "
                f"'{name}'", name)
        _check_batched_work(plan, i, size)


def _check_batched_work(plan: Plan, i: int, size: int) -> None:
    """An op's temporaries (Op.work_size, one point's) over B points, against the tensor limit."""
    op, limit = plan.ops[i], plan.limits.max_elements
    if op.work_size is None or limit is None or not plan.batched[i]:
        return
    work = op.work_size([plan.shapes[j] for j in plan.ins[i]], plan.attrs[i]) * size
    if work > limit:
        raise TooLarge(f"node '{plan.ids[i]}' would need a temporary of {work} elements over "
                       f"{size} points; the limit is {limit}", plan.ids[i])


def output_gradient(plan: Plan, seed: np.ndarray | None, size: int, reduce: str) -> np.ndarray:
    """The gradient the backward pass starts from, at the output.

    Per point (with the batch axis) when the output is batched or `reduce` is "none"; else
    (an output no batched input reaches, summed or averaged) one point's shape.
    """
    shape = plan.shapes[plan.out]
    seed = np.ones(shape) if seed is None else np.asarray(seed, dtype=np.float64)
    if seed.shape == shape:
        per_point_seed = False
    elif seed.shape == (size, *shape):
        per_point_seed = True
    else:
        raise ShapeMismatch(
            f"seed has shape {list(seed.shape)}; the output '{plan.output}' has shape "
            f"{list(shape)} at each point, {[size, *shape]} with the batch axis", plan.output)
    if reduce == "none" or plan.batched[plan.out]:
        g = seed if per_point_seed else np.broadcast_to(seed, (size, *shape))
        return g / size if reduce == "mean" else g
    total = seed.sum(axis=0) if per_point_seed else seed * size
    return total / size if reduce == "mean" else total


def _result(plan: Plan, values: list, grads: list | None, reported: list[int], size: int,
            per_point: bool) -> RunResult:
    """Copies of the reported nodes' arrays; a node no gradient reached gets zeros of its
    gradient's shape."""
    order = [plan.ids[i] for i in reported]
    value_list = [_owned(values[i]) for i in reported]
    grad_list = None
    if grads is not None:
        grad_list = [
            _owned(grads[i]) if grads[i] is not None
            else plain(np.zeros((size, *plan.shapes[i]) if per_point or plan.batched[i]
                                else plan.shapes[i]))
            for i in reported
        ]
    return RunResult(plan.output, _owned(values[plan.out]), order, value_list, grad_list)


def _owned(value):
    """A result value that shares no memory with a workspace."""
    value = plain(value)
    return value if type(value) is float else np.array(value)
