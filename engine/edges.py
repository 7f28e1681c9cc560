"""The gradient that flows back along each wire: per-edge shares of a node's gradient.

A node's gradient is the sum over its consumers of what each one sends back to it through
its vector-Jacobian rule. `edge_gradients` gives those terms one by one, keyed by the wire's
(consumer id, input position), so that a drawing can put each share on its own wire; the
shares of a node add up to its gradient. They come from the op table's vjp rules, as the
backward pass computes them.
"""

from __future__ import annotations

import numpy as np

from engine.ops import unbroadcast
from engine.plan import Plan
from engine.result import RunResult, plain

Edge = tuple[str, int]


def edge_gradients(plan: Plan, result: RunResult) -> dict[Edge, object]:
    """For each wire (consumer, input position), the gradient that flows back along it.

    `result` is a backward run of `plan` that reports every node (no `wrt`). 0-d shares are
    floats, others float64 arrays of the input's shape; a wire the output does not depend on
    carries zeros.
    """
    values, grads = result.values, result.grads
    if grads is None or len(result.order) != len(plan.ids):
        raise ValueError("edge gradients need a backward run that reports every node")
    shares: dict[Edge, object] = {}
    with np.errstate(all="ignore"):
        for i, name in enumerate(plan.ids):
            op = plan.ops[i]
            if op.is_source:
                continue
            inputs = [plan.ids[j] for j in plan.ins[i]]
            xs = [np.asarray(values[j], dtype=np.float64) for j in inputs]
            for position, share in enumerate(_vjp(plan, i, grads[name], values[name], xs)):
                shape = plan.shapes[plan.ins[i][position]]
                share = np.zeros(shape) if share is None else unbroadcast(share, shape)
                shares[(name, position)] = plain(share)
    return shares


def _vjp(plan: Plan, i: int, g, out, xs: list[np.ndarray]):
    op, attrs = plan.ops[i], plan.attrs[i]
    g, out = np.asarray(g, dtype=np.float64), np.asarray(out, dtype=np.float64)
    if op.vjp_takes_needs:
        return op.vjp(g, out, *xs, needs=(True,) * len(xs), **attrs)
    return op.vjp(g, out, *xs, **attrs)
