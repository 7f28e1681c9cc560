"""Answers as server-sent events, for a streaming kind asked for `Accept: text/event-stream`.

    event: step      one per recorded trajectory entry: data {"step", "value", "grad_norm"}
    event: result    last: data is the response body the JSON answer would have been
    event: error     instead of result, when the run fails after the stream began:
                     data is the contract's error body

The computation runs in a thread that hands each entry over a queue as the engine records it.
The view waits for the first message before it answers, so whatever fails before the first
entry (a bad request, a param that is not an input, a deadline before the first evaluation)
is an ordinary error response with its status; only later failures become `event: error`.
A stored result (a cache hit, or an identical request's result found while waiting for it)
is streamed as its trajectory's entries and then the body, as a fresh run would be.
A client that goes away ends the run at its next recorded entry.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import orjson
from flask import Response, request, stream_with_context

from schemas import mark_cached
from schemas.responses import trajectory_entry
from service.errors import handle_error
from service.pipeline import Loaded
from service.resources import resources
from service.store import Unstored, fetch_or_compute

EVENT_STREAM = "text/event-stream"
JSON = "application/json"

# compute(on_record) -> the body (Unstored: answer it, never store it)
StreamedCompute = Callable[[Callable[[dict], None]], bytes | Unstored]


class StreamAbandoned(Exception):
    """The client went away: raised inside the run to end it."""


def wants_event_stream() -> bool:
    """Whether the request's Accept header prefers an event stream to JSON."""
    return request.accept_mimetypes.best_match([JSON, EVENT_STREAM]) == EVENT_STREAM


def event_stream_response(
    loaded: Loaded, compute: StreamedCompute, *, wait_until: float
) -> Response:
    """The loaded request's answer as events; errors before the first one raise as usual."""
    shared = resources()
    if loaded.request.cache:
        stored = shared.results.get(loaded.hash)
        if stored is not None:
            shared.metrics.count_cache_lookup("hit")
            return _response(_replayed(mark_cached(stored)), loaded.hash, "hit")
    run = _StreamedRun(loaded, compute, wait_until)
    first = run.next_message()
    if first[0] == "error":
        raise first[1]
    outcome = "miss" if loaded.request.cache else "bypass"
    return _response(stream_with_context(run.events(first)), loaded.hash, outcome)


def _response(events: Iterator[bytes], digest: str, outcome: str) -> Response:
    return Response(
        events, mimetype=EVENT_STREAM,
        headers=[("ETag", f'"{digest}"'), ("X-Cache", outcome), ("Cache-Control", "no-store"),
                 ("X-Accel-Buffering", "no")],  # nginx: pass each event on as it comes
    )


def _event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def _replayed(body: bytes) -> Iterator[bytes]:
    """A whole result body as its stream: one event per trajectory entry, then the body."""
    for entry in orjson.loads(body)["trajectory"]:
        yield _event("step", orjson.dumps(entry))
    yield _event("result", body)


class _StreamedRun:
    """One computation in its own thread, its messages on a queue:
    ("step", entry), then ("done", body, outcome) or ("error", exception)."""

    def __init__(self, loaded: Loaded, compute: StreamedCompute, wait_until: float):
        self.loaded = loaded
        self.compute = compute
        self.wait_until = wait_until
        self.messages: queue.Queue[tuple] = queue.Queue()
        self.abandoned = threading.Event()
        self.results = resources().results
        self.metrics = resources().metrics
        threading.Thread(target=self._work, name="chainrule-stream", daemon=True).start()

    def next_message(self) -> tuple:
        return self.messages.get()

    def _record(self, entry: dict) -> None:
        if self.abandoned.is_set():
            raise StreamAbandoned()
        self.messages.put(("step", entry))

    def _work(self) -> None:
        try:
            if self.loaded.request.cache:
                body, outcome = fetch_or_compute(
                    self.results, self.loaded.hash, lambda: self.compute(self._record),
                    wait_until=self.wait_until,
                )
            else:
                computed, outcome = self.compute(self._record), "bypass"
                body = computed.body if isinstance(computed, Unstored) else computed
            self.messages.put(("done", body, outcome))
        except BaseException as error:  # every failure goes to the client, in the stream
            self.messages.put(("error", error))

    def events(self, first: tuple) -> Iterator[bytes]:
        """The stream's bytes, from the first message on; ends the run if the client leaves."""
        message = first
        try:
            while message[0] == "step":
                yield _event("step", orjson.dumps(trajectory_entry(message[1])))
                message = self.next_message()
            if message[0] == "error":
                yield _event("error", handle_error(message[1]).get_data())
                return
            _, body, outcome = message
            self.metrics.count_cache_lookup(outcome)
            if outcome == "hit":  # an identical request's result: its steps were not streamed
                yield from _replayed(mark_cached(body))
            else:
                yield _event("result", body)
        finally:
            self.abandoned.set()
