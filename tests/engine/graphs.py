"""Small builders for engine tests: graphs from terse node tuples and compiled, random scalar
DAGs, random (2, 3) tensor DAGs for property tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from engine import Graph, Node, bind_sources, compile_plan

BASIC_GATES = ("add", "mul", "max", "exp", "sigmoid", "inv", "pow")


def node(id: str, op: str, inputs=(), value=None, **attrs) -> Node:
    return Node(id, op, tuple(inputs), attrs, None if value is None else np.asarray(value, float))


def graph(*nodes: Node, output: str) -> Graph:
    return Graph(tuple(nodes), output)


def compiled(g: Graph, strategy: str | None = None) -> tuple:
    """The graph's plan, compiled for the shapes of its own input values, and those values."""
    sources = bind_sources(g)
    plan = compile_plan(g, {k: v.shape for k, v in sources.items()}, strategy=strategy)
    return plan, sources


def random_scalar_dag(n: int, *, width: int, seed: int = 0, gates=BASIC_GATES) -> Graph:
    """A layered DAG of `n` scalar nodes about `n / (2 * width)` levels deep.

    Each level of gates is followed by a level of sigmoids so that deep graphs stay finite.
    """
    rng = np.random.default_rng(seed)
    kinds = rng.integers(len(gates), size=n)
    picks = rng.integers(width, size=(n, 2))
    nodes = [node(f"x{i}", "input", value=v) for i, v in enumerate(rng.uniform(0.5, 1.5, width))]
    previous = [n_.id for n_ in nodes]
    while len(nodes) < n - 1:
        layer = []
        for _ in range(min(width, (n - 1 - len(nodes)) // 2 or 1)):
            op, (a, b) = gates[kinds[len(nodes)]], picks[len(nodes)] % len(previous)
            name = f"n{len(nodes)}"
            if op in ("add", "mul", "max"):
                nodes.append(node(name, op, [previous[a], previous[b]]))
            elif op == "pow":
                nodes.append(node(name, "pow", [previous[a]], exponent=2.0))
            else:
                nodes.append(node(name, op, [previous[a]]))
            layer.append(name)
        previous = []
        for name in layer:
            nodes.append(node(f"s{len(nodes)}", "sigmoid", [name]))
            previous.append(nodes[-1].id)
    out = node("out", "add", [previous[0], previous[-1]])
    return Graph(tuple(nodes) + (out,), "out")


def chain(n: int, *, gates=("add_const", "sigmoid", "scale", "tanh")) -> Graph:
    """A chain `n` nodes deep."""
    nodes = [node("x", "input", value=0.3)]
    attrs = {"add_const": {"c": 0.1}, "scale": {"a": 1.5}}
    for i in range(1, n):
        op = gates[i % len(gates)]
        nodes.append(node(f"c{i}", op, [nodes[-1].id], **attrs.get(op, {})))
    return Graph(tuple(nodes), nodes[-1].id)


class Builder:
    """Appends nodes with fresh ids under one step's prefix; answers each new node's id."""

    def __init__(self, nodes: list, prefix: str):
        self.nodes, self.prefix = nodes, prefix

    def __call__(self, op: str, inputs: list[str], **attrs) -> str:
        self.nodes.append(node(f"{self.prefix}_{len(self.nodes)}", op, inputs, **attrs))
        return self.nodes[-1].id


def random_tensor_dag(draw: Callable, step: Callable) -> Graph:
    """One to three (2, 3) inputs, one to six steps, the last one summed into the loss.

    `draw` is hypothesis's (inside an `@st.composite`). Step k draws two operands from the
    nodes so far; `step(draw, add, a, b)` builds on them with `add` (a Builder) and answers a
    (2, 3) node, which a tanh keeps moderate for the next step.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    nodes = [node(f"x{i}", "input", value=rng.uniform(-1.5, 1.5, size=(2, 3)))
             for i in range(draw(st.integers(1, 3)))]
    pool = [n.id for n in nodes]
    for k in range(draw(st.integers(1, 6))):
        a, b = draw(st.sampled_from(pool)), draw(st.sampled_from(pool))
        add = Builder(nodes, f"t{k}")
        pool.append(add("tanh", [step(draw, add, a, b)]))
    nodes.append(node("loss", "sum", [pool[-1]]))
    return graph(*nodes, output="loss")
