"""Every web page shows what people typed as text: no field can add markup to the page.

Each page template is rendered twice, with a plain word and then with markup in every text
field of its context (form data and errors, stored records, the query string, the group's
name); the two pages must have the same elements and attributes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import render_template
from wtforms import Field, FieldList, FormField

import service
from forms import (
    ConfirmForm,
    JoinForm,
    PreferencesForm,
    ReviewForm,
    RsvpForm,
    SameNameReviewForm,
    UnsubscribeForm,
)
from service.devmail.mailbox import CaughtMail
from service.meetings.operations import meeting_context
from service.models import (
    Contact,
    ContactStatus,
    Invitation,
    JoinRequest,
    Language,
    Meeting,
    MeetingStatus,
    Organisation,
    OrganisationKind,
    OrganisationStatus,
    RequestStatus,
    Rsvp,
)
from tests.emails.test_hostile_templates import PAYLOAD, PLAIN, Markup

MOMENT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
PAGE_TEMPLATES = Path(service.__file__).parent / "templates"


def fill(field: Field, text: str) -> None:
    """Put `text` in a form field as typed data and as its error, sub-forms included."""
    if isinstance(field, FieldList):
        for entry in field.entries:
            fill(entry, text)
    elif isinstance(field, FormField):
        for sub in field.form:
            fill(sub, text)
    elif field.type != "CSRFTokenField":
        field.data = text
        field.raw_data = [text]
        field.errors = [text]


def form(form_class: type, text: str, **options: Any) -> Any:
    made = form_class(**options)
    for field in made:
        fill(field, text)
    return made


def join_request(text: str, status: RequestStatus) -> JoinRequest:
    keys = ("organisation_name", "kind", "website", "cambodia_location", "name", "role")
    submitted: dict[str, Any] = {key: text for key in keys}
    submitted.update(
        email=text,
        phone=text,
        language=text,
        work_summary=text,
        represented_in_cambodia=True,
        representatives=[{"name": text, "email": text}, {"name": text, "email": text}],
    )
    return JoinRequest(
        email=text,
        language=Language.EN,
        submitted=submitted,
        status=status,
        review_note=text,
        reviewed_by=text,
        created_at=MOMENT,
        decided_at=MOMENT,
    )


def contact(text: str) -> Contact:
    organisation = Organisation(
        name=text, kind=OrganisationKind.ORGANISATION, status=OrganisationStatus.ACTIVE
    )
    return Contact(
        email=text,
        name=text,
        language=Language.EN,
        status=ContactStatus.ACTIVE,
        organisation=organisation,
    )


def rsvp_page(text: str, *, status: MeetingStatus, is_open: bool) -> dict[str, Any]:
    meeting = Meeting(
        title_en=text,
        title_km=text,
        starts_at=MOMENT,
        timezone="Asia/Phnom_Penh",
        duration_minutes=120,
        location=text,
        online_url=text,
        agenda_en=text,
        agenda_km=text,
        status=status,
    )
    invitation = Invitation(answer=Rsvp.MAYBE, note=text, substitute_name=text)
    return dict(
        form=form(RsvpForm, text),
        invitation=invitation,
        meeting=meeting,
        is_open=is_open,
        details=meeting_context(meeting, "en"),
        message=text,
        saved=True,
    )


def member_page(text: str, *, active: bool) -> dict[str, Any]:
    """The member page of a contact invited to one meeting, with one not invited yet."""
    from forms import ColleagueForm, LeaveForm, MeetingAnswerForm, MemberDetailsForm, StopMailForm
    from service.membership.member_page import MeetingLine

    invited = rsvp_page(text, status=MeetingStatus.SCHEDULED, is_open=True)["meeting"]
    invited.id, invited.public_id = 1, "a1"
    later = rsvp_page(text, status=MeetingStatus.SCHEDULED, is_open=True)["meeting"]
    later.id, later.public_id = 2, "b2"
    invitation = Invitation(answer=Rsvp.MAYBE, note=text, substitute_name=text)
    return dict(
        token=text,
        contact=contact(text),
        active=active,
        details=form(MemberDetailsForm, text, prefix="details"),
        colleague=form(ColleagueForm, text, prefix="colleague"),
        leave=form(LeaveForm, text, prefix="leave"),
        stop=form(StopMailForm, text, prefix="stop"),
        meetings=[MeetingLine(invited, invitation, None), MeetingLine(later, None, MOMENT)],
        answers={1: form(MeetingAnswerForm, text, prefix="meeting-a1")},
        can_answer=lambda meeting: True,
        calendar={"https": text, "webcal": text},
        done="details",
    )


def caught_mail(text: str) -> CaughtMail:
    message = EmailMessage()
    message["Subject"] = text
    message["To"] = "amara@riverbank.example"
    message["Date"] = text
    # The page lists the links of the text part: the payload's own link is in both.
    message.set_content(f"{text}\nhttps://evil.example/review\n")
    message.add_alternative(f"<p>{text}</p>", subtype="html")
    return CaughtMail(text, message)


# (template, path of the request, context for a text)
PAGES: dict[str, tuple[str, str, Callable[[str], dict[str, Any]]]] = {
    "error": ("error.html", "/join", lambda t: {"code": t, "message": t}),
    "join": ("membership/join.html", "/join", lambda t: {"form": form(JoinForm, t)}),
    "join sent": ("membership/join_sent.html", "/join/sent", lambda t: {"confirm_hours": t}),
    "confirm": (
        "membership/confirm.html",
        "/confirm/abc",
        lambda t: {
            "form": form(ConfirmForm, t),
            "request": join_request(t, RequestStatus.UNCONFIRMED),
        },
    ),
    "confirm expired": (
        "membership/confirm_expired.html",
        "/confirm/abc",
        lambda t: {
            "form": form(ConfirmForm, t),
            "token": t,
            "resend_url": t,
            "confirm_hours": t,
        },
    ),
    "confirm used": ("membership/confirm_used.html", "/confirm/abc", lambda t: {}),
    "confirm representative": (
        "membership/confirm_representative.html",
        "/confirm/abc",
        lambda t: {"form": form(ConfirmForm, t), "contact": contact(t)},
    ),
    "representative confirmed": (
        "membership/representative_confirmed.html",
        "/confirmed",
        lambda t: {},
    ),
    "unavailable, form kept": (
        "unavailable.html",
        "/join",
        lambda t: {"kept": [(t, t), (t, t)], "action": t},
    ),
    "unavailable": ("unavailable.html", "/join", lambda t: {"kept": []}),
    "confirmed": ("membership/confirmed.html", "/confirmed", lambda t: {}),
    "review pending": (
        "membership/review.html",
        "/review/abc",
        lambda t: {
            "form": form(ReviewForm, t),
            "request": (request := join_request(t, RequestStatus.PENDING)),
            "submitted": request.submitted,
            "members": {t: t},
        },
    ),
    "review decided": (
        "membership/review.html",
        "/review/abc",
        lambda t: {
            "form": form(ReviewForm, t),
            "request": (request := join_request(t, RequestStatus.DECLINED)),
            "submitted": request.submitted,
            "members": {t: t},
        },
    ),
    "review, an organisation of the same name": (
        "membership/review.html",
        "/review/abc",
        lambda t: {
            "form": form(SameNameReviewForm, t),
            "request": (request := join_request(t, RequestStatus.PENDING)),
            "submitted": request.submitted,
            "members": {t: t},
            "same_name": contact(t).organisation,
        },
    ),
    "unsubscribe": (
        "membership/unsubscribe.html",
        "/unsubscribe/abc",
        lambda t: {
            "form": form(UnsubscribeForm, t, prefix="stop"),
            "preferences": form(PreferencesForm, t, prefix="prefs"),
            "contact": contact(t),
            "address": t,
            "done": False,
            "saved": True,
        },
    ),
    "unsubscribed": (
        "membership/unsubscribe.html",
        "/unsubscribe/abc",
        lambda t: {
            "form": form(UnsubscribeForm, t, prefix="stop"),
            "preferences": form(PreferencesForm, t, prefix="prefs"),
            "contact": contact(t),
            "address": t,
            "done": True,
        },
    ),
    "rsvp open": (
        "meetings/rsvp.html",
        "/rsvp/abc",
        lambda t: rsvp_page(t, status=MeetingStatus.SCHEDULED, is_open=True),
    ),
    "rsvp cancelled": (
        "meetings/rsvp.html",
        "/rsvp/abc",
        lambda t: rsvp_page(t, status=MeetingStatus.CANCELLED, is_open=False),
    ),
    "rsvp past": (
        "meetings/rsvp.html",
        "/rsvp/abc",
        lambda t: rsvp_page(t, status=MeetingStatus.SCHEDULED, is_open=False),
    ),
    "member": ("membership/member.html", "/member/abc", lambda t: member_page(t, active=True)),
    "member who left": (
        "membership/member.html",
        "/member/abc",
        lambda t: member_page(t, active=False),
    ),
    "caught mail": ("devmail/index.html", "/dev/mail", lambda t: {"mails": [caught_mail(t)] * 2}),
    "one caught mail": ("devmail/show.html", "/dev/mail/x", lambda t: {"mail": caught_mail(t)}),
}


def page(app, key: str, text: str) -> Markup:
    template, path, context = PAGES[key]
    with app.test_request_context(f"{path}?lang=en&q={quote(text)}"):
        return Markup(render_template(template, group_name=text, **context(text)))


@pytest.mark.parametrize("key", sorted(PAGES))
def test_markup_typed_into_any_field_stays_text_on_the_page(app, key):
    expected = page(app, key, PLAIN)
    shown = page(app, key, PAYLOAD)

    assert shown.elements == expected.elements
    assert PAYLOAD in shown.text


def test_every_page_template_is_tried():
    pages = {
        str(path.relative_to(PAGE_TEMPLATES))
        for path in PAGE_TEMPLATES.rglob("*.html")
        if path.name not in ("base.html", "_forms.html")  # in every page
        and not path.name.startswith("_")  # partials, tried within the pages that use them
        and path.parent.name != "console"  # tests/console/test_hostile_pages.py tries those
    }

    assert pages == {template for template, _, _ in PAGES.values()}


@pytest.mark.parametrize("path", ["//evil.example/x", "/\\evil.example/x", "/\\/evil.example"])
def test_the_language_links_stay_on_this_site(client, path):
    response = client.get("/", environ_overrides={"PATH_INFO": path})
    links = re.findall(r'href="([^"]*lang=(?:km|en)[^"]*)"', response.get_data(as_text=True))

    assert len(links) == 2
    for link in links:
        # A browser reads "//host" and "/\host" as another site.
        assert link.startswith("/") and link[1:2] not in ("/", "\\"), link
