"""parse_json: orjson, with 1e309 read as infinity and everything that is not JSON refused."""

from __future__ import annotations

import math

import pytest

from schemas import BadJson, parse_json
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
