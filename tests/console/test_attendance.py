"""After a meeting: who came, its minutes to the members, and the year in charts and tables."""

from __future__ import annotations

import re

from sqlalchemy import select

from service.models import Attendance, AttendanceStatus, Invitation, Rsvp
from tests.console.conftest import post, sign_in
from tests.service.test_meetings import local


def after_the_meeting(client, clock, deliver, smtp_server) -> None:  # type: ignore[no-untyped-def]
    clock.set(local(2027, 1, 14, 17, 0))
    sign_in(client, deliver, smtp_server)
    smtp_server.clear()


def test_who_came_is_marked_and_counted_over_the_year(
    client,
    invited,
    db,
    clock,
    deliver,
    smtp_server,
):
    amara, bopha = db.scalars(select(Invitation).order_by(Invitation.id)).all()
    amara.answer, bopha.answer = Rsvp.YES, Rsvp.NO
    db.commit()
    page = f"/console/meetings/{invited}"
    refused = post(client, f"{page}/attended", page, **{f"came-{amara.id}": "present"})
    after_the_meeting(client, clock, deliver, smtp_server)

    answer = post(
        client, f"{page}/attended", page,
        **{f"came-{amara.id}": "present", f"came-{bopha.id}": "substitute", "came-999": "present"},
    )  # fmt: skip

    assert refused.status_code == 303 and answer.status_code == 303
    marks = {row.invitation_id: row.status for row in db.scalars(select(Attendance))}
    assert marks == {amara.id: AttendanceStatus.PRESENT, bopha.id: AttendanceStatus.SUBSTITUTE}
    year = client.get("/console/attendance?year=2027")
    shown = year.get_data(as_text=True)
    assert "<svg" in shown and "<script" not in shown
    assert len(re.findall(r'class="bar bar--came"', shown)) == 3  # 1 meeting + 2 organisations
    assert "script-src 'self'" in year.headers["Content-Security-Policy"]
    cells = re.findall(r'class="number">(\d+)</td>', shown)
    assert cells[:5] == ["1", "0", "1", "0", "2"]  # yes, maybe, no, none, came


def test_the_minutes_go_to_the_members_once_in_their_language(
    client,
    invited,
    clock,
    deliver,
    smtp_server,
):
    after_the_meeting(client, clock, deliver, smtp_server)
    page = f"/console/meetings/{invited}"
    minutes = {"body_en": "We agreed on **three** visits.", "body_km": "យើងបានឯកភាព **បី** ដង។"}

    first = post(client, f"{page}/minutes", page, **minutes)
    again = post(client, f"{page}/minutes", page, **minutes)
    deliver()

    assert first.status_code == again.status_code == 303
    english = smtp_server.single_message_to("amara@riverbank.example")
    khmer = smtp_server.single_message_to("bopha@memory.example")
    assert english.subject == "Minutes: Monthly meeting"
    assert "<strong>three</strong>" in english.html
    assert khmer.subject.endswith("កិច្ចប្រជុំប្រចាំខែ") and "<strong>បី</strong>" in khmer.html
    assert "We agreed on" in client.get(page).get_data(as_text=True)
