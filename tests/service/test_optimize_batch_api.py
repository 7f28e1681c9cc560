"""POST /v1/optimize over a data set, through the real app: the mean over every point, seeded
mini-batches (reproducible, cached), the hash over batch values and options, the 422s."""

from __future__ import annotations

import numpy as np
import pytest

RNG = np.random.default_rng(3)
XS = RNG.uniform(-1, 1, size=24)
YS = 3 * XS - 0.5 + RNG.normal(scale=0.1, size=24)


def node(id, op, inputs=(), **extra):
    return {"id": id, "op": op, "inputs": list(inputs), **extra}


def least_squares(**fields) -> dict:
    """(w x + b - y)^2 at one point; x and y are the data set."""
    graph = {"nodes": [node("x", "input"), node("y", "input"),
                       node("w", "input", value=0.0), node("b", "input", value=0.0),
                       node("wx", "mul", ["w", "x"]), node("p", "add", ["wx", "b"]),
                       node("e", "sub", ["p", "y"]), node("f", "mul", ["e", "e"])],
             "output": "f"}
    return {"graph": graph, "params": ["w", "b"], "batch": {"x": XS.tolist(), "y": YS.tolist()},
            "optimizer": {"name": "sgd", "lr": 0.2}, "steps": 300, **fields}


def test_every_step_minimises_the_mean_over_the_points(client):
    body = client.post("/v1/optimize", json=least_squares()).get_json()
    w, b = np.polyfit(XS, YS, 1)  # the least-squares line
    assert body["params"] == pytest.approx({"w": w, "b": b}, rel=1e-6)
    assert body["value"] == pytest.approx(np.mean((w * XS + b - YS) ** 2), rel=1e-9)
    assert body["trajectory"][0]["value"] == pytest.approx(np.mean(YS**2), rel=1e-12)


def test_mini_batches_are_reproducible_and_cached(client):
    first = client.post("/v1/optimize", json=least_squares(batch_size=5, shuffle_seed=2))
    again = client.post("/v1/optimize", json=least_squares(batch_size=5, shuffle_seed=2))
    other = client.post("/v1/optimize", json=least_squares(batch_size=5, shuffle_seed=3))
    whole = client.post("/v1/optimize", json=least_squares()).get_json()
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("miss", "hit")
    params = first.get_json()["params"]
    assert params != other.get_json()["params"] and params != whole["params"]
    assert params == pytest.approx(whole["params"], rel=0.05)  # near the same line


def test_the_hash_covers_the_data_and_the_mini_batch_options(client):
    def digest(**fields):
        return client.post("/v1/optimize", json=least_squares(cache=False, **fields)).get_json()[
            "hash"]

    base = digest()
    assert digest(shuffle_seed=7) == base  # no mini-batches: no shuffle
    shifted = least_squares(cache=False)
    shifted["batch"]["y"][0] += 1e-9
    others = {digest(batch_size=5), digest(batch_size=5, shuffle_seed=1), digest(batch_size=6),
              client.post("/v1/optimize", json=shifted).get_json()["hash"]}
    assert base not in others and len(others) == 4


@pytest.mark.parametrize(("fields", "details"), [
    ({"params": ["w", "x"]},
     {"params": ["params names 'x', a batched input; the params are shared inputs, one value "
                 "for every point"]}),
    ({"batch": None, "batch_size": 4}, {"batch": ["Field may not be null."]}),
    ({"batch_size": 0}, {"batch_size": ["Must be greater than or equal to 1."]}),
    ({"shuffle_seed": -1}, {"shuffle_seed": ["Must be greater than or equal to 0."]}),
    ({"inputs": {"x": 1.0}}, {"batch": {"x": ["input 'x' is both in batch and in inputs; it is "
                                              "batched or shared, not both"]}}),
])
def test_bad_data_set_requests_are_422(client, fields, details):
    error = client.post("/v1/optimize", json=least_squares(**fields)).get_json()["error"]
    assert (error["code"], error["details"]) == ("validation_error", details)


def test_batch_size_needs_a_batch(client):
    request = least_squares(batch_size=4)
    del request["batch"]
    error = client.post("/v1/optimize", json=request).get_json()["error"]
    assert error["details"] == {"batch_size": ["batch_size draws mini-batches from a batch; "
                                               "send one"]}
