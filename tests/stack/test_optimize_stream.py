"""/v1/optimize's event stream through real gunicorn (sync workers) and Redis: read as it
arrives, event by event, then the same run answered from the store."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.stack.test_stack import GunicornServer


@pytest.fixture
def server(tmp_path, redis_server):
    gunicorn = GunicornServer(tmp_path, redis_server.url)
    gunicorn.start()
    yield gunicorn
    gunicorn.stop()


def square_request() -> dict:
    graph = {"nodes": [
        {"id": "x", "op": "input", "value": 3.0},
        {"id": "d", "op": "add_const", "inputs": ["x"], "attrs": {"c": -1}},
        {"id": "f", "op": "pow", "inputs": ["d"], "attrs": {"exponent": 2}},
    ], "output": "f"}
    return {"graph": graph, "params": ["x"], "optimizer": {"name": "adam", "lr": 0.1},
            "steps": 200, "record_every": 20}


def streamed_events(url: str) -> tuple[httpx.Response, list[tuple[str, object]]]:
    """POST with Accept: text/event-stream, the events parsed line by line as they come."""
    events, name, data = [], None, None
    with httpx.stream("POST", url + "/v1/optimize", json=square_request(), timeout=30,
                      headers={"Accept": "text/event-stream"}) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = orjson.loads(line.removeprefix("data: "))
            elif line == "" and name is not None:
                events.append((name, data))
                name = data = None
    return response, events


def test_the_stream_through_gunicorn(server):
    response, events = streamed_events(server.url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-cache"] == "miss"
    names = [name for name, _ in events]
    assert names == ["step"] * 11 + ["result"]
    result = events[-1][1]
    assert [data for _, data in events[:-1]] == result["trajectory"]
    assert result["stopped"] == "steps" and result["cached"] is False

    again, replayed = streamed_events(server.url)  # from Redis, whichever worker answers
    assert again.headers["x-cache"] == "hit"
    assert replayed == events[:-1] + [("result", {**result, "cached": True})]
