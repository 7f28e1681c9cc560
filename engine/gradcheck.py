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


@dataclass(frozen=True, slots=True)
class GradCheck:
    max_rel_error: float
    verdict: str
    analytic: np.ndarray
    numeric: np.ndarray

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
        return float(np.sum(weights * out))

    results = {}
    for name in check:
        x = np.array(sources[name], dtype=np.float64)
        numeric = np.empty_like(x)
        perturbed = {**sources, name: x}
        for k in np.ndindex(x.shape):
            original = x[k]
            x[k] = original + eps
            above = objective(perturbed)
            x[k] = original - eps
            below = objective(perturbed)
            x[k] = original
            numeric[k] = (above - below) / (2 * eps)
        a = np.asarray(analytic[name], dtype=np.float64)
        errors = relative_error(a, numeric)
        worst = float(np.max(errors)) if errors.size else 0.0
        if errors.size and np.isnan(errors).any():
            worst = float("nan")
        results[name] = GradCheck(worst, verdict(worst), a, numeric)
    return results
