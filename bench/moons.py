"""The moons example's training against micrograd's own training loop.

examples/moons.py trains micrograd's demo network (2-16-16-1) on 100 two-moons points with
the demo's loss, 100 SGD steps, in one /v1/optimize call. Measured here, in this process:

- engine: `engine.optimize` over the example's loss graph (one point's loss, the 100 points a
  batch, the mean over them the objective), compiled once (the service caches the plan),
  100 steps;
- end to end: the example's SDK call (`cache: false`) to the real app served on a loopback
  socket: building the expression, serialising, parsing, loading, hashing, compiling, the
  100 steps, writing and reading the answer;
- micrograd: the demo's loop (forward over every point, zero_grad, backward, the update) from
  the same starting weights. It takes seconds a step, so it runs `--micrograd-steps` steps
  and its time is scaled to 100; the params after those steps are compared with chainrule's.

Run: `python -m bench.moons`. Target: chainrule end to end at most 0.05x micrograd.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np

import chainrule_client as cr
import engine
from bench.engine import best_of
from engine.optim import SGD, Schedule
from engine.optimize import DataSetObjective, optimize
from service import create_app
from service.pipeline import RequestLimits, load

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "moons.py"


def load_example():
    spec = importlib.util.spec_from_file_location("moons_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(app) -> tuple[str, callable]:
    """The app on a free loopback port in a thread; (its URL, a function that stops it)."""
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join()
        server.server_close()

    return f"http://127.0.0.1:{server.server_port}", stop


def engine_run(moons, points, labels):
    """The example's request as the service loads it (one point's loss, the points as a
    batch), its plan compiled once; a function running k updates of it with
    `engine.optimize`, the mean over the points as the objective."""
    model = moons.nn.MLP(2, [16, 16, 1], seed=moons.SEED)
    x1, x2, y = cr.input("x1"), cr.input("x2"), cr.input("y")
    loaded = load("optimize", {
        "graph": cr.to_graph(moons.svm_loss(model, x1, x2, y)),
        "params": [p.id for p in model.parameters()],
        "batch": {"x1": points[:, 0].tolist(), "x2": points[:, 1].tolist(),
                  "y": labels.tolist()},
        "optimizer": {"name": "sgd", "lr": 1.0}, "steps": moons.STEPS}, RequestLimits())
    request = loaded.request
    shapes = {name: value.shape[1:] if name in request.batch else value.shape
              for name, value in loaded.sources.items()}
    plan = engine.compile_plan(request.graph, shapes, batched=list(request.batch))
    data = {name: loaded.sources[name] for name in request.batch}
    # the example's schedule over its 100 steps, however many of them a run does
    schedule = _Truncated(Schedule("linear", 0.1), moons.STEPS)

    def run(steps: int = moons.STEPS):
        return optimize(plan, loaded.sources, request.params, optimizer=SGD(lr=1.0),
                        steps=steps, lr_schedule=schedule,
                        objective=lambda params: DataSetObjective(plan, loaded.sources, params,
                                                                  data))

    return model, run, len(plan.ids)


class _Truncated:
    """A schedule over `total` steps, for a run that stops before the total."""

    def __init__(self, schedule: Schedule, total: int):
        self.schedule, self.total = schedule, total

    def lr_at(self, lr: float, k: int, steps: int) -> float:
        return self.schedule.lr_at(lr, k, self.total)


def micrograd_training(model_weights, points, labels, steps):
    """micrograd's demo loop from the given starting weights; the params it ends with."""
    from micrograd.engine import Value
    from micrograd.nn import MLP

    model = MLP(2, [16, 16, 1])
    for p, w in zip(model.parameters(), model_weights, strict=True):
        p.data = w
    for k in range(steps):
        inputs = [list(map(Value, row)) for row in points.tolist()]
        scores = list(map(model, inputs))
        losses = [(1 + -y * s).relu() for y, s in zip(labels.tolist(), scores, strict=True)]
        data_loss = sum(losses) * (1.0 / len(losses))
        total = data_loss + 1e-4 * sum(p * p for p in model.parameters())
        model.zero_grad()
        total.backward()
        lr = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= lr * p.grad
    return [p.data for p in model.parameters()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--micrograd-steps", type=int, default=3)
    args = parser.parse_args()
    compare_with_micrograd(args.repeats, args.micrograd_steps)


def compare_with_micrograd(repeats: int = 3, micrograd_steps: int = 3) -> None:
    """Time and check the three runs; print the figures."""
    moons = load_example()
    points, labels = moons.two_moons()
    model, run, nodes = engine_run(moons, points, labels)
    start = [p.value for p in model.parameters()]

    t0 = time.perf_counter()
    theirs = micrograd_training(start, points, labels, micrograd_steps)
    t_micrograd = (time.perf_counter() - t0) * moons.STEPS / micrograd_steps
    ours = run(micrograd_steps).params
    worst = max(abs(ours[p.id] - w) / max(abs(w), 1e-12)
                for p, w in zip(model.parameters(), theirs, strict=True))

    t_engine = best_of(repeats, run)
    app = create_app({"REDIS_URL": None, "PROMETHEUS_MULTIPROC_DIR": None,
                      "COMPUTE_DEADLINE_SECONDS": 120.0})
    url, stop = serve(app)
    try:
        with cr.Client(url, timeout=300) as client:
            trained = moons.train(client, points, labels, cache=False)
            t_http = best_of(repeats, lambda: moons.train(client, points, labels,
                                                              cache=False))
    finally:
        stop()
    print(f"moons: 100 SGD steps of micrograd's demo network ({nodes}-node graph of one point's "
          f"loss, 100 points as a batch); target end to end <= 0.05x micrograd")
    print(f"  chainrule engine.optimize   {t_engine:8.2f} s   "
          f"({1e3 * t_engine / 100:.1f} ms/step)")
    print(f"  chainrule end to end (SDK)  {t_http:8.2f} s   accuracy {trained.accuracy:.0%}")
    print(f"  micrograd's loop            {t_micrograd:8.2f} s   (from {micrograd_steps} "
          f"steps, scaled to 100)")
    print(f"  ratio engine / micrograd    {t_engine / t_micrograd:8.4f}x")
    print(f"  ratio end to end / micrograd {t_http / t_micrograd:7.4f}x")
    print(f"  params after {micrograd_steps} steps vs micrograd: max relative "
          f"difference {worst:.1e}")
    assert worst < 1e-9, "chainrule and micrograd disagree"
    assert trained.accuracy >= 0.95
    assert np.isfinite(trained.result.value)


if __name__ == "__main__":
    main()
