"""Refused attrs keep the canonical text they always had: `_as_given` (an explicit stack since
this session) writes, for every value nested less than its cut, the very text the recursive
reading of before wrote (reproduced here as the reference), so no request hash moved."""

from __future__ import annotations

import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.canonical import _DEEPEST_GIVEN, _as_given
from schemas.jsontext import spell_float


def recursive_as_given(value: object) -> object:
    """The reading of refused attrs before this session, one call per level."""
    if type(value) is float and value - value != 0.0:
        return {"nonfinite": spell_float(value)}
    if isinstance(value, list | tuple):
        return [recursive_as_given(item) for item in value]
    if isinstance(value, dict):
        return {key: recursive_as_given(item) for key, item in value.items()}
    return value


def text(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


leaves = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5)
          | st.sampled_from([math.inf, -math.inf, math.nan, -0.0]))


def nested(children):
    return (st.lists(children, max_size=4) | st.lists(children, max_size=3).map(tuple)
            | st.dictionaries(st.text(max_size=4), children, max_size=3))


json_like = st.recursive(leaves, nested, max_leaves=30)


@st.composite
def deep(draw) -> object:
    """A JSON-like value wrapped in up to 40 levels of lists, tuples and objects."""
    value = draw(json_like)
    for _ in range(draw(st.integers(0, 40))):
        wrap = draw(st.sampled_from(["list", "tuple", "dict"]))
        siblings = draw(st.lists(leaves, max_size=2))
        if wrap == "dict":
            value = {"k": value, **{f"s{i}": s for i, s in enumerate(siblings)}}
        else:
            value = [*siblings, value] if wrap == "list" else (value, *siblings)
    return value


@settings(max_examples=600, deadline=None)
@given(deep())
def test_as_given_writes_what_the_recursive_reading_wrote(value):
    assert text(_as_given(value)) == text(recursive_as_given(value))


def test_as_given_agrees_just_above_its_cut():
    value: object = [1.5, math.inf]
    for depth in range(_DEEPEST_GIVEN - 1):
        value = [value] if depth % 2 else {"k": value, "n": -math.inf}
    assert text(_as_given(value)) == text(recursive_as_given(value))
