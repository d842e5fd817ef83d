"""The coordinator's digest: what needs them, and how the next meetings stand.

Sent each morning at WG_DIGEST_TIME when there is news since the last one, and on
WG_DIGEST_WEEKDAY even when quiet. One per coordinator per day (dedupe key), so the
scheduler, a restart and `wg digest` never send the same day's digest twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from emails import names, render
from emails.attention import REASONS
from service import coordinators, outbox, tokens
from service.config import settings
from service.meetings.operations import mail_due_at
from service.models import (
    AuditEvent,
    Contact,
    InboundMessage,
    InboundOutcome,
    Invitation,
    JoinRequest,
    Meeting,
    MeetingStatus,
    Organisation,
    OutboundEmail,
    OutboxStatus,
    RequestStatus,
    Rsvp,
    TokenPurpose,
)
from service.urls import external_url

UPCOMING = timedelta(days=45)
FAILURE_MEMORY = timedelta(days=30)
NEWS_ACTIONS = {
    "contact.activated": "new_members",
    "contact.imported": "new_members",
    "contact.unsubscribed": "unsubscribes",
    "contact.suppressed": "bounces",
}


@dataclass(frozen=True)
class DigestPlan:
    context: dict[str, Any]
    is_news: bool


def _previous_digest(db: Session) -> OutboundEmail | None:
    return db.scalars(
        select(OutboundEmail)
        .where(OutboundEmail.template == names.DIGEST)
        .order_by(OutboundEmail.created_at.desc(), OutboundEmail.id.desc())
        .limit(1)
    ).first()


def collect(db: Session, *, now: datetime) -> DigestPlan:
    """Everything the digest shows, as JSON-able values, without storing anything."""
    previous = _previous_digest(db)
    since = previous.created_at if previous else now - timedelta(days=1)
    reported = set(previous.context.get("failure_ids", [])) if previous else set()
    pending = _pending_requests(db, since=since, now=now)
    news = _membership_news(db, since=since)
    answers_since = (
        db.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.at > since, AuditEvent.action == "rsvp.answered")
        )
        or 0
    )
    failed = [row for row in _recent_failures(db, now=now) if row.id not in reported]
    failures = [
        {"id": row.id, "recipient": row.recipient, "error": row.last_error[:200]} for row in failed
    ]
    attention = _needing_a_person(db, since=since)
    health = outbox.health(db, now=now, error_limit=0)
    meetings = [
        _meeting_summary(db, m, now=now)
        for m in db.scalars(
            select(Meeting)
            .where(
                Meeting.status == MeetingStatus.SCHEDULED,
                Meeting.starts_at > now,
                Meeting.starts_at <= now + UPCOMING,
            )
            .order_by(Meeting.starts_at)
        )
    ]
    context = {
        "since": since.isoformat(),
        "now": now.isoformat(),
        "zone": settings().timezone,
        "pending": pending,
        "meetings": meetings,
        "news": {key: news.get(key, []) for key in NEWS_ACTIONS.values()},
        "answers_since": answers_since,
        "failures": failures,
        "attention": attention,
        "outbox": {
            "queued": health.counts["queued"],
            "failed": health.counts["failed"],
            "oldest_queued_at": health.oldest_queued_at.isoformat()
            if health.oldest_queued_at
            else None,
        },
        "failure_ids": sorted(reported | {row.id for row in failed}),
    }
    is_news = bool(
        any(p["new"] for p in pending)
        or answers_since
        or failures
        or attention
        or any(news.values())
    )
    return DigestPlan(context, is_news)


def _pending_requests(db: Session, *, since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Join requests waiting for a decision, oldest first, with how long they waited."""
    pending = []
    for request in db.scalars(
        select(JoinRequest)
        .where(JoinRequest.status == RequestStatus.PENDING)
        .order_by(JoinRequest.confirmed_at)
    ):
        waited = now - (request.confirmed_at or request.created_at)
        pending.append(
            {
                "organisation": request.submitted["organisation_name"],
                "applicant": request.submitted["name"],
                "email": request.email,
                "waited_days": waited.days,
                "waited_hours": int(waited.total_seconds() // 3600),
                "new": (request.confirmed_at or request.created_at) > since,
                "public_id": request.public_id,
                "id": request.id,
            }
        )
    return pending


def _membership_news(db: Session, *, since: datetime) -> dict[str, list[str]]:
    """New members, unsubscribes and bounces since the last digest, by kind."""
    news: dict[str, list[str]] = defaultdict(list)
    for action, subject_id in db.execute(
        select(AuditEvent.action, AuditEvent.subject_id)
        .where(AuditEvent.at > since, AuditEvent.action.in_(list(NEWS_ACTIONS)))
        .order_by(AuditEvent.id)
    ):
        contact = db.get(Contact, subject_id)
        if contact is not None:
            news[NEWS_ACTIONS[action]].append(
                f"{contact.name} <{contact.email}> ({contact.organisation.name})"
            )
    return news


def _recent_failures(db: Session, *, now: datetime) -> Sequence[OutboundEmail]:
    return db.scalars(
        select(OutboundEmail)
        .where(
            OutboundEmail.status == OutboxStatus.FAILED,
            OutboundEmail.created_at > now - FAILURE_MEMORY,
        )
        .order_by(OutboundEmail.id)
    ).all()


def _needing_a_person(db: Session, *, since: datetime) -> list[dict[str, Any]]:
    """Mail that came back and that the service would not act upon.

    `reason` is an English msgid that the template translates and fills in with `args`;
    mail filed before reasons were kept has only its English `detail`.
    """
    return [
        {
            "sender": m.sender,
            "subject": m.subject,
            "reason": REASONS.get(m.reason, ""),
            "args": m.reason_args or {},
            "detail": m.detail[:300],
            "excerpt": m.excerpt[:300],
        }
        for m in db.scalars(
            select(InboundMessage)
            .where(
                InboundMessage.outcome == InboundOutcome.ATTENTION,
                InboundMessage.received_at > since,
            )
            .order_by(InboundMessage.id)
        )
    ]


def _meeting_summary(db: Session, meeting: Meeting, *, now: datetime) -> dict[str, Any]:
    tally = {answer.value: 0 for answer in Rsvp}
    organisations: dict[str, list[dict[str, str]]] = defaultdict(list)
    waiting = []
    # Plain rows in one query, not invitations with their contacts and organisations: a
    # large group's digest would otherwise load (and lazily query) every one of them.
    invited = db.execute(
        select(
            Invitation.answer,
            Invitation.answered_via,
            Invitation.substitute_name,
            Invitation.note,
            Contact.name,
            Organisation.name,
        )
        .join(Contact, Invitation.contact_id == Contact.id)
        .join(Organisation, Contact.organisation_id == Organisation.id)
        .where(Invitation.meeting_id == meeting.id)
        .order_by(Invitation.id)
    ).all()
    for answer, via, substitute, note, name, organisation in invited:
        tally[answer.value] += 1
        organisations[organisation].append(
            {
                "name": name,
                "answer": answer.value,
                "via": via.value if via else "",
                "substitute": substitute,
                "note": note,
            }
        )
        if answer is Rsvp.NONE:
            waiting.append(name)
    upcoming_followups = [
        moment
        for days in meeting.followup_days
        if (moment := mail_due_at(meeting, days, settings())) > now
    ]
    nobody = sorted(name for name, people in organisations.items() if _nobody_attends(people))
    return {
        "title": meeting.title_en,
        "title_km": meeting.title_km or meeting.title_en,
        "starts_at": meeting.starts_at.isoformat(),
        "tally": tally,
        "invited": len(invited),
        "invitations_on": (
            mail_due_at(meeting, meeting.invite_days, settings()).isoformat()
            if not invited
            else None
        ),
        "organisations": [
            {"name": name, "people": people} for name, people in sorted(organisations.items())
        ],
        "waiting": sorted(waiting),
        "next_followup": min(upcoming_followups).isoformat() if upcoming_followups else None,
        "nobody_attending": nobody,
    }


def _nobody_attends(people: list[dict[str, str]]) -> bool:
    """Everyone of the organisation answered, none is coming, and none sends a colleague.

    Before they answer they are "not answered yet", not "no one attending"."""
    return all(p["answer"] == "no" and not p["substitute"] for p in people)


def _is_digest_day(now: datetime) -> tuple[bool, bool, str]:
    """(past today's digest time, weekly summary day, local date) in the group's zone."""
    config = settings()
    local = now.astimezone(ZoneInfo(config.timezone))
    return (
        local.time() >= config.digest_clock,
        local.strftime("%A").lower() == config.digest_weekday,
        local.date().isoformat(),
    )


def enqueue_if_due(db: Session, *, now: datetime) -> int:
    """Queue today's digest when its time has come and there is news (or it is the weekly
    summary's day). Returns how many were queued (one per coordinator)."""
    after_time, weekly, day = _is_digest_day(now)
    if not after_time:
        return 0
    key = f"digest:{day}:"
    already = db.scalar(
        select(OutboundEmail.id).where(OutboundEmail.dedupe_key.startswith(key)).limit(1)
    )
    if already:
        return 0
    plan = collect(db, now=now)
    if not plan.is_news and not weekly:
        # Remember that today was quiet, so later ticks skip the work of collecting again;
        # the record also carries which failures were already reported.
        outbox.enqueue(
            db,
            names.DIGEST,
            to=settings().coordinator_emails[0],
            lang="en",
            dedupe_key=f"{key}quiet",
            context=plan.context,
            now=now,
            skipped_because="nothing new to report",
        )
        return 0
    return _enqueue(db, plan, day=day, weekly=weekly, now=now)


def send_now(db: Session, *, now: datetime) -> int:
    """`wg digest`: queue today's digest now, news or not (still once a day)."""
    _after, weekly, day = _is_digest_day(now)
    return _enqueue(db, collect(db, now=now), day=day, weekly=weekly, now=now)


def _enqueue(db: Session, plan: DigestPlan, *, day: str, weekly: bool, now: datetime) -> int:
    queued = 0
    for coordinator, coordinator_language in coordinators.recipients(db):
        context = dict(plan.context, weekly=weekly)
        context["pending"] = [
            {
                **request,
                "review_url": external_url(
                    "membership.review",
                    token=tokens.issue(
                        db,
                        TokenPurpose.REVIEW,
                        request["id"],
                        now=now,
                        expires_at=now + timedelta(days=60),
                        holder=coordinator,
                    ),
                ),
            }
            for request in plan.context["pending"]
        ]
        if outbox.enqueue(
            db,
            names.DIGEST,
            to=coordinator,
            lang=coordinator_language,
            dedupe_key=f"digest:{day}:{coordinator}",
            context=context,
            now=now,
        ):
            queued += 1
    return queued


def preview(db: Session, *, now: datetime) -> str:
    """The text of the digest as it would be sent now, without storing anything."""
    plan = collect(db, now=now)
    _after, weekly, _day = _is_digest_day(now)
    lang = settings().coordinator_language
    context = dict(
        plan.context, weekly=weekly, group_name=settings().group_name_for(lang), recipient_name=""
    )
    context["pending"] = [
        {**p, "review_url": "(the review link is in the sent digest)"}
        for p in plan.context["pending"]
    ]
    subject, text, _html = render(names.DIGEST, lang, context)
    return f"Subject: {subject}\n\n{text}"
