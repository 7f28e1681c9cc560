"""Tensors on the wire: every accepted form, every rejection, exact round trips, size limits."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from marshmallow import ValidationError

from engine import NonfiniteInput, TooLarge, bind_sources
from schemas import load_request, parse_json
from schemas import tensors as tensor_module
from schemas.tensors import decode_tensor, element_limit, tensor_json
from tests.schemas.wire_cases import b64_tensor, float_arrays, single_node_request

WRITE = orjson.OPT_SERIALIZE_NUMPY


def value_errors(value: object) -> list[str]:
    """The messages of loading `value` as node a's value (the test fails if it loads)."""
    with pytest.raises(ValidationError) as caught:
        load_request("gradients", single_node_request(value))
    messages = caught.value.messages
    assert list(messages) == ["graph"]
    return messages["graph"]["nodes"][0]["value"]


def wire_round_trip(array: np.ndarray, encoding: str) -> np.ndarray:
    """Write `array` as a response would, read the text back as a request value would."""
    text = orjson.dumps({"v": tensor_json(array, encoding)}, option=WRITE)
    return decode_tensor(parse_json(text)["v"])


# ---------------------------------------------------------------- accepted forms


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, np.array(2.0)),
        (-2.5, np.array(-2.5)),
        ([1, 2.5], np.array([1.0, 2.5])),
        ([[1, 2], [3, 4]], np.array([[1.0, 2.0], [3.0, 4.0]])),
        ([], np.zeros(0)),
        ([[], []], np.zeros((2, 0))),
        ("NaN", np.array(math.nan)),
        (["Infinity", "-Infinity", 1], np.array([math.inf, -math.inf, 1.0])),
    ],
)
def test_accepted_forms_decode_to_float64(value, expected):
    array = decode_tensor(value)
    assert array.dtype == np.float64
    assert array.shape == expected.shape
    np.testing.assert_array_equal(array, expected)


def test_encoded_float32_widens_exactly():
    original = np.array([[1.5, -0.1], [3.0e38, 1e-45]], dtype=np.float32)
    array = decode_tensor(b64_tensor(original, "float32"))
    assert array.dtype == np.float64 and array.shape == (2, 2)
    np.testing.assert_array_equal(array, original.astype(np.float64))


def test_decoded_b64_array_is_writable_and_native():
    array = decode_tensor(b64_tensor(np.arange(6.0).reshape(2, 3)))
    assert array.flags.writeable and array.dtype == np.dtype(np.float64)
    assert array.shape == (2, 3)


# ---------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (True, "a boolean"),
        ([1, True], "element [1] is a boolean"),
        ([[1.0, 2.0], [False, 4.0]], "element [1][0] is a boolean"),
        ([1, None], "element [1] is null"),
        ("2", "a string other than NaN"),
        ("nan", "a string other than NaN"),
        (["1.5"], "element [0] is a string"),
        (["Infinity", "inf"], "element [1] is a string"),
        ([[1, 2], [3]], "ragged nested list: [1]"),
        ([[1, 2], 3], "ragged nested list: [1] is a number"),
        ([1, [2]], "ragged nested list: [1]"),
        ([{"a": 1}], "element [0] is an object"),
    ],
)
def test_malformed_values_are_refused_with_their_position(value, fragment):
    (message,) = value_errors(value)
    assert fragment in message


def test_null_value_is_refused():
    assert value_errors(None) == ["Field may not be null: a tensor is required."]


def test_too_many_dimensions_are_refused():
    value: object = 1.0
    for _ in range(tensor_module.MAX_NDIM + 1):
        value = [value]
    (message,) = value_errors(value)
    assert "at most 64 dimensions" in message


@pytest.mark.parametrize(
    ("encoded", "fragment"),
    [
        ({"dtype": "float16", "shape": [1], "b64": "AAA="}, '"dtype" must be one of'),
        ({"dtype": 64, "shape": [1], "b64": "AAA="}, '"dtype" must be one of'),
        ({"dtype": "float64", "shape": [-1], "b64": ""}, '"shape" must be a list'),
        ({"dtype": "float64", "shape": [1.0], "b64": "AAAAAAAAAAA="}, '"shape" must be'),
        ({"dtype": "float64", "shape": [True], "b64": "AAAAAAAAAAA="}, '"shape" must be'),
        ({"dtype": "float64", "shape": 1, "b64": "AAAAAAAAAAA="}, '"shape" must be'),
        ({"dtype": "float64", "shape": [2], "b64": "AAAAAAAAAAA="}, "holds 8 bytes"),
        ({"dtype": "float32", "shape": [1], "b64": "AAAAAAAAAAA="}, "needs 4"),
        ({"dtype": "float64", "shape": [1], "b64": "AAAAAAAAAAA"}, "base64 string"),
        ({"dtype": "float64", "shape": [1], "b64": "AAAAAAAA*AA="}, "base64 string"),
        ({"dtype": "float64", "shape": [1], "b64": "AAAAAAAAAAé="}, "base64 string"),
        ({"dtype": "float64", "shape": [1], "b64": 12}, "base64 string"),
        ({"dtype": "float64", "shape": [1]}, "lacks ['b64']"),
        ({"dtype": "float64", "shape": [], "b64": "AAAAAAAAAAA=", "order": "C"}, "unknown keys"),
    ],
)
def test_malformed_encoded_tensors_are_refused(encoded, fragment):
    (message,) = value_errors(encoded)
    assert fragment in message


def test_encoded_byte_count_is_checked_before_decoding(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("decoded although the byte count was wrong")

    monkeypatch.setattr(tensor_module, "b64decode", never)
    (message,) = value_errors({"dtype": "float64", "shape": [1000, 1000], "b64": "AAAA"})
    assert "holds 3 bytes; float64 x [1000, 1000] needs 8000000" in message


# ---------------------------------------------------------------- size limit


def test_too_large_encoded_tensor_is_refused_before_anything_is_decoded(monkeypatch):
    monkeypatch.setattr(tensor_module, "b64decode", lambda *a, **k: pytest.fail("decoded"))
    huge = {"dtype": "float64", "shape": [10**9, 10**9], "b64": ""}
    with pytest.raises(TooLarge) as caught:
        load_request("gradients", single_node_request(huge), max_elements=1000)
    assert caught.value.code == "too_large"
    assert caught.value.node == "a"
    assert "holds 1000000000000000000 elements; the limit is 1000" in caught.value.message


def test_too_large_nested_tensor_names_its_node():
    with pytest.raises(TooLarge) as caught:
        load_request("gradients", single_node_request([[1.0] * 10] * 10), max_elements=99)
    assert caught.value.node == "a"
    assert "holds 100 elements; the limit is 99" in caught.value.message


def test_too_large_inputs_value_names_the_input():
    data = single_node_request(1.0)
    data["inputs"] = {"a": b64_tensor(np.zeros(50))}
    with pytest.raises(TooLarge) as caught:
        load_request("gradients", data, max_elements=49)
    assert caught.value.node == "a"


def test_too_large_seed_is_refused():
    data = single_node_request(1.0)
    data["seed"] = [0.0] * 10
    with pytest.raises(TooLarge):
        load_request("gradients", data, max_elements=9)


def test_at_the_limit_is_accepted_and_the_limit_does_not_leak():
    request = load_request("gradients", single_node_request([1.0] * 10), max_elements=10)
    assert request.graph.nodes[0].value.shape == (10,)
    with element_limit(5):
        pass
    assert decode_tensor([1.0] * 10).size == 10


# ---------------------------------------------------------------- non-finite inputs


def test_nonfinite_values_load_and_the_engine_refuses_them_naming_the_node():
    request = load_request("gradients", single_node_request(["NaN", 1.0]))
    with pytest.raises(NonfiniteInput) as caught:
        bind_sources(request.graph, request.inputs, allow_nonfinite=request.allow_nonfinite)
    assert caught.value.code == "nonfinite_input" and caught.value.node == "a"


def test_allow_nonfinite_lets_them_through():
    data = single_node_request(["NaN", "-Infinity"])
    data["allow_nonfinite"] = True
    request = load_request("gradients", data)
    sources = bind_sources(request.graph, request.inputs, allow_nonfinite=True)
    assert np.isnan(sources["a"][0]) and sources["a"][1] == -math.inf


def test_literal_1e309_is_infinite_not_bad_json():
    body = b'{"graph": {"nodes": [{"id": "a", "op": "input", "value": [1, 1e309]}], "output": "a"}}'
    request = load_request("gradients", parse_json(body))
    assert request.graph.nodes[0].value[1] == math.inf
    with pytest.raises(NonfiniteInput) as caught:
        bind_sources(request.graph, request.inputs)
    assert caught.value.node == "a"


# ---------------------------------------------------------------- writing and round trips


def test_zero_d_values_are_written_as_numbers():
    assert tensor_json(np.array(2.5)) == 2.5 and type(tensor_json(np.array(2.5))) is float
    assert tensor_json(np.array(2.5), "b64") == 2.5
    assert tensor_json(-0.0) == 0.0 and math.copysign(1, tensor_json(-0.0)) == -1


def test_nonfinite_values_are_spelled():
    array = np.array([[math.nan, 1.0], [math.inf, -math.inf]])
    text = orjson.dumps(tensor_json(array), option=WRITE)
    assert text == b'[["NaN",1.0],["Infinity","-Infinity"]]'
    assert tensor_json(math.inf) == "Infinity" and tensor_json(np.array(math.nan)) == "NaN"


def test_non_contiguous_arrays_are_written():
    array = np.arange(6.0).reshape(2, 3).T
    assert orjson.loads(orjson.dumps(tensor_json(array), option=WRITE)) == array.tolist()
    broadcast = np.broadcast_to(np.arange(3.0), (2, 3))
    encoded = tensor_json(broadcast, "b64")
    np.testing.assert_array_equal(decode_tensor(encoded), broadcast)


@pytest.mark.parametrize("encoding", ["json", "b64"])
def test_signed_zeros_subnormals_and_extremes_round_trip_bit_exact(encoding):
    array = np.array([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                      0.1, 1 / 3])
    back = wire_round_trip(array, encoding)
    assert back.tobytes() == array.tobytes()


@settings(max_examples=60, deadline=None)
@given(float_arrays())
def test_float64_round_trips_are_exact_in_both_encodings(array):
    for encoding in ("json", "b64"):
        back = wire_round_trip(array, encoding)
        assert back.shape == array.shape
        assert back.tobytes() == array.tobytes()
