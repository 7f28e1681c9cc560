"""Wire-format benchmark: the schemas' decode + encode against baselines run in the same process.

    .venv/bin/python bench/wire.py [--repeat N]

1. A 1,000,000-element tensor (1000 x 1000 float64) through `load_request` and
   `dump_evaluate`, as a nested JSON list and as a b64 object, against `json.loads` +
   `json.dumps` of the same nested list (targets: JSON path >= 3x faster, b64 >= 20x).
2. A 100,000-node scalar graph through `parse_json` + `load_request`, against `orjson.loads`
   of the same body (target: at most 10x); then, for information, its request_hash and the
   dump_result of its gradients.

Times are the best of --repeat runs. It prints numbers; it asserts only that the paths agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import RunResult, bind_sources, run_graph  # noqa: E402
from schemas import (  # noqa: E402
    dump_evaluate,
    dump_result,
    load_request,
    parse_json,
    request_hash,
)
from schemas.tensors import WIRE_DTYPES, tensor_json  # noqa: E402

TENSOR_SHAPE = (1000, 1000)
GRAPH_NODES = 100_000
HASH = "0" * 64


def best_time(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def tensor_request(value: object) -> bytes:
    graph = {"nodes": [{"id": "x", "op": "input", "value": value}], "output": "x"}
    return orjson.dumps({"graph": graph})


def round_trip(body: bytes, encoding: str) -> bytes:
    """Decode the request's tensor and write it back as a response body."""
    array = load_request("evaluate", parse_json(body)).graph.nodes[0].value
    result = RunResult(output="x", value=array, order=[], value_list=[], grad_list=None)
    return dump_evaluate(result, hash=HASH, encoding=encoding)


def bench_tensor(repeat: int) -> None:
    array = np.random.default_rng(0).standard_normal(TENSOR_SHAPE)
    nested = array.tolist()
    text = json.dumps(nested)
    json_body = tensor_request(nested)
    b64_body = tensor_request(tensor_json(array, "b64"))

    # The paths must agree before their times mean anything.
    decoded = orjson.loads(round_trip(json_body, "json"))["value"]
    assert np.array_equal(np.array(decoded), array)
    encoded = orjson.loads(round_trip(b64_body, "b64"))["value"]
    assert encoded["dtype"] in WIRE_DTYPES and encoded["shape"] == list(TENSOR_SHAPE)

    stdlib = best_time(lambda: json.dumps(json.loads(text)), repeat)
    stdlib_loads = best_time(lambda: json.loads(text), repeat)
    nested_time = best_time(lambda: round_trip(json_body, "json"), repeat)
    b64_time = best_time(lambda: round_trip(b64_body, "b64"), repeat)
    size = array.size
    print(f"tensor of {size:,} float64 elements {list(TENSOR_SHAPE)}, decode + encode, "
          f"best of {repeat}")
    print(f"  stdlib json.loads + json.dumps   {stdlib * 1e3:8.1f} ms "
          f"(loads {stdlib_loads * 1e3:.1f} ms)")
    print(f"  schemas, nested JSON list        {nested_time * 1e3:8.1f} ms   "
          f"{stdlib / nested_time:5.1f}x faster (target >= 3x)")
    print(f"  schemas, b64 object              {b64_time * 1e3:8.1f} ms   "
          f"{stdlib / b64_time:5.1f}x faster (target >= 20x)")


def scalar_graph_body(count: int) -> bytes:
    """Half input nodes with values, half a chain of add/mul gates over them (values stay
    finite: the inputs are close to 1)."""
    sources = count // 2
    nodes: list[dict] = [
        {"id": f"x{i}", "op": "input", "value": 1.0 + (i % 100) * 1e-4} for i in range(sources)
    ]
    nodes.append({"id": "s0", "op": "add", "inputs": ["x0", "x1"]})
    for i in range(1, count - sources):
        op = "add" if i % 2 else "mul"
        nodes.append({"id": f"s{i}", "op": op, "inputs": [f"s{i - 1}", f"x{(i + 1) % sources}"]})
    return orjson.dumps({"graph": {"nodes": nodes, "output": f"s{count - sources - 1}"}})


def bench_graph(repeat: int) -> None:
    body = scalar_graph_body(GRAPH_NODES)
    request = load_request("gradients", parse_json(body))
    assert len(request.graph.nodes) == GRAPH_NODES

    baseline = best_time(lambda: orjson.loads(body), repeat)
    schemas_time = best_time(lambda: load_request("gradients", parse_json(body)), repeat)
    print(f"scalar graph of {GRAPH_NODES:,} nodes ({len(body) / 1e6:.1f} MB), best of {repeat}")
    print(f"  orjson.loads                     {baseline * 1e3:8.1f} ms "
          f"({baseline / GRAPH_NODES * 1e9:6.0f} ns/node)")
    print(f"  parse_json + load_request        {schemas_time * 1e3:8.1f} ms "
          f"({schemas_time / GRAPH_NODES * 1e9:6.0f} ns/node)   "
          f"{schemas_time / baseline:5.1f}x orjson.loads (target <= 10x)")

    sources = bind_sources(request.graph, request.inputs)
    hash_time = best_time(lambda: request_hash("gradients", request, sources), repeat)
    result = run_graph(request.graph, request.inputs)
    dump_time = best_time(lambda: dump_result(result, hash=HASH, encoding="json"), repeat)
    print(f"  request_hash                     {hash_time * 1e3:8.1f} ms")
    print(f"  dump_result (values and grads)   {dump_time * 1e3:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best kept)")
    args = parser.parse_args()
    bench_tensor(args.repeat)
    bench_graph(args.repeat)


if __name__ == "__main__":
    main()
