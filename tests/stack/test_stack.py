"""The real stack: redis-server and gunicorn (2 workers, service/gunicorn.conf.py) as
subprocesses on loopback, driven over HTTP with httpx.

Every wait is a bounded loop; no test asserts how long anything took.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine import ENGINE_VERSION

REPO = Path(__file__).resolve().parents[2]
GUNICORN_CONFIG = REPO / "service" / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GunicornServer:
    """`gunicorn -c service/gunicorn.conf.py service.wsgi:app` with 2 workers on 127.0.0.1."""

    def __init__(self, workdir: Path, redis_url: str, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "gunicorn.log"
        metrics_dir = workdir / "prometheus"
        metrics_dir.mkdir()
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "REDIS_URL": redis_url,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(REPO),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, wait_seconds: float = 60.0) -> None:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "service.wsgi:app"],
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown reaches the workers
        )
        give_up = time.monotonic() + wait_seconds
        while True:
            assert self.process.poll() is None, self.log_text()
            assert time.monotonic() < give_up, "gunicorn did not start:\n" + self.log_text()
            try:
                # not verified: a test may serve TLS with a certificate of its own
                if httpx.get(self.url + "/healthz", timeout=1, verify=False).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # any worker left behind
        self.process.wait(timeout=10)
        self._log.close()
        self.process = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_lines(self) -> list[dict]:
        """gunicorn's JSON access lines, one per request answered."""
        lines = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                entry = orjson.loads(line)
                if entry.get("logger") == "gunicorn.access":
                    lines.append(entry)
        return lines


@pytest.fixture
def server_env() -> dict[str, str]:
    """Settings for the `server` fixture's gunicorn; parametrize it to change them."""
    return {}


@pytest.fixture
def server(tmp_path, redis_server, server_env):
    gunicorn = GunicornServer(tmp_path, redis_server.url, server_env)
    gunicorn.start()
    yield gunicorn
    gunicorn.stop()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def graph_request(x: float) -> dict:
    return {
        "graph": {
            "nodes": [
                {"id": "x", "op": "input", "value": x},
                {"id": "y", "op": "input", "value": 5},
                {"id": "z", "op": "input", "value": -4},
                {"id": "q", "op": "add", "inputs": ["x", "y"]},
                {"id": "f", "op": "mul", "inputs": ["q", "z"]},
            ],
            "output": "f",
        }
    }


def metric_total(http: httpx.Client, name: str, **labels: str) -> float:
    text = http.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_a_miss_then_hits_from_both_workers(server, http):
    body = graph_request(-2)
    first = http.post("/v1/gradients", json=body, headers={"X-Request-ID": "stack-first"})
    assert first.status_code == 200 and first.headers["X-Cache"] == "miss"
    assert first.json()["value"] == -12.0

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=30) as own:
            return own.post("/v1/gradients", json=body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(40)))
    assert {r.status_code for r in responses} == {200}
    assert {r.headers["X-Cache"] for r in responses} == {"hit"}
    assert {r.content for r in responses} == {first.content.replace(b"false}", b"true}")}
    # The worker that did not compute the result can only have found it in Redis.
    hit_pids = {line["pid"] for line in server.access_lines() if line["cache"] == "hit"}
    assert len(hit_pids) == 2, "both workers should have served hits"

    # Every log line is JSON; the access line of the first request carries its id.
    (line,) = [line for line in server.access_lines() if line["request_id"] == "stack-first"]
    assert line["method"] == "POST" and line["path"] == "/v1/gradients"
    assert line["status"] == 200 and line["cache"] == "miss" and line["duration_ms"] > 0
    assert all(line.startswith("{") for line in server.log_text().splitlines())

    # /metrics merges every worker's values, whichever worker answers.
    assert metric_total(http, "chainrule_http_requests_total", route="/v1/gradients") == 41
    assert metric_total(http, "chainrule_cache_lookups_total", outcome="hit") == 40


# Without the near cache every hit is a Redis GET, so a hit shows that Redis serves again.
@pytest.mark.parametrize("server_env", [{"NEAR_CACHE_MAX_BYTES": "0"}])
def test_redis_dying_mid_traffic_costs_no_request_and_caching_comes_back(
    server, http, redis_server
):
    statuses: Counter = Counter()
    lock = threading.Lock()
    done = 0

    def traffic(k: int) -> None:
        nonlocal done
        with httpx.Client(base_url=server.url, timeout=30) as own:
            for i in range(30):
                # Half repeat one body (hits), half are new (misses that write).
                x = 1.0 if i % 2 else k * 1000 + i
                response = own.post("/v1/gradients", json=graph_request(x))
                with lock:
                    statuses[response.status_code] += 1
                    done += 1

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(traffic, k) for k in range(6)]
        give_up = time.monotonic() + 60
        while done < 40 and time.monotonic() < give_up:
            time.sleep(0.01)
        redis_server.stop()
        for future in futures:
            future.result()
    assert statuses == {200: 180}

    assert http.get("/readyz").status_code == 503
    down = http.post("/v1/gradients", json=graph_request(7))
    assert down.status_code == 200 and down.headers["X-Cache"] == "miss"

    # Redis comes back (empty): a fresh body is computed, stored, and then answered as a hit.
    before_restart = len(server.access_lines())
    redis_server.start()
    give_up = time.monotonic() + 30
    with redis_server.client() as raw:
        for attempt in range(300):
            ready = http.get("/readyz").status_code == 200
            body = graph_request(100 + attempt)
            stored = http.post("/v1/gradients", json=body)
            again = http.post("/v1/gradients", json=body)
            if ready and stored.headers["X-Cache"] == "miss" and again.headers["X-Cache"] == "hit":
                break
            assert time.monotonic() < give_up, "caching did not resume after Redis came back"
            time.sleep(0.1)
        else:
            pytest.fail("caching did not resume after Redis came back")
        key = f"chainrule:v{ENGINE_VERSION}:{{{stored.json()['hash']}}}:result"
        assert raw.exists(key)

        def post(_: int) -> httpx.Response:
            with httpx.Client(base_url=server.url, timeout=30) as own:
                return own.post("/v1/gradients", json=body)

        # Each worker ends its own back-off on its next try after a pause: poll until both
        # answer hits.
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in range(150):
                redis_hits = raw.info("stats")["keyspace_hits"]
                batch = list(pool.map(post, range(8)))
                recent = server.access_lines()[before_restart:]
                hit_pids = {line["pid"] for line in recent if line["cache"] == "hit"}
                if {r.headers["X-Cache"] for r in batch} == {"hit"} and len(hit_pids) == 2:
                    break
                assert time.monotonic() < give_up, "a worker did not resume caching"
                time.sleep(0.2)
            else:
                pytest.fail("a worker did not resume caching")
        assert {r.content for r in batch} == {again.content}
        assert raw.info("stats")["keyspace_hits"] >= redis_hits + 8  # each hit a Redis GET
    assert metric_total(http, "chainrule_cache_errors_total") > 0
    lines = server.access_lines()
    assert {line["status"] for line in lines if line["path"].startswith("/v1")} == {200}


def test_sigterm_lets_an_in_flight_request_finish(server):
    body = orjson.dumps(graph_request(11))
    head = (
        f"POST /v1/gradients HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(head + body[:20])
        time.sleep(0.5)  # let a worker accept the connection and start reading the body
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the shutdown is under way while the body is still arriving
        conn.sendall(body[20:])
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", response
    assert orjson.loads(rest.partition(b"\r\n\r\n")[2])["value"] == -64.0
    assert server.process.wait(timeout=30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/healthz", timeout=2)
