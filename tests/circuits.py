"""The wire contract's example graph, f = (x + y) * z at x = -2, y = 5, z = -4 (value -12),
which the CLI, schema and service tests send. Copy it before changing it."""

from __future__ import annotations

CIRCUIT = {
    "nodes": [
        {"id": "x", "op": "input", "value": -2},
        {"id": "y", "op": "input", "value": 5},
        {"id": "z", "op": "input", "value": -4},
        {"id": "q", "op": "add", "inputs": ["x", "y"]},
        {"id": "f", "op": "mul", "inputs": ["q", "z"]},
    ],
    "output": "f",
}
