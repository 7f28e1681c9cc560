"""Who may call the API, and how often: bearer-token keys (API_KEYS) and per-key rate limits
(RATE_LIMIT). Both are off unless configured, as under `make run`.

- API_KEYS is a comma-separated list of keys, each given as itself or as the hex SHA-256 of
  itself (so the environment need not hold the secrets). A caller sends `Authorization: Bearer
  <key>`; its SHA-256 is compared with every configured digest by hmac.compare_digest. /v1/*
  answers 401 `unauthorized` (WWW-Authenticate: Bearer) without a known key. The probes
  (/healthz, /readyz), the playground and the API docs stay open; /metrics needs METRICS_TOKEN
  as its bearer token when that is set.
- RATE_LIMIT (Flask-Limiter's notation, "100/second") applies to /v1/* per caller: per key when
  API_KEYS is set, else per client address. Counts live in Redis when REDIS_URL is set (the
  same server or cluster as the results, so a limit holds across replicas), else in each
  worker's memory. A Redis that fails is skipped (Flask-Limiter counts in memory meanwhile):
  the limiter never refuses a request because its storage is down. Over the limit: 429
  `rate_limited` with Retry-After.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import time
from typing import Any

from flask import Flask, Response, g, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from redis.exceptions import RedisClusterException

from service.errors import error_response

log = logging.getLogger("chainrule.access")

HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
API_PREFIX = "/v1/"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The SHA-256 digests of the keys that may call."""

    def __init__(self, spec: str):
        keys = [key.strip() for key in spec.split(",") if key.strip()]
        self.digests = [key if HEX_DIGEST.fullmatch(key) else digest(key) for key in keys]

    def holder(self, key: str) -> str | None:
        """The digest of `key` if it is one of ours, else None; every digest is compared."""
        presented = digest(key)
        found = False
        for known in self.digests:
            found |= hmac.compare_digest(presented, known)
        return presented if found else None


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def unauthorized(message: str) -> Response:
    return error_response(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="chainrule"'}
    )


def init_app(app: Flask, settings: dict[str, Any]) -> None:
    """Install the checks the settings ask for (none by default)."""
    if settings["API_KEYS"]:
        app.before_request(_api_key_check(KeyRing(settings["API_KEYS"])))
    if settings["METRICS_TOKEN"]:
        app.before_request(_metrics_token_check(digest(settings["METRICS_TOKEN"])))
    if settings["RATE_LIMIT"]:
        _install_limiter(app, settings)


def _guarded_request() -> bool:
    """A /v1 request that keys and limits apply to: not a CORS preflight, which browsers send
    without credentials and which computes nothing."""
    return request.path.startswith(API_PREFIX) and request.method != "OPTIONS"


def _api_key_check(ring: KeyRing):
    def check() -> Response | None:
        if not _guarded_request():
            return None
        token = bearer_token()
        if token is None:
            return unauthorized("this API needs a key: send Authorization: Bearer <key>")
        g.api_key = ring.holder(token)
        if g.api_key is None:
            return unauthorized("the bearer token is not a known API key")
        return None

    return check


def _metrics_token_check(token_digest: str):
    def check() -> Response | None:
        if request.path != "/metrics" or request.method == "OPTIONS":  # a preflight has no key
            return None
        token = bearer_token()
        if token is None or not hmac.compare_digest(digest(token), token_digest):
            return unauthorized("/metrics needs METRICS_TOKEN: send Authorization: Bearer <token>")
        return None

    return check


def caller() -> str:
    """Whom a rate limit counts: the API key's digest, else the client's address."""
    return g.get("api_key") or request.remote_addr or "unknown"


def limiter_storage_uri(redis_url: str | None) -> str:
    """Flask-Limiter's (the `limits` package's) name for the store REDIS_URL names."""
    if not redis_url:
        return "memory://"
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url  # redis://, rediss:// and redis+cluster:// are spelled alike


def _install_limiter(app: Flask, settings: dict[str, Any]) -> None:
    options = {
        "key_func": caller,
        "application_limits": [settings["RATE_LIMIT"]],
        "application_limits_exempt_when": lambda: not _guarded_request(),
        "key_prefix": "chainrule",
        "swallow_errors": True,
        "in_memory_fallback_enabled": True,
    }
    uri = limiter_storage_uri(settings["REDIS_URL"])
    storage_options = {}
    if uri != "memory://":
        timeout = settings["REDIS_TIMEOUT_SECONDS"]
        storage_options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    try:
        limiter = Limiter(app=app, storage_uri=uri, storage_options=storage_options, **options)
    except RedisClusterException as error:
        # redis-py's cluster client needs a node to answer as it is built
        log.warning("rate limits counted per worker until restart: %s", error)
        limiter = Limiter(app=app, storage_uri="memory://", **options)
    app.extensions["chainrule_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, _rate_limited(limiter))


def _rate_limited(limiter: Limiter):
    def handle(error: RateLimitExceeded) -> Response:
        current = limiter.current_limit
        reset_at = current.reset_at if current is not None else time.time() + 1
        retry_after = max(1, math.ceil(reset_at - time.time()))
        return error_response(
            429,
            "rate_limited",
            f"over the rate limit of {error.description}; retry after {retry_after} s",
            details={"limit": error.description, "retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )

    return handle
