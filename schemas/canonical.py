"""The canonical graph and the names derived from it: `graph_id`, `request_hash`, `structure_key`.

One pass over a request's graph builds its canonical form (`canonical_graph`), serialised once;
the request hash, the graph id and the plan-cache key all reuse that text. The pass reads the
graph's columns (engine.NodeTable), each distinct op and attrs put in canonical form once.

The canonical graph: nodes sorted by id, each as [id, op, inputs in argument order, attrs].
Attrs are the engine's own check of them (`coerce_attr` over the op's declared attrs): defaults
filled in, number-kind values as floats, lists as lists, so `{"a": 2}`, `{"a": 2.0}` and, for
softmax, `{}` vs `{"axis": -1}` read alike. Attrs the engine refuses are kept as given (the
request fails before any hash is used), non-finite floats among them spelled as the wire
spells them so that they stay distinct. Listing order, key order, whitespace and number
spelling never reach the canonical form.

`graph_id` is the SHA-256 of the canonical graph's text: the id of a registered graph.

What goes into `request_hash` (SHA-256, lowercase hex, over the canonical graph's text, then a
header serialised by orjson with sorted keys, then the value bytes):

- the canonical graph, as above;
- the effective source values: the `sources` of `engine.bind_sources` (an input's value from
  `inputs` or its own default, a const's value), hashed as the float64 bytes and shape of each
  array, never as JSON text. So 2, 2.0 and a b64 object holding 2.0 are one value, and a
  one-ulp change is a different one. Every NaN hashes as one NaN: the wire cannot tell them
  apart;
- `seed` as the effective array or None: an absent seed and an explicit ones-seed hash apart
  (the same numbers, but keeping "absent" distinct keeps the rule simple and never wrong);
- `wrt` sorted with duplicates removed, or None for "every node": the response lists the
  reported nodes in topological order whatever the order of `wrt`;
- the request kind, the engine's ENGINE_VERSION, and every other field the kind's request
  schema takes: `encoding`, `eps` and `check` (sorted and deduplicated: gradcheck writes its
  checks sorted by id), `format`. They are read from the schemas, so a field a kind accepts
  cannot be left out of its hash;
- with a `batch`: the batched input ids, sorted (their values are among the sources above,
  with the leading B axis in their shapes), and `reduce`. Without one neither is written:
  `reduce` then changes nothing, and unbatched requests keep the hashes they always had;
- not hashed: `cache` and `allow_nonfinite`, which never change a number in a response (a
  request refused for a non-finite input has no result to name).

`structure_key` is the graph id with each source's shape instead of its value, plus the engine
version: the key of a compiled plan, reusable with any values of those shapes. A batched plan's
key holds the batched ids and one point's shapes: one plan serves every batch length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

import engine
from engine import EngineError, Graph, NodeTable, gc_paused, node_table
from engine.columns import read_kinds
from schemas.jsontext import spell_float
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
_SORTED = orjson.OPT_SORT_KEYS
# Hashed only when a request has a batch (without one, `reduce` cannot change a number).
_BATCH_FIELDS = frozenset({"batch", "reduce"})


@dataclass(frozen=True, slots=True)
class CanonicalGraph:
    """A graph's canonical form as JSON text (sorted keys), its id, and a SHA-256 that has
    read the text: every request hash over this graph continues a copy of it, so the text is
    digested once however many requests use it (a registered graph's)."""

    text: bytes
    id: str
    digest: Any  # a hashlib sha256 object fed with `text`; copied, never updated

    @classmethod
    def of(cls, text: bytes) -> CanonicalGraph:
        digest = hashlib.sha256(text)
        return cls(text, digest.hexdigest(), digest)


def canonical_graph(graph: Graph) -> CanonicalGraph:
    """The canonical form of `graph`, serialised once, and its SHA-256 (the graph id)."""
    table = node_table(graph.nodes)
    with gc_paused():
        return CanonicalGraph.of(_canonical_text(table, graph.output))


def _canonical_text(table: NodeTable, output: str) -> bytes:
    # a loaded table's ops are one string per kind (NodeTable.with_shared_ops): few objects
    rows = list(zip(table.ids, table.ops, table.inputs, _canonical_attrs(table), strict=True))
    rows = list(map(rows.__getitem__, table.by_id()))  # sorted by id
    return orjson.dumps({"nodes": rows, "output": output}, option=_SORTED)


def graph_id(graph: Graph) -> str:
    """The SHA-256 of the canonical graph: equal for graphs that differ only in spelling."""
    return canonical_graph(graph).id


def _canonical_attrs(table: NodeTable) -> list[dict]:
    """Every node's canonical attrs, worked out once per kind (big graphs repeat a few, every
    "scale" by 0.5, every "add" without attrs, many times): the engine's reading of them
    (`checked_attrs`: defaults filled in, numbers coerced), or attrs the engine refuses as
    given."""
    kinds, firsts = table.kinds()
    canonical = [
        read if op is not None and not isinstance(read, EngineError)
        else _as_given(table.attrs[k])
        for (op, read), k in zip(read_kinds(table), firsts, strict=True)
    ]
    return list(map(canonical.__getitem__, kinds.tolist()))


# Refused attrs are written this many levels deep at most (numpy's most dimensions: no attr
# the engine reads nests deeper); below, a list or object is written as this marker. The body
# may nest a thousand levels, orjson writes some 250, and Python's recursion stops near 1000.
_DEEPEST_GIVEN = 64
_TOO_DEEP = {"nested": f"deeper than {_DEEPEST_GIVEN} levels"}


def _as_given(value: object) -> object:
    """Attrs the engine refuses, as given: non-finite floats spelled so orjson keeps them,
    anything nested past _DEEPEST_GIVEN levels cut there. Walked with an explicit stack (the
    attrs come from strangers); such a request fails with bad_attr, its hash stored nowhere."""
    root: list = [None]
    stack = [(value, root, 0, 0)]  # (item, where its copy goes, at which key, its depth)
    while stack:
        item, into, key, depth = stack.pop()
        if isinstance(item, list | tuple | dict) and depth >= _DEEPEST_GIVEN:
            into[key] = dict(_TOO_DEEP)
        elif isinstance(item, list | tuple):
            into[key] = copy = [None] * len(item)
            stack.extend((part, copy, k, depth + 1) for k, part in enumerate(item))
        elif isinstance(item, dict):
            into[key] = copy = dict.fromkeys(item)
            stack.extend((part, copy, k, depth + 1) for k, part in item.items())
        elif type(item) is float and item - item != 0.0:
            into[key] = {"nonfinite": spell_float(item)}
        else:
            into[key] = item
    return root[0]


# ---------------------------------------------------------------- request hash


def request_hash(
    kind: str,
    request: Request,
    sources: Mapping[str, np.ndarray],
    graph: CanonicalGraph | None = None,
) -> str:
    """SHA-256 over the canonical form of everything that decides the response body.

    `graph` is the request graph's canonical form when the caller has it already.
    """
    if kind not in KIND_FIELDS:
        raise ValueError(f"unknown request kind {kind!r}")
    graph = graph or canonical_graph(request.graph)
    with gc_paused():
        return _request_hash(kind, request, sources, graph)


def _request_hash(
    kind: str, request: Request, sources: Mapping[str, np.ndarray], graph: CanonicalGraph
) -> str:
    if request.batch:  # a batched input's value is its batch array, whatever `sources` holds
        sources = {**sources, **request.batch}
    names = sorted(sources)
    arrays = [np.asarray(sources[name], dtype=np.float64) for name in names]
    fields, seed = _kind_fields(kind, request)
    shapes = [[name, list(array.shape)] for name, array in zip(names, arrays, strict=True)]
    # The canonical graph's text comes first (a JSON object: it ends unambiguously), read
    # once per graph; then the rest of the header, as orjson writes a dict with sorted keys.
    header = b"".join([
        b'{"engine":', orjson.dumps(engine.ENGINE_VERSION),
        b',"fields":', orjson.dumps(fields, option=_SORTED),
        b',"kind":', orjson.dumps(kind),
        b',"sources":', orjson.dumps(shapes),
        b"}",
    ])
    digest = graph.digest.copy()
    _update_framed(digest, header)
    # The header holds every shape, so these bytes have one reading.
    digest.update(_canonical_bytes(arrays))
    if seed is not None:
        digest.update(_canonical_bytes([seed]))
    return digest.hexdigest()


def _kind_fields(kind: str, request: Request) -> tuple[dict[str, object], np.ndarray | None]:
    """The kind's hashed fields in canonical form, and the seed array (hashed by its bytes)."""
    fields: dict[str, object] = {}
    seed = None
    for name in KIND_FIELDS[kind]:
        if name in _BATCH_FIELDS and not request.batch:
            continue
        value = getattr(request, name)
        if name == "batch":
            value = sorted(value)
        elif name == "seed":
            seed = None if value is None else np.asarray(value, dtype=np.float64)
            value = None if seed is None else list(seed.shape)
        elif name in ("wrt", "check") and value is not None:
            value = sorted(set(value))
        fields[name] = value
    return fields, seed


# ---------------------------------------------------------------- plan-cache key


def structure_key(
    graph_id: str, source_shapes: Mapping[str, tuple[int, ...]], batched: Collection[str] = ()
) -> str:
    """The key of a compiled plan: the graph id, each source's shape (one point's for the
    `batched` ones), the batched ids and the engine version."""
    header = {
        "engine": engine.ENGINE_VERSION,
        "graph": graph_id,
        "sources": sorted([name, [int(n) for n in shape]] for name, shape in source_shapes.items()),
    }
    if batched:
        header["batched"] = sorted(batched)
    digest = hashlib.sha256()
    _update_framed(digest, orjson.dumps(header, option=_SORTED))
    return digest.hexdigest()


def structure_hash(graph: Graph, source_shapes: Mapping[str, tuple[int, ...]]) -> str:
    """`structure_key` of a graph not yet in canonical form."""
    return structure_key(graph_id(graph), source_shapes)


def _update_framed(digest, data: bytes) -> None:
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)


def _canonical_bytes(arrays: list[np.ndarray]) -> bytes:
    """Little-endian float64 bytes of the arrays in order, every NaN as the same NaN."""
    if not arrays:
        return b""
    if all(array.ndim == 0 for array in arrays):  # scalar sources: one array of them, at once
        flat = np.array(arrays, dtype="<f8")
    else:
        flat = np.concatenate([array.ravel() for array in arrays]).astype("<f8", copy=False)
    if not np.isfinite(flat).all():
        flat = np.where(np.isnan(flat), np.nan, flat)
    return flat.tobytes()
