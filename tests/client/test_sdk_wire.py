"""Tensors on the wire, request bodies, and reading replies into Results (no network)."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

import chainrule_client as cr
from chainrule_client import calls, replies
from chainrule_client.protocol import Reply
from chainrule_client.tensors import decode_tensor, encode_tensor


def b64(array, dtype="<f8") -> dict:
    array = np.asarray(array, dtype=dtype)
    return {
        "dtype": "float64" if dtype == "<f8" else "float32",
        "shape": list(array.shape),
        "b64": base64.b64encode(array.tobytes()).decode(),
    }


# -------------------------------------------------------------------- tensors


def test_small_values_travel_as_json_numbers_and_lists():
    assert encode_tensor(3) == 3
    assert encode_tensor(-2.5) == -2.5
    assert encode_tensor(np.float32(0.5)) == 0.5
    assert encode_tensor(np.arange(3)) == [0.0, 1.0, 2.0]
    assert encode_tensor([[1, 2], [3, 4]]) == [[1.0, 2.0], [3.0, 4.0]]
    assert encode_tensor(np.ones((1024,))) == [1.0] * 1024


def test_arrays_over_1024_elements_travel_as_b64():
    array = np.random.default_rng(0).normal(size=(3, 400))
    encoded = encode_tensor(array)
    assert encoded["dtype"] == "float64" and encoded["shape"] == [3, 400]
    decoded = decode_tensor(encoded)
    assert decoded.dtype == np.float64
    np.testing.assert_array_equal(decoded, array)


def test_nonfinite_values_travel_as_b64_never_as_bare_nan():
    for value in (math.nan, math.inf, -math.inf, np.array([1.0, np.inf])):
        encoded = encode_tensor(value)
        assert isinstance(encoded, dict)
        json.dumps(encoded, allow_nan=False)
        np.testing.assert_array_equal(decode_tensor(encoded), value)


@pytest.mark.parametrize("bad", [True, np.array([True]), "1", None, {"a": 1}])
def test_non_numbers_are_not_tensors(bad):
    with pytest.raises(TypeError):
        encode_tensor(bad)


def test_the_three_nonfinite_spellings_decode_to_floats():
    assert math.isnan(decode_tensor("NaN"))
    assert decode_tensor("Infinity") == math.inf
    assert decode_tensor("-Infinity") == -math.inf
    mixed = decode_tensor([[1.0, "NaN"], ["Infinity", "-Infinity"]])
    assert mixed.dtype == np.float64 and mixed.shape == (2, 2)
    assert math.isnan(mixed[0, 1]) and mixed[1, 0] == math.inf and mixed[1, 1] == -math.inf


def test_scalars_decode_to_floats_and_arrays_to_float64():
    assert decode_tensor(2) == 2.0 and isinstance(decode_tensor(2), float)
    assert isinstance(decode_tensor(b64(3.5)), float)
    assert decode_tensor([1, 2]).dtype == np.float64
    f32 = decode_tensor(b64([0.5, 1.5], dtype="<f4"))
    assert f32.dtype == np.float64 and f32.tolist() == [0.5, 1.5]
    assert decode_tensor([]).shape == (0,)


@pytest.mark.parametrize(
    "bad",
    [
        "nan",
        "1.5",
        True,
        None,
        [[1.0], [2.0, 3.0]],
        [True, False],
        [1.0, "Inf"],
        {"dtype": "float16", "shape": [1], "b64": "AAA="},
        {"dtype": "float64", "shape": [2], "b64": base64.b64encode(b"\0" * 8).decode()},
        {"dtype": "float64", "shape": [1], "b64": "not base64!"},
        {"dtype": "float64", "shape": "1", "b64": ""},
        {"dtype": "float64", "shape": [1]},
    ],
)
def test_malformed_tensors_are_value_errors(bad):
    with pytest.raises(ValueError):
        decode_tensor(bad)


# -------------------------------------------------------------------- request bodies


def body_of(call: calls.GraphRequest) -> dict:
    return json.loads(call.body)


def test_a_gradients_request_names_nodes_by_their_ids():
    x, y = cr.input("x"), cr.input("y", 1.0)
    q = x * y
    f = q + 1
    call = calls.gradients_call(f, inputs={x: 3, "y": 2.0}, seed=2.0, wrt=[x, q, "y"])
    assert (call.method, call.path) == ("POST", "/v1/gradients")
    assert call.headers["Content-Type"] == "application/json"
    body = body_of(call)
    assert body["graph"] == cr.to_graph(f)
    assert body["inputs"] == {"x": 3, "y": 2.0}
    assert body["seed"] == 2.0
    assert body["wrt"] == ["x", "mul_2", "y"]
    assert "cache" not in body and "encoding" not in body


def test_request_options_are_sent_only_when_they_differ_from_the_defaults():
    x = cr.input("x", 1.0)
    body = body_of(
        calls.gradients_call(x.exp(), wrt=x, cache=False, encoding="b64", allow_nonfinite=True)
    )
    assert body["wrt"] == ["x"]
    assert body["cache"] is False
    assert body["encoding"] == "b64"
    assert body["allow_nonfinite"] is True


def test_large_inputs_seeds_and_values_are_b64_in_the_request():
    big = np.linspace(0, 1, 2000)
    x = cr.input("x", big)
    body = body_of(calls.gradients_call(x * 2, inputs={x: big}, seed=np.ones(2000)))
    assert body["graph"]["nodes"][0]["value"]["shape"] == [2000]
    np.testing.assert_array_equal(decode_tensor(body["inputs"]["x"]), big)
    assert body["seed"]["b64"]


def test_evaluate_gradcheck_and_diagram_requests():
    x = cr.input("x", 1.0)
    evaluate = calls.evaluate_call(x.exp(), wrt=["x"])
    assert evaluate.path == "/v1/evaluate" and "seed" not in body_of(evaluate)
    gradcheck = calls.gradcheck_call(x.exp(), check=[x], eps=1e-6)
    assert gradcheck.path == "/v1/gradcheck"
    assert body_of(gradcheck)["check"] == ["x"] and body_of(gradcheck)["eps"] == 1e-6
    assert "eps" not in body_of(calls.gradcheck_call(x.exp()))
    diagram = calls.diagram_call(x.exp(), format="png")
    assert diagram.path == "/v1/diagram" and body_of(diagram)["format"] == "png"
    assert diagram.headers["Accept"] == "image/png"


def test_get_requests():
    assert calls.result_call("ab" * 32).path == "/v1/results/" + "ab" * 32
    assert calls.result_call("a/b").path == "/v1/results/a%2Fb"
    assert calls.ops_call().path == "/v1/ops"
    assert calls.health_call().path == "/healthz"


@pytest.mark.parametrize(
    "build",
    [
        lambda x: calls.gradients_call(x, wrt=[cr.input("x") + 1]),
        lambda x: calls.gradients_call(x, encoding="xml"),
        lambda x: calls.gradcheck_call(x, eps=0),
        lambda x: calls.gradcheck_call(x, eps=True),
        lambda x: calls.diagram_call(x, format="jpeg"),
        lambda x: calls.result_call(""),
        lambda x: calls.gradients_call(x, wrt=[3]),
        lambda x: calls.gradients_call(x, inputs={"x": "3"}),
    ],
)
def test_bad_arguments_fail_before_sending(build):
    with pytest.raises((ValueError, TypeError)):
        build(cr.input("x", 1.0) * 2)


# -------------------------------------------------------------------- reading replies


def reply(body: object, status: int = 200, headers: dict | None = None) -> Reply:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, headers or {}, content)


GRADIENTS_BODY = {
    "hash": "f" * 64,
    "output": "f",
    "value": -12.0,
    "nodes": {
        "x": {"value": -2.0, "grad": -4.0},
        "m": {"value": [1.0, "NaN"], "grad": b64([[0.5, 1.5]])},
        "f": {"value": -12.0, "grad": 1.0},
    },
    "cached": True,
}


def test_a_gradients_reply_becomes_a_result():
    x = cr.input("x")
    result = replies.parse_result(
        reply(GRADIENTS_BODY, headers={"x-request-id": "r1"}), {x: "x"}, "gradients"
    )
    assert result.value == -12.0 and isinstance(result.value, float)
    assert result.grad(x) == -4.0 and result.grad("x") == -4.0
    assert result.node_value(x) == -2.0
    assert list(result.values) == ["x", "m", "f"]
    assert math.isnan(result.values["m"][1])
    assert result.grads["m"].shape == (1, 2)
    assert result.hash == "f" * 64 and result.cached is True and result.request_id == "r1"
    assert "value=-12.0" in repr(result)
    with pytest.raises(KeyError, match="'q'"):
        result.grad("q")
    with pytest.raises(KeyError, match="not part of"):
        result.grad(cr.input("x") * 2)
    with pytest.raises(TypeError):
        result.grad(3)


def test_an_evaluate_reply_has_values_and_no_gradients():
    body = {"hash": "0" * 64, "output": "y", "value": [1.0, 2.0],
            "nodes": {"y": {"value": [1.0, 2.0]}}, "cached": False}
    result = replies.parse_result(reply(body), {}, "evaluate")
    assert isinstance(result.value, np.ndarray) and result.value.tolist() == [1.0, 2.0]
    assert result.grads == {}
    with pytest.raises(KeyError, match="no gradients"):
        result.grad("y")
    assert isinstance(replies.parse_any_result(reply(body)), cr.Result)
    assert replies.parse_any_result(reply(body)).kind == "evaluate"


def test_a_gradcheck_reply_becomes_a_typed_result():
    body = {"hash": "1" * 64, "passed": False, "checks": {
        "x": {"max_rel_error": 3e-10, "verdict": "good", "analytic": -4.0, "numeric": -4.0},
        "w": {"max_rel_error": 0.5, "verdict": "wrong"},
    }}
    result = replies.parse_gradcheck(reply(body), {})
    assert result.passed is False and result.cached is False
    assert result["x"] == cr.Check(3e-10, "good", -4.0, -4.0)
    assert result["w"].analytic is None and result["w"].verdict == "wrong"
    with pytest.raises(KeyError):
        result["z"]
    assert isinstance(replies.parse_any_result(reply(body)), cr.GradcheckResult)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        {"hash": "0" * 64},
        {**GRADIENTS_BODY, "value": "nan"},
        {**GRADIENTS_BODY, "nodes": {"x": {"grad": 1.0}}},
        {**GRADIENTS_BODY, "nodes": [1, 2]},
    ],
)
def test_replies_that_break_the_contract_are_protocol_errors(body):
    with pytest.raises(cr.ProtocolError):
        replies.parse_result(reply(body), {}, "gradients")


def test_ops_and_health_replies():
    ops = [{"name": "add"}, {"name": "mul"}]
    assert replies.parse_ops(reply({"ops": ops})) == ops
    with pytest.raises(cr.ProtocolError):
        replies.parse_ops(reply({"ops": "add"}))
    assert replies.parse_health(reply({"status": "ok"})) == {"status": "ok"}
    assert replies.parse_health(reply(b"OK")) == {"status": "OK"}
