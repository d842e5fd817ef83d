"""A month walked with a member who answers "No" and sends a colleague in their place."""

from __future__ import annotations

import pytest

from service.db import session_scope
from service.meetings import operations
from service.models import Meeting
from service.notices import digest
from tests.service.test_meetings import add_meeting, answer, local, received

SUBSTITUTE = "sokha@memory.example"


@pytest.fixture
def members(make_member):
    return {
        "bopha": make_member(
            "bopha@memory.example", name="បុប្ផា", language="km", organisation="Memory Association"
        ),
        "chea": make_member(
            "chea@legal.example", name="Chea", language="en", organisation="Legal Aid Group"
        ),
    }


def test_a_substitute_named_after_a_no_gets_the_details_then_the_reminder(
    app, client, clock, deliver, smtp_server, members
):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    invitations = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    smtp_server.clear()

    reply = answer(
        client,
        invitations["bopha@memory.example"],
        "no",
        substitute_name="Sokha",
        substitute_email=SUBSTITUTE,
    )
    deliver()
    assert reply.status_code == 302
    details = smtp_server.single_message_to(SUBSTITUTE)
    assert details["Content-Language"] == "km"  # the member's language
    assert "កិច្ចប្រជុំប្រចាំខែ" in details.subject
    assert "បុប្ផា" in details.text and "Memory Association" in details.text
    assert "Documentation centre, Phnom Penh" in details.text
    assert "https://meet.example/wg" in details.text
    assert details.link("/unsubscribe/")  # their own way to stop it
    assert not [link for link in details.links if link.startswith("/rsvp/")]
    smtp_server.clear()

    clock.set(local(2027, 1, 7, 9, 0))  # follow-up day: only Chea has not answered
    deliver()
    assert received(smtp_server) == [("chea@legal.example", "Please answer", "en")]

    with app.app_context(), session_scope(app) as db:
        summary = digest.preview(db, now=clock())
    assert "No one attending from" not in summary  # Memory sends Sokha; Legal Aid has not answered

    clock.set(local(2027, 1, 13, 9, 0))  # reminder day
    deliver()
    deliver()
    assert received(smtp_server) == [
        ("chea@legal.example", "Please answer", "en"),  # the second follow-up, due on the 12th
        (SUBSTITUTE, "Reminder", "km"),  # Bopha said no: she gets no reminder, Sokha does
    ]


def test_a_substitute_hears_of_a_change_and_a_cancellation(
    app, client, clock, deliver, smtp_server, members
):
    clock.set(local(2027, 1, 5, 9, 0))
    meeting_id = add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    invitation = smtp_server.single_message_to("chea@legal.example")
    answer(client, invitation, "no", substitute_name="Sokha", substitute_email=SUBSTITUTE)
    deliver()
    smtp_server.clear()

    with app.app_context(), session_scope(app) as db:
        meeting = db.get(Meeting, meeting_id)
        operations.reschedule(db, meeting, now=clock(), starts_at=local(2027, 1, 15, 14, 0))
    deliver()
    changed = smtp_server.single_message_to(SUBSTITUTE)
    assert changed.subject.startswith("Changed: Monthly meeting")
    assert "THIS MEETING HAS CHANGED." in changed.text
    smtp_server.clear()

    with app.app_context(), session_scope(app) as db:
        operations.cancel(db, db.get(Meeting, meeting_id), now=clock(), reason="No quorum")
    deliver()
    assert smtp_server.single_message_to(SUBSTITUTE).subject.startswith("Cancelled:")
