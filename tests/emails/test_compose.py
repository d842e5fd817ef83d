"""Every email: both parts, in the recipient's language, with the headers mail providers expect."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from emails import HeaderInjection, Sender, Unsubscribe, compose, names
from emails.attention import REASONS

SENDER = Sender(
    from_address="Working Group <noreply@wg.example>",
    reply_to="secretariat@wg.example",
    group_name="Working Group",
    group_name_km="ក្រុមការងារ",
    list_id="Working Group <members.wg.example>",
)
REQUEST = {
    "organisation_name": "Riverbank Survivors Network",
    "kind": "organisation",
    "website": "",
    "represented_in_cambodia": True,
    "cambodia_location": "Battambang",
    "name": "Amara Sok",
    "role": "Programme officer",
    "email": "amara@riverbank.example",
    "phone": "",
    "language": "km",
    "work_summary": "Support groups.",
    "representatives": [{"name": "Dara", "email": "dara@riverbank.example"}],
}
CONTEXTS = {
    names.JOIN_CONFIRM: {
        "confirm_url": "https://wg.example/confirm/abc",
        "organisation_name": "Riverbank Survivors Network",
        "valid_hours": 72,
    },
    names.JOIN_REQUEST_RECEIVED: {
        "review_url": "https://wg.example/review/abc",
        "request": REQUEST,
        "submitted_at": "2026-12-01T02:00:00+00:00",
        "zone": "Asia/Phnom_Penh",
    },
    names.JOIN_WELCOME: {
        "organisation_name": "Riverbank Survivors Network",
        "member_url": "https://wg.example/member/abc",
        "calendar_url": "webcal://wg.example/calendar/def.ics",
    },
    names.JOIN_DECLINED: {"organisation_name": "Riverbank Survivors Network", "note": "Sorry."},
}
MEETING = {
    "meeting": {
        "title": "Monthly meeting",
        "starts_at": "2027-01-14T07:00:00+00:00",
        "ends_at": "2027-01-14T09:00:00+00:00",
        "zone": "Asia/Phnom_Penh",
        "location": "Documentation centre",
        "online_url": "https://meet.example/wg",
        "agenda": "1. Reparations",
    },
    "change": {"old_starts_at": "2027-01-13T07:00:00+00:00", "reason": "The venue is closed."},
    "changed": True,
    "answer": "yes",
    "rsvp_url": "https://wg.example/rsvp/abc",
    "answer_urls": {a: f"https://wg.example/rsvp/abc?answer={a}" for a in ("yes", "no", "maybe")},
}
CONTEXTS[names.ANNOUNCEMENT] = {
    "subject": "សេចក្ដីប្រកាស៖ សាលក្រមនឹងត្រូវប្រកាសនៅថ្ងៃទី ២២ ខែកញ្ញា",
    "body_text": "សូមជម្រាបជូនថា សាលក្រមនឹងត្រូវប្រកាស។",
    "body_html": "<p>សូមជម្រាបជូនថា សាលក្រមនឹងត្រូវប្រកាស។</p>",
}
CONTEXTS[names.DIGEST] = {
    "since": "2026-12-01T00:30:00+00:00",
    "now": "2026-12-02T00:30:00+00:00",
    "zone": "Asia/Phnom_Penh",
    "weekly": False,
    "pending": [
        {
            "organisation": "Riverbank",
            "applicant": "Amara",
            "email": "a@r.example",
            "waited_days": 2,
            "waited_hours": 50,
            "review_url": "https://wg.example/review/abc",
        }
    ],
    "meetings": [
        {
            "title": "Monthly meeting",
            "title_km": "កិច្ចប្រជុំប្រចាំខែ",
            "starts_at": "2026-12-10T07:00:00+00:00",
            "tally": {"yes": 1, "no": 1, "maybe": 0, "none": 1},
            "invited": 3,
            "organisations": [
                {
                    "name": "Riverbank",
                    "people": [
                        {
                            "name": "Amara",
                            "answer": "yes",
                            "via": "email",
                            "substitute": "Sokha",
                            "note": "late",
                        }
                    ],
                }
            ],
            "waiting": ["Chea"],
            "next_followup": "2026-12-08T01:00:00+00:00",
            "nobody_attending": ["Legal Aid"],
        }
    ],
    "news": {"new_members": ["Dara"], "unsubscribes": [], "bounces": ["x@y.example"]},
    "answers_since": 2,
    "failures": [{"id": 1, "recipient": "gone@y.example", "error": "550 no such user"}],
    "attention": [
        {
            "sender": "a@b.example",
            "subject": "Re: Invitation",
            "reason": REASONS["reply_from_another"],
            "args": {"invitee": "a@b.example", "sender": "c@d.example"},
            "detail": "a reply about the invitation of a@b.example, sent by c@d.example",
            "excerpt": "I will check",
        }
    ],
    "outbox": {"queued": 0, "failed": 1, "oldest_queued_at": None},
}
CONTEXTS[names.MEETING_SUBSTITUTE] = {
    **{k: v for k, v in MEETING.items() if k not in ("rsvp_url", "answer_urls")},
    "substitute_for": "Sokha",
    "organisation_name": "Memory Association",
}
CONTEXTS[names.MEMBER_LEFT] = {
    "organisation_name": "Riverbank Survivors Network",
    "left_by": "Amara Sok",
    "people": [{"name": "Amara Sok", "email": "amara@riverbank.example"}],
    "organisation_inactive": False,
    "staying": [{"name": "Dara", "email": "dara@riverbank.example"}],
}
CONTEXTS[names.JOIN_ALREADY_MEMBER] = {
    "organisation_name": "Riverbank Survivors Network",
    "member_url": "https://wg.example/member/abc",
    "colleague_url": "https://wg.example/member/abc#colleague",
    "named": [{"name": "Dara", "email": "dara@riverbank.example"}],
}
CONTEXTS[names.JOIN_KNOWN_MEMBER] = {
    "member_name": "Amara Sok",
    "member_email": "amara@riverbank.example",
    "organisation_name": "Riverbank Survivors Network",
    "request": {"organisation_name": "Riverbank network", "name": "Amara"},
    "named": [{"name": "Dara", "email": "dara@riverbank.example"}],
}
for _name in (
    names.MEETING_INVITATION,
    names.MEETING_FOLLOWUP,
    names.MEETING_REMINDER,
    names.MEETING_CANCELLED,
):
    CONTEXTS[_name] = MEETING
CONTEXTS[names.MEETING_CORRECTED] = {"meeting": MEETING["meeting"], "change": {}, "answer": "yes"}
CONTEXTS[names.CONTACT_ADDRESS_CONFIRM] = {
    "confirm_url": "https://wg.example/address/abc",
    "organisation_name": "Riverbank Survivors Network",
    "valid_hours": 72,
}
CONTEXTS[names.CONSOLE_SIGN_IN] = {
    "sign_in_url": "https://wg.example/console/sign-in/abc",
    "valid_minutes": 15,
}


def build(name: str, lang: str, **extra):
    return compose(
        name,
        "amara@riverbank.example",
        lang,
        sender=SENDER,
        to_name="អមរា សុខ",
        message_id="<fixed@wg.example>",
        date=datetime(2026, 12, 1, tzinfo=UTC),
        **{**CONTEXTS[name], **extra},
    )


def reparse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_there_is_a_context_for_every_email_name():
    assert set(CONTEXTS) == set(names.ALL)


@pytest.mark.parametrize("lang", ["en", "km"])
@pytest.mark.parametrize("name", names.ALL)
def test_every_email_has_text_and_html_in_its_language_and_valid_bytes(name, lang):
    raw = build(name, lang).as_bytes()
    parsed = reparse(raw)

    head, _, _ = raw.partition(b"\r\n\r\n")
    assert head.isascii(), "header bytes must be ASCII (RFC 2047 encoded words)"
    assert b"\n" not in raw.replace(b"\r\n", b""), "every line ends in CRLF"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert text.strip() and html.strip()
    assert f'<html lang="{lang}">' in html
    assert parsed["Content-Language"] == lang
    if lang == "km":
        khmer = [ch for ch in parsed["Subject"] + text if "\u1780" <= ch <= "\u17ff"]
        assert len(khmer) > 20, "the Khmer version is written in Khmer script"


@pytest.mark.parametrize("name", names.ALL)
def test_every_email_carries_the_headers_of_an_automatic_sender(name):
    parsed = reparse(build(name, "en").as_bytes())

    assert parsed["Message-ID"] == "<fixed@wg.example>"
    assert parsed["From"] == "Working Group <noreply@wg.example>"
    assert parsed["Reply-To"] == "secretariat@wg.example"
    assert parsed["To"] == "អមរា សុខ <amara@riverbank.example>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert parsed["Date"] == "Tue, 01 Dec 2026 00:00:00 +0000"
    assert parsed["List-Unsubscribe"] is None  # only list mail carries list headers


def test_list_mail_carries_one_click_unsubscribe_unfolded():
    unsubscribe = Unsubscribe(
        "https://wg.example/unsubscribe/AbCdEfGhIjKlMnOpQrStUv",
        "mailto:unsubscribe@wg.example?subject=AbCdEfGhIjKlMnOpQrStUv",
    )
    message = compose(
        names.JOIN_WELCOME,
        "a@riverbank.example",
        "km",
        sender=SENDER,
        unsubscribe=unsubscribe,
        **CONTEXTS[names.JOIN_WELCOME],
    )
    raw = message.as_bytes()
    parsed = reparse(raw)

    line = next(x for x in raw.split(b"\r\n") if x.startswith(b"List-Unsubscribe:"))
    assert b"=?" not in line, "an encoded-word URL hides Gmail's unsubscribe button"
    assert parsed["List-Unsubscribe"] == f"<{unsubscribe.url}>, <{unsubscribe.mailto}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Id"] == "Working Group <members.wg.example>"
    assert unsubscribe.url in parsed.get_body(("plain",)).get_content()
    assert unsubscribe.url in parsed.get_body(("html",)).get_content()


@pytest.mark.parametrize("bad", ["Amara\r\nBcc: x@example.org", "Amara\nBcc: x@example.org"])
def test_line_breaks_in_header_values_are_refused(bad):
    with pytest.raises(HeaderInjection):
        compose(
            names.JOIN_WELCOME,
            "a@riverbank.example",
            "en",
            sender=SENDER,
            to_name=bad,
            **CONTEXTS[names.JOIN_WELCOME],
        )
    with pytest.raises(HeaderInjection):
        compose(
            names.JOIN_WELCOME,
            "a@riverbank.example",
            "en",
            sender=SENDER,
            message_id=f"<{bad}>",
            **CONTEXTS[names.JOIN_WELCOME],
        )


def test_submitted_text_is_escaped_in_html():
    message = build(names.JOIN_DECLINED, "en", note="<script>alert(1)</script>")
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_khmer_dates_are_formatted_for_the_km_locale():
    text = build(names.JOIN_REQUEST_RECEIVED, "km").get_body(("plain",)).get_content()
    # 1 December 2026, 09:00 in Phnom Penh: Khmer month name, Khmer weekday.
    assert "ធ្នូ" in text and "អង្គារ" in text


def test_a_reply_to_of_its_own_replaces_the_services_in_both_composers():
    from emails.compose import compose_fast

    options = dict(
        sender=SENDER,
        reply_to="amara@riverbank.example",
        reply_to_name="អមរា សុខ",
        **CONTEXTS[names.JOIN_REQUEST_RECEIVED],
    )
    slow = compose(names.JOIN_REQUEST_RECEIVED, "c@wg.example", "en", **options).as_bytes()
    fast = compose_fast(names.JOIN_REQUEST_RECEIVED, "c@wg.example", "en", **options)

    for raw in (slow, fast):
        assert reparse(raw)["Reply-To"] == "អមរា សុខ <amara@riverbank.example>"
        assert raw.partition(b"\r\n\r\n")[0].isascii()
    with pytest.raises(HeaderInjection):
        compose(
            names.JOIN_REQUEST_RECEIVED,
            "c@wg.example",
            "en",
            **{**options, "reply_to": "a@riverbank.example\r\nBcc: x@example.org"},
        )
