"""A member's own page, from the link in the footer of every email they receive."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from service.db import session_scope
from service.models import (
    AuditEvent,
    Contact,
    ContactStatus,
    Invitation,
    Language,
    Organisation,
    OrganisationStatus,
    OutboundEmail,
    OutboxStatus,
    Rsvp,
    Token,
)
from service.notices.announcements import announce
from tests.service.test_meetings import add_meeting, local
from tests.web import csrf_token

AMARA = "amara@riverbank.example"
SOKHA = "sokha@riverbank.example"


@pytest.fixture
def members(make_member):
    return {
        "amara": make_member(AMARA, name="Amara", language="en"),
        "sokha": make_member(SOKHA, name="Sokha", language="km"),
        "chea": make_member("chea@legal.example", name="Chea", organisation="Legal Aid Group"),
    }


@pytest.fixture
def invitation(app, clock, deliver, smtp_server, members):
    """Amara's invitation to a meeting on 14 January, received on the 5th."""
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    mail = smtp_server.single_message_to(AMARA)
    smtp_server.clear()
    return mail


@pytest.fixture
def page_link(invitation) -> str:
    return invitation.link("/member/")


def post(client, link: str, action: str, prefix: str, **fields: str):
    """Press one of the page's buttons: its form, with the page's own CSRF token for it."""
    page = client.get(link).get_data(as_text=True)
    field = rf'id="{prefix}-csrf_token" name="{prefix}-csrf_token" type="hidden" value="([^"]+)"'
    token = re.search(field, page).group(1)
    data = {f"{prefix}-csrf_token": token, **{f"{prefix}-{k}": v for k, v in fields.items()}}
    return client.post(f"{link}/{action}", data=data)


def test_every_mail_to_a_member_links_to_their_own_page(
    app, client, clock, deliver, smtp_server, invitation
):
    with app.app_context(), session_scope(app) as db:
        announce(db, subject_en="News", body_en="Hello", now=clock())
    deliver()
    news = smtp_server.single_message_to(AMARA)

    for mail in (invitation, news):
        link = mail.link("/member/")
        assert link in mail.text and link in mail.html
        page = client.get(link)
        assert page.status_code == 200
        assert "Amara" in page.get_data(as_text=True)
        assert "Riverbank Survivors Network" in page.get_data(as_text=True)


def test_the_member_page_can_be_fetched_by_a_mail_scanner_without_changing_anything(
    client, db, page_link
):
    before = (
        db.scalar(select(func.count()).select_from(AuditEvent)),
        db.scalar(select(func.count()).select_from(Token)),
    )

    assert client.get(page_link).status_code == 200
    assert client.head(page_link).status_code == 200
    assert client.get(f"{page_link}/leave").status_code == 405

    after = (
        db.scalar(select(func.count()).select_from(AuditEvent)),
        db.scalar(select(func.count()).select_from(Token)),
    )
    assert after == before
    assert db.scalar(select(Contact.status).where(Contact.email == AMARA)) is ContactStatus.ACTIVE


def test_a_member_changes_their_details_language_and_news(client, db, page_link):
    answer = post(
        client,
        page_link,
        "details",
        "details",
        name="Amara Sok",
        role="Director",
        phone="+855 12 000 111",
        language="km",
    )  # the news box left unticked

    assert answer.status_code == 302 and "done=details" in answer.location
    amara = db.scalars(select(Contact).where(Contact.email == AMARA)).one()
    db.refresh(amara)
    assert (amara.name, amara.role, amara.phone, amara.language, amara.wants_announcements) == (
        "Amara Sok", "Director", "+855 12 000 111", Language.KM, False,
    )  # fmt: skip
    page = client.get(answer.location).get_data(as_text=True)
    assert '<html lang="km">' in page  # the page follows the language just chosen


def test_a_bad_phone_number_is_refused_beside_the_field_and_nothing_changes(client, db, page_link):
    answer = post(
        client, page_link, "details", "details", name="Amara", phone="call me", language="en"
    )

    assert answer.status_code == 400
    assert 'id="details-phone-error"' in answer.get_data(as_text=True)
    assert db.scalar(select(Contact.phone).where(Contact.email == AMARA)) == ""


def test_a_member_changes_their_answer_on_their_page(client, db, page_link):
    page = client.get(page_link).get_data(as_text=True)
    meeting = re.search(r'action="/member/[^"/]+/meetings/([0-9a-f]+)', page).group(1)

    answer = post(client, page_link, f"meetings/{meeting}", f"meeting-{meeting}", answer="no")

    assert answer.status_code == 302 and "done=answer" in answer.location
    stored = db.scalars(select(Invitation).join(Contact).where(Contact.email == AMARA)).one()
    assert stored.answer is Rsvp.NO
    assert re.search(r'<input checked[^>]*value="no"', client.get(page_link).get_data(as_text=True))


def test_a_colleague_added_on_the_page_confirms_their_own_address_and_is_welcomed(
    client, db, deliver, smtp_server, page_link
):
    answer = post(
        client, page_link, "colleague", "colleague", name="Dara", email="dara@riverbank.example"
    )
    deliver()

    assert answer.status_code == 302
    confirm = smtp_server.single_message_to("dara@riverbank.example")
    assert "Amara" in confirm.text
    dara = db.scalars(select(Contact).where(Contact.email == "dara@riverbank.example")).one()
    assert dara.status is ContactStatus.UNCONFIRMED and dara.organisation.name == (
        "Riverbank Survivors Network"
    )
    link = confirm.link("/representative/")
    pressed = client.post(link, data={"csrf_token": csrf_token(client, link)})
    deliver()
    assert pressed.status_code == 302
    db.refresh(dara)
    assert dara.status is ContactStatus.ACTIVE
    assert smtp_server.messages_to("dara@riverbank.example")[-1].link("/member/")  # welcomed


def test_naming_an_address_already_known_sends_nothing_and_answers_the_same(
    client, db, deliver, smtp_server, page_link
):
    answer = post(
        client, page_link, "colleague", "colleague", name="Chea", email="chea@legal.example"
    )
    deliver()

    assert answer.status_code == 302 and "done=colleague" in answer.location
    assert smtp_server.messages == []
    chea = db.scalars(select(Contact).where(Contact.email == "chea@legal.example")).one()
    assert chea.organisation.name == "Legal Aid Group"  # not moved


def test_one_person_leaving_keeps_the_organisation_and_the_coordinators_are_told(
    client, db, deliver, smtp_server, page_link, coordinators
):
    answer = post(client, page_link, "leave", "leave", who="me")
    deliver()

    assert answer.status_code == 302 and "done=left" in answer.location
    statuses = dict(db.execute(select(Contact.email, Contact.status)).all())
    assert statuses[AMARA] is ContactStatus.INACTIVE
    assert statuses[SOKHA] is ContactStatus.ACTIVE
    organisation = db.scalars(select(Organisation).where(Organisation.name.like("River%"))).one()
    assert organisation.status is OrganisationStatus.ACTIVE
    for address in coordinators:
        notice = smtp_server.single_message_to(address)
        assert "A representative of Riverbank Survivors Network has left" in notice.subject
        assert "Sokha <sokha@riverbank.example>" in notice.text  # still on the list
        assert notice["Reply-To"] == f"Amara <{AMARA}>"
    page = client.get(page_link).get_data(as_text=True)
    assert "You are no longer on the working group" in page


def test_the_last_one_leaving_makes_the_organisation_inactive_and_stops_queued_mail(
    app, client, clock, db, deliver, smtp_server, page_link
):
    with app.app_context(), session_scope(app) as session:
        announce(session, subject_en="News", body_en="Hello", now=clock())  # queued, not sent

    answer = post(client, page_link, "leave", "leave", who="organisation")
    deliver()

    assert answer.status_code == 302
    statuses = dict(db.execute(select(Contact.email, Contact.status)).all())
    assert statuses[AMARA] is statuses[SOKHA] is ContactStatus.INACTIVE
    assert statuses["chea@legal.example"] is ContactStatus.ACTIVE
    organisation = db.scalars(select(Organisation).where(Organisation.name.like("River%"))).one()
    assert organisation.status is OrganisationStatus.INACTIVE
    notice = smtp_server.messages_to("coordinator@wg.test")[0]
    assert notice.subject == "Riverbank Survivors Network has left the working group"
    assert "the organisation is now inactive" in notice.text
    assert smtp_server.messages_to(AMARA) == smtp_server.messages_to(SOKHA) == []
    stopped = db.scalar(
        select(func.count()).where(
            OutboundEmail.recipient.in_([AMARA, SOKHA]),
            OutboundEmail.status == OutboxStatus.SUPPRESSED,
        )
    )
    assert stopped == 2


def test_leaving_needs_a_choice_of_who_leaves(client, db, page_link):
    answer = post(client, page_link, "leave", "leave")

    assert answer.status_code == 400
    assert "Choose who leaves." in answer.get_data(as_text=True)
    assert db.scalar(select(Contact.status).where(Contact.email == AMARA)) is ContactStatus.ACTIVE


def test_the_page_speaks_the_members_language_whatever_the_browser_and_can_switch(
    app, client, clock, deliver, smtp_server, members
):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    link = smtp_server.single_message_to(SOKHA).link("/member/")
    english_phone = {"Accept-Language": "en-US,en;q=0.9"}

    khmer = client.get(link, headers=english_phone).get_data(as_text=True)
    switched = client.get(f"{link}?lang=en", headers=english_phone).get_data(as_text=True)

    assert '<html lang="km">' in khmer and "សមាជិកភាព" in khmer
    assert '<html lang="en">' in switched and "Your membership" in switched


def test_an_unknown_member_link_is_not_found(client):
    assert client.get("/member/AAAAAAAAAAAAAAAAAAAAAA").status_code == 404
