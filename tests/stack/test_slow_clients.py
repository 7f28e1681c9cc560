"""Clients that go silent mid-request, against the real stack: gunicorn with one worker and
CLIENT_TIMEOUT_SECONDS=1 (service/worker.py). The worker gives up on each silent client and goes
on serving; none of them gets it killed.

Every wait is a bounded loop or a socket timeout; no test asserts how long anything took.
"""

from __future__ import annotations

import base64
import socket
import time

import httpx
import numpy as np
import orjson
import pytest

from tests.stack.test_stack import GunicornServer

BODY_HEAD = (
    b"POST /v1/gradients HTTP/1.1\r\nHost: chainrule\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n"
)


@pytest.fixture
def server(tmp_path, redis_server):
    settings = {"WEB_CONCURRENCY": "1", "CLIENT_TIMEOUT_SECONDS": "1"}
    gunicorn = GunicornServer(tmp_path, redis_server.url, settings)
    gunicorn.start()
    yield gunicorn
    gunicorn.stop()


def opened(server: GunicornServer, sent: bytes) -> socket.socket:
    """A connection to the server that has sent `sent` and then goes silent."""
    connection = socket.create_connection(("127.0.0.1", server.port))
    connection.sendall(sent)
    return connection


def everything_read(connection: socket.socket) -> bytes:
    """What the server sends until it closes the connection."""
    connection.settimeout(60)
    received = []
    while chunk := connection.recv(65536):
        received.append(chunk)
    connection.close()
    return b"".join(received)


def served_by_one_worker(server: GunicornServer) -> None:
    """/healthz answers, every request was served by the one first worker, and none was
    killed for missing its heartbeat."""
    assert httpx.get(server.url + "/healthz", timeout=60).status_code == 200
    assert len({line["pid"] for line in server.access_lines()}) == 1
    log = server.log_text()
    assert "WORKER TIMEOUT" not in log and "Booting worker" in log
    assert log.count("Booting worker") == 1, log


def test_bodies_that_stop_arriving_get_408_and_the_worker_serves_on(server):
    connections = [opened(server, BODY_HEAD + b'{"gr') for _ in range(3)]  # more than workers

    for connection in connections:
        head, _, body = everything_read(connection).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        error = orjson.loads(body)["error"]
        assert error["code"] == "request_timeout"
        assert "sent nothing for 1 s" in error["message"]
    served_by_one_worker(server)


def test_headers_that_stop_arriving_close_the_connection_with_one_warning(server):
    connection = opened(server, b"POST /v1/gradients HTTP/1.1\r\nHost: chainrule\r\n")

    assert everything_read(connection) == b""
    served_by_one_worker(server)
    log = server.log_text()
    assert "a client sent or read nothing for 1 s: connection closed" in log
    assert "Traceback" not in log


def test_a_client_that_does_not_read_its_answer_is_let_go(server):
    # an answer of tens of megabytes: far more than the sockets' buffers hold
    x = np.linspace(-1.0, 1.0, 500_000)
    encoded = {"dtype": "float64", "shape": list(x.shape),
               "b64": base64.b64encode(x.astype("<f8").tobytes()).decode()}
    graph = {"nodes": [{"id": "x", "op": "input", "value": encoded},
                       {"id": "y", "op": "scale", "inputs": ["x"], "attrs": {"a": 3.0}}],
             "output": "y"}
    body = orjson.dumps({"graph": graph, "cache": False})
    head = (b"POST /v1/evaluate HTTP/1.1\r\nHost: chainrule\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    connection = opened(server, head + body)  # and never read from

    give_up = time.monotonic() + 120
    while not any(line["path"] == "/v1/evaluate" for line in server.access_lines()):
        assert time.monotonic() < give_up, server.log_text()
        time.sleep(0.2)
    served_by_one_worker(server)
    assert "a client sent or read nothing for 1 s: connection closed" in server.log_text()
    connection.close()


def test_a_chunked_body_that_stops_arriving_gets_408_too(server):
    for stalled in (b'10\r\n{"gra', b'4\r\n{"gr\r\n', b'4\r\n{"gr\r\n1'):  # mid-chunk, between
        connection = opened(server, BODY_HEAD.replace(b"Content-Length: 100",
                                                      b"Transfer-Encoding: chunked") + stalled)
        head, _, body = everything_read(connection).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), head
        assert orjson.loads(body)["error"]["code"] == "request_timeout"
    served_by_one_worker(server)
    assert "Traceback" not in server.log_text()


def test_an_upload_that_keeps_coming_slowly_is_served(server):
    body = orjson.dumps({"graph": {"nodes": [{"id": "x", "op": "input", "value": 2.0}],
                                   "output": "x"}})
    connection = opened(server, BODY_HEAD.replace(b"100", b"%d" % len(body)))
    for start in range(0, len(body), 8):  # a piece every half of CLIENT_TIMEOUT_SECONDS
        time.sleep(0.5)
        connection.sendall(body[start:start + 8])

    head, _, answer = everything_read(connection).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert orjson.loads(answer)["nodes"]["x"] == {"value": 2.0, "grad": 1.0}
    served_by_one_worker(server)


def test_an_answer_read_steadily_is_sent_whole_however_long_it_takes(server):
    # Python's sendall counts its timeout over all the data: this answer, read without a
    # pause anywhere near CLIENT_TIMEOUT_SECONDS, took longer than that to read and was cut
    x = np.linspace(-1.0, 1.0, 500_000)
    encoded = {"dtype": "float64", "shape": list(x.shape),
               "b64": base64.b64encode(x.astype("<f8").tobytes()).decode()}
    graph = {"nodes": [{"id": "x", "op": "input", "value": encoded},
                       {"id": "y", "op": "scale", "inputs": ["x"], "attrs": {"a": 3.0}}],
             "output": "y"}
    body = orjson.dumps({"graph": graph, "cache": False})
    connection = opened(server, BODY_HEAD.replace(b"/v1/gradients", b"/v1/evaluate").replace(
        b"Content-Length: 100", b"Content-Length: %d" % len(body)) + body)
    connection.settimeout(60)
    received = []
    while chunk := connection.recv(16384):
        received.append(chunk)
        time.sleep(0.003)
    connection.close()

    head, _, answer = b"".join(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(orjson.loads(answer)["value"]) == len(x)
    served_by_one_worker(server)
    assert "connection closed" not in server.log_text()
