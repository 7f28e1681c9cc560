"""Known bodies read from their bytes (service/skeletons.py): a body whose skeleton is known is
not parsed, and answers exactly as a fresh app answers it, errors included."""

from __future__ import annotations

import copy

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.known_structures import structure_of
from service.skeletons import holes_are_values, skeleton_of
from tests.service.conftest import chain_request

KINDS = {"gradients": {}, "evaluate": {}, "jacobian": {"wrt": ["x", "z"]}, "gradcheck": {}}


def send(client, kind: str, body: bytes):
    return client.post(f"/v1/{kind}", data=body, content_type="application/json")


def stages(response) -> list[str]:
    return [part.split(";")[0] for part in response.headers["Server-Timing"].split(", ")]


def spelled(body: dict, values: dict[str, bytes], option: int = 0) -> bytes:
    """`body` written by orjson, the nodes named in `values` holding those literals."""
    body = copy.deepcopy(body)
    marks = {}
    for node in body["graph"]["nodes"]:
        if node["id"] in values:
            node["value"] = marks[node["id"]] = f"@{node['id']}@"
    text = orjson.dumps(body, option=option)
    for name, literal in values.items():
        text = text.replace(orjson.dumps(marks[name]), literal)
    return text


def make_known(client, kind: str, body: dict) -> None:
    """Send `body` until its skeleton is known, its first valued node holding a new number
    each time (no byte-identical repeat): the structure is held the second time it loads, the
    skeleton proven the third time (its second sighting since); the fourth is not parsed."""
    first = next(node["id"] for node in body["graph"]["nodes"] if "value" in node)
    for literal in (b"0.125", b"0.375", b"0.625", b"0.875"):
        sent = send(client, kind, spelled(body, {first: literal}))
        assert sent.status_code == 200
    assert "parse" not in stages(sent)


@pytest.fixture(params=["embedded", "redis"])
def two_apps(request, make_app):
    """The app under test, and a fresh app per body (over the same kind of store)."""
    config = {}
    if request.param == "redis":
        config = {"REDIS_URL": request.getfixturevalue("redis_server").url}
    return make_app(config).test_client(), lambda: make_app(config).test_client()


def answer(response) -> tuple[int, dict, str | None]:
    body = response.get_json()
    body.pop("cached", None)
    return response.status_code, body, response.headers.get("ETag")


@pytest.mark.parametrize("kind", KINDS)
def test_a_known_body_with_new_numbers_answers_as_a_fresh_app_without_parsing(
    two_apps, circuit, kind
):
    client, fresh = two_apps
    circuit.update(KINDS[kind])
    make_known(client, kind, {**circuit})
    for values in ({"x": b"3", "y": b"-1.5", "z": b"0.25"}, {"x": b"1e-3", "z": b"-0"},
                   {"y": b"2E+2", "z": b"123456789012345678901234567890"}):
        body = spelled(circuit, values)
        known = send(client, kind, body)
        assert "parse" not in stages(known)
        assert answer(known) == answer(send(fresh(), kind, body))


def test_whitespace_around_a_value_is_part_of_the_skeleton(client, circuit):
    make_known(client, "gradients", circuit)
    loose = orjson.dumps(circuit).replace(b'"value":', b'"value" :\n ')
    assert skeleton_of("gradients", loose).key != skeleton_of(
        "gradients", orjson.dumps(circuit)).key
    first = send(client, "gradients", loose)
    assert "parse" in stages(first) and first.json["value"] == -12.0


@pytest.mark.parametrize("literal, status", [(b"1e400", 422), (b"-1E999", 422)])
def test_a_literal_beyond_float64_is_refused_as_by_a_fresh_app(
    make_app, circuit, literal, status
):
    client = make_app().test_client()
    make_known(client, "gradients", circuit)
    body = spelled(circuit, {"y": literal})
    known, new = send(client, "gradients", body), send(make_app().test_client(), "gradients", body)
    assert known.status_code == new.status_code == status
    assert known.json["error"] == new.json["error"] and known.json["error"]["node"] == "y"


@pytest.mark.parametrize("values", [
    {"y": b"[1.0, 2.0]"},  # a tensor: not a hole, so another skeleton
    {"y": b'"NaN"'},
    {"y": b"1.5", "x": b"null"},
])
def test_values_that_are_not_number_literals_take_the_whole_way(make_app, circuit, values):
    client = make_app().test_client()
    make_known(client, "gradients", circuit)
    body = spelled(circuit, values)
    known = send(client, "gradients", body)
    assert "parse" in stages(known)
    assert answer(known) == answer(send(make_app().test_client(), "gradients", body))


def test_the_rest_of_the_body_is_the_rest_that_made_the_skeleton_known(client, circuit):
    body = {**circuit, "wrt": ["x"], "seed": 2.0}
    make_known(client, "gradients", body)
    again = send(client, "gradients", spelled(body, {"x": b"1"}))
    assert "parse" not in stages(again)
    assert list(again.json["nodes"]) == ["x"] and again.json["nodes"]["x"]["grad"] == -8.0
    uncached = {**body, "cache": False}
    make_known(client, "gradients", uncached)
    bypass = send(client, "gradients", spelled(uncached, {"x": b"1"}))
    assert bypass.headers["X-Cache"] == "bypass" and "parse" not in stages(bypass)


def hole_in_a_key() -> dict:
    """A body whose only pattern match is no value: the number after a key ending in `"value`
    (an input named so, given in `inputs`), while a const holds a tensor value."""
    name = 'x"value'
    return {"graph": {"nodes": [
        {"id": name, "op": "input"},
        {"id": "c", "op": "const", "value": [1.0, 2.0]},
        {"id": "f", "op": "mul", "inputs": [name, "c"]},
    ], "output": "f"}, "inputs": {name: 3.0}}


@pytest.fixture
def proofs(monkeypatch) -> list:
    """The outcome of every skeleton proof the app runs."""
    import service.known_structures as known_structures

    outcomes = []
    prove = known_structures.holes_are_values
    monkeypatch.setattr(known_structures, "holes_are_values",
                        lambda *args: outcomes.append(prove(*args)) or outcomes[-1])
    return outcomes


def test_a_hole_that_is_no_value_keeps_its_skeleton_unknown(make_app):
    """The pattern also cuts the number after a key ending in `"value` (an input named so);
    the proof finds that hole is no node's value, so that skeleton never becomes known."""
    text = orjson.dumps(hole_in_a_key())
    assert [text[start:end] for start, end in skeleton_of("gradients", text).holes] == [b"3.0"]
    client = make_app().test_client()
    for const in (b"[1.5,2.0]", b"[1.0,2.5]", b"[1.0,2.0]"):  # held at the 2nd, then tried
        sent = send(client, "gradients", text.replace(b"[1.0,2.0]", const))
        assert sent.status_code == 200 and "parse" in stages(sent)
    moved = text.replace(b"3.0", b"4.0")
    again = send(client, "gradients", moved)
    assert "parse" in stages(again)
    assert answer(again) == answer(send(make_app().test_client(), "gradients", moved))
    assert again.json["nodes"]["f"]["value"] == [4.0, 8.0]


def test_holes_must_be_the_valued_nodes_values_in_order(circuit):
    structure = structure_of(circuit)
    text = orjson.dumps(circuit)
    assert holes_are_values(skeleton_of("gradients", text), circuit, structure.valued)
    assert not holes_are_values(skeleton_of("gradients", text), circuit, structure.valued[:2])
    # a duplicate key: the first literal is read over, so it is no node's value
    doubled = text.replace(b'"value":-2', b'"value":7,"value":-2', 1)
    parsed = orjson.loads(doubled)
    assert not holes_are_values(skeleton_of("gradients", doubled), parsed, [0, 1, 2])
    # a mark equal to the value it stands in for proves nothing: undecided, not refuted
    halves = orjson.loads(text.replace(b'"value":-2', b'"value":0.5', 1))
    assert holes_are_values(
        skeleton_of("gradients", orjson.dumps(halves)), halves, structure.valued) is None


def test_a_refuted_skeleton_is_not_tried_again(make_app, proofs):
    """The proof parses the whole body: a skeleton it refutes (a hole that is no value) is
    remembered as refuted, and later bodies with it are not parsed twice."""
    text = orjson.dumps(hole_in_a_key())
    client = make_app().test_client()
    for x in (b"3.0", b"4.0", b"5.0", b"6.0"):
        sent = send(client, "gradients", text.replace(b"3.0", x))
        assert sent.status_code == 200 and "parse" in stages(sent)
    assert proofs == [False]  # tried once the structure was held, then known as refuted


def test_a_skeleton_undecided_by_its_values_is_proven_by_the_next_body(client, circuit):
    # held at the second send, the skeleton noted; the third's 0.5 is the first hole's mark:
    # undecided; proven at the fourth
    for x in (b"0.25", b"0.125", b"0.5", b"0.75"):
        assert "parse" in stages(send(client, "gradients", spelled(circuit, {"x": x})))
    assert "parse" not in stages(send(client, "gradients", spelled(circuit, {"x": b"2"})))


def test_a_duplicate_value_key_answers_as_a_fresh_app(make_app, circuit):
    client = make_app().test_client()
    make_known(client, "gradients", circuit)
    doubled = orjson.dumps(circuit).replace(b'"value":-2', b'"value":7,"value":-2', 1)
    for _ in range(3):
        known = send(client, "gradients", doubled.replace(b"-2", b"-3"))
    assert answer(known) == answer(send(make_app().test_client(), "gradients",
                                        doubled.replace(b"-2", b"-3")))


def test_the_skeleton_key_is_the_bytes_but_the_literals_and_the_endpoint():
    body = chain_request(3)
    a = skeleton_of("gradients", orjson.dumps(body))
    assert a.key == skeleton_of("gradients", orjson.dumps(chain_request(3, -0.125e-7))).key
    assert a.key != skeleton_of("evaluate", orjson.dumps(body)).key
    assert a.key != skeleton_of("gradients", orjson.dumps(chain_request(4))).key
    # the same bytes around holes at other places
    one = b'{"a":[{"value":1},{"b":"c"}]}'
    two = b'{"a":[{"value":1},{"b":"c"}]}'.replace(b'"c"', b'"value":2')
    assert skeleton_of("gradients", one).key != skeleton_of("gradients", two).key


def test_a_skeleton_whose_structure_is_gone_takes_the_whole_way(make_app):
    app = make_app({"PLAN_CACHE_SIZE": 1})
    client = app.test_client()
    make_known(client, "evaluate", chain_request(3))
    make_known(client, "evaluate", chain_request(4))  # the only structure held now
    again = send(client, "evaluate", orjson.dumps(chain_request(3, 0.25)))
    assert "parse" in stages(again) and again.status_code == 200


def test_a_rest_holding_an_infinity_is_not_kept(make_app, circuit):
    """orjson writes infinity as null; the rest is kept as orjson writes it."""
    client = make_app().test_client()
    body = {**circuit, "seed": 0.0, "allow_nonfinite": True}
    text = orjson.dumps(body).replace(b'"seed":0.0', b'"seed":1e400')
    for x in (b"-3", b"-4", b"-5"):
        sent = send(client, "gradients", text.replace(b"-2", x))
        assert sent.status_code == 200 and "parse" in stages(sent)


def test_known_bodies_are_bounded_by_count(make_app, circuit):
    """Bodies of one structure with three `wrt`s: the oldest skeleton falls out of two."""
    client = make_app({"PLAN_CACHE_SIZE": 2}).test_client()
    bodies = [{**circuit, "wrt": [name]} for name in ("x", "y", "z")]
    for body in bodies:
        make_known(client, "gradients", body)
    newest = send(client, "gradients", spelled(bodies[2], {"x": b"9"}))
    oldest = send(client, "gradients", spelled(bodies[0], {"x": b"9"}))
    assert "parse" not in stages(newest) and "parse" in stages(oldest)


def test_a_skeleton_is_proven_on_its_second_sighting_once_its_structure_is_held(
    client, circuit
):
    parsed = []
    for literal in (b"0.125", b"0.375", b"0.625", b"0.875", b"1.125"):
        sent = send(client, "gradients", spelled(circuit, {"x": literal}))
        parsed.append("parse" in stages(sent))
    assert parsed == [True, True, True, False, False]


def test_a_skeleton_that_changes_every_time_pays_no_proof(client, circuit, proofs):
    """A body whose bytes change beyond its values every time (here its seed) is never proven:
    the proof would parse each one again for nothing."""
    for seed in range(2, 8):
        body = {**circuit, "seed": float(seed)}
        assert send(client, "gradients", spelled(body, {"x": b"1.5"})).status_code == 200
    assert proofs == []


LITERALS = st.from_regex(r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?",
                         fullmatch=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(x=LITERALS, y=LITERALS, z=LITERALS)
def test_any_number_literal_reads_as_the_parser_reads_it(make_app, circuit, x, y, z):
    """The holes' literals against the same body reformatted (another skeleton: parsed)."""
    known, other = make_app().test_client(), make_app().test_client()
    make_known(known, "gradients", circuit)
    body = spelled(circuit, {"x": x.encode(), "y": y.encode(), "z": z.encode()})
    recalled = send(known, "gradients", body)
    assert "parse" not in stages(recalled)
    reformatted = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    assert answer(recalled) == answer(send(other, "gradients", reformatted))


# mostly the bytes of numbers (a new value, or a bad literal), sometimes any JSON punctuation
EDIT_BYTES = st.one_of(
    st.lists(st.sampled_from(list(b"0123456789.eE+-")), max_size=4),
    st.lists(st.sampled_from(list(b"0123456789.eE+- ,:\"[]{}x\n")), max_size=4),
).map(bytes)


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(-2, 3), st.integers(0, 2), EDIT_BYTES),
                      min_size=1, max_size=3),
       hole=st.integers(0, 2))
def test_a_known_body_edited_near_its_values_answers_as_a_fresh_app(
    make_app, circuit, edits, hole
):
    """Any bytes sent where a known body's values were (a number, a bad literal, broken JSON)
    get the answer, or the error, that a fresh app gives them."""
    known = make_app().test_client()
    make_known(known, "gradients", circuit)
    body = bytearray(spelled(circuit, {"x": b"1.5", "y": b"-2", "z": b"0.25"}))
    start = [body.index(b"1.5"), body.index(b"-2"), body.index(b"0.25")][hole]
    for offset, cut, replacement in edits:
        at = max(0, min(len(body), start + offset))
        body[at:at + cut] = replacement
    sent = bytes(body)
    ours, theirs = send(known, "gradients", sent), send(make_app().test_client(), "gradients", sent)
    assert ours.status_code == theirs.status_code
    if ours.status_code == 200:
        assert answer(ours) == answer(theirs)
    else:
        assert ours.json["error"] == theirs.json["error"]
