"""How `chainrule serve` runs gunicorn: the one command line (service/gunicorn.conf.py) and a
parent that passes gunicorn's signals on when it waits for it instead of becoming it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

GUNICORN_CONF = Path(__file__).with_name("gunicorn.conf.py")
WSGI_APP = "service.wsgi:app"
# What gunicorn's master acts on (stop, reload, reopen logs, more or fewer workers); `serve`
# passes them on when it waits on gunicorn instead of becoming it.
FORWARDED_SIGNALS = (
    signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
    signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU,
)


def gunicorn_command() -> list[str]:
    """The command `serve` runs: gunicorn with the one configuration, service/gunicorn.conf.py."""
    return [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), WSGI_APP]


def run_forwarding_signals(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run `argv` as a child, passing on the signals gunicorn acts on; its exit status
    (128 + the signal's number when a signal ended it, as a shell reports it)."""
    child: subprocess.Popen | None = None
    pending: list[int] = []  # signals that came before the child existed

    def forward(signum: int, frame: object) -> None:
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        child = subprocess.Popen(list(argv), env=dict(env))
        for signum in pending:
            child.send_signal(signum)
        status = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status if status >= 0 else 128 - status
