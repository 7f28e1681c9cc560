"""Optimisers and learning-rate schedules for the optimisation loop, as pure functions on numpy.

An optimiser is a pair in the manner of optax: `init(params) -> state` and
`update(grads, state, params, lr) -> (new_params, new_state)`, over dicts of float64 arrays.
Each update is the arithmetic of `torch.optim.SGD` / `torch.optim.Adam` (their
`_single_tensor_*` paths) operation for operation. Torch's CPU kernels round `a + alpha * b`
(`add` with alpha), `lerp` and `addcmul` once, as a fused multiply-add; numpy has no such
ufunc, so `fused_multiply_add` computes it exactly from error-free transformations.

`update` answers new params rather than updates: torch adds `-lr * step` into the param in
that one fused rounding, which a separate "updates" array could not reproduce.
Gradients are those of the objective being minimised; the loop negates them for
`goal: maximize`, which is what torch's `maximize=True` does first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.errors import EngineError

Arrays = Mapping[str, np.ndarray]


class BadOptimizerSetting(EngineError):
    """An optimiser or schedule setting out of its range (HTTP 422 at the service)."""

    code = "validation_error"

    def __init__(self, field: str, message: str):
        super().__init__(message, None, {field: [message]})


# ---------------------------------------------------------------- a correctly rounded a * b + c

_SPLITTER = 134217729.0  # 2**27 + 1: splits a double into two 26-bit halves (Veltkamp)


def _split(a):
    """a as high + low, each half fitting 26 bits, so that products of halves are exact."""
    scaled = _SPLITTER * a
    high = scaled - (scaled - a)
    return high, a - high


def _two_product(a, b):
    """a * b as an unevaluated sum p + e, exactly (barring underflow and overflow)."""
    p = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    e = ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low
    return p, e


def _two_sum(a, b):
    """a + b as s + e exactly (Knuth's branch-free form)."""
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def _sum_rounded_to_odd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b rounded to odd: an exact sum as it is, else the neighbour whose last bit is odd."""
    s, error = _two_sum(a, b)
    if not error.any():
        return s
    inexact_even = (error != 0) & ((s.view(np.int64) & 1) == 0)
    # the exact sum lies on the error's side of s: the odd neighbour is the next one that way
    return np.where(inexact_even, np.nextafter(s, error * np.inf), s)


def fused_multiply_add(a, b, c) -> np.ndarray:
    """a * b + c with one rounding, elementwise (the FMA instruction torch's kernels use).

    Correctly rounded wherever no intermediate underflows or overflows; where the result is
    not finite it is the plain a * b + c.
    """
    b, c = np.broadcast_arrays(np.asarray(b, dtype=np.float64), np.asarray(c, dtype=np.float64))
    a = a if isinstance(a, float) else np.asarray(a, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.asarray(_fma(a, b, c), dtype=np.float64)


def _fma(a, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """fused_multiply_add for float64 operands under np.errstate(all="ignore"); `a` may be a
    Python float. Boldo and Melquiond's emulation: the exact product split in two, an exact
    sum, the low parts added with rounding to odd, then one rounding to nearest."""
    product, product_error = _two_product(a, b)
    high, low = _two_sum(c, product)
    fused = high + _sum_rounded_to_odd(low, product_error)
    if not np.isfinite(fused).all():
        plain = product + c
        fused = np.where(np.isfinite(plain) & np.isfinite(fused), fused, plain)
    return fused


def _add_scaled(x: np.ndarray, alpha: float, y: np.ndarray) -> np.ndarray:
    """torch's `x.add(y, alpha=alpha)`: x + alpha * y, fused (exact when alpha is 1)."""
    if alpha == 1.0:
        return x + y
    return _fma(alpha, y, x)


def _lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """torch's `start.lerp(end, weight)`: from the nearer end, so weight 1 lands on `end`."""
    if abs(weight) < 0.5:
        return _fma(weight, end - start, start)
    return _fma(weight - 1.0, end - start, end)


# ---------------------------------------------------------------- optimisers


def _require(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise BadOptimizerSetting(field, message)


@dataclass(frozen=True)
class SGDState:
    momentum_buffers: dict[str, np.ndarray | None]


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay;
    dampening is 0, as torch's default."""

    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self):
        _require(math.isfinite(self.lr) and self.lr > 0, "lr", "lr must be a number > 0")
        _require(0 <= self.momentum < math.inf, "momentum", "momentum must be >= 0")
        _require(0 <= self.weight_decay < math.inf, "weight_decay", "weight_decay must be >= 0")
        _require(not self.nesterov or self.momentum > 0, "nesterov",
                 "nesterov momentum needs a momentum > 0")

    def init(self, params: Arrays) -> SGDState:
        # torch starts the buffer at the first gradient, not at zero
        return SGDState({name: None for name in params})

    def update(self, grads: Arrays, state: SGDState, params: Arrays,
               lr: float) -> tuple[dict[str, np.ndarray], SGDState]:
        new_params, buffers = {}, {}
        with np.errstate(all="ignore"):  # non-finite values pass through; the loop stops on them
            for name, param in params.items():
                new_params[name], buffers[name] = self._step(
                    param, grads[name], state.momentum_buffers[name], lr)
        return new_params, SGDState(buffers)

    def _step(self, param, grad, buffer, lr):
        if self.weight_decay:
            grad = _add_scaled(grad, self.weight_decay, param)
        if self.momentum:
            buffer = np.array(grad) if buffer is None else buffer * self.momentum + grad
            grad = _add_scaled(grad, self.momentum, buffer) if self.nesterov else buffer
        return _add_scaled(param, -lr, grad), buffer


@dataclass(frozen=True)
class AdamState:
    step: int
    exp_avg: dict[str, np.ndarray]
    exp_avg_sq: dict[str, np.ndarray]


@dataclass(frozen=True)
class Adam:
    """Adam with L2 weight decay added to the gradient (torch.optim.Adam, not AdamW)."""

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self):
        _require(math.isfinite(self.lr) and self.lr > 0, "lr", "lr must be a number > 0")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
                 "betas must be two numbers in [0, 1)")
        _require(0 <= self.eps < math.inf, "eps", "eps must be >= 0")
        _require(0 <= self.weight_decay < math.inf, "weight_decay", "weight_decay must be >= 0")

    def init(self, params: Arrays) -> AdamState:
        zeros = {name: np.zeros_like(p, dtype=np.float64) for name, p in params.items()}
        return AdamState(0, zeros, dict(zeros))

    def update(self, grads: Arrays, state: AdamState, params: Arrays,
               lr: float) -> tuple[dict[str, np.ndarray], AdamState]:
        step = state.step + 1
        beta1, beta2 = self.betas
        # Python floats, in torch's order: these scalars decide the last bit of every param
        bias_correction1 = 1 - beta1 ** float(step)
        bias_correction2 = 1 - beta2 ** float(step)
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        new_params, exp_avg, exp_avg_sq = {}, {}, {}
        with np.errstate(all="ignore"):  # non-finite values pass through; the loop stops on them
            for name, param in params.items():
                grad = grads[name]
                if self.weight_decay:
                    grad = _add_scaled(grad, self.weight_decay, param)
                exp_avg[name] = _lerp(state.exp_avg[name], grad, 1 - beta1)
                exp_avg_sq[name] = _fma((1 - beta2) * grad, grad, state.exp_avg_sq[name] * beta2)
                denom = np.sqrt(exp_avg_sq[name]) / bias_correction2_sqrt + self.eps
                new_params[name] = param + (-step_size * exp_avg[name]) / denom
        return new_params, AdamState(step, exp_avg, exp_avg_sq)


Optimizer = SGD | Adam


def make_optimizer(name: str, **settings) -> Optimizer:
    """An optimiser by its wire name ("sgd" or "adam") and settings."""
    kinds = {"sgd": SGD, "adam": Adam}
    _require(name in kinds, "name", f"unknown optimizer '{name}' (known: sgd, adam)")
    if "betas" in settings:
        settings["betas"] = tuple(settings["betas"])
    return kinds[name](**settings)


# ---------------------------------------------------------------- learning-rate schedules


@dataclass(frozen=True)
class Schedule:
    """The learning rate of update k of `steps`, in the closed forms of torch's schedulers.

    constant: lr. linear: lr (1 + (end - 1) k / steps), LinearLR(start_factor=1,
    end_factor=end, total_iters=steps). cosine: eta_min + (lr - eta_min)(1 + cos(pi k / steps))
    / 2 with eta_min = lr end, CosineAnnealingLR(T_max=steps, eta_min=lr * end).
    """

    name: str = "constant"
    end: float = 0.0

    def __post_init__(self):
        _require(self.name in ("constant", "linear", "cosine"), "name",
                 f"unknown lr_schedule '{self.name}' (known: constant, linear, cosine)")
        # as torch's LinearLR: a decay from lr to lr * end
        _require(0 <= self.end <= 1, "end", "end must be a factor in [0, 1]")

    def lr_at(self, lr: float, k: int, steps: int) -> float:
        if self.name == "linear":
            return lr * (1.0 + (self.end - 1.0) * min(steps, k) / steps)
        if self.name == "cosine":
            eta_min = lr * self.end
            return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * k / steps)) / 2
        return lr


CONSTANT = Schedule()
