"""Gradient checking: the backward pass against centred finite differences of the forward pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.errors import UnknownNode
from engine.plan import Plan
from engine.sources import input_ids

# The backprop notes' thresholds on the relative error, best verdict first.
VERDICTS = ((1e-7, "good"), (1e-4, "ok"), (1e-2, "suspect"))
# One-sided slopes that differ by more than this (relative) mean the function has no derivative
# there. A smooth function's one-sided slopes differ by about eps times its second derivative,
# far below it unless the function bends sharply within eps.
KINK_SLOPE_GAP = 1e-2
# ... and at a kink they still differ by most of that with half the step.
KINK_GAP_KEPT = 0.75
KINKS_LISTED = 8


@dataclass(frozen=True, slots=True)
class GradCheck:
    max_rel_error: float
    verdict: str
    analytic: np.ndarray
    numeric: np.ndarray
    # why the verdict is poor, when the check can tell (a kink), else None
    details: dict | None = None

    @property
    def passed(self) -> bool:
        return self.verdict != "wrong"


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """|a - n| / max(|a|, |n|) elementwise, 0 where both are 0."""
    with np.errstate(all="ignore"):
        scale = np.maximum(np.abs(analytic), np.abs(numeric))
        return np.where(scale == 0, 0.0, np.abs(analytic - numeric) / scale)


def verdict(max_rel_error: float) -> str:
    for bound, name in VERDICTS:
        if max_rel_error < bound:
            return name
    return "wrong"  # NaN lands here too


def gradcheck(
    plan: Plan,
    sources: Mapping[str, np.ndarray],
    *,
    check: Sequence[str] | None = None,
    eps: float = 1e-5,
    seed: np.ndarray | None = None,
    deadline: float | None = None,
) -> dict[str, GradCheck]:
    """Compare d(seed . output)/d(input) from backward with (f(x+eps) - f(x-eps)) / 2eps."""
    variables = input_ids(plan.nodes)
    check = list(dict.fromkeys(check)) if check is not None else variables
    for name in check:
        if name not in variables:
            raise UnknownNode(f"check names '{name}', which is not an input node", name)
    analytic = plan.run(sources, seed=seed, wrt=check, deadline=deadline).grads
    weights = np.ones(plan.shape_of(plan.output)) if seed is None else np.asarray(seed)

    def objective(values: Mapping[str, np.ndarray]) -> float:
        out = plan.run(values, wrt=[plan.output], forward_only=True, deadline=deadline).value
        with np.errstate(all="ignore"):  # a huge seed or eps overflows: reported, not raised
            return float(np.sum(weights * out))

    with np.errstate(all="ignore"):  # overflow to inf, or nan, is reported, never raised
        centre = objective(sources)
        return {name: _check_input(name, sources, analytic[name], objective, centre, eps)
                for name in check}


def _check_input(name, sources, analytic, objective, centre: float, eps: float) -> GradCheck:
    """One input's check: centred differences element by element, kinks confirmed."""
    eps = np.float64(eps)  # numpy arithmetic: a subnormal eps halves to 0 without raising
    x = np.array(sources[name], dtype=np.float64)
    numeric = np.empty_like(x)
    # the one-sided slopes (f(x) - f(x - eps)) / eps and (f(x + eps) - f(x)) / eps
    left, right = np.empty_like(x), np.empty_like(x)
    at_kink = np.zeros(x.shape, dtype=bool)
    perturbed = {**sources, name: x}

    def shifted(k, step: float) -> float:
        return _objective_at(objective, perturbed, x, k, step)

    for k in np.ndindex(x.shape):
        above, below = shifted(k, eps), shifted(k, -eps)
        numeric[k] = (above - below) / (2 * eps)
        left[k], right[k] = (centre - below) / eps, (above - centre) / eps
        gap = _slope_gap(left[k], right[k])
        if gap > KINK_SLOPE_GAP:
            # a smooth function's gap halves with the step; a kink's stays
            half = eps / 2
            smaller = _slope_gap((centre - shifted(k, -half)) / half,
                                 (shifted(k, half) - centre) / half)
            at_kink[k] = smaller > KINK_GAP_KEPT * gap
    a = np.asarray(analytic, dtype=np.float64)
    errors = relative_error(a, numeric)
    worst = float(np.max(errors)) if errors.size else 0.0
    if errors.size and np.isnan(errors).any():
        worst = float("nan")
    return GradCheck(worst, verdict(worst), a, numeric, _kinks(at_kink, left, right, a))


def _objective_at(objective, values: Mapping[str, np.ndarray], x: np.ndarray, k, step: float):
    """The objective with element k of `x` (one of `values`) moved by `step`, then put back."""
    original = x[k]
    x[k] = original + step
    try:
        return objective(values)
    finally:
        x[k] = original


def _slope_gap(left: float, right: float) -> float:
    """How far two one-sided slopes differ, relative to their size (at least 1)."""
    with np.errstate(all="ignore"):
        gap = abs(left - right) / max(abs(left), abs(right), 1.0)
    return 0.0 if np.isnan(gap) else float(gap)


def _kinks(at_kink: np.ndarray, left: np.ndarray, right: np.ndarray, a: np.ndarray) -> dict | None:
    """Where the input sits at a point without a derivative, say so and where.

    At a kink (relu or abs at 0, a max with tied inputs) the centred difference averages two
    different slopes, while the backward pass follows the contract's convention there: the
    verdict, good or wrong, compares a convention with an average at those elements.
    """
    if not at_kink.any():
        return None
    found = np.argwhere(at_kink)
    kinks = [
        {"index": [int(i) for i in index], "left_slope": float(left[tuple(index)]),
         "right_slope": float(right[tuple(index)]), "analytic": float(a[tuple(index)])}
        for index in found[:KINKS_LISTED]
    ]
    return {
        "reason": (
            f"{len(found)} element(s) sit at a kink, where the function has no derivative: "
            "the one-sided slopes differ, the centred difference averages them, and the "
            "backward pass follows the convention (relu and abs: 0 at 0; max and min: ties "
            "split equally), so the verdict says nothing there. Move the input off the kink "
            "(by more than eps) to check the gradient."
        ),
        "kinks": kinks,
    }
