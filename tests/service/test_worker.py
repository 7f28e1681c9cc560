"""The pace a client's socket must keep (service/worker.py), on a socket pair: no server."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from service.worker import Pace, PacedSocket


def test_a_pace_allows_the_silence_then_a_second_per_min_rate_bytes():
    pace = Pace(silence=1.0, min_rate=100.0)
    assert pace.next_wait() == 1.0
    pace.waited = 2.5
    pace.moved = 200  # 1 + 200 / 100 = 3 s allowed in all: half a second left
    assert pace.next_wait() == pytest.approx(0.5)
    pace.waited = 3.0
    with pytest.raises(TimeoutError):
        pace.next_wait()


def test_reads_that_keep_the_pace_beat_the_heartbeat_and_a_silent_peer_times_out():
    ours, theirs = socket.socketpair()
    beats = []
    paced = PacedSocket(ours, silence=1.0, min_rate=10.0, heartbeat=lambda: beats.append(1))

    def send_slowly() -> None:
        for _ in range(8):  # 1.6 s in all, never silent for 1 s: the pace allows 1 + 0.8 s
            time.sleep(0.2)
            theirs.sendall(b"x")

    sender = threading.Thread(target=send_slowly)
    sender.start()
    received = b"".join(paced.recv(1) for _ in range(8))
    sender.join()

    assert received == b"x" * 8
    assert beats  # more than a second of reading: the arbiter heard from the worker
    with pytest.raises(TimeoutError):  # then silence: one wait, at most a second
        paced.recv(1)
    ours.close()
    theirs.close()


def test_sendall_waits_per_send_not_over_the_whole_answer():
    ours, theirs = socket.socketpair()
    paced = PacedSocket(ours, silence=1.0, min_rate=1e6, heartbeat=lambda: None)
    answer = b"y" * (4 << 20)  # far more than the socket pair's buffers
    received = []

    def read_slowly() -> None:  # 64 KB at most every 0.03 s: 2 s or more, never silent for 1 s
        while sum(map(len, received)) < len(answer):
            received.append(theirs.recv(1 << 16))
            time.sleep(0.03)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    paced.sendall(answer)
    reader.join()

    assert b"".join(received) == answer
    ours.close()
    theirs.close()
