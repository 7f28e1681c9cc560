"""Structured logs: one JSON object per line; a line logged while serving a request carries
its request id.

The app's own loggers ("chainrule.*") and gunicorn's (service/gunicorn.conf.py, whose access
line per request has request_id, method, path, status, duration_ms, bytes and cache) share
this format, so every line about one request can be joined on request_id. With LOG_FORMAT
text (or auto, on a terminal) the same records are written as readable lines instead.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson
from flask import Flask, g, has_request_context

LOGGER_NAME = "chainrule"

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonLogFormatter(logging.Formatter):
    """A record as one JSON line: time, level, logger, pid, message, request_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": os.getpid(),
            "message": record.getMessage(),
        }
        if "request_id" not in vars(record) and has_request_context():
            entry["request_id"] = g.get("request_id")
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextLogFormatter(JsonLogFormatter):
    """A record as one readable line: time, level, logger, message, then key=value extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = orjson.loads(super().format(record))
        head = [entry.pop("time")[11:23], f"{entry.pop('level'):<7}", entry.pop("logger"),
                entry.pop("message")]
        if head[3] == "request" and {"method", "path", "status"} <= entry.keys():
            # an access line reads as one: POST /v1/gradients 200 4.7 ms
            head[3] = f"{entry.pop('method')} {entry.pop('path')} {entry.pop('status')}"
            if "duration_ms" in entry:
                head[3] += f" {entry.pop('duration_ms')} ms"
        entry.pop("pid", None)
        exception = entry.pop("exception", None)
        tail = [f"{key}={value}" for key, value in entry.items() if value is not None]
        line = " ".join(head + tail)
        return f"{line}\n{exception}" if exception else line


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter LOG_FORMAT asks for: "json", "text", or "auto" (text on a terminal)."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    return TextLogFormatter() if log_format == "text" else JsonLogFormatter()


def _utc_timestamp(created: float) -> str:
    seconds = int(created)
    if seconds != _second_text[0]:
        _second_text[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second_text[1]}.{int(created % 1 * 1000):03d}Z"


# The formatted text of the last second seen: every line within a second shares it.
_second_text: list = [None, ""]


def init_app(app: Flask) -> None:
    """Send the "chainrule" loggers to stderr at LOG_LEVEL, as LOG_FORMAT says (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(app.config["LOG_LEVEL"])
    logger.propagate = False
    formatter = formatter_for(app.config["LOG_FORMAT"])
    ours = [h for h in logger.handlers if isinstance(h.formatter, JsonLogFormatter)]
    for handler in ours:
        handler.setFormatter(formatter)
    if not ours:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
