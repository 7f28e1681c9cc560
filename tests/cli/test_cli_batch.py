"""`chainrule eval GRAPH.json --batch DATA.json [--reduce R]`: one vectorised pass, locally."""

from __future__ import annotations

import json

from tests.cli.test_cli_commands import CIRCUIT, invoke, table_rows, write


def test_eval_batch_answers_what_the_api_answers(tmp_path, client):
    graph = write(tmp_path, "g.json", CIRCUIT)
    data = write(tmp_path, "data.json", {"x": [-2, 1, 3], "z": [-4, 2, 0.5]})
    result = invoke("eval", graph, "--batch", data, "--reduce", "mean", "--json")
    assert result.exit_code == 0, result.output
    api = client.post("/v1/gradients", json={
        "graph": CIRCUIT, "batch": {"x": [-2, 1, 3], "z": [-4, 2, 0.5]}, "reduce": "mean"})
    assert json.loads(result.output) == api.get_json()
    body = json.loads(result.output)
    assert body["value"] == [-12.0, 12.0, 4.0]
    assert body["nodes"]["y"]["grad"] == (-4.0 + 2 + 0.5) / 3  # shared: the mean over points


def test_eval_batch_table_shows_batched_nodes_by_shape(tmp_path):
    graph = write(tmp_path, "g.json", CIRCUIT)
    data = write(tmp_path, "data.json", {"x": [-2, 1, 3]})
    result = invoke("eval", graph, "--batch", data, "--reduce", "sum")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert rows["x"][1:3] == ["[3]", "min"]
    assert rows["y"][1:] == ["5", "-12"]  # shared value once, gradient summed over 3 points


def test_eval_batch_faults_are_one_line_with_status_2(tmp_path):
    graph = write(tmp_path, "g.json", CIRCUIT)
    uneven = write(tmp_path, "uneven.json", {"x": [1, 2], "z": [1]})
    result = invoke("eval", graph, "--batch", uneven)
    assert result.exit_code == 2
    assert "batch.z: every batch array needs the same leading length B" in result.output
    not_object = write(tmp_path, "list.json", [1, 2])
    assert invoke("eval", graph, "--batch", not_object).exit_code == 2
    assert invoke("eval", graph, "--batch", str(tmp_path / "missing.json")).exit_code == 2
    assert invoke("eval", graph, "--reduce", "sum").exit_code == 2  # --reduce needs --batch
    unknown = write(tmp_path, "unknown.json", {"q": [1, 2]})
    result = invoke("eval", graph, "--batch", unknown)
    assert result.exit_code == 2 and "node 'q'" in result.output
