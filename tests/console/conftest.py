"""Console fixtures: a coordinator signed in through the emailed link, as a person would."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from service.db import session_scope
from service.meetings import operations
from tests.mail import SmtpRecorder
from tests.service.test_meetings import details, local
from tests.web import csrf_token

COORDINATOR = "coordinator@wg.test"
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def page_csrf(client: FlaskClient, path: str) -> str:
    """The CSRF token of the first form on a console page."""
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def ask_for_link(client: FlaskClient, email: str) -> None:
    answer = client.post(
        "/console/sign-in",
        data={"email": email, "csrf_token": csrf_token(client, "/console/sign-in")},
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)


def sign_in(client: FlaskClient, deliver, smtp_server: SmtpRecorder, email: str = COORDINATOR):
    """Ask for a link, take it from the mail that arrived, press the page's button."""
    smtp_server.clear()
    ask_for_link(client, email)
    deliver()
    (mail,) = [
        m
        for m in smtp_server.messages_to(email)
        if any(path.startswith("/console/sign-in/") for path in m.links)
    ]
    link = mail.link("/console/sign-in/")
    answer = client.post(link, data={"csrf_token": csrf_token(client, link)})
    assert answer.status_code == 303 and answer.location.endswith("/console"), answer.status_code
    return answer


@pytest.fixture
def console(client, deliver, smtp_server) -> FlaskClient:
    """A test client signed in as the first coordinator."""
    sign_in(client, deliver, smtp_server)
    smtp_server.clear()
    return client


def post(client: FlaskClient, path: str, form_page: str | None = None, **data: str):
    """POST to a console path with the CSRF token of `form_page` (default: the path)."""
    return client.post(path, data={"csrf_token": page_csrf(client, form_page or path), **data})


@pytest.fixture
def invited(app, client, clock, make_member, deliver, smtp_server):
    """Two members invited to a meeting on 14 January 2027; the console signed in."""
    clock.set(local(2027, 1, 5, 9, 0))
    make_member("amara@riverbank.example", name="Amara")
    make_member("bopha@memory.example", name="Bopha", language="km", organisation="Memory")
    with app.app_context(), session_scope() as session:
        meeting = operations.add_meeting(session, details(local(2027, 1, 14, 14, 0)), now=clock())
        meeting_id = meeting.id
    deliver()
    sign_in(client, deliver, smtp_server)
    smtp_server.clear()
    return meeting_id
