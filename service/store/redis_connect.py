"""Connecting to what REDIS_URL names: one Redis server or a Redis Cluster.

    redis://[user:password@]host:port/db     one server
    rediss://...                             one server over TLS (redis-py's ssl_* query options,
                                             e.g. ?ssl_ca_certs=/path/ca.pem)
    unix:///path/to/redis.sock?db=0          one server on a local socket
    redis+cluster://[user:password@]host:port[,host:port...]
                                             a Redis Cluster, found from any of the nodes listed

Every client fails fast: connect and socket timeouts of the store's timeout, no retries of its
own (the store's circuit breaker decides when to try again). redis-py's cluster client asks the
nodes for the slot map as it is built, so it is built on first use, not at start-up: a cluster
that is down when a worker starts is simply unavailable until it answers.
"""

from __future__ import annotations

import threading
from urllib.parse import parse_qsl, unquote

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.exceptions import RedisClusterException
from redis.retry import Retry

CLUSTER_SCHEME = "redis+cluster://"

# What a client may raise when its server or cluster fails (redis-py's cluster errors about
# slots and nodes do not all derive from RedisError).
CLIENT_ERRORS = (redis.RedisError, RedisClusterException)

Client = redis.Redis | redis.RedisCluster


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def parse_cluster_url(url: str) -> tuple[list[ClusterNode], dict[str, str]]:
    """The startup nodes of a redis+cluster:// URL, and its credentials and query options."""
    rest = url[len(CLUSTER_SCHEME):]
    location, _, query = rest.partition("?")
    location = location.split("/", 1)[0]  # a trailing /0: clusters have one database only
    userinfo, _, hosts = location.rpartition("@")
    options = dict(parse_qsl(query))
    if userinfo:
        user, _, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if password:
            options["password"] = unquote(password)
    nodes = []
    for address in filter(None, hosts.split(",")):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_URL: {address!r} is not host:port")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError("REDIS_URL: redis+cluster:// names no host:port")
    return nodes, options


def connect(url: str, *, timeout_seconds: float, max_connections: int) -> Client:
    """A client for `url`; for a cluster this asks a node for the slot map (and may raise)."""
    common = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "max_connections": max_connections,
    }
    if is_cluster_url(url):
        nodes, options = parse_cluster_url(url)
        return redis.RedisCluster(
            startup_nodes=nodes,
            retry=Retry(NoBackoff(), 0),
            require_full_coverage=False,
            **options,
            **common,
        )
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **common)


def ping_every_shard(client: Client) -> None:
    """PING the server, or every primary of a cluster (one down is enough to say so)."""
    if isinstance(client, redis.RedisCluster):
        client.ping(target_nodes=redis.RedisCluster.PRIMARIES)
    else:
        client.ping()


class LazyClient:
    """The client of one URL, built on first use (again after a failed build), shared by threads."""

    def __init__(self, url: str, *, timeout_seconds: float, max_connections: int):
        if is_cluster_url(url):
            parse_cluster_url(url)  # a malformed URL is a configuration error: say so at start
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.max_connections = max_connections
        self._client: Client | None = None
        self._lock = threading.Lock()

    def get(self) -> Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = connect(
                        self.url,
                        timeout_seconds=self.timeout_seconds,
                        max_connections=self.max_connections,
                    )
                client = self._client
        return client

    def built(self) -> Client | None:
        """The client if it has been built, without building it."""
        return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
