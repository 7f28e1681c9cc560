"""If-None-Match on GET /v1/results/{hash}, read as RFC 9110 section 13.1.2 reads it.

The field is `*` or a comma-separated list of entity-tags, each a quoted string with an
optional `W/` in front. If-None-Match compares weakly: `W/"<hash>"` names the result as
`"<hash>"` does. A list member that is not an entity-tag (an unquoted hash, say) names
nothing: it is skipped, and the rest of the list still counts. A result never changes under
its hash, so the weak and the strong tag stand for the same bytes.
"""

from __future__ import annotations

import re

# One list member and the comma after it: an entity-tag (the quoted part captured), or any
# other text up to the next comma. The opaque part of a tag holds no double quote.
_MEMBER = re.compile(r'[ \t]*(?:(?:W/)?"([^"]*)"[ \t]*(?=,|\Z)|[^,]*)(?:,|\Z)')


def entity_tags(field: str) -> list[str]:
    """The opaque parts of the entity-tags listed in an If-None-Match field value."""
    tags: list[str] = []
    position = 0
    while position < len(field):
        member = _MEMBER.match(field, position)
        if member[1] is not None:
            tags.append(member[1])
        position = member.end()
    return tags


def names_result(fields: list[str], digest: str) -> bool:
    """Whether the If-None-Match field lines `fields` name the result stored as `digest`:
    `*` (any result), or one of the entity-tags, weak or strong, is `"<digest>"`."""
    field = ", ".join(fields)
    if field.strip(" \t") == "*":
        return True
    return digest in entity_tags(field)
