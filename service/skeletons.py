"""A body's skeleton: its bytes with the number literals of its nodes' `value`s cut out.

A client evaluating one network at many points sends the same bytes every time but for the
numbers on its inputs. Once a skeleton is known to belong to a known structure
(service/known_structures.py), a body with that skeleton needs no parsing at all: its values
are the literals in the holes, read by the same JSON parser, and the rest of the body is the
rest of the body that made the skeleton known.

The holes are found by a pattern, `"value": <number literal>`, not by a parser, so a skeleton
becomes known only once it is proven to cut exactly the valued nodes' values (`holes_are_values`):
the body with a distinct number in each hole must parse to those numbers as the values of the
valued nodes, in listing order. Then every hole is the whole of one value token, and any other
number literal in it (a whole literal: the pattern is JSON's number grammar, taken greedily)
reads as that node's value, the bytes around it reading as they did.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from functools import cached_property

from schemas import BadJson, parse_json

# A node's `value` spelled as a number (JSON's grammar), the literal in group 1.
_VALUE_LITERAL = re.compile(
    rb'"value"[ \t\n\r]*:[ \t\n\r]*(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)'
)


@dataclass(frozen=True)  # no slots: the key is cached in the instance
class Skeleton:
    """A body sent to endpoint `kind`, where the cut-out literals were, and the skeleton's
    size: how many holes, and how many bytes are left. Its key is digested on first use: a
    body whose size no known skeleton has needs none."""

    kind: str
    body: bytes
    holes: list[tuple[int, int]]
    size: tuple[int, int]

    @cached_property
    def key(self) -> bytes:
        """SHA-256 of the endpoint, the size, the bytes left and where the holes were."""
        # the size fixes where the pieces end and the lengths begin: the key has one reading
        digest = hashlib.sha256(self.kind.encode() + b"\0", usedforsecurity=False)
        digest.update(struct.pack("<qq", *self.size))
        text = memoryview(self.body)
        lengths, start = [], 0
        for hole_start, hole_end in self.holes:
            digest.update(text[start:hole_start])
            lengths.append(hole_start - start)
            start = hole_end
        digest.update(text[start:])
        digest.update(struct.pack(f"<{len(lengths)}q", *lengths))
        return digest.digest()

    def values(self) -> list | None:
        """The numbers in the holes, read as the whole body's parse reads them; None if one
        does not read (the full parse then words the error)."""
        body = self.body
        literals = b",".join([body[start:end] for start, end in self.holes])
        try:
            return parse_json(b"[" + literals + b"]")
        except BadJson:
            return None


def skeleton_of(kind: str, body: bytes) -> Skeleton:
    """The skeleton of `body` sent to endpoint `kind`."""
    holes = [match.span(1) for match in _VALUE_LITERAL.finditer(body)]
    cut = sum(end - start for start, end in holes)
    return Skeleton(kind, body, holes, (len(holes), len(body) - cut))


def holes_are_values(skeleton: Skeleton, data: object, valued: list[int]) -> bool | None:
    """Whether the holes of `skeleton` are exactly the values of the nodes at `valued` (listing
    positions, in order) in `data`, the body as parsed; None when these values cannot tell (one
    equals the mark that would stand in for it, which would prove nothing)."""
    if len(skeleton.holes) != len(valued):
        return False
    marks = [float(j) + 0.5 for j in range(len(valued))]
    nodes = data["graph"]["nodes"]
    if any(nodes[i]["value"] == mark for i, mark in zip(valued, marks, strict=True)):
        return None
    try:
        marked = parse_json(_filled(skeleton, [b"%d.5" % j for j in range(len(valued))]))
        found = [marked["graph"]["nodes"][i]["value"] for i in valued]
    except (BadJson, KeyError, IndexError, TypeError):
        return False
    # n distinct marks at the n valued nodes: each hole is one node's value, in order
    pairs = zip(found, marks, strict=True)
    return all(type(value) is float and value == mark for value, mark in pairs)


def _filled(skeleton: Skeleton, literals: list[bytes]) -> bytes:
    """The skeleton with `literals` in its holes."""
    body, pieces, start = skeleton.body, [], 0
    for (hole_start, hole_end), literal in zip(skeleton.holes, literals, strict=True):
        pieces += (body[start:hole_start], literal)
        start = hole_end
    pieces.append(body[start:])
    return b"".join(pieces)
