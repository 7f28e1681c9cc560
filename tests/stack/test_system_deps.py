"""scripts/install-system-deps: installs only what is asked for and missing, else nothing.

apt-get and sudo are replaced by scripts that record their arguments; PATH decides what is
"installed".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-system-deps"
EVERYTHING = ["redis-server", "graphviz", "chromium", "wrk", "curl", "git", "nginx"]
COMMANDS = {"redis-server": "redis-server", "graphviz": "dot", "wrk": "wrk", "curl": "curl",
            "git": "git", "nginx": "nginx"}


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A PATH directory holding `id`, and an apt-get and a sudo that log their arguments."""
    directory = tmp_path / "bin"
    directory.mkdir()
    log = tmp_path / "calls.log"
    for name, body in {
        "apt-get": f'echo "apt-get $*" >> {log}',
        "sudo": f'echo "sudo" >> {log}; exec "$@"',
    }.items():
        (directory / name).write_text(f"#!/bin/sh\n{body}\n")
        (directory / name).chmod(0o755)
    (directory / "id").symlink_to(shutil.which("id"))
    return directory


def run(path: str, *packages: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/bash", str(SCRIPT), *packages], capture_output=True, text=True,
                          env={**os.environ, "PATH": path}, timeout=60)


def apt_calls(fake_bin: Path) -> list[str]:
    log = fake_bin.parent / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith("apt-get")]


def test_named_packages_that_are_missing_are_installed(fake_bin):
    done = run(str(fake_bin), "graphviz", "curl")
    assert done.returncode == 0, done.stderr
    assert apt_calls(fake_bin) == ["apt-get update -qq", "apt-get install -y -qq graphviz curl"]


def test_no_argument_means_everything_the_tests_use(fake_bin):
    assert run(str(fake_bin)).returncode == 0
    install = apt_calls(fake_bin)[-1].split()
    chromium_present = Path("/usr/bin/chromium").exists()  # found by path, not by PATH
    expected = [p for p in EVERYTHING if not (p == "chromium" and chromium_present)]
    assert install[:4] == ["apt-get", "install", "-y", "-qq"] and install[4:] == expected


def test_nothing_happens_when_what_is_asked_for_is_there(fake_bin, tmp_path):
    present = tmp_path / "present"
    present.mkdir()
    for command in COMMANDS.values():
        (present / command).write_text("#!/bin/sh\n")
        (present / command).chmod(0o755)
    done = run(f"{fake_bin}:{present}", "graphviz", "git", "curl", "redis-server", "wrk", "nginx")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert apt_calls(fake_bin) == []


def test_a_machine_with_everything_needs_nothing(fake_bin):
    # `make test` has run the script before the suite, so this machine has everything.
    done = run(f"{fake_bin}:{os.environ['PATH']}")
    assert (done.returncode, done.stdout) == (0, "")
    assert apt_calls(fake_bin) == []


def test_an_unknown_package_is_refused_before_installing_anything(fake_bin):
    done = run(str(fake_bin), "graphviz", "frobnicate")
    assert done.returncode == 2 and "unknown package 'frobnicate'" in done.stderr
    assert apt_calls(fake_bin) == []


def test_make_run_installs_graphviz_before_serving():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^run: .*\n((?:\t.*\n)+)", makefile, re.M).group(1).splitlines()
    assert recipe == ["\t./scripts/install-system-deps graphviz", "\t$(BIN)/chainrule serve"]
