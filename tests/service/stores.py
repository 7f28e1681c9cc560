"""The store a parametrised fixture names: in process, Redis, Redis Cluster, the embedded store,
or the near cache over Redis or over the embedded store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.store import NearCachedStore

STORE_KINDS = ("memory", "redis", "near+redis", "cluster", "disk", "near+disk")


def store_of_kind(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    *,
    near: Callable[[], object],
    redis: Callable[[object], object],
    disk: Callable[[Path], object],
) -> Iterator[object]:
    """Yields the store `request.param` names, built by the factories given; closes it after."""
    if request.param == "memory":
        yield near()
        return
    if request.param.endswith("disk"):
        far = disk(tmp_path / "store")
    elif request.param == "cluster":
        far = redis(request.getfixturevalue("redis_cluster"))
    else:
        far = redis(request.getfixturevalue("redis_server"))
    yield NearCachedStore(near(), far) if request.param.startswith("near") else far
    far.close()
