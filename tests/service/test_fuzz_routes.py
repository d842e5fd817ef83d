"""Every route, any query string and any form: never a 5xx.

The routes come from the app's own URL map, so a new one is fuzzed without being listed.
Path parts are random, or the real links of one invited member, so that the pages behind a
valid link meet the random arguments too. Each route gets a bounded number of examples.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import text
from werkzeug.datastructures import MultiDict

from service.db import get_database
from service.ratelimits import DatabaseStorage
from tests.service.test_hostile_input import deliver_and_check
from tests.service.test_meetings import add_meeting, local
from tests.web import csrf_token, join_form

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "wg-mailer-hypothesis")

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Names Flask's url_for takes as its own; names the app reads, and those the forms have.
URL_FOR_NAMES = ["endpoint", "values", "_external", "_scheme", "_anchor", "_method"]
KEYS = [
    "lang", "answer", "saved", "token", "next", "csrf_token", "decision", "note", "substitute_name",
    "substitute_email", "prefs-language", "prefs-announcements", "stop-submit",
    "List-Unsubscribe", "representatives-0-name", "representatives-9-email", *join_form(),
]  # fmt: skip
VALUES = [
    "", "en", "km", "yes", "no", "maybe", "1", "approve", "decline", "One-Click", "x",
    "javascript", "https", "%00", "\x00", "\r\nX: y", "../../etc/passwd", "a" * 5000,
]  # fmt: skip
any_text = st.text(st.characters(codec="utf-8"), max_size=60)
keys = st.sampled_from(URL_FOR_NAMES) | st.sampled_from(KEYS) | any_text
values = st.sampled_from(VALUES) | any_text
pairs = st.lists(st.tuples(keys, values), max_size=6)


def routes(app) -> list[tuple[str, str]]:
    """(endpoint, method) of every route the app answers."""
    return sorted(
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"OPTIONS"}
    )


@pytest.fixture
def member_links(app, clock, deliver, smtp_server, make_member) -> dict[str, str]:
    """The token of each kind of link one invited member received."""
    clock.set(local(2026, 12, 1, 9, 0))
    make_member("amara@riverbank.example", name="Amara")
    add_meeting(app, clock, local(2026, 12, 3, 14, 0))
    (mail,) = deliver_and_check(deliver, smtp_server)
    return {
        "rsvp": mail.link("/rsvp/").rsplit("/", 1)[1].partition("?")[0],
        "unsubscribe": mail.link("/unsubscribe/").rsplit("/", 1)[1],
    }


def fuzz(app, client, endpoint: str, method: str, tokens: list[str], csrf: str) -> None:
    """Random path parts, query strings and forms at one route: never a 5xx."""
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    adapter = app.url_map.bind("localhost")

    @FUZZ
    @given(
        path_values=st.fixed_dictionaries(
            {name: st.sampled_from(tokens) | any_text.filter(bool) for name in rule.arguments}
        ),
        query=pairs,
        form=pairs,
        with_csrf=st.booleans(),
    )
    def request(path_values, query, form, with_csrf):  # type: ignore[no-untyped-def]
        path = adapter.build(endpoint, path_values)
        data = form + ([("csrf_token", csrf)] if with_csrf else [])
        response = client.open(
            path,
            method=method,
            query_string=query,
            data=MultiDict(data) if method == "POST" else None,
        )
        assert response.status_code < 500, (method, path, query, form)

    request()


def test_no_route_answers_5xx_to_any_query_or_form(app, client, member_links):
    every = routes(app)
    assert {"membership.home", "membership.join", "meetings.rsvp"} <= {e for e, _ in every}
    csrf = csrf_token(client, "/join")
    for endpoint, method in every:
        fuzz(app, client, endpoint, method, list(member_links.values()), csrf)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL has no such lock
def test_rate_limit_counts_are_read_while_a_request_holds_the_write_lock(app):
    """The limiter reads its counts after the view, before the request's session closes."""
    engine = get_database(app).engine
    storage = DatabaseStorage(engine=engine)
    storage.incr("join/203.0.113.7", 3600)
    with engine.connect() as request_session:
        request_session.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: the write lock

        assert storage.get("join/203.0.113.7") == 1
        assert storage.get_expiry("join/203.0.113.7") > 0


def test_url_for_arguments_in_the_query_string_are_only_data(client):
    response = client.get(
        "/?endpoint=x&_external=1&_scheme=javascript&_anchor=x&_method=POST&lang=km"
    )

    assert response.status_code == 302
    assert response.location == "/join?lang=km"
