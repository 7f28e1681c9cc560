"""parse_json: orjson, with 1e309 read as infinity and everything that is not JSON refused."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import BadJson, load_request, parse_json
from schemas.jsontext import spell_float


def test_parses_json():
    assert parse_json(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert parse_json('{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"1e309", math.inf),
        (b"-1e309", -math.inf),
        (b'{"v": [1, 1e400, -2e999]}', {"v": [1, math.inf, -math.inf]}),
        (b'{"id": "\\u00e9", "v": 1e309}', {"id": "é", "v": math.inf}),
        (b'{"axis": 1, "v": 1e309}', {"axis": 1, "v": math.inf}),
    ],
)
def test_numbers_beyond_float64_read_as_infinity(body, expected):
    value = parse_json(body)
    assert value == expected
    if isinstance(value, dict):
        assert type(value.get("axis", 1)) is int


def test_huge_integers_read_as_floats_in_both_parsers():
    digits = b"1" + b"0" * 400
    assert parse_json(b"[12345678901234567890123]") == [1.2345678901234568e22]
    assert parse_json(b"[" + digits + b", 1e309]") == [math.inf, math.inf]


def both_readings(number: int) -> tuple[object, object]:
    """`number` as orjson reads it, and as the stdlib fallback (taken for 1e309) reads it."""
    alone = parse_json(f"[{number}]".encode())[0]
    beside_infinity = parse_json(f"[{number}, 1e309]".encode())[0]
    return alone, beside_infinity


@pytest.mark.parametrize(
    "number",
    [-9999999999999999999, -(2**63) - 1, 2**64, 10**20, -(10**20), 10**30, -(10**300)],
)
def test_integers_outside_64_bits_read_as_floats_in_both_parsers(number):
    for reading in both_readings(number):
        assert type(reading) is float and reading == float(number)


@pytest.mark.parametrize("number", [-(2**63), 2**63, 2**64 - 1, 0, -1, 10**19])
def test_integers_inside_64_bits_stay_integers_in_both_parsers(number):
    for reading in both_readings(number):
        assert type(reading) is int and reading == number


@given(st.integers(min_value=-(10**25), max_value=10**25))
def test_both_parsers_read_any_integer_alike(number):
    alone, beside_infinity = both_readings(number)
    assert type(alone) is type(beside_infinity) and alone == beside_infinity


def test_a_body_with_a_huge_integer_and_1e309_loads():
    body = (b'{"graph": {"nodes": [{"id": "x", "op": "input", "value": -9999999999999999999},'
            b'{"id": "y", "op": "input", "value": 1e309}], "output": "x"}}')
    x, y = load_request("gradients", parse_json(body)).graph.nodes
    assert x.value == -1e19 and y.value == math.inf


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"{'a': 1}",
        b"NaN",
        b"[Infinity]",
        b"[-Infinity, 1e309]",
        b"[NaN, 1e309]",
        b'["\\ud800", 1e309]',
        b'["\\ud800"]',
        b"\xff\xfe[1]",
        b'["\xe9", 1e309]',
        b"[1] [2]",
        b"[" * 2000 + b"]" * 2000,
    ],
)
def test_what_is_not_json_is_bad_json(body):
    with pytest.raises(BadJson) as caught:
        parse_json(body)
    assert caught.value.code == "bad_json"
    assert caught.value.message and caught.value.node is None


def test_spelling_of_floats():
    assert spell_float(1.5) == 1.5
    assert spell_float(math.nan) == "NaN"
    assert spell_float(math.inf) == "Infinity"
    assert spell_float(-math.inf) == "-Infinity"
