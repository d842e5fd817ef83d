"""`--online-url` takes a web link only: it becomes a link in every invitation."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.cli import cli as wg
from service.models import Meeting, MeetingSeries

NOT_WEB_LINKS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "meet.example/wg",
    "https://",
    "https://meet.example/wg room",
    "https://meet.example/wg\x07",
]
ADD = ["--title", "Monthly meeting", "--starts-at", "2027-01-14T14:00", "--location", "Hall"]


def run(app, *args: str):
    return app.test_cli_runner().invoke(wg, list(args))


def one_clear_line(result) -> str:
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "--online-url" in line and "http" in line
    return line


@pytest.mark.parametrize("url", NOT_WEB_LINKS)
def test_meetings_add_refuses_a_link_that_is_not_http_or_https(app, db, url):
    result = run(app, "meetings", "add", *ADD, "--online-url", url)

    one_clear_line(result)
    assert db.scalar(select(func.count()).select_from(Meeting)) == 0


def test_series_add_refuses_a_script_link(app, db):
    result = run(
        app, "series", "add", *ADD, "--rrule", "FREQ=MONTHLY;BYDAY=2TH",
        "--online-url", "javascript:alert(1)",
    )  # fmt: skip

    one_clear_line(result)
    assert db.scalar(select(func.count()).select_from(MeetingSeries)) == 0


def test_reschedule_refuses_a_script_link_and_keeps_the_old_one(app, db):
    added = run(app, "meetings", "add", *ADD, "--online-url", "https://meet.example/wg")
    assert added.exit_code == 0, added.output

    result = run(app, "meetings", "reschedule", "1", "--online-url", "javascript:alert(1)")

    one_clear_line(result)
    assert db.scalar(select(Meeting.online_url)) == "https://meet.example/wg"


@pytest.mark.parametrize("url", ["https://meet.example/wg?pwd=a1&x=2", "HTTP://meet.example/"])
def test_http_and_https_links_are_kept(app, db, url):
    result = run(app, "meetings", "add", *ADD, "--online-url", url)

    assert result.exit_code == 0, result.output
    assert db.scalar(select(Meeting.online_url)) == url
