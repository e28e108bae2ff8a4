"""The built `ci` book in headless Chromium with the network closed.

Every request to a host other than this machine (loopback) is aborted and recorded, and a
page fails if it made any: the book must not even try the network (a CDN script tag fails
here although the page may still look fine). For each page of the table of contents: no
such request, no JavaScript error or console error beyond :data:`ALLOWED_ERRORS`, and every
chart drawn with marks; on pages with a step slider, moving it must change the chart.
Screenshots go to ``test-artifacts/``; with ``LHP_UPDATE_SCREENSHOT=1`` the README's
``docs/book.png`` is refreshed from the real book.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lhp_core import book
from lhp_core.viz import charts, offline

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("LHP_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
# Marks vega drew inside each chart container (vega-embed adds class "vega-embed" to it).
COUNT_MARKS = """() => [...document.querySelectorAll('.vega-embed, [id^="altair-viz"], .lhp-chart')]
  .filter((el, i, all) => !all.some(o => o !== el && o.contains(el)))
  .map(el => ({id: el.id, marks: el.querySelectorAll('svg .role-mark > *').length
               + el.querySelectorAll('canvas').length, text: el.innerText.slice(0, 200)}))"""
#: Page errors and console errors tolerated (a substring of the message -> why).
ALLOWED_ERRORS = {
    # jupyter-book 1 includes sphinx-thebe's loader script twice on every page; thebe is never
    # launched, and the second copy's redeclaration is the theme's error, not the book's.
    "THEBE_JS_URL": "sphinx-thebe's loader included twice by jupyter-book 1",
    # pydata-sphinx-theme console.error()s when the theme option default_mode is empty (jupyter-book
    # 1 leaves it so) and the browser has no stored light/dark choice; it then uses "auto".
    "Got invalid theme mode: . Resetting to auto.": "pydata-sphinx-theme with an empty default_mode",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ALL_DRAWN = """() => { const c = [...document.querySelectorAll('.lhp-chart, [id^="altair-viz"]')];
  return c.every(el => el.querySelector('svg .role-mark > *, canvas') || el.innerText.includes('failed')); }"""

playwright = pytest.importorskip("playwright.sync_api")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test output should show failures, not GETs
        pass


@pytest.fixture(scope="module")
def server(ci_book: book.BookRun) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(ci_book.html))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as srv:
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{srv.server_address[1]}"
        srv.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: install it with `apt-get install -y chromium` or set LHP_CHROMIUM")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield b
        b.close()


def _local(url: str) -> bool:
    parts = urlsplit(url)
    return (parts.scheme in ("data", "blob", "file")
            or (parts.scheme in ("http", "https") and parts.hostname in LOOPBACK))


def _closed_page(browser):
    """A page whose every request to another host is aborted and remembered in ``page.blocked``.

    ``page.errors`` collects uncaught exceptions and console errors.
    """
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.blocked = []  # type: ignore[attr-defined]
    page.errors = []  # type: ignore[attr-defined]

    def route(r) -> None:
        if _local(r.request.url):
            r.continue_()
        else:
            page.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    return page


def _unexpected(errors: list[str]) -> list[str]:
    return [e for e in errors if not any(allowed in e for allowed in ALLOWED_ERRORS)]


def _pages() -> list[str]:
    return [("index" if i == 0 else name) for i, name in enumerate(book.toc_files(ROOT))]


@pytest.mark.parametrize("name", _pages())
def test_page_charts_draw_offline(browser, server: str, name: str) -> None:
    page = _closed_page(browser)
    page.goto(f"{server}/{name}.html")
    page.wait_for_function(ALL_DRAWN, timeout=60_000)
    found = page.evaluate(COUNT_MARKS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    # Widget state in an executed chapter shows up here as require.js and the widget manager from a CDN.
    assert not page.blocked, f"{name}.html requested other hosts (the book must work offline): {page.blocked}"
    errors = _unexpected(page.errors)
    assert not errors, f"{name}.html: JavaScript or console errors {errors}"
    failed = [c for c in found if c["marks"] == 0]
    assert not failed, f"{name}.html: charts without marks {failed}"
    if name in book.chapters(ROOT):
        assert found, f"{name}.html has no charts"
    page.close()


def _chart_svgs(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.lhp-chart')].map(el => el.innerHTML)")


def test_step_slider_changes_chart(browser, server: str) -> None:
    moved = 0
    for name in book.chapters(ROOT):
        page = _closed_page(browser)
        page.goto(f"{server}/{name}.html")
        page.wait_for_function(ALL_DRAWN, timeout=60_000)
        sliders = page.locator(".lhp-chart .vega-bindings input[type=range]")
        for i in range(sliders.count()):
            slider = sliders.nth(i)
            if "step index" not in slider.locator("xpath=..").inner_text():
                continue  # other sliders (e.g. model parameters) are not step scrubbers
            before = _chart_svgs(page)
            slider.scroll_into_view_if_needed()
            slider.focus()
            start = slider.input_value()
            page.keyboard.press("Home" if int(start) > 0 else "End")
            page.wait_for_timeout(300)
            after = _chart_svgs(page)
            assert slider.input_value() != start
            assert after != before, f"{name}.html: moving step slider {i} did not change any chart"
            moved += 1
            if moved == 1:
                ARTIFACTS.mkdir(exist_ok=True)
                slider.locator("xpath=ancestor::div[contains(@class,'lhp-chart')]").screenshot(
                    path=str(ARTIFACTS / f"{name}-scrubbed.png"))
        if name == "timeline":
            _readme_screenshot(page)
        page.close()
    assert moved >= 1, "no chapter has a step slider (lhp_core.viz.charts.step_scrubber)"


def _readme_screenshot(page) -> None:
    # The Timeline's panels: every study's measures and events on one axis, the book's question.
    page.evaluate("() => { document.getElementById('every-measure-on-one-axis').scrollIntoView(); }")
    page.wait_for_timeout(200)
    path = ARTIFACTS / "book-timeline.png"
    page.screenshot(path=str(path))
    if os.environ.get("LHP_UPDATE_SCREENSHOT") == "1":
        shutil.copy2(path, ROOT / "docs" / "book.png")


def test_standalone_page_draws_offline(browser, tmp_path: Path) -> None:
    import pandas as pd

    table = pd.DataFrame({"step": [0, 1, 2, 4] * 2, "model": ["s"] * 4 + ["m"] * 4,
                          "tokens_seen": [0, 8, 16, 32] * 2, "loss": [6.0, 5.0, 4.5, 4.0, 6.0, 4.8, 4.2, 3.7]})
    chart = charts.step_scrubber(charts.line_over_training(table, "loss", log_x=False), [0, 1, 2, 4])
    path = offline.save_html(chart, tmp_path / "chart.html")
    page = _closed_page(browser)
    page.goto(path.as_uri())
    page.wait_for_function(ALL_DRAWN, timeout=30_000)
    (chart_info,) = page.evaluate(COUNT_MARKS)
    assert chart_info["marks"] > 0 and not page.errors and not page.blocked, (chart_info, page.errors, page.blocked)


def test_a_cdn_request_fails_the_page_check(browser, tmp_path: Path) -> None:
    """The check above can fail: a page with a CDN script tag (what widget state adds) is caught."""
    path = tmp_path / "cdn.html"
    path.write_text("<!DOCTYPE html><html><head><script src='https://cdnjs.cloudflare.com/ajax/libs/require.js/"
                    "2.3.4/require.min.js'></script></head><body>x</body></html>")
    page = _closed_page(browser)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert page.blocked == ["https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js"]
    assert _unexpected(page.errors), "the aborted script should be reported as a console error"
    assert not _local("http://example.org/x") and _local("http://127.0.0.1:8000/a.html") and _local("data:,x")
    page.close()
    page.close()


#: aria-labels vega gives the marks of the chart whose text contains the argument.
MARK_LABELS = (
    "(text) => { const c = [...document.querySelectorAll('.lhp-chart')].find(el => el.innerText.includes(text));\n"
    "  return c ? [...c.querySelectorAll('path[aria-label], text[aria-label]')]"
    ".map(p => p.getAttribute('aria-label')) : null; }"
)
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.mark.parametrize("name", _pages())
def test_page_reads_as_a_book(browser, server: str, name: str, ci_records: dict) -> None:
    """Findings first, code folded until toggled, nothing wider than the window; the first screen is saved."""
    page = _closed_page(browser)
    page.goto(f"{server}/{name}.html")
    page.wait_for_function(ALL_DRAWN, timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-first-screen.png"))
    assert page.evaluate(OVERFLOW) <= 0, f"{name}.html is wider than the window"
    inputs = page.locator(".cell_input")
    assert all(not inputs.nth(i).is_visible() for i in range(inputs.count())), f"{name}.html shows code unfolded"
    if name in book.chapters(ROOT):
        titles = page.locator(".admonition .admonition-title").all_inner_texts()
        assert "What this chapter found" in titles, f"{name}.html has no findings box"
        box = page.locator(".admonition:has(.admonition-title:text('What this chapter found'))")
        first_chart = page.locator(".lhp-chart").first
        assert box.bounding_box()["y"] < first_chart.bounding_box()["y"], f"{name}.html: findings come after a chart"
        if inputs.count():
            page.locator("summary:has-text('Show code cell source')").first.click()
            assert inputs.first.is_visible()
    else:  # the intro: one table row per recorded finding, each with a verdict
        from lhp_core import findings

        rows = page.locator("table:has(th:has-text('verdict')) tbody tr")
        expected = findings.from_records(ci_records)
        assert rows.count() == len(expected) > 0
        verdicts = [rows.nth(i).locator("td").last.inner_text().strip() for i in range(rows.count())]
        assert verdicts == list(expected.verdict)
    page.close()


def test_clicking_a_head_or_an_expert_changes_the_detail(browser, server: str) -> None:
    page = _closed_page(browser)
    page.goto(f"{server}/reading.html")
    page.wait_for_function(ALL_DRAWN, timeout=60_000)

    def attention() -> list[str]:
        return [x for x in page.evaluate(MARK_LABELS, "click a head") if "attention:" in x]

    heads = page.locator(".lhp-chart:has-text('click a head') path[aria-label*='induction:']")
    assert heads.count() >= 2
    shown = set()
    for i in range(2):
        heads.nth(i).click()
        page.wait_for_timeout(300)
        shown.add(tuple(attention()))
    assert len(shown) == 2 and all(shown), "clicking another head did not change its attention pattern"
    page.goto(f"{server}/experts.html")
    page.wait_for_function(ALL_DRAWN, timeout=60_000)

    def sentences() -> list[str]:
        return [x for x in page.evaluate(MARK_LABELS, "click an expert") if x.startswith("rank")]

    cells = page.locator(".lhp-chart:has-text('click an expert') path[aria-label*='unit:']")
    before = sentences()
    units = [cells.nth(i).get_attribute("aria-label").split("unit: ")[1].split(";")[0] for i in range(cells.count())]
    other = next(i for i, u in enumerate(units) if u != units[0])
    cells.nth(other).click()
    page.wait_for_timeout(300)
    assert before and sentences() and sentences() != before, "clicking another expert did not change its sentences"
    page.close()
