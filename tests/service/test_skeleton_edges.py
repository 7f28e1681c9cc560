"""Bodies crafted against the skeleton proof (service/skeletons.py): `"value"` keys that are no
node's value, duplicate keys, and literals read apart by the two parsers, on every computing
kind, answer as a fresh app answers them."""

from __future__ import annotations

import pytest

from tests.service.test_skeletons import stages

# an input named "value", given in `inputs` too: a hole that is no node's value
INPUT_NAMED_VALUE = (
    b'{"graph":{"nodes":[{"id":"value","op":"input","value":%s},'
    b'{"id":"c","op":"const","value":2.5},{"id":"f","op":"mul","inputs":["value","c"]}],'
    b'"output":"f"},"inputs":{"value":3.0}}'
)
# two graphs: the last one is read
TWO_GRAPHS = (
    b'{"graph":{"nodes":[{"id":"x","op":"input","value":9}],"output":"x"},'
    b'"graph":{"nodes":[{"id":"x","op":"input","value":%s},'
    b'{"id":"f","op":"tanh","inputs":["x"]}],"output":"f"}}'
)
# a second `value` key the pattern does not see (escaped), after the hole and before it
ESCAPED_AFTER = (
    b'{"graph":{"nodes":[{"id":"x","op":"input","value":%s,"valu\\u0065":7},'
    b'{"id":"f","op":"tanh","inputs":["x"]}],"output":"f"}}'
)
ESCAPED_BEFORE = ESCAPED_AFTER.replace(b'"value":%s,"valu\\u0065":7', b'"valu\\u0065":7,"value":%s')


def send(client, kind: str, body: bytes, headers: dict | None = None):
    return client.post(f"/v1/{kind}", data=body, content_type="application/json",
                       headers=headers or {})


def assert_answers_alike(make_app, kind: str, template: bytes, probe: bytes, headers=None):
    """Send `template` with three literals (the third is read from its skeleton if that is
    known), then `probe`: the status and bytes match a fresh app's."""
    client = make_app().test_client()
    for literal in (b"1", b"2", b"3"):
        assert send(client, kind, template % literal, headers).status_code == 200
    ours = send(client, kind, template % probe, headers)
    theirs = send(make_app().test_client(), kind, template % probe, headers)
    assert ours.status_code == theirs.status_code
    assert ours.data.replace(b'"cached":true', b'"cached":false') == theirs.data
    return ours


@pytest.mark.parametrize("template", [INPUT_NAMED_VALUE, TWO_GRAPHS])
def test_holes_that_are_not_the_values_read_never_skip_parsing(make_app, template):
    assert "parse" in stages(assert_answers_alike(make_app, "gradients", template, b"7"))


def test_a_hole_read_over_an_escaped_key_before_it_is_the_value(make_app):
    ours = assert_answers_alike(make_app, "gradients", ESCAPED_BEFORE, b"0.5")
    assert "parse" not in stages(ours) and ours.json["value"] == pytest.approx(0.46211716)


def test_a_hole_overwritten_by_an_escaped_key_never_skips_parsing(make_app):
    ours = assert_answers_alike(make_app, "gradients", ESCAPED_AFTER, b"7")
    assert "parse" in stages(ours) and ours.json["value"] == pytest.approx(0.9999983)


OPTIMIZE = b',"params":["x"],"optimizer":{"name":"sgd","lr":0.01},"steps":2'
KIND_BODIES = {
    kind: b'{"graph":{"nodes":[{"id":"x","op":"input","value":%%s},'
    b'{"id":"c","op":"const","value":3},{"id":"f","op":"mul","inputs":["x","c"]},'
    b'{"id":"g","op":"mul","inputs":["f","x"]}],"output":"g"}%s}' % extra
    for kind, extra in [("evaluate", b""), ("jacobian", b',"wrt":["x"]'), ("gradcheck", b""),
                        ("optimize", OPTIMIZE), ("diagram", b"")]
}


@pytest.mark.parametrize("literal", [b"-0", b"1e400", b"18446744073709551616",
                                     b"99999999999999999999999", b"1e-400"])
@pytest.mark.parametrize("kind", KIND_BODIES)
def test_every_kind_reads_a_known_skeleton_as_a_fresh_app(make_app, kind, literal):
    ours = assert_answers_alike(make_app, kind, KIND_BODIES[kind], literal)
    assert "parse" not in stages(ours)


@pytest.mark.parametrize("literal", [b"-0", b"1e400", b"0.5"])
def test_an_event_stream_of_a_known_skeleton_is_a_fresh_apps(make_app, literal):
    ours = assert_answers_alike(make_app, "optimize", KIND_BODIES["optimize"], literal,
                                headers={"Accept": "text/event-stream"})
    assert "parse" not in stages(ours)
    assert ours.mimetype == ("text/event-stream" if ours.status_code == 200 else "application/json")
