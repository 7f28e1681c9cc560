"""chainrule's wire format: request JSON to engine objects, engine results to response JSON.

marshmallow schemas validate requests (field errors in `ValidationError.messages`) and describe
responses for the OpenAPI document; orjson and numpy do the heavy lifting for big graphs and
tensors; `request_hash` names a result by everything that decides it. Never imports Flask.
"""

from schemas.canonical import (
    CanonicalGraph,
    canonical_graph,
    graph_id,
    request_hash,
    structure_hash,
    structure_key,
)
from schemas.graph import load_node_values
from schemas.jsontext import BadJson, parse_json
from schemas.openapi import build_spec
from schemas.requests import REQUEST_KINDS, Request, load_request
from schemas.responses import (
    dump_evaluate,
    dump_gradcheck,
    dump_jacobian,
    dump_optimize,
    dump_result,
    error_body,
    mark_cached,
)

__all__ = [
    "REQUEST_KINDS",
    "BadJson",
    "CanonicalGraph",
    "Request",
    "build_spec",
    "canonical_graph",
    "dump_evaluate",
    "dump_gradcheck",
    "dump_jacobian",
    "dump_optimize",
    "dump_result",
    "error_body",
    "graph_id",
    "load_node_values",
    "load_request",
    "mark_cached",
    "parse_json",
    "request_hash",
    "structure_hash",
    "structure_key",
]
