"""Request bodies seen before, by the SHA-256 of their bytes, mapped to their result hash.

Clients repeat byte-identical requests (the SDK, retries, dashboards). For those the result
hash is already known, so a cache hit needs no parsing, schema load, binding or canonical
hashing: digest the body, look up the hash, fetch the stored result. Bodies that differ only
in whitespace or key order parse to the same JSON value; `json_fingerprint` names that value
(orjson's sorted-key writing of it), so their hits skip all but the parse. The mapping is
exact: within one app (one configuration, one engine version) the same bytes, or the same
parsed value, always load to the same request, and only bodies that loaded successfully are
remembered.

Bodies over JSON_FINGERPRINT_MAX_BYTES get no parsed-value fingerprint: writing a big value out
again costs about a third of parsing it, on every miss, while a reformatted repeat of a big
graph is found almost as fast through its known structure (service/known_structures.py).
"""

from __future__ import annotations

import hashlib

import orjson

from service.store.lru import LockedLRU

JSON_FINGERPRINT_MAX_BYTES = 1 << 20


class KnownRequests:
    """A bounded LRU from (kind, SHA-256 of the body) to the request's result hash."""

    def __init__(self, size: int):
        self.size = size
        self._known: LockedLRU[bytes, str] = LockedLRU(max_items=size)

    def __len__(self) -> int:
        return len(self._known)

    @staticmethod
    def fingerprint(kind: str, body: bytes) -> bytes:
        """The key of a body sent to endpoint `kind`."""
        return hashlib.sha256(body, usedforsecurity=False).digest() + kind.encode()

    @staticmethod
    def json_fingerprint(kind: str, data: object, size: int) -> bytes | None:
        """The key of a parsed body of `size` bytes sent to endpoint `kind`; None when the body
        is over JSON_FINGERPRINT_MAX_BYTES or its writing could stand for two values (orjson
        writes NaN and infinities as null, as it writes null)."""
        if size > JSON_FINGERPRINT_MAX_BYTES:
            return None
        try:
            text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return None
        if b"null" in text:
            return None
        digest = hashlib.sha256(text, usedforsecurity=False).digest()
        return digest + b"json:" + kind.encode()

    def get(self, fingerprint: bytes) -> str | None:
        """The result hash of a body with this fingerprint, if one was loaded before."""
        return self._known.get(fingerprint)

    def put(self, fingerprint: bytes, result_hash: str) -> None:
        self._known.put(fingerprint, result_hash)
