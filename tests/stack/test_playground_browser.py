"""The playground page in a real browser: headless Debian chromium driven by Playwright.

The real app (in-process cache) is served by a werkzeug server thread on a free loopback port;
the page is loaded, run, switched to another classic circuit, and fed a faulty graph, and the
tests read what a person would see: the drawn circuit, the node table, the error by its node.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from engine import OP_TABLE
from service import create_app
from tests.loopback import served_on_loopback

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The module's tests share one server and so its cache: a repeated run is marked "(cached)".
OUTPUT_F = re.compile(r"^f = -12( \(cached\))?$")



def chromium_executable(path: Path = CHROMIUM) -> Path:
    """The browser to drive. Missing, the tests fail (never skip): a green run must have
    driven the page in a real browser."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"Debian's chromium is not installed at {path}: run "
            "`scripts/install-system-deps chromium` (`make test` does)",
            pytrace=False,
        )
    return path


def test_a_missing_browser_fails_the_run_instead_of_skipping_it(tmp_path: Path) -> None:
    assert chromium_executable() == CHROMIUM
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed"):
        chromium_executable(tmp_path / "chromium")
    marks = getattr(sys.modules[__name__], "pytestmark", [])
    assert not [mark for mark in marks if mark.name in ("skip", "skipif")]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = create_app({"REDIS_URL": None, "PROMETHEUS_MULTIPROC_DIR": None})
    with served_on_loopback(app) as url:  # a free port, so parallel runs cannot collide
        yield f"{url}/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_executable()), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.goto(base_url)
    try:
        yield page
    finally:
        context.close()
    assert script_errors == [], "the page's script raised"


def cell(page: Page, node: str, column: str) -> str:
    return page.locator(f'#nodes tbody tr[data-node="{node}"] td.{column}').inner_text()


def run_and_wait(page: Page, rows: int) -> None:
    page.click("#run")
    expect(page.locator("#nodes tbody tr")).to_have_count(rows)
    expect(page.locator("#status")).to_have_text("")
    expect(page.locator("#run")).to_be_enabled()


def test_the_default_circuit_runs_and_is_drawn(page: Page, tmp_path: Path) -> None:
    assert page.title() == "chainrule playground"
    assert '"id": "x", "op": "input", "value": -2' in page.input_value("#editor")
    run_and_wait(page, 5)

    svg = page.locator("#diagram svg")
    expect(svg).to_have_count(1)
    drawn = svg.locator("text").all_text_contents()
    assert {"x", "y", "z", "-2", "5", "-4", "3", "-12", "1"} <= set(drawn)
    assert svg.bounding_box()["width"] > 200

    values = [cell(page, n, "value") for n in ("x", "y", "z", "q", "f")]
    assert values == ["-2", "5", "-4", "3", "-12"]
    assert [cell(page, n, "grad") for n in ("x", "y", "z")] == ["-4", "-4", "3"]
    assert cell(page, "f", "op") == "mul"
    expect(page.locator("#output-summary")).to_have_text(OUTPUT_F)
    page.screenshot(path=tmp_path / "playground-default.png", full_page=True)


def test_another_classic_circuit_from_the_menu(page: Page, tmp_path: Path) -> None:
    page.select_option("#circuit", label="sigmoid neuron, gate by gate")
    assert '"id": "w0", "op": "input", "value": 2' in page.input_value("#editor")
    run_and_wait(page, 13)
    assert cell(page, "f", "value") == "0.7311"
    grads = {n: cell(page, n, "grad") for n in ("w0", "x0", "w1", "x1", "w2")}
    assert grads == {"w0": "-0.1966", "x0": "0.3932", "w1": "-0.3932", "x1": "-0.5898",
                     "w2": "0.1966"}
    drawn = set(page.locator("#diagram svg text").all_text_contents())
    assert {"0.731", "1/x", "exp", "*-1", "+1", "-0.197", "0.393", "-0.59"} <= drawn
    page.screenshot(path=tmp_path / "playground-sigmoid.png", full_page=True)

    page.select_option("#circuit", label="routing: 2(xy + max(z, w))")
    run_and_wait(page, 8)
    assert [cell(page, n, "grad") for n in ("x", "y", "z", "w")] == ["-8", "6", "2", "0"]
    assert cell(page, "f", "value") == "-20"


def test_an_error_is_shown_next_to_the_node_it_names(page: Page, tmp_path: Path) -> None:
    run_and_wait(page, 5)
    source = page.input_value("#editor")
    page.fill("#editor", source.replace('"inputs": ["x", "y"]', '"inputs": ["x", "nope"]'))
    page.click("#run")

    row = page.locator('#nodes tbody tr.has-error[data-node="q"]')
    expect(row).to_have_count(1)
    expect(row.locator(".row-error")).to_contain_text("unknown_node")
    expect(row.locator(".row-error")).to_contain_text("nope")
    expect(page.locator("#nodes tbody tr.has-error")).to_have_count(1)
    box = page.locator("#editor-error")
    expect(box).to_be_visible()
    expect(box.locator(".node-badge")).to_have_text("q")
    expect(box).to_contain_text("line 7")
    expect(page.locator("#diagram svg")).to_have_count(0)
    page.screenshot(path=tmp_path / "playground-error.png", full_page=True)

    page.fill("#editor", source)
    run_and_wait(page, 5)
    expect(page.locator("#editor-error")).to_be_hidden()
    expect(page.locator("#nodes tbody tr.has-error")).to_have_count(0)


def test_errors_before_any_table_are_shown_by_the_editor(page: Page) -> None:
    source = page.input_value("#editor")
    page.fill("#editor", source.replace('"output": "f"', '"output": "nope"'))
    page.click("#run")
    box = page.locator("#editor-error")
    expect(box).to_be_visible()
    expect(box.locator(".node-badge")).to_have_text("nope")
    expect(box).to_contain_text("unknown_node")

    page.fill("#editor", source[:-3])
    page.click("#run")
    expect(box).to_contain_text("valid JSON")
    expect(box.locator(".node-badge")).to_have_count(0)


def test_the_editor_indents_with_tab_and_runs_with_ctrl_enter(page: Page) -> None:
    page.fill("#editor", "")
    page.focus("#editor")
    page.keyboard.press("Tab")
    page.keyboard.type("x")
    assert page.input_value("#editor") == "  x"
    page.keyboard.press("Shift+Tab")
    assert page.input_value("#editor") == "x"

    page.select_option("#circuit", index=0)
    page.focus("#editor")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#diagram svg")).to_have_count(1)
    expect(page.locator("#output-summary")).to_have_text(OUTPUT_F)


def test_static_files_are_served_with_relative_links(page: Page, base_url: str) -> None:
    html = page.content()
    assert 'href="static/playground.css"' in html and 'src="static/playground.js"' in html
    assert "http://" not in html.replace(base_url, "") and "https://" not in html
    for name in ("playground.js", "playground.css"):
        response = page.request.get(f"{base_url}static/{name}")
        assert response.ok, name


# ---------------------------------------------------------------- issue 15


def test_the_default_circuit_is_drawn_on_load(page: Page, tmp_path: Path) -> None:
    expect(page.locator("#diagram svg")).to_have_count(1)
    expect(page.locator("#nodes tbody tr")).to_have_count(5)
    expect(page.locator("#output-summary")).to_have_text(OUTPUT_F)
    expect(page.locator("#circuit option:checked")).to_have_text("(x + y) · z")


def test_results_are_marked_stale_after_a_json_error(page: Page, tmp_path: Path) -> None:
    expect(page.locator("#diagram svg")).to_have_count(1)
    pane = page.locator("#results")
    expect(pane).not_to_have_class(re.compile("stale"))
    source = page.input_value("#editor")
    page.fill("#editor", source[:-3])
    page.click("#run")
    expect(page.locator("#editor-error")).to_contain_text("valid JSON")
    expect(pane).to_have_class(re.compile("stale"))
    expect(page.locator("#stale-note")).to_be_visible()
    page.screenshot(path=tmp_path / "playground-stale.png", full_page=True)
    page.fill("#editor", source)  # back to what the pane shows: current again
    expect(pane).not_to_have_class(re.compile("stale"))
    expect(page.locator("#stale-note")).to_be_hidden()


def test_the_menu_follows_the_editor(page: Page) -> None:
    expect(page.locator("#nodes tbody tr")).to_have_count(5)
    source = page.input_value("#editor")
    page.fill("#editor", source.replace('"value": -2', '"value": -3'))
    expect(page.locator("#circuit option:checked")).to_have_text("(edited)")
    page.select_option("#circuit", index=0)  # the same circuit again reloads and runs it
    assert page.input_value("#editor") == source
    expect(page.locator("#circuit option:checked")).to_have_text("(x + y) · z")
    expect(page.locator("#output-summary")).to_have_text(OUTPUT_F)


def test_format_pretty_prints_the_editor(page: Page) -> None:
    source = page.input_value("#editor")
    page.fill("#editor", json.dumps(json.loads(source)))  # all on one line
    expect(page.locator("#circuit option:checked")).to_have_text("(edited)")
    page.click("#format")
    assert page.input_value("#editor") == source
    expect(page.locator("#circuit option:checked")).to_have_text("(x + y) · z")
    page.fill("#editor", "{oops")
    page.click("#format")
    expect(page.locator("#editor-error")).to_contain_text("valid JSON")
    assert page.input_value("#editor") == "{oops"


def test_tensors_and_long_lines_stay_inside_their_cards(page: Page, tmp_path: Path) -> None:
    # six elements are listed one by one, each to four digits: long cells
    matrix = [[-1.23456789e-7 * (1 + i + j) for j in range(3)] for i in range(2)]
    body = {"graph": {"nodes": [
        {"id": "a_rather_long_weight_matrix_name", "op": "input", "value": matrix},
        {"id": "t", "op": "scale", "inputs": ["a_rather_long_weight_matrix_name"],
         "attrs": {"a": -3.3333333e-7}},
        {"id": "s", "op": "sum", "inputs": ["t"]}], "output": "s"}}
    page.fill("#editor", json.dumps(body))
    run_and_wait(page, 3)
    page.screenshot(path=tmp_path / "playground-tensor.png", full_page=True)
    card = page.locator("#results").bounding_box()
    for column in ("value", "grad"):
        box = page.locator(f'#nodes tbody tr[data-node="t"] td.{column}').bounding_box()
        assert box["x"] + box["width"] <= card["x"] + card["width"]
    editor = page.locator("#editor")
    assert editor.evaluate("e => e.scrollWidth <= e.clientWidth")  # long lines wrap


def test_the_fork_shows_each_wires_share_and_the_table_the_total(page: Page) -> None:
    page.select_option("#circuit", label="staged f(x, y) = (x + σ(y)) / (σ(x) + (x + y)²)")
    expect(page.locator("#nodes tbody tr")).to_have_count(10)
    drawn = set(page.locator("#diagram svg text").all_text_contents())
    assert {"0.512", "-0.0358", "1.58", "Σ 2.06"} <= drawn
    assert cell(page, "x", "grad") == "2.06"


def test_docs_and_playground_link_each_other_and_have_an_icon(page: Page, base_url: str) -> None:
    assert page.locator('link[rel="icon"]').get_attribute("href") == "static/favicon.svg"
    page.click("text=API docs")
    expect(page).to_have_url(f"{base_url}docs")
    expect(page.locator("h1")).to_contain_text("chainrule")
    assert page.locator('link[rel="icon"]').get_attribute("href") == "static/favicon.svg"
    assert page.request.get(f"{base_url}static/favicon.svg").ok
    assert page.request.get(f"{base_url}favicon.ico").ok
    # one error section, markdown rendered, the op catalog a table
    assert page.get_by_role("heading", name="Errors", exact=True).count() == 1
    assert page.locator("text=Every error, for every status").count() == 1
    assert "`" not in page.locator("body").inner_text()
    expect(page.locator("#ops + p + table tr")).to_have_count(len(OP_TABLE) + 1)
    page.click("text=Playground")
    expect(page).to_have_url(base_url)


# ---------------------------------------------------------------- a phone's width

PHONE = {"width": 375, "height": 812}
STAGED = "staged f(x, y) = (x + σ(y)) / (σ(x) + (x + y)²)"

# How many line boxes a cell's text takes: a number broken in two ("0.952" over "6") takes 2.
LINE_BOXES = """cell => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return range.getClientRects().length;
}"""

# The darkest and the lightest grey in a strip `width` px wide at the box's left or right inner
# edge, read back from a screenshot of the box (drawn on a canvas in the page itself).
EDGE_GREYS = """async ([png, side, width]) => {
  const image = new Image();
  image.src = "data:image/png;base64," + png;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const border = 2;  // the box's own border, antialiased
  const x = side === "left" ? border : image.width - border - width;
  const rows = Math.floor(image.height / 3);  // the middle third: clear of the rounded corners
  const { data } = context.getImageData(x, rows, width, rows);
  const greys = [];
  for (let i = 0; i < data.length; i += 4) greys.push(Math.min(data[i], data[i + 1], data[i + 2]));
  return [Math.min(...greys), Math.max(...greys)];
}"""


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        context.close()


def scroll_width(page: Page) -> int:
    return page.evaluate("document.scrollingElement.scrollWidth")


def edge_greys(page: Page, box: str, side: str) -> list[int]:
    png = base64.b64encode(page.locator(box).screenshot()).decode()
    return page.evaluate(EDGE_GREYS, [png, side, 4])


def test_the_docs_fit_a_phone_and_their_tables_scroll_in_their_own_box(
    phone: Page, base_url: str, tmp_path: Path
) -> None:
    phone.goto(f"{base_url}docs")
    assert scroll_width(phone) <= phone.evaluate("window.innerWidth") == PHONE["width"]
    viewport = phone.evaluate("document.querySelector('meta[name=viewport]')?.content ?? ''")
    assert "width=device-width" in viewport  # else a phone lays the page out 980 px wide
    catalog = phone.locator("#ops + p + table")
    assert catalog.evaluate("t => t.scrollWidth > t.clientWidth")  # wide: it scrolls itself
    phone.screenshot(path=tmp_path / "docs-phone.png", full_page=True)


def test_the_playground_fits_a_phone_and_never_breaks_a_number(
    phone: Page, base_url: str, tmp_path: Path
) -> None:
    phone.goto(base_url)
    phone.select_option("#circuit", label=STAGED)
    expect(phone.locator("#nodes tbody tr")).to_have_count(10)
    expect(phone.locator("#diagram svg")).to_contain_text("Σ 2.06")
    phone.screenshot(path=tmp_path / "playground-phone.png", full_page=True)
    assert scroll_width(phone) <= phone.evaluate("window.innerWidth") == PHONE["width"]

    numbers = phone.locator("#nodes tbody td.num")
    expect(numbers).to_have_count(20)
    assert cell(phone, "sigx", "value") == "0.9526"
    assert [td.evaluate(LINE_BOXES) for td in numbers.all()] == [1] * 20
    one_line = phone.locator('#nodes tbody tr[data-node="x"] td.value').evaluate(
        "td => td.offsetHeight")
    assert numbers.evaluate_all("tds => tds.map(td => td.offsetHeight)") == [one_line] * 20


def test_the_diagram_shows_the_side_it_scrolls_to(phone: Page, base_url: str) -> None:
    phone.goto(base_url)
    phone.select_option("#circuit", label=STAGED)
    expect(phone.locator("#diagram svg")).to_contain_text("Σ 2.06")  # this circuit's drawing
    diagram = phone.locator("#diagram")
    assert diagram.evaluate("d => d.scrollWidth > d.clientWidth")  # too wide for a phone
    white = 255
    # at the start: a shadow on the right, where more is to see, none on the left
    assert edge_greys(phone, "#diagram", "left") == [white, white]
    assert edge_greys(phone, "#diagram", "right")[1] < white - 20
    diagram.evaluate("d => { d.scrollLeft = d.scrollWidth; }")
    assert edge_greys(phone, "#diagram", "left")[1] < white - 20
    assert edge_greys(phone, "#diagram", "right") == [white, white]
