"""Signing in to the console: an emailed one-time link, then a session of a few hours.

No passwords. The link is a token of one purpose, used once by a POST from the page it opens
(mail scanners fetch links, and a GET changes nothing); the session is another token, whose
secret only the browser's cookie holds. Both end when the coordinator leaves the list.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from emails import names
from service import audit, coordinators, outbox, tokens
from service.config import settings
from service.models import Coordinator, TokenPurpose
from service.urls import external_url

SIGN_IN_TTL = timedelta(minutes=15)


def request_link(db: Session, email: str, *, now: datetime) -> bool:
    """Email a sign-in link when `email` is a coordinator's; False, and nothing sent, when not.

    The page that follows is the same either way.
    """
    coordinator = coordinators.find(db, email, now=now)
    if coordinator is None:
        return False
    raw = tokens.issue(
        db,
        TokenPurpose.CONSOLE_SIGN_IN,
        coordinator.id,
        now=now,
        expires_at=now + SIGN_IN_TTL,
        holder=coordinator.email,
    )
    issued = tokens.issued(db, TokenPurpose.CONSOLE_SIGN_IN, coordinator.id)
    outbox.enqueue(
        db,
        names.CONSOLE_SIGN_IN,
        to=coordinator.email,
        lang=coordinator.language,
        dedupe_key=f"console-sign-in:{coordinator.id}:{issued}",
        context={
            "sign_in_url": external_url("console.sign_in_link", token=raw),
            "valid_minutes": int(SIGN_IN_TTL.total_seconds() // 60),
        },
        now=now,
        not_after=now + SIGN_IN_TTL,
    )
    audit.record(db, "console.link_sent", coordinator, at=now, actor=coordinator.email)
    db.flush()
    return True


def link_is_usable(db: Session, raw: str, *, now: datetime) -> bool:
    """Whether a sign-in link would sign someone in now (for the page it opens)."""
    return _holder_of(db, tokens.find(db, TokenPurpose.CONSOLE_SIGN_IN, raw, now=now)) is not None


def _holder_of(db: Session, lookup: tokens.Lookup) -> Coordinator | None:
    if not lookup.valid:
        return None
    coordinator = db.get(Coordinator, lookup.token.subject_id)  # type: ignore[union-attr]
    if coordinator is None or coordinator.removed_at is not None:
        return None
    return coordinator


def sign_in(db: Session, raw: str, *, now: datetime) -> str | None:
    """Use a sign-in link once; the new session's secret for the cookie, or None."""
    lookup = tokens.find(db, TokenPurpose.CONSOLE_SIGN_IN, raw, now=now)
    coordinator = _holder_of(db, lookup)
    if coordinator is None or not tokens.spend(db, lookup.token, now=now):  # type: ignore[arg-type]
        return None
    hours = settings().console_session_hours
    session = tokens.issue(
        db,
        TokenPurpose.CONSOLE_SESSION,
        coordinator.id,
        now=now,
        expires_at=now + timedelta(hours=hours),
        holder=coordinator.email,
    )
    audit.record(db, "console.signed_in", coordinator, at=now, actor=coordinator.email)
    db.flush()
    return session


def signed_in(db: Session, raw: str, *, now: datetime) -> Coordinator | None:
    """The coordinator whose session this secret is, while it lasts and they are on the list."""
    return _holder_of(db, tokens.find(db, TokenPurpose.CONSOLE_SESSION, raw, now=now))


def sign_out(db: Session, raw: str, *, now: datetime) -> None:
    """End the session: its secret no longer signs anyone in, wherever it was copied."""
    lookup = tokens.find(db, TokenPurpose.CONSOLE_SESSION, raw, now=now)
    coordinator = _holder_of(db, lookup)
    if coordinator is None or not tokens.spend(db, lookup.token, now=now):  # type: ignore[arg-type]
        return
    audit.record(db, "console.signed_out", coordinator, at=now, actor=coordinator.email)
    db.flush()
