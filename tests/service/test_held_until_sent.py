"""What a request holds for after its response (service/api/body.py hold_until_sent): alive
until the server has sent the response, then let go."""

from __future__ import annotations

import weakref

from service.api.body import hold_until_sent


class Thing:
    """A stand-in for a big parsed body: something a weak reference can watch."""


def test_a_held_object_lives_until_the_response_is_closed(app):
    watched: list[weakref.ref] = []

    def view() -> str:
        thing = hold_until_sent(Thing())
        watched.append(weakref.ref(thing))
        return "ok"

    app.add_url_rule("/probe-held", "probe_held", view)
    response = app.test_client().get("/probe-held", buffered=False)
    assert response.status_code == 200
    assert watched[0]() is not None  # the view has returned; the response is not yet sent
    response.close()
    assert watched[0]() is None

