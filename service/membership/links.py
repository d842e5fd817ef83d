"""A member's personal links: their own page, and the calendar feed that goes with it.

Each message to a member carries its own member link (a MEMBER token) and, derived from it,
the secret of their calendar feed (a CALENDAR token). Both are stored hashed when the message
is queued, so the member page can show the feed's address without writing on a GET.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from service import tokens
from service.config import settings
from service.models import Contact, TokenPurpose
from service.urls import external_url


def feed_secret(member_raw: str) -> str:
    """The calendar feed's secret that goes with a member link: an HMAC of it, 22 characters."""
    key = settings().secret_key.encode()
    mac = hmac.new(key, b"calendar-feed:" + member_raw.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).rstrip(b"=").decode("ascii")


def issue(db: Session, contacts: list[tuple[int, str]], *, now: datetime) -> list[str]:
    """A member link for each (contact id, address), its calendar feed stored beside it; the
    raw member tokens in order. One bulk insert each, for a send to many."""
    raws = tokens.issue_many(db, TokenPurpose.MEMBER, contacts, now=now)
    if contacts:
        db.execute(
            insert(tokens.TOKENS),
            [
                dict(
                    # Stored as service.tokens stores every link secret: its hash only.
                    digest=tokens.digest_of(feed_secret(raw)),
                    purpose=TokenPurpose.CALENDAR,
                    subject_id=contact_id,
                    holder=email,
                    created_at=now,
                    expires_at=None,
                    used_at=None,
                )
                for raw, (contact_id, email) in zip(raws, contacts, strict=True)
            ],
        )
    return raws


def page_url(raw: str) -> str:
    return external_url("membership.member", token=raw)


def page_urls(raws: list[str]) -> list[str]:
    """The member page of each raw token; the URL is built once (a send may be large)."""
    base = external_url("membership.member", token="TOKEN").rsplit("TOKEN", 1)[0]
    return [base + raw for raw in raws]


def calendar_urls(member_raw: str) -> dict[str, str]:
    """The feed that goes with the member link `member_raw`: https:// and webcal://."""
    url = external_url("meetings.calendar_feed", token=feed_secret(member_raw))
    return {"https": url, "webcal": "webcal://" + url.split("://", 1)[1]}


def for_message(db: Session, contact: Contact, *, now: datetime) -> dict[str, str]:
    """The personal links of one message to `contact`: their page and their calendar feed."""
    (raw,) = issue(db, [(contact.id, contact.email)], now=now)
    return {"member_url": page_url(raw), "calendar_url": calendar_urls(raw)["webcal"]}
