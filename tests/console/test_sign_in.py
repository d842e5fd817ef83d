"""Signing in to the console: an emailed one-time link, a session that ends, no passwords."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.cli import cli as wg
from service.models import AuditEvent, JoinRequest, OutboundEmail, RequestStatus
from tests.console.conftest import COORDINATOR, ask_for_link, post, sign_in
from tests.web import csrf_token, post_with_csrf, submit_join_form


def is_sign_in(response) -> bool:
    """Whether `response` sends the browser to the sign-in page."""
    return response.status_code in (302, 303) and response.location.endswith("/console/sign-in")


def test_a_coordinator_signs_in_with_the_emailed_link(client, deliver, smtp_server):
    assert is_sign_in(client.get("/console"))

    ask_for_link(client, COORDINATOR)
    deliver()
    mail = smtp_server.single_message_to(COORDINATOR)
    link = mail.link("/console/sign-in/")
    assert "15" in mail.text
    answer = client.post(link, data={"csrf_token": csrf_token(client, link)})

    cookie = answer.headers["Set-Cookie"]
    assert "wg_console=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie
    page = client.get("/console")
    assert page.status_code == 200
    assert COORDINATOR in page.get_data(as_text=True)


def test_a_scanner_fetching_the_link_signs_nobody_in(app, client, deliver, smtp_server):
    ask_for_link(client, COORDINATOR)
    deliver()
    link = smtp_server.single_message_to(COORDINATOR).link("/console/sign-in/")
    scanner = app.test_client()

    assert scanner.get(link).status_code == 200
    assert scanner.get(link).status_code == 200

    assert is_sign_in(scanner.get("/console"))
    assert "Set-Cookie" not in scanner.get(link).headers or "wg_console" not in str(
        scanner.get(link).headers.get("Set-Cookie")
    )
    # The person who clicks after the scanner still signs in.
    assert client.post(link, data={"csrf_token": csrf_token(client, link)}).status_code == 303


def test_the_link_works_once(app, client, deliver, smtp_server):
    sign_in(client, deliver, smtp_server)
    link = smtp_server.single_message_to(COORDINATOR).link("/console/sign-in/")
    other = app.test_client()

    assert other.get(link).status_code == 410
    assert (
        other.post(link, data={"csrf_token": csrf_token(other, "/console/sign-in")}).status_code
        == 410
    )
    assert is_sign_in(other.get("/console"))


def test_the_link_works_for_fifteen_minutes(client, deliver, smtp_server, clock):
    ask_for_link(client, COORDINATOR)
    deliver()
    link = smtp_server.single_message_to(COORDINATOR).link("/console/sign-in/")
    token = csrf_token(client, link)

    clock.advance(minutes=15, seconds=1)

    assert client.post(link, data={"csrf_token": token}).status_code == 410
    assert is_sign_in(client.get("/console"))


def test_the_link_is_used_only_by_a_post_from_its_page(client, deliver, smtp_server):
    ask_for_link(client, COORDINATOR)
    deliver()
    link = smtp_server.single_message_to(COORDINATOR).link("/console/sign-in/")

    assert client.post(link).status_code == 400  # no form token: not from the page
    assert is_sign_in(client.get("/console"))
    assert client.post(link, data={"csrf_token": csrf_token(client, link)}).status_code == 303


def test_any_other_address_gets_the_same_page_and_no_mail(app, client, deliver, smtp_server, db):
    stranger = app.test_client()
    ask_for_link(stranger, "someone@elsewhere.example")
    ask_for_link(client, COORDINATOR)

    assert (
        stranger.get("/console/sign-in/sent").get_data()
        == client.get("/console/sign-in/sent").get_data()
    )
    deliver()
    assert [m.rcpt_tos for m in smtp_server.messages] == [[COORDINATOR]]
    assert db.scalar(select(func.count()).select_from(OutboundEmail)) == 1


def test_a_post_without_a_session_is_sent_to_sign_in(client):
    token = csrf_token(client, "/console/sign-in")

    for path in ("/console/sign-out", "/console/requests/1", "/console/requests/1/resend"):
        answer = client.post(path, data={"csrf_token": token, "decision": "approve"})
        assert answer.status_code == 303 and answer.location.endswith("/console/sign-in"), path


def test_a_console_post_without_its_form_token_is_refused(
    console, client, db, smtp_server, deliver
):
    submit_join_form(client)
    deliver()
    post_with_csrf(
        client, smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    )
    request_id = db.scalar(select(JoinRequest.id))

    answer = client.post(f"/console/requests/{request_id}", data={"decision": "approve"})

    assert answer.status_code == 400
    assert db.scalar(select(JoinRequest.status)) is RequestStatus.PENDING


def test_signing_out_ends_the_session_wherever_its_cookie_was_copied(app, console, db):
    copied = app.test_client()
    secret = console.get_cookie("wg_console", path="/console").value
    copied.set_cookie("wg_console", secret, path="/console")
    assert copied.get("/console").status_code == 200

    answer = post(console, "/console/sign-out", form_page="/console")

    assert answer.status_code == 303 and answer.location.endswith("/console/sign-in")
    assert is_sign_in(console.get("/console"))
    assert is_sign_in(copied.get("/console"))
    actions = db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-1] == "console.signed_out"


@pytest.mark.parametrize("app_settings", [{"WG_CONSOLE_SESSION_HOURS": "2"}])
def test_the_session_lasts_the_configured_hours(console, clock):
    clock.advance(hours=1, minutes=59)
    assert console.get("/console").status_code == 200

    clock.advance(minutes=2)

    assert is_sign_in(console.get("/console"))


def test_the_session_lasts_twelve_hours_by_default(console, clock):
    clock.advance(hours=11, minutes=59)
    assert console.get("/console").status_code == 200
    clock.advance(minutes=2)
    assert is_sign_in(console.get("/console"))


@pytest.mark.parametrize(
    "app_settings", [{"WG_ENV": "production", "WG_BASE_URL": "https://wg.test"}]
)
def test_the_session_cookie_is_secure_in_production(client, deliver, smtp_server):
    ask_for_link(client, COORDINATOR)
    deliver()
    link = smtp_server.single_message_to(COORDINATOR).link("/console/sign-in/")

    answer = client.post(
        link, data={"csrf_token": csrf_token(client, link)}, base_url="https://wg.test"
    )

    assert "Secure" in answer.headers["Set-Cookie"]


def test_a_removed_coordinator_loses_access_at_the_next_request(app, console):
    assert console.get("/console").status_code == 200

    result = app.test_cli_runner().invoke(wg, ["coordinators", "remove", COORDINATOR])

    assert result.exit_code == 0, result.output
    assert is_sign_in(console.get("/console"))


def test_sign_in_requests_are_limited_per_address_and_per_client(app, client):
    for _ in range(5):
        ask_for_link(client, COORDINATOR)
    token = csrf_token(client, "/console/sign-in")

    again = client.post("/console/sign-in", data={"email": COORDINATOR, "csrf_token": token})
    other_address = client.post(
        "/console/sign-in", data={"email": "secretariat@wg.test", "csrf_token": token}
    )

    assert again.status_code == 429
    assert other_address.status_code == 302
    for number in range(24):
        ask_for_link(client, f"person{number}@elsewhere.example")
    assert (
        client.post(
            "/console/sign-in", data={"email": "late@elsewhere.example", "csrf_token": token}
        ).status_code
        == 429
    )


def test_the_coordinator_list_is_kept_with_wg_coordinators(app, db):
    runner = app.test_cli_runner()

    added = runner.invoke(wg, ["coordinators", "add", "Dara@Wg.Test", "--language", "km"])
    removed = runner.invoke(wg, ["coordinators", "remove", "secretariat@wg.test"])
    listing = runner.invoke(wg, ["coordinators", "list"])

    assert added.exit_code == removed.exit_code == listing.exit_code == 0
    assert listing.output.splitlines() == [
        "coordinator@wg.test  en  (setting)",
        "dara@wg.test  km",
    ]
    assert runner.invoke(wg, ["coordinators", "remove", "nobody@wg.test"]).exit_code == 2
    assert runner.invoke(wg, ["coordinators", "add", "not an address"]).exit_code == 2


def test_join_requests_go_to_whoever_is_on_the_list_in_their_language(
    app, client, deliver, smtp_server
):
    runner = app.test_cli_runner()
    runner.invoke(wg, ["coordinators", "add", "dara@wg.test", "--language", "km"])
    runner.invoke(wg, ["coordinators", "remove", "secretariat@wg.test"])
    submit_join_form(client)
    deliver()
    post_with_csrf(
        client, smtp_server.single_message_to("amara@riverbank.example").link("/confirm/")
    )

    deliver()

    assert smtp_server.messages_to("secretariat@wg.test") == []
    assert smtp_server.single_message_to(COORDINATOR)["Content-Language"] == "en"
    assert smtp_server.single_message_to("dara@wg.test")["Content-Language"] == "km"


def test_digests_go_to_whoever_is_on_the_list(app, db, clock):
    from service.db import session_scope
    from service.notices import digest

    runner = app.test_cli_runner()
    runner.invoke(wg, ["coordinators", "add", "dara@wg.test", "--language", "km"])
    runner.invoke(wg, ["coordinators", "remove", "secretariat@wg.test"])

    with app.app_context(), session_scope() as session:
        assert digest.send_now(session, now=clock()) == 2

    rows = db.execute(select(OutboundEmail.recipient, OutboundEmail.language)).all()
    assert sorted((r, lang.value) for r, lang in rows) == [
        (COORDINATOR, "en"),
        ("dara@wg.test", "km"),
    ]
