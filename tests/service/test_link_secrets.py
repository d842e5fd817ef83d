"""Once mail has left, nothing stored can be turned back into a working link."""

from __future__ import annotations

import re
from urllib.parse import unquote

from sqlalchemy import inspect, text

from service.db import get_database
from tests.service.test_meetings import add_meeting, local
from tests.web import post_with_csrf, submit_join_form

# The secret of a link: a path segment, or the word after "unsubscribe" in a mailto subject.
SECRET = re.compile(r"/(?:confirm|review|rsvp|unsubscribe|representative|member)/([\w-]{16,})")
MAILTO_SECRET = re.compile(r"unsubscribe(?:%20| )([\w-]{16,})")


def secrets_in(smtp_server) -> set[str]:  # type: ignore[no-untyped-def]
    found: set[str] = set()
    for mail in smtp_server.messages:
        raw = unquote(mail.raw.decode("utf-8", "replace"))
        found.update(SECRET.findall(raw))
        found.update(MAILTO_SECRET.findall(raw))
    return found


def every_stored_text(app) -> str:  # type: ignore[no-untyped-def]
    """Every value of every column of every table, as one text to search."""
    engine = get_database(app).engine
    values = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            if table == "alembic_version":
                continue
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                values.extend(
                    item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
                    for item in row
                )
    return "\n".join(values)


def test_no_secret_of_a_sent_link_is_stored_anywhere(
    app, client, clock, smtp_server, deliver, make_member
):
    submit_join_form(client)
    deliver()
    confirmation = smtp_server.single_message_to("amara@riverbank.example")
    post_with_csrf(client, confirmation.link("/confirm/"))
    deliver()
    make_member("sokha@memory.example", organisation="Memory Association")
    clock.set(local(2026, 12, 2, 8, 30))
    add_meeting(app, clock, local(2026, 12, 10, 14, 0))
    deliver()

    sent = secrets_in(smtp_server)
    stored = every_stored_text(app)

    kinds = ("/confirm/", "/review/", "/rsvp/", "/unsubscribe/")
    received = "\n".join(unquote(m.raw.decode("utf-8", "replace")) for m in smtp_server.messages)
    assert all(kind in received for kind in kinds), "the scenario sent every kind of link"
    assert len(sent) >= 5
    assert [secret for secret in sent if secret in stored] == []
