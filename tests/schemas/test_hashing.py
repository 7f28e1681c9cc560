"""The canonical hashes: what they ignore (property tests) and every change they must notice."""

from __future__ import annotations

import copy
import json
import math
import random

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine import bind_sources
from schemas import load_request, request_hash, structure_hash
from schemas.canonical import KIND_FIELDS
from tests.schemas.wire_cases import b64_tensor, circuit_request, pipeline_hash, scalar_graphs

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
HEX = set("0123456789abcdef")


def reversed_keys(item: object) -> object:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(item, dict):
        return {key: reversed_keys(item[key]) for key in reversed(list(item))}
    if isinstance(item, list):
        return [reversed_keys(value) for value in item]
    return item


def sources_of(data: dict) -> list[dict]:
    return [node for node in data["graph"]["nodes"] if node["op"] == "input"]


def test_hash_is_64_lowercase_hex_and_stable():
    digest = pipeline_hash("gradients", circuit_request())
    assert len(digest) == 64 and set(digest) <= HEX
    assert digest == pipeline_hash("gradients", circuit_request())


# ---------------------------------------------------------------- invariances


@SETTINGS
@given(scalar_graphs(), st.randoms(use_true_random=False))
def test_node_order_does_not_matter(data, rng):
    shuffled = copy.deepcopy(data)
    rng.shuffle(shuffled["graph"]["nodes"])
    assert pipeline_hash("gradients", shuffled) == pipeline_hash("gradients", data)


@SETTINGS
@given(scalar_graphs())
def test_key_order_and_whitespace_do_not_matter(data):
    spaced = json.dumps(reversed_keys(data), indent=3).encode()
    assert pipeline_hash("gradients", spaced) == pipeline_hash("gradients", data)


@SETTINGS
@given(scalar_graphs())
def test_number_spelling_does_not_matter(data):
    respelled = copy.deepcopy(data)
    for node in respelled["graph"]["nodes"]:
        value = node.get("value")
        # -0.0 is not the integer 0: it is a different float64 (1 / -0.0 is -inf).
        if value is not None and float(value).is_integer() and math.copysign(1, value) > 0:
            node["value"] = int(value)
        if "attrs" in node:
            node["attrs"] = {"a": float(node["attrs"]["a"])}
    text = orjson.dumps(respelled).replace(b".0,", b".00e0,")
    assert pipeline_hash("gradients", respelled) == pipeline_hash("gradients", data)
    assert pipeline_hash("gradients", text) == pipeline_hash("gradients", data)


@SETTINGS
@given(scalar_graphs())
def test_json_and_b64_encodings_of_a_value_hash_alike(data):
    encoded = copy.deepcopy(data)
    for node in sources_of(encoded):
        node["value"] = b64_tensor(np.array(node["value"], dtype=np.float64))
    assert pipeline_hash("gradients", encoded) == pipeline_hash("gradients", data)


@SETTINGS
@given(scalar_graphs(), st.data())
def test_a_default_value_and_the_same_value_in_inputs_hash_alike(data, draw):
    moved = copy.deepcopy(data)
    node = draw.draw(st.sampled_from(sources_of(moved)))
    moved["inputs"] = {node["id"]: node.pop("value")}
    assert pipeline_hash("gradients", moved) == pipeline_hash("gradients", data)
    # An input that overrides a different default is the same request as that default.
    node["value"] = 123.0
    assert pipeline_hash("gradients", moved) == pipeline_hash("gradients", data)


def test_cache_and_allow_nonfinite_do_not_change_the_hash():
    base = pipeline_hash("gradients", circuit_request())
    assert pipeline_hash("gradients", circuit_request(cache=False)) == base
    assert pipeline_hash("gradients", circuit_request(allow_nonfinite=True)) == base


def test_op_default_attrs_hash_as_if_given():
    def softmax(attrs: dict) -> dict:
        return {"graph": {"nodes": [
            {"id": "x", "op": "input", "value": [1, 2]},
            {"id": "s", "op": "softmax", "inputs": ["x"], "attrs": attrs},
        ], "output": "s"}}

    assert pipeline_hash("gradients", softmax({})) == pipeline_hash("gradients",
                                                                    softmax({"axis": -1}))
    assert pipeline_hash("gradients", softmax({})) != pipeline_hash("gradients",
                                                                    softmax({"axis": 0}))


def test_wrt_order_and_repeats_do_not_matter():
    assert pipeline_hash("gradients", circuit_request(wrt=["y", "x", "y"])) == pipeline_hash(
        "gradients", circuit_request(wrt=["x", "y"])
    )


def test_every_nan_hashes_alike():
    quiet = np.array([np.nan])
    other = np.frombuffer(np.array([0x7FF8000000000001], dtype="<u8").tobytes(), dtype="<f8")
    negative = -quiet
    hashes = {
        pipeline_hash("gradients", {**circuit_request(allow_nonfinite=True),
                                    "inputs": {"x": b64_tensor(nan)}})
        for nan in (quiet, other, negative)
    }
    hashes.add(pipeline_hash("gradients", circuit_request(allow_nonfinite=True,
                                                          inputs={"x": ["NaN"]})))
    assert len(hashes) == 1


# ---------------------------------------------------------------- sensitivities


def variants() -> dict[str, tuple[str, dict]]:
    """Requests that each differ from the circuit in one thing that can change the response."""

    def changed(edit, kind: str = "gradients", **fields) -> tuple[str, dict]:
        data = circuit_request(**fields)
        edit(data["graph"])
        return kind, data

    def node(graph: dict, name: str) -> dict:
        return next(n for n in graph["nodes"] if n["id"] == name)

    def set_(name: str, key: str, value: object):
        return lambda graph: node(graph, name).__setitem__(key, value)

    def rename(graph: dict) -> None:
        node(graph, "q")["id"] = "p"
        node(graph, "f")["inputs"] = ["p", "z"]

    keep = lambda graph: None  # noqa: E731
    return {
        "base": changed(keep),
        "one ulp": changed(set_("x", "value", float(np.nextafter(-2.0, 0.0)))),
        "negative zero": changed(set_("x", "value", -0.0)),
        "zero": changed(set_("x", "value", 0.0)),
        "shape": changed(set_("x", "value", [-2.0])),
        "op": changed(set_("q", "op", "mul")),
        "edge order": changed(set_("q", "inputs", ["y", "x"])),
        "edge": changed(set_("q", "inputs", ["x", "x"])),
        "id": changed(rename),
        "output": changed(lambda graph: graph.__setitem__("output", "q")),
        "input override": changed(keep, inputs={"x": 3}),
        "seed": changed(keep, seed=2.0),
        "seed ones": changed(keep, seed=1.0),
        "wrt": changed(keep, wrt=["x"]),
        "wrt all": changed(keep, wrt=["f", "q", "x", "y", "z"]),
        "encoding": changed(keep, encoding="b64"),
        "kind": changed(keep, "evaluate"),
        "gradcheck": changed(keep, "gradcheck"),
        "eps": changed(keep, "gradcheck", eps=1e-4),
        "check": changed(keep, "gradcheck", check=["x"]),
        "gradcheck encoding": changed(keep, "gradcheck", encoding="b64"),
        "diagram": changed(keep, "diagram"),
        "format": changed(keep, "diagram", format="dot"),
        # a batch of one point holds the bytes and shape of "shape" above: only its ids differ
        "batch": changed(keep, batch={"x": [-2.0]}),
        "batch values": changed(keep, batch={"x": [-2.0, 1.0]}),
        "batch reduce": changed(keep, batch={"x": [-2.0, 1.0]}, reduce="sum"),
        "batch mean": changed(keep, batch={"x": [-2.0, 1.0]}, reduce="mean"),
        "batch ids": changed(keep, batch={"y": [-2.0, 1.0]}),
        "jacobian": changed(keep, "jacobian", wrt=["x"]),
        "jacobian wrt": changed(keep, "jacobian", wrt=["x", "y"]),
        "jacobian batch": changed(keep, "jacobian", wrt=["x"], batch={"x": [-2.0]}),
    }


def test_each_change_gives_a_different_hash():
    hashes = {name: pipeline_hash(kind, data) for name, (kind, data) in variants().items()}
    assert len(set(hashes.values())) == len(hashes), hashes


def test_each_kind_hashes_the_fields_that_change_its_body():
    assert {kind: set(names) for kind, names in KIND_FIELDS.items()} == {
        "gradients": {"seed", "wrt", "encoding", "batch", "reduce"},
        "evaluate": {"wrt", "encoding", "batch"},
        "jacobian": {"wrt", "encoding", "batch"},
        "gradcheck": {"seed", "encoding", "eps", "check"},  # wrt takes no part in a check
        "diagram": {"seed", "wrt", "format"},  # an image has no tensor encoding
        "optimize": {"params", "goal", "optimizer", "lr_schedule", "steps", "stop",
                     "record_every", "encoding", "batch", "batch_size", "shuffle_seed"},
    }


def test_attr_change_down_to_one_ulp():
    def scaled(a: float) -> dict:
        return {"graph": {"nodes": [{"id": "x", "op": "input", "value": 1},
                                    {"id": "s", "op": "scale", "inputs": ["x"], "attrs": {"a": a}}],
                          "output": "s"}}

    assert pipeline_hash("gradients", scaled(3)) == pipeline_hash("gradients", scaled(3.0))
    assert pipeline_hash("gradients", scaled(3.0)) != pipeline_hash(
        "gradients", scaled(float(np.nextafter(3.0, 4.0)))
    )


@SETTINGS
@given(scalar_graphs(), st.data())
def test_one_ulp_in_any_value_changes_the_hash(data, draw):
    changed = copy.deepcopy(data)
    node = draw.draw(st.sampled_from(sources_of(changed)))
    direction = draw.draw(st.sampled_from([-np.inf, np.inf]))
    node["value"] = float(np.nextafter(node["value"], direction))
    assert pipeline_hash("gradients", changed) != pipeline_hash("gradients", data)


@SETTINGS
@given(scalar_graphs(), st.data())
def test_changing_any_gate_op_changes_the_hash(data, draw):
    changed = copy.deepcopy(data)
    gates = [n for n in changed["graph"]["nodes"] if n["op"] in ("add", "mul", "sub")]
    if not gates:
        return
    gate = draw.draw(st.sampled_from(gates))
    gate["op"] = draw.draw(st.sampled_from([op for op in ("add", "mul", "sub")
                                            if op != gate["op"]]))
    assert pipeline_hash("gradients", changed) != pipeline_hash("gradients", data)


def test_engine_version_is_in_the_hash(monkeypatch):
    before = pipeline_hash("gradients", circuit_request())
    monkeypatch.setattr(engine, "ENGINE_VERSION", engine.ENGINE_VERSION + "-next")
    assert pipeline_hash("gradients", circuit_request()) != before


def test_hash_accepts_every_kind_only():
    request = load_request("gradients", circuit_request())
    with pytest.raises(ValueError, match="unknown request kind"):
        request_hash("integrate", request, {})


# ---------------------------------------------------------------- structure hash


def structure_of(data: dict) -> str:
    request = load_request("gradients", data)
    sources = bind_sources(request.graph, request.inputs)
    return structure_hash(request.graph, {name: v.shape for name, v in sources.items()})


def test_structure_hash_ignores_values_but_not_shapes_or_structure(monkeypatch):
    base = structure_of(circuit_request())
    assert structure_of(circuit_request(inputs={"x": 10.0, "z": 0.5})) == base
    nodes = circuit_request()
    random.Random(0).shuffle(nodes["graph"]["nodes"])
    assert structure_of(nodes) == base
    assert structure_of(circuit_request(inputs={"x": [1.0, 2.0]})) != base
    other = circuit_request()
    other["graph"]["nodes"][3]["op"] = "mul"
    assert structure_of(other) != base
    monkeypatch.setattr(engine, "ENGINE_VERSION", engine.ENGINE_VERSION + "-next")
    assert structure_of(circuit_request()) != base


def test_structure_hash_differs_from_request_hash():
    assert structure_of(circuit_request()) != pipeline_hash("gradients", circuit_request())
    assert len(structure_of(circuit_request())) == 64
