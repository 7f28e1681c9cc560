"""examples/moons.py as a newcomer runs it, against the real app on a loopback port: one
/v1/optimize call trains micrograd's demo network to >= 95% training accuracy."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "moons.py"
README = (EXAMPLE.parents[1] / "README.md").read_text()


def load_example():
    spec = importlib.util.spec_from_file_location("moons_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_two_moons_are_two_labelled_half_circles():
    moons = load_example()
    points, labels = moons.two_moons(noise=0.0)
    assert points.shape == (100, 2) and sorted(set(labels)) == [-1.0, 1.0]
    upper, lower = points[labels < 0], points[labels > 0]
    assert np.allclose(np.hypot(*upper.T), 1.0)
    assert np.allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0)
    noisy, _ = moons.two_moons()
    assert np.array_equal(noisy, moons.two_moons()[0]) and not np.allclose(noisy, points)


def test_the_example_trains_to_95_percent_in_one_call(live_url, tmp_path, capsys):
    moons = load_example()
    png = tmp_path / "moons.png"
    trained = moons.main(["--url", live_url, "--png", str(png)])
    assert trained.accuracy >= 0.95
    assert (trained.result.steps, trained.result.stopped) == (100, "steps")
    losses = [float(step.value) for step in trained.result.trajectory]
    assert losses[-1] < losses[0] / 10
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("step   0  loss ") and len(printed) == 11 + 2
    assert printed[-2].startswith("training accuracy ")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_what_the_example_prints_is_what_the_readme_shows(live_url, tmp_path, capsys):
    moons = load_example()
    moons.main(["--url", live_url, "--png", str(tmp_path / "moons.png")])
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2] == "training accuracy 100% after 100 steps"
    assert printed[-2] in README.split("examples/moons.py --url", 1)[1].split("```\n\n", 1)[0]


def test_without_matplotlib_the_hint_is_the_readmes(live_url, tmp_path, capsys, monkeypatch):
    moons = load_example()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    png = tmp_path / "moons.png"
    moons.main(["--url", live_url, "--png", str(png)])
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "matplotlib is not installed: no PNG (pip install matplotlib)"
    assert f".venv/bin/{moons.MATPLOTLIB_HINT}" in README and not png.exists()


def test_the_png_the_example_draws_by_default_is_ignored_by_git():
    root = EXAMPLE.parents[1]
    default = root / "moons.png"  # --png's default, run from the root as the README does
    ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", str(default)])
    assert ignored.returncode == 0
