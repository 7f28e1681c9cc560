"""The canonical hashes: `request_hash` (the result's name and cache key) and `structure_hash`.

What goes into `request_hash` (SHA-256, lowercase hex), and why (the hash is over this canonical
form serialised by orjson with sorted keys, followed by the value bytes):

- The graph, canonically: nodes sorted by id, each as (id, op, inputs in argument order,
  attrs). Attrs are keyed by name with the op's defaults filled in, and a number-kind attr is
  written as a float, so `{"a": 2}`, `{"a": 2.0}` and, for softmax, `{}` vs `{"axis": -1}` hash
  alike. Listing order, key order, whitespace and number spelling never reach the hash.
- The effective source values: the `sources` dict of `engine.bind_sources` (an input's value
  from `inputs` or its own default, a const's value), hashed as the float64 bytes and shape of
  each array, never as JSON text. So 2, 2.0 and a b64 object holding 2.0 are one value, and a
  one-ulp change is a different one. Every NaN hashes as one NaN: the wire cannot tell them
  apart. (A gate's node carries no value: load_request refuses one.)
- `seed` as the effective array or None: an absent seed and an explicit ones-seed hash apart
  (the same numbers, but keeping "absent" distinct keeps the rule simple and never wrong).
- `wrt` sorted with duplicates removed, or None for "every node": the response lists the
  reported nodes in topological order whatever the order of `wrt`.
- `output`, the request kind, the engine's ENGINE_VERSION, and every other field the kind's
  request schema takes: `encoding` (gradients, evaluate, gradcheck), `eps` and `check` (sorted
  and deduplicated: gradcheck writes its checks sorted by id), `format` (diagram). They are
  read from the schemas, so a field a kind accepts cannot be left out of its hash.
- Not hashed: `cache` and `allow_nonfinite`, which never change a number in a response (a
  request refused for a non-finite input has no result to name).

`structure_hash` is the same graph part with each source's shape instead of its value, plus
the engine version: the key of a compiled plan, reusable with any values of those shapes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from operator import attrgetter

import numpy as np
import orjson

import engine
from engine import OPS, Graph, gc_paused
from schemas.requests import REQUEST_SCHEMAS, Request

# Request fields hashed another way (graph, and inputs through the bound sources) or that never
# change a response body.
_NOT_KIND_FIELDS = frozenset({"graph", "inputs", "cache", "allow_nonfinite"})
# Fields a kind accepts (its request is the /v1/gradients one) that cannot change its answer.
_NO_EFFECT = {"gradcheck": {"wrt"}, "diagram": {"encoding"}}
# The fields of each request kind, beyond the graph and its values, that change the response.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    kind: tuple(
        name for name in schema.fields
        if name not in _NOT_KIND_FIELDS and name not in _NO_EFFECT.get(kind, ())
    )
    for kind, schema in REQUEST_SCHEMAS.items()
}


def request_hash(kind: str, request: Request, sources: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the canonical form of everything that decides the response body."""
    if kind not in KIND_FIELDS:
        raise ValueError(f"unknown request kind {kind!r}")
    with gc_paused():
        return _request_hash(kind, request, sources)


def _request_hash(kind: str, request: Request, sources: Mapping[str, np.ndarray]) -> str:
    names = sorted(sources)
    arrays = [np.asarray(sources[name], dtype=np.float64) for name in names]
    fields: dict[str, object] = {}
    seed = None
    for name in KIND_FIELDS[kind]:
        value = getattr(request, name)
        if name == "seed":
            seed = None if value is None else np.asarray(value, dtype=np.float64)
            value = None if seed is None else list(seed.shape)
        elif name in ("wrt", "check") and value is not None:
            value = sorted(set(value))
        fields[name] = value
    header = {
        "engine": engine.ENGINE_VERSION,
        "kind": kind,
        "graph": _canonical_graph(request.graph),
        "sources": [[name, list(array.shape)] for name, array in zip(names, arrays, strict=True)],
        "fields": fields,
    }
    digest = hashlib.sha256()
    _update_framed(digest, orjson.dumps(header, option=orjson.OPT_SORT_KEYS))
    # The header holds every shape, so these bytes have one reading.
    digest.update(_canonical_bytes(arrays))
    if seed is not None:
        digest.update(_canonical_bytes([seed]))
    return digest.hexdigest()


def structure_hash(graph: Graph, source_shapes: Mapping[str, tuple[int, ...]]) -> str:
    """SHA-256 of the graph without its values, with each source's shape: a plan-cache key."""
    with gc_paused():
        graph_form = _canonical_graph(graph)
    header = {
        "engine": engine.ENGINE_VERSION,
        "graph": graph_form,
        "sources": sorted([name, [int(n) for n in shape]] for name, shape in source_shapes.items()),
    }
    digest = hashlib.sha256()
    _update_framed(digest, orjson.dumps(header, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def _update_framed(digest, data: bytes) -> None:
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)


def _canonical_graph(graph: Graph) -> dict:
    nodes = sorted(graph.nodes, key=attrgetter("id"))
    return {
        "nodes": [
            [node.id, node.op, node.inputs, _canonical_attrs(node.op, node.attrs)]
            for node in nodes
        ],
        "output": graph.output,
    }


# Per op: the attrs an absent one stands for, and which attrs are numbers.
_DEFAULT_ATTRS = {
    op.name: {a.name: a.default for a in op.attrs if not a.required} for op in OPS.values()
}
_NUMBER_ATTRS = {
    op.name: frozenset(a.name for a in op.attrs if a.kind == "number") for op in OPS.values()
}
_NO_ATTRS: dict = {}


def _canonical_attrs(op_name: str, attrs: dict) -> dict:
    """Attrs with the op's defaults filled in and number-kind values as floats.

    Values the engine will refuse are kept as given (the request fails before any hash is
    used); only non-finite floats are spelled out so that orjson does not write them as null.
    """
    defaults = _DEFAULT_ATTRS.get(op_name, _NO_ATTRS)
    if not attrs:
        return defaults
    numbers = _NUMBER_ATTRS.get(op_name, frozenset())
    canonical = dict(defaults)
    for key, value in attrs.items():
        is_number = type(value) in (int, float)
        canonical[key] = _spelled(float(value) if key in numbers and is_number else value)
    return canonical


def _spelled(value: object) -> object:
    if type(value) is float and not math.isfinite(value):
        return {"nonfinite": repr(value)}
    if isinstance(value, list | tuple):
        return [_spelled(item) for item in value]
    if isinstance(value, dict):
        return {key: _spelled(item) for key, item in value.items()}
    return value


def _canonical_bytes(arrays: list[np.ndarray]) -> bytes:
    """Little-endian float64 bytes of the arrays in order, every NaN as the same NaN."""
    if not arrays:
        return b""
    flat = np.concatenate([array.ravel() for array in arrays]).astype("<f8", copy=False)
    if not np.isfinite(flat).all():
        flat = np.where(np.isnan(flat), np.nan, flat)
    return flat.tobytes()
