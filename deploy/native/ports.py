"""Free loopback TCP ports for the processes a native stack starts."""

from __future__ import annotations

import random
import socket


def is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(count: int, *, offset: int = 0, low: int = 20000, high: int = 30000) -> int:
    """A first port P such that P..P+count-1 (and the same shifted by `offset`, e.g. Redis
    Cluster's bus ports at +10000) are all free. Drawn at random from [low, high) so that
    parallel tests rarely race for the same block."""
    for _ in range(500):
        first = random.randrange(low, high - count)
        ports = range(first, first + count)
        if all(is_free(p) and (not offset or is_free(p + offset)) for p in ports):
            return first
    raise RuntimeError(f"no block of {count} free ports in [{low}, {high})")
