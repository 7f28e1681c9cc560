"""HTTP benchmark of the whole stack: wrk against gunicorn (service/gunicorn.conf.py) on loopback.

    .venv/bin/python -m bench.http [--duration 10] [--connections 16]

Starts a redis-server and gunicorn with the service's own configuration (default worker count,
Redis cache, multiprocess metrics), then measures with wrk (one thread, a Lua script POSTing
the body), for a 20-node scalar graph:

  (a) cache hits: the same request again and again (after each worker's first, from its
      near cache; (a') repeats them with the near cache off, every hit a Redis GET);
  (b) misses: the same request with "cache": false, computed every time (from each worker's
      fourth, its body's skeleton is known: it is not parsed); (b') the same, every body
      reformatted (parsed, its structure known); (b'') a new graph every time (the output
      renamed: loaded, hashed and compiled anew);
  (c) the ceiling: a bare Flask endpoint under the same gunicorn configuration that parses a
      JSON body of the same size and returns the same bytes as (a).

It prints requests/s and p50/p99 for each, the ratio a/c (target >= 0.7), and what a miss adds
over (c) per request (target < 0.5 ms): from single-connection latency, and from the service's
own Server-Timing stages. Last, one 100,000-node scalar graph end to end (a miss), with the
time of each stage as the service reports it in Server-Timing. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, bench/ leads sys.path and this file (http.py) would shadow the standard
# library's http package, which httpx and flask import; put the repository there instead.
if Path(sys.path[0]).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)

import httpx  # noqa: E402
import orjson  # noqa: E402
from flask import Flask, Response, request  # noqa: E402

GUNICORN_CONFIG = REPO / "service" / "gunicorn.conf.py"
BIG_GRAPH_NODES = 100_000

WRK_SCRIPT = """
local file = io.open(os.getenv("BENCH_BODY_FILE"), "rb")
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
"""

# The same request, spelled differently every time: the n-th request puts a space after the
# i-th comma when bit i of n is set (16 commas: 65,536 byte-different, equivalent bodies), so
# each hit is parsed, loaded and hashed before the cache answers it.
WRK_REFORMAT_SCRIPT = WRK_SCRIPT + """
local base = wrk.body
local counter = 0
request = function()
  counter = counter + 1
  local i = 0
  local body = string.gsub(base, ",", function()
    i = i + 1
    if i <= 16 and math.floor(counter / 2 ^ (i - 1)) % 2 == 1 then return ", " end
    return ","
  end)
  return wrk.format(nil, nil, nil, body)
end
"""

# A new graph every time: the n-th request renames the output node "f" to "f<n>".
WRK_NEW_GRAPH_SCRIPT = WRK_SCRIPT + """
local base = wrk.body
local counter = 0
request = function()
  counter = counter + 1
  local body = string.gsub(base, '"f"', '"f' .. counter .. '"')
  return wrk.format(nil, nil, nil, body)
end
"""


# ---------------------------------------------------------------- the ceiling app


def create_bare_app() -> Flask:
    """(c): parse the JSON body, answer fixed bytes (BENCH_RESPONSE_FILE): no engine, no cache."""
    app = Flask(__name__)
    answer = Path(os.environ["BENCH_RESPONSE_FILE"]).read_bytes()

    @app.post("/echo")
    def echo() -> Response:
        orjson.loads(request.get_data())
        return Response(answer, mimetype="application/json")

    return app


# ---------------------------------------------------------------- graphs


def twenty_node_request() -> dict:
    """A scalar neuron with a few extra gates: 9 inputs and 11 gates."""
    nodes = [{"id": f"x{i}", "op": "input", "value": 0.1 * (i + 1)} for i in range(4)]
    nodes += [{"id": f"w{i}", "op": "input", "value": -0.3 + 0.2 * i} for i in range(4)]
    nodes.append({"id": "b", "op": "input", "value": 0.05})
    nodes += [{"id": f"m{i}", "op": "mul", "inputs": [f"x{i}", f"w{i}"]} for i in range(4)]
    nodes += [
        {"id": "s", "op": "add", "inputs": ["m0", "m1", "m2", "m3", "b"]},
        {"id": "t", "op": "tanh", "inputs": ["s"]},
        {"id": "u", "op": "sigmoid", "inputs": ["s"]},
        {"id": "v", "op": "mul", "inputs": ["u", "u"]},
        {"id": "l", "op": "log", "inputs": ["v"]},
        {"id": "r", "op": "relu", "inputs": ["t"]},
        {"id": "f", "op": "add", "inputs": ["l", "r"]},
    ]
    assert len(nodes) == 20
    return {"graph": {"nodes": nodes, "output": "f"}}


def big_scalar_request(nodes_wanted: int, seed: float) -> dict:
    """A 100,000-node scalar graph: adds, products and tanh squashes, two inputs each way."""
    nodes = [
        {"id": "n0", "op": "input", "value": 0.5},
        {"id": "n1", "op": "input", "value": -0.25},
    ]
    for i in range(2, nodes_wanted):
        if i % 3 == 0:
            node = {"id": f"n{i}", "op": "add", "inputs": [f"n{i - 1}", f"n{i - 2}"]}
        elif i % 3 == 1:
            node = {"id": f"n{i}", "op": "tanh", "inputs": [f"n{i - 1}"]}
        else:
            node = {"id": f"n{i}", "op": "mul", "inputs": [f"n{i - 1}", f"n{i - 2}"]}
        nodes.append(node)
    return {"graph": {"nodes": nodes, "output": nodes[-1]["id"]}, "seed": seed}


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with status {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


class Gunicorn:
    """gunicorn -c service/gunicorn.conf.py APP on a free loopback port, stopped on exit."""

    def __init__(self, app: str, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.env = {**env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        self.log_path = log_path

    def __enter__(self) -> Gunicorn:
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), self.app],
            cwd=REPO,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until_up(self.url + "/healthz", self.process)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


class RedisServer:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir

    def __enter__(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )
        give_up = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > give_up:
                    raise SystemExit("redis-server did not come up") from None
                time.sleep(0.02)

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# ---------------------------------------------------------------- wrk


@dataclass
class Load:
    label: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    server_cpu_us: float  # CPU time of gunicorn (master and workers) per request


def server_cpu_seconds(master_pid: int) -> float:
    """CPU seconds used so far by gunicorn: the master, its live workers, its reaped workers."""
    ticks = os.sysconf("SC_CLK_TCK")

    def stat_fields(pid: int) -> list[str]:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text[text.rindex(")") + 2 :].split()

    master = stat_fields(master_pid)
    # utime, stime, cutime, cstime are fields 14-17 of stat; [11:15] once pid and comm are cut.
    total = sum(int(v) for v in master[11:15])
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for child in children:
        # A worker that exits meanwhile is counted in the master's cutime instead.
        with contextlib.suppress(FileNotFoundError):
            total += sum(int(v) for v in stat_fields(int(child))[11:13])
    return total / ticks


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(label: str, server: Gunicorn, path: str, body_file: Path, script: Path, *,
            connections: int, duration: int) -> Load:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s",
               str(script), server.url + path]
    cpu_before = server_cpu_seconds(server.process.pid)
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "BENCH_BODY_FILE": str(body_file)})
    cpu = server_cpu_seconds(server.process.pid) - cpu_before
    text = done.stdout

    def percentile(name: str) -> float:
        match = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return Load(label, rps, percentile("50"), percentile("99"),
                int(non_2xx.group(1)) if non_2xx else 0, cpu / total * 1e6)


def server_timing(header: str) -> dict[str, float]:
    """{stage: milliseconds} from a Server-Timing header."""
    stages = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        stages[name] = float(duration)
    return stages


def median_server_timing(client: httpx.Client, url: str, body: bytes, n: int = 200) -> dict:
    """Each stage's median over `n` requests, a request without the stage counting 0 (the
    first sending of a body to a worker may parse it; its repeats do not), and the stages
    whose median is 0 left out."""
    samples: dict[str, list[float]] = {}
    for _ in range(n):
        response = client.post(url, content=body, headers={"Content-Type": "application/json"})
        for stage, ms in server_timing(response.headers["Server-Timing"]).items():
            samples.setdefault(stage, []).append(ms)
    medians = {stage: sorted(values + [0.0] * (n - len(values)))[n // 2]
               for stage, values in samples.items()}
    return {stage: ms for stage, ms in medians.items() if ms > 0}


# ---------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("redis-server") is None:
        raise SystemExit("bench.http needs wrk and redis-server on PATH")

    workdir = Path(tempfile.mkdtemp(prefix="chainrule-bench-"))
    metrics_dir = workdir / "prometheus"
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    reformat_script = workdir / "post-reformatted.lua"
    reformat_script.write_text(WRK_REFORMAT_SCRIPT)
    new_graph_script = workdir / "post-new-graph.lua"
    new_graph_script.write_text(WRK_NEW_GRAPH_SCRIPT)
    hit_body = orjson.dumps(twenty_node_request())
    miss_body = orjson.dumps({**twenty_node_request(), "cache": False})
    hit_file, miss_file = workdir / "hit.json", workdir / "miss.json"
    hit_file.write_bytes(hit_body)
    miss_file.write_bytes(miss_body)
    wrk = dict(connections=args.connections, duration=args.duration)

    with RedisServer(workdir) as redis_server:
        env = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "PYTHONPATH": str(REPO),
        }
        with Gunicorn("service.wsgi:app", env, workdir / "service.log") as service, \
                httpx.Client(timeout=120) as client:
            url = service.url + "/v1/gradients"
            headers = {"Content-Type": "application/json"}
            first = client.post(url, content=hit_body, headers=headers)
            assert first.status_code == 200, first.text
            hit = client.post(url, content=hit_body, headers=headers)
            assert hit.headers["X-Cache"] == "hit", hit.headers
            hit_response = hit.content
            workers = service_workers(service)

            path = "/v1/gradients"
            hits = run_wrk("(a) cache hits", service, path, hit_file, script, **wrk)
            reformatted_hits = run_wrk("(a'') cache hits, every body reformatted", service,
                                       path, hit_file, reformat_script, **wrk)
            misses = run_wrk("(b) misses, cache:false", service, path, miss_file, script, **wrk)
            reformatted_misses = run_wrk("(b') misses, every body reformatted", service, path,
                                         miss_file, reformat_script, **wrk)
            new_graph_misses = run_wrk("(b'') misses, a new graph every time", service, path,
                                       miss_file, new_graph_script, **wrk)
            misses_serial = run_wrk("(b) misses, 1 connection", service, path, miss_file,
                                    script, connections=1, duration=args.duration)
            miss_stages = median_server_timing(client, url, miss_body)
            hit_stages = median_server_timing(client, url, hit_body)
            big = big_graph_run(client, url)

        # The same hits with every one read from Redis: no near cache in the workers.
        redis_only = {**env, "NEAR_CACHE_MAX_BYTES": "0"}
        with Gunicorn("service.wsgi:app", redis_only, workdir / "redis-only.log") as service:
            httpx.post(service.url + "/v1/gradients", content=hit_body, headers=headers)
            redis_hits = run_wrk("(a') cache hits, all from Redis", service, path, hit_file,
                                 script, **wrk)

        (workdir / "response.json").write_bytes(hit_response)
        env["BENCH_RESPONSE_FILE"] = str(workdir / "response.json")
        with Gunicorn("bench.http:create_bare_app()", env, workdir / "bare.log") as bare:
            ceiling = run_wrk("(c) bare Flask: parse + fixed bytes", bare, "/echo", hit_file,
                              script, **wrk)
            ceiling_serial = run_wrk("(c) bare Flask, 1 connection", bare, "/echo", hit_file,
                                     script, connections=1, duration=args.duration)

    report(args, workers, len(hit_body), len(hit_response),
           [hits, redis_hits, reformatted_hits, misses, reformatted_misses, new_graph_misses,
            ceiling, misses_serial, ceiling_serial],
           miss_stages,
           hit_stages, big)
    shutil.rmtree(workdir, ignore_errors=True)


def service_workers(service: Gunicorn) -> int:
    from service.config import load_config

    return load_config(environ=service.env)["WEB_CONCURRENCY"]


def big_graph_run(client: httpx.Client, url: str) -> dict:
    body = orjson.dumps(big_scalar_request(BIG_GRAPH_NODES, seed=1.0 + time.time() % 1))
    started = time.perf_counter()
    response = client.post(url, content=body, headers={"Content-Type": "application/json"})
    total = time.perf_counter() - started
    assert response.status_code == 200, response.text[:500]
    assert response.headers["X-Cache"] == "miss"
    return {
        "request_bytes": len(body),
        "response_bytes": len(response.content),
        "total_ms": total * 1e3,
        "stages": server_timing(response.headers["Server-Timing"]),
    }


def report(args, workers, request_bytes, response_bytes, loads, miss_stages, hit_stages,
           big) -> None:
    (hits, redis_hits, reformatted_hits, misses, reformatted_misses, new_graph_misses, ceiling,
     misses_serial, ceiling_serial) = loads
    print(f"gunicorn sync x{workers} (service/gunicorn.conf.py), Redis cache, {os.cpu_count()} "
          f"cores; wrk -t1 -c{args.connections} -d{args.duration}s on loopback")
    print(f"20-node scalar graph: request {request_bytes} B, response {response_bytes} B\n")
    print(f"  {'':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
          f"{'server CPU us/req':>18}")
    for load in loads:
        print(f"  {load.label:40} {load.requests_per_second:9.0f} {load.p50_ms:8.2f} "
              f"{load.p99_ms:8.2f} {load.non_2xx:8d} {load.server_cpu_us:18.0f}")
    ratio = hits.requests_per_second / ceiling.requests_per_second
    cores = os.cpu_count() or 1
    added_cpu = cores * (1 / misses.requests_per_second - 1 / ceiling.requests_per_second)
    added_latency = misses_serial.p50_ms - ceiling_serial.p50_ms
    engine_schema = sum(ms for stage, ms in miss_stages.items() if stage != "cache_read")
    print(f"\n  ratio (a)/(c) = {ratio:.2f}   (target >= 0.7); by server CPU per request: "
          f"{ceiling.server_cpu_us / hits.server_cpu_us:.2f}")
    print(f"  ratio (a')/(c) = {redis_hits.requests_per_second / ceiling.requests_per_second:.2f}"
          "  (every hit a Redis GET)")
    print(f"  ratio (a'')/(c) = "
          f"{reformatted_hits.requests_per_second / ceiling.requests_per_second:.2f}"
          "  (every hit parsed, loaded and hashed: no byte-identical repeats; target >= 0.7)")
    print("  a miss over (c), per request (target < 0.5 ms):")
    print(f"    single-connection p50 difference     {added_latency:6.3f} ms")
    print(f"    throughput: cores x (1/b - 1/c)      {added_cpu * 1e3:6.3f} ms")
    print(f"    server CPU per request, b - c        "
          f"{(misses.server_cpu_us - ceiling.server_cpu_us) / 1e3:6.3f} ms")
    for label, load in (("b'", reformatted_misses), ("b''", new_graph_misses)):
        added = cores * (1 / load.requests_per_second - 1 / ceiling.requests_per_second)
        print(f"    {label + ':':4} throughput {added * 1e3:6.3f} ms, server CPU "
              f"{(load.server_cpu_us - ceiling.server_cpu_us) / 1e3:6.3f} ms")
    print(f"    the service's own stages (median)    {engine_schema:6.3f} ms   "
          + ", ".join(f"{k} {v:.3f}" for k, v in miss_stages.items()))
    print("  a hit's stages (median):               "
          + ", ".join(f"{k} {v:.3f}" for k, v in hit_stages.items()))
    print(f"\n{BIG_GRAPH_NODES:,}-node scalar graph, one miss end to end: "
          f"request {big['request_bytes'] / 1e6:.1f} MB, response "
          f"{big['response_bytes'] / 1e6:.1f} MB, {big['total_ms']:.0f} ms at the client")
    for stage, ms in big["stages"].items():
        print(f"    {stage:12} {ms:9.1f} ms")
    print(f"    {'(rest)':12} {big['total_ms'] - sum(big['stages'].values()):9.1f} ms   "
          "transfer, HTTP, Flask, logging, metrics")


if __name__ == "__main__":
    main()
