"""A join request cannot take over anyone: members stay where they are, named people confirm."""

from __future__ import annotations

from sqlalchemy import select

from service.models import Contact, ContactStatus
from tests.web import csrf_token, post_with_csrf, submit_join_form

APPLICANT = "amara@riverbank.example"
NAMED = "dara@riverbank.example"


def approved_request(client, smtp_server, deliver, coordinators, **form: str) -> str:
    """Submit, confirm and approve a join request; the coordinator's review link."""
    submit_join_form(client, **form)
    deliver()
    post_with_csrf(client, smtp_server.single_message_to(APPLICANT).link("/confirm/"))
    deliver()
    review = smtp_server.single_message_to(coordinators[0]).link("/review/")
    assert post_with_csrf(client, review, decision="approve").status_code == 302
    deliver()
    return review


def contact(db, email: str) -> Contact:
    db.expire_all()
    return db.scalars(select(Contact).where(Contact.email == email)).one()


def test_a_join_request_never_moves_or_renames_an_existing_member(
    client, smtp_server, deliver, db, coordinators, make_member
):
    make_member(NAMED, name="Dara Chan", organisation="Memory Association")

    submit_join_form(client, **{"representatives-0-name": "Someone Else"})
    deliver()
    post_with_csrf(client, smtp_server.single_message_to(APPLICANT).link("/confirm/"))
    deliver()
    mail = smtp_server.single_message_to(coordinators[0])
    review = mail.link("/review/")
    page = client.get(review).get_data(as_text=True)
    assert post_with_csrf(client, review, decision="approve").status_code == 302
    deliver()

    for shown in (mail.text, mail.html, page):
        assert "already a member of Memory Association" in shown
    member = contact(db, NAMED)
    assert (member.name, member.organisation.name, member.status) == (
        "Dara Chan",
        "Memory Association",
        ContactStatus.ACTIVE,
    )
    assert smtp_server.messages_to(NAMED) == []
    applicant = contact(db, APPLICANT)
    assert [c.email for c in applicant.organisation.contacts] == [APPLICANT]


def test_further_representatives_confirm_their_own_address_before_they_become_active(
    client, smtp_server, deliver, db, coordinators
):
    approved_request(client, smtp_server, deliver, coordinators)

    assert contact(db, APPLICANT).status is ContactStatus.ACTIVE
    assert contact(db, NAMED).status is not ContactStatus.ACTIVE
    asked = smtp_server.single_message_to(NAMED)
    assert "Amara Sok" in asked.text and "Riverbank Survivors Network" in asked.text
    link = asked.link("/representative/")

    page = client.get(link)
    assert page.status_code == 200 and "<button" in page.get_data(as_text=True)
    assert contact(db, NAMED).status is not ContactStatus.ACTIVE  # a GET changes nothing

    assert post_with_csrf(client, link).status_code == 302
    deliver()

    assert contact(db, NAMED).status is ContactStatus.ACTIVE
    assert contact(db, NAMED).organisation.name == "Riverbank Survivors Network"
    assert smtp_server.messages_to(NAMED)[-1].subject.startswith("Welcome")
    again = client.post(link, data={"csrf_token": csrf_token(client, "/join")})
    assert again.status_code == 410


def test_a_representatives_expired_link_can_be_replaced_by_a_new_one(
    client, smtp_server, deliver, db, coordinators, clock
):
    approved_request(client, smtp_server, deliver, coordinators)
    old_link = smtp_server.single_message_to(NAMED).link("/representative/")
    clock.advance(hours=73)

    assert client.get(old_link).status_code == 410
    assert post_with_csrf(client, old_link).status_code == 410
    assert contact(db, NAMED).status is not ContactStatus.ACTIVE
    token = csrf_token(client, "/join")
    assert client.post(old_link + "/resend", data={"csrf_token": token}).status_code == 302
    deliver()
    new_link = smtp_server.messages_to(NAMED)[-1].link("/representative/")

    assert new_link != old_link
    assert post_with_csrf(client, new_link).status_code == 302
    assert contact(db, NAMED).status is ContactStatus.ACTIVE


def test_a_forged_representative_link_is_a_plain_404(client, db):
    assert client.get("/representative/forged-token-value").status_code == 404
    answer = client.post(
        "/representative/forged-token-value", data={"csrf_token": csrf_token(client, "/join")}
    )
    assert answer.status_code == 404
