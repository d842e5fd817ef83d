"""Every console page shows what people typed as text: no field can add markup to the page.

As tests/service/test_hostile_pages.py does for the public pages: each console template is
rendered with a plain word and then with markup in every text of its context; the two pages
must have the same elements and attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import g, render_template
from markupsafe import Markup as Safe

import service
from forms import ReviewForm
from forms.console import (
    AnnouncementForm,
    ButtonForm,
    CancelMeetingForm,
    ColleagueForm,
    ContactForm,
    EditMeetingForm,
    EndSeriesForm,
    EraseForm,
    MergeForm,
    MinutesForm,
    NewMeetingForm,
    ReasonForm,
    SeriesForm,
    SignInForm,
)
from service.console.activity import KINDS, Line
from service.console.announcing import Delivery
from service.console.charts import stacked
from service.console.tallies import Tally
from service.meetings.attendance import MeetingFigures, OrganisationFigures
from service.models import (
    Announcement,
    AnswerChannel,
    Coordinator,
    Invitation,
    Language,
    Meeting,
    MeetingMinutes,
    MeetingSeries,
    MeetingStatus,
    Organisation,
    OrganisationStatus,
    RequestStatus,
    Rsvp,
)
from service.notices.announcements import render_markdown
from service.outbox import Health
from tests.emails.test_hostile_templates import PAYLOAD, PLAIN, Markup
from tests.service.test_hostile_pages import MOMENT, contact, form, join_request

CONSOLE_TEMPLATES = Path(service.__file__).parent / "templates" / "console"


def request_with_id(text: str, status: RequestStatus):  # type: ignore[no-untyped-def]
    made = join_request(text, status)
    made.id = 1
    made.confirmed_at = MOMENT
    return made


def contact_with_id(text: str):  # type: ignore[no-untyped-def]
    made = contact(text)
    made.id = made.organisation_id = 1
    return made


def meeting(text: str) -> Meeting:
    return Meeting(
        id=1,
        title_en=text,
        title_km=text,
        starts_at=MOMENT,
        timezone="Asia/Phnom_Penh",
        duration_minutes=120,
        location=text,
        online_url=text,
        agenda_en=text,
        agenda_km=text,
        invite_days=14,
        status=MeetingStatus.SCHEDULED,
    )


def tally(text: str) -> Tally:
    invitation = Invitation(
        answer=Rsvp.MAYBE,
        note=text,
        substitute_name=text,
        answered_via=AnswerChannel.EMAIL,
        contact=contact_with_id(text),
    )
    counts = {"yes": 1, "maybe": 1, "no": 0, "none": 2}
    return Tally(meeting(text), counts, [(text, [invitation])])


def health(text: str) -> Health:
    counts = {"queued": 1, "sent": 2, "failed": 3, "expired": 0, "suppressed": 0}
    errors = [{"recipient": text, "status": "failed", "error": text}]
    return Health(counts=counts, due=1, oldest_queued_at=MOMENT, last_errors=errors, fault=text)


def request_page(text: str, status: RequestStatus) -> dict[str, Any]:
    made = request_with_id(text, status)
    return {
        "form": form(ReviewForm, text),
        "request": made,
        "submitted": made.submitted,
        "members": {text: text},
    }


# (template, path of the request, context for a text)
PAGES: dict[str, tuple[str, str, Callable[[str], dict[str, Any]]]] = {
    "sign in": (
        "console/sign_in.html",
        "/console/sign-in",
        lambda t: {"form": form(SignInForm, t)},
    ),
    "sign in sent": (
        "console/sign_in_sent.html",
        "/console/sign-in/sent",
        lambda t: {"minutes": t},
    ),
    "sign-in link": (
        "console/sign_in_link.html",
        "/console/sign-in/abc",
        lambda t: {"form": form(ButtonForm, t), "usable": True},
    ),
    "sign-in link used": (
        "console/sign_in_link.html",
        "/console/sign-in/abc",
        lambda t: {"form": form(ButtonForm, t), "usable": False},
    ),
    "overview": (
        "console/overview.html",
        "/console",
        lambda t: {
            "tally": tally(t),
            "waiting": [request_with_id(t, RequestStatus.PENDING)],
            "unconfirmed": [request_with_id(t, RequestStatus.UNCONFIRMED)],
            "troubled": [contact_with_id(t)],
            "health": health(t),
            "button": form(ButtonForm, t),
        },
    ),
    "requests": (
        "console/requests.html",
        "/console/requests",
        lambda t: {
            "waiting": [request_with_id(t, RequestStatus.PENDING)],
            "unconfirmed": [request_with_id(t, RequestStatus.UNCONFIRMED)],
            "decided": [request_with_id(t, RequestStatus.APPROVED)],
            "button": form(ButtonForm, t),
        },
    ),
    "request pending": (
        "console/request.html",
        "/console/requests/1",
        lambda t: request_page(t, RequestStatus.PENDING),
    ),
    "request decided": (
        "console/request.html",
        "/console/requests/1",
        lambda t: request_page(t, RequestStatus.DECLINED),
    ),
    "request unconfirmed": (
        "console/request.html",
        "/console/requests/1",
        lambda t: request_page(t, RequestStatus.UNCONFIRMED),
    ),
    "announcements": (
        "console/announcements.html",
        "/console/announcements",
        lambda t: {
            "form": form(AnnouncementForm, t),
            "recipients": 3,
            "past": [delivery(t)],
        },
    ),
    "announcement preview": (
        "console/announcement_preview.html",
        "/console/announcements/preview",
        lambda t: {
            "form": form(AnnouncementForm, t),
            "previews": {
                lang: {"subject": t, "body": Safe(render_markdown(t))} for lang in ("en", "km")
            },
            "has_khmer": True,
            "recipients": 3,
            "problem": t,
        },
    ),
    "meetings": (
        "console/meetings.html",
        "/console/meetings",
        lambda t: {
            "year": 2027,
            "years": [2026, 2027],
            "meetings": [meeting(t)],
            "series": [series(t)],
            "now": MOMENT,
        },
    ),
    "new meeting": (
        "console/meeting_new.html",
        "/console/meetings/new",
        lambda t: {"form": form(NewMeetingForm, t), "dates": [MOMENT], "problem": t},
    ),
    "meeting": (
        "console/meeting.html",
        "/console/meetings/1",
        lambda t: {
            "meeting": meeting(t),
            "tally": tally(t),
            "attended": {},
            "changeable": True,
            "held": False,
            "minutes": None,
            "minutes_html": {},
            "minutes_form": form(MinutesForm, t),
        },
    ),
    "meeting held": (
        "console/meeting.html",
        "/console/meetings/1",
        lambda t: {
            "meeting": meeting(t),
            "tally": tally(t),
            "attended": {},
            "changeable": False,
            "held": True,
            "minutes": MeetingMinutes(published_at=MOMENT, published_by=t, body_en=t),
            "minutes_html": {"en": Safe(render_markdown(t))},
            "minutes_form": form(MinutesForm, t),
        },
    ),
    "series": (
        "console/series.html",
        "/console/series/1",
        lambda t: {
            "series": series(t),
            "form": form(SeriesForm, t),
            "end_form": form(EndSeriesForm, t),
            "dates": [MOMENT],
            "problem": t,
        },
    ),
    "attendance": (
        "console/attendance.html",
        "/console/attendance",
        lambda t: {
            "year": 2027,
            "years": [2027],
            "meetings": [MeetingFigures(meeting(t), {"yes": 1, "maybe": 0, "no": 2, "none": 3}, 1)],
            "organisations": [OrganisationFigures(t, 1, 1, 1)],
            "meeting_chart": stacked([(t, [("yes", 1), ("no", 2)], [("came", 1)])]),
            "organisation_chart": stacked([(t, [("yes", 1)], [("came", 1)])]),
        },
    ),
    "meeting edit": (
        "console/meeting_edit.html",
        "/console/meetings/1/edit",
        lambda t: {"form": form(EditMeetingForm, t), "meeting": meeting(t), "problem": t},
    ),
    "meeting cancel": (
        "console/meeting_cancel.html",
        "/console/meetings/1/cancel",
        lambda t: {"form": form(CancelMeetingForm, t), "meeting": meeting(t), "problem": t},
    ),
    "members": (
        "console/members.html",
        "/console/members",
        lambda t: {"organisations": [organisation(t)], "query": t},
    ),
    "contact": (
        "console/contact.html",
        "/console/contacts/1",
        lambda t: {
            "contact": contact_with_id(t),
            "form": form(ContactForm, t),
            "reason_form": form(ReasonForm, t),
            "erase_form": form(EraseForm, t),
            "button": form(ButtonForm, t),
            "suppressed": True,
            "problem": t,
        },
    ),
    "organisation": (
        "console/organisation.html",
        "/console/organisations/1",
        lambda t: {
            "organisation": organisation(t),
            "colleague_form": form(ColleagueForm, t),
            "merge_form": merge_form(t),
            "problem": t,
        },
    ),
    "address confirm": (
        "console/address_confirm.html",
        "/address/abc",
        lambda t: {"form": form(ButtonForm, t), "usable": True},
    ),
    "address confirmed": (
        "console/address_confirm.html",
        "/address/abc",
        lambda t: {"form": form(ButtonForm, t), "done": True},
    ),
    "activity": (
        "console/activity.html",
        "/console/activity",
        lambda t: {
            "lines": [
                Line(at=MOMENT, action=action, kind="contact", about=t, actor=t, detail=detail(t))
                for action in ("contact.edited", t)
            ],
            "kinds": KINDS,
            "kind": "contact",
            "first": "2026-01-01",
            "last": "2026-12-31",
            "page": 1,
            "more": True,
        },
    ),
}


def detail(text: str) -> dict[str, Any]:
    return {"reason": text, "fields": [text, text], "answer": text, "ignored": text}


def organisation(text: str) -> Organisation:
    person = contact_with_id(text)
    made = person.organisation
    made.id, made.website, made.cambodia_location, made.work_summary = 1, text, text, text
    made.status = OrganisationStatus.ACTIVE
    return made


def merge_form(text: str) -> MergeForm:
    made = form(MergeForm, text)
    made.into.choices = [("2", text)]
    return made


def series(text: str) -> MeetingSeries:
    return MeetingSeries(
        id=1, title_en=text, title_km=text, rrule=text, first_starts_at=MOMENT,
        until_at=MOMENT, timezone="Asia/Phnom_Penh",
    )  # fmt: skip


def delivery(text: str) -> Delivery:
    item = Announcement(
        id=1, subject_en=text, subject_km=text, body_en=text, body_km=text, created_at=MOMENT
    )
    return Delivery(announcement=item, sent=1, waiting=2, not_sent=3, bounced=4)


def page(app, key: str, text: str) -> Markup:
    template, path, context = PAGES[key]
    with app.test_request_context(f"{path}?lang=en&q={quote(text)}"):
        g.coordinator = Coordinator(id=1, email=text, language=Language.EN)
        return Markup(render_template(template, group_name=text, **context(text)))


@pytest.mark.parametrize("key", sorted(PAGES))
def test_markup_typed_into_any_field_stays_text_on_a_console_page(app, key):
    expected = page(app, key, PLAIN)
    shown = page(app, key, PAYLOAD)

    assert shown.elements == expected.elements
    assert PAYLOAD in shown.text


def test_every_console_template_is_tried():
    pages = {
        f"console/{path.name}"
        for path in CONSOLE_TEMPLATES.glob("*.html")
        if not path.name.startswith("_") and path.name != "base.html"
    }

    assert pages == {template for template, _, _ in PAGES.values()}
