"""SGD, Adam and the lr schedules against torch.optim in float64, update by update.

Both sides get the same gradients (the engine's, of a small graph at the current params), so
any difference is the optimiser's own arithmetic. SGD matches torch bit for bit. Adam matches
bit for bit once torch's `Tensor.sqrt` is the correctly rounded one: torch's CPU build takes
its float64 sqrt from MKL, which is 1 ulp off for about 1% of arguments; against that sqrt
Adam agrees to 1e-15 relative.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from engine import bind_sources, compile_plan
from engine.optim import (
    SGD,
    Adam,
    BadOptimizerSetting,
    Schedule,
    fused_multiply_add,
    make_optimizer,
)
from tests.engine.graphs import graph, node

STEPS = 8


def small_graph():
    """f = sum(tanh(w * x)) + (a * b - 1)^2 + a^2 b with a vector param w and scalars a, b."""
    return graph(
        node("w", "input", value=[0.5, -1.2, 2.0]), node("x", "const", value=[1.5, 0.3, -0.7]),
        node("a", "input", value=1.3), node("b", "input", value=-0.4),
        node("wx", "mul", ["w", "x"]), node("t", "tanh", ["wx"]), node("s", "sum", ["t"]),
        node("ab", "mul", ["a", "b"]), node("d", "add_const", ["ab"], c=-1.0),
        node("d2", "pow", ["d"], exponent=2.0), node("aa", "mul", ["a", "a", "b"]),
        node("f", "add", ["s", "d2", "aa"]), output="f",
    )


PARAMS = ("w", "a", "b")


class Gradients:
    """The small graph's gradient with respect to PARAMS at given values."""

    def __init__(self):
        g = small_graph()
        self.sources = bind_sources(g)
        self.plan = compile_plan(g, {k: v.shape for k, v in self.sources.items()})

    def start(self) -> dict[str, np.ndarray]:
        return {name: self.sources[name].copy() for name in PARAMS}

    def __call__(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.plan.run({**self.sources, **params}, wrt=list(PARAMS))
        return {name: np.asarray(result.grads[name], dtype=np.float64) for name in PARAMS}


def run_ours(optimizer, *, maximize=False, lrs=None):
    gradients = Gradients()
    params = gradients.start()
    state = optimizer.init(params)
    for k in range(STEPS):
        grads = gradients(params)
        if maximize:
            grads = {name: -g for name, g in grads.items()}
        lr = optimizer.lr if lrs is None else lrs[k]
        params, state = optimizer.update(grads, state, params, lr)
    return params


def run_torch(make, *, maximize=False, lrs=None):
    """torch.optim on the same values, fed the engine's gradients at torch's own params."""
    gradients = Gradients()
    tensors = {name: torch.tensor(v, dtype=torch.float64) for name, v in gradients.start().items()}
    optimizer = make(list(tensors.values()), maximize=maximize, foreach=False)
    for k in range(STEPS):
        grads = gradients({name: t.numpy().copy() for name, t in tensors.items()})
        for name, t in tensors.items():
            t.grad = torch.tensor(grads[name], dtype=torch.float64)
        if lrs is not None:
            optimizer.param_groups[0]["lr"] = lrs[k]
        optimizer.step()
    return {name: t.numpy() for name, t in tensors.items()}


def assert_bitwise(ours, theirs):
    for name in PARAMS:
        np.testing.assert_array_equal(np.asarray(ours[name]), theirs[name], err_msg=name)


@pytest.fixture
def correctly_rounded_sqrt(monkeypatch):
    """torch's Tensor.sqrt replaced by numpy's (IEEE, correctly rounded) for this test."""
    monkeypatch.setattr(torch.Tensor, "sqrt",
                        lambda self: torch.from_numpy(np.asarray(np.sqrt(self.detach().numpy()))))


# ---------------------------------------------------------------- fused multiply-add


def exact_fma(a: float, b: float, c: float) -> float:
    return float(Fraction(a) * Fraction(b) + Fraction(c))


@pytest.mark.parametrize("scale", [1.0, 1e-9, 1e9])
def test_fused_multiply_add_rounds_once(scale):
    rng = np.random.default_rng(3)
    a, b, c = rng.standard_normal((3, 3000))
    b *= scale
    # near-cancelling sums are where one rounding and two differ most
    c[::2] = -(a[::2] * b[::2]) * (1 + 1e-15 * rng.standard_normal(1500))
    expected = [exact_fma(x, y, z) for x, y, z in zip(a, b, c, strict=True)]
    np.testing.assert_array_equal(fused_multiply_add(a, b, c), expected)
    assert not np.array_equal(a * b + c, expected)  # the cases do tell the two apart


def test_fused_multiply_add_passes_nonfinite_through():
    got = fused_multiply_add(np.array([1e308, np.inf, np.nan, 2.0]), 10.0, 1.0)
    np.testing.assert_array_equal(got, [np.inf, np.inf, np.nan, 21.0])
    assert fused_multiply_add(3.0, 2.0, 1.0) == 7.0


def test_fused_multiply_add_is_torchs_kernel():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((2, 2000))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    np.testing.assert_array_equal(tx.add(ty, alpha=-0.0123).numpy(),
                                  fused_multiply_add(-0.0123, y, x))
    np.testing.assert_array_equal(tx.addcmul(ty, ty, value=0.001).numpy(),
                                  fused_multiply_add(0.001 * y, y, x))


# ---------------------------------------------------------------- SGD

SGD_CASES = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "nesterov": True},
    {"weight_decay": 0.1},
    {"momentum": 0.5, "nesterov": True, "weight_decay": 0.03},
]


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("settings", SGD_CASES)
def test_sgd_is_torchs_bit_for_bit(settings, maximize):
    ours = run_ours(SGD(lr=0.05, **settings), maximize=maximize)
    theirs = run_torch(lambda p, **kw: torch.optim.SGD(p, lr=0.05, **settings, **kw),
                       maximize=maximize)
    assert_bitwise(ours, theirs)


def test_sgd_momentum_buffer_starts_at_the_first_gradient():
    gradients = Gradients()
    params = gradients.start()
    optimizer = SGD(lr=0.1, momentum=0.9)
    grads = gradients(params)
    new, state = optimizer.update(grads, optimizer.init(params), params, 0.1)
    for name in PARAMS:
        np.testing.assert_array_equal(state.momentum_buffers[name], grads[name])
        np.testing.assert_array_equal(new[name], fused_multiply_add(-0.1, grads[name],
                                                                    params[name]))


# ---------------------------------------------------------------- Adam

ADAM_CASES = [
    {},
    {"betas": (0.8, 0.99)},
    {"betas": (0.3, 0.5)},  # 1 - beta1 >= 0.5: torch's lerp from the other end
    {"eps": 1e-3},
    {"weight_decay": 0.1},
    {"betas": (0.95, 0.9), "eps": 1e-6, "weight_decay": 0.02},
]


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("settings", ADAM_CASES)
def test_adam_is_torchs_bit_for_bit(settings, maximize, correctly_rounded_sqrt):
    ours = run_ours(Adam(lr=0.05, **settings), maximize=maximize)
    theirs = run_torch(lambda p, **kw: torch.optim.Adam(p, lr=0.05, **settings, **kw),
                       maximize=maximize)
    assert_bitwise(ours, theirs)


@pytest.mark.parametrize("settings", ADAM_CASES)
def test_adam_is_torchs_with_mkl_sqrt_to_1e_15(settings):
    ours = run_ours(Adam(lr=0.05, **settings))
    theirs = run_torch(lambda p, **kw: torch.optim.Adam(p, lr=0.05, **settings, **kw))
    for name in PARAMS:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-15, atol=0, err_msg=name)


# ---------------------------------------------------------------- schedules


SCHEDULED = [
    (SGD(lr=0.05, momentum=0.9), lambda p, **kw: torch.optim.SGD(p, lr=0.05, momentum=0.9, **kw)),
    (Adam(lr=0.05), lambda p, **kw: torch.optim.Adam(p, lr=0.05, **kw)),
]


@pytest.mark.parametrize("schedule", [Schedule("linear", 0.1), Schedule("cosine", 0.0),
                                      Schedule("cosine", 0.2), Schedule("constant")])
@pytest.mark.parametrize(("optimizer", "make"), SCHEDULED, ids=["sgd", "adam"])
def test_scheduled_updates_are_torchs(schedule, optimizer, make, correctly_rounded_sqrt):
    lrs = [schedule.lr_at(0.05, k, STEPS) for k in range(STEPS)]
    assert_bitwise(run_ours(optimizer, lrs=lrs), run_torch(make, lrs=lrs))


def torch_schedule(schedule: Schedule, lr: float, steps: int):
    param = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=lr)
    if schedule.name == "linear":
        return optimizer, torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1.0, end_factor=schedule.end, total_iters=steps)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=steps, eta_min=lr * schedule.end)


@pytest.mark.parametrize("schedule", [Schedule("linear", 0.1), Schedule("linear", 0.0),
                                      Schedule("linear", 1.0), Schedule("cosine", 0.0),
                                      Schedule("cosine", 0.1)])
def test_schedules_are_torchs_closed_forms_bit_for_bit(schedule):
    steps = 50
    _, scheduler = torch_schedule(schedule, 0.3, steps)
    for k in range(steps):
        scheduler.last_epoch = k
        assert schedule.lr_at(0.3, k, steps) == scheduler._get_closed_form_lr()[0]


@pytest.mark.parametrize("schedule", [Schedule("linear", 0.1), Schedule("linear", 0.0),
                                      Schedule("cosine", 0.0), Schedule("cosine", 0.1)])
def test_schedules_follow_torchs_stepped_schedulers(schedule):
    """torch's scheduler steps multiply factors together, so it drifts from the closed form
    by a few ulps over the run."""
    steps = 100
    optimizer, scheduler = torch_schedule(schedule, 0.3, steps)
    for k in range(steps):
        ours = schedule.lr_at(0.3, k, steps)
        assert ours == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-13, abs=1e-300)
        optimizer.step()
        scheduler.step()


def test_linear_schedule_is_micrographs_demo_decay():
    schedule = Schedule("linear", 0.1)
    assert [schedule.lr_at(1.0, k, 100) for k in range(100)] == [
        1.0 - 0.9 * k / 100 for k in range(100)]


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(("make", "field"), [
    (lambda: SGD(lr=0.0), "lr"),
    (lambda: SGD(lr=-1.0), "lr"),
    (lambda: Adam(lr=float("nan")), "lr"),
    (lambda: SGD(lr=0.1, nesterov=True), "nesterov"),
    (lambda: SGD(lr=0.1, momentum=-0.5), "momentum"),
    (lambda: Adam(lr=0.1, betas=(0.9, 1.0)), "betas"),
    (lambda: Adam(lr=0.1, eps=-1.0), "eps"),
    (lambda: Adam(lr=0.1, weight_decay=-1.0), "weight_decay"),
    (lambda: make_optimizer("rmsprop", lr=0.1), "name"),
    (lambda: Schedule("step"), "name"),
    (lambda: Schedule("linear", -0.5), "end"),
    (lambda: Schedule("cosine", 1.5), "end"),
])
def test_bad_settings_name_their_field(make, field):
    with pytest.raises(BadOptimizerSetting) as caught:
        make()
    assert caught.value.code == "validation_error"
    assert field in caught.value.details


def test_make_optimizer_reads_wire_settings():
    assert make_optimizer("adam", lr=0.01, betas=[0.8, 0.9]) == Adam(lr=0.01, betas=(0.8, 0.9))
    assert make_optimizer("sgd", lr=0.5, momentum=0.9) == SGD(lr=0.5, momentum=0.9)
