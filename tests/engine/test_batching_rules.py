"""Every op's batching rule against a loop over points of the op's own rules.

Driven by the gradient cases of test_op_gradients: every case of every gate, for each mix of
batched and shared inputs. A gate without a batching rule fails here (and in the table test).
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from engine import OP_TABLE, OPS
from engine.ops import (
    Batched,
    NotBatchable,
    Op,
    batching,
    checked_attrs,
    is_batchable,
    same_shape,
    unbroadcast,
    unbroadcast_points,
)
from tests.engine.test_op_gradients import CASES

B = 3


def test_every_gate_has_a_batching_rule():
    missing = [op.name for op in OP_TABLE if not is_batchable(op)]
    assert not missing, "ops without a batching rule: " + ", ".join(missing)


def test_a_gate_without_a_rule_is_refused_naming_the_node():
    bare = Op(name="bare", arity=(1, 1), doc="d", symbol="b", infer_shape=same_shape,
              forward=abs, vjp=abs)
    with pytest.raises(NotBatchable) as info:
        batching(bare, (True,), [()], {}, "n1")
    assert info.value.node == "n1"


def _mixes(arity: int):
    """Every assignment of batched/shared to the inputs with at least one batched."""
    return [flags for flags in itertools.product((True, False), repeat=arity) if any(flags)]


def _cases():
    for name, cases in sorted(CASES.items()):
        if OPS[name].is_source:
            continue
        for k, (shapes, attrs, domain) in enumerate(cases):
            for flags in _mixes(len(shapes)):
                mix = "".join("b" if f else "s" for f in flags)
                yield pytest.param(name, shapes, attrs, domain, flags, id=f"{name}-{k}-{mix}")


def _values(rng, shape, domain):
    magnitude = rng.uniform(0.5, 2.0, size=shape)
    if domain == "positive":
        return magnitude
    return magnitude * rng.choice([-1.0, 1.0], size=shape)


def _call(rule_vjp, takes_needs, g, out, xs, attrs):
    if takes_needs:
        return rule_vjp(g, out, *xs, needs=(True,) * len(xs), **attrs)
    return rule_vjp(g, out, *xs, **attrs)


@pytest.mark.parametrize(("name", "shapes", "attrs", "domain", "flags"), list(_cases()))
def test_batched_rule_equals_a_loop_over_points(name, shapes, attrs, domain, flags):
    op = OPS[name]
    rng = np.random.default_rng(zlib.crc32(f"{name}{shapes}{attrs}{flags}".encode()))
    attrs = checked_attrs(op, attrs, "f")
    xs = [_values(rng, (B, *s) if b else s, domain) for s, b in zip(shapes, flags, strict=True)]
    point = [[x[k] if b else x for x, b in zip(xs, flags, strict=True)] for k in range(B)]
    rule: Batched = batching(op, flags, [tuple(s) for s in shapes], attrs, "f")
    out = np.moveaxis(np.asarray(rule.forward(*xs, **rule.attrs)), rule.out_axis, 0)
    expected = np.stack([np.asarray(op.forward(*p, **attrs)) for p in point])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=0)

    g = rng.normal(size=out.shape)
    local = _call(rule.vjp, rule.vjp_takes_needs, np.moveaxis(g, 0, rule.out_axis),
                  np.moveaxis(out, 0, rule.out_axis), xs, rule.attrs)
    for j, (shape, batched) in enumerate(zip(shapes, flags, strict=True)):
        shape = tuple(shape)
        got = unbroadcast_points(local[j], shape) if batched else unbroadcast(local[j], shape)
        per_point = np.stack([
            unbroadcast(_call(op.vjp, op.vjp_takes_needs, g[k], expected[k], point[k], attrs)[j],
                        shape)
            for k in range(B)
        ])
        want = per_point if batched else per_point.sum(axis=0)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
