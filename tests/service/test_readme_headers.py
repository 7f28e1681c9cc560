"""README.md's word on the headers holds: which X-Request-ID values are echoed, and which
answers carry X-Cache and are stored under their ETag (the diagram's are not)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
GRAPH = {"nodes": [{"id": "x", "op": "input", "value": 0.5},
                   {"id": "f", "op": "sin", "inputs": ["x"]}], "output": "f"}
EXTRA = {"jacobian": {"wrt": ["x"]}, "diagram": {"format": "dot"},
         "optimize": {"params": ["x"], "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 2}}
KINDS = ("gradients", "evaluate", "jacobian", "gradcheck", "optimize", "diagram")


def _paragraph(start: str) -> str:
    return " ".join(README.split(start, 1)[1].split("\n\n", 1)[0].split())


def test_the_request_ids_the_readme_says_are_echoed_are_echoed(client):
    said = re.search(r"echoed when it is (\d+) to (\d+) visible ASCII characters \(`(.)` to "
                     r"`(.)`", _paragraph("Every response carries `X-Request-ID`"))
    shortest, longest, low, high = int(said[1]), int(said[2]), said[3], said[4]
    for sent, echoed in ((low * shortest, True), (high * longest, True),
                         ("a" * (longest + 1), False), ("a b", False), ("", False),
                         (chr(ord(low) - 1) + "a", False)):
        answered = client.get("/healthz", headers={"X-Request-ID": sent}).headers["X-Request-ID"]
        assert (answered == sent) is echoed, sent
        if not echoed:
            assert re.fullmatch(r"[0-9a-f]{32}", answered)


def test_the_answers_the_readme_says_are_stored_are_stored(client):
    paragraph = _paragraph("Every response carries `X-Request-ID`")
    listed = paragraph.split("The JSON answers, of ", 1)[1].split(" (inline", 1)[0]
    stored = set(re.findall(r"`/v1/(\w+)`", listed))
    assert "`/v1/diagram` answers, images, carry the ETag alone" in paragraph
    for kind in KINDS:
        response = client.post(f"/v1/{kind}", json={"graph": GRAPH, **EXTRA.get(kind, {})})
        digest = response.headers["ETag"].strip('"')
        kept = client.get(f"/v1/results/{digest}")
        assert ("X-Cache" in response.headers) is (kind in stored), kind
        assert kept.status_code == (200 if kind in stored else 404), kind


@pytest.mark.parametrize("kind", ["gradients", "optimize"])
def test_cache_false_is_a_bypass_and_not_stored(client, kind):
    body = {"graph": GRAPH, **EXTRA.get(kind, {}), "cache": False}
    response = client.post(f"/v1/{kind}", json=body)
    assert response.headers["X-Cache"] == "bypass"
    assert client.get(f"/v1/results/{response.headers['ETag'].strip(chr(34))}").status_code == 404
