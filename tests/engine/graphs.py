"""Small builders for engine tests: graphs from terse node tuples, random scalar DAGs."""

from __future__ import annotations

import numpy as np

from engine import Graph, Node

BASIC_GATES = ("add", "mul", "max", "exp", "sigmoid", "inv", "pow")


def node(id: str, op: str, inputs=(), value=None, **attrs) -> Node:
    return Node(id, op, tuple(inputs), attrs, None if value is None else np.asarray(value, float))


def graph(*nodes: Node, output: str) -> Graph:
    return Graph(tuple(nodes), output)


def random_scalar_dag(n: int, *, width: int, seed: int = 0, gates=BASIC_GATES) -> Graph:
    """A layered DAG of `n` scalar nodes about `n / width` levels deep, values kept moderate."""
    rng = np.random.default_rng(seed)
    nodes = [node(f"x{i}", "input", value=rng.uniform(0.5, 1.5)) for i in range(width)]
    previous = list(range(width))
    while len(nodes) < n:
        layer = []
        for _ in range(min(width, n - len(nodes))):
            op = gates[rng.integers(len(gates))]
            k = len(nodes)
            if op in ("add", "mul", "max"):
                a, b = rng.choice(previous, 2)
                # keep mul chains from overflowing: multiply by a squashed value
                nodes.append(node(f"n{k}", op, [nodes[a].id, nodes[b].id]))
            elif op == "pow":
                nodes.append(node(f"n{k}", "pow", [nodes[rng.choice(previous)].id], exponent=2.0))
            else:
                nodes.append(node(f"n{k}", op, [nodes[rng.choice(previous)].id]))
            layer.append(k)
        # squash every level back into (0, 1) so deep graphs stay finite
        squashed = []
        for k in layer:
            j = len(nodes)
            if j >= n:
                break
            nodes.append(node(f"s{j}", "sigmoid", [nodes[k].id]))
            squashed.append(j)
        previous = squashed or layer
    out = node("out", "add", [nodes[i].id for i in previous[:2]] if len(previous) > 1
               else [nodes[previous[0]].id, nodes[previous[0]].id])
    return Graph(tuple(nodes) + (out,), "out")


def chain(n: int, *, gates=("add_const", "sigmoid", "scale", "tanh")) -> Graph:
    """A chain `n` nodes deep."""
    nodes = [node("x", "input", value=0.3)]
    attrs = {"add_const": {"c": 0.1}, "scale": {"a": 1.5}}
    for i in range(1, n):
        op = gates[i % len(gates)]
        nodes.append(node(f"c{i}", op, [nodes[-1].id], **attrs.get(op, {})))
    return Graph(tuple(nodes), nodes[-1].id)
