"""Bad input to the public pages: a clear 4xx answer, and nothing stored or sent."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.models import AuditEvent, JoinRequest, OutboundEmail, Token
from tests.web import csrf_token, join_form, post_with_csrf, submit_join_form


def stored(db) -> tuple[int, int, int, int]:
    return tuple(
        db.scalar(select(func.count()).select_from(model))
        for model in (JoinRequest, OutboundEmail, Token, AuditEvent)
    )


NOTHING = (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("organisation_name", "", "Give the name of the organisation."),
        ("email", "", "Give your email address."),
        ("email", "amara@", "Enter an email address such as name@example.org."),
        ("email", "amara@riverbank.example\r\nBcc: victim@example.org", "Enter an email address"),
        (
            "name",
            "Amara\r\nBcc: victim@example.org",
            "Use a single line without special characters.",
        ),
        ("name", "x" * 201, "Field cannot be longer than 200 characters."),
        ("work_summary", "y" * 2001, "Field cannot be longer than 2000 characters."),
        ("website", "not a url", "Enter a full address such as https://example.org."),
        ("phone", "call me", "Enter a phone number with digits"),
        ("kind", "government", "Not a valid choice"),
        ("language", "fr", "Not a valid choice"),
        ("consent", "", "Tick this box so that we may write to you."),
        ("cambodia_location", "", "Say where in Cambodia."),
        ("representatives-0-email", "dara@", "Enter an email address such as name@example.org."),
        ("representatives-0-email", "", "Give an email address for this person."),
    ],
)
def test_invalid_field_is_refused_with_a_message_beside_it(client, db, field, value, message):
    answer = submit_join_form(client, **{field: value})

    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert message in page
    assert f'id="{field}-error"' in page
    assert 'aria-invalid="true"' in page
    assert stored(db) == NOTHING


def test_entered_values_are_kept_when_the_form_is_refused(client):
    page = submit_join_form(client, email="amara@").get_data(as_text=True)

    assert 'value="Riverbank Survivors Network"' in page
    assert "Psychosocial support groups" in page


def test_form_without_csrf_token_is_refused(client, db):
    answer = client.post("/join", data=join_form())

    assert answer.status_code == 400
    assert "The form had expired" in answer.get_data(as_text=True)
    assert stored(db) == NOTHING


def test_filled_honeypot_is_refused_without_storing(client, db):
    answer = submit_join_form(client, homepage="http://spam.example")

    assert answer.status_code == 400
    assert "could not be accepted" in answer.get_data(as_text=True)
    assert stored(db) == NOTHING


def test_oversized_request_body_is_refused(client, db):
    answer = client.post("/join", data=join_form(work_summary="z" * 100_000))

    assert answer.status_code == 413
    assert "too large" in answer.get_data(as_text=True)
    assert stored(db) == NOTHING


def test_wrong_method_and_content_type_get_4xx(client, db):
    assert client.put("/join").status_code == 405
    assert client.delete("/confirm/whatever").status_code == 405
    answer = client.post("/join", data="{}", content_type="application/json")
    assert answer.status_code == 400
    assert stored(db) == NOTHING


@pytest.mark.parametrize("app_settings", [{"WG_JOIN_RATE_LIMIT": "3 per hour"}])
def test_too_many_submissions_from_one_address_are_refused(client, db, app_settings):
    for number in range(3):
        assert (
            submit_join_form(client, email=f"person{number}@riverbank.example").status_code == 302
        )
    answer = submit_join_form(client, email="person9@riverbank.example")

    assert answer.status_code == 429
    assert "Too many attempts" in answer.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(JoinRequest)) == 3


@pytest.mark.parametrize(
    "token", ["forged-token-value", "x" * 500, "%00%0d%0a", "Zm9yZ2Vk", "ខ្មែរ"]
)
def test_forged_or_malformed_tokens_get_a_plain_404(client, db, token):
    for path in (f"/confirm/{token}", f"/review/{token}"):
        assert client.get(path).status_code == 404
        answer = client.post(path, data={"csrf_token": csrf_token(client, "/join")})
        assert answer.status_code == 404
    assert stored(db) == NOTHING


def test_confirmation_link_works_once(client, smtp_server, deliver, db):
    submit_join_form(client)
    deliver()
    link = smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    assert post_with_csrf(client, link).status_code == 302
    before = stored(db)

    again = client.post(link, data={"csrf_token": csrf_token(client, "/join")})

    assert again.status_code == 410
    assert "already been used" in again.get_data(as_text=True)
    assert stored(db) == before


def test_confirm_without_csrf_changes_nothing(client, smtp_server, deliver, db):
    submit_join_form(client)
    deliver()
    link = smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    before = stored(db)

    assert client.post(link).status_code == 400
    assert stored(db) == before


def test_expired_confirmation_link_offers_a_new_one(client, smtp_server, deliver, db, clock):
    submit_join_form(client)
    deliver()
    old_link = smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    clock.advance(hours=73)

    page = client.get(old_link)
    assert page.status_code == 410
    assert "expired" in page.get_data(as_text=True)
    assert post_with_csrf(client, old_link).status_code == 410  # confirming is refused

    token = csrf_token(client, "/join")
    assert client.post(old_link + "/resend", data={"csrf_token": token}).status_code == 302
    deliver()
    new_link = smtp_server.messages_to("amara@riverbank.example")[-1].link("/confirm/")
    assert new_link != old_link
    assert post_with_csrf(client, new_link).status_code == 302
    assert client.post(old_link + "/resend", data={"csrf_token": token}).status_code == 410


def test_review_with_an_unknown_decision_is_refused(client, smtp_server, deliver, db, coordinators):
    submit_join_form(client)
    deliver()
    post_with_csrf(
        client, smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    )
    deliver()
    review = smtp_server.single_message_to(coordinators[0]).link("/review/")
    before = stored(db)

    answer = post_with_csrf(client, review, decision="maybe")

    assert answer.status_code == 400
    assert stored(db) == before


def test_expired_review_link_cannot_decide(client, smtp_server, deliver, db, clock, coordinators):
    submit_join_form(client)
    deliver()
    post_with_csrf(
        client, smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    )
    deliver()
    review = smtp_server.single_message_to(coordinators[0]).link("/review/")
    clock.advance(days=61)
    before = stored(db)

    assert client.get(review).status_code == 410
    answer = client.post(
        review, data={"csrf_token": csrf_token(client, "/join"), "decision": "approve"}
    )
    assert answer.status_code == 410
    assert stored(db) == before


def test_unknown_page_is_a_plain_404(client):
    answer = client.get("/nothing-here")
    assert answer.status_code == 404
    assert "does not exist" in answer.get_data(as_text=True)
