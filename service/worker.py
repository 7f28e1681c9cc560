"""The gunicorn worker chainrule runs: gunicorn's sync worker, with a time limit on every read
and write of a client's socket.

A sync worker serves one connection at a time. A client that opens a request and goes silent
(headers or body half sent, or an answer it does not read) would hold the worker until the
arbiter, missing its heartbeat, kills it; a handful of such clients would stall the service.
With CLIENT_TIMEOUT_SECONDS on the socket, a silent client costs at most that long: mid-body it
gets 408 (service/api/body.py), otherwise its connection is closed, and the worker goes on.
"""

from __future__ import annotations

import socket

from gunicorn.workers.sync import SyncWorker

from service.config import load_config


class TimedSyncWorker(SyncWorker):
    """gunicorn's sync worker; each client socket times out after CLIENT_TIMEOUT_SECONDS of
    silence (gunicorn's own accept leaves it blocking without limit)."""

    client_timeout: float = load_config()["CLIENT_TIMEOUT_SECONDS"]

    def handle(self, listener, client, addr) -> None:
        timed = PatientSocket(client.family, client.type, client.proto, fileno=client.detach())
        timed.settimeout(self.client_timeout)
        super().handle(listener, timed, addr)


class PatientSocket(socket.socket):
    """A client socket whose timeout bounds each wait for the client, also in `sendall`.

    Python's own sendall counts its timeout over the whole data: an answer of 30 MB to a
    client reading steadily but taking longer than CLIENT_TIMEOUT_SECONDS to read it all was
    cut off as if the client had gone silent. Here each `send` waits at most the timeout for
    the client to take some more.
    """

    __slots__ = ()

    def sendall(self, data, flags: int = 0) -> None:
        with memoryview(data) as view, view.cast("B") as octets:
            sent = 0
            while sent < len(octets):
                sent += self.send(octets[sent:], flags)
