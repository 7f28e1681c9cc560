"""Neural networks from the SDK's expressions, as micrograd's nn.py builds them from Values.

A `Neuron` holds one scalar input node per weight and one for its bias (random weights in
[-1, 1], bias 0, as micrograd draws them); calling it on a list of operands builds
relu(w . x + b). `Layer` and `MLP` stack neurons. Nothing is kept on the server and there are no
gradients to zero: `parameters()` are the input nodes to pass as `params=` to
`client.optimize`, or to read gradients of from `client.gradients`; their trained values come
back as `result.params`, which evaluates the network when passed as `inputs=`.

    model = nn.MLP(2, [16, 16, 1], seed=0)
    x = [cr.input("x0"), cr.input("x1")]
    score = model(x)
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from chainrule_client.expr import Node, as_node, input

__all__ = ["MLP", "Layer", "Module", "Neuron"]


class Module:
    """Anything with parameters."""

    def parameters(self) -> list[Node]:
        return []


class Neuron(Module):
    """relu(w . x + b) (or w . x + b with `nonlin=False`), its params named `<name>.w<i>` and
    `<name>.b`."""

    def __init__(
        self,
        nin: int,
        nonlin: bool = True,
        *,
        name: str = "neuron",
        rng: random.Random | None = None,
    ) -> None:
        draw = rng or random.Random()
        self.w = [input(f"{name}.w{i}", draw.uniform(-1, 1)) for i in range(nin)]
        self.b = input(f"{name}.b", 0.0)
        self.nonlin = nonlin

    def __call__(self, x: Sequence[object]) -> Node:
        if len(x) != len(self.w):
            raise ValueError(f"this neuron takes {len(self.w)} inputs, got {len(x)}")
        act = sum((wi * as_node(xi) for wi, xi in zip(self.w, x, strict=True)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self) -> list[Node]:
        return [*self.w, self.b]

    def __repr__(self) -> str:
        return f"Neuron({len(self.w)} inputs, {'relu' if self.nonlin else 'linear'})"


class Layer(Module):
    """`nout` neurons over the same inputs; one output node, or a list of them."""

    def __init__(
        self,
        nin: int,
        nout: int,
        nonlin: bool = True,
        *,
        name: str = "layer",
        rng: random.Random | None = None,
    ) -> None:
        draw = rng or random.Random()
        self.neurons = [
            Neuron(nin, nonlin, name=f"{name}.n{j}", rng=draw) for j in range(nout)
        ]

    def __call__(self, x: Sequence[object]) -> Node | list[Node]:
        out = [neuron(x) for neuron in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Node]:
        return [p for neuron in self.neurons for p in neuron.parameters()]

    def __repr__(self) -> str:
        return f"Layer({len(self.neurons)} x {self.neurons[0]!r})"


class MLP(Module):
    """Layers of sizes `nin` -> nouts[0] -> ... -> nouts[-1], relu between, linear last.
    `seed` makes the initial weights reproducible."""

    def __init__(
        self, nin: int, nouts: Sequence[int], *, name: str = "mlp", seed: int | None = None
    ) -> None:
        draw = random.Random(seed)
        sizes = [nin, *nouts]
        self.layers = [
            Layer(sizes[i], sizes[i + 1], i != len(nouts) - 1, name=f"{name}.l{i}", rng=draw)
            for i in range(len(nouts))
        ]

    def __call__(self, x: Sequence[object]) -> Node | list[Node]:
        out: Node | list[Node] = list(x)  # type: ignore[arg-type]
        for layer in self.layers:
            out = layer(out if isinstance(out, list) else [out])
        return out

    def parameters(self) -> list[Node]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        sizes = [len(self.layers[0].neurons[0].w)] + [len(x.neurons) for x in self.layers]
        return f"MLP({' -> '.join(map(str, sizes))})"
