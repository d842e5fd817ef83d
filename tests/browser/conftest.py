"""Real-browser fixtures: the app over real HTTP, and Chromium driven through Playwright."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from werkzeug.serving import make_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

PHONE = {"width": 360, "height": 740}
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drive the browser against SQLite only: the PostgreSQL runs add time, not coverage.

    The PostgreSQL variants are deselected (reported as such), not skipped: a skip would look
    like a missing test.
    """
    deselected = [item for item in items if _is_browser_test(item) and "[postgresql" in item.nodeid]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def _is_browser_test(item: pytest.Item) -> bool:
    return HERE in Path(item.path).resolve().parents


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The `app` fixture's Flask app served over HTTP on 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def page(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A fresh browser context (no cookies) on a 360 px wide phone screen, English locale."""
    context = browser.new_context(viewport=PHONE, locale="en-US")
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def press_and_wait(page: Page, button: str, *, posts_to: str, status: int) -> None:
    """Press a form's button, check the status of its POST to a path containing `posts_to`,
    and return once the answer page has loaded, style sheet and all."""
    page.evaluate("window.wgPageBeforeSending = true")
    with page.expect_response(lambda r: r.request.method == "POST" and posts_to in r.url) as answer:
        page.get_by_role("button", name=button).click()
    assert answer.value.status == status
    page.wait_for_function(
        "() => !window.wgPageBeforeSending && document.readyState === 'complete'"
    )


# Every form control named (label, aria-label/-labelledby, or a button's own text), radio
# groups each in one fieldset with a legend, no repeated ids; the honeypot (.trap) aside.
UNNAMED_CONTROLS = """() => {
  const text = (el) => (el ? el.textContent.trim() : '');
  const problems = [];
  const controls = [...document.querySelectorAll('input, select, textarea, button')]
    .filter(el => el.type !== 'hidden' && !el.closest('.trap'));
  for (const el of controls) {
    const label = el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
    const labelledBy = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
      .map(id => text(document.getElementById(id))).join(' ');
    const named = text(label) || (el.getAttribute('aria-label') || '').trim() || labelledBy
      || (el.tagName === 'BUTTON' && text(el));  // a button is named by its own text
    if (!named) problems.push(`${el.outerHTML.slice(0, 80)} has no label`);
  }
  const groups = new Map();
  for (const radio of document.querySelectorAll('input[type=radio]')) {
    if (radio.closest('.trap')) continue;
    const fieldset = radio.closest('fieldset');
    const legend = fieldset && fieldset.querySelector(':scope > legend');
    if (!text(legend)) problems.push(`radio ${radio.id} is not in a fieldset with a legend`);
    if (groups.has(radio.name) && groups.get(radio.name) !== fieldset)
      problems.push(`radio group ${radio.name} is split over several fieldsets`);
    groups.set(radio.name, fieldset);
  }
  const ids = [...document.querySelectorAll('[id]')].map(el => el.id);
  const repeated = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (repeated.length) problems.push(`repeated ids: ${repeated}`);
  return {problems, count: controls.length, groups: [...groups.keys()]};
}"""


def assert_fits_a_phone(page: Page) -> None:
    """Nothing scrolls sideways or sticks out at the page's 360 px width."""
    widths = page.evaluate(
        "() => ({doc: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
        " viewport: window.innerWidth})"
    )
    assert widths["viewport"] == 360
    assert widths["doc"] <= 360, f"the page scrolls sideways on a 360 px phone: {widths}"
    assert widths["body"] <= 360, f"the page scrolls sideways on a 360 px phone: {widths}"
    wider = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
             .filter(el => !el.closest('.trap, .skip-link, .visually-hidden'))
             .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
             .map(el => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className)"""
    )
    assert wider == [], f"elements stick out past the right edge: {wider}"
