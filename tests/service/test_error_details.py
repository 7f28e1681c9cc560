"""Errors that say enough to fix the request at once (issue 15): the node of a field error under
graph.nodes.N, the whole cycle, every missing input, why gradcheck fails at a kink, and the
seed refused by the engine's one check."""

from __future__ import annotations

import pytest


def _post(client, body, kind="gradients"):
    response = client.post(f"/v1/{kind}", json=body)
    return response.status_code, response.get_json()


@pytest.mark.parametrize("bad_node, field", [
    ({"id": "f", "op": "neg", "inputs": "x"}, "inputs"),
    ({"id": "f", "op": "neg", "inputs": ["x"], "attrs": 3}, "attrs"),
    ({"id": "f", "op": "const", "value": [1, [2]]}, "value"),
])
def test_a_field_error_under_graph_nodes_names_that_node(client, bad_node, field):
    graph = {"nodes": [{"id": "x", "op": "input", "value": 1}, bad_node], "output": "f"}
    status, body = _post(client, {"graph": graph})
    assert status == 422
    error = body["error"]
    assert error["code"] == "validation_error"
    assert error["node"] == "f"
    assert field in error["details"]["graph"]["nodes"]["1"]


def test_a_field_error_elsewhere_names_no_node(client):
    graph = {"nodes": [{"id": "x", "op": "input", "value": 1}], "output": "x"}
    status, body = _post(client, {"graph": graph, "wrt": "x"})
    assert status == 422 and body["error"]["node"] is None


def test_a_cycle_is_listed_in_the_direction_values_flow(client):
    graph = {"nodes": [
        {"id": "a", "op": "add", "inputs": ["b", "x"]},
        {"id": "b", "op": "neg", "inputs": ["c"]},
        {"id": "c", "op": "exp", "inputs": ["a"]},
        {"id": "x", "op": "input", "value": 1},
    ], "output": "a"}
    status, body = _post(client, {"graph": graph})
    error = body["error"]
    assert (status, error["code"]) == (422, "cycle")
    cycle = error["details"]["cycle"]
    assert sorted(cycle) == ["a", "b", "c"] and error["node"] == cycle[0]
    by_id = {node["id"]: node for node in graph["nodes"]}
    for k, name in enumerate(cycle):  # each feeds the next, the last feeds the first
        assert name in by_id[cycle[(k + 1) % len(cycle)]]["inputs"]


def test_a_self_reference_is_a_cycle_of_one(client):
    graph = {"nodes": [{"id": "a", "op": "neg", "inputs": ["a"]}], "output": "a"}
    status, body = _post(client, {"graph": graph})
    assert body["error"]["details"] == {"cycle": ["a"]}


def test_a_long_cycle_is_named_in_full_in_details_only(client):
    ring = 50_000
    graph = {"nodes": [{"id": f"n{k}", "op": "sin", "inputs": [f"n{(k + 1) % ring}"]}
                       for k in range(ring)], "output": "n0"}
    status, body = _post(client, {"graph": graph})
    error = body["error"]
    assert (status, error["code"]) == (422, "cycle")
    assert len(error["details"]["cycle"]) == ring
    named = error["message"].split(": ", 1)[1].split(" -> ")
    assert named[:10] == error["details"]["cycle"][:10]
    assert named[10:] == ["... (50,000 nodes in all)"]


def test_a_short_cycle_is_named_round_in_the_message(client):
    graph = {"nodes": [{"id": "a", "op": "neg", "inputs": ["b"]},
                       {"id": "b", "op": "neg", "inputs": ["a"]}], "output": "a"}
    status, body = _post(client, {"graph": graph})
    assert body["error"]["message"].endswith(": a -> b -> a")


def test_many_missing_inputs_are_named_in_full_in_details_only(client):
    names = [f"x{k:03}" for k in range(300)]
    graph = {"nodes": [*({"id": name, "op": "input"} for name in names),
                       {"id": "f", "op": "add", "inputs": names}], "output": "f"}
    status, body = _post(client, {"graph": graph})
    error = body["error"]
    assert (status, error["code"], error["details"]) == (422, "missing_input", {"missing": names})
    assert "'x009', ... (300 nodes in all) have no value" in error["message"]
    assert "'x010'" not in error["message"]


def test_every_missing_input_is_listed_at_once(client):
    graph = {"nodes": [
        {"id": "x", "op": "input"}, {"id": "y", "op": "input"},
        {"id": "z", "op": "input", "value": 1},
        {"id": "f", "op": "add", "inputs": ["x", "y", "z"]},
    ], "output": "f"}
    status, body = _post(client, {"graph": graph})
    error = body["error"]
    assert (status, error["code"], error["node"]) == (422, "missing_input", "x")
    assert error["details"] == {"missing": ["x", "y"]}
    status, body = _post(client, {"graph": graph, "inputs": {"x": 2}})
    assert body["error"]["details"] == {"missing": ["y"]}


@pytest.mark.parametrize("op, values, kink_inputs, index", [
    ("relu", [0.0], ["x0"], []),
    ("abs", [0.0], ["x0"], []),
    ("max", [1.0, 1.0], ["x0", "x1"], []),
    ("relu", [[0.0, 2.0, -1.0]], ["x0"], [0]),
])
def test_gradcheck_at_a_kink_says_why(client, op, values, kink_inputs, index):
    nodes = [{"id": f"x{i}", "op": "input", "value": v} for i, v in enumerate(values)]
    nodes.append({"id": "g", "op": op, "inputs": [n["id"] for n in nodes]})
    nodes.append({"id": "f", "op": "sum", "inputs": ["g"]})
    status, body = _post(client, {"graph": {"nodes": nodes, "output": "f"}}, "gradcheck")
    assert status == 200
    for name in kink_inputs:
        details = body["checks"][name]["details"]
        assert "kink" in details["reason"]
        assert [kink["index"] for kink in details["kinks"]] == [index]


def test_gradcheck_away_from_kinks_has_no_details(client):
    nodes = [{"id": "x", "op": "input", "value": [0.5, -2.0]},
             {"id": "g", "op": "relu", "inputs": ["x"]},
             {"id": "h", "op": "exp", "inputs": ["g"]},
             {"id": "f", "op": "sum", "inputs": ["h"]}]
    status, body = _post(client, {"graph": {"nodes": nodes, "output": "f"}}, "gradcheck")
    assert status == 200 and "details" not in body["checks"]["x"]


@pytest.mark.parametrize("kind", ["gradients", "gradcheck", "diagram"])
def test_a_nonfinite_seed_is_refused_naming_the_output(client, kind):
    graph = {"nodes": [{"id": "x", "op": "input", "value": 1}], "output": "x"}
    status, body = _post(client, {"graph": graph, "seed": "NaN"}, kind)
    assert (status, body["error"]["code"], body["error"]["node"]) == (422, "nonfinite_input", "x")


@pytest.mark.parametrize("op, value", [("inv", 1e-4), ("sqrt", 1e-5), ("log", 2e-5)])
def test_gradcheck_does_not_call_a_sharp_bend_a_kink(client, op, value):
    nodes = [{"id": "x", "op": "input", "value": value},
             {"id": "f", "op": op, "inputs": ["x"]}]
    status, body = _post(client, {"graph": {"nodes": nodes, "output": "f"}, "eps": 1e-6},
                         "gradcheck")
    assert status == 200 and "details" not in body["checks"]["x"]


@pytest.mark.parametrize("eps, seed", [(2.97e307, 4.06e16), (5e-324, 1.0), (1e-5, 1e308)])
def test_gradcheck_with_extreme_steps_and_seeds_answers(client, eps, seed):
    # found by the fuzzing campaign: overflow in the objective was raised, not reported
    nodes = [{"id": "x", "op": "input", "value": 0.5},
             {"id": "f", "op": "relu", "inputs": ["x"]}]
    body = {"graph": {"nodes": nodes, "output": "f"}, "eps": eps, "seed": seed,
            "allow_nonfinite": True}
    status, answer = _post(client, body, "gradcheck")
    assert status == 200, answer
    assert answer["checks"]["x"]["verdict"] in ("good", "ok", "suspect", "wrong")


# ---------------------------------------------------------------- integers past 64 bits

HUGE = 10**30  # a JSON integer literal orjson reads as the float 1e+30


@pytest.mark.parametrize("op, attrs, shown", [
    ("sum", {"axis": HUGE}, f"got {HUGE} (past the 64-bit integer range)"),
    ("sum", {"axis": [0, HUGE]}, f"got [0, {HUGE}] (past the 64-bit integer range)"),
    ("reshape", {"shape": [HUGE]}, f"got [{HUGE}] (past the 64-bit integer range)"),
    ("take", {"indices": 2**63 + 5}, f"got {2**63 + 5} (past the 64-bit integer range)"),
    ("take", {"indices": [[2**64 - 1]]}, f"got [[{2**64 - 1}]] (past the 64-bit integer range)"),
    ("softmax", {"axis": 1.5}, "must be an integer, got 1.5"),
])
def test_integer_attrs_are_reported_as_the_integers_sent(client, op, attrs, shown):
    graph = {"nodes": [{"id": "x", "op": "input", "value": [[1.0, 2.0]]},
                       {"id": "s", "op": op, "inputs": ["x"], "attrs": attrs}], "output": "s"}
    status, body = _post(client, {"graph": graph}, kind="evaluate")
    error = body["error"]
    assert (status, error["code"], error["node"]) == (422, "bad_attr", "s")
    assert error["message"].endswith(shown)
