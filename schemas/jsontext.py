"""JSON text in and out: request bodies parsed with orjson, and the non-finite spellings.

The wire writes NaN and the infinities as the strings "NaN", "Infinity" and "-Infinity"
(JSON has no such numbers). A number literal too large for a float64, such as `1e309`, is read
as infinity, as Python's json reads it, so that the engine can report it as a non-finite input
rather than the body being refused as unreadable. JSON integers have no range: one outside
orjson's 64-bit range (-2**63 to 2**64 - 1) is read as the nearest float.
"""

from __future__ import annotations

import json
import math

import orjson

# The one place the wire's spellings of non-finite numbers are written down.
NAN, INFINITY, NEG_INFINITY = "NaN", "Infinity", "-Infinity"
NONFINITE_SPELLINGS: dict[str, float] = {NAN: math.nan, INFINITY: math.inf, NEG_INFINITY: -math.inf}

# The only refusal of orjson's that stdlib json reads differently (as an infinite float).
_ORJSON_INFINITE_NUMBER = "number is infinity"
# orjson reads an integer literal as an int inside this range and as a float outside it; the
# stdlib fallback does the same, so that a body reads alike whichever parser reads it.
_ORJSON_INT_MIN = -(2**63)
_ORJSON_INT_MAX = 2**64 - 1
# Longer literals ("-" and 20 digits) are outside the range: read them as floats straight
# away rather than building a huge int.
_MAX_INT_TEXT = 21


class BadJson(ValueError):
    """The body is not JSON (HTTP 400, code bad_json); the message is the parser's finding."""

    code = "bad_json"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.node = None
        self.details = None


def parse_json(body: bytes | str) -> object:
    """Parse a request body; raise BadJson when it is not (UTF-8) JSON.

    Bare NaN / Infinity literals are not JSON and are refused; a number literal beyond float64's
    range reads as an infinity.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if _ORJSON_INFINITE_NUMBER not in error.msg:
            raise BadJson(str(error)) from None
    return _parse_with_infinities(body)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")


def _parse_int(text: str) -> int | float:
    if len(text) <= _MAX_INT_TEXT:
        number = int(text)
        if _ORJSON_INT_MIN <= number <= _ORJSON_INT_MAX:
            return number
    return float(text)


def _parse_with_infinities(body: bytes | str) -> object:
    try:
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray | memoryview) else body
        data = json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int)
        # orjson refuses lone surrogates, which stdlib json accepts; refuse them here too.
        orjson.dumps(data)
    except (ValueError, RecursionError, orjson.JSONEncodeError) as error:
        raise BadJson(str(error)) from None
    return data


def spell_float(value: float) -> float | str:
    """A float as the wire writes it: itself when finite, else its spelling."""
    if value - value == 0.0:
        return value
    if value != value:
        return NAN
    return INFINITY if value > 0 else NEG_INFINITY
