"""The console's screenshots in the README: `.venv/bin/python -m tests.console.screenshots`.

It starts the same installation as the browser tests (`wg web`, SQLite, a recording SMTP
server), gives the next meeting some answers, and writes docs/console-*.png.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.console.test_console_in_a_browser import (
    DESKTOP,
    PHONE,
    _preview_an_announcement,
    _signed_in_page,
    running_installation,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
ANSWERS = [
    ("amara@riverbank.example", "yes", "", "Will bring the outreach report"),
    ("bopha@memory.example", "no", "ចាន់ សុខា", ""),
    ("sophea@justicevoices.example", "maybe", "", "Depends on the court hearing"),
]


def _answer(database: Path) -> None:
    """Some members have answered (as by their RSVP links), one naming a colleague."""
    with sqlite3.connect(database) as connection:
        for email, answer, substitute, note in ANSWERS:
            connection.execute(
                "UPDATE invitation SET answer = ?, answered_via = 'link', note = ?,"
                " substitute_name = ?, answered_at = invited_at"
                " WHERE contact_id = (SELECT id FROM contact WHERE email = ?)",
                (answer, note, substitute, email),
            )


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        running_installation(Path(folder)) as setup,
        sync_playwright() as playwright,
    ):
        _answer(Path(folder) / "wg.sqlite3")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = _signed_in_page(browser, setup, DESKTOP)
        shots = [
            ("console-overview.png", "/console?lang=en", DESKTOP),
            ("console-overview-km-phone.png", "/console?lang=km", PHONE),
            ("console-meeting.png", "/console/meetings/1?lang=en", DESKTOP),
            ("console-members-km.png", "/console/members?lang=km", DESKTOP),
            ("console-join-request-phone.png", "/console/requests/1?lang=en", PHONE),
        ]
        for name, path, viewport in shots:
            page.set_viewport_size(viewport)
            page.goto(setup.base + path)
            page.screenshot(path=str(DOCS / name), full_page=True)
        page.set_viewport_size(DESKTOP)
        _preview_an_announcement(page, setup.base, "en")
        page.screenshot(path=str(DOCS / "console-announcement-preview.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
