"""README.md stays true: its config table, and a newcomer's run of its quick start.

The newcomer test clones the repository into a temp dir, runs `make run` there exactly as the
quick start says (on a free port instead of 8000, through the PORT variable the README lists),
sends the README's curl example and compares the answer with the output the README shows, runs
the README's SDK example against the same server, then stops the server.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _block_after(marker: str, language: str) -> str:
    pattern = re.escape(marker) + r"\s*```" + language + r"\n(.*?)```"
    return re.search(pattern, README, re.S).group(1)


def test_config_table_lists_every_setting_with_its_default():
    table = README.split("<!-- config:start -->")[1].split("<!-- config:end -->")[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", table, re.M)
    assert [name for name, _ in rows] == list(SETTINGS)
    for name, default in rows:
        value = SETTINGS[name][0]
        if isinstance(value, int | float):
            assert float(default.strip()) == value, name


def _answered_errors() -> set[tuple[int, str]]:
    """(status, code) of every error the service answers with: the literal ones in service/
    and every engine error through the handler's status table."""
    from engine import EngineError
    from service.errors import ENGINE_STATUS

    found = set()
    for path in (ROOT / "service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
                "ApiError", "error_response"
            ):
                status, code = (node.args + [None, None])[:2]
                if isinstance(status, ast.Constant) and isinstance(code, ast.Constant):
                    found.add((status.value, code.value))
    errors = [EngineError]
    while errors:
        error = errors.pop()
        errors.extend(error.__subclasses__())
        if error.code != EngineError.code:
            found.add((ENGINE_STATUS.get(error.code, 422), error.code))
    found.add((405, "method_not_allowed"))  # werkzeug's, named by the handler
    return found


def test_the_error_table_lists_every_error_the_service_answers_with():
    section = README.split("### Errors")[1].split("\n## ")[0]
    documented = {
        (int(status), code)
        for status, codes in re.findall(r"^\| (\d{3}) \| (.+?) \|", section, re.M)
        for code in re.findall(r"`(\w+)`", codes)
    }
    answered = _answered_errors()
    assert {(503, "not_ready"), (503, "diagram_unavailable"), (500, "internal")} <= answered
    assert answered <= documented, answered - documented


def test_quick_start_is_the_two_make_commands():
    quick = README.split("## Quick start")[1].split("##")[0]
    commands = re.findall(r"^(make \w+)", quick, re.M)
    assert commands == ["make run", "make test"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(600)
def test_a_newcomer_follows_the_readme(tmp_path):
    clone = tmp_path / "chainrule"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "REDIS_URL")}
    env.update(PORT=str(port), PATH=os.environ["PATH"].replace(str(Path(sys.executable).parent)
                                                              + os.pathsep, ""))
    with open(tmp_path / "make-run.log", "wb") as log:
        server = subprocess.Popen(["make", "run"], cwd=clone, stdout=log,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        base = f"http://localhost:{port}"
        deadline = time.monotonic() + 540
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail("make run exited:\n" + (tmp_path / "make-run.log").read_text())
            probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                    f"{base}/healthz"], capture_output=True, text=True)
            if probe.stdout == "200":
                break
            time.sleep(1)
        else:
            pytest.fail("make run did not serve:\n" + (tmp_path / "make-run.log").read_text())

        command = _block_after("<!-- curl-example -->", "bash").replace(
            "http://localhost:8000", base)
        answer = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                                check=True).stdout
        documented = _block_after("<!-- curl-output -->", "json")
        assert json.loads(answer) == json.loads(documented)

        sdk = re.search(r"## The Python SDK\s*```python\n(.*?)```", README, re.S).group(1)
        sdk = sdk.replace("http://localhost:8000", base)
        printed = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", sdk],
                                 capture_output=True, text=True, check=True, cwd=tmp_path).stdout
        assert printed.split() == ["-12.0", "-4.0", "-4.0", "3.0"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
