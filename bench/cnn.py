"""CNN benchmark: one small convolutional step, forward and backward, against PyTorch eager.

x (16, 3, 32, 32), w (16, 3, 3, 3): conv2d (padding 1) -> relu -> max_pool2d 2 -> sum, the
gradient of every node. chainrule runs a compiled plan (the service caches plans by
structure); PyTorch runs eager on CPU in float64 with as many threads as numpy's BLAS uses.
Both results are checked against each other (values and gradients of x and w, to 1e-10).
Run: `make bench` or `python -m bench.cnn [--quick]`.
"""

from __future__ import annotations

import argparse
import ctypes
import os

import numpy as np

from bench.engine import best_of
from engine import Graph, Node, compile_plan

X_SHAPE, W_SHAPE = (16, 3, 32, 32), (16, 3, 3, 3)


def numpy_blas_threads() -> int:
    """The thread count of the OpenBLAS numpy loaded, else the cores this process may use."""
    with open("/proc/self/maps") as maps:
        loaded = {line.split()[-1] for line in maps if "openblas" in line}
    for path in sorted(loaded):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                     "openblas_get_num_threads"):
            if hasattr(lib, name):
                return int(getattr(lib, name)())
    return len(os.sched_getaffinity(0))


def cnn_graph(x: np.ndarray, w: np.ndarray) -> Graph:
    return Graph((
        Node("x", "input", (), {}, x),
        Node("w", "input", (), {}, w),
        Node("conv", "conv2d", ("x", "w"), {"padding": 1}),
        Node("act", "relu", ("conv",), {}),
        Node("pool", "max_pool2d", ("act",), {"size": 2}),
        Node("loss", "sum", ("pool",), {}),
    ), "loss")


def torch_step(torch, x: np.ndarray, w: np.ndarray):
    """One eager forward and backward; answers the loss and the gradients of x and w."""
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    conv = torch.nn.functional.conv2d(tx, tw, padding=1)
    loss = torch.nn.functional.max_pool2d(torch.relu(conv), 2).sum()
    loss.backward()
    return loss, tx.grad, tw.grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats = 5 if args.quick else 30

    import torch

    threads = numpy_blas_threads()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=X_SHAPE), rng.normal(size=W_SHAPE)

    graph = cnn_graph(x, w)
    sources = {"x": x, "w": w}
    plan = compile_plan(graph, {"x": X_SHAPE, "w": W_SHAPE})
    ours = plan.run(sources)
    loss, gx, gw = torch_step(torch, x, w)
    np.testing.assert_allclose(ours.value, loss.item(), rtol=1e-10)
    np.testing.assert_allclose(ours.grads["x"], gx.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.grads["w"], gw.numpy(), rtol=1e-10, atol=1e-12)

    engine_time, torch_time = best_of(
        repeats, lambda: plan.run(sources), lambda: torch_step(torch, x, w))
    print(f"CNN step: x {X_SHAPE}, w {W_SHAPE}, conv2d padding 1 -> relu -> max_pool2d 2 -> sum")
    print(f"  threads: numpy's BLAS {threads}, torch.set_num_threads({threads}); float64, CPU")
    print(f"  chainrule plan run (forward+backward) {1e3 * engine_time:8.3f} ms")
    print(f"  PyTorch eager (forward+backward)      {1e3 * torch_time:8.3f} ms")
    print(f"  ratio chainrule / PyTorch             {engine_time / torch_time:8.3f}x"
          "   (target <= 2x)")


if __name__ == "__main__":
    main()
