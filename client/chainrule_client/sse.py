"""Server-sent events, as /v1/optimize streams them with `Accept: text/event-stream`.

The framing the SDK reads: one `event: step` per recorded step, its `data:` the trajectory
entry as JSON; then `event: result` with the final response body, or `event: error` with the
contract's error body. Events end at a blank line; several `data:` lines join with newlines;
lines starting with ':' are comments (keep-alives).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chainrule_client.protocol import EventSink

__all__ = ["Event", "EventStream", "parse_events"]


@dataclass(frozen=True)
class Event:
    name: str
    data: str


class EventStream(EventSink):
    """Decodes a body fed in chunks of any size, handing each complete event to `on_event`."""

    def __init__(self, on_event: Callable[[Event], None]) -> None:
        self._on_event = on_event
        self._buffer = b""

    def feed(self, chunk: bytes) -> None:
        # Joined before normalising, so a CR LF split across two chunks is still one newline.
        self._buffer = (self._buffer + chunk).replace(b"\r\n", b"\n")
        *complete, self._buffer = self._buffer.split(b"\n\n")
        for block in complete:
            event = _event(block.decode("utf-8"))
            if event is not None:
                self._on_event(event)


def parse_events(content: bytes) -> Iterator[Event]:
    """Every event of a whole body (a last event without its blank line included)."""
    events: list[Event] = []
    stream = EventStream(events.append)
    stream.feed(content + b"\n\n")
    yield from events


def _event(block: str) -> Event | None:
    name, data = "message", []
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if not data:
        return None
    return Event(name, "\n".join(data))
