"""What a request holds is freed after its response is sent (service/api/held.py), with the
cyclic collector still off, and the collector resumes then; never left off."""

from __future__ import annotations

import gc

import pytest

from service.api import held
from service.api.held import hold_until_sent


class Probe:
    """Notes, as it is freed, whether the collector was running."""

    def __init__(self, seen: list[bool]):
        self.seen = seen

    def __del__(self) -> None:
        self.seen.append(gc.isenabled())


@pytest.fixture
def probing_app(make_app):
    """An app with a route that holds a Probe until its response is sent."""
    app = make_app()
    seen: list[bool] = []

    def probe() -> str:
        hold_until_sent(Probe(seen))
        return "held"

    app.add_url_rule("/probe", view_func=probe)
    return app, seen


@pytest.fixture(autouse=True)
def collector_on():
    gc.enable()
    yield
    gc.enable()


def test_held_objects_go_when_the_response_closes_and_the_collector_resumes(probing_app):
    app, seen = probing_app
    response = app.test_client().get("/probe")  # read and closed, as a server closes it
    assert response.text == "held"
    assert seen == [False] and gc.isenabled() and not held._unreleased


def test_a_response_never_closed_is_released_when_the_next_request_starts(probing_app, circuit):
    app, seen = probing_app
    client = app.test_client()
    unclosed = client.get("/probe", buffered=False)
    assert unclosed.status_code == 200 and seen == [] and not gc.isenabled()
    assert client.post("/v1/gradients", json=circuit).status_code == 200
    assert seen == [False] and gc.isenabled() and not held._unreleased


def test_a_collector_off_before_the_request_stays_off(probing_app):
    app, seen = probing_app
    gc.disable()
    app.test_client().get("/probe")
    assert seen == [False] and not gc.isenabled()


def test_a_computed_miss_holds_its_parsed_body_until_closed(client, circuit):
    response = client.post("/v1/gradients", json=circuit, buffered=False)
    assert response.headers["X-Cache"] == "miss" and not gc.isenabled()
    (release,) = held._unreleased
    assert circuit in release.held  # the body as parsed, and the loaded request with it
    response.close()
    assert not release.held and not held._unreleased and gc.isenabled()
