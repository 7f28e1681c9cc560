"""Where things live in a shared key-value store (Redis, Redis Cluster).

Every key starts with the engine version, so results of an older engine are never read, and
puts the hash it names in braces: Redis Cluster places a key by the part in braces (its hash
tag), so a result and its single-flight claim share one slot and may be written in one
pipeline, on a single server or a cluster alike.

    chainrule:v<engine version>:{<result hash>}:result   a finished response body
    chainrule:v<engine version>:{<result hash>}:claim    who is computing it (single flight)
    chainrule:v<engine version>:{<graph id>}:graph       a registered graph (CONTRACT section 7)
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "chainrule"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """The keys of one engine version."""

    engine_version: str

    def _key(self, tag: str, kind: str) -> str:
        return f"{NAMESPACE}:v{self.engine_version}:{{{tag}}}:{kind}"

    def result(self, digest: str) -> str:
        return self._key(digest, "result")

    def claim(self, digest: str) -> str:
        return self._key(digest, "claim")

    def graph(self, graph_id: str) -> str:
        return self._key(graph_id, "graph")
