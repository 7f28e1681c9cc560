"""The arrows point one way: service -> schemas -> engine, and inside the service the store,
the observability helpers and the command line keep to their own lanes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module a Python file imports, absolute names only (relative ones kept as '.x')."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


def imports_under(folder: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(ROOT)): imported_modules(path)
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


def offending(folder: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> dict:
    def bad(module: str) -> bool:
        hits = any(module == name or module.startswith(name + ".") for name in forbidden)
        return hits and not any(module == ok or module.startswith(ok + ".") for ok in allowed)

    found = {path: sorted(filter(bad, modules)) for path, modules in imports_under(folder).items()}
    return {path: modules for path, modules in found.items() if modules}


@pytest.mark.parametrize(
    ("folder", "forbidden", "allowed"),
    [
        ("engine", ("flask", "marshmallow", "redis", "schemas", "service"), ()),
        ("schemas", ("flask", "redis", "service"), ()),
        ("service/store", ("flask", "service"), ("service.store",)),
        ("service/observe", ("service",), ("service.observe",)),
        ("client/chainrule_client", ("engine", "schemas", "service"), ()),
    ],
)
def test_no_import_runs_back_up(folder, forbidden, allowed):
    assert offending(folder, forbidden, allowed) == {}


def test_the_cli_and_the_pipeline_never_use_the_views():
    for path in ("service/cli.py", "service/pipeline.py", "service/kinds.py"):
        modules = imported_modules(ROOT / path)
        assert not {m for m in modules if m.startswith(("service.api", "flask"))}, path
