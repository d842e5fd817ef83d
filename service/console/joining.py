"""Join requests as the console shows and handles them: lists, and a lost link sent again.

Decisions go through membership.operations.decide, the same rule as the emailed review link.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import audit
from service.membership import operations
from service.models import JoinRequest, RequestStatus


def waiting(db: Session) -> Sequence[JoinRequest]:
    """Confirmed requests waiting for a decision, the longest waiting first."""
    return db.scalars(
        select(JoinRequest)
        .where(JoinRequest.status == RequestStatus.PENDING)
        .order_by(JoinRequest.confirmed_at, JoinRequest.id)
    ).all()


def unconfirmed(db: Session) -> Sequence[JoinRequest]:
    """The latest request of each address whose applicant has not confirmed it yet."""
    requests = db.scalars(
        select(JoinRequest)
        .where(JoinRequest.status == RequestStatus.UNCONFIRMED)
        .order_by(JoinRequest.created_at.desc(), JoinRequest.id.desc())
    ).all()
    latest: dict[str, JoinRequest] = {}
    for request in requests:
        latest.setdefault(request.email, request)
    return list(latest.values())


def decided(db: Session, *, limit: int = 50) -> Sequence[JoinRequest]:
    """The latest decisions, newest first."""
    return db.scalars(
        select(JoinRequest)
        .where(JoinRequest.status.in_([RequestStatus.APPROVED, RequestStatus.DECLINED]))
        .order_by(JoinRequest.decided_at.desc(), JoinRequest.id.desc())
        .limit(limit)
    ).all()


def send_link_again(db: Session, request: JoinRequest, *, actor: str, now: datetime) -> bool:
    """A fresh confirmation link for an applicant who lost theirs; False when none may go now
    (the request is no longer waiting, or the address had its links for the hour)."""
    if request.status is not RequestStatus.UNCONFIRMED:
        return False
    if operations.why_no_link(db, request.email, now=now):
        return False
    operations.send_confirmation(db, request, now=now)
    audit.record(db, "join.confirmation_resent", request, at=now, actor=actor)
    db.flush()
    return True
