"""Every graph fault the engine reports, with its contract code and the node it names."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from engine import (
    Cycle,
    EngineError,
    Graph,
    Limits,
    bind_sources,
    compile_plan,
    run_graph,
)
from engine import ops as engine_ops
from tests.engine.graphs import chain, graph, node

X = node("x", "input", value=1.0)
V = node("v", "input", value=[1.0, 2.0, 3.0])
M = node("m", "input", value=np.ones((3, 4)))


def _fault(g: Graph, **kwargs) -> EngineError:
    with pytest.raises(EngineError) as info:
        run_graph(g, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("g", "code", "node_id"),
    [
        (graph(X, node("f", "frobnicate", ["x"]), output="f"), "unknown_op", "f"),
        (graph(X, node("f", "exp", ["nope"]), output="f"), "unknown_node", "f"),
        (graph(X, node("f", "exp", ["x"]), output="zzz"), "unknown_node", "zzz"),
        (graph(X, node("x", "exp", ["x"]), output="x"), "duplicate_id", "x"),
        (graph(X, node("f", "exp", ["f"]), output="f"), "cycle", "f"),
        (graph(X, node("a", "add", ["x", "c"]), node("b", "exp", ["a"]), node("c", "neg", ["b"]),
               output="c"), "cycle", "a"),
        (graph(X, node("f", "exp", ["x", "x"]), output="f"), "arity", "f"),
        (graph(X, node("f", "exp", ["x"], value=2.0), output="f"), "validation_error", "f"),
        (graph(X, node("f", "add", ["x"]), output="f"), "arity", "f"),
        (graph(X, node("f", "sub", ["x", "x", "x"]), output="f"), "arity", "f"),
        (graph(X, node("f", "input", ["x"], value=1.0), output="f"), "arity", "f"),
        (graph(X, node("f", "scale", ["x"]), output="f"), "bad_attr", "f"),
        (graph(X, node("f", "scale", ["x"], a="2"), output="f"), "bad_attr", "f"),
        (graph(X, node("f", "scale", ["x"], a=True), output="f"), "bad_attr", "f"),
        (graph(X, node("f", "scale", ["x"], a=1, b=2), output="f"), "bad_attr", "f"),
        (graph(X, node("f", "exp", ["x"], axis=1), output="f"), "bad_attr", "f"),
        (graph(V, node("f", "sum", ["v"], axis=1), output="f"), "bad_attr", "f"),
        (graph(V, node("f", "sum", ["v"], axis=[0, 0]), output="f"), "bad_attr", "f"),
        (graph(V, node("f", "sum", ["v"], keepdims=1), output="f"), "bad_attr", "f"),
        (graph(V, node("f", "softmax", ["v"], axis=2), output="f"), "bad_attr", "f"),
        (graph(X, node("f", "softmax", ["x"]), output="f"), "bad_attr", "f"),
        (graph(M, node("f", "transpose", ["m"], axes=[0, 0]), output="f"), "bad_attr", "f"),
        (graph(M, node("f", "reshape", ["m"], shape=[-1, -1]), output="f"), "bad_attr", "f"),
        (graph(M, node("f", "reshape", ["m"], shape=[5, -1]), output="f"), "shape_mismatch", "f"),
        (graph(M, node("f", "reshape", ["m"], shape=[2, 2]), output="f"), "shape_mismatch", "f"),
        (graph(V, M, node("f", "add", ["v", "m"]), output="f"), "shape_mismatch", "f"),
        (graph(V, M, node("f", "matmul", ["m", "v"]), output="f"), "shape_mismatch", "f"),
        (graph(X, V, node("f", "matmul", ["x", "v"]), output="f"), "shape_mismatch", "f"),
        (graph(node("x", "input"), node("f", "exp", ["x"]), output="f"), "missing_input", "x"),
        (graph(node("c", "const"), node("f", "exp", ["c"]), output="f"), "missing_input", "c"),
        (graph(node("x", "input", value=np.inf), node("f", "exp", ["x"]), output="f"),
         "nonfinite_input", "x"),
        (graph(node("x", "input", value=[1.0, np.nan]), node("f", "exp", ["x"]), output="f"),
         "nonfinite_input", "x"),
    ],
)
def test_graph_faults(g, code, node_id):
    fault = _fault(g)
    assert (fault.code, fault.node) == (code, node_id)
    assert fault.message


def test_unknown_input_key_and_unknown_wrt():
    g = graph(X, node("f", "exp", ["x"]), output="f")
    assert (_fault(g, inputs={"f": np.float64(1)}).code, _fault(g, inputs={"q": 1.0}).node) == (
        "unknown_node", "q")
    assert _fault(g, wrt=["nope"]).node == "nope"


def test_seed_shape_must_match_the_output():
    g = graph(V, node("f", "exp", ["v"]), output="f")
    fault = _fault(g, seed=np.ones(2))
    assert (fault.code, fault.node) == ("shape_mismatch", "f")
    assert _fault(g, seed=np.array([1.0, np.inf, 1.0])).code == "nonfinite_input"


def test_nonfinite_inputs_pass_when_allowed():
    g = graph(node("x", "input", value=np.inf), node("f", "neg", ["x"]), output="f")
    assert run_graph(g, allow_nonfinite=True).value == -np.inf


def test_validation_runs_before_arithmetic(monkeypatch):
    """Compiling calls no forward rule: a shape fault after an exp is found without running it."""

    def forbidden(*args, **kwargs):
        raise AssertionError("compiling ran arithmetic")

    monkeypatch.setitem(engine_ops.OPS, "exp", replace(engine_ops.OPS["exp"], forward=forbidden))
    g = graph(M, V, node("e", "exp", ["m"]), node("f", "add", ["e", "v"]), output="f")
    sources = bind_sources(g)
    with pytest.raises(EngineError) as info:
        compile_plan(g, {k: v.shape for k, v in sources.items()})
    assert (info.value.code, info.value.node) == ("shape_mismatch", "f")
    fine = graph(M, node("e", "exp", ["m"]), output="e")
    assert compile_plan(fine, {"m": (3, 4)}).shape_of("e") == (3, 4)


@pytest.mark.parametrize(
    ("limits", "node_id"),
    [
        (Limits(max_nodes=1), None),
        (Limits(max_elements=11), "m"),
        (Limits(max_total_elements=20), "f"),
    ],
)
def test_limits_raise_too_large(limits, node_id):
    g = graph(M, node("f", "exp", ["m"]), output="f")
    sources = bind_sources(g)
    with pytest.raises(EngineError) as info:
        compile_plan(g, {k: v.shape for k, v in sources.items()}, limits)
    assert (info.value.code, info.value.node) == ("too_large", node_id)


def test_matmul_output_over_the_limit_is_refused_before_allocating():
    g = graph(node("a", "input", value=np.ones((3000, 1))), node("b", "input",
              value=np.ones((1, 3000))), node("f", "matmul", ["a", "b"]), output="f")
    assert _fault(g, limits=Limits(max_elements=1_000_000)).node == "f"


def test_deadline_aborts_a_run():
    g = chain(5000)
    fault = _fault(g, deadline=time.monotonic() - 1)
    assert fault.code == "deadline_exceeded"


@pytest.mark.parametrize("op, said", [("exp", "an 'exp' gate"), ("neg", "a 'neg' gate")])
def test_a_value_on_a_gate_is_refused_with_the_right_article(op, said):
    g = graph(X, node("f", op, ["x"], value=1.0), output="f")
    with pytest.raises(EngineError) as info:
        bind_sources(g)
    assert said in info.value.message and info.value.node == "f"


@pytest.mark.parametrize("length", [9, 10, 11])
def test_a_cycle_message_counts_the_nodes_of_the_cycle(length):
    ring = [f"n{k}" for k in range(length)]
    message = Cycle.through(ring).args[0]
    if length <= 10:  # named in full, walked round to its first node
        assert message.endswith(" -> ".join([*ring, "n0"]))
    else:
        assert message.endswith(f"n9 -> ... ({length:,} nodes in all)")
