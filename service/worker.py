"""The gunicorn worker chainrule runs: gunicorn's sync worker, with limits on how long a client
may keep it waiting.

A sync worker serves one connection at a time. A client that opens a request and goes silent
(headers or body half sent, or an answer it stops reading) would hold the worker until the
arbiter, missing its heartbeat, kills it; a handful of such clients would stall the service.
So each read and each write of a client's socket waits at most CLIENT_TIMEOUT_SECONDS, and the
reads together (the writes likewise) may wait at most CLIENT_TIMEOUT_SECONDS plus a second for
every CLIENT_MIN_BYTES_PER_SECOND bytes they moved: a client that trickles a byte now and then,
never silent for long, is let go as surely as a silent one. Mid-body such a client gets 408
(service/api/body.py); otherwise its connection is closed, and the worker goes on.

A client that keeps the pace is served however long it takes: the worker tells the arbiter it
is alive while it reads and writes, so a slow link never gets it killed.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable

from gunicorn.workers.sync import SyncWorker

from service.config import load_config

# The arbiter hears from a worker moving a client's bytes this often at most.
HEARTBEAT_SECONDS = 1.0


class TimedSyncWorker(SyncWorker):
    """gunicorn's sync worker, serving each client through a PacedSocket."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        settings = load_config()
        self.silence: float = settings["CLIENT_TIMEOUT_SECONDS"]
        self.min_rate: float = settings["CLIENT_MIN_BYTES_PER_SECOND"]

    def handle(self, listener, client, addr) -> None:
        if self.cfg.is_ssl:  # TLS wraps the socket object itself: it keeps the silence limit
            client.settimeout(self.silence)
            super().handle(listener, client, addr)
            return
        paced = PacedSocket(client, self.silence, self.min_rate, self.notify)
        super().handle(listener, paced, addr)


class Pace:
    """What the waits of one direction (reads, or writes) may still last."""

    __slots__ = ("silence", "min_rate", "waited", "moved")

    def __init__(self, silence: float, min_rate: float):
        self.silence, self.min_rate = silence, min_rate
        self.waited = 0.0  # seconds spent waiting
        self.moved = 0  # bytes moved

    def next_wait(self) -> float:
        """How long the next wait may last; TimeoutError once the client is behind the pace."""
        left = self.silence + self.moved / self.min_rate - self.waited
        if left <= 0:
            raise TimeoutError("the client moves its bytes too slowly")
        return min(self.silence, left)


class PacedSocket:
    """A client socket whose reads and writes keep a Pace each; anything else is the socket's
    own. A wait past its pace raises TimeoutError, as a timed-out socket does."""

    def __init__(self, connection: socket.socket, silence: float, min_rate: float,
                 heartbeat: Callable[[], None]):
        self._socket = connection
        self._reads, self._writes = Pace(silence, min_rate), Pace(silence, min_rate)
        self._limit = math.inf  # a timeout set from outside: gunicorn's, when it closes
        self._heartbeat, self._beaten = heartbeat, time.monotonic()
        self._timeout = silence
        connection.settimeout(silence)

    def recv(self, size: int, *flags: int) -> bytes:
        data = self._waiting(self._reads, self._socket.recv, size, *flags)
        self._reads.moved += len(data)
        return data

    def send(self, data, *flags: int) -> int:
        sent = self._waiting(self._writes, self._socket.send, data, *flags)
        self._writes.moved += sent
        return sent

    def sendall(self, data, *flags: int) -> None:
        # send by send: a socket's own sendall counts its timeout over the whole answer
        view = memoryview(data).cast("B")
        while view:
            view = view[self.send(view, *flags):]

    def settimeout(self, value: float | None) -> None:
        self._limit = math.inf if value is None else value

    def _waiting(self, pace: Pace, operation: Callable, *args):
        wait = min(pace.next_wait(), self._limit)
        if wait != self._timeout:
            self._socket.settimeout(wait)
            self._timeout = wait
        started = time.monotonic()
        try:
            return operation(*args)
        finally:
            now = time.monotonic()
            pace.waited += now - started
            if now - self._beaten >= HEARTBEAT_SECONDS:
                self._heartbeat()
                self._beaten = now

    def __getattr__(self, name: str):
        return getattr(self._socket, name)
