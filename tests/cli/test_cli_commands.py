"""The `chainrule` command line: eval, ops, diagram and serve, including files that are wrong."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import chainrule_client as cr
import engine
from service import cli
from tests.circuits import CIRCUIT

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def table_rows(text: str) -> dict[str, list[str]]:
    """The eval table's rows by node id (columns: node, op, value, grad)."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("----"))
    return {line.split()[0]: line.split()[1:] for line in lines[rule + 1:]}


# -------------------------------------------------------------------- eval


def test_eval_prints_a_table_of_values_and_gradients(tmp_path):
    result = invoke("eval", write(tmp_path, "g.json", CIRCUIT))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "output f = -12"
    assert result.stdout.splitlines()[1].split() == ["node", "op", "value", "grad"]
    assert table_rows(result.stdout) == {
        "x": ["input", "-2", "-4"],
        "y": ["input", "5", "-4"],
        "z": ["input", "-4", "3"],
        "q": ["add", "3", "-4"],
        "f": ["mul", "-12", "1"],
    }


def test_eval_json_is_the_apis_response(tmp_path, client):
    path = write(tmp_path, "g.json", CIRCUIT)
    result = invoke("eval", path, "--json")
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert body["value"] == -12.0 and body["cached"] is False
    assert body["nodes"]["x"] == {"value": -2.0, "grad": -4.0}
    served = client.post("/v1/gradients", json={"graph": CIRCUIT})
    assert served.status_code == 200
    assert body == served.get_json()  # same numbers, same hash as the service


def test_eval_inputs_and_wrt(tmp_path):
    path = write(tmp_path, "g.json", CIRCUIT)
    result = invoke("eval", path, "--inputs", '{"x": 3}', "--wrt", "x,q")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "output f = -32"
    assert table_rows(result.stdout) == {"x": ["input", "3", "-4"], "q": ["add", "8", "-4"]}

    inputs = write(tmp_path, "inputs.json", {"y": 1, "z": 2})
    result = invoke("eval", path, "--inputs", "@" + inputs, "--wrt", "x", "--wrt", "z")
    assert result.exit_code == 0
    assert table_rows(result.stdout) == {"x": ["input", "-2", "2"], "z": ["input", "2", "-1"]}


def test_eval_reads_a_whole_request_body_and_summarises_tensors(tmp_path):
    x = cr.input("x")
    loss = (cr.const([[1.0, 2.0], [3.0, 4.0]]) @ x).named("h").tanh().sum().named("loss")
    body = {"graph": cr.to_graph(loss), "inputs": {"x": [0.5, -0.25]}, "seed": 2.0}
    result = invoke("eval", write(tmp_path, "request.json", body))
    assert result.exit_code == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["x"][:2] == ["input", "[2]"]
    assert rows["h"][:2] == ["matmul", "[2]"]
    assert "min" in result.stdout and "max" in result.stdout
    assert rows["loss"][2] == "2"  # the seed from the body


def test_eval_reads_stdin(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli.main, ["eval", "-", "--json"], input=json.dumps(CIRCUIT))
    assert result.exit_code == 0
    assert json.loads(result.stdout)["value"] == -12.0


BAD_FILES = [
    ("missing", None, "no such file"),
    ("empty", "", "not valid JSON"),
    ("not json", "{nodes: [}", "not valid JSON"),
    ("a list", "[1, 2]", "expected a JSON object"),
    ("no output", {"nodes": [{"id": "x", "op": "input", "value": 1}]}, "graph.output"),
    ("bad value", {"nodes": [{"id": "x", "op": "input", "value": "two"}], "output": "x"},
     "graph.nodes.0.value"),
    ("unknown op", {"nodes": [{"id": "q", "op": "frobnicate"}], "output": "q"},
     "node 'q': unknown op 'frobnicate'"),
    ("cycle", {"nodes": [{"id": "a", "op": "neg", "inputs": ["b"]},
                         {"id": "b", "op": "neg", "inputs": ["a"]}], "output": "a"}, "(cycle)"),
    ("missing input", {"nodes": [{"id": "x", "op": "input"},
                                 {"id": "f", "op": "exp", "inputs": ["x"]}], "output": "f"},
     "node 'x'"),
    ("shapes", {"nodes": [{"id": "a", "op": "const", "value": [1, 2]},
                          {"id": "b", "op": "const", "value": [1, 2, 3]},
                          {"id": "s", "op": "add", "inputs": ["a", "b"]}], "output": "s"},
     "node 's'"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
@pytest.mark.parametrize("command", ["eval", "diagram"])
def test_a_bad_file_is_one_error_line_and_exit_status_2(tmp_path, name, content, message, command):
    path = str(tmp_path / "absent.json") if content is None else write(tmp_path, "g.json", content)
    args = [command, path] + (["-o", str(tmp_path / "c.svg")] if command == "diagram" else [])
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert path in lines[0]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("{x: 1}", "--inputs: not valid JSON"),
        ("[1]", "--inputs: expected a JSON object"),
        ('{"nope": 1}', "node 'nope'"),
        ('{"x": [[1], [2, 3]]}', "inputs.x"),
        ("@/nonexistent/inputs.json", "no such file"),
    ],
)
def test_bad_inputs_are_one_error_line_and_exit_status_2(tmp_path, inputs, message):
    result = invoke("eval", write(tmp_path, "g.json", CIRCUIT), "--inputs", inputs)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


@pytest.mark.parametrize("command", ["eval", "diagram"])
def test_a_nonfinite_seed_is_refused_as_the_api_refuses_it(tmp_path, client, command):
    body = {"graph": CIRCUIT, "seed": "NaN"}
    args = [command, write(tmp_path, "g.json", body)]
    args += ["-o", str(tmp_path / "c.svg")] if command == "diagram" else []
    result = invoke(*args)
    assert result.exit_code == 2
    served = client.post("/v1/gradients", json=body).get_json()["error"]
    assert served["code"] == "nonfinite_input"
    assert f"node 'f': {served['message']} (nonfinite_input)" in result.stderr
    body["allow_nonfinite"] = True
    assert invoke(command, write(tmp_path, "g.json", body), *args[2:]).exit_code == 0


def test_a_bad_file_through_the_real_process(tmp_path):
    path = write(tmp_path, "g.json", {"nodes": [{"id": "q", "op": "frobnicate"}], "output": "q"})
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "eval", path],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "unknown_op" in done.stderr


# -------------------------------------------------------------------- gradcheck


def test_gradcheck_prints_a_verdict_per_input(tmp_path):
    result = invoke("gradcheck", write(tmp_path, "g.json", CIRCUIT), "--check", "x,z")
    assert result.exit_code == 0, result.stderr
    rows = table_rows(result.stdout)
    assert sorted(rows) == ["x", "z"]
    assert rows["x"][0] == "good" and rows["x"][2:] == ["-4", "-4"]


def test_gradcheck_json_is_the_apis_response(tmp_path, client):
    path = write(tmp_path, "g.json", CIRCUIT)
    result = invoke("gradcheck", path, "--eps", "1e-4", "--json")
    assert result.exit_code == 0
    served = client.post("/v1/gradcheck", json={"graph": CIRCUIT, "eps": 1e-4})
    assert json.loads(result.stdout) == served.get_json()


def test_a_failing_gradcheck_exits_with_status_1(tmp_path):
    # exp's centred difference with a step of 1 is off by sinh(1) - 1: a "wrong" verdict.
    graph = {"nodes": [{"id": "x", "op": "input", "value": 0.5},
                       {"id": "e", "op": "exp", "inputs": ["x"]}], "output": "e"}
    result = invoke("gradcheck", write(tmp_path, "g.json", graph), "--eps", "1")
    assert result.exit_code == 1
    assert table_rows(result.stdout)["x"][0] == "wrong"


def test_a_gradcheck_at_a_kink_says_why_its_verdict_means_nothing(tmp_path):
    graph = {"nodes": [{"id": "x", "op": "input", "value": 0.0},
                       {"id": "r", "op": "relu", "inputs": ["x"]}], "output": "r"}
    result = invoke("gradcheck", write(tmp_path, "g.json", graph))
    assert result.exit_code == 1
    assert table_rows(result.stdout)["x"][0] == "wrong"
    assert result.stdout.splitlines()[-1].startswith("x: 1 element(s) sit at a kink")


def test_gradcheck_names_a_bad_node(tmp_path):
    graph = {"nodes": [{"id": "x", "op": "input"}], "output": "x"}
    result = CliRunner().invoke(cli.main, ["gradcheck", write(tmp_path, "g.json", graph)])
    assert result.exit_code == 2
    assert "node 'x'" in result.stderr and "missing_input" in result.stderr


# -------------------------------------------------------------------- ops


def test_ops_prints_the_catalog_as_a_table():
    result = CliRunner().invoke(cli.main, ["ops"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["op", "inputs", "symbol"]
    assert max(map(len, lines)) <= 80  # readable in an 80-column terminal
    blocks: dict[str, str] = {}  # each op's row, then its indented attrs and description
    name = ""
    for line in lines[2:]:
        if line.startswith(" "):
            blocks[name] += " " + line.strip()
        else:
            name = line.split()[0]
            blocks[name] = line
    assert list(blocks) == [op["name"] for op in engine.describe_ops()]
    assert "attrs: exponent" in blocks["pow"]
    assert "axis=null" in blocks["sum"] and "keepdims=false" in blocks["sum"]
    assert blocks["add"].endswith("x1 + x2 + ...")


def test_ops_json_is_the_catalog():
    result = invoke("ops", "--json")
    assert json.loads(result.stdout) == {"ops": json.loads(json.dumps(engine.describe_ops()))}


# -------------------------------------------------------------------- diagram


def test_diagram_writes_an_svg_of_the_circuit(tmp_path):
    out = tmp_path / "circuit.svg"
    result = invoke("diagram", write(tmp_path, "g.json", CIRCUIT), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    root = ET.fromstring(out.read_bytes())
    assert root.tag.endswith("svg")
    text = set("".join(root.itertext()).split())
    assert {"-12", "-4", "3", "5", "-2", "+", "*"} <= text


def test_diagram_formats_by_option_or_suffix(tmp_path):
    graph = write(tmp_path, "g.json", CIRCUIT)
    assert invoke("diagram", graph, "-o", str(tmp_path / "c.dot")).exit_code == 0
    assert (tmp_path / "c.dot").read_text().lstrip().startswith("digraph")
    assert invoke("diagram", graph, "-o", str(tmp_path / "c.img"), "--format", "png").exit_code == 0
    assert (tmp_path / "c.img").read_bytes().startswith(b"\x89PNG")
    to_stdout = invoke("diagram", graph, "-o", "-", "--format", "dot")
    assert to_stdout.stdout.lstrip().startswith("digraph")


def test_diagram_needs_an_output_and_a_known_format(tmp_path):
    graph = write(tmp_path, "g.json", CIRCUIT)
    assert invoke("diagram", graph).exit_code == 2
    assert invoke("diagram", graph, "-o", "c.svg", "--format", "jpeg").exit_code == 2


def test_diagram_reports_an_unwritable_output(tmp_path):
    result = invoke("diagram", write(tmp_path, "g.json", CIRCUIT), "-o", str(tmp_path / "no/c.svg"))
    assert result.exit_code == 2
    assert "cannot write" in result.stderr and len(result.stderr.splitlines()) == 1


# -------------------------------------------------------------------- serve


def test_serve_execs_gunicorn_with_the_config_and_the_options_as_env(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda *args: calls.append(args))
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    result = invoke("serve", "--host", "127.0.0.1", "--port", "8123", "--workers", "3")
    assert result.exit_code == 0
    ((executable, argv, env),) = calls
    assert executable == sys.executable
    assert argv[1:] == [
        "-m", "gunicorn", "--config", str(REPO / "service" / "gunicorn.conf.py"),
        "service.wsgi:app",
    ]
    assert (env["HOST"], env["PORT"], env["WEB_CONCURRENCY"]) == ("127.0.0.1", "8123", "3")


def test_serve_without_options_leaves_the_environment_alone(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda *args: calls.append(args))
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert invoke("serve").exit_code == 0
    env = calls[0][2]
    assert env["PORT"] == "9999" and "WEB_CONCURRENCY" not in env
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)


def test_serve_refuses_an_unusable_setting_by_name(monkeypatch):
    monkeypatch.setattr(cli.os, "execve", lambda *a: pytest.fail("must not exec"))
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    result = invoke("serve")
    assert result.exit_code == 1 and "WEB_CONCURRENCY" in result.stderr


@pytest.mark.parametrize("args", [["--workers", "0"], ["--port", "70000"], ["--port", "x"]])
def test_serve_refuses_bad_options(monkeypatch, args):
    monkeypatch.setattr(cli.os, "execve", lambda *a: pytest.fail("must not exec"))
    assert invoke("serve", *args).exit_code == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_runs_a_real_server(tmp_path):
    port = free_port()
    env = {**os.environ, "REDIS_URL": "", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=REPO, env=env, stdout=sink, stderr=sink,
        )
    try:
        x, y, z = cr.input("x", -2.0), cr.input("y", 5.0), cr.input("z", -4.0)
        with cr.Client(f"http://127.0.0.1:{port}", retries=0) as client:
            give_up = time.monotonic() + 30
            while True:
                try:
                    assert client.health() == {"status": "ok"}
                    break
                except cr.TransportError:
                    assert process.poll() is None, f"chainrule serve exited: {log.read_text()}"
                    assert time.monotonic() < give_up, "chainrule serve did not come up"
                    time.sleep(0.1)
            result = client.gradients((x + y) * z)
        assert result.value == -12.0 and result.grad(z) == 3.0
    finally:
        process.terminate()
        process.wait(timeout=30)


CHAINRULE = Path(sys.executable).with_name("chainrule")  # the console script, as `make run` runs it


def serve_env(base: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """`base` without a metrics directory, and with temporary files under tmp_path/tmp."""
    env = {k: v for k, v in base.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp_path / "tmp")
    return env


def test_serve_gives_several_workers_a_temporary_metrics_directory(tmp_path, fake_gunicorn):
    env = serve_env(fake_gunicorn.env(wait=True), tmp_path)
    process = subprocess.Popen([str(CHAINRULE), "serve", "--workers", "2"], env=env)
    try:
        seen = fake_gunicorn.wait_for_record(process)
        assert seen["argv"] == ["--config", str(REPO / "service" / "gunicorn.conf.py"),
                                "service.wsgi:app"]
        metrics_dir = Path(seen["metrics_dir"])
        assert metrics_dir.parent == tmp_path / "tmp" and seen["metrics_dir_existed"]
        assert seen["pid"] != process.pid  # serve waits on gunicorn...
        process.send_signal(signal.SIGTERM)  # ...and passes a stop on to it
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert fake_gunicorn.record()["signals"] == [signal.SIGTERM]
    assert not metrics_dir.exists()


def test_serve_passes_gunicorns_exit_status_on(tmp_path, fake_gunicorn):
    env = serve_env({**fake_gunicorn.env(), "FAKE_GUNICORN_EXIT": "3"}, tmp_path)
    done = subprocess.run([str(CHAINRULE), "serve", "--workers", "2"], env=env, timeout=60)
    assert done.returncode == 3
    assert not any((tmp_path / "tmp").iterdir())  # the metrics directory is gone


@pytest.mark.parametrize("case", ["configured directory", "one worker"])
def test_serve_becomes_gunicorn_when_no_directory_is_needed(tmp_path, fake_gunicorn, case):
    env = serve_env(fake_gunicorn.env(), tmp_path)
    args = ["--workers", "1"] if case == "one worker" else ["--workers", "2"]
    if case == "configured directory":
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    process = subprocess.Popen([str(CHAINRULE), "serve", *args], env=env)
    assert process.wait(timeout=60) == 0
    seen = fake_gunicorn.record()
    assert seen["pid"] == process.pid  # exec'd: the same process
    assert seen["metrics_dir"] == env.get("PROMETHEUS_MULTIPROC_DIR")


def access_pids(log: Path) -> list[int]:
    """The worker pid of each access line gunicorn has written so far."""
    pids = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "gunicorn.access" and entry.get("path") == "/v1/gradients":
                pids.append(entry["pid"])
    return pids


def metric_sum(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@pytest.mark.timeout(120)
def test_serve_with_two_workers_counts_every_workers_requests(tmp_path):
    port = free_port()
    env = serve_env({**os.environ, "REDIS_URL": "", "LOG_LEVEL": "INFO"}, tmp_path)
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(CHAINRULE), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2"],
            env=env, stdout=sink, stderr=sink,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            give_up = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < give_up, "chainrule serve did not come up"
                time.sleep(0.1)
            (metrics_dir,) = (tmp_path / "tmp").iterdir()

            def post(i: int) -> int:
                with httpx.Client(base_url=base, timeout=30) as own:
                    body = {"graph": CIRCUIT, "inputs": {"x": i}}
                    return own.post("/v1/gradients", json=body).status_code

            sent = 0
            with ThreadPoolExecutor(max_workers=4) as pool:
                for _ in range(25):  # until both workers have answered some
                    assert set(pool.map(post, range(sent, sent + 8))) == {200}
                    sent += 8
                    if len(set(access_pids(log))) == 2:
                        break
            assert len(set(access_pids(log))) == 2, "one worker answered everything"
            text = client.get("/metrics").text
        assert metric_sum(text, "chainrule_http_requests_total", route="/v1/gradients") == sent
        assert metric_sum(text, "chainrule_cache_lookups_total", outcome="miss") == sent
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
    assert not metrics_dir.exists()
