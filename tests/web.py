"""Helpers for driving the public pages with Flask's test client, as a browser would."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def join_form(**overrides: str) -> dict[str, str]:
    """A complete, valid join form; keyword arguments replace fields."""
    form = {
        "organisation_name": "Riverbank Survivors Network",
        "kind": "organisation",
        "website": "https://riverbank.example",
        "represented_in_cambodia": "yes",
        "cambodia_location": "Battambang",
        "name": "Amara Sok",
        "role": "Programme officer",
        "email": "amara@riverbank.example",
        "phone": "+855 12 345 678",
        "language": "en",
        "representatives-0-name": "Dara Chan",
        "representatives-0-email": "dara@riverbank.example",
        "representatives-1-name": "",
        "representatives-1-email": "",
        "representatives-2-name": "",
        "representatives-2-email": "",
        "work_summary": "Psychosocial support groups for elderly survivors in three provinces.",
        "consent": "y",
        "homepage": "",
    }
    form.update(overrides)
    return form


def submit_join_form(client: FlaskClient, lang: str = "en", **overrides: str) -> TestResponse:
    data = join_form(**overrides)
    data["csrf_token"] = csrf_token(client, f"/join?lang={lang}")
    return client.post("/join", data=data)


def post_with_csrf(client: FlaskClient, path: str, **data: str) -> TestResponse:
    return client.post(path, data={"csrf_token": csrf_token(client, path), **data})
