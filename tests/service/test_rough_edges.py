"""The small rough edges a real member or coordinator hit (issue 12), each held by a test."""

from __future__ import annotations

import pytest

from service.cli import cli as wg
from tests.service.test_meetings import add_meeting, local


def test_wg_version_prints_this_products_version_not_flasks(app):
    result = app.test_cli_runner().invoke(wg, ["--version"])

    assert result.exit_code == 0
    assert result.output == "wg 0.1.0\n"


@pytest.mark.parametrize("app_settings", [{"WG_DIGEST_TIME": "07:30"}])
def test_wg_outbox_does_not_list_a_quiet_days_digest_as_an_error(app, clock, deliver):
    clock.set(local(2026, 12, 1, 9, 0))  # a Tuesday with nothing to report
    deliver()

    result = app.test_cli_runner().invoke(wg, ["outbox"])

    assert result.exit_code == 0
    assert "expired     1" in result.output  # the quiet day is recorded
    assert "!" not in result.output
    assert "nothing new to report" not in result.output


def test_wg_meetings_show_prints_the_meetings_local_time(app, clock):
    meeting_id = add_meeting(app, clock, local(2027, 1, 14, 14, 0))

    result = app.test_cli_runner().invoke(wg, ["meetings", "show", str(meeting_id)])

    assert result.exit_code == 0, result.output
    assert "2027-01-14 14:00 Asia/Phnom_Penh" in result.output
    assert "07:00" not in result.output
