"""The op table's rows: what they declare, what derives from them, the helpers around them."""

from __future__ import annotations

import numpy as np
import pytest

from engine import (
    EXECUTORS,
    OP_TABLE,
    OPS,
    BadAttr,
    NonfiniteInput,
    Op,
    bind_sources,
    check_seed,
    checked_attrs,
    compile_plan,
    input_ids,
)
from engine.ops import SCALAR_OPS, same_shape
from tests.engine.graphs import graph, node


def test_rows_are_keyword_only_and_check_themselves():
    with pytest.raises(TypeError):
        Op("neg", (1, 1), "-x", "-x")  # positional rows are refused
    with pytest.raises(ValueError, match="a gate needs"):
        Op(name="half", arity=(1, 1), doc="x / 2", symbol="½", forward=lambda x: x / 2)
    with pytest.raises(ValueError, match="a source has no"):
        Op(name="seeded", arity=(0, 0), doc="d", symbol="s", is_source=True, forward=abs)
    with pytest.raises(ValueError, match="only a source"):
        Op(name="v", arity=(1, 1), doc="d", symbol="v", is_variable=True,
           infer_shape=same_shape, forward=abs, vjp=abs)


def test_scalar_ops_are_the_rows_with_float_kernels_and_the_sources():
    with_kernels = {op.name for op in OP_TABLE if op.scalar is not None}
    sources = {op.name for op in OP_TABLE if op.is_source}
    assert with_kernels | sources == SCALAR_OPS
    assert {"matmul", "softmax", "log_softmax"}.isdisjoint(SCALAR_OPS)
    identities = {op.name for op in OP_TABLE if op.scalar is not None and op.scalar.identity}
    assert identities == {"sum", "mean", "transpose", "reshape",
                          # catalog 1.1
                          "amax", "amin", "logsumexp", "slice", "broadcast_to"}


@pytest.mark.parametrize(
    ("op", "attrs", "text"),
    [("add_const", {"c": 1.0}, "+1"), ("add_const", {"c": -2.5}, "-2.5"),
     ("scale", {"a": -1.0}, "*-1"), ("pow", {"exponent": 2.0}, "**2"),
     ("sigmoid", {}, "σ"), ("sum", {"axis": None, "keepdims": False}, "Σ")],
)
def test_labels_come_from_the_rows(op, attrs, text):
    assert OPS[op].label_text(attrs, lambda x: f"{x:g}") == text


def test_checked_attrs_fill_defaults_and_coerce_numbers():
    assert checked_attrs(OPS["sum"], {}, "s") == {"axis": None, "keepdims": False}
    assert checked_attrs(OPS["sum"], {"axis": [1, 0]}, "s") == {"axis": (1, 0), "keepdims": False}
    assert checked_attrs(OPS["scale"], {"a": 2}, "s") == {"a": 2.0}
    with pytest.raises(BadAttr) as info:
        checked_attrs(OPS["scale"], {"a": 2, "b": 1}, "s")
    assert info.value.node == "s"


def test_input_ids_are_the_variable_sources_in_order():
    g = graph(node("b", "input", value=1.0), node("k", "const", value=2.0),
              node("a", "input", value=3.0), node("f", "mul", ["a", "b", "k"]), output="f")
    assert input_ids(g.nodes) == ["b", "a"]
    plan = compile_plan(g, {k: v.shape for k, v in bind_sources(g).items()})
    assert input_ids(plan.nodes) == ["a", "b"]  # topological, then by id


def test_check_seed_names_the_output_and_honours_allow_nonfinite():
    with pytest.raises(NonfiniteInput) as info:
        check_seed(np.array([1.0, np.nan]), "out")
    assert info.value.node == "out"
    check_seed(np.array([np.inf]), "out", allow_nonfinite=True)
    check_seed(None, "out")


def test_the_executor_is_chosen_once_and_kept_on_the_plan():
    g = graph(node("x", "input", value=[1.0, 2.0]), node("f", "exp", ["x"]), output="f")
    plan = compile_plan(g, {"x": (2,)})
    assert plan.executor is EXECUTORS["tensor"] and plan.strategy == "tensor"
    with pytest.raises(ValueError, match="all-scalar"):
        compile_plan(g, {"x": (2,)}, strategy="scalar")
