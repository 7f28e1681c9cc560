"""`chainrule optimize`: locally through the pipeline, and with --url against the real app on a
loopback port, its progress bar fed by the event stream; the two answer the same body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from service import cli
from tests.loopback import served_on_loopback

SEEDS = {
    "nodes": [
        {"id": "a", "op": "input", "value": 5},
        {"id": "b", "op": "input", "value": -3},
        {"id": "c", "op": "input", "value": -2},
        {"id": "s", "op": "add", "inputs": ["a", "b"]},
        {"id": "f", "op": "mul", "inputs": ["s", "c"]},
    ],
    "output": "f",
}
SEEDS_STEP = ["--params", "a,b,c", "--steps", "1", "--optimizer", "sgd", "--lr", "0.01",
              "--goal", "maximize"]


@pytest.fixture
def live_url(app) -> Iterator[str]:
    with served_on_loopback(app) as url:
        yield url


@pytest.fixture
def seeds_file(tmp_path: Path) -> str:
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps(SEEDS))
    return str(path)


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def test_the_seeds_example_locally(seeds_file):
    result = invoke("optimize", seeds_file, *SEEDS_STEP)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "stopped: steps after 1 step; value -3.8808000000000007"
    assert [line.split() for line in lines[3:]] == [["a", "4.98"], ["b", "-3.02"],
                                                     ["c", "-1.98"]]


def test_local_and_remote_runs_answer_the_same_body(seeds_file, live_url):
    args = ["optimize", seeds_file, "--params", "a,b", "--steps", "50", "--lr", "0.1", "--json"]
    local = json.loads(invoke(*args).stdout)
    remote = invoke(*args, "--url", live_url, "--progress")
    assert remote.exit_code == 0, remote.stderr
    assert json.loads(remote.stdout) == local
    assert (local["steps"], local["stopped"], len(local["trajectory"])) == (50, "steps", 51)
    assert "50/50" in remote.stderr  # the bar followed the stream to the last step


def test_a_request_body_file_and_options_over_it(tmp_path, live_url):
    body = {"graph": SEEDS, "params": ["a"], "optimizer": {"name": "sgd", "lr": 0.5,
                                                           "momentum": 0.9}, "steps": 3}
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body))
    answer = json.loads(invoke("optimize", str(path), "--steps", "2", "--json").stdout)
    assert answer["steps"] == 2 and list(answer["params"]) == ["a"]
    remote = json.loads(invoke("optimize", str(path), "--url", live_url, "--json").stdout)
    assert remote["steps"] == 3


def test_refusals_name_the_node_locally_and_remotely(seeds_file, live_url):
    local = invoke("optimize", seeds_file, "--params", "s")
    assert local.exit_code == 2
    assert "node 's'" in local.stderr and "only input nodes" in local.stderr
    remote = invoke("optimize", seeds_file, "--params", "s", "--url", live_url)
    assert remote.exit_code == 2
    assert "422 validation_error (node 's')" in remote.stderr
    missing = invoke("optimize", seeds_file)
    assert missing.exit_code == 2 and "--params" in missing.stderr
    unbatched = invoke("optimize", seeds_file, "--params", "a", "--batch-size", "2")
    assert unbatched.exit_code == 2 and "give --batch DATA.json" in unbatched.stderr


def test_an_unreachable_service_is_one_line(seeds_file):
    result = invoke("optimize", seeds_file, "--params", "a", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1 and "cannot reach the service" in result.stderr


def test_a_data_set_from_a_batch_file(tmp_path, live_url):
    graph = {"nodes": [
        {"id": "x", "op": "input"}, {"id": "y", "op": "input"},
        {"id": "w", "op": "input", "value": 0.0},
        {"id": "e", "op": "mul", "inputs": ["w", "x"]},
        {"id": "d", "op": "sub", "inputs": ["e", "y"]},
        {"id": "f", "op": "mul", "inputs": ["d", "d"]},
    ], "output": "f"}
    (tmp_path / "g.json").write_text(json.dumps(graph))
    (tmp_path / "data.json").write_text(json.dumps({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]}))
    args = ["optimize", str(tmp_path / "g.json"), "--params", "w", "--batch",
            str(tmp_path / "data.json"), "--optimizer", "sgd", "--lr", "0.05", "--steps", "100",
            "--json"]
    local = json.loads(invoke(*args).stdout)
    assert local["params"]["w"] == pytest.approx(2.0, rel=1e-9)
    assert json.loads(invoke(*args, "--url", live_url).stdout) == local
    mini = json.loads(invoke(*args, "--batch-size", "2").stdout)
    assert mini["params"]["w"] == pytest.approx(2.0, rel=1e-6) and mini["hash"] != local["hash"]
