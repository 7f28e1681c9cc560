"""What service/gunicorn.conf.py sets under a given environment: the deploy files' timeouts
are checked against gunicorn's own numbers, not against a copy of the formulas."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from unittest import mock

GUNICORN_CONF = Path(__file__).resolve().parents[2] / "service" / "gunicorn.conf.py"


def gunicorn_settings(environment: dict[str, str]) -> dict[str, object]:
    """The module-level names of gunicorn.conf.py as it reads `environment` alone (PATH kept)."""
    only = {**{name: str(value) for name, value in environment.items()},
            "PATH": os.environ.get("PATH", "")}
    with mock.patch.dict(os.environ, only, clear=True):
        return runpy.run_path(str(GUNICORN_CONF))
