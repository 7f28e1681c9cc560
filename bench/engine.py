"""Engine benchmark: forward+backward time per node against baselines run in the same process.

(a) a random 100,000-node scalar DAG of the basic gates, about 90 levels deep;
(b) a 10,000-node chain;
    each against micrograd's Value (build + backward) and PyTorch eager on 0-d tensors when
    torch is importable;
(c) a 3-layer float64 MLP (batch 256, width 1024) against hand-written numpy;
(d) compiling the 100,000-node DAG of (a) and a 100,000-node chain: time a node, and what a
    cached plan costs: its memory (tracemalloc, its id strings included) and the objects it
    leaves for the cyclic garbage collector to track.

chainrule's times are for running a compiled plan (the service caches plans by structure);
compile time is printed beside them. Every chainrule result is checked against the per-node
numpy executor to 1e-12. Run: `make bench` or `python -m bench.engine [--quick]`.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
import tracemalloc

import numpy as np

from engine import Graph, Node, compile_plan

BASIC_GATES = ("add", "mul", "max", "exp", "sigmoid", "inv", "pow")


def best_of(repeats: int, *fns) -> float | tuple[float, ...]:
    """The fastest of `repeats` calls of each function, in seconds, the functions taking turns
    so that a busy spell on the shared machine falls on all of them alike."""
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            gc.collect()
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best[0] if len(fns) == 1 else tuple(best)


# ---------------------------------------------------------------- graph descriptions
# A description is a list of (id, op, input ids, attrs, value) in topological order; each
# contender builds its own graph from it.


def random_dag(n: int, depth: int, seed: int = 0) -> list[tuple]:
    """`n` scalar nodes in `depth` levels; every gate reads two random nodes of the level before.

    Every other level is a row of sigmoids, which keeps values in (0, 1) however deep it goes.
    """
    rng = np.random.default_rng(seed)
    width = n // depth
    starts = rng.uniform(0.2, 0.9, width)
    spec = [(f"x{i}", "input", (), {}, float(v)) for i, v in enumerate(starts)]
    previous = [s[0] for s in spec]
    level = 0
    while len(spec) < n - 1:
        level += 1
        row = []
        count = min(width, n - 1 - len(spec))
        kinds = rng.integers(len(BASIC_GATES), size=count)
        picks = rng.integers(len(previous), size=(count, 2))
        for k in range(count):
            name = f"n{len(spec)}"
            op = "sigmoid" if level % 2 == 0 else BASIC_GATES[kinds[k]]
            spec.append(gate_row(name, op, previous[picks[k, 0]], previous[picks[k, 1]]))
            row.append(name)
        previous = row
    spec.append(("out", "add", tuple(previous[:2]), {}, None))
    return spec


def gate_row(name: str, op: str, a: str, b: str) -> tuple:
    """The description of one of BASIC_GATES over `a` (and `b`, for the binary ones)."""
    if op in ("add", "mul", "max"):
        return (name, op, (a, b), {}, None)
    if op == "pow":
        return (name, op, (a,), {"exponent": 2.0}, None)
    return (name, op, (a,), {}, None)


def chain(n: int) -> list[tuple]:
    spec = [("x", "input", (), {}, 0.5)]
    gates = [("sigmoid", {}), ("mul", {}), ("exp", {}), ("add", {}), ("pow", {"exponent": 2.0})]
    for i in range(1, n):
        op, attrs = gates[i % len(gates)]
        prev = spec[-1][0]
        inputs = (prev, "x") if op in ("mul", "add") else (prev,)
        spec.append((f"c{i}", op, inputs, attrs, None))
    return spec


def to_graph(spec: list[tuple]) -> tuple[Graph, dict]:
    nodes = tuple(
        Node(name, op, inputs, attrs, None if value is None else np.asarray(value))
        for name, op, inputs, attrs, value in spec
    )
    sources = {name: np.asarray(value) for name, op, _, _, value in spec if op == "input"}
    return Graph(nodes, spec[-1][0]), sources


# ---------------------------------------------------------------- micrograd


def _micrograd_unary(x, data: float, local):
    """A micrograd Value of `data` whose gradient is local(its data) times the outer one."""
    from micrograd.engine import Value

    out = Value(data, (x,), "")

    def _backward():
        x.grad += local(out.data) * out.grad

    out._backward = _backward
    return out


def _micrograd_maximum(a, b):
    """max(a, b) in micrograd's closure style; a tie sends the gradient to `a`."""
    from micrograd.engine import Value

    out = Value(max(a.data, b.data), (a, b), "max")

    def _backward():
        (a if a.data >= b.data else b).grad += out.grad

    out._backward = _backward
    return out


# the gates micrograd 0.1.0 lacks, in its own closure style; 1/x is its own `x ** -1`
MICROGRAD_GATES = {
    "mul": lambda a, b: a * b, "max": _micrograd_maximum,
    "exp": lambda a: _micrograd_unary(a, math.exp(a.data), lambda o: o),
    "sigmoid": lambda a: _micrograd_unary(a, 1.0 / (1.0 + math.exp(-a.data)),
                                          lambda o: o * (1.0 - o)),
    "inv": lambda a: a**-1, "pow": lambda a: a**2,
}


def micrograd_run(spec: list[tuple]):
    """Build the graph from micrograd Values (forward happens while building), then backward.

    micrograd 0.1.0 has +, *, ** and relu; exp, sigmoid and max are added in its own closure
    style, and 1/x is its own `x ** -1`.
    """
    from micrograd.engine import Value

    build = {"add": lambda a, b: a + b, **MICROGRAD_GATES}
    values = {}
    for name, op, inputs, _, value in spec:
        values[name] = Value(value) if op == "input" else build[op](*(values[i] for i in inputs))
    values[spec[-1][0]].backward()
    return values


# ---------------------------------------------------------------- torch


def torch_run(spec: list[tuple]):
    import torch

    build = {
        "add": torch.add, "mul": torch.mul, "max": torch.maximum, "exp": torch.exp,
        "sigmoid": torch.sigmoid, "inv": torch.reciprocal, "pow": lambda a: a**2,
    }
    values = {}
    for name, op, inputs, _, value in spec:
        if op == "input":
            values[name] = torch.tensor(value, dtype=torch.float64, requires_grad=True)
        else:
            values[name] = build[op](*(values[i] for i in inputs))
    values[spec[-1][0]].backward()
    return values


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- scalar cases


def scalar_case(title: str, spec: list[tuple], repeats: int) -> None:
    n = len(spec)
    graph, sources = to_graph(spec)
    shapes = {k: v.shape for k, v in sources.items()}
    compile_time = best_of(1, lambda: compile_plan(graph, shapes))
    plan = compile_plan(graph, shapes)
    reference = compile_plan(graph, shapes, strategy="tensor").run(sources)
    result = plan.run(sources)
    worst = max(
        _rel(result.grads[k], reference.grads[k]) for k in result.order
    )
    ours = best_of(repeats, lambda: plan.run(sources))
    sys.setrecursionlimit(max(10_000, 4 * n))
    micro = best_of(max(1, repeats // 2), lambda: micrograd_run(spec))
    micro_values = micrograd_run(spec)
    worst_micro = max(_rel(result.grads[k], micro_values[k].grad) for k in sources)
    print(f"\n{title}: {n} nodes, {max(plan.levels) + 1} levels, strategy {plan.strategy}")
    print(f"  chainrule run (forward+backward) {1e6 * ours / n:8.3f} us/node"
          f"   (compile, once per structure: {1e6 * compile_time / n:.2f} us/node)")
    print(f"  micrograd build+backward         {1e6 * micro / n:8.3f} us/node")
    print(f"  ratio chainrule / micrograd      {ours / micro:8.3f}x"
          f"   (compile+run: {(ours + compile_time) / micro:.3f}x)")
    if torch_available():
        torch_time = best_of(max(1, repeats // 2), lambda: torch_run(spec))
        print(f"  torch eager build+backward       {1e6 * torch_time / n:8.3f} us/node"
              f"   ratio chainrule / torch {ours / torch_time:.3f}x")
    else:
        print("  torch eager: skipped (torch is not installed)")
    print(f"  max relative difference vs per-node numpy {worst:.1e},"
          f" vs micrograd {worst_micro:.1e}")


def _rel(a, b) -> float:
    a, b = float(a), float(b)
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


# ---------------------------------------------------------------- MLP


def mlp_case(batch: int, width: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, width))
    params = {}
    for layer in (1, 2, 3):
        params[f"W{layer}"] = rng.normal(size=(width, width)) / math.sqrt(width)
        params[f"b{layer}"] = rng.normal(size=(width,)) * 0.1

    def by_hand():
        z1 = x @ params["W1"] + params["b1"]
        h1 = np.maximum(z1, 0.0)
        z2 = h1 @ params["W2"] + params["b2"]
        h2 = np.maximum(z2, 0.0)
        z3 = h2 @ params["W3"] + params["b3"]
        h3 = np.maximum(z3, 0.0)
        loss = h3.sum()
        dz3 = np.ones_like(h3) * (z3 > 0)
        grads = {"W3": h2.T @ dz3, "b3": dz3.sum(axis=0)}
        dz2 = (dz3 @ params["W3"].T) * (z2 > 0)
        grads.update(W2=h1.T @ dz2, b2=dz2.sum(axis=0))
        dz1 = (dz2 @ params["W2"].T) * (z1 > 0)
        grads.update(W1=x.T @ dz1, b1=dz1.sum(axis=0))
        return loss, grads

    nodes = [Node("X", "input", value=x)] + [Node(k, "input", value=v) for k, v in params.items()]
    previous = "X"
    for layer in (1, 2, 3):
        nodes += [
            Node(f"m{layer}", "matmul", (previous, f"W{layer}")),
            Node(f"z{layer}", "add", (f"m{layer}", f"b{layer}")),
            Node(f"h{layer}", "relu", (f"z{layer}",)),
        ]
        previous = f"h{layer}"
    nodes.append(Node("loss", "sum", ("h3",)))
    sources = {"X": x, **params}
    plan = compile_plan(Graph(tuple(nodes), "loss"), {k: v.shape for k, v in sources.items()})
    wrt = list(params)
    result = plan.run(sources, wrt=wrt)
    loss, grads = by_hand()
    worst = max(float(np.max(np.abs(result.grads[k] - grads[k]) / (np.abs(grads[k]) + 1e-300)))
                for k in wrt)
    ours, hand = best_of(repeats, lambda: plan.run(sources, wrt=wrt), by_hand)
    print(f"\n(c) MLP float64, batch {batch}, width {width}, 3 layers (matmul + bias + relu, sum)")
    print(f"  chainrule (gradients of the parameters) {1e3 * ours:8.1f} ms")
    print(f"  hand-written numpy forward+backward     {1e3 * hand:8.1f} ms")
    print(f"  ratio chainrule / hand-written           {ours / hand:8.3f}x"
          f"   (max relative difference {worst:.1e})")


# ---------------------------------------------------------------- compiling


def compile_case(title: str, spec: list[tuple], repeats: int) -> None:
    shapes = {name: () for name, op, _, _, _ in spec if op == "input"}
    wall, cpu = compile_times(spec, shapes, repeats)
    memory, tracked, plan = plan_footprint(spec, shapes)
    print(f"  {title:28s} compile {1e6 * wall:6.3f} us/node ({1e6 * cpu:.3f} of CPU,"
          f" {plan.strategy})   cached plan {memory / 2**20:5.1f} MB,"
          f" {tracked} objects tracked by gc")


def compile_times(spec: list[tuple], shapes: dict, repeats: int) -> tuple[float, float]:
    """The best wall-clock and CPU seconds a node of compiling; on a shared machine the CPU
    time is the steadier of the two."""
    graph, _ = to_graph(spec)
    wall = cpu = math.inf
    for _ in range(repeats):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        compile_plan(graph, shapes)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall / len(spec), cpu / len(spec)


def plan_footprint(spec: list[tuple], shapes: dict) -> tuple[int, int, object]:
    """Bytes a compiled plan holds once its graph is gone (its id strings, which the spec here
    keeps alive, counted as well), and how many gc-tracked objects it adds after a collection."""
    gc.collect()
    tracked = len(gc.get_objects())
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    graph, _ = to_graph(spec)
    plan = compile_plan(graph, shapes)
    del graph
    gc.collect()
    memory = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    memory += sum(sys.getsizeof(name) for name in plan.ids)
    gc.collect()
    return memory, len(gc.get_objects()) - tracked - 1, plan  # less the list get_objects made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller graphs, fewer repeats")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    repeats = 3 if args.quick else 5
    print("chainrule engine benchmark (targets: (a) <= 0.05x micrograd, (b) <= 0.25x micrograd,"
          " (c) <= 1.15x hand-written numpy)")
    scalar_case("(a) random scalar DAG", random_dag(100_000 // scale, depth=90), repeats)
    scalar_case("(b) chain", chain(10_000 // scale), repeats)
    mlp_case(256, 1024 // (4 if args.quick else 1), repeats)
    print("\n(d) compiling, once per structure (targets: < 1 us/node on the DAG, a cached plan"
          " < 20 MB)")
    compile_case(f"random scalar DAG, {100_000 // scale} nodes",
                 random_dag(100_000 // scale, depth=90), 3)
    compile_case(f"chain, {100_000 // scale} nodes", chain(100_000 // scale), 3)


if __name__ == "__main__":
    main()
