"""client.optimize on the wire (issue 12): the request body, the event stream framing, the
on_step callback, and reading answers; the network is httpx.MockTransport here."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

import chainrule_client as cr
from chainrule_client.optimize import optimize_call
from chainrule_client.sse import EventStream, parse_events

a, b, c = cr.input("a", 5.0), cr.input("b", -3.0), cr.input("c", -2.0)
f = ((a + b) * c).named("f")

ANSWER = {
    "hash": "e" * 64,
    "params": {"a": 4.98, "b": -3.02, "c": -1.98},
    "value": -3.8808,
    "steps": 1,
    "stopped": "steps",
    "trajectory": [
        {"step": 0, "value": -4.0, "grad_norm": 3.4641},
        {"step": 1, "value": -3.8808, "grad_norm": 3.3},
    ],
    "cached": False,
}


def body_of(request) -> dict:
    return json.loads(request.body)


def sse(*events: tuple[str, object]) -> bytes:
    return b"".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events
    )


def streamed(request: httpx.Request) -> httpx.Response:
    assert request.headers["accept"] == "text/event-stream"
    events = [("step", entry) for entry in ANSWER["trajectory"]] + [("result", ANSWER)]
    return httpx.Response(200, content=sse(*events),
                          headers={"Content-Type": "text/event-stream"})


# -------------------------------------------------------------------- the request


def test_the_seeds_example_request():
    request = optimize_call(f, params=[a, b, "c"], optimizer="sgd", lr=0.01, steps=1,
                            goal="maximize")
    assert request.path == "/v1/optimize"
    body = body_of(request)
    assert body["params"] == ["a", "b", "c"]
    assert body["optimizer"] == {"name": "sgd", "lr": 0.01}
    assert body["steps"] == 1 and body["goal"] == "maximize"
    assert request.headers["Accept"] == "application/json"
    assert set(body) == {"graph", "params", "optimizer", "steps", "goal"}


def test_every_option_goes_on_the_wire():
    x = cr.input("x")
    body = body_of(optimize_call(
        (a * x - c).abs().mean(), params=a, optimizer="adam", lr=0.1, steps=50,
        inputs={c: 1.0}, batch={x: [[1.0], [2.0], [3.0]]}, batch_size=2, shuffle_seed=7,
        lr_schedule={"name": "linear", "end": 0.1}, stop={"grad_norm_below": 1e-6},
        record_every=10, betas=(0.8, 0.99), weight_decay=1e-4, encoding="b64",
    ))
    assert body["optimizer"] == {"name": "adam", "lr": 0.1, "betas": [0.8, 0.99],
                                 "weight_decay": 1e-4}
    assert body["batch"] == {"x": [[1.0], [2.0], [3.0]]} and body["inputs"] == {"c": 1.0}
    assert (body["batch_size"], body["shuffle_seed"], body["record_every"]) == (2, 7, 10)
    assert body["lr_schedule"] == {"name": "linear", "end": 0.1}
    assert body["stop"] == {"grad_norm_below": 1e-6}
    assert body["encoding"] == "b64" and "goal" not in body
    assert body_of(optimize_call(f, [a], lr_schedule="cosine"))["lr_schedule"] == {
        "name": "cosine"}
    assert "lr_schedule" not in body_of(optimize_call(f, [a], lr_schedule="constant"))
    spec = {"name": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": True}
    assert body_of(optimize_call(f, [a], optimizer=spec))["optimizer"] == spec


@pytest.mark.parametrize(
    "kwargs",
    [
        {"optimizer": "rmsprop"},
        {"optimizer": "sgd", "betas": (0.9, 0.99)},
        {"optimizer": "adam", "momentum": 0.9},
        {"lr": 0},
        {"lr": -1.0},
        {"steps": 0},
        {"steps": 2.5},
        {"goal": "max"},
        {"lr_schedule": "step"},
        {"stop": {"loss_below": 1.0}},
        {"batch_size": 4},
        {"record_every": 0},
        {"params": []},
        {"params": [cr.input("z") * 2]},
    ],
)
def test_bad_arguments_fail_before_sending(kwargs):
    kwargs = {"params": [a], **kwargs}
    with pytest.raises((ValueError, TypeError)):
        optimize_call(f, **kwargs)


# -------------------------------------------------------------------- the event stream


def test_events_are_decoded_from_chunks_of_any_size():
    body = sse(("step", {"step": 0}), ("result", {"ok": True})).replace(b"\n", b"\r\n")
    body += b": keep-alive\r\n\r\nevent: step\ndata: {\"multi\":\ndata: 1}\n\n"
    for size in (1, 2, 7, len(body)):
        seen = []
        stream = EventStream(seen.append)
        for start in range(0, len(body), size):
            stream.feed(body[start:start + size])
        assert [(e.name, json.loads(e.data)) for e in seen] == [
            ("step", {"step": 0}), ("result", {"ok": True}), ("step", {"multi": 1})]
    assert [e.name for e in parse_events(b"data: 1")] == ["message"]


def make_client(handler) -> cr.Client:
    return cr.Client("http://chainrule.test", transport=httpx.MockTransport(handler))


def test_on_step_is_fed_by_the_stream_and_the_result_is_the_last_event():
    steps = []
    with make_client(streamed) as client:
        result = client.optimize(f, params=[a, b, c], optimizer="sgd", lr=0.01, steps=1,
                                 goal="maximize", on_step=steps.append)
    assert [s.step for s in steps] == [0, 1]
    assert steps[0] == cr.Step(step=0, value=-4.0, grad_norm=3.4641)
    assert isinstance(result, cr.OptimizeResult)
    assert result.params[a] == 4.98 and result.params["b"] == -3.02
    assert dict(result.params) == ANSWER["params"]
    assert (result.value, result.steps, result.stopped) == (-3.8808, 1, "steps")
    assert result.trajectory == steps


def test_a_json_answer_replays_its_trajectory_to_on_step():
    steps = []
    handler = lambda request: httpx.Response(200, json=ANSWER)  # noqa: E731
    with make_client(handler) as client:
        result = client.optimize(f, params=[a], on_step=steps.append)
    assert [s.step for s in steps] == [0, 1] and result.value == -3.8808
    with make_client(handler) as client:
        assert client.optimize(f, params=[a]).params["a"] == 4.98


def test_an_error_event_raises_the_api_error():
    def failing(request):
        content = sse(("step", ANSWER["trajectory"][0]), ("error", {"error": {
            "code": "internal", "message": "it broke", "node": None, "details": None}}))
        return httpx.Response(200, content=content, headers={
            "Content-Type": "text/event-stream", "X-Request-ID": "r7"})

    steps = []
    with make_client(failing) as client, pytest.raises(cr.ServerError) as caught:
        client.optimize(f, params=[a], on_step=steps.append)
    assert (caught.value.code, caught.value.request_id) == ("internal", "r7")
    assert len(steps) == 1


def test_a_stream_without_a_result_is_a_protocol_error():
    def truncated(request):
        return httpx.Response(200, content=sse(("step", ANSWER["trajectory"][0])),
                              headers={"Content-Type": "text/event-stream"})

    with make_client(truncated) as client, pytest.raises(cr.ProtocolError):
        client.optimize(f, params=[a], on_step=lambda step: None)


def test_a_refusal_before_the_stream_is_an_ordinary_error():
    def refuse(request):
        return httpx.Response(422, json={"error": {
            "code": "validation_error", "message": "lr must be positive", "node": None,
            "details": {"optimizer": {"lr": ["must be > 0"]}}}})

    with make_client(refuse) as client, pytest.raises(cr.ValidationError):
        client.optimize(f, params=[a], on_step=lambda step: None)


def test_the_async_client_streams_too():
    steps = []

    async def main():
        async with cr.AsyncClient(
            "http://chainrule.test", transport=httpx.MockTransport(streamed)
        ) as client:
            return await client.optimize(f, params=[a], on_step=steps.append)

    result = asyncio.run(main())
    assert result.stopped == "steps" and [s.step for s in steps] == [0, 1]


class BreakingStream(httpx.SyncByteStream):
    """A body that sends one step event, then the connection drops."""

    def __iter__(self):
        yield sse(("step", ANSWER["trajectory"][0]))
        raise httpx.RemoteProtocolError("peer closed connection")


def test_a_stream_that_breaks_midway_is_not_sent_again():
    script = []

    def handler(request):
        script.append(request)
        return httpx.Response(200, stream=BreakingStream(),
                              headers={"Content-Type": "text/event-stream"})

    steps = []
    with make_client(handler) as client, pytest.raises(cr.NetworkError, match="broke"):
        client.optimize(f, params=[a], on_step=steps.append)
    assert len(script) == 1 and len(steps) == 1
