"""The service's configuration: every setting is an environment variable, with its default here.

`load_config()` is read once by the app factory (and by service/gunicorn.conf.py); the keys are
the environment variable names, so `create_app({"MAX_NODES": 100})` overrides exactly what
`MAX_NODES=100` in the environment would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import platformdirs
from limits import parse_many  # the rate notation Flask-Limiter itself parses

from service.cors import parse_origins


def _optional_str(text: str) -> str | None:
    return text or None


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _rate_limit(text: str) -> str | None:
    """Flask-Limiter's notation, e.g. "100/second" or "10/second;1000/hour"; empty: none."""
    if not text:
        return None
    try:
        parse_many(text)
    except ValueError:
        raise ValueError('must be like "100/second" or "10/second;1000/hour"') from None
    return text


def _key_list(text: str) -> str | None:
    """Comma-separated API keys (or their SHA-256); empty: none, so the API stays open."""
    if text and not any(key.strip() for key in text.split(",")):
        raise ValueError("names no key: give comma-separated keys, or leave it empty")
    return text or None


def default_cache_dir() -> str:
    """The per-user cache directory ($XDG_CACHE_HOME/chainrule, usually ~/.cache/chainrule)."""
    return platformdirs.user_cache_dir("chainrule", appauthor=False)


def _log_format(text: str) -> str:
    form = text.lower()
    if form not in {"auto", "json", "text"}:
        raise ValueError("must be one of auto, json, text")
    return form


def default_worker_count() -> int:
    """gunicorn's usual 2 x cores + 1, capped so a big host does not fork dozens of workers."""
    return min(2 * (os.cpu_count() or 1) + 1, 12)


# name -> (default, parser for the environment's string)
SETTINGS: dict[str, tuple[Any, Callable[[str], Any]]] = {
    "REDIS_URL": (None, _optional_str),
    "CACHE_TTL_SECONDS": (3600, _positive_int),
    "GRAPH_TTL_SECONDS": (86400, _positive_int),
    "CACHE_MAX_ENTRY_BYTES": (8 * 1024 * 1024, _positive_int),
    "CACHE_DIR": (None, _optional_str),
    "CACHE_MAX_BYTES": (1024 * 1024 * 1024, _positive_int),
    "NEAR_CACHE_MAX_BYTES": (32 * 1024 * 1024, _non_negative_int),
    "PLAN_CACHE_SIZE": (256, _positive_int),
    "PLAN_CACHE_MAX_NODES": (500_000, _positive_int),
    "BATCH_WORKSPACE_BYTES": (128 * 1024 * 1024, _non_negative_int),
    "MAX_BODY_BYTES": (32 * 1024 * 1024, _positive_int),
    "MAX_NODES": (200_000, _positive_int),
    "MAX_ELEMENTS": (10_000_000, _positive_int),
    "MAX_TOTAL_ELEMENTS": (50_000_000, _positive_int),
    "COMPUTE_DEADLINE_SECONDS": (10.0, _positive_float),
    # How long a client may go silent while it sends its request or reads the answer, and the
    # pace its request must keep (service/worker.py), before the server gives up on it (408
    # mid-body, else the connection closes): a stalled or trickling upload must not hold a
    # worker until gunicorn kills it.
    "CLIENT_TIMEOUT_SECONDS": (10.0, _positive_float),
    "CLIENT_MIN_BYTES_PER_SECOND": (4096.0, _positive_float),
    "MAX_GRADCHECK_ELEMENTS": (10_000, _positive_int),
    "DIAGRAM_MAX_NODES": (300, _positive_int),
    "DIAGRAM_TIMEOUT_SECONDS": (10.0, _positive_float),
    "MAX_OPTIMIZE_STEPS": (10_000, _positive_int),
    "REDIS_TIMEOUT_SECONDS": (0.05, _positive_float),
    "LOG_LEVEL": ("INFO", _log_level),
    # json: one JSON object per line (containers, log shippers); text: human-readable lines;
    # auto: text when stderr is a terminal, else json.
    "LOG_FORMAT": ("auto", _log_format),
    # Browser origins allowed to call the API (comma-separated, or *); empty: CORS off.
    "CORS_ORIGINS": ((), parse_origins),
    # `chainrule serve` (and so `make run`) listens on loopback only; the container sets 0.0.0.0.
    "HOST": ("127.0.0.1", str),
    "PORT": (8000, _positive_int),
    "WEB_CONCURRENCY": (None, _positive_int),
    "PROMETHEUS_MULTIPROC_DIR": (None, _optional_str),
    "API_KEYS": (None, _key_list),
    "METRICS_TOKEN": (None, _optional_str),
    "RATE_LIMIT": (None, _rate_limit),
}


def pace_broken(silence: float, min_rate: float) -> str:
    """What a client let go for keeping its worker waiting (CLIENT_TIMEOUT_SECONDS,
    CLIENT_MIN_BYTES_PER_SECOND: service/worker.py) did, as messages say it."""
    return f"silent for {silence:g} s, or sent fewer than {min_rate:g} bytes a second"


class ConfigError(ValueError):
    """An environment variable or override that cannot be used, named in the message."""


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Defaults, then the environment, then `overrides` (already typed values, e.g. from tests).

    Keys of `overrides` that are not settings (Flask's own, such as TESTING) pass through.
    """
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, (default, parse) in SETTINGS.items():
        text = environ.get(name)
        if text is None:
            config[name] = default
            continue
        try:
            config[name] = parse(text.strip())
        except ValueError as error:
            raise ConfigError(f"environment variable {name}={text!r}: {error}") from None
    config.update(overrides or {})
    if config["CACHE_DIR"] is None:
        config["CACHE_DIR"] = default_cache_dir()
    if config["WEB_CONCURRENCY"] is None:
        config["WEB_CONCURRENCY"] = default_worker_count()
    return config
