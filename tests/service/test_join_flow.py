"""The join flow end to end: form -> confirmation -> coordinators -> review -> welcome."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from service.models import (
    AuditEvent,
    Contact,
    ContactStatus,
    JoinRequest,
    Organisation,
    OutboundEmail,
    RequestStatus,
)
from tests.web import csrf_token, post_with_csrf, submit_join_form


def test_join_page_is_english_by_default_and_khmer_on_request(client):
    english = client.get("/join")
    khmer = client.get("/join?lang=km")

    assert english.status_code == khmer.status_code == 200
    assert '<html lang="en">' in english.get_data(as_text=True)
    page = khmer.get_data(as_text=True)
    assert '<html lang="km">' in page
    assert "ចូលរួម" in page  # "join" in Khmer script
    assert "lang=km" in khmer.headers["Set-Cookie"]


def test_language_is_remembered_by_cookie_and_read_from_accept_language(client):
    client.get("/join?lang=km")
    assert '<html lang="km">' in client.get("/join").get_data(as_text=True)

    other = client.application.test_client()
    page = other.get("/join", headers={"Accept-Language": "km-KH,km;q=0.9,en;q=0.5"})
    assert '<html lang="km">' in page.get_data(as_text=True)


@pytest.mark.parametrize("lang", ["en", "km"])
def test_whole_join_flow_ends_with_a_welcome_to_every_representative(
    client, smtp_server, deliver, db, coordinators, lang
):
    answer = submit_join_form(client, lang=lang, language=lang)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/join/sent")
    deliver()

    confirmation = smtp_server.single_message_to("amara@riverbank.example")
    assert confirmation["Content-Language"] == lang
    if lang == "km":
        assert "បញ្ជាក់" in confirmation.subject  # "confirm"
    confirm_link = confirmation.link("/confirm/")

    assert post_with_csrf(client, confirm_link).status_code == 302
    deliver()
    deliver()

    reviews = [smtp_server.single_message_to(address) for address in coordinators]
    for review in reviews:
        assert review["Reply-To"] == "Amara Sok <amara@riverbank.example>"  # a reply reaches her
        assert "Riverbank Survivors Network" in review.subject
        assert "Psychosocial support groups" in review.text
        assert "dara@riverbank.example" in review.text
    review_link = reviews[0].link("/review/")

    page = client.get(review_link)
    assert page.status_code == 200 and "Riverbank Survivors Network" in page.get_data(as_text=True)
    assert post_with_csrf(client, review_link, decision="approve").status_code == 302
    deliver()
    named = smtp_server.single_message_to("dara@riverbank.example")  # confirms their own address
    assert named["Content-Language"] == lang
    assert post_with_csrf(client, named.link("/representative/")).status_code == 302
    deliver()

    for address in ("amara@riverbank.example", "dara@riverbank.example"):
        welcome = smtp_server.messages_to(address)[-1]
        assert welcome["Content-Language"] == lang
        assert "Riverbank Survivors Network" in welcome.text
        unsubscribe = welcome.link("/unsubscribe/")  # further representatives' too
        assert client.get(unsubscribe).status_code == 200
    contacts = db.scalars(select(Contact).order_by(Contact.email)).all()
    assert [(c.email, c.status, c.language.value) for c in contacts] == [
        ("amara@riverbank.example", ContactStatus.ACTIVE, lang),
        ("dara@riverbank.example", ContactStatus.ACTIVE, lang),
    ]
    assert contacts[0].organisation.name == "Riverbank Survivors Network"
    actions = db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[:3] == ["join.submitted", "join.confirmed", "join.approved"]
    assert actions.count("contact.activated") == 2
    assert actions[-1] == "contact.activated"  # the representative, once they confirmed


def test_second_coordinator_sees_the_decision_and_cannot_decide_again(
    client, smtp_server, deliver, coordinators
):
    submit_join_form(client)
    deliver()
    post_with_csrf(
        client, smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    )
    deliver()
    first, second = (smtp_server.single_message_to(a).link("/review/") for a in coordinators)

    post_with_csrf(client, first, decision="approve")
    token = csrf_token(client, "/join")  # the decided page shows no form any more
    again = client.post(second, data={"csrf_token": token, "decision": "decline"})

    assert again.status_code == 409
    page = client.get(second).get_data(as_text=True)
    assert "Approved" in page and coordinators[0] in page


def test_decline_sends_the_coordinators_note_politely(
    client, smtp_server, deliver, db, coordinators
):
    submit_join_form(client)
    deliver()
    post_with_csrf(
        client, smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    )
    deliver()
    review = smtp_server.single_message_to(coordinators[0]).link("/review/")

    post_with_csrf(
        client, review, decision="decline", note="We only admit organisations based in Cambodia."
    )
    deliver()

    decline = smtp_server.messages_to("amara@riverbank.example")[-1]
    assert "We only admit organisations based in Cambodia." in decline.text
    assert db.scalar(select(JoinRequest.status)) is RequestStatus.DECLINED
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_a_request_for_an_address_under_review_sends_nothing_and_looks_the_same(
    client, smtp_server, deliver, db
):
    first = submit_join_form(client)
    deliver()
    post_with_csrf(
        client, smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    )
    second = submit_join_form(client, organisation_name="Another name")
    deliver()

    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert len(smtp_server.messages_to("amara@riverbank.example")) == 1
    statuses = db.scalars(select(JoinRequest.status).order_by(JoinRequest.id)).all()
    assert statuses == [RequestStatus.PENDING, RequestStatus.EXPIRED]


def test_fetching_every_link_in_every_email_changes_nothing(client, smtp_server, deliver, db):
    """Mail scanners fetch links before people click them: GET and HEAD must be harmless."""
    submit_join_form(client)
    deliver()
    post_with_csrf(
        client, smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    )
    deliver()

    def state():
        return (
            db.scalars(select(JoinRequest.status)).all(),
            db.scalar(select(func.count()).select_from(Contact)),
            db.scalar(select(func.count()).select_from(OutboundEmail)),
            db.scalar(select(func.count()).select_from(AuditEvent)),
        )

    before = state()
    links = [link for mail in smtp_server.messages for link in mail.links]
    assert any(link.startswith("/review/") for link in links)
    for link in links:
        assert client.get(link).status_code < 500
        assert client.head(link).status_code < 500
    db.expire_all()
    assert state() == before


@pytest.mark.parametrize(
    "typed, stored",
    [("kk-test.org", "https://kk-test.org"), ("www.kk-test.org/about", "https://www.kk-test.org/about")],
)
def test_the_website_field_takes_a_bare_domain(client, db, typed, stored):
    answer = submit_join_form(client, website=typed)

    assert answer.status_code == 302
    request = db.scalars(select(JoinRequest)).one()
    assert request.submitted["website"] == stored


@pytest.mark.parametrize("lang, browser", [("km", "en-US,en;q=0.9"), ("en", "km-KH,km;q=0.9")])
def test_the_confirmation_pages_speak_the_language_the_applicant_chose_not_the_browsers(
    client, smtp_server, deliver, lang, browser
):
    submit_join_form(client, lang=lang, language=lang)
    deliver()
    link = smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    phone = client.application.test_client()  # another device: no cookie, its own language
    headers = {"Accept-Language": browser}

    page = phone.get(link, headers=headers).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    pressed = phone.post(link, data={"csrf_token": token}, headers=headers)
    after = phone.get(pressed.location, headers=headers).get_data(as_text=True)

    assert f'<html lang="{lang}">' in page
    assert pressed.status_code == 302
    assert f'<html lang="{lang}">' in after


def test_a_member_who_fills_in_the_join_form_again_gets_their_page_and_coordinators_are_told(
    client, db, deliver, smtp_server, make_member, coordinators
):
    make_member("amara@riverbank.example", name="Amara Sok")

    answer = submit_join_form(client)  # names Dara as a further representative
    again = submit_join_form(client)
    deliver()

    assert answer.status_code == again.status_code == 302
    assert answer.headers["Location"].endswith("/join/sent")  # the same answer as for anyone
    mail = smtp_server.single_message_to("amara@riverbank.example")  # once, not twice
    assert mail.subject == "You are already a member of the Working Group"
    assert "Dara Chan <dara@riverbank.example>" in mail.text  # whom the form named
    assert "#colleague" in mail.text
    page = client.get(mail.link("/member/"))
    assert page.status_code == 200 and 'id="colleague"' in page.get_data(as_text=True)
    for address in coordinators:
        notice = smtp_server.single_message_to(address)
        assert notice.subject == (
            "A member used the join form: Amara Sok (Riverbank Survivors Network)"
        )
        assert notice["Reply-To"] == "Amara Sok <amara@riverbank.example>"
    assert db.scalar(select(Contact.id).where(Contact.email == "dara@riverbank.example")) is None
    pending = select(func.count()).where(JoinRequest.status == RequestStatus.PENDING)
    assert db.scalar(pending) == 0


def _confirmed_request_review_link(client, deliver, smtp_server, **form: str) -> str:
    submit_join_form(client, **form)
    deliver()
    confirmation = smtp_server.single_message_to("amara@riverbank.example")
    post_with_csrf(client, confirmation.link("/confirm/"))
    deliver()
    return smtp_server.messages_to("coordinator@wg.test")[-1].link("/review/")


def test_approving_a_request_with_a_members_name_asks_where_the_people_go(
    client, db, deliver, smtp_server, make_member
):
    make_member("sokha@riverbank.example", name="Sokha")  # Riverbank Survivors Network
    review = _confirmed_request_review_link(
        client, deliver, smtp_server, organisation_name="riverbank  survivors-network."
    )

    page = client.get(review).get_data(as_text=True)
    assert "Riverbank Survivors Network is a member already" in page and "Sokha" in page
    unanswered = post_with_csrf(client, review, decision="approve")
    assert unanswered.status_code == 400
    assert "Choose whether these people join" in unanswered.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(Organisation)) == 1

    approved = post_with_csrf(client, review, decision="approve", destination="existing")
    deliver()

    assert approved.status_code == 302
    assert db.scalar(select(func.count()).select_from(Organisation)) == 1
    people = dict(db.execute(select(Contact.email, Contact.organisation_id)).all())
    assert people["amara@riverbank.example"] == people["sokha@riverbank.example"]
    assert people["dara@riverbank.example"] == people["sokha@riverbank.example"]
    welcome = smtp_server.messages_to("amara@riverbank.example")[-1]
    assert "Riverbank Survivors Network is now a member" in welcome.text


def test_a_coordinator_may_still_make_a_new_organisation_of_the_same_name(
    client, db, deliver, smtp_server, make_member
):
    make_member("sokha@riverbank.example", name="Sokha")
    review = _confirmed_request_review_link(client, deliver, smtp_server)

    approved = post_with_csrf(client, review, decision="approve", destination="new")

    assert approved.status_code == 302
    assert db.scalar(select(func.count()).select_from(Organisation)) == 2


def test_organisation_names_compare_without_case_spaces_or_punctuation():
    from service.membership.operations import comparable_name

    assert comparable_name("KK-Test  Org.") == comparable_name("kk test org") == "kktestorg"
    assert comparable_name("សមាគម ក្ដីសង្ឃឹម") == comparable_name("សមាគមក្ដីសង្ឃឹម")
    assert comparable_name("ក្ដី") != comparable_name("កដ")  # Khmer signs count


def test_the_empty_join_form_is_one_page_but_each_visitor_has_their_own_form_token(app):
    from tests.web import CSRF, join_form

    first, second = app.test_client(), app.test_client()
    pages = [first.get("/join").get_data(as_text=True), second.get("/join").get_data(as_text=True)]
    tokens = [CSRF.search(page).group(1) for page in pages]

    assert tokens[0] != tokens[1]
    assert pages[0].replace(tokens[0], "") == pages[1].replace(tokens[1], "")
    crossed = second.post("/join", data={**join_form(), "csrf_token": tokens[0]})
    own = second.post("/join", data={**join_form(), "csrf_token": tokens[1]})
    assert (crossed.status_code, own.status_code) == (400, 302)
