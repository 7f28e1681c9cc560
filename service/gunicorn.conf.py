"""gunicorn settings for chainrule: the one configuration used by `make run`, the Dockerfile and
`chainrule serve` (gunicorn -c service/gunicorn.conf.py 'service.wsgi:app'). `chainrule serve`
also gives several workers a shared metrics directory when PROMETHEUS_MULTIPROC_DIR is unset;
gunicorn started by hand with several workers and no such directory serves per-worker /metrics,
and says so when it starts.

Values come from the same environment variables as the app (service/config.py): HOST, PORT,
WEB_CONCURRENCY, COMPUTE_DEADLINE_SECONDS, CLIENT_TIMEOUT_SECONDS, CLIENT_MIN_BYTES_PER_SECOND
(service/worker.py), LOG_LEVEL, LOG_FORMAT, PROMETHEUS_MULTIPROC_DIR.
"""

import logging
import os
import sys
from pathlib import Path

# Run from a source checkout as well as from an installed package, whatever the cwd.
_package_root = str(Path(__file__).resolve().parent.parent)
if _package_root not in sys.path:
    sys.path.insert(0, _package_root)

from gunicorn import glogging  # noqa: E402

from service.config import load_config, pace_broken  # noqa: E402
from service.observe.jsonlog import formatter_for  # noqa: E402

_settings = load_config()
_deadline = _settings["COMPUTE_DEADLINE_SECONDS"]
_client_timeout = _settings["CLIENT_TIMEOUT_SECONDS"]

bind = [f"{_settings['HOST']}:{_settings['PORT']}"]
workers = _settings["WEB_CONCURRENCY"]
# Sync workers: one request at a time per process, so a heavy computation never stalls others
# in the same worker; they close the connection after each response.
worker_class = "service.worker.TimedSyncWorker"  # sync, and clients must keep a pace
# The arbiter replaces a worker it has not heard from for this long. A worker moving a client's
# bytes keeps telling it (service/worker.py); between, it may be silent for a computation (the
# deadline, with parsing, loading and dumping a maximal body on top) and one client wait: only
# a worker stuck well past anything a request may legitimately take is replaced.
timeout = int(_deadline + _client_timeout) + 30
graceful_timeout = int(_deadline) + 15
# Recycle workers now and then (bounded memory growth), staggered so they do not restart at once.
max_requests = 100_000
max_requests_jitter = 10_000
# gunicorn's control socket sits at one path per user; several servers on a host would collide.
control_socket_disable = True
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat files off a possibly slow container overlay disk

# Every line gunicorn writes is one JSON object (service/jsonlog.py; readable text instead with
# LOG_FORMAT text, or auto on a terminal): its own events on stderr, and on stdout one access
# line per request with the request id the app put in X-Request-ID.
accesslog = "-"
errorlog = "-"
loglevel = _settings["LOG_LEVEL"].lower()
# The Logging HOWTO's "Optimization": skip what no line shows (caller, thread, process name).
logging._srcfile = None
logging.logThreads = False
logging.logMultiprocessing = False
logging.logProcesses = False


class JsonGunicornLogger(glogging.Logger):
    """gunicorn's error and access logs as JSON lines; access lines at LOG_LEVEL INFO or lower."""

    def setup(self, cfg):
        super().setup(cfg)
        self.access_log.setLevel(self.loglevel)
        formatter = formatter_for(_settings["LOG_FORMAT"])
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(formatter)

    def exception(self, msg, *args, **kwargs):
        """A client let go for keeping its worker waiting (service/worker.py), which gunicorn
        reports as a socket error with its traceback, is one warning line."""
        if isinstance(sys.exc_info()[1], TimeoutError):
            broken = pace_broken(_client_timeout, _settings["CLIENT_MIN_BYTES_PER_SECOND"])
            self.warning("a client was %s: connection closed", broken)
        else:
            super().exception(msg, *args, **kwargs)

    def access(self, resp, req, environ, request_time):
        if not self.access_log.isEnabledFor(logging.INFO):
            return
        headers = {name.lower(): value for name, value in resp.headers}
        self.access_log.info(
            "request",
            extra={
                "request_id": headers.get("x-request-id"),
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": resp.status_code,
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "bytes": resp.sent,
                "cache": headers.get("x-cache"),
                "remote": environ.get("REMOTE_ADDR"),
            },
        )


logger_class = JsonGunicornLogger

_multiproc_dir = _settings["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    """Start /metrics from zero: values left by a previous run's workers are stale."""
    if _multiproc_dir:
        os.makedirs(_multiproc_dir, exist_ok=True)
        for leftover in Path(_multiproc_dir).glob("*.db"):
            leftover.unlink()
    elif workers > 1:
        server.log.warning(
            "PROMETHEUS_MULTIPROC_DIR is unset: each of the %d workers answers /metrics with its "
            "own counts; set it to a shared directory, or start the service with `chainrule "
            "serve`, which does", workers)


def child_exit(server, worker):
    """Let prometheus_client drop the live gauges of a worker that has exited."""
    if _multiproc_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, _multiproc_dir)


def worker_exit(server, worker):
    """Tear the exiting worker's app down: close its Redis connections."""
    app = getattr(worker, "wsgi", None)
    resources = getattr(app, "extensions", {}).get("chainrule")
    if resources is not None:
        resources.close()
