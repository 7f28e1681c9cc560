"""Request and response examples for the OpenAPI document, one pair per endpoint.

Every computing example asks about the contract's circuit f = (x + y) z at x = -2, y = 5,
z = -4 (inline, or registered under GRAPH_ID); the responses are what the service answers
(tests/service/test_openapi_truth.py posts each request and compares), so the document never
shows a number the server would not.
"""

from __future__ import annotations

EXAMPLE_GRAPH = {
    "nodes": [
        {"id": "x", "op": "input", "value": -2},
        {"id": "y", "op": "input", "value": 5},
        {"id": "z", "op": "input", "value": -4},
        {"id": "q", "op": "add", "inputs": ["x", "y"]},
        {"id": "f", "op": "mul", "inputs": ["q", "z"]},
    ],
    "output": "f",
}

REQUEST_EXAMPLES: dict[str, dict] = {
    "gradients": {"graph": EXAMPLE_GRAPH, "inputs": {"x": -2, "y": 5}},
    "evaluate": {"graph": EXAMPLE_GRAPH, "inputs": {"z": -4}},
    "gradcheck": {"graph": EXAMPLE_GRAPH, "check": ["x", "z"]},
    "diagram": {"graph": EXAMPLE_GRAPH, "format": "dot"},
    "jacobian": {"graph": EXAMPLE_GRAPH, "wrt": ["x", "z"]},
    # the update rule of the backprop notes: one step of 0.01 along the gradient, uphill
    "optimize": {"graph": EXAMPLE_GRAPH, "params": ["x", "y", "z"], "goal": "maximize",
                 "optimizer": {"name": "sgd", "lr": 0.01}, "steps": 1},
}

RESPONSE_EXAMPLES: dict[str, object] = {
    "gradients": {
        "hash": "1ac152c759ecb8e278cfb71b2e0419ebfedcefe7f09cffed066dd02ee7b4af86",
        "output": "f",
        "value": -12.0,
        "nodes": {
            "x": {"value": -2.0, "grad": -4.0},
            "y": {"value": 5.0, "grad": -4.0},
            "z": {"value": -4.0, "grad": 3.0},
            "q": {"value": 3.0, "grad": -4.0},
            "f": {"value": -12.0, "grad": 1.0},
        },
        "cached": False,
    },
    "evaluate": {
        "hash": "abaccbc2494fd7b9427715c58307945d9da881d4dd0d6f3d8f22a7aa03df8c37",
        "output": "f",
        "value": -12.0,
        "nodes": {"x": {"value": -2.0}, "y": {"value": 5.0}, "z": {"value": -4.0},
                  "q": {"value": 3.0}, "f": {"value": -12.0}},
        "cached": False,
    },
    "gradcheck": {
        "hash": "0663e6b856c75a659d920b595fc21e604b6104a4982fd45883f47e6ca6f76af0",
        "checks": {
            "x": {"max_rel_error": 6.551204023665206e-12, "verdict": "good",
                  "analytic": -4.0, "numeric": -4.000000000026205},
            "z": {"max_rel_error": 8.251917667697247e-12, "verdict": "good",
                  "analytic": 3.0, "numeric": 2.9999999999752442},
        },
        "passed": True,
        "cached": False,
    },
    "jacobian": {
        "hash": "bce49be69789669e531add05877a04f27dc45264403fb950ac4aacfa1e3d868e",
        "output": "f",
        "value": -12.0,
        "jacobian": {"x": -4.0, "z": 3.0},
        "cached": False,
    },
    "optimize": {
        "hash": "3f54ab391a6fc8dd52cc09c2346902049b055c2bb3248c9ac1d8e6ee71bc2399",
        "params": {"x": -2.04, "y": 4.96, "z": -3.97},
        "value": -11.5924,
        "steps": 1,
        "stopped": "steps",
        "trajectory": [{"step": 0, "value": -12.0, "grad_norm": 6.4031242374328485},
                       {"step": 1, "value": -11.5924, "grad_norm": 6.328364717681812}],
        "cached": False,
    },
    # the start of the DOT text; the whole of it runs to about 40 lines
    "diagram": "digraph circuit {\n\tgraph [rankdir=LR ...]\n\tn0 [label=<x> ...]\n\t...\n}\n",
}

OPS_EXAMPLE = {"ops": [{"name": "add", "arity": ">= 2", "min_inputs": 2, "max_inputs": None,
                        "attrs": [], "symbol": "+", "description": "x1 + x2 + ..."}]}
HEALTH_EXAMPLE = {"status": "ok"}
READY_EXAMPLE = {"status": "ready", "cache": "memory"}
ERROR_EXAMPLE = {"error": {"code": "cycle", "message": "the graph has a cycle through this "
                           "node: a -> b -> a", "node": "a", "details": {"cycle": ["a", "b"]}}}
METRICS_EXAMPLE = 'chainrule_http_requests_total{method="POST",route="/v1/gradients",' \
                  'status="200"} 1.0\n'
PAGE_EXAMPLE = '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">...'
DOCUMENT_EXAMPLE = {"openapi": "3.0.3", "info": {"title": "chainrule", "version": "0.1.0"},
                    "paths": {"/v1/gradients": {"post": {"summary": "Forward and backward pass"}}}}

GRAPH_ID = "16901decdc4821c06b1277a8b894d42dc0ad7e9a9a200430c75c868951209a3c"
GRAPH_SUMMARY_EXAMPLE = {"id": GRAPH_ID, "nodes": 5, "inputs": {"x": [], "y": [], "z": []},
                         "output": "f"}
GRAPH_RESOURCE_EXAMPLE = {**GRAPH_SUMMARY_EXAMPLE, "graph": {"nodes": [
    {"id": "f", "op": "mul", "inputs": ["q", "z"], "attrs": {}},
    {"id": "q", "op": "add", "inputs": ["x", "y"], "attrs": {}},
    {"id": "x", "op": "input", "inputs": [], "attrs": {}, "value": -2.0},
    {"id": "y", "op": "input", "inputs": [], "attrs": {}, "value": 5.0},
    {"id": "z", "op": "input", "inputs": [], "attrs": {}, "value": -4.0},
], "output": "f"}}
