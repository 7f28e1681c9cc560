"""Batch benchmark (issue 11): one graph over many points in one vectorised pass.

    .venv/bin/python -m bench.batch [--quick] [--no-http]

(a) a 1,000-node random scalar DAG at B = 10,000 points (2 batched inputs, 8 shared ones),
    reduce mean, the gradients of every input: chainrule's compiled plan against PyTorch eager
    building the same graph on (B,)-shaped tensors (target <= 0.8x), and against micrograd
    looping over the points (200 points measured, extrapolated to B; target <= 0.01x);
(b) the same request over HTTP to gunicorn (one worker, the service's own configuration),
    batch and answer in b64, computed afresh every time (`cache: false`), against PyTorch in
    this process (target <= 1.5x);
(c) the Jacobian of softmax over a (512,) input against
    torch.autograd.functional.jacobian(vectorize=True) (target <= 2x);
(d) the peak memory of (a)'s run (tracemalloc) next to B x nodes x 8 bytes.

Every chainrule figure is checked against PyTorch's numbers first. Times are the best of
several runs, the contenders taking turns. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import base64
import math
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import orjson

from bench.engine import BASIC_GATES, MICROGRAD_GATES, best_of, gate_row
from engine import Graph, Node, compile_plan, jacobian
from engine.executors.workspace import POOL

POINTS = 10_000
MICROGRAD_POINTS = 200


def batch_dag(n: int = 1000, width: int = 50, shared: int = 8, seed: int = 0) -> list[tuple]:
    """(id, op, inputs, attrs, value) rows in topological order: inputs x0 and x1 (batched)
    and w0..w7 (shared), then levels of `width` gates, every other level sigmoids so that the
    values stay finite. A gate reads a node of the level before and, three times in ten, a
    shared input as its second operand (a weight). The output is the sum of every gate that no
    other gate reads."""
    rng = np.random.default_rng(seed)
    spec = [("x0", "input", (), {}, None), ("x1", "input", (), {}, None)]
    spec += [(f"w{i}", "input", (), {}, float(v))
             for i, v in enumerate(rng.uniform(0.2, 0.9, shared))]
    weights = [row[0] for row in spec[2:]]
    previous = [row[0] for row in spec]
    level = 0
    while len(spec) < n - 1:
        level += 1
        row = []
        for _ in range(min(width, n - 1 - len(spec))):
            name = f"n{len(spec)}"
            op = "sigmoid" if level % 2 == 0 else BASIC_GATES[rng.integers(len(BASIC_GATES))]
            a = previous[rng.integers(len(previous))]
            b = (weights[rng.integers(len(weights))] if rng.random() < 0.3
                 else previous[rng.integers(len(previous))])
            spec.append(gate_row(name, op, a, b))
            row.append(name)
        previous = row
    # the output adds up every gate nothing reads, so that every gate lies on a path to it
    read = {name for row in spec for name in row[2]}
    spec.append(("out", "add", tuple(row[0] for row in spec[2 + shared:] if row[0] not in read),
                 {}, None))
    return spec


def batch_values(points: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x0": rng.uniform(0.2, 0.9, points), "x1": rng.uniform(0.2, 0.9, points)}


def best_cpu(repeat: int, *fns) -> tuple[float, ...]:
    """The least process CPU time of `repeat` calls of each function, taking turns: on a busy
    machine, closer to what each costs than wall time."""
    best = [math.inf] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            started = time.process_time()
            fn()
            best[k] = min(best[k], time.process_time() - started)
    return tuple(best)


def input_names(spec: list[tuple]) -> list[str]:
    return [row[0] for row in spec if row[1] == "input"]


# ---------------------------------------------------------------- chainrule


def chainrule_plan(spec: list[tuple]):
    nodes = tuple(Node(name, op, inputs, attrs, None if value is None else np.asarray(value))
                  for name, op, inputs, attrs, value in spec)
    graph = Graph(nodes, spec[-1][0])
    shared = {name: np.asarray(value) for name, op, _, _, value in spec
              if op == "input" and value is not None}
    shapes = {name: () for name in input_names(spec)}
    return compile_plan(graph, shapes, batched={"x0", "x1"}), shared


def chainrule_run(plan, sources: dict, names: list[str]):
    return plan.run(sources, reduce="mean", wrt=names)


# ---------------------------------------------------------------- PyTorch and micrograd


def torch_run(spec: list[tuple], batch: dict[str, np.ndarray]):
    """Build the graph on (B,) tensors (shared inputs 0-d), backward of the mean; the inputs'
    gradients."""
    import torch

    values = {}
    leaves = []
    for name, op, inputs, _, value in spec:
        if op == "input":
            data = batch[name] if name in batch else np.asarray(value)
            values[name] = torch.tensor(data, dtype=torch.float64, requires_grad=True)
            leaves.append(values[name])
            continue
        xs = [values[i] for i in inputs]
        values[name] = TORCH_OPS[op](*xs)
    values[spec[-1][0]].mean().backward()
    # an input the output does not reach has no grad in PyTorch, zeros in chainrule
    return [torch.zeros_like(leaf) if leaf.grad is None else leaf.grad for leaf in leaves]


def _torch_ops():
    import torch

    return {
        "add": lambda *xs: sum(xs[1:], xs[0]), "mul": lambda a, b: a * b,
        "max": torch.maximum,
        "exp": torch.exp, "sigmoid": torch.sigmoid, "inv": lambda a: 1.0 / a,
        "pow": lambda a: a**2,
    }


TORCH_OPS: dict = {}


def micrograd_points(spec: list[tuple], batch: dict[str, np.ndarray], points: int) -> dict:
    """micrograd over `points` points, one graph per point; the mean gradients of the inputs
    (so far as those points go)."""
    from micrograd.engine import Value

    build = {"add": lambda *xs: sum(xs[1:], xs[0]), **MICROGRAD_GATES}
    totals = {name: 0.0 for name in input_names(spec)}
    for k in range(points):
        values = {}
        for name, op, inputs, _, value in spec:
            if op == "input":
                values[name] = Value(float(batch[name][k]) if name in batch else value)
            else:
                values[name] = build[op](*[values[i] for i in inputs])
        values[spec[-1][0]].backward()
        for name in totals:
            totals[name] += values[name].grad / points
    return totals


# ---------------------------------------------------------------- (a) and (d)


def bench_engine(spec, repeat: int) -> dict:
    names = input_names(spec)
    batch = batch_values(POINTS)
    plan, shared = chainrule_plan(spec)
    sources = {**shared, **batch}
    ours = chainrule_run(plan, sources, names)
    theirs = torch_run(spec, batch)
    for name, grad in zip(names, theirs, strict=True):
        np.testing.assert_allclose(ours.grads[name], grad.numpy(), rtol=1e-9, atol=1e-15)
    import torch

    threads = torch.get_num_threads()
    engine_s, torch_s = best_of(repeat, lambda: chainrule_run(plan, sources, names),
                                lambda: torch_run(spec, batch))
    # and on one intra-op thread, as numpy's elementwise calls run: on a busy machine a
    # thread pool mostly waits for cores ((B,)-shaped ops are below its grain anyway)
    torch.set_num_threads(1)
    engine_1, torch_1 = best_of(repeat, lambda: chainrule_run(plan, sources, names),
                                lambda: torch_run(spec, batch))
    engine_cpu, torch_cpu = best_cpu(repeat, lambda: chainrule_run(plan, sources, names),
                                     lambda: torch_run(spec, batch))
    torch.set_num_threads(threads)
    small = {name: values[:MICROGRAD_POINTS] for name, values in batch.items()}
    mg = micrograd_points(spec, small, MICROGRAD_POINTS)
    small_ours = chainrule_run(plan, {**shared, **small}, names)
    for name in names:
        np.testing.assert_allclose(np.sum(small_ours.grads[name]), np.sum(mg[name]),
                                   rtol=1e-9)
    started = time.perf_counter()
    micrograd_points(spec, small, MICROGRAD_POINTS)
    micrograd_s = (time.perf_counter() - started) * POINTS / MICROGRAD_POINTS
    return {"plan": plan, "sources": sources, "names": names, "engine": min(engine_s, engine_1),
            "torch": torch_s, "torch_1": torch_1, "threads": threads,
            "engine_cpu": engine_cpu, "torch_cpu": torch_cpu,
            "micrograd": micrograd_s, "batched": sum(plan.batched)}


def peak_memory(plan, sources: dict, names: list[str]) -> tuple[int, int, int]:
    """Peak bytes traced during a run with an empty workspace pool and during a warm run, and
    the bytes the pool keeps between runs."""
    POOL.clear()
    peaks = []
    for _ in range(2):
        tracemalloc.start()
        chainrule_run(plan, sources, names)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return peaks[0], peaks[1], POOL.held_bytes


# ---------------------------------------------------------------- (b) over HTTP


def b64(array: np.ndarray) -> dict:
    data = np.ascontiguousarray(array, dtype="<f8")
    return {"dtype": "float64", "shape": list(data.shape),
            "b64": base64.b64encode(data.tobytes()).decode()}


def http_body(spec: list[tuple], batch: dict[str, np.ndarray]) -> bytes:
    nodes = []
    for name, op, inputs, attrs, value in spec:
        entry = {"id": name, "op": op}
        if inputs:
            entry["inputs"] = list(inputs)
        if attrs:
            entry["attrs"] = attrs
        if value is not None:
            entry["value"] = value
        nodes.append(entry)
    return orjson.dumps({
        "graph": {"nodes": nodes, "output": spec[-1][0]},
        "batch": {name: b64(values) for name, values in batch.items()},
        "reduce": "mean", "wrt": input_names(spec), "encoding": "b64", "cache": False,
    })


def bench_http(spec, repeat: int) -> dict:
    import httpx
    import torch

    from bench.http import Gunicorn

    batch = batch_values(POINTS)
    body = http_body(spec, batch)
    env = {"PATH": "/usr/bin:/bin", "WEB_CONCURRENCY": "1", "LOG_LEVEL": "warning"}
    with tempfile.TemporaryDirectory() as tmp, Gunicorn(
        "service.wsgi:app", env, Path(tmp) / "gunicorn.log"
    ) as server, httpx.Client(timeout=60) as client:
        url = server.url + "/v1/gradients"
        headers = {"Content-Type": "application/json"}

        def post():
            response = client.post(url, content=body, headers=headers)
            response.raise_for_status()
            return response

        answer = post().json()
        theirs = torch_run(spec, batch)
        for name, grad in zip(input_names(spec), theirs, strict=True):
            wire = answer["nodes"][name]["grad"]
            ours = (np.frombuffer(base64.b64decode(wire["b64"]), "<f8").reshape(wire["shape"])
                    if isinstance(wire, dict) else np.asarray(wire))
            np.testing.assert_allclose(ours, grad.numpy(), rtol=1e-9, atol=1e-15)
        http_s, torch_s = best_of(repeat, post, lambda: torch_run(spec, batch))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        http_1, torch_1 = best_of(repeat, post, lambda: torch_run(spec, batch))
        torch.set_num_threads(threads)
    return {"http": min(http_s, http_1), "torch": torch_s, "torch_1": torch_1,
            "request_bytes": len(body)}


# ---------------------------------------------------------------- (c) Jacobian


def bench_jacobian(repeat: int) -> dict:
    import torch

    z = np.random.default_rng(2).normal(size=512)
    graph = Graph((Node("z", "input"), Node("s", "softmax", ("z",))), "s")
    plan = compile_plan(graph, {"z": (512,)})
    ours = jacobian(plan, {"z": z}, ["z"]).jacobians["z"]
    tz = torch.tensor(z, dtype=torch.float64)

    def theirs():
        return torch.autograd.functional.jacobian(
            lambda v: torch.softmax(v, dim=-1), tz, vectorize=True)

    np.testing.assert_allclose(ours, theirs().numpy(), rtol=1e-10, atol=1e-15)
    ours_s, theirs_s = best_of(repeat, lambda: jacobian(plan, {"z": z}, ["z"]), theirs)
    return {"engine": ours_s, "torch": theirs_s}


# ---------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--no-http", action="store_true", help="skip (b)")
    args = parser.parse_args()
    repeat = 5 if args.quick else 20
    TORCH_OPS.update(_torch_ops())
    spec = batch_dag()
    a = bench_engine(spec, repeat)
    nodes = len(spec)
    print(f"(a) {nodes}-node scalar DAG, B = {POINTS:,} ({a['batched']} nodes batched), "
          "reduce mean, every input's gradient")
    print(f"    chainrule {a['engine'] * 1e3:.1f} ms   PyTorch eager {a['torch'] * 1e3:.1f} ms"
          f" ({a['threads']} threads)   ratio {a['engine'] / a['torch']:.2f}x (target <= 0.8x)")
    print(f"    PyTorch eager on 1 thread {a['torch_1'] * 1e3:.1f} ms   ratio "
          f"{a['engine'] / a['torch_1']:.2f}x")
    print(f"    as CPU time (best of {repeat}): chainrule {a['engine_cpu'] * 1e3:.1f} ms   "
          f"PyTorch on 1 thread {a['torch_cpu'] * 1e3:.1f} ms   "
          f"ratio {a['engine_cpu'] / a['torch_cpu']:.2f}x")
    print(f"    micrograd over the points {a['micrograd']:.1f} s (from {MICROGRAD_POINTS} points)"
          f"   ratio {a['engine'] / a['micrograd']:.5f}x (target <= 0.01x)")
    cold, warm, held = peak_memory(a["plan"], a["sources"], a["names"])
    naive = POINTS * nodes * 8
    print(f"(d) peak memory (tracemalloc): {cold / 2**20:.1f} MiB for a first run, "
          f"{warm / 2**20:.1f} MiB for a later one beside {held / 2**20:.1f} MiB of pooled "
          f"workspaces; B x nodes x 8 bytes = {naive / 2**20:.1f} MiB")
    if not args.no_http:
        b = bench_http(spec, max(5, repeat // 2))
        print(f"(b) over HTTP (gunicorn, 1 worker, b64 in and out, {b['request_bytes'] / 1e3:.0f}"
              f" kB request, cache off): {b['http'] * 1e3:.1f} ms   PyTorch in-process "
              f"{b['torch'] * 1e3:.1f} ms   ratio {b['http'] / b['torch']:.2f}x (target <= 1.5x)")
        print(f"    PyTorch in-process on 1 thread {b['torch_1'] * 1e3:.1f} ms   ratio "
              f"{b['http'] / b['torch_1']:.2f}x")
    c = bench_jacobian(repeat)
    print(f"(c) Jacobian of softmax over (512,): chainrule {c['engine'] * 1e3:.2f} ms   "
          f"torch.autograd.functional.jacobian(vectorize=True) {c['torch'] * 1e3:.2f} ms   "
          f"ratio {c['engine'] / c['torch']:.2f}x (target <= 2x)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
