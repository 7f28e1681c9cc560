"""Where response bodies are kept: bytes in, bytes out, no Flask.

`Store` (base.py) is the Protocol; `MemoryStore` (in process), `DiskStore` (embedded, shared
by the workers of one server), `RedisStore` (one Redis or a Redis Cluster, shared by replicas)
and `NearCachedStore` (memory in front of a shared store) implement it; `fetch_or_compute`
adds single flight over any of them; `KeyLayout` names the keys of shared stores; `LockedLRU`
is the one bounded map the in-process caches use. Nothing here imports the rest of the service.
"""

from service.store.base import Store
from service.store.disk import DiskStore
from service.store.keys import KeyLayout
from service.store.lru import LockedLRU
from service.store.memory import MemoryStore
from service.store.near import NearCachedStore
from service.store.redis import RedisStore
from service.store.single_flight import Outcome, Unstored, fetch_or_compute

__all__ = [
    "DiskStore",
    "KeyLayout",
    "LockedLRU",
    "MemoryStore",
    "NearCachedStore",
    "Outcome",
    "RedisStore",
    "Store",
    "Unstored",
    "fetch_or_compute",
]
