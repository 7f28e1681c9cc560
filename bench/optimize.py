"""Optimisation benchmark: 1,000 Adam steps on a 100-node scalar graph, chainrule's loop
against a torch.optim.Adam loop over the same graph built from 0-d float64 tensors.

Both run in this process on the same starting values; the final params are compared (they
differ only by the forward/backward rounding of the two engines). chainrule's time includes
everything `engine.optimize.optimize` does (binding, 1,001 evaluations, the updates) but
not compiling the plan, which the service caches. Run: `python -m bench.optimize`.
Target: chainrule at most 0.25x torch's time. Then the moons example against micrograd's own
training loop (bench/moons.py; `--no-moons` skips it).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bench.engine import best_of, random_dag, to_graph
from bench.moons import compare_with_micrograd
from engine import compile_plan
from engine.optim import Adam
from engine.optimize import optimize

LR = 0.05
TORCH_GATES = {
    "add": torch.add, "mul": torch.mul, "max": torch.maximum, "exp": torch.exp,
    "sigmoid": torch.sigmoid, "inv": torch.reciprocal, "pow": lambda a: a**2,
}


def chainrule_loop(plan, sources, params, steps):
    return optimize(plan, sources, params, optimizer=Adam(lr=LR), steps=steps)


def torch_loop(spec, steps):
    """The usual training loop: build the graph, backward, step, zero the gradients."""
    leaves = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
              for name, op, _, _, value in spec if op == "input"}
    optimizer = torch.optim.Adam(list(leaves.values()), lr=LR)
    for _ in range(steps):
        values = dict(leaves)
        for name, op, inputs, _, _ in spec:
            if op != "input":
                values[name] = TORCH_GATES[op](*(values[i] for i in inputs))
        values[spec[-1][0]].backward()
        optimizer.step()
        optimizer.zero_grad()
    return {name: float(t.detach()) for name, t in leaves.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-moons", action="store_true", help="skip the moons comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = random_dag(100, depth=4)
    graph, sources = to_graph(spec)
    params = list(sources)
    plan = compile_plan(graph, {k: v.shape for k, v in sources.items()})
    ours = chainrule_loop(plan, sources, params, args.steps)
    theirs = torch_loop(spec, args.steps)
    worst = max(abs(ours.params[k] - theirs[k]) / max(abs(theirs[k]), 1e-300) for k in params)
    t_ours, t_torch = best_of(args.repeats, lambda: chainrule_loop(plan, sources, params,
                                                                   args.steps),
                              lambda: torch_loop(spec, args.steps))
    print(f"optimize: {args.steps} Adam steps, {len(spec)}-node scalar graph "
          f"({len(params)} params, strategy {plan.strategy}); target <= 0.25x torch")
    print(f"  chainrule optimize()        {1e3 * t_ours:8.1f} ms  "
          f"({1e6 * t_ours / args.steps:.1f} us/step)")
    print(f"  torch.optim.Adam loop       {1e3 * t_torch:8.1f} ms  "
          f"({1e6 * t_torch / args.steps:.1f} us/step)")
    print(f"  ratio chainrule / torch     {t_ours / t_torch:8.3f}x")
    print(f"  final loss {ours.value:.6g} (from {ours.trajectory[0]['value']:.6g}); "
          f"max relative difference of the params vs torch {worst:.1e}")
    assert worst < 1e-9, "chainrule and torch disagree"
    assert ours.value < ours.trajectory[0]["value"], "Adam did not lower the loss"
    assert np.isfinite(ours.value)
    if not args.no_moons:
        print()
        compare_with_micrograd(args.repeats)


if __name__ == "__main__":
    main()
