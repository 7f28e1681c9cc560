"""The optimisation loop: a compiled plan's scalar output driven down (or up) by SGD or Adam.

One plan and one binding serve every step. The params live in one flat float64 vector
(`ParamVector`) whose slices are the params' source values, so an update in place is all a
step changes. What is optimised is an `Objective`: a callable answering the value and the flat
gradient at the current params for update number k. `PlanObjective` is the plain one (the
plan's output); `DataSetObjective` is the mean of a batched plan's output over a data set,
all of it at every step or mini-batches drawn in the order `minibatches` gives.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Protocol

import numpy as np

from engine.errors import (
    DeadlineExceeded,
    GraphError,
    MissingInput,
    ShapeMismatch,
    quoted_with_article,
)
from engine.optim import CONSTANT, Optimizer, Schedule

MAX_TRAJECTORY = 10_000
GOALS = ("minimize", "maximize")

TrajectoryEntry = dict  # {"step": k, "value": float, "grad_norm": float}


class BadParams(GraphError):
    """params naming a node that is not an input (a gate, or no node at all), or one node
    twice: a field error, naming the field in details and the node."""

    code = "validation_error"


@dataclass(frozen=True)
class StopRule:
    """Ends a run early; tested before each update at the current params."""

    grad_norm_below: float | None = None
    value_below: float | None = None
    value_above: float | None = None

    def reason(self, value: float, grad_norm: float) -> str | None:
        if self.grad_norm_below is not None and grad_norm < self.grad_norm_below:
            return "grad_norm"
        if self.value_below is not None and value < self.value_below:
            return "value"
        if self.value_above is not None and value > self.value_above:
            return "value"
        return None


NO_STOP = StopRule()


@dataclass
class OptimizeResult:
    """Where a run ended: params (0-d as floats), the output there, updates done, and why."""

    params: dict[str, object]
    value: float
    steps: int
    stopped: str
    trajectory: list[TrajectoryEntry] = field(default_factory=list)


class Objective(Protocol):
    def __call__(self, step: int) -> tuple[float, np.ndarray]:
        """The value and flat gradient at the current params, before update number `step`."""


# ---------------------------------------------------------------- params and the plan


class ParamVector:
    """The params as one flat float64 vector; `views` holds each param's value as a view of it."""

    def __init__(self, sources: Mapping[str, np.ndarray], names: Sequence[str]):
        self.names = list(names)
        self.shapes = [np.shape(sources[name]) for name in self.names]
        sizes = [math.prod(shape) for shape in self.shapes]
        bounds = np.cumsum([0, *sizes])
        self.flat = np.concatenate(
            [np.ravel(np.asarray(sources[name], dtype=np.float64)) for name in self.names]
        ) if self.names else np.zeros(0)
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.views = {name: self.flat[s].reshape(shape)
                      for name, s, shape in zip(self.names, self.slices, self.shapes, strict=True)}
        self._all_scalar = all(shape == () for shape in self.shapes)

    def gather(self, grads: Sequence[object]) -> np.ndarray:
        """The params' gradients (listed in the order of `names`) as one flat vector."""
        if self._all_scalar:
            return np.array(grads, dtype=np.float64)
        return np.concatenate([np.ravel(g) for g in grads])

    def values(self) -> dict[str, object]:
        """A copy of the params: 0-d ones as Python floats."""
        return {name: float(view) if view.ndim == 0 else view.copy()
                for name, view in self.views.items()}


class PlanObjective:
    """The plan's output at the current params, with its gradient with respect to them."""

    def __init__(self, plan, sources: Mapping[str, np.ndarray], params: ParamVector,
                 deadline: float | None = None):
        self.plan = plan
        self.params = params
        self.sources = {**sources, **params.views}  # bound once: updates land in place
        self.deadline = deadline
        self._pick_params = None  # picks the params' gradients out of a run's grad_list

    def __call__(self, step: int) -> tuple[float, np.ndarray]:
        result = self.plan.run(self.sources, deadline=self.deadline)
        if self._pick_params is None:
            position = {name: i for i, name in enumerate(result.order)}
            self._pick_params = _picker([position[name] for name in self.params.names])
        return float(result.value), self.params.gather(self._pick_params(result.grad_list))


class DataSetObjective:
    """The mean over a data set's points of a batched plan's (per point scalar) output, with
    its gradient with respect to the params: every point at each step, or with `batch_size`
    below the number of points, the next mini-batch of `minibatches(n, batch_size,
    shuffle_seed)`. The params are shared inputs; `data` holds the batched ones (leading axis:
    the points)."""

    def __init__(self, plan, sources: Mapping[str, np.ndarray], params: ParamVector,
                 data: Mapping[str, np.ndarray], *, batch_size: int | None = None,
                 shuffle_seed: int = 0, deadline: float | None = None):
        self.plan = plan
        self.params = params
        self.shared = {name: value for name, value in sources.items() if name not in data}
        self.shared.update(params.views)  # bound once: updates land in place
        self.data = dict(data)
        points = len(next(iter(self.data.values())))
        self.order = (minibatches(points, batch_size, shuffle_seed)
                      if batch_size is not None and batch_size < points else None)
        self.deadline = deadline
        self._pick_params = None

    def __call__(self, step: int) -> tuple[float, np.ndarray]:
        data = self.data
        if self.order is not None:
            chosen = next(self.order)
            data = {name: values[chosen] for name, values in data.items()}
        result = self.plan.run({**self.shared, **data}, wrt=self.params.names, reduce="mean",
                               deadline=self.deadline)
        if self._pick_params is None:
            position = {name: i for i, name in enumerate(result.order)}
            self._pick_params = _picker([position[name] for name in self.params.names])
        return float(np.mean(result.value)), self.params.gather(self._pick_params(result.grad_list))


def _picker(positions: list[int]) -> Callable[[Sequence], tuple]:
    """Items at `positions` of a sequence, always as a tuple."""
    if len(positions) == 1:
        only = positions[0]
        return lambda items: (items[only],)
    return itemgetter(*positions)


def check_params(plan, params: Sequence[str]) -> None:
    """Raise unless the params are distinct input nodes (one at least) and the output is a
    scalar."""
    if not params:
        raise BadParams("params names no node; name the input nodes to optimise", None,
                        {"params": ["name at least one input node"]})
    seen = set()
    for name in params:
        if name in seen:
            message = f"params names '{name}' twice"
            raise BadParams(message, name, {"params": [message]})
        seen.add(name)
        if name not in plan.index:
            message = f"params names '{name}', which is not a node of the graph; " \
                      "only input nodes can be optimised"
            raise BadParams(message, name, {"params": [message]})
        if plan.op_of(name).name != "input":
            message = f"params names '{name}', {quoted_with_article(plan.op_of(name).name)} " \
                      "node; only input nodes can be optimised"
            raise BadParams(message, name, {"params": [message]})
    shape = plan.shape_of(plan.output)
    if shape != ():
        raise ShapeMismatch(
            f"the output '{plan.output}' has shape {list(shape)}; optimising needs a scalar",
            plan.output,
        )


def minibatches(n_points: int, batch_size: int, shuffle_seed: int = 0) -> Iterator[np.ndarray]:
    """The point indices of each update's mini-batch, endlessly: every epoch is the next
    permutation drawn from `default_rng(shuffle_seed)`, cut into consecutive slices of
    `batch_size` (the last one of an epoch shorter when batch_size does not divide n_points)."""
    if n_points < 1 or batch_size < 1:
        raise ValueError("n_points and batch_size must be >= 1")
    rng = np.random.default_rng(shuffle_seed)
    while True:
        order = rng.permutation(n_points)
        for start in range(0, n_points, batch_size):
            yield order[start : start + batch_size]


# ---------------------------------------------------------------- the trajectory


class Trajectory:
    """Entries at k = 0, every, 2 every, ... (at most MAX_TRAJECTORY - 1 of them) and one at
    the final step; each is handed to `on_record` as it is kept."""

    def __init__(self, every: int, on_record: Callable[[TrajectoryEntry], None] | None):
        if every < 1:
            raise ValueError("record_every must be >= 1")
        self.every = every
        self.on_record = on_record
        self.entries: list[TrajectoryEntry] = []

    def offer(self, k: int, value: float, grad_norm: float) -> None:
        if k % self.every == 0 and len(self.entries) < MAX_TRAJECTORY - 1:
            self._keep(k, value, grad_norm)

    def finish(self, k: int, value: float, grad_norm: float) -> None:
        if not self.entries or self.entries[-1]["step"] != k:
            self._keep(k, value, grad_norm)

    def _keep(self, k: int, value: float, grad_norm: float) -> None:
        entry = {"step": k, "value": value, "grad_norm": grad_norm}
        self.entries.append(entry)
        if self.on_record is not None:
            self.on_record(entry)


# ---------------------------------------------------------------- the loop


def optimize(
    plan,
    sources: Mapping[str, np.ndarray],
    params: Sequence[str],
    *,
    optimizer: Optimizer,
    steps: int,
    lr_schedule: Schedule = CONSTANT,
    goal: str = "minimize",
    stop: StopRule = NO_STOP,
    record_every: int = 1,
    deadline: float | None = None,
    objective: Callable[[ParamVector], Objective] | None = None,
    on_record: Callable[[TrajectoryEntry], None] | None = None,
) -> OptimizeResult:
    """Run up to `steps` updates of `params` (input ids) from their values in `sources`.

    `objective`, when given, builds the objective from the ParamVector (a data-set objective);
    by default it is the plan's output. Past `deadline` (time.monotonic) the run answers
    "deadline" with the last step it finished; a non-finite value, gradient or param answers
    "nonfinite" at the last finite step. Only a deadline that passes before the starting
    params are evaluated raises DeadlineExceeded: there is nothing to answer then.
    """
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {GOALS}")
    if steps < 0:
        raise ValueError("steps must be >= 0")
    check_params(plan, params)
    for name in params:
        if name not in sources:
            raise MissingInput(f"input node '{name}' has no value", name)
    vector = ParamVector(sources, params)
    evaluate = (objective(vector) if objective is not None
                else PlanObjective(plan, sources, vector, deadline))
    run = _Run(vector, optimizer, lr_schedule, steps, goal == "maximize", deadline)
    trajectory = Trajectory(record_every, on_record)
    stopped, k, value, grad_norm = run.loop(evaluate, stop, trajectory)
    trajectory.finish(k, value, grad_norm)
    return OptimizeResult(vector.values(), value, k, stopped, trajectory.entries)


class _Run:
    """The state of one run: the flat params, the optimiser state, the last finite point."""

    def __init__(self, vector: ParamVector, optimizer: Optimizer, schedule: Schedule,
                 steps: int, maximize: bool, deadline: float | None):
        self.theta = vector.flat
        self.previous = self.theta.copy()  # params before the last update, to step back to
        self.optimizer = optimizer
        self.schedule = schedule
        self.steps = steps
        self.maximize = maximize  # torch's maximize=True: the gradient negated first
        self.deadline = deadline

    def loop(self, evaluate: Objective, stop: StopRule, trajectory: Trajectory):
        """Evaluate, record, test the stop rule, update; answer (stopped, k, value, grad_norm)."""
        state = self.optimizer.init({"params": self.theta})
        last = None
        for k in range(self.steps + 1):
            try:
                value, grad = evaluate(k)
            except DeadlineExceeded:
                if last is None:
                    raise
                return self._step_back("deadline", last)
            with np.errstate(all="ignore"):  # a norm past float64 is inf: the loop stops on it
                grad_norm = math.sqrt(grad @ grad)
            if not self._finite(value, grad_norm):
                if last is None:
                    return "nonfinite", 0, value, grad_norm
                return self._step_back("nonfinite", last)
            last = (k, value, grad_norm)
            trajectory.offer(k, value, grad_norm)
            if k == self.steps:
                return "steps", k, value, grad_norm
            reason = stop.reason(value, grad_norm)
            if reason is not None:
                return reason, k, value, grad_norm
            if self.deadline is not None and time.monotonic() > self.deadline:
                return "deadline", k, value, grad_norm
            state = self._update(k, grad, state)
        raise AssertionError("unreachable: the loop returns at k == steps")

    def _finite(self, value: float, grad_norm: float) -> bool:
        # a gradient too large for its norm to be a float counts as non-finite too
        return math.isfinite(value) and math.isfinite(grad_norm) \
            and bool(np.isfinite(self.theta).all())

    def _update(self, k: int, grad: np.ndarray, state):
        lr = self.schedule.lr_at(self.optimizer.lr, k, self.steps)
        self.previous[...] = self.theta
        if self.maximize:
            grad = -grad
        new, state = self.optimizer.update({"params": grad}, state, {"params": self.theta}, lr)
        self.theta[...] = new["params"]
        return state

    def _step_back(self, stopped: str, last: tuple):
        """Back to the params of the last finite evaluation (one update before these)."""
        self.theta[...] = self.previous
        k, value, grad_norm = last
        return stopped, k, value, grad_norm
