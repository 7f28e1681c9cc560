"""A refused attr's message shows its value (engine/ops/base.py `_shown`); whatever the value,
showing it never fails: a string whose repr the message cuts, digits and all, is a 422
bad_attr, not a 500, and a number-like run inside it is shown as sent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import BadAttr
from engine.ops.base import _shown


def _evaluate(client, attrs: dict):
    graph = {"nodes": [{"id": "x", "op": "input", "value": [1.0, 2.0]},
                       {"id": "s", "op": "scale", "inputs": ["x"], "attrs": attrs}],
             "output": "s"}
    return client.post("/v1/evaluate", json={"graph": graph})


@pytest.mark.parametrize("given_text", [
    "1.2.3e+5" + "a" * 500,  # not a number, cut from its closing quote
    "127.0.0.1e+80 " * 40,
    "1e+999999999," * 40,    # written out, a gigabyte of zeros per run
])
def test_a_long_string_attr_is_refused_with_its_text_shown(client, given_text):
    response = _evaluate(client, {"a": given_text})
    error = response.get_json()["error"]
    assert (response.status_code, error["code"], error["node"]) == (422, "bad_attr", "s")
    assert given_text[:20] in error["message"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=600)
    | st.from_regex(r"[\d.e+\-' \"\\]{1,500}", fullmatch=True),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(json_values | st.binary(max_size=450) | st.tuples(st.text(max_size=450), st.floats()))
def test_showing_any_value_never_fails(value):
    shown = _shown(value)
    assert len(shown) <= 80
    BadAttr(f"attr 'a' must be a number, got {shown}", "s")


def test_a_number_attr_given_a_list_is_not_said_to_be_past_the_integer_range(client):
    response = _evaluate(client, {"a": [1e30]})
    error = response.get_json()["error"]
    assert (response.status_code, error["code"]) == (422, "bad_attr")
    assert error["message"].startswith("attr 'a' must be a number, got [")
    assert "64-bit integer" not in error["message"]
