"""The command line's format, version, seed and gradcheck options (issue 15)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from click.testing import CliRunner

from service import cli
from tests.cli.test_cli_commands import CIRCUIT, invoke, table_rows, write


def run_cli(*args: str):
    """The command's result, its usage errors included (invoke() lets exceptions through)."""
    return CliRunner().invoke(cli.main, list(args))


@pytest.mark.parametrize("name", ["out.jpg", "out.pdf", "out.SVG.txt"])
def test_diagram_refuses_a_suffix_it_cannot_write(tmp_path, name):
    graph = write(tmp_path, "g.json", CIRCUIT)
    result = run_cli("diagram", graph, "-o", str(tmp_path / name))
    assert result.exit_code == 2
    assert "cannot tell a diagram format" in result.output
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("suffix, start", [(".svg", b"<?xml"), (".png", b"\x89PNG"),
                                           (".dot", b"digraph"), (".gv", b"digraph")])
def test_diagram_picks_the_format_from_the_suffix(tmp_path, suffix, start):
    graph = write(tmp_path, "g.json", CIRCUIT)
    assert invoke("diagram", graph, "-o", str(tmp_path / f"c{suffix}")).exit_code == 0
    assert (tmp_path / f"c{suffix}").read_bytes().lstrip().startswith(start)


def test_diagram_refuses_a_format_its_suffix_contradicts(tmp_path):
    graph = write(tmp_path, "g.json", CIRCUIT)
    result = run_cli("diagram", graph, "-o", str(tmp_path / "c.svg"), "--format", "png")
    assert result.exit_code == 2 and "does not match" in result.output


def test_version_names_the_package_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"chainrule {version('chainrule')}"
    command = [sys.executable, "-m", "service.cli", "-V"]
    assert subprocess.run(command, capture_output=True, text=True, check=True).stdout.startswith(
        "chainrule ")


def test_eval_takes_a_seed(tmp_path):
    graph = write(tmp_path, "g.json", CIRCUIT)
    result = invoke("eval", graph, "--seed", "2")
    assert result.exit_code == 0
    assert table_rows(result.stdout)["x"] == ["input", "-2", "-8"]
    seed_file = write(tmp_path, "seed.json", 0.5)
    result = invoke("eval", graph, "--seed", "@" + seed_file, "--json")
    assert json.loads(result.stdout)["nodes"]["z"]["grad"] == 1.5


def test_a_bad_seed_is_one_line_naming_it(tmp_path):
    graph = write(tmp_path, "g.json", CIRCUIT)
    result = run_cli("eval", graph, "--seed", "[1, 2]")
    assert result.exit_code == 2 and "seed" in result.output
    result = run_cli("eval", graph, "--seed", "{")
    assert result.exit_code == 2 and "--seed" in result.output


def test_diagram_takes_a_seed(tmp_path):
    graph = write(tmp_path, "g.json", CIRCUIT)
    out = tmp_path / "c.dot"
    assert invoke("diagram", graph, "-o", str(out), "--seed", "10").exit_code == 0
    assert ">10</FONT>" in out.read_text()  # the output wire carries the seed


def test_gradcheck_is_a_command(tmp_path):
    graph = write(tmp_path, "g.json", CIRCUIT)
    result = invoke("gradcheck", graph)
    assert result.exit_code == 0
    assert [line.split()[:2] for line in result.stdout.splitlines()[2:]] == [
        ["x", "good"], ["y", "good"], ["z", "good"]]
