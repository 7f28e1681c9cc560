"""Train micrograd's demo network on two moons with one call to chainrule's POST /v1/optimize.

The network is micrograd's (2 inputs, two hidden layers of 16 relu neurons, one linear output),
built with chainrule_client.nn; the loss is its demo's: the mean max-margin (SVM) loss over
100 points plus 1e-4 times the sum of the squared weights; 100 steps of SGD with a learning
rate that decays linearly from 1.0 to 0.1. The whole loop runs in the service.

The graph is one point's loss, relu(1 - y * score(x1, x2)) + 1e-4 * sum(p * p), with the 100
points sent as a `batch` of x1, x2 and y: the service runs every gate over all the points in
one vectorised pass and minimises the mean over them, which is the demo's loss exactly (the
L2 term is the same at every point).

    python examples/moons.py [--url http://localhost:8000] [--png moons.png]

It prints the loss every 10 steps, the training accuracy, and draws the decision boundary
to a PNG (moons.png, which git ignores) when matplotlib is installed: in the .venv that
`make run` made, `.venv/bin/pip install matplotlib`.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from dataclasses import dataclass

import numpy as np

import chainrule_client as cr
from chainrule_client import nn

POINTS = 100
NOISE = 0.1
SEED = 1337
STEPS = 100
L2 = 1e-4


def two_moons(n: int = POINTS, noise: float = NOISE, seed: int = SEED):
    """Two interleaving half circles: the upper one from (-1, 0) over (0, 1) to (1, 0), labelled
    -1; the lower one shifted to (1, 0.5) and flipped, labelled +1; Gaussian noise on both."""
    upper, lower = n // 2, n - n // 2
    angles_up = np.linspace(0, math.pi, upper)
    angles_low = np.linspace(0, math.pi, lower)
    points = np.concatenate([
        np.stack([np.cos(angles_up), np.sin(angles_up)], axis=1),
        np.stack([1 - np.cos(angles_low), 0.5 - np.sin(angles_low)], axis=1),
    ])
    points += np.random.default_rng(seed).normal(scale=noise, size=points.shape)
    labels = np.concatenate([-np.ones(upper), np.ones(lower)])
    return points, labels


@dataclass
class Trained:
    model: nn.MLP
    result: cr.OptimizeResult
    accuracy: float


def svm_loss(model: nn.MLP, x1: cr.Node, x2: cr.Node, y: cr.Node) -> cr.Node:
    """One point's share of micrograd's demo loss: relu(1 - y * score) + L2 * sum(p * p)."""
    margin = (1 + -y * model([x1, x2])).relu()
    return margin + L2 * sum(p * p for p in model.parameters())


def train(client: cr.Client, points: np.ndarray, labels: np.ndarray,
          on_step=None, cache: bool = True) -> Trained:
    """One /v1/optimize call: 100 SGD steps over the mean loss, lr 1.0 -> 0.1 linearly; then
    one /v1/evaluate over the points with the trained params for the accuracy."""
    model = nn.MLP(2, [16, 16, 1], seed=SEED)
    x1, x2, y = cr.input("x1"), cr.input("x2"), cr.input("y")
    result = client.optimize(
        svm_loss(model, x1, x2, y), params=model.parameters(), optimizer="sgd", lr=1.0,
        steps=STEPS, lr_schedule={"name": "linear", "end": 0.1}, on_step=on_step, cache=cache,
        batch={x1: points[:, 0], x2: points[:, 1], y: labels},
    )
    trained = Trained(model, result, 0.0)
    predicted = np.sign(scores(client, trained, points))
    trained.accuracy = float(np.mean(predicted == labels))
    return trained


def scores(client: cr.Client, trained: Trained, points: np.ndarray) -> np.ndarray:
    """The trained network's score at each point: one batched /v1/evaluate reporting only
    the score, as base64."""
    x1, x2 = cr.input("x1"), cr.input("x2")
    score = trained.model([x1, x2])
    answer = client.evaluate(score, inputs=trained.result.params, wrt=[score], encoding="b64",
                             batch={x1: points[:, 0], x2: points[:, 1]})
    return np.asarray(answer.value)


def draw_boundary(client: cr.Client, trained: Trained, points: np.ndarray, labels: np.ndarray,
                  path: str) -> bool:
    """The decision boundary over the points, as a PNG; False when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    xs = np.linspace(points[:, 0].min() - 1, points[:, 0].max() + 1, 150)
    ys = np.linspace(points[:, 1].min() - 1, points[:, 1].max() + 1, 150)
    grid_x, grid_y = np.meshgrid(xs, ys)
    grid = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    surface = scores(client, trained, grid).reshape(grid_x.shape)
    figure, axes = plt.subplots(figsize=(6, 5))
    sides = np.where(surface > 0, 1.0, -1.0)  # coloured as the labels are
    axes.contourf(grid_x, grid_y, sides, levels=[-2, 0, 2], cmap="Spectral", vmin=-1, vmax=1,
                  alpha=0.3)
    axes.scatter(points[:, 0], points[:, 1], c=labels, s=40, cmap="Spectral", vmin=-1, vmax=1,
                 edgecolors="k")
    axes.set_title(f"two moons: {trained.accuracy:.0%} training accuracy "
                   f"after {trained.result.steps} steps")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return True


# What installs matplotlib beside the SDK (the SDK is in the .venv of `make run` already).
MATPLOTLIB_HINT = "pip install matplotlib"


def accuracy_line(trained: Trained) -> str:
    """"training accuracy 100% after 100 steps", and why the run ended when it ended early."""
    result = trained.result
    early = "" if result.stopped == "steps" else f" (stopped early: {result.stopped})"
    return f"training accuracy {trained.accuracy:.0%} after {result.steps} steps{early}"


def main(argv: list[str] | None = None) -> Trained:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CHAINRULE_URL", "http://localhost:8000"))
    parser.add_argument("--png", default="moons.png", help="where to draw the boundary")
    args = parser.parse_args(argv)
    random.seed(SEED)
    points, labels = two_moons()

    def report(step: cr.Step) -> None:
        if step.step % 10 == 0:
            print(f"step {step.step:3d}  loss {float(step.value):.4f}")

    with cr.Client(args.url, timeout=120) as client:
        trained = train(client, points, labels, on_step=report)
        print(accuracy_line(trained))
        if draw_boundary(client, trained, points, labels, args.png):
            print(f"decision boundary drawn to {args.png}")
        else:
            print(f"matplotlib is not installed: no PNG ({MATPLOTLIB_HINT})")
    return trained


if __name__ == "__main__":
    sys.exit(0 if main().accuracy >= 0.95 else 1)
