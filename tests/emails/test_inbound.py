"""Reading the mailbox: bounces, calendar replies, auto-replies and plain replies, never raising."""

from __future__ import annotations

import base64
import random
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from emails.inbound import (
    MAX_REFERENCES,
    Answer,
    Inbound,
    Kind,
    classifier,
    classify,
    html_to_text,
    own_words,
    read_answer,
)
from emails.verp import return_path

SAMPLES = Path(__file__).parent / "inbound_samples"
# The samples' return paths were signed with this key (emails.verp), as the service signs its own.
SAMPLE_SECRET = "inbound-samples-secret"
INVITATION_ID = "<invitation-2026-12.{token}@wg.example>"
UID = "meeting-2026-12@wg.example"
ORGANIZER = "secretariat@wg.example"


def sample(name: str) -> Inbound:
    return classify((SAMPLES / name).read_bytes(), secret=SAMPLE_SECRET)


# --- the corpus ---------------------------------------------------------------------------

BOUNCES = {
    "postfix_bounce.eml": {
        "recipient": "dara.sok@riverbank.example",
        "status": "5.1.1",
        "hard": True,
        "policy": False,
        "return_path_numbers": (101,),
        "original_message_id": INVITATION_ID.format(token="abc123"),
        "diagnostic": "550 5.1.1 <Dara.Sok@riverbank.example>: Recipient address rejected: "
        "User unknown in virtual mailbox table",
    },
    "exchange_bounce.eml": {
        "recipient": "chanthy@mekongaid.example",
        "status": "5.1.10",
        "hard": True,
        "policy": False,
        "return_path_numbers": (102,),
        "original_message_id": INVITATION_ID.format(token="def456"),
    },
    "gmail_policy_rejection.eml": {
        "recipient": "sophea@khmerwomen.example",
        "status": "5.7.26",
        "hard": True,
        "policy": True,
        "return_path_numbers": (),
        "original_message_id": INVITATION_ID.format(token="tk_Sl77"),
    },
    "soft_bounce_delayed.eml": {
        "recipient": "ratana@cambodiarights.example",
        "status": "4.2.2",
        "hard": False,
        "policy": False,
        "return_path_numbers": (103,),
        "original_message_id": INVITATION_ID.format(token="tk_Ra19"),
    },
    "qmail_bounce.eml": {
        "recipient": "vanna@tonlesap.example",
        "status": "5.1.1",
        "hard": True,
        "policy": False,
        "return_path_numbers": (104,),
        "original_message_id": INVITATION_ID.format(token="tk_Vn62"),
    },
    "exim_bounce.eml": {
        "recipient": "lyhour@ngoforum.example",
        "status": "5.2.1",
        "hard": True,
        "policy": False,
        "return_path_numbers": (105,),
        "original_message_id": INVITATION_ID.format(token="tk_Ly30"),
    },
}

CALENDAR_REPLIES = {
    "gmail_calendar_accept.eml": {
        "attendee": "sokha.chan@riverbank.example",
        "answer": Answer.YES,
        "sequence": 0,
        "organizer": ORGANIZER,
        "comment": "",
    },
    "outlook_calendar_decline.eml": {
        "attendee": "vichea.meas@mekongaid.example",
        "answer": Answer.NO,
        "sequence": 1,
        "organizer": ORGANIZER,
        "comment": "Sorry, I am in Siem Reap for a field visit that week.",
    },
    "outlookcom_calendar_tentative.eml": {
        "attendee": "sreypov.lim@outlook.example",
        "answer": Answer.MAYBE,
        "sequence": 0,
        "organizer": None,
        "comment": "",
    },
    "apple_calendar_accept.eml": {
        "attendee": "kanha@riverbank.example",
        "answer": Answer.YES,
        "sequence": 2,
        "organizer": ORGANIZER,
        "comment": "",
    },
    "thunderbird_calendar_accept.eml": {
        "attendee": "bunthoeun@tonlesap.example",
        "answer": Answer.YES,
        "sequence": 0,
        "organizer": ORGANIZER,
        "comment": "",
    },
}

REPLIES = {
    "plain_reply_yes_en.eml": ("tk_7Hq2", Answer.YES, "Yes, I will attend."),
    "plain_reply_no_km.eml": ("tk_Km41", Answer.NO, "ខ្ញុំមិនអាចចូលរួមបានទេ"),
    "plain_reply_maybe_km.eml": ("tk_Pv93", Answer.MAYBE, "ប្រហែលជា"),
    "plain_reply_ambiguous.eml": ("tk_Rm20", None, "let you know"),
    "plain_reply_outlook_yes.eml": ("tk_Cr55", Answer.YES, "Count me in."),
    "plain_reply_html_only_no.eml": ("tk_Mh08", Answer.NO, "unable to attend"),
}

AUTO_REPLIES = {
    "out_of_office_exchange.eml": ("Auto-Submitted: auto-replied", (106,)),
    "out_of_office_gmail.eml": ("Auto-Submitted: auto-replied", ()),
    "out_of_office_khmer_subject.eml": ("out-of-office subject", ()),
}

OTHERS = {
    "unrelated.eml": Kind.UNRELATED,
    "malformed_mime.eml": Kind.MALFORMED,
}


def test_every_sample_has_an_expectation() -> None:
    expected = {*BOUNCES, *CALENDAR_REPLIES, *REPLIES, *AUTO_REPLIES, *OTHERS}
    assert {path.name for path in SAMPLES.glob("*.eml")} == expected


@pytest.mark.parametrize("name", sorted(BOUNCES))
def test_bounce_samples(name: str) -> None:
    expected = dict(BOUNCES[name])
    found = sample(name)
    assert found.kind is Kind.BOUNCE, found.reason
    assert found.bounce is not None
    assert found.return_path_numbers == expected.pop("return_path_numbers")
    for field, value in expected.items():
        assert getattr(found.bounce, field) == value, field
    assert found.bounce.diagnostic and "\n" not in found.bounce.diagnostic
    assert found.bounce.status in found.bounce.diagnostic
    assert found.calendar is None and found.reply is None


def test_gmail_policy_rejection_diagnostic_is_one_clean_line() -> None:
    diagnostic = sample("gmail_policy_rejection.eml").bounce.diagnostic
    assert diagnostic.startswith("550 5.7.26 Unauthenticated email from wg.example")
    assert "domain's DMARC policy" in diagnostic
    assert "550-5.7.26" not in diagnostic and diagnostic.count("5.7.26") == 1


@pytest.mark.parametrize("name", sorted(CALENDAR_REPLIES))
def test_calendar_reply_samples(name: str) -> None:
    found = sample(name)
    assert found.kind is Kind.CALENDAR_REPLY, found.reason
    assert found.calendar is not None
    assert found.calendar.uid == UID
    assert found.calendar.recurrence_id is None
    for field, value in CALENDAR_REPLIES[name].items():
        assert getattr(found.calendar, field) == value, field


def test_apple_reply_from_a_robot_marked_auto_generated_is_still_a_calendar_reply() -> None:
    found = sample("apple_calendar_accept.eml")
    assert found.sender == "noreply@icloud.example"
    assert found.kind is Kind.CALENDAR_REPLY


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_reply_samples(name: str) -> None:
    token, answer, words = REPLIES[name]
    found = sample(name)
    assert found.kind is Kind.REPLY, found.reason
    assert found.reply is not None
    assert found.references == (INVITATION_ID.format(token=token),)
    assert found.reply.answer == answer
    assert words in found.reply.text
    # The quoted invitation, with its Yes/No/Maybe links, is not the reader's words.
    for quoted in ("wg.example/rsvp", "wrote:", "បានសរសេរ", "Will you attend", "From: Working"):
        assert quoted not in found.reply.text


def test_plain_reply_yes_keeps_the_readers_whole_text() -> None:
    found = sample("plain_reply_yes_en.eml")
    assert found.reply.text == "Yes, I will attend. Our new volunteer may join me too.\n\nDara"
    assert found.sender == "dara.sok@riverbank.example"
    assert found.message_id.startswith("<CAH4x=") and found.message_id.endswith(">")


@pytest.mark.parametrize("name", sorted(AUTO_REPLIES))
def test_auto_reply_samples(name: str) -> None:
    reason, numbers = AUTO_REPLIES[name]
    found = sample(name)
    assert found.kind is Kind.AUTO_REPLY, found.reason
    assert found.reason.startswith(reason)
    assert found.return_path_numbers == numbers
    # An out-of-office keeps its references, and no answer is ever read from it.
    assert found.reply is not None and found.reply.answer is None
    assert found.references and found.references[0].startswith("<invitation-2026-12.")


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_other_samples(name: str) -> None:
    found = sample(name)
    assert found.kind is OTHERS[name], found.reason
    assert found.reason
    assert found.bounce is None and found.calendar is None and found.reply is None


def test_headers_are_read_for_every_kind() -> None:
    found = sample("malformed_mime.eml")
    assert found.sender == "dara.sok@riverbank.example"
    assert found.message_id == "<broken-1@riverbank.example>"
    assert found.subject.startswith("Re: Working group monthly meeting")
    assert sample("plain_reply_no_km.eml").subject == "Re: កិច្ចប្រជុំក្រុមការងារប្រចាំខែ"


# --- calendar replies built here ----------------------------------------------------------


ATTENDEE = "ATTENDEE;PARTSTAT=ACCEPTED;CN=Dara Sok:mailto:dara@riverbank.example"


def ics_reply(
    attendee: str = ATTENDEE,
    *extra: str,
    method: str = "REPLY",
    uid: str = UID,
) -> bytes:
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Test//EN",
        "VERSION:2.0",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"UID:{uid}" if uid else "",
        "DTSTAMP:20261201T030000Z",
        "DTSTART:20261215T020000Z",
        "ORGANIZER:mailto:secretariat@wg.example",
        attendee,
        *extra,
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(line for line in lines if line) + "\r\n").encode()


def calendar_message(ics: bytes, *, sender: str = "dara@riverbank.example", **headers) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "secretariat@wg.example"
    message["Subject"] = "Accepted: Working group monthly meeting"
    message["Message-ID"] = "<reply-1@riverbank.example>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Dara has accepted this invitation.")
    message.add_alternative(ics, maintype="text", subtype="calendar", params={"method": "REPLY"})
    return message.as_bytes(policy=SMTP)


def test_google_calendar_robot_with_auto_submitted_is_a_calendar_reply() -> None:
    raw = calendar_message(
        ics_reply(),
        sender="Google Calendar <calendar-notification@google.com>",
        Auto_Submitted="auto-generated",
        Precedence="bulk",
    )
    found = classify(raw)
    assert found.kind is Kind.CALENDAR_REPLY
    assert found.sender == "calendar-notification@google.com"
    assert found.calendar.attendee == "dara@riverbank.example"
    assert found.calendar.answer is Answer.YES


def test_calendar_reply_as_an_ics_attachment_only() -> None:
    message = EmailMessage()
    message["From"] = "dara@riverbank.example"
    message["Subject"] = "Invitation reply"
    message.set_content("See attachment.")
    message.add_attachment(
        ics_reply(), maintype="application", subtype="octet-stream", filename="reply.ics"
    )
    assert classify(message.as_bytes()).kind is Kind.CALENDAR_REPLY


def test_calendar_reply_in_a_legacy_charset() -> None:
    ics = ics_reply("ATTENDEE;PARTSTAT=DECLINED;CN=René:mailto:rene@x.example", "COMMENT:Café")
    message = EmailMessage()
    message["From"] = "rene@x.example"
    message.set_content("Declined.")
    message.add_attachment(
        ics.decode().encode("cp1252"),
        maintype="text",
        subtype="calendar",
        params={"method": "REPLY", "charset": "windows-1252"},
    )
    found = classify(message.as_bytes())
    assert (found.calendar.answer, found.calendar.comment) == (Answer.NO, "Café")


@pytest.mark.parametrize("partstat", ["NEEDS-ACTION", "DELEGATED", "X-UNKNOWN"])
def test_calendar_reply_without_a_usable_partstat_is_unrelated(partstat: str) -> None:
    found = classify(
        calendar_message(ics_reply(f"ATTENDEE;PARTSTAT={partstat}:mailto:d@r.example"))
    )
    assert found.kind is Kind.UNRELATED
    assert partstat in found.reason
    assert found.calendar is None


def test_calendar_reply_fields_recurrence_comment_sequence_and_email_param() -> None:
    ics = ics_reply(
        'ATTENDEE;CN="Kanha";EMAIL="Kanha@Riverbank.example";PARTSTAT=TENTATIVE:urn:uuid:4f1',
        "RECURRENCE-ID;TZID=Asia/Phnom_Penh:20261215T090000",
        "SEQUENCE:4",
        "COMMENT:I may come late\\, sorry",
    )
    found = classify(calendar_message(ics))
    assert found.kind is Kind.CALENDAR_REPLY
    reply = found.calendar
    assert reply.attendee == "kanha@riverbank.example"
    assert reply.answer is Answer.MAYBE
    assert reply.recurrence_id == "20261215T020000Z"
    assert reply.sequence == 4
    assert reply.comment == "I may come late, sorry"


def test_calendar_reply_with_several_attendees_takes_the_sender() -> None:
    ics = ics_reply(
        "ATTENDEE;PARTSTAT=DECLINED:mailto:other@riverbank.example",
        "ATTENDEE;PARTSTAT=ACCEPTED:MAILTO:Dara@Riverbank.example",
    )
    found = classify(calendar_message(ics))
    assert (found.calendar.attendee, found.calendar.answer) == ("dara@riverbank.example", "yes")


def test_calendar_reply_with_a_broken_sequence_counts_as_zero() -> None:
    found = classify(calendar_message(ics_reply(ATTENDEE, "SEQUENCE:abc")))
    assert found.kind is Kind.CALENDAR_REPLY and found.calendar.sequence == 0


def test_calendar_reply_without_attendee_is_malformed() -> None:
    found = classify(calendar_message(ics_reply("")))
    assert found.kind is Kind.MALFORMED
    assert "attendee" in found.reason


def test_calendar_reply_without_uid_or_unparseable_is_malformed() -> None:
    assert classify(calendar_message(ics_reply(uid=""))).kind is Kind.MALFORMED
    broken = b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nthis is not ical\r\n"
    found = classify(calendar_message(broken))
    assert found.kind is Kind.MALFORMED
    assert "REPLY" in found.reason


def test_a_request_is_not_a_calendar_reply() -> None:
    raw = calendar_message(ics_reply(method="REQUEST"), In_Reply_To="<x@wg.example>")
    found = classify(raw)
    assert found.kind is Kind.REPLY
    assert found.calendar is None


# --- bounces built here -------------------------------------------------------------------


RETURN_PATH_9 = return_path("bounces@wg.example", 9, SAMPLE_SECRET)


def dsn(recipient_blocks: str, *, encoding: str = "", kind: str = "delivery-status") -> bytes:
    status = "Reporting-MTA: dns; mail.wg.example\n\n" + recipient_blocks.strip() + "\n"
    if encoding == "base64":
        status = base64.encodebytes(status.encode()).decode()
    header = f"Content-Transfer-Encoding: {encoding}\n" if encoding else ""
    return f"""From: MAILER-DAEMON@mail.wg.example (Mail Delivery System)
To: {RETURN_PATH_9}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@mail.wg.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type={kind}; boundary="B"

--B
Content-Type: text/plain

The mail system

--B
Content-Type: message/{kind}
{header}
{status}
--B--
""".encode()


def test_multi_recipient_report_gives_the_first_failed_recipient() -> None:
    found = classify(
        dsn("""
Final-Recipient: rfc822; ok@riverbank.example
Action: delivered
Status: 2.0.0

Final-Recipient: rfc822; later@riverbank.example
Action: delayed
Status: 4.4.1

Final-Recipient: rfc822; gone@riverbank.example
Action: failed
Status: 5.1.1

Final-Recipient: rfc822; also-gone@riverbank.example
Action: failed
Status: 5.1.1
""")
    )
    assert found.kind is Kind.BOUNCE
    assert found.bounce.recipient == "gone@riverbank.example"


def test_original_recipient_is_preferred_to_the_final_one() -> None:
    found = classify(
        dsn("""
Original-Recipient: rfc822;members@riverbank.example
Final-Recipient: rfc822; dara@mailhost.riverbank.example
Action: failed
Status: 5.2.2
""")
    )
    assert found.bounce.recipient == "members@riverbank.example"


@pytest.mark.parametrize(
    ("status_lines", "expected"),
    [
        ("Diagnostic-Code: smtp; 550 Requested action not taken", "5.0.0"),
        ("Diagnostic-Code: smtp; 421 Try again later", "4.0.0"),
        ("Diagnostic-Code: smtp; 550-5.1.1 No such user", "5.1.1"),
        ("Status: 5.0.0\nDiagnostic-Code: smtp; 550 5.1.1 No such user", "5.1.1"),
        ("Status: 5.1.2\nDiagnostic-Code: smtp; 550 5.1.1 No such user", "5.1.2"),
        ("", "5.0.0"),
    ],
)
def test_missing_status_is_derived(status_lines: str, expected: str) -> None:
    blocks = "Final-Recipient: rfc822; x@riverbank.example\nAction: failed\n" + status_lines
    found = classify(dsn(blocks))
    assert found.kind is Kind.BOUNCE
    assert found.bounce.status == expected
    assert found.bounce.hard is expected.startswith("5")


def test_delayed_without_status_is_soft() -> None:
    found = classify(dsn("Final-Recipient: rfc822; x@riverbank.example\nAction: delayed"))
    assert (found.bounce.status, found.bounce.hard) == ("4.0.0", False)


@pytest.mark.parametrize("status", ["5.7.1", "4.7.0", "5.7.26"])
def test_x7x_statuses_are_policy_refusals(status: str) -> None:
    found = classify(dsn(f"Final-Recipient: rfc822; x@r.example\nAction: failed\nStatus: {status}"))
    assert found.bounce.policy is True
    assert found.bounce.hard is status.startswith("5")


def test_base64_and_global_delivery_status_are_read() -> None:
    blocks = "Final-Recipient: rfc822; x@riverbank.example\nAction: failed\nStatus: 5.1.1"
    assert classify(dsn(blocks, encoding="base64")).bounce.recipient == "x@riverbank.example"
    found = classify(dsn(blocks, kind="global-delivery-status"))
    assert found.bounce.status == "5.1.1"


def test_a_report_that_nothing_failed_in_is_no_bounce() -> None:
    found = classify(dsn("Final-Recipient: rfc822; x@r.example\nAction: delivered\nStatus: 2.0.0"))
    assert found.kind is Kind.AUTO_REPLY
    assert found.bounce is None


def text_bounce(body: str, *, sender: str, subject: str) -> bytes:
    return (
        f"From: {sender}\nTo: {RETURN_PATH_9}\nSubject: {subject}\n"
        f"Message-ID: <b@x.example>\n\n{body}"
    ).encode()


def test_generic_mailer_daemon_text_bounce_with_smtp_code_only() -> None:
    raw = text_bounce(
        "Your message to sokun@riverbank.example could not be delivered.\n"
        "The remote server said:\n550 Mailbox unavailable\n",
        sender="Mail Delivery Subsystem <mailer-daemon@mail.riverbank.example>",
        subject="Returned mail: see transcript for details",
    )
    found = classify(raw)
    assert found.kind is Kind.BOUNCE
    assert found.bounce.recipient == "sokun@riverbank.example"
    assert found.bounce.status == "5.0.0"


def test_qmail_local_bounce_with_hash_status() -> None:
    raw = text_bounce(
        "Hi. This is the qmail-send program at mail.tonlesap.example.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<nobody@tonlesap.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        "--- Below this line is a copy of the message.\n\n"
        "Message-ID: <invitation-1@wg.example>\nFrom: noreply@wg.example\n",
        sender="MAILER-DAEMON@mail.tonlesap.example",
        subject="failure notice",
    )
    found = classify(raw)
    assert found.bounce.recipient == "nobody@tonlesap.example"
    assert found.bounce.status == "5.1.1"
    assert found.bounce.original_message_id == "<invitation-1@wg.example>"


def test_a_read_receipt_is_an_auto_reply() -> None:
    raw = b"""From: Dara <dara@riverbank.example>
Subject: Read: Working group monthly meeting
In-Reply-To: <invitation-2026-12.tk@wg.example>
Content-Type: multipart/report; report-type=disposition-notification; boundary="R"

--R
Content-Type: text/plain

Your message was read on Tuesday. Yes.

--R
Content-Type: message/disposition-notification

Final-Recipient: rfc822; dara@riverbank.example
Disposition: manual-action/MDN-sent-manually; displayed

--R--
"""
    found = classify(raw)
    assert found.kind is Kind.AUTO_REPLY
    assert found.reason == "report-type=disposition-notification"


def test_a_person_writing_about_an_undelivered_mail_is_no_bounce() -> None:
    raw = (
        b"From: dara@riverbank.example\nSubject: Re: Undelivered Mail Returned to Sender\n"
        b"In-Reply-To: <x@wg.example>\n\nYes, I changed my address.\n"
    )
    assert classify(raw).kind is Kind.REPLY


# --- auto-replies -------------------------------------------------------------------------


def reply_message(body: str = "Yes, I will attend.", **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Dara Sok <dara@riverbank.example>"
    message["To"] = "secretariat@wg.example"
    message["Subject"] = headers.pop("Subject", "Re: Working group monthly meeting")
    message["Message-ID"] = "<r1@riverbank.example>"
    message["In-Reply-To"] = "<invitation-2026-12.tk@wg.example>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto_Submitted": "auto-replied"},
        {"Auto_Submitted": "auto-generated"},
        {"Auto_Submitted": "auto-notified; owner-email=dara@riverbank.example"},
        {"X_Autoreply": "yes"},
        {"X_Autorespond": "Out of office"},
        {"Precedence": "bulk"},
        {"Precedence": "junk"},
        {"Precedence": "list"},
        {"Return_Path": "<>"},
        {"X_MS_Exchange_Inbox_Rules_Loop": "dara@riverbank.example"},
        {"X_Mailer": "Vacation 1.2.7"},
        {"Subject": "Out of Office: Working group monthly meeting"},
        {"Subject": "Automatic reply: Working group monthly meeting"},
        {"Subject": "Auto: Working group monthly meeting"},
        {"Subject": "Abwesenheitsnotiz: Working group monthly meeting"},
        {"Subject": "Réponse automatique : Working group monthly meeting"},
        {"Subject": "Respuesta automática: Working group monthly meeting"},
        {"Subject": "ស្វ័យប្រវត្តិ៖ កិច្ចប្រជុំ"},
        {"Subject": "មិននៅការិយាល័យ"},
        {"Subject": "ឆ្លើយតប\u200bស្វ័យ\u200bប្រវត្តិ៖ កិច្ចប្រជុំ"},
    ],
)
def test_auto_reply_signals(headers: dict[str, str]) -> None:
    found = classify(reply_message(**headers))
    assert found.kind is Kind.AUTO_REPLY, found.reason
    assert found.reply.answer is None
    assert found.references == ("<invitation-2026-12.tk@wg.example>",)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Auto_Submitted": "no"},
        {"X_Auto_Response_Suppress": "All"},
        {"Precedence": "first-class"},
        {"Return_Path": "<dara@riverbank.example>"},
        {"X_Mailer": "Microsoft Outlook 16.0"},
        {"Subject": "Re: Office move in December"},
    ],
)
def test_not_auto_reply_signals(headers: dict[str, str]) -> None:
    found = classify(reply_message(**headers))
    assert found.kind is Kind.REPLY, found.reason
    assert found.reply.answer is Answer.YES


# --- plain replies ------------------------------------------------------------------------


def test_references_in_order_without_repeats_and_bare_ids_wrapped() -> None:
    raw = (
        b"From: dara@riverbank.example\r\n"
        b"In-Reply-To: invitation-2@wg.example\r\n"
        b"References: <root@wg.example>\r\n <invitation-2@wg.example> <other@wg.example>\r\n"
        b"\r\nMaybe.\r\n"
    )
    found = classify(raw)
    assert found.references == (
        "<invitation-2@wg.example>",
        "<root@wg.example>",
        "<other@wg.example>",
    )
    assert found.reply.answer is Answer.MAYBE


def test_without_references_a_yes_is_unrelated() -> None:
    raw = b"From: dara@riverbank.example\nSubject: hello\n\nYes, I will attend.\n"
    found = classify(raw)
    assert found.kind is Kind.UNRELATED
    assert found.reply is None


def test_reply_text_from_a_broken_charset() -> None:
    raw = (
        b"From: dara@riverbank.example\nIn-Reply-To: <i@wg.example>\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\n\nYes \xe1\x9e\x94\xe1\x9e\xb6\n"
    )
    found = classify(raw)
    assert found.kind is Kind.REPLY and found.reply.answer is Answer.YES


def test_seventy_thousand_references_are_cut_to_the_ends_of_the_chain() -> None:
    middle = " ".join(f"<thread-{n}@lists.example>" for n in range(70_000))
    raw = (
        "From: dara@riverbank.example\r\nIn-Reply-To: <parent@wg.example>\r\n"
        f"References: <root@wg.example> {middle}\r\n <latest@wg.example>\r\n\r\nYes.\r\n"
    ).encode()

    found = classify(raw)

    assert len(found.references) == MAX_REFERENCES
    assert found.references[:3] == (
        "<parent@wg.example>",
        "<root@wg.example>",
        "<latest@wg.example>",
    )
    # The rest are the latest before it, newest first.
    assert found.references[-1] == f"<thread-{70_000 - (MAX_REFERENCES - 3)}@lists.example>"
    assert found.reply.answer is Answer.YES


def test_control_characters_never_leave_the_parser() -> None:
    raw = (
        b"From: Dara <da\x00ra@riverbank.example>\r\n"
        b"Subject: Re: meeting\x00\x1b[31m\x07\r\n"
        b"Message-ID: <id\x00@riverbank.example>\r\n"
        b"In-Reply-To: <invitation\x00@wg.example> <invitation@wg.example>\r\n"
        b"\r\nYes,\x00 I will\x1b attend.\r\n"
    )

    found = classify(raw)

    assert found.sender is None  # an address with a NUL in it is no address
    assert found.subject == "Re: meeting[31m"
    assert found.message_id is None
    assert found.references == ("<invitation@wg.example>",)
    assert found.reply.text == "Yes, I will attend."
    assert found.reply.answer is Answer.YES


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (["mx.wg.example; dkim=none; dmarc=fail (p=reject) header.from=x.example"], "fail"),
        (["mx.wg.example;\r\n\tspf=pass;\r\n\tDMARC=FAIL header.from=x.example"], "fail"),
        (["mx.wg.example; dmarc=pass", "evil.example; dmarc=fail"], "pass"),
        (["mx.wg.example; dmarc=fail", "evil.example; dmarc=pass"], "fail"),
        (["mx.wg.example; spf=pass (sender said dmarc=fail) smtp.mailfrom=x.example"], ""),
        (["mx.wg.example; none"], ""),
        ([], ""),
    ],
)
def test_dmarc_is_read_from_the_topmost_authentication_results(
    results: list[str], expected: str
) -> None:
    lines = "".join(f"Authentication-Results: {value}\r\n" for value in results)
    raw = f"{lines}From: dara@riverbank.example\r\nIn-Reply-To: <i@wg.example>\r\n\r\nYes\r\n"

    assert classify(raw.encode()).dmarc == expected


# --- never raises -------------------------------------------------------------------------

# (message, the kind it is, why): each is read by the parser, none by classify's last resort.
GARBAGE = [
    (b"", Kind.MALFORMED, "empty message"),
    (b"   \r\n\r\n", Kind.MALFORMED, "empty message"),
    (b"\x00\xff" * 100, Kind.MALFORMED, "no mail headers"),
    (
        bytes(random.Random(7).randrange(256) for _ in range(4096)),
        Kind.MALFORMED,
        "no mail headers",
    ),
    (b"just some words without any header\nand a second line\n", Kind.MALFORMED, "no mail headers"),
    (
        b"From: dara@riverbank.example\r\nSubject: header only\r\n",
        Kind.UNRELATED,
        "no In-Reply-To or References",
    ),
    (
        b"From: a@b.example\nContent-Type: multipart/mixed; boundary=zz\n\n"
        b"--zz\nContent-Type: text/pl",
        Kind.MALFORMED,
        "multipart cut short (closing boundary missing)",
    ),
    (
        b"From: a@b.example\nContent-Type: multipart/mixed; boundary=zz\n\n--xx\n\nhi\n--xx--\n",
        Kind.MALFORMED,
        "multipart whose boundary never occurs",
    ),
    (
        b"From: a@b.example\nContent-Type: multipart/report; report-type=delivery-status\n\n",
        Kind.MALFORMED,
        "multipart without a boundary",
    ),
    (
        b"From: =?utf-8?q?broken <<<@@@>>>\nTo: ,,,,@\nIn-Reply-To: <<<>>>\nSubject: =?x?q?z?=\n\n",
        Kind.UNRELATED,
        "no In-Reply-To or References",
    ),
    (
        b"Content-Type: text/calendar; method=REPLY\nFrom: a@b.example\n\n"
        b"BEGIN:VCALENDAR\nMETHOD:REPLY",
        Kind.MALFORMED,
        "text/calendar METHOD:REPLY that does not parse",
    ),
    (
        b"From: a@b.example\nContent-Type: message/rfc822\n\n"
        b"From: c@d.example\nContent-Type: multipart/mixed; boundary=q\n\n--q\n",
        Kind.UNRELATED,
        "no In-Reply-To or References",
    ),
    (
        b"From: a@b.example\nContent-Type: multipart/mixed; boundary=a\n\n" + b"--a\n" * 2000,
        Kind.MALFORMED,
        "multipart cut short (closing boundary missing)",
    ),
]


@pytest.mark.parametrize(("raw", "kind", "reason"), GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_is_read_for_what_it_is_without_raising(
    raw: bytes, kind: Kind, reason: str
) -> None:
    found = classify(raw)
    assert (found.kind, found.reason) == (kind, reason)
    assert found.bounce is None and found.calendar is None and found.reply is None


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff" * 100, b"no headers here at all", bytes(range(256)) * 4],
    ids=["empty", "binary", "text", "bytes"],
)
def test_garbage_is_malformed(raw: bytes) -> None:
    found = classify(raw)
    assert found.kind is Kind.MALFORMED
    assert found.reason


def test_header_only_message_is_unrelated() -> None:
    found = classify(b"From: Dara <dara@riverbank.example>\r\nSubject: header only\r\n")
    assert (found.kind, found.sender, found.subject) == (
        Kind.UNRELATED,
        "dara@riverbank.example",
        "header only",
    )


def test_truncated_multipart() -> None:
    cut = b"From: a@b.example\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: te"
    assert classify(cut).kind is Kind.MALFORMED
    readable = (
        b"From: a@b.example\nIn-Reply-To: <i@wg.example>\n"
        b"Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/plain\n\n"
        b"No, sorry.\n\n--zz\nContent-Type: application/pdf\n\nJVBER"
    )
    found = classify(readable)
    assert found.kind is Kind.REPLY and found.reply.answer is Answer.NO
    assert "truncated" in found.reason


def test_every_sample_cut_short_or_damaged_never_raises() -> None:
    rng = random.Random(2026)
    for path in sorted(SAMPLES.glob("*.eml")):
        raw = path.read_bytes()
        for cut in range(0, len(raw), max(1, len(raw) // 12)):
            found = classify(raw[:cut])
            assert not found.reason.startswith("unreadable message"), (path.name, cut)
        for _ in range(5):
            damaged = bytearray(raw)
            for _ in range(20):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            found = classify(bytes(damaged))
            # Read by the parser itself, not saved by classify()'s last-resort catch.
            assert not found.reason.startswith("unreadable message"), (path.name, found)


def test_an_unexpected_error_is_malformed_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(raw: bytes, secret: str) -> Inbound:
        raise RecursionError("deeply nested")

    monkeypatch.setattr(classifier, "_classify", explode)
    found = classify(b"From: a@b.example\n\nhello")
    assert found.kind is Kind.MALFORMED
    assert found.reason == "unreadable message (RecursionError)"


def test_str_and_bytearray_are_accepted() -> None:
    assert classify(bytearray(b"From: a@b.example\nIn-Reply-To: <x@y>\n\nyes")).kind is Kind.REPLY
    assert classify("From: a@b.example\nIn-Reply-To: <x@y>\n\nyes").kind is Kind.REPLY  # type: ignore[arg-type]


# --- read_answer --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", Answer.YES),
        ("yes!", Answer.YES),
        ("YES, I will attend", Answer.YES),
        ("I will attend.", Answer.YES),
        ("I\u2019ll attend", Answer.YES),
        ("I will come with a colleague", Answer.YES),
        ("Count me in", Answer.YES),
        ("Attending.", Answer.YES),
        ("See you there!", Answer.YES),
        ("Dear secretariat,\nI will come.\nBest, Dara", Answer.YES),
        ("No problem, I will attend", Answer.YES),
        ("No", Answer.NO),
        ("no, sorry", Answer.NO),
        ("Sorry, I cannot make it this time", Answer.NO),
        ("I can't make it", Answer.NO),
        ("I can\u2019t attend", Answer.NO),
        ("I am not able to attend", Answer.NO),
        ("Unable to attend, apologies", Answer.NO),
        ("I won't be able to come", Answer.NO),
        ("I will not attend", Answer.NO),
        ("I'm not attending this month", Answer.NO),
        ("With regret, I must decline", Answer.NO),
        ("Sadly no.", Answer.NO),
        ("No thank you", Answer.NO),
        ("No objection to the agenda. I will attend", Answer.YES),
        ("Regrets from me", Answer.NO),
        ("Maybe", Answer.MAYBE),
        ("Not sure yet", Answer.MAYBE),
        ("I am not sure I can attend", Answer.MAYBE),
        ("Perhaps, it depends on my flight", Answer.MAYBE),
        ("Possibly", Answer.MAYBE),
        ("Tentative", Answer.MAYBE),
        ("I'll try to come", Answer.MAYBE),
    ],
)
def test_read_answer_english(text: str, expected: Answer) -> None:
    assert read_answer(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Thanks, I'll check my calendar and let you know",
        "Now I know where the office is",
        "I know the address",
        "The November minutes are attached",
        "Nothing to add from our side",
        "Not now",
        "I replied yesterday",
        "Yes, but maybe late",
        "Yes... no... I don't know",
        "Yes. Maybe. No.",
        "No. 27, Street 360",
        "Thank you",
        "We have no projector, can you bring one?",
        "Yes or no?",
    ],
)
def test_read_answer_ambiguous_or_none(text: str) -> None:
    assert read_answer(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("បាទ", Answer.YES),
        ("ចាស", Answer.YES),
        ("បាទ/ចាស", Answer.YES),
        ("ខ្ញុំនឹងចូលរួម", Answer.YES),
        ("ចូលរួម", Answer.YES),
        ("បាទ ខ្ញុំនឹងមក", Answer.YES),
        ("បាទ ខ្ញុំនឹងចូលរួមទេ", Answer.YES),
        ("ចាស\u200bខ្ញុំ\u200bនឹង\u200bចូលរួម", Answer.YES),
        ("មិនអាចចូលរួម", Answer.NO),
        ("សូមអភ័យទោស ខ្ញុំមិនអាចចូលរួមបានទេ", Answer.NO),
        ("ខ្ញុំ\u200bមិន\u200bអាច\u200bចូលរួម\u200bបាន\u200bទេ", Answer.NO),
        ("មិនបានចូលរួម", Answer.NO),
        ("ខ្ញុំមិនអាចមកបាន", Answer.NO),
        ("អត់ទេ", Answer.NO),
        ("ទេ", Answer.NO),
        ("ទេ អរគុណ", Answer.NO),
        ("ទេ។", Answer.NO),
        ("ចាស ខ្ញុំមិនអាចចូលរួមបានទេ", Answer.NO),
        ("ប្រហែល", Answer.MAYBE),
        ("ប្រហែលជា", Answer.MAYBE),
        ("មិនប្រាកដ", Answer.MAYBE),
        ("ប្រហែលជាខ្ញុំនឹងចូលរួម", Answer.MAYBE),
        ("ប្រហែលជាខ្ញុំអាចចូលរួមបាន ប៉ុន្តែមិនទាន់ប្រាកដទេ", Answer.MAYBE),
        ("បាទ ប្រហែលជាមកយឺតបន្តិច", Answer.MAYBE),
    ],
)
def test_read_answer_khmer(text: str, expected: Answer) -> None:
    assert read_answer(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "ទេព សុខា",  # a name that starts with ទេ
        "ខ្ញុំបានទទួលអ៊ីមែលហើយ ទេ",  # ទេ not first: ignored
        "សមាជិកចាស់",  # ចាស់ (old) is not ចាស (yes)
        "អរគុណច្រើន",
    ],
)
def test_read_answer_khmer_none(text: str) -> None:
    assert read_answer(text) is None


def test_read_answer_reads_only_the_first_lines() -> None:
    text = "Thanks for the agenda.\nThe venue is fine.\nI have a question.\nYes, I will attend."
    assert read_answer(text) is None
    assert read_answer("Yes, I will attend.\n" + "Thank you.\n" * 2 + "No.\n") is Answer.YES
    assert read_answer("Yes, I will attend. " + "The agenda is fine. " * 20 + "No.") is Answer.YES


def test_read_answer_ignores_the_quoted_invitation() -> None:
    text = (
        "Yes, see you there.\n\nOn Tue, 1 Dec 2026 at 09:00, WG <noreply@wg.example> wrote:\n> No\n"
    )
    assert read_answer(text) is Answer.YES


# --- own_words ----------------------------------------------------------------------------

QUOTING_STYLES = {
    "angle": "Yes, I will attend.\n\n> Dear members,\n> Yes / No / Maybe\n",
    "gmail_one_line": "Yes, I will attend.\n\nOn Tue, 1 Dec 2026 at 09:00, Working Group "
    "<noreply@wg.example> wrote:\n\n> Dear members,\n",
    "gmail_two_lines": "Yes, I will attend.\n\nOn Tue, 1 Dec 2026 at 09:00, Working Group <\n"
    "noreply@wg.example> wrote:\n\n> Dear members,\n",
    "apple": "Yes, I will attend.\n\n> On 1 Dec 2026, at 09:00, Working Group "
    "<noreply@wg.example> wrote:\n> \n> Dear members,\n",
    "original_message": "Yes, I will attend.\n\n-----Original Message-----\nFrom: Working "
    "Group\nSent: Tuesday\n\nDear members,\n",
    "outlook_header_block": "Yes, I will attend.\n\nFrom: Working Group <noreply@wg.example>\n"
    "Sent: Tuesday, December 1, 2026 9:00 AM\nTo: Dara\nSubject: Meeting\n\nDear members,\n",
    "outlook_separator": "Yes, I will attend.\n\n________________________________\n"
    "From: Working Group\nDear members,\n",
    "khmer_gmail": "Yes, I will attend.\n\nនៅ ថ្ងៃ\u200bអង្គារ ទី 1 ខែ\u200bធ្នូ ឆ្នាំ 2026 "
    "Working Group <noreply@wg.example> បាន\u200bសរសេរ៖\n\n> សូមគោរព\n",
    "khmer_gmail_folded": "Yes, I will attend.\n\nនៅ ថ្ងៃអង្គារ ទី 1 ខែធ្នូ ឆ្នាំ 2026 "
    "Working Group <\nnoreply@wg.example> បានសរសេរ៖\n\n> សូមគោរព\n",
    "french": "Yes, I will attend.\n\nLe mar. 1 déc. 2026 à 09:00, Working Group "
    "<noreply@wg.example> a écrit :\n> Dear members,\n",
    "signature": "Yes, I will attend.\n\n-- \nDara Sok\nRiverbank Survivors Network\n",
    "signature_stripped": "Yes, I will attend.\n--\nDara Sok\n",
    "iphone": "Yes, I will attend.\n\nSent from my iPhone\n\n> Dear members,\n",
    "android": "Yes, I will attend.\nSent from my Android phone\n",
    "outlook_mobile": "Yes, I will attend.\n\nGet Outlook for iOS<https://aka.example/o0ukef>\n",
    "crlf": "Yes, I will attend.\r\n\r\nOn Tue, 1 Dec 2026, Working Group wrote:\r\n> Hi\r\n",
}


@pytest.mark.parametrize("style", sorted(QUOTING_STYLES))
def test_own_words_cuts_each_quoting_style(style: str) -> None:
    assert own_words(QUOTING_STYLES[style]) == "Yes, I will attend."


def test_own_words_keeps_text_without_markers() -> None:
    text = "Yes, I will attend.\n\nOn Tuesday I can also bring the report.\nDara"
    assert own_words(text) == text


def test_own_words_of_a_bottom_posted_answer() -> None:
    text = (
        "On Tue, 1 Dec 2026, Working Group wrote:\n> Will you attend?\n> Yes / No\n\nNo, sorry.\n"
    )
    assert own_words(text) == "No, sorry."
    assert read_answer(text) is Answer.NO


def test_html_to_text_drops_quotes_signatures_and_styles() -> None:
    html = (
        "<html><head><style>p {color: red}</style></head><body>"
        "<div>Yes,&nbsp;I will attend.<br>Dara</div>"
        '<div class="gmail_signature">Riverbank</div>'
        '<div class="gmail_quote"><div class="gmail_attr">On Tue wrote:</div>'
        "<blockquote>No<blockquote>Maybe</blockquote>Yes</blockquote></div>"
        "<blockquote type=cite>Quoted</blockquote><p>After</p></body></html>"
    )
    assert html_to_text(html) == "Yes, I will attend.\nDara\n\nAfter"


def test_html_to_text_keeps_a_stray_angle_bracket_as_text() -> None:
    html = "<p>a < b and c<d</p><div>Yes, I <b>will</b> attend</div><blockquote>No</blockquote>"

    assert html_to_text(html) == "a < b and c<d\n\nYes, I will attend"
    assert html_to_text("<a" * 1000) == "<a" * 1000  # never a tag: all text, read once


# --- return paths -------------------------------------------------------------------------


def report_to(address: str, *, returned_return_path: str = "") -> bytes:
    raw = dsn("Final-Recipient: rfc822; x@r.example\nAction: failed\nStatus: 5.1.1")
    raw = raw.replace(RETURN_PATH_9.encode(), address.encode())
    if returned_return_path:
        returned = (
            "--B\nContent-Type: text/rfc822-headers\n\n"
            f"Return-Path: <{returned_return_path}>\nMessage-ID: <i@wg.example>\n\n--B--"
        )
        raw = raw.replace(b"--B--", returned.encode())
    return raw


def test_a_return_path_we_signed_names_its_message() -> None:
    found = classify(
        report_to(return_path("bounces@wg.example", 42, SAMPLE_SECRET)), secret=SAMPLE_SECRET
    )

    assert found.return_path_numbers == (42,)


def test_a_return_path_signed_with_another_key_names_nothing() -> None:
    forged = return_path("bounces@wg.example", 42, "someone-elses-key")

    assert classify(report_to(forged), secret=SAMPLE_SECRET).return_path_numbers == ()


def test_without_the_key_no_return_path_is_believed() -> None:
    raw = report_to(return_path("bounces@wg.example", 42, SAMPLE_SECRET))

    assert classify(raw).return_path_numbers == ()


def test_the_returned_messages_return_path_names_its_message_too() -> None:
    ours = return_path("Working Group <noreply+x@wg.example>", 7, SAMPLE_SECRET)
    raw = report_to("noreply@wg.example", returned_return_path=ours)

    found = classify(raw, secret=SAMPLE_SECRET)

    assert found.return_path_numbers == (7,)
    assert found.bounce.original_message_id == "<i@wg.example>"


def test_delivered_to_is_read_before_the_returned_message() -> None:
    raw = report_to(
        return_path("bounces@wg.example", 3, SAMPLE_SECRET),
        returned_return_path=return_path("bounces@wg.example", 4, SAMPLE_SECRET),
    )

    assert classify(raw, secret=SAMPLE_SECRET).return_path_numbers == (3, 4)
