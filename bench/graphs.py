"""Big graphs over HTTP against micrograd in-process: the issue-16 benchmark.

    .venv/bin/python -m bench.graphs [--quick] [--repeats 5]

A random scalar DAG (add, scale, mul, relu, pow 2; 2,000 inputs, half the nodes at 1,000; each
gate reading random earlier nodes), the gradients of every input, asked of the service over
HTTP from a Python client (json.dumps of the body and json.loads of the answer included),
against micrograd building and backpropagating the same graph in the benchmark's own process:

  (1) a new graph: a new structure every request (targets: <= 0.5x micrograd);
  (2) the same structure with new input values: the plan is cached, the structure and the
      body's skeleton known (the structure is held from the second send, the skeleton proven
      at the third) (<= 0.25x);
  (3) a registered graph (POST /v1/graphs once) with b64 input values (<= 0.1x);
  (4) a 100,000-deep chain, a new graph (< 1.0x);
  the curve of (1) over 1k, 3k, 10k, 30k and 100k nodes (<= 1.0x at 3k, <= 0.5x from 10k);
  the memory of a cached 100,000-node plan and of a registered graph (tracemalloc).

The service runs under gunicorn with service/gunicorn.conf.py and a Redis store, one worker so
that every request meets the same caches. Times are the best of `--repeats` runs, the
contenders taking turns. Each case prints the Server-Timing stages of its fastest request, the
client's own json.dumps + json.loads (a floor no server work can go below) and the remainder
(HTTP and WSGI).
Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from bench.http import Gunicorn, RedisServer, server_timing

INPUTS = 2_000
GATES = ("add", "scale", "mul", "relu", "pow")
SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
BIG = 100_000


# ---------------------------------------------------------------- the graphs
# A description is a list of (id, op, input ids, attrs) in topological order, plus the input
# values by id; the service and micrograd each build their own graph from it.


def random_dag(n: int, seed: int) -> list[tuple]:
    """`n` nodes: INPUTS inputs (half the nodes in graphs of at most INPUTS nodes, which would
    otherwise have no gates, the same graph for every seed), then gates over random earlier
    nodes (a shallow, wide DAG)."""
    rng = np.random.default_rng(seed)
    inputs = INPUTS if n > INPUTS else n // 2
    spec = [(f"x{i}", "input", (), {}) for i in range(inputs)]
    kinds = rng.integers(len(GATES), size=n)
    for k in range(len(spec), n - 1):
        op = GATES[kinds[k]]
        a, b = (f"{spec[j][0]}" for j in rng.integers(k, size=2))
        if op in ("add", "mul"):
            spec.append((f"n{k}", op, (a, b), {}))
        elif op == "scale":
            spec.append((f"n{k}", op, (a,), {"a": round(float(rng.uniform(-0.9, 0.9)), 3)}))
        elif op == "pow":
            spec.append((f"n{k}", op, (a,), {"exponent": 2}))
        else:
            spec.append((f"n{k}", op, (a,), {}))
    spec.append(("out", "add", (spec[-1][0], spec[-2][0]), {}))
    return spec


def deep_chain(n: int) -> list[tuple]:
    """x, then n - 1 gates each reading the one before (and x for the binary ones)."""
    spec = [("x", "input", (), {})]
    for k in range(1, n):
        op = GATES[k % len(GATES)]
        inputs = (spec[-1][0], "x") if op in ("add", "mul") else (spec[-1][0],)
        attrs = {"a": 0.5} if op == "scale" else {"exponent": 2} if op == "pow" else {}
        spec.append((f"c{k}", op, inputs, attrs))
    return spec


def input_values(spec: list[tuple], seed: int) -> dict[str, float]:
    """Small values, so that products and squares stay far from overflow."""
    rng = np.random.default_rng(seed)
    names = [name for name, op, _, _ in spec if op == "input"]
    return dict(zip(names, rng.uniform(-0.9, 0.9, len(names)).tolist(), strict=True))


def inline_body(spec: list[tuple], values: dict[str, float]) -> dict:
    nodes = []
    for name, op, inputs, attrs in spec:
        node = {"id": name, "op": op}
        if inputs:
            node["inputs"] = list(inputs)
        if attrs:
            node["attrs"] = attrs
        if name in values:
            node["value"] = values[name]
        nodes.append(node)
    return {"graph": {"nodes": nodes, "output": spec[-1][0]}, "wrt": list(values)}


def b64_scalar(value: float) -> dict:
    return {"dtype": "float64", "shape": [],
            "b64": base64.b64encode(struct.pack("<d", value)).decode()}


def registered_body(values: dict[str, float]) -> dict:
    return {"inputs": {name: b64_scalar(v) for name, v in values.items()}, "wrt": list(values)}


# ---------------------------------------------------------------- micrograd


def micrograd_grads(spec: list[tuple], values: dict[str, float]) -> dict[str, float]:
    """micrograd builds the graph (forward while building) and backpropagates it."""
    from micrograd.engine import Value

    built: dict[str, Value] = {}
    for name, op, inputs, attrs in spec:
        args = [built[i] for i in inputs]
        if op == "input":
            built[name] = Value(values[name])
        elif op == "add":
            built[name] = args[0] + args[1]
        elif op == "mul":
            built[name] = args[0] * args[1]
        elif op == "scale":
            built[name] = args[0] * attrs["a"]
        elif op == "pow":
            built[name] = args[0] ** attrs["exponent"]
        else:
            built[name] = args[0].relu()
    built[spec[-1][0]].backward()
    return {name: built[name].grad for name in values}


def in_big_stack(fn: Callable[[], object]) -> object:
    """Run fn in a thread with a deep stack: micrograd's backward recurses once per level."""
    result: list = []
    threading.stack_size(1 << 30)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        thread = threading.Thread(target=lambda: result.append(fn()))
        thread.start()
        thread.join()
    finally:
        threading.stack_size(0)
        sys.setrecursionlimit(limit)
    return result[0]


# ---------------------------------------------------------------- the service


class Service:
    """A client of the running service: each call is json.dumps + POST + json.loads."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=300)

    def post(self, path: str, body: dict) -> tuple[dict, dict[str, float]]:
        """The answer, and the Server-Timing stages plus the client's own share ("client":
        json.dumps of the body and json.loads of the answer), in ms."""
        started = time.perf_counter()
        content = json.dumps(body).encode()
        written = time.perf_counter()
        response = self.http.post(path, content=content,
                                  headers={"Content-Type": "application/json"})
        received = time.perf_counter()
        answer = json.loads(response.content)
        client = (written - started + time.perf_counter() - received) * 1e3
        if response.status_code >= 300:
            raise SystemExit(f"{path}: {response.status_code} {str(answer)[:300]}")
        stages = server_timing(response.headers.get("Server-Timing", "x;dur=0"))
        return answer, {**stages, "client": client}

    def grads(self, path: str, body: dict) -> tuple[dict[str, float], dict[str, float]]:
        answer, stages = self.post(path, body)
        return {name: node["grad"] for name, node in answer["nodes"].items()}, stages


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def check_same(ours: dict[str, float], theirs: dict[str, float]) -> float:
    """The largest relative difference between the two sets of gradients."""
    worst = 0.0
    for name, value in theirs.items():
        scale = max(abs(value), abs(ours[name]), 1e-300)
        worst = max(worst, abs(value - ours[name]) / scale)
    if worst > 1e-9:
        raise SystemExit(f"the gradients differ from micrograd's by {worst:.1e}")
    return worst


class Case:
    """The best of a few runs of the service and of micrograd, taking turns."""

    def __init__(self, label: str, target: float | None):
        self.label, self.target = label, target
        self.ours, self.micro = math.inf, math.inf
        self.stages: dict[str, float] = {}
        self.parses: list[float] = []  # every run's parse stage: flat, or the collector scans

    def run(self, service: Service, path: str, body: dict, spec: list[tuple],
            values: dict[str, float]) -> None:
        """One request (`body` built beforehand, as micrograd's input values are) and one
        micrograd build + backward of the same graph."""
        seconds, (grads, stages) = timed(lambda: service.grads(path, body))
        self.parses.append(stages.get("parse", 0.0))
        if seconds < self.ours:
            self.ours, self.stages = seconds, stages
        seconds, micro_grads = timed(lambda: in_big_stack(lambda: micrograd_grads(spec, values)))
        self.micro = min(self.micro, seconds)
        check_same(grads, micro_grads)

    def line(self) -> str:
        ratio = self.ours / self.micro
        goal = "" if self.target is None else f"  (target <= {self.target}x)"
        return (f"  {self.label:42} {self.ours * 1e3:9.1f} ms  micrograd {self.micro * 1e3:8.1f}"
                f" ms  ratio {ratio:5.2f}x{goal}")

    def stage_line(self) -> str:
        """The server's stages, then where the rest went: the client's json.dumps + json.loads
        (alone, as a ratio to micrograd) and HTTP + WSGI (the remainder)."""
        server = {name: ms for name, ms in self.stages.items() if name != "client"}
        client = self.stages.get("client", 0.0)
        rest = self.ours * 1e3 - sum(server.values()) - client
        return ("      " + ", ".join(f"{name} {ms:.1f}" for name, ms in server.items())
                + f"\n      server {sum(server.values()):.1f} ms; client json {client:.1f} ms"
                f" ({client / (self.micro * 1e3):.2f}x micrograd alone); HTTP and WSGI"
                f" {rest:.1f} ms; parse in each run "
                + " / ".join(f"{ms:.1f}" for ms in self.parses) + " ms")


# ---------------------------------------------------------------- the cases


def new_graph_case(service: Service, n: int, repeats: int, target: float | None) -> Case:
    case = Case(f"{n:,} nodes, a new graph", target)
    for r in range(repeats):
        spec = random_dag(n, seed=1000 * n + r)
        values = input_values(spec, seed=r)
        case.run(service, "/v1/gradients", inline_body(spec, values), spec, values)
    return case


def cached_plan_case(service: Service, repeats: int) -> Case:
    spec = random_dag(BIG, seed=7)
    for seed in (97, 98, 99):  # the structure is held from the second, the skeleton from the third
        service.post("/v1/gradients", inline_body(spec, input_values(spec, seed=seed)))
    case = Case(f"{BIG:,} nodes, same structure, new values", 0.25)
    for r in range(repeats):
        values = input_values(spec, seed=100 + r)
        case.run(service, "/v1/gradients", inline_body(spec, values), spec, values)
    return case


def registered_case(service: Service, repeats: int) -> Case:
    spec = random_dag(BIG, seed=8)
    body = inline_body(spec, {})
    summary, _ = service.post("/v1/graphs", {"graph": body["graph"]})
    path = f"/v1/graphs/{summary['id']}/gradients"
    service.post(path, registered_body(input_values(spec, seed=199)))  # compiles the plan
    case = Case(f"{BIG:,} nodes, registered, b64 values", 0.1)
    for r in range(repeats):
        values = input_values(spec, seed=200 + r)
        case.run(service, path, registered_body(values), spec, values)
    return case


def chain_case(service: Service, repeats: int) -> Case:
    case = Case(f"{BIG:,}-deep chain, a new graph", 1.0)
    for r in range(repeats):
        spec = deep_chain(BIG + r)  # one more node each time: a new structure
        values = {"x": 0.3 + 0.01 * r}
        case.run(service, "/v1/gradients", inline_body(spec, values), spec, values)
    return case


def plan_memory() -> tuple[float, float]:
    """MB held by a compiled 100,000-node plan, and by a loaded registered graph."""
    from schemas import canonical_graph
    from schemas.graph import load_graph
    from schemas.graphrecord import graph_record, read_graph_record
    from service.graphs import RegisteredGraph
    from service.pipeline import bind_request, load_request

    spec = random_dag(BIG, seed=9)
    body = inline_body(spec, input_values(spec, seed=9))
    graph = load_graph({"graph": body["graph"]})
    sources = bind_request(load_request("gradients", body))
    from engine import Graph, NodeTable, compile_plan

    shapes = {name: value.shape for name, value in sources.items()}
    # The request's graph, whose node table keeps what the hash and compile stages share
    # (kind keys, id order) until the request ends: what stays is the plan alone.
    nodes = graph.nodes
    request_graph = Graph(NodeTable(nodes.ids, nodes.ops, nodes.inputs, nodes.attrs,
                                    nodes.values), graph.output)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    plan = compile_plan(request_graph, shapes)
    del request_graph
    gc.collect()
    plan_bytes = tracemalloc.get_traced_memory()[0] - before
    record = graph_record(graph, canonical_graph(graph))
    before = tracemalloc.get_traced_memory()[0]
    registered = RegisteredGraph.of(*read_graph_record(record), record)
    gc.collect()
    registered_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del plan, registered
    return plan_bytes / 1e6, registered_bytes / 1e6


# ---------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one repeat, sizes up to 30k")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    sizes = [n for n in SIZES if not args.quick or n <= 30_000]
    workdir = Path(tempfile.mkdtemp(prefix="chainrule-bench-graphs-"))
    with RedisServer(workdir) as redis_server:
        env = {**os.environ, "REDIS_URL": redis_server.url, "WEB_CONCURRENCY": "1",
               "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        with Gunicorn("service.wsgi:app", env, workdir / "service.log") as server:
            service = Service(server.url)
            curve = [new_graph_case(service, n, repeats, _curve_target(n)) for n in sizes]
            cases = [] if args.quick else [
                cached_plan_case(service, repeats),
                registered_case(service, repeats),
                chain_case(service, repeats),
            ]
    plan_mb, registered_mb = plan_memory()
    print(f"chainrule over HTTP (gunicorn x1, Redis store) vs micrograd in-process; "
          f"{INPUTS:,} inputs, gradients of every input; best of {repeats}")
    print("the curve, a new graph each time:")
    for case in curve:
        print(case.line())
        print(case.stage_line())
    print(f"\n{BIG:,}-node cases:")
    for case in cases:
        print(case.line())
        print(case.stage_line())
    print(f"\nmemory: a compiled {BIG:,}-node plan {plan_mb:.1f} MB (target < 20 MB); "
          f"a loaded registered graph {registered_mb:.1f} MB (tracemalloc)")
    shutil.rmtree(workdir, ignore_errors=True)


def _curve_target(n: int) -> float | None:
    if n >= 10_000:
        return 0.5
    return 1.0 if n >= 3_000 else None


if __name__ == "__main__":
    main()
