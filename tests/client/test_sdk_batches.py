"""Batches and Jacobians on the wire (issue 11): the request bodies the SDK sends and the
results it reads, without a network."""

from __future__ import annotations

import json

import numpy as np
import pytest

import chainrule_client as cr
from chainrule_client import calls, replies
from chainrule_client.protocol import Reply
from chainrule_client.tensors import decode_tensor


def body_of(request) -> dict:
    return json.loads(request.body)


x, w = cr.input("x"), cr.input("w", 0.5)
f = (w * x).tanh()


def test_a_batched_gradients_request():
    body = body_of(calls.gradients_call(f, batch={x: [1.0, 2.0, 3.0]}, reduce="mean"))
    assert body["batch"] == {"x": [1.0, 2.0, 3.0]}
    assert body["reduce"] == "mean"
    assert "inputs" not in body


def test_batch_keys_may_be_ids_and_values_arrays_or_lists():
    xs = np.arange(6.0).reshape(3, 2)
    body = body_of(calls.gradients_call(f, inputs={w: 2.0}, batch={"x": xs}))
    assert body["batch"] == {"x": xs.tolist()}
    assert body["inputs"] == {"w": 2.0}
    assert "reduce" not in body  # "none" is the contract's default


def test_large_batches_travel_as_b64():
    xs = np.linspace(0, 1, 5000)
    body = body_of(calls.evaluate_call(f, batch={x: xs}))
    assert body["batch"]["x"]["shape"] == [5000]
    np.testing.assert_array_equal(decode_tensor(body["batch"]["x"]), xs)


def test_a_jacobian_request():
    request = calls.jacobian_call(f, wrt=[x, "w"], batch={x: [1.0, 2.0]}, encoding="b64")
    assert (request.method, request.path) == ("POST", "/v1/jacobian")
    body = body_of(request)
    assert body["wrt"] == ["x", "w"] and body["encoding"] == "b64"
    assert body["batch"] == {"x": [1.0, 2.0]}


@pytest.mark.parametrize(
    "build",
    [
        lambda: calls.gradients_call(f, batch={x: [1.0], w: [1.0, 2.0]}),
        lambda: calls.gradients_call(f, batch={x: 1.0}),
        lambda: calls.gradients_call(f, batch={x: []}),
        lambda: calls.gradients_call(f, batch={}),
        lambda: calls.gradients_call(f, inputs={x: 1.0}, batch={"x": [1.0]}),
        lambda: calls.gradients_call(f, batch={x: [1.0]}, reduce="max"),
        lambda: calls.evaluate_call(f, batch={x: ["a"]}),
        lambda: calls.jacobian_call(f, wrt=[cr.input("q") * 2]),
    ],
)
def test_bad_batches_fail_before_sending(build):
    with pytest.raises((ValueError, TypeError)):
        build()


def test_a_jacobian_reply_becomes_a_result():
    body = {"hash": "c" * 64, "output": "f", "value": [1.0, 2.0],
            "jacobian": {"x": [[1.0, 0.0], [0.0, 2.0]], "w": [3.0, 4.0]}, "cached": False}
    reply = Reply(200, {"x-request-id": "r"}, json.dumps(body).encode())
    result = replies.parse_jacobian(reply, {x: "x"})
    assert isinstance(result, cr.JacobianResult)
    assert result.jacobian(x).tolist() == [[1.0, 0.0], [0.0, 2.0]]
    assert result.jacobian("w").tolist() == [3.0, 4.0]
    assert result.value.tolist() == [1.0, 2.0] and result.request_id == "r"
    with pytest.raises(KeyError, match="'z'"):
        result.jacobian("z")
    assert isinstance(replies.parse_any_result(reply), cr.JacobianResult)
    with pytest.raises(cr.ProtocolError):
        replies.parse_jacobian(Reply(200, {}, b'{"hash": "c"}'), {})
