"""Retries, backoff and every exception path, over httpx.MockTransport (the network is faked here
and only here; the end-to-end tests run the real app)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

import chainrule_client as cr
from chainrule_client import client as client_module
from chainrule_client.protocol import RetryPolicy

OK_BODY = {
    "hash": "a" * 64,
    "output": "f",
    "value": 6.0,
    "nodes": {"x": {"value": 2.0, "grad": 3.0}, "f": {"value": 6.0, "grad": 1.0}},
    "cached": False,
}


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=OK_BODY, headers={"X-Request-ID": "req-1"})


def error(status: int, code: str, message: str = "nope", node=None, details=None, **headers):
    body = {"error": {"code": code, "message": message, "node": node, "details": details}}
    return httpx.Response(status, json=body, headers={"X-Request-ID": "req-9", **headers})


class Script:
    """A handler that plays its responses (or raises its exceptions) in order, then repeats the
    last one; it records every request it saw."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, Exception):
            raise step
        return step(request) if callable(step) else step


@pytest.fixture
def no_sleep(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", slept.append)
    return slept


def make_client(script: Script, **options) -> cr.Client:
    return cr.Client("http://chainrule.test", transport=httpx.MockTransport(script), **options)


def expression():
    x = cr.input("x", 2.0)
    return x, (x * 3).named("f")


# -------------------------------------------------------------------- retries


def test_a_transport_that_fails_twice_then_answers_is_retried(no_sleep):
    script = Script(httpx.ConnectError("refused"), httpx.ConnectError("refused"), ok)
    x, f = expression()
    with make_client(script) as client:
        result = client.gradients(f)
    assert result.value == 6.0 and result.grad(x) == 3.0
    assert len(script.requests) == 3
    assert len(no_sleep) == 2
    bodies = {request.content for request in script.requests}
    assert len(bodies) == 1  # every attempt sends the same request


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_are_retried(no_sleep, status):
    script = Script(error(status, "unavailable"), error(status, "unavailable"), ok)
    with make_client(script) as client:
        assert client.gradients(expression()[1]).value == 6.0
    assert len(script.requests) == 3


def test_connect_timeouts_and_dropped_keepalive_connections_are_retried(no_sleep):
    script = Script(httpx.ConnectTimeout("slow"), httpx.RemoteProtocolError("closed"), ok)
    with make_client(script) as client:
        assert client.gradients(expression()[1]).value == 6.0
    assert len(script.requests) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_json"),
        (404, "not_found"),
        (413, "too_large"),
        (415, "unsupported_media_type"),
        (422, "validation_error"),
        (422, "cycle"),
        (500, "internal"),
        (502, "bad_gateway"),
        (504, "deadline_exceeded"),
    ],
)
def test_other_statuses_are_never_retried(no_sleep, status, code):
    script = Script(error(status, code), ok)
    with make_client(script) as client, pytest.raises(cr.APIError):
        client.gradients(expression()[1])
    assert len(script.requests) == 1
    assert no_sleep == []


def test_read_timeouts_are_not_retried(no_sleep):
    script = Script(httpx.ReadTimeout("slow"), ok)
    with make_client(script) as client, pytest.raises(cr.Timeout) as caught:
        client.gradients(expression()[1])
    assert len(script.requests) == 1
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_when_retries_run_out_the_last_failure_is_raised(no_sleep):
    script = Script(error(503, "unavailable", "warming up"))
    with make_client(script, retries=2) as client, pytest.raises(cr.Unavailable) as caught:
        client.gradients(expression()[1])
    assert len(script.requests) == 3
    assert caught.value.status == 503 and caught.value.message == "warming up"

    script = Script(httpx.ConnectError("refused"))
    with make_client(script, retries=1) as client, pytest.raises(cr.NetworkError) as caught:
        client.ops()
    assert len(script.requests) == 2
    assert "refused" in str(caught.value)


def test_retries_zero_sends_once(no_sleep):
    script = Script(httpx.ConnectError("refused"), ok)
    with make_client(script, retries=0) as client, pytest.raises(cr.NetworkError):
        client.gradients(expression()[1])
    assert len(script.requests) == 1


def test_backoff_grows_exponentially_with_jitter(no_sleep):
    script = Script(httpx.ConnectError("refused"))
    with make_client(script, retries=4, backoff=0.1) as client, pytest.raises(cr.NetworkError):
        client.health()
    assert len(no_sleep) == 4
    for attempt, delay in enumerate(no_sleep):
        step = 0.1 * 2**attempt
        assert step / 2 <= delay <= step


def test_retry_after_is_honoured(no_sleep):
    script = Script(error(429, "rate_limited", **{"Retry-After": "2"}), ok)
    with make_client(script) as client:
        client.gradients(expression()[1])
    assert no_sleep == [2.0]


def test_the_retry_policy():
    policy = RetryPolicy(retries=3, backoff=1.0, max_delay=5.0)
    assert all(2.5 <= policy.delay(10) <= 5 for _ in range(20))
    assert policy.delay(0, retry_after=100) == 5.0
    assert len({policy.delay(3) for _ in range(20)}) > 1
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)


def test_the_real_sleep_is_used_between_retries():
    script = Script(httpx.ConnectError("refused"), ok)
    with make_client(script, backoff=0.001) as client:
        assert client.health()["hash"] == "a" * 64  # OK_BODY stands in for the health body


# -------------------------------------------------------------------- exceptions


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_json", cr.BadRequest),
        (415, "unsupported_media_type", cr.BadRequest),
        (404, "not_found", cr.NotFound),
        (413, "too_large", cr.TooLarge),
        (422, "validation_error", cr.ValidationError),
        (422, "unknown_op", cr.GraphError),
        (422, "unknown_node", cr.GraphError),
        (422, "duplicate_id", cr.GraphError),
        (422, "cycle", cr.GraphError),
        (422, "arity", cr.GraphError),
        (422, "bad_attr", cr.GraphError),
        (422, "missing_input", cr.GraphError),
        (422, "shape_mismatch", cr.GraphError),
        (422, "nonfinite_input", cr.GraphError),
        (429, "rate_limited", cr.Unavailable),
        (503, "unavailable", cr.Unavailable),
        (504, "deadline_exceeded", cr.DeadlineExceeded),
        (500, "internal", cr.ServerError),
        (502, "bad_gateway", cr.ServerError),
        (409, "conflict", cr.APIError),
    ],
)
def test_each_error_status_raises_its_class_with_the_error_fields(no_sleep, status, code, cls):
    details = {"graph": {"nodes": ["bad"]}} if code == "validation_error" else None
    script = Script(error(status, code, "it broke", node="q", details=details))
    with make_client(script, retries=0) as client, pytest.raises(cls) as caught:
        client.gradients(expression()[1])
    err = caught.value
    assert type(err) is cls
    assert isinstance(err, cr.APIError) and isinstance(err, cr.ChainruleError)
    assert not isinstance(err, cr.TransportError)
    assert (err.status, err.code, err.message, err.node) == (status, code, "it broke", "q")
    assert err.details == details
    assert err.request_id == "req-9"
    listed = " [graph.nodes: bad]" if code == "validation_error" else ""  # the field at fault
    assert str(err) == f"{status} {code}: it broke (node 'q'){listed}"
    assert "request_id='req-9'" in repr(err)


def test_an_error_body_that_is_not_the_contracts_still_raises_by_status(no_sleep):
    script = Script(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with make_client(script, retries=0) as client, pytest.raises(cr.ServerError) as caught:
        client.ops()
    assert caught.value.code == "http_error"
    assert caught.value.message == "HTTP 502: <html>Bad Gateway</html>"
    assert caught.value.node is None and caught.value.request_id is None


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("refused"), cr.NetworkError),
        (httpx.ReadError("reset"), cr.NetworkError),
        (httpx.WriteError("broken pipe"), cr.NetworkError),
        (httpx.ConnectTimeout("slow"), cr.Timeout),
        (httpx.ReadTimeout("slow"), cr.Timeout),
        (httpx.WriteTimeout("slow"), cr.Timeout),
        (httpx.PoolTimeout("busy"), cr.Timeout),
        (httpx.RemoteProtocolError("closed"), cr.NetworkError),
    ],
)
def test_transport_failures_raise_transport_errors(no_sleep, exc, cls):
    script = Script(exc)
    with make_client(script, retries=0) as client, pytest.raises(cls) as caught:
        client.gradients(expression()[1])
    assert isinstance(caught.value, cr.TransportError)
    assert isinstance(caught.value, cr.ChainruleError)
    assert not isinstance(caught.value, cr.APIError)
    assert caught.value.__cause__ is exc


def test_a_success_that_is_not_json_is_a_protocol_error(no_sleep):
    script = Script(httpx.Response(200, text="hello"))
    with make_client(script) as client, pytest.raises(cr.ProtocolError):
        client.gradients(expression()[1])
    assert isinstance(cr.ProtocolError("x"), cr.ChainruleError)


def test_a_real_refused_connection_is_a_network_error():
    client = cr.Client("http://127.0.0.1:9", retries=1, backoff=0.001)
    with client, pytest.raises(cr.NetworkError):
        client.health()


# -------------------------------------------------------------------- what goes on the wire


def test_requests_carry_json_the_user_agent_and_the_callers_headers():
    script = Script(ok)
    x, f = expression()
    with make_client(script, headers={"X-Request-ID": "mine"}) as client:
        client.gradients(f, inputs={x: 5})
    request = script.requests[0]
    assert request.method == "POST" and request.url.path == "/v1/gradients"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("chainrule-client/")
    assert request.headers["x-request-id"] == "mine"
    assert json.loads(request.content)["inputs"] == {"x": 5}


def test_a_base_url_with_a_path_prefix_is_kept():
    script = Script(lambda request: httpx.Response(200, json={"ops": [{"name": "add"}]}))
    with cr.Client("http://chainrule.test/api", transport=httpx.MockTransport(script)) as client:
        assert client.ops() == [{"name": "add"}]
    assert script.requests[0].url.path == "/api/v1/ops"


def test_the_client_default_timeout_is_ten_seconds():
    with cr.Client("http://chainrule.test") as client:
        assert client._http.timeout == httpx.Timeout(10.0)


def test_diagram_returns_the_image_bytes():
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'/>"
    script = Script(httpx.Response(200, content=svg, headers={"Content-Type": "image/svg+xml"}))
    with make_client(script) as client:
        assert client.diagram(expression()[1]) == svg
    assert script.requests[0].headers["accept"] == "image/svg+xml"


# -------------------------------------------------------------------- AsyncClient


def run(coroutine):
    return asyncio.run(coroutine)


def make_async(script: Script, **options) -> cr.AsyncClient:
    return cr.AsyncClient(
        "http://chainrule.test", transport=httpx.MockTransport(script), **options
    )


def test_async_client_retries_then_answers(monkeypatch):
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(client_module.asyncio, "sleep", fake_sleep)
    script = Script(httpx.ConnectError("refused"), error(503, "unavailable"), ok)
    x, f = expression()

    async def main():
        async with make_async(script) as client:
            return await client.gradients(f)

    result = run(main())
    assert result.value == 6.0 and result.grad(x) == 3.0
    assert len(script.requests) == 3 and len(slept) == 2


def test_async_client_raises_the_same_errors():
    async def main(script):
        async with make_async(script, retries=0) as client:
            return await client.evaluate(expression()[1])

    with pytest.raises(cr.GraphError) as caught:
        run(main(Script(error(422, "cycle", node="f"))))
    assert caught.value.node == "f"
    with pytest.raises(cr.Timeout):
        run(main(Script(httpx.ReadTimeout("slow"))))
    with pytest.raises(cr.ProtocolError):
        run(main(Script(httpx.Response(200, text="hello"))))


def test_async_client_has_every_method():
    gradcheck_body = {"hash": "b" * 64, "passed": True, "checks": {
        "x": {"max_rel_error": 0.0, "verdict": "good", "analytic": 3.0, "numeric": 3.0}}}

    def route(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/gradcheck":
            return httpx.Response(200, json=gradcheck_body)
        if path == "/v1/diagram":
            return httpx.Response(200, content=b"digraph {}")
        if path == "/v1/ops":
            return httpx.Response(200, json={"ops": [{"name": "add"}]})
        if path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        return ok(request)

    x, f = expression()

    async def main():
        async with make_async(Script(route)) as client:
            return (
                await client.gradients(f),
                await client.evaluate(f),
                await client.gradcheck(f, check=[x]),
                await client.diagram(f, format="dot"),
                await client.result("a" * 64),
                await client.ops(),
                await client.health(),
            )

    gradients, evaluate, gradcheck, diagram, result, ops, health = run(main())
    assert gradients.value == evaluate.value == result.value == 6.0
    assert gradcheck.passed and gradcheck[x].verdict == "good"
    assert diagram == b"digraph {}"
    assert ops == [{"name": "add"}] and health == {"status": "ok"}


# -------------------------------------------------------------------- issue 15 details


def test_a_503_diagram_unavailable_is_raised_at_once(no_sleep):
    script = Script(error(503, "diagram_unavailable", "dot is not installed"), ok)
    with make_client(script) as client, pytest.raises(cr.Unavailable) as caught:
        client.diagram(expression()[1])
    assert len(script.requests) == 1 and no_sleep == []
    assert caught.value.code == "diagram_unavailable"


def test_other_503s_are_still_retried(no_sleep):
    script = Script(error(503, "not_ready"), httpx.Response(503, text="busy"), ok)
    with make_client(script) as client:
        assert client.gradients(expression()[1]).value == 6.0
    assert len(script.requests) == 3


@pytest.mark.parametrize("face", [cr.Client, cr.AsyncClient])
def test_a_client_without_a_url_reads_chainrule_url(monkeypatch, face):
    monkeypatch.setenv("CHAINRULE_URL", "http://chainrule.example:9000/api")
    client = face()
    assert str(client._http.base_url) == "http://chainrule.example:9000/api/"
    run(client.aclose()) if face is cr.AsyncClient else client.close()


@pytest.mark.parametrize("value", [None, ""])
def test_without_chainrule_url_the_client_uses_the_local_default(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CHAINRULE_URL", raising=False)
    else:
        monkeypatch.setenv("CHAINRULE_URL", value)
    with cr.Client() as client:
        assert str(client._http.base_url) == "http://localhost:8000"
    with cr.Client("http://given:1") as client:
        assert str(client._http.base_url) == "http://given:1"
