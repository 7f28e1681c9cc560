"""docker-compose.yml's services as native processes: `lb` (Debian's nginx), `redis` (one
redis-server, or a Redis Cluster of three) and N `api` replicas (`chainrule serve`).

Commands and environment are read from the compose file itself, so the two stacks cannot drift.
Only what must differ on one host is changed: loopback addresses, one port per replica, one
metrics directory per replica, and a cluster in place of the single Redis when asked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deploy.native import nginx
from deploy.native.redis_cluster import RedisClusterProcesses

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@dataclass
class StackPlan:
    """Where everything listens: nginx on `port`, replica i on port + i (i = 1..replicas)."""

    port: int
    redis_port: int
    replicas: int = 1
    redis_cluster: bool = False
    api_ports: list[int] = field(init=False)

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("--replicas must be at least 1")
        self.api_ports = [self.port + i for i in range(1, self.replicas + 1)]


def redis_server_args(compose: dict) -> list[str]:
    """compose's redis options (bounded memory, LRU, no persistence), without the program."""
    return list(compose["services"]["redis"]["command"][1:])


def redis_argv(compose: dict, port: int) -> list[str]:
    command = compose["services"]["redis"]["command"]
    return [command[0], *command[1:], "--port", str(port), "--bind", "127.0.0.1"]


def api_environment(compose: dict, redis_url: str, port: int, metrics_dir: str) -> dict:
    """compose's api environment for one replica listening on 127.0.0.1:port."""
    env = {key: str(value) for key, value in compose["services"]["api"]["environment"].items()}
    env["REDIS_URL"] = redis_url
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    env["HOST"], env["PORT"] = "127.0.0.1", str(port)
    return env


def api_argv(compose: dict) -> list[str]:
    argv = list(compose["services"]["api"]["command"])
    # the console script lives beside this interpreter (the project's .venv)
    argv[0] = str(Path(sys.executable).parent / argv[0])
    return argv


def single_redis_url(compose: dict, redis_port: int) -> str:
    url = compose["services"]["api"]["environment"]["REDIS_URL"]
    return url.replace("redis:6379", f"127.0.0.1:{redis_port}")


class NativeStack:
    """Starts, watches and stops the processes of a StackPlan under `workdir`."""

    def __init__(self, plan: StackPlan, workdir: Path, compose: Mapping | None = None):
        self.plan = plan
        self.workdir = workdir
        self.compose = dict(compose or load_compose())
        self.redis: subprocess.Popen | None = None
        self.cluster: RedisClusterProcesses | None = None
        self.nginx: subprocess.Popen | None = None
        self.replicas: list[subprocess.Popen | None] = [None] * plan.replicas
        self._replica_restarts = [Restarts(f"replica {i + 1}") for i in range(plan.replicas)]
        self._redis_restarts = Restarts("redis-server")
        self._nginx_restarts = Restarts("nginx")
        self.redis_url = ""

    def start(self) -> None:
        self._start_redis()
        for index in range(self.plan.replicas):
            self.start_replica(index)
        self._start_nginx()

    def start_replica(self, index: int) -> subprocess.Popen:
        """Replica `index` (0-based) in a process group of its own, as a container would be:
        killing the group takes gunicorn's master and its workers down together."""
        port = self.plan.api_ports[index]
        metrics = self.workdir / f"metrics-{port}"
        env = api_environment(self.compose, self.redis_url, port, str(metrics))
        process = subprocess.Popen(api_argv(self.compose), env={**os.environ, **env},
                                   start_new_session=True)
        self.replicas[index] = process
        self._replica_restarts[index].started(process)
        return process

    def describe(self) -> list[str]:
        """One line per process, the replicas with their process group ids."""
        lines = [f"chainrule on http://127.0.0.1:{self.plan.port} (nginx, pid {self.nginx.pid})"]
        for index, process in enumerate(self.replicas):
            lines.append(f"replica {index + 1} on http://127.0.0.1:{self.plan.api_ports[index]}"
                         f" (pid {process.pid})")
        redis_pid = f" (pid {self.redis.pid})" if self.redis is not None else ""
        lines.append(f"redis at {self.redis_url}{redis_pid}")
        return lines

    def watch_once(self) -> None:
        """Restart what died, as compose's `restart: unless-stopped` does for every service:
        a replica, nginx, the single redis-server (a cluster's shards stay down, as a shard
        without a replica does)."""
        for index, process in enumerate(self.replicas):
            if self._replica_restarts[index].due(process):
                self.start_replica(index)
        if self._nginx_restarts.due(self.nginx):
            self._start_nginx()
        if self._redis_restarts.due(self.redis):
            self._spawn_redis()

    def stop(self) -> None:
        """SIGTERM to everything (gunicorn drains its workers), SIGKILL what outlives 30 s."""
        running = [p for p in (self.nginx, *self.replicas, self.redis) if p is not None]
        for process in running:
            if process.poll() is None:
                process.terminate()
        give_up = time.monotonic() + 30
        for process in running:
            try:
                process.wait(timeout=max(0.1, give_up - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.cluster is not None:
            self.cluster.stop()

    def _start_redis(self) -> None:
        if self.plan.redis_cluster:
            self.cluster = RedisClusterProcesses(
                self.workdir / "redis-cluster", first_port=self.plan.redis_port,
                server_args=redis_server_args(self.compose), node_timeout_ms=5000)
            self.cluster.launch()
            self.redis_url = self.cluster.url
        else:
            self._spawn_redis()
            self.redis_url = single_redis_url(self.compose, self.plan.redis_port)

    def _spawn_redis(self) -> None:
        self.redis = subprocess.Popen(redis_argv(self.compose, self.plan.redis_port),
                                      stdout=subprocess.DEVNULL)
        self._redis_restarts.started(self.redis)

    def _start_nginx(self) -> None:
        lb_environment = self.compose["services"]["lb"]["environment"]
        values = nginx.native_values(lb_environment, self.plan.port, self.plan.api_ports)
        prefix = self.workdir / "nginx"
        config = nginx.write_config(prefix, values)
        self.nginx = subprocess.Popen(nginx.nginx_argv(config, prefix))
        self._nginx_restarts.started(self.nginx)
        nginx.wait_listening(self.nginx, self.plan.port)


class Restarts:
    """When to start a dead process again: after 1 s, the delay doubling up to 30 s while it
    keeps dying young, as Docker backs off a container that keeps crashing."""

    def __init__(self, name: str):
        self.name = name
        self.started_at = 0.0
        self.backoff = 0.5
        self.died_at: float | None = None

    def started(self, process: subprocess.Popen) -> None:
        self.started_at = time.monotonic()
        if self.died_at is not None:
            print(f"{self.name} restarted (pid {process.pid})", flush=True)
        self.died_at = None

    def due(self, process: subprocess.Popen | None) -> bool:
        """Whether `process` has died and its delay has passed (saying so when it is found)."""
        if process is None or process.poll() is None:
            return False
        now = time.monotonic()
        if self.died_at is None:
            self.died_at = now
            lived = now - self.started_at
            self.backoff = 1.0 if lived > 10 else min(2 * self.backoff, 30.0)
            print(f"{self.name} exited with status {process.returncode}; restarting in "
                  f"{self.backoff:g} s", flush=True)
        return now - self.died_at >= self.backoff
