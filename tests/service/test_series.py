"""`wg series`: a rule's dates checked when it is added, and a series listed, shown and ended."""

from __future__ import annotations

import json

from sqlalchemy import select

from service.cli import cli as wg
from service.models import Meeting, MeetingStatus
from tests.service.test_meetings import add_series, local

SERIES = [
    "series", "add", "--title", "Monthly meeting", "--rrule", "FREQ=MONTHLY;BYDAY=2TH",
    "--location", "Documentation centre",
]  # fmt: skip


def test_a_first_date_the_rule_does_not_produce_is_refused_with_the_dates_it_would(app, clock, db):
    clock.set(local(2026, 12, 20, 9, 0))

    result = app.test_cli_runner().invoke(wg, [*SERIES, "--starts-at", "2027-01-15T14:00"])

    assert result.exit_code == 2
    assert "2027-01-15 14:00 is not a date of FREQ=MONTHLY;BYDAY=2TH" in result.output
    assert "2027-02-11 14:00, 2027-03-11 14:00, 2027-04-08 14:00" in result.output
    assert db.scalars(select(Meeting)).all() == []


def test_a_series_added_says_its_first_meetings(app, clock):
    clock.set(local(2026, 12, 20, 9, 0))

    result = app.test_cli_runner().invoke(wg, [*SERIES, "--starts-at", "2027-01-14T14:00"])

    assert result.exit_code == 0, result.output
    assert "its first meetings: 2027-01-14 14:00, 2027-02-11 14:00, 2027-03-11 14:00" in (
        result.output
    )


def test_series_list_and_show_give_the_rule_the_meetings_made_and_the_coming_dates(app, clock):
    clock.set(local(2026, 12, 20, 9, 0))
    series_id = add_series(app, clock)
    runner = app.test_cli_runner()

    listed = runner.invoke(wg, ["series", "list"])
    shown = json.loads(runner.invoke(wg, ["series", "show", str(series_id), "--json"]).output)

    assert listed.exit_code == 0
    assert f"{series_id:>4}  Monthly meeting  FREQ=MONTHLY;BYDAY=2TH  next 2027-01-14 14:00" in (
        listed.output
    )
    assert [m["starts_at"] for m in shown["meetings"]] == ["2027-01-14 14:00", "2027-02-11 14:00"]
    assert shown["coming"][:3] == ["2027-01-14 14:00", "2027-02-11 14:00", "2027-03-11 14:00"]
    assert shown["ended"] is False


def test_ending_a_series_cancels_its_later_meetings_and_makes_no_more(
    app, clock, db, deliver, smtp_server, make_member
):
    make_member("amara@riverbank.example", name="Amara")
    clock.set(local(2027, 1, 5, 9, 0))
    series_id = add_series(app, clock)
    deliver()  # the January invitation
    smtp_server.clear()

    result = app.test_cli_runner().invoke(
        wg, ["series", "end", str(series_id), "--after", "2027-01-31", "--reason", "Merged"]
    )
    deliver()
    clock.set(local(2027, 3, 1, 9, 0))
    deliver()

    assert result.exit_code == 0, result.output
    assert "1 meeting(s) already made for later cancelled" in result.output  # February
    statuses = [(m.starts_at, m.status) for m in db.scalars(select(Meeting).order_by(Meeting.id))]
    assert statuses == [
        (local(2027, 1, 14, 14, 0), MeetingStatus.SCHEDULED),
        (local(2027, 2, 11, 14, 0), MeetingStatus.CANCELLED),
    ]
    assert smtp_server.messages == []  # no one was invited to February: no one to tell
    shown = json.loads(app.test_cli_runner().invoke(wg, ["series", "show", "1", "--json"]).output)
    assert shown["coming"] == [] and shown["until"] == "2027-01-31 23:59"


def test_ending_an_unknown_series_is_one_line(app):
    result = app.test_cli_runner().invoke(wg, ["series", "end", "42"])

    assert result.exit_code == 2
    assert "no series 42 (see wg series list)" in result.output
