"""engine.warm_up, which service/wsgi.py calls as a worker starts: what numpy loads on first use
is loaded then, not in the worker's first request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_warming_up_loads_what_a_first_compile_would():
    code = (
        "import sys, engine\n"
        "before = 'numpy.ma' in sys.modules\n"
        "engine.warm_up()\n"
        "print(before, 'numpy.ma' in sys.modules)\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, check=True, timeout=120)
    assert shown.stdout.split() == ["False", "True"]


def test_a_workers_first_compile_imports_nothing(tmp_path):
    """service/wsgi.py, imported by each worker, warms up: the first plan compiled after it
    loads no module."""
    code = (
        "import sys, service.wsgi\n"
        "from engine import Graph, Node, compile_plan\n"
        "loaded = set(sys.modules)\n"
        "graph = Graph((Node('x', 'input'), Node('f', 'exp', ('x',))), 'f')\n"
        "compile_plan(graph, {'x': ()})\n"
        "print(sorted(set(sys.modules) - loaded))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, check=True, timeout=120, env=env)
    assert shown.stdout.strip() == "[]"
