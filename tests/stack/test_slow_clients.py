"""Clients that go silent or trickle mid-request, and slow ones that keep the pace, against the
real stack: gunicorn with one worker, CLIENT_TIMEOUT_SECONDS=1 and the default
CLIENT_MIN_BYTES_PER_SECOND (service/worker.py). The worker gives up on each client that keeps
it waiting and goes on serving, serves the slow ones whole, and none of them gets it killed.

Every wait is a bounded loop or a socket timeout; no test asserts how long anything took.
"""

from __future__ import annotations

import base64
import select
import socket
import subprocess
import time

import httpx
import numpy as np
import orjson
import pytest

from tests.stack.test_stack import GunicornServer

WARNING = "a client was silent for 1 s, or sent fewer than 4096 bytes a second: connection closed"
BODY_HEAD = (
    b"POST /v1/gradients HTTP/1.1\r\nHost: chainrule\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n"
)


@pytest.fixture
def server(tmp_path, redis_server):
    settings = {"WEB_CONCURRENCY": "1", "CLIENT_TIMEOUT_SECONDS": "1",
                "COMPUTE_DEADLINE_SECONDS": "1"}  # shorter than the slow uploads below
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
        assert "silent for 1 s, or sent fewer than 4096 bytes a second" in error["message"]
    served_by_one_worker(server)


def test_headers_that_stop_arriving_close_the_connection_with_one_warning(server):
    connection = opened(server, b"POST /v1/gradients HTTP/1.1\r\nHost: chainrule\r\n")

    assert everything_read(connection) == b""
    served_by_one_worker(server)
    log = server.log_text()
    assert WARNING in log
    assert "Traceback" not in log


def big_answer_request(points: int) -> bytes:
    """A request to /v1/evaluate whose answer holds 2 x `points` numbers as JSON text."""
    x = np.linspace(-1.0, 1.0, points)
    encoded = {"dtype": "float64", "shape": list(x.shape),
               "b64": base64.b64encode(x.astype("<f8").tobytes()).decode()}
    graph = {"nodes": [{"id": "x", "op": "input", "value": encoded},
                       {"id": "y", "op": "scale", "inputs": ["x"], "attrs": {"a": 3.0}}],
             "output": "y"}
    body = orjson.dumps({"graph": graph, "cache": False})
    head = (b"POST /v1/evaluate HTTP/1.1\r\nHost: chainrule\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    return head + body


def test_a_client_that_does_not_read_its_answer_is_let_go(server):
    # an answer of tens of megabytes: far more than the sockets' buffers hold
    connection = opened(server, big_answer_request(500_000))  # and never read from

    give_up = time.monotonic() + 120
    while not any(line["path"] == "/v1/evaluate" for line in server.access_lines()):
        assert time.monotonic() < give_up, server.log_text()
        time.sleep(0.2)
    served_by_one_worker(server)
    assert WARNING in server.log_text()
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


def trickled(server: GunicornServer, head: bytes, pieces: bytes) -> socket.socket:
    """A connection that sends `head`, then `pieces` a byte at a time 0.3 s apart (never
    silent for the 1 s limit, but far under the minimum pace); it must be let go before it
    has sent them all (a minute's worth)."""
    assert len(pieces) >= 200
    connection = opened(server, head)
    for byte in pieces:
        time.sleep(0.3)
        try:
            connection.sendall(bytes([byte]))
        except OSError:  # let go: the server closed its side
            return connection
        if select.select([connection], [], [], 0)[0]:  # the server has answered or closed
            return connection
    raise AssertionError("the server took a trickle of a minute")


def test_a_body_that_trickles_in_gets_408(server):
    head = BODY_HEAD.replace(b"Content-Length: 100", b"Content-Length: 1000")
    connection = trickled(server, head, b'{"graph": {"nodes": []}} ' * 10)

    head, _, body = everything_read(connection).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert orjson.loads(body)["error"]["code"] == "request_timeout"
    served_by_one_worker(server)


def test_headers_that_trickle_in_close_the_connection(server):
    connection = trickled(server, b"", b"POST /v1/gradients HTTP/1.1\r\nHost: chainrule" * 5)

    assert everything_read(connection) == b""
    served_by_one_worker(server)
    assert WARNING in server.log_text()


def test_a_slow_steady_upload_is_served(server):
    # 64 KB in 16 pieces 0.25 s apart: several seconds in all, longer than the compute deadline
    # (which counts from the body's arrival), never silent for 1 s, well over the minimum pace
    request = {"graph": {"nodes": [{"id": "x", "op": "input", "value": 2.0},
                                   {"id": "f", "op": "exp", "inputs": ["x"]}], "output": "f"}}
    body = orjson.dumps(request) + b" " * 65_000
    head = (b"POST /v1/gradients HTTP/1.1\r\nHost: chainrule\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    connection = opened(server, head)
    for start in range(0, len(body), 4096):
        time.sleep(0.25)
        connection.sendall(body[start:start + 4096])

    status, _, answer = everything_read(connection).partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200 "), answer
    assert orjson.loads(answer)["nodes"]["x"]["grad"] == pytest.approx(np.exp(2.0))
    served_by_one_worker(server)


def test_a_slow_steady_reader_gets_its_whole_answer(server):
    connection = opened(server, big_answer_request(200_000))  # an answer of about 8 MB
    connection.settimeout(60)
    received = []
    while chunk := connection.recv(256 * 1024):  # read over several seconds, never silent
        received.append(chunk)
        time.sleep(0.05)
    connection.close()

    head, _, body = b"".join(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    answer = orjson.loads(body)
    assert len(answer["nodes"]["y"]["value"]) == 200_000
    served_by_one_worker(server)
    assert "connection closed" not in server.log_text()


def test_under_tls_a_silent_client_is_let_go_too(tmp_path, redis_server):
    # gunicorn wraps the client socket itself for TLS: it keeps the silence limit alone
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    settings = {"WEB_CONCURRENCY": "1", "CLIENT_TIMEOUT_SECONDS": "1",
                "GUNICORN_CMD_ARGS": f"--certfile {cert} --keyfile {key}"}
    server = GunicornServer(tmp_path, redis_server.url, settings)
    server.url = server.url.replace("http://", "https://")
    server.start()
    try:
        silent = opened(server, b"")  # connects and never starts the handshake

        assert everything_read(silent) == b""
        answer = httpx.post(server.url + "/v1/gradients", verify=False, timeout=30,
                            json={"graph": {"nodes": [{"id": "x", "op": "input", "value": 2.0}],
                                            "output": "x"}})
        assert answer.json()["nodes"]["x"] == {"value": 2.0, "grad": 1.0}
        log = server.log_text()
        assert "WORKER TIMEOUT" not in log and log.count("Booting worker") == 1, log
    finally:
        server.stop()
