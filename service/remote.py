"""The command line's side of a running service: POST a request and read its event stream.

The server distribution does not depend on the SDK (a separate package) nor on an HTTP
client library, so this speaks the wire directly with the standard library: one POST with
`Accept: text/event-stream`, each `step` event handed on as it arrives, the `result` event's
body returned. A service that answers plain JSON instead has its trajectory handed on whole.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import click

EVENT_STREAM = "text/event-stream"


class RemoteError(click.ClickException):
    """The service refused the request (exit status 2) or could not answer it (status 1)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.exit_code = 2 if status is not None and 400 <= status < 500 else 1


def post_streamed(
    url: str, kind: str, body: dict[str, Any], on_step: Callable[[dict], None],
    timeout: float = 600.0,
) -> dict[str, Any]:
    """POST `body` to `url`/v1/`kind` as an event stream: `on_step(entry)` for each recorded
    step, and the final response body returned. RemoteError for an error answer or event."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/{kind}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": EVENT_STREAM},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if not response.headers.get("Content-Type", "").startswith(EVENT_STREAM):
                return _whole(json.load(response), on_step)
            return _read_stream(_lines(response), on_step)
    except urllib.error.HTTPError as error:
        raise RemoteError(f"{url}: {error.code} {_error_text(error.read())}", error.code) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise RemoteError(f"{url}: cannot reach the service: {reason}") from None


def _whole(body: dict[str, Any], on_step: Callable[[dict], None]) -> dict[str, Any]:
    for entry in body.get("trajectory", []):
        on_step(entry)
    return body


def _lines(response: Iterable[bytes]) -> Iterator[str]:
    for raw in response:
        yield raw.decode("utf-8").rstrip("\r\n")


def _read_stream(lines: Iterable[str], on_step: Callable[[dict], None]) -> dict[str, Any]:
    name, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data.append(line.partition(":")[2].removeprefix(" "))
        elif not line and data:
            payload = json.loads("\n".join(data))
            if name == "step":
                on_step(payload)
            elif name == "result":
                return payload
            elif name == "error":
                raise RemoteError(f"the run failed: {_error_text(json.dumps(payload).encode())}")
            name, data = "message", []
    raise RemoteError("the service's event stream ended without a result")


def _error_text(body: bytes) -> str:
    """The contract's error body in one line: code, node, message."""
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")[:200]
    where = f" (node '{error['node']}')" if error.get("node") else ""
    details = f" {json.dumps(error['details'])}" if error.get("details") else ""
    return f"{error['code']}{where}: {error['message']}{details}"
