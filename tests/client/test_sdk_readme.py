"""The SDK README's example runs as written, against a real server."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "client" / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text.split("## The (x + y) z circuit", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README has no python block after its circuit heading"
    return match.group(1)


def test_the_readme_example_is_ten_lines():
    assert len(readme_example().splitlines()) <= 10


def test_the_readme_example_runs_as_written(live_url, monkeypatch, capsys):
    monkeypatch.setenv("CHAINRULE_URL", live_url)
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out == "-12.0\n-4.0 -4.0 3.0\n"
