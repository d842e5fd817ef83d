"""Figure 4: the scheduler's tick with nothing due against one that queues a meeting's
invitations, and how the invitation tick grows with the membership."""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

from bench.common import NOW, add_members, fresh_database, log, make_app, timed

PAST_MEETINGS = 12  # a year of monthly meetings


def add_past_year(app) -> None:  # type: ignore[no-untyped-def]
    """Twelve past monthly meetings, every member invited to each, their mail sent."""
    from service.db import get_database
    from service.models import (
        Contact,
        Invitation,
        Language,
        Meeting,
        MeetingStatus,
        OutboundEmail,
        OutboxStatus,
        Rsvp,
    )

    engine = get_database(app).engine
    with engine.begin() as connection:
        contacts = connection.execute(select(Contact.id, Contact.email)).all()
        for month in range(1, PAST_MEETINGS + 1):
            starts_at = NOW - timedelta(days=30 * month)
            meeting_id = connection.execute(
                insert(Meeting).returning(Meeting.id),
                dict(
                    public_id=uuid.uuid4().hex,
                    title_en=f"Monthly meeting {month}",
                    title_km="",
                    starts_at=starts_at,
                    timezone="Asia/Phnom_Penh",
                    duration_minutes=120,
                    location="Documentation centre",
                    online_url="",
                    agenda_en="",
                    agenda_km="",
                    invite_days=14,
                    followup_days=[7, 2],
                    reminder_days=1,
                    sequence=0,
                    status=MeetingStatus.SCHEDULED,
                    created_at=starts_at - timedelta(days=20),
                    updated_at=starts_at - timedelta(days=20),
                ),
            ).scalar_one()
            invited_at = starts_at - timedelta(days=14)
            for start in range(0, len(contacts), 20_000):
                chunk = contacts[start : start + 20_000]
                connection.execute(
                    insert(Invitation),
                    [
                        dict(
                            meeting_id=meeting_id,
                            contact_id=contact_id,
                            answer=Rsvp.YES if contact_id % 3 == 0 else Rsvp.NONE,
                            invited_at=invited_at,
                            note="",
                            substitute_name="",
                            substitute_email="",
                            invitation_message_id="",
                            followup_stage=2,
                            reminded_sequence=0,
                        )
                        for contact_id, _ in chunk
                    ],
                )
                connection.execute(
                    insert(OutboundEmail),
                    [
                        dict(
                            dedupe_key=f"invite:{meeting_id}:{contact_id}",
                            recipient=email,
                            recipient_name="",
                            template="meeting_invitation",
                            language=Language.EN,
                            context={},
                            list_mail=True,
                            topic=f"meeting:{meeting_id}",
                            message_id=f"<past.{meeting_id}.{contact_id}@wg.example.org>",
                            status=OutboxStatus.SENT,
                            attempts=1,
                            not_before=invited_at,
                            lease_owner="",
                            last_error="",
                            created_at=invited_at,
                            sent_at=invited_at,
                        )
                        for contact_id, email in chunk
                    ],
                )


def add_upcoming_meeting(app) -> None:  # type: ignore[no-untyped-def]
    """A meeting in ten days: its invitations are due at the next tick."""
    from service.db import session_scope
    from service.meetings.operations import MeetingDetails, add_meeting

    with app.app_context(), session_scope(app) as db:
        add_meeting(
            db,
            MeetingDetails(
                title_en="Monthly meeting",
                title_km="កិច្ចប្រជុំប្រចាំខែ",
                starts_at=NOW + timedelta(days=10),
                location="Documentation centre",
                agenda_en="1. The verdict\n2. Reparations",
                agenda_km="១. សាលក្រម\n២. សំណង",
            ),
            now=NOW,
        )


def run(kind: str, members: int, port: int, workdir: Path, *, profile: bool = False) -> dict:
    from scheduler import jobs

    with fresh_database(kind, workdir) as database:
        app = make_app(database, port, workdir)
        add_members(app, members)
        add_past_year(app)
        add_upcoming_meeting(app)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        invite_time, due = timed(lambda: jobs.enqueue_due(app, NOW))
        if profiler:
            profiler.disable()
        invited = getattr(due, "meetings", due).invited
        if invited != members:
            raise RuntimeError(f"the tick invited {invited} of {members}")
        idle_times = []
        for minute in range(1, 6):
            elapsed, idle = timed(
                lambda m=minute: jobs.enqueue_due(app, NOW + timedelta(minutes=m))
            )
            idle = getattr(idle, "meetings", idle)
            if idle.invited or idle.followed_up or idle.reminded:
                raise RuntimeError(f"a tick with nothing due queued something: {idle}")
            idle_times.append(elapsed)
        from service.db import get_database

        get_database(app).engine.dispose()
    idle_time = statistics.median(idle_times)
    log(
        f"tick {kind} {members} members: invitations {invite_time:.2f}s "
        f"({invite_time / members * 1e3:.2f} ms a member), nothing due {idle_time * 1e3:.1f} ms"
    )
    result = {"invite": invite_time, "idle": idle_time}
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
        result["profile"] = text.getvalue()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        result["profile"] += text.getvalue()
    return result
