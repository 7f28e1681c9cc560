"""Many replicas and the shared stores: wrk on loopback, best of three short runs each.

    .venv/bin/python -m bench.replicas [--duration 5] [--connections 16] [--runs 3]

(1) One server (gunicorn, service/gunicorn.conf.py, default workers), no Redis, hits of a
    20-node scalar graph:
      the embedded store (diskcache in CACHE_DIR) with each worker's near cache in front, as
      shipped; the embedded store alone (NEAR_CACHE_MAX_BYTES=0, every hit read from SQLite);
      and the baseline, the per-worker in-process LRU (MemoryStore) the service used before.
    The three servers run side by side and wrk takes turns between them.
    Target: embedded as shipped >= 0.9x the per-worker LRU. Also misses ("cache": false), and
    the server's CPU per request, from which requests per second per core follow.
(2) scripts/stack-native --replicas 3 (nginx in front of three replicas over one Redis):
    the same hits through nginx, and sent to one replica directly. Target: nginx >= 0.8x.
    The same with --replicas 1, so that nginx adds its cost and no replicas: what a proxy hop
    costs on this machine (nginx shares its cores with the replicas here). Also the Redis
    commands a hit and a miss cost (INFO's total_commands_processed; a script's own commands
    count too).
Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import orjson
import redis

from bench.http import (
    REPO,
    WRK_SCRIPT,
    Gunicorn,
    Load,
    run_wrk,
    twenty_node_request,
)
from deploy.native.ports import free_port_block

HEADERS = {"Content-Type": "application/json"}


def per_worker_memory_app():
    """The baseline for (1): the service as it was, each worker with its own in-process LRU.
    gunicorn builds it in each worker ('bench.replicas:per_worker_memory_app()')."""
    import service.app
    from service.store import MemoryStore

    def memory_store(settings, metrics):
        return MemoryStore(max_bytes=256 * 1024 * 1024,
                           max_entry_bytes=settings["CACHE_MAX_ENTRY_BYTES"],
                           ttl_seconds=settings["CACHE_TTL_SECONDS"])

    service.app._result_store = memory_store
    return service.app.create_app()


def best_of_interleaved(runs: int, measures: list) -> list[Load]:
    """Each measure `runs` times, taking turns (A B C A B C ...) so that a neighbour's load
    on a shared machine falls on all of them alike; the best run of each."""
    results: list[list[Load]] = [[] for _ in measures]
    for _ in range(runs):
        for index, measure in enumerate(measures):
            results[index].append(measure())
    return [max(loads, key=lambda load: load.requests_per_second) for loads in results]


def warm(url: str, body: bytes, workers: int) -> None:
    """The first request computes; a few more reach (most of) the workers."""
    with httpx.Client(timeout=60) as client:
        for _ in range(4 * workers):
            answer = client.post(url + "/v1/gradients", content=body, headers=HEADERS)
            assert answer.status_code == 200, answer.text[:300]


def one_server(args, workdir: Path, files: dict[str, Path], script: Path) -> list[Load]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "REDIS_URL": "",
           "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics")}
    variants = [
        ("embedded + near cache (shipped)", "service.wsgi:app", {}),
        ("embedded only (NEAR_CACHE_MAX_BYTES=0)", "service.wsgi:app",
         {"NEAR_CACHE_MAX_BYTES": "0"}),
        ("per-worker LRU (MemoryStore, before)", "bench.replicas:per_worker_memory_app()", {}),
    ]
    wrk = dict(connections=args.connections, duration=args.duration)
    with contextlib.ExitStack() as running:
        servers = []
        for number, (_, app, extra) in enumerate(variants):
            variant_env = {**env, "CACHE_DIR": str(workdir / f"cache-{number}"), **extra}
            server = running.enter_context(
                Gunicorn(app, variant_env, workdir / f"server-{number}.log"))
            warm(server.url, files["hit"].read_bytes(), 12)
            servers.append(server)
        measures = [
            lambda server=server, label=label: run_wrk(
                f"hits: {label}", server, "/v1/gradients", files["hit"], script, **wrk)
            for server, (label, _, _) in zip(servers, variants, strict=True)
        ]
        measures.append(lambda: run_wrk("misses (cache: false), embedded", servers[0],
                                        "/v1/gradients", files["miss"], script, **wrk))
        return best_of_interleaved(args.runs, measures)


def start_stack(workdir: Path, replicas: int) -> tuple[subprocess.Popen, SimpleNamespace]:
    port, redis_port = free_port_block(replicas + 1), free_port_block(1)
    log = workdir / f"stack-{replicas}-{time.monotonic_ns()}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "stack-native"), "--port", str(port),
             "--replicas", str(replicas), "--redis-port", str(redis_port)],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    give_up = time.monotonic() + 90
    while "redis at" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > give_up:
            raise SystemExit("stack-native did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.2)
    text = log.read_text(errors="replace")
    nginx_pid = int(re.search(r"\(nginx, pid (\d+)\)", text).group(1))
    replica_pids = [int(p) for p in re.findall(r"^replica \d+ on \S+ \(pid (\d+)\)$", text, re.M)]
    stack = SimpleNamespace(
        lb=SimpleNamespace(url=f"http://127.0.0.1:{port}", process=SimpleNamespace(pid=nginx_pid)),
        replica=SimpleNamespace(url=f"http://127.0.0.1:{port + 1}",
                                process=SimpleNamespace(pid=replica_pids[0])),
        redis_port=redis_port)
    for url in [f"http://127.0.0.1:{port + i}" for i in range(replicas + 1)]:
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > give_up:
                raise SystemExit(f"{url} never ready")
            time.sleep(0.2)
    return process, stack


def redis_commands_per_request(stack, body: bytes, count: int = 200) -> float:
    with redis.Redis(port=stack.redis_port) as raw, httpx.Client(timeout=60) as client:
        before = raw.info("stats")["total_commands_processed"]
        for _ in range(count):
            client.post(stack.replica.url + "/v1/gradients", content=body, headers=HEADERS)
        after = raw.info("stats")["total_commands_processed"]
    return (after - before - 1) / count  # INFO itself is one command


def nginx_against_direct(args, workdir: Path, files, script, replicas: int) -> list[Load]:
    process, stack = start_stack(workdir, replicas)
    wrk = dict(connections=args.connections, duration=args.duration)
    try:
        warm(stack.lb.url, files["hit"].read_bytes(), 4 * replicas)
        return best_of_interleaved(args.runs, [
            lambda: run_wrk(
                f"hits through nginx ({replicas} replica{'s' * (replicas > 1)}; CPU: nginx's)",
                stack.lb, "/v1/gradients", files["hit"], script, **wrk),
            lambda: run_wrk(
                f"hits sent to replica 1 of {replicas} directly", stack.replica,
                "/v1/gradients", files["hit"], script, **wrk),
        ])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def redis_costs(workdir: Path, files) -> dict:
    process, stack = start_stack(workdir, 1)
    try:
        fresh = {**twenty_node_request(), "seed": 1.0 + time.time() % 1}
        misses = [orjson.dumps({**fresh, "seed": fresh["seed"] + i}) for i in range(200)]
        with redis.Redis(port=stack.redis_port) as raw, httpx.Client(timeout=60) as client:
            before = raw.info("stats")["total_commands_processed"]
            for body in misses:
                client.post(stack.replica.url + "/v1/gradients", content=body, headers=HEADERS)
            per_miss = (raw.info("stats")["total_commands_processed"] - before - 1) / len(misses)
        return {"per_miss": per_miss,
                "per_hit": redis_commands_per_request(stack, files["hit"].read_bytes())}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def report(args, single: list[Load], replicas: dict) -> None:
    load_average = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load_average}; wrk -t1 -c{args.connections} "
          f"-d{args.duration}s on loopback, best of {args.runs}; 20-node scalar graph\n")
    print(f"  {'':52} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} "
          f"{'CPU us/req':>10} {'req/s/core':>10}")
    for load in [*single, *replicas["loads"]]:
        per_core = 1e6 / load.server_cpu_us if load.server_cpu_us else float("nan")
        print(f"  {load.label:52} {load.requests_per_second:8.0f} {load.p50_ms:7.2f} "
              f"{load.p99_ms:7.2f} {load.non_2xx:7d} {load.server_cpu_us:10.0f} "
              f"{per_core:10.0f}")
    shipped, disk_only, baseline = single[:3]
    through_lb, direct, through_lb_1, direct_1 = replicas["loads"]
    print(f"\n  embedded (shipped) / per-worker LRU = "
          f"{shipped.requests_per_second / baseline.requests_per_second:.2f}  (target >= 0.9); "
          f"by server CPU per hit {baseline.server_cpu_us / shipped.server_cpu_us:.2f}")
    print(f"  embedded only      / per-worker LRU = "
          f"{disk_only.requests_per_second / baseline.requests_per_second:.2f}")
    print(f"  through nginx / one replica direct  = "
          f"{through_lb.requests_per_second / direct.requests_per_second:.2f}  (target >= 0.8)")
    print(f"  nginx + 1 replica / that replica    = "
          f"{through_lb_1.requests_per_second / direct_1.requests_per_second:.2f}  "
          "(the proxy hop alone, nginx on the same cores)")
    print(f"  Redis commands per request (near cache on): hit {replicas['per_hit']:.2f}, "
          f"miss {replicas['per_miss']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per figure (best kept)")
    args = parser.parse_args()
    for program in ("wrk", "redis-server", "nginx"):
        if shutil.which(program) is None and not Path("/usr/sbin", program).exists():
            raise SystemExit(f"bench.replicas needs {program}")
    workdir = Path(tempfile.mkdtemp(prefix="chainrule-bench-replicas-"))
    try:
        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT)
        files = {"hit": workdir / "hit.json", "miss": workdir / "miss.json"}
        files["hit"].write_bytes(orjson.dumps(twenty_node_request()))
        files["miss"].write_bytes(orjson.dumps({**twenty_node_request(), "cache": False}))
        single = one_server(args, workdir, files, script)
        replicas = redis_costs(workdir, files)
        replicas["loads"] = [*nginx_against_direct(args, workdir, files, script, 3),
                             *nginx_against_direct(args, workdir, files, script, 1)]
        report(args, single, replicas)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
