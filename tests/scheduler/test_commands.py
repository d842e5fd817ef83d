"""The `wg` command as users run it: a real process, a real database file, a real SMTP server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from emails.names import JOIN_WELCOME
from service import create_app, outbox
from service.db import session_scope
from service.models import (
    Contact,
    ContactStatus,
    Language,
    Organisation,
    OrganisationKind,
    OrganisationStatus,
)
from tests.mail import free_port
from tests.web import join_form

WG = str(Path(sys.executable).parent / "wg")


@pytest.fixture
def environment(tmp_path, smtp_server) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "WG_INSTANCE_PATH": str(tmp_path / "instance"),
        "WG_DATABASE_URL": f"sqlite:///{tmp_path / 'wg.sqlite3'}",
        "WG_SMTP_HOST": "127.0.0.1",
        "WG_SMTP_PORT": str(smtp_server.port),
        "WG_MAIL_FROM": "Working Group <noreply@wg.test>",
        "WG_SECRET_KEY": "test",
    }


def wg(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [WG, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=environment["WG_INSTANCE_PATH"].rsplit("/", 1)[0],
    )
    assert result.returncode == 0, result.stderr
    return result


def test_help_lists_every_command_of_the_contract(environment):
    listed = wg(environment, "--help").stdout
    for command in ("run", "web", "scheduler", "tick", "db", "members", "outbox"):
        assert re.search(rf"^\s+{command}\s", listed, re.MULTILINE), command


def test_tick_with_a_simulated_clock_delivers_the_outbox(environment, smtp_server):
    wg(environment, "db", "upgrade")
    app = create_app(environment)
    with app.app_context(), session_scope(app) as db:
        from datetime import UTC, datetime

        outbox.enqueue(
            db,
            JOIN_WELCOME,
            to="amara@riverbank.example",
            lang="km",
            dedupe_key="welcome:1",
            context={"organisation_name": "Org"},
            now=datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
            not_before=datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
        )
    app.extensions["wg.db"].engine.dispose()

    early = wg(environment, "tick", "--now", "2026-12-01T08:30")  # 01:30 UTC: not yet due
    assert "sent 0" in early.stdout
    due = wg(environment, "tick", "--now", "2026-12-01T09:30")  # naive = Asia/Phnom_Penh
    assert "sent 1" in due.stdout
    assert smtp_server.single_message_to("amara@riverbank.example")["Content-Language"] == "km"

    health = json.loads(wg(environment, "outbox", "--json").stdout)
    assert health["counts"]["sent"] == 1 and health["due"] == 0


def test_members_list_shows_organisations_and_contacts_with_khmer_intact(environment):
    wg(environment, "db", "upgrade")
    app = create_app(environment)
    with app.app_context(), session_scope(app) as db:
        from datetime import UTC, datetime

        now = datetime(2026, 12, 1, tzinfo=UTC)
        org = Organisation(
            name="សមាគមជនរងគ្រោះ",
            kind=OrganisationKind.ORGANISATION,
            status=OrganisationStatus.ACTIVE,
            created_at=now,
        )
        db.add(org)
        db.flush()
        db.add(
            Contact(
                organisation_id=org.id,
                name="សុខ ចន្ទា",
                email="chanda@assoc.example",
                language=Language.KM,
                status=ContactStatus.ACTIVE,
                created_at=now,
            )
        )
    app.extensions["wg.db"].engine.dispose()

    listing = json.loads(wg(environment, "members", "list", "--json").stdout)

    assert listing == [
        {
            "organisation": "សមាគមជនរងគ្រោះ",
            "kind": "organisation",
            "status": "active",
            "contacts": [
                {
                    "name": "សុខ ចន្ទា",
                    "email": "chanda@assoc.example",
                    "role": "",
                    "language": "km",
                    "status": "active",
                }
            ],
        }
    ]


def _get(opener, url: str) -> str:
    with opener.open(url, timeout=10) as response:
        return response.read().decode()


@dataclass
class JoinedThroughWgRun:
    base: str  # where the service was reached
    answer: str  # the page after sending the join form
    listing: str  # /dev/mail once the confirmation arrived (or the last one fetched)
    mail_page: str  # the caught confirmation, as /dev/mail shows it
    output: str  # what `wg run` printed
    returncode: int | None


def join_through_wg_run(tmp_path, port: int, **settings: str) -> JoinedThroughWgRun:
    """Start `wg run --port PORT` as a person would, send the join form, wait for the caught
    confirmation at /dev/mail, then stop the service (SIGTERM)."""
    environment = {
        "PATH": os.environ["PATH"],
        "WG_INSTANCE_PATH": str(tmp_path / "instance"),
        "WG_CATCHER_PORT": str(free_port()),
        **settings,
    }
    wg(environment, "db", "upgrade")
    server = subprocess.Popen(
        [WG, "run", "--port", str(port)],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base, answer, listing, mail_page = f"http://127.0.0.1:{port}", "", "", ""
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        for _ in range(100):
            try:
                _get(opener, base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        page = _get(opener, base + "/join")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({**join_form(), "csrf_token": token}).encode()
        answer = _get(opener, urllib.request.Request(base + "/join", data=body))
        for _ in range(150):  # the delivery job runs every few seconds
            listing = _get(opener, base + "/dev/mail")
            if "Please confirm" in listing:
                break
            time.sleep(0.1)
        link = re.search(r'href="(/dev/mail/[^"]+)"', listing)
        mail_page = _get(opener, base + link.group(1)) if link else ""
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    return JoinedThroughWgRun(base, answer, listing, mail_page, output, server.returncode)


def test_wg_run_serves_the_join_form_and_shows_caught_mail(tmp_path):
    """The embedded default: no SMTP host, so mail lands in the catcher and at /dev/mail."""
    port = free_port()

    run = join_through_wg_run(tmp_path, port, WG_BASE_URL=f"http://127.0.0.1:{port}")

    assert "Check your email" in run.answer, run.output
    assert "Please confirm your request to join" in run.listing, run.output
    assert f"{run.base}/confirm/" in run.mail_page
    assert run.returncode == 0, run.output


def test_wg_web_serves_under_gunicorn(tmp_path):
    port = free_port()
    environment = {
        "PATH": os.environ["PATH"],
        "WG_INSTANCE_PATH": str(tmp_path / "instance"),
        "WG_SECRET_KEY": "test",
    }
    wg(environment, "db", "upgrade")
    server = subprocess.Popen(
        [WG, "web", "--port", str(port), "--workers", "2"],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        opener = urllib.request.build_opener()
        for _ in range(100):
            try:
                health = _get(opener, f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        assert '"status":"ok"' in health.replace(" ", "")
        assert "Join the working group" in _get(opener, f"http://127.0.0.1:{port}/join")
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    assert "Booting worker" in output
