"""The little markdown that the OpenAPI descriptions use, rendered as HTML for /docs.

Paragraphs, `#` headings, `-` lists and pipe tables; inline `code`, **bold** and [links](url).
Everything else is text: the input is escaped first, so no HTML passes through.
"""

from __future__ import annotations

import re
from html import escape

_CODE = re.compile(r"`([^`]+)`")
# **bold** hugs its text: "e ** x + x ** 2" is arithmetic, not bold
_BOLD = re.compile(r"\*\*(\S|\S[^*]*?\S)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_HEADING = re.compile(r"(#{1,4}) (.*)")


def inline(text: str) -> str:
    """One line of markdown as HTML: code spans first, so their insides stay literal."""
    pieces = _CODE.split(str(text))
    html = []
    for k, piece in enumerate(pieces):
        if k % 2:
            html.append(f"<code>{escape(piece)}</code>")
            continue
        piece = _BOLD.sub(r"<strong>\1</strong>", escape(piece))
        html.append(_LINK.sub(_link, piece))
    return "".join(html)


def _link(match: re.Match[str]) -> str:
    target = match.group(2)
    if "//" in target or target.lower().startswith(("javascript:", "data:")):
        return match.group(1)  # only links within the site
    return f'<a href="{target}">{match.group(1)}</a>'


def blocks(text: str, *, heading_offset: int = 1) -> str:
    """Markdown text as HTML blocks; `#` headings are shifted down by `heading_offset`."""
    html: list[str] = []
    for block in re.split(r"\n\s*\n", str(text).strip()):
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        heading = _HEADING.fullmatch(lines[0])
        if heading and len(lines) == 1:
            level = min(len(heading.group(1)) + heading_offset, 6)
            html.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif all(line.lstrip().startswith("|") for line in lines):
            html.append(_table(lines))
        elif all(line.lstrip().startswith("- ") for line in lines):
            items = "".join(f"<li>{inline(line.lstrip()[2:])}</li>" for line in lines)
            html.append(f"<ul>{items}</ul>")
        else:
            html.append(f"<p>{inline(' '.join(lines))}</p>")
    return "\n".join(html)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    header, *rows = lines
    rows = [row for row in rows if not re.fullmatch(r"[\s|:-]+", row)]
    head = "".join(f"<th>{inline(cell)}</th>" for cell in _cells(header))
    body = "".join(
        "<tr>" + "".join(f"<td>{inline(cell)}</td>" for cell in _cells(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
