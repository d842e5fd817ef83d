"""Announcements: news to every member who wants it, in their language, through the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import markdown
import nh3
from sqlalchemy import select
from sqlalchemy.orm import Session

from emails import names
from emails.addresses import split_mailbox
from service import audit, coordinators, outbox, tokens
from service.config import settings
from service.membership import links
from service.models import (
    Announcement,
    Contact,
    ContactStatus,
    Organisation,
    OrganisationStatus,
    Suppression,
    TokenPurpose,
)
from service.urls import external_url


class AnnouncementError(ValueError):
    """An announcement that cannot be sent as given; the message says why."""


@dataclass(frozen=True)
class AnnouncementReport:
    announcement_id: int
    queued: dict[str, int]
    opted_out: int

    def summary(self) -> str:
        total = sum(self.queued.values())
        by_language = ", ".join(f"{lang} {count}" for lang, count in sorted(self.queued.items()))
        return (
            f"announcement {self.announcement_id}: queued {total} ({by_language}); "
            f"not sent to {self.opted_out} who unsubscribed, bounced or want meeting mail only"
        )


# What an announcement may use: Markdown's own elements, links to the web and to mail.
MARKDOWN_EXTENSIONS = ("sane_lists", "nl2br", "fenced_code")
ALLOWED_TAGS = frozenset(
    {"p", "br", "strong", "em", "a", "ul", "ol", "li", "blockquote", "code", "pre", "hr"}
    | {"h1", "h2", "h3", "h4", "h5", "h6"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_SANITISER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes=set(ALLOWED_URL_SCHEMES),
    url_relative="deny",  # a mail has no page that a relative link could point into
    link_rel="noopener noreferrer",
)


def render_markdown(text: str) -> str:
    """HTML for an email body: the Markdown rendered, then sanitised to ALLOWED_TAGS and
    links to ALLOWED_URL_SCHEMES. Raw HTML in the source is shown as text, not run."""
    converter = markdown.Markdown(extensions=list(MARKDOWN_EXTENSIONS), output_format="html")
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    return _SANITISER.clean(converter.convert(text))


def shared_part(subject: str, body: str) -> dict[str, str]:
    return {
        "subject": subject.strip(),
        "body_text": body.strip(),
        "body_html": render_markdown(body),
    }


def announce(
    db: Session,
    *,
    subject_en: str,
    body_en: str,
    subject_km: str = "",
    body_km: str = "",
    test: bool = False,
    again: bool = False,
    now: datetime,
) -> AnnouncementReport:
    """Queue an announcement to every active member who wants announcements (or, as a test,
    every language version to each coordinator). Members get the Khmer version when there
    is one. The same announcement (subjects and bodies) goes out once, unless `again`."""
    for label, value in (("subject", subject_en), ("subject-km", subject_km)):
        if "\n" in value or "\r" in value:
            raise AnnouncementError(f"the {label} must be one line")
    if not subject_en.strip() or not body_en.strip():
        raise AnnouncementError("an announcement needs a subject and a body")
    if bool(subject_km.strip()) != bool(body_km.strip()):
        raise AnnouncementError("give both the Khmer subject and the Khmer body, or neither")
    if not test and not again:
        _refuse_a_repeat(db, subject_en, body_en, subject_km, body_km)
    item = Announcement(
        subject_en=subject_en.strip(),
        subject_km=subject_km.strip(),
        body_en=body_en,
        body_km=body_km,
        test=test,
        created_at=now,
    )
    db.add(item)
    db.flush()
    english = shared_part(subject_en, body_en)
    shared = {"en": english, "km": shared_part(subject_km, body_km) if subject_km else english}
    languages = ["en", "km"] if subject_km.strip() else ["en"]
    if test:
        recipients, opted_out = _coordinators(db, item, languages)
    else:
        recipients, opted_out = _members(db, item, now=now)
    outbox.enqueue_many(
        db, names.ANNOUNCEMENT, recipients, shared=shared, now=now, topic=f"announcement:{item.id}"
    )
    item.queued = len(recipients)
    queued: dict[str, int] = {}
    for recipient in recipients:
        lang = str(recipient["lang"])
        queued[lang] = queued.get(lang, 0) + 1
    audit.record(db, "announcement.queued", item, at=now, queued=len(recipients), test=test)
    db.flush()
    return AnnouncementReport(item.id, queued, opted_out)


def _refuse_a_repeat(
    db: Session, subject_en: str, body_en: str, subject_km: str, body_km: str
) -> None:
    """An announcement already sent to the members with these very words is not sent again:
    running the same command twice must not mail everyone twice."""
    sent = db.scalars(
        select(Announcement)
        .where(
            Announcement.test.is_(False),
            Announcement.subject_en == subject_en.strip(),
            Announcement.subject_km == subject_km.strip(),
            Announcement.body_en == body_en,
            Announcement.body_km == body_km,
        )
        .order_by(Announcement.id)
        .limit(1)
    ).first()
    if sent is not None:
        raise AnnouncementError(
            f"this announcement was already sent (announcement {sent.id}, "
            f"{sent.created_at:%Y-%m-%d %H:%M} UTC); give --again to send it once more"
        )


def _coordinators(
    db: Session, item: Announcement, languages: list[str]
) -> tuple[list[dict[str, object]], int]:
    """A test: each coordinator gets every language version, to read before members do."""
    preview = {
        "url": external_url("membership.unsubscribe", token="preview"),
        "mailto": f"mailto:{_mailbox()}?subject=unsubscribe%20preview",
    }
    return [
        {
            "to": address,
            "lang": lang,
            "dedupe_key": f"announce:{item.id}:{address}:{lang}",
            "context": {"list_unsubscribe": preview},
        }
        for address, _language in coordinators.recipients(db)
        for lang in languages
    ], 0


def _mailbox() -> str:
    return split_mailbox(settings().reply_to)[1]


def _members(
    db: Session, item: Announcement, *, now: datetime
) -> tuple[list[dict[str, object]], int]:
    rows = db.execute(
        select(
            Contact.id,
            Contact.email,
            Contact.name,
            Contact.language,
            Contact.public_id,
            Contact.wants_announcements,
            Suppression.id,
        )
        .join(Organisation)
        .outerjoin(Suppression, Suppression.email == Contact.email)
        .where(
            Contact.status == ContactStatus.ACTIVE, Organisation.status == OrganisationStatus.ACTIVE
        )
        .order_by(Contact.id)
    ).all()
    wanted = [r for r in rows if r.wants_announcements and r[6] is None]
    raws = tokens.issue_many(
        db, TokenPurpose.UNSUBSCRIBE, [(r.id, r.email) for r in wanted], now=now
    )
    pages = links.page_urls(links.issue(db, [(r.id, r.email) for r in wanted], now=now))
    mailbox = _mailbox()
    # One URL built, then each token appended: building 100,000 URLs one by one is slow.
    base = external_url("membership.unsubscribe", token="TOKEN").rsplit("TOKEN", 1)[0]
    recipients = [
        {
            "to": r.email,
            "to_name": r.name,
            "lang": r.language.value,
            "dedupe_key": f"announce:{item.id}:{r.public_id}",
            "context": {
                "list_unsubscribe": {
                    "url": base + raw,
                    "mailto": f"mailto:{mailbox}?subject={quote('unsubscribe ' + raw)}",
                },
                "member_url": page,
            },
        }
        for r, raw, page in zip(wanted, raws, pages, strict=True)
    ]
    return recipients, len(rows) - len(wanted)
