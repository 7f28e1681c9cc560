"""The levels executor's merged calls: gates whose attrs differ only in their op's array attrs
share one numpy call, and give exactly the floats the per-node scalar executor gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import OPS, bind_sources, compile_plan
from engine.executors.levels import _group_key
from engine.ops import Attr, Op
from tests.engine.graphs import compiled, graph, node

# Ops whose numpy rules and float kernels are the same IEEE arithmetic, so that the levels and
# scalar executors must agree to the last bit (transcendental kernels may differ by an ulp).
ARITHMETIC = ("add", "add3", "mul", "sub", "scale", "add_const", "leaky_relu", "clip", "relu",
              "neg")


def _gate(rng: np.random.Generator, name: str, kind: str, pick) -> object:
    """One gate of `kind` over earlier nodes picked by `pick`, attrs drawn from `rng` (three
    decimals: many distinct values, some repeated)."""
    def number(low=-1.5, high=1.5):
        return round(float(rng.uniform(low, high)), 3)

    if kind in ("add", "mul", "sub"):
        return node(name, kind, [pick(), pick()])
    if kind == "add3":
        return node(name, "add", [pick(), pick(), pick()])
    if kind == "scale":
        return node(name, "scale", [pick()], a=number())
    if kind == "add_const":
        return node(name, "add_const", [pick()], c=number())
    if kind == "leaky_relu":
        attrs = {"slope": number(0.0, 0.5)} if rng.random() < 0.8 else {}
        return node(name, "leaky_relu", [pick()], **attrs)
    if kind == "clip":
        lo, hi = sorted((number(-1.0, 0.2), number(-0.2, 1.0)))
        lo, hi = (None if rng.random() < 0.25 else lo), (None if rng.random() < 0.25 else hi)
        return node(name, "clip", [pick()], lo=lo, hi=hi)
    return node(name, kind, [pick()])


def _random_dag(seed: int, inputs: int, gates: int, kinds=ARITHMETIC):
    """Gates over random earlier nodes, as wide as random picks make them."""
    rng = np.random.default_rng(seed)
    nodes = [node(f"x{i}", "input", value=v)
             for i, v in enumerate(rng.uniform(-0.9, 0.9, inputs))]

    def pick():
        return nodes[int(rng.integers(len(nodes)))].id

    for k in range(gates):
        nodes.append(_gate(rng, f"g{k}", kinds[int(rng.integers(len(kinds)))], pick))
    nodes.append(node("out", "add", [nodes[-1].id, nodes[-2].id, nodes[-3].id]))
    return graph(*nodes, output="out")


def _assert_identical(fast, slow):
    """The same floats to the bit, signed zeros and nan included."""
    assert fast.order == slow.order
    pairs = [(fast.values, slow.values)] + ([(fast.grads, slow.grads)] if slow.grads else [])
    for got, expected in pairs:
        a = np.array([got[name] for name in fast.order], dtype=np.float64)
        b = np.array([expected[name] for name in fast.order], dtype=np.float64)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        finite = ~np.isnan(a)
        np.testing.assert_array_equal(a[finite].view(np.int64), b[finite].view(np.int64))


def _groups(plan):
    return [group for level in plan.state.levels for group in level.groups]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), inputs=st.integers(2, 60), gates=st.integers(20, 600),
       wrt_share=st.sampled_from([None, 0.05, 0.3, 1.0]), forward_only=st.booleans())
def test_merged_calls_give_the_scalar_executors_floats(seed, inputs, gates, wrt_share,
                                                       forward_only):
    g = _random_dag(seed, inputs, gates)
    levels, sources = compiled(g, "levels")
    scalar = compiled(g, "scalar")[0]
    wrt = None
    if wrt_share is not None:
        rng = np.random.default_rng(seed + 1)
        ids = [n.id for n in g.nodes]
        wrt = rng.choice(ids, size=max(1, int(len(ids) * wrt_share)), replace=False).tolist()
    _assert_identical(levels.run(sources, wrt=wrt, forward_only=forward_only),
                      scalar.run(sources, wrt=wrt, forward_only=forward_only))


def test_a_wide_dag_of_many_factors_runs_in_few_calls():
    """Thousands of distinct attr values, yet one call per (level, op, arity, null bounds)."""
    g = _random_dag(7, 500, 12_000)
    levels, sources = compiled(g, "levels")
    values = {(n.op, k, v) for n in g.nodes for k, v in n.attrs.items() if v is not None}
    assert len(values) > 3_000
    depth = len(levels.state.levels)
    # 9 op and arity pairs, clip in 4 null patterns, leaky_relu with its slope or the default
    assert len(_groups(levels)) <= depth * (9 + 3 + 1)
    for wrt in (None, [n.id for n in g.nodes[:500]], [n.id for n in g.nodes[::97]]):
        _assert_identical(levels.run(sources, wrt=wrt), compiled(g, "scalar")[0].run(sources,
                                                                                      wrt=wrt))


def test_only_array_attrs_merge():
    """scale's factors share a call, pow's exponents do not (numpy's scalar-exponent routes
    differ from its array ones), nor clip with a null bound and clip with a number."""
    nodes = [node(f"x{i}", "input", value=0.1 * i + 0.05) for i in range(12)]
    gates = [node(f"s{i}", "scale", [f"x{i}"], a=0.5 + i) for i in range(12)]
    gates += [node(f"p{i}", "pow", [f"x{i}"], exponent=[2.0, 3.0, 0.5][i % 3]) for i in range(12)]
    gates += [node(f"c{i}", "clip", [f"x{i}"], lo=0.3 + 0.01 * i if i % 2 else None, hi=0.9)
              for i in range(12)]
    g = graph(*nodes, *gates, node("out", "add", [n.id for n in gates]), output="out")
    plan, sources = compiled(g, "levels")
    calls = {}
    for group in _groups(plan):
        op = plan.ops[int(group.idx[0])].name
        calls.setdefault(op, []).append(group)
    assert len(calls["scale"]) == 1
    (scales,) = calls["scale"]
    np.testing.assert_array_equal(scales.columns["a"], [plan.attrs[i]["a"] for i in scales.idx])
    assert len(set(scales.columns["a"].tolist())) == 12
    assert len(calls["pow"]) == 3
    assert sorted("lo" in group.columns for group in calls["clip"]) == [False, True]
    _assert_identical(plan.run(sources), compiled(g, "scalar")[0].run(sources))


EDGE_X = np.array([0.0, -0.0, 1e-310, -1e-310, 0.3, -0.3, 2.5, -2.5, 1e308, -1e308, np.inf,
                   -np.inf, np.nan])


@pytest.mark.parametrize("op", sorted(name for name, op in OPS.items() if op.array_attrs))
def test_array_attrs_give_each_elements_own_result(op):
    """For every row declaring array attrs: forward and vjp with one attr value per element
    equal, bit for bit, the row computed with each value as a plain number."""
    row = OPS[op]
    rng = np.random.default_rng(len(op))
    x = np.tile(EDGE_X, 8)
    attrs = {}
    for name in row.array_attrs:
        attrs[name] = np.round(rng.uniform(-1.0, 1.0, x.size), 2)
        attrs[name][: EDGE_X.size] = 0.0  # a zero attr against every edge value
    if {"lo", "hi"} <= attrs.keys():
        attrs["lo"], attrs["hi"] = np.minimum(attrs["lo"], attrs["hi"]), np.maximum(
            attrs["lo"], attrs["hi"])
    g = rng.uniform(-2.0, 2.0, x.size)
    with np.errstate(all="ignore"):
        out = row.forward(x, **attrs)
        (grad,) = row.vjp(g, out, x, **attrs)
        for k in range(x.size):
            one = {name: float(values[k]) for name, values in attrs.items()}
            out_k = row.forward(x[k : k + 1], **one)
            (grad_k,) = row.vjp(g[k : k + 1], out_k, x[k : k + 1], **one)
            np.testing.assert_array_equal(np.asarray(out[k]).view(np.int64),
                                          np.asarray(out_k[0]).view(np.int64))
            np.testing.assert_array_equal(np.asarray(grad[k]).view(np.int64),
                                          np.asarray(grad_k[0]).view(np.int64))


def test_array_attrs_must_be_number_attrs_of_an_elementwise_row():
    with pytest.raises(ValueError, match="array_attrs"):
        Op(name="bad", arity=(1, 1), doc="", symbol="", attrs=(Attr("axis", "axis", None),),
           infer_shape=lambda s, a, n: s[0], forward=lambda x, *, axis: x,
           vjp=lambda g, out, x, *, axis: (g,), elementwise=True, array_attrs=("axis",))
    with pytest.raises(ValueError, match="array_attrs"):
        Op(name="bad", arity=(1, 1), doc="", symbol="", attrs=(Attr("a", "number"),),
           infer_shape=lambda s, a, n: s[0], forward=lambda x, *, a: a * x,
           vjp=lambda g, out, x, *, a: (g * a,), array_attrs=("a",))


def test_clip_at_signed_zero_bounds_is_one_float_in_every_executor():
    """numpy's maximum and minimum give the bound when it equals x: 0.0 and -0.0 differ."""
    xs = [0.0, -0.0, 0.0, -0.0, np.nan]
    bounds = [{"lo": -0.0}, {"lo": 0.0}, {"hi": 0.0}, {"hi": -0.0}, {"lo": -0.0, "hi": 0.0}]
    nodes = [node(f"x{i}", "input", value=x) for i, x in enumerate(xs)]
    gates = [node(f"c{i}{j}", "clip", [f"x{i}"], **b)
             for i in range(len(xs)) for j, b in enumerate(bounds)]
    g = graph(*nodes, *gates, node("out", "add", [n.id for n in gates]), output="out")
    sources = bind_sources(g, allow_nonfinite=True)
    shapes = {k: v.shape for k, v in sources.items()}
    runs = {s: compile_plan(g, shapes, strategy=s).run(sources)
            for s in ("tensor", "scalar", "levels")}
    for strategy in ("scalar", "levels"):
        _assert_identical(runs[strategy], runs["tensor"])


def test_group_keys_order_as_the_triples_do_even_past_int64():
    rng = np.random.default_rng(1)
    arity, family = rng.integers(1, 4, 3000), rng.integers(0, 9, 3000)
    level = np.sort(rng.integers(0, 30, 3000))
    for scale in (1, 2**55):  # the second makes the packed key pass int64: ranks instead
        key = _group_key(arity, family, level * scale)
        by_key = np.argsort(key, kind="stable")
        assert (by_key == np.lexsort((arity, family, level))).all()
        triples = list(zip(level.tolist(), family.tolist(), arity.tolist(), strict=True))
        assert len(set(key.tolist())) == len(set(triples))
