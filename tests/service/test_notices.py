"""Announcements to members and the coordinator's digest."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from sqlalchemy import func, select

from service.cli import cli as wg
from service.db import session_scope
from service.models import (
    Contact,
    ContactStatus,
    JoinRequest,
    Language,
    OutboundEmail,
    RequestStatus,
    Token,
)
from service.notices import digest
from service.notices.announcements import announce
from tests.service.test_meetings import add_meeting, answer, local


def send_announcement(app, clock, **fields):
    with app.app_context(), session_scope(app) as db:
        return announce(db, now=clock(), **fields)


@pytest.fixture
def app_settings():
    return {"WG_DIGEST_TIME": "07:30"}


KHMER = {"subject_km": "ព័ត៌មានថ្មី", "body_km": "សាលក្រមនឹងត្រូវប្រកាស **ឆាប់ៗនេះ**។"}


def test_announcement_reaches_each_member_once_in_their_language(
    app, clock, deliver, smtp_server, make_member
):
    make_member("amara@riverbank.example", language="en")
    make_member("bopha@memory.example", language="km", organisation="Memory")
    make_member("left@memory.example", organisation="Memory", status=ContactStatus.UNSUBSCRIBED)

    report = send_announcement(
        app, clock, subject_en="News", body_en="The **judgment** is near.", **KHMER
    )
    deliver()

    assert report.queued == {"en": 1, "km": 1} and report.opted_out == 0
    english = smtp_server.single_message_to("amara@riverbank.example")
    khmer = smtp_server.single_message_to("bopha@memory.example")
    assert english.subject == "News" and khmer.subject == "ព័ត៌មានថ្មី"
    assert "<strong>judgment</strong>" in english.html
    assert "**judgment**" in english.text
    assert "<strong>ឆាប់ៗនេះ</strong>" in khmer.html
    for mail in (english, khmer):
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail.link("/unsubscribe/")
        assert not any(p.get_content_type() == "text/calendar" for p in mail.message.walk())
    assert smtp_server.messages_to("left@memory.example") == []


def test_without_a_khmer_version_everyone_gets_the_english_one(
    app, clock, deliver, smtp_server, make_member
):
    make_member("bopha@memory.example", language="km")
    send_announcement(app, clock, subject_en="News", body_en="Hello")
    deliver()
    assert smtp_server.single_message_to("bopha@memory.example").subject == "News"


def test_raw_html_in_the_body_is_shown_not_run(app, clock, deliver, smtp_server, make_member):
    make_member("amara@riverbank.example")
    send_announcement(app, clock, subject_en="News", body_en="<script>alert(1)</script>")
    deliver()
    html = smtp_server.single_message_to("amara@riverbank.example").html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_test_announcement_goes_to_the_coordinators_only(
    app, clock, deliver, smtp_server, make_member, coordinators
):
    make_member("amara@riverbank.example")
    send_announcement(app, clock, subject_en="News", body_en="Hello", test=True)
    deliver()
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(coordinators)


def test_test_announcement_shows_each_coordinator_every_language_version(
    app, clock, deliver, smtp_server, coordinators
):
    send_announcement(app, clock, subject_en="News", body_en="Hello", test=True, **KHMER)
    deliver()

    for address in coordinators:
        versions = {m["Content-Language"]: m.subject for m in smtp_server.messages_to(address)}
        assert versions == {"en": "News", "km": "ព័ត៌មានថ្មី"}


def test_the_same_announcement_is_sent_once_unless_again_is_given(
    app, clock, deliver, smtp_server, make_member, tmp_path
):
    make_member("amara@riverbank.example")
    body = tmp_path / "news.md"
    body.write_text("The judgment is near.", encoding="utf-8")
    command = ["announce", "--subject", "News", "--body-file", str(body)]
    runner = app.test_cli_runner()

    first = runner.invoke(wg, command)
    clock.advance(minutes=5)
    repeated = runner.invoke(wg, command)
    deliver()
    assert first.exit_code == 0 and repeated.exit_code == 2
    assert "this announcement was already sent (announcement 1" in repeated.output
    assert "give --again to send it once more" in repeated.output
    assert len(smtp_server.messages_to("amara@riverbank.example")) == 1

    again = runner.invoke(wg, [*command, "--again"])
    deliver()
    assert again.exit_code == 0, again.output
    assert len(smtp_server.messages_to("amara@riverbank.example")) == 2


def test_a_test_run_does_not_count_as_sending_the_announcement(
    app, clock, deliver, smtp_server, make_member
):
    make_member("amara@riverbank.example")
    send_announcement(app, clock, subject_en="News", body_en="Hello", test=True)
    send_announcement(app, clock, subject_en="News", body_en="Hello")
    deliver()
    assert len(smtp_server.messages_to("amara@riverbank.example")) == 1


def test_announcement_to_a_thousand_members_sends_each_exactly_one(
    app, clock, deliver, smtp_server, db, make_member
):
    for n in range(1000):
        make_member(
            f"m{n}@many.example", language="km" if n % 3 else "en", organisation=f"Org {n % 50}"
        )
    db.add(
        Contact(
            organisation_id=1,
            name="Gone",
            email="gone@many.example",
            language=Language.EN,
            status=ContactStatus.BOUNCED,
            created_at=clock(),
        )
    )
    db.commit()

    send_announcement(app, clock, subject_en="News", body_en="Hello", **KHMER)
    deliver()

    received = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    assert len(received) == 1000 and set(received.values()) == {1}
    assert "gone@many.example" not in received
    languages = Counter(m["Content-Language"] for m in smtp_server.messages)
    assert languages == {"km": 666, "en": 334}
    assert len({m["Message-ID"] for m in smtp_server.messages}) == 1000


def test_wg_announce_reads_markdown_files_and_prints_a_summary(app, clock, tmp_path, make_member):
    make_member("amara@riverbank.example")
    english, khmer = tmp_path / "news.md", tmp_path / "news-km.md"
    english.write_text("# Judgment\n\nOn **22 September**.", encoding="utf-8")
    khmer.write_text("\ufeffសាលក្រម", encoding="utf-8")  # as Notepad saves it, with a BOM

    result = app.test_cli_runner().invoke(
        wg,
        [
            "announce",
            "--subject",
            "Judgment",
            "--body-file",
            str(english),
            "--subject-km",
            "សាលក្រម",
            "--body-km-file",
            str(khmer),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "queued 1 (en 1)" in result.output
    missing = app.test_cli_runner().invoke(
        wg, ["announce", "--subject", "X", "--body-file", str(tmp_path / "none.md")]
    )
    assert missing.exit_code == 2


def test_member_chooses_language_and_no_news_on_the_preferences_page(
    app, client, clock, deliver, smtp_server, db, make_member
):
    make_member("amara@riverbank.example")
    make_member("bopha@memory.example", organisation="Memory")
    send_announcement(app, clock, subject_en="First", body_en="Hello")
    deliver()
    link = smtp_server.single_message_to("amara@riverbank.example").link("/unsubscribe/")
    smtp_server.clear()
    token = re.search(
        r'name="prefs-csrf_token" type="hidden" value="([^"]+)"',
        client.get(link).get_data(as_text=True),
    ).group(1)

    saved = client.post(link, data={"prefs-csrf_token": token, "prefs-language": "km"})

    assert saved.status_code == 302
    contact = db.scalars(select(Contact).where(Contact.email == "amara@riverbank.example")).one()
    assert (contact.language, contact.wants_announcements, contact.status) == (
        Language.KM,
        False,
        ContactStatus.ACTIVE,
    )
    send_announcement(app, clock, subject_en="Second", body_en="Hello")
    deliver()
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == ["bopha@memory.example"]


def test_unsubscribe_page_get_and_head_change_nothing(
    app, client, clock, deliver, smtp_server, db, make_member
):
    make_member("amara@riverbank.example")
    send_announcement(app, clock, subject_en="News", body_en="Hello")
    deliver()
    link = smtp_server.single_message_to("amara@riverbank.example").link("/unsubscribe/")

    assert client.get(link).status_code == 200
    assert client.head(link).status_code == 200
    assert client.post(link, data={"List-Unsubscribe": "Other"}).status_code == 400
    assert db.scalar(select(Contact.status)) is ContactStatus.ACTIVE
    multipart = client.post(
        link, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )
    assert multipart.status_code == 200
    assert db.scalar(select(Contact.status)) is ContactStatus.UNSUBSCRIBED


@pytest.fixture
def prepared_state(app, client, clock, deliver, smtp_server, db, make_member):
    """A pending join request, a meeting with mixed answers, a bounce and a failure."""
    clock.set(local(2027, 1, 5, 9, 0))
    amara = make_member("amara@riverbank.example", name="Amara")
    make_member("bopha@memory.example", name="Bopha", language="km", organisation="Memory")
    make_member("chea@legal.example", name="Chea", organisation="Legal Aid")
    make_member("dara@gone.example", name="Dara", organisation="Gone Org")
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    smtp_server.refuse("dara@gone.example", "550 5.1.1 no such user")
    deliver()
    invitations = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    answer(
        client,
        invitations["amara@riverbank.example"],
        "yes",
        substitute_name="Sokha",
        substitute_email="sokha@riverbank.example",
    )
    answer(client, invitations["bopha@memory.example"], "no")
    db.add(
        JoinRequest(
            email="new@applicant.example",
            language=Language.EN,
            status=RequestStatus.PENDING,
            created_at=clock(),
            confirmed_at=clock(),
            submitted={"organisation_name": "Applicant Org", "name": "Nimol"},
        )
    )
    db.commit()
    smtp_server.clear()
    return amara


def test_digest_shows_what_needs_the_coordinator(
    app, clock, deliver, smtp_server, prepared_state, coordinators
):
    clock.set(local(2027, 1, 6, 7, 45))  # the next morning, after the digest time
    deliver()
    deliver()

    for address in coordinators:
        mail = smtp_server.single_message_to(address)
        text = mail.text
        assert mail.subject.startswith("Working group digest")
        assert "Applicant Org: Nimol <new@applicant.example>, waiting 22 hours" in text
        assert mail.link("/review/")
        assert "Invited 4: yes 1, no 1, maybe 0, no answer 2" in text
        assert "Amara (by link), in their place: Sokha" in text
        assert "Not answered yet: Chea, Dara" in text
        # Gone Org and Legal Aid have not answered yet: only Memory said no.
        assert "No one attending from: Memory\n" in text
        assert "dara@gone.example (550" in text
        assert "width:" in mail.html  # tallies drawn as bars


@pytest.mark.parametrize(
    "app_settings", [{"WG_COORDINATOR_LANGUAGE": "km", "WG_DIGEST_TIME": "07:30"}]
)
def test_digest_in_khmer(
    app, clock, deliver, smtp_server, prepared_state, coordinators, app_settings
):
    clock.set(local(2027, 1, 6, 7, 45))
    deliver()
    mail = smtp_server.single_message_to(coordinators[0])
    assert mail["Content-Language"] == "km"
    assert "របាយការណ៍សង្ខេប" in mail.subject
    assert "សំណើចូលជាសមាជិកដែលកំពុងរង់ចាំ" in mail.text
    assert "មករា" in mail.text
    assert mail.text.rstrip().split("\n-- \n")[1].startswith("ក្រុមការងារ\n")  # signed in Khmer


@pytest.mark.parametrize(
    "app_settings", [{"WG_COORDINATOR_LANGUAGE": "km", "WG_DIGEST_TIME": "07:30"}]
)
def test_the_khmer_digest_preview_is_signed_with_the_groups_khmer_name(app, prepared_state):
    result = app.test_cli_runner().invoke(wg, ["digest", "--preview", "--now", "2027-01-06T08:00"])

    assert result.exit_code == 0, result.output
    assert "\n-- \nក្រុមការងារ\n" in result.output
    assert "Working Group" not in result.output


def test_quiet_days_send_nothing_but_the_weekly_summary_comes_on_its_day(
    app, clock, deliver, smtp_server, prepared_state, coordinators
):
    clock.set(local(2027, 1, 6, 7, 45))  # Wednesday: news
    deliver()
    smtp_server.clear()
    clock.set(local(2027, 1, 7, 7, 45))  # Thursday: nothing new (follow-ups come at 08:00)
    deliver()
    assert smtp_server.messages_to(coordinators[0]) == []
    clock.set(local(2027, 1, 11, 7, 45))  # Monday: the weekly summary, quiet or not
    deliver()
    assert smtp_server.single_message_to(coordinators[0]).subject.startswith("Weekly summary")


def test_digest_is_never_sent_twice_for_a_day(
    app, clock, deliver, smtp_server, prepared_state, coordinators
):
    clock.set(local(2027, 1, 6, 7, 45))
    deliver()
    result = app.test_cli_runner().invoke(wg, ["digest", "--now", "2027-01-06T10:00"])
    deliver()
    assert result.exit_code == 0 and "already sent" in result.output
    assert len(smtp_server.messages_to(coordinators[0])) == 1


def test_digest_preview_prints_text_and_stores_nothing(app, clock, db, prepared_state):
    before = (
        db.scalar(select(func.count()).select_from(OutboundEmail)),
        db.scalar(select(func.count()).select_from(Token)),
    )

    result = app.test_cli_runner().invoke(wg, ["digest", "--preview", "--now", "2027-01-06T08:00"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Subject: Working group digest")
    assert "Applicant Org" in result.output
    assert (
        db.scalar(select(func.count()).select_from(OutboundEmail)),
        db.scalar(select(func.count()).select_from(Token)),
    ) == before


def test_failure_is_reported_in_one_digest_only(
    app, clock, deliver, smtp_server, prepared_state, coordinators
):
    clock.set(local(2027, 1, 6, 7, 45))
    deliver()
    assert "dara@gone.example (550" in smtp_server.single_message_to(coordinators[0]).text
    smtp_server.clear()
    with app.app_context(), session_scope(app) as session:
        digest.send_now(session, now=local(2027, 1, 7, 7, 45))
    clock.set(local(2027, 1, 7, 7, 46))
    deliver()
    assert "dara@gone.example (550" not in smtp_server.single_message_to(coordinators[0]).text


def test_a_meeting_not_invited_yet_says_when_invitations_go_out_not_invited_0(
    app, clock, make_member
):
    make_member("amara@riverbank.example", name="Amara")
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 2, 11, 14, 0))  # invitations go out on 28 January

    with app.app_context(), session_scope(app) as session:
        text = digest.preview(session, now=clock())

    assert "Invited 0" not in text
    assert "Not invited yet: the invitations go out on Jan 28, 2027, 8:00" in text


def test_on_invitation_day_no_organisation_is_listed_as_not_attending(
    app, clock, deliver, smtp_server, make_member
):
    make_member("amara@riverbank.example", name="Amara")
    make_member("chea@legal.example", name="Chea", organisation="Legal Aid")
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()

    with app.app_context(), session_scope(app) as session:
        text = digest.preview(session, now=clock())

    assert "Invited 2: yes 0, no 0, maybe 0, no answer 2" in text
    assert "No one attending from" not in text
    assert "Not answered yet: Amara, Chea" in text


def test_an_organisation_sending_a_substitute_counts_as_attending(
    app, client, clock, deliver, smtp_server, make_member
):
    make_member("bopha@memory.example", name="Bopha", organisation="Memory")
    make_member("chea@legal.example", name="Chea", organisation="Legal Aid")
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    invitations = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    answer(
        client,
        invitations["bopha@memory.example"],
        "no",
        substitute_name="Sokha",
        substitute_email="sokha@memory.example",
    )
    answer(client, invitations["chea@legal.example"], "no")

    with app.app_context(), session_scope(app) as session:
        text = digest.preview(session, now=clock())

    assert "No one attending from: Legal Aid\n" in text
    assert "Bopha (by link), in their place: Sokha" in text
