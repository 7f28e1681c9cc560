"""What a request's work leaves behind, freed after its response is sent.

Freeing a big graph's parsed body and loaded request takes tens of milliseconds (about 35 ms
for 100,000 nodes) that the client need not wait for. A view hands them to `hold_until_sent`;
they are let go once the server has sent the response (when it closes it), and the cyclic
collector, off while a request runs (service/app.py), is resumed only then: resumed before,
its first pass would scan every held object, all of them young.

The WSGI server closes every response it sends. One never closed (the test client does not
close its responses) is released when the next request starts.
"""

from __future__ import annotations

import gc

from flask import Response, g

# The releases of responses not closed yet (one at a time under gunicorn's sync workers).
_unreleased: list[_Release] = []


class _Release:
    """Lets go of one response's held objects, then resumes the collector if it ran before the
    request; once."""

    __slots__ = ("held", "resume")

    def __init__(self, held: list, resume: bool):
        self.held, self.resume = held, resume

    def __call__(self) -> None:
        if self in _unreleased:
            _unreleased.remove(self)
        self.held.clear()
        if self.resume:
            self.resume = False
            gc.enable()


def stop_collector() -> None:
    """At the start of a request: release what earlier responses held, note whether the
    collector runs, and stop it for the request."""
    while _unreleased:
        _unreleased[-1]()
    g.collector_was_enabled = gc.isenabled()
    gc.disable()


def hold_until_sent(*things: object) -> None:
    """Keep `things` alive until the response has been sent."""
    g.setdefault("held_until_sent", []).extend(things)


def release_after_sending(response: Response) -> Response:
    """After a request: hand what it holds to the response's close (and the collector's resume
    with it)."""
    held = g.pop("held_until_sent", None)
    if held:
        release = _Release(held, g.pop("collector_was_enabled", False))
        _unreleased.append(release)
        response.call_on_close(release)
    return response


def resume_collector(error: BaseException | None) -> None:
    """At teardown: resume the collector, unless the response's close will."""
    if g.pop("collector_was_enabled", False):
        gc.enable()
