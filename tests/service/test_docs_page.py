"""/docs reads as documentation (issue 15): one error section, markdown rendered, the op
catalog as a table, links to the playground, an icon."""

from __future__ import annotations

from html.parser import HTMLParser

from engine import OP_TABLE
from service.site.markdown import blocks, inline


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name == "href"]

    def handle_data(self, data):
        self.parts.append(data)


def _page(client) -> tuple[str, _Text]:
    html = client.get("/docs").get_data(as_text=True)
    text = _Text()
    text.feed(html)
    return html, text


def test_the_error_codes_are_stated_once(client):
    html, text = _page(client)
    assert " ".join(text.parts).count("Every error, for every status") == 1
    assert html.count("<h3>Errors</h3>") == 1


def test_markdown_is_rendered_not_shown(client):
    html, text = _page(client)
    assert "`" not in "".join(text.parts)
    assert "<code>too_large</code>" in html


def test_the_op_catalog_is_a_table(client):
    html, _ = _page(client)
    catalog = html.split('<h2 id="ops">')[1].split("</table>")[0]
    assert catalog.count("<tr>") == len(OP_TABLE) + 1
    assert "<td><code>matmul</code></td>" in catalog


def test_docs_link_the_playground_and_name_an_icon(client):
    _, text = _page(client)
    assert "./" in text.links and "static/favicon.svg" in text.links
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert b'href="docs"' in client.get("/").data


def test_markdown_escapes_and_keeps_code_literal():
    assert inline("a `<b>` **c** [d](docs#ops)") == (
        'a <code>&lt;b&gt;</code> <strong>c</strong> <a href="docs#ops">d</a>')
    assert inline("[x](https://elsewhere.example)") == "x"  # no links off the site
    assert blocks("## T\n\n| a | b |\n|---|---|\n| `1` | 2 |\n\n- one\n- two") == (
        "<h3>T</h3>\n<table><tr><th>a</th><th>b</th></tr><tr><td><code>1</code></td>"
        "<td>2</td></tr></table>\n<ul><li>one</li><li>two</li></ul>")


def test_powers_are_not_bold():
    assert inline("e ** x + x ** 2") == "e ** x + x ** 2"
