"""A real Redis Cluster of N masters on loopback: started, joined, shards killed and restarted.

Each shard is a `redis-server --cluster-enabled yes`; `redis-cli --cluster create` assigns the
16384 slots. The cluster is a cache: `cluster-require-full-coverage no` keeps the other shards
answering while one is down (keys of the lost shard's slots are simply unavailable), and no
shard persists data. A restarted shard rejoins with its slots from its nodes file, empty.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from deploy.native.ports import free_port_block

BUS_PORT_OFFSET = 10000  # Redis Cluster's node-to-node bus listens on port + 10000
SLOTS = 16384


def _executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (Debian package redis-server)")
    return path


class RedisClusterProcesses:
    """`shards` redis-server processes on 127.0.0.1 joined into one cluster of masters.

    `server_args` are the options every shard gets besides the cluster's own (e.g. compose's
    redis command: maxmemory, eviction, no persistence).
    """

    def __init__(self, workdir: Path, *, shards: int = 3, first_port: int | None = None,
                 server_args: Sequence[str] = ("--save", "", "--appendonly", "no"),
                 node_timeout_ms: int = 1000):
        self.workdir = Path(workdir)
        if first_port is None:
            first_port = free_port_block(shards, offset=BUS_PORT_OFFSET)
        self.ports = [first_port + i for i in range(shards)]
        self.server_args = list(server_args)
        self.node_timeout_ms = node_timeout_ms
        self.processes: list[subprocess.Popen | None] = [None] * shards

    @property
    def nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.ports]

    @property
    def url(self) -> str:
        """The REDIS_URL the api takes for this cluster."""
        return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in self.nodes)

    def server_argv(self, shard: int) -> list[str]:
        port = self.ports[shard]
        return [
            _executable("redis-server"), *self.server_args,
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
            "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-require-full-coverage", "no",
        ]

    def launch(self, wait_seconds: float = 30.0) -> None:
        """Start every shard, join them (slots spread evenly, no replicas), wait for a whole
        cluster. Shards left by a previous launch in the same workdir are reused as they are."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for shard in range(len(self.ports)):
            self._spawn(shard)
        for shard in range(len(self.ports)):
            self._wait_answering(shard, wait_seconds)
        if int(self.cluster_info(0)["cluster_slots_assigned"]) != SLOTS:
            self._create(wait_seconds)
        self.wait_healthy(wait_seconds)

    def kill(self, shard: int) -> None:
        """SIGKILL one shard, as a crash would; its slots become unavailable."""
        process = self.processes[shard]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        self.processes[shard] = None

    def start(self, shard: int, wait_seconds: float = 30.0) -> None:
        """Start a killed shard again on its port; returns once every shard sees it healthy."""
        self._spawn(shard)
        self._wait_answering(shard, wait_seconds)
        self.wait_healthy(wait_seconds)

    def stop(self) -> None:
        for shard in range(len(self.ports)):
            self.kill(shard)

    def client(self, **options) -> redis.RedisCluster:
        """redis-py's cluster client, started from every node so any live one will do."""
        startup = [redis.cluster.ClusterNode(host, port) for host, port in self.nodes]
        return redis.RedisCluster(startup_nodes=startup, **options)

    def cluster_info(self, shard: int) -> dict:
        """CLUSTER INFO as seen by one shard."""
        with self._client(shard) as client:
            return client.cluster("info")

    def wait_healthy(self, seconds: float = 30.0) -> None:
        """Until every shard answers, reports cluster_state ok with all slots assigned, and
        flags no node as failing."""
        give_up = time.monotonic() + seconds
        while not self._healthy():
            if time.monotonic() > give_up:
                raise RuntimeError(f"Redis Cluster on ports {self.ports} did not become healthy")
            time.sleep(0.05)

    def _healthy(self) -> bool:
        try:
            for shard in range(len(self.ports)):
                with self._client(shard) as client:
                    info = client.cluster("info")
                    nodes = client.cluster("nodes").values()
                if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != SLOTS:
                    return False
                if any(not node["connected"] and "myself" not in node["flags"]
                       or "fail" in node["flags"] or "handshake" in node["flags"]
                       for node in nodes):
                    return False
            return True
        except redis.RedisError:
            return False

    def _spawn(self, shard: int) -> None:
        log = open(self.workdir / f"redis-{self.ports[shard]}.log", "ab")  # noqa: SIM115
        with log:
            self.processes[shard] = subprocess.Popen(
                self.server_argv(shard), stdout=log, stderr=subprocess.STDOUT)

    def _wait_answering(self, shard: int, seconds: float) -> None:
        give_up = time.monotonic() + seconds
        with self._client(shard) as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    process = self.processes[shard]
                    if process is None or process.poll() is not None:
                        raise RuntimeError(
                            f"redis-server on port {self.ports[shard]} exited; see "
                            f"{self.workdir}/redis-{self.ports[shard]}.log") from None
                    if time.monotonic() > give_up:
                        raise RuntimeError(
                            f"redis-server on port {self.ports[shard]} did not answer") from None
                    time.sleep(0.02)

    def _create(self, seconds: float) -> None:
        addresses = [f"{host}:{port}" for host, port in self.nodes]
        subprocess.run(
            [_executable("redis-cli"), "--cluster", "create", *addresses,
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=seconds)

    def _client(self, shard: int) -> redis.Redis:
        # no retries: the waits above poll, and a refused connection must answer at once
        return redis.Redis(port=self.ports[shard], socket_timeout=1, socket_connect_timeout=1,
                           decode_responses=True, retry=None)
