"""Every op of the catalog against centred finite differences, over the contract's shapes."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from engine import OPS, compile_plan, gradcheck
from tests.engine.cases_v11 import V11_CASES
from tests.engine.graphs import graph, node

SHAPES = [(), (4,), (3, 4), (1, 4)]
BROADCAST_PAIRS = [((), ()), ((4,), ()), ((3, 4), (4,)), ((3, 4), (1, 4)), ((1, 4), (3, 1)),
                   ((4,), (4,))]

# op -> list of (input shapes, attrs, domain); domain "positive" keeps log/sqrt/inv defined.
CASES: dict[str, list] = {
    "input": [([s], {}, "any") for s in SHAPES],  # checked through `scale` below
    "const": [([()], {}, "any")],
    "sub": [(list(p), {}, "any") for p in BROADCAST_PAIRS],
    "div": [(list(p), {}, "positive") for p in BROADCAST_PAIRS],
    "matmul": [
        ([(4,), (4,)], {}, "any"), ([(3, 4), (4,)], {}, "any"), ([(4,), (4, 3)], {}, "any"),
        ([(3, 4), (4, 2)], {}, "any"), ([(2, 3, 4), (4, 5)], {}, "any"),
        ([(2, 3, 4), (1, 4, 2)], {}, "any"), ([(1, 4), (4, 1)], {}, "any"),
    ],
    "transpose": [([()], {"axes": None}, "any"), ([(3, 4)], {"axes": None}, "any"),
                  ([(1, 4)], {"axes": [1, 0]}, "any"), ([(2, 3, 4)], {"axes": [1, 0, 2]}, "any")],
    "reshape": [([()], {"shape": []}, "any"), ([(4,)], {"shape": [2, 2]}, "any"),
                ([(3, 4)], {"shape": [-1]}, "any"), ([(1, 4)], {"shape": [4, 1]}, "any")],
}
for _name in ("add", "mul", "max", "min"):
    CASES[_name] = [(list(p), {}, "any") for p in BROADCAST_PAIRS] + [
        ([(3, 4), (4,), ()], {}, "any"), ([(), (), (), ()], {}, "any")]
for _name, _attrs in {"neg": {}, "add_const": {"c": 1.5}, "scale": {"a": -2.0},
                      "pow": {"exponent": 3.0}, "exp": {}, "sigmoid": {}, "tanh": {},
                      "abs": {}, "relu": {}}.items():
    CASES[_name] = [([s], _attrs, "any") for s in SHAPES]
for _name, _attrs in {"inv": {}, "log": {}, "sqrt": {}}.items():
    CASES[_name] = [([s], _attrs, "positive") for s in SHAPES]
CASES["pow"] += [([s], {"exponent": 0.5}, "positive") for s in SHAPES]
for _name in ("sum", "mean"):
    CASES[_name] = [([s], {}, "any") for s in SHAPES] + [
        ([(3, 4)], {"axis": 0}, "any"), ([(3, 4)], {"axis": -1, "keepdims": True}, "any"),
        ([(3, 4)], {"axis": [0, 1]}, "any"), ([(1, 4)], {"axis": 0, "keepdims": True}, "any"),
        ([(2, 3, 4)], {"axis": [0, 2]}, "any"),
    ]
for _name in ("softmax", "log_softmax"):
    CASES[_name] = [([(4,)], {}, "any"), ([(3, 4)], {}, "any"), ([(3, 4)], {"axis": 0}, "any"),
                    ([(1, 4)], {"axis": -1}, "any"), ([(1, 4)], {"axis": 0}, "any")]
CASES.update(V11_CASES)


def _case_params():
    for name, cases in sorted(CASES.items()):
        for k, (shapes, attrs, domain) in enumerate(cases):
            yield pytest.param(name, shapes, attrs, domain, id=f"{name}-{k}-{shapes}")


def test_every_op_has_a_case():
    assert set(CASES) == set(OPS), "ops without a gradient case: " + ", ".join(
        sorted(set(OPS) - set(CASES)))


def _values(rng, shape, domain):
    magnitude = rng.uniform(0.5, 2.0, size=shape)
    if domain == "positive":
        return magnitude
    return magnitude * rng.choice([-1.0, 1.0], size=shape)


@pytest.mark.parametrize(("name", "shapes", "attrs", "domain"), list(_case_params()))
def test_op_matches_finite_differences(name, shapes, attrs, domain):
    rng = np.random.default_rng(zlib.crc32(f"{name}{shapes}{attrs}".encode()))
    if OPS[name].is_source:
        # a source is checked through a gate that reads it
        leaf = node("a0", name, value=_values(rng, shapes[0], domain))
        nodes = [leaf, node("f", "scale", ["a0"], a=3.0)]
    else:
        nodes = [node(f"a{k}", "input", value=_values(rng, s, domain)) for k, s in
                 enumerate(shapes)]
        nodes.append(node("f", name, [f"a{k}" for k in range(len(shapes))], **attrs))
    g = graph(*nodes, output="f")
    sources = {n.id: n.value for n in nodes if n.value is not None}
    plan = compile_plan(g, {k: v.shape for k, v in sources.items()})
    seed = rng.normal(size=plan.shape_of("f"))
    check = [n.id for n in nodes if n.op == "input"]
    if name == "const":
        # consts are not checked by gradcheck; compare their gradient by hand
        result = plan.run(sources, seed=seed)
        assert result.grads["a0"] == pytest.approx(3.0 * float(seed))
        return
    for input_id, outcome in gradcheck(plan, sources, check=check, seed=seed, eps=1e-6).items():
        assert outcome.max_rel_error < 1e-6, (input_id, outcome)
        assert np.shape(outcome.analytic) == plan.shape_of(input_id)
