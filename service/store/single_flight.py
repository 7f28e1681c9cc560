"""Single flight over any store: concurrent identical misses compute once.

The first request to miss claims the hash and computes; the others poll briefly for the
owner's result and compute themselves if it does not come or the claim lapses (the views wait
at most a share of the request's compute deadline). The store keeps the bodies and the claims;
only the waiting policy is here. A waiter reads the claim before the body (Store.waiting), so
the owner finishing between its two reads is seen as a hit. One window stays: a request that
misses in the instant between the owner storing its body and that request's claim computes
again, which costs time, never a wrong answer (the same bytes are stored).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

from service.store.base import Store

Outcome = Literal["hit", "miss"]
# Times a named stage (the service passes its request's stage timer).
StageTimer = Callable[[str], AbstractContextManager]


def _untimed(stage: str) -> AbstractContextManager:
    return nullcontext()


@dataclass(frozen=True, slots=True)
class Unstored:
    """A computed body to answer but not to store (a run that the deadline cut short)."""

    body: bytes


def fetch_or_compute(
    cache: Store,
    key: str,
    compute: Callable[[], bytes | Unstored],
    *,
    wait_until: float,
    timer: StageTimer = _untimed,
    poll_seconds: float = 0.002,
) -> tuple[bytes, Outcome]:
    """The stored body for `key` ("hit"), or `compute()`'s, stored for the next caller ("miss")
    unless it comes as `Unstored`.

    While another request holds the claim on `key`, poll for its result until `wait_until`
    (a time.monotonic() value) and compute here if it does not come or the claim lapses.
    `compute` runs under the caller's own deadline, so keep `wait_until` well before it.
    """
    with timer("cache_read"):
        body = cache.get(key)
        if body is not None:
            return body, "hit"
        token = cache.claim(key)
        delay = poll_seconds
        while token is None:
            if time.monotonic() + delay > wait_until:
                token = ""  # the owner is too slow or gone: compute here, unclaimed
                break
            time.sleep(delay)
            delay = min(2 * delay, 0.05)
            body, still_claimed = cache.waiting(key)
            if body is not None:
                return body, "hit"
            if not still_claimed:
                token = cache.claim(key)
    computed = None
    try:
        computed = compute()
    finally:
        with timer("cache_write"):
            cache.put_and_release(key, token, computed if isinstance(computed, bytes) else None)
    return (computed.body if isinstance(computed, Unstored) else computed), "miss"
